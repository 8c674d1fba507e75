/*
 * ring_bench - ringmail-ring-bench: shm_ring throughput and shm_bell wake-up latency between processes
 *
 * Two processes share one MAP_SHARED|MAP_ANONYMOUS region made before fork() (with --hugepages,
 * MAP_HUGETLB 2 MiB pages; exit 2 when the host has none reserved).
 *   throughput: the producer pushes --records records in batches of 64 and rings the consumer's bell
 *               once per batch; the consumer pops and sleeps on the bell whenever the ring is empty.
 *               Result: records per second from the producer's first push to the consumer's last pop.
 *   latency:    --pings round trips; before each ping the pinger waits until the ponger is asleep on
 *               its bell (flag up, then 100 us more so it is blocked in poll), so every ping pays a
 *               real wake-up. Wake latency = ponger's pop time - pinger's send time (CLOCK_MONOTONIC is
 *               system-wide); round trip = pong received - ping sent (the pinger sleeps too).
 * Output: one human-readable line, or one JSON object with --json. Exit 0, 1 on failure, 2 when
 * --hugepages cannot be served.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "shm/shm_bell.h"
#include "shm/shm_pages.h"
#include "shm/shm_ring.h"

#define BENCH_BATCH 64
#define BENCH_PING_RING 64
#define BENCH_HUGE (2u << 20)

struct bench_ctl {
    struct shm_bell bell_cons;   /* throughput consumer */
    struct shm_bell bell_ponger;
    struct shm_bell bell_pinger;
    _Atomic uint64_t t_start;    /* producer's first push */
    _Atomic uint64_t t_end;      /* consumer's last pop */
    _Atomic uint64_t received;
    _Atomic int failed;
};

