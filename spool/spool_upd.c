/*
 * spool_upd - attempt results (egress) and fails (scheduler): recipient states in the group commit
 *
 * Each result or fail changes the message's envelope in the open write batch (or deletes the
 * message once every recipient is final). The log records it caused go into the same batch as a
 * write-ahead (spool_wal.c): written to the log only when durable, so a log never claims a state
 * the spool lost, and never lost once the state is committed. It keeps for after the commit the DSN
 * it caused (stored as a new message in the same batch, so the failure and its
 * notice are durable together), and the MSG_SPOOL_MESSAGE_UPDATED owed to the scheduler.
 * Envelopes changed in the open batch are kept decoded (struct spool_env), so a second result for
 * the same message in one pass builds on the first instead of on the committed copy.
 * A recipient already final is never changed again: a repeated result is logged and ignored.
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "spool/spool_dlv.h"
#include "spool/spool_dsn.h"

#define SCHEDULER 1

/* what one failed recipient contributes to a DSN */
struct dsn_item {
    char *addr;
    char *status;
    char *diag;
    const char *mta; /* borrowed from the decoded attempt result, or NULL */
    uint64_t when_ns;
};

/* the facts of one event, shared by its recipients' log records */
struct event_ctx {
    struct msgid id;
    const struct proto_env *rec;
    const struct proto_attempt *att; /* NULL for fails */
    int64_t ts;                      /* unix seconds */
};

bool spool_upd_pending(const struct spool *sp)
{
    return sp->n_upds > 0;
}

void spool_upd_classifier(struct spool *sp)
{
    struct bounce_class *bc = bounce_class_new();
    const struct cfg *c = &sp->rt->cfg;

    for (size_t i = 0; i < c->n_bounce_rules_files; i++) {
        char *err = NULL;
        if (bounce_class_load_file(bc, c->bounce_rules_files[i], &err) < 0)
            log_error("bounce rules %s not loaded: %s", c->bounce_rules_files[i], err ? err : "error");
        free(err);
    }
    bounce_class_free(sp->bc);
    sp->bc = bc;
}

long spool_upd_env_get(struct spool *sp, struct msgid id)
{
    for (size_t i = 0; i < sp->n_envs; i++)
        if (msgid_eq(sp->envs[i].id, id))
            return (long)i;
    struct proto_env rec;
    int rc = spool_db_get_envelope(sp->db, id, &rec);
    if (rc < 0)
        return rc;
    if (sp->n_envs == sp->envs_cap) {
        sp->envs_cap = sp->envs_cap ? sp->envs_cap * 2 : 32;
        sp->envs = xrealloc(sp->envs, sp->envs_cap * sizeof(*sp->envs));
    }
    sp->envs[sp->n_envs] = (struct spool_env){.id = id, .rec = rec};
    return (long)sp->n_envs++;
}

static void upd_push(struct spool *sp, struct msgid id, uint32_t rcpt_first, long env)
{
    if (sp->n_upds == sp->upds_cap) {
        sp->upds_cap = sp->upds_cap ? sp->upds_cap * 2 : 32;
        sp->upds = xrealloc(sp->upds, sp->upds_cap * sizeof(*sp->upds));
    }
    sp->upds[sp->n_upds++] = (struct spool_upd){id, rcpt_first, env};
}

