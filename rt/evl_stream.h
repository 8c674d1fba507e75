/*
 * evl_stream - one connected socket on the io_uring loop: its send and recv ops, its output, an
 * optional byte filter (TLS on memory BIOs: tls/tls_stream.c) and its owner's lifetime
 *
 * A stream is embedded in the object that owns the socket (a session, a connection, a client slot);
 * its ops' user_data point into it (evl.h). The owner's bytes are pulled, never copied:
 *   ops->out()     describes the output waiting to be sent as at most EVL_STREAM_IOV_MAX iovecs; those
 *                  bytes stay where they are until taken.
 *   ops->taken()   n bytes of that output left (sent, or encrypted by the filter): the owner drops them.
 *                  It may be called from inside evl_stream_flush(); it only does accounting.
 *   ops->sent()    after every send completion: res > 0 bytes went out (the rest is already on its way),
 *                  res <= 0 the send failed (-errno).
 *   ops->recv()    after evl_stream_recv(buf, cap): n > 0 plaintext bytes are in buf; 0 the peer ended the
 *                  stream (FIN, or the filter's close_notify); < 0 -errno (the filter failed: -EPROTO, its
 *                  alert already queued for sending).
 *   ops->opened()  (may be NULL) the filter's handshake completed: application data flows.
 *   ops->released() once the stream is closed and no op of it is in flight: the owner may free itself.
 * One send is in flight at a time: one iovec goes out with send(2), several with one sendmsg(2).
 *
 * Filter switch (STARTTLS, RFC 3207, and the injection rules in tls/tls.h's head): evl_stream_filter_start()
 * takes effect once every byte queued before it has been sent in the clear (the server's 220); output
 * queued after that goes through the filter. No recv may be in flight when it is called, and a recv asked
 * for before the switch took effect waits for it, so no byte received earlier is ever fed to the filter.
 * Plaintext the owner still buffers is its own to drop (server) or to treat as an attack (client).
 * evl_stream_finish() says the owner queues nothing more: the filter's close_notify follows the output.
 *
 * Lifetime: evl_stream_close() shuts the socket down (a pending recv or send completes at once) and closes
 * it through the ring. The owner's own ops on the socket (connect, cancel, timers) are counted with
 * evl_stream_hold() and evl_stream_drop(). ops->released() runs exactly once, from a completion or from
 * evl_stream_drop(), never inside evl_stream_close(): a callback may close the stream and go on using
 * its owner. After evl_stream_close() no callback but released() is called.
 * Ownership: the stream owns its cipher buffers (freed before released()); the filter's state belongs to
 * the owner, who frees it after released().
 */
#ifndef RINGMAIL_EVL_STREAM_H
#define RINGMAIL_EVL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "rt/evl.h"

#define EVL_STREAM_IOV_MAX 8
#define EVL_STREAM_CIPHER_IN (64u * 1024u) /* ciphertext read per recv while a filter runs */

struct evl_stream;

struct evl_stream_ops {
    unsigned (*out)(struct evl_stream *st, struct iovec *iov, unsigned max);
    void (*taken)(struct evl_stream *st, size_t n);
    void (*sent)(struct evl_stream *st, int res);
    void (*recv)(struct evl_stream *st, ssize_t n);
    void (*opened)(struct evl_stream *st);
    void (*released)(struct evl_stream *st);
};

/*
 * evl_stream_filter_ops - a transform between the owner's plaintext and the socket's bytes, with the
 * return conventions of tls.h: feed 0 or -errno; read > 0, 0 (closed), -EAGAIN (needs input) or -errno;
 * write the count taken or -EAGAIN / -errno; take moves pending output into buf. It is an interface so
 * that this runtime layer does not link the TLS layer above it.
 */
struct evl_stream_filter_ops {
    int (*feed)(void *f, const void *p, size_t len);
    ssize_t (*read)(void *f, void *buf, size_t cap);
    ssize_t (*write)(void *f, const void *p, size_t len);
    size_t (*pending)(const void *f);
    size_t (*take)(void *f, void *buf, size_t cap);
    void (*shutdown)(void *f);
    bool (*opened)(const void *f);
};

struct evl_stream {
    struct evl *evl;
    int fd; /* -1 once closed */
    const struct evl_stream_ops *ops;
    void *owner;
    unsigned inflight;
    struct evl_op recv_op, send_op, close_op;
    bool recv_armed, sending, closed, released, finishing;
    bool recv_wanted; /* asked for while the filter switch is pending */
    bool recv_ready;  /* the armed recv op is a no-op: ready_n is the result already in rbuf */
    ssize_t ready_n;
    char *rbuf;
    size_t rcap;
    struct iovec iov[EVL_STREAM_IOV_MAX];
    struct msghdr msg;
    /* filter */
    const struct evl_stream_filter_ops *fops;
    void *fctx;
    bool f_pending, f_open, f_shut;
    char *cin;
    struct buf cout;
    size_t cout_off;
};

/* evl_stream_init - the stream takes the connected (or connecting) socket fd */
void evl_stream_init(struct evl_stream *st, struct evl *l, int fd, const struct evl_stream_ops *ops, void *owner);
/* evl_stream_recv - one recv into buf[0..cap); a no-op while one is armed or once closed */
void evl_stream_recv(struct evl_stream *st, void *buf, size_t cap);
/* evl_stream_flush - send what ops->out() reports (through the filter when one runs) unless a send is in flight */
void evl_stream_flush(struct evl_stream *st);
void evl_stream_filter_start(struct evl_stream *st, const struct evl_stream_filter_ops *fops, void *fctx);
void evl_stream_finish(struct evl_stream *st);
void evl_stream_close(struct evl_stream *st);
void evl_stream_hold(struct evl_stream *st);
/* evl_stream_drop - an op counted by evl_stream_hold() came back; may call released(): call it last */
void evl_stream_drop(struct evl_stream *st);

static inline int evl_stream_fd(const struct evl_stream *st)
{
    return st->fd;
}

/* evl_stream_sending - a send is in flight */
static inline bool evl_stream_sending(const struct evl_stream *st)
{
    return st->sending;
}

/* evl_stream_out_one - for an owner whose output is one contiguous run: it as iov[0], or 0 when empty */
static inline unsigned evl_stream_out_one(struct iovec *iov, const void *p, size_t len)
{
    if (len == 0)
        return 0;
    iov[0] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
    return 1;
}

/* evl_stream_receiving - a recv is armed (or waits for the filter switch) */
static inline bool evl_stream_receiving(const struct evl_stream *st)
{
    return st->recv_armed || st->recv_wanted;
}

static inline bool evl_stream_closed(const struct evl_stream *st)
{
    return st->closed;
}

#endif
