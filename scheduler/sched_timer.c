/*
 * sched_timer - hierarchical timing wheel (contract in sched_timer.h)
 *
 * Placement rule: a node due at d sits at the level of the highest byte in which d differs
 * from the cursor `now` (level 0: same upper 56 bits, slot d & 255; level L: same bits above
 * 8(L+1), slot byte L of d), or in the overflow list when they differ above bit 31. So every
 * node of a level lies in the cursor's current block of the next level up, in a slot at or
 * after the cursor's own; the earliest next event of the wheel is the lowest set slot of each
 * level (a level-0 slot fires; a higher slot is cascaded when the cursor reaches its start).
 * Bits in `bits` may be stale after a cancel: they are cleared lazily when found empty.
 */
#include "scheduler/sched_timer.h"

#include "base/log.h"

#define SLOT_MASK (SCHED_TIMER_SLOTS - 1u)
#define WHEEL_SPAN_BITS (8u * SCHED_TIMER_LEVELS)

static void list_init(struct sched_timer_list *l)
{
    l->head.next = l->head.prev = &l->head;
}

static bool list_empty(const struct sched_timer_list *l)
{
    return l->head.next == &l->head;
}

static void list_push(struct sched_timer_list *l, struct sched_timer_node *n)
{
    n->prev = l->head.prev;
    n->next = &l->head;
    l->head.prev->next = n;
    l->head.prev = n;
}

/* list_move - every node of from onto the empty list to (which may live on the stack) */
static void list_move(struct sched_timer_list *from, struct sched_timer_list *to)
{
    list_init(to);
    if (list_empty(from))
        return;
    to->head.next = from->head.next;
    to->head.prev = from->head.prev;
    to->head.next->prev = &to->head;
    to->head.prev->next = &to->head;
    list_init(from);
}

