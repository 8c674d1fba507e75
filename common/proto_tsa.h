/*
 * proto_tsa - the traffic shaping automation's arena payloads, with one encoder and one strict decoder
 * each (proto_tsa.c)
 *
 * Response run (spool -> scheduler, MSG_SPOOL_TSA_RESPONSE): struct proto_tsa_resp_hdr, then the strings
 * in enum proto_tsa_resp_str order, each exactly len[i] bytes. One run per TransientFailure or Bounce
 * attempt (the first failed recipient's reply). The domain is 1.. bytes; every other string may be
 * empty; strings are at most PROTO_TSA_STRING_MAX bytes (the response text PROTO_TSA_TEXT_MAX) and hold
 * no NUL, CR or LF; kind is PROTO_TSA_TRANSIENT or PROTO_TSA_BOUNCE.
 *
 * Event run (scheduler -> spool, MSG_SCHEDULER_TSA_EVENT with one event; spool -> scheduler,
 * MSG_SPOOL_TSA_STATE with up to PROTO_TSA_EVENTS_MAX): struct proto_tsa_events_hdr with the count,
 * then per event a struct proto_tsa_event_hdr, its strings in enum proto_tsa_event_str order, and zero
 * padding to a multiple of 8. An event is one firing of one action of one rule: the rule (scope,
 * file:line), the regex that matched, the response text, the key it applies to (source and site for
 * Suspend / SetConfig; domain and optionally tenant and campaign for the others), the action (kind and,
 * for SetConfig / SetDomainConfig, the option name and its value as JSON text), start and expiry
 * (unix ms, expiry > start) and the count of matches that fired it. Its domain or site is set; action
 * kinds are those of policy/shaping.h (0..7); SetConfig kinds have a name and a value, the others none.
 *
 * As in proto_dlv.h: host order (one node), strings not NUL-terminated on the wire, the decoders copy
 * the run once and decode only the copy; what they return owns one allocation, strings NUL-terminated;
 * the encoders refuse (-EINVAL) what the decoders would refuse.
 */
#ifndef RINGMAIL_PROTO_TSA_H
#define RINGMAIL_PROTO_TSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define PROTO_TSA_RESP_MAGIC 0x50535452u   /* "RTSP" */
#define PROTO_TSA_EVENTS_MAGIC 0x45535452u /* "RTSE" */
#define PROTO_TSA_VERSION 1
#define PROTO_TSA_STRING_MAX 1024 /* names, the regex, the JSON value */
#define PROTO_TSA_TEXT_MAX 1024   /* the response text (cut by the sender) */
#define PROTO_TSA_EVENTS_MAX 256  /* events in one run */
#define PROTO_TSA_ACTION_MAX 7    /* highest action kind (enum shaping_action_kind) */

enum proto_tsa_kind {
    PROTO_TSA_TRANSIENT = 1,
    PROTO_TSA_BOUNCE = 2,
};

enum proto_tsa_resp_str {
    PROTO_TSA_R_DOMAIN = 0,
    PROTO_TSA_R_SITE = 1,
    PROTO_TSA_R_SOURCE = 2,
    PROTO_TSA_R_TENANT = 3,
    PROTO_TSA_R_CAMPAIGN = 4,
    PROTO_TSA_R_TEXT = 5, /* "421 4.7.0 [TS04] ..." as the receiver said it */
    PROTO_TSA_R_STRINGS = 6,
};

struct proto_tsa_resp_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t kind; /* enum proto_tsa_kind */
    int64_t timestamp_ms;
    uint16_t len[PROTO_TSA_R_STRINGS];
    uint32_t reserved;
};

