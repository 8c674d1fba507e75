/*
 * ringmaild - the supervisor: sockets, shared memory, role processes, reload, stop
 *
 * ringmaild [--config FILE] [--data-dir DIR] [--bin-dir DIR] [--check-config]
 *
 * Start-up: load and validate the configuration (every error with file:line, then exit 1),
 * create the data directory, the shared-memory segment and one doorbell eventfd per role
 * instance, open the SMTP listeners, start the admin HTTP API, then fork/exec every role.
 * Started as root, the roles run as [node] user; the supervisor keeps root to restart them.
 * SIGHUP (or `ringctl reload`): validate the file again; if it is good, apply it and signal
 * every role to reload; if not, keep running on the old one and report why.
 * SIGTERM/SIGINT: stop ingress first, then the others; SIGKILL whatever is left after
 * [supervisor] drain_timeout; exit 0.
 */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroup.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "dkim/dkim_key.h"
#include "policy/shaping.h"

#define SUP_TICK_MS 50

static void usage(FILE *f)
{
    fprintf(f, "usage: ringmaild [--config FILE] [--data-dir DIR] [--bin-dir DIR] [--check-config]\n"
               "  --config FILE   ringmail.toml (default: the embedded default configuration)\n"
               "  --data-dir DIR  overrides [node] data_dir\n"
               "  --bin-dir DIR   where ringmail-ROLE executables are (default: next to ringmaild)\n"
               "  --check-config  validate the configuration and exit (0 valid, 1 not)\n");
}

/* load_config - the file (NULL: the embedded default), its DKIM keys and its shaping, all validated; *sh gets
 * the shaping */
static int load_config(const char *path, const char *data_dir, struct cfg *out, struct shaping **sh, char **err)
{
    cfg_default(out);
    if (path) {
        int rc = cfg_load_file(out, path, err);
        if (rc < 0)
            return rc;
    }
    if (data_dir) {
        free(out->data_dir);
        out->data_dir = xstrdup(data_dir);
    }
    /* every [[dkim]] key is read once here, so that a bad one stops the start or refuses the reload */
    struct dkim_keyset *keys = NULL;
    int rc = dkim_key_load(out, &keys, err);
    dkim_key_free(keys);
    if (rc < 0)
        return rc;
    return supervisor_shaping_load(out, sh, err);
}

