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
 * shm_bell_init() formats the bell and publishes the eventfd number `efd` in it.
 * The published number is for diagnostics only: every role can rewrite it, and a process that wrote
 * to whatever number it finds there could be made to write 8 bytes into one of its own files or
 * sockets. So each call that touches the eventfd takes `efd` from the caller, who keeps a private
 * copy of every bell's descriptor (the supervisor its own, a role the --bell-fds list the supervisor
 * gave it at exec, each checked once with shm_bell_fd_check()); a negative efd is never used.
 * shm_bell_ring() returns 0 or -errno from write(2) (EAGAIN on a full counter is success; -EBADF for
 * a negative efd, nothing written).
 * shm_bell_prepare_sleep() marks the consumer sleeping (seq_cst); shm_bell_woke() clears it and
 * drains the eventfd counter; shm_bell_wait() blocks in poll(2) up to timeout_ms (-1 = forever),
 * returns 1 when rung, 0 on timeout, -errno on error.
 * shm_bell_fd_check() is true when fd is an eventfd of this process ("anon_inode:[eventfd]").
 * shm_bell_fds_parse() reads the --bell-fds list ("5,6,7", exactly n numbers, each an eventfd of this
 * process); 0, or -EINVAL with *err set (free it).
 */
#ifndef RINGMAIL_SHM_BELL_H
#define RINGMAIL_SHM_BELL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct shm_bell {
    _Alignas(64) _Atomic uint32_t sleeping;
    int32_t efd; /* published by the supervisor, for diagnostics: never used for I/O */
    _Atomic uint64_t rings;  /* eventfd writes made (statistic) */
    _Atomic uint64_t wakeups; /* times the consumer woke from the eventfd (statistic) */
};

void shm_bell_init(struct shm_bell *b, int efd);
int shm_bell_ring(struct shm_bell *b, int efd);
void shm_bell_prepare_sleep(struct shm_bell *b);
void shm_bell_woke(struct shm_bell *b, int efd);
int shm_bell_wait(struct shm_bell *b, int efd, int timeout_ms);
bool shm_bell_fd_check(int fd);
int shm_bell_fds_parse(const char *s, int *fds, unsigned n, char **err);

#endif
