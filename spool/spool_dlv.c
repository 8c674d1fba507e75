/*
 * spool_dlv - the spool's delivery rules (contract in spool_dlv.h)
 *
 * Everything here reads the spool's own decoded envelopes or attempt results the proto_dlv decoder
 * already checked; the runs' layouts are proto_dlv.c's business.
 */
#include "spool/spool_dlv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void spool_dlv_domain(const char *addr, char *out, size_t cap)
{
    const char *at = strrchr(addr, '@');
    const char *d = at ? at + 1 : "";
    size_t i = 0;

    for (; d[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)d[i]);
    /* "example.com." is example.com: its queue and route (the ingress stores it without the dot; an
     * envelope from before that, or any other writer, must not bypass them either) */
    if (i > 0 && out[i - 1] == '.')
        i--;
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
static void put_clean(struct buf *b, const char *s, bool lower)
{
    for (; *s; s++) {
        char c = *s;
        if (c == '\r' || c == '\n')
            c = ' ';
        else if (lower)
            c = (char)tolower((unsigned char)c);
        buf_append(b, &c, 1);
    }
}

static char *finish_name(struct buf *b)
{
    if (b->len > PROTO_DLV_STRING_MAX)
        b->len = PROTO_DLV_STRING_MAX;
    char *s = xstrndup((const char *)b->data, b->len);
    buf_fini(b);
    return s;
}

static const char *meta_set(const struct proto_env *rec, const char *key)
{
    const char *v = proto_env_meta_get(rec, key);
    return v && v[0] ? v : NULL;
}

char *spool_dlv_queue_name(const struct proto_env *rec, const char *domain)
{
    struct buf b = {0};
    const char *queue = meta_set(rec, PROTO_ENV_META_QUEUE);
    const char *campaign = meta_set(rec, PROTO_ENV_META_CAMPAIGN);
    const char *tenant = meta_set(rec, PROTO_ENV_META_TENANT);
    const char *routing = meta_set(rec, PROTO_ENV_META_ROUTING_DOMAIN);
    const char *route = meta_set(rec, PROTO_ENV_META_ROUTE);

    buf_reserve(&b, 64);
    if (queue) {
        put_clean(&b, queue, false);
        /* a rebind to hosts routes the queue elsewhere: its name says so, as a routing domain's does */
        if (route) {
            buf_append(&b, "!" SPOOL_DLV_ROUTE_PREFIX, 1 + strlen(SPOOL_DLV_ROUTE_PREFIX));
            put_clean(&b, route, true);
        }
        return finish_name(&b);
    }
    if (campaign) {
        put_clean(&b, campaign, false);
        buf_append(&b, ":", 1);
    }
    if (tenant)
        put_clean(&b, tenant, false);
    /* KumoMTA keeps the '@' after a campaign without a tenant: "campaign:@domain" */
    if (campaign || tenant)
        buf_append(&b, "@", 1);
    put_clean(&b, domain, true);
    if (route) {
        buf_append(&b, "!" SPOOL_DLV_ROUTE_PREFIX, 1 + strlen(SPOOL_DLV_ROUTE_PREFIX));
        put_clean(&b, route, true);
    } else if (routing) {
        buf_append(&b, "!", 1);
        put_clean(&b, routing, true);
    }
    return finish_name(&b);
}

char *spool_dlv_routing_domain(const struct proto_env *rec, const char *domain)
{
    struct buf b = {0};
    const char *routing = meta_set(rec, PROTO_ENV_META_ROUTING_DOMAIN);
    const char *route = meta_set(rec, PROTO_ENV_META_ROUTE);

    buf_reserve(&b, 64);
    if (route)
        buf_append(&b, SPOOL_DLV_ROUTE_PREFIX, strlen(SPOOL_DLV_ROUTE_PREFIX));
    put_clean(&b, route ? route : routing ? routing : domain, true);
    return finish_name(&b);
}

uint32_t spool_dlv_group(const struct proto_env *rec, uint32_t rcpt_first, uint32_t *max_attempts)
{
    uint32_t n = 0, att = 0;

    if (rcpt_first < rec->rcpt_count) {
        const char *addr = rec->rcpts[rcpt_first].addr;
        for (uint32_t i = 0; i < rec->rcpt_count; i++) {
            const struct proto_env_rcpt *r = &rec->rcpts[i];
            if (r->state != PROTO_RCPT_QUEUED || !spool_dlv_same_domain(r->addr, addr))
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

/* ann_entry - one entry with the groups whose first queued recipient is in firsts[0..n), less those whose
 * names may not travel (counted in *refused); 1 when an entry was appended */
static size_t ann_entry(struct buf *b, struct msgid id, const struct proto_env *rec, const uint32_t *firsts,
                        size_t n, uint32_t *refused)
{
    struct proto_ann_entry e = {.ann = {.msg_id_hi = id.hi, .msg_id_lo = id.lo, .created_ms = rec->created_ms,
                                        .size = rec->body_size, .last_attempt_ms = rec->last_attempt_ms}};
    struct proto_ann_item *it = xcalloc(n, sizeof(*it));
    char **q = xcalloc(n * 2, sizeof(char *));
    size_t m = 0;

    for (size_t k = 0; k < n; k++) {
        char dom[PROTO_ENV_ADDR_MAX + 1];
        uint32_t att;
        spool_dlv_domain(rec->rcpts[firsts[k]].addr, dom, sizeof(dom));
        q[2 * k] = spool_dlv_queue_name(rec, dom);
        q[2 * k + 1] = spool_dlv_routing_domain(rec, dom);
        size_t ql = strlen(q[2 * k]), dl = strlen(q[2 * k + 1]);
        if (!proto_dlv_ann_name_ok(q[2 * k], ql) || !proto_dlv_ann_name_ok(q[2 * k + 1], dl)) {
            (*refused)++;
            continue;
        }
        uint32_t pending = spool_dlv_group(rec, firsts[k], &att);
        it[m] = (struct proto_ann_item){.dom = {.rcpt_first = firsts[k], .pending = pending,
                                                .queue_len = (uint16_t)ql, .domain_len = (uint16_t)dl},
                                        .queue = q[2 * k], .domain = q[2 * k + 1]};
        if (att > e.ann.attempts)
            e.ann.attempts = att;
        m++;
    }
    e.ann.n_dom = (uint16_t)m;
    e.item = it;
    /* every name was checked above and n_dom is within the cap: only an empty entry is refused */
    size_t added = m > 0 && proto_dlv_ann_append(b, &e) == 0;
    for (size_t k = 0; k < 2 * n; k++)
        free(q[k]);
    free(q);
    free(it);
    return added;
}

size_t spool_dlv_ann_append(struct buf *b, struct msgid id, const struct proto_env *rec, uint32_t *refused)
{
    uint32_t firsts[PROTO_ANN_MAX_DOMAINS];
    uint32_t bad = 0;
    size_t n = 0, entries = 0;

    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        if (rec->rcpts[i].state != PROTO_RCPT_QUEUED)
            continue;
        /* first queued recipient of its group? (quadratic in the recipients: they are few per message) */
        bool seen = false;
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = rec->rcpts[j].state == PROTO_RCPT_QUEUED &&
                   spool_dlv_same_domain(rec->rcpts[j].addr, rec->rcpts[i].addr);
        if (seen)
            continue;
        firsts[n++] = i;
        if (n == PROTO_ANN_MAX_DOMAINS) {
            entries += ann_entry(b, id, rec, firsts, n, &bad);
            n = 0;
        }
    }
    if (n > 0)
        entries += ann_entry(b, id, rec, firsts, n, &bad);
    if (refused)
        *refused = bad;
    return entries;
}

int spool_dlv_attempt_indexes(const struct proto_attempt *a, uint32_t rcpt_count)
{
    for (uint16_t i = 0; i < a->hdr.n_rcpt; i++)
        if (a->rcpt[i].index >= rcpt_count)
            return -ERANGE;
    return a->hdr.rcpt_first < rcpt_count ? 0 : -ERANGE;
}

int spool_dlv_apply(struct proto_env *rec, uint32_t index, uint8_t outcome)
{
    if (index >= rec->rcpt_count || outcome < PROTO_OUT_DELIVERED || outcome > PROTO_OUT_BOUNCE)
        return -EINVAL;
    struct proto_env_rcpt *r = &rec->rcpts[index];
    if (proto_env_state_final(r->state))
        return 0;
    if (r->attempts < UINT32_MAX)
        r->attempts++;
    if (outcome == PROTO_OUT_DELIVERED)
        r->state = PROTO_RCPT_DELIVERED;
    else if (outcome == PROTO_OUT_BOUNCE)
        r->state = PROTO_RCPT_BOUNCED;
    return 1;
}

uint32_t spool_dlv_fail(struct proto_env *rec, uint32_t rcpt_first, uint8_t state, uint8_t *mark)
{
    uint32_t n = 0;

    if (rcpt_first >= rec->rcpt_count || !proto_env_state_final(state))
        return 0;
    const char *addr = rec->rcpts[rcpt_first].addr;
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        struct proto_env_rcpt *r = &rec->rcpts[i];
        if (r->state != PROTO_RCPT_QUEUED || !spool_dlv_same_domain(r->addr, addr))
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
    case PROTO_FAIL_REASON_NXDOMAIN:
        *out = (struct spool_dlv_reply){550, 5, 1, 2, "domain does not exist"};
        break;
    case PROTO_FAIL_REASON_NULL_MX:
        *out = (struct spool_dlv_reply){556, 5, 1, 10, "domain does not accept mail (null MX)"};
        break;
    case PROTO_FAIL_REASON_NO_DATA:
        *out = (struct spool_dlv_reply){550, 5, 1, 2, "domain has no MX and no address records"};
        break;
    case PROTO_FAIL_REASON_BAD_NAME:
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

void spool_dlv_admin_reply(uint16_t reason, struct spool_dlv_reply *out)
{
    if (reason == PROTO_FAIL_REASON_OPERATOR)
        *out = (struct spool_dlv_reply){551, 5, 7, 1, "administratively bounced by the operator"};
    else
        *out = (struct spool_dlv_reply){551, 5, 7, 1, "administratively bounced by a traffic shaping automation rule"};
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
