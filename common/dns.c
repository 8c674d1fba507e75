/*
 * dns - MX and address lookups on the role's io_uring loop (c-ares 1.18), with a cache
 *
 * c-ares tells us its sockets through the sock-state callback; each gets a one-shot
 * IORING_OP_POLL_ADD whose completion feeds ares_process_fd(), and one evl_timer follows
 * ares_timeout(). Answers land in cache entries; callbacks are never called from inside c-ares
 * or from the caller's stack: finished entries go on a ready list that a NOP completion drains.
 * Ownership: an entry is referenced by the hash table and by the ready list, and freed when
 * neither holds it; entries still being queried are always in the hash table. The resolver
 * counts its in-flight ring operations and is released only when none remain.
 * Errors: nothing in a DNS answer panics; it becomes a status with a reason.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "mem.h"

#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_SOA 6
#define DNS_T_MX 15
#define DNS_T_AAAA 28
#define DNS_C_IN 1
#define DNS_TTL_FALLBACK_S 60

enum dns_kind {
    DNS_KIND_MX = 0,
    DNS_KIND_HOST = 1,
};

struct dns_waiter {
    struct dns_waiter *next;
    dns_mx_cb mx_cb;
    dns_host_cb host_cb;
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

static void timer_update(struct dns_resolver *r);

/* ---- names ---- */

/* name_norm - validate and lowercase into out (DNS_NAME_MAX + 1 bytes); one trailing dot dropped */
static bool name_norm(const char *in, char *out)
{
    size_t len = strnlen(in, DNS_NAME_MAX + 2), label = 0;

    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len == 0 || len > DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            label++;
        } else if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
            label++;
        } else {
            return false;
        }
        if (label > 63)
            return false;
        out[i] = c;
    }
    out[len] = '\0';
    return label > 0;
}

bool dns_name_valid(const char *name)
{
    char tmp[DNS_NAME_MAX + 1];

    return name && name_norm(name, tmp);
}

bool dns_status_permanent(enum dns_status s)
{
    return s == DNS_NXDOMAIN || s == DNS_NULL_MX || s == DNS_NO_DATA || s == DNS_BAD_NAME;
}

const char *dns_status_name(enum dns_status s)
{
    static const char *const names[] = {"ok", "nxdomain", "null-mx", "no-data", "bad-name", "tempfail"};

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *dns_site_name(const struct dns_mx_result *res)
{
    char **names, *out, *p;
    size_t n = 0, total = 1;

    if (!res || res->status != DNS_OK || res->n_mx == 0)
        return NULL;
    if (res->implicit)
        return xstrdup(res->domain);
    names = xcalloc(res->n_mx, sizeof(*names));
    for (size_t i = 0; i < res->n_mx; i++) {
        char tmp[DNS_NAME_MAX + 1];
        /* results from this module are already normal; a hand-built one may not be */
        if (!res->mx[i].host || !name_norm(res->mx[i].host, tmp))
            continue;
        names[n++] = xstrdup(tmp);
    }
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++)
        total += strlen(names[i]) + 1;
    out = p = xmalloc(total);
    *p = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        if (p != out)
            *p++ = ',';
        size_t len = strlen(names[i]);
        memcpy(p, names[i], len + 1);
        p += len;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (*out == '\0') {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- packet scan: TTLs that the c-ares parsers do not give us ---- */

/* skip_name - past an encoded name at *pos; false when it runs off the packet */
static bool skip_name(const unsigned char *buf, size_t len, size_t *pos)
{
    size_t p = *pos;

    while (p < len) {
        unsigned c = buf[p];
        if (c == 0) {
            *pos = p + 1;
            return true;
        }
        if ((c & 0xc0) == 0xc0) {
            if (p + 2 > len)
                return false;
            *pos = p + 2;
            return true;
        }
        if (c & 0xc0)
            return false;
        p += 1 + c;
    }
    return false;
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

    /* RFC 2181 8: a TTL with the top bit set is zero */
    return (v & 0x80000000u) ? 0 : v;
}

/*
 * pkt_scan - the smallest TTL among answer records of `type` (*ans_ttl, UINT32_MAX when none) and
 * the negative TTL of an authority SOA, min(SOA TTL, SOA minimum) per RFC 2308 (*neg_ttl,
 * UINT32_MAX when none). Stops quietly at the first malformed byte.
 */
static void pkt_scan(const unsigned char *buf, int ilen, int type, uint32_t *ans_ttl, uint32_t *neg_ttl)
{
    size_t len = ilen > 0 ? (size_t)ilen : 0, pos = 12;
    unsigned qd, an, ns;

    *ans_ttl = *neg_ttl = UINT32_MAX;
    if (!buf || len < 12)
        return;
    qd = (unsigned)buf[4] << 8 | buf[5];
    an = (unsigned)buf[6] << 8 | buf[7];
    ns = (unsigned)buf[8] << 8 | buf[9];
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(buf, len, &pos) || pos + 4 > len)
            return;
        pos += 4;
    }
    for (unsigned i = 0; i < an + ns; i++) {
        unsigned rtype, rdlen;
        uint32_t ttl;
        if (!skip_name(buf, len, &pos) || pos + 10 > len)
            return;
        rtype = (unsigned)buf[pos] << 8 | buf[pos + 1];
        ttl = get32(buf + pos + 4);
        rdlen = (unsigned)buf[pos + 8] << 8 | buf[pos + 9];
        pos += 10;
        if (pos + rdlen > len)
            return;
        if (i < an && (int)rtype == type && ttl < *ans_ttl)
            *ans_ttl = ttl;
        if (i >= an && rtype == DNS_T_SOA) {
            size_t q = pos;
            if (skip_name(buf, pos + rdlen, &q) && skip_name(buf, pos + rdlen, &q) && q + 20 <= pos + rdlen) {
                uint32_t min = get32(buf + q + 16);
                uint32_t neg = ttl < min ? ttl : min;
                if (neg < *neg_ttl)
                    *neg_ttl = neg;
            }
        }
        pos += rdlen;
    }
}

