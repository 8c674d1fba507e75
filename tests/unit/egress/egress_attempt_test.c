/*
 * egress_attempt_test - loaded-run validation, recipient selection, attempt result encoding
 *
 * Table-driven: selections over envelopes built with proto_msg_head; runs damaged byte by byte
 * must be refused, never crash; every encoded result must pass the spool's decoder
 * (proto_dlv_attempt_decode), and each damaged one must not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_msg.h"
#include "egress/egress_attempt.h"
#include "tests/lib/check.h"

/* build_run - proto_msg run of an envelope with the given recipients/states and a body */
static unsigned char *build_run(const char *const *addrs, const uint8_t *states, uint32_t n, const char *routing,
                                const char *body, size_t *len)
{
    struct proto_env_rcpt rc[16];
    struct proto_env_meta meta[1] = {{PROTO_ENV_META_ROUTING_DOMAIN, routing}};
    struct proto_env rec = {.created_ms = 1, .body_size = strlen(body), .sender = "s@a.test", .rcpt_count = n,
                            .rcpts = rc, .meta_count = routing ? 1 : 0, .meta = meta};
    struct buf b = {0};
    for (uint32_t i = 0; i < n; i++)
        rc[i] = (struct proto_env_rcpt){addrs[i], states[i], 0};
    if (proto_msg_head(&rec, strlen(body), &b) < 0)
        return NULL;
    *len = b.len + strlen(body);
    unsigned char *run = malloc(*len);
    memcpy(run, b.data, b.len);
    memcpy(run + b.len, body, strlen(body));
    buf_fini(&b);
    return run;
}

struct sel_case {
    const char *name;
    const char *addrs[6];
    uint8_t states[6];
    uint32_t n;
    const char *routing;
    uint32_t first;
    int want; /* count or -EINVAL */
    uint32_t want_idx[6];
    const char *want_domain;
};

static const struct sel_case sel_cases[] = {
    {"same domain, case-insensitive", {"a@x.test", "b@y.test", "c@X.TEST", "d@x.test"}, {0, 0, 0, 1}, 4, NULL, 0,
     2, {0, 2}, "x.test"},
    {"first is another domain", {"a@x.test", "b@y.test", "c@Y.test"}, {0, 0, 0}, 3, NULL, 1, 2, {1, 2}, "y.test"},
    {"queued ones only", {"a@x.test", "b@x.test", "c@x.test"}, {2, 1, 0}, 3, NULL, 0, 1, {2}, "x.test"},
    {"nothing queued", {"a@x.test", "b@x.test"}, {1, 3}, 2, NULL, 0, 0, {0}, "x.test"},
    {"routing_domain takes every queued", {"a@x.test", "b@y.test", "c@z.test"}, {0, 4, 0}, 3, "Hub.test", 1, 2,
     {0, 2}, "hub.test"},
    {"rcpt_first out of range", {"a@x.test"}, {0}, 1, NULL, 1, -EINVAL, {0}, NULL},
    {"domain part after the last @", {"\"a@b\"@x.test", "c@b\"@x.test"}, {0, 0}, 2, NULL, 0, 2, {0, 1}, "x.test"},
    {"no domain at all", {"postmaster", "a@x.test", "root"}, {0, 0, 0}, 3, NULL, 0, 2, {0, 2}, ""},
};

