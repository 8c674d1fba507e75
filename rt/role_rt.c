/*
 * role_rt - what every role process shares: attach, register, loop, rings, signals, heartbeat
 */
#include "rt/role_rt.h"
#include "rt/role_seccomp.h"
#include "rt/trace.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define ROLE_RT_PING_NS 1000000000u /* one probe per peer per second */
#define ROLE_RT_DRAIN_BUDGET 256     /* records per ring per pass, so one busy ring cannot starve others */

static void arm_bell(struct role_rt *rt);
static void arm_signal(struct role_rt *rt);

static void load_config(struct role_rt *rt, struct cfg *out)
{
    char *err = NULL;

    cfg_default(out);
    if (rt->config_path && cfg_load_file(out, rt->config_path, &err) < 0) {
        fprintf(stderr, "%s", err ? err : "configuration error\n");
        free(err);
        fatal("configuration %s is not valid", rt->config_path);
    }
    if (rt->data_dir) {
        free(out->data_dir);
        out->data_dir = xstrdup(rt->data_dir);
    }
}

static void parse_args(struct role_rt *rt, int argc, char **argv, int *shm_fd, int *instance)
{
    static const struct option opts[] = {
        {"shm-fd", required_argument, NULL, 'f'},
        {"instance", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'd'},
        {"listen-fds", required_argument, NULL, 'l'},
        {"bell-fds", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *shm_fd = -1;
    *instance = -1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            *shm_fd = atoi(optarg);
            break;
        case 'i':
            *instance = atoi(optarg);
            break;
        case 'c':
            rt->config_path = optarg[0] ? optarg : NULL;
            break;
        case 'd':
            rt->data_dir = optarg;
            break;
        case 'l':
            rt->listen_fds = optarg;
            break;
        case 'b':
            rt->bell_fds = optarg;
            break;
        default:
            fatal("usage: %s --shm-fd FD --instance N [--config FILE] [--data-dir DIR] (started by ringmaild)",
                  argv[0]);
        }
    }
    if (*shm_fd < 0 || *instance < 0 || !rt->bell_fds)
        fatal("%s is started by ringmaild, not by hand (missing --shm-fd/--instance/--bell-fds)", argv[0]);
}

static void find_peers(struct role_rt *rt)
{
    rt->n_in = rt->n_out = 0;
    for (unsigned i = 0; i < rt->seg.n_instances; i++) {
        const struct shm_ring_ref *r;
        if ((r = shm_segment_ring(&rt->seg, i, rt->self_idx)) != NULL)
            rt->in[rt->n_in++] = (struct role_rt_peer){i, r};
        if ((r = shm_segment_ring(&rt->seg, rt->self_idx, i)) != NULL)
            rt->out[rt->n_out++] = (struct role_rt_peer){i, r};
    }
}

static const struct shm_ring_ref *out_ring(struct role_rt *rt, unsigned to)
{
    for (unsigned i = 0; i < rt->n_out; i++)
        if (rt->out[i].instance == to)
            return rt->out[i].ring;
    return NULL;
}

int role_rt_send(struct role_rt *rt, unsigned to, struct proto_rec *rec)
{
    const struct shm_ring_ref *r = out_ring(rt, to);
    int rc;

    if (!r)
        return -ENOENT;
    rec->version = PROTO_RING_VERSION;
    rec->src = (uint16_t)rt->self_idx;
    rec->src_gen = rt->gen;
    rc = shm_ring_push(r, rec);
    if (rc < 0) {
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_FULL, 1);
        return rc;
    }
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_PUSHED, 1);
    shm_bell_ring(shm_segment_bell(&rt->seg.inst[to]), rt->bell_fd[to]);
    return 0;
}

static void handle_builtin(struct role_rt *rt, unsigned from, const struct proto_rec *rec)
{
    switch (rec->type) {
    case MSG_ROLE_PING: {
        struct proto_rec pong = {.type = MSG_ROLE_PONG, .dst_gen = rec->src_gen};
        pong.body.ping = rec->body.ping;
        (void)role_rt_send(rt, from, &pong);
        break;
    }
    case MSG_ROLE_PONG: {
        uint64_t now = clock_mono_ns();
        if (rec->body.ping.sent_ns <= now)
            atomic_store_explicit(&rt->self->ping_rtt_ns, now - rec->body.ping.sent_ns, memory_order_relaxed);
        proto_node_counter_add(rt->self, PROTO_NODE_CTR_PONGS_RECEIVED, 1);
        break;
    }
    default:
        if (rt->hooks.on_record)
            rt->hooks.on_record(rt, from, rec);
        break;
    }
}

