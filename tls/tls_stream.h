/*
 * tls_stream - TLS (tls.h, memory BIOs) as the byte filter of an evl_stream (rt/evl_stream.h)
 *
 * tls_stream_start() puts conn between the stream's owner and its socket, with evl_stream_filter_start()'s
 * switch rules: the server calls it once its 220 to STARTTLS is queued (the switch waits until that is
 * sent, and reads nothing before); the client calls it from the recv callback that carried the 220,
 * and its ClientHello leaves at once. The conn stays the caller's: free it after the stream's
 * released() callback. This lives above both rt/ and tls/ so that neither includes the other.
 */
#ifndef RINGMAIL_TLS_STREAM_H
#define RINGMAIL_TLS_STREAM_H

#include "rt/evl_stream.h"
#include "tls/tls.h"

void tls_stream_start(struct evl_stream *st, struct tls_conn *conn);

#endif
