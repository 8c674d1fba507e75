/*
 * check - the C unit tests' assertions (one copy for every tests/unit program)
 *
 * CHECK(cond, fmt, ...) counts a failure and prints file:line, the condition and the message when
 * cond is false, and goes on (table-driven tests report every failing case, not the first).
 * FAIL(fmt, ...) counts and prints a failure unconditionally. CHECK_EXIT() ends main(): exit 1 when
 * anything failed, else 0 (77, the skip code, is the test's own decision: SKIP(fmt, ...)).
 * check_failures is the count so far; a test may read it (e.g. to stop after a broken set-up).
 * check_printable() renders bytes for a message: printable ASCII as it is, anything else as \xHH.
 * Static storage: include this header from exactly one file per test program.
 */
#ifndef RINGMAIL_TEST_CHECK_H
#define RINGMAIL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;

/* check_printable - s[0..n) for a failure message, into buf (truncated to fit cap); returns buf */
static inline const char *check_printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 32 && c < 127 && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

#define FAIL(...)                                                                                             \
    do {                                                                                                      \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
        fprintf(stderr, __VA_ARGS__);                                                                         \
        fputc('\n', stderr);                                                                                  \
        check_failures++;                                                                                     \
    } while (0)

#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        if (!(cond)) {                                                                                        \
            fprintf(stderr, "FAIL %s:%d: CHECK(%s): ", __FILE__, __LINE__, #cond);                            \
            fprintf(stderr, __VA_ARGS__);                                                                     \
            fputc('\n', stderr);                                                                              \
            check_failures++;                                                                                 \
        }                                                                                                     \
    } while (0)

#define SKIP(...)                                                                                             \
    do {                                                                                                      \
        fprintf(stderr, "SKIP: ");                                                                            \
        fprintf(stderr, __VA_ARGS__);                                                                         \
        fputc('\n', stderr);                                                                                  \
        exit(77);                                                                                             \
    } while (0)

#define CHECK_EXIT()                                                                                          \
    do {                                                                                                      \
        if (check_failures) {                                                                                 \
            fprintf(stderr, "%d check(s) failed\n", check_failures);                                          \
            return 1;                                                                                         \
        }                                                                                                     \
        return 0;                                                                                             \
    } while (0)

#endif
