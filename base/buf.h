/*
 * buf - the one growable byte buffer
 *
 * A zeroed struct buf is an empty buffer; buf_fini() frees it and leaves it empty (reusable).
 * Growth doubles (first 256 bytes) and aborts on overflow or allocation failure, as mem.h does, so
 * appending never fails. data is not NUL-terminated unless buf_cstr() made it so; the terminator is
 * never counted in len. buf_take() hands the heap block to the caller and leaves the buffer empty.
 */
#ifndef RINGMAIL_BUF_H
#define RINGMAIL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_fini(struct buf *b);
/* buf_reserve - room for `more` bytes after len */
void buf_reserve(struct buf *b, size_t more);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_putc(struct buf *b, char c);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* buf_reset - len 0, memory kept */
void buf_reset(struct buf *b);
/* buf_cstr - the content as a C string (a NUL is kept after len, not counted) */
const char *buf_cstr(struct buf *b);
/* buf_take - the NUL-terminated heap block (never NULL); the buffer is left empty */
char *buf_take(struct buf *b);

#endif
