/*
 * tls_stream - TLS as the byte filter of an evl_stream (see tls_stream.h)
 */
#include "tls/tls_stream.h"

static int f_feed(void *f, const void *p, size_t len)
{
    return tls_feed_cipher(f, p, len);
}

static ssize_t f_read(void *f, void *buf, size_t cap)
{
    return tls_read_plain(f, buf, cap);
}

static ssize_t f_write(void *f, const void *p, size_t len)
{
    return tls_write_plain(f, p, len);
}

static size_t f_pending(const void *f)
{
    return tls_pending_cipher(f);
}

static size_t f_take(void *f, void *buf, size_t cap)
{
    return tls_take_cipher(f, buf, cap);
}

static void f_shutdown(void *f)
{
    tls_shutdown(f);
}

static bool f_opened(const void *f)
{
    return tls_conn_state(f) == TLS_STATE_ESTABLISHED;
}

static const struct evl_stream_filter_ops tls_filter = {
    .feed = f_feed,
    .read = f_read,
    .write = f_write,
    .pending = f_pending,
    .take = f_take,
    .shutdown = f_shutdown,
    .opened = f_opened,
};

void tls_stream_start(struct evl_stream *st, struct tls_conn *conn)
{
    evl_stream_filter_start(st, &tls_filter, conn);
}
