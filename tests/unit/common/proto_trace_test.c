/*
 * proto_trace_test - the SMTP trace record: round trips, every refusal of the strict decoder, garbage,
 * the peer-network filter (IPv4, IPv6, IPv4-mapped), client name filters, the role-side prefilter, the
 * JSON form's escaping
 */
#include "common/proto_trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

static struct proto_trace_event server_event(void)
{
    struct proto_trace_event ev = {.side = PROTO_TRACE_SERVER, .dir = PROTO_TRACE_IN, .time_ns = 1796000000123456789u,
                                   .session = 0x0002000000000007u};
    ev.peer = (struct proto_trace_addr){.family = 4, .port = 40001, .addr = {127, 0, 0, 2}};
    ev.local = (struct proto_trace_addr){.family = 4, .port = 25, .addr = {127, 0, 0, 1}};
    proto_trace_set_text(&ev, "EHLO client.test", 16);
    return ev;
}

static struct proto_trace_event client_event(void)
{
    struct proto_trace_event ev = {.side = PROTO_TRACE_CLIENT, .dir = PROTO_TRACE_OUT, .time_ns = 1, .session = 9};
    ev.peer = (struct proto_trace_addr){.family = 6, .port = 25};
    inet_pton(AF_INET6, "2001:db8::25", ev.peer.addr);
    proto_trace_set_text(&ev, "MAIL FROM:<a@b.test>", 20);
    strcpy(ev.domain, "gmail.com");
    strcpy(ev.site, "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com");
    strcpy(ev.source, "ip-1");
    return ev;
}

static void round_trips(void)
{
    struct proto_trace_event in[4] = {server_event(), client_event(), server_event(), client_event()};
    char big[PROTO_TRACE_TEXT_MAX + 100];
    memset(big, 'x', sizeof(big));
    proto_trace_set_text(&in[2], big, sizeof(big));
    CHECK(in[2].truncated && in[2].text_len == PROTO_TRACE_TEXT_MAX, "text cut at its maximum");
    proto_trace_set_text(&in[3], "a\0b\r\n\xff", 6); /* any octets */
    in[3].dir = PROTO_TRACE_NOTE;
    memset(in[3].domain, 'd', PROTO_TRACE_NAME_MAX);
    in[3].domain[PROTO_TRACE_NAME_MAX] = '\0';
    for (size_t i = 0; i < 4; i++) {
        uint8_t rec[PROTO_TRACE_DGRAM_MAX];
        struct proto_trace_event out;
        const char *why = "";
        int n = proto_trace_encode(&in[i], rec, sizeof(rec));
        CHECK(n > 0, "case %zu encodes: %d", i, n);
        CHECK(proto_trace_decode(rec, (size_t)n, &out, &why) == 0, "case %zu decodes: %s", i, why);
        CHECK(out.side == in[i].side && out.dir == in[i].dir && out.truncated == in[i].truncated &&
                  out.time_ns == in[i].time_ns && out.session == in[i].session,
              "case %zu: fields", i);
        CHECK(out.text_len == in[i].text_len && memcmp(out.text, in[i].text, out.text_len) == 0, "case %zu: text", i);
        CHECK(memcmp(&out.peer, &in[i].peer, sizeof(out.peer)) == 0 &&
                  memcmp(&out.local, &in[i].local, sizeof(out.local)) == 0,
              "case %zu: addresses", i);
        CHECK(strcmp(out.domain, in[i].domain) == 0 && strcmp(out.site, in[i].site) == 0 &&
                  strcmp(out.source, in[i].source) == 0,
              "case %zu: names", i);
    }
    /* a server event never carries names, whatever its struct held */
    struct proto_trace_event s = server_event(), out;
    strcpy(s.domain, "x.test");
    uint8_t rec[PROTO_TRACE_DGRAM_MAX];
    const char *why;
    int n = proto_trace_encode(&s, rec, sizeof(rec));
    CHECK(n == PROTO_TRACE_HEAD + 16 && proto_trace_decode(rec, (size_t)n, &out, &why) == 0 && !out.domain[0],
          "server names dropped");
    CHECK(proto_trace_encode(&s, rec, PROTO_TRACE_HEAD) == -EMSGSIZE, "too small a buffer");
    s.dir = (enum proto_trace_dir)3;
    CHECK(proto_trace_encode(&s, rec, sizeof(rec)) == -EINVAL, "bad direction");
}

