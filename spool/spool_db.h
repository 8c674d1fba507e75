/*
 * spool_db - the spool's durable store: RocksDB with group commit, start-up walk, quarantine
 *
 * spool_db_open() opens or creates the database in a directory with three column families:
 * "envelopes" (key: 16-byte msgid, value: proto_env), "bodies" (key: msgid, value: the raw
 * message; RocksDB blob files keep large values out of the LSM tree) and "quarantine"
 * (records that failed to decode, with the reason; never silently deleted).
 * Group commit: add any number of stores, updates and deletes to a spool_db_batch, then
 * spool_db_commit() writes them as ONE RocksDB write batch with sync=true: one WAL fsync
 * covers all of them, and either all of them are visible afterwards or none is.
 * A fourth family, "logahead", holds the write-ahead of log records (see "log write-ahead"
 * below); the walk never reads it. A fifth, "tsa", keeps the traffic shaping automation's
 * firings (see "TSA history" below).
 * The walk reads envelopes in key order (= creation order) in bounded steps with a resume
 * cursor and moves each undecodable record into quarantine (one atomic batch per step).
 * Files: spool_db.c (open, errors, batches and commit, reads, free space), spool_db_logrec.c
 * (log write-ahead), spool_db_walk.c (the walk), spool_db_quarantine.c (quarantine records).
 *
 * Errors: functions return 0 or -errno. RocksDB reports failures only as text; the text of
 * the last failure is kept (spool_db_error()) and mapped to an errno (ENOSPC, EIO, EBADMSG
 * for corruption, EBUSY when another process holds the lock, ...).
 * After a failed write RocksDB stops accepting writes (a "background error") and its file
 * writers must not be used again (Debian's build asserts). The 7.8 C API has no
 * rocksdb_resume(), so: after a failed commit every write is refused with the same -errno,
 * without calling RocksDB, until spool_db_recover() closes and reopens the database. The
 * reopen replays the WAL, which may hold the failed batch whole (its write succeeded, its fsync
 * failed: the bytes are in the page cache, not known to be on disk), so the reopen first writes
 * back the pre-images of everything the failed batch touched (spool_db_undo.c): the failed batch
 * stays absent, never replayed as if it were safe. Reads keep working meanwhile. spool_db_needs_recover() says when it is due; a
 * reopen needs some free space (RocksDB flushes the replayed WAL), so call it when
 * spool_db_space_low() turns false.
 * Threading: one thread uses a spool_db at a time (the spool is single-threaded); the one exception is the
 * compaction thread of spool_db_compact_start(), which only flushes and compacts.
 */
#ifndef RINGMAIL_SPOOL_DB_H
#define RINGMAIL_SPOOL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msgid.h"
#include "common/proto_env.h"

#define SPOOL_DB_CF_ENVELOPES "envelopes"
#define SPOOL_DB_CF_BODIES "bodies"
#define SPOOL_DB_CF_QUARANTINE "quarantine"
#define SPOOL_DB_CF_LOGAHEAD "logahead"
#define SPOOL_DB_CF_TSA "tsa"
#define SPOOL_DB_CF_SUPPRESSION "suppression"
#define SPOOL_DB_CF_BODYLOG "bodylog"

struct spool_db;
struct spool_db_batch;

/* options; a zeroed struct (or NULL) gives the defaults shown */
struct spool_db_opts {
    uint64_t write_buffer_bytes; /* memtable size per column family; 0 = 64 MiB */
    uint64_t min_blob_bytes;     /* bodies at least this big go to blob files; 0 = 4 KiB */
    bool no_blob_files;          /* keep bodies in SST files */
    /*
     * RocksDB's own LOG file. Debian's librocksdb 7.8 is built with assertions on, and its
     * LOG writer aborts the process on the first line after a failed write (ENOSPC on the
     * spool disk, found by spool_db_test enospc). So by default the LOG gets only its header
     * and fatal lines, and our own log carries the errors. Turn it up for debugging, and then
     * put it on another filesystem with rocksdb_log_dir.
     */
    bool rocksdb_info_log;       /* INFO level instead of FATAL */
    const char *rocksdb_log_dir; /* NULL = the spool directory */
    /* where the undo of a failed commit waits for the reopen (spool_db_undo.c): a file on a tmpfs, so
     * that it outlives the process (a restart of the spool) but not the machine, as the unsynced
     * bytes it takes back do; NULL = in memory only */
    const char *undo_file;
    /* the body log (see "body log" below): bodies of at least body_log_min_bytes (0 = 4 KiB) go to
     * segment files of about body_log_segment_bytes (0 = 64 MiB) instead of RocksDB; body_log_off keeps
     * every new body in RocksDB (bodies already in the log stay readable) */
    bool body_log_off;
    uint64_t body_log_min_bytes;
    uint64_t body_log_segment_bytes;
};

