/*
 * supervisor_mem - memory headroom from the cgroup or the RAM (contract in supervisor_mem.h)
 */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroup.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define MEM_TICK_NS CLOCK_SEC(1)
/* a v1 "no limit" is PAGE_COUNTER_MAX pages, near 2^63: anything this big is no limit */
#define NO_LIMIT (UINT64_C(1) << 60)

bool supervisor_mem_number(const char *text, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || (*end != '\0' && *end != '\n'))
        return false;
    *out = v;
    return true;
}

bool supervisor_mem_field(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, key, klen) != 0)
            continue;
        const char *p = l + klen;
        bool meminfo = *p == ':';
        if (meminfo)
            p++;
        if (*p != ' ' && *p != '\t')
            continue;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno != 0)
            return false;
        if (meminfo && strncmp(end, " kB", 3) == 0) {
            if (v > UINT64_MAX / 1024)
                return false;
            v *= 1024;
        }
        *out = v;
        return true;
    }
    return false;
}

bool supervisor_mem_cgroup_path(const char *text, bool *v2, char *out, size_t cap)
{
    return cgroup_path(text, "memory", v2, out, cap);
}

uint32_t supervisor_mem_level_for(uint64_t limit, uint64_t used, uint64_t soft_reserve, uint64_t hard_reserve)
{
    uint64_t headroom = used < limit ? limit - used : 0;
    if (headroom == 0 || headroom < hard_reserve)
        return SHM_MEM_EXHAUSTED;
    if (headroom < soft_reserve)
        return SHM_MEM_LOW;
    return SHM_MEM_OK;
}

const char *supervisor_mem_source_name(enum supervisor_mem_source src)
{
    switch (src) {
    case SUP_MEM_CGROUP_V1:
        return "cgroup-v1";
    case SUP_MEM_CGROUP_V2:
        return "cgroup-v2";
    default:
        return "ram";
    }
}

const char *supervisor_mem_level_name(uint32_t level)
{
    return level == SHM_MEM_EXHAUSTED ? "exhausted" : level == SHM_MEM_LOW ? "low" : "ok";
}

/* the cgroup's limit now (it can change under a running node); 0 = none */
static uint64_t cgroup_limit(const struct supervisor_mem *m)
{
    char t[64];
    uint64_t v = 0;
    if (!m->dir || !cgroup_read(m->dir, m->source == SUP_MEM_CGROUP_V2 ? "memory.max" : "memory.limit_in_bytes", t,
                            sizeof(t)) ||
        !supervisor_mem_number(t, &v) || v >= NO_LIMIT)
        return 0;
    return v;
}

/* working set of the cgroup: usage minus the inactive page cache; false when unreadable */
static bool cgroup_used(const struct supervisor_mem *m, uint64_t *used, uint64_t *raw)
{
    char t[64], st[8192];
    uint64_t usage, inactive = 0;
    bool v2 = m->source == SUP_MEM_CGROUP_V2;
    if (!cgroup_read(m->dir, v2 ? "memory.current" : "memory.usage_in_bytes", t, sizeof(t)) ||
        !supervisor_mem_number(t, &usage))
        return false;
    if (cgroup_read(m->dir, "memory.stat", st, sizeof(st)))
        (void)supervisor_mem_field(st, v2 ? "inactive_file" : "total_inactive_file", &inactive);
    *used = inactive < usage ? usage - inactive : 0;
    *raw = usage;
    return true;
}

static bool ram(uint64_t *total, uint64_t *used)
{
    char t[8192];
    uint64_t avail;
    if (!cgroup_read("/proc", "meminfo", t, sizeof(t)) || !supervisor_mem_field(t, "MemTotal", total) ||
        !supervisor_mem_field(t, "MemAvailable", &avail))
        return false;
    *used = avail < *total ? *total - avail : 0;
    return true;
}