/* log_rcpt - build the record of one recipient's event and keep it for after the commit */
static void log_rcpt(struct spool *sp, const struct event_ctx *ev, enum spool_log_type type, uint32_t index,
                     const struct spool_log_response *resp)
{
    const struct proto_env *rec = ev->rec;
    const struct proto_env_rcpt *r = &rec->rcpts[index];
    char idtext[MSGID_TEXT_SIZE], dom[PROTO_ENV_ADDR_MAX + 1], enh[24] = "";
    struct spool_log_event e = {0};
    const char *const *str = ev->att ? ev->att->str : (const char *const[PROTO_ATT_STRINGS]){0};
    struct spool_log_kv kv[PROTO_ENV_META_MAX];

    msgid_format(ev->id, idtext);
    spool_dlv_domain(r->addr, dom, sizeof(dom));
    char *queue = spool_dlv_queue_name(rec, dom);
    e.id = idtext;
    e.sender = rec->sender;
    e.recipient = r->addr;
    e.queue = queue;
    e.site = str[PROTO_ATT_SITE];
    e.size = rec->body_size;
    e.response = *resp;
    if (str[PROTO_ATT_PEER] && (str[PROTO_ATT_PEER][0] || str[PROTO_ATT_MX][0])) {
        e.peer_name = str[PROTO_ATT_MX];
        e.peer_addr = str[PROTO_ATT_PEER];
    }
    e.egress_source = str[PROTO_ATT_SOURCE];
    e.egress_pool = str[PROTO_ATT_POOL];
    e.tls_cipher = str[PROTO_ATT_TLS_CIPHER];
    e.tls_protocol_version = str[PROTO_ATT_TLS_VERSION];
    e.tls_peer_subject_name = str[PROTO_ATT_TLS_SUBJECT];
    e.timestamp = ev->ts;
    e.created = (int64_t)(rec->created_ms / 1000u);
    e.num_attempts = r->attempts;
    if (type != SPOOL_LOG_DELIVERY && sp->bc) {
        if (resp->enh_class)
            snprintf(enh, sizeof(enh), "%u.%u.%u", resp->enh_class, resp->enh_subject, resp->enh_detail);
        e.bounce_classification = bounce_class_classify(sp->bc, resp->code, enh, resp->content);
    }
    for (uint32_t i = 0; i < rec->meta_count && i < PROTO_ENV_META_MAX; i++)
        kv[i] = (struct spool_log_kv){rec->meta[i].key, rec->meta[i].value};
    e.meta = kv;
    e.meta_count = rec->meta_count < PROTO_ENV_META_MAX ? rec->meta_count : PROTO_ENV_META_MAX;
    spool_wal_event(sp, type, &e);
    free(queue);
}

void spool_upd_log_rcpt(struct spool *sp, struct msgid id, const struct proto_env *rec, enum spool_log_type type,
                        uint32_t index, const struct spool_log_response *resp)
{
    struct event_ctx ev = {id, rec, NULL, (int64_t)(clock_real_ns() / 1000000000u)};
    log_rcpt(sp, &ev, type, index, resp);
}

void spool_upd_owed(struct spool *sp, struct msgid id, uint32_t rcpt_first, long env)
{
    upd_push(sp, id, rcpt_first, env);
}

/* supp_hard - a Bounce of a hard class (not a block, policy or rate answer): the recipient is suppressed */
static void supp_hard(struct spool *sp, struct msgid id, const struct proto_env *rec, uint32_t index,
                      const struct spool_log_response *resp)
{
    const struct cfg *c = &sp->rt->cfg;
    char enh[24] = "", idtext[MSGID_TEXT_SIZE];
    if (!c->supp_enabled || !c->supp_auto_hard_bounce || !sp->bc || resp->code < 500 || resp->code > 599)
        return;
    if (resp->enh_class)
        snprintf(enh, sizeof(enh), "%u.%u.%u", resp->enh_class, resp->enh_subject, resp->enh_detail);
    if (!cfg_supp_hard(c, bounce_class_classify(sp->bc, resp->code, enh, resp->content)))
        return;
    const char *tenant = proto_env_meta_get(rec, PROTO_ENV_META_TENANT);
    msgid_format(id, idtext);
    int rc = spool_supp_add(sp, tenant && supp_valid_tenant(tenant, strlen(tenant)) ? tenant : "",
                            rec->rcpts[index].addr, SPOOL_SUPP_HARD_BOUNCE, idtext, 0);
    if (rc < 0 && rc != -ENOTSUP)
        log_warn("%s: recipient %u not added to the suppression list (%s)", idtext, index, strerror(-rc));
}

