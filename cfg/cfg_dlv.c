/*
 * cfg_dlv - the delivery part of ringmail.toml: egress sources and pools, queue retry policies,
 * routes to fixed hosts, bounce classification files and DSNs
 *
 * cfg_dlv_default() / cfg_dlv_copy() / cfg_dlv_fini() manage the heap tables of struct cfg that
 * belong to delivery; cfg.c calls them. cfg_dlv_apply() reads the tables [[egress_source]],
 * [egress_pool.NAME], [queue.NAME], [route."DOMAIN"], [bounce] and [dsn] with the same error rules as
 * the rest of the file (every problem reported as FILE:LINE). The lookups answer the roles' questions.
 */
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_fbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "cfg/cfg_toml.h"
#include "cfg/cfg_warmup.h"
#include "base/buf.h"
#include "base/hostport.h"
#include "base/mem.h"

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
    c->egress_min_data_rate = 10240;
    c->egress_port = 25;
    c->egress_tls_ca_file = xstrdup("");
    c->egress_tls_client_certificate = xstrdup("");
    c->egress_tls_client_private_key = xstrdup("");

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
    c->dsn_max_per_message = 3;
    c->dsn_max_per_sender = 100;
    c->dsn_sender_window_ms = 3600000;
    c->dsn_postmaster = xstrdup(""); /* "" = MAILER-DAEMON@<hostname> */
}

void cfg_dlv_copy(struct cfg *dst, const struct cfg *src)
{
    dst->egress_resolver = dup_or_null(src->egress_resolver);
    dst->egress_tls_ca_file = dup_or_null(src->egress_tls_ca_file);
    dst->egress_tls_client_certificate = dup_or_null(src->egress_tls_client_certificate);
    dst->egress_tls_client_private_key = dup_or_null(src->egress_tls_client_private_key);
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
    cfg_warmup_copy(dst, src);
}

void cfg_dlv_fini(struct cfg *c)
{
    free(c->egress_resolver);
    free(c->egress_tls_ca_file);
    free(c->egress_tls_client_certificate);
    free(c->egress_tls_client_private_key);
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
    cfg_warmup_fini(c);
}

const struct cfg_queue *cfg_dlv_queue_for(const struct cfg *c, const char *queue_name, const char *domain)
{
    for (size_t i = 1; i < c->n_queues; i++)
        if (queue_name && strcasecmp(c->queues[i].name, queue_name) == 0)
            return &c->queues[i];
    for (size_t i = 1; i < c->n_queues; i++)
        if (domain && strcasecmp(c->queues[i].name, domain) == 0)
            return &c->queues[i];
    return &c->queues[0];
}

const struct cfg_route *cfg_dlv_route_for(const struct cfg *c, const char *domain)
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

