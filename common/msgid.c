/*
 * msgid - 128-bit time-ordered unique message ids (layout and uniqueness argument in msgid.h)
 */
#include "common/msgid.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

#define MSGID_COUNTER_BITS 20
#define MSGID_PID_BITS 22
#define MSGID_RAND_BITS 22
#define MSGID_MS_MASK ((UINT64_C(1) << 48) - 1)

/*
 * (time, counter) needs 68 bits, one more word than a lock-free atomic holds, so a mutex
 * guards it; a generated id costs far less than the fsync it will wait for anyway.
 */
static pthread_mutex_t msgid_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t msgid_once = PTHREAD_ONCE_INIT;
static bool msgid_seeded;
static uint16_t msgid_node_id;
static uint64_t msgid_last_ms;
static uint32_t msgid_counter;
static uint64_t msgid_lo_prefix; /* pid and random bits, already shifted into place */

static void on_fork_child(void)
{
    /* the child runs single-threaded here: the parent's lock holder does not exist */
    pthread_mutex_init(&msgid_lock, NULL);
    msgid_seeded = false;
}

static void msgid_register_atfork(void)
{
    if (pthread_atfork(NULL, NULL, on_fork_child) != 0)
        fatal("msgid: pthread_atfork failed");
}

static uint32_t msgid_random_bits(void)
{
    uint32_t r = 0;
    ssize_t n = getrandom(&r, sizeof(r), 0);
    if (n != (ssize_t)sizeof(r)) {
        /* never expected on Linux >= 3.17; the pid and clock still separate processes */
        log_warn("msgid: getrandom failed, mixing clock bits instead");
        r = (uint32_t)(clock_mono_ns() ^ (clock_real_ns() >> 7));
    }
    return r;
}

static void msgid_seed_locked(void)
{
    uint64_t pid = (uint64_t)getpid() & ((UINT64_C(1) << MSGID_PID_BITS) - 1);
    uint64_t rnd = msgid_random_bits() & ((UINT64_C(1) << MSGID_RAND_BITS) - 1);
    msgid_lo_prefix = (pid << (MSGID_RAND_BITS + MSGID_COUNTER_BITS)) | (rnd << MSGID_COUNTER_BITS);
    msgid_last_ms = 0;
    msgid_counter = 0;
    msgid_seeded = true;
}

void msgid_init(uint16_t node_id)
{
    pthread_once(&msgid_once, msgid_register_atfork);
    pthread_mutex_lock(&msgid_lock);
    msgid_node_id = node_id;
    pthread_mutex_unlock(&msgid_lock);
}

struct msgid msgid_generate(void)
{
    pthread_once(&msgid_once, msgid_register_atfork);
    uint64_t now_ms = (clock_real_ns() / 1000000u) & MSGID_MS_MASK;

    pthread_mutex_lock(&msgid_lock);
    if (!msgid_seeded)
        msgid_seed_locked();
    if (now_ms > msgid_last_ms) {
        msgid_last_ms = now_ms;
        msgid_counter = 0;
    } else if (++msgid_counter >> MSGID_COUNTER_BITS) {
        /* counter exhausted (or clock went back): borrow the next millisecond */
        msgid_last_ms++;
        msgid_counter = 0;
    }
    struct msgid id = {
        .hi = (msgid_last_ms << 16) | msgid_node_id,
        .lo = msgid_lo_prefix | msgid_counter,
    };
    pthread_mutex_unlock(&msgid_lock);
    return id;
}

void msgid_to_bytes(struct msgid id, uint8_t out[MSGID_BYTES])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(id.hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(id.lo >> (56 - 8 * i));
    }
}

struct msgid msgid_from_bytes(const uint8_t in[MSGID_BYTES])
{
    struct msgid id = {0, 0};
    for (int i = 0; i < 8; i++) {
        id.hi = (id.hi << 8) | in[i];
        id.lo = (id.lo << 8) | in[8 + i];
    }
    return id;
}

void msgid_format(struct msgid id, char out[MSGID_TEXT_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(id.hi >> (60 - 4 * i)) & 0xf];
        out[16 + i] = hex[(id.lo >> (60 - 4 * i)) & 0xf];
    }
    out[MSGID_TEXT_LEN] = '\0';
}

static int msgid_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int msgid_parse(const char *text, size_t len, struct msgid *out)
{
    if (text == NULL || len != MSGID_TEXT_LEN)
        return -EINVAL;
    uint64_t w[2] = {0, 0};
    for (size_t i = 0; i < MSGID_TEXT_LEN; i++) {
        int v = msgid_hexval(text[i]);
        if (v < 0)
            return -EINVAL;
        w[i / 16] = (w[i / 16] << 4) | (uint64_t)v;
    }
    out->hi = w[0];
    out->lo = w[1];
    return 0;
}

int msgid_cmp(struct msgid a, struct msgid b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}
