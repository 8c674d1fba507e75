/*
 * shaping_resolve_test - resolution with overlapping scopes, value by value, against what KumoMTA's
 * get_egress_path_config resolves for the same files (its order, lowest first: ["default"] ->
 * matching providers -> their .sources -> the site's block (mx_rollup) -> the domain's block
 * (mx_rollup = false) -> the site block's .sources -> the domain block's .sources); replace_base in
 * a second file; additional_* maps merged name by name; provider named limits; automation rules in
 * scope; MX rollup sites
 */
#include <errno.h>
#include <stdint.h>

#include "tests/lib/check.h"
#include "tests/unit/policy/shaping_test.h"

static const char base_toml[] = /* line numbers matter: set_by is checked */
    "[\"default\"]\n"                                        /* 1 */
    "connection_limit = 10\n"                                /* 2 */
    "max_message_rate = \"100/s\"\n"                         /* 3 */
    "idle_timeout = \"60s\"\n"                               /* 4 */
    "max_deliveries_per_connection = 100\n"                  /* 5 */
    "additional_connection_limits = {\"global\" = 100}\n"    /* 6 */
    "\n"                                                     /* 7 */
    "[provider.\"big\"]\n"                                   /* 8 */
    "match = [{MXSuffix = \".big.test\"}]\n"                 /* 9 */
    "connection_limit = 8\n"                                 /* 10 */
    "max_deliveries_per_connection = 50\n"                   /* 11 */
    "provider_connection_limit = 5\n"                        /* 12 */
    "provider_max_message_rate = \"120/s\"\n"                /* 13 */
    "additional_connection_limits = {\"big-extra\" = 20}\n"  /* 14 */
    "\n"                                                     /* 15 */
    "[provider.\"big\".sources.\"warm\"]\n"                  /* 16 */
    "connection_limit = 2\n"                                 /* 17 */
    "provider_source_selection_rate = \"500/d,max_burst=1\"\n" /* 18 */
    "\n"                                                     /* 19 */
    "[\"site.test\"]\n"                                      /* 20 */
    "connection_limit = 6\n"                                 /* 21 */
    "max_ready = 500\n"                                      /* 22 */
    "\n"                                                     /* 23 */
    "[\"site.test\".sources.\"warm\"]\n"                     /* 24 */
    "connection_limit = 3\n"                                 /* 25 */
    "\n"                                                     /* 26 */
    "[\"exact.test\"]\n"                                     /* 27 */
    "mx_rollup = false\n"                                    /* 28 */
    "connection_limit = 4\n"                                 /* 29 */
    "enable_tls = \"Required\"\n"                            /* 30 */
    "\n"                                                     /* 31 */
    "[\"exact.test\".sources.\"warm\"]\n"                    /* 32 */
    "max_message_rate = \"5/s\"\n"                           /* 33 */
    "\n"                                                     /* 34 */
    "[\"replaced.test\"]\n"                                  /* 35 */
    "mx_rollup = false\n"                                    /* 36 */
    "connection_limit = 9\n"                                 /* 37 */
    "max_ready = 77\n"                                       /* 38 */
    "\n"                                                     /* 39 */
    "[[\"replaced.test\".automation]]\n"                     /* 40 */
    "regex = \"old rule\"\n"                                 /* 41 */
    "action = \"Suspend\"\n"                                 /* 42 */
    "duration = \"1h\"\n"                                    /* 43 */
    "\n"                                                     /* 44 */
    "[\"site2.test\"]\n"                                     /* 45 */
    "max_ready = 9\n"                                        /* 46 */
    "\n"                                                     /* 47 */
    "[[\"default\".automation]]\n"                           /* 48 */
    "regex = \"default rule\"\n"                             /* 49 */
    "action = \"Suspend\"\n"                                 /* 50 */
    "duration = \"1h\"\n"                                    /* 51 */
    "\n"                                                     /* 52 */
    "[[provider.\"big\".automation]]\n"                      /* 53 */
    "regex = \"provider rule\"\n"                            /* 54 */
    "action = {SetConfig = {name = \"connection_limit\", value = 1}}\n" /* 55 */
    "trigger = {Threshold = \"2/hr\"}\n"                     /* 56 */
    "duration = \"30m\"\n"                                   /* 57 */
    "\n"                                                     /* 58 */
    "[[\"site.test\".automation]]\n"                         /* 59 */
    "regex = \"site rule\"\n"                                /* 60 */
    "action = \"SuspendTenant\"\n"                           /* 61 */
    "duration = \"5 minutes\"\n"                             /* 62 */
    "\n"                                                     /* 63 */
    "[[\"exact.test\".automation]]\n"                        /* 64 */
    "regex = \"domain rule\"\n"                              /* 65 */
    "action = [\"Bounce\", {SetDomainConfig = {name = \"max_message_rate\", value = \"1/minute\"}}]\n" /* 66 */
    "duration = \"2 hours\"\n"                               /* 67 */
    "match_internal = true\n";                               /* 68 */

