/*
 * sched_name - the scheduler core's hash tables of named objects (queues, domains, sites)
 *
 * Open addressing with linear probing, at most 3/4 full, deletion by backward shift so there are
 * no tombstones; the message table (sched_msg.c) is built the same way, keyed by message id, and
 * shares the hash mixer and the backward shift from here. Every named object embeds a struct
 * sched_name first, so a table slot is the object. Tables do not own the objects' memory except
 * in sched_name_free_all(), which frees every object (a plain malloc'd block) and its name.
 */
#ifndef RINGMAIL_SCHED_NAME_H
#define RINGMAIL_SCHED_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the hash tables' key: embedded first in every named object */
struct sched_name {
    char *name;
    uint64_t hash;
};

struct sched_name_table {
    struct sched_name **slots;
    size_t cap, count;
};

static inline uint64_t sched_name_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

/* sched_name_given - a name part is set: not NULL and not empty */
static inline bool sched_name_given(const char *s)
{
    return s && *s;
}

/* backward-shift deletion keeps every probe chain unbroken without tombstones */
#define SCHED_BACKSHIFT(slots, cap, i, home_of) do { \
    size_t hole_ = (i), j_ = (i); \
    for (;;) { \
        j_ = (j_ + 1) & ((cap) - 1); \
        if (!(slots)[j_]) \
            break; \
        size_t home_ = home_of((slots)[j_]) & ((cap) - 1); \
        if (((j_ - home_) & ((cap) - 1)) >= ((j_ - hole_) & ((cap) - 1))) { \
            (slots)[hole_] = (slots)[j_]; \
            hole_ = j_; \
        } \
    } \
    (slots)[hole_] = NULL; \
} while (0)

uint64_t sched_name_hash(const char *s);
void sched_name_add(struct sched_name_table *t, struct sched_name *n);
struct sched_name *sched_name_find(const struct sched_name_table *t, const char *name, uint64_t h);
void sched_name_del(struct sched_name_table *t, struct sched_name *n);
/* sched_name_free_all - free every object in the table, its name and the slots */
void sched_name_free_all(struct sched_name_table *t);
/* sched_name_lower_dup - a lowercased copy (the caller frees it) */
char *sched_name_lower_dup(const char *s);
/* sched_name_append - copy s (lowercased when asked) at *pos; false when it does not fit */
bool sched_name_append(char *out, size_t size, size_t *pos, const char *s, bool lower);

#endif
