/*
 * egress_job - a delivery attempt's life, transactions and report (contract in egress_job.h)
 */
#include "egress/egress_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/mta_sts.h"
#include "egress/egress_attempt.h"

static uint32_t instance_gen(struct egress *eg, int inst)
{
    return atomic_load(&eg->rt->seg.inst[inst].generation);
}

/* ---- job life ---- */

void egress_job_free_now(struct egress_job *j)
{
    egress_attempt_msg_fini(&j->msg);
    free(j->wire);
    for (size_t i = 0; i < j->n_targets; i++) {
        free(j->targets[i].host);
        free(j->targets[i].addr);
    }
    free(j->targets);
    free(j->domain);
    free(j->idx);
    free(j->res);
    free(j->accepted);
    free(j->retry);
    free(j->sent);
    egress_path_put(j->pc);
    free(j->txn_map);
    free(j->txn_addrs);
    free(j->site);
    free(j);
}

static void release_run(struct egress_job *j)
{
    free(j->wire);
    j->wire = NULL;
    if (j->have_msg) {
        egress_attempt_msg_fini(&j->msg);
        j->have_msg = false;
    }
    if (j->have_run) {
        shm_arena_free(j->eg->rt->seg.arena, j->run_off);
        j->have_run = false;
    }
}

void egress_job_unpin(struct egress_job *j)
{
    if (!j->wire) {
        j->wire = xmalloc(j->msg.body_len ? j->msg.body_len : 1);
        memcpy(j->wire, j->msg.body, j->msg.body_len);
        j->wire_len = j->msg.body_len;
    }
    j->msg.body = NULL; /* it pointed into the run */
    j->msg.body_len = 0;
    if (j->have_run) {
        shm_arena_free(j->eg->rt->seg.arena, j->run_off);
        j->have_run = false;
    }
}

void egress_job_free(struct egress_job *j)
{
    struct egress *eg = j->eg;

    release_run(j);
    if (j->prev)
        j->prev->next = j->next;
    else
        eg->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    eg->n_jobs--;
    if (j->lease && j->lease->job == j)
        j->lease->job = NULL;
    j->lease = NULL;
    if (j->dns_pending) {
        j->zombie = true;
        j->prev = NULL;
        j->next = eg->zombies;
        if (eg->zombies)
            eg->zombies->prev = j;
        eg->zombies = j;
        return;
    }
    egress_job_free_now(j);
}

bool egress_job_dns_back(struct egress_job *j)
{
    j->dns_pending--;
    if (!j->zombie)
        return true;
    if (!j->dns_pending) {
        struct egress *eg = j->eg;
        if (j->prev)
            j->prev->next = j->next;
        else
            eg->zombies = j->next;
        if (j->next)
            j->next->prev = j->prev;
        egress_job_free_now(j);
    }
    return false;
}

void egress_job_load(struct egress_job *j)
{
    struct egress *eg = j->eg;
    int spool = egress_worker_spool_instance(eg);
    struct proto_rec r = {.type = MSG_EGRESS_MESSAGE_LOAD};

    j->token = ++eg->next_token;
    r.body.load.token = j->token;
    r.body.load.msg_id_hi = j->d.msg_id_hi;
    r.body.load.msg_id_lo = j->d.msg_id_lo;
    if (spool >= 0) {
        r.dst_gen = instance_gen(eg, spool);
        if (role_rt_send(eg->rt, (unsigned)spool, &r) == 0) {
            j->state = JOB_LOADING;
            j->load_sent_ns = clock_mono_ns();
            return;
        }
    }
    j->state = JOB_LOAD;
    j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
}

/* ---- results ---- */

void egress_job_set_all(struct egress_job *j, uint8_t outcome, uint8_t cmd, int code, const char *enh,
                        const char *text)
{
    for (size_t i = 0; i < j->n; i++)
        if (!j->res[i].outcome)
            egress_attempt_rcpt_set(&j->res[i], outcome, cmd, code, enh, text);
}

void egress_job_last_error(struct egress_job *j, int code, const char *enh, const char *text)
{
    j->last_code = code;
    snprintf(j->last_enh, sizeof(j->last_enh), "%s", enh ? enh : "");
    snprintf(j->last_text, sizeof(j->last_text), "%s", text ? text : "");
}

/* ---- transactions ---- */

