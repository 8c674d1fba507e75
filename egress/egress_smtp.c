/*
 * egress_smtp - SMTP client protocol core (contract and event rules in egress_smtp.h)
 *
 * Every command put in the output pushes what its reply means onto the `expect` queue, so replies
 * are matched in order whether the commands went one by one or pipelined; a reply with nothing
 * expected is a protocol error (or a 421, which may come at any time).
 */
#include "egress/egress_smtp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "rt/trace.h"
#include "smtp/smtp_addr.h"
#include "smtp/smtp_stuff.h"

enum smtp_state {
    ST_BANNER = 0,
    ST_EHLO = 1,
    ST_HELO = 2,
    ST_STARTTLS = 3,
    ST_TLS_WAIT = 4,
    ST_READY = 5,
    ST_TXN = 6,
    ST_QUIT = 7,
    ST_OVER = 8,
};

struct expect {
    enum egress_smtp_wait kind;
    size_t rcpt;
};

struct obuf {
    char *p;
    size_t len, off, cap;
};

struct txn {
    bool active;
    const char *sender;
    const char *const *rcpts;
    size_t n;
    const char *body;
    size_t body_len;
    uint8_t *done; /* the recipient's RCPT event was emitted */
    char *mail_line;
    size_t next_rcpt; /* lock-step: next index to consider sending */
    size_t n_accepted;
    bool mail_ok, mail_failed, saw_452, dot_discard;
    struct smtp_reply mail_reply;
    /* body streaming */
    bool streaming;
    struct smtp_stuff stuff;
    int bstage; /* 0 body, 1 terminator exposed, 2 all exposed */
    const char *piece;
    size_t piece_len;
};

struct egress_smtp {
    enum smtp_state state;
    char *ehlo_name;
    bool use_pipelining;
    enum egress_smtp_tls tls;
    bool tls_active;
    bool tls_injected; /* octets followed the 220 to STARTTLS */
    bool need_rset;
    struct smtp_reply_parser rp;
    struct egress_smtp_caps caps, ehlo_caps;
    struct obuf out, next;
    bool last_from_body; /* the piece output() returned last came from the body */
    unsigned txn_gen, last_gen; /* ...of this transaction: a late consumed() for an ended one is ignored */
    struct expect *expect;
    size_t ex_head, ex_len, ex_cap;
    struct egress_smtp_event *ev;
    size_t ev_head, ev_len, ev_cap;
    struct txn t;
    egress_smtp_trace_fn trace;
    void *trace_ctx;
};

#define TRACING(s) ((s)->trace && rt_trace_on(PROTO_TRACE_CLIENT))

/* ---- small helpers ---- */

