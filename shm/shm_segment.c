/*
 * shm_segment - the node's one shared-memory segment: header, role table, rings, arena
 *
 * Layout (offsets from the base, each 4 KiB aligned):
 *   header | instance table | ring 0 | ring 1 | ... | arena (metadata + data)
 * The header holds every offset; shm_segment_attach() copies it once, re-checks the copy against
 * the mapped size so that a corrupt or foreign header cannot send a role outside the mapping, and
 * keeps what it checked (counts, ring topology, ring capacities, arena geometry) in the process's
 * struct shm_segment. Every process can write the header and the role table at any time, so nothing
 * after attach reads a size or an offset from them again.
 */
#include "shm/shm_segment.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uint64_t)(a)-1))

int shm_segment_instance_of(const struct shm_segment *seg, enum proto_node_role role, unsigned index)
{
    return proto_node_instance_of(seg->n_ingress, seg->n_egress, role, index);
}

/* role_of - the role of instance i in a node of that shape (proto_node.h's numbering) */
static enum proto_node_role role_of(unsigned n_ingress, unsigned n_egress, unsigned i)
{
    if (i == 0)
        return PROTO_NODE_ROLE_SPOOL;
    if (i == 1)
        return PROTO_NODE_ROLE_SCHEDULER;
    if (i < 2 + n_ingress)
        return PROTO_NODE_ROLE_INGRESS;
    if (i < 2 + n_ingress + n_egress)
        return PROTO_NODE_ROLE_EGRESS;
    return PROTO_NODE_ROLE__MAX;
}

enum proto_node_role shm_segment_role(const struct shm_segment *seg, unsigned i)
{
    return role_of(seg->n_ingress, seg->n_egress, i);
}

static void add_ring(struct shm_header *h, unsigned from, unsigned to)
{
    unsigned i = h->n_rings++;

    h->rings[i].producer = (uint16_t)from;
    h->rings[i].consumer = (uint16_t)to;
    h->ring_index[from][to] = (uint16_t)i;
}

/* build_topology - the directed pairs of DESIGN.md section 1 */
static void build_topology(struct shm_header *h)
{
    unsigned spool = 0, sched = 1;

    memset(h->ring_index, 0xff, sizeof(h->ring_index));
    h->n_rings = 0;
    add_ring(h, spool, sched);
    add_ring(h, sched, spool);
    for (unsigned i = 0; i < h->n_ingress; i++) {
        add_ring(h, 2 + i, spool);
        add_ring(h, spool, 2 + i);
    }
    for (unsigned j = 0; j < h->n_egress; j++) {
        unsigned e = 2 + h->n_ingress + j;
        add_ring(h, sched, e);
        add_ring(h, e, sched);
        add_ring(h, e, spool);
        add_ring(h, spool, e);
    }
}

/*
 * bind - point the view at the segment and take the private copies from `h`: the header itself at
 * create, a validated copy of it at attach. Returns 0, or -EPROTO when the arena header is invalid.
 */
static int bind(struct shm_segment *seg, const struct shm_header *h)
{
    char *base = seg->pages.base;

    seg->hdr = (struct shm_header *)base;
    seg->inst = (struct proto_node_instance *)(base + h->off_instances);
    seg->status = (struct proto_node_status *)(base + h->off_status);
    seg->n_ingress = h->n_ingress;
    seg->n_egress = h->n_egress;
    seg->n_instances = h->n_instances;
    seg->n_rings = h->n_rings;
    seg->ring_slots = h->ring_slots;
    if (&seg->fixed != h)
        memcpy(&seg->fixed, h, sizeof(seg->fixed));
    for (unsigned i = 0; i < h->n_rings; i++) {
        /* a ring whose header is already bad gets a handle on which every call says -EPROTO */
        if (shm_ring_open(&seg->rings[i], base + h->rings[i].off, h->ring_bytes) < 0)
            log_warn("shared memory: ring %u (%u -> %u) has a bad header", i, h->rings[i].producer,
                     h->rings[i].consumer);
    }
    seg->arena = &seg->arena_view;
    return shm_arena_open(&seg->arena_view, base + h->off_arena, h->arena_region);
}

