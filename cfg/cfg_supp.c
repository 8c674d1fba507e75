/*
 * cfg_supp - [suppression] (contract in cfg_supp.h, keys in docs/configuration.md)
 */
#include "cfg/cfg_supp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_int.h"
#include "cfg/cfg_value.h"

/* KumoMTA's classes that say the address itself is bad: never a block, a policy or a rate answer */
static const char *const default_hard[] = {"InvalidRecipient", "BadDomain", "InactiveMailbox"};

static void classes_free(struct cfg *c)
{
    for (size_t i = 0; i < c->n_supp_hard_classes; i++)
        free(c->supp_hard_classes[i]);
    free(c->supp_hard_classes);
    c->supp_hard_classes = NULL;
    c->n_supp_hard_classes = 0;
}

void cfg_supp_default(struct cfg *c)
{
    c->supp_enabled = true;
    c->supp_on_rcpt = CFG_SUPP_REJECT;
    c->supp_auto_hard_bounce = true;
    c->n_supp_hard_classes = sizeof(default_hard) / sizeof(default_hard[0]);
    c->supp_hard_classes = xcalloc(c->n_supp_hard_classes, sizeof(char *));
    for (size_t i = 0; i < c->n_supp_hard_classes; i++)
        c->supp_hard_classes[i] = xstrdup(default_hard[i]);
}

static void tenants_free(struct cfg *c)
{
    for (size_t i = 0; i < c->n_supp_tenants; i++)
        free(c->supp_tenant_names[i]);
    free(c->supp_tenant_names);
    free(c->supp_tenant_modes);
    c->supp_tenant_names = NULL;
    c->supp_tenant_modes = NULL;
    c->n_supp_tenants = 0;
}

/* mode_parse - "reject" | "drop"; CFG_SUPP_INHERIT (with an error) otherwise */
static int mode_parse(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key)
{
    char q[96];
    if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
        return CFG_SUPP_INHERIT;
    if (strcmp(v->str, "reject") == 0)
        return CFG_SUPP_REJECT;
    if (strcmp(v->str, "drop") == 0)
        return CFG_SUPP_DROP;
    cfg_errf(e, v->line, "%s: %s must be \"reject\" or \"drop\"", key, cfg_quote(q, sizeof(q), v->str));
    return CFG_SUPP_INHERIT;
}

/* tenants_apply - [suppression.tenant."NAME"] tables: on_rcpt, the tenant's own choice at RCPT */
static void tenants_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96], key[160];
    if (!cfg_expect(e, t, CFG_TOML_TABLE, "suppression.tenant", "a table of tenants"))
        return;
    tenants_free(c);
    c->supp_tenant_names = t->n_children ? xcalloc(t->n_children, sizeof(char *)) : NULL;
    c->supp_tenant_modes = t->n_children ? xcalloc(t->n_children, sizeof(int)) : NULL;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *tt = t->children[i];
        snprintf(key, sizeof(key), "suppression.tenant.%.64s", tt->key);
        if (!cfg_expect(e, tt, CFG_TOML_TABLE, key, "a table"))
            continue;
        if (!cfg_value_valid_ident(tt->key, CFG_IDENT_MAX, false)) {
            cfg_errf(e, tt->line, "%s: %s is not a tenant name", key, cfg_quote(q, sizeof(q), tt->key));
            continue;
        }
        int mode = CFG_SUPP_INHERIT;
        for (size_t j = 0; j < tt->n_children; j++) {
            const struct cfg_toml_node *v = tt->children[j];
            snprintf(key, sizeof(key), "suppression.tenant.%.64s.%.32s", tt->key, v->key);
            if (strcmp(v->key, "on_rcpt") == 0)
                mode = mode_parse(e, v, key);
            else
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
        }
        if (mode == CFG_SUPP_INHERIT)
            continue;
        c->supp_tenant_names[c->n_supp_tenants] = xstrdup(tt->key);
        c->supp_tenant_modes[c->n_supp_tenants++] = mode;
    }
}

static bool class_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return false;
    return true;
}

