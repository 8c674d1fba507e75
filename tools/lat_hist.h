/*
 * lat_hist - the latency histogram of ringmail-gen and ringmail-sink
 *
 * Log-linear: exact below 16 us, then 16 buckets per power of two, so a percentile is reported as
 * its bucket's upper bound (at most 1/16 = 6 % high, never above the true maximum, which is kept
 * exactly). Fixed size whatever the run length; histograms of several workers add up.
 */
#ifndef RINGMAIL_LAT_HIST_H
#define RINGMAIL_LAT_HIST_H

#include <jansson.h>
#include <stdint.h>

#define LAT_HIST_BUCKETS 640 /* covers any uint64 microseconds */

struct lat_hist {
    uint64_t buckets[LAT_HIST_BUCKETS];
    uint64_t count;
    uint64_t max;
};

void lat_hist_add(struct lat_hist *h, uint64_t us);
/* lat_hist_merge - sum histogram a into t */
void lat_hist_merge(struct lat_hist *t, const struct lat_hist *a);
/* lat_hist_percentile - upper bound of the bucket holding percentile p (0..100), capped at the max */
uint64_t lat_hist_percentile(const struct lat_hist *h, double p);
/* lat_hist_json - {"count": N, "p50": us, "p90": us, "p99": us, "max": us} for the tools' --json summaries */
json_t *lat_hist_json(const struct lat_hist *h);

#endif
