/*
 * ringmail-spool - the only process that touches the spool disk
 *
 * Opens the RocksDB store ([spool] dir, default DATA_DIR/spool) and the log segments ([log] dir,
 * default DATA_DIR/logs), then serves: store requests from ingress (group commit, spool_store.c),
 * walk requests from the scheduler (spool_walk.c), loads for egress (spool_load.c), attempt results and
 * fails (spool_upd.c) in the same group commit, and the supervisor's admin requests (spool_admin.c).
 * Each second it checks free space: below
 * [spool] free_space_min, or the log directory's below [log] min_free_space, it raises the flag that
 * makes ingress answer 452 at MAIL (DISK-01); after a failed write (ENOSPC) it reopens the database once
 * space is back (DISK-02). Log retention ([log] max_age, max_total_size) runs on the tick: at most
 * SPOOL_RETAIN_PER_TICK segments are unlinked per tick, so a large backlog never blocks the loop.
 * A database that cannot be opened is fatal: the supervisor restarts the spool with backoff and
 * reports a crash loop, while ingress answers 451 to DATA (no durable ack) and nothing is lost.
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "spool/spool_log_retain.h"

#define SPOOL_RETAIN_PER_TICK 16
/* body log records the sweep looks at per step (a read of a header and a RocksDB get each): a step after
 * each commit and whenever the loop is idle */
#define SPOOL_SWEEP_STEP 64
#define SPOOL_RETAIN_INTERVAL_NS CLOCK_SEC(10)

static void on_record(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    struct spool *sp = rt->ctx;

    switch (rec->type) {
    case MSG_INGRESS_MESSAGE_STORE:
        spool_store_request(sp, from, rec);
        break;
    case MSG_INGRESS_LOG_REJECTION:
        spool_store_rejection(sp, from, rec);
        break;
    case MSG_SCHEDULER_WALK_REQUEST:
        if (shm_segment_role(&rt->seg, from) == PROTO_NODE_ROLE_SCHEDULER)
            spool_walk_start(sp);
        break;
    case MSG_EGRESS_MESSAGE_LOAD:
        spool_load_request(sp, from, rec);
        break;
    case MSG_EGRESS_ATTEMPT_RESULT:
        spool_upd_attempt(sp, from, rec);
        break;
    case MSG_SCHEDULER_MESSAGE_FAIL:
        spool_upd_fail(sp, from, rec);
        break;
    case MSG_SCHEDULER_TSA_EVENT:
        spool_tsa_event(sp, from, rec);
        break;
    case MSG_SCHEDULER_MESSAGE_REBIND:
        spool_rebind_request(sp, from, rec);
        break;
    default:
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        break;
    }
}

/* sweep - a step of the body log's reclaim, between commits only (spool_db_sweep) */
static bool sweep(struct spool *sp)
{
    if (sp->db == NULL || sp->n_pend > 0 || spool_db_batch_count(sp->batch) > 0 || spool_db_logrec_count(sp->batch) > 0)
        return false;
    return spool_db_sweep(sp->db, SPOOL_SWEEP_STEP) > 0;
}

static void after_drain(struct role_rt *rt)
{
    struct spool *sp = rt->ctx;

    spool_out_flush(sp);
    spool_store_commit(sp);
    /* under steady load the loop is seldom idle: reclaim keeps pace with the commits */
    sweep(sp);
}

/* publish_blog - the body log's gauges and counters for metrics and `ringctl status` */
static void publish_blog(struct spool *sp)
{
    struct spool_db_blog_status bs;
    struct spool_db_stats st;
    if (sp->db == NULL)
        return;
    spool_db_blog_status(sp->db, &bs);
    spool_db_stats_get(sp->db, &st);
    struct proto_node_instance *self = sp->rt->self;
    proto_node_counter_set(self, PROTO_NODE_CTR_BODY_LOG_SEGMENTS, bs.segments);
    proto_node_counter_set(self, PROTO_NODE_CTR_BODY_LOG_BYTES, bs.bytes);
    proto_node_counter_set(self, PROTO_NODE_CTR_BODY_LOG_READ_ERRORS, st.blog_read_errors);
    proto_node_counter_set(self, PROTO_NODE_CTR_BODY_LOG_RELOCATED, st.blog_relocated);
    proto_node_counter_set(self, PROTO_NODE_CTR_BODY_LOG_RECYCLED, st.blog_segments_recycled);
}

static bool on_idle(struct role_rt *rt)
{
    struct spool *sp = rt->ctx;

    spool_out_flush(sp);
    spool_tsa_flush(sp);
    spool_ann_flush(sp);
    spool_admin_poll(sp);
    bool more = spool_walk_step(sp);
    return sweep(sp) || more;
}

