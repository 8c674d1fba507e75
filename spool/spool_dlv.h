/*
 * spool_dlv - the spool's delivery rules, free of processes and disks (so they are unit-tested)
 *
 * A recipient's "domain group" is named by the index of any recipient in it (rcpt_first on the
 * rings): every recipient whose lower-cased domain equals that recipient's. Addresses never change,
 * so the group stays the same while its recipients become final.
 *
 * spool_dlv_queue_name() builds KumoMTA's scheduled queue name (docs.kumomta.com/reference/queues):
 * the metadata `queue` when set (policy), else [campaign:][tenant]@domain[!routing_domain] with
 * the rule for missing parts: campaign and tenant "c:t@d", only tenant "t@d", only campaign "c:@d",
 * neither "d"; routing_domain (metadata) adds "!routing_domain"; an operator's rebind to hosts (metadata
 * route) adds "!route:HOSTS" instead, also to a `queue` name. CR, LF and NUL become spaces and
 * the name is cut at PROTO_DLV_STRING_MAX bytes, because the name travels in proto_dlv runs.
 *
 * spool_dlv_ann_append() encodes the proto_ann entry (proto_dlv.h) of one message into a begun batch:
 * its queued recipients grouped by domain, in order of first appearance; a message with more than
 * PROTO_ANN_MAX_DOMAINS groups gets several entries (the contract caps n_dom). A group whose queue
 * name or domain may not travel (proto_dlv_ann_name_ok: empty, a space or a control byte) is left
 * out and counted in *refused, so it cannot make the scheduler refuse the whole batch. Returns the
 * number of entries appended: 0 when no recipient is queued.
 *
 * spool_dlv_attempt_indexes() checks the indexes of a decoded attempt result (proto_dlv_attempt_decode)
 * against the envelope's rcpt_count once the envelope is read.
 * spool_dlv_apply() applies one recipient's outcome to a decoded envelope: never changes a final
 * recipient (returns 0: a duplicate), else attempts + 1 and the new state (returns 1).
 * spool_dlv_fail() turns the queued recipients of a domain group into `state` (EXPIRED, BOUNCED),
 * marking each changed index in mark[] (rcpt_count bytes) when given; returns how many changed.
 */
#ifndef RINGMAIL_SPOOL_DLV_H
#define RINGMAIL_SPOOL_DLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msgid.h"
#include "common/proto_dlv.h"
#include "common/proto_env.h"

/* a synthesised reply, for expirations and DNS bounces */
struct spool_dlv_reply {
    int code;
    uint8_t enh_class;
    uint16_t enh_subject, enh_detail;
    const char *text;
};

/* spool_dlv_domain - the lower-cased domain of addr into out (after the last '@', without a trailing dot;
 * "" without one) */
void spool_dlv_domain(const char *addr, char *out, size_t cap);
/* spool_dlv_same_domain - are both addresses in one domain group */
bool spool_dlv_same_domain(const char *a, const char *b);
/* spool_dlv_queue_name - for the recipient domain `domain`; heap string */
char *spool_dlv_queue_name(const struct proto_env *rec, const char *domain);
/* the routing domain of a message rebound to hosts (metadata `route`): "route:HOSTS" (sched_rebind.c) */
#define SPOOL_DLV_ROUTE_PREFIX "route:"
/* spool_dlv_routing_domain - "route:" and metadata route, else metadata routing_domain (lower-cased), else
 * domain; heap string */
char *spool_dlv_routing_domain(const struct proto_env *rec, const char *domain);

/* spool_dlv_group - queued recipients and their max attempts in the group of rcpt_first */
uint32_t spool_dlv_group(const struct proto_env *rec, uint32_t rcpt_first, uint32_t *max_attempts);

size_t spool_dlv_ann_append(struct buf *b, struct msgid id, const struct proto_env *rec, uint32_t *refused);

/* spool_dlv_attempt_indexes - 0, or -ERANGE when an index or rcpt_first is past the envelope */
int spool_dlv_attempt_indexes(const struct proto_attempt *a, uint32_t rcpt_count);

int spool_dlv_apply(struct proto_env *rec, uint32_t index, uint8_t outcome);
uint32_t spool_dlv_fail(struct proto_env *rec, uint32_t rcpt_first, uint8_t state, uint8_t *mark);

/* spool_dlv_dns_reply - the Bounce reply for a DNS bounce's reason (enum proto_fail_reason) */
void spool_dlv_dns_reply(unsigned reason, struct spool_dlv_reply *out);
/* spool_dlv_expire_reply - the Expiration reply */
void spool_dlv_expire_reply(struct spool_dlv_reply *out);
/* spool_dlv_admin_reply - the AdminBounce reply (PROTO_FAIL_ADMIN_BOUNCE): of an operator's bounce (reason
 * PROTO_FAIL_REASON_OPERATOR), else of a TSA Bounce action */
void spool_dlv_admin_reply(uint16_t reason, struct spool_dlv_reply *out);
/* spool_dlv_wants_dsn - a DSN is sent for a failure of this sender's message */
bool spool_dlv_wants_dsn(bool dsn_enabled, const char *sender);
/* spool_dlv_command_name - the log's response.command for enum proto_attempt_cmd (NULL: none) */
const char *spool_dlv_command_name(uint16_t cmd);

#endif
