/*
 * ingress_auth_test - SASL PLAIN/LOGIN decoding, strict base64, the passwords file and the AUTH failure
 * limiter (ingress/ingress_auth.c)
 *
 * Exit 0 pass, 1 fail.
 */
#include "ingress/ingress_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/lib/check.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NS 1000000000ull

/* the passwords of these hashes: alice-secret (yescrypt), bob-secret (SHA-512) */
#define ALICE_Y "$y$j9T$abcdefghijklmnop$F8WXHlT5vERIA3S7FPCmjOC3.dnQ6tNjrIkE/yu/cM6"
#define BOB_6 "$6$ringmailsalt$ZIdR/xZGAOr78.0qmOx/XnPSe5evh3IW.KA3pQIXTC1qTj30ucYY8YI4LGe4V1unYLksMFZz71S/7NY14zcgR/"

struct b64_case {
    const char *in;
    int rc; /* decoded length or -EINVAL */
    const char *out;
    size_t out_len;
};

static void test_b64(void)
{
    static const struct b64_case cases[] = {
        {"", 0, "", 0},
        {"=", 0, "", 0},
        {"YQ==", 1, "a", 1},
        {"YWI=", 2, "ab", 2},
        {"YWJj", 3, "abc", 3},
        {"AGFsaWNlAHNlY3JldA==", 13, "\0alice\0secret", 13},
        {"+/+/", 3, "\xfb\xff\xbf", 3},
        {"YQ", -EINVAL, NULL, 0},       /* no padding */
        {"YQ=", -EINVAL, NULL, 0},
        {"YR==", -EINVAL, NULL, 0},     /* non-zero trailing bits */
        {"YWJ=", -EINVAL, NULL, 0},
        {"Y===", -EINVAL, NULL, 0},     /* three pads */
        {"YQ==YQ==", -EINVAL, NULL, 0}, /* data after padding */
        {"YQ=a", -EINVAL, NULL, 0},
        {"YW Jj", -EINVAL, NULL, 0},
        {"YWJj\n", -EINVAL, NULL, 0},
        {"YW-j", -EINVAL, NULL, 0},     /* URL alphabet */
        {"====", -EINVAL, NULL, 0},
        {"==", -EINVAL, NULL, 0},
    };
    uint8_t out[64];

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int rc = ingress_auth_b64_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        CHECK(rc == cases[i].rc, "b64 \"%s\": rc %d, want %d", cases[i].in, rc, cases[i].rc);
        if (rc >= 0 && cases[i].rc >= 0)
            CHECK((size_t)rc == cases[i].out_len && memcmp(out, cases[i].out, (size_t)rc) == 0, "b64 \"%s\": bytes",
                  cases[i].in);
    }
    /* the output bound is kept */
    CHECK(ingress_auth_b64_decode("YWJj", 4, out, 2) == -EINVAL, "b64 over outcap");
    CHECK(ingress_auth_b64_decode("YWJj", 4, out, 3) == 3, "b64 exactly outcap");
}

struct plain_case {
    const char *in;
    int rc;
    const char *authz, *authc, *pass;
};

static void test_plain(void)
{
    static const struct plain_case cases[] = {
        {"AGFsaWNlAHNlY3JldA==", 0, "", "alice", "secret"},                 /* \0alice\0secret */
        {"Ym9zcwBhbGljZQBzZWNyZXQ=", 0, "boss", "alice", "secret"},         /* boss\0alice\0secret */
        {"AGFsaWNlAA==", -EINVAL, NULL, NULL, NULL},                        /* empty password */
        {"AABzZWNyZXQ=", -EINVAL, NULL, NULL, NULL},                        /* empty authcid */
        {"YWxpY2UAc2VjcmV0", -EINVAL, NULL, NULL, NULL},                    /* two fields */
        {"AGFsaWNlAHNlYwByZXQ=", -EINVAL, NULL, NULL, NULL},                /* NUL in the password */
        {"YWxpY2U=", -EINVAL, NULL, NULL, NULL},                            /* one field */
        {"=", -EINVAL, NULL, NULL, NULL},
        {"!!!!", -EINVAL, NULL, NULL, NULL},
    };
    struct ingress_auth_cred cred;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int rc = ingress_auth_plain(cases[i].in, strlen(cases[i].in), &cred);
        CHECK(rc == cases[i].rc, "plain \"%s\": rc %d", cases[i].in, rc);
        if (rc == 0 && cases[i].rc == 0)
            CHECK(strcmp(cred.authz, cases[i].authz) == 0 && strcmp(cred.authc, cases[i].authc) == 0 &&
                      strcmp(cred.pass, cases[i].pass) == 0,
                  "plain \"%s\": %s/%s/%s", cases[i].in, cred.authz, cred.authc, cred.pass);
    }
    /* a password of INGRESS_AUTH_PASS_MAX bytes fits, one more does not */
    char raw[2 + INGRESS_AUTH_PASS_MAX + 2] = {0};
    char b64[sizeof(raw) * 2];
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t extra = 0; extra < 2; extra++) {
        size_t n = 3 + INGRESS_AUTH_PASS_MAX + extra; /* \0a\0 + password */
        raw[0] = '\0';
        raw[1] = 'a';
        raw[2] = '\0';
        memset(raw + 3, 'p', INGRESS_AUTH_PASS_MAX + extra);
        size_t o = 0;
        for (size_t i = 0; i < n; i += 3) {
            uint32_t w = (uint32_t)(uint8_t)raw[i] << 16 | (i + 1 < n ? (uint32_t)(uint8_t)raw[i + 1] << 8 : 0) |
                         (i + 2 < n ? (uint8_t)raw[i + 2] : 0);
            b64[o++] = tbl[w >> 18];
            b64[o++] = tbl[(w >> 12) & 63];
            b64[o++] = i + 1 < n ? tbl[(w >> 6) & 63] : '=';
            b64[o++] = i + 2 < n ? tbl[w & 63] : '=';
        }
        int rc = ingress_auth_plain(b64, o, &cred);
        CHECK(extra ? rc == -EINVAL : rc == 0 && strlen(cred.pass) == INGRESS_AUTH_PASS_MAX,
              "plain with a %zu-byte password: rc %d", (size_t)INGRESS_AUTH_PASS_MAX + extra, rc);
    }
}

