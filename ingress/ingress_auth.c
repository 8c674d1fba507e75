/*
 * ingress_auth - SASL PLAIN/LOGIN decoding, the passwords file and the failure limiter (see ingress_auth.h)
 */
#include "ingress/ingress_auth.h"
#include "ingress/ingress.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/mem.h"

#define PASSWD_FILE_MAX (16 * 1024 * 1024)
#define PASSWD_HASH_MAX 512

/* b64_value - the 6-bit value of a base64 character, -1 for anything else */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int ingress_auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap)
{
    size_t o = 0;

    if (len == 1 && in[0] == '=')
        return 0; /* RFC 4954 4: an empty initial response */
    if (len % 4 != 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        unsigned pad = 0;
        for (unsigned k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                pad++;
                v[k] = 0;
                continue;
            }
            if (pad) /* data after '=' */
                return -EINVAL;
            v[k] = b64_value(c);
            if (v[k] < 0)
                return -EINVAL;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* the bits past the last full byte must be zero: one encoding per byte string */
        if ((pad == 1 && (w & 0xffu)) || (pad == 2 && (w & 0xffffu)))
            return -EINVAL;
        size_t n = 3 - pad;
        if (o + n > outcap)
            return -EINVAL;
        for (size_t k = 0; k < n; k++)
            out[o++] = (uint8_t)(w >> (16 - 8 * k));
    }
    if (o > INT32_MAX)
        return -EINVAL;
    return (int)o;
}

/* field_copy - one decoded field into out (NUL-terminated); false when it holds NUL or is too long */
static bool field_copy(const uint8_t *p, size_t n, char *out, size_t outcap)
{
    if (n >= outcap || memchr(p, '\0', n))
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

int ingress_auth_plain(const char *b64, size_t len, struct ingress_auth_cred *cred)
{
    uint8_t raw[INGRESS_AUTH_USER_MAX * 2 + INGRESS_AUTH_PASS_MAX + 2];

    memset(cred, 0, sizeof(*cred));
    int n = ingress_auth_b64_decode(b64, len, raw, sizeof(raw));
    if (n < 0)
        return -EINVAL;
    const uint8_t *end = raw + n;
    const uint8_t *nul1 = memchr(raw, '\0', (size_t)n);
    if (!nul1)
        return -EINVAL;
    const uint8_t *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
    if (!nul2)
        return -EINVAL;
    const uint8_t *authc = nul1 + 1, *pass = nul2 + 1;
    if (nul2 == authc || pass == end)
        return -EINVAL; /* RFC 4616 2: authcid and passwd are non-empty */
    if (!field_copy(raw, (size_t)(nul1 - raw), cred->authz, sizeof(cred->authz)) ||
        !field_copy(authc, (size_t)(nul2 - authc), cred->authc, sizeof(cred->authc)) ||
        !field_copy(pass, (size_t)(end - pass), cred->pass, sizeof(cred->pass))) {
        memset(cred, 0, sizeof(*cred));
        return -EINVAL;
    }
    memset(raw, 0, sizeof(raw));
    return 0;
}

int ingress_auth_login_field(const char *b64, size_t len, char *out, size_t outcap)
{
    uint8_t raw[INGRESS_AUTH_PASS_MAX + 1];

    int n = ingress_auth_b64_decode(b64, len, raw, sizeof(raw));
    if (n <= 0 || !field_copy(raw, (size_t)n, out, outcap))
        return -EINVAL;
    memset(raw, 0, sizeof(raw));
    return 0;
}

void ingress_auth_printable(const char *user, char *out, size_t outcap)
{
    size_t o = 0;

    if (outcap == 0)
        return;
    for (const char *p = user; *p && o < 64 && o + 1 < outcap; p++)
        out[o++] = (*p > 0x20 && *p < 0x7f) ? *p : '?';
    out[o] = '\0';
}

/* ---- passwords file ---- */

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ingress_auth_user *)a)->name, ((const struct ingress_auth_user *)b)->name);
}

