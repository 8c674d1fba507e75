/*
 * spool_wal - the write-ahead of log records: what the spool commits, its log will say
 *
 * The log writer keeps records in memory for up to a second (spool_log.h), so a kill -9 after a
 * commit used to lose the records of committed state: a message bounced and deleted with no Bounce
 * record. Now every record that describes a state change (Reception of a store or of a DSN, and
 * the per-recipient Delivery, TransientFailure, Bounce, Expiration records) is serialized once, put
 * into the same RocksDB write batch as the change (spool_db_logrec_add) and, after the commit,
 * handed to the log writer as the same bytes. Once the log file is fdatasynced past a record, its
 * write-ahead copy is deleted with one range delete that needs no fsync of its own. At start-up
 * whatever is left is written to the log again, before anything else happens (spool_wal_replay).
 * The cost is one log fdatasync per log flush (about once a second), never one per message.
 *
 * Memory stays bounded by the log writer's cap: when it refuses a record (a failing log disk),
 * records are no longer handed over after the commit ("behind"); the tick reads them back from
 * RocksDB in order, a bounded number per tick, until it has caught up. They are never dropped.
 * Delivery is at-least-once: a kill between the log's fdatasync and the range delete, or a
 * power loss that takes the (unsynced) range delete, writes some records twice (docs/logs.md).
 * Rejection records change no state and stay best-effort (spool_store_rejection).
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

/* records read back from RocksDB per tick while behind; the log writer flushes as they pile up */
#define WAL_CATCHUP_STEP 16384

/* the last log sync or trim failure is reported once per streak, not once per tick */
static void wal_warn(struct spool *sp, const char *what, int rc)
{
    if (!sp->wal_failing)
        log_warn("log write-ahead: %s failed: %s; the records stay in the spool database", what, strerror(-rc));
    sp->wal_failing = true;
}

static uint64_t log_flushes(const struct spool *sp)
{
    struct spool_log_stats st;
    spool_log_stats_get(sp->log, &st);
    return st.flushes;
}

