/*
 * ingress_xfer - message transfer: DATA and BDAT bodies, the checks on them, and the durable store
 *
 * The body is un-stuffed by smtp_data into a per-session staging buffer (at most the maximum
 * message size; past it the scanner keeps reading to the end without storing, LIM-06). At the end:
 * - bare CR or LF (SMUG-01): 550, after reading to the real CRLF.CRLF, nothing after a fake end of
 *   data is ever a command;
 * - over the size limit: 552; NUL: 550; 8-bit without BODY=8BITMIME/BINARYMIME or SMTPUTF8: 550;
 *   more Received headers than the hop limit: 554 (LOOP-01);
 * - else the Received header is prepended, the envelope encoded, and both written into one arena
 *   run handed to the spool (MSG_INGRESS_MESSAGE_STORE). The 250 is sent only when the spool answers
 *   MSG_SPOOL_MESSAGE_STORED with status 0, which it does only after the fsync of the write batch
 *   that holds the message (DESIGN.md section 3).
 *
 * Arena run layout (common/proto_msg.h; the spool validates every field with proto_msg_decode):
 *   struct proto_msg_hdr | envelope (proto_env encoding) | message (Received header + body)
 * proto_msg_head() encodes the first two; the message is copied into the run right after them.
 */
#include "ingress/ingress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_msg.h"
#include "smtp/smtp_stuff.h"

#define XFER_CHUNK (64 * 1024)

static void body_reserve(struct ingress_session *s, size_t more)
{
    if (s->body_len + more <= s->body_cap)
        return;
    size_t cap = s->body_cap ? s->body_cap : XFER_CHUNK;
    while (cap < s->body_len + more)
        cap *= 2;
    s->body = xrealloc(s->body, cap);
    s->body_cap = cap;
}

void ingress_xfer_begin_data(struct ingress_session *s)
{
    smtp_data_init(&s->scan, s->ig->rt->cfg.ingress_max_message_size, 0);
    s->body_len = 0;
    s->data_started_ns = clock_mono_ns();
    s->state = INGRESS_S_DATA;
}

static void bdat_chunk_done(struct ingress_session *s);

void ingress_xfer_begin_bdat(struct ingress_session *s, uint64_t size, bool last)
{
    /* the chunk's bytes are on the wire whatever we answer: they are always read (RFC 3030 2) */
    if (s->state == INGRESS_S_RCPT && !s->bdat_started) {
        smtp_data_init(&s->scan, s->ig->rt->cfg.ingress_max_message_size, SMTP_DATA_BDAT);
        s->body_len = 0;
        s->data_started_ns = clock_mono_ns();
        s->bdat_started = true;
    } else if (s->state != INGRESS_S_RCPT) {
        s->bdat_failed = true; /* no MAIL/RCPT: read and drop, then 503 */
    }
    s->bdat_remaining = size;
    s->bdat_last = last;
    s->state = INGRESS_S_BDAT;
    if (size == 0)
        bdat_chunk_done(s);
}

static void fail_txn(struct ingress_session *s, const char *reply)
{
    ingress_session_reply(s, "%s", reply);
    ingress_session_reset_txn(s);
}

/* build_received - the trace header (RFC 5321 4.4) for this message */
static int build_received(struct ingress_session *s, char *buf, size_t len, const char *id)
{
    const struct cfg *c = &s->ig->rt->cfg;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    const char *proto;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    /* RFC 3848: S under TLS, A after AUTH (ESMTPSA); RFC 6531: UTF8SMTP, UTF8SMTPA */
    if (s->mail_params.seen & SMTP_CMD_PARAM_SMTPUTF8)
        proto = s->authenticated ? "UTF8SMTPA" : "UTF8SMTP";
    else if (s->authenticated)
        proto = s->tls ? "ESMTPSA" : "ESMTPA";
    else
        proto = s->esmtp ? (s->tls ? "ESMTPS" : "ESMTP") : "SMTP";
    /* every field here was validated by the parser: no CR, LF or NUL can reach the header (INJ-01) */
    if (s->n_rcpts == 1)
        return snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s (ringmail) with %s id %s\r\n\tfor <%s>; %s\r\n",
                        s->helo[0] ? s->helo : "unknown", s->peer_ip, c->hostname, proto, id, s->rcpts[0], date);
    return snprintf(buf, len, "Received: from %s ([%s])\r\n\tby %s (ringmail) with %s id %s; %s\r\n",
                    s->helo[0] ? s->helo : "unknown", s->peer_ip, c->hostname, proto, id, date);
}

