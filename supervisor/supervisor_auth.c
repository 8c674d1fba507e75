/*
 * supervisor_auth - access control of the admin API (docs/admin-api.md, "Access control")
 *
 * The token: 256 bits from getrandom(), 64 hex digits in [admin] token_file (default
 * <data_dir>/admin.token), made at the first start and kept across restarts; mode 0640, owner root
 * and group [admin] group (default: the [node] user's group) when the node starts as root. A request
 * presents it as "Authorization: Bearer TOKEN"; it is compared in constant time and logged only as
 * its id, the first 8 hex digits of SHA-256 of the 64 digits.
 *
 * The Unix socket ([admin] socket, default <data_dir>/admin.sock, "off": none): mode 0660, same owner
 * and group as the token file; ringctl's local default. Its peers may read without the token.
 *
 * Slow clients: every connection is tracked from accept until its request (headers and body) has been
 * read; the main loop shuts down those that take longer than the request timeout, however steadily
 * they drip bytes (libmicrohttpd's own timeout is an idle timeout, which a slowloris client resets).
 * libmicrohttpd reports a connection closed before it closes the descriptor, so the sweep, which holds
 * the list's lock, never shuts down a descriptor that was reused.
 */
#include "supervisor/supervisor_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/bearer.h"

_Static_assert(SUP_AUTH_TOKEN_HEX == BEARER_TOKEN_HEX, "one token format");

#define AUTH_TOKEN_FILE_MAX 4096

struct sup_auth_conn {
    struct sup_auth_conn *next, *prev;
    int fd;
    uint64_t since_ns; /* accept, or the end of the previous request */
    bool busy;         /* its request is not read yet */
    bool shut;         /* the sweep shut it down */
};

int supervisor_auth_token_parse(const char *text, size_t n, char token[SUP_AUTH_TOKEN_HEX + 1])
{
    return bearer_token_parse(text, n, token);
}

bool supervisor_auth_bearer_ok(const struct sup_auth *a, const char *authorization)
{
    return bearer_matches(a->token, authorization);
}

bool supervisor_auth_origin_same(const char *origin, const char *host)
{
    size_t hl = strlen(host);
    /* browsers serialise the origin's host in lower case; Host is the URL's authority as typed */
    return hl > 0 && strncmp(origin, "http://", 7) == 0 && strlen(origin + 7) == hl &&
           strncasecmp(origin + 7, host, hl) == 0;
}

bool supervisor_auth_host_ok(const struct sup_auth *a, const char *host, const char *const *names, size_t n_names)
{
    struct hostport hp;
    uint8_t addr[16];

    if (hostport_parse(host, HOSTPORT_PORT_OPTIONAL, &hp) < 0)
        return false;
    if (hp.has_port && hp.port != a->port)
        return false;
    if (hp.bracketed ? inet_pton(AF_INET6, hp.host, addr) == 1 : inet_pton(AF_INET, hp.host, addr) == 1) {
        /* an IP literal cannot be rebound by DNS; still, it must name this listener */
        if (a->listen_any)
            return true;
        int family = hp.bracketed ? AF_INET6 : AF_INET;
        return family == a->listen_family && memcmp(addr, a->listen_addr, family == AF_INET ? 4 : 16) == 0;
    }
    if (hp.bracketed)
        return false;
    if (strcasecmp(hp.host, "localhost") == 0)
        return true;
    for (size_t i = 0; i < n_names; i++)
        if (names[i] && names[i][0] && strcasecmp(hp.host, names[i]) == 0)
            return true;
    return false;
}