struct spool_db_stats {
    uint64_t commits;         /* successful spool_db_commit() calls = synced WAL writes */
    uint64_t commit_failures;
    uint64_t stored;          /* messages stored by successful commits */
    uint64_t updated;
    uint64_t deleted;
    uint64_t quarantined;     /* records moved into quarantine by walks */
    uint64_t reopens;         /* spool_db_recover() calls that succeeded */
    uint64_t logrecs;         /* write-ahead log records committed */
    uint64_t logrec_trims;    /* successful spool_db_logrec_trim() writes */
    uint64_t undone;          /* writes of failed commits taken back after a reopen (spool_db_undo.c) */
    /* the body log */
    uint64_t blog_records, blog_bytes;    /* records and bytes committed to segments */
    uint64_t blog_failures;               /* segment writes or fdatasyncs that failed (their commits failed) */
    uint64_t blog_read_errors;            /* reads that found a missing, short or mismatched record */
    uint64_t blog_segments_created, blog_segments_removed;
    uint64_t blog_segments_recycled;      /* dead segments kept as the spare the next segment is written over */
    uint64_t blog_relocated;              /* live bodies copied out of old, mostly dead segments */
};

/* spool_db_open - open or create at dir; on failure *err (if not NULL) gets a heap message */
int spool_db_open(const char *dir, const struct spool_db_opts *opts, struct spool_db **out, char **err);
/* spool_db_close - flushes nothing extra: every commit is already in the fsynced WAL */
void spool_db_close(struct spool_db *db);
/* spool_db_recover - close and reopen (after a failed write, e.g. ENOSPC); 0 or -errno */
int spool_db_recover(struct spool_db *db);
/*
 * spool_db_probe - write one byte to DIR/.probe and fdatasync it: 0 when the file system takes writes
 * again, -errno when not. RocksDB built with assertions (Debian's) aborts inside DB::Open when a write
 * fails during its recovery (a WAL writer used after its error), so the spool opens or reopens only
 * after a probe went through: a disk that still fails costs a retry, not a crash.
 */
int spool_db_probe(const char *dir);
bool spool_db_needs_recover(const struct spool_db *db);
/* spool_db_error - RocksDB's text for the last failure, or "" */
const char *spool_db_error(const struct spool_db *db);
const char *spool_db_dir(const struct spool_db *db);
/* spool_db_write_stalled - RocksDB delays or stops writes now (too many L0 files, compaction behind):
 * "rocksdb.is-write-stopped" or a non-zero "rocksdb.actual-delayed-write-rate" */
bool spool_db_write_stalled(const struct spool_db *db);
void spool_db_stats_get(const struct spool_db *db, struct spool_db_stats *out);
/*
 * spool_db_wal_syncs - RocksDB's own count of WAL syncs ("rocksdb.wal.synced") since open,
 * read from its statistics, so tests can check one fsync per group commit independently
 * of our counters; -1 if unavailable.
 */
int64_t spool_db_wal_syncs(struct spool_db *db);

/* ---- group commit ---- */

/*
 * A batch belongs to one db (it records column family ids, which survive spool_db_recover()).
 * Operations are applied in the order added. Nothing is visible before spool_db_commit().
 */
struct spool_db_batch *spool_db_batch_new(struct spool_db *db);
void spool_db_batch_free(struct spool_db_batch *b);
void spool_db_batch_reset(struct spool_db_batch *b);
/* number of messages in the batch (stores + updates + deletes); log records do not count */
size_t spool_db_batch_count(const struct spool_db_batch *b);
/* spool_db_batch_store - envelope and body of a new message; -EINVAL if rec does not encode */
int spool_db_batch_store(struct spool_db_batch *b, struct msgid id, const struct proto_env *rec,
    const void *body, size_t body_len);
/* spool_db_batch_update - replace the envelope (recipient states, attempts); body untouched */
int spool_db_batch_update(struct spool_db_batch *b, struct msgid id, const struct proto_env *rec);
/* spool_db_batch_delete - envelope and body */
int spool_db_batch_delete(struct spool_db_batch *b, struct msgid id);
/*
 * spool_db_commit - one write batch, sync=true (one WAL fsync for everything in it).
 * Returns 0 when all of it is durable, else -errno with nothing of it applied. The batch
 * is left as it was either way: reset it before reuse (or commit it again after
 * spool_db_recover()). A batch without messages, log records and TSA firings is a no-op.
 */
