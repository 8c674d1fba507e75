/*
 * ingress_auth_cmd - the AUTH command of a session (RFC 4954) and what follows from it
 *
 * AUTH is offered (EHLO "AUTH PLAIN LOGIN") only when there is something to check credentials against,
 * [auth] passwords_file or a policy handler of smtp_server_auth_plain (KumoMTA's event: true accepts;
 * asked when the file does not accept), and the session is under TLS: after STARTTLS, or from the start on a tls = "implicit" listener. Without TLS, AUTH PLAIN and
 * LOGIN get 538 5.7.11 (RFC 4954 6: the mechanism needs an encrypted connection) and nothing is decoded.
 * Mechanisms: PLAIN (RFC 4616) with or without an initial response, LOGIN (334 "Username:" then
 * "Password:", or the user name as initial response). While an exchange is open the next line is the
 * client's response, never a command (ingress_auth_continue): "*" cancels it (501 5.0.0), bad base64 or a
 * malformed PLAIN message is 501 5.5.2, a wrong user or password 535 5.7.8. Success: 235 2.7.0, the
 * session may relay like a relay_networks client, its Received header says "with ESMTPSA" (RFC 3848), and
 * the connection metadata gets authn_id (and authz_id), KumoMTA's names, which every later message of the
 * session carries into its Reception record.
 * Failures: each is a Rejection record (the 535 reply, command AUTH, peer) and a log line with the peer and
 * the user name (printable bytes only; never the password). [auth] max_failures_per_ip failures within
 * failure_window from one address (per ingress worker) lock it out for `lockout`: the failing session gets
 * 421 4.7.0 and is closed, and the worker refuses the address's new connections with 421 until then.
 * The password check (crypt_rn) runs on the worker's loop: a yescrypt or SHA-512 hash costs milliseconds,
 * which the limiter bounds per address.
 */
#include "ingress/ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

#define MS_NS 1000000ull

void ingress_auth_load(struct ingress *ig)
{
    const struct cfg *c = &ig->rt->cfg;
    struct ingress_auth_passwd pw;
    char *err = NULL;

    ig->auth_limit.max = c->auth_max_failures;
    ig->auth_limit.window_ns = c->auth_failure_window_ms * MS_NS;
    ig->auth_limit.lockout_ns = c->auth_lockout_ms * MS_NS;
    if (!c->auth_passwords_file[0]) {
        ingress_auth_passwd_free(&ig->passwd);
        ig->auth_enabled = false;
        return;
    }
    if (ingress_auth_passwd_load(c->auth_passwords_file, &pw, &err) < 0) {
        /* at start a broken file is fatal; on reload the loaded users stay */
        if (!ig->auth_enabled)
            fatal("[auth] passwords_file:\n%s", err ? err : "cannot load");
        log_warn("[auth] passwords_file not reloaded, the previous users stay:\n%s", err ? err : "");
        free(err);
        return;
    }
    ingress_auth_passwd_free(&ig->passwd);
    ig->passwd = pw;
    ig->auth_enabled = true;
    log_info("[auth] %zu users from %s", pw.n, c->auth_passwords_file);
}

void ingress_auth_fini(struct ingress *ig)
{
    ingress_auth_passwd_free(&ig->passwd);
    ingress_auth_limit_free(&ig->auth_limit);
}

/* offered - a passwords file or a policy handler can check credentials */
static bool offered(const struct ingress *ig)
{
    return ig->auth_enabled || policy_lua_has_hook(ig->policy, POLICY_LUA_HOOK_AUTH_PLAIN);
}

bool ingress_auth_locked_out(struct ingress *ig, int family, const uint8_t *addr)
{
    return offered(ig) && ingress_auth_limit_locked(&ig->auth_limit, family, addr, clock_mono_ns());
}

void ingress_auth_ehlo(struct ingress_session *s)
{
    if (offered(s->ig) && s->tls && !s->authenticated)
        ingress_session_reply(s, "250-AUTH PLAIN LOGIN");
}

bool ingress_auth_mail_allowed(struct ingress_session *s)
{
    if (!s->require_auth || s->authenticated)
        return true;
    ingress_session_reply(s, "530 5.7.0 Authentication required");
    return false;
}

static void forget(struct ingress_session *s)
{
    s->auth_step = INGRESS_AUTH_NONE;
    memset(s->auth_login_user, 0, sizeof(s->auth_login_user));
}

/* succeed - 235, relay rights, the identity in the connection metadata */
static void succeed(struct ingress_session *s, const char *authz, const char *authc)
{
    forget(s);
    s->authenticated = true;
    snprintf(s->auth_user, sizeof(s->auth_user), "%s", authc);
    ingress_auth_limit_success(&s->ig->auth_limit, s->family, s->peer_addr);
    if (policy_lua_meta_set(&s->conn_meta, "authn_id", authc, strlen(authc)) < 0 ||
        policy_lua_meta_set(&s->conn_meta, "authz_id", authz[0] ? authz : authc,
                            strlen(authz[0] ? authz : authc)) < 0)
        log_warn("AUTH of [%s]: the identity does not fit the connection metadata", s->peer_ip);
    log_info("AUTH %s of [%s] as %s", s->auth_mech, s->peer_ip, authc);
    ingress_session_reply(s, "235 2.7.0 Authentication successful");
}

/* fail - 535 and the log line; false when the address is now locked out (421 said, session ends) */
static bool fail(struct ingress_session *s, const char *user)
{
    char shown[80];

    forget(s);
    ingress_auth_printable(user, shown, sizeof(shown));
    log_info("AUTH %s of [%s] failed for user %s", s->auth_mech, s->peer_ip, shown[0] ? shown : "(none)");
    ingress_session_reply(s, "535 5.7.8 Authentication credentials invalid");
    if (!ingress_auth_limit_fail(&s->ig->auth_limit, s->family, s->peer_addr, clock_mono_ns()))
        return true;
    log_warn("AUTH: [%s] locked out for %llu ms after %u failures", s->peer_ip,
             (unsigned long long)s->ig->rt->cfg.auth_lockout_ms, s->ig->auth_limit.max);
    ingress_session_reply(s, "421 4.7.0 Too many failed authentication attempts, closing connection");
    return false;
}

