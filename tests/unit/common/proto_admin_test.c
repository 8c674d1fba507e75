/*
 * proto_admin_test - the command channel's documents: round trips, and the decoders' refusals (each side
 * decodes what the other wrote: nothing is taken on trust)
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_admin.h"
#include "tests/lib/check.h"

static void test_request_round_trip(void)
{
    struct proto_admin_req r = {.id = 9, .op = PROTO_ADMIN_SUSPEND, .deadline_ms = 1765000005000, .who = "api@::1",
                                .args = {.domain = "good.test", .tenant = "acme", .reason = "incident 42 — ünïcode",
                                         .duration_ms = 7200000}};
    char *text = proto_admin_req_encode(&r);
    struct proto_admin_req out;
    char *err = NULL;
    CHECK(text && proto_admin_req_decode(text, strlen(text), &out, &err) == 0, "decode: %s", err ? err : "");
    CHECK(out.id == 9 && out.op == PROTO_ADMIN_SUSPEND && out.deadline_ms == 1765000005000 &&
              strcmp(out.who, "api@::1") == 0 && strcmp(out.args.domain, "good.test") == 0 &&
              strcmp(out.args.tenant, "acme") == 0 && !out.args.campaign && out.args.duration_ms == 7200000 &&
              strcmp(out.args.reason, r.args.reason) == 0,
          "round trip");
    proto_admin_req_fini(&out);
    free(text);
    r.args.reason = "line\nbreak";
    CHECK(proto_admin_req_encode(&r) == NULL, "the encoder refuses what the decoder would");

    /* rebind and abort-ready-q-conn: their targets travel */
    struct proto_admin_req rb = {.id = 10, .op = PROTO_ADMIN_REBIND, .deadline_ms = 1, .who = "api",
                                 .args = {.domain = "d.test", .to_route = "[127.0.0.4]:25", .reason = "mx broken"}};
    text = proto_admin_req_encode(&rb);
    CHECK(text && proto_admin_req_decode(text, strlen(text), &out, &err) == 0 && out.op == PROTO_ADMIN_REBIND &&
              strcmp(out.args.to_route, "[127.0.0.4]:25") == 0 && !out.args.to_queue,
          "rebind round trip: %s", err ? err : "");
    proto_admin_req_fini(&out);
    free(text);
    rb.op = PROTO_ADMIN_ABORT_PATH_CONN;
    rb.args = (struct proto_admin_args){.name = "default->mx.d.test", .to_queue = "q"};
    text = proto_admin_req_encode(&rb);
    CHECK(text && proto_admin_req_decode(text, strlen(text), &out, &err) == 0 &&
              strcmp(proto_admin_op_name(out.op), "abort-ready-q-conn") == 0 && strcmp(out.args.to_queue, "q") == 0,
          "abort round trip");
    proto_admin_req_fini(&out);
    free(text);
}

static void test_request_refusals(void)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "not JSON"},
        {"[]", "not an object"},
        {"{\"id\":0,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{}}", "id 0"},
        {"{\"id\":-1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{}}", "negative id"},
        {"{\"id\":1,\"op\":\"rm -rf\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{}}", "unknown op"},
        {"{\"id\":1,\"op\":\"suspend\",\"who\":\"x\",\"args\":{}}", "no deadline"},
        {"{\"id\":1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\"}", "no args"},
        {"{\"id\":1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"evil\":\"1\"}}", "unknown arg"},
        {"{\"id\":1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"domain\":7}}", "arg type"},
        {"{\"id\":1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"domain\":\"a\\u0000b\"}}",
         "NUL inside"},
        {"{\"id\":1,\"op\":\"suspend\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"reason\":\"a\\rb\"}}",
         "control character"},
        {"{\"id\":1,\"op\":\"queue-summary\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"by\":\"moon\"}}", "by"},
        {"{\"id\":1,\"op\":\"queue-summary\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"limit\":1.5}}", "limit"},
        {"{\"id\":1,\"id\":2,\"op\":\"queue-summary\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{}}", "duplicate"},
        {"{\"id\":1,\"op\":\"suppression-import\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"entries\":{}}}",
         "entries not an array"},
        {"{\"id\":1,\"op\":\"suppression-import\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"entries\":[1]}}",
         "an entry not an object"},
        {"{\"id\":1,\"op\":\"suppression-import\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"entries\":"
         "[{\"address\":{\"nested\":1}}]}}",
         "a nested member"},
        {"{\"id\":1,\"op\":\"suppression-import\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"entries\":"
         "[{\"address\":\"a\\nb\"}]}}",
         "a control character in an entry"},
        {"{\"id\":1,\"op\":\"suppression-import\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"entries\":"
         "[{\"expires\":-1}]}}",
         "a negative number in an entry"},
        {"{\"id\":1,\"op\":\"suppression-add\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"expires\":\"x\"}}",
         "expires"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_admin_req r;
        char *err = NULL;
        int rc = proto_admin_req_decode(bad[i].text, strlen(bad[i].text), &r, &err);
        CHECK(rc == -EPROTO && err && *err && r.tree == NULL, "%s: accepted", bad[i].why);
        free(err);
    }
}