static void append(struct egress_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(struct egress_smtp *s, const char *fmt, ...)
{
    struct obuf *b = &s->next;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (TRACING(s))
        s->trace(s->trace_ctx, PROTO_TRACE_OUT, b->p + b->len, n >= 2 ? (size_t)n - 2 : 0); /* each is one line */
    b->len += (size_t)n;
}

static void expect_push(struct egress_smtp *s, enum egress_smtp_wait kind, size_t rcpt)
{
    if (s->ex_head == s->ex_len)
        s->ex_head = s->ex_len = 0;
    if (s->ex_len == s->ex_cap) {
        s->ex_cap = s->ex_cap ? s->ex_cap * 2 : 16;
        s->expect = xrealloc(s->expect, s->ex_cap * sizeof(*s->expect));
    }
    s->expect[s->ex_len++] = (struct expect){kind, rcpt};
}

static struct egress_smtp_event *emit(struct egress_smtp *s, enum egress_smtp_event_type type)
{
    if (s->ev_head == s->ev_len)
        s->ev_head = s->ev_len = 0;
    if (s->ev_len == s->ev_cap) {
        s->ev_cap = s->ev_cap ? s->ev_cap * 2 : 16;
        s->ev = xrealloc(s->ev, s->ev_cap * sizeof(*s->ev));
    }
    struct egress_smtp_event *e = &s->ev[s->ev_len++];
    memset(e, 0, sizeof(*e));
    e->type = type;
    return e;
}

static void ev_reply(struct egress_smtp_event *e, const struct smtp_reply *r)
{
    e->code = r->code;
    memcpy(e->enhanced, r->enhanced, sizeof(e->enhanced));
    memcpy(e->text, r->text, sizeof(e->text));
}

/* a local reply, so local refusals and aborts flow through the same paths as server replies */
static struct smtp_reply local_reply(int code, const char *enh, const char *text)
{
    struct smtp_reply r;
    memset(&r, 0, sizeof(r));
    r.code = code;
    snprintf(r.enhanced, sizeof(r.enhanced), "%s", enh);
    snprintf(r.text, sizeof(r.text), "%s", text);
    return r;
}

static enum egress_smtp_result classify(int code)
{
    return code / 100 == 2 ? EGRESS_SMTP_OK : code / 100 == 5 ? EGRESS_SMTP_PERMFAIL : EGRESS_SMTP_TEMPFAIL;
}

/* ---- transaction end ---- */

static void rcpt_event(struct egress_smtp *s, size_t i, enum egress_smtp_result res, const struct smtp_reply *r,
                       bool local)
{
    struct egress_smtp_event *e = emit(s, EGRESS_SMTP_EV_RCPT);
    e->rcpt = i;
    e->result = res;
    ev_reply(e, r);
    e->local = local;
    s->t.done[i] = 1;
}

static void txn_clear(struct egress_smtp *s)
{
    free(s->t.done);
    free(s->t.mail_line);
    memset(&s->t, 0, sizeof(s->t));
}

/* txn_finish - every recipient still without an event gets `rres`, then MESSAGE_DONE */
static void txn_finish(struct egress_smtp *s, enum egress_smtp_result res, enum egress_smtp_result rres,
                       const struct smtp_reply *r, bool local)
{
    if (!s->t.active)
        return;
    for (size_t i = 0; i < s->t.n; i++)
        if (!s->t.done[i])
            rcpt_event(s, i, rres, r, local);
    struct egress_smtp_event *e = emit(s, EGRESS_SMTP_EV_MESSAGE_DONE);
    e->result = res;
    e->n_accepted = s->t.n_accepted;
    e->at_mail = s->t.mail_failed;
    ev_reply(e, r);
    e->local = local;
    txn_clear(s);
    if (s->state == ST_TXN)
        s->state = ST_READY;
}

static void session_over(struct egress_smtp *s, enum egress_smtp_event_type type, const struct smtp_reply *r,
                         bool local, bool send_quit)
{
    txn_finish(s, EGRESS_SMTP_TEMPFAIL, EGRESS_SMTP_TEMPFAIL, r, local);
    struct egress_smtp_event *e = emit(s, type);
    ev_reply(e, r);
    e->local = local;
    if (send_quit)
        append(s, "QUIT\r\n");
    s->state = ST_OVER;
}

static void protocol_error(struct egress_smtp *s, const char *why)
{
    struct smtp_reply r = local_reply(0, "", why);
    session_over(s, EGRESS_SMTP_EV_PROTOCOL_ERROR, &r, true, false);
}

/* ---- commands ---- */

static void send_ehlo(struct egress_smtp *s)
{
    memset(&s->ehlo_caps, 0, sizeof(s->ehlo_caps));
    append(s, "EHLO %s\r\n", s->ehlo_name);
    expect_push(s, EGRESS_SMTP_WAIT_EHLO, 0);
    s->state = ST_EHLO;
}

static void session_ready(struct egress_smtp *s, const struct smtp_reply *r)
{
    if (s->tls == EGRESS_SMTP_TLS_REQUIRE && !s->tls_active) {
        struct smtp_reply lr = local_reply(0, "4.7.10", "STARTTLS required and not available");
        session_over(s, EGRESS_SMTP_EV_CONN_FAILED, &lr, true, true);
        return;
    }
    s->state = ST_READY;
    ev_reply(emit(s, EGRESS_SMTP_EV_READY), r);
}

static bool next_lockstep_rcpt(struct egress_smtp *s)
{
    while (s->t.next_rcpt < s->t.n && s->t.done[s->t.next_rcpt])
        s->t.next_rcpt++;
    if (s->t.next_rcpt >= s->t.n)
        return false;
    append(s, "RCPT TO:<%s>\r\n", s->t.rcpts[s->t.next_rcpt]);
    expect_push(s, EGRESS_SMTP_WAIT_RCPT, s->t.next_rcpt);
    s->t.next_rcpt++;
    return true;
}

static void send_data(struct egress_smtp *s)
{
    append(s, "DATA\r\n");
    expect_push(s, EGRESS_SMTP_WAIT_DATA, 0);
}

static void start_mail(struct egress_smtp *s)
{
    append(s, "%s", s->t.mail_line);
    expect_push(s, EGRESS_SMTP_WAIT_MAIL, 0);
    if (!(s->use_pipelining && s->caps.pipelining))
        return;
    for (size_t i = 0; i < s->t.n; i++) {
        if (s->t.done[i])
            continue;
        append(s, "RCPT TO:<%s>\r\n", s->t.rcpts[i]);
        expect_push(s, EGRESS_SMTP_WAIT_RCPT, i);
    }
    s->t.next_rcpt = s->t.n;
    send_data(s);
}

/* ---- body encoding: smtp_stuff hands out runs of the caller's body and fix-ups from static storage ---- */

static void body_next_piece(struct txn *t)
{
    if (t->piece_len > 0 || t->bstage == 2)
        return;
    t->piece = smtp_stuff_next(&t->stuff, &t->piece_len);
    if (t->stuff.done)
        t->bstage = 1;
}

/* ---- replies ---- */

static void ehlo_line(struct egress_smtp *s, const char *t, size_t n)
{
    struct egress_smtp_caps *c = &s->ehlo_caps;
    size_t k;
    if (smtp_reply_keyword(t, n, "PIPELINING"))
        c->pipelining = true;
    else if (smtp_reply_keyword(t, n, "8BITMIME"))
        c->eightbitmime = true;
    else if (smtp_reply_keyword(t, n, "SMTPUTF8"))
        c->smtputf8 = true;
    else if (smtp_reply_keyword(t, n, "STARTTLS"))
        c->starttls = true;
    else if (smtp_reply_keyword(t, n, "CHUNKING"))
        c->chunking = true;
    else if (smtp_reply_keyword(t, n, "ENHANCEDSTATUSCODES"))
        c->enhancedstatuscodes = true;
    else if ((k = smtp_reply_keyword(t, n, "SIZE")) != 0) {
        uint64_t v = 0;
        c->size = true;
        for (k++; k < n && t[k] >= '0' && t[k] <= '9'; k++)
            v = v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : v * 10 + (uint64_t)(t[k] - '0');
        c->size_max = v;
    }
}

static void on_rcpt(struct egress_smtp *s, size_t i, const struct smtp_reply *r)
{
    struct txn *t = &s->t;
    bool lockstep = !(s->use_pipelining && s->caps.pipelining);

    if (t->mail_failed) {
        rcpt_event(s, i, classify(t->mail_reply.code), &t->mail_reply, false);
        return;
    }
    if (r->code / 100 == 2) {
        t->n_accepted++;
        rcpt_event(s, i, EGRESS_SMTP_OK, r, false);
    } else if (r->code == 452 || t->saw_452) {
        /* a recipient the server takes after its 452 is in the transaction: only the others are retried */
        t->saw_452 = true;
        rcpt_event(s, i, EGRESS_SMTP_RETRY_NEW_TXN, r, false);
        if (lockstep)
            for (size_t j = i + 1; j < t->n; j++)
                if (!t->done[j])
                    rcpt_event(s, j, EGRESS_SMTP_RETRY_NEW_TXN, r, false);
    } else {
        rcpt_event(s, i, classify(r->code), r, false);
    }
    if (!lockstep)
        return;
    if (next_lockstep_rcpt(s))
        return;
    if (t->n_accepted > 0) {
        send_data(s);
        return;
    }
    struct smtp_reply nr = local_reply(0, "", "no valid recipients");
    s->need_rset = true;
    txn_finish(s, EGRESS_SMTP_NO_RCPTS, EGRESS_SMTP_TEMPFAIL, &nr, false);
}

static void on_data(struct egress_smtp *s, const struct smtp_reply *r)
{
    struct txn *t = &s->t;
    bool wanted = t->mail_ok && t->n_accepted > 0;

    if (r->code / 100 == 3) {
        t->streaming = true;
        if (TRACING(s)) {
            char note[64];
            int n = snprintf(note, sizeof(note), "[body %zu bytes]", wanted ? t->body_len : (size_t)0);
            s->trace(s->trace_ctx, PROTO_TRACE_OUT, note, (size_t)n);
        }
        /* RFC 2920 3.1: DATA accepted with no recipient; end it empty and never count its reply */
        smtp_stuff_init(&t->stuff, t->body, wanted ? t->body_len : 0, true);
        expect_push(s, EGRESS_SMTP_WAIT_DOT, 0);
        if (!wanted)
            t->dot_discard = true;
        return;
    }
    if (r->code / 100 == 2) {
        protocol_error(s, "2xx reply to DATA");
        return;
    }
    if (t->mail_failed) {
        txn_finish(s, classify(t->mail_reply.code), EGRESS_SMTP_TEMPFAIL, &t->mail_reply, false);
        return;
    }
    s->need_rset = true;
    if (t->n_accepted == 0) {
        struct smtp_reply nr = *r;
        snprintf(nr.text, sizeof(nr.text), "no valid recipients");
        txn_finish(s, EGRESS_SMTP_NO_RCPTS, EGRESS_SMTP_TEMPFAIL, &nr, false);
        return;
    }
    txn_finish(s, classify(r->code), EGRESS_SMTP_TEMPFAIL, r, false);
}

static void on_dot(struct egress_smtp *s, const struct smtp_reply *r)
{
    struct txn *t = &s->t;
    /* the terminator may be exposed and not yet reported consumed: io_uring completions race */
    if (t->bstage == 0) {
        /* the server answered before the end of data: the dialogue is out of step from here */
        if (r->code / 100 == 2) {
            protocol_error(s, "reply to end of data before the end of data");
            return;
        }
        txn_finish(s, classify(r->code), EGRESS_SMTP_TEMPFAIL, r, false);
        struct smtp_reply cr = local_reply(0, "", "reply before the end of data");
        session_over(s, EGRESS_SMTP_EV_CONN_FAILED, &cr, true, false);
        return;
    }
    if (t->dot_discard) {
        struct smtp_reply nr = local_reply(0, "", "no valid recipients");
        s->need_rset = true;
        txn_finish(s, t->mail_failed ? classify(t->mail_reply.code) : EGRESS_SMTP_NO_RCPTS, EGRESS_SMTP_TEMPFAIL,
                   t->mail_failed ? &t->mail_reply : &nr, false);
        return;
    }
    if (r->code / 100 == 3) {
        protocol_error(s, "3xx reply to end of data");
        return;
    }
    txn_finish(s, classify(r->code), EGRESS_SMTP_TEMPFAIL, r, false);
}

static void on_reply(struct egress_smtp *s, const struct smtp_reply *r)
{
    if (s->ex_head == s->ex_len) {
        if (r->code == 421)
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, false);
        else
            protocol_error(s, "reply with no command outstanding");
        return;
    }
    struct expect x = s->expect[s->ex_head++];
    int cls = r->code / 100;

    if (x.kind == EGRESS_SMTP_WAIT_QUIT) {
        struct egress_smtp_event *e = emit(s, EGRESS_SMTP_EV_CLOSED);
        ev_reply(e, r);
        s->state = ST_OVER;
        return;
    }
    if (r->code == 421) {
        if (x.kind == EGRESS_SMTP_WAIT_MAIL && s->t.active) {
            /* the transaction ends at MAIL, whatever the pipelined RCPTs would have got */
            s->t.mail_failed = true;
            s->t.mail_reply = *r;
        }
        session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, false);
        return;
    }
    if (cls == 3 && x.kind != EGRESS_SMTP_WAIT_DATA && x.kind != EGRESS_SMTP_WAIT_DOT) {
        protocol_error(s, "unexpected 3xx reply");
        return;
    }
    switch (x.kind) {
    case EGRESS_SMTP_WAIT_BANNER:
        if (cls != 2) {
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, true);
            return;
        }
        ev_reply(emit(s, EGRESS_SMTP_EV_GREETING_OK), r);
        send_ehlo(s);
        return;
    case EGRESS_SMTP_WAIT_EHLO:
        if (cls == 5) {
            memset(&s->caps, 0, sizeof(s->caps));
            append(s, "HELO %s\r\n", s->ehlo_name);
            expect_push(s, EGRESS_SMTP_WAIT_HELO, 0);
            s->state = ST_HELO;
            return;
        }
        if (cls != 2) {
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, true);
            return;
        }
        s->caps = s->ehlo_caps;
        s->caps.esmtp = true;
        if (s->tls != EGRESS_SMTP_TLS_NONE && !s->tls_active && s->caps.starttls) {
            append(s, "STARTTLS\r\n");
            expect_push(s, EGRESS_SMTP_WAIT_STARTTLS, 0);
            s->state = ST_STARTTLS;
            return;
        }
        session_ready(s, r);
        return;
    case EGRESS_SMTP_WAIT_HELO:
        if (cls != 2) {
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, true);
            return;
        }
        session_ready(s, r);
        return;
    case EGRESS_SMTP_WAIT_STARTTLS:
        if (cls == 2) {
            s->state = ST_TLS_WAIT;
            smtp_reply_reset(&s->rp);
            emit(s, EGRESS_SMTP_EV_TLS_START);
            return;
        }
        if (s->tls == EGRESS_SMTP_TLS_REQUIRE) {
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, true);
            return;
        }
        session_ready(s, r);
        return;
    case EGRESS_SMTP_WAIT_RSET:
        if (cls != 2) {
            session_over(s, EGRESS_SMTP_EV_CONN_FAILED, r, false, true);
            return;
        }
        s->need_rset = false;
        start_mail(s);
        return;
    case EGRESS_SMTP_WAIT_MAIL:
        if (cls == 2) {
            s->t.mail_ok = true;
            if (!(s->use_pipelining && s->caps.pipelining))
                next_lockstep_rcpt(s);
            return;
        }
        s->t.mail_failed = true;
        s->t.mail_reply = *r;
        if (!(s->use_pipelining && s->caps.pipelining))
            txn_finish(s, classify(r->code), classify(r->code), r, false);
        return;
    case EGRESS_SMTP_WAIT_RCPT:
        on_rcpt(s, x.rcpt, r);
        return;
    case EGRESS_SMTP_WAIT_DATA:
        on_data(s, r);
        return;
    case EGRESS_SMTP_WAIT_DOT:
        on_dot(s, r);
        return;
    default:
        protocol_error(s, "internal: unknown expectation");
        return;
    }
}

