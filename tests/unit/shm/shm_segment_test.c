/*
 * shm_segment_test - the segment's private copies: what a process attached keeps, whatever the header says
 *
 * A node of the largest shape (32 ingress and 32 egress workers: 66 instances, 194 rings) is created
 * and attached again through its fd, as a role does. Then a hostile role rewrites the header (counts,
 * ring topology, offsets), a ring's header line and the arena's geometry (ROLE-01, issue 13 #3): the
 * attached view keeps answering from its copies, a fresh attach refuses the header, and the
 * supervisor's shm_segment_repair() puts everything back so that the next role can attach.
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "shm/shm_segment.h"
#include "tests/lib/check.h"

#define W PROTO_NODE_MAX_WORKERS

static const struct shm_segment_params params = {
    .n_ingress = W, .n_egress = W, .ring_slots = 16, .arena_bytes = 1u << 20, .huge = SHM_HUGE_OFF};

/* attach - as a role does, on its own descriptor of the segment (a failed attach closes it) */
static int attach(const struct shm_segment *created, struct shm_segment *out)
{
    char *err = NULL;
    int rc = shm_segment_attach(out, dup(created->pages.fd), &err);
    if (rc < 0)
        printf("attach: %s\n", err);
    free(err);
    return rc;
}

static void ping(struct proto_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->version = PROTO_RING_VERSION;
    rec->type = MSG_ROLE_PING;
}

static void test_largest_shape(struct shm_segment *seg, struct shm_segment *role)
{
    CHECK(role->n_instances == 2 + 2 * W && role->n_rings == 2 + 6 * W && role->n_rings <= SHM_MAX_RINGS,
          "attached %u instances, %u rings", role->n_instances, role->n_rings);
    unsigned rings = 0;
    for (unsigned f = 0; f < role->n_instances; f++) {
        for (unsigned t = 0; t < role->n_instances; t++) {
            const struct shm_ring_ref *a = shm_segment_ring(seg, f, t), *b = shm_segment_ring(role, f, t);
            CHECK((a == NULL) == (b == NULL), "ring %u -> %u in one view only", f, t);
            if (a && b) {
                rings++;
                long at_a = (char *)a->ring - (char *)seg->pages.base;
                long at_b = (char *)b->ring - (char *)role->pages.base;
                CHECK(at_a == at_b && b->capacity == params.ring_slots, "ring %u -> %u: at %ld/%ld capacity %u", f,
                      t, at_a, at_b, b->capacity);
            }
        }
    }
    CHECK(rings == role->n_rings, "%u rings reachable", rings);
    CHECK(shm_segment_role(role, 0) == PROTO_NODE_ROLE_SPOOL &&
              shm_segment_role(role, 1) == PROTO_NODE_ROLE_SCHEDULER &&
              shm_segment_role(role, 2 + W - 1) == PROTO_NODE_ROLE_INGRESS &&
              shm_segment_role(role, 2 + W) == PROTO_NODE_ROLE_EGRESS &&
              shm_segment_role(role, 2 + 2 * W - 1) == PROTO_NODE_ROLE_EGRESS &&
              shm_segment_role(role, 2 + 2 * W) == PROTO_NODE_ROLE__MAX,
          "roles by instance number");
}

static void test_hostile_writes(struct shm_segment *seg, struct shm_segment *role)
{
    const struct shm_ring_ref *spool_in = shm_segment_ring(role, 2, 0);
    struct shm_header *h = seg->hdr;
    struct proto_rec rec;

    /* the header: counts, topology, offsets */
    h->n_ingress = 0xffff;
    h->n_instances = 0xffffffffu;
    h->n_rings = 0xffffffffu;
    h->ring_bytes = ~0ull;
    h->off_arena = 1ull << 60;
    memset(h->ring_index, 0x5a, sizeof(h->ring_index));
    for (unsigned i = 0; i < SHM_MAX_RINGS; i++)
        h->rings[i].off = 1ull << 62;
    CHECK(shm_segment_ring(role, 2, 0) == spool_in, "the attached view follows the rewritten topology");
    CHECK(shm_segment_ring(role, 1000, 0) == NULL && shm_segment_ring(role, 0, 2 + 2 * W) == NULL,
          "an instance beyond the real count has a ring");
    CHECK(shm_segment_instance_of(role, PROTO_NODE_ROLE_EGRESS, W - 1) == 2 + 2 * W - 1,
          "instance_of follows the rewritten counts");
    struct shm_segment fresh;
    CHECK(attach(seg, &fresh) == -EPROTO, "a rewritten header was accepted at attach");

    /* a ring's header line, and the arena's geometry */
    ping(&rec);
    CHECK(shm_ring_push(spool_in, &rec) == 0, "push before the ring was rewritten");
    spool_in->ring->capacity = 1u << 20;
    spool_in->ring->mask = (1u << 20) - 1;
    ping(&rec);
    CHECK(shm_ring_push(spool_in, &rec) == -EPROTO, "push into a ring with a rewritten capacity");
    uint64_t *arena_word = (uint64_t *)(void *)role->arena->hdr;
    arena_word[2] *= 4096; /* n_blocks */
    uint64_t off;
    CHECK(shm_arena_alloc(role->arena, 1, 2, 1, &off) == 0 && off < role->arena->total,
          "alloc in the real arena");
    CHECK(shm_arena_free(role->arena, off) == 0, "free");

    /* the supervisor puts the layout back before it starts the next role */
    shm_segment_repair(seg);
    CHECK(attach(seg, &fresh) == 0, "attach after the repair");
    if (check_failures == 0) {
        CHECK(fresh.n_rings == role->n_rings &&
                  (char *)shm_segment_ring(&fresh, 2, 0)->ring - (char *)fresh.pages.base ==
                      (char *)spool_in->ring - (char *)role->pages.base,
              "the repaired header names the same rings");
        shm_segment_close(&fresh);
    }
    ping(&rec);
    CHECK(shm_ring_push(spool_in, &rec) == 0, "push after the repair");
    CHECK(h->n_instances == 2 + 2 * W && h->n_ingress == W, "counts not repaired");
}

int main(void)
{
    struct shm_segment seg, role;
    char *err = NULL;

    log_init("shm_segment_test", -1);
    if (shm_segment_create(&seg, &params, &err) < 0) {
        FAIL("create: %s", err);
        free(err);
        CHECK_EXIT();
    }
    CHECK(attach(&seg, &role) == 0, "attach");
    if (check_failures == 0) {
        test_largest_shape(&seg, &role);
        test_hostile_writes(&seg, &role);
        shm_segment_close(&role);
    }
    shm_segment_close(&seg);
    CHECK_EXIT();
}