/* drain_rings - returns the number of records consumed */
static unsigned drain_rings(struct role_rt *rt)
{
    struct proto_rec rec;
    unsigned total = 0;

    for (unsigned i = 0; i < rt->n_in; i++) {
        for (unsigned k = 0; k < ROLE_RT_DRAIN_BUDGET; k++) {
            int rc = shm_ring_pop(rt->in[i].ring, &rec);
            if (rc == -EAGAIN)
                break;
            total++;
            if (rc == -EPROTO) {
                /* a corrupt ring header is our own bug or memory damage: never trust that ring again */
                log_error("ring from instance %u has a corrupt header; ignoring it", rt->in[i].instance);
                rt->in[i] = rt->in[--rt->n_in];
                i--;
                break;
            }
            if (rc < 0 || rec.src != rt->in[i].instance) {
                proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_BAD, 1);
                continue;
            }
            proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_POPPED, 1);
            if (rec.dst_gen != 0 && rec.dst_gen != rt->gen) {
                /* meant for the instance we replaced; its requester is gone */
                proto_node_counter_add(rt->self, PROTO_NODE_CTR_RING_STALE, 1);
                continue;
            }
            handle_builtin(rt, rt->in[i].instance, &rec);
        }
    }
    return total;
}

static void send_pings(struct role_rt *rt, uint64_t now)
{
    for (unsigned i = 0; i < rt->n_out; i++) {
        unsigned peer = rt->out[i].instance;
        /* only ready peers: a dead one's ring would fill with probes nobody answers */
        if (atomic_load(&rt->seg.inst[peer].state) != PROTO_NODE_INST_READY)
            continue;
        struct proto_rec rec = {.type = MSG_ROLE_PING};
        rec.body.ping.token = ++rt->ping_token;
        rec.body.ping.sent_ns = now;
        if (role_rt_send(rt, peer, &rec) == 0)
            proto_node_counter_add(rt->self, PROTO_NODE_CTR_PINGS_SENT, 1);
    }
}

static void begin_drain(struct role_rt *rt, const char *why)
{
    if (rt->draining)
        return;
    log_info("%s: draining", why);
    rt->draining = true;
    atomic_store(&rt->self->state, PROTO_NODE_INST_DRAINING);
    /* the role's first drain step now, not at the next tick: an ingress worker stops accepting at once, so
     * the connections of an operator restart wait in the listening socket's backlog (the supervisor holds
     * it) for the successor instead of being accepted only to be answered 421. The hook is called at every
     * tick while draining anyway; its answer (done or not) is the tick's business. */
    if (rt->hooks.on_drain)
        (void)rt->hooks.on_drain(rt);
}

/* log_override - ringctl set-log-level: the supervisor's word for this role, bounded (anything but 1 .. 4 is
 * the configured level), applied when it changes and again after a reload */
static void log_override(struct role_rt *rt, bool reloaded)
{
    uint32_t v = atomic_load_explicit(&rt->seg.hdr->log_level[rt->role], memory_order_relaxed);
    v = v <= LOG_LEVEL_ERROR + 1u ? v : 0;
    if (v == rt->log_override && !reloaded)
        return;
    bool changed = v != rt->log_override;
    rt->log_override = v;
    log_set_level(v ? (enum log_level)(v - 1) : rt->cfg.log_level);
    if (changed)
        log_info("log level %s at run time", v ? "set" : "back to the configured one");
}

bool role_rt_shed_due(uint32_t pressure, uint64_t now_ns, bool *low, uint64_t *last_ns)
{
    if (pressure != SHM_MEM_LOW && pressure != SHM_MEM_EXHAUSTED) {
        *low = false;
        return false;
    }
    if (*low && now_ns - *last_ns < ROLE_RT_SHED_EVERY_NS)
        return false;
    *low = true;
    *last_ns = now_ns;
    return true;
}

/* mem_shed - the node is short of memory: the role drops its caches, the heap gives back what is free */
static void mem_shed(struct role_rt *rt, uint64_t now)
{
    bool was_low = rt->mem_low;
    uint32_t pressure = atomic_load_explicit(&rt->seg.hdr->mem_pressure, memory_order_relaxed);
    if (!role_rt_shed_due(pressure, now, &rt->mem_low, &rt->last_shed_ns))
        return;
    if (rt->hooks.on_mem_shed)
        rt->hooks.on_mem_shed(rt);
    malloc_trim(0);
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_MEM_SHEDS, 1);
    if (!was_low)
        log_info("memory headroom is low: caches dropped, freed heap given back (again every %llu s while low)",
                 ROLE_RT_SHED_EVERY_NS / 1000000000ull);
}

