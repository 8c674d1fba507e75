/*
 * dns_unbound_test - the resolver against a real unbound on a loopback port
 *
 * unbound (RINGMAIL_UNBOUND, else /usr/sbin/unbound; skip 77 when missing) serves a static
 * "test." zone from a temporary directory on 127.0.0.1 at a port picked at run time, and refuses
 * every other name so nothing leaves the machine. Cases: every status (OK with preference order,
 * implicit MX, null MX, NO_DATA, NXDOMAIN, TEMPFAIL by REFUSED, BAD_NAME without a query), host
 * A+AAAA, site names, cache hits and TTL expiry (positive and negative), negative TTL clamping, LRU
 * eviction, coalescing, callbacks that are always asynchronous. Children are killed by pid, also on
 * failure.
 */
#include "tests/lib/check.h"
#include "tests/unit/dns/dns_test.h"

static int ub_port;
static char servers[64];

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
    "nothing.test. 300 IN TXT \"no mail here\"",
    "dual.test. 300 IN A 127.0.0.3",
    "dual.test. 300 IN A 127.0.0.4",
    "dual.test. 300 IN AAAA ::1",
    "v6only.test. 300 IN AAAA ::2",
    "short.test. 1 IN MX 10 mx.short.test.",
    "coal.test. 300 IN MX 10 mx.coal.test.",
    "coalhost.test. 300 IN A 127.0.0.5",
    "coalhost.test. 300 IN AAAA ::5",
    /* one record of two character-strings (joined on read), and an unrelated one */
    "_mta-sts.sts.test. 300 IN TXT \"v=STSv1; \" \"id=abc123\"",
    "_mta-sts.sts.test. 300 IN TXT \"v=spf1 -all\"",
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
        /* TXT strings: unbound reads them inside single quotes, not escaped in double ones */
        fprintf(f, strchr(zone[i], '"') ? "  local-data: '%s'\n" : "  local-data: \"%s\"\n", zone[i]);
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

struct txt_got {
    int calls;
    enum dns_status st;
    size_t n;
    char txt[4][128];
    uint32_t ttl;
};

static void on_txt(void *arg, const struct dns_txt_result *res)
{
    struct txt_got *g = arg;
    g->calls++;
    g->st = res->status;
    g->n = res->n_txt;
    g->ttl = res->ttl;
    for (size_t i = 0; i < res->n_txt && i < 4; i++) {
        CHECK(strlen(res->txt[i]) == res->txt_len[i], "txt %zu: length %zu", i, res->txt_len[i]);
        snprintf(g->txt[i], sizeof(g->txt[i]), "%s", res->txt[i]);
    }
}

static void txt(struct dns_resolver *r, const char *name, struct txt_got *g)
{
    memset(g, 0, sizeof(*g));
    CHECK(dns_resolve_txt(r, name, on_txt, g) == 0, "dns_resolve_txt %s", name);
    CHECK(g->calls == 0, "%s: the callback ran synchronously", name);
    CHECK(run_until(&g->calls, 1, 5000), "%s: no TXT answer", name);
}

/* test_txt - TXT records (MTA-STS discovery): strings of a record joined, several records, negative answers */
static void test_txt(struct dns_resolver *r)
{
    struct txt_got g;
    const struct dns_stats *s = dns_resolver_stats(r);

    txt(r, "_mta-sts.sts.test", &g);
    CHECK(g.st == DNS_OK && g.n == 2, "_mta-sts.sts.test: %s n=%zu", dns_status_name(g.st), g.n);
    bool joined = false, other = false;
    for (size_t i = 0; i < g.n && i < 4; i++) {
        joined |= strcmp(g.txt[i], "v=STSv1; id=abc123") == 0;
        other |= strcmp(g.txt[i], "v=spf1 -all") == 0;
    }
    CHECK(joined && other, "records %s | %s", g.txt[0], g.txt[1]);
    CHECK(g.ttl >= 299 && g.ttl <= 300, "ttl %u", g.ttl);
    uint64_t q0 = s->queries;
    txt(r, "_MTA-STS.sts.test.", &g);
    CHECK(g.st == DNS_OK && g.n == 2 && s->queries == q0, "a cache hit expected");
    txt(r, "_mta-sts.two.test", &g);
    CHECK(g.st == DNS_NXDOMAIN && g.n == 0, "no such name: %s", dns_status_name(g.st));
    txt(r, "aonly.test", &g);
    CHECK(g.st == DNS_NO_DATA && g.n == 0, "a name without TXT: %s", dns_status_name(g.st));
    txt(r, "bad..name", &g);
    CHECK(g.st == DNS_BAD_NAME, "bad name: %s", dns_status_name(g.st));
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

int main(void)
{
    const char *bin = getenv("RINGMAIL_UNBOUND");
    struct dns_resolver *r;
    int rc;

    if (!bin || !*bin)
        bin = "/usr/sbin/unbound";
    if (access(bin, X_OK) != 0) {
        printf("SKIP: unbound not found (%s)\n", bin);
        return 77;
    }
    if ((rc = dns_test_start("dns_unbound_test")) != 0)
        return rc;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/dns_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }

    test_site_name();
    wait_for_unbound(bin);
    r = resolver(servers, 1000, 2, 100, 1, 2);
    test_invalid(r);
    test_statuses(r);
    test_txt(r);
    test_coalesce(r);
    test_cache(r);
    dns_resolver_free(r);
    settle();
    test_neg_clamp_and_eviction();
    evl_fini(&L);

    CHECK_EXIT();
}
