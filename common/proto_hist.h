/*
 * proto_hist - fixed-bucket latency histograms, kept lock-free by one writer and read by anyone
 *
 * Two scales with PROTO_HIST_BOUNDS upper bounds each (Prometheus `le`, in microseconds) plus +Inf:
 *   FAST  0.5 ms .. 60 s   time-to-250 in the ingress, fsync latency in the spool
 *   SLOW  100 ms .. 1 day  injection-to-delivery in the scheduler
 * proto_hist_bucket() maps a value to its bucket (the first bound >= value, else +Inf). In shared
 * memory (struct proto_hist, in each role table slot) the one writer is the instance itself: relaxed
 * adds of the bucket and of the sum. Buckets are stored per bucket, not cumulative, and there is no
 * stored count, so a reader's copy is always a valid histogram: proto_hist_read() accumulates them
 * (saturating, whatever a hostile role wrote) and the count is the +Inf bucket.
 */
#ifndef RINGMAIL_PROTO_HIST_H
#define RINGMAIL_PROTO_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define PROTO_HIST_BOUNDS 16
#define PROTO_HIST_BUCKETS (PROTO_HIST_BOUNDS + 1) /* the last one is +Inf */

enum proto_hist_scale {
    PROTO_HIST_FAST = 0,
    PROTO_HIST_SLOW = 1,
    PROTO_HIST_SCALE__MAX = 2,
};

/* one histogram in shared memory; one writer */
struct proto_hist {
    _Atomic uint64_t bucket[PROTO_HIST_BUCKETS]; /* not cumulative */
    _Atomic uint64_t sum_us;
};

/* a reader's copy: cumulative, as Prometheus wants it */
struct proto_hist_snap {
    uint64_t le[PROTO_HIST_BUCKETS]; /* le[i]: observations <= bound i; le[BOUNDS]: all (+Inf) */
    uint64_t sum_us;
};

/* proto_hist_bounds - the PROTO_HIST_BOUNDS upper bounds of a scale, in microseconds, ascending */
const uint64_t *proto_hist_bounds(enum proto_hist_scale scale);
/* proto_hist_bucket - the bucket of a value in microseconds: 0..PROTO_HIST_BOUNDS (+Inf) */
unsigned proto_hist_bucket(enum proto_hist_scale scale, uint64_t us);
/* proto_hist_record - one observation (the slot's own writer only) */
void proto_hist_record(struct proto_hist *h, enum proto_hist_scale scale, uint64_t us);
/* proto_hist_read - a cumulative copy of a shared histogram */
void proto_hist_read(const struct proto_hist *h, struct proto_hist_snap *out);
/* proto_hist_accumulate - a cumulative copy of plain per-bucket counts (n of them, at most BUCKETS) */
void proto_hist_accumulate(const uint64_t *buckets, unsigned n, uint64_t sum_us, struct proto_hist_snap *out);
/* proto_hist_merge - add b into a (saturating) */
void proto_hist_merge(struct proto_hist_snap *a, const struct proto_hist_snap *b);

#endif