void egress_job_trace_names(struct egress_job *j)
{
    const struct cfg *cfg = &j->eg->rt->cfg;
    const char *src = j->d.source < cfg->n_sources ? cfg->sources[j->d.source].name : "";
    const char *site = j->pc && j->pc->site[0] ? j->pc->site : j->site ? j->site : "";
    if (j->lease && j->lease->conn)
        egress_conn_trace_names(j->lease->conn, j->domain, site, src);
}

void egress_job_txn(struct egress_job *j)
{
    const struct cfg *cfg = &j->eg->rt->cfg;
    size_t n = 0, max = j->pc->h.max_recipients_per_batch;
    bool fresh = false;
    /* [dsn] verp: the return path names one recipient, so each transaction has one */
    bool verp = cfg->dsn_verp && j->msg.env.sender[0] != '\0';
    if (verp)
        max = 1;

    /* recipients not yet sent go first, in batches; then the ones a 452 sent back */
    for (size_t i = 0; i < j->n && !fresh; i++)
        fresh = !j->res[i].outcome && !j->sent[i];
    for (size_t i = 0; i < j->n && n < max; i++)
        if (!j->res[i].outcome && (!fresh || !j->sent[i])) {
            j->txn_map[n] = i;
            j->txn_addrs[n] = j->msg.env.rcpts[j->idx[i]].addr;
            j->retry[i] = 0;
            j->accepted[i] = 0;
            j->sent[i] = 1;
            n++;
        }
    if (n == 0) {
        egress_job_finish(j);
        return;
    }
    j->txn_n = n;
    j->n_txn++;
    j->txn_progress = false;
    unsigned ef = j->msg.env.flags;
    unsigned flags = ((ef & PROTO_ENV_F_SMTPUTF8) ? EGRESS_SMTP_SEND_SMTPUTF8 : 0) |
                     ((ef & PROTO_ENV_F_SCANNED) ? EGRESS_SMTP_SEND_SCANNED : 0) |
                     ((ef & PROTO_ENV_F_OCTETS_8BIT) ? EGRESS_SMTP_SEND_8BIT : 0);
    egress_job_trace_names(j); /* a reused connection now delivers for this message's domain */
    const char *sender = j->msg.env.sender;
    if (verp) {
        struct msgid id = {j->d.msg_id_hi, j->d.msg_id_lo};
        const char *secret = cfg->dsn_verp_secret;
        if (verp_encode(secret, strlen(secret), id, j->idx[j->txn_map[0]], cfg->dsn_verp_domain, j->verp_from,
                        sizeof(j->verp_from)) == 0)
            sender = j->verp_from;
        else
            log_warn("VERP return path for recipient %u did not fit: the envelope sender is used",
                     (unsigned)j->idx[j->txn_map[0]]);
    }
    int rc = egress_conn_send(j->lease->conn, sender, j->txn_addrs, n, j->wire, j->wire_len, flags);
    if (rc < 0) {
        char text[96];
        snprintf(text, sizeof(text), "transaction could not start: %s", strerror(-rc));
        egress_job_set_all(j, PROTO_OUT_TRANSIENT, PROTO_CMD_CONNECT, 0, "", text);
        j->conn_failed = true;
        egress_job_finish(j);
    }
}

void egress_job_on_rcpt(struct egress_job *j, const struct egress_smtp_event *ev)
{
    if (ev->rcpt >= j->txn_n)
        return;
    size_t i = j->txn_map[ev->rcpt];
    struct egress_rcpt_res *r = &j->res[i];
    switch (ev->result) {
    case EGRESS_SMTP_OK:
        j->accepted[i] = 1;
        j->txn_progress = true;
        break;
    case EGRESS_SMTP_RETRY_NEW_TXN:
        j->retry[i] = 1;
        snprintf(r->text, sizeof(r->text), "%s", ev->text);
        snprintf(r->enhanced, sizeof(r->enhanced), "%s", ev->enhanced);
        r->code = (uint16_t)ev->code;
        break;
    case EGRESS_SMTP_PERMFAIL:
        egress_attempt_rcpt_set(r, PROTO_OUT_BOUNCE, PROTO_CMD_RCPT, ev->code, ev->enhanced, ev->text);
        j->txn_progress = true;
        break;
    default:
        egress_attempt_rcpt_set(r, PROTO_OUT_TRANSIENT, PROTO_CMD_RCPT, ev->code, ev->enhanced, ev->text);
        j->txn_progress = true;
        break;
    }
}

