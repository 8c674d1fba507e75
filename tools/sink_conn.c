/*
 * sink_conn - one SMTP server session of ringmail-sink (RFC 5321, RFC 2920 pipelining)
 *
 * sink_conn_new() takes an accepted socket, sends the banner and reads. Input is parsed in place from
 * the receive buffer: command lines through smtp_cmd_parse() (strict grammar, 512-octet lines),
 * DATA through smtp_data_scan() (end of data, dot-unstuffing, bare CR/LF). Replies are appended to
 * one output buffer with a single send in flight; while it has less than SINK_REPLY_MAX free the
 * parser waits, and no new read is issued before the buffer's bytes are parsed, so a client that
 * pipelines without reading is slowed by TCP instead of growing our memory.
 * A command line over SINK_LINE_MAX is dropped with a 500 at its end, or the session closed once
 * SINK_LINE_CUT bytes went by without one; a message over --max-size gets 552 and the session closes
 * (an endless DATA cannot be read to an end that never comes).
 * Closing: after the last reply (221, 421, 552) our side is shut down and the peer's remaining bytes
 * are read and dropped, so that it sees the reply rather than a reset, for at most SINK_LINGER_NS and
 * SINK_LINE_CUT bytes; disconnect-in-data resets at once.
 * Ownership: the connection owns its stream (the fd), its transaction strings and header buffer; it is
 * freed once sink_conn_abort() closed the stream and no op is in flight (on_released()).
 */
#include "tools/sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define SINK_LINGER_NS CLOCK_SEC(2) /* CLOSING: how long the peer gets to read our last reply and hang up */

static struct evl_op cancel_op; /* completions of cancel requests need no handling */

static void on_slow(struct evl *l, struct evl_op *op, int res, unsigned flags);
static void process(struct sink_conn *c);

static void touch(struct sink_conn *c)
{
    c->deadline = clock_mono_ns() + c->w->s->timeout_ns;
}

static void reset_tx(struct sink_conn *c)
{
    free(c->mail_from);
    c->mail_from = NULL;
    for (unsigned i = 0; c->rcpts && i < c->n_rcpts; i++)
        free(c->rcpts[i]);
    free(c->rcpts);
    c->rcpts = NULL;
    c->n_rcpts = 0;
    free(c->hdr);
    c->hdr = NULL;
    c->hdr_len = c->hdr_cap = 0;
    c->hdr_done = false;
    c->has_gen_sent = false;
    c->in_mail = c->utf8 = c->cut_in_data = false;
}

/* on_released - closed, and the last op came back */
static void on_released(struct evl_stream *st)
{
    struct sink_conn *c = st->owner;
    struct sink_worker *w = c->w;

    reset_tx(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    free(c);
}

/* drop - close the socket now; c is freed once its ops are back (on_released) */
static void drop(struct sink_conn *c)
{
    if (c->phase == SINK_PHASE_DEAD)
        return;
    c->phase = SINK_PHASE_DEAD;
    evl_stream_close(&c->st);
    if (c->slow_wait) {
        struct io_uring_sqe *sqe = evl_sqe(&c->w->evl, &cancel_op);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&c->slow.op, 0);
    }
}

void sink_conn_abort(struct sink_conn *c)
{
    drop(c);
}

static unsigned stream_out(struct evl_stream *st, struct iovec *iov, unsigned max)
{
    struct sink_conn *c = st->owner;

    return evl_stream_out_one(iov, c->out + c->out_off, c->out_len - c->out_off);
}

static void stream_taken(struct evl_stream *st, size_t n)
{
    struct sink_conn *c = st->owner;

    c->out_off += n;
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    else if (c->out_off > SINK_OUT_SIZE / 2) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
}

static void pump(struct sink_conn *c)
{
    if (c->phase == SINK_PHASE_DEAD)
        return;
    evl_stream_flush(&c->st);
}

/* reply - queue one reply; dropped when a client that reads nothing left no room (only timeouts) */
static void reply(struct sink_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct sink_conn *c, const char *fmt, ...)
{
    size_t room = SINK_OUT_SIZE - c->out_len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->out + c->out_len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        return;
    c->out_len += (size_t)n;
}

