/*
 * egress_tls - a worker's outbound TLS: contexts, session cache, broken-TLS memory (see egress_tls.h)
 */
#include "egress/egress_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "common/proto_path.h"

static int ctx_make(enum tls_verify v, const struct cfg *cfg, struct tls_ctx **out, char **err)
{
    const char *ca = cfg->egress_tls_ca_file && cfg->egress_tls_ca_file[0] ? cfg->egress_tls_ca_file : NULL;
    int rc = tls_client_ctx_new(v, ca, out, err);
    if (rc < 0)
        return rc;
    if (cfg->egress_tls_client_certificate && cfg->egress_tls_client_certificate[0]) {
        rc = tls_client_ctx_cert(*out, cfg->egress_tls_client_certificate, cfg->egress_tls_client_private_key, err);
        if (rc < 0) {
            tls_ctx_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

int egress_tls_init(struct egress_tls *t, const struct cfg *cfg, char **err)
{
    memset(t, 0, sizeof(*t));
    *err = NULL;
    int rc = ctx_make(TLS_VERIFY_PEER, cfg, &t->verify, err);
    if (rc == 0)
        rc = ctx_make(TLS_VERIFY_NONE, cfg, &t->insecure, err);
    if (rc < 0)
        egress_tls_fini(t);
    return rc;
}

void egress_tls_fini(struct egress_tls *t)
{
    for (size_t i = 0; i < EGRESS_TLS_SESSIONS; i++) {
        free(t->sess[i].key);
        tls_session_free(t->sess[i].s);
    }
    for (size_t i = 0; i < EGRESS_TLS_BROKEN; i++)
        free(t->broken[i].site);
    tls_ctx_free(t->verify);
    tls_ctx_free(t->insecure);
    memset(t, 0, sizeof(*t));
}

size_t egress_tls_sessions_drop(struct egress_tls *t)
{
    size_t n = 0;
    for (size_t i = 0; i < EGRESS_TLS_SESSIONS; i++) {
        if (!t->sess[i].s && !t->sess[i].key)
            continue;
        n += t->sess[i].s != NULL;
        free(t->sess[i].key);
        tls_session_free(t->sess[i].s);
        t->sess[i] = (struct egress_tls_slot){0};
    }
    return n;
}

/* slot_of - FNV-1a of the key, folded to a table of n slots */
static size_t slot_of(const char *key, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= UINT64_C(1099511628211);
    }
    return (size_t)(h % n);
}

void egress_tls_plan(struct egress_tls *t, unsigned enable_tls, uint64_t remember_broken_ms, const char *site,
                     uint64_t now_ms, struct egress_tls_plan *out)
{
    *out = (struct egress_tls_plan){.mode = EGRESS_SMTP_TLS_NONE};
    switch (enable_tls) {
    case PROTO_PATH_TLS_REQUIRED:
        out->mode = EGRESS_SMTP_TLS_REQUIRE;
        out->verify = true;
        return;
    case PROTO_PATH_TLS_REQUIRED_INSECURE:
        out->mode = EGRESS_SMTP_TLS_REQUIRE;
        return;
    case PROTO_PATH_TLS_OPPORTUNISTIC:
    case PROTO_PATH_TLS_OPPORTUNISTIC_INSECURE:
        if (remember_broken_ms && site && egress_tls_broken_get(t, site, now_ms)) {
            out->broken_skip = true;
            return;
        }
        out->mode = EGRESS_SMTP_TLS_TRY;
        out->verify = enable_tls == PROTO_PATH_TLS_OPPORTUNISTIC;
        out->remember_broken_ms = remember_broken_ms;
        return;
    default: /* Disabled */
        return;
    }
}

void egress_tls_broken_set(struct egress_tls *t, const char *site, uint64_t until_ms)
{
    struct egress_tls_broken *b = &t->broken[slot_of(site, EGRESS_TLS_BROKEN)];
    if (!b->site || strcmp(b->site, site) != 0) {
        free(b->site);
        b->site = xstrdup(site);
    }
    b->until_ms = until_ms;
}

bool egress_tls_broken_get(const struct egress_tls *t, const char *site, uint64_t now_ms)
{
    const struct egress_tls_broken *b = &t->broken[slot_of(site, EGRESS_TLS_BROKEN)];
    return b->site && strcmp(b->site, site) == 0 && now_ms < b->until_ms;
}

char *egress_tls_session_key(bool verify, const char *host, uint16_t port)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--;
    return xasprintf("%c:%.*s:%u", verify ? 'v' : 'i', (int)n, host, port);
}

struct tls_ctx *egress_tls_ctx(const struct egress_tls *t, bool verify)
{
    return verify ? t->verify : t->insecure;
}

struct tls_session *egress_tls_session_get(const struct egress_tls *t, const char *key)
{
    const struct egress_tls_slot *s = &t->sess[slot_of(key, EGRESS_TLS_SESSIONS)];
    return s->key && strcmp(s->key, key) == 0 ? s->s : NULL;
}

void egress_tls_session_put(struct egress_tls *t, const char *key, struct tls_session *sess)
{
    struct egress_tls_slot *s = &t->sess[slot_of(key, EGRESS_TLS_SESSIONS)];
    if (!s->key || strcmp(s->key, key) != 0) {
        free(s->key);
        s->key = xstrdup(key);
    }
    tls_session_free(s->s);
    s->s = sess;
}

void egress_tls_info_get(const struct tls_conn *c, struct egress_tls_info *out)
{
    const char *cipher = tls_conn_cipher(c), *version = tls_conn_version(c);
    snprintf(out->cipher, sizeof(out->cipher), "%s", cipher ? cipher : "");
    snprintf(out->version, sizeof(out->version), "%s", version ? version : "");
    tls_conn_peer_subject(c, out->subject, sizeof(out->subject));
}