static const char over_toml[] =
    "[\"default\"]\n"                                        /* 1 */
    "idle_timeout = \"30s\"\n"                               /* 2 */
    "additional_connection_limits = {\"second\" = 32}\n"     /* 3 */
    "\n"                                                     /* 4 */
    "[\"replaced.test\"]\n"                                  /* 5 */
    "mx_rollup = false\n"                                    /* 6 */
    "replace_base = true\n"                                  /* 7 */
    "max_deliveries_per_connection = 7\n"                    /* 8 */
    "\n"                                                     /* 9 */
    "[provider.\"big\"]\n"                                   /* 10 */
    "max_message_rate = \"50/s\"\n"                          /* 11 */
    "\n"                                                     /* 12 */
    "[provider.\"named\"]\n"                                 /* 13 */
    "match = [{DomainSuffix = \".named.test\"}, {HostName = \"relay.named.test\"}]\n" /* 14 */
    "smtp_port = 2525\n";                                    /* 15 */

static json_t *res, *by;

static void resolve(struct shaping *sh, const char *domain, const char *source, const char *site)
{
    json_decref(res);
    json_decref(by);
    res = shaping_resolve(sh, domain, source, site, &by);
}

/* the resolved value of `key` as compact JSON ("absent" when not set) */
static void want(const char *ctx, const char *key, const char *json)
{
    json_t *v = json_object_get(res, key);
    char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : xstrdup("absent");
    CHECK(strcmp(got, json) == 0, "%s: %s = %s, want %s", ctx, key, got, json);
    free(got);
}

/* where `key` was set: "FILE:LINE [block]" ends with `where` */
static void want_by(const char *ctx, const char *key, const char *where)
{
    const char *s = json_string_value(json_object_get(by, key));
    CHECK(s && strlen(s) >= strlen(where) && strcmp(s + strlen(s) - strlen(where), where) == 0,
          "%s: %s set by %s, want ...%s", ctx, key, s ? s : "nothing", where);
}

