/*
 * supervisor_admin - the admin HTTP API (JSON) that ringctl talks to
 *
 *   GET  /api/v1/status                  node, shared memory and every role instance
 *   GET  /api/v1/queues                  the scheduler's queues and egress paths (its status page)
 *   GET  /api/v1/tsa/status[?domain=D&site=S]  traffic shaping automation effects in force (filtered)
 *   GET  /api/v1/tsa/history             the recent automation firings, newest first
 *   POST /api/v1/restart/ROLE[/INDEX]    restart one role's workers without touching the others
 *   POST /api/v1/reload                  validate and reload the configuration (as SIGHUP)
 *   /api/v1/queue-summary, suspend, suspend-ready-q, bounce, inspect-*: supervisor_ops.c
 *   GET  /api/v1/logs?type=T&domain=D&queue=Q&limit=N&follow=1   the message log: supervisor_logs.c
 *   GET  /ui/, /ui/<file>   the web console's static files: supervisor_ui.c
 *   GET  /api/v1/trace/smtp-server|smtp-client   live SMTP transcripts, streamed: supervisor_trace.c
 *   GET  /metrics                        Prometheus text from the shared-memory counters: supervisor_metrics.c
 *   GET  /metrics.json                   the same collection as JSON
 *
 * Access control (supervisor_auth.c, docs/admin-api.md "Access control") is applied here, once, to
 * every request before any endpoint sees it, so a new endpoint is covered by adding its dispatch lines
 * to on_request() and nothing else. The rule: GET and HEAD are read-only; every other method (POST,
 * DELETE, anything) is mutating. A mutating call needs "Authorization: Bearer TOKEN" and is logged
 * (peer, token id, method, URL); a read-only call needs it unless it comes over the Unix socket or from
 * [admin] trusted_networks. A request with an Origin header (403) or a Host header that does not name
 * the listener (421) is refused whatever it carries. So: an endpoint that changes anything MUST NOT be
 * served on GET. A body (any method) is at most ADMIN_BODY_MAX (413 beyond) and, when not empty, must
 * be a JSON object (400 otherwise): on_request() gets it parsed as `body` (NULL when empty).
 * Limits: ADMIN_MAX_CONNECTIONS in all, ADMIN_MAX_PER_IP per client address, an idle timeout, and
 * ADMIN_REQUEST_TIMEOUT to send a whole request (the main loop's sweep, supervisor_admin_tick()).
 *
 * libmicrohttpd runs it in its own thread (and a second daemon, with its own thread, on the Unix
 * socket). Those threads read only the shared-memory role table (atomics, shown as the roles wrote
 * them) and facts fixed at start (the instance count and each instance's role and index come from the
 * supervisor's private copy, never from shared memory); anything that changes the node goes to the
 * main thread through supervisor_request(). The API is served by the supervisor, not by the scheduler,
 * so that it answers while any role is down or crash-looping: that is when an operator needs it.
 */
#include "supervisor/supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "common/proto_status.h"
#include "supervisor/supervisor_auth.h"
#include "supervisor/supervisor_logs.h"
#include "supervisor/supervisor_metrics.h"

#define ADMIN_BODY_MAX (1u << 20)
#define ADMIN_MAX_CONNECTIONS 256u
#define ADMIN_MAX_PER_IP 32u
#define ADMIN_IDLE_TIMEOUT_S 10u
#define ADMIN_REQUEST_TIMEOUT_NS CLOCK_SEC(10)
#define ADMIN_SWEEP_EVERY_NS CLOCK_MS(250)

/* one admin listener: the TCP one or the Unix socket (local) */
struct admin_ep {
    struct supervisor *s;
    bool local;
};

static struct admin_ep admin_tcp, admin_unix;

