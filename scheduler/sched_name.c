/*
 * sched_name - hash tables of named objects (contract in sched_name.h)
 */
#include "scheduler/sched_name.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

uint64_t sched_name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return sched_name_mix64(h);
}

char *sched_name_lower_dup(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static void insert_slot(struct sched_name_table *t, struct sched_name *n)
{
    size_t i = n->hash & (t->cap - 1);
    while (t->slots[i])
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = n;
}

void sched_name_add(struct sched_name_table *t, struct sched_name *n)
{
    if ((t->count + 1) * 4 > t->cap * 3) {
        struct sched_name **old = t->slots;
        size_t oldcap = t->cap;
        t->cap = oldcap ? oldcap * 2 : 64;
        t->slots = xcalloc(t->cap, sizeof(*t->slots));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                insert_slot(t, old[i]);
        free(old);
    }
    insert_slot(t, n);
    t->count++;
}

struct sched_name *sched_name_find(const struct sched_name_table *t, const char *name, uint64_t h)
{
    if (!t->cap)
        return NULL;
    for (size_t i = h & (t->cap - 1); t->slots[i]; i = (i + 1) & (t->cap - 1))
        if (t->slots[i]->hash == h && strcmp(t->slots[i]->name, name) == 0)
            return t->slots[i];
    return NULL;
}

#define NAME_HOME(n) ((n)->hash)

void sched_name_del(struct sched_name_table *t, struct sched_name *n)
{
    size_t i = n->hash & (t->cap - 1);
    while (t->slots[i] != n)
        i = (i + 1) & (t->cap - 1);
    SCHED_BACKSHIFT(t->slots, t->cap, i, NAME_HOME);
    t->count--;
}

void sched_name_free_all(struct sched_name_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            free(t->slots[i]->name);
            free(t->slots[i]);
        }
    free(t->slots);
}

bool sched_name_append(char *out, size_t size, size_t *pos, const char *s, bool lower)
{
    for (; *s; s++) {
        if (*pos + 1 >= size)
            return false;
        out[(*pos)++] = lower ? (char)tolower((unsigned char)*s) : *s;
    }
    out[*pos] = '\0';
    return true;
}
