/*
 * shm_ring_stress_test - shm_ring and shm_bell between real processes
 *
 * The ring, its bell and a small control block live in a MAP_SHARED|MAP_ANONYMOUS region made
 * before fork(); producer and consumer are separate child processes, the parent only orchestrates.
 * Every record carries a counter, a payload derived from it and a checksum over both, so the
 * consumer can tell lost, duplicated, reordered and torn records apart.
 *   stream:  one producer pushes RINGMAIL_STRESS_RECORDS records (default 20,000,000; half under
 *            AddressSanitizer); the consumer sleeps on the bell whenever the ring is empty.
 *   kill:    producers are SIGKILLed at seeded random moments (RINGMAIL_STRESS_SEED, 20 kills) and
 *            replaced; each replacement continues after the last published record. The consumer must
 *            see no invalid record and a gap-free sequence up to the total.
 * Every child is waited for by pid, and killed by pid when the deadline passes. Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "shm/shm_bell.h"
#include "shm/shm_ring.h"
#include "tests/lib/check.h"

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#ifndef STRESS_ASAN
#define STRESS_ASAN 0
#endif

#define STRESS_KILLS 20
#define STRESS_WAIT_MS 5000 /* a bell wait this long with data present means a lost wake-up */
#define STRESS_CASE_DEADLINE CLOCK_SEC(25)

struct stress_ctl {
    struct shm_bell bell;
    _Atomic uint64_t received;
    _Atomic uint64_t sleeps;        /* consumer blocked on the bell */
    _Atomic uint64_t timeouts;      /* bell waits that timed out */
    _Atomic uint64_t lost_wakeups;  /* timed out although records were waiting */
    _Atomic uint64_t gens_seen;     /* distinct producer generations seen */
};

struct stress_region {
    struct stress_ctl *ctl;
    struct shm_ring *ring;
    struct shm_ring_ref ref; /* each process's handle (copied by fork) */
    void *base;
    size_t size;
};

/* splitmix64 finaliser: payload words and checksum that a torn write cannot keep consistent */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rec_checksum(const struct proto_rec *rec)
{
    uint64_t w[4];
    uint64_t h = mix64(((uint64_t)rec->type << 48) ^ ((uint64_t)rec->src << 32) ^ rec->src_gen);

    memcpy(w, rec->body.raw, sizeof(w));
    for (int i = 0; i < 4; i++)
        h = mix64(h ^ w[i]);
    return h;
}

static void rec_build(struct proto_rec *rec, uint64_t counter, uint32_t gen)
{
    uint64_t w[5];

    memset(rec, 0, sizeof(*rec));
    rec->version = PROTO_RING_VERSION;
    rec->type = MSG_SPOOL_MESSAGE_ANNOUNCE;
    rec->src = 3;
    rec->src_gen = gen;
    w[0] = counter;
    for (int i = 1; i < 4; i++)
        w[i] = mix64(counter * 4 + (uint64_t)i);
    memcpy(rec->body.raw, w, 32);
    w[4] = rec_checksum(rec);
    memcpy(rec->body.raw + 32, &w[4], 8);
}

/* rec_verify - 0, or a short reason why the record is not what a producer wrote */
static const char *rec_verify(const struct proto_rec *rec, uint64_t want)
{
    uint64_t w[5];

    memcpy(w, rec->body.raw, sizeof(w));
    if (rec->type != MSG_SPOOL_MESSAGE_ANNOUNCE || rec->src != 3)
        return "header fields changed";
    if (w[4] != rec_checksum(rec))
        return "checksum mismatch (torn record)";
    for (int i = 1; i < 4; i++)
        if (w[i] != mix64(w[0] * 4 + (uint64_t)i))
            return "payload does not match its counter";
    if (w[0] < want)
        return "counter went back (duplicate or reorder)";
    if (w[0] > want)
        return "counter skipped ahead (lost records)";
    return NULL;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0')
        return dflt;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0) {
        printf("bad %s=%s, using %llu\n", name, s, (unsigned long long)dflt);
        return dflt;
    }
    return v;
}

