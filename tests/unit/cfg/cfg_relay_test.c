/*
 * cfg_relay_test - relay_networks, relay_domains and the tls key pair in ringmail.toml (cfg/cfg.c)
 *
 * relay_networks parsing through a load and cfg_value_cidr_match() (v4, v6, IPv4-mapped, /0, /32, /128),
 * relay_domains, and the tls certificate/private_key pair across loads.
 * Exit 0 pass, 1 fail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"
#include "base/mem.h"
#include "tests/lib/check.h"
#include "tests/unit/cfg/cfg_test.h"

/* ---- relay_networks: parsing through a load, then matching ---- */

struct cidr_case {
    const char *text;
    const char *why; /* NULL: valid */
    int family;
    const char *addr; /* expected network after parsing (inet_pton form) */
    unsigned prefix;
};

static void test_cidr_parse(void)
{
    static const char bad_net[] = "is not an IPv4 or IPv6 network (like \"10.0.0.0/8\" or \"2001:db8::/32\")";
    static const struct cidr_case cases[] = {
        {"127.0.0.0/8", NULL, AF_INET, "127.0.0.0", 8},
        {"10.1.2.3", NULL, AF_INET, "10.1.2.3", 32},
        {"10.1.2.3/32", NULL, AF_INET, "10.1.2.3", 32},
        {"0.0.0.0/0", NULL, AF_INET, "0.0.0.0", 0},
        {"192.168.128.0/17", NULL, AF_INET, "192.168.128.0", 17},
        {"::1", NULL, AF_INET6, "::1", 128},
        {"::1/128", NULL, AF_INET6, "::1", 128},
        {"::/0", NULL, AF_INET6, "::", 0},
        {"2001:DB8::/32", NULL, AF_INET6, "2001:db8::", 32},
        {"fe80::/10", NULL, AF_INET6, "fe80::", 10},
        {"::ffff:10.0.0.0/104", NULL, AF_INET6, "::ffff:10.0.0.0", 104},
        {"10.0.0.0/33", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"::1/129", "has a bad prefix length (0..128)", 0, NULL, 0},
        {"10.0.0.0/", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/-1", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/+8", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/08", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/8/8", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/8 ", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/1000", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"::/00", "has a bad prefix length (0..128)", 0, NULL, 0},
        {"10.1.0.0/8", "has bits set after the prefix (the network is \"10.0.0.0/8\")", 0, NULL, 0},
        {"2001:db8::1/32", "has bits set after the prefix (the network is \"2001:db8::/32\")", 0, NULL, 0},
        {"0.0.0.1/0", "has bits set after the prefix (the network is \"0.0.0.0/0\")", 0, NULL, 0},
        {"", bad_net, 0, NULL, 0},
        {"/8", bad_net, 0, NULL, 0},
        {"garbage", bad_net, 0, NULL, 0},
        {"localhost", bad_net, 0, NULL, 0},
        {"256.0.0.0/8", bad_net, 0, NULL, 0},
        {"10.0.0/8", bad_net, 0, NULL, 0},
        {"010.0.0.0/8", bad_net, 0, NULL, 0},
        {" 10.0.0.0/8", bad_net, 0, NULL, 0},
        {"fe80::1%eth0", bad_net, 0, NULL, 0},
        {"[::1]/128", bad_net, 0, NULL, 0},
        {"1:2:3:4:5:6:7:8:9/64", bad_net, 0, NULL, 0},
        {"::1::2", bad_net, 0, NULL, 0},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1/1", bad_net, 0, NULL, 0},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL, *want = NULL;
        char *text = xasprintf("[ingress]\nrelay_networks = [\"%s\"]\n", cases[i].text);
        cfg_default(&c);
        int rc = cfg_load_text(&c, text, strlen(text), "n.toml", &err);
        if (!cases[i].why) {
            uint8_t want_addr[16] = {0};
            inet_pton(cases[i].family, cases[i].addr, want_addr);
            CHECK(rc == 0 && c.n_relay_networks == 1, "network \"%s\" refused: %s", cases[i].text, nz(err));
            if (rc == 0 && c.n_relay_networks == 1)
                CHECK(c.relay_networks[0].family == cases[i].family &&
                          c.relay_networks[0].prefix == cases[i].prefix &&
                          memcmp(c.relay_networks[0].addr, want_addr, 16) == 0,
                      "network \"%s\": family %d prefix %u", cases[i].text, c.relay_networks[0].family,
                      c.relay_networks[0].prefix);
        } else {
            want = xasprintf("n.toml:2: ingress.relay_networks[0]: \"%s\" %s\n", cases[i].text, cases[i].why);
            CHECK(rc == -EINVAL && err && strcmp(err, want) == 0, "network \"%s\":\n--- got\n%s--- want\n%s",
                  cases[i].text, nz(err), want);
            CHECK(c.n_relay_networks == 2, "network \"%s\": failed load changed the default", cases[i].text);
        }
        cfg_fini(&c);
        free(want);
        free(err);
        free(text);
    }

    /* an empty list is allowed and replaces the default; 64 is the most, reported at the 65th */
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(load_str(&c, "[ingress]\nrelay_networks = []\n", "n.toml", &err) == 0 && c.n_relay_networks == 0,
          "empty relay_networks: %s, n %zu", nz(err), c.n_relay_networks);
    free(err);
    err = NULL;
    size_t cap = 64 * 24 + 64, len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "[ingress]\nrelay_networks = [\n");
    for (int i = 0; i < 65; i++)
        len += (size_t)snprintf(text + len, cap - len, "\"10.0.%d.0/24\",\n", i);
    len += (size_t)snprintf(text + len, cap - len, "]\n");
    int rc = cfg_load_text(&c, text, len, "n.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, "n.toml:67: ingress.relay_networks: at most 64 networks are allowed, "
                                               "found 65\n") == 0,
          "65 networks: rc %d err %s", rc, nz(err));
    CHECK(c.n_relay_networks == 0, "65 networks: failed load changed the list");
    free(err);
    err = NULL;
    /* 64 load, and a later file's list replaces the earlier one as a whole */
    char *end = strstr(text, "\"10.0.64.0/24\",\n");
    memcpy(end, "]\n", 3);
    rc = cfg_load_text(&c, text, strlen(text), "n.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 64 && c.relay_networks[63].addr[2] == 63, "64 networks: rc %d err %s",
          rc, nz(err));
    free(err);
    err = NULL;
    rc = load_str(&c, "[ingress]\nrelay_networks = [\"::1\"]\n", "n.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 1 && c.relay_networks[0].family == AF_INET6, "replace: rc %d n %zu", rc,
          c.n_relay_networks);
    free(err);
    free(text);
    cfg_fini(&c);
}

