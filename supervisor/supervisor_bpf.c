/*
 * supervisor_bpf - load, attach and feed the SO_REUSEPORT steering program
 *
 * supervisor_bpf_open() opens the object file (no privilege needed, so a missing or foreign
 * file is reported as such even when not root), checks it holds our program and maps, probes
 * the kernel, then loads it with a verifier log buffer so a rejection is reported by its
 * decisive line rather than as a bare EACCES. libbpf's own messages go to log_debug: the
 * caller logs the one-line reason once and falls back to the kernel's hash.
 * Ownership: the struct owns the bpf_object (and through it the program and map fds); it never
 * owns the sockets it is given.
 */
#include "supervisor/supervisor_bpf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "base/log.h"
#include "base/mem.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

#define BPF_PROG_NAME "reuseport_select"
#define BPF_LOG_SIZE (256 * 1024)
#define REASON_MAX 240

struct supervisor_bpf {
    struct bpf_object *obj;
    int prog_fd;
    int socks_fd;
    int loads_fd;
    int count_fd;
    unsigned workers;
};

static int bpf_fail(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* bpf_fail - store a one-line reason (if asked for) and return rc */
static int bpf_fail(char **err, int rc, const char *fmt, ...)
{
    char line[REASON_MAX + 64];
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        *err = xstrdup(line);
    }
    return rc;
}

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    if (log_get_level() > LOG_LEVEL_DEBUG)
        return 0;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    log_debug("libbpf: %s", line);
    return 0;
}

/* The reason for a failed syscall, worded for the operator who reads it once. */
static const char *bpf_errno_reason(int e)
{
    switch (e) {
    case ENOSYS:
        return "kernel built without BPF (bpf() not implemented)";
    case EPERM:
    case EACCES:
        return "not permitted: needs root (CAP_BPF and CAP_NET_ADMIN)";
    case EINVAL:
    case EOPNOTSUPP:
        return "kernel does not support this program or map type";
    default:
        return strerror(e);
    }
}

int supervisor_bpf_probe(char **err)
{
    int fd, rc;

    libbpf_set_print(on_libbpf_print);
    /* A plain array first: its errno tells "no BPF" from "not permitted", which the type probes
     * below fold into a bare "unsupported". */
    fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "rm_probe", sizeof(uint32_t), sizeof(uint32_t), 1, NULL);
    if (fd < 0) {
        rc = fd;
        return bpf_fail(err, rc, "BPF unavailable: %s", bpf_errno_reason(-rc));
    }
    close(fd);
    rc = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_REUSEPORT, NULL);
    if (rc <= 0)
        return bpf_fail(err, rc < 0 ? rc : -EOPNOTSUPP,
                        "BPF unavailable: kernel has no sk_reuseport programs");
    rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, NULL);
    if (rc <= 0)
        return bpf_fail(err, rc < 0 ? rc : -EOPNOTSUPP,
                        "BPF unavailable: kernel has no reuseport socket arrays");
    return 0;
}

/* Copies the last telling line of a verifier log (not its statistics) into out, printable only. */
static void bpf_verifier_line(const char *log, char *out, size_t size)
{
    const char *p = log, *best = NULL;
    size_t best_len = 0, i, o = 0;

    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);

        if (len > 0 && strncmp(p, "processed ", 10) != 0 && strncmp(p, "verification time", 17) != 0
            && strncmp(p, "stack depth", 11) != 0) {
            best = p;
            best_len = len;
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    if (!best) {
        snprintf(out, size, "no verifier log");
        return;
    }
    for (i = 0; i < best_len && o + 1 < size; i++)
        out[o++] = (best[i] >= 0x20 && best[i] < 0x7f) ? best[i] : '?';
    out[o] = '\0';
}

static int bpf_map_fd_checked(struct bpf_object *obj, const char *name, enum bpf_map_type type,
                              unsigned min_entries, const char *path, char **err)
{
    struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

    if (!m)
        return bpf_fail(err, -ENOENT, "%s: not the reuseport object (no map %s)", path, name);
    if (bpf_map__type(m) != type || bpf_map__key_size(m) != sizeof(uint32_t)
        || bpf_map__max_entries(m) < min_entries)
        return bpf_fail(err, -EINVAL, "%s: map %s has an unexpected type or size", path, name);
    if (type == BPF_MAP_TYPE_ARRAY && bpf_map__value_size(m) != sizeof(uint32_t))
        return bpf_fail(err, -EINVAL, "%s: map %s has an unexpected value size", path, name);
    return 0;
}

