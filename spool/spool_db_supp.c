/*
 * spool_db_supp - the suppression list's column family (contract in spool_db.h; the list's rules are in
 * spool_supp.c)
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <stdlib.h>

#include "base/buf.h"

int spool_db_batch_supp_put(struct spool_db_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (b->db->rdb == NULL)
        return spool_db_closed(b->db);
    if (klen == 0 || klen > UINT16_MAX)
        return -EINVAL;
    rocksdb_writebatch_put_cf(b->wb, b->db->cf[CF_SUPPRESSION], key, klen, val, vlen);
    spool_db_batch_touch(b, CF_SUPPRESSION, key, klen); /* a failed commit takes it back (spool_db_undo.c) */
    b->supps++;
    return 0;
}

int spool_db_batch_supp_del(struct spool_db_batch *b, const void *key, size_t klen)
{
    if (b->db->rdb == NULL)
        return spool_db_closed(b->db);
    if (klen == 0 || klen > UINT16_MAX)
        return -EINVAL;
    rocksdb_writebatch_delete_cf(b->wb, b->db->cf[CF_SUPPRESSION], key, klen);
    spool_db_batch_touch(b, CF_SUPPRESSION, key, klen);
    b->supps++;
    return 0;
}

int spool_db_supp_get(struct spool_db *db, const void *key, size_t klen, struct buf *out)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[CF_SUPPRESSION], key, klen, &rerr);
    if (rerr != NULL)
        return spool_db_fail(db, rerr, "suppression read");
    if (ps == NULL)
        return -ENOENT;
    size_t vlen = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    out->len = 0;
    buf_append(out, v, vlen);
    rocksdb_pinnableslice_destroy(ps);
    return 0;
}

int spool_db_supp_scan(struct spool_db *db, const void *after, size_t alen, size_t max, spool_db_supp_fn fn,
                       void *arg)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_SUPPRESSION]);
    int n = 0, rc = 0;
    if (after) {
        rocksdb_iter_seek(it, after, alen);
        size_t klen;
        const char *k;
        /* the cursor itself was handed over by the previous page */
        if (rocksdb_iter_valid(it) && (k = rocksdb_iter_key(it, &klen)) != NULL && klen == alen &&
            memcmp(k, after, alen) == 0)
            rocksdb_iter_next(it);
    } else {
        rocksdb_iter_seek_to_first(it);
    }
    for (; rocksdb_iter_valid(it) && (size_t)n < max && n < INT_MAX; rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        n++;
        rc = fn(arg, k, klen, v, vlen);
        if (rc != 0)
            break;
    }
    rc = spool_db_iter_done(db, it, rc, "suppression scan");
    return rc != 0 ? rc : n;
}
