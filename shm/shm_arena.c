/*
 * shm_arena - message body arena in shared memory, with owner and generation per block
 *
 * Layout (offsets from the arena start):
 *   header (geometry, robust mutex, counters) | block table | free bitmap | pad to 4 KiB | data
 * Offsets handed out are from the arena start, so offset 0 (an all-zero record) is never a body.
 *
 * The block table is the truth; the bitmap (1 = used), the next-fit hint and the counters are
 * derived from it and may be rebuilt at any time (arena_repair). Each table entry is two 64-bit
 * words, each written with one atomic store:
 *   span = run_start << 32 | run_len      tag = gen << 32 | owner << 16 | state
 * A run's start entry has state USED and its own index as run_start; the other blocks of the run
 * are INNER and point back to the start. Writers order their stores so that the start entry's
 * tag is the commit point: alloc writes the inner entries first and the start tag last; free
 * clears the start tag first. A process killed between any two stores therefore leaves either a
 * whole run or debris that arena_repair() recognises and frees.
 *
 * Allocation, free, give and reclaim hold the robust mutex. shm_arena_ptr() does not: it only
 * reads, every index it derives is bounded by the block count, so a racing writer can make it
 * answer NULL but never point outside the data region.
 *
 * The geometry (block count, offsets of table, bitmap and data) is read from shared memory once,
 * at shm_arena_open(), checked against the region's size and kept in the caller's struct
 * shm_arena. Any process mapping the segment can rewrite the header afterwards; nothing here reads
 * it again, so a rewritten n_blocks or off_data cannot move an index or a pointer out of the
 * region. The counters and the hint in the header stay shared and are used only when bounded.
 */
#include "shm/shm_arena.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#define ARENA_MAGIC 0x4152454e41524d31ull /* "ARENARM1" */
#define ARENA_VERSION 1
#define ARENA_MAX_BLOCKS ((uint64_t)UINT32_MAX - 1)
#define ARENA_DATA_ALIGN 4096u

enum arena_state {
    ARENA_FREE = 0,
    ARENA_USED = 1,  /* start of a run: owner, gen and length are meaningful */
    ARENA_INNER = 2, /* non-first block of a run */
};

struct arena_blk {
    uint64_t span;
    uint64_t tag;
};

struct shm_arena_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t block_size;
    uint64_t n_blocks;
    uint64_t off_table;
    uint64_t off_bitmap;
    uint64_t off_data;
    uint64_t total;
    _Alignas(64) pthread_mutex_t lock;
    /* derived state, under the lock */
    uint64_t hint;
    uint64_t blocks_used;
    uint64_t runs;
    uint64_t alloc_failures;
    uint64_t repairs;
};

struct arena_layout {
    uint64_t off_table, off_bitmap, off_data, total;
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static inline uint64_t tag_make(uint16_t owner, uint32_t gen, unsigned state)
{
    return (uint64_t)gen << 32 | (uint64_t)owner << 16 | (state & 0xffu);
}
static inline unsigned tag_state(uint64_t t)
{
    return (unsigned)(t & 0xffu);
}
static inline uint16_t tag_owner(uint64_t t)
{
    return (uint16_t)(t >> 16);
}
static inline uint32_t tag_gen(uint64_t t)
{
    return (uint32_t)(t >> 32);
}
static inline uint64_t span_make(uint64_t start, uint64_t len)
{
    return start << 32 | len;
}
static inline uint64_t span_start(uint64_t s)
{
    return s >> 32;
}
static inline uint64_t span_len(uint64_t s)
{
    return s & 0xffffffffu;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) & ~(a - 1);
}

static uint64_t bitmap_words(uint64_t n)
{
    return (n + 63) / 64;
}

/* n is at most ARENA_MAX_BLOCKS, so none of these sums can overflow 64 bits */
static void arena_layout(uint64_t n, struct arena_layout *l)
{
    l->off_table = align_up(sizeof(struct shm_arena_hdr), 64);
    l->off_bitmap = l->off_table + n * sizeof(struct arena_blk);
    l->off_data = align_up(l->off_bitmap + bitmap_words(n) * 8, ARENA_DATA_ALIGN);
    l->total = l->off_data + n * SHM_ARENA_BLOCK;
}

