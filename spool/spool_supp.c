/*
 * spool_supp - the suppression list in the spool (contract in spool_supp.h, schema of the ops in
 * docs/admin-api.md "Suppression list")
 *
 * Values in the family are the entry's JSON form (common/supp.h), decoded with the same strict decoder as
 * an import line: a value that does not decode is skipped and logged (never acted on, never deleted).
 * The in-memory set holds one 64-bit keyed hash per entry, unsorted while the list changes; a snapshot
 * sorts and de-duplicates it. A removed entry leaves the set at the next rebuild (start, expiry sweep,
 * remove): until then the ingress may still refuse it at RCPT, which is why the spool's own checks read
 * the database.
 */
#include "spool/spool_supp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_admin.h"
#include "spool/spool.h"
#include "spool/spool_dlv.h"

#define LIST_MAX 5000u              /* entries per list page (PROTO_ADMIN_ROWS_MAX) */
#define LIST_BYTES (640u << 10)     /* ... and at most about this much JSON of the 1 MiB page */

struct spool_supp {
    uint8_t key[16];
    struct supp_hasher *hasher;
    uint64_t *h;
    size_t n, cap;
    size_t sorted_n;      /* h[0..sorted_n) is sorted and unique; the rest was added since */
    uint64_t snap_cost_ns; /* what the last snapshot took: the next waits ten times as long */
    size_t entries;       /* in the family, as last counted plus adds */
    bool dirty;           /* the set changed since the last snapshot */
    uint64_t next_snap_ns;
    uint64_t min_expires; /* the earliest expiry in the family; 0: none */
    uint64_t last_sweep;  /* unix seconds of the last rebuild (expiry sweep) */
    char *path;
};

static void set_push(struct spool_supp *s, uint64_t h)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->h = xrealloc(s->h, s->cap * sizeof(*s->h));
    }
    s->h[s->n++] = h;
    s->dirty = true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* set_sort - sorted and unique: the tail added since the last sort is sorted and merged (O(n) for a list
 * that grows by a few entries between snapshots) */
static void set_sort(struct spool_supp *s)
{
    if (s->sorted_n > s->n)
        s->sorted_n = 0;
    size_t tail = s->n - s->sorted_n;
    if (tail > 1)
        qsort(s->h + s->sorted_n, tail, sizeof(*s->h), cmp_u64);
    if (tail && s->sorted_n) {
        uint64_t *m = xmalloc(s->n * sizeof(*m));
        size_t i = 0, j = s->sorted_n, o = 0;
        while (i < s->sorted_n || j < s->n)
            m[o++] = j >= s->n || (i < s->sorted_n && s->h[i] <= s->h[j]) ? s->h[i++] : s->h[j++];
        free(s->h);
        s->h = m;
        s->cap = s->n;
    }
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++)
        if (o == 0 || s->h[o - 1] != s->h[i])
            s->h[o++] = s->h[i];
    s->n = o;
    s->sorted_n = o;
}

static void snapshot(struct spool *sp)
{
    struct spool_supp *s = sp->supp;
    struct buf b = {0};
    set_sort(s);
    supp_snap_encode(s->key, s->h, s->n, &b);
    char *tmp = xasprintf("%s.tmp", s->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < b.len;) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (ok && rename(tmp, s->path) < 0)
        ok = false;
    if (!ok) {
        /* the ingress keeps the previous one; the spool's checks at store and load still hold */
        log_warn("suppression snapshot %s not written: %s; retried", s->path, strerror(errno));
        unlink(tmp);
    } else {
        s->dirty = false;
    }
    free(tmp);
    buf_fini(&b);
}

/* decode - a stored value; false (logged) when it is not an entry */
static bool decode(const char *val, size_t vlen, struct supp_entry *e)
{
    const char *why = NULL;
    json_t *o = json_loadb(val, vlen, JSON_REJECT_DUPLICATES, NULL);
    int rc = o ? supp_entry_from_json(o, e, &why) : -EINVAL;
    json_decref(o);
    if (rc < 0)
        log_warn("suppression entry of %zu bytes does not decode (%s): skipped", vlen, why ? why : "not JSON");
    return rc == 0;
}