/* each case changes one octet (or the length) of a valid client record */
static void refusals(void)
{
    struct proto_trace_event ev = client_event();
    uint8_t good[PROTO_TRACE_DGRAM_MAX];
    int n = proto_trace_encode(&ev, good, sizeof(good));
    size_t text_at = PROTO_TRACE_HEAD, dom_at = text_at + ev.text_len;
    static const struct {
        int at; /* -1: length change only */
        uint8_t value;
        int len_delta;
        const char *what;
    } cases[] = {
        {0, 'X', 0, "magic"},
        {2, 2, 0, "version"},
        {3, 2, 0, "side"},
        {4, 3, 0, "direction"},
        {5, 2, 0, "unknown flag"},
        {7, 0x10, 0, "text length over its maximum"},
        {6, 21, 0, "text length not matching"},
        {67, 1, 0, "reserved octet"},
        {24, 5, 0, "peer family"},
        {25, 1, 0, "address padding"},
        {64, 200, 0, "domain length past the end"},
        {-1, 0, -1, "one octet short"},
        {-1, 0, +1, "one octet more"},
        {-2, ' ', 0, "a space in the domain"},
        {-2, 0xff, 0, "a domain that is not UTF-8"},
        {-2, 0x01, 0, "a control in the domain"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t rec[PROTO_TRACE_DGRAM_MAX + 1];
        memcpy(rec, good, (size_t)n);
        rec[n] = 0;
        if (cases[i].at >= 0)
            rec[cases[i].at] = cases[i].value;
        else if (cases[i].at == -2)
            rec[dom_at + 2] = cases[i].value;
        struct proto_trace_event out;
        const char *why = NULL;
        int rc = proto_trace_decode(rec, (size_t)(n + cases[i].len_delta), &out, &why);
        CHECK(rc == -EBADMSG && why, "%s: refused (%d)", cases[i].what, rc);
    }
    /* an IPv4 address with octets past its four, a port without an address, names on a server record */
    struct proto_trace_event s = server_event();
    uint8_t rec[PROTO_TRACE_DGRAM_MAX];
    const char *why;
    struct proto_trace_event out;
    int m = proto_trace_encode(&s, rec, sizeof(rec));
    rec[24 + 4 + 5] = 1;
    CHECK(proto_trace_decode(rec, (size_t)m, &out, &why) == -EBADMSG, "IPv4 tail");
    m = proto_trace_encode(&s, rec, sizeof(rec));
    rec[44] = 0; /* local: family none, its port and address still set */
    CHECK(proto_trace_decode(rec, (size_t)m, &out, &why) == -EBADMSG, "port without address");
    m = proto_trace_encode(&s, rec, sizeof(rec));
    rec[64] = 1;
    rec[m] = 'x';
    CHECK(proto_trace_decode(rec, (size_t)m + 1, &out, &why) == -EBADMSG, "names on a server record");
    CHECK(proto_trace_decode(rec, 0, &out, &why) == -EBADMSG, "empty");
}

/* garbage, and garbage behind a valid head: never anything but 0 or -EBADMSG, no overread (ASan) */
static void garbage(void)
{
    uint32_t x = 12345;
    struct proto_trace_event ev = client_event(), out;
    uint8_t base[PROTO_TRACE_DGRAM_MAX];
    int n = proto_trace_encode(&ev, base, sizeof(base));
    for (int round = 0; round < 200000; round++) {
        size_t len = (size_t)(x % (PROTO_TRACE_DGRAM_MAX + 50));
        uint8_t *rec = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            rec[i] = (round & 1) && i < (size_t)n && (x >> 24) % 8 ? base[i] : (uint8_t)(x >> 16);
        }
        x = x * 1103515245u + 12345u;
        const char *why;
        int rc = proto_trace_decode(rec, len, &out, &why);
        if (rc != 0 && rc != -EBADMSG)
            FAIL("round %d: %d", round, rc);
        if (rc == 0 && (out.text_len > PROTO_TRACE_TEXT_MAX || strlen(out.site) > PROTO_TRACE_NAME_MAX))
            FAIL("round %d: bounds", round);
        free(rec);
    }
}

