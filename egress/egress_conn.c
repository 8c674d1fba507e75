/*
 * egress_conn - one outbound SMTP connection on the io_uring loop (see egress_conn.h)
 */
#include "egress/egress_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "rt/evl_stream.h"
#include "rt/trace.h"
#include "tls/tls_stream.h"

#define EGRESS_CONN_IN_BUF 4096
#define EGRESS_CONN_PEER_MAX 64
#define EGRESS_CONN_WHY_MAX 256

enum conn_state {
    CONN_CONNECTING = 0,
    CONN_SMTP = 1,
    CONN_CLOSING = 2,
};

struct egress_conn {
    struct egress_conn_set *set;
    struct egress_conn *prev, *next;
    struct evl_stream st; /* the socket: recv, send, in-flight ops */
    enum conn_state state;
    struct egress_smtp *smtp;
    struct egress_conn_params p;
    char ehlo[256];
    char peer[EGRESS_CONN_PEER_MAX];

    egress_conn_event_cb on_event;
    egress_conn_closed_cb on_closed;
    void *arg;

    struct evl_op connect_op, cancel_op, kick_op; /* counted in the stream's in-flight ops */
    bool in_pump, kick_armed;
    bool flush_then_close; /* session over: write what is queued (QUIT), then close */
    enum egress_smtp_wait last_wait;
    uint64_t deadline_ns; /* 0: none */
    size_t body_len;      /* of the message being sent: scales the DATA phase's deadline */

    /* STARTTLS */
    struct tls_conn *tls; /* from the 220 to STARTTLS on; freed after released() */
    bool tls_opened;      /* the handshake completed */
    bool in_opened;       /* inside the stream's opened(): the stream re-arms its recv itself */
    char *tls_site;       /* owned copy of p.tls_site */
    char *tls_key;        /* session cache key */
    char tls_name[256];   /* SNI and the verified name; "" for none */
    struct egress_tls_info tls_info;
    /* ringctl trace-smtp-client: this session's id, its local address and what it delivers for */
    uint64_t trace_id;
    struct proto_trace_addr trace_local;
    char trace_domain[PROTO_TRACE_NAME_MAX + 1], trace_site[PROTO_TRACE_NAME_MAX + 1];
    char trace_source[PROTO_TRACE_NAME_MAX + 1];
    char in[EGRESS_CONN_IN_BUF];
};

/* ---- ringctl trace-smtp-client ---- */

static void on_trace(void *ctx, enum proto_trace_dir dir, const char *text, size_t len)
{
    struct egress_conn *c = ctx;
    struct proto_trace_event ev = {.side = PROTO_TRACE_CLIENT, .dir = dir, .session = c->trace_id,
                                   .local = c->trace_local};
    proto_trace_addr_set(&ev.peer, (const struct sockaddr *)&c->p.addr);
    memcpy(ev.domain, c->trace_domain, sizeof(ev.domain));
    memcpy(ev.site, c->trace_site, sizeof(ev.site));
    memcpy(ev.source, c->trace_source, sizeof(ev.source));
    proto_trace_set_text(&ev, text, len);
    rt_trace_send(&ev);
}

