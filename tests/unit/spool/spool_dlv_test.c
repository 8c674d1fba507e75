/*
 * spool_dlv_test - the spool's delivery rules: queue names, announce runs, attempt-run checks,
 * recipient state changes, fails, synthesised replies, DSN trigger
 *
 * Announce runs are built by spool_dlv_ann_append() and read back field by field here (and with the
 * contract's decoder, proto_dlv_ann_decode, which the scheduler runs), so a layout slip shows.
 * Attempt runs are built by a local encoder and then broken one way at a time; the contract's
 * decoder (proto_dlv_attempt_decode, which the spool runs) must refuse every broken run.
 */
#include "spool/spool_dlv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tests/lib/check.h"

static struct proto_env mkrec(struct proto_env_rcpt *r, uint32_t n, struct proto_env_meta *m, uint32_t nm)
{
    return (struct proto_env){.created_ms = 1700000000123ull, .body_size = 1234, .sender = "s@x.example",
                              .rcpt_count = n, .rcpts = r, .meta_count = nm, .meta = m};
}

static void test_queue_names(void)
{
    static const struct {
        const char *campaign, *tenant, *routing, *queue, *domain, *want;
    } t[] = {
        {"c", "t", NULL, NULL, "d", "c:t@d"},
        {NULL, "t", NULL, NULL, "d", "t@d"},
        {"c", NULL, NULL, NULL, "d", "c:@d"},
        {NULL, NULL, NULL, NULL, "d", "d"},
        {"c", "t", "r.example", NULL, "d", "c:t@d!r.example"},
        {NULL, NULL, "R.Example", NULL, "d", "d!r.example"},
        {"", "", NULL, NULL, "Mixed.Example", "mixed.example"},
        {"c", "t", NULL, "policy-q", "d", "policy-q"},
        {"Camp\r\nX", NULL, NULL, NULL, "d", "Camp  X:@d"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct proto_env_meta m[4];
        uint32_t nm = 0;
        if (t[i].campaign)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_CAMPAIGN, t[i].campaign};
        if (t[i].tenant)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_TENANT, t[i].tenant};
        if (t[i].routing)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_ROUTING_DOMAIN, t[i].routing};
        if (t[i].queue)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_QUEUE, t[i].queue};
        struct proto_env_rcpt r = {"a@d", PROTO_RCPT_QUEUED, 0};
        struct proto_env rec = mkrec(&r, 1, m, nm);
        char *q = spool_dlv_queue_name(&rec, t[i].domain);
        CHECK(strcmp(q, t[i].want) == 0, "case %zu: got '%s' want '%s'", i, q, t[i].want);
        free(q);
        char *rd = spool_dlv_routing_domain(&rec, t[i].domain);
        if (t[i].routing)
            CHECK(strcasecmp(rd, t[i].routing) == 0 && strcmp(rd, "r.example") == 0, "case %zu: routing '%s'", i, rd);
        else
            CHECK(strcasecmp(rd, t[i].domain) == 0, "case %zu: routing '%s'", i, rd);
        free(rd);
    }
    /* an operator's rebind to hosts (metadata route): the queue name says so, also a policy's `queue`, and the
     * routing domain is "route:HOSTS" before any routing_domain */
    static const struct {
        const char *queue, *routing, *want_q, *want_rd;
    } rt[] = {
        {NULL, NULL, "t@d!route:[127.0.0.4]:2525", "route:[127.0.0.4]:2525"},
        {"policy-q", NULL, "policy-q!route:[127.0.0.4]:2525", "route:[127.0.0.4]:2525"},
        {NULL, "r.example", "t@d!route:[127.0.0.4]:2525", "route:[127.0.0.4]:2525"},
    };
    for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
        struct proto_env_meta m[4] = {{PROTO_ENV_META_TENANT, "t"}, {PROTO_ENV_META_ROUTE, "[127.0.0.4]:2525"}};
        uint32_t nm = 2;
        if (rt[i].queue)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_QUEUE, rt[i].queue};
        if (rt[i].routing)
            m[nm++] = (struct proto_env_meta){PROTO_ENV_META_ROUTING_DOMAIN, rt[i].routing};
        struct proto_env_rcpt r = {"a@d", PROTO_RCPT_QUEUED, 0};
        struct proto_env rec = mkrec(&r, 1, m, nm);
        char *q = spool_dlv_queue_name(&rec, "d"), *rd = spool_dlv_routing_domain(&rec, "d");
        CHECK(strcmp(q, rt[i].want_q) == 0 && strcmp(rd, rt[i].want_rd) == 0, "route case %zu: '%s' '%s'", i, q, rd);
        free(q);
        free(rd);
    }

    /* a long campaign is cut to the proto_dlv string limit */
    char *big = malloc(5000);
    memset(big, 'c', 4999);
    big[4999] = '\0';
    struct proto_env_meta m = {PROTO_ENV_META_CAMPAIGN, big};
    struct proto_env_rcpt r = {"a@d", PROTO_RCPT_QUEUED, 0};
    struct proto_env rec = mkrec(&r, 1, &m, 1);
    char *q = spool_dlv_queue_name(&rec, "d");
    CHECK(strlen(q) == PROTO_DLV_STRING_MAX, "long name is %zu bytes", strlen(q));
    free(q);
    free(big);

    char dom[64];
    spool_dlv_domain("\"a@b\"@Ex.AMPLE", dom, sizeof(dom));
    CHECK(strcmp(dom, "ex.ample") == 0, "domain '%s'", dom);
    spool_dlv_domain("postmaster", dom, sizeof(dom));
    CHECK(strcmp(dom, "") == 0, "no domain '%s'", dom);
    /* a trailing dot names the same domain: same queue, same route (issue 13 #4) */
    spool_dlv_domain("x@Example.COM.", dom, sizeof(dom));
    CHECK(strcmp(dom, "example.com") == 0, "trailing dot kept: '%s'", dom);
}

