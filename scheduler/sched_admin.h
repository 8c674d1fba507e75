/*
 * sched_admin - the scheduler's end of the admin command channel (common/proto_admin.h)
 *
 * sched_admin.c: the channel (take a request from its page, decode a copy, answer into the reply page)
 * and the operator's effects: suspend, suspend-ready-q, bounce, their lists and cancels. An effect is an
 * operator-made automation event (sched_tsa.h, scope "admin"): applied by the same machinery as the
 * automation's (path and queue suspensions, Bounce sweeps), stored by the spool like any firing and
 * restored at its walk, so it survives restarts; its id is its start (unix ms, unique).
 * sched_admin_view.c: the read-only ops: queue-summary (per path or rolled up by site, provider or source;
 * counts since start, rates over the last minute from 10 s snapshots, the last failure response of each
 * path), inspect-sched-q / inspect-ready-q and inspect-message-sched (one message's queue entries).
 */
#ifndef RINGMAIL_SCHED_ADMIN_H
#define RINGMAIL_SCHED_ADMIN_H

#include <jansson.h>

#include "common/proto_admin.h"
#include "common/proto_tsa.h"

struct scheduler;

/* lifecycle and the loop (scheduler_main.c) */
void sched_admin_init(struct scheduler *sc);
void sched_admin_fini(struct scheduler *sc);
/* sched_admin_poll - a new request in the page: answer it (cheap when there is none) */
void sched_admin_poll(struct scheduler *sc);
/* sched_admin_tick - the rate snapshots (every 10 s) */
void sched_admin_tick(struct scheduler *sc);
/* sched_admin_path_forget - the path is freed: its last response goes */
void sched_admin_path_forget(struct scheduler *sc, const char *source, const char *site);
/* sched_admin_response - a TransientFailure / Bounce response of a path (sched_tsa_node.c) */
void sched_admin_response(struct scheduler *sc, const char *source, const char *site, const char *text,
                          uint64_t at_ms);

/* ---- between sched_admin.c and sched_admin_view.c ---- */

#define SCHED_ADMIN_SNAPS 7        /* 10 s apart: a minute and the moment it started */
#define SCHED_ADMIN_SNAP_MS 10000u

/* the paths' outcome counters at one moment, by path index (paths live as long as the core) */
struct sched_admin_snap {
    uint64_t at_ms;
    uint32_t n;
    uint64_t *serial, *d, *t; /* per path by its serial (rising: core->paths order), paths come and go */
};

struct sched_admin {
    uint64_t page_seq;    /* the request page's sequence number when last looked at */
    uint64_t last_id;     /* the newest request id seen */
    uint64_t last_effect; /* the newest effect id given */
    uint64_t started_ms;
    struct sched_admin_snap snap[SCHED_ADMIN_SNAPS]; /* a ring; head is the newest */
    unsigned head, n_snap;
    json_t *last_resp; /* "SOURCE->SITE" -> {"text", "at_ms"}: the path's last failure response */
    char why[320];     /* an error text made for the current request */
};

/* sched_admin_view - queue-summary and the inspect ops: 200 and *result, or an HTTP code and *error (static) */
unsigned sched_admin_view(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                          const char **error);
/* sched_admin_effects - the effects in force (operator's and automation's) that hold this queue (domain,
 * tenant, campaign) or this path (source, site), as list items */
json_t *sched_admin_effects(struct scheduler *sc, const char *domain, const char *tenant, const char *campaign,
                            const char *source, const char *site);

/* sched_rebind.c: rebind and abort-ready-q-conn (200 and *result, or an HTTP code and *error) */
unsigned sched_rebind_op(struct scheduler *sc, const struct proto_admin_req *req, json_t **result, const char **error);
unsigned sched_rebind_abort(struct scheduler *sc, const struct proto_admin_req *req, json_t **result,
                            const char **error);

#endif
