/*
 * shm_segment - the node's one shared-memory segment: header, role table, rings, arena
 *
 * The supervisor computes the layout from the worker counts (shm_segment_create), every role
 * maps the inherited fd (shm_segment_attach) and validates the header before trusting any offset.
 *
 * Instance numbering, the role table, counters and the status page are the node's layout, defined
 * in common/proto_node.h; this file places them in the segment and maps the instance's doorbell
 * (shm_segment_bell). Rings exist for each directed pair that talks: ingress<->spool, spool<->scheduler,
 * scheduler<->egress, egress<->spool. shm_segment_ring(seg, from, to) finds one (NULL if none).
 */
#ifndef RINGMAIL_SHM_SEGMENT_H
#define RINGMAIL_SHM_SEGMENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_node.h"
#include "common/proto_trace.h"
#include "shm/shm_arena.h"
#include "shm/shm_bell.h"
#include "shm/shm_pages.h"
#include "shm/shm_ring.h"

#define SHM_MAGIC 0x52494e474d41494cull /* "RINGMAIL" */
#define SHM_LAYOUT_VERSION 11 /* 7, then the log_records_written counter and the latency histograms; 9: mem_pressure;
                               * 10: the DELIVERY_DONE record names the lease generation, memory_sheds;
                               * 11: the body log's counters */
#define SHM_NO_RING 0xffffu
/* 2 + 2N + 4M rings (shm_segment.c build_topology): 194 with 32 + 32 workers. The array used to be
 * declared 4 * 32 + 2 long while creation wrote up to 194 entries into the header's page padding;
 * the bytes and every offset are the same either way (the assert below pins the header's pages). */
#define SHM_MAX_RINGS (2 + 6 * PROTO_NODE_MAX_WORKERS)

struct shm_ring_desc {
    uint16_t producer;
    uint16_t consumer;
    uint32_t reserved;
    uint64_t off; /* from the segment base */
};

#define SHM_LOG_FOLLOW_FLUSH_MS 100u

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
    uint64_t off_status;     /* the status pages: PROTO_NODE_STATUS_PAGES x PROTO_NODE_STATUS_BYTES, each
                              * a struct proto_node_status */
    _Atomic int32_t supervisor_pid;
    _Atomic uint32_t reload_gen; /* bumped by the supervisor at each successful reload */
    _Atomic uint32_t stopping;   /* the node is draining */
    _Atomic uint32_t spool_space_low; /* set by the spool: ingress answers 452 at MAIL (DISK-01) */
    /* ringctl set-log-level: per role, 0 the configured level, 1 + enum log_level an operator's override
     * (written by the supervisor; a role takes any other value as 0) */
    _Atomic uint32_t log_level[PROTO_NODE_ROLE__MAX];
    /* `ringctl tail-log --follow`: 1 while a follower is connected (written by the supervisor); the spool
     * then flushes its log at least every SHM_LOG_FOLLOW_FLUSH_MS. A role takes any value but 1 as 0. */
    _Atomic uint32_t log_followers;
    /* ringctl trace-smtp-*: bit 1 << enum proto_trace_side set while someone traces that side; the
     * generation changes with every change of the tracers (written by the supervisor; a role only
     * reads it, relaxed, to decide whether to send trace events: supervisor/supervisor_trace.c) */
    _Atomic uint32_t trace_on;
    _Atomic uint32_t trace_gen; /* a sequence lock on trace_filters: odd while the supervisor writes them */
    struct proto_trace_shm_filter trace_filters[PROTO_TRACE_SHM_FILTERS]; /* the role-side prefilter */
    uint16_t ring_index[PROTO_NODE_MAX_INSTANCES]
                       [PROTO_NODE_MAX_INSTANCES]; /* [producer][consumer] -> ring or SHM_NO_RING */
    struct shm_ring_desc rings[SHM_MAX_RINGS];
    /* the node's memory headroom (supervisor_mem.c), written by the supervisor: SHM_MEM_LOW under the soft
     * reserve, SHM_MEM_EXHAUSTED at none (ingress: 421 to new sessions, 451 to new transactions); a role
     * takes any other value as SHM_MEM_OK */
    _Atomic uint32_t mem_pressure;
};