/* read one announce entry at *off; returns n_dom or -1 */
static int read_entry(const uint8_t *p, size_t len, size_t *off, struct proto_ann *a, struct proto_ann_dom *d,
                      char q[][1100], char dm[][1100], int max)
{
    if (len - *off < sizeof(*a))
        return -1;
    memcpy(a, p + *off, sizeof(*a));
    *off += sizeof(*a);
    if (a->n_dom > max)
        return -1;
    for (int k = 0; k < a->n_dom; k++) {
        memcpy(&d[k], p + *off, sizeof(d[k]));
        *off += sizeof(d[k]);
    }
    for (int k = 0; k < a->n_dom; k++) {
        memcpy(q[k], p + *off, d[k].queue_len);
        q[k][d[k].queue_len] = '\0';
        *off += d[k].queue_len;
        memcpy(dm[k], p + *off, d[k].domain_len);
        dm[k][d[k].domain_len] = '\0';
        *off += d[k].domain_len;
    }
    *off = (*off + 7) / 8 * 8;
    return a->n_dom;
}

static void test_announce(void)
{
    struct proto_env_rcpt r[] = {
        {"a@one.example", PROTO_RCPT_DELIVERED, 1}, {"b@Two.example", PROTO_RCPT_QUEUED, 2},
        {"c@ONE.example", PROTO_RCPT_QUEUED, 3},    {"d@two.example", PROTO_RCPT_QUEUED, 5},
        {"e@one.example", PROTO_RCPT_QUEUED, 0},    {"f@three.example", PROTO_RCPT_BOUNCED, 9},
    };
    struct proto_env_meta m[] = {{PROTO_ENV_META_TENANT, "acme"}};
    struct proto_env rec = mkrec(r, 6, m, 1);
    struct msgid id = {0x1122, 0x3344};
    struct buf b = {0};
    struct proto_ann_hdr h;
    struct proto_ann_batch ab;
    uint32_t refused = 9;
    const char *why = NULL;

    proto_dlv_ann_begin(&b);
    size_t n = spool_dlv_ann_append(&b, id, &rec, &refused);
    CHECK(n == 1 && refused == 0, "entries %zu, refused %u", n, refused);
    memcpy(&h, b.data, sizeof(h));
    CHECK(h.magic == PROTO_ANN_MAGIC && h.version == PROTO_DLV_VERSION && h.count == 1, "header counts %u", h.count);
    CHECK(b.len % 8 == 0, "run length %zu not padded", b.len);
    CHECK(proto_dlv_ann_decode(b.data, b.len, &ab, &why) == 0 && ab.count == 1, "decoder refused a good run: %s",
          why ? why : "");
    if (ab.count == 1)
        CHECK(ab.entry[0].ann.n_dom == 2 && ab.entry[0].item[1].dom.rcpt_first == 2 &&
                  strcmp(ab.entry[0].item[1].queue, "acme@one.example") == 0 &&
                  strcmp(ab.entry[0].item[1].domain, "one.example") == 0,
              "decoded entry");
    proto_dlv_ann_fini(&ab);

    struct proto_ann a;
    struct proto_ann_dom d[4];
    char q[4][1100], dm[4][1100];
    size_t off = sizeof(h);
    int nd = read_entry(b.data, b.len, &off, &a, d, q, dm, 4);
    CHECK(nd == 2, "n_dom %d", nd);
    CHECK(off == b.len, "entry ends at %zu of %zu", off, b.len);
    CHECK(a.msg_id_hi == 0x1122 && a.msg_id_lo == 0x3344 && a.created_ms == rec.created_ms && a.size == 1234,
          "entry header");
    CHECK(a.attempts == 5, "attempts %u (max over queued only)", a.attempts);
    if (nd == 2) {
        /* groups in order of their first queued recipient: two (index 1), then one (index 2) */
        CHECK(d[0].rcpt_first == 1 && d[0].pending == 2, "dom0 first %u pending %u", d[0].rcpt_first, d[0].pending);
        CHECK(strcmp(q[0], "acme@two.example") == 0 && strcmp(dm[0], "two.example") == 0, "dom0 '%s' '%s'", q[0],
              dm[0]);
        CHECK(d[1].rcpt_first == 2 && d[1].pending == 2, "dom1 first %u pending %u", d[1].rcpt_first, d[1].pending);
        CHECK(strcmp(q[1], "acme@one.example") == 0 && strcmp(dm[1], "one.example") == 0, "dom1 '%s' '%s'", q[1],
              dm[1]);
    }
    /* broken runs are refused by the reader */
    for (size_t cut = 1; cut < 8; cut++)
        CHECK(proto_dlv_ann_decode(b.data, b.len - cut, &ab, &why) < 0 && ab.count == 0, "short run by %zu accepted",
              cut);
    buf_fini(&b);

    /* a queue name the scheduler would refuse (a space) leaves its group out, not the whole batch */
    struct proto_env_meta sp_m[] = {{PROTO_ENV_META_QUEUE, "two words"}};
    struct proto_env sp_rec = mkrec(r, 6, sp_m, 1);
    proto_dlv_ann_begin(&b);
    CHECK(spool_dlv_ann_append(&b, id, &sp_rec, &refused) == 0 && refused == 2, "unclean names: refused %u",
          refused);
    memcpy(&h, b.data, sizeof(h));
    CHECK(h.count == 0 && b.len == sizeof(h), "unclean entry written");
    buf_fini(&b);

    /* nothing queued: no entry */
    for (int i = 0; i < 6; i++)
        r[i].state = PROTO_RCPT_DELIVERED;
    struct buf e = {0};
    proto_dlv_ann_begin(&e);
    CHECK(spool_dlv_ann_append(&e, id, &rec, NULL) == 0 && e.len == sizeof(h), "entry for a finished message");
    buf_fini(&e);

    /* more groups than the contract allows in one entry: several entries, every group once */
    uint32_t nr = PROTO_ANN_MAX_DOMAINS + 10;
    struct proto_env_rcpt *many = calloc(nr, sizeof(*many));
    char (*addr)[32] = calloc(nr, 32);
    for (uint32_t i = 0; i < nr; i++) {
        snprintf(addr[i], 32, "u@d%u.example", i);
        many[i] = (struct proto_env_rcpt){addr[i], PROTO_RCPT_QUEUED, 0};
    }
    struct proto_env big = mkrec(many, nr, NULL, 0);
    struct buf bb = {0};
    proto_dlv_ann_begin(&bb);
    n = spool_dlv_ann_append(&bb, id, &big, NULL);
    CHECK(n == 2, "entries for %u domains: %zu", nr, n);
    CHECK(proto_dlv_ann_decode(bb.data, bb.len, &ab, &why) == 0 && ab.count == 2, "big run refused: %s",
          why ? why : "");
    if (ab.count == 2)
        CHECK(ab.entry[0].ann.n_dom + ab.entry[1].ann.n_dom == nr, "groups %u + %u", ab.entry[0].ann.n_dom,
              ab.entry[1].ann.n_dom);
    proto_dlv_ann_fini(&ab);
    buf_fini(&bb);
    free(many);
    free(addr);
}