void ingress_xfer_meta(const struct policy_lua_meta *m, struct proto_env_meta meta[POLICY_LUA_META_MAX],
                       char keys[POLICY_LUA_META_MAX][POLICY_LUA_META_KEY_MAX + 1], uint32_t *count)
{
    /* policy metadata: keys are case-insensitive, the envelope keeps them lowercase */
    unsigned n = m->count < POLICY_LUA_META_MAX ? m->count : POLICY_LUA_META_MAX, k = 0;
    for (unsigned i = 0; i < n; i++) {
        snprintf(keys[k], POLICY_LUA_META_KEY_MAX + 1, "%s", m->items[i].key);
        for (char *p = keys[k]; *p; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        /* fbl.* is the report a feedback address received (ingress_fbl.c): the ingress alone writes it */
        if (strncmp(keys[k], "fbl.", 4) == 0)
            continue;
        meta[k] = (struct proto_env_meta){keys[k], m->items[i].value};
        k++;
    }
    *count = k;
}

int ingress_xfer_store(struct ingress *ig, struct proto_env *rec, const char *received, size_t rlen, const char *body,
                       size_t blen, struct msgid id, uint64_t token, const char *peer, const char **reply,
                       uint32_t *spool_gen_out)
{
    struct role_rt *rt = ig->rt;
    struct buf env = {0};
    uint64_t off;

    rec->body_size = (uint64_t)rlen + blen;
    int rc = proto_msg_head(rec, rec->body_size, &env);
    if (rc < 0) {
        buf_fini(&env);
        log_warn("envelope from %s did not encode (%d)", peer, rc);
        *reply = "554 5.3.0 Envelope could not be recorded";
        return rc;
    }
    size_t total = env.len + rlen + blen;
    rc = shm_arena_alloc(rt->seg.arena, total, (uint16_t)rt->self_idx, rt->gen, &off);
    if (rc < 0) {
        buf_fini(&env);
        log_warn("body arena full (%s) for a %zu-byte message from %s", strerror(-rc), total, peer);
        *reply = "452 4.3.1 Insufficient system storage, try again later";
        return rc;
    }
    char *p = shm_arena_ptr(rt->seg.arena, off, total);
    memcpy(p, env.data, env.len);
    memcpy(p + env.len, received, rlen);
    if (blen)
        memcpy(p + env.len + rlen, body, blen);
    buf_fini(&env);

    /* the run is the spool's from now on: if we give up waiting we must not free it under it */
    unsigned spool = 0;
    uint32_t spool_gen = atomic_load(&rt->seg.inst[spool].generation);
    shm_arena_give(rt->seg.arena, off, (uint16_t)spool, spool_gen);
    struct proto_rec r = {.type = MSG_INGRESS_MESSAGE_STORE, .dst_gen = spool_gen};
    r.body.store.token = token;
    r.body.store.arena_off = off;
    r.body.store.len = total;
    r.body.store.msg_id_hi = id.hi;
    r.body.store.msg_id_lo = id.lo;
    rc = role_rt_send(rt, spool, &r);
    if (rc < 0) {
        shm_arena_free(rt->seg.arena, off);
        *reply = "451 4.3.0 Spool busy, try again later";
        return rc;
    }
    if (spool_gen_out)
        *spool_gen_out = spool_gen;
    return 0;
}

static void store_message(struct ingress_session *s)
{
    struct role_rt *rt = s->ig->rt;
    struct proto_env rec = {0};
    char idtext[MSGID_TEXT_LEN + 1], received[1024];
    const char *reply = NULL;

    s->msg_id = msgid_generate();
    msgid_format(s->msg_id, idtext);
    int rlen = build_received(s, received, sizeof(received), idtext);
    if (rlen < 0 || (size_t)rlen >= sizeof(received))
        rlen = 0;
    /* our id (and tenant, campaign) in the message, so a complaint's returned headers name it */
    if (s->fbl.mode != INGRESS_FBL_REPORT)
        rlen += (int)ingress_fbl_id_header(s->ig, idtext, &s->meta, received + rlen, sizeof(received) - (size_t)rlen);

    struct proto_env_rcpt *rcpts = xcalloc(s->n_rcpts, sizeof(*rcpts));
    for (uint32_t i = 0; i < s->n_rcpts; i++)
        rcpts[i] = (struct proto_env_rcpt){.addr = s->rcpts[i], .state = PROTO_RCPT_QUEUED};
    rec.created_ms = clock_real_ns() / 1000000u;
    rec.sender = s->sender;
    rec.rcpt_count = s->n_rcpts;
    rec.rcpts = rcpts;
    if (s->mail_params.body == SMTP_CMD_BODY_8BITMIME || s->mail_params.body == SMTP_CMD_BODY_BINARYMIME)
        rec.flags |= PROTO_ENV_F_8BITMIME;
    if (s->mail_params.seen & SMTP_CMD_PARAM_SMTPUTF8)
        rec.flags |= PROTO_ENV_F_SMTPUTF8;
    /* what the scanner saw of the body, and the Received header we prepend: the egress need not scan again */
    bool high;
    uint64_t rsize; /* the header's RFC 1870 size is its length when its line ends are all CRLF */
    smtp_stuff_scan(received, (size_t)rlen, &high, &rsize);
    if (!s->scan.bare_cr && !s->scan.bare_lf && rsize == (uint64_t)rlen)
        rec.flags |= PROTO_ENV_F_SCANNED | (high || s->scan.eightbit ? PROTO_ENV_F_OCTETS_8BIT : 0);
    struct proto_env_meta meta[POLICY_LUA_META_MAX + INGRESS_FBL_META_MAX];
    char keys[POLICY_LUA_META_MAX][POLICY_LUA_META_KEY_MAX + 1];
    ingress_xfer_meta(&s->meta, meta, keys, &rec.meta_count);
    if (s->fbl.mode == INGRESS_FBL_REPORT && s->fbl.report)
        rec.meta_count += ingress_fbl_meta(s, meta + rec.meta_count, INGRESS_FBL_META_MAX);
    rec.meta = meta;

    uint32_t spool_gen = 0;
    /* never reused while this worker lives (struct ingress): a late ack finds no session */
    s->store_token = (++s->ig->store_seq << s->ig->slot_bits) | s->slot;
    int rc = ingress_xfer_store(s->ig, &rec, received, (size_t)rlen, s->body, s->body_len, s->msg_id, s->store_token,
                                s->peer_ip, &reply, &spool_gen);
    free(rcpts);
    if (rc < 0) {
        s->store_token = 0;
        fail_txn(s, reply);
        return;
    }
    s->state = INGRESS_S_STORING;
    s->store_gen = spool_gen;
    s->store_deadline_ns = clock_mono_ns() + CLOCK_MS(rt->cfg.ingress_spool_timeout_ms);
}

/* finish - the whole body is in: check it, then store it or refuse it */
static void finish(struct ingress_session *s)
{
    const struct cfg *c = &s->ig->rt->cfg;
    const struct smtp_data *d = &s->scan;
    bool eight_ok = s->mail_params.body == SMTP_CMD_BODY_8BITMIME || s->mail_params.body == SMTP_CMD_BODY_BINARYMIME ||
                    (s->mail_params.seen & SMTP_CMD_PARAM_SMTPUTF8);

    bool binary = s->mail_params.body == SMTP_CMD_BODY_BINARYMIME;

    s->eod_ns = clock_mono_ns();
    if (!binary && (d->bare_cr || d->bare_lf))
        fail_txn(s, "550 5.6.0 Bare CR or LF in message: lines must end with CRLF (RFC 5321 2.3.8)");
    else if (d->too_big)
        fail_txn(s, "552 5.3.4 Message size exceeds fixed maximum message size");
    else if (d->nul && !binary)
        fail_txn(s, "550 5.6.0 NUL character in message");
    else if (d->eightbit && !eight_ok)
        fail_txn(s, "550 5.6.0 8-bit data needs BODY=8BITMIME (RFC 6152)");
    else if (d->long_line && s->state == INGRESS_S_DATA)
        fail_txn(s, "550 5.6.0 Line longer than 1000 octets (RFC 5321 4.5.3.1.6)");
    else if (d->received > c->ingress_max_received)
        fail_txn(s, "554 5.4.6 Too many hops (Received headers): mail loop?");
    else if (!ingress_policy_message(s))
        ingress_session_reset_txn(s);
    else if (s->fbl.mode == INGRESS_FBL_REPORT && !ingress_fbl_parse(s))
        ingress_session_reset_txn(s);
    else
        store_message(s);
}

/* trace_body - the body as the trace shows it: its size only, never its content */
static void trace_body(struct ingress_session *s, const char *what)
{
    char note[96];
    int n = snprintf(note, sizeof(note), "[%s %llu bytes]", what, (unsigned long long)s->scan.size);
    ingress_session_trace(s, PROTO_TRACE_IN, note, (size_t)n);
}

static void bdat_chunk_done(struct ingress_session *s)
{
    if (rt_trace_on(PROTO_TRACE_SERVER))
        trace_body(s, s->bdat_last ? "body, last chunk, in all" : "body chunk, so far");
    if (s->bdat_failed) {
        ingress_session_reply(s, "503 5.5.1 No transaction for BDAT (need MAIL and RCPT first)");
        s->bdat_failed = false;
        s->state = s->helo[0] ? INGRESS_S_READY : INGRESS_S_GREETING;
        if (s->bdat_started)
            ingress_session_reset_txn(s);
        return;
    }
    if (s->bdat_last) {
        finish(s);
        return;
    }
    ingress_session_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->scan.size);
    s->state = INGRESS_S_RCPT;
}

