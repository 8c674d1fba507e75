/*
 * proto_dlv - announce batches and attempt results: encoding and strict decoding (contract in
 * proto_dlv.h)
 *
 * Each decoder copies the run once and walks only the copy, twice: the first walk checks
 * everything and sizes the result's one allocation, the second fills it. Only the first walk makes
 * decisions, and the copy cannot change in between. Run lengths are compared in size_t without
 * adding untrusted values that could wrap.
 */
#include "common/proto_dlv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "common/proto_wire.h"

/* ---- shared ---- */

/* a cursor over a private copy */
struct rd {
    const uint8_t *p;
    size_t off, len;
};

static bool rd_get(struct rd *r, void *out, size_t n)
{
    if (r->len - r->off < n)
        return false;
    memcpy(out, r->p + r->off, n);
    r->off += n;
    return true;
}

/* decode_run - copy the run once, decode the copy with dec (NULL or why it refused), drop the copy */
typedef const char *decode_fn(const uint8_t *p, size_t len, void *out);

static int decode_run(const void *run, size_t len, decode_fn *dec, void *out, const char **why)
{
    const char *w = "run shorter than its header";

    if (run) {
        uint8_t *copy = proto_wire_copy(run, len);
        w = dec(copy, len, out);
        free(copy);
    }
    if (why)
        *why = w;
    return w ? -EBADMSG : 0;
}

/* ---- announce batch ---- */

bool proto_dlv_ann_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > PROTO_DLV_STRING_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return false;
    return true;
}

void proto_dlv_ann_begin(struct buf *b)
{
    struct proto_ann_hdr h = {.magic = PROTO_ANN_MAGIC, .version = PROTO_DLV_VERSION};

    buf_reset(b);
    buf_append(b, &h, sizeof(h));
}

static bool ann_entry_ok(const struct proto_ann_entry *e)
{
    if (e->ann.n_dom == 0 || e->ann.n_dom > PROTO_ANN_MAX_DOMAINS)
        return false;
    for (uint16_t k = 0; k < e->ann.n_dom; k++) {
        const struct proto_ann_item *it = &e->item[k];
        if (!proto_dlv_ann_name_ok(it->queue, it->dom.queue_len) ||
            !proto_dlv_ann_name_ok(it->domain, it->dom.domain_len))
            return false;
    }
    return true;
}

int proto_dlv_ann_append(struct buf *b, const struct proto_ann_entry *e)
{
    static const uint8_t zero[8];
    struct proto_ann_hdr h;

    if (b->len < sizeof(h) || !ann_entry_ok(e))
        return -EINVAL;
    memcpy(&h, b->data, sizeof(h));
    if (h.magic != PROTO_ANN_MAGIC)
        return -EINVAL;
    buf_append(b, &e->ann, sizeof(e->ann));
    for (uint16_t k = 0; k < e->ann.n_dom; k++)
        buf_append(b, &e->item[k].dom, sizeof(e->item[k].dom));
    for (uint16_t k = 0; k < e->ann.n_dom; k++) {
        buf_append(b, e->item[k].queue, e->item[k].dom.queue_len);
        buf_append(b, e->item[k].domain, e->item[k].dom.domain_len);
    }
    if (b->len % 8)
        buf_append(b, zero, 8 - b->len % 8);
    h.count++;
    memcpy(b->data, &h, sizeof(h));
    return 0;
}

/* where the second walk writes; NULL during the first */
struct ann_fill {
    struct proto_ann_entry *entry;
    struct proto_ann_item *item;
    char *area;
};

