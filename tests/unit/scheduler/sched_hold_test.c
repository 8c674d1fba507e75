/*
 * sched_hold_test - suspensions of paths and of scheduled queues, on a simulated clock
 *
 * A path suspended before it exists picks the suspension up when created, hands nothing out and
 * opens no lease until it ends, and sched_core_next_due() names that moment; cancel and re-suspend
 * of a live path; listing drops expired entries. A tenant's (and a campaign's) queues keep their
 * due messages in the wheel until the suspension ends, re-armed without an attempt; other tenants
 * and domains pass. Queue name parts are checked case by case.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/sched_queue.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"
#include "tests/unit/scheduler/sched_harness.h"

struct parts_case {
    const char *name, *campaign, *tenant;
};

static const struct parts_case parts_cases[] = {
    { "spring:acme@gmail.com", "spring", "acme" },
    { "acme@gmail.com", "", "acme" },
    { "spring:@gmail.com", "spring", "" },
    { "gmail.com", "", "" },
    { "Spring:ACME@example.com!smart.host", "Spring", "ACME" },
    { "t@example.com!relay", "", "t" },
    { "example.com!relay@x", "", "" }, /* an '@' in the routing part is not the tenant's */
    { "a:b:c@example.com", "a", "b:c" },
};

static void test_name_parts(void)
{
    for (size_t i = 0; i < sizeof(parts_cases) / sizeof(parts_cases[0]); i++) {
        const struct parts_case *pc = &parts_cases[i];
        const char *camp, *ten;
        size_t clen, tlen;
        sched_queue_name_parts(pc->name, &camp, &clen, &ten, &tlen);
        CHECK(clen == strlen(pc->campaign) && memcmp(camp, pc->campaign, clen) == 0, "%s: campaign %.*s", pc->name,
              (int)clen, camp);
        CHECK(tlen == strlen(pc->tenant) && memcmp(ten, pc->tenant, tlen) == 0, "%s: tenant %.*s", pc->name,
              (int)tlen, ten);
    }
}

static void test_path_suspend(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    CHECK(sched_path_suspend(c, "unspecified", "", T0 + 5000) == -EINVAL, "empty site");
    /* suspended before the path exists (as after a restart) */
    CHECK(sched_path_suspend(c, "unspecified", "mx.example.com", T0 + 5000) == 0, "suspend");
    const struct sched_path_hold *h;
    CHECK(sched_path_suspensions(c, &h) == 1 && h[0].until_ms == T0 + 5000 && strcmp(h[0].site, "mx.example.com") == 0,
          "listed");
    for (int i = 0; i < 5; i++)
        add(c, (uint64_t)i, "example.com", "example.com", T0);
    sched_core_advance(c, T0);
    sched_site_resolved(c, "example.com", "mx.example.com", 3600, T0);
    sched_worker_add(c, 0);
    struct sched_path *p = c->paths[0];
    CHECK(p->suspended_until_ms == T0 + 5000 && p->ready.count == 5, "the new path is suspended");
    CHECK(sched_core_dispatch(c, 100) == 0 && c->leases_live == 0, "no lease, no message");
    CHECK(sched_core_next_due(c) == T0 + 5000, "wakes when it ends: %+lld", (long long)(sched_core_next_due(c) - T0));
    check_core(c, "suspended");
    sched_core_advance(c, T0 + 4999);
    CHECK(sched_core_dispatch(c, 100) == 0, "not a ms early");
    sched_core_advance(c, T0 + 5000);
    CHECK(p->suspended_until_ms == 0 && sched_core_dispatch(c, 1) == 1, "resumed at the moment");
    CHECK(sched_path_suspensions(c, &h) == 0, "expired entry dropped");
    /* a live path, mid-flow: suspend, cancel */
    CHECK(sched_path_suspend(c, "unspecified", "mx.example.com", T0 + 60000) == 0, "suspend live");
    CHECK(sched_core_dispatch(c, 100) == 0, "held (the lease stays, nothing new on it)");
    CHECK(sched_core_next_due(c) == T0 + 60000, "next due");
    check_core(c, "live suspended");
    CHECK(sched_path_suspend(c, "unspecified", "mx.example.com", 0) == 0, "cancel");
    CHECK(sched_path_suspensions(c, &h) == 0 && sched_core_next_due(c) == SCHED_TIMER_NEVER, "nothing left");
    CHECK(sched_core_dispatch(c, 100) == 4, "free again: the other four on new leases");
    check_core(c, "cancelled");
    sched_core_free(c);
}

