/*
 * spool_log_segment_test - spool log segments: rotation, flushing, crashes, write errors
 *
 * Rotation by size and by age, flushing by buffer size and by timer; time is driven through
 * spool_log_tick(), never slept. Write errors come from RLIMIT_FSIZE (EFBIG, partial writes
 * included), which needs no root and no mount. A child writer is SIGKILLed mid-run: every record
 * it had reported flushed must be in its active segment. A partial frame at the end and leftovers
 * at open. Segments are read back with the real `zstdcat` and `jq` (skip 77 when missing).
 * Everything lives under one /tmp directory removed at the end.
 */
#include "tests/lib/check.h"
#include "tests/unit/spool/spool_log_test.h"

/* ---- case: rotation by size, flush by buffer size ---- */

static void event_n(struct spool_log_event *ev, char *id, size_t idsize, unsigned n)
{
    /* ids from a multiplicative hash: poorly compressible, so segments fill up */
    snprintf(id, idsize, "%08x%08x-%06u", n * 2654435761u, (n + 7) * 2246822519u, n);
    memset(ev, 0, sizeof(*ev));
    ev->id = id;
    ev->sender = "s@x.example";
    ev->recipient = "r@y.example";
    ev->response.code = 250;
    ev->timestamp = 1700000000 + n;
}

static unsigned id_num(const json_t *r)
{
    const char *id = sget(r, "id");
    const char *dash = id ? strrchr(id, '-') : NULL;
    return dash ? (unsigned)strtoul(dash + 1, NULL, 10) : 0xffffffffu;
}

/* read_all - every segment of dir in name order; *expect_next counts records in order */
static void read_all(const char *dir, unsigned *expect_next, size_t *segments, bool jq)
{
    struct seglist sl;
    struct lines l;
    char path[256];
    list_segments(dir, &sl);
    *segments = sl.n;
    for (size_t s = 0; s < sl.n; s++) {
        snprintf(path, sizeof(path), "%s/%s", dir, sl.name[s]);
        read_log(path, jq, &l);
        CHECK(l.status == 0 && l.bad == 0, "%s: status %d, %zu bad", sl.name[s], l.status, l.bad);
        for (size_t i = 0; i < l.n; i++) {
            unsigned n = id_num(l.rec[i]);
            CHECK(n == *expect_next, "%s: record %u where %u expected", sl.name[s], n,
                  *expect_next);
            *expect_next = n + 1;
        }
        lines_free(&l);
    }
}

static void test_size_rotation(void)
{
    char dir[128], id[64], path[256];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "size");
    struct spool_log_opts o = {.max_segment_bytes = 2000, .flush_bytes = 1500};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    const unsigned total = 300;
    for (unsigned n = 0; n < total; n++) {
        event_n(&ev, id, sizeof(id), n);
        CHECK(spool_log_delivery(lg, &ev) == 0, "write %u", n);
        if (n == 2) {
            spool_log_stats_get(lg, &st);
            CHECK(st.flushes == 0 && st.pending_bytes > 0, "flushed before the threshold");
        }
    }
    /* no tick and no explicit flush so far: only the buffer threshold wrote anything */
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes > 3, "buffer threshold flushed %llu times", (unsigned long long)st.flushes);
    CHECK(st.segments_done >= 2, "size rotation finished %llu segments",
          (unsigned long long)st.segments_done);
    CHECK(st.records == total, "records %llu", (unsigned long long)st.records);
    CHECK(spool_log_close(lg) == 0, "close");

    list_segments(dir, &sl);
    CHECK(sl.n >= 3 && sl.active == 0, "%zu segments, %zu active", sl.n, sl.active);
    for (size_t s = 0; s + 1 < sl.n; s++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, sl.name[s]);
        CHECK(stat(path, &sb) == 0 && sb.st_size >= 2000, "%s finished at %lld bytes",
              sl.name[s], (long long)sb.st_size);
    }
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == total, "read back %u of %u records", next, total);
}

/* ---- case: flush timer and rotation by age, driven through tick ---- */