/* a test attempt run */
struct att_rcpt {
    uint32_t index;
    uint8_t outcome;
    uint16_t code;
    const char *text;
};

static void build_attempt(struct buf *b, const struct att_rcpt *r, uint16_t n, const char *const s[PROTO_ATT_STRINGS])
{
    struct proto_attempt_hdr h = {.magic = PROTO_ATT_MAGIC, .version = PROTO_DLV_VERSION, .n_rcpt = n,
                                  .msg_id_hi = 7, .msg_id_lo = 8, .timestamp_ms = 1700000100000, .rcpt_first = 0};
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        h.len[i] = (uint16_t)strlen(s[i]);
    b->len = 0;
    buf_append(b, &h, sizeof(h));
    for (uint16_t i = 0; i < n; i++) {
        struct proto_attempt_rcpt pr = {.index = r[i].index, .outcome = r[i].outcome, .code = r[i].code,
                                        .enh_class = (uint8_t)(r[i].code / 100), .enh_subject = 1, .enh_detail = 1,
                                        .text_len = (uint16_t)strlen(r[i].text), .command = PROTO_CMD_RCPT};
        if (r[i].code == 0)
            pr.enh_class = 0;
        buf_append(b, &pr, sizeof(pr));
    }
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        buf_append(b, s[i], strlen(s[i]));
    for (uint16_t i = 0; i < n; i++)
        buf_append(b, r[i].text, strlen(r[i].text));
}

