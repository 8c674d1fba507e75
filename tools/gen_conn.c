/*
 * gen_conn - one SMTP client slot of ringmail-gen (RFC 5321, RFC 2920 pipelining, RFC 3207 STARTTLS)
 *
 * A slot owns at most one socket at a time, one recv and one send in flight, and (TLS) one
 * tls_conn. When the server advertises PIPELINING, MAIL, every RCPT and DATA leave in one write
 * and their replies are matched in order; otherwise one command waits for each reply.
 * Any reply that is malformed (not three digits, mixed codes, longer than GEN_LINE_MAX, more than
 * GEN_REPLY_LINES_MAX lines: smtp/smtp_reply.c decides), unexpected, or a closed connection is an error
 * event and ends the session; the peer's bytes never reach anything but the reply parser, so they
 * cannot crash us.
 * Ownership: gen_conn_abort() closes the slot's stream and cancels a pending connect; the tls_conn and
 * queued segments are freed only once no op is in flight (on_released()).
 */
#include "tools/gen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls_stream.h"

static const char dot_crlf[] = ".\r\n";
static struct evl_op cancel_op; /* completions of cancel requests need no handling */

static void on_connect(struct evl *l, struct evl_op *op, int res, unsigned flags);
static void next_message(struct gen_conn *c, uint64_t now);

void gen_conn_init(struct gen *g, struct gen_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->g = g;
    c->op_connect = (struct evl_op){.cb = on_connect, .owner = c};
    c->rcpt_dom = xcalloc(g->o.recipients, sizeof(unsigned));
    smtp_reply_init(&c->rp, GEN_LINE_MAX, GEN_REPLY_LINES_MAX);
}

void gen_conn_fini(struct gen_conn *c)
{
    free(c->rcpt_dom);
}

bool gen_conn_idle(const struct gen_conn *c)
{
    /* a slot goes idle only from on_released(), when none of its ops is in flight */
    return c->state == GEN_STATE_IDLE;
}

static void touch(struct gen_conn *c)
{
    c->deadline = clock_mono_ns() + c->g->timeout_ns;
}

/* on_released - every op is back and the socket closed: release the session's resources; the slot may
 * start again */
static void on_released(struct evl_stream *st)
{
    struct gen_conn *c = st->owner;

    tls_conn_free(c->tls);
    c->tls = NULL;
    while (c->seg_n) {
        free(c->segs[c->seg_head].owned);
        c->seg_head = (c->seg_head + 1) % GEN_SEG_MAX;
        c->seg_n--;
    }
    c->seg_head = 0;
    smtp_reply_reset(&c->rp);
    c->state = GEN_STATE_IDLE;
    c->deadline = 0;
    c->in_tx = c->waiting_rate = false;
    /* the main loop restarts idle slots: starting here would reuse the slot under our caller */
    c->g->kick = true;
}

void gen_conn_abort(struct gen_conn *c)
{
    if (c->state == GEN_STATE_IDLE || c->state == GEN_STATE_CLOSING) {
        if (c->state == GEN_STATE_IDLE)
            c->claimed = false;
        return;
    }
    if (c->state == GEN_STATE_CONNECTING) {
        struct io_uring_sqe *sqe = evl_sqe(&c->g->evl, &cancel_op);
        io_uring_prep_cancel(sqe, &c->op_connect, 0);
    }
    c->state = GEN_STATE_CLOSING;
    c->deadline = 0;
    evl_stream_close(&c->st);
}

static bool dead(const struct gen_conn *c)
{
    return c->state == GEN_STATE_CLOSING || c->state == GEN_STATE_IDLE;
}

/* account_fail - an error event; a message the slot held fails with it */
static void account_fail(struct gen_conn *c, int code, enum gen_err named, const char *text)
{
    struct gen *g = c->g;

    if (c->in_tx) {
        g->st.failed++;
    } else if (c->claimed) {
        g->st.attempted++;
        g->st.failed++;
    }
    c->claimed = false;
    c->in_tx = false;
    gen_error(g, code, named, text);
}

/* fail - the session ends with an error */
static void fail(struct gen_conn *c, int code, enum gen_err named, const char *text)
{
    account_fail(c, code, named, text);
    gen_conn_abort(c);
}

