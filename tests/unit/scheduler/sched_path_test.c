/*
 * sched_path_test - the egress path throttles of the scheduler core, on a simulated clock
 *
 * connection_limit never exceeded; a named connection limit shared by the sites of one provider
 * caps their sum and hands a freed slot to the path that waited; max_message_rate and
 * max_connection_rate hand out exactly on the GCRA schedule, with sched_core_next_due() naming the
 * very next allowed moment; source_selection_rate (own and named) skips a warming source and sends a
 * message back to the wheel when every source is over; consecutive connection failures delay the
 * ready queue; sched_path_options_set() raising and lowering limits and rates on a live path.
 * Every case ends with sched_core_check().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched_limit.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"
#include "tests/unit/scheduler/sched_harness.h"

/* ready_on - n messages of queue/domain, READY on the domain's site at T0 */
static void ready_on(struct sched_core *c, uint64_t first, int n, const char *domain, const char *site)
{
    for (int i = 0; i < n; i++)
        add(c, first + (uint64_t)i, domain, domain, T0);
    sched_core_advance(c, T0);
    CHECK(sched_site_resolved(c, domain, site, 3600, T0) == 0, "resolve %s", domain);
}

/* answer - every delivery from index *from on gets `out` at now */
static void answer(struct sched_core *c, struct rec *r, int *from, enum sched_outcome out, uint64_t now)
{
    for (; *from < r->ndel; (*from)++)
        CHECK(sched_msg_result(c, r->del[*from].msg, out, now) == 0, "result %d", *from);
}

/* ---- connection limits ---- */

static void test_connection_limit_3(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 3;
    r.popt.max_deliveries_per_connection = 2;
    ready_on(c, 0, 40, "example.com", "site");
    sched_worker_add(c, 0);
    sched_worker_add(c, 1);
    struct sched_path *p = c->paths[0];
    int answered = 0;
    uint32_t most = 0;
    for (int round = 0; round < 60 && stats(c).messages > 0; round++) {
        sched_core_dispatch(c, 100);
        if (p->connections > most)
            most = p->connections;
        CHECK(c->leases_live <= 3, "round %d: %u leases", round, c->leases_live);
        /* answer some, release an idle lease now and then: the next round may open again */
        answer(c, &r, &answered, round % 3 ? SCHED_OUTCOME_DELIVERED : SCHED_OUTCOME_BOUNCED, T0);
        if (round % 4 == 1 && p->idle_head)
            sched_lease_released(c, p->idle_head, false, T0);
        check_core(c, "connection_limit 3");
    }
    CHECK(most == 3 && stats(c).messages == 0, "used %u connections, %llu left", most,
          (unsigned long long)stats(c).messages);
    sched_core_free(c);
}

static void provider_limit(struct rec *r, const char *source, const char *site, struct sched_path_options *o)
{
    o->n_limits = 1;
    o->limits[0] = (struct sched_named_limit){ "shaping-provider-yahoo-unspecified-limit", 4 };
}

