/*
 * spool_log_test - log records of every type, segments, rotation, crashes, write errors
 *
 * Everything written is read back with the real `zstdcat` and `jq` (skip 77 when missing),
 * and field values are compared with what the test put in, not with what the module built.
 * Time is driven through spool_log_tick(), never slept. Write errors come from
 * RLIMIT_FSIZE (EFBIG, partial writes included), which needs no root and no mount. A child
 * writer is SIGKILLed mid-run: every record it had reported flushed must be in its active
 * segment. Everything lives under one /tmp directory removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "spool/spool_log.h"
#include "tests/lib/check.h"

#define SEC 1000000000ull
#define T0 (1700000000ull * SEC) /* 2023-11-14 22:13:20 UTC */

static char root[64];
static char scratch[128];

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void case_dir(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", root, name);
}

struct lines {
    json_t **rec; /* parsed records, in order */
    size_t n;
    size_t bad; /* lines that are not JSON (a partial last line after a crash) */
    int status; /* shell status: zstdcat * 16 + jq, or zstdcat alone */
};

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->rec[i]);
    free(l->rec);
    memset(l, 0, sizeof(*l));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    *len = n;
    return b;
}

/*
 * read_log - zstdcat the segment; with jq, pipe through `jq -c .` (whose exit status must
 * then be checked by the caller) and parse jq's output, else parse zstdcat's output itself.
 */
static void read_log(const char *seg, bool with_jq, struct lines *out)
{
    char cmd[1024], res[256];
    memset(out, 0, sizeof(*out));
    snprintf(res, sizeof(res), "%s/out", scratch);
    if (with_jq)
        snprintf(cmd, sizeof(cmd),
                 "zstdcat -q -- '%s' > '%s.raw' 2>/dev/null; z=$?; jq -c . < '%s.raw' > '%s' "
                 "2>/dev/null; j=$?; exit $((z * 16 + j))", seg, res, res, res);
    else
        snprintf(cmd, sizeof(cmd), "zstdcat -q -- '%s' > '%s' 2>/dev/null", seg, res);
    int st = system(cmd);
    out->status = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
    size_t len;
    char *text = slurp(res, &len);
    if (!text)
        return;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\n')
            continue;
        json_t *j = json_loadb(text + start, i - start, 0, NULL);
        if (j && json_is_object(j)) {
            out->rec = realloc(out->rec, (out->n + 1) * sizeof(*out->rec));
            out->rec[out->n++] = j;
        } else {
            json_decref(j);
            out->bad++;
        }
        start = i + 1;
    }
    if (start < len)
        out->bad++; /* a last line without its newline */
    free(text);
}

struct seglist {
    char name[64][64];
    size_t n;
    size_t active;
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* list_segments - every *.jsonl.zst and *.jsonl.zst.active in dir, sorted by name */
static void list_segments(const char *dir, struct seglist *sl)
{
    memset(sl, 0, sizeof(*sl));
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && sl->n < 64) {
        const char *dot = strstr(de->d_name, ".jsonl.zst");
        if (!dot || strlen(de->d_name) >= sizeof(sl->name[0]))
            continue;
        memcpy(sl->name[sl->n++], de->d_name, strlen(de->d_name) + 1);
        if (strcmp(dot, ".jsonl.zst.active") == 0)
            sl->active++;
    }
    closedir(d);
    qsort(sl->name, sl->n, sizeof(sl->name[0]), cmp_name);
}

static const char *sget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static long long iget(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return -424242;
}

static bool seq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static struct spool_log *open_dir(const char *dir, uint64_t now, struct spool_log_opts *o)
{
    struct spool_log *lg = NULL;
    o->dir = dir;
    int r = spool_log_open(o, now, &lg);
    CHECK(r == 0, "spool_log_open(%s) = %d", dir, r);
    return lg;
}

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

/* ---- case: rotation by size, flush by buffer size ---- */

