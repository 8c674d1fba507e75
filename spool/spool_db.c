/*
 * spool_db - the spool's durable store on RocksDB (contract in spool_db.h)
 *
 * Everything the spool promises rests on one call: rocksdb_write() with sync=true, made
 * once per group commit. Envelope and body of a message always travel in the same write
 * batch, so a crash or a failed write never leaves one without the other.
 * Bytes read back from disk are untrusted: envelopes go through proto_env_decode().
 * This file: errors, open/close/recover, batches and commit, reads, free space; the log
 * write-ahead is in spool_db_logrec.c, the walk in spool_db_walk.c, quarantine records in
 * spool_db_quarantine.c.
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

static const char *const cf_names[CF__COUNT] = {
    "default", SPOOL_DB_CF_ENVELOPES, SPOOL_DB_CF_BODIES, SPOOL_DB_CF_QUARANTINE,
    SPOOL_DB_CF_LOGAHEAD, SPOOL_DB_CF_TSA, SPOOL_DB_CF_SUPPRESSION, SPOOL_DB_CF_BODYLOG,
};

/* ---- errors ---- */

/* RocksDB's Status text is all the C API gives; map the causes we act on to errno */
static int db_errno(const char *text)
{
    static const struct {
        const char *needle;
        int err;
    } map[] = {
        { "No space left on device", ENOSPC },
        { "While lock file", EBUSY },       /* another process holds the LOCK file */
        { "lock hold by current process", EBUSY },
        { "Permission denied", EACCES },
        { "Read-only file system", EROFS },
        { "Corruption", EBADMSG },
        { "Invalid argument", EINVAL },
        { "does not exist", ENOENT },
        { "Not found", ENOENT },
    };
    if (text == NULL)
        return EIO;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strstr(text, map[i].needle) != NULL)
            return map[i].err;
    return EIO;
}

int spool_db_fail(struct spool_db *db, char *rerr, const char *what)
{
    int e = db_errno(rerr);
    free(db->errtext);
    db->errtext = xasprintf("%s: %s", what, rerr ? rerr : "unknown error");
    rocksdb_free(rerr);
    return -e;
}

int spool_db_closed(struct spool_db *db)
{
    free(db->errtext);
    db->errtext = xstrdup("database is closed after a failed recover");
    return -EIO;
}

int spool_db_iter_done(struct spool_db *db, rocksdb_iterator_t *it, int rc, const char *what)
{
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr != NULL)
            rc = spool_db_fail(db, rerr, what);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

bool spool_db_write_stalled(const struct spool_db *db)
{
    uint64_t stopped = 0, delayed = 0;
    if (db->rdb == NULL)
        return false;
    if (rocksdb_property_int(db->rdb, "rocksdb.is-write-stopped", &stopped) != 0)
        stopped = 0;
    if (rocksdb_property_int(db->rdb, "rocksdb.actual-delayed-write-rate", &delayed) != 0)
        delayed = 0;
    return stopped != 0 || delayed != 0;
}

const char *spool_db_error(const struct spool_db *db)
{
    return db->errtext ? db->errtext : "";
}

const char *spool_db_dir(const struct spool_db *db)
{
    return db->dir;
}

bool spool_db_needs_recover(const struct spool_db *db)
{
    return db->needs_recover || db->rdb == NULL;
}

void spool_db_stats_get(const struct spool_db *db, struct spool_db_stats *out)
{
    *out = db->stats;
}

/* ---- open / close ---- */

static void db_build_options(struct spool_db *db)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_paranoid_checks(o, 1);
    /* a torn last WAL record (crash or failed write mid-append) is dropped, never half-applied */
    rocksdb_options_set_wal_recovery_mode(o, 2 /* kPointInTimeRecovery */);
    /* why the LOG is quiet by default: see struct spool_db_opts */
    rocksdb_options_set_info_log_level(o, db->opts.rocksdb_info_log ? 1 /* INFO */ : 4 /* FATAL */);
    if (db->opts.rocksdb_log_dir != NULL)
        rocksdb_options_set_db_log_dir(o, db->opts.rocksdb_log_dir);
    rocksdb_options_set_keep_log_file_num(o, 5);
    rocksdb_options_set_max_log_file_size(o, 16u << 20);
    rocksdb_options_set_write_buffer_size(o, db->opts.write_buffer_bytes);
    /* for spool_db_wal_syncs(); tickers cost little next to an fsync per commit */
    rocksdb_options_enable_statistics(o);
    db->dbopt = o;

    for (int i = 0; i < CF__COUNT; i++)
        db->cfopt[i] = rocksdb_options_create_copy(o);
    if (!db->opts.no_blob_files) {
        rocksdb_options_t *b = db->cfopt[CF_BODIES];
        rocksdb_options_set_enable_blob_files(b, 1);
        rocksdb_options_set_min_blob_size(b, db->opts.min_blob_bytes);
        /* bodies are deleted soon after delivery: let compaction reclaim their blob files */
        rocksdb_options_set_enable_blob_gc(b, 1);
        /* compressed in background flushes, off the commit path; LZ4 is cheap on 2 cores */
        rocksdb_options_set_blob_compression_type(b, rocksdb_lz4_compression);
    }

    db->wsync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wsync, 1);
    db->wnosync = rocksdb_writeoptions_create();
    db->ropt = rocksdb_readoptions_create();
    db->rwalk = rocksdb_readoptions_create();
    /* one pass over every envelope at start must not evict the hot blocks */
    rocksdb_readoptions_set_fill_cache(db->rwalk, 0);
}

