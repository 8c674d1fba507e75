/*
 * fuzz_smtp_reply - SMTP server replies: the reply parser, and the client machine driven by them
 *
 * Input: 1 octet of options (split seed, pipelining, TLS), then server octets. The parser must give the
 * same sequence of statuses, codes, enhanced codes and texts fed whole and one octet at a time, its
 * texts must be printable, and it must never keep more than its fixed struct. The machine, fed the
 * same octets in seeded chunks with a message sent whenever it is READY, must produce only printable
 * event texts and never crash; its per-message events must be complete (one RCPT per recipient before
 * MESSAGE_DONE).
 */
#include "smtp/smtp_reply.h"
#include "egress/egress_smtp.h"

#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"



struct rec {
    int status;
    size_t used_total;
    struct smtp_reply r;
};

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 32 || *s == 127)
            return false;
    return true;
}

/* parse - every completed reply (or the error) as records; chunk 0 means whole */
static size_t parse(const uint8_t *s, size_t n, size_t chunk, struct rec *out, size_t max)
{
    struct smtp_reply_parser p;
    size_t k = 0, i = 0;
    smtp_reply_init(&p, 64, 8);
    while (i < n && k < max) {
        size_t used, len = chunk ? (chunk < n - i ? chunk : n - i) : n - i;
        int rc = smtp_reply_feed(&p, (const char *)s + i, len, &used);
        CHECK(used <= len);
        i += used;
        if (rc == SMTP_REPLY_DONE || rc == SMTP_REPLY_ERROR) {
            out[k].status = rc;
            out[k].used_total = i;
            out[k].r = rc == SMTP_REPLY_DONE ? p.reply : (struct smtp_reply){0};
            if (rc == SMTP_REPLY_DONE) {
                CHECK(p.reply.code >= 200 && p.reply.code <= 599);
                CHECK(p.reply.lines >= 1 && p.reply.lines <= 8);
                CHECK(printable(p.reply.text) && strlen(p.reply.text) < SMTP_REPLY_TEXT_MAX);
                CHECK(p.reply.enhanced[0] == 0 || p.reply.enhanced[0] == '0' + p.reply.code / 100);
            }
            k++;
            if (rc == SMTP_REPLY_ERROR)
                break;
        } else if (rc == SMTP_REPLY_MORE) {
            CHECK(used == len);
        }
    }
    return k;
}

static uint32_t rng(uint32_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 17;
    *st ^= *st << 5;
    return *st;
}

static void machine(const uint8_t *s, size_t n, uint8_t opt)
{
    static const char *const rcpts[] = {"a@x.example", "b@x.example", "c@x.example"};
    static const char body[] = "x\n.y\r\nz";
    struct egress_smtp_params p = {.ehlo_name = "c.example", .line_max = 80, .lines_max = 16,
                                   .pipelining = opt & 1, .tls = (opt >> 1) % 3};
    struct egress_smtp *m = egress_smtp_new(&p);
    uint32_t st = opt | 0x100;
    size_t i = 0, rcpt_events = 0, sends = 0;
    bool in_msg = false;

    while (i < n) {
        size_t len, chunk = 1 + rng(&st) % 16;
        const char *o;
        while ((o = egress_smtp_output(m, &len)) != NULL) {
            CHECK(len > 0);
            egress_smtp_consumed(m, 1 + rng(&st) % len);
        }
        struct egress_smtp_event e;
        while (egress_smtp_next_event(m, &e)) {
            CHECK(printable(e.text) && printable(e.enhanced));
            if (e.type == EGRESS_SMTP_EV_RCPT) {
                CHECK(in_msg && e.rcpt < 3);
                rcpt_events++;
            } else if (e.type == EGRESS_SMTP_EV_MESSAGE_DONE) {
                CHECK(in_msg && rcpt_events == 3);
                in_msg = false;
            } else {
                CHECK(!in_msg || e.type >= EGRESS_SMTP_EV_CONN_FAILED);
            }
            if (e.type == EGRESS_SMTP_EV_TLS_START)
                CHECK(egress_smtp_tls_done(m) == 0);
        }
        /* a local refusal ends the message at once: feeding on keeps this loop finite */
        if (!in_msg && sends < 8 && egress_smtp_send_message(m, "s@x.example", rcpts, 3, body, sizeof(body) - 1, 0) == 0) {
            in_msg = true;
            rcpt_events = 0;
            sends++;
            continue;
        }
        if (chunk > n - i)
            chunk = n - i;
        egress_smtp_feed(m, (const char *)s + i, chunk);
        i += chunk;
    }
    egress_smtp_abort(m, "end of input");
    struct egress_smtp_event e;
    while (egress_smtp_next_event(m, &e))
        CHECK(printable(e.text));
    egress_smtp_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    const uint8_t *s = data + 1;
    size_t n = size - 1;
    enum { MAXR = 64 };
    struct rec *a = calloc(MAXR, sizeof(*a)), *b = calloc(MAXR, sizeof(*b));

    size_t ka = parse(s, n, 0, a, MAXR);
    size_t kb = parse(s, n, 1, b, MAXR);
    CHECK(ka == kb);
    for (size_t k = 0; k < ka; k++) {
        CHECK(a[k].status == b[k].status && a[k].used_total == b[k].used_total);
        CHECK(a[k].r.code == b[k].r.code && a[k].r.lines == b[k].r.lines);
        CHECK(strcmp(a[k].r.enhanced, b[k].r.enhanced) == 0 && strcmp(a[k].r.text, b[k].r.text) == 0);
    }
    machine(s, n, opt);
    free(a);
    free(b);
    return 0;
}
