/*
 * shaping_load_test - loading shaping files: KumoMTA's shipped default and community files load
 * unchanged, alone and together, with exactly the validator's warnings; the node's built-in file
 * loads with none; bad files give FILE:LINE errors; JSON files load with their lines; the
 * [shaping] files key of ringmail.toml
 */
#include <errno.h>
#include <stdint.h>

#include "tests/lib/check.h"
#include "tests/unit/policy/shaping_test.h"
#include "cfg/cfg.h"

struct want {
    unsigned line;
    bool error;
    const char *has; /* a part of the message */
};

/* exactly these diagnostics, in any order, from file `file` */
static void check_diags(const char *what, const struct shaping_diags *d, const char *file, const struct want *w,
                        size_t n)
{
    CHECK(d->n == n, "%s: %zu diagnostics, want %zu", what, d->n, n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < d->n && !found; k++)
            found = d->v[k].line == w[i].line && d->v[k].error == w[i].error && strstr(d->v[k].msg, w[i].has) &&
                    (!file || strstr(d->v[k].file, file));
        CHECK(found, "%s: no %s at line %u with \"%s\"", what, w[i].error ? "error" : "warning", w[i].line, w[i].has);
    }
    if (d->n != n) {
        char *t = shaping_diags_text(d);
        fprintf(stderr, "%s", t);
        free(t);
    }
}

/* the validator's warnings of each shipped file (line numbers of the files as shipped) */
static const struct want default_warnings[] = {
    {242, false, "ignored: [\"http://127.0.0.1:8008.tsa.kumomta\"] system_shutdown_timeout"},
};
static const struct want community_trailing_dot[] = {
    {299, false, "MXSuffix \".barracudanetworks.com.\" ends with '.'"},
    {309, false, "MXSuffix \".netvigator.com.\" ends with '.'"},
    {325, false, "MXSuffix \".kpnmail.nl.\" ends with '.'"},
    {297, false, "[provider.\"barracuda\"]: none of its match rules can match"},
    {307, false, "[provider.\"netvigator\"]: none of its match rules can match"},
    {323, false, "[provider.\"kpn\"]: none of its match rules can match"},
    /* automation for "gmail", a provider no file gives a match (the default file calls it "google") */
    {33, false, "[provider.\"gmail\"]: it has no match rules"},
};
/* alone, the community file's provider blocks hold only automation: their match is in the default file */
static const struct want community_alone_extra[] = {
    {53, false, "[provider.\"yahoo\"]: it has no match rules"},
    {179, false, "[provider.\"outlook\"]: it has no match rules"},
    {235, false, "[provider.\"apple\"]: it has no match rules"},
    {264, false, "[provider.\"orange\"]: it has no match rules"},
    {288, false, "[provider.\"mimecast\"]: it has no match rules"},
};

static void test_shipped(void)
{
    char *def = st_shared("kumomta-default-shaping.toml"), *com = st_shared("kumomta-community-shaping.toml");
    struct shaping_diags d;
    struct shaping *sh;
    struct want w[16];
    size_t n = 0;

    sh = st_load(&d, def, NULL);
    CHECK(sh != NULL, "default file alone loads");
    check_diags("default alone", &d, "kumomta-default-shaping.toml", default_warnings, 1);
    const struct shaping_rule *const *all;
    /* ["default"] 1 rule, yahoo 1, comcast.net 2 */
    CHECK(sh && shaping_rules_all(sh, &all) == 4, "default file: 4 rules");
    shaping_free(sh);
    shaping_diags_fini(&d);

    sh = st_load(&d, com, NULL);
    CHECK(sh != NULL, "community file alone loads");
    memcpy(w, community_trailing_dot, sizeof(community_trailing_dot));
    n = sizeof(community_trailing_dot) / sizeof(w[0]);
    memcpy(w + n, community_alone_extra, sizeof(community_alone_extra));
    n += sizeof(community_alone_extra) / sizeof(w[0]);
    check_diags("community alone", &d, "kumomta-community-shaping.toml", w, n);
    shaping_free(sh);
    shaping_diags_fini(&d);

    sh = st_load(&d, def, com, NULL);
    CHECK(sh != NULL, "default then community loads");
    w[0] = default_warnings[0];
    memcpy(w + 1, community_trailing_dot, sizeof(community_trailing_dot));
    n = 1 + sizeof(community_trailing_dot) / sizeof(w[0]);
    check_diags("default + community", &d, NULL, w, n);
    CHECK(d.n && strstr(d.v[0].file, "kumomta-default-shaping.toml"), "the default file's warning comes first");
    /* default 4 + community: gmail 2, yahoo 8, yahoo.co.jp 4, gmx 4, outlook 9, apple 4, orange 4, mimecast 1,
     * netvigator 1, qq.com 5, 163.com 5 */
    CHECK(sh && shaping_rules_all(sh, &all) == 4 + 47, "both files: %zu rules", sh ? shaping_rules_all(sh, &all) : 0);
    shaping_free(sh);
    shaping_diags_fini(&d);
    free(def);
    free(com);
}