/* trace_note - a step of ours (connected, TLS, closed), when someone traces */
static void trace_note(struct egress_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace_note(struct egress_conn *c, const char *fmt, ...)
{
    char text[PROTO_TRACE_TEXT_MAX + 1];
    va_list ap;
    if (!rt_trace_on(PROTO_TRACE_CLIENT))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n >= 0)
        on_trace(c, PROTO_TRACE_NOTE, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

/* trace_name - a name as events carry it: "" when it is not one (proto_trace_name_ok) */
static void trace_name(char *out, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (!proto_trace_name_ok(name ? name : "", n))
        n = 0;
    if (n)
        memcpy(out, name, n);
    out[n] = '\0';
}

void egress_conn_trace_names(struct egress_conn *c, const char *domain, const char *site, const char *source)
{
    trace_name(c->trace_domain, domain);
    trace_name(c->trace_site, site);
    trace_name(c->trace_source, source);
}

static void conn_close(struct egress_conn *c);
static void pump(struct egress_conn *c);
static void rearm(struct egress_conn *c, bool progress);

/* ---- STARTTLS ---- */

/* tls_keep_session - the newest resumable session of this connection goes to the cache */
static void tls_keep_session(struct egress_conn *c)
{
    if (!c->tls || !c->tls_key || !c->p.tls_cache)
        return;
    struct tls_session *s = tls_conn_session_take(c->tls);
    if (s)
        egress_tls_session_put(c->p.tls_cache, c->tls_key, s);
}

/* tls_failed - the handshake did not complete: the reason, and the site remembered as broken */
static void tls_failed(struct egress_conn *c, const char *detail, char *why, size_t len)
{
    const char *e = tls_conn_error(c->tls);
    const char *name = c->tls_name[0] ? c->tls_name : "the server";
    /* cut at len like any reason; only an encoding error leaves nothing */
    if (snprintf(why, len, "TLS handshake with %s (%s) failed: %s", name, c->peer, e ? e : detail) < 0)
        snprintf(why, len, "TLS handshake failed");
    trace_note(c, "%s", why);
    if (c->p.tls_remember_broken_ms && c->p.tls_cache && c->tls_site)
        egress_tls_broken_set(c->p.tls_cache, c->tls_site,
                              clock_mono_ns() / 1000000u + c->p.tls_remember_broken_ms);
}

static bool ip_literal(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* tls_begin - the 220 to STARTTLS arrived (from on_recv, so no recv is armed): switch the stream */
static void tls_begin(struct egress_conn *c)
{
    if (c->p.tls == EGRESS_SMTP_TLS_NONE || !c->p.tls_cache || c->tls) {
        egress_smtp_abort(c->smtp, "unexpected TLS start");
        return;
    }
    if (egress_smtp_tls_injected(c->smtp)) {
        /* TLS-03: whatever followed the 220 was never the server's TLS; drop the connection */
        egress_smtp_abort(c->smtp, "the server sent more after its 220 reply to STARTTLS (possible injection): "
                                   "connection dropped before TLS");
        return;
    }
    const struct sockaddr_storage *a = &c->p.addr;
    uint16_t port = ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                                   : ((const struct sockaddr_in *)a)->sin_port);
    c->tls_key = egress_tls_session_key(c->p.tls_verify, c->tls_name[0] ? c->tls_name : c->peer, port);
    struct tls_session *resume = egress_tls_session_get(c->p.tls_cache, c->tls_key);
    c->tls = tls_conn_new_client(egress_tls_ctx(c->p.tls_cache, c->p.tls_verify), c->tls_name[0] ? c->tls_name : NULL,
                                 resume);
    if (tls_conn_state(c->tls) == TLS_STATE_FAILED) {
        char why[EGRESS_CONN_WHY_MAX];
        tls_failed(c, "failed", why, sizeof(why));
        egress_smtp_abort(c->smtp, why);
        return;
    }
    tls_stream_start(&c->st, c->tls);
}

/* on_opened - the handshake completed: the session is described, EHLO goes again (RFC 3207 4.2) */
static void on_opened(struct evl_stream *st)
{
    struct egress_conn *c = st->owner;

    if (c->state != CONN_SMTP || !c->tls || c->tls_opened)
        return;
    c->tls_opened = true;
    egress_tls_info_get(c->tls, &c->tls_info);
    trace_note(c, "TLS established: %s %s%s%s", c->tls_info.version, c->tls_info.cipher,
               tls_conn_resumed(c->tls) ? ", resumed" : "",
               tls_conn_peer_verified(c->tls) ? ", verified" : ", not verified");
    log_debug("TLS with %s (%s): %s %s%s%s", c->tls_name[0] ? c->tls_name : "the server", c->peer,
              c->tls_info.version, c->tls_info.cipher, tls_conn_resumed(c->tls) ? ", resumed" : "",
              tls_conn_peer_verified(c->tls) ? ", verified" : ", not verified");
    tls_keep_session(c);
    if (egress_smtp_tls_done(c->smtp) < 0)
        egress_smtp_abort(c->smtp, "TLS established out of step with the SMTP session");
    c->in_opened = true;
    rearm(c, true);
    pump(c);
    c->in_opened = false;
}

void egress_conn_addr_format(const struct sockaddr_storage *a, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        snprintf(out, len, "?");
    }
}

void egress_conn_set_init(struct egress_conn_set *set, struct evl *l)
{
    memset(set, 0, sizeof(*set));
    set->evl = l;
}

/* on_released - closed, and the last op came back */
static void on_released(struct evl_stream *st)
{
    struct egress_conn *c = st->owner;

    if (c->prev)
        c->prev->next = c->next;
    else
        c->set->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->set->n--;
    egress_smtp_free(c->smtp);
    tls_conn_free(c->tls);
    free(c->tls_site);
    free(c->tls_key);
    free(c);
}

static void deliver(struct egress_conn *c, const struct egress_smtp_event *ev)
{
    if (c->on_event)
        c->on_event(c->arg, c, ev);
}

/* fail_local - a failure with no SMTP session to report it (connect): a CONN_FAILED of our own */
static void fail_local(struct egress_conn *c, const char *detail)
{
    struct egress_smtp_event ev = {.type = EGRESS_SMTP_EV_CONN_FAILED, .result = EGRESS_SMTP_TEMPFAIL, .local = true};
    snprintf(ev.text, sizeof(ev.text), "connect to %s: %s", c->peer, detail);
    deliver(c, &ev);
    conn_close(c);
}

static void on_op_done(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct egress_conn *c = op->owner;
    evl_stream_drop(&c->st);
}

static void on_kick(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct egress_conn *c = op->owner;
    c->kick_armed = false;
    pump(c);
    evl_stream_drop(&c->st);
}

static const char *wait_name(enum egress_smtp_wait w)
{
    static const char *const names[] = {"nothing", "the banner", "the EHLO reply", "the HELO reply",
                                        "the STARTTLS reply", "the RSET reply", "the MAIL reply", "a RCPT reply",
                                        "the DATA reply", "the reply after the message", "the QUIT reply",
                                        "the TLS handshake"};
    return (unsigned)w < sizeof(names) / sizeof(names[0]) ? names[w] : "a reply";
}

static void conn_close(struct egress_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_SMTP)
        trace_note(c, "closed");
    bool connecting = c->state == CONN_CONNECTING;
    tls_keep_session(c);
    c->state = CONN_CLOSING;
    c->deadline_ns = 0;
    if (c->on_closed) {
        egress_conn_closed_cb cb = c->on_closed;
        c->on_closed = NULL;
        c->on_event = NULL;
        cb(c->arg, c);
    }
    c->on_event = NULL;
    if (connecting) {
        /* a connect in flight is not ended by close or shutdown on every kernel: cancel it */
        struct io_uring_sqe *sqe = evl_sqe(c->set->evl, &c->cancel_op);
        io_uring_prep_cancel(sqe, &c->connect_op, 0);
        evl_stream_hold(&c->st);
    }
    evl_stream_close(&c->st);
}

