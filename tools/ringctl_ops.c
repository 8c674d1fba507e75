/*
 * ringctl_ops - the live-operations commands for people (contract in ringctl_ops.h)
 *
 * Options come after the command; the query string is built here with every value percent-encoded.
 * Human output fits 100 columns: names are cut with '~' to their column, numbers have thousands
 * separators, ages read "47m"; colour (suspended rows, errors) only when stdout is a terminal and
 * NO_COLOR is not set. The node's answer is read with jansson, member by member: a member that is missing
 * or of another type prints as "-", never as garbage.
 */
#include "tools/ringctl_ops.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "common/proto_status.h"

enum cmd {
    C_SUMMARY,
    C_PROVIDERS,
    C_SUSPEND,
    C_SUSPEND_LIST,
    C_SUSPEND_CANCEL,
    C_SPATH,
    C_SPATH_LIST,
    C_SPATH_CANCEL,
    C_BOUNCE,
    C_BOUNCE_LIST,
    C_BOUNCE_CANCEL,
    C_INSPECT_Q,
    C_INSPECT_P,
    C_LOG_LEVEL,
    C_REBIND,
    C_ABORT_CONN,
    C__MAX,
};

static const struct {
    const char *name, *method, *url;
    int positional; /* 1: ID or NAME after the command */
    const char *usage;
} cmds[C__MAX] = {
    {"queue-summary", "GET", "/api/v1/queue-summary", 0,
     "[--by-site | --by-provider | --by-source] [--domain D] [--limit N] [--by-volume]"},
    {"provider-summary", "GET", "/api/v1/queue-summary", 0, "[--domain D] [--limit N] [--by-volume]"},
    {"suspend", "POST", "/api/v1/suspend", 0, "--domain D [--tenant T] [--campaign C] --reason R [--duration 2h]"},
    {"suspend-list", "GET", "/api/v1/suspend", 0, ""},
    {"suspend-cancel", "POST", "/api/v1/suspend/cancel", 1, "ID"},
    {"suspend-ready-q", "POST", "/api/v1/suspend-ready-q", 0, "--name SOURCE->SITE --reason R [--duration 2h]"},
    {"suspend-ready-q-list", "GET", "/api/v1/suspend-ready-q", 0, ""},
    {"suspend-ready-q-cancel", "POST", "/api/v1/suspend-ready-q/cancel", 1, "ID"},
    {"bounce", "POST", "/api/v1/bounce", 0,
     "--domain D [--tenant T] [--campaign C] | --tenant T | --campaign C | --queue Q | --everything --reason R "
     "[--duration 5m]"},
    {"bounce-list", "GET", "/api/v1/bounce", 0, ""},
    {"bounce-cancel", "POST", "/api/v1/bounce/cancel", 1, "ID"},
    {"inspect-sched-q", "GET", "/api/v1/inspect-sched-q", 1, "NAME"},
    {"inspect-ready-q", "GET", "/api/v1/inspect-ready-q", 1, "SOURCE->SITE"},
    {"set-log-level", "POST", "/api/v1/log-level", 1, "debug|info|warn|error|config [--role ROLE]"},
    {"rebind", "POST", "/api/v1/rebind", 0,
     "--domain D [--tenant T] [--campaign C] | --tenant T | --campaign C | --queue Q | --everything "
     "(--to-queue Q | --to-route HOST[:PORT],...) [--reason R]"},
    {"abort-ready-q-conn", "POST", "/api/v1/abort-ready-q-conn", 1, "SOURCE->SITE [--reason R]"},
};

