/*
 * ingress_http - the HTTP injection API: POST /api/inject/v1 (KumoMTA's shape), docs/http-injection.md
 *
 * Threads. Each [[http_listener]] socket (opened by the supervisor, shared by the ingress workers) runs
 * one libmicrohttpd daemon with its own thread in every worker. That thread checks the token, reads the
 * body (at most the listener's max_request_size: 413), decodes it and builds the messages
 * (ingress_mime.c), then hands the job to the worker's io_uring loop through a locked queue and an
 * eventfd, and suspends the connection. The loop runs the policy hook (http_message_generated), stores
 * every message exactly as the SMTP path does (ingress_xfer_store: one arena run,
 * MSG_INGRESS_MESSAGE_STORE) and, when the spool's MSG_SPOOL_MESSAGE_STORED has come back for every
 * message of the job (or the spool timeout passed), resumes the connection; the HTTP thread then
 * answers. So a 200 is sent only after the fsync that covers its messages, like the SMTP 250, and
 * nothing here ever blocks the SMTP loop.
 * Ownership: a job belongs to the HTTP thread until it is queued, to the loop from then until it
 * resumes the connection, then to the HTTP thread again, which frees it with the request.
 * Hostile input: every refusal is a JSON {"error": ...} with 400, 401, 404, 405 or 413; per-recipient
 * problems are that recipient's error in a 200 answer.
 */
#include "ingress/ingress.h"
#include "ingress/ingress_mime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/bearer.h"

#define HTTP_PATH "/api/inject/v1"
#define HTTP_PEM_MAX (1024 * 1024)

enum part_state {
    PART_PENDING = 0, /* built, not stored yet */
    PART_WAITING = 1, /* store request sent, no ack yet */
    PART_STORED = 2,
    PART_FAILED = 3,
};

struct http_part {
    struct ingress_mime_group g;
    struct ingress_mime_msg msg;
    struct msgid id;
    uint64_t token;
    enum part_state state;
    bool transient; /* FAILED for a reason a retry may cure (4xx) */
    char error[POLICY_LUA_TEXT_MAX + 16];
};

struct http_job {
    struct http_listener *ls;
    struct MHD_Connection *conn;
    struct ingress_mime_req req;
    struct http_part *parts;
    size_t n_parts;
    size_t n_waiting;
    uint64_t deadline_ns;
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    bool done;
    struct http_job *next, *prev; /* the inbox (singly), then the loop's waiting list */
};

/* per request: what the HTTP thread keeps between calls of the access handler */
struct http_req {
    struct buf body;
    bool too_big;
    bool started;
    uint64_t started_ns;
    struct http_job *job;
};

struct http_listener {
    struct ingress_http *h;
    /* a copy taken at start: a reload replaces rt->cfg under the HTTP threads (paths not kept) */
    struct cfg_http_listener cfgc;
    const struct cfg_http_listener *cfg; /* &cfgc */
    struct MHD_Daemon *d;
    uint64_t max_body;
    char *cert, *key;
};

struct ingress_http {
    struct ingress *ig;
    struct http_listener ls[CFG_MAX_HTTP_LISTENERS];
    unsigned n_ls;
    char admin_token[BEARER_TOKEN_HEX + 1]; /* "" when not accepted or unreadable */
    char inject_token[BEARER_TOKEN_HEX + 1];
    char *hostname;        /* copies: the HTTP threads never read rt->cfg, which a reload replaces */
    uint32_t max_rcpts;
    uint64_t spool_timeout_ns;
    pthread_mutex_t lock; /* the inbox */
    struct http_job *inbox;
    int efd;
    uint64_t efd_buf;
    struct evl_op efd_op;
    struct http_job *waiting; /* the loop's: jobs with store requests out */
    uint64_t seq;
    atomic_uint live; /* jobs not yet answered (drain waits for them) */
    bool quiesced;
    bool stopping; /* ingress_http_stop: the eventfd is not read again */
};

