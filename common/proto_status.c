/*
 * proto_status - the admin JSON documents' codec (schema: docs/admin-api.md)
 *
 * Each document is a table of members (struct spec) read by both directions: the encoder writes the
 * members in table order (the order the API has always had), the decoder checks each one against the
 * same entry. A member added to a table is therefore written and checked at once; the two cannot drift.
 * Offsets in a nested object's table are from the same base as its parent's (the C structs nest the
 * same way); an array's element table is from the element.
 */
#include "common/proto_status.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

enum kind {
    K_U64 = 0,   /* whole number 0..max (max 0: any that fits an int64) */
    K_I64_NULL,  /* whole number 0..max, or null (int64_t -1) */
    K_I64_OPT,   /* whole number 0..max, or absent (int64_t -1) */
    K_STR,       /* string of at most max bytes */
    K_STR_NULL,  /* string, or null (NULL) */
    K_STR_OPT,   /* string, or absent (NULL) */
    K_BOOL,      /* bool */
    K_BOOL_NULL, /* true, false or null (int 1, 0, -1) */
    K_TRUE,      /* always true; nothing in the struct */
    K_ROLE,      /* a role name (enum proto_node_role) */
    K_STATE,     /* an instance state name (enum proto_node_inst_state) */
    K_COUNTERS,  /* {counter name: whole number} for every counter (uint64_t[PROTO_NODE_CTR__MAX]) */
    K_HIST,      /* [whole number] x PROTO_HIST_BUCKETS, a histogram's per-bucket counts (uint64_t[]) */
    K_OBJ,       /* nested object: sub, offsets from the same base */
    K_ARR,       /* array of objects: pointer at off, count at count_off, elements of elem_size */
};

struct spec;

struct field {
    const char *key;
    enum kind kind;
    size_t off;
    uint64_t max;
    const struct spec *sub;
    size_t count_off, elem_size;
};

struct spec {
    const struct field *f;
    size_t n;
    /* members that go together: NULL when they do, else what is wrong */
    const char *(*check)(const void *base);
};

#define FLD(key, kind, T, member, max) {key, kind, offsetof(T, member), max, NULL, 0, 0}
#define OBJ(key, sub) {key, K_OBJ, 0, 0, &(sub), 0, 0}
#define ARR(key, T, member, count, E, max, sub)                                                           \
    {key, K_ARR, offsetof(T, member), max, &(sub), offsetof(T, count), sizeof(E)}
#define SPEC(table, check) {table, sizeof(table) / sizeof(table[0]), check}
#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* ---- the queues document ------------------------------------------------------------------------ */

