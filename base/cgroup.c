/*
 * cgroup - the control group of this process and its CPU quota (contract in cgroup.h)
 */
#include "base/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"

#define CGROUP_MOUNT "/sys/fs/cgroup"
#define CPU_CAP 4096 /* no quota means more CPUs than any mask here */

bool cgroup_path(const char *text, const char *controller, bool *v2, char *out, size_t cap)
{
    bool have_v2 = false;
    const char *v2path = NULL;
    size_t v2len = 0, clen = strlen(controller);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *nl = strchr(l, '\n');
        size_t llen = nl ? (size_t)(nl - l) : strlen(l);
        const char *c1 = memchr(l, ':', llen);
        if (!c1)
            continue;
        const char *c2 = memchr(c1 + 1, ':', llen - (size_t)(c1 + 1 - l));
        if (!c2)
            continue;
        const char *path = c2 + 1;
        size_t plen = llen - (size_t)(path - l);
        if (plen == 0 || path[0] != '/')
            continue;
        /* the controllers field: a comma list; the controller in it is its v1 hierarchy */
        bool match = false;
        for (const char *p = c1 + 1; p < c2;) {
            const char *comma = memchr(p, ',', (size_t)(c2 - p));
            const char *e = comma ? comma : c2;
            if ((size_t)(e - p) == clen && memcmp(p, controller, clen) == 0)
                match = true;
            p = e + 1;
        }
        if (match) {
            if (plen >= cap)
                return false;
            memcpy(out, path, plen);
            out[plen] = '\0';
            *v2 = false;
            return true;
        }
        if (c2 == c1 + 1 && c1 == l + 1 && l[0] == '0') {
            have_v2 = true;
            v2path = path;
            v2len = plen;
        }
    }
    if (!have_v2 || v2len >= cap)
        return false;
    memcpy(out, v2path, v2len);
    out[v2len] = '\0';
    *v2 = true;
    return true;
}

bool cgroup_dir(const char *controller, bool *v2, char *out, size_t cap)
{
    char *text = NULL;
    size_t len;
    char path[4096];
    if (file_read_all("/proc/self/cgroup", 1 << 16, &text, &len) < 0)
        return false;
    bool found = cgroup_path(text, controller, v2, path, sizeof(path));
    free(text);
    if (!found)
        return false;
    int n;
    if (*v2)
        n = snprintf(out, cap, "%s%s", CGROUP_MOUNT, strcmp(path, "/") == 0 ? "" : path);
    else
        n = snprintf(out, cap, "%s/%s%s", CGROUP_MOUNT, controller, strcmp(path, "/") == 0 ? "" : path);
    if (n < 0 || (size_t)n >= cap)
        return false;
    struct stat st;
    if (stat(out, &st) == 0)
        return true;
    /* a container often sees its own cgroup as the root of the mount, not under its host path */
    n = *v2 ? snprintf(out, cap, "%s", CGROUP_MOUNT) : snprintf(out, cap, "%s/%s", CGROUP_MOUNT, controller);
    return n > 0 && (size_t)n < cap;
}

/* parse_u64 - a decimal number, then end, a newline or a space; *end after it */
static bool parse_u64(const char *s, uint64_t *v, const char **end)
{
    if (*s < '0' || *s > '9')
        return false;
    char *e;
    errno = 0;
    unsigned long long n = strtoull(s, &e, 10);
    if (errno != 0 || (*e != '\0' && *e != '\n' && *e != ' '))
        return false;
    *v = n;
    *end = e;
    return true;
}

static bool quota_cpus(uint64_t quota, uint64_t period, unsigned *cpus)
{
    if (period == 0 || quota == 0)
        return false;
    uint64_t n = quota / period + (quota % period != 0);
    *cpus = n > CPU_CAP ? CPU_CAP : (unsigned)n;
    return true;
}

bool cgroup_cpu_max(const char *text, unsigned *cpus)
{
    uint64_t quota, period;
    const char *e;
    if (!parse_u64(text, &quota, &e) || *e != ' ' || !parse_u64(e + 1, &period, &e) || (*e != '\0' && *e != '\n'))
        return false;
    return quota_cpus(quota, period, cpus);
}

bool cgroup_cpu_v1(const char *quota, const char *period, unsigned *cpus)
{
    uint64_t q, p;
    const char *e;
    if (!parse_u64(quota, &q, &e) || (*e != '\0' && *e != '\n') || !parse_u64(period, &p, &e) ||
        (*e != '\0' && *e != '\n'))
        return false;
    return quota_cpus(q, p, cpus);
}

bool cgroup_read(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4200];
    if (cap == 0 || (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return n > 0;
}

unsigned cgroup_cpus(void)
{
    unsigned n = CPU_CAP;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        n = (unsigned)CPU_COUNT(&set);
    char dir[4096], a[64], b[64];
    bool v2;
    unsigned q;
    if (cgroup_dir("cpu", &v2, dir, sizeof(dir))) {
        bool limited = v2 ? cgroup_read(dir, "cpu.max", a, sizeof(a)) && cgroup_cpu_max(a, &q)
                          : cgroup_read(dir, "cpu.cfs_quota_us", a, sizeof(a)) &&
                                cgroup_read(dir, "cpu.cfs_period_us", b, sizeof(b)) && cgroup_cpu_v1(a, b, &q);
        if (limited && q < n)
            n = q;
    }
    return n == CPU_CAP || n == 0 ? 1 : n;
}
