/*
 * spool_db_blog - the body log: message bodies in append-only segment files beside RocksDB (contract in
 * spool_db.h, "body log")
 *
 * Why: every body that goes through RocksDB is copied into the write batch, into the WAL buffer and into
 * the memtable, and Debian's portable build checksums each WAL record in software. For bodies of a few
 * KiB and up that was most of the spool's CPU (docs/benchmarks.md). Here a body is copied once into the
 * batch's staging buffer and written with one pwrite per group commit; RocksDB gets a 32-byte locator.
 *
 * Files: DIR/bodylog/SSSSSSSSSSSSSSSS.blog (the segment number in hex, increasing). A segment is a
 * sequence of records: a 40-byte header (magic, version, body length, message id, XXH3-64 of the body),
 * the body, zero padding to 8 bytes. The committed records of a segment are one prefix of it: a batch
 * writes at the committed end, which moves only when its write and fdatasync succeed (a failed one is
 * written again at the same place, or overwritten by the next batch), and a restart never appends to an
 * old segment. Whatever follows the committed end is garbage nobody points to; a scan stops at the first
 * header that does not decode (records past it could only be dead ones).
 *
 * Durability: spool_db_commit() writes the batch's staged records and fdatasyncs the segment *before* the
 * RocksDB write (sync=true) that makes their locators visible, so a locator on disk always points to a
 * body on disk. A new segment's directory entry is fsynced before any record in it is committed. A
 * failure of the body log fails the commit with nothing of it in RocksDB (the ingress gets 451). While no
 * segment can be created, bodies go to RocksDB (tried again each second).
 *
 * Reclaim (spool_db_sweep): a sealed segment's records are read header by header and each is live when
 * the message's locator in RocksDB points to exactly that record. A record never becomes live again (a
 * locator only ever moves to the current segment), so a pass remembers the live ones (up to 4096) and the
 * next pass of that segment looks only at those. A segment with none live is unlinked.
 * One that is old and mostly dead has its live bodies copied into the current segment (one synced batch
 * of new locators) and is then unlinked, so a few long-deferred messages cannot pin gigabytes. The sweep
 * runs in bounded steps between commits, on the spool's one thread.
 *
 * Everything read back (headers, locators, bodies) is checked: magic, version, lengths within bounds, the
 * message id against the key, the hash against the body.
 */
#include "spool/spool_db_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define BLOG_DIR "bodylog"
#define BLOG_SUFFIX ".blog"
#define BLOG_MAGIC UINT32_C(0x4c424d52) /* "RMBL" little-endian */
#define BLOG_VERSION 1
#define LOC_VERSION 1

/* sweep pacing: a segment with live bodies is looked at again after this, doubling up to the cap */
#define SWEEP_RECHECK_MS 2000u
#define SWEEP_RECHECK_MAX_MS 600000u
/* relocate a segment's live bodies when it is this old and less than half of it is live */
#define SWEEP_RELOCATE_AGE_MS 600000u
#define RELOCATE_BATCH_BYTES (8u << 20)
/* a pass remembers up to this many live records of a segment, and the next pass reads only those */
#define SWEEP_LIST_MAX 4096u

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- the codecs (pure; fuzzed by tests/fuzz/fuzz_spool_blog.c) ---- */

void spool_db_blog_loc_encode(const struct spool_db_blog_loc *l, uint8_t out[SPOOL_DB_BLOG_LOC_BYTES])
{
    memset(out, 0, SPOOL_DB_BLOG_LOC_BYTES);
    out[0] = LOC_VERSION;
    put32(out + 4, l->len);
    put64(out + 8, l->seg);
    put64(out + 16, l->off);
    put64(out + 24, l->hash);
}

int spool_db_blog_loc_decode(const void *p, size_t n, struct spool_db_blog_loc *out, const char **why)
{
    const uint8_t *b = p;
    if (n != SPOOL_DB_BLOG_LOC_BYTES) {
        *why = "body locator has the wrong size";
        return -EBADMSG;
    }
    if (b[0] != LOC_VERSION || b[1] || b[2] || b[3]) {
        *why = "body locator of an unknown version";
        return -EPROTONOSUPPORT;
    }
    out->len = get32(b + 4);
    out->seg = get64(b + 8);
    out->off = get64(b + 16);
    out->hash = get64(b + 24);
    if (out->seg == 0 || out->off % 8 != 0 || out->off > SPOOL_DB_BLOG_SEG_MAX ||
        out->len > SPOOL_DB_BLOG_BODY_MAX) {
        *why = "body locator out of bounds";
        return -EBADMSG;
    }
    return 0;
}