void spool_wal_add(struct spool *sp, json_t *rec)
{
    char *line = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (line == NULL) {
        proto_node_counter_add(sp->rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        log_warn("log record not serializable: dropped");
        return;
    }
    size_t len = strlen(line);
    uint64_t seq = 0;
    int rc = spool_db_logrec_add(sp->batch, line, len, &seq);
    if (rc < 0) {
        /* the commit of this batch fails too (closed database); kept only for that case's symmetry */
        log_warn("log record not put into the write batch (%s): written after the commit only", strerror(-rc));
        seq = 0;
    }
    if (sp->n_walq == sp->walq_cap) {
        sp->walq_cap = sp->walq_cap ? sp->walq_cap * 2 : 64;
        sp->walq = xrealloc(sp->walq, sp->walq_cap * sizeof(*sp->walq));
    }
    sp->walq[sp->n_walq++] = (struct spool_wal_rec){seq, line, len};
}

void spool_wal_event(struct spool *sp, enum spool_log_type type, const struct spool_log_event *ev)
{
    json_t *j = NULL;
    if (spool_log_build(sp->log, type, ev, &j) < 0) {
        proto_node_counter_add(sp->rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        return;
    }
    spool_wal_add(sp, j);
}

/* wal_sync - make the log durable past wal_logged, then let RocksDB forget those copies */
static void wal_sync(struct spool *sp)
{
    if (sp->wal_logged <= sp->wal_synced) {
        /* flushes of Rejection records alone need no sync, and must not set one off later */
        sp->wal_flushes_seen = log_flushes(sp);
        return;
    }
    int rc = spool_log_sync(sp->log);
    sp->wal_flushes_seen = log_flushes(sp);
    if (rc < 0) {
        wal_warn(sp, "log sync", rc);
        return;
    }
    /* no fsync: a lost deletion only means the records are written again after a power loss */
    rc = spool_db_logrec_trim(sp->db, sp->wal_logged, false);
    if (rc < 0) {
        wal_warn(sp, "range delete", rc);
        return;
    }
    if (sp->wal_failing)
        log_info("log write-ahead: log sync and range delete work again");
    sp->wal_failing = false;
    sp->wal_synced = sp->wal_logged;
}

/* hand one record to the log writer; a full buffer gets one flush before giving up */
static int wal_write(struct spool *sp, const char *line, size_t len)
{
    int rc = spool_log_write_line(sp->log, line, len);
    if (rc == -ENOBUFS && spool_log_flush(sp->log) == 0)
        rc = spool_log_write_line(sp->log, line, len);
    if (rc == 0)
        proto_node_counter_add(sp->rt->self, PROTO_NODE_CTR_LOG_WRITTEN, 1);
    return rc;
}

static int catchup_one(void *arg, uint64_t seq, const char *line, size_t len)
{
    struct spool *sp = arg;
    int rc = wal_write(sp, line, len);
    if (rc == -EINVAL) {
        /* a damaged copy would block every later record forever: skip it, loudly */
        log_error("log write-ahead record %llu is not a JSON line: skipped", (unsigned long long)seq);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    sp->wal_logged = seq;
    sp->wal_replayed++;
    return 0;
}

/* wal_catch_up - one bounded step of reading committed records back from RocksDB */
static void wal_catch_up(struct spool *sp)
{
    int n = spool_db_logrec_scan(sp->db, sp->wal_logged + 1, WAL_CATCHUP_STEP, catchup_one, sp);
    if (n >= 0 && n < WAL_CATCHUP_STEP) {
        sp->wal_behind = false;
        if (sp->wal_replayed > 0)
            log_info("log write-ahead: caught up, %llu records written from the spool database",
                     (unsigned long long)sp->wal_replayed);
    } else if (n < 0 && n != -ENOBUFS) {
        wal_warn(sp, "read back", n);
    }
}

void spool_wal_committed(struct spool *sp, int rc)
{
    for (size_t i = 0; i < sp->n_walq; i++) {
        struct spool_wal_rec *w = &sp->walq[i];
        if (rc == 0 && w->seq == 0) {
            if (wal_write(sp, w->line, w->len) < 0)
                proto_node_counter_add(sp->rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        } else if (rc == 0 && !sp->wal_behind) {
            if (wal_write(sp, w->line, w->len) == 0) {
                sp->wal_logged = w->seq;
            } else {
                /* it is safe in RocksDB: the tick reads it (and all after it) back from there */
                sp->wal_behind = true;
                sp->wal_replayed = 0;
                log_warn("log buffer full: records wait in the spool database until the log takes them");
            }
        }
        free(w->line);
    }
    sp->n_walq = 0;
    /* a flush the writes set off: sync at once, so the copies on disk shrink with the log */
    if (rc == 0 && log_flushes(sp) != sp->wal_flushes_seen)
        wal_sync(sp);
}

void spool_wal_tick(struct spool *sp, uint64_t now_real_ns)
{
    if (sp->wal_behind)
        wal_catch_up(sp);
    int rc = spool_log_tick(sp->log, now_real_ns);
    if (rc < 0)
        log_warn("log segment write failed: %s (records kept in memory, retrying)", strerror(-rc));
    struct spool_log_stats st;
    spool_log_stats_get(sp->log, &st);
    /* after the periodic flush, or to retry a sync that failed while nothing new came */
    if (st.flushes != sp->wal_flushes_seen || st.pending_bytes == 0)
        wal_sync(sp);
}

int spool_wal_replay(struct spool *sp)
{
    sp->wal_logged = 0;
    sp->wal_synced = 0;
    sp->wal_replayed = 0;
    sp->wal_behind = true;
    sp->wal_flushes_seen = log_flushes(sp);
    uint64_t before;
    do {
        before = sp->wal_logged;
        wal_catch_up(sp);
    } while (sp->wal_behind && sp->wal_logged != before);
    if (sp->wal_behind) {
        log_error("log write-ahead: replay stopped after %llu records; the tick goes on with it",
                  (unsigned long long)sp->wal_replayed);
        return -EIO;
    }
    if (sp->wal_replayed > 0)
        log_info("log write-ahead: %llu records of the last run written to the log again (some may be there "
                 "twice)", (unsigned long long)sp->wal_replayed);
    int rc = spool_log_sync(sp->log);
    sp->wal_flushes_seen = log_flushes(sp);
    if (rc < 0) {
        wal_warn(sp, "log sync", rc);
        return rc;
    }
    if (sp->wal_logged > 0) {
        rc = spool_db_logrec_trim(sp->db, sp->wal_logged, true);
        if (rc < 0) {
            wal_warn(sp, "range delete", rc);
            return rc;
        }
    }
    sp->wal_synced = sp->wal_logged;
    return 0;
}

void spool_wal_fini(struct spool *sp)
{
    spool_wal_committed(sp, -ECANCELED);
    free(sp->walq);
    sp->walq = NULL;
    sp->walq_cap = 0;
    for (int i = 0; i < 64 && sp->wal_behind; i++)
        wal_catch_up(sp);
    if (sp->wal_logged <= sp->wal_synced)
        return;
    /* a clean stop leaves no copies behind, so the next start writes nothing twice */
    int rc = spool_log_sync(sp->log);
    if (rc == 0)
        rc = spool_db_logrec_trim(sp->db, sp->wal_logged, true);
    if (rc < 0)
        log_warn("log write-ahead at stop: %s; the next start writes the records again", strerror(-rc));
    else
        sp->wal_synced = sp->wal_logged;
}
