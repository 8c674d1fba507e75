/*
 * supervisor_supp - the admin API's suppression list endpoints, answered by the spool through its command
 * channel (common/proto_admin.h; schemas in docs/admin-api.md "Suppression list")
 *
 *   GET  /api/v1/suppression?address=A[&tenant=T]        check: the entries that suppress A (global, tenant's)
 *   GET  /api/v1/suppression/list[?limit=N][&after=C]    a page in key order; "next" is the cursor of the next
 *   POST /api/v1/suppression/add?address=A[&tenant=T][&reason=R][&source=S][&expires=UNIX]
 *   POST /api/v1/suppression/remove?address=A[&tenant=T]
 *   POST /api/v1/suppression/import   body {"format": "csv" | "jsonl", "data": TEXT} (at most 1 MiB: a client
 *                                     sends a large file as several calls, as `ringctl suppression import`)
 *   GET  /api/v1/suppression/export[?format=csv|jsonl]   the whole list, streamed: pages of the list op are
 *                                                        read as the client takes the body (supervisor_supp_export)
 *
 * Import lines are parsed here (common/supp.h, the same parser as any file: fuzzed) and go to the spool in
 * batches of IMPORT_BATCH entries, each written there with one synced write. Replies of the spool were decoded
 * and bounded by proto_admin_reply_decode; what is used of them is read member by member with its type checked.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_admin.h"
#include "common/supp.h"
#include "supervisor/supervisor.h"

#define IMPORT_BATCH 5000            /* entries per request (PROTO_ADMIN_ROWS_MAX) */
#define IMPORT_BATCH_BYTES (600u << 10) /* ... and about this much JSON at most, of the 1 MiB page */
#define EXPORT_PAGE 5000
#define IMPORT_ERRORS_MAX 20

static const char *arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && v[0] ? v : NULL;
}

/* number - a whole number argument; false when present and not one */
static bool number(struct MHD_Connection *c, const char *key, uint64_t *out)
{
    const char *v = arg(c, key);
    uint64_t n = 0;
    if (!v)
        return true;
    size_t len = strlen(v);
    if (len > 18)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *out = n;
    return true;
}

/* done - the result as the answer's body */
static unsigned done(unsigned code, json_t *result, char **body)
{
    if (!result)
        return code;
    *body = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(result);
    return *body ? code : supervisor_ops_error(MHD_HTTP_INTERNAL_SERVER_ERROR, "not encodable", body);
}

/* send_batch - one import request; adds the spool's counts to *added / *refused */
static unsigned send_batch(struct supervisor *s, const char *who, json_t *rows, uint64_t *added, uint64_t *refused,
                           char **body)
{
    struct proto_admin_req req = {.op = PROTO_ADMIN_SUPP_IMPORT, .who = who, .args = {.entries = rows}};
    json_t *result = NULL;
    unsigned code = supervisor_ops_ask(s, PROTO_NODE_ROLE_SPOOL, &req, &result, body);
    if (result) {
        json_t *item = json_object_get(result, "item");
        json_t *a = json_object_get(item, "added"), *r = json_object_get(item, "refused");
        if (json_is_integer(a) && json_integer_value(a) >= 0)
            *added += (uint64_t)json_integer_value(a);
        if (json_is_integer(r) && json_integer_value(r) >= 0)
            *refused += (uint64_t)json_integer_value(r);
        json_decref(result);
    }
    json_array_clear(rows);
    return code;
}

