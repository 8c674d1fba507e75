/*
 * sched_path - egress paths: one ready queue per (source, site)
 *
 * A path is created the first time a message is placed on it; its options come from
 * hooks.path_config (defaults: connection_limit 32, max_deliveries_per_connection 1024,
 * max_ready 1024). sched_core_dispatch() walks the paths that can make progress (the active
 * list) and hands their READY messages to leases (sched_lease.h), so dispatch is
 * O(messages handed out).
 */
#ifndef RINGMAIL_SCHED_PATH_H
#define RINGMAIL_SCHED_PATH_H

#include "scheduler/sched_core.h"

struct sched_path {
    struct sched_site *site;
    uint32_t source;
    struct sched_path_options opt;
    struct sched_mlist ready;
    uint32_t in_flight, connections, idle;
    struct sched_lease *idle_head;
    struct sched_path *act_next, *act_prev;
    bool active;
    uint64_t delivered, transient, bounced;
};

void sched_path_options_default(struct sched_path_options *opt);
/* sched_path_options_set - new options (reload, SetConfig); open leases above a lowered limit drain */
void sched_path_options_set(struct sched_core *core, struct sched_path *path, const struct sched_path_options *opt);
const char *sched_path_source_name(const struct sched_core *core, const struct sched_path *path);
void sched_path_foreach(const struct sched_core *core, void (*cb)(void *arg, const struct sched_path *p), void *arg);

/* ---- between the core's files only ---- */

/* sched_path_place - a message leaves the wheel or a waiting list for `site` */
void sched_path_place(struct sched_core *core, struct sched_msg *msg, struct sched_site *site, uint64_t now_ms);
/* sched_path_unready - take a READY message off its path */
void sched_path_unready(struct sched_core *core, struct sched_msg *msg);
/* sched_path_update - put the path on the active list, or take it off, after any change of its
 * ready count, idle leases or connections */
void sched_path_update(struct sched_core *core, struct sched_path *path);
/* sched_path_rotate - an active path goes to the back of the active list, for fairness */
void sched_path_rotate(struct sched_core *core, struct sched_path *path);

static inline bool sched_path_can_open(const struct sched_path *p)
{
    return p->connections < p->opt.connection_limit;
}

#endif
