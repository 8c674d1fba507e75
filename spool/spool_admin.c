/*
 * spool_admin - the spool's end of the admin command channel (common/proto_admin.h): inspect-message-spool,
 * spool-compact and spool-compact-status, in the PROTO_NODE_STATUS_SPOOL_REQ / _REPLY page pair
 *
 * Served on the spool's loop (each tick and whenever it is idle; the supervisor rings the spool's bell
 * after writing a request), after the group commit of the pass, so an answer shows committed state only.
 * A request is taken once: the page's sequence number says there is a new one (the one found at start is
 * not), its deadline that the supervisor still waits. Its id only labels the reply: ids are not compared
 * (a hostile writer of a huge id must not shut the channel). The page is copied and the copy decoded
 * (proto_admin_req_decode) before anything of it is used.
 * Reads are one RocksDB get each; a compaction runs on its own thread (spool_db_compact.c), never here.
 * An answer too large for the page is made again with fewer recipients and less of the body (the
 * answer says so: recipients_truncated, body_truncated), then refused with 507. The body travels as base64 strings (a body need not be UTF-8; a result's strings are at most
 * PROTO_STATUS_TEXT_MAX bytes).
 */
#include "spool/spool.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "common/proto_admin.h"
#include "spool/spool_dlv.h"

/* text - a JSON string of an envelope string: bytes that are not UTF-8 become '?' (a record from disk is
 * checked for control bytes, not for UTF-8) */
static json_t *text(const char *s)
{
    size_t n = strlen(s);
    if (utf8_valid(s, n))
        return json_stringn(s, n);
    char *c = xstrdup(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] >= 0x80)
            c[i] = '?';
    json_t *j = json_stringn(c, n);
    free(c);
    return j;
}

static json_t *body_json(struct spool *sp, struct msgid id, size_t cap, bool *truncated, uint64_t *bytes,
                         json_t **error)
{
    struct buf b = {0};
    json_t *chunks = json_array();
    *truncated = false;
    *bytes = 0;
    *error = NULL;
    int rc = spool_db_get_body(sp->db, id, &b);
    if (rc < 0) {
        /* a body the body log refuses (damaged, missing) is said, not shown as empty */
        if (rc != -ENOENT)
            *error = text(spool_db_error(sp->db));
        buf_fini(&b);
        return chunks;
    }
    *bytes = b.len;
    size_t n = b.len > cap ? cap : b.len;
    *truncated = n < b.len;
    char enc[4 * PROTO_ADMIN_BODY_CHUNK / 3 + 4];
    for (size_t off = 0; off < n; off += PROTO_ADMIN_BODY_CHUNK) {
        size_t k = n - off < PROTO_ADMIN_BODY_CHUNK ? n - off : PROTO_ADMIN_BODY_CHUNK;
        int m = EVP_EncodeBlock((unsigned char *)enc, b.data + off, (int)k);
        json_array_append_new(chunks, json_stringn(enc, (size_t)m));
    }
    buf_fini(&b);
    return chunks;
}

/* inspect - the envelope, its recipients (at most max_rcpts) and, when asked, the body (at most body_cap
 * bytes) */