/*
 * check - the credentials against the passwords file, then the policy handler. With the file, an authzid
 * other than the authcid is refused (nobody may act as another user); the handler decides that itself.
 * A handler that fails (error, budget) is 454 and not counted; one that rejects answers with its reply.
 */
static bool check(struct ingress_session *s, const char *authz, const char *authc, const char *pass)
{
    struct policy_lua_result res;
    bool ok = false;

    if (s->ig->auth_enabled && (!authz[0] || strcmp(authz, authc) == 0) &&
        ingress_auth_passwd_check(&s->ig->passwd, authc, pass)) {
        succeed(s, authz, authc);
        return true;
    }
    if (!policy_lua_has_hook(s->ig->policy, POLICY_LUA_HOOK_AUTH_PLAIN))
        return fail(s, authc);
    enum policy_lua_status st =
        policy_lua_auth_plain(s->ig->policy, &s->pconn, authz, authc, pass, &s->conn_meta, &ok, &res);
    if (st == POLICY_LUA_ACCEPT && ok) {
        succeed(s, authz, authc);
        return true;
    }
    if (st == POLICY_LUA_ACCEPT)
        return fail(s, authc);
    forget(s);
    if (st == POLICY_LUA_REJECT)
        ingress_session_reply(s, "%d %s", res.code, res.text);
    else
        ingress_session_reply(s, "454 4.7.0 Temporary authentication failure");
    return true;
}

static bool plain(struct ingress_session *s, const char *b64, size_t len)
{
    struct ingress_auth_cred cred;

    if (ingress_auth_plain(b64, len, &cred) < 0) {
        forget(s);
        ingress_session_reply(s, "501 5.5.2 Invalid AUTH PLAIN response");
        return true;
    }
    bool keep = check(s, cred.authz, cred.authc, cred.pass);
    memset(&cred, 0, sizeof(cred));
    return keep;
}

/* login_user - LOGIN's user name arrived: ask for the password */
static void login_user(struct ingress_session *s, const char *b64, size_t len)
{
    if (ingress_auth_login_field(b64, len, s->auth_login_user, sizeof(s->auth_login_user)) < 0) {
        forget(s);
        ingress_session_reply(s, "501 5.5.2 Invalid base64 user name");
        return;
    }
    s->auth_step = INGRESS_AUTH_LOGIN_PASS;
    ingress_session_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
}

bool ingress_auth_command(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    bool is_plain = strcmp(cmd->auth_mech, "PLAIN") == 0, is_login = strcmp(cmd->auth_mech, "LOGIN") == 0;

    if (!offered(s->ig)) {
        ingress_session_reply(s, "502 5.5.1 Command not implemented");
        return true;
    }
    if (s->state == INGRESS_S_GREETING || !s->esmtp) {
        ingress_session_reply(s, "503 5.5.1 Send EHLO first");
        return true;
    }
    if (s->authenticated) {
        ingress_session_reply(s, "503 5.5.1 Already authenticated");
        return true;
    }
    if (s->state != INGRESS_S_READY) {
        ingress_session_reply(s, "503 5.5.1 AUTH not allowed inside a transaction");
        return true;
    }
    if (!is_plain && !is_login) {
        ingress_session_reply(s, "504 5.5.4 Unrecognized authentication type");
        return true;
    }
    if (!s->tls) {
        ingress_session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return true;
    }
    if (ingress_auth_limit_locked(&s->ig->auth_limit, s->family, s->peer_addr, clock_mono_ns())) {
        ingress_session_reply(s, "421 4.7.0 Too many failed authentication attempts, closing connection");
        return false;
    }
    snprintf(s->auth_mech, sizeof(s->auth_mech), "%s", cmd->auth_mech);
    if (is_plain) {
        if (cmd->arg)
            return plain(s, cmd->arg, cmd->arg_len);
        s->auth_step = INGRESS_AUTH_PLAIN;
        ingress_session_reply(s, "334 ");
        return true;
    }
    if (cmd->arg) {
        login_user(s, cmd->arg, cmd->arg_len);
        return true;
    }
    s->auth_step = INGRESS_AUTH_LOGIN_USER;
    ingress_session_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
    return true;
}

bool ingress_auth_continue(struct ingress_session *s, const char *line, size_t len)
{
    enum ingress_auth_step step = s->auth_step;

    if (len == 1 && line[0] == '*') {
        forget(s);
        ingress_session_reply(s, "501 5.0.0 Authentication cancelled");
        return true;
    }
    switch (step) {
    case INGRESS_AUTH_PLAIN:
        return plain(s, line, len);
    case INGRESS_AUTH_LOGIN_USER:
        login_user(s, line, len);
        return true;
    case INGRESS_AUTH_LOGIN_PASS: {
        char pass[INGRESS_AUTH_PASS_MAX + 1];
        if (ingress_auth_login_field(line, len, pass, sizeof(pass)) < 0) {
            forget(s);
            ingress_session_reply(s, "501 5.5.2 Invalid base64 password");
            return true;
        }
        char user[sizeof(s->auth_login_user)];
        memcpy(user, s->auth_login_user, sizeof(user));
        bool keep = check(s, "", user, pass);
        memset(pass, 0, sizeof(pass));
        return keep;
    }
    case INGRESS_AUTH_NONE:
        break;
    }
    return true;
}
