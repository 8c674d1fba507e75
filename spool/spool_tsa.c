/*
 * spool_tsa - the spool's part of the traffic shaping automation (TSA): responses out, firings kept
 *
 * After a TransientFailure or Bounce attempt is recorded (spool_upd.c), spool_tsa_attempt() sends the
 * scheduler one MSG_SPOOL_TSA_RESPONSE per attempt: routing domain, site, egress source, tenant and
 * campaign (envelope metadata), the first failed recipient's reply as "CODE X.Y.Z text", and the
 * attempt's time. Deliveries send nothing. A response that finds the arena full is dropped and
 * counted (it is advice; the next failure brings another).
 * Each firing the scheduler reports (MSG_SCHEDULER_TSA_EVENT) goes into the open write batch (the
 * "tsa" family keeps the newest SPOOL_DB_TSA_KEEP) with a "TSA" log record, in the same group commit.
 * At the start-up walk a (re)started scheduler gets back, in MSG_SPOOL_TSA_STATE runs sent before
 * MSG_SPOOL_WALK_DONE, every stored firing that has not expired and the last SPOOL_TSA_HISTORY
 * firings, oldest first, so active effects survive a restart of either process or of the node.
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_tsa.h"
#include "spool/spool_dlv.h"

#define SCHEDULER 1
#define SPOOL_TSA_HISTORY 1000               /* recent firings sent at the walk */
#define SPOOL_TSA_RUN_BYTES (64u * 1024u)    /* a state run is closed past this size */

static int64_t now_ms(void)
{
    return (int64_t)(clock_real_ns() / 1000000u);
}

void spool_tsa_attempt(struct spool *sp, const struct proto_env *rec, const struct proto_attempt *a, uint16_t index)
{
    const struct proto_attempt_rcpt *r = &a->rcpt[index];
    char dom[PROTO_ENV_ADDR_MAX + 1], text[PROTO_TSA_TEXT_MAX + 1];
    struct proto_tsa_resp resp = {.hdr = {.kind = r->outcome == PROTO_OUT_BOUNCE ? PROTO_TSA_BOUNCE
                                                                                 : PROTO_TSA_TRANSIENT,
                                          .timestamp_ms = a->hdr.timestamp_ms}};
    struct buf b = {0};

    spool_dlv_domain(rec->rcpts[r->index].addr, dom, sizeof(dom));
    char *routing = spool_dlv_routing_domain(rec, dom);
    if (r->code && r->enh_class)
        snprintf(text, sizeof(text), "%u %u.%u.%u %s", r->code, r->enh_class, r->enh_subject, r->enh_detail,
                 a->text[index]);
    else if (r->code)
        snprintf(text, sizeof(text), "%u %s", r->code, a->text[index]);
    else
        snprintf(text, sizeof(text), "%s", a->text[index]);
    proto_tsa_resp_set(&resp, PROTO_TSA_R_DOMAIN, routing);
    proto_tsa_resp_set(&resp, PROTO_TSA_R_SITE, a->str[PROTO_ATT_SITE]);
    proto_tsa_resp_set(&resp, PROTO_TSA_R_SOURCE, a->str[PROTO_ATT_SOURCE]);
    proto_tsa_resp_set(&resp, PROTO_TSA_R_TENANT, proto_env_meta_get(rec, PROTO_ENV_META_TENANT));
    proto_tsa_resp_set(&resp, PROTO_TSA_R_CAMPAIGN, proto_env_meta_get(rec, PROTO_ENV_META_CAMPAIGN));
    proto_tsa_resp_set(&resp, PROTO_TSA_R_TEXT, text);
    int rc = proto_tsa_resp_encode(&resp, &b);
    if (rc == 0)
        rc = spool_out_run(sp, SCHEDULER, MSG_SPOOL_TSA_RESPONSE, b.data, b.len, 1);
    if (rc < 0)
        log_debug("TSA response for %s not sent (%d)", routing, rc);
    free(routing);
    buf_fini(&b);
}

/* log_record - the "TSA" record of one firing (docs/logs.md) */
static json_t *log_record(const struct proto_tsa_event *e, const char *node_id)
{
    static const char *const actions[] = {"Suspend",       "SetConfig",    "SetDomainConfig",
                                          "SuspendTenant", "SuspendCampaign", "Bounce",
                                          "BounceTenant",  "BounceCampaign"};
    const char *const *s = e->str;
    json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:I}", "type", "TSA", "timestamp",
                          (json_int_t)(e->hdr.start_ms / 1000), "action", actions[e->hdr.action], "rule_scope",
                          s[PROTO_TSA_E_SCOPE], "rule_line", (int)e->hdr.line, "rule_file", s[PROTO_TSA_E_FILE],
                          "regex", s[PROTO_TSA_E_REGEX], "response", s[PROTO_TSA_E_RESPONSE], "count",
                          (json_int_t)e->hdr.count, "start_ms", (json_int_t)e->hdr.start_ms, "expires_ms",
                          (json_int_t)e->hdr.expiry_ms);
    if (!j)
        return NULL;
    static const struct {
        enum proto_tsa_event_str i;
        const char *key;
    } keys[] = {{PROTO_TSA_E_SOURCE, "egress_source"}, {PROTO_TSA_E_SITE, "site"}, {PROTO_TSA_E_DOMAIN, "domain"},
                {PROTO_TSA_E_TENANT, "tenant"},        {PROTO_TSA_E_CAMPAIGN, "campaign"},
                {PROTO_TSA_E_NAME, "option"}};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        json_object_set_new(j, keys[k].key, s[keys[k].i][0] ? json_string(s[keys[k].i]) : json_null());
    json_t *v = e->hdr.len[PROTO_TSA_E_VALUE] ? json_loads(s[PROTO_TSA_E_VALUE], JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(j, "value", v ? v : json_null());
    json_object_set_new(j, "nodeid", node_id && node_id[0] ? json_string(node_id) : json_null());
    return j;
}

