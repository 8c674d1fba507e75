/*
 * evl - the io_uring event loop every role runs
 *
 * Each operation is a struct evl_op embedded in the object that owns it; the sqe's user_data
 * points to it and the completion calls op->cb. The owner counts its in-flight ops and is freed
 * only when none remain. Only the loop touches the submission queue.
 *
 * evl_init() sets up a ring of `entries`; on a kernel without io_uring (or with it disabled by
 * sysctl) it returns -errno and *err says so in one clear line.
 * evl_sqe() returns a submission entry, submitting pending ones to make room; never NULL.
 * evl_run_once() submits and dispatches completions; it blocks for at least one when `block`.
 * Returns the number of completions dispatched, or -errno.
 */
#ifndef RINGMAIL_EVL_H
#define RINGMAIL_EVL_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

struct evl;
struct evl_op;

typedef void (*evl_cb)(struct evl *l, struct evl_op *op, int res, unsigned flags);

struct evl_op {
    evl_cb cb;
    void *owner;
};

struct evl_timer {
    struct evl_op op;
    struct __kernel_timespec ts;
    bool armed;
};

struct evl {
    struct io_uring ring;
    unsigned pending; /* sqes prepared and not yet submitted */
};

int evl_init(struct evl *l, unsigned entries, char **err);
void evl_fini(struct evl *l);
struct io_uring_sqe *evl_sqe(struct evl *l, struct evl_op *op);
int evl_run_once(struct evl *l, bool block);
/* evl_timer_arm - one-shot timer firing after `ns`; the callback gets res -ETIME when it expired */
void evl_timer_arm(struct evl *l, struct evl_timer *t, uint64_t ns);

#endif
