/*
 * proto_tsa_test - the TSA response and event runs: round trips, and every refusal of the decoders
 * (and of the encoders, which refuse what the decoders would)
 */
#include <errno.h>
#include <string.h>

#include "common/proto_tsa.h"
#include "tests/lib/check.h"

static void resp_fill(struct proto_tsa_resp *r, const char *domain, const char *text)
{
    memset(r, 0, sizeof(*r));
    r->hdr.kind = PROTO_TSA_TRANSIENT;
    r->hdr.timestamp_ms = 1765000000000;
    proto_tsa_resp_set(r, PROTO_TSA_R_DOMAIN, domain);
    proto_tsa_resp_set(r, PROTO_TSA_R_SITE, "mta5.am0.yahoodns.net");
    proto_tsa_resp_set(r, PROTO_TSA_R_SOURCE, "ip-1");
    proto_tsa_resp_set(r, PROTO_TSA_R_TENANT, "acme");
    proto_tsa_resp_set(r, PROTO_TSA_R_CAMPAIGN, NULL);
    proto_tsa_resp_set(r, PROTO_TSA_R_TEXT, text);
}

static void test_resp(void)
{
    struct proto_tsa_resp r, out;
    struct buf b = {0};
    const char *why = NULL;

    resp_fill(&r, "yahoo.com", "421 4.7.0 [TS04] Messages from 10.0.0.1 temporarily deferred");
    CHECK(proto_tsa_resp_encode(&r, &b) == 0, "encode");
    CHECK(proto_tsa_resp_decode(b.data, b.len, &out, &why) == 0, "decode: %s", why);
    CHECK(out.hdr.kind == PROTO_TSA_TRANSIENT && out.hdr.timestamp_ms == 1765000000000, "header");
    CHECK(strcmp(out.str[PROTO_TSA_R_DOMAIN], "yahoo.com") == 0, "domain %s", out.str[PROTO_TSA_R_DOMAIN]);
    CHECK(strcmp(out.str[PROTO_TSA_R_TENANT], "acme") == 0 && out.str[PROTO_TSA_R_CAMPAIGN][0] == '\0', "tenant");
    CHECK(strncmp(out.str[PROTO_TSA_R_TEXT], "421 4.7.0 [TS04]", 16) == 0, "text");
    proto_tsa_resp_fini(&out);

    /* a long text is cut at the maximum; CR and LF travel as spaces */
    char longtext[3000];
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    longtext[5] = '\n';
    resp_fill(&r, "yahoo.com", longtext);
    CHECK(r.hdr.len[PROTO_TSA_R_TEXT] == PROTO_TSA_TEXT_MAX, "cut to %u", r.hdr.len[PROTO_TSA_R_TEXT]);
    CHECK(proto_tsa_resp_encode(&r, &b) == 0, "encode long");
    CHECK(proto_tsa_resp_decode(b.data, b.len, &out, &why) == 0, "decode long: %s", why);
    CHECK(out.str[PROTO_TSA_R_TEXT][5] == ' ', "LF as a space");
    proto_tsa_resp_fini(&out);

    /* the encoder refuses what the decoder would */
    resp_fill(&r, "", "421");
    CHECK(proto_tsa_resp_encode(&r, &b) == -EINVAL, "no domain");
    resp_fill(&r, "d", "421");
    r.hdr.kind = 3;
    CHECK(proto_tsa_resp_encode(&r, &b) == -EINVAL, "bad kind");

    /* refusals of the decoder */
    resp_fill(&r, "yahoo.com", "421 x");
    CHECK(proto_tsa_resp_encode(&r, &b) == 0, "encode");
    static const struct {
        const char *name;
        size_t at; /* byte to change, or SIZE_MAX: truncate by one */
        uint8_t val;
    } bad[] = {
        {"magic", 0, 0x00},
        {"version", 4, 9},
        {"kind", 6, 7},
        {"NUL in a string", sizeof(struct proto_tsa_resp_hdr) + 2, 0},
        {"CR in a string", sizeof(struct proto_tsa_resp_hdr) + 2, '\r'},
        {"truncated", SIZE_MAX, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t copy[512];
        memcpy(copy, b.data, b.len);
        size_t len = b.len;
        if (bad[i].at == SIZE_MAX)
            len--;
        else
            copy[bad[i].at] = bad[i].val;
        why = NULL;
        CHECK(proto_tsa_resp_decode(copy, len, &out, &why) == -EBADMSG && why && out._mem == NULL, "%s accepted",
              bad[i].name);
    }
    CHECK(proto_tsa_resp_decode(b.data, 3, &out, &why) == -EBADMSG, "shorter than the header");
    CHECK(proto_tsa_resp_decode(NULL, 0, &out, &why) == -EBADMSG, "no run");
    buf_fini(&b);
}

static void event_fill(struct proto_tsa_event *e, uint16_t action, const char *name, const char *value)
{
    memset(e, 0, sizeof(*e));
    e->hdr.start_ms = 1000;
    e->hdr.expiry_ms = 3601000;
    e->hdr.line = 42;
    e->hdr.count = 5;
    e->hdr.action = action;
    proto_tsa_event_set(e, PROTO_TSA_E_SCOPE, "provider:yahoo");
    proto_tsa_event_set(e, PROTO_TSA_E_FILE, "shaping.toml");
    proto_tsa_event_set(e, PROTO_TSA_E_REGEX, "\\[TS04\\]");
    proto_tsa_event_set(e, PROTO_TSA_E_RESPONSE, "421 4.7.0 [TS04] deferred");
    proto_tsa_event_set(e, PROTO_TSA_E_SOURCE, "ip-1");
    proto_tsa_event_set(e, PROTO_TSA_E_SITE, "mta5.am0.yahoodns.net");
    proto_tsa_event_set(e, PROTO_TSA_E_NAME, name);
    proto_tsa_event_set(e, PROTO_TSA_E_VALUE, value);
}

static void test_events(void)
{
    struct proto_tsa_event e;
    struct proto_tsa_events out;
    struct buf b = {0};
    const char *why = NULL;

    proto_tsa_events_begin(&b);
    CHECK(proto_tsa_events_decode(b.data, b.len, &out, &why) == 0 && out.count == 0, "empty run: %s", why);
    proto_tsa_events_fini(&out);
    event_fill(&e, 0, NULL, NULL);
    CHECK(proto_tsa_events_append(&b, &e) == 0, "append Suspend");
    event_fill(&e, 1, "connection_limit", "1");
    CHECK(proto_tsa_events_append(&b, &e) == 0, "append SetConfig");
    CHECK(b.len % 8 == 0 && proto_tsa_events_count(&b) == 2, "padded, counted");
    CHECK(proto_tsa_events_decode(b.data, b.len, &out, &why) == 0, "decode: %s", why);
    CHECK(out.count == 2 && out.ev[0].hdr.action == 0 && out.ev[1].hdr.action == 1, "actions");
    CHECK(out.count == 2 && strcmp(out.ev[1].str[PROTO_TSA_E_NAME], "connection_limit") == 0 &&
              strcmp(out.ev[1].str[PROTO_TSA_E_VALUE], "1") == 0 && out.ev[1].hdr.line == 42 &&
              out.ev[1].hdr.expiry_ms == 3601000,
          "SetConfig event");
    proto_tsa_events_fini(&out);

    /* appends the decoder would refuse leave the run unchanged */
    size_t len = b.len;
    static const struct {
        const char *name;
        uint16_t action;
        const char *opt, *val;
        int64_t start, expiry;
    } refused[] = {
        {"SetConfig without a value", 1, "connection_limit", NULL, 1000, 2000},
        {"Suspend with an option", 0, "connection_limit", "1", 1000, 2000},
        {"unknown action", 8, NULL, NULL, 1000, 2000},
        {"expiry before start", 0, NULL, NULL, 2000, 1000},
        {"negative start", 0, NULL, NULL, -5, 1000},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        event_fill(&e, refused[i].action, refused[i].opt, refused[i].val);
        e.hdr.start_ms = refused[i].start;
        e.hdr.expiry_ms = refused[i].expiry;
        CHECK(proto_tsa_events_append(&b, &e) == -EINVAL && b.len == len, "%s appended", refused[i].name);
    }
    event_fill(&e, 0, NULL, NULL);
    proto_tsa_event_set(&e, PROTO_TSA_E_SITE, NULL);
    CHECK(proto_tsa_events_append(&b, &e) == -EINVAL, "neither domain nor site appended");

    /* damaged runs */
    static const struct {
        const char *name;
        size_t at;
        uint8_t val;
    } bad[] = {
        {"magic", 0, 1},
        {"count larger", 8, 3},
        {"action", sizeof(struct proto_tsa_events_hdr) + 24, 9},
        {"string with a NUL", sizeof(struct proto_tsa_events_hdr) + sizeof(struct proto_tsa_event_hdr) + 1, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t copy[4096];
        memcpy(copy, b.data, b.len);
        copy[bad[i].at] = bad[i].val;
        why = NULL;
        CHECK(proto_tsa_events_decode(copy, b.len, &out, &why) == -EBADMSG && why && out._mem == NULL,
              "%s accepted", bad[i].name);
    }
    uint8_t copy[4096];
    memcpy(copy, b.data, b.len);
    copy[b.len - 1] = 1; /* padding */
    CHECK(proto_tsa_events_decode(copy, b.len, &out, &why) == -EBADMSG, "non-zero padding accepted");
    CHECK(proto_tsa_events_decode(b.data, b.len - 8, &out, &why) == -EBADMSG, "truncated run accepted");
    buf_fini(&b);
}

int main(void)
{
    test_resp();
    test_events();
    CHECK_EXIT();
}
