/*
 * ringctl_inspect - ringctl's inspect-message and spool-compact (contract in ringctl_inspect.h)
 *
 * inspect-message ID [--body]: GET /api/v1/inspect-message; the envelope, then one aligned line per
 * recipient (state, attempts, queue, the scheduler's state and next due), then the body when asked.
 * spool-compact [--status] [--no-wait]: POST /api/v1/spool-compact (the token is needed), then
 * GET /api/v1/spool-compact every half second, one progress line each, until the compaction is over.
 * With --json: the node's documents, one a line (spool-compact prints one per poll: JSON Lines).
 * Human output fits 100 columns; colour (states, errors) only when stdout is a terminal and NO_COLOR is not
 * set. The answer is read member by member: a missing member or one of another type prints as "-".
 */
#include "tools/ringctl_inspect.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/ringctl_ops.h"

#define POLL_NS (500 * 1000 * 1000)
#define MAX_POLLS (2 * 3600 * 6) /* six hours of half seconds: a compaction longer than that is followed elsewhere */

static bool colour;
#define GREEN (colour ? "\033[32m" : "")
#define YELLOW (colour ? "\033[33m" : "")
#define RED (colour ? "\033[31m" : "")
#define OFF (colour ? "\033[0m" : "")

bool ringctl_inspect_command(const char *name)
{
    return strcmp(name, "inspect-message") == 0 || strcmp(name, "spool-compact") == 0;
}

#define str ringctl_ops_str
#define num ringctl_ops_int
#define nums ringctl_ops_nums
#define ages ringctl_ops_ages
#define cut ringctl_ops_cut

/* bytes - a size as people read it: "812 B", "3.4 KiB", "1.2 MiB" */
static const char *bytes(long long n, char *buf, size_t len)
{
    if (n < 0)
        snprintf(buf, len, "-");
    else if (n < 1024)
        snprintf(buf, len, "%lld B", n);
    else if (n < 1024 * 1024)
        snprintf(buf, len, "%.1f KiB", (double)n / 1024);
    else if (n < 1024LL * 1024 * 1024)
        snprintf(buf, len, "%.1f MiB", (double)n / (1024 * 1024));
    else
        snprintf(buf, len, "%.1f GiB", (double)n / (1024.0 * 1024 * 1024));
    return buf;
}

/* when - a unix ms time as UTC text */
static const char *when(long long ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
    return buf;
}