/* the state of one request between libmicrohttpd's calls */
struct admin_req {
    struct buf body;
    bool too_large;
};

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"ringmail admin\"");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* respond_doc - an encoded admin document (proto_status), newline-terminated */
static enum MHD_Result respond_doc(struct MHD_Connection *c, unsigned code, char *text)
{
    if (!text)
        panic("an admin document is not encodable (a string that is not UTF-8)");
    /* MHD frees with free(); jansson's default allocator is malloc */
    size_t n = strlen(text);
    char *body = xmalloc(n + 2);
    memcpy(body, text, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    free(text);
    return respond(c, code, "application/json", body);
}

static enum MHD_Result respond_reply(struct MHD_Connection *c, unsigned code, bool ok, const char *detail)
{
    struct proto_status_reply r = {.ok = ok, .detail = detail ? detail : ""};
    return respond_doc(c, code, proto_status_reply_encode(&r));
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    struct proto_status_reply r = {.ok = false, .error = msg};
    return respond_doc(c, code, proto_status_reply_encode(&r));
}

/* instance_doc - one role table slot as the status document shows it; last_exit goes to `exit_buf` */
static void instance_doc(struct supervisor *s, unsigned i, uint64_t now, struct proto_status_role *r,
                         char *exit_buf, size_t exit_len)
{
    struct proto_node_instance *in = &s->seg.inst[i];
    uint32_t state = atomic_load(&in->state);
    uint64_t started = atomic_load(&in->started_ns), hb = atomic_load(&in->heartbeat_ns);
    int32_t status = atomic_load(&in->last_status);

    *r = (struct proto_status_role){
        .role = s->inst[i].role,
        .index = s->inst[i].index,
        .instance = i,
        .pid = (uint64_t)atomic_load(&in->pid),
        .state = (enum proto_node_inst_state)state,
        .generation = atomic_load(&in->generation),
        .restarts = atomic_load(&in->restarts),
        .uptime_ms = -1,
        .heartbeat_age_ms = -1,
        .ring_rtt_us = atomic_load(&in->ping_rtt_ns) / 1000u,
        .last_exit_ago_ms = -1,
        .held_for_ms = -1,
        .reload_generation = atomic_load(&in->reload_seen),
    };
    bool running = state == PROTO_NODE_INST_STARTING || state == PROTO_NODE_INST_READY ||
                   state == PROTO_NODE_INST_DRAINING;
    if (running && started && now > started)
        r->uptime_ms = (int64_t)((now - started) / 1000000u);
    if (running && hb && now >= hb)
        r->heartbeat_age_ms = (int64_t)((now - hb) / 1000000u);
    if (status >= 0) {
        if (WIFEXITED(status))
            snprintf(exit_buf, exit_len, "exit %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(exit_buf, exit_len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(exit_buf, exit_len, "status 0x%x", (unsigned)status);
        r->last_exit = exit_buf;
        uint64_t at = atomic_load(&in->last_exit_ns);
        r->last_exit_ago_ms = (int64_t)(now > at ? (now - at) / 1000000u : 0);
    }
    if (state == PROTO_NODE_INST_HELD) {
        uint64_t until = atomic_load(&in->held_until_ns);
        r->held_for_ms = (int64_t)(until > now ? (until - now) / 1000000u : 0);
    }
    for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++)
        r->counters[k] = atomic_load_explicit(&in->counters[k], memory_order_relaxed);
}

/* page_source_key - a stable token for scripts; the human name goes beside it */
static const char *page_source_key(enum shm_page_source src)
{
    switch (src) {
    case SHM_PAGES_HUGETLB:
        return "hugetlb";
    case SHM_PAGES_THP:
        return "thp";
    case SHM_PAGES_SMALL:
        return "small";
    default:
        return "none";
    }
}

static char *status_doc(struct supervisor *s)
{
    uint64_t now = clock_mono_ns();
    struct shm_arena_stats as;
    unsigned n = s->seg.n_instances;
    struct proto_status_role roles[PROTO_NODE_MAX_INSTANCES];
    char exits[PROTO_NODE_MAX_INSTANCES][96];

    for (unsigned i = 0; i < n; i++)
        instance_doc(s, i, now, &roles[i], exits[i], sizeof(exits[i]));
    shm_arena_stats(s->seg.arena, &as);
    struct proto_status_node doc = {
        .node_id = s->cfg.node_id,
        .uptime_ms = (now - s->started_ns) / 1000000u,
        .config = s->config_path ? s->config_path : "(embedded default)",
        .data_dir = s->cfg.data_dir,
        .shm = {.bytes = s->seg.pages.size,
                .page_source = page_source_key(s->seg.pages.source),
                .page_source_name = shm_pages_source_name(s->seg.pages.source),
                .rings = s->seg.n_rings,
                .ring_slots = s->seg.ring_slots,
                .arena = {SHM_ARENA_BLOCK, as.blocks_total, as.blocks_used, as.runs}},
        .roles = roles,
        .n_roles = n,
        .stopping = s->stopping,
        .connection_steering = s->steering ? "bpf" : "none",
        .connection_steering_note = s->steering_note ? s->steering_note : "",
    };

    pthread_mutex_lock(&s->req_lock);
    doc.reload.generation = s->reload_gen;
    doc.reload.last_ok = s->reload_gen == 0 && !s->last_reload_detail ? -1 : s->last_reload_status == 0;
    doc.reload.last_detail = s->last_reload_detail;
    char *text = proto_status_node_encode(&doc);
    pthread_mutex_unlock(&s->req_lock);
    return text;
}

/* metrics_doc - GET /metrics (text) or /metrics.json, both from one collection: supervisor_metrics.c */
static char *metrics_doc(struct supervisor *s, bool json)
{
    struct sup_metrics m;
    supervisor_metrics_collect(s, &m);
    char *text = json ? supervisor_metrics_json(&m) : supervisor_metrics_text(&m);
    supervisor_metrics_fini(&m);
    return text;
}

bool supervisor_admin_arg_ok(const char *v)
{
    size_t n = strlen(v);
    if (n > 4096 || !utf8_valid(v, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= ' ' || v[i] == 0x7f)
            return false;
    return true;
}

/* shaping_args - the query arguments of POST /api/v1/shaping/set: domain, source, then options */
struct shaping_args {
    const char *names[64], *values[64];
    size_t n;
    bool overflow;
};

static enum MHD_Result on_shaping_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct shaping_args *a = cls;
    (void)kind;
    if (strcmp(key, "domain") == 0 || strcmp(key, "source") == 0)
        return MHD_YES;
    if (a->n == sizeof(a->names) / sizeof(a->names[0]) || !supervisor_admin_arg_ok(key) ||
        (value && (strlen(value) > 4096 || !utf8_valid(value, strlen(value))))) {
        a->overflow = true;
        return MHD_NO;
    }
    a->names[a->n] = key;
    a->values[a->n++] = value ? value : "";
    return MHD_YES;
}

/* shaping_request - GET /api/v1/shaping/resolve and POST /api/v1/shaping/set, answered by the main thread */
static enum MHD_Result shaping_request(struct supervisor *s, struct MHD_Connection *c, bool set)
{
    struct sup_request req = {.kind = set ? SUP_REQ_SHAPING_SET : SUP_REQ_SHAPING_RESOLVE};
    struct shaping_args a = {0};
    req.domain = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "domain");
    req.source = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "source");
    req.site = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "site");
    if (!req.domain || !req.domain[0] || strlen(req.domain) > 255)
        return respond_error(c, MHD_HTTP_BAD_REQUEST, "domain= is required (at most 255 bytes)");
    if (!supervisor_admin_arg_ok(req.domain) || (req.source && !supervisor_admin_arg_ok(req.source)) ||
        (req.site && !supervisor_admin_arg_ok(req.site)))
        return respond_error(c, MHD_HTTP_BAD_REQUEST, "domain, source and site are UTF-8 without spaces or controls");
    if (set) {
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, on_shaping_arg, &a);
        if (a.overflow || a.n == 0)
            return respond_error(c, MHD_HTTP_BAD_REQUEST,
                                 a.overflow ? "at most 64 options, each NAME=VALUE in UTF-8" : "no option to set");
        req.opt_names = a.names;
        req.opt_values = a.values;
        req.n_opts = a.n;
    }
    supervisor_request(s, &req);
    enum MHD_Result ret;
    if (!set && req.status == 0)
        ret = respond_doc(c, MHD_HTTP_OK, req.detail);
    else {
        ret = respond_reply(c, req.status == 0 ? MHD_HTTP_OK
                               : req.status == -ENOENT ? MHD_HTTP_SERVICE_UNAVAILABLE
                                                       : MHD_HTTP_UNPROCESSABLE_CONTENT,
                            req.status == 0, req.detail);
        free(req.detail);
    }
    return ret;
}

