/*
 * sched_keys - keys of the scheduler core for (message, recipient domain) entries
 *
 * The first domain of a message (rcpt_first 0) uses the message id itself, so the common case
 * costs nothing. Any other domain gets {SCHED_KEYS_HI, slot}; the slot holds the real id and
 * rcpt_first, and a hash index finds the slot from (id, rcpt_first). Freed slots are reused.
 */
#include <stdlib.h>

#include "base/mem.h"
#include "scheduler/scheduler.h"

#define DELETED UINT32_MAX

static uint64_t hash(struct msgid id, uint32_t r)
{
    uint64_t h = (id.hi * 0x9e3779b97f4a7c15ull) ^ id.lo ^ ((uint64_t)r * 0xc2b2ae3d27d4eb4full);
    h ^= h >> 31;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 29);
}

static void index_insert(struct sched_keys *k, uint32_t slot)
{
    uint32_t mask = k->index_cap - 1;
    for (uint32_t i = (uint32_t)hash(k->v[slot].id, k->v[slot].rcpt_first) & mask;; i = (i + 1) & mask) {
        if (k->index[i] == 0 || k->index[i] == DELETED) {
            if (k->index[i] == 0)
                k->index_used++;
            k->index[i] = slot + 1;
            return;
        }
    }
}

static void index_grow(struct sched_keys *k)
{
    free(k->index);
    k->index_cap = k->index_cap ? k->index_cap * 2 : 64;
    while (k->index_cap < 4 * (k->n + 1))
        k->index_cap *= 2;
    k->index = xcalloc(k->index_cap, sizeof(*k->index));
    k->index_used = 0;
    for (uint32_t s = 0; s < k->n; s++)
        if (k->v[s].used)
            index_insert(k, s);
}

static int64_t index_find(const struct sched_keys *k, struct msgid id, uint32_t r, uint32_t *pos)
{
    if (!k->index_cap)
        return -1;
    uint32_t mask = k->index_cap - 1;
    for (uint32_t i = (uint32_t)hash(id, r) & mask;; i = (i + 1) & mask) {
        uint32_t e = k->index[i];
        if (e == 0)
            return -1;
        if (e != DELETED && k->v[e - 1].rcpt_first == r && msgid_eq(k->v[e - 1].id, id)) {
            if (pos)
                *pos = i;
            return e - 1;
        }
    }
}

bool sched_keys_key(struct sched_keys *k, struct msgid id, uint32_t rcpt_first, bool create, struct msgid *out)
{
    if (rcpt_first == 0) {
        *out = id;
        return true;
    }
    int64_t s = index_find(k, id, rcpt_first, NULL);
    if (s < 0) {
        if (!create)
            return false;
        uint32_t slot;
        if (k->free_head) {
            slot = k->free_head - 1;
            k->free_head = k->free_next[slot];
        } else {
            if (k->n == k->cap) {
                k->cap = k->cap ? k->cap * 2 : 64;
                k->v = xrealloc(k->v, k->cap * sizeof(*k->v));
                k->free_next = xrealloc(k->free_next, k->cap * sizeof(*k->free_next));
            }
            slot = k->n++;
        }
        k->v[slot] = (struct sched_xkey){id, rcpt_first, true};
        if ((k->index_used + 1) * 2 > k->index_cap)
            index_grow(k);
        else
            index_insert(k, slot);
        s = slot;
    }
    *out = (struct msgid){SCHED_KEYS_HI, (uint64_t)s};
    return true;
}

void sched_keys_real(const struct sched_keys *k, struct msgid key, struct msgid *id, uint32_t *rcpt_first)
{
    if (key.hi == SCHED_KEYS_HI && key.lo < k->n && k->v[key.lo].used) {
        *id = k->v[key.lo].id;
        *rcpt_first = k->v[key.lo].rcpt_first;
        return;
    }
    *id = key;
    *rcpt_first = 0;
}

void sched_keys_forget(struct sched_keys *k, struct msgid key)
{
    uint32_t pos;
    if (key.hi != SCHED_KEYS_HI || key.lo >= k->n || !k->v[key.lo].used)
        return;
    uint32_t slot = (uint32_t)key.lo;
    if (index_find(k, k->v[slot].id, k->v[slot].rcpt_first, &pos) >= 0)
        k->index[pos] = DELETED;
    k->v[slot].used = false;
    k->free_next[slot] = k->free_head;
    k->free_head = slot + 1;
}

void sched_keys_fini(struct sched_keys *k)
{
    free(k->v);
    free(k->free_next);
    free(k->index);
    *k = (struct sched_keys){0};
}
