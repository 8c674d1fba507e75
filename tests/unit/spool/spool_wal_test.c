/*
 * spool_wal_test - the write-ahead of log records: spool_db's "logahead" family (put in the same
 * batch as the state change, invisible to the start-up walk, sequence order, range delete, numbers
 * after a reopen, no extra fsync) and spool_log_write_line(), which writes the copies to the log.
 * The spool process's use of both (replay at start, sync then trim) is covered end to end by
 * tests/e2e/crash_test.py (kill -9 of the spool right after a bounce, random kills).
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include <zstd.h>

#include "base/log.h"
#include "common/msgid.h"
#include "spool/spool_db.h"
#include "spool/spool_log.h"
#include "tests/lib/check.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static char *temp_dir(void)
{
    char *t = strdup("/tmp/spool_wal_test.XXXXXX");
    if (t == NULL || mkdtemp(t) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    return t;
}

static struct proto_env_rcpt rcpts[1] = {{"one@gmail.com", PROTO_RCPT_QUEUED, 0}};

static int add_store(struct spool_db_batch *b, struct msgid id)
{
    struct proto_env r = {.created_ms = msgid_time_ms(id), .body_size = 5, .sender = "s@example.com",
                          .rcpt_count = 1, .rcpts = rcpts};
    return spool_db_batch_store(b, id, &r, "hello", 5);
}

/* ---- scan collector ---- */

#define MAXREC 64

struct got {
    size_t n;
    uint64_t seq[MAXREC];
    char line[MAXREC][64];
    size_t stop_after; /* 0 = never stop */
};

static int collect(void *arg, uint64_t seq, const char *line, size_t len)
{
    struct got *g = arg;
    if (g->n < MAXREC) {
        g->seq[g->n] = seq;
        snprintf(g->line[g->n], sizeof(g->line[0]), "%.*s", (int)len, line);
    }
    g->n++;
    return g->stop_after && g->n >= g->stop_after ? 42 : 0;
}

static void scan_all(struct spool_db *db, uint64_t from, struct got *g)
{
    memset(g, 0, sizeof(*g));
    int n = spool_db_logrec_scan(db, from, 1000, collect, g);
    CHECK(n >= 0 && (size_t)n == g->n, "scan returned %d for %zu records", n, g->n);
}