int cfg_dlv_source_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_sources; i++)
        if (strcmp(c->sources[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- reading the tables ---- */

static bool dlv_duration(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, uint64_t *out)
{
    char q[96];
    uint64_t u = 0;

    if (v->type == CFG_TOML_STRING && cfg_value_parse_duration(v->str, &u) && u > 0) {
        *out = u;
        return true;
    }
    if (v->type == CFG_TOML_INT && v->i > 0) {
        *out = (uint64_t)v->i;
        return true;
    }
    cfg_errf(e, v->line, "%s: %s is not a duration (a number with ms, s, m, h or d, above zero)", key,
             v->type == CFG_TOML_STRING ? cfg_quote(q, sizeof(q), v->str) : cfg_toml_type_name(v->type));
    return false;
}

static bool dlv_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool dlv_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void dlv_sources(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a)
{
    char q[96];

    if (!cfg_expect(e, a, CFG_TOML_ARRAY, "egress_source", "an array of tables ([[egress_source]])"))
        return;
    if (a->n_children == 0 || a->n_children > CFG_MAX_SOURCES) {
        cfg_errf(e, a->line, "egress_source: between 1 and %d sources", CFG_MAX_SOURCES);
        return;
    }
    struct cfg_source *src = xcalloc(a->n_children, sizeof(*src));
    size_t n = 0;
    for (size_t i = 0; i < a->n_children; i++) {
        const struct cfg_toml_node *t = a->children[i];
        if (!cfg_expect(e, t, CFG_TOML_TABLE, "egress_source", "a table"))
            continue;
        struct cfg_source s = {NULL, xstrdup(""), xstrdup("")};
        for (size_t j = 0; j < t->n_children; j++) {
            const struct cfg_toml_node *v = t->children[j];
            if (strcmp(v->key, "name") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, "egress_source.name", "a string"))
                    continue;
                if (!dlv_name_ok(v->str)) {
                    cfg_errf(e, v->line, "egress_source.name: %s must be 1..64 of letters, digits, '.', '_', '-'",
                             cfg_quote(q, sizeof(q), v->str));
                    continue;
                }
                for (size_t k = 0; k < n; k++)
                    if (strcmp(src[k].name, v->str) == 0)
                        cfg_errf(e, v->line, "egress_source.name: %s is defined twice", cfg_quote(q, sizeof(q), v->str));
                free(s.name);
                s.name = xstrdup(v->str);
            } else if (strcmp(v->key, "bind_address") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, "egress_source.bind_address", "a string"))
                    continue;
                if (v->str[0] && !dlv_ip_literal(v->str)) {
                    cfg_errf(e, v->line, "egress_source.bind_address: %s is not an IPv4 or IPv6 address",
                             cfg_quote(q, sizeof(q), v->str));
                    continue;
                }
                free(s.bind_address);
                s.bind_address = xstrdup(v->str);
            } else if (strcmp(v->key, "ehlo_name") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, "egress_source.ehlo_name", "a string"))
                    continue;
                if (v->str[0] && !cfg_value_valid_hostname(v->str, strlen(v->str))) {
                    cfg_errf(e, v->line, "egress_source.ehlo_name: %s is not a valid host name",
                             cfg_quote(q, sizeof(q), v->str));
                    continue;
                }
                free(s.ehlo_name);
                s.ehlo_name = xstrdup(v->str);
            } else {
                char key[96];
                snprintf(key, sizeof(key), "egress_source.%s", v->key);
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
            }
        }
        if (!s.name) {
            cfg_errf(e, t->line, "egress_source: every source needs a name");
            free(s.bind_address);
            free(s.ehlo_name);
            continue;
        }
        src[n++] = s;
    }
    for (size_t i = 0; i < c->n_sources; i++) {
        free(c->sources[i].name);
        free(c->sources[i].bind_address);
        free(c->sources[i].ehlo_name);
    }
    free(c->sources);
    c->sources = src;
    c->n_sources = n;
}

/* pool 0 "default": every source with weight 1 until [egress_pool.default] says otherwise */
static void dlv_default_pool(struct cfg *c)
{
    struct cfg_pool *p = &c->pools[0];
    p->n = 0;
    for (size_t i = 0; i < c->n_sources && i < CFG_MAX_SOURCES; i++) {
        p->source[p->n] = (uint32_t)i;
        p->weight[p->n++] = 1;
    }
}

