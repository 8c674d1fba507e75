/*
 * dns - MX and address lookups for the scheduler and egress (c-ares on the role's io_uring loop)
 *
 * dns_resolver_new() opens a c-ares channel whose sockets are watched with IORING_OP_POLL_ADD on
 * the caller's loop and whose timeouts run on an evl_timer; the loop must keep running for
 * lookups to complete. Servers come from dns_config.servers ("127.0.0.1:5353,[::1]:53") or, when
 * NULL, from /etc/resolv.conf. Returns NULL and sets *err (heap, caller frees) on failure.
 *
 * dns_resolve_mx() finds where mail for a domain goes (RFC 5321 section 5.1): the MX hosts by
 * preference, or the domain itself when it has no MX but has A/AAAA (`implicit`), or a status
 * that says why there is nowhere to go. dns_resolve_host() finds the A and AAAA addresses of a
 * host (both queried); dns_resolve_txt() the TXT records of a name. All return 0 and call the callback exactly once, ALWAYS asynchronously
 * (from a later evl_run_once), even for a cache hit or an invalid name, so a caller may start a
 * lookup while it iterates its own structures.
 *
 * Ownership: the result passed to a callback, and everything it points to, is borrowed for the
 * duration of the callback only; copy what you keep. A callback may start new lookups; it must
 * not call dns_resolver_free() (it panics). There is no per-lookup cancel: the owner of `arg` stays alive
 * until its callback ran (or the resolver is freed, which drops callbacks without calling them).
 *
 * Cache: positive answers are kept for their TTL (at most DNS_TTL_MAX_S), negative ones
 * (NXDOMAIN, NO_DATA, NULL_MX) for the SOA-derived negative TTL (RFC 2308) clamped to
 * [neg_ttl_min_s, neg_ttl_max_s]; TEMPFAIL and BAD_NAME are never cached. At most cache_max
 * answers are kept, least recently used evicted first. Lookups of a name that is already being
 * queried join that query. A no-MX lookup asks A/AAAA through the host cache, so the egress'
 * dns_resolve_host() on an implicit-MX domain is then a cache hit.
 *
 * Time budget: c-ares doubles its per-try timeout after each round over the servers, so a lookup
 * with no answering server gives up after about timeout_ms * (2^tries - 1) per server.
 */
#ifndef RINGMAIL_DNS_H
#define RINGMAIL_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rt/evl.h"

#define DNS_NAME_MAX 253     /* a name in text form, without the trailing dot (RFC 1035 2.3.4) */
#define DNS_TTL_MAX_S 86400u /* positive answers are not trusted for longer than this */
#define DNS_MX_MAX 32        /* lowest-preference MX hosts kept; the rest are never tried anyway */
#define DNS_ADDR_MAX 32      /* addresses kept per family */
#define DNS_TXT_MAX 16       /* TXT records kept per name */
#define DNS_TXT_LEN_MAX 4096 /* bytes kept of one TXT record */

enum dns_status {
    DNS_OK = 0,
    DNS_NXDOMAIN = 1, /* permanent: the domain does not exist */
    DNS_NULL_MX = 2,  /* permanent: RFC 7505 "MX 0 .", the domain accepts no mail; never connect */
    DNS_NO_DATA = 3,  /* permanent: the name exists but has no MX and no A/AAAA (or no A/AAAA) */
    DNS_BAD_NAME = 4, /* permanent: not a valid host name (syntax); no query was sent */
    DNS_TEMPFAIL = 5, /* transient: SERVFAIL, REFUSED, timeout, unreachable, malformed answer */
};

struct dns_config {
    const char *servers;    /* "ip[:port],..." (IPv6 as "[addr]:port"); NULL = /etc/resolv.conf */
    unsigned timeout_ms;    /* first try per server; 0 = 2000 */
    unsigned tries;         /* rounds over the servers; 0 = 2 */
    unsigned cache_max;     /* cached answers; 0 = 10000 */
    unsigned neg_ttl_min_s; /* negative-cache clamp; used as given (0 allowed) */
    unsigned neg_ttl_max_s; /* 0 = 3600 */
};

struct dns_mx {
    const char *host; /* lowercase, no trailing dot */
    unsigned pref;
};

