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
 * The undo batch is also saved to opts.undo_file (on a tmpfs: /dev/shm), so that a spool that dies or is
 * restarted before the reopen applies it at its next start (spool_db_undo_load), right after the open that
 * replayed the WAL. The file lives as long as the page cache that holds the failed bytes: not across a
 * reboot, where the failed batch may come back if the disk kept it after all (at-least-once: a 451'd
 * message delivered, never a 250'd one lost). The file is removed once applied; a removal that fails is
 * fatal, as a stale undo applied later would take back newer state.
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

/* one touched key: column family, key length (16 bits, big-endian), then the key */
#define TOUCH_HDR 3

void spool_db_batch_touch(struct spool_db_batch *b, int cf, const void *key, size_t klen)
{
    ASSERT(klen <= UINT16_MAX);
    uint8_t hdr[TOUCH_HDR] = {(uint8_t)cf, (uint8_t)(klen >> 8), (uint8_t)klen};
    buf_append(&b->touched, hdr, sizeof(hdr));
    buf_append(&b->touched, key, klen);
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

/* RocksDB's WriteBatch header: sequence number (8) and count (4) */
#define WB_HEADER 12
#define UNDO_FILE_MAX (UINT64_C(1) << 32)

/* undo_save - the whole undo batch into undo_path (write a temporary, rename): a restart finds it */
static void undo_save(struct spool_db *db)
{
    if (db->undo_path == NULL)
        return;
    size_t len;
    const char *rep = rocksdb_writebatch_data(db->undo, &len);
    char *tmp = xasprintf("%s.tmp", db->undo_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, rep + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int e = errno;
    if (fd < 0 || off < len || close(fd) < 0 || rename(tmp, db->undo_path) < 0) {
        log_error("spool: cannot save the undo of the failed commit to %s (%s): a restart before the reopen "
                  "may replay it", db->undo_path, strerror(fd < 0 || off < len ? e : errno));
        unlink(tmp);
    }
    free(tmp);
}

int spool_db_undo_load(struct spool_db *db)
{
    if (db->undo_path == NULL)
        return 0;
    int fd = open(db->undo_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int e = errno;
        free(db->errtext);
        db->errtext = xasprintf("undo file %s: %s", db->undo_path, strerror(e));
        return -e;
    }
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    /* ours alone: a file someone else could have put there is not applied */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 022) &&
        (uint64_t)st.st_size >= WB_HEADER && (uint64_t)st.st_size <= UNDO_FILE_MAX) {
        data = xmalloc((size_t)st.st_size);
        while (len < (size_t)st.st_size) {
            ssize_t r = read(fd, data + len, (size_t)st.st_size - len);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            len += (size_t)r;
        }
    }
    close(fd);
    if (data == NULL || len != (size_t)st.st_size) {
        free(data);
        free(db->errtext);
        db->errtext = xasprintf("undo file %s is not a whole undo batch of this user's: left for the operator",
                                db->undo_path);
        return -EBADMSG;
    }
    spool_db_undo_free(db);
    db->undo = rocksdb_writebatch_create_from(data, len);
    free(data);
    db->undo_ops = (size_t)rocksdb_writebatch_count(db->undo);
    log_warn("spool: the undo of a commit that failed in the last run (%zu writes, %s) is applied now", db->undo_ops,
             db->undo_path);
    if (db->undo_ops == 0) {
        if (unlink(db->undo_path) < 0 && errno != ENOENT)
            fatal("spool: cannot remove the applied undo file %s: %s", db->undo_path, strerror(errno));
        return 0;
    }
    return spool_db_undo_apply(db);
}

void spool_db_undo_add(struct spool_db *db, const struct spool_db_batch *b)
{
    if (db->undo == NULL)
        db->undo = rocksdb_writebatch_create();
    size_t unread = 0;
    for (size_t off = 0; off + TOUCH_HDR <= b->touched.len;) {
        const uint8_t *ent = (const uint8_t *)b->touched.data + off;
        int cf = ent[0];
        size_t klen = (size_t)ent[1] << 8 | ent[2];
        const char *key = (const char *)ent + TOUCH_HDR;
        off += TOUCH_HDR + klen;
        ASSERT(off <= b->touched.len && cf < CF__COUNT);
        char *rerr = NULL;
        rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[cf], key, klen, &rerr);
        if (rerr != NULL) {
            rocksdb_free(rerr);
            unread++;
            continue;
        }
        if (ps == NULL) {
            rocksdb_writebatch_delete_cf(db->undo, db->cf[cf], key, klen);
        } else {
            size_t len;
            const char *v = rocksdb_pinnableslice_value(ps, &len);
            rocksdb_writebatch_put_cf(db->undo, db->cf[cf], key, klen, v, len);
            rocksdb_pinnableslice_destroy(ps);
        }
        db->undo_ops++;
    }
    undo_range(db, CF_LOGAHEAD, b->logrec_lo, b->logrec_hi);
    undo_range(db, CF_TSA, b->tsa_lo, b->tsa_hi);
    if (unread > 0)
        log_error("spool: %zu records of the failed commit could not be read back; a reopen may replay them", unread);
    undo_save(db);
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
    if (db->undo_path != NULL && unlink(db->undo_path) < 0 && errno != ENOENT)
        fatal("spool: cannot remove the applied undo file %s: %s", db->undo_path, strerror(errno));
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
