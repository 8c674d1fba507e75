/*
 * spool_log_record_test - spool log records: every type field by field, hostile strings, refusals
 *
 * Everything written is read back with the real `zstdcat` and `jq` (skip 77 when missing), and
 * field values are compared with what the test put in, not with what the module built. Hostile
 * strings must still give valid JSON. Everything lives under one /tmp directory removed at the end.
 */
#include "tests/lib/check.h"
#include "tests/unit/spool/spool_log_test.h"

/* ---- case: one record of every type, field by field ---- */

static const struct spool_log_kv meta1[] = {{"tenant", "acme"}, {"campaign", "spring"}};
static const struct spool_log_kv hdr1[] = {{"Subject", "Hello"}, {"X-Nil", NULL}};

struct type_case {
    enum spool_log_type type;
    const char *name; /* expected `type` */
    struct spool_log_event ev;
};

static const struct type_case type_cases[] = {
    {SPOOL_LOG_RECEPTION, "Reception", {
        .id = "id-rcpt", .sender = "a@s.example", .recipient = "b@r.example", .queue = "r.example",
        .site = "ignored-for-reception", .size = 1047,
        .response = {250, 2, 0, 0, "OK queued", "."}, .peer_name = "client.example",
        .peer_addr = "127.0.0.9", .timestamp = 1700000001, .created = 1700000001,
        .egress_pool = "ignored", .egress_source = "ignored",
        .meta = meta1, .meta_count = 2, .headers = hdr1, .header_count = 2}},
    {SPOOL_LOG_DELIVERY, "Delivery", {
        .id = "id-dlv", .sender = "a@s.example", .recipient = "c@gmail.example",
        .queue = "spring:acme@gmail.example", .site = "(alt1|alt2)?.gmail-smtp-in.l.google.com",
        .size = 2048, .response = {250, 2, 0, 0, "OK ids=1", "."},
        .peer_name = "mx.gmail.example.", .peer_addr = "127.0.0.2", .timestamp = 1700000100,
        .created = 1700000001, .num_attempts = 1, .egress_pool = "pool0",
        .egress_source = "src1"}},
    {SPOOL_LOG_TRANSIENT_FAILURE, "TransientFailure", {
        .id = "id-tf", .sender = "a@s.example", .recipient = "d@y.example", .queue = "y.example",
        .site = "mx.y.example", .size = 3, .response = {451, 4, 7, 1, "try later", "RCPT TO"},
        .peer_name = "mx.y.example.", .peer_addr = "127.0.0.3", .timestamp = 1700000200,
        .created = 1700000002, .num_attempts = 2, .egress_pool = "pool1",
        .egress_source = "src2"}},
    {SPOOL_LOG_BOUNCE, "Bounce", {
        .id = "id-bnc", .sender = "a@s.example", .recipient = "e@z.example", .queue = "z.example",
        .site = "mx.z.example", .size = 4, .response = {550, 5, 1, 1, "no such user", "RCPT TO"},
        .peer_name = "mx.z.example.", .peer_addr = "127.0.0.4", .timestamp = 1700000300,
        .created = 1700000003, .num_attempts = 3, .bounce_classification = "InvalidRecipient",
        .egress_pool = "pool0", .egress_source = "src1"}},
    {SPOOL_LOG_EXPIRATION, "Expiration", {
        .id = "id-exp", .sender = "a@s.example", .recipient = "f@w.example", .queue = "w.example",
        .site = "mx.w.example", .size = 5, .response = {551, 5, 4, 7, "expired", NULL},
        .timestamp = 1700000400, .created = 1699000000, .num_attempts = 9}},
    {SPOOL_LOG_ADMIN_BOUNCE, "AdminBounce", {
        .id = "id-adm", .sender = "a@s.example", .recipient = "g@v.example", .queue = "v.example",
        .size = 6, .response = {551, 5, 6, 0, "bounced by admin", NULL},
        .timestamp = 1700000500, .created = 1700000005}},
    {SPOOL_LOG_REJECTION, "Rejection", {
        .sender = "spam@bad.example", .recipient = "h@u.example",
        .response = {550, 5, 7, 1, "relay denied", "RCPT TO"}, .peer_name = "bad-helo",
        .peer_addr = "127.0.0.66", .timestamp = 0}},
};
#define N_TYPES (sizeof(type_cases) / sizeof(type_cases[0]))

