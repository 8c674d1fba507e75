/*
 * buf - the one growable byte buffer (see buf.h)
 */
#include "base/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_fini(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reserve(struct buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return;
    if (more > SIZE_MAX - b->len)
        panic("buf_reserve: %zu more bytes after %zu overflow", more, b->len);
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap = cap > SIZE_MAX / 2 ? b->len + more : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_putc(struct buf *b, char c)
{
    buf_reserve(b, 1);
    b->data[b->len++] = (uint8_t)c;
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    buf_reserve(b, 64);
    int n = vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap);
    if (n < 0)
        panic("buf_vprintf: bad format %s", fmt);
    if ((size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n + 1);
        vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
}

const char *buf_cstr(struct buf *b)
{
    buf_reserve(b, 1);
    b->data[b->len] = 0;
    return (const char *)b->data;
}

char *buf_take(struct buf *b)
{
    buf_cstr(b);
    char *p = (char *)b->data;
    buf_init(b);
    return p;
}