static void dlv_pool_member(struct cfg_errs *e, const struct cfg *c, struct cfg_pool *p, const char *key,
                            const struct cfg_toml_node *m)
{
    char q[96];
    const char *name = NULL;
    int64_t weight = 1;
    unsigned line = m->line;

    if (m->type == CFG_TOML_STRING) {
        name = m->str;
    } else if (m->type == CFG_TOML_TABLE) {
        for (size_t k = 0; k < m->n_children; k++) {
            const struct cfg_toml_node *v = m->children[k];
            if (strcmp(v->key, "name") == 0 && cfg_expect(e, v, CFG_TOML_STRING, key, "a source name"))
                name = v->str;
            else if (strcmp(v->key, "weight") == 0 && cfg_int_in(e, v, key, 1, 1000))
                weight = v->i;
            else if (strcmp(v->key, "name") != 0 && strcmp(v->key, "weight") != 0)
                cfg_errf(e, v->line, "%s: unknown key %s (name, weight)", key, cfg_quote(q, sizeof(q), v->key));
        }
    } else {
        cfg_errf(e, line, "%s: expected a source name or { name = ..., weight = ... }, got %s", key,
                 cfg_toml_type_name(m->type));
        return;
    }
    if (!name) {
        cfg_errf(e, line, "%s: a member without a source name", key);
        return;
    }
    int idx = cfg_dlv_source_find(c, name);
    if (idx < 0) {
        cfg_errf(e, line, "%s: no [[egress_source]] named %s", key, cfg_quote(q, sizeof(q), name));
        return;
    }
    for (uint32_t k = 0; k < p->n; k++)
        if (p->source[k] == (uint32_t)idx) {
            cfg_errf(e, line, "%s: source %s is listed twice", key, cfg_quote(q, sizeof(q), name));
            return;
        }
    p->source[p->n] = (uint32_t)idx;
    p->weight[p->n++] = (uint32_t)weight;
}

static void dlv_pools(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96], key[128];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "egress_pool", "a table of pools ([egress_pool.NAME])"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *pt = t->children[i];
        snprintf(key, sizeof(key), "egress_pool.%s", pt->key);
        if (!cfg_expect(e, pt, CFG_TOML_TABLE, key, "a table"))
            continue;
        if (!dlv_name_ok(pt->key)) {
            cfg_errf(e, pt->line, "%s: a pool name is 1..64 of letters, digits, '.', '_', '-'", key);
            continue;
        }
        struct cfg_pool p = {0};
        bool has_sources = false;
        for (size_t j = 0; j < pt->n_children; j++) {
            const struct cfg_toml_node *v = pt->children[j];
            char k2[160];
            snprintf(k2, sizeof(k2), "%s.%s", key, v->key);
            if (strcmp(v->key, "sources") != 0) {
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), k2));
                continue;
            }
            if (!cfg_expect(e, v, CFG_TOML_ARRAY, k2, "an array"))
                continue;
            has_sources = v->n_children > 0;
            for (size_t m = 0; m < v->n_children && p.n < CFG_MAX_SOURCES; m++)
                dlv_pool_member(e, c, &p, k2, v->children[m]);
        }
        if (!has_sources) {
            cfg_errf(e, pt->line, "%s: a pool needs at least one source (sources = [...])", key);
            continue;
        }
        if (p.n == 0)
            continue; /* every member was wrong, and said so */
        size_t slot = 0;
        if (strcmp(pt->key, "default") != 0) {
            if (c->n_pools >= CFG_MAX_POOLS) {
                cfg_errf(e, pt->line, "%s: at most %d pools", key, CFG_MAX_POOLS);
                continue;
            }
            c->pools = xrealloc(c->pools, (c->n_pools + 1) * sizeof(*c->pools));
            slot = c->n_pools++;
            c->pools[slot].name = NULL;
        }
        free(c->pools[slot].name);
        p.name = xstrdup(pt->key);
        c->pools[slot] = p;
    }
}