static void test_age_rotation(void)
{
    char dir[128], id[64];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "age");
    struct spool_log_opts o = {.flush_interval_ns = SEC, .max_segment_age_ns = 60 * SEC};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    event_n(&ev, id, sizeof(id), 0);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 + SEC / 2) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes == 0 && spool_log_active_path(lg) == NULL, "flushed before the interval");
    CHECK(spool_log_tick(lg, T0 + SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes == 1 && st.pending_bytes == 0, "not flushed at the interval");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 1 &&
          strcmp(sl.name[0], "20231114-221321.000000.jsonl.zst.active") == 0,
          "active segment %s", sl.n ? sl.name[0] : "(none)");

    event_n(&ev, id, sizeof(id), 1);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 + 30 * SEC) == 0, "tick");
    CHECK(spool_log_tick(lg, T0 + 60 * SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.segments_done == 0, "finished before its age");
    CHECK(spool_log_tick(lg, T0 + 61 * SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.segments_done == 1 && spool_log_active_path(lg) == NULL, "not finished by age");

    /* an idle writer makes no empty segments */
    CHECK(spool_log_tick(lg, T0 + 200 * SEC) == 0, "tick");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 0 &&
          strcmp(sl.name[0], "20231114-221321.000000.jsonl.zst") == 0, "after age: %s",
          sl.n ? sl.name[0] : "(none)");

    /* the clock steps back an hour: the next segment still sorts after the last one */
    event_n(&ev, id, sizeof(id), 2);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 - 3600 * SEC) == 0, "tick");
    CHECK(spool_log_flush(lg) == 0, "flush");
    CHECK(spool_log_sync(lg) == 0, "sync");
    list_segments(dir, &sl);
    CHECK(sl.n == 2 && strcmp(sl.name[1], "20231114-221321.000001.jsonl.zst.active") == 0,
          "after the clock step: %s", sl.n == 2 ? sl.name[1] : "(none)");
    CHECK(spool_log_close(lg) == 0, "close");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == 3 && segs == 2, "read back %u records in %zu segments", next, segs);
}

/* ---- case: write errors (EFBIG from RLIMIT_FSIZE) and recovery ---- */

static void set_fsize(rlim_t lim)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = lim;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        perror("setrlimit");
}

static void test_write_errors(void)
{
    char dir[128], id[64];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct stat sb;
    struct rlimit saved;
    case_dir(dir, sizeof(dir), "errors");
    getrlimit(RLIMIT_FSIZE, &saved);
    struct spool_log_opts o = {.flush_bytes = 128 * 1024, .max_pending_bytes = 256 * 1024};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    unsigned n = 0;
    for (; n < 10; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_bounce(lg, &ev);
    }
    CHECK(spool_log_flush(lg) == 0, "first flush");
    char path[256];
    snprintf(path, sizeof(path), "%s", spool_log_active_path(lg));
    CHECK(stat(path, &sb) == 0, "stat");
    off_t good = sb.st_size;

    for (; n < 100; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_bounce(lg, &ev);
    }
    /* room for a few bytes of the next frame: a partial write, then EFBIG */
    set_fsize((rlim_t)good + 10);
    int r = spool_log_flush(lg);
    int r2 = spool_log_tick(lg, T0 + 10 * SEC);
    set_fsize(saved.rlim_cur);
    CHECK(r == -EFBIG && r2 == -EFBIG, "flush under the limit = %d, tick = %d", r, r2);
    CHECK(stat(path, &sb) == 0 && sb.st_size == good, "partial frame left: %lld of %lld",
          (long long)sb.st_size, (long long)good);
    struct lines l;
    read_log(path, true, &l);
    CHECK(l.status == 0 && l.n == 10, "while failing: status %d, %zu records", l.status, l.n);
    lines_free(&l);

    /* while failing, records pile up in memory until the cap, then are refused */
    set_fsize((rlim_t)good);
    int refused = 0;
    for (; n < 5000 && !refused; n++) {
        event_n(&ev, id, sizeof(id), n);
        r = spool_log_bounce(lg, &ev);
        if (r == -ENOBUFS)
            refused = 1;
        else
            CHECK(r == 0, "write while failing = %d", r);
    }
    set_fsize(saved.rlim_cur);
    n--; /* the refused record is not in the log */
    spool_log_stats_get(lg, &st);
    CHECK(refused && st.dropped == 1, "no -ENOBUFS at the cap (dropped %llu)",
          (unsigned long long)st.dropped);
    CHECK(st.flush_errors >= 2, "flush errors %llu", (unsigned long long)st.flush_errors);

    /* the error cleared: the next tick writes everything kept */
    r = spool_log_tick(lg, T0 + 20 * SEC);
    CHECK(r == 0, "tick after the error cleared = %d", r);
    spool_log_stats_get(lg, &st);
    CHECK(st.pending_bytes == 0, "still %zu bytes pending", st.pending_bytes);
    event_n(&ev, id, sizeof(id), n++);
    CHECK(spool_log_bounce(lg, &ev) == 0, "write after recovery");
    CHECK(spool_log_close(lg) == 0, "close");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == n, "read back %u of %u records after the error", next, n);
}