#define Q struct proto_status_queues
static const struct field totals_f[] = {
    FLD("messages", K_U64, Q, totals.messages, 0),   FLD("scheduled", K_U64, Q, totals.scheduled, 0),
    FLD("resolving", K_U64, Q, totals.resolving, 0), FLD("ready", K_U64, Q, totals.ready, 0),
    FLD("in_flight", K_U64, Q, totals.in_flight, 0), FLD("queues", K_U64, Q, totals.queues, 0),
    FLD("domains", K_U64, Q, totals.domains, 0),     FLD("sites", K_U64, Q, totals.sites, 0),
    FLD("paths", K_U64, Q, totals.paths, 0),
};
static const struct field since_f[] = {
    FLD("added", K_U64, Q, since_start.added, 0),         FLD("delivered", K_U64, Q, since_start.delivered, 0),
    FLD("bounced", K_U64, Q, since_start.bounced, 0),     FLD("expired", K_U64, Q, since_start.expired, 0),
    FLD("transient", K_U64, Q, since_start.transient, 0), FLD("requeued", K_U64, Q, since_start.requeued, 0),
    FLD("ready_full", K_U64, Q, since_start.ready_full, 0),
};
#define QE struct proto_status_queue
static const struct field queue_f[] = {
    FLD("name", K_STR, QE, name, PROTO_STATUS_NAME_MAX),
    FLD("domain", K_STR, QE, domain, PROTO_STATUS_NAME_MAX),
    FLD("messages", K_U64, QE, messages, 0),
    FLD("scheduled", K_U64, QE, scheduled, 0),
    FLD("retry_interval_s", K_U64, QE, retry_interval_s, UINT32_MAX),
    FLD("max_age_s", K_U64, QE, max_age_s, UINT32_MAX),
};
#define PE struct proto_status_path
static const struct field path_f[] = {
    FLD("source", K_STR, PE, source, PROTO_STATUS_NAME_MAX),
    FLD("site", K_STR, PE, site, PROTO_STATUS_NAME_MAX),
    FLD("ready", K_U64, PE, ready, 0),
    FLD("in_flight", K_U64, PE, in_flight, 0),
    FLD("connections", K_U64, PE, connections, 0),
    FLD("connection_limit", K_U64, PE, connection_limit, UINT32_MAX),
    FLD("delivered", K_U64, PE, delivered, 0),
    FLD("transient", K_U64, PE, transient, 0),
    FLD("bounced", K_U64, PE, bounced, 0),
    FLD("suspended_ms", K_U64, PE, suspended_ms, 0),
    FLD("throttled_ms", K_U64, PE, throttled_ms, 0),
    FLD("throttle_waits", K_U64, PE, throttle_waits, 0),
    FLD("limit_waits", K_U64, PE, limit_waits, 0),
    FLD("consecutive_failures", K_U64, PE, consecutive_failures, UINT32_MAX),
    FLD("provider", K_STR, PE, provider, PROTO_STATUS_NAME_MAX),
    FLD("connection_attempts", K_U64, PE, connection_attempts, 0),
    FLD("connection_failures", K_U64, PE, connection_failures, 0),
    FLD("delivery_latency", K_HIST, PE, delivery_latency, 0),
    FLD("delivery_latency_sum_ms", K_U64, PE, delivery_latency_sum_ms, 0),
};
static const struct spec totals_s = SPEC(totals_f, NULL), since_s = SPEC(since_f, NULL);
static const struct spec queue_s = SPEC(queue_f, NULL), path_s = SPEC(path_f, NULL);
static const struct field queues_f[] = {
    OBJ("totals", totals_s),
    OBJ("since_start", since_s),
    ARR("queues", Q, queues, n_queues, QE, PROTO_STATUS_QUEUES_MAX, queue_s),
    ARR("paths", Q, paths, n_paths, PE, PROTO_STATUS_PATHS_MAX, path_s),
    ARR("rest", Q, rest, n_rest, PE, PROTO_STATUS_PATHS_MAX, path_s),
    FLD("age_ms", K_U64, Q, age_ms, 0), /* served form only: the last entry */
};
static const struct spec queues_page_s = {queues_f, sizeof(queues_f) / sizeof(queues_f[0]) - 1, NULL};
static const struct spec queues_served_s = SPEC(queues_f, NULL);

/* ---- the tsa document -------------------------------------------------------------------------- */

