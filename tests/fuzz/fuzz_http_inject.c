/*
 * fuzz_http_inject - the HTTP injection request decoder and MIME builder (ingress/ingress_mime.c) on any
 * request body
 *
 * Input: the body of a POST /api/inject/v1 (copied to an exact-size heap block so that any read past
 * `len` is an ASan report). Checks: a refused request has an error text; an accepted one has at least one
 * recipient and a good recipient is in exactly one group; every message built has CRLF line ends only,
 * no line over 998 octets and no NUL; a message that could not be built has an error text.
 */
#include "ingress/ingress_mime.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

static void check_message(const struct buf *b)
{
    size_t col = 0;
    for (size_t i = 0; i < b->len; i++) {
        uint8_t c = b->data[i];
        CHECK(c != 0);
        if (c == '\r') {
            CHECK(i + 1 < b->len && b->data[i + 1] == '\n');
            continue;
        }
        if (c == '\n') {
            CHECK(i > 0 && b->data[i - 1] == '\r');
            col = 0;
            continue;
        }
        CHECK(++col <= 998);
    }
    CHECK(b->len >= 2 && b->data[b->len - 1] == '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    struct ingress_mime_req req;
    char *err = NULL;

    memcpy(in, data, size);
    if (ingress_mime_decode(in, size, 100, &req, &err) < 0) {
        CHECK(err && err[0]);
        free(err);
        ingress_mime_req_fini(&req);
        free(in);
        return 0;
    }
    CHECK(req.n_rcpts >= 1 && req.n_rcpts <= 100);
    struct ingress_mime_group *g = NULL;
    size_t ng = 0, seen = 0, good = 0;
    ingress_mime_groups(&req, &g, &ng);
    for (size_t i = 0; i < req.n_rcpts; i++)
        good += req.rcpts[i].ok;
    for (size_t i = 0; i < ng; i++) {
        struct ingress_mime_msg m;
        seen += g[i].n;
        CHECK(g[i].n >= 1);
        if (ingress_mime_build(&req, &g[i], "fuzz.test", 1700000000, &m, &err) == 0) {
            check_message(&m.data);
            buf_fini(&m.data);
        } else {
            CHECK(err && err[0]);
            free(err);
        }
    }
    CHECK(seen == good);
    ingress_mime_groups_free(g, ng);
    ingress_mime_req_fini(&req);
    free(in);
    return 0;
}
