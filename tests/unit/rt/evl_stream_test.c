/*
 * evl_stream_test - the socket stream on a real io_uring loop, over socketpairs
 *
 * Cases: several segments leave in one sendmsg unjoined; a send the peer does not read comes back
 * partial and the rest follows; EOF and a send error reach the owner; released() waits for every op
 * (the stream's and the owner's) and runs once, never inside evl_stream_close(); a TLS round trip with
 * close_notify; STARTTLS on the server side: the 220 leaves in the clear, no recv runs before it has,
 * and bytes the client injected after STARTTLS never come out of the filter as plaintext.
 * Exit 0 pass, 1 fail, 77 when io_uring is unavailable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "rt/evl_stream.h"
#include "tests/lib/check.h"
#include "tls/tls_stream.h"

struct peer {
    struct evl_stream st;
    struct buf out; /* queued output; off bytes of it already taken */
    size_t off;
    const char *seg[3]; /* or: borrowed segments, each sent whole */
    unsigned n_seg;
    size_t seg_off;
    char in[4096];
    struct buf got;    /* plaintext received */
    bool rearm;        /* read on after each recv */
    ssize_t last;      /* last recv result <= 0, 1 while none */
    int sent_calls, sent_err, released, opened;
    bool in_close;     /* inside evl_stream_close(): released() must not run */
};

static unsigned p_out(struct evl_stream *st, struct iovec *iov, unsigned max)
{
    struct peer *p = st->owner;
    unsigned n = 0;

    if (p->n_seg) {
        size_t skip = p->seg_off;
        for (unsigned i = 0; i < p->n_seg && n < max; i++) {
            size_t len = strlen(p->seg[i]);
            if (skip >= len) {
                skip -= len;
                continue;
            }
            iov[n++] = (struct iovec){.iov_base = (void *)(p->seg[i] + skip), .iov_len = len - skip};
            skip = 0;
        }
        return n;
    }
    if (p->off == p->out.len)
        return 0;
    iov[0] = (struct iovec){.iov_base = p->out.data + p->off, .iov_len = p->out.len - p->off};
    return 1;
}

static void p_taken(struct evl_stream *st, size_t n)
{
    struct peer *p = st->owner;

    if (p->n_seg)
        p->seg_off += n;
    else
        p->off += n;
}

static void p_sent(struct evl_stream *st, int res)
{
    struct peer *p = st->owner;

    p->sent_calls++;
    if (res <= 0)
        p->sent_err = res;
}

static void p_recv(struct evl_stream *st, ssize_t n)
{
    struct peer *p = st->owner;

    if (n <= 0) {
        p->last = n;
        return;
    }
    buf_append(&p->got, p->in, (size_t)n);
    if (p->rearm)
        evl_stream_recv(st, p->in, sizeof(p->in));
}

static void p_opened(struct evl_stream *st)
{
    ((struct peer *)st->owner)->opened++;
}

static void p_released(struct evl_stream *st)
{
    struct peer *p = st->owner;

    CHECK(!p->in_close, "released() ran inside evl_stream_close()");
    p->released++;
}

static const struct evl_stream_ops peer_ops = {
    .out = p_out, .taken = p_taken, .sent = p_sent, .recv = p_recv, .opened = p_opened, .released = p_released,
};

static void peer_init(struct peer *p, struct evl *l, int fd)
{
    memset(p, 0, sizeof(*p));
    p->last = 1;
    evl_stream_init(&p->st, l, fd, &peer_ops, p);
}

static void peer_close(struct peer *p)
{
    p->in_close = true;
    evl_stream_close(&p->st);
    p->in_close = false;
}

static void peer_fini(struct peer *p)
{
    buf_fini(&p->out);
    buf_fini(&p->got);
}

/* run - turn the loop until done(arg) or about two seconds went by */
static bool run(struct evl *l, bool (*done)(void *), void *arg)
{
    for (int i = 0; i < 2000; i++) {
        if (done(arg))
            return true;
        evl_run_once(l, false);
        if (!done(arg))
            usleep(1000);
    }
    return done(arg);
}

static bool is_released(void *arg)
{
    return ((struct peer *)arg)->released > 0;
}