/* att_refused - the decoder refuses the run and leaves its output empty */
static bool att_refused(const void *run, size_t len, struct proto_attempt *a, const char **why)
{
    int rc = proto_dlv_attempt_decode(run, len, a, why);
    if (rc == 0)
        proto_dlv_attempt_fini(a);
    return rc < 0 && a->_mem == NULL && *why != NULL;
}

static void test_attempt_check(void)
{
    static const char *const s[PROTO_ATT_STRINGS] = {"127.0.0.2:25", "site-a", "src1", "pool1", "mx.example",
                                                     "TLS_AES_256_GCM_SHA384", "TLSv1.3", "CN=mx.example\tO=Example"};
    const struct att_rcpt good[] = {
        {0, PROTO_OUT_DELIVERED, 250, "ok"},
        {2, PROTO_OUT_BOUNCE, 550, "no such user"},
        {1, PROTO_OUT_TRANSIENT, 451, "later"},
    };
    struct buf b = {0};
    struct proto_attempt a;
    const char *why = NULL;

    build_attempt(&b, good, 3, s);
    CHECK(proto_dlv_attempt_decode(b.data, b.len, &a, &why) == 0, "good run refused: %s", why ? why : "");
    CHECK(a.hdr.n_rcpt == 3 && strcmp(a.str[PROTO_ATT_SITE], "site-a") == 0, "strings");
    CHECK(strcmp(a.str[PROTO_ATT_TLS_VERSION], "TLSv1.3") == 0 &&
              strcmp(a.str[PROTO_ATT_TLS_SUBJECT], "CN=mx.example\tO=Example") == 0,
          "TLS strings");
    if (a.hdr.n_rcpt == 3) {
        struct proto_attempt_rcpt r = a.rcpt[1];
        CHECK(r.index == 2 && r.code == 550 && r.text_len == 12 && strcmp(a.text[1], "no such user") == 0, "rcpt 1");
        CHECK(strcmp(a.text[2], "later") == 0, "rcpt 2 text");
    }
    CHECK(spool_dlv_attempt_indexes(&a, 3) == 0, "indexes < 3 refused");
    CHECK(spool_dlv_attempt_indexes(&a, 2) == -ERANGE, "index 2 of 2 accepted");
    proto_dlv_attempt_fini(&a);

    /* one change at a time; each must be refused */
    size_t glen = b.len;
    uint8_t *copy = malloc(glen + 8);
    memcpy(copy, b.data, glen);
    copy[glen] = 'x';
    CHECK(att_refused(copy, glen + 1, &a, &why), "trailing byte accepted");
    CHECK(att_refused(copy, glen - 1, &a, &why), "short run accepted");
    CHECK(att_refused(copy, 10, &a, &why), "header cut accepted");
    struct proto_attempt_hdr h;
    struct {
        const char *name;
        size_t off;
        uint8_t byte;
    } flips[] = {
        {"magic", 0, 0x00},
        {"version", 4, 9},
        {"outcome", sizeof(h) + 4, 7},
        {"outcome 0", sizeof(h) + 16 + 4, 0},
        {"command", sizeof(h) + 14, 9},
        {"enh class", sizeof(h) + 5, 3},
        {"NUL in peer", sizeof(h) + 3 * 16 + 3, '\0'},
        {"LF in mx", sizeof(h) + 3 * 16 + 12 + 6 + 4 + 5 + 2, '\n'},
        {"CR in text", glen - 2, '\r'},
        {"repeated index", sizeof(h) + 16, 0},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(copy, b.data, glen);
        copy[flips[i].off] = flips[i].byte;
        why = NULL;
        CHECK(att_refused(copy, glen, &a, &why), "%s accepted", flips[i].name);
    }
    /* a text length that points past the run */
    memcpy(copy, b.data, glen);
    uint16_t big = 900;
    memcpy(copy + sizeof(h) + 12, &big, 2);
    CHECK(att_refused(copy, glen, &a, &why), "text_len past the run accepted");
    memcpy(copy, b.data, glen);
    uint16_t zero = 0;
    memcpy(copy + 6, &zero, 2); /* n_rcpt */
    CHECK(att_refused(copy, glen, &a, &why), "n_rcpt 0 accepted");
    free(copy);
    buf_fini(&b);
}