/* text_json - one of our error texts as a JSON string: they quote the peer's input, cut to a length, so
 * anything but printable ASCII becomes '?' (jansson refuses invalid UTF-8) */
static json_t *text_json(const char *s)
{
    size_t n = strlen(s);
    char *t = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    t[n] = '\0';
    json_t *j = json_string(t);
    free(t);
    return j;
}

static enum MHD_Result answer_json(struct MHD_Connection *c, unsigned code, json_t *doc)
{
    if (!doc)
        panic("http inject: an answer did not encode");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"ringmail-inject\"");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result answer_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    return answer_json(c, code, json_pack("{s:o}", "error", text_json(msg)));
}

static void job_free(struct http_job *j)
{
    for (size_t i = 0; i < j->n_parts; i++) {
        buf_fini(&j->parts[i].msg.data);
        free(j->parts[i].g.idx);
    }
    free(j->parts);
    ingress_mime_req_fini(&j->req);
    free(j);
}

/* answer_job - the KumoMTA-like result: counts, failed recipients and errors, and each recipient's id */
static enum MHD_Result answer_job(struct MHD_Connection *c, struct http_job *j)
{
    json_t *failed = json_array(), *errors = json_array(), *results = json_array();
    size_t ok = 0, bad = 0;
    bool transient = false;
    char **err_of = xcalloc(j->req.n_rcpts, sizeof(char *));
    char (*id_of)[MSGID_TEXT_SIZE] = xcalloc(j->req.n_rcpts, MSGID_TEXT_SIZE);

    for (size_t p = 0; p < j->n_parts; p++) {
        struct http_part *pt = &j->parts[p];
        for (size_t k = 0; k < pt->g.n; k++) {
            size_t i = pt->g.idx[k];
            if (pt->state == PART_STORED)
                msgid_format(pt->id, id_of[i]);
            else
                err_of[i] = pt->error;
        }
        transient |= pt->state != PART_STORED && pt->transient;
    }
    for (size_t i = 0; i < j->req.n_rcpts; i++) {
        const struct ingress_mime_rcpt *r = &j->req.rcpts[i];
        const char *e = !r->ok ? r->error : err_of[i] ? err_of[i] : id_of[i][0] ? NULL : "not stored";
        if (e) {
            bad++;
            json_array_append_new(failed, json_string(r->email));
            /* "EMAIL: error": the address is a whole string of the request (valid UTF-8), the error is
             * made printable */
            json_t *et = text_json(e);
            json_array_append_new(errors, json_pack("s++", r->email, ": ", json_string_value(et)));
            json_array_append_new(results, json_pack("{s:s,s:o}", "email", r->email, "error", et));
        } else {
            ok++;
            json_array_append_new(results, json_pack("{s:s,s:s}", "email", r->email, "id", id_of[i]));
        }
    }
    free(err_of);
    free(id_of);
    json_t *doc = json_pack("{s:I,s:I,s:o,s:o,s:o}", "success_count", (json_int_t)ok, "fail_count", (json_int_t)bad,
                            "failed_recipients", failed, "errors", errors, "results", results);
    /* nothing stored and a failure that a retry may cure: say so with 503, as SMTP says 451 */
    return answer_json(c, ok == 0 && transient ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, doc);
}

/* prepare - decode and build in the HTTP thread; NULL with the answer already queued */
static struct http_job *prepare(struct http_listener *ls, struct MHD_Connection *c, struct http_req *rq,
                                enum MHD_Result *res)
{
    struct ingress_http *h = ls->h;
    struct http_job *j = xcalloc(1, sizeof(*j));
    char *err = NULL;

