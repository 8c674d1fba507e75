/*
 * ringctl_cfg - the node configuration for ringctl's offline commands (see ringctl_cfg.h)
 */
#include "tools/ringctl_cfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

int ringctl_cfg_load(const char *path, const char *data_dir, struct cfg *out, const char **used, char **err)
{
    *err = NULL;
    cfg_default(out);
    if (!path || !path[0])
        path = getenv("RINGCTL_CONFIG");
    if ((!path || !path[0]) && access(RINGCTL_CFG_SYSTEM, R_OK) == 0)
        path = RINGCTL_CFG_SYSTEM;
    *used = path && path[0] ? path : "embedded default";
    if (path && path[0]) {
        int rc = cfg_load_file(out, path, err);
        if (rc < 0) {
            if (!*err)
                *err = xasprintf("%s: %s", path, strerror(-rc));
            return rc;
        }
    }
    if (data_dir && data_dir[0]) {
        free(out->data_dir);
        out->data_dir = xstrdup(data_dir);
    }
    return 0;
}

char *ringctl_cfg_dir(const struct cfg *c, const char *configured, const char *name)
{
    return configured && configured[0] ? xstrdup(configured) : xasprintf("%s/%s", c->data_dir, name);
}