static void test_named_limit_shared(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 10;
    r.path_cb = provider_limit;
    ready_on(c, 0, 20, "yahoo.com", "mta5.am0.yahoodns.net");
    ready_on(c, 100, 20, "aol.com", "mx-aol.mail.gm0.yahoodns.net");
    CHECK(c->npaths == 2, "two sites, two paths");
    struct sched_path *a = c->paths[0], *b = c->paths[1];
    const struct sched_named *nl = sched_limit_find(c, SCHED_NAMED_LIMIT, "shaping-provider-yahoo-unspecified-limit");
    CHECK(nl && nl->paths == 2 && nl->limit == 4, "one limit shared by both paths");
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 4, "four connections over both sites");
    CHECK(a->connections + b->connections == 4 && nl->connections == 4, "sum %u + %u", a->connections,
          b->connections);
    CHECK(b->waiting_on == nl && !b->active, "the other site waits on the limit");
    /* results keep the leases (idle, reused): still four */
    int answered = 0;
    answer(c, &r, &answered, SCHED_OUTCOME_DELIVERED, T0);
    CHECK(sched_core_dispatch(c, 100) == 4, "the idle leases carry four more");
    CHECK(a->connections + b->connections == 4, "still four");
    answer(c, &r, &answered, SCHED_OUTCOME_DELIVERED, T0);
    check_core(c, "shared limit");
    /* a lease of the first site closes: the slot goes to the site that waited */
    uint32_t b_before = b->connections;
    sched_lease_released(c, a->idle_head, false, T0);
    CHECK(sched_core_dispatch(c, 100) >= 1, "dispatch after the close");
    CHECK(b->connections == b_before + 1 && a->connections + b->connections == 4, "the waiter got it: %u + %u",
          a->connections, b->connections);
    answer(c, &r, &answered, SCHED_OUTCOME_DELIVERED, T0);
    check_core(c, "slot handed over");
    /* raising the limit through one path raises it for both (last writer wins), at once */
    struct sched_path_options o = a->opt;
    o.limits[0].limit = 6;
    sched_path_options_set(c, a, &o);
    CHECK(nl->limit == 6, "limit raised");
    sched_core_dispatch(c, 100);
    CHECK(a->connections + b->connections == 6, "two more at once: %u + %u", a->connections, b->connections);
    answer(c, &r, &answered, SCHED_OUTCOME_DELIVERED, T0);
    /* lowering: open leases drain, none opens until the sum is under the limit */
    o.limits[0].limit = 2;
    sched_path_options_set(c, a, &o);
    for (int i = 0; i < 3; i++) {
        struct sched_path *p = a->idle_head ? a : b;
        sched_lease_released(c, p->idle_head, false, T0);
        sched_core_dispatch(c, 100);
        answer(c, &r, &answered, SCHED_OUTCOME_DELIVERED, T0);
        CHECK(a->connections + b->connections == (uint32_t)(5 - i), "draining: %u", a->connections + b->connections);
    }
    check_core(c, "lowered");
    /* a path that stops naming the limit takes its connections out of it */
    o.n_limits = 0;
    sched_path_options_set(c, a, &o);
    CHECK(nl->connections == b->connections && nl->paths == 1, "a left the limit");
    check_core(c, "left the limit");
    sched_core_free(c);
}

/* ---- rates ---- */

/* run - dispatch, answer at once, sleep until next_due, until `n` were handed out; at[] their times;
 * also checks that next_due is exactly the moment the next message goes */
static int run(struct sched_core *c, struct rec *r, int n, uint64_t *at, enum sched_outcome out)
{
    uint64_t now = T0;
    int answered = r->ndel, got = 0;
    for (int steps = 0; got < n && steps < 10 * n; steps++) {
        sched_core_advance(c, now);
        size_t k = sched_core_dispatch(c, 1000);
        for (size_t i = 0; i < k; i++)
            at[got++] = now;
        answer(c, r, &answered, out, now);
        if (c->active_head)
            continue; /* the answers freed leases: the loop dispatches again before it sleeps */
        uint64_t nd = sched_core_next_due(c);
        if (nd == SCHED_TIMER_NEVER)
            break;
        CHECK(nd > now, "next_due %+lld not after now %+lld", (long long)(nd - T0), (long long)(now - T0));
        now = nd;
    }
    return got;
}

static void test_message_rate(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 5;
    r.popt.max_message_rate = (struct sched_rate){ 10, 1000, 0 }; /* "10/s" */
    ready_on(c, 0, 60, "example.com", "site");
    sched_worker_add(c, 0);
    static uint64_t at[64];
    CHECK(run(c, &r, 60, at, SCHED_OUTCOME_DELIVERED) == 60, "all handed out");
    /* GCRA: ten at once, then exactly one per 100 ms; each wake-up hands out one */
    for (int i = 0; i < 60; i++) {
        uint64_t want = T0 + (i < 10 ? 0 : (uint64_t)(i - 9) * 100);
        CHECK(at[i] == want, "message %d at %+lld, want %+lld", i, (long long)(at[i] - T0), (long long)(want - T0));
    }
    struct sched_path *p = c->paths[0];
    CHECK(p->throttle_waits == 50, "held 50 times, got %llu", (unsigned long long)p->throttle_waits);
    CHECK(stats(c).delivered == 60 && stats(c).transient == 0, "delivered");
    check_core(c, "message rate");
    sched_core_free(c);
}

