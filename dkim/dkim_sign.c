/*
 * dkim_sign - DKIM-Signature fields with RSA-SHA256 and Ed25519-SHA256 (see dkim_sign.h)
 */
#include "dkim/dkim_sign.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rsa.h>

#include "base/mem.h"

#define DKIM_LINE_MAX 78 /* fold before a line would pass this (RFC 5322 2.1.1) */

const char *dkim_sign_alg_name(enum dkim_alg a)
{
    return a == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- the message's header fields ---- */

void dkim_sign_msg_init(struct dkim_msg *m, const char *msg, size_t len)
{
    size_t cap = 0, i = 0;

    memset(m, 0, sizeof(*m));
    m->body = msg + len;
    while (i < len) {
        size_t e = i, nx;
        while (e < len && msg[e] != '\r' && msg[e] != '\n')
            e++;
        nx = e;
        if (nx < len)
            nx += (msg[nx] == '\r' && nx + 1 < len && msg[nx + 1] == '\n') ? 2 : 1;
        if (e == i) { /* the empty line: the body follows */
            m->body = msg + nx;
            m->body_len = len - nx;
            return;
        }
        if (is_wsp(msg[i]) && m->n_fields) {
            struct dkim_field *f = &m->fields[m->n_fields - 1];
            f->len = (size_t)(msg + e - f->p);
        } else {
            if (m->n_fields == cap) {
                cap = cap ? cap * 2 : 32;
                m->fields = xrealloc(m->fields, cap * sizeof(*m->fields));
            }
            const char *colon = memchr(msg + i, ':', e - i);
            m->fields[m->n_fields++] = (struct dkim_field){msg + i, e - i, colon ? (size_t)(colon - (msg + i)) : 0};
        }
        i = nx;
    }
}

void dkim_sign_msg_fini(struct dkim_msg *m)
{
    free(m->fields);
    memset(m, 0, sizeof(*m));
}

static bool field_is(const struct dkim_field *f, const char *name)
{
    size_t n = f->name_len;
    while (n > 0 && is_wsp(f->p[n - 1]))
        n--;
    return n > 0 && n == strlen(name) && strncasecmp(f->p, name, n) == 0;
}

bool dkim_sign_from_domain(const struct dkim_msg *m, char *buf, size_t size)
{
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct dkim_field *f = &m->fields[i];
        if (!field_is(f, "From"))
            continue;
        const char *v = f->p + f->name_len + 1, *end = f->p + f->len;
        /* the address in angle brackets when there is one, else the whole value */
        const char *lt = NULL;
        for (const char *p = v; p < end; p++)
            if (*p == '<')
                lt = p;
        if (lt) {
            v = lt + 1;
            const char *gt = memchr(v, '>', (size_t)(end - v));
            end = gt ? gt : end;
        }
        const char *at = NULL;
        for (const char *p = v; p < end; p++)
            if (*p == '@')
                at = p;
        if (!at)
            return false;
        size_t n = 0;
        for (const char *p = at + 1; p < end && n + 1 < size; p++) {
            char c = *p;
            if (c == '>' || c == ',' || c == ';' || c == '(' || is_wsp(c) || c == '\r' || c == '\n')
                break;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
                return false;
            buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        while (n > 0 && buf[n - 1] == '.')
            n--;
        buf[n] = '\0';
        return n > 0;
    }
    return false;
}

/* ---- hashing ---- */

static void on_body(void *ctx, const char *p, size_t n)
{
    EVP_DigestUpdate(ctx, p, n);
}

static int body_hash(struct dkim_msg *m, enum dkim_canon c)
{
    if (m->have_bh[c])
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct dkim_canon_body *cb = xmalloc(sizeof(*cb));
    unsigned len = 0;
    int rc = -EIO;

    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
        dkim_canon_body_init(cb, c, on_body, md);
        dkim_canon_body_feed(cb, m->body, m->body_len);
        dkim_canon_body_finish(cb);
        if (EVP_DigestFinal_ex(md, m->bh[c], &len) == 1 && len == 32) {
            m->have_bh[c] = true;
            rc = 0;
        }
    }
    free(cb);
    EVP_MD_CTX_free(md);
    return rc;
}

/* header_digest - SHA-256 of the signed fields in h= order, then the signature field itself */
static int header_digest(const struct dkim_msg *m, const struct dkim_signer *s, const char *sig, size_t sig_len,
                         unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct buf tmp = {0};
    unsigned len = 0;
    int rc = -EIO;

    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < s->n_headers; i++) {
        /* the k-th use of a name takes the k-th instance from the bottom */
        size_t k = 0;
        for (size_t j = 0; j < i; j++)
            k += strcasecmp(s->headers[j], s->headers[i]) == 0;
        const struct dkim_field *f = NULL;
        for (size_t j = m->n_fields; j-- > 0 && !f;)
            if (field_is(&m->fields[j], s->headers[i]) && k-- == 0)
                f = &m->fields[j];
        if (!f)
            continue; /* absent: signs nothing, so adding one later breaks the signature */
        buf_reset(&tmp);
        dkim_canon_header(s->hcanon, f->p, f->len, true, &tmp);
        EVP_DigestUpdate(md, tmp.data, tmp.len);
    }
    buf_reset(&tmp);
    dkim_canon_header(s->hcanon, sig, sig_len, false, &tmp);
    EVP_DigestUpdate(md, tmp.data, tmp.len);
    if (EVP_DigestFinal_ex(md, out, &len) == 1 && len == 32)
        rc = 0;
