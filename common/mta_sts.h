/*
 * mta_sts - MTA-STS (RFC 8461) texts: the _mta-sts TXT record, the policy file, MX pattern matching,
 * and how a policy's effect is named in a site (shared by the scheduler, the egress and the spool)
 *
 * mta_sts_txt_parse() reads one TXT record (its strings joined): "v=STSv1; id=ID[; ext=value]*"
 * (section 3.1). Returns 1 and copies ID (1..32 letters and digits) into id, 0 when the record is
 * not an STSv1 record at all (other TXT records at the name are ignored), -EINVAL when it starts with
 * v=STSv1 but is malformed (*why, static).
 * mta_sts_policy_parse() reads a policy file (section 3.2), strictly: lines "key: value" ended by
 * LF or CRLF; `version: STSv1`, `mode: enforce|testing|none` and `max_age: 0..31557600` each exactly
 * once; `mx: [*.]host` once or more (at most MTA_STS_MX_MAX) unless the mode is none; other keys of
 * the extension syntax are ignored; anything else is refused. Returns 0, or -EINVAL with *why (static)
 * and *out empty. The text need not be NUL-terminated; a NUL byte is refused.
 * mta_sts_mx_match() compares an MX host with one pattern (ASCII case-insensitive, trailing dot
 * ignored): "*.example.com" matches exactly one more label ("mx.example.com", not "a.b.example.com"
 * nor "example.com").
 * Ownership: a parsed policy owns its patterns (one allocation each); mta_sts_policy_fini() frees them.
 */
#ifndef RINGMAIL_MTA_STS_H
#define RINGMAIL_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTA_STS_ID_MAX 32
#define MTA_STS_MAX_AGE_MAX 31557600u /* one year, RFC 8461 3.2 */
#define MTA_STS_MX_MAX 32             /* mx patterns kept; a policy with more is refused */
#define MTA_STS_POLICY_MAX 65536      /* bytes of a policy file (the fetch cap) */
#define MTA_STS_PATTERN_MAX 255       /* bytes of one mx pattern ("*." + a 253-byte name) */
/* a site whose paths run under a policy is "MXSITE" MTA_STS_SITE_TAG "MODE:HASH" */
#define MTA_STS_SITE_TAG ";mta-sts="

enum mta_sts_mode {
    MTA_STS_MODE_OFF = 0, /* no policy applies (none published, `none`, or enable_mta_sts = false) */
    MTA_STS_MODE_TESTING = 1,
    MTA_STS_MODE_ENFORCE = 2,
    MTA_STS_MODE_NONE = 3, /* the policy file said `mode: none` (only in a parsed policy) */
};

struct mta_sts_policy {
    enum mta_sts_mode mode;
    uint32_t max_age;
    size_t n_mx;
    char **mx; /* lowercase patterns, no trailing dot */
};

int mta_sts_txt_parse(const char *txt, size_t len, char id[MTA_STS_ID_MAX + 1], const char **why);
int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *out, const char **why);
void mta_sts_policy_fini(struct mta_sts_policy *p);
bool mta_sts_mx_match(const char *pattern, const char *host);
/* mta_sts_mx_allowed - host matches one of the n patterns */
bool mta_sts_mx_allowed(const char *const *patterns, size_t n, const char *host);
/* mta_sts_mode_name - "off", "testing", "enforce", "none"; "?" otherwise */
const char *mta_sts_mode_name(unsigned mode);
/* mta_sts_site_mode - the mode a site name carries (MTA_STS_SITE_TAG), MTA_STS_MODE_OFF when none */
enum mta_sts_mode mta_sts_site_mode(const char *site);
/* mta_sts_site_base_len - the length of the site name without its MTA_STS_SITE_TAG part */
size_t mta_sts_site_base_len(const char *site);

#endif
