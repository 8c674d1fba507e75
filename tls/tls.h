/*
 * tls - STARTTLS on memory buffers (OpenSSL 3), for the ingress server and the egress client
 *
 * The caller owns the socket and does every recv/send itself (io_uring); this layer never
 * touches a file descriptor. Bytes flow through two memory BIOs:
 *   socket --recv--> tls_feed_cipher() --> [OpenSSL] --> tls_read_plain()   --> SMTP parser
 *   SMTP replies --> tls_write_plain() --> [OpenSSL] --> tls_take_cipher()  --send--> socket
 * The handshake drives itself: a client conn queues its ClientHello in tls_conn_new(), and each
 * tls_feed_cipher() / tls_read_plain() advances it. After every call that can produce output
 * (new, feed, read, write, shutdown), send what tls_pending_cipher() reports, also once the conn
 * has failed (that output is the alert that tells the peer why).
 *
 * Contexts: tls_server_ctx_new() loads a certificate chain and key (PEM files, [tls] certificate
 * and [tls] private_key), or with neither generates a self-signed EC P-256 certificate in memory
 * for the given host name and says so in a warning log line. tls_client_ctx_new() verifies the
 * peer (TLS_VERIFY_PEER: chain against the system CA store or a CA file, plus the host name;
 * a failure fails the handshake, there is no fallback) or only reports whether it would have
 * (TLS_VERIFY_NONE: opportunistic). The CA certificates are read into memory when the context is
 * made (the system store is OpenSSL's default bundle file, SSL_CERT_FILE overrides it; the hashed
 * directory is not used: its lookups read files during a handshake, a blocking call on the loop).
 * tls_client_ctx_cert() adds a client certificate. Both roles: TLS 1.2 minimum, no renegotiation,
 * no compression. Servers issue no session tickets; clients resume: each resumable session the
 * server hands a client conn is kept in it until tls_conn_session_take(), and
 * tls_conn_new_client() offers one (the caller's cache decides which: a session resumed skips the
 * certificate check, so it may only be offered to the same name under the same context).
 * A context may be freed while conns made from it live on (each conn holds
 * a reference), so a reload can swap certificates without touching open sessions.
 *
 * STARTTLS injection (TESTING.md TLS-01, TLS-03): a conn starts with no bytes and nothing here
 * accepts earlier ones. The server caller must discard whatever it buffered after the STARTTLS
 * command line and feed only bytes received after it sent the 220; the client caller must feed
 * only bytes received after the 220 reply, and treat bytes that arrived after the 220 in the same
 * read as an attack (discard them and fail the session). After the handshake both sides forget
 * the SMTP state (EHLO, MAIL, RCPT) of the plaintext phase.
 *
 * Bounds: at most TLS_CIPHER_IN_MAX received bytes wait undecrypted (tls_feed_cipher refuses more
 * with -ENOBUFS and keeps nothing of that call: read plaintext, then feed again, or drop the
 * peer); OpenSSL holds at most one decrypted record (16 KiB); tls_write_plain accepts only what
 * fits under TLS_CIPHER_OUT_MAX unsent ciphertext (partial counts like send(2)); a peer that makes
 * us produce output the caller does not drain fails the conn past twice that. Peer bytes never
 * crash this layer: bad input gives TLS_STATE_FAILED and a reason in tls_conn_error().
 *
 * Ownership: a conn owns its SSL object and both BIOs; tls_conn_free() releases all of it.
 * Errors: functions return 0 / a byte count or -errno; setup errors are also written to *err
 * (heap, the caller frees). A role mismatch between context and conn is our bug: panic().
 * Not thread-safe per conn; one process may use contexts from any number of conns.
 */
#ifndef RINGMAIL_TLS_H
#define RINGMAIL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TLS_CIPHER_IN_MAX (256u * 1024u)
#define TLS_CIPHER_OUT_MAX (256u * 1024u)
#define TLS_ERR_SIZE 256

struct tls_ctx;
struct tls_conn;
struct tls_session; /* a resumable client session (OpenSSL's SSL_SESSION) */

enum tls_role {
    TLS_ROLE_SERVER = 0,
    TLS_ROLE_CLIENT = 1,
};

enum tls_verify {
    TLS_VERIFY_NONE = 0, /* opportunistic: any certificate; tls_conn_peer_verified() tells */
    TLS_VERIFY_PEER = 1, /* chain and host name must verify, else the handshake fails */
};

enum tls_state {
    TLS_STATE_HANDSHAKING = 0,
    TLS_STATE_ESTABLISHED = 1,
    TLS_STATE_CLOSED = 2, /* close_notify received or sent; no more application data */
    TLS_STATE_FAILED = 3, /* tls_conn_error() says why; send the pending alert, then close */
};