void spool_db_blog_hdr_encode(const struct spool_db_blog_hdr *h, uint8_t out[SPOOL_DB_BLOG_HDR_BYTES])
{
    memset(out, 0, SPOOL_DB_BLOG_HDR_BYTES);
    put32(out, BLOG_MAGIC);
    out[4] = BLOG_VERSION;
    put32(out + 8, h->len);
    memcpy(out + 16, h->key, MSGID_BYTES);
    put64(out + 32, h->hash);
}

int spool_db_blog_hdr_decode(const void *p, size_t n, struct spool_db_blog_hdr *out, const char **why)
{
    const uint8_t *b = p;
    if (n < SPOOL_DB_BLOG_HDR_BYTES) {
        *why = "short body record header";
        return -EBADMSG;
    }
    if (get32(b) != BLOG_MAGIC) {
        *why = "no body record here";
        return -EBADMSG;
    }
    if (b[4] != BLOG_VERSION || b[5] || b[6] || b[7] || get32(b + 12) != 0) {
        *why = "body record of an unknown version";
        return -EPROTONOSUPPORT;
    }
    out->len = get32(b + 8);
    if (out->len > SPOOL_DB_BLOG_BODY_MAX) {
        *why = "body record longer than any body";
        return -EBADMSG;
    }
    memcpy(out->key, b + 16, MSGID_BYTES);
    out->hash = get64(b + 32);
    return 0;
}

uint64_t spool_db_blog_hash(const void *body, size_t len)
{
    return XXH3_64bits(body, len);
}

size_t spool_db_blog_rec_size(uint32_t body_len)
{
    return SPOOL_DB_BLOG_HDR_BYTES + (((size_t)body_len + 7u) & ~(size_t)7u);
}

/* ---- segments ---- */

/* seg_name - the number of a segment file name, 0 if it is not one */
static uint64_t seg_name(const char *name)
{
    size_t n = strlen(name);
    if (n != 16 + strlen(BLOG_SUFFIX) || strcmp(name + 16, BLOG_SUFFIX) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (d == 16)
            return 0;
        v = (v << 4) | d;
    }
    return v;
}

static struct spool_db_blog_seg *seg_add(struct spool_db_blog *bl, uint64_t seg, uint64_t now_ms)
{
    if (bl->nsegs == bl->segs_cap) {
        bl->segs_cap = bl->segs_cap ? bl->segs_cap * 2 : 16;
        bl->segs = xrealloc(bl->segs, bl->segs_cap * sizeof(*bl->segs));
    }
    /* kept in increasing order: new segments have the highest numbers, so this is an append but at open */
    size_t i = bl->nsegs;
    while (i > 0 && bl->segs[i - 1].seg > seg) {
        bl->segs[i] = bl->segs[i - 1];
        i--;
    }
    struct spool_db_blog_seg *s = &bl->segs[i];
    memset(s, 0, sizeof(*s));
    s->seg = seg;
    s->created_ms = now_ms;
    s->next_check_ms = now_ms;
    s->recheck_ms = SWEEP_RECHECK_MS;
    bl->nsegs++;
    return s;
}

static void rfd_drop(struct spool_db_blog *bl, uint64_t seg)
{
    for (size_t i = 0; i < SPOOL_DB_BLOG_RFDS; i++)
        if (bl->rfd[i].fd >= 0 && bl->rfd[i].seg == seg) {
            close(bl->rfd[i].fd);
            bl->rfd[i].fd = -1;
        }
}

