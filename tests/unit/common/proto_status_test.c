/*
 * proto_status_test - the admin JSON documents' codec: the exact text producers write, round trips, and
 * the strict decoder refusing documents that break the schema (wrong types, missing members, values out
 * of range, oversized strings and arrays, members that must go together)
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_status.h"
#include "tests/lib/check.h"

static struct proto_status_queue queue_v[2] = {
    {"example.com", "example.com", 7, 5, 300, 432000},
    {"bulk", "", 2, 0, 60, 86400},
};
static struct proto_status_path path_v[1] = {
    {"default", "mx.example.com", 3, 1, 2, 32, 10, 4, 1, .provider = "exampleprov", .connection_attempts = 6,
     .connection_failures = 2, .delivery_latency = {[0] = 3, [5] = 6, [PROTO_HIST_BOUNDS] = 1},
     .delivery_latency_sum_ms = 98765},
};

static struct proto_status_path rest_v[1] = {
    {"default", "other", 0, 0, 0, 0, 7, 2, 0, .provider = "", .connection_attempts = 3},
};

static struct proto_status_queues queues_doc(void)
{
    return (struct proto_status_queues){
        .totals = {9, 5, 1, 2, 1, 2, 1, 1, 1},
        .since_start = {20, 10, 1, 0, 4, 2, 0},
        .queues = queue_v,
        .n_queues = 2,
        .paths = path_v,
        .n_paths = 1,
        .rest = rest_v,
        .n_rest = 1,
        .age_ms = 250,
    };
}

static struct proto_status_tsa_entry tsa_v[2] = {
    {"Suspend", "ip-1", "mx.yahoo.test", "", "", "", NULL, NULL, "provider:yahoo", "shaping.toml", 12, "\\[TS04\\]",
     "421 4.7.0 [TS04] deferred", 3, 1765000000000, 1765003600000, 2820000},
    {"SetConfig", "", "mx.yahoo.test", "", "", "", "connection_limit", "1", "domain:yahoo.com", "shaping.toml", 30,
     "TS03", "421 4.7.0 [TS03] x", 1, 1765000000000, 1765000600000, -1},
};

static struct proto_status_tsa_rule tsa_rules_v[2] = {
    {"/etc/ringmail/shaping.toml:12 Suspend", 3},
    {"other", 1},
};

static struct proto_status_tsa tsa_doc(void)
{
    return (struct proto_status_tsa){.responses = 9, .active = tsa_v, .n_active = 1, .history = tsa_v, .n_history = 2,
                                     .rules = tsa_rules_v, .n_rules = 2, .age_ms = 40};
}

static void test_tsa_round_trip(void)
{
    for (int served = 0; served <= 1; served++) {
        struct proto_status_tsa in = tsa_doc(), out;
        char *err = NULL;
        char *text = proto_status_tsa_encode(&in, served);
        CHECK(text != NULL, "tsa encode");
        if (!text)
            continue;
        CHECK(proto_status_tsa_decode(text, strlen(text), served, &out, &err) == 0, "tsa decode: %s", err);
        CHECK(out.n_active == 1 && out.n_history == 2 && out.age_ms == (served ? 40 : -1), "tsa counts, age");
        CHECK(out.n_rules == 2 && strcmp(out.rules[0].rule, tsa_rules_v[0].rule) == 0 && out.rules[0].firings == 3 &&
                  strcmp(out.rules[1].rule, "other") == 0 && out.rules[1].firings == 1,
              "tsa rules");
        if (out.n_history == 2) {
            CHECK(out.active[0].remaining_ms == 2820000 && out.history[1].remaining_ms == -1, "remaining_ms");
            CHECK(strcmp(out.history[1].option, "connection_limit") == 0 && strcmp(out.history[1].value, "1") == 0 &&
                      out.history[0].option == NULL,
                  "option and value");
            CHECK(strcmp(out.active[0].regex, "\\[TS04\\]") == 0 && out.active[0].rule_line == 12, "rule");
        }
        char *again = proto_status_tsa_encode(&out, served);
        CHECK(again && strcmp(again, text) == 0, "tsa re-encodes to the same text");
        free(again);
        free(text);
        proto_status_tsa_fini(&out);
    }
}

static struct proto_status_role role_v[2];

static struct proto_status_node node_doc(void)
{
    role_v[0] = (struct proto_status_role){
        .role = PROTO_NODE_ROLE_SPOOL,
        .index = 0,
        .instance = 0,
        .pid = 4242,
        .state = PROTO_NODE_INST_READY,
        .generation = 3,
        .restarts = 2,
        .uptime_ms = 1500,
        .heartbeat_age_ms = 12,
        .ring_rtt_us = 40,
        .last_exit = "signal 9 (Killed)",
        .last_exit_ago_ms = 2000,
        .held_for_ms = -1,
        .reload_generation = 1,
    };
    for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++)
        role_v[0].counters[k] = 100 + k;
    role_v[1] = (struct proto_status_role){
        .role = PROTO_NODE_ROLE_EGRESS,
        .index = 1,
        .instance = 5,
        .pid = 0,
        .state = PROTO_NODE_INST_HELD,
        .uptime_ms = -1,
        .heartbeat_age_ms = -1,
        .last_exit = "exit 1",
        .last_exit_ago_ms = 10,
        .held_for_ms = 900,
    };
    return (struct proto_status_node){
        .node_id = "node-1",
        .uptime_ms = 123456,
        .config = "/etc/ringmail.toml",
        .data_dir = "/var/lib/ringmail",
        .shm = {.bytes = 1u << 26,
                .page_source = "thp",
                .page_source_name = "transparent huge pages",
                .rings = 14,
                .ring_slots = 4096,
                .arena = {65536, 512, 3, 2}},
        .reload = {.generation = 0, .last_ok = -1, .last_detail = NULL},
        .roles = role_v,
        .n_roles = 2,
        .stopping = false,
        .connection_steering = "none",
        .connection_steering_note = "",
    };
}

/* the exact text the scheduler writes into the page: member order and names are the API */
static void test_queues_page_text(void)
{
    struct proto_status_queues q = queues_doc();
    q.n_queues = 1;
    char *text = proto_status_queues_encode(&q, false);
    const char *want =
        "{\"totals\":{\"messages\":9,\"scheduled\":5,\"resolving\":1,\"ready\":2,\"in_flight\":1,\"queues\":"
        "2,"
        "\"domains\":1,\"sites\":1,\"paths\":1},\"since_start\":{\"added\":20,\"delivered\":10,\"bounced\":1,"
        "\"expired\":0,\"transient\":4,\"requeued\":2,\"ready_full\":0},\"queues\":[{\"name\":\"example."
        "com\","
        "\"domain\":\"example.com\",\"messages\":7,\"scheduled\":5,\"retry_interval_s\":300,\"max_age_s\":"
        "432000}],"
        "\"paths\":[{\"source\":\"default\",\"site\":\"mx.example.com\",\"ready\":3,\"in_flight\":1,"
        "\"connections\":2,"
        "\"connection_limit\":32,\"delivered\":10,\"transient\":4,\"bounced\":1,\"suspended_ms\":0,"
        "\"throttled_ms\":0,\"throttle_waits\":0,\"limit_waits\":0,\"consecutive_failures\":0,"
        "\"provider\":\"exampleprov\",\"connection_attempts\":6,\"connection_failures\":2,"
        "\"delivery_latency\":[3,0,0,0,0,6,0,0,0,0,0,0,0,0,0,0,1],\"delivery_latency_sum_ms\":98765}],"
        "\"rest\":[{\"source\":\"default\",\"site\":\"other\",\"ready\":0,\"in_flight\":0,\"connections\":0,"
        "\"connection_limit\":0,\"delivered\":7,\"transient\":2,\"bounced\":0,\"suspended_ms\":0,"
        "\"throttled_ms\":0,\"throttle_waits\":0,\"limit_waits\":0,\"consecutive_failures\":0,"
        "\"provider\":\"\",\"connection_attempts\":3,\"connection_failures\":0,"
        "\"delivery_latency\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"delivery_latency_sum_ms\":0}]}";
    CHECK(text && strcmp(text, want) == 0, "page text:\n%s\nwant:\n%s", text ? text : "(null)", want);
    free(text);
}