void cfg_supp_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96], key[96];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, "suppression", "a table"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        snprintf(key, sizeof(key), "suppression.%.64s", v->key);
        if (strcmp(v->key, "enabled") == 0) {
            if (cfg_expect(e, v, CFG_TOML_BOOL, key, "a boolean"))
                c->supp_enabled = v->b;
        } else if (strcmp(v->key, "auto_hard_bounce") == 0) {
            if (cfg_expect(e, v, CFG_TOML_BOOL, key, "a boolean"))
                c->supp_auto_hard_bounce = v->b;
        } else if (strcmp(v->key, "on_rcpt") == 0) {
            int mode = mode_parse(e, v, key);
            if (mode != CFG_SUPP_INHERIT)
                c->supp_on_rcpt = mode;
        } else if (strcmp(v->key, "tenant") == 0) {
            tenants_apply(e, c, v);
        } else if (strcmp(v->key, "hard_classes") == 0) {
            if (!cfg_expect(e, v, CFG_TOML_ARRAY, key, "an array of bounce class names"))
                continue;
            classes_free(c);
            c->supp_hard_classes = v->n_children ? xcalloc(v->n_children, sizeof(char *)) : NULL;
            for (size_t j = 0; j < v->n_children; j++) {
                const struct cfg_toml_node *p = v->children[j];
                if (!cfg_expect(e, p, CFG_TOML_STRING, key, "a bounce class name"))
                    continue;
                if (!class_name_ok(p->str)) {
                    cfg_errf(e, p->line, "%s: %s is not a bounce class name", key, cfg_quote(q, sizeof(q), p->str));
                    continue;
                }
                c->supp_hard_classes[c->n_supp_hard_classes++] = xstrdup(p->str);
            }
        } else {
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
        }
    }
}

void cfg_supp_copy(struct cfg *dst, const struct cfg *src)
{
    dst->supp_hard_classes = src->n_supp_hard_classes ? xcalloc(src->n_supp_hard_classes, sizeof(char *)) : NULL;
    for (size_t i = 0; i < src->n_supp_hard_classes; i++)
        dst->supp_hard_classes[i] = xstrdup(src->supp_hard_classes[i]);
    dst->n_supp_hard_classes = src->n_supp_hard_classes;
    dst->supp_tenant_names = src->n_supp_tenants ? xcalloc(src->n_supp_tenants, sizeof(char *)) : NULL;
    dst->supp_tenant_modes = src->n_supp_tenants ? xcalloc(src->n_supp_tenants, sizeof(int)) : NULL;
    for (size_t i = 0; i < src->n_supp_tenants; i++) {
        dst->supp_tenant_names[i] = xstrdup(src->supp_tenant_names[i]);
        dst->supp_tenant_modes[i] = src->supp_tenant_modes[i];
    }
    dst->n_supp_tenants = src->n_supp_tenants;
}

void cfg_supp_fini(struct cfg *c)
{
    classes_free(c);
    tenants_free(c);
}

enum cfg_supp_mode cfg_supp_mode_for(const struct cfg *c, enum cfg_supp_mode listener_mode, const char *tenant)
{
    for (size_t i = 0; tenant && tenant[0] && i < c->n_supp_tenants; i++)
        if (strcmp(c->supp_tenant_names[i], tenant) == 0)
            return (enum cfg_supp_mode)c->supp_tenant_modes[i];
    return listener_mode;
}

enum cfg_supp_mode cfg_supp_mode_of(const struct cfg *c, size_t listener)
{
    if (listener < c->n_listeners && listener < CFG_MAX_LISTENERS && c->listeners[listener].suppression)
        return (enum cfg_supp_mode)c->listeners[listener].suppression;
    return (enum cfg_supp_mode)c->supp_on_rcpt;
}

bool cfg_supp_hard(const struct cfg *c, const char *bounce_class)
{
    for (size_t i = 0; bounce_class && i < c->n_supp_hard_classes; i++)
        if (strcmp(c->supp_hard_classes[i], bounce_class) == 0)
            return true;
    return false;
}