/* ---- entries, hash, LRU, ready list ---- */

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
    free(e->reason);
    free(e->name);
    free(e);
}

static void entry_unref(struct dns_entry *e)
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

/* unhash - forget the entry as a cache answer; waiters already queued still get it */
static void unhash(struct dns_resolver *r, struct dns_entry *e)
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
    entry_unref(e);
}

/* entry_new - a fresh entry, in the hash table when `hashed` (invalid names never are) */
static struct dns_entry *entry_new(struct dns_resolver *r, enum dns_kind kind, const char *name, bool hashed)
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

static struct dns_entry *entry_find(struct dns_resolver *r, enum dns_kind kind, const char *name)
{
    uint32_t h = name_hash(kind, name);

    for (struct dns_entry *e = r->buckets[h & (r->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->kind == kind && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static void on_kick(struct evl *l, struct evl_op *op, int res, unsigned flags);

/* ready_push - queue the entry's waiters for the next drain, which a NOP completion starts */
static void ready_push(struct dns_resolver *r, struct dns_entry *e)
{
    if (!e->ready) {
        e->ready = true;
        e->refs++;
        e->ready_next = NULL;
        *r->ready_tail = e;
        r->ready_tail = &e->ready_next;
    }
    if (!r->kick_pending && !r->closing) {
        io_uring_prep_nop(evl_sqe(r->l, &r->kick_op));
        r->kick_pending = true;
        r->inflight++;
    }
}

static void add_waiter(struct dns_entry *e, dns_mx_cb mcb, dns_host_cb hcb, void *arg)
{
    struct dns_waiter *w = xcalloc(1, sizeof(*w));

    w->mx_cb = mcb;
    w->host_cb = hcb;
    w->arg = arg;
    *e->waiters_tail = w;
    e->waiters_tail = &w->next;
}

/* clamp_neg - negative TTL from pkt_scan (UINT32_MAX: the answer had no SOA) into the configured range */
static uint32_t clamp_neg(const struct dns_resolver *r, uint32_t ttl)
{
    if (ttl == UINT32_MAX)
        ttl = r->neg_min;
    if (ttl < r->neg_min)
        ttl = r->neg_min;
    if (ttl > r->neg_max)
        ttl = r->neg_max;
    return ttl;
}

/* complete - the entry has its answer: account, cache or drop it, and queue its waiters */
static void complete(struct dns_resolver *r, struct dns_entry *e, enum dns_status st, uint32_t ttl)
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
    ready_push(r, e); /* first: its reference keeps an uncached entry alive until delivered */
    if (e->hashed) {
        if (ttl == 0) {
            unhash(r, e);
        } else {
            lru_push_head(r, e);
            while (r->lru_n > r->cache_max) {
                r->stats.evictions++;
                unhash(r, r->lru_tail);
            }
        }
    }
}

static char *ares_reason(const char *what, const char *name, int status)
{
    return xasprintf("%s lookup for %s failed: %s", what, name, ares_strerror(status));
}

/* ---- host lookups (A + AAAA) ---- */

static void host_finish(struct dns_resolver *r, struct dns_entry *e)
{
    struct dns_fam *f4 = &e->fam[0], *f6 = &e->fam[1];
    uint32_t ttl = UINT32_MAX;
    size_t n = f4->n + f6->n;

    if (n > 0) {
        e->addr = xcalloc(n, sizeof(*e->addr));
        if (f4->n)
            memcpy(e->addr, f4->addr, f4->n * sizeof(*e->addr));
        if (f6->n)
            memcpy(e->addr + f4->n, f6->addr, f6->n * sizeof(*e->addr));
        e->n_addr = n;
        for (int i = 0; i < 2; i++) {
            if (e->fam[i].status == DNS_OK && e->fam[i].ttl < ttl)
                ttl = e->fam[i].ttl;
            /* half an answer: keep it only briefly so the failed family is asked again soon */
            if (e->fam[i].status == DNS_TEMPFAIL && ttl > r->neg_min)
                ttl = r->neg_min;
        }
        complete(r, e, DNS_OK, ttl);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (e->fam[i].status == DNS_TEMPFAIL) {
            e->reason = xstrdup(e->fam[i].reason);
            complete(r, e, DNS_TEMPFAIL, 0);
            return;
        }
    }
    ttl = f4->ttl < f6->ttl ? f4->ttl : f6->ttl;
    if (f4->status == DNS_NXDOMAIN || f6->status == DNS_NXDOMAIN) {
        e->reason = xasprintf("host %s does not exist (NXDOMAIN)", e->name);
        complete(r, e, DNS_NXDOMAIN, ttl);
    } else {
        e->reason = xasprintf("host %s has no A or AAAA record", e->name);
        complete(r, e, DNS_NO_DATA, ttl);
    }
}

/* fam_take - the parsed addresses of one family into f; ttl is the smallest of theirs */
static int fam_take(struct dns_fam *f, const unsigned char *abuf, int alen)
{
    struct ares_addrttl a4[DNS_ADDR_MAX];
    struct ares_addr6ttl a6[DNS_ADDR_MAX];
    int rc, n = DNS_ADDR_MAX;

    if (f->family == AF_INET)
        rc = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
    else
        rc = ares_parse_aaaa_reply(abuf, alen, NULL, a6, &n);
    if (rc != ARES_SUCCESS || n <= 0)
        return rc == ARES_SUCCESS ? ARES_ENODATA : rc;
    f->addr = xcalloc((size_t)n, sizeof(*f->addr));
    f->n = (size_t)n;
    f->ttl = UINT32_MAX;
    for (int i = 0; i < n; i++) {
        int ttl = f->family == AF_INET ? a4[i].ttl : a6[i].ttl;
        if (f->family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&f->addr[i];
            sin->sin_family = AF_INET;
            sin->sin_addr = a4[i].ipaddr;
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&f->addr[i];
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, &a6[i].ip6addr, sizeof(sin6->sin6_addr));
        }
        if ((uint32_t)(ttl < 0 ? 0 : ttl) < f->ttl)
            f->ttl = (uint32_t)(ttl < 0 ? 0 : ttl);
    }
    return ARES_SUCCESS;
}

static void on_addr_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_fam *f = arg;
    struct dns_entry *e = f->e;
    struct dns_resolver *r = e->r;
    const char *what = f->family == AF_INET ? "A" : "AAAA";
    uint32_t ans_ttl, neg_ttl;
    int rc;

    if (r->closing || f->done)
        return;
    f->done = true;
    pkt_scan(abuf, alen, f->family == AF_INET ? DNS_T_A : DNS_T_AAAA, &ans_ttl, &neg_ttl);
    f->status = DNS_TEMPFAIL;
    /* a success without addresses (only CNAMEs): the name exists without this family */
    rc = status == ARES_SUCCESS ? fam_take(f, abuf, alen) : status;
    if (rc == ARES_SUCCESS)
        f->status = DNS_OK;
    else if (rc == ARES_ENODATA || rc == ARES_ENOTFOUND)
        f->status = rc == ARES_ENODATA ? DNS_NO_DATA : DNS_NXDOMAIN;
    else if (status == ARES_SUCCESS)
        f->reason = xasprintf("%s lookup for %s: malformed answer (%s)", what, e->name, ares_strerror(rc));
    else
        f->reason = ares_reason(what, e->name, status);
    if (f->status == DNS_NO_DATA || f->status == DNS_NXDOMAIN)
        f->ttl = clamp_neg(r, neg_ttl);
    if (e->fam[0].done && e->fam[1].done)
        host_finish(r, e);
}

static void host_start(struct dns_resolver *r, struct dns_entry *e)
{
    r->stats.queries += 2;
    ares_query(r->ch, e->name, DNS_C_IN, DNS_T_A, on_addr_answer, &e->fam[0]);
    if (!r->closing)
        ares_query(r->ch, e->name, DNS_C_IN, DNS_T_AAAA, on_addr_answer, &e->fam[1]);
    timer_update(r);
}

/* ---- MX lookups ---- */

static void on_implicit_host(void *arg, const struct dns_host_result *h)
{
    struct dns_entry *e = arg;
    struct dns_resolver *r = e->r;
    uint32_t ttl = h->ttl < e->mx_neg_ttl ? h->ttl : e->mx_neg_ttl;

    switch (h->status) {
    case DNS_OK:
        e->mx = xcalloc(1, sizeof(*e->mx));
        e->mx[0].host = xstrdup(e->name);
        e->mx[0].pref = 0;
        e->n_mx = 1;
        e->implicit = true;
        complete(r, e, DNS_OK, ttl);
        return;
    case DNS_NO_DATA:
        e->reason = xasprintf("domain %s has no MX and no A or AAAA record", e->name);
        complete(r, e, DNS_NO_DATA, clamp_neg(r, ttl));
        return;
    case DNS_NXDOMAIN:
        e->reason = xasprintf("domain %s does not exist (NXDOMAIN)", e->name);
        complete(r, e, DNS_NXDOMAIN, clamp_neg(r, ttl));
        return;
    default:
        e->reason = xstrdup(h->reason);
        complete(r, e, DNS_TEMPFAIL, 0);
        return;
    }
}

static void lookup(struct dns_resolver *r, enum dns_kind kind, const char *name, dns_mx_cb mcb,
                   dns_host_cb hcb, void *arg);

struct mx_tmp {
    const char *host;
    unsigned pref;
    size_t idx;
};

static int cmp_mx(const void *a, const void *b)
{
    const struct mx_tmp *x = a, *y = b;

    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* mx_build - the usable MX set from a parsed reply; returns the status */
static enum dns_status mx_build(struct dns_entry *e, struct ares_mx_reply *list)
{
    struct mx_tmp *t;
    size_t total = 0, n = 0, roots = 0;
    char tmp[DNS_NAME_MAX + 1];

    for (struct ares_mx_reply *m = list; m; m = m->next)
        total++;
    t = xcalloc(total, sizeof(*t));
    for (struct ares_mx_reply *m = list; m; m = m->next) {
        if (!m->host || m->host[0] == '\0' || strcmp(m->host, ".") == 0) {
            roots++;
            continue;
        }
        if (!name_norm(m->host, tmp))
            continue;
        t[n].host = xstrdup(tmp);
        t[n].pref = m->priority;
        t[n].idx = n;
        n++;
    }
    if (roots > 0 && n == 0 && total == roots) {
        /* RFC 7505: "0 ." alone says the domain takes no mail; another preference changes nothing */
        free(t);
        e->reason = xasprintf("domain %s accepts no mail (null MX, RFC 7505)", e->name);
        return DNS_NULL_MX;
    }
    if (n == 0) {
        free(t);
        e->reason = xasprintf("MX lookup for %s: no MX host is a valid host name", e->name);
        return DNS_TEMPFAIL;
    }
    qsort(t, n, sizeof(*t), cmp_mx);
    e->mx = xcalloc(n < DNS_MX_MAX ? n : DNS_MX_MAX, sizeof(*e->mx));
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < e->n_mx && !dup; j++)
            dup = strcmp(e->mx[j].host, t[i].host) == 0;
        if (dup || e->n_mx == DNS_MX_MAX) {
            free((char *)t[i].host);
            continue;
        }
        e->mx[e->n_mx].host = t[i].host;
        e->mx[e->n_mx].pref = t[i].pref;
        e->n_mx++;
    }
    free(t);
    return DNS_OK;
}

