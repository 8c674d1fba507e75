/*
 * tls - STARTTLS on memory buffers (OpenSSL 3); contract in tls.h
 */
#include "tls/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/mem.h"

#define TLS_SELF_SIGNED_DAYS 365
#define TLS_HOST_MAX 253

struct tls_ctx {
    SSL_CTX *ssl_ctx;
    enum tls_role role;
    enum tls_verify verify;
    bool self_signed;
};

struct tls_conn {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer; owned by ssl */
    BIO *wbio; /* ciphertext for the peer; owned by ssl */
    enum tls_role role;
    enum tls_state state;
    bool handshake_done;
    bool close_sent;
    SSL_SESSION *session; /* client: the newest resumable session the server gave; owned */
    char err[TLS_ERR_SIZE];
};

/* ---- error text ---- */

/*
 * The OpenSSL error queue is per thread and shared by every conn, so each operation starts with
 * an empty queue and leaves one behind: a stale entry would be blamed on the next conn.
 */
static void tls_err_text(char *buf, size_t size, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, size, "%s", fallback);
    } else {
        const char *reason = ERR_reason_error_string(e);
        if (reason != NULL)
            snprintf(buf, size, "%s", reason);
        else
            ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
}

static char *tls_err_dup(const char *what, const char *fallback)
{
    char text[TLS_ERR_SIZE];
    tls_err_text(text, sizeof(text), fallback);
    return xasprintf("%s: %s", what, text);
}

/* ---- contexts ---- */

/* tls_new_session - a client conn got a resumable session (TLS 1.3: a ticket after the handshake) */
static int tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_conn *c = SSL_get_app_data(ssl);
    if (c == NULL)
        return 0;
    /* a copy: the conn's own session is marked not resumable when it ends without close_notify
     * (SMTP clients close after QUIT's reply), and that must not spoil the cached one */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL) {
        ERR_clear_error();
        return 0;
    }
    SSL_SESSION_free(c->session);
    c->session = copy;
    return 0; /* OpenSSL keeps its reference to sess */
}

static SSL_CTX *tls_ssl_ctx_base(enum tls_role role)
{
    SSL_CTX *sc = SSL_CTX_new(role == TLS_ROLE_SERVER ? TLS_server_method() : TLS_client_method());
    if (sc == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
    /* renegotiation only gives a peer a way to make us compute and buffer more; SMTP never needs it */
    SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* thousands of idle sessions: give the 2 x 16 KiB record buffers back between records */
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    if (role == TLS_ROLE_SERVER) {
        SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(sc, 0);
    } else {
        /* sessions go to the conn (tls_new_session), and from there to the caller's cache */
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(sc, tls_new_session);
    }
    return sc;
}

static bool tls_host_name_ok(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n > TLS_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = host[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.'))
            return false;
    }
    return true;
}

static void tls_fingerprint(X509 *x, char *out, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t pos = 0;

    out[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &n) != 1)
        return;
    for (unsigned int i = 0; i < n && pos + 4 <= size; i++)
        pos += (size_t)snprintf(out + pos, size - pos, i ? ":%02X" : "%02X", md[i]);
}

static void tls_time_text(const ASN1_TIME *t, char *out, size_t size)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "unknown");
}

/* a self-signed EC P-256 certificate for host, valid from an hour ago for a year */
static int tls_self_signed_make(const char *host, EVP_PKEY **key_out, X509 **cert_out)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    GENERAL_NAMES *sans = NULL;
    int rc = -EIO;

    if (key == NULL || x == NULL || serial == NULL)
        goto out;
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        BN_rand(serial, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
        goto out;
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400L * TLS_SELF_SIGNED_DAYS) == NULL)
        goto out;
    X509_NAME *name = X509_get_subject_name(x);
    /* CN is limited to 64 characters; the SAN below is what clients match anyway */
    if (strlen(host) <= 64 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0) != 1)
        goto out;
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"ringmail self-signed", -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
        goto out;
    /* built from structures, not a "DNS:..." config string, so no host can smuggle in extra names */
    sans = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    if (sans == NULL || gn == NULL || ia5 == NULL || ASN1_STRING_set(ia5, host, (int)strlen(host)) != 1) {
        GENERAL_NAME_free(gn);
        ASN1_IA5STRING_free(ia5);
        goto out;
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(sans, gn) <= 0) {
        GENERAL_NAME_free(gn);
        goto out;
    }
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) != 1)
        goto out;
    if (X509_sign(x, key, EVP_sha256()) == 0)
        goto out;
    *key_out = key;
    *cert_out = x;
    key = NULL;
    x = NULL;
    rc = 0;
