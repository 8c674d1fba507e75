/*
 * supervisor_mem - the node's memory headroom: its limit (the cgroup's, else the RAM) against what it uses
 *
 * supervisor_mem_init() finds the source once (cgroup v1 memory controller, cgroup v2, or /proc/meminfo)
 * and logs which; supervisor_mem_tick() reads the usage once a second and publishes the level in the
 * segment header (shm mem_pressure): SHM_MEM_LOW when the headroom (limit - working set) is under
 * [supervisor] memory_soft_reserve, SHM_MEM_EXHAUSTED under memory_hard_reserve. The working set is the
 * cgroup's usage minus its inactive file pages (the page cache the kernel drops first), or MemTotal -
 * MemAvailable. The admin thread reads the numbers (atomics) for /api/check-liveness/v1 and /metrics.
 * The parsers take NUL-terminated text read from the kernel; they never trust its shape.
 */
#ifndef RINGMAIL_SUPERVISOR_MEM_H
#define RINGMAIL_SUPERVISOR_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum supervisor_mem_source {
    SUP_MEM_RAM = 0,
    SUP_MEM_CGROUP_V1 = 1,
    SUP_MEM_CGROUP_V2 = 2,
};

struct supervisor_mem {
    enum supervisor_mem_source source;
    char *dir;                  /* the cgroup directory, or NULL */
    uint64_t cgroup_limit;      /* the cgroup's limit; 0 = none */
    uint64_t next_ns;
    _Atomic uint64_t limit;     /* bytes in force (configured, cgroup or RAM) */
    _Atomic uint64_t used;      /* working set at the last reading */
    _Atomic uint32_t level;     /* enum shm_mem_pressure */
    _Atomic uint64_t exhausted_total; /* times the level went to SHM_MEM_EXHAUSTED */
    _Atomic uint64_t cg_limit, cg_usage; /* the cgroup's limit and raw usage at the last reading; 0: none */
};

struct supervisor;

void supervisor_mem_init(struct supervisor *s);
void supervisor_mem_tick(struct supervisor *s, uint64_t now);
void supervisor_mem_fini(struct supervisor *s);
const char *supervisor_mem_source_name(enum supervisor_mem_source src);
const char *supervisor_mem_level_name(uint32_t level);

/* ---- parsers (unit tests, fuzz target) ---- */
/* supervisor_mem_cgroup_path - from /proc/self/cgroup: the memory controller's path (v1, preferred) or the
 * unified one (v2, *v2 set); false when neither is there or the path does not fit */
bool supervisor_mem_cgroup_path(const char *text, bool *v2, char *out, size_t cap);
/* supervisor_mem_field - "KEY VALUE" lines (memory.stat) or "KEY: VALUE kB" (meminfo, scaled to bytes) */
bool supervisor_mem_field(const char *text, const char *key, uint64_t *out);
/* supervisor_mem_number - one decimal number (memory.limit_in_bytes, memory.max; "max" is false) */
bool supervisor_mem_number(const char *text, uint64_t *out);
/* supervisor_mem_level_for - the level for a limit, a working set and the two reserves */
uint32_t supervisor_mem_level_for(uint64_t limit, uint64_t used, uint64_t soft_reserve, uint64_t hard_reserve);

#endif
