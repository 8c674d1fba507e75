/*
 * shaping_test - what the shaping unit tests share: shaping text written to a temporary file under a
 * given name (the loader picks TOML or JSON by the name), and the path of KumoMTA's shipped files
 * (RINGMAIL_SHARED_DATA, set by meson to ../shared/data of the source tree; never copied in).
 * Include after tests/lib/check.h, from one file per test program.
 */
#ifndef RINGMAIL_TEST_SHAPING_TEST_H
#define RINGMAIL_TEST_SHAPING_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "policy/shaping.h"

/* st_write - text into a fresh directory's file `name`; the heap path */
static inline char *st_write(const char *name, const char *text)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "/tmp/shaping-test-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    return path;
}

/* st_shared - a file of KumoMTA's shipped set; SKIP when the shared data is not there */
static inline char *st_shared(const char *name)
{
    const char *dir = getenv("RINGMAIL_SHARED_DATA");
    char *path = xasprintf("%s/%s", dir ? dir : "../shared/data", name);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s not readable (RINGMAIL_SHARED_DATA)\n", path);
        exit(77);
    }
    return path;
}

/* st_load - files (NULL-terminated) loaded; diagnostics into *d */
static inline struct shaping *st_load(struct shaping_diags *d, const char *first, ...)
{
    const char *files[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *f = first; f && n < 8; f = va_arg(ap, const char *))
        files[n++] = f;
    va_end(ap);
    memset(d, 0, sizeof(*d));
    return shaping_load(files, n, d);
}

/* st_text - one TOML text as a file named `name`, loaded */
static inline struct shaping *st_text(struct shaping_diags *d, const char *name, const char *text)
{
    char *path = st_write(name, text);
    struct shaping *sh = st_load(d, path, NULL);
    free(path);
    return sh;
}

#endif
