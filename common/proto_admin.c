/*
 * proto_admin - the command channel's documents (contract in proto_admin.h, schema in docs/admin-api.md)
 */
#include "common/proto_admin.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"
#include "common/msgid.h"
#include "common/proto_status.h"

static const char *const op_names[PROTO_ADMIN_OP__MAX] = {
    "queue-summary", "suspend",     "suspend-list", "suspend-cancel",  "suspend-ready-q",
    "suspend-ready-q-list", "suspend-ready-q-cancel", "bounce", "bounce-list", "bounce-cancel",
    "inspect-sched-q", "inspect-ready-q", "inspect-message-sched", "inspect-message-spool", "spool-compact",
    "spool-compact-status", "rebind", "abort-ready-q-conn", "warmup-status", "suppression-check",
    "suppression-list", "suppression-add", "suppression-remove", "suppression-import",
};

/* the members each op's result must have: name and JSON type */
struct member {
    const char *key;
    json_type type;
};
static const struct member summary_m[] = {{"rows", JSON_ARRAY}, {"queues", JSON_ARRAY}, {"totals", JSON_OBJECT}};
static const struct member item_m[] = {{"item", JSON_OBJECT}};
static const struct member list_m[] = {{"items", JSON_ARRAY}};
static const struct member queue_m[] = {{"queue", JSON_OBJECT}, {"messages", JSON_ARRAY}};
static const struct member path_m[] = {{"path", JSON_OBJECT}, {"messages", JSON_ARRAY}};
static const struct member entries_m[] = {{"entries", JSON_ARRAY}};
static const struct member message_m[] = {{"message", JSON_OBJECT}, {"recipients", JSON_ARRAY}};
static const struct member compact_m[] = {{"compaction", JSON_OBJECT}};
static const struct member warmup_m[] = {{"sources", JSON_ARRAY}};
static const struct {
    const struct member *m;
    size_t n;
} promises[PROTO_ADMIN_OP__MAX] = {
#define M(a) {a, sizeof(a) / sizeof(a[0])}
    M(summary_m), M(item_m), M(list_m), M(item_m), M(item_m), M(list_m),
    M(item_m),    M(item_m), M(list_m), M(item_m), M(queue_m), M(path_m),
    M(entries_m), M(message_m), M(compact_m), M(compact_m), M(item_m), M(item_m),
    M(warmup_m),
    M(entries_m), M(entries_m), M(item_m), M(item_m), M(item_m),
#undef M
};

const char *proto_admin_op_name(enum proto_admin_op op)
{
    return (unsigned)op < PROTO_ADMIN_OP__MAX ? op_names[op] : "?";
}

bool proto_admin_op_spool(enum proto_admin_op op)
{
    return op == PROTO_ADMIN_SPOOL_INSPECT || op == PROTO_ADMIN_SPOOL_COMPACT || op == PROTO_ADMIN_SPOOL_COMPACT_STATUS ||
           (op >= PROTO_ADMIN_SUPP_CHECK && op <= PROTO_ADMIN_SUPP_IMPORT);
}

bool proto_admin_op_parse(const char *name, enum proto_admin_op *out)
{
    for (unsigned i = 0; i < PROTO_ADMIN_OP__MAX; i++)
        if (strcmp(name, op_names[i]) == 0) {
            *out = (enum proto_admin_op)i;
            return true;
        }
    return false;
}

