/*
 * proto_node - the node's layout as every process sees it: roles, the role table, counters, status page
 *
 * Instance numbering (the index every ring record's `src` carries and the role table's order):
 *   0 spool, 1 scheduler, 2 .. 2+N-1 ingress workers, then M egress workers.
 * proto_node_instance_of() maps (role, worker index) to that number, or -1.
 *
 * The role table (struct proto_node_instance, one slot per instance) is written by the supervisor
 * (pid, state, generation, restarts, exit status) and by each instance for its own slot (heartbeat,
 * ready, counters). Fields are atomics; a reader in another process sees each one whole. The slot
 * houses the instance's doorbell, which belongs to the shm layer (struct shm_bell, reached through
 * shm_segment_bell()): common/ sits below shm/, so here it is only its reserved, aligned space.
 *
 * Counters are written only by the instance itself (relaxed atomics); proto_node_counter_name() is the
 * name the admin API and /metrics publish, proto_node_counter_is_gauge() tells a value that goes up
 * and down (set, not added) from a count. Histograms (hist[], enum proto_node_hist) likewise: one writer,
 * relaxed adds (proto_hist_record); readers take proto_hist_read()'s bounded copy. An ingress instance
 * also counts per listener (listeners[], the [[listener]] order): connections, open sessions, messages
 * accepted and refusals by reply code (enum proto_node_reject).
 *
 * The status pages: one writer (the scheduler) publishes a JSON document of its queues and paths, and
 * one of its traffic shaping automation (schema: docs/admin-api.md, codec: common/proto_status.h);
 * any process reads a consistent copy
 * (shm_segment_status_publish/shm_segment_status_read). A sequence lock: seq is odd while the writer copies.
 * Two more pages are the admin command channel (common/proto_admin.h): the supervisor writes requests
 * into one, the scheduler its replies into the other; each reader decodes a copy. Two more are the same
 * channel to the spool (its ops: proto_admin_op_spool()).
 *
 * The layout is shared memory between processes of one build: shm/shm_segment.h versions it
 * (SHM_LAYOUT_VERSION); the asserts below pin the sizes it was versioned with.
 */
#ifndef RINGMAIL_PROTO_NODE_H
#define RINGMAIL_PROTO_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_hist.h"

#define PROTO_NODE_MAX_WORKERS 32
#define PROTO_NODE_MAX_INSTANCES (2 + 2 * PROTO_NODE_MAX_WORKERS)
#define PROTO_NODE_STATUS_BYTES (1u << 20) /* one status page in all, header included */

/* the status pages, PROTO_NODE_STATUS_BYTES each, one after the other */
enum proto_node_status_page {
    PROTO_NODE_STATUS_QUEUES = 0, /* the scheduler's queues document */
    PROTO_NODE_STATUS_TSA = 1,    /* the scheduler's traffic shaping automation document */
    PROTO_NODE_STATUS_ADMIN_REQ = 2,   /* the command channel: the supervisor's request (proto_admin.h) */
    PROTO_NODE_STATUS_ADMIN_REPLY = 3, /* ... and the scheduler's reply */
    PROTO_NODE_STATUS_SPOOL_REQ = 4,   /* the spool's command channel: the supervisor's request (proto_admin.h) */
    PROTO_NODE_STATUS_SPOOL_REPLY = 5, /* ... and the spool's reply */
    PROTO_NODE_STATUS_PAGES = 6,
};
#define PROTO_NODE_BELL_BYTES 64           /* the doorbell's space in a role table slot */

enum proto_node_role {
    PROTO_NODE_ROLE_SPOOL = 0,
    PROTO_NODE_ROLE_SCHEDULER = 1,
    PROTO_NODE_ROLE_INGRESS = 2,
    PROTO_NODE_ROLE_EGRESS = 3,
    PROTO_NODE_ROLE__MAX = 4,
};

enum proto_node_inst_state {
    PROTO_NODE_INST_EMPTY = 0,    /* never started */
    PROTO_NODE_INST_STARTING = 1, /* forked, not ready yet */
    PROTO_NODE_INST_READY = 2,    /* registered and serving */
    PROTO_NODE_INST_DRAINING = 3, /* asked to stop */
    PROTO_NODE_INST_DEAD = 4,     /* exited; a restart is scheduled */
    PROTO_NODE_INST_HELD = 5,     /* crash-looping; held off until the hold time passes */
    PROTO_NODE_INST_STOPPED = 6,  /* stopped on purpose (node stopping) */
    PROTO_NODE_INST__MAX = 7,
};

