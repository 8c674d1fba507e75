/*
 * tool_addr - "host:port" parsing and resolution shared by the load tools (see tool_addr.h)
 */
#include "tools/tool_addr.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

int tool_addr_resolve(const char *text, bool passive, const char *what, struct sockaddr_storage *addr,
                      socklen_t *len, char **host_out, char **err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    struct addrinfo *res;
    char *host, *port;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            *err = xasprintf("bad %s %s (want [address]:port)", what, text);
            return -EINVAL;
        }
        host = xstrndup(text + 1, (size_t)(close - text - 1));
        port = xstrdup(close + 2);
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || colon == text) {
            *err = xasprintf("bad %s %s (want host:port)", what, text);
            return -EINVAL;
        }
        host = xstrndup(text, (size_t)(colon - text));
        port = xstrdup(colon + 1);
    }
    int rc = getaddrinfo(host, port, &hints, &res);
    free(port);
    if (rc != 0) {
        *err = xasprintf("%s: %s", text, gai_strerror(rc));
        free(host);
        return -EINVAL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (host_out)
        *host_out = host;
    else
        free(host);
    return 0;
}
