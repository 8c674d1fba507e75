/*
 * policy_lua - the Lua 5.4 policy sandbox and the SMTP server's hooks (docs/policy.md)
 *
 * policy_lua_new() makes one Lua state for the process from a policy file and runs the file once,
 *   so that it registers its handlers with ringmail.on(EVENT, fn) or kumo.on(EVENT, fn). Returns 0,
 *   or -errno with *err (heap, caller frees) saying "FILE:LINE: message" for a syntax or run-time
 *   error, or why the file could not be read. The caller decides: fatal at start; keep the old
 *   state on reload (policy_lua_reload() does exactly that).
 * The hook calls (policy_lua_connection_accepted() ... policy_lua_message_received()) are synchronous:
 *   each runs the script's handler, if any, under the instruction budget, the memory cap and the
 *   optional time limit, and returns a status; res is always filled. A NULL `pl` (no policy file
 *   configured) or a missing handler is POLICY_LUA_ACCEPT. A handler that fails in any way (error,
 *   budget, memory) leaves the state usable for the next call; the caller answers res->code/res->text
 *   (451 4.3.0) for that command or transaction.
 * Metadata: every hook takes the caller's struct policy_lua_meta. The script reads and writes it with
 *   conn_meta:get_meta/set_meta and msg:get_meta/set_meta. Writes become visible in `meta` only when
 *   the handler returns normally; a reject or failure leaves `meta` exactly as it was. `meta` may be
 *   NULL: the script then starts from no metadata and its writes are dropped.
 * Failures are logged here (warn, at most 10 lines a second) with res->detail; the caller need not.
 * Sandbox: base functions without load/loadfile/dofile/require/collectgarbage, and string (without
 *   string.dump), table, math, utf8. No io, os, debug, package, coroutine. Metatables with __gc are
 *   refused (a finalizer would run outside any budget). Only text chunks are loaded, never bytecode.
 * Strings passed in are (pointer, length) and may hold any byte: they reach Lua as Lua strings.
 * Not thread-safe: one struct policy_lua per process (per ingress worker), used by one thread.
 */
#ifndef RINGMAIL_POLICY_LUA_H
#define RINGMAIL_POLICY_LUA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POLICY_LUA_META_MAX 32         /* keys in one struct policy_lua_meta */
#define POLICY_LUA_META_KEY_MAX 64     /* bytes of a key: [A-Za-z0-9_.-] */
#define POLICY_LUA_META_VALUE_MAX 1024 /* bytes of a value: valid UTF-8, no control bytes */
#define POLICY_LUA_TEXT_MAX 400        /* bytes of a reject text: printable ASCII */
#define POLICY_LUA_DETAIL_MAX 256      /* bytes of res->detail, for our log only */

enum policy_lua_status {
    POLICY_LUA_ACCEPT = 0, /* no handler, or it returned normally */
    POLICY_LUA_REJECT = 1, /* kumo.reject(code, text): answer res->code res->text */
    POLICY_LUA_ERROR = 2,  /* run-time error: a Lua error, a sandboxed name, bad reject arguments */
    POLICY_LUA_BUDGET = 3, /* instruction budget or time limit exceeded */
    POLICY_LUA_NOMEM = 4,  /* the state's memory cap was reached */
};

enum policy_lua_hook {
    POLICY_LUA_HOOK_CONNECTION_ACCEPTED = 0, /* "smtp_server_connection_accepted" */
    POLICY_LUA_HOOK_EHLO = 1,                /* "smtp_server_ehlo" */
    POLICY_LUA_HOOK_MAIL_FROM = 2,           /* "smtp_server_mail_from" */
    POLICY_LUA_HOOK_RCPT_TO = 3,             /* "smtp_server_rcpt_to" */
    POLICY_LUA_HOOK_MESSAGE_RECEIVED = 4,    /* "smtp_server_message_received" */
    POLICY_LUA_HOOK_AUTH_PLAIN = 5,          /* "smtp_server_auth_plain" */
    POLICY_LUA_HOOK_HTTP_MESSAGE_GENERATED = 6, /* "http_message_generated" (HTTP injection) */
    POLICY_LUA_HOOK__COUNT = 7,
};

struct policy_lua_limits {
    uint64_t instruction_budget; /* VM instructions per call (and for running the file once); 0: 1000000 */
    uint64_t memory_limit;       /* bytes for the whole state; 0: 64 MiB */
    uint64_t time_limit_ns;      /* wall clock per call, checked with the budget; 0: none */
};

struct policy_lua_result {
    enum policy_lua_status status;
    /* REJECT: the script's code (400..599) and text. ERROR/BUDGET/NOMEM: 451 and "4.3.0 ...". ACCEPT: 0, ""
     */
    int code;
    char text[POLICY_LUA_TEXT_MAX + 1];
    /* why a handler failed, for our log; never send it to the client (it may show script internals) */
    char detail[POLICY_LUA_DETAIL_MAX + 1];
    uint64_t instructions; /* roughly how many VM instructions the call ran */
};

/* one metadata entry; key and value are NUL-terminated heap strings owned by the meta list */
struct policy_lua_meta_item {
    char *key;
    char *value;
};

/*
 * policy_lua_meta - a caller-owned list of metadata (queue, tenant, campaign, routing_domain and free
 * keys). Initialise with policy_lua_meta_init() (or zero it), free with policy_lua_meta_fini(). The
 * caller reads items[0 .. count) and copies out what it keeps. Insertion order is kept.
 */
