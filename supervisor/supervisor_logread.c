/*
 * supervisor_logread - the message log's segments read back, filtered (supervisor/supervisor_logread.h)
 */
#include "supervisor/supervisor_logread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "base/log.h"
#include "base/mem.h"

#define STEM_LEN 22 /* YYYYMMDD-HHMMSS.ffffff */
#define READ_CHUNK (64u * 1024)
#define OUT_CHUNK (128u * 1024)

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool logread_name_ok(const char *name, bool *active)
{
    size_t n = strlen(name);
    if (n < STEM_LEN + 10 || !digits(name, 8) || name[8] != '-' || !digits(name + 9, 6) || name[15] != '.' ||
        !digits(name + 16, 6))
        return false;
    const char *rest = name + STEM_LEN;
    bool act = strcmp(rest, ".jsonl.zst.active") == 0;
    if (!act && strcmp(rest, ".jsonl.zst") != 0)
        return false;
    if (active)
        *active = act;
    return true;
}

/* by_write_order - the stem, then a finished segment before an active one (the shorter name) */
static int by_write_order(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int c = strncmp(x, y, STEM_LEN);
    return c ? c : (int)strlen(x) - (int)strlen(y);
}

int logread_list(int dirfd, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    int fd = dup(dirfd);
    if (fd < 0)
        return -errno;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t cap = 0, k = 0;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!logread_name_ok(de->d_name, NULL))
            continue;
        if (k == cap) {
            cap = cap ? cap * 2 : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[k++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof(*v), by_write_order);
    if (k > LOGREAD_SEGMENTS_MAX) { /* keep the newest */
        size_t drop = k - LOGREAD_SEGMENTS_MAX;
        for (size_t i = 0; i < drop; i++)
            free(v[i]);
        memmove(v, v + drop, LOGREAD_SEGMENTS_MAX * sizeof(*v));
        k = LOGREAD_SEGMENTS_MAX;
    }
    *names = v;
    *n = k;
    return 0;
}

void logread_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static const char *str_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool logread_match(const struct logread_filter *f, const char *line, size_t len, bool *valid)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    *valid = json_is_object(o);
    if (!*valid) {
        json_decref(o);
        return false;
    }
    bool keep = true;
    if (f->type) {
        const char *t = str_member(o, "type");
        keep = t && strcasecmp(t, f->type) == 0;
    }
    if (keep && f->domain) {
        const char *rcpt = str_member(o, "recipient"), *dom = NULL;
        const char *at = rcpt ? strrchr(rcpt, '@') : NULL;
        if (at)
            dom = at + 1;
        else if (!rcpt || !rcpt[0])
            dom = str_member(o, "domain"); /* a TSA record */
        keep = dom && strcasecmp(dom, f->domain) == 0;
    }
    if (keep && f->queue) {
        const char *q = str_member(o, "queue");
        keep = q && strcmp(q, f->queue) == 0;
    }
    json_decref(o);
    return keep;
}

void logread_cur_init(struct logread_cur *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

int logread_cur_open(struct logread_cur *c, int dirfd, const char *name)
{
    logread_cur_close(c);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    size_t n = strlen(name);
    /* listed as active, finished (renamed) since: the same file under its final name */
    if (fd < 0 && errno == ENOENT && n > 7 && strcmp(name + n - 7, ".active") == 0) {
        char *final = xstrdup(name);
        final[n - 7] = '\0';
        fd = openat(dirfd, final, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        free(final);
    }
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        /* the supervisor reads with more rights than the spool that owns the directory: only the writer's
         * own regular files, never a device, a FIFO or a hard link to another file */
        close(fd);
        fd = -1;
        errno = EPERM;
    }
    if (fd < 0) {
        /* named, so that following moves past it; nothing is read from it */
        int e = errno;
        c->name = xstrdup(name);
        c->broken = true;
        return -e;
    }
    c->fd = fd;
    c->name = xstrdup(name);
    c->dctx = ZSTD_createDCtx();
    if (!c->dctx)
        panic("ZSTD_createDCtx: out of memory");
    return 0;
}

void logread_cur_close(struct logread_cur *c)
{
    if (c->fd >= 0)
        close(c->fd);
    ZSTD_freeDCtx(c->dctx);
    free(c->name);
    buf_fini(&c->line);
    logread_cur_init(c);
}

/* take_lines - decoded bytes into lines; each complete, valid, matching one to fn */
static void take_lines(struct logread_cur *c, const struct logread_filter *f, const char *p, size_t n,
                       logread_line_fn fn, void *ctx, struct buf *notes, unsigned *invalid)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (!c->skipping) {
            if (c->line.len + k > LOGREAD_LINE_MAX) {
                buf_printf(notes, "%s: a line longer than %u bytes skipped\n", c->name, LOGREAD_LINE_MAX);
                c->skipping = true;
                buf_reset(&c->line);
            } else {
                buf_append(&c->line, p, k);
            }
        }
        if (!nl)
            return;
        if (!c->skipping && c->line.len) {
            bool valid;
            if (logread_match(f, (const char *)c->line.data, c->line.len, &valid))
                fn(ctx, (const char *)c->line.data, c->line.len);
            else if (!valid)
                (*invalid)++;
        }
        c->skipping = false;
        buf_reset(&c->line);
        p += k + 1;
        n -= k + 1;
    }
}