/* describe_static_changes - keys that changed but take effect only at a node restart */
static void describe_static_changes(const struct cfg *a, const struct cfg *b, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
#define CHANGED(cond, name)                                                                                    \
    do {                                                                                                       \
        if ((cond) && off < len)                                                                               \
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", name);                      \
    } while (0)
    CHANGED(a->ingress_workers != b->ingress_workers, "ingress.workers");
    CHANGED(a->egress_workers != b->egress_workers, "egress.workers");
    CHANGED(a->arena_bytes != b->arena_bytes, "shm.arena_size");
    CHANGED(a->ring_slots != b->ring_slots, "shm.ring_slots");
    CHANGED(a->hugepages != b->hugepages, "shm.hugepages");
    CHANGED(strcmp(a->data_dir, b->data_dir) != 0, "node.data_dir");
    CHANGED(strcmp(a->user, b->user) != 0 || strcmp(a->spool_user, b->spool_user) != 0 ||
                strcmp(a->scheduler_user, b->scheduler_user) != 0 || strcmp(a->ingress_user, b->ingress_user) != 0 ||
                strcmp(a->egress_user, b->egress_user) != 0,
            "node.user (and the role users)");
    CHANGED(strcmp(a->admin_listen, b->admin_listen) != 0, "admin.listen");
    CHANGED(a->n_admin_trusted != b->n_admin_trusted ||
                memcmp(a->admin_trusted, b->admin_trusted, a->n_admin_trusted * sizeof(a->admin_trusted[0])) != 0,
            "admin.trusted_networks");
    CHANGED(strcmp(a->admin_token_file, b->admin_token_file) != 0, "admin.token_file");
    CHANGED(strcmp(a->admin_socket, b->admin_socket) != 0, "admin.socket");
    CHANGED(strcmp(a->admin_group, b->admin_group) != 0, "admin.group");
    bool listeners = a->n_listeners != b->n_listeners;
    for (size_t i = 0; !listeners && i < a->n_listeners; i++)
        listeners = strcmp(a->listeners[i].address, b->listeners[i].address) != 0;
    CHANGED(listeners, "listener");
    bool http = a->n_http_listeners != b->n_http_listeners;
    for (size_t i = 0; !http && i < a->n_http_listeners; i++)
        http = strcmp(a->http_listeners[i].listen, b->http_listeners[i].listen) != 0;
    CHANGED(http, "http_listener");
    CHANGED(a->metrics_max_sites != b->metrics_max_sites || a->metrics_max_providers != b->metrics_max_providers ||
                a->metrics_max_sources != b->metrics_max_sources,
            "metrics");
#undef CHANGED
}

static int reload(struct supervisor *s, char **detail);

/* supervisor_reload - validate and apply the configuration file again; systemd is told RELOADING=1 first and
 * READY=1 once the roles applied it (or at once when it was refused) */
int supervisor_reload(struct supervisor *s, char **detail)
{
    supervisor_notify_reloading(s);
    int rc = reload(s, detail);
    supervisor_notify_reloaded(s, rc);
    return rc;
}

static int reload(struct supervisor *s, char **detail)
{
    struct cfg fresh;
    char *err = NULL;
    char statics[512];
    struct shaping *sh = NULL;

    if (load_config(s->config_path, s->data_dir_arg, &fresh, &sh, &err) < 0) {
        log_error("reload refused: %s is not valid; still running on the previous configuration:\n%s",
                  s->config_path, err ? err : "");
        *detail = xasprintf("configuration not valid, still running on the previous one:\n%s", err ? err : "");
        free(err);
        cfg_fini(&fresh);
        return -EINVAL;
    }
    if (fresh.data_dir[0] != '/') {
        /* compare like with like: the running one was made absolute at start */
        char *abs = realpath(fresh.data_dir, NULL);
        if (abs) {
            free(fresh.data_dir);
            fresh.data_dir = abs;
        }
    }
    describe_static_changes(&s->cfg, &fresh, statics, sizeof(statics));
    shaping_free(s->shaping);
    s->shaping = sh;
    /* what the supervisor itself uses and can change while running; roles reload their own part */
    s->cfg.log_level = fresh.log_level;
    s->cfg.restart_backoff_ms = fresh.restart_backoff_ms;
    s->cfg.restart_backoff_max_ms = fresh.restart_backoff_max_ms;
    s->cfg.crash_loop_limit = fresh.crash_loop_limit;
    s->cfg.crash_loop_window_ms = fresh.crash_loop_window_ms;
    s->cfg.crash_loop_hold_ms = fresh.crash_loop_hold_ms;
    s->cfg.ready_timeout_ms = fresh.ready_timeout_ms;
    s->cfg.heartbeat_timeout_ms = fresh.heartbeat_timeout_ms;
    s->cfg.drain_timeout_ms = fresh.drain_timeout_ms;
    cfg_fini(&fresh);

    log_set_level(s->cfg.log_level);
    s->reload_gen++;
    atomic_store(&s->seg.hdr->reload_gen, s->reload_gen);
    supervisor_spawn_signal_all(s, SIGHUP);
    if (statics[0]) {
        log_warn("reload %u applied; these changed but take effect only after a node restart: %s", s->reload_gen,
                 statics);
        *detail = xasprintf("reloaded (generation %u); needs a node restart to change: %s", s->reload_gen, statics);
    } else {
        log_info("reload %u applied", s->reload_gen);
        *detail = xasprintf("reloaded (generation %u)", s->reload_gen);
    }
    return 0;
}

static void handle_request(struct supervisor *s)
{
    uint64_t v;
    ssize_t r = read(s->req_efd, &v, sizeof(v));
    (void)r;

    pthread_mutex_lock(&s->req_lock);
    struct sup_request *req = s->pending;
    if (req && !req->done) {
        switch (req->kind) {
        case SUP_REQ_RESTART:
            req->status = s->stopping ? -ESHUTDOWN : supervisor_spawn_restart(s, req->role, req->index, &req->detail);
            if (s->stopping)
                req->detail = xstrdup("the node is stopping");
            break;
        case SUP_REQ_SHAPING_RESOLVE:
            supervisor_shaping_resolve(s, req);
            break;
        case SUP_REQ_SHAPING_SET:
            supervisor_shaping_set(s, req);
            if (req->status == 0 || s->last_reload_detail) {
                s->last_reload_status = req->status;
                free(s->last_reload_detail);
                s->last_reload_detail = xstrdup(req->detail);
            }
            break;
        case SUP_REQ_RELOAD:
            req->status = supervisor_reload(s, &req->detail);
            s->last_reload_status = req->status;
            free(s->last_reload_detail);
            s->last_reload_detail = xstrdup(req->detail);
            break;
        default:
            req->status = -EINVAL;
            break;
        }
        req->done = true;
        s->pending = NULL;
        pthread_cond_broadcast(&s->req_cond);
    }
    pthread_mutex_unlock(&s->req_lock);
}

void supervisor_request(struct supervisor *s, struct sup_request *req)
{
    uint64_t one = 1;

    pthread_mutex_lock(&s->req_lock);
    while (s->pending && !s->requests_closed)
        pthread_cond_wait(&s->req_cond, &s->req_lock);
    if (s->requests_closed) {
        req->status = -ESHUTDOWN;
        req->detail = xstrdup("the node is stopping");
        req->done = true;
        pthread_mutex_unlock(&s->req_lock);
        return;
    }
    s->pending = req;
    ssize_t w = write(s->req_efd, &one, sizeof(one));
    (void)w;
    while (!req->done)
        pthread_cond_wait(&s->req_cond, &s->req_lock);
    pthread_mutex_unlock(&s->req_lock);
}

#define STOP_EDGE ((1u << PROTO_NODE_ROLE_INGRESS) | (1u << PROTO_NODE_ROLE_EGRESS))
#define STOP_CORE ((1u << PROTO_NODE_ROLE_SPOOL) | (1u << PROTO_NODE_ROLE_SCHEDULER))

/* drain_roles - mark the running instances of `mask` draining (or stopped when not running) and SIGTERM them */
static void drain_roles(struct supervisor *s, unsigned mask)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        if (!(mask & (1u << s->inst[i].role)))
            continue;
        supervisor_spawn_set_state(s, i,
                                   s->inst[i].pid <= 0 ? PROTO_NODE_INST_STOPPED : PROTO_NODE_INST_DRAINING);
    }
    supervisor_spawn_signal_roles(s, mask, SIGTERM);
}

