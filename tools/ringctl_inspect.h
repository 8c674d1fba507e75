/*
 * ringctl_inspect - ringctl's inspect-message ID [--body] and spool-compact [--status | --no-wait]: thin
 * clients of GET /api/v1/inspect-message and POST/GET /api/v1/spool-compact (docs/admin-api.md)
 *
 * ringctl_inspect_main() runs one: argv[0] is the command name; `json` (the global --json) prints the node's
 * documents as they came. Exit status as ringctl's: 0, 1 (the node refused or the compaction failed),
 * 2 (usage), 3 (no node).
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_INSPECT_H
#define RINGMAIL_TOOLS_RINGCTL_INSPECT_H

#include <stdbool.h>

#include "tools/ringctl_shaping.h"

bool ringctl_inspect_command(const char *name);
int ringctl_inspect_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http);

#endif
