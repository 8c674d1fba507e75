/*
 * supervisor_spawn - fork/exec of role instances, reaping, restart backoff, crash-loop hold
 *
 * Policy (configurable in [supervisor]):
 * - An instance that dies is fenced at once: its generation is bumped, so records its peers still
 *   address to the old generation are dropped as stale, and its arena runs are reclaimed.
 * - It is restarted after a backoff that starts at restart_backoff and doubles with each death in
 *   the last crash_loop_window, up to restart_backoff_max.
 * - crash_loop_limit deaths within crash_loop_window put the instance on hold for crash_loop_hold:
 *   the node keeps running without it and `ringctl status` shows it held, with the last exit.
 * - An operator restart (ringctl restart) is not a crash: SIGTERM, then restart at once.
 * - A ready instance whose heartbeat is older than heartbeat_timeout, or one not ready within
 *   ready_timeout, is killed (SIGKILL) and handled as a death.
 *
 * Every role can write the role table, so the supervisor (root) acts only on its private copy
 * (struct sup_instance): the instance count fixed at creation, each instance's role and index
 * copied before any role ran, the generation, the state it decided, and the pid fork() returned.
 * It signals no other pid, whatever the table says. From the table it reads only what the role
 * reports about itself (ready, heartbeat), and a wrong value there can at worst get that role
 * restarted.
 */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status), strsignal(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "wait status 0x%x", (unsigned)status);
}

void supervisor_spawn_init(struct supervisor *s)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        s->inst[i].role = (enum proto_node_role)s->seg.inst[i].role;
        s->inst[i].index = s->seg.inst[i].index;
        s->inst[i].state = PROTO_NODE_INST_EMPTY;
    }
}

void supervisor_spawn_set_state(struct supervisor *s, unsigned i, enum proto_node_inst_state state)
{
    s->inst[i].state = state;
    atomic_store(&s->seg.inst[i].state, state);
}

static void spawn_one(struct supervisor *s, unsigned i)
{
    struct proto_node_instance *in = &s->seg.inst[i];
    struct sup_instance *si = &s->inst[i];
    const char *role = proto_node_role_name(si->role);
    char path[4096], fd_s[16], inst_s[16], listen_s[256];
    const char *argv[16];
    unsigned n = 0;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/ringmail-%s", s->bin_dir, role);
    snprintf(fd_s, sizeof(fd_s), "%d", s->seg.pages.fd);
    snprintf(inst_s, sizeof(inst_s), "%u", i);
    argv[n++] = path;
    argv[n++] = "--shm-fd";
    argv[n++] = fd_s;
    argv[n++] = "--instance";
    argv[n++] = inst_s;
    if (s->config_path) {
        argv[n++] = "--config";
        argv[n++] = s->config_path;
    }
    argv[n++] = "--data-dir";
    argv[n++] = s->cfg.data_dir;
    argv[n++] = "--bell-fds";
    argv[n++] = s->bell_fds_arg;
    int inherit[CFG_MAX_LISTENERS + CFG_MAX_HTTP_LISTENERS];
    size_t n_inherit = 0, n_smtp = 0;
    if (si->role == PROTO_NODE_ROLE_INGRESS) {
        n_inherit = supervisor_listen_worker_fds(s, si->index, inherit, sizeof(inherit) / sizeof(inherit[0]), &n_smtp);
        (void)n_smtp;
        supervisor_listen_fds(s, si->index, listen_s, sizeof(listen_s));
        argv[n++] = "--listen-fds";
        argv[n++] = listen_s;
    }
    argv[n] = NULL;

    /* whatever a role scribbled on the layout or on this slot's fixed fields, the new instance
     * attaches to what the supervisor created */
    shm_segment_repair(&s->seg);
    atomic_store(&s->seg.hdr->supervisor_pid, (int32_t)getpid());
    in->role = (uint16_t)si->role;
    in->index = (uint16_t)si->index;
    /* generations start at 1 (0 in a record means "any"); on_death() bumps it to fence */
    if (si->generation == 0)
        si->generation = 1;
    atomic_store(&in->generation, si->generation);
    supervisor_spawn_set_state(s, i, PROTO_NODE_INST_STARTING);
    si->started_ns = clock_mono_ns();
    atomic_store(&in->started_ns, si->started_ns);
    atomic_store(&in->ready_ns, 0);
    atomic_store(&in->heartbeat_ns, 0);
    si->restart_at_ns = 0;
    si->term_sent_ns = 0;

    pid = fork();
    if (pid < 0) {
        log_error("cannot fork %s[%u]: %s; retrying", role, si->index, strerror(errno));
        supervisor_spawn_set_state(s, i, PROTO_NODE_INST_DEAD);
        si->restart_at_ns = clock_mono_ns() + CLOCK_MS(s->cfg.restart_backoff_ms);
        return;
    }
    if (pid == 0) {
        /* child: async-signal-safe calls only until execv */
        sigset_t none;
        atomic_store(&in->pid, (int32_t)getpid());
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            if (devnull != STDIN_FILENO)
                close(devnull);
        }
        /* listeners are close-on-exec: this ingress worker's own are uncovered, no other role gets one */
        for (size_t k = 0; k < n_inherit; k++)
            fcntl(inherit[k], F_SETFD, 0);
        /* PRIV-01: no exec of this role gains privileges; the role makes itself undumpable (role_rt) */
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (s->drop_privileges) {
            uid_t uid = si->role < PROTO_NODE_ROLE__MAX ? s->role_uid[si->role] : s->run_uid;
            if (uid == 0 || setgroups(0, NULL) < 0 || setgid(s->run_gid) < 0 || setuid(uid) < 0) {
                static const char msg[] = "ringmaild: cannot drop privileges in child\n";
                ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
                (void)w;
                _exit(126);
            }
        }
        execv(path, (char *const *)argv);
        static const char msg[] = "ringmaild: execv of a role binary failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    si->pid = pid;
    supervisor_trace_note_pid(i, pid);
    atomic_store(&in->pid, (int32_t)pid);
    log_info("started %s[%u] pid %d generation %u", role, si->index, pid, si->generation);
}

