/*
 * ringctl_doctor - `ringctl doctor [--apply]`: the host checked against a park node's needs
 *
 *   ringctl doctor [--apply] [--config FILE] [--data-dir DIR] [--volume 8M/day --size 50KB [--outage 24h]]
 *                  [--json]
 *
 * What it reads: the node's configuration (ringctl_cfg.c: --config, else the system file, else the
 * embedded default; the live node's own file when it reports one and --config is not given), the live
 * node's status (GET /api/v1/status) when it answers: the segment's size and page source, the ingress
 * workers' pids for their descriptor limit. The sysctl targets are KumoMTA's tuning list where it names
 * one, raised where a park node needs more (docs/operations.md has the table and the reasons).
 * --apply: only keys below target are written; a value is never lowered (the one exception:
 * tcp_tw_reuse 2, loopback only, becomes 1); the file is written to a temporary name, fsynced and
 * renamed; each value is then written to PROCSYS, and each change printed.
 */
#include "tools/ringctl_doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <jansson.h>

#include "base/file.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "shm/shm_pages.h"
#include "tools/ringctl_capacity.h"
#include "tools/ringctl_cfg.h"

#define DOCTOR_RING_SLOT_BYTES 64 /* a ring slot is one cache line */

enum knob_kind {
    KNOB_MIN = 0,   /* at least the target */
    KNOB_EQ = 1,    /* exactly the target (tcp_tw_reuse) */
    KNOB_RANGE = 2, /* "LO HI": at least as wide as the target's range */
};

struct knob {
    const char *key;
    enum knob_kind kind;
    long target, target_hi;
    const char *why;
};

/* KumoMTA's list (max_map_count, rmem/wmem, file-max, port range, tw_reuse, somaxconn, shmmni) with
 * ringmail's higher floors where a park node's bursts need them */
static const struct knob knobs[] = {
    {"net.core.somaxconn", KNOB_MIN, 4096, 0, "accept backlog for bursts of SMTP clients"},
    {"net.ipv4.tcp_max_syn_backlog", KNOB_MIN, 4096, 0, "half-open connections during bursts"},
    {"net.ipv4.ip_local_port_range", KNOB_RANGE, 5000, 65000, "outbound connections per source address"},
    {"net.ipv4.tcp_tw_reuse", KNOB_EQ, 1, 0, "reuse TIME_WAIT ports for outbound connections"},
    {"fs.file-max", KNOB_MIN, 1000000, 0, "every SMTP session is a descriptor"},
    {"net.core.rmem_default", KNOB_MIN, 32768, 0, "socket receive buffers"},
    {"net.core.wmem_default", KNOB_MIN, 32768, 0, "socket send buffers"},
    {"net.core.rmem_max", KNOB_MIN, 16777216, 0, "socket buffers for 100 KB bodies"},
    {"net.core.wmem_max", KNOB_MIN, 16777216, 0, "socket buffers for 100 KB bodies"},
    {"vm.max_map_count", KNOB_MIN, 768000, 0, "RocksDB maps many files"},
    {"kernel.shmmni", KNOB_MIN, 4096, 0, "shared memory segments"},
};

struct change {
    char *key, *from, *to;
};

struct doctor {
    const char *procsys, *sysctld, *meminfo;
    json_t *checks; /* array of {name, value, target, ok, fix, why} */
    unsigned recommendations, errors;
    struct change *changes;
    size_t n_changes;
    bool json;
};

static char *sysctl_path(const struct doctor *d, const char *key)
{
    char *p = xasprintf("%s/%s", d->procsys, key);
    for (char *q = p + strlen(d->procsys) + 1; *q; q++)
        if (*q == '.')
            *q = '/';
    return p;
}

/* read_sysctl - the value's text, whitespace runs as one space, trimmed; NULL when unreadable */
static char *read_sysctl(const struct doctor *d, const char *key)
{
    char *path = sysctl_path(d, key), buf[256];
    FILE *f = fopen(path, "re");
    free(path);
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char out[256];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        bool sp = buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n';
        if (sp && (o == 0 || out[o - 1] == ' '))
            continue;
        out[o++] = sp ? ' ' : buf[i];
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return o ? xstrdup(out) : NULL;
}

