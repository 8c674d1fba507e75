/*
 * spool - the spool role's internal interfaces (the one process that owns RocksDB)
 *
 * spool_main.c   setup, the role hooks, free-space guard, recovery after a write error
 * spool_store.c  store requests from ingress: validate, batch, one synced commit per pass, acks
 * spool_walk.c   announce every queued message to the scheduler, in bounded steps, on request
 *
 * The outbox holds ring records that could not be pushed (a full ring) and is retried first on every
 * pass, so an ack is delayed, never dropped.
 */
#ifndef RINGMAIL_SPOOL_H
#define RINGMAIL_SPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/msgid.h"
#include "../common/role_rt.h"
#include "spool_db.h"
#include "spool_log.h"
#include "../common/spool_rec.h"

struct spool_pending {
    unsigned from;     /* ingress instance */
    uint32_t from_gen; /* its generation when it asked */
    uint64_t token;
    struct msgid id;
    struct spool_rec rec; /* decoded envelope, for the Reception record */
};

struct spool_outbox_item {
    unsigned to;
    struct proto_rec rec;
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

    struct spool_db_walk walk;
    bool walking;
    bool space_low;
    uint64_t last_space_check_ns;
};

/* spool_store.c */
void spool_store_request(struct spool *sp, unsigned from, const struct proto_rec *rec);
void spool_store_commit(struct spool *sp);
/* spool_store_rejection - write the Rejection record an ingress handed over */
void spool_store_rejection(struct spool *sp, unsigned from, const struct proto_rec *rec);
/* spool_send - push to `to`, or keep it in the outbox for the next pass */
void spool_send(struct spool *sp, unsigned to, struct proto_rec *rec);
/* spool_outbox_flush - true when the outbox is empty afterwards */
bool spool_outbox_flush(struct spool *sp);

/* spool_walk.c */
void spool_walk_start(struct spool *sp);
/* spool_walk_step - one bounded step; true when there is more to do */
bool spool_walk_step(struct spool *sp);

#endif
