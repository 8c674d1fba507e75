/*
 * supervisor_logread - reads the spool's message log (docs/logs.md) for `ringctl tail-log`: the
 * segment files of the log directory, zstd-decompressed as a stream, cut into lines, each line decoded
 * with jansson and matched against a filter
 *
 * The files are untrusted input (another process writes them; an operator may put anything there):
 * only names of the writer's form are opened; a partial trailing zstd frame of the active segment is
 * normal (the reader stops at it and goes on when the rest is there); corrupt zstd data ends the
 * reading of that segment with a note; a line that is not a JSON object, or longer than
 * LOGREAD_LINE_MAX, is skipped and counted, never passed on.
 *
 * logread_name_ok() says whether a directory entry is a segment (YYYYMMDD-HHMMSS.ffffff.jsonl.zst or
 * the same .active). logread_list() lists them in write order (by name; a finished segment before an
 * active one of the same stem). logread_match() decodes one line and applies the filter.
 * logread_cur_*: a cursor on one segment; logread_cur_read() decodes what is in the file now and hands
 * each matching line to the callback (a later call goes on where the last one stopped).
 * logread_tail() finds the last `limit` matching records (reading segments newest first) and leaves the
 * cursor on the newest segment, at its end, for logread_follow(), which hands on what was written
 * since, moving to the next segment when the writer started one (rotation).
 * Ownership: a cursor owns its fd, its zstd context and its line buffer; logread_cur_close() frees them.
 * Notes (corrupt data, skipped lines, scan limit) go to *notes as text lines, for the caller to report.
 */
#ifndef RINGMAIL_SUPERVISOR_LOGREAD_H
#define RINGMAIL_SUPERVISOR_LOGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define LOGREAD_LINE_MAX (1u << 20)       /* a longer line is skipped (the writer's records are far smaller) */
#define LOGREAD_SCAN_MAX (512ull << 20)   /* compressed bytes logread_tail() reads at most, newest first */
#define LOGREAD_SEGMENTS_MAX 100000u      /* segment names logread_list() takes at most (the newest) */
/* a segment that decompresses to more than this many times its size (plus LOGREAD_RATIO_SLACK) is not a
 * log (JSON records compress 10 to 100 times): a decompression bomb is refused, not decoded for hours */
#define LOGREAD_RATIO_MAX 2000u
#define LOGREAD_RATIO_SLACK (16ull << 20)

struct logread_filter {
    const char *type;   /* the record's type, ASCII case-insensitive; NULL: any */
    const char *domain; /* the recipient's domain (or a TSA record's domain), case-insensitive; NULL: any */
    const char *queue;  /* the scheduled queue name, exact; NULL: any */
};

struct logread_cur {
    int fd; /* -1: no segment */
    char *name;
    void *dctx; /* ZSTD_DCtx */
    uint64_t offset;  /* compressed bytes consumed */
    uint64_t decoded; /* bytes decompressed */
    bool broken;      /* corrupt data: nothing more is read from this segment */
    bool skipping;    /* inside an over-long line: dropped up to its newline */
    struct buf line;  /* the partial line at the end of what was decoded */
};

typedef void (*logread_line_fn)(void *ctx, const char *line, size_t len);

bool logread_name_ok(const char *name, bool *active);
/* logread_list - the segment names of dirfd in write order; 0 or -errno */
int logread_list(int dirfd, char ***names, size_t *n);
void logread_list_free(char **names, size_t n);
/* logread_match - true when line[0..len) is a JSON object the filter keeps; *valid false when not an object */
bool logread_match(const struct logread_filter *f, const char *line, size_t len, bool *valid);

void logread_cur_init(struct logread_cur *c);
int logread_cur_open(struct logread_cur *c, int dirfd, const char *name);
void logread_cur_close(struct logread_cur *c);
/* logread_cur_read - decode up to max_bytes more of the file; each complete matching line to fn; notes
 * to *notes. Returns the compressed bytes read (0: nothing new), or -errno (the file could not be read) */
int64_t logread_cur_read(struct logread_cur *c, const struct logread_filter *f, uint64_t max_bytes, logread_line_fn fn,
                         void *ctx, struct buf *notes);

/* logread_tail - the last `limit` matching lines, oldest first, as JSON Lines into *out; cur is left on the
 * newest segment (fd -1 when there is none). 0 or -errno (the directory cannot be read) */
int logread_tail(int dirfd, const struct logread_filter *f, size_t limit, struct logread_cur *cur, struct buf *out,
                 struct buf *notes);
/* logread_follow - the matching lines written since the last call, across rotations, into *out; 0 or -errno */
int logread_follow(int dirfd, const struct logread_filter *f, struct logread_cur *cur, struct buf *out,
                   struct buf *notes);

#endif
