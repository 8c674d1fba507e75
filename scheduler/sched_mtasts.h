/*
 * sched_mtasts - MTA-STS (RFC 8461) in the scheduler: discovery, the policy cache, and the effect
 * of a policy on a domain's site and paths
 *
 * sched_mtasts_resolve() takes over a domain whose MX set just rolled up to `site` (and whose
 * paths have enable_mta_sts on): it looks up the TXT record _mta-sts.DOMAIN, fetches the policy
 * when the record's id is new or the cached policy's max_age has passed (sched_mtasts_fetch.h),
 * and then answers the core with sched_site_resolved(): the site as it was when no policy applies,
 * else "SITE;mta-sts=MODE:HASH" (MODE enforce or testing, HASH of the mode and the mx patterns), so
 * two domains with one MX set but different policies never share a ready queue, while domains
 * with the same policy still do. The domain's messages wait (RESOLVING) meanwhile: at most the TXT
 * lookup, the policy host's address lookup and one fetch (MTA_STS_FETCH_TIMEOUT_MS).
 * Cache (in memory only: forgotten at restart, refetched on first use): per domain the TXT id and
 * the policy, used until max_age passes. A TXT record that disappears, a failed lookup or a failed
 * fetch keep a fresh cached policy in force (RFC 8461 5.1); a policy `mode: none` drops it; a
 * refused policy file counts as a failed fetch. Entries beyond MTA_STS_CACHE_MAX are dropped, the
 * expired first.
 * sched_mtasts_path() gives a path of a tagged site its effect: the mode and the patterns travel to
 * the egress (proto_path), and under enforce enable_tls becomes Required (verified).
 */
#ifndef RINGMAIL_SCHED_MTASTS_H
#define RINGMAIL_SCHED_MTASTS_H

#include <stdint.h>

#include "common/proto_path.h"

#define MTA_STS_FETCH_TIMEOUT_MS 10000u
#define MTA_STS_CACHE_MAX 100000u

struct scheduler;

void sched_mtasts_init(struct scheduler *sc);
/* sched_mtasts_fini - after the DNS resolver is freed (its callbacks then never come) */
void sched_mtasts_fini(struct scheduler *sc);
/* sched_mtasts_tick - finished fetches (from the loop's tick) */
void sched_mtasts_tick(struct scheduler *sc);
/* sched_mtasts_resolve - answer the core for domain (lowercase) whose MX set rolled up to site */
void sched_mtasts_resolve(struct scheduler *sc, const char *domain, const char *site, uint32_t ttl_s);
/* sched_mtasts_path - the MTA-STS effect of site's tag on a path's egress options (patterns borrowed
 * from the scheduler until sched_mtasts_fini) */
void sched_mtasts_path(struct scheduler *sc, const char *site, struct proto_path *pp);

#endif
