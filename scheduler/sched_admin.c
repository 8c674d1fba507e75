/*
 * sched_admin - the command channel's scheduler end and the operator's effects (contract in sched_admin.h)
 *
 * A request is taken once: its page's sequence number says when there is a new one (the one found at start
 * is not), and its deadline that the supervisor still waits
 * (a request found after a restart of the scheduler, or late, is not acted on). The page is copied and the
 * copy decoded (proto_admin_req_decode) before anything of it is used; the supervisor is trusted no more
 * than any other process that maps the segment.
 */
#include "scheduler/sched_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "policy/shaping.h"
#include "scheduler/sched_tsa.h"
#include "scheduler/scheduler.h"

#define DAY_MS (24u * 3600u * 1000u)
#define MAX_DURATION_MS (30ull * DAY_MS)
#define SUSPEND_DEFAULT_MS (3600u * 1000u)
#define BOUNCE_DEFAULT_MS (300u * 1000u)

enum kind { K_SUSPEND, K_SUSPEND_PATH, K_BOUNCE };
static const char *const kind_names[] = {"suspend", "suspend-ready-q", "bounce"};

static bool kind_of(unsigned action, enum kind *k)
{
    switch (action) {
    case SHAPING_ACTION_SUSPEND:
        *k = K_SUSPEND_PATH;
        return true;
    case SHAPING_ACTION_SUSPEND_TENANT:
    case SHAPING_ACTION_SUSPEND_CAMPAIGN:
        *k = K_SUSPEND;
        return true;
    case SHAPING_ACTION_BOUNCE:
    case SHAPING_ACTION_BOUNCE_TENANT:
    case SHAPING_ACTION_BOUNCE_CAMPAIGN:
        *k = K_BOUNCE;
        return true;
    default:
        return false;
    }
}

static unsigned action_of(const char *name)
{
    for (unsigned k = 0; k <= PROTO_TSA_ACTION_MAX; k++)
        if (strcmp(sched_tsa_action_name(k), name) == 0)
            return k;
    return PROTO_TSA_ACTION_MAX + 1;
}

/* item - one effect in force as the lists show it */
static json_t *item(const struct proto_status_tsa_entry *e, bool admin)
{
    enum kind k = K_SUSPEND;
    bool known = kind_of(action_of(e->action), &k);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "id",
                          (json_int_t)e->start_ms, "kind", known ? kind_names[k] : "automation", "action", e->action,
                          "domain", e->domain, "tenant", e->tenant, "campaign", e->campaign, "source", e->source,
                          "site", e->site, "reason", e->response, "who", admin ? e->rule_file : "automation",
                          "created_ms", (json_int_t)e->start_ms, "expires_ms", (json_int_t)e->expires_ms,
                          "remaining_ms", (json_int_t)(e->remaining_ms > 0 ? e->remaining_ms : 0));
    if (!admin)
        json_object_set_new(o, "rule", json_sprintf("%s:%llu", e->rule_file, (unsigned long long)e->rule_line));
    return o;
}

/* effects_doc - the effects in force; free doc.active */
static void effects_doc(struct scheduler *sc, struct proto_status_tsa *doc)
{
    sched_tsa_status(sc->tsa, scheduler_now_ms(), (size_t)-1, 0, doc);
    free(doc->history);
    doc->history = NULL;
}

static bool is_admin(const struct proto_status_tsa_entry *e)
{
    return strcmp(e->rule_scope, SCHED_TSA_ADMIN_SCOPE) == 0;
}

static bool part_match(const char *effect, const char *v)
{
    return !effect[0] || strcmp(effect, v ? v : "") == 0;
}