void supervisor_spawn_all(struct supervisor *s)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++)
        spawn_one(s, i);
}

static unsigned recent_deaths(struct sup_instance *si, uint64_t now, uint64_t window_ns)
{
    unsigned k = 0;
    for (unsigned j = 0; j < si->n_deaths; j++)
        if (now - si->deaths[j] <= window_ns)
            si->deaths[k++] = si->deaths[j];
    si->n_deaths = k;
    return k;
}

static void on_death(struct supervisor *s, unsigned i, int status)
{
    struct proto_node_instance *in = &s->seg.inst[i];
    struct sup_instance *si = &s->inst[i];
    const char *role = proto_node_role_name(si->role);
    uint64_t now = clock_mono_ns();
    uint32_t old_gen = si->generation;
    char why[128];

    describe_status(status, why, sizeof(why));
    si->pid = 0;
    supervisor_trace_note_pid(i, 0);
    atomic_store(&in->pid, 0);
    atomic_store(&in->last_status, status);
    atomic_store(&in->last_exit_ns, now);
    /* fence: records still addressed to old_gen are stale from now on */
    si->generation = old_gen + 1;
    atomic_store(&in->generation, si->generation);
    size_t freed = shm_arena_reclaim(s->seg.arena, (uint16_t)i, old_gen);

    if (s->stopping) {
        supervisor_spawn_set_state(s, i, PROTO_NODE_INST_STOPPED);
        log_info("%s[%u] stopped (%s)", role, si->index, why);
        return;
    }
    supervisor_spawn_set_state(s, i, PROTO_NODE_INST_DEAD);
    atomic_fetch_add(&in->restarts, 1);
    if (si->restart_requested) {
        si->restart_requested = false;
        si->restart_at_ns = now;
        log_info("%s[%u] exited for an operator restart (%s); %zu arena runs reclaimed; restarting", role,
                 si->index, why, freed);
        return;
    }
    uint64_t window = CLOCK_MS(s->cfg.crash_loop_window_ms);
    unsigned deaths = recent_deaths(si, now, window);
    if (deaths < sizeof(si->deaths) / sizeof(si->deaths[0]))
        si->deaths[si->n_deaths++] = now;
    deaths++;
    if (deaths >= s->cfg.crash_loop_limit) {
        uint64_t hold = CLOCK_MS(s->cfg.crash_loop_hold_ms);
        supervisor_spawn_set_state(s, i, PROTO_NODE_INST_HELD);
        atomic_store(&in->held_until_ns, now + hold);
        si->restart_at_ns = now + hold;
        si->n_deaths = 0;
        log_error("%s[%u] died (%s) %u times within %llu ms: crash loop, held off for %llu ms; the rest of "
                  "the node keeps running",
                  role, si->index, why, deaths, (unsigned long long)s->cfg.crash_loop_window_ms,
                  (unsigned long long)s->cfg.crash_loop_hold_ms);
        return;
    }
    uint64_t backoff = CLOCK_MS(s->cfg.restart_backoff_ms);
    for (unsigned k = 1; k < deaths && backoff < CLOCK_MS(s->cfg.restart_backoff_max_ms); k++)
        backoff *= 2;
    if (backoff > CLOCK_MS(s->cfg.restart_backoff_max_ms))
        backoff = CLOCK_MS(s->cfg.restart_backoff_max_ms);
    si->restart_at_ns = now + backoff;
    log_warn("%s[%u] pid died (%s); %zu arena runs reclaimed; restart in %llu ms", role, si->index, why,
             freed, (unsigned long long)(backoff / 1000000u));
}

void supervisor_spawn_reap(struct supervisor *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        bool known = false;
        for (unsigned i = 0; i < s->seg.n_instances; i++) {
            if (s->inst[i].pid == pid) {
                on_death(s, i, status);
                known = true;
                break;
            }
        }
        if (!known)
            log_debug("reaped unknown child %d", pid);
    }
}

