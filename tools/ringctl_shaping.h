/*
 * ringctl_shaping - ringctl's shaping commands (validate-shaping, resolve-shaping)
 *
 * ringctl_shaping_main() runs one of them: argv[0] is the command name. get() is ringctl's HTTP GET
 * to the node's admin API (resolve-shaping without --shaping): 0 with the status and a heap body,
 * or -errno when the node cannot be reached (it has said why on stderr). Exit status as ringctl's.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_SHAPING_H
#define RINGMAIL_TOOLS_RINGCTL_SHAPING_H

#include <stdbool.h>
#include <stddef.h>

typedef int (*ringctl_get_fn)(const char *endpoint, const char *path, int *status, char **body, size_t *len);

/* ringctl_shaping_command - true when name is one of the commands here */
bool ringctl_shaping_command(const char *name);
int ringctl_shaping_main(int argc, char **argv, const char *endpoint, ringctl_get_fn get);

#endif