out:
    GENERAL_NAMES_free(sans);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static int tls_server_self_signed(SSL_CTX *sc, const char *host, char **err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char fp[3 * EVP_MAX_MD_SIZE + 1];

    if (host == NULL || !tls_host_name_ok(host)) {
        *err = xasprintf("tls: self-signed certificate needs a host name of letters, digits, '-' and '.', "
                         "got \"%s\"",
                         host ? host : "(none)");
        return -EINVAL;
    }
    if (tls_self_signed_make(host, &key, &cert) != 0) {
        *err = tls_err_dup("tls: generating a self-signed certificate", "failed");
        EVP_PKEY_free(key);
        X509_free(cert);
        return -EIO;
    }
    int ok = SSL_CTX_use_certificate(sc, cert) == 1 && SSL_CTX_use_PrivateKey(sc, key) == 1;
    if (ok)
        tls_fingerprint(cert, fp, sizeof(fp));
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) {
        *err = tls_err_dup("tls: installing the self-signed certificate", "failed");
        return -EIO;
    }
    log_warn(
        "tls: no [tls] certificate/private_key configured: using a SELF-SIGNED EC P-256 certificate for %s, "
        "generated at start, valid %d days, SHA-256 fingerprint %s; clients that verify certificates will "
        "refuse it",
        host, TLS_SELF_SIGNED_DAYS, fp);
    return 0;
}

/* tls_cert_files - chain and key into sc; ck and kk name the configuration keys in messages */
static int tls_cert_files(SSL_CTX *sc, const char *cert_file, const char *key_file, const char *ck, const char *kk,
                          char **err)
{
    char subject[256], not_after[40], fp[3 * EVP_MAX_MD_SIZE + 1];

    /* OpenSSL's own text for a missing file is vague; say which file and why */
    if (access(cert_file, R_OK) != 0) {
        *err = xasprintf("tls: %s %s: %s", ck, cert_file, strerror(errno));
        return -ENOENT;
    }
    if (access(key_file, R_OK) != 0) {
        *err = xasprintf("tls: %s %s: %s", kk, key_file, strerror(errno));
        return -ENOENT;
    }
    if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1) {
        char *what = xasprintf("tls: %s %s", ck, cert_file);
        *err = tls_err_dup(what, "no usable PEM certificate");
        free(what);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(sc, key_file, SSL_FILETYPE_PEM) != 1) {
        char *what = xasprintf("tls: %s %s", kk, key_file);
        *err = tls_err_dup(what, "no usable PEM private key");
        free(what);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(sc) != 1) {
        char *what = xasprintf("tls: %s %s does not match %s %s", kk, key_file, ck, cert_file);
        *err = tls_err_dup(what, "mismatch");
        free(what);
        return -EINVAL;
    }
    X509 *cert = SSL_CTX_get0_certificate(sc);
    if (cert == NULL) {
        *err = xasprintf("tls: %s %s: no certificate loaded", ck, cert_file);
        return -EINVAL;
    }
    if (X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject)) == NULL)
        snprintf(subject, sizeof(subject), "unknown");
    tls_time_text(X509_get0_notAfter(cert), not_after, sizeof(not_after));
    tls_fingerprint(cert, fp, sizeof(fp));
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
        log_warn("tls: %s %s EXPIRED on %s (subject %s)", ck, cert_file, not_after, subject);
    else if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0)
        log_warn("tls: %s %s is not valid yet (subject %s)", ck, cert_file, subject);
    log_info("tls: certificate %s loaded: subject %s, expires %s, SHA-256 fingerprint %s", cert_file, subject,
             not_after, fp);
    ERR_clear_error();
    return 0;
}

int tls_server_ctx_new(const char *cert_file, const char *key_file, const char *host_name,
                       struct tls_ctx **out, char **err)
{
    *out = NULL;
    *err = NULL;
    /* the configuration's default for both keys is "" */
    if (cert_file != NULL && cert_file[0] == '\0')
        cert_file = NULL;
    if (key_file != NULL && key_file[0] == '\0')
        key_file = NULL;
    if ((cert_file == NULL) != (key_file == NULL)) {
        *err = xasprintf("tls: [tls] certificate and [tls] private_key must be set together");
        return -EINVAL;
    }
    ERR_clear_error();
    SSL_CTX *sc = tls_ssl_ctx_base(TLS_ROLE_SERVER);
    if (sc == NULL) {
        *err = tls_err_dup("tls: creating the server context", "failed");
        return -ENOMEM;
    }
    int rc = cert_file ? tls_cert_files(sc, cert_file, key_file, "[tls] certificate", "[tls] private_key", err)
                       : tls_server_self_signed(sc, host_name, err);
    if (rc != 0) {
        SSL_CTX_free(sc);
        ERR_clear_error();
        return rc;
    }
    struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->ssl_ctx = sc;
    ctx->role = TLS_ROLE_SERVER;
    ctx->self_signed = cert_file == NULL;
    *out = ctx;
    return 0;
}