static bool seg_push(struct gen_conn *c, const char *p, size_t len, char *owned)
{
    struct gen_seg *s;

    if (len == 0) {
        free(owned);
        return true;
    }
    if (c->seg_n == GEN_SEG_MAX) {
        /* only a server that answers without reading gets here */
        free(owned);
        fail(c, 0, GEN_ERR_PROTOCOL, "server replies faster than it reads");
        return false;
    }
    s = &c->segs[(c->seg_head + c->seg_n) % GEN_SEG_MAX];
    *s = (struct gen_seg){.p = p, .len = len, .owned = owned};
    c->seg_n++;
    return true;
}

static void seg_advance(struct gen_conn *c, size_t n)
{
    while (c->seg_n && n) {
        struct gen_seg *s = &c->segs[c->seg_head];
        size_t take = n < s->len ? n : s->len;
        s->p += take;
        s->len -= take;
        n -= take;
        if (s->len == 0) {
            free(s->owned);
            s->owned = NULL;
            c->seg_head = (c->seg_head + 1) % GEN_SEG_MAX;
            c->seg_n--;
        }
    }
}

static void recv_arm(struct gen_conn *c)
{
    evl_stream_recv(&c->st, c->rbuf, sizeof(c->rbuf));
}

/* stream_out - the queued segments, sent with one sendmsg (or encrypted) without being joined */
static unsigned stream_out(struct evl_stream *st, struct iovec *iov, unsigned max)
{
    struct gen_conn *c = st->owner;
    unsigned n = 0;

    for (; n < c->seg_n && n < max; n++) {
        const struct gen_seg *s = &c->segs[(c->seg_head + n) % GEN_SEG_MAX];
        iov[n] = (struct iovec){.iov_base = (void *)s->p, .iov_len = s->len};
    }
    return n;
}

static void stream_taken(struct evl_stream *st, size_t n)
{
    seg_advance(st->owner, n);
}

static void pump(struct gen_conn *c)
{
    if (c->state == GEN_STATE_IDLE || c->state == GEN_STATE_CLOSING || c->state == GEN_STATE_CONNECTING)
        return;
    evl_stream_flush(&c->st);
}

static void send_cmd(struct gen_conn *c, char *owned)
{
    if (seg_push(c, owned, strlen(owned), owned))
        pump(c);
}

static void quit(struct gen_conn *c)
{
    c->claimed = false;
    c->state = GEN_STATE_QUIT;
    touch(c);
    send_cmd(c, xstrdup("QUIT\r\n"));
}

/* rcpt_cmd - the buffers are sized for the longest domain (253) and a 20-digit sequence number */
static void rcpt_cmd(struct gen_conn *c, unsigned i, char *buf, size_t cap, size_t *n)
{
    int w = snprintf(buf + *n, cap - *n, "RCPT TO:<u%llur%u@%s>\r\n", (unsigned long long)c->seq, i,
                     c->g->o.domains[c->rcpt_dom[i]].name);
    ASSERT(w > 0 && (size_t)w < cap - *n);
    *n += (size_t)w;
}

static void start_tx(struct gen_conn *c, uint64_t now)
{
    struct gen *g = c->g;
    size_t cap = 64 + strlen(g->o.sender) + (size_t)g->o.recipients * 300;
    char *buf = xmalloc(cap);
    size_t n;

    c->seq = ++g->seq;
    for (unsigned i = 0; i < g->o.recipients; i++)
        c->rcpt_dom[i] = gen_msg_pick_domain(&g->o);
    c->in_tx = true;
    c->mail_failed = c->tx_failed = c->rcpt_ok = false;
    c->step = 0;
    g->st.attempted++;
    n = (size_t)snprintf(buf, cap, "MAIL FROM:<%s>\r\n", g->o.sender);
    if (c->pipelining) {
        for (unsigned i = 0; i < g->o.recipients; i++)
            rcpt_cmd(c, i, buf, cap, &n);
        n += (size_t)snprintf(buf + n, cap - n, "DATA\r\n");
    }
    c->state = GEN_STATE_TX;
    c->t_mail = now;
    c->sent_us = clock_real_ns() / 1000u;
    touch(c);
    if (seg_push(c, buf, n, buf))
        pump(c);
}

