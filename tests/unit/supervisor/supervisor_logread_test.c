/*
 * supervisor_logread_test - the message log reader of `ringctl tail-log`: segments written here as the
 * spool writes them (each flush one complete zstd frame of JSON lines), then read back: the last N over
 * several segments, filters, a partial trailing frame, a corrupt frame, lines that are not JSON, an
 * over-long line, rotation while following, names that are not segments.
 */
#include "supervisor/supervisor_logread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/mem.h"
#include "tests/lib/check.h"

static char dir[256];
static int dirfd_;

static char *rec(const char *type, const char *rcpt, const char *queue, int n)
{
    return xasprintf("{\"type\":\"%s\",\"recipient\":\"%s\",\"queue\":\"%s\",\"n\":%d}\n", type, rcpt, queue, n);
}

/* frame - text compressed as one zstd frame */
static void *frame(const char *text, size_t *len)
{
    size_t cap = ZSTD_compressBound(strlen(text));
    void *out = xmalloc(cap);
    *len = ZSTD_compress(out, cap, text, strlen(text), 3);
    if (ZSTD_isError(*len))
        abort();
    return out;
}

static void append_bytes(const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n)
        abort();
    close(fd);
}

static void append_frame(const char *name, const char *text)
{
    size_t n;
    void *f = frame(text, &n);
    append_bytes(name, f, n);
    free(f);
}

/* lines - the "n" of each output line, as "1,2,3" */
static void numbers(const struct buf *out, char *dst, size_t cap)
{
    size_t k = 0;
    dst[0] = '\0';
    if (!out->len)
        return;
    const char *p = (const char *)out->data, *end = p + out->len;
    while (p && p < end) {
        /* out is not NUL-terminated: search within it only (memmem) */
        const char *n = memmem(p, (size_t)(end - p), "\"n\":", 4);
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (n && (!nl || n < nl)) {
            int v = 0; /* not atoi: the digits are not followed by a NUL */
            for (const char *d = n + 4; d < end && *d >= '0' && *d <= '9'; d++)
                v = v * 10 + (*d - '0');
            k += (size_t)snprintf(dst + k, cap - k, "%s%d", k ? "," : "", v);
        }
        p = nl ? nl + 1 : NULL;
    }
}

static void reset_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/*", dir);
    if (system(cmd) != 0)
        abort();
}

static const struct logread_filter ANY = {0};

static void test_names(void)
{
    static const struct {
        const char *name;
        bool ok, active;
    } cases[] = {
        {"20250314-093012.004211.jsonl.zst", true, false},
        {"20250314-093012.004211.jsonl.zst.active", true, true},
        {"20250314-093012.004211.jsonl", false, false},
        {"20250314-093012.00421.jsonl.zst", false, false},
        {"2025031a-093012.004211.jsonl.zst", false, false},
        {"20250314-093012.004211.jsonl.zst.activeX", false, false},
        {"../20250314-093012.004211.jsonl.zst", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool active = false;
        bool ok = logread_name_ok(cases[i].name, &active);
        CHECK(ok == cases[i].ok && (!ok || active == cases[i].active), "name %s", cases[i].name);
    }
}

static void test_multi_segment_and_filters(void)
{
    reset_dir();
    struct buf t = {0};
    char *r;
    /* segment A: 1..5 in two frames; segment B (active): 6..8; an unrelated file */
    for (int i = 1; i <= 5; i++) {
        r = rec(i % 2 ? "Delivery" : "Bounce", i == 3 ? "u@Other.test" : "u@good.test", i == 4 ? "q1" : "q0", i);
        buf_puts(&t, r);
        free(r);
        if (i == 2) {
            append_frame("20250101-000000.000001.jsonl.zst", buf_cstr(&t));
            buf_reset(&t);
        }
    }
    append_frame("20250101-000000.000001.jsonl.zst", buf_cstr(&t));
    buf_reset(&t);
    for (int i = 6; i <= 8; i++) {
        r = rec("Delivery", "v@good.test", "q0", i);
        buf_puts(&t, r);
        free(r);
    }
    append_frame("20250101-000100.000001.jsonl.zst.active", buf_cstr(&t));
    append_frame("notes.txt", "{\"type\":\"Delivery\",\"n\":99}\n");
    buf_fini(&t);

    static const struct {
        struct logread_filter f;
        size_t limit;
        const char *want;
    } cases[] = {
        {{0}, 4, "5,6,7,8"},
        {{0}, 100, "1,2,3,4,5,6,7,8"},
        {{0}, 0, ""},
        {{.type = "bounce"}, 10, "2,4"},
        {{.type = "Delivery"}, 2, "7,8"},
        {{.domain = "other.TEST"}, 10, "3"},
        {{.domain = "good.test", .type = "Delivery"}, 10, "1,5,6,7,8"},
        {{.queue = "q1"}, 10, "4"},
        {{.queue = "Q1"}, 10, ""},
        {{.type = "Expiration"}, 10, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct logread_cur cur;
        struct buf out = {0}, notes = {0};
        char got[256];
        logread_cur_init(&cur);
        int rc = logread_tail(dirfd_, &cases[i].f, cases[i].limit, &cur, &out, &notes);
        numbers(&out, got, sizeof(got));
        CHECK(rc == 0 && strcmp(got, cases[i].want) == 0, "case %zu: got '%s' want '%s'", i, got, cases[i].want);
        CHECK(notes.len == 0, "case %zu: notes %s", i, buf_cstr(&notes));
        CHECK(cur.fd >= 0 && strcmp(cur.name, "20250101-000100.000001.jsonl.zst.active") == 0,
              "case %zu: the cursor is on the newest segment", i);
        logread_cur_close(&cur);
        buf_fini(&out);
        buf_fini(&notes);
    }
}

