/*
 * supervisor_inspect - the admin API's inspect-message and spool-compact endpoints
 *
 *   GET  /api/v1/inspect-message?id=ID[&body=1]  the spool's envelope, recipient states, attempts, size (and
 *                                                the body, at most PROTO_ADMIN_BODY_MAX bytes) merged with
 *                                                the scheduler's entries of the message (queue, state, next
 *                                                due, ready queue); 404 when neither knows it, 400 for a bad id
 *   POST /api/v1/spool-compact                   start a flush and full compaction of the spool's database
 *   GET  /api/v1/spool-compact                   its progress
 *
 * Both roles answer through their command channels (supervisor_ops_ask: the spool's own page pair, the
 * scheduler's). Their results were decoded and bounded by proto_admin_reply_decode; what is merged here is
 * read member by member with its type checked, and every index a role gave is checked against the arrays
 * it points into. The body comes from the spool as base64 strings: decoded here (EVP_DecodeBlock, strict),
 * served as "body" when it is UTF-8 and as "body_base64" when not.
 */
#include <errno.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "common/msgid.h"
#include "common/proto_admin.h"
#include "common/proto_env.h"
#include "supervisor/supervisor.h"

static const char *arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && v[0] ? v : NULL;
}

/* body_of - the spool's base64 strings decoded into b; false when one is not base64 */
static bool body_of(const json_t *chunks, struct buf *b)
{
    for (size_t i = 0; i < json_array_size(chunks); i++) {
        const json_t *c = json_array_get(chunks, i);
        size_t n = json_string_length(c);
        const char *t = json_string_value(c);
        if (!t || n == 0 || n % 4 || n > 4 * PROTO_ADMIN_BODY_CHUNK / 3 + 4)
            return false;
        /* strict: the alphabet only, '=' only as the last one or two (EVP_DecodeBlock would skip blanks) */
        size_t pad = (t[n - 1] == '=') + (t[n - 2] == '=');
        for (size_t k = 0; k < n - pad; k++)
            if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", t[k]))
                return false;
        unsigned char out[PROTO_ADMIN_BODY_CHUNK + 3];
        int m = EVP_DecodeBlock(out, (const unsigned char *)t, (int)n);
        if (m < 0 || (size_t)m < pad)
            return false;
        buf_append(b, out, (size_t)m - pad);
    }
    return true;
}

/* join - the base64 strings as one */
static json_t *join(const json_t *chunks)
{
    struct buf b = {0};
    for (size_t i = 0; i < json_array_size(chunks); i++)
        buf_append(&b, json_string_value(json_array_get(chunks, i)), json_string_length(json_array_get(chunks, i)));
    json_t *j = json_stringn(b.len ? (const char *)b.data : "", b.len);
    buf_fini(&b);
    return j;
}

static json_t *copy_member(const json_t *from, const char *key, json_type type)
{
    json_t *v = json_object_get(from, key);
    return v && json_typeof(v) == type ? json_deep_copy(v) : json_null();
}

/* scheduled - the scheduler's entries laid onto the recipients they stand for: an entry with rcpt_first r
 * stands for every queued recipient of r's domain */
static void scheduled(json_t *rcpts, const json_t *entries)
{
    for (size_t e = 0; e < json_array_size(entries); e++) {
        const json_t *en = json_array_get(entries, e);
        json_t *first = json_object_get(en, "rcpt_first");
        if (!json_is_integer(first) || json_integer_value(first) < 0 ||
            (size_t)json_integer_value(first) >= json_array_size(rcpts))
            continue;
        const char *dom = json_string_value(json_object_get(json_array_get(rcpts, (size_t)json_integer_value(first)),
                                                            "domain"));
        for (size_t i = 0; dom && i < json_array_size(rcpts); i++) {
            json_t *r = json_array_get(rcpts, i);
            const char *d = json_string_value(json_object_get(r, "domain"));
            const char *st = json_string_value(json_object_get(r, "state"));
            if (!d || !st || strcmp(d, dom) != 0 || strcmp(st, "queued") != 0)
                continue;
            json_object_set_new(r, "sched_state", copy_member(en, "state", JSON_STRING));
            json_object_set_new(r, "next_due_ms", copy_member(en, "next_due_ms", JSON_INTEGER));
            json_object_set_new(r, "due_in_ms", copy_member(en, "due_in_ms", JSON_INTEGER));
            json_object_set_new(r, "path", copy_member(en, "path", JSON_STRING));
        }
    }
}