static void event_n(struct spool_log_event *ev, char *id, size_t idsize, unsigned n)
{
    /* ids from a multiplicative hash: poorly compressible, so segments fill up */
    snprintf(id, idsize, "%08x%08x-%06u", n * 2654435761u, (n + 7) * 2246822519u, n);
    memset(ev, 0, sizeof(*ev));
    ev->id = id;
    ev->sender = "s@x.example";
    ev->recipient = "r@y.example";
    ev->response.code = 250;
    ev->timestamp = 1700000000 + n;
}

static unsigned id_num(const json_t *r)
{
    const char *id = sget(r, "id");
    const char *dash = id ? strrchr(id, '-') : NULL;
    return dash ? (unsigned)strtoul(dash + 1, NULL, 10) : 0xffffffffu;
}

/* read_all - every segment of dir in name order; *expect_next counts records in order */
static void read_all(const char *dir, unsigned *expect_next, size_t *segments, bool jq)
{
    struct seglist sl;
    struct lines l;
    char path[256];
    list_segments(dir, &sl);
    *segments = sl.n;
    for (size_t s = 0; s < sl.n; s++) {
        snprintf(path, sizeof(path), "%s/%s", dir, sl.name[s]);
        read_log(path, jq, &l);
        CHECK(l.status == 0 && l.bad == 0, "%s: status %d, %zu bad", sl.name[s], l.status, l.bad);
        for (size_t i = 0; i < l.n; i++) {
            unsigned n = id_num(l.rec[i]);
            CHECK(n == *expect_next, "%s: record %u where %u expected", sl.name[s], n,
                  *expect_next);
            *expect_next = n + 1;
        }
        lines_free(&l);
    }
}

static void test_size_rotation(void)
{
    char dir[128], id[64], path[256];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "size");
    struct spool_log_opts o = {.max_segment_bytes = 2000, .flush_bytes = 1500};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    const unsigned total = 300;
    for (unsigned n = 0; n < total; n++) {
        event_n(&ev, id, sizeof(id), n);
        CHECK(spool_log_delivery(lg, &ev) == 0, "write %u", n);
        if (n == 2) {
            spool_log_stats_get(lg, &st);
            CHECK(st.flushes == 0 && st.pending_bytes > 0, "flushed before the threshold");
        }
    }
    /* no tick and no explicit flush so far: only the buffer threshold wrote anything */
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes > 3, "buffer threshold flushed %llu times", (unsigned long long)st.flushes);
    CHECK(st.segments_done >= 2, "size rotation finished %llu segments",
          (unsigned long long)st.segments_done);
    CHECK(st.records == total, "records %llu", (unsigned long long)st.records);
    CHECK(spool_log_close(lg) == 0, "close");

    list_segments(dir, &sl);
    CHECK(sl.n >= 3 && sl.active == 0, "%zu segments, %zu active", sl.n, sl.active);
    for (size_t s = 0; s + 1 < sl.n; s++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, sl.name[s]);
        CHECK(stat(path, &sb) == 0 && sb.st_size >= 2000, "%s finished at %lld bytes",
              sl.name[s], (long long)sb.st_size);
    }
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == total, "read back %u of %u records", next, total);
}

/* ---- case: flush timer and rotation by age, driven through tick ---- */

