/*
 * fuzz_logread - the message log reader (supervisor/supervisor_logread.h) on any segment content
 *
 * Input: 1 octet of options (the filter, the limit, whether the rest is a file's raw bytes or the text of
 * one zstd frame made here), then the bytes. The segment is written to a scratch directory and read with
 * logread_tail(), then once more with logread_follow(). Invariants: no crash or leak; the output is whole
 * lines, each a JSON object the filter keeps; at most `limit` of them; with the text as one frame, every
 * output line is one of the input's lines, in the input's order.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "supervisor/supervisor_logread.h"
#include "tests/fuzz/fuzz.h"

static char dir[64];
static int dirfd_ = -1;
static const char segment[] = "20250101-000000.000001.jsonl.zst.active";

/* cleanup - the scratch directory goes when the fuzzer exits (-max_total_time, -runs) */
static void cleanup(void)
{
    if (dirfd_ >= 0)
        unlinkat(dirfd_, segment, 0);
    rmdir(dir);
}

static const struct logread_filter filters[4] = {
    {0},
    {.type = "delivery"},
    {.domain = "x.test"},
    {.queue = "q", .type = "Bounce"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (dirfd_ < 0) {
        snprintf(dir, sizeof(dir), "/tmp/fuzz-logread-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
        atexit(cleanup);
    }
    uint8_t opt = data[0];
    const struct logread_filter *f = &filters[opt & 3];
    size_t limit = (opt >> 2) & 7;
    bool framed = opt & 0x80;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    void *comp = NULL;
    if (framed) {
        size_t cap = ZSTD_compressBound(n);
        comp = malloc(cap ? cap : 1);
        size_t c = ZSTD_compress(comp, cap, body, n, 1);
        CHECK(!ZSTD_isError(c));
        body = comp;
        n = c;
    }
    int fd = openat(dirfd_, segment, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, body, n) == (ssize_t)n);
    close(fd);

    struct logread_cur cur;
    struct buf out = {0}, notes = {0};
    logread_cur_init(&cur);
    CHECK(logread_tail(dirfd_, f, limit, &cur, &out, &notes) == 0);
    CHECK(logread_follow(dirfd_, f, &cur, &out, &notes) == 0);
    CHECK(out.len == 0 || out.data[out.len - 1] == '\n');
    size_t lines = 0;
    const char *p = out.len ? (const char *)out.data : "", *end = p + out.len;
    const char *in = (const char *)data + 1, *in_end = (const char *)data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl != NULL);
        bool valid;
        CHECK(logread_match(f, p, (size_t)(nl - p), &valid) && valid);
        if (framed) { /* the same line, later in the input than the previous one */
            size_t k = (size_t)(nl - p) + 1;
            const char *hit = memmem(in, (size_t)(in_end - in), p, k - 1);
            CHECK(hit != NULL);
            in = hit + (k - 1);
        }
        lines++;
        p = nl + 1;
    }
    CHECK(lines <= limit);
    logread_cur_close(&cur);
    buf_fini(&out);
    buf_fini(&notes);
    free(comp);
    return 0;
}