void supervisor_mem_init(struct supervisor *s)
{
    struct supervisor_mem *m = &s->mem;
    char dir[4096];
    bool v2 = false;

    m->source = SUP_MEM_RAM;
    char probe[64];
    if (cgroup_dir("memory", &v2, dir, sizeof(dir)) &&
        cgroup_read(dir, v2 ? "memory.current" : "memory.usage_in_bytes", probe, sizeof(probe))) {
        m->dir = xstrdup(dir);
        m->source = v2 ? SUP_MEM_CGROUP_V2 : SUP_MEM_CGROUP_V1;
    }
    m->next_ns = 0;
    supervisor_mem_tick(s, clock_mono_ns());
    log_info("memory: limit %llu MiB (%s%s%s), working set %llu MiB; low under %llu MiB of headroom, exhausted "
             "under %llu MiB",
             (unsigned long long)(atomic_load(&m->limit) >> 20),
             s->cfg.memory_limit ? "[supervisor] memory_limit" : supervisor_mem_source_name(m->source),
             m->dir ? " " : "", m->dir ? m->dir : "", (unsigned long long)(atomic_load(&m->used) >> 20),
             (unsigned long long)(s->cfg.memory_soft_reserve >> 20),
             (unsigned long long)(s->cfg.memory_hard_reserve >> 20));
}

void supervisor_mem_tick(struct supervisor *s, uint64_t now)
{
    struct supervisor_mem *m = &s->mem;
    if (now < m->next_ns)
        return;
    m->next_ns = now + MEM_TICK_NS;

    uint64_t total = 0, used = 0, limit = 0;
    bool ok = ram(&total, &used);
    if (m->source != SUP_MEM_RAM) {
        uint64_t cl = cgroup_limit(m), cu, raw;
        if (cgroup_used(m, &cu, &raw)) {
            atomic_store(&m->cg_limit, cl);
            atomic_store(&m->cg_usage, cl ? raw : 0);
            used = cu;
            ok = true;
            /* a cgroup without a limit, or one above the RAM, is bounded by the RAM */
            limit = cl && (!total || cl < total) ? cl : total;
        }
    } else {
        limit = total;
    }
    if (s->cfg.memory_limit)
        limit = s->cfg.memory_limit;
    if (!ok || limit == 0)
        return; /* nothing readable: the last level stands */
    atomic_store(&m->limit, limit);
    atomic_store(&m->used, used);
    uint32_t level = supervisor_mem_level_for(limit, used, s->cfg.memory_soft_reserve, s->cfg.memory_hard_reserve);
    uint32_t old = atomic_load(&m->level);
    /* every second, changed or not: the header is writable by every role, and a word a role scribbled on
     * is put right within a second (the supervisor itself only ever acts on its private m->level) */
    if (s->seg.hdr)
        atomic_store(&s->seg.hdr->mem_pressure, level);
    if (level == old)
        return;
    atomic_store(&m->level, level);
    if (level == SHM_MEM_EXHAUSTED)
        atomic_fetch_add(&m->exhausted_total, 1);
    uint64_t headroom = used < limit ? limit - used : 0;
    if (level > old)
        log_error("memory %s: %llu MiB of headroom left (working set %llu MiB of %llu MiB)%s",
                  supervisor_mem_level_name(level), (unsigned long long)(headroom >> 20),
                  (unsigned long long)(used >> 20), (unsigned long long)(limit >> 20),
                  level == SHM_MEM_EXHAUSTED ? ": new SMTP sessions get 421, new transactions 451" : "");
    else
        log_info("memory %s again: %llu MiB of headroom (working set %llu MiB of %llu MiB)",
                 supervisor_mem_level_name(level), (unsigned long long)(headroom >> 20),
                 (unsigned long long)(used >> 20), (unsigned long long)(limit >> 20));
}

void supervisor_mem_fini(struct supervisor *s)
{
    free(s->mem.dir);
    s->mem.dir = NULL;
}
