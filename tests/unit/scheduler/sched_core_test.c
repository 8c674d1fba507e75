/*
 * sched_core_test - the scheduler core's policy, case by case
 *
 * Queue and site names, backoff bounds, smooth weighted round robin shares and order,
 * max_ready overflow, connection_limit, lease reuse and max_deliveries_per_connection,
 * worker death, lease release, expiry, site resolution (cached, temporary and permanent
 * failure), administrative removal. Every case ends with sched_core_check(), which walks the
 * whole core and proves each message sits in exactly one place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "scheduler/sched_core.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_queue.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"
#include "tests/lib/check.h"
#include "tests/unit/scheduler/sched_harness.h"

/* ---- names ---- */

struct name_case {
    const char *campaign, *tenant, *domain, *routing;
    size_t size;
    int rc;
    const char *want;
};

static const struct name_case name_cases[] = {
    { "spring", "acme", "Gmail.COM", NULL, 256, 0, "spring:acme@gmail.com" },
    { NULL, "acme", "gmail.com", NULL, 256, 0, "acme@gmail.com" },
    { "spring", NULL, "gmail.com", NULL, 256, 0, "spring:@gmail.com" },
    { "", "", "gmail.com", "", 256, 0, "gmail.com" },
    { "Spring", "ACME", "example.com", "Smart.Host", 256, 0, "Spring:ACME@example.com!smart.host" },
    { NULL, "t", "example.com", "relay", 256, 0, "t@example.com!relay" },
    { NULL, NULL, "example.com", "relay", 256, 0, "example.com!relay" },
    { "c", "t", NULL, NULL, 256, -EINVAL, NULL },
    { "c", "t", "", NULL, 256, -EINVAL, NULL },
    { "c", "t", "example.com", NULL, 10, -ENAMETOOLONG, NULL },
    { NULL, NULL, "abc", NULL, 4, 0, "abc" },
    { NULL, NULL, "abcd", NULL, 4, -ENAMETOOLONG, NULL },
};

static void test_names(void)
{
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const struct name_case *nc = &name_cases[i];
        char buf[256];
        int rc = sched_queue_name_routed(buf, nc->size, nc->campaign, nc->tenant, nc->domain, nc->routing);
        CHECK(rc == nc->rc, "case %zu: rc %d, want %d", i, rc, nc->rc);
        if (rc == 0 && nc->want)
            CHECK(strcmp(buf, nc->want) == 0, "case %zu: \"%s\", want \"%s\"", i, buf, nc->want);
    }
    char buf[128];
    CHECK(sched_queue_name(buf, sizeof(buf), "c", "t", "D.example") == 0 && strcmp(buf, "c:t@d.example") == 0,
          "3-part form: %s", buf);
    const char *hosts[] = { "MX2.example.com.", "mx1.example.com", "mx2.example.com", "alt.Example.com" };
    CHECK(sched_site_name(buf, sizeof(buf), hosts, 4) == 0 &&
              strcmp(buf, "alt.example.com,mx1.example.com,mx2.example.com") == 0, "site name: %s", buf);
    const char *hosts2[] = { "mx1.example.com", "alt.example.com", "mx2.example.com" };
    char buf2[128];
    CHECK(sched_site_name(buf2, sizeof(buf2), hosts2, 3) == 0 && strcmp(buf, buf2) == 0,
          "same set, other order: %s vs %s", buf, buf2);
    CHECK(sched_site_name(buf, 8, hosts, 4) == -ENAMETOOLONG, "short buffer");
    CHECK(sched_site_name(buf, sizeof(buf), hosts, 0) == -EINVAL, "no hosts");
}

/* ---- backoff ---- */

struct backoff_case {
    uint32_t retry_s, max_s, attempts;
    uint64_t base_ms; /* before jitter */
};