/* tsa_filter - keep the entries of `domain` and `site` (NULL: any) */
static size_t tsa_filter(struct proto_status_tsa_entry *v, size_t n, const char *domain, const char *site)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if ((!domain || strcasecmp(v[i].domain, domain) == 0) && (!site || strcasecmp(v[i].site, site) == 0))
            v[k++] = v[i];
    return k;
}

/* tsa_doc - the tsa page in its served form: the effects in force (status) or the firings (history) */
static enum MHD_Result tsa_doc(struct supervisor *s, struct MHD_Connection *c, bool history)
{
    size_t n = 0;
    uint64_t at = 0;
    char *doc = shm_segment_page_read(&s->seg, PROTO_NODE_STATUS_TSA, &n, &at);
    if (!doc)
        return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the scheduler has not published its TSA state yet");
    struct proto_status_tsa t;
    char *why = NULL;
    int rc = proto_status_tsa_decode(doc, n, false, &t, &why);
    free(doc);
    if (rc < 0) {
        log_warn("the scheduler's TSA page breaks its schema: %s", why);
        free(why);
        return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the scheduler's TSA page is not valid");
    }
    if (history) {
        t.n_active = 0;
    } else {
        t.n_history = 0;
        t.n_active = tsa_filter(t.active, t.n_active, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "domain"),
                                MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "site"));
    }
    uint64_t now = clock_real_ns();
    t.age_ms = (int64_t)(now > at ? (now - at) / 1000000u : 0);
    char *text = proto_status_tsa_encode(&t, true);
    proto_status_tsa_fini(&t);
    return respond_doc(c, MHD_HTTP_OK, text);
}

