/*
 * evl - the io_uring event loop every role runs
 */
#include "rt/evl.h"

#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

int evl_init(struct evl *l, unsigned entries, char **err)
{
    int rc;

    memset(l, 0, sizeof(*l));
    /* CLAMP: a loop with more sockets than the kernel's largest ring (32768 entries) gets the largest;
     * a full submission queue is submitted and refilled (evl_sqe), and completions never drop (NODROP) */
    struct io_uring_params p = {.flags = IORING_SETUP_CLAMP};
    rc = io_uring_queue_init_params(entries, &l->ring, &p);
    if (rc < 0) {
        *err = xasprintf("io_uring is not available (%s)%s", strerror(-rc),
                         rc == -EPERM ? ": check sysctl kernel.io_uring_disabled" : "");
        return rc;
    }
    return 0;
}

void evl_fini(struct evl *l)
{
    io_uring_queue_exit(&l->ring);
}

struct io_uring_sqe *evl_sqe(struct evl *l, struct evl_op *op)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

    if (!sqe) {
        /* the submission queue is full: hand what we have to the kernel, then retry */
        int rc = io_uring_submit(&l->ring);
        if (rc < 0)
            panic("io_uring_submit: %s", strerror(-rc));
        l->pending = 0;
        sqe = io_uring_get_sqe(&l->ring);
        if (!sqe)
            panic("io_uring submission queue still full after submit");
    }
    io_uring_sqe_set_data(sqe, op);
    l->pending++;
    return sqe;
}

int evl_run_once(struct evl *l, bool block)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    int rc;

    if (block)
        rc = io_uring_submit_and_wait(&l->ring, 1);
    else
        rc = io_uring_submit(&l->ring);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    l->pending = 0;

    io_uring_for_each_cqe(&l->ring, head, cqe)
    {
        struct evl_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;

        n++;
        /* mark seen before the callback: it may prepare new sqes, never new cqes */
        io_uring_cqe_seen(&l->ring, cqe);
        if (op && op->cb)
            op->cb(l, op, res, flags);
    }
    return (int)n;
}

void evl_timer_arm(struct evl *l, struct evl_timer *t, uint64_t ns)
{
    struct io_uring_sqe *sqe;

    t->ts.tv_sec = (long long)(ns / 1000000000u);
    t->ts.tv_nsec = (long long)(ns % 1000000000u);
    sqe = evl_sqe(l, &t->op);
    io_uring_prep_timeout(sqe, &t->ts, 0, 0);
    t->armed = true;
}
