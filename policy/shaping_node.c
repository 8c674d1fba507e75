/*
 * shaping_node - the shaping a node runs on: its configuration's files and the operator's override
 *
 * shaping_node_load() loads `[shaping] files` in order (or the built-in file when none is set), then
 * the override file `ringctl set-shaping` writes (shaping_node_override_path()) when it exists, merged
 * last so that an operator's set-shaping wins over every file. The supervisor calls it to validate a
 * configuration before a reload and to answer resolve requests; the scheduler to run on it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "policy/shaping_node.h"

char *shaping_node_override_path(const struct cfg *c)
{
    return xasprintf("%s/shaping-override.json", c->data_dir);
}

struct shaping *shaping_node_load(const struct cfg *c, struct shaping_diags *diags)
{
    char *override = shaping_node_override_path(c);
    bool has_override = access(override, F_OK) == 0;
    struct shaping *sh;

    if (c->n_shaping_files == 0 && !has_override) {
        free(override);
        return shaping_load_default(diags);
    }
    size_t n = 0;
    const char **files = xcalloc(c->n_shaping_files + 2, sizeof(*files));
    for (size_t i = 0; i < c->n_shaping_files; i++)
        files[n++] = c->shaping_files[i];
    if (has_override)
        files[n++] = override;
    if (c->n_shaping_files == 0) {
        /* the override sits on top of the built-in file, never instead of it */
        sh = shaping_load_default_with(files, n, diags);
    } else {
        sh = shaping_load(files, n, diags);
    }
    free(files);
    free(override);
    return sh;
}
