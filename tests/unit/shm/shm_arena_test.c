/*
 * shm_arena_test - body arena: allocation, hostile offsets, exhaustion, ownership, reclaim,
 * processes that die (also while holding the lock) and two processes racing.
 *
 * Every arena lives in a fresh shared mapping (shm_pages, 4 KiB pages) so that forked children
 * share it. Children end with _exit and are waited for by pid; alarm() bounds the whole run.
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "shm/shm_arena.h"
#include "shm/shm_pages.h"
#include "tests/lib/check.h"

/* test-only hook defined in shm_arena.c (kept out of the public header) */
void shm_arena_test_lock_and_die(struct shm_arena *a);

#define BLK ((uint64_t)SHM_ARENA_BLOCK)

struct fixture {
    struct shm_pages pages;
    struct shm_arena view;
    struct shm_arena *a; /* &view */
};

static bool fixture_init(struct fixture *f, uint64_t blocks)
{
    char *err = NULL;
    size_t bytes = shm_arena_bytes(blocks * BLK);

    if (shm_pages_alloc(bytes, SHM_HUGE_OFF, &f->pages, &err) < 0) {
        FAIL("shared memory for the arena: %s", err);
        free(err);
        return false;
    }
    int rc = shm_arena_init(f->pages.base, f->pages.size);
    int orc = shm_arena_open(&f->view, f->pages.base, f->pages.size);
    f->a = orc == 0 ? &f->view : NULL;
    CHECK(rc == 0 && orc == 0, "init rc %d open rc %d", rc, orc);
    if (!f->a) {
        shm_pages_unmap(&f->pages);
        return false;
    }
    struct shm_arena_stats st;
    shm_arena_stats(f->a, &st);
    CHECK(st.blocks_total == blocks, "blocks_total %llu, expected %llu", (unsigned long long)st.blocks_total,
          (unsigned long long)blocks);
    return true;
}

static void fixture_fini(struct fixture *f)
{
    shm_pages_unmap(&f->pages);
}

static void stats(struct shm_arena *a, struct shm_arena_stats *st)
{
    shm_arena_stats(a, st);
}

/* fill_count - allocate single blocks until -ENOSPC and free them again; returns how many fit */
static uint64_t fill_count(struct shm_arena *a, uint64_t limit)
{
    uint64_t *offs = calloc(limit + 1, sizeof(*offs));
    uint64_t n = 0;
    int rc = 0;

    while (n <= limit && (rc = shm_arena_alloc(a, 1, 99, 99, &offs[n])) == 0)
        n++;
    CHECK(rc == -ENOSPC, "fill ended with %d, not -ENOSPC", rc);
    for (uint64_t i = 0; i < n; i++)
        CHECK(shm_arena_free(a, offs[i]) == 0, "free of fill block %llu", (unsigned long long)i);
    free(offs);
    return n;
}

static void test_init_get(void)
{
    static _Alignas(64) char small[256];
    struct fixture f;

    CHECK(shm_arena_init(small, sizeof(small)) == -EINVAL, "256 bytes accepted");
    CHECK(shm_arena_init(small + 8, sizeof(small) - 8) == -EINVAL, "misaligned accepted");
    CHECK(shm_arena_init(NULL, 1 << 20) == -EINVAL, "NULL accepted");
    CHECK(shm_arena_bytes(0) > 0, "bytes(0) is 0");
    CHECK(shm_arena_bytes(UINT64_MAX) == 0, "bytes(UINT64_MAX) did not report overflow");
    CHECK(shm_arena_bytes(BLK + 1) > 2 * BLK, "bytes(BLK+1) too small");
    if (!fixture_init(&f, 8))
        return;
    char *m = f.pages.base;
    struct shm_arena view;
    CHECK(shm_arena_open(&view, m, 64) == -EPROTO, "open with a too small region");
    CHECK(shm_arena_open(&view, m + 8, f.pages.size - 8) == -EPROTO, "open misaligned");
    CHECK(shm_arena_open(&view, m, f.pages.size - BLK) == -EPROTO,
          "open with a region smaller than the layout");
    /* geometry fields are validated, not trusted: flip each of the first words in turn */
    for (size_t w = 0; w < 7; w++) {
        uint64_t *word = (uint64_t *)m + w;
        uint64_t saved = *word;
        *word ^= 0x10000;
        CHECK(shm_arena_open(&view, m, f.pages.size) == -EPROTO, "corrupt header word %zu accepted", w);
        *word = saved;
    }
    CHECK(shm_arena_open(&view, m, f.pages.size) == 0 && view.hdr == f.a->hdr &&
              view.n_blocks == f.a->n_blocks,
          "restored header rejected");
    /* a region with slack gets extra blocks, never fewer than asked */
    fixture_fini(&f);
    char *buf = aligned_alloc(4096, shm_arena_bytes(3 * BLK) + 2 * BLK);
    CHECK(shm_arena_init(buf, shm_arena_bytes(3 * BLK) + 2 * BLK) == 0, "init with slack");
    struct shm_arena_stats st;
    CHECK(shm_arena_open(&view, buf, shm_arena_bytes(3 * BLK) + 2 * BLK) == 0, "open with slack");
    stats(&view, &st);
    CHECK(st.blocks_total == 5, "slack gave %llu blocks", (unsigned long long)st.blocks_total);
    free(buf);
}

