/*
 * proto_path_test - path configuration runs: round trips, every malformed case refused, hostile bytes
 *
 * Good configurations round-trip value by value and re-encode to the same bytes. Each malformed
 * case is built by mutating a good run (header field, string, length) and must be refused by the
 * decoder with a reason and an empty result; the encoder must refuse the same values. Every
 * truncation and extension is refused; every single-byte flip either is refused or decodes to
 * something that re-encodes to the flipped bytes exactly (the encoding is canonical).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mta_sts.h"
#include "common/proto_path.h"
#include "tests/lib/check.h"

static const char *hosts_a[] = {"10.0.0.0/8", "192.168.1.1", "::1", "2001:db8::/32"};
static const char *hosts_b[] = {"::/0", "0.0.0.0/0"};
static char long_ehlo[PROTO_PATH_EHLO_MAX + 1];
static const char *sts_mx[] = {"mx1.example.com", "*.mail.example.net"};

static struct proto_path base(void)
{
    struct proto_path p = {0};
    p.hdr.path = 7;
    p.hdr.generation = 3;
    p.hdr.connect_timeout_ms = 60000;
    p.hdr.banner_timeout_ms = 61000;
    p.hdr.ehlo_timeout_ms = 62000;
    p.hdr.mail_from_timeout_ms = 63000;
    p.hdr.rcpt_to_timeout_ms = 64000;
    p.hdr.data_timeout_ms = 65000;
    p.hdr.data_dot_timeout_ms = 66000;
    p.hdr.rset_timeout_ms = 67000;
    p.hdr.idle_timeout_ms = 68000;
    p.hdr.smtp_port = 25;
    p.hdr.max_recipients_per_batch = 100;
    p.hdr.max_deliveries_per_connection = 1024;
    p.ehlo_domain = "";
    p.site = "";
    return p;
}

static struct proto_path full(void)
{
    struct proto_path p = base();
    p.hdr.path = PROTO_PATH_ID_MAX;
    p.hdr.generation = UINT32_MAX;
    p.hdr.remember_broken_tls_ms = 3600000;
    p.hdr.smtp_port = 2525;
    p.hdr.enable_tls = PROTO_PATH_TLS_REQUIRED_INSECURE;
    p.hdr.max_recipients_per_batch = PROTO_PATH_RCPTS_MAX;
    p.ehlo_domain = "mta1.sender.example";
    p.hdr.ehlo_len = (uint16_t)strlen(p.ehlo_domain);
    p.site = "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com";
    p.hdr.site_len = (uint16_t)strlen(p.site);
    p.prohibited = hosts_a;
    p.hdr.n_prohibited = 4;
    p.skip = hosts_b;
    p.hdr.n_skip = 2;
    p.sts_mx = sts_mx;
    p.hdr.n_sts_mx = 2;
    p.hdr.mta_sts = MTA_STS_MODE_ENFORCE;
    return p;
}

static uint8_t *encode(const struct proto_path *p, size_t *len)
{
    *len = proto_path_size(p);
    uint8_t *b = malloc(*len);
    if (proto_path_encode(p, b, *len) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static bool same(const struct proto_path *a, const struct proto_path *b)
{
    struct proto_path_hdr x = a->hdr, y = b->hdr;
    x.magic = y.magic = 0;
    x.version = y.version = 0;
    if (memcmp(&x, &y, sizeof(x)) != 0 || strcmp(a->ehlo_domain, b->ehlo_domain) != 0 ||
        strcmp(a->site, b->site) != 0)
        return false;
    for (uint16_t i = 0; i < a->hdr.n_prohibited; i++)
        if (strcmp(a->prohibited[i], b->prohibited[i]) != 0)
            return false;
    for (uint16_t i = 0; i < a->hdr.n_skip; i++)
        if (strcmp(a->skip[i], b->skip[i]) != 0)
            return false;
    for (uint16_t i = 0; i < a->hdr.n_sts_mx; i++)
        if (strcmp(a->sts_mx[i], b->sts_mx[i]) != 0)
            return false;
    return true;
}

/* ---- round trips ---- */