int64_t logread_cur_read(struct logread_cur *c, const struct logread_filter *f, uint64_t max_bytes, logread_line_fn fn,
                         void *ctx, struct buf *notes)
{
    if (c->fd < 0 || c->broken)
        return 0;
    char *in_buf = xmalloc(READ_CHUNK), *out_buf = xmalloc(OUT_CHUNK);
    int64_t total = 0;
    unsigned invalid = 0;
    while ((uint64_t)total < max_bytes) {
        ssize_t r = pread(c->fd, in_buf, READ_CHUNK, (off_t)c->offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            total = -errno;
            break;
        }
        if (r == 0)
            break;
        ZSTD_inBuffer in = {in_buf, (size_t)r, 0};
        for (;;) {
            ZSTD_outBuffer out = {out_buf, OUT_CHUNK, 0};
            size_t rc = ZSTD_decompressStream(c->dctx, &out, &in);
            if (ZSTD_isError(rc)) {
                buf_printf(notes, "%s: corrupt zstd data near byte %llu: %s; the rest of this segment is skipped\n",
                           c->name, (unsigned long long)(c->offset + in.pos), ZSTD_getErrorName(rc));
                c->broken = true;
                break;
            }
            c->decoded += out.pos;
            if (c->decoded > (c->offset + in.pos) * LOGREAD_RATIO_MAX + LOGREAD_RATIO_SLACK) {
                buf_printf(notes, "%s: decompresses to more than %u times its size near byte %llu: not a log; "
                           "the rest of this segment is skipped\n", c->name, LOGREAD_RATIO_MAX,
                           (unsigned long long)(c->offset + in.pos));
                c->broken = true;
                break;
            }
            take_lines(c, f, out_buf, out.pos, fn, ctx, notes, &invalid);
            if (in.pos == in.size && out.pos < out.size)
                break;
        }
        c->offset += (uint64_t)r;
        total += r;
        if (c->broken)
            break;
    }
    if (invalid)
        buf_printf(notes, "%s: %u line(s) that are not JSON objects skipped\n", c->name, invalid);
    free(in_buf);
    free(out_buf);
    return total;
}

/* the last `cap` lines handed to it */
struct last_n {
    char **lines;
    size_t *lens;
    size_t cap, n, head; /* head: the oldest when full */
};

static void last_n_take(void *ctx, const char *line, size_t len)
{
    struct last_n *l = ctx;
    if (!l->cap)
        return;
    size_t at;
    if (l->n < l->cap) {
        at = l->n++;
    } else {
        at = l->head;
        free(l->lines[at]);
        l->head = (l->head + 1) % l->cap;
    }
    l->lines[at] = xmalloc(len + 1);
    memcpy(l->lines[at], line, len);
    l->lines[at][len] = '\0';
    l->lens[at] = len;
}

/* last_n_emit - the lines, oldest first, into out; frees them */
static void last_n_emit(struct last_n *l, struct buf *out)
{
    for (size_t i = 0; i < l->n; i++) {
        size_t k = (l->head + i) % l->cap;
        buf_append(out, l->lines[k], l->lens[k]);
        buf_putc(out, '\n');
        free(l->lines[k]);
    }
    free(l->lines);
    free(l->lens);
}

