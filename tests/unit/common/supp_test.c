/*
 * supp_test - the suppression list's shared pieces (common/supp.c): addresses and tenants, the keyed hash,
 * the snapshot file (round trip, every refusal, a view that reloads and keeps the last good one), import
 * lines (CSV quoting, JSONL, refusals) and the export forms parsing back
 */
#include "common/supp.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

static void test_addresses(void)
{
    char a[SUPP_ADDR_MAX + 1];
    CHECK(supp_norm_addr("User@Example.COM", 16, a) && strcmp(a, "user@example.com") == 0, "lower-cased: %s", a);
    CHECK(supp_norm_addr("\"a@b\"@x.org", 11, a), "a quoted local part with '@'");
    static const char *const bad[] = {"", "a", "@x.org", "user@", "us er@x.org", "a\r@x.org", "<a@x.org>", "ab"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!supp_norm_addr(bad[i], strlen(bad[i]), a), "refused: %s", bad[i]);
    char longa[400];
    memset(longa, 'a', sizeof(longa));
    memcpy(longa + 330, "@x.org", 7);
    CHECK(!supp_norm_addr(longa, strlen(longa), a), "longer than 320 bytes");
    CHECK(supp_valid_tenant("", 0) && supp_valid_tenant("acme-1.x_y", 10), "tenants");
    CHECK(!supp_valid_tenant("a/b", 3) && !supp_valid_tenant("a b", 3), "tenant refusals");
    char key[SUPP_KEY_MAX], t[SUPP_TENANT_MAX + 1];
    size_t kl = supp_key("acme", "u@x.org", key);
    CHECK(kl == 12 && supp_key_split(key, kl, t, a) && strcmp(t, "acme") == 0 && strcmp(a, "u@x.org") == 0, "key");
    CHECK(!supp_key_split("nozero", 6, t, a), "a key without its NUL");
}

static void test_hash(void)
{
    uint8_t k1[16] = {1}, k2[16] = {2};
    struct supp_hasher *h1 = supp_hasher_new(k1), *h2 = supp_hasher_new(k2);
    uint64_t a = supp_hasher_hash(h1, "", "u@x.org");
    CHECK(a == supp_hasher_hash(h1, "", "u@x.org"), "stable");
    CHECK(a != supp_hasher_hash(h2, "", "u@x.org"), "keyed");
    CHECK(a != supp_hasher_hash(h1, "t", "u@x.org"), "the tenant counts");
    /* "" + "tu@x.org" and "t" + "u@x.org" differ by the NUL between tenant and address */
    CHECK(supp_hasher_hash(h1, "", "tu@x.org") != supp_hasher_hash(h1, "t", "u@x.org"), "no ambiguity");
    supp_hasher_free(h1);
    supp_hasher_free(h2);
}

static void test_snapshot(void)
{
    uint8_t key[16] = {9, 8, 7};
    uint64_t h[] = {3, 10, 99, UINT64_MAX};
    struct buf b = {0};
    struct supp_snap s;
    const char *why = NULL;
    supp_snap_encode(key, h, 4, &b);
    CHECK(b.len == 72 + 32, "size %zu", b.len);
    CHECK(supp_snap_parse(b.data, b.len, &s, &why) == 0, "parse: %s", why);
    CHECK(s.n == 4 && supp_snap_has(&s, 99) && supp_snap_has(&s, UINT64_MAX) && !supp_snap_has(&s, 4) &&
              !supp_snap_has(&s, 0),
          "lookups");
    supp_snap_fini(&s);
    /* every refusal: short, magic, count/size, checksum, order */
    CHECK(supp_snap_parse(b.data, 71, &s, &why) == -EINVAL, "short");
    struct buf c = {0};
    buf_append(&c, b.data, b.len);
    c.data[0] ^= 1;
    CHECK(supp_snap_parse(c.data, c.len, &s, &why) == -EINVAL && strstr(why, "version 1"), "magic");
    CHECK(supp_snap_parse(b.data, b.len - 8, &s, &why) == -EINVAL && strstr(why, "size"), "count");
    c.len = 0;
    buf_append(&c, b.data, b.len);
    c.data[c.len - 1] ^= 1;
    CHECK(supp_snap_parse(c.data, c.len, &s, &why) == -EINVAL && strstr(why, "checksum"), "checksum");
    uint64_t unsorted[] = {5, 5};
    supp_snap_encode(key, unsorted, 2, &c);
    CHECK(supp_snap_parse(c.data, c.len, &s, &why) == -EINVAL && strstr(why, "order"), "duplicates");
    supp_snap_encode(key, NULL, 0, &c);
    CHECK(supp_snap_parse(c.data, c.len, &s, &why) == 0 && s.n == 0, "empty");
    supp_snap_fini(&s);

    /* the view: reload on change, the last good one kept when a new one is refused */
    char dir[] = "/tmp/supp_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[64];
    snprintf(path, sizeof(path), "%s/s.snap", dir);
    struct supp_view v;
    supp_view_init(&v, path);
    supp_view_refresh(&v, 1);
    CHECK(!supp_view_maybe(&v, NULL, "u@x.org"), "no file: nothing suppressed");
    struct supp_hasher *hs = supp_hasher_new(key);
    uint64_t two[] = {supp_hasher_hash(hs, "", "u@x.org"), supp_hasher_hash(hs, "acme", "t@x.org")};
    if (two[0] > two[1]) {
        uint64_t x = two[0];
        two[0] = two[1];
        two[1] = x;
    }
    supp_snap_encode(key, two, 2, &c);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(c.data, 1, c.len, f) == c.len, "write");
    fclose(f);
    supp_view_refresh(&v, 1 + SUPP_VIEW_CHECK_MS * 1000000ull); /* checks are at most every SUPP_VIEW_CHECK_MS */
    CHECK(supp_view_maybe(&v, NULL, "U@X.org"), "global entry, any case");
    CHECK(!supp_view_maybe(&v, NULL, "t@x.org") && supp_view_maybe(&v, "acme", "t@x.org"), "tenant entry");
    CHECK(!supp_view_maybe(&v, "other", "t@x.org"), "another tenant");
    f = fopen(path, "wb");
    CHECK(f && fwrite("garbage!", 1, 8, f) == 8, "write garbage");
    fclose(f);
    supp_view_refresh(&v, 1 + 2 * SUPP_VIEW_CHECK_MS * 1000000ull);
    CHECK(supp_view_maybe(&v, NULL, "u@x.org"), "a refused file keeps the last good one");
    supp_view_fini(&v);
    supp_hasher_free(hs);
    unlink(path);
    rmdir(dir);
    buf_fini(&b);
    buf_fini(&c);
}

