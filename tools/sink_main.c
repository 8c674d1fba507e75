/*
 * ringmail-sink - io_uring SMTP sink that accepts and discards mail, for tests and capacity benchmarks
 *
 * --workers N threads, each with its own io_uring loop and its own socket per --listen address, all
 * bound with SO_REUSEPORT so that the kernel spreads new connections over the workers. Threads rather
 * than processes: one pid for a test to signal and kill, the summary summed in memory, one O_APPEND
 * --record file. SIGINT/SIGTERM (or the end of --duration) stop every worker: open sessions are cut,
 * the counters summed and the summary printed on stdout (one JSON object with --json).
 * Exit: 0 after a clean stop, 1 when the environment is unusable (bind, io_uring), 2 on bad usage.
 * See docs/tools.md.
 */
#include "tools/sink.h"
#include "tools/tool_opt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "cfg/cfg_value.h"

#define SINK_TICK_NS CLOCK_MS(100)

static struct evl_op cancel_op;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringmail-sink [options]\n"
            "  --listen HOST:PORT       address to serve, repeatable (default 127.0.0.1:2525; [v6addr]:port)\n"
            "  --workers N              threads sharing the listeners with SO_REUSEPORT (default 1)\n"
            "  --duration S             stop after S seconds (10, 1.5, 10s, 2m); default: at SIGINT/SIGTERM\n"
            "  --json                   final summary as one JSON object on stdout\n"
            "  --tempfail P%%            refuse P percent of RCPTs with a 4xx line from the responses\n"
            "  --permfail P%%            refuse P percent of RCPTs with a 5xx line from the responses\n"
            "  --responses FILE         reply lines for --tempfail/--permfail, one per line\n"
            "  --seed N                 seed of the random faults (default 1)\n"
            "  --slow-reader BYTES_PER_S  read DATA at this rate\n"
            "  --record FILE            append one JSON line per accepted message\n"
            "  --latency                delivery latency from ringmail-gen's X-Gen-Sent, in the summary\n"
            "  --max-size SIZE          SIZE limit: 100k, 10m (default 64m)\n"
            "  --max-rcpts N            recipients per message (default 1000)\n"
            "  --max-connections N      sessions per worker (default 1000)\n"
            "  --timeout S              idle session timeout (default 300)\n"
            "  --hostname NAME          name in the banner and the EHLO reply (default ringmail-sink.test)\n");
}

/* parse_pct - "5", "5%", "0.5%": 0 to 100 */
static int parse_pct(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v >= 0) || v > 100 || (*end && strcmp(end, "%") != 0))
        return -EINVAL;
    *out = v;
    return 0;
}

/* resolve - a --listen address */
static int resolve(struct sink_listen *l, const char *text, char **err)
{
    int rc = hostport_resolve(text, HOSTPORT_PORT_ZERO, AI_PASSIVE, NULL, &l->addr, &l->addrlen, err);
    if (rc == 0)
        l->text = xstrdup(text);
    return rc;
}

