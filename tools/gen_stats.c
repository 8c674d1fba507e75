/*
 * gen_stats - ringmail-gen's counters, latency histogram and summary
 *
 * The latency histogram is lat_hist.h's, shared with ringmail-sink.
 */
#include "tools/gen.h"

#include <stdio.h>
#include <unistd.h>

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

static void print_errors(const struct gen_stats *st, bool json)
{
    bool first = true;

    for (unsigned i = 0; i < 1000; i++) {
        if (!st->codes[i])
            continue;
        if (json)
            printf("%s\"%03u\": %llu", first ? "" : ", ", i, (unsigned long long)st->codes[i]);
        else
            printf("  %03u: %llu\n", i, (unsigned long long)st->codes[i]);
        first = false;
    }
    for (unsigned i = 0; i < GEN_ERR_N; i++) {
        if (!st->named[i])
            continue;
        if (json)
            printf("%s\"%s\": %llu", first ? "" : ", ", err_names[i], (unsigned long long)st->named[i]);
        else
            printf("  %s: %llu\n", err_names[i], (unsigned long long)st->named[i]);
        first = false;
    }
}

void gen_stats_print(const struct gen *g, double elapsed_s, bool json)
{
    const struct gen_stats *st = &g->st;
    double rate = elapsed_s > 0 ? (double)st->sent / elapsed_s : 0.0;
    const struct lat_hist *h = &st->latency;

    if (json) {
        printf("{\"target\": \"%s\", \"concurrency\": %u, \"sent\": %llu, \"failed\": %llu, \"attempted\": %llu, "
               "\"connections\": %llu, \"tls_sessions\": %llu, \"elapsed_s\": %.3f, \"msgs_per_s\": %.1f, \"msgs_per_h\": %.0f, "
               "\"errors\": {",
               g->o.target, g->o.concurrency, (unsigned long long)st->sent, (unsigned long long)st->failed,
               (unsigned long long)st->attempted, (unsigned long long)st->connections,
               (unsigned long long)st->tls_sessions, elapsed_s, rate,
               rate * 3600.0);
        print_errors(st, true);
        printf("}, \"latency_us\": {\"count\": %llu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"max\": %llu}}\n",
               (unsigned long long)h->count, (unsigned long long)lat_hist_percentile(h, 50),
               (unsigned long long)lat_hist_percentile(h, 90), (unsigned long long)lat_hist_percentile(h, 99),
               (unsigned long long)h->max);
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
        print_errors(st, false);
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