static void on_tick(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct role_rt *rt = op->owner;
    uint64_t now = clock_mono_ns();

    rt->tick.armed = false;
    atomic_store_explicit(&rt->self->heartbeat_ns, now, memory_order_relaxed);
    log_override(rt, false);
    if (getppid() != rt->supervisor_pid)
        begin_drain(rt, "supervisor is gone");
    if (!rt->draining && now - rt->last_ping_ns >= ROLE_RT_PING_NS) {
        rt->last_ping_ns = now;
        send_pings(rt, now);
    }
    if (rt->hooks.on_tick)
        rt->hooks.on_tick(rt, now);
    if (!rt->draining)
        mem_shed(rt, now);
    if (rt->draining && (!rt->hooks.on_drain || rt->hooks.on_drain(rt))) {
        rt->done = true;
        return;
    }
    evl_timer_arm(l, &rt->tick, ROLE_RT_TICK_NS);
}

static void do_reload(struct role_rt *rt)
{
    struct cfg fresh;

    /* the supervisor validated the file before signalling; a file changed since then fails here */
    cfg_default(&fresh);
    if (rt->config_path) {
        char *err = NULL;
        if (cfg_load_file(&fresh, rt->config_path, &err) < 0) {
            log_error("reload: %s is not valid, keeping the running configuration: %s", rt->config_path,
                      err ? err : "");
            free(err);
            cfg_fini(&fresh);
            return;
        }
    }
    if (rt->data_dir) {
        free(fresh.data_dir);
        fresh.data_dir = xstrdup(rt->data_dir);
    }
    cfg_fini(&rt->cfg);
    rt->cfg = fresh;
    log_set_level(rt->cfg.log_level);
    log_override(rt, true); /* an operator's level outlives a reload */
    if (rt->hooks.on_reload)
        rt->hooks.on_reload(rt);
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_RELOADS, 1);
    atomic_store(&rt->self->reload_seen, atomic_load(&rt->seg.hdr->reload_gen));
    log_info("configuration reloaded (generation %u)", atomic_load(&rt->seg.hdr->reload_gen));
}

static void on_signal(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct role_rt *rt = op->owner;

    if (res == (int)sizeof(rt->sig_buf)) {
        switch (rt->sig_buf.ssi_signo) {
        case SIGHUP:
            do_reload(rt);
            break;
        case SIGTERM:
        case SIGINT:
            begin_drain(rt, "stop requested");
            break;
        default:
            break;
        }
    } else if (res < 0 && res != -EINTR && res != -EAGAIN) {
        panic("signalfd read failed: %s", strerror(-res));
    }
    arm_signal(rt);
}

static void on_bell(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct role_rt *rt = op->owner;

    if (res < 0 && res != -EINTR && res != -EAGAIN)
        panic("doorbell read failed: %s", strerror(-res));
    shm_bell_woke(shm_segment_bell(rt->self), rt->bell_fd[rt->self_idx]);
    proto_node_counter_add(rt->self, PROTO_NODE_CTR_LOOP_WAKEUPS, 1);
    arm_bell(rt);
}

static void arm_bell(struct role_rt *rt)
{
    /* a poll, not a read: the eventfd is non-blocking (shared by every process) and shm_bell_woke()
     * drains it */
    struct io_uring_sqe *sqe = evl_sqe(&rt->evl, &rt->bell_op);
    io_uring_prep_poll_add(sqe, rt->bell_fd[rt->self_idx], POLLIN);
}

static void arm_signal(struct role_rt *rt)
{
    struct io_uring_sqe *sqe = evl_sqe(&rt->evl, &rt->sig_op);
    io_uring_prep_read(sqe, rt->sig_fd, &rt->sig_buf, sizeof(rt->sig_buf), 0);
}

