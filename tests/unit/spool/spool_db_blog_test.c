/*
 * spool_db_blog_test - the body log (spool/spool_db_blog.c) through spool_db's API, on real RocksDB and real
 * files: bodies of 4 KiB and more land in segment files and smaller ones in RocksDB, both read back after a
 * reopen; a flipped byte in a segment is refused (-EBADMSG), never handed out; the sweep unlinks segments
 * nobody points to and moves the live bodies out of old, mostly dead ones; a torn tail is ignored; and a
 * failed write or fdatasync of a segment fails the commit with nothing of it visible, before or after a
 * reopen, while the next commit works.
 *
 * The failures come from the fault shim (tests/fault/fault_shim.c), preloaded by meson, acting on the body
 * log directory only: RINGMAIL_FAULT_DIR is DIR/spool/bodylog of the directory given as the first argument
 * (the same as meson's RINGMAIL_FAULT_DIR minus that suffix). Without the shim those cases are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/msgid.h"
#include "spool/spool_db.h"
#include "tests/lib/check.h"
#include "tests/unit/spool/spool_db_fixture.h"

enum { N = 240 };

static struct spool_db_opts small_segments(void)
{
    struct spool_db_opts o = {.body_log_segment_bytes = 256u << 10};
    return o;
}

/* the body length of message i: every fifth one small (stays in RocksDB), the others 5-7.4 KiB */
static size_t len_of(size_t i)
{
    return i % 5 == 0 ? 1000 + i : 5000 + 10 * i;
}

static bool big(size_t i)
{
    return len_of(i) >= 4096;
}

static int add_msg(struct spool_db_batch *b, struct msgid id, size_t len)
{
    uint8_t *body = malloc(len);
    body_fill(id, body, len);
    struct proto_env r = make_rec(id, 2, len);
    int rc = spool_db_batch_store(b, id, &r, body, len);
    free(body);
    return rc;
}

/* msg_ok - envelope and body are what add_msg() stored */
static bool msg_ok(struct spool_db *db, struct msgid id, size_t len, const char **why)
{
    struct proto_env r;
    if (spool_db_get_envelope(db, id, &r) < 0) {
        *why = "envelope missing";
        return false;
    }
    bool ok = r.body_size == len && r.rcpt_count == 2;
    proto_env_fini(&r);
    struct buf b = {0};
    int rc = spool_db_get_body(db, id, &b);
    uint8_t *want = malloc(len);
    body_fill(id, want, len);
    if (!ok)
        *why = "envelope differs";
    else if (rc < 0)
        *why = spool_db_error(db), ok = false;
    else if (b.len != len || memcmp(b.data, want, len) != 0)
        *why = "body differs", ok = false;
    free(want);
    buf_fini(&b);
    return ok;
}

static void store_all(struct spool_db *db, struct msgid *ids, size_t n)
{
    struct spool_db_batch *b = spool_db_batch_new(db);
    for (size_t i = 0; i < n; i++) {
        ids[i] = msgid_generate();
        CHECK(add_msg(b, ids[i], len_of(i)) == 0, "add %zu", i);
        if (i % 24 == 23 || i == n - 1) {
            CHECK(spool_db_commit(db, b) == 0, "commit: %s", spool_db_error(db));
            spool_db_batch_reset(b);
        }
    }
    spool_db_batch_free(b);
}

static size_t check_all(struct spool_db *db, const struct msgid *ids, size_t n, const bool *gone, const char *when)
{
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why = "";
        if (gone != NULL && gone[i]) {
            CHECK(message_absent(db, ids[i]), "%s: message %zu still there", when, i);
            continue;
        }
        if (msg_ok(db, ids[i], len_of(i), &why))
            ok++;
        else
            CHECK(0, "%s: message %zu (%zu bytes): %s", when, i, len_of(i), why);
    }
    return ok;
}

static size_t count_big(size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += big(i);
    return k;
}