/* parse_long - a whole non-negative decimal, nothing else */
static bool parse_long(const char *s, long *v)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    *v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool parse_range(const char *s, long *lo, long *hi)
{
    char a[32], b[32], extra;
    return s && sscanf(s, "%31s %31s %c", a, b, &extra) == 2 && parse_long(a, lo) && parse_long(b, hi);
}

/* report - one check: a line (or a JSON entry); fix NULL when ok */
__attribute__((format(printf, 7, 8))) static void report(struct doctor *d, const char *name, bool ok,
                                                          const char *value, const char *target, const char *why,
                                                          const char *fixfmt, ...)
{
    char fix[512] = "";
    if (!ok && fixfmt) {
        va_list ap;
        va_start(ap, fixfmt);
        vsnprintf(fix, sizeof(fix), fixfmt, ap);
        va_end(ap);
    }
    if (!ok)
        d->recommendations++;
    json_array_append_new(d->checks, json_pack("{s:s,s:s,s:s,s:b,s:s?,s:s}", "name", name, "value", value, "target",
                                               target, "ok", ok, "fix", ok ? NULL : fix, "why", why));
    if (d->json)
        return;
    printf("%-30s %-22s %s", name, value, ok ? "ok" : "LOW");
    if (!ok)
        printf(": %s (%s)", fix, why);
    printf("\n");
}

static void plan(struct doctor *d, const char *key, const char *from, const char *to)
{
    d->changes = xrealloc(d->changes, (d->n_changes + 1) * sizeof(*d->changes));
    d->changes[d->n_changes++] = (struct change){xstrdup(key), xstrdup(from ? from : "-"), xstrdup(to)};
}

/* check_knob - one sysctl against its target (target_override > 0 replaces the table's) */
static void check_knob(struct doctor *d, const struct knob *k, long target)
{
    char *v = read_sysctl(d, k->key);
    char tgt[64], to[64];
    long cur = 0, lo = 0, hi = 0;
    bool ok, readable;

    if (k->kind == KNOB_RANGE) {
        readable = parse_range(v, &lo, &hi);
        snprintf(tgt, sizeof(tgt), "%ld %ld", k->target, k->target_hi);
        ok = readable && hi - lo >= k->target_hi - k->target;
        /* widen, never narrow: the lower bound only goes down, the upper only up */
        snprintf(to, sizeof(to), "%ld %ld", readable && lo < k->target ? lo : k->target,
                 readable && hi > k->target_hi ? hi : k->target_hi);
    } else {
        readable = parse_long(v, &cur);
        snprintf(tgt, sizeof(tgt), k->kind == KNOB_EQ ? "%ld" : ">= %ld", target);
        ok = readable && (k->kind == KNOB_EQ ? cur == target : cur >= target);
        snprintf(to, sizeof(to), "%ld", target);
    }
    if (!readable) {
        report(d, k->key, false, v ? v : "unreadable", tgt, k->why, "%s/%s cannot be read: is this a Linux host?",
               d->procsys, k->key);
    } else {
        report(d, k->key, ok, v, tgt, k->why, "sysctl -w %s=\"%s\" (ringctl doctor --apply writes it)", k->key, to);
        if (!ok)
            plan(d, k->key, v, to);
    }
    free(v);
}

