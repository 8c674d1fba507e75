/*
 * supervisor_trace - ringctl trace-smtp-server / trace-smtp-client: live SMTP transcripts
 *
 *   GET /api/v1/trace/smtp-server[?peer=CIDR]                    sessions of the ingress (SMTP server)
 *   GET /api/v1/trace/smtp-client[?domain=D&site=S&source=S]     sessions of the egress (SMTP client)
 *
 * Each answers 200 and then streams, until the client goes, one JSON object per line (a "start" line,
 * then one per session event; schema: docs/admin-api.md, "SMTP trace"), with an empty line as a
 * keep-alive after SUP_TRACE_KEEPALIVE_NS of silence (that is also how a tracer that went away is
 * noticed: the write fails and libmicrohttpd ends the response, which ends the trace).
 *
 * How events get here: while a side has a tracer, its bit is set in the segment header's trace_on word
 * (roles read it, relaxed; when nobody traces, that load and a branch are all a session pays). A role
 * (after a prefilter it reads from the header: only events some tracer may want, see proto_trace.h)
 * then sends each event as one datagram on DATA_DIR/trace.sock, a SOCK_DGRAM Unix socket made here:
 * datagrams keep event boundaries, a full socket makes the role drop and count (never wait), and
 * SO_PASSCRED gives the kernel's word on the sending pid, so who sent an event is known from the pids
 * this process forked, never from anything the event says. A datagram is hostile input: a pid that is
 * not a running ingress/egress instance of ours, a record that proto_trace_decode() refuses, or a side
 * that does not match the sender's role is counted as rejected (and logged at most every 10 s); a
 * time stamp far from ours is replaced by ours. Filters are applied here (the role sends every event of
 * its side). Each tracer has a bounded queue: when its reader is slower than the events, events are
 * dropped for that tracer and counted.
 *
 * Threads: one thread of ours reads the socket and queues; libmicrohttpd's threads read the queues
 * (a content reader that suspends its connection when the queue is empty; the reading thread resumes
 * it). Everything shared is under tr.lock; the pid table is atomics written by the main thread.
 */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_metrics.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_trace.h"

#define SUP_TRACE_MAX 8
#define SUP_TRACE_QUEUE_MAX (512u << 10)
#define SUP_TRACE_KEEPALIVE_NS CLOCK_SEC(2)
#define SUP_TRACE_RCVBUF (1 << 20)
#define SUP_TRACE_BATCH 256
#define SUP_TRACE_LOG_EVERY_NS CLOCK_SEC(10)
#define SUP_TRACE_REPUBLISH_NS CLOCK_SEC(1)

struct sup_tracer {
    bool used, closed, suspended;
    struct proto_trace_filter f;
    struct MHD_Connection *c;
    struct buf q; /* JSON lines not yet read by libmicrohttpd */
    size_t off;
    uint64_t last_out_ns;
};

static struct {
    struct supervisor *s;
    pthread_mutex_t lock;
    struct sup_tracer t[SUP_TRACE_MAX];
    int fd, stop_efd;
    char *path;
    pthread_t thread;
    bool running;
    _Atomic int32_t pid[PROTO_NODE_MAX_INSTANCES];
    _Atomic uint64_t received, rejected, streamed, dropped;
    uint64_t last_log_ns;
    uint32_t gen; /* of the prefilter: even when published */
} tr = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .stop_efd = -1};

void supervisor_trace_note_pid(unsigned instance, pid_t pid)
{
    if (instance < PROTO_NODE_MAX_INSTANCES)
        atomic_store(&tr.pid[instance], (int32_t)pid);
}

_Static_assert(SUP_TRACE_MAX <= PROTO_TRACE_SHM_FILTERS, "a prefilter slot per tracer");

/*
 * publish - the prefilter and the trace word from the tracers; under tr.lock. The generation is ours
 * (tr.gen), written, never read back: the header is writable by every role.
 */