/* ---- public ---- */

static bool name_ok(const char *n)
{
    if (!n || !*n || strlen(n) > 255)
        return false;
    for (; *n; n++)
        if ((unsigned char)*n <= 32 || (unsigned char)*n >= 127)
            return false;
    return true;
}

struct egress_smtp *egress_smtp_new(const struct egress_smtp_params *p)
{
    if (!p || !name_ok(p->ehlo_name) || p->tls > EGRESS_SMTP_TLS_REQUIRE)
        return NULL;
    struct egress_smtp *s = xcalloc(1, sizeof(*s));
    s->ehlo_name = xstrdup(p->ehlo_name);
    s->use_pipelining = p->pipelining;
    s->tls = p->tls;
    smtp_reply_init(&s->rp, p->line_max, p->lines_max);
    expect_push(s, EGRESS_SMTP_WAIT_BANNER, 0);
    s->state = ST_BANNER;
    return s;
}

void egress_smtp_free(struct egress_smtp *s)
{
    if (!s)
        return;
    txn_clear(s);
    free(s->ehlo_name);
    free(s->out.p);
    free(s->next.p);
    free(s->expect);
    free(s->ev);
    free(s);
}

/* trace_reply - the line the parser just took (the reply parser keeps its text, not its code) */
static void trace_reply(struct egress_smtp *s, int rc)
{
    char line[SMTP_REPLY_TEXT_MAX + 8];
    size_t n;
    int k;
    if (rc == SMTP_REPLY_ERROR) {
        k = snprintf(line, sizeof(line), "[reply not understood: %s]", s->rp.err);
        s->trace(s->trace_ctx, PROTO_TRACE_NOTE, line, (size_t)k);
        return;
    }
    if (rc != SMTP_REPLY_LINE && rc != SMTP_REPLY_DONE)
        return;
    const char *t = smtp_reply_line_text(&s->rp, &n);
    k = snprintf(line, sizeof(line), "%03d%c%.*s", s->rp.reply.code, rc == SMTP_REPLY_LINE ? '-' : ' ',
                 (int)(n < SMTP_REPLY_TEXT_MAX ? n : SMTP_REPLY_TEXT_MAX), t);
    s->trace(s->trace_ctx, PROTO_TRACE_IN, line, k < (int)sizeof(line) ? (size_t)k : sizeof(line) - 1);
}

