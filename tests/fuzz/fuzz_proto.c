/*
 * fuzz_spool_rec - the envelope record decoder on arbitrary bytes (ring store requests carry one, and
 * the spool re-reads them from disk at every start)
 *
 * Whatever decodes must satisfy the record's invariants and survive a round trip: encode(decode(x))
 * decodes again to the same encoding. Whatever does not decode must say why.
 */
#include "common/proto_env.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if (!(x))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

static bool clean(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_env rec;
    const char *why = NULL;

    if (proto_env_decode(data, size, &rec, &why) < 0) {
        CHECK(why && *why);
        return 0;
    }
    CHECK(rec.rcpt_count >= 1 && rec.rcpt_count <= PROTO_ENV_RCPT_MAX);
    CHECK((rec.flags & ~PROTO_ENV_F_ALL) == 0);
    CHECK(clean(rec.sender, PROTO_ENV_ADDR_MAX));
    for (uint32_t i = 0; i < rec.rcpt_count; i++) {
        CHECK(rec.rcpts[i].addr[0] && clean(rec.rcpts[i].addr, PROTO_ENV_ADDR_MAX));
        CHECK(rec.rcpts[i].state < PROTO_RCPT__MAX);
    }
    CHECK(rec.meta_count <= PROTO_ENV_META_MAX);
    for (uint32_t i = 0; i < rec.meta_count; i++)
        CHECK(strlen(rec.meta[i].key) <= PROTO_ENV_KEY_MAX && strlen(rec.meta[i].value) <= PROTO_ENV_VALUE_MAX);

    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    CHECK(proto_env_encode(&rec, &a) == 0);
    struct proto_env again;
    CHECK(proto_env_decode(a.data, a.len, &again, &why) == 0);
    CHECK(proto_env_encode(&again, &b) == 0);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    proto_env_fini(&again);
    proto_env_fini(&rec);
    buf_fini(&a);
    buf_fini(&b);
    return 0;
}