static void test_lines(void)
{
    struct supp_entry e;
    const char *why = NULL;
    static const char csv[] = "\"\"\"q,l\"\"@X.org\",acme,complaint,\"src \"\"1\"\"\",10,20,30";
    CHECK(supp_fmt_line(false, false, csv, strlen(csv), &e, &why) == 1, "csv: %s", why ? why : "");
    CHECK(strcmp(e.addr, "\"q,l\"@x.org") == 0 && strcmp(e.tenant, "acme") == 0 && e.reason == SUPP_REASON_COMPLAINT &&
              strcmp(e.source, "src \"1\"") == 0 && e.first_seen == 10 && e.last_seen == 20 && e.expires == 30,
          "csv fields: %s|%s|%s", e.addr, e.tenant, e.source);
    struct buf b = {0};
    supp_fmt_csv(&e, &b);
    struct supp_entry back;
    CHECK(supp_fmt_line(false, false, (const char *)b.data, b.len - 1, &back, &why) == 1 &&
              strcmp(back.addr, e.addr) == 0 && strcmp(back.source, e.source) == 0,
          "csv round trip: %s", buf_cstr(&b));
    b.len = 0;
    supp_fmt_jsonl(&e, &b);
    CHECK(supp_fmt_line(true, false, (const char *)b.data, b.len - 1, &back, &why) == 1 && back.expires == 30,
          "jsonl round trip");
    buf_fini(&b);
    CHECK(supp_fmt_line(false, true, "address,tenant", 14, &e, &why) == 0, "header");
    CHECK(supp_fmt_line(false, true, "address@x.org", 13, &e, &why) == 1, "an address that starts with 'address'");
    CHECK(supp_fmt_line(false, false, "u@x.org", 7, &e, &why) == 1 && e.reason == SUPP_REASON_ADMIN, "address alone");
    CHECK(supp_fmt_line(false, false, "  # note", 8, &e, &why) == 0 && supp_fmt_line(false, false, "\r", 1, &e, &why) == 0,
          "comments and blank lines");
    static const char *const bad_csv[] = {"u@x.org,,nope", "u@x.org,a/b", "\"u@x.org", "u@x.org,,,,-1",
                                          "u@x.org,,,,,,,extra", "u\"@x.org"};
    for (size_t i = 0; i < sizeof(bad_csv) / sizeof(bad_csv[0]); i++)
        CHECK(supp_fmt_line(false, false, bad_csv[i], strlen(bad_csv[i]), &e, &why) == -EINVAL && why,
              "csv refused: %s", bad_csv[i]);
    static const char *const bad_json[] = {"{}", "[1]", "{\"address\":\"u@x.org\",\"x\":1}",
                                           "{\"address\":\"u@x.org\",\"expires\":-1}", "{\"address\":7}", "nope"};
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
        CHECK(supp_fmt_line(true, false, bad_json[i], strlen(bad_json[i]), &e, &why) == -EINVAL && why,
              "jsonl refused: %s", bad_json[i]);
}

int main(void)
{
    test_addresses();
    test_hash();
    test_snapshot();
    test_lines();
    CHECK_EXIT();
}