static void test_next_due_exact(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.max_message_rate = (struct sched_rate){ 3, 1000, 1 }; /* "3/s,max_burst=1" */
    ready_on(c, 0, 3, "example.com", "site");
    sched_worker_add(c, 0);
    struct sched_path *p = c->paths[0];
    CHECK(sched_core_dispatch(c, 100) == 1, "one");
    CHECK(p->throttled_until_ms == T0 + 334 && sched_core_next_due(c) == T0 + 334, "held until %+lld, next %+lld",
          (long long)(p->throttled_until_ms - T0), (long long)(sched_core_next_due(c) - T0));
    CHECK(!p->active && sched_core_dispatch(c, 100) == 0, "held: off the active list");
    sched_core_advance(c, T0 + 333);
    CHECK(sched_core_dispatch(c, 100) == 0, "not a ms early");
    sched_core_advance(c, T0 + 334);
    CHECK(p->throttled_until_ms == 0 && sched_core_dispatch(c, 100) == 1, "at the moment");
    /* taken at 334 (allowed from 333.33): the next is 333.33 later, 667.33, so 668 */
    CHECK(sched_core_next_due(c) == T0 + 668, "next at %+lld", (long long)(sched_core_next_due(c) - T0));
    check_core(c, "exact");
    sched_core_free(c);
}

static void test_connection_rate(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 10;
    r.popt.max_deliveries_per_connection = 1; /* every message opens a lease */
    r.popt.max_connection_rate = (struct sched_rate){ 2, 1000, 0 }; /* "2/s" */
    ready_on(c, 0, 12, "example.com", "site");
    sched_worker_add(c, 0);
    static uint64_t at[16];
    CHECK(run(c, &r, 12, at, SCHED_OUTCOME_DELIVERED) == 12, "all handed out");
    for (int i = 0; i < 12; i++) {
        uint64_t want = T0 + (i < 2 ? 0 : (uint64_t)(i - 1) * 500);
        CHECK(at[i] == want, "lease %d at %+lld, want %+lld", i, (long long)(at[i] - T0), (long long)(want - T0));
    }
    sched_core_free(c);

    /* reuse does not count: with long-lived leases the connection rate does not slow messages */
    c = core_new(&r);
    r.popt.connection_limit = 1;
    r.popt.max_connection_rate = (struct sched_rate){ 1, 60000, 0 };
    ready_on(c, 0, 5, "example.com", "site");
    sched_worker_add(c, 0);
    CHECK(run(c, &r, 5, at, SCHED_OUTCOME_DELIVERED) == 5 && at[4] == T0, "five on one lease at once");
    check_core(c, "connection rate");
    sched_core_free(c);
}

/* two named throttles and the path's own rate: a message needs all three, counted once each */
static void named_throttles(struct rec *r, const char *source, const char *site, struct sched_path_options *o)
{
    o->n_throttles = 2;
    o->throttles[0] = (struct sched_named_rate){ "provider-rate", { 4, 1000, 0 } };
    o->throttles[1] = (struct sched_named_rate){ "provider-rate", { 4, 1000, 0 } }; /* named twice: once */
    if (strcmp(site, "site-b") == 0)
        o->throttles[1] = (struct sched_named_rate){ "b-only", { 100, 1000, 0 } };
}

static void test_named_throttle(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.path_cb = named_throttles;
    ready_on(c, 0, 10, "a.example", "site-a");
    ready_on(c, 100, 10, "b.example", "site-b");
    sched_worker_add(c, 0);
    static uint64_t at[32];
    CHECK(run(c, &r, 20, at, SCHED_OUTCOME_DELIVERED) == 20, "all handed out");
    /* 4/s over both sites together: four at once, then one per 250 ms */
    for (int i = 0; i < 20; i++) {
        uint64_t want = T0 + (i < 4 ? 0 : (uint64_t)(i - 3) * 250);
        CHECK(at[i] == want, "message %d at %+lld, want %+lld", i, (long long)(at[i] - T0), (long long)(want - T0));
    }
    CHECK(c->paths[0]->opt.n_throttles == 1 && c->paths[1]->opt.n_throttles == 2, "deduplicated");
    check_core(c, "named throttle");
    sched_core_free(c);
}

/* ---- source selection ---- */

static uint32_t warm_src;

static void warming(struct rec *r, const char *source, const char *site, struct sched_path_options *o)
{
    if (strcmp(source, "ip-warm") == 0)
        o->source_selection_rate = (struct sched_rate){ 2, 1000, 0 };
    else if (strcmp(source, "ip-named") == 0) {
        o->n_source_rates = 1;
        o->source_rates[0] = (struct sched_named_rate){ "warmup-ip-named", { 1, 1000, 1 } };
    }
}

static uint32_t ready_of(struct sched_core *c, uint32_t src, const char *site)
{
    struct sched_path *p = sched_path_find(c, c->sources[src], site);
    return p ? p->ready.count : 0;
}

