/*
 * egress_path - the path configurations a worker holds (id -> config), as the scheduler sent them
 *
 * egress_path_receive() takes a MSG_SCHEDULER_PATH_CONFIG run: decoded strictly from a private copy
 * (common/proto_path.h), its CIDRs parsed; it replaces what the table held for that id. A run that
 * fails is logged and dropped (the table keeps the previous generation, if any).
 * egress_path_get() gives the configuration a DELIVER names, with a reference the job holds until it
 * ends (a newer generation arriving meanwhile does not change a running attempt): id 0 is the node's
 * [egress] keys; an id the table does not hold is logged once per id and gets the node's keys too.
 * The table is bounded: ids are 1..PROTO_PATH_ID_MAX, one slot each.
 * Internal to the egress library.
 */
#ifndef RINGMAIL_EGRESS_PATH_H
#define RINGMAIL_EGRESS_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cfg/cfg.h"
#include "cfg/cfg_value.h"
#include "common/proto_path.h"

struct egress_path {
    unsigned refs;
    struct proto_path_hdr h; /* path 0: the node's keys */
    char ehlo[PROTO_PATH_EHLO_MAX + 1];
    char site[PROTO_PATH_SITE_MAX + 1]; /* the scheduler's name of the site; "" for path 0 */
    size_t n_prohibited, n_skip;
    struct cfg_cidr *prohibited, *skip;
    size_t n_sts_mx;
    char **sts_mx; /* MTA-STS mx patterns (h.mta_sts says the mode) */
};

struct egress_paths {
    struct egress_path **by_id; /* [id], cap slots */
    uint32_t cap;
    uint8_t *warned; /* one bit per id: "unknown id" logged */
};

void egress_path_table_init(struct egress_paths *t);
void egress_path_table_fini(struct egress_paths *t);
/* egress_path_receive - store the run's configuration; 0, or -EBADMSG with *why (static) */
int egress_path_receive(struct egress_paths *t, const void *run, size_t len, const char **why);
/* egress_path_get - a reference to configuration `id` (see the head); never NULL */
struct egress_path *egress_path_get(struct egress_paths *t, const struct cfg *cfg, uint32_t id);
/* egress_path_put - drop a reference; egress_path_put(NULL) is a no-op */
void egress_path_put(struct egress_path *p);
/* egress_path_tls_required - Required or RequiredInsecure: never send in plaintext */
bool egress_path_tls_required(const struct egress_path *p);
/* egress_path_sts_mx_ok - host may be used under the path's MTA-STS policy (true when none applies) */
bool egress_path_sts_mx_ok(const struct egress_path *p, const char *host);
/* egress_path_match - is the address (AF_INET or AF_INET6 sockaddr) inside one of nets[0..n)? */
bool egress_path_match(const struct cfg_cidr *nets, size_t n, const struct sockaddr_storage *a);

#endif
