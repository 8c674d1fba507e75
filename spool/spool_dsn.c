/*
 * spool_dsn - delivery status notifications (RFC 3464, RFC 6522 multipart/report, RFC 3834)
 *
 * The message layout, what is refused and how peer text is made safe are in spool_dsn.h.
 * Every part is built into its own buffer first, so that the boundary can be chosen afterwards
 * and checked against all of them; then the message is assembled in one buffer.
 * Every line written here goes through dsn_field() (folded header-style fields) or dsn_wrap()
 * (text paragraphs), both of which keep lines under SPOOL_DSN_LINE_MAX, or is a fixed line.
 */
#include "spool/spool_dsn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"

/* preferred line length for what we write ourselves; hard limit is SPOOL_DSN_LINE_MAX */
#define DSN_SOFT_COLS 76u
/* a run without spaces longer than this is split by a fold */
#define DSN_CHUNK 900u
/* cap on one sanitized value other than a diagnostic (addresses, host names, ids) */
#define DSN_MAX_VALUE 1024u

/*
 * clean - peer text made safe for one header-style value: controls (CR, LF, NUL, TAB, ...) become
 * spaces, bytes outside printable US-ASCII become '?', runs of spaces are kept as they are
 * (dsn_field folds at them), leading and trailing spaces go. Longer than max: cut, "..." added.
 */
static char *clean(const char *s, size_t max)
{
    if (!s)
        return xstrdup("");
    size_t n = strlen(s);
    bool cut = n > max;
    if (cut)
        n = max;
    char *out = xmalloc(n + 4);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c < 0x20 || c == 0x7f ? ' ' : c > 0x7e ? '?' : (char)c;
    }
    while (o && out[o - 1] == ' ')
        o--;
    if (cut)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    size_t lead = strspn(out, " ");
    memmove(out, out + lead, o - lead + 1);
    return out;
}

/* bare_addr - clean() without one pair of surrounding angle brackets */
static char *bare_addr(const char *s)
{
    char *a = clean(s, DSN_MAX_VALUE);
    size_t n = strlen(a);
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
        memmove(a, a + 1, n - 2);
        a[n - 2] = '\0';
    }
    return a;
}

/*
 * dsn_emit_words - write value (already clean: no controls) continuing a line that is `col`
 * octets long; breaks at spaces past DSN_SOFT_COLS with CRLF + `indent`, and splits any run of
 * more than DSN_CHUNK octets, so no line reaches SPOOL_DSN_LINE_MAX. Ends with CRLF.
 */
static void dsn_emit_words(struct buf *b, size_t col, const char *value, const char *indent)
{
    size_t ind = strlen(indent);
    const char *p = value;
    bool first = true;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t w = strcspn(p, " ");
        size_t take = w > DSN_CHUNK ? DSN_CHUNK : w;
        if (!first && col + 1 + take > DSN_SOFT_COLS && col > ind) {
            buf_puts(b, "\r\n");
            buf_puts(b, indent);
            col = ind;
        } else if (!first) {
            buf_append(b, " ", 1);
            col++;
        }
        if (col + take > SPOOL_DSN_LINE_MAX - 2) {
            buf_puts(b, "\r\n");
            buf_puts(b, indent);
            col = ind;
        }
        buf_append(b, p, take);
        col += take;
        p += take;
        first = false;
        /* the rest of a long run goes on the next line, glued by the fold alone */
        while (w > take) {
            w -= take;
            take = w > DSN_CHUNK ? DSN_CHUNK : w;
            buf_puts(b, "\r\n");
            buf_puts(b, indent);
            buf_append(b, p, take);
            col = ind + take;
            p += take;
        }
    }
    buf_puts(b, "\r\n");
}

/* dsn_field - "Name: value" folded (continuation lines start with a space) */
static void dsn_field(struct buf *b, const char *name, const char *value)
{
    buf_puts(b, name);
    buf_puts(b, ": ");
    dsn_emit_words(b, strlen(name) + 2, value, " ");
}