/* rfd_get - a read descriptor of a segment, from a small cache */
static int rfd_get(struct spool_db_blog *bl, uint64_t seg)
{
    if (seg == bl->cur_seg && bl->cur_fd >= 0)
        return bl->cur_fd;
    for (size_t i = 0; i < SPOOL_DB_BLOG_RFDS; i++)
        if (bl->rfd[i].fd >= 0 && bl->rfd[i].seg == seg)
            return bl->rfd[i].fd;
    char name[40];
    snprintf(name, sizeof(name), "%016" PRIx64 BLOG_SUFFIX, seg);
    int fd = openat(bl->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size_t slot = bl->rfd_next++ % SPOOL_DB_BLOG_RFDS;
    if (bl->rfd[slot].fd >= 0)
        close(bl->rfd[slot].fd);
    bl->rfd[slot].fd = fd;
    bl->rfd[slot].seg = seg;
    return fd;
}

void spool_db_blog_init(struct spool_db *db)
{
    struct spool_db_blog *bl = &db->blog;
    bl->dirfd = bl->cur_fd = bl->spare_fd = -1;
    for (size_t i = 0; i < SPOOL_DB_BLOG_RFDS; i++)
        bl->rfd[i].fd = -1;
}

int spool_db_blog_open(struct spool_db *db)
{
    struct spool_db_blog *bl = &db->blog;
    bl->dir = xasprintf("%s/" BLOG_DIR, db->dir);
    if (mkdir(bl->dir, 0700) < 0 && errno != EEXIST)
        goto fail;
    bl->dirfd = open(bl->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (bl->dirfd < 0)
        goto fail;
    DIR *d = opendir(bl->dir);
    if (d == NULL)
        goto fail;
    uint64_t now = clock_real_ns() / 1000000u, max = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t seg = seg_name(de->d_name);
        if (seg == 0)
            continue;
        struct stat st;
        if (fstatat(bl->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        seg_add(bl, seg, now)->size = (uint64_t)st.st_size;
        if (seg > max)
            max = seg;
    }
    closedir(d);
    /* every segment found is sealed: this process appends only to segments it creates */
    bl->next_seg = max + 1;
    return 0;
fail:;
    int err = errno;
    free(db->errtext);
    db->errtext = xasprintf("body log %s: %s", bl->dir, strerror(err));
    return -err;
}

void spool_db_blog_close(struct spool_db *db)
{
    struct spool_db_blog *bl = &db->blog;
    if (bl->cur_fd >= 0)
        close(bl->cur_fd);
    bl->cur_fd = -1;
    if (bl->spare_fd >= 0)
        close(bl->spare_fd); /* the next open finds it as a segment of dead records */
    bl->spare_fd = -1;
    for (size_t i = 0; i < SPOOL_DB_BLOG_RFDS; i++)
        if (bl->rfd[i].fd >= 0) {
            close(bl->rfd[i].fd);
            bl->rfd[i].fd = -1;
        }
    if (bl->dirfd >= 0)
        close(bl->dirfd);
    bl->dirfd = -1;
    free(bl->dir);
    bl->dir = NULL;
    for (size_t i = 0; i < bl->nsegs; i++)
        free(bl->segs[i].live_offs);
    free(bl->segs);
    bl->segs = NULL;
    free(bl->sweep_list);
    bl->sweep_list = NULL;
    bl->sweep_list_cap = bl->sweep_n_list = 0;
    bl->nsegs = bl->segs_cap = 0;
    if (bl->reloc != NULL)
        spool_db_batch_free(bl->reloc);
    bl->reloc = NULL;
}

/* seal - the current segment takes no more records; the next body opens a new one */
static struct spool_db_blog_seg *seg_find(struct spool_db_blog *bl, uint64_t seg);

static void seal(struct spool_db_blog *bl)
{
    struct spool_db_blog_seg *s = bl->cur_seg ? seg_find(bl, bl->cur_seg) : NULL;
    if (s != NULL)
        s->current = false;
    if (bl->cur_fd >= 0)
        close(bl->cur_fd);
    bl->cur_fd = -1;
    bl->cur_seg = 0;
}

/* roll - create the next segment and make its name durable before anything in it is committed */
static int roll(struct spool_db *db)
{
    struct spool_db_blog *bl = &db->blog;
    seal(bl);
    if (bl->spare_fd >= 0) {
        /* a recycled segment: its blocks are allocated and written, so the records written over them are
         * synced without a journal commit for the file's size (about 40 % less per fdatasync here) */
        bl->cur_fd = bl->spare_fd;
        bl->cur_seg = bl->spare_seg;
        bl->cur_off = 0;
        bl->spare_fd = -1;
        seg_add(bl, bl->cur_seg, clock_real_ns() / 1000000u)->current = true;
        return 0;
    }
    uint64_t seg = bl->next_seg++;
    char name[40];
    snprintf(name, sizeof(name), "%016" PRIx64 BLOG_SUFFIX, seg);
    uint64_t t0 = clock_mono_ns();
    int fd = openat(bl->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fsync(bl->dirfd) < 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlinkat(bl->dirfd, name, 0);
        }
        free(db->errtext);
        db->errtext = xasprintf("body log: cannot create segment %s: %s", name, strerror(e));
        return -e;
    }
    uint64_t took = clock_mono_ns() - t0;
    if (took > CLOCK_MS(50))
        log_warn("spool: body log segment %s took %llu ms to create (the directory's fsync)", name,
                 (unsigned long long)(took / 1000000u));
    bl->cur_fd = fd;
    bl->cur_seg = seg;
    bl->cur_off = 0;
    seg_add(bl, seg, clock_real_ns() / 1000000u)->current = true;
    db->stats.blog_segments_created++;
    return 0;
}

static struct spool_db_blog_seg *seg_find(struct spool_db_blog *bl, uint64_t seg)
{
    size_t lo = 0, hi = bl->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bl->segs[mid].seg < seg)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < bl->nsegs && bl->segs[lo].seg == seg ? &bl->segs[lo] : NULL;
}

int spool_db_blog_stage(struct spool_db_batch *b, const uint8_t key[MSGID_BYTES], const void *body, size_t len,
                        uint8_t loc_out[SPOOL_DB_BLOG_LOC_BYTES])
{
    struct spool_db *db = b->db;
    struct spool_db_blog *bl = &db->blog;
    if (db->opts.body_log_off || len < db->opts.body_log_min_bytes || len > SPOOL_DB_BLOG_BODY_MAX ||
        bl->dirfd < 0)
        return 1;
    /* one batch stages at a time: its records go right after the committed end of the segment; a batch
     * whose records were written takes no more until it is reset */
    if ((bl->owner != NULL && bl->owner != b) || b->blog_state == BLOG_FLUSHED)
        return 1;
    if (bl->owner == NULL) {
        if (bl->cur_fd < 0 || bl->cur_off >= db->opts.body_log_segment_bytes) {
            /* no new segment: the bodies go to RocksDB meanwhile, and the next try waits a second */
            uint64_t now = clock_mono_ns();
            if (now < bl->roll_retry_ns)
                return 1;
            int rc = roll(db);
            if (rc < 0) {
                bl->roll_retry_ns = now + CLOCK_SEC(1);
                log_warn("spool: %s; bodies go to RocksDB until a segment can be created", db->errtext);
                return 1;
            }
        }
        bl->owner = b;
        b->blog_state = BLOG_STAGED;
        b->blog_seg = bl->cur_seg;
        b->blog_off = bl->cur_off;
        b->blog.len = 0;
    }
    struct spool_db_blog_hdr h = {.len = (uint32_t)len, .hash = spool_db_blog_hash(body, len)};
    memcpy(h.key, key, MSGID_BYTES);
    struct spool_db_blog_loc l = {.seg = b->blog_seg, .off = b->blog_off + b->blog.len, .len = (uint32_t)len,
                                  .hash = h.hash};
    if (l.off > SPOOL_DB_BLOG_SEG_MAX)
        return 1; /* a giant batch: the rest goes to RocksDB */
    size_t rec = spool_db_blog_rec_size(h.len);
    buf_reserve(&b->blog, rec);
    uint8_t hdr[SPOOL_DB_BLOG_HDR_BYTES];
    spool_db_blog_hdr_encode(&h, hdr);
    buf_append(&b->blog, hdr, sizeof(hdr));
    buf_append(&b->blog, body, len);
    static const uint8_t zero[8];
    buf_append(&b->blog, zero, rec - SPOOL_DB_BLOG_HDR_BYTES - len);
    spool_db_blog_loc_encode(&l, loc_out);
    b->blog_records++;
    return 0;
}

void spool_db_blog_unstage(struct spool_db_batch *b)
{
    struct spool_db_blog *bl = &b->db->blog;
    if (bl->owner == b)
        bl->owner = NULL;
    b->blog.len = 0;
    b->blog_records = 0;
    b->blog_state = BLOG_NONE;
}

int spool_db_blog_flush(struct spool_db *db, struct spool_db_batch *b)
{
    struct spool_db_blog *bl = &db->blog;
    if (b->blog_state != BLOG_STAGED)
        return 0; /* none, or written by an earlier commit of this batch */
    /* a staging batch owns the end of the current segment until it is written or reset */
    ASSERT(bl->owner == b && bl->cur_fd >= 0 && bl->cur_seg == b->blog_seg && bl->cur_off == b->blog_off);
    int rc = 0;
    size_t done = 0;
    while (done < b->blog.len) {
        ssize_t n = pwrite(bl->cur_fd, b->blog.data + done, b->blog.len - done, (off_t)(b->blog_off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
    }
    if (rc == 0 && fdatasync(bl->cur_fd) < 0)
        rc = -errno;
    if (rc < 0) {
        /*
         * What reached the file is not known to be on disk, and nothing points to it. The batch keeps its
         * place: committed again, it writes the same bytes at the same offset (dirtying every page of the
         * range again, so a sync that then succeeds covers all of it); reset, it gives the place to the
         * next batch, which overwrites the range. Either way the committed records stay one prefix.
         */
        free(db->errtext);
        db->errtext = xasprintf("body log: write of segment %016" PRIx64 " failed: %s", bl->cur_seg, strerror(-rc));
        db->stats.blog_failures++;
        return rc;
    }
    bl->cur_off += b->blog.len;
    struct spool_db_blog_seg *s = seg_find(bl, bl->cur_seg);
    if (s != NULL)
        s->size = bl->cur_off;
    db->stats.blog_bytes += b->blog.len;
    db->stats.blog_records += b->blog_records;
    bl->owner = NULL;
    b->blog_state = BLOG_FLUSHED;
    return 0;
}

/* ---- reads ---- */

static int read_full(int fd, void *dst, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        done += (size_t)n;
    }
    return 0;
}

int spool_db_blog_read(struct spool_db *db, const uint8_t key[MSGID_BYTES], const void *locv, size_t loclen,
                       void *dst, size_t cap, size_t *len)
{
    struct spool_db_blog *bl = &db->blog;
    struct spool_db_blog_loc l = {0};
    const char *why = NULL;
    int rc = spool_db_blog_loc_decode(locv, loclen, &l, &why);
    if (rc < 0)
        goto bad;
    *len = l.len;
    if (l.len > cap)
        return -ENOBUFS;
    if (bl->dirfd < 0)
        return -ENODEV;
    int fd = rfd_get(bl, l.seg);
    if (fd < 0) {
        rc = fd;
        why = "segment cannot be opened";
        goto bad;
    }
    uint8_t hb[SPOOL_DB_BLOG_HDR_BYTES];
    struct spool_db_blog_hdr h;
    if ((rc = read_full(fd, hb, sizeof(hb), l.off)) < 0) {
        why = "header cannot be read";
        goto bad;
    }
    if ((rc = spool_db_blog_hdr_decode(hb, sizeof(hb), &h, &why)) < 0)
        goto bad;
    if (h.len != l.len || h.hash != l.hash || memcmp(h.key, key, MSGID_BYTES) != 0) {
        rc = -EBADMSG;
        why = "record does not match its locator";
        goto bad;
    }
    if (l.len > 0 && (rc = read_full(fd, dst, l.len, l.off + SPOOL_DB_BLOG_HDR_BYTES)) < 0) {
        why = "body cannot be read";
        goto bad;
    }
    if (spool_db_blog_hash(dst, l.len) != h.hash) {
        rc = -EBADMSG;
        why = "body does not match its hash";
        goto bad;
    }
    return 0;
bad:
    db->stats.blog_read_errors++;
    free(db->errtext);
    db->errtext = xasprintf("body log: segment %016" PRIx64 " offset %" PRIu64 ": %s (%s)", l.seg, l.off,
                            why ? why : "", strerror(-rc));
    return rc == -ENODATA || rc == -ENOENT ? -EBADMSG : rc;
}

/* ---- sweep ---- */

/* live - the message's locator points to this very record */
static int live(struct spool_db *db, const struct spool_db_blog_hdr *h, uint64_t seg, uint64_t off, bool *out)
{
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(db->rdb, db->rwalk, db->cf[CF_BODYLOG],
                                                        (const char *)h->key, MSGID_BYTES, &rerr);
    if (rerr != NULL)
        return spool_db_fail(db, rerr, "body log sweep");
    *out = false;
    if (ps != NULL) {
        size_t n;
        const char *v = rocksdb_pinnableslice_value(ps, &n);
        struct spool_db_blog_loc l;
        const char *why;
        *out = spool_db_blog_loc_decode(v, n, &l, &why) == 0 && l.seg == seg && l.off == off;
        rocksdb_pinnableslice_destroy(ps);
    }
    return 0;
}

/*
 * recycle - a dead segment becomes the spare the next roll takes: renamed to a new number (its stale records
 * are dead under any number: no locator names it) and the rename made durable before anything is written
 * to it, here in the sweep rather than in a commit. true when it is the spare now.
 */
static bool recycle(struct spool_db *db, const struct spool_db_blog_seg *s, const char *name)
{
    struct spool_db_blog *bl = &db->blog;
    if (db->opts.body_log_off || bl->spare_fd >= 0 || s->size < db->opts.body_log_segment_bytes / 2)
        return false;
    uint64_t seg = bl->next_seg++;
    char to[40];
    snprintf(to, sizeof(to), "%016" PRIx64 BLOG_SUFFIX, seg);
    if (renameat(bl->dirfd, name, bl->dirfd, to) < 0)
        return false;
    int fd = openat(bl->dirfd, to, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fsync(bl->dirfd) < 0) {
        log_warn("spool: body log segment %s cannot be recycled: %s", to, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlinkat(bl->dirfd, to, 0);
        db->stats.blog_segments_removed++;
        return true; /* gone either way: under either name it held only dead records */
    }
    bl->spare_fd = fd;
    bl->spare_seg = seg;
    bl->spare_size = s->size;
    db->stats.blog_segments_recycled++;
    return true;
}

static void seg_remove(struct spool_db *db, struct spool_db_blog_seg *s)
{
    struct spool_db_blog *bl = &db->blog;
    char name[40];
    snprintf(name, sizeof(name), "%016" PRIx64 BLOG_SUFFIX, s->seg);
    rfd_drop(bl, s->seg);
    if (recycle(db, s, name)) {
        /* counted as recycled, not removed */
    } else if (unlinkat(bl->dirfd, name, 0) < 0 && errno != ENOENT) {
        log_warn("spool: body log segment %s cannot be removed: %s", name, strerror(errno));
        s->next_check_ms = clock_real_ns() / 1000000u + SWEEP_RECHECK_MAX_MS;
        return;
    } else {
        db->stats.blog_segments_removed++;
    }
    free(s->live_offs);
    size_t i = (size_t)(s - bl->segs);
    memmove(&bl->segs[i], &bl->segs[i + 1], (bl->nsegs - i - 1) * sizeof(*bl->segs));
    bl->nsegs--;
}

/* reloc_commit - the relocation batch: new records, then their locators, synced */
static int reloc_commit(struct spool_db *db)
{
    struct spool_db_batch *r = db->blog.reloc;
    if (r == NULL || r->relocs == 0)
        return 0;
    int rc = spool_db_commit(db, r);
    if (rc == 0)
        db->stats.blog_relocated += r->relocs;
    spool_db_batch_reset(r);
    return rc;
}

/* relocate_one - copy a live record's body into the relocation batch */
static int relocate_one(struct spool_db *db, int fd, const struct spool_db_blog_hdr *h, uint64_t off)
{
    struct spool_db_blog *bl = &db->blog;
    if (bl->reloc == NULL)
        bl->reloc = spool_db_batch_new(db);
    char *body = xmalloc(h->len ? h->len : 1);
    int rc = read_full(fd, body, h->len, off + SPOOL_DB_BLOG_HDR_BYTES);
    if (rc == 0 && spool_db_blog_hash(body, h->len) != h->hash)
        rc = -EBADMSG;
    if (rc < 0) {
        /* leave it where it is: a reader gets the same error and says so */
        free(body);
        return rc;
    }
    uint8_t loc[SPOOL_DB_BLOG_LOC_BYTES];
    struct spool_db_batch *r = bl->reloc;
    if (spool_db_blog_stage(r, h->key, body, h->len, loc) == 0) {
        rocksdb_writebatch_put_cf(r->wb, db->cf[CF_BODYLOG], (const char *)h->key, MSGID_BYTES, (const char *)loc,
                                  sizeof(loc));
    } else {
        /* the body log is off (or cannot take it): back into RocksDB, which readers look in next */
        rocksdb_writebatch_put_cf(r->wb, db->cf[CF_BODIES], (const char *)h->key, MSGID_BYTES, body, h->len);
        rocksdb_writebatch_delete_cf(r->wb, db->cf[CF_BODYLOG], (const char *)h->key, MSGID_BYTES);
        spool_db_batch_touch(r, CF_BODIES, h->key, MSGID_BYTES);
        r->reloc_bytes += h->len;
    }
    spool_db_batch_touch(r, CF_BODYLOG, h->key, MSGID_BYTES);
    r->relocs++;
    free(body);
    if (r->blog.len + r->reloc_bytes >= RELOCATE_BATCH_BYTES)
        rc = reloc_commit(db);
    return rc;
}

/* sweep_done - the pass saw every record: remove the segment, relocate it next, or look again later */
static void sweep_done(struct spool_db *db, uint64_t seg, uint64_t now)
{
    struct spool_db_blog *bl = &db->blog;
    struct spool_db_blog_seg *s = seg_find(bl, seg);
    bl->sweep_seg = 0;
    if (s == NULL)
        return;
    free(s->live_offs);
    s->live_offs = NULL;
    s->n_live_offs = 0;
    if (bl->sweep_live == 0 || bl->sweep_relocate) {
        seg_remove(db, s);
        return;
    }
    /* records never come back to life: the next pass looks only at these */
    if (!bl->sweep_list_full) {
        s->live_offs = bl->sweep_list;
        s->n_live_offs = bl->sweep_n_list;
        bl->sweep_list = NULL;
        bl->sweep_list_cap = bl->sweep_n_list = 0;
    }
    s->live = bl->sweep_live;
    s->live_bytes = bl->sweep_live_bytes;
    /* with the body log turned off every segment is emptied into RocksDB, so that the log can drain */
    s->relocate = db->opts.body_log_off || (now - s->created_ms >= SWEEP_RELOCATE_AGE_MS && s->live_bytes * 2 < s->size);
    s->next_check_ms = s->relocate ? now : now + s->recheck_ms;
    if (s->recheck_ms < SWEEP_RECHECK_MAX_MS)
        s->recheck_ms *= 2;
}

/* sweep_stop - a read or write failed: this pass is abandoned, the segment looked at again much later */
static void sweep_stop(struct spool_db *db, uint64_t seg, uint64_t now, int rc)
{
    struct spool_db_blog *bl = &db->blog;
    log_warn("spool: body log sweep of segment %016" PRIx64 " stopped: %s (%s)", seg, strerror(-rc),
             spool_db_error(db));
    if (bl->reloc != NULL)
        spool_db_batch_reset(bl->reloc);
    struct spool_db_blog_seg *s = seg_find(bl, seg);
    if (s != NULL) {
        s->relocate = false;
        s->next_check_ms = now + SWEEP_RECHECK_MAX_MS;
    }
    bl->sweep_seg = 0;
}

/* list_add - remember a live record's offset for the next pass (up to SWEEP_LIST_MAX of them) */
static void list_add(struct spool_db_blog *bl, uint64_t off)
{
    if (bl->sweep_list_full)
        return;
    if (bl->sweep_n_list == SWEEP_LIST_MAX) {
        bl->sweep_list_full = true;
        return;
    }
    if (bl->sweep_n_list == bl->sweep_list_cap) {
        bl->sweep_list_cap = bl->sweep_list_cap ? bl->sweep_list_cap * 2 : 16;
        bl->sweep_list = xrealloc(bl->sweep_list, bl->sweep_list_cap * sizeof(*bl->sweep_list));
    }
    bl->sweep_list[bl->sweep_n_list++] = off;
}

/* next_record - the offset of the pass's next record: from the last pass's live list when there is one,
 * else the next one in the file; false at the end */
static bool next_record(struct spool_db_blog *bl, const struct spool_db_blog_seg *s, uint64_t *off)
{
    if (s->live_offs != NULL) {
        if (bl->sweep_idx >= s->n_live_offs)
            return false;
        *off = s->live_offs[bl->sweep_idx];
        return true;
    }
    *off = bl->sweep_off;
    return true;
}

int spool_db_sweep(struct spool_db *db, size_t max)
{
    struct spool_db_blog *bl = &db->blog;
    /* never while another batch stages bodies: relocated records go where that batch's would */
    if (db->rdb == NULL || db->needs_recover || bl->dirfd < 0 || bl->owner != NULL)
        return 0;
    uint64_t now = clock_real_ns() / 1000000u;
    if (bl->sweep_seg != 0 && seg_find(bl, bl->sweep_seg) == NULL)
        bl->sweep_seg = 0;
    if (bl->sweep_seg == 0) {
        struct spool_db_blog_seg *s = NULL;
        for (size_t i = 0; i < bl->nsegs && s == NULL; i++)
            if (!bl->segs[i].current && bl->segs[i].next_check_ms <= now)
                s = &bl->segs[i];
        if (s == NULL)
            return 0;
        bl->sweep_seg = s->seg;
        bl->sweep_off = bl->sweep_idx = 0;
        bl->sweep_live = bl->sweep_live_bytes = 0;
        bl->sweep_n_list = 0;
        bl->sweep_list_full = false;
        /* relocate on this pass when the last one found it old and mostly dead */
        bl->sweep_relocate = s->relocate;
    }
    uint64_t seg = bl->sweep_seg;
    int fd = rfd_get(bl, seg);
    if (fd < 0) {
        struct spool_db_blog_seg *s = seg_find(bl, seg);
        bl->sweep_seg = 0;
        if (fd == -ENOENT) {
            seg_remove(db, s);
            return 1;
        }
        log_warn("spool: body log segment %016" PRIx64 " cannot be opened: %s", seg, strerror(-fd));
        s->next_check_ms = now + SWEEP_RECHECK_MAX_MS;
        return 1;
    }
    size_t n = 0;
    bool end = false;
    int rc = 0;
    while (n < max) {
        const struct spool_db_blog_seg *s = seg_find(bl, seg); /* a relocation commit may move the array */
        uint64_t off;
        uint8_t hb[SPOOL_DB_BLOG_HDR_BYTES];
        struct spool_db_blog_hdr h;
        const char *why;
        if (s == NULL || !next_record(bl, s, &off)) {
            end = true;
            break;
        }
        bool listed = s->live_offs != NULL;
        if (read_full(fd, hb, sizeof(hb), off) < 0 || spool_db_blog_hdr_decode(hb, sizeof(hb), &h, &why) < 0) {
            if (!listed) {
                end = true; /* the valid records are a prefix: past here nothing was committed */
                break;
            }
            rc = -EBADMSG; /* a record that was there before: the file changed under us */
            break;
        }
        n++;
        bool is_live = false;
        if ((rc = live(db, &h, seg, off, &is_live)) < 0)
            break;
        if (is_live) {
            bl->sweep_live++;
            bl->sweep_live_bytes += spool_db_blog_rec_size(h.len);
            list_add(bl, off);
            if (bl->sweep_relocate && (rc = relocate_one(db, fd, &h, off)) < 0)
                break;
        }
        if (listed)
            bl->sweep_idx++;
        else
            bl->sweep_off += spool_db_blog_rec_size(h.len);
    }
    /* what this step relocated is committed now: the body log is free for the spool's next batch */
    if (rc == 0 && bl->sweep_relocate)
        rc = reloc_commit(db);
    if (rc < 0) {
        sweep_stop(db, seg, now, rc);
        return (int)n + 1;
    }
    if (end)
        sweep_done(db, seg, now);
    return (int)n + 1;
}

void spool_db_blog_status(struct spool_db *db, struct spool_db_blog_status *out)
{
    struct spool_db_blog *bl = &db->blog;
    memset(out, 0, sizeof(*out));
    out->segments = bl->nsegs;
    for (size_t i = 0; i < bl->nsegs; i++)
        out->bytes += bl->segs[i].size;
    out->current = bl->cur_seg;
    if (bl->spare_fd >= 0) {
        out->segments++;
        out->bytes += bl->spare_size;
        out->spare = bl->spare_seg;
    }
}

void spool_db_blog_age(struct spool_db *db, uint64_t ms)
{
    struct spool_db_blog *bl = &db->blog;
    for (size_t i = 0; i < bl->nsegs; i++) {
        bl->segs[i].created_ms -= ms < bl->segs[i].created_ms ? ms : bl->segs[i].created_ms;
        bl->segs[i].next_check_ms = 0;
    }
}
