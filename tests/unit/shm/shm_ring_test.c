/*
 * shm_ring_test - unit cases for shm_ring (SPSC ring) and shm_bell (eventfd doorbell)
 *
 * Single-process cases: the ring's contract (capacity checks, order, full/empty, wrap-around,
 * validation of records and header written into the ring's memory by the test) and the bell's
 * (no write while the consumer is awake, a ring before the wait is kept, timeout, a ring from
 * another thread wakes a blocked wait). The cross-process cases are in shm_ring_stress_test.
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"
#include "shm/shm_bell.h"
#include "shm/shm_ring.h"
#include "tests/lib/check.h"

/* REQUIRE - CHECK that ends the test function: its later steps rely on the ring state or thread it checked */
#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        int failed_before_ = check_failures;                                                                 \
        CHECK(cond, __VA_ARGS__);                                                                            \
        if (check_failures != failed_before_)                                                                \
            return;                                                                                          \
    } while (0)

/* ring_new - a formatted ring of `cap` slots and this process's handle on it; ring_free() frees both */
static struct shm_ring_ref *ring_new(uint32_t cap)
{
    struct shm_ring_ref *ref = xmalloc(sizeof(*ref));
    void *mem = aligned_alloc(64, shm_ring_bytes(cap));

    if (mem == NULL)
        abort();
    if (shm_ring_init(mem, cap, 1, 2) != 0 || shm_ring_open(ref, mem, shm_ring_bytes(cap)) != 0)
        abort();
    return ref;
}

static void ring_free(struct shm_ring_ref *ref)
{
    free(ref->ring);
    free(ref);
}

static void rec_make(struct proto_rec *rec, uint64_t n)
{
    memset(rec, 0, sizeof(*rec));
    rec->version = PROTO_RING_VERSION;
    rec->type = MSG_ROLE_PING;
    rec->src = 1;
    rec->body.ping.token = n;
    rec->body.ping.sent_ns = ~n;
}