static void dsn_item_add(struct dsn_item **items, size_t *n, const char *addr, const struct spool_log_response *r,
                         const char *mta, int64_t ts)
{
    *items = xrealloc(*items, (*n + 1) * sizeof(**items));
    struct dsn_item *d = &(*items)[(*n)++];
    d->addr = xstrdup(addr);
    d->status = r->enh_class ? xasprintf("%u.%u.%u", r->enh_class, r->enh_subject, r->enh_detail) : NULL;
    if (r->code)
        d->diag = r->enh_class ? xasprintf("%d %s %s", r->code, d->status, r->content ? r->content : "")
                               : xasprintf("%d %s", r->code, r->content ? r->content : "");
    else
        d->diag = NULL;
    d->mta = mta && mta[0] ? mta : NULL;
    d->when_ns = ts > 0 ? (uint64_t)ts * 1000000000u : 0;
}

static void dsn_items_free(struct dsn_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].addr);
        free(items[i].status);
        free(items[i].diag);
    }
    free(items);
}

/* header_value - the first `name:` field of the header section, unfolded lines only; heap or NULL */
static char *header_value(const char *msg, size_t len, const char *name)
{
    size_t nl = strlen(name), i = 0;

    while (i < len) {
        const char *line = msg + i;
        const char *end = memchr(line, '\n', len - i);
        size_t ll = end ? (size_t)(end - line) : len - i;
        if (ll == 0 || (ll == 1 && line[0] == '\r'))
            return NULL; /* end of the header section */
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            size_t vl = ll - nl - 1;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            return vl ? xstrndup(v, vl) : NULL;
        }
        i += ll + 1;
    }
    return NULL;
}

/* dsn_reception - the DSN's Reception record, in the batch that stores the DSN */
static void dsn_reception(struct spool *sp, const struct spool_dsn_msg *dm)
{
    char idtext[MSGID_TEXT_SIZE], dom[PROTO_ENV_ADDR_MAX + 1];
    struct spool_log_event e = {0};

    msgid_format(dm->id, idtext);
    spool_dlv_domain(dm->addr, dom, sizeof(dom));
    e.id = idtext;
    e.sender = "";
    e.recipient = dm->addr;
    e.queue = dom;
    e.size = dm->rec.body_size;
    e.created = (int64_t)(dm->rec.created_ms / 1000u);
    spool_wal_event(sp, SPOOL_LOG_RECEPTION, &e);
}

/* make_dsn - one DSN for the failed recipients of one event, stored as a new message in the batch */
static void make_dsn(struct spool *sp, struct msgid id, const struct proto_env *orig, const struct dsn_item *items,
                     size_t n)
{
    const struct cfg *c = &sp->rt->cfg;
    struct buf body = {0};
    char idtext[MSGID_TEXT_SIZE];
    char *out = NULL;
    size_t out_len = 0;

    msgid_format(id, idtext);
    /* only the header section is copied into the DSN; a body that cannot be read leaves part 3 empty */
    if (spool_db_get_body(sp->db, id, &body) < 0)
        body.len = 0;
    char *message_id = body.len ? header_value((const char *)body.data, body.len, "Message-ID") : NULL;
    struct spool_dsn_rcpt *r = xcalloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++)
        r[i] = (struct spool_dsn_rcpt){.final_recipient = items[i].addr, .action = SPOOL_DSN_FAILED,
                                       .status = items[i].status, .remote_mta = items[i].mta,
                                       .diagnostic = items[i].diag, .last_attempt_ns = items[i].when_ns};
    char *pm = c->dsn_postmaster && c->dsn_postmaster[0] ? xstrdup(c->dsn_postmaster)
                                                          : xasprintf("MAILER-DAEMON@%s", c->hostname);
    struct spool_dsn_input in = {
        .reporting_mta = c->hostname,
        .postmaster = pm,
        .sender = orig->sender,
        .message_id = message_id,
        .queue_id = idtext,
        .arrival_ns = orig->created_ms * 1000000u,
        .now_ns = clock_real_ns(),
        .message = body.len ? (const char *)body.data : NULL,
        .message_len = body.len,
        .rcpts = r,
        .n_rcpts = n,
    };
    int rc = spool_dsn_build(&in, &out, &out_len);
    free(pm);
    free(r);
    free(message_id);
    buf_fini(&body);
    if (rc < 0) {
        log_warn("DSN for %s to <%s> not built (%d)", idtext, orig->sender, rc);
        return;
    }
    struct spool_dsn_msg *dm = xcalloc(1, sizeof(*dm));
    dm->id = msgid_generate();
    dm->addr = xstrdup(orig->sender);
    dm->rcpt = (struct proto_env_rcpt){.addr = dm->addr, .state = PROTO_RCPT_QUEUED};
    dm->rec = (struct proto_env){.version = PROTO_ENV_VERSION, .created_ms = clock_real_ns() / 1000000u,
                                 .body_size = out_len, .sender = "", .rcpt_count = 1, .rcpts = &dm->rcpt};
    rc = spool_db_batch_store(sp->batch, dm->id, &dm->rec, out, out_len);
    free(out);
    if (rc < 0) {
        log_warn("DSN for %s to <%s> not stored (%d)", idtext, orig->sender, rc);
        free(dm->addr);
        free(dm);
        return;
    }
    dsn_reception(sp, dm);
    if (sp->n_dsns == sp->dsns_cap) {
        sp->dsns_cap = sp->dsns_cap ? sp->dsns_cap * 2 : 16;
        sp->dsns = xrealloc(sp->dsns, sp->dsns_cap * sizeof(*sp->dsns));
    }
    sp->dsns[sp->n_dsns++] = dm;
}

