/*
 * ringctl_supp - `ringctl suppression add|remove|check|list|import|export`: a client of the admin API's
 * suppression list endpoints (docs/admin-api.md, "Suppression list")
 *
 *   suppression add ADDRESS [--tenant T] [--reason R] [--source S] [--expires UNIX]
 *   suppression remove ADDRESS [--tenant T]
 *   suppression check ADDRESS [--tenant T]        exit 0 when suppressed, 1 when not
 *   suppression list [--limit N] [--after CURSOR]
 *   suppression import FILE [--format csv|jsonl]  (the format from the name's .jsonl/.ndjson, else csv; "-": stdin)
 *   suppression export [--format csv|jsonl]       to stdout
 *
 * import sends the file in pieces of at most RINGCTL_SUPP_CHUNK bytes, cut at line ends (the admin API takes
 * bodies of at most 1 MiB); a header line is kept for the first piece only.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_SUPP_H
#define RINGMAIL_TOOLS_RINGCTL_SUPP_H

#include <stdbool.h>

#define RINGCTL_SUPP_CHUNK (384u << 10)

bool ringctl_supp_command(const char *name);
int ringctl_supp_main(int argc, char **argv, const char *endpoint, bool json);

#endif