static void test_queues_round_trip(void)
{
    for (int served = 0; served <= 1; served++) {
        struct proto_status_queues in = queues_doc(), out;
        char *err = NULL;
        char *text = proto_status_queues_encode(&in, served);
        CHECK(text != NULL, "encode served=%d", served);
        if (!text)
            continue;
        CHECK((strstr(text, "age_ms") != NULL) == served, "age_ms only in the served form: %s", text);
        CHECK((strchr(text, '\n') != NULL) == served, "served form indented, page compact");
        int rc = proto_status_queues_decode(text, strlen(text), served, &out, &err);
        CHECK(rc == 0, "decode served=%d: %s", served, err ? err : "");
        if (rc == 0) {
            CHECK(memcmp(&out.totals, &in.totals, sizeof(in.totals)) == 0, "totals");
            CHECK(memcmp(&out.since_start, &in.since_start, sizeof(in.since_start)) == 0, "since_start");
            CHECK(out.age_ms == (served ? 250 : -1), "age_ms %lld", (long long)out.age_ms);
            CHECK(out.n_queues == 2 && out.n_paths == 1 && out.n_rest == 1, "counts %zu %zu %zu", out.n_queues,
                  out.n_paths, out.n_rest);
            CHECK(out.n_rest == 1 && strcmp(out.rest[0].site, "other") == 0 && out.rest[0].delivered == 7 &&
                      out.rest[0].transient == 2 && out.rest[0].connection_attempts == 3,
                  "rest");
            for (size_t i = 0; i < out.n_queues && i < 2; i++) {
                const struct proto_status_queue *a = &in.queues[i], *b = &out.queues[i];
                CHECK(strcmp(a->name, b->name) == 0 && strcmp(a->domain, b->domain) == 0 &&
                          a->messages == b->messages && a->scheduled == b->scheduled &&
                          a->retry_interval_s == b->retry_interval_s && a->max_age_s == b->max_age_s,
                      "queue %zu", i);
            }
            const struct proto_status_path *a = &in.paths[0], *b = &out.paths[0];
            CHECK(strcmp(a->source, b->source) == 0 && strcmp(a->site, b->site) == 0 &&
                      a->ready == b->ready && a->in_flight == b->in_flight &&
                      a->connections == b->connections && a->connection_limit == b->connection_limit &&
                      a->delivered == b->delivered && a->transient == b->transient &&
                      a->bounced == b->bounced && strcmp(a->provider, b->provider) == 0 &&
                      a->connection_attempts == b->connection_attempts &&
                      a->connection_failures == b->connection_failures &&
                      memcmp(a->delivery_latency, b->delivery_latency, sizeof(a->delivery_latency)) == 0 &&
                      a->delivery_latency_sum_ms == b->delivery_latency_sum_ms,
                  "path");
            char *again = proto_status_queues_encode(&out, served);
            CHECK(again && strcmp(again, text) == 0, "decode then encode gives the same text");
            free(again);
            proto_status_queues_fini(&out);
        }
        free(err);
        free(text);
    }
}