static const char *const all_fields[] = {
    "type", "id", "sender", "recipient", "queue", "site", "size", "response", "peer_address",
    "timestamp", "created", "num_attempts", "bounce_classification", "egress_pool",
    "egress_source", "meta", "headers", "nodeid",
};

static void check_record(const json_t *r, const struct type_case *tc, uint64_t now_ns)
{
    const struct spool_log_event *e = &tc->ev;
    bool inbound = tc->type == SPOOL_LOG_RECEPTION || tc->type == SPOOL_LOG_REJECTION;
    const char *t = tc->name;

    for (size_t i = 0; i < sizeof(all_fields) / sizeof(all_fields[0]); i++)
        CHECK(json_object_get(r, all_fields[i]) != NULL, "%s: field %s missing", t, all_fields[i]);
    CHECK(seq(sget(r, "type"), tc->name), "%s: type %s", t, sget(r, "type"));
    CHECK(seq(sget(r, "id"), e->id ? e->id : ""), "%s: id", t);
    CHECK(seq(sget(r, "sender"), e->sender), "%s: sender", t);
    CHECK(seq(sget(r, "recipient"), e->recipient), "%s: recipient", t);
    CHECK(seq(sget(r, "queue"), e->queue ? e->queue : ""), "%s: queue", t);
    CHECK(seq(sget(r, "site"), inbound || !e->site ? "" : e->site), "%s: site %s", t,
          sget(r, "site"));
    CHECK(iget(r, "size") == (long long)e->size, "%s: size %lld", t, iget(r, "size"));
    long long ts = e->timestamp ? e->timestamp : (long long)(now_ns / SEC);
    CHECK(iget(r, "timestamp") == ts, "%s: timestamp %lld want %lld", t, iget(r, "timestamp"), ts);
    if (e->created)
        CHECK(iget(r, "created") == e->created, "%s: created", t);
    else
        CHECK(json_is_null(json_object_get(r, "created")), "%s: created not null", t);
    CHECK(iget(r, "num_attempts") == e->num_attempts, "%s: num_attempts", t);
    CHECK(seq(sget(r, "bounce_classification"),
              e->bounce_classification ? e->bounce_classification : "Uncategorized"),
          "%s: bounce_classification", t);
    if (inbound || !e->egress_pool)
        CHECK(json_is_null(json_object_get(r, "egress_pool")), "%s: egress_pool not null", t);
    else
        CHECK(seq(sget(r, "egress_pool"), e->egress_pool), "%s: egress_pool", t);
    if (inbound || !e->egress_source)
        CHECK(json_is_null(json_object_get(r, "egress_source")), "%s: egress_source", t);
    else
        CHECK(seq(sget(r, "egress_source"), e->egress_source), "%s: egress_source", t);
    CHECK(seq(sget(r, "nodeid"), "node-7f3a"), "%s: nodeid", t);

    const json_t *resp = json_object_get(r, "response");
    CHECK(json_is_object(resp), "%s: response not an object", t);
    CHECK(iget(resp, "code") == e->response.code, "%s: response.code", t);
    CHECK(seq(sget(resp, "content"), e->response.content), "%s: response.content", t);
    if (e->response.command)
        CHECK(seq(sget(resp, "command"), e->response.command), "%s: response.command", t);
    else
        CHECK(json_is_null(json_object_get(resp, "command")), "%s: command not null", t);
    const json_t *enh = json_object_get(resp, "enhanced_code");
    CHECK(iget(enh, "class") == e->response.enh_class && iget(enh, "subject") ==
          e->response.enh_subject && iget(enh, "detail") == e->response.enh_detail,
          "%s: enhanced_code", t);

    const json_t *peer = json_object_get(r, "peer_address");
    if (e->peer_name || e->peer_addr)
        CHECK(seq(sget(peer, "name"), e->peer_name) && seq(sget(peer, "addr"), e->peer_addr),
              "%s: peer_address", t);
    else
        CHECK(json_is_null(peer), "%s: peer_address not null", t);

    const json_t *meta = json_object_get(r, "meta"), *hdr = json_object_get(r, "headers");
    CHECK(json_is_object(meta) && json_object_size(meta) == e->meta_count, "%s: meta size", t);
    for (size_t i = 0; i < e->meta_count; i++)
        CHECK(seq(sget(meta, e->meta[i].key), e->meta[i].value), "%s: meta %s", t,
              e->meta[i].key);
    CHECK(json_is_object(hdr) && json_object_size(hdr) == e->header_count, "%s: headers", t);
    for (size_t i = 0; i < e->header_count; i++) {
        if (e->headers[i].value)
            CHECK(seq(sget(hdr, e->headers[i].key), e->headers[i].value), "%s: header", t);
        else
            CHECK(json_is_null(json_object_get(hdr, e->headers[i].key)), "%s: null header", t);
    }
}

