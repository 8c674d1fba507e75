/*
 * sched_queue - messages, scheduled queues, domains, sites, retry and expiry (contract in sched_queue.h)
 *
 * Messages are found by id in one open-addressing table (linear probing, at most 3/4 full,
 * deletion by backward shift so there are no tombstones); queues, domains and sites by name
 * in tables of the same kind. One timing wheel holds every SCHEDULED message, so a scheduled
 * queue is the set of its messages in the wheel plus its counters.
 */
#include "scheduler/sched_queue.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_path.h"

/* a million queued messages: every byte here is a megabyte (malloc rounds 88 to 96) */
_Static_assert(sizeof(struct sched_msg) <= 88, "struct sched_msg grew");

/* ---- small helpers ---- */

uint64_t sched_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return mix64(h);
}

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* ---- name tables ---- */

static void ntab_insert_slot(struct sched_name_table *t, struct sched_name *n)
{
    size_t i = n->hash & (t->cap - 1);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = n;
}

static void ntab_add(struct sched_name_table *t, struct sched_name *n)
{
    if ((t->count + 1) * 4 > t->cap * 3) {
        struct sched_name **old = t->slots;
        size_t oldcap = t->cap;
        t->cap = oldcap ? oldcap * 2 : 64;
        t->slots = xcalloc(t->cap, sizeof(*t->slots));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                ntab_insert_slot(t, old[i]);
        free(old);
    }
    ntab_insert_slot(t, n);
    t->count++;
}

static struct sched_name *ntab_find(const struct sched_name_table *t, const char *name, uint64_t h)
{
    if (!t->cap)
        return NULL;
    for (size_t i = h & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1))
        if (t->slots[i]->hash == h && strcmp(t->slots[i]->name, name) == 0)
            return t->slots[i];
    return NULL;
}

/* backward-shift deletion keeps every probe chain unbroken without tombstones */
#define BACKSHIFT(slots, cap, i, home_of) do { \
    size_t hole_ = (i), j_ = (i); \
    for (;;) { \
        j_ = (j_ + 1) & ((cap) - 1); \
        if (!(slots)[j_]) \
            break; \
        size_t home_ = home_of((slots)[j_]) & ((cap) - 1); \
        if (((j_ - home_) & ((cap) - 1)) >= ((j_ - hole_) & ((cap) - 1))) { \
            (slots)[hole_] = (slots)[j_]; \
            hole_ = j_; \
        } \
    } \
    (slots)[hole_] = NULL; \
} while (0)

#define NAME_HOME(n) ((n)->hash)

static void ntab_del(struct sched_name_table *t, struct sched_name *n)
{
    size_t i = n->hash & (t->cap - 1);
    while (t->slots[i] != n)
        i = (i + 1) & (t->cap - 1);
    BACKSHIFT(t->slots, t->cap, i, NAME_HOME);
    t->count--;
}

/* ---- message table ---- */

static uint64_t id_hash(struct msgid id)
{
    return mix64(id.hi ^ mix64(id.lo));
}

#define MSG_HOME(m) id_hash((m)->id)

static void mtab_insert_slot(struct sched_core *c, struct sched_msg *m)
{
    size_t i = id_hash(m->id) & (c->msgs_cap - 1);
    while (c->msgs[i])
        i = (i + 1) & (c->msgs_cap - 1);
    c->msgs[i] = m;
}

static void mtab_add(struct sched_core *c, struct sched_msg *m)
{
    if ((c->msgs_count + 1) * 4 > c->msgs_cap * 3) {
        struct sched_msg **old = c->msgs;
        size_t oldcap = c->msgs_cap;
        c->msgs_cap = oldcap ? oldcap * 2 : 1024;
        c->msgs = xcalloc(c->msgs_cap, sizeof(*c->msgs));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                mtab_insert_slot(c, old[i]);
        free(old);
    }
    mtab_insert_slot(c, m);
    c->msgs_count++;
}

struct sched_msg *sched_msg_find(const struct sched_core *c, struct msgid id)
{
    if (!c->msgs_cap)
        return NULL;
    for (size_t i = id_hash(id) & (c->msgs_cap - 1); c->msgs[i]; i = (i + 1) & (c->msgs_cap - 1))
        if (msgid_eq(c->msgs[i]->id, id))
            return c->msgs[i];
    return NULL;
}