static int region_new(struct stress_region *g, uint32_t capacity)
{
    size_t ctl_bytes = (sizeof(struct stress_ctl) + 63) & ~(size_t)63;
    int efd;

    g->size = ctl_bytes + shm_ring_bytes(capacity);
    g->base = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g->base == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return -1;
    }
    g->ctl = g->base;
    g->ring = (struct shm_ring *)((char *)g->base + ctl_bytes);
    efd = eventfd(0, EFD_NONBLOCK);
    if (efd < 0) {
        printf("eventfd: %s\n", strerror(errno));
        munmap(g->base, g->size);
        return -1;
    }
    shm_bell_init(&g->ctl->bell, efd);
    if (shm_ring_init(g->ring, capacity, 1, 2) != 0 ||
        shm_ring_open(&g->ref, g->ring, shm_ring_bytes(capacity)) != 0) {
        printf("shm_ring_init failed\n");
        close(efd);
        munmap(g->base, g->size);
        return -1;
    }
    return 0;
}

static void region_free(struct stress_region *g)
{
    close(g->ctl->bell.efd);
    munmap(g->base, g->size);
}

/* consumer child: drain, announce sleep, re-check, block; exit 0 when `total` records checked out */
static noreturn void consumer_main(struct stress_region *g, uint64_t total)
{
    struct stress_ctl *ctl = g->ctl;
    struct proto_rec rec;
    uint64_t want = 0;
    uint32_t last_gen = 0;

    while (want < total) {
        int rc = shm_ring_pop(&g->ref, &rec);
        const char *why;

        if (rc == -EAGAIN) {
            shm_bell_prepare_sleep(&ctl->bell);
            rc = shm_ring_pop(&g->ref, &rec);
            if (rc == -EAGAIN) {
                int w;

                atomic_fetch_add(&ctl->sleeps, 1);
                w = shm_bell_wait(&ctl->bell, ctl->bell.efd, STRESS_WAIT_MS);
                shm_bell_woke(&ctl->bell, ctl->bell.efd);
                if (w < 0) {
                    printf("consumer: bell wait: %s\n", strerror(-w));
                    exit(1);
                }
                if (w == 0) {
                    atomic_fetch_add(&ctl->timeouts, 1);
                    if (shm_ring_count(&g->ref) > 0)
                        atomic_fetch_add(&ctl->lost_wakeups, 1);
                }
                continue;
            }
            shm_bell_woke(&ctl->bell, ctl->bell.efd);
        }
        if (rc != 0) {
            printf("consumer: pop at %lu gave %d (%s)\n", (unsigned long)want, rc, strerror(-rc));
            exit(1);
        }
        why = rec_verify(&rec, want);
        if (why != NULL) {
            printf("consumer: record %lu (seq %lu, counter %lu, gen %u): %s\n", (unsigned long)want,
                   (unsigned long)rec.seq, (unsigned long)rec.body.count.count, (unsigned)rec.src_gen, why);
            exit(1);
        }
        if (rec.src_gen < last_gen) {
            printf("consumer: record %lu from generation %u after generation %u\n", (unsigned long)want,
                   rec.src_gen, last_gen);
            exit(1);
        }
        if (rec.src_gen != last_gen)
            atomic_fetch_add(&ctl->gens_seen, 1);
        last_gen = rec.src_gen;
        want++;
        if ((want & 1023) == 0 || want == total)
            atomic_store_explicit(&ctl->received, want, memory_order_relaxed);
    }
    exit(0);
}

/*
 * producer child of generation `gen`: continues after the last published record (the slot before
 * head, stable because only a producer writes slots and the previous one is dead), rings once at
 * start for a predecessor that died between its push and its ring, then pushes up to `total`.
 */