#define T struct proto_status_tsa
#define TE struct proto_status_tsa_entry
static const char *tsa_entry_check(const void *base)
{
    const struct proto_status_tsa_entry *e = base;
    if ((e->option != NULL) != (e->value != NULL))
        return "option and value go together";
    if (e->expires_ms <= e->start_ms)
        return "expires_ms not after start_ms";
    return NULL;
}
static const struct field tsa_entry_f[] = {
    FLD("action", K_STR, TE, action, PROTO_STATUS_NAME_MAX),
    FLD("source", K_STR, TE, source, PROTO_STATUS_NAME_MAX),
    FLD("site", K_STR, TE, site, PROTO_STATUS_NAME_MAX),
    FLD("domain", K_STR, TE, domain, PROTO_STATUS_NAME_MAX),
    FLD("tenant", K_STR, TE, tenant, PROTO_STATUS_NAME_MAX),
    FLD("campaign", K_STR, TE, campaign, PROTO_STATUS_NAME_MAX),
    FLD("option", K_STR_OPT, TE, option, PROTO_STATUS_NAME_MAX),
    FLD("value", K_STR_OPT, TE, value, PROTO_STATUS_NAME_MAX),
    FLD("rule_scope", K_STR, TE, rule_scope, PROTO_STATUS_NAME_MAX),
    FLD("rule_file", K_STR, TE, rule_file, PROTO_STATUS_TEXT_MAX),
    FLD("rule_line", K_U64, TE, rule_line, UINT32_MAX),
    FLD("regex", K_STR, TE, regex, PROTO_STATUS_NAME_MAX),
    FLD("response", K_STR, TE, response, PROTO_STATUS_NAME_MAX),
    FLD("count", K_U64, TE, count, UINT32_MAX),
    FLD("start_ms", K_U64, TE, start_ms, INT64_MAX),
    FLD("expires_ms", K_U64, TE, expires_ms, INT64_MAX),
    FLD("remaining_ms", K_I64_OPT, TE, remaining_ms, INT64_MAX),
};
static const struct spec tsa_entry_s = SPEC(tsa_entry_f, tsa_entry_check);
#define TR struct proto_status_tsa_rule
static const struct field tsa_rule_f[] = {
    FLD("rule", K_STR, TR, rule, PROTO_STATUS_NAME_MAX),
    FLD("firings", K_U64, TR, firings, 0),
};
static const struct spec tsa_rule_s = SPEC(tsa_rule_f, NULL);
static const struct field tsa_f[] = {
    FLD("responses", K_U64, T, responses, 0),
    ARR("active", T, active, n_active, TE, PROTO_STATUS_TSA_MAX, tsa_entry_s),
    ARR("history", T, history, n_history, TE, PROTO_STATUS_TSA_MAX, tsa_entry_s),
    ARR("rules", T, rules, n_rules, TR, PROTO_STATUS_TSA_RULES_MAX, tsa_rule_s),
    FLD("age_ms", K_U64, T, age_ms, 0), /* served form only: the last entry */
};
static const struct spec tsa_page_s = {tsa_f, sizeof(tsa_f) / sizeof(tsa_f[0]) - 1, NULL};
static const struct spec tsa_served_s = SPEC(tsa_f, NULL);

/* ---- the node document (GET /api/v1/status) ----------------------------------------------------- */