/* ann_walk - NULL when the run after its header is well-formed; counts items and string bytes */
static const char *ann_walk(struct rd *r, uint32_t count, size_t *items, size_t *strs, struct ann_fill *f)
{
    for (uint32_t i = 0; i < count; i++) {
        struct proto_ann a;
        if (!rd_get(r, &a, sizeof(a)))
            return "truncated entry";
        if (a.n_dom == 0 || a.n_dom > PROTO_ANN_MAX_DOMAINS ||
            (r->len - r->off) / sizeof(struct proto_ann_dom) < a.n_dom)
            return "bad domain count";
        struct proto_ann_item *it = f ? f->item : NULL;
        if (f) {
            f->entry[i] = (struct proto_ann_entry){.ann = a, .item = it};
            f->item += a.n_dom;
        }
        size_t doms = r->off;
        r->off += (size_t)a.n_dom * sizeof(struct proto_ann_dom);
        for (uint16_t d = 0; d < a.n_dom; d++) {
            struct proto_ann_dom ad;
            memcpy(&ad, r->p + doms + (size_t)d * sizeof(ad), sizeof(ad));
            if (ad.queue_len == 0 || ad.queue_len > PROTO_DLV_STRING_MAX || ad.domain_len == 0 ||
                ad.domain_len > PROTO_DLV_STRING_MAX ||
                r->len - r->off < (size_t)ad.queue_len + ad.domain_len)
                return "bad string lengths";
            const uint8_t *qn = r->p + r->off, *dn = qn + ad.queue_len;
            r->off += (size_t)ad.queue_len + ad.domain_len;
            if (!proto_dlv_ann_name_ok((const char *)qn, ad.queue_len) ||
                !proto_dlv_ann_name_ok((const char *)dn, ad.domain_len))
                return "control characters in a name";
            *strs += (size_t)ad.queue_len + ad.domain_len + 2;
            if (f) {
                it[d].dom = ad;
                it[d].queue = proto_wire_str(&f->area, qn, ad.queue_len);
                it[d].domain = proto_wire_str(&f->area, dn, ad.domain_len);
            }
        }
        *items += a.n_dom;
        r->off = (r->off + 7) & ~(size_t)7;
        if (r->off > r->len)
            return "padding past the end";
    }
    return r->off == r->len ? NULL : "length does not add up";
}

static const char *ann_private(const uint8_t *p, size_t len, void *res)
{
    struct proto_ann_batch *out = res;
    struct proto_ann_hdr h;
    struct rd r = {p, 0, len};
    size_t items = 0, strs = 0;

    if (!rd_get(&r, &h, sizeof(h)))
        return "run shorter than its header";
    if (h.magic != PROTO_ANN_MAGIC || h.version != PROTO_DLV_VERSION)
        return "bad header";
    const char *w = ann_walk(&r, h.count, &items, &strs, NULL);
    if (w)
        return w;
    /* the walk bounded count, items and strings by the run's length: no overflow below */
    size_t esz = (size_t)h.count * sizeof(struct proto_ann_entry);
    size_t isz = items * sizeof(struct proto_ann_item);
    uint8_t *mem = xmalloc(esz + isz + strs + 1);
    struct ann_fill f = {(struct proto_ann_entry *)(void *)mem, (struct proto_ann_item *)(void *)(mem + esz),
                         (char *)mem + esz + isz};
    r.off = sizeof(h);
    items = strs = 0;
    (void)ann_walk(&r, h.count, &items, &strs, &f); /* same private bytes, same verdict */
    out->count = h.count;
    out->entry = h.count ? f.entry : NULL;
    out->_mem = mem;
    return NULL;
}

int proto_dlv_ann_decode(const void *run, size_t len, struct proto_ann_batch *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    return decode_run(run, len, ann_private, out, why);
}

void proto_dlv_ann_fini(struct proto_ann_batch *b)
{
    free(b->_mem);
    memset(b, 0, sizeof(*b));
}

/* ---- attempt result ---- */

/* att_rcpt_why - NULL when one recipient entry is acceptable */
static const char *att_rcpt_why(const struct proto_attempt_rcpt *r)
{
    if (r->text_len > PROTO_DLV_STRING_MAX)
        return "response text too long";
    if (r->outcome < PROTO_OUT_DELIVERED || r->outcome > PROTO_OUT_BOUNCE)
        return "unknown outcome";
    if (r->command > PROTO_CMD_DATA)
        return "unknown command";
    if (r->enh_class != 0 && r->enh_class != 2 && r->enh_class != 4 && r->enh_class != 5)
        return "bad enhanced status class";
    if (r->code != 0 && (r->code < 200 || r->code > 599))
        return "bad reply code";
    return NULL;
}

/* att_rcpts_why - NULL when every entry is acceptable and no index repeats */
static const char *att_rcpts_why(const struct proto_attempt_rcpt *rcpt, uint16_t n)
{
    for (uint16_t i = 0; i < n; i++) {
        const char *w = att_rcpt_why(&rcpt[i]);
        if (w)
            return w;
        /* one result per recipient: a repeated index would count an attempt twice */
        for (uint16_t j = 0; j < i; j++)
            if (rcpt[j].index == rcpt[i].index)
                return "recipient index repeated";
    }
    return NULL;
}