static inline struct arena_blk *arena_table(struct shm_arena *a)
{
    return (struct arena_blk *)((char *)a->hdr + a->off_table);
}

static inline uint64_t *arena_bitmap(struct shm_arena *a)
{
    return (uint64_t *)((char *)a->hdr + a->off_bitmap);
}

size_t shm_arena_bytes(uint64_t data_bytes)
{
    struct arena_layout l;
    uint64_t n = data_bytes / SHM_ARENA_BLOCK + (data_bytes % SHM_ARENA_BLOCK != 0);

    if (n == 0)
        n = 1;
    if (n > ARENA_MAX_BLOCKS)
        return 0;
    arena_layout(n, &l);
    if (l.total > SIZE_MAX)
        return 0;
    return (size_t)l.total;
}

static void bitmap_set(uint64_t *bm, uint64_t start, uint64_t len, bool used)
{
    for (uint64_t i = start; i < start + len;) {
        uint64_t w = i / 64, b = i % 64;
        uint64_t nbits = 64 - b < start + len - i ? 64 - b : start + len - i;
        uint64_t mask = (nbits == 64 ? ~0ull : ((1ull << nbits) - 1)) << b;
        bm[w] = used ? bm[w] | mask : bm[w] & ~mask;
        i += nbits;
    }
}

/* bits past the last block stay set so that searches never see them as free */
static void bitmap_reset(struct shm_arena *a)
{
    uint64_t words = bitmap_words(a->n_blocks);
    uint64_t *bm = arena_bitmap(a);

    memset(bm, 0, words * 8);
    if (a->n_blocks % 64)
        bm[words - 1] = ~0ull << (a->n_blocks % 64);
}

/* first index >= i whose bit equals `used`, or n_blocks */
static uint64_t bitmap_next(struct shm_arena *a, uint64_t i, bool used)
{
    const uint64_t *bm = arena_bitmap(a);
    uint64_t words = bitmap_words(a->n_blocks);
    uint64_t w = i / 64;

    if (i >= a->n_blocks)
        return a->n_blocks;
    uint64_t bits = (used ? bm[w] : ~bm[w]) & (~0ull << (i % 64));
    while (bits == 0) {
        if (++w >= words)
            return a->n_blocks;
        bits = used ? bm[w] : ~bm[w];
    }
    uint64_t r = w * 64 + (uint64_t)__builtin_ctzll(bits);
    return r < a->n_blocks ? r : a->n_blocks;
}

/* find_in - first run of k free blocks starting in [from, below) */
static bool find_in(struct shm_arena *a, uint64_t from, uint64_t below, uint64_t k, uint64_t *out)
{
    uint64_t n = a->n_blocks;
    uint64_t i = from;

    for (;;) {
        i = bitmap_next(a, i, false);
        if (i >= below || i >= n || n - i < k)
            return false;
        uint64_t lim = i + k;
        uint64_t j = bitmap_next(a, i, true);
        if (j >= lim) {
            *out = i;
            return true;
        }
        i = j;
    }
}

/* next-fit: from the hint to the end, then from the start up to the hint */
static bool arena_find(struct shm_arena *a, uint64_t k, uint64_t *out)
{
    uint64_t hint = __atomic_load_n(&a->hdr->hint, __ATOMIC_RELAXED); /* one load: checked = used */
    if (hint >= a->n_blocks)
        hint = 0;

    if (find_in(a, hint, a->n_blocks, k, out))
        return true;
    return hint > 0 && find_in(a, 0, hint, k, out);
}

/*
 * arena_repair - rebuild bitmap and counters from the block table, after a locker died. A run
 * counts only when its start entry is committed (USED, pointing at itself, inside the arena) and
 * every inner entry points back to it; everything else is debris of an interrupted update and is
 * cleared to FREE.
 */
