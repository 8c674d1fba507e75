/*
 * spool_dlv - the spool's delivery rules (contract in spool_dlv.h)
 *
 * Everything here reads either the spool's own decoded envelopes or runs from the arena, which are
 * untrusted: run lengths are summed in 64 bits and compared with the run's length exactly before any
 * string is looked at.
 */
#include "spool/spool_dlv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "base/mem.h"

void spool_dlv_domain(const char *addr, char *out, size_t cap)
{
    const char *at = strrchr(addr, '@');
    const char *d = at ? at + 1 : "";
    size_t i = 0;

    for (; d[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)d[i]);
    out[i] = '\0';
}

bool spool_dlv_same_domain(const char *a, const char *b)
{
    const char *da = strrchr(a, '@'), *db = strrchr(b, '@');

    da = da ? da + 1 : "";
    db = db ? db + 1 : "";
    return strcasecmp(da, db) == 0;
}

/* append s to b, with the bytes the proto_dlv strings may not hold made spaces */
static void put_clean(struct spool_rec_buf *b, const char *s, bool lower)
{
    for (; *s; s++) {
        char c = *s;
        if (c == '\r' || c == '\n')
            c = ' ';
        else if (lower)
            c = (char)tolower((unsigned char)c);
        spool_rec_buf_append(b, &c, 1);
    }
}

static char *finish_name(struct spool_rec_buf *b)
{
    if (b->len > PROTO_DLV_STRING_MAX)
        b->len = PROTO_DLV_STRING_MAX;
    char *s = xstrndup((const char *)b->data, b->len);
    spool_rec_buf_fini(b);
    return s;
}

static const char *meta_set(const struct spool_rec *rec, const char *key)
{
    const char *v = spool_rec_meta_get(rec, key);
    return v && v[0] ? v : NULL;
}

char *spool_dlv_queue_name(const struct spool_rec *rec, const char *domain)
{
    struct spool_rec_buf b = {0};
    const char *queue = meta_set(rec, SPOOL_META_QUEUE);
    const char *campaign = meta_set(rec, SPOOL_META_CAMPAIGN);
    const char *tenant = meta_set(rec, SPOOL_META_TENANT);
    const char *routing = meta_set(rec, SPOOL_META_ROUTING_DOMAIN);

    spool_rec_buf_reserve(&b, 64);
    if (queue) {
        put_clean(&b, queue, false);
        return finish_name(&b);
    }
    if (campaign) {
        put_clean(&b, campaign, false);
        spool_rec_buf_append(&b, ":", 1);
    }
    if (tenant)
        put_clean(&b, tenant, false);
    /* KumoMTA keeps the '@' after a campaign without a tenant: "campaign:@domain" */
    if (campaign || tenant)
        spool_rec_buf_append(&b, "@", 1);
    put_clean(&b, domain, true);
    if (routing) {
        spool_rec_buf_append(&b, "!", 1);
        put_clean(&b, routing, true);
    }
    return finish_name(&b);
}

char *spool_dlv_routing_domain(const struct spool_rec *rec, const char *domain)
{
    struct spool_rec_buf b = {0};
    const char *routing = meta_set(rec, SPOOL_META_ROUTING_DOMAIN);

    spool_rec_buf_reserve(&b, 64);
    put_clean(&b, routing ? routing : domain, true);
    return finish_name(&b);
}

uint32_t spool_dlv_group(const struct spool_rec *rec, uint32_t rcpt_first, uint32_t *max_attempts)
{
    uint32_t n = 0, att = 0;

    if (rcpt_first < rec->rcpt_count) {
        const char *addr = rec->rcpts[rcpt_first].addr;
        for (uint32_t i = 0; i < rec->rcpt_count; i++) {
            const struct spool_rcpt *r = &rec->rcpts[i];
            if (r->state != SPOOL_RCPT_QUEUED || !spool_dlv_same_domain(r->addr, addr))
                continue;
            n++;
            if (r->attempts > att)
                att = r->attempts;
        }
    }
    if (max_attempts)
        *max_attempts = att;
    return n;
}