static unsigned import(struct supervisor *s, const json_t *in, const char *who, char **body)
{
    const char *fmt = json_string_value(json_object_get(in, "format"));
    json_t *data = json_object_get(in, "data");
    if (!json_is_object(in) || !fmt || (strcmp(fmt, "csv") != 0 && strcmp(fmt, "jsonl") != 0) || !json_is_string(data))
        return supervisor_ops_error(MHD_HTTP_BAD_REQUEST,
                                    "the body is {\"format\": \"csv\" or \"jsonl\", \"data\": the lines as one string}",
                                    body);
    bool jsonl = strcmp(fmt, "jsonl") == 0;
    const char *t = json_string_value(data);
    size_t len = json_string_length(data), line = 0;
    uint64_t added = 0, refused = 0;
    json_t *rows = json_array(), *errors = json_array();
    unsigned code = MHD_HTTP_OK;
    size_t bytes = 0;
    for (size_t off = 0; off < len && code == MHD_HTTP_OK;) {
        const char *nl = memchr(t + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (t + off)) : len - off;
        struct supp_entry e;
        const char *why = NULL;
        int rc = supp_fmt_line(jsonl, line == 0, t + off, n, &e, &why);
        line++;
        off += n + 1;
        if (rc < 0) {
            refused++;
            if (json_array_size(errors) < IMPORT_ERRORS_MAX)
                json_array_append_new(errors, json_pack("{s:I, s:s}", "line", (json_int_t)line, "error", why));
            continue;
        }
        if (rc == 0)
            continue;
        json_array_append_new(rows, supp_entry_json(&e));
        /* the entry's JSON: its texts (quotes escaped: at most twice as long; control bytes are refused) */
        bytes += 2 * (strlen(e.addr) + strlen(e.tenant) + strlen(e.source)) + 160;
        if (json_array_size(rows) == IMPORT_BATCH || bytes >= IMPORT_BATCH_BYTES) {
            code = send_batch(s, who, rows, &added, &refused, body);
            bytes = 0;
        }
    }
    if (code == MHD_HTTP_OK && json_array_size(rows))
        code = send_batch(s, who, rows, &added, &refused, body);
    json_decref(rows);
    log_info("admin: suppression-import by %s: %llu added, %llu refused, HTTP %u", who, (unsigned long long)added,
             (unsigned long long)refused, code);
    if (code != MHD_HTTP_OK) {
        json_decref(errors);
        return code; /* what was added before stays: the answer's error says where it stopped */
    }
    return done(code, json_pack("{s:I, s:I, s:o}", "added", (json_int_t)added, "refused", (json_int_t)refused, "errors",
                                errors),
                body);
}

/* the state of one streamed export: pages of the list op, formatted as they are read */
struct export_state {
    struct supervisor *s;
    bool jsonl, done;
    char cursor[SUPP_TENANT_MAX + 2 + SUPP_ADDR_MAX + 1];
    char who[192];
    struct buf out;
    size_t off;
};

/* export_page - the next page into x->out; the HTTP code (200), else an error document in *body */
static unsigned export_page(struct export_state *x, char **body)
{
    struct proto_admin_req req = {.op = PROTO_ADMIN_SUPP_LIST, .who = x->who,
                                  .args = {.limit = EXPORT_PAGE, .after = x->cursor[0] ? x->cursor : NULL}};
    json_t *result = NULL;
    unsigned code = supervisor_ops_ask(x->s, PROTO_NODE_ROLE_SPOOL, &req, &result, body);
    if (code != MHD_HTTP_OK) {
        json_decref(result);
        return code;
    }
    json_t *rows = json_object_get(result, "entries");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        struct supp_entry e;
        const char *why;
        if (supp_entry_from_json(json_array_get(rows, i), &e, &why) < 0)
            continue; /* the spool's word, checked like an import line */
        if (x->jsonl)
            supp_fmt_jsonl(&e, &x->out);
        else
            supp_fmt_csv(&e, &x->out);
    }
    const char *next = json_string_value(json_object_get(result, "next"));
    /* a cursor that does not move would loop for ever: the end */
    if (next && strlen(next) < sizeof(x->cursor) && strcmp(next, x->cursor) != 0)
        snprintf(x->cursor, sizeof(x->cursor), "%s", next);
    else
        x->done = true;
    json_decref(result);
    return MHD_HTTP_OK;
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct export_state *x = cls;
    (void)pos;
    while (x->off == x->out.len) {
        if (x->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        char *err = NULL;
        x->out.len = 0;
        x->off = 0;
        unsigned code = export_page(x, &err);
        free(err);
        if (code != MHD_HTTP_OK) {
            log_warn("admin: suppression export for %s cut short: HTTP %u from the spool", x->who, code);
            return MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees a cut stream, not a short list */
        }
    }
    size_t n = x->out.len - x->off < max ? x->out.len - x->off : max;
    memcpy(buf, x->out.data + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    struct export_state *x = cls;
    buf_fini(&x->out);
    free(x);
}

bool supervisor_supp_export(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get,
                            enum MHD_Result *ret)
{
    char *body = NULL;
    if (strcmp(url, "/api/v1/suppression/export") != 0)
        return false;
    const char *fmt = arg(c, "format");
    unsigned code = MHD_HTTP_OK;
    if (!get)
        code = supervisor_ops_error(MHD_HTTP_METHOD_NOT_ALLOWED, "use GET for this endpoint", &body);
    else if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "jsonl") != 0)
        code = supervisor_ops_error(MHD_HTTP_BAD_REQUEST, "format= is csv or jsonl", &body);
    struct export_state *x = NULL;
    if (code == MHD_HTTP_OK) {
        x = xcalloc(1, sizeof(*x));
        x->s = s;
        x->jsonl = fmt && strcmp(fmt, "jsonl") == 0;
        supervisor_ops_who(s, c, false, x->who, sizeof(x->who));
        if (!x->jsonl)
            buf_puts(&x->out, SUPP_CSV_HEADER);
        /* the first page before the head: a spool that does not answer is an error status, not a cut stream */
        code = export_page(x, &body);
    }
    if (code != MHD_HTTP_OK) {
        if (x)
            export_free(x);
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "application/json");
        *ret = MHD_queue_response(c, code, r);
        MHD_destroy_response(r);
        return true;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, export_read, x, export_free);
    MHD_add_response_header(r, "Content-Type", x->jsonl ? "application/x-ndjson" : "text/csv; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    *ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return true;
}

