/*
 * dns_test - the resolver against a real unbound on a loopback port, and against a hostile one
 *
 * unbound (RINGMAIL_UNBOUND, else /usr/sbin/unbound; skip 77 when missing) serves a static
 * "test." zone from a temporary directory on 127.0.0.1 at a port picked at run time, and refuses
 * every other name so nothing leaves the machine. Cases: every status (OK with preference order,
 * implicit MX, null MX, NO_DATA, NXDOMAIN, TEMPFAIL by REFUSED, by an unreachable port and by a
 * silent server within the time budget, BAD_NAME without a query), host A+AAAA, site names,
 * cache hits and TTL expiry (positive and negative), negative TTL clamping, LRU eviction,
 * coalescing, callbacks that are always asynchronous, freeing the resolver with lookups pending. A forked server answers hundreds of lookups with mutated packets
 * (right id and question, random records, truncation, rcodes): every lookup must end exactly
 * once with a sane result. Children are killed by pid, also on failure.
 */
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
#include "tests/lib/check.h"

static struct evl L;
static char tmpdir[64];
static pid_t ub_pid = -1, garbage_pid = -1;
static int ub_port;
static char servers[64];

/* ---- children ---- */

static void child_stop(pid_t *pid)
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

static void cleanup(void)
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

static void on_alarm(int sig)
{
    /* a hung loop must not leave unbound behind: kill by pid, then fail */
    if (ub_pid > 0)
        kill(ub_pid, SIGKILL);
    if (garbage_pid > 0)
        kill(garbage_pid, SIGKILL);
    _exit(1);
}

/* free_port - a port free for both UDP and TCP on 127.0.0.1 right now (0 on failure) */
static int free_port(void)
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
static int udp_bound(int *port)
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

static const char *zone[] = {
    "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1",
    "two.test. 300 IN MX 20 mx2.two.test.",
    "two.test. 300 IN MX 10 MX1.two.test.",
    "same1.test. 300 IN MX 10 mx-a.shared.test.",
    "same1.test. 300 IN MX 20 mx-b.shared.test.",
    "same2.test. 300 IN MX 5 mx-b.shared.test.",
    "same2.test. 300 IN MX 5 MX-A.shared.test.",
    "alias.test. 300 IN CNAME two.test.",
    "aonly.test. 300 IN A 127.0.0.2",
    "nullmx.test. 300 IN MX 0 .",
    "nothing.test. 300 IN TXT \\\"no mail here\\\"",
    "dual.test. 300 IN A 127.0.0.3",
    "dual.test. 300 IN A 127.0.0.4",
    "dual.test. 300 IN AAAA ::1",
    "v6only.test. 300 IN AAAA ::2",
    "short.test. 1 IN MX 10 mx.short.test.",
    "coal.test. 300 IN MX 10 mx.coal.test.",
    "coalhost.test. 300 IN A 127.0.0.5",
    "coalhost.test. 300 IN AAAA ::5",
    NULL,
};

static bool ub_start(const char *bin, int port)
{
    char conf[128], log[128];
    FILE *f;

    snprintf(conf, sizeof(conf), "%s/unbound.conf", tmpdir);
    snprintf(log, sizeof(log), "%s/unbound.log", tmpdir);
    f = fopen(conf, "w");
    if (!f)
        return false;
    fprintf(f, "server:\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"%s\"\n"
               "  pidfile: \"%s/unbound.pid\"\n  logfile: \"%s\"\n  use-syslog: no\n  verbosity: 1\n"
               "  interface: 127.0.0.1@%d\n  do-ip6: no\n  num-threads: 1\n  so-reuseport: no\n"
               "  do-not-query-localhost: no\n  module-config: \"iterator\"\n"
               "  access-control: 127.0.0.0/8 allow\n"
               "  local-zone: \".\" refuse\n  local-zone: \"test.\" static\n",
            tmpdir, tmpdir, log, port);
    for (int i = 0; zone[i]; i++)
        fprintf(f, "  local-data: \"%s\"\n", zone[i]);
    fprintf(f, "remote-control:\n  control-enable: no\n");
    fclose(f);

    ub_pid = fork();
    if (ub_pid < 0)
        return false;
    if (ub_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(bin, "unbound", "-d", "-c", conf, (char *)NULL);
        _exit(127);
    }
    return true;
}