static void test_login_and_printable(void)
{
    char out[INGRESS_AUTH_USER_MAX + 1];

    CHECK(ingress_auth_login_field("YWxpY2U=", 8, out, sizeof(out)) == 0 && strcmp(out, "alice") == 0, "login user");
    CHECK(ingress_auth_login_field("=", 1, out, sizeof(out)) == -EINVAL, "login empty");
    CHECK(ingress_auth_login_field("YQBi", 4, out, sizeof(out)) == -EINVAL, "login with NUL");
    CHECK(ingress_auth_login_field("YWxpY2U", 7, out, sizeof(out)) == -EINVAL, "login bad base64");
    CHECK(ingress_auth_login_field("YWxpY2U=", 8, out, 5) == -EINVAL, "login over outcap");
    ingress_auth_printable("al ice\x1b[0m\xc3\xa9", out, sizeof(out));
    CHECK(strcmp(out, "al?ice?[0m??") == 0, "printable: %s", out);
    char long_user[200];
    memset(long_user, 'u', sizeof(long_user) - 1);
    long_user[sizeof(long_user) - 1] = '\0';
    ingress_auth_printable(long_user, out, sizeof(out));
    CHECK(strlen(out) == 64, "printable cut at 64: %zu", strlen(out));
}

struct passwd_case {
    const char *text;
    const char *err; /* NULL: loads */
};