static int db_open_rocks(struct spool_db *db)
{
    char *rerr = NULL;
    db->rdb = rocksdb_open_column_families(db->dbopt, db->dir, CF__COUNT, cf_names,
        (const rocksdb_options_t *const *)db->cfopt, db->cf, &rerr);
    if (rerr != NULL) {
        db->rdb = NULL;
        memset(db->cf, 0, sizeof(db->cf));
        return spool_db_fail(db, rerr, "open");
    }
    db->needs_recover = false;
    db->write_errno = 0;
    spool_db_logrec_find_next(db);
    spool_db_tsa_find_next(db);
    return 0;
}

static void db_close_rocks(struct spool_db *db)
{
    if (db->rdb == NULL)
        return;
    for (int i = 0; i < CF__COUNT; i++) {
        if (db->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(db->cf[i]);
        db->cf[i] = NULL;
    }
    rocksdb_close(db->rdb);
    db->rdb = NULL;
}

static void db_free(struct spool_db *db)
{
    spool_db_compact_stop(db);
    spool_db_blog_close(db);
    if (db->compact.lock_init)
        pthread_mutex_destroy(&db->compact.lock);
    db_close_rocks(db);
    spool_db_undo_free(db);
    free(db->undo_path);
    for (int i = 0; i < CF__COUNT; i++)
        if (db->cfopt[i] != NULL)
            rocksdb_options_destroy(db->cfopt[i]);
    if (db->dbopt != NULL)
        rocksdb_options_destroy(db->dbopt);
    if (db->wsync != NULL)
        rocksdb_writeoptions_destroy(db->wsync);
    if (db->wnosync != NULL)
        rocksdb_writeoptions_destroy(db->wnosync);
    if (db->ropt != NULL)
        rocksdb_readoptions_destroy(db->ropt);
    if (db->rwalk != NULL)
        rocksdb_readoptions_destroy(db->rwalk);
    free(db->errtext);
    free(db->dir);
    free(db);
}

int spool_db_open(const char *dir, const struct spool_db_opts *opts, struct spool_db **out, char **err)
{
    struct spool_db *db = xcalloc(1, sizeof(*db));
    db->dir = xstrdup(dir);
    if (opts != NULL)
        db->opts = *opts;
    if (db->opts.write_buffer_bytes == 0)
        db->opts.write_buffer_bytes = 64u << 20;
    if (db->opts.min_blob_bytes == 0)
        db->opts.min_blob_bytes = 4096;
    if (db->opts.body_log_min_bytes == 0)
        db->opts.body_log_min_bytes = 4096;
    if (db->opts.body_log_segment_bytes == 0)
        db->opts.body_log_segment_bytes = 64u << 20;
    spool_db_blog_init(db); /* before anything can fail: db_free closes what the body log holds */
    db->undo_path = db->opts.undo_file ? xstrdup(db->opts.undo_file) : NULL;
    db->opts.undo_file = NULL;
    db_build_options(db);

    int rc = db_open_rocks(db);
    if (rc == 0)
        rc = spool_db_undo_load(db);
    if (rc == 0)
        rc = spool_db_blog_open(db);
    if (rc < 0) {
        if (err != NULL)
            *err = xasprintf("spool %s: %s", dir, db->errtext);
        db_free(db);
        *out = NULL;
        return rc;
    }
    log_info("spool: opened %s (bodies of %" PRIu64 " bytes and more in %s, the others in %s, min blob %" PRIu64
             " bytes)", dir, db->opts.body_log_min_bytes, db->opts.body_log_off ? "RocksDB" : "the body log",
             db->opts.no_blob_files ? "SST files" : "blob files", db->opts.min_blob_bytes);
    *out = db;
    return 0;
}

void spool_db_close(struct spool_db *db)
{
    if (db == NULL)
        return;
    db_free(db);
}

int spool_db_probe(const char *dir)
{
    char *path = xasprintf("%s/.probe", dir);
    int rc = 0, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, "p", 1) != 1 || fdatasync(fd) < 0)
        rc = errno ? -errno : -EIO;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    free(path);
    return rc;
}

