/*
 * sink_record - ringmail-sink's --record lines and final summary
 *
 * sink_record_write() appends one JSON object per accepted message to the --record file:
 *   {"mail_from": "...", "rcpts": ["..."], "size": N, "message_id": "..."|null, "subject": "..."|null,
 *    "gen_sent_us": N|null, "arrived_us": N, "headers": "..."}
 * size is the message as delivered (after dot-unstuffing, without the final "." CRLF); headers is the
 * header section (without the empty line that ends it), cut at SINK_HDR_MAX bytes; Message-ID and
 * Subject are unfolded and trimmed. jansson writes the line; peer bytes become valid JSON strings
 * whatever the client sent: bytes that are not valid UTF-8 are read as Latin-1 (byte 0xE9 is the
 * string's U+00E9), control characters are escaped by jansson.
 * arrived_us is CLOCK_REALTIME in microseconds when the final dot was read and the 250 decided (just
 * before this line is written and the 250 queued); gen_sent_us is ringmail-gen's X-Gen-Sent stamp.
 * The line goes out in one write(2) to a file opened with O_APPEND, so workers never interleave.
 *
 * --latency keeps arrived_us - gen_sent_us in a log-linear histogram per worker (exact below 16 us,
 * then 16 buckets per power of two: a percentile is its bucket's upper bound, at most 1/16 high and
 * never above the exact maximum), summed into the summary's "delivery_latency_us". Fixed memory and
 * no I/O per message, unlike --record.
 */
#include "tools/sink.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"

/* peer_string - s[0..n) as a JSON string: well-formed UTF-8 as it is, any other byte as the Latin-1 character */
static json_t *peer_string(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t valid = utf8_valid_prefix(p, n);
    if (valid == n)
        return json_stringn(s, n);

    struct buf b = {0};
    buf_append(&b, p, valid);
    for (size_t i = valid; i < n;) {
        size_t u = utf8_seq_len(p + i, n - i);
        if (u > 0) {
            buf_append(&b, p + i, u);
            i += u;
        } else {
            buf_putc(&b, (char)(0xc0 | p[i] >> 6));
            buf_putc(&b, (char)(0x80 | (p[i] & 0x3f)));
            i++;
        }
    }
    json_t *j = json_stringn((const char *)b.data, b.len);
    buf_fini(&b);
    return j;
}

/* optional_string - v as a JSON string (v freed), or null */
static json_t *optional_string(char *v)
{
    json_t *j = v ? peer_string(v, strlen(v)) : json_null();
    free(v);
    return j;
}

static int append_to_buf(const char *p, size_t n, void *data)
{
    buf_append(data, p, n);
    return 0;
}

/* field - the unfolded, trimmed value of the first header field `name`, or NULL */
static char *field(const char *h, size_t len, const char *name)
{
    size_t nl = strlen(name), i = 0;

    while (i < len) {
        size_t end = i, j;
        while (end < len && h[end] != '\n')
            end++;
        j = i + nl;
        if (end - i > nl && strncasecmp(h + i, name, nl) == 0) {
            while (j < end && (h[j] == ' ' || h[j] == '\t'))
                j++;
            if (j < end && h[j] == ':') {
                char *v = xmalloc(len - j + 1);
                size_t vl = 0;
                size_t k = j + 1;
                /* the field runs on over continuation lines (RFC 5322 2.2.3) */
                for (;;) {
                    for (; k < end; k++)
                        if (h[k] != '\r')
                            v[vl++] = h[k];
                    if (end + 1 >= len || (h[end + 1] != ' ' && h[end + 1] != '\t'))
                        break;
                    k = end + 1;
                    end = k;
                    while (end < len && h[end] != '\n')
                        end++;
                }
                while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                    vl--;
                v[vl] = '\0';
                k = 0;
                while (v[k] == ' ' || v[k] == '\t')
                    k++;
                memmove(v, v + k, vl - k + 1);
                return v;
            }
        }
        i = end + 1;
    }
    return NULL;
}

int sink_record_gen_sent(const char *h, size_t len, uint64_t *out)
{
    static const char name[] = "X-Gen-Sent";
    size_t nl = sizeof(name) - 1, i = 0;

    while (i < len) {
        const char *lf = memchr(h + i, '\n', len - i);
        size_t end, j = i + nl;
        uint64_t v = 0;
        bool digits = false;

        if (!lf)
            break; /* a line cut by the header cap: its value may be cut too */
        end = (size_t)(lf - h);
        if (end - i > nl && strncasecmp(h + i, name, nl) == 0) {
            while (j < end && (h[j] == ' ' || h[j] == '\t'))
                j++;
            if (j < end && h[j] == ':') {
                for (j++; j < end && (h[j] == ' ' || h[j] == '\t'); j++)
                    ;
                for (; j < end && h[j] >= '0' && h[j] <= '9'; j++) {
                    if (v > (INT64_MAX - 9) / 10) /* past year 294000: not a stamp, and JSON integers end there */
                        return -ERANGE;
                    v = v * 10 + (uint64_t)(h[j] - '0');
                    digits = true;
                }
                while (j < end && (h[j] == ' ' || h[j] == '\t' || h[j] == '\r'))
                    j++;
                if (!digits || j != end)
                    return -EINVAL;
                *out = v;
                return 0;
            }
        }
        i = end + 1;
    }
    return -ENOENT;
}