int tls_client_ctx_new(enum tls_verify verify, const char *ca_file, struct tls_ctx **out, char **err)
{
    *out = NULL;
    *err = NULL;
    ERR_clear_error();
    SSL_CTX *sc = tls_ssl_ctx_base(TLS_ROLE_CLIENT);
    if (sc == NULL) {
        *err = tls_err_dup("tls: creating the client context", "failed");
        return -ENOMEM;
    }
    /* also for opportunistic sessions, so the logs can say whether the peer would have verified; one
     * file read now, never the hashed directory (its lookups would read files during handshakes) */
    const char *file = ca_file;
    if (file == NULL) {
        file = getenv(X509_get_default_cert_file_env());
        if (file == NULL || file[0] == '\0')
            file = X509_get_default_cert_file();
    }
    int ok = SSL_CTX_load_verify_locations(sc, file, NULL);
    if (ok != 1 && ca_file == NULL && verify == TLS_VERIFY_NONE) {
        /* nothing to verify against is fine when nothing is verified: the logs say "not verified" */
        ERR_clear_error();
        ok = 1;
    }
    if (ok != 1) {
        char *what = xasprintf("tls: CA %s", ca_file ? ca_file : file);
        *err = tls_err_dup(what, "cannot load");
        free(what);
        SSL_CTX_free(sc);
        return -EINVAL;
    }
    SSL_CTX_set_verify(sc, verify == TLS_VERIFY_PEER ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->ssl_ctx = sc;
    ctx->role = TLS_ROLE_CLIENT;
    ctx->verify = verify;
    *out = ctx;
    ERR_clear_error();
    return 0;
}

int tls_client_ctx_cert(struct tls_ctx *ctx, const char *cert_file, const char *key_file, char **err)
{
    *err = NULL;
    if (ctx->role != TLS_ROLE_CLIENT)
        panic("tls_client_ctx_cert: a server context");
    ERR_clear_error();
    int rc = tls_cert_files(ctx->ssl_ctx, cert_file, key_file, "client certificate", "client private key", err);
    ERR_clear_error();
    return rc;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

bool tls_ctx_self_signed(const struct tls_ctx *ctx)
{
    return ctx->self_signed;
}

/* ---- connections ---- */

static void tls_fail(struct tls_conn *c, int ssl_err)
{
    if (c->state == TLS_STATE_FAILED)
        return;
    c->state = TLS_STATE_FAILED;
    if (ssl_err == SSL_ERROR_SYSCALL) {
        /* memory BIOs have no syscalls: this is OpenSSL seeing an end of data it did not expect */
        tls_err_text(c->err, sizeof(c->err), "unexpected end of TLS data");
        return;
    }
    tls_err_text(c->err, sizeof(c->err), "TLS protocol error");
    long vr = SSL_get_verify_result(c->ssl);
    if (c->role == TLS_ROLE_CLIENT && (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) && vr != X509_V_OK) {
        size_t n = strlen(c->err);
        snprintf(c->err + n, sizeof(c->err) - n, " (%s)", X509_verify_cert_error_string(vr));
    }
}

static void tls_fail_text(struct tls_conn *c, const char *why)
{
    if (c->state == TLS_STATE_FAILED)
        return;
    c->state = TLS_STATE_FAILED;
    snprintf(c->err, sizeof(c->err), "%s", why);
    ERR_clear_error();
}

/* output nobody drains is a peer making us buffer (alerts, key updates): stop before it grows */
static bool tls_out_overflow(struct tls_conn *c)
{
    if (BIO_ctrl_pending(c->wbio) <= 2 * (size_t)TLS_CIPHER_OUT_MAX)
        return false;
    char why[96];
    snprintf(why, sizeof(why), "more than %u bytes of TLS output not sent", 2 * TLS_CIPHER_OUT_MAX);
    tls_fail_text(c, why);
    return true;
}

static int tls_handshake_step(struct tls_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->state = TLS_STATE_ESTABLISHED;
        c->handshake_done = true;
        ERR_clear_error();
        return tls_out_overflow(c) ? -EPROTO : 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return tls_out_overflow(c) ? -EPROTO : -EAGAIN;
    }
    tls_fail(c, e);
    return -EPROTO;
}

static struct tls_conn *tls_conn_make(struct tls_ctx *ctx, enum tls_role role, const char *peer_name,
                                      struct tls_session *resume)
{
    if (ctx->role != role)
        panic("tls_conn_new: %s conn from a %s context", role == TLS_ROLE_SERVER ? "server" : "client",
              ctx->role == TLS_ROLE_SERVER ? "server" : "client");
    struct tls_conn *c = xcalloc(1, sizeof(*c));
    c->role = role;
    c->state = TLS_STATE_HANDSHAKING;
    ERR_clear_error();
    c->ssl = SSL_new(ctx->ssl_ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL)
        panic("tls_conn_new: out of memory in OpenSSL");
    /* an empty input BIO means "wait for more", not end of stream */
    BIO_set_mem_eof_return(c->rbio, -1);
    BIO_set_mem_eof_return(c->wbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_app_data(c->ssl, c);

    if (role == TLS_ROLE_SERVER) {
        SSL_set_accept_state(c->ssl);
        return c;
    }
    SSL_set_connect_state(c->ssl);
    if (peer_name != NULL) {
        /* MX names from DNS may end in a dot; SNI (RFC 6066) and certificates carry none */
        size_t n = strlen(peer_name);
        if (n > 0 && peer_name[n - 1] == '.')
            n--;
        char *name = xstrndup(peer_name, n);
        bool ok = n > 0 && n <= TLS_HOST_MAX && SSL_set_tlsext_host_name(c->ssl, name) == 1 &&
                  SSL_set1_host(c->ssl, name) == 1;
        free(name);
        if (!ok) {
            tls_fail_text(c, "peer name not usable for SNI or verification");
            return c;
        }
    } else if (ctx->verify == TLS_VERIFY_PEER) {
        tls_fail_text(c, "peer verification requires a peer name");
        return c;
    }
    /* a session OpenSSL finds unusable (another version, expired) is simply not offered */
    if (resume != NULL && SSL_set_session(c->ssl, (SSL_SESSION *)resume) != 1)
        ERR_clear_error();
    tls_handshake_step(c);
    return c;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, enum tls_role role, const char *peer_name)
{
    return tls_conn_make(ctx, role, peer_name, NULL);
}

struct tls_conn *tls_conn_new_client(struct tls_ctx *ctx, const char *peer_name, struct tls_session *resume)
{
    return tls_conn_make(ctx, TLS_ROLE_CLIENT, peer_name, resume);
}

struct tls_session *tls_conn_session_take(struct tls_conn *c)
{
    SSL_SESSION *s = c->session;
    c->session = NULL;
    return (struct tls_session *)s;
}

void tls_session_free(struct tls_session *s)
{
    SSL_SESSION_free((SSL_SESSION *)s);
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    SSL_free(c->ssl); /* frees both BIOs */
    SSL_SESSION_free(c->session);
    free(c);
}

size_t tls_feed_room(const struct tls_conn *c)
{
    size_t pending = BIO_ctrl_pending(c->rbio);
    return pending >= TLS_CIPHER_IN_MAX ? 0 : TLS_CIPHER_IN_MAX - pending;
}

int tls_feed_cipher(struct tls_conn *c, const void *data, size_t len)
{
    if (c->state == TLS_STATE_FAILED)
        return -EPROTO;
    if (len == 0)
        return 0;
    if (len > tls_feed_room(c))
        return -ENOBUFS;
    /* bytes after close_notify mean nothing; keep accepting so the caller's loop stays simple */
    if (c->state == TLS_STATE_CLOSED)
        return 0;
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        tls_fail_text(c, "out of memory buffering TLS input");
        return -EPROTO;
    }
    if (c->state == TLS_STATE_HANDSHAKING) {
        int rc = tls_handshake_step(c);
        if (rc == -EPROTO)
            return rc;
    }
    return 0;
}

ssize_t tls_read_plain(struct tls_conn *c, void *buf, size_t cap)
{
    switch (c->state) {
    case TLS_STATE_FAILED:
        return -EPROTO;
    case TLS_STATE_CLOSED:
        return 0;
    case TLS_STATE_HANDSHAKING: {
        int rc = tls_handshake_step(c);
        if (rc != 0)
            return rc;
        break;
    }
    case TLS_STATE_ESTABLISHED:
        break;
    }
    if (cap == 0)
        return -EAGAIN;
    if (cap > INT_MAX)
        cap = INT_MAX;
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(c->ssl, buf, cap, &got) == 1) {
        if (tls_out_overflow(c))
            return -EPROTO;
        return (ssize_t)got;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return tls_out_overflow(c) ? -EPROTO : -EAGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        c->state = TLS_STATE_CLOSED;
        ERR_clear_error();
        return 0;
    }
    tls_fail(c, e);
    return -EPROTO;
}