struct bench {
    struct bench_ctl *ctl;
    struct shm_ring_ref data;    /* throughput ring */
    struct shm_ring_ref ping;    /* pinger -> ponger */
    struct shm_ring_ref pong;    /* ponger -> pinger */
    void *base;
    size_t size;
    uint64_t records;
    uint64_t pings;
    uint32_t capacity;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmail-ring-bench [--records N] [--pings N] [--capacity N] [--hugepages] [--json]\n");
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static int bench_map(struct bench *bn, int huge)
{
    size_t ctl_bytes = align64(sizeof(struct bench_ctl));
    size_t need = ctl_bytes + shm_ring_bytes(bn->capacity) + 2 * shm_ring_bytes(BENCH_PING_RING);
    int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE;
    char *p;

    bn->size = need;
    if (huge) {
        long free_pages = shm_pages_hugepages_free();

        bn->size = (need + BENCH_HUGE - 1) & ~(size_t)(BENCH_HUGE - 1);
        if (free_pages < (long)(bn->size / BENCH_HUGE)) {
            fprintf(stderr,
                    "ringmail-ring-bench: --hugepages needs %zu free 2 MiB hugepages, the host has %ld "
                    "(reserve them with: sysctl vm.nr_hugepages=N)\n",
                    bn->size / BENCH_HUGE, free_pages < 0 ? 0 : free_pages);
            return 2;
        }
        flags |= MAP_HUGETLB;
    }
    bn->base = mmap(NULL, bn->size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (bn->base == MAP_FAILED) {
        fprintf(stderr, "ringmail-ring-bench: mmap of %zu bytes%s: %s\n", bn->size, huge ? " (MAP_HUGETLB)" : "",
                strerror(errno));
        return huge ? 2 : 1;
    }
    p = bn->base;
    bn->ctl = (struct bench_ctl *)p;
    p += ctl_bytes;
    size_t data_bytes = shm_ring_bytes(bn->capacity), ping_bytes = shm_ring_bytes(BENCH_PING_RING);
    if (shm_ring_init(p, bn->capacity, 1, 2) != 0 || shm_ring_init(p + data_bytes, BENCH_PING_RING, 1, 2) != 0
        || shm_ring_init(p + data_bytes + ping_bytes, BENCH_PING_RING, 2, 1) != 0) {
        fprintf(stderr, "ringmail-ring-bench: bad --capacity %u (power of two, 2..%u)\n", bn->capacity,
                SHM_RING_MAX_CAPACITY);
        return 1;
    }
    if (shm_ring_open(&bn->data, p, data_bytes) != 0
        || shm_ring_open(&bn->ping, p + data_bytes, ping_bytes) != 0
        || shm_ring_open(&bn->pong, p + data_bytes + ping_bytes, ping_bytes) != 0)
        return 1;
    {
        struct shm_bell *bells[] = {&bn->ctl->bell_cons, &bn->ctl->bell_ponger, &bn->ctl->bell_pinger};

        for (int i = 0; i < 3; i++) {
            int efd = eventfd(0, EFD_NONBLOCK);

            if (efd < 0) {
                fprintf(stderr, "ringmail-ring-bench: eventfd: %s\n", strerror(errno));
                return 1;
            }
            shm_bell_init(bells[i], efd);
        }
    }
    return 0;
}

/* pop_or_sleep - the consumer loop every role uses: drain, announce sleep, re-check, block */
static int pop_or_sleep(const struct shm_ring_ref *r, struct shm_bell *b, struct proto_rec *out)
{
    for (;;) {
        int rc = shm_ring_pop(r, out);

        if (rc != -EAGAIN)
            return rc;
        shm_bell_prepare_sleep(b);
        rc = shm_ring_pop(r, out);
        if (rc != -EAGAIN) {
            shm_bell_woke(b, b->efd);
            return rc;
        }
        rc = shm_bell_wait(b, b->efd, 2000);
        shm_bell_woke(b, b->efd);
        if (rc < 0)
            return rc;
    }
}

static void run_producer(struct bench *bn)
{
    struct proto_rec rec;

    memset(&rec, 0, sizeof(rec));
    rec.version = PROTO_RING_VERSION;
    rec.type = MSG_SPOOL_MESSAGE_ANNOUNCE;
    atomic_store(&bn->ctl->t_start, clock_mono_ns());
    for (uint64_t i = 0; i < bn->records;) {
        uint64_t end = i + BENCH_BATCH < bn->records ? i + BENCH_BATCH : bn->records;

        while (i < end) {
            rec.body.count.count = i;
            if (shm_ring_push(&bn->data, &rec) != 0)
                break;
            i++;
        }
        shm_bell_ring(&bn->ctl->bell_cons, bn->ctl->bell_cons.efd);
        if (i < end)
            sched_yield(); /* full: let the consumer run (2-core hosts) */
    }
    _exit(0);
}

static void run_consumer(struct bench *bn)
{
    struct proto_rec rec;

    for (uint64_t i = 0; i < bn->records; i++) {
        int rc = pop_or_sleep(&bn->data, &bn->ctl->bell_cons, &rec);

        if (rc != 0 || rec.body.count.count != i) {
            fprintf(stderr, "ringmail-ring-bench: consumer: record %lu: rc %d count %lu\n", (unsigned long)i, rc,
                    (unsigned long)rec.body.count.count);
            atomic_store(&bn->ctl->failed, 1);
            _exit(1);
        }
    }
    atomic_store(&bn->ctl->t_end, clock_mono_ns());
    atomic_store(&bn->ctl->received, bn->records);
    _exit(0);
}

static void run_ponger(struct bench *bn)
{
    struct proto_rec rec;

    for (uint64_t i = 0; i < bn->pings; i++) {
        int rc = pop_or_sleep(&bn->ping, &bn->ctl->bell_ponger, &rec);
        uint64_t now = clock_mono_ns();

        if (rc != 0) {
            fprintf(stderr, "ringmail-ring-bench: ponger: pop gave %d\n", rc);
            _exit(1);
        }
        rec.type = MSG_ROLE_PONG;
        rec.body.ping.reserved[0] = now;
        if (shm_ring_push(&bn->pong, &rec) != 0)
            _exit(1);
        shm_bell_ring(&bn->ctl->bell_pinger, bn->ctl->bell_pinger.efd);
    }
    _exit(0);
}

static pid_t spawn(void (*fn)(struct bench *), struct bench *bn)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0)
        fn(bn);
    if (pid < 0)
        fprintf(stderr, "ringmail-ring-bench: fork: %s\n", strerror(errno));
    return pid;
}

static int reap(pid_t pid)
{
    int st;

    if (pid <= 0)
        return 1;
    if (waitpid(pid, &st, 0) != pid)
        return 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, uint64_t n, double p)
{
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);

    return (double)v[i] / 1000.0;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* bench_latency - fills wake[] and rtt[] (ns); 0 or 1 */
