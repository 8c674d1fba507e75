/*
 * sched_core - the scheduler's in-memory core: messages, scheduled queues, domains and sites
 *
 * No I/O and no rings: the role's loop (scheduler_main.c) feeds events in and acts on hooks.
 * This header holds the data model shared by the core's files and the core's own calls; each
 * concern has its file and header: sched_msg (messages, retry), sched_queue (queues and their
 * names), sched_site (domains and the sites they resolve to), sched_path (ready queues per
 * egress path), sched_lease (connection leases), sched_worker (egress workers), sched_name
 * (the name tables), sched_timer (the wheel), sched_pool (egress pools).
 * Flow of one message (each step O(1), or O(pool size) / O(workers) for the two picks):
 *   sched_msg_add()        -> SCHEDULED in the timing wheel, due at `due_ms`
 *   sched_core_advance()   -> past created + max_age: hooks.expire, freed;
 *                             domain's site cached and fresh: READY on the path (source picked by
 *                             the queue's pool, site); otherwise RESOLVING on the domain's
 *                             waiting list and hooks.resolve(domain) once per domain
 *   sched_site_resolved()  -> the domain's waiting messages go READY (site cached for ttl)
 *   sched_site_failed()    -> permanent: hooks.bounce, freed; temporary: retry with backoff
 *   sched_core_dispatch()  -> IN_FLIGHT on a lease: hooks.deliver (sched_lease.h)
 *   sched_msg_result()     -> delivered / bounced: freed; transient: SCHEDULED after backoff
 * A ready queue holds at most max_ready messages: a message that finds it full goes back to
 * the wheel, due after options.ready_full_delay_ms (default 1000 ms) plus up to 10% jitter,
 * without counting an attempt; so messages beyond max_ready wait in their scheduled queue.
 * Expiry is checked whenever a message leaves the wheel, and a retry is never scheduled past
 * the expiry moment, so an expiry is reported at created + max_age (to timer resolution).
 * Backoff for attempt n >= 1: base = min(retry_interval * 2^(n-1), max_retry_interval)
 * (max_retry_interval 0 = no cap), then +-10% uniform jitter from the core's seeded xorshift
 * generator, then clamped to max_retry_interval again, so the cap is never exceeded.
 * Every hooks.resolve must be answered, sooner or later, by sched_site_resolved() or
 * sched_site_failed() (a DNS timeout is a temporary failure): until then the domain's
 * messages wait and no second resolve is asked for that domain. A READY message is not
 * checked for expiry again: it leaves on its next attempt (ready queues are short).
 * Hooks are called synchronously; the message a hook gets is borrowed and, for expire and
 * bounce, freed right after the hook returns. hooks.resolve may call sched_site_resolved()
 * or sched_site_failed() before it returns; hooks.deliver may call sched_msg_result().
 * Queues, domains and their names are freed when their last message leaves; paths, and sites no
 * domain resolves to, when sched_path_evict() finds them idle; sources and pools live until
 * sched_core_free().
 * Queue names are used as given (policy may set any name); domains are compared lowercased.
 * Not thread-safe: one loop owns the core.
 */
#ifndef RINGMAIL_SCHED_CORE_H
#define RINGMAIL_SCHED_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msgid.h"
#include "scheduler/sched_name.h"
#include "scheduler/sched_pool.h"
#include "scheduler/sched_throttle.h"
#include "scheduler/sched_timer.h"

enum sched_msg_state {
    SCHED_MSG_SCHEDULED = 0,
    SCHED_MSG_RESOLVING = 1,
    SCHED_MSG_READY = 2,
    SCHED_MSG_IN_FLIGHT = 3,
};

enum sched_outcome {
    SCHED_OUTCOME_DELIVERED = 0, /* 2xx */
    SCHED_OUTCOME_TRANSIENT = 1, /* 4xx: back to the scheduled queue with backoff */
    SCHED_OUTCOME_BOUNCED = 2,   /* 5xx */
};

#define SCHED_RETRY_INTERVAL_DEFAULT_S 1200u  /* KumoMTA's default, 20 minutes */
#define SCHED_MAX_RETRY_INTERVAL_DEFAULT_S 0u /* no cap, as KumoMTA */
#define SCHED_MAX_AGE_DEFAULT_S 604800u       /* 7 days */
#define SCHED_CONNECTION_LIMIT_DEFAULT 32u
#define SCHED_MAX_DELIVERIES_DEFAULT 1024u
#define SCHED_MAX_READY_DEFAULT 1024u
#define SCHED_READY_FULL_DELAY_DEFAULT_MS 1000u
#define SCHED_QUEUE_NAME_MAX 1024
#define SCHED_PATH_NAMED_MAX 4 /* named limits, throttles, source rates: each, per path */