void spool_tsa_event(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_batch *b = &rec->body.batch;
    struct proto_tsa_events ev;
    const char *why = "arena range invalid";
    int rc = -EBADMSG;

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("TSA event from instance %u, which is not the scheduler; ignored", from);
        return;
    }
    const void *p = shm_arena_ptr(rt->seg.arena, b->arena_off, b->len);
    if (p) {
        rc = proto_tsa_events_decode(p, b->len, &ev, &why);
        shm_arena_free(rt->seg.arena, b->arena_off);
    }
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("TSA event from the scheduler refused: %s", why);
        return;
    }
    for (uint32_t i = 0; i < ev.count; i++) {
        struct buf one = {0};
        proto_tsa_events_begin(&one);
        if (proto_tsa_events_append(&one, &ev.ev[i]) == 0 &&
            (rc = spool_db_batch_tsa_add(sp->batch, one.data, one.len)) < 0)
            log_error("TSA firing not stored: %s (%s)", strerror(-rc), spool_db_error(sp->db));
        buf_fini(&one);
        json_t *j = log_record(&ev.ev[i], rt->cfg.node_id);
        if (j)
            spool_wal_add(sp, j);
    }
    proto_tsa_events_fini(&ev);
}

/* ---- the walk ---- */

struct stored {
    uint64_t seq;
    int64_t expiry_ms;
    uint8_t *run;
    size_t len;
};

struct scan {
    struct stored *v;
    size_t n, cap;
};

static int keep(void *arg, uint64_t seq, const void *run, size_t len)
{
    struct scan *s = arg;
    struct proto_tsa_events ev;
    const char *why = NULL;

    int rc = proto_tsa_events_decode(run, len, &ev, &why);
    if (rc < 0 || ev.count != 1) {
        proto_tsa_events_fini(&ev); /* empty after a refusal */
        log_warn("stored TSA firing %llu undecodable (%s): skipped", (unsigned long long)seq,
                 why ? why : "not one event");
        return 0;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    uint8_t *copy = xmalloc(len);
    memcpy(copy, run, len);
    s->v[s->n++] = (struct stored){seq, ev.ev[0].hdr.expiry_ms, copy, len};
    proto_tsa_events_fini(&ev);
    return 0;
}

static struct buf *new_run(struct spool *sp)
{
    sp->tsa_runs = xrealloc(sp->tsa_runs, (sp->n_tsa_runs + 1) * sizeof(*sp->tsa_runs));
    struct buf *b = &sp->tsa_runs[sp->n_tsa_runs++];
    memset(b, 0, sizeof(*b));
    proto_tsa_events_begin(b);
    return b;
}

void spool_tsa_walk(struct spool *sp)
{
    struct scan s = {0};
    int64_t now = now_ms();
    size_t sent = 0, active = 0;

    int rc = spool_db_tsa_scan(sp->db, keep, &s);
    if (rc < 0)
        log_error("TSA history not read: %s (%s); the scheduler starts without it", strerror(-rc),
                  spool_db_error(sp->db));
    struct buf *run = NULL;
    for (size_t i = 0; i < s.n; i++) {
        bool live = s.v[i].expiry_ms > now;
        if (live || i + SPOOL_TSA_HISTORY >= s.n) {
            struct proto_tsa_events one;
            const char *why;
            if (proto_tsa_events_decode(s.v[i].run, s.v[i].len, &one, &why) == 0) {
                if (!run || proto_tsa_events_count(run) >= PROTO_TSA_EVENTS_MAX || run->len > SPOOL_TSA_RUN_BYTES)
                    run = new_run(sp);
                if (proto_tsa_events_append(run, &one.ev[0]) == 0) {
                    sent++;
                    active += live;
                }
                proto_tsa_events_fini(&one);
            }
        }
        free(s.v[i].run);
    }
    free(s.v);
    if (s.n)
        log_info("start-up walk: %zu TSA firing(s) for the scheduler, %zu still in effect", sent, active);
    spool_tsa_flush(sp);
}

bool spool_tsa_flush(struct spool *sp)
{
    size_t i = 0;

    for (; i < sp->n_tsa_runs; i++) {
        struct buf *b = &sp->tsa_runs[i];
        if (spool_out_run(sp, SCHEDULER, MSG_SPOOL_TSA_STATE, b->data, b->len, proto_tsa_events_count(b)) < 0)
            break;
        buf_fini(b);
    }
    if (i > 0) {
        memmove(sp->tsa_runs, sp->tsa_runs + i, (sp->n_tsa_runs - i) * sizeof(*sp->tsa_runs));
        sp->n_tsa_runs -= i;
    }
    return sp->n_tsa_runs == 0;
}

void spool_tsa_fini(struct spool *sp)
{
    for (size_t i = 0; i < sp->n_tsa_runs; i++)
        buf_fini(&sp->tsa_runs[i]);
    free(sp->tsa_runs);
    sp->tsa_runs = NULL;
    sp->n_tsa_runs = 0;
}