static void test_node_round_trip(void)
{
    struct proto_status_node in = node_doc(), out;
    char *err = NULL;
    char *text = proto_status_node_encode(&in);
    CHECK(text && strncmp(text, "{\n  \"ok\": true,\n  \"node_id\": \"node-1\",\n  \"uptime_ms\": 123456,",
                          60) == 0,
          "node text starts with ok, node_id, uptime_ms: %s", text ? text : "(null)");
    CHECK(text && strstr(text, "\"uptime_ms\": null") && strstr(text, "\"last_ok\": null") &&
              strstr(text, "\"last_detail\": null"),
          "nulls written as null");
    CHECK(text && strstr(text, "\"ring_stale_records\": 104"), "counters by name");
    int rc = text ? proto_status_node_decode(text, strlen(text), &out, &err) : -1;
    CHECK(rc == 0, "decode: %s", err ? err : "");
    if (rc == 0) {
        CHECK(strcmp(out.node_id, "node-1") == 0 && out.uptime_ms == 123456 &&
                  strcmp(out.config, in.config) == 0 && strcmp(out.data_dir, in.data_dir) == 0,
              "node members");
        CHECK(out.shm.bytes == in.shm.bytes && strcmp(out.shm.page_source, "thp") == 0 &&
                  strcmp(out.shm.page_source_name, in.shm.page_source_name) == 0 && out.shm.rings == 14 &&
                  out.shm.ring_slots == 4096 &&
                  memcmp(&out.shm.arena, &in.shm.arena, sizeof(in.shm.arena)) == 0,
              "shm");
        CHECK(out.reload.generation == 0 && out.reload.last_ok == -1 && out.reload.last_detail == NULL,
              "reload");
        CHECK(!out.stopping && strcmp(out.connection_steering, "none") == 0 &&
                  strcmp(out.connection_steering_note, "") == 0,
              "steering");
        CHECK(out.n_roles == 2, "roles %zu", out.n_roles);
        for (size_t i = 0; i < out.n_roles && i < 2; i++) {
            const struct proto_status_role *a = &in.roles[i], *b = &out.roles[i];
            CHECK(a->role == b->role && a->index == b->index && a->instance == b->instance &&
                      a->pid == b->pid && a->state == b->state && a->generation == b->generation &&
                      a->restarts == b->restarts && a->uptime_ms == b->uptime_ms &&
                      a->heartbeat_age_ms == b->heartbeat_age_ms && a->ring_rtt_us == b->ring_rtt_us &&
                      strcmp(a->last_exit, b->last_exit) == 0 && a->last_exit_ago_ms == b->last_exit_ago_ms &&
                      a->held_for_ms == b->held_for_ms && a->reload_generation == b->reload_generation &&
                      memcmp(a->counters, b->counters, sizeof(a->counters)) == 0,
                  "role %zu", i);
        }
        proto_status_node_fini(&out);
    }
    /* a reload that failed: false and its detail */
    in.reload = (typeof(in.reload)){.generation = 2, .last_ok = 0, .last_detail = "a.toml:3: bad size"};
    free(text);
    free(err);
    err = NULL;
    text = proto_status_node_encode(&in);
    rc = text ? proto_status_node_decode(text, strlen(text), &out, &err) : -1;
    CHECK(rc == 0 && out.reload.generation == 2 && out.reload.last_ok == 0 &&
              strcmp(out.reload.last_detail, "a.toml:3: bad size") == 0,
          "failed reload round trip: %s", err ? err : "");
    if (rc == 0)
        proto_status_node_fini(&out);
    free(err);
    free(text);
    /* the producer's strings must be UTF-8: the encoder refuses rather than write a broken document */
    in.node_id = "bad\xff";
    text = proto_status_node_encode(&in);
    CHECK(text == NULL, "non-UTF-8 string encoded");
    free(text);
}