static int bench_latency(struct bench *bn, uint64_t *wake, uint64_t *rtt, uint64_t *asleep)
{
    struct bench_ctl *ctl = bn->ctl;
    struct proto_rec rec, got;
    pid_t ponger = spawn(run_ponger, bn);
    int fails = 0;

    if (ponger < 0)
        return 1;
    memset(&rec, 0, sizeof(rec));
    rec.version = PROTO_RING_VERSION;
    rec.type = MSG_ROLE_PING;
    *asleep = 0;
    for (uint64_t i = 0; i < bn->pings && !fails; i++) {
        uint64_t spin_deadline = clock_mono_ns() + CLOCK_SEC(2);
        uint64_t rings_before, t0;
        int rc;

        while ((atomic_load(&ctl->bell_ponger.sleeping) & 1) == 0 && clock_mono_ns() < spin_deadline)
            sched_yield();
        sleep_us(100);
        rings_before = atomic_load(&ctl->bell_ponger.rings);
        t0 = clock_mono_ns();
        rec.body.ping.token = i;
        rec.body.ping.sent_ns = t0;
        if (shm_ring_push(&bn->ping, &rec) != 0) {
            fails = 1;
            break;
        }
        shm_bell_ring(&ctl->bell_ponger, ctl->bell_ponger.efd);
        if (atomic_load(&ctl->bell_ponger.rings) != rings_before)
            (*asleep)++;
        rc = pop_or_sleep(&bn->pong, &ctl->bell_pinger, &got);
        rtt[i] = clock_mono_ns() - t0;
        if (rc != 0 || got.body.ping.token != i || got.body.ping.sent_ns != t0) {
            fprintf(stderr, "ringmail-ring-bench: pinger: pong %lu: rc %d token %lu\n", (unsigned long)i, rc,
                    (unsigned long)got.body.ping.token);
            fails = 1;
            break;
        }
        wake[i] = got.body.ping.reserved[0] - t0;
    }
    if (fails)
        kill(ponger, SIGKILL);
    fails |= reap(ponger);
    return fails;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"records", required_argument, NULL, 'r'}, {"pings", required_argument, NULL, 'p'},
        {"capacity", required_argument, NULL, 'c'}, {"hugepages", no_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench bn = {.records = 100000000, .pings = 10000, .capacity = 4096};
    int huge = 0, json = 0, opt, rc;
    uint64_t *wake, *rtt, asleep;
    pid_t cons, prod;
    double secs, rate;

    log_init("ring-bench", -1);
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        unsigned long long v = 0;

        if (opt == 'r' || opt == 'p' || opt == 'c') {
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v == 0 || v > (1ull << 40)) {
                fprintf(stderr, "ringmail-ring-bench: bad number: %s\n", optarg);
                return 1;
            }
        }
        switch (opt) {
        case 'r': bn.records = v; break;
        case 'p': bn.pings = v; break;
        case 'c': bn.capacity = v > SHM_RING_MAX_CAPACITY ? 0 : (uint32_t)v; break;
        case 'H': huge = 1; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }
    rc = bench_map(&bn, huge);
    if (rc != 0)
        return rc;

    cons = spawn(run_consumer, &bn);
    prod = cons < 0 ? -1 : spawn(run_producer, &bn);
    rc = reap(prod);
    rc |= reap(cons);
    if (rc != 0 || atomic_load(&bn.ctl->received) != bn.records) {
        fprintf(stderr, "ringmail-ring-bench: throughput run failed\n");
        return 1;
    }
    secs = (double)(atomic_load(&bn.ctl->t_end) - atomic_load(&bn.ctl->t_start)) / 1e9;
    rate = (double)bn.records / secs;

    wake = xcalloc(bn.pings, sizeof(*wake));
    rtt = xcalloc(bn.pings, sizeof(*rtt));
    if (bench_latency(&bn, wake, rtt, &asleep) != 0) {
        fprintf(stderr, "ringmail-ring-bench: latency run failed\n");
        return 1;
    }
    qsort(wake, bn.pings, sizeof(*wake), cmp_u64);
    qsort(rtt, bn.pings, sizeof(*rtt), cmp_u64);
    if (json)
        printf("{\"pages\":\"%s\",\"capacity\":%u,\"records\":%lu,\"seconds\":%.3f,\"records_per_s\":%.0f,"
               "\"consumer_wakeups\":%lu,\"pings\":%lu,\"pings_found_ponger_asleep\":%lu,"
               "\"wake_p50_us\":%.1f,\"wake_p99_us\":%.1f,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f}\n",
               huge ? "hugetlb" : "small", bn.capacity, (unsigned long)bn.records, secs, rate,
               (unsigned long)atomic_load(&bn.ctl->bell_cons.wakeups), (unsigned long)bn.pings, (unsigned long)asleep,
               pct_us(wake, bn.pings, 0.50), pct_us(wake, bn.pings, 0.99), pct_us(rtt, bn.pings, 0.50),
               pct_us(rtt, bn.pings, 0.99));
    else
        printf("pages %s, capacity %u: %lu records in %.3f s = %.2f M records/s (consumer woken %lu times); "
               "%lu pings (%lu found the ponger asleep): wake-up p50 %.1f us p99 %.1f us, round trip p50 %.1f us "
               "p99 %.1f us\n",
               huge ? "hugetlb" : "small", bn.capacity, (unsigned long)bn.records, secs, rate / 1e6,
               (unsigned long)atomic_load(&bn.ctl->bell_cons.wakeups), (unsigned long)bn.pings, (unsigned long)asleep,
               pct_us(wake, bn.pings, 0.50), pct_us(wake, bn.pings, 0.99), pct_us(rtt, bn.pings, 0.50),
               pct_us(rtt, bn.pings, 0.99));
    free(wake);
    free(rtt);
    munmap(bn.base, bn.size);
    return 0;
}
