/*
 * supp_bench - the cost of the suppression check on the RCPT path (ingress: supp_view_maybe(): lower-case the
 * address, SipHash it once or twice, binary search of the snapshot), and of loading a snapshot
 *
 *   ringmail-supp-bench [ENTRIES]   (default 1000000)
 *
 * Builds ENTRIES random addresses into a snapshot file in /tmp, loads it through a supp_view as the ingress
 * does, then times 1,000,000 lookups (half of them hits) with a tenant (two hashes, the worst case) and
 * without. Prints ns per lookup. Not a test: run by hand, nothing else running (docs/benchmarks.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "common/supp.h"

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    const size_t lookups = 1000000;
    uint8_t key[16];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)(rand() & 0xff);
    struct supp_hasher *h = supp_hasher_new(key);
    uint64_t *v = malloc((n ? n : 1) * sizeof(*v));
    char addr[64];
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
        snprintf(addr, sizeof(addr), "user%zu@domain%zu.example", i, i % 5000);
        v[i] = supp_hasher_hash(h, "", addr);
    }
    uint64_t t1 = now_ns();
    qsort(v, n, sizeof(*v), cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || v[m - 1] != v[i])
            v[m++] = v[i];
    struct buf b = {0};
    supp_snap_encode(key, v, m, &b);
    uint64_t t2 = now_ns();
    char path[] = "/tmp/supp_bench.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len) {
        perror("snapshot");
        return 1;
    }
    close(fd);
    struct supp_view view;
    supp_view_init(&view, path);
    uint64_t t3 = now_ns();
    supp_view_refresh(&view, 1);
    uint64_t t4 = now_ns();
    if (!view.loaded) {
        fprintf(stderr, "snapshot not loaded\n");
        return 1;
    }
    size_t hits = 0;
    uint64_t t5 = now_ns();
    for (size_t i = 0; i < lookups; i++) {
        snprintf(addr, sizeof(addr), "User%zu@Domain%zu.example", (i * 7919) % (2 * (n ? n : 1)), ((i * 7919) % (2 * (n ? n : 1))) % 5000);
        hits += supp_view_maybe(&view, NULL, addr);
    }
    uint64_t t6 = now_ns();
    for (size_t i = 0; i < lookups; i++) {
        snprintf(addr, sizeof(addr), "User%zu@Domain%zu.example", (i * 7919) % (2 * (n ? n : 1)), ((i * 7919) % (2 * (n ? n : 1))) % 5000);
        hits += supp_view_maybe(&view, "tenant-a", addr);
    }
    uint64_t t7 = now_ns();
    /* the address formatting alone, to subtract */
    volatile size_t sink = 0;
    for (size_t i = 0; i < lookups; i++) {
        sink += (size_t)snprintf(addr, sizeof(addr), "User%zu@Domain%zu.example", (i * 7919) % (2 * (n ? n : 1)), ((i * 7919) % (2 * (n ? n : 1))) % 5000);
    }
    uint64_t t8 = now_ns();
    double fmt = (double)(t8 - t7) / (double)lookups;
    printf("entries %zu (snapshot %zu bytes)\n", m, b.len);
    printf("hash %zu addresses: %.1f ms; sort and encode: %.1f ms; ingress load (read, SHA-256, order check): %.1f ms\n",
           n, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)(t4 - t3) / 1e6);
    printf("RCPT lookup, global only: %.0f ns; with a tenant (two hashes): %.0f ns (%zu hits of %zu)\n",
           (double)(t6 - t5) / (double)lookups - fmt, (double)(t7 - t6) / (double)lookups - fmt, hits, 2 * lookups);
    supp_view_fini(&view);
    supp_hasher_free(h);
    unlink(path);
    buf_fini(&b);
    free(v);
    return 0;
}
