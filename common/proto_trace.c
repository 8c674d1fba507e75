/*
 * proto_trace - the SMTP trace event codec and filters (contract in proto_trace.h)
 */
#include "common/proto_trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/utf8.h"

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_addr(uint8_t *p, const struct proto_trace_addr *a)
{
    p[0] = a->family;
    p[1] = 0;
    put16(p + 2, a->family ? a->port : 0);
    memset(p + 4, 0, 16);
    if (a->family)
        memcpy(p + 4, a->addr, a->family == 4 ? 4 : 16);
}

static bool get_addr(const uint8_t *p, struct proto_trace_addr *a)
{
    *a = (struct proto_trace_addr){.family = p[0], .port = get16(p + 2)};
    if (p[1] != 0 || (a->family != 0 && a->family != 4 && a->family != 6))
        return false;
    size_t used = a->family == 0 ? 0 : a->family == 4 ? 4 : 16;
    for (size_t i = used; i < 16; i++)
        if (p[4 + i])
            return false;
    if (a->family == 0 && a->port)
        return false;
    memcpy(a->addr, p + 4, used);
    return true;
}

bool proto_trace_name_ok(const char *s, size_t n)
{
    if (n > PROTO_TRACE_NAME_MAX || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

int proto_trace_encode(const struct proto_trace_event *ev, uint8_t *out, size_t cap)
{
    size_t dl = strlen(ev->domain), sl = strlen(ev->site), ol = strlen(ev->source);
    if ((unsigned)ev->side >= PROTO_TRACE_SIDE__MAX || (unsigned)ev->dir >= PROTO_TRACE_DIR__MAX ||
        ev->text_len > PROTO_TRACE_TEXT_MAX || dl > PROTO_TRACE_NAME_MAX || sl > PROTO_TRACE_NAME_MAX ||
        ol > PROTO_TRACE_NAME_MAX)
        return -EINVAL;
    if (ev->side == PROTO_TRACE_SERVER)
        dl = sl = ol = 0;
    size_t total = PROTO_TRACE_HEAD + ev->text_len + dl + sl + ol;
    if (total > cap)
        return -EMSGSIZE;
    put16(out, PROTO_TRACE_MAGIC);
    out[2] = PROTO_TRACE_VERSION;
    out[3] = (uint8_t)ev->side;
    out[4] = (uint8_t)ev->dir;
    out[5] = ev->truncated ? PROTO_TRACE_F_TRUNCATED : 0;
    put16(out + 6, (uint16_t)ev->text_len);
    put64(out + 8, ev->time_ns);
    put64(out + 16, ev->session);
    put_addr(out + 24, &ev->peer);
    put_addr(out + 44, &ev->local);
    out[64] = (uint8_t)dl;
    out[65] = (uint8_t)sl;
    out[66] = (uint8_t)ol;
    out[67] = 0;
    uint8_t *p = out + PROTO_TRACE_HEAD;
    memcpy(p, ev->text, ev->text_len);
    p += ev->text_len;
    memcpy(p, ev->domain, dl);
    p += dl;
    memcpy(p, ev->site, sl);
    p += sl;
    memcpy(p, ev->source, ol);
    return (int)total;
}

#define BAD(msg)                                                                                                       \
    do {                                                                                                               \
        *why = (msg);                                                                                                  \
        return -EBADMSG;                                                                                               \
    } while (0)

/* get_name - n octets at p as a name into out (PROTO_TRACE_NAME_MAX + 1) */
static bool get_name(const uint8_t *p, size_t n, char *out)
{
    if (!proto_trace_name_ok((const char *)p, n))
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

int proto_trace_decode(const uint8_t *in, size_t len, struct proto_trace_event *ev, const char **why)
{
    memset(ev, 0, sizeof(*ev));
    if (len < PROTO_TRACE_HEAD)
        BAD("shorter than the record head");
    if (get16(in) != PROTO_TRACE_MAGIC || in[2] != PROTO_TRACE_VERSION)
        BAD("not a trace record of this version");
    if (in[3] >= PROTO_TRACE_SIDE__MAX || in[4] >= PROTO_TRACE_DIR__MAX || (in[5] & ~PROTO_TRACE_F_TRUNCATED))
        BAD("side, direction or flags out of range");
    size_t tl = get16(in + 6), dl = in[64], sl = in[65], ol = in[66];
    if (tl > PROTO_TRACE_TEXT_MAX)
        BAD("text longer than its maximum");
    if (in[67] != 0)
        BAD("reserved octet set");
    if (len != PROTO_TRACE_HEAD + tl + dl + sl + ol)
        BAD("length does not match its fields");
    ev->side = (enum proto_trace_side)in[3];
    ev->dir = (enum proto_trace_dir)in[4];
    ev->truncated = in[5] & PROTO_TRACE_F_TRUNCATED;
    ev->time_ns = get64(in + 8);
    ev->session = get64(in + 16);
    if (!get_addr(in + 24, &ev->peer) || !get_addr(in + 44, &ev->local))
        BAD("bad address");
    if (ev->side == PROTO_TRACE_SERVER && (dl || sl || ol))
        BAD("names on a server event");
    const uint8_t *p = in + PROTO_TRACE_HEAD;
    memcpy(ev->text, p, tl);
    ev->text[tl] = '\0';
    ev->text_len = tl;
    p += tl;
    if (!get_name(p, dl, ev->domain) || !get_name(p + dl, sl, ev->site) || !get_name(p + dl + sl, ol, ev->source))
        BAD("a name is not UTF-8 without spaces or controls");
    return 0;
}

void proto_trace_addr_set(struct proto_trace_addr *a, const struct sockaddr *sa)
{
    *a = (struct proto_trace_addr){0};
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        a->family = 4;
        a->port = ntohs(s4->sin_port);
        memcpy(a->addr, &s4->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        a->family = 6;
        a->port = ntohs(s6->sin6_port);
        memcpy(a->addr, &s6->sin6_addr, 16);
    }
}

void proto_trace_addr_format(const struct proto_trace_addr *a, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->family == 4 && inet_ntop(AF_INET, a->addr, ip, sizeof(ip)))
        snprintf(out, len, "%s:%u", ip, a->port);
    else if (a->family == 6 && inet_ntop(AF_INET6, a->addr, ip, sizeof(ip)))
        snprintf(out, len, "[%s]:%u", ip, a->port);
    else
        snprintf(out, len, "-");
}

void proto_trace_set_text(struct proto_trace_event *ev, const char *text, size_t len)
{
    ev->truncated = len > PROTO_TRACE_TEXT_MAX;
    ev->text_len = ev->truncated ? PROTO_TRACE_TEXT_MAX : len;
    memcpy(ev->text, text, ev->text_len);
    ev->text[ev->text_len] = '\0';
}

int proto_trace_filter_cidr(struct proto_trace_filter *f, const char *text)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, text, n);
    ip[n] = '\0';
    memset(f->net, 0, sizeof(f->net));
    unsigned max;
    if (inet_pton(AF_INET, ip, f->net) == 1) {
        f->family = 4;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, f->net) == 1) {
        f->family = 6;
        max = 128;
    } else {
        return -EINVAL;
    }
    f->prefix = max;
    if (slash) {
        const char *d = slash + 1;
        unsigned v = 0;
        if (!*d || strlen(d) > 3)
            return -EINVAL;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(*d - '0');
        }
        if (v > max)
            return -EINVAL;
        f->prefix = v;
    }
    return 0;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool proto_trace_filter_match(const struct proto_trace_filter *f, const struct proto_trace_event *ev)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (f->side != ev->side)
        return false;
    if (f->side == PROTO_TRACE_CLIENT)
        return (!f->domain[0] || strcasecmp(f->domain, ev->domain) == 0) &&
               (!f->site[0] || strcasecmp(f->site, ev->site) == 0) &&
               (!f->source[0] || strcmp(f->source, ev->source) == 0);
    if (f->family == 0)
        return true;
    const uint8_t *a = ev->peer.addr;
    if (f->family == 4 && ev->peer.family == 6 && memcmp(a, mapped, 12) == 0)
        a += 12; /* an IPv4 client of a dual-stack listener */
    else if (f->family != ev->peer.family)
        return false;
    return prefix_eq(a, f->net, f->prefix);
}