static void pad8(struct spool_rec_buf *b)
{
    static const uint8_t zero[8];
    if (b->len % 8)
        spool_rec_buf_append(b, zero, 8 - b->len % 8);
}

/* one entry with the groups whose first queued recipient is in firsts[0..n) */
static void ann_entry(struct spool_rec_buf *b, struct msgid id, const struct spool_rec *rec,
                      const uint32_t *firsts, size_t n)
{
    struct proto_ann a = {.msg_id_hi = id.hi, .msg_id_lo = id.lo, .created_ms = rec->created_ms,
                          .size = rec->body_size, .n_dom = (uint16_t)n};
    char **q = xcalloc(n * 2, sizeof(char *));
    struct proto_ann_dom *d = xcalloc(n, sizeof(*d));

    for (size_t k = 0; k < n; k++) {
        char dom[SPOOL_REC_ADDR_MAX + 1];
        uint32_t att;
        spool_dlv_domain(rec->rcpts[firsts[k]].addr, dom, sizeof(dom));
        q[2 * k] = spool_dlv_queue_name(rec, dom);
        q[2 * k + 1] = spool_dlv_routing_domain(rec, dom);
        d[k].rcpt_first = firsts[k];
        d[k].pending = spool_dlv_group(rec, firsts[k], &att);
        d[k].queue_len = (uint16_t)strlen(q[2 * k]);
        d[k].domain_len = (uint16_t)strlen(q[2 * k + 1]);
        if (att > a.attempts)
            a.attempts = att;
    }
    spool_rec_buf_append(b, &a, sizeof(a));
    spool_rec_buf_append(b, d, n * sizeof(*d));
    for (size_t k = 0; k < 2 * n; k++) {
        spool_rec_buf_append(b, q[k], strlen(q[k]));
        free(q[k]);
    }
    pad8(b);
    free(q);
    free(d);
}

size_t spool_dlv_ann_append(struct spool_rec_buf *b, struct msgid id, const struct spool_rec *rec)
{
    uint32_t firsts[PROTO_ANN_MAX_DOMAINS];
    size_t n = 0, entries = 0;

    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        if (rec->rcpts[i].state != SPOOL_RCPT_QUEUED)
            continue;
        /* first queued recipient of its group? (quadratic in the recipients: they are few per message) */
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = rec->rcpts[j].state == SPOOL_RCPT_QUEUED &&
                   spool_dlv_same_domain(rec->rcpts[j].addr, rec->rcpts[i].addr);
        if (seen)
            continue;
        firsts[n++] = i;
        if (n == PROTO_ANN_MAX_DOMAINS) {
            ann_entry(b, id, rec, firsts, n);
            entries++;
            n = 0;
        }
    }
    if (n > 0) {
        ann_entry(b, id, rec, firsts, n);
        entries++;
    }
    return entries;
}

static bool clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return false;
    return true;
}

int spool_dlv_ann_check(const void *run, size_t len)
{
    const uint8_t *p = run;
    struct proto_ann_hdr h;
    size_t off = sizeof(h);

    if (len < sizeof(h))
        return -EBADMSG;
    memcpy(&h, p, sizeof(h));
    if (h.magic != PROTO_ANN_MAGIC || h.version != PROTO_DLV_VERSION)
        return -EBADMSG;
    for (uint32_t e = 0; e < h.count; e++) {
        struct proto_ann a;
        if (len - off < sizeof(a))
            return -EBADMSG;
        memcpy(&a, p + off, sizeof(a));
        off += sizeof(a);
        if (a.n_dom == 0 || a.n_dom > PROTO_ANN_MAX_DOMAINS || (len - off) / sizeof(struct proto_ann_dom) < a.n_dom)
            return -EBADMSG;
        const uint8_t *dp = p + off;
        off += a.n_dom * sizeof(struct proto_ann_dom);
        for (uint16_t k = 0; k < a.n_dom; k++) {
            struct proto_ann_dom d;
            memcpy(&d, dp + k * sizeof(d), sizeof(d));
            if (d.queue_len == 0 || d.queue_len > PROTO_DLV_STRING_MAX || d.domain_len > PROTO_DLV_STRING_MAX ||
                len - off < (size_t)d.queue_len + d.domain_len || d.pending == 0)
                return -EBADMSG;
            if (!clean((const char *)p + off, d.queue_len + (size_t)d.domain_len))
                return -EBADMSG;
            off += (size_t)d.queue_len + d.domain_len;
        }
        size_t pad = (8 - off % 8) % 8;
        if (len - off < pad)
            return -EBADMSG;
        off += pad;
    }
    return off == len ? (int)h.count : -EBADMSG;
}

