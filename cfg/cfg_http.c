/*
 * cfg_http - [[http_listener]] (listen, tls_certificate, tls_private_key, trusted_networks,
 * max_request_size, max_connections, request_timeout); [http_inject] is a plain section of cfg.c
 */
#include "cfg/cfg_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_int.h"
#include "cfg/cfg_net.h"

#define HTTP_MAX_REQUEST_SIZE (2ull * 1024 * 1024 * 1024)
#define HTTP_DURATION_MAX_MS (24ull * 3600 * 1000)

static void listener_free(struct cfg_http_listener *l)
{
    free(l->listen);
    free(l->tls_certificate);
    free(l->tls_private_key);
}

void cfg_http_free(struct cfg *c)
{
    for (size_t i = 0; i < c->n_http_listeners; i++)
        listener_free(&c->http_listeners[i]);
    free(c->http_listeners);
    c->http_listeners = NULL;
    c->n_http_listeners = 0;
}

void cfg_http_copy(struct cfg *dst, const struct cfg *src)
{
    dst->http_listeners = NULL;
    if (!src->n_http_listeners)
        return;
    dst->http_listeners = xcalloc(src->n_http_listeners, sizeof(*dst->http_listeners));
    for (size_t i = 0; i < src->n_http_listeners; i++) {
        const struct cfg_http_listener *s = &src->http_listeners[i];
        struct cfg_http_listener *d = &dst->http_listeners[i];
        *d = *s;
        d->listen = xstrdup(s->listen);
        d->tls_certificate = xstrdup(s->tls_certificate);
        d->tls_private_key = xstrdup(s->tls_private_key);
    }
}

/* a size: "10MiB" or an integer of bytes, within 1 KiB .. 2 GiB */
static void apply_size(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, uint64_t *out)
{
    char q[96];
    uint64_t u = 0;

    if (v->type == CFG_TOML_STRING && !cfg_value_parse_size(v->str, &u)) {
        cfg_errf(e, v->line, "%s: %s is not a size (a number with B, KiB, MiB or GiB)", key, cfg_quote(q, sizeof(q), v->str));
        return;
    }
    if (v->type == CFG_TOML_INT)
        u = v->i < 0 ? 0 : (uint64_t)v->i;
    else if (v->type != CFG_TOML_STRING) {
        cfg_errf(e, v->line, "%s: expected a size, got %s", key, cfg_toml_type_name(v->type));
        return;
    }
    if (u < 1024 || u > HTTP_MAX_REQUEST_SIZE) {
        cfg_errf(e, v->line, "%s: %llu bytes is out of range (1KiB..2GiB)", key, (unsigned long long)u);
        return;
    }
    *out = u;
}

static void apply_duration(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, uint64_t *out)
{
    char q[96];
    uint64_t u = 0;

    if (v->type == CFG_TOML_STRING && !cfg_value_parse_duration(v->str, &u)) {
        cfg_errf(e, v->line, "%s: %s is not a duration (a number with ms, s, m, h or d)", key,
                 cfg_quote(q, sizeof(q), v->str));
        return;
    }
    if (v->type == CFG_TOML_INT)
        u = v->i < 0 ? 0 : (uint64_t)v->i;
    else if (v->type != CFG_TOML_STRING) {
        cfg_errf(e, v->line, "%s: expected a duration, got %s", key, cfg_toml_type_name(v->type));
        return;
    }
    if (u < 1000 || u > HTTP_DURATION_MAX_MS) {
        cfg_errf(e, v->line, "%s: %llu ms is out of range (1s..24h)", key, (unsigned long long)u);
        return;
    }
    *out = u;
}