/* on_request - the endpoints, for a request that passed the access check; body: its JSON object or NULL */
static enum MHD_Result on_request(struct supervisor *s, struct MHD_Connection *c, const char *url, const char *method,
                                  json_t *body)
{
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;

    if (get && strcmp(url, "/api/v1/status") == 0)
        return respond_doc(c, MHD_HTTP_OK, status_doc(s));
    if (get && strcmp(url, "/api/v1/queues") == 0) {
        size_t n = 0;
        uint64_t at = 0;
        char *doc = shm_segment_status_read(&s->seg, &n, &at);
        if (!doc)
            return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the scheduler has not published its queues yet");
        struct proto_status_queues q;
        char *why = NULL;
        int rc = proto_status_queues_decode(doc, n, false, &q, &why);
        free(doc);
        if (rc < 0) {
            log_warn("the scheduler's status page breaks its schema: %s", why);
            free(why);
            return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the scheduler's status page is not JSON");
        }
        uint64_t now = clock_real_ns();
        q.age_ms = (int64_t)(now > at ? (now - at) / 1000000u : 0);
        char *text = proto_status_queues_encode(&q, true);
        proto_status_queues_fini(&q);
        return respond_doc(c, MHD_HTTP_OK, text);
    }
    if (get && strcmp(url, "/api/v1/logs") == 0)
        return supervisor_logs_request(s, c);
    enum MHD_Result ui_ret, trace_ret;
    if (supervisor_ui_request(c, url, get, &ui_ret)) /* the web console's files: supervisor_ui.c */
        return ui_ret;
    if (supervisor_trace_request(s, c, url, get, &trace_ret))
        return trace_ret;
    if (get && (strcmp(url, "/api/v1/tsa/status") == 0 || strcmp(url, "/api/v1/tsa/history") == 0))
        return tsa_doc(s, c, strcmp(url, "/api/v1/tsa/history") == 0);
    enum MHD_Result supp_ret; /* the suppression list: supervisor_supp.c */
    if (supervisor_supp_export(s, c, url, get, &supp_ret))
        return supp_ret;
    char *supp_body = NULL;
    const char *supp_type = NULL;
    unsigned supp_code = supervisor_supp_request(s, c, url, get, post, body, &supp_body, &supp_type);
    if (supp_code)
        return supp_type ? respond(c, supp_code, supp_type, supp_body) : respond_doc(c, supp_code, supp_body);
    char *ops_body = NULL; /* queue-summary, suspend, bounce, inspect: supervisor_ops.c */
    unsigned ops_code = (get || post) ? supervisor_ops_request(s, c, url, post, &ops_body) : 0;
    if (ops_code)
        return respond_doc(c, ops_code, ops_body);
    if (get && strcmp(url, "/metrics") == 0)
        return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4", metrics_doc(s, false));
    if (get && strcmp(url, "/metrics.json") == 0)
        return respond_doc(c, MHD_HTTP_OK, metrics_doc(s, true));
    if (get && strcmp(url, "/api/v1/shaping/resolve") == 0)
        return shaping_request(s, c, false);
    if (post && strcmp(url, "/api/v1/shaping/set") == 0)
        return shaping_request(s, c, true);
    if (post && strcmp(url, "/api/v1/reload") == 0) {
        struct sup_request req = {.kind = SUP_REQ_RELOAD};
        supervisor_request(s, &req);
        enum MHD_Result ret = respond_reply(c, req.status == 0 ? MHD_HTTP_OK : MHD_HTTP_UNPROCESSABLE_CONTENT,
                                            req.status == 0, req.detail);
        free(req.detail);
        return ret;
    }
    if (post && strncmp(url, "/api/v1/restart/", 16) == 0) {
        char role_s[32];
        const char *rest = url + 16, *slash = strchr(rest, '/');
        size_t rl = slash ? (size_t)(slash - rest) : strlen(rest);
        struct sup_request req = {.kind = SUP_REQ_RESTART, .index = -1};
        if (rl == 0 || rl >= sizeof(role_s))
            return respond_error(c, MHD_HTTP_NOT_FOUND, "unknown role");
        memcpy(role_s, rest, rl);
        role_s[rl] = '\0';
        if (!proto_node_role_parse(role_s, &req.role))
            return respond_error(c, MHD_HTTP_NOT_FOUND, "unknown role (spool, scheduler, ingress, egress)");
        if (slash) {
            char *end;
            long idx = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end || idx < 0 || idx >= PROTO_NODE_MAX_WORKERS)
                return respond_error(c, MHD_HTTP_NOT_FOUND, "bad instance index");
            req.index = (int)idx;
        }
        supervisor_request(s, &req);
        unsigned code =
            req.status == 0 ? MHD_HTTP_OK : (req.status == -ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_CONFLICT);
        enum MHD_Result ret = respond_reply(c, code, req.status == 0, req.detail);
        free(req.detail);
        return ret;
    }
    if (!get && !post)
        return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    return respond_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