static bool expired(const struct supp_entry *e, uint64_t now)
{
    return e->expires && e->expires <= now;
}

struct load_ctx {
    struct spool *sp;
    uint64_t now;
    struct spool_db_batch *del; /* expired entries */
    size_t dels;
};

static int on_load(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct load_ctx *c = arg;
    struct spool_supp *s = c->sp->supp;
    struct supp_entry e;
    if (!decode(val, vlen, &e))
        return 0;
    if (expired(&e, c->now)) {
        spool_db_batch_supp_del(c->del, key, klen);
        c->dels++;
        return 0;
    }
    if (e.expires && (!s->min_expires || e.expires < s->min_expires))
        s->min_expires = e.expires;
    set_push(s, supp_hasher_hash(s->hasher, e.tenant, e.addr));
    s->entries++;
    return 0;
}

/* rebuild - the set from the family, expired entries deleted; 0 or -errno */
static int rebuild(struct spool *sp)
{
    struct spool_supp *s = sp->supp;
    struct load_ctx c = {.sp = sp, .now = clock_real_ns() / 1000000000u, .del = spool_db_batch_new(sp->db)};
    s->last_sweep = c.now;
    s->n = 0;
    s->sorted_n = 0;
    s->entries = 0;
    s->min_expires = 0;
    /* one pass of one iterator (a consistent view); the set is bounded by the snapshot's limit anyway */
    int rc = spool_db_supp_scan(sp->db, NULL, 0, SUPP_SNAP_MAX_ENTRIES, on_load, &c);
    if (rc >= 0 && c.dels) {
        rc = spool_db_commit(sp->db, c.del);
        if (rc == 0)
            log_info("suppression list: %zu expired entries removed", c.dels);
    }
    spool_db_batch_free(c.del);
    s->dirty = true;
    return rc < 0 ? rc : 0;
}

void spool_supp_open(struct spool *sp)
{
    struct spool_supp *s = xcalloc(1, sizeof(*s));
    if (RAND_bytes(s->key, sizeof(s->key)) != 1)
        fatal("suppression list: no random bytes for the snapshot key");
    s->hasher = supp_hasher_new(s->key);
    s->path = xasprintf("%s/published/suppression.snap", sp->rt->cfg.data_dir);
    sp->supp = s;
    uint64_t t0 = clock_mono_ns();
    int rc = rebuild(sp);
    if (rc < 0)
        fatal("suppression list unreadable: %s (%s)", strerror(-rc), spool_db_error(sp->db));
    snapshot(sp);
    log_info("suppression list: %zu entries loaded in %llu ms, snapshot %s", s->entries,
             (unsigned long long)((clock_mono_ns() - t0) / 1000000u), s->path);
}

void spool_supp_close(struct spool *sp)
{
    struct spool_supp *s = sp->supp;
    if (!s)
        return;
    supp_hasher_free(s->hasher);
    free(s->h);
    free(s->path);
    free(s);
    sp->supp = NULL;
}

void spool_supp_tick(struct spool *sp, uint64_t now_ns)
{
    struct spool_supp *s = sp->supp;
    if (!s)
        return;
    uint64_t now = clock_real_ns() / 1000000000u;
    /* a sweep reads the whole family: at most once every SPOOL_SUPP_SWEEP_S, however many entries expire */
    if (s->min_expires && now >= s->min_expires && now >= s->last_sweep + SPOOL_SUPP_SWEEP_S && rebuild(sp) < 0)
        s->min_expires = now + 60; /* the family cannot be read now: again in a minute */
    if (s->dirty && now_ns >= s->next_snap_ns) {
        uint64_t t0 = clock_mono_ns();
        snapshot(sp);
        s->snap_cost_ns = clock_mono_ns() - t0;
        /* a large list that keeps changing (an import) is not re-sorted and re-written on every tick: the
         * spool spends at most a tenth of its time on snapshots */
        s->next_snap_ns = now_ns + SPOOL_SUPP_SNAP_MS * 1000000ull + 10 * s->snap_cost_ns;
    }
}

