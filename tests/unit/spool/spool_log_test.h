/*
 * spool_log_test - helpers shared by spool_log_record_test and spool_log_segment_test: one /tmp root
 * per run with a directory per case, reading segments back with the real `zstdcat` and `jq`, listing
 * segments, JSON field access
 *
 * Static inline, with the programs' state: each program includes this once, after tests/lib/check.h.
 */
#ifndef RINGMAIL_TEST_SPOOL_LOG_TEST_H
#define RINGMAIL_TEST_SPOOL_LOG_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "spool/spool_log.h"

#define SEC 1000000000ull
#define T0 (1700000000ull * SEC) /* 2023-11-14 22:13:20 UTC */

static char root[64];
static char scratch[128];

/* ---- helpers ---- */

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static inline void case_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", root, name);
}

struct lines {
    json_t **rec; /* parsed records, in order */
    size_t n;
    size_t bad; /* lines that are not JSON (a partial last line after a crash) */
    int status; /* shell status: zstdcat * 16 + jq, or zstdcat alone */
};

static inline void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->rec[i]);
    free(l->rec);
    memset(l, 0, sizeof(*l));
}

static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

/*
 * read_log - zstdcat the segment; with jq, pipe through `jq -c .` (whose exit status must
 * then be checked by the caller) and parse jq's output, else parse zstdcat's output itself.
 */
static inline void read_log(const char *seg, bool with_jq, struct lines *out)
{
    char cmd[1024], res[256];
    memset(out, 0, sizeof(*out));
    snprintf(res, sizeof(res), "%s/out", scratch);
    if (with_jq)
        snprintf(cmd, sizeof(cmd),
                 "zstdcat -q -- '%s' > '%s.raw' 2>/dev/null; z=$?; jq -c . < '%s.raw' > '%s' "
                 "2>/dev/null; j=$?; exit $((z * 16 + j))", seg, res, res, res);
    else
        snprintf(cmd, sizeof(cmd), "zstdcat -q -- '%s' > '%s' 2>/dev/null", seg, res);
    int st = system(cmd);
    out->status = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
    size_t len;
    char *text = slurp(res, &len);
    if (!text)
        return;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\n')
            continue;
        json_t *j = json_loadb(text + start, i - start, 0, NULL);
        if (j && json_is_object(j)) {
            out->rec = realloc(out->rec, (out->n + 1) * sizeof(*out->rec));
            out->rec[out->n++] = j;
        } else {
            json_decref(j);
            out->bad++;
        }
        start = i + 1;
    }
    if (start < len)
        out->bad++; /* a last line without its newline */
    free(text);
}

struct seglist {
    char name[64][64];
    size_t n;
    size_t active;
};

static inline int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* list_segments - every *.jsonl.zst and *.jsonl.zst.active in dir, sorted by name */
static inline void list_segments(const char *dir, struct seglist *sl)
{
    memset(sl, 0, sizeof(*sl));
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && sl->n < 64) {
        const char *dot = strstr(de->d_name, ".jsonl.zst");
        if (!dot || strlen(de->d_name) >= sizeof(sl->name[0]))
            continue;
        memcpy(sl->name[sl->n++], de->d_name, strlen(de->d_name) + 1);
        if (strcmp(dot, ".jsonl.zst.active") == 0)
            sl->active++;
    }
    closedir(d);
    qsort(sl->name, sl->n, sizeof(sl->name[0]), cmp_name);
}

static inline const char *sget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static inline long long iget(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return -424242;
}

static inline bool seq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static inline struct spool_log *open_dir(const char *dir, uint64_t now, struct spool_log_opts *o)
{
    struct spool_log *lg = NULL;
    o->dir = dir;
    int r = spool_log_open(o, now, &lg);
    CHECK(r == 0, "spool_log_open(%s) = %d", dir, r);
    return lg;
}

/* spool_log_test_start - the tools are there and the root exists: 0, 77 (skip) or 1 */
static inline int spool_log_test_start(void)
{
    if (system("command -v zstdcat >/dev/null 2>&1 && command -v jq >/dev/null 2>&1") != 0) {
        printf("SKIP: zstdcat or jq missing\n");
        return 77;
    }
    signal(SIGXFSZ, SIG_IGN); /* RLIMIT_FSIZE must give EFBIG, not kill the test */
    snprintf(root, sizeof(root), "/tmp/spool_log_test.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(scratch, sizeof(scratch), "%s/scratch", root);
    mkdir(scratch, 0700);
    return 0;
}

/* spool_log_test_end - remove the root and everything under it */
static inline void spool_log_test_end(void)
{
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