enum proto_tsa_event_str {
    PROTO_TSA_E_SCOPE = 0,    /* the rule's block: "default", "provider:NAME", "domain:NAME"... */
    PROTO_TSA_E_FILE = 1,     /* the rule's file */
    PROTO_TSA_E_REGEX = 2,    /* the regex that matched */
    PROTO_TSA_E_RESPONSE = 3, /* the response text that fired it */
    PROTO_TSA_E_SOURCE = 4,   /* key: egress source (Suspend, SetConfig) */
    PROTO_TSA_E_SITE = 5,     /* key: site (Suspend, SetConfig) */
    PROTO_TSA_E_DOMAIN = 6,   /* key: domain (SetDomainConfig, Suspend/Bounce Tenant/Campaign, Bounce) */
    PROTO_TSA_E_TENANT = 7,
    PROTO_TSA_E_CAMPAIGN = 8,
    PROTO_TSA_E_NAME = 9,     /* SetConfig / SetDomainConfig: the option */
    PROTO_TSA_E_VALUE = 10,   /* ... and its value, JSON text */
    PROTO_TSA_E_STRINGS = 11,
};

struct proto_tsa_events_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t reserved;
    uint32_t count;
    uint32_t reserved2;
};

struct proto_tsa_event_hdr {
    int64_t start_ms;
    int64_t expiry_ms;
    uint32_t line;  /* the rule's line in its file */
    uint32_t count; /* matches that fired it (1 for Immediate) */
    uint16_t action; /* enum shaping_action_kind */
    uint16_t len[PROTO_TSA_E_STRINGS];
};

_Static_assert(sizeof(struct proto_tsa_resp_hdr) == 32, "proto_tsa_resp_hdr size");
_Static_assert(sizeof(struct proto_tsa_events_hdr) == 16, "proto_tsa_events_hdr size");
_Static_assert(sizeof(struct proto_tsa_event_hdr) == 48, "proto_tsa_event_hdr size");

/* a response in memory: hdr.len[i] are the strings' lengths */
struct proto_tsa_resp {
    struct proto_tsa_resp_hdr hdr;
    const char *str[PROTO_TSA_R_STRINGS];
    void *_mem;
};

struct proto_tsa_event {
    struct proto_tsa_event_hdr hdr; /* len[i]: bytes of str[i] */
    const char *str[PROTO_TSA_E_STRINGS];
};

struct proto_tsa_events {
    uint32_t count;
    struct proto_tsa_event *ev;
    void *_mem;
};

/* proto_tsa_resp_encode - the run of r into b (replaced); -EINVAL when the decoder would refuse it */
int proto_tsa_resp_encode(const struct proto_tsa_resp *r, struct buf *b);
/* proto_tsa_resp_decode - 0, or -EBADMSG with *why (static); on error *out is empty */
int proto_tsa_resp_decode(const void *run, size_t len, struct proto_tsa_resp *out, const char **why);
void proto_tsa_resp_fini(struct proto_tsa_resp *r);

/* proto_tsa_events_begin - replaces b's content with the header of an empty run */
void proto_tsa_events_begin(struct buf *b);
/* proto_tsa_events_append - one more event (the header counts it); -EINVAL (b unchanged) when the
 * decoder would refuse it or the run holds PROTO_TSA_EVENTS_MAX already */
int proto_tsa_events_append(struct buf *b, const struct proto_tsa_event *e);
/* proto_tsa_events_count - events in a begun run */
uint32_t proto_tsa_events_count(const struct buf *b);
int proto_tsa_events_decode(const void *run, size_t len, struct proto_tsa_events *out, const char **why);
void proto_tsa_events_fini(struct proto_tsa_events *e);

/* proto_tsa_event_set - e->str[i] = s and its length (NULL: ""), cut at the string maximum */
void proto_tsa_event_set(struct proto_tsa_event *e, enum proto_tsa_event_str i, const char *s);
/* proto_tsa_resp_set - the same for a response (the text cut at PROTO_TSA_TEXT_MAX) */
void proto_tsa_resp_set(struct proto_tsa_resp *r, enum proto_tsa_resp_str i, const char *s);

#endif
