/*
 * spool_log_retain - log retention: which segments of the log directory go, and removing them
 *
 * spool_log_retain_choose() is the pure choice: given the directory's segments in name (= time)
 * order, it marks the finished ones to remove: every segment whose last write is older than
 * max_age, then the oldest ones while the directory's total passes max_total_size. The active
 * segment (`.jsonl.zst.active`) is never chosen, and counts toward the total.
 * spool_log_retain_scan() lists the directory's segment files (other names are left alone).
 * spool_log_retain_run() scans, chooses and unlinks at most max_remove segments, oldest first,
 * logging each one it removed; the caller runs it again on a later tick for the rest.
 * Errors: -errno from opendir; an unlink that fails is logged and skipped.
 */
#ifndef RINGMAIL_SPOOL_LOG_RETAIN_H
#define RINGMAIL_SPOOL_LOG_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool_log_seg {
    char *name;       /* file name in the directory (heap) */
    uint64_t bytes;   /* size on disk */
    int64_t mtime_ms; /* last write, Unix ms */
    bool active;      /* the segment being written */
};

struct spool_log_retain_opts {
    uint64_t max_age_ms;     /* 0 = no age limit */
    uint64_t max_total_size; /* bytes; 0 = no size limit */
};

enum spool_log_retain_why {
    SPOOL_LOG_RETAIN_KEEP = 0,
    SPOOL_LOG_RETAIN_AGE = 1,  /* older than max_age */
    SPOOL_LOG_RETAIN_SIZE = 2, /* the directory passes max_total_size */
};

/* spool_log_retain_choose - why[i] for each of segs[0..n) (sorted by name); returns how many go */
size_t spool_log_retain_choose(const struct spool_log_seg *segs, size_t n, int64_t now_ms,
                               const struct spool_log_retain_opts *opts, enum spool_log_retain_why *why);

/* spool_log_retain_scan - the segment files of dir sorted by name; 0 or -errno; free with _segs_free */
int spool_log_retain_scan(const char *dir, struct spool_log_seg **out, size_t *n);
void spool_log_retain_segs_free(struct spool_log_seg *segs, size_t n);

/* spool_log_retain_run - remove up to max_remove chosen segments; *removed and *left (chosen, not yet
 * removed) may be NULL; 0 or -errno */
int spool_log_retain_run(const char *dir, int64_t now_ms, const struct spool_log_retain_opts *opts,
                         size_t max_remove, size_t *removed, size_t *left);

#endif
