/*
 * spool_dsn_limit - how many DSNs one message, and one address, may receive ([dsn] max_per_message,
 * max_per_sender per sender_window)
 *
 * A DSN goes to the envelope sender, which anyone can forge: without a bound, one message to a thousand
 * dead addresses at a thousand domains makes a thousand DSNs to a victim (backscatter). The count of a
 * message travels in its envelope (metadata "dsn_sent", so it survives restarts); the count of an address
 * is kept in memory, in a fixed table of SPOOL_DSN_SENDERS slots (two addresses that share a slot share a
 * count: the bound can only get stricter). A DSN over either bound is not made; the Bounce records are
 * written as always, and one warning per address and window says so.
 */
#ifndef RINGMAIL_SPOOL_DSN_LIMIT_H
#define RINGMAIL_SPOOL_DSN_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/proto_env.h"

#define SPOOL_DSN_SENDERS 65536
#define SPOOL_DSN_META "dsn_sent"

struct spool_dsn_sender {
    uint64_t hash;
    uint64_t window_start_ns;
    uint32_t count;
};

struct spool_dsn_limit {
    struct spool_dsn_sender *slots; /* SPOOL_DSN_SENDERS, allocated at the first use */
    uint64_t suppressed;            /* DSNs not made, since start */
};

/* spool_dsn_meta - the count of DSNs the envelope says its message caused (0 when absent or not a number) */
uint32_t spool_dsn_meta(const struct proto_env *rec);
/* spool_dsn_admit - whether one more DSN to `sender` for a message that caused `sent` already is within
 * the limits (0: none); counts it against the sender when it is */
bool spool_dsn_admit(struct spool_dsn_limit *l, const char *sender, uint32_t sent, uint32_t max_per_message,
                     uint32_t max_per_sender, uint64_t window_ns, uint64_t now_ns);
void spool_dsn_limit_fini(struct spool_dsn_limit *l);

#endif