static void test_reply(void)
{
    struct proto_status_reply ok = {.ok = true, .detail = "restarting egress[0] egress[1]"}, out;
    struct proto_status_reply bad = {.ok = false, .error = "unknown role"};
    char *err = NULL;
    char *t1 = proto_status_reply_encode(&ok), *t2 = proto_status_reply_encode(&bad);
    CHECK(t1 && strcmp(t1, "{\n  \"ok\": true,\n  \"detail\": \"restarting egress[0] egress[1]\"\n}") == 0,
          "%s", t1);
    CHECK(t2 && strcmp(t2, "{\n  \"ok\": false,\n  \"error\": \"unknown role\"\n}") == 0, "%s", t2);
    CHECK(proto_status_reply_decode(t1, strlen(t1), &out, &err) == 0 && out.ok && out.error == NULL &&
              strcmp(out.detail, ok.detail) == 0,
          "reply round trip");
    proto_status_reply_fini(&out);
    CHECK(proto_status_reply_decode(t2, strlen(t2), &out, &err) == 0 && !out.ok && out.detail == NULL &&
              strcmp(out.error, "unknown role") == 0,
          "error round trip");
    proto_status_reply_fini(&out);
    free(t1);
    free(t2);
    free(err);
}

/* ---- refusals: a valid document with one member broken ---- */

