/*
 * spool_db_walk - the start-up walk over the envelopes, in bounded steps (contract in spool_db.h)
 *
 * The cursor is the last key examined, not an iterator, so steps interleave with commits; bytes
 * read back are untrusted: each envelope goes through proto_env_decode() and the ones that fail
 * move into quarantine (spool_db_quarantine.c) in one synced batch per step.
 */
#include "spool/spool_db_internal.h"

#include <limits.h>
#include <string.h>

#include "base/log.h"

void spool_db_walk_init(struct spool_db_walk *w)
{
    memset(w, 0, sizeof(*w));
}

/* printable form of any key for log lines: hex of up to 32 bytes */
static void key_hex(const uint8_t *k, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap && i < 32; i++) {
        out[o++] = hex[k[i] >> 4];
        out[o++] = hex[k[i] & 0xf];
    }
    out[o] = '\0';
}

int spool_db_walk_step(struct spool_db *db, struct spool_db_walk *w, size_t max,
    spool_db_walk_fn fn, void *arg)
{
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (w->done)
        return 0;
    if (max > INT_MAX)
        max = INT_MAX; /* the count is returned as an int */
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, db->rwalk, db->cf[CF_ENVELOPES]);
    if (w->started) {
        rocksdb_iter_seek(it, (const char *)w->cursor, w->cursor_len);
        size_t klen;
        const char *k;
        /* the cursor's own key was handled in the previous step */
        if (rocksdb_iter_valid(it) && (k = rocksdb_iter_key(it, &klen)) != NULL &&
            klen == w->cursor_len && memcmp(k, w->cursor, klen) == 0)
            rocksdb_iter_next(it);
    } else {
        rocksdb_iter_seek_to_first(it);
    }

    rocksdb_writebatch_t *qb = rocksdb_writebatch_create();
    size_t examined = 0, bad = 0;
    int cb_rc = 0;
    while (examined < max && rocksdb_iter_valid(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        examined++;
        /*
         * A key longer than the cursor is corrupt anyway: the cursor keeps its prefix, which
         * sorts before it, and the quarantine move below deletes it before the next step.
         */
        w->cursor_len = klen < sizeof(w->cursor) ? klen : sizeof(w->cursor);
        memcpy(w->cursor, k, w->cursor_len);
        w->started = true;

        const char *why = NULL;
        struct proto_env rec;
        if (klen != MSGID_BYTES) {
            why = "envelope key is not a 16-byte message id";
        } else if (proto_env_decode(v, vlen, &rec, &why) == 0) {
            w->walked++;
            cb_rc = fn(arg, msgid_from_bytes(k), &rec);
            proto_env_fini(&rec);
            if (cb_rc != 0)
                break;
            rocksdb_iter_next(it);
            continue;
        }
        char kh[72];
        key_hex(k, klen, kh, sizeof(kh));
        log_warn("spool: quarantining envelope %s (%zu bytes): %s", kh, vlen, why);
        spool_db_quarantine_add(db, qb, k, klen, v, vlen, why);
        bad++;
        rocksdb_iter_next(it);
    }

    int rc = 0;
    if (cb_rc == 0 && examined < max) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr != NULL)
            rc = spool_db_fail(db, rerr, "walk");
        else
            w->done = true;
    }
    rocksdb_iter_destroy(it);

    if (bad > 0) {
        int qrc = spool_db_write(db, qb, true, "quarantine");
        if (qrc < 0) {
            /* left in place: the next walk (or start) finds and moves them again */
            log_error("spool: quarantine of %zu records failed: %s", bad, db->errtext);
            if (rc == 0)
                rc = qrc;
        } else {
            w->quarantined += bad;
            db->stats.quarantined += bad;
        }
    }
    rocksdb_writebatch_destroy(qb);
    if (rc < 0)
        return rc;
    if (cb_rc != 0)
        return cb_rc;
    return (int)examined;
}