static void mx_no_mx(struct dns_resolver *r, struct dns_entry *e, uint32_t neg_ttl)
{
    /* RFC 5321 5.1: no MX, so the domain itself is the host if it has an address */
    e->mx_neg_ttl = clamp_neg(r, neg_ttl);
    lookup(r, DNS_KIND_HOST, e->name, NULL, on_implicit_host, e);
}

static void on_mx_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_entry *e = arg;
    struct dns_resolver *r = e->r;
    struct ares_mx_reply *list = NULL;
    uint32_t ans_ttl, neg_ttl;
    enum dns_status st;
    int rc;

    if (r->closing)
        return;
    pkt_scan(abuf, alen, DNS_T_MX, &ans_ttl, &neg_ttl);
    switch (status) {
    case ARES_SUCCESS:
        rc = ares_parse_mx_reply(abuf, alen, &list);
        /* answers without MX (a CNAME whose target has none) parse as success with no list */
        if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && !list)) {
            mx_no_mx(r, e, neg_ttl);
            return;
        }
        if (rc != ARES_SUCCESS) {
            e->reason = xasprintf("MX lookup for %s: malformed answer (%s)", e->name, ares_strerror(rc));
            complete(r, e, DNS_TEMPFAIL, 0);
            return;
        }
        st = mx_build(e, list);
        ares_free_data(list);
        if (st == DNS_NULL_MX)
            ans_ttl = clamp_neg(r, ans_ttl);
        else if (ans_ttl == UINT32_MAX)
            ans_ttl = DNS_TTL_FALLBACK_S; /* c-ares parsed what our scan could not: stay brief */
        complete(r, e, st, ans_ttl);
        return;
    case ARES_ENODATA:
        mx_no_mx(r, e, neg_ttl);
        return;
    case ARES_ENOTFOUND:
        e->reason = xasprintf("domain %s does not exist (NXDOMAIN)", e->name);
        complete(r, e, DNS_NXDOMAIN, clamp_neg(r, neg_ttl));
        return;
    default:
        e->reason = ares_reason("MX", e->name, status);
        complete(r, e, DNS_TEMPFAIL, 0);
        return;
    }
}