/* hash_ok - a yescrypt or SHA-512 crypt string: "$y$" or "$6$", then printable ASCII without ':' */
static const char *hash_check(const char *h, size_t n)
{
    if (n < 4 || (strncmp(h, "$y$", 3) != 0 && strncmp(h, "$6$", 3) != 0))
        return "the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string";
    if (n > PASSWD_HASH_MAX)
        return "the hash is too long";
    for (size_t i = 0; i < n; i++)
        if (h[i] <= 0x20 || h[i] >= 0x7f || h[i] == ':')
            return "the hash holds a character crypt(3) never writes";
    return NULL;
}

void ingress_auth_passwd_free(struct ingress_auth_passwd *pw)
{
    for (size_t i = 0; i < pw->n; i++) {
        free(pw->users[i].name);
        free(pw->users[i].hash);
    }
    free(pw->users);
    free(pw->crypt_data);
    memset(pw, 0, sizeof(*pw));
}

int ingress_auth_passwd_parse(const char *text, size_t len, const char *name, struct ingress_auth_passwd *pw,
                              char **err)
{
    struct buf e = {0};
    size_t cap = 0, lineno = 0, nerr = 0;
    const char *p = text, *end = text + len;

    memset(pw, 0, sizeof(*pw));
    *err = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        lineno++;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        const char *line = p;
        p = nl ? nl + 1 : end;
        if (n == 0 || line[0] == '#')
            continue;
        const char *colon = memchr(line, ':', n);
        const char *why = NULL;
        if (!colon) {
            why = "expected user:HASH";
        } else if (colon == line || (size_t)(colon - line) > INGRESS_AUTH_USER_MAX) {
            why = "the user name must be 1..255 bytes";
        } else {
            for (const char *c = line; c < colon && !why; c++)
                if (*c <= 0x20 || *c >= 0x7f)
                    why = "the user name must be printable ASCII without spaces";
        }
        if (!why)
            why = hash_check(colon + 1, n - (size_t)(colon + 1 - line));
        if (why) {
            if (nerr++ < 20)
                buf_printf(&e, "%s:%zu: %s\n", name, lineno, why);
            continue;
        }
        if (pw->n == cap) {
            cap = cap ? cap * 2 : 16;
            pw->users = xrealloc(pw->users, cap * sizeof(*pw->users));
        }
        pw->users[pw->n].name = xstrndup(line, (size_t)(colon - line));
        pw->users[pw->n].hash = xstrndup(colon + 1, n - (size_t)(colon + 1 - line));
        pw->n++;
    }
    if (pw->n > 1)
        qsort(pw->users, pw->n, sizeof(*pw->users), user_cmp);
    for (size_t i = 1; i < pw->n; i++) {
        if (strcmp(pw->users[i - 1].name, pw->users[i].name) == 0 && nerr++ < 20)
            buf_printf(&e, "%s: user %s is listed twice\n", name, pw->users[i].name);
    }
    if (nerr > 0) {
        ingress_auth_passwd_free(pw);
        *err = buf_take(&e);
        return -EINVAL;
    }
    buf_fini(&e);
    pw->crypt_data = xcalloc(1, sizeof(struct crypt_data));
    return 0;
}

int ingress_auth_passwd_load(const char *path, struct ingress_auth_passwd *pw, char **err)
{
    char *text = NULL;
    size_t len = 0;

    memset(pw, 0, sizeof(*pw));
    int rc = file_read_all(path, PASSWD_FILE_MAX, &text, &len);
    if (rc < 0) {
        *err = xasprintf("%s: cannot read: %s\n", path, strerror(-rc));
        return rc;
    }
    rc = ingress_auth_passwd_parse(text, len, path, pw, err);
    free(text);
    return rc;
}