json_t *supervisor_inspect_merge(const char *id, const json_t *spool, const json_t *entries, const char *sched_error)
{
    const json_t *m = json_object_get(spool, "message");
    json_t *doc = json_pack("{s:s, s:b}", "id", id, "in_spool", spool != NULL);
    json_t *rcpts = spool ? copy_member(spool, "recipients", JSON_ARRAY) : json_array();
    if (m) {
        static const struct {
            const char *key;
            json_type type; /* JSON_TRUE: a boolean */
        } keep[] = {{"sender", JSON_STRING},          {"created_ms", JSON_INTEGER},
                    {"size", JSON_INTEGER},           {"flags", JSON_ARRAY},
                    {"meta", JSON_OBJECT},            {"recipients_total", JSON_INTEGER},
                    {"recipients_queued", JSON_INTEGER}, {"recipients_truncated", JSON_TRUE},
                    {"body_bytes", JSON_INTEGER},     {"body_truncated", JSON_TRUE},
                    {"body_8bit", JSON_TRUE},         {"body_store", JSON_OBJECT},
                    {"body_error", JSON_STRING}};
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
            json_t *v = json_object_get(m, keep[i].key);
            if (keep[i].type == JSON_TRUE ? json_is_boolean(v) : v && json_typeof(v) == keep[i].type)
                json_object_set_new(doc, keep[i].key, json_deep_copy(v));
        }
        json_t *created = json_object_get(m, "created_ms");
        uint64_t now = clock_real_ns() / 1000000u;
        if (json_is_integer(created) && json_integer_value(created) >= 0)
            json_object_set_new(doc, "age_ms", json_integer((json_int_t)(now > (uint64_t)json_integer_value(created)
                                                                        ? now - (uint64_t)json_integer_value(created)
                                                                        : 0)));
    }
    if (entries)
        scheduled(rcpts, entries);
    json_int_t due = -1;
    for (size_t e = 0; e < json_array_size(entries); e++) {
        json_t *d = json_object_get(json_array_get(entries, e), "next_due_ms");
        if (json_is_integer(d) && json_integer_value(d) >= 0 && (due < 0 || json_integer_value(d) < due))
            due = json_integer_value(d);
    }
    json_object_set_new(doc, "next_due_ms", due >= 0 ? json_integer(due) : json_null());
    json_object_set_new(doc, "recipients", rcpts);
    json_object_set_new(doc, "queues", entries ? json_deep_copy(entries) : json_array());
    if (sched_error)
        json_object_set_new(doc, "scheduler_error", json_string(sched_error));
    const json_t *chunks = json_object_get(m, "body_base64");
    /* a body the spool could not read comes with its body_error (kept above) and no body */
    if (json_is_array(chunks) && !json_is_string(json_object_get(m, "body_error"))) {
        struct buf b = {0};
        if (!body_of(chunks, &b))
            json_object_set_new(doc, "body_error", json_string("the spool's body is not base64"));
        else if (utf8_valid(b.len ? (const char *)b.data : "", b.len) && (b.len == 0 || !memchr(b.data, 0, b.len)))
            json_object_set_new(doc, "body", json_stringn(b.len ? (const char *)b.data : "", b.len));
        else
            json_object_set_new(doc, "body_base64", join(chunks));
        buf_fini(&b);
    }
    return doc;
}

/* error_text - the message of an error document made by supervisor_ops_error */
static char *error_text(const char *body)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    char *t = xstrdup(e ? e : "failed");
    json_decref(j);
    return t;
}