/* admin_access - libmicrohttpd's handler: the access check and the body, then on_request() */
static enum MHD_Result admin_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct admin_ep *ep = cls;
    struct supervisor *s = ep->s;
    struct admin_req *rq = *con_cls;

    (void)version;
    if (!rq) {
        /* the first call has the headers only: check them before reading any body */
        unsigned code;
        const char *why;
        bool mutating = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
        *con_cls = rq = xcalloc(1, sizeof(*rq));
        /* the console's static files hold no node data: no token to fetch them (a browser cannot send one) */
        bool open = ep->local || (!mutating && supervisor_ui_is_ui(url));
        if (!supervisor_auth_check(s, c, open, mutating, &code, &why))
            return respond_error(c, code, why);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > ADMIN_BODY_MAX)
            return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than 1 MiB");
        if (mutating)
            supervisor_auth_audit(s, c, ep->local, method, url);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->too_large && rq->body.len + *upload_data_size <= ADMIN_BODY_MAX)
            buf_append(&rq->body, upload_data, *upload_data_size);
        else
            rq->too_large = true; /* a chunked body: read to its end (bounded by the request timeout), then 413 */
        *upload_data_size = 0;
        return MHD_YES;
    }
    supervisor_auth_conn_busy(s, c, false); /* read whole: a long answer (a stream) is not a slow client */
    if (rq->too_large)
        return respond_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than 1 MiB");
    json_t *body = NULL;
    if (rq->body.len) {
        json_error_t jerr;
        body = json_loadb((const char *)rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!body || !json_is_object(body)) {
            char msg[256];
            if (body)
                snprintf(msg, sizeof(msg), "the request body is not a JSON object");
            else
                snprintf(msg, sizeof(msg), "the request body is not JSON: line %d column %d: %s", jerr.line,
                         jerr.column, jerr.text);
            json_decref(body);
            return respond_error(c, MHD_HTTP_BAD_REQUEST, msg);
        }
    }
    enum MHD_Result ret = on_request(s, c, url, method, body);
    json_decref(body);
    return ret;
}