static unsigned inspect(struct spool *sp, const struct proto_admin_req *req, size_t max_rcpts, size_t body_cap,
                        json_t **result, const char **error)
{
    struct msgid id;
    struct proto_env env;
    char idtext[MSGID_TEXT_SIZE];
    if (!req->args.message || msgid_parse(req->args.message, strlen(req->args.message), &id) < 0) {
        *error = "message= is a message id: 32 hex digits";
        return 400;
    }
    msgid_format(id, idtext);
    int rc = spool_db_get_envelope(sp->db, id, &env);
    if (rc == -ENOENT) {
        *error = "no such message in the spool";
        return 404;
    }
    if (rc < 0) {
        *error = rc == -EBADMSG || rc == -EPROTONOSUPPORT ? "the message's envelope does not decode (see the log)"
                                                          : "the spool database cannot be read now";
        log_warn("admin: inspect %s: %s (%s)", idtext, strerror(-rc), spool_db_error(sp->db));
        return rc == -EBADMSG || rc == -EPROTONOSUPPORT ? 422 : 503;
    }
    json_t *meta = json_object(), *rcpts = json_array();
    for (uint32_t i = 0; i < env.meta_count; i++)
        json_object_set_new(meta, env.meta[i].key, text(env.meta[i].value));
    uint32_t queued = 0;
    for (uint32_t i = 0; i < env.rcpt_count; i++) {
        const struct proto_env_rcpt *r = &env.rcpts[i];
        queued += r->state == PROTO_RCPT_QUEUED;
        if (i >= max_rcpts)
            continue;
        char dom[PROTO_ENV_ADDR_MAX + 1];
        spool_dlv_domain(r->addr, dom, sizeof(dom));
        json_t *o = json_pack("{s:I, s:o, s:s, s:I, s:o}", "index", (json_int_t)i, "recipient", text(r->addr),
                              "state", proto_env_state_name(r->state), "attempts", (json_int_t)r->attempts,
                              "domain", text(dom));
        if (r->state == PROTO_RCPT_QUEUED) {
            char *q = spool_dlv_queue_name(&env, dom);
            json_object_set_new(o, "queue", text(q));
            free(q);
        }
        json_array_append_new(rcpts, o);
    }
    json_t *flags = json_array();
    if (env.flags & PROTO_ENV_F_8BITMIME)
        json_array_append_new(flags, json_string("8BITMIME"));
    if (env.flags & PROTO_ENV_F_SMTPUTF8)
        json_array_append_new(flags, json_string("SMTPUTF8"));
    json_t *m = json_pack("{s:s, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:b}", "id", idtext, "sender", text(env.sender),
                          "created_ms", (json_int_t)env.created_ms, "size", (json_int_t)env.body_size, "flags", flags,
                          "meta", meta, "recipients_total", (json_int_t)env.rcpt_count, "recipients_queued",
                          (json_int_t)queued, "recipients_truncated", env.rcpt_count > max_rcpts);
    /* the ingress's scan of the stored message (absent for DSNs and HTTP injections: the egress scans) */
    if (env.flags & PROTO_ENV_F_SCANNED)
        json_object_set_new(m, "body_8bit", json_boolean(env.flags & PROTO_ENV_F_OCTETS_8BIT));
    /* where the body is: the body log (segment and offset) or RocksDB */
    struct spool_db_blog_loc loc;
    int where = spool_db_body_where(sp->db, id, &loc);
    json_t *store = json_pack("{s:s}", "where", where == 1 ? "body_log" : where == 0 ? "rocksdb"
                                                 : where == -ENOENT ? "missing" : "unreadable");
    if (where == 1) {
        char seg[24];
        snprintf(seg, sizeof(seg), "%016" PRIx64, loc.seg);
        json_object_set_new(store, "segment", json_string(seg));
        json_object_set_new(store, "offset", json_integer((json_int_t)loc.off));
    }
    json_object_set_new(m, "body_store", store);
    if (req->args.body) {
        bool cut;
        uint64_t bytes;
        json_t *berr;
        json_object_set_new(m, "body_base64", body_json(sp, id, body_cap, &cut, &bytes, &berr));
        json_object_set_new(m, "body_bytes", json_integer((json_int_t)bytes));
        json_object_set_new(m, "body_truncated", json_boolean(cut));
        if (berr != NULL)
            json_object_set_new(m, "body_error", berr);
    }
    proto_env_fini(&env);
    *result = json_pack("{s:o, s:o}", "message", m, "recipients", rcpts);
    return 200;
}

static json_t *compaction_json(struct spool *sp)
{
    struct spool_db_compact_status st;
    spool_db_compact_status(sp->db, &st);
    const char *state = st.running        ? "running"
                        : st.runs == 0    ? "idle"
                        : st.result == 0  ? "done"
                        : st.result == -ECANCELED ? "cancelled"
                                                  : "failed";
    uint64_t now = clock_real_ns() / 1000000u, end = st.running ? now : st.finished_ms;
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I}", "state", state, "runs",
                          (json_int_t)st.runs, "started_ms", (json_int_t)st.started_ms, "finished_ms",
                          (json_int_t)st.finished_ms, "elapsed_ms",
                          (json_int_t)(st.runs && end > st.started_ms ? end - st.started_ms : 0), "families_done",
                          (json_int_t)st.families_done, "families_total", (json_int_t)st.families_total,
                          "running_compactions", (json_int_t)st.running_compactions, "running_flushes",
                          (json_int_t)st.running_flushes, "compaction_pending", st.compaction_pending,
                          "pending_bytes", (json_int_t)st.pending_bytes, "sst_bytes_before",
                          (json_int_t)st.sst_bytes_before, "sst_bytes", (json_int_t)st.sst_bytes);
    if (st.error[0] && utf8_valid(st.error, strlen(st.error)))
        json_object_set_new(o, "error", json_string(st.error));
    return o;
}