/* finish_close - the last reply is out: shut our side, drop what the peer still sends, for a while */
static void finish_close(struct sink_conn *c)
{
    if (c->fin_sent)
        return;
    c->fin_sent = true;
    shutdown(evl_stream_fd(&c->st), SHUT_WR);
    c->deadline = clock_mono_ns() + SINK_LINGER_NS;
}

/* close_after - end the session once the queued replies are sent */
static void close_after(struct sink_conn *c)
{
    c->phase = SINK_PHASE_CLOSING;
    c->rpos = c->rlen;
    c->discard = 0;
    c->deadline = clock_mono_ns() + SINK_LINGER_NS;
    if (!evl_stream_sending(&c->st) && c->out_off == c->out_len)
        finish_close(c);
}

static void error_reply(struct sink_conn *c, const char *text)
{
    c->w->st.errors++;
    reply(c, "%s\r\n", text);
    if (++c->errors >= SINK_ERRORS_MAX) {
        reply(c, "421 4.7.0 Too many errors, closing the connection\r\n");
        close_after(c);
    }
}

static void recv_arm(struct sink_conn *c)
{
    const struct sink_opts *o = &c->w->s->o;
    size_t want = sizeof(c->rbuf);

    if (o->slow_reader && c->phase == SINK_PHASE_DATA) {
        uint64_t chunk = o->slow_reader / 10;
        want = chunk < 1 ? 1 : chunk < want ? (size_t)chunk : want;
    }
    evl_stream_recv(&c->st, c->rbuf, want);
}

/* want_input - read again once every received byte is parsed; --slow-reader waits first in DATA */
static void want_input(struct sink_conn *c)
{
    uint64_t now;

    if (c->phase == SINK_PHASE_DEAD || evl_stream_receiving(&c->st) || c->slow_wait || c->rpos < c->rlen)
        return;
    if (c->phase == SINK_PHASE_DATA && c->w->s->o.slow_reader) {
        now = clock_mono_ns();
        if (c->slow_until > now) {
            c->slow_wait = true;
            evl_stream_hold(&c->st);
            evl_timer_arm(&c->w->evl, &c->slow, c->slow_until - now);
            return;
        }
    }
    recv_arm(c);
}

static void hdr_append(struct sink_conn *c, const char *p, size_t n)
{
    size_t from = c->hdr_len >= 3 ? c->hdr_len - 3 : 0;
    const char *end;

    if (n > c->hdr_cap - c->hdr_len)
        n = c->hdr_cap - c->hdr_len;
    memcpy(c->hdr + c->hdr_len, p, n);
    c->hdr_len += n;
    if (c->hdr_len >= 2 && c->hdr[0] == '\r' && c->hdr[1] == '\n') {
        /* the message starts with the empty line: no header section at all */
        c->hdr_len = 0;
        c->hdr_done = true;
        return;
    }
    end = memmem(c->hdr + from, c->hdr_len - from, "\r\n\r\n", 4);
    if (end) {
        c->hdr_len = (size_t)(end - c->hdr) + 2;
        c->hdr_done = true;
    } else if (c->hdr_len == c->hdr_cap) {
        c->hdr_done = true;
    }
}

static void end_of_data(struct sink_conn *c)
{
    struct sink_worker *w = c->w;

    c->phase = SINK_PHASE_CMD;
    if (c->data.bare_cr || c->data.bare_lf) {
        /* the sink tests senders: one that emits bare line ends must hear about it (RFC 5321 2.3.8) */
        w->st.rejected++;
        reply(c, "550 5.6.0 Message contains a bare CR or LF\r\n");
    } else {
        w->st.messages++;
        w->st.recipients += c->n_rcpts;
        w->st.last_msg_ns = clock_mono_ns();
        if (c->hdr) {
            /* before the record write: its cost is the sink's, not the path's under test */
            c->arrived_us = clock_real_ns() / 1000u;
            c->has_gen_sent = sink_record_gen_sent(c->hdr, c->hdr_len, &c->gen_sent_us) == 0;
            /* one host, one clock: a negative span only comes from a step of the wall clock */
            if (w->s->o.latency && c->has_gen_sent)
                lat_hist_add(&w->st.latency, c->arrived_us > c->gen_sent_us ? c->arrived_us - c->gen_sent_us : 0);
            else if (w->s->o.latency)
                w->st.latency_missing++;
        }
        sink_record_write(c);
        reply(c, "250 2.0.0 Ok: queued as %x.%llx\r\n", w->index, (unsigned long long)++w->seq);
    }
    reset_tx(c);
}