static uint64_t wait_timeout(const struct egress_conn *c, enum egress_smtp_wait w)
{
    switch (w) {
    case EGRESS_SMTP_WAIT_NONE:
        return 0;
    case EGRESS_SMTP_WAIT_BANNER:
        return c->p.t.banner_ns;
    case EGRESS_SMTP_WAIT_MAIL:
        return c->p.t.mail_ns;
    case EGRESS_SMTP_WAIT_RCPT:
        return c->p.t.rcpt_ns;
    case EGRESS_SMTP_WAIT_DATA:
        return c->p.t.data_ns;
    case EGRESS_SMTP_WAIT_DOT:
        return c->p.t.dot_ns;
    case EGRESS_SMTP_WAIT_RSET:
    case EGRESS_SMTP_WAIT_QUIT:
        return c->p.t.rset_ns;
    default: /* EHLO, HELO, STARTTLS, the TLS handshake: setting up the session */
        return c->p.t.ehlo_ns;
    }
}

/* data_phase_ns - the DATA phase's one deadline: dot_ns plus the body at min_data_rate (saturating) */
static uint64_t data_phase_ns(const struct egress_conn *c)
{
    uint64_t t = c->p.t.dot_ns;
    if (!t || !c->p.t.min_data_rate)
        return t;
    uint64_t secs = c->body_len / c->p.t.min_data_rate + 1;
    uint64_t extra = secs > UINT64_MAX / CLOCK_SEC(1) ? UINT64_MAX : secs * CLOCK_SEC(1);
    return extra > UINT64_MAX - t ? UINT64_MAX / 2 : t + extra;
}

/*
 * rearm - the deadline counts from progress: a new reply awaited, or our bytes written; but the
 * DATA phase (body written, reply after the dot awaited) keeps the deadline set when it started
 */
static void rearm(struct egress_conn *c, bool progress)
{
    enum egress_smtp_wait w = egress_smtp_waiting(c->smtp);
    if (w == c->last_wait && !progress)
        return;
    if (w == EGRESS_SMTP_WAIT_DOT && c->last_wait == EGRESS_SMTP_WAIT_DOT && !c->flush_then_close)
        return;
    c->last_wait = w;
    uint64_t t = w == EGRESS_SMTP_WAIT_DOT ? data_phase_ns(c) : wait_timeout(c, w);
    if (c->flush_then_close)
        t = c->p.t.rset_ns;
    c->deadline_ns = t ? clock_mono_ns() + t : 0;
}

