/*
 * shm_pages - shared memory with the best page source the host offers
 *
 * shm_pages_alloc() walks the chain hugetlb -> THP -> 4 KiB (see shm_pages.h) and returns the
 * first source that could actually back every byte. "Actually" matters: a hugetlb mapping
 * whose pages are not there dies with SIGBUS at first touch, possibly hours later in another
 * process. So every step allocates the pages before it reports success, in a way that fails
 * with an errno instead of a signal: fallocate() for hugetlb and 4 KiB memfds,
 * MADV_POPULATE_WRITE for THP (fallocate has no VMA and so would not get huge pages under
 * shmem_enabled=advise). MAP_POPULATE then only builds page tables.
 * The fd is inherited across exec (no close-on-exec) and sealed against shrink and grow, so a
 * role cannot ftruncate the segment under the others.
 * Errors: 0 or -errno; *err (heap) says what was tried and why it failed.
 */
#include "shm/shm_pages.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "base/mem.h"

#define SHM_PAGES_HUGE_SIZE ((size_t)2 << 20)
#define SHM_PAGES_SMALL_SIZE ((size_t)4096)
#define SHM_PAGES_MEMFD_NAME "ringmail-shm"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define THP_GLOBAL_KNOB "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define THP_2M_KNOB "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled"
#define HUGETLB_2M_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB/"

const char *shm_pages_source_name(enum shm_page_source s)
{
    switch (s) {
    case SHM_PAGES_HUGETLB:
        return "hugetlb 2 MiB";
    case SHM_PAGES_THP:
        return "transparent huge";
    case SHM_PAGES_SMALL:
        return "4 KiB";
    case SHM_PAGES_NONE:
        break;
    }
    return "none";
}

long shm_pages_meminfo(const char *name)
{
    char line[256];
    size_t nlen = strlen(name);
    long val = -1;
    FILE *f = fopen("/proc/meminfo", "re");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
            char *end;
            long v = strtol(line + nlen + 1, &end, 10);
            if (end != line + nlen + 1 && v >= 0)
                val = v;
            break;
        }
    }
    fclose(f);
    return val;
}

long shm_pages_hugepages_free(void)
{
    return shm_pages_meminfo("HugePages_Free");
}

/* the active word of a sysfs multiple-choice knob: "a [b] c" -> "b"; false when unreadable */
static bool read_bracketed(const char *path, char *out, size_t outsz)
{
    char buf[256];
    bool ok = false;
    FILE *f = fopen(path, "re");

    if (!f)
        return false;
    if (fgets(buf, sizeof(buf), f)) {
        char *open = strchr(buf, '[');
        char *close = open ? strchr(open, ']') : NULL;
        if (open && close && (size_t)(close - open - 1) < outsz) {
            memcpy(out, open + 1, (size_t)(close - open - 1));
            out[close - open - 1] = '\0';
            ok = true;
        }
    }
    fclose(f);
    return ok;
}

/*
 * thp_shmem_allowed - whether MADV_HUGEPAGE on shmem can give huge pages. The per-size knob of
 * newer kernels wins unless it says "inherit"; "never" and "deny" refuse. `why` gets the value.
 */
static bool thp_shmem_allowed(char *why, size_t whysz)
{
    char v[32];
    const char *src = THP_2M_KNOB;

    if (!read_bracketed(THP_2M_KNOB, v, sizeof(v)) || strcmp(v, "inherit") == 0) {
        src = THP_GLOBAL_KNOB;
        if (!read_bracketed(THP_GLOBAL_KNOB, v, sizeof(v))) {
            snprintf(why, whysz, "%s unreadable (kernel without THP)", THP_GLOBAL_KNOB);
            return false;
        }
    }
    snprintf(why, whysz, "%s is [%s]", src, v);
    return strcmp(v, "always") == 0 || strcmp(v, "within_size") == 0 || strcmp(v, "advise") == 0 ||
           strcmp(v, "force") == 0;
}

static bool round_up(size_t size, size_t page, size_t *out)
{
    if (size > SIZE_MAX - (page - 1))
        return false;
    *out = (size + page - 1) & ~(page - 1);
    return true;
}

static void seal_size(int fd)
{
    /* best effort: a kernel without sealing on this fs still works, just less defended */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        log_debug("shm: cannot seal the memfd size: %s", strerror(errno));
}

