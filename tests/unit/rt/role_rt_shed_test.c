/*
 * role_rt_shed_test - when a role drops its caches (role_rt_shed_due): at the turn to low memory, then every
 * ROLE_RT_SHED_EVERY_NS while it stays low (exhausted counts as low), never while ok, again at once after a
 * return to ok; a pressure word with any other value (a role may have written it) is ok
 */
#include <stdint.h>

#include "rt/role_rt.h"
#include "shm/shm_segment.h"
#include "tests/lib/check.h"

#define S 1000000000ull

int main(void)
{
    bool low = false;
    uint64_t last = 0;

    CHECK(!role_rt_shed_due(SHM_MEM_OK, 1 * S, &low, &last), "ok: nothing");
    CHECK(role_rt_shed_due(SHM_MEM_LOW, 2 * S, &low, &last), "turned low: shed at once");
    CHECK(low && last == 2 * S, "state kept");
    CHECK(!role_rt_shed_due(SHM_MEM_LOW, 2 * S + S / 5, &low, &last), "next tick: not again");
    CHECK(!role_rt_shed_due(SHM_MEM_EXHAUSTED, 2 * S + ROLE_RT_SHED_EVERY_NS - 1, &low, &last),
          "still inside the period");
    CHECK(role_rt_shed_due(SHM_MEM_EXHAUSTED, 2 * S + ROLE_RT_SHED_EVERY_NS, &low, &last),
          "exhausted, a period later: again");
    CHECK(!role_rt_shed_due(SHM_MEM_OK, 13 * S, &low, &last) && !low, "ok again");
    CHECK(role_rt_shed_due(SHM_MEM_LOW, 13 * S + S / 5, &low, &last), "low again: at once, whatever the period");
    CHECK(!role_rt_shed_due(7, 14 * S, &low, &last) && !low, "a word of another value is ok");
    CHECK(!role_rt_shed_due(UINT32_MAX, 15 * S, &low, &last), "and so is the largest");
    CHECK_EXIT();
}