void egress_smtp_trace_set(struct egress_smtp *s, egress_smtp_trace_fn fn, void *ctx)
{
    s->trace = fn;
    s->trace_ctx = ctx;
}

int egress_smtp_feed(struct egress_smtp *s, const char *buf, size_t len)
{
    size_t i = 0;
    if (s->state == ST_OVER)
        return -EPIPE;
    while (i < len && s->state != ST_OVER) {
        if (s->state == ST_TLS_WAIT) {
            s->tls_injected = true; /* TLS-03: plaintext after the 220 is dropped, and remembered */
            return 0;
        }
        size_t used;
        int rc = smtp_reply_feed(&s->rp, buf + i, len - i, &used);
        i += used;
        if (TRACING(s))
            trace_reply(s, rc);
        if (rc == SMTP_REPLY_ERROR) {
            protocol_error(s, s->rp.err);
            return 0;
        }
        if ((rc == SMTP_REPLY_LINE || rc == SMTP_REPLY_DONE) && s->rp.reply.lines >= 2 && s->ex_head < s->ex_len &&
            s->expect[s->ex_head].kind == EGRESS_SMTP_WAIT_EHLO) {
            size_t n;
            const char *t = smtp_reply_line_text(&s->rp, &n);
            ehlo_line(s, t, n);
        }
        if (rc == SMTP_REPLY_DONE)
            on_reply(s, &s->rp.reply);
    }
    return 0;
}

