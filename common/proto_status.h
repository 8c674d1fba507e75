/*
 * proto_status - the admin JSON documents: one encoder for the producer, one strict decoder for the consumer
 *
 * Schema, field by field: docs/admin-api.md. Four documents:
 *   queues  the scheduler's status page (sched_status.c writes it into the page, compact); the supervisor
 *           serves it as GET /api/v1/queues with age_ms added (served form, indented); ringctl reads that.
 *   node    GET /api/v1/status: the node, its shared memory and every role instance (supervisor_admin.c
 *           writes it, ringctl reads it).
 *   tsa     the scheduler's traffic shaping automation page (sched_tsa_node.c writes it, compact): effects in
 *           force, recent firings and firings per rule; the supervisor serves it, filtered, as GET /api/v1/tsa/status and
 *           GET /api/v1/tsa/history with age_ms added (served form); ringctl tsa-status / tsa-history read that.
 *   reply   the answer of POST /api/v1/restart/..., POST /api/v1/reload and of every refused request:
 *           {"ok": bool, "detail": text} or {"ok": false, "error": text}.
 *
 * Encoders take the document with borrowed strings and return the JSON text (heap, free()), or NULL
 * when a string is not UTF-8. Decoders copy nothing out of the text they were given; they parse it and
 * check every member the schema names: its type, that integers are whole and in range, strings and
 * arrays within their bounds, role and state names known, and the members that go together present
 * together; otherwise they return -EPROTO with *err saying which member (heap). Members the schema does
 * not name are ignored, so that a member can be added without breaking older clients. A decoded
 * document's strings point into the parsed tree: proto_status_*_fini() releases both.
 */
#ifndef RINGMAIL_PROTO_STATUS_H
#define RINGMAIL_PROTO_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_hist.h"
#include "common/proto_node.h"

#define PROTO_STATUS_DOC_MAX (16u << 20)    /* any document, in bytes */
#define PROTO_STATUS_QUEUES_MAX 200         /* queues listed in the queues document */
#define PROTO_STATUS_PATHS_MAX 500          /* paths listed in the queues document */
#define PROTO_STATUS_NAME_MAX 1024          /* queue, domain, site and source names, in bytes */
#define PROTO_STATUS_TEXT_MAX 4096          /* node id, file paths, role state texts and notes */
#define PROTO_STATUS_DETAIL_MAX (64u << 10) /* a reply's detail or error (a reload lists every error) */
#define PROTO_STATUS_TSA_MAX 1000           /* effects, and firings, listed in the tsa document */
#define PROTO_STATUS_TSA_RULES_MAX 256      /* rules with their firing counts in the tsa document */

struct proto_status_queue {
    const char *name;
    const char *domain; /* "" when the queue has no single domain */
    uint64_t messages, scheduled, retry_interval_s, max_age_s;
};

struct proto_status_path {
    const char *source, *site;
    uint64_t ready, in_flight, connections, connection_limit, delivered, transient, bounced;
    /* shaping: ms until a suspension ends / a rate lets the path go (0 = not held); waits since start */
    uint64_t suspended_ms, throttled_ms, throttle_waits, limit_waits, consecutive_failures;
    const char *provider; /* the shaping provider the path matched; "" none */
    uint64_t connection_attempts, connection_failures; /* connections opened (leases), and closed on an error */
    /* injection-to-delivery of the path's deliveries: per-bucket counts, scale PROTO_HIST_SLOW (proto_hist.h) */
    uint64_t delivery_latency[PROTO_HIST_BUCKETS];
    uint64_t delivery_latency_sum_ms;
};

struct proto_status_queues {
    struct {
        uint64_t messages, scheduled, resolving, ready, in_flight, queues, domains, sites, paths;
    } totals;
    struct {
        uint64_t added, delivered, bounced, expired, transient, requeued, ready_full;
    } since_start;
    struct proto_status_queue *queues; /* largest first, at most PROTO_STATUS_QUEUES_MAX */
    size_t n_queues;
    struct proto_status_path *paths; /* at most PROTO_STATUS_PATHS_MAX */
    size_t n_paths;
    /* per (source, provider), site "other": the paths the page does not list (past its cut) and those the
     * scheduler freed once idle (sched_path_evict), summed, so totals over paths + rest never go back */
    struct proto_status_path *rest; /* at most PROTO_STATUS_PATHS_MAX */
    size_t n_rest;
    int64_t age_ms; /* served form only: milliseconds since the scheduler published the page */
    void *tree;     /* decoded documents: the parsed text */
};