static int cmd_of(const char *name)
{
    for (int i = 0; i < C__MAX; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return i;
    return -1;
}

bool ringctl_ops_command(const char *name)
{
    return cmd_of(name) >= 0;
}

void ringctl_ops_num(char *buf, size_t len, unsigned long long n)
{
    char digits[32];
    int nd = snprintf(digits, sizeof(digits), "%llu", n);
    size_t k = 0;
    for (int i = 0; i < nd && k + 1 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && k + 2 < len)
            buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
}

void ringctl_ops_age(char *buf, size_t len, long long ms)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 60000)
        snprintf(buf, len, "%llds", ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm", ms / 60000);
    else if (ms < 48LL * 3600000 && (ms / 60000) % 60)
        snprintf(buf, len, "%lldh%02lldm", ms / 3600000, (ms / 60000) % 60);
    else if (ms < 48LL * 3600000)
        snprintf(buf, len, "%lldh", ms / 3600000);
    else
        snprintf(buf, len, "%lldd", ms / 86400000);
}

/* ---- reading the answer ---- */

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static long long num(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : json_is_real(v) ? (long long)json_real_value(v) : -1;
}

static const char *nums(const json_t *o, const char *k, char *buf, size_t len)
{
    long long v = num(o, k);
    if (v < 0)
        snprintf(buf, len, "-");
    else
        ringctl_ops_num(buf, len, (unsigned long long)v);
    return buf;
}

static const char *ages(const json_t *o, const char *k, char *buf, size_t len)
{
    ringctl_ops_age(buf, len, num(o, k));
    return buf;
}

/* cut - s in at most w columns (bytes: names are ASCII in practice), '~' marking a cut */
static const char *cut(const char *s, size_t w, char *buf, size_t len)
{
    size_t n = strlen(s);
    if (n <= w || w < 2 || w >= len) {
        snprintf(buf, len, "%s", s);
        return buf;
    }
    memcpy(buf, s, w - 1);
    buf[w - 1] = '~';
    buf[w] = '\0';
    return buf;
}

const char *ringctl_ops_str(const json_t *o, const char *k)
{
    return str(o, k);
}

long long ringctl_ops_int(const json_t *o, const char *k)
{
    return num(o, k);
}

const char *ringctl_ops_nums(const json_t *o, const char *k, char *buf, size_t len)
{
    return nums(o, k, buf, len);
}

const char *ringctl_ops_ages(const json_t *o, const char *k, char *buf, size_t len)
{
    return ages(o, k, buf, len);
}

const char *ringctl_ops_cut(const char *s, size_t w, char *buf, size_t len)
{
    return cut(s, w, buf, len);
}

static bool colour;

int ringctl_ops_fetch(ringctl_http_fn http, const char *endpoint, const char *method, const char *path, bool json,
                      const char *name, json_t **doc)
{
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    *doc = NULL;
    if (http(endpoint, method, path, &status, &body, &len) < 0)
        return 3;
    colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (json) {
        fwrite(body, 1, len, stdout);
        free(body);
        return status == 200 ? 0 : 1;
    }
    json_t *d = json_loadb(body, len, 0, NULL);
    free(body);
    if (status != 200 || !json_is_object(d)) {
        const char *err = json_string_value(json_object_get(d, "error"));
        fprintf(stderr, "%sringctl %s: %s%s\n", colour ? "\033[31m" : "", name,
                err ? err : "the node's answer is not a JSON object", colour ? "\033[0m" : "");
        json_decref(d);
        return 1;
    }
    *doc = d;
    return -1;
}

#define YELLOW (colour ? "\033[33m" : "")
#define RED (colour ? "\033[31m" : "")
#define OFF (colour ? "\033[0m" : "")

/* ---- output ---- */

