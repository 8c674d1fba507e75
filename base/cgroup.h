/*
 * cgroup - which control group this process is in, and what its CPU quota allows
 *
 * cgroup_path() reads the text of /proc/self/cgroup: the path of the v1 hierarchy whose controller list
 * holds `controller` ("memory", "cpu"), else the unified (v2) one, "0::/path" (*v2 set). cgroup_dir()
 * finds the directory of that cgroup under /sys/fs/cgroup (a container that sees its own cgroup as the
 * mount's root gets the root). cgroup_cpu_max() and cgroup_cpu_v1() turn the quota files into a number
 * of CPUs (quota / period, rounded up); a group without a quota is false. cgroup_cpus() is the whole
 * answer for this process: the CPUs of its affinity mask, bounded by its cgroup's quota.
 */
#ifndef RINGMAIL_CGROUP_H
#define RINGMAIL_CGROUP_H

#include <stdbool.h>
#include <stddef.h>

bool cgroup_path(const char *text, const char *controller, bool *v2, char *out, size_t cap);
bool cgroup_dir(const char *controller, bool *v2, char *out, size_t cap);
/* cgroup_cpu_max - v2 cpu.max, "QUOTA PERIOD" or "max PERIOD" (no quota: false) */
bool cgroup_cpu_max(const char *text, unsigned *cpus);
/* cgroup_cpu_v1 - v1 cpu.cfs_quota_us ("-1": no quota, false) and cpu.cfs_period_us */
bool cgroup_cpu_v1(const char *quota, const char *period, unsigned *cpus);
/* cgroup_read - the small kernel file dir/name into buf, NUL-terminated (at most cap - 1 bytes); false when
 * it cannot be read or is empty */
bool cgroup_read(const char *dir, const char *name, char *buf, size_t cap);
/* cgroup_cpus - usable CPUs: the affinity mask's count, bounded by the cgroup's quota; at least 1 */
unsigned cgroup_cpus(void);

#endif