/*
 * begin_stop - the node drains in two steps: ingress and egress first, so no new mail comes in and the
 * deliveries in flight finish and report to a spool and scheduler that still listen; then the spool
 * and scheduler, once the others are gone or half the drain time has passed.
 */
static void begin_stop(struct supervisor *s, const char *why)
{
    if (s->stopping)
        return;
    log_info("%s: stopping the node (drain timeout %llu ms)", why, (unsigned long long)s->cfg.drain_timeout_ms);
    uint64_t now = clock_mono_ns();
    s->stopping = true;
    s->stop_deadline_ns = now + CLOCK_MS(s->cfg.drain_timeout_ms);
    s->stop_core_at_ns = now + CLOCK_MS(s->cfg.drain_timeout_ms) / 2;
    atomic_store(&s->seg.hdr->stopping, 1);
    supervisor_notify_stopping(s);
    drain_roles(s, STOP_EDGE);
}

static void stop_tick(struct supervisor *s)
{
    if (!s->stopping || s->stop_core_sent)
        return;
    if (supervisor_spawn_alive_roles(s, STOP_EDGE) == 0 || clock_mono_ns() >= s->stop_core_at_ns) {
        s->stop_core_sent = true;
        drain_roles(s, STOP_CORE);
    }
}

static void setup_user(struct supervisor *s)
{
    if (geteuid() != 0)
        return;
    struct passwd *pw = getpwnam(s->cfg.user);
    if (!pw)
        fatal("[node] user \"%s\" does not exist (roles never run as root)", s->cfg.user);
    if (pw->pw_uid == 0)
        fatal("[node] user \"%s\" is root; choose an unprivileged user", s->cfg.user);
    s->run_uid = pw->pw_uid;
    s->run_gid = pw->pw_gid;
    s->drop_privileges = true;
    /* PRIV-01: a user per role when configured; each keeps the node user's group (config files, the
     * trace socket and the admin token are the group's), and none may be root */
    const char *names[PROTO_NODE_ROLE__MAX] = {
        [PROTO_NODE_ROLE_SPOOL] = s->cfg.spool_user,
        [PROTO_NODE_ROLE_SCHEDULER] = s->cfg.scheduler_user,
        [PROTO_NODE_ROLE_INGRESS] = s->cfg.ingress_user,
        [PROTO_NODE_ROLE_EGRESS] = s->cfg.egress_user,
    };
    for (unsigned r = 0; r < PROTO_NODE_ROLE__MAX; r++) {
        s->role_uid[r] = s->run_uid;
        if (!names[r] || !names[r][0])
            continue;
        struct passwd *rp = getpwnam(names[r]);
        if (!rp)
            fatal("[node] %s_user \"%s\" does not exist", proto_node_role_name((enum proto_node_role)r), names[r]);
        if (rp->pw_uid == 0)
            fatal("[node] %s_user \"%s\" is root; choose an unprivileged user",
                  proto_node_role_name((enum proto_node_role)r), names[r]);
        s->role_uid[r] = rp->pw_uid;
    }
}