static void print_message(const json_t *doc)
{
    char a[64], b[64], c[64], d[64];
    const json_t *meta = json_object_get(doc, "meta"), *rcpts = json_object_get(doc, "recipients");
    printf("message:     %s%s\n", str(doc, "id"),
           json_is_false(json_object_get(doc, "in_spool")) ? " (not in the spool: finished just now?)" : "");
    const char *sender = json_string_value(json_object_get(doc, "sender"));
    printf("sender:      <%s>\n", sender ? sender : "-");
    printf("received:    %s (%s ago)\n", when(num(doc, "created_ms"), a, sizeof(a)), ages(doc, "age_ms", b, sizeof(b)));
    printf("size:        %s bytes\n", nums(doc, "size", c, sizeof(c)));
    const json_t *store = json_object_get(doc, "body_store");
    if (json_is_object(store)) {
        if (strcmp(str(store, "where"), "body_log") == 0)
            printf("body in:     body log, segment %s, offset %s\n", str(store, "segment"),
                   nums(store, "offset", a, sizeof(a)));
        else
            printf("body in:     %s\n", str(store, "where"));
    }
    printf("recipients:  %s, %s queued%s\n", nums(doc, "recipients_total", a, sizeof(a)),
           nums(doc, "recipients_queued", b, sizeof(b)),
           json_is_true(json_object_get(doc, "recipients_truncated")) ? " (the list below is cut)" : "");
    long long due = num(doc, "next_due_ms");
    long long now = (long long)time(NULL) * 1000;
    if (due > 0)
        printf("next due:    %s (in %s)\n", when(due, a, sizeof(a)), (ringctl_ops_age(b, sizeof(b), due - now), b));
    else
        printf("next due:    -\n");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)meta, k, v)
        printf("meta:        %s = %s\n", k, cut(json_string_value(v) ? json_string_value(v) : "-", 80, d, sizeof(d)));
    if (json_is_string(json_object_get(doc, "scheduler_error")))
        printf("%sscheduler:   %s%s\n", RED, str(doc, "scheduler_error"), OFF);
    printf("\n%-5s %-31s %-9s %8s %-24s %-9s %8s\n", "#", "RECIPIENT", "STATE", "ATTEMPTS", "QUEUE", "SCHED", "DUE IN");
    for (size_t i = 0; i < json_array_size(rcpts); i++) {
        const json_t *r = json_array_get(rcpts, i);
        char rc[40], q[32], in[16];
        const char *st = str(r, "state");
        bool queued = strcmp(st, "queued") == 0;
        printf("%-5lld %-31s %s%-9s%s %8lld %-24s %-9s %8s\n", num(r, "index"), cut(str(r, "recipient"), 31, rc, sizeof(rc)),
               queued ? YELLOW : GREEN, st, OFF, num(r, "attempts"), cut(str(r, "queue"), 24, q, sizeof(q)),
               str(r, "sched_state"), ages(r, "due_in_ms", in, sizeof(in)));
    }
    const json_t *queues = json_object_get(doc, "queues");
    for (size_t i = 0; i < json_array_size(queues); i++) {
        const json_t *e = json_array_get(queues, i);
        if (json_is_string(json_object_get(e, "path")))
            printf("ready queue: %s (%s)\n", str(e, "path"), str(e, "state"));
    }
    if (json_object_get(doc, "body_bytes")) {
        printf("\nbody (%s bytes%s):\n", nums(doc, "body_bytes", a, sizeof(a)),
               json_is_true(json_object_get(doc, "body_truncated")) ? ", cut at 512 KiB" : "");
        if (json_is_string(json_object_get(doc, "body")))
            fwrite(json_string_value(json_object_get(doc, "body")), 1,
                   json_string_length(json_object_get(doc, "body")), stdout);
        else if (json_is_string(json_object_get(doc, "body_base64")))
            printf("(not UTF-8: --json shows it as body_base64)\n");
        if (json_is_string(json_object_get(doc, "body_error")))
            printf("%sbody unreadable: %s%s\n", RED, str(doc, "body_error"), OFF);
    }
}

/* took - the compaction's elapsed time: milliseconds below 10 s, then as ages read */
static const char *took(const json_t *c, char *buf, size_t len)
{
    long long ms = num(c, "elapsed_ms");
    if (ms >= 0 && ms < 10000)
        snprintf(buf, len, "%lld ms", ms);
    else
        ringctl_ops_age(buf, len, ms);
    return buf;
}

static void print_compaction(const json_t *doc)
{
    const json_t *c = json_object_get(doc, "compaction");
    const char *state = str(c, "state");
    char a[32], b[32], e[16];
    if (strcmp(state, "running") == 0) {
        printf("compacting: %lld/%lld families, %lld compactions and %lld flushes running, %s pending, SST %s, "
               "%s\n",
               num(c, "families_done"), num(c, "families_total"), num(c, "running_compactions"),
               num(c, "running_flushes"), bytes(num(c, "pending_bytes"), a, sizeof(a)),
               bytes(num(c, "sst_bytes"), b, sizeof(b)), took(c, e, sizeof(e)));
    } else if (strcmp(state, "done") == 0) {
        printf("%sdone%s in %s: SST files %s -> %s (%lld column families)\n", GREEN, OFF,
               took(c, e, sizeof(e)), bytes(num(c, "sst_bytes_before"), a, sizeof(a)),
               bytes(num(c, "sst_bytes"), b, sizeof(b)), num(c, "families_total"));
    } else if (strcmp(state, "idle") == 0) {
        printf("no compaction since the spool started (SST files %s)\n", bytes(num(c, "sst_bytes"), a, sizeof(a)));
    } else {
        printf("%s%s%s after %s: %s\n", RED, state, OFF, took(c, e, sizeof(e)), str(c, "error"));
    }
    fflush(stdout);
}

