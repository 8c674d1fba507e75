/*
 * sched_timer - hierarchical timing wheel with intrusive nodes (millisecond resolution)
 *
 * Four levels of 256 slots cover 2^32 ms (about 49.7 days) ahead of the wheel's cursor;
 * timers further out wait in an overflow list that is re-placed once per 2^32 ms crossing.
 * A node is embedded in its owner (container_of style) and never allocated by the wheel.
 *
 * sched_timer_add() and sched_timer_cancel() are O(1). sched_timer_advance() fires every node
 * whose due time is <= now_ms, in non-decreasing due order (nodes due in the same millisecond
 * fire in no particular order); each node is moved between levels at most three times, and
 * empty slots are skipped through per-level bitmaps, so a long idle jump costs O(levels).
 * A node added with a due time the wheel has already passed fires at the next advance, before
 * everything else (it is late, so it cannot keep the order).
 * sched_timer_next_due() is a lower bound of the earliest due time, never later than it: it
 * may name the moment a far slot must be cascaded, in which case advancing to it fires
 * nothing and the caller asks again. That is what the caller arms its one io_uring timeout on.
 * Callbacks may add and cancel any node (including the one being fired) during an advance.
 * Not thread-safe: the wheel belongs to one loop.
 */
#ifndef RINGMAIL_SCHED_TIMER_H
#define RINGMAIL_SCHED_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_TIMER_LEVELS 4
#define SCHED_TIMER_SLOTS 256
#define SCHED_TIMER_NEVER UINT64_MAX

struct sched_timer_node {
    struct sched_timer_node *next, *prev; /* NULL when not armed */
    uint64_t due_ms;
};

struct sched_timer_list {
    struct sched_timer_node head; /* circular sentinel */
};

struct sched_timer_wheel {
    uint64_t now;   /* every node due before `now` has fired */
    size_t count;   /* armed nodes */
    uint64_t bits[SCHED_TIMER_LEVELS][SCHED_TIMER_SLOTS / 64]; /* set = slot may be non-empty */
    struct sched_timer_list slot[SCHED_TIMER_LEVELS][SCHED_TIMER_SLOTS];
    struct sched_timer_list overflow; /* due 2^32 ms or more ahead of the cursor's block */
    struct sched_timer_list late;     /* added with a due time already passed */
};

typedef void sched_timer_cb(struct sched_timer_node *node, void *arg);

/* sched_timer_init - an empty wheel whose cursor starts at now_ms */
void sched_timer_init(struct sched_timer_wheel *w, uint64_t now_ms);
/* sched_timer_fini - disarms every node still armed (owners keep their memory) */
void sched_timer_fini(struct sched_timer_wheel *w);

static inline void sched_timer_node_init(struct sched_timer_node *n)
{
    n->next = n->prev = NULL;
    n->due_ms = 0;
}

static inline bool sched_timer_armed(const struct sched_timer_node *n)
{
    return n->next != NULL;
}

/* sched_timer_add - arm n at due_ms; an armed node is re-armed (moved) */
void sched_timer_add(struct sched_timer_wheel *w, struct sched_timer_node *n, uint64_t due_ms);
/* sched_timer_cancel - disarm n; a node that is not armed is left alone */
void sched_timer_cancel(struct sched_timer_wheel *w, struct sched_timer_node *n);
/* sched_timer_advance - fire every node due <= now_ms (disarmed before its callback); returns how many */
size_t sched_timer_advance(struct sched_timer_wheel *w, uint64_t now_ms, sched_timer_cb *cb, void *arg);
/* sched_timer_next_due - lower bound of the earliest due time; SCHED_TIMER_NEVER when empty */
uint64_t sched_timer_next_due(const struct sched_timer_wheel *w);

#endif