static void test_builtin(void)
{
    struct shaping_diags d = {0};
    struct shaping *sh = shaping_load_default(&d);
    CHECK(sh != NULL && d.n == 0, "the built-in shaping file loads with no diagnostic (%zu)", d.n);
    if (d.n) {
        char *t = shaping_diags_text(&d);
        fprintf(stderr, "%s", t);
        free(t);
    }
    const struct shaping_rule *const *all;
    CHECK(sh && shaping_rules_all(sh, &all) >= 10, "built-in rules");
    /* Yahoo's [TS04] deferral suspends, Gmail's 4.7.28 slows down, Microsoft's S3150 suspends */
    static const struct {
        const char *site, *domain, *text;
        enum shaping_action_kind kind;
    } cases[] = {
        {"mta5.am0.yahoodns.net,mta6.am0.yahoodns.net", "yahoo.com",
         "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume",
         SHAPING_ACTION_SUSPEND},
        {"aspmx.l.google.com", "example-workspace.test",
         "421 4.7.28 Gmail has detected an unusual rate of unsolicited mail", SHAPING_ACTION_SET_CONFIG},
        {"hotmail-com.olc.protection.outlook.com", "hotmail.com",
         "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)", SHAPING_ACTION_SUSPEND},
    };
    for (size_t i = 0; sh && i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct shaping_rule **r;
        size_t n = shaping_rules(sh, cases[i].domain, "", cases[i].site, &r);
        /* every matching rule fires; one of them has the provider's action */
        bool hit = false;
        for (size_t k = 0; k < n; k++)
            if (shaping_rule_match(r[k], cases[i].text, strlen(cases[i].text)) >= 0 &&
                strncmp(r[k]->scope, "provider:", 9) == 0)
                hit = hit || r[k]->actions[0].kind == cases[i].kind;
        CHECK(hit, "built-in rule for \"%s\"", cases[i].text);
    }
    shaping_free(sh);
    shaping_diags_fini(&d);
}

