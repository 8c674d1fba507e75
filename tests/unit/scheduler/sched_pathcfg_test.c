/*
 * sched_pathcfg_test - path configuration ids: found by (source, site) after any mix of puts and forgets
 * (the index's backward-shift deletion), a forgotten id reused before a new one is numbered, and the reused
 * id's generation moves on when its run differs (a worker holding the old one would be sent the new one)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_path.h"
#include "scheduler/sched_pathcfg.h"
#include "scheduler/scheduler.h"
#include "tests/lib/check.h"

/* sched_pathcfg.c sends through scheduler_main.c's outbox; this test never sends (no DELIVER) */
void scheduler_send(struct scheduler *sc, unsigned to, struct proto_rec *rec)
{
    (void)sc;
    (void)to;
    (void)rec;
    FAIL("a path configuration was sent");
}

#define N 3000

static void cfg_of(struct proto_path *p, uint64_t connect_ms)
{
    proto_path_node_defaults(p, connect_ms, 300000, 300000, 600000, 60000, 25, 1000);
}

int main(void)
{
    struct scheduler sc = {.pathcfg = sched_pathcfg_new()};
    struct proto_path p;
    char site[32];
    static uint32_t id[N], gen[N];
    static bool gone[N];

    for (int i = 0; i < N; i++) {
        snprintf(site, sizeof(site), "mx%d.example", i);
        cfg_of(&p, 1000 + (uint64_t)i);
        CHECK(sched_pathcfg_put(&sc, (uint16_t)(i % 3), site, &p) == 0, "put %d", i);
        id[i] = sched_pathcfg_lookup(sc.pathcfg, (uint16_t)(i % 3), site, &gen[i]);
        CHECK(id[i] == (uint32_t)i + 1 && gen[i] == 1, "id %u gen %u for %d", id[i], gen[i], i);
    }
    /* forget every third, then every one is found or not as it should be: the index stays whole */
    unsigned forgotten = 0;
    for (int i = 0; i < N; i += 3) {
        snprintf(site, sizeof(site), "mx%d.example", i);
        sched_pathcfg_forget(&sc, (uint16_t)(i % 3), site);
        gone[i] = true;
        forgotten++;
    }
    for (int i = 0; i < N; i++) {
        uint32_t g;
        snprintf(site, sizeof(site), "mx%d.example", i);
        uint32_t got = sched_pathcfg_lookup(sc.pathcfg, (uint16_t)(i % 3), site, &g);
        CHECK(got == (gone[i] ? 0 : id[i]), "lookup %d: %u (forgotten %d)", i, got, gone[i]);
    }
    /* new paths take the forgotten ids, all of them, before a new id is numbered */
    uint32_t max_id = 0;
    for (unsigned k = 0; k < forgotten + 1; k++) {
        uint32_t g;
        snprintf(site, sizeof(site), "new%u.example", k);
        cfg_of(&p, 77);
        CHECK(sched_pathcfg_put(&sc, 1, site, &p) == 0, "put new %u", k);
        uint32_t got = sched_pathcfg_lookup(sc.pathcfg, 1, site, &g);
        if (k < forgotten) {
            CHECK(got >= 1 && got <= N && (got - 1) % 3 == 0, "new %u got id %u: not a forgotten one", k, got);
            CHECK(g == 2, "reused id %u: generation %u, not moved on from 1", got, g);
        } else {
            CHECK(got == N + 1, "once the forgotten ids are used, the next is new: %u", got);
        }
        max_id = got > max_id ? got : max_id;
    }
    CHECK(max_id == N + 1, "ids used: %u", max_id);
    /* the survivors are untouched */
    for (int i = 1; i < N; i += 3) {
        uint32_t g;
        snprintf(site, sizeof(site), "mx%d.example", i);
        CHECK(sched_pathcfg_lookup(sc.pathcfg, (uint16_t)(i % 3), site, &g) == id[i] && g == 1, "survivor %d", i);
    }
    sched_pathcfg_free(sc.pathcfg);
    CHECK_EXIT();
}
