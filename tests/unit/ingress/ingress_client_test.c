/*
 * ingress_client_test - the client key of the per-client connection limit (ingress/ingress_client.c):
 * IPv4 whole, IPv6 cut to [ingress] client_ipv6_prefix, so two addresses of one /64 are one client
 *
 * Exit 0 pass, 1 fail.
 */
#include "ingress/ingress.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "tests/lib/check.h"

static void key6(const char *text, unsigned prefix, uint8_t key[16])
{
    uint8_t a[16];
    CHECK(inet_pton(AF_INET6, text, a) == 1, "%s", text);
    ingress_client_key(AF_INET6, a, prefix, key);
}

static void test_keys(void)
{
    uint8_t k1[16], k2[16];

    key6("2001:db8:1:2::1", 64, k1);
    key6("2001:db8:1:2:ffff:eeee:dddd:cccc", 64, k2);
    CHECK(memcmp(k1, k2, 16) == 0, "two addresses of one /64 are one client");
    key6("2001:db8:1:3::1", 64, k2);
    CHECK(memcmp(k1, k2, 16) != 0, "the next /64 is another client");
    key6("2001:db8:1:2::1", 128, k1);
    key6("2001:db8:1:2::2", 128, k2);
    CHECK(memcmp(k1, k2, 16) != 0, "/128: every address is a client");
    /* a prefix that is not a whole octet keeps only its bits */
    key6("2001:db8:1:2::", 60, k1);
    key6("2001:db8:1:f::", 60, k2);
    CHECK(memcmp(k1, k2, 16) == 0, "/60: ...:2 and ...:f share their first 60 bits");
    key6("2001:db8:1:12::", 60, k2);
    CHECK(memcmp(k1, k2, 16) != 0, "/60: ...:12 is another /60");
    static const uint8_t zero[8];
    key6("2001:db8:1:2:3:4:5:6", 64, k1);
    CHECK(memcmp(k1 + 8, zero, 8) == 0, "the host bits are zero");
    key6("2001:db8::1", 200, k1); /* out of range: whole address */
    key6("2001:db8::2", 200, k2);
    CHECK(memcmp(k1, k2, 16) != 0, "a prefix over 128 is 128");

    uint8_t a4[16] = {127, 0, 0, 1, 0xaa, 0xbb}, k4[16];
    ingress_client_key(AF_INET, a4, 64, k4);
    CHECK(memcmp(k4, a4, 4) == 0 && k4[4] == 0 && k4[5] == 0, "IPv4: the 4 octets, nothing else");
}

static void test_fd_limit(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max < 600)
        return;
    /* below the hard limit: the soft limit comes up to what the sessions need */
    struct rlimit low = {300, rl.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "lower the soft limit");
    unsigned long got = ingress_fd_limit(200, 2);
    CHECK(got >= 200 + 2 + 200, "soft limit %lu for 200 sessions", got);
    /* over the hard limit: as far as it goes, and no further */
    got = ingress_fd_limit((uint32_t)rl.rlim_max + 1000, 1);
    CHECK(got == rl.rlim_max, "soft limit %lu, hard %llu", got, (unsigned long long)rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
}

int main(void)
{
    test_keys();
    test_fd_limit();
    CHECK_EXIT();
}
