/*
 * sched_core_stress_test - a million messages through the scheduler core, every one accounted for
 *
 * Messages are spread over 100k queues on ~1k domains rolling up to 100 sites, three sources
 * and two pools. A seeded simulation then runs the loop a scheduler runs: advance the wheel,
 * answer site resolutions (resolved, temporary and permanent failures), dispatch to four
 * workers, answer a random part of the deliveries (delivered, transient, bounced), kill and
 * revive workers, release leases, remove messages administratively; queues with a short
 * max_age expire. Paths are shaped: a quarter of the sites share a named connection limit and a
 * named message throttle (one provider), another quarter have message and connection rates, one
 * source warms up under a source_selection_rate, some paths delay after consecutive connection
 * failures; paths and tenants' queues are suspended at random and options change on live paths.
 * The test keeps its own record of each message's final event and asserts,
 * periodically and at the end, that each message is either still in the core (and the core's
 * own O(n) consistency walk passes, which puts it in exactly one place) or reached exactly one
 * final event, never both and never two. Memory per queued message and operation rates are
 * printed for information only; nothing asserts on speed.
 * Count: argv[1] or SCHED_TEST_N (default 1000000); seed: SCHED_TEST_SEED.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "scheduler/sched_core.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_queue.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"
#include "tests/lib/check.h"

#define T0 UINT64_C(1700000000000)
#define NDOMAINS 1000u
#define NSITES 100u
#define NWORKERS 4u

enum fate { ALIVE = 0, DELIVERED, BOUNCED, EXPIRED, REMOVED, FATES };
static const char *fate_name[FATES] = { "queued", "delivered", "bounced", "expired", "removed" };

static uint64_t rng = 0x1234567887654321ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

struct flight {
    uint64_t idx;
    uint32_t lease_id, lease_gen;
};

static size_t nmsgs;
static uint8_t *fate;
static struct flight *flights;
static size_t nflights, flights_cap;
static bool domain_pending[NDOMAINS];
static uint32_t pending[NDOMAINS];
static size_t npending;
static uint32_t pool_bulk;
static uint32_t max_ready;

static struct msgid mid(uint64_t idx)
{
    return (struct msgid){ .hi = (T0 << 16) | 7, .lo = idx + 1 };
}

static uint64_t idx_of(const struct sched_msg *m)
{
    return m->id.lo - 1;
}

static void set_fate(uint64_t idx, enum fate f)
{
    CHECK(idx < nmsgs, "unknown message %llu", (unsigned long long)idx);
    if (idx >= nmsgs)
        return;
    CHECK(fate[idx] == ALIVE, "message %llu: %s after %s", (unsigned long long)idx, fate_name[f],
          fate_name[fate[idx]]);
    fate[idx] = (uint8_t)f;
}

static uint32_t domain_num(const char *domain)
{
    unsigned d = 0;
    if (sscanf(domain, "d%u.example", &d) != 1 || d >= NDOMAINS) {
        CHECK(false, "strange domain %s", domain);
        return 0;
    }
    return d;
}

static void on_queue_config(void *arg, const char *queue, const char *domain, struct sched_queue_config *cfg)
{
    unsigned q = 0;
    sscanf(queue, "c%*u:t%u@", &q);
    cfg->retry_interval_s = 5;
    cfg->max_retry_interval_s = 60;
    cfg->max_age_s = q % 8 == 0 ? 40 : 3600;
    cfg->pool = q % 2 ? pool_bulk : 0;
}

static void on_path_config(void *arg, const char *source, const char *site, const char *domain,
                           struct sched_path_options *opt)
{
    unsigned sn = 0;
    sscanf(site, "mx%u.", &sn);
    opt->connection_limit = 32;
    opt->max_deliveries_per_connection = 100;
    opt->max_ready = max_ready; /* well below the message count: overflow is exercised */
    if (sn % 4 == 0) { /* one provider: its sites share a limit and a throttle */
        opt->n_limits = 1;
        opt->limits[0] = (struct sched_named_limit){ "provider-limit", 24 };
        opt->n_throttles = 1;
        opt->throttles[0] = (struct sched_named_rate){ "provider-rate", { 4000, 1000, 0 } };
    } else if (sn % 4 == 1) {
        opt->max_message_rate = (struct sched_rate){ 100, 1000, 20 };
        opt->max_connection_rate = (struct sched_rate){ 10, 1000, 0 };
    }
    if (strcmp(source, "ip2") == 0)
        opt->source_selection_rate = (struct sched_rate){ 50, 1000, 0 }; /* warming up */
    if (strcmp(source, "ip1") == 0 && sn % 3 == 0)
        opt->source_selection_rate = (struct sched_rate){ 20, 1000, 0 }; /* both may be over */
    if (sn % 5 == 0)
        opt->consecutive_connection_failures_before_delay = 2;
}