static void arena_repair(struct shm_arena *a)
{
    struct arena_blk *t = arena_table(a);
    uint64_t n = a->n_blocks, used = 0, runs = 0, bad = 0;

    bitmap_reset(a);
    for (uint64_t i = 0; i < n;) {
        uint64_t tag = LOAD(&t[i].tag), span = LOAD(&t[i].span);
        uint64_t len = span_len(span);
        bool ok = tag_state(tag) == ARENA_USED && span_start(span) == i && len >= 1 && len <= n - i;
        for (uint64_t j = 1; ok && j < len; j++) {
            uint64_t s2 = LOAD(&t[i + j].span);
            ok = tag_state(LOAD(&t[i + j].tag)) == ARENA_INNER && span_start(s2) == i;
        }
        if (ok) {
            bitmap_set(arena_bitmap(a), i, len, true);
            used += len;
            runs++;
            i += len;
            continue;
        }
        if (LOAD(&t[i].tag) != 0 || LOAD(&t[i].span) != 0) {
            bad++;
            STORE(&t[i].tag, 0);
            STORE(&t[i].span, 0);
        }
        i++;
    }
    a->hdr->blocks_used = used;
    a->hdr->runs = runs;
    if (a->hdr->hint >= n)
        a->hdr->hint = 0;
    a->hdr->repairs++;
    log_warn("shm arena: a process died holding the arena lock; rebuilt from the block table "
             "(%llu runs, %llu blocks used, %llu stale entries cleared)",
             (unsigned long long)runs, (unsigned long long)used, (unsigned long long)bad);
}

static int arena_lock(struct shm_arena *a)
{
    int rc = pthread_mutex_lock(&a->hdr->lock);

    if (rc == EOWNERDEAD) {
        arena_repair(a);
        rc = pthread_mutex_consistent(&a->hdr->lock);
        if (rc != 0) {
            log_error("shm arena: pthread_mutex_consistent: %s", strerror(rc));
            pthread_mutex_unlock(&a->hdr->lock);
            return -rc;
        }
        return 0;
    }
    return -rc;
}

static void arena_unlock(struct shm_arena *a)
{
    pthread_mutex_unlock(&a->hdr->lock);
}

int shm_arena_init(void *mem, size_t bytes)
{
    struct shm_arena_hdr *h = mem;
    struct shm_arena view;
    struct arena_layout l;
    pthread_mutexattr_t attr;
    uint64_t n;
    int rc;

    if (!mem || (uintptr_t)mem % 64 != 0 || bytes < sizeof(struct shm_arena_hdr))
        return -EINVAL;
    n = bytes / (SHM_ARENA_BLOCK + sizeof(struct arena_blk));
    if (n > ARENA_MAX_BLOCKS)
        n = ARENA_MAX_BLOCKS;
    for (; n > 0; n--) {
        arena_layout(n, &l);
        if (l.total <= bytes)
            break;
    }
    if (n == 0)
        return -EINVAL;

    memset(h, 0, sizeof(*h));
    h->version = ARENA_VERSION;
    h->block_size = SHM_ARENA_BLOCK;
    h->n_blocks = n;
    h->off_table = l.off_table;
    h->off_bitmap = l.off_bitmap;
    h->off_data = l.off_data;
    h->total = l.total;
    view = (struct shm_arena){h, n, l.off_table, l.off_bitmap, l.off_data, l.total};
    memset(arena_table(&view), 0, n * sizeof(struct arena_blk));
    bitmap_reset(&view);

    if ((rc = pthread_mutexattr_init(&attr)) != 0)
        return -rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(&h->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0)
        return -rc;
    STORE(&h->magic, ARENA_MAGIC);
    return 0;
}

int shm_arena_open(struct shm_arena *a, void *mem, size_t bytes)
{
    struct shm_arena_hdr *h = mem;
    struct arena_layout l;

    memset(a, 0, sizeof(*a));
    if (!mem || (uintptr_t)mem % 64 != 0 || bytes < sizeof(struct shm_arena_hdr))
        return -EPROTO;
    /* one load of each geometry word: the copy checked is the copy kept */
    uint64_t n = __atomic_load_n(&h->n_blocks, __ATOMIC_RELAXED);
    if (LOAD(&h->magic) != ARENA_MAGIC || h->version != ARENA_VERSION || h->block_size != SHM_ARENA_BLOCK)
        return -EPROTO;
    if (n == 0 || n > ARENA_MAX_BLOCKS)
        return -EPROTO;
    arena_layout(n, &l);
    if (l.off_table != h->off_table || l.off_bitmap != h->off_bitmap || l.off_data != h->off_data ||
        l.total != h->total || l.total > bytes)
        return -EPROTO;
    *a = (struct shm_arena){h, n, l.off_table, l.off_bitmap, l.off_data, l.total};
    return 0;
}

