/*
 * ringctl_tsa - tsa-status and tsa-history for people (contract in ringctl_tsa.h)
 */
#include "tools/ringctl_tsa.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* url_ok - a domain or site name that can go into a query string as it is */
static bool url_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr(".-_:,", *s)))
            return false;
    return true;
}

int ringctl_tsa_path(const char *cmd, const char *domain, const char *site, char *path, size_t cap)
{
    if (strcmp(cmd, "tsa-history") == 0) {
        if (domain || site)
            return -EINVAL;
        snprintf(path, cap, "/api/v1/tsa/history");
        return 0;
    }
    if ((domain && !url_ok(domain)) || (site && !url_ok(site)))
        return -EINVAL;
    int n = snprintf(path, cap, "/api/v1/tsa/status%s%s%s%s%s%s", domain || site ? "?" : "", domain ? "domain=" : "",
                     domain ? domain : "", domain && site ? "&" : "", site ? "site=" : "", site ? site : "");
    return n > 0 && (size_t)n < cap ? 0 : -EINVAL;
}

static void remaining(char *buf, size_t len, int64_t ms)
{
    int64_t s = ms > 0 ? (ms + 999) / 1000 : 0;
    if (s < 60)
        snprintf(buf, len, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm", (long long)(s + 59) / 60);
    else
        snprintf(buf, len, "%lldh%02lldm", (long long)s / 3600, (long long)(s % 3600) / 60);
}

/* what - the action in capitals and the key it holds */
static void what(const struct proto_status_tsa_entry *e, char *buf, size_t len)
{
    char act[64];
    size_t k = 0;
    for (const char *p = e->action; *p && k < sizeof(act) - 1; p++)
        act[k++] = (char)toupper((unsigned char)*p);
    act[k] = '\0';
    int n;
    if (e->domain[0])
        n = snprintf(buf, len, "%s %s%s%s%s%s", act, e->domain, e->tenant[0] ? " tenant " : "", e->tenant,
                     e->campaign[0] ? " campaign " : "", e->campaign);
    else
        n = snprintf(buf, len, "%s %s%s%s", act, e->source, e->source[0] ? "->" : "", e->site);
    if (e->option && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, " %s=%s", e->option, e->value);
}

void ringctl_tsa_print(const struct proto_status_tsa *t, bool history)
{
    char w[2048], left[32], when[32];
    size_t n = history ? t->n_history : t->n_active;
    const struct proto_status_tsa_entry *v = history ? t->history : t->active;

    if (n == 0) {
        printf(history ? "no automation firing recorded\n" : "no automation effect in force\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct proto_status_tsa_entry *e = &v[i];
        what(e, w, sizeof(w));
        if (history) {
            time_t sec = (time_t)(e->start_ms / 1000);
            struct tm tm;
            gmtime_r(&sec, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            remaining(left, sizeof(left), (int64_t)(e->expires_ms - e->start_ms));
            printf("%s %s for %s · trigger: %s · count %llu · rule %s:%llu\n", when, w, left, e->response,
                   (unsigned long long)e->count, e->rule_file, (unsigned long long)e->rule_line);
        } else {
            int64_t ms = e->remaining_ms - (t->age_ms > 0 ? t->age_ms : 0);
            remaining(left, sizeof(left), ms);
            printf("%s active %s remaining · trigger: %s · count %llu · rule %s:%llu\n", w, left, e->response,
                   (unsigned long long)e->count, e->rule_file, (unsigned long long)e->rule_line);
        }
    }
}
