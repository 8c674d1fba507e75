/*
 * fault_shim - LD_PRELOAD library that makes one process's writes and syncs under one directory fail
 *
 * For the spool's disk-fault tests (TESTING.md DUR-02, DISK-02): loaded into ringmaild and, through
 * execv's inherited environment, into every role; it acts only in the process whose short name is
 * RINGMAIL_FAULT_PROC (default ringmail-spool), only on file descriptors whose path starts with
 * RINGMAIL_FAULT_DIR, and only while the control file RINGMAIL_FAULT_FILE exists. Its first word
 * chooses the fault:
 *   enospc     write, pwrite, writev, pwritev, fallocate fail with ENOSPC (a full disk)
 *   eio        the same calls fail with EIO (a failing disk)
 *   eio-fsync  the writes succeed (the bytes sit in the page cache) and fsync, fdatasync and
 *              sync_file_range fail with EIO: the fsyncgate case, where the data is readable but
 *              not known to be on disk
 * Each injected failure appends "call path" to RINGMAIL_FAULT_FILE.hits when that file exists (the
 * test creates it), so a test can show that the fault really fired. Without the variables, or in
 * any other process, every call goes straight to libc.
 */
/* meson's -D_FILE_OFFSET_BITS=64 would map pwrite onto pwrite64 (same symbol twice): both are defined here */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum fault_mode {
    FAULT_NONE = 0,
    FAULT_ENOSPC = 1,
    FAULT_EIO = 2,
    FAULT_EIO_FSYNC = 3,
};

static bool active;
static const char *ctl_file;
static const char *dir;
static size_t dir_len;
static char hits_file[PATH_MAX];

__attribute__((constructor)) static void fault_init(void)
{
    const char *proc = getenv("RINGMAIL_FAULT_PROC");
    ctl_file = getenv("RINGMAIL_FAULT_FILE");
    dir = getenv("RINGMAIL_FAULT_DIR");
    if (!ctl_file || !dir || !dir[0])
        return;
    if (strcmp(program_invocation_short_name, proc && proc[0] ? proc : "ringmail-spool") != 0)
        return;
    dir_len = strlen(dir);
    if ((size_t)snprintf(hits_file, sizeof(hits_file), "%s.hits", ctl_file) >= sizeof(hits_file))
        return;
    active = true;
}

/* the fault the control file asks for now; FAULT_NONE when it is absent */
static enum fault_mode current_mode(void)
{
    char text[32];
    int fd = open(ctl_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FAULT_NONE;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return FAULT_NONE;
    text[n] = '\0';
    text[strcspn(text, " \t\r\n")] = '\0';
    if (strcmp(text, "enospc") == 0)
        return FAULT_ENOSPC;
    if (strcmp(text, "eio") == 0)
        return FAULT_EIO;
    if (strcmp(text, "eio-fsync") == 0)
        return FAULT_EIO_FSYNC;
    return FAULT_NONE;
}

/* fd_path - fd's path under the fault directory, or false */
static bool fd_path(int fd, char *path, size_t cap)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, cap - 1);
    if (n < 0)
        return false;
    path[n] = '\0';
    return (size_t)n >= dir_len && memcmp(path, dir, dir_len) == 0 && (path[dir_len] == '/' || path[dir_len] == '\0');
}

static void record_hit(const char *call, const char *path)
{
    int fd = open(hits_file, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    char line[PATH_MAX + 64];
    int n = snprintf(line, sizeof(line), "%s %s\n", call, path);
    if (n > 0) {
        ssize_t w = write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
        (void)w; /* the shim's own record: the interposed write below is bypassed for it (no fault dir) */
    }
    close(fd);
}

/* fault_for - the errno this call on fd must fail with, or 0 to let it through */
static int fault_for(int fd, bool is_sync, const char *call)
{
    if (!active)
        return 0;
    enum fault_mode m = current_mode();
    int err = 0;
    if (m == FAULT_ENOSPC && !is_sync)
        err = ENOSPC;
    else if (m == FAULT_EIO && !is_sync)
        err = EIO;
    else if (m == FAULT_EIO_FSYNC && is_sync)
        err = EIO;
    if (err == 0)
        return 0;
    char path[PATH_MAX];
    if (!fd_path(fd, path, sizeof(path)))
        return 0;
    record_hit(call, path);
    return err;
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

#define FAULT_OR_RETURN(fd, is_sync, call)          \
    do {                                            \
        int e_ = fault_for((fd), (is_sync), (call)); \
        if (e_ != 0) {                              \
            errno = e_;                             \
            return -1;                              \
        }                                           \
    } while (0)

ssize_t write(int fd, const void *buf, size_t n)
{
    static __typeof__(&write) real;
    if (!real)
        real = NEXT(write);
    FAULT_OR_RETURN(fd, false, "write");
    return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static __typeof__(&pwrite) real;
    if (!real)
        real = NEXT(pwrite);
    FAULT_OR_RETURN(fd, false, "pwrite");
    return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    static __typeof__(&pwrite64) real;
    if (!real)
        real = NEXT(pwrite64);
    FAULT_OR_RETURN(fd, false, "pwrite64");
    return real(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    static __typeof__(&writev) real;
    if (!real)
        real = NEXT(writev);
    FAULT_OR_RETURN(fd, false, "writev");
    return real(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    static __typeof__(&pwritev) real;
    if (!real)
        real = NEXT(pwritev);
    FAULT_OR_RETURN(fd, false, "pwritev");
    return real(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    static __typeof__(&pwritev2) real;
    if (!real)
        real = NEXT(pwritev2);
    FAULT_OR_RETURN(fd, false, "pwritev2");
    return real(fd, iov, cnt, off, flags);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    static __typeof__(&fallocate) real;
    if (!real)
        real = NEXT(fallocate);
    FAULT_OR_RETURN(fd, false, "fallocate");
    return real(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
    static __typeof__(&fallocate64) real;
    if (!real)
        real = NEXT(fallocate64);
    FAULT_OR_RETURN(fd, false, "fallocate64");
    return real(fd, mode, off, len);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    static __typeof__(&pwritev64) real;
    if (!real)
        real = NEXT(pwritev64);
    FAULT_OR_RETURN(fd, false, "pwritev64");
    return real(fd, iov, cnt, off);
}

int fsync(int fd)
{
    static __typeof__(&fsync) real;
    if (!real)
        real = NEXT(fsync);
    FAULT_OR_RETURN(fd, true, "fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    static __typeof__(&fdatasync) real;
    if (!real)
        real = NEXT(fdatasync);
    FAULT_OR_RETURN(fd, true, "fdatasync");
    return real(fd);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
    static __typeof__(&sync_file_range) real;
    if (!real)
        real = NEXT(sync_file_range);
    /* flags 0 does nothing and reports nothing (RocksDB probes support with it, and asserts on errors) */
    if (flags != 0)
        FAULT_OR_RETURN(fd, true, "sync_file_range");
    return real(fd, off, n, flags);
}