static int dlv_pool_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_pools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void dlv_queues(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96], key[160];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "queue", "a table of queues ([queue.NAME])"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *qt = t->children[i];
        snprintf(key, sizeof(key), "queue.%s", qt->key);
        if (!cfg_expect(e, qt, CFG_TOML_TABLE, key, "a table"))
            continue;
        if (!qt->key[0] || strlen(qt->key) > 255 || strpbrk(qt->key, " \t\r\n")) {
            cfg_errf(e, qt->line, "%s: a queue name or domain without spaces, up to 255 characters", key);
            continue;
        }
        struct cfg_queue nq = c->queues[0];
        nq.name = NULL;
        for (size_t j = 0; j < qt->n_children; j++) {
            const struct cfg_toml_node *v = qt->children[j];
            char k2[200];
            snprintf(k2, sizeof(k2), "%s.%s", key, v->key);
            if (strcmp(v->key, "retry_interval") == 0) {
                dlv_duration(e, v, k2, &nq.retry_interval_ms);
            } else if (strcmp(v->key, "max_retry_interval") == 0) {
                dlv_duration(e, v, k2, &nq.max_retry_interval_ms);
            } else if (strcmp(v->key, "max_age") == 0) {
                dlv_duration(e, v, k2, &nq.max_age_ms);
            } else if (strcmp(v->key, "egress_pool") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, k2, "a pool name"))
                    continue;
                int p = dlv_pool_find(c, v->str);
                if (p < 0)
                    cfg_errf(e, v->line, "%s: no [egress_pool.%s]", k2, cfg_quote(q, sizeof(q), v->str));
                else
                    nq.pool = (uint32_t)p;
            } else {
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), k2));
            }
        }
        if (nq.retry_interval_ms > nq.max_retry_interval_ms)
            cfg_errf(e, qt->line, "%s: retry_interval is longer than max_retry_interval", key);
        size_t slot = 0;
        if (strcmp(qt->key, "default") != 0) {
            for (slot = 1; slot < c->n_queues; slot++)
                if (strcasecmp(c->queues[slot].name, qt->key) == 0)
                    break;
            if (slot == c->n_queues) {
                if (c->n_queues >= CFG_MAX_QUEUES) {
                    cfg_errf(e, qt->line, "%s: at most %d queue entries", key, CFG_MAX_QUEUES);
                    continue;
                }
                c->queues = xrealloc(c->queues, (c->n_queues + 1) * sizeof(*c->queues));
                c->queues[c->n_queues++].name = NULL;
            }
        }
        free(c->queues[slot].name);
        nq.name = xstrdup(qt->key);
        c->queues[slot] = nq;
    }
}

/* "[127.0.0.1]:2600", "[::1]", "mx.example.test:25", "mx.example.test" */
static const char *dlv_route_host(const char *s, uint32_t default_port, struct cfg_route_host *h)
{
    struct hostport hp;
    int rc = hostport_parse(s, HOSTPORT_PORT_OPTIONAL, &hp);

    memset(h, 0, sizeof(*h));
    switch (hp.fault) {
    case HOSTPORT_FAULT_UNCLOSED:
        return "an address literal needs a closing ']'";
    case HOSTPORT_FAULT_AFTER_BRACKET:
        return "unexpected text after ']'";
    case HOSTPORT_FAULT_NO_HOST:
    case HOSTPORT_FAULT_LONG_HOST:
        return hp.bracketed ? "is not an IP address inside [ ]" : "empty or overlong host";
    default:
        break;
    }
    /* the host is judged before the port: "127.0.0.1:99999" is an unbracketed address first */
    if (hp.bracketed ? !dlv_ip_literal(hp.host) : !cfg_value_valid_hostname(hp.host, strlen(hp.host)))
        return hp.bracketed ? "is not an IP address inside [ ]" : "is not a host name (IP addresses go in [ ])";
    if (rc < 0)
        return "has a bad port";
    h->literal = hp.bracketed;
    h->host = xstrdup(hp.host);
    h->port = (uint16_t)(hp.has_port ? hp.port : default_port);
    return NULL;
}