static void mtab_del(struct sched_core *c, struct sched_msg *m)
{
    size_t i = id_hash(m->id) & (c->msgs_cap - 1);
    while (c->msgs[i] != m)
        i = (i + 1) & (c->msgs_cap - 1);
    BACKSHIFT(c->msgs, c->msgs_cap, i, MSG_HOME);
    c->msgs_count--;
}

/* ---- names ---- */

static bool part_set(const char *s)
{
    return s && *s;
}

/* append - copy s (lowercased when asked) at *pos; false when it does not fit */
static bool append(char *out, size_t size, size_t *pos, const char *s, bool lower)
{
    for (; *s; s++) {
        if (*pos + 1 >= size)
            return false;
        out[(*pos)++] = lower ? (char)tolower((unsigned char)*s) : *s;
    }
    out[*pos] = '\0';
    return true;
}

int sched_queue_name_routed(char *out, size_t size, const char *campaign, const char *tenant,
                            const char *domain, const char *routing_domain)
{
    if (!part_set(domain))
        return -EINVAL;
    if (size == 0)
        return -ENAMETOOLONG;
    size_t pos = 0;
    bool ok = true;
    out[0] = '\0';
    if (part_set(campaign))
        ok = append(out, size, &pos, campaign, false) && append(out, size, &pos, ":", false);
    if (ok && part_set(tenant))
        ok = append(out, size, &pos, tenant, false);
    if (ok && (part_set(campaign) || part_set(tenant)))
        ok = append(out, size, &pos, "@", false);
    ok = ok && append(out, size, &pos, domain, true);
    if (ok && part_set(routing_domain))
        ok = append(out, size, &pos, "!", false) && append(out, size, &pos, routing_domain, true);
    return ok ? 0 : -ENAMETOOLONG;
}