static struct proto_node_status *page_of(struct shm_segment *seg, unsigned page)
{
    return (struct proto_node_status *)(void *)((char *)seg->status + (size_t)page * PROTO_NODE_STATUS_BYTES);
}

int shm_segment_status_publish(struct shm_segment *seg, const char *json, size_t len)
{
    return shm_segment_page_publish(seg, PROTO_NODE_STATUS_QUEUES, json, len);
}

char *shm_segment_status_read(struct shm_segment *seg, size_t *len, uint64_t *updated_ns)
{
    return shm_segment_page_read(seg, PROTO_NODE_STATUS_QUEUES, len, updated_ns);
}

int shm_segment_page_publish(struct shm_segment *seg, unsigned page, const char *json, size_t len)
{
    if (page >= PROTO_NODE_STATUS_PAGES)
        return -EINVAL;
    struct proto_node_status *st = page_of(seg, page);
    if (len > PROTO_NODE_STATUS_BYTES - sizeof(*st) - 1)
        return -E2BIG;
    uint64_t s = atomic_load_explicit(&st->seq, memory_order_relaxed);
    atomic_store_explicit(&st->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy(st->data, json, len);
    st->data[len] = '\0';
    atomic_store_explicit(&st->len, (uint32_t)len, memory_order_relaxed);
    atomic_store_explicit(&st->updated_ns, clock_real_ns(), memory_order_relaxed);
    atomic_store_explicit(&st->seq, s + 2, memory_order_release);
    return 0;
}

uint64_t shm_segment_page_seq(struct shm_segment *seg, unsigned page)
{
    return page < PROTO_NODE_STATUS_PAGES ? atomic_load_explicit(&page_of(seg, page)->seq, memory_order_acquire) : 0;
}

char *shm_segment_page_read(struct shm_segment *seg, unsigned page, size_t *len, uint64_t *updated_ns)
{
    if (page >= PROTO_NODE_STATUS_PAGES)
        return NULL;
    struct proto_node_status *st = page_of(seg, page);
    char *buf = NULL;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t s1 = atomic_load_explicit(&st->seq, memory_order_acquire);
        if (s1 == 0)
            break; /* never published */
        if (s1 & 1)
            continue;
        uint32_t n = atomic_load_explicit(&st->len, memory_order_relaxed);
        if (n > PROTO_NODE_STATUS_BYTES - sizeof(*st) - 1)
            continue;
        buf = xrealloc(buf, (size_t)n + 1);
        memcpy(buf, st->data, n);
        uint64_t when = atomic_load_explicit(&st->updated_ns, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&st->seq, memory_order_relaxed) != s1)
            continue;
        buf[n] = '\0';
        if (len)
            *len = n;
        if (updated_ns)
            *updated_ns = when;
        return buf;
    }
    free(buf);
    return NULL;
}

