/*
 * shm_arena - message body arena in shared memory, with owner and generation per block
 *
 * The arena is cut into blocks of SHM_ARENA_BLOCK bytes. A body takes one contiguous run of
 * blocks. Each run records its owner (role instance index) and the owner's generation, so that
 * when an instance dies the supervisor frees every run that instance held (shm_arena_reclaim).
 * Ownership moves with shm_arena_give (ingress writes a body, hands it to the spool).
 *
 * Allocation and free take a robust, process-shared mutex: a process that dies holding it does
 * not wedge the others (the next locker repairs the free map from the block table).
 *
 * shm_arena_bytes(data) - bytes of shared memory needed for `data` bytes of body space.
 * shm_arena_init(mem, bytes) - format; returns 0 or -EINVAL (too small, misaligned).
 * shm_arena_open(a, mem, bytes) - a process's handle on the arena at `mem`: the header is checked
 *   once against `bytes` (the region's size fixed at creation) and its geometry kept as a private
 *   copy; every later offset and index is bounded by the copy, never by the header, which any
 *   process mapping the segment can rewrite. 0, or -EPROTO when the header is not valid.
 * shm_arena_alloc() - 0 with *off set, -ENOSPC when no run is free, -EFBIG when `len` exceeds the
 *   arena, -EINVAL for len 0.
 * shm_arena_ptr() - pointer for [off, off+len) after checking it lies inside one allocated run; NULL
 *   otherwise (offsets arrive from rings and are untrusted).
 * shm_arena_free() - 0, or -EINVAL when `off` is not the start of an allocated run.
 * shm_arena_give() - 0, or -EINVAL as above.
 * shm_arena_reclaim() - frees every run owned by (owner, gen); returns the number of runs freed.
 */
#ifndef RINGMAIL_SHM_ARENA_H
#define RINGMAIL_SHM_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define SHM_ARENA_BLOCK (16u * 1024u)

struct shm_arena_hdr; /* lives in the segment; layout private to shm_arena.c */

/* struct shm_arena - one process's handle: the shared header and the geometry taken at open */
struct shm_arena {
    struct shm_arena_hdr *hdr;
    uint64_t n_blocks;
    uint64_t off_table;
    uint64_t off_bitmap;
    uint64_t off_data;
    uint64_t total;
};

struct shm_arena_stats {
    uint64_t blocks_total;
    uint64_t blocks_used;
    uint64_t runs;
    uint64_t alloc_failures;
};

size_t shm_arena_bytes(uint64_t data_bytes);
int shm_arena_init(void *mem, size_t bytes);
int shm_arena_open(struct shm_arena *a, void *mem, size_t bytes);
/* shm_arena_restore - write the header's geometry back from the handle (a handle that opened) */
void shm_arena_restore(struct shm_arena *a);
int shm_arena_alloc(struct shm_arena *a, size_t len, uint16_t owner, uint32_t gen, uint64_t *off);
void *shm_arena_ptr(struct shm_arena *a, uint64_t off, uint64_t len);
int shm_arena_free(struct shm_arena *a, uint64_t off);
int shm_arena_give(struct shm_arena *a, uint64_t off, uint16_t owner, uint32_t gen);
size_t shm_arena_reclaim(struct shm_arena *a, uint16_t owner, uint32_t gen);
void shm_arena_stats(struct shm_arena *a, struct shm_arena_stats *out);

#endif
