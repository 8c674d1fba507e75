/*
 * fuzz_feedback_report - the ARF/DSN report parser (ingress/ingress_report.c) and the VERP local-part
 * decoder (common/verp.c) on any bytes
 *
 * Input: a received message (copied to an exact-size heap block so that any read past `len` is an ASan
 * report). Checks: a refusal has a reason and no kind; an accepted report has a kind and the fields its
 * kind requires; every field is NUL-terminated inside its buffer and holds no control byte; the ring id
 * is empty or 32 lower-case hex digits. The first 64 bytes also go to verp_decode as a local part: it
 * never accepts one that does not start with "bounce+".
 */
#include "common/verp.h"
#include "ingress/ingress_report.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tests/fuzz/fuzz.h"

static void check_field(const char *f, size_t size)
{
    const char *end = memchr(f, '\0', size);
    CHECK(end != NULL);
    for (const char *p = f; p < end; p++)
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

#define FIELD(r, name) check_field((r)->name, sizeof((r)->name))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    struct ingress_report r;
    const char *why = NULL;
    int rc = ingress_report_parse(in, size, &r, &why);
    if (rc < 0) {
        CHECK(why != NULL);
        CHECK(r.kind == INGRESS_REPORT_NONE);
    } else {
        CHECK(rc == 0 && why == NULL);
        CHECK(r.kind == INGRESS_REPORT_ARF || r.kind == INGRESS_REPORT_DSN);
        if (r.kind == INGRESS_REPORT_ARF)
            CHECK(r.feedback_type[0] != '\0');
        else
            CHECK(r.orig_rcpt[0] != '\0' && r.status[0] != '\0');
    }
    FIELD(&r, feedback_type);
    FIELD(&r, user_agent);
    FIELD(&r, version);
    FIELD(&r, orig_rcpt);
    FIELD(&r, orig_sender);
    FIELD(&r, arrival_date);
    FIELD(&r, reporting_mta);
    FIELD(&r, source_ip);
    FIELD(&r, dsn_orig_rcpt);
    FIELD(&r, action);
    FIELD(&r, status);
    FIELD(&r, diagnostic);
    FIELD(&r, remote_mta);
    FIELD(&r, message_id);
    FIELD(&r, ring_id);
    FIELD(&r, tenant);
    FIELD(&r, campaign);
    size_t idn = strlen(r.ring_id);
    CHECK(idn == 0 || idn == INGRESS_REPORT_ID_LEN);
    for (size_t i = 0; i < idn; i++)
        CHECK((r.ring_id[i] >= '0' && r.ring_id[i] <= '9') || (r.ring_id[i] >= 'a' && r.ring_id[i] <= 'f'));

    size_t ln = size < VERP_LOCAL_MAX ? size : VERP_LOCAL_MAX;
    struct msgid id;
    uint32_t idx;
    if (verp_decode("fuzz-secret-0123456789", 22, in, ln, &id, &idx) == 0)
        CHECK(ln >= 7 && strncasecmp(in, VERP_PREFIX, 7) == 0 && idx <= VERP_INDEX_MAX);
    free(in);
    return 0;
}
