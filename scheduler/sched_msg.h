/*
 * sched_msg - the core's messages: the table by id, adding, removing, results, retry with backoff
 *
 * A message is in exactly one place (sched_core.h): the wheel (SCHEDULED), its domain's waiting
 * list (RESOLVING), its path's ready queue (READY) or a lease (IN_FLIGHT); the lists are
 * struct sched_mlist FIFOs linked through the message itself (the inline helpers below).
 */
#ifndef RINGMAIL_SCHED_MSG_H
#define RINGMAIL_SCHED_MSG_H

#include "scheduler/sched_core.h"

/* sched_msg_backoff_ms - retry delay before attempt `attempts` + 1 (attempts >= 1), jittered from *rng */
uint64_t sched_msg_backoff_ms(const struct sched_queue_config *cfg, uint32_t attempts, uint64_t *rng);

/*
 * sched_msg_add - queue a message, due at due_ms (the past = at the next advance); `domain`
 * routes the queue when this call creates it, and must match the queue's domain otherwise.
 * 0 (*out set when out is not NULL), -EEXIST for a known id, -EINVAL for an empty queue name
 * or domain or a domain that differs from the existing queue's.
 */
int sched_msg_add(struct sched_core *core, struct msgid id, uint64_t created_ms, uint16_t attempts,
                  const char *queue_name, const char *domain, uint64_t due_ms, struct sched_msg **out);
struct sched_msg *sched_msg_find(const struct sched_core *core, struct msgid id);
/* sched_msg_remove - administrative removal; -ENOENT, -EBUSY while in flight (wait for its result) */
int sched_msg_remove(struct sched_core *core, struct msgid id);
/*
 * sched_msg_result - the outcome of an in-flight message; -EINVAL when it is not in flight.
 * Callers check that the result comes from the lease holding the message (sched_msg_lease()).
 */
int sched_msg_result(struct sched_core *core, struct sched_msg *msg, enum sched_outcome outcome, uint64_t now_ms);
static inline struct sched_lease *sched_msg_lease(const struct sched_msg *msg)
{
    return msg->state == SCHED_MSG_IN_FLIGHT ? msg->at.lease : NULL;
}

/* sched_msg_resume - a message just added (SCHEDULED) whose last attempt, before a restart, was at
 * last_attempt_ms: due after the backoff of its attempts from then (never before now, never past
 * expiry), as if the scheduler had not restarted; nothing when it has no attempt or no time */
void sched_msg_resume(struct sched_core *core, struct sched_msg *msg, uint64_t last_attempt_ms, uint64_t now_ms);

/* sched_msg_foreach - every message (administrative walks); cb must not change the core */
void sched_msg_foreach(const struct sched_core *core, void (*cb)(void *arg, const struct sched_msg *m), void *arg);

/* ---- between the core's files only ---- */

void sched_msg_schedule(struct sched_core *core, struct sched_msg *msg, uint64_t due_ms);
/* sched_msg_retry - one more attempt failed: schedule after backoff, never past expiry */
void sched_msg_retry(struct sched_core *core, struct sched_msg *msg, uint64_t now_ms);
/* sched_msg_drop - forget a message that reached a final state */
void sched_msg_drop(struct sched_core *core, struct sched_msg *msg);

static inline uint64_t sched_msg_expiry_ms(const struct sched_msg *m)
{
    return m->created_ms + (uint64_t)m->queue->cfg.max_age_s * 1000u;
}

static inline void sched_mlist_push(struct sched_mlist *l, struct sched_msg *m)
{
    m->link.next = NULL;
    m->link.prev = l->tail;
    if (l->tail)
        l->tail->link.next = m;
    else
        l->head = m;
    l->tail = m;
    l->count++;
}

static inline void sched_mlist_unlink(struct sched_mlist *l, struct sched_msg *m)
{
    if (m->link.prev)
        m->link.prev->link.next = m->link.next;
    else
        l->head = m->link.next;
    if (m->link.next)
        m->link.next->link.prev = m->link.prev;
    else
        l->tail = m->link.prev;
    m->link.next = m->link.prev = NULL;
    l->count--;
}

static inline struct sched_msg *sched_mlist_pop(struct sched_mlist *l)
{
    struct sched_msg *m = l->head;
    if (m)
        sched_mlist_unlink(l, m);
    return m;
}

#endif
