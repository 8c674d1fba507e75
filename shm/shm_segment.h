/*
 * shm_segment - the node's one shared-memory segment: header, role table, rings, arena
 *
 * The supervisor computes the layout from the worker counts (shm_segment_create), every role
 * maps the inherited fd (shm_segment_attach) and validates the header before trusting any offset.
 *
 * Instance numbering (the index every ring record's `src` carries):
 *   0 spool, 1 scheduler, 2 .. 2+N-1 ingress workers, then M egress workers.
 * Rings exist for each directed pair that talks: ingress<->spool, spool<->scheduler,
 * scheduler<->egress, egress<->spool. shm_segment_ring(seg, from, to) finds one (NULL if none).
 *
 * The role table is written by the supervisor (pid, state, generation, restarts, exit status)
 * and by each instance for its own slot (heartbeat, ready, counters). Fields are atomics; a
 * reader in another process sees each one whole.
 */
#ifndef RINGMAIL_SHM_SEGMENT_H
#define RINGMAIL_SHM_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm_arena.h"
#include "shm/shm_bell.h"
#include "shm/shm_pages.h"
#include "shm/shm_ring.h"

#define SHM_MAGIC 0x52494e474d41494cull /* "RINGMAIL" */
#define SHM_LAYOUT_VERSION 2
#define SHM_STATUS_BYTES (1u << 20) /* the scheduler's status page (JSON), read by the admin API */
#define SHM_MAX_WORKERS 32
#define SHM_MAX_INSTANCES (2 + 2 * SHM_MAX_WORKERS)
#define SHM_NO_RING 0xffffu

enum shm_role {
    SHM_ROLE_SPOOL = 0,
    SHM_ROLE_SCHEDULER = 1,
    SHM_ROLE_INGRESS = 2,
    SHM_ROLE_EGRESS = 3,
    SHM_ROLE__MAX = 4,
};

enum shm_inst_state {
    SHM_INST_EMPTY = 0,    /* never started */
    SHM_INST_STARTING = 1, /* forked, not ready yet */
    SHM_INST_READY = 2,    /* registered and serving */
    SHM_INST_DRAINING = 3, /* asked to stop */
    SHM_INST_DEAD = 4,     /* exited; a restart is scheduled */
    SHM_INST_HELD = 5,     /* crash-looping; held off until the hold time passes */
    SHM_INST_STOPPED = 6,  /* stopped on purpose (node stopping) */
};

/* per-instance counters, written only by the instance itself (relaxed atomics) */
enum shm_counter {
    SHM_CTR_RING_PUSHED = 0,
    SHM_CTR_RING_POPPED,
    SHM_CTR_RING_FULL,
    SHM_CTR_RING_BAD,
    SHM_CTR_RING_STALE, /* records for an older generation of this instance, dropped */
    SHM_CTR_PINGS_SENT,
    SHM_CTR_PONGS_RECEIVED,
    SHM_CTR_LOOP_WAKEUPS,
    SHM_CTR_RELOADS,
    SHM_CTR_SMTP_CONNECTIONS,
    SHM_CTR_SMTP_COMMANDS,
    SHM_CTR_MESSAGES_ACCEPTED, /* ingress: 250 after DATA/BDAT */
    SHM_CTR_MESSAGES_STORED,   /* spool: messages made durable */
    SHM_CTR_SPOOL_COMMITS,     /* spool: write batches synced (one WAL fsync each) */
    SHM_CTR_SPOOL_COMMIT_FAILURES,
    SHM_CTR_STORE_REJECTED,    /* spool: store requests that failed validation */
    SHM_CTR_MESSAGES_QUEUED,   /* scheduler: gauge, messages announced by the spool and not yet done */
    SHM_CTR_QUARANTINED,       /* spool: records moved aside at the start-up walk */
    SHM_CTR_LOG_DROPPED,       /* log records dropped (arena or ring full, or invalid) */
    SHM_CTR_SMTP_SESSIONS,     /* ingress: gauge, open SMTP sessions (the BPF steering load) */
    SHM_CTR__MAX,
};

