/*
 * sched_timer_test - timing wheel against a reference, plus table cases for the edges
 *
 * The reference is a binary min-heap of (due, object, generation) entries; a generation bump
 * on every add and cancel makes older entries stale. Each firing is checked when it happens
 * (the object was armed, is due by the advance's target, was not fired yet for this
 * generation, and no earlier-due node fires after a later one); after each advance every live
 * heap entry due by the target must have fired. Random adds span every wheel level and the
 * overflow list; callbacks add and cancel other timers while the wheel is advancing.
 * Count: argv[1] or SCHED_TEST_N (default 1000000 timers); seed: SCHED_TEST_SEED.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "scheduler/sched_timer.h"
#include "tests/lib/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* ---- reference ---- */

struct obj {
    struct sched_timer_node node;
    uint64_t due;
    uint32_t gen, fired_gen;
    bool armed;
};

struct hent {
    uint64_t due;
    uint32_t idx, gen;
};

static struct obj *objs;
static size_t nobjs;
static struct hent *heap;
static size_t heap_n, heap_cap;
static size_t ref_armed;
static struct sched_timer_wheel wheel;

static void heap_push(struct hent e)
{
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = xrealloc(heap, heap_cap * sizeof(*heap));
    }
    size_t i = heap_n++;
    while (i > 0 && heap[(i - 1) / 2].due > e.due) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = e;
}

static struct hent heap_pop(void)
{
    struct hent top = heap[0], last = heap[--heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= heap_n)
            break;
        if (c + 1 < heap_n && heap[c + 1].due < heap[c].due)
            c++;
        if (heap[c].due >= last.due)
            break;
        heap[i] = heap[c];
        i = c;
    }
    if (heap_n)
        heap[i] = last;
    return top;
}

static void ref_add(uint32_t idx, uint64_t due)
{
    struct obj *o = &objs[idx];
    if (!o->armed)
        ref_armed++;
    o->armed = true;
    o->gen++;
    o->due = due;
    sched_timer_add(&wheel, &o->node, due);
    heap_push((struct hent){ due, idx, o->gen });
}

static void ref_cancel(uint32_t idx)
{
    struct obj *o = &objs[idx];
    if (o->armed)
        ref_armed--;
    o->armed = false;
    o->gen++;
    sched_timer_cancel(&wheel, &o->node);
}

static uint64_t pick_delta(void)
{
    switch (rnd_below(10)) {
    case 0: case 1: case 2: return rnd_below(256);
    case 3: case 4: case 5: return rnd_below(65536);
    case 6: case 7: return rnd_below(1u << 24);
    case 8: return rnd_below(UINT64_C(1) << 32);
    default: return rnd_below(UINT64_C(1) << 35); /* overflow list */
    }
}

struct adv_ctx {
    uint64_t target, last_due;
    size_t fired;
    bool reenter;
};

static void on_fire(struct sched_timer_node *n, void *arg)
{
    struct adv_ctx *c = arg;
    struct obj *o = (struct obj *)((char *)n - offsetof(struct obj, node));
    CHECK(o->armed, "object %zu fired while not armed", (size_t)(o - objs));
    CHECK(!sched_timer_armed(n), "node still armed in its callback");
    CHECK(n->due_ms == o->due, "due %llu, expected %llu", (unsigned long long)n->due_ms,
          (unsigned long long)o->due);
    CHECK(o->due <= c->target, "fired due %llu after target %llu", (unsigned long long)o->due,
          (unsigned long long)c->target);
    CHECK(o->due >= c->last_due, "order: %llu after %llu", (unsigned long long)o->due,
          (unsigned long long)c->last_due);
    CHECK(o->fired_gen != o->gen, "fired twice");
    c->last_due = o->due;
    o->fired_gen = o->gen;
    o->armed = false;
    ref_armed--;
    c->fired++;
    if (!c->reenter)
        return;
    uint64_t r = rnd_below(100);
    if (r < 10)
        ref_add((uint32_t)rnd_below(nobjs), o->due + rnd_below(2000));
    else if (r < 15)
        ref_cancel((uint32_t)rnd_below(nobjs));
}