#define N struct proto_status_node
#define R struct proto_status_role
static const char *role_check(const void *base)
{
    const struct proto_status_role *r = base;
    if ((r->last_exit != NULL) != (r->last_exit_ago_ms >= 0))
        return "last_exit and last_exit_ago_ms go together";
    if ((r->state == PROTO_NODE_INST_HELD) != (r->held_for_ms >= 0))
        return "held_for_ms is there exactly when the state is held";
    return NULL;
}
static const struct field role_f[] = {
    FLD("role", K_ROLE, R, role, 0),
    FLD("index", K_U64, R, index, PROTO_NODE_MAX_WORKERS - 1),
    FLD("instance", K_U64, R, instance, PROTO_NODE_MAX_INSTANCES - 1),
    FLD("pid", K_U64, R, pid, INT32_MAX),
    FLD("state", K_STATE, R, state, 0),
    FLD("generation", K_U64, R, generation, UINT32_MAX),
    FLD("restarts", K_U64, R, restarts, UINT32_MAX),
    FLD("uptime_ms", K_I64_NULL, R, uptime_ms, 0),
    FLD("heartbeat_age_ms", K_I64_NULL, R, heartbeat_age_ms, 0),
    FLD("ring_rtt_us", K_U64, R, ring_rtt_us, 0),
    FLD("last_exit", K_STR_NULL, R, last_exit, PROTO_STATUS_TEXT_MAX),
    FLD("last_exit_ago_ms", K_I64_OPT, R, last_exit_ago_ms, 0),
    FLD("held_for_ms", K_I64_OPT, R, held_for_ms, 0),
    FLD("reload_generation", K_U64, R, reload_generation, UINT32_MAX),
    FLD("counters", K_COUNTERS, R, counters, 0),
};
static const struct field arena_f[] = {
    FLD("block_bytes", K_U64, N, shm.arena.block_bytes, 0), FLD("blocks_total", K_U64, N, shm.arena.blocks_total, 0),
    FLD("blocks_used", K_U64, N, shm.arena.blocks_used, 0), FLD("runs", K_U64, N, shm.arena.runs, 0),
};
static const struct spec role_s = SPEC(role_f, role_check), arena_s = SPEC(arena_f, NULL);
static const struct field shm_f[] = {
    FLD("bytes", K_U64, N, shm.bytes, 0),
    FLD("page_source", K_STR, N, shm.page_source, PROTO_STATUS_TEXT_MAX),
    FLD("page_source_name", K_STR, N, shm.page_source_name, PROTO_STATUS_TEXT_MAX),
    FLD("rings", K_U64, N, shm.rings, 4 * PROTO_NODE_MAX_WORKERS + 2),
    FLD("ring_slots", K_U64, N, shm.ring_slots, UINT32_MAX),
    OBJ("arena", arena_s),
};
static const struct field reload_f[] = {
    FLD("generation", K_U64, N, reload.generation, UINT32_MAX),
    FLD("last_ok", K_BOOL_NULL, N, reload.last_ok, 0),
    FLD("last_detail", K_STR_NULL, N, reload.last_detail, PROTO_STATUS_DETAIL_MAX),
};
static const struct spec shm_s = SPEC(shm_f, NULL), reload_s = SPEC(reload_f, NULL);
static const struct field node_f[] = {
    {"ok", K_TRUE, 0, 0, NULL, 0, 0},
    FLD("node_id", K_STR, N, node_id, PROTO_STATUS_TEXT_MAX),
    FLD("uptime_ms", K_U64, N, uptime_ms, 0),
    FLD("config", K_STR, N, config, PROTO_STATUS_TEXT_MAX),
    FLD("data_dir", K_STR, N, data_dir, PROTO_STATUS_TEXT_MAX),
    OBJ("shm", shm_s),
    OBJ("reload", reload_s),
    ARR("roles", N, roles, n_roles, R, PROTO_NODE_MAX_INSTANCES, role_s),
    FLD("stopping", K_BOOL, N, stopping, 0),
    FLD("connection_steering", K_STR, N, connection_steering, PROTO_STATUS_TEXT_MAX),
    FLD("connection_steering_note", K_STR, N, connection_steering_note, PROTO_STATUS_TEXT_MAX),
};
static const struct spec node_s = SPEC(node_f, NULL);

/* ---- the reply document ------------------------------------------------------------------------- */

#define RP struct proto_status_reply
static const char *reply_check(const void *base)
{
    const struct proto_status_reply *r = base;
    if ((r->detail != NULL) == (r->error != NULL))
        return "exactly one of detail and error";
    if (r->error && r->ok)
        return "an error with ok true";
    return NULL;
}
static const struct field reply_f[] = {
    FLD("ok", K_BOOL, RP, ok, 0),
    FLD("detail", K_STR_OPT, RP, detail, PROTO_STATUS_DETAIL_MAX),
    FLD("error", K_STR_OPT, RP, error, PROTO_STATUS_DETAIL_MAX),
};
static const struct spec reply_s = SPEC(reply_f, reply_check);

/* ---- encoder ------------------------------------------------------------------------------------ */

static json_t *enc_object(const struct spec *s, const void *base);

static json_t *enc_int_or(int64_t v, json_t *otherwise)
{
    return v < 0 ? otherwise : json_integer((json_int_t)v);
}

