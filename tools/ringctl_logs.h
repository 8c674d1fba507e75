/*
 * ringctl_logs - `ringctl tail-log [--follow] [--type T] [--domain D] [--queue Q] [--limit N] [--json]`: the
 * message log, newest last, filtered by the node (GET /api/v1/logs, docs/admin-api.md "Message log")
 *
 * ringctl_logs_main() runs it: argv[0] is the command name; `json` (the global --json, or --json after
 * the command) prints each record as the log holds it, one per line. Otherwise one line per record, at
 * most 100 columns: time (UTC), type, recipient, site or queue, the response shortened. --follow goes
 * on with new records until the node ends the stream or Ctrl-C (exit 0). Exit status as ringctl's.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_LOGS_H
#define RINGMAIL_TOOLS_RINGCTL_LOGS_H

#include <stdbool.h>
#include <stddef.h>

bool ringctl_logs_command(const char *name);
int ringctl_logs_main(int argc, char **argv, const char *endpoint, bool json);
/* ringctl_logs_format - one record (a JSON object's text) as the human line, without newline, into buf */
void ringctl_logs_format(const char *line, size_t len, bool colour, char *buf, size_t cap);

#endif
