/*
 * fuzz_mem_files - the supervisor's readers of kernel memory files (supervisor/supervisor_mem.c) and of
 * the CPU quota files (base/cgroup.c) on any text: /proc/self/cgroup (for "memory" and "cpu"), memory.stat
 * / /proc/meminfo fields, single numbers (memory.max, ...), cpu.max and cpu.cfs_quota_us / _period_us
 *
 * Input: 1 selector octet, then the text (copied to an exact-size NUL-terminated heap block, as the
 * supervisor reads it). Checks: a cgroup path found starts with '/', fits and holds no newline; the field
 * and number readers stay inside the text (ASan); the level rule says exhausted whenever nothing is left;
 * a CPU quota found is 1..4096 CPUs.
 */
#include <stdlib.h>
#include <string.h>

#include "base/cgroup.h"
#include "supervisor/supervisor.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *t = malloc(size);
    memcpy(t, data + 1, size - 1);
    t[size - 1] = '\0';
    char path[64];
    bool v2 = false;
    uint64_t v = 0;
    unsigned cpus = 0;
    switch (data[0] % 6) {
    case 0:
        if (supervisor_mem_cgroup_path(t, &v2, path, sizeof(path))) {
            CHECK(path[0] == '/');
            CHECK(strlen(path) < sizeof(path));
            CHECK(!strchr(path, '\n'));
        }
        if (cgroup_path(t, "cpu", &v2, path, sizeof(path))) {
            CHECK(path[0] == '/');
            CHECK(!strchr(path, '\n'));
        }
        break;
    case 4:
        if (cgroup_cpu_max(t, &cpus))
            CHECK(cpus >= 1 && cpus <= 4096);
        break;
    case 5: {
        /* two files: the text up to the first NUL octet of the input, and what follows it */
        const char *period = t + strlen(t) + (strlen(t) + 1 < size - 1 ? 1 : 0);
        if (cgroup_cpu_v1(t, period, &cpus))
            CHECK(cpus >= 1 && cpus <= 4096);
        break;
    }
    case 1:
        (void)supervisor_mem_field(t, "MemTotal", &v);
        (void)supervisor_mem_field(t, "total_inactive_file", &v);
        break;
    case 2:
        (void)supervisor_mem_number(t, &v);
        break;
    default:
        if (size >= 25) {
            uint64_t n[3];
            memcpy(n, data + 1, sizeof(n));
            uint32_t lv = supervisor_mem_level_for(n[0], n[1], n[2], n[2] / 2);
            CHECK(lv <= SHM_MEM_EXHAUSTED);
            if (n[1] >= n[0])
                CHECK(lv == SHM_MEM_EXHAUSTED);
        }
        break;
    }
    free(t);
    return 0;
}