static bool ended(void *arg)
{
    return ((struct peer *)arg)->last <= 0;
}

static bool sent_error(void *arg)
{
    return ((struct peer *)arg)->sent_err < 0;
}

struct want {
    struct peer *p;
    size_t len;
};

static bool got_len(void *arg)
{
    struct want *w = arg;
    return w->p->got.len >= w->len;
}

static void pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
        perror("socketpair");
        exit(1);
    }
}

static void close_both(struct evl *l, struct peer *a, struct peer *b)
{
    peer_close(a);
    peer_close(b);
    CHECK(run(l, is_released, a) && run(l, is_released, b), "both streams released after close");
    CHECK(a->released == 1 && b->released == 1, "released once: %d %d", a->released, b->released);
}

static void test_segments(struct evl *l)
{
    struct peer a, b;
    int fds[2];

    pair(fds);
    peer_init(&a, l, fds[0]);
    peer_init(&b, l, fds[1]);
    a.seg[0] = "MAIL FROM:<a@b>\r\n";
    a.seg[1] = "body body body\r\n";
    a.seg[2] = ".\r\n";
    a.n_seg = 3;
    b.rearm = true;
    evl_stream_recv(&b.st, b.in, sizeof(b.in));
    evl_stream_flush(&a.st);
    CHECK(evl_stream_sending(&a.st), "three segments in flight");
    struct want w = {&b, 36};
    CHECK(run(l, got_len, &w), "all bytes arrived: %zu", b.got.len);
    CHECK(b.got.len == 36 && memcmp(b.got.data, "MAIL FROM:<a@b>\r\nbody body body\r\n.\r\n", 36) == 0,
          "bytes in order");
    CHECK(a.seg_off == 36 && a.sent_calls == 1, "one send took everything: %zu in %d", a.seg_off, a.sent_calls);
    close_both(l, &a, &b);
    peer_fini(&a);
    peer_fini(&b);
}

static void test_partial(struct evl *l)
{
    struct peer a, b;
    int fds[2];
    size_t total = 4u * 1024u * 1024u;

    pair(fds);
    peer_init(&a, l, fds[0]);
    peer_init(&b, l, fds[1]);
    buf_reserve(&a.out, total);
    for (size_t i = 0; i < total; i++)
        a.out.data[i] = (uint8_t)('a' + i % 26);
    a.out.len = total;
    evl_stream_flush(&a.st);
    for (int i = 0; i < 50; i++) {
        evl_run_once(l, false);
        usleep(1000);
    }
    CHECK(a.off > 0 && a.off < total, "a peer that does not read takes part of it: %zu of %zu", a.off, total);
    CHECK(evl_stream_sending(&a.st), "the rest waits in flight");
    b.rearm = true;
    evl_stream_recv(&b.st, b.in, sizeof(b.in));
    struct want w = {&b, total};
    CHECK(run(l, got_len, &w), "everything arrived: %zu", b.got.len);
    CHECK(b.got.len == total && memcmp(b.got.data, a.out.data, total) == 0, "the bytes are the ones queued");
    CHECK(a.off == total && a.sent_calls > 1, "taken in %d sends", a.sent_calls);
    close_both(l, &a, &b);
    peer_fini(&a);
    peer_fini(&b);
}

static void test_eof_error(struct evl *l)
{
    struct peer a;
    int fds[2];

    pair(fds);
    peer_init(&a, l, fds[0]);
    evl_stream_recv(&a.st, a.in, sizeof(a.in));
    shutdown(fds[1], SHUT_WR);
    CHECK(run(l, ended, &a) && a.last == 0, "EOF is recv 0: %zd", a.last);
    close(fds[1]);
    buf_puts(&a.out, "250 OK\r\n");
    evl_stream_flush(&a.st);
    CHECK(run(l, sent_error, &a) && a.sent_err == -EPIPE, "send to a closed peer: %d", a.sent_err);
    peer_close(&a);
    CHECK(run(l, is_released, &a) && a.released == 1, "released");
    peer_fini(&a);
}

struct held {
    struct evl_op op;
    struct evl_timer t;
    struct peer *p;
};