/* enc_value - the member's JSON value; NULL leaves it out (absent) or, with *bad set, fails the document */
static json_t *enc_value(const struct field *f, const void *base, bool *bad)
{
    json_t *v = NULL;
    const char *s;

    switch (f->kind) {
    case K_U64:
        return json_integer((json_int_t)*AT(base, f->off, const uint64_t));
    case K_I64_NULL:
        return enc_int_or(*AT(base, f->off, const int64_t), json_null());
    case K_I64_OPT:
        return enc_int_or(*AT(base, f->off, const int64_t), NULL);
    case K_STR:
    case K_STR_NULL:
    case K_STR_OPT:
        s = *AT(base, f->off, const char *const);
        if (!s)
            return f->kind == K_STR_NULL ? json_null() : NULL;
        v = json_string(s); /* NULL when not UTF-8 */
        break;
    case K_BOOL:
        return json_boolean(*AT(base, f->off, const bool));
    case K_BOOL_NULL:
        return *AT(base, f->off, const int) < 0 ? json_null() : json_boolean(*AT(base, f->off, const int));
    case K_TRUE:
        return json_true();
    case K_ROLE:
        return json_string(proto_node_role_name(*AT(base, f->off, const enum proto_node_role)));
    case K_STATE:
        return json_string(proto_node_inst_state_name(*AT(base, f->off, const enum proto_node_inst_state)));
    case K_COUNTERS:
        v = json_object();
        for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++)
            json_object_set_new(v, proto_node_counter_name((enum proto_node_counter)k),
                                json_integer((json_int_t)AT(base, f->off, const uint64_t)[k]));
        return v;
    case K_HIST:
        v = json_array();
        for (unsigned k = 0; k < PROTO_HIST_BUCKETS; k++)
            json_array_append_new(v, json_integer((json_int_t)AT(base, f->off, const uint64_t)[k]));
        return v;
    case K_OBJ:
        v = enc_object(f->sub, base);
        break;
    case K_ARR: {
        const char *elems = *AT(base, f->off, const char *const);
        size_t n = *AT(base, f->count_off, const size_t);
        v = json_array();
        for (size_t i = 0; i < n && v; i++) {
            json_t *e = enc_object(f->sub, elems + i * f->elem_size);
            if (!e || json_array_append_new(v, e) < 0) {
                json_decref(v);
                v = NULL;
            }
        }
        break;
    }
    }
    *bad = v == NULL;
    return v;
}

static json_t *enc_object(const struct spec *s, const void *base)
{
    json_t *o = json_object();
    for (size_t i = 0; i < s->n; i++) {
        bool bad = false;
        json_t *v = enc_value(&s->f[i], base, &bad);
        if (bad) {
            json_decref(o);
            return NULL;
        }
        if (v)
            json_object_set_new(o, s->f[i].key, v);
    }
    return o;
}

/* encode - served documents are indented for people and scripts alike; the page is compact */
static char *encode(const struct spec *s, const void *base, bool indented)
{
    json_t *o = enc_object(s, base);
    if (!o)
        return NULL;
    char *text = json_dumps(o, indented ? JSON_INDENT(2) | JSON_PRESERVE_ORDER : JSON_COMPACT);
    json_decref(o);
    return text;
}

char *proto_status_queues_encode(const struct proto_status_queues *q, bool served)
{
    return encode(served ? &queues_served_s : &queues_page_s, q, served);
}

char *proto_status_tsa_encode(const struct proto_status_tsa *t, bool served)
{
    return encode(served ? &tsa_served_s : &tsa_page_s, t, served);
}

char *proto_status_node_encode(const struct proto_status_node *n)
{
    return encode(&node_s, n, true);
}

char *proto_status_reply_encode(const struct proto_status_reply *r)
{
    return encode(&reply_s, r, true);
}

/* ---- decoder ------------------------------------------------------------------------------------ */

struct dec {
    char **err;
    void **allocs; /* arrays allocated so far, freed on failure */
    size_t n_allocs;
};

static int dec_object(struct dec *d, const struct spec *s, json_t *o, void *base, const char *where);

static int dec_fail(struct dec *d, const char *where, const char *key, const char *why)
{
    *d->err = xasprintf("%s%s: %s", where, key, why);
    return -EPROTO;
}

static bool whole(json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return max == 0 || *out <= max;
}

static int dec_string(struct dec *d, const struct field *f, json_t *v, void *base, const char *where)
{
    if (!json_is_string(v))
        return dec_fail(d, where, f->key, "not a string");
    if (json_string_length(v) > f->max)
        return dec_fail(d, where, f->key, "too long");
    *AT(base, f->off, const char *) = json_string_value(v);
    return 0;
}