/* the suppression ops: entries round trip; more than PROTO_ADMIN_ROWS_MAX are refused by the encoder */
static void test_supp_ops(void)
{
    json_t *rows = json_array();
    json_array_append_new(rows, json_pack("{s:s, s:s, s:I}", "address", "u@x.org", "reason", "complaint", "expires",
                                          (json_int_t)5));
    struct proto_admin_req r = {.id = 3, .op = PROTO_ADMIN_SUPP_IMPORT, .deadline_ms = 9, .who = "t",
                                .args = {.entries = rows, .address = "a@b.c", .after = "/a@b.c", .source = "s",
                                         .expires = 7}};
    char *text = proto_admin_req_encode(&r);
    CHECK(text != NULL, "encode");
    struct proto_admin_req d;
    char *err = NULL;
    CHECK(text && proto_admin_req_decode(text, strlen(text), &d, &err) == 0, "decode: %s", err ? err : "");
    if (!err) {
        CHECK(d.op == PROTO_ADMIN_SUPP_IMPORT && proto_admin_op_spool(d.op), "a spool op");
        CHECK(json_equal((json_t *)d.args.entries, rows), "entries");
        CHECK(!strcmp(d.args.address, "a@b.c") && !strcmp(d.args.after, "/a@b.c") && !strcmp(d.args.source, "s") &&
                  d.args.expires == 7,
              "arguments");
        proto_admin_req_fini(&d);
    }
    free(err);
    free(text);
    for (int i = 0; i < PROTO_ADMIN_ROWS_MAX; i++)
        json_array_append_new(rows, json_pack("{s:s}", "address", "u@x.org"));
    CHECK(proto_admin_req_encode(&r) == NULL, "more than PROTO_ADMIN_ROWS_MAX entries");
    json_decref(rows);
    for (int op = PROTO_ADMIN_SUPP_CHECK; op <= PROTO_ADMIN_SUPP_IMPORT; op++) {
        enum proto_admin_op back;
        CHECK(proto_admin_op_parse(proto_admin_op_name((enum proto_admin_op)op), &back) && (int)back == op, "op %d", op);
    }
}

