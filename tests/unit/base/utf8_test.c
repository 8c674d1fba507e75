/*
 * utf8_test - RFC 3629 section 4's table, byte by byte: boundaries, overlongs, surrogates, > U+10FFFF
 */
#include <string.h>

#include "base/utf8.h"
#include "tests/lib/check.h"

static const struct {
    const char *s;
    size_t len;      /* bytes of s */
    size_t seq;      /* utf8_seq_len of the first sequence */
} cases[] = {
    {"A", 1, 1},
    {"\x7f", 1, 1},
    {"\xc2\x80", 2, 2},             /* U+0080 */
    {"\xdf\xbf", 2, 2},             /* U+07FF */
    {"\xc0\xaf", 2, 0},             /* overlong '/' */
    {"\xc1\xbf", 2, 0},             /* overlong */
    {"\xe0\xa0\x80", 3, 3},         /* U+0800 */
    {"\xe0\x9f\xbf", 3, 0},         /* overlong */
    {"\xed\x9f\xbf", 3, 3},         /* U+D7FF */
    {"\xed\xa0\x80", 3, 0},         /* U+D800 surrogate */
    {"\xed\xbf\xbf", 3, 0},         /* U+DFFF surrogate */
    {"\xef\xbf\xbf", 3, 3},         /* U+FFFF */
    {"\xf0\x90\x80\x80", 4, 4},     /* U+10000 */
    {"\xf0\x8f\xbf\xbf", 4, 0},     /* overlong */
    {"\xf4\x8f\xbf\xbf", 4, 4},     /* U+10FFFF */
    {"\xf4\x90\x80\x80", 4, 0},     /* U+110000 */
    {"\xf5\x80\x80\x80", 4, 0},
    {"\x80", 1, 0},                 /* lone continuation */
    {"\xe2\x82", 2, 0},             /* truncated */
    {"\xe2\x28\xa1", 3, 0},         /* bad continuation */
    {"\xff", 1, 0},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *s = (const unsigned char *)cases[i].s;
        size_t got = utf8_seq_len(s, cases[i].len);
        CHECK(got == cases[i].seq, "case %zu: seq_len %zu, want %zu", i, got, cases[i].seq);
        CHECK(utf8_valid(s, cases[i].len) == (cases[i].seq == cases[i].len), "case %zu: valid", i);
    }
    CHECK(utf8_seq_len((const unsigned char *)"", 0) == 0, "empty input has no sequence");
    CHECK(utf8_valid("", 0), "empty string is valid");
    const char *mixed = "caf\xc3\xa9 \xe2\x82\xac ok \xed\xa0\x80 tail";
    CHECK(utf8_valid_prefix(mixed, strlen(mixed)) == 13, "prefix stops at the surrogate: %zu",
          utf8_valid_prefix(mixed, strlen(mixed)));
    CHECK(!utf8_valid(mixed, strlen(mixed)), "mixed is invalid");
    CHECK(utf8_valid("a\0b", 3), "NUL is well-formed UTF-8");
    CHECK_EXIT();
}
