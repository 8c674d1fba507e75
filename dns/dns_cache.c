/*
 * dns_cache - the resolver's answer cache: hash table, LRU and negative TTLs (RFC 2308)
 *
 * Entries are keyed by kind (MX or host) and normalised name. An entry being queried is hashed
 * so later lookups join it; a finished one stays hashed for its TTL, on an LRU of at most
 * cache_max entries. TEMPFAIL and BAD_NAME answers are never kept.
 * Ownership: the hash table holds one reference and the ready list (dns_ring.c) another; the
 * entry, its waiters and its answer are freed when the last goes.
 * Errors: none; allocation aborts.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "dns/dns_int.h"
#include "base/log.h"
#include "base/mem.h"

static uint32_t name_hash(enum dns_kind kind, const char *s)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void entry_free(struct dns_entry *e)
{
    struct dns_waiter *w, *wn;

    for (w = e->waiters; w; w = wn) {
        wn = w->next;
        free(w);
    }
    for (size_t i = 0; i < e->n_mx; i++)
        free((char *)e->mx[i].host);
    free(e->mx);
    for (int f = 0; f < 2; f++) {
        free(e->fam[f].reason);
        free(e->fam[f].addr);
    }
    free(e->addr);
    for (size_t i = 0; i < e->n_txt; i++)
        free(e->txt[i]);
    free(e->txt);
    free(e->txt_len);
    free(e->reason);
    free(e->name);
    free(e);
}

void dns_cache_entry_unref(struct dns_entry *e)
{
    ASSERT(e->refs > 0);
    if (--e->refs == 0)
        entry_free(e);
}

static void lru_unlink(struct dns_resolver *r, struct dns_entry *e)
{
    if (!e->in_lru)
        return;
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        r->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        r->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
    e->in_lru = false;
    r->lru_n--;
}

static void lru_push_head(struct dns_resolver *r, struct dns_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = r->lru_head;
    if (r->lru_head)
        r->lru_head->lru_prev = e;
    else
        r->lru_tail = e;
    r->lru_head = e;
    e->in_lru = true;
    r->lru_n++;
}

/* dns_cache_unhash - forget the entry as a cache answer; waiters already queued still get it */
void dns_cache_unhash(struct dns_resolver *r, struct dns_entry *e)
{
    struct dns_entry **pp;

    if (!e->hashed)
        return;
    lru_unlink(r, e);
    for (pp = &r->buckets[e->hash & (r->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            break;
        }
    }
    e->hnext = NULL;
    e->hashed = false;
    dns_cache_entry_unref(e);
}

/* dns_cache_entry_new - a fresh entry, in the hash table when `hashed` (invalid names never are) */
struct dns_entry *dns_cache_entry_new(struct dns_resolver *r, enum dns_kind kind, const char *name,
                                      bool hashed)
{
    struct dns_entry *e = xcalloc(1, sizeof(*e));
    size_t b;

    e->r = r;
    e->kind = kind;
    e->name = xstrndup(name, strnlen(name, DNS_NAME_MAX + 8)); /* xstrndup copies n bytes */
    e->waiters_tail = &e->waiters;
    e->fam[0] = (struct dns_fam){.e = e, .family = AF_INET};
    e->fam[1] = (struct dns_fam){.e = e, .family = AF_INET6};
    if (hashed) {
        e->hash = name_hash(kind, e->name);
        b = e->hash & (r->nbuckets - 1);
        e->hnext = r->buckets[b];
        r->buckets[b] = e;
        e->hashed = true;
        e->refs++;
    }
    return e;
}

struct dns_entry *dns_cache_entry_find(struct dns_resolver *r, enum dns_kind kind, const char *name)
{
    uint32_t h = name_hash(kind, name);

    for (struct dns_entry *e = r->buckets[h & (r->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->kind == kind && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

void dns_cache_touch(struct dns_resolver *r, struct dns_entry *e)
{
    if (e->in_lru) {
        lru_unlink(r, e);
        lru_push_head(r, e);
    }
}

/* dns_cache_clamp_neg - a negative TTL from pkt_scan (UINT32_MAX: no SOA) into the configured range */
uint32_t dns_cache_clamp_neg(const struct dns_resolver *r, uint32_t ttl)
{
    if (ttl == UINT32_MAX)
        ttl = r->neg_min;
    if (ttl < r->neg_min)
        ttl = r->neg_min;
    if (ttl > r->neg_max)
        ttl = r->neg_max;
    return ttl;
}

/* dns_cache_complete - the entry has its answer: account, cache or drop it, and queue its waiters */
void dns_cache_complete(struct dns_resolver *r, struct dns_entry *e, enum dns_status st, uint32_t ttl)
{
    e->done = true;
    e->status = st;
    if (!e->reason)
        e->reason = xstrdup("");
    if (st == DNS_TEMPFAIL || st == DNS_BAD_NAME)
        ttl = 0;
    if (ttl > DNS_TTL_MAX_S)
        ttl = DNS_TTL_MAX_S;
    e->expires_ns = clock_mono_ns() + CLOCK_SEC(ttl);
    if (st == DNS_TEMPFAIL)
        r->stats.failures++;
    else if (dns_status_permanent(st) && st != DNS_BAD_NAME)
        r->stats.negative++;
    dns_ring_ready_push(r, e); /* first: its reference keeps an uncached entry alive until delivered */
    if (e->hashed) {
        if (ttl == 0) {
            dns_cache_unhash(r, e);
        } else {
            lru_push_head(r, e);
            while (r->lru_n > r->cache_max) {
                r->stats.evictions++;
                dns_cache_unhash(r, r->lru_tail);
            }
        }
    }
}

void dns_cache_init(struct dns_resolver *r)
{
    size_t nb = 64;

    while (nb < r->cache_max && nb < ((size_t)1 << 20))
        nb <<= 1;
    r->nbuckets = nb;
    r->buckets = xcalloc(nb, sizeof(*r->buckets));
}

void dns_cache_fini(struct dns_resolver *r)
{
    struct dns_entry *e, *next;

    /* every entry is in the hash table, on the ready list, or both */
    for (size_t b = 0; b < r->nbuckets; b++) {
        for (e = r->buckets[b]; e; e = next) {
            next = e->hnext;
            if (!e->ready)
                entry_free(e);
        }
    }
    for (e = r->ready_head; e; e = next) {
        next = e->ready_next;
        entry_free(e);
    }
    free(r->buckets);
    r->buckets = NULL;
    r->ready_head = NULL;
}