/* ---- loop driving ---- */

static struct evl_timer guard;
static bool guard_fired;

static void on_guard(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    guard.armed = false;
    if (res == -ETIME)
        guard_fired = true;
}

/* run_until - run the loop until *count reaches want or ms pass; true when it got there */
static bool run_until(const int *count, int want, unsigned ms)
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
static void settle(void)
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

static void on_mx(void *arg, const struct dns_mx_result *res)
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

static void on_host(void *arg, const struct dns_host_result *res)
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

static struct dns_resolver *resolver(const char *srv, unsigned timeout_ms, unsigned tries, unsigned cache_max,
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
static void mx(struct dns_resolver *r, const char *name, struct mx_got *g)
{
    int want = done + 1;

    free(g->site);
    memset(g, 0, sizeof(*g));
    CHECK(dns_resolve_mx(r, name, on_mx, g) == 0, "%s", name);
    CHECK(g->calls == 0, "%s: callback ran before the loop", name);
    CHECK(run_until(&done, want, 5000), "%s: no answer", name);
    CHECK(g->calls == 1, "%s: %d calls", name, g->calls);
}

static void host(struct dns_resolver *r, const char *name, struct host_got *g)
{
    int want = done + 1;

    memset(g, 0, sizeof(*g));
    CHECK(dns_resolve_host(r, name, on_host, g) == 0, "%s", name);
    CHECK(g->calls == 0, "%s: callback ran before the loop", name);
    CHECK(run_until(&done, want, 5000), "%s: no answer", name);
    CHECK(g->calls == 1, "%s: %d calls", name, g->calls);
}

static void wait_for_unbound(const char *bin)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct dns_resolver *probe;
        struct mx_got g = {0};
        int status;

        ub_port = free_port();
        if (!ub_port || !ub_start(bin, ub_port)) {
            fprintf(stderr, "cannot start unbound\n");
            exit(1);
        }
        snprintf(servers, sizeof(servers), "127.0.0.1:%d", ub_port);
        probe = resolver(servers, 100, 1, 0, 0, 0);
        for (int i = 0; i < 50; i++) {
            if (waitpid(ub_pid, &status, WNOHANG) == ub_pid) {
                ub_pid = -1; /* most likely lost the port to someone else: another one */
                break;
            }
            mx(probe, "two.test", &g);
            if (g.st == DNS_OK)
                break;
            usleep(50000);
        }
        free(g.site);
        dns_resolver_free(probe);
        settle();
        if (ub_pid > 0 && g.st == DNS_OK)
            return;
        child_stop(&ub_pid);
    }
    fprintf(stderr, "unbound never answered; see %s/unbound.log\n", tmpdir);
    exit(1);
}

/* ---- cases ---- */

static void test_invalid(struct dns_resolver *r)
{
    char long_label[80], long_name[300], max_name[300];
    const char *bad[] = {"", ".", "..", "a..b.test", "a b.test", "ex!mple.test", "a.test..", "\xc3\xa9.test",
                         "a/b.test", "a.test\n", long_label, long_name};
    uint64_t q0 = dns_resolver_stats(r)->queries;
    struct mx_got g = {0};
    struct host_got h;

    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".test");
    memset(long_name, 0, sizeof(long_name));
    for (int i = 0; i < 254; i++)
        long_name[i] = i % 2 ? '.' : 'b';
    long_name[253] = 'x';   /* 254 characters */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mx(r, bad[i], &g);
        CHECK(g.st == DNS_BAD_NAME, "mx \"%s\": %s", bad[i], dns_status_name(g.st));
        CHECK(g.reason[0] != '\0', "no reason");
        CHECK(!dns_name_valid(bad[i]), "%s", bad[i]);
        host(r, bad[i], &h);
        CHECK(h.st == DNS_BAD_NAME, "host \"%s\": %s", bad[i], dns_status_name(h.st));
    }
    CHECK(dns_resolver_stats(r)->queries == q0, "invalid names were queried");
    CHECK(dns_status_permanent(DNS_BAD_NAME), "bad name must be permanent");

    /* the longest valid name (253, labels of 63) is queried and answered */
    memset(max_name, 0, sizeof(max_name));
    snprintf(max_name, sizeof(max_name), "%.63s.%.63s.%.63s.%.56s.test", long_label, long_label, long_label,
             long_label);
    CHECK(strlen(max_name) == 253, "%zu", strlen(max_name));
    CHECK(dns_name_valid(max_name) && dns_name_valid("Mixed-Case_x.Test."), "valid names refused");
    mx(r, max_name, &g);
    CHECK(g.st == DNS_NXDOMAIN, "253-char name: %s (%s)", dns_status_name(g.st), g.reason);
    CHECK(dns_resolver_stats(r)->queries == q0 + 1, "253-char name not queried");
    free(g.site);
}