static noreturn void producer_main(struct stress_region *g, uint64_t total, uint32_t gen)
{
    struct shm_ring *r = g->ring;
    struct proto_rec rec;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t next = 0, sum;

    if (head > 0) {
        memcpy(&rec, &r->slots[(head - 1) & r->mask], sizeof(rec));
        memcpy(&next, rec.body.raw, sizeof(next));
        memcpy(&sum, rec.body.raw + 32, sizeof(sum));
        if (rec.seq != head - 1 || rec_checksum(&rec) != sum) {
            printf("producer %u: last published record (seq %lu) is not intact\n", gen, (unsigned long)rec.seq);
            exit(1);
        }
        next++;
    }
    shm_bell_ring(&g->ctl->bell, g->ctl->bell.efd);
    while (next < total) {
        int rc;

        rec_build(&rec, next, gen);
        rc = shm_ring_push(&g->ref, &rec);
        if (rc == -EAGAIN) {
            shm_bell_ring(&g->ctl->bell, g->ctl->bell.efd);
            sched_yield();
            continue;
        }
        if (rc != 0) {
            printf("producer %u: push gave %d\n", gen, rc);
            exit(1);
        }
        shm_bell_ring(&g->ctl->bell, g->ctl->bell.efd);
        next++;
    }
    exit(0);
}

static pid_t spawn(void (*fn)(struct stress_region *, uint64_t, uint32_t), struct stress_region *g,
                   uint64_t total, uint32_t gen)
{
    pid_t pid;

    fflush(stdout);
    pid = fork();
    if (pid == 0)
        fn(g, total, gen);
    if (pid < 0)
        printf("fork: %s\n", strerror(errno));
    return pid;
}

static void consumer_entry(struct stress_region *g, uint64_t total, uint32_t gen)
{
    consumer_main(g, total);
}

static void producer_entry(struct stress_region *g, uint64_t total, uint32_t gen)
{
    producer_main(g, total, gen);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* wait_child - exit status of `pid` (0..255), 256+sig when killed, -1 on deadline (then it is killed) */
static int wait_child(pid_t pid, uint64_t deadline)
{
    int st;

    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);

        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);
        if (w < 0)
            return -1;
        if (clock_mono_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ns(CLOCK_MS(2));
    }
}

/* the consumer must be asleep before the first producer starts, so the bell path is exercised */
static int wait_consumer_asleep(struct stress_region *g, uint64_t deadline)
{
    while (atomic_load(&g->ctl->sleeps) == 0) {
        if (clock_mono_ns() > deadline)
            return -1;
        sleep_ns(CLOCK_MS(1));
    }
    return 0;
}

static int report_consumer(const char *name, struct stress_region *g, int cst, uint64_t total, uint64_t t0)
{
    struct stress_ctl *ctl = g->ctl;
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    uint64_t got = atomic_load(&ctl->received);

    printf("%s: %lu/%lu records in %.2f s (%.1f M/s), consumer slept %lu times, %lu wake-ups, %lu timeouts, "
           "%lu bell writes, %lu producer generations seen\n",
           name, (unsigned long)got, (unsigned long)total, secs, (double)got / secs / 1e6,
           (unsigned long)atomic_load(&ctl->sleeps), (unsigned long)atomic_load(&ctl->bell.wakeups),
           (unsigned long)atomic_load(&ctl->timeouts), (unsigned long)atomic_load(&ctl->bell.rings),
           (unsigned long)atomic_load(&ctl->gens_seen));
    if (cst != 0) {
        FAIL("%s: consumer %s %d", name, cst < 0 ? "missed the deadline" : "exit status", cst);
        return 1;
    }
    if (got != total || atomic_load(&g->ring->head) != total || shm_ring_count(&g->ref) != 0) {
        FAIL("%s: received %lu, head %lu, left %lu, want %lu", name, (unsigned long)got,
               (unsigned long)atomic_load(&g->ring->head), (unsigned long)shm_ring_count(&g->ref),
               (unsigned long)total);
        return 1;
    }
    if (atomic_load(&ctl->lost_wakeups) != 0) {
        FAIL("%s: %lu bell waits timed out with records waiting (lost wake-up)", name,
               (unsigned long)atomic_load(&ctl->lost_wakeups));
        return 1;
    }
    if (atomic_load(&ctl->bell.wakeups) == 0) {
        FAIL("%s: the consumer was never woken by the bell", name);
        return 1;
    }
    return 0;
}