/* tx_reply - a failed reply inside a transaction; what follows a failed MAIL is not counted again */
static void tx_error(struct gen_conn *c, int code, const char *text, bool count)
{
    c->tx_failed = true;
    if (count)
        gen_error(c->g, code, GEN_ERR_N, text);
}

static void end_tx(struct gen_conn *c, bool ok, uint64_t now)
{
    struct gen *g = c->g;

    if (ok) {
        g->st.sent++;
        lat_hist_add(&g->st.latency, (now - c->t_mail) / 1000u);
    } else {
        g->st.failed++;
    }
    c->in_tx = false;
    c->claimed = false;
    c->msgs_on_conn++;
}

static void rset(struct gen_conn *c)
{
    c->state = GEN_STATE_RSET;
    touch(c);
    send_cmd(c, xstrdup("RSET\r\n"));
}

static void after_message(struct gen_conn *c, uint64_t now)
{
    if (c->g->o.per_conn && c->msgs_on_conn >= c->g->o.per_conn)
        quit(c);
    else
        next_message(c, now);
}

static void next_message(struct gen_conn *c, uint64_t now)
{
    struct gen *g = c->g;

    c->state = GEN_STATE_READY;
    c->waiting_rate = false;
    c->deadline = 0;
    if (g->stopping || (g->end_ns && now >= g->end_ns)) {
        quit(c);
        return;
    }
    if (!c->claimed) {
        if (!gen_claim(g, now)) {
            quit(c);
            return;
        }
        c->claimed = true;
    }
    if (!gen_rate_take(g, now)) {
        c->waiting_rate = true;
        return;
    }
    start_tx(c, now);
}

static void start_tls(struct gen_conn *c)
{
    struct in6_addr a;
    /* RFC 6066 section 3: no address literal in SNI */
    bool literal = inet_pton(AF_INET, c->g->host, &a) == 1 || inet_pton(AF_INET6, c->g->host, &a) == 1;

    c->tls = tls_conn_new(c->g->tls, TLS_ROLE_CLIENT, literal ? NULL : c->g->host);
    if (tls_conn_state(c->tls) == TLS_STATE_FAILED) {
        fail(c, 0, GEN_ERR_TLS, tls_conn_error(c->tls));
        return;
    }
    c->state = GEN_STATE_HANDSHAKE;
    c->switched = true;
    touch(c);
    tls_stream_start(&c->st, c->tls);
}

static void send_ehlo(struct gen_conn *c)
{
    c->state = GEN_STATE_EHLO;
    c->pipelining = c->has_starttls = false;
    send_cmd(c, xasprintf("EHLO %s\r\n", c->g->o.ehlo));
}

static void tx_reply(struct gen_conn *c, int code, const char *text, uint64_t now)
{
    unsigned nr = c->g->o.recipients;
    bool ok = code / 100 == 2;

    if (c->step == 0) {
        if (!ok) {
            c->mail_failed = true;
            tx_error(c, code, text, true);
        }
        c->step++;
        if (!c->pipelining) {
            if (!ok) {
                end_tx(c, false, now);
                rset(c);
            } else {
                char buf[400];
                size_t n = 0;
                rcpt_cmd(c, 0, buf, sizeof(buf), &n);
                send_cmd(c, xstrdup(buf));
            }
        }
        return;
    }
    if (c->step <= nr) {
        if (ok)
            c->rcpt_ok = true;
        else
            tx_error(c, code, text, !c->mail_failed);
        c->step++;
        if (!c->pipelining) {
            if (c->step <= nr) {
                char buf[400];
                size_t n = 0;
                rcpt_cmd(c, c->step - 1, buf, sizeof(buf), &n);
                send_cmd(c, xstrdup(buf));
            } else if (c->rcpt_ok) {
                send_cmd(c, xstrdup("DATA\r\n"));
            } else {
                end_tx(c, false, now);
                rset(c);
            }
        }
        return;
    }
    /* the reply to DATA */
    if (code == 354) {
        struct gen *g = c->g;
        /* stamped at MAIL FROM, sent now: the header block is built when the body goes out */
        char *h = g->synthetic ? gen_msg_headers(g, c->seq, g->o.domains[c->rcpt_dom[0]].name, c->sent_us)
                               : gen_msg_stamp(c->sent_us);
        if (!seg_push(c, h, strlen(h), h))
            return;
        if (!seg_push(c, g->body, g->body_len, NULL) || !seg_push(c, dot_crlf, 3, NULL))
            return;
        c->state = GEN_STATE_BODY;
        touch(c);
        pump(c);
        return;
    }
    /* after a failed MAIL or with no recipient left, DATA's refusal is a consequence, not news */
    tx_error(c, code, text, !c->mail_failed && c->rcpt_ok);
    end_tx(c, false, now);
    rset(c);
}

