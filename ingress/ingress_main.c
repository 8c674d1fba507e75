/*
 * ringmail-ingress - SMTP server worker
 *
 * Accepts on the listeners the supervisor opened (multishot accept on io_uring; several workers
 * share them and the kernel spreads new connections), enforces the connection limits (per worker
 * and per client address, 421 to the excess while the others are served), runs one
 * ingress_session per connection, and routes the spool's durable acks back to their sessions.
 * On SIGTERM it stops accepting, says 421 to idle sessions, lets sessions waiting for a spool ack
 * get it, and exits when none is left.
 */
#include "ingress/ingress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls_stream.h"

#define REFUSAL_LINE_MAX 512 /* octets with the CRLF: an SMTP reply line (RFC 5321 4.5.3.1.5) */
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000
#define ACCEPT_WARN_EVERY_NS CLOCK_SEC(10)

static unsigned ip_hash(int family, const uint8_t *a)
{
    size_t n = family == AF_INET ? 4 : 16;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ a[i]) * 16777619u;
    return h % INGRESS_IP_BUCKETS;
}

/* ip_find - the count of a client key (ingress_client_key) */
static struct ingress_ipcount **ip_find(struct ingress *ig, int family, const uint8_t *a)
{
    struct ingress_ipcount **pp = &ig->ip_buckets[ip_hash(family, a)];
    size_t n = family == AF_INET ? 4 : 16;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->family == family && memcmp((*pp)->addr, a, n) == 0)
            return pp;
    return pp;
}

void ingress_ip_release(struct ingress *ig, struct ingress_session *s)
{
    struct ingress_ipcount **pp = ip_find(ig, s->family, s->client_key);
    if (!*pp)
        return;
    if (--(*pp)->count == 0) {
        struct ingress_ipcount *e = *pp;
        *pp = e->next;
        free(e);
    }
}

static void listener_arm(struct ingress_listener *ls)
{
    struct io_uring_sqe *sqe = evl_sqe(&ls->ig->rt->evl, &ls->op);
    io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    ls->armed = true;
}

/* refuse - 421 on a connection we will not serve, without a session (best effort, non-blocking), and
 * its Rejection record. The line holds a 253-octet host name and the longest reason with room to spare;
 * should it ever not, it is cut and still ends in CRLF: only what snprintf wrote is sent or logged. */
/* listener_ctrs - the listener's counters in this instance's role table slot (/metrics) */
static struct proto_node_listener *listener_ctrs(struct ingress_listener *ls)
{
    return &ls->ig->rt->self->listeners[ls - ls->ig->ls];
}

static void refuse(struct ingress_listener *ls, int fd, const char *why)
{
    struct ingress *ig = ls->ig;
    atomic_fetch_add_explicit(&listener_ctrs(ls)->rejected[PROTO_NODE_REJECT_421], 1, memory_order_relaxed);
    char line[REFUSAL_LINE_MAX + 1], ip[INET6_ADDRSTRLEN + 8] = "";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int n = snprintf(line, sizeof(line), "421 4.7.0 %s %s, try again later\r\n", ig->rt->cfg.hostname, why);
    if (n < 2)
        n = snprintf(line, sizeof(line), "421 4.7.0 Try again later\r\n");
    if ((size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 2] = '\r';
        line[n - 1] = '\n';
    }
    ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
    }
    close(fd);
    line[n - 2] = '\0';
    ingress_log_refusal(ig, ip, line);
}

static void on_backoff(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct ingress_listener *ls = op->owner;
    (void)l, (void)res, (void)flags;
    ls->backoff.armed = false;
    ls->paused = false;
    if (!ls->armed && !ls->ig->rt->draining)
        listener_arm(ls);
}

/* accept_pause - the process (or the system) is out of descriptors or memory: accepting again at once
 * would fail again at once (a busy loop, and a log line each time). Stop the multishot accept, wait, and
 * try again; connections meanwhile wait in the kernel's backlog. One warning per 10 s, with the count. */