static void test_statuses(struct dns_resolver *r)
{
    struct mx_got g = {0}, g2 = {0};
    struct host_got h;
    const struct dns_stats *s = dns_resolver_stats(r);
    uint64_t q0;

    mx(r, "two.test", &g);
    CHECK(g.st == DNS_OK && !g.implicit && g.n == 2, "two.test: %s n=%zu", dns_status_name(g.st), g.n);
    CHECK(strcmp(g.host[0], "mx1.two.test") == 0 && g.pref[0] == 10, "%s %u", g.host[0], g.pref[0]);
    CHECK(strcmp(g.host[1], "mx2.two.test") == 0 && g.pref[1] == 20, "%s %u", g.host[1], g.pref[1]);
    CHECK(g.ttl >= 299 && g.ttl <= 300, "ttl %u", g.ttl);
    CHECK(g.site && strcmp(g.site, "mx1.two.test,mx2.two.test") == 0, "site %s", g.site);

    /* trailing dot and case do not make another name (a cache hit on the same entry) */
    q0 = s->queries;
    mx(r, "TWO.test.", &g2);
    CHECK(g2.st == DNS_OK && g2.n == 2 && s->queries == q0, "TWO.test.: %s", dns_status_name(g2.st));

    /* unbound's local data does not chase CNAMEs: the answer is the CNAME alone, which reads as
     * "the target has no MX" (RFC 1034 3.6.2) and, its A and AAAA giving the CNAME alone too, NO_DATA */
    mx(r, "alias.test", &g2);
    CHECK(g2.st == DNS_NO_DATA, "CNAME only: %s (%s)", dns_status_name(g2.st), g2.reason);

    mx(r, "same1.test", &g);
    mx(r, "same2.test", &g2);
    CHECK(g.st == DNS_OK && g2.st == DNS_OK, "same1/2");
    CHECK(g.site && g2.site && strcmp(g.site, g2.site) == 0, "same MX set, sites %s / %s", g.site, g2.site);
    CHECK(g.site && strcmp(g.site, "mx-a.shared.test,mx-b.shared.test") == 0, "site %s", g.site);
    CHECK(g2.n == 2 && g2.pref[0] == 5 && g2.pref[1] == 5, "same2 prefs");

    q0 = s->queries;
    mx(r, "aonly.test", &g);
    CHECK(g.st == DNS_OK && g.implicit && g.n == 1 && strcmp(g.host[0], "aonly.test") == 0 && g.pref[0] == 0,
          "implicit: %s implicit=%d n=%zu %s", dns_status_name(g.st), g.implicit, g.n, g.host[0]);
    CHECK(g.site && strcmp(g.site, "aonly.test") == 0, "implicit site %s", g.site);
    CHECK(s->queries == q0 + 3, "MX + A + AAAA expected, %llu", (unsigned long long)(s->queries - q0));
    /* the implicit lookup filled the host cache for the egress */
    host(r, "aonly.test", &h);
    CHECK(h.st == DNS_OK && h.n == 1 && s->queries == q0 + 3, "aonly host: %s", dns_status_name(h.st));
    CHECK(h.addr[0].ss_family == AF_INET &&
              ((struct sockaddr_in *)&h.addr[0])->sin_addr.s_addr == htonl(0x7f000002),
          "aonly address");

    mx(r, "nullmx.test", &g);
    CHECK(g.st == DNS_NULL_MX && g.n == 0 && !g.site, "null MX: %s", dns_status_name(g.st));
    CHECK(dns_status_permanent(g.st), "null MX must be permanent");

    mx(r, "nothing.test", &g);
    CHECK(g.st == DNS_NO_DATA && g.n == 0, "no data: %s (%s)", dns_status_name(g.st), g.reason);
    mx(r, "missing.test", &g);
    CHECK(g.st == DNS_NXDOMAIN && strstr(g.reason, "missing.test"), "nxdomain: %s (%s)", dns_status_name(g.st),
          g.reason);
    CHECK(g.ttl >= 1 && g.ttl <= 2, "negative ttl %u (SOA minimum 1, clamp [1,2])", g.ttl);

    /* REFUSED by a live server: transient and never cached */
    uint64_t f0 = s->failures;
    q0 = s->queries;
    mx(r, "example.com", &g);
    CHECK(g.st == DNS_TEMPFAIL && g.reason[0], "refused: %s", dns_status_name(g.st));
    CHECK(!dns_status_permanent(g.st) && s->failures == f0 + 1, "failures counter");
    mx(r, "example.com", &g);
    CHECK(g.st == DNS_TEMPFAIL && s->queries == q0 + 2, "TEMPFAIL was cached");

    host(r, "dual.test", &h);
    CHECK(h.st == DNS_OK && h.n == 3, "dual: %s n=%zu", dns_status_name(h.st), h.n);
    CHECK(h.addr[0].ss_family == AF_INET && h.addr[1].ss_family == AF_INET && h.addr[2].ss_family == AF_INET6,
          "IPv4 first");
    CHECK(h.ttl >= 299 && h.ttl <= 300, "ttl %u", h.ttl);
    if (h.n == 3) {
        struct in6_addr one = IN6ADDR_LOOPBACK_INIT;
        CHECK(memcmp(&((struct sockaddr_in6 *)&h.addr[2])->sin6_addr, &one, 16) == 0, "::1");
    }
    host(r, "v6only.test", &h);
    CHECK(h.st == DNS_OK && h.n == 1 && h.addr[0].ss_family == AF_INET6, "v6only: %s", dns_status_name(h.st));
    host(r, "mx1.two.test", &h);
    CHECK(h.st == DNS_NXDOMAIN, "host nxdomain: %s", dns_status_name(h.st));
    host(r, "two.test", &h);
    CHECK(h.st == DNS_NO_DATA, "host nodata: %s", dns_status_name(h.st));
    free(g.site);
    free(g2.site);
}