static int dec_name(struct dec *d, const struct field *f, json_t *v, void *base, const char *where)
{
    const char *s = json_string_value(v);
    unsigned n = f->kind == K_ROLE ? PROTO_NODE_ROLE__MAX : PROTO_NODE_INST__MAX;
    for (unsigned i = 0; s && i < n; i++) {
        const char *name = f->kind == K_ROLE ? proto_node_role_name((enum proto_node_role)i)
                                             : proto_node_inst_state_name((enum proto_node_inst_state)i);
        if (strcmp(s, name) == 0) {
            *AT(base, f->off, int) = (int)i;
            return 0;
        }
    }
    return dec_fail(d, where, f->key, f->kind == K_ROLE ? "not a role name" : "not a state name");
}

static int dec_array(struct dec *d, const struct field *f, json_t *v, void *base, const char *where)
{
    if (!json_is_array(v))
        return dec_fail(d, where, f->key, "not an array");
    size_t n = json_array_size(v);
    if (n > f->max)
        return dec_fail(d, where, f->key, "too many entries");
    char *elems = xcalloc(n ? n : 1, f->elem_size);
    d->allocs = xrealloc(d->allocs, (d->n_allocs + 1) * sizeof(*d->allocs));
    d->allocs[d->n_allocs++] = elems;
    *AT(base, f->off, char *) = elems;
    *AT(base, f->count_off, size_t) = n;
    for (size_t i = 0; i < n; i++) {
        char inner[64];
        snprintf(inner, sizeof(inner), "%.24s%s[%zu].", where, f->key, i);
        int rc = dec_object(d, f->sub, json_array_get(v, i), elems + i * f->elem_size, inner);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int dec_value(struct dec *d, const struct field *f, json_t *v, void *base, const char *where)
{
    uint64_t u;

    if (!v && f->kind != K_I64_OPT && f->kind != K_STR_OPT)
        return dec_fail(d, where, f->key, "missing");
    switch (f->kind) {
    case K_U64:
        if (!whole(v, f->max, &u))
            return dec_fail(d, where, f->key, "not a whole number in range");
        *AT(base, f->off, uint64_t) = u;
        return 0;
    case K_I64_NULL:
    case K_I64_OPT:
        if (!v || (f->kind == K_I64_NULL && json_is_null(v)))
            u = UINT64_MAX; /* -1 */
        else if (!whole(v, f->max, &u))
            return dec_fail(d, where, f->key, "not a whole number in range");
        *AT(base, f->off, int64_t) = (int64_t)u;
        return 0;
    case K_STR:
        return dec_string(d, f, v, base, where);
    case K_STR_NULL:
    case K_STR_OPT:
        if (!v || (f->kind == K_STR_NULL && json_is_null(v))) {
            *AT(base, f->off, const char *) = NULL;
            return 0;
        }
        return dec_string(d, f, v, base, where);
    case K_BOOL:
        if (!json_is_boolean(v))
            return dec_fail(d, where, f->key, "not true or false");
        *AT(base, f->off, bool) = json_is_true(v);
        return 0;
    case K_BOOL_NULL:
        if (!json_is_boolean(v) && !json_is_null(v))
            return dec_fail(d, where, f->key, "not true, false or null");
        *AT(base, f->off, int) = json_is_null(v) ? -1 : json_is_true(v);
        return 0;
    case K_TRUE:
        return json_is_true(v) ? 0 : dec_fail(d, where, f->key, "not true");
    case K_ROLE:
    case K_STATE:
        return dec_name(d, f, v, base, where);
    case K_COUNTERS:
        if (!json_is_object(v))
            return dec_fail(d, where, f->key, "not an object");
        for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++) {
            const char *name = proto_node_counter_name((enum proto_node_counter)k);
            if (!whole(json_object_get(v, name), 0, &AT(base, f->off, uint64_t)[k]))
                return dec_fail(d, where, name, "counter missing or not a whole number");
        }
        return 0;
    case K_HIST:
        if (!json_is_array(v) || json_array_size(v) != PROTO_HIST_BUCKETS)
            return dec_fail(d, where, f->key, "not an array of the histogram's buckets");
        for (unsigned k = 0; k < PROTO_HIST_BUCKETS; k++)
            if (!whole(json_array_get(v, k), 0, &AT(base, f->off, uint64_t)[k]))
                return dec_fail(d, where, f->key, "a bucket is not a whole number");
        return 0;
    case K_OBJ: {
        char inner[64];
        snprintf(inner, sizeof(inner), "%.30s%s.", where, f->key);
        return dec_object(d, f->sub, v, base, inner);
    }
    case K_ARR:
        return dec_array(d, f, v, base, where);
    }
    return dec_fail(d, where, f->key, "unknown member kind");
}

static int dec_object(struct dec *d, const struct spec *s, json_t *o, void *base, const char *where)
{
    if (!json_is_object(o))
        return dec_fail(d, where, "", "not an object");
    for (size_t i = 0; i < s->n; i++) {
        int rc = dec_value(d, &s->f[i], json_object_get(o, s->f[i].key), base, where);
        if (rc < 0)
            return rc;
    }
    const char *why = s->check ? s->check(base) : NULL;
    return why ? dec_fail(d, where, "", why) : 0;
}

/* decode - parse and check; on success *tree owns the parse, and the arrays hang off the document */
static int decode(const struct spec *s, const char *text, size_t len, void *base, size_t size, void **tree,
                  char **err)
{
    struct dec d = {.err = err};
    json_error_t jerr;

    memset(base, 0, size);
    if (len > PROTO_STATUS_DOC_MAX) {
        *err = xasprintf("document of %zu bytes is larger than %u", len, PROTO_STATUS_DOC_MAX);
        return -EPROTO;
    }
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *err = xasprintf("not JSON: %s (line %d)", jerr.text, jerr.line);
        return -EPROTO;
    }
    int rc = dec_object(&d, s, root, base, "");
    if (rc < 0) {
        for (size_t i = 0; i < d.n_allocs; i++)
            free(d.allocs[i]);
        free(d.allocs);
        json_decref(root);
        memset(base, 0, size);
        return rc;
    }
    free(d.allocs);
    *tree = root;
    return 0;
}

