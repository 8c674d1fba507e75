/*
 * sched_hold - hold timers of paths and the suspension tables (contract in sched_hold.h)
 *
 * The heap is a binary min-heap of paths in core->holds, each path knowing its index (hold_idx).
 * The suspension tables are plain arrays: they hold a few entries (operator and automation
 * actions), scanned when a path or queue is created or a suspension changes.
 */
#include "scheduler/sched_hold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_path.h"

/* ---- the heap ---- */

static uint64_t key(const struct sched_path *p)
{
    return p->throttled_until_ms > p->suspended_until_ms ? p->throttled_until_ms : p->suspended_until_ms;
}

static void heap_put(struct sched_core *c, uint32_t i, struct sched_path *p)
{
    c->holds[i] = p;
    p->hold_idx = i;
}

static void sift_up(struct sched_core *c, uint32_t i)
{
    struct sched_path *p = c->holds[i];
    while (i > 0) {
        uint32_t up = (i - 1) / 2;
        if (key(c->holds[up]) <= key(p))
            break;
        heap_put(c, i, c->holds[up]);
        i = up;
    }
    heap_put(c, i, p);
}

static void sift_down(struct sched_core *c, uint32_t i)
{
    struct sched_path *p = c->holds[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        uint64_t km = key(p);
        if (l < c->nholds && key(c->holds[l]) < km) {
            m = l;
            km = key(c->holds[l]);
        }
        if (l + 1 < c->nholds && key(c->holds[l + 1]) < km)
            m = l + 1;
        if (m == i)
            break;
        heap_put(c, i, c->holds[m]);
        i = m;
    }
    heap_put(c, i, p);
}

static void heap_remove(struct sched_core *c, struct sched_path *p)
{
    uint32_t i = p->hold_idx;
    p->hold_idx = UINT32_MAX;
    struct sched_path *last = c->holds[--c->nholds];
    if (i == c->nholds)
        return;
    heap_put(c, i, last);
    sift_up(c, i);
    sift_down(c, last->hold_idx);
}

void sched_hold_arm(struct sched_core *c, struct sched_path *p)
{
    if (p->throttled_until_ms <= c->now)
        p->throttled_until_ms = 0;
    if (p->suspended_until_ms <= c->now)
        p->suspended_until_ms = 0;
    bool want = key(p) > 0;
    if (!want) {
        if (p->hold_idx != UINT32_MAX)
            heap_remove(c, p);
        return;
    }
    if (p->hold_idx == UINT32_MAX) {
        if (c->nholds == c->holds_cap) {
            c->holds_cap = c->holds_cap ? c->holds_cap * 2 : 16;
            c->holds = xrealloc(c->holds, c->holds_cap * sizeof(*c->holds));
        }
        heap_put(c, c->nholds++, p);
    }
    sift_up(c, p->hold_idx);
    sift_down(c, p->hold_idx);
}

void sched_hold_advance(struct sched_core *c, uint64_t now_ms)
{
    while (c->nholds > 0 && key(c->holds[0]) <= now_ms) {
        struct sched_path *p = c->holds[0];
        heap_remove(c, p);
        p->throttled_until_ms = 0;
        if (p->suspended_until_ms <= now_ms)
            p->suspended_until_ms = 0;
        sched_hold_arm(c, p); /* a suspension may outlast the throttle (the key is the later) */
        sched_path_update(c, p);
    }
}

uint64_t sched_hold_next_due(const struct sched_core *c)
{
    return c->nholds ? key(c->holds[0]) : SCHED_TIMER_NEVER;
}