    j->ls = ls;
    j->conn = c;
    if (ingress_mime_decode((const char *)rq->body.data, rq->body.len, h->max_rcpts, &j->req, &err) < 0) {
        *res = answer_error(c, MHD_HTTP_BAD_REQUEST, err);
        free(err);
        job_free(j);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, j->peer_ip, sizeof(j->peer_ip));
            j->peer_port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, j->peer_ip, sizeof(j->peer_ip));
            j->peer_port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        }
    }
    struct ingress_mime_group *g = NULL;
    size_t ng = 0;
    ingress_mime_groups(&j->req, &g, &ng);
    j->parts = xcalloc(ng ? ng : 1, sizeof(*j->parts));
    j->n_parts = ng;
    time_t now = time(NULL);
    for (size_t i = 0; i < ng; i++) {
        struct http_part *p = &j->parts[i];
        p->g = g[i];
        if (ingress_mime_build(&j->req, &p->g, h->hostname, now, &p->msg, &err) < 0) {
            p->state = PART_FAILED;
            snprintf(p->error, sizeof(p->error), "%s", err);
            free(err);
        }
    }
    free(g); /* the index arrays are the parts' now */
    return j;
}

static bool authorized(struct ingress_http *h, struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return bearer_matches(h->inject_token, auth) || bearer_matches(h->admin_token, auth);
}

static void enqueue(struct ingress_http *h, struct http_job *j)
{
    uint64_t one = 1;
    pthread_mutex_lock(&h->lock);
    j->next = h->inbox;
    h->inbox = j;
    pthread_mutex_unlock(&h->lock);
    if (write(h->efd, &one, sizeof(one)) != sizeof(one))
        log_warn("http inject: eventfd write: %s", strerror(errno));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    struct http_listener *ls = cls;
    struct ingress_http *h = ls->h;
    struct http_req *rq = *ctx;
    enum MHD_Result res = MHD_YES;
    (void)version;

    if (!rq) {
        /* the first call, headers only: everything that refuses without reading the body */
        rq = xcalloc(1, sizeof(*rq));
        *ctx = rq;
        rq->started_ns = clock_mono_ns();
        if (strcmp(url, HTTP_PATH) != 0)
            return answer_error(c, MHD_HTTP_NOT_FOUND, "not found: this listener serves only POST " HTTP_PATH);
        if (strcmp(method, "POST") != 0)
            return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use POST");
        if (!authorized(h, c))
            return answer_error(c, MHD_HTTP_UNAUTHORIZED, "missing or wrong token (Authorization: Bearer TOKEN)");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > ls->max_body)
            return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than max_request_size");
        rq->started = true;
        return MHD_YES;
    }
    if (!rq->started)
        return MHD_NO; /* answered at the first call; libmicrohttpd should not call again */
    if (*upload_size) {
        if (rq->body.len + *upload_size > ls->max_body) {
            rq->too_big = true;
            buf_fini(&rq->body);
        } else if (!rq->too_big) {
            buf_append(&rq->body, upload, *upload_size);
        }
        *upload_size = 0;
        if (clock_mono_ns() - rq->started_ns > CLOCK_MS(ls->cfg->request_timeout_ms))
            return MHD_NO; /* a trickle past the request timeout: the connection is closed */
        return MHD_YES;
    }
    if (rq->job) {
        /* resumed: the loop is done with the job */
        res = answer_job(c, rq->job);
        job_free(rq->job);
        rq->job = NULL;
        atomic_fetch_sub(&h->live, 1);
        return res;
    }
    if (rq->too_big)
        return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than max_request_size");
    struct http_job *j = prepare(ls, c, rq, &res);
    buf_fini(&rq->body);
    if (!j)
        return res;
    rq->job = j;
    atomic_fetch_add(&h->live, 1);
    MHD_suspend_connection(c);
    enqueue(h, j);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode toe)
{
    struct http_listener *ls = cls;
    struct http_req *rq = *ctx;
    (void)c;
    (void)toe;
    if (!rq)
        return;
    if (rq->job) { /* never reached while the loop owns it: it is resumed first */
        job_free(rq->job);
        atomic_fetch_sub(&ls->h->live, 1);
    }
    buf_fini(&rq->body);
    free(rq);
    *ctx = NULL;
}

