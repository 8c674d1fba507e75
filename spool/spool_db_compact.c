/*
 * spool_db_compact - flush and full compaction of every column family, on a thread of its own (contract in
 * spool_db.h)
 *
 * The thread calls rocksdb_flush_cf (waiting) and then rocksdb_compact_range_cf over the whole key range,
 * family by family; RocksDB's handle is thread-safe, so the spool's loop keeps committing meanwhile (a
 * write may wait on a memtable switch, never on the compaction). Progress is what RocksDB says while it
 * works ("rocksdb.num-running-compactions", "rocksdb.compaction-pending",
 * "rocksdb.estimate-pending-compaction-bytes", "rocksdb.total-sst-files-size") and the families done.
 * A close or a recover stops a running compaction first (rocksdb_disable_manual_compaction) and joins the
 * thread: the thread never outlives the handles it uses.
 */
#include "spool/spool_db_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

static uint64_t now_ms(void)
{
    return clock_real_ns() / 1000000u;
}

/* sum - a property summed over the families; false when RocksDB does not know it */
static bool sum(struct spool_db *db, const char *prop, uint64_t *out)
{
    uint64_t total = 0, v;
    for (int i = 0; i < CF__COUNT; i++) {
        if (db->cf[i] == NULL || rocksdb_property_int_cf(db->rdb, db->cf[i], prop, &v) != 0)
            return false;
        total += v;
    }
    *out = total;
    return true;
}

int spool_db_shed(struct spool_db *db, uint64_t *memtable_bytes)
{
    *memtable_bytes = 0;
    if (spool_db_needs_recover(db))
        return -ENODEV;
    (void)sum(db, "rocksdb.cur-size-all-mem-tables", memtable_bytes);
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 0);
    int rc = 0;
    for (int i = 0; i < CF__COUNT; i++) {
        char *rerr = NULL;
        if (db->cf[i] == NULL)
            continue;
        rocksdb_flush_cf(db->rdb, fo, db->cf[i], &rerr);
        if (rerr) {
            log_warn("memory is low: flushing the memtables failed: %s", rerr);
            free(rerr);
            rc = -EIO;
            break;
        }
    }
    rocksdb_flushoptions_destroy(fo);
    return rc;
}

static void *compact_main(void *arg)
{
    struct spool_db *db = arg;
    struct spool_db_compact *c = &db->compact;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    int rc = 0;
    for (int i = 0; i < CF__COUNT && !atomic_load(&c->stop); i++) {
        char *rerr = NULL;
        rocksdb_flush_cf(db->rdb, fo, db->cf[i], &rerr);
        if (rerr) {
            pthread_mutex_lock(&c->lock);
            snprintf(c->error, sizeof(c->error), "flush: %s", rerr);
            pthread_mutex_unlock(&c->lock);
            free(rerr);
            rc = -EIO;
            break;
        }
        rocksdb_compact_range_cf(db->rdb, db->cf[i], NULL, 0, NULL, 0);
        atomic_fetch_add(&c->families_done, 1);
    }
    rocksdb_flushoptions_destroy(fo);
    if (rc == 0 && atomic_load(&c->stop))
        rc = -ECANCELED;
    atomic_store(&c->result, rc);
    atomic_store(&c->finished_ms, now_ms());
    atomic_store(&c->running, false);
    return NULL;
}

int spool_db_compact_start(struct spool_db *db)
{
    struct spool_db_compact *c = &db->compact;
    if (db->rdb == NULL)
        return spool_db_closed(db);
    if (atomic_load(&c->running))
        return -EALREADY;
    if (c->joinable) {
        pthread_join(c->thread, NULL);
        c->joinable = false;
    }
    if (!c->lock_init) {
        pthread_mutex_init(&c->lock, NULL);
        c->lock_init = true;
    }
    c->error[0] = '\0';
    atomic_store(&c->stop, false);
    atomic_store(&c->families_done, 0);
    atomic_store(&c->result, 0);
    atomic_store(&c->finished_ms, 0);
    if (!sum(db, "rocksdb.total-sst-files-size", &c->sst_before))
        c->sst_before = 0;
    c->started_ms = now_ms();
    c->runs++;
    atomic_store(&c->running, true);
    int e = pthread_create(&c->thread, NULL, compact_main, db);
    if (e != 0) {
        atomic_store(&c->running, false);
        return -e;
    }
    c->joinable = true;
    return 0;
}

void spool_db_compact_status(struct spool_db *db, struct spool_db_compact_status *out)
{
    struct spool_db_compact *c = &db->compact;
    memset(out, 0, sizeof(*out));
    out->runs = c->runs;
    out->running = atomic_load(&c->running);
    out->started_ms = c->started_ms;
    out->finished_ms = atomic_load(&c->finished_ms);
    out->families_total = CF__COUNT;
    out->families_done = atomic_load(&c->families_done);
    out->result = out->running ? 0 : atomic_load(&c->result);
    out->sst_bytes_before = c->sst_before;
    if (c->lock_init) {
        pthread_mutex_lock(&c->lock);
        snprintf(out->error, sizeof(out->error), "%s", c->error);
        pthread_mutex_unlock(&c->lock);
    }
    if (db->rdb == NULL)
        return;
    uint64_t v = 0;
    if (rocksdb_property_int(db->rdb, "rocksdb.num-running-compactions", &v) == 0)
        out->running_compactions = v;
    if (rocksdb_property_int(db->rdb, "rocksdb.num-running-flushes", &v) == 0)
        out->running_flushes = v;
    out->compaction_pending = sum(db, "rocksdb.compaction-pending", &v) && v > 0;
    if (sum(db, "rocksdb.estimate-pending-compaction-bytes", &v))
        out->pending_bytes = v;
    if (sum(db, "rocksdb.total-sst-files-size", &v))
        out->sst_bytes = v;
}

void spool_db_compact_stop(struct spool_db *db)
{
    struct spool_db_compact *c = &db->compact;
    if (!c->joinable)
        return;
    if (atomic_load(&c->running) && db->rdb != NULL) {
        atomic_store(&c->stop, true);
        rocksdb_disable_manual_compaction(db->rdb);
        log_info("spool: stopping the running compaction (the database closes)");
    }
    pthread_join(c->thread, NULL);
    c->joinable = false;
    /* no rocksdb_enable_manual_compaction: the handle is closed next (its callers), and a reopened one
     * starts enabled; RocksDB asserts on an enable without a disable */
}
