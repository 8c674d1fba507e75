/*
 * ringctl_ops - ringctl's live-operations commands: queue-summary, provider-summary, suspend, suspend-list,
 * suspend-cancel, suspend-ready-q (and -list, -cancel), bounce (and -list, -cancel), inspect-sched-q,
 * inspect-ready-q. Each is a thin client of one admin API endpoint (docs/admin-api.md, "Live operations").
 *
 * ringctl_ops_main() runs one: argv[0] is the command name; `json` (the global --json) prints the node's
 * document as it came. Exit status as ringctl's.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_OPS_H
#define RINGMAIL_TOOLS_RINGCTL_OPS_H

#include <stdbool.h>

#include "tools/ringctl_shaping.h"

bool ringctl_ops_command(const char *name);
int ringctl_ops_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http);

/* ringctl_ops_num - n with thousands separators ("28,140") */
void ringctl_ops_num(char *buf, size_t len, unsigned long long n);
/* ringctl_ops_age - a duration in ms as operators read it: "5s", "47m", "1h59m", "3h", "2d"; "-" when negative */
void ringctl_ops_age(char *buf, size_t len, long long ms);

#endif