/* segment_files - the names of the segment files in DIR/bodylog, sorted; the count */
static size_t segment_files(const char *dbdir, char names[][64], size_t max)
{
    char *d = path_join(dbdir, "bodylog");
    DIR *dh = opendir(d);
    size_t n = 0;
    struct dirent *e;
    while (dh != NULL && (e = readdir(dh)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".blog") == 0 && n < max)
            snprintf(names[n++], 64, "%s", e->d_name);
    }
    if (dh != NULL)
        closedir(dh);
    free(d);
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* find_record - the segment file and offset of a message's record, by reading the segments as the sweep does */
static bool find_record(const char *dbdir, struct msgid id, char *path, size_t cap, long *off)
{
    char names[256][64];
    size_t n = segment_files(dbdir, names, 256);
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, cap, "%s/bodylog/%s", dbdir, names[i]);
        FILE *f = fopen(path, "rb");
        long at = 0;
        uint8_t hb[SPOOL_DB_BLOG_HDR_BYTES];
        while (f != NULL && fseek(f, at, SEEK_SET) == 0 && fread(hb, 1, sizeof(hb), f) == sizeof(hb)) {
            struct spool_db_blog_hdr h;
            const char *why;
            if (spool_db_blog_hdr_decode(hb, sizeof(hb), &h, &why) < 0)
                break;
            if (memcmp(h.key, key, MSGID_BYTES) == 0) {
                fclose(f);
                *off = at;
                return true;
            }
            at += (long)spool_db_blog_rec_size(h.len);
        }
        if (f != NULL)
            fclose(f);
    }
    return false;
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    uint8_t c = 0;
    CHECK(fd >= 0 && pread(fd, &c, 1, off) == 1, "read %s", path);
    c ^= 0x20;
    CHECK(pwrite(fd, &c, 1, off) == 1, "write %s", path);
    close(fd);
}

static void sweep_until_idle(struct spool_db *db)
{
    for (int i = 0; i < 100000 && spool_db_sweep(db, 64) > 0; i++)
        ;
}

/* ---- placement, reads, reopen, corruption ---- */

