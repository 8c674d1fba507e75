/*
 * spool_supp - the suppression list: durable in the spool's "suppression" column family, published to the
 * ingress as a snapshot file of keyed hashes (common/supp.h), checked at store and before each load for
 * delivery, fed by hard-class Bounce records and by the admin command channel
 *
 * Entries are keyed by tenant ("" = global) and lower-cased address; each keeps its reason, the record id
 * that caused it (source_id), first and last seen, and an optional expiry (0 = never). An entry counts for
 * a message when its tenant is "" or the message's `tenant` metadata, and it has not expired.
 *
 * spool_supp_add() is the entry point for automatic feeds (hard bounces here; complaints and out-of-band
 * bounces later): the entry goes into the open write batch (durable with the commit of the pass, together
 * with whatever caused it) with a SuppressionAdded log record; its hash is in the next snapshot at once.
 * A repeated add keeps first_seen and the first source_id and moves last_seen. It returns 0, or -EINVAL
 * for a tenant or address that is not one (see common/supp.h), -ENOTSUP when [suppression] is disabled.
 *
 * Snapshot: DATA_DIR/published/suppression.snap, written whole (temporary file and rename) at most every
 * SPOOL_SUPP_SNAP_MS while the list changed, and at start. The hashes are kept in memory (8 bytes an
 * entry); the key is new at every start. Expired entries suppress nothing in the spool's checks at once; they
 * leave the family and the snapshot (so the ingress) at the next sweep, at most every SPOOL_SUPP_SWEEP_S.
 * Admin ops (suppression-check, -list, -add, -remove, -import) are answered by spool_supp_admin(); they
 * write with their own synced batch before they answer.
 */
#ifndef RINGMAIL_SPOOL_SUPP_H
#define RINGMAIL_SPOOL_SUPP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/msgid.h"
#include "common/proto_env.h"
#include "common/supp.h"

#define SPOOL_SUPP_SNAP_MS 250
#define SPOOL_SUPP_SWEEP_S 60 /* expired entries leave the family and the set at most this often */

struct spool;
struct proto_admin_req;

enum spool_supp_reason {
    SPOOL_SUPP_HARD_BOUNCE = SUPP_REASON_HARD_BOUNCE,
    SPOOL_SUPP_COMPLAINT = SUPP_REASON_COMPLAINT,
    SPOOL_SUPP_OOB = SUPP_REASON_OOB,
    SPOOL_SUPP_UNSUBSCRIBE = SUPP_REASON_UNSUBSCRIBE,
    SPOOL_SUPP_ADMIN = SUPP_REASON_ADMIN,
};

/* spool_supp_open - the in-memory hash set from the family, and the first snapshot; fatal when unreadable */
void spool_supp_open(struct spool *sp);
void spool_supp_close(struct spool *sp);
/* spool_supp_tick - snapshot when changed, expired entries out */
void spool_supp_tick(struct spool *sp, uint64_t now_ns);

int spool_supp_add(struct spool *sp, const char *tenant /* "" = global */, const char *addr,
                   enum spool_supp_reason reason, const char *source_id, uint64_t expires_unix /* 0 = never */);
/* spool_supp_lookup - the entry that suppresses addr for tenant (global first), from the database; false: none */
bool spool_supp_lookup(struct spool *sp, const char *tenant, const char *addr, struct supp_entry *out);
/*
 * spool_supp_store - for a message being stored: its queued recipients that are suppressed become final
 * (PROTO_RCPT_ADMIN_BOUNCED) in rec; returns how many, *hits (heap, rcpt_count bytes; NULL when none) says
 * which. spool_supp_store_log() then writes their Suppressed records into the batch and frees hits.
 */
uint32_t spool_supp_store(struct spool *sp, struct proto_env *rec, uint8_t **hits);
void spool_supp_store_log(struct spool *sp, struct msgid id, const struct proto_env *rec, uint8_t *hits);
/* spool_supp_before_load - the same for a stored message about to be loaded for delivery: the change goes
 * into the batch (the scheduler hears after the commit) and into loaded, the copy the egress gets */
void spool_supp_before_load(struct spool *sp, struct msgid id, struct proto_env *loaded);
/* spool_supp_op - the op is one of the suppression list's */
bool spool_supp_op(const struct proto_admin_req *req);
/* spool_supp_admin - answer one; the HTTP status, *result (json_t *) or *error */
unsigned spool_supp_admin(struct spool *sp, const struct proto_admin_req *req, void **result, const char **error);

#endif
