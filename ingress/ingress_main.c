/*
 * ringmail-ingress - SMTP server worker (foundation skeleton)
 *
 * Accepts on the listeners the supervisor opened (multishot accept on io_uring; several workers
 * share them) and runs a minimal SMTP dialogue: banner, EHLO/HELO, NOOP, RSET, QUIT, HELP.
 * Mail transactions answer 451 4.3.2 until the ingress/spool issue wires DATA to the spool, so a
 * client is told to retry, never told its mail was taken. On SIGTERM it stops accepting, says 421
 * to open sessions and exits.
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/mem.h"
#include "../common/role_rt.h"

#define INGRESS_LINE_MAX 512
#define INGRESS_MAX_LISTENERS 16

struct ingress;

struct conn {
    struct ingress *ig;
    int fd;
    unsigned inflight;
    bool closing;
    bool discarding; /* inside an over-long line: drop bytes up to the next LF */
    bool sending;
    struct evl_op recv_op, send_op, close_op;
    char in[INGRESS_LINE_MAX + 2];
    size_t in_len;
    char *out;
    size_t out_len, out_cap, out_sent;
    struct conn *next, *prev;
};

struct listener {
    struct ingress *ig;
    int fd;
    struct evl_op op;
    bool armed;
};

struct ingress {
    struct role_rt *rt;
    struct listener ls[INGRESS_MAX_LISTENERS];
    unsigned n_ls;
    struct conn *conns;
    unsigned n_conns;
};

static void conn_recv(struct conn *c);
static void conn_flush(struct conn *c);

static void conn_maybe_free(struct conn *c)
{
    if (c->inflight || !c->closing)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->ig->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->ig->n_conns--;
    free(c->out);
    free(c);
}

static void on_close(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct conn *c = op->owner;
    c->inflight--;
    conn_maybe_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->fd < 0)
        return;
    c->closing = true;
    /* completes any recv still queued on the socket, so the in-flight count can reach zero */
    shutdown(c->fd, SHUT_RDWR);
    struct io_uring_sqe *sqe = evl_sqe(&c->ig->rt->evl, &c->close_op);
    io_uring_prep_close(sqe, c->fd);
    c->fd = -1;
    c->inflight++;
}