/* stream_out - the machine's next piece of output; it stays put until consumed */
static unsigned stream_out(struct evl_stream *st, struct iovec *iov, unsigned max)
{
    struct egress_conn *c = st->owner;
    size_t len;
    const char *p = egress_smtp_output(c->smtp, &len);

    return evl_stream_out_one(iov, p, p ? len : 0);
}

static void stream_taken(struct evl_stream *st, size_t n)
{
    struct egress_conn *c = st->owner;
    egress_smtp_consumed(c->smtp, n);
}

static void on_send(struct evl_stream *st, int res)
{
    struct egress_conn *c = st->owner;

    if (res <= 0) {
        if (c->flush_then_close) {
            conn_close(c);
        } else {
            char why[96];
            snprintf(why, sizeof(why), "write to the server failed: %s", res ? strerror(-res) : "nothing written");
            egress_smtp_abort(c->smtp, why);
            pump(c);
        }
        return;
    }
    rearm(c, true);
    pump(c);
}

static void flush(struct egress_conn *c)
{
    if (c->state != CONN_SMTP)
        return;
    evl_stream_flush(&c->st);
    if (!evl_stream_sending(&c->st) && c->flush_then_close)
        conn_close(c);
}

static void arm_recv(struct egress_conn *c)
{
    if (c->state != CONN_SMTP || c->flush_then_close || c->in_opened)
        return;
    evl_stream_recv(&c->st, c->in, sizeof(c->in));
}

/* pump - hand every pending event to the owner, then write what the machine queued */
static void pump(struct egress_conn *c)
{
    struct egress_smtp_event ev;
    bool over = false, quit_pending = false;

    if (c->in_pump || c->state != CONN_SMTP)
        return;
    c->in_pump = true;
    while (c->state == CONN_SMTP && egress_smtp_next_event(c->smtp, &ev)) {
        if (ev.type == EGRESS_SMTP_EV_TLS_START) {
            tls_begin(c);
            continue;
        }
        if (ev.type == EGRESS_SMTP_EV_CONN_FAILED)
            quit_pending = true;
        if (ev.type == EGRESS_SMTP_EV_CONN_FAILED || ev.type == EGRESS_SMTP_EV_PROTOCOL_ERROR ||
            ev.type == EGRESS_SMTP_EV_CLOSED)
            over = true;
        deliver(c, &ev);
    }
    c->in_pump = false;
    if (c->state != CONN_SMTP)
        return;
    if (over) {
        if (!quit_pending) {
            conn_close(c);
            return;
        }
        /* CONN_FAILED may have queued a QUIT: send it, its reply is not needed */
        c->flush_then_close = true;
        rearm(c, true);
    } else {
        rearm(c, false);
    }
    flush(c);
    arm_recv(c);
}

static void on_recv(struct evl_stream *st, ssize_t res)
{
    struct egress_conn *c = st->owner;

    if (c->flush_then_close)
        return;
    if (res <= 0) {
        char why[EGRESS_CONN_WHY_MAX];
        if (c->tls && !c->tls_opened)
            tls_failed(c, res == 0 ? "connection closed by the server" : strerror((int)-res), why, sizeof(why));
        else if (c->tls && tls_conn_error(c->tls))
            snprintf(why, sizeof(why), "TLS session failed: %s", tls_conn_error(c->tls));
        else if (res == 0)
            snprintf(why, sizeof(why), "connection closed by the server");
        else
            snprintf(why, sizeof(why), "read from the server failed: %s", strerror((int)-res));
        egress_smtp_abort(c->smtp, why);
        pump(c);
        conn_close(c);
        return;
    }
    if (egress_smtp_feed(c->smtp, c->in, (size_t)res) < 0) {
        pump(c);
        conn_close(c);
        return;
    }
    pump(c);
}