static void test_round_trips(void)
{
    memset(long_ehlo, 'e', PROTO_PATH_EHLO_MAX);
    struct proto_path cases[4];
    const char *names[] = {"minimal", "full", "longest ehlo, 64 hosts each", "every tls value"};
    static const char *many[PROTO_PATH_HOSTS_MAX];
    for (int i = 0; i < PROTO_PATH_HOSTS_MAX; i++)
        many[i] = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128";
    cases[0] = base();
    cases[1] = full();
    cases[2] = full();
    cases[2].ehlo_domain = long_ehlo;
    cases[2].hdr.ehlo_len = PROTO_PATH_EHLO_MAX;
    cases[2].prohibited = cases[2].skip = many;
    cases[2].hdr.n_prohibited = cases[2].hdr.n_skip = PROTO_PATH_HOSTS_MAX;
    cases[3] = base();
    for (size_t c = 0; c < 4; c++) {
        for (unsigned tls = 0; tls <= (c == 3 ? PROTO_PATH_TLS_DISABLED : 0u); tls++) {
            struct proto_path in = cases[c], out;
            const char *why = NULL;
            size_t len;
            if (c == 3)
                in.hdr.enable_tls = (uint8_t)tls;
            uint8_t *run = encode(&in, &len);
            CHECK(run, "%s: encode refused", names[c]);
            if (!run)
                continue;
            CHECK(proto_path_decode(run, len, &out, &why) == 0, "%s: %s", names[c], why);
            CHECK(same(&in, &out), "%s: values differ after the round trip", names[c]);
            size_t len2;
            uint8_t *again = encode(&out, &len2);
            CHECK(again && len2 == len && memcmp(again, run, len) == 0, "%s: not canonical", names[c]);
            free(again);
            proto_path_fini(&out);
            free(run);
        }
    }
    CHECK(strcmp(proto_path_tls_name(PROTO_PATH_TLS_REQUIRED), "Required") == 0, "tls name");
    CHECK(strcmp(proto_path_tls_name(9), "?") == 0, "unknown tls name");
}

/* ---- malformed values: the decoder refuses, the encoder refuses too ---- */

struct bad_case {
    const char *name;
    void (*mutate)(struct proto_path *p);
};

static const char *bad_host[1];
#define MUT(fn, body)                                                                                         \
    static void fn(struct proto_path *p)                                                                      \
    {                                                                                                         \
        body;                                                                                                 \
    }
