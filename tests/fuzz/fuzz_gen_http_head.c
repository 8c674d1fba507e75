/*
 * fuzz_gen_http_head - ringmail-gen --http's reading of an answer's head (tools/gen_http_head.c) on any
 * bytes
 *
 * Input: the head (copied to an exact-size heap block so that any read past `len` is an ASan report).
 * Checks: a parsed head has a status code 100..599 and a Content-Length within the maximum.
 */
#include "tools/gen_http_head.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    uint64_t len = 0;
    bool close = false;

    memcpy(in, data, size);
    int code = gen_http_head_parse(in, size, 1024 * 1024, &len, &close);
    CHECK(code == -1 || (code >= 100 && code <= 599 && len <= 1024 * 1024));
    free(in);
    return 0;
}