static long meminfo(const struct doctor *d, const char *field)
{
    FILE *f = fopen(d->meminfo, "re");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* check_hugepages - free hugepages for the segment, unless the node already runs on them */
static void check_hugepages(struct doctor *d, const struct cfg *c, uint64_t seg_bytes, const char *source)
{
    char value[96], target[64];
    long total = -1, free_pages = meminfo(d, "HugePages_Free"), size_kb = meminfo(d, "Hugepagesize");
    char *v = read_sysctl(d, "vm.nr_hugepages");
    bool readable = parse_long(v, &total);
    free(v);
    if (c->hugepages == SHM_HUGE_OFF) {
        report(d, "hugepages", true, "off", "-", "[shm] hugepages = \"off\"", NULL);
        return;
    }
    if (!readable || size_kb <= 0 || free_pages < 0) {
        report(d, "hugepages", false, "unknown", "-", "the segment on huge pages", "%s or %s cannot be read",
               d->meminfo, d->procsys);
        return;
    }
    long need = (long)((seg_bytes + (uint64_t)size_kb * 1024 - 1) / ((uint64_t)size_kb * 1024));
    bool on_huge = source && strcmp(source, "hugetlb") == 0;
    snprintf(value, sizeof(value), "%ld reserved, %ld free", total, free_pages);
    snprintf(target, sizeof(target), "%ld free (%llu MiB)", need, (unsigned long long)(seg_bytes >> 20));
    long want = total + (need - free_pages);
    report(d, "hugepages", on_huge || free_pages >= need, on_huge ? "segment on hugetlb" : value, target,
           "the segment on huge pages: fewer TLB misses on every ring and body",
           "sysctl -w vm.nr_hugepages=%ld, then restart the node (ringctl doctor --apply reserves them)", want);
    if (!on_huge && free_pages < need) {
        char from[32], to[32];
        snprintf(from, sizeof(from), "%ld", total);
        snprintf(to, sizeof(to), "%ld", want);
        plan(d, "vm.nr_hugepages", from, to);
    }
}

/* soft_nofile - "Max open files" soft limit of a pid; -1 when unknown, LONG_MAX for unlimited */
static long soft_nofile(uint64_t pid)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof(path), "/proc/%llu/limits", (unsigned long long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Max open files", 14) == 0) {
            char soft[32];
            if (sscanf(line + 14, "%31s", soft) == 1)
                v = strcmp(soft, "unlimited") == 0 ? LONG_MAX : strtol(soft, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static void check_nofile(struct doctor *d, const struct cfg *c, const struct proto_status_node *n)
{
    unsigned long need = c->ingress_max_connections + 256ul + c->n_listeners;
    char value[96], target[64], name[48];
    unsigned seen = 0;

    snprintf(target, sizeof(target), ">= %lu", need);
    for (size_t i = 0; n && i < n->n_roles; i++) {
        const struct proto_status_role *r = &n->roles[i];
        long soft;
        if (r->role != PROTO_NODE_ROLE_INGRESS || r->pid == 0 || (soft = soft_nofile(r->pid)) < 0)
            continue;
        seen++;
        snprintf(name, sizeof(name), "RLIMIT_NOFILE ingress[%llu]", (unsigned long long)r->index);
        snprintf(value, sizeof(value), "%ld", soft);
        report(d, name, (unsigned long)soft >= need, value, target,
               "each ingress worker holds max_connections sessions",
               "raise the node's hard limit (systemd LimitNOFILE=%lu, or start ringmaild as root) and restart",
               need > 65536 ? need : 65536);
    }
    if (seen)
        return;
    /* no live worker to look at: what this host lets ringmaild raise its workers to */
    struct rlimit rl;
    long nr_open = 0;
    char *v = read_sysctl(d, "fs.nr_open");
    parse_long(v, &nr_open);
    free(v);
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned long can = geteuid() == 0 ? (unsigned long)nr_open
                                       : (rl.rlim_max == RLIM_INFINITY ? ULONG_MAX : (unsigned long)rl.rlim_max);
    snprintf(value, sizeof(value), "%lu (%s)", can, geteuid() == 0 ? "fs.nr_open, as root" : "hard limit");
    snprintf(target, sizeof(target), ">= %lu x %u workers", need, c->ingress_workers);
    report(d, "RLIMIT_NOFILE", can >= need, value, target, "each ingress worker holds max_connections sessions",
           "raise the hard limit for ringmaild: systemd LimitNOFILE=%lu (or ulimit -Hn %lu)", need, need);
}

/* dev_of - the file system of path, or of its nearest existing parent */
static bool dev_of(const char *path, dev_t *dev)
{
    char *p = xstrdup(path);
    struct stat st;
    bool ok = false;
    for (;;) {
        if (stat(p, &st) == 0) {
            *dev = st.st_dev;
            ok = true;
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash)
            break;
        if (slash == p) {
            ok = stat("/", &st) == 0;
            *dev = st.st_dev;
            break;
        }
        *slash = '\0';
    }
    if (!ok && stat(".", &st) == 0) { /* a relative path with no existing part: the working directory */
        *dev = st.st_dev;
        ok = true;
    }
    free(p);
    return ok;
}

static uint64_t free_bytes(const char *path)
{
    char *p = xstrdup(path);
    struct statvfs vfs;
    uint64_t v = 0;
    while (statvfs(p, &vfs) < 0) {
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) {
            free(p);
            return statvfs(slash ? "/" : ".", &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;
        }
        *slash = '\0';
    }
    v = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    free(p);
    return v;
}

static void gib(char *buf, size_t len, uint64_t b)
{
    snprintf(buf, len, "%.1f GiB", (double)b / (1024.0 * 1024 * 1024));
}

static void check_disks(struct doctor *d, const struct cfg *c, double spool_need, double log_need)
{
    char *spool = ringctl_cfg_dir(c, c->spool_dir, "spool"), *logs = ringctl_cfg_dir(c, c->log_dir, "logs");
    dev_t root = 0, sd = 0, ld = 0;
    char value[64], target[64];

    dev_of("/", &root);
    dev_of(spool, &sd);
    dev_of(logs, &ld);
    report(d, "spool file system", sd != root, sd != root ? "own" : "the OS's", "not the OS's",
           "a full or slow OS disk must not stop the spool (KumoMTA: separate storage)",
           "mount a file system of its own at %s (ext4 or xfs, noatime)", spool);
    report(d, "log file system", ld != root && ld != sd, ld == root ? "the OS's" : ld == sd ? "the spool's" : "own",
           "not the OS's nor the spool's", "logs must not fill the spool's or the OS's disk",
           "mount a file system of its own at %s", logs);
    uint64_t sf = free_bytes(spool), lf = free_bytes(logs);
    uint64_t sneed = c->spool_free_space_min, lneed = c->log_min_free_space;
    if (spool_need > (double)sneed)
        sneed = (uint64_t)spool_need;
    if (log_need > (double)lneed)
        lneed = (uint64_t)log_need;
    gib(value, sizeof(value), sf);
    target[0] = '>', target[1] = '=', target[2] = ' ';
    gib(target + 3, sizeof(target) - 3, sneed);
    report(d, "spool free space", sf >= sneed, value, target,
           spool_need > 0 ? "the messages of the outage given (ringctl capacity)" : "[spool] free_space_min",
           "free space on %s or grow it (below [spool] free_space_min the node answers 452)", spool);
    gib(value, sizeof(value), lf);
    gib(target + 3, sizeof(target) - 3, lneed);
    report(d, "log free space", lf >= lneed, value, target,
           log_need > 0 ? "the log days given (ringctl capacity)" : "[log] min_free_space",
           "free space on %s, or set [log] max_age / max_total_size", logs);
    free(spool);
    free(logs);
}

/* ---- the sysctl.d file ---- */

void ringctl_doctor_conf_parse(const char *text, size_t len, ringctl_doctor_conf_fn fn, void *ctx)
{
    size_t i = 0;
    unsigned line = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && text[i] != '\n')
            i++;
        size_t end = i++;
        line++;
        while (start < end && (text[start] == ' ' || text[start] == '\t'))
            start++;
        while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r'))
            end--;
        if (start == end || text[start] == '#' || text[start] == ';')
            continue;
        const char *eq = memchr(text + start, '=', end - start);
        size_t kend = eq ? (size_t)(eq - text) : 0, vstart = kend + 1;
        while (eq && kend > start && (text[kend - 1] == ' ' || text[kend - 1] == '\t'))
            kend--;
        while (eq && vstart < end && (text[vstart] == ' ' || text[vstart] == '\t'))
            vstart++;
        bool bad = !eq || kend == start || kend - start > 200 || end - vstart > 200 ||
                   memchr(text + start, '\0', end - start) || memchr(text + start, '\r', end - start);
        for (size_t k = start; !bad && k < kend; k++)
            bad = !((text[k] >= 'a' && text[k] <= 'z') || (text[k] >= 'A' && text[k] <= 'Z') ||
                    (text[k] >= '0' && text[k] <= '9') || text[k] == '.' || text[k] == '_' || text[k] == '-' ||
                    text[k] == '/');
        if (bad) {
            fn(ctx, line, NULL, NULL);
            continue;
        }
        char key[201], value[201];
        memcpy(key, text + start, kend - start);
        key[kend - start] = '\0';
        memcpy(value, text + vstart, end - vstart);
        value[end - vstart] = '\0';
        fn(ctx, line, key, value);
    }
}

struct conf_entries {
    char **key, **value;
    size_t n;
    unsigned bad_line;
};

static void on_conf(void *ctx, unsigned line, const char *key, const char *value)
{
    struct conf_entries *e = ctx;
    if (!key) {
        if (!e->bad_line)
            e->bad_line = line;
        return;
    }
    e->key = xrealloc(e->key, (e->n + 1) * sizeof(*e->key));
    e->value = xrealloc(e->value, (e->n + 1) * sizeof(*e->value));
    e->key[e->n] = xstrdup(key);
    e->value[e->n++] = xstrdup(value);
}

/* higher - the value to keep: the larger of two numbers or the wider of two ranges; b when they do not parse */
static const char *higher(const char *a, const char *b)
{
    long x, y, xl, xh, yl, yh;
    if (parse_long(a, &x) && parse_long(b, &y))
        return x > y ? a : b;
    if (parse_range(a, &xl, &xh) && parse_range(b, &yl, &yh))
        return xh - xl > yh - yl ? a : b;
    return b;
}

/* write_conf - merge the planned changes into SYSCTL_D/90-ringmail.conf, atomically */
static int write_conf(struct doctor *d, char **path_out)
{
    char *path = xasprintf("%s/%s", d->sysctld, RINGCTL_DOCTOR_FILE);
    struct conf_entries e = {0};
    char *old = NULL;
    size_t old_len = 0;
    int rc = 0;

    *path_out = path;
    if (file_read_all(path, 1 << 20, &old, &old_len) == 0)
        ringctl_doctor_conf_parse(old, old_len, on_conf, &e);
    free(old);
    if (e.bad_line)
        fprintf(stderr, "ringctl doctor: %s:%u: not a \"key = value\" line: left out of the rewritten file\n", path,
                e.bad_line);
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct change *c = &d->changes[i];
        size_t k = 0;
        while (k < e.n && strcmp(e.key[k], c->key) != 0)
            k++;
        if (k == e.n)
            on_conf(&e, 0, c->key, c->to);
        else if (strcmp(c->key, "net.ipv4.tcp_tw_reuse") == 0 || higher(e.value[k], c->to) == c->to) {
            free(e.value[k]);
            e.value[k] = xstrdup(c->to);
        }
    }
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
    } else {
        fprintf(f, "# ringmail park node settings, written by `ringctl doctor --apply` (docs/operations.md)\n");
        for (size_t i = 0; i < e.n; i++)
            fprintf(f, "%s = %s\n", e.key[i], e.value[i]);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0)
            rc = -errno;
        if (fclose(f) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0 && rename(tmp, path) < 0)
            rc = -errno;
        if (rc == 0) {
            int dfd = open(d->sysctld, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        } else {
            unlink(tmp);
        }
    }
    free(tmp);
    for (size_t i = 0; i < e.n; i++) {
        free(e.key[i]);
        free(e.value[i]);
    }
    free(e.key);
    free(e.value);
    return rc;
}

