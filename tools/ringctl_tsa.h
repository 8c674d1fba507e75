/*
 * ringctl_tsa - ringctl's traffic shaping automation commands: tsa-status and tsa-history
 *
 * ringctl_tsa_path() turns the command and its options (tsa-status [--domain D] [--site S];
 * tsa-history takes none) into the admin API path; ringctl_tsa_print() prints the served tsa document
 * (common/proto_status.h) for people: one line per effect or firing,
 *   SUSPEND egress1->mx.example active 47m remaining · trigger: 421 4.7.0 ... · count 3 · rule FILE:LINE
 */
#ifndef RINGMAIL_RINGCTL_TSA_H
#define RINGMAIL_RINGCTL_TSA_H

#include <stdbool.h>
#include <stddef.h>

#include "common/proto_status.h"

/* ringctl_tsa_path - 0 with path set, -EINVAL (bad arguments: print usage); domain, site NULL: not given */
int ringctl_tsa_path(const char *cmd, const char *domain, const char *site, char *path, size_t cap);
void ringctl_tsa_print(const struct proto_status_tsa *t, bool history);

#endif