int supervisor_bpf_open(const char *obj_path, unsigned workers, struct supervisor_bpf **out, char **err)
{
    struct bpf_object *obj;
    struct bpf_program *prog;
    struct supervisor_bpf *b;
    struct stat st;
    char *log;
    char line[REASON_MAX];
    uint32_t zero = 0, count = workers;
    unsigned i;
    int rc;

    *out = NULL;
    if (workers == 0 || workers > SUPERVISOR_BPF_MAX_WORKERS)
        return bpf_fail(err, -EINVAL, "worker count %u outside 1..%d", workers, SUPERVISOR_BPF_MAX_WORKERS);
    libbpf_set_print(on_libbpf_print);
    /* libbpf would say ENOENT too, but only on its debug channel: check first for a clear line. */
    if (stat(obj_path, &st) != 0) {
        rc = -errno;
        return bpf_fail(err, rc, "%s: %s (BPF object not built or not installed)", obj_path, strerror(-rc));
    }
    if (!S_ISREG(st.st_mode))
        return bpf_fail(err, -EINVAL, "%s: not a regular file", obj_path);

    obj = bpf_object__open_file(obj_path, NULL);
    if (!obj) {
        char why[128];

        /* libbpf has its own codes past 4000 (bad ELF, bad BTF...): they are not errnos. */
        rc = errno ? -errno : -EINVAL;
        libbpf_strerror(rc, why, sizeof(why));
        return bpf_fail(err, rc <= -__LIBBPF_ERRNO__START ? -EINVAL : rc,
                        "%s: not a usable BPF object (%s)", obj_path, why);
    }
    prog = bpf_object__find_program_by_name(obj, BPF_PROG_NAME);
    if (!prog) {
        rc = bpf_fail(err, -ENOENT, "%s: not the reuseport object (no program %s)", obj_path, BPF_PROG_NAME);
        goto fail_obj;
    }
    if (bpf_program__type(prog) != BPF_PROG_TYPE_SK_REUSEPORT) {
        rc = bpf_fail(err, -EINVAL, "%s: program %s is not an sk_reuseport program", obj_path, BPF_PROG_NAME);
        goto fail_obj;
    }
    if ((rc = bpf_map_fd_checked(obj, "rs_socks", BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, workers, obj_path, err)) < 0
        || (rc = bpf_map_fd_checked(obj, "rs_loads", BPF_MAP_TYPE_ARRAY, workers, obj_path, err)) < 0
        || (rc = bpf_map_fd_checked(obj, "rs_count", BPF_MAP_TYPE_ARRAY, 1, obj_path, err)) < 0)
        goto fail_obj;

    if ((rc = supervisor_bpf_probe(err)) < 0)
        goto fail_obj;

    log = xmalloc(BPF_LOG_SIZE);
    log[0] = '\0';
    bpf_program__set_log_buf(prog, log, BPF_LOG_SIZE);
    rc = bpf_object__load(obj);
    if (rc < 0) {
        if (log[0] != '\0') {
            bpf_verifier_line(log, line, sizeof(line));
            rc = bpf_fail(err, rc, "%s: verifier rejected %s: %s", obj_path, BPF_PROG_NAME, line);
        } else {
            rc = bpf_fail(err, rc, "%s: load failed: %s", obj_path, bpf_errno_reason(-rc));
        }
        free(log);
        goto fail_obj;
    }
    /* The buffer is only read during load; libbpf keeps the pointer, so clear it before freeing. */
    bpf_program__set_log_buf(prog, NULL, 0);
    free(log);

    b = xcalloc(1, sizeof(*b));
    b->obj = obj;
    b->workers = workers;
    b->prog_fd = bpf_program__fd(prog);
    b->socks_fd = bpf_object__find_map_fd_by_name(obj, "rs_socks");
    b->loads_fd = bpf_object__find_map_fd_by_name(obj, "rs_loads");
    b->count_fd = bpf_object__find_map_fd_by_name(obj, "rs_count");
    if (b->prog_fd < 0 || b->socks_fd < 0 || b->loads_fd < 0 || b->count_fd < 0) {
        rc = bpf_fail(err, -EBADF, "%s: loaded but a program or map has no fd", obj_path);
        goto fail_b;
    }
    /* A fresh array reads 0, the most attractive load: mark every worker not ready until the
     * supervisor has seen it start. */
    for (i = 0; i < workers; i++) {
        uint32_t key = i, nr = SUPERVISOR_BPF_NOT_READY;

        if ((rc = bpf_map_update_elem(b->loads_fd, &key, &nr, BPF_ANY)) < 0) {
            rc = bpf_fail(err, rc, "loads map update: %s", strerror(-rc));
            goto fail_b;
        }
    }
    if ((rc = bpf_map_update_elem(b->count_fd, &zero, &count, BPF_ANY)) < 0) {
        rc = bpf_fail(err, rc, "count map update: %s", strerror(-rc));
        goto fail_b;
    }
    *out = b;
    return 0;

fail_b:
    free(b);
fail_obj:
    bpf_object__close(obj);
    return rc;
}