static enum MHD_Result on_accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct http_listener *ls = cls;
    (void)len;
    if (ls->cfg->n_trusted == 0)
        return MHD_YES;
    if (addr->sa_family == AF_INET)
        return cfg_value_cidr_match(ls->cfg->trusted, ls->cfg->n_trusted, AF_INET,
                                    &((const struct sockaddr_in *)addr)->sin_addr)
                   ? MHD_YES
                   : MHD_NO;
    if (addr->sa_family == AF_INET6)
        return cfg_value_cidr_match(ls->cfg->trusted, ls->cfg->n_trusted, AF_INET6,
                                    &((const struct sockaddr_in6 *)addr)->sin6_addr)
                   ? MHD_YES
                   : MHD_NO;
    return MHD_NO;
}

/* ---- the loop's side ---- */

static void job_finish(struct ingress_http *h, struct http_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else if (h->waiting == j)
        h->waiting = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
    j->done = true;
    MHD_resume_connection(j->conn); /* from here the job is the HTTP thread's */
}

static void part_fail(struct http_part *p, const char *reply, bool transient)
{
    p->state = PART_FAILED;
    p->transient = transient;
    snprintf(p->error, sizeof(p->error), "%s", reply);
}

/* hook - http_message_generated, when the policy defines it; false when it refused the message */
static bool hook(struct ingress *ig, struct http_job *j, struct http_part *p, struct policy_lua_meta *meta)
{
    struct policy_lua *pl = ig->policy;
    struct policy_lua_result res;

    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_HTTP_MESSAGE_GENERATED))
        return true;
    const char *d = (const char *)p->msg.data.data;
    size_t hlen = p->msg.data.len;
    for (size_t i = 0; i + 3 < p->msg.data.len; i++)
        if (memcmp(d + i, "\r\n\r\n", 4) == 0) {
            hlen = i + 2;
            break;
        }
    struct policy_lua_str *rcpts = xcalloc(p->g.n, sizeof(*rcpts));
    for (size_t i = 0; i < p->g.n; i++) {
        const char *e = j->req.rcpts[p->g.idx[i]].email;
        rcpts[i] = (struct policy_lua_str){e, strlen(e)};
    }
    struct policy_lua_message msg = {.headers = d, .headers_len = hlen, .sender = {j->req.sender, strlen(j->req.sender)},
                                     .rcpts = rcpts, .n_rcpts = p->g.n, .size = p->msg.data.len};
    struct policy_lua_conn conn = {j->peer_ip, j->peer_port, "", 0};
    enum policy_lua_status st = policy_lua_http_message_generated(pl, &conn, &msg, meta, &res);
    free(rcpts);
    if (st == POLICY_LUA_ACCEPT)
        return true;
    if (st != POLICY_LUA_REJECT)
        log_warn("http_message_generated failed (%s) for a message from %s: %s", policy_lua_status_name(st),
                 j->peer_ip, res.detail);
    char reply[POLICY_LUA_TEXT_MAX + 16];
    snprintf(reply, sizeof(reply), "%d %s", res.code % 1000, res.text);
    part_fail(p, reply, res.code < 500);
    return false;
}