struct dns_mx_result {
    enum dns_status status;
    const char *domain; /* the normalised name asked for (lowercase, no trailing dot) */
    const char *reason; /* one line for logs and DSNs; never NULL ("" when DNS_OK) */
    bool implicit;      /* no MX: mx[0] is the domain itself with preference 0 */
    uint32_t ttl;       /* seconds this answer stays valid from now (0 for non-cached ones) */
    size_t n_mx;        /* > 0 only when DNS_OK */
    const struct dns_mx *mx; /* by preference; equal preferences keep answer order */
};

/* TXT answer: each record's character-strings joined into one string (NUL-terminated, and with its
 * length, since a TXT string may hold a NUL); at most DNS_TXT_MAX records of DNS_TXT_LEN_MAX bytes */
struct dns_txt_result {
    enum dns_status status; /* DNS_NO_DATA / DNS_NXDOMAIN: no TXT record at the name */
    const char *name;
    const char *reason;
    uint32_t ttl;
    size_t n_txt; /* > 0 only when DNS_OK */
    const char *const *txt;
    const size_t *txt_len;
};

struct dns_host_result {
    enum dns_status status;
    const char *host;
    const char *reason;
    uint32_t ttl;
    size_t n_addr; /* > 0 only when DNS_OK; IPv4 first, then IPv6 */
    const struct sockaddr_storage *addr; /* port 0: the caller sets it */
};

/* counters for tests and metrics; each field only grows */
struct dns_stats {
    uint64_t queries;    /* DNS queries handed to c-ares (an A+AAAA lookup counts 2) */
    uint64_t cache_hits; /* lookups answered from the cache */
    uint64_t coalesced;  /* lookups that joined a query already in flight */
    uint64_t failures;   /* lookups that ended in DNS_TEMPFAIL (once per query, not per caller) */
    uint64_t negative;   /* lookups that ended in NXDOMAIN, NO_DATA or NULL_MX (idem) */
    uint64_t evictions;  /* cached answers dropped to stay under cache_max */
};

struct dns_resolver;

typedef void (*dns_mx_cb)(void *arg, const struct dns_mx_result *res);
typedef void (*dns_host_cb)(void *arg, const struct dns_host_result *res);
typedef void (*dns_txt_cb)(void *arg, const struct dns_txt_result *res);

struct dns_resolver *dns_resolver_new(struct evl *l, const struct dns_config *c, char **err);
/*
 * dns_resolver_free - drop every pending lookup without calling its callback, cancel the ring
 * operations; the memory goes when their completions arrive, so run the loop a little longer
 * (a few non-blocking evl_run_once calls) before evl_fini(). NULL is a no-op.
 */
void dns_resolver_free(struct dns_resolver *r);

/* dns_resolve_mx - 0, or -EINVAL for a NULL argument; the outcome comes through cb */
int dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb cb, void *arg);
/* dns_resolve_host - 0, or -EINVAL for a NULL argument; the outcome comes through cb */
int dns_resolve_host(struct dns_resolver *r, const char *host, dns_host_cb cb, void *arg);

/* dns_resolve_txt - the TXT records of a name (cached like the others); 0 or -EINVAL; outcome through cb */
int dns_resolve_txt(struct dns_resolver *r, const char *name, dns_txt_cb cb, void *arg);

/*
 * dns_site_name - the MX rollup name: the lowercase, dot-stripped, deduplicated MX host names
 * sorted and joined with ',' ("mx1.a.test,mx2.a.test"), so domains served by the same MX set
 * share one site; for an implicit MX the domain itself. Heap string, the caller frees it;
 * NULL when the result is not DNS_OK.
 */
char *dns_site_name(const struct dns_mx_result *res);

/* dns_status_permanent - true for statuses that no retry will change */
bool dns_status_permanent(enum dns_status s);
const char *dns_status_name(enum dns_status s);
/* dns_name_valid - host name syntax: 1..253 chars, labels 1..63 of [A-Za-z0-9_-], one trailing dot allowed */
bool dns_name_valid(const char *name);

const struct dns_stats *dns_resolver_stats(const struct dns_resolver *r);

#endif
