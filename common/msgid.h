/*
 * msgid - 128-bit time-ordered unique message ids
 *
 * Layout, most significant bit first (the 16-byte form is big-endian, so RocksDB's
 * bytewise key order is creation-time order):
 *   hi[63:16] 48-bit Unix time in milliseconds      (lasts until the year 10889)
 *   hi[15:0]  16-bit node id, from msgid_init()      (distinct per node of a park)
 *   lo[63:42] 22-bit process id                      (Linux pid_max is at most 2^22)
 *   lo[41:20] 22 random bits drawn when the process seeds its generator
 *   lo[19:0]  20-bit counter within the millisecond
 *
 * Why the ids are unique:
 * - one process: (time, counter) is one 68-bit value that only ever grows (a compare-and-swap
 *   takes max(previous + 1, now << 20)), so a clock stepped backwards or more than 2^20 ids
 *   in one millisecond borrow from the next millisecond instead of repeating;
 * - processes alive at the same time on one node: their pids differ;
 * - restarts: a later process reusing a pid stamps later times; only a wall clock stepped
 *   back across the restart could repeat (time, pid), and then the 22 random bits make a
 *   repeat a 1-in-4-million event for the rare millisecond and counter that also coincide;
 * - nodes: the node id. A child after fork() re-seeds (pid and random bits), via pthread_atfork.
 * Text form: 32 lowercase hex digits, fixed length, URL-safe, sorting like the bytes.
 * Thread-safe. msgid_parse() takes untrusted text and never reads past `len`.
 */
#ifndef RINGMAIL_MSGID_H
#define RINGMAIL_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSGID_BYTES 16
#define MSGID_TEXT_LEN 32
#define MSGID_TEXT_SIZE (MSGID_TEXT_LEN + 1)

/* hi and lo match proto_store.msg_id_hi / msg_id_lo on the rings */
struct msgid {
    uint64_t hi;
    uint64_t lo;
};

/* msgid_init - set this node's id; optional (node 0 otherwise), call before the first id */
void msgid_init(uint16_t node_id);
/* msgid_generate - a new id, later than every id this process generated before */
struct msgid msgid_generate(void);

void msgid_to_bytes(struct msgid id, uint8_t out[MSGID_BYTES]);
struct msgid msgid_from_bytes(const uint8_t in[MSGID_BYTES]);
/* msgid_format - writes MSGID_TEXT_LEN hex digits and a NUL */
void msgid_format(struct msgid id, char out[MSGID_TEXT_SIZE]);
/* msgid_parse - exactly MSGID_TEXT_LEN hex digits (either case); -EINVAL otherwise */
int msgid_parse(const char *text, size_t len, struct msgid *out);

int msgid_cmp(struct msgid a, struct msgid b);
static inline bool msgid_eq(struct msgid a, struct msgid b)
{
    return a.hi == b.hi && a.lo == b.lo;
}
static inline uint64_t msgid_time_ms(struct msgid id)
{
    return id.hi >> 16;
}
static inline uint16_t msgid_node(struct msgid id)
{
    return (uint16_t)(id.hi & 0xffff);
}

#endif
