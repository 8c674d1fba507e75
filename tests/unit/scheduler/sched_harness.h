/*
 * sched_harness - the scheduler core unit tests' recording harness (include from one file per test)
 *
 * A core on a simulated clock (T0) whose hooks record what they are asked: resolutions, expiries,
 * bounces and deliveries (message, lease, worker, last flag); queue and path options come from the
 * record (qcfg, popt, and path_cb for per-path options).
 */
#ifndef RINGMAIL_TEST_SCHED_HARNESS_H
#define RINGMAIL_TEST_SCHED_HARNESS_H

#include <stdio.h>
#include <string.h>

#include "scheduler/sched_core.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "tests/lib/check.h"

#define T0 UINT64_C(1700000000000)

/* ---- a recording harness ---- */

#define REC_MAX 2048

struct delivery {
    struct sched_msg *msg;
    struct sched_lease *lease;
    uint32_t lease_id, lease_gen, worker;
    bool last;
};

struct rec {
    char resolved[REC_MAX][64];
    int nresolve;
    uint64_t expired[REC_MAX];
    int nexpired;
    uint64_t bounced[REC_MAX];
    int nbounced;
    struct delivery del[REC_MAX];
    int ndel;
    struct sched_queue_config qcfg;
    struct sched_path_options popt;
    /* path_cb - adjust a path's options after popt (per site or source); NULL: popt for all */
    void (*path_cb)(struct rec *r, const char *source, const char *site, struct sched_path_options *opt);
    char path_domain[64]; /* the domain the last path_config call named */
};

static inline void on_queue_config(void *arg, const char *queue, const char *domain, struct sched_queue_config *cfg)
{
    struct rec *r = arg;
    *cfg = r->qcfg;
}

static inline void on_path_config(void *arg, const char *source, const char *site, const char *domain,
                           struct sched_path_options *opt)
{
    struct rec *r = arg;
    *opt = r->popt;
    snprintf(r->path_domain, sizeof(r->path_domain), "%s", domain ? domain : "");
    if (r->path_cb)
        r->path_cb(r, source, site, opt);
}

static inline void on_resolve(void *arg, const char *domain)
{
    struct rec *r = arg;
    if (r->nresolve < REC_MAX)
        snprintf(r->resolved[r->nresolve++], 64, "%s", domain);
}

static inline void on_expire(void *arg, const struct sched_msg *m)
{
    struct rec *r = arg;
    if (r->nexpired < REC_MAX)
        r->expired[r->nexpired++] = m->id.lo;
}

static inline void on_bounce(void *arg, const struct sched_msg *m, const char *reason)
{
    struct rec *r = arg;
    if (r->nbounced < REC_MAX)
        r->bounced[r->nbounced++] = m->id.lo;
}

static inline void on_deliver(void *arg, struct sched_msg *m, struct sched_lease *l, bool last)
{
    struct rec *r = arg;
    if (r->ndel < REC_MAX)
        r->del[r->ndel++] = (struct delivery){ m, l, l->id, l->gen, l->worker, last };
}

static inline struct sched_core *core_new(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->qcfg = (struct sched_queue_config){ .retry_interval_s = 60, .max_retry_interval_s = 3600,
                                           .max_age_s = 86400, .pool = 0 };
    sched_path_options_default(&r->popt);
    struct sched_hooks h = { .arg = r, .queue_config = on_queue_config, .path_config = on_path_config,
                             .resolve = on_resolve, .expire = on_expire, .bounce = on_bounce,
                             .deliver = on_deliver };
    struct sched_core_options o;
    sched_core_options_default(&o);
    o.seed = 42;
    return sched_core_new(&o, &h, T0);
}

static inline struct msgid mid(uint64_t n)
{
    return (struct msgid){ .hi = (T0 << 16) | 1, .lo = n };
}

static inline void add(struct sched_core *c, uint64_t n, const char *queue, const char *domain, uint64_t due)
{
    int rc = sched_msg_add(c, mid(n), T0, 0, queue, domain, due, NULL);
    CHECK(rc == 0, "add %llu: %d", (unsigned long long)n, rc);
}

static inline void check_core(struct sched_core *c, const char *what)
{
    CHECK(sched_core_check(c) == 0, "%s: core inconsistent", what);
}

static inline struct sched_stats stats(struct sched_core *c)
{
    struct sched_stats s;
    sched_core_stats(c, &s);
    return s;
}

#endif
