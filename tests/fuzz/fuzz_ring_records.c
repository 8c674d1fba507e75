/*
 * fuzz_ring_records - a ring whose slots and indices were written by a hostile or broken producer
 *
 * Input: 8 octets of head (the producer's published position), then raw bytes laid over the slots.
 * The consumer must never crash, never loop, and only ever hand out records whose sequence number is
 * the position they were read from, whose version is ours and whose type is known: everything else is
 * -EBADMSG (consumed, skipped) or -EPROTO (an impossible head: nothing consumed).
 */
#include "shm/shm_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"



#define CAP 16u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(64) unsigned char mem[sizeof(struct shm_ring) + CAP * PROTO_REC_SIZE];
    struct shm_ring *r = (struct shm_ring *)mem;
    uint64_t head = 0;

    if (size < sizeof(head))
        return 0;
    memcpy(&head, data, sizeof(head));
    data += sizeof(head);
    size -= sizeof(head);
    struct shm_ring_ref ref;
    CHECK(shm_ring_init(mem, CAP, 2, 0) == 0);
    CHECK(shm_ring_open(&ref, mem, sizeof(mem)) == 0);
    memcpy(r->slots, data, size < CAP * PROTO_REC_SIZE ? size : CAP * PROTO_REC_SIZE);
    /* small heads are the interesting ones: reduce most inputs into the valid window */
    if (head & (1ull << 63))
        head &= 31;
    atomic_store(&r->head, head);

    unsigned good = 0, bad = 0;
    for (unsigned i = 0; i < 2 * CAP + 2; i++) {
        uint64_t pos = atomic_load(&r->tail);
        struct proto_rec rec;
        int rc = shm_ring_pop(&ref, &rec);
        if (rc == -EAGAIN || rc == -EPROTO) {
            CHECK(atomic_load(&r->tail) == pos); /* nothing consumed */
            CHECK(rc == -EPROTO ? head > CAP : pos == head);
            break;
        }
        CHECK(atomic_load(&r->tail) == pos + 1);
        if (rc == 0) {
            CHECK(rec.seq == pos && rec.version == PROTO_RING_VERSION && rec.type < MSG__MAX);
            good++;
        } else {
            CHECK(rc == -EBADMSG);
            bad++;
        }
    }
    CHECK(good + bad <= CAP);
    CHECK(head > CAP || good + bad == head);
    return 0;
}