static void accept_pause(struct ingress_listener *ls, int res, unsigned flags)
{
    struct role_rt *rt = ls->ig->rt;
    uint64_t now = clock_mono_ns();

    ls->pause_failures++;
    if (flags & IORING_CQE_F_MORE) { /* the multishot goes on: cancel it; its last completion re-arms nothing */
        struct io_uring_sqe *sqe = evl_sqe(&rt->evl, NULL);
        io_uring_prep_cancel(sqe, &ls->op, 0);
    } else {
        ls->armed = false;
    }
    if (ls->paused)
        return;
    ls->paused = true;
    ls->backoff_ms = ls->backoff_ms ? ls->backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
    if (ls->backoff_ms > ACCEPT_BACKOFF_MAX_MS)
        ls->backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    if (!ls->warned_ns || now - ls->warned_ns >= ACCEPT_WARN_EVERY_NS) {
        log_warn("accept: %s (%llu failures since the last warning); pausing accepts on this listener for %u ms, "
                 "%u sessions open", strerror(-res), (unsigned long long)ls->pause_failures, ls->backoff_ms,
                 ls->ig->n_sessions);
        ls->warned_ns = now;
        ls->pause_failures = 0;
    }
    ls->backoff.op = (struct evl_op){on_backoff, ls};
    evl_timer_arm(&rt->evl, &ls->backoff, CLOCK_MS(ls->backoff_ms));
}

static void on_accept(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct ingress_listener *ls = op->owner;
    struct ingress *ig = ls->ig;
    struct role_rt *rt = ig->rt;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        accept_pause(ls, res, flags);
        return;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        ls->armed = false;
        if (!rt->draining && !ls->paused)
            listener_arm(ls);
    }
    if (res < 0) {
        if (res != -ECANCELED && res != -EAGAIN && res != -EINTR)
            log_warn("accept: %s", strerror(-res));
        return;
    }
    int fd = res;
    ls->backoff_ms = 0; /* a connection came through: the next shortage starts from the shortest pause */
    if (rt->draining) {
        refuse(ls, fd, "shutting down");
        return;
    }
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_SMTP_CONNECTIONS, 1);
    atomic_fetch_add_explicit(&listener_ctrs(ls)->connections, 1, memory_order_relaxed);
    if (ig->n_sessions >= rt->cfg.ingress_max_connections || ig->n_free == 0) {
        refuse(ls, fd, "too many connections");
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        close(fd);
        return;
    }
    uint8_t addr[16] = {0};
    int family = ss.ss_family;
    uint16_t port = 0;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        memcpy(addr, &sin->sin_addr, 4);
        port = ntohs(sin->sin_port);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        memcpy(addr, &sin6->sin6_addr, 16);
        port = ntohs(sin6->sin6_port);
    } else {
        close(fd);
        return;
    }
    if (ingress_auth_locked_out(ig, family, addr)) {
        refuse(ls, fd, "too many failed authentication attempts from your address");
        return;
    }
    uint8_t key[16];
    ingress_client_key(family, addr, rt->cfg.ingress_client_ipv6_prefix, key);
    struct ingress_ipcount **pp = ip_find(ig, family, key);
    /* a trusted injector (relay_networks) opens as many sessions as it needs, as Postfix exempts
     * $mynetworks; they are still counted, so the limit applies again after a reload that turns it on */
    bool relay_client = cfg_value_cidr_match(rt->cfg.relay_networks, rt->cfg.n_relay_networks, family, addr);
    bool limited = !relay_client || rt->cfg.ingress_per_ip_limit_relay_networks;
    if (limited && *pp && (*pp)->count >= rt->cfg.ingress_max_conn_per_ip) {
        refuse(ls, fd, family == AF_INET6 && rt->cfg.ingress_client_ipv6_prefix < 128
                           ? "too many connections from your network"
                           : "too many connections from your address");
        return;
    }
    if (!*pp) {
        *pp = xcalloc(1, sizeof(**pp));
        (*pp)->family = family;
        memcpy((*pp)->addr, key, 16);
    }
    (*pp)->count++;

    /* every reply batch goes out in one send: Nagle would only hold it for the peer's delayed ACK */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct ingress_session *s = ingress_session_new(ig, fd);
    s->family = family;
    s->require_auth = ls->require_auth;
    s->listener = (uint8_t)(ls - ig->ls);
    atomic_fetch_add_explicit(&listener_ctrs(ls)->sessions, 1, memory_order_relaxed);
    s->feedback_listener = ls->feedback;
    s->supp_mode = cfg_supp_mode_of(&ig->rt->cfg, (size_t)(ls - ig->ls));
    memcpy(s->peer_addr, addr, 16);
    memcpy(s->client_key, key, 16);
    s->peer_port = port;
    inet_ntop(family, addr, s->peer_ip, sizeof(s->peer_ip));
    s->relay_client = relay_client;
    struct sockaddr_storage ls_addr;
    socklen_t ls_len = sizeof(ls_addr);
    if (getsockname(fd, (struct sockaddr *)&ls_addr, &ls_len) == 0) {
        if (ls_addr.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ls_addr)->sin_addr, s->local_ip, sizeof(s->local_ip));
            s->local_port = ntohs(((struct sockaddr_in *)&ls_addr)->sin_port);
        } else if (ls_addr.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ls_addr)->sin6_addr, s->local_ip, sizeof(s->local_ip));
            s->local_port = ntohs(((struct sockaddr_in6 *)&ls_addr)->sin6_port);
        }
    }
    s->pconn = (struct policy_lua_conn){s->peer_ip, s->peer_port, s->local_ip, s->local_port};
    if (rt_trace_on(PROTO_TRACE_SERVER))
        ingress_session_trace(s, PROTO_TRACE_NOTE, "connected", 9);
    if (!ingress_policy_connection(s)) {
        /* the hook's refusal is the banner; then the session ends */
        s->closing = true;
        s->state = INGRESS_S_CLOSING;
        ingress_session_resume(s);
        return;
    }
    if (ls->implicit_tls) {
        /* port 465 style (RFC 8314 3.3): the handshake comes first, the banner goes out under TLS */
        s->tls = tls_conn_new(ig->tls, TLS_ROLE_SERVER, NULL);
        tls_stream_start(&s->st, s->tls);
    }
    ingress_session_reply(s, "220 %s ESMTP ringmail", rt->cfg.hostname);
    ingress_session_resume(s);
}

