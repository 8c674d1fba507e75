/*
 * ringctl_shaping - ringctl's shaping commands (validate-shaping, resolve-shaping, set-shaping)
 *
 * ringctl_shaping_main() runs one of them: argv[0] is the command name. http() is ringctl's HTTP call
 * to the node's admin API (resolve-shaping without --shaping, set-shaping): 0 with the status and a heap body,
 * or -errno when the node cannot be reached (it has said why on stderr). Exit status as ringctl's.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_SHAPING_H
#define RINGMAIL_TOOLS_RINGCTL_SHAPING_H

#include <stdbool.h>
#include <stddef.h>

typedef int (*ringctl_http_fn)(const char *endpoint, const char *method, const char *path, int *status, char **body,
                               size_t *len);

/* ringctl_shaping_command - true when name is one of the commands here */
bool ringctl_shaping_command(const char *name);
int ringctl_shaping_main(int argc, char **argv, const char *endpoint, ringctl_http_fn http);

#endif