static void test_partial_frame_then_rest(void)
{
    reset_dir();
    const char *seg = "20250101-000000.000001.jsonl.zst.active";
    char *a = rec("Delivery", "a@x.test", "q", 1), *b = rec("Delivery", "b@x.test", "q", 2);
    append_frame(seg, a);
    size_t n;
    unsigned char *f = frame(b, &n);
    append_bytes(seg, f, n / 2); /* the writer is in the middle of its write */
    struct logread_cur cur;
    struct buf out = {0}, notes = {0};
    char got[64];
    logread_cur_init(&cur);
    CHECK(logread_tail(dirfd_, &ANY, 10, &cur, &out, &notes) == 0, "tail");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "1") == 0 && notes.len == 0, "partial frame: got '%s', notes %s", got, buf_cstr(&notes));
    buf_reset(&out);
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0 && out.len == 0, "nothing whole yet");
    append_bytes(seg, f + n / 2, n - n / 2);
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "2") == 0 && notes.len == 0, "the rest of the frame: got '%s', notes %s", got,
          buf_cstr(&notes));
    logread_cur_close(&cur);
    buf_fini(&out);
    buf_fini(&notes);
    free(f);
    free(a);
    free(b);
}

static void test_corrupt_frame_and_bad_lines(void)
{
    reset_dir();
    const char *seg = "20250101-000000.000001.jsonl.zst";
    char *a = rec("Delivery", "a@x.test", "q", 1), *b = rec("Delivery", "b@x.test", "q", 2);
    struct buf t = {0};
    buf_puts(&t, a);
    buf_puts(&t, "not json at all\n[1,2]\n\n");
    char *huge = xmalloc(LOGREAD_LINE_MAX + 10);
    memset(huge, 'x', LOGREAD_LINE_MAX + 8);
    huge[LOGREAD_LINE_MAX + 8] = '\0';
    buf_puts(&t, huge);
    buf_puts(&t, "\n");
    buf_puts(&t, b);
    append_frame(seg, buf_cstr(&t));
    /* a frame whose magic number is right and whose body is garbage, then a good frame: not read */
    static const unsigned char bad[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03};
    append_bytes(seg, bad, sizeof(bad));
    char *c = rec("Delivery", "c@x.test", "q", 3);
    append_frame(seg, c);
    struct logread_cur cur;
    struct buf out = {0}, notes = {0};
    char got[64];
    logread_cur_init(&cur);
    CHECK(logread_tail(dirfd_, &ANY, 10, &cur, &out, &notes) == 0, "tail");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "1,2") == 0, "records before the corrupt frame: got '%s'", got);
    const char *nt = buf_cstr(&notes);
    CHECK(strstr(nt, "corrupt zstd data") != NULL, "the corrupt frame is reported: %s", nt);
    CHECK(strstr(nt, "2 line(s) that are not JSON objects skipped") != NULL, "bad lines counted: %s", nt);
    CHECK(strstr(nt, "a line longer than") != NULL, "the long line reported: %s", nt);
    CHECK(cur.broken, "the cursor stops at the corrupt frame");
    logread_cur_close(&cur);

    /* a decompression bomb: 256 MiB of newlines in a frame of a few KiB is refused, not decoded */
    reset_dir();
    size_t bomb_n = 256u << 20;
    char *bomb = xmalloc(bomb_n + 1);
    memset(bomb, '\n', bomb_n);
    bomb[bomb_n] = '\0';
    append_frame("20250101-000000.000001.jsonl.zst", a);
    append_frame("20250101-000000.000001.jsonl.zst", bomb);
    free(bomb);
    buf_reset(&out);
    buf_reset(&notes);
    CHECK(logread_tail(dirfd_, &ANY, 10, &cur, &out, &notes) == 0, "bomb: tail");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "1") == 0, "bomb: the record before it: '%s'", got);
    CHECK(strstr(buf_cstr(&notes), "not a log") != NULL, "bomb: said: %s", buf_cstr(&notes));
    CHECK(cur.broken && cur.decoded < (64u << 20), "bomb: stopped early (%llu bytes decoded)",
          (unsigned long long)cur.decoded);
    logread_cur_close(&cur);

    /* a hard link to another file under a segment's name is not read (the supervisor has more rights) */
    reset_dir();
    append_frame("other-file", a);
    char from[512], to[512];
    snprintf(from, sizeof(from), "%s/other-file", dir);
    snprintf(to, sizeof(to), "%s/20250101-000000.000001.jsonl.zst", dir);
    if (link(from, to) != 0)
        abort();
    buf_reset(&out);
    buf_reset(&notes);
    CHECK(logread_tail(dirfd_, &ANY, 10, &cur, &out, &notes) == 0 && out.len == 0, "hard link: nothing read");
    CHECK(strstr(buf_cstr(&notes), "cannot open") != NULL, "hard link: said: %s", buf_cstr(&notes));
    logread_cur_close(&cur);
    buf_fini(&out);
    buf_fini(&notes);
    buf_fini(&t);
    free(huge);
    free(a);
    free(b);
    free(c);
}

