/*
 * sched_site - recipient domains and the sites (MX rollups) they resolve to
 *
 * A domain is created with the first queue routing to it and freed with the last; it caches its
 * site until the resolution's ttl runs out, and holds the RESOLVING messages while hooks.resolve
 * is unanswered. A site lives while a domain resolves to it or a path hangs off it (sched_path_evict frees
 * the rest).
 */
#ifndef RINGMAIL_SCHED_SITE_H
#define RINGMAIL_SCHED_SITE_H

#include "scheduler/sched_core.h"

/* sched_site_name - the MX rollup name: hosts lowercased, trailing dots dropped, sorted, deduplicated, joined by ',' */
int sched_site_name(char *out, size_t size, const char *const *hosts, size_t count);

/* sched_site_resolved - the domain's MX set rolls up to site_name; -ENOENT for an unknown domain */
int sched_site_resolved(struct sched_core *core, const char *domain, const char *site_name, uint32_t ttl_s,
                        uint64_t now_ms);
/* sched_site_failed - resolution failed: permanent bounces the waiting messages, else backoff */
int sched_site_failed(struct sched_core *core, const char *domain, bool permanent, const char *reason,
                      uint64_t now_ms);

/* ---- between the core's files only ---- */

/* sched_site_domain_get - the domain named domain_lc (lowercase), created when new */
struct sched_domain *sched_site_domain_get(struct sched_core *core, const char *domain_lc);
/* sched_site_domain_put - one queue less routes to the domain: freed when none is left */
void sched_site_domain_put(struct sched_core *core, struct sched_domain *d);

#endif