/* call - one request; 0 with the document (and its text when json), 1 on an error the node gave, 3 when the
 * node cannot be reached */
static int call(ringctl_http_fn http, const char *endpoint, const char *cmd, const char *method, const char *path,
                bool json, json_t **doc)
{
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    *doc = NULL;
    if (http(endpoint, method, path, &status, &body, &len) < 0)
        return 3;
    json_t *d = json_loadb(body, len, 0, NULL);
    char *line = json && d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (line) /* one document a line (spool-compact's progress is JSON Lines) */
        printf("%s\n", line);
    else if (json)
        fwrite(body, 1, len, stdout);
    free(line);
    fflush(stdout);
    free(body);
    if (status != 200 || !json_is_object(d)) {
        const char *err = json_string_value(json_object_get(d, "error"));
        fprintf(stderr, "%sringctl %s: %s%s\n", RED, cmd, err ? err : "the node's answer is not a JSON object", OFF);
        json_decref(d);
        return 1;
    }
    *doc = d;
    return 0;
}

static int usage(const char *cmd)
{
    if (strcmp(cmd, "inspect-message") == 0)
        fprintf(stderr, "usage: ringctl inspect-message ID [--body] [--json]\n");
    else
        fprintf(stderr, "usage: ringctl spool-compact [--status | --no-wait] [--json]\n");
    return 2;
}

int ringctl_inspect_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http)
{
    static const struct option opts[] = {
        {"body", no_argument, NULL, 'b'},    {"status", no_argument, NULL, 's'},
        {"no-wait", no_argument, NULL, 'n'}, {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    bool inspect = strcmp(cmd, "inspect-message") == 0, body = false, status_only = false, no_wait = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'b' && inspect)
            body = true;
        else if (c == 's' && !inspect)
            status_only = true;
        else if (c == 'n' && !inspect)
            no_wait = true;
        else
            return usage(cmd);
    }
    if (argc - optind != (inspect ? 1 : 0) || (status_only && no_wait))
        return usage(cmd);
    colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    json_t *doc = NULL;
    int rc;
    if (inspect) {
        /* the id is checked by the node (400); here it only has to fit the URL as it is */
        const char *id = argv[optind];
        for (const char *p = id; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')) || p - id > 64) {
                fprintf(stderr, "%sringctl inspect-message: ID is a message id: 32 hex digits%s\n", RED, OFF);
                return 1;
            }
        char path[160];
        snprintf(path, sizeof(path), "/api/v1/inspect-message?id=%s%s", id, body ? "&body=1" : "");
        rc = call(http, endpoint, cmd, "GET", path, json, &doc);
        if (rc == 0 && !json)
            print_message(doc);
        json_decref(doc);
        return rc;
    }
    rc = call(http, endpoint, cmd, status_only ? "GET" : "POST", "/api/v1/spool-compact", json, &doc);
    if (rc != 0)
        return rc;
    if (!json && !status_only)
        printf("compaction started (flush, then every column family in full); mail keeps flowing meanwhile\n");
    for (int polls = 0;; polls++) {
        const char *state = str(json_object_get(doc, "compaction"), "state");
        bool running = strcmp(state, "running") == 0;
        if (!json)
            print_compaction(doc);
        if (!running || no_wait || status_only) {
            rc = running || strcmp(state, "done") == 0 || strcmp(state, "idle") == 0 ? 0 : 1;
            json_decref(doc);
            return rc;
        }
        json_decref(doc);
        if (polls >= MAX_POLLS) {
            fprintf(stderr, "ringctl spool-compact: still running; follow it with `ringctl spool-compact --status`\n");
            return 1;
        }
        nanosleep(&(struct timespec){0, POLL_NS}, NULL);
        if ((rc = call(http, endpoint, cmd, "GET", "/api/v1/spool-compact", json, &doc)) != 0)
            return rc;
    }
}
