/*
 * hostport_test - "host:port" syntax: brackets, optional and zero ports, each fault, resolution
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/hostport.h"
#include "tests/lib/check.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct parse_case {
    const char *text;
    unsigned flags;
    enum hostport_fault fault; /* HOSTPORT_FAULT_NONE: accepted */
    const char *host;          /* expected host (also checked on a port fault) */
    int port;                  /* -1: no port */
    bool bracketed;
};

static void test_parse(void)
{
    static const struct parse_case cases[] = {
        {"127.0.0.1:25", 0, HOSTPORT_FAULT_NONE, "127.0.0.1", 25, false},
        {"mx.example.test:65535", 0, HOSTPORT_FAULT_NONE, "mx.example.test", 65535, false},
        {"[::1]:587", 0, HOSTPORT_FAULT_NONE, "::1", 587, true},
        {"[2001:db8::1]:00025", 0, HOSTPORT_FAULT_NONE, "2001:db8::1", 25, true},
        {"::1:25", 0, HOSTPORT_FAULT_NONE, "::1", 25, false}, /* the last colon splits; the caller judges the host */
        {"mx.example.test", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_NONE, "mx.example.test", -1, false},
        {"[::1]", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_NONE, "::1", -1, true},
        {"mx:2525", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_NONE, "mx", 2525, false},
        {"127.0.0.1:0", HOSTPORT_PORT_ZERO, HOSTPORT_FAULT_NONE, "127.0.0.1", 0, false},
        {"127.0.0.1:0", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1", 0, HOSTPORT_FAULT_NO_PORT, "127.0.0.1", -1, false},
        {"[::1]", 0, HOSTPORT_FAULT_NO_PORT, "::1", -1, true},
        {"[::1:25", 0, HOSTPORT_FAULT_UNCLOSED, "", -1, true},
        {"[::1]25", 0, HOSTPORT_FAULT_AFTER_BRACKET, "", -1, true},
        {"[::1]x", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_AFTER_BRACKET, "", -1, true},
        {":25", 0, HOSTPORT_FAULT_NO_HOST, "", -1, false},
        {"[]:25", 0, HOSTPORT_FAULT_NO_HOST, "", -1, true},
        {"", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_NO_HOST, "", -1, false},
        {"127.0.0.1:", 0, HOSTPORT_FAULT_EMPTY_PORT, "127.0.0.1", -1, false},
        {"mx:", HOSTPORT_PORT_OPTIONAL, HOSTPORT_FAULT_EMPTY_PORT, "mx", -1, false},
        {"127.0.0.1:65536", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1:000025", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1:+25", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1:-1", HOSTPORT_PORT_ZERO, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1:25 ", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
        {"127.0.0.1:smtp", 0, HOSTPORT_FAULT_BAD_PORT, "127.0.0.1", -1, false},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct parse_case *c = &cases[i];
        struct hostport hp;
        int rc = hostport_parse(c->text, c->flags, &hp);
        int want = c->fault == HOSTPORT_FAULT_NONE ? 0 : -EINVAL;
        CHECK(rc == want && hp.fault == c->fault, "\"%s\": rc %d fault %d, want %d fault %d", c->text, rc, hp.fault,
              want, c->fault);
        CHECK(strcmp(hp.host, c->host) == 0, "\"%s\": host \"%s\", want \"%s\"", c->text, hp.host, c->host);
        CHECK(hp.bracketed == c->bracketed, "\"%s\": bracketed %d", c->text, hp.bracketed);
        CHECK(hp.has_port == (c->port >= 0) && (c->port < 0 || hp.port == c->port), "\"%s\": port %d (has %d), want %d",
              c->text, hp.port, hp.has_port, c->port);
    }

    /* the host buffer's limit: 255 bytes fit, 256 do not */
    char text[300];
    memset(text, 'a', 255);
    strcpy(text + 255, ":25");
    struct hostport hp;
    CHECK(hostport_parse(text, 0, &hp) == 0 && strlen(hp.host) == 255, "255-byte host refused");
    memset(text, 'a', 256);
    strcpy(text + 256, ":25");
    CHECK(hostport_parse(text, 0, &hp) == -EINVAL && hp.fault == HOSTPORT_FAULT_LONG_HOST, "256-byte host: fault %d",
          hp.fault);
}

static void test_resolve(void)
{
    struct sockaddr_storage ss;
    struct hostport hp;
    socklen_t len = 0;
    char *err = NULL;

    CHECK(hostport_resolve("127.0.0.1:2525", 0, 0, &hp, &ss, &len, &err) == 0, "127.0.0.1:2525: %s", err);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    CHECK(ss.ss_family == AF_INET && len == sizeof(*in) && ntohs(in->sin_port) == 2525 &&
              in->sin_addr.s_addr == htonl(INADDR_LOOPBACK),
          "127.0.0.1:2525 resolved wrong");
    CHECK(strcmp(hp.host, "127.0.0.1") == 0, "host %s", hp.host);

    CHECK(hostport_resolve("[::1]:25", 0, AI_NUMERICHOST, NULL, &ss, &len, &err) == 0, "[::1]:25: %s", err);
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    CHECK(ss.ss_family == AF_INET6 && ntohs(in6->sin6_port) == 25 && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr),
          "[::1]:25 resolved wrong");

    CHECK(hostport_resolve("127.0.0.1:0", HOSTPORT_PORT_ZERO, AI_PASSIVE, NULL, &ss, &len, &err) == 0, "port 0: %s",
          err);

    CHECK(hostport_resolve("127.0.0.1", 0, 0, NULL, &ss, &len, &err) == -EINVAL &&
              strcmp(err, "127.0.0.1: not host:port") == 0,
          "missing port: %s", err);
    free(err);
    err = NULL;
    CHECK(hostport_resolve("[::1]25", 0, 0, NULL, &ss, &len, &err) == -EINVAL &&
              strcmp(err, "[::1]25: not [address]:port") == 0,
          "bad brackets: %s", err);
    free(err);
    err = NULL;
    /* a name where a numeric address is required: the resolver refuses without a lookup */
    CHECK(hostport_resolve("mx.example.test:25", 0, AI_NUMERICHOST, NULL, &ss, &len, &err) == -EADDRNOTAVAIL &&
              strncmp(err, "mx.example.test:25: ", 20) == 0,
          "numeric host: %s", err);
    free(err);
}

int main(void)
{
    test_parse();
    test_resolve();
    CHECK_EXIT();
}