/* setup_fd_limit - the roles inherit RLIMIT_NOFILE: an ingress worker holds up to [ingress] max_connections
 * sessions plus its own files, an egress worker its connections. Raise the hard limit (as root) to what
 * that needs, at least 65536 and at most fs.nr_open, and the soft limit with it; a role raises its own
 * soft limit within the hard one and warns when it is still short. */
static void setup_fd_limit(const struct supervisor *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)s->cfg.ingress_max_connections + 1024;
    if (want < 65536)
        want = 65536;
    unsigned long long nr_open = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%llu", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    if (nr_open && want > nr_open)
        want = (rlim_t)nr_open;
    struct rlimit up = rl;
    if (up.rlim_max != RLIM_INFINITY && up.rlim_max < want)
        up.rlim_max = want;
    up.rlim_cur = up.rlim_max == RLIM_INFINITY || want < up.rlim_max ? want : up.rlim_max;
    if (up.rlim_cur < rl.rlim_cur)
        up.rlim_cur = rl.rlim_cur;
    if (up.rlim_cur == rl.rlim_cur && up.rlim_max == rl.rlim_max)
        return;
    if (setrlimit(RLIMIT_NOFILE, &up) < 0) { /* not root: the soft limit up to the hard one */
        up.rlim_max = rl.rlim_max;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max ? want : rl.rlim_max;
        if (up.rlim_cur <= rl.rlim_cur || setrlimit(RLIMIT_NOFILE, &up) < 0)
            up = rl;
    }
    log_info("file descriptors: limit %llu (hard %llu; was %llu/%llu)", (unsigned long long)up.rlim_cur,
             (unsigned long long)up.rlim_max, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
}

/* the tree under a directory whose owner changes follows it (nftw has no context argument) */
static uid_t chown_uid;
static gid_t chown_gid;
static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (lchown(path, chown_uid, chown_gid) < 0)
        log_warn("cannot hand %s to uid %u: %s", path, (unsigned)chown_uid, strerror(errno));
    return 0;
}

/*
 * own_dir - create `path` if missing and hand it to uid (the node user's group) with `mode`, through a
 * descriptor opened with O_NOFOLLOW: a symbolic link planted at the last component is refused, not
 * followed, and nothing can swap the directory between the check and the chown. When the owner changes
 * (a [node] spool_user set on an existing spool), everything under it follows, links not followed.
 */
static void own_dir(struct supervisor *s, const char *path, uid_t uid, mode_t mode, const char *what)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        fatal("cannot create %s %s: %s", what, path, strerror(errno));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat lst;
        if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
            fatal("%s %s is a symbolic link: configure the directory's real path", what, path);
        fatal("%s %s: %s", what, path, strerror(e));
    }
    if (!s->drop_privileges) {
        close(fd);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        fatal("%s %s: %s", what, path, strerror(errno));
    if (fchown(fd, uid, s->run_gid) < 0 || fchmod(fd, mode) < 0)
        fatal("cannot hand %s %s to uid %u: %s", what, path, (unsigned)uid, strerror(errno));
    close(fd);
    if (st.st_uid != uid) {
        chown_uid = uid;
        chown_gid = s->run_gid;
        if (nftw(path, chown_entry, 16, FTW_PHYS) < 0)
            log_warn("cannot walk %s %s to hand it over: %s", what, path, strerror(errno));
        log_info("%s %s handed to uid %u", what, path, (unsigned)uid);
    }
}

