/*
 * fuzz_shaping - shaping files (policy/shaping.h) on any bytes
 *
 * Input: 1 flag octet (bit 0: JSON, else TOML), then the file. A load either fails with at least one
 * error diagnostic or succeeds with none; a loaded set resolves a few paths into objects whose every
 * option converts to the typed configuration, its rules match a response without trouble, and the
 * explain document is well formed. The file's text is also fed to the rate and duration parsers.
 */
#include <stdlib.h>
#include <string.h>

#include "policy/shaping.h"
#include "tests/fuzz/fuzz.h"

static const char *const sites[] = {"", "mx1.big.test,mx2.big.test", "route:relay.test:2525", "mx.example.com"};
static const char *const domains[] = {"example.com", "default", "x.test", "big.test"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *name = (data[0] & 1) ? "fuzz.json" : "fuzz.toml";
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    struct shaping_rate r;
    uint64_t ms;
    if (shaping_rate_parse(text, &r, NULL))
        CHECK(r.limit > 0 && r.period_ms > 0);
    (void)shaping_duration_parse(text, &ms);

    struct shaping_diags d = {0};
    struct shaping *sh = shaping_load_text(text, size - 1, name, &d);
    size_t errors = 0;
    for (size_t i = 0; i < d.n; i++) {
        CHECK(d.v[i].file && d.v[i].msg);
        errors += d.v[i].error;
    }
    CHECK(sh ? errors == 0 : errors > 0);
    char *t = shaping_diags_text(&d);
    free(t);
    shaping_diags_fini(&d);
    if (sh) {
        const char **rolled;
        size_t n = shaping_rollup_domains(sh, &rolled);
        for (size_t i = 0; i < n; i++) {
            char *err = NULL;
            (void)shaping_site_set(sh, rolled[i], sites[1 + i % 3], &err);
            free(err);
        }
        for (size_t i = 0; i < 4; i++) {
            json_t *by = NULL;
            json_t *res = shaping_resolve(sh, domains[i], i & 1 ? "s1" : "", sites[i], &by);
            CHECK(json_is_object(res) && json_is_object(by) && json_object_size(res) == json_object_size(by));
            struct shaping_path_config c;
            char *err = NULL;
            CHECK(shaping_path_config_from(res, NULL, NULL, &c, &err) == 0);
            shaping_path_config_fini(&c);
            json_decref(res);
            json_decref(by);
            const struct shaping_rule **rules;
            size_t nr = shaping_rules(sh, domains[i], "", sites[i], &rules);
            for (size_t k = 0; k < nr; k++) {
                CHECK(rules[k]->n_regex > 0 && rules[k]->n_actions > 0);
                int m = shaping_rule_match(rules[k], text, size - 1);
                CHECK(m >= -1 && m < (int)rules[k]->n_regex);
            }
            json_t *doc = shaping_explain(sh, domains[i], "", sites[i]);
            CHECK(json_is_array(json_object_get(doc, "rules")) &&
                  json_array_size(json_object_get(doc, "rules")) == nr);
            json_decref(doc);
        }
        shaping_free(sh);
    }
    free(text);
    return 0;
}
