/*
 * sched_warmup - the step arithmetic of a warm-up ramp ([warmup."SOURCE"], cfg.h): no I/O, no clock
 *
 * One struct sched_warmup_key per (warming source, provider or site). Steps are numbered from 0 and
 * last plan->step_ms each, boundaries at start + k * step_ms (so the nominal step at `now` is
 * (now - start) / step_ms, the last step and beyond meaning done). sched_warmup_key_init() puts a new
 * key on its nominal step. sched_warmup_key_advance() judges each step boundary that `now` has passed:
 * the step that ended advances to the next one only when its deferral rate (deferrals / attempts
 * over that step; no attempt is a rate of 0) is at most plan->max_deferral_rate and no Traffic
 * Shaping Automation rule fired on a response of this source during it; otherwise the key stays on
 * that step (held: held_why says why, held_since_ms since which boundary) and the next step is judged
 * afresh. A key whose last step ended well is done: no allowance any more. Before `start` the key is
 * pending on step 0 (its allowance applies: a new source does not start at full speed).
 * Times are unix ms given by the caller. Counters belong to the step in progress.
 */
#ifndef RINGMAIL_SCHED_WARMUP_H
#define RINGMAIL_SCHED_WARMUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg/cfg.h"

enum sched_warmup_state {
    SCHED_WARMUP_PENDING = 0,   /* before start: step 0's allowance */
    SCHED_WARMUP_ADVANCING = 1, /* on schedule */
    SCHED_WARMUP_HELD = 2,      /* a step ended over the deferral threshold or with a TSA firing */
    SCHED_WARMUP_DONE = 3,      /* past the last step: no allowance */
};

#define SCHED_WARMUP_WHY_MAX 320

struct sched_warmup_key {
    uint32_t step;                /* 0-based; == plan->n_steps: done */
    uint64_t step_start_ms;       /* the boundary the current step started at (start, for a pending key) */
    uint64_t attempts, deferrals; /* results of the current step: every attempt, the transient ones */
    uint64_t tsa_firings;         /* responses of this step that fired an automation rule */
    char tsa_last[160];           /* the last of them, as the receiver said it */
    bool held;
    uint64_t held_since_ms;              /* the boundary the hold began at */
    char held_why[SCHED_WARMUP_WHY_MAX]; /* "" when not held */
};

/* sched_warmup_nominal - the step (0-based) the schedule alone puts `now` on; plan->n_steps when past it */
uint32_t sched_warmup_nominal(const struct cfg_warmup *plan, uint64_t now_ms);
void sched_warmup_key_init(const struct cfg_warmup *plan, struct sched_warmup_key *k, uint64_t now_ms);
/* sched_warmup_key_advance - judge every boundary passed by now; true when the step changed */
bool sched_warmup_key_advance(const struct cfg_warmup *plan, struct sched_warmup_key *k, uint64_t now_ms);
/* sched_warmup_key_result - one attempt's result on the key's paths */
void sched_warmup_key_result(struct sched_warmup_key *k, bool deferred);
/* sched_warmup_key_tsa - an automation rule fired on a response of the key's source (text: the response) */
void sched_warmup_key_tsa(struct sched_warmup_key *k, const char *text);
/* sched_warmup_allowance - the rate of the current step; NULL when done */
const struct cfg_warmup_rate *sched_warmup_allowance(const struct cfg_warmup *plan,
                                                     const struct sched_warmup_key *k);
enum sched_warmup_state sched_warmup_state_of(const struct cfg_warmup *plan, const struct sched_warmup_key *k,
                                              uint64_t now_ms);
const char *sched_warmup_state_name(enum sched_warmup_state s);
/* sched_warmup_next_ms - the boundary that ends the current step (0 when done) */
uint64_t sched_warmup_next_ms(const struct cfg_warmup *plan, const struct sched_warmup_key *k);
/* sched_warmup_per_hour - a rate as messages per hour (rounded down) */
uint64_t sched_warmup_per_hour(const struct cfg_warmup_rate *r);
/* sched_warmup_per_step - the messages a rate lets through in one step (rounded down) */
uint64_t sched_warmup_per_step(const struct cfg_warmup *plan, const struct cfg_warmup_rate *r);

#endif