static void setup_data_dir(struct supervisor *s)
{
    own_dir(s, s->cfg.data_dir, s->run_uid, 0750, "data directory");
    char *abs = realpath(s->cfg.data_dir, NULL);
    if (!abs)
        fatal("data directory %s: %s", s->cfg.data_dir, strerror(errno));
    free(s->cfg.data_dir);
    s->cfg.data_dir = xstrdup(abs);
    free(abs);
    /* the spool's database and logs (also a [spool] dir or [log] dir outside the data directory, as the
     * installed layout's /var/log/ringmail) are made here, while root, and belong to the spool's user
     * alone: no other role can open them (PRIV-01) */
    uid_t spool_uid = s->drop_privileges ? s->role_uid[PROTO_NODE_ROLE_SPOOL] : 0;
    char *spool = s->cfg.spool_dir && s->cfg.spool_dir[0] ? xstrdup(s->cfg.spool_dir)
                                                           : xasprintf("%s/spool", s->cfg.data_dir);
    char *logs = s->cfg.log_dir && s->cfg.log_dir[0] ? xstrdup(s->cfg.log_dir) : xasprintf("%s/logs", s->cfg.data_dir);
    own_dir(s, spool, spool_uid, 0700, "spool directory");
    own_dir(s, logs, spool_uid, 0700, "log directory");
    /* what the spool publishes for the other roles to read (the suppression snapshot): the spool's, the
     * node group may read */
    char *published = xasprintf("%s/published", s->cfg.data_dir);
    own_dir(s, published, spool_uid, 0750, "published directory");
    free(published);
    free(spool);
    free(logs);
}

#ifndef RINGMAIL_ROLE_DIR
#define RINGMAIL_ROLE_DIR "/usr/lib/ringmail"
#endif

/* default_bin_dir - the directory of ringmaild itself when the roles are there (the build tree, a
 * self-contained copy), else where `meson install` put them (RINGMAIL_ROLE_DIR: /usr/lib/ringmail) */