int spool_dlv_attempt_check(const void *run, size_t len, struct spool_dlv_attempt *out, const char **why)
{
    const char *p = run;
    const char *w = NULL;

    memset(out, 0, sizeof(*out));
    if (len < sizeof(out->hdr)) {
        w = "run shorter than its header";
        goto bad;
    }
    memcpy(&out->hdr, p, sizeof(out->hdr));
    const struct proto_attempt_hdr *h = &out->hdr;
    if (h->magic != PROTO_ATT_MAGIC || h->version != PROTO_DLV_VERSION) {
        w = "bad magic or version";
        goto bad;
    }
    if (h->n_rcpt == 0) {
        w = "no recipients";
        goto bad;
    }
    uint64_t total = sizeof(*h) + (uint64_t)h->n_rcpt * sizeof(struct proto_attempt_rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        if (h->len[i] > PROTO_DLV_STRING_MAX) {
            w = "header string too long";
            goto bad;
        }
        total += h->len[i];
    }
    if (total > len) {
        w = "lengths exceed the run";
        goto bad;
    }
    out->rcpt = (const struct proto_attempt_rcpt *)(const void *)(p + sizeof(*h));
    for (uint16_t i = 0; i < h->n_rcpt; i++) {
        struct proto_attempt_rcpt r;
        memcpy(&r, p + sizeof(*h) + (size_t)i * sizeof(r), sizeof(r));
        if (r.text_len > PROTO_DLV_STRING_MAX) {
            w = "response text too long";
            goto bad;
        }
        if (r.outcome < PROTO_OUT_DELIVERED || r.outcome > PROTO_OUT_BOUNCE) {
            w = "unknown outcome";
            goto bad;
        }
        if (r.command > PROTO_CMD_DATA) {
            w = "unknown command";
            goto bad;
        }
        if (r.enh_class != 0 && r.enh_class != 2 && r.enh_class != 4 && r.enh_class != 5) {
            w = "bad enhanced status class";
            goto bad;
        }
        if (r.code != 0 && (r.code < 200 || r.code > 599)) {
            w = "bad reply code";
            goto bad;
        }
        total += r.text_len;
        /* one result per recipient: a repeated index would count an attempt twice */
        for (uint16_t j = 0; j < i; j++) {
            struct proto_attempt_rcpt o;
            memcpy(&o, p + sizeof(*h) + (size_t)j * sizeof(o), sizeof(o));
            if (o.index == r.index) {
                w = "recipient index repeated";
                goto bad;
            }
        }
    }
    if (total != len) {
        w = "lengths do not add up to the run";
        goto bad;
    }
    const char *s = p + sizeof(*h) + (size_t)h->n_rcpt * sizeof(struct proto_attempt_rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        out->str[i] = s;
        s += h->len[i];
    }
    out->text0 = s;
    if (!clean(out->str[0], (size_t)(p + len - out->str[0]))) {
        w = "NUL, CR or LF in a string";
        goto bad;
    }
    return 0;
bad:
    if (why)
        *why = w;
    memset(out, 0, sizeof(*out));
    return -EBADMSG;
}

int spool_dlv_attempt_indexes(const struct spool_dlv_attempt *a, uint32_t rcpt_count)
{
    for (uint16_t i = 0; i < a->hdr.n_rcpt; i++) {
        struct proto_attempt_rcpt r;
        spool_dlv_attempt_rcpt(a, i, &r, NULL);
        if (r.index >= rcpt_count)
            return -ERANGE;
    }
    return a->hdr.rcpt_first < rcpt_count ? 0 : -ERANGE;
}

