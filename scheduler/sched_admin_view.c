/*
 * sched_admin_view - queue-summary, inspect-sched-q, inspect-ready-q and the scheduler's part of
 * inspect-message from the scheduler's memory
 * (contract in sched_admin.h; the documents: docs/admin-api.md)
 *
 * Per path: D delivered, T transient failures, B bounced (since the scheduler started), C open connections,
 * Q ready to go, the rate of D and T over the last minute (from snapshots of the counters every 10 s) and
 * the last failure response with its time. A roll-up (by site, provider or source) adds its paths up; the
 * site and provider roll-ups also count, in Q, the scheduled messages of the queues whose domain resolved
 * to the site (what waits for it). The scheduled queues follow, with counts and their next due moment
 * (one walk over the messages: an operator's query, not a hot path).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "base/sorted.h"
#include "common/mta_sts.h"
#include "common/proto_env.h"
#include "scheduler/sched_admin.h"
#include "scheduler/sched_shaping.h"
#include "scheduler/sched_tsa.h"
#include "scheduler/scheduler.h"

/* ---- rates and responses ---- */

void sched_admin_tick(struct scheduler *sc)
{
    struct sched_admin *ad = sc->admin;
    uint64_t now = scheduler_now_ms();
    if (!ad || (ad->n_snap && now < ad->snap[ad->head].at_ms + SCHED_ADMIN_SNAP_MS))
        return;
    unsigned h = ad->n_snap ? (ad->head + 1) % SCHED_ADMIN_SNAPS : 0;
    struct sched_admin_snap *s = &ad->snap[h];
    uint32_t n = sc->core->npaths;
    s->serial = xrealloc(s->serial, (n ? n : 1) * sizeof(*s->serial));
    s->d = xrealloc(s->d, (n ? n : 1) * sizeof(*s->d));
    s->t = xrealloc(s->t, (n ? n : 1) * sizeof(*s->t));
    for (uint32_t i = 0; i < n; i++) {
        s->serial[i] = sc->core->paths[i]->serial;
        s->d[i] = sc->core->paths[i]->delivered;
        s->t[i] = sc->core->paths[i]->transient;
    }
    s->n = n;
    s->at_ms = now;
    ad->head = h;
    if (ad->n_snap < SCHED_ADMIN_SNAPS)
        ad->n_snap++;
}

/* oldest - the snapshot from about a minute ago (the oldest kept); NULL while the scheduler has run for less
 * than the ring covers (the start, when every counter was 0, is then the base) */
static const struct sched_admin_snap *oldest(const struct sched_admin *ad)
{
    if (ad->n_snap < SCHED_ADMIN_SNAPS)
        return NULL;
    return &ad->snap[(ad->head + SCHED_ADMIN_SNAPS + 1 - ad->n_snap) % SCHED_ADMIN_SNAPS];
}

/* snap_index - where the path of that serial is in the snapshot; s->n when it was not there (newer) */
static uint32_t snap_index(const struct sched_admin_snap *s, uint64_t serial)
{
    size_t i = u64_lower_bound(s->serial, s->n, serial);
    return i < s->n && s->serial[i] == serial ? (uint32_t)i : s->n;
}

/* per_min - the change of a counter since the snapshot, per minute (i: the path's place in it) */
static double per_min(uint64_t now_v, const struct sched_admin_snap *s, const uint64_t *v, uint32_t i, uint64_t now,
                      uint64_t started)
{
    uint64_t base = s && i < s->n ? v[i] : 0, at = s ? s->at_ms : started;
    if (now <= at + 999)
        return 0;
    return (double)(now_v - base) * 60000.0 / (double)(now - at);
}

void sched_admin_path_forget(struct scheduler *sc, const char *source, const char *site)
{
    if (!sc->admin)
        return;
    char *k = xasprintf("%s->%s", source ? source : "", site);
    json_object_del(sc->admin->last_resp, k);
    free(k);
}

void sched_admin_response(struct scheduler *sc, const char *source, const char *site, const char *text,
                          uint64_t at_ms)
{
    if (!sc->admin || !site || !site[0])
        return;
    char *k = xasprintf("%s->%s", source ? source : "", site);
    json_object_set_new(sc->admin->last_resp, k, json_pack("{s:s, s:I}", "text", text, "at_ms", (json_int_t)at_ms));
    free(k);
}