ssize_t tls_write_plain(struct tls_conn *c, const void *data, size_t len)
{
    switch (c->state) {
    case TLS_STATE_FAILED:
        return -EPROTO;
    case TLS_STATE_CLOSED:
        return -EPIPE;
    case TLS_STATE_HANDSHAKING:
        return -EAGAIN;
    case TLS_STATE_ESTABLISHED:
        break;
    }
    if (len == 0)
        return 0;
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (pending >= TLS_CIPHER_OUT_MAX)
        return -EAGAIN;
    /* record overhead may take the output a little past the cap; tls_out_overflow allows twice it */
    size_t n = len < TLS_CIPHER_OUT_MAX - pending ? len : TLS_CIPHER_OUT_MAX - pending;
    size_t wrote = 0;
    ERR_clear_error();
    if (SSL_write_ex(c->ssl, data, n, &wrote) == 1)
        return (ssize_t)wrote;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return -EAGAIN;
    }
    tls_fail(c, e);
    return -EPROTO;
}

size_t tls_pending_cipher(const struct tls_conn *c)
{
    return BIO_ctrl_pending(c->wbio);
}

size_t tls_take_cipher(struct tls_conn *c, void *buf, size_t cap)
{
    size_t pending = BIO_ctrl_pending(c->wbio);
    size_t n = cap < pending ? cap : pending;
    if (n > INT_MAX)
        n = INT_MAX;
    if (n == 0)
        return 0;
    int got = BIO_read(c->wbio, buf, (int)n);
    return got > 0 ? (size_t)got : 0;
}