/* try_hugetlb - step 1; on failure *why says what the host lacks */
static int try_hugetlb(size_t size, struct shm_pages *out, char **why)
{
    size_t len;
    int fd, rc;
    void *p;

    if (!round_up(size, SHM_PAGES_HUGE_SIZE, &len)) {
        *why = xasprintf("hugetlb: size %zu too large", size);
        return -EINVAL;
    }
    fd = memfd_create(SHM_PAGES_MEMFD_NAME, MFD_HUGETLB | MFD_HUGE_2MB | MFD_ALLOW_SEALING);
    if (fd < 0) {
        rc = -errno;
        *why = xasprintf("hugetlb: memfd_create(MFD_HUGETLB) failed: %s (kernel without hugetlbfs?)",
                         strerror(errno));
        return rc;
    }
    if (ftruncate(fd, (off_t)len) < 0) {
        rc = -errno;
        *why = xasprintf("hugetlb: ftruncate to %zu bytes failed: %s", len, strerror(errno));
        close(fd);
        return rc;
    }
    /*
     * Allocating the pages now is the point: a MAP_SHARED hugetlb mapping only reserves at mmap
     * time, and a shortage the reservation does not see (cgroup hugetlb limit, surplus pages
     * that cannot be found) would be a SIGBUS at first touch. fallocate() reports it as errno.
     */
    long free_before = -1, rsvd_before = -1;
    file_read_long(HUGETLB_2M_DIR "free_hugepages", &free_before);
    file_read_long(HUGETLB_2M_DIR "resv_hugepages", &rsvd_before);
    if (fallocate(fd, 0, 0, (off_t)len) < 0) {
        int e = errno;
        size_t need = len / SHM_PAGES_HUGE_SIZE;
        if (free_before >= 0) {
            long avail = free_before - (rsvd_before > 0 ? rsvd_before : 0);
            *why = xasprintf("hugetlb: %zu pages of 2 MiB needed, %ld free (set vm.nr_hugepages): %s", need,
                             avail > 0 ? avail : 0, strerror(e));
        } else {
            *why = xasprintf("hugetlb: %zu pages of 2 MiB needed, allocation failed: %s", need, strerror(e));
        }
        close(fd);
        return -e;
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        *why = xasprintf("hugetlb: mmap of %zu bytes failed: %s", len, strerror(errno));
        close(fd);
        return rc;
    }
    seal_size(fd);
    out->fd = fd;
    out->base = p;
    out->size = len;
    out->source = SHM_PAGES_HUGETLB;
    return 0;
}

/* try_memfd - steps 2 (thp) and 3; pages are allocated before success is reported */
static int try_memfd(size_t size, bool thp, struct shm_pages *out, char **why)
{
    const char *step = thp ? "thp" : "4k";
    size_t len;
    int fd, rc;
    void *p;

    /* THP wants whole 2 MiB extents, or the tail stays on small pages */
    if (!round_up(size, thp ? SHM_PAGES_HUGE_SIZE : SHM_PAGES_SMALL_SIZE, &len)) {
        *why = xasprintf("%s: size %zu too large", step, size);
        return -EINVAL;
    }
    fd = memfd_create(SHM_PAGES_MEMFD_NAME, MFD_ALLOW_SEALING);
    if (fd < 0) {
        rc = -errno;
        *why = xasprintf("%s: memfd_create failed: %s", step, strerror(errno));
        return rc;
    }
    if (ftruncate(fd, (off_t)len) < 0) {
        rc = -errno;
        *why = xasprintf("%s: ftruncate to %zu bytes failed: %s", step, len, strerror(errno));
        goto fail_fd;
    }
    if (!thp && fallocate(fd, 0, 0, (off_t)len) < 0) {
        rc = -errno;
        *why = xasprintf("%s: cannot allocate %zu bytes of shared memory: %s", step, len, strerror(errno));
        goto fail_fd;
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | (thp ? 0 : MAP_POPULATE), fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        *why = xasprintf("%s: mmap of %zu bytes failed: %s", step, len, strerror(errno));
        goto fail_fd;
    }
    if (thp) {
        /* the advice must precede the first fault, which is why population comes after it */
        if (madvise(p, len, MADV_HUGEPAGE) < 0) {
            rc = -errno;
            *why = xasprintf("thp: madvise(MADV_HUGEPAGE) failed: %s", strerror(errno));
            goto fail_map;
        }
        if (madvise(p, len, MADV_POPULATE_WRITE) < 0) {
            rc = -errno;
            if (errno != EINVAL) {
                *why = xasprintf("thp: cannot populate %zu bytes: %s", len, strerror(errno));
                goto fail_map;
            }
            /* kernel older than 5.14: allocate without huge pages rather than risk SIGBUS */
            if (fallocate(fd, 0, 0, (off_t)len) < 0) {
                rc = -errno;
                *why = xasprintf("thp: cannot allocate %zu bytes: %s", len, strerror(errno));
                goto fail_map;
            }
        }
    }
    seal_size(fd);
    out->fd = fd;
    out->base = p;
    out->size = len;
    out->source = thp ? SHM_PAGES_THP : SHM_PAGES_SMALL;
    return 0;

fail_map:
    munmap(p, len);
fail_fd:
    close(fd);
    return rc;
}

