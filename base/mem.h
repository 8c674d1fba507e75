/*
 * mem - allocation that never returns NULL (it aborts), so NULL means "not found" elsewhere
 */
#ifndef RINGMAIL_MEM_H
#define RINGMAIL_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* xasprintf - formatted string on the heap */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