static void test_types(void)
{
    char dir[128];
    struct seglist sl;
    struct lines l;
    case_dir(dir, sizeof(dir), "types");
    struct spool_log_opts o = {.node_id = "node-7f3a"};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    static int (*const typed[N_TYPES])(struct spool_log *, const struct spool_log_event *) = {
        spool_log_reception, spool_log_delivery, spool_log_transient_failure, spool_log_bounce,
        spool_log_expiration, spool_log_admin_bounce, spool_log_rejection,
    };
    for (size_t i = 0; i < N_TYPES; i++) {
        int r = typed[i](lg, &type_cases[i].ev);
        CHECK(r == 0, "typed helper %zu = %d", i, r);
    }
    CHECK(spool_log_flush(lg) == 0, "flush");
    CHECK(spool_log_active_path(lg) != NULL, "no active segment after a flush");
    /* the active segment is readable before the writer finishes it */
    read_log(spool_log_active_path(lg), true, &l);
    CHECK(l.status == 0 && l.n == N_TYPES, "active: status %d, %zu records", l.status, l.n);
    lines_free(&l);
    CHECK(spool_log_close(lg) == 0, "close");

    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 0, "%zu segments, %zu active after close", sl.n, sl.active);
    CHECK(sl.n == 1 && strcmp(sl.name[0], "20231114-221320.000000.jsonl.zst") == 0,
          "segment name %s", sl.n ? sl.name[0] : "(none)");
    if (sl.n != 1)
        return;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, sl.name[0]);
    read_log(path, true, &l);
    CHECK(l.status == 0, "zstdcat|jq status %d", l.status);
    CHECK(l.n == N_TYPES && l.bad == 0, "%zu records, %zu bad lines", l.n, l.bad);
    for (size_t i = 0; i < l.n && i < N_TYPES; i++)
        check_record(l.rec[i], &type_cases[i], T0);
    lines_free(&l);
}

/* ---- case: hostile strings give valid JSON ---- */

struct hostile_case {
    const char *in;
    const char *want; /* string after decoding the JSON */
};

