/*
 * log - process-wide logging, fatal() and panic()
 *
 * log_init() names the process (role and instance) for every line it prints.
 * Lines go to stderr as "TIMESTAMP LEVEL role[i]: message"; the supervisor
 * collects its children's stderr. log_set_level() changes the threshold at run time.
 * fatal() is for an unusable environment (exit 1, the supervisor decides what next);
 * panic()/ASSERT() are for our own bugs (file:line, abort).
 */
#ifndef RINGMAIL_LOG_H
#define RINGMAIL_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
};

void log_init(const char *name, int instance);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* log_level_parse - "debug", "info", "warn", "error"; returns false when unknown */
bool log_level_parse(const char *text, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) do { if (log_get_level() <= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void panic_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define panic(...) panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define ASSERT(cond) do { if (!(cond)) panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond); } while (0)

#endif