static void test_source_selection(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.path_cb = warming;
    warm_src = sched_core_source_add(c, "ip-warm");
    uint32_t cold = sched_core_source_add(c, "ip-cold");
    uint32_t pool = sched_core_pool_add(c, "bulk");
    sched_core_pool_weight(c, pool, warm_src, 1);
    sched_core_pool_weight(c, pool, cold, 1);
    r.qcfg.pool = pool;
    ready_on(c, 0, 20, "example.com", "site");
    /* 1:1 would be 10:10; the warming source is picked twice (its burst), the rest go cold */
    CHECK(ready_of(c, warm_src, "site") == 2 && ready_of(c, cold, "site") == 18, "warm %u cold %u",
          ready_of(c, warm_src, "site"), ready_of(c, cold, "site"));
    CHECK(sched_path_find(c, "ip-warm", "site")->source_skips == 17, "skips %llu",
          (unsigned long long)sched_path_find(c, "ip-warm", "site")->source_skips);
    CHECK(stats(c).source_held == 0, "nothing waited");
    check_core(c, "warming skipped");
    sched_core_free(c);

    /* every source over: messages wait in the wheel until the first moment one allows, no attempt */
    c = core_new(&r);
    r.path_cb = warming;
    uint32_t named = sched_core_source_add(c, "ip-named");
    warm_src = sched_core_source_add(c, "ip-warm");
    pool = sched_core_pool_add(c, "warm");
    sched_core_pool_weight(c, pool, named, 1);
    sched_core_pool_weight(c, pool, warm_src, 1);
    r.qcfg.pool = pool;
    ready_on(c, 0, 6, "example.com", "site");
    CHECK(ready_of(c, named, "site") == 1 && ready_of(c, warm_src, "site") == 2, "named %u warm %u",
          ready_of(c, named, "site"), ready_of(c, warm_src, "site"));
    struct sched_stats s = stats(c);
    CHECK(s.source_held == 3 && s.scheduled == 3, "three back to the wheel: %llu", (unsigned long long)s.source_held);
    CHECK(sched_core_next_due(c) <= T0 + 500, "the wheel's next_due is a lower bound");
    CHECK(sched_core_advance(c, T0 + 499) == 0, "not before");
    /* the first comes back at the moment; the other two a pick interval of the two sources
     * (1/s + 2/s: 333 ms) apart, not all at once */
    CHECK(sched_core_advance(c, T0 + 500) == 1, "one at the moment");
    CHECK(ready_of(c, warm_src, "site") == 3 && stats(c).scheduled == 2, "one more on ip-warm");
    CHECK(sched_core_advance(c, T0 + 832) == 0 && sched_core_advance(c, T0 + 833) == 1, "the next 333 ms later");
    for (uint64_t now = T0 + 833; stats(c).scheduled > 0 && now < T0 + 10000;) {
        now = sched_core_next_due(c);
        sched_core_advance(c, now);
    }
    CHECK(ready_of(c, named, "site") + ready_of(c, warm_src, "site") == 6, "all placed in the end");
    for (int i = 0; i < 6; i++) {
        struct sched_msg *m = sched_msg_find(c, mid((uint64_t)i));
        CHECK(m && m->attempts == 0, "message %d: no attempt counted", i);
    }
    /* the named source rate is shared by every site naming it */
    ready_on(c, 100, 1, "other.example", "site2");
    CHECK(sched_path_find(c, "ip-named", "site2")->source_skips == 1 && ready_of(c, warm_src, "site2") == 1,
          "the named rate spent on site holds on site2 too");
    check_core(c, "all sources over");
    sched_core_free(c);
}

/* ---- consecutive connection failures ---- */