static const struct backoff_case backoff_cases[] = {
    { 60, 3600, 1, 60000 },
    { 60, 3600, 2, 120000 },
    { 60, 3600, 3, 240000 },
    { 60, 3600, 6, 1920000 },
    { 60, 3600, 7, 3600000 },  /* 3840 s capped */
    { 60, 3600, 60, 3600000 }, /* no overflow far past the cap */
    { 1200, 0, 1, 1200000 },
    { 1200, 0, 4, 9600000 },
    { 1, 0, 40, UINT64_C(1000) << 39 }, /* uncapped, large but exact */
    { 10, 15, 2, 15000 },
};

static void test_backoff(void)
{
    uint64_t rng = 7;
    for (size_t i = 0; i < sizeof(backoff_cases) / sizeof(backoff_cases[0]); i++) {
        const struct backoff_case *bc = &backoff_cases[i];
        struct sched_queue_config cfg = { .retry_interval_s = bc->retry_s, .max_retry_interval_s = bc->max_s };
        uint64_t lo = bc->base_ms - bc->base_ms / 10, hi = bc->base_ms + bc->base_ms / 10;
        uint64_t cap = bc->max_s ? (uint64_t)bc->max_s * 1000 : UINT64_MAX;
        if (hi > cap)
            hi = cap;
        uint64_t seen_lo = UINT64_MAX, seen_hi = 0;
        for (int k = 0; k < 2000; k++) {
            uint64_t d = sched_msg_backoff_ms(&cfg, bc->attempts, &rng);
            CHECK(d >= lo && d <= hi, "case %zu: %llu outside [%llu, %llu]", i, (unsigned long long)d,
                  (unsigned long long)lo, (unsigned long long)hi);
            if (d < seen_lo)
                seen_lo = d;
            if (d > seen_hi)
                seen_hi = d;
        }
        /* the jitter really spreads: most of the window is used */
        CHECK(seen_lo < bc->base_ms - bc->base_ms / 20, "case %zu: jitter never went low", i);
        if (hi > bc->base_ms)
            CHECK(seen_hi > bc->base_ms + bc->base_ms / 20, "case %zu: jitter never went high", i);
    }
}

/* ---- pools ---- */

static void test_wrr(void)
{
    struct sched_pool p;
    sched_pool_init(&p, "p");
    CHECK(sched_pool_pick(&p) == -ENOENT, "empty pool picks");
    sched_pool_set(&p, 10, 3);
    sched_pool_set(&p, 20, 1);
    int64_t first[8];
    int a = 0, b = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t s = sched_pool_pick(&p);
        if (i < 8)
            first[i] = s;
        a += s == 10;
        b += s == 20;
    }
    CHECK(a == 750 && b == 250, "3:1 gave %d:%d", a, b);
    /* the smooth order: a a b a, repeated */
    const int64_t want[8] = { 10, 10, 20, 10, 10, 10, 20, 10 };
    for (int i = 0; i < 8; i++)
        CHECK(first[i] == want[i], "pick %d: %lld, want %lld", i, (long long)first[i], (long long)want[i]);
    /* 5:1:1 spreads exactly over every 7 picks */
    sched_pool_set(&p, 10, 5);
    sched_pool_set(&p, 30, 1);
    int n10 = 0, n20 = 0, n30 = 0, run = 0, maxrun = 0;
    const int64_t want7[7] = { 10, 10, 20, 10, 30, 10, 10 };
    for (int i = 0; i < 7000; i++) {
        int64_t s = sched_pool_pick(&p);
        if (i < 7)
            CHECK(s == want7[i], "5:1:1 pick %d: %lld, want %lld", i, (long long)s, (long long)want7[i]);
        n10 += s == 10;
        n20 += s == 20;
        n30 += s == 30;
        run = s == 10 ? run + 1 : 0;
        if (run > maxrun)
            maxrun = run;
    }
    CHECK(n10 == 5000 && n20 == 1000 && n30 == 1000, "5:1:1 gave %d:%d:%d", n10, n20, n30);
    CHECK(maxrun <= 4, "heavy member bunched: run of %d", maxrun); /* a a | a a across a cycle */
    CHECK(sched_pool_set(&p, 20, 0) == 0 && sched_pool_set(&p, 20, 0) == -ENOENT, "remove");
    for (int i = 0; i < 60; i++)
        CHECK(sched_pool_pick(&p) != 20, "removed member picked");
    sched_pool_fini(&p);

    /* through the core: a queue on a 3:1 pool spreads its messages over two paths */
    struct rec r;
    struct sched_core *c = core_new(&r);
    uint32_t s1 = sched_core_source_add(c, "ip1"), s2 = sched_core_source_add(c, "ip2");
    uint32_t pool = sched_core_pool_add(c, "bulk");
    CHECK(sched_core_pool_weight(c, pool, s1, 3) == 0 && sched_core_pool_weight(c, pool, s2, 1) == 0, "weights");
    CHECK(sched_core_pool_weight(c, 99, s1, 1) == -EINVAL, "bad pool");
    r.qcfg.pool = pool;
    for (int i = 0; i < 400; i++)
        add(c, (uint64_t)i, "q@example.com", "example.com", T0);
    sched_core_advance(c, T0);
    sched_site_resolved(c, "example.com", "mx.example.com", 300, T0);
    uint32_t ready[2] = { 0, 0 };
    for (uint32_t i = 0; i < c->npaths; i++)
        ready[c->paths[i]->source == s1 ? 0 : 1] += c->paths[i]->ready.count;
    CHECK(ready[0] == 300 && ready[1] == 100, "paths got %u:%u", ready[0], ready[1]);
    check_core(c, "wrr core");
    sched_core_free(c);
}

