/*
 * cfg_dkim - the [[dkim]] signers of ringmail.toml (see cfg_dkim.h and docs/configuration.md)
 *
 * Keys of one entry: domain, selector, key_file (required); name, algorithm ("rsa-sha256" or
 * "ed25519-sha256"), headers (array of field names), header_canonicalization and
 * body_canonicalization ("relaxed" or "simple"), expiration (a duration string such as "7d").
 */
#include "cfg/cfg_dkim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_value.h"

/* the default h=: From twice, so that a second From cannot be added; an absent name signs its absence */
static const char *const default_headers[] = {
    "From", "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "Cc", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
};

static void entry_fini(struct cfg_dkim *d)
{
    free(d->name);
    free(d->domain);
    free(d->selector);
    free(d->key_file);
    for (size_t i = 0; i < d->n_headers; i++)
        free(d->headers[i]);
    free(d->headers);
    memset(d, 0, sizeof(*d));
}

void cfg_dkim_fini(struct cfg *c)
{
    for (size_t i = 0; i < c->n_dkim; i++)
        entry_fini(&c->dkim[i]);
    free(c->dkim);
    c->dkim = NULL;
    c->n_dkim = 0;
}

static void entry_copy(struct cfg_dkim *dst, const struct cfg_dkim *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->domain = xstrdup(src->domain);
    dst->selector = xstrdup(src->selector);
    dst->key_file = xstrdup(src->key_file);
    dst->headers = xcalloc(src->n_headers ? src->n_headers : 1, sizeof(char *));
    for (size_t i = 0; i < src->n_headers; i++)
        dst->headers[i] = xstrdup(src->headers[i]);
}

void cfg_dkim_copy(struct cfg *dst, const struct cfg *src)
{
    dst->dkim = NULL;
    dst->n_dkim = src->n_dkim;
    if (!src->n_dkim)
        return;
    dst->dkim = xcalloc(src->n_dkim, sizeof(*dst->dkim));
    for (size_t i = 0; i < src->n_dkim; i++)
        entry_copy(&dst->dkim[i], &src->dkim[i]);
}

/* selector_ok - dot-separated labels of letters, digits and '-' (RFC 6376 3.1), at most 253 bytes */
static bool selector_ok(const char *s)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* name_ok - 1..128 of letters, digits, '.', '_', '-', ':' (the default name is "domain:selector") */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr("._-:", s[i])))
            return false;
    return true;
}

/* field_name_ok - RFC 5322 ftext: printable ASCII but ':', at most 64 bytes */
static bool field_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
            return false;
    return true;
}

static bool want_string(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key)
{
    char k[96];
    snprintf(k, sizeof(k), "dkim.%s", key);
    return cfg_expect(e, v, CFG_TOML_STRING, k, "a string");
}

static void set_headers(struct cfg_errs *e, struct cfg_dkim *d, const struct cfg_toml_node *v)
{
    char q[96];
    bool from = false;
    unsigned before = 0;

    if (!cfg_expect(e, v, CFG_TOML_ARRAY, "dkim.headers", "an array of header field names"))
        return;
    if (v->n_children == 0 || v->n_children > CFG_DKIM_MAX_HEADERS) {
        cfg_errf(e, v->line, "dkim.headers: between 1 and %d names", CFG_DKIM_MAX_HEADERS);
        return;
    }
    char **list = xcalloc(v->n_children, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < v->n_children; i++) {
        const struct cfg_toml_node *h = v->children[i];
        if (!cfg_expect(e, h, CFG_TOML_STRING, "dkim.headers", "a string")) {
            before++;
            continue;
        }
        if (!field_name_ok(h->str)) {
            cfg_errf(e, h->line, "dkim.headers: %s is not a header field name", cfg_quote(q, sizeof(q), h->str));
            before++;
            continue;
        }
        if (strcasecmp(h->str, "DKIM-Signature") == 0) {
            cfg_errf(e, h->line, "dkim.headers: DKIM-Signature cannot be signed by this signature");
            before++;
            continue;
        }
        from |= strcasecmp(h->str, "From") == 0;
        list[n++] = xstrdup(h->str);
    }
    if (!from && !before)
        cfg_errf(e, v->line, "dkim.headers: must include From (RFC 6376 5.4)");
    for (size_t i = 0; i < d->n_headers; i++)
        free(d->headers[i]);
    free(d->headers);
    d->headers = list;
    d->n_headers = n;
}

static void set_string(struct cfg_errs *e, char **slot, const struct cfg_toml_node *v, const char *key)
{
    if (!want_string(e, v, key))
        return;
    free(*slot);
    *slot = xstrdup(v->str);
}

