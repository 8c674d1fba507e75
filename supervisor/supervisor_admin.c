/*
 * supervisor_admin - the admin HTTP API (JSON) that ringctl talks to
 *
 *   GET  /api/v1/status                  node, shared memory and every role instance
 *   GET  /api/v1/queues                  the scheduler's queues and egress paths (its status page)
 *   POST /api/v1/restart/ROLE[/INDEX]    restart one role's workers without touching the others
 *   POST /api/v1/reload                  validate and reload the configuration (as SIGHUP)
 *   GET  /metrics                        Prometheus text from the shared-memory counters
 *
 * libmicrohttpd runs it in its own thread. That thread reads only the shared-memory role table
 * (atomics) and facts fixed at start; anything that changes the node goes to the main thread
 * through supervisor_request(). The API is served by the supervisor, not by the scheduler, so
 * that it answers while any role is down or crash-looping: that is when an operator needs it.
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
#include <sys/socket.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

static int post_marker;

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned code, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text)
        panic("json_dumps failed");
    /* MHD frees with free(); jansson's default allocator is malloc */
    size_t n = strlen(text);
    char *body = xmalloc(n + 2);
    memcpy(body, text, n);
    body[n] = '\n';
    body[n + 1] = '\0';
    free(text);
    return respond(c, code, "application/json", body);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    return respond_json(c, code, json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

static json_t *instance_json(struct supervisor *s, unsigned i, uint64_t now)
{
    struct proto_node_instance *in = &s->seg.inst[i];
    uint32_t state = atomic_load(&in->state);
    uint64_t started = atomic_load(&in->started_ns), hb = atomic_load(&in->heartbeat_ns);
    int32_t status = atomic_load(&in->last_status);
    json_t *j = json_object();
    json_t *ctr = json_object();

    json_object_set_new(j, "role", json_string(proto_node_role_name((enum proto_node_role)in->role)));
    json_object_set_new(j, "index", json_integer(in->index));
    json_object_set_new(j, "instance", json_integer(i));
    json_object_set_new(j, "pid", json_integer(atomic_load(&in->pid)));
    json_object_set_new(j, "state", json_string(proto_node_inst_state_name((enum proto_node_inst_state)state)));
    json_object_set_new(j, "generation", json_integer(atomic_load(&in->generation)));
    json_object_set_new(j, "restarts", json_integer(atomic_load(&in->restarts)));
    bool running = state == PROTO_NODE_INST_STARTING || state == PROTO_NODE_INST_READY || state == PROTO_NODE_INST_DRAINING;
    json_object_set_new(j, "uptime_ms", running && started && now > started ? json_integer((json_int_t)((now - started) / 1000000u)) : json_null());
    json_object_set_new(j, "heartbeat_age_ms",
                        running && hb && now >= hb ? json_integer((json_int_t)((now - hb) / 1000000u)) : json_null());
    json_object_set_new(j, "ring_rtt_us", json_integer((json_int_t)(atomic_load(&in->ping_rtt_ns) / 1000u)));
    if (status >= 0) {
        char buf[96];
        if (WIFEXITED(status))
            snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(buf, sizeof(buf), "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(buf, sizeof(buf), "status 0x%x", (unsigned)status);
        json_object_set_new(j, "last_exit", json_string(buf));
        uint64_t at = atomic_load(&in->last_exit_ns);
        json_object_set_new(j, "last_exit_ago_ms", json_integer((json_int_t)(now > at ? (now - at) / 1000000u : 0)));
    } else {
        json_object_set_new(j, "last_exit", json_null());
    }
    if (state == PROTO_NODE_INST_HELD) {
        uint64_t until = atomic_load(&in->held_until_ns);
        json_object_set_new(j, "held_for_ms", json_integer((json_int_t)(until > now ? (until - now) / 1000000u : 0)));
    }
    json_object_set_new(j, "reload_generation", json_integer(atomic_load(&in->reload_seen)));
    for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++)
        json_object_set_new(ctr, proto_node_counter_name((enum proto_node_counter)k),
                            json_integer((json_int_t)atomic_load_explicit(&in->counters[k], memory_order_relaxed)));
    json_object_set_new(j, "counters", ctr);
    return j;
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

static json_t *status_json(struct supervisor *s)
{
    uint64_t now = clock_mono_ns();
    struct shm_arena_stats as;
    json_t *roles = json_array();

    for (unsigned i = 0; i < s->seg.hdr->n_instances; i++)
        json_array_append_new(roles, instance_json(s, i, now));
    shm_arena_stats(s->seg.arena, &as);

    pthread_mutex_lock(&s->req_lock);
    json_t *reload = json_pack("{s:i, s:o, s:o}", "generation", (json_int_t)s->reload_gen, "last_ok",
                               s->reload_gen == 0 && !s->last_reload_detail ? json_null() : json_boolean(s->last_reload_status == 0),
                               "last_detail", s->last_reload_detail ? json_string(s->last_reload_detail) : json_null());
    pthread_mutex_unlock(&s->req_lock);

    return json_pack("{s:b, s:s, s:I, s:s, s:s, s:{s:I, s:s, s:s, s:i, s:i, s:{s:I, s:I, s:I, s:I}}, s:o, s:o, s:b, s:s, s:s}",
                     "ok", 1, "node_id", s->cfg.node_id, "uptime_ms", (json_int_t)((now - s->started_ns) / 1000000u),
                     "config", s->config_path ? s->config_path : "(embedded default)", "data_dir", s->cfg.data_dir,
                     "shm", "bytes", (json_int_t)s->seg.pages.size, "page_source",
                     page_source_key(s->seg.pages.source), "page_source_name",
                     shm_page_source_name(s->seg.pages.source), "rings", (int)s->seg.hdr->n_rings, "ring_slots",
                     (int)s->seg.hdr->ring_slots, "arena", "block_bytes", (json_int_t)SHM_ARENA_BLOCK, "blocks_total",
                     (json_int_t)as.blocks_total, "blocks_used", (json_int_t)as.blocks_used, "runs",
                     (json_int_t)as.runs, "reload", reload, "roles", roles, "stopping", s->stopping,
                     "connection_steering", s->steering ? "bpf" : "none", "connection_steering_note",
                     s->steering_note ? s->steering_note : "");
}

static char *metrics_text(struct supervisor *s)
{
    size_t cap = 65536, off = 0;
    char *buf = xmalloc(cap);
    struct shm_arena_stats as;

#define EMIT(...)                                                                                              \
    do {                                                                                                       \
        int n_ = snprintf(buf + off, cap - off, __VA_ARGS__);                                                  \
        if (n_ < 0)                                                                                            \
            panic("snprintf");                                                                                 \
        while ((size_t)n_ >= cap - off) {                                                                      \
            cap *= 2;                                                                                          \
            buf = xrealloc(buf, cap);                                                                          \
            n_ = snprintf(buf + off, cap - off, __VA_ARGS__);                                                  \
        }                                                                                                      \
        off += (size_t)n_;                                                                                     \
    } while (0)

    EMIT("# HELP ringmail_role_up 1 when the role instance is ready.\n# TYPE ringmail_role_up gauge\n");
    for (unsigned i = 0; i < s->seg.hdr->n_instances; i++) {
        struct proto_node_instance *in = &s->seg.inst[i];
        EMIT("ringmail_role_up{role=\"%s\",index=\"%u\"} %d\n", proto_node_role_name((enum proto_node_role)in->role), in->index,
             atomic_load(&in->state) == PROTO_NODE_INST_READY);
    }
    EMIT("# HELP ringmail_role_restarts_total Restarts of the role instance since the node started.\n"
         "# TYPE ringmail_role_restarts_total counter\n");
    for (unsigned i = 0; i < s->seg.hdr->n_instances; i++) {
        struct proto_node_instance *in = &s->seg.inst[i];
        EMIT("ringmail_role_restarts_total{role=\"%s\",index=\"%u\"} %u\n", proto_node_role_name((enum proto_node_role)in->role),
             in->index, atomic_load(&in->restarts));
    }
    for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++) {
        const char *name = proto_node_counter_name((enum proto_node_counter)k);
        bool gauge = proto_node_counter_is_gauge((enum proto_node_counter)k);
        const char *suffix = gauge ? "" : "_total";
        EMIT("# HELP ringmail_%s%s Per role instance: %s.\n# TYPE ringmail_%s%s %s\n", name, suffix, name, name, suffix,
             gauge ? "gauge" : "counter");
        for (unsigned i = 0; i < s->seg.hdr->n_instances; i++) {
            struct proto_node_instance *in = &s->seg.inst[i];
            EMIT("ringmail_%s%s{role=\"%s\",index=\"%u\"} %llu\n", name, suffix, proto_node_role_name((enum proto_node_role)in->role),
                 in->index, (unsigned long long)atomic_load_explicit(&in->counters[k], memory_order_relaxed));
        }
    }
    shm_arena_stats(s->seg.arena, &as);
    EMIT("# HELP ringmail_arena_blocks_used Body arena blocks in use.\n# TYPE ringmail_arena_blocks_used gauge\n"
         "ringmail_arena_blocks_used %llu\n",
         (unsigned long long)as.blocks_used);
    EMIT("# HELP ringmail_arena_blocks Body arena blocks in all.\n# TYPE ringmail_arena_blocks gauge\n"
         "ringmail_arena_blocks %llu\n",
         (unsigned long long)as.blocks_total);
    EMIT("# HELP ringmail_shm_bytes Size of the shared memory segment.\n# TYPE ringmail_shm_bytes gauge\n"
         "ringmail_shm_bytes %llu\n",
         (unsigned long long)s->seg.pages.size);
#undef EMIT
    return buf;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct supervisor *s = cls;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    if (post) {
        /* libmicrohttpd calls a POST handler first with headers only, then once per body chunk */
        if (*con_cls == NULL) {
            *con_cls = &post_marker;
            return MHD_YES;
        }
        if (*upload_data_size) {
            *upload_data_size = 0; /* no endpoint takes a body; ignore it */
            return MHD_YES;
        }
    }
    if (get && strcmp(url, "/api/v1/status") == 0)
        return respond_json(c, MHD_HTTP_OK, status_json(s));
    if (get && strcmp(url, "/api/v1/queues") == 0) {
        size_t n = 0;
        uint64_t at = 0;
        char *doc = shm_status_read(&s->seg, &n, &at);
        if (!doc)
            return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the scheduler has not published its queues yet");
        json_error_t jerr;
        json_t *j = json_loadb(doc, n, 0, &jerr);
        free(doc);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "the scheduler's status page is not JSON");
        }
        uint64_t now = clock_real_ns();
        json_object_set_new(j, "age_ms", json_integer((json_int_t)(now > at ? (now - at) / 1000000u : 0)));
        return respond_json(c, MHD_HTTP_OK, j);
    }
    if (get && strcmp(url, "/metrics") == 0)
        return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4", metrics_text(s));
    if (post && strcmp(url, "/api/v1/reload") == 0) {
        struct sup_request req = {.kind = SUP_REQ_RELOAD};
        supervisor_request(s, &req);
        json_t *j = json_pack("{s:b, s:s}", "ok", req.status == 0, "detail", req.detail ? req.detail : "");
        free(req.detail);
        return respond_json(c, req.status == 0 ? MHD_HTTP_OK : MHD_HTTP_UNPROCESSABLE_CONTENT, j);
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
        json_t *j = json_pack("{s:b, s:s}", "ok", req.status == 0, "detail", req.detail ? req.detail : "");
        free(req.detail);
        return respond_json(c, req.status == 0 ? MHD_HTTP_OK : (req.status == -ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_CONFLICT), j);
    }
    if (!get && !post)
        return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    return respond_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

int supervisor_admin_start(struct supervisor *s, char **err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char host[256], port_s[8];
    unsigned port;
    int rc;

    if (!supervisor_listen_split(s->cfg.admin_listen, host, sizeof(host), &port)) {
        *err = xasprintf("[admin] listen %s: not host:port", s->cfg.admin_listen);
        return -EINVAL;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    if ((rc = getaddrinfo(host, port_s, &hints, &res)) != 0) {
        *err = xasprintf("[admin] listen %s: %s (use a numeric address)", s->cfg.admin_listen, gai_strerror(rc));
        return -EINVAL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->admin = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, &on_request, s, MHD_OPTION_SOCK_ADDR,
                                res->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    freeaddrinfo(res);
    if (!s->admin) {
        *err = xasprintf("[admin] cannot listen on %s (address in use?)", s->cfg.admin_listen);
        return -EADDRINUSE;
    }
    log_info("admin API on http://%s/", s->cfg.admin_listen);
    return 0;
}

void supervisor_admin_stop(struct supervisor *s)
{
    if (s->admin)
        MHD_stop_daemon(s->admin);
    s->admin = NULL;
}
