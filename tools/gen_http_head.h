/*
 * gen_http_head - the head of an HTTP/1.x answer, as ringmail-gen --http reads it (peer input)
 *
 * gen_http_head_parse() takes the head up to, not including, the empty line (head[0..n), any bytes):
 * the status code (100..599) with *content_length and *close (a "Connection: close" field), or -1 when
 * it is not an HTTP/1.0 or 1.1 status line, has no Content-Length, a malformed one, or one over `max`.
 * Never reads past n. Pure.
 */
#ifndef RINGMAIL_TOOLS_GEN_HTTP_HEAD_H
#define RINGMAIL_TOOLS_GEN_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int gen_http_head_parse(const char *head, size_t n, uint64_t max, uint64_t *content_length, bool *close);

#endif
