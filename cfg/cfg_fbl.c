/*
 * cfg_fbl - [feedback] domains and addresses, [dsn] verp keys (contract in cfg_fbl.h)
 */
#include "cfg/cfg_fbl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_int.h"

#define SECRET_FILE_MAX 4096

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; l && i < n; i++)
        free(l[i]);
    free(l);
}

static char **copy_list(char *const *l, size_t n)
{
    if (!l || n == 0)
        return NULL;
    char **d = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        d[i] = xstrdup(l[i]);
    return d;
}

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return d;
}

void cfg_fbl_default(struct cfg *c)
{
    c->n_feedback_domains = 0;
    c->feedback_domains = NULL;
    c->n_feedback_addresses = 0;
    c->feedback_addresses = NULL;
    c->dsn_verp = false;
    c->dsn_verp_domain = xstrdup("");
    c->dsn_verp_secret = xstrdup("");
}

void cfg_fbl_copy(struct cfg *dst, const struct cfg *src)
{
    dst->feedback_domains = copy_list(src->feedback_domains, src->n_feedback_domains);
    dst->feedback_addresses = copy_list(src->feedback_addresses, src->n_feedback_addresses);
    dst->dsn_verp_domain = src->dsn_verp_domain ? xstrdup(src->dsn_verp_domain) : NULL;
    dst->dsn_verp_secret = src->dsn_verp_secret ? xstrdup(src->dsn_verp_secret) : NULL;
}

void cfg_fbl_fini(struct cfg *c)
{
    free_list(c->feedback_domains, c->n_feedback_domains);
    free_list(c->feedback_addresses, c->n_feedback_addresses);
    free(c->dsn_verp_domain);
    if (c->dsn_verp_secret)
        memset(c->dsn_verp_secret, 0, strlen(c->dsn_verp_secret));
    free(c->dsn_verp_secret);
}

/* read_list - an array of strings, each accepted by ok(), into *list (replaced only when all are good) */
static void read_list(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, bool (*ok)(const char *),
                      const char *what, char ***list, size_t *n)
{
    char q[96];
    if (!cfg_expect(e, v, CFG_TOML_ARRAY, key, "an array of strings"))
        return;
    if (v->n_children > CFG_FBL_MAX) {
        cfg_errf(e, v->line, "%s: at most %d entries", key, CFG_FBL_MAX);
        return;
    }
    char **l = v->n_children ? xcalloc(v->n_children, sizeof(char *)) : NULL;
    size_t k = 0;
    bool bad = false;
    for (size_t i = 0; i < v->n_children; i++) {
        const struct cfg_toml_node *s = v->children[i];
        if (!cfg_expect(e, s, CFG_TOML_STRING, key, "a string")) {
            bad = true;
            continue;
        }
        if (!ok(s->str)) {
            cfg_errf(e, s->line, "%s: %s is not %s", key, cfg_quote(q, sizeof(q), s->str), what);
            bad = true;
            continue;
        }
        l[k++] = lower_dup(s->str);
    }
    if (bad) {
        free_list(l, k);
        return;
    }
    free_list(*list, *n);
    *list = l;
    *n = k;
}

static bool domain_ok(const char *s)
{
    return cfg_value_valid_hostname(s, strlen(s));
}

static bool mailbox_ok(const char *s)
{
    return cfg_value_valid_mailbox(s);
}

void cfg_fbl_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t)
{
    char q[96];
    if (!cfg_expect(e, t, CFG_TOML_TABLE, "feedback", "a table"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        if (strcmp(v->key, "domains") == 0) {
            read_list(e, v, "feedback.domains", domain_ok, "a domain name", &c->feedback_domains,
                      &c->n_feedback_domains);
        } else if (strcmp(v->key, "addresses") == 0) {
            read_list(e, v, "feedback.addresses", mailbox_ok, "an address local@domain", &c->feedback_addresses,
                      &c->n_feedback_addresses);
        } else {
            char key[96];
            snprintf(key, sizeof(key), "feedback.%s", v->key);
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
        }
    }
}

/* secret_ok - printable, no white space at the ends (a key file's last newline is cut before) */
static bool secret_ok(const char *s, size_t n)
{
    if (n < CFG_FBL_SECRET_MIN || memchr(s, '\0', n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

bool cfg_fbl_dsn_key(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *v)
{
    char q[96];
    if (strcmp(v->key, "verp") == 0) {
        if (cfg_expect(e, v, CFG_TOML_BOOL, "dsn.verp", "a boolean"))
            c->dsn_verp = v->b;
    } else if (strcmp(v->key, "verp_domain") == 0) {
        if (!cfg_expect(e, v, CFG_TOML_STRING, "dsn.verp_domain", "a domain name"))
            return true;
        if (!domain_ok(v->str)) {
            cfg_errf(e, v->line, "dsn.verp_domain: %s is not a domain name", cfg_quote(q, sizeof(q), v->str));
            return true;
        }
        free(c->dsn_verp_domain);
        c->dsn_verp_domain = lower_dup(v->str);
    } else if (strcmp(v->key, "verp_secret") == 0) {
        if (!cfg_expect(e, v, CFG_TOML_STRING, "dsn.verp_secret", "a string"))
            return true;
        if (!secret_ok(v->str, strlen(v->str))) {
            cfg_errf(e, v->line, "dsn.verp_secret: must be at least %d printable characters", CFG_FBL_SECRET_MIN);
            return true;
        }
        free(c->dsn_verp_secret);
        c->dsn_verp_secret = xstrdup(v->str);
    } else if (strcmp(v->key, "verp_key_file") == 0) {
        char *text = NULL;
        size_t len = 0;
        if (!cfg_expect(e, v, CFG_TOML_STRING, "dsn.verp_key_file", "a path"))
            return true;
        int rc = file_read_all(v->str, SECRET_FILE_MAX, &text, &len);
        if (rc < 0) {
            cfg_errf(e, v->line, "dsn.verp_key_file: %s cannot be read: %s", cfg_quote(q, sizeof(q), v->str),
                     strerror(-rc));
            return true;
        }
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--;
        if (!secret_ok(text, len)) {
            cfg_errf(e, v->line, "dsn.verp_key_file: %s must hold at least %d printable characters on one line",
                     cfg_quote(q, sizeof(q), v->str), CFG_FBL_SECRET_MIN);
        } else {
            free(c->dsn_verp_secret);
            c->dsn_verp_secret = xstrndup(text, len);
        }
        memset(text, 0, len);
        free(text);
    } else {
        return false;
    }
    return true;
}

void cfg_fbl_check(struct cfg_errs *e, const struct cfg *c, const struct cfg_toml_node *root)
{
    if (!c->dsn_verp)
        return;
    const struct cfg_toml_node *dsn = cfg_toml_find(root, "dsn");
    const struct cfg_toml_node *k = cfg_toml_find(dsn, "verp");
    unsigned line = k ? k->line : dsn ? dsn->line : 0;
    if (!c->dsn_verp_domain || !c->dsn_verp_domain[0])
        cfg_errf(e, line, "dsn.verp: needs dsn.verp_domain");
    if (!c->dsn_verp_secret || !c->dsn_verp_secret[0])
        cfg_errf(e, line, "dsn.verp: needs dsn.verp_secret or dsn.verp_key_file");
}

bool cfg_feedback_on(const struct cfg *c)
{
    if (c->n_feedback_domains > 0 || c->n_feedback_addresses > 0 || c->dsn_verp)
        return true;
    for (size_t i = 0; i < c->n_listeners && i < CFG_MAX_LISTENERS; i++)
        if (c->listeners[i].feedback)
            return true;
    return false;
}