struct policy_lua_meta {
    unsigned count;
    struct policy_lua_meta_item items[POLICY_LUA_META_MAX];
};

/* the connection a hook belongs to; filled by the SMTP session once, passed to every hook */
struct policy_lua_conn {
    const char *peer_ip; /* "192.0.2.1" or "2001:db8::1", NUL-terminated */
    uint16_t peer_port;
    const char *local_ip;
    uint16_t local_port;
};

/* a string with its length, any bytes */
struct policy_lua_str {
    const char *ptr;
    size_t len;
};

/* one MAIL FROM parameter: key "SIZE", value "1000"; value NULL for a keyword alone ("SMTPUTF8") */
struct policy_lua_param {
    const char *key;
    const char *value;
};

/* what smtp_server_message_received sees; all borrowed for the duration of the call */
struct policy_lua_message {
    const char *headers; /* the header section as received (up to the empty line; CRLF or LF) */
    size_t headers_len;
    struct policy_lua_str sender; /* reverse-path mailbox; "" for <> */
    const struct policy_lua_str *rcpts;
    size_t n_rcpts;
    uint64_t size; /* message size in bytes, as the script should see it */
};

struct policy_lua;

/* policy_lua_new - load `path` into a fresh sandboxed state; lim NULL: defaults */
int policy_lua_new(const char *path, const struct policy_lua_limits *lim, struct policy_lua **out,
                   char **err);
/* policy_lua_free - close the state; NULL is a no-op */
void policy_lua_free(struct policy_lua *pl);
/*
 * policy_lua_reload - load `path` (NULL: the current state's path) with `lim` (NULL: the current
 * limits) into a new state; only when that succeeded, free *cur and put the new state there.
 * path "" means "no policy": *cur becomes NULL. On failure *cur is untouched; return value and *err
 * as for policy_lua_new().
 */
int policy_lua_reload(struct policy_lua **cur, const char *path, const struct policy_lua_limits *lim,
                      char **err);

/* policy_lua_has_hook - whether the script registered a handler (lets the caller skip preparing args) */
bool policy_lua_has_hook(const struct policy_lua *pl, enum policy_lua_hook hook);
/* policy_lua_hook_name - KumoMTA event name of a hook */
const char *policy_lua_hook_name(enum policy_lua_hook hook);
/* policy_lua_status_name - "accept", "reject", "error", "budget", "nomem" */
const char *policy_lua_status_name(enum policy_lua_status status);
/* policy_lua_mem_used - bytes the state holds now (for metrics) */
size_t policy_lua_mem_used(const struct policy_lua *pl);

/* hooks: handler(conn_meta) / (domain, conn_meta) / (sender, conn_meta, params) / (recipient, conn_meta)
 * / (msg, conn_meta); see docs/policy.md for the objects */
enum policy_lua_status policy_lua_connection_accepted(struct policy_lua *pl,
                                                      const struct policy_lua_conn *conn,
                                                      struct policy_lua_meta *meta,
                                                      struct policy_lua_result *res);
enum policy_lua_status policy_lua_ehlo(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                       const char *domain, size_t domain_len, struct policy_lua_meta *meta,
                                       struct policy_lua_result *res);
enum policy_lua_status policy_lua_mail_from(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                            const char *addr, size_t addr_len,
                                            const struct policy_lua_param *params, size_t n_params,
                                            struct policy_lua_meta *meta, struct policy_lua_result *res);
enum policy_lua_status policy_lua_rcpt_to(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                          const char *addr, size_t addr_len, struct policy_lua_meta *meta,
                                          struct policy_lua_result *res);
enum policy_lua_status policy_lua_message_received(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                                   const struct policy_lua_message *msg,
                                                   struct policy_lua_meta *meta,
                                                   struct policy_lua_result *res);

/* policy_lua_http_message_generated - KumoMTA's http_message_generated(msg, conn_meta): as
 * smtp_server_message_received, for a message built by the HTTP injection API */
enum policy_lua_status policy_lua_http_message_generated(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                                         const struct policy_lua_message *msg,
                                                         struct policy_lua_meta *meta, struct policy_lua_result *res);

/*
 * policy_lua_auth_plain - smtp_server_auth_plain(authz, authc, password, conn_meta), KumoMTA's event, for
 * AUTH PLAIN and LOGIN: *ok is true only when the handler returned the boolean true (no handler, any
 * other value, a reject or a failure: false). authz "" is passed as authc, as KumoMTA does.
 */
enum policy_lua_status policy_lua_auth_plain(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                             const char *authz, const char *authc, const char *password,
                                             struct policy_lua_meta *meta, bool *ok, struct policy_lua_result *res);

void policy_lua_meta_init(struct policy_lua_meta *m);
void policy_lua_meta_fini(struct policy_lua_meta *m);
/* policy_lua_meta_get - the value of key, borrowed; NULL when absent */
const char *policy_lua_meta_get(const struct policy_lua_meta *m, const char *key);
/*
 * policy_lua_meta_set - set key to value[0..len) (value NULL: remove key). Same rules as for the
 * script: -EINVAL for a bad key or value, -ENOSPC when POLICY_LUA_META_MAX keys are already set.
 */
int policy_lua_meta_set(struct policy_lua_meta *m, const char *key, const char *value, size_t len);
/* policy_lua_meta_copy - dst (initialised; its old items are freed) becomes a deep copy of src */
void policy_lua_meta_copy(struct policy_lua_meta *dst, const struct policy_lua_meta *src);

#endif