static unsigned inspect_message(struct supervisor *s, struct MHD_Connection *c, const char *who, char **body)
{
    const char *idarg = arg(c, "id"), *b = arg(c, "body");
    struct msgid id;
    char idtext[MSGID_TEXT_SIZE];
    if (!idarg || msgid_parse(idarg, strlen(idarg), &id) < 0)
        return supervisor_ops_error(MHD_HTTP_BAD_REQUEST,
                                    "id= is a message id: 32 hex digits (the \"id\" of its log records)", body);
    if (b && strcmp(b, "1") && strcmp(b, "true") && strcmp(b, "0") && strcmp(b, "false"))
        return supervisor_ops_error(MHD_HTTP_BAD_REQUEST, "body= is 1 or 0", body);
    msgid_format(id, idtext);
    struct proto_admin_req req = {.op = PROTO_ADMIN_SPOOL_INSPECT,
                                  .who = who,
                                  .args = {.message = idtext, .body = b && (!strcmp(b, "1") || !strcmp(b, "true"))}};
    json_t *spool = NULL, *sched = NULL;
    char *err = NULL;
    unsigned code = supervisor_ops_ask(s, PROTO_NODE_ROLE_SPOOL, &req, &spool, &err);
    if (code != MHD_HTTP_OK && code != MHD_HTTP_NOT_FOUND) {
        *body = err;
        return code;
    }
    free(err);
    err = NULL;
    json_int_t total = json_integer_value(json_object_get(json_object_get(spool, "message"), "recipients_total"));
    req = (struct proto_admin_req){
        .op = PROTO_ADMIN_INSPECT_MESSAGE,
        .who = who,
        .args = {.message = idtext, .limit = total > 0 && total <= PROTO_ENV_RCPT_MAX ? (uint64_t)total : 1}};
    unsigned sc = supervisor_ops_ask(s, PROTO_NODE_ROLE_SCHEDULER, &req, &sched, &err);
    char *sched_error = sc == MHD_HTTP_OK ? NULL : error_text(err);
    free(err);
    json_t *entries = json_object_get(sched, "entries");
    if (!spool && json_array_size(entries) == 0) {
        json_decref(sched);
        free(sched_error);
        return supervisor_ops_error(MHD_HTTP_NOT_FOUND,
                                    "no such message: not in the spool and not queued (delivered or bounced "
                                    "messages leave the spool: see the logs)",
                                    body);
    }
    json_t *doc = supervisor_inspect_merge(idtext, spool, sc == MHD_HTTP_OK ? entries : NULL, sched_error);
    *body = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    json_decref(spool);
    json_decref(sched);
    free(sched_error);
    return *body ? MHD_HTTP_OK : supervisor_ops_error(MHD_HTTP_INTERNAL_SERVER_ERROR, "not encodable", body);
}

static unsigned spool_compact(struct supervisor *s, bool post, const char *who, char **body)
{
    struct proto_admin_req req = {.op = post ? PROTO_ADMIN_SPOOL_COMPACT : PROTO_ADMIN_SPOOL_COMPACT_STATUS,
                                  .who = who};
    json_t *result = NULL;
    unsigned code = supervisor_ops_ask(s, PROTO_NODE_ROLE_SPOOL, &req, &result, body);
    if (post)
        log_info("admin: spool-compact by %s: HTTP %u", who, code);
    if (!result)
        return code;
    *body = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(result);
    return *body ? code : supervisor_ops_error(MHD_HTTP_INTERNAL_SERVER_ERROR, "not encodable", body);
}

unsigned supervisor_inspect_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool post,
                                    const char *who, char **body)
{
    if (strcmp(url, "/api/v1/inspect-message") == 0)
        return post ? supervisor_ops_error(MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for this endpoint", body)
                    : inspect_message(s, c, who, body);
    if (strcmp(url, "/api/v1/spool-compact") == 0)
        return spool_compact(s, post, who, body);
    return 0;
}