static void node_unlink(struct sched_timer_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static int bit_next(const uint64_t b[SCHED_TIMER_SLOTS / 64], unsigned idx)
{
    if (idx >= SCHED_TIMER_SLOTS)
        return -1;
    unsigned wi = idx >> 6;
    uint64_t m = b[wi] & (~UINT64_C(0) << (idx & 63));
    for (;;) {
        if (m)
            return (int)(wi * 64 + (unsigned)__builtin_ctzll(m));
        if (++wi == SCHED_TIMER_SLOTS / 64)
            return -1;
        m = b[wi];
    }
}

void sched_timer_init(struct sched_timer_wheel *w, uint64_t now_ms)
{
    w->now = now_ms;
    w->count = 0;
    for (unsigned l = 0; l < SCHED_TIMER_LEVELS; l++) {
        for (unsigned s = 0; s < SCHED_TIMER_SLOTS; s++)
            list_init(&w->slot[l][s]);
        for (unsigned i = 0; i < SCHED_TIMER_SLOTS / 64; i++)
            w->bits[l][i] = 0;
    }
    list_init(&w->overflow);
    list_init(&w->late);
}

static void list_disarm(struct sched_timer_list *l)
{
    while (!list_empty(l))
        node_unlink(l->head.next);
}

void sched_timer_fini(struct sched_timer_wheel *w)
{
    for (unsigned l = 0; l < SCHED_TIMER_LEVELS; l++)
        for (unsigned s = 0; s < SCHED_TIMER_SLOTS; s++)
            list_disarm(&w->slot[l][s]);
    list_disarm(&w->overflow);
    list_disarm(&w->late);
    w->count = 0;
}

static void place(struct sched_timer_wheel *w, struct sched_timer_node *n)
{
    uint64_t d = n->due_ms;
    if (d < w->now) {
        list_push(&w->late, n);
        return;
    }
    uint64_t x = d ^ w->now;
    for (unsigned l = 0; l < SCHED_TIMER_LEVELS; l++) {
        if (x < (UINT64_C(1) << (8 * (l + 1)))) {
            unsigned s = (unsigned)(d >> (8 * l)) & SLOT_MASK;
            list_push(&w->slot[l][s], n);
            w->bits[l][s >> 6] |= UINT64_C(1) << (s & 63);
            return;
        }
    }
    list_push(&w->overflow, n);
}

void sched_timer_add(struct sched_timer_wheel *w, struct sched_timer_node *n, uint64_t due_ms)
{
    if (sched_timer_armed(n))
        node_unlink(n);
    else
        w->count++;
    n->due_ms = due_ms;
    place(w, n);
}

void sched_timer_cancel(struct sched_timer_wheel *w, struct sched_timer_node *n)
{
    if (!sched_timer_armed(n))
        return;
    node_unlink(n);
    ASSERT(w->count > 0);
    w->count--;
}

/* fire_list - disarm and fire each node of l; callbacks may touch l's other nodes */
static size_t fire_list(struct sched_timer_wheel *w, struct sched_timer_list *l, sched_timer_cb *cb,
                        void *arg)
{
    size_t fired = 0;
    while (!list_empty(l)) {
        struct sched_timer_node *n = l->head.next;
        node_unlink(n);
        w->count--;
        fired++;
        cb(n, arg);
    }
    return fired;
}

/*
 * next_event - the earliest moment something must happen: a level-0 slot to fire (level 0)
 * or a higher slot to cascade (its start). Returns -1 when every level is empty.
 * With `tidy`, empty slots met on the way have their stale bits cleared.
 */
static int next_event(struct sched_timer_wheel *w, bool tidy, uint64_t *t_out, unsigned *slot_out)
{
    int best = -1;
    for (unsigned l = 0; l < SCHED_TIMER_LEVELS; l++) {
        unsigned shift = 8 * l;
        unsigned idx = (unsigned)(w->now >> shift) & SLOT_MASK;
        int s;
        while ((s = bit_next(w->bits[l], idx)) >= 0 && list_empty(&w->slot[l][s])) {
            if (tidy)
                w->bits[l][s >> 6] &= ~(UINT64_C(1) << (s & 63));
            idx = (unsigned)s + 1;
        }
        if (s < 0)
            continue;
        uint64_t block = w->now & ~((UINT64_C(1) << (shift + 8)) - 1);
        uint64_t t = block | ((uint64_t)s << shift);
        if (t < w->now)
            t = w->now; /* only the cursor's own slot, reached exactly at its start */
        /* on a tie the higher level wins: its cascade may hold nodes due at that very ms */
        if (best < 0 || t <= *t_out) {
            best = (int)l;
            *t_out = t;
            *slot_out = (unsigned)s;
        }
    }
    return best;
}

size_t sched_timer_advance(struct sched_timer_wheel *w, uint64_t now_ms, sched_timer_cb *cb, void *arg)
{
    size_t fired = 0;
    struct sched_timer_list local;
    if (now_ms == UINT64_MAX)
        now_ms--; /* the cursor is "first ms not yet processed" and must stay representable */
    for (;;) {
        if (!list_empty(&w->late)) {
            list_move(&w->late, &local);
            fired += fire_list(w, &local, cb, arg);
            continue;
        }
        if (w->now > now_ms)
            break;
        uint64_t t = 0;
        unsigned s = 0;
        int l = next_event(w, true, &t, &s);
        if (l < 0) {
            uint64_t top = w->now | ((UINT64_C(1) << WHEEL_SPAN_BITS) - 1);
            if (list_empty(&w->overflow) || top >= now_ms) {
                w->now = now_ms + 1;
                break;
            }
            w->now = top + 1;
            list_move(&w->overflow, &local);
            while (!list_empty(&local)) {
                struct sched_timer_node *n = local.head.next;
                node_unlink(n);
                place(w, n);
            }
            continue;
        }
        if (t > now_ms) {
            w->now = now_ms + 1;
            break;
        }
        list_move(&w->slot[l][s], &local);
        w->bits[l][s >> 6] &= ~(UINT64_C(1) << (s & 63));
        if (l == 0) {
            /* every node of a level-0 slot is due exactly at t */
            w->now = t + 1;
            fired += fire_list(w, &local, cb, arg);
        } else {
            w->now = t;
            while (!list_empty(&local)) {
                struct sched_timer_node *n = local.head.next;
                node_unlink(n);
                place(w, n);
            }
        }
    }
    return fired;
}

uint64_t sched_timer_next_due(const struct sched_timer_wheel *w)
{
    if (w->count == 0)
        return SCHED_TIMER_NEVER;
    if (!list_empty(&w->late))
        return w->now ? w->now - 1 : 0;
    uint64_t t = 0;
    unsigned s = 0;
    /* tidy=false leaves the wheel untouched, so casting const away is safe */
    if (next_event((struct sched_timer_wheel *)w, false, &t, &s) >= 0)
        return t;
    if (!list_empty(&w->overflow)) {
        uint64_t top = w->now | ((UINT64_C(1) << WHEEL_SPAN_BITS) - 1);
        return top == UINT64_MAX ? UINT64_MAX - 1 : top + 1;
    }
    return SCHED_TIMER_NEVER;
}
