/*
 * proto_env_test - envelope record round trips, refusals and hostile decoding; msgid ids
 *
 * The decoder reads disk bytes, so it is fed every truncation, every byte flip (with the
 * CRC both left stale and recomputed, so the structural checks behind the CRC are reached),
 * oversized counts and random garbage. A decode that succeeds must re-encode to the very
 * same bytes (the encoding is canonical), which catches a decoder that accepts nonsense.
 * msgid: text and byte round trips, refused texts, strict ordering, and uniqueness across
 * forked processes generating at the same time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "common/msgid.h"
#include "common/proto_env.h"
#include "tests/lib/check.h"

/* ---- fixtures ---- */

static char long_addr[PROTO_ENV_ADDR_MAX + 2];
static char long_value[PROTO_ENV_VALUE_MAX + 2];

static struct proto_env_rcpt rcpts_many[300];
static char rcpt_names[300][32];

static struct proto_env_rcpt rcpts_one[] = {
    { "user@example.com", PROTO_RCPT_QUEUED, 0 },
};
static struct proto_env_rcpt rcpts_mixed[] = {
    { "a@gmail.com", PROTO_RCPT_QUEUED, 3 },
    { "b@outlook.com", PROTO_RCPT_DELIVERED, 1 },
    { "c@yahoo.com", PROTO_RCPT_BOUNCED, 2 },
    { "d@example.org", PROTO_RCPT_EXPIRED, 4000000000u },
    { "e@example.net", PROTO_RCPT_ADMIN_BOUNCED, 0 },
    { "\xc3\xbcser@b\xc3\xbc" "cher.example", PROTO_RCPT_QUEUED, 0 },
};
static struct proto_env_meta meta_full[] = {
    { PROTO_ENV_META_QUEUE, "spring:acme@gmail.com" },
    { PROTO_ENV_META_TENANT, "acme" },
    { PROTO_ENV_META_CAMPAIGN, "spring" },
    { PROTO_ENV_META_ROUTING_DOMAIN, "gmail.com" },
    { "x-custom.key-1", "any value: with spaces, \xe2\x9c\x93 and \"quotes\"\r\n" },
    { "empty", "" },
};
static struct proto_env_meta meta_long[] = {
    { "k", long_value },
};
static struct proto_env_rcpt rcpts_long[] = {
    { long_addr, PROTO_RCPT_QUEUED, 1 },
};

struct rec_case {
    const char *name;
    struct proto_env rec;
};

static struct rec_case good_cases[] = {
    { "minimal, null sender", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one } },
    { "full", { .flags = PROTO_ENV_F_8BITMIME | PROTO_ENV_F_SMTPUTF8, .created_ms = 1717171717171,
        .body_size = 123456789, .sender = "bounce+x=y@sender.example", .rcpt_count = 6,
        .rcpts = rcpts_mixed, .meta_count = 6, .meta = meta_full } },
    { "many recipients", { .created_ms = 1, .body_size = 0, .sender = "s@x", .rcpt_count = 300,
        .rcpts = rcpts_many } },
    { "longest address and value", { .sender = long_addr, .rcpt_count = 1, .rcpts = rcpts_long,
        .meta_count = 1, .meta = meta_long, .created_ms = UINT64_MAX, .body_size = UINT64_MAX } },
};

static void fixtures_init(void)
{
    memset(long_addr, 'a', PROTO_ENV_ADDR_MAX);
    long_addr[PROTO_ENV_ADDR_MAX] = '\0';
    memset(long_value, 'v', PROTO_ENV_VALUE_MAX);
    long_value[PROTO_ENV_VALUE_MAX] = '\0';
    for (int i = 0; i < 300; i++) {
        snprintf(rcpt_names[i], sizeof(rcpt_names[i]), "r%d@d%d.example", i, i % 7);
        rcpts_many[i] = (struct proto_env_rcpt){ rcpt_names[i], (uint8_t)(i % PROTO_RCPT__MAX), (uint32_t)i };
    }
}

