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
    CF__COUNT = 7,
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
};

struct spool_db_batch {
    struct spool_db *db;
    rocksdb_writebatch_t *wb;
    size_t stores, updates, deletes, logrecs, tsas, supps;
    struct buf enc;
    struct buf touched;          /* column family, key length and key of each envelope, body or suppression
                                  * put or delete (spool_db_batch_touch) */
    uint64_t logrec_lo, logrec_hi; /* sequence numbers of the batch's log records (0: none) */
    uint64_t tsa_lo, tsa_hi;       /* ... and of its TSA firings */
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

/* spool_db_logrec_find_next - after open: continue after the newest record left */
void spool_db_logrec_find_next(struct spool_db *db);
/* spool_db_tsa_find_next - after open: continue after the newest firing stored */
void spool_db_tsa_find_next(struct spool_db *db);
/* spool_db_quarantine_add - move one envelope (key and value as read) into quarantine, in wb */
void spool_db_quarantine_add(struct spool_db *db, rocksdb_writebatch_t *wb, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen, const char *reason);

#endif