int spool_db_commit(struct spool_db *db, struct spool_db_batch *b);

/* one-operation conveniences: each is a batch of one and a commit */
int spool_db_store(struct spool_db *db, struct msgid id, const struct proto_env *rec,
    const void *body, size_t body_len);
/* spool_db_update - -ENOENT if the message is not stored */
int spool_db_update(struct spool_db *db, struct msgid id, const struct proto_env *rec);
int spool_db_delete(struct spool_db *db, struct msgid id);

/* ---- log write-ahead (spool_db_logrec.c) ---- */

/*
 * The log writer buffers records for up to a second; a kill in that second would lose the
 * records of state that is already committed. So each record that describes a state change
 * travels in the write batch of that change (family "logahead", key: 8-byte big-endian
 * sequence number, value: the record's JSON line without '\n') and is deleted only once the
 * log file holding it is fsynced. Sequence numbers increase for the life of the database
 * (the next one is found again at open), so key order is write order; a failed commit
 * leaves a gap, which readers skip.
 */

/* spool_db_logrec_add - add one record to the batch; *seq (if not NULL) gets its sequence number */
int spool_db_logrec_add(struct spool_db_batch *b, const char *line, size_t len, uint64_t *seq);
/* spool_db_logrec_count - number of log records in the batch */
size_t spool_db_logrec_count(const struct spool_db_batch *b);
/* spool_db_logrec_next - the sequence number the next record will get (>= 1) */
uint64_t spool_db_logrec_next(const struct spool_db *db);

/* return 0 to go on; anything else stops the scan and is returned by it */
typedef int (*spool_db_logrec_fn)(void *arg, uint64_t seq, const char *line, size_t len);
/*
 * spool_db_logrec_scan - hands the committed records with seq >= from to fn, in sequence
 * order, at most max of them (line is valid during the call only). Returns the number
 * handed over, fn's non-zero value, or -errno.
 */
int spool_db_logrec_scan(struct spool_db *db, uint64_t from, size_t max, spool_db_logrec_fn fn, void *arg);
/*
 * spool_db_logrec_trim - delete every record with seq <= upto (one range delete). sync=false
 * costs no fsync: after a power loss the deletion may be lost and the records written to the
 * log again (at-least-once), never the other way round. 0 or -errno.
 */
int spool_db_logrec_trim(struct spool_db *db, uint64_t upto, bool sync);

/* ---- TSA history (spool_db_tsa.c) ---- */

#define SPOOL_DB_TSA_KEEP 10000 /* firings kept; older ones are deleted as new ones come */

/*
 * Keys are 8-byte big-endian sequence numbers (write order), values one proto_tsa event run of one
 * event, as the scheduler sent it. spool_db_batch_tsa_add() puts a firing into the batch of the pass
 * and, in the same batch, deletes the firings more than SPOOL_DB_TSA_KEEP behind it.
 */
int spool_db_batch_tsa_add(struct spool_db_batch *b, const void *run, size_t len);
/* return 0 to go on; value valid during the call only */
typedef int (*spool_db_tsa_fn)(void *arg, uint64_t seq, const void *run, size_t len);
/* spool_db_tsa_scan - every stored firing, oldest first; the count, fn's non-zero value, or -errno */
int spool_db_tsa_scan(struct spool_db *db, spool_db_tsa_fn fn, void *arg);

/* ---- reads ---- */

/* spool_db_get_envelope - 0, -ENOENT, -EBADMSG/-EPROTONOSUPPORT (undecodable) or -EIO... */
int spool_db_get_envelope(struct spool_db *db, struct msgid id, struct proto_env *out);
/* spool_db_get_body - replaces out's content with the body; 0 or -ENOENT or -errno */
int spool_db_get_body(struct spool_db *db, struct msgid id, struct buf *out);
/*
 * spool_db_read_body - copies the body into dst (e.g. an arena block); *len gets its size.
 * -ENOBUFS (with *len set) when cap is too small.
 */
int spool_db_read_body(struct spool_db *db, struct msgid id, void *dst, size_t cap, size_t *len);

/* ---- body log (spool_db_blog.c) ---- */

