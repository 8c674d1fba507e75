/*
 * egress_dkim - DKIM signing in the egress worker (docs/configuration.md, "DKIM signing")
 *
 * The worker signs a message when its load comes back from the spool, before the first
 * transaction: the DKIM-Signature fields of every chosen signer (dkim/dkim_key.h says which) are
 * put in front of the message, once per load, for all the recipients and transactions of that
 * attempt. The fields are kept in a per-worker cache by message id (dkim/dkim_cache.h,
 * DKIM_CACHE_DEFAULT entries), so a retry on this worker does not hash the body again; a cached
 * entry is re-signed once half of its shortest x= validity has passed.
 * egress_dkim_init() loads the keys once at start and exits (fatal, with FILE:LINE) when one is
 * bad; egress_dkim_reload() (SIGHUP) loads them again and keeps the running keys when that fails,
 * logging every FILE:LINE error; a successful reload empties the cache.
 * egress_dkim_apply(): *out (heap) is the signed message, or NULL when no signer applies (or
 * signing failed: the message then goes unsigned and an error is logged).
 */
#ifndef RINGMAIL_EGRESS_DKIM_H
#define RINGMAIL_EGRESS_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "cfg/cfg.h"
#include "common/proto_env.h"
#include "dkim/dkim_cache.h"
#include "dkim/dkim_key.h"

#define EGRESS_DKIM_MAX_SIGNERS 8 /* signatures on one message */

struct egress_dkim {
    struct dkim_keyset *keys; /* NULL: no [[dkim]] configured */
    struct dkim_cache cache;
    uint64_t signed_msgs, cache_hits, failures;
};

void egress_dkim_init(struct egress_dkim *d, const struct cfg *c);
void egress_dkim_reload(struct egress_dkim *d, const struct cfg *c);
void egress_dkim_fini(struct egress_dkim *d);
/* egress_dkim_shed - forget the cached signatures (memory is short: they are computed again) */
void egress_dkim_shed(struct egress_dkim *d);
void egress_dkim_apply(struct egress_dkim *d, uint64_t id_hi, uint64_t id_lo, const struct proto_env *env,
                       const char *msg, size_t len, char **out, size_t *out_len);

#endif
