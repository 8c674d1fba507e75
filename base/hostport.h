/*
 * hostport - the one "host:port" syntax: "mx.example:25", "127.0.0.1:25", "[::1]:25"
 *
 * hostport_parse() splits and checks the syntax only: brackets, a non-empty host of at most
 * HOSTPORT_HOST_MAX - 1 bytes, and a port of one to five decimal digits in 1..65535 (0 too with
 * HOSTPORT_PORT_ZERO). It does not judge the host: the last colon separates the port, so "::1:25"
 * is host "::1", and a caller that wants brackets around IPv6 or a valid DNS name checks hp->host.
 * On -EINVAL hp->fault says what is wrong; the fields filled before the fault stay filled, so a
 * caller that reports host problems before port problems can look at the host of a port fault.
 * hostport_resolve() parses and resolves to the first address (numeric port), for the callers that
 * bind or connect to one address.
 */
#ifndef RINGMAIL_HOSTPORT_H
#define RINGMAIL_HOSTPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define HOSTPORT_HOST_MAX 256

enum hostport_flag {
    HOSTPORT_PORT_OPTIONAL = 1 << 0, /* "host" and "[literal]" without a port are accepted (has_port false) */
    HOSTPORT_PORT_ZERO = 1 << 1,     /* port 0 is accepted (a listener whose port the kernel picks) */
};

enum hostport_fault {
    HOSTPORT_FAULT_NONE = 0,
    HOSTPORT_FAULT_UNCLOSED = 1,      /* "[" without "]" */
    HOSTPORT_FAULT_AFTER_BRACKET = 2, /* "]" followed by something other than ":port" */
    HOSTPORT_FAULT_NO_PORT = 3,       /* no ":port" where one is required */
    HOSTPORT_FAULT_NO_HOST = 4,       /* empty host: ":25", "[]:25" */
    HOSTPORT_FAULT_LONG_HOST = 5,     /* host of HOSTPORT_HOST_MAX bytes or more */
    HOSTPORT_FAULT_EMPTY_PORT = 6,    /* "host:" */
    HOSTPORT_FAULT_BAD_PORT = 7,      /* not 1..5 decimal digits, or out of range */
};

struct hostport {
    char host[HOSTPORT_HOST_MAX]; /* without the brackets */
    uint16_t port;                /* 0 when !has_port */
    bool has_port;
    bool bracketed; /* written as "[literal]" */
    enum hostport_fault fault;
};

int hostport_parse(const char *text, unsigned flags, struct hostport *hp);

/*
 * hostport_resolve - hostport_parse(text, flags) and the first address getaddrinfo() gives for it
 * (a stream socket, numeric port, ai_flags added: AI_NUMERICHOST, AI_PASSIVE). hp may be NULL.
 * 0; -EINVAL when text is malformed, *err "TEXT: not host:port" (or "not [address]:port");
 * -EADDRNOTAVAIL when it does not resolve, *err "TEXT: <the resolver's reason>". *err is heap.
 */
int hostport_resolve(const char *text, unsigned flags, int ai_flags, struct hostport *hp,
                     struct sockaddr_storage *addr, socklen_t *len, char **err);

#endif
