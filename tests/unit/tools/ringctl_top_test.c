/*
 * ringctl_top_test - `ringctl top`'s pure parts: the number formats, /proc parsing (on exact-size,
 * unterminated buffers), the queue-summary reader (hostile bytes, wrong types), rates between two
 * samples, filtering and sorting, keys, and the renderer's bounds (width, height, "... N more")
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/lib/check.h"
#include "tools/ringctl_top.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void test_formats(void)
{
    static const struct {
        double r;
        const char *want;
    } rates[] = {
        {-1, "-"}, {0, "0.0"}, {0.04, "0.0"}, {0.5, "0.5"}, {9.94, "9.9"}, {9.96, "10"}, {12.4, "12"},
        {999.4, "999"}, {999.6, "1.0k"}, {12345, "12.3k"}, {2.5e6, "2.5M"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rates); i++) {
        char b[16];
        ringctl_top_fmt_rate(b, sizeof(b), rates[i].r);
        CHECK(strcmp(b, rates[i].want) == 0, "rate %g: %s, want %s", rates[i].r, b, rates[i].want);
    }
    static const struct {
        uint64_t b;
        const char *want;
    } bytes[] = {
        {0, "0B"}, {1023, "1023B"}, {1024, "1K"}, {512 * 1024, "512K"}, {18628608, "17.8M"}, {3ull << 30, "3.0G"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++) {
        char b[16];
        ringctl_top_fmt_bytes(b, sizeof(b), bytes[i].b);
        CHECK(strcmp(b, bytes[i].want) == 0, "bytes %llu: %s, want %s", (unsigned long long)bytes[i].b, b,
              bytes[i].want);
    }
    char c[8];
    ringctl_top_clean(c, sizeof(c), "a\033[2Jb\n\xff", 8);
    CHECK(strcmp(c, "a?[2Jb?") == 0, "cleaned %s", c);
}

/* exact - text in a heap block of its length, no NUL after it: ASan sees any read past the end */
static char *exact(const char *text, size_t *len)
{
    *len = strlen(text);
    char *p = malloc(*len ? *len : 1);
    memcpy(p, text, *len);
    return p;
}

