/*
 * dns_ring - the resolver on the io_uring loop: c-ares sockets, its timer, and answer delivery
 *
 * c-ares tells us its sockets through the sock-state callback; each gets a one-shot
 * IORING_OP_POLL_ADD whose completion feeds ares_process_fd(), and one evl_timer follows
 * ares_timeout(). Callbacks are never called from inside c-ares or from the caller's stack:
 * finished entries go on a ready list that a NOP completion drains.
 * Ownership: the resolver counts its in-flight ring operations (polls, timer, NOP) and is freed
 * only when none remain; a socket c-ares closed while its poll is armed lives until that
 * poll's completion.
 * Errors: a failed poll is handed to c-ares as an error event; nothing here panics on input.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "base/clock.h"
#include "dns/dns_int.h"
#include "base/log.h"
#include "base/mem.h"

static void on_kick(struct evl *l, struct evl_op *op, int res, unsigned flags);

/* dns_ring_ready_push - queue the entry's waiters for the next drain, which a NOP completion starts */
void dns_ring_ready_push(struct dns_resolver *r, struct dns_entry *e)
{
    if (!e->ready) {
        e->ready = true;
        e->refs++;
        e->ready_next = NULL;
        *r->ready_tail = e;
        r->ready_tail = &e->ready_next;
    }
    if (!r->kick_pending && !r->closing) {
        io_uring_prep_nop(evl_sqe(r->l, &r->kick_op));
        r->kick_pending = true;
        r->inflight++;
    }
}

/* drain - deliver every finished entry to its waiters; callbacks may queue more */
static void drain(struct dns_resolver *r)
{
    struct dns_entry *e;

    while ((e = r->ready_head)) {
        struct dns_waiter *w = e->waiters, *next;
        uint64_t now = clock_mono_ns();
        uint32_t ttl = e->expires_ns > now ? (uint32_t)((e->expires_ns - now + 999999999u) / 1000000000u) : 0;

        r->ready_head = e->ready_next;
        if (!r->ready_head)
            r->ready_tail = &r->ready_head;
        e->ready = false;
        e->waiters = NULL;
        e->waiters_tail = &e->waiters;
        for (; w; w = next) {
            next = w->next;
            if (e->kind == DNS_KIND_MX) {
                struct dns_mx_result res = {
                    .status = e->status, .domain = e->name, .reason = e->reason,
                    .implicit = e->implicit, .ttl = ttl, .n_mx = e->n_mx, .mx = e->mx,
                };
                w->mx_cb(w->arg, &res);
            } else if (e->kind == DNS_KIND_TXT) {
                struct dns_txt_result res = {
                    .status = e->status, .name = e->name, .reason = e->reason, .ttl = ttl,
                    .n_txt = e->n_txt, .txt = (const char *const *)e->txt, .txt_len = e->txt_len,
                };
                w->txt_cb(w->arg, &res);
            } else {
                struct dns_host_result res = {
                    .status = e->status, .host = e->name, .reason = e->reason,
                    .ttl = ttl, .n_addr = e->n_addr, .addr = e->addr,
                };
                w->host_cb(w->arg, &res);
            }
            free(w);
            /* on_kick holds an in-flight count, so `r` is still there to tell us */
            if (r->closing)
                panic("dns_resolver_free() called from a dns callback");
        }
        dns_cache_entry_unref(e);
    }
}

static void maybe_release(struct dns_resolver *r)
{
    if (r->closing && r->inflight == 0) {
        ASSERT(!r->socks);
        free(r);
    }
}

static void on_kick(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_resolver *r = op->owner;

    r->kick_pending = false;
    if (!r->closing)
        drain(r);
    r->inflight--;
    maybe_release(r);
}

static void on_sock_done(struct evl *l, struct evl_op *op, int res, unsigned flags);

static void sock_arm(struct dns_resolver *r, struct dns_sock *s)
{
    struct io_uring_sqe *sqe;
    unsigned mask = (s->want_r ? POLLIN : 0) | (s->want_w ? POLLOUT : 0);

    sqe = evl_sqe(r->l, &s->op);
    io_uring_prep_poll_add(sqe, s->fd, mask);
    s->armed = true;
    s->armed_mask = mask;
    r->inflight++;
}

static void sock_cancel(struct dns_resolver *r, struct dns_sock *s)
{
    struct io_uring_sqe *sqe;

    if (!s->armed || s->cancel_sent)
        return;
    sqe = evl_sqe(r->l, NULL);
    io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&s->op);
    s->cancel_sent = true;
}

