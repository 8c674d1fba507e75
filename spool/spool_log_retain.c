/*
 * spool_log_retain - log retention ([log] max_age, max_total_size): see spool_log_retain.h
 *
 * Only names that end in .jsonl.zst or .jsonl.zst.active and start with a digit are segments: the
 * writer names them YYYYMMDD-HHMMSS.ffffff, so name order is write order. Anything else in the
 * directory (an operator's notes, a shipping job's marker) is never counted nor removed.
 */
#include "spool/spool_log_retain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "spool/spool_log.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls > lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

size_t spool_log_retain_choose(const struct spool_log_seg *segs, size_t n, int64_t now_ms,
                               const struct spool_log_retain_opts *opts, enum spool_log_retain_why *why)
{
    uint64_t total = 0;
    size_t chosen = 0;

    for (size_t i = 0; i < n; i++) {
        total += segs[i].bytes;
        why[i] = SPOOL_LOG_RETAIN_KEEP;
    }
    for (size_t i = 0; i < n; i++) {
        if (segs[i].active)
            continue;
        bool old = opts->max_age_ms && now_ms - segs[i].mtime_ms > (int64_t)opts->max_age_ms;
        bool over = opts->max_total_size && total > opts->max_total_size;
        if (!old && !over)
            continue;
        why[i] = old ? SPOOL_LOG_RETAIN_AGE : SPOOL_LOG_RETAIN_SIZE;
        total -= segs[i].bytes;
        chosen++;
    }
    return chosen;
}

static int cmp_seg(const void *a, const void *b)
{
    return strcmp(((const struct spool_log_seg *)a)->name, ((const struct spool_log_seg *)b)->name);
}

int spool_log_retain_scan(const char *dir, struct spool_log_seg **out, size_t *n)
{
    DIR *d = opendir(dir);
    struct spool_log_seg *segs = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;

    *out = NULL;
    *n = 0;
    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        bool active = ends_with(e->d_name, SPOOL_LOG_ACTIVE_SUFFIX);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || !(active || ends_with(e->d_name, SPOOL_LOG_SUFFIX)))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            segs = xrealloc(segs, cap * sizeof(*segs));
        }
        segs[len++] = (struct spool_log_seg){
            .name = xstrdup(e->d_name),
            .bytes = (uint64_t)st.st_size,
            .mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000,
            .active = active,
        };
    }
    closedir(d);
    if (len)
        qsort(segs, len, sizeof(*segs), cmp_seg);
    *out = segs;
    *n = len;
    return 0;
}

void spool_log_retain_segs_free(struct spool_log_seg *segs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(segs[i].name);
    free(segs);
}

int spool_log_retain_run(const char *dir, int64_t now_ms, const struct spool_log_retain_opts *opts,
                         size_t max_remove, size_t *removed, size_t *left)
{
    struct spool_log_seg *segs;
    size_t n, done = 0, tried = 0, chosen;
    int rc;

    if (removed)
        *removed = 0;
    if (left)
        *left = 0;
    if (!opts->max_age_ms && !opts->max_total_size)
        return 0;
    if ((rc = spool_log_retain_scan(dir, &segs, &n)) < 0)
        return rc;
    enum spool_log_retain_why *why = xcalloc(n ? n : 1, sizeof(*why));
    chosen = spool_log_retain_choose(segs, n, now_ms, opts, why);
    for (size_t i = 0; i < n && tried < max_remove; i++) {
        if (why[i] == SPOOL_LOG_RETAIN_KEEP)
            continue;
        char *path = xasprintf("%s/%s", dir, segs[i].name);
        if (unlink(path) == 0 || errno == ENOENT) {
            log_info("log retention: removed %s (%llu bytes, last written %lld s ago; %s)", segs[i].name,
                     (unsigned long long)segs[i].bytes, (long long)((now_ms - segs[i].mtime_ms) / 1000),
                     why[i] == SPOOL_LOG_RETAIN_AGE ? "older than [log] max_age"
                                                    : "the log directory passes [log] max_total_size");
            done++;
        } else {
            log_warn("log retention: cannot remove %s: %s", path, strerror(errno));
        }
        free(path);
        tried++;
    }
    if (removed)
        *removed = done;
    if (left)
        *left = chosen - tried;
    free(why);
    spool_log_retain_segs_free(segs, n);
    return 0;
}