struct spool_db_blog_loc;
/* spool_db_body_where - where a message's body is: 1 in the body log (*loc filled), 0 in RocksDB, -ENOENT
 * nowhere, -EBADMSG when its locator does not decode, -errno */
int spool_db_body_where(struct spool_db *db, struct msgid id, struct spool_db_blog_loc *loc);

/*
 * Bodies of body_log_min_bytes and more are appended to segment files in DIR/bodylog; RocksDB's
 * "bodylog" family keeps a 32-byte locator per message (segment, offset, length, XXH3-64 of the body).
 * spool_db_commit() writes and fdatasyncs the batch's records before the RocksDB write that makes their
 * locators visible, so the group commit stays one atomic, durable step (two syncs instead of one, the
 * body bytes off RocksDB's WAL and memtables). Reads check the record against its locator and the body
 * against its hash (-EBADMSG when they differ). Bodies stored before, small ones, and any a batch cannot
 * stage stay in the "bodies" family; readers look in both.
 */
#define SPOOL_DB_BLOG_LOC_BYTES 32
#define SPOOL_DB_BLOG_HDR_BYTES 40
#define SPOOL_DB_BLOG_BODY_MAX (UINT32_C(1) << 30)
#define SPOOL_DB_BLOG_SEG_MAX (UINT64_C(1) << 40)

/*
 * spool_db_sweep - one bounded step of the body log's reclaim: reads up to max record headers of the
 * oldest sealed segment due for a look, unlinks a segment none of whose records is live any more, and
 * copies the live bodies of an old (10 minutes), mostly dead segment into the current one (one synced
 * batch per step) before unlinking it. Call it between commits; it does nothing while a batch holds
 * staged bodies. Returns the work done (0: nothing due).
 */
int spool_db_sweep(struct spool_db *db, size_t max);

struct spool_db_blog_status {
    uint64_t segments; /* segment files, the current one and the spare included */
    uint64_t bytes;    /* their size */
    uint64_t current;  /* number of the segment being appended to, 0 when none is open */
    uint64_t spare;    /* number of the recycled segment the next one will be, 0 when none */
};
void spool_db_blog_status(struct spool_db *db, struct spool_db_blog_status *out);
/* spool_db_blog_age - for tests: every segment looks ms older and due for a sweep now */
void spool_db_blog_age(struct spool_db *db, uint64_t ms);

/* the on-disk codecs, for the fuzz target and tests */
struct spool_db_blog_loc {
    uint64_t seg, off, hash;
    uint32_t len;
};
struct spool_db_blog_hdr {
    uint32_t len;
    uint8_t key[MSGID_BYTES];
    uint64_t hash;
};
void spool_db_blog_loc_encode(const struct spool_db_blog_loc *l, uint8_t out[SPOOL_DB_BLOG_LOC_BYTES]);
int spool_db_blog_loc_decode(const void *p, size_t n, struct spool_db_blog_loc *out, const char **why);
void spool_db_blog_hdr_encode(const struct spool_db_blog_hdr *h, uint8_t out[SPOOL_DB_BLOG_HDR_BYTES]);
int spool_db_blog_hdr_decode(const void *p, size_t n, struct spool_db_blog_hdr *out, const char **why);
uint64_t spool_db_blog_hash(const void *body, size_t len);
/* spool_db_blog_rec_size - header, body, padding to 8 */
size_t spool_db_blog_rec_size(uint32_t body_len);

/* ---- flush and full compaction (spool_db_compact.c) ---- */

/*
 * spool_db_compact_start() starts a flush and a full compaction of every column family on a thread of its
 * own and returns at once: 0, -EALREADY when one runs, or -errno. RocksDB's handle is thread-safe, so
 * commits go on meanwhile. spool_db_compact_status() is the progress (cheap: RocksDB properties).
 * spool_db_close() and spool_db_recover() stop a running compaction and join its thread first.
 */
struct spool_db_compact_status {
    uint64_t runs;             /* compactions started since open */
    bool running;
    uint64_t started_ms, finished_ms; /* unix ms of the last run; finished_ms 0 while it runs */
    unsigned families_done, families_total;
    int result;                /* of the last finished run: 0, -ECANCELED, -EIO (error says why) */
    char error[256];
    uint64_t running_compactions, running_flushes; /* RocksDB's, any cause */
    bool compaction_pending;
    uint64_t pending_bytes;    /* rocksdb.estimate-pending-compaction-bytes */
    uint64_t sst_bytes_before, sst_bytes; /* rocksdb.total-sst-files-size at the start and now */
};
int spool_db_compact_start(struct spool_db *db);
/* spool_db_shed - memory is low: every family's memtables are flushed to SST files in the background (the
 * WAL already holds them; RocksDB frees a memtable once it is flushed), without waiting. 0, -ENODEV when the
 * database is not open (recovering), -EIO when RocksDB refused; *memtable_bytes: their size before */
