/*
 * sched_pathcfg - path configurations, their generations and the workers' copies (contract in
 * sched_pathcfg.h)
 *
 * Entries live in an array by id - 1 and an open-addressing index by (source, site). Each keeps its
 * encoded run (with its id and generation): a put compares the new encoding with it, and a send
 * copies it into the arena as it is. A forgotten entry (its path freed) leaves the index, keeps its
 * generation and the workers' generations, and goes on a free list: the id's next path gets the next
 * generation as soon as its run differs (it names its site), so a worker holding the old one is sent it.
 */
#include "scheduler/sched_pathcfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "scheduler/scheduler.h"

struct pathcfg_ent {
    uint32_t id;
    uint16_t source;
    char *site;
    uint64_t hash;
    bool put;       /* set by sched_pathcfg_put, else the node's keys */
    bool stale;     /* a forgotten id taken again: its run is the old path's until a put or a fill */
    uint32_t gen;   /* current generation, from 1; 0: no run yet (a put the codec refused) */
    uint32_t *wgen; /* per worker instance: the generation it holds, 0 none */
    uint32_t nw;
    struct buf run; /* encoded with its id and gen */
};

struct sched_pathcfg {
    struct pathcfg_ent **ent; /* id - 1 */
    uint32_t n, cap;
    uint32_t *index; /* id, 0 empty; index_cap a power of two */
    uint32_t index_cap;
    uint32_t *free_ids; /* forgotten entries, reused first */
    uint32_t nfree;
    bool full_warned, arena_warned;
};

struct sched_pathcfg *sched_pathcfg_new(void)
{
    return xcalloc(1, sizeof(struct sched_pathcfg));
}

void sched_pathcfg_free(struct sched_pathcfg *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->ent[i]->site);
        free(t->ent[i]->wgen);
        buf_fini(&t->ent[i]->run);
        free(t->ent[i]);
    }
    free(t->ent);
    free(t->index);
    free(t->free_ids);
    free(t);
}

void sched_pathcfg_defaults(const struct cfg *cfg, struct proto_path *out)
{
    proto_path_node_defaults(out, cfg->egress_connect_timeout_ms, cfg->egress_banner_timeout_ms,
                             cfg->egress_command_timeout_ms, cfg->egress_data_timeout_ms, cfg->egress_idle_timeout_ms,
                             cfg->egress_port, cfg->egress_max_deliveries_per_connection);
}

/* ---- the table ---- */

