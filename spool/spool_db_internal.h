/*
 * spool_db_internal - what the files of the spool_db library share; not for its users
 *
 * spool_db.c (open, batches, commit, reads, free space), spool_db_logrec.c (the log write-ahead),
 * spool_db_walk.c (the start-up walk) and spool_db_quarantine.c (quarantine records) all work on
 * the same handle; every write goes through spool_db_write(), which keeps the rule that a failed
 * write stops all writes until spool_db_recover().
 */
#ifndef RINGMAIL_SPOOL_DB_INTERNAL_H
#define RINGMAIL_SPOOL_DB_INTERNAL_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>

#include "spool/spool_db.h"

enum spool_db_cf {
    CF_DEFAULT = 0, /* RocksDB insists on it; unused */
    CF_ENVELOPES = 1,
    CF_BODIES = 2,
    CF_QUARANTINE = 3,
    CF_LOGAHEAD = 4,
    CF_TSA = 5, /* traffic shaping automation firings (spool_db_tsa.c) */
    CF_SUPPRESSION = 6, /* the suppression list (spool_db_supp.c) */
    CF_BODYLOG = 7,     /* body locators into the body log (spool_db_blog.c) */
    CF__COUNT = 8,
};

/* the compaction thread's state (spool_db_compact.c): atomics and `error` (under lock) are shared with it */
struct spool_db_compact {
    pthread_t thread;
    bool joinable, lock_init;
    pthread_mutex_t lock;
    char error[256];
    _Atomic bool running, stop;
    _Atomic unsigned families_done;
    _Atomic int result;
    _Atomic uint64_t finished_ms;
    uint64_t started_ms, sst_before, runs;
};

#define SPOOL_DB_BLOG_RFDS 8

/* one segment of the body log, as the sweep knows it */
struct spool_db_blog_seg {
    uint64_t seg, size;
    uint64_t created_ms;      /* when this process created or found it */
    uint64_t next_check_ms, recheck_ms;
    uint64_t live, live_bytes; /* at the last complete pass */
    uint64_t *live_offs;      /* the offsets of those live records, NULL when unknown (too many, never swept) */
    size_t n_live_offs;
    bool current;             /* being appended to */
    bool relocate;            /* the next pass copies its live bodies out */
};

/* the body log (spool_db_blog.c) */
struct spool_db_blog {
    char *dir;
    int dirfd;
    int cur_fd;                   /* the segment being appended to, -1 when none */
    uint64_t cur_seg, cur_off;    /* its number and committed end */
    uint64_t next_seg;
    uint64_t roll_retry_ns;       /* a segment could not be created: not again before this (monotonic) */
    int spare_fd;                 /* a recycled segment the next roll takes, -1 when none */
    uint64_t spare_seg, spare_size;
    struct spool_db_batch *owner; /* the batch whose staged records go at cur_off */
    struct {
        uint64_t seg;
        int fd;
    } rfd[SPOOL_DB_BLOG_RFDS];
    size_t rfd_next;
    struct spool_db_blog_seg *segs; /* in increasing order */
    size_t nsegs, segs_cap;
    uint64_t sweep_seg, sweep_off, sweep_live, sweep_live_bytes; /* the pass under way (sweep_seg 0: none) */
    size_t sweep_idx;              /* ... its place in the segment's live list, when it has one */
    uint64_t *sweep_list;          /* ... the live records it found */
    size_t sweep_n_list, sweep_list_cap;
    bool sweep_list_full;
    bool sweep_relocate;
    struct spool_db_batch *reloc;  /* the sweep's own batch */
};

struct spool_db {
    char *dir;
    struct spool_db_opts opts;
    rocksdb_options_t *dbopt;
    rocksdb_options_t *cfopt[CF__COUNT];
    rocksdb_t *rdb; /* NULL after a failed spool_db_recover() */
    rocksdb_column_family_handle_t *cf[CF__COUNT];
    rocksdb_writeoptions_t *wsync;
    rocksdb_writeoptions_t *wnosync;
    rocksdb_readoptions_t *ropt;
    rocksdb_readoptions_t *rwalk;
    char *errtext;
    bool needs_recover;
    int write_errno; /* errno of the failed write that set needs_recover */
    rocksdb_writebatch_t *undo; /* pre-images of what failed commits touched (spool_db_undo.c) */
    size_t undo_ops;
    char *undo_path; /* opts.undo_file, owned */
    uint64_t logrec_next; /* sequence number of the next log record */
    uint64_t tsa_next;    /* sequence number of the next TSA firing */
    struct spool_db_stats stats;
    struct spool_db_compact compact;
    struct spool_db_blog blog;
};

/* where a batch's staged body records stand */
enum spool_db_blog_state { BLOG_NONE, BLOG_STAGED, BLOG_FLUSHED };