static void test_bad_files(void)
{
    static const struct {
        const char *name, *text;
        unsigned line;
        const char *has;
    } cases[] = {
        {"a.toml", "[\"default\"]\nconection_limit = 5\n", 2, "unknown option \"conection_limit\""},
        {"b.toml", "[\"default\"]\nmax_message_rate = \"fast\"\n", 2, "max_message_rate: expected a rate"},
        {"c.toml", "[\"x.test\"]\n\nidle_timeout = \"soon\"\n", 3, "idle_timeout: expected a duration"},
        {"d.toml", "[provider.\"p\"]\nmatch = [{MXSuffix = \".p.test\"}]\nenable_tls = \"Always\"\n", 3,
         "enable_tls: expected one of"},
        {"e.toml", "[\"default\"]\nprohibited_hosts = [\"10.0.0.0/8\", \"10.0.0.300\"]\n", 2,
         "prohibited_hosts: element 2"},
        {"f.toml", "[[\"default\".automation]]\nregex = \"(unclosed\"\naction = \"Suspend\"\nduration = \"1h\"\n", 2,
         "regex \"(unclosed\""},
        {"g.toml",
         "[[\"default\".automation]]\nregex = \"x\"\naction = {SetConfig = {name = \"conn_limit\", value = 1}}\n"
         "duration = \"1h\"\n",
         3, "unknown option \"conn_limit\""},
        {"h.toml",
         "[[\"default\".automation]]\nregex = \"x\"\naction = {SetConfig = {name = \"connection_limit\", value = "
         "\"lots\"}}\nduration = \"1h\"\n",
         3, "connection_limit: expected a connection limit"},
        {"i.toml", "[[\"default\".automation]]\nregex = \"x\"\naction = \"Suspend\"\n", 1, "a rule needs duration"},
        {"j.toml", "[[\"default\".automation]]\nregex = \"x\"\naction = \"Explode\"\nduration = \"1h\"\n", 3,
         "action \"Explode\""},
        {"k.toml",
         "[[\"default\".automation]]\nregex = \"x\"\naction = \"Suspend\"\ntrigger = {Threshold = \"often\"}\n"
         "duration = \"1h\"\n",
         4, "trigger: expected"},
        {"l.toml", "[provider.\"p\"]\nmatch = [{MXPrefix = \"mx.\"}]\n", 2, "match 1: expected one of"},
        {"m.toml", "[provider.\"p\"]\nmatch = [{MXSuffix = \".p.test\"}]\nprovider_connection_limit = \"x\"\n", 3,
         "provider_connection_limit: expected"},
        {"n.toml", "[\"default\"]\nconnection_limit = = 3\n", 2, ""},
        {"o.toml", "[\"x.test\".sources.\"s\"]\nautomation = []\n", 2, "unknown option \"automation\""},
        {"p.toml", "[\"x.test\"]\nmx_rollup = \"no\"\n", 2, "mx_rollup: expected true or false"},
        {"q.json", "{\n  \"default\": {\n    \"connection_limit\": }\n}\n", 3, ""},
        {"r.json", "{\n  \"default\": {\n    \"max_ready\": 10,\n    \"colour\": \"blue\"\n  }\n}\n", 4,
         "unknown option \"colour\""},
 {"u.json", "{\n  \"default\": {\n    \"ehlo_domain\": null\n  }\n}\n", 3, "null is not a value"},
        {"s.toml", "[[\"default\".automation]]\nregex = \"x\"\naction = \"Suspend\"\nduration = \"1h\"\nwhen = 1\n",
         5, "unknown key \"when\""},
        {"t.toml", "[provider.\"p\"]\nmatch = [{MXSuffix = \".p.test\"}]\nmx_rollup = false\n", 3,
         "unknown option \"mx_rollup\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shaping_diags d;
        struct shaping *sh = st_text(&d, cases[i].name, cases[i].text);
        CHECK(sh == NULL, "%s: loads", cases[i].name);
        bool found = false;
        for (size_t k = 0; k < d.n && !found; k++)
            found = d.v[k].error && d.v[k].line == cases[i].line && strstr(d.v[k].msg, cases[i].has) &&
                    strstr(d.v[k].file, cases[i].name);
        char *t = shaping_diags_text(&d);
        CHECK(found, "%s: no error at line %u with \"%s\"; got:\n%s", cases[i].name, cases[i].line, cases[i].has, t);
        /* the text form is FILE:LINE: error: message */
        char *head = xasprintf("%s:%u: error: ", cases[i].name, cases[i].line);
        CHECK(strstr(t, head) != NULL, "%s: text form %s", cases[i].name, t);
        free(head);
        free(t);
        shaping_free(sh);
        shaping_diags_fini(&d);
    }
    struct shaping_diags d;
    const char *missing = "/nonexistent/shaping.toml";
    CHECK(st_load(&d, missing, NULL) == NULL && d.n == 1 && d.v[0].error, "missing file");
    shaping_diags_fini(&d);
}

static void test_warnings(void)
{
    struct shaping_diags d;
    struct shaping *sh = st_text(&d, "w.toml",
                                 "[\"localhost\"]\nmx_rollup = false\nconnection_limit = 1\n"
                                 "[provider.\"p\"]\nmatch = [{HostName = \"mx.p.test.\"}]\nenable_dane = true\n"
                                 "[[\"default\".automation]]\nregex = \"x\"\n"
                                 "action = {SetConfig = {name = \"enable_rset\", value = false}}\n"
                                 "duration = \"1h\"\n");
    CHECK(sh != NULL, "warnings only: loads");
    static const struct want w[] = {
        {1, false, "\"localhost\" is a single DNS label"},
        {5, false, "HostName \"mx.p.test.\" ends with '.'"},
        {4, false, "none of its match rules can match"},
        {6, false, "ignored: [provider.\"p\"] enable_dane"},
        {9, false, "ignored: automation SetConfig of enable_rset"},
    };
    check_diags("warnings", &d, "w.toml", w, sizeof(w) / sizeof(w[0]));
    shaping_free(sh);
    shaping_diags_fini(&d);
}

/* the same shaping as TOML and as JSON: same resolution, lines of the JSON keys */
static void test_json(void)
{
    const char *toml = "[\"default\"]\nconnection_limit = 4\nmax_message_rate = \"10/s\"\n\n"
                       "[provider.\"big\"]\nmatch = [{MXSuffix = \".big.test\"}]\nprovider_connection_limit = 3\n\n"
                       "[[provider.\"big\".automation]]\nregex = [\"slow down\", \"4\\\\.7\\\\.0\"]\n"
                       "action = \"Suspend\"\ntrigger = {Threshold = \"2/hr\"}\nduration = \"30m\"\n";
    const char *json = "{\n"
                       "  \"default\": {\n"
                       "    \"connection_limit\": 4,\n"
                       "    \"max_message_rate\": \"10/s\"\n"
                       "  },\n"
                       "  \"provider\": {\n"
                       "    \"big\": {\n"
                       "      \"match\": [{\"MXSuffix\": \".big.test\"}],\n"
                       "      \"provider_connection_limit\": 3,\n"
                       "      \"automation\": [\n"
                       "        {\"regex\": [\"slow down\", \"4\\\\.7\\\\.0\"], \"action\": \"Suspend\",\n"
                       "         \"trigger\": {\"Threshold\": \"2/hr\"}, \"duration\": \"30m\"}\n"
                       "      ]\n"
                       "    }\n"
                       "  }\n"
                       "}\n";
    struct shaping_diags d1, d2;
    struct shaping *a = st_text(&d1, "same.toml", toml), *b = st_text(&d2, "same.json", json);
    CHECK(a && b && d1.n == 0 && d2.n == 0, "TOML and JSON load");
    if (a && b) {
        json_t *sa, *sb;
        json_t *ra = shaping_resolve(a, "x.test", "s1", "mx1.big.test", &sa);
        json_t *rb = shaping_resolve(b, "x.test", "s1", "mx1.big.test", &sb);
        CHECK(json_equal(ra, rb), "same resolution");
        CHECK(json_integer_value(json_object_get(json_object_get(rb, "additional_connection_limits"),
                                                 "shaping-provider-big-s1-limit")) == 3,
              "provider limit from JSON");
        const char *by = json_string_value(json_object_get(sb, "connection_limit"));
        CHECK(by && strstr(by, "same.json:3 [\"default\"]"), "JSON line of connection_limit: %s", by ? by : "-");
        const struct shaping_rule **r;
        CHECK(shaping_rules(b, "x.test", "", "mx1.big.test", &r) == 1 && r[0]->n_regex == 2 &&
                  r[0]->threshold.limit == 2 && r[0]->duration_ms == 1800000 && r[0]->line == 11,
              "JSON rule (line %u)", shaping_rules(b, "x.test", "", "mx1.big.test", &r) ? r[0]->line : 0);
        json_decref(ra);
        json_decref(rb);
        json_decref(sa);
        json_decref(sb);
    }
    shaping_free(a);
    shaping_free(b);
    shaping_diags_fini(&d1);
    shaping_diags_fini(&d2);
}

/* ringmail.toml's [shaping] files */
static void test_cfg_key(void)
{
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(c.n_shaping_files == 0, "default: no shaping files");
    const char *good = "[shaping]\nfiles = [\"/etc/ringmail/a.toml\", \"b.json\"]\n";
    CHECK(cfg_load_text(&c, good, strlen(good), "ringmail.toml", &err) == 0, "files: %s", err ? err : "");
    CHECK(c.n_shaping_files == 2 && strcmp(c.shaping_files[0], "/etc/ringmail/a.toml") == 0 &&
              strcmp(c.shaping_files[1], "b.json") == 0,
          "files as written, in order");
    static const char *const bad[] = {"[shaping]\nfiles = []\n", "[shaping]\nfiles = \"a.toml\"\n",
                                      "[shaping]\nfiles = [1]\n", "[shaping]\nfile = [\"a.toml\"]\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(cfg_load_text(&c, bad[i], strlen(bad[i]), "ringmail.toml", &err) == -EINVAL && err &&
                  strstr(err, "ringmail.toml:"),
              "bad [shaping] %zu", i);
        free(err);
        err = NULL;
    }
    CHECK(c.n_shaping_files == 2, "a refused file changes nothing");
    cfg_fini(&c);
}

int main(void)
{
    test_builtin();
    test_bad_files();
    test_warnings();
    test_json();
    test_cfg_key();
    test_shipped(); /* last: it skips (77) when ../shared/data is not there */
    CHECK_EXIT();
}