static void data_feed(struct sink_conn *c)
{
    struct sink_worker *w = c->w;
    const char *in = c->rbuf + c->rpos;
    size_t len = c->rlen - c->rpos, consumed = 0, produced = 0;
    bool want_hdr = c->hdr && !c->hdr_done;
    int rc;

    if (c->cut_in_data) {
        w->st.disconnects++;
        c->rpos = c->rlen;
        drop(c);
        return;
    }
    rc = smtp_data_scan(&c->data, in, len, want_hdr ? w->scratch : NULL, want_hdr ? len + 2 : 0, &consumed,
                        &produced);
    ASSERT(rc == 0 && (consumed > 0 || c->data.done));
    if (want_hdr)
        hdr_append(c, w->scratch, produced);
    c->rpos += consumed;
    if (c->data.too_big) {
        w->st.rejected++;
        reply(c, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
        reset_tx(c);
        close_after(c);
        return;
    }
    if (c->data.done)
        end_of_data(c);
}

static void cmd_mail(struct sink_conn *c, const struct smtp_cmd *cmd)
{
    const uint32_t known = SMTP_CMD_PARAM_SIZE | SMTP_CMD_PARAM_BODY | SMTP_CMD_PARAM_SMTPUTF8;

    if (!c->greeted) {
        error_reply(c, "503 5.5.1 Send EHLO or HELO first");
        return;
    }
    if (c->in_mail) {
        error_reply(c, "503 5.5.1 Nested MAIL command");
        return;
    }
    /* only what the EHLO reply advertised: a client that sends more is the thing under test */
    if ((cmd->params.seen & ~known) || (cmd->params.seen && !c->esmtp) ||
        cmd->params.body == SMTP_CMD_BODY_BINARYMIME) {
        error_reply(c, "555 5.5.4 Unsupported MAIL parameter");
        return;
    }
    if ((cmd->params.seen & SMTP_CMD_PARAM_SIZE) && cmd->params.size > c->w->s->o.max_size) {
        reply(c, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
        return;
    }
    c->in_mail = true;
    c->utf8 = (cmd->params.seen & SMTP_CMD_PARAM_SMTPUTF8) != 0;
    c->mail_from = xstrdup(cmd->addr.mailbox);
    reply(c, "250 2.1.0 Ok\r\n");
}

static void cmd_rcpt(struct sink_conn *c, const struct smtp_cmd *cmd)
{
    struct sink_worker *w = c->w;
    char buf[SINK_TEXT_MAX + 80];
    const char *r;
    bool close = false;

    if (!c->in_mail) {
        error_reply(c, "503 5.5.1 Need MAIL before RCPT");
        return;
    }
    if (cmd->params.seen) {
        error_reply(c, "555 5.5.4 Unsupported RCPT parameter");
        return;
    }
    if (c->n_rcpts >= w->s->o.max_rcpts) {
        reply(c, "452 4.5.3 Too many recipients\r\n");
        return;
    }
    r = sink_fault_rcpt(w, cmd->addr.local, c->peer, buf, sizeof(buf), &close);
    if (r) {
        reply(c, "%s", r);
        if (close)
            close_after(c);
        return;
    }
    if (sink_fault_cut_in_data(cmd->addr.local))
        c->cut_in_data = true;
    if (w->s->record_fd >= 0) {
        c->rcpts = xrealloc(c->rcpts, (c->n_rcpts + 1) * sizeof(*c->rcpts));
        c->rcpts[c->n_rcpts] = xstrdup(cmd->addr.mailbox);
    }
    c->n_rcpts++;
    reply(c, "250 2.1.5 Ok\r\n");
}

static void cmd_data(struct sink_conn *c)
{
    if (!c->in_mail) {
        error_reply(c, "503 5.5.1 Need MAIL before DATA");
        return;
    }
    if (c->n_rcpts == 0) {
        error_reply(c, "554 5.5.1 No valid recipients");
        return;
    }
    reply(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
    c->phase = SINK_PHASE_DATA;
    smtp_data_init(&c->data, c->w->s->o.max_size, 0);
    if (c->w->s->record_fd >= 0 || c->w->s->o.latency) {
        c->hdr_cap = c->w->s->record_fd >= 0 ? SINK_HDR_MAX : SINK_LAT_HDR_MAX;
        c->hdr = xmalloc(c->hdr_cap);
    }
}

static void command(struct sink_conn *c, const char *line, size_t len)
{
    const struct sink *s = c->w->s;
    struct smtp_cmd cmd;

    if (smtp_cmd_parse(line, len, c->utf8 ? SMTP_CMD_UTF8 : 0, &cmd) < 0) {
        const struct smtp_cmd_reply *r = smtp_cmd_err_reply(cmd.err, cmd.verb);
        char text[256];
        snprintf(text, sizeof(text), "%d %s %s", r->code, r->status, r->text);
        error_reply(c, text);
        return;
    }
    switch (cmd.verb) {
    case SMTP_CMD_EHLO:
        reset_tx(c);
        c->greeted = c->esmtp = true;
        reply(c,
              "250-%s greets %s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE %llu\r\n"
              "250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n",
              s->o.hostname, cmd.helo, (unsigned long long)s->o.max_size);
        return;
    case SMTP_CMD_HELO:
        reset_tx(c);
        c->greeted = true;
        c->esmtp = false;
        reply(c, "250 %s\r\n", s->o.hostname);
        return;
    case SMTP_CMD_MAIL: cmd_mail(c, &cmd); return;
    case SMTP_CMD_RCPT: cmd_rcpt(c, &cmd); return;
    case SMTP_CMD_DATA: cmd_data(c); return;
    case SMTP_CMD_RSET:
        reset_tx(c);
        reply(c, "250 2.0.0 Ok\r\n");
        return;
    case SMTP_CMD_NOOP: reply(c, "250 2.0.0 Ok\r\n"); return;
    case SMTP_CMD_QUIT:
        reply(c, "221 2.0.0 Bye\r\n");
        close_after(c);
        return;
    case SMTP_CMD_VRFY: reply(c, "252 2.5.2 Cannot VRFY user, but will accept the message\r\n"); return;
    case SMTP_CMD_HELP: reply(c, "214 2.0.0 ringmail-sink: a test sink that discards mail\r\n"); return;
    default: error_reply(c, "502 5.5.1 Command not implemented"); return;
    }
}

/* command_input - bytes of the command phase up to one line end */
static void command_input(struct sink_conn *c)
{
    const char *p = c->rbuf + c->rpos;
    size_t n = c->rlen - c->rpos;
    const char *lf = memchr(p, '\n', n);
    size_t take = lf ? (size_t)(lf - p) : n;

    c->rpos += take + (lf ? 1 : 0);
    if (c->discard || c->line_len + take > SINK_LINE_MAX) {
        c->discard += c->line_len + take;
        c->line_len = 0;
        if (lf) {
            c->discard = 0;
            error_reply(c, "500 5.5.2 Line too long");
        } else if (c->discard > SINK_LINE_CUT) {
            c->w->st.errors++;
            reply(c, "500 5.5.2 Line too long, closing the connection\r\n");
            close_after(c);
        }
        return;
    }
    memcpy(c->line + c->line_len, p, take);
    c->line_len += take;
    if (!lf)
        return;
    take = c->line_len;
    c->line_len = 0;
    if (take && c->line[take - 1] == '\r')
        take--;
    command(c, c->line, take);
}

static void process(struct sink_conn *c)
{
    while (c->rpos < c->rlen && (c->phase == SINK_PHASE_CMD || c->phase == SINK_PHASE_DATA)) {
        if (SINK_OUT_SIZE - c->out_len < SINK_REPLY_MAX)
            break; /* on_send resumes */
        if (c->phase == SINK_PHASE_DATA)
            data_feed(c);
        else
            command_input(c);
    }
    if (c->phase == SINK_PHASE_DEAD)
        return;
    if (c->phase == SINK_PHASE_CLOSING)
        c->rpos = c->rlen;
    pump(c);
    want_input(c);
}

static void on_recv(struct evl_stream *st, ssize_t res)
{
    struct sink_conn *c = st->owner;
    const struct sink_opts *o = &c->w->s->o;
    uint64_t now;

    if (res <= 0) {
        sink_conn_abort(c);
        return;
    }
    c->w->st.bytes += (uint64_t)res;
    c->rpos = 0;
    c->rlen = (size_t)res;
    if (c->phase == SINK_PHASE_CLOSING) {
        /* a peer that keeps sending past our last reply is not reading it: reset after a while */
        c->rpos = c->rlen;
        c->discard += (size_t)res;
        if (c->discard > SINK_LINE_CUT) {
            sink_conn_abort(c);
            return;
        }
        want_input(c);
        return;
    }
    touch(c);
    now = clock_mono_ns();
    if (o->slow_reader && c->phase == SINK_PHASE_DATA) {
        if (c->slow_until < now)
            c->slow_until = now;
        c->slow_until += (uint64_t)res * 1000000000u / o->slow_reader;
    }
    process(c);
}

static void on_send(struct evl_stream *st, int res)
{
    struct sink_conn *c = st->owner;

    if (res < 0) {
        sink_conn_abort(c);
        return;
    }
    if (c->phase == SINK_PHASE_CLOSING && c->out_len == 0) {
        finish_close(c);
        want_input(c);
        return;
    }
    process(c);
}

static void on_slow(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct sink_conn *c = op->owner;

    c->slow_wait = false;
    c->slow.armed = false;
    if (c->phase != SINK_PHASE_DEAD)
        want_input(c);
    evl_stream_drop(&c->st);
}

static const struct evl_stream_ops conn_stream = {
    .out = stream_out,
    .taken = stream_taken,
    .sent = on_send,
    .recv = on_recv,
    .released = on_released,
};

void sink_conn_new(struct sink_worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    static const char busy[] = "421 4.3.2 Too many connections, try again later\r\n";
    const struct sink_opts *o = &w->s->o;
    struct sink_conn *c;
    int one = 1;

    if (w->n_conns >= o->max_conns) {
        /* best effort: the socket is fresh, so the line fits its send buffer */
        if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("refused connection: %s", strerror(errno));
        close(fd);
        w->st.refused++;
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->w = w;
    evl_stream_init(&c->st, &w->evl, fd, &conn_stream, c);
    c->slow.op = (struct evl_op){.cb = on_slow, .owner = c};
    if (getnameinfo(peer, peerlen, c->peer, sizeof(c->peer), NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(c->peer, sizeof(c->peer), "unknown");
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    w->st.connections++;
    if (!w->st.first_conn_ns)
        w->st.first_conn_ns = clock_mono_ns();
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->slow_reader) {
        /* a small window, so that the sender feels the pace instead of filling our kernel buffers */
        int rcvbuf = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    touch(c);
    reply(c, "220 %s ESMTP ringmail-sink\r\n", o->hostname);
    pump(c);
    want_input(c);
}

void sink_conn_tick(struct sink_conn *c, uint64_t now)
{
    if (c->phase == SINK_PHASE_DEAD || !c->deadline || now < c->deadline)
        return;
    if (c->phase == SINK_PHASE_CLOSING) {
        sink_conn_abort(c);
        return;
    }
    c->w->st.timeouts++;
    reply(c, "421 4.4.2 %s Idle timeout, closing the connection\r\n", c->w->s->o.hostname);
    close_after(c);
    pump(c);
}
