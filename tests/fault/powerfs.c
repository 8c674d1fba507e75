/*
 * powerfs - a FUSE passthrough file system that logs every change in the order it completed
 *
 * For the power-cut test (TESTING.md PWR-03, tests/e2e/power_loss_test.py): the spool runs on the mount;
 * tests/lib/powerlog.py later rebuilds from the log the state a power cut at any point of it could have
 * left (unsynced writes kept or dropped, unsynced names kept as a prefix). A test helper, not installed.
 *
 *     ringmail-powerfs BACKING_DIR MOUNTPOINT LOGFILE [fuse options, e.g. -o allow_other,default_permissions]
 *
 * Runs in the foreground; every operation is done on BACKING_DIR (as root, then chowned to the caller
 * for what it creates), so the live view is an ordinary file system. Unmount (fusermount3 -u) ends it;
 * SIGTERM (or SIGINT, SIGHUP) flushes the log and detaches the mount, which ends it too.
 *
 * Log format: LOGFILE holds one JSON object per line, one per mutating operation and per fsync, in the
 * order the operations completed (the line is appended after the backing call returned and before the
 * reply to the kernel, under one mutex, so an operation the caller issued after seeing another's reply
 * always comes later in the log). Fields of every record:
 *     seq   0, 1, 2 ... (the line number)
 *     t     CLOCK_MONOTONIC in nanoseconds, taken under the mutex (never decreases along the log)
 *     op    create mkdir symlink link unlink rmdir rename write truncate fallocate chmod chown utimens
 *           fsync fsyncdir
 *     ino   the file's identity: a number given when the file is created or first seen, kept through
 *           renames and links, and by open handles after an unlink (1 is the root directory)
 *     path  relative to the mount ("" for the root): the file's name when the operation was made ("" for
 *           an operation on the open handle of an unlinked file); ino is what names the file
 * and, by op:
 *     create, mkdir  mode uid gid         symlink  target           link  to (the new name)
 *     rename         to flags over (ino of the file the rename replaced, 0 for none)
 *     write          off len doff (the bytes are at offset doff of LOGFILE.data)
 *     truncate       size                 fallocate  mode off len   chmod  mode   chown  uid gid
 *     fsync          datasync (0 or 1)
 * An open with O_TRUNC of an existing file logs a truncate to 0.
 */
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct powerfs_file {
    int fd;
    uint64_t ino;
    bool append;
};

struct powerfs_ident {
    dev_t dev;
    ino_t ino;
    uint64_t id;
};

static int backing = -1; /* the backing directory */
static FILE *log_f, *data_f;
static uint64_t log_seq, data_off, next_id = 1;
static struct powerfs_ident *idents;
static size_t n_idents, cap_idents;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
/* held across a namespace change and its record, so the log's order of names is the backing dir's */
static pthread_mutex_t ns_mu = PTHREAD_MUTEX_INITIALIZER;

/* rel - the backing-relative form of a FUSE path ("/" is ".") */
static const char *rel(const char *path)
{
    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
        return ".";
    return path[0] == '/' ? path + 1 : path;
}

/* ident_of - the id of a (dev, ino), given now when first seen; fresh makes a new one (a new file may
 * reuse the inode number of one deleted before) */
static uint64_t ident_of(const struct stat *st, bool fresh)
{
    uint64_t id = 0;
    pthread_mutex_lock(&log_mu);
    size_t i;
    for (i = 0; i < n_idents; i++)
        if (idents[i].dev == st->st_dev && idents[i].ino == st->st_ino)
            break;
    if (i == n_idents) {
        if (n_idents == cap_idents) {
            cap_idents = cap_idents ? cap_idents * 2 : 64;
            idents = realloc(idents, cap_idents * sizeof(*idents));
            if (idents == NULL)
                abort();
        }
        idents[n_idents].dev = st->st_dev;
        idents[n_idents].ino = st->st_ino;
        n_idents++;
        fresh = true;
    }
    if (fresh)
        idents[i].id = next_id++;
    id = idents[i].id;
    pthread_mutex_unlock(&log_mu);
    return id;
}

/* ident_path - the id of the file at path (not following a final symlink); 0 when there is none */
static uint64_t ident_path(const char *path)
{
    struct stat st;
    if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    return ident_of(&st, false);
}

static void put_str(const char *key, const char *s)
{
    fprintf(log_f, ",\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(log_f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(log_f, "\\u%04x", *p);
        else
            fputc(*p, log_f);
    }
    fputc('"', log_f);
}

/* record - append one record: op, ino, path, then one "key", value pair per letter of fmt ('s' a string,
 * 'u' a uint64_t); data (len bytes, for writes) goes to the data file */