out:
    buf_fini(&tmp);
    EVP_MD_CTX_free(md);
    return rc;
}

/* sign - the signature over the header digest; *sig heap */
static int sign(const struct dkim_signer *s, const unsigned char digest[32], unsigned char **sig, size_t *sig_len)
{
    size_t len = 0;
    int ok = 0;

    *sig = NULL;
    if (s->alg == DKIM_ALG_ED25519_SHA256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (md && EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) == 1 &&
            EVP_DigestSign(md, NULL, &len, digest, 32) == 1) {
            *sig = xmalloc(len);
            ok = EVP_DigestSign(md, *sig, &len, digest, 32) == 1;
        }
        EVP_MD_CTX_free(md);
    } else {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(s->key, NULL);
        if (pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
            EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 && EVP_PKEY_sign(pc, NULL, &len, digest, 32) == 1) {
            *sig = xmalloc(len);
            ok = EVP_PKEY_sign(pc, *sig, &len, digest, 32) == 1;
        }
        EVP_PKEY_CTX_free(pc);
    }
    if (!ok) {
        free(*sig);
        *sig = NULL;
        return -EIO;
    }
    *sig_len = len;
    return 0;
}

/* ---- the field ---- */

struct fold {
    struct buf *b;
    size_t col;
};

/* fold_put - a token, folded onto a new line when it would pass the limit */
static void fold_put(struct fold *f, const char *tok, bool space)
{
    size_t n = strlen(tok);
    if (f->col + n + (space ? 1 : 0) > DKIM_LINE_MAX && f->col > 1) {
        buf_append(f->b, "\r\n\t", 3);
        f->col = 1;
    } else if (space) {
        buf_putc(f->b, ' ');
        f->col++;
    }
    buf_append(f->b, tok, n);
    f->col += n;
}

static char *base64(const unsigned char *p, size_t n)
{
    char *s = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

int dkim_sign_add(struct dkim_msg *m, const struct dkim_signer *s, int64_t now, struct buf *out)
{
    struct buf f = {0};
    struct fold fo = {&f, 0};
    char tok[160];
    unsigned char digest[32], *sig = NULL;
    size_t sig_len = 0;

    if (body_hash(m, s->bcanon) < 0)
        return -EIO;
    buf_puts(&f, "DKIM-Signature:");
    fo.col = f.len;
    fold_put(&fo, "v=1;", true);
    snprintf(tok, sizeof(tok), "a=%s;", dkim_sign_alg_name(s->alg));
    fold_put(&fo, tok, true);
    snprintf(tok, sizeof(tok), "c=%s/%s;", dkim_canon_name(s->hcanon), dkim_canon_name(s->bcanon));
    fold_put(&fo, tok, true);
    char *d = xasprintf("d=%s;", s->domain), *sel = xasprintf("s=%s;", s->selector);
    fold_put(&fo, d, true);
    fold_put(&fo, sel, true);
    free(d);
    free(sel);
    snprintf(tok, sizeof(tok), "t=%" PRId64 ";", now);
    fold_put(&fo, tok, true);
    if (s->expiration_s) {
        snprintf(tok, sizeof(tok), "x=%" PRId64 ";", now + (int64_t)s->expiration_s);
        fold_put(&fo, tok, true);
    }
    for (size_t i = 0; i < s->n_headers; i++) {
        snprintf(tok, sizeof(tok), "%s%s%s", i == 0 ? "h=" : "", s->headers[i], i + 1 == s->n_headers ? ";" : ":");
        fold_put(&fo, tok, i == 0);
    }
    char *bh = base64(m->bh[s->bcanon], 32);
    snprintf(tok, sizeof(tok), "bh=%s;", bh);
    free(bh);
    fold_put(&fo, tok, true);
    fold_put(&fo, "b=", true);
    /* the field as the verifier sees it with b= emptied: everything up to here */
    if (header_digest(m, s, (const char *)f.data, f.len, digest) < 0 || sign(s, digest, &sig, &sig_len) < 0) {
        buf_fini(&f);
        return -EIO;
    }
    char *b = base64(sig, sig_len);
    free(sig);
    for (size_t i = 0, n = strlen(b); i < n;) {
        size_t room = fo.col < DKIM_LINE_MAX ? DKIM_LINE_MAX - fo.col : 0;
        if (room < 8) {
            buf_append(&f, "\r\n\t", 3);
            fo.col = 1;
            continue;
        }
        size_t k = n - i < room ? n - i : room;
        buf_append(&f, b + i, k);
        fo.col += k;
        i += k;
    }
    free(b);
    buf_append(&f, "\r\n", 2);
    buf_append(out, f.data, f.len);
    buf_fini(&f);
    return 0;
}
