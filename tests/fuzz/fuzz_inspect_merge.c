/*
 * fuzz_inspect_merge - the supervisor's reading of the spool's and the scheduler's inspect-message results
 * (supervisor_inspect_merge: member types, the scheduler's rcpt_first indexes into the spool's recipients,
 * the body's base64 strings) on any bytes
 *
 * Input: two reply documents separated by a NUL byte, the spool's (op inspect-message-spool) and the
 * scheduler's (op inspect-message-sched). Each goes through proto_admin_reply_decode first, as in the
 * supervisor; what decodes is merged. Invariants: the answer is an object that encodes (jansson refuses
 * invalid UTF-8 and NULs inside strings), carries the id, and its body, when there is one, is at most
 * PROTO_ADMIN_BODY_MAX bytes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_admin.h"
#include "supervisor/supervisor.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n1 = nul ? (size_t)(nul - data) : size;
    const char *t2 = nul ? (const char *)nul + 1 : "";
    size_t n2 = nul ? size - n1 - 1 : 0;
    struct proto_admin_reply sp, sc;
    char *err = NULL;
    bool have_sp = proto_admin_reply_decode((const char *)data, n1, PROTO_ADMIN_SPOOL_INSPECT, 0, &sp, &err) == 0 &&
                   sp.status == 200;
    free(err);
    err = NULL;
    bool have_sc = proto_admin_reply_decode(t2, n2, PROTO_ADMIN_INSPECT_MESSAGE, 0, &sc, &err) == 0 && sc.status == 200;
    free(err);
    const char *id = "01a2505df65c000200c458b007500000";
    json_t *doc = supervisor_inspect_merge(id, have_sp ? sp.result : NULL,
                                           have_sc ? json_object_get(sc.result, "entries") : NULL,
                                           have_sc ? NULL : "the scheduler did not answer");
    CHECK(json_is_object(doc));
    CHECK(strcmp(json_string_value(json_object_get(doc, "id")), id) == 0);
    CHECK(json_is_array(json_object_get(doc, "recipients")) && json_is_array(json_object_get(doc, "queues")));
    json_t *body = json_object_get(doc, "body");
    CHECK(!body || (json_is_string(body) && json_string_length(body) <= PROTO_ADMIN_BODY_MAX + PROTO_ADMIN_BODY_CHUNK));
    char *text = json_dumps(doc, JSON_COMPACT);
    CHECK(text != NULL);
    free(text);
    json_decref(doc);
    proto_admin_reply_fini(&sp); /* zeroed by a failed decode */
    proto_admin_reply_fini(&sc);
    return 0;
}