enum doc { DOC_PAGE, DOC_SERVED, DOC_NODE, DOC_REPLY, DOC_TSA };

struct bad_case {
    enum doc doc;
    const char *path;  /* dot-separated; array entries by number */
    const char *value; /* JSON for the member; NULL deletes it */
    const char *why;
};

static const struct bad_case bad_cases[] = {
    {DOC_PAGE, "totals.messages", "\"9\"", "integer as a string"},
    {DOC_PAGE, "totals.messages", "-1", "negative count"},
    {DOC_PAGE, "totals.messages", "1.5", "fraction"},
    {DOC_PAGE, "totals.messages", NULL, "missing total"},
    {DOC_PAGE, "since_start", NULL, "missing object"},
    {DOC_PAGE, "since_start", "[]", "array for an object"},
    {DOC_PAGE, "queues", "{}", "object for an array"},
    {DOC_PAGE, "queues.0", "7", "number for an entry"},
    {DOC_PAGE, "queues.0.name", "null", "null name"},
    {DOC_PAGE, "queues.0.domain", NULL, "missing domain"},
    {DOC_PAGE, "queues.0.retry_interval_s", "8589934592", "retry interval beyond 32 bits"},
    {DOC_PAGE, "paths.0.site", "5", "number for a site"},
    {DOC_PAGE, "paths.0.connection_limit", "true", "bool for a number"},
    {DOC_PAGE, "rest", NULL, "missing rest"},
    {DOC_PAGE, "rest.0.delivered", "-3", "negative count in the rest"},
    {DOC_SERVED, "age_ms", NULL, "served form without age_ms"},
    {DOC_SERVED, "age_ms", "\"250\"", "age_ms as a string"},
    {DOC_NODE, "ok", "false", "ok false"},
    {DOC_NODE, "node_id", "3", "number for node_id"},
    {DOC_NODE, "uptime_ms", "null", "null node uptime"},
    {DOC_NODE, "shm.arena.runs", "\"2\"", "nested member as a string"},
    {DOC_NODE, "shm.rings", "1000", "more rings than a node can have"},
    {DOC_NODE, "reload.last_ok", "\"yes\"", "string for true/false/null"},
    {DOC_NODE, "reload.last_detail", NULL, "missing last_detail"},
    {DOC_NODE, "stopping", "1", "number for a bool"},
    {DOC_NODE, "roles.0.role", "\"postfix\"", "unknown role"},
    {DOC_NODE, "roles.0.role", "\"SPOOL\"", "role name in another case"},
    {DOC_NODE, "roles.0.state", "\"zombie\"", "unknown state"},
    {DOC_NODE, "roles.0.index", "32", "worker index out of range"},
    {DOC_NODE, "roles.0.pid", "-5", "negative pid"},
    {DOC_NODE, "roles.0.uptime_ms", NULL, "missing nullable member"},
    {DOC_NODE, "roles.0.counters", "[]", "array for counters"},
    {DOC_NODE, "roles.0.counters.ring_pushed", NULL, "missing counter"},
    {DOC_NODE, "roles.0.counters.smtp_sessions", "\"1\"", "counter as a string"},
    {DOC_NODE, "roles.0.last_exit_ago_ms", NULL, "last_exit without its age"},
    {DOC_NODE, "roles.0.last_exit", "null", "age without last_exit"},
    {DOC_NODE, "roles.1.held_for_ms", NULL, "held without held_for_ms"},
    {DOC_NODE, "roles.0.held_for_ms", "5", "held_for_ms on a ready instance"},
    {DOC_TSA, "active.0.action", "3", "number for an action"},
    {DOC_TSA, "active.0.count", "-1", "negative count"},
    {DOC_TSA, "active.0.expires_ms", "1765000000000", "expiry not after start"},
    {DOC_TSA, "active.0.option", "\"connection_limit\"", "option without a value"},
    {DOC_TSA, "history.1.value", NULL, "value missing from a SetConfig entry"},
    {DOC_TSA, "history.1.rule_line", "4294967296", "rule line beyond 32 bits"},
    {DOC_TSA, "history", NULL, "missing history"},
    {DOC_TSA, "responses", "\"9\"", "responses as a string"},
    {DOC_TSA, "active.0.site", NULL, "missing site"},
    {DOC_REPLY, "ok", NULL, "reply without ok"},
    {DOC_REPLY, "detail", "7", "number for detail"},
    {DOC_REPLY, "detail", NULL, "neither detail nor error"},
    {DOC_REPLY, "error", "\"both\"", "detail and error"},
};