uint32_t proto_trace_name_hash(const char *name, bool fold_case)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        unsigned char c = fold_case && *p >= 'A' && *p <= 'Z' ? (unsigned char)(*p + 32) : *p;
        h = (h ^ c) * 16777619u;
    }
    return h ? h : 1;
}

void proto_trace_shm_filter_set(struct proto_trace_shm_filter *out, const struct proto_trace_filter *f)
{
    *out = (struct proto_trace_shm_filter){.side = (uint8_t)f->side};
    if (f->side == PROTO_TRACE_SERVER) {
        out->family = f->family;
        out->prefix = (uint8_t)f->prefix;
        memcpy(out->net, f->net, sizeof(out->net));
        return;
    }
    out->domain_hash = f->domain[0] ? proto_trace_name_hash(f->domain, true) : 0;
    out->site_hash = f->site[0] ? proto_trace_name_hash(f->site, true) : 0;
    out->source_hash = f->source[0] ? proto_trace_name_hash(f->source, false) : 0;
}

/* shm_slot_wants - one published slot against an event; a slot that makes no sense wants everything */
static bool shm_slot_wants(const struct proto_trace_shm_filter *s, const struct proto_trace_event *ev)
{
    if (s->side != (uint8_t)ev->side)
        return false;
    if (ev->side == PROTO_TRACE_CLIENT)
        return (!s->domain_hash || s->domain_hash == proto_trace_name_hash(ev->domain, true)) &&
               (!s->site_hash || s->site_hash == proto_trace_name_hash(ev->site, true)) &&
               (!s->source_hash || s->source_hash == proto_trace_name_hash(ev->source, false));
    if ((s->family != 4 && s->family != 6) || s->prefix > (s->family == 4 ? 32 : 128))
        return true;
    struct proto_trace_filter f = {.side = PROTO_TRACE_SERVER, .family = s->family, .prefix = s->prefix};
    memcpy(f.net, s->net, sizeof(f.net));
    return proto_trace_filter_match(&f, ev);
}

bool proto_trace_shm_wanted(const struct proto_trace_shm_filter *fs, size_t n, const struct proto_trace_event *ev)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i].side != PROTO_TRACE_SHM_EMPTY && shm_slot_wants(&fs[i], ev))
            return true;
    return false;
}

const char *proto_trace_dir_text(enum proto_trace_dir d)
{
    return d == PROTO_TRACE_IN ? "<-" : d == PROTO_TRACE_OUT ? "->" : "--";
}
