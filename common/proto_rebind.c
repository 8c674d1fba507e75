/*
 * proto_rebind - rebind runs and abort records: encoding and strict decoding (contract in proto_rebind.h)
 */
#include "common/proto_rebind.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/hostport.h"
#include "base/mem.h"
#include "common/proto_dlv.h"
#include "common/proto_wire.h"

static bool line_ok(const char *s, size_t n, size_t max)
{
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return false;
    return true;
}

bool proto_rebind_route_ok(const char *s, size_t n)
{
    if (!proto_dlv_ann_name_ok(s, n))
        return false;
    unsigned hosts = 0;
    for (size_t i = 0; i <= n;) {
        const char *comma = memchr(s + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - s) : n;
        char one[HOSTPORT_HOST_MAX + 16];
        struct hostport hp;
        if (end == i || end - i >= sizeof(one) || ++hosts > PROTO_REBIND_HOSTS)
            return false;
        memcpy(one, s + i, end - i);
        one[end - i] = '\0';
        if (hostport_parse(one, HOSTPORT_PORT_OPTIONAL, &hp) < 0)
            return false;
        if (!comma)
            break;
        i = end + 1;
    }
    return true;
}

static const char *target_why(unsigned kind, const char *t, size_t n)
{
    if (kind == PROTO_REBIND_QUEUE)
        return proto_dlv_ann_name_ok(t, n) ? NULL : "bad queue name";
    if (kind == PROTO_REBIND_ROUTE)
        return proto_rebind_route_ok(t, n) ? NULL : "bad route";
    return "unknown kind";
}

static bool dup_ent(const struct proto_rebind_ent *e, uint32_t n)
{
    /* runs are small (PROTO_REBIND_MAX): a quadratic check costs less than a table */
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = i + 1; j < n; j++)
            if (e[i].msg_id_hi == e[j].msg_id_hi && e[i].msg_id_lo == e[j].msg_id_lo)
                return true;
    return false;
}

int proto_rebind_encode(enum proto_rebind_kind kind, const char *target, const char *reason, const char *who,
                        const struct proto_rebind_ent *ent, uint32_t count, struct buf *out)
{
    size_t tl = target ? strlen(target) : 0, rl = reason ? strlen(reason) : 0, wl = who ? strlen(who) : 0;
    if (count == 0 || count > PROTO_REBIND_MAX || !target || target_why(kind, target, tl) ||
        !line_ok(reason ? reason : "", rl, PROTO_DLV_STRING_MAX) || !line_ok(who ? who : "", wl, PROTO_DLV_STRING_MAX) ||
        dup_ent(ent, count))
        return -EINVAL;
    for (uint32_t i = 0; i < count; i++)
        if (ent[i].reserved)
            return -EINVAL;
    struct proto_rebind_hdr h = {.magic = PROTO_REBIND_MAGIC, .version = PROTO_REBIND_VERSION,
                                 .kind = (uint16_t)kind, .count = count, .target_len = (uint16_t)tl,
                                 .reason_len = (uint16_t)rl, .who_len = (uint16_t)wl};
    out->len = 0;
    buf_append(out, &h, sizeof(h));
    buf_append(out, ent, count * sizeof(*ent));
    buf_append(out, target, tl);
    buf_append(out, reason ? reason : "", rl);
    buf_append(out, who ? who : "", wl);
    return 0;
}

static int bad(struct proto_rebind *out, uint8_t *copy, const char *what, const char **why)
{
    free(copy);
    memset(out, 0, sizeof(*out));
    *why = what;
    return -EBADMSG;
}

int proto_rebind_decode(const void *run, size_t len, struct proto_rebind *out, const char **why)
{
    struct proto_rebind_hdr h;
    memset(out, 0, sizeof(*out));
    if (!run || len < sizeof(h))
        return bad(out, NULL, "run shorter than its header", why);
    uint8_t *p = proto_wire_copy(run, len);
    memcpy(&h, p, sizeof(h));
    if (h.magic != PROTO_REBIND_MAGIC || h.version != PROTO_REBIND_VERSION || h.reserved || h.reserved2)
        return bad(out, p, "bad header", why);
    if (h.count == 0 || h.count > PROTO_REBIND_MAX)
        return bad(out, p, "bad count", why);
    size_t ents = (size_t)h.count * sizeof(struct proto_rebind_ent);
    if (len != sizeof(h) + ents + h.target_len + h.reason_len + h.who_len)
        return bad(out, p, "lengths do not add up to the run", why);
    const struct proto_rebind_ent *e = (const void *)(p + sizeof(h));
    const char *t = (const char *)p + sizeof(h) + ents, *r = t + h.target_len, *w = r + h.reason_len;
    const char *tw = target_why(h.kind, t, h.target_len);
    if (tw)
        return bad(out, p, tw, why);
    if (!line_ok(r, h.reason_len, PROTO_DLV_STRING_MAX) || !line_ok(w, h.who_len, PROTO_DLV_STRING_MAX))
        return bad(out, p, "bad reason or who", why);
    for (uint32_t i = 0; i < h.count; i++)
        if (e[i].reserved)
            return bad(out, p, "reserved entry field set", why);
    if (dup_ent(e, h.count))
        return bad(out, p, "a message twice", why);
    /* one allocation: the entries (8-aligned), then the three strings */
    uint8_t *mem = xmalloc(ents + h.target_len + h.reason_len + h.who_len + 3);
    memcpy(mem, e, ents);
    char *area = (char *)mem + ents;
    out->hdr = h;
    out->ent = (const void *)mem;
    out->target = proto_wire_str(&area, t, h.target_len);
    out->reason = proto_wire_str(&area, r, h.reason_len);
    out->who = proto_wire_str(&area, w, h.who_len);
    out->mem = mem;
    free(p);
    return 0;
}

void proto_rebind_fini(struct proto_rebind *r)
{
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

bool proto_rebind_abort_check(const struct proto_rec *rec, struct proto_abort *out)
{
    struct proto_abort a;
    memcpy(&a, &rec->body.abort, sizeof(a));
    for (size_t i = 0; i < sizeof(a.reserved) / sizeof(a.reserved[0]); i++)
        if (a.reserved[i])
            return false;
    *out = a;
    return true;
}
