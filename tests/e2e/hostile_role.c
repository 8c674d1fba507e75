/*
 * hostile_role - ROLE-01's attacker: maps a running node's segment as a compromised role would and
 * writes garbage into it (test helper for tests/e2e/harden_roles_test.py; never part of a node)
 *
 * hostile_role ROLE_PID WHAT [ARG]
 *   ROLE_PID  any role process of the node: the segment is its --shm-fd, reopened through /proc
 *   WHAT      header        the header's counts, offsets and ring topology
 *             roles PID     every role table slot: pid = PID, role/index/state/generation garbage,
 *                           started and heartbeat at time 1 (long ago)
 *             ring FROM TO  the header line and indexes of the ring FROM -> TO (instance numbers):
 *                           the largest capacity with a matching mask, indexes near its end
 *             arena         the arena header's geometry words
 *             trace         the SMTP trace word, its generation and prefilter (trace_test.py)
 *             page N [TEXT] status page N (enum proto_node_status_page): TEXT as its document, published
 *                           as a writer would (sequence bumped by two); without TEXT a length past the page
 *             bells FD      every instance's doorbell eventfd number set to FD (2: the peers' stderr)
 * The layout is read from the header before anything is written (the attacker knows it: it is
 * a role of this build). Exit 0 when written, 1 on a usage or access error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/shm_segment.h"

static int shm_fd_of(const char *pid)
{
    char path[64], args[8192];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, args, sizeof(args) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    args[n] = '\0';
    for (char *a = args; a < args + n; a += strlen(a) + 1)
        if (strcmp(a, "--shm-fd") == 0 && a + strlen(a) + 1 < args + n)
            return atoi(a + strlen(a) + 1);
    return -1;
}

static void scribble_header(struct shm_header *h)
{
    h->n_ingress = 0xffff;
    h->n_egress = 0xffff;
    h->n_instances = 0xffffffffu;
    h->n_rings = 0xffffffffu;
    h->ring_slots = 1u << 30;
    h->ring_bytes = ~0ull;
    h->off_instances = ~0ull - 4095;
    h->off_arena = ~0ull - 4095;
    h->arena_region = ~0ull;
    memset(h->ring_index, 0x5a, sizeof(h->ring_index));
    for (unsigned i = 0; i < SHM_MAX_RINGS; i++) {
        h->rings[i].producer = 0xfffe;
        h->rings[i].consumer = 0xfffe;
        h->rings[i].off = 1ull << 62;
    }
}

static void scribble_roles(struct proto_node_instance *inst, unsigned n, int pid)
{
    for (unsigned i = 0; i < n; i++) {
        inst[i].role = 0xffff;
        inst[i].index = 0xffff;
        atomic_store(&inst[i].pid, pid);
        atomic_store(&inst[i].state, PROTO_NODE_INST_STARTING);
        atomic_store(&inst[i].generation, 0xdead0000u + i);
        atomic_store(&inst[i].started_ns, 1);
        atomic_store(&inst[i].heartbeat_ns, 1);
        /* histograms whose buckets overflow when summed, listener counters at the top of their range */
        for (unsigned h = 0; h < PROTO_NODE_HIST__MAX; h++) {
            for (unsigned b = 0; b < PROTO_HIST_BUCKETS; b++)
                atomic_store(&inst[i].hist[h].bucket[b], b % 2 ? UINT64_MAX - b : 0x7fffffffffffffffull);
            atomic_store(&inst[i].hist[h].sum_us, UINT64_MAX);
        }
        for (unsigned l = 0; l < PROTO_NODE_MAX_LISTENERS; l++) {
            atomic_store(&inst[i].listeners[l].connections, UINT64_MAX);
            atomic_store(&inst[i].listeners[l].sessions, UINT64_MAX - l);
            for (unsigned r = 0; r < PROTO_NODE_REJECT__MAX; r++)
                atomic_store(&inst[i].listeners[l].rejected[r], UINT64_MAX / 2 + r);
        }
    }
}

static void scribble_ring(struct shm_ring *r)
{
    r->capacity = SHM_RING_MAX_CAPACITY;
    r->mask = SHM_RING_MAX_CAPACITY - 1;
    /* both indexes far past the ring's own slots (and past the segment, for a reader that believes it) */
    atomic_store(&r->tail, SHM_RING_MAX_CAPACITY - 64);
    atomic_store(&r->head, SHM_RING_MAX_CAPACITY - 32);
}

