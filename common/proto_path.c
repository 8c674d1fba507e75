/*
 * proto_path - a path configuration run: encoding and strict decoding (contract in proto_path.h)
 *
 * The decoder copies the run once; the header is checked first, then every length against what is
 * left of the copy (in size_t, never adding untrusted values that could wrap), then every string;
 * only then is the result's one allocation made and filled from the same copy.
 */
#include "common/proto_path.h"

#include "common/mta_sts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "common/proto_wire.h"

bool proto_path_cidr_ok(const char *s, size_t n)
{
    char addr[PROTO_PATH_CIDR_MAX + 1];
    uint8_t bin[16];
    size_t alen = n;
    unsigned prefix = 0;
    bool has_prefix = false;

    if (n == 0 || n > PROTO_PATH_CIDR_MAX)
        return false;
    /* only what an address and a prefix are made of: a NUL would end the text inet_pton reads */
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr("0123456789abcdefABCDEF.:/", s[i]))
            return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/') {
            alen = i;
            has_prefix = true;
            break;
        }
    if (has_prefix) {
        size_t digits = n - alen - 1;
        if (digits == 0 || digits > 3)
            return false;
        for (size_t i = alen + 1; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return false;
            prefix = prefix * 10 + (unsigned)(s[i] - '0');
        }
    }
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, bin) == 1)
        return prefix <= 32;
    if (inet_pton(AF_INET6, addr, bin) == 1)
        return prefix <= 128;
    return false;
}

const char *proto_path_tls_name(unsigned tls)
{
    static const char *const names[] = {"Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure",
                                        "Disabled"};
    return tls < sizeof(names) / sizeof(names[0]) ? names[tls] : "?";
}

static uint64_t clamp_ms(uint64_t ms)
{
    return ms < 1 ? 1 : ms > PROTO_PATH_TIMEOUT_MAX_MS ? PROTO_PATH_TIMEOUT_MAX_MS : ms;
}

void proto_path_node_defaults(struct proto_path *out, uint64_t connect_ms, uint64_t banner_ms, uint64_t command_ms,
                              uint64_t data_ms, uint64_t idle_ms, uint32_t port, uint32_t max_deliveries)
{
    memset(out, 0, sizeof(*out));
    struct proto_path_hdr *h = &out->hdr;
    h->connect_timeout_ms = clamp_ms(connect_ms);
    h->banner_timeout_ms = clamp_ms(banner_ms);
    h->ehlo_timeout_ms = h->mail_from_timeout_ms = h->rcpt_to_timeout_ms = h->data_timeout_ms = h->rset_timeout_ms =
        clamp_ms(command_ms);
    h->data_dot_timeout_ms = clamp_ms(data_ms);
    h->idle_timeout_ms = clamp_ms(idle_ms);
    h->smtp_port = port >= 1 && port <= 65535 ? (uint16_t)port : 25;
    /* no node key: every recipient of an attempt in one transaction, as before paths had options */
    h->max_recipients_per_batch = PROTO_PATH_RCPTS_MAX;
    h->max_deliveries_per_connection = max_deliveries ? max_deliveries : 1;
    h->enable_tls = PROTO_PATH_TLS_OPPORTUNISTIC;
    out->ehlo_domain = "";
    out->site = "";
}

/* text_ok - at most max bytes of printable ASCII without spaces (an EHLO name, a site name) */
static bool text_ok(const uint8_t *s, size_t n, size_t max)
{
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

static bool timeout_ok(uint64_t ms)
{
    return ms >= 1 && ms <= PROTO_PATH_TIMEOUT_MAX_MS;
}

/* hdr_why - NULL when the header's own values are acceptable (lengths are checked by the caller) */
static const char *hdr_why(const struct proto_path_hdr *h)
{
    if (h->magic != PROTO_PATH_MAGIC || h->version != PROTO_PATH_VERSION)
        return "bad magic or version";
    if (h->reserved3)
        return "reserved field not zero";
    if (h->site_len > PROTO_PATH_SITE_MAX)
        return "site name too long";
    if (h->path == 0 || h->path > PROTO_PATH_ID_MAX)
        return "path id out of range";
    const uint64_t t[] = {h->connect_timeout_ms, h->banner_timeout_ms,   h->ehlo_timeout_ms,
                          h->mail_from_timeout_ms, h->rcpt_to_timeout_ms, h->data_timeout_ms,
                          h->data_dot_timeout_ms,  h->rset_timeout_ms,    h->idle_timeout_ms};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!timeout_ok(t[i]))
            return "timeout out of range";
    if (h->remember_broken_tls_ms > PROTO_PATH_TIMEOUT_MAX_MS)
        return "remember_broken_tls out of range";
    if (h->smtp_port == 0)
        return "smtp_port 0";
    if (h->max_recipients_per_batch == 0 || h->max_recipients_per_batch > PROTO_PATH_RCPTS_MAX)
        return "max_recipients_per_batch out of range";
    if (h->max_deliveries_per_connection == 0)
        return "max_deliveries_per_connection 0";
    if (h->enable_tls > PROTO_PATH_TLS_DISABLED)
        return "unknown enable_tls";
    if (h->ehlo_len > PROTO_PATH_EHLO_MAX)
        return "ehlo domain too long";
    if (h->n_prohibited > PROTO_PATH_HOSTS_MAX || h->n_skip > PROTO_PATH_HOSTS_MAX)
        return "too many hosts";
    if (h->mta_sts > MTA_STS_MODE_ENFORCE)
        return "unknown mta_sts mode";
    if (h->n_sts_mx > MTA_STS_MX_MAX)
        return "too many mta_sts mx patterns";
    return NULL;
}

static size_t n_texts(const struct proto_path_hdr *h)
{
    return (size_t)h->n_prohibited + h->n_skip + h->n_sts_mx;
}