static void test_scopes(struct shaping *sh)
{
    /* a domain nothing names: ["default"] of both files merged key by key; the additional_* map
     * merges name by name (KumoMTA's toml_table_merge_from) instead of being replaced */
    resolve(sh, "other.test", "s1", "mx.other.test");
    want("default", "connection_limit", "10");
    want("default", "idle_timeout", "\"30s\"");
    want_by("default", "idle_timeout", "over.toml:2 [\"default\"]");
    want("default", "additional_connection_limits", "{\"global\":100,\"second\":32}");
    want("default", "provider_name", "absent");

    /* every MX host under .big.test: the provider applies over the default; its later file's
     * max_message_rate merges into it; its provider_connection_limit / provider_max_message_rate
     * become named limits for this source */
    resolve(sh, "a.test", "s1", "mx1.big.test,mx2.big.test");
    want("provider", "provider_name", "\"big\"");
    want("provider", "connection_limit", "8");
    want_by("provider", "connection_limit", "base.toml:10 [provider.\"big\"]");
    want("provider", "max_deliveries_per_connection", "50");
    want("provider", "max_message_rate", "\"50/s\"");
    want_by("provider", "max_message_rate", "over.toml:11 [provider.\"big\"]");
    want("provider", "additional_connection_limits",
         "{\"global\":100,\"second\":32,\"big-extra\":20,\"shaping-provider-big-s1-limit\":5}");
    want("provider", "additional_message_rate_throttles", "{\"shaping-provider-big-s1-rate\":\"120/s\"}");
    want("provider", "additional_source_selection_rates", "absent");

    /* one MX host elsewhere: KumoMTA requires every host to match, so no provider */
    resolve(sh, "a.test", "s1", "mx1.big.test,mx.other.test");
    want("mixed MX", "provider_name", "absent");
    want("mixed MX", "connection_limit", "10");

    /* the provider's source block, and its provider_source_selection_rate as a named selection rate */
    resolve(sh, "a.test", "warm", "mx1.big.test");
    want("provider source", "connection_limit", "2");
    want_by("provider source", "connection_limit", "base.toml:17 [provider.\"big\".sources.\"warm\"]");
    want("provider source", "additional_source_selection_rates",
         "{\"shaping-provider-big-warm-selection-rate\":\"500/d,max_burst=1\"}");
    want("provider source", "provider_source_selection_rate", "absent");
    want("provider source", "additional_connection_limits",
         "{\"global\":100,\"second\":32,\"big-extra\":20,\"shaping-provider-big-warm-limit\":5}");

    /* before its MX is known, an mx_rollup block applies to its own domain only */
    resolve(sh, "site.test", "", "mx.somewhere.test");
    want("rollup by name", "connection_limit", "6");
    resolve(sh, "alias.test", "", "mx1.big.test");
    want("rollup unknown site", "connection_limit", "8");

    /* ["site.test"] rolls up to big's MX: every domain of that site gets it, over the provider */
    char *err = NULL;
    CHECK(shaping_site_set(sh, "site.test", "mx1.big.test", &err) == 0, "site_set: %s", err ? err : "");
    resolve(sh, "alias.test", "", "mx1.big.test");
    want("site", "connection_limit", "6");
    want("site", "max_ready", "500");
    want("site", "max_deliveries_per_connection", "50");
    resolve(sh, "site.test", "", "mx.somewhere.test");
    want("site moved", "connection_limit", "10");
    /* the site's source block comes after the provider's source block */
    resolve(sh, "alias.test", "warm", "mx1.big.test");
    want("site source", "connection_limit", "3");
    want_by("site source", "connection_limit", "base.toml:25 [\"site.test\".sources.\"warm\"]");

    /* mx_rollup = false domain over the site; then the site's source (KumoMTA applies the site's
     * sources after the domain block), then the domain's source */
    resolve(sh, "exact.test", "warm", "mx1.big.test");
    want("domain", "enable_tls", "\"Required\"");
    want("domain", "connection_limit", "3");
    want("domain", "max_message_rate", "\"5/s\"");
    want_by("domain", "max_message_rate", "base.toml:33 [\"exact.test\".sources.\"warm\"]");
    want("domain", "max_ready", "500");
    resolve(sh, "exact.test", "", "mx1.big.test");
    want("domain over site", "connection_limit", "4");
    want_by("domain over site", "connection_limit", "base.toml:29 [\"exact.test\"]");
    resolve(sh, "exact.test", "", "mx.exact.test");
    want("domain alone", "connection_limit", "4");
    want("domain alone", "max_message_rate", "\"100/s\"");

    /* replace_base in the second file: nothing of the first file's block remains */
    resolve(sh, "replaced.test", "", "mx.replaced.test");
    want("replace_base", "connection_limit", "10");
    want("replace_base", "max_ready", "absent");
    want("replace_base", "max_deliveries_per_connection", "7");
    want_by("replace_base", "max_deliveries_per_connection", "over.toml:8 [\"replaced.test\"]");

    /* DomainSuffix matches the domain; HostName every MX host exactly; a route site's hosts lose their port */
    resolve(sh, "mail.named.test", "", "");
    want("DomainSuffix", "provider_name", "\"named\"");
    want("DomainSuffix", "smtp_port", "2525");
    resolve(sh, "x.test", "", "relay.named.test");
    want("HostName", "provider_name", "\"named\"");
    resolve(sh, "x.test", "", "route:relay.named.test:2525");
    want("route", "provider_name", "\"named\"");
    resolve(sh, "x.test", "", "relay2.named.test");
    want("HostName other", "provider_name", "absent");

    /* the typed configuration: node defaults underneath, the provider's named limits (a site of
     * big's that no domain block rolls up to) */
    resolve(sh, "a.test", "s1", "mx2.big.test");
    struct shaping_defaults def = {.connection_limit = 32, .max_deliveries_per_connection = 100, .max_ready = 1024,
                                   .idle_timeout_ms = 60000, .smtp_port = 25, .command_timeout_ms = 300000};
    struct shaping_path_config c;
    CHECK(shaping_path_config_from(res, NULL, &def, &c, &err) == 0, "typed");
    CHECK(c.connection_limit == 8 && c.max_ready == 1024 && c.idle_timeout_ms == 30000 &&
              c.max_message_rate.limit == 50 && strcmp(c.provider_name, "big") == 0 && c.n_limits == 4 &&
              strcmp(c.limits[3].name, "shaping-provider-big-s1-limit") == 0 && c.limits[3].limit == 5 &&
              c.n_throttles == 1 && c.throttles[0].rate.limit == 120 && c.throttles[0].rate.period_ms == 1000,
          "typed values");
    shaping_path_config_fini(&c);
}