static void ref_advance(uint64_t target, bool reenter)
{
    struct adv_ctx c = { .target = target, .last_due = 0, .reenter = reenter };
    size_t n = sched_timer_advance(&wheel, target, on_fire, &c);
    CHECK(n == c.fired, "advance returned %zu, callbacks %zu", n, c.fired);
    while (heap_n && heap[0].due <= target) {
        struct hent e = heap_pop();
        struct obj *o = &objs[e.idx];
        if (e.gen != o->gen)
            continue;
        CHECK(o->fired_gen == o->gen, "object %u due %llu missed by advance to %llu", e.idx,
              (unsigned long long)e.due, (unsigned long long)target);
        o->armed = false;
    }
    CHECK(wheel.count == ref_armed, "wheel count %zu, reference %zu", wheel.count, ref_armed);
    /* next_due is a lower bound of the earliest live due time */
    while (heap_n && heap[0].gen != objs[heap[0].idx].gen)
        heap_pop();
    if (heap_n)
        CHECK(sched_timer_next_due(&wheel) <= heap[0].due, "next_due %llu above earliest %llu",
              (unsigned long long)sched_timer_next_due(&wheel), (unsigned long long)heap[0].due);
    else
        CHECK(sched_timer_next_due(&wheel) == SCHED_TIMER_NEVER, "next_due on an empty wheel");
}

static void test_random(size_t n)
{
    const uint64_t start = UINT64_C(1700000000000);
    nobjs = n;
    objs = xcalloc(n, sizeof(*objs));
    sched_timer_init(&wheel, start);
    uint64_t now = start;
    size_t adds = 0, advances = 0;
    clock_t t0 = clock();
    while (adds < n * 2) {
        uint64_t r = rnd_below(100);
        if (r < 70) {
            ref_add((uint32_t)rnd_below(n), now + 1 + pick_delta());
            adds++;
        } else if (r < 85) {
            ref_cancel((uint32_t)rnd_below(n));
        } else if (r < 85 + 1) {
            /* occasional far jumps cross level 3 and the overflow list */
            now += pick_delta();
            ref_advance(now, rnd_below(2) == 0);
            advances++;
        } else {
            now += rnd_below(300);
            ref_advance(now, rnd_below(2) == 0);
            advances++;
        }
    }
    /* drain everything: walk in big steps to the last due time */
    while (ref_armed > 0) {
        uint64_t nd = sched_timer_next_due(&wheel);
        CHECK(nd != SCHED_TIMER_NEVER, "armed timers but next_due says never");
        if (nd == SCHED_TIMER_NEVER)
            break;
        if (nd > now)
            now = nd;
        ref_advance(now, false);
        advances++;
    }
    CHECK(wheel.count == 0, "wheel not empty after drain: %zu", wheel.count);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("random: %zu adds, %zu advances, %.2f s (%.0f adds/s incl. reference)\n", adds, advances, secs,
           secs > 0 ? (double)adds / secs : 0.0);
    sched_timer_fini(&wheel);
    free(objs);
    free(heap);
    heap = NULL;
    heap_n = heap_cap = 0;
    ref_armed = 0;
}

/* ---- table cases ---- */

struct rec {
    uint64_t order[16];
    size_t n;
};

struct tnode {
    struct sched_timer_node node;
    int id;
};

static void on_rec(struct sched_timer_node *n, void *arg)
{
    struct rec *r = arg;
    if (r->n < 16)
        r->order[r->n++] = (uint64_t)((struct tnode *)n)->id;
}

