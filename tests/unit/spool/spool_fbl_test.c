/*
 * spool_fbl_test - the Feedback and OOB records (spool/spool_fbl.c) built from the fbl.* metadata an
 * ingress wrote: the fields of a matched complaint and of a hard OOB (the real bounce classifier), and the
 * metadata judged again as hostile input: an id that is not one, an unknown match, a bad index, a forged
 * match, bytes that are not UTF-8, a message that is no report
 *
 * Exit 0 pass, 1 fail.
 */
#include "spool/spool.h"

#include <errno.h>
#include <string.h>

#include "tests/lib/check.h"

#define ORIG "0190a1b2c3d4e5f60718293a4b5c6d7e"

static json_t *build(const struct proto_env_meta *m, uint32_t n, const struct bounce_class *bc, bool *suppress)
{
    struct proto_env_rcpt rcpt = {.addr = "abuse@fbl.example.net"};
    struct proto_env rec = {.sender = "", .rcpt_count = 1, .rcpts = &rcpt, .meta_count = n,
                            .meta = (struct proto_env_meta *)m, .body_size = 1234};
    struct msgid id = {1, 2};
    json_t *j = NULL;
    int rc = spool_fbl_build(NULL, bc, id, &rec, &j, suppress);
    CHECK((rc == 0) == (j != NULL), "a record exactly when 0");
    return j;
}

static const char *str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

#define N(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static void test_arf(void)
{
    static const struct proto_env_meta m[] = {
        {"tenant", "from-policy"}, {"fbl.kind", "arf"}, {"fbl.match", "header"}, {"fbl.orig_id", ORIG},
        {"fbl.orig_rcpt", "user@example.com"}, {"fbl.feedback_type", "abuse"}, {"fbl.reporting_mta", "mx.isp.test"},
        {"fbl.tenant", "acme"}, {"fbl.campaign", "spring"}, {"fbl.orig_rcpt_index", "3"},
    };
    bool sup = false;
    json_t *j = build(m, N(m), NULL, &sup);
    CHECK(j && strcmp(str(j, "type"), "Feedback") == 0, "type");
    CHECK(j && strcmp(str(j, "original_id"), ORIG) == 0, "original id");
    CHECK(j && strcmp(str(j, "original_recipient"), "user@example.com") == 0, "recipient");
    CHECK(j && strcmp(str(j, "feedback_type"), "abuse") == 0 && strcmp(str(j, "match"), "header") == 0, "type, match");
    CHECK(j && strcmp(str(j, "tenant"), "acme") == 0 && strcmp(str(j, "campaign"), "spring") == 0, "tenant");
    CHECK(j && json_integer_value(json_object_get(j, "original_recipient_index")) == 3, "index");
    CHECK(j && strcmp(str(j, "recipient"), "abuse@fbl.example.net") == 0, "the report's own recipient");
    CHECK(j && json_is_true(json_object_get(j, "suppress")) && sup, "suppressed");
    CHECK(j && json_object_get(j, "meta") == NULL, "no meta");
    json_decref(j);

    /* not-spam is no complaint */
    struct proto_env_meta ns[N(m)];
    memcpy(ns, m, sizeof(ns));
    ns[5].value = "not-spam";
    j = build(ns, N(ns), NULL, &sup);
    CHECK(j && !sup && json_is_false(json_object_get(j, "suppress")), "not-spam not suppressed");
    json_decref(j);
}

static void test_oob(void)
{
    struct bounce_class *bc = bounce_class_new();
    static const struct proto_env_meta m[] = {
        {"fbl.kind", "dsn"}, {"fbl.match", "verp"}, {"fbl.orig_id", ORIG}, {"fbl.orig_rcpt_index", "0"},
        {"fbl.orig_rcpt", "gone@example.com"}, {"fbl.status", "5.1.1"}, {"fbl.action", "failed"},
        {"fbl.diagnostic", "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown"},
        {"fbl.remote_mta", "mx.example.com"},
    };
    bool sup = false;
    json_t *j = build(m, N(m), bc, &sup);
    CHECK(j && strcmp(str(j, "type"), "OOB") == 0, "type");
    CHECK(j && strcmp(str(j, "bounce_classification"), "InvalidRecipient") == 0, "class %s",
          j ? str(j, "bounce_classification") : "");
    CHECK(j && json_is_true(json_object_get(j, "hard")) && sup, "hard, suppressed");
    CHECK(j && json_integer_value(json_object_get(j, "original_recipient_index")) == 0, "index 0");
    json_decref(j);

    /* a full mailbox is soft */
    struct proto_env_meta q[N(m)];
    memcpy(q, m, sizeof(q));
    q[5].value = "4.2.2";
    q[7].value = "452 4.2.2 mailbox full";
    j = build(q, N(q), bc, &sup);
    CHECK(j && strcmp(str(j, "bounce_classification"), "QuotaIssues") == 0, "quota class");
    CHECK(j && json_is_false(json_object_get(j, "hard")) && !sup, "soft, not suppressed");
    json_decref(j);

    /* hostile metadata: no original, no index, no suppression, and every field still JSON */
    struct proto_env_meta h[N(m)];
    static const struct {
        unsigned idx;
        const char *value;
    } bad[] = {
        {2, "not-an-id"}, {2, ORIG "00"}, {1, "trusted"}, {1, "forged"}, {1, "none"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(h, m, sizeof(h));
        h[bad[i].idx].value = bad[i].value;
        j = build(h, N(h), bc, &sup);
        CHECK(j && json_is_null(json_object_get(j, "original_id")), "case %zu: no original", i);
        CHECK(j && json_is_null(json_object_get(j, "original_recipient_index")), "case %zu: no index", i);
        CHECK(j && !sup, "case %zu: not suppressed", i);
        const char *mt = j ? str(j, "match") : "";
        CHECK(mt && (strcmp(mt, "none") == 0 || strcmp(mt, "forged") == 0 || strcmp(mt, "verp") == 0),
              "case %zu: a known match", i);
        json_decref(j);
    }
    memcpy(h, m, sizeof(h));
    h[3].value = "1234567";
    j = build(h, N(h), bc, &sup);
    CHECK(j && json_is_null(json_object_get(j, "original_recipient_index")), "index too long");
    json_decref(j);
    memcpy(h, m, sizeof(h));
    h[5].value = "9.9.9";
    h[4].value = "bad\xff\xfe@example.com";
    j = build(h, N(h), bc, &sup);
    CHECK(j && json_is_null(json_object_get(j, "status")), "a status that is none");
    CHECK(j && json_is_false(json_object_get(j, "hard")) && !sup, "no status, not hard");
    CHECK(j && strcmp(str(j, "original_recipient"), "bad\xef\xbf\xbd\xef\xbf\xbd@example.com") == 0,
          "repaired UTF-8: %s", j ? str(j, "original_recipient") : "");
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    CHECK(line != NULL, "serialises");
    free(line);
    json_decref(j);
    bounce_class_free(bc);
}

static void test_not_report(void)
{
    static const struct proto_env_meta m[] = {{"fbl.kind", "maybe"}, {"tenant", "acme"}};
    bool sup = true;
    CHECK(build(m, N(m), NULL, &sup) == NULL && !sup, "no report, no record");
    CHECK(build(m, 0, NULL, &sup) == NULL, "no metadata");
}

int main(void)
{
    test_arf();
    test_oob();
    test_not_report();
    CHECK_EXIT();
}
