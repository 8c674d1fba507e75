/*
 * shm_ring - lock-free single-producer single-consumer ring of proto_rec in shared memory
 *
 * The ring lives at an offset of the shared segment; every process computes its own pointer
 * from its own mapping. Layout: one read-only cache line (magic, capacity, mask, producer and
 * consumer instance ids), one line for the producer's head, one for the consumer's tail, then
 * `capacity` slots of 64 bytes.
 *
 * shm_ring_init() formats `mem` (shm_ring_bytes(capacity) bytes, 64-byte aligned); capacity is a
 * power of two between 2 and 1<<24; returns 0 or -EINVAL.
 * shm_ring_open() gives a process its handle on a ring (struct shm_ring_ref): it reads the header
 * once, checks that the capacity fits the `bytes` the ring was given at creation, and keeps that
 * capacity as a private copy. Every later index is bounded by the copy, never by the header, which
 * any process mapping the segment can rewrite; a header that no longer matches the copy gives
 * -EPROTO. Returns 0, or -EPROTO (the handle is then unusable: every call gives -EPROTO).
 * shm_ring_push() copies `rec` into the next slot, stamps rec->seq with the slot's position and
 * publishes it with a release store of head. Returns 0, -EAGAIN when full, or -EPROTO when the ring
 * header is corrupt (nothing written). A producer that dies before that store never publishes a
 * partial record.
 * shm_ring_pop() copies the next published record out (acquire load of head), then releases the slot
 * (release store of tail). Returns 0, -EAGAIN when empty, -EBADMSG when the record failed
 * validation (seq, version or type wrong: the slot is consumed and skipped), -EPROTO when the ring
 * header itself is corrupt (nothing consumed).
 * Only the producer may call push, only the consumer pop; both may call count.
 */
#ifndef RINGMAIL_SHM_RING_H
#define RINGMAIL_SHM_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_ring.h"

#define SHM_RING_MAGIC 0x52494e47u /* "RING" */
#define SHM_RING_MAX_CAPACITY (1u << 24)

struct shm_ring {
    /* line 0: written once by shm_ring_init */
    _Alignas(64) uint32_t magic;
    uint32_t capacity;
    uint32_t mask;
    uint16_t producer; /* instance index */
    uint16_t consumer;
    /* line 1: producer-owned */
    _Alignas(64) _Atomic uint64_t head;
    uint64_t pushed_full; /* pushes refused because full (producer's statistic) */
    /* line 2: consumer-owned */
    _Alignas(64) _Atomic uint64_t tail;
    uint64_t bad_records; /* records skipped by validation (consumer's statistic) */
    /* then the slots */
    _Alignas(64) struct proto_rec slots[];
};

_Static_assert(sizeof(struct shm_ring) == 192, "shm_ring header is three cache lines");

/* shm_ring_ref - one process's handle on a ring: where it is and its capacity, fixed at open */
struct shm_ring_ref {
    struct shm_ring *ring;
    uint32_t capacity; /* 0: the header was not sane at open */
};

size_t shm_ring_bytes(uint32_t capacity);
int shm_ring_init(void *mem, uint32_t capacity, uint16_t producer, uint16_t consumer);
int shm_ring_open(struct shm_ring_ref *ref, void *mem, size_t bytes);
/* shm_ring_restore - write the header line back from the handle (indexes untouched); no-op on a bad handle */
void shm_ring_restore(const struct shm_ring_ref *ref, uint16_t producer, uint16_t consumer);
int shm_ring_push(const struct shm_ring_ref *ref, struct proto_rec *rec);
int shm_ring_pop(const struct shm_ring_ref *ref, struct proto_rec *out);
/* shm_ring_count - records published and not yet consumed (a snapshot) */
uint64_t shm_ring_count(const struct shm_ring_ref *ref);

#endif