struct shm_instance {
    _Alignas(64) uint16_t role;   /* enum shm_role */
    uint16_t index;               /* worker number within its role */
    _Atomic uint32_t state;       /* enum shm_inst_state */
    _Atomic uint32_t generation;  /* bumped by the supervisor at each start (fencing) */
    _Atomic int32_t pid;
    _Atomic uint64_t started_ns;   /* CLOCK_MONOTONIC of the current start */
    _Atomic uint64_t ready_ns;
    _Atomic uint64_t heartbeat_ns;
    _Atomic uint32_t restarts;     /* restarts since the node started */
    _Atomic int32_t last_status;   /* wait(2) status of the last exit; -1 none */
    _Atomic uint64_t last_exit_ns;
    _Atomic uint64_t held_until_ns;
    _Atomic uint64_t ping_rtt_ns;  /* last ring round trip measured by this instance */
    _Atomic uint32_t reload_seen;  /* last reload generation this instance applied */
    struct shm_bell bell;
    _Atomic uint64_t counters[SHM_CTR__MAX];
};

struct shm_ring_desc {
    uint16_t producer;
    uint16_t consumer;
    uint32_t reserved;
    uint64_t off; /* from the segment base */
};

struct shm_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t page_source; /* enum shm_page_source */
    uint64_t total_size;
    uint64_t created_real_ns;
    uint32_t n_ingress;
    uint32_t n_egress;
    uint32_t n_instances;
    uint32_t n_rings;
    uint32_t ring_slots;
    uint32_t reserved0;
    uint64_t ring_bytes;     /* bytes per ring */
    uint64_t off_instances;
    uint64_t off_arena;
    uint64_t arena_region;   /* bytes of the arena region (metadata + data) */
    uint64_t off_status;     /* the status page: struct shm_status, SHM_STATUS_BYTES in all */
    _Atomic int32_t supervisor_pid;
    _Atomic uint32_t reload_gen; /* bumped by the supervisor at each successful reload */
    _Atomic uint32_t stopping;   /* the node is draining */
    _Atomic uint32_t spool_space_low; /* set by the spool: ingress answers 452 at MAIL (DISK-01) */
    uint16_t ring_index[SHM_MAX_INSTANCES][SHM_MAX_INSTANCES]; /* [producer][consumer] -> ring or SHM_NO_RING */
    struct shm_ring_desc rings[4 * SHM_MAX_WORKERS + 2];
};

/*
 * The status page: one writer (the scheduler) publishes a JSON document of its queues and paths; any
 * process reads a consistent copy. A sequence lock: seq is odd while the writer copies.
 */
struct shm_status {
    _Atomic uint64_t seq;
    _Atomic uint64_t updated_ns; /* CLOCK_REALTIME of the last publication */
    _Atomic uint32_t len;
    uint32_t reserved;
    char data[];
};

struct shm_segment {
    struct shm_pages pages;
    struct shm_header *hdr;
    struct shm_instance *inst; /* hdr->n_instances entries */
    struct shm_arena *arena;
    struct shm_status *status;
};

struct shm_segment_params {
    uint32_t n_ingress;  /* 1..SHM_MAX_WORKERS */
    uint32_t n_egress;   /* 1..SHM_MAX_WORKERS */
    uint32_t ring_slots; /* power of two */
    uint64_t arena_bytes;
    enum shm_huge_mode huge;
};

int shm_segment_create(struct shm_segment *seg, const struct shm_segment_params *p, char **err);
int shm_segment_attach(struct shm_segment *seg, int fd, char **err);
void shm_segment_close(struct shm_segment *seg);

struct shm_ring *shm_segment_ring(struct shm_segment *seg, unsigned from, unsigned to);
/* shm_segment_instance_of - instance number of worker `index` of `role`, or -1 */
int shm_segment_instance_of(const struct shm_segment *seg, enum shm_role role, unsigned index);
const char *shm_role_name(enum shm_role r);
const char *shm_inst_state_name(enum shm_inst_state s);
const char *shm_counter_name(enum shm_counter c);
/* shm_counter_is_gauge - a value that goes up and down (set, not added) */
bool shm_counter_is_gauge(enum shm_counter c);
bool shm_role_parse(const char *text, enum shm_role *out);

static inline void shm_counter_set(struct shm_instance *self, enum shm_counter c, uint64_t v)
{
    atomic_store_explicit(&self->counters[c], v, memory_order_relaxed);
}

static inline void shm_counter_add(struct shm_instance *self, enum shm_counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&self->counters[c], n, memory_order_relaxed);
}

/* shm_status_publish - replace the status document (single writer); -E2BIG when it does not fit */
int shm_status_publish(struct shm_segment *seg, const char *json, size_t len);
/* shm_status_read - a consistent copy of the document (heap, NUL-terminated), or NULL when none
 * was published or the writer kept it busy */
char *shm_status_read(struct shm_segment *seg, size_t *len, uint64_t *updated_ns);

#endif