static void parse_args(struct sink *s, int argc, char **argv)
{
    enum { O_LISTEN = 256, O_WORKERS, O_DUR, O_JSON, O_TEMP, O_PERM, O_RESP, O_SEED, O_SLOW, O_RECORD, O_MAXSIZE,
           O_MAXRCPT, O_MAXCONN, O_TIMEOUT, O_HOST, O_HELP, O_LATENCY };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN}, {"workers", required_argument, NULL, O_WORKERS},
        {"duration", required_argument, NULL, O_DUR}, {"json", no_argument, NULL, O_JSON},
        {"tempfail", required_argument, NULL, O_TEMP}, {"permfail", required_argument, NULL, O_PERM},
        {"responses", required_argument, NULL, O_RESP}, {"seed", required_argument, NULL, O_SEED},
        {"slow-reader", required_argument, NULL, O_SLOW}, {"record", required_argument, NULL, O_RECORD},
        {"max-size", required_argument, NULL, O_MAXSIZE}, {"max-rcpts", required_argument, NULL, O_MAXRCPT},
        {"max-connections", required_argument, NULL, O_MAXCONN}, {"timeout", required_argument, NULL, O_TIMEOUT},
        {"hostname", required_argument, NULL, O_HOST}, {"help", no_argument, NULL, O_HELP},
        {"latency", no_argument, NULL, O_LATENCY},
        {NULL, 0, NULL, 0},
    };
    struct sink_opts *o = &s->o;
    uint64_t v;
    char *err = NULL;
    int ch;

    *o = (struct sink_opts){.workers = 1, .seed = 1, .max_size = 64u * 1024 * 1024, .max_rcpts = 1000,
                            .max_conns = 1000, .timeout_s = 300, .hostname = "ringmail-sink.test"};
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case O_LISTEN:
            if (o->n_listen == SINK_LISTEN_MAX) {
                rc = -E2BIG;
                break;
            }
            if (resolve(&o->listen[o->n_listen], optarg, &err) < 0) {
                fprintf(stderr, "ringmail-sink: --listen %s\n", err);
                exit(2);
            }
            o->n_listen++;
            break;
        case O_WORKERS:
            rc = cfg_value_parse_uint(optarg, SINK_WORKERS_MAX, &v) ? 0 : -EINVAL;
            o->workers = (unsigned)v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_DUR: rc = tool_opt_seconds(optarg, 1e7, &o->duration_s); break;
        case O_JSON: o->json = true; break;
        case O_TEMP: rc = parse_pct(optarg, &o->tempfail_pct); break;
        case O_PERM: rc = parse_pct(optarg, &o->permfail_pct); break;
        case O_RESP: o->responses_file = optarg; break;
        case O_SEED:
            rc = cfg_value_parse_uint(optarg, UINT64_MAX, &v) ? 0 : -EINVAL;
            o->seed = v;
            break;
        case O_SLOW:
            rc = cfg_value_parse_uint(optarg, 1ull << 40, &v) ? 0 : -EINVAL;
            o->slow_reader = v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_RECORD: o->record_file = optarg; break;
        case O_LATENCY: o->latency = true; break;
        case O_MAXSIZE:
            rc = cfg_value_parse_size(optarg, &v) && v > 0 && v <= UINT64_MAX / 2 ? 0 : -EINVAL;
            o->max_size = v;
            break;
        case O_MAXRCPT:
            rc = cfg_value_parse_uint(optarg, 100000, &v) ? 0 : -EINVAL;
            o->max_rcpts = (unsigned)v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_MAXCONN:
            rc = cfg_value_parse_uint(optarg, 1000000, &v) ? 0 : -EINVAL;
            o->max_conns = (unsigned)v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_TIMEOUT: rc = tool_opt_seconds(optarg, 1e7, &o->timeout_s); break;
        case O_HOST:
            o->hostname = optarg;
            rc = !*optarg || strpbrk(optarg, "\r\n \t") || strlen(optarg) > 255 ? -EINVAL : 0;
            break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
        if (rc) {
            fprintf(stderr, "ringmail-sink: bad value for --%s: %s\n", opts[ch - O_LISTEN].name, optarg);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringmail-sink: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
    if (o->tempfail_pct + o->permfail_pct > 100) {
        fprintf(stderr, "ringmail-sink: --tempfail and --permfail add up to more than 100%%\n");
        exit(2);
    }
    if (o->n_listen == 0 && resolve(&o->listen[o->n_listen++], "127.0.0.1:2525", &err) < 0)
        fatal("%s", err);
}

/* bind_all - one socket per listen address per worker; port 0 becomes the first socket's port */
static void bind_all(struct sink *s, struct sink_worker *ws)
{
    for (unsigned i = 0; i < s->o.n_listen; i++) {
        struct sink_listen *l = &s->o.listen[i];
        for (unsigned k = 0; k < s->o.workers; k++) {
            int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
            if (fd < 0)
                fatal("socket: %s", strerror(errno));
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
                fatal("SO_REUSEPORT: %s", strerror(errno));
            if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) < 0 || listen(fd, 4096) < 0)
                fatal("listen on %s: %s", l->text, strerror(errno));
            if (k == 0) {
                char host[NI_MAXHOST], port[NI_MAXSERV];
                socklen_t len = sizeof(l->addr);
                getsockname(fd, (struct sockaddr *)&l->addr, &len);
                l->addrlen = len;
                if (getnameinfo((struct sockaddr *)&l->addr, len, host, sizeof(host), port, sizeof(port),
                                NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
                    free(l->text);
                    l->text = xasprintf(l->addr.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
                }
                log_info("listening on %s", l->text);
            }
            ws[k].listeners[i] = (struct sink_listener){.w = &ws[k], .fd = fd};
        }
    }
}

