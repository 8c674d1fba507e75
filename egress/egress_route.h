/*
 * egress_route - where a job's message goes: the configured route or the MX hosts, their addresses
 *
 * egress_route_start() fills the job's targets from [route."domain"] (site "route:HOSTS") or from
 * an MX lookup (site: the MX set's rollup name), then reuses the lease's idle connection to the same
 * site and source, or connects. egress_route_next() tries the next address of the current host, then
 * the next host (EGR-01), resolving hosts as it reaches them; when none is left every undecided
 * recipient is transient. Internal to the egress library.
 */
#ifndef RINGMAIL_EGRESS_ROUTE_H
#define RINGMAIL_EGRESS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct egress_job;

struct egress_target {
    char *host;
    uint16_t port;
    bool literal;
    bool resolved;
    size_t n_addr;
    struct sockaddr_storage *addr;
};

void egress_route_start(struct egress_job *j);
void egress_route_next(struct egress_job *j);

#endif
