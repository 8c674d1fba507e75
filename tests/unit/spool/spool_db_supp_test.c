/*
 * spool_db_supp_test - the suppression list's column family (spool/spool_db_supp.c): puts and deletes ride a
 * batch (nothing visible before its commit, a batch of only entries is committed, not skipped), reads, scans in
 * key order from a cursor with a maximum and an early stop, and the entries after a close and reopen (the list
 * survives a restart). The rules on top (spool_supp.c) are covered end to end by tests/e2e/suppression_test.py.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "common/supp.h"
#include "spool/spool_db.h"
#include "tests/lib/check.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

struct seen {
    size_t n;
    char keys[16][SUPP_KEY_MAX + 1];
    size_t stop_at; /* 0: never */
};

static int on_entry(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct seen *s = arg;
    (void)val;
    (void)vlen;
    if (s->n < 16) {
        char t[SUPP_TENANT_MAX + 1], a[SUPP_ADDR_MAX + 1];
        CHECK(supp_key_split(key, klen, t, a), "a stored key splits");
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s/%s", t, a);
    }
    s->n++;
    return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static void put(struct spool_db_batch *b, const char *tenant, const char *addr, const char *val)
{
    char key[SUPP_KEY_MAX];
    size_t kl = supp_key(tenant, addr, key);
    CHECK(spool_db_batch_supp_put(b, key, kl, val, strlen(val)) == 0, "put %s", addr);
}

int main(void)
{
    char dir[] = "/tmp/spool_db_supp_test.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    struct spool_db *db = NULL;
    char *err = NULL;
    if (spool_db_open(dir, NULL, &db, &err) < 0) {
        printf("open: %s\n", err ? err : "?");
        return 1;
    }
    struct spool_db_batch *b = spool_db_batch_new(db);
    put(b, "", "b@x.org", "{\"v\":2}");
    put(b, "", "a@x.org", "{\"v\":1}");
    put(b, "acme", "a@x.org", "{\"v\":3}");
    put(b, "", "c@x.org", "{\"v\":4}");
    char key[SUPP_KEY_MAX];
    struct buf v = {0};
    size_t kl = supp_key("", "a@x.org", key);
    CHECK(spool_db_supp_get(db, key, kl, &v) == -ENOENT, "not visible before the commit");
    CHECK(spool_db_batch_count(b) == 0, "entries are not messages");
    CHECK(spool_db_commit(db, b) == 0, "commit");
    CHECK(spool_db_supp_get(db, key, kl, &v) == 0 && v.len == 7 && memcmp(v.data, "{\"v\":1}", 7) == 0,
          "committed: a batch of entries alone is written");
    spool_db_batch_reset(b);

    struct seen s = {0};
    CHECK(spool_db_supp_scan(db, NULL, 0, 100, on_entry, &s) == 4, "scan all");
    CHECK(s.n == 4 && !strcmp(s.keys[0], "/a@x.org") && !strcmp(s.keys[1], "/b@x.org") &&
              !strcmp(s.keys[2], "/c@x.org") && !strcmp(s.keys[3], "acme/a@x.org"),
          "key order: global first, then by tenant: %s %s %s %s", s.keys[0], s.keys[1], s.keys[2], s.keys[3]);
    memset(&s, 0, sizeof(s));
    kl = supp_key("", "a@x.org", key);
    CHECK(spool_db_supp_scan(db, key, kl, 2, on_entry, &s) == 2 && !strcmp(s.keys[0], "/b@x.org") &&
              !strcmp(s.keys[1], "/c@x.org"),
          "after a cursor, at most max");
    memset(&s, 0, sizeof(s));
    kl = supp_key("", "bb@x.org", key); /* a cursor that is not a key: the next one after it */
    CHECK(spool_db_supp_scan(db, key, kl, 100, on_entry, &s) == 2 && !strcmp(s.keys[0], "/c@x.org"),
          "after a cursor that is not stored");
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    CHECK(spool_db_supp_scan(db, NULL, 0, 100, on_entry, &s) == 7, "an early stop returns fn's value");

    kl = supp_key("", "b@x.org", key);
    CHECK(spool_db_batch_supp_del(b, key, kl) == 0 && spool_db_commit(db, b) == 0, "delete");
    spool_db_batch_reset(b);
    CHECK(spool_db_supp_get(db, key, kl, &v) == -ENOENT, "deleted");
    CHECK(spool_db_batch_supp_put(b, key, 0, "x", 1) == -EINVAL, "an empty key is refused");
    spool_db_batch_free(b);
    spool_db_close(db);

    /* the list after a restart */
    db = NULL;
    CHECK(spool_db_open(dir, NULL, &db, &err) == 0, "reopen");
    memset(&s, 0, sizeof(s));
    CHECK(db && spool_db_supp_scan(db, NULL, 0, 100, on_entry, &s) == 3, "three entries after a reopen");
    spool_db_close(db);
    buf_fini(&v);
    free(err);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    CHECK_EXIT();
}
