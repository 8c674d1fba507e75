/*
 * supervisor_listen - the SMTP listening sockets that the ingress workers inherit
 *
 * The supervisor opens every listener before it starts any role and keeps it open for the life
 * of the node, so an ingress restart never closes a listener: connections that arrive while no
 * ingress runs wait in the kernel's accept queue and are served by the next instance.
 * The descriptors are not close-on-exec; ringmaild passes their numbers to ingress on its argv.
 */
#include "supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/mem.h"

#define LISTEN_BACKLOG 4096

bool supervisor_listen_split(const char *addr, char *host, size_t host_len, unsigned *port)
{
    const char *colon, *hs = addr;
    size_t hl;
    char *end;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return false;
        hs = addr + 1;
        hl = (size_t)(close - hs);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return false;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= host_len)
        return false;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
        return false;
    *port = (unsigned)p;
    return true;
}

static int open_one(const char *address, char **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char host[256], port_s[8];
    unsigned port;
    int fd = -1, one = 1, rc;

    if (!supervisor_listen_split(address, host, sizeof(host), &port)) {
        *err = xasprintf("listener %s: not host:port", address);
        return -EINVAL;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0) {
        *err = xasprintf("listener %s: %s", address, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        rc = -errno;
        *err = xasprintf("listener %s: socket: %s", address, strerror(errno));
        freeaddrinfo(res);
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        rc = -errno;
        *err = xasprintf("listener %s: %s", address, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return rc;
    }
    freeaddrinfo(res);
    return fd;
}

int supervisor_listen_open(struct supervisor *s, char **err)
{
    s->n_listen_fds = 0;
    for (size_t i = 0; i < s->cfg.n_listeners; i++) {
        int fd = open_one(s->cfg.listeners[i].address, err);
        if (fd < 0)
            return fd;
        s->listen_fds[s->n_listen_fds++] = fd;
        log_info("listening for SMTP on %s", s->cfg.listeners[i].address);
    }
    return 0;
}
