/*
 * ringctl_cfg - the node configuration that ringctl's offline commands (doctor, capacity) read
 *
 * ringctl_cfg_load() fills *out as ringmaild would: the file given (--config, env RINGCTL_CONFIG), else
 * /etc/ringmail/ringmail.toml when it exists, else the embedded default; data_dir (non-NULL) overrides
 * [node] data_dir as ringmaild's --data-dir does. *used names what was read ("embedded default" or the
 * path; static or the caller's string). 0, or -errno / -EINVAL with *err (heap) saying why.
 * ringctl_cfg_dir() is the directory a role uses: the configured one, else DATA_DIR/NAME (heap).
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_CFG_H
#define RINGMAIL_TOOLS_RINGCTL_CFG_H

#include "cfg/cfg.h"

#define RINGCTL_CFG_SYSTEM "/etc/ringmail/ringmail.toml"

int ringctl_cfg_load(const char *path, const char *data_dir, struct cfg *out, const char **used, char **err);
char *ringctl_cfg_dir(const struct cfg *c, const char *configured, const char *name);

#endif
