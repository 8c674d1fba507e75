/*
 * dns_fault_test - the resolver against servers that fail: none listening, one that never answers,
 * and a hostile one
 *
 * TEMPFAIL by an unreachable port and by a silent server within the time budget; freeing the
 * resolver with lookups pending. A forked server answers hundreds of lookups with mutated packets
 * (right id and question, random records, truncation, rcodes): every lookup must end exactly once
 * with a sane result. Children are killed by pid, also on failure. Needs no unbound.
 */
#include "tests/lib/check.h"
#include "tests/unit/dns/dns_test.h"

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
    int rc;

    if ((rc = dns_test_start("dns_fault_test")) != 0)
        return rc;
    test_tempfail();
    test_hostile();
    evl_fini(&L);

    CHECK_EXIT();
}
