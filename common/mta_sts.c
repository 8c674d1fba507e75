/*
 * mta_sts - MTA-STS record and policy texts (contract in mta_sts.h)
 */
#include "common/mta_sts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* ---- TXT record: sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim] ---- */

int mta_sts_txt_parse(const char *txt, size_t len, char id[MTA_STS_ID_MAX + 1], const char **why)
{
    static const char v[] = "v=STSv1";
    size_t pos = sizeof(v) - 1;
    bool have_id = false;

    id[0] = '\0';
    if (len < pos || memcmp(txt, v, pos) != 0)
        return 0;
    if (len > pos && txt[pos] != ';' && !is_wsp((unsigned char)txt[pos]))
        return 0; /* "v=STSv10": not ours */
    while (pos < len) {
        while (pos < len && is_wsp((unsigned char)txt[pos]))
            pos++;
        if (pos == len)
            break;
        if (txt[pos] != ';') {
            *why = "fields must be separated by ';'";
            return -EINVAL;
        }
        pos++;
        while (pos < len && is_wsp((unsigned char)txt[pos]))
            pos++;
        if (pos == len)
            break; /* a trailing delimiter is allowed */
        size_t ks = pos;
        while (pos < len && (is_alnum((unsigned char)txt[pos]) || txt[pos] == '_' || txt[pos] == '-' ||
                             txt[pos] == '.'))
            pos++;
        size_t kl = pos - ks;
        if (kl == 0 || kl > 32 || pos == len || txt[pos] != '=') {
            *why = "a field is not name=value";
            return -EINVAL;
        }
        pos++;
        size_t vs = pos;
        while (pos < len && txt[pos] != ';' && (unsigned char)txt[pos] >= 0x21 && (unsigned char)txt[pos] <= 0x7e &&
               txt[pos] != '=')
            pos++;
        size_t vl = pos - vs;
        if (vl == 0) {
            *why = "a field has no value";
            return -EINVAL;
        }
        if (kl == 2 && memcmp(txt + ks, "id", 2) == 0) {
            if (have_id || vl > MTA_STS_ID_MAX) {
                *why = have_id ? "id given twice" : "id longer than 32 characters";
                return -EINVAL;
            }
            for (size_t i = 0; i < vl; i++)
                if (!is_alnum((unsigned char)txt[vs + i])) {
                    *why = "id is not letters and digits";
                    return -EINVAL;
                }
            memcpy(id, txt + vs, vl);
            id[vl] = '\0';
            have_id = true;
        }
    }
    if (!have_id) {
        *why = "no id field";
        return -EINVAL;
    }
    return 1;
}

/* ---- policy file ---- */

/* host_ok - a domain name of LDH labels (1..63 each, 1..253 in all), no trailing dot */
static bool host_ok(const char *s, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_alnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

static bool key_is(const char *k, size_t kl, const char *name)
{
    return strlen(name) == kl && memcmp(k, name, kl) == 0;
}

void mta_sts_policy_fini(struct mta_sts_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_mx; i++)
        free(p->mx[i]);
    free(p->mx);
    memset(p, 0, sizeof(*p));
}

static int fail(struct mta_sts_policy *out, const char **why, const char *msg)
{
    mta_sts_policy_fini(out);
    *why = msg;
    return -EINVAL;
}

