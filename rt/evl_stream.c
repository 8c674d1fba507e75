/*
 * evl_stream - one connected socket on the io_uring loop (see evl_stream.h)
 */
#include "rt/evl_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

static void filter_flush(struct evl_stream *st);

/* settle - closed and nothing in flight: the owner's last callback; nothing may touch st after it */
static void settle(struct evl_stream *st)
{
    if (!st->closed || st->inflight || st->released)
        return;
    st->released = true;
    free(st->cin);
    st->cin = NULL;
    buf_fini(&st->cout);
    st->ops->released(st);
}

static void send_bytes(struct evl_stream *st, const void *p, size_t len)
{
    struct io_uring_sqe *sqe = evl_sqe(st->evl, &st->send_op);
    io_uring_prep_send(sqe, st->fd, p, len, MSG_NOSIGNAL);
    st->sending = true;
    st->inflight++;
}

/*
 * read_plain - decrypted bytes into the owner's buffer, as many as fit; *end is the last result that
 * stopped the loop (-EAGAIN: needs more input; 0: closed; < 0: failed)
 */
static size_t read_plain(struct evl_stream *st, ssize_t *end)
{
    size_t got = 0;

    *end = -EAGAIN;
    while (got < st->rcap) {
        ssize_t r = st->fops->read(st->fctx, st->rbuf + got, st->rcap - got);
        if (r <= 0) {
            *end = r;
            break;
        }
        got += (size_t)r;
    }
    return got;
}

static void arm_recv(struct evl_stream *st)
{
    struct io_uring_sqe *sqe = evl_sqe(st->evl, &st->recv_op);

    st->recv_armed = true;
    st->inflight++;
    if (!st->fops) {
        io_uring_prep_recv(sqe, st->fd, st->rbuf, st->rcap, 0);
        return;
    }
    /* the filter may hold plaintext (or its end) from earlier input: hand that over before reading more,
     * which also bounds the ciphertext waiting in the filter to one read */
    ssize_t end;
    size_t got = read_plain(st, &end);
    if (got > 0 || end != -EAGAIN) {
        st->recv_ready = true;
        st->ready_n = got > 0 ? (ssize_t)got : end;
        io_uring_prep_nop(sqe);
        return;
    }
    io_uring_prep_recv(sqe, st->fd, st->cin, EVL_STREAM_CIPHER_IN, 0);
}

/* switch_on - the clear output is all sent: from here every byte goes through the filter */
static void switch_on(struct evl_stream *st)
{
    st->f_pending = false;
    st->cin = xmalloc(EVL_STREAM_CIPHER_IN);
    filter_flush(st);
    if (st->recv_wanted && !st->closed) {
        st->recv_wanted = false;
        arm_recv(st);
    }
}

/* filter_flush - the owner's plaintext into the filter, the filter's output to the socket */
static void filter_flush(struct evl_stream *st)
{
    bool drained = true;

    /* a send in flight points into cout: nothing may grow it before it completes (and flushes again) */
    if (st->sending)
        return;
    for (;;) {
        unsigned n = st->ops->out(st, st->iov, EVL_STREAM_IOV_MAX);
        size_t took = 0;
        bool stop = false;
        if (n == 0)
            break;
        for (unsigned i = 0; i < n && !stop; i++) {
            ssize_t w = st->fops->write(st->fctx, st->iov[i].iov_base, st->iov[i].iov_len);
            if (w > 0)
                took += (size_t)w;
            stop = w < (ssize_t)st->iov[i].iov_len;
        }
        if (took)
            st->ops->taken(st, took);
        if (stop) {
            drained = false;
            break;
        }
    }
    /* last words said: close the filter's session properly (close_notify) before the socket */
    if (drained && st->finishing && !st->f_shut) {
        st->fops->shutdown(st->fctx);
        st->f_shut = true;
    }
    if (st->cout_off == st->cout.len) {
        buf_reset(&st->cout);
        st->cout_off = 0;
    }
    size_t pend = st->fops->pending(st->fctx);
    if (pend) {
        buf_reserve(&st->cout, pend);
        st->cout.len += st->fops->take(st->fctx, st->cout.data + st->cout.len, pend);
    }
    if (st->cout_off < st->cout.len)
        send_bytes(st, st->cout.data + st->cout_off, st->cout.len - st->cout_off);
}

