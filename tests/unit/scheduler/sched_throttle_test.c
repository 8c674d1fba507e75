/*
 * sched_throttle_test - GCRA against hand-computed tables
 *
 * Each case is a rate and a sequence of calls (time after T0, count, the wait expected: 0 = taken).
 * The expected waits were worked out by hand from the definition in sched_throttle.h; units are
 * 1/limit ms, so "3/s" is exact. A second table checks a rate change keeps the debt.
 */
#include <stdio.h>

#include "scheduler/sched_throttle.h"
#include "tests/lib/check.h"

#define T0 UINT64_C(1700000000000)
#define STEPS_MAX 24

struct step {
    uint64_t at; /* ms after T0 */
    uint64_t n;
    uint64_t wait;
};

struct gcra_case {
    const char *name;
    struct sched_rate rate;
    struct step steps[STEPS_MAX];
    int nsteps;
};

static const struct gcra_case cases[] = {
    /* 10/s, burst 10: ten at once, then one per 100 ms; idle time refills the burst */
    { "10/s", { 10, 1000, 0 },
      { { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 },
        { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 100 }, { 99, 1, 1 }, { 100, 1, 0 }, { 100, 1, 100 }, { 150, 1, 50 },
        { 200, 1, 0 }, { 1200, 9, 0 }, { 1200, 1, 0 }, { 1200, 1, 100 }, { 1300, 2, 100 }, { 1300, 1, 0 } },
      21 },
    /* 3/s with max_burst 1: T = 333.33.. ms exactly; a take later than allowed (at 334, allowed
     * from 333.33) moves the schedule by the 0.67 ms, which the next waits round up */
    { "3/s,max_burst=1", { 3, 1000, 1 },
      { { 0, 1, 0 }, { 0, 1, 334 }, { 333, 1, 1 }, { 334, 1, 0 }, { 667, 1, 1 }, { 668, 1, 0 }, { 1000, 1, 2 },
        { 1001, 1, 1 }, { 1002, 1, 0 } },
      9 },
    /* 500/d with max_burst 1: one per 172.8 s */
    { "500/d,max_burst=1", { 500, 86400000, 1 },
      { { 0, 1, 0 }, { 0, 1, 172800 }, { 172799, 1, 1 }, { 172800, 1, 0 }, { 345600, 1, 0 } },
      5 },
    /* counts above one: n is taken whole; n above the burst is taken as the burst */
    { "5/s n>1", { 5, 1000, 0 },
      { { 0, 3, 0 }, { 0, 3, 200 }, { 0, 2, 0 }, { 0, 10, 1000 }, { 1000, 10, 0 }, { 1000, 1, 200 } },
      6 },
    /* 100/min, burst 2 */
    { "100/min,max_burst=2", { 100, 60000, 2 },
      { { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 600 }, { 600, 1, 0 }, { 600, 1, 600 }, { 5000, 1, 0 }, { 5000, 1, 0 },
        { 5000, 1, 600 } },
      8 },
    /* no limit */
    { "none", { 0, 1000, 0 }, { { 0, 1000000, 0 }, { 0, 1000000, 0 } }, 2 },
    { "no period", { 5, 0, 0 }, { { 0, 1000, 0 }, { 0, 1000, 0 } }, 2 },
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct gcra_case *gc = &cases[i];
        struct sched_throttle t;
        sched_throttle_init(&t, &gc->rate);
        for (int k = 0; k < gc->nsteps; k++) {
            const struct step *s = &gc->steps[k];
            uint64_t peek = sched_throttle_wait(&t, T0 + s->at, s->n);
            uint64_t w = sched_throttle_try(&t, T0 + s->at, s->n);
            CHECK(peek == w, "%s step %d: wait() said %llu, try() %llu", gc->name, k, (unsigned long long)peek,
                  (unsigned long long)w);
            CHECK(w == s->wait, "%s step %d (at %llu, n %llu): wait %llu, want %llu", gc->name, k,
                  (unsigned long long)s->at, (unsigned long long)s->n, (unsigned long long)w,
                  (unsigned long long)s->wait);
        }
    }
}

/* over a long run at a steady demand, the count in every window never exceeds burst + window / T */
static void test_bounds(void)
{
    struct sched_rate r = { 7, 1000, 3 };
    struct sched_throttle t;
    sched_throttle_init(&t, &r);
    static uint64_t at[20000];
    size_t n = 0;
    uint64_t now = T0;
    while (n < 20000) {
        uint64_t w = sched_throttle_try(&t, now, 1);
        if (w == 0)
            at[n++] = now;
        else
            now += w; /* sleep exactly until allowed, as the scheduler's loop does */
    }
    /* window [at[i], at[i] + 1000): at most 3 + 7 */
    size_t j = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        while (j < n && at[j] < at[i] + 1000)
            j++;
        if (j - i > worst)
            worst = j - i;
    }
    CHECK(worst <= 10, "a 1 s window held %zu", worst);
    /* and the long-run rate is exactly 7/s: 20000 takes after the burst of 3 need ceil(19997 / 7) s */
    uint64_t span = at[n - 1] - at[0];
    CHECK(span >= 19997 * 1000 / 7 && span <= 19997 * 1000 / 7 + 1, "20000 takes over %llu ms",
          (unsigned long long)span);
}

/* a rate change keeps what was taken: no fresh burst from a reload */
static void test_set(void)
{
    struct sched_rate fast = { 10, 1000, 1 }, slow = { 1, 1000, 1 };
    struct sched_throttle t;
    sched_throttle_init(&t, &fast);
    CHECK(sched_throttle_try(&t, T0, 1) == 0, "first");
    sched_throttle_set(&t, &slow, T0);
    /* tat was T0 + 100 ms; under 1/s (burst 1) the next passes at tat */
    CHECK(sched_throttle_wait(&t, T0, 1) == 100, "after slowing: %llu", (unsigned long long)sched_throttle_wait(&t, T0, 1));
    CHECK(sched_throttle_try(&t, T0 + 100, 1) == 0, "at the old tat");
    CHECK(sched_throttle_wait(&t, T0 + 100, 1) == 1000, "then one per second");
    /* speeding up: the debt (tat T0 + 1100) is capped at one burst of the new rate (T0 + 200) */
    sched_throttle_set(&t, &fast, T0 + 100);
    CHECK(sched_throttle_wait(&t, T0 + 100, 1) == 100, "speeding up: %llu", (unsigned long long)sched_throttle_wait(&t, T0 + 100, 1));
    CHECK(sched_throttle_try(&t, T0 + 200, 1) == 0 && sched_throttle_wait(&t, T0 + 200, 1) == 100, "then the new rate");
    /* slowing down right after a take: no fresh burst */
    struct sched_rate slower = { 1, 10000, 1 };
    sched_throttle_set(&t, &slower, T0 + 200);
    CHECK(sched_throttle_wait(&t, T0 + 200, 1) == 100, "slowing keeps the debt: %llu",
          (unsigned long long)sched_throttle_wait(&t, T0 + 200, 1));
    struct sched_rate none = { 0, 0, 0 };
    sched_throttle_set(&t, &none, T0);
    CHECK(sched_throttle_try(&t, T0, 5) == 0, "no limit");
}

int main(void)
{
    test_cases();
    test_bounds();
    test_set();
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