/* dsn_admit - whether the event may make a DSN ([dsn] max_per_message, max_per_sender); when it may, the
 * message's count goes up in its envelope (written by write_env with the recipients' new states) */
static bool dsn_admit(struct spool *sp, struct spool_env *e)
{
    const struct cfg *c = &sp->rt->cfg;
    uint32_t sent = spool_dsn_meta(&e->rec);
    if (!spool_dsn_admit(&sp->dsn_limit, e->rec.sender, sent, c->dsn_max_per_message, c->dsn_max_per_sender,
                         CLOCK_MS(c->dsn_sender_window_ms), clock_mono_ns())) {
        char idtext[MSGID_TEXT_SIZE];
        msgid_format(e->id, idtext);
        log_info("no DSN for %s to <%s>: over [dsn] max_per_message (%u sent) or max_per_sender", idtext,
                 e->rec.sender, sent);
        return false;
    }
    char n[12];
    snprintf(n, sizeof(n), "%u", sent + 1);
    /* no room to count it (64 metadata pairs): the DSN still goes, the per-sender bound still holds */
    spool_env_set_meta(&e->rec, SPOOL_DSN_META, n);
    return true;
}

/* spool_upd_write_env - the changed envelope into the batch; the message leaves the spool with its last recipient */
void spool_upd_write_env(struct spool *sp, struct spool_env *e)
{
    char idtext[MSGID_TEXT_SIZE];
    int rc;

    if (proto_env_all_final(&e->rec)) {
        rc = spool_db_batch_delete(sp->batch, e->id);
        if (rc == 0)
            e->gone = true;
    } else {
        rc = spool_db_batch_update(sp->batch, e->id, &e->rec);
    }
    if (rc < 0) {
        msgid_format(e->id, idtext);
        log_error("update of %s not written to the batch: %d (%s)", idtext, rc, spool_db_error(sp->db));
    }
}

/* reply_of - the log's response for one attempt recipient; a missing reply gets a synthesised one */
static void reply_of(const struct proto_attempt_rcpt *r, const char *text, char *buf, size_t cap,
                     struct spool_log_response *out)
{
    snprintf(buf, cap, "%.*s", (int)r->text_len, text);
    *out = (struct spool_log_response){.code = r->code, .enh_class = r->enh_class, .enh_subject = r->enh_subject,
                                       .enh_detail = r->enh_detail, .content = buf,
                                       .command = spool_dlv_command_name(r->command)};
    if (r->code != 0)
        return;
    /* no reply at all (connect failure, timeout): the text says why; codes as KumoMTA synthesises them */
    if (r->outcome == PROTO_OUT_DELIVERED)
        *out = (struct spool_log_response){250, 2, 0, 0, buf, out->command};
    else if (r->outcome == PROTO_OUT_TRANSIENT)
        *out = (struct spool_log_response){451, 4, 4, 1, buf, out->command};
    else
        *out = (struct spool_log_response){550, 5, 4, 4, buf, out->command};
}