static void test_queue_suspend(void)
{
    struct rec r;
    struct sched_core *c = core_new(&r);
    CHECK(sched_queue_suspend(c, "example.com", "", NULL, T0 + 1) == -EINVAL, "empty tenant, no campaign");
    CHECK(sched_queue_suspend(c, NULL, NULL, NULL, T0 + 1) == -EINVAL, "no domain");
    CHECK(sched_queue_suspend(c, "Example.COM", "acme", NULL, T0 + 60000) == 0, "tenant");
    CHECK(sched_queue_suspend(c, "example.com", "beta", "spring", T0 + 30000) == 0, "campaign");
    static const struct {
        const char *queue, *domain;
        bool held;
        uint64_t until;
    } qs[] = {
        { "acme@example.com", "example.com", true, 60000 },
        { "spring:acme@example.com", "example.com", true, 60000 },
        { "fall:acme@example.com", "example.com", true, 60000 },
        { "spring:beta@example.com", "example.com", true, 30000 },
        { "beta@example.com", "example.com", false, 0 },
        { "other@example.com", "example.com", false, 0 },
        { "acme@else.example", "else.example", false, 0 },
        { "example.com", "example.com", false, 0 },
    };
    const size_t n = sizeof(qs) / sizeof(qs[0]);
    for (size_t i = 0; i < n; i++)
        add(c, i, qs[i].queue, qs[i].domain, T0);
    CHECK(sched_core_advance(c, T0) == n, "all due");
    for (size_t i = 0; i < n; i++) {
        struct sched_msg *m = sched_msg_find(c, mid(i));
        CHECK(m && (m->state == SCHED_MSG_SCHEDULED) == qs[i].held, "%s: state %u", qs[i].queue, m ? m->state : 9);
        if (m && qs[i].held)
            CHECK(m->timer.due_ms == T0 + qs[i].until && m->attempts == 0, "%s: re-armed at %+lld", qs[i].queue,
                  (long long)(m->timer.due_ms - T0));
    }
    CHECK(stats(c).suspended == 4, "four re-armed");
    const struct sched_queue_hold *h;
    CHECK(sched_queue_suspensions(c, &h) == 2, "two listed");
    check_core(c, "queues suspended");
    /* a queue created later picks the suspension up */
    add(c, 100, "new:acme@example.com", "example.com", T0 + 1000);
    CHECK(sched_queue_find(c, "new:acme@example.com")->suspended_until_ms == T0 + 60000, "new queue suspended");
    sched_core_advance(c, T0 + 1000);
    CHECK(sched_msg_find(c, mid(100))->state == SCHED_MSG_SCHEDULED, "held too");
    /* the campaign's suspension ends; the tenant's is cancelled early */
    CHECK(sched_core_advance(c, T0 + 30000) == 1, "the campaign's message leaves at its end");
    CHECK(sched_queue_suspend(c, "example.com", "acme", NULL, 0) == 0, "cancel");
    CHECK(sched_queue_suspensions(c, &h) == 0, "none left (the campaign's expired)");
    CHECK(sched_msg_find(c, mid(0))->timer.due_ms == T0 + 30000, "the cancel released them: due now");
    check_core(c, "released");
    CHECK(sched_core_advance(c, T0 + 30000) == 4, "the tenant's messages leave at the cancel");
    for (size_t i = 0; i < n; i++)
        CHECK(sched_msg_find(c, mid(i))->state != SCHED_MSG_SCHEDULED && sched_msg_find(c, mid(i))->attempts == 0,
              "%s: out, no attempt", qs[i].queue);
    check_core(c, "queues resumed");
    /* no tenant: every queue of the domain, with or without a tenant, and no other domain's */
    CHECK(sched_queue_suspend(c, "EXAMPLE.com", NULL, NULL, T0 + 120000) == 0, "domain-wide");
    CHECK(sched_queue_find(c, "beta@example.com")->suspended_until_ms == T0 + 120000, "a tenant's queue");
    CHECK(sched_queue_find(c, "example.com")->suspended_until_ms == T0 + 120000, "the queue without a tenant");
    CHECK(sched_queue_find(c, "acme@else.example")->suspended_until_ms == 0, "another domain's");
    CHECK(sched_queue_suspend(c, "example.com", NULL, NULL, 0) == 0 &&
              sched_queue_find(c, "beta@example.com")->suspended_until_ms == 0,
          "domain-wide cancelled");
    sched_core_free(c);

    /* a suspension past the expiry: the message expires on time */
    c = core_new(&r);
    r.qcfg.max_age_s = 100;
    sched_queue_suspend(c, "example.com", "acme", NULL, T0 + 3600000);
    add(c, 1, "acme@example.com", "example.com", T0);
    sched_core_advance(c, T0);
    CHECK(sched_msg_find(c, mid(1))->timer.due_ms == T0 + 100000, "re-armed at its expiry");
    sched_core_advance(c, T0 + 100000);
    CHECK(r.nexpired == 1, "expired");
    sched_core_free(c);
}

int main(void)
{
    test_name_parts();
    test_path_suspend();
    test_queue_suspend();
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
