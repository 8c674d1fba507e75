/*
 * supervisor_bpf - SO_REUSEPORT steering of new SMTP connections to the least-loaded ingress worker
 *
 * One struct supervisor_bpf per listener address (per SO_REUSEPORT group): its own copy of the
 * program and of its three maps (sockets, loads, worker count), because a reuseport socket
 * array may only select sockets of the group the program runs for.
 *
 * Sequence (as root, before the roles drop privileges):
 *   supervisor_bpf_open(path, workers)       load bpf/reuseport_select.bpf.o; every load "not ready"
 *   supervisor_bpf_attach(b, first_fd)       SO_ATTACH_REUSEPORT_EBPF on the group (after bind)
 *   supervisor_bpf_set_socket(b, i, fd_i)    each worker's listening socket (after listen)
 *   supervisor_bpf_set_loads(b, loads, n)    every 50 ms from shared memory
 *   supervisor_bpf_detach(b, fd); supervisor_bpf_free(b)
 * Errors: every function returns 0 or -errno; where it takes char **err (may be NULL) it also
 * stores a one-line reason on the heap (caller frees) fit to log once before falling back to
 * the kernel's hash: no BPF in the kernel, not permitted (not root), object missing or not
 * ours, verifier rejection (its decisive line).
 * The program never refuses a connection: with no ready worker, an empty slot or a failed
 * selection the kernel's hash picks, so a stale or missing load table only costs balance.
 */
#ifndef RINGMAIL_SUPERVISOR_BPF_H
#define RINGMAIL_SUPERVISOR_BPF_H

#include <stdint.h>

/* Limits shared with bpf/reuseport_select.bpf.c (which cannot include this header). */
#define SUPERVISOR_BPF_MAX_WORKERS 32
/* A load of SUPERVISOR_BPF_NOT_READY keeps the worker out of the choice (starting, draining). */
#define SUPERVISOR_BPF_NOT_READY UINT32_MAX

struct supervisor_bpf;

/* supervisor_bpf_probe - can this process create BPF maps and sk_reuseport programs at all? */
int supervisor_bpf_probe(char **err);

/*
 * supervisor_bpf_open - load the object at obj_path for a group of `workers` (1..32) sockets.
 * The file is untrusted input: a missing, truncated or foreign object is refused with a reason.
 */
int supervisor_bpf_open(const char *obj_path, unsigned workers, struct supervisor_bpf **out, char **err);

/* supervisor_bpf_attach - attach to the group of sock_fd (a bound SO_REUSEPORT socket) */
int supervisor_bpf_attach(struct supervisor_bpf *b, int sock_fd, char **err);

/* supervisor_bpf_detach - give the group back to the kernel's hash; sock_fd is any of its sockets */
int supervisor_bpf_detach(struct supervisor_bpf *b, int sock_fd, char **err);

/* supervisor_bpf_set_socket - worker's listening socket (same group, after listen()) */
int supervisor_bpf_set_socket(struct supervisor_bpf *b, unsigned worker, int sock_fd, char **err);

/* supervisor_bpf_clear_socket - empty the worker's slot; -ENOENT when it was empty */
int supervisor_bpf_clear_socket(struct supervisor_bpf *b, unsigned worker);

/* supervisor_bpf_set_load - one worker's current session count, or SUPERVISOR_BPF_NOT_READY */
int supervisor_bpf_set_load(struct supervisor_bpf *b, unsigned worker, uint32_t load);

/*
 * supervisor_bpf_set_loads - loads[0..n) for workers 0..n-1; n may not exceed the worker count.
 * Not atomic across workers: the program tolerates a table half old, half new.
 */
int supervisor_bpf_set_loads(struct supervisor_bpf *b, const uint32_t *loads, unsigned n);

/* supervisor_bpf_workers - the worker count given to open */
unsigned supervisor_bpf_workers(const struct supervisor_bpf *b);

/*
 * supervisor_bpf_free - close the object and its fds; NULL is a no-op. A program still attached
 * stays attached (the kernel holds it and its maps) until detach or the group's last close,
 * with its last loads: detach first to stop steering.
 */
void supervisor_bpf_free(struct supervisor_bpf *b);

#endif