unsigned supervisor_supp_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get, bool post,
                                 const void *json_body, char **body, const char **type)
{
    static const struct {
        const char *url;
        bool post;
        enum proto_admin_op op;
    } eps[] = {
        {"/api/v1/suppression", false, PROTO_ADMIN_SUPP_CHECK},
        {"/api/v1/suppression/list", false, PROTO_ADMIN_SUPP_LIST},
        {"/api/v1/suppression/add", true, PROTO_ADMIN_SUPP_ADD},
        {"/api/v1/suppression/remove", true, PROTO_ADMIN_SUPP_REMOVE},
        {"/api/v1/suppression/import", true, PROTO_ADMIN_SUPP_IMPORT},
    };
    size_t i = 0, n = sizeof(eps) / sizeof(eps[0]);
    *body = NULL;
    *type = NULL;
    while (i < n && strcmp(eps[i].url, url) != 0)
        i++;
    if (i == n)
        return 0;
    if (!get && !post)
        return supervisor_ops_error(MHD_HTTP_METHOD_NOT_ALLOWED, "use GET or POST", body);
    if (eps[i].post != post)
        return supervisor_ops_error(MHD_HTTP_METHOD_NOT_ALLOWED,
                                    post ? "use GET for this endpoint" : "use POST for this endpoint", body);
    char who[192];
    supervisor_ops_who(s, c, post, who, sizeof(who));
    if (strcmp(url, "/api/v1/suppression/import") == 0)
        return json_body ? import(s, json_body, who, body)
                         : supervisor_ops_error(MHD_HTTP_BAD_REQUEST, "the body is missing", body);
    struct proto_admin_req req = {.op = eps[i].op,
                                  .who = who,
                                  .args = {.address = arg(c, "address"),
                                           .tenant = arg(c, "tenant"),
                                           .reason = arg(c, "reason"),
                                           .source = arg(c, "source"),
                                           .after = arg(c, "after")}};
    if (!number(c, "limit", &req.args.limit) || !number(c, "expires", &req.args.expires))
        return supervisor_ops_error(MHD_HTTP_BAD_REQUEST, "limit and expires are whole numbers", body);
    if (eps[i].op != PROTO_ADMIN_SUPP_LIST && !req.args.address)
        return supervisor_ops_error(MHD_HTTP_BAD_REQUEST, "address= is required", body);
    json_t *result = NULL;
    unsigned code = supervisor_ops_ask(s, PROTO_NODE_ROLE_SPOOL, &req, &result, body);
    if (post)
        log_info("admin: %s by %s: HTTP %u", proto_admin_op_name(req.op), who, code);
    return done(code, result, body);
}
