/*
 * proto_admin - the command channel from the supervisor to the scheduler: one request and one reply
 * document, each with one encoder and one strict decoder (proto_admin.c)
 *
 * The supervisor's admin thread writes a request into the PROTO_NODE_STATUS_ADMIN_REQ page and rings
 * the scheduler's doorbell; the scheduler copies the page, decodes the copy, acts, and writes the reply
 * into the PROTO_NODE_STATUS_ADMIN_REPLY page; the supervisor copies that page until the reply carries
 * its request's id, or gives up at the deadline (HTTP 504). Neither trusts the other: each side decodes
 * a copy with the decoder below before it uses a byte of it. Schema: docs/admin-api.md ("Command
 * channel").
 *
 * Request: {"id": N, "op": NAME, "deadline_ms": unix ms, "who": TEXT, "args": {...}}; args members are
 * those of struct proto_admin_args (strings at most PROTO_ADMIN_STR_MAX bytes, UTF-8 without control
 * characters; numbers whole and >= 0; "message" exactly a message id, common/msgid.h); members it does not name are refused (a request is the
 * supervisor's own, never older or newer than the scheduler of the same build).
 * Reply: {"id": N, "status": HTTP code 200..599, "error": TEXT (when status is not 200), "result":
 * {...} (when it is)}; the result is checked for the members its op promises (proto_admin_reply_decode),
 * and bounded: at most PROTO_ADMIN_DEPTH deep, strings at most PROTO_STATUS_TEXT_MAX bytes.
 */
#ifndef RINGMAIL_PROTO_ADMIN_H
#define RINGMAIL_PROTO_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_ADMIN_STR_MAX 1024  /* names and reasons in a request */
#define PROTO_ADMIN_DEPTH 6       /* nesting of a reply's result */
#define PROTO_ADMIN_ROWS_MAX 5000 /* rows of any array in a result */
#define PROTO_ADMIN_SAMPLE 10     /* messages shown by the inspect ops */
#define PROTO_ADMIN_BODY_MAX (512u << 10) /* body bytes an inspect shows (base64 in the page: 683 KiB) */
#define PROTO_ADMIN_BODY_CHUNK 3072u      /* body bytes per base64 string (4096 characters) */
#define PROTO_ADMIN_RCPTS_MAX 1000        /* recipients an inspect lists */

enum proto_admin_op {
    PROTO_ADMIN_QUEUE_SUMMARY = 0,
    PROTO_ADMIN_SUSPEND,          /* domain [tenant] [campaign] */
    PROTO_ADMIN_SUSPEND_LIST,
    PROTO_ADMIN_SUSPEND_CANCEL,   /* target */
    PROTO_ADMIN_SUSPEND_PATH,     /* name SOURCE->SITE */
    PROTO_ADMIN_SUSPEND_PATH_LIST,
    PROTO_ADMIN_SUSPEND_PATH_CANCEL,
    PROTO_ADMIN_BOUNCE,           /* domain | tenant | campaign | queue | everything */
    PROTO_ADMIN_BOUNCE_LIST,
    PROTO_ADMIN_BOUNCE_CANCEL,
    PROTO_ADMIN_INSPECT_QUEUE,    /* name */
    PROTO_ADMIN_INSPECT_PATH,     /* name SOURCE->SITE */
    /* inspect-message and spool-compact (supervisor_inspect.c); the spool's ops travel in its own page pair */
    PROTO_ADMIN_INSPECT_MESSAGE,  /* scheduler: message [limit: recipients the spool holds] */
    PROTO_ADMIN_SPOOL_INSPECT,    /* spool: message [body] */
    PROTO_ADMIN_SPOOL_COMPACT,    /* spool: start a flush and full compaction */
    PROTO_ADMIN_SPOOL_COMPACT_STATUS, /* spool: the compaction's progress */
    PROTO_ADMIN_REBIND,           /* domain [tenant] [campaign] | queue; to_queue | to_route; reason */
    PROTO_ADMIN_ABORT_PATH_CONN,  /* name SOURCE->SITE */
    PROTO_ADMIN_WARMUP_STATUS,    /* warm-up ramps: each warming source's step per provider */
    /* the suppression list (spool/spool_supp.c, the spool's page pair) */
    PROTO_ADMIN_SUPP_CHECK,       /* address [tenant] */
    PROTO_ADMIN_SUPP_LIST,        /* [limit] [after: "TENANT/ADDRESS" of the last entry seen] */
    PROTO_ADMIN_SUPP_ADD,         /* address [tenant] [reason] [source] [expires] */
    PROTO_ADMIN_SUPP_REMOVE,      /* address [tenant] */
    PROTO_ADMIN_SUPP_IMPORT,      /* entries: objects as common/supp.h's JSON form */
    PROTO_ADMIN_OP__MAX,
};

