/*
 * ringctl_supp - the suppression list commands (contract in ringctl_supp.h)
 */
#include "tools/ringctl_supp.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/mem.h"
#include "tools/ringctl_http.h"
#include "tools/ringctl_ops.h"

#define IMPORT_FILE_MAX (4ull << 30)

bool ringctl_supp_command(const char *name)
{
    return strcmp(name, "suppression") == 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: ringctl suppression add ADDRESS [--tenant T] [--reason R] [--source S] [--expires UNIX]\n"
                    "       ringctl suppression remove|check ADDRESS [--tenant T]\n"
                    "       ringctl suppression list [--limit N] [--after CURSOR] [--json]\n"
                    "       ringctl suppression import FILE [--format csv|jsonl]\n"
                    "       ringctl suppression export [--format csv|jsonl]\n");
    return 2;
}

/* call - one request; the decoded answer (NULL after saying why), *status */
static json_t *call(const char *endpoint, const char *method, const char *path, const char *data, size_t len,
                    int *status)
{
    char *body = NULL;
    size_t n = 0;
    int rc = ringctl_http_call_body(endpoint, method, path, data ? "application/json" : NULL, data, len, status, &body,
                                    &n);
    if (rc < 0)
        return NULL;
    json_t *doc = json_loadb(body ? body : "", n, 0, NULL);
    if (!doc)
        fprintf(stderr, "ringctl: HTTP %d and an answer that is not JSON\n", *status);
    else if (*status != 200)
        fprintf(stderr, "ringctl: HTTP %d: %s\n", *status, ringctl_ops_str(doc, "error"));
    free(body);
    return doc;
}

static void print_entry(const json_t *e)
{
    long long exp = ringctl_ops_int(e, "expires"), last = ringctl_ops_int(e, "last_seen");
    char when[32] = "-", until[32] = "never";
    time_t t;
    struct tm tm;
    if (last > 0 && (t = (time_t)last, gmtime_r(&t, &tm)))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    if (exp > 0 && (t = (time_t)exp, gmtime_r(&t, &tm)))
        strftime(until, sizeof(until), "%Y-%m-%d %H:%M:%S", &tm);
    const char *tenant = ringctl_ops_str(e, "tenant");
    printf("%-40s %-12s %-12s %-19s %-19s %s\n", ringctl_ops_str(e, "address"), tenant[0] ? tenant : "(global)",
           ringctl_ops_str(e, "reason"), when, until, ringctl_ops_str(e, "source_id"));
}

static int chunk_send(const char *endpoint, bool jsonl, const char *p, size_t n, unsigned long long *added,
                      unsigned long long *refused, unsigned long long line0)
{
    json_t *req = json_pack("{s:s, s:s%}", "format", jsonl ? "jsonl" : "csv", "data", p, n);
    if (!req) {
        fprintf(stderr, "ringctl: the file is not UTF-8 text (near line %llu)\n", line0 + 1);
        return -EINVAL;
    }
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int status = 0;
    json_t *doc = call(endpoint, "POST", "/api/v1/suppression/import", text, strlen(text), &status);
    free(text);
    if (!doc || status != 200) {
        json_decref(doc);
        return -EIO;
    }
    *added += (unsigned long long)ringctl_ops_int(doc, "added");
    *refused += (unsigned long long)ringctl_ops_int(doc, "refused");
    json_t *errs = json_object_get(doc, "errors");
    for (size_t i = 0; i < json_array_size(errs); i++) {
        const json_t *e = json_array_get(errs, i);
        fprintf(stderr, "line %lld: %s\n", ringctl_ops_int(e, "line") + (long long)line0, ringctl_ops_str(e, "error"));
    }
    json_decref(doc);
    return 0;
}

static int import(const char *endpoint, const char *file, const char *format)
{
    bool jsonl = format ? strcmp(format, "jsonl") == 0
                        : (strlen(file) > 6 && (strcmp(file + strlen(file) - 6, ".jsonl") == 0 ||
                                                strcmp(file + strlen(file) - 7, ".ndjson") == 0));
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(strcmp(file, "-") == 0 ? "/dev/stdin" : file, IMPORT_FILE_MAX, &data, &len);
    if (rc < 0) {
        fprintf(stderr, "ringctl: %s: %s\n", file, strerror(-rc));
        return 1;
    }
    unsigned long long added = 0, refused = 0, lines = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t off = 0;
    /* a CSV header is read as one by the node on a piece's first line only: keep it with the first piece */
    while (off < len && rc == 0) {
        size_t n = len - off > RINGCTL_SUPP_CHUNK ? RINGCTL_SUPP_CHUNK : len - off;
        if (off + n < len) {
            const char *nl = NULL;
            for (size_t k = n; k > 0 && !nl; k--)
                if (data[off + k - 1] == '\n')
                    nl = data + off + k - 1;
            if (!nl) {
                fprintf(stderr, "ringctl: %s: a line longer than %u bytes\n", file, RINGCTL_SUPP_CHUNK);
                free(data);
                return 1;
            }
            n = (size_t)(nl - (data + off)) + 1;
        }
        rc = chunk_send(endpoint, jsonl, data + off, n, &added, &refused, lines);
        for (size_t k = 0; k < n; k++)
            lines += data[off + k] == '\n';
        off += n;
    }
    free(data);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%llu added, %llu refused in %.1f s%s\n", added, refused, s, rc ? " (stopped: see above)" : "");
    return rc ? 1 : refused ? 3 : 0;
}