static void store_part(struct ingress_http *h, struct http_job *j, struct http_part *p)
{
    struct ingress *ig = h->ig;
    struct policy_lua_meta meta;
    char received[512], idtext[MSGID_TEXT_SIZE], date[64];
    const char *reply = NULL;

    policy_lua_meta_init(&meta);
    if (!hook(ig, j, p, &meta)) {
        policy_lua_meta_fini(&meta);
        return;
    }
    /* the Reception record says how the message came in (KumoMTA's reception_protocol) */
    policy_lua_meta_set(&meta, "reception_protocol", "HTTP", 4);
    p->id = msgid_generate();
    msgid_format(p->id, idtext);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    int rlen = snprintf(received, sizeof(received), "Received: from [%s]\r\n\tby %s (ringmail) with HTTP id %s; %s\r\n",
                        j->peer_ip, ig->rt->cfg.hostname, idtext, date);
    if (rlen < 0 || (size_t)rlen >= sizeof(received))
        rlen = 0;
    rlen += (int)ingress_fbl_id_header(ig, idtext, &meta, received + rlen, sizeof(received) - (size_t)rlen);

    struct proto_env rec = {0};
    struct proto_env_rcpt *rcpts = xcalloc(p->g.n, sizeof(*rcpts));
    bool utf8 = j->req.sender_utf8 || p->msg.utf8;
    for (size_t i = 0; i < p->g.n; i++) {
        rcpts[i] = (struct proto_env_rcpt){.addr = j->req.rcpts[p->g.idx[i]].email, .state = PROTO_RCPT_QUEUED};
        utf8 |= j->req.rcpts[p->g.idx[i]].utf8;
    }
    rec.created_ms = clock_real_ns() / 1000000u;
    rec.sender = j->req.sender;
    rec.rcpt_count = (uint32_t)p->g.n;
    rec.rcpts = rcpts;
    if (p->msg.eightbit)
        rec.flags |= PROTO_ENV_F_8BITMIME;
    if (utf8)
        rec.flags |= PROTO_ENV_F_SMTPUTF8;
    struct proto_env_meta em[POLICY_LUA_META_MAX];
    char keys[POLICY_LUA_META_MAX][POLICY_LUA_META_KEY_MAX + 1];
    ingress_xfer_meta(&meta, em, keys, &rec.meta_count);
    rec.meta = em;
    p->token = INGRESS_HTTP_TOKEN_BIT | ++h->seq;
    int rc = ingress_xfer_store(ig, &rec, received, (size_t)rlen, (const char *)p->msg.data.data, p->msg.data.len, p->id,
                                p->token, j->peer_ip, &reply, NULL);
    free(rcpts);
    policy_lua_meta_fini(&meta);
    if (rc < 0) {
        part_fail(p, reply, reply[0] == '4');
        return;
    }
    p->state = PART_WAITING;
    j->n_waiting++;
}

static void take_job(struct ingress_http *h, struct http_job *j)
{
    j->deadline_ns = clock_mono_ns() + h->spool_timeout_ns;
    for (size_t i = 0; i < j->n_parts; i++) {
        struct http_part *p = &j->parts[i];
        if (p->state != PART_PENDING)
            continue;
        if (h->ig->rt->draining)
            part_fail(p, "421 4.3.2 Service shutting down", true);
        else
            store_part(h, j, p);
    }
    j->prev = NULL;
    j->next = h->waiting;
    if (h->waiting)
        h->waiting->prev = j;
    h->waiting = j;
    if (j->n_waiting == 0)
        job_finish(h, j);
}

static void efd_arm(struct ingress_http *h)
{
    struct io_uring_sqe *sqe = evl_sqe(&h->ig->rt->evl, &h->efd_op);
    io_uring_prep_read(sqe, h->efd, &h->efd_buf, sizeof(h->efd_buf), 0);
}

static void on_efd(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct ingress_http *h = op->owner;
    (void)l;
    (void)flags;
    if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED && !h->stopping) {
        /* never expected from an eventfd read; without a re-arm no job would be taken: fatal, and the
         * supervisor restarts the worker (clients waiting get no answer and retry) */
        fatal("http inject: eventfd read failed: %s", strerror(-res));
    }
    pthread_mutex_lock(&h->lock);
    struct http_job *j = h->inbox;
    h->inbox = NULL;
    pthread_mutex_unlock(&h->lock);
    /* the inbox is a stack: take the jobs in arrival order */
    struct http_job *rev = NULL;
    while (j) {
        struct http_job *n = j->next;
        j->next = rev;
        rev = j;
        j = n;
    }
    while (rev) {
        struct http_job *n = rev->next;
        take_job(h, rev);
        rev = n;
    }
    if (!h->stopping)
        efd_arm(h);
}