void shm_arena_restore(struct shm_arena *a)
{
    struct shm_arena_hdr *h = a->hdr;

    if (!h)
        return;
    h->version = ARENA_VERSION;
    h->block_size = SHM_ARENA_BLOCK;
    h->n_blocks = a->n_blocks;
    h->off_table = a->off_table;
    h->off_bitmap = a->off_bitmap;
    h->off_data = a->off_data;
    h->total = a->total;
    STORE(&h->magic, ARENA_MAGIC);
}

int shm_arena_alloc(struct shm_arena *a, size_t len, uint16_t owner, uint32_t gen, uint64_t *off)
{
    struct arena_blk *t;
    uint64_t k, s;
    int rc;

    if (len == 0)
        return -EINVAL;
    if (len > a->n_blocks * SHM_ARENA_BLOCK)
        return -EFBIG;
    k = len / SHM_ARENA_BLOCK + (len % SHM_ARENA_BLOCK != 0);
    if ((rc = arena_lock(a)) < 0)
        return rc;
    if (!arena_find(a, k, &s)) {
        a->hdr->alloc_failures++;
        arena_unlock(a);
        return -ENOSPC;
    }
    t = arena_table(a);
    for (uint64_t j = 1; j < k; j++) {
        STORE(&t[s + j].span, span_make(s, 0));
        STORE(&t[s + j].tag, tag_make(0, 0, ARENA_INNER));
    }
    STORE(&t[s].span, span_make(s, k));
    STORE(&t[s].tag, tag_make(owner, gen, ARENA_USED)); /* commit */
    bitmap_set(arena_bitmap(a), s, k, true);
    a->hdr->blocks_used += k;
    a->hdr->runs++;
    a->hdr->hint = s + k < a->n_blocks ? s + k : 0;
    arena_unlock(a);
    *off = a->off_data + s * SHM_ARENA_BLOCK;
    return 0;
}

/* run_start_of - block index of the run that starts at `off`; false when `off` is anything else */
static bool run_start_of(struct shm_arena *a, uint64_t off, uint64_t *idx, uint64_t *len)
{
    struct arena_blk *t = arena_table(a);
    uint64_t n = a->n_blocks;

    if (off < a->off_data || (off - a->off_data) % SHM_ARENA_BLOCK != 0)
        return false;
    uint64_t i = (off - a->off_data) / SHM_ARENA_BLOCK;
    if (i >= n)
        return false;
    uint64_t tag = LOAD(&t[i].tag), span = LOAD(&t[i].span);
    if (tag_state(tag) != ARENA_USED || span_start(span) != i || span_len(span) == 0 ||
        span_len(span) > n - i)
        return false;
    *idx = i;
    *len = span_len(span);
    return true;
}

void *shm_arena_ptr(struct shm_arena *a, uint64_t off, uint64_t len)
{
    struct arena_blk *t = arena_table(a);
    uint64_t n = a->n_blocks, s, rlen;

    if (off < a->off_data || off - a->off_data >= n * SHM_ARENA_BLOCK)
        return NULL;
    uint64_t i = (off - a->off_data) / SHM_ARENA_BLOCK;
    uint64_t tag = LOAD(&t[i].tag);
    if (tag_state(tag) == ARENA_USED)
        s = i;
    else if (tag_state(tag) == ARENA_INNER)
        s = span_start(LOAD(&t[i].span));
    else
        return NULL;
    if (s > i)
        return NULL;
    if (tag_state(LOAD(&t[s].tag)) != ARENA_USED)
        return NULL;
    uint64_t span = LOAD(&t[s].span);
    rlen = span_len(span);
    if (span_start(span) != s || rlen == 0 || rlen > n - s || i - s >= rlen)
        return NULL;
    uint64_t end = a->off_data + (s + rlen) * SHM_ARENA_BLOCK;
    if (len > end - off)
        return NULL;
    return (char *)a->hdr + off;
}