/* holds_queue - effect e (admin or not) holds mail of this domain, tenant and campaign */
static bool holds_queue(const struct proto_status_tsa_entry *e, unsigned a, bool admin, const char *domain,
                        const char *tenant, const char *campaign)
{
    if (a == SHAPING_ACTION_SUSPEND || a == SHAPING_ACTION_SET_CONFIG)
        return false;
    if (strcasecmp(e->domain, domain) != 0 && !(admin && strcmp(e->domain, "*") == 0))
        return false;
    bool by_tenant = a != SHAPING_ACTION_SET_DOMAIN_CONFIG && a != SHAPING_ACTION_BOUNCE;
    if (by_tenant && !(admin ? part_match(e->tenant, tenant) : strcmp(e->tenant, tenant ? tenant : "") == 0))
        return false;
    bool by_campaign = a == SHAPING_ACTION_SUSPEND_CAMPAIGN || a == SHAPING_ACTION_BOUNCE_CAMPAIGN;
    return !by_campaign || strcmp(e->campaign, campaign ? campaign : "") == 0;
}

json_t *sched_admin_effects(struct scheduler *sc, const char *domain, const char *tenant, const char *campaign,
                            const char *source, const char *site)
{
    struct proto_status_tsa doc;
    json_t *list = json_array();
    effects_doc(sc, &doc);
    for (size_t i = 0; i < doc.n_active; i++) {
        const struct proto_status_tsa_entry *e = &doc.active[i];
        unsigned a = action_of(e->action);
        bool admin = is_admin(e), hit;
        if (site)
            hit = (a == SHAPING_ACTION_SUSPEND || a == SHAPING_ACTION_SET_CONFIG) && strcmp(e->site, site) == 0 &&
                  (!e->source[0] || strcmp(e->source, source) == 0);
        else
            hit = holds_queue(e, a, admin, domain, tenant, campaign);
        if (hit)
            json_array_append_new(list, item(e, admin));
    }
    free(doc.active);
    return list;
}

static json_t *list_of(struct scheduler *sc, enum kind k)
{
    struct proto_status_tsa doc;
    json_t *items = json_array();
    effects_doc(sc, &doc);
    for (size_t i = 0; i < doc.n_active; i++) {
        enum kind ek;
        if (is_admin(&doc.active[i]) && kind_of(action_of(doc.active[i].action), &ek) && ek == k)
            json_array_append_new(items, item(&doc.active[i], true));
    }
    free(doc.active);
    return json_pack("{s:o}", "items", items);
}

/* apply_event - check that the spool will take it, then apply, store, log; 0 or an HTTP code */
static unsigned apply_event(struct scheduler *sc, const struct proto_tsa_event *ev, const char **error)
{
    struct buf b = {0};
    proto_tsa_events_begin(&b);
    int rc = proto_tsa_events_append(&b, ev);
    buf_fini(&b);
    if (rc < 0) {
        *error = "the effect cannot be stored (a name or reason too long, or a control character)";
        return 400;
    }
    rc = sched_tsa_admin(sc->tsa, ev);
    if (rc == -ENOENT) {
        *error = "no such effect in force";
        return 404;
    }
    return rc < 0 ? 500 : 0;
}

static uint64_t duration(const struct proto_admin_args *a, uint64_t def)
{
    return a->duration_ms ? a->duration_ms : def;
}

/* new_effect - an operator's event of action k with its id, reason and who; strings set by the caller */
static void new_effect(struct sched_admin *ad, const struct proto_admin_req *req, unsigned k, uint64_t dur,
                       struct proto_tsa_event *ev)
{
    uint64_t now = scheduler_now_ms();
    ad->last_effect = now > ad->last_effect ? now : ad->last_effect + 1;
    *ev = (struct proto_tsa_event){
        .hdr = {.start_ms = (int64_t)ad->last_effect, .expiry_ms = (int64_t)(ad->last_effect + dur), .count = 1,
                .action = (uint16_t)k}};
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        proto_tsa_event_set(ev, (enum proto_tsa_event_str)i, NULL);
    proto_tsa_event_set(ev, PROTO_TSA_E_SCOPE, SCHED_TSA_ADMIN_SCOPE);
    proto_tsa_event_set(ev, PROTO_TSA_E_FILE, req->who);
    proto_tsa_event_set(ev, PROTO_TSA_E_RESPONSE, req->args.reason);
}