static void test_init_capacity(void)
{
    static const struct {
        uint32_t cap;
        int want;
    } cases[] = {
        {0, -EINVAL}, {1, -EINVAL}, {3, -EINVAL}, {6, -EINVAL}, {1000, -EINVAL},
        {SHM_RING_MAX_CAPACITY + 1, -EINVAL}, {SHM_RING_MAX_CAPACITY << 1, -EINVAL}, {0x80000000u, -EINVAL},
        {2, 0}, {4, 0}, {1024, 0}, {1u << 16, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t bytes = shm_ring_bytes(cases[i].want == 0 ? cases[i].cap : 2);
        void *mem = aligned_alloc(64, bytes);
        int rc = shm_ring_init(mem, cases[i].cap, 0, 0);
        struct shm_ring *r = mem;
        struct shm_ring_ref ref;

        if (rc != cases[i].want) {
            FAIL("test_init_capacity: capacity %u: got %d, want %d", cases[i].cap, rc, cases[i].want);
        } else if (rc == 0 && (r->magic != SHM_RING_MAGIC || r->capacity != cases[i].cap
                               || r->mask != cases[i].cap - 1 || shm_ring_open(&ref, mem, bytes) != 0
                               || shm_ring_count(&ref) != 0)) {
            FAIL("test_init_capacity: capacity %u: header not formatted", cases[i].cap);
        }
        free(mem);
    }
    /* misaligned memory is refused too */
    {
        char *mem = aligned_alloc(64, shm_ring_bytes(4) + 64);
        int rc = shm_ring_init(mem + 8, 4, 0, 0);

        free(mem);
        REQUIRE(rc == -EINVAL, "misaligned init gave %d", rc);
    }
    REQUIRE(shm_ring_bytes(4) == 192 + 4 * 64, "shm_ring_bytes(4) = %zu", shm_ring_bytes(4));
}

static void test_order_full_empty(void)
{
    struct shm_ring_ref *r = ring_new(8);
    struct proto_rec rec, out;
    int rc;

    rc = shm_ring_pop(r, &out);
    REQUIRE(rc == -EAGAIN, "pop on a new ring gave %d", rc);
    for (uint64_t i = 0; i < 8; i++) {
        rec_make(&rec, 100 + i);
        rc = shm_ring_push(r, &rec);
        REQUIRE(rc == 0, "push %lu gave %d", (unsigned long)i, rc);
        REQUIRE(rec.seq == i, "push stamped seq %lu, want %lu", (unsigned long)rec.seq, (unsigned long)i);
        REQUIRE(shm_ring_count(r) == i + 1, "count %lu", (unsigned long)shm_ring_count(r));
    }
    rec_make(&rec, 999);
    rc = shm_ring_push(r, &rec);
    REQUIRE(rc == -EAGAIN, "push on a full ring gave %d", rc);
    REQUIRE(r->ring->pushed_full == 1, "pushed_full %lu", (unsigned long)r->ring->pushed_full);
    for (uint64_t i = 0; i < 8; i++) {
        rc = shm_ring_pop(r, &out);
        REQUIRE(rc == 0, "pop %lu gave %d", (unsigned long)i, rc);
        REQUIRE(out.body.ping.token == 100 + i && out.seq == i && out.body.ping.sent_ns == ~(100 + i),
              "pop %lu got token %lu seq %lu", (unsigned long)i, (unsigned long)out.body.ping.token,
              (unsigned long)out.seq);
        REQUIRE(shm_ring_count(r) == 7 - i, "count after pop %lu", (unsigned long)shm_ring_count(r));
    }
    rc = shm_ring_pop(r, &out);
    REQUIRE(rc == -EAGAIN, "pop on a drained ring gave %d", rc);
    /* room again after draining: the producer's cached tail must not keep it "full" */
    rec_make(&rec, 7);
    rc = shm_ring_push(r, &rec);
    REQUIRE(rc == 0, "push after drain gave %d", rc);
    ring_free(r);
}

static void test_wrap_around(void)
{
    struct shm_ring_ref *r = ring_new(4);
    struct proto_rec rec, out;
    uint64_t next_push = 0, next_pop = 0;
    unsigned seed = 12345;

    /* pseudo-random batches, so that full, empty and every slot boundary are crossed many times */
    while (next_pop < 100000) {
        unsigned np = (unsigned)(rand_r(&seed) % 6), nc = (unsigned)(rand_r(&seed) % 6);

        for (unsigned i = 0; i < np; i++) {
            int rc;

            rec_make(&rec, next_push);
            rc = shm_ring_push(r, &rec);
            if (next_push - next_pop == 4) {
                REQUIRE(rc == -EAGAIN, "push into full ring gave %d", rc);
            } else {
                REQUIRE(rc == 0, "push %lu gave %d", (unsigned long)next_push, rc);
                next_push++;
            }
        }
        for (unsigned i = 0; i < nc; i++) {
            int rc = shm_ring_pop(r, &out);

            if (next_pop == next_push) {
                REQUIRE(rc == -EAGAIN, "pop from empty ring gave %d", rc);
            } else {
                REQUIRE(rc == 0, "pop %lu gave %d", (unsigned long)next_pop, rc);
                REQUIRE(out.body.ping.token == next_pop && out.seq == next_pop, "pop %lu got token %lu",
                      (unsigned long)next_pop, (unsigned long)out.body.ping.token);
                next_pop++;
            }
        }
        REQUIRE(shm_ring_count(r) == next_push - next_pop, "count %lu want %lu", (unsigned long)shm_ring_count(r),
              (unsigned long)(next_push - next_pop));
    }
    REQUIRE(atomic_load(&r->ring->head) > 4 * 20000, "only %lu pushes",
            (unsigned long)atomic_load(&r->ring->head));
    ring_free(r);
}

enum corrupt_field { CORRUPT_VERSION, CORRUPT_TYPE, CORRUPT_TYPE_MAX, CORRUPT_SEQ, CORRUPT_SEQ_OLD };

static void test_corrupt_slot(void)
{
    static const struct {
        const char *name;
        enum corrupt_field field;
    } cases[] = {
        {"version 0", CORRUPT_VERSION}, {"type 0xffff", CORRUPT_TYPE}, {"type MSG__MAX", CORRUPT_TYPE_MAX},
        {"seq ahead", CORRUPT_SEQ},     {"seq of the previous lap", CORRUPT_SEQ_OLD},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shm_ring_ref *r = ring_new(4);
        struct proto_rec rec, out;
        struct proto_rec *slot;
        int rc;

        /* one lap first so the corrupted slot is not slot 0 of a fresh ring */
        for (uint64_t n = 0; n < 5; n++) {
            rec_make(&rec, n);
            shm_ring_push(r, &rec);
            shm_ring_pop(r, &out);
        }
        for (uint64_t n = 5; n < 8; n++) {
            rec_make(&rec, n);
            rc = shm_ring_push(r, &rec);
            if (rc != 0) {
                FAIL("test_corrupt_slot %s: push gave %d", cases[i].name, rc);
            }
        }
        slot = &r->ring->slots[6 & r->ring->mask]; /* the middle record */
        switch (cases[i].field) {
        case CORRUPT_VERSION: slot->version = 0; break;
        case CORRUPT_TYPE: slot->type = 0xffff; break;
        case CORRUPT_TYPE_MAX: slot->type = MSG__MAX; break;
        case CORRUPT_SEQ: slot->seq = 6 + 4; break;
        case CORRUPT_SEQ_OLD: slot->seq = 6 - 4; break;
        }
        rc = shm_ring_pop(r, &out);
        if (rc != 0 || out.body.ping.token != 5) {
            FAIL("test_corrupt_slot %s: first pop gave %d token %lu", cases[i].name, rc,
                   (unsigned long)out.body.ping.token);
        }
        rc = shm_ring_pop(r, &out);
        if (rc != -EBADMSG || r->ring->bad_records != 1) {
            FAIL("test_corrupt_slot %s: corrupt pop gave %d (bad_records %lu), want -EBADMSG",
                   cases[i].name, rc, (unsigned long)r->ring->bad_records);
        }
        rc = shm_ring_pop(r, &out);
        if (rc != 0 || out.body.ping.token != 7) {
            FAIL("test_corrupt_slot %s: ring did not continue: %d token %lu", cases[i].name, rc,
                   (unsigned long)out.body.ping.token);
        }
        /* and the producer can still use the skipped slot */
        rec_make(&rec, 8);
        rc = shm_ring_push(r, &rec);
        if (rc != 0 || shm_ring_pop(r, &out) != 0 || out.body.ping.token != 8 || shm_ring_count(r) != 0) {
            FAIL("test_corrupt_slot %s: push/pop after the skip", cases[i].name);
        }
        ring_free(r);
    }
}

enum corrupt_header { HDR_MAGIC, HDR_CAP_ODD, HDR_CAP_ZERO, HDR_CAP_BIG, HDR_MASK, HDR_HEAD, HDR_TAIL };

static void test_corrupt_header(void)
{
    static const struct {
        const char *name;
        enum corrupt_header field;
    } cases[] = {
        {"magic", HDR_MAGIC},     {"capacity 5", HDR_CAP_ODD},   {"capacity 0", HDR_CAP_ZERO},
        {"capacity 2^30 with a matching mask", HDR_CAP_BIG},     {"mask", HDR_MASK},
        {"head beyond tail+capacity", HDR_HEAD},                 {"tail beyond head", HDR_TAIL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct shm_ring_ref *r = ring_new(8);
        struct proto_rec rec, out;
        uint64_t tail_before;
        int rc_pop, rc_push;

        for (uint64_t n = 0; n < 3; n++) {
            rec_make(&rec, n);
            shm_ring_push(r, &rec);
        }
        shm_ring_pop(r, &out);
        switch (cases[i].field) {
        case HDR_MAGIC: r->ring->magic ^= 1; break;
        case HDR_CAP_ODD: r->ring->capacity = 5; break;
        case HDR_CAP_ZERO: r->ring->capacity = 0; break;
        case HDR_CAP_BIG: r->ring->capacity = 1u << 30; r->ring->mask = (1u << 30) - 1; break;
        case HDR_MASK: r->ring->mask = 0xffff; break;
        case HDR_HEAD: atomic_store(&r->ring->head, 1000); break;
        case HDR_TAIL: atomic_store(&r->ring->tail, 1000); break;
        }
        tail_before = atomic_load(&r->ring->tail);
        rc_pop = shm_ring_pop(r, &out);
        rec_make(&rec, 99);
        rc_push = shm_ring_push(r, &rec);
        if (cases[i].field == HDR_HEAD || cases[i].field == HDR_TAIL) {
            /*
             * A side reads the other side's index only when its private cache says empty (consumer)
             * or full (producer); until then it keeps using records and slots it knows are valid.
             * So the corruption must show within `capacity` further calls, never as a wrong access.
             */
            for (int k = 0; k < 8 && rc_pop == 0; k++)
                rc_pop = shm_ring_pop(r, &out);
            for (int k = 0; k < 8 && rc_push == 0; k++)
                rc_push = shm_ring_push(r, &rec);
            tail_before = atomic_load(&r->ring->tail);
            rc_pop = shm_ring_pop(r, &out);
        }
        if (rc_pop != -EPROTO || rc_push != -EPROTO || atomic_load(&r->ring->tail) != tail_before) {
            FAIL("test_corrupt_header %s: pop %d push %d (want -EPROTO, nothing consumed)", cases[i].name,
                   rc_pop, rc_push);
        }
        if (shm_ring_count(r) > 8) {
            FAIL("test_corrupt_header %s: count %lu", cases[i].name, (unsigned long)shm_ring_count(r));
        }
        ring_free(r);
    }
}

/*
 * ROLE-01: a hostile process that maps the segment rewrites a ring's header to a larger power of
 * two with a matching mask (which passes every sanity check) and moves head and tail past the
 * ring's slots. The handle's capacity, fixed at open, must keep every access inside the ring's
 * bytes. The ring ends exactly where a PROT_NONE page starts, so an access past it is a crash here
 * (and an ASan report in the sanitizer build), not a silent read of a neighbour.
 */
static void test_hostile_capacity(void)
{
    const size_t page = 4096, bytes = shm_ring_bytes(8), span = (bytes + page - 1) / page * page;
    char *map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct shm_ring_ref ref;
    struct proto_rec rec, out;

    REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
    REQUIRE(mprotect(map + span, page, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
    char *mem = map + span - bytes; /* 64-byte aligned: bytes is a multiple of 64 */
    REQUIRE(shm_ring_init(mem, 8, 1, 2) == 0 && shm_ring_open(&ref, mem, bytes) == 0, "init/open");
    CHECK(shm_ring_open(&(struct shm_ring_ref){0}, mem, bytes - 64) == -EPROTO,
          "open accepted a ring larger than its bytes");
    for (uint64_t n = 0; n < 3; n++) {
        rec_make(&rec, n);
        REQUIRE(shm_ring_push(&ref, &rec) == 0, "push %lu", (unsigned long)n);
    }
    REQUIRE(shm_ring_pop(&ref, &out) == 0, "pop");

    struct shm_ring *r = ref.ring;
    r->capacity = 16;
    r->mask = 15;
    atomic_store(&r->tail, 8); /* slot 8 of 16: the first byte of the guard page */
    atomic_store(&r->head, 12);
    int rc_pop = shm_ring_pop(&ref, &out);
    rec_make(&rec, 99);
    int rc_push = shm_ring_push(&ref, &rec);
    CHECK(rc_pop == -EPROTO && rc_push == -EPROTO, "rewritten capacity: pop %d push %d, want -EPROTO", rc_pop,
          rc_push);
    CHECK(shm_ring_count(&ref) == 0, "count %lu on a rewritten header", (unsigned long)shm_ring_count(&ref));
    CHECK(atomic_load(&r->tail) == 8 && atomic_load(&r->head) == 12, "a side moved an index on a bad header");

    /* the header put back, the indexes left where the hostile writer put them: the slots used are the
     * ring's own (masked by the private capacity), records that fail validation are skipped */
    r->capacity = 8;
    r->mask = 7;
    for (int k = 0; k < 4; k++) {
        int rc = shm_ring_pop(&ref, &out);
        CHECK(rc == -EBADMSG || rc == 0, "pop %d after the header was restored gave %d", k, rc);
    }
    CHECK(shm_ring_pop(&ref, &out) == -EAGAIN, "ring not empty after the moved records");
    munmap(map, span + page);
}

/* a re-formatted ring at the same address must not reuse this thread's cached indexes */
static void test_reinit_same_memory(void)
{
    struct shm_ring_ref *r = ring_new(4);
    struct proto_rec rec, out;
    int rc;

    for (uint64_t n = 0; n < 10; n++) {
        rec_make(&rec, n);
        shm_ring_push(r, &rec);
        shm_ring_pop(r, &out);
    }
    rc = shm_ring_init(r->ring, 4, 1, 2);
    REQUIRE(rc == 0, "re-init gave %d", rc);
    for (uint64_t n = 0; n < 4; n++) {
        rec_make(&rec, n);
        rc = shm_ring_push(r, &rec);
        REQUIRE(rc == 0, "push %lu after re-init gave %d", (unsigned long)n, rc);
    }
    rec_make(&rec, 4);
    rc = shm_ring_push(r, &rec);
    REQUIRE(rc == -EAGAIN, "fifth push into a re-formatted 4-slot ring gave %d", rc);
    /* an outside reset of the indexes (no init call in this thread) drops the caches as well */
    atomic_store(&r->ring->head, 0);
    atomic_store(&r->ring->tail, 0);
    rc = shm_ring_pop(r, &out);
    REQUIRE(rc == -EAGAIN, "pop after index reset gave %d", rc);
    for (uint64_t n = 0; n < 4; n++) {
        rec_make(&rec, n);
        rc = shm_ring_push(r, &rec);
        REQUIRE(rc == 0, "push %lu after index reset gave %d", (unsigned long)n, rc);
    }
    rc = shm_ring_push(r, &rec);
    REQUIRE(rc == -EAGAIN, "push into a full ring after index reset gave %d", rc);
    ring_free(r);
}

static int bell_readable(struct shm_bell *b)
{
    return shm_bell_wait(b, b->efd, 0);
}

/* the descriptors a role takes from --bell-fds: eventfds of this process only, exactly n of them */
static void test_bell_fds(void)
{
    int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC), pfd[2], fds[3];
    char list[64], *err = NULL;

    REQUIRE(e1 >= 0 && e2 >= 0 && pipe(pfd) == 0, "eventfd/pipe: %s", strerror(errno));
    REQUIRE(shm_bell_fd_check(e1) && !shm_bell_fd_check(pfd[0]) && !shm_bell_fd_check(2) &&
                !shm_bell_fd_check(-1) && !shm_bell_fd_check(1000000),
            "shm_bell_fd_check takes something that is not an eventfd");
    snprintf(list, sizeof(list), "%d,%d", e1, e2);
    REQUIRE(shm_bell_fds_parse(list, fds, 2, &err) == 0 && fds[0] == e1 && fds[1] == e2, "%s: %s", list,
            err ? err : "wrong numbers");
    static const char *const bad_fmt[] = {"", "x", "5,", ",5", "5;6", "-1,5", "99999999999,5", "5 ,6"};
    for (size_t i = 0; i < sizeof(bad_fmt) / sizeof(bad_fmt[0]); i++) {
        REQUIRE(shm_bell_fds_parse(bad_fmt[i], fds, 2, &err) == -EINVAL && err, "\"%s\" accepted", bad_fmt[i]);
        free(err);
    }
    char bad[3][64];
    snprintf(bad[0], sizeof(bad[0]), "%d,%d", e1, pfd[1]); /* a pipe: the role would write into it */
    snprintf(bad[1], sizeof(bad[1]), "%d,2", e1);          /* stderr */
    snprintf(bad[2], sizeof(bad[2]), "%d,%d,%d", e1, e2, e1); /* one too many */
    for (int i = 0; i < 3; i++) {
        REQUIRE(shm_bell_fds_parse(bad[i], fds, 2, &err) == -EINVAL && err, "\"%s\" accepted", bad[i]);
        free(err);
    }
    snprintf(list, sizeof(list), "%d", e1); /* one too few */
    REQUIRE(shm_bell_fds_parse(list, fds, 2, &err) == -EINVAL && err, "\"%s\" accepted for 2", list);
    free(err);
    /* a negative descriptor is never written */
    struct shm_bell b;
    shm_bell_init(&b, e1);
    shm_bell_prepare_sleep(&b);
    REQUIRE(shm_bell_ring(&b, -1) == -EBADF && atomic_load(&b.rings) == 0, "ring on fd -1 wrote");
    close(e1);
    close(e2);
    close(pfd[0]);
    close(pfd[1]);
}

static void test_bell_basic(void)
{
    struct shm_bell b;
    int efd = eventfd(0, EFD_CLOEXEC); /* blocking on purpose: init must make it non-blocking */
    uint64_t t0, dt;
    int rc;

    REQUIRE(efd >= 0, "eventfd: %s", strerror(errno));
    shm_bell_init(&b, efd);
    /* consumer awake: ringing costs no write */
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == 0 && atomic_load(&b.rings) == 0 && bell_readable(&b) == 0, "ring while awake wrote (rc %d)", rc);
    /* ring before wait is not lost */
    shm_bell_prepare_sleep(&b);
    REQUIRE((atomic_load(&b.sleeping) & 1) == 1, "prepare_sleep did not set the flag");
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == 0 && atomic_load(&b.rings) == 1, "ring while sleeping: rc %d rings %lu", rc,
          (unsigned long)atomic_load(&b.rings));
    /* a second producer in the same cycle skips the write: the first one's write completed */
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == 0 && atomic_load(&b.rings) == 1, "second ring in one cycle wrote again");
    t0 = clock_mono_ns();
    rc = shm_bell_wait(&b, b.efd, 5000);
    dt = clock_mono_ns() - t0;
    REQUIRE(rc == 1 && dt < CLOCK_MS(1000), "wait after ring gave %d after %lu ns", rc, (unsigned long)dt);
    shm_bell_woke(&b, b.efd);
    REQUIRE(atomic_load(&b.wakeups) == 1 && (atomic_load(&b.sleeping) & 1) == 0, "woke: wakeups %lu",
          (unsigned long)atomic_load(&b.wakeups));
    REQUIRE(bell_readable(&b) == 0, "the eventfd was not drained");
    /* woke on an empty counter must not block, and a timed-out sleep is no wake-up */
    shm_bell_prepare_sleep(&b);
    t0 = clock_mono_ns();
    rc = shm_bell_wait(&b, b.efd, 50);
    dt = clock_mono_ns() - t0;
    REQUIRE(rc == 0 && dt >= CLOCK_MS(45), "timeout wait gave %d after %lu ns", rc, (unsigned long)dt);
    shm_bell_woke(&b, b.efd);
    REQUIRE(atomic_load(&b.wakeups) == 1 && (atomic_load(&b.sleeping) & 1) == 0, "timeout counted as wake-up");
    /* the next cycle rings again (a new cycle re-arms the flag) */
    shm_bell_prepare_sleep(&b);
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == 0 && atomic_load(&b.rings) == 2 && shm_bell_wait(&b, b.efd, 1000) == 1, "second cycle not rung");
    shm_bell_woke(&b, b.efd);
    REQUIRE(atomic_load(&b.wakeups) == 2, "wakeups %lu", (unsigned long)atomic_load(&b.wakeups));
    close(efd);
}