static bool rec_equal(const struct proto_env *a, const struct proto_env *b, const char **what)
{
    if (a->flags != b->flags) { *what = "flags"; return false; }
    if (a->created_ms != b->created_ms) { *what = "created_ms"; return false; }
    if (a->body_size != b->body_size) { *what = "body_size"; return false; }
    if (strcmp(a->sender, b->sender) != 0) { *what = "sender"; return false; }
    if (a->rcpt_count != b->rcpt_count) { *what = "rcpt_count"; return false; }
    for (uint32_t i = 0; i < a->rcpt_count; i++) {
        if (strcmp(a->rcpts[i].addr, b->rcpts[i].addr) != 0) { *what = "rcpt addr"; return false; }
        if (a->rcpts[i].state != b->rcpts[i].state) { *what = "rcpt state"; return false; }
        if (a->rcpts[i].attempts != b->rcpts[i].attempts) { *what = "rcpt attempts"; return false; }
    }
    if (a->meta_count != b->meta_count) { *what = "meta_count"; return false; }
    for (uint32_t i = 0; i < a->meta_count; i++) {
        if (strcmp(a->meta[i].key, b->meta[i].key) != 0) { *what = "meta key"; return false; }
        if (strcmp(a->meta[i].value, b->meta[i].value) != 0) { *what = "meta value"; return false; }
    }
    return true;
}

/* overwrite the trailing CRC so that the structural checks behind it are exercised */
static void fix_crc(uint8_t *p, size_t len)
{
    if (len < 4)
        return;
    uint32_t c = proto_env_crc32c(0, p, len - 4);
    for (int i = 0; i < 4; i++)
        p[len - 4 + i] = (uint8_t)(c >> (8 * i));
}

/* a decode must fail, or succeed on bytes that re-encode identically */
static void decode_hostile(const char *label, const uint8_t *p, size_t len, bool expect_fail)
{
    struct proto_env rec;
    const char *why = "unset";
    int rc = proto_env_decode(p, len, &rec, &why);
    if (rc == 0) {
        CHECK(!expect_fail, "%s: len %zu decoded but must fail", label, len);
        CHECK(why == NULL, "%s: why set on success", label);
        struct buf b = {0};
        int erc = proto_env_encode(&rec, &b);
        CHECK(erc == 0 && b.len == len && memcmp(b.data, p, len) == 0,
            "%s: accepted bytes (len %zu) do not re-encode identically", label, len);
        buf_fini(&b);
        proto_env_fini(&rec);
    } else {
        CHECK(rc == -EBADMSG || rc == -EPROTONOSUPPORT, "%s: unexpected rc %d", label, rc);
        CHECK(why != NULL && why[0] != '\0', "%s: no reason given", label);
        CHECK(rec._mem == NULL && rec.rcpt_count == 0, "%s: output not empty after failure", label);
    }
}

/* ---- record tests ---- */

static void test_round_trips(void)
{
    for (size_t c = 0; c < sizeof(good_cases) / sizeof(good_cases[0]); c++) {
        const struct rec_case *tc = &good_cases[c];
        struct buf b;
        buf_init(&b);
        int rc = proto_env_encode(&tc->rec, &b);
        CHECK(rc == 0, "%s: encode rc %d", tc->name, rc);
        if (rc != 0) {
            buf_fini(&b);
            continue;
        }
        struct proto_env out;
        const char *why = NULL;
        rc = proto_env_decode(b.data, b.len, &out, &why);
        CHECK(rc == 0, "%s: decode rc %d (%s)", tc->name, rc, why ? why : "");
        if (rc == 0) {
            const char *what = "";
            CHECK(rec_equal(&tc->rec, &out, &what), "%s: field %s differs", tc->name, what);
            CHECK(out.version == PROTO_ENV_VERSION, "%s: version %u", tc->name, out.version);
            /* change states in place and encode again, as the spool does on dispositions */
            for (uint32_t i = 0; i < out.rcpt_count; i++) {
                out.rcpts[i].state = PROTO_RCPT_DELIVERED;
                out.rcpts[i].attempts++;
            }
            CHECK(proto_env_all_final(&out), "%s: all_final after delivering all", tc->name);
            struct buf b2 = {0};
            CHECK(proto_env_encode(&out, &b2) == 0, "%s: re-encode", tc->name);
            struct proto_env again;
            CHECK(proto_env_decode(b2.data, b2.len, &again, NULL) == 0, "%s: decode updated", tc->name);
            CHECK(again.rcpt_count == out.rcpt_count && again.rcpts[0].state == PROTO_RCPT_DELIVERED &&
                again.rcpts[0].attempts == tc->rec.rcpts[0].attempts + 1, "%s: updated state lost", tc->name);
            proto_env_fini(&again);
            buf_fini(&b2);
            proto_env_fini(&out);
            proto_env_fini(&out); /* fini twice is harmless */
        }
        buf_fini(&b);
    }

    /* metadata lookups on a decoded record */
    struct buf b = {0};
    CHECK(proto_env_encode(&good_cases[1].rec, &b) == 0, "encode full");
    struct proto_env r;
    CHECK(proto_env_decode(b.data, b.len, &r, NULL) == 0, "decode full");
    const char *q = proto_env_meta_get(&r, PROTO_ENV_META_QUEUE);
    CHECK(q != NULL && strcmp(q, "spring:acme@gmail.com") == 0, "queue meta: %s", q ? q : "(null)");
    CHECK(proto_env_meta_get(&r, "nope") == NULL, "missing meta key found");
    CHECK(!proto_env_all_final(&r), "mixed states reported all final");
    CHECK(strcmp(proto_env_state_name(PROTO_RCPT_EXPIRED), "expired") == 0, "state name");
    CHECK(strcmp(proto_env_state_name(200), "unknown") == 0, "unknown state name");
    proto_env_fini(&r);
    buf_fini(&b);
}

