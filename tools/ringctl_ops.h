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

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tools/ringctl_shaping.h"

bool ringctl_ops_command(const char *name);
int ringctl_ops_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http);

/* ringctl_ops_fetch - ask the node (method, path); with `json` print its answer as it came and return the exit
 * status; an error answer is printed as "ringctl NAME: error" (exit 1); no node: 3. Else -1 and *doc, the
 * answer's JSON object, for the caller to print (and json_decref) */
int ringctl_ops_fetch(ringctl_http_fn http, const char *endpoint, const char *method, const char *path, bool json,
                      const char *name, json_t **doc);

struct buf;
/* ringctl_ops_query_add - "?key=value" or "&key=value", the value percent-encoded; nothing when v is NULL */
void ringctl_ops_query_add(struct buf *q, const char *key, const char *v);
/* ringctl_ops_num - n with thousands separators ("28,140") */
void ringctl_ops_num(char *buf, size_t len, unsigned long long n);
/* ringctl_ops_age - a duration in ms as operators read it: "5s", "47m", "1h59m", "3h", "2d"; "-" when negative */
void ringctl_ops_age(char *buf, size_t len, long long ms);

/* reading the node's answer member by member, for the other command files (ringctl_inspect.c): a member
 * that is missing or of another type reads "-" (strings) or -1 (numbers) */
const char *ringctl_ops_str(const json_t *o, const char *k);
long long ringctl_ops_int(const json_t *o, const char *k);
/* ringctl_ops_nums / _ages - a member as ringctl_ops_num / ringctl_ops_age print it, into buf */
const char *ringctl_ops_nums(const json_t *o, const char *k, char *buf, size_t len);
const char *ringctl_ops_ages(const json_t *o, const char *k, char *buf, size_t len);
/* ringctl_ops_cut - s in at most w bytes, '~' marking a cut */
const char *ringctl_ops_cut(const char *s, size_t w, char *buf, size_t len);

#endif
