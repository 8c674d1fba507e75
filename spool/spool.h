/*
 * spool - the spool role's internal interfaces (the one process that owns RocksDB)
 *
 * spool_main.c   setup, the role hooks, free-space guard, recovery after a write error
 * spool_store.c  store requests from ingress: validate, batch, one synced commit per pass, acks
 * spool_out.c    outgoing ring records: sent in order, kept in the outbox while a ring is full
 * spool_walk.c   announce every queued message to the scheduler, in bounded steps, on request
 * spool_ann.c    announce batches (proto_ann runs in the arena) with a backlog while the arena is full
 * spool_load.c   loads of messages into the arena for egress
 * spool_upd.c    attempt results and scheduler fails: envelope updates in the group commit, log
 *                records, DSNs, MSG_SPOOL_MESSAGE_UPDATED after the commit
 * spool_dlv.c    the rules those apply (queue names, run checks, state changes), without a process
 * spool_wal.c    the write-ahead of log records in the write batch, log sync, range delete, replay
 * spool_admin.c  the admin command channel's spool end: inspect a message, start and follow a compaction
 *
 * The outbox holds ring records that could not be pushed (a full ring) and is retried first on every
 * pass, so an ack is delayed, never dropped. The announce backlog does the same for arena runs.
 */
#ifndef RINGMAIL_SPOOL_H
#define RINGMAIL_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/msgid.h"
#include "rt/role_rt.h"
#include "spool/spool_db.h"
#include "spool/spool_dsn_limit.h"
#include "spool/spool_log.h"
#include "common/proto_dlv.h"
#include "common/proto_env.h"
#include "policy/bounce_class.h"
#include "spool/spool_supp.h"

struct spool_pending {
    unsigned from;     /* ingress instance */
    uint32_t from_gen; /* its generation when it asked */
    uint64_t token;
    struct msgid id;
    struct proto_env rec; /* decoded envelope, for the Reception record */
    uint64_t body_len;    /* the message's bytes (ringmail_bytes_stored_total) */
    bool report;          /* a feedback report (spool_fbl.c): logged, not stored for delivery */
};

struct spool_outbox_item {
    unsigned to;
    struct proto_rec rec;
};

/* announce entries waiting for an arena run; sent in order */
struct spool_ann_batch {
    struct buf buf; /* the run: proto_ann_hdr and entries (proto_dlv_ann_begin/_append) */
    uint32_t count;
    uint64_t seq;
};

/* an envelope changed in the open write batch; later changes in the same pass build on it */
struct spool_env {
    struct msgid id;
    struct proto_env rec; /* decoded, owned */
    bool gone;            /* deleted in the batch (every recipient final) */
};

/* one MSG_SPOOL_MESSAGE_UPDATED owed after the commit */
struct spool_upd {
    struct msgid id;
    uint32_t rcpt_first;
    long env; /* index into envs, -1: the message was not in the spool */
};

/* a log record of the open batch: its write-ahead sequence number (0: none) and JSON line */
struct spool_wal_rec {
    uint64_t seq;
    char *line;
    size_t len;
};

/* a DSN stored in the open batch: Reception record and announcement after the commit */
struct spool_dsn_msg {
    struct msgid id;
    struct proto_env rec;
    struct proto_env_rcpt rcpt;
    char *addr;
};

struct spool {
    struct role_rt *rt;
    struct spool_db *db;
    struct spool_db_batch *batch;
    struct spool_log *log;
    char *db_dir;
    char *log_dir;

    struct spool_pending *pend;
    size_t n_pend, pend_cap;

    struct spool_outbox_item *outbox;
    size_t n_out, out_cap;

    struct spool_env *envs;
    size_t n_envs, envs_cap;
    struct spool_upd *upds;
    size_t n_upds, upds_cap;
    struct spool_dsn_msg **dsns;
    size_t n_dsns, dsns_cap;
    struct spool_dsn_limit dsn_limit;
    struct spool_wal_rec *walq; /* records of the open batch, written to the log once it is durable */
    size_t n_walq, walq_cap;
    uint64_t wal_logged;       /* every write-ahead record up to it is in the log writer */
    uint64_t wal_synced;       /* ... and up to it fsynced in the log and range-deleted */
    uint64_t wal_flushes_seen; /* the log writer's flush count at the last sync */
    uint64_t wal_replayed;     /* records read back from RocksDB in the current catch-up */
    bool wal_behind;           /* records after wal_logged wait in RocksDB only (the log was full) */
    bool wal_failing;          /* a log sync or range delete failed (logged once per streak) */
    struct bounce_class *bc;

