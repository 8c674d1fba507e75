/*
 * dkim_key - the node's DKIM signers and their keys (see dkim_key.h)
 */
#include "dkim/dkim_key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>

#include "base/file.h"
#include "base/mem.h"

#define DKIM_KEY_FILE_MAX (1u << 20) /* a PEM key is a few KiB */

static void signer_fini(struct dkim_signer *s)
{
    free(s->name);
    free(s->domain);
    free(s->selector);
    for (size_t i = 0; i < s->n_headers; i++)
        free(s->headers[i]);
    free(s->headers);
    EVP_PKEY_free(s->key);
}

void dkim_key_free(struct dkim_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        signer_fini(&ks->s[i]);
    free(ks->s);
    free(ks);
}

/* read_key - the private key of one entry; NULL with *why (static or heap in *why_heap) */
static EVP_PKEY *read_key(const struct cfg_dkim *d, const char **why, char **why_heap)
{
    char *text = NULL;
    size_t len = 0;
    int rc = file_read_all(d->key_file, DKIM_KEY_FILE_MAX, &text, &len);

    if (rc < 0) {
        *why = *why_heap = xasprintf("cannot be read: %s", strerror(-rc));
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(text, len);
    free(text);
    if (!k) {
        *why = "holds no PEM private key (unencrypted PKCS#8 or RSA PEM expected)";
        return NULL;
    }
    bool rsa = EVP_PKEY_is_a(k, "RSA"), ed = EVP_PKEY_is_a(k, "ED25519");
    if (d->algorithm == CFG_DKIM_ED25519_SHA256 && !ed)
        *why = "is not an Ed25519 key, and algorithm is \"ed25519-sha256\"";
    else if (d->algorithm == CFG_DKIM_RSA_SHA256 && !rsa)
        *why = "is not an RSA key, and algorithm is \"rsa-sha256\"";
    else if (rsa && EVP_PKEY_get_bits(k) < DKIM_KEY_RSA_MIN_BITS)
        *why = *why_heap = xasprintf("is an RSA key of %d bits; DKIM keys need at least %d (RFC 8301)",
                                     EVP_PKEY_get_bits(k), DKIM_KEY_RSA_MIN_BITS);
    else
        return k;
    EVP_PKEY_free(k);
    return NULL;
}

int dkim_key_load(const struct cfg *c, struct dkim_keyset **out, char **err)
{
    struct buf errs = {0};

    *out = NULL;
    if (err)
        *err = NULL;
    if (c->n_dkim == 0)
        return 0;
    struct dkim_keyset *ks = xcalloc(1, sizeof(*ks));
    ks->s = xcalloc(c->n_dkim, sizeof(*ks->s));
    for (size_t i = 0; i < c->n_dkim; i++) {
        const struct cfg_dkim *d = &c->dkim[i];
        const char *why = NULL;
        char *why_heap = NULL;
        EVP_PKEY *k = read_key(d, &why, &why_heap);
        if (!k) {
            buf_printf(&errs, "%s:%u: dkim: key_file %s of signer %s %s\n", c->source ? c->source : "(config)", d->line,
                       d->key_file, d->name, why);
            free(why_heap);
            continue;
        }
        struct dkim_signer *s = &ks->s[ks->n++];
        s->name = xstrdup(d->name);
        s->domain = xstrdup(d->domain);
        s->selector = xstrdup(d->selector);
        s->alg = d->algorithm == CFG_DKIM_ED25519_SHA256 ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
        s->hcanon = d->header_relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
        s->bcanon = d->body_relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
        s->n_headers = d->n_headers;
        s->headers = xcalloc(d->n_headers ? d->n_headers : 1, sizeof(char *));
        for (size_t h = 0; h < d->n_headers; h++)
            s->headers[h] = xstrdup(d->headers[h]);
        s->expiration_s = (d->expiration_ms + 999) / 1000;
        s->key = k;
    }
    if (errs.len) {
        dkim_key_free(ks);
        if (err)
            *err = buf_take(&errs);
        buf_fini(&errs);
        return -EINVAL;
    }
    *out = ks;
    return 0;
}

static void choose(const struct dkim_signer **out, size_t max, size_t *n, const struct dkim_signer *s)
{
    for (size_t i = 0; i < *n; i++)
        if (out[i] == s)
            return;
    if (*n < max)
        out[(*n)++] = s;
}

size_t dkim_key_select(const struct dkim_keyset *ks, const char *from_domain, const char *env_domain,
                       const char *meta, const struct dkim_signer **out, size_t max, unsigned *unknown)
{
    size_t n = 0;
    bool by_domain = true;

    *unknown = 0;
    if (!ks)
        return 0;
    if (meta) {
        while (*meta == ' ')
            meta++;
        by_domain = *meta == '+';
        if (by_domain)
            meta++;
    }
    if (by_domain)
        for (size_t i = 0; i < ks->n; i++) {
            const struct dkim_signer *s = &ks->s[i];
            if ((from_domain && strcasecmp(s->domain, from_domain) == 0) ||
                (env_domain && strcasecmp(s->domain, env_domain) == 0))
                choose(out, max, &n, s);
        }
    for (const char *p = meta; p && *p;) {
        size_t len = strcspn(p, ", ");
        if (len > 0 && !(len == 4 && strncmp(p, "none", 4) == 0)) {
            size_t i = 0;
            while (i < ks->n && !(strlen(ks->s[i].name) == len && strncmp(ks->s[i].name, p, len) == 0))
                i++;
            if (i < ks->n)
                choose(out, max, &n, &ks->s[i]);
            else
                (*unknown)++;
        }
        p += len;
        p += strspn(p, ", ");
    }
    /* configuration order, whatever the order of the list */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j] < out[j - 1]; j--) {
            const struct dkim_signer *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}
