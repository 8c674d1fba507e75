/*
 * ringctl_warmup - `ringctl warmup status [--json]` (contract in ringctl_warmup.h)
 *
 * A thin client of GET /api/v1/warmup/status (docs/admin-api.md, "Warm-up"). The answer is read with
 * jansson member by member through ringctl_ops' readers: a member that is missing or of another type
 * prints as "-", never as garbage. One line per (source, provider), then the reason of each held step.
 */
#include "tools/ringctl_warmup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "tools/ringctl_ops.h"

#define URL "/api/v1/warmup/status"

bool ringctl_warmup_command(const char *name)
{
    return strcmp(name, "warmup") == 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: ringctl [--json] warmup status\n");
    return 2;
}

/* when - a unix ms time as "2026-12-07 15:04Z" */
static const char *when(const json_t *o, const char *k, char *buf, size_t len)
{
    long long ms = ringctl_ops_int(o, k);
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    if (ms <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
    return buf;
}

static void print_doc(const json_t *doc)
{
    const json_t *sources = json_object_get(doc, "sources");
    if (!json_is_array(sources) || json_array_size(sources) == 0) {
        printf("no source is warming up ([warmup.\"SOURCE\"] in ringmail.toml)\n");
        return;
    }
    size_t i, j;
    const json_t *s, *k;
    json_array_foreach(sources, i, s)
    {
        char a[32], b[32], c[32];
        printf("%s: %s steps of %s from %s, max_deferral_rate %.3f, per %s\n", ringctl_ops_str(s, "source"),
               ringctl_ops_nums(s, "steps", a, sizeof(a)),
               ringctl_ops_ages(s, "step_duration_ms", b, sizeof(b)), when(s, "start_ms", c, sizeof(c)),
               json_number_value(json_object_get(s, "max_deferral_rate")), ringctl_ops_str(s, "per"));
        const json_t *keys = json_object_get(s, "keys");
        if (!json_is_array(keys) || json_array_size(keys) == 0) {
            printf("  (no mail to any provider yet)\n");
            continue;
        }
        printf("  %-28s %-9s %9s %-12s %10s %10s %8s %-20s\n", "PROVIDER", "STATE", "STEP", "ALLOWANCE",
               "PER HOUR", "USED", "DEFERRED", "NEXT STEP");
        json_array_foreach(keys, j, k)
        {
            char cut[64], st[32], ph[32], used[32], next[40];
            snprintf(st, sizeof(st), "%lld/%lld", ringctl_ops_int(k, "step"), ringctl_ops_int(k, "steps"));
            printf("  %-28s %-9s %9s %-12s %10s %10s %7.1f%% %-20s\n",
                   ringctl_ops_cut(ringctl_ops_str(k, "key"), 28, cut, sizeof(cut)),
                   ringctl_ops_str(k, "state"), st, ringctl_ops_str(k, "allowance"),
                   ringctl_ops_nums(k, "allowance_per_hour", ph, sizeof(ph)),
                   ringctl_ops_nums(k, "used", used, sizeof(used)),
                   100.0 * json_number_value(json_object_get(k, "deferral_rate")),
                   when(k, "next_step_ms", next, sizeof(next)));
        }
        json_array_foreach(keys, j, k)
        {
            const char *why = json_string_value(json_object_get(k, "held_reason"));
            char since[40];
            if (why && why[0])
                printf("  %s held since %s: %s\n", ringctl_ops_str(k, "key"),
                       when(k, "held_since_ms", since, sizeof(since)), why);
        }
    }
}

int ringctl_warmup_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http)
{
    bool as_json = json;
    int n = 0;
    const char *sub = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (argv[i][0] == '-' || n++)
            return usage();
        else
            sub = argv[i];
    }
    if (!sub || strcmp(sub, "status") != 0)
        return usage();
    json_t *doc = NULL;
    int done = ringctl_ops_fetch(http, endpoint, "GET", URL, as_json, "warmup status", &doc);
    if (done >= 0)
        return done;
    print_doc(doc);
    json_decref(doc);
    return 0;
}