static int walk_count(void *arg, struct msgid id, const struct proto_env *rec)
{
    (void)id;
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

/* every envelope the walk hands over; quarantined ones count in *bad */
static size_t walk_all(struct spool_db *db, uint64_t *bad)
{
    struct spool_db_walk w;
    size_t n = 0;
    spool_db_walk_init(&w);
    while (!w.done) {
        int rc = spool_db_walk_step(db, &w, 100, walk_count, &n);
        CHECK(rc >= 0, "walk step: %d (%s)", rc, spool_db_error(db));
        if (rc < 0)
            break;
    }
    *bad = w.quarantined;
    return n;
}

static const char *const lines[] = {
    "{\"type\":\"Reception\",\"id\":\"a\"}",
    "{\"type\":\"Bounce\",\"id\":\"a\"}",
    "{\"type\":\"Delivery\",\"id\":\"b\"}",
    "{\"type\":\"Expiration\",\"id\":\"c\"}",
};

static void test_db_logahead(void)
{
    char *dir = temp_dir();
    struct spool_db *db = NULL;
    char *err = NULL;
    int rc = spool_db_open(dir, NULL, &db, &err);
    CHECK(rc == 0, "open: %d %s", rc, err ? err : "");
    if (rc != 0)
        exit(1);
    CHECK(spool_db_logrec_next(db) == 1, "a new database starts at 1, not %llu",
          (unsigned long long)spool_db_logrec_next(db));

    /* a store and its records: one batch, one WAL fsync, records in the order added */
    struct spool_db_batch *b = spool_db_batch_new(db);
    struct msgid m1 = msgid_generate(), m2 = msgid_generate();
    uint64_t s[4] = {0};
    CHECK(add_store(b, m1) == 0, "store");
    CHECK(add_store(b, m2) == 0, "store");
    for (int i = 0; i < 3; i++)
        CHECK(spool_db_logrec_add(b, lines[i], strlen(lines[i]), &s[i]) == 0, "logrec %d", i);
    CHECK(s[0] == 1 && s[1] == 2 && s[2] == 3, "sequence %llu %llu %llu", (unsigned long long)s[0],
          (unsigned long long)s[1], (unsigned long long)s[2]);
    CHECK(spool_db_batch_count(b) == 2 && spool_db_logrec_count(b) == 3, "counts %zu %zu",
          spool_db_batch_count(b), spool_db_logrec_count(b));
    int64_t syncs0 = spool_db_wal_syncs(db);
    CHECK(spool_db_commit(db, b) == 0, "commit: %s", spool_db_error(db));
    int64_t syncs1 = spool_db_wal_syncs(db);
    CHECK(syncs0 < 0 || syncs1 == syncs0 + 1, "one WAL sync for stores and records, got %lld",
          (long long)(syncs1 - syncs0));
    spool_db_batch_reset(b);

    /* refused shapes: a record is one non-empty line */
    CHECK(spool_db_logrec_add(b, "{\"a\":1}\n{}", 10, NULL) == -EINVAL, "a newline is refused");
    CHECK(spool_db_logrec_add(b, "", 0, NULL) == -EINVAL, "an empty line is refused");
    CHECK(spool_db_logrec_count(b) == 0, "refused records are not in the batch");

    /* the walk sees the two messages only, and quarantines nothing */
    uint64_t bad = 99;
    size_t walked = walk_all(db, &bad);
    CHECK(walked == 2 && bad == 0, "walk: %zu envelopes, %llu quarantined", walked, (unsigned long long)bad);

    struct got g;
    scan_all(db, 0, &g);
    CHECK(g.n == 3, "3 records, got %zu", g.n);
    for (size_t i = 0; i < 3 && i < g.n; i++)
        CHECK(g.seq[i] == i + 1 && strcmp(g.line[i], lines[i]) == 0, "record %zu: %llu %s", i,
              (unsigned long long)g.seq[i], g.line[i]);

    /* a batch that is thrown away leaves a gap in the numbers; a scan steps over it */
    CHECK(spool_db_logrec_add(b, lines[3], strlen(lines[3]), &s[3]) == 0 && s[3] == 4, "seq %llu",
          (unsigned long long)s[3]);
    spool_db_batch_reset(b);
    /* a batch of records alone is committed (it is not "empty") */
    uint64_t s5 = 0;
    CHECK(spool_db_logrec_add(b, lines[3], strlen(lines[3]), &s5) == 0 && s5 == 5, "seq %llu",
          (unsigned long long)s5);
    CHECK(spool_db_commit(db, b) == 0, "commit of records alone: %s", spool_db_error(db));
    spool_db_batch_reset(b);
    scan_all(db, 0, &g);
    CHECK(g.n == 4 && g.seq[3] == 5 && strcmp(g.line[3], lines[3]) == 0, "gap skipped: %zu records, last %llu",
          g.n, (unsigned long long)g.seq[g.n ? g.n - 1 : 0]);

    /* from and max bound the scan; the callback can stop it */
    memset(&g, 0, sizeof(g));
    int n = spool_db_logrec_scan(db, 2, 2, collect, &g);
    CHECK(n == 2 && g.seq[0] == 2 && g.seq[1] == 3, "scan from 2, max 2: %d %llu %llu", n,
          (unsigned long long)g.seq[0], (unsigned long long)g.seq[1]);
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    n = spool_db_logrec_scan(db, 0, 100, collect, &g);
    CHECK(n == 42 && g.n == 1, "stop: %d after %zu", n, g.n);

    /* a range delete up to 2 (no fsync), then the rest survives a reopen and numbering goes on */
    syncs0 = spool_db_wal_syncs(db);
    CHECK(spool_db_logrec_trim(db, 2, false) == 0, "trim: %s", spool_db_error(db));
    syncs1 = spool_db_wal_syncs(db);
    CHECK(syncs0 < 0 || syncs1 == syncs0, "a trim without sync costs no WAL sync (%lld)",
          (long long)(syncs1 - syncs0));
    scan_all(db, 0, &g);
    CHECK(g.n == 2 && g.seq[0] == 3 && g.seq[1] == 5, "after trim: %zu records, first %llu", g.n,
          (unsigned long long)g.seq[0]);
    struct proto_env env;
    CHECK(spool_db_get_envelope(db, m1, &env) == 0, "the trim leaves messages alone");
    proto_env_fini(&env);
    spool_db_batch_free(b);
    spool_db_close(db);

    rc = spool_db_open(dir, NULL, &db, &err);
    CHECK(rc == 0, "reopen: %d", rc);
    if (rc != 0)
        exit(1);
    CHECK(spool_db_logrec_next(db) == 6, "after a reopen numbering goes on after the newest record: %llu",
          (unsigned long long)spool_db_logrec_next(db));
    scan_all(db, 0, &g);
    CHECK(g.n == 2 && g.seq[0] == 3 && g.seq[1] == 5, "after reopen: %zu records", g.n);
    walked = walk_all(db, &bad);
    CHECK(walked == 2 && bad == 0, "walk after reopen: %zu, %llu quarantined", walked, (unsigned long long)bad);

    /* all trimmed: numbering may start again, and new records are not hidden by the old range delete */
    CHECK(spool_db_logrec_trim(db, 5, true) == 0, "trim all: %s", spool_db_error(db));
    scan_all(db, 0, &g);
    CHECK(g.n == 0, "nothing left, got %zu", g.n);
    spool_db_close(db);
    rc = spool_db_open(dir, NULL, &db, &err);
    CHECK(rc == 0, "reopen: %d", rc);
    if (rc != 0)
        exit(1);
    b = spool_db_batch_new(db);
    uint64_t s6 = 0;
    CHECK(spool_db_logrec_add(b, lines[0], strlen(lines[0]), &s6) == 0, "logrec");
    CHECK(spool_db_commit(db, b) == 0, "commit");
    scan_all(db, 0, &g);
    CHECK(g.n == 1 && g.seq[0] == s6, "a record after a range delete over its number is visible: %zu (seq %llu)",
          g.n, (unsigned long long)s6);
    CHECK(spool_db_logrec_trim(db, UINT64_MAX, false) == -EINVAL, "upto UINT64_MAX is refused");
    spool_db_batch_free(b);
    spool_db_close(db);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    free(err);
}

/* ---- spool_log_write_line ---- */

/* the decompressed content of the one segment in dir */
static char *read_segment(const char *dir, size_t *len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512] = "";
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, SPOOL_LOG_SUFFIX) != NULL)
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    FILE *f = path[0] ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return NULL;
    static char comp[1 << 16];
    size_t n = fread(comp, 1, sizeof(comp), f);
    fclose(f);
    unsigned long long size = ZSTD_getFrameContentSize(comp, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1u << 20))
        return NULL;
    char *out = malloc((size_t)size + 1);
    size_t got = ZSTD_decompress(out, (size_t)size, comp, n);
    if (ZSTD_isError(got)) {
        free(out);
        return NULL;
    }
    out[got] = '\0';
    *len = got;
    return out;
}

