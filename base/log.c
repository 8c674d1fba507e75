/*
 * log - process-wide logging, fatal() and panic()
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char log_name[32] = "ringmail";
static int log_instance = -1;
static _Atomic int log_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *name, int instance)
{
    snprintf(log_name, sizeof(log_name), "%s", name);
    log_instance = instance;
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool log_level_parse(const char *text, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

static void log_vemit(const char *level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void log_vemit(const char *level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_instance >= 0)
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s[%d]: ", ts.tv_nsec / 1000000, level,
                              log_name, log_instance);
    else
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000, level,
                              log_name);
    if (n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* one write() per line so concurrent processes do not interleave inside a line */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    log_vemit(level_names[level], fmt, ap);
    va_end(ap);
}

void fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vemit("fatal", fmt, ap);
    va_end(ap);
    exit(1);
}

void panic_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg(LOG_LEVEL_ERROR, "panic: %s:%d: %s", file, line, msg);
    abort();
}
