/*
 * scheduler - the scheduler role's own state, shared by its files
 *
 * scheduler_main.c: the role runtime glue, ring records in and out, the outbox, egress liveness.
 * sched_route.c: the resolve hook (routes from the configuration, else MX lookups -> site names).
 * sched_pathcfg.c: each path's egress-side configuration, sent to a worker before the DELIVER that needs it.
 * sched_keys.c: the core knows one entry per (message, recipient domain); a message whose
 * recipients span several domains gets a synthesized key per extra domain, mapped here.
 */
#ifndef RINGMAIL_SCHEDULER_H
#define RINGMAIL_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "common/proto_tsa.h"
#include "dns/dns.h"
#include "policy/shaping.h"
#include "common/msgid.h"
#include "rt/role_rt.h"
#include "scheduler/sched_core.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_pathcfg.h"
#include "scheduler/sched_queue.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"

/* (message id, first recipient of a domain) <-> the core's key */
struct sched_xkey {
    struct msgid id;
    uint32_t rcpt_first;
    bool used;
};

struct sched_keys {
    struct sched_xkey *v; /* key {hi = SCHED_KEYS_HI, lo = index} */
    uint32_t n, cap, free_head;
    uint32_t *free_next;
    uint32_t *index; /* open addressing by (id, rcpt_first) -> index + 1; 0 empty, UINT32_MAX deleted */
    uint32_t index_cap, index_used;
};

/* real ids carry a millisecond timestamp above bit 16 of hi: hi == 1 is never a real id */
#define SCHED_KEYS_HI 1u

struct sched_out {
    unsigned to;
    struct proto_rec rec;
};

struct proto_status_path;
struct sched_tsa;
struct sched_warmup_node;
struct shaping;

struct scheduler {
    struct role_rt *rt;
    struct sched_core *core;
    struct dns_resolver *dns;
    struct sched_keys keys;
    struct sched_pathcfg *pathcfg;
    struct sched_out *outbox; /* records a full ring refused, sent in order later */
    uint32_t n_out, cap_out;
    uint32_t egress_gen[PROTO_NODE_MAX_INSTANCES]; /* generation we gave leases to; 0 = not a worker now */
    uint32_t spool_gen;
    bool walk_requested;
    enum dns_status fail_status; /* the DNS answer behind the bounce hook being called */
    uint64_t deliveries, fails;
    uint64_t status_at_ns; /* last status publication */
    struct evl_timer due;  /* wakes the loop when the core's next due moment comes before the tick */
    /* sched_shaping.c */
    struct shaping *shaping;
    uint32_t shaping_gen;  /* bumped by every load: MX answers for an older one are dropped */
    json_t *path_domains;  /* "SOURCE\nSITE" -> the domain that created the path */
    json_t *norollup_mx;   /* mx_rollup = false domain -> its MX rollup name */
    struct shaping_path_config last_pc; /* the last path resolved: its names live until the core copied them */
    bool has_last_pc;
    /* sched_tsa_node.c: traffic shaping automation */
    struct sched_tsa *tsa;
    struct buf *tsa_out; /* firings for the spool waiting for arena room, oldest first */
    size_t n_tsa_out;
    json_t *path_providers;     /* sched_shaping.c: "SOURCE\nSITE" -> the path's provider name ("" none) */
    struct sched_admin *admin;  /* sched_admin.c: the admin command channel */
    struct sched_mtasts *mtasts; /* sched_mtasts.c: MTA-STS policies */
    struct sched_warmup_node *warmup; /* sched_warmup_node.c: warm-up ramps */
    /* sched_status.c: the counters of paths freed once idle, per (source, provider) (site "other", names owned) */
    struct proto_status_path *retired;
    size_t n_retired;
    uint64_t evict_at_ms; /* the last idle-path sweep */
};

uint64_t scheduler_now_ms(void);
/* sched_status_publish - the status page: totals, largest queues, paths (sched_status.c) */
void sched_status_publish(struct scheduler *sc);
/* sched_status_retire - a path is about to be freed (sched_path_evict): its counters go on in the page's
 * "rest", under its source and provider; sched_status_fini frees the table */