#define FFFD "\xef\xbf\xbd"
static const struct hostile_case hostile[] = {
    {"plain@example.com", "plain@example.com"},
    {"\"quoted\\\"local\"@x", "\"quoted\\\"local\"@x"},
    {"ctl\x01\x02\x1f\x7f end", "ctl\x01\x02\x1f\x7f end"},
    {"crlf\r\nMAIL FROM:<x>\r\n", "crlf\r\nMAIL FROM:<x>\r\n"},
    {"tab\tand\bback\fform", "tab\tand\bback\fform"},
    {"lone\xff" "byte", "lone" FFFD "byte"},
    {"\x80\x80", FFFD FFFD},
    {"overlong\xc0\xaf", "overlong" FFFD FFFD},
    {"surrogate\xed\xa0\x80", "surrogate" FFFD FFFD FFFD},
    {"toobig\xf4\x90\x80\x80", "toobig" FFFD FFFD FFFD FFFD},
    {"cut\xe2\x82", "cut" FFFD FFFD},
    {"cut4\xf0\x9f\x98", "cut4" FFFD FFFD FFFD},
    {"ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    {"sep\xe2\x80\xa8\xe2\x80\xa9", "sep\xe2\x80\xa8\xe2\x80\xa9"},
    {"</script><!--'\\u0000", "</script><!--'\\u0000"},
    {"", ""},
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void test_hostile(void)
{
    char dir[128];
    struct lines l;
    case_dir(dir, sizeof(dir), "hostile");
    struct spool_log_opts o = {.node_id = "n\xff"};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    for (size_t i = 0; i < N_HOSTILE; i++) {
        const char *s = hostile[i].in;
        struct spool_log_kv kv[] = {{"k", s}, {s, "v"}};
        struct spool_log_event ev = {
            .id = s, .sender = s, .recipient = s, .queue = s, .site = s,
            .response = {421, 4, 0, 0, s, s}, .peer_name = s, .peer_addr = s,
            .bounce_classification = s, .egress_pool = s, .egress_source = s,
            .meta = kv, .meta_count = 1, .headers = kv + 1, .header_count = 1};
        int r = spool_log_bounce(lg, &ev);
        CHECK(r == 0, "hostile %zu: write = %d", i, r);
    }
    const char *path = NULL;
    CHECK(spool_log_flush(lg) == 0 && (path = spool_log_active_path(lg)) != NULL, "flush");
    if (path) {
        read_log(path, true, &l);
        CHECK(l.status == 0, "hostile: zstdcat|jq status %d", l.status);
        CHECK(l.n == N_HOSTILE && l.bad == 0, "hostile: %zu records, %zu bad", l.n, l.bad);
        for (size_t i = 0; i < l.n && i < N_HOSTILE; i++) {
            const json_t *r = l.rec[i];
            const char *w = hostile[i].want;
            static const char *const keys[] = {"id", "sender", "recipient", "site",
                                               "queue", "egress_pool", "egress_source",
                                               "bounce_classification"};
            for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
                CHECK(seq(sget(r, keys[k]), w), "hostile %zu: %s", i, keys[k]);
            CHECK(seq(sget(json_object_get(r, "response"), "content"), w), "hostile %zu", i);
            CHECK(seq(sget(json_object_get(r, "response"), "command"), w), "hostile %zu", i);
            CHECK(seq(sget(json_object_get(r, "peer_address"), "name"), w), "hostile %zu", i);
            CHECK(seq(sget(json_object_get(r, "meta"), "k"), w), "hostile %zu: meta", i);
            CHECK(seq(sget(json_object_get(r, "headers"), w), "v"), "hostile %zu: key", i);
            CHECK(seq(sget(r, "nodeid"), "n" FFFD), "hostile %zu: nodeid", i);
        }
        lines_free(&l);
    }
    CHECK(spool_log_close(lg) == 0, "close");
}

/* ---- case: refusals ---- */

static void test_refusals(void)
{
    char dir[128];
    json_t *rec = NULL;
    case_dir(dir, sizeof(dir), "refuse");
    struct spool_log_event ev = {.id = "x"};
    struct spool_log_kv nullkey = {NULL, "v"};

    CHECK(spool_log_build(NULL, (enum spool_log_type)99, &ev, &rec) == -EINVAL && !rec,
          "unknown type accepted");
    CHECK(spool_log_type_name(SPOOL_LOG__MAX) == NULL, "type name past the end");
    ev.meta = &nullkey;
    ev.meta_count = 1;
    CHECK(spool_log_build(NULL, SPOOL_LOG_DELIVERY, &ev, &rec) == -EINVAL, "NULL meta key");

    struct spool_log_opts bad = {.dir = dir, .zstd_level = 1000};
    struct spool_log *lg = NULL;
    CHECK(spool_log_open(&bad, T0, &lg) == -EINVAL && !lg, "zstd level 1000 accepted");
    struct spool_log_opts nodir = {.dir = ""};
    CHECK(spool_log_open(&nodir, T0, &lg) == -EINVAL, "empty dir accepted");

    struct spool_log_opts o = {0};
    lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    struct spool_log *second = NULL;
    o.dir = dir;
    CHECK(spool_log_open(&o, T0, &second) == -EBUSY, "second writer on one directory");
    json_t *arr = json_array();
    CHECK(spool_log_write(lg, arr) == -EINVAL, "array accepted as a record");
    json_decref(arr);
    json_t *inval = json_object();
    json_object_set_new(inval, "x", json_string_nocheck("\xff"));
    CHECK(spool_log_write(lg, inval) == -EINVAL, "invalid UTF-8 object accepted");
    json_decref(inval);
    CHECK(spool_log_close(lg) == 0, "close");
    struct seglist sl;
    list_segments(dir, &sl);
    CHECK(sl.n == 0, "refused records made %zu segments", sl.n);
    CHECK(spool_log_close(NULL) == 0, "close(NULL)");
}

int main(void)
{
    int rc = spool_log_test_start();

    if (rc != 0)
        return rc;
    test_types();
    test_hostile();
    test_refusals();
    spool_log_test_end();
    CHECK_EXIT();
}
