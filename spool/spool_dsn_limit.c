/*
 * spool_dsn_limit - DSNs per message and per address (spool_dsn_limit.h)
 */
#include "spool/spool_dsn_limit.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

uint32_t spool_dsn_meta(const struct proto_env *rec)
{
    const char *v = proto_env_meta_get(rec, SPOOL_DSN_META);
    if (!v)
        return 0;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return *v >= '0' && *v <= '9' && *end == '\0' && n <= UINT32_MAX ? (uint32_t)n : 0;
}

/* sender_hash - FNV-1a over the address, ASCII letters folded (Bob@X and bob@x are one inbox to a victim) */
static uint64_t sender_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ull;
    }
    return h | 1; /* 0 marks an empty slot */
}

bool spool_dsn_admit(struct spool_dsn_limit *l, const char *sender, uint32_t sent, uint32_t max_per_message,
                     uint32_t max_per_sender, uint64_t window_ns, uint64_t now_ns)
{
    if (max_per_message && sent >= max_per_message) {
        l->suppressed++;
        return false;
    }
    if (!max_per_sender)
        return true;
    if (!l->slots)
        l->slots = xcalloc(SPOOL_DSN_SENDERS, sizeof(*l->slots));
    uint64_t h = sender_hash(sender);
    struct spool_dsn_sender *s = &l->slots[h % SPOOL_DSN_SENDERS];
    if (s->hash == 0 || now_ns - s->window_start_ns >= window_ns || now_ns < s->window_start_ns) {
        /* a new window: the slot's previous owner (if another address) had its window end, or loses it */
        *s = (struct spool_dsn_sender){.hash = h, .window_start_ns = now_ns, .count = 0};
    } else if (s->hash != h) {
        s->hash = h; /* shared slot within a window: the count goes on, stricter for both */
    }
    if (s->count >= max_per_sender) {
        if (s->count == max_per_sender && ++s->count)
            log_warn("DSNs to <%s>: %u in this window already; further DSNs to it are not sent until the window "
                     "ends ([dsn] max_per_sender)", sender, max_per_sender);
        l->suppressed++;
        return false;
    }
    s->count++;
    return true;
}

void spool_dsn_limit_fini(struct spool_dsn_limit *l)
{
    free(l->slots);
    l->slots = NULL;
}