void egress_job_on_message_done(struct egress_job *j, const struct egress_smtp_event *ev)
{
    bool retry_left = false, unsent_left = false;

    for (size_t k = 0; k < j->txn_n; k++) {
        size_t i = j->txn_map[k];
        struct egress_rcpt_res *r = &j->res[i];
        if (j->accepted[i] && !r->outcome) {
            uint8_t out = ev->result == EGRESS_SMTP_OK         ? PROTO_OUT_DELIVERED
                          : ev->result == EGRESS_SMTP_PERMFAIL ? PROTO_OUT_BOUNCE
                                                               : PROTO_OUT_TRANSIENT;
            egress_attempt_rcpt_set(r, out, PROTO_CMD_DATA, ev->code, ev->enhanced, ev->text);
        } else if (r->outcome && ev->at_mail && r->code == ev->code && strcmp(r->text, ev->text) == 0) {
            /* the transaction failed at MAIL: every recipient carries MAIL's reply (a 421 to a RCPT
             * carries the same reply to every recipient too, yet it is not MAIL's) */
            r->command = PROTO_CMD_MAIL;
        }
    }
    for (size_t i = 0; i < j->n; i++) {
        unsent_left |= !j->res[i].outcome && !j->sent[i];
        retry_left |= !j->res[i].outcome && j->retry[i];
    }
    /* the next batch of max_recipients_per_batch; once every recipient went, the 452 retries */
    if (!j->conn_failed && unsent_left) {
        egress_job_txn(j);
        return;
    }
    if (retry_left && j->txn_progress && j->n_retry_txn < EGRESS_MAX_TXN && !j->conn_failed) {
        j->n_retry_txn++;
        egress_job_txn(j);
        return;
    }
    for (size_t i = 0; i < j->n; i++)
        if (!j->res[i].outcome)
            egress_attempt_rcpt_set(&j->res[i], PROTO_OUT_TRANSIENT, PROTO_CMD_RCPT, j->res[i].code, j->res[i].enhanced,
                            j->res[i].text[0] ? j->res[i].text : "not attempted");
    egress_job_finish(j);
}

/* ---- report ---- */

static const char *pool_name(const struct cfg *cfg, uint16_t source)
{
    const char *name = "";
    unsigned hits = 0;
    for (size_t p = 0; p < cfg->n_pools; p++)
        for (uint32_t k = 0; k < cfg->pools[p].n; k++)
            if (cfg->pools[p].source[k] == source) {
                name = cfg->pools[p].name;
                hits++;
            }
    /* the DELIVER names the source, not the pool: only an unambiguous pool is reported */
    return hits == 1 ? name : "";
}

/* decide_lease - once, before the DONE: keep the connection idle, or close it and free the lease */
static void decide_lease(struct egress_job *j)
{
    struct egress_lease *l = j->lease;

    if (!l) {
        j->done_flags |= PROTO_DONE_F_LEASE_CLOSED;
        return;
    }
    if (l->conn && ((j->d.flags & PROTO_DELIVER_F_LAST) || j->conn_failed || j->eg->draining || l->aborted ||
                    !egress_conn_idle(l->conn)))
        egress_lease_drop_conn(l);
    if (!l->conn) {
        j->done_flags |= PROTO_DONE_F_LEASE_CLOSED;
        egress_lease_remove(l);
        return;
    }
    l->job = NULL;
    l->idle_since_ns = clock_mono_ns();
    l->idle_timeout_ns = CLOCK_MS(j->pc->h.idle_timeout_ms);
    j->lease = NULL;
}

void egress_job_finish(struct egress_job *j)
{
    if (j->state == JOB_REPORT || j->state == JOB_DONE_SEND)
        return;
    release_run(j);
    j->state = JOB_REPORT;
    egress_job_report(j);
}

/*
 * sts_testing_report - RFC 8461 testing mode: the delivery goes on as before, and what enforce would have
 * refused is said in one log line per attempt (an MX host outside the patterns is reported when the
 * targets are chosen, egress_route.c). Verified means a TLS session on a verifying context (Opportunistic
 * or Required); a RequiredInsecure/OpportunisticInsecure session or plaintext is not.
 */
