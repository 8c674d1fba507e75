/*
 * sched_warmup - the step arithmetic of a warm-up ramp (contract in sched_warmup.h)
 */
#include "scheduler/sched_warmup.h"

#include <stdio.h>
#include <string.h>

uint32_t sched_warmup_nominal(const struct cfg_warmup *plan, uint64_t now_ms)
{
    if (now_ms < plan->start_ms || plan->step_ms == 0)
        return 0;
    uint64_t n = (now_ms - plan->start_ms) / plan->step_ms;
    return n >= plan->n_steps ? plan->n_steps : (uint32_t)n;
}

void sched_warmup_key_init(const struct cfg_warmup *plan, struct sched_warmup_key *k, uint64_t now_ms)
{
    memset(k, 0, sizeof(*k));
    k->step = sched_warmup_nominal(plan, now_ms);
    k->step_start_ms = plan->start_ms + (uint64_t)k->step * plan->step_ms;
}

/* over - the step's deferral rate is above the plan's threshold (compared without rounding) */
static bool over(const struct cfg_warmup *plan, const struct sched_warmup_key *k)
{
    return k->attempts > 0 && (double)k->deferrals > plan->max_deferral_rate * (double)k->attempts;
}

/* why_of - the reasons the step that just ended holds */
static void why_of(const struct cfg_warmup *plan, const struct sched_warmup_key *k, char *out, size_t cap)
{
    int n = 0;
    out[0] = '\0';
    if (over(plan, k))
        n = snprintf(out, cap, "deferral rate %.3f (%llu of %llu attempts) above max_deferral_rate %.3f",
                     (double)k->deferrals / (double)k->attempts, (unsigned long long)k->deferrals,
                     (unsigned long long)k->attempts, plan->max_deferral_rate);
    if (k->tsa_firings > 0 && n >= 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "%sTSA fired %llu time(s) on this source: %s", n > 0 ? "; " : "",
                 (unsigned long long)k->tsa_firings, k->tsa_last);
}

bool sched_warmup_key_advance(const struct cfg_warmup *plan, struct sched_warmup_key *k, uint64_t now_ms)
{
    uint32_t before = k->step;
    /* each pass ends one step: it advances (or the key is done), or holds and the next pass starts with empty
     * counters; so at most 2 * n_steps + 1 passes however long the scheduler was away */
    while (k->step < plan->n_steps && plan->step_ms > 0 && now_ms >= k->step_start_ms + plan->step_ms) {
        uint64_t ended = k->step_start_ms + plan->step_ms;
        if (over(plan, k) || k->tsa_firings > 0) {
            if (!k->held)
                k->held_since_ms = ended;
            k->held = true;
            why_of(plan, k, k->held_why, sizeof(k->held_why));
        } else {
            k->held = false;
            k->held_why[0] = '\0';
            k->held_since_ms = 0;
            k->step++;
        }
        k->step_start_ms = ended;
        k->attempts = k->deferrals = k->tsa_firings = 0;
        k->tsa_last[0] = '\0';
    }
    return k->step != before;
}

void sched_warmup_key_result(struct sched_warmup_key *k, bool deferred)
{
    k->attempts++;
    if (deferred)
        k->deferrals++;
}

void sched_warmup_key_tsa(struct sched_warmup_key *k, const char *text)
{
    k->tsa_firings++;
    snprintf(k->tsa_last, sizeof(k->tsa_last), "%s", text ? text : "");
}

const struct cfg_warmup_rate *sched_warmup_allowance(const struct cfg_warmup *plan,
                                                     const struct sched_warmup_key *k)
{
    return k->step < plan->n_steps ? &plan->steps[k->step] : NULL;
}

enum sched_warmup_state sched_warmup_state_of(const struct cfg_warmup *plan, const struct sched_warmup_key *k,
                                              uint64_t now_ms)
{
    if (k->step >= plan->n_steps)
        return SCHED_WARMUP_DONE;
    if (k->held)
        return SCHED_WARMUP_HELD;
    return now_ms < plan->start_ms ? SCHED_WARMUP_PENDING : SCHED_WARMUP_ADVANCING;
}

const char *sched_warmup_state_name(enum sched_warmup_state s)
{
    static const char *const names[] = {"pending", "advancing", "held", "done"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

uint64_t sched_warmup_next_ms(const struct cfg_warmup *plan, const struct sched_warmup_key *k)
{
    return k->step < plan->n_steps ? k->step_start_ms + plan->step_ms : 0;
}

static uint64_t scale(uint64_t limit, uint64_t num, uint64_t period_ms)
{
    if (period_ms == 0)
        return 0;
    unsigned __int128 v = (unsigned __int128)limit * num / period_ms;
    return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

uint64_t sched_warmup_per_hour(const struct cfg_warmup_rate *r)
{
    return scale(r->limit, 3600000u, r->period_ms);
}

uint64_t sched_warmup_per_step(const struct cfg_warmup *plan, const struct cfg_warmup_rate *r)
{
    return scale(r->limit, plan->step_ms, r->period_ms);
}