static void sock_unlink(struct dns_resolver *r, struct dns_sock *s)
{
    for (struct dns_sock **pp = &r->socks; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    s->next = NULL;
    s->closed = true;
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *s;
    unsigned mask;

    for (s = r->socks; s; s = s->next)
        if (s->fd == fd)
            break;
    if (!readable && !writable) {
        if (!s)
            return;
        sock_unlink(r, s);
        /* the kernel holds its own file reference: an armed poll must be removed, not forgotten */
        if (s->armed)
            sock_cancel(r, s);
        else if (!s->in_cb)
            free(s);
        return;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->op.cb = on_sock_done;
        s->op.owner = s;
        s->r = r;
        s->fd = fd;
        s->next = r->socks;
        r->socks = s;
    }
    s->want_r = readable;
    s->want_w = writable;
    if (r->closing || s->in_cb)
        return; /* on_sock_done re-arms with the new interest */
    mask = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
    if (!s->armed)
        sock_arm(r, s);
    else if (s->armed_mask != mask)
        sock_cancel(r, s); /* its completion re-arms with the new mask */
}

static void on_sock_done(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_sock *s = op->owner;
    struct dns_resolver *r = s->r;
    unsigned ev;

    s->armed = false;
    s->cancel_sent = false;
    r->inflight--;
    if (s->closed || r->closing) {
        if (!s->closed)
            sock_unlink(r, s);
        free(s);
        maybe_release(r);
        return;
    }
    if (res == -ECANCELED)
        ev = 0;
    else if (res < 0)
        ev = POLLERR; /* let c-ares read the socket and meet the error itself */
    else
        ev = (unsigned)res;
    if (ev) {
        ares_socket_t rfd = (ev & (POLLIN | POLLERR | POLLHUP)) ? s->fd : ARES_SOCKET_BAD;
        ares_socket_t wfd = (ev & (POLLOUT | POLLERR | POLLHUP)) && s->want_w ? s->fd : ARES_SOCKET_BAD;
        s->in_cb = true;
        ares_process_fd(r->ch, rfd, wfd);
        s->in_cb = false;
    }
    if (s->closed)
        free(s);
    else if (s->want_r || s->want_w)
        sock_arm(r, s);
    dns_ring_timer_update(r);
}

static void on_timer(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_resolver *r = op->owner;

    r->timer.armed = false;
    r->timer_cancel_sent = false;
    r->inflight--;
    if (r->closing) {
        maybe_release(r);
        return;
    }
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    dns_ring_timer_update(r);
}

/* dns_ring_timer_update - keep one timer no later than c-ares' next timeout */
void dns_ring_timer_update(struct dns_resolver *r)
{
    struct timeval tv, *tvp;
    uint64_t ns, deadline;

    if (r->closing)
        return;
    tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp)
        return; /* nothing waits on time; an armed timer just fires once for nothing */
    ns = (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
    if (ns < CLOCK_MS(1))
        ns = CLOCK_MS(1);
    deadline = clock_mono_ns() + ns;
    if (r->timer.armed) {
        if (r->timer_deadline <= deadline || r->timer_cancel_sent)
            return;
        struct io_uring_sqe *sqe = evl_sqe(r->l, NULL);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&r->timer.op, 0);
        r->timer_cancel_sent = true; /* on_timer re-arms from ares_timeout() */
        return;
    }
    evl_timer_arm(r->l, &r->timer, ns);
    r->timer_deadline = deadline;
    r->inflight++;
}

void dns_ring_init(struct dns_resolver *r, struct ares_options *o)
{
    r->ready_tail = &r->ready_head;
    r->kick_op.cb = on_kick;
    r->kick_op.owner = r;
    r->timer.op.cb = on_timer;
    r->timer.op.owner = r;
    o->sock_state_cb = on_sock_state;
    o->sock_state_cb_data = r;
}

void dns_ring_socks_close(struct dns_resolver *r)
{
    while (r->socks) {
        struct dns_sock *s = r->socks;
        sock_unlink(r, s);
        if (s->armed)
            sock_cancel(r, s);
        else
            free(s);
    }
}

void dns_ring_release(struct dns_resolver *r)
{
    if (r->timer.armed && !r->timer_cancel_sent) {
        struct io_uring_sqe *sqe = evl_sqe(r->l, NULL);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&r->timer.op, 0);
    }
    maybe_release(r);
}