static void publish(void)
{
    struct proto_trace_shm_filter fs[PROTO_TRACE_SHM_FILTERS];
    struct shm_header *h = tr.s->seg.hdr;
    uint32_t mask = 0;
    size_t k = 0;

    for (size_t i = 0; i < PROTO_TRACE_SHM_FILTERS; i++)
        fs[i] = (struct proto_trace_shm_filter){.side = PROTO_TRACE_SHM_EMPTY};
    for (unsigned i = 0; i < SUP_TRACE_MAX; i++)
        if (tr.t[i].used && !tr.t[i].closed) {
            mask |= 1u << tr.t[i].f.side;
            proto_trace_shm_filter_set(&fs[k++], &tr.t[i].f);
        }
    atomic_store_explicit(&h->trace_gen, ++tr.gen, memory_order_relaxed); /* odd: being written */
    atomic_thread_fence(memory_order_release);
    memcpy(h->trace_filters, fs, sizeof(fs));
    atomic_store_explicit(&h->trace_gen, ++tr.gen, memory_order_release);
    atomic_store_explicit(&h->trace_on, mask, memory_order_relaxed);
}

/* wake - let libmicrohttpd read a tracer's queue again; under tr.lock */
static void wake(struct sup_tracer *t)
{
    if (t->suspended) {
        t->suspended = false;
        MHD_resume_connection(t->c);
    }
}

/* queue_line - append one line (without its newline) to a tracer's queue, or count it dropped */
static void queue_line(struct sup_tracer *t, const char *line, size_t n)
{
    if (t->q.len - t->off + n + 1 > SUP_TRACE_QUEUE_MAX) {
        atomic_fetch_add(&tr.dropped, 1);
        return;
    }
    buf_append(&t->q, line, n);
    buf_append(&t->q, "\n", 1);
    wake(t);
}

static void reject(const char *from, const char *why)
{
    atomic_fetch_add(&tr.rejected, 1);
    uint64_t now = clock_mono_ns();
    if (now - tr.last_log_ns < SUP_TRACE_LOG_EVERY_NS && tr.last_log_ns)
        return;
    tr.last_log_ns = now;
    log_warn("SMTP trace: an event from %s was refused: %s (events refused so far: %llu)", from, why,
             (unsigned long long)atomic_load(&tr.rejected));
}

/* instance_of - the running instance of ours with this pid, or -1 */
static int instance_of(pid_t pid)
{
    for (unsigned i = 0; i < tr.s->seg.n_instances; i++)
        if (pid > 0 && atomic_load(&tr.pid[i]) == (int32_t)pid)
            return (int)i;
    return -1;
}