/*
 * tls_server_ctx_new - server context from cert_file (chain, leaf first) and key_file, both PEM;
 * both NULL or "": a self-signed certificate for host_name, generated now. Only one set: -EINVAL.
 * Logs the certificate's subject and expiry, or a warning that it is self-signed.
 */
int tls_server_ctx_new(const char *cert_file, const char *key_file, const char *host_name,
                       struct tls_ctx **out, char **err);
/* tls_client_ctx_new - client context; ca_file NULL means the system CA store */
int tls_client_ctx_new(enum tls_verify verify, const char *ca_file, struct tls_ctx **out, char **err);
/* tls_client_ctx_cert - present this certificate chain and key (PEM files) when a server asks */
int tls_client_ctx_cert(struct tls_ctx *ctx, const char *cert_file, const char *key_file, char **err);
void tls_ctx_free(struct tls_ctx *ctx);
bool tls_ctx_self_signed(const struct tls_ctx *ctx);

/*
 * tls_conn_new - one TLS session; role must match the context's. peer_name (client only, may be
 * NULL when not verifying) is sent as SNI and is the name TLS_VERIFY_PEER checks. A name
 * OpenSSL refuses gives a conn already in TLS_STATE_FAILED.
 */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, enum tls_role role, const char *peer_name);
/* tls_conn_new_client - a client conn that offers `resume` (may be NULL; borrowed) for resumption */
struct tls_conn *tls_conn_new_client(struct tls_ctx *ctx, const char *peer_name, struct tls_session *resume);
void tls_conn_free(struct tls_conn *c);
/* tls_conn_session_take - the newest resumable session the server gave (the caller owns it), or NULL */
struct tls_session *tls_conn_session_take(struct tls_conn *c);
void tls_session_free(struct tls_session *s);

/* tls_feed_cipher - bytes received from the socket; 0, -ENOBUFS (over the cap, nothing taken), -EPROTO
 * (failed) */
int tls_feed_cipher(struct tls_conn *c, const void *data, size_t len);
/* tls_feed_room - how many bytes tls_feed_cipher would take now */
size_t tls_feed_room(const struct tls_conn *c);
/*
 * tls_read_plain - decrypted bytes: > 0 count; -EAGAIN needs more ciphertext (or the handshake
 * is still running); 0 the peer sent close_notify; -EPROTO failed.
 */
ssize_t tls_read_plain(struct tls_conn *c, void *buf, size_t cap);
/*
 * tls_write_plain - encrypt up to len bytes: count taken (may be less than len, 0 when len is 0);
 * -EAGAIN while handshaking or while TLS_CIPHER_OUT_MAX bytes wait to be sent; -EPIPE closed;
 * -EPROTO failed.
 */
ssize_t tls_write_plain(struct tls_conn *c, const void *data, size_t len);
/* tls_pending_cipher - bytes waiting to be sent */
size_t tls_pending_cipher(const struct tls_conn *c);
/* tls_take_cipher - move up to cap pending bytes into buf (the caller's send buffer); returns the count */
size_t tls_take_cipher(struct tls_conn *c, void *buf, size_t cap);
/* tls_shutdown - queue close_notify (when established, or in answer to the peer's); state CLOSED */
void tls_shutdown(struct tls_conn *c);

enum tls_state tls_conn_state(const struct tls_conn *c);
/* tls_conn_error - why the conn failed; NULL unless TLS_STATE_FAILED */
const char *tls_conn_error(const struct tls_conn *c);
/* tls_conn_version - "TLSv1.3" etc. once the handshake completed, else NULL (static strings) */
const char *tls_conn_version(const struct tls_conn *c);
/* tls_conn_cipher - the cipher suite name once the handshake completed, else NULL */
const char *tls_conn_cipher(const struct tls_conn *c);
/* tls_conn_cipher_bits - secret bits of the cipher (for "256/256 bits" in Received), 0 before */
int tls_conn_cipher_bits(const struct tls_conn *c);
/* tls_conn_peer_verified - client: the peer's chain and name verified (also when not required) */
bool tls_conn_peer_verified(const struct tls_conn *c);
/* tls_conn_resumed - the handshake resumed an earlier session */
bool tls_conn_resumed(const struct tls_conn *c);
/*
 * tls_conn_peer_subject - the peer certificate's subject as "SN=value" entries in order (CN, O, ...),
 * separated by TAB; control octets in values become '?'. "" when there is no peer certificate.
 * Cut at cap - 1 bytes; returns the length written.
 */
size_t tls_conn_peer_subject(const struct tls_conn *c, char *out, size_t cap);

#endif
