/*
 * sched_pathcfg - the egress-side configuration of each path (source, site), and which egress worker
 * holds which generation of it
 *
 * Each path configuration gets an id (1..PROTO_PATH_ID_MAX; a freed path's id goes to a later path,
 * sched_pathcfg_forget) and a generation, bumped whenever its values change. Before a DELIVER goes to a worker,
 * sched_pathcfg_before_deliver() sends that worker the configuration (MSG_SCHEDULER_PATH_CONFIG, an
 * arena run of common/proto_path.h, through scheduler_send so it precedes the DELIVER on the ring)
 * unless the worker already has the current generation, and returns the id the DELIVER names.
 * A path nobody put a configuration for is filled from the node's [egress] keys
 * (sched_pathcfg_defaults) and refilled from them on reload (sched_pathcfg_reload); one that was put
 * keeps what was put until the next put.
 * When the table is full (PROTO_PATH_ID_MAX paths) or the arena refuses the run, the DELIVER names
 * 0 (the egress's node defaults) or a configuration the worker does not have yet: both are logged,
 * and the worker is sent the record again before its next DELIVER on that path.
 */
#ifndef RINGMAIL_SCHED_PATHCFG_H
#define RINGMAIL_SCHED_PATHCFG_H

#include <stdint.h>

#include "cfg/cfg.h"
#include "common/proto_path.h"

struct scheduler;
struct sched_pathcfg;

/* sched_pathcfg_new - an empty table; sched_pathcfg_free(NULL) is a no-op */
struct sched_pathcfg *sched_pathcfg_new(void);
void sched_pathcfg_free(struct sched_pathcfg *t);

/* sched_pathcfg_defaults - *out from the node's [egress] keys (no strings, hdr.path and generation 0) */
void sched_pathcfg_defaults(const struct cfg *cfg, struct proto_path *out);

/*
 * sched_pathcfg_put - the configuration of path (source: configuration source index, site: the site
 * name) from now on; p->hdr.path and generation are ignored (assigned here). The generation is
 * bumped when a value changed. 0, -EINVAL when the codec refuses p, -ENOSPC when the table is full.
 */
int sched_pathcfg_put(struct scheduler *sc, uint16_t source, const char *site, const struct proto_path *p);

/* sched_pathcfg_before_deliver - make sure `worker` (its instance) holds the current generation of the
 * path's configuration; returns its id for proto_deliver.path (0: node defaults) */
uint32_t sched_pathcfg_before_deliver(struct scheduler *sc, uint32_t worker, uint16_t source, const char *site);

/* sched_pathcfg_forget - the path (source, site) was freed: its id goes to the next new path, with a later
 * generation, so a worker holding the old configuration is sent the new one before a DELIVER names it */
void sched_pathcfg_forget(struct scheduler *sc, uint16_t source, const char *site);

/* sched_pathcfg_lookup - the id of (source, site)'s configuration (*gen its generation), 0 when it has none */
uint32_t sched_pathcfg_lookup(const struct sched_pathcfg *t, uint16_t source, const char *site, uint32_t *gen);

/* sched_pathcfg_worker_reset - the worker (re)started: it holds no configuration */
void sched_pathcfg_worker_reset(struct scheduler *sc, uint32_t worker);

/* sched_pathcfg_reload - paths filled from the node's keys get them again (new generation if changed) */
void sched_pathcfg_reload(struct scheduler *sc);

#endif