void supervisor_spawn_tick(struct supervisor *s, uint64_t now)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        struct proto_node_instance *in = &s->seg.inst[i];
        struct sup_instance *si = &s->inst[i];
        const char *role = proto_node_role_name(si->role);
        unsigned index = si->index;

        if (s->stopping) {
            if (si->pid > 0 && now >= s->stop_deadline_ns) {
                log_warn("%s[%u] pid %d did not stop in time; killing it", role, index, si->pid);
                kill(si->pid, SIGKILL);
            }
            continue;
        }
        if (si->pid == 0) {
            bool waiting = si->state == PROTO_NODE_INST_DEAD || si->state == PROTO_NODE_INST_HELD;
            if (waiting && si->restart_at_ns && now >= si->restart_at_ns) {
                if (si->state == PROTO_NODE_INST_HELD)
                    log_info("%s[%u] hold expired; starting it again", role, index);
                spawn_one(s, i);
            }
            continue;
        }
        if (si->term_sent_ns && now - si->term_sent_ns > CLOCK_MS(s->cfg.drain_timeout_ms)) {
            log_warn("%s[%u] pid %d did not stop within the drain timeout; killing it", role, index, si->pid);
            kill(si->pid, SIGKILL);
            si->term_sent_ns = now; /* once per timeout */
            continue;
        }
        /* the role reports ready (and draining, stopped) in its own slot; that is all read from it */
        uint32_t state = atomic_load(&in->state);
        if (state == PROTO_NODE_INST_STARTING && now - si->started_ns > CLOCK_MS(s->cfg.ready_timeout_ms)) {
            log_error("%s[%u] pid %d not ready within %llu ms; killing it", role, index, si->pid,
                      (unsigned long long)s->cfg.ready_timeout_ms);
            kill(si->pid, SIGKILL);
            si->term_sent_ns = now;
        } else if (state == PROTO_NODE_INST_READY) {
            uint64_t hb = atomic_load(&in->heartbeat_ns);
            if (hb && now > hb && now - hb > CLOCK_MS(s->cfg.heartbeat_timeout_ms)) {
                log_error("%s[%u] pid %d heartbeat is %llu ms old; killing it", role, index, si->pid,
                          (unsigned long long)((now - hb) / 1000000u));
                kill(si->pid, SIGKILL);
                si->term_sent_ns = now;
            }
        }
    }
}

int supervisor_spawn_restart(struct supervisor *s, enum proto_node_role role, int index, char **detail)
{
    unsigned matched = 0;
    size_t off = 0;
    char buf[1024];

    buf[0] = '\0';
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        struct sup_instance *si = &s->inst[i];
        if (si->role != role || (index >= 0 && si->index != (unsigned)index))
            continue;
        matched++;
        if (si->pid > 0) {
            si->restart_requested = true;
            si->term_sent_ns = clock_mono_ns();
            /* draining before the signal: the steering program sends no new connection to an ingress
             * worker that would only answer it 421 (the others take them; its backlog waits for its
             * successor) */
            supervisor_spawn_set_state(s, i, PROTO_NODE_INST_DRAINING);
            if (role == PROTO_NODE_ROLE_INGRESS)
                supervisor_listen_balance(s);
            kill(si->pid, SIGTERM);
        } else {
            /* dead or held: start it now */
            si->n_deaths = 0;
            si->restart_at_ns = clock_mono_ns();
            supervisor_spawn_set_state(s, i, PROTO_NODE_INST_DEAD);
        }
        if (off < sizeof(buf))
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s[%u]", matched > 1 ? " " : "",
                                    proto_node_role_name(role), si->index);
    }
    if (!matched) {
        *detail = xasprintf("no %s instance %d", proto_node_role_name(role), index);
        return -ENOENT;
    }
    log_info("operator restart of %s", buf);
    *detail = xasprintf("restarting %s", buf);
    return 0;
}

void supervisor_spawn_signal_all(struct supervisor *s, int sig)
{
    /* ingress first, so no new mail arrives while the others drain */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < s->seg.n_instances; i++) {
            bool ingress = s->inst[i].role == PROTO_NODE_ROLE_INGRESS;
            if ((pass == 0) != ingress || s->inst[i].pid <= 0)
                continue;
            kill(s->inst[i].pid, sig);
        }
    }
}

void supervisor_spawn_signal_roles(struct supervisor *s, unsigned mask, int sig)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++)
        if ((mask & (1u << s->inst[i].role)) && s->inst[i].pid > 0)
            kill(s->inst[i].pid, sig);
}

unsigned supervisor_spawn_alive_roles(struct supervisor *s, unsigned mask)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->seg.n_instances; i++)
        n += (mask & (1u << s->inst[i].role)) && s->inst[i].pid > 0;
    return n;
}

unsigned supervisor_spawn_alive(struct supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->seg.n_instances; i++)
        n += s->inst[i].pid > 0;
    return n;
}