static void test_age_rotation(void)
{
    char dir[128], id[64];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "age");
    struct spool_log_opts o = {.flush_interval_ns = SEC, .max_segment_age_ns = 60 * SEC};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    event_n(&ev, id, sizeof(id), 0);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 + SEC / 2) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes == 0 && spool_log_active_path(lg) == NULL, "flushed before the interval");
    CHECK(spool_log_tick(lg, T0 + SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.flushes == 1 && st.pending_bytes == 0, "not flushed at the interval");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 1 &&
          strcmp(sl.name[0], "20231114-221321.000000.jsonl.zst.active") == 0,
          "active segment %s", sl.n ? sl.name[0] : "(none)");

    event_n(&ev, id, sizeof(id), 1);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 + 30 * SEC) == 0, "tick");
    CHECK(spool_log_tick(lg, T0 + 60 * SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.segments_done == 0, "finished before its age");
    CHECK(spool_log_tick(lg, T0 + 61 * SEC) == 0, "tick");
    spool_log_stats_get(lg, &st);
    CHECK(st.segments_done == 1 && spool_log_active_path(lg) == NULL, "not finished by age");

    /* an idle writer makes no empty segments */
    CHECK(spool_log_tick(lg, T0 + 200 * SEC) == 0, "tick");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 0 &&
          strcmp(sl.name[0], "20231114-221321.000000.jsonl.zst") == 0, "after age: %s",
          sl.n ? sl.name[0] : "(none)");

    /* the clock steps back an hour: the next segment still sorts after the last one */
    event_n(&ev, id, sizeof(id), 2);
    CHECK(spool_log_transient_failure(lg, &ev) == 0, "write");
    CHECK(spool_log_tick(lg, T0 - 3600 * SEC) == 0, "tick");
    CHECK(spool_log_flush(lg) == 0, "flush");
    CHECK(spool_log_sync(lg) == 0, "sync");
    list_segments(dir, &sl);
    CHECK(sl.n == 2 && strcmp(sl.name[1], "20231114-221321.000001.jsonl.zst.active") == 0,
          "after the clock step: %s", sl.n == 2 ? sl.name[1] : "(none)");
    CHECK(spool_log_close(lg) == 0, "close");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == 3 && segs == 2, "read back %u records in %zu segments", next, segs);
}

/* ---- case: write errors (EFBIG from RLIMIT_FSIZE) and recovery ---- */

static void set_fsize(rlim_t lim)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = lim;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        perror("setrlimit");
}

static void test_write_errors(void)
{
    char dir[128], id[64];
    struct spool_log_event ev;
    struct spool_log_stats st;
    struct stat sb;
    struct rlimit saved;
    case_dir(dir, sizeof(dir), "errors");
    getrlimit(RLIMIT_FSIZE, &saved);
    struct spool_log_opts o = {.flush_bytes = 128 * 1024, .max_pending_bytes = 256 * 1024};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    unsigned n = 0;
    for (; n < 10; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_bounce(lg, &ev);
    }
    CHECK(spool_log_flush(lg) == 0, "first flush");
    char path[256];
    snprintf(path, sizeof(path), "%s", spool_log_active_path(lg));
    CHECK(stat(path, &sb) == 0, "stat");
    off_t good = sb.st_size;

    for (; n < 100; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_bounce(lg, &ev);
    }
    /* room for a few bytes of the next frame: a partial write, then EFBIG */
    set_fsize((rlim_t)good + 10);
    int r = spool_log_flush(lg);
    int r2 = spool_log_tick(lg, T0 + 10 * SEC);
    set_fsize(saved.rlim_cur);
    CHECK(r == -EFBIG && r2 == -EFBIG, "flush under the limit = %d, tick = %d", r, r2);
    CHECK(stat(path, &sb) == 0 && sb.st_size == good, "partial frame left: %lld of %lld",
          (long long)sb.st_size, (long long)good);
    struct lines l;
    read_log(path, true, &l);
    CHECK(l.status == 0 && l.n == 10, "while failing: status %d, %zu records", l.status, l.n);
    lines_free(&l);

    /* while failing, records pile up in memory until the cap, then are refused */
    set_fsize((rlim_t)good);
    int refused = 0;
    for (; n < 5000 && !refused; n++) {
        event_n(&ev, id, sizeof(id), n);
        r = spool_log_bounce(lg, &ev);
        if (r == -ENOBUFS)
            refused = 1;
        else
            CHECK(r == 0, "write while failing = %d", r);
    }
    set_fsize(saved.rlim_cur);
    n--; /* the refused record is not in the log */
    spool_log_stats_get(lg, &st);
    CHECK(refused && st.dropped == 1, "no -ENOBUFS at the cap (dropped %llu)",
          (unsigned long long)st.dropped);
    CHECK(st.flush_errors >= 2, "flush errors %llu", (unsigned long long)st.flush_errors);

    /* the error cleared: the next tick writes everything kept */
    r = spool_log_tick(lg, T0 + 20 * SEC);
    CHECK(r == 0, "tick after the error cleared = %d", r);
    spool_log_stats_get(lg, &st);
    CHECK(st.pending_bytes == 0, "still %zu bytes pending", st.pending_bytes);
    event_n(&ev, id, sizeof(id), n++);
    CHECK(spool_log_bounce(lg, &ev) == 0, "write after recovery");
    CHECK(spool_log_close(lg) == 0, "close");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == n, "read back %u of %u records after the error", next, n);
}