static void test_passwd_parse(void)
{
    static const struct passwd_case cases[] = {
        {"", NULL},
        {"# users\n\nalice:" ALICE_Y "\r\nbob:" BOB_6, NULL},
        {"alice:secret\n", "p:1: the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string\n"},
        {"alice:$1$salt$abc\n", "p:1: the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string\n"},
        {"alice:!" ALICE_Y "\n", "p:1: the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string\n"},
        {"alice:$6$\n", "p:1: the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string\n"},
        {"alice\n", "p:1: expected user:HASH\n"},
        {":" BOB_6 "\n", "p:1: the user name must be 1..255 bytes\n"},
        {"al ice:" BOB_6 "\n", "p:1: the user name must be printable ASCII without spaces\n"},
        {"alice:" BOB_6 " \n", "p:1: the hash holds a character crypt(3) never writes\n"},
        {"alice:" BOB_6 ":0:0\n", "p:1: the hash holds a character crypt(3) never writes\n"},
        {"alice:" BOB_6 "\nbob:x\nalice:" ALICE_Y "\n",
         "p:2: the hash must be a yescrypt ($y$...) or SHA-512 ($6$...) crypt(3) string\n"
         "p: user alice is listed twice\n"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct ingress_auth_passwd pw;
        char *err = NULL;
        int rc = ingress_auth_passwd_parse(cases[i].text, strlen(cases[i].text), "p", &pw, &err);
        if (!cases[i].err)
            CHECK(rc == 0 && !err, "passwd case %zu must load: %s", i, err ? err : "");
        else
            CHECK(rc == -EINVAL && err && strcmp(err, cases[i].err) == 0, "passwd case %zu:\n--- got\n%s--- want\n%s",
                  i, err ? err : "(none)\n", cases[i].err);
        if (rc == 0)
            ingress_auth_passwd_free(&pw);
        free(err);
    }
}

static void test_passwd_check(void)
{
    static const char text[] = "alice:" ALICE_Y "\nbob:" BOB_6 "\n";
    struct ingress_auth_passwd pw;
    char *err = NULL;

    if (ingress_auth_passwd_parse(text, strlen(text), "p", &pw, &err) < 0) {
        FAIL("passwords: %s", err);
        free(err);
        return;
    }
    CHECK(pw.n == 2, "two users");
    CHECK(ingress_auth_passwd_check(&pw, "alice", "alice-secret"), "alice, yescrypt");
    CHECK(ingress_auth_passwd_check(&pw, "bob", "bob-secret"), "bob, SHA-512");
    CHECK(!ingress_auth_passwd_check(&pw, "alice", "bob-secret"), "alice with bob's password");
    CHECK(!ingress_auth_passwd_check(&pw, "alice", "alice-secreT"), "alice, wrong case");
    CHECK(!ingress_auth_passwd_check(&pw, "alice", ""), "alice, empty");
    CHECK(!ingress_auth_passwd_check(&pw, "carol", "alice-secret"), "unknown user");
    CHECK(!ingress_auth_passwd_check(&pw, "Alice", "alice-secret"), "user names are case-sensitive");
    CHECK(!ingress_auth_passwd_check(&pw, "alice", ALICE_Y), "the hash is not the password");
    ingress_auth_passwd_free(&pw);
    struct ingress_auth_passwd empty = {0};
    CHECK(!ingress_auth_passwd_check(&empty, "alice", "alice-secret"), "no file, no user");
}

static void test_limit(void)
{
    struct ingress_auth_limit lim = {.max = 3, .window_ns = 60 * NS, .lockout_ns = 600 * NS};
    uint8_t a[16] = {192, 0, 2, 1}, b[16] = {192, 0, 2, 2};
    uint8_t v6a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t v6b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9}; /* same /64 */
    uint64_t t = 1000 * NS;

    CHECK(!ingress_auth_limit_fail(&lim, AF_INET, a, t), "1st failure");
    CHECK(!ingress_auth_limit_fail(&lim, AF_INET, a, t + NS), "2nd failure");
    CHECK(!ingress_auth_limit_locked(&lim, AF_INET, a, t + NS), "not locked at 2");
    CHECK(ingress_auth_limit_fail(&lim, AF_INET, a, t + 2 * NS), "3rd failure locks");
    CHECK(ingress_auth_limit_locked(&lim, AF_INET, a, t + 3 * NS), "locked");
    CHECK(!ingress_auth_limit_locked(&lim, AF_INET, b, t + 3 * NS), "another address is not");
    ingress_auth_limit_success(&lim, AF_INET, a);
    CHECK(ingress_auth_limit_locked(&lim, AF_INET, a, t + 3 * NS), "a success does not lift a lockout");
    CHECK(ingress_auth_limit_locked(&lim, AF_INET, a, t + 601 * NS), "locked until lockout ends");
    CHECK(!ingress_auth_limit_locked(&lim, AF_INET, a, t + 603 * NS), "lockout over");
    /* failures spread wider than the window never lock */
    for (int i = 0; i < 10; i++)
        CHECK(!ingress_auth_limit_fail(&lim, AF_INET, b, t + (uint64_t)i * 61 * NS), "slow failure %d", i);
    /* a success forgets the failures */
    CHECK(!ingress_auth_limit_fail(&lim, AF_INET6, v6a, t), "v6 1");
    CHECK(!ingress_auth_limit_fail(&lim, AF_INET6, v6b, t), "v6 2 (same /64)");
    ingress_auth_limit_success(&lim, AF_INET6, v6a);
    CHECK(!ingress_auth_limit_fail(&lim, AF_INET6, v6b, t), "v6 1 again after success");
    CHECK(!ingress_auth_limit_fail(&lim, AF_INET6, v6b, t), "v6 2 again");
    CHECK(ingress_auth_limit_fail(&lim, AF_INET6, v6a, t), "v6 3 locks the /64");
    CHECK(ingress_auth_limit_locked(&lim, AF_INET6, v6b, t + NS), "the whole /64 is locked");
    /* expired entries are dropped */
    ingress_auth_limit_locked(&lim, AF_INET, a, t + 10000 * NS);
    ingress_auth_limit_locked(&lim, AF_INET, b, t + 10000 * NS);
    ingress_auth_limit_locked(&lim, AF_INET6, v6a, t + 10000 * NS);
    CHECK(lim.n == 0, "expired entries dropped: %zu left", lim.n);
    ingress_auth_limit_free(&lim);
    struct ingress_auth_limit off = {.max = 0};
    for (int i = 0; i < 10; i++)
        CHECK(!ingress_auth_limit_fail(&off, AF_INET, a, t), "max 0: never locks");
    CHECK(off.n == 0, "max 0: nothing kept");
}

int main(void)
{
    test_b64();
    test_plain();
    test_login_and_printable();
    test_passwd_parse();
    test_passwd_check();
    test_limit();
    CHECK_EXIT();
}