static int write_sysctl(const struct doctor *d, const char *key, const char *value)
{
    char *path = sysctl_path(d, key);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    int rc = 0;
    free(path);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    if (write(fd, value, len) != (ssize_t)len)
        rc = -errno ? -errno : -EIO;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* apply - the file, then each value; every change printed */
static int apply(struct doctor *d, json_t *doc)
{
    json_t *applied = json_array();
    char *path = NULL;
    int status = 0;

    json_object_set_new(doc, "applied", applied);
    if (d->n_changes == 0) {
        if (!d->json)
            printf("\n--apply: nothing to change\n");
        return 0;
    }
    int rc = write_conf(d, &path);
    json_object_set_new(doc, "sysctl_file", json_string(path));
    if (rc < 0) {
        fprintf(stderr, "ringctl doctor: cannot write %s: %s\n", path, strerror(-rc));
        free(path);
        return 2;
    }
    if (!d->json)
        printf("\n--apply: wrote %s (%zu setting(s) below target)\n", path, d->n_changes);
    for (size_t i = 0; i < d->n_changes; i++) {
        const struct change *c = &d->changes[i];
        rc = write_sysctl(d, c->key, c->to);
        json_array_append_new(applied, json_pack("{s:s,s:s,s:s,s:s?}", "key", c->key, "from", c->from, "to", c->to,
                                                 "error", rc < 0 ? strerror(-rc) : NULL));
        if (rc < 0) {
            fprintf(stderr, "ringctl doctor: cannot set %s = %s: %s (it is in %s for the next boot)\n", c->key, c->to,
                    strerror(-rc), path);
            status = 2;
        } else if (!d->json) {
            printf("set %s: %s -> %s\n", c->key, c->from, c->to);
        }
    }
    free(path);
    return status;
}

bool ringctl_doctor_command(const char *name)
{
    return strcmp(name, "doctor") == 0;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && v[0] ? v : dflt;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringctl doctor [--apply] [--config FILE] [--data-dir DIR] [--json]\n"
               "                      [--volume 8M/day --size 50KB [--outage 24h] [--log-days 30]]\n");
}