static void test_round_trip(const char *base)
{
    char *dbdir = path_join(base, "rt");
    struct spool_db_opts o = small_segments();
    struct spool_db *db = open_or_die(dbdir, &o);
    struct msgid ids[N];
    store_all(db, ids, N);
    struct spool_db_stats st;
    spool_db_stats_get(db, &st);
    size_t nbig = count_big(N);
    CHECK(st.blog_records == nbig, "records in the body log %llu, want %zu", (unsigned long long)st.blog_records,
          nbig);
    struct spool_db_blog_status bs;
    spool_db_blog_status(db, &bs);
    CHECK(bs.segments >= 3 && bs.current != 0, "segments %llu, current %llu", (unsigned long long)bs.segments,
          (unsigned long long)bs.current);
    char names[256][64];
    CHECK(segment_files(dbdir, names, 256) == bs.segments, "segment files on disk");
    CHECK(check_all(db, ids, N, NULL, "stored") == N, "every message reads back");
    uint64_t before = bs.current;
    spool_db_close(db);

    db = open_or_die(dbdir, &o);
    CHECK(check_all(db, ids, N, NULL, "reopened") == N, "every message reads back after a reopen");
    /* a reopened log never appends to a segment it did not create: the next body opens a new one */
    struct msgid more[24];
    store_all(db, more, 24);
    spool_db_blog_status(db, &bs);
    CHECK(bs.current > before, "appends after a reopen go to a new segment (%llu after %llu)",
          (unsigned long long)bs.current, (unsigned long long)before);
    /* the fixture's messages (bodies of 100..9099 bytes by id) too */
    struct spool_db_batch *fb = spool_db_batch_new(db);
    struct msgid fx[8];
    for (int i = 0; i < 8; i++) {
        fx[i] = msgid_generate();
        CHECK(batch_add(fb, fx[i], 3) == 0, "fixture add");
    }
    CHECK(spool_db_commit(db, fb) == 0, "fixture commit: %s", spool_db_error(db));
    spool_db_batch_free(fb);
    for (int i = 0; i < 8; i++) {
        const char *why = "";
        CHECK(message_ok(db, fx[i], 3, &why), "fixture message %d: %s", i, why);
    }
    /* the walk reads envelopes only: it sees every message, wherever its body is */
    struct seen seen = {0};
    struct spool_db_walk w;
    CHECK(walk_all(db, 50, &seen, &w) == N + 24 + 8, "walk saw %zu", seen.n);
    free(seen.ids);

    /* where each body is */
    struct spool_db_blog_loc wl;
    CHECK(spool_db_body_where(db, ids[0], &wl) == 0, "a small body is in RocksDB");
    CHECK(spool_db_body_where(db, ids[1], &wl) == 1 && wl.seg != 0 && wl.len == len_of(1), "a big one in the log");
    CHECK(spool_db_body_where(db, msgid_generate(), &wl) == -ENOENT, "an unknown message has none");

    /* a flipped byte in a body, then in a header: refused, counted, never handed out */
    size_t victim = 0;
    while (!big(victim))
        victim++;
    char path[512];
    long off = 0;
    CHECK(find_record(dbdir, ids[victim], path, sizeof(path), &off), "record of message %zu found", victim);
    flip_byte(path, off + SPOOL_DB_BLOG_HDR_BYTES + 100);
    struct buf b = {0};
    CHECK(spool_db_get_body(db, ids[victim], &b) == -EBADMSG, "a damaged body is refused");
    uint8_t *dst = malloc(10000);
    size_t len = 0;
    CHECK(spool_db_read_body(db, ids[victim], dst, 10000, &len) == -EBADMSG, "read_body refuses it too");
    CHECK(strstr(spool_db_error(db), "hash") != NULL, "the error says why: %s", spool_db_error(db));
    flip_byte(path, off + SPOOL_DB_BLOG_HDR_BYTES + 100);
    CHECK(spool_db_get_body(db, ids[victim], &b) == 0 && b.len == len_of(victim), "whole again");
    flip_byte(path, off + 20); /* the message id in the header */
    CHECK(spool_db_get_body(db, ids[victim], &b) == -EBADMSG, "a record of another message is refused");
    flip_byte(path, off + 20);
    CHECK(spool_db_read_body(db, ids[victim], dst, 100, &len) == -ENOBUFS && len == len_of(victim),
          "a short buffer gets ENOBUFS and the length");
    spool_db_stats_get(db, &st);
    CHECK(st.blog_read_errors == 3, "read errors counted: %llu", (unsigned long long)st.blog_read_errors);
    free(dst);
    buf_fini(&b);
    spool_db_close(db);
    free(dbdir);
}

/* ---- the sweep: dead segments unlinked, old sparse ones relocated, torn tails ignored ---- */