struct sched_queue_config {
    uint32_t retry_interval_s;
    uint32_t max_retry_interval_s; /* 0 = no cap */
    uint32_t max_age_s;
    uint32_t pool; /* index from sched_core_pool_add(); 0 is the built-in "unspecified" pool */
};

/* a named connection limit or rate (struct sched_named in sched_limit.h): shared by every path
 * naming it; the name is borrowed while the options are being set, then the core's own copy */
struct sched_named_limit {
    const char *name;
    uint64_t limit; /* connections at once over every path naming it; 0 is taken as 1 */
};

struct sched_named_rate {
    const char *name;
    struct sched_rate rate;
};

/* per egress path (source + site); enforced by dispatch (sched_path.h) */
struct sched_path_options {
    uint32_t connection_limit;              /* leases open at once on the path */
    uint32_t max_deliveries_per_connection; /* messages one lease carries, one at a time */
    uint32_t max_ready;                     /* bound of the path's ready queue */
    uint32_t consecutive_connection_failures_before_delay; /* 0 = never */
    struct sched_rate max_message_rate;      /* messages handed out; limit 0 = none */
    struct sched_rate max_connection_rate;   /* leases opened; limit 0 = none */
    struct sched_rate source_selection_rate; /* times the pool picks this source for the site */
    uint32_t n_limits, n_throttles, n_source_rates; /* at most SCHED_PATH_NAMED_MAX each */
    struct sched_named_limit limits[SCHED_PATH_NAMED_MAX];      /* counted once per connection */
    struct sched_named_rate throttles[SCHED_PATH_NAMED_MAX];    /* counted once per message */
    struct sched_named_rate source_rates[SCHED_PATH_NAMED_MAX]; /* counted once per pick */
};

struct sched_msg;
struct sched_lease;
struct sched_path;
struct sched_site;

/* FIFO of messages linked through sched_msg.link */
struct sched_mlist {
    struct sched_msg *head, *tail;
    uint32_t count;
};

/* a message: 88 bytes (malloc rounds 80 up to the same 96); fields are read-only for callers */
struct sched_msg {
    struct msgid id;
    struct sched_timer_node timer; /* armed exactly while SCHEDULED */
    struct {
        struct sched_msg *next, *prev;
    } link; /* RESOLVING: domain waiting list; READY: path ready queue */
    union {
        struct sched_domain *domain; /* RESOLVING */
        struct sched_path *path;     /* READY */
        struct sched_lease *lease;   /* IN_FLIGHT */
    } at;
    struct sched_queue *queue;
    uint64_t created_ms;
    uint16_t attempts;
    uint8_t state;
};

struct sched_domain {
    struct sched_name n; /* lowercase */
    struct sched_site *site;
    uint64_t site_expires_ms;
    struct sched_mlist waiting;
    uint32_t queues; /* queues routing to this domain; freed at 0 */
    bool resolving;  /* hooks.resolve was called and has not been answered */
};

struct sched_queue {
    struct sched_name n;
    struct sched_domain *domain;
    struct sched_queue_config cfg;
    uint32_t count;     /* messages of this queue in any state */
    uint32_t scheduled; /* of which waiting in the wheel */
    uint64_t suspended_until_ms; /* sched_queue_suspend(): no message leaves the wheel before */
};

struct sched_site {
    struct sched_name n;
    struct sched_path **paths; /* indexed by source */
    uint32_t npaths;
    uint64_t held_next_ms; /* the next message every source refused comes back then (sched_path.c) */
    uint32_t domains;      /* domains whose d->site is this one: the site is not evicted while any is */
};

struct sched_hooks {
    void *arg;
    /* queue_config - adjust cfg (pre-filled with the defaults) for a queue being created */
    void (*queue_config)(void *arg, const char *queue, const char *domain, struct sched_queue_config *cfg);
    /* path_config - adjust opt (pre-filled with the defaults) for a path being created by a
     * message of `domain`; names in opt are copied before the hook's caller returns */
    void (*path_config)(void *arg, const char *source, const char *site, const char *domain,
                        struct sched_path_options *opt);
    void (*resolve)(void *arg, const char *domain);
    void (*expire)(void *arg, const struct sched_msg *msg);
    void (*bounce)(void *arg, const struct sched_msg *msg, const char *reason);
    /* deliver - msg goes out on lease; `last`: the lease ends with this message's result */
    void (*deliver)(void *arg, struct sched_msg *msg, struct sched_lease *lease, bool last);
};

struct sched_core_options {
    uint64_t seed;                 /* jitter generator; 0 picks a fixed default */
    uint32_t ready_full_delay_ms;  /* delay of a message that found its ready queue full */
    struct sched_queue_config queue_defaults;
    struct sched_path_options path_defaults;
};