int sched_queue_name(char *out, size_t size, const char *campaign, const char *tenant, const char *domain)
{
    return sched_queue_name_routed(out, size, campaign, tenant, domain, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sched_site_name(char *out, size_t size, const char *const *hosts, size_t count)
{
    if (count == 0 || size == 0)
        return -EINVAL;
    char **h = xcalloc(count, sizeof(*h));
    for (size_t i = 0; i < count; i++) {
        h[i] = lower_dup(hosts[i]);
        size_t len = strlen(h[i]);
        while (len > 0 && h[i][len - 1] == '.')
            h[i][--len] = '\0';
    }
    qsort(h, count, sizeof(*h), cmp_str);
    size_t pos = 0;
    bool ok = true;
    out[0] = '\0';
    for (size_t i = 0; i < count && ok; i++) {
        if ((i > 0 && strcmp(h[i], h[i - 1]) == 0) || !h[i][0])
            continue;
        if (pos > 0)
            ok = append(out, size, &pos, ",", false);
        ok = ok && append(out, size, &pos, h[i], false);
    }
    for (size_t i = 0; i < count; i++)
        free(h[i]);
    free(h);
    if (!ok)
        return -ENAMETOOLONG;
    return pos ? 0 : -EINVAL;
}

/* ---- backoff ---- */

uint64_t sched_backoff_ms(const struct sched_queue_config *cfg, uint32_t attempts, uint64_t *rng)
{
    uint64_t base = (uint64_t)cfg->retry_interval_s * 1000u;
    uint64_t cap = cfg->max_retry_interval_s ? (uint64_t)cfg->max_retry_interval_s * 1000u : UINT64_MAX / 4;
    if (attempts < 1)
        attempts = 1;
    /* doubling stops as soon as the cap is reached, so the shift never overflows */
    for (uint32_t i = 1; i < attempts && base < cap; i++)
        base *= 2;
    if (base > cap)
        base = cap;
    uint64_t span = base / 5; /* the +-10% window */
    uint64_t d = base - base / 10 + (span ? sched_rng_next(rng) % (span + 1) : 0);
    return d > cap ? cap : d;
}

/* ---- domains, queues, sites ---- */

static struct sched_domain *domain_get(struct sched_core *c, const char *name)
{
    uint64_t h = name_hash(name);
    struct sched_domain *d = (struct sched_domain *)ntab_find(&c->domains, name, h);
    if (d)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->n.name = xstrdup(name);
    d->n.hash = h;
    ntab_add(&c->domains, &d->n);
    return d;
}

static void domain_put(struct sched_core *c, struct sched_domain *d)
{
    if (--d->queues > 0)
        return;
    ASSERT(d->waiting.count == 0);
    ntab_del(&c->domains, &d->n);
    free(d->n.name);
    free(d);
}

static struct sched_queue *queue_get(struct sched_core *c, const char *name, const char *domain_lc)
{
    uint64_t h = name_hash(name);
    struct sched_queue *q = (struct sched_queue *)ntab_find(&c->queues, name, h);
    if (q)
        return strcmp(q->domain->n.name, domain_lc) == 0 ? q : NULL;
    q = xcalloc(1, sizeof(*q));
    q->n.name = xstrdup(name);
    q->n.hash = h;
    q->domain = domain_get(c, domain_lc);
    q->domain->queues++;
    q->cfg = c->opt.queue_defaults;
    if (c->hooks.queue_config)
        c->hooks.queue_config(c->hooks.arg, name, domain_lc, &q->cfg);
    if (q->cfg.pool >= c->npools) {
        log_warn("queue %s: egress pool %u does not exist, using the unspecified pool", name, q->cfg.pool);
        q->cfg.pool = 0;
    }
    ntab_add(&c->queues, &q->n);
    return q;
}

struct sched_queue *sched_queue_find(const struct sched_core *c, const char *name)
{
    return (struct sched_queue *)ntab_find(&c->queues, name, name_hash(name));
}

static void queue_put(struct sched_core *c, struct sched_queue *q)
{
    if (q->count > 0)
        return;
    ntab_del(&c->queues, &q->n);
    domain_put(c, q->domain);
    free(q->n.name);
    free(q);
}

static struct sched_site *site_get(struct sched_core *c, const char *name)
{
    uint64_t h = name_hash(name);
    struct sched_site *s = (struct sched_site *)ntab_find(&c->sites, name, h);
    if (s)
        return s;
    s = xcalloc(1, sizeof(*s));
    s->n.name = xstrdup(name);
    s->n.hash = h;
    ntab_add(&c->sites, &s->n);
    return s;
}

/* ---- core ---- */

void sched_core_options_default(struct sched_core_options *opt)
{
    *opt = (struct sched_core_options){
        .seed = 0x5eed5eed5eedull,
        .ready_full_delay_ms = SCHED_READY_FULL_DELAY_DEFAULT_MS,
        .queue_defaults = {
            .retry_interval_s = SCHED_RETRY_INTERVAL_DEFAULT_S,
            .max_retry_interval_s = SCHED_MAX_RETRY_INTERVAL_DEFAULT_S,
            .max_age_s = SCHED_MAX_AGE_DEFAULT_S,
            .pool = 0,
        },
    };
    sched_path_options_default(&opt->path_defaults);
}

struct sched_core *sched_core_new(const struct sched_core_options *opt, const struct sched_hooks *hooks,
                                  uint64_t now_ms)
{
    struct sched_core *c = xcalloc(1, sizeof(*c));
    if (opt)
        c->opt = *opt;
    else
        sched_core_options_default(&c->opt);
    if (hooks)
        c->hooks = *hooks;
    c->rng = c->opt.seed ? c->opt.seed : 0x5eed5eed5eedull;
    c->now = now_ms;
    c->lease_free = UINT32_MAX;
    sched_timer_init(&c->wheel, now_ms);
    uint32_t src = sched_core_source_add(c, "unspecified");
    uint32_t pool = sched_core_pool_add(c, "unspecified");
    sched_core_pool_weight(c, pool, src, 1);
    return c;
}

static void free_names(struct sched_name_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            free(t->slots[i]->name);
            free(t->slots[i]);
        }
    free(t->slots);
}

void sched_core_free(struct sched_core *c)
{
    if (!c)
        return;
    sched_timer_fini(&c->wheel); /* touches the messages' nodes: before they are freed */
    for (size_t i = 0; i < c->msgs_cap; i++)
        free(c->msgs[i]);
    free(c->msgs);
    sched_path_free_all(c);
    for (size_t i = 0; i < c->sites.cap; i++)
        if (c->sites.slots[i])
            free(((struct sched_site *)c->sites.slots[i])->paths);
    free_names(&c->queues);
    free_names(&c->domains);
    free_names(&c->sites);
    for (uint32_t i = 0; i < c->nsources; i++)
        free(c->sources[i]);
    free(c->sources);
    for (uint32_t i = 0; i < c->npools; i++)
        sched_pool_fini(&c->pools[i]);
    free(c->pools);
    free(c);
}

uint32_t sched_core_source_add(struct sched_core *c, const char *name)
{
    for (uint32_t i = 0; i < c->nsources; i++)
        if (strcmp(c->sources[i], name) == 0)
            return i;
    c->sources = xrealloc(c->sources, (c->nsources + 1) * sizeof(*c->sources));
    c->sources[c->nsources] = xstrdup(name);
    return c->nsources++;
}

uint32_t sched_core_pool_add(struct sched_core *c, const char *name)
{
    for (uint32_t i = 0; i < c->npools; i++)
        if (strcmp(c->pools[i].name, name) == 0)
            return i;
    c->pools = xrealloc(c->pools, (c->npools + 1) * sizeof(*c->pools));
    sched_pool_init(&c->pools[c->npools], name);
    return c->npools++;
}

int sched_core_pool_weight(struct sched_core *c, uint32_t pool, uint32_t source, uint32_t weight)
{
    if (pool >= c->npools || source >= c->nsources)
        return -EINVAL;
    return sched_pool_set(&c->pools[pool], source, weight);
}

/* ---- message flow ---- */

void sched_msg_schedule(struct sched_core *c, struct sched_msg *m, uint64_t due_ms)
{
    m->state = SCHED_MSG_SCHEDULED;
    m->at.path = NULL;
    m->queue->scheduled++;
    sched_timer_add(&c->wheel, &m->timer, due_ms);
}

static uint64_t expiry_ms(const struct sched_msg *m)
{
    return m->created_ms + (uint64_t)m->queue->cfg.max_age_s * 1000u;
}

void sched_msg_retry(struct sched_core *c, struct sched_msg *m, uint64_t now_ms)
{
    if (m->attempts < UINT16_MAX)
        m->attempts++;
    c->st.transient++;
    uint64_t due = now_ms + sched_backoff_ms(&m->queue->cfg, m->attempts, &c->rng);
    if (due > expiry_ms(m))
        due = expiry_ms(m);
    sched_msg_schedule(c, m, due);
}

void sched_msg_drop(struct sched_core *c, struct sched_msg *m)
{
    mtab_del(c, m);
    struct sched_queue *q = m->queue;
    q->count--;
    free(m);
    queue_put(c, q);
}

int sched_msg_add(struct sched_core *c, struct msgid id, uint64_t created_ms, uint16_t attempts,
                  const char *queue_name, const char *domain, uint64_t due_ms, struct sched_msg **out)
{
    if (!part_set(queue_name) || !part_set(domain))
        return -EINVAL;
    if (sched_msg_find(c, id))
        return -EEXIST;
    char *dlc = lower_dup(domain);
    struct sched_queue *q = queue_get(c, queue_name, dlc);
    free(dlc);
    if (!q)
        return -EINVAL;
    struct sched_msg *m = xcalloc(1, sizeof(*m));
    m->id = id;
    m->created_ms = created_ms;
    m->attempts = attempts;
    m->queue = q;
    q->count++;
    mtab_add(c, m);
    sched_msg_schedule(c, m, due_ms);
    c->st.added++;
    if (out)
        *out = m;
    return 0;
}

int sched_msg_remove(struct sched_core *c, struct msgid id)
{
    struct sched_msg *m = sched_msg_find(c, id);
    if (!m)
        return -ENOENT;
    switch (m->state) {
    case SCHED_MSG_SCHEDULED:
        sched_timer_cancel(&c->wheel, &m->timer);
        m->queue->scheduled--;
        break;
    case SCHED_MSG_RESOLVING:
        sched_mlist_unlink(&m->at.domain->waiting, m);
        break;
    case SCHED_MSG_READY:
        sched_path_unready(c, m);
        break;
    default:
        return -EBUSY;
    }
    c->st.removed++;
    sched_msg_drop(c, m);
    return 0;
}

/* route - a message leaves the wheel: expire it, or send it towards its site */
static void route(struct sched_core *c, struct sched_msg *m, uint64_t now_ms)
{
    if (now_ms >= expiry_ms(m)) {
        c->st.expired++;
        if (c->hooks.expire)
            c->hooks.expire(c->hooks.arg, m);
        sched_msg_drop(c, m);
        return;
    }
    struct sched_domain *d = m->queue->domain;
    if (d->site && d->site_expires_ms > now_ms) {
        sched_path_place(c, m, d->site, now_ms);
        return;
    }
    m->state = SCHED_MSG_RESOLVING;
    m->at.domain = d;
    sched_mlist_push(&d->waiting, m);
    if (!d->resolving) {
        d->resolving = true;
        if (c->hooks.resolve)
            c->hooks.resolve(c->hooks.arg, d->n.name); /* may answer at once: m is not touched after */
    }
}

static void on_due(struct sched_timer_node *n, void *arg)
{
    struct sched_core *c = arg;
    struct sched_msg *m = (struct sched_msg *)((char *)n - offsetof(struct sched_msg, timer));
    m->queue->scheduled--;
    route(c, m, c->now);
}

size_t sched_core_advance(struct sched_core *c, uint64_t now_ms)
{
    if (now_ms > c->now)
        c->now = now_ms;
    return sched_timer_advance(&c->wheel, now_ms, on_due, c);
}

uint64_t sched_core_next_due(const struct sched_core *c)
{
    return sched_timer_next_due(&c->wheel);
}

static struct sched_domain *domain_find(struct sched_core *c, const char *domain)
{
    char *dlc = lower_dup(domain);
    struct sched_domain *d = (struct sched_domain *)ntab_find(&c->domains, dlc, name_hash(dlc));
    free(dlc);
    return d;
}

int sched_site_resolved(struct sched_core *c, const char *domain, const char *site_name, uint32_t ttl_s,
                        uint64_t now_ms)
{
    if (!part_set(site_name))
        return -EINVAL;
    struct sched_domain *d = domain_find(c, domain);
    if (!d)
        return -ENOENT;
    if (now_ms > c->now)
        c->now = now_ms;
    d->site = site_get(c, site_name);
    d->site_expires_ms = now_ms + (uint64_t)ttl_s * 1000u;
    d->resolving = false;
    /* the domain cannot vanish here: its waiting messages keep their queues alive, and
     * placing a message never frees one */
    struct sched_msg *m;
    while ((m = sched_mlist_pop(&d->waiting)))
        sched_path_place(c, m, d->site, now_ms);
    return 0;
}

int sched_site_failed(struct sched_core *c, const char *domain, bool permanent, const char *reason,
                      uint64_t now_ms)
{
    struct sched_domain *d = domain_find(c, domain);
    if (!d)
        return -ENOENT;
    if (now_ms > c->now)
        c->now = now_ms;
    d->resolving = false;
    /* bounce and drop can free the domain with its last message: move the list out first */
    struct sched_mlist waiting = d->waiting;
    d->waiting = (struct sched_mlist){ 0 };
    struct sched_msg *m;
    while ((m = sched_mlist_pop(&waiting))) {
        if (permanent) {
            c->st.bounced++;
            if (c->hooks.bounce)
                c->hooks.bounce(c->hooks.arg, m, reason ? reason : "site resolution failed");
            sched_msg_drop(c, m);
        } else {
            sched_msg_retry(c, m, now_ms);
        }
    }
    return 0;
}

/* ---- stats and checks ---- */

void sched_core_stats(const struct sched_core *c, struct sched_stats *out)
{
    *out = c->st;
    out->messages = c->msgs_count;
    out->scheduled = c->wheel.count;
    out->queues = c->queues.count;
    out->domains = c->domains.count;
    out->sites = c->sites.count;
    out->paths = c->npaths;
    out->leases = c->leases_live;
    out->workers_alive = c->workers_alive;
    out->resolving = out->ready = out->in_flight = 0;
    for (size_t i = 0; i < c->domains.cap; i++)
        if (c->domains.slots[i])
            out->resolving += ((struct sched_domain *)c->domains.slots[i])->waiting.count;
    for (uint32_t i = 0; i < c->npaths; i++) {
        out->ready += c->paths[i]->ready.count;
        out->in_flight += c->paths[i]->in_flight;
    }
}

void sched_queue_foreach(const struct sched_core *c, void (*cb)(void *arg, const struct sched_queue *q), void *arg)
{
    for (size_t i = 0; i < c->queues.cap; i++)
        if (c->queues.slots[i])
            cb(arg, (const struct sched_queue *)c->queues.slots[i]);
}

void sched_msg_foreach(const struct sched_core *c, void (*cb)(void *arg, const struct sched_msg *m), void *arg)
{
    for (size_t i = 0; i < c->msgs_cap; i++)
        if (c->msgs[i])
            cb(arg, c->msgs[i]);
}

#define CHECK_OR_FAIL(cond, ...) do { \
    if (!(cond)) { \
        log_error("sched_core_check: " __VA_ARGS__); \
        return -EINVAL; \
    } \
} while (0)

