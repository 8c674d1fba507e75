/*
 * hostport - "host:port" parsing and resolution (see hostport.h)
 */
#include "base/hostport.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

static int fault(struct hostport *hp, enum hostport_fault f)
{
    hp->fault = f;
    return -EINVAL;
}

/* the port: one to five digits (no sign, no spaces: "+25" and "000025" are typos, not ports) */
static int parse_port(const char *p, unsigned flags, struct hostport *hp)
{
    unsigned long v = 0;
    size_t i;

    if (*p == '\0')
        return fault(hp, HOSTPORT_FAULT_EMPTY_PORT);
    for (i = 0; p[i]; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5)
            return fault(hp, HOSTPORT_FAULT_BAD_PORT);
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535 || (v == 0 && !(flags & HOSTPORT_PORT_ZERO)))
        return fault(hp, HOSTPORT_FAULT_BAD_PORT);
    hp->port = (uint16_t)v;
    hp->has_port = true;
    return 0;
}

int hostport_parse(const char *text, unsigned flags, struct hostport *hp)
{
    const char *host = text, *port = NULL;
    size_t n;

    memset(hp, 0, sizeof(*hp));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        hp->bracketed = true;
        if (!close)
            return fault(hp, HOSTPORT_FAULT_UNCLOSED);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return fault(hp, HOSTPORT_FAULT_AFTER_BRACKET);
        host = text + 1;
        n = (size_t)(close - host);
    } else {
        const char *colon = strrchr(text, ':');
        if (colon)
            port = colon + 1;
        n = colon ? (size_t)(colon - text) : strlen(text);
    }
    if (n == 0)
        return fault(hp, HOSTPORT_FAULT_NO_HOST);
    if (n >= sizeof(hp->host))
        return fault(hp, HOSTPORT_FAULT_LONG_HOST);
    memcpy(hp->host, host, n);
    hp->host[n] = '\0';
    if (!port)
        return flags & HOSTPORT_PORT_OPTIONAL ? 0 : fault(hp, HOSTPORT_FAULT_NO_PORT);
    return parse_port(port, flags, hp);
}

int hostport_resolve(const char *text, unsigned flags, int ai_flags, struct hostport *hp,
                     struct sockaddr_storage *addr, socklen_t *len, char **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | ai_flags};
    struct addrinfo *res = NULL;
    struct hostport local;
    char port[8];
    int rc;

    if (!hp)
        hp = &local;
    if (hostport_parse(text, flags, hp) < 0) {
        *err = xasprintf("%s: not %s", text, hp->bracketed ? "[address]:port" : "host:port");
        return -EINVAL;
    }
    snprintf(port, sizeof(port), "%u", hp->port);
    rc = getaddrinfo(hp->host, port, &hints, &res);
    if (rc != 0) {
        *err = xasprintf("%s: %s", text, gai_strerror(rc));
        return -EADDRNOTAVAIL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