/* ---- case: SIGKILL of a writer: every flushed record is in the active segment ---- */

static void child_writer(const char *dir, int wfd)
{
    struct spool_log *lg = NULL;
    struct spool_log_opts o = {.dir = dir, .flush_interval_ns = 3600 * SEC};
    char id[64];
    struct spool_log_event ev;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (spool_log_open(&o, T0, &lg) != 0)
        _exit(3);
    for (unsigned n = 0; n < 2000000; n++) {
        event_n(&ev, id, sizeof(id), n);
        if (spool_log_delivery(lg, &ev) != 0)
            _exit(4);
        /* every third record is flushed and reported; the others wait in memory */
        if (n % 3 == 2) {
            if (spool_log_flush(lg) != 0)
                _exit(5);
            uint32_t flushed = n + 1;
            if (write(wfd, &flushed, sizeof(flushed)) != sizeof(flushed))
                _exit(6);
        }
    }
    _exit(7);
}

static void test_kill(void)
{
    char dir[128], path[256];
    int p[2];
    case_dir(dir, sizeof(dir), "kill");
    if (pipe(p) != 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        child_writer(dir, p[1]);
    }
    close(p[1]);
    uint32_t acked = 0, v;
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    while (acked < 600 && poll(&pf, 1, 20000) > 0 && read(p[0], &v, sizeof(v)) == sizeof(v))
        acked = v;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child ended otherwise (status %d)", st);
    /* reports written before the kill that the loop did not read yet */
    while (read(p[0], &v, sizeof(v)) == sizeof(v))
        acked = v;
    close(p[0]);
    CHECK(acked >= 600, "child reported only %u flushed records", acked);

    struct seglist sl;
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 1, "%zu segments, %zu active after the kill", sl.n, sl.active);
    if (sl.n != 1)
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, sl.name[0]);
    struct lines l;
    read_log(path, false, &l);
    CHECK(l.n >= acked, "kill: %zu records readable, %u were flushed", l.n, acked);
    for (size_t i = 0; i < l.n && i < acked; i++)
        CHECK(id_num(l.rec[i]) == i, "kill: record %zu is %u", i, id_num(l.rec[i]));
    lines_free(&l);

    /* the next writer finishes the leftover segment */
    struct spool_log_opts o = {0};
    struct spool_log *lg = open_dir(dir, T0 + 5 * SEC, &o);
    CHECK(spool_log_close(lg) == 0, "close");
    list_segments(dir, &sl);
    CHECK(sl.n == 1 && sl.active == 0, "after recovery %zu segments, %zu active", sl.n,
          sl.active);
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next >= acked, "after recovery %u records, %u flushed", next, acked);
}

/* ---- case: a partial frame at the end (crash inside a write), leftovers at open ---- */

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, len);
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

