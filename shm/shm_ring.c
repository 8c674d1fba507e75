/*
 * shm_ring - lock-free single-producer single-consumer ring of proto_rec in shared memory
 *
 * Publication: the producer writes the slot, then stores head with release; the consumer loads
 * head with acquire, copies the slot, then stores tail with release, which hands the slot back.
 * Positions are 64-bit and never wrap in practice, so head - tail is the fill level.
 *
 * Everything in the ring is untrusted: each process bounds every index by the capacity it took
 * at shm_ring_open() (checked there against the ring's bytes), checks that the header line still
 * says the same (magic, capacity, mask) and that 0 <= head - tail <= capacity before it indexes a
 * slot, so a scribbled header gives -EPROTO and never an access outside the ring (a capacity
 * rewritten to a larger power of two with a matching mask is caught by the private copy).
 * shm_ring_push() also returns -EPROTO then (the header contract lists 0 and -EAGAIN; writing out
 * of bounds is the alternative). The consumer
 * validates its private copy of the record, never the slot, so a producer cannot change a
 * record between the check and the use.
 *
 * Speed: each side keeps a private, per-thread cache of the other side's index (the producer the
 * tail it last saw, the consumer the head), so that the line the other core keeps writing is read
 * only when the cache says full (producer) or empty (consumer). The cache cannot live in shared
 * memory: a restarted process would trust a value it did not observe. A cache entry is used only
 * while the ring's own index still equals the value this thread last stored there; a restart of
 * the peer does not matter (the peer's index only moves forward, so a stale cache is merely
 * conservative), and any re-format, re-mapping at the same address, or other writer of our index
 * changes it and drops the entry.
 */
#include "shm/shm_ring.h"

#include <errno.h>
#include <string.h>

#define SHM_RING_CACHE_SLOTS 16

struct shm_ring_cache {
    const struct shm_ring *ring;
    uint64_t own;   /* our index as we last stored it */
    uint64_t other; /* the peer's index as we last loaded it */
};

static _Thread_local struct shm_ring_cache shm_ring_pcache[SHM_RING_CACHE_SLOTS];
static _Thread_local struct shm_ring_cache shm_ring_ccache[SHM_RING_CACHE_SLOTS];

static inline struct shm_ring_cache *shm_ring_cache_slot(struct shm_ring_cache *tab, const struct shm_ring *r)
{
    uintptr_t a = (uintptr_t)r;

    return &tab[((a >> 6) ^ (a >> 12) ^ (a >> 20)) & (SHM_RING_CACHE_SLOTS - 1)];
}

/*
 * shm_ring_geometry - the private capacity when the ring's header still agrees with it (single
 * loads, so a concurrent scribble cannot make the value checked differ from the value used), or 0.
 */
static inline uint32_t shm_ring_geometry(const struct shm_ring_ref *ref)
{
    const struct shm_ring *r = ref->ring;
    uint32_t cap = ref->capacity;

    if (cap == 0 || __atomic_load_n(&r->magic, __ATOMIC_RELAXED) != SHM_RING_MAGIC
        || __atomic_load_n(&r->capacity, __ATOMIC_RELAXED) != cap
        || __atomic_load_n(&r->mask, __ATOMIC_RELAXED) != cap - 1)
        return 0;
    return cap;
}

size_t shm_ring_bytes(uint32_t capacity)
{
    return sizeof(struct shm_ring) + (size_t)capacity * sizeof(struct proto_rec);
}