/* created - the item of the effect just made, from the engine's own view of it */
static json_t *created(struct scheduler *sc, const struct proto_tsa_event *ev, enum kind k)
{
    json_t *l = list_of(sc, k), *found = NULL;
    json_t *items = json_object_get(l, "items");
    for (size_t i = 0; i < json_array_size(items) && !found; i++)
        if ((int64_t)json_integer_value(json_object_get(json_array_get(items, i), "id")) == ev->hdr.start_ms)
            found = json_incref(json_array_get(items, i));
    json_decref(l);
    return found ? found : json_object();
}

static unsigned op_suspend(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                           const char **error)
{
    const struct proto_admin_args *a = &req->args;
    struct proto_tsa_event ev;
    bool path = req->op == PROTO_ADMIN_SUSPEND_PATH;
    const char *arrow = path && a->name ? strstr(a->name, "->") : NULL;
    char source[PROTO_ADMIN_STR_MAX + 1];

    if (!a->reason || !a->reason[0]) {
        *error = "a reason is required (--reason)";
        return 400;
    }
    if (duration(a, SUSPEND_DEFAULT_MS) > MAX_DURATION_MS) {
        *error = "the duration is longer than 30 days";
        return 400;
    }
    if (path && (!arrow || arrow == a->name || !arrow[2])) {
        *error = "name is SOURCE->SITE (as queue-summary shows it)";
        return 400;
    }
    if (!path && (!a->domain || !a->domain[0] || strcmp(a->domain, "*") == 0)) {
        *error = "a domain is required (--domain)";
        return 400;
    }
    unsigned k = path ? SHAPING_ACTION_SUSPEND : a->campaign ? SHAPING_ACTION_SUSPEND_CAMPAIGN : SHAPING_ACTION_SUSPEND_TENANT;
    new_effect(sc->admin, req, k, duration(a, SUSPEND_DEFAULT_MS), &ev);
    if (path) {
        snprintf(source, sizeof(source), "%.*s", (int)(arrow - a->name), a->name);
        proto_tsa_event_set(&ev, PROTO_TSA_E_SOURCE, source);
        proto_tsa_event_set(&ev, PROTO_TSA_E_SITE, arrow + 2);
    } else {
        proto_tsa_event_set(&ev, PROTO_TSA_E_DOMAIN, a->domain);
        proto_tsa_event_set(&ev, PROTO_TSA_E_TENANT, a->tenant);
        proto_tsa_event_set(&ev, PROTO_TSA_E_CAMPAIGN, a->campaign);
    }
    unsigned st = apply_event(sc, &ev, error);
    if (st)
        return st;
    json_t *it = created(sc, &ev, path ? K_SUSPEND_PATH : K_SUSPEND);
    if (path)
        json_object_set_new(it, "path_exists", json_boolean(sched_path_find(sc->core, source, arrow + 2) != NULL));
    *result = json_pack("{s:o}", "item", it);
    log_info("admin: %s %lld by %s: %s", kind_names[path ? K_SUSPEND_PATH : K_SUSPEND], (long long)ev.hdr.start_ms,
             req->who, a->reason);
    return 200;
}

/* queue_key - the domain, tenant and campaign of a queue name (sched_queue_name's forms) into ev */
static bool queue_key(const char *q, struct proto_tsa_event *ev, unsigned *k)
{
    const char *c, *t;
    size_t cl, tl;
    char buf[PROTO_ADMIN_STR_MAX + 1];
    const char *bang = strchr(q, '!');
    size_t n = bang ? (size_t)(bang - q) : strlen(q);
    const char *at = memrchr(q, '@', n);
    const char *dom = at ? at + 1 : q;
    size_t dl = (size_t)(q + n - dom);
    if (dl == 0)
        return false;
    snprintf(buf, sizeof(buf), "%.*s", (int)dl, dom);
    proto_tsa_event_set(ev, PROTO_TSA_E_DOMAIN, buf);
    sched_queue_name_parts(q, &c, &cl, &t, &tl);
    snprintf(buf, sizeof(buf), "%.*s", (int)tl, t ? t : "");
    proto_tsa_event_set(ev, PROTO_TSA_E_TENANT, buf);
    snprintf(buf, sizeof(buf), "%.*s", (int)cl, c ? c : "");
    proto_tsa_event_set(ev, PROTO_TSA_E_CAMPAIGN, buf);
    *k = cl ? SHAPING_ACTION_BOUNCE_CAMPAIGN : tl ? SHAPING_ACTION_BOUNCE_TENANT : SHAPING_ACTION_BOUNCE;
    return true;
}

