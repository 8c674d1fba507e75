/*
 * egress_path - a worker's path configurations (contract in egress_path.h)
 */
#include "egress/egress_path.h"

#include "common/mta_sts.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

void egress_path_table_init(struct egress_paths *t)
{
    memset(t, 0, sizeof(*t));
    t->warned = xcalloc(PROTO_PATH_ID_MAX / 8 + 1, 1);
}

void egress_path_table_fini(struct egress_paths *t)
{
    for (uint32_t i = 0; i < t->cap; i++)
        egress_path_put(t->by_id[i]);
    free(t->by_id);
    free(t->warned);
    memset(t, 0, sizeof(*t));
}

void egress_path_put(struct egress_path *p)
{
    if (!p || --p->refs > 0)
        return;
    free(p->prohibited);
    free(p->skip);
    for (size_t i = 0; i < p->n_sts_mx; i++)
        free(p->sts_mx[i]);
    free(p->sts_mx);
    free(p);
}

/* parse_list - CIDR texts the decoder checked; false when the parser here disagrees */
static bool parse_list(const char *const *txt, size_t n, struct cfg_cidr **out)
{
    char why[128];
    *out = n ? xcalloc(n, sizeof(**out)) : NULL;
    for (size_t i = 0; i < n; i++)
        if (!cfg_value_cidr_parse(txt[i], &(*out)[i], why, sizeof(why)))
            return false;
    return true;
}

static struct egress_path *from_proto(const struct proto_path *pp)
{
    struct egress_path *p = xcalloc(1, sizeof(*p));
    p->refs = 1;
    p->h = pp->hdr;
    snprintf(p->ehlo, sizeof(p->ehlo), "%s", pp->ehlo_domain ? pp->ehlo_domain : "");
    snprintf(p->site, sizeof(p->site), "%s", pp->site ? pp->site : "");
    p->n_prohibited = pp->hdr.n_prohibited;
    p->n_skip = pp->hdr.n_skip;
    p->sts_mx = pp->hdr.n_sts_mx ? xcalloc(pp->hdr.n_sts_mx, sizeof(*p->sts_mx)) : NULL;
    for (size_t i = 0; i < pp->hdr.n_sts_mx; i++)
        p->sts_mx[i] = xstrdup(pp->sts_mx[i]);
    p->n_sts_mx = pp->hdr.n_sts_mx;
    if (!parse_list(pp->prohibited, p->n_prohibited, &p->prohibited) || !parse_list(pp->skip, p->n_skip, &p->skip)) {
        egress_path_put(p);
        return NULL;
    }
    return p;
}

int egress_path_receive(struct egress_paths *t, const void *run, size_t len, const char **why)
{
    struct proto_path pp;

    if (proto_path_decode(run, len, &pp, why) < 0)
        return -EBADMSG;
    struct egress_path *p = from_proto(&pp);
    proto_path_fini(&pp);
    if (!p) {
        *why = "a CIDR the node cannot parse";
        return -EBADMSG;
    }
    uint32_t id = p->h.path;
    if (id >= t->cap) {
        uint32_t cap = t->cap ? t->cap : 64;
        while (cap <= id)
            cap *= 2;
        t->by_id = xrealloc(t->by_id, cap * sizeof(*t->by_id));
        memset(t->by_id + t->cap, 0, (cap - t->cap) * sizeof(*t->by_id));
        t->cap = cap;
    }
    egress_path_put(t->by_id[id]);
    t->by_id[id] = p;
    t->warned[id / 8] &= (uint8_t) ~(1u << (id % 8));
    return 0;
}

struct egress_path *egress_path_get(struct egress_paths *t, const struct cfg *cfg, uint32_t id)
{
    if (id < t->cap && t->by_id[id]) {
        t->by_id[id]->refs++;
        return t->by_id[id];
    }
    if (id && id <= PROTO_PATH_ID_MAX && !(t->warned[id / 8] & (1u << (id % 8)))) {
        t->warned[id / 8] |= (uint8_t)(1u << (id % 8));
        log_warn("DELIVER names path configuration %u, which this worker does not hold: node defaults", id);
    }
    struct proto_path d;
    proto_path_node_defaults(&d, cfg->egress_connect_timeout_ms, cfg->egress_banner_timeout_ms,
                             cfg->egress_command_timeout_ms, cfg->egress_data_timeout_ms, cfg->egress_idle_timeout_ms,
                             cfg->egress_port, cfg->egress_max_deliveries_per_connection);
    struct egress_path *p = from_proto(&d);
    if (!p)
        panic("node defaults: no path configuration");
    return p;
}

bool egress_path_tls_required(const struct egress_path *p)
{
    return p->h.enable_tls == PROTO_PATH_TLS_REQUIRED || p->h.enable_tls == PROTO_PATH_TLS_REQUIRED_INSECURE;
}

bool egress_path_match(const struct cfg_cidr *nets, size_t n, const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return cfg_value_cidr_match(nets, n, AF_INET, &((const struct sockaddr_in *)a)->sin_addr);
    if (a->ss_family == AF_INET6)
        return cfg_value_cidr_match(nets, n, AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

bool egress_path_sts_mx_ok(const struct egress_path *p, const char *host)
{
    if (p->h.mta_sts == MTA_STS_MODE_OFF)
        return true;
    return mta_sts_mx_allowed((const char *const *)p->sts_mx, p->n_sts_mx, host);
}
