/*
 * proto_tsa - TSA response and event runs: encoding and strict decoding (contract in proto_tsa.h)
 *
 * Both runs are a fixed header followed by strings whose lengths the header holds. The decoders copy
 * the run once (proto_wire_copy), check the copy whole in a first walk that also sizes the result's one
 * allocation, and fill it in a second walk over the same private bytes.
 */
#include "common/proto_tsa.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "common/proto_wire.h"

static bool line_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return false;
    return true;
}

/* put_line - append with CR, LF and NUL written as spaces (a string is one line) */
static void put_line(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') ? ' ' : s[i];
        buf_append(b, &c, 1);
    }
}

static size_t cut(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n > max ? max : n;
}

/* copy_run - the decoder's one read: a private copy of the run with its header in *h; NULL (and *why)
 * when the run is shorter than the header */
static uint8_t *copy_run(const void *run, size_t len, void *h, size_t hlen, const char **why)
{
    if (!run || len < hlen) {
        *why = "run shorter than its header";
        return NULL;
    }
    uint8_t *p = proto_wire_copy(run, len);
    memcpy(h, p, hlen);
    return p;
}

/* ---- response ---- */

static size_t resp_max(int i)
{
    return i == PROTO_TSA_R_TEXT ? PROTO_TSA_TEXT_MAX : PROTO_TSA_STRING_MAX;
}

static const char *resp_hdr_why(const struct proto_tsa_resp_hdr *h)
{
    if (h->kind != PROTO_TSA_TRANSIENT && h->kind != PROTO_TSA_BOUNCE)
        return "unknown kind";
    if (h->len[PROTO_TSA_R_DOMAIN] == 0)
        return "no domain";
    for (int i = 0; i < PROTO_TSA_R_STRINGS; i++)
        if (h->len[i] > resp_max(i))
            return "string too long";
    return NULL;
}

void proto_tsa_resp_set(struct proto_tsa_resp *r, enum proto_tsa_resp_str i, const char *s)
{
    r->hdr.len[i] = (uint16_t)cut(s, resp_max(i));
    r->str[i] = s ? s : "";
}

int proto_tsa_resp_encode(const struct proto_tsa_resp *r, struct buf *b)
{
    struct proto_tsa_resp_hdr h = r->hdr;

    if (resp_hdr_why(&h))
        return -EINVAL;
    h.magic = PROTO_TSA_RESP_MAGIC;
    h.version = PROTO_TSA_VERSION;
    h.reserved = 0;
    buf_reset(b);
    buf_append(b, &h, sizeof(h));
    for (int i = 0; i < PROTO_TSA_R_STRINGS; i++)
        put_line(b, r->str[i], h.len[i]);
    return 0;
}

int proto_tsa_resp_decode(const void *run, size_t len, struct proto_tsa_resp *out, const char **why)
{
    struct proto_tsa_resp_hdr h;
    const char *w = NULL;

    memset(out, 0, sizeof(*out));
    uint8_t *p = copy_run(run, len, &h, sizeof(h), why);
    if (!p)
        return -EBADMSG;
    size_t total = sizeof(h);
    for (int i = 0; i < PROTO_TSA_R_STRINGS; i++)
        total += h.len[i];
    if (h.magic != PROTO_TSA_RESP_MAGIC || h.version != PROTO_TSA_VERSION)
        w = "bad magic or version";
    else if ((w = resp_hdr_why(&h)) != NULL)
        ;
    else if (total != len)
        w = "lengths do not add up to the run";
    else if (!line_ok(p + sizeof(h), len - sizeof(h)))
        w = "NUL, CR or LF in a string";
    if (w) {
        free(p);
        *why = w;
        return -EBADMSG;
    }
    char *area = xmalloc(len - sizeof(h) + PROTO_TSA_R_STRINGS);
    out->_mem = area;
    out->hdr = h;
    size_t off = sizeof(h);
    for (int i = 0; i < PROTO_TSA_R_STRINGS; i++) {
        out->str[i] = proto_wire_str(&area, p + off, h.len[i]);
        off += h.len[i];
    }
    free(p);
    return 0;
}

void proto_tsa_resp_fini(struct proto_tsa_resp *r)
{
    free(r->_mem);
    memset(r, 0, sizeof(*r));
}

/* ---- events ---- */

static bool set_config(uint16_t action)
{
    return action == 1 || action == 2; /* SHAPING_ACTION_SET_CONFIG, SHAPING_ACTION_SET_DOMAIN_CONFIG */
}

static const char *event_hdr_why(const struct proto_tsa_event_hdr *h)
{
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        if (h->len[i] > (i == PROTO_TSA_E_RESPONSE ? PROTO_TSA_TEXT_MAX : PROTO_TSA_STRING_MAX))
            return "string too long";
    if (h->action > PROTO_TSA_ACTION_MAX)
        return "unknown action";
    if (h->expiry_ms <= h->start_ms || h->start_ms < 0)
        return "expiry not after start";
    if (h->len[PROTO_TSA_E_DOMAIN] == 0 && h->len[PROTO_TSA_E_SITE] == 0)
        return "neither domain nor site";
    bool named = h->len[PROTO_TSA_E_NAME] > 0 && h->len[PROTO_TSA_E_VALUE] > 0;
    bool none = h->len[PROTO_TSA_E_NAME] == 0 && h->len[PROTO_TSA_E_VALUE] == 0;
    if (set_config(h->action) ? !named : !none)
        return "option name and value do not fit the action";
    return NULL;
}