MUT(m_path0, p->hdr.path = 0)
MUT(m_path_big, p->hdr.path = PROTO_PATH_ID_MAX + 1)
MUT(m_connect0, p->hdr.connect_timeout_ms = 0)
MUT(m_banner0, p->hdr.banner_timeout_ms = 0)
MUT(m_ehlo_t0, p->hdr.ehlo_timeout_ms = 0)
MUT(m_mail0, p->hdr.mail_from_timeout_ms = 0)
MUT(m_rcpt0, p->hdr.rcpt_to_timeout_ms = 0)
MUT(m_data0, p->hdr.data_timeout_ms = 0)
MUT(m_dot0, p->hdr.data_dot_timeout_ms = 0)
MUT(m_rset0, p->hdr.rset_timeout_ms = 0)
MUT(m_idle0, p->hdr.idle_timeout_ms = 0)
MUT(m_dot_big, p->hdr.data_dot_timeout_ms = PROTO_PATH_TIMEOUT_MAX_MS + 1ull)
MUT(m_tls_mem_big, p->hdr.remember_broken_tls_ms = PROTO_PATH_TIMEOUT_MAX_MS + 1ull)
MUT(m_port0, p->hdr.smtp_port = 0)
MUT(m_batch0, p->hdr.max_recipients_per_batch = 0)
MUT(m_batch_big, p->hdr.max_recipients_per_batch = PROTO_PATH_RCPTS_MAX + 1)
MUT(m_mdpc0, p->hdr.max_deliveries_per_connection = 0)
MUT(m_tls5, p->hdr.enable_tls = 5)
MUT(m_sts_mode3, p->hdr.mta_sts = 3)
static const char *many_mx[MTA_STS_MX_MAX + 1] = {
    [0 ... MTA_STS_MX_MAX] = "mx.example.com",
};
MUT(m_sts_too_many, (p->sts_mx = many_mx, p->hdr.n_sts_mx = MTA_STS_MX_MAX + 1, p->hdr.mta_sts = 2))
MUT(m_sts_upper, (bad_host[0] = "MX.example", p->sts_mx = bad_host, p->hdr.n_sts_mx = 1, p->hdr.mta_sts = 2))
MUT(m_sts_star_only, (bad_host[0] = "*.", p->sts_mx = bad_host, p->hdr.n_sts_mx = 1, p->hdr.mta_sts = 2))
MUT(m_sts_space, (bad_host[0] = "mx example", p->sts_mx = bad_host, p->hdr.n_sts_mx = 1, p->hdr.mta_sts = 2))
MUT(m_ehlo_space, (p->ehlo_domain = "mta 1", p->hdr.ehlo_len = 5))
MUT(m_site_space, (p->site = "mx a", p->hdr.site_len = 4))
MUT(m_site_ctl, (p->site = "mx\r\n", p->hdr.site_len = 4))
static char long_site[PROTO_PATH_SITE_MAX + 2];
MUT(m_site_long, (memset(long_site, 's', PROTO_PATH_SITE_MAX + 1), p->site = long_site,
                  p->hdr.site_len = PROTO_PATH_SITE_MAX + 1))
MUT(m_reserved3, (p->hdr.reserved3 = 1))
MUT(m_ehlo_ctl, (p->ehlo_domain = "mta\n1", p->hdr.ehlo_len = 5))
MUT(m_ehlo_8bit, (p->ehlo_domain = "m\xc3\xbc", p->hdr.ehlo_len = 3))
MUT(m_ehlo_long, (memset(long_ehlo, 'e', sizeof(long_ehlo)), p->ehlo_domain = long_ehlo,
                  p->hdr.ehlo_len = PROTO_PATH_EHLO_MAX + 1))
MUT(m_too_many, p->hdr.n_prohibited = PROTO_PATH_HOSTS_MAX + 1)
MUT(m_cidr_name, (bad_host[0] = "mx.example", p->prohibited = bad_host, p->hdr.n_prohibited = 1))
MUT(m_cidr_v4_prefix, (bad_host[0] = "10.0.0.0/33", p->skip = bad_host, p->hdr.n_skip = 1))
MUT(m_cidr_v6_prefix, (bad_host[0] = "::/129", p->skip = bad_host, p->hdr.n_skip = 1))
MUT(m_cidr_empty_prefix, (bad_host[0] = "10.0.0.0/", p->skip = bad_host, p->hdr.n_skip = 1))
MUT(m_cidr_sign, (bad_host[0] = "10.0.0.0/+8", p->skip = bad_host, p->hdr.n_skip = 1))
MUT(m_cidr_empty, (bad_host[0] = "", p->skip = bad_host, p->hdr.n_skip = 1))
MUT(m_cidr_two_slashes, (bad_host[0] = "10.0.0.0/8/8", p->skip = bad_host, p->hdr.n_skip = 1))