static void test_sweep(const char *base)
{
    char *dbdir = path_join(base, "sweep");
    struct spool_db_opts o = small_segments();
    struct spool_db *db = open_or_die(dbdir, &o);
    struct msgid ids[N];
    bool gone[N] = {0};
    store_all(db, ids, N);
    struct spool_db_blog_status bs;
    spool_db_blog_status(db, &bs);
    uint64_t segs_before = bs.segments;

    /* deliver everything but two messages of the first segment, one of the third and a small one: the
     * others have no live record left */
    struct spool_db_batch *b = spool_db_batch_new(db);
    size_t kept = 0, kept_big = 0;
    for (size_t i = 0; i < N; i++) {
        if (i == 7 || i == 8 || i == 131 || i == 100) {
            kept++;
            kept_big += big(i);
            continue;
        }
        CHECK(spool_db_batch_delete(b, ids[i]) == 0, "delete");
        gone[i] = true;
    }
    CHECK(spool_db_commit(db, b) == 0, "deletes: %s", spool_db_error(db));
    spool_db_batch_free(b);
    CHECK(kept_big == 3, "three kept bodies are in the body log (%zu)", kept_big);

    sweep_until_idle(db);
    struct spool_db_stats st;
    spool_db_stats_get(db, &st);
    spool_db_blog_status(db, &bs);
    CHECK(st.blog_segments_removed + st.blog_segments_recycled > 0 && bs.segments - (bs.spare != 0) < segs_before,
          "dead segments gone: %llu removed, %llu recycled, %llu of %llu left",
          (unsigned long long)st.blog_segments_removed, (unsigned long long)st.blog_segments_recycled,
          (unsigned long long)bs.segments, (unsigned long long)segs_before);
    /* the first dead one (at least half a segment) is kept as the spare, under a new number */
    CHECK(st.blog_segments_recycled == 1 && bs.spare > bs.current, "recycled %llu, spare %llu",
          (unsigned long long)st.blog_segments_recycled, (unsigned long long)bs.spare);
    CHECK(bs.segments - 1 > 1, "segments with live bodies are kept while young");
    CHECK(st.blog_relocated == 0, "nothing relocated while young");
    check_all(db, ids, N, gone, "after the sweep");

    /* ten minutes later the sparse ones are emptied into the current segment and unlinked */
    spool_db_blog_age(db, 20 * 60 * 1000);
    sweep_until_idle(db);
    spool_db_stats_get(db, &st);
    spool_db_blog_status(db, &bs);
    CHECK(st.blog_relocated > 0 && st.blog_relocated <= kept_big, "relocated %llu of %zu live bodies",
          (unsigned long long)st.blog_relocated, kept_big);
    CHECK(bs.segments == 2 && bs.spare != 0, "the current segment and the spare are left: %llu",
          (unsigned long long)bs.segments);
    CHECK(check_all(db, ids, N, gone, "after relocation") == kept, "the kept messages read back");

    /* the next segment is the spare, written over: no new file */
    uint64_t spare = bs.spare, created = st.blog_segments_created;
    struct msgid more[60];
    store_all(db, more, 60);
    spool_db_blog_status(db, &bs);
    spool_db_stats_get(db, &st);
    CHECK(bs.current == spare && bs.spare == 0 && st.blog_segments_created == created,
          "the roll took the spare %llu: current %llu, created %llu after %llu", (unsigned long long)spare,
          (unsigned long long)bs.current, (unsigned long long)st.blog_segments_created,
          (unsigned long long)created);
    CHECK(check_all(db, more, 60, NULL, "over the spare") == 60, "bodies written over the spare read back");
    uint64_t current = bs.current;
    spool_db_close(db);

    /* a torn record after the last one (a crash mid-append) is ignored by readers and the sweep */
    char names[8][64];
    char *seg = xasprintf("%s/bodylog/%016llx.blog", dbdir, (unsigned long long)current);
    int fd = open(seg, O_WRONLY | O_APPEND);
    static const uint8_t torn[] = {'R', 'M', 'B', 'L', 1, 0, 0, 0, 0xff, 0xff};
    CHECK(fd >= 0 && write(fd, torn, sizeof(torn)) == (ssize_t)sizeof(torn), "torn tail");
    close(fd);
    db = open_or_die(dbdir, &o);
    CHECK(check_all(db, ids, N, gone, "reopened after relocation") == kept, "the kept messages after a reopen");
    CHECK(check_all(db, more, 60, NULL, "reopened") == 60, "and those written over the spare");
    /* deliver the rest: every segment goes but one, kept as the spare */
    b = spool_db_batch_new(db);
    for (size_t i = 0; i < N; i++)
        if (!gone[i]) {
            CHECK(spool_db_batch_delete(b, ids[i]) == 0, "delete");
            gone[i] = true;
        }
    for (size_t i = 0; i < 60; i++)
        CHECK(spool_db_batch_delete(b, more[i]) == 0, "delete");
    CHECK(spool_db_commit(db, b) == 0, "deletes: %s", spool_db_error(db));
    spool_db_batch_free(b);
    sweep_until_idle(db);
    spool_db_blog_status(db, &bs);
    CHECK(bs.segments == 1 && bs.spare != 0, "an empty spool keeps only the spare: %llu",
          (unsigned long long)bs.segments);
    CHECK(segment_files(dbdir, names, 8) == 1, "one segment file left");
    spool_db_close(db);
    free(seg);
    free(dbdir);
}

/* ---- body_log turned off: new bodies go to RocksDB and the sweep drains the log into it ---- */

