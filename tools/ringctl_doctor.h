/*
 * ringctl_doctor - `ringctl doctor [--apply]`: the host checked against a park node's needs
 *
 * ringctl_doctor_main() runs it (argv[0] "doctor"; options in docs/operations.md): sysctls, hugepages
 * for the segment, RLIMIT_NOFILE against max_connections x workers, spool and logs on their own file
 * systems, free space. One line per check with its fix; --json the same as a document. Exit status 0
 * all ok, 1 recommendations, 2 an error (configuration, options, an --apply that failed).
 * --apply writes the keys below their target to SYSCTL_D/90-ringmail.conf (merged with the file's
 * earlier keys, atomically, never lowering a value) and sets them in PROCSYS (hugepages included).
 * PROCSYS (/proc/sys), SYSCTL_D (/etc/sysctl.d) and MEMINFO (/proc/meminfo) can be pointed at a test
 * tree: env RINGCTL_DOCTOR_PROCSYS, RINGCTL_DOCTOR_SYSCTLD, RINGCTL_DOCTOR_MEMINFO.
 *
 * ringctl_doctor_conf_parse() reads a sysctl.d file ("key = value" lines, '#' and ';' comments) and
 * calls fn for each entry; a line it cannot read is reported through fn with key NULL and the line
 * number. Values are borrowed for the call.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_DOCTOR_H
#define RINGMAIL_TOOLS_RINGCTL_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/ringctl_shaping.h"

#define RINGCTL_DOCTOR_FILE "90-ringmail.conf"

typedef void (*ringctl_doctor_conf_fn)(void *ctx, unsigned line, const char *key, const char *value);
void ringctl_doctor_conf_parse(const char *text, size_t len, ringctl_doctor_conf_fn fn, void *ctx);

bool ringctl_doctor_command(const char *name);
int ringctl_doctor_main(int argc, char **argv, const char *endpoint, const char *data_dir, bool json,
                        ringctl_http_fn http);

#endif
