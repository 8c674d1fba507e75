/*
 * fuzz_relay_rcpts - the [ingress] relay_recipients parser (ingress/ingress_rcpts.c) on any file
 *
 * Checks: a file is either refused with an error text of "line N: ..." lines ending in a newline and
 * nothing kept, or accepted with sorted, unique, NUL-free entries that each contain one '@' and that
 * ingress_rcpts_has() finds again (every accepted entry is looked up as written).
 */
#include "ingress/ingress_rcpts.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    struct ingress_rcpts r;
    char *err = NULL;
    int rc = ingress_rcpts_parse(text, size, &r, &err);
    if (rc < 0) {
        CHECK(err && strncmp(err, "line ", 5) == 0 && err[strlen(err) - 1] == '\n');
        CHECK(r.n == 0 && r.entries == NULL);
        free(err);
    } else {
        CHECK(err == NULL);
        for (size_t i = 0; i < r.n; i++) {
            const char *e = r.entries[i];
            CHECK(strchr(e, '@') && strchr(e, '@') == strrchr(e, '@'));
            CHECK(i == 0 || strcmp(r.entries[i - 1], e) < 0);
            if (e[0] != '@')
                CHECK(ingress_rcpts_has(&r, e));
        }
        ingress_rcpts_free(&r);
    }
    free(text);
    return 0;
}