static void check_space(struct spool *sp, uint64_t now)
{
    struct role_rt *rt = sp->rt;

    if (now - sp->last_space_check_ns < CLOCK_SEC(1))
        return;
    sp->last_space_check_ns = now;
    bool low = spool_db_space_low(sp->db_dir, rt->cfg.spool_free_space_min);
    bool log_low = spool_db_space_low(sp->log_dir, rt->cfg.log_min_free_space);
    if (low != sp->space_low) {
        if (low)
            log_error("spool filesystem below [spool] free_space_min (%llu bytes): ingress answers 452 at MAIL",
                      (unsigned long long)rt->cfg.spool_free_space_min);
        else
            log_info("spool free space is back above the minimum: accepting mail again");
        sp->space_low = low;
    }
    if (log_low != sp->log_space_low) {
        if (log_low)
            log_error("log filesystem of %s below [log] min_free_space (%llu bytes): ingress answers 452 at MAIL",
                      sp->log_dir, (unsigned long long)rt->cfg.log_min_free_space);
        else
            log_info("log free space is back above [log] min_free_space: accepting mail again");
        sp->log_space_low = log_low;
    }
    /* one word for both: ingress answers 452 while either file system is short */
    atomic_store(&rt->seg.hdr->spool_space_low, (low ? 1u : 0u) | (log_low ? 2u : 0u));
    if (!low && spool_db_needs_recover(sp->db)) {
        int rc = spool_db_recover(sp->db);
        if (rc == 0) {
            log_info("spool database reopened after a write error; accepting mail again");
            spool_upd_recovered(sp);
        }
        else
            log_error("spool database reopen failed: %s (%s); retrying", strerror(-rc), spool_db_error(sp->db));
    }
}

/* retain_logs - [log] max_age / max_total_size: a bounded number of unlinks, again soon when more wait */
static void retain_logs(struct spool *sp, uint64_t now)
{
    const struct cfg *c = &sp->rt->cfg;
    struct spool_log_retain_opts o = {.max_age_ms = c->log_max_age_ms, .max_total_size = c->log_max_total_size};
    size_t removed = 0, left = 0;

    if (now < sp->next_retain_ns || (!o.max_age_ms && !o.max_total_size))
        return;
    int rc = spool_log_retain_run(sp->log_dir, (int64_t)(clock_real_ns() / 1000000), &o, SPOOL_RETAIN_PER_TICK,
                                  &removed, &left);
    if (rc < 0)
        log_warn("log retention: cannot read %s: %s", sp->log_dir, strerror(-rc));
    sp->next_retain_ns = now + (left ? CLOCK_MS(100) : SPOOL_RETAIN_INTERVAL_NS);
}

/* on_mem_shed - memory is low: the memtables go to SST files (bodies are on disk already: the arena holds
 * none once stored) */
static void on_mem_shed(struct role_rt *rt)
{
    struct spool *sp = rt->ctx;
    uint64_t bytes = 0;
    if (spool_db_shed(sp->db, &bytes) == 0)
        log_info("memory is low: %llu MiB of memtables being flushed", (unsigned long long)(bytes >> 20));
}

static void on_tick(struct role_rt *rt, uint64_t now)
{
    struct spool *sp = rt->ctx;

    check_space(sp, now);
    retain_logs(sp, now);
    publish_blog(sp);
    spool_out_flush(sp);
    spool_tsa_flush(sp);
    spool_ann_flush(sp);
    /* a `ringctl tail-log --follow` is connected (the supervisor's word; anything but 1 is "no"): records
     * reach the log within a tick or two rather than a flush interval */
    bool followed = atomic_load_explicit(&rt->seg.hdr->log_followers, memory_order_relaxed) == 1u;
    uint64_t fast = CLOCK_MS(SHM_LOG_FOLLOW_FLUSH_MS);
    spool_log_set_flush_interval(sp->log, followed && fast < CLOCK_MS(rt->cfg.log_flush_interval_ms) ? fast : 0);
    spool_admin_poll(sp);
    spool_admin_tick(sp);
    spool_wal_tick(sp, clock_real_ns());
    spool_supp_tick(sp, now);
}

static bool on_drain(struct role_rt *rt)
{
    struct spool *sp = rt->ctx;

    spool_store_commit(sp);
    spool_ann_flush(sp);
    /* acks still queued for a full ring get a few ticks; the supervisor's drain timeout bounds it */
    return spool_out_flush(sp);
}

static void on_reload(struct role_rt *rt)
{
    spool_upd_classifier(rt->ctx);
}

/*
 * undo_file - where the undo of a failed commit outlives this process (spool_db_undo.c): a directory of
 * this user's on /dev/shm (a tmpfs: gone at reboot, as the page cache it is about), one file per spool
 * directory. NULL (memory only, with a warning) when there is no such place or it is not ours alone.
 */
