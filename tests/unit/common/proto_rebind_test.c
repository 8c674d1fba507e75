/*
 * proto_rebind_test - rebind runs (MSG_SCHEDULER_MESSAGE_REBIND) and abort records (MSG_SCHEDULER_LEASE_ABORT):
 * round trips, every refusal of the decoder, and the encoder refusing what the decoder would
 */
#include <errno.h>
#include <string.h>

#include "common/proto_rebind.h"
#include "tests/lib/check.h"

static const struct proto_rebind_ent two[2] = {{.msg_id_hi = 0x1234, .msg_id_lo = 1, .rcpt_first = 0},
                                               {.msg_id_hi = 0x1234, .msg_id_lo = 2, .rcpt_first = 3}};

static void test_round_trip(void)
{
    struct buf b = {0};
    struct proto_rebind r;
    const char *why = NULL;

    CHECK(proto_rebind_encode(PROTO_REBIND_ROUTE, "[127.0.0.4]:2525,mx.example.test:25", "mx broken",
                              "api 127.0.0.1:4000", two, 2, &b) == 0, "encode route");
    CHECK(proto_rebind_decode(b.data, b.len, &r, &why) == 0, "decode: %s", why);
    CHECK(r.hdr.kind == PROTO_REBIND_ROUTE && r.hdr.count == 2, "header");
    CHECK(strcmp(r.target, "[127.0.0.4]:2525,mx.example.test:25") == 0, "target %s", r.target);
    CHECK(strcmp(r.reason, "mx broken") == 0 && strcmp(r.who, "api 127.0.0.1:4000") == 0, "strings");
    CHECK(r.ent[1].msg_id_lo == 2 && r.ent[1].rcpt_first == 3, "entries");
    proto_rebind_fini(&r);
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "campaign:tenant@example.com", "", "", two, 1, &b) == 0, "queue");
    CHECK(proto_rebind_decode(b.data, b.len, &r, &why) == 0 && r.reason[0] == '\0', "empty reason: %s", why);
    proto_rebind_fini(&r);
    buf_fini(&b);
}

static void test_route_ok(void)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"mx.example.test", true},    {"[127.0.0.1]:25", true}, {"a:1,b:2,c:3", true}, {"[::1]:2525", true},
        {"", false},                  {"a,,b", false},          {"a,", false},         {",a", false},
        {"a b:25", false},            {"a:0", false},           {"a:65536", false},    {"[127.0.0.1", false},
        {"a,b,c,d,e,f,g,h,i", false}, {"a:\x01", false},        {"a:25x", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(proto_rebind_route_ok(cases[i].s, strlen(cases[i].s)) == cases[i].ok, "route \"%s\"", cases[i].s);
}

enum corrupt { C_MAGIC, C_VERSION, C_KIND, C_COUNT0, C_COUNT_BIG, C_LONGER, C_SHORTER, C_RESERVED, C_ENT_RESERVED,
               C_DUP, C_CR_REASON, C_SPACE_QUEUE, C_NUL_WHO, C__N };

static void test_refusals(void)
{
    static const char *const names[C__N] = {"magic", "version", "kind", "count 0", "count > max", "longer",
                                            "shorter", "reserved", "entry reserved", "a message twice",
                                            "CR in reason", "space in queue", "NUL in who"};
    struct buf good = {0};
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "q1", "why", "me", two, 2, &good) == 0, "encode");
    for (int c = 0; c < C__N; c++) {
        uint8_t run[512];
        size_t len = good.len;
        memcpy(run, good.data, good.len);
        struct proto_rebind_hdr *h = (void *)run;
        struct proto_rebind_ent *e = (void *)(run + sizeof(*h));
        char *strs = (char *)(run + sizeof(*h) + 2 * sizeof(*e));
        switch (c) {
        case C_MAGIC: h->magic ^= 1; break;
        case C_VERSION: h->version = 2; break;
        case C_KIND: h->kind = 3; break;
        case C_COUNT0: h->count = 0; break;
        case C_COUNT_BIG: h->count = PROTO_REBIND_MAX + 1; break;
        case C_LONGER: run[len++] = 'x'; break;
        case C_SHORTER: len--; break;
        case C_RESERVED: h->reserved2 = 1; break;
        case C_ENT_RESERVED: e[1].reserved = 7; break;
        case C_DUP: e[1].msg_id_lo = e[0].msg_id_lo; break;
        case C_CR_REASON: strs[2] = '\r'; break;
        case C_SPACE_QUEUE: strs[1] = ' '; break;
        case C_NUL_WHO: strs[6] = '\0'; break;
        }
        struct proto_rebind r;
        const char *why = NULL;
        CHECK(proto_rebind_decode(run, len, &r, &why) == -EBADMSG && why && r.mem == NULL, "%s accepted", names[c]);
    }
    struct proto_rebind r;
    const char *why = NULL;
    CHECK(proto_rebind_decode(good.data, 10, &r, &why) == -EBADMSG, "a run shorter than its header");
    CHECK(proto_rebind_decode(NULL, 0, &r, &why) == -EBADMSG, "no run");
    buf_fini(&good);

    /* the encoder refuses what the decoder would */
    struct buf b = {0};
    struct proto_rebind_ent dup[2] = {two[0], two[0]};
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "q", "", "", two, 0, &b) == -EINVAL, "count 0");
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "q", "", "", dup, 2, &b) == -EINVAL, "dup");
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "a q", "", "", two, 1, &b) == -EINVAL, "space in queue");
    CHECK(proto_rebind_encode(PROTO_REBIND_ROUTE, "a:99999", "", "", two, 1, &b) == -EINVAL, "bad route");
    CHECK(proto_rebind_encode(PROTO_REBIND_QUEUE, "q", "a\nb", "", two, 1, &b) == -EINVAL, "LF in reason");
    CHECK(proto_rebind_encode(3, "q", "", "", two, 1, &b) == -EINVAL, "unknown kind");
    buf_fini(&b);
}

static void test_abort(void)
{
    struct proto_rec rec = {.type = MSG_SCHEDULER_LEASE_ABORT};
    struct proto_abort a;
    rec.body.abort.lease = 7;
    rec.body.abort.lease_gen = 3;
    CHECK(proto_rebind_abort_check(&rec, &a) && a.lease == 7 && a.lease_gen == 3, "a good abort");
    rec.body.abort.reserved[3] = 1;
    CHECK(!proto_rebind_abort_check(&rec, &a), "reserved words set");
}

int main(void)
{
    test_round_trip();
    test_route_ok();
    test_refusals();
    test_abort();
    CHECK_EXIT();
}
