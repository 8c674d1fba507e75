/*
 * shm_pages - shared memory with the best page source the host offers
 *
 * shm_pages_alloc() creates an anonymous shared mapping of at least `size` bytes backed by a
 * memfd that children inherit (no O_CLOEXEC) and map again by fd with shm_pages_map(). The chain:
 *   1. memfd_create(MFD_HUGETLB) of 2 MiB pages, when the host has enough reserved hugepages
 *      (mode AUTO or HUGETLB); the size is rounded up to 2 MiB;
 *   2. a plain memfd with madvise(MADV_HUGEPAGE), when transparent hugepages for shmem are
 *      available (/sys/kernel/mm/transparent_hugepage/shmem_enabled is "advise", "always",
 *      "within_size" or "force");
 *   3. a plain memfd on 4 KiB pages.
 * Mode SHM_HUGE_OFF starts at step 3; SHM_HUGE_REQUIRE fails with -ENOMEM unless step 1 works.
 * The memory is pre-faulted (MAP_POPULATE) so that a shortage shows at start, not at first use.
 * Returns 0 or -errno with *err set to a message (heap, caller frees).
 * shm_pages_map() maps an inherited fd (size taken from fstat) read-write and shared.
 */
#ifndef RINGMAIL_SHM_PAGES_H
#define RINGMAIL_SHM_PAGES_H

#include <stddef.h>

enum shm_huge_mode {
    SHM_HUGE_AUTO = 0,
    SHM_HUGE_REQUIRE = 1,
    SHM_HUGE_OFF = 2,
};

enum shm_page_source {
    SHM_PAGES_NONE = 0,
    SHM_PAGES_HUGETLB = 1, /* explicit 2 MiB hugepages */
    SHM_PAGES_THP = 2,     /* memfd with MADV_HUGEPAGE */
    SHM_PAGES_SMALL = 3,   /* 4 KiB pages */
};

struct shm_pages {
    int fd;
    void *base;
    size_t size; /* mapped size, rounded to the page source's page size */
    enum shm_page_source source;
};

int shm_pages_alloc(size_t size, enum shm_huge_mode mode, struct shm_pages *out, char **err);
int shm_pages_map(int fd, struct shm_pages *out, char **err);
void shm_pages_unmap(struct shm_pages *p);
const char *shm_pages_source_name(enum shm_page_source s);
/* shm_pages_meminfo - the number of field `name` in /proc/meminfo ("HugePages_Free", "Hugepagesize": kB), or -1 */
long shm_pages_meminfo(const char *name);
/* shm_pages_hugepages_free - HugePages_Free from /proc/meminfo, or -1 */
long shm_pages_hugepages_free(void);

#endif