static void test_replies(void)
{
    static const struct {
        enum proto_admin_op op;
        const char *text;
        int rc;
        const char *why;
    } cases[] = {
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":200,\"result\":{\"items\":[]}}", 0, "a list"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":404,\"error\":\"no such\"}", 0, "an error"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":4,\"status\":200,\"result\":{\"rows\":[]}}", -ESTALE, "another id first"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":200,\"result\":{\"rows\":[]}}", -EPROTO, "promise broken"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":200}", -EPROTO, "no result"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":700,\"error\":\"x\"}", -EPROTO, "status out of range"},
        {PROTO_ADMIN_SUSPEND_LIST, "{\"id\":5,\"status\":500}", -EPROTO, "error without text"},
        {PROTO_ADMIN_QUEUE_SUMMARY, "{\"id\":5,\"status\":200,\"result\":{\"rows\":[],\"queues\":[],\"totals\":{}}}", 0,
         "a summary"},
        {PROTO_ADMIN_QUEUE_SUMMARY, "{\"id\":5,\"status\":200,\"result\":{\"rows\":{},\"queues\":[],\"totals\":{}}}",
         -EPROTO, "rows of the wrong type"},
        {PROTO_ADMIN_INSPECT_PATH,
         "{\"id\":5,\"status\":200,\"result\":{\"path\":{\"a\":[[[[[[[1]]]]]]]},\"messages\":[]}}", -EPROTO,
         "too deep"},
        {PROTO_ADMIN_REBIND, "{\"id\":5,\"status\":200,\"result\":{\"item\":{\"moved\":3}}}", 0, "a rebind"},
        {PROTO_ADMIN_REBIND, "{\"id\":5,\"status\":200,\"result\":{\"items\":[]}}", -EPROTO, "rebind without item"},
        {PROTO_ADMIN_ABORT_PATH_CONN, "{\"id\":5,\"status\":200,\"result\":{\"item\":{\"closed\":1}}}", 0, "an abort"},
        {PROTO_ADMIN_WARMUP_STATUS, "{\"id\":5,\"status\":200,\"result\":{\"now_ms\":1,\"sources\":[]}}", 0,
         "a warm-up status"},
        {PROTO_ADMIN_WARMUP_STATUS, "{\"id\":5,\"status\":200,\"result\":{\"sources\":{}}}", -EPROTO,
         "warm-up sources of the wrong type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct proto_admin_reply r;
        char *err = NULL;
        int rc = proto_admin_reply_decode(cases[i].text, strlen(cases[i].text), cases[i].op, 5, &r, &err);
        CHECK(rc == cases[i].rc, "%s: %d (%s)", cases[i].why, rc, err ? err : "");
        CHECK(rc == 0 ? r.tree != NULL && r.status >= 200 : r.tree == NULL && err != NULL, "%s: output", cases[i].why);
        free(err);
        proto_admin_reply_fini(&r);
    }
    json_t *res = json_pack("{s:[]}", "items");
    char *text = proto_admin_reply_encode(77, 200, NULL, res);
    struct proto_admin_reply r;
    char *err = NULL;
    CHECK(proto_admin_reply_decode(text, strlen(text), PROTO_ADMIN_BOUNCE_LIST, 77, &r, &err) == 0 && r.status == 200 &&
              json_is_array(json_object_get(r.result, "items")),
          "encoded reply decodes");
    proto_admin_reply_fini(&r);
    free(text);
    json_decref(res);
}

