/*
 * dns - MX and address lookups on the role's io_uring loop (c-ares 1.18), with a cache
 *
 * This part holds the public entry points of dns.h: name checks, the TTL scan of raw answers,
 * the A/AAAA and MX query logic (RFC 5321 5.1, RFC 7505), and the resolver's life cycle.
 * The cache is dns_cache.c; sockets, the timer and answer delivery on the ring are dns_ring.c;
 * what they share is dns_int.h. A program using dns.h links all three.
 * Ownership: see dns_int.h; a query's c-ares callback points into its entry, which stays hashed
 * (so alive) until the answer is in.
 * Errors: nothing in a DNS answer panics; it becomes a status with a reason.
 */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "dns/dns_int.h"
#include "base/log.h"
#include "base/mem.h"

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
/*
 * negative_proven - c-ares said "no data" (ENODATA) or "no such name" (ENOTFOUND): believe it only when a
 * server's reply says so itself (QR set, RCODE NOERROR resp. NXDOMAIN). A permanent answer bounces mail,
 * so anything less (no packet, another RCODE) is treated as a temporary failure.
 */
static bool negative_proven(int status, const unsigned char *buf, int len)
{
    if (!buf || len < 12 || !(buf[2] & 0x80))
        return false;
    unsigned rcode = buf[3] & 0x0f;
    return status == ARES_ENOTFOUND ? rcode == 3 : rcode == 0;
}

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

static void add_waiter(struct dns_entry *e, dns_mx_cb mcb, dns_host_cb hcb, dns_txt_cb tcb, void *arg)
{
    struct dns_waiter *w = xcalloc(1, sizeof(*w));

    w->mx_cb = mcb;
    w->host_cb = hcb;
    w->txt_cb = tcb;
    w->arg = arg;
    *e->waiters_tail = w;
    e->waiters_tail = &w->next;
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
        dns_cache_complete(r, e, DNS_OK, ttl);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (e->fam[i].status == DNS_TEMPFAIL) {
            e->reason = xstrdup(e->fam[i].reason);
            dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
            return;
        }
    }
    ttl = f4->ttl < f6->ttl ? f4->ttl : f6->ttl;
    if (f4->status == DNS_NXDOMAIN || f6->status == DNS_NXDOMAIN) {
        e->reason = xasprintf("host %s does not exist (NXDOMAIN)", e->name);
        dns_cache_complete(r, e, DNS_NXDOMAIN, ttl);
    } else {
        e->reason = xasprintf("host %s has no A or AAAA record", e->name);
        dns_cache_complete(r, e, DNS_NO_DATA, ttl);
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
    else if ((rc == ARES_ENODATA || rc == ARES_ENOTFOUND) && negative_proven(rc, abuf, alen))
        f->status = rc == ARES_ENODATA ? DNS_NO_DATA : DNS_NXDOMAIN;
    else if (status == ARES_SUCCESS)
        f->reason = xasprintf("%s lookup for %s: malformed answer (%s)", what, e->name, ares_strerror(rc));
    else
        f->reason = ares_reason(what, e->name, status);
    if (f->status == DNS_NO_DATA || f->status == DNS_NXDOMAIN)
        f->ttl = dns_cache_clamp_neg(r, neg_ttl);
    if (e->fam[0].done && e->fam[1].done)
        host_finish(r, e);
}

static void host_start(struct dns_resolver *r, struct dns_entry *e)
{
    r->stats.queries += 2;
    ares_query(r->ch, e->name, DNS_C_IN, DNS_T_A, on_addr_answer, &e->fam[0]);
    if (!r->closing)
        ares_query(r->ch, e->name, DNS_C_IN, DNS_T_AAAA, on_addr_answer, &e->fam[1]);
    dns_ring_timer_update(r);
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
        dns_cache_complete(r, e, DNS_OK, ttl);
        return;
    case DNS_NO_DATA:
        e->reason = xasprintf("domain %s has no MX and no A or AAAA record", e->name);
        dns_cache_complete(r, e, DNS_NO_DATA, dns_cache_clamp_neg(r, ttl));
        return;
    case DNS_NXDOMAIN:
        e->reason = xasprintf("domain %s does not exist (NXDOMAIN)", e->name);
        dns_cache_complete(r, e, DNS_NXDOMAIN, dns_cache_clamp_neg(r, ttl));
        return;
    default:
        e->reason = xstrdup(h->reason);
        dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
        return;
    }
}