/*
 * Producers that die or stall inside shm_bell_ring(): a write whose flag update never landed leaves a
 * stale count (one spurious wake, then quiet: no busy loop); a flag update from an earlier cycle
 * must not silence the next one.
 */
static void test_bell_interrupted_ring(void)
{
    struct shm_bell b;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    uint32_t old;
    int rc;

    REQUIRE(efd >= 0, "eventfd: %s", strerror(errno));
    shm_bell_init(&b, efd);
    /* a producer wrote and was killed before clearing the flag; the consumer woke on a timeout */
    shm_bell_prepare_sleep(&b);
    REQUIRE(write(efd, &one, sizeof(one)) == sizeof(one), "write");
    shm_bell_woke(&b, b.efd);
    shm_bell_prepare_sleep(&b);
    rc = shm_bell_wait(&b, b.efd, 1000);
    REQUIRE(rc == 1, "stale count did not wake (%d)", rc);
    shm_bell_woke(&b, b.efd);
    shm_bell_prepare_sleep(&b);
    rc = shm_bell_wait(&b, b.efd, 20);
    REQUIRE(rc == 0, "stale count woke twice (%d): a consumer would spin", rc);
    shm_bell_woke(&b, b.efd);
    /* a producer saw cycle N asleep, stalled, and clears the bit only after cycle N+1 began */
    shm_bell_prepare_sleep(&b);
    old = atomic_load(&b.sleeping);
    shm_bell_woke(&b, b.efd);
    shm_bell_prepare_sleep(&b);
    {
        uint32_t expect = old;

        atomic_compare_exchange_strong(&b.sleeping, &expect, old & ~1u);
    }
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == 0 && shm_bell_wait(&b, b.efd, 1000) == 1, "a late flag update from the previous cycle lost a ring");
    shm_bell_woke(&b, b.efd);
    close(efd);
}

