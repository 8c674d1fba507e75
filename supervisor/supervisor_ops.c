/*
 * supervisor_ops - the admin API's live-operations endpoints, answered by the scheduler through the
 * command channel (common/proto_admin.h)
 *
 *   GET  /api/v1/queue-summary[?by=site|provider|source&domain=D&limit=N&by_volume=1]
 *   POST /api/v1/suspend?domain=D[&tenant=T][&campaign=C]&reason=R[&duration=2h]
 *   GET  /api/v1/suspend                     the operator's suspensions in force
 *   POST /api/v1/suspend/cancel?id=ID
 *   POST /api/v1/suspend-ready-q?name=SOURCE->SITE&reason=R[&duration=D]   (and GET, /cancel)
 *   POST /api/v1/bounce?(domain=D[&tenant=T][&campaign=C] | tenant=T | campaign=C | queue=Q | everything=1)
 *        &reason=R[&duration=D]           (and GET, /cancel)
 *   GET  /api/v1/inspect-sched-q?name=Q,  GET /api/v1/inspect-ready-q?name=SOURCE->SITE
 *   POST /api/v1/rebind?(domain=D[&tenant=T][&campaign=C] | tenant=T | campaign=C | queue=Q | everything=1)
 *        &(to_queue=Q | to_route=HOSTS)[&reason=R]
 *   POST /api/v1/abort-ready-q-conn?name=SOURCE->SITE[&reason=R]
 *   GET  /api/v1/warmup/status              warm-up ramps: each warming source's step per provider
 *   POST /api/v1/log-level?level=L[&role=R]  (answered here: a word per role in the segment's header)
 *
 * The spool has a channel of its own (the SPOOL page pair, same documents), used by supervisor_inspect.c.
 * Runs in the admin thread. One request at a time (ops_lock): the request goes into its page with an id
 * and a deadline, and the thread polls the reply page until a reply with that id is there, or answers
 * 504 at the deadline. The reply page is written by the scheduler: it is copied, and the copy decoded
 * and checked (proto_admin_reply_decode) before anything is taken from it; the HTTP status served is the
 * reply's, bounded to 200..599 by the decoder. The result goes to the client as the scheduler made it.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "cfg/cfg_value.h"
#include "common/proto_admin.h"
#include "common/proto_status.h"
#include "shm/shm_bell.h"
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_auth.h"

#define OPS_TIMEOUT_MS 5000
#define OPS_POLL_NS (2 * 1000 * 1000)

#define error_body supervisor_ops_error

static pthread_mutex_t ops_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ops_next_id;

static const struct {
    const char *url;
    bool post;
    enum proto_admin_op op;
} endpoints[] = {
    {"/api/v1/queue-summary", false, PROTO_ADMIN_QUEUE_SUMMARY},
    {"/api/v1/suspend", true, PROTO_ADMIN_SUSPEND},
    {"/api/v1/suspend", false, PROTO_ADMIN_SUSPEND_LIST},
    {"/api/v1/suspend/cancel", true, PROTO_ADMIN_SUSPEND_CANCEL},
    {"/api/v1/suspend-ready-q", true, PROTO_ADMIN_SUSPEND_PATH},
    {"/api/v1/suspend-ready-q", false, PROTO_ADMIN_SUSPEND_PATH_LIST},
    {"/api/v1/suspend-ready-q/cancel", true, PROTO_ADMIN_SUSPEND_PATH_CANCEL},
    {"/api/v1/bounce", true, PROTO_ADMIN_BOUNCE},
    {"/api/v1/bounce", false, PROTO_ADMIN_BOUNCE_LIST},
    {"/api/v1/bounce/cancel", true, PROTO_ADMIN_BOUNCE_CANCEL},
    {"/api/v1/inspect-sched-q", false, PROTO_ADMIN_INSPECT_QUEUE},
    {"/api/v1/inspect-ready-q", false, PROTO_ADMIN_INSPECT_PATH},
    {"/api/v1/rebind", true, PROTO_ADMIN_REBIND},
    {"/api/v1/abort-ready-q-conn", true, PROTO_ADMIN_ABORT_PATH_CONN},
    {"/api/v1/warmup/status", false, PROTO_ADMIN_WARMUP_STATUS},
};

unsigned supervisor_ops_error(unsigned code, const char *msg, char **body)
{
    struct proto_status_reply r = {.ok = false, .error = msg};
    *body = proto_status_reply_encode(&r);
    return code;
}

static const char *arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && v[0] ? v : NULL;
}

static bool flag(struct MHD_Connection *c, const char *key)
{
    const char *v = arg(c, key);
    return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

/* number - a whole number argument; false when present and not one */
static bool number(struct MHD_Connection *c, const char *key, uint64_t *out)
{
    const char *v = arg(c, key);
    char *end;
    if (!v)
        return true;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno || v[0] == '-' || n > INT64_MAX)
        return false;
    *out = n;
    return true;
}

/* who_of - the client as the records name it: its address (or Unix socket credentials) and, for a mutating
 * call (the token was checked), the token id */
