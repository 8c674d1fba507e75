/*
 * sched_warmup_test - the step arithmetic of warm-up ramps on a simulated clock: the nominal step from
 * the start date, pending before it, advancing at each boundary, held by a deferral rate over the
 * threshold (and not at it) or by a TSA firing, the hold ending when a step ends well, done after the
 * last step, a scheduler that was away for many steps, and the allowance figures.
 */
#include "scheduler/sched_warmup.h"
#include "tests/lib/check.h"

#include <string.h>

#define H 3600000ULL
#define START 1796083200000ULL /* 2026-12-01T00:00:00Z */

static struct cfg_warmup_rate steps3[] = {{50, H}, {100, H}, {1000, 86400000ULL}};

static struct cfg_warmup plan(void)
{
    return (struct cfg_warmup){.source = "ip-2",
                               .start_ms = START,
                               .step_ms = 24 * H,
                               .max_deferral_rate = 0.05,
                               .n_steps = 3,
                               .steps = steps3};
}

static void test_nominal(void)
{
    struct cfg_warmup p = plan();
    CHECK(sched_warmup_nominal(&p, START - 1) == 0, "before start");
    CHECK(sched_warmup_nominal(&p, START) == 0, "day 1");
    CHECK(sched_warmup_nominal(&p, START + 24 * H - 1) == 0, "end of day 1");
    CHECK(sched_warmup_nominal(&p, START + 24 * H) == 1, "day 2");
    CHECK(sched_warmup_nominal(&p, START + 72 * H) == 3, "past the last");
    CHECK(sched_warmup_nominal(&p, START + 9999 * H) == 3, "long past");

    struct sched_warmup_key k;
    sched_warmup_key_init(&p, &k, START + 30 * H);
    CHECK(k.step == 1 && k.step_start_ms == START + 24 * H, "a new key joins on its nominal step");
    CHECK(sched_warmup_state_of(&p, &k, START + 30 * H) == SCHED_WARMUP_ADVANCING, "advancing");
    CHECK(sched_warmup_next_ms(&p, &k) == START + 48 * H, "next boundary");
    sched_warmup_key_init(&p, &k, START - 5 * H);
    CHECK(k.step == 0 && k.step_start_ms == START, "pending on step 0");
    CHECK(sched_warmup_state_of(&p, &k, START - 5 * H) == SCHED_WARMUP_PENDING, "pending");
    CHECK(sched_warmup_allowance(&p, &k) == &steps3[0], "step 0's allowance before start");
    CHECK(!sched_warmup_key_advance(&p, &k, START + 24 * H - 1), "no boundary yet");
    sched_warmup_key_init(&p, &k, START + 80 * H);
    CHECK(k.step == 3 && !sched_warmup_allowance(&p, &k), "done: no allowance");
    CHECK(sched_warmup_state_of(&p, &k, START + 80 * H) == SCHED_WARMUP_DONE &&
              sched_warmup_next_ms(&p, &k) == 0,
          "done state");
}

static void results(struct sched_warmup_key *k, unsigned attempts, unsigned deferred)
{
    for (unsigned i = 0; i < attempts; i++)
        sched_warmup_key_result(k, i < deferred);
}

static void test_hold(void)
{
    struct cfg_warmup p = plan();
    struct sched_warmup_key k;
    sched_warmup_key_init(&p, &k, START);

    /* exactly at the threshold (5 of 100 = 0.05) advances */
    results(&k, 100, 5);
    CHECK(sched_warmup_key_advance(&p, &k, START + 24 * H), "advances at the threshold");
    CHECK(k.step == 1 && !k.held && k.attempts == 0 && k.step_start_ms == START + 24 * H,
          "step 2, counters reset");

    /* over it (6 of 100) holds on the boundary, with the reason */
    results(&k, 100, 6);
    CHECK(!sched_warmup_key_advance(&p, &k, START + 48 * H), "held: the step does not change");
    CHECK(k.step == 1 && k.held && k.held_since_ms == START + 48 * H, "held since the boundary");
    CHECK(strstr(k.held_why, "deferral rate 0.060 (6 of 100 attempts) above max_deferral_rate 0.050") != NULL,
          "why: %s", k.held_why);
    CHECK(sched_warmup_state_of(&p, &k, START + 50 * H) == SCHED_WARMUP_HELD, "state held");
    CHECK(sched_warmup_next_ms(&p, &k) == START + 72 * H, "the held step is judged again a step later");

    /* a TSA firing alone holds again; held_since stays the first boundary */
    results(&k, 10, 0);
    sched_warmup_key_tsa(&k, "421 4.7.0 [TS04] deferred");
    CHECK(!sched_warmup_key_advance(&p, &k, START + 72 * H), "still held");
    CHECK(k.held && k.held_since_ms == START + 48 * H, "held since the first boundary");
    CHECK(strstr(k.held_why, "TSA fired 1 time(s) on this source: 421 4.7.0 [TS04] deferred") != NULL &&
              !strstr(k.held_why, "deferral rate"),
          "why: %s", k.held_why);

    /* both reasons at once */
    results(&k, 4, 4);
    sched_warmup_key_tsa(&k, "421 [TS04]");
    (void)sched_warmup_key_advance(&p, &k, START + 96 * H);
    CHECK(strstr(k.held_why, "deferral rate 1.000") && strstr(k.held_why, "; TSA fired"), "why: %s",
          k.held_why);

    /* a good step lifts the hold and advances; the last step ending well is done */
    results(&k, 50, 1);
    CHECK(sched_warmup_key_advance(&p, &k, START + 120 * H), "advances after a good step");
    CHECK(k.step == 2 && !k.held && k.held_why[0] == '\0' && k.held_since_ms == 0, "hold lifted");
    CHECK(sched_warmup_key_advance(&p, &k, START + 144 * H) && k.step == 3, "done after the last step");
    CHECK(!sched_warmup_key_advance(&p, &k, START + 999 * H) && k.step == 3, "done stays done");
}

static void test_away(void)
{
    struct cfg_warmup p = plan();
    struct sched_warmup_key k;
    sched_warmup_key_init(&p, &k, START);
    results(&k, 10, 10);
    /* the scheduler comes back after ten days: step 1 ended badly (held), the idle steps after it advance */
    CHECK(sched_warmup_key_advance(&p, &k, START + 240 * H), "changed");
    CHECK(k.step == 3 && !k.held, "idle steps advance to done: step %u", k.step);

    /* no attempt in a step: a deferral rate of 0, it advances */
    sched_warmup_key_init(&p, &k, START);
    CHECK(sched_warmup_key_advance(&p, &k, START + 24 * H) && k.step == 1, "an idle step advances");
    /* a zero threshold holds on any deferral */
    p.max_deferral_rate = 0.0;
    results(&k, 1000, 1);
    CHECK(!sched_warmup_key_advance(&p, &k, START + 48 * H) && k.held, "one deferral in 1000 holds at 0");
}

static void test_figures(void)
{
    struct cfg_warmup p = plan();
    struct cfg_warmup_rate r = {5, 60000};
    CHECK(sched_warmup_per_hour(&r) == 300, "5/min is 300/h");
    CHECK(sched_warmup_per_step(&p, &r) == 7200, "5/min over a day");
    r = (struct cfg_warmup_rate){1000, 86400000ULL};
    CHECK(sched_warmup_per_hour(&r) == 41, "1000/d is 41/h rounded down");
    CHECK(strcmp(sched_warmup_state_name(SCHED_WARMUP_HELD), "held") == 0, "state names");
}

int main(void)
{
    test_nominal();
    test_hold();
    test_away();
    test_figures();
    CHECK_EXIT();
}