static void sts_testing_report(const struct egress_job *j)
{
    if (!j->pc || j->pc->h.mta_sts != MTA_STS_MODE_TESTING || !j->mx[0])
        return;
    unsigned t = j->pc->h.enable_tls;
    bool verifying = t == PROTO_PATH_TLS_OPPORTUNISTIC || t == PROTO_PATH_TLS_REQUIRED;
    if (j->tls.version[0] && verifying)
        return;
    log_warn("mta-sts testing: domain %s: MX %s (%s): %s; a policy in enforce mode would have refused this "
             "connection",
             j->domain, j->mx, j->peer[0] ? j->peer : "-",
             !j->tls.version[0] ? "no TLS (plaintext)" : "TLS certificate not verified (enable_tls is an Insecure mode)");
}

void egress_job_report(struct egress_job *j)
{
    struct egress *eg = j->eg;
    const struct cfg *cfg = &eg->rt->cfg;
    int spool = egress_worker_spool_instance(eg);

    if (j->n == 0) {
        decide_lease(j);
        j->state = JOB_DONE_SEND;
        egress_job_send_done(j);
        return;
    }
    const char *src = j->d.source < cfg->n_sources ? cfg->sources[j->d.source].name : "";
    if (!j->sts_reported)
        sts_testing_report(j); /* once, not again when the report waits for arena room */
    j->sts_reported = true;
    struct egress_attempt a = {
        .msg_id_hi = j->d.msg_id_hi,
        .msg_id_lo = j->d.msg_id_lo,
        .timestamp_ms = (int64_t)(clock_real_ns() / 1000000u),
        .rcpt_first = j->d.rcpt_first,
        /* the site as the scheduler names the path (its ready queue), so records, TSA and queues agree */
        .str = {j->peer, j->pc && j->pc->site[0] ? j->pc->site : j->site ? j->site : "", src, pool_name(cfg, j->d.source), j->mx, j->tls.cipher,
                j->tls.version, j->tls.subject},
        .n_rcpt = j->n,
        .rcpt = j->res,
    };
    size_t len = egress_attempt_size(&a);
    uint64_t off;
    if (spool < 0 || shm_arena_alloc(eg->rt->seg.arena, len, (uint16_t)eg->rt->self_idx, eg->rt->gen, &off) < 0) {
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    void *p = shm_arena_ptr(eg->rt->seg.arena, off, len);
    if (!p || egress_attempt_encode(&a, p, len) < 0)
        panic("attempt result of %zu bytes did not encode", len);
    uint32_t gen = instance_gen(eg, spool);
    shm_arena_give(eg->rt->seg.arena, off, (uint16_t)spool, gen);
    struct proto_rec r = {.type = MSG_EGRESS_ATTEMPT_RESULT, .dst_gen = gen};
    r.body.batch.arena_off = off;
    r.body.batch.len = len;
    r.body.batch.count = (uint32_t)j->n;
    if (role_rt_send(eg->rt, (unsigned)spool, &r) < 0) {
        shm_arena_free(eg->rt->seg.arena, off);
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    decide_lease(j);
    j->state = JOB_DONE_SEND;
    egress_job_send_done(j);
}

void egress_job_send_done(struct egress_job *j)
{
    struct proto_rec r = {.type = MSG_EGRESS_DELIVERY_DONE};
    uint16_t cnt[4] = {0};

    for (size_t i = 0; i < j->n; i++)
        if (j->res[i].outcome <= PROTO_OUT_BOUNCE)
            cnt[j->res[i].outcome]++;
    r.body.done.msg_id_hi = j->d.msg_id_hi;
    r.body.done.msg_id_lo = j->d.msg_id_lo;
    r.body.done.lease = j->d.lease;
    r.body.done.lease_gen = j->d.lease_gen;
    r.body.done.rcpt_first = j->d.rcpt_first;
    r.body.done.delivered = cnt[PROTO_OUT_DELIVERED];
    r.body.done.transient = cnt[PROTO_OUT_TRANSIENT];
    r.body.done.bounced = cnt[PROTO_OUT_BOUNCE];
    r.body.done.flags = j->done_flags;
    if (role_rt_send(j->eg->rt, j->sched, &r) < 0) {
        j->retry_at_ns = clock_mono_ns() + EGRESS_RETRY_NS;
        return;
    }
    log_debug("attempt %u on lease %u: %u delivered, %u transient, %u bounced%s", j->d.attempt, j->d.lease,
              cnt[PROTO_OUT_DELIVERED], cnt[PROTO_OUT_TRANSIENT], cnt[PROTO_OUT_BOUNCE],
              (j->done_flags & PROTO_DONE_F_LEASE_CLOSED) ? ", lease closed" : "");
    egress_job_free(j);
}
