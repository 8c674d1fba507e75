/*
 * shm_bell - doorbell so that an idle consumer sleeps instead of spinning
 *
 * One bell per consumer instance, in shared memory, next to an eventfd that the supervisor
 * created before forking (so the fd number is the same in every process). The consumer drains
 * all its inbound rings, calls shm_bell_prepare_sleep(), drains once more, and only then blocks
 * on the eventfd (a read on its io_uring, or shm_bell_wait()). Producers call shm_bell_ring()
 * after pushing: it writes the eventfd only when the consumer announced sleep, so a busy consumer
 * costs producers no system call.
 *
 * shm_bell_init() formats the bell with the eventfd number `efd`.
 * shm_bell_ring() returns 0 or -errno from write(2) (EAGAIN on a full counter is success).
 * shm_bell_prepare_sleep() marks the consumer sleeping (seq_cst); shm_bell_woke() clears it and
 * drains the eventfd counter; shm_bell_wait() blocks in poll(2) up to timeout_ms (-1 = forever),
 * returns 1 when rung, 0 on timeout, -errno on error.
 */
#ifndef RINGMAIL_SHM_BELL_H
#define RINGMAIL_SHM_BELL_H

#include <stdatomic.h>
#include <stdint.h>

struct shm_bell {
    _Alignas(64) _Atomic uint32_t sleeping;
    int32_t efd;
    _Atomic uint64_t rings;  /* eventfd writes made (statistic) */
    _Atomic uint64_t wakeups; /* times the consumer woke from the eventfd (statistic) */
};

void shm_bell_init(struct shm_bell *b, int efd);
int shm_bell_ring(struct shm_bell *b);
void shm_bell_prepare_sleep(struct shm_bell *b);
void shm_bell_woke(struct shm_bell *b);
int shm_bell_wait(struct shm_bell *b, int timeout_ms);

#endif