static void record(const char *op, uint64_t ino, const char *path, const void *data, size_t len,
                   const char *fmt, ...)
{
    struct timespec ts;
    pthread_mutex_lock(&log_mu);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(log_f, "{\"seq\":%" PRIu64 ",\"t\":%" PRId64 ",\"op\":\"%s\",\"ino\":%" PRIu64, log_seq++,
            (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, op, ino);
    put_str("path", path != NULL && strcmp(path, "/") != 0 ? rel(path) : "");
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        const char *key = va_arg(ap, const char *);
        if (*f == 's')
            put_str(key, va_arg(ap, const char *));
        else
            fprintf(log_f, ",\"%s\":%" PRIu64, key, va_arg(ap, uint64_t));
    }
    va_end(ap);
    if (data != NULL) {
        fprintf(log_f, ",\"doff\":%" PRIu64, data_off);
        if (fwrite(data, 1, len, data_f) != len) {
            perror("powerfs: data file");
            abort(); /* a log with holes would prove nothing */
        }
        data_off += len;
    }
    fputs("}\n", log_f);
    if (ferror(log_f)) {
        perror("powerfs: log file");
        abort();
    }
    pthread_mutex_unlock(&log_mu);
}

static void flush_log(void)
{
    pthread_mutex_lock(&log_mu);
    fflush(data_f);
    fflush(log_f);
    pthread_mutex_unlock(&log_mu);
}

/* give_to_caller - what we created as root belongs to the process that asked */
static void give_to_caller(const char *path)
{
    struct fuse_context *c = fuse_get_context();
    if (fchownat(backing, rel(path), c->uid, c->gid, AT_SYMLINK_NOFOLLOW) < 0)
        perror("powerfs: chown");
}

static struct powerfs_file *fh(struct fuse_file_info *fi)
{
    return (struct powerfs_file *)(uintptr_t)fi->fh;
}

static void *on_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    cfg->hard_remove = 1; /* unlink really unlinks (no .fuse_hidden renames); open handles keep working */
    cfg->nullpath_ok = 0; /* readdir, fsyncdir, write... get the name (NULL only for an unlinked file) */
    cfg->kernel_cache = 0;
    return NULL;
}

static void on_destroy(void *private_data)
{
    (void)private_data;
    flush_log();
}

static int on_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int rc = fi ? fstat(fh(fi)->fd, st) : fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return rc < 0 ? -errno : 0;
}

static int on_access(const char *path, int mask)
{
    return faccessat(backing, rel(path), mask, 0) < 0 ? -errno : 0;
}

static int on_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(backing, rel(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int on_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    (void)off, (void)fi, (void)flags;
    if (path == NULL)
        return 0; /* a directory removed while open is empty */
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int on_mkdir(const char *path, mode_t mode)
{
    struct stat st;
    pthread_mutex_lock(&ns_mu);
    int rc = mkdirat(backing, rel(path), mode) < 0 ? -errno : 0;
    if (rc == 0) {
        give_to_caller(path);
        if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0)
            record("mkdir", ident_of(&st, true), path, NULL, 0, "uuu", "mode", (uint64_t)st.st_mode, "uid",
                   (uint64_t)st.st_uid, "gid", (uint64_t)st.st_gid);
    }
    pthread_mutex_unlock(&ns_mu);
    return rc;
}

static int on_symlink(const char *target, const char *path)
{
    struct stat st;
    pthread_mutex_lock(&ns_mu);
    int rc = symlinkat(target, backing, rel(path)) < 0 ? -errno : 0;
    if (rc == 0) {
        give_to_caller(path);
        if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0)
            record("symlink", ident_of(&st, true), path, NULL, 0, "s", "target", target);
    }
    pthread_mutex_unlock(&ns_mu);
    return rc;
}

/* remove - unlink or rmdir, logged with the identity the name had */
static int remove_name(const char *path, int flags, const char *op)
{
    pthread_mutex_lock(&ns_mu);
    uint64_t id = ident_path(path);
    int rc = unlinkat(backing, rel(path), flags) < 0 ? -errno : 0;
    if (rc == 0)
        record(op, id, path, NULL, 0, "");
    pthread_mutex_unlock(&ns_mu);
    return rc;
}

static int on_unlink(const char *path)
{
    return remove_name(path, 0, "unlink");
}

static int on_rmdir(const char *path)
{
    return remove_name(path, AT_REMOVEDIR, "rmdir");
}