static void test_alloc_free_reuse(void)
{
    static const struct {
        size_t len;
        uint64_t blocks;
    } cases[] = {{1, 1}, {BLK - 1, 1}, {BLK, 1}, {BLK + 1, 2}, {3 * BLK, 3}, {5 * BLK - 7, 5}};
    enum { N = 16 };
    struct fixture f;
    struct shm_arena_stats st;
    uint64_t offs[6], used = 0;

    if (!fixture_init(&f, N))
        return;
    for (size_t i = 0; i < 6; i++) {
        int rc = shm_arena_alloc(f.a, cases[i].len, 1, 1, &offs[i]);
        CHECK(rc == 0, "alloc %zu: %d", cases[i].len, rc);
        if (rc != 0)
            continue;
        used += cases[i].blocks;
        stats(f.a, &st);
        CHECK(st.blocks_used == used, "len %zu: used %llu, expected %llu", cases[i].len,
              (unsigned long long)st.blocks_used, (unsigned long long)used);
        char *p = shm_arena_ptr(f.a, offs[i], cases[i].len);
        CHECK(p != NULL, "ptr of fresh run %zu", i);
        if (p)
            memset(p, (int)i + 1, cases[i].len);
    }
    CHECK(offs[0] != 0, "offset 0 handed out");
    /* runs do not overlap: each still holds its own byte */
    for (size_t i = 0; i < 6; i++) {
        unsigned char *p = shm_arena_ptr(f.a, offs[i], cases[i].len);
        CHECK(p && p[0] == i + 1 && p[cases[i].len - 1] == i + 1, "run %zu overwritten", i);
    }
    stats(f.a, &st);
    CHECK(st.runs == 6, "runs %llu", (unsigned long long)st.runs);
    for (size_t i = 0; i < 6; i++)
        CHECK(shm_arena_free(f.a, offs[i]) == 0, "free %zu", i);
    CHECK(shm_arena_free(f.a, offs[2]) == -EINVAL, "double free accepted");
    CHECK(shm_arena_ptr(f.a, offs[2], 1) == NULL, "ptr into a freed run");
    stats(f.a, &st);
    CHECK(st.blocks_used == 0 && st.runs == 0, "after free: used %llu runs %llu",
          (unsigned long long)st.blocks_used, (unsigned long long)st.runs);
    /* the freed space coalesces: the whole arena is one run again, twice in a row */
    for (int round = 0; round < 2; round++) {
        uint64_t off;
        CHECK(shm_arena_alloc(f.a, N * BLK, 1, 1, &off) == 0, "whole-arena alloc, round %d", round);
        CHECK(shm_arena_ptr(f.a, off, N * BLK) != NULL, "ptr of whole arena");
        CHECK(shm_arena_free(f.a, off) == 0, "free whole arena");
    }
    fixture_fini(&f);
}