static void test_cache(struct dns_resolver *r)
{
    const struct dns_stats *s = dns_resolver_stats(r);
    struct mx_got g = {0}, n = {0};
    uint64_t q0, h0;

    mx(r, "short.test", &g);
    CHECK(g.st == DNS_OK && g.ttl <= 1, "short: %s ttl %u", dns_status_name(g.st), g.ttl);
    mx(r, "missing.test", &n); /* may already be cached; the clock starts now either way */
    mx(r, "missing.test", &n);
    q0 = s->queries;
    h0 = s->cache_hits;
    mx(r, "short.test", &g);
    mx(r, "missing.test", &n);
    CHECK(g.st == DNS_OK && n.st == DNS_NXDOMAIN, "second lookups");
    CHECK(s->queries == q0 && s->cache_hits == h0 + 2, "no cache hit: +%llu queries, +%llu hits",
          (unsigned long long)(s->queries - q0), (unsigned long long)(s->cache_hits - h0));
    usleep(2100000); /* both TTLs (1 s and the negative clamp max of 2 s) are over */
    mx(r, "short.test", &g);
    mx(r, "missing.test", &n);
    CHECK(g.st == DNS_OK && n.st == DNS_NXDOMAIN, "after expiry");
    CHECK(s->queries == q0 + 2, "expired entries not asked again: +%llu", (unsigned long long)(s->queries - q0));
    free(g.site);
    free(n.site);
}

static void test_neg_clamp_and_eviction(void)
{
    struct dns_resolver *r = resolver(servers, 500, 2, 2, 5, 10);
    const struct dns_stats *s = dns_resolver_stats(r);
    struct mx_got g = {0};
    uint64_t q0;

    mx(r, "missing.test", &g);
    CHECK(g.st == DNS_NXDOMAIN && g.ttl >= 4 && g.ttl <= 5, "clamped negative ttl %u (min 5)", g.ttl);
    mx(r, "two.test", &g);
    mx(r, "same1.test", &g); /* three answers in a cache of two: missing.test goes */
    q0 = s->queries;
    mx(r, "same1.test", &g);
    mx(r, "two.test", &g);
    CHECK(s->queries == q0, "recent entries evicted");
    mx(r, "missing.test", &g);
    CHECK(s->queries == q0 + 1 && s->evictions >= 1, "LRU entry kept: +%llu queries, %llu evictions",
          (unsigned long long)(s->queries - q0), (unsigned long long)s->evictions);
    free(g.site);
    dns_resolver_free(r);
    settle();
}

