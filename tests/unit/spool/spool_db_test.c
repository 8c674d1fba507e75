/*
 * spool_db_test - the spool's RocksDB store: round trips, group commit, reopen, crash, walk,
 * quarantine (DUR-04) and free space (DISK-01); a commit that fails with ENOSPC is
 * spool_db_enospc_test.
 *
 * The crash child is this program re-executed (`crash-child DIR FD MODE`), so it starts
 * without the parent's RocksDB threads. It reports each message id on a pipe only after
 * spool_db_commit() returned 0: that pipe is the "client's own record" of what was promised.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "base/log.h"
#include "common/msgid.h"
#include "spool/spool_db.h"
#include "tests/lib/check.h"
#include "tests/unit/spool/spool_db_fixture.h"

static char self_exe[4096];

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool seen_has(const struct seen *s, struct msgid id)
{
    for (size_t i = 0; i < s->n; i++)
        if (msgid_eq(s->ids[i], id))
            return true;
    return false;
}

/* ---- tests ---- */

static void test_round_trip(void)
{
    char *dir = temp_dir();
    char *dbdir = path_join(dir, "spool");
    struct spool_db *db = open_or_die(dbdir, NULL);

    struct msgid id = msgid_generate();
    size_t len = body_len_for(id);
    uint8_t *body = malloc(len);
    body_fill(id, body, len);
    struct proto_env r = make_rec(id, 3, len);
    CHECK(spool_db_store(db, id, &r, body, len) == 0, "store: %s", spool_db_error(db));
    const char *why = "";
    CHECK(message_ok(db, id, 3, &why), "round trip: %s", why);

    uint8_t small[16], big[10000];
    size_t got = 0;
    CHECK(spool_db_read_body(db, id, small, sizeof(small), &got) == -ENOBUFS && got == len,
        "read_body into small buffer: got %zu", got);
    CHECK(spool_db_read_body(db, id, big, sizeof(big), &got) == 0 && got == len && memcmp(big, body, len) == 0,
        "read_body");

    /* update recipient states */
    struct proto_env cur;
    CHECK(spool_db_get_envelope(db, id, &cur) == 0, "get for update");
    cur.rcpts[1].state = PROTO_RCPT_DELIVERED;
    cur.rcpts[2].state = PROTO_RCPT_BOUNCED;
    cur.rcpts[0].attempts = 2;
    CHECK(spool_db_update(db, id, &cur) == 0, "update: %s", spool_db_error(db));
    proto_env_fini(&cur);
    CHECK(spool_db_get_envelope(db, id, &cur) == 0, "get after update");
    CHECK(cur.rcpts[0].state == PROTO_RCPT_QUEUED && cur.rcpts[0].attempts == 2 &&
        cur.rcpts[1].state == PROTO_RCPT_DELIVERED && cur.rcpts[2].state == PROTO_RCPT_BOUNCED,
        "states after update: %u/%u %u %u", cur.rcpts[0].state, cur.rcpts[0].attempts,
        cur.rcpts[1].state, cur.rcpts[2].state);
    CHECK(spool_db_read_body(db, id, big, sizeof(big), &got) == 0 && got == len, "body after update");
    proto_env_fini(&cur);

    struct msgid unknown = msgid_generate();
    CHECK(spool_db_update(db, unknown, &r) == -ENOENT, "update of unknown id");
    CHECK(message_absent(db, unknown), "unknown id present");
    struct proto_env bad = r;
    bad.rcpt_count = 0;
    CHECK(spool_db_store(db, unknown, &bad, body, len) == -EINVAL, "store of invalid record");

    /* large body (blob file path) and empty body */
    struct msgid idl = msgid_generate(), ide = msgid_generate();
    size_t biglen = 3u << 20;
    uint8_t *bigbody = malloc(biglen);
    body_fill(idl, bigbody, biglen);
    struct proto_env rl = make_rec(idl, 1, biglen), re = make_rec(ide, 1, 0);
    CHECK(spool_db_store(db, idl, &rl, bigbody, biglen) == 0, "store 3 MiB");
    CHECK(spool_db_store(db, ide, &re, NULL, 0) == 0, "store empty body");
    struct buf b = {0};
    CHECK(spool_db_get_body(db, idl, &b) == 0 && b.len == biglen && memcmp(b.data, bigbody, biglen) == 0, "3 MiB body");
    CHECK(spool_db_get_body(db, ide, &b) == 0 && b.len == 0, "empty body: %zu", b.len);
    buf_fini(&b);

    CHECK(spool_db_delete(db, id) == 0, "delete");
    CHECK(message_absent(db, id), "deleted message still present");
    spool_db_close(db);

    /* reopen: the large one is still there (now from the WAL, later from blob files) */
    db = open_or_die(dbdir, NULL);
    b = (struct buf){0};
    CHECK(spool_db_get_body(db, idl, &b) == 0 && b.len == biglen && memcmp(b.data, bigbody, biglen) == 0,
        "3 MiB body after reopen");
    CHECK(message_absent(db, id), "deleted message back after reopen");
    buf_fini(&b);

    /* a second open of the same directory is refused while the first holds it */
    struct spool_db *db2 = NULL;
    char *err = NULL;
    int rc = spool_db_open(dbdir, NULL, &db2, &err);
    CHECK(rc == -EBUSY && db2 == NULL && err != NULL, "second open rc %d (%s)", rc, err ? err : "");
    free(err);
    spool_db_close(db);

    free(bigbody);
    free(body);
    rm_rf(dir);
    free(dbdir);
    free(dir);
}