int spool_db_recover(struct spool_db *db)
{
    int probe = spool_db_probe(db->dir);
    if (probe < 0) {
        free(db->errtext);
        db->errtext = xasprintf("the file system still fails writes (probe: %s)", strerror(-probe));
        return probe;
    }
    spool_db_compact_stop(db);
    db_close_rocks(db);
    int rc = db_open_rocks(db);
    if (rc < 0) {
        log_error("spool: reopen of %s failed: %s", db->dir, db->errtext);
        return rc;
    }
    /* before anything else is written: the failed commits' records the WAL replay brought back */
    rc = spool_db_undo_apply(db);
    if (rc < 0) {
        log_error("spool: reopened %s, but the undo of a failed commit failed: %s", db->dir, db->errtext);
        return rc;
    }
    db->stats.reopens++;
    log_info("spool: reopened %s", db->dir);
    return 0;
}

int64_t spool_db_wal_syncs(struct spool_db *db)
{
    char *s = rocksdb_options_statistics_get_string(db->dbopt);
    if (s == NULL)
        return -1;
    int64_t n = -1;
    const char *p = strstr(s, "rocksdb.wal.synced COUNT : ");
    if (p != NULL)
        n = strtoll(p + strlen("rocksdb.wal.synced COUNT : "), NULL, 10);
    rocksdb_free(s);
    return n;
}

/* ---- batches and commit ---- */

struct spool_db_batch *spool_db_batch_new(struct spool_db *db)
{
    struct spool_db_batch *b = xcalloc(1, sizeof(*b));
    b->db = db;
    b->wb = rocksdb_writebatch_create();
    buf_init(&b->enc);
    buf_init(&b->touched);
    buf_init(&b->blog);
    return b;
}

void spool_db_batch_free(struct spool_db_batch *b)
{
    if (b == NULL)
        return;
    spool_db_blog_unstage(b);
    buf_fini(&b->blog);
    rocksdb_writebatch_destroy(b->wb);
    buf_fini(&b->enc);
    buf_fini(&b->touched);
    free(b);
}

void spool_db_batch_reset(struct spool_db_batch *b)
{
    rocksdb_writebatch_clear(b->wb);
    spool_db_blog_unstage(b);
    b->relocs = b->reloc_bytes = 0;
    b->stores = b->updates = b->deletes = b->logrecs = b->tsas = b->supps = 0;
    b->touched.len = 0;
    b->logrec_lo = b->logrec_hi = b->tsa_lo = b->tsa_hi = 0;
}

size_t spool_db_batch_count(const struct spool_db_batch *b)
{
    return b->stores + b->updates + b->deletes;
}

int spool_db_batch_store(struct spool_db_batch *b, struct msgid id, const struct proto_env *rec,
    const void *body, size_t body_len)
{
    struct spool_db *db = b->db;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    int rc = proto_env_encode(rec, &b->enc);
    if (rc < 0)
        return rc;
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    rocksdb_writebatch_put_cf(b->wb, db->cf[CF_ENVELOPES], (const char *)key, sizeof(key),
        (const char *)b->enc.data, b->enc.len);
    uint8_t loc[SPOOL_DB_BLOG_LOC_BYTES];
    if (spool_db_blog_stage(b, key, body, body_len, loc) == 0) {
        rocksdb_writebatch_put_cf(b->wb, db->cf[CF_BODYLOG], (const char *)key, sizeof(key), (const char *)loc,
                                  sizeof(loc));
        spool_db_batch_touch(b, CF_BODYLOG, key, sizeof(key));
    } else {
        rocksdb_writebatch_put_cf(b->wb, db->cf[CF_BODIES], (const char *)key, sizeof(key),
            body_len ? (const char *)body : "", body_len);
        spool_db_batch_touch(b, CF_BODIES, key, sizeof(key));
    }
    spool_db_batch_touch(b, CF_ENVELOPES, key, sizeof(key));
    b->stores++;
    return 0;
}

