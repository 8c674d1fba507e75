/*
 * supervisor_auth - access control of the admin API (docs/admin-api.md, "Access control"): the bearer
 * token and its file, the Host and Origin checks, [admin] trusted_networks, the Unix socket, the audit
 * log of mutating calls, and the sweep of connections too slow to send their request
 *
 * The admin thread(s) call the checks; the main thread calls init, fini and the sweep.
 */
#ifndef RINGMAIL_SUPERVISOR_AUTH_H
#define RINGMAIL_SUPERVISOR_AUTH_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/supervisor.h"

/* supervisor_auth_init - the token (created at first start) and the Host check's facts; before any request */
int supervisor_auth_init(struct supervisor *s, char **err);
/* supervisor_auth_unix_listen - bind [admin] socket (a stale one from a previous run is replaced), mode 0660,
 * into auth.unix_fd and auth.socket_path; nothing when "off" (or a default path too long: a warning) */
int supervisor_auth_unix_listen(struct supervisor *s, char **err);
/* supervisor_auth_fini - close and remove the Unix socket */
void supervisor_auth_fini(struct supervisor *s);
/*
 * supervisor_auth_check - the one access check of every admin request, before its body is read: Origin,
 * Host, then the token (mutating: always; read-only: unless `local` (the Unix socket, or a static file of the
 * console) or the peer is in [admin] trusted_networks). false with the HTTP status and the reason to send.
 */
bool supervisor_auth_check(struct supervisor *s, struct MHD_Connection *c, bool local, bool mutating,
                           unsigned *code, const char **why);
/* supervisor_auth_audit - log a mutating call at info: method, URL, arguments, peer, token id */
void supervisor_auth_audit(struct supervisor *s, struct MHD_Connection *c, bool local, const char *method,
                           const char *url);
/* supervisor_auth_peer_text - "ADDR:PORT", "unix socket uid U pid P" (SO_PEERCRED): who a record names */
void supervisor_auth_peer_text(struct MHD_Connection *c, bool local, char *buf, size_t len);
/* pure checks, exported for the unit test and the fuzz target */
/* supervisor_auth_token_parse - a token file's text: 64 hex digits, an optional newline; 0 or -EINVAL */
int supervisor_auth_token_parse(const char *text, size_t n, char token[SUP_AUTH_TOKEN_HEX + 1]);
/* supervisor_auth_bearer_ok - "Bearer TOKEN" names a's token (constant time) */
bool supervisor_auth_bearer_ok(const struct sup_auth *a, const char *authorization);
/* supervisor_auth_host_ok - a Host header naming this listener: its address (any IP literal when it
 * listens on a wildcard), localhost, or one of names[] (the node's host name...), with no port or its port */
bool supervisor_auth_host_ok(const struct sup_auth *a, const char *host, const char *const *names, size_t n_names);
/* supervisor_auth_origin_same - an Origin header naming this listener's own page: exactly "http://" and the
 * request's Host (which supervisor_auth_host_ok() checks too); a web console page of the node, not a foreign one */
bool supervisor_auth_origin_same(const char *origin, const char *host);
/* connection tracking for the slow-client sweep (MHD_OPTION_NOTIFY_CONNECTION; cls is the supervisor) */
void supervisor_auth_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe);
/* supervisor_auth_conn_busy - the connection's request has been read (false) or a new one starts (true) */
void supervisor_auth_conn_busy(struct supervisor *s, struct MHD_Connection *c, bool busy);
/* supervisor_auth_sweep - shut down connections busy for longer than `timeout_ns`; how many */
unsigned supervisor_auth_sweep(struct supervisor *s, uint64_t now, uint64_t timeout_ns);

#endif