static void apply_one(struct cfg_errs *e, const struct cfg_toml_node *t, size_t i, struct cfg_http_listener *l)
{
    char key[96], q[96];

    l->max_connections = 256;
    l->request_timeout_ms = 60000;
    for (size_t j = 0; j < t->n_children; j++) {
        const struct cfg_toml_node *v = t->children[j];
        snprintf(key, sizeof(key), "http_listener[%zu].%.32s", i, v->key);
        if (strcmp(v->key, "listen") == 0) {
            if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                continue;
            const char *why = cfg_value_check_address(v->str);
            if (why)
                cfg_errf(e, v->line, "%s: %s %s", key, cfg_quote(q, sizeof(q), v->str), why);
            else
                l->listen = xstrdup(v->str);
        } else if (strcmp(v->key, "tls_certificate") == 0 || strcmp(v->key, "tls_private_key") == 0) {
            if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                continue;
            if (v->str[0] && !cfg_value_valid_path(v->str)) {
                cfg_errf(e, v->line, "%s: not a valid path", key);
                continue;
            }
            char **f = v->key[4] == 'c' ? &l->tls_certificate : &l->tls_private_key;
            free(*f);
            *f = xstrdup(v->str);
        } else if (strcmp(v->key, "trusted_networks") == 0) {
            cfg_net_apply_cidrs(e, l->trusted, &l->n_trusted, key, v);
        } else if (strcmp(v->key, "max_request_size") == 0) {
            apply_size(e, v, key, &l->max_request_size);
        } else if (strcmp(v->key, "max_connections") == 0) {
            if (cfg_expect(e, v, CFG_TOML_INT, key, "an integer")) {
                if (v->i < 1 || v->i > 100000)
                    cfg_errf(e, v->line, "%s: %lld is out of range (1..100000)", key, (long long)v->i);
                else
                    l->max_connections = (uint32_t)v->i;
            }
        } else if (strcmp(v->key, "request_timeout") == 0) {
            apply_duration(e, v, key, &l->request_timeout_ms);
        } else {
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
        }
    }
    if (!l->tls_certificate)
        l->tls_certificate = xstrdup("");
    if (!l->tls_private_key)
        l->tls_private_key = xstrdup("");
    if (!l->listen && !cfg_toml_find(t, "listen"))
        cfg_errf(e, t->line, "http_listener[%zu]: missing listen", i);
    if (!l->tls_certificate[0] != !l->tls_private_key[0])
        cfg_errf(e, t->line, "http_listener[%zu]: tls_certificate and tls_private_key must be set together", i);
}

/* [[http_listener]]: when present, the file's list replaces the current one as a whole ([] = none) */
void cfg_http_apply_listeners(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a)
{
    unsigned before = e->count;
    char q[96];

    if (a->type != CFG_TOML_ARRAY) {
        cfg_errf(e, a->line, "http_listener: expected an array of tables ([[http_listener]]), got %s",
                 cfg_toml_type_name(a->type));
        return;
    }
    if (a->n_children > CFG_MAX_HTTP_LISTENERS) {
        cfg_errf(e, a->children[CFG_MAX_HTTP_LISTENERS]->line,
                 "http_listener: at most %d listeners are allowed, found %zu", CFG_MAX_HTTP_LISTENERS, a->n_children);
        return;
    }
    size_t n = a->n_children;
    struct cfg_http_listener *l = n ? xcalloc(n, sizeof(*l)) : NULL;
    for (size_t i = 0; i < n; i++) {
        char key[48];
        snprintf(key, sizeof(key), "http_listener[%zu]", i);
        if (!cfg_expect(e, a->children[i], CFG_TOML_TABLE, key, "a table"))
            continue;
        apply_one(e, a->children[i], i, &l[i]);
        for (size_t j = 0; j < i; j++)
            if (l[i].listen && l[j].listen && strcmp(l[i].listen, l[j].listen) == 0)
                cfg_errf(e, a->children[i]->line, "http_listener[%zu].listen: %s is already used by http_listener[%zu]",
                         i, cfg_quote(q, sizeof(q), l[i].listen), j);
    }
    if (e->count != before) {
        for (size_t i = 0; i < n; i++)
            listener_free(&l[i]);
        free(l);
        return;
    }
    cfg_http_free(c);
    c->http_listeners = l;
    c->n_http_listeners = n;
}

void cfg_http_check(struct cfg_errs *e, const struct cfg *c, const struct cfg_toml_node *root)
{
    const struct cfg_toml_node *arr = cfg_toml_find(root, "http_listener");
    char q[96];

    for (size_t i = 0; i < c->n_http_listeners; i++) {
        const char *a = c->http_listeners[i].listen;
        unsigned line = arr && i < arr->n_children ? arr->children[i]->line : 0;
        if (c->admin_listen && strcmp(a, c->admin_listen) == 0)
            cfg_errf(e, line, "http_listener[%zu].listen: %s is also the admin listener address", i, cfg_quote(q, sizeof(q), a));
        for (size_t j = 0; j < c->n_listeners; j++)
            if (strcmp(a, c->listeners[j].address) == 0)
                cfg_errf(e, line, "http_listener[%zu].listen: %s is also an SMTP listener address", i,
                         cfg_quote(q, sizeof(q), a));
    }
}