static uint64_t key_hash(uint16_t source, const char *site)
{
    uint64_t h = 1469598103934665603ull;
    h = (h ^ (source & 0xff)) * 1099511628211ull;
    h = (h ^ (source >> 8)) * 1099511628211ull;
    for (const unsigned char *p = (const unsigned char *)site; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static void index_put(struct sched_pathcfg *t, uint32_t id)
{
    uint32_t mask = t->index_cap - 1;
    for (uint32_t i = (uint32_t)t->ent[id - 1]->hash & mask;; i = (i + 1) & mask)
        if (!t->index[i]) {
            t->index[i] = id;
            return;
        }
}

static struct pathcfg_ent *find(const struct sched_pathcfg *t, uint16_t source, const char *site, uint64_t hash)
{
    if (!t->index_cap)
        return NULL;
    uint32_t mask = t->index_cap - 1;
    for (uint32_t i = (uint32_t)hash & mask; t->index[i]; i = (i + 1) & mask) {
        struct pathcfg_ent *e = t->ent[t->index[i] - 1];
        if (e->hash == hash && e->source == source && strcmp(e->site, site) == 0)
            return e;
    }
    return NULL;
}

/* index_del - take id out of the index: linear probing's backward shift keeps every other entry reachable */
static void index_del(struct sched_pathcfg *t, uint32_t id)
{
    uint32_t mask = t->index_cap - 1, i = (uint32_t)t->ent[id - 1]->hash & mask;
    while (t->index[i] != id)
        i = (i + 1) & mask;
    t->index[i] = 0;
    for (uint32_t j = (i + 1) & mask; t->index[j]; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)t->ent[t->index[j] - 1]->hash & mask;
        /* the entry at j may move to the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->index[i] = t->index[j];
            t->index[j] = 0;
            i = j;
        }
    }
}

/* add - a new entry with no run yet (a forgotten id first); NULL when the ids ran out */
static struct pathcfg_ent *add(struct sched_pathcfg *t, uint16_t source, const char *site, uint64_t hash)
{
    if (t->nfree) {
        struct pathcfg_ent *e = t->ent[t->free_ids[--t->nfree] - 1];
        e->source = source;
        e->site = xstrdup(site);
        e->hash = hash;
        e->stale = true;
        index_put(t, e->id);
        return e;
    }
    if (t->n >= PROTO_PATH_ID_MAX) {
        if (!t->full_warned)
            log_warn("path configurations: %u paths, no id left; new paths use the egress's node defaults",
                     t->n);
        t->full_warned = true;
        return NULL;
    }
    if (2 * (t->n + 1) > t->index_cap) {
        t->index_cap = t->index_cap ? 2 * t->index_cap : 64;
        free(t->index);
        t->index = xcalloc(t->index_cap, sizeof(*t->index));
        for (uint32_t id = 1; id <= t->n; id++)
            index_put(t, id);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->ent = xrealloc(t->ent, t->cap * sizeof(*t->ent));
    }
    struct pathcfg_ent *e = xcalloc(1, sizeof(*e));
    e->source = source;
    e->site = xstrdup(site);
    e->hash = hash;
    t->ent[t->n++] = e;
    e->id = t->n;
    index_put(t, t->n);
    return e;
}

/* set - e holds p from now on; the generation moves only when a value changed */
static int set(struct pathcfg_ent *e, const struct proto_path *p)
{
    struct proto_path q = *p;
    struct buf b = {0};

    q.hdr.path = e->id;
    q.hdr.generation = e->gen ? e->gen : 1;
    size_t len = proto_path_size(&q);
    buf_reserve(&b, len);
    if (proto_path_encode(&q, b.data, len) < 0) {
        buf_fini(&b);
        return -EINVAL;
    }
    b.len = len;
    if (e->gen && e->run.len == len && memcmp(e->run.data, b.data, len) == 0) {
        buf_fini(&b);
        return 0;
    }
    if (e->gen) {
        q.hdr.generation = e->gen + 1 ? e->gen + 1 : 1;
        (void)proto_path_encode(&q, b.data, len);
    }
    e->gen = q.hdr.generation;
    buf_fini(&e->run);
    e->run = b;
    return 0;
}

int sched_pathcfg_put(struct scheduler *sc, uint16_t source, const char *site, const struct proto_path *p)
{
    struct sched_pathcfg *t = sc->pathcfg;
    uint64_t hash = key_hash(source, site);
    struct pathcfg_ent *e = find(t, source, site, hash);

    if (!e && !(e = add(t, source, site, hash)))
        return -ENOSPC;
    int rc = set(e, p);
    if (rc == 0) {
        e->put = true;
        e->stale = false;
    }
    return rc;
}

static bool send_run(struct scheduler *sc, uint32_t worker, const struct pathcfg_ent *e)
{
    struct role_rt *rt = sc->rt;
    uint64_t off;

    if (shm_arena_alloc(rt->seg.arena, e->run.len, (uint16_t)rt->self_idx, rt->gen, &off) < 0) {
        if (!sc->pathcfg->arena_warned)
            log_warn("path configuration %u for %s: the arena is full; sent again before the next delivery",
                     e->id, e->site);
        sc->pathcfg->arena_warned = true;
        return false;
    }
    memcpy(shm_arena_ptr(rt->seg.arena, off, e->run.len), e->run.data, e->run.len);
    struct proto_rec r = {.type = MSG_SCHEDULER_PATH_CONFIG};
    r.dst_gen = worker < PROTO_NODE_MAX_INSTANCES ? sc->egress_gen[worker] : 0;
    r.body.batch.arena_off = off;
    r.body.batch.len = e->run.len;
    r.body.batch.count = 1;
    scheduler_send(sc, worker, &r);
    return true;
}

uint32_t sched_pathcfg_before_deliver(struct scheduler *sc, uint32_t worker, uint16_t source, const char *site)
{
    struct sched_pathcfg *t = sc->pathcfg;
    uint64_t hash = key_hash(source, site);
    struct pathcfg_ent *e = find(t, source, site, hash);

    if (!e && !(e = add(t, source, site, hash)))
        return 0;
    if (!e->gen || e->stale) {
        struct proto_path d;
        sched_pathcfg_defaults(&sc->rt->cfg, &d);
        if (set(e, &d) < 0)
            panic("the node's [egress] keys do not encode as a path configuration");
        e->stale = false;
    }
    if (worker >= e->nw) {
        e->wgen = xrealloc(e->wgen, (worker + 1) * sizeof(*e->wgen));
        memset(e->wgen + e->nw, 0, (worker + 1 - e->nw) * sizeof(*e->wgen));
        e->nw = worker + 1;
    }
    if (e->wgen[worker] != e->gen && send_run(sc, worker, e))
        e->wgen[worker] = e->gen;
    return e->id;
}

uint32_t sched_pathcfg_lookup(const struct sched_pathcfg *t, uint16_t source, const char *site, uint32_t *gen)
{
    const struct pathcfg_ent *e = find(t, source, site, key_hash(source, site));
    *gen = e ? e->gen : 0;
    return e ? e->id : 0;
}

void sched_pathcfg_forget(struct scheduler *sc, uint16_t source, const char *site)
{
    struct sched_pathcfg *t = sc->pathcfg;
    struct pathcfg_ent *e = find(t, source, site, key_hash(source, site));
    if (!e)
        return;
    index_del(t, e->id);
    free(e->site);
    e->site = NULL;
    e->put = false;
    if (t->nfree % 64 == 0)
        t->free_ids = xrealloc(t->free_ids, (t->nfree + 64) * sizeof(*t->free_ids));
    t->free_ids[t->nfree++] = e->id;
}

void sched_pathcfg_worker_reset(struct scheduler *sc, uint32_t worker)
{
    struct sched_pathcfg *t = sc->pathcfg;
    for (uint32_t i = 0; i < t->n; i++)
        if (worker < t->ent[i]->nw)
            t->ent[i]->wgen[worker] = 0;
}

void sched_pathcfg_reload(struct scheduler *sc)
{
    struct sched_pathcfg *t = sc->pathcfg;
    struct proto_path d;

    sched_pathcfg_defaults(&sc->rt->cfg, &d);
    for (uint32_t i = 0; i < t->n; i++)
        if (t->ent[i]->site && !t->ent[i]->put && t->ent[i]->gen && set(t->ent[i], &d) < 0)
            panic("the node's [egress] keys do not encode as a path configuration");
}