size_t proto_dlv_attempt_size(const struct proto_attempt *a)
{
    size_t n = sizeof(struct proto_attempt_hdr) + (size_t)a->hdr.n_rcpt * sizeof(struct proto_attempt_rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        n += a->hdr.len[i];
    for (uint16_t i = 0; i < a->hdr.n_rcpt; i++)
        n += a->rcpt[i].text_len;
    return n;
}

/* put_line - copy with CR, LF and NUL written as spaces */
static uint8_t *put_line(uint8_t *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') ? ' ' : (uint8_t)s[i];
    return p + n;
}

int proto_dlv_attempt_encode(const struct proto_attempt *a, void *dst, size_t len)
{
    struct proto_attempt_hdr h = a->hdr;
    uint8_t *p = dst;

    if (h.n_rcpt == 0 || len != proto_dlv_attempt_size(a) || att_rcpts_why(a->rcpt, h.n_rcpt))
        return -EINVAL;
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        if (h.len[i] > PROTO_DLV_STRING_MAX)
            return -EINVAL;
    h.magic = PROTO_ATT_MAGIC;
    h.version = PROTO_DLV_VERSION;
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    memcpy(p, a->rcpt, (size_t)h.n_rcpt * sizeof(*a->rcpt));
    p += (size_t)h.n_rcpt * sizeof(*a->rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        p = put_line(p, a->str[i], h.len[i]);
    for (uint16_t i = 0; i < h.n_rcpt; i++)
        p = put_line(p, a->text[i], a->rcpt[i].text_len);
    return 0;
}

static bool line_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return false;
    return true;
}

static const char *att_private(const uint8_t *p, size_t len, void *res)
{
    struct proto_attempt *out = res;
    struct proto_attempt_hdr h;
    struct rd r = {p, 0, len};

    if (!rd_get(&r, &h, sizeof(h)))
        return "run shorter than its header";
    if (h.magic != PROTO_ATT_MAGIC || h.version != PROTO_DLV_VERSION)
        return "bad magic or version";
    if (h.n_rcpt == 0)
        return "no recipients";
    size_t rsz = (size_t)h.n_rcpt * sizeof(struct proto_attempt_rcpt);
    uint64_t total = sizeof(h) + rsz;
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        if (h.len[i] > PROTO_DLV_STRING_MAX)
            return "header string too long";
        total += h.len[i];
    }
    if (total > len)
        return "lengths exceed the run";
    /* the entries, aligned, at the head of the result: checked there, kept there */
    size_t strs = len - sizeof(h) - rsz;
    uint8_t *mem = xmalloc(rsz + (size_t)h.n_rcpt * sizeof(char *) + strs + PROTO_ATT_STRINGS + h.n_rcpt);
    struct proto_attempt_rcpt *rcpt = (struct proto_attempt_rcpt *)(void *)mem;
    const char **text = (const char **)(void *)(mem + rsz);
    char *area = (char *)(mem + rsz + (size_t)h.n_rcpt * sizeof(char *));
    rd_get(&r, rcpt, rsz);
    const char *w = att_rcpts_why(rcpt, h.n_rcpt);
    for (uint16_t i = 0; i < h.n_rcpt && !w; i++)
        total += rcpt[i].text_len;
    if (!w && total != len)
        w = "lengths do not add up to the run";
    if (!w && !line_ok(p + r.off, len - r.off))
        w = "NUL, CR or LF in a string";
    if (w) {
        free(mem);
        return w;
    }
    out->hdr = h;
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        out->str[i] = proto_wire_str(&area, p + r.off, h.len[i]);
        r.off += h.len[i];
    }
    for (uint16_t i = 0; i < h.n_rcpt; i++) {
        text[i] = proto_wire_str(&area, p + r.off, rcpt[i].text_len);
        r.off += rcpt[i].text_len;
    }
    out->rcpt = rcpt;
    out->text = text;
    out->_mem = mem;
    return NULL;
}

int proto_dlv_attempt_decode(const void *run, size_t len, struct proto_attempt *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    return decode_run(run, len, att_private, out, why);
}

void proto_dlv_attempt_fini(struct proto_attempt *a)
{
    free(a->_mem);
    memset(a, 0, sizeof(*a));
}
