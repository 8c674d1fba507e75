/*
 * role_seccomp - the seccomp allow-list of each role (PRIV-02)
 *
 * role_seccomp_install() loads the filter of `role` into every thread of the calling process
 * (TSYNC), once the role's libraries have opened what they open at start (role_rt_run() calls it
 * before the first turn of the loop). Modes ([node] seccomp): CFG_SECCOMP_KILL: a syscall off the
 * list never runs; the thread gets SIGSYS, whose handler stores the syscall number in the role's
 * slot (`report`, read by the supervisor, which bounds it), writes one line to stderr and ends the
 * process by SIGSYS. CFG_SECCOMP_LOG: the call runs and the kernel's audit log records it.
 * CFG_SECCOMP_OFF: no filter. Returns 0 or -errno (the filter could not be built or loaded).
 * io_uring operations are not system calls: seccomp does not see them.
 * role_seccomp_syscall_name() - the name of syscall `nr` on this architecture into buf ("?" when
 * unknown); for the supervisor's report.
 */
#ifndef RINGMAIL_ROLE_SECCOMP_H
#define RINGMAIL_ROLE_SECCOMP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg/cfg.h"
#include "common/proto_node.h"

/* the highest syscall number the supervisor believes from a role's report */
#define ROLE_SECCOMP_MAX_NR 4095

int role_seccomp_install(enum proto_node_role role, int mode, _Atomic int32_t *report);
const char *role_seccomp_syscall_name(int32_t nr, char *buf, size_t len);

#endif
