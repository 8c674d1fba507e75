/*
 * ingress_rcpts_test - the relay_recipients file (ingress/ingress_rcpts.c): entries and catch-alls,
 * comments and blanks, case, duplicates, and the errors that refuse a file whole
 *
 * Exit 0 pass, 1 fail.
 */
#include "ingress/ingress_rcpts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

static void test_parse(void)
{
    static const char text[] = "# list\n\nalice@Example.com\n  bob@example.com \r\n@catchall.test\n"
                               "alice@example.com\nj\xc3\xa9r\xc3\xb4me@example.com"; /* no final newline */
    struct ingress_rcpts r;
    char *err = NULL;
    CHECK(ingress_rcpts_parse(text, sizeof(text) - 1, &r, &err) == 0, "%s", err ? err : "");
    CHECK(r.n == 4, "4 unique entries, got %zu", r.n);
    CHECK(ingress_rcpts_has(&r, "alice@example.com"), "alice");
    CHECK(ingress_rcpts_has(&r, "ALICE@EXAMPLE.COM"), "case");
    CHECK(ingress_rcpts_has(&r, "bob@example.com"), "trimmed");
    CHECK(!ingress_rcpts_has(&r, "carol@example.com"), "not listed");
    CHECK(ingress_rcpts_has(&r, "anyone@catchall.test"), "catch-all");
    CHECK(ingress_rcpts_has(&r, "j\xc3\xa9r\xc3\xb4me@example.com"), "UTF-8 local part");
    CHECK(!ingress_rcpts_has(&r, "alice@example.com.evil"), "another domain");
    CHECK(!ingress_rcpts_has(&r, "no-at-sign"), "no @");
    ingress_rcpts_free(&r);
}

static void test_errors(void)
{
    static const char *const bad[] = {
        "alice\n", "a@b@c.test\n", "a b@x.test\n", "<a>@x.test\n", "a@-bad-.test\n", "a@\n", "\xff@x.test\n",
        "a@x.test\nbroken\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ingress_rcpts r;
        char *err = NULL;
        CHECK(ingress_rcpts_parse(bad[i], strlen(bad[i]), &r, &err) == -EINVAL, "refused: %s", bad[i]);
        CHECK(err && strncmp(err, "line ", 5) == 0 && err[strlen(err) - 1] == '\n', "error names the line");
        CHECK(r.n == 0 && r.entries == NULL, "nothing kept");
        free(err);
    }
    struct ingress_rcpts r;
    char *err = NULL;
    static const char nul[] = "a@x.test\0b@x.test\n";
    CHECK(ingress_rcpts_parse(nul, sizeof(nul) - 1, &r, &err) == -EINVAL, "NUL refused");
    free(err);
    err = NULL;
    CHECK(ingress_rcpts_load("/nonexistent/relay-recipients", &r, &err) == -ENOENT && err, "missing file");
    free(err);
}

int main(void)
{
    test_parse();
    test_errors();
    CHECK_EXIT();
}