/* shake - random suspensions and option changes, as operators and automation do */
static void shake(struct sched_core *c, uint64_t now)
{
    char site[32], tenant[24];
    if (rnd_below(100) < 4) {
        snprintf(site, sizeof(site), "mx%llu.site.example", (unsigned long long)rnd_below(NSITES));
        uint64_t until = rnd_below(4) ? now + rnd_below(5000) : 0;
        CHECK(sched_path_suspend(c, rnd_below(2) ? "ip1" : "unspecified", site, until) == 0, "path suspend");
    }
    if (rnd_below(100) < 4) {
        size_t q = rnd_below(nmsgs / 10 ? nmsgs / 10 : 1);
        char domain[32], campaign[24];
        snprintf(tenant, sizeof(tenant), "t%zu", q);
        snprintf(campaign, sizeof(campaign), "c%zu", q % 50);
        snprintf(domain, sizeof(domain), "d%zu.example", q % NDOMAINS);
        CHECK(sched_queue_suspend(c, domain, tenant, rnd_below(2) ? campaign : NULL, now + rnd_below(10000)) == 0,
              "queue suspend");
    }
    if (rnd_below(100) < 10 && c->npaths) {
        struct sched_path *p = c->paths[rnd_below(c->npaths)];
        struct sched_path_options o = p->opt;
        o.connection_limit = 1 + (uint32_t)rnd_below(40);
        if (o.n_limits)
            o.limits[0].limit = 4 + rnd_below(40); /* for every path of the provider */
        else if (rnd_below(4) == 0) {
            o.n_limits = 1; /* joins the provider for a while */
            o.limits[0] = (struct sched_named_limit){ "provider-limit", 24 };
        }
        if (sched_rate_active(&o.max_message_rate))
            o.max_message_rate.limit = 20 + rnd_below(200);
        sched_path_options_set(c, p, &o);
    }
}

static void on_resolve(void *arg, const char *domain)
{
    uint32_t d = domain_num(domain);
    /* a second ask is legitimate only when the domain emptied and came back (its first
     * answer then finds it unknown); the once-per-domain rule has its own unit case */
    if (domain_pending[d])
        return;
    domain_pending[d] = true;
    pending[npending++] = d;
}

static void on_expire(void *arg, const struct sched_msg *m)
{
    set_fate(idx_of(m), EXPIRED);
}

static void on_bounce(void *arg, const struct sched_msg *m, const char *reason)
{
    set_fate(idx_of(m), BOUNCED);
}

static void on_deliver(void *arg, struct sched_msg *m, struct sched_lease *l, bool last)
{
    if (nflights == flights_cap) {
        flights_cap = flights_cap ? flights_cap * 2 : 4096;
        flights = xrealloc(flights, flights_cap * sizeof(*flights));
    }
    flights[nflights++] = (struct flight){ idx_of(m), l->id, l->gen };
}

static double secs_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* account - every message is alive in the core exactly when the test saw no final event */
static void account(struct sched_core *c, const char *when)
{
    size_t alive = 0, mismatched = 0;
    size_t by_fate[FATES] = { 0 };
    for (size_t i = 0; i < nmsgs; i++) {
        bool in_core = sched_msg_find(c, mid(i)) != NULL;
        if (in_core != (fate[i] == ALIVE) && mismatched++ < 5)
            CHECK(false, "%s: message %zu in core %d, fate %s", when, i, in_core, fate_name[fate[i]]);
        alive += in_core;
        by_fate[fate[i]]++;
    }
    struct sched_stats s;
    sched_core_stats(c, &s);
    CHECK(s.messages == alive, "%s: core holds %llu, found %zu", when, (unsigned long long)s.messages, alive);
    CHECK(s.messages == s.scheduled + s.resolving + s.ready + s.in_flight, "%s: states do not add up", when);
    CHECK(sched_core_check(c) == 0, "%s: core walk failed", when);
    printf("%-8s queued %zu (scheduled %llu, resolving %llu, ready %llu, in flight %llu), delivered %zu, "
           "bounced %zu, expired %zu, removed %zu\n", when, by_fate[ALIVE], (unsigned long long)s.scheduled,
           (unsigned long long)s.resolving, (unsigned long long)s.ready, (unsigned long long)s.in_flight,
           by_fate[DELIVERED], by_fate[BOUNCED], by_fate[EXPIRED], by_fate[REMOVED]);
}