/* token_id - first 8 hex digits of SHA-256 of the token's text */
static void token_id(const char *token, char out[9])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (!EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL) || len < 4)
        panic("SHA-256 is not available");
    snprintf(out, 9, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

/* own_file - mode and, as root, owner root and the admin group; the file is the operator's if not root */
static int own_file(struct sup_auth *a, int fd, const char *path, mode_t mode, char **err)
{
    if (geteuid() == 0 && fchown(fd, 0, a->gid) < 0) {
        *err = xasprintf("%s: cannot give it to root and group %u: %s", path, (unsigned)a->gid, strerror(errno));
        return -errno;
    }
    if (fchmod(fd, mode) < 0) {
        *err = xasprintf("%s: cannot set mode %04o: %s", path, (unsigned)mode, strerror(errno));
        return -errno;
    }
    return 0;
}

/* token_create - a fresh token written whole (temporary file, fsync, rename) */
static int token_create(struct sup_auth *a, char **err)
{
    unsigned char raw[SUP_AUTH_TOKEN_HEX / 2];
    char *tmp = xasprintf("%s.tmp", a->token_path);
    int rc = 0;

    for (size_t got = 0; got < sizeof(raw);) {
        ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            panic("getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(a->token + 2 * i, 3, "%02x", raw[i]);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *err = xasprintf("%s: cannot create the admin token file: %s", tmp, strerror(errno));
        free(tmp);
        return -errno;
    }
    char line[SUP_AUTH_TOKEN_HEX + 2];
    memcpy(line, a->token, SUP_AUTH_TOKEN_HEX);
    line[SUP_AUTH_TOKEN_HEX] = '\n';
    rc = own_file(a, fd, tmp, 0640, err);
    if (rc == 0 && (write(fd, line, sizeof(line) - 1) != (ssize_t)sizeof(line) - 1 || fsync(fd) < 0)) {
        rc = -EIO;
        *err = xasprintf("%s: cannot write the admin token: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rc == 0 && rename(tmp, a->token_path) < 0) {
        rc = -errno;
        *err = xasprintf("%s: cannot rename to %s: %s", tmp, a->token_path, strerror(errno));
    }
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(line, sizeof(line));
    return rc;
}

/* token_load - the token of the file, made at the first start; its mode and owner set again each start */
static int token_load(struct sup_auth *a, char **err)
{
    int fd = open(a->token_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        int rc = token_create(a, err);
        if (rc == 0)
            log_info("admin token created in %s", a->token_path);
        return rc;
    }
    if (fd < 0) {
        *err = xasprintf("%s: cannot open the admin token file: %s", a->token_path, strerror(errno));
        return -errno;
    }
    char text[AUTH_TOKEN_FILE_MAX];
    ssize_t n = read(fd, text, sizeof(text));
    int rc = n < 0 ? -errno : 0;
    if (rc < 0)
        *err = xasprintf("%s: cannot read the admin token file: %s", a->token_path, strerror(errno));
    else if (supervisor_auth_token_parse(text, (size_t)n, a->token) < 0) {
        rc = -EINVAL;
        *err = xasprintf("%s: not an admin token (64 lower-case hex digits); delete the file and a new token is "
                         "made at the next start",
                         a->token_path);
    } else {
        rc = own_file(a, fd, a->token_path, 0640, err);
    }
    explicit_bzero(text, sizeof(text));
    close(fd);
    return rc;
}

/* admin_gid - [admin] group, else the [node] user's group (as root), else our own group */
static int admin_gid(struct supervisor *s, char **err)
{
    if (s->cfg.admin_group[0]) {
        struct group *g = getgrnam(s->cfg.admin_group);
        if (!g) {
            *err = xasprintf("[admin] group \"%s\" does not exist", s->cfg.admin_group);
            return -ENOENT;
        }
        s->auth.gid = g->gr_gid;
    } else {
        s->auth.gid = s->drop_privileges ? s->run_gid : getegid();
    }
    return 0;
}

int supervisor_auth_unix_listen(struct supervisor *s, char **err)
{
    struct sup_auth *a = &s->auth;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    bool dflt = s->cfg.admin_socket[0] == '\0';

    if (strcmp(s->cfg.admin_socket, "off") == 0)
        return 0;
    char *path = dflt ? xasprintf("%s/admin.sock", s->cfg.data_dir) : xstrdup(s->cfg.admin_socket);
    if (strlen(path) >= sizeof(sun.sun_path)) {
        if (dflt) {
            log_warn("no admin Unix socket: %s is longer than %zu bytes (set [admin] socket to a shorter path)", path,
                     sizeof(sun.sun_path) - 1);
            free(path);
            return 0;
        }
        *err = xasprintf("[admin] socket %s is longer than %zu bytes", path, sizeof(sun.sun_path) - 1);
        free(path);
        return -ENAMETOOLONG;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = xasprintf("[admin] socket %s exists and is not a socket", path);
            free(path);
            return -EEXIST;
        }
        unlink(path); /* ours from a previous run: the TCP listener is bound, so no other node uses it */
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        panic("socket(AF_UNIX): %s", strerror(errno));
    mode_t old = umask(0177); /* nobody else can connect before the mode below is set */
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0 || listen(fd, 64) < 0) {
        *err = xasprintf("[admin] socket %s: %s", path, strerror(errno));
        rc = -errno;
        close(fd);
        free(path);
        return rc;
    }
    if ((geteuid() == 0 && chown(path, 0, a->gid) < 0) || chmod(path, 0660) < 0) {
        *err = xasprintf("[admin] socket %s: cannot set its owner and mode: %s", path, strerror(errno));
        rc = -errno;
        close(fd);
        unlink(path);
        free(path);
        return rc;
    }
    a->unix_fd = fd;
    a->socket_path = path;
    return 0;
}

int supervisor_auth_init(struct supervisor *s, char **err)
{
    struct sup_auth *a = &s->auth;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct hostport hp;
    char *why = NULL;

    a->unix_fd = -1;
    pthread_mutex_init(&a->conn_lock, NULL);
    int rc = hostport_resolve(s->cfg.admin_listen, 0, AI_NUMERICHOST, &hp, &ss, &sslen, &why);
    if (rc < 0) {
        *err = xasprintf("[admin] listen %s", why);
        free(why);
        return rc;
    }
    a->port = hp.port;
    a->listen_family = ss.ss_family;
    if (ss.ss_family == AF_INET6) {
        struct in6_addr *in6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        memcpy(a->listen_addr, in6, 16);
        a->listen_any = IN6_IS_ADDR_UNSPECIFIED(in6);
    } else {
        struct in_addr *in = &((struct sockaddr_in *)&ss)->sin_addr;
        memcpy(a->listen_addr, in, 4);
        a->listen_any = in->s_addr == htonl(INADDR_ANY);
    }
    if ((rc = admin_gid(s, err)) < 0)
        return rc;
    a->token_path = s->cfg.admin_token_file[0] ? xstrdup(s->cfg.admin_token_file)
                                               : xasprintf("%s/admin.token", s->cfg.data_dir);
    if ((rc = token_load(a, err)) < 0)
        return rc;
    token_id(a->token, a->token_id);
    log_info("admin token %s (id %s)", a->token_path, a->token_id);
    return 0;
}

void supervisor_auth_fini(struct supervisor *s)
{
    struct sup_auth *a = &s->auth;
    if (a->unix_fd >= 0)
        close(a->unix_fd);
    a->unix_fd = -1;
    if (a->socket_path)
        unlink(a->socket_path);
    free(a->socket_path);
    free(a->token_path);
    a->socket_path = a->token_path = NULL;
    explicit_bzero(a->token, sizeof(a->token));
}

void supervisor_auth_peer_text(struct MHD_Connection *c, bool local, char *buf, size_t len)
{
    if (local) {
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (fi && getsockopt(fi->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            snprintf(buf, len, "unix socket uid %u pid %d", (unsigned)cr.uid, (int)cr.pid);
        else
            snprintf(buf, len, "unix socket");
        return;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ci->client_addr;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", ip, port);
    } else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ci->client_addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, len, "?");
    }
}

/* peer_trusted - the TCP peer is in [admin] trusted_networks */
static bool peer_trusted(struct supervisor *s, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    if (ci->client_addr->sa_family == AF_INET)
        return cfg_value_cidr_match(s->cfg.admin_trusted, s->cfg.n_admin_trusted, AF_INET,
                                    &((const struct sockaddr_in *)ci->client_addr)->sin_addr);
    if (ci->client_addr->sa_family == AF_INET6)
        return cfg_value_cidr_match(s->cfg.admin_trusted, s->cfg.n_admin_trusted, AF_INET6,
                                    &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr);
    return false;
}

bool supervisor_auth_check(struct supervisor *s, struct MHD_Connection *c, bool local, bool mutating,
                           unsigned *code, const char **why)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *names[] = {s->cfg.hostname, s->cfg.node_id};

    /* a page of another origin is refused whatever it asks; the console's own page (/ui/, served from this
     * listener) is let through when its Origin names the very Host that is checked below */
    if (origin && !(host && supervisor_auth_origin_same(origin, host))) {
        *code = MHD_HTTP_FORBIDDEN;
        *why = "requests from web pages of another origin (an Origin header) are refused: use ringctl, curl or "
               "the console at /ui/";
        return false;
    }
    /* no Host at all is an HTTP/1.0 client, not a browser: DNS rebinding needs a name in Host */
    if (host && !supervisor_auth_host_ok(&s->auth, host, names, sizeof(names) / sizeof(names[0]))) {
        *code = MHD_HTTP_MISDIRECTED_REQUEST;
        *why = "the Host header does not name this admin listener (its address, localhost or the node's host "
               "name)";
        return false;
    }
    if (authz) {
        if (supervisor_auth_bearer_ok(&s->auth, authz))
            return true;
        *code = MHD_HTTP_UNAUTHORIZED;
        *why = "wrong admin token (Authorization: Bearer TOKEN, the contents of the node's admin.token; ringctl "
               "--token-file)";
        return false;
    }
    if (!mutating && (local || peer_trusted(s, c)))
        return true;
    *code = MHD_HTTP_UNAUTHORIZED;
    *why = mutating ? "this call changes the node: it needs the admin token (Authorization: Bearer TOKEN from the "
                      "node's admin.token; ringctl reads it, or --token-file)"
                    : "the admin token is required from this address (not in [admin] trusted_networks)";
    return false;
}

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct buf *b = cls;
    (void)kind;
    if (b->len > 512)
        return MHD_NO;
    buf_printf(b, "%s%s%s%s", b->len ? "&" : "?", key, value ? "=" : "", value ? value : "");
    return MHD_YES;
}