void supervisor_ops_who(struct supervisor *s, struct MHD_Connection *c, bool post, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    bool inet = ci && ci->client_addr && (ci->client_addr->sa_family == AF_INET || ci->client_addr->sa_family == AF_INET6);
    char peer[128];
    supervisor_auth_peer_text(c, !inet, peer, sizeof(peer));
    snprintf(buf, len, "api %s%s%s", peer, post && s->auth.token_id[0] ? " token " : "", post ? s->auth.token_id : "");
}

/* supervisor_ops_ask - (contract in supervisor.h) */
unsigned supervisor_ops_ask(struct supervisor *s, enum proto_node_role role, struct proto_admin_req *req,
                            json_t **result, char **body)
{
    bool spool = role == PROTO_NODE_ROLE_SPOOL;
    const char *name = spool ? "spool" : "scheduler";
    unsigned req_page = spool ? PROTO_NODE_STATUS_SPOOL_REQ : PROTO_NODE_STATUS_ADMIN_REQ;
    unsigned reply_page = spool ? PROTO_NODE_STATUS_SPOOL_REPLY : PROTO_NODE_STATUS_ADMIN_REPLY;
    unsigned idx = (unsigned)shm_segment_instance_of(&s->seg, role, 0);
    struct proto_node_instance *inst = &s->seg.inst[idx];
    char msg[160];
    *result = NULL;
    *body = NULL;
    if (atomic_load(&inst->state) != PROTO_NODE_INST_READY) {
        snprintf(msg, sizeof(msg), "the %s is not running: see `ringctl status`", name);
        return error_body(MHD_HTTP_SERVICE_UNAVAILABLE, msg, body);
    }
    pthread_mutex_lock(&ops_lock);
    req->id = ++ops_next_id;
    req->deadline_ms = clock_real_ns() / 1000000u + OPS_TIMEOUT_MS;
    char *text = proto_admin_req_encode(req);
    if (!text) {
        pthread_mutex_unlock(&ops_lock);
        return error_body(MHD_HTTP_BAD_REQUEST, "arguments are UTF-8 text without control characters, "
                                                "at most 1024 bytes each", body);
    }
    int rc = shm_segment_page_publish(&s->seg, req_page, text, strlen(text));
    free(text);
    if (rc == 0)
        (void)shm_bell_ring(shm_segment_bell(inst), s->bell_fd[idx]); /* else its next tick (200 ms) takes it */
    unsigned code = 0;
    uint64_t seen = 0;
    while (rc == 0 && code == 0) {
        uint64_t seq = shm_segment_page_seq(&s->seg, reply_page);
        if (seq != seen && !(seq & 1)) {
            size_t n = 0;
            char *page = shm_segment_page_read(&s->seg, reply_page, &n, NULL);
            struct proto_admin_reply r;
            char *why = NULL;
            int drc = page ? proto_admin_reply_decode(page, n, req->op, req->id, &r, &why) : -EAGAIN;
            if (drc == 0) {
                code = r.status;
                if (r.status == 200)
                    *result = json_incref(r.result);
                else
                    error_body(r.status, r.error, body);
                proto_admin_reply_fini(&r);
            } else if (drc == -ESTALE) {
                seen = seq; /* an earlier request's reply: ours comes next */
            } else if (page) {
                seen = seq;
                log_warn("admin: the %s's reply breaks its schema: %s", name, why);
                snprintf(msg, sizeof(msg), "the %s's reply is not valid", name);
                code = error_body(MHD_HTTP_BAD_GATEWAY, msg, body);
            }
            free(why);
            free(page);
        }
        if (code == 0 && clock_real_ns() / 1000000u >= req->deadline_ms) {
            snprintf(msg, sizeof(msg), "the %s did not answer within 5 s (busy or restarting: see `ringctl status`)",
                     name);
            code = error_body(MHD_HTTP_GATEWAY_TIMEOUT, msg, body);
        }
        if (code == 0)
            nanosleep(&(struct timespec){0, OPS_POLL_NS}, NULL);
    }
    pthread_mutex_unlock(&ops_lock);
    if (rc < 0)
        return error_body(MHD_HTTP_INTERNAL_SERVER_ERROR, "the request does not fit the command channel", body);
    if (!*result && !*body)
        return error_body(MHD_HTTP_INTERNAL_SERVER_ERROR, "the answer is not encodable", body);
    return code;
}

/* ask - the request through the scheduler's channel; the HTTP code and *body */
static unsigned ask(struct supervisor *s, struct proto_admin_req *req, char **body)
{
    json_t *result = NULL;
    unsigned code = supervisor_ops_ask(s, PROTO_NODE_ROLE_SCHEDULER, req, &result, body);
    if (result) {
        *body = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(result);
        if (!*body)
            return error_body(MHD_HTTP_INTERNAL_SERVER_ERROR, "the answer is not encodable", body);
    }
    return code;
}

/* log_level - POST /api/v1/log-level?level=L[&role=R]: every role's word in the segment (or one role's), and
 * the supervisor's own level (no role, or role=supervisor); level "config" goes back to the configured one */