/* get - the stored entry of (tenant, addr); 0, -ENOENT, -EINVAL (does not decode) or -errno */
static int get(struct spool *sp, const char *tenant, const char *addr, struct supp_entry *e)
{
    char key[SUPP_KEY_MAX];
    struct buf v = {0};
    size_t kl = supp_key(tenant, addr, key);
    int rc = spool_db_supp_get(sp->db, key, kl, &v);
    if (rc == 0 && !decode((const char *)v.data, v.len, e))
        rc = -EINVAL;
    buf_fini(&v);
    return rc;
}

/* merge - e made from a new sighting: the stored one's first_seen and source_id stay */
static void merge(struct spool *sp, struct supp_entry *e, uint64_t now)
{
    struct supp_entry old;
    if (!e->last_seen)
        e->last_seen = now;
    if (get(sp, e->tenant, e->addr, &old) == 0) {
        if (old.first_seen && (!e->first_seen || old.first_seen < e->first_seen))
            e->first_seen = old.first_seen;
        if (old.source[0])
            memcpy(e->source, old.source, sizeof(e->source));
    }
    if (!e->first_seen)
        e->first_seen = e->last_seen;
}

/* put - e into batch b, its hash into the set */
static int put(struct spool *sp, struct spool_db_batch *b, const struct supp_entry *e)
{
    struct spool_supp *s = sp->supp;
    char key[SUPP_KEY_MAX];
    json_t *o = supp_entry_json(e);
    char *val = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t kl = supp_key(e->tenant, e->addr, key);
    int rc = spool_db_batch_supp_put(b, key, kl, val, strlen(val));
    free(val);
    if (rc < 0)
        return rc;
    set_push(s, supp_hasher_hash(s->hasher, e->tenant, e->addr));
    s->entries++;
    if (e->expires && (!s->min_expires || e->expires < s->min_expires))
        s->min_expires = e->expires;
    return 0;
}

/* entry - the fields checked into *e; 0 or -EINVAL */
static int entry(struct supp_entry *e, const char *tenant, const char *addr, enum supp_reason reason,
                 const char *source, uint64_t expires)
{
    memset(e, 0, sizeof(*e));
    if (!tenant || !addr || !supp_valid_tenant(tenant, strlen(tenant)) || !supp_norm_addr(addr, strlen(addr), e->addr) ||
        (unsigned)reason >= SUPP_REASON__MAX || !supp_valid_source(source ? source : "", strlen(source ? source : "")))
        return -EINVAL;
    snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    snprintf(e->source, sizeof(e->source), "%s", source ? source : "");
    e->reason = reason;
    e->expires = expires;
    return 0;
}

int spool_supp_add(struct spool *sp, const char *tenant, const char *addr, enum spool_supp_reason reason,
                   const char *source_id, uint64_t expires_unix)
{
    struct supp_entry e;
    if (!sp->rt->cfg.supp_enabled || !sp->supp)
        return -ENOTSUP;
    if (entry(&e, tenant, addr, (enum supp_reason)reason, source_id, expires_unix) < 0)
        return -EINVAL;
    uint64_t now = clock_real_ns() / 1000000000u;
    merge(sp, &e, now);
    int rc = put(sp, sp->batch, &e);
    if (rc < 0)
        return rc;
    json_t *rec = supp_entry_json(&e);
    json_object_set_new(rec, "type", json_string("SuppressionAdded"));
    json_object_set_new(rec, "recipient", json_string(e.addr));
    json_object_set_new(rec, "timestamp", json_integer((json_int_t)now));
    json_object_set_new(rec, "nodeid", sp->rt->cfg.node_id && sp->rt->cfg.node_id[0] ? json_string(sp->rt->cfg.node_id)
                                                                                     : json_null());
    spool_wal_add(sp, rec);
    return 0;
}

#define SET_TAIL_SCAN 256 /* an unsorted tail longer than this (an import running) is not scanned */