const char *egress_smtp_output(struct egress_smtp *s, size_t *len)
{
    if (s->out.off == s->out.len && s->next.len > 0) {
        struct obuf tmp = s->out;
        s->out = s->next;
        s->next = tmp;
        s->next.len = s->next.off = 0;
    }
    if (s->out.off < s->out.len) {
        s->last_from_body = false;
        *len = s->out.len - s->out.off;
        return s->out.p + s->out.off;
    }
    if (s->t.active && s->t.streaming) {
        body_next_piece(&s->t);
        if (s->t.piece_len > 0) {
            s->last_from_body = true;
            s->last_gen = s->txn_gen;
            *len = s->t.piece_len;
            return s->t.piece;
        }
    }
    *len = 0;
    return NULL;
}

void egress_smtp_consumed(struct egress_smtp *s, size_t n)
{
    if (!s->last_from_body) {
        ASSERT(n <= s->out.len - s->out.off);
        s->out.off += n;
        if (s->out.off == s->out.len)
            s->out.off = s->out.len = 0;
        return;
    }
    if (!s->t.active || s->last_gen != s->txn_gen)
        return; /* that message ended (its reply raced the write completion, or abort) */
    ASSERT(n <= s->t.piece_len);
    s->t.piece += n;
    s->t.piece_len -= n;
    if (s->t.piece_len == 0 && s->t.bstage == 1)
        s->t.bstage = 2;
}

