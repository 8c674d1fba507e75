/*
 * shaping_value_test - rates, humantime durations, connection limits, the option table, and the
 * typed path configuration (node defaults underneath, SetConfig overrides on top)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"
#include "policy/shaping_int.h"

static void test_rates(void)
{
    static const struct {
        const char *text;
        bool ok;
        uint64_t limit, period_ms, burst;
    } cases[] = {
        {"100/min", true, 100, 60000, 0},
        {"5/s", true, 5, 1000, 0},
        {"1/minute", true, 1, 60000, 0},
        {"10/minute", true, 10, 60000, 0},
        {"10000/h", true, 10000, 3600000, 0},
        {"100/hr", true, 100, 3600000, 0},
        {"2/hr", true, 2, 3600000, 0},
        {"500/d,max_burst=1", true, 500, 86400000, 1},
        {"120/second", true, 120, 1000, 0},
        {"3/hour", true, 3, 3600000, 0},
        {"7/day", true, 7, 86400000, 0},
        {"local:100/s", true, 100, 1000, 0},
        {"1,000/s", true, 1000, 1000, 0},
        {"100", false, 0, 0, 0},
        {"0/s", false, 0, 0, 0},
        {"-1/s", false, 0, 0, 0},
        {"10/fortnight", false, 0, 0, 0},
        {"10/s,burst=2", false, 0, 0, 0},
        {"10/s,max_burst=0", false, 0, 0, 0},
        {"/s", false, 0, 0, 0},
        {"", false, 0, 0, 0},
        {"99999999999999999999999/s", false, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shaping_rate r;
        const char *why = NULL;
        bool ok = shaping_rate_parse(cases[i].text, &r, &why);
        CHECK(ok == cases[i].ok, "rate \"%s\": %s", cases[i].text, ok ? "accepted" : why);
        if (ok && cases[i].ok)
            CHECK(r.limit == cases[i].limit && r.period_ms == cases[i].period_ms && r.max_burst == cases[i].burst,
                  "rate \"%s\": %llu/%llums burst %llu", cases[i].text, (unsigned long long)r.limit,
                  (unsigned long long)r.period_ms, (unsigned long long)r.max_burst);
        if (!ok)
            CHECK(why && *why, "rate \"%s\": no reason", cases[i].text);
    }
    char buf[64];
    struct shaping_rate r = {500, 86400000, 1};
    CHECK(strcmp(shaping_rate_text(&r, buf, sizeof(buf)), "500/d,max_burst=1") == 0, "%s", buf);
    r = (struct shaping_rate){2, 3600000, 0};
    CHECK(strcmp(shaping_rate_text(&r, buf, sizeof(buf)), "2/h") == 0, "%s", buf);
}

static void test_durations(void)
{
    static const struct {
        const char *text;
        bool ok;
        uint64_t ms;
    } cases[] = {
        {"60s", true, 60000},
        {"30m", true, 1800000},
        {"90m", true, 5400000},
        {"3 days", true, 259200000},
        {"1 hour", true, 3600000},
        {"1 hours", true, 3600000},
        {"2 hour", true, 7200000},
        {"30 minutes", true, 1800000},
        {"15 minutes", true, 900000},
        {"2h", true, 7200000},
        {"1hr", true, 3600000},
        {"1h 30m", true, 5400000},
        {"250ms", true, 250},
        {"1 week", true, 604800000},
        {"30 days", true, 2592000000},
        {"", false, 0},
        {"60", false, 0},
        {"s", false, 0},
        {"5 parsecs", false, 0},
        {"-5s", false, 0},
        {"1.5h", false, 0},
        {"100000 days", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 0;
        bool ok = shaping_duration_parse(cases[i].text, &ms);
        CHECK(ok == cases[i].ok, "duration \"%s\": %s", cases[i].text, ok ? "accepted" : "refused");
        if (ok && cases[i].ok)
            CHECK(ms == cases[i].ms, "duration \"%s\": %llu ms, want %llu", cases[i].text, (unsigned long long)ms,
                  (unsigned long long)cases[i].ms);
    }
}

static void test_limits_and_table(void)
{
    static const struct {
        const char *json;
        bool ok;
        uint64_t v;
    } cases[] = {
        {"5", true, 5},       {"\"local:5\"", true, 5}, {"\"1,000\"", true, 1000}, {"\"1_000\"", true, 1000},
        {"-1", false, 0},     {"\"five\"", false, 0},   {"1.5", false, 0},         {"\"local:\"", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        uint64_t v = 0;
        bool ok = shaping_limit_parse(j, &v);
        CHECK(ok == cases[i].ok && (!ok || v == cases[i].v), "limit %s: %d %llu", cases[i].json, ok,
              (unsigned long long)v);
        json_decref(j);
    }
    /* the table is sorted (bsearch), and says what ringmail enforces */
    const struct shaping_opt *t;
    size_t n = shaping_opts(&t);
    for (size_t i = 1; i < n; i++)
        CHECK(strcmp(t[i - 1].name, t[i].name) < 0, "option table not sorted at %s", t[i].name);
    static const char *const enforced[] = {"connection_limit", "max_connection_rate", "max_message_rate",
                                           "max_deliveries_per_connection", "max_recipients_per_batch", "max_ready",
                                           "additional_connection_limits", "additional_message_rate_throttles",
                                           "additional_source_selection_rates", "source_selection_rate",
                                           "consecutive_connection_failures_before_delay", "idle_timeout",
                                           "enable_tls", "smtp_port", "prohibited_hosts", "skip_hosts",
                                           "ehlo_domain", "connect_timeout", "data_dot_timeout", "enable_mta_sts"};
    for (size_t i = 0; i < sizeof(enforced) / sizeof(enforced[0]); i++) {
        const struct shaping_opt *o = shaping_opt_find(enforced[i]);
        CHECK(o && o->enforced, "%s should be enforced", enforced[i]);
    }
    static const char *const ignored[] = {"system_shutdown_timeout", "enable_dane", "use_lmtp",
                                          "tls_prefer_openssl", "reconnect_strategy"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        const struct shaping_opt *o = shaping_opt_find(ignored[i]);
        CHECK(o && !o->enforced, "%s should be known and ignored", ignored[i]);
    }
    CHECK(!shaping_opt_find("connection_limits"), "a misspelt option is unknown");
}