/* set_maybe - the in-memory set may hold (tenant, addr): false means surely not (no database read needed) */
static bool set_maybe(struct spool_supp *s, const char *tenant, const char *addr)
{
    uint64_t h = supp_hasher_hash(s->hasher, tenant, addr);
    struct supp_snap sorted = {.h = s->h, .n = s->sorted_n <= s->n ? s->sorted_n : 0};
    if (supp_snap_has(&sorted, h))
        return true;
    if (s->n - sorted.n > SET_TAIL_SCAN)
        return true;
    for (size_t i = sorted.n; i < s->n; i++)
        if (s->h[i] == h)
            return true;
    return false;
}

bool spool_supp_lookup(struct spool *sp, const char *tenant, const char *addr, struct supp_entry *out)
{
    char a[SUPP_ADDR_MAX + 1];
    struct spool_supp *s = sp->supp;
    uint64_t now = clock_real_ns() / 1000000000u;
    if (!s || s->entries == 0 || !supp_norm_addr(addr, strlen(addr), a))
        return false;
    /* the set has every stored entry (added with it, removed after it): the database is read on a maybe only */
    if (set_maybe(s, "", a) && get(sp, "", a, out) == 0 && !expired(out, now))
        return true;
    return tenant && tenant[0] && supp_valid_tenant(tenant, strlen(tenant)) && set_maybe(s, tenant, a) &&
           get(sp, tenant, a, out) == 0 && !expired(out, now);
}

/* suppressed_reply - the response of a Suppressed record */
static void suppressed_reply(const struct supp_entry *e, char *buf, size_t cap, struct spool_log_response *r)
{
    snprintf(buf, cap, "suppressed: %s%s%s", supp_reason_name(e->reason), e->source[0] ? " " : "", e->source);
    *r = (struct spool_log_response){.code = 550, .enh_class = 5, .enh_subject = 7, .enh_detail = 1, .content = buf};
}

uint32_t spool_supp_store(struct spool *sp, struct proto_env *rec, uint8_t **hits)
{
    uint32_t n = 0;
    *hits = NULL;
    if (!sp->rt->cfg.supp_enabled)
        return 0;
    const char *tenant = proto_env_meta_get(rec, PROTO_ENV_META_TENANT);
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        struct supp_entry e;
        if (rec->rcpts[i].state != PROTO_RCPT_QUEUED || !spool_supp_lookup(sp, tenant, rec->rcpts[i].addr, &e))
            continue;
        if (!*hits)
            *hits = xcalloc(rec->rcpt_count, 1);
        (*hits)[i] = 1;
        rec->rcpts[i].state = PROTO_RCPT_ADMIN_BOUNCED;
        n++;
    }
    return n;
}

void spool_supp_store_log(struct spool *sp, struct msgid id, const struct proto_env *rec, uint8_t *hits)
{
    const char *tenant = proto_env_meta_get(rec, PROTO_ENV_META_TENANT);
    for (uint32_t i = 0; hits && i < rec->rcpt_count; i++) {
        struct supp_entry e;
        char text[SUPP_SOURCE_MAX + 64];
        struct spool_log_response resp;
        if (!hits[i])
            continue;
        if (!spool_supp_lookup(sp, tenant, rec->rcpts[i].addr, &e))
            memset(&e, 0, sizeof(e)); /* removed in between: it was suppressed when decided */
        suppressed_reply(&e, text, sizeof(text), &resp);
        spool_upd_log_rcpt(sp, id, rec, SPOOL_LOG_SUPPRESSED, i, &resp);
    }
    free(hits);
}

