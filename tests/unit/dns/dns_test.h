/*
 * dns_test - the harness shared by dns_unbound_test and dns_fault_test: child processes killed by pid
 * (also on alarm and at exit), loopback ports, driving the loop with a guard timer, and lookups
 * whose results are captured and checked to end exactly once
 *
 * Static inline, with the programs' state: each program includes this once, after tests/lib/check.h.
 */
#ifndef RINGMAIL_TEST_DNS_TEST_H
#define RINGMAIL_TEST_DNS_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "dns/dns.h"
#include "rt/evl.h"
#include "base/log.h"
#include "base/mem.h"

static struct evl L;
static char tmpdir[64];
static pid_t ub_pid = -1, garbage_pid = -1;

/* ---- children ---- */

static inline void child_stop(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = -1;
            return;
        }
        usleep(10000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = -1;
}

static inline void cleanup(void)
{
    char path[128];

    child_stop(&ub_pid);
    child_stop(&garbage_pid);
    if (!tmpdir[0])
        return;
    for (const char *const *f = (const char *const[]){"unbound.conf", "unbound.log", "unbound.pid", NULL}; *f; f++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, *f);
        unlink(path);
    }
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

static inline void on_alarm(int sig)
{
    /* a hung loop must not leave unbound behind: kill by pid, then fail */
    if (ub_pid > 0)
        kill(ub_pid, SIGKILL);
    if (garbage_pid > 0)
        kill(garbage_pid, SIGKILL);
    _exit(1);
}

/* free_port - a port free for both UDP and TCP on 127.0.0.1 right now (0 on failure) */
static inline int free_port(void)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port = 0;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(u, (struct sockaddr *)&a, &alen) == 0 && bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
            port = ntohs(a.sin_port);
        close(u);
        close(t);
        if (port)
            return port;
    }
    return 0;
}

/* udp_bound - a UDP socket on 127.0.0.1 that nobody reads: a DNS server that never answers */
static inline int udp_bound(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        perror("udp socket");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}


/* ---- loop driving ---- */

static struct evl_timer guard;
static bool guard_fired;

static inline void on_guard(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    guard.armed = false;
    if (res == -ETIME)
        guard_fired = true;
}

/* run_until - run the loop until *count reaches want or ms pass; true when it got there */
static inline bool run_until(const int *count, int want, unsigned ms)
{
    guard_fired = false;
    guard.op.cb = on_guard;
    evl_timer_arm(&L, &guard, CLOCK_MS(ms));
    while (*count < want && !guard_fired)
        evl_run_once(&L, true);
    if (guard.armed) {
        struct io_uring_sqe *sqe = evl_sqe(&L, NULL);
        io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&guard.op, 0);
        while (guard.armed)
            evl_run_once(&L, true);
    }
    return *count >= want;
}

/* settle - let cancellations of a freed resolver complete */
static inline void settle(void)
{
    static const int never = 0;
    run_until(&never, 1, 50);
}

/* ---- result capture ---- */

static int done;

struct mx_got {
    int calls;
    enum dns_status st;
    bool implicit;
    uint32_t ttl;
    size_t n;
    char host[8][DNS_NAME_MAX + 1];
    unsigned pref[8];
    char *site;
    char reason[256];
    uint64_t at_ns;
};

struct host_got {
    int calls;
    enum dns_status st;
    uint32_t ttl;
    size_t n;
    struct sockaddr_storage addr[8];
    char reason[256];
};

static inline void on_mx(void *arg, const struct dns_mx_result *res)
{
    struct mx_got *g = arg;

    g->calls++;
    g->st = res->status;
    g->implicit = res->implicit;
    g->ttl = res->ttl;
    g->n = res->n_mx;
    g->at_ns = clock_mono_ns();
    for (size_t i = 0; i < res->n_mx && i < 8; i++) {
        snprintf(g->host[i], sizeof(g->host[i]), "%s", res->mx[i].host);
        g->pref[i] = res->mx[i].pref;
    }
    free(g->site);
    g->site = dns_site_name(res);
    snprintf(g->reason, sizeof(g->reason), "%s", res->reason);
    done++;
}

static inline void on_host(void *arg, const struct dns_host_result *res)
{
    struct host_got *g = arg;

    g->calls++;
    g->st = res->status;
    g->ttl = res->ttl;
    g->n = res->n_addr;
    for (size_t i = 0; i < res->n_addr && i < 8; i++)
        g->addr[i] = res->addr[i];
    snprintf(g->reason, sizeof(g->reason), "%s", res->reason);
    done++;
}

static inline struct dns_resolver *resolver(const char *srv, unsigned timeout_ms, unsigned tries, unsigned cache_max,
                                     unsigned neg_min, unsigned neg_max)
{
    struct dns_config c = {.servers = srv, .timeout_ms = timeout_ms, .tries = tries, .cache_max = cache_max,
                           .neg_ttl_min_s = neg_min, .neg_ttl_max_s = neg_max};
    char *err = NULL;
    struct dns_resolver *r = dns_resolver_new(&L, &c, &err);

    if (!r) {
        fprintf(stderr, "dns_resolver_new: %s\n", err);
        free(err);
        exit(1);
    }
    return r;
}

/* mx - one MX lookup run to completion (5 s at most) */
static inline void mx(struct dns_resolver *r, const char *name, struct mx_got *g)
{
    int want = done + 1;

    free(g->site);
    memset(g, 0, sizeof(*g));
    CHECK(dns_resolve_mx(r, name, on_mx, g) == 0, "%s", name);
    CHECK(g->calls == 0, "%s: callback ran before the loop", name);
    CHECK(run_until(&done, want, 5000), "%s: no answer", name);
    CHECK(g->calls == 1, "%s: %d calls", name, g->calls);
}

static inline void host(struct dns_resolver *r, const char *name, struct host_got *g)
{
    int want = done + 1;

    memset(g, 0, sizeof(*g));
    CHECK(dns_resolve_host(r, name, on_host, g) == 0, "%s", name);
    CHECK(g->calls == 0, "%s: callback ran before the loop", name);
    CHECK(run_until(&done, want, 5000), "%s: no answer", name);
    CHECK(g->calls == 1, "%s: %d calls", name, g->calls);
}

/* dns_test_start - log, loop, cleanup at exit and a hard deadline; 0, or 77 when there is no io_uring */
static inline int dns_test_start(const char *name)
{
    char *err = NULL;

    log_init(name, 0);
    if (evl_init(&L, 256, &err) < 0) {
        printf("SKIP: %s\n", err);
        free(err);
        return 77;
    }
    atexit(cleanup);
    signal(SIGALRM, on_alarm);
    alarm(100);
    return 0;
}

#endif