void tls_shutdown(struct tls_conn *c)
{
    if (c->state == TLS_STATE_FAILED || c->close_sent)
        return;
    if (c->handshake_done) {
        ERR_clear_error();
        /* 0 (sent ours, theirs not seen yet) and 1 are both fine: SMTP does not wait for the answer */
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    c->close_sent = true;
    c->state = TLS_STATE_CLOSED;
}

enum tls_state tls_conn_state(const struct tls_conn *c)
{
    return c->state;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->state == TLS_STATE_FAILED ? c->err : NULL;
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return c->handshake_done ? SSL_get_version(c->ssl) : NULL;
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
    return c->handshake_done ? SSL_get_cipher_name(c->ssl) : NULL;
}

int tls_conn_cipher_bits(const struct tls_conn *c)
{
    return c->handshake_done ? SSL_get_cipher_bits(c->ssl, NULL) : 0;
}

bool tls_conn_peer_verified(const struct tls_conn *c)
{
    if (!c->handshake_done || c->role != TLS_ROLE_CLIENT)
        return false;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    return peer != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK;
}

bool tls_conn_resumed(const struct tls_conn *c)
{
    return c->handshake_done && SSL_session_reused(c->ssl) == 1;
}

size_t tls_conn_peer_subject(const struct tls_conn *c, char *out, size_t cap)
{
    size_t pos = 0;

    if (cap == 0)
        return 0;
    out[0] = '\0';
    X509 *peer = c->handshake_done ? SSL_get0_peer_certificate(c->ssl) : NULL;
    if (peer == NULL)
        return 0;
    const X509_NAME *name = X509_get_subject_name(peer);
    int n = X509_NAME_entry_count(name);
    for (int i = 0; i < n && pos + 1 < cap; i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : "?";
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        pos += (size_t)snprintf(out + pos, cap - pos, "%s%s=", i ? "\t" : "", sn);
        for (int k = 0; k < len && pos + 1 < cap; k++)
            out[pos++] = utf8[k] < 0x20 || utf8[k] == 0x7f ? '?' : (char)utf8[k];
        if (pos >= cap)
            pos = cap - 1;
        out[pos] = '\0';
        OPENSSL_free(utf8);
    }
    ERR_clear_error();
    return pos;
}