    struct spool_ann_batch *ann;
    size_t n_ann, ann_cap;
    uint64_t ann_seq;      /* seq of the newest batch */
    uint64_t ann_sent_seq; /* every batch up to it was sent */
    uint64_t ann_stalls;   /* arena full when a batch was due */

    struct buf *tsa_runs; /* MSG_SPOOL_TSA_STATE runs waiting for the arena, oldest first */
    size_t n_tsa_runs;

    struct spool_db_walk walk;
    bool walking;
    bool walk_done_pending; /* WALK_DONE follows batch walk_done_seq */
    uint64_t walk_done_seq;
    uint64_t walk_announced;
    struct msgid *rebound; /* spool_rebind.c: messages to announce again after the commit */
    size_t n_rebound, rebound_cap;
    bool space_low;     /* the spool's file system is below [spool] free_space_min */
    bool log_space_low; /* the log directory's file system is below [log] min_free_space */
    uint64_t last_space_check_ns;

    uint64_t admin_seq;     /* the request page's sequence number when last looked at */
    bool compact_watch;     /* a compaction started here runs: its end is logged */
    uint64_t next_retain_ns; /* log retention's next run (spool_log_retain.c) */
    struct spool_supp *supp; /* the suppression list (spool_supp.c) */
};

/* spool_admin.c */
void spool_admin_init(struct spool *sp);
/* spool_admin_poll - a new request in the spool's command page: answer it (cheap when there is none) */
void spool_admin_poll(struct spool *sp);
/* spool_admin_tick - log the end of a compaction started here (RocksDB properties: once a tick, not per pass) */
void spool_admin_tick(struct spool *sp);

/* spool_store.c */
void spool_store_request(struct spool *sp, unsigned from, const struct proto_rec *rec);
void spool_store_commit(struct spool *sp);
/* spool_store_rejection - write the Rejection record an ingress handed over */
void spool_store_rejection(struct spool *sp, unsigned from, const struct proto_rec *rec);

/* spool_out.c */
/* spool_out_send - push to `to`, or keep it in the outbox for the next pass */
void spool_out_send(struct spool *sp, unsigned to, struct proto_rec *rec);
/* spool_out_flush - true when the outbox is empty afterwards */
bool spool_out_flush(struct spool *sp);
/* spool_out_run - copy data into a new arena run given to `to`'s current generation and send a
 * proto_batch record of `type` for it; -ENOSPC when the arena has no room now */
int spool_out_run(struct spool *sp, unsigned to, uint16_t type, const void *data, size_t len, uint32_t count);

/* spool_ann.c */
/* spool_ann_add - queue the announcement of a message's queued recipients; false when none is queued */
bool spool_ann_add(struct spool *sp, struct msgid id, const struct proto_env *rec);
/* spool_ann_flush - send queued batches while the arena has room; true when none is left */
bool spool_ann_flush(struct spool *sp);
/* spool_ann_backlog - batches waiting */
size_t spool_ann_backlog(const struct spool *sp);
void spool_ann_fini(struct spool *sp);

/* spool_load.c */
void spool_load_request(struct spool *sp, unsigned from, const struct proto_rec *rec);

/* spool_upd.c */
void spool_upd_attempt(struct spool *sp, unsigned from, const struct proto_rec *rec);
void spool_upd_fail(struct spool *sp, unsigned from, const struct proto_rec *rec);
/* spool_upd_pending - updates wait for the commit */
bool spool_upd_pending(const struct spool *sp);
/* spool_upd_committed - after the commit (rc 0 or -errno): logs, UPDATED records, DSN announcements */
void spool_upd_committed(struct spool *sp, int rc);
/* spool_upd_classifier - (re)build the bounce classifier from the configuration */
void spool_upd_classifier(struct spool *sp);
void spool_upd_fini(struct spool *sp);
/* spool_upd_env_get - the envelope in the open batch (sp->envs), read from the store at first use; index or -errno */
long spool_upd_env_get(struct spool *sp, struct msgid id);
/* spool_upd_log_rcpt - the record of one recipient's event (no attempt: a decision of the spool's) into the batch */
void spool_upd_log_rcpt(struct spool *sp, struct msgid id, const struct proto_env *rec, enum spool_log_type type,
                        uint32_t index, const struct spool_log_response *resp);