static int on_rename(const char *from, const char *to, unsigned int flags)
{
    if (flags & ~(unsigned int)RENAME_NOREPLACE)
        return -EINVAL; /* RENAME_EXCHANGE and whiteouts: nothing here needs them */
    pthread_mutex_lock(&ns_mu);
    uint64_t id = ident_path(from), over = ident_path(to);
    int rc = renameat2(backing, rel(from), backing, rel(to), flags) < 0 ? -errno : 0;
    if (rc == 0)
        record("rename", id, from, NULL, 0, "suu", "to", rel(to), "flags", (uint64_t)flags, "over", over);
    pthread_mutex_unlock(&ns_mu);
    return rc;
}

static int on_link(const char *from, const char *to)
{
    pthread_mutex_lock(&ns_mu);
    int rc = linkat(backing, rel(from), backing, rel(to), 0) < 0 ? -errno : 0;
    if (rc == 0)
        record("link", ident_path(from), from, NULL, 0, "s", "to", rel(to));
    pthread_mutex_unlock(&ns_mu);
    return rc;
}

static int on_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int rc = fi ? fchmod(fh(fi)->fd, mode) : fchmodat(backing, rel(path), mode, 0);
    if (rc < 0)
        return -errno;
    record("chmod", fi ? fh(fi)->ino : ident_path(path), path, NULL, 0, "u", "mode", (uint64_t)mode);
    return 0;
}

static int on_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    int rc = fi ? fchown(fh(fi)->fd, uid, gid) : fchownat(backing, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return -errno;
    /* -1 means "unchanged": logged as the value the file has now */
    struct stat st;
    if (fi ? fstat(fh(fi)->fd, &st) : fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW))
        return -errno;
    record("chown", fi ? fh(fi)->ino : ident_of(&st, false), path, NULL, 0, "uu", "uid", (uint64_t)st.st_uid,
           "gid", (uint64_t)st.st_gid);
    return 0;
}

/* truncate_path - truncate by name: root may, whatever the mode; the kernel has checked the caller */
static int truncate_path(const char *path, off_t size)
{
    int fd = openat(backing, rel(path), O_WRONLY | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, size) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static int on_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    int rc = fi ? (ftruncate(fh(fi)->fd, size) < 0 ? -errno : 0) : truncate_path(path, size);
    if (rc < 0)
        return rc;
    record("truncate", fi ? fh(fi)->ino : ident_path(path), path, NULL, 0, "u", "size", (uint64_t)size);
    return 0;
}

static int on_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    int rc = fi ? futimens(fh(fi)->fd, tv) : utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    if (rc < 0)
        return -errno;
    record("utimens", fi ? fh(fi)->ino : ident_path(path), path, NULL, 0, "");
    return 0;
}

static int file_new(int fd, uint64_t ino, int flags, struct fuse_file_info *fi)
{
    struct powerfs_file *f = calloc(1, sizeof(*f));
    if (f == NULL)
        abort();
    f->fd = fd;
    f->ino = ino;
    f->append = (flags & O_APPEND) != 0;
    fi->fh = (uint64_t)(uintptr_t)f;
    return 0;
}

/* open_file - open and create (O_CREAT from create()); a name that did not exist gets a new identity */
static int open_file(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct stat st;
    pthread_mutex_lock(&ns_mu);
    bool existed = fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0;
    int fd = openat(backing, rel(path), fi->flags, mode);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        pthread_mutex_unlock(&ns_mu);
        return rc;
    }
    uint64_t id = ident_of(&st, !existed);
    if (!existed) {
        give_to_caller(path);
        fstat(fd, &st);
        record("create", id, path, NULL, 0, "uuu", "mode", (uint64_t)st.st_mode, "uid", (uint64_t)st.st_uid,
               "gid", (uint64_t)st.st_gid);
    } else if (fi->flags & O_TRUNC) {
        record("truncate", id, path, NULL, 0, "u", "size", (uint64_t)0);
    }
    pthread_mutex_unlock(&ns_mu);
    return file_new(fd, id, fi->flags, fi);
}

static int on_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    return open_file(path, mode, fi);
}

static int on_open(const char *path, struct fuse_file_info *fi)
{
    return open_file(path, 0, fi);
}

static int on_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    ssize_t n = pread(fh(fi)->fd, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int on_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct powerfs_file *f = fh(fi);
    struct stat st;
    if (f->append)
        pthread_mutex_lock(&ns_mu); /* the offset an O_APPEND write landed at is read back after it */
    ssize_t n = pwrite(f->fd, buf, size, off);
    int rc = n < 0 ? -errno : (int)n;
    if (n > 0 && f->append) {
        if (fstat(f->fd, &st) == 0)
            off = st.st_size - n;
        else
            rc = -errno;
    }
    if (n > 0 && rc >= 0)
        record("write", f->ino, path, buf, (size_t)n, "uu", "off", (uint64_t)off, "len", (uint64_t)n);
    if (f->append)
        pthread_mutex_unlock(&ns_mu);
    return rc;
}