void spool_upd_attempt(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_batch *b = &rec->body.batch;
    struct proto_attempt a;
    const char *why = NULL;
    char idtext[MSGID_TEXT_SIZE];

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_EGRESS) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("attempt result from instance %u, which is not an egress; ignored", from);
        return;
    }
    char *p = shm_arena_ptr(rt->seg.arena, b->arena_off, b->len);
    if (!p) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("attempt result from egress %u: arena range invalid; ignored", from);
        return;
    }
    /* the decoder copies the run: it goes back to the arena at once and nothing reads it again */
    int rc = proto_dlv_attempt_decode(p, b->len, &a, &why);
    shm_arena_free(rt->seg.arena, b->arena_off);
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("attempt result from egress %u refused: %s", from, why);
        return;
    }
    struct msgid id = {a.hdr.msg_id_hi, a.hdr.msg_id_lo};
    msgid_format(id, idtext);
    long ei = spool_upd_env_get(sp, id);
    if (ei == -ENOENT || (ei >= 0 && sp->envs[ei].gone)) {
        log_info("attempt result for %s, which is no longer in the spool: ignored (duplicate)", idtext);
        upd_push(sp, id, a.hdr.rcpt_first, ei >= 0 ? ei : -1);
        proto_dlv_attempt_fini(&a);
        return;
    }
    if (ei < 0) {
        log_error("attempt result for %s: envelope unreadable (%s); result not recorded", idtext,
                  spool_db_error(sp->db));
        proto_dlv_attempt_fini(&a);
        return;
    }
    struct spool_env *e = &sp->envs[ei];
    if (spool_dlv_attempt_indexes(&a, e->rec.rcpt_count) < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("attempt result for %s refused: recipient index out of range", idtext);
        proto_dlv_attempt_fini(&a);
        return;
    }
    struct event_ctx ev = {id, &e->rec, &a, a.hdr.timestamp_ms > 0 ? a.hdr.timestamp_ms / 1000 : 0};
    bool changed = false, dsn = spool_dlv_wants_dsn(rt->cfg.dsn_enabled, e->rec.sender);
    struct dsn_item *items = NULL;
    size_t n_items = 0;
    const char *mx = a.str[PROTO_ATT_MX];
    int tsa = -1; /* the first failed recipient: its reply goes to the scheduler's automation */
    for (uint16_t i = 0; i < a.hdr.n_rcpt; i++) {
        const struct proto_attempt_rcpt r = a.rcpt[i];
        char buf[PROTO_DLV_STRING_MAX + 1];
        struct spool_log_response resp;
        if (spool_dlv_apply(&e->rec, r.index, r.outcome) <= 0) {
            log_warn("attempt result for %s recipient %u, which is already %s: ignored (duplicate)", idtext,
                     r.index, proto_env_state_name(e->rec.rcpts[r.index].state));
            continue;
        }
        changed = true;
        reply_of(&r, a.text[i], buf, sizeof(buf), &resp);
        enum spool_log_type type = r.outcome == PROTO_OUT_DELIVERED   ? SPOOL_LOG_DELIVERY
                                   : r.outcome == PROTO_OUT_TRANSIENT ? SPOOL_LOG_TRANSIENT_FAILURE
                                                                      : SPOOL_LOG_BOUNCE;
        log_rcpt(sp, &ev, type, r.index, &resp);
        if (type == SPOOL_LOG_BOUNCE)
            supp_hard(sp, id, &e->rec, r.index, &resp);
        if (type != SPOOL_LOG_DELIVERY && tsa < 0)
            tsa = i;
        if (type == SPOOL_LOG_BOUNCE && dsn)
            dsn_item_add(&items, &n_items, e->rec.rcpts[r.index].addr, &resp, mx, ev.ts);
    }
    if (tsa >= 0)
        spool_tsa_attempt(sp, &e->rec, &a, (uint16_t)tsa);
    bool send_dsn = n_items > 0 && dsn_admit(sp, e);
    if (changed) {
        /* our clock, not the egress's stamp: a restarted scheduler retries from it (proto_env.h) */
        e->rec.last_attempt_ms = clock_real_ns() / 1000000u;
        spool_upd_write_env(sp, e);
    }
    if (send_dsn)
        make_dsn(sp, id, &e->rec, items, n_items);
    dsn_items_free(items, n_items);
    upd_push(sp, id, a.hdr.rcpt_first, ei);
    proto_dlv_attempt_fini(&a);
}