static void test_group_commit(void)
{
    char *dir = temp_dir();
    struct spool_db *db = open_or_die(dir, NULL);
    enum { N = 100 };
    struct msgid ids[N];

    struct spool_db_stats s0, s1;
    spool_db_stats_get(db, &s0);
    int64_t w0 = spool_db_wal_syncs(db);
    CHECK(w0 >= 0, "wal sync statistic unavailable");

    struct spool_db_batch *b = spool_db_batch_new(db);
    for (int i = 0; i < N; i++) {
        ids[i] = msgid_generate();
        CHECK(batch_add(b, ids[i], (uint32_t)(1 + i % 3)) == 0, "batch add %d", i);
    }
    CHECK(spool_db_batch_count(b) == N, "batch count %zu", spool_db_batch_count(b));
    /* nothing is visible before the commit */
    CHECK(message_absent(db, ids[0]) && message_absent(db, ids[N - 1]), "visible before commit");
    CHECK(spool_db_commit(db, b) == 0, "commit: %s", spool_db_error(db));
    spool_db_stats_get(db, &s1);
    int64_t w1 = spool_db_wal_syncs(db);
    CHECK(s1.commits - s0.commits == 1, "commits %llu for one group", (unsigned long long)(s1.commits - s0.commits));
    CHECK(s1.stored - s0.stored == N, "stored %llu", (unsigned long long)(s1.stored - s0.stored));
    CHECK(w1 - w0 == 1, "RocksDB counted %lld WAL syncs for 100 messages, want 1", (long long)(w1 - w0));
    for (int i = 0; i < N; i++) {
        const char *why = "";
        if (!message_ok(db, ids[i], (uint32_t)(1 + i % 3), &why)) {
            CHECK(0, "message %d: %s", i, why);
            break;
        }
    }

    /* an empty batch costs no fsync */
    spool_db_batch_reset(b);
    CHECK(spool_db_commit(db, b) == 0, "empty commit");
    CHECK(spool_db_wal_syncs(db) == w1, "empty commit synced");

    /* 50 deletes and 50 updates in one group: one sync */
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            CHECK(spool_db_batch_delete(b, ids[i]) == 0, "batch delete");
        } else {
            struct proto_env r = make_rec(ids[i], 1, body_len_for(ids[i]));
            struct proto_env_rcpt done[1] = { { "one@gmail.com", PROTO_RCPT_DELIVERED, 1 } };
            r.rcpts = done;
            CHECK(spool_db_batch_update(b, ids[i], &r) == 0, "batch update");
        }
    }
    CHECK(spool_db_commit(db, b) == 0, "commit updates: %s", spool_db_error(db));
    CHECK(spool_db_wal_syncs(db) - w1 == 1, "updates+deletes took %lld syncs", (long long)(spool_db_wal_syncs(db) - w1));
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            CHECK(message_absent(db, ids[i]), "deleted %d present", i);
        } else {
            struct proto_env r;
            CHECK(spool_db_get_envelope(db, ids[i], &r) == 0 && r.rcpt_count == 1 &&
                r.rcpts[0].state == PROTO_RCPT_DELIVERED, "updated %d", i);
            if (r._mem)
                proto_env_fini(&r);
        }
    }
    spool_db_batch_free(b);

    /* reopen after close keeps everything, and the walk sees it in creation order */
    spool_db_close(db);
    db = open_or_die(dir, NULL);
    struct seen s = { .ordered = true };
    struct spool_db_walk w;
    size_t n = walk_all(db, 7, &s, &w);
    CHECK(n == N / 2, "walk found %zu, want %d", n, N / 2);
    CHECK(s.ordered, "walk not in key order");
    for (int i = 1; i < N; i += 2)
        CHECK(seen_has(&s, ids[i]), "walk missed %d", i);
    CHECK(w.quarantined == 0, "quarantined %llu", (unsigned long long)w.quarantined);

    /* stopping from the callback returns its value; the cursor resumes after that record */
    spool_db_walk_init(&w);
    s.n = 0;
    int rc = spool_db_walk_step(db, &w, 3, on_walk, &s);
    CHECK(rc == 3 && !w.done, "first step %d", rc);
    struct msgid late = msgid_generate();
    CHECK(spool_db_store(db, late, &(struct proto_env){ .sender = "", .rcpt_count = 1, .rcpts = test_rcpts },
        "x", 1) == 0, "store during walk");
    while (!w.done && (rc = spool_db_walk_step(db, &w, 5, on_walk, &s)) >= 0) {
    }
    CHECK(s.n == N / 2 + 1 && s.ordered && seen_has(&s, late), "walk with commit in between: %zu", s.n);
    free(s.ids);
    spool_db_close(db);
    rm_rf(dir);
    free(dir);
}

