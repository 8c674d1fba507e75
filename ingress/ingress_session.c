/*
 * ingress_session - one SMTP server session (RFC 5321 state machine)
 *
 * ingress_session_new() takes ownership of an accepted socket, sends the banner and starts reading.
 * Input is consumed in order: command lines are parsed by smtp_cmd; in DATA/BDAT the bytes go to
 * ingress_xfer. Pipelined commands (RFC 2920) are answered in order because input is processed
 * strictly in sequence and held while a message waits for the spool's durable ack (STORING).
 * Replies are buffered and sent with one send per batch. A client that sends commands and does not read
 * the replies gets no more of its input read while over INGRESS_OUT_MAX of replies wait (no recv is
 * armed), so the reply buffer stays bounded; reading resumes as the replies drain. The reply buffer never
 * moves under a send in flight: when it must grow then, the old block lives until that send completes.
 * Errors: peer protocol errors become SMTP replies. Counted per session: INGRESS_MAX_ERRORS errors (syntax,
 * unknown command, relay denial) or INGRESS_MAX_REFUSALS refusals end it with 421. The first
 * INGRESS_LOGGED_REFUSALS refusals are Rejection records; the rest become one summary record at the end.
 * After a refused DATA nothing the client may have sent without reading the refusal is taken as a
 * command (see data_refused()); a refused BDAT's chunk is read and dropped (RFC 3030 2).
 */
#include "ingress/ingress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls_stream.h"

#define INGRESS_MAX_ERRORS 20
#define INGRESS_MAX_REFUSALS 100
#define INGRESS_LOGGED_REFUSALS 20

static void process_input(struct ingress_session *s);
static void arm_recv(struct ingress_session *s);
static void start_tls(struct ingress_session *s);

