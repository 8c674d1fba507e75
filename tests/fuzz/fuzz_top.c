/*
 * fuzz_top - `ringctl top`'s readers on any input: the queue-summary document (from the node), and the
 * /proc/PID/stat and /proc/PID/statm files (tools/ringctl_top.c); then the rates and the renderer on
 * what was read
 *
 * Input: 1 selector octet, then the data in an exact-size heap block (no terminator: a read past `len` is
 * an ASan report). Checks: a summary keeps at most RINGCTL_TOP_MAX_ROWS rows, each with a non-empty name of
 * printable ASCII, and a refused one says why; the renderer's lines are printable ASCII and at most the
 * width given, and at most the height given once it is 30 or more; a stat file's command name is printable
 * ASCII.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "tools/ringctl_top.h"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

struct lines {
    int n, width;
};

static void on_line(void *ctx, enum ringctl_top_line kind, const char *text)
{
    struct lines *l = ctx;
    (void)kind;
    CHECK(strlen(text) <= (size_t)l->width && printable(text));
    l->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t len = size - 1;
    char *in = malloc(len ? len : 1);
    memcpy(in, data + 1, len);

    if (sel % 3 == 0) {
        struct ringctl_top_frame prev = {.t_s = 1, .reachable = true}, f = {.t_s = 2, .reachable = true};
        char *err = NULL;
        /* the same document twice: the second sample's rates against the first */
        if (ringctl_top_summary_parse(in, len, &prev, &err) == 0) {
            CHECK(!err && prev.n_rows <= RINGCTL_TOP_MAX_ROWS && prev.n_rows <= prev.rows_total);
            for (size_t i = 0; i < prev.n_rows; i++)
                CHECK(prev.rows[i].name[0] && printable(prev.rows[i].name) && printable(prev.rows[i].last_response));
            CHECK(ringctl_top_summary_parse(in, len, &f, &err) == 0);
            ringctl_top_rates(&f, &prev, 100);
            struct ringctl_top_view v = {.by = "provider", .interval_s = 1, .sort = (enum ringctl_top_sort)(sel / 3 % 5)};
            if (sel & 0x80)
                snprintf(v.filter, sizeof(v.filter), "a");
            int width = 40 + sel % 150, height = (sel & 0x40) ? 30 + sel % 40 : 0;
            struct lines l = {.width = width};
            ringctl_top_render(&f, &v, width, height, on_line, &l);
            CHECK(height == 0 || l.n <= height);
        } else {
            CHECK(err != NULL && prev.n_rows == 0);
        }
        free(err);
        ringctl_top_frame_fini(&prev);
        ringctl_top_frame_fini(&f);
    } else if (sel % 3 == 1) {
        char comm[32];
        uint64_t ticks = 0;
        if (ringctl_top_proc_stat(in, len, comm, sizeof(comm), &ticks) == 0)
            CHECK(printable(comm) && strlen(comm) < sizeof(comm));
    } else {
        uint64_t pages = 0;
        (void)ringctl_top_proc_statm(in, len, &pages);
    }
    free(in);
    return 0;
}