void proto_tsa_event_set(struct proto_tsa_event *e, enum proto_tsa_event_str i, const char *s)
{
    e->hdr.len[i] = (uint16_t)cut(s, i == PROTO_TSA_E_RESPONSE ? PROTO_TSA_TEXT_MAX : PROTO_TSA_STRING_MAX);
    e->str[i] = s ? s : "";
}

void proto_tsa_events_begin(struct buf *b)
{
    struct proto_tsa_events_hdr h = {.magic = PROTO_TSA_EVENTS_MAGIC, .version = PROTO_TSA_VERSION};

    buf_reset(b);
    buf_append(b, &h, sizeof(h));
}

uint32_t proto_tsa_events_count(const struct buf *b)
{
    struct proto_tsa_events_hdr h;

    if (b->len < sizeof(h))
        return 0;
    memcpy(&h, b->data, sizeof(h));
    return h.count;
}

int proto_tsa_events_append(struct buf *b, const struct proto_tsa_event *e)
{
    static const uint8_t zero[8];
    struct proto_tsa_events_hdr h;

    if (b->len < sizeof(h) || event_hdr_why(&e->hdr))
        return -EINVAL;
    memcpy(&h, b->data, sizeof(h));
    if (h.magic != PROTO_TSA_EVENTS_MAGIC || h.count >= PROTO_TSA_EVENTS_MAX)
        return -EINVAL;
    buf_append(b, &e->hdr, sizeof(e->hdr));
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        put_line(b, e->str[i], e->hdr.len[i]);
    if (b->len % 8)
        buf_append(b, zero, 8 - b->len % 8);
    h.count++;
    memcpy(b->data, &h, sizeof(h));
    return 0;
}

/* events_walk - NULL when the events after the header are well-formed; sizes the strings; fills when ev */
static const char *events_walk(const uint8_t *p, size_t len, uint32_t count, size_t *strs,
                               struct proto_tsa_event *ev, char **area)
{
    size_t off = sizeof(struct proto_tsa_events_hdr);

    for (uint32_t k = 0; k < count; k++) {
        struct proto_tsa_event_hdr h;
        if (len - off < sizeof(h))
            return "truncated event";
        memcpy(&h, p + off, sizeof(h));
        off += sizeof(h);
        const char *w = event_hdr_why(&h);
        if (w)
            return w;
        size_t n = 0;
        for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
            n += h.len[i];
        if (len - off < n)
            return "strings past the end";
        if (!line_ok(p + off, n))
            return "NUL, CR or LF in a string";
        *strs += n + PROTO_TSA_E_STRINGS;
        if (ev) {
            ev[k].hdr = h;
            for (int i = 0; i < PROTO_TSA_E_STRINGS; i++) {
                ev[k].str[i] = proto_wire_str(area, p + off, h.len[i]);
                off += h.len[i];
            }
        } else {
            off += n;
        }
        size_t pad = (8 - off % 8) % 8;
        if (len - off < pad)
            return "padding past the end";
        for (size_t i = 0; i < pad; i++)
            if (p[off + i] != 0)
                return "padding not zero";
        off += pad;
    }
    return off == len ? NULL : "length does not add up";
}

int proto_tsa_events_decode(const void *run, size_t len, struct proto_tsa_events *out, const char **why)
{
    struct proto_tsa_events_hdr h;
    size_t strs = 0;
    const char *w = NULL;

    memset(out, 0, sizeof(*out));
    uint8_t *p = copy_run(run, len, &h, sizeof(h), why);
    if (!p)
        return -EBADMSG;
    if (h.magic != PROTO_TSA_EVENTS_MAGIC || h.version != PROTO_TSA_VERSION)
        w = "bad magic or version";
    else if (h.count > PROTO_TSA_EVENTS_MAX)
        w = "too many events";
    else
        w = events_walk(p, len, h.count, &strs, NULL, NULL);
    if (w) {
        free(p);
        *why = w;
        return -EBADMSG;
    }
    size_t esz = (size_t)h.count * sizeof(struct proto_tsa_event);
    uint8_t *mem = xmalloc(esz + strs + 1);
    char *area = (char *)mem + esz;
    out->ev = h.count ? (struct proto_tsa_event *)(void *)mem : NULL;
    strs = 0;
    (void)events_walk(p, len, h.count, &strs, (struct proto_tsa_event *)(void *)mem, &area);
    out->count = h.count;
    out->_mem = mem;
    free(p);
    return 0;
}

void proto_tsa_events_fini(struct proto_tsa_events *e)
{
    free(e->_mem);
    memset(e, 0, sizeof(*e));
}