static void scribble_arena(uint64_t *word)
{
    /* shm_arena.c's header: 2 n_blocks, 3 off_table, 4 off_bitmap, 5 off_data, 6 total */
    word[2] *= 4096;
    word[3] = 1ull << 40;
    word[4] = 1ull << 41;
    word[5] = 64;
    word[6] = ~0ull;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: hostile_role ROLE_PID header|roles PID|ring FROM TO|arena|page N [TEXT]|bells FD\n");
        return 1;
    }
    int sfd = shm_fd_of(argv[1]);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%s/fd/%d", argv[1], sfd);
    int fd = sfd < 0 ? -1 : open(path, O_RDWR);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "hostile_role: cannot open the segment of pid %s (%s): %s\n", argv[1], path,
                strerror(errno));
        return 1;
    }
    char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, "hostile_role: mmap of %lld bytes: %s\n", (long long)st.st_size, strerror(errno));
        return 1;
    }
    struct shm_header *h = (struct shm_header *)(void *)base;
    struct proto_node_instance *inst = (struct proto_node_instance *)(void *)(base + h->off_instances);
    const char *what = argv[2];
    if (strcmp(what, "header") == 0) {
        scribble_header(h);
    } else if (strcmp(what, "roles") == 0 && argc == 4) {
        scribble_roles(inst, h->n_instances, atoi(argv[3]));
    } else if (strcmp(what, "ring") == 0 && argc == 5) {
        unsigned from = (unsigned)atoi(argv[3]), to = (unsigned)atoi(argv[4]);
        uint16_t i = from < h->n_instances && to < h->n_instances ? h->ring_index[from][to] : SHM_NO_RING;
        if (i == SHM_NO_RING) {
            fprintf(stderr, "hostile_role: no ring %u -> %u\n", from, to);
            return 1;
        }
        scribble_ring((struct shm_ring *)(void *)(base + h->rings[i].off));
    } else if (strcmp(what, "page") == 0 && (argc == 4 || argc == 5)) {
        unsigned pg = (unsigned)atoi(argv[3]);
        if (pg >= PROTO_NODE_STATUS_PAGES) {
            fprintf(stderr, "hostile_role: no page %u\n", pg);
            return 1;
        }
        struct proto_node_status *ps =
            (struct proto_node_status *)(void *)(base + h->off_status + (uint64_t)pg * PROTO_NODE_STATUS_BYTES);
        size_t n = argc == 5 ? strlen(argv[4]) : 0;
        if (n > PROTO_NODE_STATUS_BYTES - sizeof(*ps) - 1)
            return 1;
        uint64_t seq = atomic_load(&ps->seq);
        atomic_store(&ps->seq, (seq | 1) + 0); /* odd: being written */
        if (argc == 5)
            memcpy(ps->data, argv[4], n + 1);
        atomic_store(&ps->len, argc == 5 ? (uint32_t)n : 0xffffffffu);
        atomic_store(&ps->seq, (seq | 1) + 1);
    } else if (strcmp(what, "trace") == 0) {
        /* the SMTP trace word all ones, its generation odd (a writer that never finishes), every
         * prefilter slot garbage (trace_test.py) */
        atomic_store(&h->trace_on, 0xffffffffu);
        atomic_store(&h->trace_gen, 0x7fffffffu);
        memset(h->trace_filters, 0xa5, sizeof(h->trace_filters));
    } else if (strcmp(what, "bells") == 0 && argc == 4) {
        for (unsigned i = 0; i < h->n_instances && i < PROTO_NODE_MAX_INSTANCES; i++)
            shm_segment_bell(&inst[i])->efd = atoi(argv[3]);
    } else if (strcmp(what, "arena") == 0) {
        scribble_arena((uint64_t *)(void *)(base + h->off_arena));
    } else {
        fprintf(stderr, "hostile_role: unknown action %s\n", what);
        return 1;
    }
    munmap(base, (size_t)st.st_size);
    close(fd);
    printf("hostile_role: %s written\n", what);
    return 0;
}
