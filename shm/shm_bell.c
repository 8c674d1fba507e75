/*
 * shm_bell - doorbell so that an idle consumer sleeps instead of spinning
 *
 * `sleeping` holds the consumer's sleep cycle in bits 1..31 and, in bit 0, "asleep and not rung
 * yet". Only the consumer starts a cycle; producers only clear bit 0 of the cycle they saw.
 *
 * Protocol (a Dekker handshake; both sides need a full fence between their store and their load):
 *   producer: push (release store of head); shm_bell_ring(): fence(seq_cst), load `sleeping`; if
 *             bit 0 is set, write 1 to the eventfd, then compare-and-swap bit 0 off for that cycle.
 *   consumer: drain the rings; shm_bell_prepare_sleep(): store a new cycle with bit 0 set,
 *             fence(seq_cst); drain the rings once more (a load of head); only if still empty,
 *             block on the eventfd; after waking, shm_bell_woke() ends the cycle and drains the
 *             counter if a producer marked it rung.
 * Under the fences at least one side sees the other's store: either the producer sees bit 0 and
 * writes the eventfd, or the consumer's second drain sees the new head. A ring that lands before
 * the consumer blocks is not lost, because the eventfd counter keeps it.
 * Bit 0 is cleared only after a write completed, so later producers of the same cycle skip the
 * system call knowing the consumer will wake. Clearing it before the write (an exchange) would be
 * wrong: a producer killed between the exchange and its write(2) would leave the consumer asleep
 * with no later ring able to reach it (the stress test's kill case found this). The cycle number
 * makes a late compare-and-swap from an earlier cycle fail. A producer that dies between its push
 * and its ring leaves a record the consumer may sleep past, so a restarted producer calls
 * shm_bell_ring() once at start; consumers also wait with a timeout as a last safety net.
 * A write whose compare-and-swap had not landed when the consumer woke leaves a stale count: one
 * spurious wake-up later (shm_bell_wait() drains what it reports), never a lost one.
 * `wakeups` counts cycles a producer marked rung; a consumer that reads the eventfd itself (on its
 * io_uring) still calls shm_bell_woke(), whose drain then finds the counter empty.
 *
 * The eventfd is never taken from the shared word `efd` (any role can rewrite it): the caller passes
 * its own copy, so a hostile role cannot point a peer's writes at another of the peer's descriptors.
 * shm_bell_init() switches the eventfd to O_NONBLOCK (the flag belongs to the open file, so every
 * process that inherits it sees it) because the drains must never block on an empty counter.
 */
#include "shm/shm_bell.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

void shm_bell_init(struct shm_bell *b, int efd)
{
    int fl;

    memset(b, 0, sizeof(*b));
    b->efd = efd;
    atomic_store(&b->sleeping, 0);
    fl = fcntl(efd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(efd, F_SETFL, fl | O_NONBLOCK) < 0))
        log_warn("shm_bell: cannot make eventfd %d non-blocking: %s", efd, strerror(errno));
}

static void shm_bell_drain(int efd)
{
    uint64_t v;
    ssize_t n;

    if (efd < 0)
        return;
    do {
        n = read(efd, &v, sizeof(v));
    } while (n < 0 && errno == EINTR);
}

int shm_bell_ring(struct shm_bell *b, int efd)
{
    uint64_t one = 1;
    uint32_t v;
    ssize_t n;

    if (efd < 0)
        return -EBADF;
    atomic_thread_fence(memory_order_seq_cst);
    v = atomic_load_explicit(&b->sleeping, memory_order_relaxed);
    if ((v & 1) == 0)
        return 0;
    atomic_fetch_add_explicit(&b->rings, 1, memory_order_relaxed);
    do {
        n = write(efd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN)
        return -errno;
    atomic_compare_exchange_strong_explicit(&b->sleeping, &v, v & ~1u, memory_order_seq_cst,
                                            memory_order_relaxed);
    return 0;
}

void shm_bell_prepare_sleep(struct shm_bell *b)
{
    uint32_t v = atomic_load_explicit(&b->sleeping, memory_order_relaxed);

    atomic_store_explicit(&b->sleeping, (((v >> 1) + 1) << 1) | 1, memory_order_seq_cst);
    /* orders the flag before the caller's re-check of head (store-load needs a full fence) */
    atomic_thread_fence(memory_order_seq_cst);
}

void shm_bell_woke(struct shm_bell *b, int efd)
{
    uint32_t v = atomic_load_explicit(&b->sleeping, memory_order_relaxed);

    v = atomic_exchange_explicit(&b->sleeping, v & ~1u, memory_order_seq_cst);
    if ((v & 1) == 0 && v != 0) {
        atomic_fetch_add_explicit(&b->wakeups, 1, memory_order_relaxed);
        shm_bell_drain(efd);
    }
}

int shm_bell_wait(struct shm_bell *b, int efd, int timeout_ms)
{
    struct pollfd pfd = {.fd = efd, .events = POLLIN};
    int n;

    (void)b;
    if (efd < 0)
        return -EBADF;
    n = poll(&pfd, 1, timeout_ms);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    if (pfd.revents & (POLLERR | POLLNVAL))
        return -EBADF;
    shm_bell_drain(efd);
    return 1;
}

bool shm_bell_fd_check(int fd)
{
    char path[64], link[64];
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0)
        return false;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return false;
    link[n] = '\0';
    return strcmp(link, "anon_inode:[eventfd]") == 0;
}

int shm_bell_fds_parse(const char *s, int *fds, unsigned n, char **err)
{
    unsigned i = 0;

    *err = NULL;
    while (*s && i < n) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0')) {
            *err = xasprintf("--bell-fds: \"%s\" is not a list of descriptor numbers", s);
            return -EINVAL;
        }
        if (!shm_bell_fd_check((int)v)) {
            *err = xasprintf("--bell-fds: descriptor %ld is not an eventfd of this process", v);
            return -EINVAL;
        }
        fds[i++] = (int)v;
        s = *end ? end + 1 : end;
    }
    if (i != n || *s) {
        *err = xasprintf("--bell-fds: %u descriptors for %u instances", i + (*s ? 1 : 0), n);
        return -EINVAL;
    }
    return 0;
}
