/*
 * gen_msg - what ringmail-gen sends: sizes, bodies, headers, recipient domains
 *
 * A synthetic body is built once and shared by every message: filler lines of at most 78
 * characters (RFC 5322 section 2.1.1), CRLF, and none starts with a dot, so it needs no stuffing;
 * the per-message part is only the header block. A --body-file is read once, its line endings
 * made CRLF (a bare LF or CR would be refused by a strict server, BARE-LF smuggling), dot-stuffed,
 * and sent as is with no generated headers but one.
 * That one is X-Gen-Sent, the wall-clock time (CLOCK_REALTIME, microseconds since the epoch) at which
 * the message's MAIL FROM was queued for sending, first in every message: a sink on the same host
 * subtracts it from its arrival time to get injection-to-delivery latency, and placing it on top
 * keeps it inside the first few KiB that a sink scans even after an MTA prepends its trace fields.
 */
#include "tools/gen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/mem.h"
#include "smtp/smtp_stuff.h"

void gen_msg_synth_body(size_t size, char **out, size_t *out_len)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog while ringmail measures "
                                "how fast a mail transfer agent accepts what it is given ";
    size_t wl = sizeof(words) - 1;
    char *b = xmalloc(size + 82);
    size_t n = 0, w = 0;

    while (n < size) {
        /* 72 text characters and CRLF per line, the last line shorter to land near `size` */
        size_t line = size - n >= 74 ? 72 : (size - n > 2 ? size - n - 2 : 1);
        for (size_t i = 0; i < line; i++) {
            b[n++] = words[w];
            w = (w + 1) % wl;
        }
        if (b[n - line] == '.' || b[n - line] == ' ')
            b[n - line] = 'x';
        b[n++] = '\r';
        b[n++] = '\n';
    }
    *out = b;
    *out_len = n;
}

void gen_msg_stuff(const char *in, size_t len, char **out, size_t *out_len)
{
    /* worst case: every byte a bare CR or LF (2 each) or a dot at a line start (2 each) */
    char *b = xmalloc(len * 2 + 3);
    size_t n = 0, pl;
    const char *piece;
    struct smtp_stuff st;

    /* the end of data is gen_conn.c's to send, after the headers and this body */
    smtp_stuff_init(&st, in, len, false);
    while ((piece = smtp_stuff_next(&st, &pl)) != NULL) {
        memcpy(b + n, piece, pl);
        n += pl;
    }
    *out = b;
    *out_len = n;
}

int gen_msg_file_body(const char *path, char **out, size_t *out_len, char **err)
{
    char *raw;
    size_t len;
    int rc = file_read_all(path, GEN_BODY_MAX, &raw, &len);

    if (rc == -EFBIG) {
        *err = xasprintf("%s: larger than %u bytes", path, GEN_BODY_MAX);
        return rc;
    }
    if (rc < 0) {
        *err = xasprintf("%s: %s", path, strerror(-rc));
        return rc;
    }
    gen_msg_stuff(raw, len, out, out_len);
    free(raw);
    return 0;
}

unsigned gen_msg_pick_domain(const struct gen_opts *o)
{
    unsigned r;

    if (o->n_domains <= 1)
        return 0;
    r = (unsigned)(random() % o->weight_total);
    for (unsigned i = 0; i < o->n_domains; i++) {
        if (r < o->domains[i].weight)
            return i;
        r -= o->domains[i].weight;
    }
    return o->n_domains - 1;
}

int gen_msg_add_domain(struct gen_opts *o, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    unsigned long w = 1;
    size_t nlen = colon ? (size_t)(colon - arg) : strlen(arg);

    if (o->n_domains >= GEN_DOMAINS_MAX || nlen == 0 || nlen > 253)
        return -EINVAL;
    if (colon) {
        char *end;
        errno = 0;
        w = strtoul(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || w == 0 || w > 1000000)
            return -EINVAL;
    }
    for (size_t i = 0; i < nlen; i++) {
        char ch = arg[i];
        if (!(ch == '-' || ch == '.' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z')))
            return -EINVAL;
    }
    o->domains[o->n_domains].name = xstrndup(arg, nlen);
    o->domains[o->n_domains].weight = (unsigned)w;
    o->n_domains++;
    o->weight_total += (unsigned)w;
    return 0;
}

char *gen_msg_stamp(uint64_t sent_us)
{
    return xasprintf("X-Gen-Sent: %llu\r\n", (unsigned long long)sent_us);
}

char *gen_msg_headers(const struct gen *g, uint64_t seq, const char *rcpt_domain, uint64_t sent_us)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return xasprintf("X-Gen-Sent: %llu\r\n"
                     "From: <%s>\r\n"
                     "To: <u%llur0@%s>\r\n"
                     "Subject: ringmail-gen message %llu\r\n"
                     "Date: %s\r\n"
                     "Message-ID: <%llu.%ld.%llu@ringmail-gen.invalid>\r\n"
                     "MIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=us-ascii\r\n"
                     "\r\n",
                     (unsigned long long)sent_us, g->o.sender, (unsigned long long)seq, rcpt_domain,
                     (unsigned long long)seq, date, (unsigned long long)seq, (long)getpid(), (unsigned long long)g->start_ns);
}
