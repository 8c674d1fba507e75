/*
 * ringmail-egress - the egress role (foundation skeleton)
 *
 * Attaches to the node's shared memory, registers, and runs the role loop: heartbeat, ring
 * probes to its peers, reload on SIGHUP, drain on SIGTERM. The role's own work arrives with
 * the issues that build it (see docs/architecture.md).
 */
#include "../common/role_rt.h"

int main(int argc, char **argv)
{
    static struct role_rt rt;

    role_rt_init(&rt, SHM_ROLE_EGRESS, argc, argv);
    role_rt_ready(&rt);
    int rc = role_rt_run(&rt);
    role_rt_fini(&rt);
    return rc;
}