static void test_hostile_offsets(void)
{
    enum { N = 8 };
    struct fixture f;
    uint64_t a0, a1, end;

    if (!fixture_init(&f, N))
        return;
    CHECK(shm_arena_alloc(f.a, 1, 1, 1, &a0) == 0, "alloc a0");
    CHECK(shm_arena_alloc(f.a, 3 * BLK, 1, 1, &a1) == 0, "alloc a1");
    end = a0 + N * BLK; /* a0 is the first block: the data region ends here */
    const struct {
        uint64_t off, len;
        bool ok;
        const char *what;
    } cases[] = {
        {a0, 1, true, "start, 1 byte"},
        {a0, BLK, true, "whole 1-block run"},
        {a0, BLK + 1, false, "1 byte past the run into the next"},
        {a0, 0, true, "zero length at start"},
        {a0 + 100, BLK - 100, true, "interior to end"},
        {a0 + 100, BLK - 99, false, "interior past end"},
        {a1, 3 * BLK, true, "3-block run whole"},
        {a1 + 2 * BLK + 5, BLK - 5, true, "last block interior to end"},
        {a1 + 2 * BLK + 5, BLK - 4, false, "last block interior past end"},
        {a1 + BLK, 2 * BLK, true, "from the second block"},
        {a1, 3 * BLK + 1, false, "run plus one"},
        {a1, UINT64_MAX, false, "UINT64_MAX length"},
        {a1 + 1, UINT64_MAX - 1, false, "wrapping length"},
        {a1 + 3 * BLK, 1, false, "first free block after the run"},
        {0, 1, false, "offset 0"},
        {a0 - 1, 1, false, "one before the data"},
        {a0 - 64, 1, false, "metadata"},
        {end - 1, 1, false, "last byte of the data (free)"},
        {end, 1, false, "end of the data"},
        {end + BLK, 1, false, "beyond the data"},
        {UINT64_MAX, 1, false, "UINT64_MAX offset"},
        {UINT64_MAX - BLK + 1, BLK, false, "near UINT64_MAX"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = shm_arena_ptr(f.a, cases[i].off, cases[i].len);
        CHECK((p != NULL) == cases[i].ok, "ptr case '%s' gave %p", cases[i].what, (void *)p);
        if (p)
            CHECK(p == (char *)f.pages.base + cases[i].off, "ptr case '%s' wrong address", cases[i].what);
    }
    const uint64_t bad_starts[] = {0,       1,   a0 + 1,    a1 + BLK, a1 + 2 * BLK, a1 + 3 * BLK,
                                   a0 - 64, end, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad_starts) / sizeof(bad_starts[0]); i++) {
        CHECK(shm_arena_free(f.a, bad_starts[i]) == -EINVAL, "free of bad start #%zu accepted", i);
        CHECK(shm_arena_give(f.a, bad_starts[i], 2, 2) == -EINVAL, "give of bad start #%zu accepted", i);
    }
    struct shm_arena_stats st;
    stats(f.a, &st);
    CHECK(st.runs == 2 && st.blocks_used == 4, "hostile calls changed state: runs %llu used %llu",
          (unsigned long long)st.runs, (unsigned long long)st.blocks_used);
    fixture_fini(&f);
}

static void test_exhaustion(void)
{
    enum { N = 32 };
    struct fixture f;
    struct shm_arena_stats st;
    uint64_t offs[N + 1], off;
    int rc = 0, n = 0;

    if (!fixture_init(&f, N))
        return;
    CHECK(shm_arena_alloc(f.a, 0, 1, 1, &off) == -EINVAL, "len 0 accepted");
    CHECK(shm_arena_alloc(f.a, N * BLK + 1, 1, 1, &off) == -EFBIG, "len beyond the arena not -EFBIG");
    CHECK(shm_arena_alloc(f.a, SIZE_MAX, 1, 1, &off) == -EFBIG, "SIZE_MAX not -EFBIG");
    while (n <= N && (rc = shm_arena_alloc(f.a, BLK, 1, 1, &offs[n])) == 0)
        n++;
    CHECK(n == N && rc == -ENOSPC, "filled %d blocks of %d, last rc %d", n, N, rc);
    stats(f.a, &st);
    CHECK(st.alloc_failures == 1, "alloc_failures %llu", (unsigned long long)st.alloc_failures);
    CHECK(shm_arena_alloc(f.a, 1, 1, 1, &off) == -ENOSPC, "full arena gave a block");
    /* free every other block: plenty of space, none of it two blocks long */
    for (int i = 0; i < n; i += 2)
        CHECK(shm_arena_free(f.a, offs[i]) == 0, "free %d", i);
    CHECK(shm_arena_alloc(f.a, 2 * BLK, 1, 1, &off) == -ENOSPC, "2-block run found in a fragmented arena");
    CHECK(shm_arena_alloc(f.a, BLK, 1, 1, &off) == 0, "1 block not found after frees");
    CHECK(shm_arena_free(f.a, off) == 0, "free");
    for (int i = 1; i < n; i += 2)
        CHECK(shm_arena_free(f.a, offs[i]) == 0, "free %d", i);
    CHECK(shm_arena_alloc(f.a, N * BLK, 1, 1, &off) == 0, "arena did not recover after frees");
    CHECK(shm_arena_free(f.a, off) == 0, "free whole");
    stats(f.a, &st);
    CHECK(st.alloc_failures == 3, "alloc_failures %llu", (unsigned long long)st.alloc_failures);
    fixture_fini(&f);
}