static void lookup(struct dns_resolver *r, enum dns_kind kind, const char *name, dns_mx_cb mcb,
                   dns_host_cb hcb, dns_txt_cb tcb, void *arg);

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
    e->mx_neg_ttl = dns_cache_clamp_neg(r, neg_ttl);
    lookup(r, DNS_KIND_HOST, e->name, NULL, on_implicit_host, NULL, e);
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
            dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
            return;
        }
        st = mx_build(e, list);
        ares_free_data(list);
        if (st == DNS_NULL_MX)
            ans_ttl = dns_cache_clamp_neg(r, ans_ttl);
        else if (ans_ttl == UINT32_MAX)
            ans_ttl = DNS_TTL_FALLBACK_S; /* c-ares parsed what our scan could not: stay brief */
        dns_cache_complete(r, e, st, ans_ttl);
        return;
    case ARES_ENODATA:
        if (!negative_proven(status, abuf, alen))
            break;
        mx_no_mx(r, e, neg_ttl);
        return;
    case ARES_ENOTFOUND:
        if (!negative_proven(status, abuf, alen))
            break;
        e->reason = xasprintf("domain %s does not exist (NXDOMAIN)", e->name);
        dns_cache_complete(r, e, DNS_NXDOMAIN, dns_cache_clamp_neg(r, neg_ttl));
        return;
    default:
        break;
    }
    e->reason = ares_reason("MX", e->name, status);
    dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
}

static void mx_start(struct dns_resolver *r, struct dns_entry *e)
{
    r->stats.queries++;
    ares_query(r->ch, e->name, DNS_C_IN, DNS_T_MX, on_mx_answer, e);
    dns_ring_timer_update(r);
}

/* ---- TXT lookups ---- */

static void on_txt_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_entry *e = arg;
    struct dns_resolver *r = e->r;
    struct ares_txt_ext *list = NULL;
    uint32_t ans_ttl, neg_ttl;
    int rc;

    (void)timeouts;
    if (r->closing)
        return;
    pkt_scan(abuf, alen, DNS_T_TXT, &ans_ttl, &neg_ttl);
    if (status == ARES_SUCCESS) {
        rc = ares_parse_txt_reply_ext(abuf, alen, &list);
        if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && !list)) {
            e->reason = xasprintf("%s has no TXT record", e->name);
            dns_cache_complete(r, e, DNS_NO_DATA, dns_cache_clamp_neg(r, neg_ttl));
            return;
        }
        if (rc != ARES_SUCCESS) {
            e->reason = xasprintf("TXT lookup for %s: malformed answer (%s)", e->name, ares_strerror(rc));
            dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
            return;
        }
        /* a record is its strings joined (RFC 7208 3.3 style); record_start marks each record's first */
        for (struct ares_txt_ext *t = list; t; t = t->next) {
            if (t->record_start || e->n_txt == 0) {
                if (e->n_txt == DNS_TXT_MAX)
                    break;
                e->txt = xrealloc(e->txt, (e->n_txt + 1) * sizeof(*e->txt));
                e->txt_len = xrealloc(e->txt_len, (e->n_txt + 1) * sizeof(*e->txt_len));
                e->txt[e->n_txt] = xcalloc(1, 1);
                e->txt_len[e->n_txt] = 0;
                e->n_txt++;
            }
            size_t k = e->n_txt - 1, have = e->txt_len[k];
            if (have + t->length > DNS_TXT_LEN_MAX)
                continue; /* a record longer than any we read: cut, never grown without bound */
            e->txt[k] = xrealloc(e->txt[k], have + t->length + 1);
            memcpy(e->txt[k] + have, t->txt, t->length);
            e->txt[k][have + t->length] = '\0';
            e->txt_len[k] = have + t->length;
        }
        ares_free_data(list);
        dns_cache_complete(r, e, DNS_OK, ans_ttl == UINT32_MAX ? DNS_TTL_FALLBACK_S : ans_ttl);
        return;
    }
    if ((status == ARES_ENODATA || status == ARES_ENOTFOUND) && negative_proven(status, abuf, alen)) {
        e->reason = xasprintf("%s has no TXT record%s", e->name, status == ARES_ENOTFOUND ? " (NXDOMAIN)" : "");
        dns_cache_complete(r, e, status == ARES_ENOTFOUND ? DNS_NXDOMAIN : DNS_NO_DATA,
                           dns_cache_clamp_neg(r, neg_ttl));
        return;
    }
    e->reason = ares_reason("TXT", e->name, status);
    dns_cache_complete(r, e, DNS_TEMPFAIL, 0);
}