void sink_record_write(struct sink_conn *c)
{
    int fd = c->w->s->record_fd;
    const char *h = c->hdr ? c->hdr : "";
    struct buf line = {0};
    size_t off = 0;

    if (fd < 0)
        return;
    json_t *rcpts = json_array();
    for (unsigned i = 0; i < c->n_rcpts; i++)
        json_array_append_new(rcpts, peer_string(c->rcpts[i], strlen(c->rcpts[i])));
    json_t *rec = json_object();
    json_object_set_new(rec, "mail_from", peer_string(c->mail_from, strlen(c->mail_from)));
    json_object_set_new(rec, "rcpts", rcpts);
    json_object_set_new(rec, "size", json_integer((json_int_t)c->data.size));
    json_object_set_new(rec, "message_id", optional_string(field(h, c->hdr_len, "Message-ID")));
    json_object_set_new(rec, "subject", optional_string(field(h, c->hdr_len, "Subject")));
    json_object_set_new(rec, "gen_sent_us", c->has_gen_sent ? json_integer((json_int_t)c->gen_sent_us) : json_null());
    json_object_set_new(rec, "arrived_us", json_integer((json_int_t)c->arrived_us));
    json_object_set_new(rec, "headers", peer_string(h, c->hdr_len));
    if (json_dump_callback(rec, append_to_buf, &line, 0) != 0)
        panic("sink record: json_dump_callback failed");
    json_decref(rec);
    buf_putc(&line, '\n');
    while (off < line.len) {
        ssize_t w = write(fd, line.data + off, line.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* a test would miss the line: say so loudly, but a sink keeps sinking */
            log_error("--record write: %s", w < 0 ? strerror(errno) : "short write");
            break;
        }
        off += (size_t)w;
    }
    buf_fini(&line);
}

void sink_record_summary(const struct sink *s, const struct sink_stats *st, const struct sink_stats *per, unsigned n,
                         double elapsed_s)
{
    double active = 0, rate;

    if (st->first_conn_ns && st->last_msg_ns > st->first_conn_ns)
        active = (double)(st->last_msg_ns - st->first_conn_ns) / 1e9;
    rate = active > 0 ? (double)st->messages / active : 0.0;
    if (s->o.json) {
        json_t *listen = json_array(), *conns = json_array();
        for (unsigned i = 0; i < s->o.n_listen; i++)
            json_array_append_new(listen, json_string(s->o.listen[i].text));
        for (unsigned i = 0; i < n; i++)
            json_array_append_new(conns, json_integer((json_int_t)per[i].connections));
        json_t *j = json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o}",
                              "listen", listen, "workers", (json_int_t)s->o.workers, "connections",
                              (json_int_t)st->connections, "messages", (json_int_t)st->messages, "recipients",
                              (json_int_t)st->recipients, "tempfail", (json_int_t)st->tempfail, "permfail",
                              (json_int_t)st->permfail, "421", (json_int_t)st->closed_421, "disconnects",
                              (json_int_t)st->disconnects, "bytes", (json_int_t)st->bytes, "rejected",
                              (json_int_t)st->rejected, "errors", (json_int_t)st->errors, "timeouts",
                              (json_int_t)st->timeouts, "refused", (json_int_t)st->refused, "elapsed_s", elapsed_s,
                              "active_s", active, "msgs_per_s", rate, "worker_connections", conns);
        json_t *lat = json_null();
        if (s->o.latency) {
            lat = lat_hist_json(&st->latency);
            json_object_set_new(lat, "missing", json_integer((json_int_t)st->latency_missing));
        }
        json_object_set_new(j, "delivery_latency_us", lat);
        json_dumpf(j, stdout, JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(j);
    } else {
        printf("connections   %llu (%llu refused)\n", (unsigned long long)st->connections,
               (unsigned long long)st->refused);
        printf("messages      %llu (%llu recipients)\n", (unsigned long long)st->messages,
               (unsigned long long)st->recipients);
        printf("rcpt refused  %llu tempfail, %llu permfail, %llu closed with 421\n",
               (unsigned long long)st->tempfail, (unsigned long long)st->permfail,
               (unsigned long long)st->closed_421);
        printf("cut           %llu disconnects in data, %llu timeouts\n", (unsigned long long)st->disconnects,
               (unsigned long long)st->timeouts);
        printf("refused       %llu messages, %llu command errors\n", (unsigned long long)st->rejected,
               (unsigned long long)st->errors);
        printf("bytes         %llu\n", (unsigned long long)st->bytes);
        printf("elapsed       %.3f s (%.3f s from first connection to last message)\n", elapsed_s, active);
        printf("rate          %.1f msgs/s\n", rate);
        printf("per worker   ");
        for (unsigned i = 0; i < n; i++)
            printf(" %llu", (unsigned long long)per[i].connections);
        printf(" connections\n");
        if (s->o.latency)
            printf("delivery      p50 %llu us, p90 %llu us, p99 %llu us, max %llu us (%llu stamped, %llu not)\n",
                   (unsigned long long)lat_hist_percentile(&st->latency, 50),
                   (unsigned long long)lat_hist_percentile(&st->latency, 90),
                   (unsigned long long)lat_hist_percentile(&st->latency, 99),
                   (unsigned long long)st->latency.max, (unsigned long long)st->latency.count,
                   (unsigned long long)st->latency_missing);
    }
    fflush(stdout);
}