static void accept_arm(struct sink_listener *l)
{
    struct io_uring_sqe *sqe = evl_sqe(&l->w->evl, &l->op);

    l->peerlen = sizeof(l->peer);
    io_uring_prep_accept(sqe, l->fd, (struct sockaddr *)&l->peer, &l->peerlen, SOCK_CLOEXEC);
    l->armed = true;
}

static void on_accept(struct evl *evl, struct evl_op *op, int res, unsigned flags)
{
    struct sink_listener *l = op->owner;

    l->armed = false;
    if (res < 0) {
        /* EMFILE and friends: the next tick tries again instead of spinning now */
        if (res != -ECANCELED)
            log_warn("accept: %s", strerror(-res));
        return;
    }
    if (atomic_load(&l->w->s->stop)) {
        close(res);
        return;
    }
    sink_conn_new(l->w, res, (struct sockaddr *)&l->peer, l->peerlen);
    accept_arm(l);
}

static void on_tick(struct evl *evl, struct evl_op *op, int res, unsigned flags)
{
    struct evl_timer *t = (struct evl_timer *)op;
    bool *due = op->owner;

    t->armed = false;
    *due = true;
}

static void *worker_main(void *arg)
{
    struct sink_worker *w = arg;
    struct sink *s = w->s;
    bool due = false, stopping = false;
    struct evl_timer tick = {.op = {.cb = on_tick, .owner = &due}};

    for (unsigned i = 0; i < s->o.n_listen; i++) {
        w->listeners[i].op = (struct evl_op){.cb = on_accept, .owner = &w->listeners[i]};
        accept_arm(&w->listeners[i]);
    }
    evl_timer_arm(&w->evl, &tick, SINK_TICK_NS);
    for (;;) {
        bool armed = false;
        int rc;

        if (!stopping && atomic_load(&s->stop)) {
            stopping = true;
            for (unsigned i = 0; i < s->o.n_listen; i++)
                if (w->listeners[i].armed) {
                    struct io_uring_sqe *sqe = evl_sqe(&w->evl, &cancel_op);
                    io_uring_prep_cancel(sqe, &w->listeners[i].op, 0);
                }
            for (struct sink_conn *c = w->conns, *next; c; c = next) {
                next = c->next;
                sink_conn_abort(c);
            }
        }
        if (due) {
            uint64_t now = clock_mono_ns();
            due = false;
            for (struct sink_conn *c = w->conns, *next; c; c = next) {
                next = c->next;
                sink_conn_tick(c, now);
            }
            for (unsigned i = 0; i < s->o.n_listen && !stopping; i++)
                if (!w->listeners[i].armed)
                    accept_arm(&w->listeners[i]);
            if (!stopping)
                evl_timer_arm(&w->evl, &tick, SINK_TICK_NS);
        }
        for (unsigned i = 0; i < s->o.n_listen; i++)
            armed |= w->listeners[i].armed;
        if (stopping && !armed && !tick.armed && w->n_conns == 0)
            break;
        rc = evl_run_once(&w->evl, true);
        if (rc < 0)
            fatal("io_uring: %s", strerror(-rc));
    }
    return NULL;
}