static void print_summary(const json_t *doc, bool providers)
{
    const json_t *rows = json_object_get(doc, "rows"), *queues = json_object_get(doc, "queues");
    const json_t *tot = json_object_get(doc, "totals");
    const char *by = json_string_value(json_object_get(doc, "by"));
    char a[32], b[32], c[32], d[32], e[32], f[32], name[64], resp[64], age[16];
    printf("queued %s (scheduled %s, ready %s, in flight %s); since start: delivered %s, transient %s, "
           "bounced %s\n\n",
           nums(tot, "messages", a, sizeof(a)), nums(tot, "scheduled", b, sizeof(b)), nums(tot, "ready", c, sizeof(c)),
           nums(tot, "in_flight", d, sizeof(d)), nums(tot, "delivered", e, sizeof(e)),
           nums(tot, "transient", f, sizeof(f)), nums(tot, "bounced", name, sizeof(name)));
    const char *head = providers ? "PROVIDER" : !by ? "SOURCE->SITE" : strcmp(by, "site") == 0 ? "SITE" : "SOURCE";
    printf("%-28s %9s %7s %5s %9s %6s %5s  %s\n", head, "D", "T", "C", "Q", "D/min", "T/min", "LAST RESPONSE");
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *r = json_array_get(rows, i);
        long long susp = num(r, "suspended_ms");
        char last[96];
        if (json_is_string(json_object_get(r, "last_response")))
            snprintf(last, sizeof(last), "%s %s", ages(r, "last_response_age_ms", age, sizeof(age)),
                     cut(str(r, "last_response"), 18, resp, sizeof(resp)));
        else
            snprintf(last, sizeof(last), "-");
        printf("%s%-28s %9s %7s %5s %9s %6.0f %5.0f  ", susp > 0 ? YELLOW : "", cut(str(r, "name"), 28, name, sizeof(name)),
               nums(r, "delivered", a, sizeof(a)), nums(r, "transient", b, sizeof(b)),
               nums(r, "connections", c, sizeof(c)), nums(r, "queued", d, sizeof(d)),
               json_number_value(json_object_get(r, "delivered_per_min")),
               json_number_value(json_object_get(r, "transient_per_min")));
        if (susp > 0)
            printf("SUSPENDED %s %s%s\n", ages(r, "suspended_ms", age, sizeof(age)), cut(last, 9, resp, sizeof(resp)), OFF);
        else
            printf("%s\n", last);
    }
    if (json_array_size(rows) == 0)
        printf("(no ready queue yet)\n");
    if (json_array_size(queues) == 0)
        return;
    printf("\n%-48s %9s %9s %8s %s\n", "SCHEDULED QUEUE", "MESSAGES", "WAITING", "NEXT DUE", "SUSPENDED");
    for (size_t i = 0; i < json_array_size(queues); i++) {
        const json_t *q = json_array_get(queues, i);
        char qn[64], due[16];
        long long susp = num(q, "suspended_ms");
        printf("%s%-48s %9s %9s %8s %s%s\n", susp > 0 ? YELLOW : "", cut(str(q, "name"), 48, qn, sizeof(qn)),
               nums(q, "messages", a, sizeof(a)), nums(q, "scheduled", b, sizeof(b)),
               ages(q, "next_due_ms", due, sizeof(due)), susp > 0 ? ages(q, "suspended_ms", age, sizeof(age)) : "-",
               susp > 0 ? OFF : "");
    }
}

static void what(const json_t *it, char *buf, size_t len)
{
    const char *kind = str(it, "kind");
    if (strcmp(kind, "suspend-ready-q") == 0) {
        snprintf(buf, len, "%s->%s", str(it, "source"), str(it, "site"));
        return;
    }
    const char *dom = str(it, "domain"), *ten = str(it, "tenant"), *camp = str(it, "campaign");
    bool any = strcmp(dom, "*") == 0;
    snprintf(buf, len, "%s%s%s%s%s%s", any && !ten[0] && !camp[0] ? "everything" : any ? "" : dom,
             ten[0] ? (any ? "tenant " : " tenant ") : "", ten, camp[0] ? (any && !ten[0] ? "campaign " : " campaign ") : "",
             camp, any && (ten[0] || camp[0]) ? " (every domain)" : "");
}

static void print_item_line(const json_t *it)
{
    char w[128], wc[48], left[16], who[32], reason[64];
    what(it, w, sizeof(w));
    printf("%-14lld %-36s %9s  %-20s %s\n", num(it, "id"), cut(w, 36, wc, sizeof(wc)),
           ages(it, "remaining_ms", left, sizeof(left)), cut(str(it, "who"), 20, who, sizeof(who)),
           cut(str(it, "reason"), 26, reason, sizeof(reason)));
}