static void mx_start(struct dns_resolver *r, struct dns_entry *e)
{
    r->stats.queries++;
    ares_query(r->ch, e->name, DNS_C_IN, DNS_T_MX, on_mx_answer, e);
    timer_update(r);
}

/* ---- lookup entry point ---- */

static void lookup(struct dns_resolver *r, enum dns_kind kind, const char *name, dns_mx_cb mcb,
                   dns_host_cb hcb, void *arg)
{
    char norm[DNS_NAME_MAX + 1];
    struct dns_entry *e;

    if (!name_norm(name, norm)) {
        e = entry_new(r, kind, name, false);
        e->reason = xasprintf("\"%.*s\" is not a valid domain name", 64, name);
        add_waiter(e, mcb, hcb, arg);
        complete(r, e, DNS_BAD_NAME, 0);
        return;
    }
    e = entry_find(r, kind, norm);
    if (e && e->done && clock_mono_ns() >= e->expires_ns) {
        unhash(r, e);
        e = NULL;
    }
    if (e) {
        add_waiter(e, mcb, hcb, arg);
        if (e->done) {
            r->stats.cache_hits++;
            if (e->in_lru) {
                lru_unlink(r, e);
                lru_push_head(r, e);
            }
            ready_push(r, e);
        } else {
            r->stats.coalesced++;
        }
        return;
    }
    e = entry_new(r, kind, norm, true);
    add_waiter(e, mcb, hcb, arg);
    if (kind == DNS_KIND_MX)
        mx_start(r, e);
    else
        host_start(r, e);
}

int dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb cb, void *arg)
{
    if (!r || !domain || !cb || r->closing)
        return -EINVAL;
    lookup(r, DNS_KIND_MX, domain, cb, NULL, arg);
    return 0;
}

int dns_resolve_host(struct dns_resolver *r, const char *host, dns_host_cb cb, void *arg)
{
    if (!r || !host || !cb || r->closing)
        return -EINVAL;
    lookup(r, DNS_KIND_HOST, host, NULL, cb, arg);
    return 0;
}

/* drain - deliver every finished entry to its waiters; callbacks may queue more */
static void drain(struct dns_resolver *r)
{
    struct dns_entry *e;

    while ((e = r->ready_head)) {
        struct dns_waiter *w = e->waiters, *next;
        uint64_t now = clock_mono_ns();
        uint32_t ttl = e->expires_ns > now ? (uint32_t)((e->expires_ns - now + 999999999u) / 1000000000u) : 0;

        r->ready_head = e->ready_next;
        if (!r->ready_head)
            r->ready_tail = &r->ready_head;
        e->ready = false;
        e->waiters = NULL;
        e->waiters_tail = &e->waiters;
        for (; w; w = next) {
            next = w->next;
            if (e->kind == DNS_KIND_MX) {
                struct dns_mx_result res = {
                    .status = e->status, .domain = e->name, .reason = e->reason,
                    .implicit = e->implicit, .ttl = ttl, .n_mx = e->n_mx, .mx = e->mx,
                };
                w->mx_cb(w->arg, &res);
            } else {
                struct dns_host_result res = {
                    .status = e->status, .host = e->name, .reason = e->reason,
                    .ttl = ttl, .n_addr = e->n_addr, .addr = e->addr,
                };
                w->host_cb(w->arg, &res);
            }
            free(w);
            /* on_kick holds an in-flight count, so `r` is still there to tell us */
            if (r->closing)
                panic("dns_resolver_free() called from a dns callback");
        }
        entry_unref(e);
    }
}