int spool_db_batch_update(struct spool_db_batch *b, struct msgid id, const struct proto_env *rec)
{
    struct spool_db *db = b->db;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    int rc = proto_env_encode(rec, &b->enc);
    if (rc < 0)
        return rc;
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    rocksdb_writebatch_put_cf(b->wb, db->cf[CF_ENVELOPES], (const char *)key, sizeof(key),
        (const char *)b->enc.data, b->enc.len);
    spool_db_batch_touch(b, CF_ENVELOPES, key, sizeof(key));
    b->updates++;
    return 0;
}

int spool_db_batch_delete(struct spool_db_batch *b, struct msgid id)
{
    struct spool_db *db = b->db;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    rocksdb_writebatch_delete_cf(b->wb, db->cf[CF_ENVELOPES], (const char *)key, sizeof(key));
    rocksdb_writebatch_delete_cf(b->wb, db->cf[CF_BODIES], (const char *)key, sizeof(key));
    rocksdb_writebatch_delete_cf(b->wb, db->cf[CF_BODYLOG], (const char *)key, sizeof(key));
    spool_db_batch_touch(b, CF_ENVELOPES, key, sizeof(key));
    spool_db_batch_touch(b, CF_BODIES, key, sizeof(key));
    spool_db_batch_touch(b, CF_BODYLOG, key, sizeof(key));
    b->deletes++;
    return 0;
}

int spool_db_write(struct spool_db *db, rocksdb_writebatch_t *wb, bool sync, const char *what)
{
    /* the failed WAL writer must not be touched again before a reopen */
    if (db->needs_recover)
        return -db->write_errno;
    char *rerr = NULL;
    rocksdb_write(db->rdb, sync ? db->wsync : db->wnosync, wb, &rerr);
    if (rerr != NULL) {
        int rc = spool_db_fail(db, rerr, what);
        /*
         * RocksDB turns a failed WAL write into a background error and refuses writes until
         * resumed; the C API cannot resume, so the owner must spool_db_recover().
         */
        if (rc != -EINVAL) {
            db->needs_recover = true;
            db->write_errno = -rc;
        }
        return rc;
    }
    return 0;
}

int spool_db_commit(struct spool_db *db, struct spool_db_batch *b)
{
    ASSERT(b->db == db);
    if (spool_db_batch_count(b) == 0 && b->logrecs == 0 && b->tsas == 0 && b->supps == 0 && b->relocs == 0)
        return 0;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    /* the bodies first: a locator that reaches the disk always points to a body already there */
    int rc = db->needs_recover ? -db->write_errno : spool_db_blog_flush(db, b);
    if (rc < 0) {
        db->stats.commit_failures++;
        log_warn("spool: commit of %zu messages failed (%s): %s", spool_db_batch_count(b), strerror(-rc),
                 db->errtext);
        return rc;
    }
    bool reaches_rocksdb = !db->needs_recover; /* else spool_db_write refuses without writing anything */
    rc = spool_db_write(db, b->wb, true, "commit");
    if (rc < 0) {
        /* its WAL record may be in the file, whole: a reopen must not bring it back */
        if (reaches_rocksdb && db->needs_recover)
            spool_db_undo_add(db, b);
        db->stats.commit_failures++;
        log_warn("spool: commit of %zu messages failed (%s): %s", spool_db_batch_count(b),
            strerror(-rc), db->errtext);
        return rc;
    }
    db->stats.commits++;
    db->stats.stored += b->stores;
    db->stats.updated += b->updates;
    db->stats.deleted += b->deletes;
    db->stats.logrecs += b->logrecs;
    return 0;
}

int spool_db_store(struct spool_db *db, struct msgid id, const struct proto_env *rec,
    const void *body, size_t body_len)
{
    struct spool_db_batch *b = spool_db_batch_new(db);
    int rc = spool_db_batch_store(b, id, rec, body, body_len);
    if (rc == 0)
        rc = spool_db_commit(db, b);
    spool_db_batch_free(b);
    return rc;
}

static int db_get(struct spool_db *db, int cf, struct msgid id, rocksdb_pinnableslice_t **out)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    char *rerr = NULL;
    *out = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[cf], (const char *)key, sizeof(key), &rerr);
    if (rerr != NULL) {
        *out = NULL;
        return spool_db_fail(db, rerr, "get");
    }
    return *out == NULL ? -ENOENT : 0;
}

int spool_db_update(struct spool_db *db, struct msgid id, const struct proto_env *rec)
{
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_ENVELOPES, id, &ps);
    if (rc < 0)
        return rc;
    rocksdb_pinnableslice_destroy(ps);
    struct spool_db_batch *b = spool_db_batch_new(db);
    rc = spool_db_batch_update(b, id, rec);
    if (rc == 0)
        rc = spool_db_commit(db, b);
    spool_db_batch_free(b);
    return rc;
}

