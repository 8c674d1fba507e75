/*
 * ringctl_trace - the SMTP trace commands (contract in ringctl_trace.h)
 */
#include "tools/ringctl_trace.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/mem.h"
#include "tools/ringctl_http.h"
#include "tools/ringctl_ops.h"

#define TRACE_TEXT_COLS 160 /* text past this is cut, "..." says so */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

bool ringctl_trace_command(const char *name)
{
    return strcmp(name, "trace-smtp-server") == 0 || strcmp(name, "trace-smtp-client") == 0;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* escape - text with controls and backslashes made visible, cut to TRACE_TEXT_COLS */
static void escape(const char *t, struct buf *b)
{
    size_t cols = 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        if (cols >= TRACE_TEXT_COLS) {
            buf_puts(b, "...");
            return;
        }
        if (*p == '\r')
            buf_puts(b, "\\r"), cols += 2;
        else if (*p == '\n')
            buf_puts(b, "\\n"), cols += 2;
        else if (*p == '\t')
            buf_puts(b, "\\t"), cols += 2;
        else if (*p < 0x20 || *p == 0x7f)
            buf_printf(b, "\\x%02X", *p), cols += 4;
        else {
            buf_append(b, p, 1);
            cols += (*p & 0xc0) != 0x80; /* a UTF-8 character is one column */
        }
    }
}

bool ringctl_trace_format(const char *line, size_t len, bool colour, char *out, size_t cap)
{
    json_error_t err;
    json_t *o = len ? json_loadb(line, len, 0, &err) : NULL;
    if (!json_is_object(o) || strcmp(jstr(o, "type"), "smtp") != 0) {
        json_decref(o);
        return false;
    }
    const char *when = jstr(o, "time"), *dir = jstr(o, "dir"), *session = jstr(o, "session");
    char hms[16] = "-";
    const char *t = strchr(when, 'T');
    if (t && strlen(t) >= 13)
        snprintf(hms, sizeof(hms), "%.12s", t + 1); /* HH:MM:SS.mmm */
    size_t sl = strlen(session);
    json_t *w = json_object_get(o, "worker");
    char who[64];
    snprintf(who, sizeof(who), "%s[%lld]#%s", strcmp(jstr(o, "role"), "egress") == 0 ? "e" : "i",
             json_is_integer(w) ? (long long)json_integer_value(w) : -1LL, sl > 6 ? session + sl - 6 : session);
    struct buf text = {0};
    escape(jstr(o, "text"), &text);
    const char *on = "", *off = "";
    if (colour) {
        on = strcmp(dir, "<-") == 0 ? "\033[36m" : strcmp(dir, "->") == 0 ? "\033[33m" : "\033[2m";
        off = "\033[0m";
    }
    snprintf(out, cap, "%s %-14s %-22s %s%s %s%s", hms, who, jstr(o, "peer"), on, dir, buf_cstr(&text), off);
    buf_fini(&text);
    json_decref(o);
    return true;
}

struct trace_ctx {
    bool json, colour, started;
    int status;
    struct buf pending; /* a line not yet whole; the whole body of an error answer */
};

static void on_line(struct trace_ctx *c, const char *line, size_t len)
{
    char out[4096];

    if (len == 0)
        return; /* keep-alive */
    if (!c->started) {
        c->started = true;
        fprintf(stderr, "tracing; Ctrl-C to stop\n");
    }
    if (c->json) {
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
    } else if (ringctl_trace_format(line, len, c->colour, out, sizeof(out))) {
        puts(out);
    }
}

/* on_chunk - body octets as they come: whole lines out, the rest kept (an error answer kept whole) */
static int on_chunk(void *ctx, const char *p, size_t n)
{
    struct trace_ctx *c = ctx;
    if (c->pending.len + n > (1u << 20)) {
        fprintf(stderr, "ringctl: a line of more than 1 MiB from the node\n");
        return -EPROTO;
    }
    buf_append(&c->pending, p, n);
    if (c->status != 200)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i < c->pending.len; i++)
        if (c->pending.data[i] == '\n') {
            on_line(c, (const char *)c->pending.data + start, i - start);
            start = i + 1;
        }
    memmove(c->pending.data, c->pending.data + start, c->pending.len - start);
    c->pending.len -= start;
    fflush(stdout);
    return 0;
}

static int usage(const char *cmd)
{
    if (strcmp(cmd, "trace-smtp-server") == 0)
        fprintf(stderr, "usage: ringctl [--json] trace-smtp-server [--peer CIDR]\n");
    else
        fprintf(stderr, "usage: ringctl [--json] trace-smtp-client [--domain D] [--site S] [--source S]\n");
    return 2;
}

int ringctl_trace_main(int argc, char **argv, const char *endpoint, bool json)
{
    static const struct option opts[] = {
        {"peer", required_argument, NULL, 'p'},     {"domain", required_argument, NULL, 'd'},
        {"site", required_argument, NULL, 's'},     {"source", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},           {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    bool server = strcmp(cmd, "trace-smtp-server") == 0;
    struct buf q = {0};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if ((c == 'p') == server && c != '?') {
            ringctl_ops_query_add(&q, c == 'p' ? "peer" : c == 'd' ? "domain" : c == 's' ? "site" : "source", optarg);
        } else {
            buf_fini(&q);
            return usage(cmd);
        }
    }
    if (optind != argc) {
        buf_fini(&q);
        return usage(cmd);
    }
    char *path = xasprintf("/api/v1/trace/%s%s", server ? "smtp-server" : "smtp-client", q.len ? buf_cstr(&q) : "");
    buf_fini(&q);

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: the wait ends, the stream with it */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *nc = getenv("NO_COLOR");
    struct trace_ctx ctx = {.json = json, .colour = isatty(STDOUT_FILENO) && !(nc && nc[0])};
    int rc = ringctl_http_stream(endpoint, path, &ctx.status, on_chunk, &ctx);
    free(path);
    int ret;
    if (rc == -EINTR || (rc < 0 && stop)) {
        ret = 0; /* Ctrl-C */
    } else if (rc < 0) {
        ret = ctx.status ? 1 : 3;
    } else if (ctx.status != 200) {
        json_t *o = json_loadb((const char *)ctx.pending.data, ctx.pending.len, 0, NULL);
        const char *e = json_string_value(json_object_get(o, "error"));
        fprintf(stderr, "ringctl: the node refused the trace (HTTP %d): %s\n", ctx.status,
                e ? e : "(no reason given)");
        json_decref(o);
        ret = 1;
    } else {
        ret = 0; /* the node ended the trace (it stops) */
    }
    fflush(stdout);
    buf_fini(&ctx.pending);
    return ret;
}
