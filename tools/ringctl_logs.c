/*
 * ringctl_logs - ringctl tail-log (contract in ringctl_logs.h)
 *
 * The stream is JSON Lines; a line is handled once whole. A line with an "error" member is the node's
 * note (corrupt data in a segment, ...) and goes to stderr. Record texts come from other machines: in the
 * human form every control byte is shown as '?', so a record cannot move the cursor or colour the
 * terminal; columns are counted in UTF-8 characters and a cut is marked '~'. Colour only on a terminal
 * without NO_COLOR.
 */
#include "tools/ringctl_logs.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/mem.h"
#include "tools/ringctl_http.h"

#define W_TIME 14 /* MM-DD HH:MM:SS, UTC */
#define W_TYPE 16
#define W_RCPT 24
#define W_WHERE 16
#define W_LINE 100

struct tail {
    bool json, colour, failed;
    int status;
    struct buf pending; /* the partial line at the end of what came */
    struct buf err_body; /* the answer when it is not 200 */
    unsigned long records;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

bool ringctl_logs_command(const char *name)
{
    return strcmp(name, "tail-log") == 0;
}

/* put_fit - s into out in exactly w columns (w 0: as it is), controls as '?', a cut marked '~' */
static void put_fit(struct buf *out, const char *s, size_t w)
{
    size_t cols = 0, n = strlen(s);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ((unsigned char)s[i] & 0xc0) != 0x80;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool start = (ch & 0xc0) != 0x80;
        if (start && w && total > w && cols == w - 1) {
            buf_putc(out, '~');
            cols++;
            break;
        }
        if (start && w && cols == w)
            break;
        buf_putc(out, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
        cols += start;
    }
    while (w && cols < w) {
        buf_putc(out, ' ');
        cols++;
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *type_colour(const char *type)
{
    if (strcmp(type, "Delivery") == 0)
        return "\033[32m";
    if (strcmp(type, "TransientFailure") == 0)
        return "\033[33m";
    if (strcmp(type, "Reception") == 0)
        return "\033[36m";
    if (strcmp(type, "TSA") == 0)
        return "\033[35m";
    return "\033[31m";
}

void ringctl_logs_format(const char *line, size_t len, bool colour, char *out_text, size_t cap)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    struct buf out = {0};
    char tbuf[32] = "-";
    json_t *ts = json_object_get(o, "timestamp");
    if (json_is_integer(ts)) {
        time_t t = (time_t)json_integer_value(ts);
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(tbuf, sizeof(tbuf), "%m-%d %H:%M:%S", &tm);
    }
    put_fit(&out, tbuf, W_TIME);
    buf_putc(&out, ' ');
    const char *type = jstr(o, "type");
    if (colour)
        buf_puts(&out, type_colour(type));
    put_fit(&out, type[0] ? type : "?", W_TYPE);
    if (colour)
        buf_puts(&out, "\033[0m");
    buf_putc(&out, ' ');
    char resp[1200];
    if (strcmp(type, "TSA") == 0) {
        /* about a path or a domain, not a recipient: the action, what it holds, the response that fired it */
        put_fit(&out, jstr(o, "action"), W_RCPT);
        buf_putc(&out, ' ');
        const char *what = jstr(o, "site")[0] ? jstr(o, "site") : jstr(o, "domain");
        put_fit(&out, what, W_WHERE);
        snprintf(resp, sizeof(resp), "%s", jstr(o, "response"));
    } else {
        put_fit(&out, jstr(o, "recipient"), W_RCPT);
        buf_putc(&out, ' ');
        const char *site = jstr(o, "site");
        put_fit(&out, site[0] ? site : jstr(o, "queue"), W_WHERE);
        json_t *r = json_object_get(o, "response");
        json_t *code = json_object_get(r, "code"), *enh = json_object_get(r, "enhanced_code");
        char codes[48] = "";
        if (json_is_integer(code))
            snprintf(codes, sizeof(codes), "%lld ", (long long)json_integer_value(code));
        if (json_is_object(enh)) {
            size_t k = strlen(codes);
            snprintf(codes + k, sizeof(codes) - k, "%lld.%lld.%lld ",
                     (long long)json_integer_value(json_object_get(enh, "class")),
                     (long long)json_integer_value(json_object_get(enh, "subject")),
                     (long long)json_integer_value(json_object_get(enh, "detail")));
        }
        snprintf(resp, sizeof(resp), "%s%.1000s", codes, jstr(r, "content"));
    }
    buf_putc(&out, ' ');
    put_fit(&out, resp, W_LINE - (W_TIME + 1 + W_TYPE + 1 + W_RCPT + 1 + W_WHERE + 1));
    json_decref(o);
    while (out.len && out.data[out.len - 1] == ' ')
        out.len--;
    snprintf(out_text, cap, "%s", buf_cstr(&out));
    buf_fini(&out);
}

/* on_line - one whole line of the stream */
static void on_line(struct tail *t, const char *line, size_t len)
{
    if (!len)
        return;
    json_t *o = json_loadb(line, len, 0, NULL);
    const char *note = json_string_value(json_object_get(o, "error"));
    if (!json_is_object(o) || note) {
        fprintf(stderr, "ringctl tail-log: %s\n", note ? note : "the node sent a line that is not a JSON object");
        json_decref(o);
        return;
    }
    json_decref(o);
    t->records++;
    if (t->json) {
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    char text[2048];
    ringctl_logs_format(line, len, t->colour, text, sizeof(text));
    puts(text);
}

static int on_chunk(void *ctx, const char *p, size_t n)
{
    struct tail *t = ctx;
    if (t->status != 200) {
        if (t->err_body.len < (1u << 20))
            buf_append(&t->err_body, p, n);
        return 0;
    }
    buf_append(&t->pending, p, n);
    size_t start = 0;
    for (size_t i = 0; i < t->pending.len; i++)
        if (t->pending.data[i] == '\n') {
            on_line(t, (const char *)t->pending.data + start, i - start);
            start = i + 1;
        }
    if (start) {
        memmove(t->pending.data, t->pending.data + start, t->pending.len - start);
        t->pending.len -= start;
    }
    if (t->pending.len > (2u << 20)) {
        fprintf(stderr, "ringctl tail-log: a line of more than 2 MiB from the node\n");
        return -EPROTO;
    }
    fflush(stdout);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: ringctl tail-log [--follow] [--type T] [--domain D] [--queue Q] [--limit N] [--json]\n");
    return 2;
}

static void query_add(struct buf *q, const char *key, const char *v)
{
    buf_printf(q, "%c%s=", q->len ? '&' : '?', key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
            buf_putc(q, (char)*p);
        else
            buf_printf(q, "%%%02X", *p);
    }
}

int ringctl_logs_main(int argc, char **argv, const char *endpoint, bool json)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},       {"type", required_argument, NULL, 't'},
        {"domain", required_argument, NULL, 'd'}, {"queue", required_argument, NULL, 'q'},
        {"limit", required_argument, NULL, 'l'},  {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct buf q = {0};
    bool follow = false;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'j':
            json = true;
            break;
        case 't':
            query_add(&q, "type", optarg);
            break;
        case 'd':
            query_add(&q, "domain", optarg);
            break;
        case 'q':
            query_add(&q, "queue", optarg);
            break;
        case 'l':
            query_add(&q, "limit", optarg);
            break;
        default:
            buf_fini(&q);
            return usage();
        }
    }
    if (optind != argc) {
        buf_fini(&q);
        return usage();
    }
    if (follow)
        query_add(&q, "follow", "1");
    char *path = xasprintf("/api/v1/logs%s", q.len ? buf_cstr(&q) : "");
    buf_fini(&q);

    /* Ctrl-C (and SIGTERM) end a stream cleanly: the wait is interrupted, the lines so far are out */
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct tail t = {.json = json, .colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR"), .status = 0};
    int rc = ringctl_http_stream(endpoint, path, &t.status, on_chunk, &t);
    free(path);
    int ret = 0;
    if (rc == -EINTR || (rc < 0 && interrupted)) {
        ret = 0;
    } else if (rc == -EPROTO && t.status == 200) {
        ret = 1;
    } else if (rc < 0) {
        ret = t.status ? 1 : 3;
    } else if (t.status != 200) {
        json_t *doc = json_loadb((const char *)t.err_body.data, t.err_body.len, 0, NULL);
        const char *err = json_string_value(json_object_get(doc, "error"));
        fprintf(stderr, "%sringctl tail-log: %s%s\n", t.colour ? "\033[31m" : "",
                err ? err : "the node's answer is not a JSON object", t.colour ? "\033[0m" : "");
        json_decref(doc);
        ret = 1;
    } else if (t.pending.len) {
        on_line(&t, (const char *)t.pending.data, t.pending.len);
    }
    fflush(stdout);
    buf_fini(&t.pending);
    buf_fini(&t.err_body);
    return ret;
}