static void conn_reply(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_reply(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    char line[600];

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    if (c->out_len + (size_t)n > c->out_cap) {
        c->out_cap = (c->out_len + (size_t)n) * 2;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, line, (size_t)n);
    c->out_len += (size_t)n;
}

static void on_send(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct conn *c = op->owner;

    c->inflight--;
    c->sending = false;
    if (res <= 0 || c->fd < 0) {
        conn_close(c);
        conn_maybe_free(c);
        return;
    }
    c->out_sent += (size_t)res;
    conn_flush(c);
}

static void conn_flush(struct conn *c)
{
    if (c->sending || c->fd < 0)
        return;
    if (c->out_sent == c->out_len) {
        c->out_sent = c->out_len = 0;
        return;
    }
    struct io_uring_sqe *sqe = evl_sqe(&c->ig->rt->evl, &c->send_op);
    io_uring_prep_send(sqe, c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);
    c->sending = true;
    c->inflight++;
}

static bool verb_is(const char *line, size_t len, const char *verb)
{
    size_t n = strlen(verb);
    return len >= n && strncasecmp(line, verb, n) == 0 && (len == n || line[n] == ' ');
}

/* handle_line - one command line without its CRLF; returns false when the session ends */
static bool handle_line(struct conn *c, const char *line, size_t len)
{
    struct role_rt *rt = c->ig->rt;

    shm_counter_add(rt->self, SHM_CTR_SMTP_COMMANDS, 1);
    if (memchr(line, '\0', len) || memchr(line, '\r', len)) {
        conn_reply(c, "501 5.5.2 NUL or bare CR in command line");
        return true;
    }
    if (verb_is(line, len, "EHLO")) {
        conn_reply(c, "250-%s", rt->cfg.hostname);
        conn_reply(c, "250-PIPELINING");
        conn_reply(c, "250 ENHANCEDSTATUSCODES");
    } else if (verb_is(line, len, "HELO")) {
        conn_reply(c, "250 %s", rt->cfg.hostname);
    } else if (verb_is(line, len, "NOOP") || verb_is(line, len, "RSET")) {
        conn_reply(c, "250 2.0.0 OK");
    } else if (verb_is(line, len, "QUIT")) {
        conn_reply(c, "221 2.0.0 %s closing connection", rt->cfg.hostname);
        return false;
    } else if (verb_is(line, len, "HELP")) {
        conn_reply(c, "214 2.0.0 ringmail: EHLO HELO NOOP RSET QUIT HELP");
    } else if (verb_is(line, len, "MAIL") || verb_is(line, len, "RCPT") || verb_is(line, len, "DATA")) {
        conn_reply(c, "451 4.3.2 this node does not accept mail yet; try again later");
    } else {
        conn_reply(c, "502 5.5.1 command not recognized");
    }
    return true;
}

static void on_recv(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct conn *c = op->owner;
    bool keep = true;

    c->inflight--;
    if (res <= 0 || c->fd < 0) {
        conn_close(c);
        conn_maybe_free(c);
        return;
    }
    c->in_len += (size_t)res;
    size_t start = 0;
    for (size_t i = 0; i < c->in_len && keep; i++) {
        if (c->in[i] != '\n')
            continue;
        if (c->discarding) {
            c->discarding = false;
        } else {
            size_t len = i - start;
            if (len > 0 && c->in[start + len - 1] == '\r')
                len--;
            keep = handle_line(c, c->in + start, len);
        }
        start = i + 1;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (c->in_len >= INGRESS_LINE_MAX) {
        /* RFC 5321 4.5.3.1.4: 512 octets with CRLF; say so once, then skip to the end of the line */
        if (!c->discarding)
            conn_reply(c, "500 5.5.2 line too long");
        c->discarding = true;
        c->in_len = 0;
    }
    conn_flush(c);
    if (!keep) {
        c->closing = true;
        if (!c->sending)
            conn_close(c);
    } else {
        conn_recv(c);
    }
    conn_maybe_free(c);
}

static void conn_recv(struct conn *c)
{
    if (c->fd < 0)
        return;
    struct io_uring_sqe *sqe = evl_sqe(&c->ig->rt->evl, &c->recv_op);
    io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    c->inflight++;
}

static void listener_arm(struct listener *ls)
{
    struct io_uring_sqe *sqe = evl_sqe(&ls->ig->rt->evl, &ls->op);
    io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    ls->armed = true;
}

static void on_accept(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct listener *ls = op->owner;
    struct ingress *ig = ls->ig;

    if (!(flags & IORING_CQE_F_MORE)) {
        ls->armed = false;
        if (!ig->rt->draining)
            listener_arm(ls);
    }
    if (res < 0) {
        if (res != -ECANCELED && res != -EAGAIN && res != -EINTR)
            log_warn("accept: %s", strerror(-res));
        return;
    }
    if (ig->rt->draining) {
        close(res);
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->ig = ig;
    c->fd = res;
    c->recv_op = (struct evl_op){on_recv, c};
    c->send_op = (struct evl_op){on_send, c};
    c->close_op = (struct evl_op){on_close, c};
    c->next = ig->conns;
    if (ig->conns)
        ig->conns->prev = c;
    ig->conns = c;
    ig->n_conns++;
    shm_counter_add(ig->rt->self, SHM_CTR_SMTP_CONNECTIONS, 1);
    conn_reply(c, "220 %s ESMTP ringmail", ig->rt->cfg.hostname);
    conn_flush(c);
    conn_recv(c);
}

static bool on_drain(struct role_rt *rt)
{
    struct ingress *ig = rt->ctx;

    for (unsigned i = 0; i < ig->n_ls; i++) {
        if (ig->ls[i].armed) {
            struct io_uring_sqe *sqe = evl_sqe(&rt->evl, NULL);
            io_uring_prep_cancel(sqe, &ig->ls[i].op, 0);
            ig->ls[i].armed = false;
        }
    }
    for (struct conn *c = ig->conns; c; c = c->next) {
        if (!c->closing) {
            conn_reply(c, "421 4.3.2 %s shutting down", rt->cfg.hostname);
            conn_flush(c);
            c->closing = true;
        }
        if (!c->sending && c->fd >= 0)
            conn_close(c);
    }
    return ig->n_conns == 0;
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct ingress ig;

    role_rt_init(&rt, SHM_ROLE_INGRESS, argc, argv);
    ig.rt = &rt;
    rt.ctx = &ig;
    rt.hooks.on_drain = on_drain;
    if (!rt.listen_fds || !rt.listen_fds[0])
        fatal("no listening sockets were handed over (--listen-fds)");
    for (const char *p = rt.listen_fds; *p && ig.n_ls < INGRESS_MAX_LISTENERS;) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0)
            fatal("bad --listen-fds %s", rt.listen_fds);
        ig.ls[ig.n_ls] = (struct listener){.ig = &ig, .fd = (int)fd};
        ig.ls[ig.n_ls].op = (struct evl_op){on_accept, &ig.ls[ig.n_ls]};
        listener_arm(&ig.ls[ig.n_ls]);
        ig.n_ls++;
        p = *end == ',' ? end + 1 : end;
    }
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    role_rt_fini(&rt);
    return rc;
}