/* log_summary - one Rejection record for the refusals past the log cap: the last of them and how many */
static void log_summary(struct ingress_session *s)
{
    char line[sizeof(s->last_unlogged) + 96];

    if (s->unlogged == 0)
        return;
    int n = snprintf(line, sizeof(line), "%s (%u refusals of this session not logged one by one, this the last)",
                     s->last_unlogged, s->unlogged);
    if (n > 0)
        ingress_log_rejection(s, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* on_released - the session is closed and none of its ops is in flight */
static void on_released(struct evl_stream *st)
{
    struct ingress_session *s = st->owner;
    struct ingress *ig = s->ig;

    if (s->prev)
        s->prev->next = s->next;
    else
        ig->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ig->n_sessions--;
    proto_node_counter_set(ig->rt->self, PROTO_NODE_CTR_SMTP_SESSIONS, ig->n_sessions);
    atomic_fetch_sub_explicit(&ig->rt->self->listeners[s->listener].sessions, 1, memory_order_relaxed);
    log_summary(s);
    if (rt_trace_on(PROTO_TRACE_SERVER))
        ingress_session_trace(s, PROTO_TRACE_NOTE, "closed", 6);
    ig->slots[s->slot] = NULL;
    ig->free_slots[ig->n_free++] = s->slot;
    ingress_ip_release(ig, s);
    ingress_session_reset_txn(s);
    policy_lua_meta_fini(&s->conn_meta);
    tls_conn_free(s->tls);
    free(s->rcpts);
    free(s->body);
    free(s->in);
    free(s->out);
    free(s->out_retired);
    free(s);
}

void ingress_session_close(struct ingress_session *s)
{
    s->closing = true;
    s->state = INGRESS_S_CLOSING;
    evl_stream_close(&s->st);
}

/*
 * out_reserve - room for n more reply bytes. A send in flight points into out (plaintext), so then out
 * is not moved: the grown copy replaces it and the old block is freed once that send completes.
 */
static void out_reserve(struct ingress_session *s, size_t n)
{
    if (s->out_len + n <= s->out_cap)
        return;
    size_t cap = (s->out_len + n) * 2;
    if (!evl_stream_sending(&s->st)) {
        s->out = xrealloc(s->out, cap);
        s->out_cap = cap;
        return;
    }
    char *p = xmalloc(cap);
    memcpy(p, s->out, s->out_len);
    if (s->out_retired)
        free(s->out); /* grown twice under one send: that send points into the retired block, not this one */
    else
        s->out_retired = s->out;
    s->out = p;
    s->out_cap = cap;
}

/*
 * note_refusal - count a 4xx/5xx reply. 452 4.5.3 (too many recipients) is flow control a client must
 * expect (RFC 5321 4.5.3.1.10), not a refusal towards the cap. Only the first INGRESS_LOGGED_REFUSALS
 * of a session cost a Rejection record (and an arena run); the rest are counted for one summary.
 */
static void note_refusal(struct ingress_session *s, const char *line, size_t len)
{
    atomic_fetch_add_explicit(&s->ig->rt->self->listeners[s->listener].rejected[proto_node_reject_of(line, len)], 1,
                              memory_order_relaxed);
    if (strncmp(line, "452 4.5.3", 9) != 0)
        s->refusals++;
    if (s->logged < INGRESS_LOGGED_REFUSALS) {
        s->logged++;
        ingress_log_rejection(s, line, len);
        return;
    }
    s->unlogged++;
    snprintf(s->last_unlogged, sizeof(s->last_unlogged), "%.*s", (int)len, line);
}

void ingress_session_reply(struct ingress_session *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    if (rt_trace_on(PROTO_TRACE_SERVER))
        ingress_session_trace(s, PROTO_TRACE_OUT, line, (size_t)n - 2);
    out_reserve(s, (size_t)n);
    memcpy(s->out + s->out_len, line, (size_t)n);
    s->out_len += (size_t)n;
    /* every refusal we send is counted here: one place, so none is missed */
    if ((line[0] == '4' || line[0] == '5') && n > 4 && line[3] == ' ')
        note_refusal(s, line, (size_t)n - 2);
}

/*
 * start_tls - the 220 to STARTTLS is queued: the stream switches to TLS once it is on the wire and reads
 * nothing before (TLS-01). The SMTP state of the plaintext phase is forgotten (RFC 3207 4.2): the client
 * must EHLO again.
 */
static void start_tls(struct ingress_session *s)
{
    s->tls = tls_conn_new(s->ig->tls, TLS_ROLE_SERVER, NULL);
    tls_stream_start(&s->st, s->tls);
    ingress_session_reset_txn(s);
    s->helo[0] = '\0';
    s->esmtp = false;
    policy_lua_meta_fini(&s->conn_meta);
    s->state = INGRESS_S_GREETING;
    arm_recv(s);
}

static size_t out_unsent(const struct ingress_session *s)
{
    return s->out_len - s->out_sent;
}

/* stream_out - the replies not yet sent, one piece */static unsigned stream_out(struct evl_stream *st, struct iovec *iov, unsigned max)
{
    struct ingress_session *s = st->owner;

    return evl_stream_out_one(iov, s->out + s->out_sent, out_unsent(s));
}

static void stream_taken(struct evl_stream *st, size_t n)
{
    struct ingress_session *s = st->owner;

    s->out_sent += n;
    if (s->out_sent == s->out_len)
        s->out_sent = s->out_len = 0;
}

void ingress_session_trace(struct ingress_session *s, enum proto_trace_dir dir, const char *text, size_t len)
{
    struct proto_trace_event ev = {.side = PROTO_TRACE_SERVER, .dir = dir, .session = s->trace_id};
    unsigned alen = s->family == AF_INET ? 4 : 16;

    ev.peer = (struct proto_trace_addr){.family = s->family == AF_INET ? 4 : 6, .port = s->peer_port};
    memcpy(ev.peer.addr, s->peer_addr, alen);
    if (s->local_ip[0]) {
        bool v4 = inet_pton(AF_INET, s->local_ip, ev.local.addr) == 1;
        if (v4 || inet_pton(AF_INET6, s->local_ip, ev.local.addr) == 1) {
            ev.local.family = v4 ? 4 : 6;
            ev.local.port = s->local_port;
        }
    }
    proto_trace_set_text(&ev, text, len);
    rt_trace_send(&ev);
}

/* trace_command - a command line as the trace shows it: AUTH's credentials and SASL responses elided */
static void trace_command(struct ingress_session *s, const char *line, size_t len)
{
    char buf[96];
    if (s->auth_step != INGRESS_AUTH_NONE) {
        ingress_session_trace(s, PROTO_TRACE_IN, "[SASL response elided]", 22);
        return;
    }
    if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
        const char *sp = memchr(line + 5, ' ', len - 5);
        if (sp) {
            int n = snprintf(buf, sizeof(buf), "%.*s [initial response elided]", (int)(sp - line < 64 ? sp - line : 64),
                             line);
            ingress_session_trace(s, PROTO_TRACE_IN, buf, (size_t)n);
            return;
        }
    }
    ingress_session_trace(s, PROTO_TRACE_IN, line, len);
}

/* trace_tls - the handshake's outcome, once */
static void trace_tls(struct ingress_session *s)
{
    enum tls_state ts = tls_conn_state(s->tls);
    char buf[256];
    int n;
    if (ts == TLS_STATE_ESTABLISHED)
        n = snprintf(buf, sizeof(buf), "TLS established: %s %s (%d bits)%s", tls_conn_version(s->tls),
                     tls_conn_cipher(s->tls), tls_conn_cipher_bits(s->tls), tls_conn_resumed(s->tls) ? ", resumed" : "");
    else if (ts == TLS_STATE_FAILED)
        n = snprintf(buf, sizeof(buf), "TLS failed: %s", tls_conn_error(s->tls));
    else
        return;
    s->tls_noted = true;
    if (rt_trace_on(PROTO_TRACE_SERVER))
        ingress_session_trace(s, PROTO_TRACE_NOTE, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void on_send(struct evl_stream *st, int res)
{
    struct ingress_session *s = st->owner;

    free(s->out_retired); /* no send points into it any more */
    s->out_retired = NULL;
    if (res <= 0) {
        ingress_session_close(s);
        return;
    }
    /* the client reads: that is activity too, and a paused session reads on once half its replies left */
    s->last_activity_ns = clock_mono_ns();
    if (s->paused && !s->closing && out_unsent(s) < INGRESS_OUT_MAX / 2) {
        s->paused = false;
        process_input(s);
        return;
    }
    if (s->closing && !evl_stream_sending(st))
        ingress_session_close(s);
}

void ingress_session_flush(struct ingress_session *s)
{
    /* last words said: under TLS, close_notify follows them */
    if (s->closing)
        evl_stream_finish(&s->st);
    evl_stream_flush(&s->st);
}

/* ingress_session_shutdown - last words, then close once they are sent */
void ingress_session_shutdown(struct ingress_session *s, const char *reply)
{
    if (s->closing)
        return;
    ingress_session_reply(s, "%s", reply);
    s->closing = true;
    s->state = INGRESS_S_CLOSING;
    s->last_activity_ns = clock_mono_ns(); /* the last words get one idle timeout to leave */
    ingress_session_flush(s);
    if (!evl_stream_sending(&s->st))
        ingress_session_close(s);
}

void ingress_session_reset_txn(struct ingress_session *s)
{
    for (uint32_t i = 0; i < s->n_rcpts; i++)
        free(s->rcpts[i]);
    s->n_rcpts = 0;
    ingress_fbl_reset(s);
    s->sender[0] = '\0';
    s->null_sender = false;
    policy_lua_meta_fini(&s->meta);
    memset(&s->mail_params, 0, sizeof(s->mail_params));
    s->body_len = 0;
    if (s->body_cap > 1024 * 1024) {
        /* do not keep a large message's buffer for the life of the session (MEM-01) */
        free(s->body);
        s->body = NULL;
        s->body_cap = 0;
    }
    s->bdat_remaining = 0;
    s->bdat_last = false;
    s->bdat_started = false;
    s->bdat_failed = false;
    if (s->state != INGRESS_S_CLOSING)
        s->state = s->helo[0] ? INGRESS_S_READY : INGRESS_S_GREETING;
}

static void reply_parse_error(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    const struct smtp_cmd_reply *r = smtp_cmd_err_reply(cmd->err, cmd->verb);
    ingress_session_reply(s, "%d %s %s", r->code, r->status, r->text);
}

static void cmd_ehlo(struct ingress_session *s, const struct smtp_cmd *cmd, bool esmtp)
{
    const struct cfg *c = &s->ig->rt->cfg;

    if (!ingress_policy_ehlo(s, cmd->helo))
        return;
    ingress_session_reset_txn(s);
    snprintf(s->helo, sizeof(s->helo), "%s", cmd->helo);
    s->esmtp = esmtp;
    s->state = INGRESS_S_READY;
    if (!esmtp) {
        ingress_session_reply(s, "250 %s", c->hostname);
        return;
    }
    ingress_session_reply(s, "250-%s Hello [%s]", c->hostname, s->peer_ip);
    ingress_session_reply(s, "250-PIPELINING");
    ingress_session_reply(s, "250-SIZE %llu", (unsigned long long)c->ingress_max_message_size);
    ingress_session_reply(s, "250-8BITMIME");
    ingress_session_reply(s, "250-SMTPUTF8");
    ingress_session_reply(s, "250-CHUNKING");
    if (s->ig->tls && !s->tls)
        ingress_session_reply(s, "250-STARTTLS");
    ingress_auth_ehlo(s);
    ingress_session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void cmd_mail(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    const struct cfg *c = &s->ig->rt->cfg;

    if (s->state == INGRESS_S_GREETING) {
        ingress_session_reply(s, "503 5.5.1 Send EHLO or HELO first");
        return;
    }
    if (s->state != INGRESS_S_READY) {
        ingress_session_reply(s, "503 5.5.1 Nested MAIL command");
        return;
    }
    if (atomic_load(&s->ig->rt->seg.hdr->spool_space_low)) {
        ingress_session_reply(s, "452 4.3.1 Insufficient system storage, try again later");
        return;
    }
    if ((cmd->params.seen & SMTP_CMD_PARAM_SIZE) && cmd->params.size > c->ingress_max_message_size) {
        ingress_session_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size (%llu)",
                              (unsigned long long)c->ingress_max_message_size);
        return;
    }
    if (!s->esmtp && cmd->params.seen) {
        ingress_session_reply(s, "555 5.5.4 MAIL parameters need EHLO");
        return;
    }
    if (!ingress_auth_mail_allowed(s))
        return;
    if (!ingress_policy_mail(s, cmd)) {
        policy_lua_meta_fini(&s->meta);
        return;
    }
    snprintf(s->sender, sizeof(s->sender), "%s", cmd->addr.mailbox);
    s->null_sender = (cmd->addr.flags & SMTP_ADDR_NULL) != 0;
    s->mail_params = cmd->params;
    s->state = INGRESS_S_MAIL;
    ingress_session_reply(s, "250 2.1.0 Sender <%s> OK", s->sender);
}

static void cmd_rcpt(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    const struct cfg *c = &s->ig->rt->cfg;
    const char *why = NULL;

    if (s->state != INGRESS_S_MAIL && s->state != INGRESS_S_RCPT) {
        ingress_session_reply(s, "503 5.5.1 Need MAIL before RCPT");
        return;
    }
    if (s->n_rcpts >= c->ingress_max_recipients) {
        ingress_session_reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    /* feedback addresses take reports from anyone; a report and ordinary mail are separate transactions */
    bool feedback = ingress_fbl_rcpt_is(s, &cmd->addr);
    if (s->fbl.mode != INGRESS_FBL_UNSET && feedback != (s->fbl.mode == INGRESS_FBL_REPORT)) {
        ingress_session_reply(s, "452 4.5.3 <%s>: feedback reports and other mail need separate transactions",
                              cmd->addr.mailbox);
        return;
    }
    enum ingress_relay_verdict rv = feedback ? INGRESS_RELAY_OK : ingress_relay_allowed(s, &cmd->addr, &why);
    if (rv != INGRESS_RELAY_OK) {
        s->errors++;
        ingress_session_reply(s, "550 %s <%s>: %s", rv == INGRESS_RELAY_NO_USER ? "5.1.1" : "5.7.1", cmd->addr.mailbox,
                              why);
        return;
    }
    bool postmaster = !feedback && ingress_is_postmaster(c, &cmd->addr);
    if (postmaster && !c->ingress_postmaster[0]) {
        /* RFC 5321 4.5.1 asks every host to take mail for postmaster; this node delivers nothing locally, and
         * accepting it only to bounce it later would send the bounce to a sender anyone can forge */
        s->errors++;
        ingress_session_reply(s, "550 5.1.1 <%s>: this host has no postmaster mailbox; write to postmaster of the "
                                 "sender's domain", cmd->addr.mailbox);
        return;
    }
    if (!ingress_policy_rcpt(s, cmd))
        return;
    /* the snapshot says "maybe" (a 64-bit hash); in "drop" mode the spool decides at store, from its database */
    if (c->supp_enabled && s->supp_mode == CFG_SUPP_REJECT && !postmaster) {
        supp_view_refresh(&s->ig->supp, clock_mono_ns());
        if (supp_view_maybe(&s->ig->supp, policy_lua_meta_get(&s->meta, "tenant"), cmd->addr.mailbox)) {
            s->errors++;
            ingress_session_reply(s, "550 5.7.1 <%s>: suppressed", cmd->addr.mailbox);
            return;
        }
    }
    if (s->n_rcpts == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
    }
    /* <Postmaster>, and postmaster@ this host, go to [ingress] postmaster */
    if (postmaster)
        s->rcpts[s->n_rcpts++] = xstrdup(c->ingress_postmaster);
    else
        s->rcpts[s->n_rcpts++] = xstrdup(cmd->addr.mailbox);
    if (feedback)
        ingress_fbl_rcpt_add(s, &cmd->addr);
    else
        s->fbl.mode = INGRESS_FBL_MAIL;
    s->state = INGRESS_S_RCPT;
    ingress_session_reply(s, "250 2.1.5 Recipient <%s> OK", cmd->addr.mailbox);
}

/*
 * data_refused - DATA was refused. A client must wait for the reply to DATA (RFC 2920 3.1); one that does
 * not sends its message body next, which we would read as commands, and the body can hold a whole
 * transaction (PIPE-02). The body may arrive in later reads than DATA, so the rule cannot look at the
 * buffered input alone:
 * - when more input is already waiting, or DATA itself came pipelined behind a command whose reply the
 *   client had not seen (it sends without reading), the session ends with 421 at once;
 * - otherwise (DATA sent on its own, after the previous reply) the next line must be one a client sends
 *   after reading a failed transaction's reply, RSET, QUIT, NOOP, EHLO, HELO or MAIL, and it must succeed;
 *   any other line, or a refused one, is taken as a body sent blind: 421 and close (follows_refused_data).
 * Either way no byte after a refused DATA can build a transaction unless the client read the refusal.
 */
static bool data_refused(struct ingress_session *s, const char *reply, size_t pending)
{
    ingress_session_reply(s, "%s", reply);
    if (pending == 0 && !s->pipelined) {
        s->data_refused = true;
        return true;
    }
    ingress_session_reply(s, "421 4.5.0 Commands pipelined after a refused DATA, closing connection");
    return false;
}

/* follows_refused_data - a verb a client may send after reading the refusal of its DATA */
static bool follows_refused_data(enum smtp_cmd_verb verb)
{
    return verb == SMTP_CMD_RSET || verb == SMTP_CMD_QUIT || verb == SMTP_CMD_NOOP || verb == SMTP_CMD_EHLO ||
           verb == SMTP_CMD_HELO || verb == SMTP_CMD_MAIL;
}

/* bdat_size_of - the size argument of a BDAT line the parser refused, 0 when it has none */
static uint64_t bdat_size_of(const char *line, size_t len)
{
    uint64_t size = 0;
    size_t i = 5; /* after "BDAT " */

    /* at most 19 digits: no overflow, and a size nobody sends is no size */
    while (i < len && i < 5 + 19 && line[i] >= '0' && line[i] <= '9')
        size = size * 10 + (uint64_t)(line[i++] - '0');
    return i > 5 && (i == len || line[i] == ' ') ? size : 0;
}

static bool cmd_data(struct ingress_session *s, size_t pending)
{
    if (s->state == INGRESS_S_MAIL)
        return data_refused(s, "554 5.5.1 No valid recipients", pending);
    if (s->state != INGRESS_S_RCPT)
        return data_refused(s, "503 5.5.1 Need MAIL and RCPT before DATA", pending);
    if (s->bdat_started)
        return data_refused(s, "503 5.5.1 DATA after BDAT is not allowed (RFC 3030)", pending);
    if (s->mail_params.body == SMTP_CMD_BODY_BINARYMIME)
        return data_refused(s, "503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA", pending);
    ingress_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
    ingress_xfer_begin_data(s);
    return true;
}

static bool dispatch(struct ingress_session *s, const struct smtp_cmd *cmd, size_t pending);

/*
 * handle_line - one command line without its line end; `pending` is how many input bytes follow it.
 * Returns false once the session ends.
 */
static bool handle_line(struct ingress_session *s, const char *line, size_t len, size_t pending)
{
    struct smtp_cmd cmd;
    unsigned flags = 0;
    bool after_refused_data = s->data_refused;
    unsigned refusals = s->refusals;

    proto_node_counter_add(s->ig->rt->self, PROTO_NODE_CTR_SMTP_COMMANDS, 1);
    if (s->auth_step != INGRESS_AUTH_NONE)
        return ingress_auth_continue(s, line, len); /* a SASL response, not a command */
    if (s->state == INGRESS_S_MAIL || s->state == INGRESS_S_RCPT)
        flags |= (s->mail_params.seen & SMTP_CMD_PARAM_SMTPUTF8) ? SMTP_CMD_UTF8 : 0;
    int prc = smtp_cmd_parse(line, len, flags, &cmd);
    s->cur_verb = cmd.verb;
    s->cur_rcpt[0] = '\0';
    if (cmd.verb == SMTP_CMD_RCPT && prc == 0)
        snprintf(s->cur_rcpt, sizeof(s->cur_rcpt), "%s", cmd.addr.mailbox);
    s->data_refused = false;
    if (after_refused_data && (prc < 0 || !follows_refused_data(cmd.verb))) {
        ingress_session_reply(s, "421 4.5.0 Message body sent after a refused DATA, closing connection");
        return false;
    }
    bool keep = true;
    if (prc < 0) {
        reply_parse_error(s, &cmd);
        s->errors++;
        if (cmd.verb == SMTP_CMD_BDAT) {
            /* its chunk follows whatever we answer (RFC 3030 2): those bytes are data, never commands */
            s->bdat_discard = bdat_size_of(line, len);
            s->data_started_ns = clock_mono_ns();
            if (s->state == INGRESS_S_RCPT)
                s->bdat_failed = true; /* a chunk is missing: this transaction's transfer can only fail */
        }
    } else {
        keep = dispatch(s, &cmd, pending);
    }
    if (keep && after_refused_data && s->refusals != refusals) {
        ingress_session_reply(s, "421 4.5.0 Message body sent after a refused DATA, closing connection");
        return false;
    }
    /* the client sent the next command without waiting for this one's reply */
    s->pipelined = pending > 0;
    return keep;
}

/* dispatch - run a parsed command; false once the session ends */
static bool dispatch(struct ingress_session *s, const struct smtp_cmd *cmd, size_t pending)
{
    switch (cmd->verb) {
    case SMTP_CMD_EHLO:
        cmd_ehlo(s, cmd, true);
        break;
    case SMTP_CMD_HELO:
        cmd_ehlo(s, cmd, false);
        break;
    case SMTP_CMD_MAIL:
        cmd_mail(s, cmd);
        break;
    case SMTP_CMD_RCPT:
        cmd_rcpt(s, cmd);
        break;
    case SMTP_CMD_DATA:
        return cmd_data(s, pending);
    case SMTP_CMD_BDAT:
        ingress_xfer_begin_bdat(s, cmd->bdat_size, cmd->bdat_last);
        break;
    case SMTP_CMD_RSET:
        ingress_session_reset_txn(s);
        ingress_session_reply(s, "250 2.0.0 OK");
        break;
    case SMTP_CMD_NOOP:
        ingress_session_reply(s, "250 2.0.0 OK");
        break;
    case SMTP_CMD_QUIT:
        ingress_session_reply(s, "221 2.0.0 %s closing connection", s->ig->rt->cfg.hostname);
        return false;
    case SMTP_CMD_VRFY:
        ingress_session_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case SMTP_CMD_HELP:
        ingress_session_reply(s, "214 2.0.0 ringmail: see RFC 5321");
        break;
    case SMTP_CMD_STARTTLS:
        if (!s->ig->tls) {
            ingress_session_reply(s, "502 5.5.1 STARTTLS not available");
        } else if (s->tls) {
            ingress_session_reply(s, "503 5.5.1 TLS already active");
        } else if (s->state != INGRESS_S_GREETING && s->state != INGRESS_S_READY) {
            ingress_session_reply(s, "503 5.5.1 STARTTLS not allowed inside a transaction");
        } else {
            ingress_session_reply(s, "220 2.0.0 Ready to start TLS");
            /* TLS-01: anything the client sent after STARTTLS in plaintext is dropped, never read */
            s->in_len = 0;
            s->state = INGRESS_S_TLS_START;
            return true;
        }
        break;
    case SMTP_CMD_AUTH:
        return ingress_auth_command(s, cmd);
    default:
        ingress_session_reply(s, "500 5.5.1 Command unrecognized");
        s->errors++;
        break;
    }
    return true;
}

static void consume(struct ingress_session *s, size_t n)
{
    memmove(s->in, s->in + n, s->in_len - n);
    s->in_len -= n;
}

static void process_input(struct ingress_session *s)
{
    /* replies the client does not read stop its commands being read (they would grow without bound) */
    while (s->in_len > 0 && !s->closing && s->state != INGRESS_S_STORING && s->state != INGRESS_S_TLS_START &&
           out_unsent(s) < INGRESS_OUT_MAX) {
        if (s->bdat_discard) {
            size_t n = s->in_len < s->bdat_discard ? s->in_len : (size_t)s->bdat_discard;
            s->bdat_discard -= n;
            consume(s, n);
            continue;
        }
        if (s->state == INGRESS_S_DATA || s->state == INGRESS_S_BDAT) {
            size_t n = ingress_xfer_consume(s, s->in, s->in_len);
            if (n == 0)
                break;
            consume(s, n);
            continue;
        }
        char *lf = memchr(s->in, '\n', s->in_len);
        if (!lf) {
            if (s->in_len >= SMTP_CMD_LINE_MAX) {
                /* RFC 5321 4.5.3.1.4: say so once, then skip to the end of the line (LIM-01) */
                if (!s->discarding)
                    ingress_session_reply(s, "500 5.5.2 Line too long");
                s->discarding = true;
                s->in_len = 0;
            }
            break;
        }
        size_t n = (size_t)(lf - s->in) + 1;
        if (s->discarding) {
            s->discarding = false;
            consume(s, n);
            continue;
        }
        size_t len = n - 1;
        if (len > 0 && s->in[len - 1] == '\r')
            len--;
        if (rt_trace_on(PROTO_TRACE_SERVER))
            trace_command(s, s->in, len);
        /* the parser measures the line with its CRLF; a longer one gets 500 */
        bool keep = handle_line(s, s->in, len, s->in_len - n);
        if (s->state == INGRESS_S_TLS_START)
            break; /* the input buffer was emptied: nothing after STARTTLS is a command */
        consume(s, n);
        if (!keep) {
            s->closing = true;
            s->state = INGRESS_S_CLOSING;
            break;
        }
        if (s->errors >= INGRESS_MAX_ERRORS || s->refusals >= INGRESS_MAX_REFUSALS) {
            ingress_session_shutdown(s, "421 4.7.0 Too many errors, closing connection");
            return;
        }
    }
    ingress_session_flush(s);
    if (s->closing) {
        if (!evl_stream_sending(&s->st))
            ingress_session_close(s);
        return;
    }
    if (s->state == INGRESS_S_TLS_START) {
        start_tls(s);
        return;
    }
    if (s->state == INGRESS_S_STORING)
        return;
    s->paused = out_unsent(s) >= INGRESS_OUT_MAX; /* on_send() reads on */
    if (!s->paused)
        arm_recv(s);
}

void ingress_session_resume(struct ingress_session *s)
{
    process_input(s);
}

static void on_recv(struct evl_stream *st, ssize_t n)
{
    struct ingress_session *s = st->owner;

    if (s->tls && !s->tls_noted)
        trace_tls(s);
    if (n <= 0) {
        enum tls_state ts = s->tls ? tls_conn_state(s->tls) : TLS_STATE_ESTABLISHED;
        if (ts == TLS_STATE_FAILED)
            log_info("TLS with [%s] failed: %s", s->peer_ip, tls_conn_error(s->tls));
        s->closing = true;
        s->state = INGRESS_S_CLOSING;
        if (ts == TLS_STATE_FAILED || ts == TLS_STATE_CLOSED) {
            /* send the alert (or our close_notify) that says why, then close */
            ingress_session_flush(s);
            if (evl_stream_sending(st))
                return;
        }
        ingress_session_close(s);
        return;
    }
    s->last_activity_ns = clock_mono_ns();
    s->in_len += (size_t)n;
    process_input(s);
    if (evl_stream_fd(st) >= 0 &&
        (s->state == INGRESS_S_DATA || s->state == INGRESS_S_BDAT || s->state == INGRESS_S_STORING)) {
        /* A client that writes the body and then the final "." CRLF as a small second write waits,
         * under Nagle, for our ACK of the body, and Linux delays that ACK by up to 40 ms because we
         * have nothing to say until the spool answers: one stalled round trip per message. Ask for
         * an immediate ACK while a body is arriving (the flag does not stick; set it per read). */
        int one = 1;
        setsockopt(evl_stream_fd(st), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
}

static void arm_recv(struct ingress_session *s)
{
    if (s->in_len >= INGRESS_IN_BUF)
        return;
    evl_stream_recv(&s->st, s->in + s->in_len, INGRESS_IN_BUF - s->in_len);
}

void ingress_session_tick(struct ingress_session *s, uint64_t now)
{
    const struct cfg *c = &s->ig->rt->cfg;

    if (s->closing) {
        /* last words the client never reads (it does not read at all) must not keep the session forever */
        if (now - s->last_activity_ns > CLOCK_MS(c->ingress_idle_timeout_ms) && !evl_stream_closed(&s->st))
            ingress_session_close(s);
        return;
    }
    if (s->state == INGRESS_S_STORING) {
        /* the spool instance the request went to is gone (a restart, a crash): its successor drops the
         * record as stale and no ack can come, so the client hears 451 now rather than at the timeout. It
         * may have committed it before it died: at least once, the client's retry is the duplicate. */
        if (atomic_load(&s->ig->rt->seg.inst[0].generation) != s->store_gen) {
            log_warn("the spool restarted before it confirmed the message from %s; answering 451", s->peer_ip);
            s->store_token = 0;
            ingress_session_reply(s, "451 4.3.0 Spool restarted before confirming the message, try again later");
            ingress_session_reset_txn(s);
            ingress_session_resume(s);
            return;
        }
        if (now > s->store_deadline_ns) {
            /* the spool may still commit it: at least once, the client's retry is the duplicate */
            log_warn("no durable ack from the spool within %llu ms for %s; answering 451",
                     (unsigned long long)c->ingress_spool_timeout_ms, s->peer_ip);
            s->store_token = 0;
            ingress_session_reply(s, "451 4.3.0 Spool did not confirm the message in time, try again later");
            ingress_session_reset_txn(s);
            ingress_session_resume(s);
        }
        return;
    }
    if (s->state == INGRESS_S_DATA || s->state == INGRESS_S_BDAT || s->bdat_discard) {
        uint64_t elapsed = now - s->data_started_ns;
        if (elapsed > CLOCK_MS(c->ingress_data_timeout_ms)) {
            ingress_session_shutdown(s, "421 4.4.2 Data timeout, closing connection");
            return;
        }
        /* a trickle slower than min_data_rate is cut, after a grace of 10 s (TMO-02) */
        if (c->ingress_min_data_rate && elapsed > CLOCK_SEC(10) &&
            s->scan.size < c->ingress_min_data_rate * (elapsed / 1000000000u)) {
            ingress_session_shutdown(s, "421 4.4.2 Data rate too low, closing connection");
            return;
        }
    }
    if (now - s->last_activity_ns > CLOCK_MS(c->ingress_idle_timeout_ms))
        ingress_session_shutdown(s, "421 4.4.2 Idle timeout, closing connection");
}

static const struct evl_stream_ops session_stream = {
    .out = stream_out,
    .taken = stream_taken,
    .sent = on_send,
    .recv = on_recv,
    .released = on_released,
};

struct ingress_session *ingress_session_new(struct ingress *ig, int fd)
{
    struct ingress_session *s = xcalloc(1, sizeof(*s));

    s->ig = ig;
    evl_stream_init(&s->st, &ig->rt->evl, fd, &session_stream, s);
    s->in = xmalloc(INGRESS_IN_BUF);
    s->last_activity_ns = clock_mono_ns();
    s->state = INGRESS_S_GREETING;
    s->trace_id = rt_trace_session_id();
    s->slot = ig->free_slots[--ig->n_free];
    ig->slots[s->slot] = s;
    s->next = ig->sessions;
    if (ig->sessions)
        ig->sessions->prev = s;
    ig->sessions = s;
    ig->n_sessions++;
    proto_node_counter_set(ig->rt->self, PROTO_NODE_CTR_SMTP_SESSIONS, ig->n_sessions);
    return s;
}