enum shm_mem_pressure {
    SHM_MEM_OK = 0,
    SHM_MEM_LOW = 1,
    SHM_MEM_EXHAUSTED = 2,
};

_Static_assert((sizeof(struct shm_header) + 4095) / 4096 == 3, "the header's pages: layout changed");

/*
 * struct shm_segment - one process's view of the segment. The header and the role table are
 * writable by every process that maps them, so the sizes and the topology this process acts on are
 * private copies taken once, when it created or attached the segment (after validation): use
 * seg->n_instances, seg->n_ingress, seg->n_egress and shm_segment_ring(), never hdr->n_instances or
 * hdr->rings[] after start.
 */
struct shm_segment {
    struct shm_pages pages;
    struct shm_header *hdr;
    struct proto_node_instance *inst; /* n_instances entries */
    struct shm_arena *arena;          /* &arena_view */
    struct proto_node_status *status;
    /* private copies, fixed at create/attach */
    uint32_t n_ingress;
    uint32_t n_egress;
    uint32_t n_instances;
    uint32_t n_rings;
    uint32_t ring_slots;
    struct shm_header fixed; /* the header as created (or as validated at attach) */
    struct shm_ring_ref rings[SHM_MAX_RINGS];
    struct shm_arena arena_view;
};

struct shm_segment_params {
    uint32_t n_ingress;  /* 1..PROTO_NODE_MAX_WORKERS */
    uint32_t n_egress;   /* 1..PROTO_NODE_MAX_WORKERS */
    uint32_t ring_slots; /* power of two */
    uint64_t arena_bytes;
    enum shm_huge_mode huge;
};

int shm_segment_create(struct shm_segment *seg, const struct shm_segment_params *p, char **err);
int shm_segment_attach(struct shm_segment *seg, int fd, char **err);
void shm_segment_close(struct shm_segment *seg);
/* shm_segment_repair - write the fixed part of the header, each ring's header line and the arena's
 * geometry back from this process's private copies (the supervisor, before it starts a role, so that a
 * role that scribbled on them cannot keep the next one from attaching) */
void shm_segment_repair(struct shm_segment *seg);
/* shm_segment_role - the role of instance `i` as fixed at creation, or PROTO_NODE_ROLE__MAX when
 * there is no such instance (the role table's `role` field is writable by every role: do not trust it) */
enum proto_node_role shm_segment_role(const struct shm_segment *seg, unsigned i);

/* shm_segment_ring - this process's handle on the ring from instance `from` to `to`, or NULL */
const struct shm_ring_ref *shm_segment_ring(const struct shm_segment *seg, unsigned from, unsigned to);
/* shm_segment_instance_of - instance number of worker `index` of `role`, or -1 */
int shm_segment_instance_of(const struct shm_segment *seg, enum proto_node_role role, unsigned index);

/* shm_segment_bell - the doorbell kept in an instance's role table slot */
static inline struct shm_bell *shm_segment_bell(struct proto_node_instance *in)
{
    return (struct shm_bell *)(void *)in->bell;
}
_Static_assert(sizeof(struct shm_bell) == PROTO_NODE_BELL_BYTES, "the doorbell must fill its slot space");
_Static_assert(_Alignof(struct shm_bell) <= _Alignof(struct proto_node_instance), "doorbell alignment");

/* shm_segment_status_publish - replace the status document (single writer); -E2BIG when it does not fit */
int shm_segment_status_publish(struct shm_segment *seg, const char *json, size_t len);
/* shm_segment_page_publish / _read - the same for any page (enum proto_node_status_page) */
int shm_segment_page_publish(struct shm_segment *seg, unsigned page, const char *json, size_t len);
char *shm_segment_page_read(struct shm_segment *seg, unsigned page, size_t *len, uint64_t *updated_ns);
/* shm_segment_page_seq - the page's sequence number (changes with every publication; odd while written) */
uint64_t shm_segment_page_seq(struct shm_segment *seg, unsigned page);
/* shm_segment_status_read - a consistent copy of the document (heap, NUL-terminated), or NULL when none
 * was published or the writer kept it busy */
char *shm_segment_status_read(struct shm_segment *seg, size_t *len, uint64_t *updated_ns);

#endif