struct proto_admin_args {
    const char *domain, *tenant, *campaign, *queue, *name, *reason; /* NULL: absent */
    const char *by;     /* queue-summary: "site", "provider", "source"; NULL: per path */
    bool by_volume;     /* queue-summary: largest Q first (else by name) */
    bool everything;    /* bounce: every message */
    const char *message; /* inspect: a message id (msgid text, checked by the decoder); NULL: absent */
    bool body;           /* spool inspect: with the body */
    uint64_t duration_ms, limit, target; /* 0: absent */
    const char *to_queue, *to_route; /* rebind: the new scheduled queue, or the new hosts; NULL: absent */
    const char *address, *after, *source; /* suppression ops; NULL: absent */
    uint64_t expires;                     /* suppression-add: unix seconds; 0: never */
    const void *entries; /* suppression-import: a json_t array (at most PROTO_ADMIN_ROWS_MAX objects whose members
                          * are bounded texts or whole numbers; checked as entries by the spool); NULL: absent */
};

struct proto_admin_req {
    uint64_t id;
    enum proto_admin_op op;
    uint64_t deadline_ms; /* unix ms: the supervisor stops waiting then; a later reply is not read */
    const char *who;      /* the client, for the record ("127.0.0.1:40312") */
    struct proto_admin_args args;
    void *tree;
};

struct proto_admin_reply {
    uint64_t id;
    unsigned status; /* HTTP code */
    const char *error; /* status != 200 */
    void *result;      /* json_t object, status 200; owned by tree */
    void *tree;
};

const char *proto_admin_op_name(enum proto_admin_op op);
/* proto_admin_op_spool - the op is the spool's (its page pair), not the scheduler's */
bool proto_admin_op_spool(enum proto_admin_op op);
/* proto_admin_op_parse - false when name is no op */
bool proto_admin_op_parse(const char *name, enum proto_admin_op *out);

/* proto_admin_req_encode - the request's text (heap), or NULL when a string is not valid for the decoder */
char *proto_admin_req_encode(const struct proto_admin_req *r);
/* proto_admin_req_decode - 0, or -EPROTO with *err (heap); strings point into r->tree */
int proto_admin_req_decode(const char *text, size_t len, struct proto_admin_req *r, char **err);
void proto_admin_req_fini(struct proto_admin_req *r);

/* proto_admin_reply_encode - takes a reference to result (a json_t object, or NULL with an error) */
char *proto_admin_reply_encode(uint64_t id, unsigned status, const char *error, void *result);
/* proto_admin_reply_decode - 0, or -EPROTO with *err (heap) when the reply breaks its schema or the result
 * lacks a member op promises; -ESTALE (and *err) when want_id is not 0 and the reply answers another id
 * (checked before the result, which is another op's) */
int proto_admin_reply_decode(const char *text, size_t len, enum proto_admin_op op, uint64_t want_id,
                             struct proto_admin_reply *r, char **err);
void proto_admin_reply_fini(struct proto_admin_reply *r);

#endif
