/*
 * sched_msg - messages, their table by id, results, retry and backoff (contract in sched_msg.h)
 *
 * Messages are found by id in one open-addressing table (linear probing, at most 3/4 full,
 * deletion by backward shift so there are no tombstones, as the name tables in sched_name.c).
 */
#include "scheduler/sched_msg.h"

#include <errno.h>
#include <stdlib.h>

#include "base/mem.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_queue.h"

/* a million queued messages: every byte here is a megabyte (malloc rounds 88 to 96) */
_Static_assert(sizeof(struct sched_msg) <= 88, "struct sched_msg grew");

/* ---- message table ---- */

static uint64_t id_hash(struct msgid id)
{
    return sched_name_mix64(id.hi ^ sched_name_mix64(id.lo));
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
    SCHED_BACKSHIFT(c->msgs, c->msgs_cap, i, MSG_HOME);
    c->msgs_count--;
}

/* ---- backoff ---- */

uint64_t sched_msg_backoff_ms(const struct sched_queue_config *cfg, uint32_t attempts, uint64_t *rng)
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
    uint64_t d = base - base / 10 + (span ? sched_core_rng_next(rng) % (span + 1) : 0);
    return d > cap ? cap : d;
}

/* ---- message flow ---- */

void sched_msg_schedule(struct sched_core *c, struct sched_msg *m, uint64_t due_ms)
{
    m->state = SCHED_MSG_SCHEDULED;
    m->at.path = NULL;
    m->queue->scheduled++;
    sched_timer_add(&c->wheel, &m->timer, due_ms);
}

void sched_msg_retry(struct sched_core *c, struct sched_msg *m, uint64_t now_ms)
{
    if (m->attempts < UINT16_MAX)
        m->attempts++;
    c->st.transient++;
    uint64_t due = now_ms + sched_msg_backoff_ms(&m->queue->cfg, m->attempts, &c->rng);
    if (due > sched_msg_expiry_ms(m))
        due = sched_msg_expiry_ms(m);
    sched_msg_schedule(c, m, due);
}

void sched_msg_resume(struct sched_core *c, struct sched_msg *m, uint64_t last_attempt_ms, uint64_t now_ms)
{
    if (m->state != SCHED_MSG_SCHEDULED || m->attempts == 0 || last_attempt_ms == 0)
        return;
    /* a last attempt in the future (a clock stepped back since) counts from now */
    uint64_t from = last_attempt_ms < now_ms ? last_attempt_ms : now_ms;
    uint64_t due = from + sched_msg_backoff_ms(&m->queue->cfg, m->attempts, &c->rng);
    if (due > sched_msg_expiry_ms(m))
        due = sched_msg_expiry_ms(m);
    if (due <= now_ms)
        return;
    sched_timer_cancel(&c->wheel, &m->timer);
    sched_timer_add(&c->wheel, &m->timer, due);
}

void sched_msg_drop(struct sched_core *c, struct sched_msg *m)
{
    mtab_del(c, m);
    struct sched_queue *q = m->queue;
    q->count--;
    free(m);
    sched_queue_put(c, q);
}

int sched_msg_add(struct sched_core *c, struct msgid id, uint64_t created_ms, uint16_t attempts,
                  const char *queue_name, const char *domain, uint64_t due_ms, struct sched_msg **out)
{
    if (!sched_name_given(queue_name) || !sched_name_given(domain))
        return -EINVAL;
    if (sched_msg_find(c, id))
        return -EEXIST;
    char *dlc = sched_name_lower_dup(domain);
    struct sched_queue *q = sched_queue_get(c, queue_name, dlc);
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

int sched_msg_result(struct sched_core *c, struct sched_msg *m, enum sched_outcome outcome, uint64_t now_ms)
{
    if (m->state != SCHED_MSG_IN_FLIGHT)
        return -EINVAL;
    if (now_ms > c->now)
        c->now = now_ms;
    struct sched_lease *l = m->at.lease;
    struct sched_path *p = l->path;
    l->msg = NULL;
    l->uses++;
    p->in_flight--;
    switch (outcome) {
    case SCHED_OUTCOME_DELIVERED:
        p->consecutive_failures = 0; /* the receiver answered: the connection works */
        p->delivered++;
        c->st.delivered++;
        if (now_ms >= m->created_ms) {
            p->dlv_latency[proto_hist_bucket(PROTO_HIST_SLOW, (now_ms - m->created_ms) * 1000u)]++;
            p->dlv_latency_sum_ms += now_ms - m->created_ms;
        } else {
            p->dlv_latency[0]++; /* a clock step back: count it, as no time */
        }
        sched_msg_drop(c, m);
        break;
    case SCHED_OUTCOME_BOUNCED:
        p->consecutive_failures = 0;
        p->bounced++;
        c->st.bounced++;
        sched_msg_drop(c, m);
        break;
    default:
        p->transient++;
        sched_msg_retry(c, m, now_ms);
        break;
    }
    sched_lease_idle(c, l, now_ms);
    return 0;
}

void sched_msg_foreach(const struct sched_core *c, void (*cb)(void *arg, const struct sched_msg *m), void *arg)
{
    for (size_t i = 0; i < c->msgs_cap; i++)
        if (c->msgs[i])
            cb(arg, c->msgs[i]);
}