static void txt_start(struct dns_resolver *r, struct dns_entry *e)
{
    r->stats.queries++;
    ares_query(r->ch, e->name, DNS_C_IN, DNS_T_TXT, on_txt_answer, e);
    dns_ring_timer_update(r);
}

/* ---- lookup entry point ---- */

static void lookup(struct dns_resolver *r, enum dns_kind kind, const char *name, dns_mx_cb mcb,
                   dns_host_cb hcb, dns_txt_cb tcb, void *arg)
{
    char norm[DNS_NAME_MAX + 1];
    struct dns_entry *e;

    if (!name_norm(name, norm)) {
        e = dns_cache_entry_new(r, kind, name, false);
        e->reason = xasprintf("\"%.*s\" is not a valid domain name", 64, name);
        add_waiter(e, mcb, hcb, tcb, arg);
        dns_cache_complete(r, e, DNS_BAD_NAME, 0);
        return;
    }
    e = dns_cache_entry_find(r, kind, norm);
    if (e && e->done && clock_mono_ns() >= e->expires_ns) {
        dns_cache_unhash(r, e);
        e = NULL;
    }
    if (e) {
        add_waiter(e, mcb, hcb, tcb, arg);
        if (e->done) {
            r->stats.cache_hits++;
            dns_cache_touch(r, e);
            dns_ring_ready_push(r, e);
        } else {
            r->stats.coalesced++;
        }
        return;
    }
    e = dns_cache_entry_new(r, kind, norm, true);
    add_waiter(e, mcb, hcb, tcb, arg);
    if (kind == DNS_KIND_MX)
        mx_start(r, e);
    else if (kind == DNS_KIND_TXT)
        txt_start(r, e);
    else
        host_start(r, e);
}

int dns_resolve_mx(struct dns_resolver *r, const char *domain, dns_mx_cb cb, void *arg)
{
    if (!r || !domain || !cb || r->closing)
        return -EINVAL;
    lookup(r, DNS_KIND_MX, domain, cb, NULL, NULL, arg);
    return 0;
}

int dns_resolve_host(struct dns_resolver *r, const char *host, dns_host_cb cb, void *arg)
{
    if (!r || !host || !cb || r->closing)
        return -EINVAL;
    lookup(r, DNS_KIND_HOST, host, NULL, cb, NULL, arg);
    return 0;
}

int dns_resolve_txt(struct dns_resolver *r, const char *name, dns_txt_cb cb, void *arg)
{
    if (!r || !name || !cb || r->closing)
        return -EINVAL;
    lookup(r, DNS_KIND_TXT, name, NULL, NULL, cb, arg);
    return 0;
}

/* ---- life cycle ---- */

struct dns_resolver *dns_resolver_new(struct evl *l, const struct dns_config *c, char **err)
{
    struct dns_resolver *r;
    struct ares_options o;
    int rc, mask;

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
    dns_cache_init(r);

    memset(&o, 0, sizeof(o));
    dns_ring_init(r, &o);
    o.flags = ARES_FLAG_EDNS; /* MX sets larger than 512 bytes without falling back to TCP */
    o.timeout = (int)(c->timeout_ms ? c->timeout_ms : 2000);
    o.tries = (int)(c->tries ? c->tries : 2);
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
    dns_cache_fini(r);
    free(r);
    ares_library_cleanup();
    return NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (!r)
        return;
    r->closing = true;
    /* query callbacks see `closing` and return; sockets close through on_sock_state */
    ares_destroy(r->ch);
    ares_library_cleanup();
    dns_ring_socks_close(r);
    dns_cache_fini(r);
    dns_ring_release(r);
}

const struct dns_stats *dns_resolver_stats(const struct dns_resolver *r)
{
    return &r->stats;
}