static void test_proc(void)
{
    static const struct {
        const char *text;
        int rc;
        const char *comm;
        uint64_t ticks;
    } stats[] = {
        {"1234 (ringmail-spool) S 1 1234 1234 0 -1 4194560 3210 0 0 0 150 27 0 0 20 0 3 0 99 1000 200\n", 0,
         "ringmail-spool", 177},
        {"77 (a) b) c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n", 0, "a) b) c", 23},
        {"9 (x\033]0;y) S 1 1 1 0 -1 0 0 0 0 0 5 6", 0, "x?]0;y", 11}, /* no newline at the end */
        {"9 (x) S 1 1 1 0 -1 0 0 0 0 0 5", -EINVAL, "", 0},            /* stime missing */
        {"9 (x) S 1 1 1 0 -1 0 0 0 0 0 5 -6", -EINVAL, "", 0},
        {"9 (x) S 1 1 1 0 -1 0 0 0 0 0 5x 6", -EINVAL, "", 0},
        {"9 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999 6", -EINVAL, "", 0},
        {"9 (x) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 6", -EINVAL, "", 0}, /* the sum overflows */
        {"9 x S 1 1 1 0 -1 0 0 0 0 0 5 6", -EINVAL, "", 0},
        {"9 )x( S 1 1 1 0 -1 0 0 0 0 0 5 6", -EINVAL, "", 0},
        {"", -EINVAL, "", 0},
        {"(", -EINVAL, "", 0},
        {"()", -EINVAL, "", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(stats); i++) {
        size_t len;
        char *buf = exact(stats[i].text, &len), comm[32] = "";
        uint64_t ticks = 0;
        int rc = ringctl_top_proc_stat(buf, len, comm, sizeof(comm), &ticks);
        CHECK(rc == stats[i].rc, "stat case %zu: rc %d", i, rc);
        if (rc == 0) {
            CHECK(strcmp(comm, stats[i].comm) == 0, "stat case %zu: comm %s", i, comm);
            CHECK(ticks == stats[i].ticks, "stat case %zu: ticks %llu", i, (unsigned long long)ticks);
        }
        free(buf);
    }
    static const struct {
        const char *text;
        int rc;
        uint64_t pages;
    } statms[] = {
        {"5000 1200 300 10 0 900 0\n", 0, 1200}, {"5000 77", 0, 77}, {"5000", -EINVAL, 0}, {"5000 ", -EINVAL, 0},
        {"x 1", -EINVAL, 0},                    {"", -EINVAL, 0},   {"1 2x", -EINVAL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(statms); i++) {
        size_t len;
        char *buf = exact(statms[i].text, &len);
        uint64_t pages = 0;
        int rc = ringctl_top_proc_statm(buf, len, &pages);
        CHECK(rc == statms[i].rc && (rc < 0 || pages == statms[i].pages), "statm case %zu: rc %d pages %llu", i, rc,
              (unsigned long long)pages);
        free(buf);
    }
}

static const char summary_doc[] =
    "{\"by\":\"provider\",\"rows\":["
    "{\"name\":\"alphaprov\",\"delivered\":10,\"transient\":1,\"bounced\":0,\"connections\":2,\"queued\":5,"
    "\"in_flight\":1,\"suspended_ms\":0,\"last_response\":\"421 4.7.0 \\u001b[31mslow down\"},"
    "{\"name\":\"betaprov\",\"delivered\":\"7\",\"transient\":-3,\"connections\":1.5,\"queued\":9,"
    "\"suspended_ms\":60000,\"last_response\":null},"
    "{\"name\":\"\"}, 17, {\"delivered\":4},"
    "{\"name\":\"gammaprov\",\"delivered\":3,\"transient\":8,\"connections\":2,\"queued\":0}"
    "],\"totals\":{\"messages\":14,\"delivered\":13,\"transient\":9,\"bounced\":2,\"expired\":1}}";

static void test_summary(void)
{
    struct ringctl_top_frame f = {0};
    char *err = NULL;
    int rc = ringctl_top_summary_parse(summary_doc, strlen(summary_doc), &f, &err);
    CHECK(rc == 0, "parse: %s", err ? err : "");
    CHECK(f.n_rows == 3 && f.rows_total == 6, "rows %zu of %zu", f.n_rows, f.rows_total);
    CHECK(f.have_summary && f.messages == 14 && f.delivered == 13 && f.bounced == 2 && f.expired == 1, "totals");
    if (f.n_rows == 3) {
        CHECK(strcmp(f.rows[0].last_response, "421 4.7.0 ?[31mslow down") == 0, "escape shown as ?: %s",
              f.rows[0].last_response);
        CHECK(f.rows[0].delivered == 10 && f.rows[0].connections == 2 && f.rows[0].queued == 5, "alphaprov");
        CHECK(f.rows[1].delivered == 0 && f.rows[1].transient == 0 && f.rows[1].connections == 0, "wrong types read 0");
        CHECK(f.rows[1].suspended_ms == 60000 && f.rows[1].last_response[0] == '\0', "betaprov");
        CHECK(f.rows[0].delivered_per_s < 0, "no rate before a second sample");
    }
    static const char *const bad[] = {"", "[]", "{\"rows\":{}}", "{\"rows\":[] ", "{\"rows\":[],\"rows\":[]}", "null"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        err = NULL;
        rc = ringctl_top_summary_parse(bad[i], strlen(bad[i]), &f, &err);
        CHECK(rc == -EINVAL && err && f.n_rows == 0 && !f.have_summary, "bad doc %zu accepted", i);
        free(err);
    }
    ringctl_top_frame_fini(&f);

    /* more rows than kept: the first RINGCTL_TOP_MAX_ROWS */
    json_t *rows = json_array();
    for (int i = 0; i < RINGCTL_TOP_MAX_ROWS + 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "p%05d", i);
        json_array_append_new(rows, json_pack("{s:s, s:i}", "name", name, "delivered", i));
    }
    json_t *doc = json_pack("{s:o, s:{}}", "rows", rows, "totals");
    char *text = json_dumps(doc, 0);
    rc = ringctl_top_summary_parse(text, strlen(text), &f, &err);
    CHECK(rc == 0 && f.n_rows == RINGCTL_TOP_MAX_ROWS && f.rows_total == RINGCTL_TOP_MAX_ROWS + 5, "cap: %zu of %zu",
          f.n_rows, f.rows_total);
    free(text);
    json_decref(doc);
    ringctl_top_frame_fini(&f);
}

static struct ringctl_top_row mkrow(const char *name, uint64_t d, uint64_t t, uint64_t c, uint64_t q)
{
    struct ringctl_top_row r = {.delivered = d, .transient = t, .connections = c, .queued = q};
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.delivered_per_s = r.transient_per_s = -1;
    return r;
}

static void test_rates(void)
{
    struct ringctl_top_row a[] = {mkrow("alpha", 10, 0, 1, 0), mkrow("beta", 50, 4, 0, 0)};
    struct ringctl_top_row b[] = {mkrow("beta", 40, 10, 0, 0), mkrow("alpha", 30, 1, 1, 0), mkrow("new", 6, 0, 0, 0)};
    struct ringctl_top_frame prev = {.t_s = 100, .have_summary = true, .delivered = 60, .transient = 4,
                                     .rows = a, .n_rows = 2, .rows_total = 2, .n_roles = 2};
    struct ringctl_top_frame now = {.t_s = 102, .have_summary = true, .delivered = 76, .transient = 11,
                                    .rows = b, .n_rows = 3, .rows_total = 3, .n_roles = 2};
    prev.roles[0] = (struct ringctl_top_role){.name = "spool[0]", .pid = 10, .visible = true, .cpu_ticks = 100};
    prev.roles[1] = (struct ringctl_top_role){.name = "egress[0]", .pid = 11, .visible = true, .cpu_ticks = 100};
    now.roles[0] = (struct ringctl_top_role){.name = "spool[0]", .pid = 10, .visible = true, .cpu_ticks = 150};
    now.roles[1] = (struct ringctl_top_role){.name = "egress[0]", .pid = 12, .visible = true, .cpu_ticks = 400};

    ringctl_top_rates(&now, NULL, 100);
    CHECK(now.delivered_per_s < 0 && b[0].delivered_per_s < 0 && now.roles[0].cpu_pct < 0, "no previous sample");
    ringctl_top_rates(&now, &prev, 100);
    CHECK(now.delivered_per_s == 8 && now.transient_per_s == 3.5, "totals %g %g", now.delivered_per_s,
          now.transient_per_s);
    CHECK(b[0].delivered_per_s == 0 && b[0].transient_per_s == 3, "a counter that went down: %g %g",
          b[0].delivered_per_s, b[0].transient_per_s);
    CHECK(b[1].delivered_per_s == 10 && b[1].transient_per_s == 0.5, "alpha %g", b[1].delivered_per_s);
    CHECK(b[2].delivered_per_s == 3, "a new row counts from 0: %g", b[2].delivered_per_s);
    CHECK(now.roles[0].cpu_pct == 25, "spool cpu %g", now.roles[0].cpu_pct);
    CHECK(now.roles[1].cpu_pct < 0, "a restarted role (another pid) has no rate yet");
    prev.rows_total = 5; /* the previous sample was cut: a missing row may have had counts */
    ringctl_top_rates(&now, &prev, 100);
    CHECK(b[2].delivered_per_s < 0 && b[1].delivered_per_s == 10, "cut sample: %g", b[2].delivered_per_s);
    prev.have_summary = false;
    ringctl_top_rates(&now, &prev, 100);
    CHECK(now.delivered_per_s < 0, "no summary before: no totals rate");
    now.t_s = prev.t_s;
    ringctl_top_rates(&now, &prev, 100);
    CHECK(now.roles[0].cpu_pct < 0, "no time between samples: no rate");
}

struct lines {
    int n, widest, more, warn;
    char all[8192];
};

static void collect(void *ctx, enum ringctl_top_line kind, const char *text)
{
    struct lines *l = ctx;
    l->n++;
    if ((int)strlen(text) > l->widest)
        l->widest = (int)strlen(text);
    l->more += strncmp(text, "... ", 4) == 0;
    l->warn += kind == RINGCTL_TOP_LINE_WARN;
    size_t k = strlen(l->all);
    snprintf(l->all + k, sizeof(l->all) - k, "%s\n", text);
}

static void test_carry(void)
{
    struct ringctl_top_frame prev = {.reachable = true, .have_summary = true, .delivered = 9, .expired = 2,
                                     .n_rows = 1, .rows_total = 1, .have_tsa = true, .tsa_active = 1, .n_events = 1};
    prev.rows = calloc(1, sizeof(*prev.rows));
    prev.rows[0] = mkrow("alphaprov", 9, 0, 0, 0);
    prev.rows[0].delivered_per_s = 3;
    snprintf(prev.events[0].text, sizeof(prev.events[0].text), "Suspend x");
    struct ringctl_top_frame now = {.reachable = true};
    snprintf(now.error, sizeof(now.error), "/api/v1/queue-summary: HTTP 503: the scheduler is not running");
    ringctl_top_carry(&now, &prev);
    CHECK(now.have_summary && now.summary_stale && now.n_rows == 1 && prev.rows == NULL && prev.n_rows == 0,
          "the rows moved");
    CHECK(now.delivered == 9 && now.expired == 2 && now.rows[0].delivered_per_s < 0 && now.delivered_per_s < 0,
          "totals kept, rates unknown");
    CHECK(now.have_tsa && now.tsa_active == 1 && now.n_events == 1 && strcmp(now.events[0].text, "Suspend x") == 0,
          "TSA kept");
    struct lines l = {0};
    struct ringctl_top_view v = {.by = "provider", .interval_s = 1};
    ringctl_top_render(&now, &v, 120, 0, collect, &l);
    CHECK(strstr(l.all, "queue summary: /api/v1/queue-summary: HTTP 503: the scheduler is not running; the last one "
                        "shown") && strstr(l.all, "alphaprov"), "stale summary said:\n%s", l.all);
    struct ringctl_top_frame fresh = {.reachable = true, .have_summary = true};
    ringctl_top_carry(&fresh, &now);
    CHECK(!fresh.summary_stale && fresh.n_rows == 0 && now.n_rows == 1, "a frame with its own summary keeps it");
    ringctl_top_frame_fini(&now);
    ringctl_top_frame_fini(&prev);
}

static void test_order_and_keys(void)
{
    struct ringctl_top_row rows[] = {mkrow("Gmail", 5, 0, 3, 7), mkrow("yahoo", 5, 9, 1, 2), mkrow("outlook", 1, 2, 8, 0),
                                     mkrow("zoho", 9, 1, 0, 1)};
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        rows[i].delivered_per_s = (double)rows[i].delivered;
        rows[i].transient_per_s = (double)rows[i].transient;
    }
    struct ringctl_top_frame f = {.rows = rows, .n_rows = 4, .rows_total = 4};
    struct ringctl_top_view v = {.by = "provider", .interval_s = 1};
    static const char *const want[RINGCTL_TOP_SORT__MAX] = {"zoho Gmail yahoo outlook", "yahoo outlook zoho Gmail",
                                                            "Gmail yahoo zoho outlook", "outlook Gmail yahoo zoho",
                                                            "Gmail outlook yahoo zoho"};
    for (int s = 0; s < RINGCTL_TOP_SORT__MAX; s++) {
        size_t idx[4];
        char got[64] = "";
        size_t n = ringctl_top_order(&f, &v, idx);
        for (size_t i = 0; i < n; i++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "", rows[idx[i]].name);
        CHECK(strcmp(got, want[s]) == 0, "sort %s: %s", ringctl_top_sort_name(v.sort), got);
        CHECK(ringctl_top_key(&v, 's') == RINGCTL_TOP_REDRAW, "s");
    }
    CHECK(v.sort == RINGCTL_TOP_SORT_DELIVERED, "s cycles back to delivered/s");

    CHECK(ringctl_top_match("Gmail", "MAI") && ringctl_top_match("x", "") && !ringctl_top_match("gm", "gma"), "match");
    /* / o u q BACKSPACE t Enter: the filter "out"; q while typing is text, not quit */
    static const int typed[] = {'/', 'o', 'u', 'q', RINGCTL_TOP_KEY_BACKSPACE, 't', '\n'};
    for (size_t i = 0; i < ARRAY_SIZE(typed); i++)
        CHECK(ringctl_top_key(&v, typed[i]) == RINGCTL_TOP_REDRAW, "key %zu", i);
    CHECK(strcmp(v.filter, "out") == 0 && !v.editing, "filter %s", v.filter);
    size_t idx[4];
    CHECK(ringctl_top_order(&f, &v, idx) == 1 && idx[0] == 2, "only outlook matches");
    CHECK(ringctl_top_key(&v, RINGCTL_TOP_KEY_ESC) == RINGCTL_TOP_REDRAW && v.filter[0] == '\0', "Esc clears");
    ringctl_top_key(&v, '/');
    ringctl_top_key(&v, 'y');
    CHECK(ringctl_top_key(&v, RINGCTL_TOP_KEY_ESC) == RINGCTL_TOP_REDRAW && !v.editing && v.filter[0] == '\0',
          "Esc in the prompt clears");
    ringctl_top_key(&v, '/');
    for (int i = 0; i < 200; i++)
        ringctl_top_key(&v, 'a');
    ringctl_top_key(&v, '\r');
    CHECK(strlen(v.filter) == RINGCTL_TOP_FILTER - 1, "a long filter is cut: %zu", strlen(v.filter));
    CHECK(ringctl_top_key(&v, 'p') == RINGCTL_TOP_REDRAW && v.paused, "p pauses");
    CHECK(ringctl_top_key(&v, 'p') == RINGCTL_TOP_REDRAW && !v.paused, "p resumes");
    CHECK(ringctl_top_key(&v, '?') == RINGCTL_TOP_REDRAW && v.help, "? help");
    CHECK(ringctl_top_key(&v, 'x') == RINGCTL_TOP_NONE, "x does nothing");
    CHECK(ringctl_top_key(&v, 'q') == RINGCTL_TOP_QUIT, "q quits");
}

