/*
 * fuzz_smtp_addr - smtp_addr_parse_path() and smtp_addr_parse_domain() on any bytes
 *
 * Input: 1 flag octet, then the candidate path (exact-size heap copy). An accepted path must end at
 * a '>' inside the input, give the same answer when more bytes follow it, keep its outputs clean and
 * within limits, refuse UTF-8 unless allowed, and agree with smtp_addr_parse_domain() about its domain.
 */
#include "smtp/smtp_addr.h"

#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"



static bool clean(const char *s, size_t cap, size_t len, bool ascii)
{
    if (strnlen(s, cap) != len || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 32 || c == 127 || (ascii && c >= 128))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags =
        data[0] & (SMTP_ADDR_PARSE_UTF8 | SMTP_ADDR_PARSE_NULL_OK | SMTP_ADDR_PARSE_POSTMASTER_OK);
    size_t len = size - 1;
    char *s = malloc(len ? len : 1);
    memcpy(s, data + 1, len);
    struct smtp_addr a, b;
    size_t used = 0, used2 = 0;
    enum smtp_addr_err e, e2;
    bool ascii = !(flags & SMTP_ADDR_PARSE_UTF8);

    int rc = smtp_addr_parse_path(s, len, flags, &a, &used, &e);

    /* the same bytes followed by more input: same verdict, same result */
    char *t = malloc(len + 8);
    memcpy(t, s, len);
    memcpy(t + len, " SIZE=1>", 8);
    int rc2 = smtp_addr_parse_path(t, len + 8, flags, &b, &used2, &e2);
    if (rc == 0) {
        CHECK(e == SMTP_ADDR_OK && used >= 2 && used <= len && used <= SMTP_ADDR_PATH_MAX);
        CHECK(s[0] == '<' && s[used - 1] == '>');
        CHECK(rc2 == 0 && used2 == used && memcmp(&a, &b, sizeof(a)) == 0);
        CHECK(clean(a.local, sizeof(a.local), a.local_len, ascii));
        CHECK(clean(a.domain, sizeof(a.domain), a.domain_len, ascii));
        CHECK(clean(a.mailbox, sizeof(a.mailbox), a.mailbox_len, ascii));
        CHECK(!ascii || !(a.flags & SMTP_ADDR_UTF8));
        CHECK((flags & SMTP_ADDR_PARSE_NULL_OK) || !(a.flags & SMTP_ADDR_NULL));
        CHECK((flags & SMTP_ADDR_PARSE_POSTMASTER_OK) || !(a.flags & SMTP_ADDR_POSTMASTER));
        if (a.domain_len > 0 && !(a.flags & SMTP_ADDR_UTF8)) {
            bool lit;
            CHECK(smtp_addr_parse_domain(a.domain, a.domain_len, &lit) == 0);
            CHECK(lit == ((a.flags & SMTP_ADDR_LITERAL) != 0));
        }
    } else {
        CHECK(e != SMTP_ADDR_OK && used == 0);
        CHECK(e == SMTP_ADDR_ERR_SYNTAX || e == SMTP_ADDR_ERR_TOO_LONG || e == SMTP_ADDR_ERR_UTF8);
    }

    /* the domain checker on the raw bytes */
    bool lit = true;
    if (smtp_addr_parse_domain(s, len, &lit) == 0) {
        CHECK(len > 0 && len <= SMTP_ADDR_DOMAIN_MAX);
        CHECK(lit == (s[0] == '['));
        for (size_t i = 0; i < len; i++)
            CHECK((unsigned char)s[i] > 32 && (unsigned char)s[i] < 127);
    } else {
        CHECK(!lit);
    }
    free(t);
    free(s);
    return 0;
}