static void test_path_config(void)
{
    struct shaping_defaults def = {.connection_limit = 32, .max_deliveries_per_connection = 100,
                                   .max_recipients_per_batch = 50, .max_ready = 1024,
                                   .connect_timeout_ms = 60000, .banner_timeout_ms = 60000,
                                   .command_timeout_ms = 300000, .data_timeout_ms = 600000,
                                   .idle_timeout_ms = 60000, .smtp_port = 25};
    struct shaping_path_config c;
    char *err = NULL;

    /* nothing resolved: the node's [egress] values */
    CHECK(shaping_path_config_from(NULL, NULL, &def, &c, &err) == 0, "empty");
    CHECK(c.connection_limit == 32 && c.max_deliveries_per_connection == 100 && c.max_recipients_per_batch == 50 &&
              c.max_ready == 1024 && c.idle_timeout_ms == 60000 && c.data_dot_timeout_ms == 600000 &&
              c.ehlo_timeout_ms == 300000 && c.smtp_port == 25 && c.enable_tls == SHAPING_TLS_OPPORTUNISTIC &&
              c.max_message_rate.limit == 0 && c.n_limits == 0 && strcmp(c.provider_name, "") == 0,
          "defaults");
    shaping_path_config_fini(&c);

    json_t *r = json_loads("{\"connection_limit\": \"local:5\", \"max_message_rate\": \"100/s\","
                           "\"max_connection_rate\": \"10/min\", \"idle_timeout\": \"30s\", \"data_timeout\": 45,"
                           "\"enable_tls\": \"RequiredInsecure\", \"smtp_port\": 2525,"
                           "\"prohibited_hosts\": [\"127.0.0.0/8\", \"::1\"], \"ehlo_domain\": \"mx.example\","
                           "\"provider_name\": \"google\", \"system_shutdown_timeout\": \"30s\","
                           "\"source_selection_rate\": \"500/d,max_burst=1\","
                           "\"additional_connection_limits\": {\"shaping-provider-google-s1-limit\": 5, \"g\": \"local:7\"},"
                           "\"additional_message_rate_throttles\": {\"t\": \"10/s\"}}",
                           0, NULL);
    CHECK(shaping_path_config_from(r, NULL, &def, &c, &err) == 0, "resolved: %s", err ? err : "");
    CHECK(c.connection_limit == 5 && c.max_message_rate.limit == 100 && c.max_message_rate.period_ms == 1000 &&
              c.max_connection_rate.limit == 10 && c.max_connection_rate.period_ms == 60000 &&
              c.idle_timeout_ms == 30000 && c.data_timeout_ms == 45000 &&
              c.enable_tls == SHAPING_TLS_REQUIRED_INSECURE && c.smtp_port == 2525 && c.n_prohibited_hosts == 2 &&
              strcmp(c.prohibited_hosts[1], "::1") == 0 && strcmp(c.ehlo_domain, "mx.example") == 0 &&
              strcmp(c.provider_name, "google") == 0 && c.source_selection_rate.max_burst == 1,
          "resolved values");
    CHECK(c.n_limits == 2 && strcmp(c.limits[0].name, "shaping-provider-google-s1-limit") == 0 &&
              c.limits[0].limit == 5 && c.limits[1].limit == 7,
          "named limits");
    CHECK(c.n_throttles == 1 && c.throttles[0].rate.limit == 10, "named throttles");
    shaping_path_config_fini(&c);

    /* SetConfig overrides on top; additional_* merge name by name */
    json_t *o = json_loads("{\"connection_limit\": 1, \"max_message_rate\": \"1/minute\","
                           "\"additional_connection_limits\": {\"g\": 2}}", 0, NULL);
    CHECK(shaping_path_config_from(r, o, &def, &c, &err) == 0, "overrides");
    CHECK(c.connection_limit == 1 && c.max_message_rate.limit == 1 && c.max_message_rate.period_ms == 60000 &&
              c.n_limits == 2 && c.limits[1].limit == 2 && c.limits[0].limit == 5,
          "override values");
    shaping_path_config_fini(&c);
    json_decref(o);

    static const char *const bad[] = {"{\"connection_limit\": \"many\"}", "{\"no_such_option\": 1}",
                                      "{\"max_message_rate\": \"fast\"}", "{\"enable_tls\": \"Maybe\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = json_loads(bad[i], 0, NULL);
        CHECK(shaping_path_config_from(r, o, &def, &c, &err) == -EINVAL && err && *err, "bad override %s", bad[i]);
        free(err);
        err = NULL;
        json_decref(o);
    }
    json_decref(r);
}

int main(void)
{
    test_rates();
    test_durations();
    test_limits_and_table();
    test_path_config();
    CHECK_EXIT();
}