/* on_reply - one complete reply (the code and its kept text: smtp/smtp_reply.h) */
static void on_reply(struct gen_conn *c, int code, const char *text)
{
    struct gen *g = c->g;
    uint64_t now = clock_mono_ns();

    if (code == 421 && c->state != GEN_STATE_QUIT) {
        fail(c, code, GEN_ERR_N, text); /* the server is closing the session */
        return;
    }
    switch (c->state) {
    case GEN_STATE_BANNER:
        if (code != 220) {
            fail(c, code, GEN_ERR_N, text);
            return;
        }
        send_ehlo(c);
        return;
    case GEN_STATE_EHLO:
        if (code / 100 != 2) {
            fail(c, code, GEN_ERR_N, text);
            return;
        }
        if (g->o.starttls && !c->tls) {
            if (!c->has_starttls) {
                fail(c, 0, GEN_ERR_TLS, "the server does not offer STARTTLS");
                return;
            }
            c->state = GEN_STATE_STARTTLS;
            send_cmd(c, xstrdup("STARTTLS\r\n"));
            return;
        }
        next_message(c, now);
        return;
    case GEN_STATE_STARTTLS:
        if (code != 220) {
            fail(c, code, GEN_ERR_N, text);
            return;
        }
        start_tls(c);
        return;
    case GEN_STATE_TX:
        tx_reply(c, code, text, now);
        return;
    case GEN_STATE_BODY: {
        bool ok = code / 100 == 2 && !c->mail_failed;
        if (!ok)
            tx_error(c, code, text, code / 100 != 2);
        end_tx(c, ok, now);
        after_message(c, now);
        return;
    }
    case GEN_STATE_RSET:
        if (code / 100 != 2) {
            fail(c, code, GEN_ERR_N, text);
            return;
        }
        after_message(c, now);
        return;
    case GEN_STATE_QUIT:
        gen_conn_abort(c);
        return;
    default:
        fail(c, 0, GEN_ERR_PROTOCOL, "reply when none was expected");
        return;
    }
}

/* input - plaintext from the server, fed to the reply parser; false when the session ended */
static bool input(struct gen_conn *c, const char *p, size_t len)
{
    while (len) {
        size_t used, tl;
        if (c->switched) {
            /* RFC 3207 section 5, TLS-01: nothing may follow the 220 in the clear */
            fail(c, 0, GEN_ERR_TLS, "plaintext after the 220 to STARTTLS");
            return false;
        }
        int rc = smtp_reply_feed(&c->rp, p, len, &used);
        p += used;
        len -= used;
        if (rc == SMTP_REPLY_ERROR) {
            fail(c, 0, GEN_ERR_PROTOCOL, c->rp.err);
            return false;
        }
        if (rc == SMTP_REPLY_MORE)
            return true;
        if (c->state == GEN_STATE_EHLO) {
            const char *text = smtp_reply_line_text(&c->rp, &tl);
            if (smtp_reply_keyword(text, tl, "PIPELINING"))
                c->pipelining = true;
            if (smtp_reply_keyword(text, tl, "STARTTLS"))
                c->has_starttls = true;
        }
        if (rc == SMTP_REPLY_DONE) {
            on_reply(c, c->rp.reply.code, c->rp.reply.text);
            if (dead(c))
                return false;
        }
    }
    return true;
}

/* on_opened - the TLS handshake completed: greet again (RFC 3207 4.2) */
static void on_opened(struct evl_stream *st)
{
    struct gen_conn *c = st->owner;

    if (c->state != GEN_STATE_HANDSHAKE)
        return;
    c->tls_done = true;
    c->g->st.tls_sessions++;
    touch(c);
    send_ehlo(c);
}