static void test_coalesce(struct dns_resolver *r)
{
    const struct dns_stats *s = dns_resolver_stats(r);
    struct mx_got a = {0}, b = {0};
    struct host_got h1 = {0}, h2 = {0};
    uint64_t q0 = s->queries, c0 = s->coalesced;
    int want = done + 4;

    dns_resolve_mx(r, "coal.test", on_mx, &a);
    dns_resolve_mx(r, "coal.test", on_mx, &b);
    dns_resolve_host(r, "coalhost.test.", on_host, &h1);
    dns_resolve_host(r, "CoalHost.Test", on_host, &h2);
    CHECK(run_until(&done, want, 5000), "coalesced lookups did not finish");
    CHECK(a.calls == 1 && b.calls == 1 && h1.calls == 1 && h2.calls == 1, "each callback once");
    CHECK(a.st == DNS_OK && b.st == DNS_OK && a.n == 1 && b.n == 1, "coal: %s %s", dns_status_name(a.st),
          dns_status_name(b.st));
    CHECK(h1.st == DNS_OK && h2.st == DNS_OK && h1.n == 2 && h2.n == 2, "coalhost");
    CHECK(s->queries == q0 + 1 + 2 && s->coalesced == c0 + 2, "+%llu queries, +%llu coalesced",
          (unsigned long long)(s->queries - q0), (unsigned long long)(s->coalesced - c0));
    free(a.site);
    free(b.site);
}

static void test_tempfail(void)
{
    struct mx_got g = {0};
    struct host_got h;
    char srv[64];
    int bh_port, bh = udp_bound(&bh_port), dead = free_port();
    struct dns_resolver *r;
    uint64_t t0, el;

    /* nobody listens: the port answers with ICMP unreachable */
    snprintf(srv, sizeof(srv), "127.0.0.1:%d", dead);
    r = resolver(srv, 200, 2, 0, 0, 0);
    t0 = clock_mono_ns();
    mx(r, "two.test", &g);
    el = (clock_mono_ns() - t0) / 1000000u;
    CHECK(g.st == DNS_TEMPFAIL && g.reason[0], "unreachable: %s", dns_status_name(g.st));
    CHECK(el < 200 * 3 + 500, "unreachable took %llu ms", (unsigned long long)el);
    dns_resolver_free(r);
    settle();

    /* a server that never answers: the whole budget, 150 + 300 ms, and not much more */
    snprintf(srv, sizeof(srv), "127.0.0.1:%d", bh_port);
    r = resolver(srv, 150, 2, 0, 0, 0);
    t0 = clock_mono_ns();
    mx(r, "two.test", &g);
    el = (clock_mono_ns() - t0) / 1000000u;
    CHECK(g.st == DNS_TEMPFAIL && strstr(g.reason, "two.test"), "silent: %s %s", dns_status_name(g.st), g.reason);
    CHECK(el >= 140 && el < 150 * 3 + 400, "silent server took %llu ms", (unsigned long long)el);
    t0 = clock_mono_ns();
    host(r, "dual.test", &h);
    el = (clock_mono_ns() - t0) / 1000000u;
    CHECK(h.st == DNS_TEMPFAIL && el < 150 * 3 + 400, "host silent: %s %llu ms", dns_status_name(h.st),
          (unsigned long long)el);
    CHECK(dns_resolver_stats(r)->failures == 2, "failures %llu",
          (unsigned long long)dns_resolver_stats(r)->failures);

    /* freed with a lookup pending: its callback never runs, nothing leaks (ASan) */
    memset(&g, 0, sizeof(g));
    dns_resolve_mx(r, "pending.test", on_mx, &g);
    dns_resolve_host(r, "pending.test", on_host, &h);
    h.calls = 0;
    evl_run_once(&L, false);
    dns_resolver_free(r);
    settle();
    CHECK(g.calls == 0 && h.calls == 0, "callback after free");
    close(bh);
    free(g.site);
}