static void on_held(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct held *h = op->owner;

    CHECK(h->p->released == 0, "released() before the owner's own op came back");
    evl_stream_drop(&h->p->st);
}

static void test_inflight(struct evl *l)
{
    struct peer a;
    struct held h;
    int fds[2];

    pair(fds);
    peer_init(&a, l, fds[0]);
    evl_stream_recv(&a.st, a.in, sizeof(a.in));
    memset(&h, 0, sizeof(h));
    h.p = &a;
    h.t.op = (struct evl_op){on_held, &h};
    evl_stream_hold(&a.st);
    evl_timer_arm(l, &h.t, 100u * 1000u * 1000u);
    peer_close(&a);
    CHECK(a.released == 0, "not released with a recv, the close and a timer in flight");
    CHECK(run(l, is_released, &a), "released once the timer came back");
    for (int i = 0; i < 20; i++)
        evl_run_once(l, false);
    CHECK(a.released == 1 && a.last == 1, "released exactly once, no recv callback after close (%d, %zd)",
          a.released, a.last);
    close(fds[1]);
    peer_fini(&a);
}

static bool both_open(void *arg)
{
    struct peer *p = arg;
    return p[0].opened && p[1].opened;
}

static void test_tls(struct evl *l, struct tls_ctx *sctx, struct tls_ctx *cctx)
{
    struct peer p[2];
    int fds[2];

    pair(fds);
    peer_init(&p[0], l, fds[0]);
    peer_init(&p[1], l, fds[1]);
    struct tls_conn *sc = tls_conn_new(sctx, TLS_ROLE_SERVER, NULL);
    struct tls_conn *cc = tls_conn_new(cctx, TLS_ROLE_CLIENT, "mx.ringmail.test");
    tls_stream_start(&p[0].st, sc);
    tls_stream_start(&p[1].st, cc);
    p[0].rearm = p[1].rearm = true;
    evl_stream_recv(&p[0].st, p[0].in, sizeof(p[0].in));
    evl_stream_recv(&p[1].st, p[1].in, sizeof(p[1].in));
    /* the client's plaintext waits for the handshake */
    buf_puts(&p[1].out, "EHLO client.test\r\n");
    evl_stream_flush(&p[1].st);
    CHECK(run(l, both_open, p), "handshake completed on both sides (%d, %d)", p[0].opened, p[1].opened);
    struct want w = {&p[0], 18};
    CHECK(run(l, got_len, &w) && memcmp(p[0].got.data, "EHLO client.test\r\n", 18) == 0, "client to server");
    /* larger than one record and than the owner's 4 KiB buffer: arrives in pieces, all of it */
    for (int i = 0; i < 3000; i++)
        buf_puts(&p[0].out, "250-0123456789abcdef\r\n");
    evl_stream_finish(&p[0].st);
    evl_stream_flush(&p[0].st);
    w = (struct want){&p[1], 3000 * 22};
    CHECK(run(l, got_len, &w) && p[1].got.len == 3000 * 22, "server to client: %zu", p[1].got.len);
    CHECK(run(l, ended, &p[1]) && p[1].last == 0 && tls_conn_state(cc) == TLS_STATE_CLOSED,
          "close_notify after the last bytes: %zd", p[1].last);
    close_both(l, &p[0], &p[1]);
    tls_conn_free(sc);
    tls_conn_free(cc);
    peer_fini(&p[0]);
    peer_fini(&p[1]);
}

static bool opened_one(void *arg)
{
    return ((struct peer *)arg)->opened > 0;
}