/* same_string - compare without an early exit on the first difference */
static bool same_string(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

bool ingress_auth_passwd_check(struct ingress_auth_passwd *pw, const char *user, const char *pass)
{
    /* unknown users are hashed too, with a fixed setting of the kind the file uses most (yescrypt by
     * default): a failure costs the same time whether or not the user exists */
    static const char dummy_y[] = "$y$j9T$ringmailnouser$";
    static const char dummy_6[] = "$6$ringmailnouser$";
    struct ingress_auth_user key = {.name = (char *)user};
    const struct ingress_auth_user *u = NULL;

    if (!pw->crypt_data)
        return false;
    if (pw->n)
        u = bsearch(&key, pw->users, pw->n, sizeof(*pw->users), user_cmp);
    const char *setting = u ? u->hash : (pw->n && strncmp(pw->users[0].hash, "$6$", 3) == 0) ? dummy_6 : dummy_y;
    struct crypt_data *cd = pw->crypt_data;
    /* crypt_rn: libxcrypt's crypt_r that returns NULL on failure; ASan does not intercept it (gcc 12's
     * crypt_r interceptor called through a NULL pointer in the -Dsanitize build) */
    const char *out = crypt_rn(pass, setting, cd, (int)sizeof(*cd));
    bool ok = u && out && out[0] == '$' && same_string(out, u->hash);
    memset(cd, 0, sizeof(*cd));
    return ok;
}

/* ---- failure limiter ---- */

static void limit_key(int family, const uint8_t *addr, uint8_t key[16])
{
    ingress_client_key(family, addr, 64, key); /* IPv6: one /64 is one client */
}

static unsigned limit_hash(int family, const uint8_t key[16])
{
    uint32_t h = 2166136261u ^ (uint32_t)family;
    for (size_t i = 0; i < 16; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % INGRESS_AUTH_LIMIT_BUCKETS;
}

/* limit_find - the entry of the address, dropping expired entries of its bucket on the way */
static struct ingress_auth_fail **limit_find(struct ingress_auth_limit *lim, int family, const uint8_t *addr,
                                             uint64_t now)
{
    uint8_t key[16];
    limit_key(family, addr, key);
    struct ingress_auth_fail **pp = &lim->buckets[limit_hash(family, key)];
    while (*pp) {
        struct ingress_auth_fail *f = *pp;
        bool expired = now && now - f->window_start_ns >= lim->window_ns && now >= f->locked_until_ns;
        if (expired) {
            *pp = f->next;
            free(f);
            lim->n--;
            continue;
        }
        if (f->family == family && memcmp(f->addr, key, 16) == 0)
            return pp;
        pp = &f->next;
    }
    return pp;
}

bool ingress_auth_limit_locked(struct ingress_auth_limit *lim, int family, const uint8_t *addr, uint64_t now)
{
    if (lim->max == 0)
        return false;
    struct ingress_auth_fail **pp = limit_find(lim, family, addr, now);
    return *pp && (*pp)->locked_until_ns > now;
}

bool ingress_auth_limit_fail(struct ingress_auth_limit *lim, int family, const uint8_t *addr, uint64_t now)
{
    if (lim->max == 0)
        return false;
    struct ingress_auth_fail **pp = limit_find(lim, family, addr, now);
    struct ingress_auth_fail *f = *pp;
    if (!f) {
        f = *pp = xcalloc(1, sizeof(*f));
        f->family = family;
        limit_key(family, addr, f->addr);
        f->window_start_ns = now;
        lim->n++;
    }
    if (now - f->window_start_ns >= lim->window_ns) {
        f->window_start_ns = now;
        f->count = 0;
    }
    if (++f->count < lim->max)
        return false;
    f->locked_until_ns = now + lim->lockout_ns;
    f->count = 0;
    f->window_start_ns = now;
    return true;
}

void ingress_auth_limit_success(struct ingress_auth_limit *lim, int family, const uint8_t *addr)
{
    struct ingress_auth_fail **pp = limit_find(lim, family, addr, 0);
    if (*pp && (*pp)->locked_until_ns == 0) {
        struct ingress_auth_fail *f = *pp;
        *pp = f->next;
        free(f);
        lim->n--;
    }
}

void ingress_auth_limit_free(struct ingress_auth_limit *lim)
{
    for (size_t i = 0; i < INGRESS_AUTH_LIMIT_BUCKETS; i++) {
        while (lim->buckets[i]) {
            struct ingress_auth_fail *f = lim->buckets[i];
            lim->buckets[i] = f->next;
            free(f);
        }
    }
    lim->n = 0;
}
