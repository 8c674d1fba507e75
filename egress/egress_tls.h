/*
 * egress_tls - a worker's outbound TLS: client contexts, the session cache, broken-TLS memory
 *
 * egress_tls_init() makes two client contexts from [egress]: one that verifies (chain against the
 * system CA store, or tls_ca_file when set, plus the MX host name) and one that does not, both with
 * the optional client certificate (tls_client_certificate, tls_client_private_key); any error is
 * the caller's to report (the worker does not start without its contexts).
 * egress_tls_plan() turns a path's enable_tls (KumoMTA's values, common/proto_path.h) into what one
 * connection does:
 *   Opportunistic          STARTTLS when offered, certificate and name verified; a failed handshake
 *                          ends that connection (the next address or host is tried), never plaintext
 *                          on it. A site remembered as broken (remember_broken_tls) gets plaintext
 *                          directly, as if STARTTLS were not offered.
 *   OpportunisticInsecure  the same without verification.
 *   Required               STARTTLS must be offered and verify, else the connection fails
 *                          (transient); never plaintext. remember_broken_tls is ignored.
 *   RequiredInsecure       TLS required, no verification.
 *   Disabled               never STARTTLS.
 * Sessions (resumption): one per (context, MX host name, port), kept by egress_tls_session_put()
 * and offered by egress_tls_session_get(); a session resumed skips the certificate check, which is
 * why the verifying context's sessions are never offered for another name. Both caches are
 * direct-mapped tables of fixed size (EGRESS_TLS_SESSIONS, EGRESS_TLS_BROKEN slots): bounded
 * memory, O(1), and a collision only forgets an entry early (a full handshake, or one more
 * failed TLS attempt). Both are per worker process and forgotten at restart (as in KumoMTA, where
 * remember_broken_tls is per kumod process).
 * Ownership: the struct owns the contexts, the sessions and the keys. Not thread-safe.
 */
#ifndef RINGMAIL_EGRESS_TLS_H
#define RINGMAIL_EGRESS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg/cfg.h"
#include "egress/egress_smtp.h"
#include "tls/tls.h"

#define EGRESS_TLS_SESSIONS 1024
#define EGRESS_TLS_BROKEN 1024
#define EGRESS_TLS_CIPHER_MAX 64
#define EGRESS_TLS_VERSION_MAX 16
#define EGRESS_TLS_SUBJECT_MAX 512

/* what a record says about the TLS of its connection; empty strings: plaintext */
struct egress_tls_info {
    char cipher[EGRESS_TLS_CIPHER_MAX];
    char version[EGRESS_TLS_VERSION_MAX];
    char subject[EGRESS_TLS_SUBJECT_MAX]; /* tls_conn_peer_subject(): "CN=..." entries, TAB-separated */
};

struct egress_tls_slot {
    char *key;
    struct tls_session *s;
};

struct egress_tls_broken {
    char *site;
    uint64_t until_ms; /* monotonic */
};

struct egress_tls {
    struct tls_ctx *verify, *insecure;
    struct egress_tls_slot sess[EGRESS_TLS_SESSIONS];
    struct egress_tls_broken broken[EGRESS_TLS_BROKEN];
};

/* one connection's TLS: filled by egress_tls_plan() */
struct egress_tls_plan {
    enum egress_smtp_tls mode;
    bool verify;                  /* the verifying context (egress_tls_ctx()) */
    uint64_t remember_broken_ms;  /* a failed handshake marks the site for this long; 0: not */
    bool broken_skip;             /* plaintext because the site is remembered as broken */
};

/* egress_tls_init - 0, or -errno with *err (heap); connections take a context when their handshake starts
 * (egress_tls_ctx), so a reload may replace t's contexts under open connections */
int egress_tls_init(struct egress_tls *t, const struct cfg *cfg, char **err);
void egress_tls_fini(struct egress_tls *t);
/* egress_tls_sessions_drop - forget every kept session (memory is short); returns how many */
size_t egress_tls_sessions_drop(struct egress_tls *t);

/* egress_tls_plan - enable_tls (enum proto_path_tls) for a connection to site, now_ms monotonic */
void egress_tls_plan(struct egress_tls *t, unsigned enable_tls, uint64_t remember_broken_ms, const char *site,
                     uint64_t now_ms, struct egress_tls_plan *out);

/* egress_tls_broken_set - the site's TLS failed: plaintext for Opportunistic paths until until_ms */
void egress_tls_broken_set(struct egress_tls *t, const char *site, uint64_t until_ms);
bool egress_tls_broken_get(const struct egress_tls *t, const char *site, uint64_t now_ms);

/* egress_tls_session_key - the cache key of a connection (heap) */
char *egress_tls_session_key(bool verify, const char *host, uint16_t port);
/* egress_tls_ctx - the context to start a handshake with now (a reload may have replaced it) */
struct tls_ctx *egress_tls_ctx(const struct egress_tls *t, bool verify);
/* egress_tls_session_get - the session kept for key (borrowed until the next put), or NULL */
struct tls_session *egress_tls_session_get(const struct egress_tls *t, const char *key);
/* egress_tls_session_put - keep s (owned from now on) for key, replacing what the slot held */
void egress_tls_session_put(struct egress_tls *t, const char *key, struct tls_session *s);

/* egress_tls_info_get - the record fields of an established conn */
void egress_tls_info_get(const struct tls_conn *c, struct egress_tls_info *out);

#endif