int cfg_dlv_route_parse(const char *list, uint32_t default_port, struct cfg_route *out, char **err)
{
    memset(out, 0, sizeof(*out));
    *err = NULL;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char *one = xstrndup(p, n);
        const char *why = n == 0 ? "is empty" : out->n_hosts >= CFG_MAX_ROUTE_HOSTS ? "is one host too many" : NULL;
        for (size_t i = 0; !why && i < n; i++)
            if ((unsigned char)one[i] <= 0x20 || one[i] == 0x7f)
                why = "holds a space or a control character";
        if (!why)
            why = dlv_route_host(one, default_port, &out->hosts[out->n_hosts]);
        if (why) {
            *err = xasprintf("route host \"%.100s\" %s", one, why);
            free(one);
            cfg_dlv_route_fini(out);
            return -EINVAL;
        }
        out->n_hosts++;
        free(one);
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

char *cfg_dlv_route_text(const struct cfg_route *r)
{
    struct buf b = {0};
    for (uint32_t i = 0; i < r->n_hosts; i++)
        buf_printf(&b, "%s%s%s%s:%u", i ? "," : "", r->hosts[i].literal ? "[" : "", r->hosts[i].host,
                   r->hosts[i].literal ? "]" : "", r->hosts[i].port);
    char *s = xstrndup(b.data ? (const char *)b.data : "", b.len);
    buf_fini(&b);
    return s;
}

void cfg_dlv_route_fini(struct cfg_route *r)
{
    for (uint32_t i = 0; i < r->n_hosts; i++)
        free(r->hosts[i].host);
    memset(r, 0, sizeof(*r));
}

static void dlv_routes(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96], key[300];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "route", "a table of routes ([route.\"DOMAIN\"])"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *rt = t->children[i];
        snprintf(key, sizeof(key), "route.%s", rt->key);
        if (!cfg_expect(e, rt, CFG_TOML_TABLE, key, "a table"))
            continue;
        bool any = strcmp(rt->key, "*") == 0;
        if (!any && !cfg_value_valid_hostname(rt->key, strlen(rt->key))) {
            cfg_errf(e, rt->line, "%s: the route key is a domain (or \"*\")", key);
            continue;
        }
        struct cfg_route r = {0};
        bool listed = false;
        for (size_t j = 0; j < rt->n_children; j++) {
            const struct cfg_toml_node *v = rt->children[j];
            char k2[320];
            snprintf(k2, sizeof(k2), "%s.%s", key, v->key);
            if (strcmp(v->key, "hosts") != 0) {
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), k2));
                continue;
            }
            if (!cfg_expect(e, v, CFG_TOML_ARRAY, k2, "an array of hosts"))
                continue;
            listed = v->n_children > 0;
            for (size_t m = 0; m < v->n_children; m++) {
                const struct cfg_toml_node *hv = v->children[m];
                if (!cfg_expect(e, hv, CFG_TOML_STRING, k2, "a host string"))
                    continue;
                if (r.n_hosts >= CFG_MAX_ROUTE_HOSTS) {
                    cfg_errf(e, hv->line, "%s: at most %d hosts", k2, CFG_MAX_ROUTE_HOSTS);
                    break;
                }
                const char *why = dlv_route_host(hv->str, c->egress_port, &r.hosts[r.n_hosts]);
                if (why)
                    cfg_errf(e, hv->line, "%s: %s %s", k2, cfg_quote(q, sizeof(q), hv->str), why);
                else
                    r.n_hosts++;
            }
        }
        if (r.n_hosts == 0) {
            if (!listed)
                cfg_errf(e, rt->line, "%s: a route needs hosts = [...]", key);
            continue;
        }
        if (c->n_routes >= CFG_MAX_ROUTES) {
            cfg_errf(e, rt->line, "%s: at most %d routes", key, CFG_MAX_ROUTES);
            for (uint32_t k = 0; k < r.n_hosts; k++)
                free(r.hosts[k].host);
            continue;
        }
        r.domain = xstrdup(rt->key);
        for (char *p = r.domain; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t n = strlen(r.domain);
        if (n > 1 && r.domain[n - 1] == '.')
            r.domain[n - 1] = '\0';
        c->routes = xrealloc(c->routes, (c->n_routes + 1) * sizeof(*c->routes));
        c->routes[c->n_routes++] = r;
    }
}

