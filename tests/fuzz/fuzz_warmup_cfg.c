/*
 * fuzz_warmup_cfg - [warmup."SOURCE"] tables of ringmail.toml (cfg/cfg_warmup.c) on any bytes, and the
 * value parsers they use (cfg_warmup_parse_time, cfg_value_parse_rate)
 *
 * The bytes are the body of a [warmup."ip-1"] table in a file that defines the sources ip-1 and ip-2
 * (so a body may open further tables). A file either loads, and then every warm-up holds the contract
 * (a known source, 1..CFG_WARMUP_STEPS_MAX steps of positive rates, a step of 1 s to 365 d, a threshold
 * in 0..1), or is refused with a message and nothing kept. The same bytes as one NUL-terminated value
 * are given to the time and rate parsers: a time is a unix ms time, a rate has a positive limit and a
 * known period, a refusal says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/cfg.h"
#include "cfg/cfg_value.h"
#include "tests/fuzz/fuzz.h"

static const char head[] =
    "[[egress_source]]\nname = \"ip-1\"\n[[egress_source]]\nname = \"ip-2\"\n[warmup.\"ip-1\"]\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(sizeof(head) + size);
    memcpy(text, head, sizeof(head) - 1);
    memcpy(text + sizeof(head) - 1, data, size);
    text[sizeof(head) - 1 + size] = '\0';

    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc = cfg_load_text(&c, text, sizeof(head) - 1 + size, "f.toml", &err);
    if (rc == 0) {
        CHECK(err == NULL);
        for (size_t i = 0; i < c.n_warmups; i++) {
            const struct cfg_warmup *w = &c.warmups[i];
            CHECK(w->source && (strcmp(w->source, "ip-1") == 0 || strcmp(w->source, "ip-2") == 0));
            CHECK(cfg_warmup_find(&c, w->source) == w);
            CHECK(w->n_steps >= 1 && w->n_steps <= CFG_WARMUP_STEPS_MAX && w->steps);
            CHECK(w->step_ms >= 1000 && w->step_ms <= UINT64_C(365) * 86400000);
            CHECK(w->max_deferral_rate >= 0.0 && w->max_deferral_rate <= 1.0);
            for (uint32_t j = 0; j < w->n_steps; j++)
                CHECK(w->steps[j].limit > 0 && w->steps[j].period_ms >= 1000);
        }
    } else {
        CHECK(err && err[0] && c.n_warmups == 0);
    }
    free(err);
    cfg_fini(&c);

    /* one value: the bytes up to the first NUL */
    const char *v = text + sizeof(head) - 1;
    uint64_t ms = 0, limit = 0, period = 0, burst = 0;
    const char *why = NULL;
    if (cfg_warmup_parse_time(v, &ms))
        CHECK(ms % 1000 == 0 && strlen(v) >= 10);
    if (cfg_value_parse_rate(v, &limit, &period, &burst, &why))
        CHECK(limit > 0 && period >= 1000 && period <= 86400000);
    else
        CHECK(why && why[0]);
    free(text);
    return 0;
}
