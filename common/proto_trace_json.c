/*
 * proto_trace_json - a trace event in the admin API's JSON form (schema: docs/admin-api.md, "SMTP trace")
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/utf8.h"
#include "common/proto_trace.h"

/* text_json - the peer's octets as a JSON string: UTF-8 kept, any other octet as the four characters \xNN
 * (JSON itself escapes the controls) */
static json_t *text_json(const char *t, size_t n)
{
    if (utf8_valid(t, n) && !memchr(t, '\0', n))
        return json_stringn(t, n);
    struct buf b = {0};
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq_len((const unsigned char *)t + i, n - i);
        if (k > 0 && t[i] != '\0') {
            buf_append(&b, t + i, k);
            i += k;
        } else {
            buf_printf(&b, "\\x%02X", (unsigned char)t[i]);
            i++;
        }
    }
    json_t *j = json_stringn(b.len ? (const char *)b.data : "", b.len);
    buf_fini(&b);
    return j;
}

char *proto_trace_event_json(const struct proto_trace_event *ev, const char *role, unsigned worker)
{
    char peer[64], local[64], when[48], sess[24];
    time_t secs = (time_t)(ev->time_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t k = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof(when) - k, ".%06uZ", (unsigned)(ev->time_ns % 1000000000u / 1000u));
    proto_trace_addr_format(&ev->peer, peer, sizeof(peer));
    proto_trace_addr_format(&ev->local, local, sizeof(local));
    snprintf(sess, sizeof(sess), "%016llx", (unsigned long long)ev->session);
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("smtp"));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "side", json_string(ev->side == PROTO_TRACE_SERVER ? "server" : "client"));
    json_object_set_new(o, "role", json_string(role));
    json_object_set_new(o, "worker", json_integer(worker));
    json_object_set_new(o, "session", json_string(sess));
    json_object_set_new(o, "peer", json_string(peer));
    json_object_set_new(o, "local", json_string(local));
    json_object_set_new(o, "dir", json_string(proto_trace_dir_text(ev->dir)));
    json_object_set_new(o, "text", text_json(ev->text, ev->text_len));
    json_object_set_new(o, "truncated", json_boolean(ev->truncated));
    if (ev->side == PROTO_TRACE_CLIENT) {
        json_object_set_new(o, "domain", json_string(ev->domain));
        json_object_set_new(o, "site", json_string(ev->site));
        json_object_set_new(o, "source", json_string(ev->source));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}