static void test_partial_frame(void)
{
    char dir[128], src[256], path[256], id[64];
    struct spool_log_event ev;
    struct seglist sl;
    case_dir(dir, sizeof(dir), "partial");
    /* a segment of 20 records in two frames, made by the writer */
    struct spool_log_opts o = {0};
    struct spool_log *lg = open_dir(dir, T0, &o);
    if (!lg)
        return;
    for (unsigned n = 0; n < 20; n++) {
        event_n(&ev, id, sizeof(id), n);
        spool_log_delivery(lg, &ev);
        if (n == 9)
            spool_log_flush(lg);
    }
    CHECK(spool_log_close(lg) == 0, "close");
    list_segments(dir, &sl);
    if (sl.n != 1) {
        CHECK(0, "%zu segments", sl.n);
        return;
    }
    snprintf(src, sizeof(src), "%s/%s", dir, sl.name[0]);
    size_t len;
    char *seg = slurp(src, &len);
    unlink(src);

    /* the same bytes as an active segment with half of one more frame after them */
    char more[4096], frame[8192];
    int ml = snprintf(more, sizeof(more), "{\"type\":\"Delivery\",\"id\":\"tail-%0400d\"}\n", 1);
    size_t fl = ZSTD_compress(frame, sizeof(frame), more, (size_t)ml, 1);
    CHECK(!ZSTD_isError(fl) && fl > 20, "zstd");
    seg = realloc(seg, len + fl);
    memcpy(seg + len, frame, fl / 2);
    snprintf(path, sizeof(path), "%s/20200101-000000.000000.jsonl.zst.active", dir);
    CHECK(write_file(path, seg, len + fl / 2) == 0, "write %s", path);
    /* and leftovers: an empty active segment, a garbage one, and a stranger's file */
    snprintf(src, sizeof(src), "%s/20200101-000001.000000.jsonl.zst.active", dir);
    write_file(src, "", 0);
    snprintf(src, sizeof(src), "%s/20200101-000002.000000.jsonl.zst.active", dir);
    write_file(src, "not zstd at all", 15);
    snprintf(src, sizeof(src), "%s/notes.txt", dir);
    write_file(src, "keep me", 7);

    /* what an operator sees: every whole frame, an error for the cut one */
    struct lines l;
    read_log(path, false, &l);
    CHECK(l.status != 0, "zstdcat accepted a cut frame");
    CHECK(l.n >= 20, "partial: %zu records before the cut frame", l.n);
    for (size_t i = 0; i < l.n && i < 20; i++)
        CHECK(id_num(l.rec[i]) == i, "partial: record %zu is %u", i, id_num(l.rec[i]));
    lines_free(&l);

    /* the next writer cuts the partial frame and finishes the segment; its clock is
     * behind the leftovers, yet its own segment sorts after them */
    lg = open_dir(dir, 1500000000ull * SEC, &o);
    event_n(&ev, id, sizeof(id), 20);
    spool_log_delivery(lg, &ev);
    CHECK(spool_log_close(lg) == 0, "close");
    struct stat sb;
    snprintf(path, sizeof(path), "%s/20200101-000000.000000.jsonl.zst", dir);
    CHECK(stat(path, &sb) == 0 && (size_t)sb.st_size == len, "recovered size %lld, want %zu",
          (long long)sb.st_size, len);
    snprintf(src, sizeof(src), "%s/20200101-000001.000000.jsonl.zst.active", dir);
    CHECK(access(src, F_OK) != 0, "empty leftover kept");
    snprintf(src, sizeof(src), "%s/20200101-000002.000000.jsonl.zst.active", dir);
    CHECK(access(src, F_OK) == 0, "garbage leftover removed");
    unlink(src);
    snprintf(src, sizeof(src), "%s/notes.txt", dir);
    CHECK(access(src, F_OK) == 0, "stranger's file removed");
    list_segments(dir, &sl);
    CHECK(sl.n == 2 && strcmp(sl.name[1], "20200101-000002.000001.jsonl.zst") == 0,
          "new segment %s", sl.n == 2 ? sl.name[1] : "(none)");
    unsigned next = 0;
    size_t segs;
    read_all(dir, &next, &segs, true);
    CHECK(next == 21, "after recovery %u records", next);
    free(seg);
}

int main(void)
{
    if (system("command -v zstdcat >/dev/null 2>&1 && command -v jq >/dev/null 2>&1") != 0) {
        printf("SKIP: zstdcat or jq missing\n");
        return 77;
    }
    signal(SIGXFSZ, SIG_IGN); /* RLIMIT_FSIZE must give EFBIG, not kill the test */
    snprintf(root, sizeof(root), "/tmp/spool_log_test.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(scratch, sizeof(scratch), "%s/scratch", root);
    mkdir(scratch, 0700);

    test_types();
    test_hostile();
    test_refusals();
    test_size_rotation();
    test_age_rotation();
    test_write_errors();
    test_kill();
    test_partial_frame();

    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK_EXIT();
}