/* per-instance counters, written only by the instance itself (relaxed atomics) */
enum proto_node_counter {
    PROTO_NODE_CTR_RING_PUSHED = 0,
    PROTO_NODE_CTR_RING_POPPED,
    PROTO_NODE_CTR_RING_FULL,
    PROTO_NODE_CTR_RING_BAD,
    PROTO_NODE_CTR_RING_STALE, /* records for an older generation of this instance, dropped */
    PROTO_NODE_CTR_PINGS_SENT,
    PROTO_NODE_CTR_PONGS_RECEIVED,
    PROTO_NODE_CTR_LOOP_WAKEUPS,
    PROTO_NODE_CTR_RELOADS,
    PROTO_NODE_CTR_SMTP_CONNECTIONS,
    PROTO_NODE_CTR_SMTP_COMMANDS,
    PROTO_NODE_CTR_MESSAGES_ACCEPTED, /* ingress: 250 after DATA/BDAT */
    PROTO_NODE_CTR_MESSAGES_STORED,   /* spool: messages made durable */
    PROTO_NODE_CTR_SPOOL_COMMITS,     /* spool: write batches synced (one WAL fsync each) */
    PROTO_NODE_CTR_SPOOL_COMMIT_FAILURES,
    PROTO_NODE_CTR_STORE_REJECTED,  /* spool: store requests that failed validation */
    PROTO_NODE_CTR_MESSAGES_QUEUED, /* scheduler: gauge, messages announced by the spool and not yet done */
    PROTO_NODE_CTR_QUARANTINED,     /* spool: records moved aside at the start-up walk */
    PROTO_NODE_CTR_LOG_DROPPED,     /* log records dropped (arena or ring full, or invalid) */
    PROTO_NODE_CTR_SMTP_SESSIONS,   /* ingress: gauge, open SMTP sessions (the BPF steering load) */
    PROTO_NODE_CTR_TRACE_EVENTS,    /* ingress, egress: SMTP trace events sent to the supervisor */
    PROTO_NODE_CTR_TRACE_DROPPED,   /* ... and dropped (the trace socket full or absent) */
    PROTO_NODE_CTR_LOG_WRITTEN,     /* spool: log records handed to the log writer */
    PROTO_NODE_CTR_BYTES_STORED,    /* spool: message bytes made durable */
    PROTO_NODE_CTR_SPOOL_WRITE_STALLS, /* spool: commits made while RocksDB delayed or stopped writes */
    PROTO_NODE_CTR_MEM_SHEDS,       /* caches dropped because the node's memory headroom was low (role_rt) */
    PROTO_NODE_CTR_BODY_LOG_SEGMENTS,    /* spool: gauge, segment files of the body log */
    PROTO_NODE_CTR_BODY_LOG_BYTES,       /* spool: gauge, their size */
    PROTO_NODE_CTR_BODY_LOG_READ_ERRORS, /* spool: bodies refused on read (missing, short, hash mismatch) */
    PROTO_NODE_CTR_BODY_LOG_RELOCATED,   /* spool: live bodies moved out of old, mostly dead segments */
    PROTO_NODE_CTR_BODY_LOG_RECYCLED,    /* spool: dead segments kept as the spare the next one is written over */
    PROTO_NODE_CTR__MAX,
};

/* per-instance latency histograms (common/proto_hist.h), written only by the instance itself */
enum proto_node_hist {
    PROTO_NODE_HIST_TIME_TO_250 = 0, /* ingress: end of DATA to the 250 (the spool's durable commit) */
    PROTO_NODE_HIST_FSYNC = 1,       /* spool: one commit's write with its WAL fsync */
    PROTO_NODE_HIST__MAX = 2,
};

/* per-listener counters of an ingress instance, [[listener]] order (at most PROTO_NODE_MAX_LISTENERS) */
#define PROTO_NODE_MAX_LISTENERS 16

/* why a reply refused something: its SMTP code, one of these, else the class (4xx, 5xx) */
enum proto_node_reject {
    PROTO_NODE_REJECT_421 = 0,
    PROTO_NODE_REJECT_450,
    PROTO_NODE_REJECT_451,
    PROTO_NODE_REJECT_452,
    PROTO_NODE_REJECT_454,
    PROTO_NODE_REJECT_500,
    PROTO_NODE_REJECT_501,
    PROTO_NODE_REJECT_502,
    PROTO_NODE_REJECT_503,
    PROTO_NODE_REJECT_504,
    PROTO_NODE_REJECT_530,
    PROTO_NODE_REJECT_535,
    PROTO_NODE_REJECT_550,
    PROTO_NODE_REJECT_552,
    PROTO_NODE_REJECT_553,
    PROTO_NODE_REJECT_554,
    PROTO_NODE_REJECT_OTHER_4XX,
    PROTO_NODE_REJECT_OTHER_5XX,
    PROTO_NODE_REJECT__MAX,
};