void spool_upd_fail(struct spool *sp, unsigned from, const struct proto_rec *rec)
{
    struct role_rt *rt = sp->rt;
    const struct proto_fail *f = &rec->body.fail;
    struct msgid id = {f->msg_id_hi, f->msg_id_lo};
    char idtext[MSGID_TEXT_SIZE];

    if (shm_segment_role(&rt->seg, from) != PROTO_NODE_ROLE_SCHEDULER ||
        (f->kind != PROTO_FAIL_EXPIRE && f->kind != PROTO_FAIL_DNS_BOUNCE && f->kind != PROTO_FAIL_ADMIN_BOUNCE)) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("fail request from instance %u of kind %u refused", from, f->kind);
        return;
    }
    msgid_format(id, idtext);
    long ei = spool_upd_env_get(sp, id);
    if (ei == -ENOENT || (ei >= 0 && sp->envs[ei].gone)) {
        upd_push(sp, id, f->rcpt_first, ei >= 0 ? ei : -1);
        return;
    }
    if (ei < 0) {
        log_error("fail of %s: envelope unreadable (%s)", idtext, spool_db_error(sp->db));
        return;
    }
    struct spool_env *e = &sp->envs[ei];
    if (f->rcpt_first >= e->rec.rcpt_count) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("fail of %s refused: recipient index %u out of range", idtext, f->rcpt_first);
        return;
    }
    bool expire = f->kind == PROTO_FAIL_EXPIRE, admin = f->kind == PROTO_FAIL_ADMIN_BOUNCE;
    struct spool_dlv_reply rp;
    if (expire)
        spool_dlv_expire_reply(&rp);
    else if (admin)
        spool_dlv_admin_reply(f->reason, &rp);
    else
        spool_dlv_dns_reply(f->reason, &rp);
    struct spool_log_response resp = {rp.code, rp.enh_class, rp.enh_subject, rp.enh_detail, rp.text, NULL};
    uint8_t *mark = xcalloc(e->rec.rcpt_count, 1);
    uint32_t n = spool_dlv_fail(&e->rec, f->rcpt_first, expire ? PROTO_RCPT_EXPIRED : PROTO_RCPT_BOUNCED, mark);
    struct event_ctx ev = {id, &e->rec, NULL, (int64_t)(clock_real_ns() / 1000000000u)};
    bool dsn = spool_dlv_wants_dsn(rt->cfg.dsn_enabled, e->rec.sender);
    struct dsn_item *items = NULL;
    size_t n_items = 0;
    for (uint32_t i = 0; i < e->rec.rcpt_count && n > 0; i++) {
        if (!mark[i])
            continue;
        log_rcpt(sp, &ev, expire ? SPOOL_LOG_EXPIRATION : admin ? SPOOL_LOG_ADMIN_BOUNCE : SPOOL_LOG_BOUNCE, i, &resp);
        if (!expire && !admin) /* the scheduler's definite DNS answer (no such domain, null MX): BadDomain */
            supp_hard(sp, id, &e->rec, i, &resp);
        if (dsn)
            dsn_item_add(&items, &n_items, e->rec.rcpts[i].addr, &resp, NULL, ev.ts);
    }
    free(mark);
    bool send_dsn = n_items > 0 && dsn_admit(sp, e);
    if (n > 0)
        spool_upd_write_env(sp, e);
    if (send_dsn)
        make_dsn(sp, id, &e->rec, items, n_items);
    dsn_items_free(items, n_items);
    upd_push(sp, id, f->rcpt_first, ei);
}

