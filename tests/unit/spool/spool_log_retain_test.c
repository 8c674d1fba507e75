/*
 * spool_log_retain_test - log retention: which segments go ([log] max_age, max_total_size)
 *
 * Table of directories (sizes, ages, the active one) with the expected choice; then a real directory
 * written by the real log writer with a rotation per segment, where spool_log_retain_run() removes the
 * oldest finished segments, stops at its per-call bound, and never touches the active segment nor a
 * file that is not a segment.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/check.h"
#include "spool/spool_log.h"
#include "spool/spool_log_retain.h"

#define NOW 1800000000000ll
#define MIN 60000ll

struct seg_case {
    const char *name;
    struct spool_log_retain_opts o;
    size_t n;
    struct {
        uint64_t bytes;
        int64_t age_ms;
        bool active;
    } segs[6];
    const char *expect; /* one letter per segment: k keep, a age, s size */
};

static const struct seg_case cases[] = {
    {"no limits keep everything", {0, 0}, 3, {{100, 90 * MIN, 0}, {100, 60 * MIN, 0}, {10, 0, 1}}, "kkk"},
    {"age: the two old ones", {30 * MIN, 0}, 4, {{1, 90 * MIN, 0}, {1, 45 * MIN, 0}, {1, 10 * MIN, 0}, {1, 0, 1}},
     "aakk"},
    {"age never takes the active one", {1, 0}, 2, {{1, 90 * MIN, 0}, {1, 90 * MIN, 1}}, "ak"},
    {"size: oldest first until at most the cap", {0, 250}, 4,
     {{100, 40 * MIN, 0}, {100, 30 * MIN, 0}, {100, 20 * MIN, 0}, {50, 0, 1}}, "skkk"},
    {"size: exactly at the cap stays", {0, 300}, 3, {{100, 3, 0}, {100, 2, 0}, {100, 1, 1}}, "kkk"},
    {"size: the active one alone passes the cap", {0, 10}, 3, {{5, 3, 0}, {5, 2, 0}, {500, 1, 1}}, "ssk"},
    {"age and size together", {60 * MIN, 150}, 4,
     {{100, 90 * MIN, 0}, {100, 30 * MIN, 0}, {100, 20 * MIN, 0}, {10, 0, 1}}, "askk"},
    {"empty directory", {1, 1}, 0, {{0, 0, 0}}, ""},
};

static void case_choose(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct seg_case *k = &cases[c];
        struct spool_log_seg segs[6];
        enum spool_log_retain_why why[6];
        char got[8] = "";
        size_t want = 0;
        for (size_t i = 0; i < k->n; i++) {
            segs[i] = (struct spool_log_seg){.name = (char *)"x", .bytes = k->segs[i].bytes,
                                             .mtime_ms = NOW - k->segs[i].age_ms, .active = k->segs[i].active};
            want += k->expect[i] != 'k';
        }
        size_t n = spool_log_retain_choose(segs, k->n, NOW, &k->o, why);
        for (size_t i = 0; i < k->n; i++)
            got[i] = why[i] == SPOOL_LOG_RETAIN_AGE ? 'a' : why[i] == SPOOL_LOG_RETAIN_SIZE ? 's' : 'k';
        CHECK(strcmp(got, k->expect) == 0, "%s: got %s, want %s", k->name, got, k->expect);
        CHECK(n == want, "%s: %zu chosen, want %zu", k->name, n, want);
    }
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static bool exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* a real directory: 6 finished segments and an active one from the log writer, plus a stranger */
static void case_run(void)
{
    char root[] = "/tmp/spool-log-retain-XXXXXX";
    if (!mkdtemp(root)) {
        FAIL("mkdtemp");
        return;
    }
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/logs", root);
    struct spool_log_opts lo = {.dir = dir};
    struct spool_log *lg = NULL;
    uint64_t now = (uint64_t)NOW * 1000000ull;
    CHECK(spool_log_open(&lo, now, &lg) == 0, "open");
    if (!lg)
        return;
    for (int i = 0; i < 7; i++) {
        struct spool_log_event ev = {.id = "m", .sender = "s@x.example", .recipient = "r@y.example",
                                     .response = {.code = 250}};
        CHECK(spool_log_reception(lg, &ev) == 0, "record %d", i);
        CHECK(spool_log_flush(lg) == 0, "flush %d", i);
        if (i < 6)
            CHECK(spool_log_rotate(lg) == 0, "rotate %d", i);
        now += 1000; /* names differ by their microseconds */
    }
    const char *active = spool_log_active_path(lg);
    CHECK(active != NULL, "an active segment");
    char stranger[400];
    snprintf(stranger, sizeof(stranger), "%s/README", dir);
    FILE *f = fopen(stranger, "w");
    if (f) {
        fputs("not a segment, far bigger than the cap .................................................\n", f);
        fclose(f);
    }
    struct spool_log_seg *segs;
    size_t n;
    CHECK(spool_log_retain_scan(dir, &segs, &n) == 0 && n == 7, "7 segments listed, got %zu", n);
    CHECK(n == 7 && segs[6].active && !segs[0].active, "sorted, the active one last");
    char *names[7] = {0};
    uint64_t seg_bytes = n ? segs[0].bytes : 0;
    for (size_t i = 0; i < n && i < 7; i++)
        names[i] = strdup(segs[i].name);
    spool_log_retain_segs_free(segs, n);

    /* a cap of three segments' bytes: four of the finished ones go, two per call */
    struct spool_log_retain_opts o = {.max_total_size = 3 * seg_bytes + seg_bytes / 2};
    size_t removed = 0, left = 0;
    int64_t wall = (int64_t)time(NULL) * 1000;
    CHECK(spool_log_retain_run(dir, wall, &o, 2, &removed, &left) == 0, "run 1");
    CHECK(removed == 2 && left == 2, "run 1: removed %zu left %zu", removed, left);
    CHECK(!exists(dir, names[0]) && !exists(dir, names[1]) && exists(dir, names[2]), "the two oldest went first");
    CHECK(spool_log_retain_run(dir, wall, &o, 2, &removed, &left) == 0, "run 2");
    CHECK(removed == 2 && left == 0, "run 2: removed %zu left %zu", removed, left);
    for (int i = 0; i < 7; i++)
        CHECK(exists(dir, names[i]) == (i >= 4), "segment %d %s", i, names[i]);
    CHECK(access(stranger, F_OK) == 0, "a file that is not a segment stays");
    /* max_age 1 ms (everything is older): every finished one goes, never the active one */
    o = (struct spool_log_retain_opts){.max_age_ms = 1};
    CHECK(spool_log_retain_run(dir, wall + 10000, &o, 100, &removed, &left) == 0 && removed == 2,
          "age: removed %zu", removed);
    CHECK(exists(dir, names[6]) && access(active, F_OK) == 0, "the active segment stays");
    CHECK(spool_log_close(lg) == 0, "close");
    for (int i = 0; i < 7; i++)
        free(names[i]);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    case_choose();
    case_run();
    CHECK_EXIT();
}