static void test_site_name(void)
{
    struct dns_mx m[] = {{"MX2.a.test.", 20}, {"mx1.a.test", 10}, {"mx2.a.test", 10}, {"bad name", 5}};
    struct dns_mx_result res = {.status = DNS_OK, .domain = "a.test", .reason = "", .n_mx = 4, .mx = m};
    struct dns_mx m2[] = {{"mx1.a.test", 1}, {"mx2.a.test", 1}};
    struct dns_mx_result res2 = {.status = DNS_OK, .domain = "b.test", .reason = "", .n_mx = 2, .mx = m2};
    char *s1 = dns_site_name(&res), *s2 = dns_site_name(&res2), *s3;

    CHECK(s1 && strcmp(s1, "mx1.a.test,mx2.a.test") == 0, "site %s", s1);
    CHECK(s1 && s2 && strcmp(s1, s2) == 0, "%s vs %s", s1, s2);
    res2.implicit = true;
    s3 = dns_site_name(&res2);
    CHECK(s3 && strcmp(s3, "b.test") == 0, "implicit site %s", s3);
    res2.status = DNS_NULL_MX;
    CHECK(dns_site_name(&res2) == NULL && dns_site_name(NULL) == NULL, "site for a failure");
    free(s1);
    free(s2);
    free(s3);
}

/* ---- hostile server ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* put_rr - one record owned by the question name (pointer 12) with plausible rdata of `type` */
static size_t put_rr(unsigned char *a, size_t len, unsigned type)
{
    static const char *const names[] = {"\x02" "mx\x04" "fuzz\x04" "test", "", "\x03" "a-b\x01" "c",
                                        "\x05UPPER\x02Mx", "\x03" "bad\x02!!", "\xc0\x0c"};
    const char *nm = names[rnd() % 6];
    size_t nlen = nm[0] == '\xc0' ? 2 : strlen(nm) + 1, rd = len + 12;

    a[len] = 0xc0, a[len + 1] = 12;
    a[len + 2] = (unsigned char)(type >> 8), a[len + 3] = (unsigned char)type;
    a[len + 4] = 0, a[len + 5] = 1;
    for (int k = 0; k < 4; k++)
        a[len + 6 + (size_t)k] = (unsigned char)(k == 0 ? rnd() % 2 * 0x80 : rnd());
    if (type == 1 || type == 28) {
        for (unsigned k = 0; k < (type == 1 ? 4u : 16u); k++)
            a[rd++] = (unsigned char)rnd();
    } else if (type == 15 || type == 5 || type == 6) {
        if (type == 15)
            a[rd++] = 0, a[rd++] = (unsigned char)(rnd() % 4);
        memcpy(a + rd, nm, nlen);
        rd += nlen;
        if (type == 6) {
            memcpy(a + rd, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 22);
            rd += 22;
        }
    } else {
        for (unsigned k = rnd() % 12; k > 0; k--)
            a[rd++] = (unsigned char)rnd();
    }
    a[len + 10] = (unsigned char)((rd - len - 12) >> 8), a[len + 11] = (unsigned char)(rd - len - 12);
    return rd;
}

/* garbage_serve - answer each query with a plausible reply of its type, often mutated */
static void garbage_serve(int fd)
{
    static const unsigned others[] = {5, 6, 16, 2, 0xffff};
    unsigned char q[1500], a[1500];

    for (;;) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
        size_t qend = 12, len;
        unsigned qtype, an, ns;
        if (n < 12)
            continue;
        while (qend < (size_t)n && q[qend] && q[qend] < 64)
            qend += 1 + q[qend];
        qend += 5;
        if (qend > (size_t)n)
            continue;
        qtype = (unsigned)q[qend - 4] << 8 | q[qend - 3];
        rng ^= (uint64_t)q[0] << 8 | q[1];
        memcpy(a, q, qend);
        an = (unsigned)(rnd() % 5), ns = (unsigned)(rnd() % 2);
        a[2] = (unsigned char)(0x81 | (rnd() % 10 == 0 ? 0x02 : 0));                        /* QR RD, rarely TC */
        a[3] = (unsigned char)(0x80 | (rnd() % 4 == 0 ? (unsigned)(rnd() % 6) : 0));        /* RA, some rcodes */
        a[4] = 0, a[5] = 1, a[6] = 0, a[7] = (unsigned char)an, a[8] = 0, a[9] = (unsigned char)ns;
        a[10] = 0, a[11] = 0;
        len = qend;
        for (unsigned k = 0; k < an; k++)
            len = put_rr(a, len, rnd() % 4 ? qtype : others[rnd() % 5]);
        for (unsigned k = 0; k < ns; k++)
            len = put_rr(a, len, 6);
        switch (rnd() % 4) {
        case 0: /* cut anywhere */
            len = 12 + (size_t)(rnd() % (len - 11));
            break;
        case 1: /* flip bytes after the question */
            for (int k = 0; k < 3 && len > qend; k++)
                a[qend + rnd() % (len - qend)] = (unsigned char)rnd();
            break;
        default:
            break;
        }
        sendto(fd, a, len, 0, (struct sockaddr *)&from, flen);
    }
}