struct proto_node_listener {
    _Atomic uint64_t connections; /* accepted by the kernel, refused at once (421) included */
    _Atomic uint64_t sessions;    /* gauge: SMTP sessions open now */
    _Atomic uint64_t accepted;    /* messages answered 250 */
    _Atomic uint64_t rejected[PROTO_NODE_REJECT__MAX]; /* 4xx/5xx replies sent, by code */
};

/* one slot of the role table */
struct proto_node_instance {
    _Alignas(64) uint16_t role;  /* enum proto_node_role */
    uint16_t index;              /* worker number within its role */
    _Atomic uint32_t state;      /* enum proto_node_inst_state */
    _Atomic uint32_t generation; /* bumped by the supervisor at each start (fencing) */
    _Atomic int32_t pid;
    _Atomic uint64_t started_ns; /* CLOCK_MONOTONIC of the current start */
    _Atomic uint64_t ready_ns;
    _Atomic uint64_t heartbeat_ns;
    _Atomic uint32_t restarts;   /* restarts since the node started */
    _Atomic int32_t last_status; /* wait(2) status of the last exit; -1 none */
    _Atomic uint64_t last_exit_ns;
    _Atomic uint64_t held_until_ns;
    _Atomic uint64_t ping_rtt_ns; /* last ring round trip measured by this instance */
    _Atomic uint32_t reload_seen; /* last reload generation this instance applied */
    _Atomic int32_t seccomp_nr;   /* syscall that the role's seccomp filter trapped; -1 none (in padding) */
    _Alignas(64) unsigned char bell[PROTO_NODE_BELL_BYTES]; /* struct shm_bell: shm_segment_bell() */
    _Atomic uint64_t counters[PROTO_NODE_CTR__MAX];
    struct proto_hist hist[PROTO_NODE_HIST__MAX]; /* scale PROTO_HIST_FAST */
    struct proto_node_listener listeners[PROTO_NODE_MAX_LISTENERS]; /* ingress only */
};

/* the status page's header; the document follows, NUL-terminated, in the rest of the page */
struct proto_node_status {
    _Atomic uint64_t seq;
    _Atomic uint64_t updated_ns; /* CLOCK_REALTIME of the last publication */
    _Atomic uint32_t len;
    uint32_t reserved;
    char data[];
};

_Static_assert(sizeof(struct proto_node_instance) == 3456,
               "role table slot layout changed: bump SHM_LAYOUT_VERSION");
_Static_assert(sizeof(struct proto_node_status) == 24, "status page header layout changed");

/* proto_node_instance_of - instance number of worker `index` of `role` in a node of that shape, or -1 */
int proto_node_instance_of(unsigned n_ingress, unsigned n_egress, enum proto_node_role role, unsigned index);
const char *proto_node_role_name(enum proto_node_role r);
/* proto_node_role_parse - a role name, any case; false when it names none */
bool proto_node_role_parse(const char *text, enum proto_node_role *out);
const char *proto_node_inst_state_name(enum proto_node_inst_state s);
const char *proto_node_counter_name(enum proto_node_counter c);
/* proto_node_reject_of - the reason of a reply line that starts with a 4xx or 5xx code */
enum proto_node_reject proto_node_reject_of(const char *line, size_t len);
/* proto_node_reject_name - "550", ..., "4xx", "5xx" */
const char *proto_node_reject_name(enum proto_node_reject r);
/* proto_node_counter_is_gauge - a value that goes up and down (set, not added) */
bool proto_node_counter_is_gauge(enum proto_node_counter c);

static inline void proto_node_counter_set(struct proto_node_instance *self, enum proto_node_counter c,
                                          uint64_t v)
{
    atomic_store_explicit(&self->counters[c], v, memory_order_relaxed);
}

static inline void proto_node_counter_add(struct proto_node_instance *self, enum proto_node_counter c,
                                          uint64_t n)
{
    atomic_fetch_add_explicit(&self->counters[c], n, memory_order_relaxed);
}

#endif