static void test_apply_and_fail(void)
{
    struct proto_env_rcpt r[] = {
        {"a@one.example", PROTO_RCPT_QUEUED, 0}, {"b@two.example", PROTO_RCPT_QUEUED, 1},
        {"c@One.Example", PROTO_RCPT_QUEUED, 2}, {"d@one.example", PROTO_RCPT_DELIVERED, 1},
    };
    struct proto_env rec = mkrec(r, 4, NULL, 0);
    uint32_t att;

    CHECK(spool_dlv_group(&rec, 0, &att) == 2 && att == 2, "group of 0: att %u", att);
    CHECK(spool_dlv_apply(&rec, 0, PROTO_OUT_TRANSIENT) == 1 && r[0].state == PROTO_RCPT_QUEUED && r[0].attempts == 1,
          "transient");
    CHECK(spool_dlv_apply(&rec, 0, PROTO_OUT_DELIVERED) == 1 && r[0].state == PROTO_RCPT_DELIVERED &&
              r[0].attempts == 2,
          "delivered");
    /* final stays final: a duplicate changes nothing, not even the attempts */
    CHECK(spool_dlv_apply(&rec, 0, PROTO_OUT_BOUNCE) == 0 && r[0].state == PROTO_RCPT_DELIVERED && r[0].attempts == 2,
          "duplicate changed a final recipient");
    CHECK(spool_dlv_apply(&rec, 3, PROTO_OUT_TRANSIENT) == 0 && r[3].attempts == 1, "delivered one re-opened");
    CHECK(spool_dlv_apply(&rec, 4, PROTO_OUT_DELIVERED) == -EINVAL, "index out of range");
    CHECK(spool_dlv_apply(&rec, 1, 9) == -EINVAL, "unknown outcome");
    CHECK(spool_dlv_apply(&rec, 1, PROTO_OUT_BOUNCE) == 1 && r[1].state == PROTO_RCPT_BOUNCED && r[1].attempts == 2,
          "bounce");
    CHECK(!proto_env_all_final(&rec), "not all final yet");

    /* the group of index 0 (delivered now) still names one.example: c is its only queued member */
    uint8_t mark[4] = {0};
    CHECK(spool_dlv_fail(&rec, 0, PROTO_RCPT_EXPIRED, mark) == 1, "fail count");
    CHECK(mark[2] == 1 && mark[0] == 0 && mark[1] == 0 && mark[3] == 0, "marks");
    CHECK(r[2].state == PROTO_RCPT_EXPIRED && r[2].attempts == 2, "expired without an attempt");
    CHECK(spool_dlv_fail(&rec, 0, PROTO_RCPT_EXPIRED, NULL) == 0, "second fail changed something");
    CHECK(spool_dlv_fail(&rec, 9, PROTO_RCPT_EXPIRED, NULL) == 0, "out of range");
    CHECK(spool_dlv_fail(&rec, 1, PROTO_RCPT_QUEUED, NULL) == 0, "fail to a non-final state");
    CHECK(proto_env_all_final(&rec), "all final");
    CHECK(spool_dlv_group(&rec, 0, NULL) == 0, "nothing pending");
}