bool egress_smtp_next_event(struct egress_smtp *s, struct egress_smtp_event *ev)
{
    if (s->ev_head == s->ev_len)
        return false;
    *ev = s->ev[s->ev_head++];
    return true;
}

int egress_smtp_send_message(struct egress_smtp *s, const char *sender, const char *const *rcpts, size_t n_rcpts,
                             const char *body, size_t body_len, unsigned flags)
{
    if (!sender || !rcpts || n_rcpts == 0 || (!body && body_len > 0))
        return -EINVAL;
    for (size_t i = 0; i < n_rcpts; i++)
        if (!rcpts[i])
            return -EINVAL;
    if (s->state == ST_OVER || s->state == ST_QUIT)
        return -EPIPE;
    if (s->state != ST_READY)
        return -EBUSY;

    struct txn *t = &s->t;
    txn_clear(s);
    t->active = true;
    t->sender = sender;
    t->rcpts = rcpts;
    t->n = n_rcpts;
    t->body = body ? body : "";
    t->body_len = body_len;
    t->done = xcalloc(n_rcpts, 1);
    s->state = ST_TXN;
    s->txn_gen++;

    bool eightbit, utf8 = (flags & EGRESS_SMTP_SEND_SMTPUTF8) != 0;
    uint64_t size;
    if (flags & EGRESS_SMTP_SEND_SCANNED) {
        /* line ends all CRLF: the RFC 1870 size is the length, and a CRLF the stuffing adds at the end */
        eightbit = (flags & EGRESS_SMTP_SEND_8BIT) != 0;
        size = body_len + (body_len > 0 && t->body[body_len - 1] != '\n' ? 2 : 0);
    } else {
        smtp_stuff_scan(t->body, body_len, &eightbit, &size);
    }

    /* message-wide refusals: nothing is sent */
    const char *enh = "5.1.7", *why = NULL;
    int code = smtp_addr_check(sender, s->caps.smtputf8, &enh, &why);
    if (!code && utf8 && !s->caps.smtputf8)
        code = 553, enh = "5.6.7", why = "message needs SMTPUTF8 and the server lacks it";
    if (!code && eightbit && !s->caps.eightbitmime)
        code = 554, enh = "5.6.3", why = "8-bit body and the server lacks 8BITMIME";
    if (!code && s->caps.size && s->caps.size_max > 0 && size > s->caps.size_max)
        code = 552, enh = "5.3.4", why = "message larger than the server's SIZE";
    if (code) {
        struct smtp_reply r = local_reply(code, enh, why);
        t->mail_failed = true; /* refused as a whole, as if at MAIL */
        txn_finish(s, classify(code), classify(code), &r, true);
        return 0;
    }
    for (const char *p = sender; *p; p++)
        utf8 |= (unsigned char)*p >= 0x80;
    size_t left = 0;
    for (size_t i = 0; i < n_rcpts; i++) {
        const char *renh = "5.1.3", *rwhy = NULL;
        int rc = smtp_addr_check(rcpts[i], s->caps.smtputf8, &renh, &rwhy);
        if (rc) {
            struct smtp_reply r = local_reply(rc, renh, rwhy);
            rcpt_event(s, i, EGRESS_SMTP_PERMFAIL, &r, true);
            continue;
        }
        for (const char *p = rcpts[i]; *p; p++)
            utf8 |= (unsigned char)*p >= 0x80;
        left++;
    }
    if (left == 0) {
        struct smtp_reply r = local_reply(0, "", "no valid recipients");
        txn_finish(s, EGRESS_SMTP_NO_RCPTS, EGRESS_SMTP_PERMFAIL, &r, true);
        return 0;
    }

    char sz[32] = "";
    if (s->caps.size)
        snprintf(sz, sizeof(sz), " SIZE=%llu", (unsigned long long)size);
    t->mail_line = xasprintf("MAIL FROM:<%s>%s%s%s\r\n", sender, sz, eightbit ? " BODY=8BITMIME" : "",
                             utf8 ? " SMTPUTF8" : "");
    if (s->need_rset) {
        append(s, "RSET\r\n");
        expect_push(s, EGRESS_SMTP_WAIT_RSET, 0);
        return 0;
    }
    start_mail(s);
    return 0;
}