static void answer_resolves(struct sched_core *c, uint64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < npending; i++) {
        uint32_t d = pending[i];
        if (rnd_below(10) < 3) {
            pending[keep++] = d; /* still thinking */
            continue;
        }
        char domain[32], site[32];
        snprintf(domain, sizeof(domain), "d%u.example", d);
        domain_pending[d] = false;
        int rc;
        if (d % 97 == 0)
            rc = sched_site_failed(c, domain, true, "NXDOMAIN", now);
        else if (rnd_below(10) == 0)
            rc = sched_site_failed(c, domain, false, "SERVFAIL", now);
        else {
            snprintf(site, sizeof(site), "mx%u.site.example", d % NSITES);
            rc = sched_site_resolved(c, domain, site, (uint32_t)(5 + rnd_below(120)), now);
        }
        /* the domain may have emptied meanwhile (removals, expiries): then it is unknown */
        CHECK(rc == 0 || rc == -ENOENT, "answer for %s: %d", domain, rc);
    }
    npending = keep;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    const char *env = getenv("SCHED_TEST_N");
    if (argc > 1)
        n = strtoull(argv[1], NULL, 10);
    else if (env)
        n = strtoull(env, NULL, 10);
    const char *seed = getenv("SCHED_TEST_SEED");
    if (seed)
        rng = strtoull(seed, NULL, 0) | 1;
    if (n == 0)
        return 77;
    nmsgs = n;
    max_ready = n / 1000 > 5 ? (uint32_t)(n / 1000) : 5;
    size_t nqueues = n / 10 ? n / 10 : 1;
    printf("seed 0x%llx, %zu messages, %zu queues, %u domains\n", (unsigned long long)rng, n, nqueues, NDOMAINS);
    fate = xcalloc(n, 1);

    struct sched_hooks h = { .queue_config = on_queue_config, .path_config = on_path_config,
                             .resolve = on_resolve, .expire = on_expire, .bounce = on_bounce,
                             .deliver = on_deliver };
    struct sched_core_options o;
    sched_core_options_default(&o);
    o.seed = rng;
    o.ready_full_delay_ms = 5000;
    struct mallinfo2 m0 = mallinfo2();
    struct sched_core *c = sched_core_new(&o, &h, T0);
    uint32_t s1 = sched_core_source_add(c, "ip1"), s2 = sched_core_source_add(c, "ip2");
    pool_bulk = sched_core_pool_add(c, "bulk");
    sched_core_pool_weight(c, pool_bulk, s1, 3);
    sched_core_pool_weight(c, pool_bulk, s2, 1);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char qname[64], dname[32];
    for (size_t i = 0; i < n; i++) {
        size_t q = i % nqueues;
        snprintf(qname, sizeof(qname), "c%zu:t%zu@d%zu.example", q % 50, q, q % NDOMAINS);
        snprintf(dname, sizeof(dname), "d%zu.example", q % NDOMAINS);
        int rc = sched_msg_add(c, mid(i), T0 - rnd_below(30000), 0, qname, dname,
                               /* 1% due after the run: the core is freed with messages in it */
                               i % 100 == 0 ? T0 + 3600000 : T0 + rnd_below(5000), NULL);
        CHECK(rc == 0, "add %zu: %d", i, rc);
    }
    double add_s = secs_since(&t0);
    struct mallinfo2 m1 = mallinfo2();
    printf("add: %.0f messages/s; memory: %.1f bytes per queued message (mallinfo2 uordblks)\n",
           add_s > 0 ? (double)n / add_s : 0.0, (double)(m1.uordblks - m0.uordblks) / (double)n);
    account(c, "added");

    for (uint32_t w = 0; w < NWORKERS; w++)
        sched_worker_add(c, w);
    uint64_t now = T0;
    double adv_s = 0, res_s = 0, disp_s = 0;
    size_t popped = 0, results = 0, dispatched = 0, evicted = 0;
    int64_t dead_worker = -1;
    const size_t steps = 400;
    for (size_t step = 1; step <= steps; step++) {
        now += 500;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        popped += sched_core_advance(c, now);
        adv_s += secs_since(&t0);
        answer_resolves(c, now);

        clock_gettime(CLOCK_MONOTONIC, &t0);
        dispatched += sched_core_dispatch(c, 50000);
        disp_s += secs_since(&t0);

        /* answer about 60% of what is in flight */
        size_t answer = nflights * 6 / 10;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t k = 0; k < answer && nflights; k++) {
            size_t j = rnd_below(nflights);
            struct flight f = flights[j];
            flights[j] = flights[--nflights];
            struct sched_msg *m = sched_msg_find(c, mid(f.idx));
            struct sched_lease *l = m ? sched_msg_lease(m) : NULL;
            if (!l || l->id != f.lease_id || l->gen != f.lease_gen)
                continue; /* its worker died or its lease was released: the message was requeued */
            uint64_t r = rnd_below(100);
            enum sched_outcome out = r < 80 ? SCHED_OUTCOME_DELIVERED : r < 95 ? SCHED_OUTCOME_TRANSIENT
                                                                                  : SCHED_OUTCOME_BOUNCED;
            if (out == SCHED_OUTCOME_DELIVERED)
                set_fate(f.idx, DELIVERED);
            else if (out == SCHED_OUTCOME_BOUNCED)
                set_fate(f.idx, BOUNCED);
            CHECK(sched_msg_result(c, m, out, now) == 0, "result refused");
            results++;
        }
        res_s += secs_since(&t0);

        if (dead_worker >= 0) {
            sched_worker_add(c, (uint32_t)dead_worker);
            dead_worker = -1;
        } else if (rnd_below(100) < 3) {
            dead_worker = (int64_t)rnd_below(NWORKERS);
            CHECK(sched_worker_dead(c, (uint32_t)dead_worker, now) == 0, "worker death");
        }
        shake(c, now);
        /* idle paths freed (at once, as under memory pressure, or after a while); they come back with mail */
        if (rnd_below(100) < 5)
            evicted += sched_path_evict(c, rnd_below(3) ? 0 : 2000, now, NULL, NULL);
        /* connections close: on errors (random leases; freed ones are ignored), and by the egress's
         * idle timeout when their path has nothing ready (else a shared limit stays taken) */
        for (size_t k = 0; k < 4 && c->nleases; k++)
            sched_lease_released(c, c->leases[rnd_below(c->nleases)], false, now);
        for (uint32_t k = 0; k < c->nleases; k++) {
            struct sched_lease *l = c->leases[k];
            if (l->path && rnd_below(32) == 0)
                sched_lease_released(c, l, true, now);
            else if (l->path && !l->msg && l->path->ready.count == 0 && rnd_below(4) == 0)
                sched_lease_released(c, l, false, now);
        }
        for (size_t k = 0; k < n / 5000 + 1; k++) {
            uint64_t i = rnd_below(n);
            int rc = sched_msg_remove(c, mid(i));
            if (rc == 0)
                set_fate(i, REMOVED);
            else
                CHECK((rc == -ENOENT) == (fate[i] != ALIVE) && (rc == -ENOENT || rc == -EBUSY),
                      "remove %llu: %d with fate %s", (unsigned long long)i, rc, fate_name[fate[i]]);
        }
        if (step % 100 == 0) {
            char when[32];
            snprintf(when, sizeof(when), "t+%llus", (unsigned long long)((now - T0) / 1000));
            account(c, when);
        }
    }
    printf("advance: %.0f messages/s out of the wheel (%zu); dispatch: %.0f/s (%zu); result: %.0f/s (%zu)\n",
           adv_s > 0 ? (double)popped / adv_s : 0.0, popped, disp_s > 0 ? (double)dispatched / disp_s : 0.0,
           dispatched, res_s > 0 ? (double)results / res_s : 0.0, results);
    struct sched_stats s;
    sched_core_stats(c, &s);
    printf("counters: transient %llu, ready_full %llu, requeued %llu, paths %llu, sites %llu, paths evicted %zu\n",
           (unsigned long long)s.transient, (unsigned long long)s.ready_full, (unsigned long long)s.requeued,
           (unsigned long long)s.paths, (unsigned long long)s.sites, evicted);
    CHECK(evicted > 0 || n < 5000, "no idle path was ever freed: eviction not exercised");
    size_t by_fate[FATES] = { 0 };
    for (size_t i = 0; i < n; i++)
        by_fate[fate[i]]++;
    /* the simulation must have exercised every way out, or it proves little (a few thousand
     * messages are needed for every rare event to show up) */
    for (int f = DELIVERED; f < FATES && n >= 5000; f++)
        CHECK(by_fate[f] > 0, "no message was %s", fate_name[f]);
    CHECK(n < 5000 || (s.requeued > 0 && s.transient > 0 && s.ready_full > 0), "some paths were never taken");
    printf("shaping: throttle waits %llu, limit waits %llu, source held %llu, failure delays %llu, suspended %llu\n",
           (unsigned long long)s.throttle_waits, (unsigned long long)s.limit_waits, (unsigned long long)s.source_held,
           (unsigned long long)s.failure_delays, (unsigned long long)s.suspended);
    CHECK(n < 5000 || (s.throttle_waits > 0 && s.limit_waits > 0 && s.failure_delays > 0 && s.suspended > 0 &&
                       s.source_held > 0),
          "some throttles were never met");
    size_t late_alive = 0;
    for (size_t i = 0; i < n; i += 100) {
        CHECK(fate[i] == ALIVE || fate[i] == REMOVED, "late message %zu: %s", i, fate_name[fate[i]]);
        late_alive += fate[i] == ALIVE;
    }
    CHECK(late_alive > 0, "no late message left to free with the core");
    sched_core_free(c);
    free(fate);
    free(flights);
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
