/*
 * sched_throttle - GCRA rate limiter: `limit` per `period_ms`, bursts of up to max_burst
 *
 * The generic cell rate algorithm in exact integer arithmetic. Time is counted in units of
 * 1/limit ms, so the emission interval T = period_ms / limit ms is exactly period_ms units and
 * no rounding accumulates ("3/s" is one every 333.33.. ms, exactly). The state is tat, the
 * theoretical arrival time, in units. Taking n at now (units):
 *   new = max(tat, now) + n * T
 *   allowed when new - now <= B * T     (B = max_burst, or limit when max_burst is 0)
 *   then tat = new; else nothing is taken and the wait is ceil((new - B * T - now) / limit) ms,
 *   the first whole millisecond at which the same call is allowed.
 * So a fresh (or long idle) throttle passes B at once, then one every T; idle time refills the
 * credit at one per T up to B. A request for more than B is taken as B (it could never pass).
 * A rate with limit 0 or period_ms 0 is no limit: everything passes at once.
 * sched_throttle_set() changes the rate and keeps the debt in time (tat rescaled to the new units),
 * capped at one full burst of the new rate (tat <= now + B * T): after lowering, no fresh burst;
 * after raising, the next passes within one new interval instead of paying the old rate's debt.
 */
#ifndef RINGMAIL_SCHED_THROTTLE_H
#define RINGMAIL_SCHED_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

/* limit per period_ms, GCRA burst max_burst (0 = limit); limit 0 = no limit */
struct sched_rate {
    uint64_t limit;
    uint64_t period_ms;
    uint64_t max_burst;
};

struct sched_throttle {
    struct sched_rate rate;
    unsigned __int128 tat; /* units of 1/rate.limit ms */
};

static inline bool sched_rate_active(const struct sched_rate *r)
{
    return r->limit > 0 && r->period_ms > 0;
}

static inline bool sched_rate_eq(const struct sched_rate *a, const struct sched_rate *b)
{
    return a->limit == b->limit && a->period_ms == b->period_ms && a->max_burst == b->max_burst;
}

void sched_throttle_init(struct sched_throttle *t, const struct sched_rate *rate);
/* sched_throttle_set - a new rate at now_ms; what was taken still counts, up to the new burst */
void sched_throttle_set(struct sched_throttle *t, const struct sched_rate *rate, uint64_t now_ms);
/* sched_throttle_wait - 0 when n would pass at now_ms, else the ms to wait; takes nothing */
uint64_t sched_throttle_wait(const struct sched_throttle *t, uint64_t now_ms, uint64_t n);
/* sched_throttle_take - take n at now_ms (after sched_throttle_wait() said 0) */
void sched_throttle_take(struct sched_throttle *t, uint64_t now_ms, uint64_t n);
/* sched_throttle_try - take n when allowed and return 0, else the ms to wait (nothing taken) */
uint64_t sched_throttle_try(struct sched_throttle *t, uint64_t now_ms, uint64_t n);

#endif