int spool_db_delete(struct spool_db *db, struct msgid id)
{
    struct spool_db_batch *b = spool_db_batch_new(db);
    int rc = spool_db_batch_delete(b, id);
    if (rc == 0)
        rc = spool_db_commit(db, b);
    spool_db_batch_free(b);
    return rc;
}

/* ---- reads ---- */

int spool_db_get_envelope(struct spool_db *db, struct msgid id, struct proto_env *out)
{
    memset(out, 0, sizeof(*out));
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_ENVELOPES, id, &ps);
    if (rc < 0)
        return rc;
    size_t len;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    const char *why = NULL;
    rc = proto_env_decode(v, len, out, &why);
    rocksdb_pinnableslice_destroy(ps);
    if (rc < 0) {
        char text[MSGID_TEXT_SIZE];
        msgid_format(id, text);
        free(db->errtext);
        db->errtext = xasprintf("envelope %s: %s", text, why);
    }
    return rc;
}

/* blog_get - the body of a message whose locator is in the body log: 0, 1 when there is none, -errno */
static int blog_get(struct spool_db *db, struct msgid id, struct buf *grow, void *dst, size_t cap, size_t *len)
{
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_BODYLOG, id, &ps);
    if (rc == -ENOENT)
        return 1;
    if (rc < 0)
        return rc;
    uint8_t key[MSGID_BYTES];
    msgid_to_bytes(id, key);
    size_t n;
    const char *v = rocksdb_pinnableslice_value(ps, &n);
    if (grow != NULL) {
        struct spool_db_blog_loc l;
        const char *why;
        rc = spool_db_blog_loc_decode(v, n, &l, &why);
        if (rc == 0) {
            grow->len = 0;
            buf_reserve(grow, l.len ? l.len : 1);
            rc = spool_db_blog_read(db, key, v, n, grow->data, l.len, len);
            grow->len = rc == 0 ? *len : 0;
        } else {
            rc = spool_db_blog_read(db, key, v, n, NULL, 0, len); /* says why in errtext */
        }
    } else {
        rc = spool_db_blog_read(db, key, v, n, dst, cap, len);
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int spool_db_body_where(struct spool_db *db, struct msgid id, struct spool_db_blog_loc *loc)
{
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_BODYLOG, id, &ps);
    if (rc == 0) {
        size_t n;
        const char *v = rocksdb_pinnableslice_value(ps, &n);
        const char *why;
        rc = spool_db_blog_loc_decode(v, n, loc, &why);
        rocksdb_pinnableslice_destroy(ps);
        return rc < 0 ? -EBADMSG : 1;
    }
    if (rc != -ENOENT)
        return rc;
    rc = db_get(db, CF_BODIES, id, &ps);
    if (rc == 0)
        rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int spool_db_get_body(struct spool_db *db, struct msgid id, struct buf *out)
{
    size_t blen;
    int brc = blog_get(db, id, out, NULL, 0, &blen);
    if (brc <= 0)
        return brc;
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_BODIES, id, &ps);
    if (rc < 0)
        return rc;
    size_t len;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    out->len = 0;
    buf_reserve(out, len ? len : 1);
    buf_append(out, v, len);
    rocksdb_pinnableslice_destroy(ps);
    return 0;
}

int spool_db_read_body(struct spool_db *db, struct msgid id, void *dst, size_t cap, size_t *len)
{
    int brc = blog_get(db, id, NULL, dst, cap, len);
    if (brc <= 0)
        return brc;
    rocksdb_pinnableslice_t *ps;
    int rc = db_get(db, CF_BODIES, id, &ps);
    if (rc < 0)
        return rc;
    size_t n;
    const char *v = rocksdb_pinnableslice_value(ps, &n);
    *len = n;
    if (n > cap)
        rc = -ENOBUFS;
    else if (n > 0)
        memcpy(dst, v, n);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

/* ---- free space ---- */

int spool_db_free_bytes(const char *dir, uint64_t *out)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) < 0)
        return -errno;
    *out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}

bool spool_db_space_low(const char *dir, uint64_t min_free)
{
    uint64_t avail = 0;
    int rc = spool_db_free_bytes(dir, &avail);
    if (rc < 0) {
        /* fail closed: refusing mail for a while is better than accepting what cannot be kept */
        log_warn("spool: cannot read free space of %s: %s", dir, strerror(-rc));
        return true;
    }
    return avail < min_free;
}