int egress_smtp_quit(struct egress_smtp *s)
{
    if (s->state == ST_OVER || s->state == ST_QUIT)
        return -EPIPE;
    if (s->state != ST_READY)
        return -EBUSY;
    append(s, "QUIT\r\n");
    expect_push(s, EGRESS_SMTP_WAIT_QUIT, 0);
    s->state = ST_QUIT;
    return 0;
}

int egress_smtp_tls_done(struct egress_smtp *s)
{
    if (s->state != ST_TLS_WAIT)
        return -EINVAL;
    s->tls_active = true;
    memset(&s->caps, 0, sizeof(s->caps));
    smtp_reply_reset(&s->rp);
    send_ehlo(s);
    return 0;
}

void egress_smtp_abort(struct egress_smtp *s, const char *reason)
{
    if (s->state == ST_OVER)
        return;
    struct smtp_reply r = local_reply(0, "", reason ? reason : "aborted");
    session_over(s, EGRESS_SMTP_EV_CLOSED, &r, true, false);
}

const struct egress_smtp_caps *egress_smtp_caps_get(const struct egress_smtp *s)
{
    return &s->caps;
}

enum egress_smtp_wait egress_smtp_waiting(const struct egress_smtp *s)
{
    if (s->state == ST_TLS_WAIT)
        return EGRESS_SMTP_WAIT_TLS;
    if (s->state == ST_OVER || s->ex_head == s->ex_len)
        return EGRESS_SMTP_WAIT_NONE;
    return s->expect[s->ex_head].kind;
}

bool egress_smtp_over(const struct egress_smtp *s)
{
    return s->state == ST_OVER;
}

bool egress_smtp_tls_active(const struct egress_smtp *s)
{
    return s->tls_active;
}

bool egress_smtp_tls_injected(const struct egress_smtp *s)
{
    return s->tls_injected;
}

const char *egress_smtp_event_name(enum egress_smtp_event_type t)
{
    static const char *const names[] = {"NONE",         "GREETING_OK", "READY",          "TLS_START", "RCPT",
                                        "MESSAGE_DONE", "CONN_FAILED", "PROTOCOL_ERROR", "CLOSED"};
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *egress_smtp_result_name(enum egress_smtp_result r)
{
    static const char *const names[] = {"OK", "TEMPFAIL", "PERMFAIL", "RETRY_NEW_TXN", "NO_RCPTS"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