void evl_stream_flush(struct evl_stream *st)
{
    if (st->sending || st->closed)
        return;
    if (st->fops && !st->f_pending) {
        filter_flush(st);
        return;
    }
    unsigned n = st->ops->out(st, st->iov, EVL_STREAM_IOV_MAX);
    if (n == 0) {
        if (st->f_pending)
            switch_on(st);
        return;
    }
    if (n == 1) {
        send_bytes(st, st->iov[0].iov_base, st->iov[0].iov_len);
        return;
    }
    /* several pieces (a message's header block, its shared body, the final dot) leave in one call, unjoined */
    memset(&st->msg, 0, sizeof(st->msg));
    st->msg.msg_iov = st->iov;
    st->msg.msg_iovlen = n;
    struct io_uring_sqe *sqe = evl_sqe(st->evl, &st->send_op);
    io_uring_prep_sendmsg(sqe, st->fd, &st->msg, MSG_NOSIGNAL);
    st->sending = true;
    st->inflight++;
}

static void on_send(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct evl_stream *st = op->owner;

    st->inflight--;
    st->sending = false;
    if (st->closed) {
        settle(st);
        return;
    }
    if (res > 0) {
        if (st->fops && !st->f_pending)
            st->cout_off += (size_t)res;
        else
            st->ops->taken(st, (size_t)res);
        evl_stream_flush(st);
    }
    st->ops->sent(st, res);
    settle(st);
}

/* filter_input - ciphertext arrived: the result for the owner, or -EAGAIN when there is nothing for it yet */
static ssize_t filter_input(struct evl_stream *st, size_t len)
{
    ssize_t end = 0;
    size_t got = 0;
    int rc = st->fops->feed(st->fctx, st->cin, len);

    if (rc == 0)
        got = read_plain(st, &end);
    /* handshake messages, an alert, and plaintext that waited for the handshake */
    filter_flush(st);
    if (!st->f_open && st->fops->opened(st->fctx)) {
        st->f_open = true;
        if (st->ops->opened)
            st->ops->opened(st);
    }
    if (rc < 0)
        return rc;
    return got > 0 ? (ssize_t)got : end;
}

static void on_recv(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct evl_stream *st = op->owner;
    ssize_t n = res;

    st->inflight--;
    st->recv_armed = false;
    if (st->closed) {
        st->recv_ready = false;
        settle(st);
        return;
    }
    if (st->recv_ready) {
        st->recv_ready = false;
        n = st->ready_n;
        if (st->fops)
            filter_flush(st);
    } else if (st->fops && res > 0) {
        n = filter_input(st, (size_t)res);
        if (st->closed) {
            settle(st);
            return;
        }
        if (n == -EAGAIN) {
            arm_recv(st);
            settle(st);
            return;
        }
    }
    st->ops->recv(st, n);
    settle(st);
}

static void on_close(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct evl_stream *st = op->owner;

    st->inflight--;
    settle(st);
}

void evl_stream_init(struct evl_stream *st, struct evl *l, int fd, const struct evl_stream_ops *ops, void *owner)
{
    memset(st, 0, sizeof(*st));
    st->evl = l;
    st->fd = fd;
    st->ops = ops;
    st->owner = owner;
    st->recv_op = (struct evl_op){on_recv, st};
    st->send_op = (struct evl_op){on_send, st};
    st->close_op = (struct evl_op){on_close, st};
}

void evl_stream_recv(struct evl_stream *st, void *buf, size_t cap)
{
    if (st->recv_armed || st->closed)
        return;
    st->rbuf = buf;
    st->rcap = cap;
    if (st->f_pending) {
        st->recv_wanted = true;
        return;
    }
    arm_recv(st);
}

void evl_stream_filter_start(struct evl_stream *st, const struct evl_stream_filter_ops *fops, void *fctx)
{
    /* a recv in flight could return plaintext an attacker sent before the switch (TLS-01) */
    ASSERT(!st->recv_armed && !st->fops);
    st->fops = fops;
    st->fctx = fctx;
    st->f_pending = true;
    evl_stream_flush(st);
}

void evl_stream_finish(struct evl_stream *st)
{
    st->finishing = true;
}

void evl_stream_close(struct evl_stream *st)
{
    if (st->closed)
        return;
    st->closed = true;
    /* completes any recv or send still queued on the socket, so the in-flight count can reach zero */
    shutdown(st->fd, SHUT_RDWR);
    struct io_uring_sqe *sqe = evl_sqe(st->evl, &st->close_op);
    io_uring_prep_close(sqe, st->fd);
    st->fd = -1;
    st->inflight++;
}

void evl_stream_hold(struct evl_stream *st)
{
    st->inflight++;
}

void evl_stream_drop(struct evl_stream *st)
{
    ASSERT(st->inflight > 0);
    st->inflight--;
    settle(st);
}