static void dlv_bounce(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "bounce", "a table"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        if (strcmp(v->key, "rules_files") != 0) {
            char key[96];
            snprintf(key, sizeof(key), "bounce.%s", v->key);
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
            continue;
        }
        if (!cfg_expect(e, v, CFG_TOML_ARRAY, "bounce.rules_files", "an array of paths"))
            continue;
        for (size_t j = 0; j < c->n_bounce_rules_files; j++)
            free(c->bounce_rules_files[j]);
        free(c->bounce_rules_files);
        c->bounce_rules_files = v->n_children ? xcalloc(v->n_children, sizeof(char *)) : NULL;
        c->n_bounce_rules_files = 0;
        for (size_t j = 0; j < v->n_children; j++) {
            const struct cfg_toml_node *p = v->children[j];
            if (!cfg_expect(e, p, CFG_TOML_STRING, "bounce.rules_files", "a path"))
                continue;
            if (!cfg_value_valid_path(p->str)) {
                cfg_errf(e, p->line, "bounce.rules_files: %s is not a path", cfg_quote(q, sizeof(q), p->str));
                continue;
            }
            c->bounce_rules_files[c->n_bounce_rules_files++] = xstrdup(p->str);
        }
    }
}

static void dlv_dsn(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "dsn", "a table"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        if (strcmp(v->key, "enabled") == 0) {
            if (cfg_expect(e, v, CFG_TOML_BOOL, "dsn.enabled", "a boolean"))
                c->dsn_enabled = v->b;
        } else if (strcmp(v->key, "postmaster") == 0) {
            if (!cfg_expect(e, v, CFG_TOML_STRING, "dsn.postmaster", "an address"))
                continue;
            if (v->str[0] != '\0' && !cfg_value_valid_mailbox(v->str)) {
                cfg_errf(e, v->line, "dsn.postmaster: %s is not an address local@domain",
                         cfg_quote(q, sizeof(q), v->str));
                continue;
            }
            free(c->dsn_postmaster);
            c->dsn_postmaster = xstrdup(v->str);
        } else if (strcmp(v->key, "max_per_message") == 0) {
            if (cfg_int_in(e, v, "dsn.max_per_message", 0, 1000000))
                c->dsn_max_per_message = (uint32_t)v->i;
        } else if (strcmp(v->key, "max_per_sender") == 0) {
            if (cfg_int_in(e, v, "dsn.max_per_sender", 0, 100000000))
                c->dsn_max_per_sender = (uint32_t)v->i;
        } else if (strcmp(v->key, "sender_window") == 0) {
            uint64_t ms;
            if (!cfg_expect(e, v, CFG_TOML_STRING, "dsn.sender_window", "a duration") )
                continue;
            if (!cfg_value_parse_duration(v->str, &ms) || ms == 0) {
                cfg_errf(e, v->line, "dsn.sender_window: %s is not a duration above zero", cfg_quote(q, sizeof(q), v->str));
                continue;
            }
            c->dsn_sender_window_ms = ms;
        } else if (cfg_fbl_dsn_key(e, c, v)) {
            continue; /* verp, verp_domain, verp_secret, verp_key_file */
        } else {
            char key[96];
            snprintf(key, sizeof(key), "dsn.%s", v->key);
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
        }
    }
}

bool cfg_dlv_owns(const char *key)
{
    static const char *const keys[] = {"egress_source", "egress_pool", "queue", "route", "bounce", "dsn", "warmup"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

void cfg_dlv_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *root)
{
    /* in dependency order, whatever the order in the file: sources, pools, queues */
    const struct cfg_toml_node *t = cfg_toml_find(root, "egress_source");
    if (t) {
        dlv_sources(e, c, t);
        /* pools name sources by index: a new source list starts the pools again */
        for (size_t i = 1; i < c->n_pools; i++)
            free(c->pools[i].name);
        c->n_pools = 1;
        dlv_default_pool(c);
    }
    if ((t = cfg_toml_find(root, "egress_pool")))
        dlv_pools(e, c, t);
    if ((t = cfg_toml_find(root, "queue")))
        dlv_queues(e, c, t);
    if ((t = cfg_toml_find(root, "route")))
        dlv_routes(e, c, t);
    if ((t = cfg_toml_find(root, "bounce")))
        dlv_bounce(e, c, t);
    if ((t = cfg_toml_find(root, "dsn")))
        dlv_dsn(e, c, t);
    if ((t = cfg_toml_find(root, "warmup")))
        cfg_warmup_apply(e, c, t); /* after the sources it names */
}