static void test_select(void)
{
    for (size_t c = 0; c < sizeof(sel_cases) / sizeof(sel_cases[0]); c++) {
        const struct sel_case *t = &sel_cases[c];
        size_t len;
        unsigned char *run = build_run(t->addrs, t->states, t->n, t->routing, "Subject: x\r\n\r\nhi\r\n", &len);
        struct egress_msg m;
        const char *why = NULL;
        CHECK(run != NULL, "%s: envelope did not encode", t->name);
        if (!run)
            continue;
        CHECK(egress_attempt_msg_decode(run, len, &m, &why) == 0, "%s: decode: %s", t->name, why ? why : "");
        CHECK(m.body_len == strlen("Subject: x\r\n\r\nhi\r\n") && memcmp(m.body, "Subject", 7) == 0, "%s: body",
              t->name);
        uint32_t *idx;
        char *dom;
        int n = egress_attempt_rcpt_select(&m.env, t->first, &idx, &dom);
        CHECK(n == t->want, "%s: %d selected, want %d", t->name, n, t->want);
        for (int i = 0; i < n && n == t->want; i++)
            CHECK(idx[i] == t->want_idx[i], "%s: [%d] = %u, want %u", t->name, i, idx[i], t->want_idx[i]);
        if (t->want_domain)
            CHECK(dom && strcmp(dom, t->want_domain) == 0, "%s: domain %s", t->name, dom ? dom : "(null)");
        free(idx);
        free(dom);
        egress_attempt_msg_fini(&m);
        free(run);
    }
}

static void test_decode_hostile(void)
{
    const char *addrs[] = {"a@x.test", "b@x.test"};
    const uint8_t st[] = {0, 0};
    size_t len;
    unsigned char *run = build_run(addrs, st, 2, NULL, "body\r\n", &len);
    struct egress_msg m;
    const char *why;
    int refused = 0;

    /* every truncation and every longer claim is refused */
    for (size_t l = 0; l < len; l++)
        CHECK(egress_attempt_msg_decode(run, l, &m, &why) == -EBADMSG || l >= len, "truncated to %zu accepted", l);
    /* flipping any byte of header or envelope: refused (CRC, lengths, magic) or still consistent */
    int tried = 0;
    for (size_t i = 0; i < len - 6; i++) {
        /* the header's reserved fields are ignored, as the ingress leaves them zero */
        if (i == 6 || i == 7 || (i >= 12 && i < 16))
            continue;
        tried++;
        unsigned char *d = malloc(len);
        memcpy(d, run, len);
        d[i] ^= 0x41;
        if (egress_attempt_msg_decode(d, len, &m, &why) < 0)
            refused++;
        else
            egress_attempt_msg_fini(&m);
        free(d);
    }
    CHECK(refused == tried, "%d of %d damaged header/envelope bytes accepted", tried - refused, tried);
    /* a huge msg_len must not wrap the length check */
    struct proto_msg_hdr h;
    memcpy(&h, run, sizeof(h));
    h.msg_len = UINT64_MAX - 10;
    memcpy(run, &h, sizeof(h));
    CHECK(egress_attempt_msg_decode(run, len, &m, &why) == -EBADMSG, "wrapping msg_len accepted");
    CHECK(egress_attempt_msg_decode(NULL, 0, &m, &why) == -EBADMSG, "NULL accepted");
    free(run);
}

struct enh_case {
    const char *in;
    bool ok;
    unsigned c, s, d;
};

static const struct enh_case enh_cases[] = {
    {"4.4.3", true, 4, 4, 3}, {"5.1.10", true, 5, 1, 10}, {"2.0.0", true, 2, 0, 0}, {"5.123.456", true, 5, 123, 456},
    {"", false, 0, 0, 0},     {"3.1.1", false, 0, 0, 0},  {"5.1", false, 0, 0, 0},  {"5.1.1.", false, 0, 0, 0},
    {"5.1000.1", false, 0, 0, 0}, {"x.1.1", false, 0, 0, 0}, {"5..1", false, 0, 0, 0},
};

static void test_enh(void)
{
    for (size_t i = 0; i < sizeof(enh_cases) / sizeof(enh_cases[0]); i++) {
        const struct enh_case *t = &enh_cases[i];
        uint8_t c;
        uint16_t s, d;
        bool ok = egress_attempt_enh_parse(t->in, &c, &s, &d);
        CHECK(ok == t->ok && c == t->c && s == t->s && d == t->d, "enh \"%s\": %d %u.%u.%u", t->in, ok, c, s, d);
    }
}

