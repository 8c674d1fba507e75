/*
 * role_seccomp - the seccomp allow-list of each role (PRIV-02)
 *
 * The lists come from measurements (tools/seccomp-measure.py: strace -f over the roles during the
 * e2e suite) plus what the libraries need on paths a test rarely takes (OpenSSL's entropy, c-ares
 * and libcurl sockets, RocksDB's background threads, glibc's malloc and pthreads). What no role
 * needs stays off every list: execve, ptrace, mount, bpf, module loading, kexec, reboot, keyctl,
 * namespaces, set*id, chroot, process_vm_*, perf_event_open ...
 * A name this kernel's headers do not know is skipped (libseccomp resolves names at run time).
 *
 * The SIGSYS handler runs in whichever thread made the call; it only stores a number, write()s a
 * line it formats itself and re-raises SIGSYS with the default action (async-signal-safe calls only).
 */
#include "rt/role_seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* every role: glibc (malloc, stdio, time), pthreads, the io_uring loop and its eventfd/timerfd/signalfd,
 * the shared segment, the log and trace records, reading the configuration and TLS/policy files */
static const char *const seccomp_common[] = {
    /* memory (glibc malloc, RocksDB's and OpenSSL's allocators) */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "mlock", "munlock", "membarrier",
    /* threads, futexes, scheduling */
    "clone", "clone3", "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_min", "sched_get_priority_max", "getpriority", "setpriority", "ioprio_get", "ioprio_set",
    "exit", "exit_group", "restart_syscall",
    /* signals (the loop's signalfd, SIGPIPE ignored, the SIGSYS report, raise/abort) */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigpending", "sigaltstack",
    "tgkill", "tkill", "signalfd4",
    /* identity and limits */
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
    "getresgid", "getrlimit", "prlimit64", "getrusage", "uname", "sysinfo", "getcpu", "arch_prctl",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "timerfd_create", "timerfd_settime", "timerfd_gettime",
    /* entropy (OpenSSL, RocksDB, hash seeds) */
    "getrandom",
    /* the loop */
    "io_uring_setup", "io_uring_enter", "io_uring_register", "eventfd2", "poll", "ppoll", "select",
    "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    /* descriptors and files (reads; writes of already open descriptors) */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "lseek", "pipe", "pipe2",
    "open", "openat", "openat2", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "getdents64", "umask",
    "fsync", "fdatasync", "flock", "fadvise64", "memfd_create", "ftruncate",
    NULL,
};

/* the roles that talk to the network or to the supervisor's trace socket (all but the spool): sockets
 * the role opens itself (c-ares, libcurl, hiredis, the egress's connections, the trace datagrams) and
 * options on the ones the supervisor handed over */
static const char *const seccomp_net[] = {
    "socket", "socketpair", "connect", "getsockname", "getpeername", "getsockopt", "setsockopt", "sendto",
    "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    NULL,
};

/* the spool: RocksDB (its own files, background flush and compaction threads at lower CPU and I/O
 * priority) and the log segments; no socket */
static const char *const seccomp_spool[] = {
    "sched_setscheduler", "sched_setparam",
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "link", "linkat",
    "fallocate", "sync_file_range", "syncfs", "readahead", "msync", "truncate", "fchmod", "fchmodat", "fchown", "utimensat",
    "fsetxattr", "fgetxattr",
    NULL,
};

/* the scheduler: libcurl (MTA-STS fetches), hiredis (shared throttles): the network list is enough */
static const char *const seccomp_scheduler[] = {
    NULL,
};

/* an ingress worker: the listeners it inherited (SMTP and HTTP injection); never a listener of its own */
static const char *const seccomp_ingress[] = {
    "accept", "accept4",
    NULL,
};

/* an egress worker: outbound connections from configured source addresses, c-ares */
static const char *const seccomp_egress[] = {
    "bind",
    NULL,
};

#ifdef RINGMAIL_SANITIZE
/* ASan/LSan/UBSan: LSan's StopTheWorld at exit (a tracer task that lists the threads with the old
 * getdents, ptraces them and waits for them; it blocks every signal, so a call refused there kills it
 * silently and the role hangs at exit); a report's stack symbolized by llvm-symbolizer, which the
 * sanitizer runtime forks and execs (it runs under the role's filter too, inherited) */
static const char *const seccomp_sanitizer[] = {
    "getdents", "ptrace", "wait4", "waitid", "kill", "process_vm_readv", "fork", "vfork", "execve",
    "prctl", /* any option: LSan makes the process dumpable while it ptraces its threads */
    NULL,
};
#endif

