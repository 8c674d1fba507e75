/*
 * cfg_warmup_test - [warmup."SOURCE"] of ringmail.toml: dates and RFC 3339 times, listed steps, the
 * geometric ramp with its cap, defaults, and each bad table's FILE:LINE message; the rate parser the
 * shaping files share (cfg_value_parse_rate); a reload replaces the list; nothing leaks (ASan).
 */
#include "cfg/cfg.h"
#include "cfg/cfg_value.h"
#include "tests/lib/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOURCES "[[egress_source]]\nname = \"ip-1\"\n[[egress_source]]\nname = \"ip-2\"\n"

static int load(struct cfg *c, const char *text, char **err)
{
    return cfg_load_text(c, text, strlen(text), "t.toml", err);
}

static void test_time(void)
{
    static const struct {
        const char *in;
        long long ms; /* -1: refused */
    } cases[] = {
        {"2026-12-01", 1796083200000LL},
        {"1970-01-01", 0},
        {"2026-12-01T08:30:00Z", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2026-12-01t08:30:00z", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2026-12-01T08:30:00.250Z", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2026-12-01T10:30:00+02:00", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2026-12-01T06:30:00-02:00", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2026-12-01 08:30:00", 1796083200000LL + 8 * 3600000LL + 30 * 60000LL},
        {"2024-02-29", 1709164800000LL},
        {"2026-02-29", -1},
        {"2026-13-01", -1},
        {"2026-12-32", -1},
        {"2026-12-1", -1},
        {"2026-12-01T8:30:00Z", -1},
        {"2026-12-01T08:30Z", -1},
        {"2026-12-01T08:30:00+2:00", -1},
        {"2026-12-01T08:30:00Zjunk", -1},
        {"1969-12-31", -1},
        {"", -1},
        {"tomorrow", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 0;
        bool ok = cfg_warmup_parse_time(cases[i].in, &ms);
        if (cases[i].ms < 0)
            CHECK(!ok, "%s refused", cases[i].in);
        else
            CHECK(ok && ms == (uint64_t)cases[i].ms, "%s -> %llu (ok %d), want %lld", cases[i].in,
                  (unsigned long long)ms, ok, cases[i].ms);
    }
}

static void test_rate(void)
{
    static const struct {
        const char *in;
        bool ok;
        uint64_t limit, period_ms, burst;
    } cases[] = {
        {"50/h", true, 50, 3600000, 0},
        {"1,000/hour", true, 1000, 3600000, 0},
        {"5/min", true, 5, 60000, 0},
        {"3/s", true, 3, 1000, 0},
        {"500/d,max_burst=1", true, 500, 86400000, 1},
        {"2/days", true, 2, 86400000, 0},
        {"0/h", false, 0, 0, 0},
        {"50", false, 0, 0, 0},
        {"50/week", false, 0, 0, 0},
        {"/h", false, 0, 0, 0},
        {"5/min,burst=2", false, 0, 0, 0},
        {"5/min,max_burst=0", false, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t l = 0, p = 0, b = 0;
        const char *why = NULL;
        bool ok = cfg_value_parse_rate(cases[i].in, &l, &p, &b, &why);
        CHECK(ok == cases[i].ok, "%s: ok %d (%s)", cases[i].in, ok, why ? why : "");
        if (ok && cases[i].ok)
            CHECK(l == cases[i].limit && p == cases[i].period_ms && b == cases[i].burst,
                  "%s -> %llu/%llu,%llu", cases[i].in, (unsigned long long)l, (unsigned long long)p,
                  (unsigned long long)b);
        if (!ok)
            CHECK(why && why[0], "%s: a reason", cases[i].in);
    }
}

static void test_steps(void)
{
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc =
        load(&c,
             SOURCES "[warmup.\"ip-2\"]\nstart = \"2026-12-01\"\nsteps = [\"50/h\", \"100/h\", \"1,000/d\"]\n"
                     "step_duration = \"12h\"\nmax_deferral_rate = 0.1\nper = \"site\"\n",
             &err);
    CHECK(rc == 0, "loads: %s", err ? err : "");
    free(err);
    const struct cfg_warmup *w = cfg_warmup_find(&c, "ip-2");
    CHECK(w && !cfg_warmup_find(&c, "ip-1"), "ip-2 warms, ip-1 not");
    if (w) {
        CHECK(w->start_ms == 1796083200000ULL && w->step_ms == 12 * 3600000ULL, "start, step");
        CHECK(w->max_deferral_rate == 0.1 && w->per_site, "threshold, per");
        CHECK(w->n_steps == 3 && w->steps[0].limit == 50 && w->steps[0].period_ms == 3600000 &&
                  w->steps[2].limit == 1000 && w->steps[2].period_ms == 86400000,
              "steps");
    }
    /* defaults, a TOML date without quotes; a reload without [warmup] drops the list */
    rc = load(&c, SOURCES "[warmup.ip-1]\nstart = 2026-12-01T06:00:00Z\nsteps = [\"5/min\"]\n", &err);
    CHECK(rc == 0, "reload: %s", err ? err : "");
    free(err);
    w = cfg_warmup_find(&c, "ip-1");
    CHECK(c.n_warmups == 1 && w && !cfg_warmup_find(&c, "ip-2"), "the reload replaced the list");
    if (w)
        CHECK(w->start_ms == 1796083200000ULL + 6 * 3600000ULL && w->step_ms == 86400000ULL &&
                  w->max_deferral_rate == 0.05 && !w->per_site,
              "defaults");
    /* copies survive a failed reload and leak nothing */
    rc = load(&c, SOURCES "[warmup.ip-1]\nstart = \"2026-12-01\"\nsteps = []\n", &err);
    CHECK(rc < 0 && cfg_warmup_find(&c, "ip-1"), "a bad reload keeps what was loaded");
    free(err);
    cfg_fini(&c);
}

static void test_geometric(void)
{
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc = load(&c,
                  SOURCES "[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"50/h\"\nfactor = 2.0\n"
                          "cap = \"1000/h\"\n",
                  &err);
    CHECK(rc == 0, "loads: %s", err ? err : "");
    free(err);
    const struct cfg_warmup *w = cfg_warmup_find(&c, "ip-1");
    static const uint64_t want[] = {50, 100, 200, 400, 800, 1000};
    CHECK(w && w->n_steps == 6, "6 steps: %u", w ? w->n_steps : 0);
    for (uint32_t i = 0; w && i < w->n_steps && i < 6; i++)
        CHECK(w->steps[i].limit == want[i] && w->steps[i].period_ms == 3600000, "step %u: %llu", i,
              (unsigned long long)w->steps[i].limit);
    /* a cap in another period: 48000/d is 2000/h; a slow factor still rises by at least one a step */
    rc = load(&c,
              SOURCES
              "[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"1/h\"\nfactor = 1.1\n"
              "cap = \"5/h\"\n[warmup.\"ip-2\"]\nstart = \"2026-12-01\"\ninitial = \"500/h\"\nfactor = 3\n"
              "cap = \"48000/d\"\n",
              &err);
    CHECK(rc == 0, "loads: %s", err ? err : "");
    free(err);
    w = cfg_warmup_find(&c, "ip-1");
    CHECK(w && w->n_steps == 5 && w->steps[0].limit == 1 && w->steps[1].limit == 2 && w->steps[4].limit == 5,
          "1, 2, 3, 4, 5: %u steps", w ? w->n_steps : 0);
    w = cfg_warmup_find(&c, "ip-2");
    CHECK(w && w->n_steps == 3 && w->steps[0].limit == 500 && w->steps[1].limit == 1500 &&
              w->steps[2].limit == 48000 && w->steps[2].period_ms == 86400000,
          "500/h, 1500/h, then the cap as written: %u steps", w ? w->n_steps : 0);
    cfg_fini(&c);
}

static void test_errors(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[warmup.\"ip-9\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\n",
         "t.toml:5: warmup.\"ip-9\": no [[egress_source]] is named \"ip-9\""},
        {"[warmup.\"ip-1\"]\nsteps = [\"5/h\"]\n", "warmup.\"ip-1\": start is required"},
        {"[warmup.\"ip-1\"]\nstart = \"12/01/2026\"\nsteps = [\"5/h\"]\n",
         "t.toml:6: warmup.\"ip-1\".start: a date"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = []\n",
         "t.toml:7: warmup.\"ip-1\".steps: an array of 1 to 1000 rates"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\", \"lots\"]\n",
         "t.toml:7: warmup.\"ip-1\".steps: \"lots\" is not a rate"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h,max_burst=2\"]\n", "takes no max_burst"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\n",
         "needs steps = [\"50/h\", ...], or initial, factor and cap"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"5/h\"\nfactor = 2.0\n", "needs steps"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\ninitial = \"5/h\"\n",
         "either steps or initial/factor/cap"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"5/h\"\nfactor = 1.0\ncap = \"50/h\"\n",
         "factor: a number above 1"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"50/h\"\nfactor = 2\ncap = \"5/h\"\n",
         "cap is below initial"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\ninitial = \"1/d\"\nfactor = 1.001\ncap = \"100000/s\"\n",
         "more than 1000 steps"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\nmax_deferral_rate = 1.5\n",
         "t.toml:8: warmup.\"ip-1\".max_deferral_rate: a fraction from 0 to 1"},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\nper = \"domain\"\n",
         "per: \"provider\" or \"site\""},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\nstep_duration = \"10ms\"\n",
         "step_duration: a duration from \"1s\""},
        {"[warmup.\"ip-1\"]\nstart = \"2026-12-01\"\nsteps = [\"5/h\"]\nspeed = 3\n",
         "t.toml:8: warmup.\"ip-1\": unknown key \"speed\""},
        {"[warmup]\n\"ip-1\" = 3\n", "warmup.\"ip-1\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char *err = NULL;
        char text[1024];
        snprintf(text, sizeof(text), SOURCES "%s", cases[i].text);
        cfg_default(&c);
        int rc = load(&c, text, &err);
        CHECK(rc < 0 && err && strstr(err, cases[i].want), "case %zu: want %s, got %s", i, cases[i].want,
              err ? err : "(loaded)");
        free(err);
        cfg_fini(&c);
    }
}

int main(void)
{
    test_time();
    test_rate();
    test_steps();
    test_geometric();
    test_errors();
    CHECK_EXIT();
}