static int test_stream(uint64_t total)
{
    struct stress_region g;
    uint64_t t0 = clock_mono_ns(), deadline = t0 + STRESS_CASE_DEADLINE;
    pid_t cons, prod;
    int cst, pst, fails = 0;

    if (region_new(&g, 1024) != 0)
        return 1;
    cons = spawn(consumer_entry, &g, total, 0);
    if (cons < 0) {
        region_free(&g);
        return 1;
    }
    if (wait_consumer_asleep(&g, deadline) != 0) {
        FAIL("stream: consumer never went to sleep on an empty ring");
        kill(cons, SIGKILL);
        waitpid(cons, NULL, 0);
        region_free(&g);
        return 1;
    }
    prod = spawn(producer_entry, &g, total, 1);
    pst = prod < 0 ? 1 : wait_child(prod, deadline);
    cst = wait_child(cons, prod < 0 ? clock_mono_ns() : deadline);
    if (pst != 0) {
        FAIL("stream: producer %s %d", pst < 0 ? "missed the deadline" : "exit status", pst);
        fails++;
    }
    fails += report_consumer("stream", &g, cst, total, t0);
    region_free(&g);
    return fails != 0;
}

static int test_kill(uint64_t total, unsigned seed)
{
    struct stress_region g;
    uint64_t t0 = clock_mono_ns(), deadline = t0 + STRESS_CASE_DEADLINE;
    pid_t cons, prod;
    int cst, fails = 0, kills = 0, early_exits = 0;
    uint32_t gen = 1;
    unsigned seed0 = seed;

    if (region_new(&g, 256) != 0)
        return 1;
    cons = spawn(consumer_entry, &g, total, 0);
    if (cons < 0 || wait_consumer_asleep(&g, deadline) != 0) {
        FAIL("kill: consumer did not start");
        if (cons > 0) {
            kill(cons, SIGKILL);
            waitpid(cons, NULL, 0);
        }
        region_free(&g);
        return 1;
    }
    for (; kills < STRESS_KILLS; gen++) {
        int st;

        prod = spawn(producer_entry, &g, total, gen);
        if (prod < 0) {
            fails++;
            break;
        }
        /* 0.05..5 ms: lands in push, in record building, or in the spin on a full ring */
        sleep_ns(50000u + (uint64_t)(rand_r(&seed) % 4950u) * 1000u);
        kill(prod, SIGKILL);
        st = wait_child(prod, deadline);
        if (st == 256 + SIGKILL) {
            kills++;
        } else if (st == 0) {
            early_exits++; /* finished before the kill: the total is too small for this machine */
            break;
        } else {
            FAIL("kill: producer generation %u status %d", gen, st);
            fails++;
            break;
        }
    }
    if (fails == 0) {
        int st;

        prod = spawn(producer_entry, &g, total, gen);
        st = prod < 0 ? 1 : wait_child(prod, deadline);
        if (st != 0) {
            FAIL("kill: final producer status %d", st);
            fails++;
        }
    }
    cst = wait_child(cons, fails ? clock_mono_ns() : deadline);
    printf("kill: %d producers SIGKILLed (seed %u)%s\n", kills, seed0,
           early_exits ? ", producer finished before its kill: raise RINGMAIL_STRESS_RECORDS" : "");
    fails += report_consumer("kill", &g, cst, total, t0);
    if (kills < STRESS_KILLS / 2) {
        FAIL("kill: only %d kills landed while pushing", kills);
        fails++;
    }
    region_free(&g);
    return fails != 0;
}

int main(void)
{
    uint64_t total = env_u64("RINGMAIL_STRESS_RECORDS", STRESS_ASAN ? 10000000 : 20000000);
    unsigned seed = (unsigned)env_u64("RINGMAIL_STRESS_SEED", 20251123);

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("shm_ring_stress_test: %lu records%s\n", (unsigned long)total, STRESS_ASAN ? " (ASan build)" : "");
    CHECK(test_stream(total) == 0, "stream case failed");
    CHECK(test_kill(total / 4 < 100000 ? 100000 : total / 4, seed) == 0, "kill case failed");
    CHECK_EXIT();
}