/* test_starttls - the server's switch: 220 in the clear, nothing read before it is sent (TLS-01) */
static void test_starttls(struct evl *l, struct tls_ctx *sctx, struct tls_ctx *cctx)
{
    struct peer s, c;
    int fds[2];
    char line[30];

    pair(fds);
    peer_init(&s, l, fds[0]);
    evl_stream_recv(&s.st, s.in, sizeof(s.in));
    static const char cmd[] = "STARTTLS\r\nMAIL FROM:<injected@x>\r\n";
    CHECK(write(fds[1], cmd, sizeof(cmd) - 1) == (ssize_t)sizeof(cmd) - 1, "client writes");
    struct want w = {&s, sizeof(cmd) - 1};
    CHECK(run(l, got_len, &w), "server read the command and the injection");
    /* the owner drops its buffered plaintext; the injection arrives again after the switch */
    buf_reset(&s.got);
    CHECK(write(fds[1], "RCPT TO:<injected@x>\r\n", 22) == 22, "client injects more");
    buf_puts(&s.out, "220 2.0.0 Ready to start TLS\r\n");
    struct tls_conn *sc = tls_conn_new(sctx, TLS_ROLE_SERVER, NULL);
    tls_stream_start(&s.st, sc);
    s.rearm = true;
    evl_stream_recv(&s.st, s.in, sizeof(s.in));
    CHECK(!s.st.recv_armed && evl_stream_receiving(&s.st), "the recv waits for the switch");
    for (int i = 0; i < 20; i++) {
        evl_run_once(l, false);
        usleep(1000);
    }
    ssize_t n = read(fds[1], line, sizeof(line));
    CHECK(n == 30 && memcmp(line, "220 2.0.0 Ready to start TLS\r\n", 30) == 0, "the 220 in the clear: %zd", n);
    CHECK(s.got.len == 0, "no plaintext from the injected bytes");
    /* the handshake fails on the injected bytes, and the owner hears it as a filter error */
    CHECK(run(l, ended, &s) && s.last == -EPROTO, "injected bytes fail the handshake: %zd", s.last);
    CHECK(s.got.len == 0 && s.opened == 0, "nothing came out of the filter");
    peer_close(&s);
    CHECK(run(l, is_released, &s), "released");
    close(fds[1]);
    tls_conn_free(sc);
    peer_fini(&s);

    /* the same switch with a well-behaved client: the session goes on in TLS */
    pair(fds);
    peer_init(&s, l, fds[0]);
    peer_init(&c, l, fds[1]);
    buf_puts(&s.out, "220 2.0.0 Ready to start TLS\r\n");
    sc = tls_conn_new(sctx, TLS_ROLE_SERVER, NULL);
    tls_stream_start(&s.st, sc);
    s.rearm = true;
    evl_stream_recv(&s.st, s.in, sizeof(s.in));
    evl_stream_recv(&c.st, c.in, sizeof(c.in));
    w = (struct want){&c, 30};
    CHECK(run(l, got_len, &w) && memcmp(c.got.data, "220 2.0.0 Ready to start TLS\r\n", 30) == 0, "client got 220");
    struct tls_conn *cc = tls_conn_new(cctx, TLS_ROLE_CLIENT, "mx.ringmail.test");
    tls_stream_start(&c.st, cc);
    c.rearm = true;
    evl_stream_recv(&c.st, c.in, sizeof(c.in));
    buf_puts(&c.out, "EHLO again\r\n");
    evl_stream_flush(&c.st);
    CHECK(run(l, opened_one, &s) && run(l, opened_one, &c), "handshake after the switch");
    w = (struct want){&s, 12};
    CHECK(run(l, got_len, &w) && s.got.len == 12 && memcmp(s.got.data, "EHLO again\r\n", 12) == 0,
          "the first plaintext after the switch is the client's EHLO");
    close_both(l, &s, &c);
    tls_conn_free(sc);
    tls_conn_free(cc);
    peer_fini(&s);
    peer_fini(&c);
}

int main(void)
{
    struct evl l;
    char *err = NULL;
    struct tls_ctx *sctx = NULL, *cctx = NULL;

    log_init("evl_stream_test", 0);
    if (evl_init(&l, 64, &err) < 0)
        SKIP("%s", err ? err : "io_uring unavailable");
    test_segments(&l);
    test_partial(&l);
    test_eof_error(&l);
    test_inflight(&l);
    if (tls_server_ctx_new(NULL, NULL, "mx.ringmail.test", &sctx, &err) < 0 ||
        tls_client_ctx_new(TLS_VERIFY_NONE, NULL, &cctx, &err) < 0) {
        FAIL("TLS contexts: %s", err ? err : "?");
    } else {
        test_tls(&l, sctx, cctx);
        test_starttls(&l, sctx, cctx);
    }
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
    free(err);
    evl_fini(&l);
    CHECK_EXIT();
}
