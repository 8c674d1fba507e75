/*
 * supervisor_logs - GET /api/v1/logs: the message log, newest last, filtered, optionally followed live
 * (`ringctl tail-log`; docs/admin-api.md, "Message log")
 *
 * supervisor_logs_start() starts the reader thread; supervisor_logs_request() answers one request from
 * the admin thread without reading any file there (the reader thread does, and hands the lines over);
 * supervisor_logs_shutdown() ends every stream (before the admin daemons stop: a suspended connection
 * must be resumed first), supervisor_logs_stop() joins the thread and frees what is left (after).
 */
#ifndef RINGMAIL_SUPERVISOR_LOGS_H
#define RINGMAIL_SUPERVISOR_LOGS_H

#include <microhttpd.h>

#define SUPERVISOR_LOGS_MAX_FOLLOWERS 16u /* concurrent `--follow` streams */
#define SUPERVISOR_LOGS_MAX_JOBS 64u      /* streams of any kind at one time */
#define SUPERVISOR_LOGS_LIMIT_DEFAULT 20u
#define SUPERVISOR_LOGS_LIMIT_MAX 10000u

struct supervisor;

void supervisor_logs_start(struct supervisor *s);
enum MHD_Result supervisor_logs_request(struct supervisor *s, struct MHD_Connection *c);
void supervisor_logs_shutdown(struct supervisor *s);
void supervisor_logs_stop(struct supervisor *s);

#endif