static int check_list(const struct sched_mlist *l, enum sched_msg_state state, const void *owner)
{
    uint32_t n = 0;
    const struct sched_msg *prev = NULL;
    for (const struct sched_msg *m = l->head; m; prev = m, m = m->link.next) {
        CHECK_OR_FAIL(m->state == state && m->at.path == owner, "message in the wrong list (state %u)", m->state);
        CHECK_OR_FAIL(m->link.prev == prev, "broken back link");
        CHECK_OR_FAIL(!sched_timer_armed(&m->timer), "listed message has an armed timer");
        n++;
    }
    CHECK_OR_FAIL(n == l->count && l->tail == prev, "list count %u, walked %u", l->count, n);
    return 0;
}

int sched_core_check(const struct sched_core *c)
{
    uint64_t by_state[4] = { 0 };
    for (size_t i = 0; i < c->msgs_cap; i++) {
        const struct sched_msg *m = c->msgs[i];
        if (!m)
            continue;
        CHECK_OR_FAIL(m->state <= SCHED_MSG_IN_FLIGHT, "bad state %u", m->state);
        CHECK_OR_FAIL(sched_msg_find(c, m->id) == m, "message not found by its id");
        CHECK_OR_FAIL(sched_timer_armed(&m->timer) == (m->state == SCHED_MSG_SCHEDULED), "timer/state mismatch");
        if (m->state == SCHED_MSG_IN_FLIGHT)
            CHECK_OR_FAIL(m->at.lease->msg == m, "in-flight message not held by its lease");
        by_state[m->state]++;
    }
    uint64_t listed_waiting = 0, listed_ready = 0, held = 0, qcount = 0, qsched = 0;
    for (size_t i = 0; i < c->domains.cap; i++) {
        const struct sched_domain *d = (const struct sched_domain *)c->domains.slots[i];
        if (!d)
            continue;
        if (check_list(&d->waiting, SCHED_MSG_RESOLVING, d))
            return -EINVAL;
        listed_waiting += d->waiting.count;
    }
    for (uint32_t i = 0; i < c->npaths; i++) {
        const struct sched_path *p = c->paths[i];
        if (check_list(&p->ready, SCHED_MSG_READY, p))
            return -EINVAL;
        listed_ready += p->ready.count;
        CHECK_OR_FAIL(p->ready.count <= p->opt.max_ready || p->opt.max_ready == 0, "ready over max_ready");
        CHECK_OR_FAIL(p->connections <= p->opt.connection_limit || p->opt.connection_limit == 0,
                      "connections over the limit");
    }
    for (uint32_t i = 0; i < c->nleases; i++) {
        const struct sched_lease *l = c->leases[i];
        if (l && l->path && l->msg) {
            CHECK_OR_FAIL(l->msg->state == SCHED_MSG_IN_FLIGHT && l->msg->at.lease == l, "lease holds a stray message");
            held++;
        }
    }
    for (size_t i = 0; i < c->queues.cap; i++) {
        const struct sched_queue *q = (const struct sched_queue *)c->queues.slots[i];
        if (!q)
            continue;
        CHECK_OR_FAIL(q->count > 0, "empty queue kept");
        qcount += q->count;
        qsched += q->scheduled;
    }
    CHECK_OR_FAIL(by_state[SCHED_MSG_SCHEDULED] == c->wheel.count && qsched == c->wheel.count,
                  "scheduled %llu, wheel %zu, queues %llu", (unsigned long long)by_state[0], c->wheel.count,
                  (unsigned long long)qsched);
    CHECK_OR_FAIL(by_state[SCHED_MSG_RESOLVING] == listed_waiting, "resolving %llu, listed %llu",
                  (unsigned long long)by_state[1], (unsigned long long)listed_waiting);
    CHECK_OR_FAIL(by_state[SCHED_MSG_READY] == listed_ready, "ready %llu, listed %llu",
                  (unsigned long long)by_state[2], (unsigned long long)listed_ready);
    CHECK_OR_FAIL(by_state[SCHED_MSG_IN_FLIGHT] == held, "in flight %llu, held %llu",
                  (unsigned long long)by_state[3], (unsigned long long)held);
    CHECK_OR_FAIL(qcount == c->msgs_count, "queues count %llu, table %zu", (unsigned long long)qcount, c->msgs_count);
    return 0;
}