/* ---- crash: child commits and reports, then dies by SIGKILL ---- */

static int crash_child(const char *dir, int fd, const char *mode)
{
    log_init("spool_db_test-child", 0);
    alarm(30); /* bounded even if the parent vanished */
    struct spool_db *db = open_or_die(dir, NULL);
    struct spool_db_batch *b = spool_db_batch_new(db);
    bool once = strcmp(mode, "self") == 0;
    for (int round = 0; round < 100000; round++) {
        struct msgid ids[10];
        spool_db_batch_reset(b);
        for (int i = 0; i < 10; i++) {
            ids[i] = msgid_generate();
            if (batch_add(b, ids[i], 2) < 0)
                return 2;
        }
        if (spool_db_commit(db, b) < 0)
            return 3;
        uint8_t buf[10 * MSGID_BYTES];
        for (int i = 0; i < 10; i++)
            msgid_to_bytes(ids[i], buf + i * MSGID_BYTES);
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            return 4;
        if (once)
            raise(SIGKILL);
    }
    return 0;
}

static void crash_run(const char *mode, size_t want_ids)
{
    char *dir = temp_dir();
    int p[2];
    if (pipe(p) < 0) {
        CHECK(0, "pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char fdtext[16];
        snprintf(fdtext, sizeof(fdtext), "%d", p[1]);
        execl(self_exe, self_exe, "crash-child", dir, fdtext, mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 4096, n = 0;
    uint8_t *acked = malloc(cap * MSGID_BYTES);
    size_t partial = 0;
    uint8_t rec[MSGID_BYTES];
    while (n < want_ids) {
        struct pollfd pfd = { p[0], POLLIN, 0 };
        if (poll(&pfd, 1, 30000) <= 0) {
            CHECK(0, "crash child silent for 30 s");
            break;
        }
        ssize_t r = read(p[0], rec + partial, MSGID_BYTES - partial);
        if (r <= 0)
            break;
        partial += (size_t)r;
        if (partial == MSGID_BYTES) {
            if (n == cap) {
                cap *= 2;
                acked = realloc(acked, cap * MSGID_BYTES);
            }
            memcpy(acked + n * MSGID_BYTES, rec, MSGID_BYTES);
            n++;
            partial = 0;
        }
    }
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    /* ids reported between our last read and the kill were promised too: take them all */
    for (;;) {
        ssize_t r = read(p[0], rec + partial, MSGID_BYTES - partial);
        if (r <= 0)
            break;
        partial += (size_t)r;
        if (partial == MSGID_BYTES) {
            if (n == cap) {
                cap *= 2;
                acked = realloc(acked, cap * MSGID_BYTES);
            }
            memcpy(acked + n * MSGID_BYTES, rec, MSGID_BYTES);
            n++;
            partial = 0;
        }
    }
    close(p[0]);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child status %d", mode, st);
    CHECK(n >= want_ids, "%s: only %zu ids acknowledged", mode, n);

    struct spool_db *db = open_or_die(dir, NULL);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why = "";
        if (!message_ok(db, msgid_from_bytes(acked + i * MSGID_BYTES), 2, &why) && bad++ < 5)
            CHECK(0, "%s: acknowledged message %zu lost after SIGKILL: %s", mode, i, why);
    }
    /* committed but killed before reporting is allowed (at least once); unknown ids are not */
    struct seen s = { .ordered = true };
    struct spool_db_walk w;
    walk_all(db, 1000, &s, &w);
    CHECK(s.n >= n && s.n <= n + 10, "%s: walk found %zu for %zu acknowledged", mode, s.n, n);
    free(s.ids);
    spool_db_close(db);
    free(acked);
    rm_rf(dir);
    free(dir);
}

static void test_crash(void)
{
    crash_run("self", 10);
    crash_run("loop", 300);
}

/* ---- DUR-04: corrupt records are quarantined, never silently deleted ---- */

struct qseen {
    int n;
    bool reasons_ok;
    uint8_t values[8][64];
    size_t lens[8];
};

static int on_quarantined(void *arg, const struct spool_db_quarantined *q)
{
    struct qseen *s = arg;
    if (q->reason == NULL || q->reason[0] == '\0' || strcmp(q->reason, "unreadable quarantine record") == 0)
        s->reasons_ok = false;
    if (s->n < 8) {
        s->lens[s->n] = q->value_len < 64 ? q->value_len : 64;
        memcpy(s->values[s->n], q->value, s->lens[s->n]);
    }
    s->n++;
    return 0;
}

static void raw_put_envelopes(const char *dir, const uint8_t *const *keys, const size_t *klens,
    const uint8_t *const *vals, const size_t *vlens, int n)
{
    /* RocksDB refuses an open that leaves out an existing family: name every one */
    const char *names[8] = { "default", SPOOL_DB_CF_ENVELOPES, SPOOL_DB_CF_BODIES, SPOOL_DB_CF_QUARANTINE,
        SPOOL_DB_CF_LOGAHEAD, SPOOL_DB_CF_TSA, SPOOL_DB_CF_SUPPRESSION, SPOOL_DB_CF_BODYLOG };
    rocksdb_options_t *o = rocksdb_options_create();
    const rocksdb_options_t *co[8] = { o, o, o, o, o, o, o, o };
    rocksdb_column_family_handle_t *h[8] = {0};
    char *err = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, 8, names, co, h, &err);
    if (err != NULL) {
        CHECK(0, "raw open: %s", err);
        rocksdb_free(err);
        rocksdb_options_destroy(o);
        return;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    for (int i = 0; i < n; i++) {
        rocksdb_put_cf(db, wo, h[1], (const char *)keys[i], klens[i], (const char *)vals[i], vlens[i], &err);
        if (err != NULL) {
            CHECK(0, "raw put: %s", err);
            rocksdb_free(err);
            err = NULL;
        }
    }
    rocksdb_writeoptions_destroy(wo);
    for (int i = 0; i < 8; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}

static void test_quarantine(void)
{
    char *dir = temp_dir();
    struct spool_db *db = open_or_die(dir, NULL);
    enum { GOOD = 20 };
    struct msgid good[GOOD], spare[GOOD];
    struct spool_db_batch *b = spool_db_batch_new(db);
    for (int i = 0; i < GOOD; i++) {
        good[i] = msgid_generate();
        spare[i] = msgid_generate(); /* never stored: keys for corrupt records between good ones */
        CHECK(batch_add(b, good[i], 3) == 0, "add");
    }
    CHECK(spool_db_commit(db, b) == 0, "commit");
    spool_db_batch_free(b);

    /* a valid encoding to damage */
    struct buf enc = {0};
    struct proto_env r = make_rec(good[0], 3, 10);
    CHECK(proto_env_encode(&r, &enc) == 0, "encode");
    spool_db_close(db);

    uint8_t k_garbage[MSGID_BYTES], k_trunc[MSGID_BYTES], k_version[MSGID_BYTES];
    /* keys between the good ones, so the walk meets them mid-stream */
    msgid_to_bytes(spare[3], k_garbage);
    msgid_to_bytes(spare[9], k_trunc);
    msgid_to_bytes(spare[GOOD - 1], k_version);
    static const uint8_t k_short[] = { 0x00, 0x01, 0x02, 0x03, 0x04 };
    static const uint8_t v_garbage[] = "this is not an envelope record";
    uint8_t v_version[64];
    memcpy(v_version, enc.data, enc.len < 64 ? enc.len : 64);
    v_version[2] = 9;
    const uint8_t *keys[4] = { k_garbage, k_trunc, k_short, k_version };
    const size_t klens[4] = { MSGID_BYTES, MSGID_BYTES, sizeof(k_short), MSGID_BYTES };
    const uint8_t *vals[4] = { v_garbage, enc.data, enc.data, v_version };
    const size_t vlens[4] = { sizeof(v_garbage), enc.len - 7, enc.len, enc.len < 64 ? enc.len : 64 };
    raw_put_envelopes(dir, keys, klens, vals, vlens, 4);

    db = open_or_die(dir, NULL);
    struct seen s = { .ordered = true };
    struct spool_db_walk w;
    size_t n = walk_all(db, 4, &s, &w);
    CHECK(n == GOOD, "walk handed over %zu good records, want %d", n, GOOD);
    CHECK(s.ordered, "walk order");
    for (int i = 0; i < GOOD; i++)
        CHECK(seen_has(&s, good[i]), "good %d not walked", i);
    CHECK(w.quarantined == 4, "walk quarantined %llu, want 4", (unsigned long long)w.quarantined);
    struct spool_db_stats st;
    spool_db_stats_get(db, &st);
    CHECK(st.quarantined == 4, "stats quarantined %llu", (unsigned long long)st.quarantined);

    struct qseen q = { .reasons_ok = true };
    int qn = spool_db_quarantine_list(db, on_quarantined, &q);
    CHECK(qn == 4 && q.n == 4 && q.reasons_ok, "quarantine list %d/%d reasons_ok %d", qn, q.n, q.reasons_ok);
    /* the original bytes are kept: the garbage one is among them unchanged */
    bool found = false;
    for (int i = 0; i < q.n && i < 8; i++)
        if (q.lens[i] == sizeof(v_garbage) && memcmp(q.values[i], v_garbage, sizeof(v_garbage)) == 0)
            found = true;
    CHECK(found, "quarantined garbage bytes not kept verbatim");
    /* bodies of good messages untouched, quarantined envelopes gone from the live set */
    for (int i = 0; i < GOOD; i++) {
        const char *why = "";
        CHECK(message_ok(db, good[i], 3, &why), "good %d after quarantine: %s", i, why);
    }
    n = walk_all(db, 100, &s, &w);
    CHECK(n == GOOD && w.quarantined == 0, "second walk %zu good, %llu quarantined", n,
        (unsigned long long)w.quarantined);
    spool_db_close(db);

    /* quarantine survives a reopen */
    db = open_or_die(dir, NULL);
    q = (struct qseen){ .reasons_ok = true };
    CHECK(spool_db_quarantine_list(db, on_quarantined, &q) == 4, "quarantine after reopen");
    spool_db_close(db);
    free(s.ids);
    buf_fini(&enc);
    rm_rf(dir);
    free(dir);
}

/* the TSA history: firings kept in write order, the newest SPOOL_DB_TSA_KEEP only, across a reopen */
struct tsa_seen {
    uint64_t first, last, n;
    char value[32];
};

static int tsa_collect(void *arg, uint64_t seq, const void *run, size_t len)
{
    struct tsa_seen *t = arg;
    if (t->n++ == 0)
        t->first = seq;
    CHECK(seq > t->last, "sequence %llu after %llu", (unsigned long long)seq, (unsigned long long)t->last);
    t->last = seq;
    snprintf(t->value, sizeof(t->value), "%.*s", (int)len, (const char *)run);
    return 0;
}

static void test_tsa_history(void)
{
    char *dir = temp_dir();
    struct spool_db *db = open_or_die(dir, NULL);
    struct spool_db_batch *b = spool_db_batch_new(db);
    struct tsa_seen t = {0};

    CHECK(spool_db_tsa_scan(db, tsa_collect, &t) == 0 && t.n == 0, "empty history: %llu", (unsigned long long)t.n);
    CHECK(spool_db_batch_tsa_add(b, "x", 0) == -EINVAL, "empty firing accepted");
    const unsigned total = SPOOL_DB_TSA_KEEP + 5;
    for (unsigned i = 1; i <= total; i++) {
        char v[32];
        snprintf(v, sizeof(v), "firing-%u", i);
        CHECK(spool_db_batch_tsa_add(b, v, strlen(v)) == 0, "add %u", i);
        /* a firing travels with its log record; commit in passes of 1000 as the spool would */
        CHECK(spool_db_logrec_add(b, "{}", 2, NULL) == 0, "logrec");
        if (i % 1000 == 0 || i == total) {
            CHECK(spool_db_commit(db, b) == 0, "commit at %u", i);
            spool_db_batch_reset(b);
        }
    }
    memset(&t, 0, sizeof(t));
    CHECK(spool_db_tsa_scan(db, tsa_collect, &t) == (int)SPOOL_DB_TSA_KEEP, "kept %llu", (unsigned long long)t.n);
    CHECK(t.first == 6 && t.last == total && strcmp(t.value, "firing-10005") == 0, "kept %llu..%llu, last %s",
          (unsigned long long)t.first, (unsigned long long)t.last, t.value);
    spool_db_batch_free(b);
    spool_db_close(db);

    db = open_or_die(dir, NULL);
    b = spool_db_batch_new(db);
    CHECK(spool_db_batch_tsa_add(b, "after", 5) == 0 && spool_db_commit(db, b) == 0, "add after reopen");
    memset(&t, 0, sizeof(t));
    CHECK(spool_db_tsa_scan(db, tsa_collect, &t) == (int)SPOOL_DB_TSA_KEEP, "kept after reopen %llu",
          (unsigned long long)t.n);
    CHECK(t.last == total + 1 && strcmp(t.value, "after") == 0 && t.first == 7, "numbering goes on: %llu..%llu %s",
          (unsigned long long)t.first, (unsigned long long)t.last, t.value);
    spool_db_batch_free(b);
    spool_db_close(db);
    rm_rf(dir);
    free(dir);
}

/* compaction runs on its own thread while commits go on, reports its progress, ends "done" with every family
 * compacted, keeps every message (and the deletes), refuses a second start while one runs, and a close
 * while one runs stops and joins it */
static void test_compact(void)
{
    char *dir = temp_dir();
    struct spool_db *db = open_or_die(dir, NULL);
    struct spool_db_batch *b = spool_db_batch_new(db);
    enum { N = 3000 };
    struct msgid *ids = calloc(N, sizeof(*ids));
    struct spool_db_compact_status st;
    spool_db_compact_status(db, &st);
    CHECK(!st.running && st.runs == 0 && st.families_total > 0, "idle before: runs %llu", (unsigned long long)st.runs);
    for (int i = 0; i < N; i++) {
        ids[i] = msgid_generate();
        CHECK(batch_add(b, ids[i], 2) == 0, "store %d", i);
        if (i % 100 == 99) {
            CHECK(spool_db_commit(db, b) == 0, "commit %d", i);
            spool_db_batch_reset(b);
        }
    }
    for (int i = 0; i < N; i += 2)
        CHECK(spool_db_batch_delete(b, ids[i]) == 0, "delete %d", i);
    CHECK(spool_db_commit(db, b) == 0, "commit deletes");
    spool_db_batch_reset(b);

    CHECK(spool_db_compact_start(db) == 0, "start");
    /* right after the start the thread has the flush of 1,500 messages ahead of it */
    CHECK(spool_db_compact_start(db) == -EALREADY, "a second start while one runs");
    int during = 0, polls = 0;
    struct msgid extra[200];
    for (;;) {
        spool_db_compact_status(db, &st);
        if (!st.running)
            break;
        if (during < 200) { /* commits while it runs: the compaction holds nothing the loop needs */
            extra[during] = msgid_generate();
            CHECK(batch_add(b, extra[during], 1) == 0 && spool_db_commit(db, b) == 0, "commit during %d", during);
            spool_db_batch_reset(b);
            during++;
        }
        polls++;
        usleep(1000);
    }
    CHECK(st.runs == 1 && st.result == 0 && st.families_done == st.families_total, "done: result %d, %u/%u",
          st.result, st.families_done, st.families_total);
    /* everything was in the memtable before (no SST file yet); the flush made the files */
    CHECK(st.finished_ms >= st.started_ms && st.sst_bytes > 0, "times and sizes: %llu %llu %llu",
          (unsigned long long)st.started_ms, (unsigned long long)st.finished_ms, (unsigned long long)st.sst_bytes);
    /* the flush and compaction of 3,000 messages take tens of ms here; synced commits (about 1 ms each) went
     * through meanwhile: the compaction holds no lock a commit waits for */
    CHECK(during > 0, "no commit while the compaction ran (%d polls)", polls);
    const char *why = "";
    for (int i = 0; i < N; i++)
        CHECK(i % 2 ? message_ok(db, ids[i], 2, &why) : message_absent(db, ids[i]), "message %d after: %s", i, why);
    for (int i = 0; i < during; i++)
        CHECK(message_ok(db, extra[i], 1, &why), "committed during the compaction %d: %s", i, why);
    /* once more, and a close while it runs (or just after): joined, nothing lost */
    CHECK(spool_db_compact_start(db) == 0, "second run");
    spool_db_batch_free(b);
    spool_db_close(db);
    db = open_or_die(dir, NULL);
    for (int i = 1; i < N; i += 2)
        CHECK(message_ok(db, ids[i], 2, &why), "message %d after a close during compaction: %s", i, why);
    spool_db_close(db);
    free(ids);
    rm_rf(dir);
    free(dir);
}

static void test_free_space(void)
{
    uint64_t avail = 0;
    CHECK(spool_db_free_bytes("/tmp", &avail) == 0 && avail > 0, "free bytes of /tmp: %llu", (unsigned long long)avail);
    CHECK(spool_db_free_bytes("/nonexistent/spool", &avail) == -ENOENT, "free bytes of a missing dir");
    CHECK(!spool_db_space_low("/tmp", 1), "/tmp below 1 byte");
    CHECK(spool_db_space_low("/tmp", UINT64_MAX), "/tmp not below UINT64_MAX");
    CHECK(spool_db_space_low("/nonexistent/spool", 1), "missing dir not reported low");
}
int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "readlink /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    self_exe[n] = '\0';
    if (argc == 5 && strcmp(argv[1], "crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]), argv[4]);

    log_init("spool_db_test", 0);
    log_set_level(LOG_LEVEL_WARN);
    msgid_init(7);
    test_round_trip();
    test_group_commit();
    test_crash();
    test_quarantine();
    test_tsa_history();
    test_compact();
    test_free_space();
    if (!check_failures)
        printf("spool_db_test: ok\n");
    CHECK_EXIT();
}