/* ---- queue-summary ---- */

struct row {
    const char *name, *source, *site, *provider, *domain;
    uint64_t d, t, b, c, q, in_flight, paths, suspended_ms, throttled_ms;
    double d_min, t_min;
    const char *resp;
    uint64_t resp_at;
};

static void path_row(struct scheduler *sc, uint32_t i, uint64_t now, struct row *r)
{
    const struct sched_path *p = sc->core->paths[i];
    const struct sched_admin *ad = sc->admin;
    const struct sched_admin_snap *s = oldest(ad);
    const char *src = sched_path_source_name(sc->core, p);
    char *k = xasprintf("%s->%s", src, p->site->n.name);
    json_t *lr = json_object_get(ad->last_resp, k);
    free(k);
    const char *dom = sched_shaping_domain_of(sc, src, p->site->n.name);
    uint32_t j = s ? snap_index(s, p->serial) : 0;
    *r = (struct row){
        .source = src,
        .site = p->site->n.name,
        .provider = sched_shaping_provider_of(sc, src, p->site->n.name),
        .domain = dom ? dom : "",
        .d = p->delivered,
        .t = p->transient,
        .b = p->bounced,
        .c = p->connections,
        .q = p->ready.count,
        .in_flight = p->in_flight,
        .paths = 1,
        .suspended_ms = p->suspended_until_ms > now ? p->suspended_until_ms - now : 0,
        .throttled_ms = p->throttled_until_ms > now ? p->throttled_until_ms - now : 0,
        .d_min = per_min(p->delivered, s, s ? s->d : NULL, j, now, ad->started_ms),
        .t_min = per_min(p->transient, s, s ? s->t : NULL, j, now, ad->started_ms),
        .resp = json_string_value(json_object_get(lr, "text")),
        .resp_at = (uint64_t)json_integer_value(json_object_get(lr, "at_ms")),
    };
}

/* group_of - the roll-up key of a row */
static const char *group_of(const struct row *r, const char *by)
{
    if (!by)
        return NULL;
    if (strcmp(by, "site") == 0)
        return r->site;
    if (strcmp(by, "source") == 0)
        return r->source;
    return r->provider[0] ? r->provider : r->site; /* a site with no provider stands for itself */
}

static void add_row(struct row *g, const struct row *r)
{
    g->d += r->d, g->t += r->t, g->b += r->b, g->c += r->c, g->q += r->q, g->in_flight += r->in_flight;
    g->paths += r->paths;
    g->d_min += r->d_min, g->t_min += r->t_min;
    if (r->suspended_ms > g->suspended_ms)
        g->suspended_ms = r->suspended_ms;
    if (r->resp && r->resp_at >= g->resp_at)
        g->resp = r->resp, g->resp_at = r->resp_at;
}

static bool volume_order;
static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (volume_order && x->q + x->in_flight != y->q + y->in_flight)
        return x->q + x->in_flight > y->q + y->in_flight ? -1 : 1;
    int c = strcmp(x->name ? x->name : x->site, y->name ? y->name : y->site);
    return c ? c : strcmp(x->source, y->source);
}

/* domain_site - the site the domain resolved to, or NULL */
static const char *domain_site(struct scheduler *sc, const char *domain)
{
    char *lc = sched_name_lower_dup(domain);
    const struct sched_domain *d =
        (const struct sched_domain *)sched_name_find(&sc->core->domains, lc, sched_name_hash(lc));
    free(lc);
    return d && d->site ? d->site->n.name : NULL;
}