struct bell_thread_arg {
    struct shm_bell *b;
    struct shm_ring_ref *r;
};

static void *bell_producer(void *p)
{
    struct bell_thread_arg *a = p;
    struct proto_rec rec;
    struct timespec ts = {.tv_nsec = 30 * 1000 * 1000};

    nanosleep(&ts, NULL);
    rec_make(&rec, 42);
    shm_bell_ring(a->b, a->b->efd); /* nothing published yet: must not matter */
    shm_ring_push(a->r, &rec);
    shm_bell_ring(a->b, a->b->efd);
    return NULL;
}

/* the consumer's loop: drain, prepare, re-check, block; a ring from another thread ends the block */
static void test_bell_cross_thread(void)
{
    struct shm_bell b;
    struct shm_ring_ref *r = ring_new(4);
    struct bell_thread_arg arg = {.b = NULL, .r = r};
    struct proto_rec out;
    pthread_t th;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int got = 0, rounds = 0;
    uint64_t t0 = clock_mono_ns();

    REQUIRE(efd >= 0, "eventfd: %s", strerror(errno));
    shm_bell_init(&b, efd);
    arg.b = &b;
    REQUIRE(pthread_create(&th, NULL, bell_producer, &arg) == 0, "pthread_create");
    while (!got && rounds++ < 100) {
        if (shm_ring_pop(r, &out) == 0) {
            got = 1;
            break;
        }
        shm_bell_prepare_sleep(&b);
        if (shm_ring_pop(r, &out) == 0) {
            shm_bell_woke(&b, b.efd);
            got = 1;
            break;
        }
        shm_bell_wait(&b, b.efd, 5000);
        shm_bell_woke(&b, b.efd);
    }
    pthread_join(th, NULL);
    REQUIRE(got && out.body.ping.token == 42, "record not received (rounds %d)", rounds);
    REQUIRE(clock_mono_ns() - t0 < CLOCK_SEC(4), "consumer slept through the ring");
    REQUIRE(atomic_load(&b.rings) >= 1 && atomic_load(&b.wakeups) >= 1, "rings %lu wakeups %lu",
          (unsigned long)atomic_load(&b.rings), (unsigned long)atomic_load(&b.wakeups));
    close(efd);
    ring_free(r);
}

static void test_bell_bad_fd(void)
{
    struct shm_bell b;
    int efd = eventfd(0, EFD_NONBLOCK);
    int rc;

    REQUIRE(efd >= 0, "eventfd");
    shm_bell_init(&b, efd);
    close(efd);
    shm_bell_prepare_sleep(&b);
    rc = shm_bell_ring(&b, b.efd);
    REQUIRE(rc == -EBADF, "ring on a closed fd gave %d", rc);
    rc = shm_bell_wait(&b, b.efd, 10);
    REQUIRE(rc < 0, "wait on a closed fd gave %d", rc);
}

int main(void)
{
    test_init_capacity();
    test_order_full_empty();
    test_wrap_around();
    test_corrupt_slot();
    test_corrupt_header();
    test_hostile_capacity();
    test_reinit_same_memory();
    test_bell_basic();
    test_bell_fds();
    test_bell_interrupted_ring();
    test_bell_cross_thread();
    test_bell_bad_fd();
    CHECK_EXIT();
}