void sched_status_retire(struct scheduler *sc, const struct sched_path *p);
void sched_status_fini(struct scheduler *sc);
/* scheduler_send - send now, or queue behind earlier refused records to the same role */
void scheduler_send(struct scheduler *sc, unsigned to, struct proto_rec *rec);
/* scheduler_send_fail - MSG_SCHEDULER_MESSAGE_FAIL of kind (enum proto_fail_kind) for msg; forgets its key */
void scheduler_send_fail(struct scheduler *sc, const struct sched_msg *msg, uint16_t kind, uint16_t reason);

/* sched_tsa_node.c: the traffic shaping automation in the scheduler process */
/* sched_tsa_node_init - the automation engine on sc->shaping's rules (before sched_shaping_init) */
void sched_tsa_node_init(struct scheduler *sc);
void sched_tsa_node_fini(struct scheduler *sc);
/* sched_tsa_node_record - MSG_SPOOL_TSA_RESPONSE and MSG_SPOOL_TSA_STATE */
void sched_tsa_node_record(struct scheduler *sc, const struct proto_rec *rec);
/* sched_tsa_node_admit - a message just queued: false when a Bounce effect covers it (it is bounced with
 * an AdminBounce and leaves the core) */
bool sched_tsa_node_admit(struct scheduler *sc, struct msgid key);
/* sched_tsa_node_tick - expiries, Bounce sweeps, firings owed to the spool, the tsa status page */
void sched_tsa_node_tick(struct scheduler *sc, bool publish);
/* sched_tsa_node_store - a firing (or another record kept with them: a warm-up hold) to the spool, which
 * stores it in the "tsa" family and sends it back at the next start-up walk */
void sched_tsa_node_store(struct scheduler *sc, const struct proto_tsa_event *ev);
/* sched_tsa_overrides - the active SetConfig / SetDomainConfig overrides of a path merged into one
 * object {option: value}; NULL when none. Caller decrefs. */
json_t *sched_tsa_overrides(struct scheduler *sc, const char *source, const char *site, const char *domain);

/* sched_warmup_node.c: warm-up ramps ([warmup."SOURCE"]) */
void sched_warmup_node_init(struct scheduler *sc);
void sched_warmup_node_fini(struct scheduler *sc);
/* sched_warmup_node_reload - the configuration was reloaded (before the shaping reload resolves every path) */
void sched_warmup_node_reload(struct scheduler *sc);
/* sched_warmup_node_tick - judge step boundaries; a step that changed applies to its paths at once */
void sched_warmup_node_tick(struct scheduler *sc);
/* sched_warmup_path - a warming source's path being resolved: its step's rates join opt (names borrowed
 * from the warm-up state, which outlives the core's copy) */
void sched_warmup_path(struct scheduler *sc, const char *source, const char *site, const char *provider,
                       struct sched_path_options *opt);
/* sched_warmup_result - one attempt's result on path p (deferred: transient) */
void sched_warmup_result(struct scheduler *sc, const struct sched_path *p, bool deferred);
/* sched_warmup_tsa - an automation rule fired on a response of source to site */
void sched_warmup_tsa(struct scheduler *sc, const char *source, const char *site, const char *text);
/* sched_warmup_restore - a record of the spool's start-up walk: true when it is a stored warm-up hold (taken, or
 * refused with a log line), false when it is a TSA firing for sched_tsa_restore() */
bool sched_warmup_restore(struct scheduler *sc, const struct proto_tsa_event *ev);
/* sched_warmup_status - the warmup-status op's result: {"now_ms", "sources": [...]} (docs/admin-api.md) */
json_t *sched_warmup_status(struct scheduler *sc);

void sched_route_resolve(void *arg, const char *domain);
/* sched_rebind_resolve - a routing domain "route:HOSTS" (an operator's rebind to a route, sched_rebind.c):
 * answered at once with the site of those hosts; false for any other domain */
bool sched_rebind_resolve(struct scheduler *sc, const char *domain);
void sched_route_init(struct scheduler *sc);
void sched_route_fini(struct scheduler *sc);

/* sched_keys_key - the core's key for (id, rcpt_first), made when `create` */
bool sched_keys_key(struct sched_keys *k, struct msgid id, uint32_t rcpt_first, bool create, struct msgid *out);
/* sched_keys_real - (id, rcpt_first) of a core key */
void sched_keys_real(const struct sched_keys *k, struct msgid key, struct msgid *id, uint32_t *rcpt_first);
/* sched_keys_forget - the core dropped the entry: free a synthesized key */
void sched_keys_forget(struct sched_keys *k, struct msgid key);
void sched_keys_fini(struct sched_keys *k);

#endif
