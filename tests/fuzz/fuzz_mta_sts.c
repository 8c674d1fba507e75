/*
 * fuzz_mta_sts - MTA-STS texts (common/mta_sts.h) on any bytes: the policy file and the TXT record
 *
 * A policy either parses (then every invariant of the contract holds: a known mode, max_age in range,
 * 1..MTA_STS_MX_MAX patterns unless the mode is none, each a valid pattern that matches a host made from
 * it) or is refused with a reason and nothing kept. A TXT record gives an id of 1..32 letters and digits
 * or none.
 */
#include <stdlib.h>
#include <string.h>

#include "common/mta_sts.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *why = NULL;
    struct mta_sts_policy p;

    int rc = mta_sts_policy_parse(text, size, &p, &why);
    if (rc == 0) {
        CHECK(p.mode == MTA_STS_MODE_ENFORCE || p.mode == MTA_STS_MODE_TESTING || p.mode == MTA_STS_MODE_NONE);
        CHECK(p.max_age <= MTA_STS_MAX_AGE_MAX);
        CHECK(p.n_mx <= MTA_STS_MX_MAX && (p.mode == MTA_STS_MODE_NONE || p.n_mx > 0));
        for (size_t i = 0; i < p.n_mx; i++) {
            size_t n = strlen(p.mx[i]);
            CHECK(n > 0 && n <= MTA_STS_PATTERN_MAX);
            char host[MTA_STS_PATTERN_MAX + 8];
            if (p.mx[i][0] == '*')
                memcpy(host, "x", 1), memcpy(host + 1, p.mx[i] + 1, n); /* "*.a.b" -> "x.a.b" */
            else
                memcpy(host, p.mx[i], n + 1);
            CHECK(mta_sts_mx_match(p.mx[i], host));
            CHECK(mta_sts_mx_allowed((const char *const *)p.mx, p.n_mx, host));
        }
        mta_sts_policy_fini(&p);
    } else {
        CHECK(rc == -22 && why && p.n_mx == 0 && !p.mx);
    }

    char id[MTA_STS_ID_MAX + 1];
    why = NULL;
    rc = mta_sts_txt_parse(text, size, id, &why);
    if (rc == 1)
        CHECK(strlen(id) >= 1 && strlen(id) <= MTA_STS_ID_MAX);
    else if (rc < 0)
        CHECK(why != NULL);
    return 0;
}