static json_t *doc_tree(enum doc d)
{
    struct proto_status_queues q = queues_doc();
    struct proto_status_node n = node_doc();
    struct proto_status_reply r = {.ok = true, .detail = "done"};
    struct proto_status_tsa t = tsa_doc();
    char *text = d == DOC_TSA      ? proto_status_tsa_encode(&t, false)
                 : d == DOC_PAGE   ? proto_status_queues_encode(&q, false)
                 : d == DOC_SERVED ? proto_status_queues_encode(&q, true)
                 : d == DOC_NODE   ? proto_status_node_encode(&n)
                                   : proto_status_reply_encode(&r);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return j;
}

static int decode_doc(enum doc d, const char *text, size_t len, char **err)
{
    struct proto_status_queues q;
    struct proto_status_node n;
    struct proto_status_reply r;
    struct proto_status_tsa t;
    int rc;

    switch (d) {
    case DOC_TSA:
        rc = proto_status_tsa_decode(text, len, false, &t, err);
        if (rc == 0)
            proto_status_tsa_fini(&t);
        else
            CHECK(t.active == NULL && t.tree == NULL, "a refused document leaves nothing behind");
        return rc;
    case DOC_PAGE:
    case DOC_SERVED:
        rc = proto_status_queues_decode(text, len, d == DOC_SERVED, &q, err);
        if (rc == 0)
            proto_status_queues_fini(&q);
        else
            CHECK(q.queues == NULL && q.tree == NULL, "a refused document leaves nothing behind");
        return rc;
    case DOC_NODE:
        rc = proto_status_node_decode(text, len, &n, err);
        if (rc == 0)
            proto_status_node_fini(&n);
        return rc;
    default:
        rc = proto_status_reply_decode(text, len, &r, err);
        if (rc == 0)
            proto_status_reply_fini(&r);
        return rc;
    }
}

/* set_path - replace (or delete, v NULL) the member at a dotted path; false when the path is not there */
static bool set_path(json_t *root, const char *path, json_t *v)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *parent = root;
    char *key = buf, *dot;
    while ((dot = strchr(key, '.'))) {
        *dot = '\0';
        parent = json_is_array(parent) ? json_array_get(parent, strtoul(key, NULL, 10))
                                       : json_object_get(parent, key);
        key = dot + 1;
    }
    if (json_is_array(parent))
        return v && json_array_set_new(parent, strtoul(key, NULL, 10), v) == 0;
    if (!json_is_object(parent))
        return false;
    return v ? json_object_set_new(parent, key, v) == 0 : json_object_del(parent, key) == 0;
}

static void test_refusals(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        json_t *root = doc_tree(c->doc);
        json_t *v = c->value ? json_loads(c->value, JSON_DECODE_ANY, NULL) : NULL;
        char *err = NULL;
        if (!root || (c->value && !v) || !set_path(root, c->path, v)) {
            FAIL("case %s: cannot set up", c->why);
            json_decref(root);
            continue;
        }
        char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        int rc = decode_doc(c->doc, text, strlen(text), &err);
        CHECK(rc == -EPROTO && err != NULL, "case %s (%s): accepted, rc %d", c->why, c->path, rc);
        free(err);
        free(text);
        json_decref(root);
    }
}

