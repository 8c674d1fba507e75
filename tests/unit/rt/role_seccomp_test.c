/*
 * role_seccomp_test - each role's filter in a forked child: what the runtime needs still works, a call
 * off the list never runs and ends the process by SIGSYS with the number reported
 *
 * Cases, per role and mode: "kill": the child mallocs, starts a thread, opens and reads a file, sets up
 * an io_uring and writes to a pipe, then calls reboot(2) (no magic: harmless if it ran): it must die by
 * SIGSYS with its report slot holding __NR_reboot and never reach the line after the call; "log" and
 * "off": the same call returns (EINVAL or EPERM) and the child exits 0. Every role refuses execve and
 * ptrace, nor prctl(PR_SET_DUMPABLE) (PR_SET_NAME works); only the spool may rename, and it alone opens no socket. The syscall name lookup for the supervisor's report.
 * Exit 0 pass, 1 fail, 77 when seccomp or io_uring is unavailable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt/role_seccomp.h"
#include "tests/lib/check.h"

static void *thread_main(void *arg)
{
    return arg;
}

/* runtime - what every role does after its filter is loaded; false when something was refused */
static bool runtime(void)
{
    char *p = malloc(1 << 20);
    pthread_t t;
    char buf[64];
    struct io_uring ring;
    int fds[2];

    if (!p)
        return false;
    memset(p, 1, 1 << 20);
    free(p);
    if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
        return false;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
        return false;
    close(fd);
    if (io_uring_queue_init(8, &ring, 0) < 0)
        return false;
    io_uring_queue_exit(&ring);
    if (pipe2(fds, O_CLOEXEC) < 0 || write(fds[1], "x", 1) != 1)
        return false;
    close(fds[0]);
    close(fds[1]);
    return true;
}

/* in_child - fork; the child loads the filter, runs fn and exits with its code; returns the wait status */
static int in_child(enum proto_node_role role, int mode, _Atomic int32_t *report, int (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        int rc = role_seccomp_install(role, mode, report);
        if (rc < 0) {
            fprintf(stderr, "install: %s\n", strerror(-rc));
            _exit(3);
        }
        _exit(fn());
    }
    int status = -1;
    waitpid(pid, &status, 0);
    return status;
}

static int do_reboot(void)
{
    if (!runtime())
        return 2;
    long r = syscall(SYS_reboot, 0L, 0L, 0L, NULL);
    return r < 0 && (errno == EINVAL || errno == EPERM) ? 0 : 4;
}

#ifndef RINGMAIL_SANITIZE
static int do_execve(void)
{
    char *argv[] = {"/bin/true", NULL};
    execve("/bin/true", argv, NULL);
    return 5;
}

static int do_ptrace(void)
{
    syscall(SYS_ptrace, 0L, 0L, 0L, 0L);
    return 6;
}

/* a role may name a thread, not make itself dumpable again */
static int do_prctl(void)
{
    if (prctl(PR_SET_NAME, "rm-test", 0, 0, 0) < 0)
        return 10;
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    return 11;
}
#endif

/* the run's own directory: a child killed at its rename leaves its file there, removed at the end (a file
 * named by pid alone in /tmp would meet a later child of the same pid) */
static char scratch[] = "/tmp/role_seccomp_test.XXXXXX";

static void scratch_clean(void)
{
    DIR *d = opendir(scratch);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            (void)unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    (void)rmdir(scratch);
}

static int do_rename(void)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/%d", scratch, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return 7;
    close(fd);
    char to[80];
    snprintf(to, sizeof(to), "%s.moved", path);
    int rc = rename(path, to);
    unlink(rc == 0 ? to : path);
    return rc == 0 ? 0 : 8;
}

static int do_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 9;
    close(fd);
    return 0;
}

static bool killed_by(int status, int32_t nr, _Atomic int32_t *report)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS && atomic_load(report) == nr;
}

int main(void)
{
    static const char *const names[] = {"spool", "scheduler", "ingress", "egress"};
    _Atomic int32_t *report = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char name[64];

    printf("the lines \"seccomp: syscall N is not on this role's list\" below are expected\n");
    if (mkdtemp(scratch) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (report == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* can this machine load a filter at all? */
    atomic_store(report, -1);
    int probe = in_child(PROTO_NODE_ROLE_SPOOL, CFG_SECCOMP_LOG, report, do_rename);
    if (WIFEXITED(probe) && WEXITSTATUS(probe) == 3) {
        printf("SKIP: seccomp filters cannot be loaded here\n");
        scratch_clean();
        return 77;
    }
    for (int r = 0; r < PROTO_NODE_ROLE__MAX; r++) {
        enum proto_node_role role = (enum proto_node_role)r;
        atomic_store(report, -1);
        int st = in_child(role, CFG_SECCOMP_KILL, report, do_reboot);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
            FAIL("%s: the runtime's calls were refused under the filter", names[r]);
            continue;
        }
        CHECK(killed_by(st, SYS_reboot, report), "%s kill: reboot: status 0x%x report %d", names[r], st,
              (int)atomic_load(report));
        for (int mode = CFG_SECCOMP_LOG; mode <= CFG_SECCOMP_OFF; mode++) {
            st = in_child(role, mode, report, do_reboot);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s mode %d: reboot: status 0x%x", names[r], mode, st);
        }
#ifndef RINGMAIL_SANITIZE /* the sanitizer runtime needs all three (role_seccomp.c) */
        atomic_store(report, -1);
        st = in_child(role, CFG_SECCOMP_KILL, report, do_execve);
        CHECK(killed_by(st, SYS_execve, report), "%s: execve: status 0x%x", names[r], st);
        atomic_store(report, -1);
        st = in_child(role, CFG_SECCOMP_KILL, report, do_ptrace);
        CHECK(killed_by(st, SYS_ptrace, report), "%s: ptrace: status 0x%x", names[r], st);
        atomic_store(report, -1);
        st = in_child(role, CFG_SECCOMP_KILL, report, do_prctl);
        CHECK(killed_by(st, SYS_prctl, report), "%s: prctl(PR_SET_DUMPABLE): status 0x%x", names[r], st);
#endif
        atomic_store(report, -1);
        st = in_child(role, CFG_SECCOMP_KILL, report, do_rename);
        if (role == PROTO_NODE_ROLE_SPOOL)
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spool: rename: status 0x%x", st);
        else
            CHECK(killed_by(st, SYS_rename, report) || killed_by(st, SYS_renameat, report) ||
                      killed_by(st, SYS_renameat2, report),
                  "%s: rename: status 0x%x report %d", names[r], st, (int)atomic_load(report));
        atomic_store(report, -1);
        st = in_child(role, CFG_SECCOMP_KILL, report, do_socket);
        if (role == PROTO_NODE_ROLE_SPOOL)
            CHECK(killed_by(st, SYS_socket, report), "spool: socket: status 0x%x", st);
        else
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: socket: status 0x%x", names[r], st);
    }
    CHECK(strcmp(role_seccomp_syscall_name(SYS_reboot, name, sizeof(name)), "reboot") == 0, "name %s", name);
    CHECK(strcmp(role_seccomp_syscall_name(-1, name, sizeof(name)), "?") == 0, "name of -1: %s", name);
    CHECK(strcmp(role_seccomp_syscall_name(ROLE_SECCOMP_MAX_NR + 1, name, sizeof(name)), "?") == 0, "big: %s", name);
    scratch_clean();
    CHECK_EXIT();
}
