/*
 * policy_lua_meta - the metadata lists hooks read and write (struct policy_lua_meta, policy_lua.h)
 *
 * The same key and value rules hold for C callers (policy_lua_meta_set()) and for scripts
 * (set_meta() in policy_handler.c): values end up in queue names, log records and headers.
 */
#include "policy/policy_int.h"

#include "base/mem.h"
#include "base/utf8.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool policy_lua_meta_key_ok(const char *k, size_t n)
{
    if (n == 0 || n > POLICY_LUA_META_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* values end up in queue names, log records and headers: no control bytes, valid UTF-8 */
bool policy_lua_meta_value_ok(const char *v, size_t n)
{
    if (n > POLICY_LUA_META_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return utf8_valid(v, n);
}

void policy_lua_meta_init(struct policy_lua_meta *m)
{
    memset(m, 0, sizeof(*m));
}

void policy_lua_meta_fini(struct policy_lua_meta *m)
{
    for (unsigned i = 0; i < m->count; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    m->count = 0;
}

static int meta_find(const struct policy_lua_meta *m, const char *key)
{
    for (unsigned i = 0; i < m->count; i++)
        if (strcmp(m->items[i].key, key) == 0)
            return (int)i;
    return -1;
}

const char *policy_lua_meta_get(const struct policy_lua_meta *m, const char *key)
{
    int i = meta_find(m, key);
    return i < 0 ? NULL : m->items[i].value;
}

int policy_lua_meta_set(struct policy_lua_meta *m, const char *key, const char *value, size_t len)
{
    if (!policy_lua_meta_key_ok(key, strlen(key)) || (value && !policy_lua_meta_value_ok(value, len)))
        return -EINVAL;
    int i = meta_find(m, key);
    if (!value) {
        if (i >= 0) {
            free(m->items[i].key);
            free(m->items[i].value);
            memmove(&m->items[i], &m->items[i + 1], (m->count - (unsigned)i - 1) * sizeof(m->items[0]));
            m->count--;
        }
        return 0;
    }
    if (i >= 0) {
        free(m->items[i].value);
        m->items[i].value = xstrndup(value, len);
        return 0;
    }
    if (m->count >= POLICY_LUA_META_MAX)
        return -ENOSPC;
    m->items[m->count].key = xstrdup(key);
    m->items[m->count].value = xstrndup(value, len);
    m->count++;
    return 0;
}

void policy_lua_meta_copy(struct policy_lua_meta *dst, const struct policy_lua_meta *src)
{
    policy_lua_meta_fini(dst);
    for (unsigned i = 0; i < src->count; i++) {
        dst->items[i].key = xstrdup(src->items[i].key);
        dst->items[i].value = xstrdup(src->items[i].value);
    }
    dst->count = src->count;
}