int shm_segment_create(struct shm_segment *seg, const struct shm_segment_params *p, char **err)
{
    uint64_t off, ring_bytes, arena_region, total;
    struct shm_header *h;
    int rc;

    memset(seg, 0, sizeof(*seg));
    seg->pages.fd = -1;
    if (p->n_ingress < 1 || p->n_ingress > PROTO_NODE_MAX_WORKERS || p->n_egress < 1 ||
        p->n_egress > PROTO_NODE_MAX_WORKERS) {
        *err = xasprintf("worker counts must be 1..%d", PROTO_NODE_MAX_WORKERS);
        return -EINVAL;
    }
    ring_bytes = ALIGN_UP(shm_ring_bytes(p->ring_slots), 4096);
    if (ring_bytes == 0 || shm_ring_bytes(p->ring_slots) == 0) {
        *err = xasprintf("ring_slots %u is not a power of two in range", p->ring_slots);
        return -EINVAL;
    }
    unsigned n_inst = 2 + p->n_ingress + p->n_egress;
    off = ALIGN_UP(sizeof(struct shm_header), 4096);
    uint64_t off_instances = off;
    off = ALIGN_UP(off + (uint64_t)n_inst * sizeof(struct proto_node_instance), 4096);
    uint64_t off_rings = off;
    unsigned n_rings = 2 + 2 * p->n_ingress + 4 * p->n_egress;
    off += (uint64_t)n_rings * ring_bytes;
    uint64_t off_arena = ALIGN_UP(off, 4096);
    arena_region = ALIGN_UP(shm_arena_bytes(p->arena_bytes), 4096);
    uint64_t off_status = off_arena + arena_region;
    total = off_status + (uint64_t)PROTO_NODE_STATUS_PAGES * PROTO_NODE_STATUS_BYTES;

    rc = shm_pages_alloc(total, p->huge, &seg->pages, err);
    if (rc < 0)
        return rc;

    h = (struct shm_header *)seg->pages.base;
    memset(h, 0, sizeof(*h));
    h->layout_version = SHM_LAYOUT_VERSION;
    h->page_source = seg->pages.source;
    h->total_size = seg->pages.size;
    h->created_real_ns = clock_real_ns();
    h->n_ingress = p->n_ingress;
    h->n_egress = p->n_egress;
    h->n_instances = n_inst;
    h->ring_slots = p->ring_slots;
    h->ring_bytes = ring_bytes;
    h->off_instances = off_instances;
    h->off_arena = off_arena;
    h->arena_region = arena_region;
    h->off_status = off_status;
    for (unsigned pg = 0; pg < PROTO_NODE_STATUS_PAGES; pg++)
        memset((char *)seg->pages.base + off_status + (uint64_t)pg * PROTO_NODE_STATUS_BYTES, 0,
               sizeof(struct proto_node_status));
    build_topology(h);
    ASSERT(h->n_rings == n_rings);

    for (unsigned i = 0; i < h->n_rings; i++) {
        h->rings[i].off = off_rings + (uint64_t)i * ring_bytes;
        rc = shm_ring_init((char *)seg->pages.base + h->rings[i].off, p->ring_slots, h->rings[i].producer,
                           h->rings[i].consumer);
        ASSERT(rc == 0);
    }
    rc = shm_arena_init((char *)seg->pages.base + off_arena, arena_region);
    if (rc < 0) {
        *err = xasprintf("arena of %llu bytes cannot be formatted", (unsigned long long)arena_region);
        shm_pages_unmap(&seg->pages);
        return rc;
    }

    struct proto_node_instance *inst =
        (struct proto_node_instance *)((char *)seg->pages.base + off_instances);
    for (unsigned i = 0; i < n_inst; i++) {
        memset(&inst[i], 0, sizeof(inst[i]));
        inst[i].role = (uint16_t)role_of(p->n_ingress, p->n_egress, i);
        if (inst[i].role == PROTO_NODE_ROLE_INGRESS)
            inst[i].index = (uint16_t)(i - 2);
        else if (inst[i].role == PROTO_NODE_ROLE_EGRESS)
            inst[i].index = (uint16_t)(i - 2 - p->n_ingress);
        atomic_store(&inst[i].last_status, -1);
        shm_segment_bell(&inst[i])->efd = -1; /* the supervisor gives each bell its eventfd */
    }
    /* the magic goes last: a half-built segment is never taken for a valid one */
    atomic_thread_fence(memory_order_release);
    h->magic = SHM_MAGIC;
    rc = bind(seg, h);
    ASSERT(rc == 0);
    return 0;
}

