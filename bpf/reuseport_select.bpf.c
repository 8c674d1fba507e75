/*
 * reuseport_select - steer a new connection to the least-loaded ingress worker
 *
 * Attached to one SO_REUSEPORT group (one listener address, one socket per ingress worker).
 * The supervisor keeps three maps current:
 *   rs_socks:  worker number -> that worker's listening socket in this group;
 *   rs_loads:  worker number -> current sessions; RS_NOT_READY (UINT32_MAX) = never pick it;
 *   rs_count:  key 0 -> number of workers (clamped to RS_MAX_WORKERS here).
 * The lowest load wins; equal loads are split by the connection's hash (md->hash mixed with
 * the worker number) so that a burst arriving between two 50 ms load updates does not all
 * land on the same worker.
 * Whenever nothing can be chosen (no worker ready, empty slot, selection refused) the
 * program returns SK_PASS without a selection and the kernel's own hash picks: a
 * connection is never refused because of this program.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Same values as supervisor_bpf.h; the BPF side cannot include userspace headers. */
#define RS_MAX_WORKERS 32
#define RS_NOT_READY 0xffffffffu

struct {
    __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
    __uint(max_entries, RS_MAX_WORKERS);
    __type(key, __u32);
    __type(value, __u64);
} rs_socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, RS_MAX_WORKERS);
    __type(key, __u32);
    __type(value, __u32);
} rs_loads SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} rs_count SEC(".maps");

/* A well-mixed 32-bit value per (connection, worker): among workers of equal load the one with
 * the lowest mix wins, which for varying connections is each of them about equally often. */
static __always_inline __u32 rs_mix(__u32 hash, __u32 worker)
{
    __u32 h = hash ^ (worker * 0x9e3779b9u);

    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

SEC("sk_reuseport")
int reuseport_select(struct sk_reuseport_md *md)
{
    __u32 zero = 0, count, i, chosen = RS_MAX_WORKERS;
    __u32 *countp = bpf_map_lookup_elem(&rs_count, &zero);
    __u64 best = ~0ull;

    if (!countp)
        return SK_PASS;
    count = *countp;

    /* One pass with one comparison per worker keeps the verifier's walk to about one state per
     * (iteration, chosen) pair; a two-pass "count the ties, take the k-th" exceeds its budget. */
    for (i = 0; i < RS_MAX_WORKERS; i++) {
        __u32 key = i;
        __u32 *load;
        __u64 rank;

        if (i >= count)
            break;
        load = bpf_map_lookup_elem(&rs_loads, &key);
        if (!load || *load == RS_NOT_READY)
            continue;
        rank = ((__u64)*load << 32) | rs_mix(md->hash, i);
        if (rank < best) {
            best = rank;
            chosen = i;
        }
    }
    if (chosen >= RS_MAX_WORKERS)
        return SK_PASS;

    /* The result does not matter: on failure (an empty slot while a worker restarts, a socket
     * of another group) nothing is selected and the kernel's hash picks among the group. */
    bpf_sk_select_reuseport(md, &rs_socks, &chosen, 0);
    return SK_PASS;
}

/* GPL-compatible, as the kernel requires for some helpers; no helper is then refused. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