static void on_connect(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct egress_conn *c = op->owner;

    if (c->state != CONN_CONNECTING) {
        evl_stream_drop(&c->st);
        return;
    }
    if (res < 0) {
        fail_local(c, strerror(-res));
        evl_stream_drop(&c->st);
        return;
    }
    struct egress_smtp_params sp = {.ehlo_name = c->ehlo, .pipelining = true,
                                    .tls = c->p.tls_cache ? c->p.tls : EGRESS_SMTP_TLS_NONE};
    c->smtp = egress_smtp_new(&sp);
    if (!c->smtp) {
        fail_local(c, "the EHLO name is not valid");
        evl_stream_drop(&c->st);
        return;
    }
    c->state = CONN_SMTP;
    c->last_wait = EGRESS_SMTP_WAIT_NONE;
    struct sockaddr_storage la;
    socklen_t ll = sizeof(la);
    if (getsockname(evl_stream_fd(&c->st), (struct sockaddr *)&la, &ll) == 0)
        proto_trace_addr_set(&c->trace_local, (struct sockaddr *)&la);
    egress_smtp_trace_set(c->smtp, on_trace, c);
    trace_note(c, "connected");
    rearm(c, true);
    pump(c);
    evl_stream_drop(&c->st);
}

static const struct evl_stream_ops conn_stream = {
    .out = stream_out,
    .taken = stream_taken,
    .sent = on_send,
    .recv = on_recv,
    .opened = on_opened,
    .released = on_released,
};

static int bind_source(int fd, int family, const char *bind_address, char *err, size_t err_len)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;

    if (!bind_address || !bind_address[0])
        return 0;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        if (inet_pton(AF_INET, bind_address, &s4->sin_addr) != 1) {
            snprintf(err, err_len, "source address %s is not an IPv4 address", bind_address);
            return -EAFNOSUPPORT;
        }
        sl = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, bind_address, &s6->sin6_addr) != 1) {
            snprintf(err, err_len, "source address %s is not an IPv6 address", bind_address);
            return -EAFNOSUPPORT;
        }
        sl = sizeof(*s6);
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int e = errno;
        snprintf(err, err_len, "bind to source address %s: %s", bind_address, strerror(e));
        return -e;
    }
    return 0;
}

int egress_conn_open(struct egress_conn_set *set, const struct egress_conn_params *p, egress_conn_event_cb on_event,
                     egress_conn_closed_cb on_closed, void *arg, struct egress_conn **out, char *err,
                     size_t err_len)
{
    int family = p->addr.ss_family;
    int fd, rc;

    *out = NULL;
    if (p->tls != EGRESS_SMTP_TLS_NONE && !p->tls_cache) {
        snprintf(err, err_len, "STARTTLS asked for without TLS contexts");
        return -EINVAL;
    }
    if (family != AF_INET && family != AF_INET6) {
        snprintf(err, err_len, "address family %d is not supported", family);
        return -EAFNOSUPPORT;
    }
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_len, "socket: %s", strerror(e));
        return -e;
    }
    if ((rc = bind_source(fd, family, p->bind_address, err, err_len)) < 0) {
        close(fd);
        return rc;
    }
    /* SMTP is request/response: without this, Nagle holds each small command until the peer's
     * delayed ACK (tens of ms per message on a reused connection) */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        log_warn("TCP_NODELAY: %s", strerror(errno));
    struct egress_conn *c = xcalloc(1, sizeof(*c));
    c->set = set;
    evl_stream_init(&c->st, set->evl, fd, &conn_stream, c);
    c->p = *p;
    c->p.bind_address = NULL; /* borrowed; not needed after bind */
    c->p.ehlo_name = NULL;
    c->p.tls_name = NULL;
    c->p.tls_site = NULL;
    if (p->tls_name && p->tls_name[0] && !ip_literal(p->tls_name))
        snprintf(c->tls_name, sizeof(c->tls_name), "%s", p->tls_name);
    c->tls_site = p->tls_site ? xstrdup(p->tls_site) : NULL;
    snprintf(c->ehlo, sizeof(c->ehlo), "%s", p->ehlo_name ? p->ehlo_name : "localhost");
    c->trace_id = rt_trace_session_id();
    egress_conn_addr_format(&p->addr, c->peer, sizeof(c->peer));
    c->on_event = on_event;
    c->on_closed = on_closed;
    c->arg = arg;
    c->connect_op = (struct evl_op){on_connect, c};
    c->cancel_op = (struct evl_op){on_op_done, c};
    c->kick_op = (struct evl_op){on_kick, c};
    c->state = CONN_CONNECTING;
    c->deadline_ns = clock_mono_ns() + (p->t.connect_ns ? p->t.connect_ns : CLOCK_SEC(60));
    c->next = set->head;
    if (set->head)
        set->head->prev = c;
    set->head = c;
    set->n++;

    struct io_uring_sqe *sqe = evl_sqe(set->evl, &c->connect_op);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->p.addr,
                          family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    evl_stream_hold(&c->st);
    *out = c;
    return 0;
}

