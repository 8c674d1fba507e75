/*
 * role_rt - what every role process shares: attach, register, loop, rings, signals, heartbeat
 *
 * A role executable is started by ringmaild as
 *   ringmail-ROLE --shm-fd FD --instance I [--config FILE] [--data-dir DIR] [--listen-fds A,B]
 * role_rt_init() parses that, loads the configuration, maps the segment, checks that instance I
 * is of this role and was handed to this pid, and sets up the io_uring loop with three standing
 * operations: a read on the instance's doorbell eventfd, a signalfd (SIGTERM, SIGINT, SIGHUP), and
 * a tick timer (heartbeat, pings to peers, supervisor liveness).
 * role_rt_run() drains the inbound rings and sleeps on the loop when there is nothing to do;
 * it returns the process exit code once the role has drained after SIGTERM.
 * role_rt_send() stamps and pushes a record to instance `to`, ringing its bell; -EAGAIN when full,
 * -ENOENT when there is no ring to it.
 * Built in: MSG_ROLE_PING is answered with MSG_ROLE_PONG; PONGs update the instance's ring round
 * trip. Other records go to the role's on_record hook.
 */
#ifndef RINGMAIL_ROLE_RT_H
#define RINGMAIL_ROLE_RT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "shm/shm_segment.h"
#include "cfg/cfg.h"
#include "rt/evl.h"

#define ROLE_RT_MAX_PEERS (PROTO_NODE_MAX_INSTANCES)
#define ROLE_RT_TICK_NS 200000000u /* 200 ms */

struct role_rt;

struct role_rt_hooks {
    /* a record of a type the runtime does not handle itself */
    void (*on_record)(struct role_rt *rt, unsigned from, const struct proto_rec *rec);
    /* after a pass over the inbound rings that consumed records (the spool's group commit point) */
    void (*after_drain)(struct role_rt *rt);
    /* before the loop sleeps: background work in bounded steps; return true to be called again
     * before sleeping (more to do), false when idle */
    bool (*on_idle)(struct role_rt *rt);
    /* each tick, after the heartbeat */
    void (*on_tick)(struct role_rt *rt, uint64_t now_ns);
    /* configuration reloaded (rt->cfg is the new one) */
    void (*on_reload)(struct role_rt *rt);
    /* SIGTERM: stop taking new work; return true once drained (called each tick until true) */
    bool (*on_drain)(struct role_rt *rt);
    /* the node's memory headroom is under [supervisor] memory_soft_reserve (the segment's mem_pressure is
     * low or exhausted): drop what can be rebuilt. Called when the level turns low, then every
     * ROLE_RT_SHED_EVERY_NS while it stays so; the runtime then gives freed heap back (malloc_trim) and
     * counts it (memory_sheds) */
    void (*on_mem_shed)(struct role_rt *rt);
};

#define ROLE_RT_SHED_EVERY_NS 10000000000ull /* 10 s */

/* role_rt_shed_due - whether to shed now, given the pressure word read from the segment (any value but
 * SHM_MEM_LOW or SHM_MEM_EXHAUSTED means ok: a role may have written it); *low and *last_ns carry the state */
bool role_rt_shed_due(uint32_t pressure, uint64_t now_ns, bool *low, uint64_t *last_ns);

struct role_rt_peer {
    unsigned instance;
    const struct shm_ring_ref *ring;
};

struct role_rt {
    enum proto_node_role role;
    uint32_t log_override; /* the segment's log_level word for this role as last applied */
    unsigned self_idx;
    uint32_t gen;
    int32_t supervisor_pid; /* taken at start: the segment's copy is writable by every role */
    struct proto_node_instance *self;
    struct shm_segment seg;
    struct cfg cfg;
    const char *config_path; /* NULL: embedded default */
    const char *data_dir;    /* --data-dir override, or NULL */
    const char *listen_fds;  /* --listen-fds "3,4": inherited listeners (ingress only) */
    const char *bell_fds;    /* --bell-fds "5,6,...": every instance's doorbell eventfd, by instance */
    int bell_fd[PROTO_NODE_MAX_INSTANCES]; /* this process's copy, checked at start; never the segment's */
    struct evl evl;
    struct role_rt_hooks hooks;
    void *ctx; /* the role's own state */

    unsigned n_in, n_out;
    struct role_rt_peer in[ROLE_RT_MAX_PEERS];
    struct role_rt_peer out[ROLE_RT_MAX_PEERS];

    bool draining;
    bool done;
    int exit_code;
    uint64_t last_ping_ns;
    uint64_t ping_token;
    bool mem_low;          /* role_rt_shed_due() state */
    uint64_t last_shed_ns;

    struct evl_op bell_op;
    struct evl_op sig_op;
    int sig_fd;
    struct signalfd_siginfo sig_buf;
    struct evl_timer tick;
};

void role_rt_init(struct role_rt *rt, enum proto_node_role role, int argc, char **argv);
void role_rt_ready(struct role_rt *rt);
int role_rt_send(struct role_rt *rt, unsigned to, struct proto_rec *rec);
int role_rt_run(struct role_rt *rt);
void role_rt_fini(struct role_rt *rt);

#endif