static json_t *row_json(const struct row *r, const char *by, uint64_t now)
{
    json_t *o = json_object();
    if (by) {
        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "paths", json_integer((json_int_t)r->paths));
    } else {
        json_object_set_new(o, "name", json_sprintf("%s->%s", r->source, r->site));
        json_object_set_new(o, "source", json_string(r->source));
        json_object_set_new(o, "site", json_string(r->site));
        json_object_set_new(o, "provider", json_string(r->provider));
        json_object_set_new(o, "domain", json_string(r->domain));
        json_object_set_new(o, "throttled_ms", json_integer((json_int_t)r->throttled_ms));
    }
    json_object_set_new(o, "delivered", json_integer((json_int_t)r->d));
    json_object_set_new(o, "transient", json_integer((json_int_t)r->t));
    json_object_set_new(o, "bounced", json_integer((json_int_t)r->b));
    json_object_set_new(o, "connections", json_integer((json_int_t)r->c));
    json_object_set_new(o, "queued", json_integer((json_int_t)r->q));
    json_object_set_new(o, "in_flight", json_integer((json_int_t)r->in_flight));
    json_object_set_new(o, "delivered_per_min", json_real(r->d_min));
    json_object_set_new(o, "transient_per_min", json_real(r->t_min));
    json_object_set_new(o, "suspended_ms", json_integer((json_int_t)r->suspended_ms));
    json_object_set_new(o, "last_response", r->resp ? json_string(r->resp) : json_null());
    json_object_set_new(o, "last_response_age_ms",
                        r->resp ? json_integer((json_int_t)(now > r->resp_at ? now - r->resp_at : 0)) : json_null());
    return o;
}

struct qwalk {
    const struct sched_queue **v;
    size_t n, cap;
    const char *domain;
    json_t *due; /* queue name -> earliest due of its scheduled messages */
};

static void queue_pick(void *arg, const struct sched_queue *q)
{
    struct qwalk *w = arg;
    if (w->domain && (!q->domain || strcasecmp(q->domain->n.name, w->domain) != 0))
        return;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
    }
    w->v[w->n++] = q;
}

static void due_of(void *arg, const struct sched_msg *m)
{
    struct qwalk *w = arg;
    if (m->state != SCHED_MSG_SCHEDULED)
        return;
    json_t *cur = json_object_get(w->due, m->queue->n.name);
    if (cur && (uint64_t)json_integer_value(cur) <= m->timer.due_ms)
        return;
    if (cur || !w->domain || json_object_size(w->due) < PROTO_ADMIN_ROWS_MAX)
        json_object_set_new(w->due, m->queue->n.name, json_integer((json_int_t)m->timer.due_ms));
}

static int queue_cmp(const void *a, const void *b)
{
    const struct sched_queue *x = *(const struct sched_queue *const *)a, *y = *(const struct sched_queue *const *)b;
    return x->count != y->count ? (x->count > y->count ? -1 : 1) : strcmp(x->n.name, y->n.name);
}

static json_t *queue_json(const struct sched_queue *q, json_t *due, uint64_t now)
{
    json_t *d = json_object_get(due, q->n.name);
    uint64_t at = d ? (uint64_t)json_integer_value(d) : 0;
    return json_pack("{s:s, s:s, s:s?, s:I, s:I, s:I, s:o}", "name", q->n.name, "domain",
                     q->domain ? q->domain->n.name : "", "site", q->domain && q->domain->site ? q->domain->site->n.name : NULL,
                     "messages", (json_int_t)q->count, "scheduled", (json_int_t)q->scheduled, "suspended_ms",
                     (json_int_t)(q->suspended_until_ms > now ? q->suspended_until_ms - now : 0), "next_due_ms",
                     d ? json_integer((json_int_t)(at > now ? at - now : 0)) : json_null());
}

static json_t *queues_json(const struct qwalk *all, size_t limit, uint64_t now)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < all->n && i < limit; i++)
        json_array_append_new(arr, queue_json(all->v[i], all->due, now));
    return arr;
}

