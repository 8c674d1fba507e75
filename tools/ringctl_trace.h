/*
 * ringctl_trace - ringctl trace-smtp-server [--peer CIDR] and trace-smtp-client [--domain D] [--site S]
 * [--source S]: a live transcript of the matching SMTP sessions, streamed from the admin API
 * (GET /api/v1/trace/smtp-server|smtp-client, docs/admin-api.md "SMTP trace") until Ctrl-C.
 *
 * ringctl_trace_main() runs one: argv[0] is the command name; `json` (the global --json) prints each
 * event as the node sent it, one per line. Human form: one line per event, "time session peer dir
 * text", controls escaped, long text cut, colour only on a terminal (and not with NO_COLOR).
 * Exit status: 0 after Ctrl-C or the node ending the trace, 1 when the node refused, 2 usage, 3 no node.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_TRACE_H
#define RINGMAIL_TOOLS_RINGCTL_TRACE_H

#include <stdbool.h>
#include <stddef.h>

bool ringctl_trace_command(const char *name);
int ringctl_trace_main(int argc, char **argv, const char *endpoint, bool json);
/* ringctl_trace_format - one event (a JSON line) as the human form prints it, into out; false when the
 * line is not an event (the start line, a keep-alive, not JSON) */
bool ringctl_trace_format(const char *line, size_t len, bool colour, char *out, size_t cap);

#endif