static void test_write_line(void)
{
    char *dir = temp_dir();
    struct spool_log_opts o = {.dir = dir};
    struct spool_log *lg = NULL;
    int rc = spool_log_open(&o, 1700000000000000000ull, &lg);
    CHECK(rc == 0, "log open: %d", rc);
    if (rc != 0)
        exit(1);
    static const struct {
        const char *line;
        int want;
    } cases[] = {
        {"{\"type\":\"Bounce\",\"id\":\"x\"}", 0},
        {"", -EINVAL},
        {"[1,2]", -EINVAL},
        {"{\"a\":1}\n{\"b\":2}", -EINVAL},
        {"{\"type\":\"Delivery\",\"id\":\"y\"}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = spool_log_write_line(lg, cases[i].line, strlen(cases[i].line));
        CHECK(rc == cases[i].want, "case %zu: %d, want %d", i, rc, cases[i].want);
    }
    struct spool_log_stats st;
    spool_log_stats_get(lg, &st);
    CHECK(st.records == 2, "2 records buffered, got %llu", (unsigned long long)st.records);
    CHECK(spool_log_sync(lg) == 0, "sync");
    spool_log_stats_get(lg, &st);
    CHECK(st.pending_bytes == 0 && st.flushes == 1, "pending %zu, flushes %llu", st.pending_bytes,
          (unsigned long long)st.flushes);
    CHECK(spool_log_close(lg) == 0, "close");
    size_t len = 0;
    char *text = read_segment(dir, &len);
    const char *want = "{\"type\":\"Bounce\",\"id\":\"x\"}\n{\"type\":\"Delivery\",\"id\":\"y\"}\n";
    CHECK(text != NULL && strcmp(text, want) == 0, "segment holds the lines as given: %s", text ? text : "(none)");
    free(text);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

int main(void)
{
    log_init("spool_wal_test", 0);
    log_set_level(LOG_LEVEL_WARN);
    msgid_init(9);
    test_db_logahead();
    test_write_line();
    if (!check_failures)
        printf("spool_wal_test: ok\n");
    CHECK_EXIT();
}