void spool_supp_before_load(struct spool *sp, struct msgid id, struct proto_env *loaded)
{
    if (!sp->rt->cfg.supp_enabled || !sp->supp || sp->supp->entries == 0)
        return;
    const char *tenant = proto_env_meta_get(loaded, PROTO_ENV_META_TENANT);
    uint8_t *hit = NULL;
    for (uint32_t i = 0; i < loaded->rcpt_count; i++) {
        struct supp_entry e;
        if (loaded->rcpts[i].state != PROTO_RCPT_QUEUED || !spool_supp_lookup(sp, tenant, loaded->rcpts[i].addr, &e))
            continue;
        if (!hit)
            hit = xcalloc(loaded->rcpt_count, 1);
        hit[i] = 1;
    }
    if (!hit)
        return;
    long ei = spool_upd_env_get(sp, id);
    if (ei < 0 || sp->envs[ei].gone || sp->envs[ei].rec.rcpt_count != loaded->rcpt_count) {
        free(hit);
        return;
    }
    struct spool_env *env = &sp->envs[ei];
    struct proto_env *rec = &env->rec;
    bool changed = false;
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        struct supp_entry e;
        char text[SUPP_SOURCE_MAX + 64];
        struct spool_log_response resp;
        if (!hit[i] || rec->rcpts[i].state != PROTO_RCPT_QUEUED ||
            !spool_supp_lookup(sp, tenant, rec->rcpts[i].addr, &e))
            continue;
        /* the scheduler knows the group by its first queued recipient: named before this one leaves it */
        uint32_t first = i;
        for (uint32_t j = 0; j < i; j++)
            if (rec->rcpts[j].state == PROTO_RCPT_QUEUED && spool_dlv_same_domain(rec->rcpts[j].addr, rec->rcpts[i].addr)) {
                first = j;
                break;
            }
        rec->rcpts[i].state = PROTO_RCPT_ADMIN_BOUNCED;
        loaded->rcpts[i].state = PROTO_RCPT_ADMIN_BOUNCED;
        suppressed_reply(&e, text, sizeof(text), &resp);
        spool_upd_log_rcpt(sp, id, rec, SPOOL_LOG_SUPPRESSED, i, &resp);
        spool_upd_owed(sp, id, first, ei);
        changed = true;
    }
    free(hit);
    if (changed)
        spool_upd_write_env(sp, env);
}

/* ---- admin ops ---- */

bool spool_supp_op(const struct proto_admin_req *req)
{
    return req->op >= PROTO_ADMIN_SUPP_CHECK && req->op <= PROTO_ADMIN_SUPP_IMPORT;
}

/* write_now - b with one synced write; 0 or -errno (logged) */
static int write_now(struct spool *sp, struct spool_db_batch *b, const char *what)
{
    int rc = spool_db_commit(sp->db, b);
    if (rc < 0)
        log_warn("admin: suppression %s not written: %s (%s)", what, strerror(-rc), spool_db_error(sp->db));
    return rc;
}

static unsigned op_check(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    char a[SUPP_ADDR_MAX + 1];
    const char *tenant = req->args.tenant ? req->args.tenant : "";
    if (!req->args.address || !supp_norm_addr(req->args.address, strlen(req->args.address), a))
        return *error = "address= is local@domain", 400;
    if (!supp_valid_tenant(tenant, strlen(tenant)))
        return *error = "tenant= is 0..64 of letters, digits, '.', '_', '-'", 400;
    json_t *list = json_array();
    uint64_t now = clock_real_ns() / 1000000000u;
    bool suppressed = false;
    for (int k = 0; k < (tenant[0] ? 2 : 1); k++) {
        struct supp_entry e;
        int rc = get(sp, k ? tenant : "", a, &e);
        if (rc == -ENOENT || rc == -EINVAL)
            continue;
        if (rc < 0) {
            json_decref(list);
            return *error = "the spool database cannot be read now", 503;
        }
        json_t *o = supp_entry_json(&e);
        json_object_set_new(o, "expired", json_boolean(expired(&e, now)));
        suppressed |= !expired(&e, now);
        json_array_append_new(list, o);
    }
    *result = json_pack("{s:o, s:b, s:s, s:s}", "entries", list, "suppressed", suppressed, "address", a, "tenant",
                        tenant);
    return 200;
}

struct list_ctx {
    json_t *rows;
    size_t bytes;
    char next[SUPP_TENANT_MAX + 1 + SUPP_ADDR_MAX + 1];
};