struct edge_case {
    const char *name;
    uint64_t start;
    uint64_t due[6];       /* 0 ends the list; relative to start unless `absolute` */
    bool absolute;
    uint64_t advance_to;   /* relative to start */
    int expect[6];         /* ids in firing order, -1 ends */
    uint64_t next_due;     /* expected next_due before advancing, relative; 0 = not checked */
};

static const struct edge_case edge_cases[] = {
    { "same slot fires in insertion-independent due order", 1000, { 5, 3, 4 }, false, 10, { 1, 2, 0, -1 }, 3 },
    { "nothing due yet", 1000, { 50 }, false, 49, { -1 }, 50 },
    { "due exactly at target fires", 1000, { 50 }, false, 50, { 0, -1 }, 50 },
    { "cross a level-1 boundary", 0xff00, { 0x100, 0x1ff, 0x10 }, false, 0x200, { 2, 0, 1, -1 }, 0x10 },
    { "level 3 and overflow", 5, { UINT64_C(1) << 33, UINT64_C(1) << 25, 7 }, false, (UINT64_C(1) << 33) + 1,
      { 2, 1, 0, -1 }, 7 },
    { "past due fires first", 1000, { 900, 1001 }, true, 5, { 0, 1, -1 }, 0 },
};

static void test_edges(void)
{
    for (size_t c = 0; c < sizeof(edge_cases) / sizeof(edge_cases[0]); c++) {
        const struct edge_case *ec = &edge_cases[c];
        struct sched_timer_wheel *w = xmalloc(sizeof(*w));
        struct tnode nodes[6];
        sched_timer_init(w, ec->start);
        for (int i = 0; i < 6 && ec->due[i]; i++) {
            sched_timer_node_init(&nodes[i].node);
            nodes[i].id = i;
            sched_timer_add(w, &nodes[i].node, ec->absolute ? ec->due[i] : ec->start + ec->due[i]);
        }
        if (ec->next_due)
            CHECK(sched_timer_next_due(w) <= ec->start + ec->next_due, "%s: next_due %llu", ec->name,
                  (unsigned long long)sched_timer_next_due(w));
        struct rec r = { .n = 0 };
        sched_timer_advance(w, ec->start + ec->advance_to, on_rec, &r);
        size_t want = 0;
        while (ec->expect[want] >= 0)
            want++;
        CHECK(r.n == want, "%s: fired %zu, expected %zu", ec->name, r.n, want);
        for (size_t i = 0; i < want && i < r.n; i++)
            CHECK(r.order[i] == (uint64_t)ec->expect[i], "%s: position %zu fired %llu, expected %d", ec->name,
                  i, (unsigned long long)r.order[i], ec->expect[i]);
        sched_timer_fini(w);
        free(w);
    }
}

/* the wheel must skip a long idle gap without walking it a millisecond at a time */
static void test_idle_jump(void)
{
    struct sched_timer_wheel *w = xmalloc(sizeof(*w));
    struct tnode a;
    sched_timer_init(w, 0);
    sched_timer_node_init(&a.node);
    a.id = 7;
    sched_timer_add(w, &a.node, UINT64_C(1) << 40);
    struct rec r = { .n = 0 };
    sched_timer_advance(w, (UINT64_C(1) << 40) - 1, on_rec, &r);
    CHECK(r.n == 0, "fired early");
    CHECK(sched_timer_armed(&a.node), "disarmed early");
    sched_timer_advance(w, UINT64_MAX, on_rec, &r);
    CHECK(r.n == 1 && r.order[0] == 7, "did not fire after the jump");
    CHECK(sched_timer_next_due(w) == SCHED_TIMER_NEVER, "not empty");
    sched_timer_fini(w);
    free(w);
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
        rng_state = strtoull(seed, NULL, 0) | 1;
    printf("seed 0x%llx, %zu timers\n", (unsigned long long)rng_state, n);
    test_edges();
    test_idle_jump();
    if (n)
        test_random(n);
    if (!check_failures)
        printf("ok\n");
    CHECK_EXIT();
}