static void entry_key(struct cfg_errs *e, struct cfg_dkim *d, const struct cfg_toml_node *v)
{
    char q[96];
    const char *k = v->key;

    if (strcmp(k, "name") == 0 || strcmp(k, "domain") == 0 || strcmp(k, "selector") == 0) {
        if (!want_string(e, v, k))
            return;
        bool ok = k[0] == 'n'   ? name_ok(v->str)
                  : k[0] == 'd' ? cfg_value_valid_hostname(v->str, strlen(v->str))
                                : selector_ok(v->str);
        if (!ok) {
            cfg_errf(e, v->line, "dkim.%s: %s is not a valid %s", k, cfg_quote(q, sizeof(q), v->str),
                     k[0] == 'n' ? "name (letters, digits, '.', '_', '-', ':')" : k[0] == 'd' ? "domain" : "selector");
            return;
        }
        set_string(e, k[0] == 'n' ? &d->name : k[0] == 'd' ? &d->domain : &d->selector, v, k);
        if (k[0] == 'd')
            for (char *c = d->domain; *c; c++)
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c + 32);
    } else if (strcmp(k, "key_file") == 0) {
        if (!want_string(e, v, k))
            return;
        if (!cfg_value_valid_path(v->str)) {
            cfg_errf(e, v->line, "dkim.key_file: %s must be a non-empty path without control characters",
                     cfg_quote(q, sizeof(q), v->str));
            return;
        }
        set_string(e, &d->key_file, v, k);
        d->line = v->line;
    } else if (strcmp(k, "algorithm") == 0) {
        if (!want_string(e, v, k))
            return;
        if (strcmp(v->str, "rsa-sha256") == 0)
            d->algorithm = CFG_DKIM_RSA_SHA256;
        else if (strcmp(v->str, "ed25519-sha256") == 0)
            d->algorithm = CFG_DKIM_ED25519_SHA256;
        else
            cfg_errf(e, v->line, "dkim.algorithm: %s is not one of \"rsa-sha256\", \"ed25519-sha256\"",
                     cfg_quote(q, sizeof(q), v->str));
    } else if (strcmp(k, "header_canonicalization") == 0 || strcmp(k, "body_canonicalization") == 0) {
        if (!want_string(e, v, k))
            return;
        bool relaxed = strcmp(v->str, "relaxed") == 0;
        if (!relaxed && strcmp(v->str, "simple") != 0) {
            cfg_errf(e, v->line, "dkim.%s: %s is not one of \"relaxed\", \"simple\"", k, cfg_quote(q, sizeof(q), v->str));
            return;
        }
        if (k[0] == 'h')
            d->header_relaxed = relaxed;
        else
            d->body_relaxed = relaxed;
    } else if (strcmp(k, "headers") == 0) {
        set_headers(e, d, v);
    } else if (strcmp(k, "expiration") == 0) {
        uint64_t ms = 0;
        if (!want_string(e, v, k))
            return;
        if (!cfg_value_parse_duration(v->str, &ms) || ms < 1000 || ms > UINT64_C(3650) * 86400000) {
            cfg_errf(e, v->line, "dkim.expiration: %s is not a duration from 1s to 3650d (\"7d\", \"12h\")",
                     cfg_quote(q, sizeof(q), v->str));
            return;
        }
        d->expiration_ms = ms;
    } else {
        char key[96];
        snprintf(key, sizeof(key), "dkim.%s", k);
        cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
    }
}

void cfg_dkim_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a)
{
    char q[160];

    if (!cfg_expect(e, a, CFG_TOML_ARRAY, "dkim", "an array of tables ([[dkim]])"))
        return;
    if (a->n_children > CFG_MAX_DKIM) {
        cfg_errf(e, a->line, "dkim: at most %d signers", CFG_MAX_DKIM);
        return;
    }
    struct cfg_dkim *list = xcalloc(a->n_children ? a->n_children : 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < a->n_children; i++) {
        const struct cfg_toml_node *t = a->children[i];
        if (!cfg_expect(e, t, CFG_TOML_TABLE, "dkim", "a table"))
            continue;
        struct cfg_dkim d = {.header_relaxed = true, .body_relaxed = true, .line = t->line};
        d.n_headers = sizeof(default_headers) / sizeof(default_headers[0]);
        d.headers = xcalloc(d.n_headers, sizeof(char *));
        for (size_t k = 0; k < d.n_headers; k++)
            d.headers[k] = xstrdup(default_headers[k]);
        for (size_t j = 0; j < t->n_children; j++)
            entry_key(e, &d, t->children[j]);
        if (!d.domain || !d.selector || !d.key_file) {
            cfg_errf(e, t->line, "dkim: every signer needs domain, selector and key_file");
            entry_fini(&d);
            continue;
        }
        if (!d.name)
            d.name = xasprintf("%s:%s", d.domain, d.selector);
        for (size_t k = 0; k < n; k++)
            if (strcmp(list[k].name, d.name) == 0)
                cfg_errf(e, t->line, "dkim: the signer %s is defined twice (give each entry its own name)",
                         cfg_quote(q, sizeof(q), d.name));
        list[n++] = d;
    }
    cfg_dkim_fini(c);
    c->dkim = list;
    c->n_dkim = n;
    if (!n) {
        free(list);
        c->dkim = NULL;
    }
}