static void test_turned_off(const char *base)
{
    char *dbdir = path_join(base, "off");
    struct spool_db_opts o = small_segments();
    struct spool_db *db = open_or_die(dbdir, &o);
    struct msgid ids[N];
    store_all(db, ids, N);
    spool_db_close(db);

    o.body_log_off = true;
    db = open_or_die(dbdir, &o);
    struct msgid more[24];
    store_all(db, more, 24);
    struct spool_db_stats st;
    spool_db_stats_get(db, &st);
    CHECK(st.blog_records == 0, "nothing new goes to the body log: %llu", (unsigned long long)st.blog_records);
    sweep_until_idle(db);
    struct spool_db_blog_status bs;
    spool_db_blog_status(db, &bs);
    spool_db_stats_get(db, &st);
    CHECK(bs.segments == 0, "the log drained: %llu segments", (unsigned long long)bs.segments);
    CHECK(st.blog_relocated == count_big(N), "every body moved back: %llu of %zu",
          (unsigned long long)st.blog_relocated, count_big(N));
    CHECK(check_all(db, ids, N, NULL, "drained") == N, "the drained messages read back from RocksDB");
    CHECK(check_all(db, more, 24, NULL, "log off") == 24, "the new ones too");
    spool_db_close(db);
    o.body_log_off = false;
    db = open_or_die(dbdir, &o);
    CHECK(check_all(db, ids, N, NULL, "reopened") == N, "and after a reopen with the log on again");
    spool_db_close(db);
    free(dbdir);
}

/* ---- failed writes: the commit fails whole, the next one works ---- */

static void set_fault(const char *ctl, const char *mode)
{
    if (mode == NULL) {
        unlink(ctl);
        return;
    }
    FILE *f = fopen(ctl, "w");
    CHECK(f != NULL, "fault control %s", ctl);
    if (f != NULL) {
        fputs(mode, f);
        fclose(f);
    }
}

static long hits(const char *ctl)
{
    char *p = xasprintf("%s.hits", ctl);
    FILE *f = fopen(p, "r");
    long n = 0;
    int c;
    while (f != NULL && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f != NULL)
        fclose(f);
    free(p);
    return n;
}

