/*
 * egress_dkim - DKIM signing in the egress worker (see egress_dkim.h)
 */
#include "egress/egress_dkim.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "egress/egress_attempt.h"

void egress_dkim_init(struct egress_dkim *d, const struct cfg *c)
{
    char *err = NULL;

    memset(d, 0, sizeof(*d));
    dkim_cache_init(&d->cache, DKIM_CACHE_DEFAULT);
    if (dkim_key_load(c, &d->keys, &err) < 0)
        fatal("DKIM keys could not be loaded:\n%s", err ? err : "");
    if (d->keys)
        log_info("DKIM: %zu signer(s) loaded", d->keys->n);
}

void egress_dkim_reload(struct egress_dkim *d, const struct cfg *c)
{
    struct dkim_keyset *ks = NULL;
    char *err = NULL;

    if (dkim_key_load(c, &ks, &err) < 0) {
        log_error("reload: DKIM keys could not be loaded, still signing with the previous ones:\n%s", err ? err : "");
        free(err);
        return;
    }
    dkim_key_free(d->keys);
    d->keys = ks;
    dkim_cache_clear(&d->cache);
    log_info("DKIM: %zu signer(s) after reload", ks ? ks->n : 0);
}

void egress_dkim_shed(struct egress_dkim *d)
{
    dkim_cache_clear(&d->cache);
}

void egress_dkim_fini(struct egress_dkim *d)
{
    dkim_key_free(d->keys);
    dkim_cache_fini(&d->cache);
    memset(d, 0, sizeof(*d));
}

/* sign - the signature fields of the chosen signers into *fields; *valid_until as for the cache */
static void sign(struct egress_dkim *d, const struct proto_env *env, const char *msg, size_t len, int64_t now,
                 struct buf *fields, int64_t *valid_until)
{
    const struct dkim_signer *chosen[EGRESS_DKIM_MAX_SIGNERS];
    struct dkim_msg m;
    char from[256];
    unsigned unknown = 0;

    *valid_until = 0;
    dkim_sign_msg_init(&m, msg, len);
    bool have_from = dkim_sign_from_domain(&m, from, sizeof(from));
    size_t n = dkim_key_select(d->keys, have_from ? from : NULL, egress_attempt_addr_domain(env->sender),
                               proto_env_meta_get(env, DKIM_KEY_META), chosen, EGRESS_DKIM_MAX_SIGNERS, &unknown);
    if (unknown)
        log_warn("DKIM: %u signer name(s) in the %s metadata are not configured", unknown, DKIM_KEY_META);
    for (size_t i = 0; i < n; i++) {
        if (dkim_sign_add(&m, chosen[i], now, fields) < 0) {
            d->failures++;
            log_error("DKIM: signer %s could not sign (OpenSSL refused the key)", chosen[i]->name);
            continue;
        }
        if (chosen[i]->expiration_s) {
            int64_t until = now + (int64_t)(chosen[i]->expiration_s / 2);
            if (!*valid_until || until < *valid_until)
                *valid_until = until;
        }
    }
    if (n)
        d->signed_msgs++;
    dkim_sign_msg_fini(&m);
}

void egress_dkim_apply(struct egress_dkim *d, uint64_t id_hi, uint64_t id_lo, const struct proto_env *env,
                       const char *msg, size_t len, char **out, size_t *out_len)
{
    int64_t now = (int64_t)time(NULL), valid_until = 0;
    size_t flen = 0;
    struct buf fields = {0};

    *out = NULL;
    *out_len = 0;
    if (!d->keys)
        return;
    const char *cached = dkim_cache_get(&d->cache, id_hi, id_lo, now, &flen);
    if (cached) {
        d->cache_hits++;
    } else {
        sign(d, env, msg, len, now, &fields, &valid_until);
        dkim_cache_put(&d->cache, id_hi, id_lo, (const char *)fields.data, fields.len, valid_until);
        cached = (const char *)fields.data;
        flen = fields.len;
    }
    if (flen) {
        *out = xmalloc(flen + len);
        memcpy(*out, cached, flen);
        memcpy(*out + flen, msg, len);
        *out_len = flen + len;
    }
    buf_fini(&fields);
}