int spool_db_shed(struct spool_db *db, uint64_t *memtable_bytes);
void spool_db_compact_status(struct spool_db *db, struct spool_db_compact_status *out);
/* spool_db_compact_stop - stop a running compaction and join the thread (no-op when there is none); only
 * before the handle is closed (spool_db_close, spool_db_recover call it) */
void spool_db_compact_stop(struct spool_db *db);

/* ---- start-up walk (spool_db_walk.c) ---- */

/* return 0 to go on; anything else stops the walk step and is returned by it */
typedef int (*spool_db_walk_fn)(void *arg, struct msgid id, const struct proto_env *rec);

#define SPOOL_DB_CURSOR_MAX 64

struct spool_db_walk {
    uint8_t cursor[SPOOL_DB_CURSOR_MAX]; /* last envelope key examined (a longer one: its prefix) */
    size_t cursor_len;
    bool started;
    bool done;                   /* the end of the envelopes was reached */
    uint64_t walked;             /* records handed to the callback */
    uint64_t quarantined;        /* records moved to quarantine */
};

void spool_db_walk_init(struct spool_db_walk *w);
/*
 * spool_db_walk_step - examine up to max envelopes after the cursor. Each decodable one is
 * handed to fn; the others (bad key or value) are moved into quarantine with the reason,
 * counted and logged, in one atomic synced batch at the end of the step. Returns the
 * number of records examined (0 with w->done at the end), fn's non-zero value, or -errno.
 * Safe to interleave with commits: the cursor is a key, not an iterator.
 */
int spool_db_walk_step(struct spool_db *db, struct spool_db_walk *w, size_t max,
    spool_db_walk_fn fn, void *arg);

/* ---- quarantine (spool_db_quarantine.c) ---- */

struct spool_db_quarantined {
    const uint8_t *key; /* the original envelope key (normally a msgid, maybe not) */
    size_t key_len;
    uint64_t when_ms;   /* when it was quarantined */
    const char *reason; /* NUL-terminated */
    const uint8_t *value; /* the original envelope bytes, unchanged */
    size_t value_len;
};
typedef int (*spool_db_quarantine_fn)(void *arg, const struct spool_db_quarantined *q);
/*
 * spool_db_quarantine_list - hands every quarantined record to fn in key order (q is valid
 * during the call only); fn returning non-zero stops early. Returns the count or -errno.
 */
int spool_db_quarantine_list(struct spool_db *db, spool_db_quarantine_fn fn, void *arg);

/* ---- free space (DISK-01/02) ---- */

/* spool_db_free_bytes - bytes available to unprivileged writers on dir's filesystem */
int spool_db_free_bytes(const char *dir, uint64_t *out);
/* spool_db_space_low - below min_free bytes; also true when the space cannot be read */
bool spool_db_space_low(const char *dir, uint64_t min_free);

/* ---- suppression list (spool_db_supp.c) ---- */

/*
 * Family "suppression": key "TENANT\0ADDRESS" (tenant "" = global, address lower-cased), value the
 * entry's record as spool_supp.c encodes it. These are raw accessors; spool/spool_supp.h is the API.
 */
/* spool_db_batch_supp_put / _del - one entry into / out of the batch (committed with it) */
int spool_db_batch_supp_put(struct spool_db_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
int spool_db_batch_supp_del(struct spool_db_batch *b, const void *key, size_t klen);
/* spool_db_supp_get - the value into out (replaced); 0, -ENOENT or -errno */
int spool_db_supp_get(struct spool_db *db, const void *key, size_t klen, struct buf *out);
/* return 0 to go on; anything else stops the scan and is returned by it */
typedef int (*spool_db_supp_fn)(void *arg, const char *key, size_t klen, const char *val, size_t vlen);
/* spool_db_supp_scan - entries with key > after (NULL: from the first) in key order, at most max; the number
 * handed over, fn's non-zero value, or -errno */
int spool_db_supp_scan(struct spool_db *db, const void *after, size_t alen, size_t max, spool_db_supp_fn fn,
                       void *arg);

#endif