/* called with the lock held, on a validated run start */
static void arena_release(struct shm_arena *a, uint64_t s, uint64_t k)
{
    struct arena_blk *t = arena_table(a);

    STORE(&t[s].tag, 0); /* commit: from here the run is gone even if we die */
    STORE(&t[s].span, 0);
    for (uint64_t j = 1; j < k; j++) {
        STORE(&t[s + j].tag, 0);
        STORE(&t[s + j].span, 0);
    }
    bitmap_set(arena_bitmap(a), s, k, false);
    a->hdr->blocks_used -= k;
    a->hdr->runs--;
}

int shm_arena_free(struct shm_arena *a, uint64_t off)
{
    uint64_t s, k;
    int rc;

    if ((rc = arena_lock(a)) < 0)
        return rc;
    if (!run_start_of(a, off, &s, &k)) {
        arena_unlock(a);
        return -EINVAL;
    }
    arena_release(a, s, k);
    arena_unlock(a);
    return 0;
}

int shm_arena_give(struct shm_arena *a, uint64_t off, uint16_t owner, uint32_t gen)
{
    uint64_t s, k;
    int rc;

    if ((rc = arena_lock(a)) < 0)
        return rc;
    if (!run_start_of(a, off, &s, &k)) {
        arena_unlock(a);
        return -EINVAL;
    }
    STORE(&arena_table(a)[s].tag, tag_make(owner, gen, ARENA_USED));
    arena_unlock(a);
    return 0;
}

size_t shm_arena_reclaim(struct shm_arena *a, uint16_t owner, uint32_t gen)
{
    struct arena_blk *t = arena_table(a);
    size_t freed = 0;

    if (arena_lock(a) < 0)
        return 0;
    for (uint64_t i = 0; i < a->n_blocks;) {
        uint64_t tag = LOAD(&t[i].tag), span = LOAD(&t[i].span);
        uint64_t k = span_len(span);
        if (tag_state(tag) == ARENA_USED && span_start(span) == i && k >= 1 && k <= a->n_blocks - i) {
            if (tag_owner(tag) == owner && tag_gen(tag) == gen) {
                arena_release(a, i, k);
                freed++;
            }
            i += k;
        } else {
            i++;
        }
    }
    arena_unlock(a);
    return freed;
}

void shm_arena_stats(struct shm_arena *a, struct shm_arena_stats *out)
{
    bool locked = arena_lock(a) == 0;

    /* unlocked (lock unrecoverable) the numbers may be torn, which beats reporting nothing */
    out->blocks_total = a->n_blocks;
    out->blocks_used = a->hdr->blocks_used;
    out->runs = a->hdr->runs;
    out->alloc_failures = a->hdr->alloc_failures;
    if (locked)
        arena_unlock(a);
}

/*
 * shm_arena_test_lock_and_die - TEST ONLY: take the lock, leave a half-done allocation (inner
 * entries, bitmap and counters written, start entry not committed) and die by SIGKILL holding
 * the lock. It lets shm_arena_test prove that the next locker repairs everything. Declared here
 * and in the test rather than in shm_arena.h so that the contract stays production-only; no
 * production path calls it.
 */
void shm_arena_test_lock_and_die(struct shm_arena *a);
void shm_arena_test_lock_and_die(struct shm_arena *a)
{
    uint64_t s;

    if (arena_lock(a) == 0 && arena_find(a, 3, &s)) {
        struct arena_blk *t = arena_table(a);
        for (uint64_t j = 1; j < 3; j++) {
            STORE(&t[s + j].span, span_make(s, 0));
            STORE(&t[s + j].tag, tag_make(0, 0, ARENA_INNER));
        }
        STORE(&t[s].span, span_make(s, 3));
        bitmap_set(arena_bitmap(a), s, 3, true);
        a->hdr->blocks_used += 3;
        a->hdr->runs++;
    }
    for (;;)
        kill(getpid(), SIGKILL);
}