int shm_ring_init(void *mem, uint32_t capacity, uint16_t producer, uint16_t consumer)
{
    struct shm_ring *r = mem;

    if (mem == NULL || ((uintptr_t)mem & 63) != 0)
        return -EINVAL;
    if (capacity < 2 || capacity > SHM_RING_MAX_CAPACITY || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    memset(r, 0, shm_ring_bytes(capacity));
    r->capacity = capacity;
    r->mask = capacity - 1;
    r->producer = producer;
    r->consumer = consumer;
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
    /* magic last: a reader of a half-formatted ring sees -EPROTO */
    atomic_thread_fence(memory_order_release);
    r->magic = SHM_RING_MAGIC;
    shm_ring_cache_slot(shm_ring_pcache, r)->ring = NULL;
    shm_ring_cache_slot(shm_ring_ccache, r)->ring = NULL;
    return 0;
}

int shm_ring_open(struct shm_ring_ref *ref, void *mem, size_t bytes)
{
    const struct shm_ring *r = mem;

    ref->ring = mem;
    ref->capacity = 0;
    if (mem == NULL || ((uintptr_t)mem & 63) != 0 || bytes < sizeof(struct shm_ring))
        return -EPROTO;
    uint32_t magic = __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE);
    uint32_t cap = __atomic_load_n(&r->capacity, __ATOMIC_RELAXED);
    uint32_t mask = __atomic_load_n(&r->mask, __ATOMIC_RELAXED);
    if (magic != SHM_RING_MAGIC || cap < 2 || cap > SHM_RING_MAX_CAPACITY || (cap & (cap - 1)) != 0
        || mask != cap - 1 || shm_ring_bytes(cap) > bytes)
        return -EPROTO;
    ref->capacity = cap;
    return 0;
}

void shm_ring_restore(const struct shm_ring_ref *ref, uint16_t producer, uint16_t consumer)
{
    struct shm_ring *r = ref->ring;

    if (ref->capacity == 0)
        return;
    r->capacity = ref->capacity;
    r->mask = ref->capacity - 1;
    r->producer = producer;
    r->consumer = consumer;
    atomic_thread_fence(memory_order_release);
    r->magic = SHM_RING_MAGIC;
}

int shm_ring_push(const struct shm_ring_ref *ref, struct proto_rec *rec)
{
    struct shm_ring *r = ref->ring;
    struct shm_ring_cache *c;
    uint64_t head;
    uint64_t tail;
    uint32_t cap = shm_ring_geometry(ref);

    if (cap == 0)
        return -EPROTO;
    head = atomic_load_explicit(&r->head, memory_order_relaxed);
    c = shm_ring_cache_slot(shm_ring_pcache, r);
    if (c->ring == r && c->own == head && head - c->other < cap) {
        tail = c->other;
    } else {
        tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - tail > cap)
            return -EPROTO;
        if (head - tail == cap) {
            r->pushed_full++;
            c->ring = NULL;
            return -EAGAIN;
        }
    }
    rec->seq = head;
    memcpy(&r->slots[head & (cap - 1)], rec, sizeof(*rec));
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    c->ring = r;
    c->own = head + 1;
    c->other = tail;
    return 0;
}

int shm_ring_pop(const struct shm_ring_ref *ref, struct proto_rec *out)
{
    struct shm_ring *r = ref->ring;
    struct shm_ring_cache *c;
    uint64_t head;
    uint64_t tail;
    int bad;
    uint32_t cap = shm_ring_geometry(ref);

    if (cap == 0)
        return -EPROTO;
    tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    c = shm_ring_cache_slot(shm_ring_ccache, r);
    if (c->ring == r && c->own == tail && c->other - tail - 1 < cap) {
        /* the acquire that published [tail, c->other) happened earlier in this thread */
        head = c->other;
    } else {
        head = atomic_load_explicit(&r->head, memory_order_acquire);
        if (head - tail > cap)
            return -EPROTO;
        if (head == tail) {
            c->ring = NULL;
            return -EAGAIN;
        }
    }
    memcpy(out, &r->slots[tail & (cap - 1)], sizeof(*out));
    bad = out->seq != tail || out->version != PROTO_RING_VERSION || out->type >= MSG__MAX;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    c->ring = r;
    c->own = tail + 1;
    c->other = head;
    if (bad) {
        r->bad_records++;
        return -EBADMSG;
    }
    return 0;
}

uint64_t shm_ring_count(const struct shm_ring_ref *ref)
{
    struct shm_ring *r = ref->ring;
    uint32_t cap = shm_ring_geometry(ref);

    if (cap == 0)
        return 0;
    /* tail first: head only grows, so the difference is never negative for a sane ring */
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t n = head - tail;
    return n > cap ? 0 : n;
}
