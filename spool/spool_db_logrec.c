/*
 * spool_db_logrec - the log write-ahead in the "logahead" column family (contract in spool_db.h)
 *
 * Keys are 8-byte big-endian sequence numbers, so key order is write order; a record is added to
 * the write batch of the state change it describes and trimmed (range delete) once the log file
 * holding it is fsynced.
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "base/log.h"

#define LOGREC_KEY SPOOL_DB_SEQ_KEY

void spool_db_logrec_find_next(struct spool_db *db)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_LOGAHEAD]);
    rocksdb_iter_seek_to_last(it);
    uint64_t next = 1;
    size_t klen;
    const char *k;
    if (rocksdb_iter_valid(it) && (k = rocksdb_iter_key(it, &klen)) != NULL && klen == LOGREC_KEY)
        next = spool_db_be64_key((const uint8_t *)k) + 1;
    rocksdb_iter_destroy(it);
    /* a reopen after a failed write keeps counting up: the failed batch's numbers stay unused */
    if (next > db->logrec_next)
        db->logrec_next = next;
}

int spool_db_logrec_add(struct spool_db_batch *b, const char *line, size_t len, uint64_t *seq)
{
    struct spool_db *db = b->db;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (len == 0 || memchr(line, '\n', len) != NULL)
        return -EINVAL; /* one record is one line */
    uint8_t key[LOGREC_KEY];
    uint64_t s = db->logrec_next++;
    spool_db_key_be64(s, key);
    rocksdb_writebatch_put_cf(b->wb, db->cf[CF_LOGAHEAD], (const char *)key, sizeof(key), line, len);
    b->logrecs++;
    spool_db_batch_seq(&b->logrec_lo, &b->logrec_hi, s);
    if (seq != NULL)
        *seq = s;
    return 0;
}

size_t spool_db_logrec_count(const struct spool_db_batch *b)
{
    return b->logrecs;
}

uint64_t spool_db_logrec_next(const struct spool_db *db)
{
    return db->logrec_next;
}

int spool_db_logrec_scan(struct spool_db *db, uint64_t from, size_t max, spool_db_logrec_fn fn, void *arg)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (max > INT_MAX)
        max = INT_MAX;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_LOGAHEAD]);
    uint8_t key[LOGREC_KEY];
    spool_db_key_be64(from, key);
    size_t n = 0;
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)key, sizeof(key)); n < max && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen != LOGREC_KEY) {
            log_warn("spool: log write-ahead key of %zu bytes skipped", klen);
            continue;
        }
        n++;
        rc = fn(arg, spool_db_be64_key((const uint8_t *)k), v, vlen);
        if (rc != 0)
            break;
    }
    rc = spool_db_iter_done(db, it, rc, "log write-ahead scan");
    return rc != 0 ? rc : (int)n;
}

int spool_db_logrec_trim(struct spool_db *db, uint64_t upto, bool sync)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (upto == UINT64_MAX)
        return -EINVAL;
    uint8_t lo[LOGREC_KEY], hi[LOGREC_KEY];
    spool_db_key_be64(0, lo);
    spool_db_key_be64(upto + 1, hi); /* the end of a range delete is exclusive */
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range_cf(wb, db->cf[CF_LOGAHEAD], (const char *)lo, sizeof(lo),
        (const char *)hi, sizeof(hi));
    int rc = spool_db_write(db, wb, sync, "log write-ahead trim");
    rocksdb_writebatch_destroy(wb);
    if (rc == 0)
        db->stats.logrec_trims++;
    return rc;
}