int proto_status_queues_decode(const char *text, size_t len, bool served, struct proto_status_queues *q,
                               char **err)
{
    int rc = decode(served ? &queues_served_s : &queues_page_s, text, len, q, sizeof(*q), &q->tree, err);
    if (rc == 0 && !served)
        q->age_ms = -1;
    return rc;
}

void proto_status_queues_fini(struct proto_status_queues *q)
{
    free(q->queues);
    free(q->paths);
    free(q->rest);
    json_decref(q->tree);
    memset(q, 0, sizeof(*q));
}

int proto_status_tsa_decode(const char *text, size_t len, bool served, struct proto_status_tsa *t, char **err)
{
    int rc = decode(served ? &tsa_served_s : &tsa_page_s, text, len, t, sizeof(*t), &t->tree, err);
    if (rc == 0 && !served)
        t->age_ms = -1;
    return rc;
}

void proto_status_tsa_fini(struct proto_status_tsa *t)
{
    free(t->active);
    free(t->history);
    free(t->rules);
    json_decref(t->tree);
    memset(t, 0, sizeof(*t));
}

int proto_status_node_decode(const char *text, size_t len, struct proto_status_node *n, char **err)
{
    return decode(&node_s, text, len, n, sizeof(*n), &n->tree, err);
}

void proto_status_node_fini(struct proto_status_node *n)
{
    free(n->roles);
    json_decref(n->tree);
    memset(n, 0, sizeof(*n));
}

int proto_status_reply_decode(const char *text, size_t len, struct proto_status_reply *r, char **err)
{
    return decode(&reply_s, text, len, r, sizeof(*r), &r->tree, err);
}

void proto_status_reply_fini(struct proto_status_reply *r)
{
    json_decref(r->tree);
    memset(r, 0, sizeof(*r));
}