static void test_consecutive_failures(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 1;
    r.popt.consecutive_connection_failures_before_delay = 3;
    ready_on(c, 0, 10, "example.com", "site");
    sched_worker_add(c, 0);
    struct sched_path *p = c->paths[0];
    /* fail - one connection attempt that fails: a transient result, then the close reported as an error */
    int done = 0;
    for (int i = 0; i < 2; i++) {
        CHECK(sched_core_dispatch(c, 10) == 1, "attempt %d", i);
        struct sched_lease *l = r.del[r.ndel - 1].lease;
        answer(c, &r, &done, SCHED_OUTCOME_TRANSIENT, T0);
        sched_lease_released(c, l, true, T0);
    }
    CHECK(p->consecutive_failures == 2, "two failures: %u", p->consecutive_failures);
    /* a delivery in between starts the count over */
    CHECK(sched_core_dispatch(c, 10) == 1, "third");
    answer(c, &r, &done, SCHED_OUTCOME_DELIVERED, T0);
    CHECK(p->consecutive_failures == 0, "reset by a delivery");
    sched_lease_released(c, p->idle_head, false, T0); /* a clean close counts nothing */
    CHECK(p->consecutive_failures == 0, "clean close");
    for (int i = 0; i < 3; i++) {
        CHECK(sched_core_dispatch(c, 10) == 1, "attempt %d", i);
        struct sched_lease *l = r.del[r.ndel - 1].lease;
        answer(c, &r, &done, SCHED_OUTCOME_TRANSIENT, T0 + 10);
        sched_lease_released(c, l, true, T0 + 10);
    }
    struct sched_stats s = stats(c);
    CHECK(p->consecutive_failures == 0 && p->failure_delays == 1 && s.failure_delays == 1, "delayed once");
    CHECK(p->ready.count == 0 && s.scheduled == 9, "the ready queue went back: ready %u, scheduled %llu",
          p->ready.count, (unsigned long long)s.scheduled);
    for (int i = 0; i < 10; i++) {
        struct sched_msg *m = sched_msg_find(c, mid((uint64_t)i));
        if (!m || m->attempts > 0)
            continue;
        /* never attempted: retry backoff for attempt 1 (60 s +-10%), attempts still 0 */
        CHECK(m->timer.due_ms >= T0 + 10 + 54000 && m->timer.due_ms <= T0 + 10 + 66000, "message %d due %+lld", i,
              (long long)(m->timer.due_ms - T0));
    }
    CHECK(sched_core_dispatch(c, 10) == 0, "nothing ready");
    check_core(c, "failure delay");
    sched_core_free(c);
}

/* ---- options on a live path ---- */

static void test_options_set(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.connection_limit = 2;
    ready_on(c, 0, 20, "example.com", "site");
    sched_worker_add(c, 0);
    CHECK(strcmp(r.path_domain, "example.com") == 0, "path_config names the domain: %s", r.path_domain);
    struct sched_path *p = c->paths[0];
    CHECK(sched_core_dispatch(c, 100) == 2, "two");
    struct sched_path_options o = p->opt;
    o.connection_limit = 4;
    sched_path_options_set(c, p, &o);
    CHECK(p->active && sched_core_dispatch(c, 100) == 2, "raised: two more at once");
    int done = 0;
    answer(c, &r, &done, SCHED_OUTCOME_DELIVERED, T0);
    o.connection_limit = 1;
    sched_path_options_set(c, p, &o);
    CHECK(sched_core_dispatch(c, 100) == 4, "the four open leases still carry");
    answer(c, &r, &done, SCHED_OUTCOME_DELIVERED, T0);
    for (int i = 0; i < 3; i++)
        sched_lease_released(c, p->idle_head, false, T0);
    CHECK(p->connections == 1 && sched_core_dispatch(c, 100) == 1 && p->connections == 1, "drained to one");
    answer(c, &r, &done, SCHED_OUTCOME_DELIVERED, T0);
    /* a rate: held, then lifted by a new rate at once */
    o.max_message_rate = (struct sched_rate){ 1, 60000, 1 };
    sched_path_options_set(c, p, &o);
    CHECK(sched_core_dispatch(c, 100) == 1 && sched_core_dispatch(c, 100) == 0, "one a minute");
    CHECK(sched_core_next_due(c) == T0 + 60000, "held for a minute");
    answer(c, &r, &done, SCHED_OUTCOME_DELIVERED, T0);
    o.max_message_rate = (struct sched_rate){ 100, 1000, 0 };
    sched_path_options_set(c, p, &o);
    CHECK(sched_core_dispatch(c, 100) == 0 && sched_core_next_due(c) == T0 + 10,
          "faster rate applies at once: one interval of it, not the minute: %+lld",
          (long long)(sched_core_next_due(c) - T0));
    sched_core_advance(c, T0 + 10);
    CHECK(sched_core_dispatch(c, 100) == 1, "then on");
    check_core(c, "options set");
    sched_core_free(c);
}

int main(void)
{
    test_connection_limit_3();
    test_named_limit_shared();
    test_message_rate();
    test_next_due_exact();
    test_connection_rate();
    test_named_throttle();
    test_source_selection();
    test_consecutive_failures();
    test_options_set();
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