/* the inspect-message and spool-compact ops: names, the spool's ops, the message id argument */
static void test_inspect_ops(void)
{
    static const struct {
        enum proto_admin_op op;
        const char *name;
        bool spool;
    } ops[] = {
        {PROTO_ADMIN_INSPECT_MESSAGE, "inspect-message-sched", false},
        {PROTO_ADMIN_SPOOL_INSPECT, "inspect-message-spool", true},
        {PROTO_ADMIN_SPOOL_COMPACT, "spool-compact", true},
        {PROTO_ADMIN_SPOOL_COMPACT_STATUS, "spool-compact-status", true},
        {PROTO_ADMIN_INSPECT_PATH, "inspect-ready-q", false},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        enum proto_admin_op op;
        CHECK(strcmp(proto_admin_op_name(ops[i].op), ops[i].name) == 0 && proto_admin_op_parse(ops[i].name, &op) &&
                  op == ops[i].op && proto_admin_op_spool(op) == ops[i].spool,
              "op %s", ops[i].name);
    }
    const char *id = "01a2505df65c000200c458b007500000";
    struct proto_admin_req r = {.id = 3, .op = PROTO_ADMIN_SPOOL_INSPECT, .deadline_ms = 1, .who = "api",
                                .args = {.message = id, .body = true}};
    char *text = proto_admin_req_encode(&r);
    struct proto_admin_req out;
    char *err = NULL;
    CHECK(text && proto_admin_req_decode(text, strlen(text), &out, &err) == 0, "decode: %s", err ? err : "");
    CHECK(out.op == PROTO_ADMIN_SPOOL_INSPECT && out.args.body && strcmp(out.args.message, id) == 0 &&
              !out.args.limit,
          "inspect round trip");
    proto_admin_req_fini(&out);
    free(text);
    r.args.message = "01A2505DF65C000200C458B007500000"; /* msgid_parse takes either case */
    text = proto_admin_req_encode(&r);
    CHECK(text != NULL, "upper case id");
    free(text);
    static const char *const bad_ids[] = {"", "xyz", "01a2505df65c000200c458b00750000",
                                          "01a2505df65c000200c458b0075000000", "01a2505df65c000200c458b00750000g",
                                          "01a2505df65c000200c458b00750000 ", "../../etc/passwd"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        r.args.message = bad_ids[i];
        CHECK(proto_admin_req_encode(&r) == NULL, "encoder took id \"%s\"", bad_ids[i]);
        char *doc = NULL;
        CHECK(asprintf(&doc, "{\"id\":1,\"op\":\"inspect-message-spool\",\"deadline_ms\":1,\"who\":\"x\","
                             "\"args\":{\"message\":\"%s\"}}", bad_ids[i]) > 0, "asprintf");
        CHECK(proto_admin_req_decode(doc, strlen(doc), &out, &err) == -EPROTO && out.tree == NULL,
              "decoder took id \"%s\"", bad_ids[i]);
        free(err);
        err = NULL;
        free(doc);
    }
    static const char *const bad_body[] = {
        "{\"id\":1,\"op\":\"inspect-message-spool\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"body\":1}}",
        "{\"id\":1,\"op\":\"inspect-message-spool\",\"deadline_ms\":1,\"who\":\"x\",\"args\":{\"message\":7}}",
    };
    for (size_t i = 0; i < sizeof(bad_body) / sizeof(bad_body[0]); i++) {
        CHECK(proto_admin_req_decode(bad_body[i], strlen(bad_body[i]), &out, &err) == -EPROTO, "took %s", bad_body[i]);
        free(err);
        err = NULL;
    }

    static const struct {
        enum proto_admin_op op;
        const char *text;
        int rc;
    } replies[] = {
        {PROTO_ADMIN_INSPECT_MESSAGE, "{\"id\":5,\"status\":200,\"result\":{\"entries\":[]}}", 0},
        {PROTO_ADMIN_INSPECT_MESSAGE, "{\"id\":5,\"status\":200,\"result\":{\"entries\":{}}}", -EPROTO},
        {PROTO_ADMIN_SPOOL_INSPECT, "{\"id\":5,\"status\":200,\"result\":{\"message\":{},\"recipients\":[]}}", 0},
        {PROTO_ADMIN_SPOOL_INSPECT, "{\"id\":5,\"status\":200,\"result\":{\"message\":{}}}", -EPROTO},
        {PROTO_ADMIN_SPOOL_INSPECT, "{\"id\":5,\"status\":404,\"error\":\"no such message in the spool\"}", 0},
        {PROTO_ADMIN_SPOOL_COMPACT, "{\"id\":5,\"status\":200,\"result\":{\"compaction\":{\"state\":\"running\"}}}", 0},
        {PROTO_ADMIN_SPOOL_COMPACT, "{\"id\":5,\"status\":409,\"error\":\"a compaction is running\"}", 0},
        {PROTO_ADMIN_SPOOL_COMPACT_STATUS, "{\"id\":5,\"status\":200,\"result\":{\"compaction\":[]}}", -EPROTO},
    };
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        struct proto_admin_reply rep;
        int rc = proto_admin_reply_decode(replies[i].text, strlen(replies[i].text), replies[i].op, 5, &rep, &err);
        CHECK(rc == replies[i].rc, "reply %zu: %d (%s)", i, rc, err ? err : "");
        free(err);
        err = NULL;
        proto_admin_reply_fini(&rep);
    }
    /* a body chunk at the limit of a result's strings passes; one byte more is refused */
    char chunk[4 * PROTO_ADMIN_BODY_CHUNK / 3 + 2];
    memset(chunk, 'A', sizeof(chunk) - 1);
    chunk[4 * PROTO_ADMIN_BODY_CHUNK / 3] = '\0';
    json_t *res = json_pack("{s:{s:[s]}, s:[]}", "message", "body_base64", chunk, "recipients");
    text = proto_admin_reply_encode(6, 200, NULL, res);
    struct proto_admin_reply rep;
    CHECK(proto_admin_reply_decode(text, strlen(text), PROTO_ADMIN_SPOOL_INSPECT, 6, &rep, &err) == 0,
          "a full body chunk: %s", err ? err : "");
    proto_admin_reply_fini(&rep);
    free(text);
    json_decref(res);
}

int main(void)
{
    test_inspect_ops();
    test_request_round_trip();
    test_request_refusals();
    test_replies();
    test_supp_ops();
    CHECK_EXIT();
}