struct sched_stats {
    uint64_t messages, scheduled, resolving, ready, in_flight;
    uint64_t queues, domains, sites, paths, leases, workers_alive;
    /* counters since start */
    uint64_t added, delivered, bounced, expired, transient, removed;
    uint64_t ready_full;  /* placements refused by a full ready queue */
    uint64_t requeued;    /* in-flight messages returned by a dead worker or released lease */
    uint64_t no_source;   /* placements delayed because the queue's pool has no source */
    uint64_t throttle_waits; /* paths held by a rate (message, connection) until a timer */
    uint64_t limit_waits;    /* paths held by a full named connection limit */
    uint64_t source_held;    /* placements delayed because every source was over its selection rate */
    uint64_t failure_delays; /* ready queues sent back after consecutive connection failures */
    uint64_t suspended;      /* due messages re-armed by a queue suspension */
};

enum sched_named_kind {
    SCHED_NAMED_LIMIT = 0,       /* connection limits */
    SCHED_NAMED_THROTTLE = 1,    /* message rates */
    SCHED_NAMED_SOURCE_RATE = 2, /* source-selection rates */
    SCHED_NAMED_KINDS = 3,
};

/* a suspension of a path (sched_path_suspend) or of scheduled queues (sched_queue_suspend) */
struct sched_path_hold {
    char *source, *site;
    uint64_t until_ms;
};

struct sched_queue_hold {
    char *domain;   /* lowercase */
    char *tenant;   /* "" = queues without a tenant; NULL = every tenant */
    char *campaign; /* NULL = every campaign of the tenant */
    uint64_t until_ms;
};

struct sched_core {
    struct sched_hooks hooks;
    struct sched_core_options opt;
    uint64_t rng;
    uint64_t now; /* latest time the loop told us */
    struct sched_timer_wheel wheel;
    struct sched_msg **msgs; /* open addressing by id, linear probing */
    size_t msgs_cap, msgs_count;
    struct sched_name_table queues, domains, sites;
    char **sources;
    uint32_t nsources;
    struct sched_pool *pools;
    uint32_t npools;
    struct sched_path **paths; /* every path in creation order (serial), for stats */
    uint32_t npaths, paths_cap;
    uint64_t path_serial;      /* the last path's serial */
    struct sched_path *active_head, *active_tail; /* paths dispatch can make progress on */
    struct sched_path **holds; /* min-heap of held paths by hold_until (sched_hold.h) */
    uint32_t nholds, holds_cap;
    struct sched_name_table named[SCHED_NAMED_KINDS]; /* sched_limit.h */
    struct sched_path_hold *path_holds;
    uint32_t npath_holds;
    struct sched_queue_hold *queue_holds;
    uint32_t nqueue_holds;
    struct sched_lease **leases; /* by lease id */
    uint32_t nleases, leases_cap, leases_live, lease_free;
    struct sched_worker *workers;
    uint32_t nworkers, workers_alive, worker_rr;
    struct sched_stats st; /* counters part; gauges are filled by sched_core_stats() */
};

void sched_core_options_default(struct sched_core_options *opt);
/* sched_core_new - opt NULL = defaults; hooks are copied; now_ms starts the wheel */
struct sched_core *sched_core_new(const struct sched_core_options *opt, const struct sched_hooks *hooks,
                                  uint64_t now_ms);
void sched_core_free(struct sched_core *core);

/* sched_core_source_add - index of the named egress source (created once) */
uint32_t sched_core_source_add(struct sched_core *core, const char *name);
/* sched_core_pool_add - index of the named pool (created once, empty); "unspecified" is 0 */
uint32_t sched_core_pool_add(struct sched_core *core, const char *name);
/* sched_core_pool_weight - set a source's weight in a pool (0 removes); 0 or -EINVAL/-ENOENT */
int sched_core_pool_weight(struct sched_core *core, uint32_t pool, uint32_t source, uint32_t weight);

/* sched_core_advance - handle every message due by now_ms, end every path hold due by then;
 * returns how many messages left the wheel */
size_t sched_core_advance(struct sched_core *core, uint64_t now_ms);
/* sched_core_next_due - when to call advance next (lower bound), SCHED_TIMER_NEVER when idle;
 * a path held by a rate or a suspension makes it exactly the moment the hold ends */
uint64_t sched_core_next_due(const struct sched_core *core);
/* sched_core_dispatch - hand up to max READY messages to leases; returns how many */
size_t sched_core_dispatch(struct sched_core *core, size_t max);

/* sched_core_stats - gauges and counters */
void sched_core_stats(const struct sched_core *core, struct sched_stats *out);
/* sched_core_check - O(n) walk proving every message is in exactly one place; 0 or -EINVAL (logged) */
int sched_core_check(const struct sched_core *core);

/* sched_core_rng_next - the core's xorshift jitter generator: next value from *state (seeded, never 0) */
uint64_t sched_core_rng_next(uint64_t *state);

#endif
