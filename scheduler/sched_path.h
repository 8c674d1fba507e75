/*
 * sched_path - egress paths: one ready queue per (source, site), and its throttles
 *
 * A path is created the first time a message is placed on it (or its source is considered for
 * one by the pool); its options come from hooks.path_config (defaults: connection_limit 32,
 * max_deliveries_per_connection 1024, max_ready 1024, no rates). sched_core_dispatch() walks the
 * paths that can make progress (the active list) and hands their READY messages to leases
 * (sched_lease.h), so dispatch is O(messages handed out). Handing out a message needs:
 *   - the path not suspended (sched_path_suspend);
 *   - max_message_rate and every named throttle of the path (one each per message);
 *   - an idle lease, or room to open one: connection_limit, every named limit of the path,
 *     and max_connection_rate (one per lease opened).
 * A path stopped by a rate is held until the moment the rate allows (throttled_until_ms: a
 * timer, sched_hold.h), by a suspension until it ends, by a named limit until a lease of that
 * limit closes (sched_limit.h), by its own connection_limit until one of its leases ends.
 * Placement: the queue's pool picks the source by smooth weighted round robin among the sources
 * whose (source, site) path is within its source_selection_rate and named source rates; when
 * every source is over, the message goes back to the wheel until the first moment one allows
 * (no attempt counted); further messages refused by every source follow one pick interval (of
 * those sources' rates together) apart, so a backlog does not all come back at every allowed moment. consecutive_connection_failures_before_delay: lease closes reported as
 * errors with no 2xx/5xx result in between count up; at N the path's READY messages go back to
 * the wheel after the queue's retry backoff for their attempt count (no attempt counted) and the
 * count starts over. Options set on a live path (sched_path_options_set) apply at once: a lowered
 * limit lets open leases drain, a raised one dispatches at the next sched_core_dispatch().
 */
#ifndef RINGMAIL_SCHED_PATH_H
#define RINGMAIL_SCHED_PATH_H

#include "common/proto_hist.h"
#include "scheduler/sched_core.h"

struct sched_named;

struct sched_path {
    struct sched_site *site;
    uint32_t source;
    struct sched_path_options opt; /* names point at the core's interned copies */
    struct sched_mlist ready;
    uint32_t in_flight, connections, idle;
    struct sched_lease *idle_head;
    struct sched_path *act_next, *act_prev;
    bool active;
    uint64_t delivered, transient, bounced;
    struct sched_throttle msg_rate, conn_rate, src_rate;
    struct sched_named *limits[SCHED_PATH_NAMED_MAX];       /* opt.n_limits */
    struct sched_named *throttles[SCHED_PATH_NAMED_MAX];    /* opt.n_throttles */
    struct sched_named *source_rates[SCHED_PATH_NAMED_MAX]; /* opt.n_source_rates */
    struct sched_named *waiting_on;       /* the named limit whose list the path is on */
    struct sched_path *w_next, *w_prev;   /* on that list */
    struct sched_named *reserved_on;      /* woken by that limit: a slot is held for this path */
    uint32_t hold_idx;                    /* in the core's hold heap; UINT32_MAX when not */
    /* status */
    uint64_t throttled_until_ms;  /* held by a rate until then (0: not) */
    uint64_t suspended_until_ms;  /* suspended until then (0: not) */
    uint32_t consecutive_failures;
    uint64_t throttle_waits, limit_waits, source_skips, failure_delays;
    uint64_t conn_attempts, conn_failures; /* leases opened, and closed on an error (/metrics) */
    uint64_t dlv_latency[PROTO_HIST_BUCKETS]; /* injection-to-delivery, scale PROTO_HIST_SLOW */
    uint64_t dlv_latency_sum_ms;
    uint64_t serial;                      /* unique for the core's life, rising in core->paths order */
    bool idle_marked;                     /* sched_path_evict(): seen idle at idle_mark_ms with that activity */
    uint64_t idle_mark_ms, idle_mark_act;
};

void sched_path_options_default(struct sched_path_options *opt);
/* sched_path_options_set - new options (reload, SetConfig), applied at once: open leases above a
 * lowered limit drain, a raised limit dispatches; named objects take the values given here */
void sched_path_options_set(struct sched_core *core, struct sched_path *path, const struct sched_path_options *opt);
const char *sched_path_source_name(const struct sched_core *core, const struct sched_path *path);
void sched_path_foreach(const struct sched_core *core, void (*cb)(void *arg, const struct sched_path *p), void *arg);
/* sched_path_find - the path of (source, site) by name, NULL when it does not exist */
struct sched_path *sched_path_find(const struct sched_core *core, const char *source, const char *site);

/*
 * sched_path_suspend - no lease opens and no message is handed out on (source, site) before
 * until_ms (until_ms 0, or a time past, cancels). Kept in a table, so a path created later picks
 * it up. 0, -EINVAL for an empty name. sched_path_suspensions() lists the active ones (expired
 * entries are dropped first); the array is the core's, valid until its next change.
 */
int sched_path_suspend(struct sched_core *core, const char *source, const char *site, uint64_t until_ms);

/*
 * sched_path_evict - free the paths that have held nothing for idle_ms (0: every path idle now), and the
 * sites left with no path and no domain resolving to them: a node that delivers to a long tail of domains
 * would otherwise keep a path per (source, site) it ever used. Idle means no message ready or in flight, no
 * lease (open or idle), not active, not waiting on or holding a named limit, not held (suspension, rate or
 * failure delay), no failure streak, and its own rates at full burst: a path made again when mail comes
 * (its options from the hooks, its suspension from the table) is then the same as the one freed. retire,
 * when given, sees each path just before it is freed (to keep its counters). Every call also frees the
 * sites left with no path and no domain, whether or not it freed a path. Returns the paths freed;
 * core->paths keeps its order, serials rising.
 */
typedef void (*sched_path_retire_fn)(void *arg, const struct sched_path *path);
size_t sched_path_evict(struct sched_core *core, uint64_t idle_ms, uint64_t now_ms, sched_path_retire_fn retire,
                        void *arg);
size_t sched_path_suspensions(struct sched_core *core, const struct sched_path_hold **out);

/* ---- between the core's files only ---- */

/* sched_path_place - a message leaves the wheel or a waiting list for `site` */
void sched_path_place(struct sched_core *core, struct sched_msg *msg, struct sched_site *site, uint64_t now_ms);
/* sched_path_unready - take a READY message off its path */
void sched_path_unready(struct sched_core *core, struct sched_msg *msg);
/* sched_path_update - put the path on the active list, or take it off, after any change of its
 * ready count, idle leases, connections, limits or holds */
void sched_path_update(struct sched_core *core, struct sched_path *path);
/* sched_path_rotate - an active path goes to the back of the active list, for fairness */
void sched_path_rotate(struct sched_core *core, struct sched_path *path);
/* sched_path_dispatch - hand up to max of the path's READY messages to leases; returns how many */
size_t sched_path_dispatch(struct sched_core *core, struct sched_path *path, size_t max);
/* sched_path_conn_failed - a lease of the path closed on an error */
void sched_path_conn_failed(struct sched_core *core, struct sched_path *path, uint64_t now_ms);
/* sched_path_held - suspended or throttled at the core's now */
bool sched_path_held(const struct sched_core *core, const struct sched_path *path);
/* sched_path_can_open - room for one more lease in connection_limit and every named limit */
bool sched_path_can_open(const struct sched_path *path);

#endif
