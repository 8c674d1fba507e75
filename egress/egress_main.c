/*
 * ringmail-egress - the egress role: delivery workers
 *
 * Attaches to the node's shared memory, registers, and runs the role loop. Each DELIVER from the
 * scheduler becomes an attempt (egress_deliver.c, egress_job.c): load from the spool, resolve, connect or reuse
 * the lease's connection, SMTP, report. SIGTERM drains: attempts in flight finish (bounded by the
 * supervisor's drain timeout), idle connections QUIT.
 */
#include "base/log.h"
#include "rt/role_rt.h"
#include "egress/egress.h"
#include "egress/egress_lease.h"

static void on_record(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    struct egress *eg = rt->ctx;

    switch (rec->type) {
    case MSG_SCHEDULER_MESSAGE_DELIVER:
        egress_deliver_start(eg, from, rec);
        break;
    case MSG_SPOOL_MESSAGE_LOADED:
        egress_deliver_loaded(eg, from, rec);
        break;
    case MSG_SCHEDULER_PATH_CONFIG:
        egress_deliver_path(eg, from, rec);
        break;
    case MSG_SCHEDULER_LEASE_ABORT:
        egress_lease_abort(eg, from, rec);
        break;
    default:
        log_debug("record type %u from instance %u ignored", rec->type, from);
        break;
    }
}

static void on_tick(struct role_rt *rt, uint64_t now_ns)
{
    egress_worker_tick(rt->ctx, now_ns);
}

/* on_reload - SIGHUP: the DKIM keys are read again (a bad key keeps the running ones, logged), and the
 * outbound TLS keys (CA file, client certificate; failing ones keep the running contexts, logged) */
static void on_reload(struct role_rt *rt)
{
    struct egress *eg = rt->ctx;
    egress_dkim_reload(&eg->dkim, &rt->cfg);
    egress_worker_reload(eg);
}

static void on_mem_shed(struct role_rt *rt)
{
    egress_worker_shed(rt->ctx);
}

static bool on_drain(struct role_rt *rt)
{
    return egress_worker_drain(rt->ctx);
}

int main(int argc, char **argv)
{
    static struct role_rt rt;
    static struct egress eg;

    role_rt_init(&rt, PROTO_NODE_ROLE_EGRESS, argc, argv);
    egress_worker_init(&eg, &rt);
    rt.ctx = &eg;
    rt.hooks.on_record = on_record;
    rt.hooks.on_tick = on_tick;
    rt.hooks.on_drain = on_drain;
    rt.hooks.on_reload = on_reload;
    rt.hooks.on_mem_shed = on_mem_shed;
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    egress_worker_fini(&eg);
    role_rt_fini(&rt);
    return rc;
}