static int on_chunk(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    return fwrite(p, 1, n, stdout) == n ? 0 : -EIO;
}

int ringctl_supp_main(int argc, char **argv, const char *endpoint, bool json)
{
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'}, {"reason", required_argument, NULL, 'r'},
        {"source", required_argument, NULL, 's'}, {"expires", required_argument, NULL, 'x'},
        {"limit", required_argument, NULL, 'l'},  {"after", required_argument, NULL, 'a'},
        {"format", required_argument, NULL, 'f'}, {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *tenant = NULL, *reason = NULL, *source = NULL, *expires = NULL, *limit = NULL, *after = NULL,
               *format = NULL;
    int c;
    if (argc < 2)
        return usage();
    const char *sub = argv[1];
    optind = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': tenant = optarg; break;
        case 'r': reason = optarg; break;
        case 's': source = optarg; break;
        case 'x': expires = optarg; break;
        case 'l': limit = optarg; break;
        case 'a': after = optarg; break;
        case 'f': format = optarg; break;
        case 'j': json = true; break;
        default: return usage();
        }
    }
    int npos = argc - 1 - optind;
    const char *pos = npos > 0 ? argv[1 + optind] : NULL;
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0)
        return usage();
    bool addr_cmd = !strcmp(sub, "add") || !strcmp(sub, "remove") || !strcmp(sub, "check");
    if ((addr_cmd || !strcmp(sub, "import")) ? npos != 1 : npos != 0)
        return usage();
    if (!strcmp(sub, "import"))
        return import(endpoint, pos, format);
    struct buf q = {0};
    int status = 0;
    if (!strcmp(sub, "export")) {
        ringctl_ops_query_add(&q, "format", format ? format : "csv");
        char *path = xasprintf("/api/v1/suppression/export%s", buf_cstr(&q));
        buf_fini(&q);
        int rc = ringctl_http_stream(endpoint, path, &status, on_chunk, NULL);
        free(path);
        if (rc == 0 && status != 200)
            fprintf(stderr, "ringctl: HTTP %d\n", status);
        return rc == 0 && status == 200 ? 0 : 1;
    }
    const char *url, *method = addr_cmd && strcmp(sub, "check") ? "POST" : "GET";
    if (!strcmp(sub, "add"))
        url = "/api/v1/suppression/add";
    else if (!strcmp(sub, "remove"))
        url = "/api/v1/suppression/remove";
    else if (!strcmp(sub, "check"))
        url = "/api/v1/suppression";
    else if (!strcmp(sub, "list"))
        url = "/api/v1/suppression/list";
    else
        return usage();
    ringctl_ops_query_add(&q, "address", pos);
    ringctl_ops_query_add(&q, "tenant", tenant);
    ringctl_ops_query_add(&q, "reason", reason);
    ringctl_ops_query_add(&q, "source", source);
    ringctl_ops_query_add(&q, "expires", expires);
    ringctl_ops_query_add(&q, "limit", limit);
    ringctl_ops_query_add(&q, "after", after);
    char *path = xasprintf("%s%s", url, q.len ? buf_cstr(&q) : "");
    buf_fini(&q);
    json_t *doc = call(endpoint, method, path, NULL, 0, &status);
    free(path);
    if (!doc || status != 200) {
        json_decref(doc);
        return 1;
    }
    int rc = 0;
    if (json) {
        char *t = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
        puts(t ? t : "");
        free(t);
    }
    if (!strcmp(sub, "check")) {
        bool s = json_is_true(json_object_get(doc, "suppressed"));
        if (!json) {
            printf("%s: %s\n", ringctl_ops_str(doc, "address"), s ? "suppressed" : "not suppressed");
            json_t *es = json_object_get(doc, "entries");
            for (size_t i = 0; i < json_array_size(es); i++)
                print_entry(json_array_get(es, i));
        }
        rc = s ? 0 : 1;
    } else if (!strcmp(sub, "list") && !json) {
        json_t *es = json_object_get(doc, "entries");
        for (size_t i = 0; i < json_array_size(es); i++)
            print_entry(json_array_get(es, i));
        const char *next = json_string_value(json_object_get(doc, "next"));
        if (next)
            printf("more: --after '%s'\n", next);
    } else if (!json) {
        printf("%s %s\n", sub, !strcmp(sub, "add") ? ringctl_ops_str(json_object_get(doc, "item"), "address") : pos);
    }
    json_decref(doc);
    return rc;
}