/* ---- ring plumbing: sockets, timer, kick ---- */

static void maybe_release(struct dns_resolver *r)
{
    if (r->closing && r->inflight == 0) {
        ASSERT(!r->socks);
        free(r);
    }
}

static void on_kick(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_resolver *r = op->owner;

    r->kick_pending = false;
    if (!r->closing)
        drain(r);
    r->inflight--;
    maybe_release(r);
}

static void on_sock_done(struct evl *l, struct evl_op *op, int res, unsigned flags);

static void sock_arm(struct dns_resolver *r, struct dns_sock *s)
{
    struct io_uring_sqe *sqe;
    unsigned mask = (s->want_r ? POLLIN : 0) | (s->want_w ? POLLOUT : 0);

    sqe = evl_sqe(r->l, &s->op);
    io_uring_prep_poll_add(sqe, s->fd, mask);
    s->armed = true;
    s->armed_mask = mask;
    r->inflight++;
}

static void sock_cancel(struct dns_resolver *r, struct dns_sock *s)
{
    struct io_uring_sqe *sqe;

    if (!s->armed || s->cancel_sent)
        return;
    sqe = evl_sqe(r->l, NULL);
    io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&s->op);
    s->cancel_sent = true;
}

static void sock_unlink(struct dns_resolver *r, struct dns_sock *s)
{
    for (struct dns_sock **pp = &r->socks; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    s->next = NULL;
    s->closed = true;
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_sock *s;
    unsigned mask;

    for (s = r->socks; s; s = s->next)
        if (s->fd == fd)
            break;
    if (!readable && !writable) {
        if (!s)
            return;
        sock_unlink(r, s);
        /* the kernel holds its own file reference: an armed poll must be removed, not forgotten */
        if (s->armed)
            sock_cancel(r, s);
        else if (!s->in_cb)
            free(s);
        return;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->op.cb = on_sock_done;
        s->op.owner = s;
        s->r = r;
        s->fd = fd;
        s->next = r->socks;
        r->socks = s;
    }
    s->want_r = readable;
    s->want_w = writable;
    if (r->closing || s->in_cb)
        return; /* on_sock_done re-arms with the new interest */
    mask = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
    if (!s->armed)
        sock_arm(r, s);
    else if (s->armed_mask != mask)
        sock_cancel(r, s); /* its completion re-arms with the new mask */
}

static void on_sock_done(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_sock *s = op->owner;
    struct dns_resolver *r = s->r;
    unsigned ev;

    s->armed = false;
    s->cancel_sent = false;
    r->inflight--;
    if (s->closed || r->closing) {
        if (!s->closed)
            sock_unlink(r, s);
        free(s);
        maybe_release(r);
        return;
    }
    if (res == -ECANCELED)
        ev = 0;
    else if (res < 0)
        ev = POLLERR; /* let c-ares read the socket and meet the error itself */
    else
        ev = (unsigned)res;
    if (ev) {
        ares_socket_t rfd = (ev & (POLLIN | POLLERR | POLLHUP)) ? s->fd : ARES_SOCKET_BAD;
        ares_socket_t wfd = (ev & (POLLOUT | POLLERR | POLLHUP)) && s->want_w ? s->fd : ARES_SOCKET_BAD;
        s->in_cb = true;
        ares_process_fd(r->ch, rfd, wfd);
        s->in_cb = false;
    }
    if (s->closed)
        free(s);
    else if (s->want_r || s->want_w)
        sock_arm(r, s);
    timer_update(r);
}

static void on_timer(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct dns_resolver *r = op->owner;

    r->timer.armed = false;
    r->timer_cancel_sent = false;
    r->inflight--;
    if (r->closing) {
        maybe_release(r);
        return;
    }
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update(r);
}

/* timer_update - keep one timer no later than c-ares' next timeout */
static void timer_update(struct dns_resolver *r)
{
    struct timeval tv, *tvp;
    uint64_t ns, deadline;

    if (r->closing)
        return;
    tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp)
        return; /* nothing waits on time; an armed timer just fires once for nothing */
    ns = (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
    if (ns < CLOCK_MS(1))
        ns = CLOCK_MS(1);
    deadline = clock_mono_ns() + ns;
    if (r->timer.armed) {
        if (r->timer_deadline <= deadline || r->timer_cancel_sent)
            return;
        struct io_uring_sqe *sqe = evl_sqe(r->l, NULL);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&r->timer.op, 0);
        r->timer_cancel_sent = true; /* on_timer re-arms from ares_timeout() */
        return;
    }
    evl_timer_arm(r->l, &r->timer, ns);
    r->timer_deadline = deadline;
    r->inflight++;
}

