/*
 * shaping_node - the node's shaping: [shaping] files (or the built-in file) plus the override file
 *
 * shaping_node_load() - NULL with errors in *diags when a file is bad; warnings in *diags either way.
 * shaping_node_override_path() - "<data_dir>/shaping-override.json" (heap), written by set-shaping.
 */
#ifndef RINGMAIL_POLICY_SHAPING_NODE_H
#define RINGMAIL_POLICY_SHAPING_NODE_H

#include "cfg/cfg.h"
#include "policy/shaping.h"

struct shaping *shaping_node_load(const struct cfg *c, struct shaping_diags *diags);
char *shaping_node_override_path(const struct cfg *c);

#endif