struct spool_db_batch {
    struct spool_db *db;
    rocksdb_writebatch_t *wb;
    size_t stores, updates, deletes, logrecs, tsas, supps;
    struct buf enc;
    struct buf touched;          /* column family, key length and key of each envelope, body or suppression
                                  * put or delete (spool_db_batch_touch) */
    uint64_t logrec_lo, logrec_hi; /* sequence numbers of the batch's log records (0: none) */
    uint64_t tsa_lo, tsa_hi;       /* ... and of its TSA firings */
    struct buf blog;               /* body log records staged for the commit */
    uint64_t blog_seg, blog_off;   /* where they go */
    size_t blog_records, relocs;   /* records staged; locators the sweep moved (its own batch) */
    size_t reloc_bytes;            /* bodies the sweep moved back into RocksDB (its own batch) */
    enum spool_db_blog_state blog_state;
};

#define SPOOL_DB_SEQ_KEY 8 /* keys of the logahead and tsa families: big-endian sequence numbers */

static inline void spool_db_key_be64(uint64_t v, uint8_t k[SPOOL_DB_SEQ_KEY])
{
    for (int i = 0; i < SPOOL_DB_SEQ_KEY; i++)
        k[i] = (uint8_t)(v >> (8 * (SPOOL_DB_SEQ_KEY - 1 - i)));
}

static inline uint64_t spool_db_be64_key(const uint8_t *k)
{
    uint64_t v = 0;
    for (int i = 0; i < SPOOL_DB_SEQ_KEY; i++)
        v = (v << 8) | k[i];
    return v;
}

/* spool_db_fail - takes RocksDB's malloc'd error string; returns -errno */
int spool_db_fail(struct spool_db *db, char *rerr, const char *what);
/* spool_db_closed - the error of every call on a database a failed recover left closed */
int spool_db_closed(struct spool_db *db);
/* spool_db_iter_done - end a scan: while rc is 0 the iterator's error becomes the result; destroys it */
int spool_db_iter_done(struct spool_db *db, rocksdb_iterator_t *it, int rc, const char *what);
/* spool_db_write - write wb (synced or not); after a failed write every write is refused until a recover */
int spool_db_write(struct spool_db *db, rocksdb_writebatch_t *wb, bool sync, const char *what);

/* spool_db_batch_touch - remember a key the batch writes, for the undo of a failed commit */
void spool_db_batch_touch(struct spool_db_batch *b, int cf, const void *key, size_t klen);
/* spool_db_batch_seq - widen [*lo, *hi] (0: empty) to seq */
void spool_db_batch_seq(uint64_t *lo, uint64_t *hi, uint64_t seq);
/* spool_db_undo_add - after a failed commit that reached RocksDB: the pre-images of what b touched */
void spool_db_undo_add(struct spool_db *db, const struct spool_db_batch *b);
/* spool_db_undo_apply - after a reopen: write the undo batch, synced; 0 or -errno (kept for the next try) */
int spool_db_undo_apply(struct spool_db *db);
/* spool_db_undo_load - after the first open: an undo batch a previous process left in opts.undo_file is
 * applied (then removed) before anything else; 0 or -errno (the file is kept) */
int spool_db_undo_load(struct spool_db *db);
void spool_db_undo_free(struct spool_db *db);

/* body log (spool_db_blog.c): init marks every descriptor closed (at allocation); open lists the segments (all
 * sealed); close frees everything */
void spool_db_blog_init(struct spool_db *db);
int spool_db_blog_open(struct spool_db *db);
void spool_db_blog_close(struct spool_db *db);
/* spool_db_blog_stage - the body's record into b's staging buffer, its locator into loc_out: 0; 1 when the
 * body stays in RocksDB (small, log off, another batch stages, no segment could be created) */
int spool_db_blog_stage(struct spool_db_batch *b, const uint8_t key[MSGID_BYTES], const void *body, size_t len,
                        uint8_t loc_out[SPOOL_DB_BLOG_LOC_BYTES]);
/* spool_db_blog_unstage - drop b's staged records (reset, free) */
void spool_db_blog_unstage(struct spool_db_batch *b);
/* spool_db_blog_flush - write and fdatasync b's staged records; 0 or -errno (b keeps its place: commit it
 * again, or reset it) */
int spool_db_blog_flush(struct spool_db *db, struct spool_db_batch *b);
/* spool_db_blog_read - the body a locator value points to into dst; -ENOBUFS (*len set) when cap is short,
 * -EBADMSG when the record is missing or does not match */
int spool_db_blog_read(struct spool_db *db, const uint8_t key[MSGID_BYTES], const void *loc, size_t loclen,
                       void *dst, size_t cap, size_t *len);

/* spool_db_logrec_find_next - after open: continue after the newest record left */
void spool_db_logrec_find_next(struct spool_db *db);
/* spool_db_tsa_find_next - after open: continue after the newest firing stored */
void spool_db_tsa_find_next(struct spool_db *db);
/* spool_db_quarantine_add - move one envelope (key and value as read) into quarantine, in wb */
void spool_db_quarantine_add(struct spool_db *db, rocksdb_writebatch_t *wb, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen, const char *reason);

#endif