/* one effect in force (active) or one firing (history) */
struct proto_status_tsa_entry {
    const char *action; /* Suspend, SetConfig, SetDomainConfig, SuspendTenant, SuspendCampaign, Bounce... */
    const char *source, *site, *domain, *tenant, *campaign; /* the key; "" for parts it does not have */
    const char *option; /* SetConfig / SetDomainConfig: the option; else NULL (absent) */
    const char *value;  /* ... and its value as JSON text; else NULL (absent) */
    const char *rule_scope, *rule_file;
    uint64_t rule_line;
    const char *regex, *response; /* the regex that matched, the response that fired it */
    uint64_t count;               /* matches that fired it (active: firings that set or extended it) */
    uint64_t start_ms, expires_ms; /* unix ms */
    int64_t remaining_ms;          /* active: ms left when the page was published; history: -1 (absent) */
};

/* firings of one rule since the scheduler started: "FILE:LINE ACTION" ("other" past the cap) */
struct proto_status_tsa_rule {
    const char *rule;
    uint64_t firings;
};

struct proto_status_tsa {
    uint64_t responses; /* TransientFailure and Bounce responses the scheduler got since it started */
    struct proto_status_tsa_entry *active; /* at most PROTO_STATUS_TSA_MAX, soonest expiry first */
    size_t n_active;
    struct proto_status_tsa_entry *history; /* at most PROTO_STATUS_TSA_MAX, newest first */
    size_t n_history;
    struct proto_status_tsa_rule *rules; /* at most PROTO_STATUS_TSA_RULES_MAX, in first-firing order */
    size_t n_rules;
    int64_t age_ms; /* served form only: milliseconds since the scheduler published the page */
    void *tree;
};

struct proto_status_role {
    enum proto_node_role role;
    uint64_t index, instance, pid, generation, restarts;
    enum proto_node_inst_state state;
    int64_t uptime_ms, heartbeat_age_ms; /* -1: null (not running, or no heartbeat yet) */
    uint64_t ring_rtt_us;
    const char *last_exit;    /* "exit 0", "signal 9 (Killed)"...; NULL: null (never exited) */
    int64_t last_exit_ago_ms; /* present exactly when last_exit is; else -1 */
    int64_t held_for_ms;      /* present exactly when the state is held; else -1 */
    uint64_t reload_generation;
    uint64_t counters[PROTO_NODE_CTR__MAX];
};

struct proto_status_node {
    const char *node_id, *config, *data_dir;
    uint64_t uptime_ms;
    struct {
        uint64_t bytes;
        const char *page_source;      /* hugetlb, thp, small or none */
        const char *page_source_name; /* for people */
        uint64_t rings, ring_slots;
        struct {
            uint64_t block_bytes, blocks_total, blocks_used, runs;
        } arena;
    } shm;
    struct {
        uint64_t generation;
        int last_ok;             /* 1 true, 0 false, -1 null (never reloaded) */
        const char *last_detail; /* NULL: null */
    } reload;
    struct proto_status_role *roles; /* in instance order, at most PROTO_NODE_MAX_INSTANCES */
    size_t n_roles;
    bool stopping;
    const char *connection_steering; /* bpf or none */
    const char *connection_steering_note;
    void *tree;
};

struct proto_status_reply {
    bool ok;
    const char *detail; /* exactly one of detail and error */
    const char *error;
    void *tree;
};

/* proto_status_queues_encode - served: the admin API's form (indented, age_ms); else the page's (compact) */
char *proto_status_queues_encode(const struct proto_status_queues *q, bool served);
int proto_status_queues_decode(const char *text, size_t len, bool served, struct proto_status_queues *q,
                               char **err);
void proto_status_queues_fini(struct proto_status_queues *q);

/* proto_status_tsa_encode - served: the admin API's form (indented, age_ms); else the page's (compact) */
char *proto_status_tsa_encode(const struct proto_status_tsa *t, bool served);
int proto_status_tsa_decode(const char *text, size_t len, bool served, struct proto_status_tsa *t, char **err);
void proto_status_tsa_fini(struct proto_status_tsa *t);

char *proto_status_node_encode(const struct proto_status_node *n);
int proto_status_node_decode(const char *text, size_t len, struct proto_status_node *n, char **err);
void proto_status_node_fini(struct proto_status_node *n);

char *proto_status_reply_encode(const struct proto_status_reply *r);
int proto_status_reply_decode(const char *text, size_t len, struct proto_status_reply *r, char **err);
void proto_status_reply_fini(struct proto_status_reply *r);

#endif