/* dsn_wrap - a text paragraph, lines starting with indent */
static void dsn_wrap(struct buf *b, const char *indent, const char *text)
{
    buf_puts(b, indent);
    dsn_emit_words(b, strlen(indent), text, indent);
}

/* rfc5322_date - "Tue, 14 Nov 2023 22:13:20 +0000"; no strftime, so the locale cannot change it */
static void rfc5322_date(uint64_t ns, char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool status_ok(const char *s)
{
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    s += 2;
    for (int part = 0; part < 2; part++) {
        size_t d = strspn(s, "0123456789");
        if (d < 1 || d > 3)
            return false;
        s += d;
        if (part == 0 && *s++ != '.')
            return false;
    }
    return *s == '\0';
}

/* msgid_ok - one "<...>" of printable ASCII without spaces or further brackets */
static bool msgid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > DSN_CHUNK || s[0] != '<' || s[n - 1] != '>')
        return false;
    for (size_t i = 1; i + 1 < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '<' || s[i] == '>')
            return false;
    return true;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char r[32];
    if (nbytes > sizeof(r))
        nbytes = sizeof(r);
    if (getrandom(r, nbytes, GRND_NONBLOCK) != (ssize_t)nbytes) {
        /* no entropy yet (early boot): unique enough for a boundary, which is checked anyway */
        uint64_t x = clock_real_ns() ^ (clock_mono_ns() << 17) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < nbytes; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static bool null_sender(const char *s)
{
    if (!s)
        return true;
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n == 0 || (n == 2 && s[0] == '<' && s[1] == '>');
}

/* ---- parts ---- */

static void part_text(struct buf *b, const struct spool_dsn_input *in, const char *mta, bool any_failed,
                      bool any_delayed)
{
    buf_printf(b, "This is the mail delivery system at %s.\r\n\r\n", mta);
    if (any_failed)
        dsn_wrap(b, "",
                 "Your message could not be delivered to one or more recipients. This is a permanent "
                 "error; the message will not be retried for them.");
    if (any_failed && any_delayed)
        buf_puts(b, "\r\n");
    if (any_delayed)
        dsn_wrap(b, "",
                 "Delivery of your message to one or more recipients has been delayed. The message is "
                 "still queued and delivery will be retried; you do not need to send it again.");
    buf_puts(b, "\r\n");
    for (size_t i = 0; i < in->n_rcpts; i++) {
        const struct spool_dsn_rcpt *r = &in->rcpts[i];
        char *addr = bare_addr(r->final_recipient);
        char *host = clean(r->remote_mta, DSN_MAX_VALUE);
        char *diag = clean(r->diagnostic, SPOOL_DSN_MAX_DIAGNOSTIC);
        char *line = xasprintf("<%s>: %s", addr,
                               r->action == SPOOL_DSN_FAILED ? "delivery failed" : "delivery delayed");
        dsn_wrap(b, "", line);
        free(line);
        if (*diag) {
            line =
                *host ? xasprintf("The server %s answered: %s", host, diag) : xasprintf("Reason: %s", diag);
            dsn_wrap(b, "    ", line);
            free(line);
        }
        buf_puts(b, "\r\n");
        free(addr);
        free(host);
        free(diag);
    }
    char *qid = clean(in->queue_id, DSN_MAX_VALUE);
    char *mid = msgid_ok(in->message_id) ? xstrdup(in->message_id) : xstrdup("");
    if (*mid || *qid) {
        char *line = xasprintf("Original message%s%s%s%s.", *mid ? ": Message-ID " : "", mid,
                               *qid ? ", queue id " : "", qid);
        dsn_wrap(b, "", line);
        free(line);
    }
    buf_puts(b, "The headers of the original message are attached.\r\n");
    free(qid);
    free(mid);
}

static void part_status(struct buf *b, const struct spool_dsn_input *in, const char *mta)
{
    char *v = xasprintf("dns; %s", mta);
    dsn_field(b, "Reporting-MTA", v);
    free(v);
    char *qid = clean(in->queue_id, DSN_MAX_VALUE);
    if (*qid)
        dsn_field(b, "X-Ringmail-Queue-ID", qid);
    free(qid);
    char *envid = clean(in->envelope_id, DSN_MAX_VALUE);
    if (*envid)
        dsn_field(b, "Original-Envelope-Id", envid);
    free(envid);
    char date[40];
    if (in->arrival_ns) {
        rfc5322_date(in->arrival_ns, date);
        dsn_field(b, "Arrival-Date", date);
    }
    for (size_t i = 0; i < in->n_rcpts; i++) {
        const struct spool_dsn_rcpt *r = &in->rcpts[i];
        buf_puts(b, "\r\n");
        char *a;
        if (r->original_recipient && *r->original_recipient) {
            a = bare_addr(r->original_recipient);
            v = xasprintf("rfc822; %s", a);
            dsn_field(b, "Original-Recipient", v);
            free(v);
            free(a);
        }
        a = bare_addr(r->final_recipient);
        v = xasprintf("rfc822; %s", a);
        dsn_field(b, "Final-Recipient", v);
        free(v);
        free(a);
        bool failed = r->action == SPOOL_DSN_FAILED;
        dsn_field(b, "Action", failed ? "failed" : "delayed");
        dsn_field(b, "Status", status_ok(r->status) ? r->status : failed ? "5.0.0" : "4.0.0");
        char *host = clean(r->remote_mta, DSN_MAX_VALUE);
        if (*host) {
            v = xasprintf("dns; %s", host);
            dsn_field(b, "Remote-MTA", v);
            free(v);
        }
        free(host);
        char *diag = clean(r->diagnostic, SPOOL_DSN_MAX_DIAGNOSTIC);
        if (*diag) {
            v = xasprintf("smtp; %s", diag);
            dsn_field(b, "Diagnostic-Code", v);
            free(v);
        }
        free(diag);
        if (r->last_attempt_ns) {
            rfc5322_date(r->last_attempt_ns, date);
            dsn_field(b, "Last-Attempt-Date", date);
        }
        if (!failed && r->will_retry_until_ns) {
            rfc5322_date(r->will_retry_until_ns, date);
            dsn_field(b, "Will-Retry-Until", date);
        }
    }
}

/*
 * part_headers - the original header section: up to the first empty line, whole lines only, at
 * most SPOOL_DSN_MAX_HEADERS bytes. Returns whether any byte is 8-bit.
 */
static bool part_headers(struct buf *b, const char *msg, size_t len)
{
    bool eight = false;
    size_t pos = 0;
    while (msg && pos < len) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - msg) : len; /* the line without its LF */
        size_t next = nl ? end + 1 : len;
        size_t vis = end;
        if (vis > pos && msg[vis - 1] == '\r')
            vis--;
        if (vis == pos)
            break; /* the empty line: end of the header section */
        size_t n = vis - pos;
        if (b->len + n + 2 + (n / DSN_CHUNK) * 3 > SPOOL_DSN_MAX_HEADERS)
            break;
        size_t col = 0;
        for (size_t i = pos; i < vis; i++) {
            unsigned char c = (unsigned char)msg[i];
            if (c == '\0')
                continue;
            if (col >= DSN_CHUNK) {
                buf_puts(b, "\r\n ");
                col = 1;
            }
            char out = c == '\r' ? ' ' : (char)c; /* a bare CR must not end a line here */
            eight |= c >= 0x80;
            buf_append(b, &out, 1);
            col++;
        }
        buf_puts(b, "\r\n");
        pos = next;
    }
    return eight;
}

