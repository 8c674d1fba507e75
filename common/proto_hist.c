/*
 * proto_hist - fixed-bucket latency histograms (contract in proto_hist.h)
 */
#include "common/proto_hist.h"

#include <stddef.h>

static const uint64_t bounds[PROTO_HIST_SCALE__MAX][PROTO_HIST_BOUNDS] = {
    [PROTO_HIST_FAST] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
                         5000000, 10000000, 30000000, 60000000},
    [PROTO_HIST_SLOW] = {100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
                         300000000, 900000000, 1800000000, 3600000000, 14400000000, 43200000000, 86400000000},
};

const uint64_t *proto_hist_bounds(enum proto_hist_scale scale)
{
    return bounds[(unsigned)scale < PROTO_HIST_SCALE__MAX ? scale : PROTO_HIST_FAST];
}

unsigned proto_hist_bucket(enum proto_hist_scale scale, uint64_t us)
{
    const uint64_t *b = proto_hist_bounds(scale);
    unsigned lo = 0, hi = PROTO_HIST_BOUNDS; /* the answer is in [lo, hi] */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (us <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void proto_hist_record(struct proto_hist *h, enum proto_hist_scale scale, uint64_t us)
{
    atomic_fetch_add_explicit(&h->bucket[proto_hist_bucket(scale, us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void proto_hist_accumulate(const uint64_t *buckets, unsigned n, uint64_t sum_us, struct proto_hist_snap *out)
{
    uint64_t run = 0;
    for (unsigned i = 0; i < PROTO_HIST_BUCKETS; i++) {
        if (i < n)
            run = sat_add(run, buckets[i]);
        out->le[i] = run;
    }
    out->sum_us = sum_us;
}

void proto_hist_read(const struct proto_hist *h, struct proto_hist_snap *out)
{
    uint64_t v[PROTO_HIST_BUCKETS];
    for (unsigned i = 0; i < PROTO_HIST_BUCKETS; i++)
        v[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    proto_hist_accumulate(v, PROTO_HIST_BUCKETS, atomic_load_explicit(&h->sum_us, memory_order_relaxed), out);
}

void proto_hist_merge(struct proto_hist_snap *a, const struct proto_hist_snap *b)
{
    for (unsigned i = 0; i < PROTO_HIST_BUCKETS; i++)
        a->le[i] = sat_add(a->le[i], b->le[i]);
    a->sum_us = sat_add(a->sum_us, b->sum_us);
}