static void on_datagram(const uint8_t *rec, size_t n, bool truncated, const struct ucred *cred)
{
    struct proto_trace_event ev;
    const char *why;
    char from[64];

    int i = cred ? instance_of(cred->pid) : -1;
    if (i < 0) {
        snprintf(from, sizeof(from), "pid %d", cred ? (int)cred->pid : -1);
        reject(from, "not a role instance of this node");
        return;
    }
    enum proto_node_role role = tr.s->inst[i].role; /* fixed at start: not the segment's copy */
    unsigned worker = tr.s->inst[i].index;
    snprintf(from, sizeof(from), "%s[%u] (pid %d)", proto_node_role_name(role), worker, (int)cred->pid);
    if (truncated) {
        reject(from, "longer than a trace record");
        return;
    }
    if (proto_trace_decode(rec, n, &ev, &why) < 0) {
        reject(from, why);
        return;
    }
    if ((role == PROTO_NODE_ROLE_INGRESS && ev.side != PROTO_TRACE_SERVER) ||
        (role == PROTO_NODE_ROLE_EGRESS && ev.side != PROTO_TRACE_CLIENT) ||
        (role != PROTO_NODE_ROLE_INGRESS && role != PROTO_NODE_ROLE_EGRESS)) {
        reject(from, "an event of the other side");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (ev.time_ns > now + CLOCK_SEC(5) || ev.time_ns + CLOCK_SEC(60) < now)
        ev.time_ns = now;
    atomic_fetch_add(&tr.received, 1);
    char *line = NULL;
    pthread_mutex_lock(&tr.lock);
    for (unsigned k = 0; k < SUP_TRACE_MAX; k++) {
        struct sup_tracer *t = &tr.t[k];
        if (!t->used || t->closed || !proto_trace_filter_match(&t->f, &ev))
            continue;
        if (!line && !(line = proto_trace_event_json(&ev, proto_node_role_name(role), worker)))
            break;
        queue_line(t, line, strlen(line));
        atomic_fetch_add(&tr.streamed, 1);
    }
    pthread_mutex_unlock(&tr.lock);
    free(line);
}

/* drain - the datagrams waiting, at most a batch */
static void drain(void)
{
    uint8_t rec[PROTO_TRACE_DGRAM_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } ctl;

    for (unsigned k = 0; k < SUP_TRACE_BATCH; k++) {
        struct iovec iov = {rec, sizeof(rec)};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(tr.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
            return;
        const struct ucred *cred = NULL;
        struct ucred uc;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS &&
                cm->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
                memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
                cred = &uc;
            }
        on_datagram(rec, (size_t)n, (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0, cred);
    }
}

/* keepalive - an empty line to each tracer that heard nothing for a while; and the word and prefilter
 * written again each second, so that a role that scribbled on them cannot keep others from being traced */
static void keepalive(void)
{
    static uint64_t published_ns;
    uint64_t now = clock_mono_ns();
    pthread_mutex_lock(&tr.lock);
    if (now - published_ns >= SUP_TRACE_REPUBLISH_NS) {
        published_ns = now;
        publish();
    }
    for (unsigned k = 0; k < SUP_TRACE_MAX; k++) {
        struct sup_tracer *t = &tr.t[k];
        if (t->used && !t->closed && t->q.len == t->off && now - t->last_out_ns >= SUP_TRACE_KEEPALIVE_NS) {
            t->last_out_ns = now;
            buf_append(&t->q, "\n", 1);
            wake(t);
        }
    }
    pthread_mutex_unlock(&tr.lock);
}

static void *trace_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = tr.fd, .events = POLLIN}, {.fd = tr.stop_efd, .events = POLLIN}};
        int rc = poll(p, 2, 500);
        if (rc < 0 && errno != EINTR) {
            log_error("SMTP trace: poll: %s; no more trace events", strerror(errno));
            break;
        }
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN)
            drain();
        keepalive();
    }
    return NULL;
}

int supervisor_trace_start(struct supervisor *s, char **err)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int one = 1, rcvbuf = SUP_TRACE_RCVBUF;

    tr.s = s;
    pthread_mutex_lock(&tr.lock);
    publish(); /* nobody traces yet: the word 0 and every prefilter slot empty */
    pthread_mutex_unlock(&tr.lock);
    char *path = xasprintf("%s/trace.sock", s->cfg.data_dir);
    if (strlen(path) >= sizeof(sun.sun_path)) {
        log_warn("no SMTP trace: %s is longer than %zu bytes (a shorter data_dir)", path, sizeof(sun.sun_path) - 1);
        free(path);
        return 0;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = xasprintf("%s exists and is not a socket", path);
            free(path);
            return -EEXIST;
        }
        unlink(path); /* ours from a previous run: the admin listener is bound, so no other node uses it */
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        panic("socket(AF_UNIX, SOCK_DGRAM): %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    mode_t old = umask(0177); /* nobody sends before the mode below is set */
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    /* the roles run as [node] user: its group may write (send), nobody else */
    if (rc < 0 || (s->drop_privileges && chown(path, 0, s->run_gid) < 0) ||
        chmod(path, s->drop_privileges ? 0620 : 0600) < 0) {
        rc = -errno;
        *err = xasprintf("SMTP trace socket %s: %s", path, strerror(-rc));
        close(fd);
        unlink(path);
        free(path);
        return rc;
    }
    tr.fd = fd;
    tr.path = path;
    tr.stop_efd = eventfd(0, EFD_CLOEXEC);
    if (tr.stop_efd < 0 || pthread_create(&tr.thread, NULL, trace_thread, NULL) != 0)
        panic("SMTP trace thread: %s", strerror(errno));
    tr.running = true;
    return 0;
}

