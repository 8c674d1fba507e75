/*
 * proto_hist_test - the latency histograms' bucketing: every bound and its neighbours, both scales,
 * the cumulative copy a reader takes, and what a hostile writer's values become (saturated, never a
 * histogram whose buckets go down).
 */
#include <stdio.h>
#include <string.h>

#include "common/proto_hist.h"
#include "tests/lib/check.h"

static void test_bounds_ascending(void)
{
    for (unsigned sc = 0; sc < PROTO_HIST_SCALE__MAX; sc++) {
        const uint64_t *b = proto_hist_bounds((enum proto_hist_scale)sc);
        for (unsigned i = 1; i < PROTO_HIST_BOUNDS; i++)
            CHECK(b[i] > b[i - 1], "scale %u: bound %u (%llu) not above bound %u", sc, i, (unsigned long long)b[i], i - 1);
    }
    CHECK(proto_hist_bounds(PROTO_HIST_FAST)[0] == 500, "fast scale starts at 0.5 ms");
    CHECK(proto_hist_bounds(PROTO_HIST_SLOW)[PROTO_HIST_BOUNDS - 1] == 86400000000ull, "slow scale ends at a day");
}

static void test_bucket_edges(void)
{
    static const struct {
        enum proto_hist_scale sc;
        uint64_t us;
        unsigned want;
    } cases[] = {
        {PROTO_HIST_FAST, 0, 0},
        {PROTO_HIST_FAST, 1, 0},
        {PROTO_HIST_FAST, 500, 0},           /* le is inclusive */
        {PROTO_HIST_FAST, 501, 1},
        {PROTO_HIST_FAST, 1000, 1},
        {PROTO_HIST_FAST, 1001, 2},
        {PROTO_HIST_FAST, 999999, 10},
        {PROTO_HIST_FAST, 1000000, 10},
        {PROTO_HIST_FAST, 60000000, 15},
        {PROTO_HIST_FAST, 60000001, PROTO_HIST_BOUNDS}, /* +Inf */
        {PROTO_HIST_FAST, UINT64_MAX, PROTO_HIST_BOUNDS},
        {PROTO_HIST_SLOW, 0, 0},
        {PROTO_HIST_SLOW, 100000, 0},
        {PROTO_HIST_SLOW, 100001, 1},
        {PROTO_HIST_SLOW, 3600000000ull, 12},
        {PROTO_HIST_SLOW, 86400000000ull, 15},
        {PROTO_HIST_SLOW, 86400000001ull, PROTO_HIST_BOUNDS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned got = proto_hist_bucket(cases[i].sc, cases[i].us);
        CHECK(got == cases[i].want, "case %zu: %llu us -> bucket %u, want %u", i, (unsigned long long)cases[i].us, got,
              cases[i].want);
    }
    /* every bound of both scales, and one past it */
    for (unsigned sc = 0; sc < PROTO_HIST_SCALE__MAX; sc++) {
        const uint64_t *b = proto_hist_bounds((enum proto_hist_scale)sc);
        for (unsigned i = 0; i < PROTO_HIST_BOUNDS; i++) {
            CHECK(proto_hist_bucket((enum proto_hist_scale)sc, b[i]) == i, "scale %u bound %u", sc, i);
            CHECK(proto_hist_bucket((enum proto_hist_scale)sc, b[i] + 1) == i + 1, "scale %u past bound %u", sc, i);
        }
    }
}

static void test_record_read(void)
{
    struct proto_hist h;
    memset(&h, 0, sizeof(h));
    uint64_t obs[] = {0, 400, 700, 700, 3000000, 90000000};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        proto_hist_record(&h, PROTO_HIST_FAST, obs[i]);
    struct proto_hist_snap s;
    proto_hist_read(&h, &s);
    CHECK(s.le[0] == 2, "le 0.5 ms: %llu", (unsigned long long)s.le[0]);
    CHECK(s.le[1] == 4, "le 1 ms: %llu", (unsigned long long)s.le[1]);
    CHECK(s.le[11] == 4 && s.le[12] == 5, "le 2.5 s / 5 s: %llu %llu", (unsigned long long)s.le[11],
          (unsigned long long)s.le[12]);
    CHECK(s.le[PROTO_HIST_BOUNDS - 1] == 5 && s.le[PROTO_HIST_BOUNDS] == 6, "le 60 s / +Inf");
    CHECK(s.sum_us == 0 + 400 + 700 + 700 + 3000000 + 90000000, "sum");
}

static void test_hostile_values(void)
{
    /* what a hostile role may leave in its slot: the copy still never goes down, and saturates */
    uint64_t b[PROTO_HIST_BUCKETS];
    for (unsigned i = 0; i < PROTO_HIST_BUCKETS; i++)
        b[i] = i % 2 ? UINT64_MAX - 3 : 7;
    struct proto_hist_snap s;
    proto_hist_accumulate(b, PROTO_HIST_BUCKETS, UINT64_MAX, &s);
    for (unsigned i = 1; i < PROTO_HIST_BUCKETS; i++)
        CHECK(s.le[i] >= s.le[i - 1], "cumulative at %u", i);
    CHECK(s.le[PROTO_HIST_BOUNDS] == UINT64_MAX, "saturated count");
    /* fewer buckets than the scale has (a short array): the rest repeat the running total */
    uint64_t two[2] = {3, 4};
    proto_hist_accumulate(two, 2, 10, &s);
    CHECK(s.le[0] == 3 && s.le[1] == 7 && s.le[PROTO_HIST_BOUNDS] == 7, "short array");
    struct proto_hist_snap t = s;
    proto_hist_merge(&t, &s);
    CHECK(t.le[1] == 14 && t.sum_us == 20, "merge");
}

int main(void)
{
    test_bounds_ascending();
    test_bucket_edges();
    test_record_read();
    test_hostile_values();
    CHECK_EXIT();
}
