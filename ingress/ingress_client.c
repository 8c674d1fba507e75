/*
 * ingress_client - who a client is for the per-client limits, and the descriptors the sessions need
 *
 * ingress_client_key() cuts an IPv6 address to its /N (one /64 is usually one customer: counting per /128
 * would let it open max_connections_per_ip connections from each of 2^64 addresses); an IPv4 address is
 * one client. ingress_fd_limit() raises RLIMIT_NOFILE's soft limit to max_connections plus a reserve.
 */
#include "ingress/ingress.h"

#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "base/log.h"

#define FD_RESERVE 256 /* descriptors beyond the sessions: listeners, io_uring, TLS, logs, policy */

void ingress_client_key(int family, const uint8_t *addr, unsigned prefix, uint8_t key[16])
{
    memset(key, 0, 16);
    if (family == AF_INET) {
        memcpy(key, addr, 4);
        return;
    }
    if (prefix > 128)
        prefix = 128;
    memcpy(key, addr, prefix / 8);
    if (prefix % 8)
        key[prefix / 8] = (uint8_t)(addr[prefix / 8] & (0xffu << (8 - prefix % 8)));
}

unsigned long ingress_fd_limit(uint32_t max_connections, unsigned n_listeners)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rlim_t need = (rlim_t)max_connections + FD_RESERVE + n_listeners;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max == RLIM_INFINITY || need < rl.rlim_max ? need : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur < need)
        log_warn("file descriptors: the limit is %llu, max_connections = %u needs %llu; when they run out, "
                 "accepts pause and new clients wait in the listen backlog (raise the hard limit: LimitNOFILE=)",
                 (unsigned long long)rl.rlim_cur, max_connections, (unsigned long long)need);
    return (unsigned long)rl.rlim_cur;
}