static void on_record(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    struct ingress *ig = rt->ctx;

    if (rec->type == MSG_SPOOL_MESSAGE_STORED && from == 0)
        ingress_xfer_on_stored(ig, rec);
    else
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
}

static void on_tick(struct role_rt *rt, uint64_t now)
{
    struct ingress *ig = rt->ctx;
    struct ingress_session *s = ig->sessions, *next;

    for (; s; s = next) {
        next = s->next;
        ingress_session_tick(s, now);
    }
    ingress_http_tick(ig, now);
    if (rt->cfg.supp_enabled)
        supp_view_refresh(&ig->supp, now);
}

static void on_reload(struct role_rt *rt)
{
    ingress_policy_reload(rt->ctx);
    ingress_auth_load(rt->ctx);
    ingress_relay_load(rt->ctx);
}

static bool on_drain(struct role_rt *rt)
{
    struct ingress *ig = rt->ctx;

    for (unsigned i = 0; i < ig->n_ls; i++) {
        if (ig->ls[i].armed) {
            struct io_uring_sqe *sqe = evl_sqe(&rt->evl, NULL);
            io_uring_prep_cancel(sqe, &ig->ls[i].op, 0);
            ig->ls[i].armed = false;
        }
    }
    struct ingress_session *s = ig->sessions, *next;
    for (; s; s = next) {
        next = s->next;
        /* a message waiting for its durable ack gets its answer first (or the spool timeout) */
        if (s->state != INGRESS_S_STORING)
            ingress_session_shutdown(s, "421 4.3.2 Service shutting down, closing connection");
    }
    bool http_done = ingress_http_drain(ig);
    return ig->n_sessions == 0 && http_done;
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct ingress ig;

    role_rt_init(&rt, PROTO_NODE_ROLE_INGRESS, argc, argv);
    ig.rt = &rt;
    rt.ctx = &ig;
    rt.hooks.on_record = on_record;
    rt.hooks.on_tick = on_tick;
    rt.hooks.on_drain = on_drain;
    msgid_init((uint16_t)rt.self_idx);
    ingress_policy_load(&ig);
    ingress_auth_load(&ig);
    ingress_relay_load(&ig);
    if (rt.cfg.tls_enabled) {
        char *err = NULL;
        if (tls_server_ctx_new(rt.cfg.tls_certificate[0] ? rt.cfg.tls_certificate : NULL,
                               rt.cfg.tls_private_key[0] ? rt.cfg.tls_private_key : NULL, rt.cfg.hostname, &ig.tls,
                               &err) < 0)
            fatal("TLS: %s", err ? err : "cannot set up the server context");
    }
    rt.hooks.on_reload = on_reload;
    char *snap = xasprintf("%s/published/suppression.snap", rt.cfg.data_dir);
    supp_view_init(&ig.supp, snap);
    free(snap);
    supp_view_refresh(&ig.supp, clock_mono_ns());

    ingress_fd_limit(rt.cfg.ingress_max_connections, rt.cfg.n_listeners);
    ig.n_slots = rt.cfg.ingress_max_connections;
    ig.slots = xcalloc(ig.n_slots, sizeof(*ig.slots));
    ig.free_slots = xcalloc(ig.n_slots, sizeof(*ig.free_slots));
    for (uint32_t i = 0; i < ig.n_slots; i++)
        ig.free_slots[ig.n_free++] = ig.n_slots - 1 - i;
    /* at most 1000000 slots: 20 bits; the other 44 count 2^44 stores (200 days at a million a second) */
    while ((UINT64_C(1) << ig.slot_bits) < ig.n_slots)
        ig.slot_bits++;

    if (!rt.listen_fds || !rt.listen_fds[0])
        fatal("no listening sockets were handed over (--listen-fds)");
    for (const char *p = rt.listen_fds; *p && ig.n_ls < INGRESS_MAX_LISTENERS;) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0)
            fatal("bad --listen-fds %s", rt.listen_fds);
        ig.ls[ig.n_ls] = (struct ingress_listener){.ig = &ig, .fd = (int)fd};
        ig.ls[ig.n_ls].op = (struct evl_op){on_accept, &ig.ls[ig.n_ls]};
        /* --listen-fds lists the sockets in the order of the [[listener]] entries */
        if (ig.n_ls < rt.cfg.n_listeners) {
            ig.ls[ig.n_ls].implicit_tls = rt.cfg.listeners[ig.n_ls].implicit_tls;
            ig.ls[ig.n_ls].require_auth = rt.cfg.listeners[ig.n_ls].require_auth;
            ig.ls[ig.n_ls].feedback = rt.cfg.listeners[ig.n_ls].feedback;
        }
        listener_arm(&ig.ls[ig.n_ls]);
        ig.n_ls++;
        p = *end == ',' ? end + 1 : end;
        if (*p == '/')
            break;
    }
    /* after '/': the [[http_listener]] sockets, in the order of the entries */
    int http_fds[CFG_MAX_HTTP_LISTENERS];
    unsigned n_http = 0;
    const char *slash = strchr(rt.listen_fds, '/');
    for (const char *p = slash ? slash + 1 : ""; *p && n_http < CFG_MAX_HTTP_LISTENERS;) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p || fd < 0)
            fatal("bad --listen-fds %s", rt.listen_fds);
        http_fds[n_http++] = (int)fd;
        p = *end == ',' ? end + 1 : end;
    }
    ingress_http_start(&ig, http_fds, n_http);
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    ingress_http_stop(&ig);
    role_rt_fini(&rt);
    policy_lua_free(ig.policy);
    supp_view_fini(&ig.supp);
    ingress_auth_fini(&ig);
    ingress_relay_fini(&ig);
    tls_ctx_free(ig.tls);
    free(ig.slots);
    free(ig.free_slots);
    return rc;
}