int shm_segment_attach(struct shm_segment *seg, int fd, char **err)
{
    struct shm_header *h;
    int rc;

    memset(seg, 0, sizeof(*seg));
    rc = shm_pages_map(fd, &seg->pages, err);
    if (rc < 0)
        return rc;
    const char *why = NULL;
    uint64_t size = seg->pages.size;
    if (size < sizeof(*h)) {
        *err = xasprintf("shared memory segment rejected: segment smaller than its header");
        shm_pages_unmap(&seg->pages);
        return -EPROTO;
    }
    /* check and keep one copy: the live header may change under us */
    h = &seg->fixed;
    memcpy(h, seg->pages.base, sizeof(*h));
    atomic_thread_fence(memory_order_acquire);
    if (h->magic != SHM_MAGIC)
        why = "bad magic";
    else if (h->layout_version != SHM_LAYOUT_VERSION)
        why = "layout version differs from this binary's";
    else if (h->n_ingress < 1 || h->n_ingress > PROTO_NODE_MAX_WORKERS || h->n_egress < 1 ||
             h->n_egress > PROTO_NODE_MAX_WORKERS || h->n_instances != 2 + h->n_ingress + h->n_egress)
        why = "bad instance counts";
    else if (h->off_instances > size ||
             (uint64_t)h->n_instances * sizeof(struct proto_node_instance) > size - h->off_instances ||
             h->off_instances % 64)
        why = "instance table outside the segment";
    else if (h->off_arena > size || h->arena_region > size - h->off_arena || h->off_arena % 64)
        why = "arena outside the segment";
    else if (h->off_status > size ||
             (uint64_t)PROTO_NODE_STATUS_PAGES * PROTO_NODE_STATUS_BYTES > size - h->off_status ||
             h->off_status % 64)
        why = "status page outside the segment";
    else if (h->n_rings != 2 + 2 * h->n_ingress + 4 * h->n_egress || h->n_rings > SHM_MAX_RINGS)
        why = "bad ring count";
    for (unsigned i = 0; !why && i < h->n_rings; i++) {
        if (h->rings[i].off > size || h->ring_bytes > size - h->rings[i].off || h->rings[i].off % 64 ||
            h->rings[i].producer >= h->n_instances || h->rings[i].consumer >= h->n_instances)
            why = "ring outside the segment";
    }
    for (unsigned f = 0; !why && f < PROTO_NODE_MAX_INSTANCES; f++)
        for (unsigned t = 0; !why && t < PROTO_NODE_MAX_INSTANCES; t++) {
            uint16_t i = h->ring_index[f][t];
            if (i != SHM_NO_RING &&
                (i >= h->n_rings || h->rings[i].producer != f || h->rings[i].consumer != t))
                why = "bad ring index";
        }
    if (!why && bind(seg, h) < 0)
        why = "arena header invalid";
    if (why) {
        *err = xasprintf("shared memory segment rejected: %s", why);
        shm_pages_unmap(&seg->pages);
        return -EPROTO;
    }
    return 0;
}

void shm_segment_repair(struct shm_segment *seg)
{
    struct shm_header *h = seg->hdr;
    const struct shm_header *f = &seg->fixed;

    /* the atomics from supervisor_pid to spool_space_low are live state, not layout: left alone */
    memcpy(h, f, offsetof(struct shm_header, supervisor_pid));
    memcpy(h->ring_index, f->ring_index, sizeof(h->ring_index));
    memcpy(h->rings, f->rings, sizeof(h->rings));
    for (unsigned i = 0; i < seg->n_rings; i++)
        shm_ring_restore(&seg->rings[i], f->rings[i].producer, f->rings[i].consumer);
    shm_arena_restore(&seg->arena_view);
}

void shm_segment_close(struct shm_segment *seg)
{
    shm_pages_unmap(&seg->pages);
    seg->hdr = NULL;
    seg->inst = NULL;
    seg->arena = NULL;
    seg->n_instances = seg->n_rings = 0;
}

const struct shm_ring_ref *shm_segment_ring(const struct shm_segment *seg, unsigned from, unsigned to)
{
    if (from >= seg->n_instances || to >= seg->n_instances)
        return NULL;
    uint16_t i = seg->fixed.ring_index[from][to];
    if (i == SHM_NO_RING || i >= seg->n_rings)
        return NULL;
    return &seg->rings[i];
}