int ringctl_doctor_main(int argc, char **argv, const char *endpoint, const char *data_dir, bool json,
                        ringctl_http_fn http)
{
    static const struct option opts[] = {
        {"apply", no_argument, NULL, 'a'},          {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'D'}, {"json", no_argument, NULL, 'j'},
        {"volume", required_argument, NULL, 'v'},   {"size", required_argument, NULL, 's'},
        {"outage", required_argument, NULL, 'o'},   {"log-days", required_argument, NULL, 'l'},
        {"procsys", required_argument, NULL, 'P'},  {"sysctl-d", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct doctor d = {
        .procsys = env_or("RINGCTL_DOCTOR_PROCSYS", "/proc/sys"),
        .sysctld = env_or("RINGCTL_DOCTOR_SYSCTLD", "/etc/sysctl.d"),
        .meminfo = env_or("RINGCTL_DOCTOR_MEMINFO", "/proc/meminfo"),
        .json = json,
    };
    const char *config = NULL, *volume_s = NULL, *size_s = NULL, *outage_s = "24h", *days_s = NULL;
    bool do_apply = false;
    char *err = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': do_apply = true; break;
        case 'c': config = optarg; break;
        case 'D': data_dir = optarg; break;
        case 'j': d.json = true; break;
        case 'v': volume_s = optarg; break;
        case 's': size_s = optarg; break;
        case 'o': outage_s = optarg; break;
        case 'l': days_s = optarg; break;
        case 'P': d.procsys = optarg; break;
        case 'S': d.sysctld = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || (!volume_s != !size_s)) {
        usage(stderr);
        return 2;
    }
    double per_s = 0, size = 0, outage = 0, days = 0, spool_need = 0, log_need = 0;
    if (volume_s && (ringctl_capacity_rate(volume_s, &per_s, &err) < 0 ||
                     ringctl_capacity_size(size_s, &size, &err) < 0 ||
                     ringctl_capacity_duration(outage_s, &outage, &err) < 0 ||
                     (days_s && ringctl_capacity_days(days_s, &days, &err) < 0))) {
        fprintf(stderr, "ringctl doctor: %s\n", err);
        free(err);
        return 2;
    }
    if (volume_s) {
        spool_need = ringctl_capacity_spool_bytes(per_s, size, outage);
        log_need = days_s ? 2000.0 * per_s * 86400 * days : 0; /* 2 KB per message, days kept (KumoMTA's guide) */
    }

    /* the live node, when it answers: its segment, its workers, and the file it runs with */
    struct proto_status_node n;
    bool live = false;
    int status = 0;
    char *body = NULL;
    size_t body_len = 0;
    if (http(endpoint, "GET", "/api/v1/status", &status, &body, &body_len) == 0 && status == 200) {
        char *why = NULL;
        live = proto_status_node_decode(body, body_len, &n, &why) == 0;
        if (!live) {
            fprintf(stderr, "ringctl doctor: the node's status breaks its schema: %s; checking the host only\n", why);
            free(why);
        }
    }
    free(body);
    if (!config && live && n.config && n.config[0] == '/' && access(n.config, R_OK) == 0)
        config = n.config;
    if (!data_dir && live && n.data_dir && n.data_dir[0])
        data_dir = n.data_dir;
    struct cfg cf;
    const char *used;
    if (ringctl_cfg_load(config, data_dir, &cf, &used, &err) < 0) {
        fprintf(stderr, "ringctl doctor: cannot read the configuration: %s\n", err);
        free(err);
        cfg_fini(&cf);
        if (live)
            proto_status_node_fini(&n);
        return 2;
    }
    uint64_t seg_bytes = live ? n.shm.bytes
                              : cf.arena_bytes + (1u << 20) +
                                    2ull * (cf.ingress_workers + 1 + 2ull * cf.egress_workers) * cf.ring_slots *
                                        DOCTOR_RING_SLOT_BYTES;
    if (!d.json)
        printf("configuration: %s; data %s; node at %s: %s\n\n", used, cf.data_dir, endpoint,
               live ? "reachable" : "not reachable (checking the host only)");

    d.checks = json_array();
    for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
        long target = knobs[i].target;
        /* file-max: every worker's sessions, twice over for the rest of the host */
        if (strcmp(knobs[i].key, "fs.file-max") == 0) {
            long need = 2l * (long)(cf.ingress_max_connections + 256ul) * (long)cf.ingress_workers;
            if (need > target)
                target = need;
        }
        check_knob(&d, &knobs[i], target);
    }
    check_hugepages(&d, &cf, seg_bytes, live ? n.shm.page_source : NULL);
    check_nofile(&d, &cf, live ? &n : NULL);
    check_disks(&d, &cf, spool_need, log_need);

    json_t *doc = json_pack("{s:s,s:s,s:b,s:o,s:I}", "config", used, "data_dir", cf.data_dir, "node_reachable", live,
                            "checks", d.checks, "recommendations", (json_int_t)d.recommendations);
    int rc = d.recommendations ? 1 : 0;
    if (!d.json)
        printf("\n%u recommendation(s)\n", d.recommendations);
    if (do_apply) {
        int arc = apply(&d, doc);
        if (arc)
            rc = arc;
        else if (d.n_changes)
            rc = d.recommendations > d.n_changes ? 1 : 0; /* what --apply cannot fix is still a recommendation */
    }
    if (d.json) {
        char *text = json_dumps(doc, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
    }
    json_decref(doc);
    for (size_t i = 0; i < d.n_changes; i++) {
        free(d.changes[i].key);
        free(d.changes[i].from);
        free(d.changes[i].to);
    }
    free(d.changes);
    cfg_fini(&cf);
    if (live)
        proto_status_node_fini(&n);
    return rc;
}
