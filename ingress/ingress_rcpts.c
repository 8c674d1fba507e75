/*
 * ingress_rcpts - the relay_recipients file: parse, look up (ingress_rcpts.h)
 */
#include "ingress/ingress_rcpts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "cfg/cfg_value.h"

#define LOCAL_MAX 64   /* octets of a local part (RFC 5321 4.5.3.1.1) */
#define DOMAIN_MAX 253 /* octets of a domain without the trailing dot */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* entry_ok - why the line (trimmed, NUL-terminated) is not an entry, or NULL */
static const char *entry_why(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at)
        return "no '@': an entry is local@domain or @domain";
    if (memchr(at + 1, '@', n - (size_t)(at + 1 - s)))
        return "more than one '@'";
    size_t ll = (size_t)(at - s), dl = n - ll - 1;
    if (ll > LOCAL_MAX)
        return "the local part is longer than 64 octets";
    for (size_t i = 0; i < ll; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '"' || ch == '\\' || ch == ',')
            return "the local part has a blank, a control character or one of <>\"\\,";
    }
    if (!utf8_valid(s, ll))
        return "the local part is not UTF-8";
    if (dl == 0 || dl > DOMAIN_MAX || !cfg_value_valid_hostname(at + 1, dl))
        return "the domain is not a host name";
    return NULL;
}

int ingress_rcpts_parse(const char *text, size_t len, struct ingress_rcpts *out, char **err)
{
    struct buf errs = {0};
    unsigned n_err = 0, line_no = 0;
    size_t cap = 0;

    *out = (struct ingress_rcpts){0};
    *err = NULL;
    for (size_t i = 0; i < len;) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        i += ll + (nl ? 1 : 0);
        line_no++;
        while (ll && (line[0] == ' ' || line[0] == '\t'))
            line++, ll--;
        while (ll && (line[ll - 1] == ' ' || line[ll - 1] == '\t' || line[ll - 1] == '\r'))
            ll--;
        if (ll == 0 || line[0] == '#')
            continue;
        const char *why = memchr(line, '\0', ll) ? "a NUL byte" : entry_why(line, ll);
        if (why) {
            if (n_err++ < INGRESS_RCPTS_ERRORS_MAX)
                buf_printf(&errs, "line %u: %s\n", line_no, why);
            continue;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 64;
            out->entries = xrealloc(out->entries, cap * sizeof(*out->entries));
        }
        char *e = xstrndup(line, ll);
        lower_ascii(e);
        out->entries[out->n++] = e;
    }
    if (n_err) {
        if (n_err > INGRESS_RCPTS_ERRORS_MAX)
            buf_printf(&errs, "... and %u more\n", n_err - INGRESS_RCPTS_ERRORS_MAX);
        *err = xstrndup((const char *)errs.data, errs.len);
        buf_fini(&errs);
        ingress_rcpts_free(out);
        return -EINVAL;
    }
    buf_fini(&errs);
    if (out->n > 1) {
        qsort(out->entries, out->n, sizeof(*out->entries), cmp_entry);
        size_t w = 1;
        for (size_t r = 1; r < out->n; r++) {
            if (strcmp(out->entries[r], out->entries[w - 1]) == 0)
                free(out->entries[r]);
            else
                out->entries[w++] = out->entries[r];
        }
        out->n = w;
    }
    return 0;
}

int ingress_rcpts_load(const char *path, struct ingress_rcpts *out, char **err)
{
    char *text = NULL;
    size_t len = 0;
    *out = (struct ingress_rcpts){0};
    int rc = file_read_all(path, INGRESS_RCPTS_FILE_MAX, &text, &len);
    if (rc < 0) {
        *err = xasprintf("%s: %s\n", path, strerror(-rc));
        return rc;
    }
    rc = ingress_rcpts_parse(text, len, out, err);
    free(text);
    return rc;
}

static bool find(const struct ingress_rcpts *r, const char *key)
{
    return r->n && bsearch(&key, r->entries, r->n, sizeof(*r->entries), cmp_entry) != NULL;
}

bool ingress_rcpts_has(const struct ingress_rcpts *r, const char *mailbox)
{
    const char *at = strrchr(mailbox, '@');
    if (!at || strlen(mailbox) > LOCAL_MAX + 1 + DOMAIN_MAX)
        return false;
    char key[LOCAL_MAX + 1 + DOMAIN_MAX + 1];
    snprintf(key, sizeof(key), "%s", mailbox);
    lower_ascii(key);
    if (find(r, key))
        return true;
    return find(r, key + (at - mailbox)); /* "@domain" */
}

void ingress_rcpts_free(struct ingress_rcpts *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i]);
    free(r->entries);
    *r = (struct ingress_rcpts){0};
}