/* ---- case: SIGKILL of a writer: every flushed record is in the active segment ---- */

static void child_writer(const char *dir, int wfd)
{
    struct spool_log *lg = NULL;
    struct spool_log_opts o = {.dir = dir, .flush_interval_ns = 3600 * SEC};
    char id[64];
    struct spool_log_event ev;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (spool_log_open(&o, T0, &lg) != 0)
        _exit(3);
    for (unsigned n = 0; n < 2000000; n++) {
        event_n(&ev, id, sizeof(id), n);
        if (spool_log_delivery(lg, &ev) != 0)
            _exit(4);
        /* every third record is flushed and reported; the others wait in memory */
        if (n % 3 == 2) {
            if (spool_log_flush(lg) != 0)
                _exit(5);
            uint32_t flushed = n + 1;
            if (write(wfd, &flushed, sizeof(flushed)) != sizeof(flushed))
                _exit(6);
        }
    }
    _exit(7);
}

static void test_kill(void)
{
    char dir[128], path[256];
    int p[2];
    case_dir(dir, sizeof(dir), "kill");
    if (pipe(p) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        child_writer(dir, p[1]);
    }
    close(p[1]);
    uint32_t acked = 0, v;
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    while (acked < 600 && poll(&pf, 1, 20000) > 0 && read(p[0], &v, sizeof(v)) == sizeof(v))
        acked = v;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child ended otherwise (status %d)", st);
    /* reports written before the kill that the loop did not read yet */
    while (read(p[0], &v, sizeof(v)) == sizeof(v))
        acked = v;
    close(p[0]);
    CHECK(acked >= 600, "child reported only %u flushed records", acked);

    struct seglist sl;
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 1, "%zu segments, %zu active after the kill", sl.n, sl.active);
    if (sl.n != 1)
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, sl.name[0]);
    struct lines l;
    read_log(path, false, &l);
    CHECK(l.n >= acked, "kill: %zu records readable, %u were flushed", l.n, acked);
    for (size_t i = 0; i < l.n && i < acked; i++)
        CHECK(id_num(l.rec[i]) == i, "kill: record %zu is %u", i, id_num(l.rec[i]));
    lines_free(&l);

    /* the next writer finishes the leftover segment */
    struct spool_log_opts o = {0};
    struct spool_log *lg = open_dir(dir, T0 + 5 * SEC, &o);
    CHECK(spool_log_close(lg) == 0, "close");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 0, "after recovery %zu segments, %zu active", sl.n,
          sl.active);
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next >= acked, "after recovery %u records, %u flushed", next, acked);
}

/* ---- case: a partial frame at the end (crash inside a write), leftovers at open ---- */

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