static int on_list(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct list_ctx *c = arg;
    struct supp_entry e;
    char t[SUPP_TENANT_MAX + 1], a[SUPP_ADDR_MAX + 1];
    if (!supp_key_split(key, klen, t, a))
        return 0;
    snprintf(c->next, sizeof(c->next), "%s/%s", t, a);
    if (decode(val, vlen, &e))
        json_array_append_new(c->rows, supp_entry_json(&e));
    /* a JSON string may grow to 6 bytes per byte of control characters: those are refused in entries, so
     * twice the value (escaped quotes) and the member names bound it */
    c->bytes += 2 * vlen + 32;
    return c->bytes >= LIST_BYTES ? 1 : 0;
}

static unsigned op_list(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    char key[SUPP_KEY_MAX], a[SUPP_ADDR_MAX + 1];
    size_t kl = 0;
    uint64_t limit = req->args.limit ? req->args.limit : 100;
    if (limit > LIST_MAX)
        limit = LIST_MAX;
    if (req->args.after) {
        const char *slash = strchr(req->args.after, '/');
        if (!slash || !supp_valid_tenant(req->args.after, (size_t)(slash - req->args.after)) ||
            !supp_norm_addr(slash + 1, strlen(slash + 1), a))
            return *error = "after= is TENANT/ADDRESS (\"/ADDRESS\" for a global entry), as a page's \"next\"", 400;
        char t[SUPP_TENANT_MAX + 1];
        memcpy(t, req->args.after, (size_t)(slash - req->args.after));
        t[slash - req->args.after] = '\0';
        kl = supp_key(t, a, key);
    }
    struct list_ctx c = {.rows = json_array()};
    int rc = spool_db_supp_scan(sp->db, kl ? key : NULL, kl, (size_t)limit, on_list, &c);
    bool full = rc == 1 && c.bytes >= LIST_BYTES; /* stopped by the size: more may follow */
    if (rc == 1 && full)
        rc = (int)json_array_size(c.rows);
    if (rc < 0) {
        json_decref(c.rows);
        return *error = "the spool database cannot be read now", 503;
    }
    *result = json_pack("{s:o, s:o, s:I}", "entries", c.rows, "next",
                        ((uint64_t)rc == limit || full) && c.next[0] ? json_string(c.next) : json_null(), "total",
                        (json_int_t)sp->supp->entries);
    return 200;
}

static unsigned op_add(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    struct supp_entry e;
    enum supp_reason reason = SUPP_REASON_ADMIN;
    if (req->args.reason && !supp_reason_parse(req->args.reason, &reason))
        return *error = "reason= is hard_bounce, complaint, oob, unsubscribe or admin", 400;
    if (entry(&e, req->args.tenant ? req->args.tenant : "", req->args.address ? req->args.address : "", reason,
              req->args.source, req->args.expires) < 0)
        return *error = "address= is local@domain; tenant= 0..64 of letters, digits, '.', '_', '-'; source= text", 400;
    merge(sp, &e, clock_real_ns() / 1000000000u);
    struct spool_db_batch *b = spool_db_batch_new(sp->db);
    int rc = put(sp, b, &e);
    if (rc == 0)
        rc = write_now(sp, b, "add");
    spool_db_batch_free(b);
    if (rc < 0)
        return *error = "the spool database refused the write (see the log)", 503;
    log_info("admin: %s suppressed %s%s%s (%s)", req->who, e.addr, e.tenant[0] ? " for tenant " : "", e.tenant,
             supp_reason_name(e.reason));
    *result = json_pack("{s:o}", "item", supp_entry_json(&e));
    return 200;
}