void supervisor_trace_stop(struct supervisor *s)
{
    (void)s;
    pthread_mutex_lock(&tr.lock);
    for (unsigned k = 0; k < SUP_TRACE_MAX; k++)
        if (tr.t[k].used) {
            tr.t[k].closed = true;
            wake(&tr.t[k]);
        }
    if (tr.s)
        publish();
    pthread_mutex_unlock(&tr.lock);
    if (tr.running) {
        uint64_t one = 1;
        if (write(tr.stop_efd, &one, sizeof(one)) < 0)
            log_warn("SMTP trace: cannot stop its thread: %s", strerror(errno));
        pthread_join(tr.thread, NULL);
        tr.running = false;
    }
    if (tr.fd >= 0) {
        close(tr.fd);
        unlink(tr.path);
    }
    if (tr.stop_efd >= 0)
        close(tr.stop_efd);
    tr.fd = tr.stop_efd = -1;
    free(tr.path);
    tr.path = NULL;
}

/* ---- the endpoint ---- */

static ssize_t on_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sup_tracer *t = cls;
    ssize_t n;
    (void)pos;
    pthread_mutex_lock(&tr.lock);
    if (t->q.len > t->off) {
        size_t k = t->q.len - t->off < max ? t->q.len - t->off : max;
        memcpy(out, t->q.data + t->off, k);
        t->off += k;
        if (t->off == t->q.len)
            t->off = t->q.len = 0;
        t->last_out_ns = clock_mono_ns();
        n = (ssize_t)k;
    } else if (t->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* nothing to say: off the event loop until the trace thread has a line (or a keep-alive) */
        t->suspended = true;
        MHD_suspend_connection(t->c);
        n = 0;
    }
    pthread_mutex_unlock(&tr.lock);
    return n;
}

static void on_done(void *cls)
{
    struct sup_tracer *t = cls;
    pthread_mutex_lock(&tr.lock);
    buf_fini(&t->q);
    enum proto_trace_side side = t->f.side;
    *t = (struct sup_tracer){0};
    publish();
    pthread_mutex_unlock(&tr.lock);
    log_info("SMTP trace of the %s side ended", side == PROTO_TRACE_SERVER ? "server" : "client");
}

struct trace_args {
    bool server;
    const char *bad;
};

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct trace_args *a = cls;
    (void)kind;
    (void)value;
    bool known = a->server ? strcmp(key, "peer") == 0
                           : strcmp(key, "domain") == 0 || strcmp(key, "site") == 0 || strcmp(key, "source") == 0;
    if (!known) {
        a->bad = key;
        return MHD_NO;
    }
    return MHD_YES;
}