static int on_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(backing, sv) < 0 ? -errno : 0;
}

static int on_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path, (void)fi;
    return 0; /* nothing is buffered here: writes reached the backing file when they were answered */
}

static int on_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct powerfs_file *f = fh(fi);
    close(f->fd);
    free(f);
    return 0;
}

static int on_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct powerfs_file *f = fh(fi);
    if ((datasync ? fdatasync(f->fd) : fsync(f->fd)) < 0)
        return -errno;
    record("fsync", f->ino, path, NULL, 0, "u", "datasync", (uint64_t)(datasync != 0));
    return 0;
}

static int on_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync, (void)fi;
    if (path == NULL)
        return 0; /* removed: nothing of it to make durable */
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0)
        record("fsyncdir", ident_of(&st, false), path, NULL, 0, "");
    close(fd);
    return rc;
}

static int on_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
    if (mode & ~FALLOC_FL_KEEP_SIZE)
        return -EOPNOTSUPP; /* holes and range shifts: nothing here uses them */
    struct powerfs_file *f = fh(fi);
    if (fallocate(f->fd, mode, off, len) < 0)
        return -errno;
    record("fallocate", f->ino, path, NULL, 0, "uuu", "mode", (uint64_t)mode, "off", (uint64_t)off, "len",
           (uint64_t)len);
    return 0;
}

/* on_signal - SIGTERM, SIGINT, SIGHUP (blocked in every other thread): the log is flushed first, then the
 * mount is detached, which ends fuse_main's loop and the process as an unmount does (libfuse's own
 * handler only asks the loop to end, and a signal that lands at the wrong moment was seen to kill the
 * process with the log unflushed and the mount left behind) */
static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

static void *on_signal(void *arg)
{
    const char *mountpoint = arg;
    sigset_t set;
    int sig;
    stop_signals(&set);
    if (sigwait(&set, &sig) == 0) {
        flush_log();
        if (umount2(mountpoint, MNT_DETACH) < 0)
            perror("powerfs: umount");
    }
    return NULL;
}

static const struct fuse_operations powerfs_ops = {
    .init = on_init,
    .destroy = on_destroy,
    .getattr = on_getattr,
    .access = on_access,
    .readlink = on_readlink,
    .readdir = on_readdir,
    .mkdir = on_mkdir,
    .symlink = on_symlink,
    .unlink = on_unlink,
    .rmdir = on_rmdir,
    .rename = on_rename,
    .link = on_link,
    .chmod = on_chmod,
    .chown = on_chown,
    .truncate = on_truncate,
    .utimens = on_utimens,
    .create = on_create,
    .open = on_open,
    .read = on_read,
    .write = on_write,
    .statfs = on_statfs,
    .flush = on_flush,
    .release = on_release,
    .fsync = on_fsync,
    .fsyncdir = on_fsyncdir,
    .fallocate = on_fallocate,
};

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s BACKING_DIR MOUNTPOINT LOGFILE [fuse options]\n", argv[0]);
        return 2;
    }
    backing = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (backing < 0) {
        perror(argv[1]);
        return 1;
    }
    char data_path[PATH_MAX];
    if (snprintf(data_path, sizeof(data_path), "%s.data", argv[3]) >= (int)sizeof(data_path)) {
        fprintf(stderr, "%s: name too long\n", argv[3]);
        return 2;
    }
    log_f = fopen(argv[3], "w");
    data_f = fopen(data_path, "w");
    if (log_f == NULL || data_f == NULL) {
        perror(log_f == NULL ? argv[3] : data_path);
        return 1;
    }
    struct stat st;
    if (fstat(backing, &st) < 0 || ident_of(&st, false) != 1)
        abort(); /* the root is ino 1 */
    umask(0);    /* modes come from the kernel with the caller's umask applied */
    static char mountpoint[PATH_MAX];
    if (realpath(argv[2], mountpoint) == NULL) {
        perror(argv[2]);
        return 1;
    }
    sigset_t set;
    stop_signals(&set);
    pthread_t sig_thread;
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        pthread_create(&sig_thread, NULL, on_signal, mountpoint) != 0)
        abort();
    pthread_detach(sig_thread);
    char **fargv = calloc((size_t)argc, sizeof(*fargv));
    if (fargv == NULL)
        abort();
    int fargc = 0;
    fargv[fargc++] = argv[0];
    fargv[fargc++] = argv[2];
    fargv[fargc++] = "-f";
    for (int i = 4; i < argc; i++)
        fargv[fargc++] = argv[i];
    int rc = fuse_main(fargc, fargv, &powerfs_ops, NULL);
    flush_log();
    fclose(log_f);
    fclose(data_f);
    close(backing);
    free(fargv);
    free(idents);
    return rc;
}
