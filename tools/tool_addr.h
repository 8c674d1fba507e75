/*
 * tool_addr - "host:port" / "[v6]:port" on the command lines of ringmail-gen and ringmail-sink
 */
#ifndef RINGMAIL_TOOL_ADDR_H
#define RINGMAIL_TOOL_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

/*
 * tool_addr_resolve - the first address of `text` (numeric port; `passive` for a listener) into addr;
 * *host_out (may be NULL) gets the host part (heap). 0, or -EINVAL with *err ("what" names the option).
 */
int tool_addr_resolve(const char *text, bool passive, const char *what, struct sockaddr_storage *addr,
                      socklen_t *len, char **host_out, char **err);

#endif