static unsigned compact(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    int rc = spool_db_compact_start(sp->db);
    if (rc == -EALREADY) {
        *error = "a compaction is running: follow it with `ringctl spool-compact --status`";
        return 409;
    }
    if (rc < 0) {
        log_warn("admin: compaction not started: %s (%s)", strerror(-rc), spool_db_error(sp->db));
        *error = "the compaction could not start (see the log)";
        return 503;
    }
    sp->compact_watch = true;
    log_info("admin: spool compaction started by %s", req->who);
    *result = json_pack("{s:o}", "compaction", compaction_json(sp));
    return 200;
}

static unsigned dispatch(struct spool *sp, const struct proto_admin_req *req, size_t max_rcpts, size_t body_cap,
                         json_t **result, const char **error)
{
    switch (req->op) {
    case PROTO_ADMIN_SPOOL_INSPECT:
        return inspect(sp, req, max_rcpts, body_cap, result, error);
    case PROTO_ADMIN_SPOOL_COMPACT:
        return compact(sp, req, result, error);
    case PROTO_ADMIN_SPOOL_COMPACT_STATUS:
        *result = json_pack("{s:o}", "compaction", compaction_json(sp));
        return 200;
    default:
        if (spool_supp_op(req))
            return spool_supp_admin(sp, req, (void **)result, error);
        *error = "not an op of the spool";
        return 400;
    }
}

void spool_admin_tick(struct spool *sp)
{
    struct spool_db_compact_status st;
    if (!sp->compact_watch)
        return;
    spool_db_compact_status(sp->db, &st);
    if (st.running)
        return;
    sp->compact_watch = false;
    if (st.result == 0)
        log_info("spool compaction done in %llu ms: SST files %llu -> %llu bytes",
                 (unsigned long long)(st.finished_ms - st.started_ms), (unsigned long long)st.sst_bytes_before,
                 (unsigned long long)st.sst_bytes);
    else
        log_warn("spool compaction ended: %s%s%s", strerror(-st.result), st.error[0] ? ": " : "", st.error);
}

void spool_admin_poll(struct spool *sp)
{
    struct role_rt *rt = sp->rt;
    uint64_t seq = shm_segment_page_seq(&rt->seg, PROTO_NODE_STATUS_SPOOL_REQ);
    if (seq == sp->admin_seq || (seq & 1))
        return;
    size_t n = 0;
    char *page = shm_segment_page_read(&rt->seg, PROTO_NODE_STATUS_SPOOL_REQ, &n, NULL);
    if (!page)
        return; /* being written: the next wake-up takes it */
    sp->admin_seq = seq;
    struct proto_admin_req req;
    char *err = NULL;
    int rc = proto_admin_req_decode(page, n, &req, &err);
    free(page);
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
        log_warn("admin: request refused: %s", err);
        free(err);
        return;
    }
    /* each publication is taken once (its sequence number); its id is not trusted to order requests: a
     * process that wrote a huge id into the page would otherwise shut the channel for good */
    if (!req.deadline_ms || clock_real_ns() / 1000000u > req.deadline_ms) {
        log_warn("admin: request %llu (%s) found after its deadline: not acted on", (unsigned long long)req.id,
                 proto_admin_op_name(req.op));
        proto_admin_req_fini(&req);
        return;
    }
    static const struct {
        size_t rcpts, body;
    } tries[] = {{PROTO_ADMIN_RCPTS_MAX, PROTO_ADMIN_BODY_MAX}, {200, 64u << 10}, {20, 0}};
    for (size_t t = 0; t < sizeof(tries) / sizeof(tries[0]); t++) {
        json_t *result = NULL;
        const char *error = "failed";
        unsigned status = dispatch(sp, &req, tries[t].rcpts, tries[t].body, &result, &error);
        char *reply = proto_admin_reply_encode(req.id, status, error, result);
        json_decref(result);
        rc = reply ? shm_segment_page_publish(&rt->seg, PROTO_NODE_STATUS_SPOOL_REPLY, reply, strlen(reply)) : -EINVAL;
        free(reply);
        if (rc != -E2BIG || req.op != PROTO_ADMIN_SPOOL_INSPECT)
            break;
    }
    if (rc == -E2BIG) {
        char *reply = proto_admin_reply_encode(req.id, 507, "the answer does not fit the command channel", NULL);
        rc = shm_segment_page_publish(&rt->seg, PROTO_NODE_STATUS_SPOOL_REPLY, reply, strlen(reply));
        free(reply);
    }
    if (rc < 0)
        log_warn("admin: the reply to request %llu was not published (%s)", (unsigned long long)req.id, strerror(-rc));
    proto_admin_req_fini(&req);
}

void spool_admin_init(struct spool *sp)
{
    /* a request already in the page was for an earlier spool: it is not acted on */
    sp->admin_seq = shm_segment_page_seq(&sp->rt->seg, PROTO_NODE_STATUS_SPOOL_REQ);
}
