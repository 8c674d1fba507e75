/*
 * sched_status - what the scheduler holds, published for operators (ringctl queues, /api/v1/queues)
 *
 * Once a second the scheduler writes one JSON document into the segment's status page (a sequence
 * lock: readers in other processes always get a whole document): totals, the largest scheduled
 * queues (at most PROTO_STATUS_QUEUES_MAX, by message count) and every egress path with its ready queue,
 * messages in flight, open connections and outcome counters. Bounded: a document that would not fit
 * the page is cut to fewer queues and paths. The document is common/proto_status.h's queues document
 * (schema: docs/admin-api.md), written by its encoder.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/scheduler.h"

struct top {
    const struct sched_queue **v;
    size_t n, cap;
};

/* keep the `cap` largest queues in a min-heap on count */
static void top_push(void *arg, const struct sched_queue *q)
{
    struct top *t = arg;
    size_t i;
    if (t->n < t->cap) {
        i = t->n++;
    } else if (q->count > t->v[0]->count) {
        /* replace the smallest, sift down */
        size_t k = 0;
        for (;;) {
            size_t l = 2 * k + 1, r = l + 1, m = k;
            uint32_t cm = q->count;
            if (l < t->n && t->v[l]->count < cm)
                m = l, cm = t->v[l]->count;
            if (r < t->n && t->v[r]->count < cm)
                m = r;
            if (m == k)
                break;
            t->v[k] = t->v[m];
            k = m;
        }
        t->v[k] = q;
        return;
    } else {
        return;
    }
    while (i > 0 && t->v[(i - 1) / 2]->count > q->count) {
        t->v[i] = t->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->v[i] = q;
}

static int by_count_desc(const void *a, const void *b)
{
    const struct sched_queue *x = *(const struct sched_queue *const *)a, *y = *(const struct sched_queue *const *)b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : strcmp(x->n.name, y->n.name);
}

/* ---- the rest: paths not listed and paths freed, per (source, provider) ---- */

#define RETIRED_MAX 256 /* (source, provider) pairs kept apart; more fold into the first */

/* add_counters - a path's counters (not its gauges) into a sum */
static void add_counters(struct proto_status_path *sum, const struct proto_status_path *p)
{
    sum->delivered += p->delivered;
    sum->transient += p->transient;
    sum->bounced += p->bounced;
    sum->throttle_waits += p->throttle_waits;
    sum->limit_waits += p->limit_waits;
    sum->connection_attempts += p->connection_attempts;
    sum->connection_failures += p->connection_failures;
    for (size_t b = 0; b < PROTO_HIST_BUCKETS; b++)
        sum->delivery_latency[b] += p->delivery_latency[b];
    sum->delivery_latency_sum_ms += p->delivery_latency_sum_ms;
}

/* add_gauges - what a live path holds now */
static void add_gauges(struct proto_status_path *sum, const struct proto_status_path *p)
{
    sum->ready += p->ready;
    sum->in_flight += p->in_flight;
    sum->connections += p->connections;
    sum->connection_limit += p->connection_limit;
    sum->suspended_ms = sum->suspended_ms > p->suspended_ms ? sum->suspended_ms : p->suspended_ms;
    sum->throttled_ms = sum->throttled_ms > p->throttled_ms ? sum->throttled_ms : p->throttled_ms;
}

static struct proto_status_path row_of(struct scheduler *sc, const struct sched_path *p)
{
    const struct sched_core *core = sc->core;
    struct proto_status_path r = {
        .source = sched_path_source_name(core, p),
        .site = p->site->n.name,
        .ready = p->ready.count,
        .in_flight = p->in_flight,
        .connections = p->connections,
        .connection_limit = p->opt.connection_limit,
        .delivered = p->delivered,
        .transient = p->transient,
        .bounced = p->bounced,
        .suspended_ms = p->suspended_until_ms > core->now ? p->suspended_until_ms - core->now : 0,
        .throttled_ms = p->throttled_until_ms > core->now ? p->throttled_until_ms - core->now : 0,
        .throttle_waits = p->throttle_waits,
        .limit_waits = p->limit_waits,
        .consecutive_failures = p->consecutive_failures,
        .provider = sched_shaping_provider_of(sc, sched_path_source_name(core, p), p->site->n.name),
        .connection_attempts = p->conn_attempts,
        .connection_failures = p->conn_failures,
        .delivery_latency_sum_ms = p->dlv_latency_sum_ms,
    };
    memcpy(r.delivery_latency, p->dlv_latency, sizeof(p->dlv_latency));
    return r;
}

/* rest_slot - the entry of (source, provider) in v (n of them, room for cap), added when new; the first
 * entry when v is full */
static struct proto_status_path *rest_slot(struct proto_status_path *v, size_t *n, size_t cap, const char *source,
                                           const char *provider)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].source, source) == 0 && strcmp(v[i].provider, provider) == 0)
            return &v[i];
    if (*n == cap)
        return &v[0];
    v[*n] = (struct proto_status_path){.source = source, .site = "other", .provider = provider};
    return &v[(*n)++];
}