void role_rt_init(struct role_rt *rt, enum proto_node_role role, int argc, char **argv)
{
    int shm_fd, instance;
    char *err = NULL;
    sigset_t mask;

    memset(rt, 0, sizeof(*rt));
    rt->role = role;
    log_init(proto_node_role_name(role), -1);
    /* PRIV-01: not dumpable, so no other process of the same user can ptrace this role or open its
     * descriptors (the shared memfd among them) through /proc; exec never gains privileges (the
     * supervisor set it before exec too) */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fatal("prctl: %s", strerror(errno));
    parse_args(rt, argc, argv, &shm_fd, &instance);
    load_config(rt, &rt->cfg);
    log_set_level(rt->cfg.log_level);

    if (shm_segment_attach(&rt->seg, shm_fd, &err) < 0)
        fatal("%s", err);
    if ((unsigned)instance >= rt->seg.n_instances || shm_segment_role(&rt->seg, instance) != role)
        fatal("instance %d is not a %s instance", instance, proto_node_role_name(role));
    rt->self_idx = (unsigned)instance;
    /* the doorbells' descriptors from the supervisor's argv, not from the segment any role can write */
    if (shm_bell_fds_parse(rt->bell_fds, rt->bell_fd, rt->seg.n_instances, &err) < 0)
        fatal("%s", err);
    rt->self = &rt->seg.inst[instance];
    log_init(proto_node_role_name(role), rt->self->index);
    if (atomic_load(&rt->self->pid) != (int32_t)getpid())
        fatal("instance %d belongs to pid %d, not to this process", instance, atomic_load(&rt->self->pid));
    rt->gen = atomic_load(&rt->self->generation);
    rt->supervisor_pid = atomic_load(&rt->seg.hdr->supervisor_pid);

    /* exit when the supervisor goes, and catch the race where it went before this line */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    rt->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (rt->sig_fd < 0)
        fatal("signalfd: %s", strerror(errno));

    if (evl_init(&rt->evl, 4096, &err) < 0)
        fatal("%s", err);
    find_peers(rt);
    if (role == PROTO_NODE_ROLE_INGRESS || role == PROTO_NODE_ROLE_EGRESS)
        rt_trace_init(rt);
    rt->bell_op = (struct evl_op){on_bell, rt};
    rt->sig_op = (struct evl_op){on_signal, rt};
    rt->tick.op = (struct evl_op){on_tick, rt};
    atomic_store(&rt->self->heartbeat_ns, clock_mono_ns());
    atomic_store(&rt->self->reload_seen, atomic_load(&rt->seg.hdr->reload_gen));
    arm_bell(rt);
    arm_signal(rt);
    evl_timer_arm(&rt->evl, &rt->tick, ROLE_RT_TICK_NS);
    /* a predecessor killed between a push and its doorbell would leave a peer asleep on a
     * non-empty ring: ring every peer once (shm_bell.c) */
    for (unsigned i = 0; i < rt->n_out; i++)
        shm_bell_ring(shm_segment_bell(&rt->seg.inst[rt->out[i].instance]), rt->bell_fd[rt->out[i].instance]);
}

void role_rt_ready(struct role_rt *rt)
{
    atomic_store(&rt->self->ready_ns, clock_mono_ns());
    atomic_store(&rt->self->state, PROTO_NODE_INST_READY);
    log_info("ready (pid %d, generation %u, %u inbound and %u outbound rings)", getpid(), rt->gen, rt->n_in,
             rt->n_out);
}

int role_rt_run(struct role_rt *rt)
{
    /* PRIV-02: every library has opened what it opens at start; from here on only the role's list.
     * The mode is the start's: a reload does not change a loaded filter (it cannot be lifted). */
    int src = role_seccomp_install(rt->role, rt->cfg.seccomp, &rt->self->seccomp_nr);
    if (src < 0)
        fatal("seccomp filter (%s): %s", proto_node_role_name(rt->role), strerror(-src));
    if (rt->cfg.seccomp != CFG_SECCOMP_OFF)
        log_debug("seccomp filter loaded (%s)", rt->cfg.seccomp == CFG_SECCOMP_KILL ? "kill" : "log");
    while (!rt->done) {
        if (drain_rings(rt) > 0) {
            if (rt->hooks.after_drain)
                rt->hooks.after_drain(rt);
            /* more may be waiting: look at completions without blocking, then drain again */
            if (evl_run_once(&rt->evl, false) < 0)
                fatal("event loop failed");
            continue;
        }
        if (rt->hooks.on_idle && rt->hooks.on_idle(rt)) {
            if (evl_run_once(&rt->evl, false) < 0)
                fatal("event loop failed");
            continue;
        }
        shm_bell_prepare_sleep(shm_segment_bell(rt->self));
        if (drain_rings(rt) > 0) {
            shm_bell_woke(shm_segment_bell(rt->self), rt->bell_fd[rt->self_idx]);
            if (rt->hooks.after_drain)
                rt->hooks.after_drain(rt);
            continue;
        }
        int rc = evl_run_once(&rt->evl, true);
        if (rc < 0)
            fatal("event loop failed: %s", strerror(-rc));
    }
    atomic_store(&rt->self->state, PROTO_NODE_INST_STOPPED);
    log_info("stopped");
    return rt->exit_code;
}

void role_rt_fini(struct role_rt *rt)
{
    rt_trace_fini();
    evl_fini(&rt->evl);
    shm_segment_close(&rt->seg);
    cfg_fini(&rt->cfg);
}