static void test_partial_frame(void)
{
    char dir[128], src[256], path[256], id[64];
    struct spool_log_event ev;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "partial");
    /* a segment of 20 records in two frames, made by the writer */
    struct spool_log_opts o = {0};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    for (unsigned n = 0; n < 20; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_delivery(lg, &ev);
        if (n == 9)
            spool_log_flush(lg);
    }
    CHECK(spool_log_close(lg) == 0, "close");
    list_segments(dir, &sl);
    if (sl.n != 1) {
        CHECK(0, "%zu segments", sl.n);
        return;
    }
    snprintf(src, sizeof(src), "%s/%s", dir, sl.name[0]);
    size_t len = 0;
    char *seg = slurp(src, &len);
    unlink(src);

    /* the same bytes as an active segment with half of one more frame after them */
    char more[4096], frame[8192];
    int ml = snprintf(more, sizeof(more), "{\"type\":\"Delivery\",\"id\":\"tail-%0400d\"}\n", 1);
    size_t fl = ZSTD_compress(frame, sizeof(frame), more, (size_t)ml, 1);
    CHECK(!ZSTD_isError(fl) && fl > 20, "zstd");
    seg = realloc(seg, len + fl);
    memcpy(seg + len, frame, fl / 2);
    snprintf(path, sizeof(path), "%s/20200101-000000.000000.jsonl.zst.active", dir);
    CHECK(write_file(path, seg, len + fl / 2) == 0, "write %s", path);
    /* and leftovers: an empty active segment, a garbage one, and a stranger's file */
    snprintf(src, sizeof(src), "%s/20200101-000001.000000.jsonl.zst.active", dir);
    write_file(src, "", 0);
    snprintf(src, sizeof(src), "%s/20200101-000002.000000.jsonl.zst.active", dir);
    write_file(src, "not zstd at all", 15);
    snprintf(src, sizeof(src), "%s/notes.txt", dir);
    write_file(src, "keep me", 7);

    /* what an operator sees: every whole frame, an error for the cut one */
    struct lines l;
    read_log(path, false, &l);
    CHECK(l.status != 0, "zstdcat accepted a cut frame");
    CHECK(l.n >= 20, "partial: %zu records before the cut frame", l.n);
    for (size_t i = 0; i < l.n && i < 20; i++)
        CHECK(id_num(l.rec[i]) == i, "partial: record %zu is %u", i, id_num(l.rec[i]));
    lines_free(&l);

    /* the next writer cuts the partial frame and finishes the segment; its clock is
     * behind the leftovers, yet its own segment sorts after them */
    lg = open_dir(dir, 1500000000ull * SEC, &o);
    event_n(&ev, id, sizeof(id), 20);
    spool_log_delivery(lg, &ev);
    CHECK(spool_log_close(lg) == 0, "close");
    struct stat sb;
    snprintf(path, sizeof(path), "%s/20200101-000000.000000.jsonl.zst", dir);
    CHECK(stat(path, &sb) == 0 && (size_t)sb.st_size == len, "recovered size %lld, want %zu",
          (long long)sb.st_size, len);
    snprintf(src, sizeof(src), "%s/20200101-000001.000000.jsonl.zst.active", dir);
    CHECK(access(src, F_OK) != 0, "empty leftover kept");
    snprintf(src, sizeof(src), "%s/20200101-000002.000000.jsonl.zst.active", dir);
    CHECK(access(src, F_OK) == 0, "garbage leftover removed");
    unlink(src);
    snprintf(src, sizeof(src), "%s/notes.txt", dir);
    CHECK(access(src, F_OK) == 0, "stranger's file removed");
    list_segments(dir, &sl);
    CHECK(sl.n == 2 && strcmp(sl.name[1], "20200101-000002.000001.jsonl.zst") == 0,
          "new segment %s", sl.n == 2 ? sl.name[1] : "(none)");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == 21, "after recovery %u records", next);
    free(seg);
}

int main(void)
{
    int rc = spool_log_test_start();

    if (rc != 0)
        return rc;
    test_size_rotation();
    test_age_rotation();
    test_write_errors();
    test_kill();
    test_partial_frame();
    spool_log_test_end();
    CHECK_EXIT();
}