/* ---- ready queues, connections, leases ---- */

static void test_max_ready(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.popt.max_ready = 3;
    for (int i = 0; i < 5; i++)
        add(c, (uint64_t)i, "example.com", "Example.COM", T0);
    CHECK(sched_core_advance(c, T0) == 5, "five due");
    CHECK(r.nresolve == 1 && strcmp(r.resolved[0], "example.com") == 0, "one lowercased resolve, got %d",
          r.nresolve);
    CHECK(stats(c).resolving == 5, "waiting for the site");
    CHECK(sched_site_resolved(c, "EXAMPLE.com", "mx.example.com", 300, T0) == 0, "resolved");
    struct sched_stats s = stats(c);
    CHECK(s.ready == 3 && s.scheduled == 2 && s.ready_full == 2, "ready %llu scheduled %llu full %llu",
          (unsigned long long)s.ready, (unsigned long long)s.scheduled, (unsigned long long)s.ready_full);
    uint64_t nd = sched_core_next_due(c);
    CHECK(nd >= T0 + 1000 - 256 && nd <= T0 + 1100, "refused messages due after ~1 s, next_due %+lld",
          (long long)(nd - T0));
    CHECK(sched_core_advance(c, T0 + 999) == 0, "not before the delay");
    CHECK(sched_core_advance(c, T0 + 1100) == 2, "back after the delay");
    s = stats(c);
    CHECK(s.ready == 3 && s.scheduled == 2 && s.ready_full == 4, "still full: ready %llu", (unsigned long long)s.ready);
    CHECK(r.nresolve == 1, "cached site: no second resolve");
    check_core(c, "max_ready full");
    /* once there is room, they move on */
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 3, "three dispatched");
    for (int i = 0; i < r.ndel; i++)
        CHECK(sched_msg_result(c, r.del[i].msg, SCHED_OUTCOME_DELIVERED, T0 + 1200) == 0, "result");
    sched_core_advance(c, T0 + 2300);
    s = stats(c);
    CHECK(s.ready == 2 && s.scheduled == 0 && s.delivered == 3, "ready %llu", (unsigned long long)s.ready);
    check_core(c, "max_ready drained");
    sched_core_free(c);
}

/* one_site - a core whose n messages of example.com are due with their site resolved, under connection_limit
 * and max_deliveries_per_connection (0: the default) */
static struct sched_core *one_site(struct rec *r, int n, uint32_t connection_limit, uint32_t max_deliveries)
{
    struct sched_core *c = core_new(r);
    r->popt.connection_limit = connection_limit;
    if (max_deliveries)
        r->popt.max_deliveries_per_connection = max_deliveries;
    for (int i = 0; i < n; i++)
        add(c, (uint64_t)i, "example.com", "example.com", T0);
    sched_core_advance(c, T0);
    sched_site_resolved(c, "example.com", "site", 300, T0);
    return c;
}

