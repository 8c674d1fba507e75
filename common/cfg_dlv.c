/*
 * cfg_dlv - the delivery part of ringmail.toml: egress sources and pools, queue retry policies,
 * routes to fixed hosts, bounce classification files and DSNs
 *
 * cfg_dlv_default() / cfg_dlv_copy() / cfg_dlv_fini() manage the heap tables of struct cfg that
 * belong to delivery; cfg.c calls them. cfg_dlv_apply() reads the tables [[egress_source]],
 * [egress_pool.NAME], [queue.NAME], [route."DOMAIN"], [bounce] and [dsn] with the same error rules as
 * the rest of the file (every problem reported as FILE:LINE). The lookups answer the roles' questions.
 */
#include "cfg_dlv.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void cfg_dlv_default(struct cfg *c)
{
    c->egress_resolver = xstrdup("");
    c->egress_dns_timeout_ms = 5000;
    c->egress_connection_limit = 32;
    c->egress_max_deliveries_per_connection = 100;
    c->egress_max_ready = 1024;
    c->egress_connect_timeout_ms = 60000;
    c->egress_banner_timeout_ms = 60000;
    c->egress_command_timeout_ms = 300000; /* RFC 5321 4.5.3.2 */
    c->egress_data_timeout_ms = 600000;
    c->egress_idle_timeout_ms = 60000;
    c->egress_port = 25;

    c->n_sources = 1;
    c->sources = xcalloc(1, sizeof(*c->sources));
    c->sources[0] = (struct cfg_source){xstrdup("default"), xstrdup(""), xstrdup("")};
    c->n_pools = 1;
    c->pools = xcalloc(1, sizeof(*c->pools));
    c->pools[0].name = xstrdup("default");
    c->pools[0].n = 1;
    c->pools[0].source[0] = 0;
    c->pools[0].weight[0] = 1;
    c->n_queues = 1;
    c->queues = xcalloc(1, sizeof(*c->queues));
    c->queues[0] = (struct cfg_queue){xstrdup("default"), 20 * 60000, 8 * 3600000, UINT64_C(7) * 86400000, 0};
    c->n_routes = 0;
    c->routes = NULL;
    c->n_bounce_rules_files = 0;
    c->bounce_rules_files = NULL;
    c->dsn_enabled = true;
    c->dsn_postmaster = xstrdup(""); /* "" = MAILER-DAEMON@<hostname> */
}

void cfg_dlv_copy(struct cfg *dst, const struct cfg *src)
{
    dst->egress_resolver = dup_or_null(src->egress_resolver);
    dst->sources = src->n_sources ? xcalloc(src->n_sources, sizeof(*dst->sources)) : NULL;
    for (size_t i = 0; i < src->n_sources; i++) {
        dst->sources[i].name = dup_or_null(src->sources[i].name);
        dst->sources[i].bind_address = dup_or_null(src->sources[i].bind_address);
        dst->sources[i].ehlo_name = dup_or_null(src->sources[i].ehlo_name);
    }
    dst->pools = src->n_pools ? xcalloc(src->n_pools, sizeof(*dst->pools)) : NULL;
    for (size_t i = 0; i < src->n_pools; i++) {
        dst->pools[i] = src->pools[i];
        dst->pools[i].name = dup_or_null(src->pools[i].name);
    }
    dst->queues = src->n_queues ? xcalloc(src->n_queues, sizeof(*dst->queues)) : NULL;
    for (size_t i = 0; i < src->n_queues; i++) {
        dst->queues[i] = src->queues[i];
        dst->queues[i].name = dup_or_null(src->queues[i].name);
    }
    dst->routes = src->n_routes ? xcalloc(src->n_routes, sizeof(*dst->routes)) : NULL;
    for (size_t i = 0; i < src->n_routes; i++) {
        dst->routes[i] = src->routes[i];
        dst->routes[i].domain = dup_or_null(src->routes[i].domain);
        for (uint32_t j = 0; j < src->routes[i].n_hosts; j++)
            dst->routes[i].hosts[j].host = dup_or_null(src->routes[i].hosts[j].host);
    }
    dst->bounce_rules_files = src->n_bounce_rules_files ? xcalloc(src->n_bounce_rules_files, sizeof(char *)) : NULL;
    for (size_t i = 0; i < src->n_bounce_rules_files; i++)
        dst->bounce_rules_files[i] = dup_or_null(src->bounce_rules_files[i]);
    dst->dsn_postmaster = dup_or_null(src->dsn_postmaster);
}

void cfg_dlv_fini(struct cfg *c)
{
    free(c->egress_resolver);
    for (size_t i = 0; c->sources && i < c->n_sources; i++) {
        free(c->sources[i].name);
        free(c->sources[i].bind_address);
        free(c->sources[i].ehlo_name);
    }
    free(c->sources);
    for (size_t i = 0; c->pools && i < c->n_pools; i++)
        free(c->pools[i].name);
    free(c->pools);
    for (size_t i = 0; c->queues && i < c->n_queues; i++)
        free(c->queues[i].name);
    free(c->queues);
    for (size_t i = 0; c->routes && i < c->n_routes; i++) {
        free(c->routes[i].domain);
        for (uint32_t j = 0; j < c->routes[i].n_hosts; j++)
            free(c->routes[i].hosts[j].host);
    }
    free(c->routes);
    for (size_t i = 0; c->bounce_rules_files && i < c->n_bounce_rules_files; i++)
        free(c->bounce_rules_files[i]);
    free(c->bounce_rules_files);
    free(c->dsn_postmaster);
}

const struct cfg_queue *cfg_queue_for(const struct cfg *c, const char *queue_name, const char *domain)
{
    for (size_t i = 1; i < c->n_queues; i++)
        if (queue_name && strcasecmp(c->queues[i].name, queue_name) == 0)
            return &c->queues[i];
    for (size_t i = 1; i < c->n_queues; i++)
        if (domain && strcasecmp(c->queues[i].name, domain) == 0)
            return &c->queues[i];
    return &c->queues[0];
}

const struct cfg_route *cfg_route_for(const struct cfg *c, const char *domain)
{
    const struct cfg_route *any = NULL;
    for (size_t i = 0; i < c->n_routes; i++) {
        if (domain && strcasecmp(c->routes[i].domain, domain) == 0)
            return &c->routes[i];
        if (strcmp(c->routes[i].domain, "*") == 0)
            any = &c->routes[i];
    }
    return any;
}

int cfg_source_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_sources; i++)
        if (strcmp(c->sources[i].name, name) == 0)
            return (int)i;
    return -1;
}