void spool_dlv_attempt_rcpt(const struct spool_dlv_attempt *a, uint16_t i, struct proto_attempt_rcpt *out,
                            const char **text)
{
    const char *t = a->text0;

    memcpy(out, (const char *)a->rcpt + (size_t)i * sizeof(*out), sizeof(*out));
    if (!text)
        return;
    for (uint16_t j = 0; j < i; j++) {
        struct proto_attempt_rcpt o;
        memcpy(&o, (const char *)a->rcpt + (size_t)j * sizeof(o), sizeof(o));
        t += o.text_len;
    }
    *text = t;
}

int spool_dlv_apply(struct spool_rec *rec, uint32_t index, uint8_t outcome)
{
    if (index >= rec->rcpt_count || outcome < PROTO_OUT_DELIVERED || outcome > PROTO_OUT_BOUNCE)
        return -EINVAL;
    struct spool_rcpt *r = &rec->rcpts[index];
    if (spool_rec_state_final(r->state))
        return 0;
    if (r->attempts < UINT32_MAX)
        r->attempts++;
    if (outcome == PROTO_OUT_DELIVERED)
        r->state = SPOOL_RCPT_DELIVERED;
    else if (outcome == PROTO_OUT_BOUNCE)
        r->state = SPOOL_RCPT_BOUNCED;
    return 1;
}

uint32_t spool_dlv_fail(struct spool_rec *rec, uint32_t rcpt_first, uint8_t state, uint8_t *mark)
{
    uint32_t n = 0;

    if (rcpt_first >= rec->rcpt_count || !spool_rec_state_final(state))
        return 0;
    const char *addr = rec->rcpts[rcpt_first].addr;
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        struct spool_rcpt *r = &rec->rcpts[i];
        if (r->state != SPOOL_RCPT_QUEUED || !spool_dlv_same_domain(r->addr, addr))
            continue;
        r->state = state;
        n++;
        if (mark)
            mark[i] = 1;
    }
    return n;
}

void spool_dlv_dns_reply(unsigned reason, struct spool_dlv_reply *out)
{
    /* RFC 3463 codes; RFC 7505 section 4.2 for the null MX */
    switch (reason) {
    case DNS_NXDOMAIN:
        *out = (struct spool_dlv_reply){550, 5, 1, 2, "domain does not exist"};
        break;
    case DNS_NULL_MX:
        *out = (struct spool_dlv_reply){556, 5, 1, 10, "domain does not accept mail (null MX)"};
        break;
    case DNS_NO_DATA:
        *out = (struct spool_dlv_reply){550, 5, 1, 2, "domain has no MX and no address records"};
        break;
    case DNS_BAD_NAME:
        *out = (struct spool_dlv_reply){550, 5, 1, 2, "domain name is not valid"};
        break;
    default:
        /* the scheduler asked for a bounce with a status that is not permanent: still say why */
        *out = (struct spool_dlv_reply){550, 5, 4, 4, "unable to route: permanent DNS failure"};
        break;
    }
}

void spool_dlv_expire_reply(struct spool_dlv_reply *out)
{
    *out = (struct spool_dlv_reply){551, 5, 4, 7, "delivery time expired: queued longer than the queue's max_age"};
}

bool spool_dlv_wants_dsn(bool dsn_enabled, const char *sender)
{
    /* never to the null sender (RFC 5321 section 4.5.5), so a DSN never answers a DSN */
    return dsn_enabled && sender && sender[0] && strcmp(sender, "<>") != 0;
}

const char *spool_dlv_command_name(uint16_t cmd)
{
    switch (cmd) {
    case PROTO_CMD_MAIL:
        return "MAIL FROM";
    case PROTO_CMD_RCPT:
        return "RCPT TO";
    case PROTO_CMD_DATA:
        return ".";
    default:
        return NULL;
    }
}
