/*
 * lat_hist - the latency histogram shared by ringmail-gen and ringmail-sink (see lat_hist.h)
 */
#include "tools/lat_hist.h"

static unsigned bucket_of(uint64_t v)
{
    unsigned e, idx;

    if (v < 16)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    idx = 16u + (e - 4u) * 16u + (unsigned)((v >> (e - 4u)) & 15u);
    return idx < LAT_HIST_BUCKETS ? idx : LAT_HIST_BUCKETS - 1;
}

static uint64_t bucket_upper(unsigned idx)
{
    unsigned e, sub;

    if (idx < 16)
        return idx;
    e = (idx - 16u) / 16u + 4u;
    sub = (idx - 16u) % 16u;
    return ((uint64_t)(16u + sub) << (e - 4u)) + ((uint64_t)1 << (e - 4u)) - 1u;
}

void lat_hist_add(struct lat_hist *h, uint64_t us)
{
    h->buckets[bucket_of(us)]++;
    h->count++;
    if (us > h->max)
        h->max = us;
}

void lat_hist_merge(struct lat_hist *t, const struct lat_hist *a)
{
    for (unsigned i = 0; i < LAT_HIST_BUCKETS; i++)
        t->buckets[i] += a->buckets[i];
    t->count += a->count;
    if (a->max > t->max)
        t->max = a->max;
}

uint64_t lat_hist_percentile(const struct lat_hist *h, double p)
{
    uint64_t rank, seen = 0;

    if (h->count == 0)
        return 0;
    rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < LAT_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

json_t *lat_hist_json(const struct lat_hist *h)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)h->count, "p50",
                     (json_int_t)lat_hist_percentile(h, 50), "p90", (json_int_t)lat_hist_percentile(h, 90), "p99",
                     (json_int_t)lat_hist_percentile(h, 99), "max", (json_int_t)h->max);
}