static unsigned queue_summary(struct scheduler *sc, const struct proto_admin_args *a, json_t **result)
{
    uint64_t now = scheduler_now_ms();
    uint32_t n = sc->core->npaths;
    struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
    size_t nr = 0;
    const char *dsite = a->domain ? domain_site(sc, a->domain) : NULL;

    for (uint32_t i = 0; i < n; i++) {
        struct row r;
        path_row(sc, i, now, &r);
        if (a->domain && strcasecmp(r.domain, a->domain) != 0 && !(dsite && strcmp(r.site, dsite) == 0))
            continue;
        const char *g = group_of(&r, a->by);
        size_t k = 0;
        while (g && k < nr && strcmp(rows[k].name, g) != 0)
            k++;
        if (g && k < nr) {
            add_row(&rows[k], &r);
            continue;
        }
        r.name = g;
        rows[nr++] = r;
    }
    /* the scheduled queues, and what of them waits for each site */
    struct qwalk w = {.domain = a->domain, .due = json_object()};
    sched_queue_foreach(sc->core, queue_pick, &w);
    if (w.n) /* w.v is NULL when no queue was picked */
        qsort(w.v, w.n, sizeof(*w.v), queue_cmp);
    sched_msg_foreach(sc->core, due_of, &w);
    if (a->by && strcmp(a->by, "source") != 0)
        for (size_t i = 0; i < w.n; i++) {
            const struct sched_queue *q = w.v[i];
            if (!q->domain || !q->domain->site)
                continue;
            for (size_t k = 0; k < nr; k++) {
                bool hit = strcmp(a->by, "site") == 0 ? strcmp(rows[k].name, q->domain->site->n.name) == 0
                                                      : strcmp(rows[k].site, q->domain->site->n.name) == 0;
                if (hit) {
                    rows[k].q += q->scheduled;
                    break;
                }
            }
        }
    volume_order = a->by_volume;
    qsort(rows, nr, sizeof(*rows), row_cmp);
    size_t limit = a->limit && a->limit < PROTO_ADMIN_ROWS_MAX ? a->limit : PROTO_ADMIN_ROWS_MAX;
    json_t *arr = json_array();
    for (size_t i = 0; i < nr && i < limit; i++)
        json_array_append_new(arr, row_json(&rows[i], a->by, now));
    struct sched_stats st;
    sched_core_stats(sc->core, &st);
    json_t *totals = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "messages",
                               (json_int_t)st.messages, "scheduled", (json_int_t)st.scheduled, "ready",
                               (json_int_t)st.ready, "in_flight", (json_int_t)st.in_flight, "queues",
                               (json_int_t)st.queues, "paths", (json_int_t)st.paths, "added", (json_int_t)st.added,
                               "delivered", (json_int_t)st.delivered, "transient", (json_int_t)st.transient,
                               "bounced", (json_int_t)st.bounced, "expired", (json_int_t)st.expired);
    json_object_set_new(totals, "uptime_ms", json_integer((json_int_t)(now - sc->admin->started_ms)));
    *result = json_pack("{s:s?, s:o, s:o, s:o, s:I, s:I}", "by", a->by, "rows", arr, "queues",
                        queues_json(&w, limit, now), "totals", totals, "rows_total", (json_int_t)nr,
                        "queues_total", (json_int_t)w.n);
    json_decref(w.due);
    free(w.v);
    free(rows);
    return 200;
}

/* ---- inspect ---- */

static const char *state_name(uint8_t s)
{
    static const char *const names[] = {"scheduled", "resolving", "ready", "in_flight"};
    return s < 4 ? names[s] : "?";
}

static json_t *msg_json(struct scheduler *sc, const struct sched_msg *m, uint64_t now)
{
    struct msgid id;
    uint32_t rcpt_first;
    char text[MSGID_TEXT_SIZE];
    sched_keys_real(&sc->keys, m->id, &id, &rcpt_first);
    msgid_format(id, text);
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:I}", "id", text, "rcpt_first", (json_int_t)rcpt_first, "queue",
                          m->queue->n.name, "state", state_name(m->state), "attempts", (json_int_t)m->attempts,
                          "age_ms", (json_int_t)(now > m->created_ms ? now - m->created_ms : 0));
    if (m->state == SCHED_MSG_SCHEDULED)
        json_object_set_new(o, "due_in_ms",
                            json_integer((json_int_t)(m->timer.due_ms > now ? m->timer.due_ms - now : 0)));
    return o;
}

struct sample {
    struct scheduler *sc;
    const struct sched_queue *q;
    json_t *arr;
    uint64_t now, next_due;
};

static void sample_one(void *arg, const struct sched_msg *m)
{
    struct sample *s = arg;
    if (m->queue != s->q)
        return;
    if (m->state == SCHED_MSG_SCHEDULED && (!s->next_due || m->timer.due_ms < s->next_due))
        s->next_due = m->timer.due_ms;
    if (json_array_size(s->arr) < PROTO_ADMIN_SAMPLE)
        json_array_append_new(s->arr, msg_json(s->sc, m, s->now));
}