int sched_hold_check(const struct sched_core *c)
{
    for (uint32_t i = 0; i < c->nholds; i++) {
        if (c->holds[i]->hold_idx != i || (i > 0 && key(c->holds[(i - 1) / 2]) > key(c->holds[i]))) {
            log_error("sched_core_check: hold heap broken at %u", i);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- path suspensions ---- */

static bool streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static void path_hold_drop(struct sched_core *c, uint32_t i)
{
    free(c->path_holds[i].source);
    free(c->path_holds[i].site);
    c->path_holds[i] = c->path_holds[--c->npath_holds];
}

static void path_holds_prune(struct sched_core *c)
{
    for (uint32_t i = 0; i < c->npath_holds;)
        if (c->path_holds[i].until_ms <= c->now)
            path_hold_drop(c, i);
        else
            i++;
}

void sched_hold_path_set(struct sched_core *c, const char *source, const char *site, uint64_t until_ms)
{
    path_holds_prune(c);
    uint32_t i;
    for (i = 0; i < c->npath_holds; i++)
        if (streq(c->path_holds[i].source, source) && streq(c->path_holds[i].site, site))
            break;
    if (until_ms <= c->now) {
        if (i < c->npath_holds)
            path_hold_drop(c, i);
        return;
    }
    if (i == c->npath_holds) {
        c->path_holds = xrealloc(c->path_holds, (c->npath_holds + 1) * sizeof(*c->path_holds));
        c->path_holds[c->npath_holds++] = (struct sched_path_hold){ xstrdup(source), xstrdup(site), 0 };
    }
    c->path_holds[i].until_ms = until_ms;
}

uint64_t sched_hold_path_until(const struct sched_core *c, const char *source, const char *site)
{
    for (uint32_t i = 0; i < c->npath_holds; i++)
        if (c->path_holds[i].until_ms > c->now && streq(c->path_holds[i].source, source) &&
            streq(c->path_holds[i].site, site))
            return c->path_holds[i].until_ms;
    return 0;
}

size_t sched_hold_path_list(struct sched_core *c, const struct sched_path_hold **out)
{
    path_holds_prune(c);
    *out = c->path_holds;
    return c->npath_holds;
}

/* ---- queue suspensions ---- */

static void queue_hold_drop(struct sched_core *c, uint32_t i)
{
    free(c->queue_holds[i].domain);
    free(c->queue_holds[i].tenant);
    free(c->queue_holds[i].campaign);
    c->queue_holds[i] = c->queue_holds[--c->nqueue_holds];
}

static void queue_holds_prune(struct sched_core *c)
{
    for (uint32_t i = 0; i < c->nqueue_holds;)
        if (c->queue_holds[i].until_ms <= c->now)
            queue_hold_drop(c, i);
        else
            i++;
}

void sched_hold_queue_set(struct sched_core *c, const char *domain, const char *tenant, const char *campaign,
                          uint64_t until_ms)
{
    queue_holds_prune(c);
    uint32_t i;
    for (i = 0; i < c->nqueue_holds; i++) {
        const struct sched_queue_hold *h = &c->queue_holds[i];
        if (streq(h->domain, domain) && !h->tenant == !tenant && streq(h->tenant, tenant) && !h->campaign == !campaign &&
            (!campaign || streq(h->campaign, campaign)))
            break;
    }
    if (until_ms <= c->now) {
        if (i < c->nqueue_holds)
            queue_hold_drop(c, i);
        return;
    }
    if (i == c->nqueue_holds) {
        c->queue_holds = xrealloc(c->queue_holds, (c->nqueue_holds + 1) * sizeof(*c->queue_holds));
        c->queue_holds[c->nqueue_holds++] = (struct sched_queue_hold){
            xstrdup(domain), tenant ? xstrdup(tenant) : NULL, campaign ? xstrdup(campaign) : NULL, 0 };
    }
    c->queue_holds[i].until_ms = until_ms;
}

static bool part_eq(const char *s, const char *part, size_t len)
{
    return strlen(s) == len && memcmp(s, part, len) == 0;
}

uint64_t sched_hold_queue_until(const struct sched_core *c, const char *domain, const char *tenant, size_t tlen,
                                const char *campaign, size_t clen)
{
    uint64_t until = 0;
    for (uint32_t i = 0; i < c->nqueue_holds; i++) {
        const struct sched_queue_hold *h = &c->queue_holds[i];
        if (h->until_ms > c->now && h->until_ms > until && strcmp(h->domain, domain) == 0 &&
            (!h->tenant || part_eq(h->tenant, tenant, tlen)) && (!h->campaign || part_eq(h->campaign, campaign, clen)))
            until = h->until_ms;
    }
    return until;
}

size_t sched_hold_queue_list(struct sched_core *c, const struct sched_queue_hold **out)
{
    queue_holds_prune(c);
    *out = c->queue_holds;
    return c->nqueue_holds;
}

void sched_hold_free(struct sched_core *c)
{
    while (c->npath_holds)
        path_hold_drop(c, 0);
    while (c->nqueue_holds)
        queue_hold_drop(c, 0);
    free(c->path_holds);
    free(c->queue_holds);
    free(c->holds);
}