static enum MHD_Result fail(struct MHD_Connection *c, unsigned code, const char *msg)
{
    json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *body = xasprintf("%s\n", text ? text : "{}");
    free(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* name_arg - an optional name argument into out; false when it is there and not a name */
static bool name_arg(struct MHD_Connection *c, const char *key, char *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    out[0] = '\0';
    if (!v || !v[0])
        return true;
    if (!proto_trace_name_ok(v, strlen(v)))
        return false;
    snprintf(out, PROTO_TRACE_NAME_MAX + 1, "%s", v);
    return true;
}

/* start_line - the stream's first line: what is traced */
static char *start_line(const struct proto_trace_filter *f, const char *peer)
{
    json_t *filter = json_object();
    if (f->side == PROTO_TRACE_SERVER) {
        if (peer)
            json_object_set_new(filter, "peer", json_string(peer));
    } else {
        if (f->domain[0])
            json_object_set_new(filter, "domain", json_string(f->domain));
        if (f->site[0])
            json_object_set_new(filter, "site", json_string(f->site));
        if (f->source[0])
            json_object_set_new(filter, "source", json_string(f->source));
    }
    json_t *o = json_pack("{s:s, s:s, s:o}", "type", "start", "side",
                          f->side == PROTO_TRACE_SERVER ? "server" : "client", "filter", filter);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

unsigned supervisor_trace_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get,
                                  enum MHD_Result *ret)
{
    struct proto_trace_filter f = {0};
    struct trace_args a = {0};
    const char *peer = NULL;

    (void)s;
    if (strcmp(url, "/api/v1/trace/smtp-server") == 0)
        a.server = true;
    else if (strcmp(url, "/api/v1/trace/smtp-client") != 0)
        return 0;
    if (!get) {
        *ret = fail(c, MHD_HTTP_METHOD_NOT_ALLOWED, "a trace is a GET");
        return 1;
    }
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_arg, &a);
    if (a.bad) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unknown argument (%s): %s", a.server ? "peer" : "domain, site, source",
                 strlen(a.bad) > 64 ? "(long)" : a.bad);
        *ret = fail(c, MHD_HTTP_BAD_REQUEST, msg);
        return 1;
    }
    f.side = a.server ? PROTO_TRACE_SERVER : PROTO_TRACE_CLIENT;
    if (a.server) {
        peer = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "peer");
        if (peer && peer[0] && proto_trace_filter_cidr(&f, peer) < 0) {
            *ret = fail(c, MHD_HTTP_BAD_REQUEST, "peer= is an IPv4 or IPv6 address or network (127.0.0.0/8, ::1/128)");
            return 1;
        }
        if (peer && !peer[0])
            peer = NULL;
    } else if (!name_arg(c, "domain", f.domain) || !name_arg(c, "site", f.site) || !name_arg(c, "source", f.source)) {
        *ret = fail(c, MHD_HTTP_BAD_REQUEST, "domain, site and source are UTF-8 without spaces or controls, "
                                              "at most 255 bytes");
        return 1;
    }
    if (tr.fd < 0) {
        *ret = fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, "SMTP trace is not available on this node (see its log)");
        return 1;
    }
    char *first = start_line(&f, peer);
    pthread_mutex_lock(&tr.lock);
    struct sup_tracer *t = NULL;
    for (unsigned k = 0; k < SUP_TRACE_MAX && !t; k++)
        if (!tr.t[k].used)
            t = &tr.t[k];
    if (!t) {
        pthread_mutex_unlock(&tr.lock);
        free(first);
        char msg[96];
        snprintf(msg, sizeof(msg), "at most %u SMTP traces at a time: end one first", SUP_TRACE_MAX);
        *ret = fail(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        return 1;
    }
    *t = (struct sup_tracer){.used = true, .f = f, .c = c, .last_out_ns = clock_mono_ns()};
    queue_line(t, first, strlen(first));
    free(first);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, on_read, t, on_done);
    MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    publish();
    pthread_mutex_unlock(&tr.lock);
    *ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    log_info("SMTP trace of the %s side started%s%s", a.server ? "server" : "client", peer ? " for peer " : "",
             peer ? peer : "");
    return 1;
}

void supervisor_trace_metrics(struct sup_metrics *m)
{
    unsigned n = 0;
    pthread_mutex_lock(&tr.lock);
    for (unsigned k = 0; k < SUP_TRACE_MAX; k++)
        n += tr.t[k].used && !tr.t[k].closed;
    pthread_mutex_unlock(&tr.lock);
    static const struct {
        const char *name, *help;
    } c[] = {
        {"ringmail_trace_received_total", "SMTP trace events accepted from the roles."},
        {"ringmail_trace_rejected_total", "SMTP trace datagrams refused (bad record or sender)."},
        {"ringmail_trace_streamed_total", "SMTP trace events queued to a tracer."},
        {"ringmail_trace_slow_tracer_dropped_total", "SMTP trace events dropped for a tracer that reads too slowly."},
    };
    uint64_t v[4] = {atomic_load(&tr.received), atomic_load(&tr.rejected), atomic_load(&tr.streamed),
                     atomic_load(&tr.dropped)};
    supervisor_metrics_sample(supervisor_metrics_family(m, "ringmail_trace_tracers", SUP_METRIC_GAUGE,
                                                        "SMTP traces being streamed (ringctl trace-smtp-*)."),
                              0, NULL, NULL)
        ->value = n;
    for (unsigned k = 0; k < 4; k++)
        supervisor_metrics_sample(supervisor_metrics_family(m, c[k].name, SUP_METRIC_COUNTER, c[k].help), 0, NULL, NULL)
            ->value = v[k];
}