static json_t *rate_json(const struct sched_rate *r)
{
    return r->limit ? json_pack("{s:I, s:I}", "limit", (json_int_t)r->limit, "period_ms", (json_int_t)r->period_ms)
                    : json_null();
}

static unsigned inspect_queue(struct scheduler *sc, const char *name, json_t **result, const char **error)
{
    const struct sched_queue *q = name ? sched_queue_find(sc->core, name) : NULL;
    uint64_t now = scheduler_now_ms();
    if (!q) {
        *error = "no such scheduled queue (queue-summary lists them)";
        return 404;
    }
    struct sample s = {sc, q, json_array(), now, 0};
    sched_msg_foreach(sc->core, sample_one, &s);
    const char *camp, *ten;
    size_t cl, tl;
    sched_queue_name_parts(q->n.name, &camp, &cl, &ten, &tl);
    char *c = xstrndup(camp ? camp : "", cl), *t = xstrndup(ten ? ten : "", tl);
    const char *dom = q->domain ? q->domain->n.name : "";
    json_t *qo = json_pack(
        "{s:s, s:s, s:s, s:s, s:s?, s:I, s:I, s:{s:I, s:I, s:I, s:s}, s:I, s:o, s:o, s:b}", "name", q->n.name, "domain",
        dom, "tenant", t, "campaign", c, "site", q->domain && q->domain->site ? q->domain->site->n.name : NULL,
        "messages", (json_int_t)q->count, "scheduled", (json_int_t)q->scheduled, "config", "retry_interval_s",
        (json_int_t)q->cfg.retry_interval_s, "max_retry_interval_s", (json_int_t)q->cfg.max_retry_interval_s,
        "max_age_s", (json_int_t)q->cfg.max_age_s, "pool",
        q->cfg.pool < sc->core->npools ? sc->core->pools[q->cfg.pool].name : "", "suspended_ms",
        (json_int_t)(q->suspended_until_ms > now ? q->suspended_until_ms - now : 0), "next_due_ms",
        s.next_due ? json_integer((json_int_t)(s.next_due > now ? s.next_due - now : 0)) : json_null(), "effects",
        sched_admin_effects(sc, dom, t, c, NULL, NULL), "bouncing",
        sched_tsa_bounces(sc->tsa, dom, t, c, now));
    free(c);
    free(t);
    *result = json_pack("{s:o, s:o}", "queue", qo, "messages", s.arr);
    return 200;
}

static json_t *named_json(struct sched_named_limit *l, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I}", "name", l[i].name ? l[i].name : "", "limit",
                                           (json_int_t)l[i].limit));
    return a;
}

static json_t *named_rates_json(struct sched_named_rate *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:o}", "name", r[i].name ? r[i].name : "", "rate",
                                           rate_json(&r[i].rate)));
    return a;
}

