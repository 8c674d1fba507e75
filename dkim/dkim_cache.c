/*
 * dkim_cache - recent messages' signature fields by message id, LRU-bounded (see dkim_cache.h)
 */
#include "dkim/dkim_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct dkim_cache_entry {
    struct dkim_cache_entry *chain;      /* bucket */
    struct dkim_cache_entry *prev, *next; /* LRU list */
    uint64_t hi, lo;
    int64_t valid_until;
    size_t len;
    char *data;
};

void dkim_cache_init(struct dkim_cache *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->cap = cap ? cap : 1;
    c->n_buckets = 1;
    while (c->n_buckets < c->cap * 2)
        c->n_buckets <<= 1;
    c->buckets = xcalloc(c->n_buckets, sizeof(*c->buckets));
}

static size_t bucket(const struct dkim_cache *c, uint64_t hi, uint64_t lo)
{
    uint64_t h = (hi ^ (lo * UINT64_C(0x9e3779b97f4a7c15))) * UINT64_C(0xff51afd7ed558ccd);
    return (size_t)(h >> 32) & (c->n_buckets - 1);
}

static void unlink_lru(struct dkim_cache *c, struct dkim_cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(struct dkim_cache *c, struct dkim_cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void drop(struct dkim_cache *c, struct dkim_cache_entry *e)
{
    struct dkim_cache_entry **pp = &c->buckets[bucket(c, e->hi, e->lo)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    unlink_lru(c, e);
    free(e->data);
    free(e);
    c->n--;
}

static struct dkim_cache_entry *find(struct dkim_cache *c, uint64_t hi, uint64_t lo)
{
    for (struct dkim_cache_entry *e = c->buckets[bucket(c, hi, lo)]; e; e = e->chain)
        if (e->hi == hi && e->lo == lo)
            return e;
    return NULL;
}

void dkim_cache_clear(struct dkim_cache *c)
{
    while (c->head)
        drop(c, c->head);
}

void dkim_cache_fini(struct dkim_cache *c)
{
    if (!c->buckets)
        return;
    dkim_cache_clear(c);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

const char *dkim_cache_get(struct dkim_cache *c, uint64_t hi, uint64_t lo, int64_t now, size_t *len)
{
    struct dkim_cache_entry *e = find(c, hi, lo);

    if (e && e->valid_until && now >= e->valid_until) {
        drop(c, e);
        e = NULL;
    }
    if (!e) {
        c->misses++;
        return NULL;
    }
    c->hits++;
    unlink_lru(c, e);
    push_front(c, e);
    *len = e->len;
    return e->data;
}

void dkim_cache_put(struct dkim_cache *c, uint64_t hi, uint64_t lo, const char *p, size_t len, int64_t valid_until)
{
    struct dkim_cache_entry *e = find(c, hi, lo);

    if (e)
        drop(c, e);
    while (c->n >= c->cap)
        drop(c, c->tail);
    e = xcalloc(1, sizeof(*e));
    e->hi = hi;
    e->lo = lo;
    e->valid_until = valid_until;
    e->len = len;
    e->data = xmalloc(len ? len : 1);
    if (len)
        memcpy(e->data, p, len);
    size_t b = bucket(c, hi, lo);
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    push_front(c, e);
    c->n++;
}