size_t ingress_xfer_consume(struct ingress_session *s, const char *in, size_t len)
{
    size_t consumed = 0, produced = 0;

    if (s->state == INGRESS_S_BDAT) {
        size_t take = len < s->bdat_remaining ? len : (size_t)s->bdat_remaining;
        size_t done = 0;
        while (done < take) {
            body_reserve(s, take - done + 2);
            size_t cap = s->scan.too_big || s->bdat_failed ? 0 : s->body_cap - s->body_len;
            smtp_data_scan(&s->scan, in + done, take - done, cap ? s->body + s->body_len : NULL, cap,
                           &consumed, &produced);
            s->body_len += produced;
            done += consumed;
            if (consumed == 0)
                break;
        }
        s->bdat_remaining -= done;
        if (s->bdat_remaining == 0)
            bdat_chunk_done(s);
        return done;
    }

    /* DATA */
    size_t used = 0;
    while (used < len && !s->scan.done) {
        body_reserve(s, XFER_CHUNK);
        size_t cap = s->scan.too_big ? 0 : s->body_cap - s->body_len;
        smtp_data_scan(&s->scan, in + used, len - used, cap ? s->body + s->body_len : NULL, cap, &consumed,
                       &produced);
        s->body_len += produced;
        used += consumed;
        if (consumed == 0 && produced == 0)
            break;
    }
    if (s->scan.done) {
        if (rt_trace_on(PROTO_TRACE_SERVER))
            trace_body(s, "body");
        finish(s);
    }
    return used;
}

