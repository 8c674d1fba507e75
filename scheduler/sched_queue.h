/*
 * sched_queue - the core's scheduled queues: their names, creation with the queue_config hook, lookups
 *
 * A scheduled queue is the set of its messages in the wheel plus its counters (struct sched_queue
 * in sched_core.h); it routes to one domain and is freed with its last message.
 */
#ifndef RINGMAIL_SCHED_QUEUE_H
#define RINGMAIL_SCHED_QUEUE_H

#include "scheduler/sched_core.h"

/*
 * sched_queue_name - "campaign:tenant@domain" with missing (NULL or empty) parts left out,
 * KumoMTA's rule: tenant@domain, campaign:@domain, domain; sched_queue_name_routed() appends
 * "!routing_domain" when one is set. Domains are lowercased. 0, -EINVAL without a domain,
 * -ENAMETOOLONG when it does not fit `size`.
 */
int sched_queue_name(char *out, size_t size, const char *campaign, const char *tenant, const char *domain);
int sched_queue_name_routed(char *out, size_t size, const char *campaign, const char *tenant,
                            const char *domain, const char *routing_domain);
/* sched_queue_find - a live queue by name; its cfg may be changed in place (reload) */
struct sched_queue *sched_queue_find(const struct sched_core *core, const char *name);
/* sched_queue_foreach - every live queue (ringctl queue-summary) */
void sched_queue_foreach(const struct sched_core *core, void (*cb)(void *arg, const struct sched_queue *q),
                         void *arg);

/*
 * sched_queue_name_parts - split a queue name "campaign:tenant@domain!routing" (sched_queue_name's
 * forms): the parts before the last '@' of the part before the first '!'; campaign is what comes
 * before the first ':' of that (none without a ':'), tenant the rest. Lengths 0 for missing parts;
 * pointers into name.
 */
void sched_queue_name_parts(const char *name, const char **campaign, size_t *clen, const char **tenant,
                            size_t *tlen);
/*
 * sched_queue_suspend - messages of the scheduled queues of domain + tenant (+ campaign; NULL =
 * every campaign of the tenant, including none) do not leave the wheel before until_ms: a message
 * that comes due is re-armed at until_ms (or its expiry, if earlier) without counting an attempt.
 * until_ms 0 (or past) cancels. Kept in a table, so queues created later pick it up. Messages
 * already READY or in flight are not recalled. tenant NULL: every tenant of the domain (with campaign:
 * that campaign of every tenant); "" with no campaign is -EINVAL, as is a missing domain. A suspension
 * that ends early (cancelled or shortened) releases the messages it re-armed: they are due at its new
 * end, now for a cancel (one walk over the messages).
 * sched_queue_suspensions() lists the active ones (array owned by the core, valid until its next
 * change). Cost: O(queues) per call.
 */
int sched_queue_suspend(struct sched_core *core, const char *domain, const char *tenant, const char *campaign,
                        uint64_t until_ms);
size_t sched_queue_suspensions(struct sched_core *core, const struct sched_queue_hold **out);

/* ---- between the core's files only ---- */

/* sched_queue_get - the named queue, created routing to domain_lc; NULL when it routes elsewhere */
struct sched_queue *sched_queue_get(struct sched_core *core, const char *name, const char *domain_lc);
/* sched_queue_put - free the queue when it has no message left */
void sched_queue_put(struct sched_core *core, struct sched_queue *q);

#endif