void ingress_http_on_stored(struct ingress *ig, const struct proto_rec *rec)
{
    struct ingress_http *h = ig->http;
    uint64_t token = rec->body.stored.token;

    if (!h)
        return;
    for (struct http_job *j = h->waiting; j; j = j->next) {
        for (size_t i = 0; i < j->n_parts; i++) {
            struct http_part *p = &j->parts[i];
            if (p->state != PART_WAITING || p->token != token)
                continue;
            if (rec->body.stored.status == 0) {
                p->state = PART_STORED;
                proto_node_counter_add(ig->rt->self, PROTO_NODE_CTR_MESSAGES_ACCEPTED, 1);
                /* time-to-250: from the job's store requests (its deadline less the spool timeout) */
                uint64_t now = clock_mono_ns(), sent = j->deadline_ns - h->spool_timeout_ns;
                proto_hist_record(&ig->rt->self->hist[PROTO_NODE_HIST_TIME_TO_250], PROTO_HIST_FAST,
                                  now > sent ? (now - sent) / 1000u : 0);
            } else {
                char why[200];
                snprintf(why, sizeof(why), "451 4.3.0 Message could not be stored (%s), try again later",
                         strerror((int)-rec->body.stored.status));
                part_fail(p, why, true);
            }
            if (--j->n_waiting == 0)
                job_finish(h, j);
            return;
        }
    }
    /* a late ack of a job that timed out: the message is stored; its client was told 451 */
}

void ingress_http_tick(struct ingress *ig, uint64_t now)
{
    struct ingress_http *h = ig->http;
    struct http_job *j, *next;

    if (!h)
        return;
    for (j = h->waiting; j; j = next) {
        next = j->next;
        if (now < j->deadline_ns)
            continue;
        for (size_t i = 0; i < j->n_parts; i++)
            if (j->parts[i].state == PART_WAITING)
                part_fail(&j->parts[i], "451 4.3.0 The spool did not confirm the message in time, try again later",
                          true);
        j->n_waiting = 0;
        job_finish(h, j);
    }
}

/* pem - a PEM file's text for libmicrohttpd's TLS; fatal when unreadable */
static char *pem(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = file_read_all(path, HTTP_PEM_MAX, &text, &len);
    if (rc < 0)
        fatal("http_listener: cannot read %s: %s", path, strerror(-rc));
    return text;
}

static void load_tokens(struct ingress_http *h, const struct cfg *c)
{
    char *err = NULL;
    if (c->http_inject_token_file[0] && bearer_token_load(c->http_inject_token_file, h->inject_token, &err) < 0)
        fatal("[http_inject] token_file: %s", err);
    if (c->http_inject_admin_token) {
        char *path = c->admin_token_file[0] ? xstrdup(c->admin_token_file) : xasprintf("%s/admin.token", c->data_dir);
        if (bearer_token_load(path, h->admin_token, &err) < 0) {
            log_warn("HTTP injection: the admin token is not accepted: %s", err);
            free(err);
            err = NULL;
            h->admin_token[0] = '\0';
        }
        free(path);
    }
    if (!h->inject_token[0] && !h->admin_token[0])
        log_warn("HTTP injection: no token is available ([http_inject] token_file, the admin token): every request gets 401");
}