void sched_status_retire(struct scheduler *sc, const struct sched_path *p)
{
    struct proto_status_path r = row_of(sc, p);
    if (!sc->retired)
        sc->retired = xcalloc(RETIRED_MAX, sizeof(*sc->retired));
    size_t before = sc->n_retired;
    struct proto_status_path *x = rest_slot(sc->retired, &sc->n_retired, RETIRED_MAX, r.source, r.provider);
    if (sc->n_retired > before) { /* a new pair: its names outlive the path */
        x->source = xstrdup(r.source);
        x->provider = xstrdup(r.provider);
    }
    add_counters(x, &r);
}

void sched_status_fini(struct scheduler *sc)
{
    for (size_t i = 0; i < sc->n_retired; i++) {
        free((char *)sc->retired[i].source);
        free((char *)sc->retired[i].provider);
    }
    free(sc->retired);
    sc->retired = NULL;
    sc->n_retired = 0;
}

struct paths_ctx {
    struct scheduler *sc;
    struct proto_status_path *v;
    size_t n, limit;
    struct proto_status_path *rest;
    size_t n_rest, cap_rest;
};

static void path_push(void *arg, const struct sched_path *p)
{
    struct paths_ctx *c = arg;
    struct proto_status_path r = row_of(c->sc, p);
    if (c->n < c->limit) {
        c->v[c->n++] = r;
        return;
    }
    struct proto_status_path *x = rest_slot(c->rest, &c->n_rest, c->cap_rest, r.source, r.provider);
    add_counters(x, &r);
    add_gauges(x, &r);
}

static char *build(struct scheduler *sc, size_t max_queues, size_t max_paths)
{
    struct sched_stats st;
    sched_core_stats(sc->core, &st);
    struct proto_status_queues doc = {
        .totals = {st.messages, st.scheduled, st.resolving, st.ready, st.in_flight, st.queues, st.domains,
                   st.sites, st.paths},
        .since_start = {.added = st.added,
                        .delivered = st.delivered,
                        .bounced = st.bounced,
                        .expired = st.expired,
                        .transient = st.transient,
                        .requeued = st.requeued,
                        .ready_full = st.ready_full},
        .age_ms = -1,
    };

    struct top t = {.cap = max_queues};
    t.v = xcalloc(max_queues ? max_queues : 1, sizeof(*t.v));
    sched_queue_foreach(sc->core, top_push, &t);
    qsort(t.v, t.n, sizeof(*t.v), by_count_desc);
    doc.queues = xcalloc(t.n ? t.n : 1, sizeof(*doc.queues));
    for (size_t i = 0; i < t.n; i++)
        doc.queues[i] = (struct proto_status_queue){
            .name = t.v[i]->n.name,
            .domain = t.v[i]->domain ? t.v[i]->domain->n.name : "",
            .messages = t.v[i]->count,
            .scheduled = t.v[i]->scheduled,
            .retry_interval_s = t.v[i]->cfg.retry_interval_s,
            .max_age_s = t.v[i]->cfg.max_age_s,
        };
    doc.n_queues = t.n;
    free(t.v);

    size_t cap_rest = max_paths ? max_paths : 1;
    struct paths_ctx pc = {sc, xcalloc(max_paths ? max_paths : 1, sizeof(*pc.v)), 0, max_paths,
                           xcalloc(cap_rest, sizeof(*pc.rest)), 0, cap_rest};
    for (size_t i = 0; i < sc->n_retired; i++)
        add_counters(rest_slot(pc.rest, &pc.n_rest, pc.cap_rest, sc->retired[i].source, sc->retired[i].provider),
                     &sc->retired[i]);
    sched_path_foreach(sc->core, path_push, &pc);
    doc.paths = pc.v;
    doc.n_paths = pc.n;
    doc.rest = pc.rest;
    doc.n_rest = pc.n_rest;

    char *s = proto_status_queues_encode(&doc, false);
    free(doc.queues);
    free(doc.paths);
    free(doc.rest);
    return s;
}

void sched_status_publish(struct scheduler *sc)
{
    size_t q = PROTO_STATUS_QUEUES_MAX, p = PROTO_STATUS_PATHS_MAX;
    for (int tries = 0; tries < 6; tries++) {
        char *s = build(sc, q, p);
        if (!s)
            return;
        int rc = shm_segment_status_publish(&sc->rt->seg, s, strlen(s));
        free(s);
        if (rc == 0)
            return;
        q /= 2;
        p /= 2;
    }
    log_warn("scheduler status does not fit the status page even when cut down");
}