static unsigned inspect_path(struct scheduler *sc, const char *name, json_t **result, const char **error)
{
    const char *arrow = name ? strstr(name, "->") : NULL;
    if (!arrow) {
        *error = "name is SOURCE->SITE (as queue-summary shows it)";
        return 400;
    }
    char *src = xstrndup(name, (size_t)(arrow - name));
    struct sched_path *p = sched_path_find(sc->core, src, arrow + 2);
    free(src);
    if (!p) {
        *error = "no such ready queue (queue-summary lists them)";
        return 404;
    }
    uint64_t now = scheduler_now_ms();
    uint32_t idx = 0;
    while (idx < sc->core->npaths && sc->core->paths[idx] != p)
        idx++;
    struct row r;
    path_row(sc, idx, now, &r);
    struct sched_path_options *o = &p->opt;
    json_t *cfg = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "connection_limit",
                            (json_int_t)o->connection_limit, "max_deliveries_per_connection",
                            (json_int_t)o->max_deliveries_per_connection, "max_ready", (json_int_t)o->max_ready,
                            "consecutive_connection_failures_before_delay",
                            (json_int_t)o->consecutive_connection_failures_before_delay, "max_message_rate",
                            rate_json(&o->max_message_rate), "max_connection_rate", rate_json(&o->max_connection_rate),
                            "source_selection_rate", rate_json(&o->source_selection_rate), "limits",
                            named_json(o->limits, o->n_limits), "throttles", named_rates_json(o->throttles, o->n_throttles),
                            "source_rates", named_rates_json(o->source_rates, o->n_source_rates));
    json_t *thr = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "throttled_ms", (json_int_t)r.throttled_ms,
                            "throttle_waits", (json_int_t)p->throttle_waits, "limit_waits", (json_int_t)p->limit_waits,
                            "source_skips", (json_int_t)p->source_skips, "failure_delays",
                            (json_int_t)p->failure_delays, "consecutive_failures", (json_int_t)p->consecutive_failures);
    json_t *po = row_json(&r, NULL, now);
    json_object_set_new(po, "config", cfg);
    json_object_set_new(po, "throttle", thr);
    json_object_set_new(po, "idle_connections", json_integer((json_int_t)p->idle));
    /* the MTA-STS mode in force on the path: "off", "testing" or "enforce" (docs/tls.md) */
    json_object_set_new(po, "mta_sts", json_string(mta_sts_mode_name(mta_sts_site_mode(r.site))));
    json_object_set_new(po, "effects", sched_admin_effects(sc, NULL, NULL, NULL, r.source, r.site));
    json_t *msgs = json_array();
    for (const struct sched_msg *m = p->ready.head; m && json_array_size(msgs) < PROTO_ADMIN_SAMPLE; m = m->link.next)
        json_array_append_new(msgs, msg_json(sc, m, now));
    *result = json_pack("{s:o, s:o}", "path", po, "messages", msgs);
    return 200;
}

/* inspect_message - the scheduler's entries of one message: one per recipient domain group still queued,
 * found by probing rcpt_first 0 .. limit-1 (limit: the recipients the spool holds, at most
 * PROTO_ENV_RCPT_MAX; 1 when not given) in the key index: hash lookups, no walk of the queues */
static unsigned inspect_message(struct scheduler *sc, const struct proto_admin_args *a, json_t **result,
                                const char **error)
{
    struct msgid id;
    if (!a->message || msgid_parse(a->message, strlen(a->message), &id) < 0) {
        *error = "message= is a message id: 32 hex digits";
        return 400;
    }
    uint64_t n = a->limit ? a->limit : 1, now = scheduler_now_ms();
    if (n > PROTO_ENV_RCPT_MAX)
        n = PROTO_ENV_RCPT_MAX;
    json_t *entries = json_array();
    for (uint32_t r = 0; r < n && json_array_size(entries) < PROTO_ADMIN_RCPTS_MAX; r++) {
        struct msgid key;
        const struct sched_msg *m;
        if (!sched_keys_key(&sc->keys, id, r, false, &key) || !(m = sched_msg_find(sc->core, key)))
            continue;
        json_t *o = msg_json(sc, m, now);
        json_object_del(o, "id");
        const struct sched_path *p = m->state == SCHED_MSG_READY       ? m->at.path
                                     : m->state == SCHED_MSG_IN_FLIGHT ? m->at.lease->path
                                                                       : NULL;
        if (p)
            json_object_set_new(o, "path", json_sprintf("%s->%s", sched_path_source_name(sc->core, p),
                                                        p->site->n.name));
        if (m->state == SCHED_MSG_SCHEDULED)
            json_object_set_new(o, "next_due_ms", json_integer((json_int_t)m->timer.due_ms));
        json_object_set_new(o, "domain", json_string(m->queue->domain ? m->queue->domain->n.name : ""));
        json_array_append_new(entries, o);
    }
    *result = json_pack("{s:o}", "entries", entries);
    return 200;
}

unsigned sched_admin_view(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                          const char **error)
{
    switch (req->op) {
    case PROTO_ADMIN_QUEUE_SUMMARY:
        return queue_summary(sc, &req->args, result);
    case PROTO_ADMIN_INSPECT_QUEUE:
        return inspect_queue(sc, req->args.name, result, error);
    case PROTO_ADMIN_INSPECT_PATH:
        return inspect_path(sc, req->args.name, result, error);
    case PROTO_ADMIN_INSPECT_MESSAGE:
        return inspect_message(sc, &req->args, result, error);
    default:
        *error = "unknown op";
        return 400;
    }
}
