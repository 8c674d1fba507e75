/*
 * sched_status - what the scheduler holds, published for operators (ringctl queues, /api/v1/queues)
 *
 * Once a second the scheduler writes one JSON document into the segment's status page (a sequence
 * lock: readers in other processes always get a whole document): totals, the largest scheduled
 * queues (at most SCHED_STATUS_QUEUES, by message count) and every egress path with its ready queue,
 * messages in flight, open connections and outcome counters. Bounded: a document that would not fit
 * the page is cut to fewer queues and paths.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/scheduler.h"

#define SCHED_STATUS_QUEUES 200
#define SCHED_STATUS_PATHS 500

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

struct paths_ctx {
    const struct sched_core *core;
    json_t *arr;
    size_t n, limit;
};

static void path_push(void *arg, const struct sched_path *p)
{
    struct paths_ctx *c = arg;
    if (c->n >= c->limit)
        return;
    c->n++;
    json_array_append_new(c->arr,
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "source", sched_path_source_name(c->core, p),
                  "site", p->site->n.name, "ready", (json_int_t)p->ready.count, "in_flight", (json_int_t)p->in_flight,
                  "connections", (json_int_t)p->connections, "connection_limit", (json_int_t)p->opt.connection_limit,
                  "delivered", (json_int_t)p->delivered, "transient", (json_int_t)p->transient, "bounced",
                  (json_int_t)p->bounced));
}

static char *build(const struct scheduler *sc, size_t max_queues, size_t max_paths)
{
    struct sched_stats st;
    sched_core_stats(sc->core, &st);

    struct top t = {.cap = max_queues};
    t.v = xcalloc(max_queues ? max_queues : 1, sizeof(*t.v));
    sched_queue_foreach(sc->core, top_push, &t);
    qsort(t.v, t.n, sizeof(*t.v), by_count_desc);
    json_t *queues = json_array();
    for (size_t i = 0; i < t.n; i++)
        json_array_append_new(queues, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "name", t.v[i]->n.name, "domain",
                                                t.v[i]->domain ? t.v[i]->domain->n.name : "", "messages",
                                                (json_int_t)t.v[i]->count, "scheduled", (json_int_t)t.v[i]->scheduled,
                                                "retry_interval_s", (json_int_t)t.v[i]->cfg.retry_interval_s,
                                                "max_age_s", (json_int_t)t.v[i]->cfg.max_age_s));
    free(t.v);

    struct paths_ctx pc = {sc->core, json_array(), 0, max_paths};
    sched_path_foreach(sc->core, path_push, &pc);

    json_t *doc = json_pack(
        "{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:o}",
        "totals", "messages", (json_int_t)st.messages, "scheduled", (json_int_t)st.scheduled, "resolving",
        (json_int_t)st.resolving, "ready", (json_int_t)st.ready, "in_flight", (json_int_t)st.in_flight, "queues",
        (json_int_t)st.queues, "domains", (json_int_t)st.domains, "sites", (json_int_t)st.sites, "paths",
        (json_int_t)st.paths,
        "since_start", "added", (json_int_t)st.added, "delivered", (json_int_t)st.delivered, "bounced",
        (json_int_t)st.bounced, "expired", (json_int_t)st.expired, "transient", (json_int_t)st.transient,
        "requeued", (json_int_t)st.requeued, "ready_full", (json_int_t)st.ready_full,
        "queues", queues, "paths", pc.arr);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return s;
}

void sched_status_publish(struct scheduler *sc)
{
    size_t q = SCHED_STATUS_QUEUES, p = SCHED_STATUS_PATHS;
    for (int tries = 0; tries < 6; tries++) {
        char *s = build(sc, q, p);
        if (!s)
            return;
        int rc = shm_status_publish(&sc->rt->seg, s, strlen(s));
        free(s);
        if (rc == 0)
            return;
        q /= 2;
        p /= 2;
    }
    log_warn("scheduler status does not fit the status page even when cut down");
}
