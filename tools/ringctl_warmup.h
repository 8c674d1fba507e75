/*
 * ringctl_warmup - ringctl's warm-up command: `warmup status [--json]`, a client of GET /api/v1/warmup/status
 *
 * ringctl_warmup_main() runs it: argv[0] is "warmup"; `json` (the global --json, or --json after the command)
 * prints the node's document as it came. Exit status as ringctl's (0 ok, 1 the node refused, 2 usage, 3 no
 * node).
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_WARMUP_H
#define RINGMAIL_TOOLS_RINGCTL_WARMUP_H

#include <stdbool.h>

#include "tools/ringctl_shaping.h"

bool ringctl_warmup_command(const char *name);
int ringctl_warmup_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http);

#endif