static const struct bad_case bad_cases[] = {
    {"path id 0", m_path0},
    {"path id past the maximum", m_path_big},
    {"connect timeout 0", m_connect0},
    {"banner timeout 0", m_banner0},
    {"ehlo timeout 0", m_ehlo_t0},
    {"mail_from timeout 0", m_mail0},
    {"rcpt_to timeout 0", m_rcpt0},
    {"data timeout 0", m_data0},
    {"data_dot timeout 0", m_dot0},
    {"rset timeout 0", m_rset0},
    {"idle timeout 0", m_idle0},
    {"data_dot timeout over a day", m_dot_big},
    {"remember_broken_tls over a day", m_tls_mem_big},
    {"smtp_port 0", m_port0},
    {"max_recipients_per_batch 0", m_batch0},
    {"max_recipients_per_batch too big", m_batch_big},
    {"max_deliveries_per_connection 0", m_mdpc0},
    {"enable_tls 5", m_tls5},
    {"mta_sts mode 3", m_sts_mode3},
    {"more than MTA_STS_MX_MAX mx patterns", m_sts_too_many},
    {"uppercase mx pattern", m_sts_upper},
    {"mx pattern \"*.\" alone", m_sts_star_only},
    {"space in an mx pattern", m_sts_space},
    {"space in the ehlo domain", m_ehlo_space},
    {"space in the site", m_site_space},
    {"control characters in the site", m_site_ctl},
    {"site longer than PROTO_PATH_SITE_MAX", m_site_long},
    {"reserved3 not zero", m_reserved3},
    {"control byte in the ehlo domain", m_ehlo_ctl},
    {"8-bit ehlo domain", m_ehlo_8bit},
    {"ehlo domain too long", m_ehlo_long},
    {"too many prohibited hosts", m_too_many},
    {"host name instead of a CIDR", m_cidr_name},
    {"IPv4 prefix 33", m_cidr_v4_prefix},
    {"IPv6 prefix 129", m_cidr_v6_prefix},
    {"empty prefix", m_cidr_empty_prefix},
    {"signed prefix", m_cidr_sign},
    {"empty CIDR", m_cidr_empty},
    {"two slashes", m_cidr_two_slashes},
};

/* raw_encode - the run as an encoder without checks would write it */
static uint8_t *raw_encode(const struct proto_path *p, size_t *len)
{
    struct proto_path_hdr h = p->hdr;
    size_t hosts = (size_t)h.n_prohibited + h.n_skip, n = sizeof(h) + h.ehlo_len + h.site_len + hosts;
    const char *const *list[2] = {p->prohibited, p->skip};
    uint16_t cnt[2] = {h.n_prohibited, h.n_skip};
    for (int l = 0; l < 2; l++)
        for (uint16_t i = 0; i < cnt[l]; i++)
            n += strlen(list[l][i]);
    uint8_t *b = calloc(1, n), *o = b;
    h.magic = PROTO_PATH_MAGIC;
    h.version = PROTO_PATH_VERSION;
    memcpy(o, &h, sizeof(h));
    o += sizeof(h);
    memcpy(o, p->ehlo_domain, h.ehlo_len);
    o += h.ehlo_len;
    if (h.site_len)
        memcpy(o, p->site, h.site_len);
    o += h.site_len;
    for (int l = 0; l < 2; l++)
        for (uint16_t i = 0; i < cnt[l]; i++)
            *o++ = (uint8_t)strlen(list[l][i]);
    for (int l = 0; l < 2; l++)
        for (uint16_t i = 0; i < cnt[l]; i++) {
            memcpy(o, list[l][i], strlen(list[l][i]));
            o += strlen(list[l][i]);
        }
    *len = n;
    return b;
}