static void test_render(void)
{
    struct ringctl_top_row rows[30];
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        char name[32];
        snprintf(name, sizeof(name), "provider-with-a-long-name-%02zu", i);
        rows[i] = mkrow(name, i, 0, 0, 0);
    }
    rows[3].suspended_ms = 120000;
    struct ringctl_top_frame f = {.reachable = true, .have_summary = true, .rows = rows, .n_rows = 30,
                                  .rows_total = 30, .n_roles = 4, .have_tsa = true, .n_events = 1};
    snprintf(f.node_id, sizeof(f.node_id), "n1");
    for (size_t i = 0; i < 4; i++)
        snprintf(f.roles[i].name, sizeof(f.roles[i].name), "egress[%zu]", i);
    f.events[0].start_ms = 5000;
    snprintf(f.events[0].text, sizeof(f.events[0].text), "Suspend src->mx.test for 2h: 421 slow");
    struct ringctl_top_view v = {.by = "provider", .interval_s = 1, .started_ms = 1000};

    struct lines l = {0};
    ringctl_top_render(&f, &v, 160, 0, collect, &l);
    CHECK(l.more == 0 && strstr(l.all, "provider-with-a-long-name-29 "), "--once shows every row:\n%s", l.all);
    CHECK(l.widest <= 160 && l.warn == 1 && strstr(l.all, "SUSPENDED 2m"), "one suspended row");
    CHECK(strstr(l.all, "* 00:00:05Z Suspend src->mx.test") != NULL, "a new event is marked:\n%s", l.all);
    CHECK(strstr(l.all, "n/a") != NULL, "a role without /proc says n/a");

    for (int h = 8; h <= 60; h += 4) {
        memset(&l, 0, sizeof(l));
        ringctl_top_render(&f, &v, 80, h, collect, &l);
        CHECK(l.n <= h || h < 12, "height %d: %d lines", h, l.n);
        CHECK(l.widest <= 80 && (h < 12 || strstr(l.all, "provider-with-a-long-na~")), "width 80: %d, names cut", l.widest);
        CHECK(l.more == (h < 45), "height %d: more line %d\n%s", h, l.more, l.all);
    }
    f.reachable = false;
    snprintf(f.error, sizeof(f.error), "cannot reach 127.0.0.1:1: Connection refused");
    memset(&l, 0, sizeof(l));
    v.filter[0] = 'z';
    ringctl_top_render(&f, &v, 10, 50, collect, &l);
    CHECK(strstr(l.all, "node unreachable, retrying every 1.0s") && strstr(l.all, "(no row matches the filter \"z\")"),
          "unreachable, filtered out:\n%s", l.all);
    CHECK(l.widest <= 40, "a width below 40 is taken as 40: %d", l.widest);
    v.help = true;
    memset(&l, 0, sizeof(l));
    ringctl_top_render(&f, &v, 100, 50, collect, &l);
    CHECK(strstr(l.all, "Enter applies, Esc clears") && !strstr(l.all, "TSA EVENTS"), "help replaces the tables");
}

int main(void)
{
    test_formats();
    test_proc();
    test_summary();
    test_rates();
    test_carry();
    test_order_and_keys();
    test_render();
    CHECK_EXIT();
}