static const char *const *role_lists[PROTO_NODE_ROLE__MAX] = {
    [PROTO_NODE_ROLE_SPOOL] = seccomp_spool,
    [PROTO_NODE_ROLE_SCHEDULER] = seccomp_scheduler,
    [PROTO_NODE_ROLE_INGRESS] = seccomp_ingress,
    [PROTO_NODE_ROLE_EGRESS] = seccomp_egress,
};
/* prctl(2) only with these options: thread names (RocksDB's pools), the parent-death signal, reading
 * flags. Never PR_SET_DUMPABLE (a role made itself undumpable at start and stays so), PR_SET_PTRACER,
 * PR_SET_MM, securebits or capabilities. */
#ifndef RINGMAIL_SANITIZE
static const int prctl_options[] = {
    PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_NO_NEW_PRIVS,
    PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ, PR_GET_SECCOMP, PR_GET_TIMERSLACK,
};
#endif

static const bool role_net[PROTO_NODE_ROLE__MAX] = {
    [PROTO_NODE_ROLE_SCHEDULER] = true,
    [PROTO_NODE_ROLE_INGRESS] = true,
    [PROTO_NODE_ROLE_EGRESS] = true,
};

static _Atomic int32_t *sigsys_report;
static const char *sigsys_role = "role";

/* put_num - decimal digits of v at p (async-signal-safe); returns the end */
static char *put_num(char *p, unsigned v)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(tmp));
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    int nr = si->si_syscall;
    char line[128], *p = line;
    size_t rl = strlen(sigsys_role);

    if (sigsys_report)
        atomic_store(sigsys_report, nr);
    static const char a[] = "ringmail-";
    static const char b[] = ": seccomp: syscall ";
    static const char c[] = " is not on this role's list; exiting by SIGSYS\n";
    memcpy(p, a, sizeof(a) - 1);
    p += sizeof(a) - 1;
    if (rl > 16)
        rl = 16;
    memcpy(p, sigsys_role, rl);
    p += rl;
    memcpy(p, b, sizeof(b) - 1);
    p += sizeof(b) - 1;
    p = put_num(p, nr >= 0 ? (unsigned)nr : 0);
    memcpy(p, c, sizeof(c) - 1);
    p += sizeof(c) - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)(p - line));
    (void)w;
    /* SA_RESETHAND made SIGSYS's action the default again; pending, then unblocked, it ends the whole
     * process here, and the supervisor sees WTERMSIG == SIGSYS */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
    sigprocmask(SIG_UNBLOCK, &sys, NULL);
    _exit(128 + SIGSYS); /* not reached */
}

static int allow_list(scmp_filter_ctx ctx, const char *const *names)
{
    for (; *names; names++) {
        int nr = seccomp_syscall_resolve_name(*names);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    return 0;
}

#ifndef RINGMAIL_SANITIZE
static int allow_prctl(scmp_filter_ctx ctx)
{
    for (size_t i = 0; i < sizeof(prctl_options) / sizeof(prctl_options[0]); i++) {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                                  SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctl_options[i]));
        if (rc < 0)
            return rc;
    }
    return 0;
}
#endif

int role_seccomp_install(enum proto_node_role role, int mode, _Atomic int32_t *report)
{
    if (mode == CFG_SECCOMP_OFF)
        return 0;
    if ((unsigned)role >= PROTO_NODE_ROLE__MAX)
        return -EINVAL;
    if (mode == CFG_SECCOMP_KILL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigsys_report = report;
        sigsys_role = proto_node_role_name(role);
        if (report)
            atomic_store(report, -1);
        if (sigaction(SIGSYS, &sa, NULL) < 0)
            return -errno;
    }
    scmp_filter_ctx ctx = seccomp_init(mode == CFG_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
    if (!ctx)
        return -ENOMEM;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = allow_list(ctx, seccomp_common);
#ifndef RINGMAIL_SANITIZE
    if (rc == 0)
        rc = allow_prctl(ctx);
#endif
    if (rc == 0 && role_net[role])
        rc = allow_list(ctx, seccomp_net);
    if (rc == 0)
        rc = allow_list(ctx, role_lists[role]);
#ifdef RINGMAIL_SANITIZE
    if (rc == 0)
        rc = allow_list(ctx, seccomp_sanitizer);
#endif
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}

const char *role_seccomp_syscall_name(int32_t nr, char *buf, size_t len)
{
    char *name = nr >= 0 && nr <= ROLE_SECCOMP_MAX_NR ? seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr)
                                                       : NULL;
    snprintf(buf, len, "%s", name ? name : "?");
    free(name);
    return buf;
}
