/*
 * verp - VERP return path tokens (contract in verp.h); the HMAC is OpenSSL's
 */
#include "common/verp.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* mac_hex - hex of the truncated HMAC over "<id>.<index>" */
static int mac_hex(const void *secret, size_t secret_len, const char *id, uint32_t index,
                   char hex[2 * VERP_MAC_BYTES + 1])
{
    char data[MSGID_TEXT_LEN + 16];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    int n = snprintf(data, sizeof(data), "%s.%u", id, index);
    if (n < 0 || (size_t)n >= sizeof(data) || secret_len > INT32_MAX)
        return -EINVAL;
    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)data, (size_t)n, md, &mdlen) ||
        mdlen < VERP_MAC_BYTES)
        return -EIO;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < VERP_MAC_BYTES; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * VERP_MAC_BYTES] = '\0';
    return 0;
}

int verp_encode(const void *secret, size_t secret_len, struct msgid id, uint32_t index, const char *domain, char *out,
                size_t n)
{
    char idtext[MSGID_TEXT_SIZE], hex[2 * VERP_MAC_BYTES + 1];
    if (index > VERP_INDEX_MAX || !domain || !domain[0])
        return -EINVAL;
    msgid_format(id, idtext);
    int rc = mac_hex(secret, secret_len, idtext, index, hex);
    if (rc < 0)
        return rc;
    int w = snprintf(out, n, VERP_PREFIX "%s.%u.%s@%s", idtext, index, hex, domain);
    return w < 0 || (size_t)w >= n ? -EINVAL : 0;
}

int verp_decode(const void *secret, size_t secret_len, const char *local, size_t n, struct msgid *id, uint32_t *index)
{
    const size_t plen = sizeof(VERP_PREFIX) - 1;
    if (n < plen || n > VERP_LOCAL_MAX || strncasecmp(local, VERP_PREFIX, plen) != 0)
        return -EINVAL;
    const char *p = local + plen, *end = local + n;
    /* <32 hex> "." <1..6 digits> "." <16 hex> */
    if (end - p < MSGID_TEXT_LEN + 1 || p[MSGID_TEXT_LEN] != '.')
        return -EINVAL;
    struct msgid got;
    if (msgid_parse(p, MSGID_TEXT_LEN, &got) < 0)
        return -EINVAL;
    const char *q = p + MSGID_TEXT_LEN + 1;
    uint32_t idx = 0;
    unsigned digits = 0;
    while (q < end && *q >= '0' && *q <= '9' && digits < 6) {
        idx = idx * 10 + (uint32_t)(*q - '0');
        q++;
        digits++;
    }
    if (digits == 0 || q >= end || *q != '.' || (size_t)(end - q - 1) != 2 * VERP_MAC_BYTES)
        return -EINVAL;
    q++;
    char want[2 * VERP_MAC_BYTES + 1], have[2 * VERP_MAC_BYTES], idtext[MSGID_TEXT_SIZE];
    for (unsigned i = 0; i < 2 * VERP_MAC_BYTES; i++) {
        char c = q[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -EINVAL;
        have[i] = c;
    }
    msgid_format(got, idtext);
    if (mac_hex(secret, secret_len, idtext, idx, want) < 0)
        return -EIO;
    if (CRYPTO_memcmp(want, have, sizeof(have)) != 0)
        return -EPERM;
    *id = got;
    *index = idx;
    return 0;
}