static void test_connection_limit(void)
{
    struct rec r;
    struct sched_core *c = one_site(&r, 10, 2, 0);
    CHECK(sched_core_dispatch(c, 100) == 0, "no worker, no dispatch");
    sched_worker_add(c, 0);
    sched_worker_add(c, 1);
    sched_worker_add(c, 1); /* idempotent */
    CHECK(c->workers_alive == 2, "two workers");
    CHECK(sched_core_dispatch(c, 100) == 2, "only connection_limit leases");
    CHECK(r.ndel == 2 && r.del[0].worker != r.del[1].worker, "spread over the least loaded workers");
    CHECK(r.del[0].lease != r.del[1].lease, "two leases");
    CHECK(sched_core_dispatch(c, 100) == 0, "no free slot");
    struct sched_path *p = r.del[0].lease->path;
    CHECK(p->connections == 2 && p->in_flight == 2 && p->ready.count == 8, "path counters");
    /* a result frees the lease for the next message: connection reuse, no new lease */
    CHECK(sched_msg_result(c, r.del[0].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    CHECK(sched_core_dispatch(c, 100) == 1, "one more on the idle lease");
    CHECK(r.del[2].lease == r.del[0].lease && r.del[2].lease_gen == r.del[0].lease_gen, "same lease reused");
    CHECK(p->connections == 2, "still two connections");
    /* max bounds a dispatch call */
    CHECK(sched_msg_result(c, r.del[1].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    CHECK(sched_msg_result(c, r.del[2].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    CHECK(sched_core_dispatch(c, 1) == 1, "max 1");
    CHECK(sched_core_dispatch(c, 100) == 1, "the other slot");
    /* lowering the limit lets open leases drain without new ones */
    struct sched_path_options o = p->opt;
    o.connection_limit = 1;
    sched_path_options_set(c, p, &o);
    sched_msg_result(c, r.del[3].msg, SCHED_OUTCOME_DELIVERED, T0);
    sched_msg_result(c, r.del[4].msg, SCHED_OUTCOME_DELIVERED, T0);
    CHECK(sched_lease_get(c, r.del[3].lease_id, r.del[3].lease_gen) != NULL, "idle lease kept");
    sched_lease_released(c, r.del[3].lease, false, T0);
    CHECK(sched_lease_get(c, r.del[3].lease_id, r.del[3].lease_gen) == NULL, "released lease is stale");
    CHECK(p->connections == 1, "one connection left");
    CHECK(sched_core_dispatch(c, 100) == 1, "one slot under the lowered limit");
    check_core(c, "connection limit");
    sched_core_free(c);
}

/* a LEASE_CLOSED that crossed a DELIVER on the same lease must not end it: the message stays in flight on it,
 * no other message gets the slot, and the attempt's result still finds its lease */
static void test_lease_closed_crossing_deliver(void)
{
    struct rec r;
    struct sched_core *c = one_site(&r, 3, 1, 0);
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 1, "one lease under connection_limit 1");
    struct sched_lease *l = r.del[0].lease;
    struct sched_path *p = l->path;
    CHECK(!sched_lease_closed_by_worker(c, l, true, T0), "a lease with a message in flight lives on");
    CHECK(sched_lease_get(c, r.del[0].lease_id, r.del[0].lease_gen) == l, "same lease, same generation");
    CHECK(l->msg == r.del[0].msg && p->in_flight == 1 && p->connections == 1, "still in flight on it");
    CHECK(sched_core_dispatch(c, 100) == 0, "the slot is not handed to another message");
    CHECK(sched_msg_result(c, r.del[0].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "the result finds its lease");
    CHECK(sched_core_dispatch(c, 100) == 1, "the next message on the same lease");
    CHECK(r.del[1].lease == l, "reused");
    CHECK(sched_msg_result(c, r.del[1].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    /* idle now: the worker's close ends it */
    CHECK(sched_lease_closed_by_worker(c, l, false, T0), "an idle lease ends");
    CHECK(sched_lease_get(c, r.del[1].lease_id, r.del[1].lease_gen) == NULL, "stale after it ended");
    CHECK(p->connections == 0, "no connection left");
    CHECK(sched_core_dispatch(c, 100) == 1, "a new lease for the last message");
    CHECK(r.del[2].lease_id != r.del[1].lease_id || r.del[2].lease_gen != r.del[1].lease_gen, "a new lease");
    check_core(c, "lease closed crossing a deliver");
    sched_core_free(c);
}

static void test_lease_max_deliveries(void)
{
    struct rec r;
    struct sched_core *c = one_site(&r, 7, 1, 3);
    sched_worker_add(c, 0);
    for (int i = 0; i < 7; i++) {
        CHECK(sched_core_dispatch(c, 100) == 1, "round %d: one at a time on one connection", i);
        struct delivery *d = &r.del[r.ndel - 1];
        CHECK(d->last == (i % 3 == 2), "round %d: last flag %d", i, d->last);
        CHECK(d->lease_gen == r.del[i - i % 3].lease_gen && d->lease_id == r.del[i - i % 3].lease_id,
              "round %d: lease changes every third message", i);
        CHECK(sched_msg_result(c, d->msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
        if (i % 3 == 2)
            CHECK(sched_lease_get(c, d->lease_id, d->lease_gen) == NULL, "round %d: lease ended", i);
    }
    CHECK(r.del[0].lease_gen != r.del[3].lease_gen || r.del[0].lease_id != r.del[3].lease_id, "new lease");
    CHECK(stats(c).messages == 0 && stats(c).delivered == 7, "all delivered");
    check_core(c, "max deliveries");
    sched_core_free(c);
}

struct retired {
    int n;
    uint64_t delivered, serial;
};

static void on_retire(void *arg, const struct sched_path *p)
{
    struct retired *x = arg;
    x->n++;
    x->delivered += p->delivered;
    x->serial = p->serial;
}

/* a path that holds nothing is freed once idle for idle_ms (the clock starts when it is first seen idle),
 * with its site once no domain resolves to it; busy, suspended or leased paths stay; one made again when
 * mail comes has a new serial */
static void test_path_evict(void)
{
    struct rec r;
    struct retired x = {0};
    struct sched_core *c = one_site(&r, 2, 1, 0);
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 1, "one in flight");
    struct sched_path *p = r.del[0].lease->path;
    uint64_t serial = p->serial;
    CHECK(sched_path_evict(c, 0, T0, on_retire, &x) == 0 && x.n == 0, "a path with mail in flight stays");
    CHECK(sched_msg_result(c, r.del[0].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    CHECK(sched_path_evict(c, 0, T0, on_retire, &x) == 0, "a path with an idle lease (and mail ready) stays");
    CHECK(sched_core_dispatch(c, 100) == 1, "the second message");
    CHECK(sched_msg_result(c, r.del[1].msg, SCHED_OUTCOME_DELIVERED, T0) == 0, "result");
    CHECK(sched_path_evict(c, 0, T0, on_retire, &x) == 0, "the idle lease keeps the path");
    sched_lease_released(c, r.del[1].lease, false, T0);
    CHECK(c->npaths == 1 && c->sites.count == 1, "one path, one site");
    /* suspended: held, so kept */
    CHECK(sched_path_suspend(c, "unspecified", "site", T0 + 60000) == 0, "suspend");
    CHECK(sched_path_evict(c, 0, T0, on_retire, &x) == 0, "a suspended path stays");
    CHECK(sched_path_suspend(c, "unspecified", "site", 0) == 0, "cancel");
    /* idle from now: not before idle_ms */
    CHECK(sched_path_evict(c, 1000, T0, on_retire, &x) == 0, "first seen idle: the clock starts");
    CHECK(sched_path_evict(c, 1000, T0 + 999, on_retire, &x) == 0, "not yet");
    CHECK(sched_path_evict(c, 1000, T0 + 1000, on_retire, &x) == 1, "freed after idle_ms");
    CHECK(x.n == 1 && x.delivered == 2 && x.serial == serial, "retire saw its counters");
    CHECK(c->npaths == 0 && c->sites.count == 0, "path and site gone (no domain left: the queue emptied)");
    check_core(c, "after eviction");
    /* mail for the site again: a new path, a new serial */
    add(c, 10, "example.com", "example.com", T0 + 1000);
    sched_core_advance(c, T0 + 1000);
    sched_site_resolved(c, "example.com", "site", 300, T0 + 1000);
    CHECK(sched_core_dispatch(c, 100) == 1, "dispatched on a new path");
    CHECK(c->npaths == 1 && c->paths[0]->serial > serial, "new serial %llu > %llu",
          (unsigned long long)c->paths[0]->serial, (unsigned long long)serial);
    /* a domain that still resolves to the site keeps the site, not the idle path */
    add(c, 11, "example.com", "example.com", T0 + 3600000); /* keeps the queue and its domain */
    CHECK(sched_msg_result(c, r.del[2].msg, SCHED_OUTCOME_DELIVERED, T0 + 1000) == 0, "result");
    sched_lease_released(c, r.del[2].lease, false, T0 + 1000);
    CHECK(sched_path_evict(c, 0, T0 + 1000, on_retire, &x) == 1 && x.n == 2, "the idle path goes at once");
    CHECK(c->npaths == 0 && c->sites.count == 1, "the site stays for the domain resolving to it");
    check_core(c, "site kept");
    /* its last message goes, and the domain with it: the next sweep frees the site, no path freed */
    CHECK(sched_msg_remove(c, mid(11)) == 0, "remove");
    CHECK(sched_path_evict(c, 0, T0 + 1000, on_retire, &x) == 0 && c->sites.count == 0, "a site with no path "
          "and no domain goes at the next sweep (%u left)", (unsigned)c->sites.count);
    sched_core_free(c);
}

static void test_worker_death(void)
{
    struct rec r;
    struct sched_core *c = one_site(&r, 6, 4, 0);
    sched_worker_add(c, 0);
    sched_worker_add(c, 1);
    CHECK(sched_core_dispatch(c, 100) == 4, "four in flight");
    int on0 = 0;
    for (int i = 0; i < 4; i++)
        on0 += r.del[i].worker == 0;
    CHECK(on0 == 2, "two per worker, got %d on worker 0", on0);
    CHECK(sched_worker_dead(c, 0, T0 + 10) == 0, "dead");
    CHECK(sched_worker_dead(c, 0, T0 + 10) == -ENOENT, "dead twice");
    struct sched_stats s = stats(c);
    CHECK(s.in_flight == 2 && s.scheduled == 2 && s.requeued == 2 && s.leases == 2, "in flight %llu scheduled %llu",
          (unsigned long long)s.in_flight, (unsigned long long)s.scheduled);
    for (int i = 0; i < 4; i++) {
        if (r.del[i].worker != 0)
            continue;
        CHECK(r.del[i].msg->attempts == 0, "death is not an attempt");
        CHECK(sched_lease_get(c, r.del[i].lease_id, r.del[i].lease_gen) == NULL, "dead worker's lease is stale");
        CHECK(sched_msg_result(c, r.del[i].msg, SCHED_OUTCOME_DELIVERED, T0) == -EINVAL, "late result refused");
    }
    check_core(c, "after death");
    CHECK(sched_core_advance(c, T0 + 10) == 2, "due now");
    CHECK(sched_core_dispatch(c, 100) == 2, "two more slots");
    for (int i = 4; i < r.ndel; i++)
        CHECK(r.del[i].worker == 1, "only the live worker gets leases");
    CHECK(sched_worker_dead(c, 1, T0 + 20) == 0, "second death");
    CHECK(sched_core_dispatch(c, 100) == 0, "nobody to deliver");
    sched_core_advance(c, T0 + 20);
    s = stats(c);
    CHECK(s.messages == 6 && s.ready == 6 && s.leases == 0, "everything back and ready: %llu",
          (unsigned long long)s.ready);
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 4, "revived worker");
    check_core(c, "revived");
    sched_core_free(c);
}

/* ---- retry, expiry, resolution, removal ---- */

static void test_expiry(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    r.qcfg.max_age_s = 100;
    r.qcfg.retry_interval_s = 30;
    add(c, 1, "example.com", "example.com", T0);
    CHECK(sched_msg_add(c, mid(2), T0 - 200000, 0, "example.com", "example.com", T0, NULL) == 0, "old one");
    CHECK(sched_msg_add(c, mid(2), T0, 0, "example.com", "example.com", T0, NULL) == -EEXIST, "duplicate");
    CHECK(sched_msg_add(c, mid(3), T0, 0, "example.com", "other.example", T0, NULL) == -EINVAL, "domain mismatch");
    CHECK(sched_msg_add(c, mid(3), T0, 0, "", "example.com", T0, NULL) == -EINVAL, "empty queue");
    sched_core_advance(c, T0);
    CHECK(r.nexpired == 1 && r.expired[0] == 2, "past max_age at once");
    CHECK(sched_msg_find(c, mid(2)) == NULL, "expired message gone");
    sched_site_resolved(c, "example.com", "site", 3600, T0);
    sched_worker_add(c, 0);
    uint64_t now = T0;
    for (int round = 0; round < 5 && r.nexpired < 2; round++) {
        if (sched_core_dispatch(c, 10) == 1) {
            struct sched_msg *m = r.del[r.ndel - 1].msg;
            CHECK(sched_msg_result(c, m, SCHED_OUTCOME_TRANSIENT, now) == 0, "transient");
            CHECK(m->attempts == round + 1, "attempts %u", m->attempts);
            CHECK(m->timer.due_ms <= T0 + 100000, "retry past expiry: %+lld", (long long)(m->timer.due_ms - T0));
        }
        /* next_due is a lower bound: a few cascades may pop nothing */
        for (int k = 0; k < 8; k++) {
            now = sched_core_next_due(c);
            if (now == SCHED_TIMER_NEVER || sched_core_advance(c, now) > 0)
                break;
        }
    }
    CHECK(r.nexpired == 2 && r.expired[1] == 1, "expired after retries");
    CHECK(now <= T0 + 100000 + 10, "expiry reported on time: %+lld", (long long)(now - T0));
    struct sched_stats s = stats(c);
    CHECK(s.expired == 2 && s.messages == 0 && s.queues == 0 && s.domains == 0, "all gone, queue freed");
    check_core(c, "expiry");
    sched_core_free(c);
}

static void test_resolution(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    for (int i = 0; i < 4; i++)
        add(c, (uint64_t)i, "a.example", "a.example", T0);
    for (int i = 4; i < 7; i++)
        add(c, (uint64_t)i, i == 6 ? "camp:t@b.example" : "t@b.example", "b.example", T0);
    add(c, 7, "c.example", "c.example", T0);
    sched_core_advance(c, T0);
    CHECK(r.nresolve == 3, "one resolve per domain, got %d", r.nresolve);
    CHECK(sched_site_resolved(c, "nowhere.example", "x", 60, T0) == -ENOENT, "unknown domain");
    CHECK(sched_site_failed(c, "nowhere.example", true, "x", T0) == -ENOENT, "unknown domain");
    /* permanent: every waiting message bounces, the domain's queues go */
    CHECK(sched_site_failed(c, "b.example", true, "NXDOMAIN", T0) == 0, "permanent");
    CHECK(r.nbounced == 3, "three bounced");
    CHECK(stats(c).queues == 2 && stats(c).domains == 2, "b's queues and domain freed");
    /* temporary: backoff, attempt counted, resolve asked again later */
    CHECK(sched_site_failed(c, "a.example", false, "SERVFAIL", T0) == 0, "temporary");
    struct sched_msg *m = sched_msg_find(c, mid(0));
    CHECK(m && m->state == SCHED_MSG_SCHEDULED && m->attempts == 1, "rescheduled");
    CHECK(m && m->timer.due_ms >= T0 + 54000 && m->timer.due_ms <= T0 + 66000, "backoff 60 s +-10%%");
    CHECK(stats(c).resolving == 1 && stats(c).scheduled == 4, "c still waiting");
    sched_core_advance(c, T0 + 70000);
    CHECK(r.nresolve == 4 && strcmp(r.resolved[3], "a.example") == 0, "asked again");
    /* resolve answered from inside the hook is fine too */
    CHECK(sched_site_resolved(c, "a.example", "mx.a", 60, T0 + 70000) == 0, "resolved");
    CHECK(stats(c).ready == 4, "a ready");
    /* cached site: new messages skip resolution until the ttl runs out */
    add(c, 8, "a.example", "a.example", T0 + 70000);
    sched_core_advance(c, T0 + 70000);
    CHECK(r.nresolve == 4 && stats(c).ready == 5, "cache hit");
    add(c, 9, "a.example", "a.example", T0 + 131000);
    sched_core_advance(c, T0 + 131000);
    CHECK(r.nresolve == 5, "ttl expired: resolved again");
    check_core(c, "resolution");
    /* administrative removal in each state */
    CHECK(sched_msg_remove(c, mid(7)) == 0, "remove resolving");
    CHECK(sched_msg_remove(c, mid(9)) == 0, "remove resolving");
    CHECK(sched_msg_remove(c, mid(0)) == 0, "remove ready");
    add(c, 10, "a.example", "a.example", T0 + 999999);
    CHECK(sched_msg_remove(c, mid(10)) == 0, "remove scheduled");
    sched_worker_add(c, 0);
    sched_core_dispatch(c, 1);
    CHECK(sched_msg_remove(c, r.del[0].msg->id) == -EBUSY, "in flight");
    CHECK(sched_msg_remove(c, mid(10)) == -ENOENT, "gone");
    CHECK(stats(c).removed == 4, "removed counter");
    check_core(c, "removal");
    sched_core_free(c);
}

/* a resolve hook that answers synchronously, the way a DNS cache hit would */
static struct sched_core *sync_core;

static void on_resolve_sync(void *arg, const char *domain)
{
    on_resolve(arg, domain);
    sched_site_resolved(sync_core, domain, "site", 60, sync_core->now);
}

static void on_deliver_sync(void *arg, struct sched_msg *m, struct sched_lease *l, bool last)
{
    on_deliver(arg, m, l, last);
    CHECK(sched_msg_result(sync_core, m, SCHED_OUTCOME_DELIVERED, sync_core->now) == 0, "sync result");
}

static void test_sync_resolve(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    c->hooks.resolve = on_resolve_sync;
    sync_core = c;
    for (int i = 0; i < 5; i++)
        add(c, (uint64_t)i, "x.example", "x.example", T0);
    sched_core_advance(c, T0);
    CHECK(r.nresolve == 1 && stats(c).ready == 5, "all ready through a synchronous answer");
    check_core(c, "sync resolve");
    /* a worker answering from inside deliver: one dispatch call drains the path */
    c->hooks.deliver = on_deliver_sync;
    struct sched_path *p = c->paths[0];
    struct sched_path_options o = { .connection_limit = 1, .max_deliveries_per_connection = 2, .max_ready = 10 };
    sched_path_options_set(c, p, &o);
    sched_worker_add(c, 0);
    CHECK(sched_core_dispatch(c, 100) == 5, "five handed out");
    CHECK(r.ndel == 5 && stats(c).messages == 0 && stats(c).delivered == 5, "all delivered at once");
    CHECK(r.del[0].lease_id == r.del[1].lease_id && r.del[1].last && !r.del[0].last, "two per lease");
    CHECK(p->connections == 1 && p->idle == 1, "the last lease stays open and idle");
    check_core(c, "sync deliver");
    CHECK(sched_queue_find(c, "x.example") == NULL, "empty queue freed");
    sched_core_free(c);
}

int main(void)
{
    test_names();
    test_backoff();
    test_wrr();
    test_max_ready();
    test_connection_limit();
    test_lease_closed_crossing_deliver();
    test_path_evict();
    test_lease_max_deliveries();
    test_worker_death();
    test_expiry();
    test_resolution();
    test_sync_resolve();
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