static void test_failures(const char *base)
{
    const char *ctl = getenv("RINGMAIL_FAULT_FILE");
    const char *fdir = getenv("RINGMAIL_FAULT_DIR");
    char *dbdir = path_join(base, "spool");
    char *want = path_join(dbdir, "bodylog");
    if (ctl == NULL || fdir == NULL || strcmp(fdir, want) != 0 || getenv("LD_PRELOAD") == NULL) {
        printf("skip failures: run under the fault shim with RINGMAIL_FAULT_DIR=%s\n", want);
        free(want);
        free(dbdir);
        return;
    }
    char *hp = xasprintf("%s.hits", ctl);
    FILE *hf = fopen(hp, "w");
    if (hf != NULL)
        fclose(hf);
    struct spool_db_opts o = small_segments();
    struct spool_db *db = open_or_die(dbdir, &o);
    struct msgid early[24];
    store_all(db, early, 24);

    static const char *const modes[] = {"eio", "enospc", "eio-fsync"};
    struct msgid failed[3][24];
    for (int m = 0; m < 3; m++) {
        long h0 = hits(ctl);
        struct spool_db_batch *b = spool_db_batch_new(db);
        for (int i = 0; i < 24; i++) {
            failed[m][i] = msgid_generate();
            CHECK(add_msg(b, failed[m][i], len_of((size_t)i)) == 0, "add");
        }
        set_fault(ctl, modes[m]);
        int rc = spool_db_commit(db, b);
        set_fault(ctl, NULL);
        CHECK(rc < 0, "%s: the commit fails (%d)", modes[m], rc);
        CHECK(hits(ctl) > h0, "%s: the fault fired", modes[m]);
        CHECK(!spool_db_needs_recover(db), "%s: RocksDB was never written, no reopen needed", modes[m]);
        for (int i = 0; i < 24; i++)
            CHECK(message_absent(db, failed[m][i]), "%s: message %d of the failed batch is absent", modes[m], i);
        struct msgid blocked[4];
        store_all(db, blocked, 4); /* the failed batch keeps its place: these bodies go to RocksDB */
        CHECK(check_all(db, blocked, 4, NULL, "beside a failed batch") == 4, "%s: commits beside it work", modes[m]);
        if (m == 0) {
            /* the same batch again, the disk healthy: the same bytes at the same place, and it holds */
            CHECK(spool_db_commit(db, b) == 0, "%s: the failed batch commits again: %s", modes[m], spool_db_error(db));
            CHECK(check_all(db, failed[m], 24, NULL, "committed again") == 24, "%s: all of it", modes[m]);
        }
        spool_db_batch_free(b);
        struct msgid after[24];
        store_all(db, after, 24);
        CHECK(check_all(db, after, 24, NULL, "after a failure") == 24, "%s: the next commit works", modes[m]);
    }
    struct spool_db_stats st;
    spool_db_stats_get(db, &st);
    CHECK(st.blog_failures == 3, "failures counted: %llu", (unsigned long long)st.blog_failures);
    CHECK(check_all(db, failed[0], 24, NULL, "before the reopen") == 24, "the batch committed again");

    /* no new segment can be made (its directory entry cannot be synced): the bodies go to RocksDB, and the
     * log is tried again a second later. Counts start again with the reopen. */
    /* a reopened database opens a new segment for its first body */
    spool_db_close(db);
    db = open_or_die(dbdir, &o);
    struct spool_db_batch *b = spool_db_batch_new(db);
    set_fault(ctl, "eio-fsync");
    spool_db_stats_get(db, &st);
    struct spool_db_stats st0 = st;
    size_t nbig = 0;
    struct msgid fb[24];
    for (int i = 0; i < 24; i++) {
        fb[i] = msgid_generate();
        nbig += big((size_t)i);
        CHECK(add_msg(b, fb[i], len_of((size_t)i)) == 0, "add while no segment can be made");
    }
    set_fault(ctl, NULL);
    CHECK(spool_db_commit(db, b) == 0, "a commit without a segment works: %s", spool_db_error(db));
    spool_db_batch_free(b);
    CHECK(check_all(db, fb, 24, NULL, "bodies in RocksDB") == 24, "they read back");
    spool_db_stats_get(db, &st);
    CHECK(st.blog_records == st0.blog_records, "none went to the body log");
    struct msgid soon[24];
    store_all(db, soon, 24); /* within the second: still RocksDB */
    spool_db_stats_get(db, &st);
    CHECK(st.blog_records == st0.blog_records, "not retried within the second");
    usleep(1100 * 1000);
    struct msgid later[24];
    store_all(db, later, 24);
    spool_db_stats_get(db, &st);
    CHECK(st.blog_records == st0.blog_records + nbig, "the body log is used again: %llu after %llu",
          (unsigned long long)st.blog_records, (unsigned long long)st0.blog_records);
    spool_db_close(db);
    db = open_or_die(dbdir, &o);
    CHECK(check_all(db, early, 24, NULL, "reopened") == 24, "the earlier commits are intact");
    CHECK(check_all(db, failed[0], 24, NULL, "reopened") == 24, "the batch committed again is intact");
    for (int m = 1; m < 3; m++)
        for (int i = 0; i < 24; i++)
            CHECK(message_absent(db, failed[m][i]), "%s: still absent after a reopen", modes[m]);
    spool_db_close(db);
    free(hp);
    free(want);
    free(dbdir);
}

int main(int argc, char **argv)
{
    log_init("spool_db_blog_test", 0);
    log_set_level(LOG_LEVEL_WARN);
    msgid_init(7);
    char *base = argc > 1 ? argv[1] : temp_dir();
    char *cmd = xasprintf("rm -rf '%s' && mkdir -p '%s'", base, base);
    if (system(cmd) != 0)
        FAIL("cannot prepare %s", base);
    free(cmd);
    test_round_trip(base);
    test_sweep(base);
    test_turned_off(base);
    test_failures(base);
    cmd = xasprintf("rm -rf '%s'", base);
    if (system(cmd) != 0)
        FAIL("cannot remove %s", base);
    free(cmd);
    if (!check_failures)
        printf("spool_db_blog_test: ok\n");
    CHECK_EXIT();
}
