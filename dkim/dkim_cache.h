/*
 * dkim_cache - the signature fields made for recent messages, by message id (one per egress worker)
 *
 * A retry of a message on the same worker finds its DKIM-Signature fields here and does not hash
 * the body again. Bounded: at most `cap` entries, the least recently used one goes first. An
 * entry stops being found once its `valid_until` (seconds, the earliest x= of its signatures) has
 * passed. dkim_cache_clear() forgets everything (the signers changed at a reload).
 * Stored bytes are copied in; dkim_cache_get() borrows them until the next put or clear.
 */
#ifndef RINGMAIL_DKIM_CACHE_H
#define RINGMAIL_DKIM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define DKIM_CACHE_DEFAULT 4096

struct dkim_cache_entry;

struct dkim_cache {
    size_t cap, n, n_buckets;
    struct dkim_cache_entry **buckets;
    struct dkim_cache_entry *head, *tail; /* most recently used first */
    uint64_t hits, misses;
};

void dkim_cache_init(struct dkim_cache *c, size_t cap);
void dkim_cache_fini(struct dkim_cache *c);
void dkim_cache_clear(struct dkim_cache *c);
/* dkim_cache_get - the stored bytes, or NULL (not there, or expired at `now`) */
const char *dkim_cache_get(struct dkim_cache *c, uint64_t id_hi, uint64_t id_lo, int64_t now, size_t *len);
/* dkim_cache_put - store (replacing an entry of the same id); valid_until 0: no expiry */
void dkim_cache_put(struct dkim_cache *c, uint64_t id_hi, uint64_t id_lo, const char *p, size_t len,
                    int64_t valid_until);

#endif