static void test_rotation_while_following(void)
{
    reset_dir();
    const char *x = "20250101-000000.000001.jsonl.zst.active";
    char *r1 = rec("Delivery", "a@x.test", "q", 1), *r2 = rec("Delivery", "a@x.test", "q", 2);
    char *r3 = rec("Delivery", "a@x.test", "q", 3), *r4 = rec("Delivery", "a@x.test", "q", 4);
    append_frame(x, r1);
    struct logread_cur cur;
    struct buf out = {0}, notes = {0};
    char got[64];
    logread_cur_init(&cur);
    CHECK(logread_tail(dirfd_, &ANY, 0, &cur, &out, &notes) == 0 && out.len == 0, "limit 0: nothing");
    /* the writer flushes once more, finishes the segment (rename) and starts the next */
    append_frame(x, r2);
    char from[512], to[512];
    snprintf(from, sizeof(from), "%s/%s", dir, x);
    snprintf(to, sizeof(to), "%s/20250101-000000.000001.jsonl.zst", dir);
    if (rename(from, to) != 0)
        abort();
    append_frame("20250101-000001.000001.jsonl.zst.active", r3);
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "2,3") == 0, "across the rotation: got '%s'", got);
    CHECK(cur.name && strcmp(cur.name, "20250101-000001.000001.jsonl.zst.active") == 0, "on the new segment");
    buf_reset(&out);
    append_frame("20250101-000001.000001.jsonl.zst.active", r4);
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "4") == 0 && notes.len == 0, "then the new one: got '%s' notes %s", got, buf_cstr(&notes));
    logread_cur_close(&cur);

    /* following from an empty directory: the first segment that appears is read from its start */
    reset_dir();
    buf_reset(&out);
    logread_cur_init(&cur);
    CHECK(logread_tail(dirfd_, &ANY, 5, &cur, &out, &notes) == 0 && out.len == 0 && cur.fd < 0, "empty");
    append_frame("20250102-000000.000001.jsonl.zst.active", r1);
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    CHECK(logread_follow(dirfd_, &ANY, &cur, &out, &notes) == 0, "follow");
    numbers(&out, got, sizeof(got));
    CHECK(strcmp(got, "1") == 0, "the first segment: got '%s'", got);
    logread_cur_close(&cur);
    buf_fini(&out);
    buf_fini(&notes);
    free(r1);
    free(r2);
    free(r3);
    free(r4);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/logread-test-XXXXXX");
    if (!mkdtemp(dir))
        SKIP("mkdtemp: %s", strerror(errno));
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    test_names();
    test_multi_segment_and_filters();
    test_partial_frame_then_rest();
    test_corrupt_frame_and_bad_lines();
    test_rotation_while_following();
    close(dirfd_);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        FAIL("cleanup of %s", dir);
    CHECK_EXIT();
}
