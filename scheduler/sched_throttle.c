/*
 * sched_throttle - GCRA in exact integer arithmetic (algorithm and contract in sched_throttle.h)
 *
 * Units are 1/limit ms, held in unsigned __int128: now_ms * limit and burst * period_ms both fit
 * for any 64-bit inputs, so nothing overflows or rounds.
 */
#include "scheduler/sched_throttle.h"

typedef unsigned __int128 u128;

static uint64_t burst_of(const struct sched_rate *r)
{
    return r->max_burst ? r->max_burst : r->limit;
}

void sched_throttle_init(struct sched_throttle *t, const struct sched_rate *rate)
{
    t->rate = *rate;
    t->tat = 0;
}

void sched_throttle_set(struct sched_throttle *t, const struct sched_rate *rate, uint64_t now_ms)
{
    if (sched_rate_eq(&t->rate, rate))
        return;
    if (sched_rate_active(&t->rate) && sched_rate_active(rate)) {
        u128 tat = (t->tat * rate->limit + t->rate.limit - 1) / t->rate.limit; /* rounded up: never a free ms */
        u128 cap = (u128)now_ms * rate->limit + (u128)burst_of(rate) * rate->period_ms;
        t->tat = tat < cap ? tat : cap;
    } else {
        t->tat = 0;
    }
    t->rate = *rate;
}

/* next_tat - the tat after taking n at now, and whether that is allowed (*wait 0) */
static u128 next_tat(const struct sched_throttle *t, uint64_t now_ms, uint64_t n, uint64_t *wait)
{
    const struct sched_rate *r = &t->rate;
    uint64_t burst = burst_of(r);
    if (n > burst)
        n = burst;
    u128 now = (u128)now_ms * r->limit;
    u128 tol = (u128)burst * r->period_ms;
    u128 nt = (t->tat > now ? t->tat : now) + (u128)n * r->period_ms;
    if (nt <= now + tol) {
        *wait = 0;
    } else {
        u128 w = (nt - tol - now + r->limit - 1) / r->limit;
        *wait = w > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)w;
    }
    return nt;
}

uint64_t sched_throttle_wait(const struct sched_throttle *t, uint64_t now_ms, uint64_t n)
{
    if (!sched_rate_active(&t->rate) || n == 0)
        return 0;
    uint64_t wait;
    (void)next_tat(t, now_ms, n, &wait);
    return wait;
}

void sched_throttle_take(struct sched_throttle *t, uint64_t now_ms, uint64_t n)
{
    if (!sched_rate_active(&t->rate) || n == 0)
        return;
    uint64_t wait;
    t->tat = next_tat(t, now_ms, n, &wait);
}

uint64_t sched_throttle_try(struct sched_throttle *t, uint64_t now_ms, uint64_t n)
{
    if (!sched_rate_active(&t->rate) || n == 0)
        return 0;
    uint64_t wait;
    u128 nt = next_tat(t, now_ms, n, &wait);
    if (wait == 0)
        t->tat = nt;
    return wait;
}