static void test_oversized(void)
{
    char *err = NULL;
    /* a name one byte over its bound */
    char *name = malloc(PROTO_STATUS_NAME_MAX + 2);
    memset(name, 'q', PROTO_STATUS_NAME_MAX + 1);
    name[PROTO_STATUS_NAME_MAX + 1] = '\0';
    struct proto_status_queues q = queues_doc(), out;
    struct proto_status_queue big = {name, "", 1, 1, 1, 1};
    q.queues = &big;
    q.n_queues = 1;
    char *text = proto_status_queues_encode(&q, false);
    CHECK(text && proto_status_queues_decode(text, strlen(text), false, &out, &err) == -EPROTO,
          "name of %u bytes accepted", PROTO_STATUS_NAME_MAX + 1);
    free(err);
    err = NULL;
    free(text);
    name[PROTO_STATUS_NAME_MAX] = '\0'; /* exactly at the bound: accepted */
    text = proto_status_queues_encode(&q, false);
    CHECK(text && proto_status_queues_decode(text, strlen(text), false, &out, &err) == 0,
          "name at the bound: %s", err ? err : "");
    if (!err)
        proto_status_queues_fini(&out);
    free(err);
    err = NULL;
    free(text);
    free(name);

    /* more queues than the document may list */
    struct proto_status_queue *many = calloc(PROTO_STATUS_QUEUES_MAX + 1, sizeof(*many));
    for (size_t i = 0; i <= PROTO_STATUS_QUEUES_MAX; i++)
        many[i] = (struct proto_status_queue){"q", "", 1, 1, 1, 1};
    q.queues = many;
    q.n_queues = PROTO_STATUS_QUEUES_MAX + 1;
    text = proto_status_queues_encode(&q, false);
    CHECK(text && proto_status_queues_decode(text, strlen(text), false, &out, &err) == -EPROTO,
          "%u queues accepted", PROTO_STATUS_QUEUES_MAX + 1);
    free(err);
    err = NULL;
    free(text);
    free(many);

    /* more role instances than a node has */
    struct proto_status_node n = node_doc(), nout;
    struct proto_status_role *roles = calloc(PROTO_NODE_MAX_INSTANCES + 1, sizeof(*roles));
    for (size_t i = 0; i <= PROTO_NODE_MAX_INSTANCES; i++)
        roles[i] = (struct proto_status_role){
            .uptime_ms = -1, .heartbeat_age_ms = -1, .last_exit_ago_ms = -1, .held_for_ms = -1};
    n.roles = roles;
    n.n_roles = PROTO_NODE_MAX_INSTANCES + 1;
    text = proto_status_node_encode(&n);
    CHECK(text && proto_status_node_decode(text, strlen(text), &nout, &err) == -EPROTO, "%u roles accepted",
          PROTO_NODE_MAX_INSTANCES + 1);
    free(err);
    err = NULL;
    free(text);
    free(roles);

    /* a whole document beyond the bound is refused before parsing */
    size_t len = PROTO_STATUS_DOC_MAX + 1;
    char *huge = malloc(len);
    memset(huge, ' ', len);
    huge[0] = '{';
    huge[len - 1] = '}';
    CHECK(proto_status_reply_decode(huge, len, &(struct proto_status_reply){0}, &err) == -EPROTO,
          "document of %zu bytes accepted", len);
    free(err);
    free(huge);
}

static void test_not_documents(void)
{
    static const char *const texts[] = {
        "",
        "not json",
        "[]",
        "{\"ok\": true, \"detail\": \"a\"",
        "{\"ok\": true, \"ok\": true, \"detail\": \"a\"}",
        "{\"ok\": true, \"detail\": \"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char *err = NULL;
        CHECK(decode_doc(DOC_REPLY, texts[i], strlen(texts[i]), &err) == -EPROTO && err, "accepted: %s",
              texts[i]);
        free(err);
    }
    /* members the schema does not name are ignored: a newer node's additions do not break older clients */
    const char *extra = "{\"ok\": true, \"detail\": \"a\", \"since\": 3}";
    char *err = NULL;
    CHECK(decode_doc(DOC_REPLY, extra, strlen(extra), &err) == 0, "unknown member refused: %s",
          err ? err : "");
    free(err);
}

int main(void)
{
    test_queues_page_text();
    test_queues_round_trip();
    test_node_round_trip();
    test_reply();
    test_tsa_round_trip();
    test_refusals();
    test_oversized();
    test_not_documents();
    CHECK_EXIT();
}
