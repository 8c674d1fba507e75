/*
 * verp_test - VERP return paths (common/verp.c): round trips, the HMAC against an independent
 * computation (OpenSSL's one-shot HMAC over the documented input), forged and malformed local parts
 *
 * Exit 0 pass, 1 fail.
 */
#include "common/verp.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

static const char secret[] = "0123456789abcdef-secret";

static int decode(const char *local, struct msgid *id, uint32_t *idx)
{
    size_t n = strlen(local);
    char *copy = malloc(n ? n : 1); /* exact size: a read past the end is an ASan report */
    memcpy(copy, local, n);
    int rc = verp_decode(secret, strlen(secret), copy, n, id, idx);
    free(copy);
    return rc;
}

int main(void)
{
    struct msgid id = {0x0123456789abcdefULL, 0xfedcba9876543210ULL}, got;
    uint32_t idx = 0;
    char addr[160], local[80];

    CHECK(verp_encode(secret, strlen(secret), id, 42, "bounces.example.net", addr, sizeof(addr)) == 0, "encode");
    CHECK(strncmp(addr, "bounce+0123456789abcdeffedcba9876543210.42.", 43) == 0, "form: %s", addr);
    const char *at = strchr(addr, '@');
    CHECK(at && strcmp(at, "@bounces.example.net") == 0, "domain");
    CHECK(at && (size_t)(at - addr) <= 64, "local part within 64 octets");
    snprintf(local, sizeof(local), "%.*s", (int)(at - addr), addr);

    /* the mac: the first 8 bytes of HMAC-SHA256(secret, "<id>.<index>") in hex */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    const char *data = "0123456789abcdeffedcba9876543210.42";
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)data, strlen(data), md, &mdlen);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    CHECK(strcmp(local + strlen(local) - 16, hex) == 0, "mac %s, want %s", local + strlen(local) - 16, hex);

    CHECK(decode(local, &got, &idx) == 0 && msgid_eq(got, id) && idx == 42, "round trip");
    for (char *p = local; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    CHECK(decode(local, &got, &idx) == 0 && msgid_eq(got, id) && idx == 42, "upper case (a relay may change it)");

    /* another secret, another index, another id with the same mac: forged */
    CHECK(verp_decode("another-secret-0123", 19, local, strlen(local), &got, &idx) == -EPERM, "other secret");
    char forged[80];
    snprintf(forged, sizeof(forged), "bounce+0123456789abcdeffedcba9876543210.43.%s", hex);
    CHECK(decode(forged, &got, &idx) == -EPERM, "index changed");
    snprintf(forged, sizeof(forged), "bounce+1123456789abcdeffedcba9876543210.42.%s", hex);
    CHECK(decode(forged, &got, &idx) == -EPERM, "id changed");

    static const char *const bad[] = {
        "", "bounce", "bounce+", "postmaster", "bounce+0123456789abcdeffedcba9876543210",
        "bounce+0123456789abcdeffedcba9876543210.", "bounce+0123456789abcdeffedcba9876543210.42",
        "bounce+0123456789abcdeffedcba9876543210.42.", "bounce+0123456789abcdeffedcba9876543210..0011223344556677",
        "bounce+0123456789abcdeffedcba9876543210.1234567.0011223344556677",
        "bounce+0123456789abcdeffedcba987654321g.42.0011223344556677",
        "bounce+0123456789abcdeffedcba9876543210.42.001122334455667",
        "bounce+0123456789abcdeffedcba9876543210.42.00112233445566778",
        "bounce+0123456789abcdeffedcba9876543210.42.001122334455667z",
        "bounce+0123456789abcdeffedcba9876543210.4x.0011223344556677",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(decode(bad[i], &got, &idx) == -EINVAL, "malformed %zu: %s", i, bad[i]);

    CHECK(verp_encode(secret, strlen(secret), id, VERP_INDEX_MAX + 1, "b.test", addr, sizeof(addr)) == -EINVAL,
          "index too large");
    CHECK(verp_encode(secret, strlen(secret), id, 1, "b.test", addr, 20) == -EINVAL, "does not fit");
    CHECK(verp_encode(secret, strlen(secret), id, 1, "", addr, sizeof(addr)) == -EINVAL, "no domain");
    CHECK(verp_encode(secret, strlen(secret), id, VERP_INDEX_MAX, "b.test", addr, sizeof(addr)) == 0 &&
              strchr(addr, '@') - addr <= 64, "the largest index fits in 64 octets");
    CHECK_EXIT();
}
