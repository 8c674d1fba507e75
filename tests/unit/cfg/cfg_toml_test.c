/*
 * cfg_toml_test - the toml++ bridge (cfg/cfg_toml.cc) and the files it reads
 *
 * The bridge's tree (order, positions, types, hostile input) and its errors, KumoMTA's shaping files
 * and docs/ringmail.example.toml (which must spell out the defaults). Environment: RINGMAIL_TEST_DATA,
 * RINGMAIL_SHARED_DATA (default <source root>/../shared/data), RINGMAIL_EXAMPLE_CONFIG.
 * Exit 0 pass, 1 fail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"
#include "base/mem.h"
#include "tests/lib/check.h"
#include "tests/unit/cfg/cfg_test.h"

/* ---- the bridge ---- */

static void test_bridge_tree(void)
{
    static const char doc[] = "zeta = 1\n"
                              "alpha = \"two\"\n"
                              "[tbl]\n"
                              "b = 2.5\n"
                              "a = true\n"
                              "when = 1979-05-27T07:32:00Z\n"
                              "day = 1979-05-27\n"
                              "at = 07:32:00\n"
                              "arr = [\n"
                              "  3,\n"
                              "  \"x\",\n"
                              "]\n"
                              "inl = { q = 1, p = { r = -7 } }\n"
                              "[[aot]]\n"
                              "k = 1\n"
                              "[[aot]]\n"
                              "k = 2\n";
    char *err = (char *)"untouched";
    struct cfg_toml_node *root = cfg_toml_parse(doc, sizeof(doc) - 1, "tree", &err);
    const struct cfg_toml_node *n, *t;

    CHECK(root && err == NULL, "parse: %s", nz(err));
    if (!root)
        return;
    CHECK(root->type == CFG_TOML_TABLE && root->n_children == 4, "root: type %d, %zu children", root->type,
          root->n_children);
    static const char *const order[] = {"zeta", "alpha", "tbl", "aot"};
    for (size_t i = 0; i < 4 && i < root->n_children; i++)
        CHECK(strcmp(nz(root->children[i]->key), order[i]) == 0, "root child %zu is %s, want %s", i,
              nz(root->children[i]->key), order[i]);
    n = cfg_toml_find(root, "zeta");
    CHECK(n && n->type == CFG_TOML_INT && n->i == 1 && n->line == 1 && n->column == 1, "zeta");
    n = cfg_toml_find(root, "alpha");
    CHECK(n && n->type == CFG_TOML_STRING && strcmp(nz(n->str), "two") == 0 && n->line == 2, "alpha");
    t = cfg_toml_find(root, "tbl");
    CHECK(t && t->type == CFG_TOML_TABLE && t->line == 3 && t->column == 2, "tbl at %u:%u", t ? t->line : 0,
          t ? t->column : 0);
    static const char *const torder[] = {"b", "a", "when", "day", "at", "arr", "inl"};
    for (size_t i = 0; t && i < ARRAY_SIZE(torder); i++)
        CHECK(i < t->n_children && strcmp(nz(t->children[i]->key), torder[i]) == 0, "tbl child %zu", i);
    n = cfg_toml_find(t, "b");
    CHECK(n && n->type == CFG_TOML_FLOAT && n->f == 2.5 && n->line == 4, "b");
    n = cfg_toml_find(t, "a");
    CHECK(n && n->type == CFG_TOML_BOOL && n->b, "a");
    n = cfg_toml_find(t, "when");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "1979-05-27T07:32:00Z") == 0, "when: %s",
          n ? nz(n->str) : "-");
    n = cfg_toml_find(t, "day");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "1979-05-27") == 0, "day");
    n = cfg_toml_find(t, "at");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "07:32:00") == 0, "at: %s", n ? nz(n->str) : "-");
    n = cfg_toml_find(t, "arr");
    CHECK(n && n->type == CFG_TOML_ARRAY && n->n_children == 2 && n->line == 9, "arr");
    if (n && n->n_children == 2) {
        CHECK(n->children[0]->type == CFG_TOML_INT && n->children[0]->i == 3 && n->children[0]->line == 10 &&
                  n->children[0]->column == 3 && n->children[0]->key == NULL,
              "arr[0]");
        CHECK(n->children[1]->type == CFG_TOML_STRING && n->children[1]->line == 11, "arr[1]");
    }
    n = cfg_toml_find(t, "inl");
    CHECK(n && n->type == CFG_TOML_TABLE && n->n_children == 2 && strcmp(nz(n->children[0]->key), "q") == 0, "inl");
    n = cfg_toml_find(cfg_toml_find(n, "p"), "r");
    CHECK(n && n->type == CFG_TOML_INT && n->i == -7 && n->line == 13, "inl.p.r");
    n = cfg_toml_find(root, "aot");
    CHECK(n && n->type == CFG_TOML_ARRAY && n->n_children == 2, "aot");
    if (n && n->n_children == 2) {
        CHECK(n->children[0]->line == 14 && n->children[1]->line == 16, "aot lines %u %u", n->children[0]->line,
              n->children[1]->line);
        const struct cfg_toml_node *k = cfg_toml_find(n->children[1], "k");
        CHECK(k && k->i == 2 && k->line == 17, "aot[1].k");
    }
    CHECK(cfg_toml_find(root, "nope") == NULL, "find of a missing key");
    CHECK(cfg_toml_find(cfg_toml_find(root, "zeta"), "x") == NULL, "find in a non-table");
    CHECK(cfg_toml_find(NULL, "x") == NULL, "find in NULL");
    cfg_toml_free(root);
    cfg_toml_free(NULL);

    static const struct {
        enum cfg_toml_type t;
        const char *name;
    } names[] = {
        {CFG_TOML_TABLE, "table"}, {CFG_TOML_ARRAY, "array"}, {CFG_TOML_STRING, "string"},
        {CFG_TOML_INT, "integer"}, {CFG_TOML_FLOAT, "float"}, {CFG_TOML_BOOL, "boolean"},
        {CFG_TOML_DATETIME, "date-time"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        CHECK(strcmp(cfg_toml_type_name(names[i].t), names[i].name) == 0, "type name %d", (int)names[i].t);
}

struct bridge_err_case {
    const char *text;
    size_t len; /* 0: strlen */
    const char *prefix;
};

static void test_bridge_errors(void)
{
    static const struct bridge_err_case cases[] = {
        {"a = 1\nb = [1,\n  2,,]\n", 0, "e:3:5: "},
        {"a = \"x\\u0000y\"\n", 0, "e:1:5: string contains a NUL character"},
        {"\"k\\u0000\" = 1\n", 0, "e:1:1: key contains a NUL character"},
        {"a = 1\na = 2\n", 0, "e:2:"},
        {"a = \"\xff\xfe\"\n", 0, "e:1:"},
        {"a = 1\0b = 2\n", 12, "e:1:"},
        {"[a]\n[a]\n", 0, "e:2:"},
        {"a = 99999999999999999999\n", 0, "e:1:"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *err = NULL;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        struct cfg_toml_node *root = cfg_toml_parse(cases[i].text, len, "e", &err);
        CHECK(root == NULL && err && strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) == 0,
              "bridge case %zu: got %s, want prefix %s", i, nz(err), cases[i].prefix);
        cfg_toml_free(root);
        free(err);
    }

    /* nesting deep enough to exhaust a naive recursive parser */
    size_t depth = 100000;
    char *deep = xmalloc(depth + 8);
    memcpy(deep, "a = ", 4);
    memset(deep + 4, '[', depth);
    char *err = NULL;
    struct cfg_toml_node *root = cfg_toml_parse(deep, depth + 4, "deep", &err);
    CHECK(root == NULL && err && strncmp(err, "deep:1:", 7) == 0, "deep nesting: %s", nz(err));
    cfg_toml_free(root);
    free(err);
    free(deep);

    /* NULL text is an empty document */
    err = NULL;
    root = cfg_toml_parse(NULL, 0, NULL, &err);
    CHECK(root && root->type == CFG_TOML_TABLE && root->n_children == 0 && err == NULL, "NULL text");
    cfg_toml_free(root);
}

/* every table's members are in document order, recursively; returns the number of nodes */
static size_t check_order(const struct cfg_toml_node *n, const char *file)
{
    size_t count = 1;
    for (size_t i = 0; i < n->n_children; i++) {
        const struct cfg_toml_node *a = n->children[i];
        CHECK(a->line > 0 && a->column > 0, "%s: node without a position", file);
        CHECK((n->type == CFG_TOML_TABLE) == (a->key != NULL), "%s: key presence at line %u", file, a->line);
        if (i > 0 && n->type == CFG_TOML_TABLE) {
            const struct cfg_toml_node *b = n->children[i - 1];
            CHECK(b->line < a->line || (b->line == a->line && b->column < a->column),
                  "%s: %s (line %u) before %s (line %u)", file, nz(b->key), b->line, nz(a->key), a->line);
        }
        count += check_order(a, file);
    }
    return count;
}

static void test_shaping_files(void)
{
    static const char *const files[] = {"kumomta-default-shaping.toml", "kumomta-community-shaping.toml"};
    const char *dir = env_or("RINGMAIL_SHARED_DATA", RINGMAIL_SOURCE_ROOT "/../shared/data");

    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char *path = xasprintf("%s/%s", dir, files[i]);
        size_t len = 0;
        char *text = read_file(path, &len);
        if (!text) {
            printf("skip: %s not found (set RINGMAIL_SHARED_DATA)\n", path);
            free(path);
            continue;
        }
        char *err = NULL;
        struct cfg_toml_node *root = cfg_toml_parse(text, len, path, &err);
        CHECK(root != NULL, "%s does not parse: %s", path, nz(err));
        if (root) {
            size_t nodes = check_order(root, files[i]);
            CHECK(root->n_children > 0 && nodes > 50, "%s: only %zu nodes", files[i], nodes);
            /* every section of a shaping file is a table: a domain, "default" or provider */
            for (size_t j = 0; j < root->n_children; j++)
                CHECK(root->children[j]->type == CFG_TOML_TABLE, "%s: top-level %s is %s", files[i],
                      nz(root->children[j]->key), cfg_toml_type_name(root->children[j]->type));
            const struct cfg_toml_node *prov = cfg_toml_find(root, "provider");
            CHECK(prov && prov->type == CFG_TOML_TABLE && prov->n_children > 0, "%s: no [provider.*]", files[i]);
            if (i == 0) {
                const struct cfg_toml_node *def = cfg_toml_find(root, "default");
                const struct cfg_toml_node *limit = cfg_toml_find(def, "connection_limit");
                const struct cfg_toml_node *autom = cfg_toml_find(def, "automation");
                CHECK(def && root->children[0] == def, "default shaping: [\"default\"] is not first");
                CHECK(limit && limit->type == CFG_TOML_INT, "default shaping: default.connection_limit");
                CHECK(autom && autom->type == CFG_TOML_ARRAY && autom->n_children > 0 &&
                          autom->children[0]->type == CFG_TOML_TABLE,
                      "default shaping: [[\"default\".automation]]");
            }
        }
        cfg_toml_free(root);
        free(err);
        free(text);
        free(path);
    }
}