static void print_list(const json_t *doc, const char *none)
{
    const json_t *items = json_object_get(doc, "items");
    if (json_array_size(items) == 0) {
        printf("%s\n", none);
        return;
    }
    printf("%-14s %-36s %9s  %-20s %s\n", "ID", "WHAT", "REMAINING", "WHO", "REASON");
    for (size_t i = 0; i < json_array_size(items); i++)
        print_item_line(json_array_get(items, i));
}

static void print_item(const json_t *doc, bool cancelled)
{
    const json_t *it = json_object_get(doc, "item");
    char w[128], left[16], n[32];
    what(it, w, sizeof(w));
    if (cancelled) {
        printf("cancelled %s %lld: %s\n", str(it, "kind"), num(it, "id"), w);
        return;
    }
    printf("%s %lld: %s for %s (cancel: ringctl %s-cancel %lld)\n", str(it, "kind"), num(it, "id"), w,
           ages(it, "remaining_ms", left, sizeof(left)), str(it, "kind"), num(it, "id"));
    if (json_object_get(it, "bounced"))
        printf("%s queued message(s) bounced now; new ones are bounced while it lasts\n",
               nums(it, "bounced", n, sizeof(n)));
    if (json_is_false(json_object_get(it, "path_exists")))
        printf("note: no such ready queue exists yet; the suspension holds it when it appears\n");
}

static void print_effects(const json_t *effects)
{
    if (json_array_size(effects) == 0) {
        printf("effects:     none\n");
        return;
    }
    printf("effects:\n");
    for (size_t i = 0; i < json_array_size(effects); i++) {
        const json_t *e = json_array_get(effects, i);
        char left[16], reason[64];
        printf("  %s%s%s %lld, %s left, by %s: %s\n", YELLOW, str(e, "action"), OFF, num(e, "id"),
               ages(e, "remaining_ms", left, sizeof(left)), str(e, "who"), cut(str(e, "reason"), 40, reason, sizeof(reason)));
    }
}

static void print_messages(const json_t *msgs)
{
    printf("\nsample of messages (%zu):\n", json_array_size(msgs));
    if (json_array_size(msgs) == 0)
        return;
    printf("  %-32s %-10s %8s %7s %8s\n", "ID", "STATE", "ATTEMPTS", "AGE", "DUE IN");
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        char age[16], due[16];
        printf("  %-32s %-10s %8lld %7s %8s\n", str(m, "id"), str(m, "state"), num(m, "attempts"),
               ages(m, "age_ms", age, sizeof(age)), ages(m, "due_in_ms", due, sizeof(due)));
    }
}

static void rate_text(const json_t *r, char *buf, size_t len)
{
    if (!json_is_object(r))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%lld per %llds", num(r, "limit"), num(r, "period_ms") / 1000);
}

