/*
 * spool_dsn_limit_test - DSNs per message and per address (spool/spool_dsn_limit.c): the message's count
 * from its envelope, the address's count in its window, case folded, a new window, no limit at 0
 *
 * Exit 0 pass, 1 fail.
 */
#include "spool/spool_dsn_limit.h"

#include "tests/lib/check.h"

#define S 1000000000ull

static void test_meta(void)
{
    struct proto_env_meta m[2] = {{"queue", "q"}, {SPOOL_DSN_META, "7"}};
    struct proto_env rec = {.meta_count = 2, .meta = m};
    CHECK(spool_dsn_meta(&rec) == 7, "dsn_sent 7");
    m[1].value = "x7";
    CHECK(spool_dsn_meta(&rec) == 0, "not a number: 0");
    m[1].value = "99999999999";
    CHECK(spool_dsn_meta(&rec) == 0, "over 32 bits: 0");
    rec.meta_count = 1;
    CHECK(spool_dsn_meta(&rec) == 0, "absent: 0");
}

static void test_limits(void)
{
    struct spool_dsn_limit l = {0};
    /* per message: 2 sent already with a limit of 2 */
    CHECK(!spool_dsn_admit(&l, "a@x", 2, 2, 0, 3600 * S, 10 * S), "third DSN of one message refused");
    CHECK(spool_dsn_admit(&l, "a@x", 1, 2, 0, 3600 * S, 10 * S), "second DSN of one message admitted");
    CHECK(spool_dsn_admit(&l, "a@x", 100, 0, 0, 3600 * S, 10 * S), "0: no per-message limit");
    /* per sender: 3 in the window, case folded */
    CHECK(spool_dsn_admit(&l, "v@x.test", 0, 0, 3, 3600 * S, 10 * S), "1st");
    CHECK(spool_dsn_admit(&l, "V@X.TEST", 0, 0, 3, 3600 * S, 11 * S), "2nd (other case)");
    CHECK(spool_dsn_admit(&l, "v@x.test", 0, 0, 3, 3600 * S, 12 * S), "3rd");
    CHECK(!spool_dsn_admit(&l, "v@x.test", 0, 0, 3, 3600 * S, 13 * S), "4th refused");
    CHECK(!spool_dsn_admit(&l, "v@x.test", 0, 0, 3, 3600 * S, 14 * S), "5th refused");
    CHECK(spool_dsn_admit(&l, "other@x.test", 0, 0, 3, 3600 * S, 14 * S), "another address has its own count");
    CHECK(spool_dsn_admit(&l, "v@x.test", 0, 0, 3, 3600 * S, 3611 * S), "a new window");
    CHECK(l.suppressed == 3, "suppressed %llu", (unsigned long long)l.suppressed);
    spool_dsn_limit_fini(&l);
}

int main(void)
{
    test_meta();
    test_limits();
    CHECK_EXIT();
}