static void sum(struct sink_stats *t, const struct sink_stats *a)
{
    t->connections += a->connections;
    t->messages += a->messages;
    t->recipients += a->recipients;
    t->tempfail += a->tempfail;
    t->permfail += a->permfail;
    t->closed_421 += a->closed_421;
    t->disconnects += a->disconnects;
    t->bytes += a->bytes;
    t->rejected += a->rejected;
    t->errors += a->errors;
    t->timeouts += a->timeouts;
    t->refused += a->refused;
    t->latency_missing += a->latency_missing;
    lat_hist_merge(&t->latency, &a->latency);
    if (a->first_conn_ns && (!t->first_conn_ns || a->first_conn_ns < t->first_conn_ns))
        t->first_conn_ns = a->first_conn_ns;
    if (a->last_msg_ns > t->last_msg_ns)
        t->last_msg_ns = a->last_msg_ns;
}

/* wait_stop - SIGINT, SIGTERM or the end of --duration, whichever comes first */
static void wait_stop(const struct sink *s, const sigset_t *set)
{
    for (;;) {
        struct timespec ts;
        int sig;

        if (s->o.duration_s <= 0) {
            if (sigwait(set, &sig) == 0)
                return;
            continue;
        }
        uint64_t end = s->start_ns + (uint64_t)(s->o.duration_s * 1e9), now = clock_mono_ns();
        if (now >= end)
            return;
        ts.tv_sec = (time_t)((end - now) / 1000000000u);
        ts.tv_nsec = (long)((end - now) % 1000000000u);
        sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return;
    }
}

int main(int argc, char **argv)
{
    struct sink *s = xcalloc(1, sizeof(*s));
    struct sink_worker *ws;
    struct sink_stats total = {0}, *per;
    struct rlimit rl;
    sigset_t set;
    char *err = NULL;

    log_init("ringmail-sink", -1);
    signal(SIGPIPE, SIG_IGN);
    parse_args(s, argc, argv);
    if (sink_fault_load(&s->faults, s->o.responses_file, &err) < 0)
        fatal("%s", err);
    if (s->o.tempfail_pct > 0 && s->faults.n_temp == 0)
        fatal("--tempfail: no 4xx line in %s", s->o.responses_file);
    if (s->o.permfail_pct > 0 && s->faults.n_perm == 0)
        fatal("--permfail: no 5xx line in %s", s->o.responses_file);
    s->record_fd = -1;
    if (s->o.record_file) {
        s->record_fd = open(s->o.record_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->record_fd < 0)
            fatal("%s: %s", s->o.record_file, strerror(errno));
    }
    s->timeout_ns = (uint64_t)(s->o.timeout_s * 1e9);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ws = xcalloc(s->o.workers, sizeof(*ws));
    bind_all(s, ws);
    for (unsigned k = 0; k < s->o.workers; k++) {
        ws[k].s = s;
        ws[k].index = k;
        ws[k].rng = s->o.seed * 0x9e3779b97f4a7c15ull + k;
        if (evl_init(&ws[k].evl, 1024, &err) < 0)
            fatal("%s", err);
    }
    /* the workers inherit the blocked signals: only sigwait() below sees them */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    s->start_ns = clock_mono_ns();
    pthread_t *th = xcalloc(s->o.workers, sizeof(*th));
    for (unsigned k = 0; k < s->o.workers; k++) {
        int rc = pthread_create(&th[k], NULL, worker_main, &ws[k]);
        if (rc)
            fatal("pthread_create: %s", strerror(rc));
    }
    wait_stop(s, &set);
    atomic_store(&s->stop, true);
    per = xcalloc(s->o.workers, sizeof(*per));
    for (unsigned k = 0; k < s->o.workers; k++) {
        pthread_join(th[k], NULL);
        sum(&total, &ws[k].st);
        per[k] = ws[k].st;
    }
    sink_record_summary(s, &total, per, s->o.workers, (double)(clock_mono_ns() - s->start_ns) / 1e9);
    free(per);
    for (unsigned k = 0; k < s->o.workers; k++) {
        evl_fini(&ws[k].evl);
        for (unsigned i = 0; i < s->o.n_listen; i++)
            close(ws[k].listeners[i].fd);
    }
    if (s->record_fd >= 0)
        close(s->record_fd);
    for (unsigned i = 0; i < s->o.n_listen; i++)
        free(s->o.listen[i].text);
    sink_fault_free(&s->faults);
    free(th);
    free(ws);
    free(s);
    return 0;
}
