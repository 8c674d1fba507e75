/*
 * seccomp_probe - an LD_PRELOAD library for seccomp_test.py (never part of a node): makes one role do a
 * syscall no role needs, without a backdoor in the node's code
 *
 * In the process whose /proc/self/comm is $SECCOMP_PROBE_COMM (default "ringmail-egress") its
 * constructor starts a thread that waits until the thread's seccomp mode is "filter" (the role loaded
 * its list; at most 5 s, then it goes on anyway: seccomp = "off"), then calls reboot(2) with no magic
 * numbers, which fails with EINVAL or EPERM even where it is allowed: harmless. It writes a line to
 * stderr before and after the call. With $SECCOMP_PROBE_ONCE set (a path), only the process that
 * creates that file fires: a restarted role is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void say(const char *text)
{
    ssize_t w = write(STDERR_FILENO, text, strlen(text));
    (void)w;
}

/* seccomp_mode - the Seccomp: field of this thread's status (0 none, 2 filter), -1 unreadable */
static int seccomp_mode(void)
{
    char buf[4096];
    int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nSeccomp:");
    return p ? atoi(p + 9) : -1;
}

static void *probe(void *arg)
{
    char line[160];
    int mode = 0;

    for (int i = 0; i < 100 && (mode = seccomp_mode()) != 2; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(line, sizeof(line), "seccomp_probe: calling reboot (seccomp mode %d)\n", mode);
    say(line);
    long r = syscall(SYS_reboot, 0L, 0L, 0L, NULL);
    snprintf(line, sizeof(line), "seccomp_probe: reboot returned %ld (%s)\n", r, r < 0 ? strerror(errno) : "ok");
    say(line);
    return arg;
}

__attribute__((constructor)) static void seccomp_probe_start(void)
{
    char comm[32] = {0};
    const char *want = getenv("SECCOMP_PROBE_COMM");
    const char *once = getenv("SECCOMP_PROBE_ONCE");
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    ssize_t n = read(fd, comm, sizeof(comm) - 1);
    close(fd);
    if (n <= 0)
        return;
    comm[strcspn(comm, "\n")] = '\0';
    if (strcmp(comm, want ? want : "ringmail-egress") != 0)
        return;
    if (once) {
        int m = open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (m < 0)
            return;
        close(m);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, probe, NULL) == 0)
        pthread_detach(t);
}