static unsigned op_bounce(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                          const char **error)
{
    const struct proto_admin_args *a = &req->args;
    struct proto_tsa_event ev;
    unsigned given = (a->domain || a->tenant || a->campaign) + (a->queue != NULL) + a->everything;

    if (!a->reason || !a->reason[0]) {
        *error = "a reason is required (--reason)";
        return 400;
    }
    if (given != 1) {
        *error = "say what to bounce: --domain D [--tenant T] [--campaign C], --tenant T, --campaign C, --queue Q "
                 "or --everything";
        return 400;
    }
    if (duration(a, BOUNCE_DEFAULT_MS) > MAX_DURATION_MS) {
        *error = "the duration is longer than 30 days";
        return 400;
    }
    unsigned k = a->campaign ? SHAPING_ACTION_BOUNCE_CAMPAIGN
                 : a->tenant ? SHAPING_ACTION_BOUNCE_TENANT
                             : SHAPING_ACTION_BOUNCE;
    new_effect(sc->admin, req, k, duration(a, BOUNCE_DEFAULT_MS), &ev);
    if (a->queue) {
        if (!queue_key(a->queue, &ev, &k)) {
            *error = "the queue name has no domain";
            return 400;
        }
        ev.hdr.action = (uint16_t)k;
    } else {
        proto_tsa_event_set(&ev, PROTO_TSA_E_DOMAIN, a->domain && a->domain[0] ? a->domain : "*");
        proto_tsa_event_set(&ev, PROTO_TSA_E_TENANT, a->tenant);
        proto_tsa_event_set(&ev, PROTO_TSA_E_CAMPAIGN, a->campaign);
    }
    struct sched_stats before, after;
    sched_core_stats(sc->core, &before);
    unsigned st = apply_event(sc, &ev, error); /* the Bounce effect sweeps the queued mail at once */
    if (st)
        return st;
    sched_core_stats(sc->core, &after);
    json_t *it = created(sc, &ev, K_BOUNCE);
    json_object_set_new(it, "bounced", json_integer((json_int_t)(before.messages - after.messages)));
    *result = json_pack("{s:o}", "item", it);
    log_info("admin: bounce %lld by %s: %llu queued message(s) bounced: %s", (long long)ev.hdr.start_ms, req->who,
             (unsigned long long)(before.messages - after.messages), a->reason);
    return 200;
}