static void last_n_init(struct last_n *l, size_t cap)
{
    *l = (struct last_n){.cap = cap};
    if (cap) {
        l->lines = xcalloc(cap, sizeof(*l->lines));
        l->lens = xcalloc(cap, sizeof(*l->lens));
    }
}

int logread_tail(int dirfd, const struct logread_filter *f, size_t limit, struct logread_cur *cur, struct buf *out,
                 struct buf *notes)
{
    char **names;
    size_t n;
    logread_cur_close(cur);
    int rc = logread_list(dirfd, &names, &n);
    if (rc < 0)
        return rc;
    if (n == 0) {
        logread_list_free(names, n);
        return 0;
    }
    /* per segment, newest first: its last `need` matches; emitted in the opposite order */
    struct last_n *found = xcalloc(n, sizeof(*found));
    size_t got = 0, used = 0;
    uint64_t scanned = 0;
    size_t i = n;
    while (i > 0) {
        i--;
        size_t need = limit - got;
        bool newest = i == n - 1;
        if (!newest && (need == 0 || scanned >= LOGREAD_SCAN_MAX))
            break;
        struct logread_cur tmp, *c = newest ? cur : &tmp;
        logread_cur_init(&tmp);
        if ((rc = logread_cur_open(c, dirfd, names[i])) < 0) {
            buf_printf(notes, "%s: cannot open: %s\n", names[i], strerror(-rc));
            continue;
        }
        last_n_init(&found[used], need);
        /* the newest is read to its end whatever its size: following goes on from there */
        int64_t r = logread_cur_read(c, f, newest ? UINT64_MAX : LOGREAD_SCAN_MAX - scanned, last_n_take,
                                     &found[used], notes);
        if (r < 0)
            buf_printf(notes, "%s: read error: %s\n", names[i], strerror((int)-r));
        else
            scanned += (uint64_t)r;
        got += found[used].n;
        used++;
        if (!newest)
            logread_cur_close(&tmp);
    }
    if (got < limit && i > 0 && scanned >= LOGREAD_SCAN_MAX)
        buf_printf(notes, "older segments not read: at most %llu MiB of the log is searched\n",
                   (unsigned long long)(LOGREAD_SCAN_MAX >> 20));
    while (used > 0)
        last_n_emit(&found[--used], out);
    free(found);
    logread_list_free(names, n);
    return 0;
}

static void append_line(void *ctx, const char *line, size_t len)
{
    buf_append(ctx, line, len);
    buf_putc(ctx, '\n');
}

int logread_follow(int dirfd, const struct logread_filter *f, struct logread_cur *cur, struct buf *out,
                   struct buf *notes)
{
    for (unsigned hops = 0; hops < 64; hops++) {
        int64_t r = logread_cur_read(cur, f, LOGREAD_SCAN_MAX, append_line, out, notes);
        if (r != 0)
            return r < 0 ? (int)r : 0; /* new bytes: look for a newer segment on a call that finds none */
        /* nothing new here: did the writer finish this segment and begin another? */
        char **names;
        size_t n;
        int rc = logread_list(dirfd, &names, &n);
        if (rc < 0)
            return rc;
        size_t k = 0;
        while (k < n && cur->name && strncmp(names[k], cur->name, STEM_LEN) <= 0)
            k++;
        if (k == n) {
            logread_list_free(names, n);
            return 0;
        }
        /* the writer renames a segment before it opens the next, so this one is complete: take its end */
        if (cur->fd >= 0)
            logread_cur_read(cur, f, UINT64_MAX, append_line, out, notes);
        if (cur->fd >= 0 && cur->line.len && !cur->broken)
            buf_printf(notes, "%s: ends with a partial line (skipped)\n", cur->name);
        rc = logread_cur_open(cur, dirfd, names[k]);
        if (rc < 0)
            buf_printf(notes, "%s: cannot open: %s\n", names[k], strerror(-rc));
        logread_list_free(names, n);
        if (rc < 0)
            return 0;
    }
    return 0;
}