/* one "key: value" line (without its line end): 0, or -EINVAL with *why */
static int policy_line(struct mta_sts_policy *out, const char *l, size_t n, unsigned *seen, const char **why)
{
    size_t kl = 0;
    while (kl < n && (is_alnum((unsigned char)l[kl]) || (kl > 0 && strchr("_-.", l[kl]))))
        kl++;
    if (kl == 0 || kl > 32 || kl == n || l[kl] != ':') {
        *why = "a line is not \"key: value\"";
        return -EINVAL;
    }
    size_t vs = kl + 1;
    while (vs < n && is_wsp((unsigned char)l[vs]))
        vs++;
    size_t ve = n;
    while (ve > vs && is_wsp((unsigned char)l[ve - 1]))
        ve--;
    const char *v = l + vs;
    size_t vl = ve - vs;
    for (size_t i = 0; i < vl; i++)
        if (((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e) && !is_wsp((unsigned char)v[i])) {
            *why = "a value holds a control or non-ASCII byte";
            return -EINVAL;
        }
    if (key_is(l, kl, "version")) {
        if (*seen & 1) {
            *why = "version given twice";
            return -EINVAL;
        }
        *seen |= 1;
        if (vl != 5 || memcmp(v, "STSv1", 5) != 0) {
            *why = "version is not STSv1";
            return -EINVAL;
        }
    } else if (key_is(l, kl, "mode")) {
        if (*seen & 2) {
            *why = "mode given twice";
            return -EINVAL;
        }
        *seen |= 2;
        if (vl == 7 && memcmp(v, "enforce", 7) == 0)
            out->mode = MTA_STS_MODE_ENFORCE;
        else if (vl == 7 && memcmp(v, "testing", 7) == 0)
            out->mode = MTA_STS_MODE_TESTING;
        else if (vl == 4 && memcmp(v, "none", 4) == 0)
            out->mode = MTA_STS_MODE_NONE;
        else {
            *why = "mode is not enforce, testing or none";
            return -EINVAL;
        }
    } else if (key_is(l, kl, "max_age")) {
        if (*seen & 4) {
            *why = "max_age given twice";
            return -EINVAL;
        }
        *seen |= 4;
        uint64_t a = 0;
        if (vl == 0 || vl > 10) {
            *why = "max_age is not 1 to 10 digits";
            return -EINVAL;
        }
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9') {
                *why = "max_age is not 1 to 10 digits";
                return -EINVAL;
            }
            a = a * 10 + (uint64_t)(v[i] - '0');
        }
        if (a > MTA_STS_MAX_AGE_MAX) {
            *why = "max_age is over 31557600";
            return -EINVAL;
        }
        out->max_age = (uint32_t)a;
    } else if (key_is(l, kl, "mx")) {
        size_t skip = vl >= 2 && v[0] == '*' && v[1] == '.' ? 2 : 0;
        if (vl > MTA_STS_PATTERN_MAX || !host_ok(v + skip, vl - skip)) {
            *why = "an mx pattern is not a host name or *.host name";
            return -EINVAL;
        }
        if (out->n_mx == MTA_STS_MX_MAX) {
            *why = "more than 32 mx patterns";
            return -EINVAL;
        }
        char *p = xmalloc(vl + 1);
        for (size_t i = 0; i < vl; i++)
            p[i] = (char)lower((unsigned char)v[i]);
        p[vl] = '\0';
        out->mx = xrealloc(out->mx, (out->n_mx + 1) * sizeof(*out->mx));
        out->mx[out->n_mx++] = p;
    } else if (vl == 0) {
        *why = "an extension field has no value";
        return -EINVAL;
    }
    return 0;
}

int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *out, const char **why)
{
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    if (len > MTA_STS_POLICY_MAX)
        return fail(out, why, "policy larger than 64 KiB");
    if (memchr(text, '\0', len))
        return fail(out, why, "policy holds a NUL byte");
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t n = end - pos;
        if (n > 0 && text[pos + n - 1] == '\r')
            n--;
        if (memchr(text + pos, '\r', n))
            return fail(out, why, "a bare CR in the policy");
        /* an empty last line (the file ends with its line end) is no field */
        if (n > 0 || nl) {
            if (n == 0 && nl && end + 1 == len)
                break;
            int rc = policy_line(out, text + pos, n, &seen, why);
            if (rc < 0) {
                const char *w = *why;
                return fail(out, why, w);
            }
        }
        pos = nl ? end + 1 : len;
    }
    if (!(seen & 1))
        return fail(out, why, "no version field");
    if (!(seen & 2))
        return fail(out, why, "no mode field");
    if (!(seen & 4))
        return fail(out, why, "no max_age field");
    if (out->mode != MTA_STS_MODE_NONE && out->n_mx == 0)
        return fail(out, why, "no mx field");
    return 0;
}

/* ---- MX matching (RFC 8461 4.1) ---- */

static bool eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

bool mta_sts_mx_match(const char *pattern, const char *host)
{
    size_t pl = strlen(pattern), hl = strlen(host);
    while (pl > 0 && pattern[pl - 1] == '.')
        pl--;
    while (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (pl == 0 || hl == 0)
        return false;
    if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* "*.b.c" matches "a.b.c": the host minus its first label equals the pattern minus "*." */
        const char *dot = memchr(host, '.', hl);
        if (!dot || dot == host)
            return false;
        size_t rest = hl - (size_t)(dot + 1 - host);
        return rest == pl - 2 && rest > 0 && eq_nocase(dot + 1, pattern + 2, rest);
    }
    return pl == hl && eq_nocase(pattern, host, hl);
}

bool mta_sts_mx_allowed(const char *const *patterns, size_t n, const char *host)
{
    for (size_t i = 0; i < n; i++)
        if (mta_sts_mx_match(patterns[i], host))
            return true;
    return false;
}

const char *mta_sts_mode_name(unsigned mode)
{
    static const char *const names[] = {"off", "testing", "enforce", "none"};
    return mode < sizeof(names) / sizeof(names[0]) ? names[mode] : "?";
}

enum mta_sts_mode mta_sts_site_mode(const char *site)
{
    const char *t = site ? strstr(site, MTA_STS_SITE_TAG) : NULL;
    if (!t)
        return MTA_STS_MODE_OFF;
    t += sizeof(MTA_STS_SITE_TAG) - 1;
    if (strncmp(t, "enforce:", 8) == 0)
        return MTA_STS_MODE_ENFORCE;
    if (strncmp(t, "testing:", 8) == 0)
        return MTA_STS_MODE_TESTING;
    return MTA_STS_MODE_OFF;
}

size_t mta_sts_site_base_len(const char *site)
{
    const char *t = strstr(site, MTA_STS_SITE_TAG);
    return t ? (size_t)(t - site) : strlen(site);
}