/* spool_upd_owed - a MSG_SPOOL_MESSAGE_UPDATED for the group of rcpt_first after the commit (env: index into envs) */
void spool_upd_owed(struct spool *sp, struct msgid id, uint32_t rcpt_first, long env);
/* spool_upd_write_env - the changed envelope into the batch; the message leaves the spool with its last recipient */
void spool_upd_write_env(struct spool *sp, struct spool_env *e);
/* spool_env_set_meta - rec (decoded, owned) with key set to value (NULL: removed), re-encoded into a record of
 * its own; 0, or -EINVAL when the result does not encode (rec unchanged) */
int spool_env_set_meta(struct proto_env *rec, const char *key, const char *value);
/* spool_rebind.c: an operator's rebind (MSG_SCHEDULER_MESSAGE_REBIND) */
void spool_rebind_request(struct spool *sp, unsigned from, const struct proto_rec *rec);
/* spool_rebind_pending - rebound messages wait for the commit to be announced again */
bool spool_rebind_pending(const struct spool *sp);
/* spool_rebind_committed - after the commit (rc 0 or -errno): each message announced from its durable state */
void spool_rebind_committed(struct spool *sp, int rc);
void spool_rebind_fini(struct spool *sp);

/* spool_wal.c */
/* spool_wal_add - a record (reference taken) into the open batch's write-ahead and the after-commit list */
void spool_wal_add(struct spool *sp, json_t *rec);
/* spool_wal_event - build the record of one event and spool_wal_add() it */
void spool_wal_event(struct spool *sp, enum spool_log_type type, const struct spool_log_event *ev);
/* spool_wal_committed - after the commit (rc 0 or -errno): the records to the log writer, or dropped */
void spool_wal_committed(struct spool *sp, int rc);
/* spool_wal_tick - catch up from RocksDB when behind, the log's tick, sync and range delete */
void spool_wal_tick(struct spool *sp, uint64_t now_real_ns);
/* spool_wal_replay - at start, before the walk: what the last run left, to the log; 0 or -errno */
int spool_wal_replay(struct spool *sp);
/* spool_wal_fini - at stop, after the last commit: sync the log and delete every copy */
void spool_wal_fini(struct spool *sp);

/* spool_tsa.c */
/* spool_tsa_attempt - after a TransientFailure or Bounce attempt was recorded: the response to the
 * scheduler's traffic shaping automation (index: the first failed recipient of the result) */
void spool_tsa_attempt(struct spool *sp, const struct proto_env *rec, const struct proto_attempt *a, uint16_t index);
/* spool_tsa_event - a firing from the scheduler: into the batch (history) and a TSA log record */
void spool_tsa_event(struct spool *sp, unsigned from, const struct proto_rec *rec);
/* spool_tsa_walk - at the start-up walk: queue the firings in effect and the recent history */
void spool_tsa_walk(struct spool *sp);
/* spool_tsa_flush - send queued state runs while the arena has room; true when none is left */
bool spool_tsa_flush(struct spool *sp);
void spool_tsa_fini(struct spool *sp);

/* spool_fbl.c: reports received at feedback addresses (docs/operations.md) */
enum spool_fbl_reason {
    SPOOL_FBL_COMPLAINT = 0, /* an ARF complaint */
    SPOOL_FBL_OOB = 1,       /* a hard out-of-band bounce */
};
/* spool_fbl_is_report - the envelope carries a parsed report (fbl.kind arf or dsn) */
bool spool_fbl_is_report(const struct proto_env *rec);
/* spool_fbl_build - the Feedback or OOB record of a report (*out owned: json_decref; lg may be NULL), the
 * fbl.* metadata checked again; *suppress when the record asks for suppression; 0, -EINVAL (not a report) */
int spool_fbl_build(const struct spool_log *lg, const struct bounce_class *bc, struct msgid id,
                    const struct proto_env *rec, json_t **out, bool *suppress);
/* spool_fbl_record - spool_fbl_build into the open batch; asks for suppression */
void spool_fbl_record(struct spool *sp, struct msgid id, const struct proto_env *rec);
/* spool_feedback_suppress - THE call site of the suppression list (not built yet: only logs) */
void spool_feedback_suppress(struct spool *sp, const char *tenant, const char *addr, enum spool_fbl_reason reason,
                             const char *source_id);

/* spool_walk.c */
void spool_walk_start(struct spool *sp);
/* spool_walk_step - one bounded step; true when there is more to do */
bool spool_walk_step(struct spool *sp);

#endif