struct match_case {
    const char *addr;
    bool want;
};

static bool match_text(const struct cfg *c, const char *text)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, text, a) == 1)
        return cfg_value_cidr_match(c->relay_networks, c->n_relay_networks, AF_INET, a);
    if (inet_pton(AF_INET6, text, a) == 1)
        return cfg_value_cidr_match(c->relay_networks, c->n_relay_networks, AF_INET6, a);
    FAIL("test address %s does not parse", text);
    return false;
}

static void test_cidr_match(void)
{
    static const char nets[] = "[ingress]\nrelay_networks = [\"10.0.0.0/8\", \"192.168.1.7\", \"172.16.0.0/12\","
                               " \"2001:db8::/32\", \"::1/128\", \"fe80::/10\", \"100.64.0.0/10\"]\n";
    static const struct match_case cases[] = {
        {"10.0.0.0", true},
        {"10.255.255.255", true},
        {"11.0.0.0", false},
        {"9.255.255.255", false},
        {"192.168.1.7", true},       /* a bare address is a /32 */
        {"192.168.1.6", false},
        {"192.168.1.8", false},
        {"172.31.255.255", true},    /* /12 ends inside a byte */
        {"172.32.0.0", false},
        {"172.15.255.255", false},
        {"100.127.0.1", true},       /* /10 */
        {"100.128.0.1", false},
        {"127.0.0.1", false},        /* the default was replaced */
        {"::ffff:10.1.2.3", true},   /* IPv4-mapped matches IPv4 networks */
        {"::ffff:192.168.1.7", true},
        {"::ffff:192.168.1.8", false},
        {"::ffff:11.0.0.1", false},
        {"::10.1.2.3", false},       /* IPv4-compatible is not mapped */
        {"::ffff:0:10.1.2.3", false}, /* nor is the SIIT form */
        {"2001:db8::1", true},
        {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:db9::", false},
        {"2001:db7:ffff::", false},
        {"::1", true},
        {"::2", false},
        {"::", false},
        {"fe80::1", true},
        {"febf:ffff::1", true},
        {"fec0::1", false},
    };
    struct cfg c;
    char *err = NULL;

    cfg_default(&c);
    /* the default: loopback of both families, also as an IPv4-mapped address */
    CHECK(match_text(&c, "127.0.0.1") && match_text(&c, "127.255.0.9") && match_text(&c, "::1") &&
              match_text(&c, "::ffff:127.0.0.1"),
          "default relay_networks miss loopback");
    CHECK(!match_text(&c, "128.0.0.1") && !match_text(&c, "::2") && !match_text(&c, "10.0.0.1"),
          "default relay_networks match too much");
    int rc = cfg_load_text(&c, nets, strlen(nets), "m.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 7, "match networks: rc %d err %s", rc, nz(err));
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        CHECK(match_text(&c, cases[i].addr) == cases[i].want, "match %s: want %d", cases[i].addr, cases[i].want);

    /* /0 of each family; an IPv4 client is also compared as ::ffff:a.b.c.d with IPv6 networks */
    struct cfg_cidr any4 = {.family = AF_INET, .prefix = 0};
    struct cfg_cidr any6 = {.family = AF_INET6, .prefix = 0};
    struct cfg_cidr mapped96 = {.family = AF_INET6, .addr = {[10] = 0xff, [11] = 0xff}, .prefix = 96};
    struct cfg_cidr host4 = {.family = AF_INET, .addr = {203, 0, 113, 5}, .prefix = 32};
    struct cfg_cidr host6 = {.family = AF_INET6, .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, .prefix = 128};
    uint8_t v4[4] = {203, 0, 113, 5}, v4b[4] = {203, 0, 113, 4};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, v6b[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 4};
    uint8_t m4[16] = {[10] = 0xff, [11] = 0xff, [12] = 203, [13] = 0, [14] = 113, [15] = 5};
    CHECK(cfg_value_cidr_match(&any4, 1, AF_INET, v4) && cfg_value_cidr_match(&any4, 1, AF_INET, v4b), "0.0.0.0/0 v4");
    CHECK(!cfg_value_cidr_match(&any4, 1, AF_INET6, v6), "0.0.0.0/0 matches an IPv6 address");
    CHECK(cfg_value_cidr_match(&any4, 1, AF_INET6, m4), "0.0.0.0/0 misses a mapped address");
    CHECK(cfg_value_cidr_match(&any6, 1, AF_INET6, v6) && cfg_value_cidr_match(&any6, 1, AF_INET, v4), "::/0");
    CHECK(cfg_value_cidr_match(&mapped96, 1, AF_INET, v4) && !cfg_value_cidr_match(&mapped96, 1, AF_INET6, v6),
          "::ffff:0:0/96");
    CHECK(cfg_value_cidr_match(&host4, 1, AF_INET, v4) && !cfg_value_cidr_match(&host4, 1, AF_INET, v4b), "/32");
    CHECK(cfg_value_cidr_match(&host4, 1, AF_INET6, m4), "/32 with a mapped address");
    CHECK(cfg_value_cidr_match(&host6, 1, AF_INET6, v6) && !cfg_value_cidr_match(&host6, 1, AF_INET6, v6b), "/128");
    CHECK(!cfg_value_cidr_match(&host6, 1, AF_INET, v4), "/128 matches an IPv4 address");
    /* what matches nothing */
    CHECK(!cfg_value_cidr_match(&any4, 0, AF_INET, v4), "n = 0 matched");
    CHECK(!cfg_value_cidr_match(NULL, 3, AF_INET, v4), "NULL nets matched");
    CHECK(!cfg_value_cidr_match(&any4, 1, AF_INET, NULL), "NULL addr matched");
    CHECK(!cfg_value_cidr_match(&any4, 1, AF_UNIX, v4) && !cfg_value_cidr_match(&any6, 1, AF_UNSPEC, v6), "other family matched");
    struct cfg_cidr broken[2] = {{.family = AF_INET, .prefix = 200}, {.family = AF_INET6, .prefix = 255}};
    CHECK(!cfg_value_cidr_match(broken, 2, AF_INET, v4) && !cfg_value_cidr_match(broken, 2, AF_INET6, v6),
          "an out-of-range prefix matched");
    cfg_fini(&c);
    free(err);
}

struct domain_case {
    const char *text;
    const char *want; /* stored form, or the error after the quoted value */
    bool ok;
};

static void test_relay_domains(void)
{
    static const struct domain_case cases[] = {
        {"example.com", "example.com", true},
        {"Example.COM", "example.com", true},
        {"localhost", "localhost", true},
        {"xn--bcher-kva.example", "xn--bcher-kva.example", true},
        {"a-b.c-d.example", "a-b.c-d.example", true},
        {"example.com.", "ends with a dot (write it without)", false},
        {"EXAMPLE.com.", "ends with a dot (write it without)", false},
        {".", "is not a valid domain name", false},
        {"", "is not a valid domain name", false},
        {"example..com", "is not a valid domain name", false},
        {"example.com..", "is not a valid domain name", false},
        {".example.com", "is not a valid domain name", false},
        {"*.example.com", "is not a valid domain name", false},
        {"-a.example", "is not a valid domain name", false},
        {"a-.example", "is not a valid domain name", false},
        {"ex_ample.com", "is not a valid domain name", false},
        {"exa mple.com", "is not a valid domain name", false},
        {"[192.0.2.1]", "is not a valid domain name", false},
        {"192.0.2.1", "is not a valid domain name", false},
        {"user@example.com", "is not a valid domain name", false},
        {"example.com\\r\\n", "is not a valid domain name", false},
        {"b\\u00fccher.example", "is not a valid domain name", false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", "is not a valid domain name",
         false},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL, *want = NULL;
        char *text = xasprintf("[ingress]\nrelay_domains = [\"%s\"]\n", cases[i].text);
        cfg_default(&c);
        int rc = cfg_load_text(&c, text, strlen(text), "d.toml", &err);
        if (cases[i].ok) {
            CHECK(rc == 0 && c.n_relay_domains == 1 && strcmp(nz(c.relay_domains[0]), cases[i].want) == 0,
                  "domain \"%s\": rc %d stored %s err %s", cases[i].text, rc,
                  c.n_relay_domains ? nz(c.relay_domains[0]) : "-", nz(err));
        } else {
            CHECK(rc == -EINVAL && err && strncmp(err, "d.toml:2: ingress.relay_domains[0]: \"", 37) == 0 &&
                      strstr(err, cases[i].want) && strchr(err, '\n') == err + strlen(err) - 1,
                  "domain \"%s\": rc %d err %s", cases[i].text, rc, nz(err));
            CHECK(c.n_relay_domains == 0 && c.relay_domains == NULL, "domain \"%s\": failed load stored it",
                  cases[i].text);
        }
        cfg_fini(&c);
        free(want);
        free(err);
        free(text);
    }

    /* exact text with the value echoed; several at once; a later list replaces the earlier one */
    static const char many[] =
        "[ingress]\nrelay_domains = [\n  \"a.example\",\n  \"b.example.\",\n  7,\n  \"c d\",\n]\n";
    static const char want[] = "d.toml:4: ingress.relay_domains[1]: \"b.example.\" ends with a dot (write it without)\n"
                               "d.toml:5: ingress.relay_domains[2]: expected a string, got integer\n"
                               "d.toml:6: ingress.relay_domains[3]: \"c d\" is not a valid domain name\n";
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc = cfg_load_text(&c, many, strlen(many), "d.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, want) == 0, "domains:\n--- got\n%s--- want\n%s", nz(err), want);
    free(err);
    err = NULL;
    static const char two[] = "[ingress]\nrelay_domains = [\"A.example\", \"b.EXAMPLE\"]\n";
    rc = cfg_load_text(&c, two, strlen(two), "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 2 && strcmp(nz(c.relay_domains[0]), "a.example") == 0 &&
              strcmp(nz(c.relay_domains[1]), "b.example") == 0,
          "two domains: rc %d err %s", rc, nz(err));
    free(err);
    err = NULL;
    /* a load that does not mention the key keeps the list; a failed load too */
    rc = load_str(&c, "[ingress]\nworkers = 2\n", "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 2, "unrelated load dropped relay_domains");
    rc = load_str(&c, "[ingress]\nrelay_domains = [\"x.example\"]\nworkers = 0\n", "d.toml", &err);
    CHECK(rc == -EINVAL && c.n_relay_domains == 2 && strcmp(nz(c.relay_domains[1]), "b.example") == 0,
          "failed load changed relay_domains");
    free(err);
    err = NULL;
    rc = load_str(&c, "[ingress]\nrelay_domains = []\n", "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 0 && c.relay_domains == NULL, "empty list: rc %d n %zu", rc,
          c.n_relay_domains);
    free(err);
    cfg_fini(&c);
}

/* tls.certificate / private_key across loads: the pair is checked on the result, at a key this file wrote */
static void test_tls_pair(void)
{
    static const char both[] = "[tls]\ncertificate = \"/c.pem\"\nprivate_key = \"/k.pem\"\n";
    static const char clear[] = "[tls]\n\ncertificate = \"\"\n";
    static const char other[] = "[tls]\nenabled = false\n";
    struct cfg c;
    char *err = NULL;

    cfg_default(&c);
    int rc = cfg_load_text(&c, both, strlen(both), "a.toml", &err);
    CHECK(rc == 0 && strcmp(nz(c.tls_certificate), "/c.pem") == 0 && strcmp(nz(c.tls_private_key), "/k.pem") == 0,
          "tls pair: rc %d err %s", rc, nz(err));
    free(err);
    err = NULL;
    rc = cfg_load_text(&c, clear, strlen(clear), "b.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, "b.toml:3: tls.certificate: certificate and private_key must be set "
                                               "together (or both left empty for a generated self-signed "
                                               "certificate)\n") == 0,
          "clearing one of the pair: rc %d err %s", rc, nz(err));
    CHECK(strcmp(nz(c.tls_certificate), "/c.pem") == 0, "failed load cleared the certificate");
    free(err);
    err = NULL;
    rc = cfg_load_text(&c, other, strlen(other), "c.toml", &err);
    CHECK(rc == 0 && !c.tls_enabled && strcmp(nz(c.tls_private_key), "/k.pem") == 0, "tls.enabled load: %s",
          nz(err));
    free(err);
    cfg_fini(&c);
}

/* ---- [admin]: trusted_networks (the same list syntax, its own field), token_file, socket, group ---- */

static void test_admin_keys(void)
{
    static const struct {
        const char *text;
        const char *err; /* NULL: loads */
        size_t n_trusted, n_relay;
    } cases[] = {
        {"", NULL, 2, 2},
        {"[admin]\ntrusted_networks = []\n", NULL, 0, 2},
        {"[admin]\ntrusted_networks = [\"10.0.0.0/8\", \"::1\", \"192.0.2.1\"]\n", NULL, 3, 2},
        {"[ingress]\nrelay_networks = []\n[admin]\ntrusted_networks = [\"10.0.0.0/8\"]\n", NULL, 1, 0},
        {"[admin]\ntrusted_networks = [\"10.0.0.0/33\"]\n",
         "a.toml:2: admin.trusted_networks[0]: \"10.0.0.0/33\" has a bad prefix length (0..32)\n", 2, 2},
        {"[admin]\ntrusted_networks = \"127.0.0.1\"\n", "a.toml:2: admin.trusted_networks: expected an array", 2,
         2},
        {"[admin]\ngroup = \"-x\"\n", "a.toml:2: admin.group: \"-x\" is not a valid group name", 2, 2},
        {"[admin]\ntoken_file = \"/etc/ringmail/admin.token\"\nsocket = \"off\"\ngroup = \"ringadm\"\n", NULL, 2,
         2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = load_str(&c, cases[i].text, "a.toml", &err);
        if (!cases[i].err)
            CHECK(rc == 0, "admin case %zu: %s", i, nz(err));
        else
            CHECK(rc == -EINVAL && err && strncmp(err, cases[i].err, strlen(cases[i].err)) == 0,
                  "admin case %zu: rc %d err %s", i, rc, nz(err));
        CHECK(c.n_admin_trusted == cases[i].n_trusted && c.n_relay_networks == cases[i].n_relay,
              "admin case %zu: %zu trusted, %zu relay", i, c.n_admin_trusted, c.n_relay_networks);
        free(err);
        cfg_fini(&c);
    }
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(strcmp(c.admin_token_file, "") == 0 && strcmp(c.admin_socket, "") == 0 && strcmp(c.admin_group, "") == 0,
          "admin defaults");
    CHECK(load_str(&c, cases[7].text, "a.toml", &err) == 0 && strcmp(c.admin_socket, "off") == 0 &&
              strcmp(c.admin_group, "ringadm") == 0 && strcmp(c.admin_token_file, "/etc/ringmail/admin.token") == 0,
          "admin strings: %s", nz(err));
    free(err);
    cfg_fini(&c);
}

int main(void)
{
    test_cidr_parse();
    test_cidr_match();
    test_admin_keys();
    test_relay_domains();
    test_tls_pair();
    CHECK_EXIT();
}
