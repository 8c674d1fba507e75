/*
 * spool_db_tsa - the traffic shaping automation's firings in the "tsa" column family (contract in
 * spool_db.h)
 *
 * Keys are 8-byte big-endian sequence numbers, so key order is write order; the next number is found
 * again at open. The firings more than SPOOL_DB_TSA_KEEP behind a new one are range-deleted in the
 * same write batch, so the family stays bounded without a separate trim.
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <limits.h>

#include "base/log.h"

void spool_db_tsa_find_next(struct spool_db *db)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_TSA]);
    rocksdb_iter_seek_to_last(it);
    uint64_t next = 1;
    size_t klen;
    const char *k;
    if (rocksdb_iter_valid(it) && (k = rocksdb_iter_key(it, &klen)) != NULL && klen == SPOOL_DB_SEQ_KEY)
        next = spool_db_be64_key((const uint8_t *)k) + 1;
    rocksdb_iter_destroy(it);
    if (next > db->tsa_next)
        db->tsa_next = next;
}

int spool_db_batch_tsa_add(struct spool_db_batch *b, const void *run, size_t len)
{
    struct spool_db *db = b->db;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (len == 0)
        return -EINVAL;
    uint8_t key[SPOOL_DB_SEQ_KEY];
    uint64_t s = db->tsa_next++;
    spool_db_key_be64(s, key);
    rocksdb_writebatch_put_cf(b->wb, db->cf[CF_TSA], (const char *)key, sizeof(key), run, len);
    b->tsas++;
    spool_db_batch_seq(&b->tsa_lo, &b->tsa_hi, s);
    if (s > SPOOL_DB_TSA_KEEP) {
        uint8_t lo[SPOOL_DB_SEQ_KEY], hi[SPOOL_DB_SEQ_KEY];
        spool_db_key_be64(0, lo);
        spool_db_key_be64(s - SPOOL_DB_TSA_KEEP + 1, hi); /* exclusive: keeps the newest KEEP */
        rocksdb_writebatch_delete_range_cf(b->wb, db->cf[CF_TSA], (const char *)lo, sizeof(lo), (const char *)hi,
                                           sizeof(hi));
    }
    return 0;
}

int spool_db_tsa_scan(struct spool_db *db, spool_db_tsa_fn fn, void *arg)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_TSA]);
    int n = 0, rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it) && n < INT_MAX; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen != SPOOL_DB_SEQ_KEY) {
            log_warn("spool: TSA history key of %zu bytes skipped", klen);
            continue;
        }
        n++;
        rc = fn(arg, spool_db_be64_key((const uint8_t *)k), v, vlen);
        if (rc != 0)
            break;
    }
    rc = spool_db_iter_done(db, it, rc, "TSA history scan");
    return rc != 0 ? rc : n;
}