static void test_rules(struct shaping *sh)
{
    const struct shaping_rule **r;
    /* KumoMTA's order: default, provider, site, domain; the replaced block's old rule is gone */
    size_t n = shaping_rules(sh, "exact.test", "", "mx1.big.test", &r);
    CHECK(n == 4, "rules for exact.test: %zu", n);
    if (n == 4) {
        CHECK(strcmp(r[0]->scope, "default") == 0 && r[0]->line == 48, "default rule first");
        CHECK(strcmp(r[1]->scope, "provider:big") == 0 && r[1]->threshold.limit == 2 &&
                  r[1]->threshold.period_ms == 3600000 && r[1]->actions[0].kind == SHAPING_ACTION_SET_CONFIG &&
                  strcmp(r[1]->actions[0].name, "connection_limit") == 0 &&
                  json_integer_value(r[1]->actions[0].value) == 1 && r[1]->duration_ms == 1800000,
              "provider rule");
        CHECK(strcmp(r[2]->scope, "domain:site.test") == 0 && r[2]->actions[0].kind == SHAPING_ACTION_SUSPEND_TENANT &&
                  r[2]->duration_ms == 300000,
              "site rule");
        CHECK(strcmp(r[3]->scope, "domain:exact.test") == 0 && r[3]->n_actions == 2 &&
                  r[3]->actions[0].kind == SHAPING_ACTION_BOUNCE &&
                  r[3]->actions[1].kind == SHAPING_ACTION_SET_DOMAIN_CONFIG && r[3]->match_internal &&
                  r[3]->threshold.limit == 0 && r[3]->duration_ms == 7200000,
              "domain rule");
        CHECK(shaping_rule_match(r[3], "550 domain rule hit", 19) == 0, "match");
        CHECK(shaping_rule_match(r[3], "550 other", 9) == -1, "no match");
    }
    CHECK(shaping_rules(sh, "replaced.test", "", "mx.replaced.test", &r) == 1, "replace_base drops the old rule");
    const struct shaping_rule *const *all;
    size_t total = shaping_rules_all(sh, &all);
    CHECK(total == 4, "all rules: %zu", total);
    for (size_t i = 0; i < total; i++)
        CHECK(all[i]->id == i, "rule ids are load order");

    json_t *doc = shaping_explain(sh, "exact.test", "warm", "mx1.big.test");
    CHECK(json_array_size(json_object_get(doc, "rules")) == 4 &&
              strcmp(json_string_value(json_object_get(doc, "provider_name")), "big") == 0 &&
              json_integer_value(json_object_get(json_object_get(doc, "config"), "connection_limit")) == 3 &&
              json_is_object(json_object_get(doc, "set_by")),
          "explain document");
    json_t *r1 = json_array_get(json_object_get(doc, "rules"), 1);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(r1, "trigger"), "Threshold")), "2/h") == 0 &&
              strcmp(json_string_value(json_object_get(r1, "duration")), "30m") == 0,
          "rule document");
    json_decref(doc);
}

static void test_rollup(struct shaping *sh)
{
    const char **d;
    size_t n = shaping_rollup_domains(sh, &d);
    CHECK(n == 2 && strcmp(d[0], "site.test") == 0 && strcmp(d[1], "site2.test") == 0, "rollup domains: %zu", n);
    CHECK(shaping_domain_no_rollup(sh, "exact.test") && !shaping_domain_no_rollup(sh, "site.test"), "no rollup");
    /* two domain blocks on one site: KumoMTA's ambiguity error */
    char *err = NULL;
    CHECK(shaping_site_set(sh, "site2.test", "mx1.big.test", &err) == -EEXIST && err &&
              strstr(err, "base.toml:45") && strstr(err, "site.test"),
          "same site: %s", err ? err : "-");
    free(err);
    err = NULL;
    CHECK(shaping_site_set(sh, "site2.test", "mx.site2.test", &err) == 0, "own site");
    CHECK(shaping_site_set(sh, "nosuch.test", "mx.x.test", &err) == -ENOENT, "no block");
    free(err);
    /* moving a block's site frees the old one */
    CHECK(shaping_site_set(sh, "site.test", "mx.elsewhere.test", &err) == 0 &&
              shaping_site_set(sh, "site2.test", "mx1.big.test", &err) == 0,
          "move");
    resolve(sh, "z.test", "", "mx1.big.test");
    want("moved site", "max_ready", "9");
}

int main(void)
{
    char *base = st_write("base.toml", base_toml), *over = st_write("over.toml", over_toml);
    struct shaping_diags d;
    struct shaping *sh = st_load(&d, base, over, NULL);
    CHECK(sh && d.n == 0, "load: %zu diagnostics", d.n);
    if (d.n) {
        char *t = shaping_diags_text(&d);
        fprintf(stderr, "%s", t);
        free(t);
    }
    if (sh) {
        test_scopes(sh);
        test_rules(sh);
        test_rollup(sh);
    }
    json_decref(res);
    json_decref(by);
    shaping_free(sh);
    shaping_diags_fini(&d);
    free(base);
    free(over);
    CHECK_EXIT();
}