static void test_encode_refusals(void)
{
    char too_long[PROTO_ENV_ADDR_MAX + 2];
    memset(too_long, 'x', PROTO_ENV_ADDR_MAX + 1);
    too_long[PROTO_ENV_ADDR_MAX + 1] = '\0';
    char value_too_long[PROTO_ENV_VALUE_MAX + 2];
    memset(value_too_long, 'v', PROTO_ENV_VALUE_MAX + 1);
    value_too_long[PROTO_ENV_VALUE_MAX + 1] = '\0';

    struct proto_env_rcpt r_state[] = { { "a@b", PROTO_RCPT__MAX, 0 } };
    struct proto_env_rcpt r_empty[] = { { "", PROTO_RCPT_QUEUED, 0 } };
    struct proto_env_rcpt r_crlf[] = { { "a@b\r\nRCPT TO:<x@y>", PROTO_RCPT_QUEUED, 0 } };
    struct proto_env_rcpt r_null[] = { { NULL, PROTO_RCPT_QUEUED, 0 } };
    struct proto_env_rcpt r_long[] = { { too_long, PROTO_RCPT_QUEUED, 0 } };
    struct proto_env_meta m_upper[] = { { "Queue", "x" } };
    struct proto_env_meta m_empty[] = { { "", "x" } };
    struct proto_env_meta m_space[] = { { "a b", "x" } };
    struct proto_env_meta m_val[] = { { "k", value_too_long } };
    struct proto_env_meta m_nullv[] = { { "k", NULL } };
    static struct proto_env_meta m_many[PROTO_ENV_META_MAX + 1];
    for (int i = 0; i <= PROTO_ENV_META_MAX; i++)
        m_many[i] = (struct proto_env_meta){ "k", "v" };

    struct rec_case bad[] = {
        { "NULL sender", { .sender = NULL, .rcpt_count = 1, .rcpts = rcpts_one } },
        { "no recipients", { .sender = "", .rcpt_count = 0, .rcpts = rcpts_one } },
        { "NULL rcpts", { .sender = "", .rcpt_count = 1, .rcpts = NULL } },
        { "too many recipients", { .sender = "", .rcpt_count = PROTO_ENV_RCPT_MAX + 1, .rcpts = rcpts_one } },
        { "unknown state", { .sender = "", .rcpt_count = 1, .rcpts = r_state } },
        { "empty recipient", { .sender = "", .rcpt_count = 1, .rcpts = r_empty } },
        { "CRLF in recipient", { .sender = "", .rcpt_count = 1, .rcpts = r_crlf } },
        { "NULL recipient", { .sender = "", .rcpt_count = 1, .rcpts = r_null } },
        { "recipient too long", { .sender = "", .rcpt_count = 1, .rcpts = r_long } },
        { "sender too long", { .sender = too_long, .rcpt_count = 1, .rcpts = rcpts_one } },
        { "sender with tab", { .sender = "a\tb@c", .rcpt_count = 1, .rcpts = rcpts_one } },
        { "unknown flag", { .flags = 0x80, .sender = "", .rcpt_count = 1, .rcpts = rcpts_one } },
        { "uppercase key", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = m_upper } },
        { "empty key", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = m_empty } },
        { "key with space", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = m_space } },
        { "value too long", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = m_val } },
        { "NULL value", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = m_nullv } },
        { "too many meta", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one,
            .meta_count = PROTO_ENV_META_MAX + 1, .meta = m_many } },
        { "meta NULL with count", { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1 } },
    };
    for (size_t c = 0; c < sizeof(bad) / sizeof(bad[0]); c++) {
        struct buf b = {0};
        int rc = proto_env_encode(&bad[c].rec, &b);
        CHECK(rc == -EINVAL, "%s: encode rc %d, want -EINVAL", bad[c].name, rc);
        buf_fini(&b);
    }
}