static bool boundary_free(const char *bnd, const struct buf *parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].len && memmem(parts[i].data, parts[i].len, bnd, strlen(bnd)))
            return false;
    return true;
}

int spool_dsn_build(const struct spool_dsn_input *in, char **out, size_t *out_len)
{
    if (!in || !out || !in->reporting_mta || !*in->reporting_mta || !in->postmaster || !*in->postmaster ||
        null_sender(in->sender) || !in->rcpts || in->n_rcpts == 0 || (in->message_len && !in->message))
        return -EINVAL;
    bool any_failed = false, any_delayed = false;
    for (size_t i = 0; i < in->n_rcpts; i++) {
        const struct spool_dsn_rcpt *r = &in->rcpts[i];
        if (!r->final_recipient || !*r->final_recipient)
            return -EINVAL;
        if (r->action == SPOOL_DSN_FAILED)
            any_failed = true;
        else if (r->action == SPOOL_DSN_DELAYED)
            any_delayed = true;
        else
            return -EINVAL;
    }

    char *mta = clean(in->reporting_mta, DSN_MAX_VALUE);
    struct buf parts[3] = {{0}};
    part_text(&parts[0], in, mta, any_failed, any_delayed);
    part_status(&parts[1], in, mta);
    bool eight = part_headers(&parts[2], in->message, in->message_len);

    char bnd[80];
    for (int tries = 0;; tries++) {
        char hex[49];
        random_hex(hex, 24);
        snprintf(bnd, sizeof(bnd), "=_ringmail_dsn_%s", hex);
        if (boundary_free(bnd, parts, 3))
            break;
        if (tries > 16) {
            /* 192 random bits colliding 17 times: the generator is broken, not the input */
            for (int i = 0; i < 3; i++)
                buf_fini(&parts[i]);
            free(mta);
            return -EIO;
        }
    }

    struct buf m = {0};
    char *v = NULL;
    char *pm = bare_addr(in->postmaster);
    v = xasprintf("Mail Delivery System <%s>", pm);
    dsn_field(&m, "From", v);
    free(v);
    free(pm);
    char *to = bare_addr(in->sender);
    v = xasprintf("<%s>", to);
    dsn_field(&m, "To", v);
    free(v);
    free(to);
    dsn_field(&m, "Subject",
              any_failed ? "Undelivered Mail Returned to Sender" : "Delayed Mail (still being retried)");
    char date[40];
    rfc5322_date(in->now_ns ? in->now_ns : clock_real_ns(), date);
    dsn_field(&m, "Date", date);
    char hex[33];
    random_hex(hex, 16);
    v = xasprintf("<%s.dsn@%s>", hex, mta);
    dsn_field(&m, "Message-ID", v);
    free(v);
    if (msgid_ok(in->message_id)) {
        dsn_field(&m, "In-Reply-To", in->message_id);
        dsn_field(&m, "References", in->message_id);
    }
    dsn_field(&m, "Auto-Submitted", "auto-replied");
    dsn_field(&m, "MIME-Version", "1.0");
    v = xasprintf("multipart/report; report-type=delivery-status; boundary=\"%s\"", bnd);
    dsn_field(&m, "Content-Type", v);
    free(v);
    dsn_field(&m, "Content-Transfer-Encoding", eight ? "8bit" : "7bit");
    buf_puts(&m, "\r\nThis is a MIME-encapsulated message.\r\n");

    buf_printf(&m, "\r\n--%s\r\n", bnd);
    buf_puts(&m, "Content-Type: text/plain; charset=us-ascii\r\nContent-Description: Notification\r\n\r\n");
    buf_append(&m, parts[0].data, parts[0].len);
    buf_printf(&m, "\r\n--%s\r\n", bnd);
    buf_puts(&m, "Content-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n");
    buf_append(&m, parts[1].data, parts[1].len);
    buf_printf(&m, "\r\n--%s\r\n", bnd);
    buf_puts(&m, "Content-Type: text/rfc822-headers\r\nContent-Description: Undelivered Message Headers\r\n");
    if (eight)
        buf_puts(&m, "Content-Transfer-Encoding: 8bit\r\n");
    buf_puts(&m, "\r\n");
    buf_append(&m, parts[2].data, parts[2].len);
    buf_printf(&m, "\r\n--%s--\r\n", bnd);

    for (int i = 0; i < 3; i++)
        buf_fini(&parts[i]);
    free(mta);
    if (out_len)
        *out_len = m.len;
    *out = buf_take(&m);
    return 0;
}
