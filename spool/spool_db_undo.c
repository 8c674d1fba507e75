/*
 * spool_db_undo - what a failed commit may have left in the WAL is taken back before writes resume
 *
 * A commit can fail after its WAL record reached the file: write() succeeded and the fsync failed
 * (EIO, the "fsyncgate" case), or a short write left part of it. The pages are then in the page cache,
 * readable, but nobody knows whether they are on disk, and the ingress was answered 4xx for every
 * message of the batch. Reopening the database replays that WAL record as if it were safe: 451'd
 * messages would come back (and be delivered after the next walk), failed updates would half apply.
 * So at the failure, before the reopen, the pre-image of every key the batch touched is read (the
 * failed batch never reached the memtable) into an undo batch: the old value, or a delete where there
 * was none; the batch's log write-ahead and TSA sequence numbers become range deletes. spool_db_recover()
 * writes the undo batch, synced, right after the reopen and before any other write, and keeps it (and
 * needs_recover) when that write fails. Range deletes done by the failed batch (trims of old TSA
 * firings) are not undone: they only drop history that was due to go.
 * Limit: the undo batch lives in memory; a spool killed between the failure and the recovery replays
 * the WAL at its next start and may bring the failed batch back (at-least-once, see docs/operations.md).
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

/* one touched key: column family then the msgid key */
#define TOUCH_ENT (1 + MSGID_BYTES)

void spool_db_batch_touch(struct spool_db_batch *b, int cf, const uint8_t key[MSGID_BYTES])
{
    uint8_t ent[TOUCH_ENT];
    ent[0] = (uint8_t)cf;
    memcpy(ent + 1, key, MSGID_BYTES);
    buf_append(&b->touched, ent, sizeof(ent));
}

void spool_db_batch_seq(uint64_t *lo, uint64_t *hi, uint64_t seq)
{
    if (*lo == 0 || seq < *lo)
        *lo = seq;
    if (seq > *hi)
        *hi = seq;
}

static void undo_range(struct spool_db *db, int cf, uint64_t lo, uint64_t hi)
{
    if (lo == 0 || hi == UINT64_MAX)
        return;
    uint8_t klo[SPOOL_DB_SEQ_KEY], khi[SPOOL_DB_SEQ_KEY];
    spool_db_key_be64(lo, klo);
    spool_db_key_be64(hi + 1, khi); /* the end of a range delete is exclusive */
    rocksdb_writebatch_delete_range_cf(db->undo, db->cf[cf], (const char *)klo, sizeof(klo), (const char *)khi,
                                       sizeof(khi));
    db->undo_ops++;
}

void spool_db_undo_add(struct spool_db *db, const struct spool_db_batch *b)
{
    if (db->undo == NULL)
        db->undo = rocksdb_writebatch_create();
    size_t unread = 0;
    for (size_t off = 0; off + TOUCH_ENT <= b->touched.len; off += TOUCH_ENT) {
        const uint8_t *ent = (const uint8_t *)b->touched.data + off;
        int cf = ent[0];
        const char *key = (const char *)ent + 1;
        char *rerr = NULL;
        rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[cf], key, MSGID_BYTES, &rerr);
        if (rerr != NULL) {
            rocksdb_free(rerr);
            unread++;
            continue;
        }
        if (ps == NULL) {
            rocksdb_writebatch_delete_cf(db->undo, db->cf[cf], key, MSGID_BYTES);
        } else {
            size_t len;
            const char *v = rocksdb_pinnableslice_value(ps, &len);
            rocksdb_writebatch_put_cf(db->undo, db->cf[cf], key, MSGID_BYTES, v, len);
            rocksdb_pinnableslice_destroy(ps);
        }
        db->undo_ops++;
    }
    undo_range(db, CF_LOGAHEAD, b->logrec_lo, b->logrec_hi);
    undo_range(db, CF_TSA, b->tsa_lo, b->tsa_hi);
    if (unread > 0)
        log_error("spool: %zu records of the failed commit could not be read back; a reopen may replay them", unread);
}

int spool_db_undo_apply(struct spool_db *db)
{
    if (db->undo_ops == 0)
        return 0;
    size_t n = db->undo_ops;
    int rc = spool_db_write(db, db->undo, true, "undo of a failed commit");
    if (rc < 0)
        return rc;
    rocksdb_writebatch_clear(db->undo);
    db->undo_ops = 0;
    db->stats.undone += n;
    log_info("spool: %zu writes of the failed commit taken back after the reopen (the WAL replay had them)", n);
    return 0;
}

void spool_db_undo_free(struct spool_db *db)
{
    if (db->undo != NULL)
        rocksdb_writebatch_destroy(db->undo);
    db->undo = NULL;
    db->undo_ops = 0;
}