static void test_hostile(void)
{
    for (size_t c = 0; c < sizeof(good_cases) / sizeof(good_cases[0]); c++) {
        if (c == 2 || c == 3)
            continue; /* the big ones make the quadratic loops slow; the small ones cover every field */
        struct buf b = {0};
        CHECK(proto_env_encode(&good_cases[c].rec, &b) == 0, "encode");
        size_t len = b.len;
        uint8_t *m = malloc(len + 16);

        /* every proper prefix, raw (stale CRC) and with a recomputed CRC */
        for (size_t l = 0; l < len; l++) {
            memcpy(m, b.data, l);
            decode_hostile("prefix", l ? m : NULL, l, true);
            decode_hostile("prefix", m, l, true);
            fix_crc(m, l);
            decode_hostile("prefix+crc", m, l, true);
        }
        /* every byte flipped with several masks, raw and with a recomputed CRC */
        static const uint8_t masks[] = { 0x01, 0x80, 0xff, 0x20, 0x7f };
        for (size_t i = 0; i < len; i++) {
            for (size_t k = 0; k < sizeof(masks); k++) {
                memcpy(m, b.data, len);
                m[i] ^= masks[k];
                decode_hostile("flip", m, len, true);
                if (i < len - 4) {
                    fix_crc(m, len);
                    /* may succeed (e.g. another valid state byte): then it must be canonical */
                    decode_hostile("flip+crc", m, len, false);
                }
            }
        }
        /* trailing bytes */
        for (size_t extra = 1; extra <= 8; extra++) {
            memcpy(m, b.data, len - 4);
            memset(m + len - 4, 0, extra);
            fix_crc(m, len + extra);
            decode_hostile("trailing", m, len + extra, true);
        }
        free(m);
        buf_fini(&b);
    }

    /* targeted fields on the minimal record: header 28, sender len 2 + 0, rcpt count at 30 */
    struct buf b = {0};
    CHECK(proto_env_encode(&good_cases[0].rec, &b) == 0, "encode minimal");
    uint8_t m[512];
    size_t len = b.len;
    struct {
        const char *name;
        size_t off;
        uint8_t bytes[4];
        size_t n;
        int want;
    } pokes[] = {
        { "version 0", 2, { 0 }, 1, -EPROTONOSUPPORT },
        { "version 3", 2, { 3 }, 1, -EPROTONOSUPPORT },
        /* a version 1 header is 8 bytes shorter: these bytes read as v1 no longer parse */
        { "version 1 with a version 2 body", 2, { 1 }, 1, -EBADMSG },
        { "bad magic", 0, { 'X' }, 1, -EBADMSG },
        { "unknown flag", 3, { 0x40 }, 1, -EBADMSG },
        { "rcpt count max", 30, { 0xff, 0xff, 0xff, 0xff }, 4, -EBADMSG },
        { "rcpt count 0", 30, { 0, 0, 0, 0 }, 4, -EBADMSG },
        { "rcpt count 2", 30, { 2, 0, 0, 0 }, 4, -EBADMSG },
        { "sender len huge", 28, { 0xff, 0xff }, 2, -EBADMSG },
        { "rcpt state 9", 34, { 9 }, 1, -EBADMSG },
        { "addr len 0", 39, { 0, 0 }, 2, -EBADMSG },
        { "addr len huge", 39, { 0xff, 0xff }, 2, -EBADMSG },
    };
    for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
        memcpy(m, b.data, len);
        memcpy(m + pokes[i].off, pokes[i].bytes, pokes[i].n);
        fix_crc(m, len);
        struct proto_env r;
        const char *why = NULL;
        int rc = proto_env_decode(m, len, &r, &why);
        CHECK(rc == pokes[i].want, "%s: rc %d want %d (%s)", pokes[i].name, rc, pokes[i].want, why ? why : "");
        if (rc == 0)
            proto_env_fini(&r);
    }
    /* version 1 (no last_attempt_ms), as spools written before version 2 hold it: still read, as 0 */
    {
        size_t l1 = len - 8;
        memcpy(m, b.data, 20);
        m[2] = 1;
        memcpy(m + 20, b.data + 28, len - 28);
        fix_crc(m, l1);
        struct proto_env r1;
        const char *why = NULL;
        int rc = proto_env_decode(m, l1, &r1, &why);
        CHECK(rc == 0 && r1.version == 1 && r1.last_attempt_ms == 0 && r1.rcpt_count == 1 &&
                  strcmp(r1.rcpts[0].addr, good_cases[0].rec.rcpts[0].addr) == 0,
              "version 1 record: rc %d (%s)", rc, why ? why : "");
        if (rc == 0) {
            /* encoded again, it is version 2 and keeps everything */
            struct buf b2 = {0};
            r1.last_attempt_ms = 1796600000123ull;
            CHECK(proto_env_encode(&r1, &b2) == 0 && b2.len == len, "re-encode as version 2");
            struct proto_env r2;
            CHECK(proto_env_decode(b2.data, b2.len, &r2, NULL) == 0 && r2.version == PROTO_ENV_VERSION &&
                      r2.last_attempt_ms == 1796600000123ull,
                  "version 2 keeps last_attempt_ms");
            proto_env_fini(&r2);
            buf_fini(&b2);
            proto_env_fini(&r1);
        }
    }
    /* meta count beyond the limit, appended as a well-formed tail */
    memcpy(m, b.data, len - 6); /* drop meta count (2) and CRC (4) */
    size_t l = len - 6;
    m[l++] = 0xff;
    m[l++] = 0xff;
    memset(m + l, 0, 4);
    l += 4;
    fix_crc(m, l);
    decode_hostile("meta count 65535", m, l, true);
    /* a NUL inside a metadata value */
    struct proto_env_meta mv[] = { { "k", "ab" } };
    struct proto_env rv = { .sender = "", .rcpt_count = 1, .rcpts = rcpts_one, .meta_count = 1, .meta = mv };
    struct buf bv = {0};
    CHECK(proto_env_encode(&rv, &bv) == 0, "encode meta");
    bv.data[bv.len - 5] = '\0'; /* the value's last byte, just before the CRC */
    fix_crc(bv.data, bv.len);
    decode_hostile("NUL in value", bv.data, bv.len, true);
    buf_fini(&bv);
    buf_fini(&b);

    /* random garbage, half of it behind a plausible header and a valid CRC */
    srand(12345);
    uint8_t g[256];
    for (int i = 0; i < 50000; i++) {
        size_t gl = (size_t)rand() % sizeof(g);
        for (size_t k = 0; k < gl; k++)
            g[k] = (uint8_t)rand();
        if ((i & 1) && gl >= 32) {
            g[0] = 'R';
            g[1] = 'M';
            g[2] = PROTO_ENV_VERSION;
            g[3] &= PROTO_ENV_F_ALL;
            g[28] = (uint8_t)(rand() % 8);
            g[29] = 0;
            fix_crc(g, gl);
        }
        decode_hostile("garbage", g, gl, false);
    }
}