static void print_inspect(const json_t *doc, bool path)
{
    char a[32], b[32], c[32], d[32], age[16];
    if (!path) {
        const json_t *q = json_object_get(doc, "queue"), *cfg = json_object_get(q, "config");
        printf("queue:       %s\ndomain:      %s (site %s)\n", str(q, "name"), str(q, "domain"), str(q, "site"));
        printf("messages:    %s (%s waiting in the queue), next due in %s\n", nums(q, "messages", a, sizeof(a)),
               nums(q, "scheduled", b, sizeof(b)), ages(q, "next_due_ms", age, sizeof(age)));
        printf("config:      retry_interval %llds, max_retry_interval %llds, max_age %llds, pool %s\n",
               num(cfg, "retry_interval_s"), num(cfg, "max_retry_interval_s"), num(cfg, "max_age_s"), str(cfg, "pool"));
        long long susp = num(q, "suspended_ms");
        printf("suspended:   %s%s\n", susp > 0 ? "for " : "no", susp > 0 ? ages(q, "suspended_ms", age, sizeof(age)) : "");
        printf("bouncing:    %s\n", json_is_true(json_object_get(q, "bouncing")) ? "YES: new mail is bounced" : "no");
        print_effects(json_object_get(q, "effects"));
        print_messages(json_object_get(doc, "messages"));
        return;
    }
    const json_t *p = json_object_get(doc, "path"), *cfg = json_object_get(p, "config"),
                 *thr = json_object_get(p, "throttle");
    char mr[48], cr[48];
    printf("ready queue: %s (provider %s, created for %s)\n", str(p, "name"), str(p, "provider"), str(p, "domain"));
    printf("counts:      D %s  T %s  B %s  (since start)\n", nums(p, "delivered", a, sizeof(a)),
           nums(p, "transient", b, sizeof(b)), nums(p, "bounced", c, sizeof(c)));
    printf("now:         Q %s ready, %s in flight, %s connection(s) open (%lld idle)\n",
           nums(p, "queued", a, sizeof(a)), nums(p, "in_flight", b, sizeof(b)), nums(p, "connections", d, sizeof(d)),
           num(p, "idle_connections"));
    rate_text(json_object_get(cfg, "max_message_rate"), mr, sizeof(mr));
    rate_text(json_object_get(cfg, "max_connection_rate"), cr, sizeof(cr));
    printf("config:      connection_limit %lld, max_deliveries_per_connection %lld, max_ready %lld\n"
           "             max_message_rate %s, max_connection_rate %s, named limits %zu, throttles %zu\n",
           num(cfg, "connection_limit"), num(cfg, "max_deliveries_per_connection"), num(cfg, "max_ready"), mr, cr,
           json_array_size(json_object_get(cfg, "limits")), json_array_size(json_object_get(cfg, "throttles")));
    char held[32] = "not held";
    if (num(thr, "throttled_ms") > 0)
        snprintf(held, sizeof(held), "held for %s", ages(thr, "throttled_ms", age, sizeof(age)));
    printf("throttle:    %s; waits: %lld rate, %lld limit; %lld consecutive connection failures\n", held,
           num(thr, "throttle_waits"), num(thr, "limit_waits"), num(thr, "consecutive_failures"));
    long long susp = num(p, "suspended_ms");
    printf("suspended:   %s%s\n", susp > 0 ? "for " : "no", susp > 0 ? ages(p, "suspended_ms", age, sizeof(age)) : "");
    if (json_is_string(json_object_get(p, "last_response")))
        printf("last resp.:  %s ago: %s\n", ages(p, "last_response_age_ms", age, sizeof(age)), str(p, "last_response"));
    print_effects(json_object_get(p, "effects"));
    print_messages(json_object_get(doc, "messages"));
}

static void print_rebind(const json_t *it, bool abort)
{
    char a[32], b[32], c[32];
    if (abort) {
        printf("%s: %s connection(s) closed (%s with a message in flight: requeued); new connections may open "
               "unless the path is suspended\n",
               str(it, "name"), nums(it, "closed", a, sizeof(a)), nums(it, "in_flight", b, sizeof(b)));
        return;
    }
    bool queue = json_is_string(json_object_get(it, "to_queue"));
    printf("%s queued message(s) moved to %s %s; %s in flight skipped (rebind again once their attempt is back)",
           nums(it, "moved", a, sizeof(a)), queue ? "queue" : "route", str(it, queue ? "to_queue" : "to_route"),
           nums(it, "skipped_in_flight", b, sizeof(b)));
    if (num(it, "skipped_multi_domain") > 0)
        printf("; %s skipped: their recipients span several domains", nums(it, "skipped_multi_domain", c, sizeof(c)));
    if (num(it, "not_moved") > 0)
        printf("; %s not moved (no room to send them to the spool now: try again)", nums(it, "not_moved", c, sizeof(c)));
    printf("\n");
}

/* ---- the request ---- */

void ringctl_ops_query_add(struct buf *q, const char *key, const char *v)
{
    if (!v)
        return;
    buf_printf(q, "%c%s=", q->len ? '&' : '?', key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
            buf_printf(q, "%c", *p);
        else
            buf_printf(q, "%%%02X", *p);
    }
}

static int usage(int cmd)
{
    fprintf(stderr, "usage: ringctl %s %s [--json]\n", cmds[cmd].name, cmds[cmd].usage);
    return 2;
}

