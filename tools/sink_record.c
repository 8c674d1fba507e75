/*
 * sink_record - ringmail-sink's --record lines and final summary
 *
 * sink_record_write() appends one JSON object per accepted message to the --record file:
 *   {"mail_from": "...", "rcpts": ["..."], "size": N, "message_id": "..."|null, "subject": "..."|null,
 *    "gen_sent_us": N|null, "arrived_us": N, "headers": "..."}
 * size is the message as delivered (after dot-unstuffing, without the final "." CRLF); headers is the
 * header section (without the empty line that ends it), cut at SINK_HDR_MAX bytes; Message-ID and
 * Subject are unfolded and trimmed. Peer bytes are escaped into valid JSON: control characters as
 * \u00XX, bytes that are not valid UTF-8 as \u00XX of their value (read as Latin-1), so every
 * line parses whatever the client sent.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"

static void put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 256;
        while (want < *len + n + 1)
            want *= 2;
        *buf = xrealloc(*buf, want);
        *cap = want;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void puts_(char **buf, size_t *len, size_t *cap, const char *s)
{
    put(buf, len, cap, s, strlen(s));
}

void sink_record_json_str(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;
    char esc[8];

    put(buf, len, cap, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        size_t u;

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80 && (u = utf8_seq_len(p + i, n - i)) > 0) {
            i += u;
            run += u;
            continue;
        }
        put(buf, len, cap, (const char *)p + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(buf, len, cap, esc, 2);
        } else if (c == '\r') {
            put(buf, len, cap, "\\r", 2);
        } else if (c == '\n') {
            put(buf, len, cap, "\\n", 2);
        } else if (c == '\t') {
            put(buf, len, cap, "\\t", 2);
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(buf, len, cap, esc, 6);
        }
        i++;
    }
    put(buf, len, cap, (const char *)p + i - run, run);
    put(buf, len, cap, "\"", 1);
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
                    if (v > (UINT64_MAX - 9) / 10)
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


static void put_opt(char **buf, size_t *len, size_t *cap, char *v)
{
    if (v)
        sink_record_json_str(buf, len, cap, v, strlen(v));
    else
        puts_(buf, len, cap, "null");
    free(v);
}

void sink_record_write(struct sink_conn *c)
{
    int fd = c->w->s->record_fd;
    const char *h = c->hdr ? c->hdr : "";
    char *buf = NULL, num[32];
    size_t len = 0, cap = 0, off = 0;

    if (fd < 0)
        return;
    puts_(&buf, &len, &cap, "{\"mail_from\": ");
    sink_record_json_str(&buf, &len, &cap, c->mail_from, strlen(c->mail_from));
    puts_(&buf, &len, &cap, ", \"rcpts\": [");
    for (unsigned i = 0; i < c->n_rcpts; i++) {
        if (i)
            puts_(&buf, &len, &cap, ", ");
        sink_record_json_str(&buf, &len, &cap, c->rcpts[i], strlen(c->rcpts[i]));
    }
    snprintf(num, sizeof(num), "%llu", (unsigned long long)c->data.size);
    puts_(&buf, &len, &cap, "], \"size\": ");
    puts_(&buf, &len, &cap, num);
    puts_(&buf, &len, &cap, ", \"message_id\": ");
    put_opt(&buf, &len, &cap, field(h, c->hdr_len, "Message-ID"));
    puts_(&buf, &len, &cap, ", \"subject\": ");
    put_opt(&buf, &len, &cap, field(h, c->hdr_len, "Subject"));
    if (c->has_gen_sent)
        snprintf(num, sizeof(num), "%llu", (unsigned long long)c->gen_sent_us);
    else
        snprintf(num, sizeof(num), "null");
    puts_(&buf, &len, &cap, ", \"gen_sent_us\": ");
    puts_(&buf, &len, &cap, num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)c->arrived_us);
    puts_(&buf, &len, &cap, ", \"arrived_us\": ");
    puts_(&buf, &len, &cap, num);
    puts_(&buf, &len, &cap, ", \"headers\": ");
    sink_record_json_str(&buf, &len, &cap, h, c->hdr_len);
    puts_(&buf, &len, &cap, "}\n");
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* a test would miss the line: say so loudly, but a sink keeps sinking */
            log_error("--record write: %s", w < 0 ? strerror(errno) : "short write");
            break;
        }
        off += (size_t)w;
    }
    free(buf);
}

void sink_record_summary(const struct sink *s, const struct sink_stats *st, const struct sink_stats *per, unsigned n,
                         double elapsed_s)
{
    double active = 0, rate;

    if (st->first_conn_ns && st->last_msg_ns > st->first_conn_ns)
        active = (double)(st->last_msg_ns - st->first_conn_ns) / 1e9;
    rate = active > 0 ? (double)st->messages / active : 0.0;
    if (s->o.json) {
        printf("{\"listen\": [");
        for (unsigned i = 0; i < s->o.n_listen; i++)
            printf("%s\"%s\"", i ? ", " : "", s->o.listen[i].text);
        printf("], \"workers\": %u, \"connections\": %llu, \"messages\": %llu, \"recipients\": %llu, "
               "\"tempfail\": %llu, \"permfail\": %llu, \"421\": %llu, \"disconnects\": %llu, \"bytes\": %llu, "
               "\"rejected\": %llu, \"errors\": %llu, \"timeouts\": %llu, \"refused\": %llu, "
               "\"elapsed_s\": %.3f, \"active_s\": %.3f, \"msgs_per_s\": %.1f, \"worker_connections\": [",
               s->o.workers, (unsigned long long)st->connections, (unsigned long long)st->messages,
               (unsigned long long)st->recipients, (unsigned long long)st->tempfail,
               (unsigned long long)st->permfail, (unsigned long long)st->closed_421,
               (unsigned long long)st->disconnects, (unsigned long long)st->bytes, (unsigned long long)st->rejected,
               (unsigned long long)st->errors, (unsigned long long)st->timeouts, (unsigned long long)st->refused,
               elapsed_s, active, rate);
        for (unsigned i = 0; i < n; i++)
            printf("%s%llu", i ? ", " : "", (unsigned long long)per[i].connections);
        printf("], \"delivery_latency_us\": ");
        if (s->o.latency)
            printf("{\"count\": %llu, \"missing\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
                   "\"max\": %llu}",
                   (unsigned long long)st->latency.count, (unsigned long long)st->latency_missing,
                   (unsigned long long)lat_hist_percentile(&st->latency, 50),
                   (unsigned long long)lat_hist_percentile(&st->latency, 90),
                   (unsigned long long)lat_hist_percentile(&st->latency, 99),
                   (unsigned long long)st->latency.max);
        else
            printf("null");
        printf("}\n");
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