static void test_replies(void)
{
    struct spool_dlv_reply r;

    spool_dlv_dns_reply(PROTO_FAIL_REASON_NXDOMAIN, &r);
    CHECK(r.code == 550 && r.enh_class == 5 && r.enh_subject == 1 && r.enh_detail == 2, "nxdomain");
    CHECK(strstr(r.text, "does not exist") != NULL, "nxdomain text");
    spool_dlv_dns_reply(PROTO_FAIL_REASON_NULL_MX, &r);
    CHECK(r.code == 556 && r.enh_class == 5 && r.enh_subject == 1 && r.enh_detail == 10, "null mx");
    spool_dlv_dns_reply(PROTO_FAIL_REASON_NO_DATA, &r);
    CHECK(r.code >= 500 && r.enh_class == 5, "no data");
    spool_dlv_dns_reply(PROTO_FAIL_REASON_BAD_NAME, &r);
    CHECK(r.code >= 500 && r.enh_class == 5, "bad name");
    spool_dlv_dns_reply(999, &r);
    CHECK(r.code >= 500 && r.enh_class == 5 && r.text[0], "unknown reason");
    spool_dlv_expire_reply(&r);
    CHECK(r.code >= 500 && r.enh_class == 5 && r.enh_subject == 4 && r.enh_detail == 7, "expire");

    CHECK(spool_dlv_wants_dsn(true, "a@b"), "dsn to a sender");
    CHECK(!spool_dlv_wants_dsn(true, ""), "dsn to the null sender");
    CHECK(!spool_dlv_wants_dsn(true, "<>"), "dsn to <>");
    CHECK(!spool_dlv_wants_dsn(true, NULL), "dsn to NULL");
    CHECK(!spool_dlv_wants_dsn(false, "a@b"), "dsn when disabled");

    CHECK(strcmp(spool_dlv_command_name(PROTO_CMD_RCPT), "RCPT TO") == 0, "rcpt");
    CHECK(strcmp(spool_dlv_command_name(PROTO_CMD_DATA), ".") == 0, "data");
    CHECK(spool_dlv_command_name(PROTO_CMD_CONNECT) == NULL, "connect");
}

int main(void)
{
    test_queue_names();
    test_announce();
    test_attempt_check();
    test_apply_and_fail();
    test_replies();
    CHECK_EXIT();
}
