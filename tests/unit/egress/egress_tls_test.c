/*
 * egress_tls_test - a worker's outbound TLS state: enable_tls to connection plans (table), the
 * broken-TLS memory (expiry, Required ignoring it), the session cache keys and slots, and context
 * errors from [egress] keys
 *
 * The handshakes themselves (verification, resumption at a real receiver, failures) run end to end in
 * tests/e2e/egress_tls_test.py.
 */
#include <stdlib.h>
#include <string.h>

#include "common/proto_path.h"
#include "egress/egress_tls.h"
#include "tests/lib/check.h"

struct plan_case {
    unsigned enable_tls;
    uint64_t remember_ms;
    bool broken; /* the site is remembered as broken */
    enum egress_smtp_tls mode;
    bool verify, skip;
    uint64_t remember_out;
};

static const struct plan_case plan_cases[] = {
    {PROTO_PATH_TLS_OPPORTUNISTIC, 0, false, EGRESS_SMTP_TLS_TRY, true, false, 0},
    {PROTO_PATH_TLS_OPPORTUNISTIC, 5000, false, EGRESS_SMTP_TLS_TRY, true, false, 5000},
    {PROTO_PATH_TLS_OPPORTUNISTIC, 5000, true, EGRESS_SMTP_TLS_NONE, false, true, 0},
    /* without remember_broken_tls on the path, an entry left by another path is not consulted */
    {PROTO_PATH_TLS_OPPORTUNISTIC, 0, true, EGRESS_SMTP_TLS_TRY, true, false, 0},
    {PROTO_PATH_TLS_OPPORTUNISTIC_INSECURE, 0, false, EGRESS_SMTP_TLS_TRY, false, false, 0},
    {PROTO_PATH_TLS_OPPORTUNISTIC_INSECURE, 10, true, EGRESS_SMTP_TLS_NONE, false, true, 0},
    {PROTO_PATH_TLS_REQUIRED, 0, false, EGRESS_SMTP_TLS_REQUIRE, true, false, 0},
    /* Required ignores remember_broken_tls (KumoMTA): never plaintext */
    {PROTO_PATH_TLS_REQUIRED, 5000, true, EGRESS_SMTP_TLS_REQUIRE, true, false, 0},
    {PROTO_PATH_TLS_REQUIRED_INSECURE, 5000, true, EGRESS_SMTP_TLS_REQUIRE, false, false, 0},
    {PROTO_PATH_TLS_DISABLED, 0, false, EGRESS_SMTP_TLS_NONE, false, false, 0},
    {PROTO_PATH_TLS_DISABLED, 5000, true, EGRESS_SMTP_TLS_NONE, false, false, 0},
};

static void test_plans(struct egress_tls *t)
{
    for (size_t i = 0; i < sizeof(plan_cases) / sizeof(plan_cases[0]); i++) {
        const struct plan_case *c = &plan_cases[i];
        struct egress_tls_plan p;
        const char *site = c->broken ? "broken.site" : "fine.site";
        egress_tls_plan(t, c->enable_tls, c->remember_ms, site, 1000, &p);
        CHECK(p.mode == c->mode && p.verify == c->verify && p.broken_skip == c->skip &&
                  p.remember_broken_ms == c->remember_out,
              "case %zu (%s): mode %d verify %d skip %d remember %llu", i, proto_path_tls_name(c->enable_tls),
              p.mode, p.verify, p.broken_skip, (unsigned long long)p.remember_broken_ms);
        CHECK(egress_tls_ctx(t, p.verify) != NULL, "case %zu: no context", i);
    }
}

static void test_broken(struct egress_tls *t)
{
    CHECK(egress_tls_broken_get(t, "broken.site", 1000), "remembered");
    CHECK(!egress_tls_broken_get(t, "broken.site", 2000), "remembered past its time");
    CHECK(!egress_tls_broken_get(t, "other.site", 1000), "another site remembered");
    egress_tls_broken_set(t, "broken.site", 3000);
    CHECK(egress_tls_broken_get(t, "broken.site", 2500), "renewed");
    /* many sites: bounded table, every lookup answers for its own site only */
    char name[32];
    for (int i = 0; i < 3 * EGRESS_TLS_BROKEN; i++) {
        snprintf(name, sizeof(name), "s%d.example", i);
        egress_tls_broken_set(t, name, 9000);
    }
    snprintf(name, sizeof(name), "s%d.example", 3 * EGRESS_TLS_BROKEN - 1);
    CHECK(egress_tls_broken_get(t, name, 1000), "the newest entry lost");
    CHECK(!egress_tls_broken_get(t, "never.example", 1000), "a site never set");
}

static void test_sessions(struct egress_tls *t)
{
    char *kv = egress_tls_session_key(true, "mx.example.", 25);
    char *ki = egress_tls_session_key(false, "mx.example", 25);
    char *kp = egress_tls_session_key(true, "mx.example", 587);
    CHECK(strcmp(kv, "v:mx.example:25") == 0, "key %s", kv);
    CHECK(strcmp(kv, ki) != 0 && strcmp(kv, kp) != 0, "verifying and insecure sessions share a key");
    CHECK(egress_tls_session_get(t, kv) == NULL, "a session out of nothing");
    /* a slot with no session keeps the key only; NULL put is allowed and gives nothing back */
    egress_tls_session_put(t, kv, NULL);
    CHECK(egress_tls_session_get(t, kv) == NULL, "NULL session returned as one");
    free(kv);
    free(ki);
    free(kp);
}

int main(void)
{
    struct cfg cfg;
    struct egress_tls t;
    char *err = NULL;

    cfg_default(&cfg);
    /* the system store may be missing in a minimal container: a CA file of our own is not needed for the
     * plan and cache checks, so a failing system store skips only the context check */
    if (egress_tls_init(&t, &cfg, &err) < 0) {
        free(err);
        cfg_fini(&cfg);
        SKIP("no system CA store to build the verifying context");
    }
    egress_tls_broken_set(&t, "broken.site", 1500);
    test_plans(&t);
    test_broken(&t);
    test_sessions(&t);
    egress_tls_fini(&t);

    /* errors: a CA file that is not there, a client certificate without its key file */
    free(cfg.egress_tls_ca_file);
    cfg.egress_tls_ca_file = strdup("/nonexistent/ca.pem");
    CHECK(egress_tls_init(&t, &cfg, &err) < 0 && err && strstr(err, "/nonexistent/ca.pem"), "missing CA file: %s",
          err ? err : "accepted");
    free(err);
    err = NULL;
    free(cfg.egress_tls_ca_file);
    cfg.egress_tls_ca_file = strdup("");
    free(cfg.egress_tls_client_certificate);
    cfg.egress_tls_client_certificate = strdup("/nonexistent/client.pem");
    free(cfg.egress_tls_client_private_key);
    cfg.egress_tls_client_private_key = strdup("/nonexistent/client.key");
    CHECK(egress_tls_init(&t, &cfg, &err) < 0 && err && strstr(err, "client certificate"),
          "missing client certificate: %s", err ? err : "accepted");
    free(err);
    cfg_fini(&cfg);
    return check_failures ? 1 : 0;
}