static const char *host_at(const struct proto_path *p, size_t i)
{
    size_t np = p->hdr.n_prohibited, ns = p->hdr.n_skip;
    return i < np ? p->prohibited[i] : i < np + ns ? p->skip[i - np] : p->sts_mx[i - np - ns];
}

/* pattern_ok - an MTA-STS mx pattern as the scheduler sends it: lowercase LDH, dots, optional "*." */
static bool pattern_ok(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > MTA_STS_PATTERN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return true;
}

/* text_at_ok - text i of the lists: a CIDR for the hosts lists, a pattern for the MTA-STS list */
static bool text_at_ok(const struct proto_path_hdr *h, size_t i, const char *s, size_t n)
{
    return i < (size_t)h->n_prohibited + h->n_skip ? proto_path_cidr_ok(s, n) : pattern_ok(s, n);
}

size_t proto_path_size(const struct proto_path *p)
{
    size_t n = sizeof(struct proto_path_hdr) + p->hdr.ehlo_len + p->hdr.site_len;
    size_t hosts = n_texts(&p->hdr);
    n += hosts;
    for (size_t i = 0; i < hosts; i++)
        n += strlen(host_at(p, i));
    return n;
}

int proto_path_encode(const struct proto_path *p, void *dst, size_t len)
{
    struct proto_path_hdr h = p->hdr;
    uint8_t *o = dst;

    h.magic = PROTO_PATH_MAGIC;
    h.version = PROTO_PATH_VERSION;
    if (hdr_why(&h) || len != proto_path_size(p))
        return -EINVAL;
    if (!text_ok((const uint8_t *)(h.ehlo_len ? p->ehlo_domain : ""), h.ehlo_len, PROTO_PATH_EHLO_MAX))
        return -EINVAL;
    if (!text_ok((const uint8_t *)(h.site_len ? p->site : ""), h.site_len, PROTO_PATH_SITE_MAX))
        return -EINVAL;
    size_t hosts = n_texts(&h);
    for (size_t i = 0; i < hosts; i++)
        if (strlen(host_at(p, i)) > 255 || !text_at_ok(&h, i, host_at(p, i), strlen(host_at(p, i))))
            return -EINVAL;
    memcpy(o, &h, sizeof(h));
    o += sizeof(h);
    if (h.ehlo_len)
        memcpy(o, p->ehlo_domain, h.ehlo_len);
    o += h.ehlo_len;
    if (h.site_len)
        memcpy(o, p->site, h.site_len);
    o += h.site_len;
    for (size_t i = 0; i < hosts; i++)
        *o++ = (uint8_t)strlen(host_at(p, i));
    for (size_t i = 0; i < hosts; i++) {
        size_t n = strlen(host_at(p, i));
        memcpy(o, host_at(p, i), n);
        o += n;
    }
    return 0;
}

/* path_private - NULL and *out filled, or why the private copy p[0..len) is refused */
static const char *path_private(const uint8_t *p, size_t len, struct proto_path *out)
{
    struct proto_path_hdr h;

    if (len < sizeof(h))
        return "run shorter than its header";
    memcpy(&h, p, sizeof(h));
    const char *w = hdr_why(&h);
    if (w)
        return w;
    size_t off = sizeof(h), hosts = n_texts(&h);
    if (len - off < (size_t)h.ehlo_len + h.site_len + hosts)
        return "lengths exceed the run";
    if (!text_ok(p + off, h.ehlo_len, PROTO_PATH_EHLO_MAX))
        return "bad ehlo domain";
    if (!text_ok(p + off + h.ehlo_len, h.site_len, PROTO_PATH_SITE_MAX))
        return "bad site name";
    const uint8_t *lens = p + off + h.ehlo_len + h.site_len;
    size_t strs = 0;
    off += h.ehlo_len + h.site_len + hosts;
    for (size_t i = 0; i < hosts; i++) {
        if (len - off - strs < lens[i])
            return "lengths exceed the run";
        if (!text_at_ok(&h, i, (const char *)p + off + strs, lens[i]))
            return i < (size_t)h.n_prohibited + h.n_skip ? "bad CIDR" : "bad mta_sts mx pattern";
        strs += lens[i];
    }
    if (off + strs != len)
        return "lengths do not add up to the run";
    /* pointers, then NUL-terminated strings: all bounded by the run's length above */
    size_t psz = hosts * sizeof(char *);
    uint8_t *mem = xmalloc(psz + h.ehlo_len + 1 + h.site_len + 1 + strs + hosts);
    const char **ptrs = (const char **)(void *)mem;
    char *area = (char *)mem + psz;
    out->hdr = h;
    out->ehlo_domain = proto_wire_str(&area, p + sizeof(h), h.ehlo_len);
    out->site = proto_wire_str(&area, p + sizeof(h) + h.ehlo_len, h.site_len);
    for (size_t i = 0; i < hosts; i++) {
        ptrs[i] = proto_wire_str(&area, p + off, lens[i]);
        off += lens[i];
    }
    out->prohibited = ptrs;
    out->skip = ptrs + h.n_prohibited;
    out->sts_mx = ptrs + h.n_prohibited + h.n_skip;
    out->_mem = mem;
    return NULL;
}

int proto_path_decode(const void *run, size_t len, struct proto_path *out, const char **why)
{
    const char *w = "no run";

    memset(out, 0, sizeof(*out));
    if (run) {
        uint8_t *copy = proto_wire_copy(run, len);
        w = path_private(copy, len, out);
        free(copy);
    }
    if (why)
        *why = w;
    return w ? -EBADMSG : 0;
}

void proto_path_fini(struct proto_path *p)
{
    free(p->_mem);
    memset(p, 0, sizeof(*p));
}