int supervisor_bpf_attach(struct supervisor_bpf *b, int sock_fd, char **err)
{
    if (setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &b->prog_fd, sizeof(b->prog_fd)) != 0) {
        int rc = -errno;

        if (rc == -EINVAL)
            return bpf_fail(err, rc, "attach to fd %d: not a bound SO_REUSEPORT socket", sock_fd);
        return bpf_fail(err, rc, "attach to fd %d: %s", sock_fd, bpf_errno_reason(-rc));
    }
    return 0;
}

int supervisor_bpf_detach(struct supervisor_bpf *b, int sock_fd, char **err)
{
    int dummy = 0;

    (void)b;
    if (setsockopt(sock_fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &dummy, sizeof(dummy)) != 0) {
        int rc = -errno;

        return bpf_fail(err, rc, "detach from fd %d: %s", sock_fd,
                        rc == -ENOENT ? "no program attached" : strerror(-rc));
    }
    return 0;
}

/* The kernel refuses to store a socket twice, even in its own slot; registering again after a
 * reload is not an error, so compare the slot's socket cookie with this socket's. */
static bool bpf_slot_holds(struct supervisor_bpf *b, uint32_t key, int sock_fd)
{
    uint64_t in_slot = 0, mine = 0;
    socklen_t len = sizeof(mine);

    if (bpf_map_lookup_elem(b->socks_fd, &key, &in_slot) != 0)
        return false;
    if (getsockopt(sock_fd, SOL_SOCKET, SO_COOKIE, &mine, &len) != 0 || len != sizeof(mine))
        return false;
    return in_slot == mine;
}

int supervisor_bpf_set_socket(struct supervisor_bpf *b, unsigned worker, int sock_fd, char **err)
{
    uint32_t key = worker;
    uint64_t value;
    int rc;

    if (worker >= b->workers)
        return bpf_fail(err, -EINVAL, "worker %u outside 0..%u", worker, b->workers - 1);
    if (sock_fd < 0)
        return bpf_fail(err, -EBADF, "worker %u: negative socket fd", worker);
    value = (uint64_t)sock_fd;
    rc = bpf_map_update_elem(b->socks_fd, &key, &value, BPF_ANY);
    if (rc < 0) {
        /* The kernel takes only listening TCP (or bound UDP) SO_REUSEPORT sockets, and one
         * socket in one slot. */
        if (rc == -EINVAL)
            return bpf_fail(err, rc, "worker %u: fd %d is not a listening SO_REUSEPORT socket", worker, sock_fd);
        if (rc == -EBUSY && bpf_slot_holds(b, key, sock_fd))
            return 0;
        if (rc == -EBUSY)
            return bpf_fail(err, rc, "worker %u: fd %d is already in a socket map", worker, sock_fd);
        return bpf_fail(err, rc, "worker %u: socket map update: %s", worker, strerror(-rc));
    }
    return 0;
}

int supervisor_bpf_clear_socket(struct supervisor_bpf *b, unsigned worker)
{
    uint32_t key = worker;

    if (worker >= b->workers)
        return -EINVAL;
    return bpf_map_delete_elem(b->socks_fd, &key);
}

int supervisor_bpf_set_load(struct supervisor_bpf *b, unsigned worker, uint32_t load)
{
    uint32_t key = worker;

    if (worker >= b->workers)
        return -EINVAL;
    return bpf_map_update_elem(b->loads_fd, &key, &load, BPF_ANY);
}

int supervisor_bpf_set_loads(struct supervisor_bpf *b, const uint32_t *loads, unsigned n)
{
    unsigned i;
    int rc, first = 0;

    if (n > b->workers)
        return -EINVAL;
    /* Keep going after a failure so one bad slot does not freeze the others' loads. */
    for (i = 0; i < n; i++) {
        rc = supervisor_bpf_set_load(b, i, loads[i]);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}

unsigned supervisor_bpf_workers(const struct supervisor_bpf *b)
{
    return b->workers;
}

void supervisor_bpf_free(struct supervisor_bpf *b)
{
    if (!b)
        return;
    bpf_object__close(b->obj);
    free(b);
}