static void admin_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct admin_req *rq = *con_cls;
    (void)toe;
    if (rq) {
        buf_fini(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
    supervisor_auth_conn_busy(((struct admin_ep *)cls)->s, c, true); /* keep-alive: the next request's clock */
}

/* admin_daemon - one libmicrohttpd daemon with the limits; a listening socket of ours, or the address */
static struct MHD_Daemon *admin_daemon(struct admin_ep *ep, int listen_fd, struct sockaddr_storage *ss)
{
    /* suspend/resume: a tail-log stream (supervisor_logs.c) or a trace stream (supervisor_trace.c) waits
     * off the event loop for records or events */
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (listen_fd >= 0)
        return MHD_start_daemon(flags, 0, NULL, NULL, &admin_access, ep, MHD_OPTION_LISTEN_SOCKET, listen_fd,
                                MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
                                ADMIN_MAX_CONNECTIONS, MHD_OPTION_NOTIFY_COMPLETED, &admin_completed, ep,
                                MHD_OPTION_NOTIFY_CONNECTION, &supervisor_auth_conn_notify, ep->s, MHD_OPTION_END);
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    uint16_t port = ntohs(((struct sockaddr_in *)ss)->sin_port); /* same offset in sockaddr_in6 */
    return MHD_start_daemon(flags, port, NULL, NULL, &admin_access, ep, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
                            MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
                            ADMIN_MAX_CONNECTIONS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, ADMIN_MAX_PER_IP,
                            MHD_OPTION_NOTIFY_COMPLETED, &admin_completed, ep, MHD_OPTION_NOTIFY_CONNECTION,
                            &supervisor_auth_conn_notify, ep->s, MHD_OPTION_END);
}

int supervisor_admin_start(struct supervisor *s, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char *why = NULL;
    int rc;

    rc = hostport_resolve(s->cfg.admin_listen, 0, AI_NUMERICHOST, NULL, &ss, &sslen, &why);
    if (rc < 0) {
        *err = xasprintf("[admin] listen %s%s", why, rc == -EADDRNOTAVAIL ? " (use a numeric address)" : "");
        free(why);
        return rc;
    }
    if ((rc = supervisor_auth_init(s, err)) < 0)
        return rc;
    supervisor_ui_init();
    supervisor_logs_start(s);
    if ((rc = supervisor_trace_start(s, err)) < 0)
        return rc;
    admin_tcp = (struct admin_ep){.s = s};
    admin_unix = (struct admin_ep){.s = s, .local = true};
    s->admin = admin_daemon(&admin_tcp, -1, &ss);
    if (!s->admin) {
        *err = xasprintf("[admin] cannot listen on %s (address in use?)", s->cfg.admin_listen);
        return -EADDRINUSE;
    }
    /* the Unix socket once the TCP address is ours: a second node on the same data directory stops
     * above, before it replaces the first one's socket */
    if ((rc = supervisor_auth_unix_listen(s, err)) < 0)
        return rc;
    if (s->auth.unix_fd >= 0) {
        s->admin_unix = admin_daemon(&admin_unix, s->auth.unix_fd, NULL);
        if (!s->admin_unix) {
            *err = xasprintf("[admin] cannot serve the Unix socket %s", s->auth.socket_path);
            return -EIO;
        }
        s->auth.unix_fd = -1; /* the daemon closes it */
    }
    log_info("admin API on http://%s/%s%s", s->cfg.admin_listen, s->auth.socket_path ? " and " : "",
             s->auth.socket_path ? s->auth.socket_path : "");
    return 0;
}

void supervisor_admin_tick(struct supervisor *s, uint64_t now)
{
    if (now < s->auth.next_sweep_ns)
        return;
    s->auth.next_sweep_ns = now + ADMIN_SWEEP_EVERY_NS;
    unsigned n = supervisor_auth_sweep(s, now, ADMIN_REQUEST_TIMEOUT_NS);
    if (n)
        log_info("admin API: closed %u connection(s) that did not send a whole request within %llu s", n,
                 (unsigned long long)(ADMIN_REQUEST_TIMEOUT_NS / CLOCK_SEC(1)));
}

void supervisor_admin_stop(struct supervisor *s)
{
    supervisor_logs_shutdown(s); /* a suspended tail-log stream is resumed (and ended) before its daemon stops */
    supervisor_trace_stop(s); /* its streams end before the daemons stop */
    if (s->admin)
        MHD_stop_daemon(s->admin);
    if (s->admin_unix)
        MHD_stop_daemon(s->admin_unix);
    s->admin = s->admin_unix = NULL;
    supervisor_logs_stop(s);
    supervisor_auth_fini(s);
}