static void filters(void)
{
    static const struct {
        const char *cidr;
        int rc;
        const char *peer; /* NULL: parse only */
        bool match;
    } cases[] = {
        {"127.0.0.2", 0, "127.0.0.2", true},
        {"127.0.0.2", 0, "127.0.0.3", false},
        {"127.0.0.2/32", 0, "127.0.0.2", true},
        {"127.0.0.0/8", 0, "127.9.9.9", true},
        {"127.0.0.0/8", 0, "128.0.0.1", false},
        {"127.0.0.0/8", 0, "::ffff:127.0.0.3", true}, /* a dual-stack listener's IPv4 client */
        {"127.0.0.0/8", 0, "::1", false},
        {"10.1.2.0/23", 0, "10.1.3.200", true},
        {"10.1.2.0/23", 0, "10.1.4.1", false},
        {"0.0.0.0/0", 0, "192.168.1.1", true},
        {"::1", 0, "::1", true},
        {"::1/128", 0, "127.0.0.1", false},
        {"2001:db8::/32", 0, "2001:db8:ffff::1", true},
        {"2001:db8::/33", 0, "2001:db8:8000::1", false},
        {"127.0.0.1/33", -EINVAL, NULL, false},
        {"::1/129", -EINVAL, NULL, false},
        {"127.0.0.1/", -EINVAL, NULL, false},
        {"127.0.0.1/-1", -EINVAL, NULL, false},
        {"127.0.0.1/0008", -EINVAL, NULL, false},
        {"127.0.0.1/8x", -EINVAL, NULL, false},
        {"localhost", -EINVAL, NULL, false},
        {"", -EINVAL, NULL, false},
        {"/8", -EINVAL, NULL, false},
        {"1.2.3.4.5", -EINVAL, NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct proto_trace_filter f = {.side = PROTO_TRACE_SERVER};
        int rc = proto_trace_filter_cidr(&f, cases[i].cidr);
        CHECK(rc == cases[i].rc, "%s: %d", cases[i].cidr, rc);
        if (!cases[i].peer || rc)
            continue;
        struct proto_trace_event ev = server_event();
        if (inet_pton(AF_INET, cases[i].peer, ev.peer.addr) == 1) {
            ev.peer.family = 4;
        } else {
            ev.peer.family = 6;
            inet_pton(AF_INET6, cases[i].peer, ev.peer.addr);
        }
        CHECK(proto_trace_filter_match(&f, &ev) == cases[i].match, "%s against %s", cases[i].cidr, cases[i].peer);
    }
    /* client filters: domain any case, site and source exact; the other side never matches */
    struct proto_trace_event ev = client_event();
    struct proto_trace_filter f = {.side = PROTO_TRACE_CLIENT};
    CHECK(proto_trace_filter_match(&f, &ev), "no filter");
    strcpy(f.domain, "GMAIL.com");
    CHECK(proto_trace_filter_match(&f, &ev), "domain, any case");
    strcpy(f.source, "ip-2");
    CHECK(!proto_trace_filter_match(&f, &ev), "another source");
    f = (struct proto_trace_filter){.side = PROTO_TRACE_SERVER};
    CHECK(!proto_trace_filter_match(&f, &ev), "a server trace never sees client events");
    CHECK(!proto_trace_name_ok("a b", 3) && !proto_trace_name_ok("\xc3", 1) && proto_trace_name_ok("bücher.de", 10),
          "names");
}

/* the role-side prefilter: over-inclusive, never under */
static void prefilter(void)
{
    struct proto_trace_shm_filter fs[PROTO_TRACE_SHM_FILTERS];
    for (size_t i = 0; i < PROTO_TRACE_SHM_FILTERS; i++)
        fs[i] = (struct proto_trace_shm_filter){.side = PROTO_TRACE_SHM_EMPTY};
    struct proto_trace_event sv = server_event(), cl = client_event();
    CHECK(!proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "no slot: nothing wanted");

    struct proto_trace_filter f = {.side = PROTO_TRACE_SERVER};
    proto_trace_filter_cidr(&f, "127.0.0.3/32");
    proto_trace_shm_filter_set(&fs[3], &f);
    CHECK(!proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "127.0.0.2 not in 127.0.0.3/32");
    CHECK(!proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &cl), "a server slot never wants client events");
    sv.peer.addr[3] = 3;
    CHECK(proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "127.0.0.3 wanted");
    sv.peer.addr[3] = 2;
    fs[3].prefix = 200; /* scribbled on: wants everything of its side */
    CHECK(proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "a slot that makes no sense");
    fs[3].prefix = 32;
    fs[3].family = 9;
    CHECK(proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "a family that makes no sense");
    fs[3].side = 7;
    CHECK(!proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &sv), "a side that is none");

    struct proto_trace_filter c = {.side = PROTO_TRACE_CLIENT};
    strcpy(c.domain, "GMAIL.COM");
    proto_trace_shm_filter_set(&fs[0], &c);
    CHECK(proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &cl), "domain hash, any case");
    strcpy(cl.domain, "yahoo.com");
    CHECK(!proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &cl), "another domain");
    c = (struct proto_trace_filter){.side = PROTO_TRACE_CLIENT};
    strcpy(c.source, "ip-1");
    proto_trace_shm_filter_set(&fs[1], &c);
    CHECK(proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, &cl), "source");
    CHECK(proto_trace_name_hash("", false) != 0 && proto_trace_name_hash("A", true) == proto_trace_name_hash("a", true),
          "hash");
}

