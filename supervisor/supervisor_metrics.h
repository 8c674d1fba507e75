/*
 * supervisor_metrics - GET /metrics (Prometheus text 0.0.4) and GET /metrics.json, from one collection
 *
 * supervisor_metrics_collect() reads everything once into a struct sup_metrics: the role table's
 * counters and latency histograms (copied, bounded by proto_hist_read), each role's RSS from
 * /proc/PID/statm for the pids the supervisor forked (its private copy), memory headroom, the spool's
 * free space, and the scheduler's queues and TSA pages (decoded by their strict codecs). Paths are
 * summed per ready queue (service), provider, source and site; each of those label sets is bounded
 * ([metrics] max_sites, max_providers, max_sources: the largest by volume keep their own label, the
 * rest are summed under "other"). supervisor_metrics_text() and supervisor_metrics_json() render the
 * same collection, so the two always agree. Metric names, types and labels: docs/metrics.md.
 */
#ifndef RINGMAIL_SUPERVISOR_METRICS_H
#define RINGMAIL_SUPERVISOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "common/proto_hist.h"

struct supervisor;

#define SUP_METRICS_LABELS 3

enum sup_metric_type {
    SUP_METRIC_COUNTER = 0,
    SUP_METRIC_GAUGE = 1,
    SUP_METRIC_HISTOGRAM = 2,
};

struct sup_metric_sample {
    const char *label_names[SUP_METRICS_LABELS];
    char *label_values[SUP_METRICS_LABELS]; /* heap */
    unsigned n_labels;
    uint64_t value;              /* counters and gauges */
    struct proto_hist_snap hist; /* histograms (values in microseconds) */
};

struct sup_metric_family {
    const char *name, *help;
    char *owned[2]; /* name and help when made at run time (freed with the family) */
    enum sup_metric_type type;
    enum proto_hist_scale scale; /* histograms */
    struct sup_metric_sample *v;
    size_t n, cap;
};

struct sup_metrics {
    struct sup_metric_family *f;
    size_t n, cap;
};

/* supervisor_metrics_collect - everything /metrics shows, read once (any thread) */
void supervisor_metrics_collect(struct supervisor *s, struct sup_metrics *m);
void supervisor_metrics_fini(struct sup_metrics *m);
/* supervisor_metrics_text - Prometheus text exposition format 0.0.4 (heap) */
char *supervisor_metrics_text(const struct sup_metrics *m);
/* supervisor_metrics_json - the /metrics.json document (heap; schema in docs/admin-api.md) */
char *supervisor_metrics_json(const struct sup_metrics *m);

/* supervisor_metrics_family - a new family (name and help borrowed); valid until the next family is added */
struct sup_metric_family *supervisor_metrics_family(struct sup_metrics *m, const char *name, enum sup_metric_type type,
                                                    const char *help);
/* supervisor_metrics_sample - a new sample with n label name/value pairs (values copied) */
struct sup_metric_sample *supervisor_metrics_sample(struct sup_metric_family *f, unsigned n, const char *const *names,
                                                    const char *const *values);
/* supervisor_metrics_escape - a label value as the text format wants it: \\, \" and \n escaped */
void supervisor_metrics_escape(struct buf *out, const char *value);

/* one name's volume, for supervisor_metrics_top() */
struct sup_metrics_rank {
    const char *name;
    uint64_t volume;
};
/* supervisor_metrics_rank_sort - largest volume first, ties by name: the first `max` keep their own label */
void supervisor_metrics_rank_sort(struct sup_metrics_rank *v, size_t n);
/* supervisor_metrics_label - name's label in v sorted so: name itself when among the first max, else "other" */
const char *supervisor_metrics_label(const struct sup_metrics_rank *v, size_t n, size_t max, const char *name);

#endif
