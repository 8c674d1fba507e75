/*
 * cfg_supp - [suppression] (contract in cfg_supp.h, keys in docs/configuration.md)
 */
#include "cfg/cfg_supp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"

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
            if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                continue;
            if (strcmp(v->str, "reject") == 0)
                c->supp_on_rcpt = CFG_SUPP_REJECT;
            else if (strcmp(v->str, "drop") == 0)
                c->supp_on_rcpt = CFG_SUPP_DROP;
            else
                cfg_errf(e, v->line, "%s: %s must be \"reject\" or \"drop\"", key, cfg_quote(q, sizeof(q), v->str));
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
}

void cfg_supp_fini(struct cfg *c)
{
    classes_free(c);
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
