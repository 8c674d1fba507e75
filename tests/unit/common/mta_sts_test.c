/*
 * mta_sts_test - MTA-STS texts (RFC 8461): TXT records, policy files (accepted and refused, table-driven),
 * mx pattern matching, and the mode a site name carries
 */
#include <string.h>

#include "common/mta_sts.h"
#include "tests/lib/check.h"

struct txt_case {
    const char *txt;
    int rc;
    const char *id;
};

static const struct txt_case txt_cases[] = {
    {"v=STSv1; id=20160831085700Z", 1, "20160831085700Z"},
    {"v=STSv1;id=abc", 1, "abc"},
    {"v=STSv1; id=abc;", 1, "abc"},
    {"v=STSv1; id=abc; ext=val", 1, "abc"},
    {"v=STSv1 ; id=A1 ", 1, "A1"},
    {"v=STSv1; id=12345678901234567890123456789012", 1, "12345678901234567890123456789012"},
    {"v=spf1 -all", 0, ""},
    {"v=STSv10; id=abc", 0, ""},
    {"", 0, ""},
    {"v=STSv1", -22, ""},
    {"v=STSv1; id=", -22, ""},
    {"v=STSv1; id=ab-c", -22, ""},
    {"v=STSv1; id=123456789012345678901234567890123", -22, ""},
    {"v=STSv1; id=a; id=b", -22, ""},
    {"v=STSv1 id=abc", -22, ""},
    {"v=STSv1; =abc", -22, ""},
};

static void test_txt(void)
{
    for (size_t i = 0; i < sizeof(txt_cases) / sizeof(txt_cases[0]); i++) {
        const struct txt_case *c = &txt_cases[i];
        char id[MTA_STS_ID_MAX + 1];
        const char *why = NULL;
        int rc = mta_sts_txt_parse(c->txt, strlen(c->txt), id, &why);
        CHECK(rc == c->rc, "txt \"%s\": %d, want %d (%s)", c->txt, rc, c->rc, why ? why : "");
        if (rc == 1)
            CHECK(strcmp(id, c->id) == 0, "txt \"%s\": id %s", c->txt, id);
    }
}

struct pol_case {
    const char *text;
    bool ok;
    enum mta_sts_mode mode;
    uint32_t max_age;
    size_t n_mx;
};