void egress_conn_owner_set(struct egress_conn *c, egress_conn_event_cb on_event, egress_conn_closed_cb on_closed,
                           void *arg)
{
    if (c->state == CONN_CLOSING)
        return;
    c->on_event = on_event;
    c->on_closed = on_closed;
    c->arg = arg;
}

int egress_conn_send(struct egress_conn *c, const char *sender, const char *const *rcpts, size_t n_rcpts,
                     const char *body, size_t body_len, unsigned flags)
{
    if (c->state != CONN_SMTP || c->flush_then_close)
        return -EPIPE;
    int rc = egress_smtp_send_message(c->smtp, sender, rcpts, n_rcpts, body, body_len, flags);
    if (rc < 0)
        return rc;
    c->body_len = body_len;
    rearm(c, true);
    flush(c);
    /* a local refusal is an event already, with nothing to write: deliver it from the loop, never
     * inside the caller (outside a pump, a no-op wakes us) */
    if (!c->in_pump && !c->kick_armed) {
        struct io_uring_sqe *sqe = evl_sqe(c->set->evl, &c->kick_op);
        io_uring_prep_nop(sqe);
        c->kick_armed = true;
        evl_stream_hold(&c->st);
    }
    return 0;
}

void egress_conn_timeouts_set(struct egress_conn *c, const struct egress_conn_timeouts *t)
{
    c->p.t = *t;
    if (c->state == CONN_SMTP)
        rearm(c, true);
}

bool egress_conn_idle(const struct egress_conn *c)
{
    /* a session that just ended (421 or EOF mid-transaction) has its MESSAGE_DONE delivered before its
     * CLOSED: it waits for nothing, yet a lease kept on it would be closed right after its DONE */
    return c->state == CONN_SMTP && !c->flush_then_close && c->smtp && !egress_smtp_over(c->smtp) &&
           egress_smtp_waiting(c->smtp) == EGRESS_SMTP_WAIT_NONE;
}

void egress_conn_quit(struct egress_conn *c)
{
    if (c->state == CONN_CONNECTING) {
        conn_close(c);
        return;
    }
    if (c->state != CONN_SMTP || c->flush_then_close)
        return;
    if (egress_smtp_quit(c->smtp) < 0) {
        egress_smtp_abort(c->smtp, "closing");
        pump(c);
        conn_close(c);
        return;
    }
    rearm(c, true);
    flush(c);
}

void egress_conn_abort(struct egress_conn *c, const char *why)
{
    if (c->state == CONN_SMTP) {
        egress_smtp_abort(c->smtp, why);
        pump(c);
    } else if (c->state == CONN_CONNECTING) {
        fail_local(c, why);
        return;
    }
    conn_close(c);
}

void egress_conn_tick(struct egress_conn_set *set, uint64_t now_ns)
{
    struct egress_conn *c = set->head, *next;

    for (; c; c = next) {
        next = c->next;
        if (c->state == CONN_CLOSING || !c->deadline_ns || now_ns < c->deadline_ns)
            continue;
        if (c->state == CONN_CONNECTING) {
            fail_local(c, "timed out");
        } else if (c->flush_then_close) {
            conn_close(c);
        } else {
            char why[EGRESS_CONN_WHY_MAX];
            enum egress_smtp_wait w = egress_smtp_waiting(c->smtp);
            snprintf(why, sizeof(why), "timeout waiting for %s", wait_name(w));
            if (w == EGRESS_SMTP_WAIT_TLS && c->tls && !c->tls_opened) {
                char detail[EGRESS_CONN_WHY_MAX];
                snprintf(detail, sizeof(detail), "%s", why);
                tls_failed(c, detail, why, sizeof(why));
            }
            egress_smtp_abort(c->smtp, why);
            pump(c);
            conn_close(c);
        }
    }
}

bool egress_conn_tls_matches(const struct egress_conn *c, enum egress_smtp_tls mode, bool verify)
{
    return c->p.tls == mode && (mode == EGRESS_SMTP_TLS_NONE || c->p.tls_verify == verify);
}

const struct egress_tls_info *egress_conn_tls(const struct egress_conn *c)
{
    return &c->tls_info;
}

const char *egress_conn_peer(const struct egress_conn *c)
{
    return c->peer;
}

void egress_conn_close_all(struct egress_conn_set *set)
{
    for (struct egress_conn *c = set->head, *next; c; c = next) {
        next = c->next;
        c->on_event = NULL;
        c->on_closed = NULL;
        conn_close(c);
    }
}