static char *default_bin_dir(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        fatal("cannot find my own executable (/proc/self/exe): %s", strerror(errno));
    buf[n] = '\0';
    char *dir = xstrdup(dirname(buf));
    char *probe = xasprintf("%s/ringmail-spool", dir);
    bool here = access(probe, X_OK) == 0;
    free(probe);
    if (here)
        return dir;
    free(dir);
    return xstrdup(RINGMAIL_ROLE_DIR);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"data-dir", required_argument, NULL, 'd'},
        {"bin-dir", required_argument, NULL, 'b'}, {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct supervisor sup, *s = &sup;
    const char *bin_dir = NULL;
    bool check_only = false;
    char *err = NULL;
    int c;

    memset(s, 0, sizeof(*s));
    log_init("ringmaild", -1);
    while ((c = getopt_long(argc, argv, "c:d:b:kh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            s->config_path = optarg;
            break;
        case 'd':
            s->data_dir_arg = optarg;
            break;
        case 'b':
            bin_dir = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    char *config_abs = NULL;
    if (s->config_path) {
        /* roles and reloads must find the file whatever their working directory */
        config_abs = realpath(s->config_path, NULL);
        if (config_abs)
            s->config_path = config_abs;
    }
    if (load_config(s->config_path, s->data_dir_arg, &s->cfg, &s->shaping, &err) < 0) {
        fprintf(stderr, "%s", err ? err : "");
        if (err && err[0] && err[strlen(err) - 1] != '\n')
            fputc('\n', stderr);
        fprintf(stderr, "ringmaild: configuration %s is not valid\n", s->config_path);
        free(err);
        cfg_fini(&s->cfg);
        free(config_abs);
        return 1;
    }
    if (check_only) {
        printf("configuration %s is valid\n", s->config_path ? s->config_path : "(embedded default)");
        shaping_free(s->shaping);
        cfg_fini(&s->cfg);
        free(config_abs);
        return 0;
    }
    log_set_level(s->cfg.log_level);
    s->started_ns = clock_mono_ns();
    s->bin_dir = bin_dir ? xstrdup(bin_dir) : (s->cfg.bin_dir ? xstrdup(s->cfg.bin_dir) : default_bin_dir());
    setup_user(s);
    setup_data_dir(s);
    setup_fd_limit(s);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0)
        fatal("signalfd: %s", strerror(errno));

    if (s->cfg.ingress_workers_auto || s->cfg.egress_workers_auto)
        log_info("workers: ingress %u%s, egress %u%s; this process may use %u CPUs", s->cfg.ingress_workers,
                 s->cfg.ingress_workers_auto ? " (auto)" : "", s->cfg.egress_workers,
                 s->cfg.egress_workers_auto ? " (auto)" : "", cgroup_cpus());
    struct shm_segment_params sp = {
        .n_ingress = s->cfg.ingress_workers,
        .n_egress = s->cfg.egress_workers,
        .ring_slots = s->cfg.ring_slots,
        .arena_bytes = s->cfg.arena_bytes,
        .huge = (enum shm_huge_mode)s->cfg.hugepages,
    };
    if (shm_segment_create(&s->seg, &sp, &err) < 0)
        fatal("shared memory: %s", err);
    log_info("shared memory: %llu MiB on %s pages (%u instances, %u rings of %u slots, arena %llu MiB)%s",
             (unsigned long long)(s->seg.pages.size >> 20), shm_pages_source_name(s->seg.pages.source),
             s->seg.n_instances, s->seg.n_rings, s->seg.ring_slots,
             (unsigned long long)(s->cfg.arena_bytes >> 20),
             s->seg.pages.source == SHM_PAGES_SMALL ? "; `ringctl doctor` explains how to reserve hugepages" : "");
    atomic_store(&s->seg.hdr->supervisor_pid, (int32_t)getpid());
    supervisor_spawn_init(s);
    size_t off = 0;
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        /* doorbells are inherited by every role (no close-on-exec), so the number is valid everywhere;
         * roles take the numbers from --bell-fds, never from the segment */
        int efd = eventfd(0, EFD_NONBLOCK);
        if (efd < 0)
            fatal("eventfd: %s", strerror(errno));
        s->bell_fd[i] = efd;
        shm_bell_init(shm_segment_bell(&s->seg.inst[i]), efd);
        int w = snprintf(s->bell_fds_arg + off, sizeof(s->bell_fds_arg) - off, "%s%d", i ? "," : "", efd);
        if (w < 0 || (size_t)w >= sizeof(s->bell_fds_arg) - off)
            fatal("eventfd %d: the --bell-fds list does not fit", efd);
        off += (size_t)w;
    }
    if (supervisor_listen_open(s, &err) < 0)
        fatal("%s", err);

    pthread_mutex_init(&s->req_lock, NULL);
    pthread_cond_init(&s->req_cond, NULL);
    s->req_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->req_efd < 0)
        fatal("eventfd: %s", strerror(errno));
    if (supervisor_admin_start(s, &err) < 0)
        fatal("admin API: %s", err);

    log_info("node %s starting from %s (data %s, roles from %s%s%s)", s->cfg.node_id,
             s->config_path ? s->config_path : "the embedded default configuration", s->cfg.data_dir, s->bin_dir,
             s->drop_privileges ? ", running as " : "", s->drop_privileges ? s->cfg.user : "");
    supervisor_notify_init(s);
    supervisor_mem_init(s); /* the level is in the header before any ingress reads it */
    supervisor_spawn_all(s);

    for (;;) {
        struct pollfd pfd[2] = {{.fd = sig_fd, .events = POLLIN}, {.fd = s->req_efd, .events = POLLIN}};
        int n = poll(pfd, 2, SUP_TICK_MS);
        if (n < 0 && errno != EINTR)
            fatal("poll: %s", strerror(errno));
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGCHLD:
                    break; /* reaped below, every time round */
                case SIGHUP: {
                    char *detail = NULL;
                    pthread_mutex_lock(&s->req_lock);
                    s->last_reload_status = supervisor_reload(s, &detail);
                    free(s->last_reload_detail);
                    s->last_reload_detail = detail;
                    pthread_mutex_unlock(&s->req_lock);
                    break;
                }
                default:
                    begin_stop(s, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
                    break;
                }
            }
        }
        if (n > 0 && (pfd[1].revents & POLLIN))
            handle_request(s);
        supervisor_spawn_reap(s);
        supervisor_spawn_tick(s, clock_mono_ns());
        stop_tick(s);
        supervisor_listen_balance(s);
        supervisor_admin_tick(s, clock_mono_ns());
        supervisor_notify_tick(s, clock_mono_ns());
        supervisor_mem_tick(s, clock_mono_ns());
        if (s->stopping && supervisor_spawn_alive(s) == 0)
            break;
    }
    handle_request(s);
    pthread_mutex_lock(&s->req_lock);
    s->requests_closed = true;
    if (s->pending) {
        s->pending->status = -ESHUTDOWN;
        s->pending->detail = xstrdup("the node is stopping");
        s->pending->done = true;
        s->pending = NULL;
    }
    pthread_cond_broadcast(&s->req_cond);
    pthread_mutex_unlock(&s->req_lock);
    supervisor_admin_stop(s);
    supervisor_listen_close(s);
    free(s->steering_note);
    log_info("node stopped");
    shm_segment_close(&s->seg);
    supervisor_mem_fini(s);
    cfg_fini(&s->cfg);
    shaping_free(s->shaping);
    free(s->bin_dir);
    free(s->last_reload_detail);
    free(config_abs);
    return 0;
}