/* text_ok - UTF-8, no control character, at most max bytes */
static bool text_ok(const char *s, size_t n, size_t max)
{
    if (n > max || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

#define ARGS struct proto_admin_args
static const struct {
    const char *key;
    int kind; /* 0 string, 1 whole number, 2 bool, 3 an array of flat objects (entries) */
    size_t off;
} arg_f[] = {
    {"domain", 0, offsetof(ARGS, domain)},   {"tenant", 0, offsetof(ARGS, tenant)},
    {"campaign", 0, offsetof(ARGS, campaign)}, {"queue", 0, offsetof(ARGS, queue)},
    {"name", 0, offsetof(ARGS, name)},       {"reason", 0, offsetof(ARGS, reason)},
    {"by", 0, offsetof(ARGS, by)},           {"by_volume", 2, offsetof(ARGS, by_volume)},
    {"everything", 2, offsetof(ARGS, everything)}, {"duration_ms", 1, offsetof(ARGS, duration_ms)},
    {"limit", 1, offsetof(ARGS, limit)},     {"target", 1, offsetof(ARGS, target)},
    {"message", 0, offsetof(ARGS, message)}, {"body", 2, offsetof(ARGS, body)},
    {"to_queue", 0, offsetof(ARGS, to_queue)}, {"to_route", 0, offsetof(ARGS, to_route)},
    {"address", 0, offsetof(ARGS, address)}, {"after", 0, offsetof(ARGS, after)},
    {"source", 0, offsetof(ARGS, source)},   {"expires", 1, offsetof(ARGS, expires)},
    {"entries", 3, offsetof(ARGS, entries)},
};
#define NARGS (sizeof(arg_f) / sizeof(arg_f[0]))

/* whole - a JSON integer >= 0 */
static bool whole(const json_t *v, uint64_t *out);

/* rows_ok - an array of at most PROTO_ADMIN_ROWS_MAX objects of at most 8 members, each a bounded text or a
 * whole number */
static bool rows_ok(const json_t *a)
{
    if (!json_is_array(a) || json_array_size(a) > PROTO_ADMIN_ROWS_MAX)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *o = json_array_get(a, i);
        const char *k;
        json_t *v;
        uint64_t n;
        if (!json_is_object(o) || json_object_size(o) > 8)
            return false;
        json_object_foreach((json_t *)o, k, v) {
            if (!text_ok(k, strlen(k), 64))
                return false;
            if (json_is_string(v) ? !text_ok(json_string_value(v), json_string_length(v), PROTO_ADMIN_STR_MAX) ||
                                        strlen(json_string_value(v)) != json_string_length(v)
                                  : !whole(v, &n))
                return false;
        }
    }
    return true;
}
#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

char *proto_admin_req_encode(const struct proto_admin_req *r)
{
    struct msgid mid;
    if ((unsigned)r->op >= PROTO_ADMIN_OP__MAX || !r->who || !text_ok(r->who, strlen(r->who), PROTO_ADMIN_STR_MAX))
        return NULL;
    if (r->args.message && msgid_parse(r->args.message, strlen(r->args.message), &mid) < 0)
        return NULL;
    json_t *args = json_object();
    for (size_t i = 0; i < NARGS; i++) {
        const void *base = &r->args;
        if (arg_f[i].kind == 0) {
            const char *s = *AT(base, arg_f[i].off, const char *const);
            if (!s)
                continue;
            if (!text_ok(s, strlen(s), PROTO_ADMIN_STR_MAX)) {
                json_decref(args);
                return NULL;
            }
            json_object_set_new(args, arg_f[i].key, json_string(s));
        } else if (arg_f[i].kind == 1) {
            uint64_t v = *AT(base, arg_f[i].off, const uint64_t);
            if (v > INT64_MAX) {
                json_decref(args);
                return NULL;
            }
            if (v)
                json_object_set_new(args, arg_f[i].key, json_integer((json_int_t)v));
        } else if (arg_f[i].kind == 3) {
            const json_t *a = *AT(base, arg_f[i].off, const void *const);
            if (!a)
                continue;
            if (!rows_ok(a)) {
                json_decref(args);
                return NULL;
            }
            json_object_set(args, arg_f[i].key, (json_t *)a);
        } else if (*AT(base, arg_f[i].off, const bool)) {
            json_object_set_new(args, arg_f[i].key, json_true());
        }
    }
    json_t *doc = json_pack("{s:I, s:s, s:I, s:s, s:o}", "id", (json_int_t)(r->id & INT64_MAX), "op",
                            op_names[r->op], "deadline_ms", (json_int_t)(r->deadline_ms & INT64_MAX), "who", r->who,
                            "args", args);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

static int fail(char **err, const char *what, const char *key)
{
    *err = xasprintf("%s%s%s", what, key ? ": " : "", key ? key : "");
    return -EPROTO;
}

/* whole - a JSON integer >= 0 */
static bool whole(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int decode_args(const json_t *args, struct proto_admin_args *a, char **err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(args))
        return fail(err, "args is not an object", NULL);
    json_object_foreach((json_t *)args, key, v) {
        size_t i = 0;
        while (i < NARGS && strcmp(arg_f[i].key, key) != 0)
            i++;
        if (i == NARGS)
            return fail(err, "unknown argument", text_ok(key, strlen(key), 64) ? key : "(unprintable)");
        if (arg_f[i].kind == 0) {
            if (!json_is_string(v) || !text_ok(json_string_value(v), json_string_length(v), PROTO_ADMIN_STR_MAX) ||
                strlen(json_string_value(v)) != json_string_length(v))
                return fail(err, "argument is not a bounded text", key);
            *AT(a, arg_f[i].off, const char *) = json_string_value(v);
        } else if (arg_f[i].kind == 1) {
            if (!whole(v, AT(a, arg_f[i].off, uint64_t)))
                return fail(err, "argument is not a whole number", key);
        } else if (arg_f[i].kind == 3) {
            if (!rows_ok(v))
                return fail(err, "argument is not an array of flat objects of bounded texts and whole numbers", key);
            *AT(a, arg_f[i].off, const void *) = v;
        } else {
            if (!json_is_boolean(v))
                return fail(err, "argument is not a bool", key);
            *AT(a, arg_f[i].off, bool) = json_is_true(v);
        }
    }
    if (a->by && strcmp(a->by, "site") != 0 && strcmp(a->by, "provider") != 0 && strcmp(a->by, "source") != 0)
        return fail(err, "by is not site, provider or source", NULL);
    struct msgid id;
    if (a->message && msgid_parse(a->message, strlen(a->message), &id) < 0)
        return fail(err, "message is not a message id (32 hex digits)", NULL);
    return 0;
}

int proto_admin_req_decode(const char *text, size_t len, struct proto_admin_req *r, char **err)
{
    json_error_t je;
    memset(r, 0, sizeof(*r));
    *err = NULL;
    if (len > PROTO_STATUS_DOC_MAX)
        return fail(err, "request too large", NULL);
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return fail(err, "request is not JSON", je.text);
    const char *op = json_string_value(json_object_get(doc, "op"));
    const char *who = json_string_value(json_object_get(doc, "who"));
    int rc = 0;
    if (!json_is_object(doc))
        rc = fail(err, "request is not an object", NULL);
    else if (!whole(json_object_get(doc, "id"), &r->id) || r->id == 0)
        rc = fail(err, "bad member", "id");
    else if (!op || !proto_admin_op_parse(op, &r->op))
        rc = fail(err, "bad member", "op");
    else if (!whole(json_object_get(doc, "deadline_ms"), &r->deadline_ms))
        rc = fail(err, "bad member", "deadline_ms");
    else if (!who || !text_ok(who, strlen(who), PROTO_ADMIN_STR_MAX))
        rc = fail(err, "bad member", "who");
    else
        rc = decode_args(json_object_get(doc, "args"), &r->args, err);
    if (rc < 0) {
        json_decref(doc);
        memset(r, 0, sizeof(*r));
        return rc;
    }
    r->who = who;
    r->tree = doc;
    return 0;
}

void proto_admin_req_fini(struct proto_admin_req *r)
{
    json_decref(r->tree);
    memset(r, 0, sizeof(*r));
}

char *proto_admin_reply_encode(uint64_t id, unsigned status, const char *error, void *result)
{
    json_t *doc = json_pack("{s:I, s:I}", "id", (json_int_t)(id & INT64_MAX), "status", (json_int_t)status);
    if (status == 200 && result)
        json_object_set(doc, "result", result);
    else
        json_object_set_new(doc, "error", json_string(error ? error : "failed"));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* bounded - depth, array sizes and string lengths of a result within their limits */
static bool bounded(const json_t *v, int depth)
{
    if (depth > PROTO_ADMIN_DEPTH)
        return false;
    if (json_is_string(v))
        return json_string_length(v) <= PROTO_STATUS_TEXT_MAX && strlen(json_string_value(v)) == json_string_length(v);
    if (json_is_array(v)) {
        if (json_array_size(v) > PROTO_ADMIN_ROWS_MAX)
            return false;
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!bounded(json_array_get(v, i), depth + 1))
                return false;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) {
            if (strlen(k) > PROTO_STATUS_NAME_MAX || !bounded(m, depth + 1))
                return false;
        }
    }
    return true;
}

int proto_admin_reply_decode(const char *text, size_t len, enum proto_admin_op op, uint64_t want_id,
                             struct proto_admin_reply *r, char **err)
{
    json_error_t je;
    uint64_t st = 0;
    memset(r, 0, sizeof(*r));
    *err = NULL;
    if ((unsigned)op >= PROTO_ADMIN_OP__MAX)
        return fail(err, "unknown op", NULL);
    if (len > PROTO_STATUS_DOC_MAX)
        return fail(err, "reply too large", NULL);
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return fail(err, "reply is not JSON", je.text);
    json_t *res = json_object_get(doc, "result");
    const char *error = json_string_value(json_object_get(doc, "error"));
    int rc = 0;
    if (!json_is_object(doc))
        rc = fail(err, "reply is not an object", NULL);
    else if (!whole(json_object_get(doc, "id"), &r->id) || r->id == 0)
        rc = fail(err, "bad member", "id");
    else if (want_id && r->id != want_id)
        rc = -ESTALE, *err = xstrdup("the reply of another request");
    else if (!whole(json_object_get(doc, "status"), &st) || st < 200 || st > 599)
        rc = fail(err, "bad member", "status");
    else if (st != 200 && (!error || !text_ok(error, strlen(error), PROTO_STATUS_DETAIL_MAX)))
        rc = fail(err, "bad member", "error");
    else if (st == 200 && (!json_is_object(res) || !bounded(res, 0)))
        rc = fail(err, "bad member", "result");
    for (size_t i = 0; rc == 0 && st == 200 && i < promises[op].n; i++)
        if (json_typeof(json_object_get(res, promises[op].m[i].key) ? json_object_get(res, promises[op].m[i].key)
                                                                    : json_null()) != promises[op].m[i].type)
            rc = fail(err, "result lacks", promises[op].m[i].key);
    if (rc < 0) {
        json_decref(doc);
        memset(r, 0, sizeof(*r));
        return rc;
    }
    r->status = (unsigned)st;
    r->error = st != 200 ? error : NULL;
    r->result = st == 200 ? res : NULL;
    r->tree = doc;
    return 0;
}

void proto_admin_reply_fini(struct proto_admin_reply *r)
{
    json_decref(r->tree);
    memset(r, 0, sizeof(*r));
}