void ingress_xfer_on_stored(struct ingress *ig, const struct proto_rec *rec)
{
    uint64_t token = rec->body.stored.token;
    uint32_t slot = (uint32_t)(token & ((UINT64_C(1) << ig->slot_bits) - 1));
    struct ingress_session *s;

    if (token & INGRESS_HTTP_TOKEN_BIT) {
        ingress_http_on_stored(ig, rec);
        return;
    }

    if (slot >= ig->n_slots || !(s = ig->slots[slot]) || s->state != INGRESS_S_STORING || s->store_token != token)
        return; /* the session gave up (451) or went away: the client will retry */
    s->store_token = 0;
    if (rec->body.stored.status == 0) {
        char idtext[MSGID_TEXT_LEN + 1];
        msgid_format(s->msg_id, idtext);
        proto_node_counter_add(ig->rt->self, PROTO_NODE_CTR_MESSAGES_ACCEPTED, 1);
        atomic_fetch_add_explicit(&ig->rt->self->listeners[s->listener].accepted, 1, memory_order_relaxed);
        uint64_t now = clock_mono_ns();
        proto_hist_record(&ig->rt->self->hist[PROTO_NODE_HIST_TIME_TO_250], PROTO_HIST_FAST,
                          now > s->eod_ns ? (now - s->eod_ns) / 1000u : 0);
        ingress_session_reply(s, "250 2.0.0 OK id=%s", idtext);
    } else {
        ingress_session_reply(s, "451 4.3.0 Message could not be stored (%s), try again later",
                              strerror((int)-rec->body.stored.status));
    }
    ingress_session_reset_txn(s);
    ingress_session_resume(s);
}