/* refused - the spool's decoder refuses the run */
static bool refused(const void *run, size_t len)
{
    struct proto_attempt a;
    const char *why = NULL;
    int rc = proto_dlv_attempt_decode(run, len, &a, &why);
    if (rc == 0)
        proto_dlv_attempt_fini(&a);
    return rc == -EBADMSG && why != NULL;
}

static void test_attempt(void)
{
    struct egress_rcpt_res r[3] = {{.index = 0}, {.index = 4}, {.index = 7}};
    char longtext[2000];
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    egress_attempt_rcpt_set(&r[0], PROTO_OUT_DELIVERED, PROTO_CMD_DATA, 250, "2.0.0", "ok queued as 1");
    egress_attempt_rcpt_set(&r[1], PROTO_OUT_TRANSIENT, PROTO_CMD_RCPT, 451, "4.4.3", "try\r\nlater");
    egress_attempt_rcpt_set(&r[2], PROTO_OUT_BOUNCE, PROTO_CMD_CONNECT, 556, "5.1.10", "null MX");
    struct egress_attempt a = {.msg_id_hi = 1, .msg_id_lo = 2, .timestamp_ms = 3, .rcpt_first = 4,
                               .str = {"127.0.0.2:25", "mx.a.test", "default", "", longtext}, .n_rcpt = 3, .rcpt = r};
    size_t len = egress_attempt_size(&a);
    unsigned char *buf = malloc(len + 1);
    const char *why = NULL;

    CHECK(egress_attempt_encode(&a, buf, len + 1) == -EINVAL, "wrong length accepted");
    CHECK(egress_attempt_encode(&a, buf, len) == 0, "encode failed");
    struct proto_attempt dec;
    CHECK(proto_dlv_attempt_decode(buf, len, &dec, &why) == 0, "own run refused: %s", why ? why : "");
    proto_dlv_attempt_fini(&dec);
    struct proto_attempt_hdr h;
    memcpy(&h, buf, sizeof(h));
    CHECK(h.n_rcpt == 3 && h.len[PROTO_ATT_MX] == PROTO_DLV_STRING_MAX && h.len[PROTO_ATT_POOL] == 0 &&
              h.rcpt_first == 4,
          "header fields");
    struct proto_attempt_rcpt pr;
    memcpy(&pr, buf + sizeof(h) + 2 * sizeof(pr), sizeof(pr));
    CHECK(pr.index == 7 && pr.outcome == PROTO_OUT_BOUNCE && pr.code == 556 && pr.enh_class == 5 &&
              pr.enh_subject == 1 && pr.enh_detail == 10 && pr.text_len == 7,
          "third recipient");
    CHECK(memmem(buf, len, "try  later", 10) != NULL, "CR LF not replaced");
    CHECK(refused(buf, len - 1), "short run accepted");
    /* damage: a text length one longer, an outcome out of range, a NUL in a string */
    unsigned char *d = malloc(len);
    memcpy(d, buf, len);
    memcpy(&pr, d + sizeof(h), sizeof(pr));
    pr.text_len++;
    memcpy(d + sizeof(h), &pr, sizeof(pr));
    CHECK(refused(d, len), "bad text_len accepted");
    memcpy(d, buf, len);
    memcpy(&pr, d + sizeof(h), sizeof(pr));
    pr.outcome = 9;
    memcpy(d + sizeof(h), &pr, sizeof(pr));
    CHECK(refused(d, len), "bad outcome accepted");
    memcpy(d, buf, len);
    d[sizeof(h) + 3 * sizeof(pr) + 2] = '\0';
    CHECK(refused(d, len), "NUL in peer accepted");
    free(d);
    /* undecided recipients are never encoded */
    r[1].outcome = 0;
    CHECK(egress_attempt_encode(&a, buf, egress_attempt_size(&a)) == -EINVAL, "undecided encoded");
    a.n_rcpt = 0;
    CHECK(egress_attempt_encode(&a, buf, egress_attempt_size(&a)) == -EINVAL, "empty encoded");
    free(buf);
}

int main(void)
{
    test_select();
    test_decode_hostile();
    test_enh();
    test_attempt();
    CHECK_EXIT();
}