/* ---- msgid ---- */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, MSGID_BYTES);
}

static void test_msgid(void)
{
    msgid_init(0x1234);
    uint64_t before = clock_real_ns() / 1000000u;
    struct msgid prev = msgid_generate();
    CHECK(msgid_node(prev) == 0x1234, "node %x", msgid_node(prev));
    CHECK(msgid_time_ms(prev) >= before && msgid_time_ms(prev) <= before + 1000, "time %llu vs %llu",
        (unsigned long long)msgid_time_ms(prev), (unsigned long long)before);

    uint8_t pb[MSGID_BYTES];
    char pt[MSGID_TEXT_SIZE];
    msgid_to_bytes(prev, pb);
    msgid_format(prev, pt);
    for (int i = 0; i < 200000; i++) {
        struct msgid id = msgid_generate();
        uint8_t ib[MSGID_BYTES];
        char it[MSGID_TEXT_SIZE];
        msgid_to_bytes(id, ib);
        msgid_format(id, it);
        if (msgid_cmp(prev, id) >= 0 || memcmp(pb, ib, MSGID_BYTES) >= 0 || strcmp(pt, it) >= 0) {
            CHECK(0, "id %d not after its predecessor: %s then %s", i, pt, it);
            break;
        }
        if (i % 997 == 0) {
            struct msgid back;
            CHECK(msgid_parse(it, strlen(it), &back) == 0 && msgid_eq(back, id), "text round trip %s", it);
            CHECK(msgid_eq(msgid_from_bytes(ib), id), "bytes round trip %s", it);
            CHECK(strlen(it) == MSGID_TEXT_LEN, "text length %zu", strlen(it));
        }
        prev = id;
        memcpy(pb, ib, sizeof(pb));
        memcpy(pt, it, sizeof(pt));
    }

    struct msgid out;
    const char *refused[] = {
        "", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
        "0123456789abcdefg123456789abcdef", "0123456789abcdef 123456789abcdef",
        "-123456789abcdef0123456789abcdef", "0x23456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        CHECK(msgid_parse(refused[i], strlen(refused[i]), &out) == -EINVAL, "parse accepted \"%s\"", refused[i]);
    char with_nul[MSGID_TEXT_LEN] = "0123456789abcdef0123456789abcde";
    with_nul[5] = '\0';
    CHECK(msgid_parse(with_nul, sizeof(with_nul), &out) == -EINVAL, "parse accepted an embedded NUL");
    CHECK(msgid_parse("0123456789ABCDEF0123456789abcdef", 32, &out) == 0 &&
        out.hi == 0x0123456789abcdefULL && out.lo == 0x0123456789abcdefULL, "uppercase hex");

    /* uniqueness across processes generating in the same milliseconds */
    enum { KIDS = 4, PER = 20000 };
    uint8_t *all = malloc((size_t)(KIDS + 1) * PER * MSGID_BYTES);
    int fds[KIDS][2];
    pid_t pids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        if (pipe(fds[k]) < 0) {
            CHECK(0, "pipe: %s", strerror(errno));
            free(all);
            return;
        }
        pids[k] = fork();
        if (pids[k] == 0) {
            close(fds[k][0]);
            uint8_t buf[MSGID_BYTES * 256];
            for (int i = 0; i < PER; i += 256) {
                for (int j = 0; j < 256; j++)
                    msgid_to_bytes(msgid_generate(), buf + j * MSGID_BYTES);
                size_t n = (size_t)(PER - i < 256 ? PER - i : 256) * MSGID_BYTES, off = 0;
                while (off < n) {
                    ssize_t w = write(fds[k][1], buf + off, n - off);
                    if (w <= 0)
                        _exit(2);
                    off += (size_t)w;
                }
            }
            _exit(0);
        }
        close(fds[k][1]);
    }
    for (int i = 0; i < PER; i++)
        msgid_to_bytes(msgid_generate(), all + (size_t)i * MSGID_BYTES);
    size_t got = PER;
    for (int k = 0; k < KIDS; k++) {
        size_t want = (size_t)PER * MSGID_BYTES, off = 0;
        uint8_t *dst = all + got * MSGID_BYTES;
        while (off < want) {
            ssize_t r = read(fds[k][0], dst + off, want - off);
            if (r <= 0)
                break;
            off += (size_t)r;
        }
        CHECK(off == want, "child %d sent %zu of %zu bytes", k, off, want);
        got += off / MSGID_BYTES;
        close(fds[k][0]);
        int st;
        waitpid(pids[k], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", k, st);
    }
    qsort(all, got, MSGID_BYTES, cmp_id);
    size_t dups = 0;
    for (size_t i = 1; i < got; i++)
        if (memcmp(all + (i - 1) * MSGID_BYTES, all + i * MSGID_BYTES, MSGID_BYTES) == 0)
            dups++;
    CHECK(dups == 0, "%zu duplicate ids among %zu from %d processes", dups, got, KIDS + 1);
    free(all);
}

int main(void)
{
    fixtures_init();
    test_round_trips();
    test_encode_refusals();
    test_hostile();
    test_msgid();
    CHECK_EXIT();
}