static void test_hostile(void)
{
    enum { N = 300 };
    struct mx_got *g = xcalloc(N, sizeof(*g));
    struct host_got *h = xcalloc(N, sizeof(*h));
    int port, fd = udp_bound(&port), want = done + 2 * N;
    char srv[64], name[64];
    struct dns_resolver *r;

    garbage_pid = fork();
    if (garbage_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        garbage_serve(fd);
        _exit(0);
    }
    close(fd);
    snprintf(srv, sizeof(srv), "127.0.0.1:%d", port);
    r = resolver(srv, 300, 1, 64, 0, 5);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "h%d.fuzz.test", i);
        dns_resolve_mx(r, name, on_mx, &g[i]);
        dns_resolve_host(r, name, on_host, &h[i]);
    }
    CHECK(run_until(&done, want, 20000), "hostile: %d of %d lookups ended", done - (want - 2 * N), 2 * N);
    int seen[DNS_TEMPFAIL + 1] = {0};
    for (int i = 0; i < N; i++) {
        seen[g[i].st <= DNS_TEMPFAIL ? g[i].st : 0]++;
        seen[h[i].st <= DNS_TEMPFAIL ? h[i].st : 0]++;
        CHECK(g[i].calls == 1 && h[i].calls == 1, "lookup %d: %d/%d calls", i, g[i].calls, h[i].calls);
        CHECK(g[i].st <= DNS_TEMPFAIL && h[i].st <= DNS_TEMPFAIL && g[i].st != DNS_BAD_NAME, "status");
        CHECK((g[i].st == DNS_OK) == (g[i].n > 0) && (h[i].st == DNS_OK) == (h[i].n > 0), "count vs status");
        for (size_t k = 0; k < g[i].n && k < 8; k++)
            CHECK(dns_name_valid(g[i].host[k]), "MX host \"%s\"", g[i].host[k]);
        CHECK(g[i].st == DNS_OK || g[i].reason[0], "no reason for %s", dns_status_name(g[i].st));
        free(g[i].site);
    }
    printf("hostile: ok %d nxdomain %d null-mx %d no-data %d tempfail %d\n", seen[DNS_OK], seen[DNS_NXDOMAIN],
           seen[DNS_NULL_MX], seen[DNS_NO_DATA], seen[DNS_TEMPFAIL]);
    /* a fuzzer that only ever produced timeouts would prove nothing */
    CHECK(seen[DNS_OK] > 0 && seen[DNS_TEMPFAIL] > 0, "no variety");
    dns_resolver_free(r);
    settle();
    child_stop(&garbage_pid);
    free(g);
    free(h);
}

int main(void)
{
    const char *bin = getenv("RINGMAIL_UNBOUND");
    struct dns_resolver *r;
    char *err = NULL;

    if (!bin || !*bin)
        bin = "/usr/sbin/unbound";
    if (access(bin, X_OK) != 0) {
        printf("SKIP: unbound not found (%s)\n", bin);
        return 77;
    }
    log_init("dns_test", 0);
    if (evl_init(&L, 256, &err) < 0) {
        printf("SKIP: %s\n", err);
        free(err);
        return 77;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/dns_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    signal(SIGALRM, on_alarm);
    alarm(100);

    test_site_name();
    wait_for_unbound(bin);
    r = resolver(servers, 1000, 2, 100, 1, 2);
    test_invalid(r);
    test_statuses(r);
    test_coalesce(r);
    test_cache(r);
    dns_resolver_free(r);
    settle();
    test_neg_clamp_and_eviction();
    test_tempfail();
    test_hostile();
    evl_fini(&L);

    CHECK_EXIT();
}