static void json_form(void)
{
    struct proto_trace_event ev = server_event();
    proto_trace_set_text(&ev, "a\r\n\x01\xff\xc3\xa9\"", 8);
    char *line = proto_trace_event_json(&ev, "ingress", 3);
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    CHECK(o != NULL, "JSON: %s", line);
    CHECK(strcmp(json_string_value(json_object_get(o, "text")), "a\r\n\x01\\xFF\xc3\xa9\"") == 0, "text: %s", line);
    CHECK(strcmp(json_string_value(json_object_get(o, "peer")), "127.0.0.2:40001") == 0, "peer");
    CHECK(strcmp(json_string_value(json_object_get(o, "dir")), "<-") == 0, "dir");
    CHECK(strcmp(json_string_value(json_object_get(o, "session")), "0002000000000007") == 0, "session");
    CHECK(strcmp(json_string_value(json_object_get(o, "time")), "2026-11-30T00:53:20.123456Z") == 0, "time: %s",
          json_string_value(json_object_get(o, "time")));
    CHECK(json_integer_value(json_object_get(o, "worker")) == 3 && !json_object_get(o, "domain"), "worker, no names");
    CHECK(!strchr(line, '\n'), "one line");
    json_decref(o);
    free(line);
    struct proto_trace_event c = client_event();
    line = proto_trace_event_json(&c, "egress", 0);
    o = json_loads(line, 0, &err);
    CHECK(o && strcmp(json_string_value(json_object_get(o, "peer")), "[2001:db8::25]:25") == 0 &&
              strcmp(json_string_value(json_object_get(o, "domain")), "gmail.com") == 0 &&
              strcmp(json_string_value(json_object_get(o, "local")), "-") == 0,
          "client: %s", line);
    json_decref(o);
    free(line);
}

int main(void)
{
    round_trips();
    refusals();
    garbage();
    filters();
    prefilter();
    json_form();
    CHECK_EXIT();
}