static void test_bad_values(void)
{
    static const char *many[PROTO_PATH_HOSTS_MAX + 1];
    for (int i = 0; i <= PROTO_PATH_HOSTS_MAX; i++)
        many[i] = "10.0.0.1";
    for (size_t c = 0; c < sizeof(bad_cases) / sizeof(bad_cases[0]); c++) {
        struct proto_path p = full(), out;
        p.prohibited = p.hdr.n_prohibited ? p.prohibited : many;
        bad_cases[c].mutate(&p);
        if (p.hdr.n_prohibited > 4)
            p.prohibited = many;
        size_t len;
        uint8_t *run = raw_encode(&p, &len);
        const char *why = NULL;
        CHECK(proto_path_decode(run, len, &out, &why) == -EBADMSG, "%s: accepted", bad_cases[c].name);
        CHECK(why && *why && out._mem == NULL, "%s: no reason or a result left", bad_cases[c].name);
        uint8_t *buf = malloc(proto_path_size(&p));
        CHECK(proto_path_encode(&p, buf, proto_path_size(&p)) == -EINVAL, "%s: the encoder wrote it",
              bad_cases[c].name);
        free(buf);
        free(run);
    }
}

/* ---- hostile bytes ---- */

static void test_structure(void)
{
    struct proto_path p = full(), out;
    size_t len;
    const char *why = NULL;
    uint8_t *run = encode(&p, &len);

    CHECK(proto_path_decode(NULL, 0, &out, &why) == -EBADMSG && why, "NULL run accepted");
    for (size_t n = 0; n < len; n++)
        CHECK(proto_path_decode(run, n, &out, &why) == -EBADMSG && out._mem == NULL, "truncated to %zu accepted",
              n);
    uint8_t *longer = calloc(1, len + 1);
    memcpy(longer, run, len);
    CHECK(proto_path_decode(longer, len + 1, &out, &why) == -EBADMSG, "trailing byte accepted");
    free(longer);
    /* a wrong encode length is refused */
    CHECK(proto_path_encode(&p, run, len - 1) == -EINVAL, "short buffer accepted");
    /* the magic and the version */
    uint8_t *c = malloc(len);
    memcpy(c, run, len);
    c[0] ^= 1;
    CHECK(proto_path_decode(c, len, &out, &why) == -EBADMSG, "bad magic accepted");
    memcpy(c, run, len);
    c[4] ^= 2;
    CHECK(proto_path_decode(c, len, &out, &why) == -EBADMSG, "bad version accepted");
    /* a CIDR length that points past the run, and one that leaves bytes over */
    size_t lens_at = sizeof(struct proto_path_hdr) + p.hdr.ehlo_len + p.hdr.site_len;
    memcpy(c, run, len);
    c[lens_at] = 200;
    CHECK(proto_path_decode(c, len, &out, &why) == -EBADMSG, "CIDR length past the run accepted");
    memcpy(c, run, len);
    c[lens_at + 5] = (uint8_t)(c[lens_at + 5] - 1);
    CHECK(proto_path_decode(c, len, &out, &why) == -EBADMSG, "lengths short of the run accepted");
    /* a NUL inside a CIDR (inet_pton would stop there and accept the prefix before it) */
    memcpy(c, run, len);
    c[lens_at + 6 + 8] = 0; /* "10.0.0.0/8": its slash */
    CHECK(proto_path_decode(c, len, &out, &why) == -EBADMSG, "NUL inside a CIDR accepted");
    /* every byte flip: refused, or canonical */
    size_t accepted = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(c, run, len);
            c[i] ^= (uint8_t)(1u << bit);
            if (proto_path_decode(c, len, &out, &why) < 0) {
                CHECK(why && out._mem == NULL, "flip %zu/%d: refused without a reason", i, bit);
                continue;
            }
            accepted++;
            size_t l2;
            uint8_t *again = encode(&out, &l2);
            CHECK(again && l2 == len && memcmp(again, c, len) == 0, "flip %zu/%d: accepted, not canonical", i, bit);
            free(again);
            proto_path_fini(&out);
        }
    CHECK(accepted > 0, "no flip decoded (the generation and the timeouts are free values)");
    free(c);
    free(run);
}

int main(void)
{
    test_round_trips();
    test_bad_values();
    test_structure();
    CHECK_EXIT();
}