void ingress_http_start(struct ingress *ig, const int *fds, unsigned n)
{
    const struct cfg *c = &ig->rt->cfg;

    if (n == 0)
        return;
    struct ingress_http *h = xcalloc(1, sizeof(*h));
    ig->http = h;
    h->ig = ig;
    h->hostname = xstrdup(c->hostname);
    h->max_rcpts = c->http_inject_max_recipients;
    h->spool_timeout_ns = CLOCK_MS(c->ingress_spool_timeout_ms);
    pthread_mutex_init(&h->lock, NULL);
    h->efd = eventfd(0, EFD_CLOEXEC);
    if (h->efd < 0)
        fatal("eventfd: %s", strerror(errno));
    h->efd_op = (struct evl_op){on_efd, h};
    efd_arm(h);
    load_tokens(h, c);
    for (unsigned i = 0; i < n && i < c->n_http_listeners; i++) {
        struct http_listener *ls = &h->ls[h->n_ls];
        ls->h = h;
        ls->cfgc = c->http_listeners[i];
        ls->cfgc.listen = xstrdup(c->http_listeners[i].listen);
        ls->cfgc.tls_certificate = ls->cfgc.tls_private_key = NULL;
        ls->cfg = &ls->cfgc;
        ls->max_body = ls->cfg->max_request_size ? ls->cfg->max_request_size : c->ingress_max_message_size;
        int fl = fcntl(fds[i], F_GETFL);
        if (fl >= 0)
            fcntl(fds[i], F_SETFL, fl | O_NONBLOCK); /* the workers share the socket: accept must not block */
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
        if (c->http_listeners[i].tls_certificate[0]) {
            if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
                fatal("http_listener %s: this libmicrohttpd has no TLS", ls->cfg->listen);
            ls->cert = pem(c->http_listeners[i].tls_certificate);
            ls->key = pem(c->http_listeners[i].tls_private_key);
            flags |= MHD_USE_TLS;
        }
        unsigned timeout_s = (unsigned)(ls->cfg->request_timeout_ms / 1000u);
        if (ls->cert)
            ls->d = MHD_start_daemon(flags, 0, &on_accept_policy, ls, &on_request, ls, MHD_OPTION_LISTEN_SOCKET, fds[i],
                                     MHD_OPTION_CONNECTION_LIMIT, ls->cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                     timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->ingress_max_conn_per_ip,
                                     MHD_OPTION_NOTIFY_COMPLETED, &on_completed, ls, MHD_OPTION_HTTPS_MEM_CERT,
                                     ls->cert, MHD_OPTION_HTTPS_MEM_KEY, ls->key, MHD_OPTION_END);
        else
            ls->d = MHD_start_daemon(flags, 0, &on_accept_policy, ls, &on_request, ls, MHD_OPTION_LISTEN_SOCKET, fds[i],
                                     MHD_OPTION_CONNECTION_LIMIT, ls->cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                     timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT, c->ingress_max_conn_per_ip,
                                     MHD_OPTION_NOTIFY_COMPLETED, &on_completed, ls, MHD_OPTION_END);
        if (!ls->d)
            fatal("http_listener %s: libmicrohttpd did not start", ls->cfg->listen);
        h->n_ls++;
    }
}

bool ingress_http_drain(struct ingress *ig)
{
    struct ingress_http *h = ig->http;
    if (!h)
        return true;
    if (!h->quiesced) {
        for (unsigned i = 0; i < h->n_ls; i++)
            MHD_quiesce_daemon(h->ls[i].d); /* the socket is the supervisor's: stop accepting, keep it */
        h->quiesced = true;
    }
    return atomic_load(&h->live) == 0;
}

void ingress_http_stop(struct ingress *ig)
{
    struct ingress_http *h = ig->http;
    if (!h)
        return;
    /* every suspended connection is resumed before the daemons go (libmicrohttpd requires it): jobs not
     * taken yet fail as shutting down, jobs waiting for the spool as timed out; on_completed frees them */
    ig->rt->draining = true;
    h->stopping = true;
    on_efd(&ig->rt->evl, &h->efd_op, 0, 0);
    ingress_http_tick(ig, UINT64_MAX);
    for (unsigned i = 0; i < h->n_ls; i++) {
        MHD_stop_daemon(h->ls[i].d);
        free(h->ls[i].cfgc.listen);
        free(h->ls[i].cert);
        free(h->ls[i].key);
    }
    pthread_mutex_destroy(&h->lock);
    close(h->efd);
    free(h->hostname);
    free(h);
    ig->http = NULL;
}