static void on_recv(struct evl_stream *st, ssize_t n)
{
    struct gen_conn *c = st->owner;

    if (n <= 0) {
        enum tls_state ts = c->tls ? tls_conn_state(c->tls) : TLS_STATE_ESTABLISHED;
        if (ts == TLS_STATE_FAILED)
            fail(c, 0, GEN_ERR_TLS, tls_conn_error(c->tls) ? tls_conn_error(c->tls) : "TLS failed");
        else if (c->tls && n == -ENOBUFS)
            fail(c, 0, GEN_ERR_TLS, "TLS input does not drain");
        else if (ts == TLS_STATE_CLOSED && n == 0)
            fail(c, 0, GEN_ERR_CLOSED, "TLS close_notify");
        else if (c->state == GEN_STATE_QUIT)
            gen_conn_abort(c);
        else
            fail(c, 0, GEN_ERR_CLOSED, n == 0 ? "connection closed by the server" : strerror((int)-n));
        return;
    }
    touch(c);
    c->switched = false;
    bool alive = input(c, c->rbuf, (size_t)n);
    c->switched = false;
    if (!alive)
        return;
    if (c->waiting_rate)
        c->deadline = 0;
    recv_arm(c);
    pump(c);
}

static void on_send(struct evl_stream *st, int res)
{
    struct gen_conn *c = st->owner;

    if (res < 0) {
        fail(c, 0, GEN_ERR_CLOSED, strerror(-res));
        return;
    }
    if (!c->waiting_rate)
        touch(c);
    pump(c);
}

static const struct evl_stream_ops conn_stream = {
    .out = stream_out,
    .taken = stream_taken,
    .sent = on_send,
    .recv = on_recv,
    .opened = on_opened,
    .released = on_released,
};

static void on_connect(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct gen_conn *c = op->owner;
    int one = 1;

    if (c->state == GEN_STATE_CLOSING) {
        evl_stream_drop(&c->st);
        return;
    }
    if (res < 0) {
        /* a short pause, or a refused port would spin through the whole budget at once */
        c->retry_at = clock_mono_ns() + CLOCK_MS(100);
        fail(c, 0, GEN_ERR_CONNECT, strerror(-res));
        evl_stream_drop(&c->st);
        return;
    }
    c->g->st.connections++;
    setsockopt(evl_stream_fd(&c->st), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = GEN_STATE_BANNER;
    c->msgs_on_conn = 0;
    c->tls_done = false;
    touch(c);
    recv_arm(c);
    evl_stream_drop(&c->st);
}

/* start - an idle slot connects when there is a message for it */
static void start(struct gen_conn *c, uint64_t now)
{
    struct gen *g = c->g;
    struct io_uring_sqe *sqe;
    int fd;

    if (c->state != GEN_STATE_IDLE || g->stopping || now < c->retry_at)
        return;
    if (!c->claimed) {
        if (!gen_claim(g, now))
            return;
        c->claimed = true;
    }
    fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        c->retry_at = now + CLOCK_MS(100);
        account_fail(c, 0, GEN_ERR_CONNECT, strerror(e));
        return;
    }
    evl_stream_init(&c->st, &g->evl, fd, &conn_stream, c);
    c->state = GEN_STATE_CONNECTING;
    touch(c);
    sqe = evl_sqe(&g->evl, &c->op_connect);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&g->addr, g->addrlen);
    evl_stream_hold(&c->st);
}

void gen_conn_tick(struct gen_conn *c, uint64_t now)
{
    struct gen *g = c->g;

    if (c->state == GEN_STATE_IDLE) {
        start(c, now);
        return;
    }
    if (c->state == GEN_STATE_READY && c->waiting_rate) {
        next_message(c, now);
        return;
    }
    if (c->deadline && now >= c->deadline && c->state != GEN_STATE_CLOSING) {
        if (c->state == GEN_STATE_QUIT)
            gen_conn_abort(c);
        else
            fail(c, 0, GEN_ERR_TIMEOUT, "no reply in time");
    }
    (void)g;
}
