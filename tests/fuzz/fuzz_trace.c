/*
 * fuzz_trace - the SMTP trace record (common/proto_trace.h): what the supervisor decodes from every
 * datagram on the roles' trace socket, and the peer-network filter it parses from a query string
 *
 * Input: any octets, as a datagram. Whenever the decoder accepts one, the event must hold its bounds
 * (text and names within their maxima, names valid), encode back to the same octets, match or not any
 * filter without trouble (and the role-side prefilter slot of a filter that matches it must want it),
 * and give a JSON line that jansson reads back as an object whose text is valid
 * UTF-8. The same input, cut at its first NUL, is also tried as a --peer CIDR.
 */
#include "common/proto_trace.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_trace_event ev;
    const char *why = NULL;
    uint8_t again[PROTO_TRACE_DGRAM_MAX];

    if (proto_trace_decode(data, size, &ev, &why) == 0) {
        CHECK(ev.text_len <= PROTO_TRACE_TEXT_MAX && ev.text[ev.text_len] == '\0');
        CHECK(strlen(ev.domain) <= PROTO_TRACE_NAME_MAX && proto_trace_name_ok(ev.domain, strlen(ev.domain)));
        CHECK(proto_trace_name_ok(ev.site, strlen(ev.site)) && proto_trace_name_ok(ev.source, strlen(ev.source)));
        int n = proto_trace_encode(&ev, again, sizeof(again));
        CHECK(n >= 0 && (size_t)n == size && memcmp(again, data, size) == 0);
        struct proto_trace_filter f = {.side = ev.side};
        CHECK(proto_trace_filter_match(&f, &ev));
        if (proto_trace_filter_cidr(&f, "127.0.0.0/8") == 0)
            (void)proto_trace_filter_match(&f, &ev);
        /* the role-side prefilter is over-inclusive: whatever a filter matches, its slot wants */
        struct proto_trace_filter g = {.side = ev.side};
        if (ev.side == PROTO_TRACE_CLIENT) {
            memcpy(g.domain, ev.domain, sizeof(g.domain));
            memcpy(g.source, ev.source, sizeof(g.source));
        } else if (ev.peer.family) {
            g.family = ev.peer.family;
            g.prefix = (unsigned)(data[size - 1] % (ev.peer.family == 4 ? 33 : 129));
            memcpy(g.net, ev.peer.addr, sizeof(g.net));
        }
        struct proto_trace_shm_filter slot[1];
        proto_trace_shm_filter_set(&slot[0], &g);
        CHECK(!proto_trace_filter_match(&g, &ev) || proto_trace_shm_wanted(slot, 1, &ev));
        char *line = proto_trace_event_json(&ev, "ingress", 0);
        CHECK(line != NULL);
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        CHECK(json_is_object(o) && json_is_string(json_object_get(o, "text")));
        json_decref(o);
        free(line);
    } else {
        CHECK(why != NULL);
    }

    char cidr[64];
    size_t k = size < sizeof(cidr) - 1 ? size : sizeof(cidr) - 1;
    memcpy(cidr, data, k);
    cidr[k] = '\0';
    struct proto_trace_filter f = {.side = PROTO_TRACE_SERVER};
    if (proto_trace_filter_cidr(&f, cidr) == 0)
        CHECK((f.family == 4 && f.prefix <= 32) || (f.family == 6 && f.prefix <= 128));
    return 0;
}