static unsigned op_cancel(struct scheduler *sc, const struct proto_admin_req *req, enum kind k, json_t **result,
                          const char **error)
{
    struct proto_status_tsa doc;
    const struct proto_status_tsa_entry *e = NULL;
    enum kind ek;

    effects_doc(sc, &doc);
    for (size_t i = 0; i < doc.n_active && !e; i++)
        if (is_admin(&doc.active[i]) && doc.active[i].start_ms == req->args.target &&
            kind_of(action_of(doc.active[i].action), &ek) && ek == k)
            e = &doc.active[i];
    if (!e) {
        free(doc.active);
        *error = k == K_BOUNCE ? "no bounce with that id in force (bounce-list)"
                               : "no suspension with that id in force (the list command shows them)";
        return 404;
    }
    uint64_t now = scheduler_now_ms();
    struct proto_tsa_event ev = {.hdr = {.start_ms = (int64_t)e->start_ms,
                                         .expiry_ms = (int64_t)(now > e->start_ms ? now : e->start_ms + 1),
                                         .count = 1,
                                         .action = (uint16_t)action_of(e->action)}};
    json_t *it = item(e, true);
    const char *strs[PROTO_TSA_E_STRINGS] = {
        [PROTO_TSA_E_SCOPE] = SCHED_TSA_ADMIN_SCOPE, [PROTO_TSA_E_FILE] = req->who,
        [PROTO_TSA_E_REGEX] = SCHED_TSA_ADMIN_CANCEL, [PROTO_TSA_E_RESPONSE] = e->response,
        [PROTO_TSA_E_SOURCE] = e->source,           [PROTO_TSA_E_SITE] = e->site,
        [PROTO_TSA_E_DOMAIN] = e->domain,           [PROTO_TSA_E_TENANT] = e->tenant,
        [PROTO_TSA_E_CAMPAIGN] = e->campaign,
    };
    /* the entry's strings belong to the effect the cancel frees: the event keeps copies of its own */
    char *own[PROTO_TSA_E_STRINGS];
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++) {
        own[i] = xstrdup(strs[i] ? strs[i] : "");
        proto_tsa_event_set(&ev, (enum proto_tsa_event_str)i, own[i]);
    }
    unsigned st = apply_event(sc, &ev, error);
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        free(own[i]);
    free(doc.active);
    if (st) {
        json_decref(it);
        return st;
    }
    json_object_set_new(it, "cancelled_by", json_string(req->who));
    *result = json_pack("{s:o}", "item", it);
    log_info("admin: %s %llu cancelled by %s", kind_names[k], (unsigned long long)req->args.target, req->who);
    return 200;
}

static unsigned dispatch(struct scheduler *sc, const struct proto_admin_req *req, json_t **result, const char **error)
{
    switch (req->op) {
    case PROTO_ADMIN_SUSPEND:
    case PROTO_ADMIN_SUSPEND_PATH:
        return op_suspend(sc, req, result, error);
    case PROTO_ADMIN_BOUNCE:
        return op_bounce(sc, req, result, error);
    case PROTO_ADMIN_SUSPEND_LIST:
        *result = list_of(sc, K_SUSPEND);
        return 200;
    case PROTO_ADMIN_SUSPEND_PATH_LIST:
        *result = list_of(sc, K_SUSPEND_PATH);
        return 200;
    case PROTO_ADMIN_BOUNCE_LIST:
        *result = list_of(sc, K_BOUNCE);
        return 200;
    case PROTO_ADMIN_SUSPEND_CANCEL:
        return op_cancel(sc, req, K_SUSPEND, result, error);
    case PROTO_ADMIN_SUSPEND_PATH_CANCEL:
        return op_cancel(sc, req, K_SUSPEND_PATH, result, error);
    case PROTO_ADMIN_BOUNCE_CANCEL:
        return op_cancel(sc, req, K_BOUNCE, result, error);
    case PROTO_ADMIN_REBIND:
        return sched_rebind_op(sc, req, result, error);
    case PROTO_ADMIN_ABORT_PATH_CONN:
        return sched_rebind_abort(sc, req, result, error);
    case PROTO_ADMIN_WARMUP_STATUS:
        *result = sched_warmup_status(sc);
        return 200;
    default:
        return sched_admin_view(sc, req, result, error);
    }
}

/* reply - into the reply page; -E2BIG (nothing published) when it does not fit and `may_fail` */
static int reply(struct scheduler *sc, uint64_t id, unsigned status, const char *error, json_t *result, bool may_fail)
{
    char *text = proto_admin_reply_encode(id, status, error, result);
    int rc = text ? shm_segment_page_publish(&sc->rt->seg, PROTO_NODE_STATUS_ADMIN_REPLY, text, strlen(text)) : -EINVAL;
    free(text);
    if (rc == -E2BIG && may_fail)
        return rc;
    if (rc == -E2BIG) {
        text = proto_admin_reply_encode(id, 507, "the answer does not fit the command channel: narrow it (--limit, "
                                                 "--domain)", NULL);
        rc = shm_segment_page_publish(&sc->rt->seg, PROTO_NODE_STATUS_ADMIN_REPLY, text, strlen(text));
        free(text);
    }
    if (rc < 0)
        log_warn("admin: the reply to request %llu was not published (%s)", (unsigned long long)id, strerror(-rc));
    return rc;
}

