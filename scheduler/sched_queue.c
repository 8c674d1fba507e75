/*
 * sched_queue - scheduled queues and their names (contract in sched_queue.h)
 *
 * Queues are found by name in one of the core's name tables (sched_name.c); one timing wheel
 * holds every SCHEDULED message, so a scheduled queue is the set of its messages in the wheel
 * plus its counters.
 */
#include "scheduler/sched_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_hold.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_site.h"

int sched_queue_name_routed(char *out, size_t size, const char *campaign, const char *tenant,
                            const char *domain, const char *routing_domain)
{
    if (!sched_name_given(domain))
        return -EINVAL;
    if (size == 0)
        return -ENAMETOOLONG;
    size_t pos = 0;
    bool ok = true;
    out[0] = '\0';
    if (sched_name_given(campaign))
        ok = sched_name_append(out, size, &pos, campaign, false) &&
             sched_name_append(out, size, &pos, ":", false);
    if (ok && sched_name_given(tenant))
        ok = sched_name_append(out, size, &pos, tenant, false);
    if (ok && (sched_name_given(campaign) || sched_name_given(tenant)))
        ok = sched_name_append(out, size, &pos, "@", false);
    ok = ok && sched_name_append(out, size, &pos, domain, true);
    if (ok && sched_name_given(routing_domain))
        ok = sched_name_append(out, size, &pos, "!", false) &&
             sched_name_append(out, size, &pos, routing_domain, true);
    return ok ? 0 : -ENAMETOOLONG;
}

int sched_queue_name(char *out, size_t size, const char *campaign, const char *tenant, const char *domain)
{
    return sched_queue_name_routed(out, size, campaign, tenant, domain, NULL);
}

void sched_queue_name_parts(const char *name, const char **campaign, size_t *clen, const char **tenant,
                            size_t *tlen)
{
    const char *bang = strchr(name, '!');
    size_t len = bang ? (size_t)(bang - name) : strlen(name);
    size_t at = len;
    while (at > 0 && name[at - 1] != '@')
        at--;
    *campaign = *tenant = name;
    *clen = *tlen = 0;
    if (at == 0)
        return; /* a bare domain */
    size_t pre = at - 1; /* the part before the '@' */
    const char *colon = memchr(name, ':', pre);
    if (colon) {
        *clen = (size_t)(colon - name);
        *tenant = colon + 1;
        *tlen = pre - *clen - 1;
    } else {
        *tlen = pre;
    }
}

static uint64_t queue_suspension(const struct sched_core *c, const struct sched_queue *q)
{
    if (c->nqueue_holds == 0)
        return 0;
    const char *camp, *ten;
    size_t clen, tlen;
    sched_queue_name_parts(q->n.name, &camp, &clen, &ten, &tlen);
    return sched_hold_queue_until(c, q->domain->n.name, ten, tlen, camp, clen);
}

/* queues whose suspension ended early or was shortened, and when it was to end */
struct lifted {
    struct {
        struct sched_queue *q;
        uint64_t old;
    } *v;
    size_t n;
    struct sched_msg **msgs;
    size_t n_msgs, cap_msgs;
};

static void collect_held(void *arg, const struct sched_msg *m)
{
    struct lifted *l = arg;
    if (m->state != SCHED_MSG_SCHEDULED)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].q == m->queue && m->timer.due_ms == l->v[i].old) {
            if (l->n_msgs == l->cap_msgs) {
                l->cap_msgs = l->cap_msgs ? l->cap_msgs * 2 : 64;
                l->msgs = xrealloc(l->msgs, l->cap_msgs * sizeof(*l->msgs));
            }
            l->msgs[l->n_msgs++] = (struct sched_msg *)m;
            return;
        }
}

/* release - messages re-armed at the old end of a suspension that ended earlier go at the new end (now,
 * for a cancelled one): an operator's suspend-cancel resumes at once. One walk over the messages. */
static void release(struct sched_core *c, struct lifted *l)
{
    sched_msg_foreach(c, collect_held, l); /* collect first: the walk must not change the core */
    for (size_t i = 0; i < l->n_msgs; i++) {
        struct sched_msg *m = l->msgs[i];
        uint64_t due = m->queue->suspended_until_ms > c->now ? m->queue->suspended_until_ms : c->now;
        sched_timer_cancel(&c->wheel, &m->timer);
        m->queue->scheduled--;
        sched_msg_schedule(c, m, due);
    }
    free(l->msgs);
    free(l->v);
}

int sched_queue_suspend(struct sched_core *c, const char *domain, const char *tenant, const char *campaign,
                        uint64_t until_ms)
{
    if (!sched_name_given(domain) || (tenant && !sched_name_given(tenant) && !sched_name_given(campaign)))
        return -EINVAL;
    char *dlc = sched_name_lower_dup(domain);
    sched_hold_queue_set(c, dlc, tenant, campaign, until_ms);
    free(dlc);
    struct lifted l = {0};
    for (size_t i = 0; i < c->queues.cap; i++) {
        struct sched_queue *q = (struct sched_queue *)c->queues.slots[i];
        if (!q)
            continue;
        uint64_t old = q->suspended_until_ms;
        q->suspended_until_ms = queue_suspension(c, q);
        if (old > c->now && q->suspended_until_ms < old) {
            l.v = xrealloc(l.v, (l.n + 1) * sizeof(*l.v));
            l.v[l.n].q = q;
            l.v[l.n++].old = old;
        }
    }
    if (l.n)
        release(c, &l);
    return 0;
}

size_t sched_queue_suspensions(struct sched_core *c, const struct sched_queue_hold **out)
{
    return sched_hold_queue_list(c, out);
}

struct sched_queue *sched_queue_get(struct sched_core *c, const char *name, const char *domain_lc)
{
    uint64_t h = sched_name_hash(name);
    struct sched_queue *q = (struct sched_queue *)sched_name_find(&c->queues, name, h);
    if (q)
        return strcmp(q->domain->n.name, domain_lc) == 0 ? q : NULL;
    q = xcalloc(1, sizeof(*q));
    q->n.name = xstrdup(name);
    q->n.hash = h;
    q->domain = sched_site_domain_get(c, domain_lc);
    q->domain->queues++;
    q->cfg = c->opt.queue_defaults;
    if (c->hooks.queue_config)
        c->hooks.queue_config(c->hooks.arg, name, domain_lc, &q->cfg);
    if (q->cfg.pool >= c->npools) {
        log_warn("queue %s: egress pool %u does not exist, using the unspecified pool", name, q->cfg.pool);
        q->cfg.pool = 0;
    }
    q->suspended_until_ms = queue_suspension(c, q);
    sched_name_add(&c->queues, &q->n);
    return q;
}

struct sched_queue *sched_queue_find(const struct sched_core *c, const char *name)
{
    return (struct sched_queue *)sched_name_find(&c->queues, name, sched_name_hash(name));
}

void sched_queue_put(struct sched_core *c, struct sched_queue *q)
{
    if (q->count > 0)
        return;
    sched_name_del(&c->queues, &q->n);
    sched_site_domain_put(c, q->domain);
    free(q->n.name);
    free(q);
}

void sched_queue_foreach(const struct sched_core *c, void (*cb)(void *arg, const struct sched_queue *q), void *arg)
{
    for (size_t i = 0; i < c->queues.cap; i++)
        if (c->queues.slots[i])
            cb(arg, (const struct sched_queue *)c->queues.slots[i]);
}