static unsigned op_remove(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    char a[SUPP_ADDR_MAX + 1], key[SUPP_KEY_MAX];
    struct supp_entry e;
    const char *tenant = req->args.tenant ? req->args.tenant : "";
    if (!req->args.address || !supp_norm_addr(req->args.address, strlen(req->args.address), a) ||
        !supp_valid_tenant(tenant, strlen(tenant)))
        return *error = "address= is local@domain; tenant= 0..64 of letters, digits, '.', '_', '-'", 400;
    int rc = get(sp, tenant, a, &e);
    if (rc == -ENOENT)
        return *error = "no such entry", 404;
    struct spool_db_batch *b = spool_db_batch_new(sp->db);
    size_t kl = supp_key(tenant, a, key);
    rc = spool_db_batch_supp_del(b, key, kl);
    if (rc == 0)
        rc = write_now(sp, b, "remove");
    spool_db_batch_free(b);
    if (rc < 0)
        return *error = "the spool database refused the write (see the log)", 503;
    /* the hash leaves the set now: the ingress stops refusing it with the next snapshot */
    struct spool_supp *s = sp->supp;
    set_sort(s);
    uint64_t h = supp_hasher_hash(s->hasher, tenant, a);
    struct supp_snap view = {.h = s->h, .n = s->n};
    size_t lo = supp_snap_lower_bound(&view, h);
    if (lo < s->n && s->h[lo] == h) {
        memmove(s->h + lo, s->h + lo + 1, (s->n - lo - 1) * sizeof(*s->h));
        s->n--;
        s->sorted_n = s->n;
    }
    if (s->entries)
        s->entries--;
    s->dirty = true;
    log_info("admin: %s removed %s%s%s from the suppression list", req->who, a, tenant[0] ? " for tenant " : "", tenant);
    *result = json_pack("{s:{s:s, s:s, s:b}}", "item", "address", a, "tenant", tenant, "removed", 1);
    return 200;
}

static unsigned op_import(struct spool *sp, const struct proto_admin_req *req, json_t **result, const char **error)
{
    const json_t *rows = req->args.entries;
    if (!rows)
        return *error = "entries is missing", 400;
    struct spool_db_batch *b = spool_db_batch_new(sp->db);
    json_t *errors = json_array();
    size_t added = 0, refused = 0;
    uint64_t now = clock_real_ns() / 1000000000u;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        struct supp_entry e;
        const char *why = NULL;
        if (supp_entry_from_json(json_array_get(rows, i), &e, &why) < 0) {
            refused++;
            if (json_array_size(errors) < 20)
                json_array_append_new(errors, json_pack("{s:I, s:s}", "index", (json_int_t)i, "error", why));
            continue;
        }
        if (!e.last_seen)
            e.last_seen = now;
        if (!e.first_seen)
            e.first_seen = e.last_seen;
        if (put(sp, b, &e) < 0)
            break;
        added++;
    }
    int rc = write_now(sp, b, "import");
    spool_db_batch_free(b);
    if (rc < 0) {
        json_decref(errors);
        /* the set may hold hashes of entries that were not written: only ever a refusal too many, until the
         * next rebuild */
        return *error = "the spool database refused the write (see the log)", 503;
    }
    *result = json_pack("{s:{s:I, s:I, s:o}}", "item", "added", (json_int_t)added, "refused", (json_int_t)refused,
                        "errors", errors);
    return 200;
}

unsigned spool_supp_admin(struct spool *sp, const struct proto_admin_req *req, void **result, const char **error)
{
    json_t **res = (json_t **)result;
    if (!sp->supp)
        return *error = "the suppression list is not open", 503;
    if (req->op != PROTO_ADMIN_SUPP_CHECK && req->op != PROTO_ADMIN_SUPP_LIST && spool_db_needs_recover(sp->db))
        return *error = "the spool database is recovering from a write error", 503;
    switch (req->op) {
    case PROTO_ADMIN_SUPP_CHECK:
        return op_check(sp, req, res, error);
    case PROTO_ADMIN_SUPP_LIST:
        return op_list(sp, req, res, error);
    case PROTO_ADMIN_SUPP_ADD:
        return op_add(sp, req, res, error);
    case PROTO_ADMIN_SUPP_REMOVE:
        return op_remove(sp, req, res, error);
    case PROTO_ADMIN_SUPP_IMPORT:
        return op_import(sp, req, res, error);
    default:
        return *error = "not an op of the suppression list", 400;
    }
}