void sched_admin_poll(struct scheduler *sc)
{
    struct sched_admin *ad = sc->admin;
    struct role_rt *rt = sc->rt;
    uint64_t seq = shm_segment_page_seq(&rt->seg, PROTO_NODE_STATUS_ADMIN_REQ);
    if (!ad || seq == ad->page_seq || (seq & 1))
        return;
    size_t n = 0;
    char *text = shm_segment_page_read(&rt->seg, PROTO_NODE_STATUS_ADMIN_REQ, &n, NULL);
    if (!text)
        return; /* being written: the next wake-up takes it */
    ad->page_seq = seq;
    struct proto_admin_req req;
    char *err = NULL;
    int rc = proto_admin_req_decode(text, n, &req, &err);
    free(text);
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("admin: request refused: %s", err);
        free(err);
        return;
    }
    /* ids are not compared: the sequence number already takes each publication once, and a process that
     * wrote a huge id into the page would otherwise shut the channel for good (inspect_test.py) */
    if (req.deadline_ms && scheduler_now_ms() > req.deadline_ms) {
        log_warn("admin: request %llu (%s) found after its deadline: not acted on", (unsigned long long)req.id,
                 proto_admin_op_name(req.op));
        ad->last_id = req.id > ad->last_id ? req.id : ad->last_id;
        proto_admin_req_fini(&req);
        return;
    }
    ad->last_id = req.id;
    /* a summary too large for the page is answered with fewer rows (halved until it fits), marked so */
    bool summary = req.op == PROTO_ADMIN_QUEUE_SUMMARY;
    for (int tries = 0; tries < 8; tries++) {
        json_t *result = NULL;
        const char *error = "failed";
        unsigned status = dispatch(sc, &req, &result, &error);
        if (tries && result)
            json_object_set_new(result, "truncated", json_true());
        rc = reply(sc, req.id, status, error, result, summary && tries < 7);
        json_decref(result);
        if (rc != -E2BIG)
            break;
        req.args.limit = (req.args.limit && req.args.limit < PROTO_ADMIN_ROWS_MAX ? req.args.limit
                                                                                  : PROTO_ADMIN_ROWS_MAX) / 2;
        req.args.limit = req.args.limit ? req.args.limit : 1;
    }
    proto_admin_req_fini(&req);
}

void sched_admin_init(struct scheduler *sc)
{
    struct sched_admin *ad = xcalloc(1, sizeof(*ad));
    size_t n = 0;
    sc->admin = ad;
    ad->last_resp = json_object();
    ad->started_ms = scheduler_now_ms();
    /* a request already in the page was for an earlier scheduler: it is not acted on */
    ad->page_seq = shm_segment_page_seq(&sc->rt->seg, PROTO_NODE_STATUS_ADMIN_REQ);
    char *text = shm_segment_page_read(&sc->rt->seg, PROTO_NODE_STATUS_ADMIN_REQ, &n, NULL);
    struct proto_admin_req req;
    char *err = NULL;
    if (text && proto_admin_req_decode(text, n, &req, &err) == 0) {
        ad->last_id = req.id;
        proto_admin_req_fini(&req);
    }
    free(err);
    free(text);
}

void sched_admin_fini(struct scheduler *sc)
{
    struct sched_admin *ad = sc->admin;
    if (!ad)
        return;
    for (unsigned i = 0; i < SCHED_ADMIN_SNAPS; i++) {
        free(ad->snap[i].serial);
        free(ad->snap[i].d);
        free(ad->snap[i].t);
    }
    json_decref(ad->last_resp);
    free(ad);
    sc->admin = NULL;
}