/*
 * ROLE-01: a hostile process that maps the segment rewrites the arena header after every process
 * opened it: a block count 4096 times larger, the data offset and the total moved. Every handle
 * keeps the geometry it checked at open, so offsets are bounded by the real region. The arena ends
 * where 64 PROT_NONE pages start: a table entry, bitmap word or body read past the region is a
 * crash here (and an ASan report in the sanitizer build), not a silent read of a neighbour.
 */
static void test_hostile_header(void)
{
    enum { N = 8, GUARD = 64 * 4096 };
    const size_t bytes = shm_arena_bytes(N * BLK), span = (bytes + 4095) / 4096 * 4096;
    char *map = mmap(NULL, span + GUARD, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct shm_arena view;
    uint64_t a0, off;

    CHECK(map != MAP_FAILED, "mmap: %s", strerror(errno));
    if (map == MAP_FAILED)
        return;
    CHECK(mprotect(map + span, GUARD, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
    CHECK(shm_arena_init(map, span) == 0 && shm_arena_open(&view, map, span) == 0, "init/open");
    CHECK(shm_arena_alloc(&view, 1, 1, 1, &a0) == 0, "alloc a0");
    uint64_t end = view.off_data + N * BLK;

    /* header words (shm_arena.c): 2 n_blocks, 5 off_data, 6 total */
    uint64_t *word = (uint64_t *)(void *)map;
    word[2] *= 4096;
    word[5] = 64;
    word[6] = UINT64_MAX;
    /* 9000 blocks in: its table entry lies in the guard pages when the live n_blocks is believed */
    CHECK(shm_arena_ptr(&view, view.off_data + 9000 * BLK, 1) == NULL, "ptr beyond the real blocks");
    CHECK(shm_arena_ptr(&view, end, 1) == NULL, "ptr at the end of the real data");
    CHECK(shm_arena_ptr(&view, a0, BLK) == map + a0, "ptr of a live run after the header was rewritten");
    /* allocation fills the real blocks and no more */
    uint64_t got = 0;
    int rc;
    while ((rc = shm_arena_alloc(&view, 1, 2, 1, &off)) == 0) {
        CHECK(off >= view.off_data && off < end && (off - view.off_data) % BLK == 0, "alloc gave offset %llu",
              (unsigned long long)off);
        got++;
        if (got > N)
            break;
    }
    CHECK(rc == -ENOSPC && got == N - 1, "alloc after the rewrite: rc %d, %llu blocks", rc,
          (unsigned long long)got);
    CHECK(shm_arena_alloc(&view, 2 * N * BLK, 2, 1, &off) == -EFBIG, "a run larger than the real arena");
    CHECK(shm_arena_reclaim(&view, 2, 1) == N - 1, "reclaim of the filled blocks");
    CHECK(shm_arena_free(&view, a0) == 0, "free a0");
    CHECK(shm_arena_free(&view, view.off_data + 9000 * BLK) == -EINVAL, "free beyond the real blocks");
    struct shm_arena_stats st;
    shm_arena_stats(&view, &st);
    CHECK(st.blocks_total == N, "blocks_total %llu", (unsigned long long)st.blocks_total);
    /* a process that opens the arena now finds the header invalid */
    CHECK(shm_arena_open(&(struct shm_arena){0}, map, span) == -EPROTO, "rewritten header accepted at open");
    munmap(map, span + GUARD);
}

static void test_give_reclaim(void)
{
    enum { N = 64 };
    static const struct {
        uint16_t owner;
        uint32_t gen;
    } runs[] = {{1, 1}, {1, 2}, {2, 1}, {1, 1}, {3, 1},
                {1, 1}, {2, 1}, {1, 2}, {0, 0}, {0xffff, 0xffffffffu}};
    enum { R = sizeof(runs) / sizeof(runs[0]) };
    struct fixture f;
    struct shm_arena_stats st;
    uint64_t offs[R];
    bool live[R];

    if (!fixture_init(&f, N))
        return;
    for (size_t i = 0; i < R; i++) {
        CHECK(shm_arena_alloc(f.a, (i % 3 + 1) * BLK, runs[i].owner, runs[i].gen, &offs[i]) == 0, "alloc %zu",
              i);
        live[i] = true;
    }
    CHECK(shm_arena_reclaim(f.a, 1, 3) == 0, "reclaim of an unused generation freed runs");
    CHECK(shm_arena_reclaim(f.a, 4, 1) == 0, "reclaim of an unused owner freed runs");

    /* give: run 0 moves from (1,1) to the spool (0, 7); reclaiming (1,1) must leave it */
    CHECK(shm_arena_give(f.a, offs[0], 0, 7) == 0, "give");
    size_t freed = shm_arena_reclaim(f.a, 1, 1);
    CHECK(freed == 2, "reclaim (1,1) freed %zu, expected 2", freed);
    live[3] = live[5] = false;
    for (size_t i = 0; i < R; i++)
        CHECK((shm_arena_ptr(f.a, offs[i], 1) != NULL) == live[i], "run %zu (owner %u gen %u) live=%d wrong",
              i, runs[i].owner, runs[i].gen, live[i]);
    CHECK(shm_arena_reclaim(f.a, 0, 7) == 1, "reclaim of the new owner did not free the given run");
    live[0] = false;
    CHECK(shm_arena_reclaim(f.a, 0xffff, 0xffffffffu) == 1, "reclaim with max owner/gen");
    live[9] = false;
    CHECK(shm_arena_reclaim(f.a, 2, 1) == 2, "reclaim (2,1)");
    live[2] = live[6] = false;
    for (size_t i = 0; i < R; i++)
        CHECK((shm_arena_ptr(f.a, offs[i], 1) != NULL) == live[i], "after reclaims: run %zu live=%d wrong", i,
              live[i]);
    uint64_t want_used = 0, want_runs = 0;
    for (size_t i = 0; i < R; i++)
        if (live[i]) {
            want_used += i % 3 + 1;
            want_runs++;
        }
    stats(f.a, &st);
    CHECK(st.blocks_used == want_used && st.runs == want_runs, "used %llu runs %llu, expected %llu %llu",
          (unsigned long long)st.blocks_used, (unsigned long long)st.runs, (unsigned long long)want_used,
          (unsigned long long)want_runs);
    CHECK(fill_count(f.a, N) == N - want_used, "free map disagrees with the table after reclaim");
    fixture_fini(&f);
}

static int wait_child(pid_t pid)
{
    int status = 0;

    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* a child allocates as owner 7 gen 3, reports, then is killed: the parent reclaims its runs */
static void test_dead_owner(void)
{
    enum { N = 32, K = 5 };
    struct fixture f;
    struct shm_arena_stats st;
    uint64_t mine;
    int pfd[2];

    if (!fixture_init(&f, N) || pipe(pfd) < 0)
        return;
    CHECK(shm_arena_alloc(f.a, BLK, 1, 1, &mine) == 0, "parent alloc");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t off;
        char ok = 'y';
        for (int i = 0; i < K; i++)
            if (shm_arena_alloc(f.a, (size_t)(i + 1) * 1000, 7, 3, &off) != 0)
                ok = 'n';
        if (write(pfd[1], &ok, 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    char c = 0;
    CHECK(read(pfd[0], &c, 1) == 1 && c == 'y', "child could not allocate");
    kill(pid, SIGKILL);
    int status = wait_child(pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    stats(f.a, &st);
    CHECK(st.runs == K + 1, "runs %llu before reclaim", (unsigned long long)st.runs);
    CHECK(shm_arena_reclaim(f.a, 7, 3) == K, "reclaim of the dead child's runs");
    stats(f.a, &st);
    CHECK(st.runs == 1 && st.blocks_used == 1, "after reclaim: runs %llu used %llu",
          (unsigned long long)st.runs, (unsigned long long)st.blocks_used);
    CHECK(shm_arena_ptr(f.a, mine, BLK) != NULL, "parent's run lost");
    close(pfd[0]);
    close(pfd[1]);
    fixture_fini(&f);
}

/* a child dies holding the lock in the middle of an update: the next locker repairs */
static void test_die_holding_lock(void)
{
    enum { N = 40 };
    struct fixture f;
    struct shm_arena_stats st;
    uint64_t offs[4], extra;
    static const size_t lens[4] = {1, 2 * BLK, 5 * BLK, 3};
    uint64_t used = 1 + 2 + 5 + 1;

    if (!fixture_init(&f, N))
        return;
    for (int i = 0; i < 4; i++)
        CHECK(shm_arena_alloc(f.a, lens[i], 1, 1, &offs[i]) == 0, "alloc %d", i);
    CHECK(shm_arena_free(f.a, offs[1]) == 0, "free hole"); /* leaves a 2-block hole before a 5-block run */
    used -= 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        shm_arena_test_lock_and_die(f.a);
        _exit(3);
    }
    int status = wait_child(pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    /* alarm() in main turns a wedged lock into a failure rather than a hang */
    int rc = shm_arena_alloc(f.a, BLK, 1, 1, &extra);
    CHECK(rc == 0, "alloc after the holder died: %d", rc);
    used += 1;
    stats(f.a, &st);
    CHECK(st.blocks_used == used && st.runs == 4, "after repair: used %llu runs %llu, expected %llu 4",
          (unsigned long long)st.blocks_used, (unsigned long long)st.runs, (unsigned long long)used);
    uint64_t fit = fill_count(f.a, N);
    CHECK(fit == N - used, "free map recount %llu, expected %llu", (unsigned long long)fit,
          (unsigned long long)(N - used));
    for (int i = 0; i < 4; i++)
        if (i != 1)
            CHECK(shm_arena_ptr(f.a, offs[i], lens[i]) != NULL, "run %d lost in the repair", i);
    CHECK(shm_arena_free(f.a, extra) == 0, "free extra");
    for (int i = 0; i < 4; i++)
        if (i != 1)
            CHECK(shm_arena_free(f.a, offs[i]) == 0, "free %d", i);
    CHECK(shm_arena_alloc(f.a, N * BLK, 1, 1, &extra) == 0, "whole arena after repair");
    fixture_fini(&f);
}

/* race - one of two processes: random allocs and frees; each run carries the pid, checked at free */
static int race(struct shm_arena *a, uint16_t owner, uint64_t dur_ns)
{
    enum { LIVE = 12 };
    struct {
        uint64_t off, len;
    } live[LIVE];
    int nlive = 0, bad = 0;
    unsigned seed = (unsigned)getpid();
    uint32_t pid = (uint32_t)getpid();
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t end = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + dur_ns;
    for (uint64_t iter = 0;; iter++) {
        if ((iter & 63) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            if ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec >= end)
                break;
        }
        bool do_alloc = nlive == 0 || (nlive < LIVE && rand_r(&seed) % 2);
        if (do_alloc) {
            uint64_t len = (uint64_t)(rand_r(&seed) % (int)(4 * BLK)) + 1, off;
            int rc = shm_arena_alloc(a, len, owner, 1, &off);
            if (rc == -ENOSPC)
                continue;
            if (rc != 0)
                return 10;
            uint32_t *p = shm_arena_ptr(a, off, len);
            if (!p)
                return 11;
            for (uint64_t i = 0; i < len / 4; i++)
                p[i] = pid;
            live[nlive].off = off;
            live[nlive].len = len;
            nlive++;
        } else {
            int k = rand_r(&seed) % nlive;
            uint32_t *p = shm_arena_ptr(a, live[k].off, live[k].len);
            if (!p)
                return 12;
            for (uint64_t i = 0; i < live[k].len / 4; i++)
                if (p[i] != pid) {
                    bad++;
                    break;
                }
            if (shm_arena_free(a, live[k].off) != 0)
                return 13;
            live[k] = live[--nlive];
        }
    }
    while (nlive > 0)
        if (shm_arena_free(a, live[--nlive].off) != 0)
            return 13;
    return bad ? 14 : 0;
}

static void test_two_processes(void)
{
    enum { N = 48 };
    struct fixture f;
    struct shm_arena_stats st;
    pid_t pids[2];

    if (!fixture_init(&f, N))
        return;
    fflush(stdout);
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(race(f.a, (uint16_t)(10 + i), 2000000000u));
    }
    for (int i = 0; i < 2; i++) {
        int status = wait_child(pids[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "racer %d: status %d (exit 14 = a run was handed out twice)", i, status);
    }
    stats(f.a, &st);
    CHECK(st.blocks_used == 0 && st.runs == 0, "after the race: used %llu runs %llu",
          (unsigned long long)st.blocks_used, (unsigned long long)st.runs);
    printf("info: race: %llu allocations failed for space\n", (unsigned long long)st.alloc_failures);
    CHECK(fill_count(f.a, N) == N, "free map wrong after the race");
    fixture_fini(&f);
}

int main(void)
{
    log_init("shm_arena_test", -1);
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(50);

    test_init_get();
    test_alloc_free_reuse();
    test_hostile_offsets();
    test_hostile_header();
    test_exhaustion();
    test_give_reclaim();
    test_dead_owner();
    test_die_holding_lock();
    test_two_processes();

    CHECK_EXIT();
}