int shm_pages_alloc(size_t size, enum shm_huge_mode mode, struct shm_pages *out, char **err)
{
    char thp_why[160];
    char *why = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    *err = NULL;
    if (size == 0) {
        *err = xasprintf("shared memory of 0 bytes requested");
        return -EINVAL;
    }
    if (mode != SHM_HUGE_AUTO && mode != SHM_HUGE_REQUIRE && mode != SHM_HUGE_OFF) {
        *err = xasprintf("unknown hugepage mode %d", (int)mode);
        return -EINVAL;
    }

    if (mode != SHM_HUGE_OFF) {
        rc = try_hugetlb(size, out, &why);
        if (rc == 0)
            return 0;
        if (mode == SHM_HUGE_REQUIRE) {
            *err = xasprintf("hugepages required but unavailable: %s", why);
            free(why);
            return -ENOMEM;
        }
        log_info("shm: %s; trying the next page source", why);
        free(why);
        why = NULL;

        if (thp_shmem_allowed(thp_why, sizeof(thp_why))) {
            rc = try_memfd(size, true, out, &why);
            if (rc == 0)
                return 0;
            log_info("shm: %s; falling back to 4 KiB pages", why);
            free(why);
            why = NULL;
        } else {
            log_info("shm: thp: not available for shared memory (%s); using 4 KiB pages", thp_why);
        }
    }

    rc = try_memfd(size, false, out, &why);
    if (rc == 0)
        return 0;
    *err = why;
    return rc;
}

int shm_pages_map(int fd, struct shm_pages *out, char **err)
{
    struct stat st;
    struct statfs sfs;
    char thp_why[160];
    size_t len;
    void *p;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    *err = NULL;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        *err = xasprintf("shared memory fd %d: fstat failed: %s", fd, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uintmax_t)st.st_size > SIZE_MAX) {
        *err = xasprintf("shared memory fd %d is not a sized memory file (size %lld)", fd,
                         (long long)st.st_size);
        return -EINVAL;
    }
    len = (size_t)st.st_size;
    bool hugetlb = fstatfs(fd, &sfs) == 0 && (unsigned long)sfs.f_type == (unsigned long)HUGETLBFS_MAGIC;
    if (hugetlb && len % SHM_PAGES_HUGE_SIZE != 0) {
        *err = xasprintf("shared memory fd %d: hugetlb file of %zu bytes is not a whole number of pages", fd,
                         len);
        return -EINVAL;
    }
    /* the creator allocated every page; populating here only saves page faults later */
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        *err = xasprintf("shared memory fd %d: mmap of %zu bytes failed: %s", fd, len, strerror(e));
        return -e;
    }
    out->source = SHM_PAGES_SMALL;
    if (hugetlb)
        out->source = SHM_PAGES_HUGETLB;
    else if (thp_shmem_allowed(thp_why, sizeof(thp_why)) && madvise(p, len, MADV_HUGEPAGE) == 0)
        out->source = SHM_PAGES_THP;
    out->fd = fd;
    out->base = p;
    out->size = len;
    return 0;
}

void shm_pages_unmap(struct shm_pages *p)
{
    if (!p)
        return;
    if (p->base && p->size)
        munmap(p->base, p->size);
    if (p->fd >= 0)
        close(p->fd);
    p->base = NULL;
    p->size = 0;
    p->fd = -1;
    p->source = SHM_PAGES_NONE;
}
