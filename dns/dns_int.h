/*
 * dns_int - what the parts of the resolver share: dns.c, dns_cache.c, dns_ring.c
 *
 * Internal to dns/dns*.c; no other module includes it. The public interface is dns.h.
 * dns_cache_*() keep answers: the hash table, the LRU and the negative TTL clamp.
 * dns_ring_*() are the io_uring side: c-ares sockets, the ares_timeout() timer, and the
 * ready list whose NOP completion delivers answers outside c-ares and the caller's stack.
 * Ownership: an entry is referenced by the hash table and by the ready list, and freed when
 * neither holds it; entries still being queried are always in the hash table.
 */
#ifndef RINGMAIL_DNS_INT_H
#define RINGMAIL_DNS_INT_H

#include <ares.h>

#include "dns/dns.h"

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_SOA 6
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28
#define DNS_C_IN 1
#define DNS_TTL_FALLBACK_S 60

enum dns_kind {
    DNS_KIND_MX = 0,
    DNS_KIND_HOST = 1,
    DNS_KIND_TXT = 2,
};

struct dns_waiter {
    struct dns_waiter *next;
    dns_mx_cb mx_cb;
    dns_host_cb host_cb;
    dns_txt_cb txt_cb;
    void *arg;
};

/* one address family of a host lookup, filled by its own query */
struct dns_fam {
    struct dns_entry *e;
    int family;
    bool done;
    enum dns_status status;
    uint32_t ttl;
    char *reason;
    size_t n;
    struct sockaddr_storage *addr;
};

struct dns_entry {
    struct dns_resolver *r;
    struct dns_entry *hnext;
    struct dns_entry *lru_prev, *lru_next;
    struct dns_entry *ready_next;
    enum dns_kind kind;
    bool done, hashed, in_lru, ready;
    unsigned refs;
    uint32_t hash;
    uint64_t expires_ns;
    struct dns_waiter *waiters, **waiters_tail;
    char *name;
    char *reason;
    enum dns_status status;
    /* MX */
    bool implicit;
    uint32_t mx_neg_ttl; /* TTL of "no MX here" while the implicit A/AAAA lookup runs */
    size_t n_mx;
    struct dns_mx *mx;
    /* host */
    struct dns_fam fam[2];
    size_t n_addr;
    struct sockaddr_storage *addr;
    /* TXT */
    size_t n_txt;
    char **txt;
    size_t *txt_len;
};

struct dns_sock {
    struct evl_op op;
    struct dns_resolver *r;
    struct dns_sock *next;
    int fd;
    bool want_r, want_w;
    bool armed, cancel_sent, closed, in_cb;
    unsigned armed_mask;
};

struct dns_resolver {
    struct evl *l;
    ares_channel ch;
    bool closing;
    unsigned inflight; /* ring operations whose completion still points at us */
    unsigned cache_max, neg_min, neg_max;
    struct dns_entry **buckets;
    size_t nbuckets;
    struct dns_entry *lru_head, *lru_tail;
    size_t lru_n;
    struct dns_entry *ready_head, **ready_tail;
    struct evl_op kick_op;
    bool kick_pending;
    struct evl_timer timer;
    bool timer_cancel_sent;
    uint64_t timer_deadline;
    struct dns_sock *socks;
    struct dns_stats stats;
};

/* ---- dns_cache.c ---- */

/* dns_cache_init - the hash table, sized from r->cache_max; dns_cache_fini frees every entry with it */
void dns_cache_init(struct dns_resolver *r);
void dns_cache_fini(struct dns_resolver *r);
/* dns_cache_entry_new - a fresh entry, in the hash table when `hashed` (invalid names never are) */
struct dns_entry *dns_cache_entry_new(struct dns_resolver *r, enum dns_kind kind, const char *name,
                                      bool hashed);
/* dns_cache_entry_find - the hashed entry for a normalised name, done or still queried; NULL if none */
struct dns_entry *dns_cache_entry_find(struct dns_resolver *r, enum dns_kind kind, const char *name);
void dns_cache_entry_unref(struct dns_entry *e);
/* dns_cache_unhash - forget the entry as a cache answer; waiters already queued still get it */
void dns_cache_unhash(struct dns_resolver *r, struct dns_entry *e);
/* dns_cache_touch - a cache hit: the entry becomes the most recently used */
void dns_cache_touch(struct dns_resolver *r, struct dns_entry *e);
uint32_t dns_cache_clamp_neg(const struct dns_resolver *r, uint32_t ttl);
/* dns_cache_complete - the entry has its answer: account, cache or drop it, and queue its waiters */
void dns_cache_complete(struct dns_resolver *r, struct dns_entry *e, enum dns_status st, uint32_t ttl);

/* ---- dns_ring.c ---- */

/* dns_ring_init - ring ops of a new resolver, and the c-ares socket callback into `o` */
void dns_ring_init(struct dns_resolver *r, struct ares_options *o);
void dns_ring_ready_push(struct dns_resolver *r, struct dns_entry *e);
void dns_ring_timer_update(struct dns_resolver *r);
/* dns_ring_socks_close - drop every socket at close; armed polls are removed, not forgotten */
void dns_ring_socks_close(struct dns_resolver *r);
/* dns_ring_release - at close, after the cache is gone: free r now or when its last completion lands */
void dns_ring_release(struct dns_resolver *r);

#endif