/* ---- life cycle ---- */

struct dns_resolver *dns_resolver_new(struct evl *l, const struct dns_config *c, char **err)
{
    struct dns_resolver *r;
    struct ares_options o;
    int rc, mask;
    size_t nb = 64;

    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        *err = xasprintf("dns: c-ares init: %s", ares_strerror(rc));
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    r->l = l;
    r->cache_max = c->cache_max ? c->cache_max : 10000;
    r->neg_min = c->neg_ttl_min_s;
    r->neg_max = c->neg_ttl_max_s ? c->neg_ttl_max_s : 3600;
    if (r->neg_max < r->neg_min)
        r->neg_max = r->neg_min;
    while (nb < r->cache_max && nb < ((size_t)1 << 20))
        nb <<= 1;
    r->nbuckets = nb;
    r->buckets = xcalloc(nb, sizeof(*r->buckets));
    r->ready_tail = &r->ready_head;
    r->kick_op.cb = on_kick;
    r->kick_op.owner = r;
    r->timer.op.cb = on_timer;
    r->timer.op.owner = r;

    memset(&o, 0, sizeof(o));
    o.flags = ARES_FLAG_EDNS; /* MX sets larger than 512 bytes without falling back to TCP */
    o.timeout = (int)(c->timeout_ms ? c->timeout_ms : 2000);
    o.tries = (int)(c->tries ? c->tries : 2);
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    rc = ares_init_options(&r->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        *err = xasprintf("dns: c-ares channel: %s", ares_strerror(rc));
        goto fail;
    }
    if (c->servers) {
        rc = ares_set_servers_ports_csv(r->ch, c->servers);
        if (rc != ARES_SUCCESS) {
            *err = xasprintf("dns: servers \"%s\": %s", c->servers, ares_strerror(rc));
            ares_destroy(r->ch);
            goto fail;
        }
    }
    return r;
fail:
    free(r->buckets);
    free(r);
    ares_library_cleanup();
    return NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
    struct dns_entry *e, *next;

    if (!r)
        return;
    r->closing = true;
    /* query callbacks see `closing` and return; sockets close through on_sock_state */
    ares_destroy(r->ch);
    ares_library_cleanup();
    while (r->socks) {
        struct dns_sock *s = r->socks;
        sock_unlink(r, s);
        if (s->armed)
            sock_cancel(r, s);
        else
            free(s);
    }
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
    if (r->timer.armed && !r->timer_cancel_sent) {
        struct io_uring_sqe *sqe = evl_sqe(r->l, NULL);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&r->timer.op, 0);
    }
    maybe_release(r);
}

const struct dns_stats *dns_resolver_stats(const struct dns_resolver *r)
{
    return &r->stats;
}
