/*
 * supervisor_metrics_test - /metrics rendering: label escaping (exposition format 0.0.4), the bounded
 * labels (the largest keep their own, the rest are "other"), the text of a histogram family, the
 * TYPE word of KumoMTA's names, and that /metrics.json carries the same values as the text.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_node.h"
#include "supervisor/supervisor_metrics.h"
#include "tests/lib/check.h"

static void test_escape(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"mx.example.com", "mx.example.com"},
        {"a\"b", "a\\\"b"},
        {"a\\b", "a\\\\b"},
        {"line\nbreak", "line\\nbreak"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"tab\tstays", "tab\tstays"},
        {"caf\xc3\xa9", "caf\xc3\xa9"}, /* UTF-8 as it is */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = {0};
        supervisor_metrics_escape(&b, cases[i].in);
        const char *got = buf_cstr(&b);
        CHECK(strcmp(got, cases[i].want) == 0, "case %zu: got [%s] want [%s]", i, got, cases[i].want);
        buf_fini(&b);
    }
}

static void test_top(void)
{
    struct sup_metrics_rank v[] = {{"c.test", 5}, {"a.test", 9}, {"b.test", 9}, {"d.test", 0}};
    size_t n = sizeof(v) / sizeof(v[0]);
    supervisor_metrics_rank_sort(v, n);
    CHECK(strcmp(v[0].name, "a.test") == 0 && strcmp(v[1].name, "b.test") == 0 && strcmp(v[2].name, "c.test") == 0,
          "largest first, ties by name");
    CHECK(strcmp(supervisor_metrics_label(v, n, 2, "a.test"), "a.test") == 0, "a keeps its label");
    CHECK(strcmp(supervisor_metrics_label(v, n, 2, "b.test"), "b.test") == 0, "b keeps its label");
    CHECK(strcmp(supervisor_metrics_label(v, n, 2, "c.test"), "other") == 0, "c is other");
    CHECK(strcmp(supervisor_metrics_label(v, n, 2, "unknown"), "other") == 0, "an unranked name is other");
    CHECK(strcmp(supervisor_metrics_label(v, n, 1, "b.test"), "other") == 0, "max 1");
    CHECK(strcmp(supervisor_metrics_label(v, n, 50, "d.test"), "d.test") == 0, "max above n");
}

static void test_render(void)
{
    struct sup_metrics m = {0};
    const char *ln[] = {"site"};
    const char *lv[] = {"we\"ird\\site\n"};
    struct sup_metric_family *f = supervisor_metrics_family(&m, "total_messages_delivered", SUP_METRIC_COUNTER, "D.");
    supervisor_metrics_sample(f, 1, ln, lv)->value = 42;
    f = supervisor_metrics_family(&m, "connection_count", SUP_METRIC_GAUGE, "C.");
    supervisor_metrics_sample(f, 0, NULL, NULL)->value = 3;
    f = supervisor_metrics_family(&m, "ringmail_x_total", SUP_METRIC_COUNTER, "X.");
    supervisor_metrics_sample(f, 0, NULL, NULL)->value = 7;
    f = supervisor_metrics_family(&m, "ringmail_lat_seconds", SUP_METRIC_HISTOGRAM, "L.");
    f->scale = PROTO_HIST_FAST;
    uint64_t b[PROTO_HIST_BUCKETS] = {[0] = 1, [2] = 2, [PROTO_HIST_BOUNDS] = 1};
    proto_hist_accumulate(b, PROTO_HIST_BUCKETS, 1500001, &supervisor_metrics_sample(f, 1, ln, lv)->hist);

    char *text = supervisor_metrics_text(&m);
    static const char *const want[] = {
        "# HELP total_messages_delivered D.\n# TYPE total_messages_delivered untyped\n",
        "total_messages_delivered{site=\"we\\\"ird\\\\site\\n\"} 42\n",
        "# TYPE connection_count untyped\nconnection_count 3\n",
        "# TYPE ringmail_x_total counter\nringmail_x_total 7\n",
        "# TYPE ringmail_lat_seconds histogram\n",
        "ringmail_lat_seconds_bucket{site=\"we\\\"ird\\\\site\\n\",le=\"0.000500\"} 1\n",
        "ringmail_lat_seconds_bucket{site=\"we\\\"ird\\\\site\\n\",le=\"0.001000\"} 1\n",
        "ringmail_lat_seconds_bucket{site=\"we\\\"ird\\\\site\\n\",le=\"0.002500\"} 3\n",
        "ringmail_lat_seconds_bucket{site=\"we\\\"ird\\\\site\\n\",le=\"60.000000\"} 3\n",
        "ringmail_lat_seconds_bucket{site=\"we\\\"ird\\\\site\\n\",le=\"+Inf\"} 4\n",
        "ringmail_lat_seconds_sum{site=\"we\\\"ird\\\\site\\n\"} 1.500001\n",
        "ringmail_lat_seconds_count{site=\"we\\\"ird\\\\site\\n\"} 4\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(strstr(text, want[i]) != NULL, "text lacks [%s]:\n%s", want[i], text);

    char *js = supervisor_metrics_json(&m);
    json_error_t e;
    json_t *doc = json_loads(js, 0, &e);
    CHECK(doc != NULL, "json: %s", e.text);
    if (doc) {
        json_t *d = json_object_get(doc, "total_messages_delivered");
        CHECK(strcmp(json_string_value(json_object_get(d, "type")), "counter") == 0, "real type in json");
        json_t *s0 = json_array_get(json_object_get(d, "samples"), 0);
        CHECK(json_integer_value(json_object_get(s0, "value")) == 42, "value");
        CHECK(strcmp(json_string_value(json_object_get(json_object_get(s0, "labels"), "site")), lv[0]) == 0,
              "label value unescaped in json");
        json_t *h = json_array_get(json_object_get(json_object_get(doc, "ringmail_lat_seconds"), "samples"), 0);
        CHECK(json_integer_value(json_object_get(h, "count")) == 4, "histogram count");
        json_t *buckets = json_object_get(h, "buckets");
        CHECK(json_array_size(buckets) == PROTO_HIST_BUCKETS, "buckets");
        CHECK(json_integer_value(json_object_get(json_array_get(buckets, 2), "count")) == 3, "cumulative bucket");
        CHECK(strcmp(json_string_value(json_object_get(json_array_get(buckets, PROTO_HIST_BOUNDS), "le")), "+Inf") ==
                  0,
              "+Inf");
        json_decref(doc);
    }
    free(js);
    free(text);
    supervisor_metrics_fini(&m);
}

/* the reason label of a refusal: its reply code when listed, else its class */
static void test_reject_reasons(void)
{
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"550 5.1.1 no such user", "550"}, {"421 4.7.0 try later", "421"}, {"503 5.5.1 bad sequence", "503"},
        {"452 4.5.3 too many recipients", "452"}, {"554 5.7.1 relay denied", "554"}, {"555 5.5.4 bad param", "5xx"},
        {"471 4.7.1 x", "4xx"}, {"4", "4xx"}, {"5", "5xx"}, {"", "5xx"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = proto_node_reject_name(proto_node_reject_of(cases[i].line, strlen(cases[i].line)));
        CHECK(strcmp(got, cases[i].want) == 0, "[%s] -> %s, want %s", cases[i].line, got, cases[i].want);
    }
    CHECK(strcmp(proto_node_reject_name(PROTO_NODE_REJECT__MAX), "5xx") == 0, "out of range");
}

int main(void)
{
    test_reject_reasons();
    test_escape();
    test_top();
    test_render();
    CHECK_EXIT();
}