/* group_state - queued recipients and most attempts in the group (any state: the message may be gone) */
static uint32_t group_state(const struct proto_env *rec, uint32_t first, uint32_t *attempts)
{
    uint32_t pending = spool_dlv_group(rec, first, NULL), att = 0;

    for (uint32_t i = 0; first < rec->rcpt_count && i < rec->rcpt_count; i++)
        if (spool_dlv_same_domain(rec->rcpts[i].addr, rec->rcpts[first].addr) && rec->rcpts[i].attempts > att)
            att = rec->rcpts[i].attempts;
    *attempts = att;
    return pending;
}

static void send_updated(struct spool *sp, const struct spool_upd *u, const struct proto_env *rec, bool gone)
{
    struct proto_rec r = {.type = MSG_SPOOL_MESSAGE_UPDATED};
    uint32_t att = 0, pending = 0;

    if (rec)
        pending = group_state(rec, u->rcpt_first, &att);
    r.body.updated.msg_id_hi = u->id.hi;
    r.body.updated.msg_id_lo = u->id.lo;
    r.body.updated.rcpt_first = u->rcpt_first;
    r.body.updated.pending = gone ? 0 : pending;
    r.body.updated.attempts = att;
    r.body.updated.flags = gone ? PROTO_UPDATED_F_GONE : 0;
    spool_out_send(sp, SCHEDULER, &r);
}

/* nothing of the batch happened: tell the scheduler the state that is on disk */
static void send_on_disk(struct spool *sp, const struct spool_upd *u)
{
    struct proto_env old;
    int g = spool_db_get_envelope(sp->db, u->id, &old);
    if (g == 0) {
        send_updated(sp, u, &old, false);
        proto_env_fini(&old);
    } else if (g == -ENOENT) {
        send_updated(sp, u, NULL, true);
    }
}

void spool_upd_recovered(struct spool *sp)
{
    for (size_t i = 0; i < sp->n_upd_redo; i++)
        send_on_disk(sp, &sp->upd_redo[i]);
    sp->n_upd_redo = 0;
}

void spool_upd_committed(struct spool *sp, int rc)
{
    for (size_t i = 0; i < sp->n_dsns; i++) {
        if (rc == 0)
            spool_ann_add(sp, sp->dsns[i]->id, &sp->dsns[i]->rec);
        free(sp->dsns[i]->addr);
        free(sp->dsns[i]);
    }
    sp->n_dsns = 0;
    for (size_t i = 0; i < sp->n_upds; i++) {
        const struct spool_upd *u = &sp->upds[i];
        if (u->env < 0) {
            send_updated(sp, u, NULL, true);
        } else if (rc == 0) {
            const struct spool_env *e = &sp->envs[u->env];
            send_updated(sp, u, &e->rec, e->gone);
        } else if (sp->db && spool_db_needs_recover(sp->db)) {
            /*
             * The database is down until the reopen: told now, the scheduler would find the recipients
             * it just let go of still queued, have the spool announce everything again, deliver again,
             * and fail again, in a loop as long as the fault. It is told once the reopen is done.
             */
            if (sp->n_upd_redo == sp->upd_redo_cap) {
                sp->upd_redo_cap = sp->upd_redo_cap ? sp->upd_redo_cap * 2 : 64;
                sp->upd_redo = xrealloc(sp->upd_redo, sp->upd_redo_cap * sizeof(*sp->upd_redo));
            }
            sp->upd_redo[sp->n_upd_redo++] = *u;
        } else {
            send_on_disk(sp, u);
        }
    }
    sp->n_upds = 0;
    for (size_t i = 0; i < sp->n_envs; i++)
        proto_env_fini(&sp->envs[i].rec);
    sp->n_envs = 0;
}

void spool_upd_fini(struct spool *sp)
{
    spool_upd_committed(sp, -ECANCELED);
    free(sp->dsns);
    free(sp->upds);
    free(sp->upd_redo);
    free(sp->envs);
    spool_dsn_limit_fini(&sp->dsn_limit);
    bounce_class_free(sp->bc);
    sp->bc = NULL;
}
