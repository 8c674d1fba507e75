/*
 * sched_shaping - the scheduler on the node's shaping files: each path's options, MX rollup, reload
 *
 * sched_shaping_init() loads the node's shaping (policy/shaping_node.h: [shaping] files or the
 * built-in file, then the operator's override file) and looks up the MX of every ["domain"] block
 * that rolls up (shaping_site_set), so such a block applies to every domain of its site.
 * sched_shaping_path() is the core's path_config hook: the path's options resolved for the domain
 * that created it (with active automation overrides), into the core's options and, for the egress
 * side (timeouts, port, EHLO name, TLS, prohibited/skip hosts, recipients per batch), sched_pathcfg.
 * sched_shaping_site() names the site of a domain: its MX rollup, or the domain itself when a
 * ["domain"] block says mx_rollup = false (its own ready queue, as KumoMTA does).
 * sched_shaping_reload() loads the files again; a file that does not load changes nothing (the
 * supervisor refuses such a reload before it gets here). Every live path is resolved again and its new
 * options apply at once (sched_path_options_set: no connection is dropped).
 * sched_shaping_reconfigure() resolves one path again (automation overrides appeared or expired).
 */
#ifndef RINGMAIL_SCHED_SHAPING_H
#define RINGMAIL_SCHED_SHAPING_H

#include "policy/shaping.h"
#include "scheduler/sched_core.h"

struct scheduler;

void sched_shaping_init(struct scheduler *sc);
void sched_shaping_fini(struct scheduler *sc);
void sched_shaping_reload(struct scheduler *sc);
void sched_shaping_path(void *arg, const char *source, const char *site, const char *domain,
                        struct sched_path_options *opt);
/* sched_shaping_site - heap site name for domain given its MX rollup name (mx_site: dns_site_name) */
char *sched_shaping_site(struct scheduler *sc, const char *domain, const char *mx_site);
void sched_shaping_reconfigure(struct scheduler *sc, const char *source, const char *site);
/* sched_shaping_domain_of - the domain a path was created for (NULL when unknown) */
const char *sched_shaping_domain_of(struct scheduler *sc, const char *source, const char *site);
/* sched_shaping_provider_of - the provider name of a path's resolved shaping ("" none or unknown) */
const char *sched_shaping_provider_of(struct scheduler *sc, const char *source, const char *site);
/* sched_shaping_path_forget - the path is freed: its domain and provider names go (set again if it comes back) */
void sched_shaping_path_forget(struct scheduler *sc, const char *source, const char *site);

/* sched_shaping_mta_sts_enabled - enable_mta_sts of the domain's paths to mx_site (source overrides are not
 * consulted: the policy check runs once per domain, before a source is picked); true by default */
bool sched_shaping_mta_sts_enabled(struct scheduler *sc, const char *domain, const char *mx_site);

#endif