static unsigned log_level(struct supervisor *s, struct MHD_Connection *c, bool post, char **body)
{
    const char *level = arg(c, "level"), *role = arg(c, "role");
    enum log_level lv = LOG_LEVEL_INFO;
    enum proto_node_role r = PROTO_NODE_ROLE__MAX;
    bool config = level && strcmp(level, "config") == 0, sup = !role || strcmp(role, "supervisor") == 0;
    if (!post)
        return error_body(MHD_HTTP_METHOD_NOT_ALLOWED, "use POST for this endpoint", body);
    if (!level || (!config && !log_level_parse(level, &lv)))
        return error_body(MHD_HTTP_BAD_REQUEST, "level= is debug, info, warn, error or config", body);
    if (role && !sup && !proto_node_role_parse(role, &r))
        return error_body(MHD_HTTP_BAD_REQUEST, "role= is spool, scheduler, ingress, egress or supervisor", body);
    for (unsigned i = 0; i < PROTO_NODE_ROLE__MAX; i++)
        if (!role || i == (unsigned)r)
            atomic_store(&s->seg.hdr->log_level[i], config ? 0u : (uint32_t)lv + 1u);
    if (sup)
        log_set_level(config ? s->cfg.log_level : lv);
    char who[192];
    supervisor_ops_who(s, c, true, who, sizeof(who));
    log_info("admin: log level %s for %s by %s", level, role ? role : "every role", who);
    struct proto_status_reply rep = {.ok = true};
    char *detail = xasprintf("log level %s for %s (within a second; a reload keeps it)", level,
                             role ? role : "every role");
    rep.detail = detail;
    *body = proto_status_reply_encode(&rep);
    free(detail);
    return MHD_HTTP_OK;
}

unsigned supervisor_ops_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool post,
                                char **body)
{
    size_t i = 0, n = sizeof(endpoints) / sizeof(endpoints[0]);
    bool url_known = false;
    *body = NULL;
    if (strcmp(url, "/api/v1/log-level") == 0)
        return log_level(s, c, post, body);
    char who[192];
    supervisor_ops_who(s, c, post, who, sizeof(who));
    unsigned code = supervisor_inspect_request(s, c, url, post, who, body); /* supervisor_inspect.c */
    if (code)
        return code;
    for (; i < n && !(strcmp(endpoints[i].url, url) == 0 && endpoints[i].post == post); i++)
        url_known |= strcmp(endpoints[i].url, url) == 0;
    for (size_t k = i; k < n; k++)
        url_known |= strcmp(endpoints[k].url, url) == 0;
    if (i == n)
        return url_known ? error_body(MHD_HTTP_METHOD_NOT_ALLOWED,
                                      post ? "use GET for this endpoint" : "use POST for this endpoint", body)
                         : 0;
    struct proto_admin_req req = {
        .op = endpoints[i].op,
        .who = who,
        .args = {.domain = arg(c, "domain"),
                 .tenant = arg(c, "tenant"),
                 .campaign = arg(c, "campaign"),
                 .queue = arg(c, "queue"),
                 .name = arg(c, "name"),
                 .reason = arg(c, "reason"),
                 .by = arg(c, "by"),
                 .by_volume = flag(c, "by_volume"),
                 .everything = flag(c, "everything"),
                 .to_queue = arg(c, "to_queue"),
                 .to_route = arg(c, "to_route")},
    };
    const char *dur = arg(c, "duration");
    if (dur && (!cfg_value_parse_duration(dur, &req.args.duration_ms) || req.args.duration_ms == 0))
        return error_body(MHD_HTTP_BAD_REQUEST, "duration is a number and a unit: 90s, 30m, 2h, 1d", body);
    if (!number(c, "limit", &req.args.limit) || !number(c, "id", &req.args.target))
        return error_body(MHD_HTTP_BAD_REQUEST, "limit and id are whole numbers", body);
    if (req.args.by && strcmp(req.args.by, "site") && strcmp(req.args.by, "provider") && strcmp(req.args.by, "source"))
        return error_body(MHD_HTTP_BAD_REQUEST, "by is site, provider or source", body);
    bool cancel = req.op == PROTO_ADMIN_SUSPEND_CANCEL || req.op == PROTO_ADMIN_SUSPEND_PATH_CANCEL ||
                  req.op == PROTO_ADMIN_BOUNCE_CANCEL;
    if (cancel && !req.args.target)
        return error_body(MHD_HTTP_BAD_REQUEST, "id= is required (the list command shows the ids)", body);
    if ((req.op == PROTO_ADMIN_INSPECT_QUEUE || req.op == PROTO_ADMIN_INSPECT_PATH ||
         req.op == PROTO_ADMIN_ABORT_PATH_CONN) && !req.args.name)
        return error_body(MHD_HTTP_BAD_REQUEST, "name= is required", body);
    code = ask(s, &req, body);
    if (post)
        log_info("admin: %s by %s: HTTP %u", proto_admin_op_name(req.op), who, code);
    return code;
}
