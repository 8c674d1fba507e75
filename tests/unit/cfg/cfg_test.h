/*
 * cfg_test - helpers shared by the cfg test programs (cfg_file_test, cfg_snippet_test,
 * cfg_relay_test, cfg_toml_test): where the test data is, reading a file whole, loading a string
 *
 * Static inline: each program includes this once and uses what it needs.
 */
#ifndef RINGMAIL_TEST_CFG_TEST_H
#define RINGMAIL_TEST_CFG_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/cfg.h"
#include "base/mem.h"

#ifndef RINGMAIL_SOURCE_ROOT
#define RINGMAIL_SOURCE_ROOT "."
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static inline char *data_path(const char *file)
{
    return xasprintf("%s/%s", env_or("RINGMAIL_TEST_DATA", RINGMAIL_SOURCE_ROOT "/tests/unit/cfg/data"), file);
}

static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = xmalloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static inline int load_str(struct cfg *c, const char *text, const char *name, char **err)
{
    return cfg_load_text(c, text, strlen(text), name, err);
}

static inline const char *nz(const char *s)
{
    return s ? s : "(null)";
}

#endif
