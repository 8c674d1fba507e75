/*
 * spool_db_quarantine - records that failed to decode, kept with the reason (contract in spool_db.h)
 *
 * Key: the original envelope key plus 8 bytes of time; value: 'Q', version 1, u64 when_ms,
 * u16 reason_len (little-endian), the reason, then the original value unchanged. Records are
 * never deleted by the spool; they are read back with explicit bounds (a damaged one is shown
 * whole rather than hidden).
 */
#include "spool/spool_db_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"

#define QREC_MAGIC 'Q'
#define QREC_VERSION 1
#define QREC_HEAD 12 /* magic, version, u64 when_ms, u16 reason_len */
#define QREASON_MAX 200

void spool_db_quarantine_add(struct spool_db *db, rocksdb_writebatch_t *wb, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen, const char *reason)
{
    /* the quarantine key is the original key plus the time, so no record ever overwrites another */
    uint64_t now_ns = clock_real_ns();
    struct buf qk, qv;
    buf_init(&qk);
    buf_init(&qv);
    buf_append(&qk, key, klen);
    for (int i = 7; i >= 0; i--) {
        uint8_t c = (uint8_t)(now_ns >> (8 * i));
        buf_append(&qk, &c, 1);
    }
    size_t rlen = strlen(reason);
    if (rlen > QREASON_MAX)
        rlen = QREASON_MAX;
    uint8_t head[QREC_HEAD];
    uint64_t now_ms = now_ns / 1000000u;
    head[0] = QREC_MAGIC;
    head[1] = QREC_VERSION;
    for (int i = 0; i < 8; i++)
        head[2 + i] = (uint8_t)(now_ms >> (8 * i));
    head[10] = (uint8_t)rlen;
    head[11] = (uint8_t)(rlen >> 8);
    buf_append(&qv, head, sizeof(head));
    buf_append(&qv, reason, rlen);
    buf_append(&qv, val, vlen);

    rocksdb_writebatch_put_cf(wb, db->cf[CF_QUARANTINE], (const char *)qk.data, qk.len,
        (const char *)qv.data, qv.len);
    rocksdb_writebatch_delete_cf(wb, db->cf[CF_ENVELOPES], (const char *)key, klen);
    buf_fini(&qk);
    buf_fini(&qv);
}

int spool_db_quarantine_list(struct spool_db *db, spool_db_quarantine_fn fn, void *arg)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_QUARANTINE]);
    int count = 0, rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        struct spool_db_quarantined q = { .key = k, .key_len = klen >= 8 ? klen - 8 : klen };
        char reason[QREASON_MAX + 1];
        size_t rlen = 0;
        if (vlen >= QREC_HEAD && v[0] == QREC_MAGIC && v[1] == QREC_VERSION)
            rlen = (size_t)v[10] | (size_t)v[11] << 8;
        if (vlen >= QREC_HEAD && v[0] == QREC_MAGIC && v[1] == QREC_VERSION &&
            rlen <= QREASON_MAX && rlen <= vlen - QREC_HEAD) {
            for (int i = 7; i >= 0; i--)
                q.when_ms = (q.when_ms << 8) | v[2 + i];
            memcpy(reason, v + QREC_HEAD, rlen);
            reason[rlen] = '\0';
            q.value = v + QREC_HEAD + rlen;
            q.value_len = vlen - QREC_HEAD - rlen;
        } else {
            /* the quarantine's own record is damaged: show all of it rather than hide it */
            snprintf(reason, sizeof(reason), "unreadable quarantine record");
            q.value = v;
            q.value_len = vlen;
        }
        q.reason = reason;
        count++;
        rc = fn(arg, &q);
        if (rc != 0)
            break;
    }
    rc = spool_db_iter_done(db, it, rc, "quarantine list");
    return rc < 0 ? rc : count;
}