static const struct pol_case pol_cases[] = {
    {"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n", true,
     MTA_STS_MODE_ENFORCE, 86400, 2},
    {"version: STSv1\nmode: testing\nmx: mx.a.test\nmax_age: 604800", true, MTA_STS_MODE_TESTING, 604800, 1},
    {"mode: none\nmax_age: 0\nversion: STSv1\n", true, MTA_STS_MODE_NONE, 0, 0},
    {"version:STSv1\nmode:enforce\nmx:MX.A.TEST\nmax_age:31557600\nfoo_bar: anything at all\n", true,
     MTA_STS_MODE_ENFORCE, 31557600, 1},
    {"version: STSv1\nmode: enforce\nmax_age: 86400\n", false, 0, 0, 0},           /* no mx */
    {"version: STSv1\nmode: enforce\nmx: a.test\n", false, 0, 0, 0},                /* no max_age */
    {"mode: enforce\nmx: a.test\nmax_age: 1\n", false, 0, 0, 0},                    /* no version */
    {"version: STSv1\nmx: a.test\nmax_age: 1\n", false, 0, 0, 0},                   /* no mode */
    {"version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n", false, 0, 0, 0},    /* version */
    {"version: STSv1\nmode: Enforce\nmx: a.test\nmax_age: 1\n", false, 0, 0, 0},    /* mode is case-sensitive */
    {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 12345678901\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmode: testing\nmx: a.test\nmax_age: 1\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: a..test\nmax_age: 1\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: *.*.test\nmax_age: 1\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: a*.test\nmax_age: 1\n", false, 0, 0, 0},
    {"version: STSv1\nmode: enforce\nmx: a.test\rmax_age: 1\n", false, 0, 0, 0},    /* bare CR */
    {"version: STSv1\nmode: enforce\nmx: a.test\nmax_age 1\n", false, 0, 0, 0},     /* no colon */
    {"<html>not a policy</html>\n", false, 0, 0, 0},
    {"", false, 0, 0, 0},
};

static void test_policy(void)
{
    for (size_t i = 0; i < sizeof(pol_cases) / sizeof(pol_cases[0]); i++) {
        const struct pol_case *c = &pol_cases[i];
        struct mta_sts_policy p;
        const char *why = NULL;
        int rc = mta_sts_policy_parse(c->text, strlen(c->text), &p, &why);
        CHECK((rc == 0) == c->ok, "policy %zu: rc %d (%s)", i, rc, why ? why : "");
        if (rc == 0) {
            CHECK(p.mode == c->mode && p.max_age == c->max_age && p.n_mx == c->n_mx, "policy %zu: values", i);
            mta_sts_policy_fini(&p);
        } else {
            CHECK(why && p.n_mx == 0 && p.mx == NULL, "policy %zu: refused without a reason or with patterns", i);
        }
    }
    /* a NUL byte, and more than 32 patterns */
    static const char nul[] = "version: STSv1\nmode: none\0\nmax_age: 1\n";
    struct mta_sts_policy p;
    const char *why;
    CHECK(mta_sts_policy_parse(nul, sizeof(nul) - 1, &p, &why) < 0, "NUL accepted");
    char big[4096] = "version: STSv1\nmode: enforce\nmax_age: 1\n";
    for (int i = 0; i <= MTA_STS_MX_MAX; i++)
        strcat(big, "mx: mx.a.test\n");
    CHECK(mta_sts_policy_parse(big, strlen(big), &p, &why) < 0, "33 patterns accepted");
    /* the lowercased pattern is kept */
    const char *t = "version: STSv1\nmode: enforce\nmx: *.MX.Example.COM\nmax_age: 5\n";
    CHECK(mta_sts_policy_parse(t, strlen(t), &p, &why) == 0 && strcmp(p.mx[0], "*.mx.example.com") == 0,
          "pattern not lowercased");
    mta_sts_policy_fini(&p);
}

struct mx_case {
    const char *pattern, *host;
    bool match;
};

static const struct mx_case mx_cases[] = {
    {"mail.example.com", "mail.example.com", true},
    {"mail.example.com", "MAIL.Example.com.", true},
    {"mail.example.com", "mail2.example.com", false},
    {"*.example.com", "mx1.example.com", true},
    {"*.example.com", "MX1.EXAMPLE.COM", true},
    {"*.example.com", "a.b.example.com", false}, /* one label only */
    {"*.example.com", "example.com", false},
    {"*.example.com", ".example.com", false},
    {"*.example.com", "mx1.example.comm", false},
    {"*.example.com", "mx1example.com", false},
    {"example.com", "mx.example.com", false},
    {"*.", "a.", false},
    {"", "a", false},
};

static void test_mx(void)
{
    for (size_t i = 0; i < sizeof(mx_cases) / sizeof(mx_cases[0]); i++) {
        const struct mx_case *c = &mx_cases[i];
        CHECK(mta_sts_mx_match(c->pattern, c->host) == c->match, "%s vs %s", c->pattern, c->host);
    }
    const char *pats[] = {"mx1.a.test", "*.b.test"};
    CHECK(mta_sts_mx_allowed(pats, 2, "x.b.test") && !mta_sts_mx_allowed(pats, 2, "mx2.a.test"), "allowed");
    CHECK(!mta_sts_mx_allowed(pats, 0, "mx1.a.test"), "no pattern allows a host");
}

static void test_site(void)
{
    CHECK(mta_sts_site_mode("mx.a.test") == MTA_STS_MODE_OFF, "plain site");
    CHECK(mta_sts_site_mode("mx.a.test;mta-sts=enforce:0123abcd") == MTA_STS_MODE_ENFORCE, "enforce site");
    CHECK(mta_sts_site_mode("mx.a.test;mta-sts=testing:0123abcd") == MTA_STS_MODE_TESTING, "testing site");
    CHECK(mta_sts_site_base_len("mx.a.test;mta-sts=testing:0123abcd") == 9, "base length");
    CHECK(mta_sts_site_base_len("mx.a.test") == 9, "base length of a plain site");
    CHECK(strcmp(mta_sts_mode_name(MTA_STS_MODE_ENFORCE), "enforce") == 0 && strcmp(mta_sts_mode_name(9), "?") == 0,
          "mode names");
}

int main(void)
{
    test_txt();
    test_policy();
    test_mx();
    test_site();
    CHECK_EXIT();
}
