/*
 * fuzz_sasl - the AUTH decoders (ingress/ingress_auth.c) on any input: strict base64, SASL PLAIN, a LOGIN
 * field, and the passwords file parser
 *
 * Input: 1 selector octet, then the data (copied to an exact-size heap block so that any read past `len`
 * is an ASan report). Checks: base64 that decodes re-encodes to the same text (one encoding per byte
 * string) and never exceeds its output bound; an accepted PLAIN message has NUL-free, NUL-terminated
 * fields within their limits, authcid and password non-empty; a LOGIN field is NUL-free and non-empty; a
 * passwords file either loads users whose hashes are $y$/$6$ strings, sorted and unique, or reports an
 * error text ending in a newline.
 */
#include "ingress/ingress_auth.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* reencode - what an encoder writes for out[0..n); the decoder accepted exactly this text */
static size_t reencode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64_alphabet[w >> 18];
        out[o++] = b64_alphabet[(w >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[w & 63] : '=';
    }
    return o;
}

static void check_field(const char *s, size_t cap, bool nonempty)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    CHECK(!nonempty || n > 0);
}

static void fuzz_b64(const char *p, size_t n)
{
    uint8_t out[1024];
    char again[sizeof(out) * 4 / 3 + 8];
    int rc = ingress_auth_b64_decode(p, n, out, sizeof(out));
    if (rc < 0)
        return;
    CHECK((size_t)rc <= sizeof(out) && (size_t)rc <= n);
    if (n == 1) {
        CHECK(rc == 0 && p[0] == '=');
        return;
    }
    size_t m = reencode(out, (size_t)rc, again);
    CHECK(m == n && memcmp(again, p, n) == 0);
}

static void fuzz_plain(const char *p, size_t n)
{
    struct ingress_auth_cred cred;
    if (ingress_auth_plain(p, n, &cred) < 0)
        return;
    check_field(cred.authz, sizeof(cred.authz), false);
    check_field(cred.authc, sizeof(cred.authc), true);
    check_field(cred.pass, sizeof(cred.pass), true);
}

static void fuzz_login(const char *p, size_t n)
{
    char out[INGRESS_AUTH_USER_MAX + 1];
    char shown[80];
    if (ingress_auth_login_field(p, n, out, sizeof(out)) < 0)
        return;
    check_field(out, sizeof(out), true);
    ingress_auth_printable(out, shown, sizeof(shown));
    for (const char *c = shown; *c; c++)
        CHECK(*c > 0x20 && *c < 0x7f);
    CHECK(strlen(shown) <= 64);
}

static void fuzz_passwd(const char *p, size_t n)
{
    struct ingress_auth_passwd pw;
    char *err = NULL;
    if (ingress_auth_passwd_parse(p, n, "f", &pw, &err) < 0) {
        CHECK(err && err[0] && err[strlen(err) - 1] == '\n');
        free(err);
        return;
    }
    CHECK(err == NULL);
    for (size_t i = 0; i < pw.n; i++) {
        CHECK(pw.users[i].name[0] && !strchr(pw.users[i].name, ':'));
        CHECK(strncmp(pw.users[i].hash, "$y$", 3) == 0 || strncmp(pw.users[i].hash, "$6$", 3) == 0);
        CHECK(i == 0 || strcmp(pw.users[i - 1].name, pw.users[i].name) < 0);
    }
    ingress_auth_passwd_free(&pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    switch (data[0] % 4) {
    case 0:
        fuzz_b64(p, n);
        break;
    case 1:
        fuzz_plain(p, n);
        break;
    case 2:
        fuzz_login(p, n);
        break;
    default:
        fuzz_passwd(p, n);
        break;
    }
    free(p);
    return 0;
}