int ringctl_ops_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http)
{
    static const struct option opts[] = {
        {"by-site", no_argument, NULL, 'S'},    {"by-provider", no_argument, NULL, 'P'},
        {"by-source", no_argument, NULL, 'O'},  {"by-volume", no_argument, NULL, 'V'},
        {"domain", required_argument, NULL, 'd'}, {"tenant", required_argument, NULL, 't'},
        {"campaign", required_argument, NULL, 'c'}, {"queue", required_argument, NULL, 'q'},
        {"name", required_argument, NULL, 'n'}, {"reason", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'D'}, {"limit", required_argument, NULL, 'l'},
        {"everything", no_argument, NULL, 'E'}, {"json", no_argument, NULL, 'j'},
        {"role", required_argument, NULL, 'R'}, {"to-queue", required_argument, NULL, 'Q'},
        {"to-route", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    int cmd = cmd_of(argv[0]), c;
    struct buf q = {0};
    const char *by = cmd == C_PROVIDERS ? "provider" : NULL;

    optind = 0; /* GNU getopt: start over on this argv, options and the ID or NAME in any order */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        static const char *const keys[128] = {['d'] = "domain", ['t'] = "tenant", ['c'] = "campaign",
                                              ['q'] = "queue",  ['n'] = "name",   ['r'] = "reason",
                                              ['D'] = "duration", ['l'] = "limit", ['R'] = "role",
                                              ['Q'] = "to_queue", ['T'] = "to_route"};
        if (c == 'j')
            json = true;
        else if (c == 'S' || c == 'P' || c == 'O') {
            if (cmd != C_SUMMARY || by)
                return buf_fini(&q), usage(cmd);
            by = c == 'S' ? "site" : c == 'P' ? "provider" : "source";
        } else if (c == 'V')
            ringctl_ops_query_add(&q, "by_volume", "1");
        else if (c == 'E')
            ringctl_ops_query_add(&q, "everything", "1");
        else if (c > 0 && c < 128 && keys[c])
            ringctl_ops_query_add(&q, keys[c], optarg);
        else
            return buf_fini(&q), usage(cmd);
    }
    if (argc - optind != cmds[cmd].positional)
        return buf_fini(&q), usage(cmd);
    if (cmds[cmd].positional)
        ringctl_ops_query_add(&q, cmd == C_INSPECT_Q || cmd == C_INSPECT_P || cmd == C_ABORT_CONN ? "name"
                      : cmd == C_LOG_LEVEL                                        ? "level"
                                                                                  : "id",
                  argv[optind]);
    ringctl_ops_query_add(&q, "by", by);
    char *path = NULL;
    if (asprintf(&path, "%s%s", cmds[cmd].url, q.len ? (char *)q.data : "") < 0)
        path = NULL;
    buf_fini(&q);
    if (!path)
        return 1;
    json_t *doc = NULL;
    int done = ringctl_ops_fetch(http, endpoint, cmds[cmd].method, path, json, cmds[cmd].name, &doc);
    free(path);
    if (done >= 0)
        return done;
    switch (cmd) {
    case C_LOG_LEVEL:
        printf("%s\n", str(doc, "detail"));
        break;
    case C_SUMMARY:
    case C_PROVIDERS:
        print_summary(doc, cmd == C_PROVIDERS);
        break;
    case C_SUSPEND_LIST:
    case C_SPATH_LIST:
    case C_BOUNCE_LIST:
        print_list(doc, cmd == C_BOUNCE_LIST ? "no bounce in force" : "no suspension in force");
        break;
    case C_INSPECT_Q:
    case C_INSPECT_P:
        print_inspect(doc, cmd == C_INSPECT_P);
        break;
    case C_REBIND:
    case C_ABORT_CONN:
        print_rebind(json_object_get(doc, "item"), cmd == C_ABORT_CONN);
        break;
    default:
        print_item(doc, cmd == C_SUSPEND_CANCEL || cmd == C_SPATH_CANCEL || cmd == C_BOUNCE_CANCEL);
        break;
    }
    json_decref(doc);
    return 0;
}