void supervisor_auth_audit(struct supervisor *s, struct MHD_Connection *c, bool local, const char *method,
                           const char *url)
{
    struct buf args = {0};
    char peer[128];

    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_arg, &args);
    /* what the client sent goes to the log printable and bounded */
    char *a = args.len ? (char *)buf_cstr(&args) : "";
    for (char *p = a; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f)
            *p = '?';
    supervisor_auth_peer_text(c, local, peer, sizeof(peer));
    log_info("admin: %s %.256s%.512s%s from %s, token id %s", method, url, a, args.len > 512 ? "..." : "", peer,
             s->auth.token_id);
    buf_fini(&args);
}

void supervisor_auth_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
    struct supervisor *s = cls;
    struct sup_auth *a = &s->auth;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct sup_auth_conn *k = xcalloc(1, sizeof(*k));
        k->fd = fi ? fi->connect_fd : -1;
        k->since_ns = clock_mono_ns();
        k->busy = true;
        pthread_mutex_lock(&a->conn_lock);
        k->next = a->conns;
        if (a->conns)
            a->conns->prev = k;
        a->conns = k;
        pthread_mutex_unlock(&a->conn_lock);
        *socket_context = k;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct sup_auth_conn *k = *socket_context;
        pthread_mutex_lock(&a->conn_lock);
        if (k->prev)
            k->prev->next = k->next;
        else
            a->conns = k->next;
        if (k->next)
            k->next->prev = k->prev;
        pthread_mutex_unlock(&a->conn_lock);
        free(k);
        *socket_context = NULL;
    }
}

void supervisor_auth_conn_busy(struct supervisor *s, struct MHD_Connection *c, bool busy)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct sup_auth_conn *k = i ? i->socket_context : NULL;
    if (!k)
        return;
    pthread_mutex_lock(&s->auth.conn_lock);
    k->busy = busy;
    k->since_ns = clock_mono_ns();
    pthread_mutex_unlock(&s->auth.conn_lock);
}

unsigned supervisor_auth_sweep(struct supervisor *s, uint64_t now, uint64_t timeout_ns)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->auth.conn_lock);
    for (struct sup_auth_conn *k = s->auth.conns; k; k = k->next) {
        if (k->busy && !k->shut && k->fd >= 0 && now > k->since_ns + timeout_ns) {
            shutdown(k->fd, SHUT_RDWR); /* libmicrohttpd sees the end and closes it */
            k->shut = true;
            n++;
        }
    }
    pthread_mutex_unlock(&s->auth.conn_lock);
    return n;
}
