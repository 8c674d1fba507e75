/*
 * cfg_fbl_test - [feedback] and the VERP keys of [dsn] (cfg/cfg_fbl.c), and the listener's feedback flag:
 * a good file read back (lists lower-cased, the key file's secret without its newline), cfg_feedback_on,
 * each bad case with exactly its FILE:LINE message, a failed load leaving the struct as it was
 *
 * Exit 0 pass, 1 fail.
 */
#include "cfg/cfg.h"
#include "tests/lib/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(struct cfg *c, const char *text, char **err)
{
    return cfg_load_text(c, text, strlen(text), "t.toml", err);
}

static void test_good(void)
{
    char key_path[] = "/tmp/cfg_fbl_test.XXXXXX";
    int fd = mkstemp(key_path);
    CHECK(fd >= 0 && write(fd, "a-secret-from-a-file-0123\n", 26) == 26, "key file written");
    if (fd >= 0)
        close(fd);
    char *text = NULL;
    if (asprintf(&text,
                 "[[listener]]\naddress = \"127.0.0.1:2525\"\n[[listener]]\naddress = \"127.0.0.1:2526\"\n"
                 "feedback = true\n[feedback]\ndomains = [\"FBL.Example.net\", \"fbl2.example.net\"]\n"
                 "addresses = [\"Abuse@Example.com\"]\n[dsn]\nverp = true\nverp_domain = \"Bounces.Example.net\"\n"
                 "verp_key_file = \"%s\"\n",
                 key_path) < 0)
        text = NULL;
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(!cfg_feedback_on(&c) && !c.dsn_verp && c.n_feedback_domains == 0, "off by default");
    CHECK(text && load(&c, text, &err) == 0, "loaded: %s", err ? err : "");
    CHECK(c.n_feedback_domains == 2 && strcmp(c.feedback_domains[0], "fbl.example.net") == 0, "domains, lower case");
    CHECK(c.n_feedback_addresses == 1 && strcmp(c.feedback_addresses[0], "abuse@example.com") == 0, "addresses");
    CHECK(c.dsn_verp && strcmp(c.dsn_verp_domain, "bounces.example.net") == 0, "verp domain");
    CHECK(strcmp(c.dsn_verp_secret, "a-secret-from-a-file-0123") == 0, "secret without its newline");
    CHECK(!c.listeners[0].feedback && c.listeners[1].feedback, "listener flag");
    CHECK(cfg_feedback_on(&c), "on");
    /* a reload onto it replaces the lists (and the copy made for it leaks nothing: ASan) */
    CHECK(load(&c, "[feedback]\ndomains = []\n[dsn]\nverp = false\n", &err) == 0, "reloaded");
    CHECK(c.n_feedback_domains == 0 && c.n_feedback_addresses == 1 && !c.dsn_verp, "replaced");
    cfg_fini(&c);
    cfg_default(&c);
    CHECK(load(&c, "[[listener]]\naddress = \"127.0.0.1:2525\"\nfeedback = true\n", &err) == 0 && cfg_feedback_on(&c),
          "a feedback listener alone");
    cfg_fini(&c);
    free(text);
    unlink(key_path);
}

static void test_bad(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[feedback]\ndomains = [\"not a domain\"]\n", "t.toml:2: feedback.domains: \"not a domain\" is not a domain name\n"},
        {"[feedback]\naddresses = [\"nobody\"]\n",
         "t.toml:2: feedback.addresses: \"nobody\" is not an address local@domain\n"},
        {"[feedback]\ndomains = \"fbl.example.net\"\n",
         "t.toml:2: feedback.domains: expected an array of strings, got string\n"},
        {"[feedback]\nverp = true\n", "t.toml:2: unknown key \"feedback.verp\"\n"},
        {"[dsn]\nverp = true\n", "t.toml:2: dsn.verp: needs dsn.verp_domain\n"
                                 "t.toml:2: dsn.verp: needs dsn.verp_secret or dsn.verp_key_file\n"},
        {"[dsn]\nverp = true\nverp_domain = \"b.example.net\"\nverp_secret = \"short\"\n",
         "t.toml:4: dsn.verp_secret: must be at least 16 printable characters\n"
         "t.toml:2: dsn.verp: needs dsn.verp_secret or dsn.verp_key_file\n"},
        {"[dsn]\nverp_domain = \"-bad-\"\n", "t.toml:2: dsn.verp_domain: \"-bad-\" is not a domain name\n"},
        {"[dsn]\nverp_key_file = \"/nonexistent/verp.key\"\n",
         "t.toml:2: dsn.verp_key_file: \"/nonexistent/verp.key\" cannot be read: No such file or directory\n"},
        {"[[listener]]\naddress = \"127.0.0.1:2525\"\nfeedback = \"yes\"\n",
         "t.toml:3: listener[0].feedback: expected a boolean, got string\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = load(&c, cases[i].text, &err);
        CHECK(rc != 0 && err && strcmp(err, cases[i].want) == 0, "case %zu:\n want %s got  %s", i, cases[i].want,
              err ? err : "(no error)\n");
        CHECK(c.n_feedback_domains == 0 && !c.dsn_verp && c.dsn_verp_secret[0] == '\0', "case %zu: unchanged", i);
        free(err);
        cfg_fini(&c);
    }
}

int main(void)
{
    test_good();
    test_bad();
    CHECK_EXIT();
}
