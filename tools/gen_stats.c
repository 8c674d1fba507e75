/*
 * gen_stats - ringmail-gen's counters, latency histogram and summary
 *
 * The latency histogram is lat_hist.h's, shared with ringmail-sink.
 */
#include "tools/gen.h"

#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "base/log.h"

static const char *const err_names[GEN_ERR_N] = {"connect", "timeout", "closed", "protocol", "tls"};


uint64_t gen_stats_errors(const struct gen_stats *st)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < 1000; i++)
        n += st->codes[i];
    for (unsigned i = 0; i < GEN_ERR_N; i++)
        n += st->named[i];
    return n;
}

static void print_errors(const struct gen_stats *st)
{
    for (unsigned i = 0; i < 1000; i++)
        if (st->codes[i])
            printf("  %03u: %llu\n", i, (unsigned long long)st->codes[i]);
    for (unsigned i = 0; i < GEN_ERR_N; i++)
        if (st->named[i])
            printf("  %s: %llu\n", err_names[i], (unsigned long long)st->named[i]);
}

/* errors_json - {"421": N, "timeout": N, ...}: reply codes first, then the named errors */
static json_t *errors_json(const struct gen_stats *st)
{
    json_t *j = json_object();
    char code[8];

    for (unsigned i = 0; i < 1000; i++) {
        if (!st->codes[i])
            continue;
        snprintf(code, sizeof(code), "%03u", i);
        json_object_set_new(j, code, json_integer((json_int_t)st->codes[i]));
    }
    for (unsigned i = 0; i < GEN_ERR_N; i++)
        if (st->named[i])
            json_object_set_new(j, err_names[i], json_integer((json_int_t)st->named[i]));
    return j;
}

void gen_stats_print(const struct gen *g, double elapsed_s, bool json)
{
    const struct gen_stats *st = &g->st;
    double rate = elapsed_s > 0 ? (double)st->sent / elapsed_s : 0.0;
    const struct lat_hist *h = &st->latency;

    if (json) {
        /* the target was resolved at start: a host name or an address, so valid UTF-8 */
        json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o}", "target", g->o.target,
                              "concurrency", (json_int_t)g->o.concurrency, "sent", (json_int_t)st->sent, "failed",
                              (json_int_t)st->failed, "attempted", (json_int_t)st->attempted, "connections",
                              (json_int_t)st->connections, "tls_sessions", (json_int_t)st->tls_sessions, "elapsed_s",
                              elapsed_s, "msgs_per_s", rate, "msgs_per_h", rate * 3600.0, "errors", errors_json(st),
                              "latency_us", lat_hist_json(h));
        if (!j)
            panic("gen summary: json_pack failed");
        json_dumpf(j, stdout, JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(j);
    } else {
        printf("target        %s\n", g->o.target);
        printf("sent          %llu\n", (unsigned long long)st->sent);
        printf("failed        %llu (of %llu attempted)\n", (unsigned long long)st->failed,
               (unsigned long long)st->attempted);
        printf("connections   %llu (%llu with TLS)\n", (unsigned long long)st->connections,
               (unsigned long long)st->tls_sessions);
        printf("elapsed       %.3f s\n", elapsed_s);
        printf("rate          %.1f msgs/s, %.0f msgs/h\n", rate, rate * 3600.0);
        printf("latency (us)  p50 %llu  p90 %llu  p99 %llu  max %llu  (n=%llu)\n",
               (unsigned long long)lat_hist_percentile(h, 50), (unsigned long long)lat_hist_percentile(h, 90),
               (unsigned long long)lat_hist_percentile(h, 99), (unsigned long long)h->max,
               (unsigned long long)h->count);
        printf("errors        %llu\n", (unsigned long long)gen_stats_errors(st));
        print_errors(st);
    }
    fflush(stdout);
}

void gen_stats_progress(const struct gen *g, double elapsed_s, bool final)
{
    unsigned active = 0;

    for (unsigned i = 0; i < g->o.concurrency; i++)
        active += !gen_conn_idle(&g->conns[i]);
    fprintf(stderr, "\r%7.1fs  sent %llu  failed %llu  errors %llu  conns %u  %.0f msgs/s   %s", elapsed_s,
            (unsigned long long)g->st.sent, (unsigned long long)g->st.failed,
            (unsigned long long)gen_stats_errors(&g->st), active,
            elapsed_s > 0 ? (double)g->st.sent / elapsed_s : 0.0, final ? "\n" : "");
}