static void test_example_config(void)
{
    const char *path = env_or("RINGMAIL_EXAMPLE_CONFIG", RINGMAIL_SOURCE_ROOT "/docs/ringmail.example.toml");
    char *err = NULL;
    struct cfg c;
    struct stat st;

    CHECK(stat(path, &st) == 0, "example config %s: %s", path, strerror(errno));
    cfg_default(&c);
    int rc = cfg_load_file(&c, path, &err);
    CHECK(rc == 0 && err == NULL, "example config %s does not load (rc %d):\n%s", path, rc, nz(err));
    /* the example writes the defaults out; a drift between file and code shows here */
    struct cfg d;
    cfg_default(&d);
    CHECK(c.ingress_max_message_size == d.ingress_max_message_size &&
              c.ingress_max_recipients == d.ingress_max_recipients &&
              c.ingress_max_connections == d.ingress_max_connections &&
              c.ingress_max_conn_per_ip == d.ingress_max_conn_per_ip &&
              c.ingress_idle_timeout_ms == d.ingress_idle_timeout_ms &&
              c.ingress_data_timeout_ms == d.ingress_data_timeout_ms &&
              c.ingress_min_data_rate == d.ingress_min_data_rate && c.ingress_max_received == d.ingress_max_received &&
              c.ingress_spool_timeout_ms == d.ingress_spool_timeout_ms,
          "example config: [ingress] limits differ from the defaults");
    CHECK(c.ingress_workers == d.ingress_workers && c.ingress_workers_auto && d.ingress_workers_auto &&
              c.egress_workers == d.egress_workers && c.egress_workers_auto && d.egress_workers_auto,
          "example config: workers differ from the default \"auto\"");
    CHECK(c.n_relay_networks == d.n_relay_networks &&
              memcmp(c.relay_networks, d.relay_networks, d.n_relay_networks * sizeof(d.relay_networks[0])) == 0 &&
              c.n_relay_domains == 0,
          "example config: relay lists differ from the defaults");
    CHECK(c.tls_enabled == d.tls_enabled && strcmp(nz(c.tls_certificate), "") == 0 &&
              c.policy_instruction_budget == d.policy_instruction_budget &&
              c.policy_memory_limit == d.policy_memory_limit && c.spool_free_space_min == d.spool_free_space_min &&
              strcmp(nz(c.spool_dir), "") == 0 && strcmp(nz(c.log_dir), "") == 0 &&
              c.log_segment_size == d.log_segment_size && c.log_segment_age_ms == d.log_segment_age_ms &&
              c.log_flush_interval_ms == d.log_flush_interval_ms && c.spool_body_log == d.spool_body_log &&
              c.spool_body_log_min_size == d.spool_body_log_min_size &&
              c.spool_body_log_segment_size == d.spool_body_log_segment_size,
          "example config: [tls], [policy], [spool] or [log] differ from the defaults");
    cfg_fini(&d);
    cfg_fini(&c);
    free(err);
}

int main(void)
{
    test_bridge_tree();
    test_bridge_errors();
    test_shaping_files();
    test_example_config();
    CHECK_EXIT();
}