static char *undo_file(const char *db_dir)
{
    char *dir = xasprintf("/dev/shm/ringmail-spool-undo-%u", (unsigned)geteuid());
    struct stat st;
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid() || (st.st_mode & 077)) {
        log_warn("no private directory %s for the undo of a failed commit: it is kept in memory only", dir);
        free(dir);
        return NULL;
    }
    /* FNV-1a of the spool directory's path: one undo file per spool */
    uint64_t h = UINT64_C(14695981039346656037);
    for (const char *p = db_dir; *p; p++)
        h = (h ^ (uint8_t)*p) * UINT64_C(1099511628211);
    char *f = xasprintf("%s/%016llx.batch", dir, (unsigned long long)h);
    free(dir);
    return f;
}

static char *sub_dir(const char *configured, const char *data_dir, const char *name)
{
    char *d = configured && configured[0] ? xstrdup(configured) : xasprintf("%s/%s", data_dir, name);
    if (mkdir(d, 0750) < 0 && errno != EEXIST)
        fatal("cannot create %s: %s", d, strerror(errno));
    return d;
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct spool sp;
    char *err = NULL;

    role_rt_init(&rt, PROTO_NODE_ROLE_SPOOL, argc, argv);
    sp.rt = &rt;
    rt.ctx = &sp;
    rt.hooks.on_record = on_record;
    rt.hooks.after_drain = after_drain;
    rt.hooks.on_idle = on_idle;
    rt.hooks.on_tick = on_tick;
    rt.hooks.on_drain = on_drain;
    rt.hooks.on_reload = on_reload;
    rt.hooks.on_mem_shed = on_mem_shed;
    msgid_init((uint16_t)rt.self_idx); /* ids of the DSNs the spool makes */
    spool_upd_classifier(&sp);

    sp.db_dir = sub_dir(rt.cfg.spool_dir, rt.cfg.data_dir, "spool");
    sp.log_dir = sub_dir(rt.cfg.log_dir, rt.cfg.data_dir, "logs");
    char *undo = undo_file(sp.db_dir);
    struct spool_db_opts dbo = {.undo_file = undo,
                                .body_log_off = !rt.cfg.spool_body_log,
                                .body_log_min_bytes = rt.cfg.spool_body_log_min_size,
                                .body_log_segment_bytes = rt.cfg.spool_body_log_segment_size};
    /* a disk that fails writes now would make RocksDB's recovery abort (spool_db_probe): wait for it a
     * while, then exit and let the supervisor's backoff try again */
    for (int tries = 0, rc; (rc = spool_db_probe(sp.db_dir)) < 0; tries++) {
        if (tries == 0)
            log_error("spool directory %s does not take writes (%s); waiting before opening the database",
                      sp.db_dir, strerror(-rc));
        if (tries == 50)
            fatal("spool directory %s still does not take writes (%s)", sp.db_dir, strerror(-rc));
        atomic_store(&rt.self->heartbeat_ns, clock_mono_ns());
        usleep(200000);
    }
    if (spool_db_open(sp.db_dir, &dbo, &sp.db, &err) < 0)
        fatal("cannot open the spool database in %s: %s", sp.db_dir, err ? err : "");
    free(undo);
    sp.batch = spool_db_batch_new(sp.db);
    struct spool_log_opts lo = {
        .dir = sp.log_dir,
        .max_segment_bytes = rt.cfg.log_segment_size,
        .max_segment_age_ns = CLOCK_MS(rt.cfg.log_segment_age_ms),
        .flush_interval_ns = CLOCK_MS(rt.cfg.log_flush_interval_ms),
        .node_id = rt.cfg.node_id,
    };
    int rc = spool_log_open(&lo, clock_real_ns(), &sp.log);
    if (rc < 0)
        fatal("cannot open the log directory %s: %s", sp.log_dir, strerror(-rc));
    /* records of committed state that the last run had not made durable in the log, before anything new */
    rc = spool_wal_replay(&sp);
    if (rc < 0)
        log_error("log write-ahead replay incomplete: %s; retried every tick", strerror(-rc));
    sp.space_low = false;
    sp.log_space_low = false;
    check_space(&sp, clock_mono_ns() + CLOCK_SEC(2));
    log_info("spool database %s, logs %s", sp.db_dir, sp.log_dir);
    spool_admin_init(&sp);
    spool_supp_open(&sp);

    role_rt_ready(&rt);
    rc = role_rt_run(&rt);
    spool_store_commit(&sp);
    spool_upd_fini(&sp);
    spool_ann_fini(&sp);
    spool_tsa_fini(&sp);
    spool_rebind_fini(&sp);
    spool_wal_fini(&sp);
    spool_supp_close(&sp);
    spool_log_close(sp.log);
    spool_db_batch_free(sp.batch);
    spool_db_close(sp.db);
    free(sp.pend);
    free(sp.outbox);
    free(sp.db_dir);
    free(sp.log_dir);
    role_rt_fini(&rt);
    return rc;
}
