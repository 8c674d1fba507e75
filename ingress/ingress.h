/*
 * ingress - the SMTP server worker's internal interfaces
 *
 * ingress_main.c     listeners, accept, connection limits, timeouts, drain, spool acks
 * ingress_session.c  one session: I/O, command dispatch, replies (RFC 5321 state machine)
 * ingress_xfer.c     DATA/BDAT: body staging, checks, Received header, store request to the spool
 * ingress_relay.c    who may send to which domain (RELAY-01/02)
 * ingress_auth.c     SASL PLAIN/LOGIN decoding, the passwords file, the AUTH failure limiter (pure)
 * ingress_auth_cmd.c the AUTH command, require_auth, relay rights of authenticated sessions
 * ingress_http.c     the HTTP injection API (libmicrohttpd threads handing jobs to the loop)
 * ingress_mime.c     its request decoder and MIME builder (a library of its own, ingress_mime.h)
 *
 * Ownership: the worker owns its sessions; a session owns its fd, buffers and transaction. A session
 * is freed only when it is closing and no io_uring operation of its stream is in flight.
 * Errors from the peer become SMTP replies; nothing the peer sends can end the worker.
 */
#ifndef RINGMAIL_INGRESS_H
#define RINGMAIL_INGRESS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/msgid.h"
#include "common/proto_env.h"
#include "common/supp.h"
#include "ingress/ingress_auth.h"
#include "ingress/ingress_rcpts.h"
#include "ingress/ingress_report.h"
#include "rt/role_rt.h"
#include "rt/trace.h"
#include "rt/evl_stream.h"
#include "tls/tls.h"
#include "policy/policy_lua.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"

#define INGRESS_MAX_LISTENERS 16
_Static_assert(INGRESS_MAX_LISTENERS <= PROTO_NODE_MAX_LISTENERS, "per-listener counters in the role table slot");
#define INGRESS_IN_BUF (64 * 1024)
#define INGRESS_OUT_MAX (64 * 1024) /* unsent replies past which the session reads nothing more */
#define INGRESS_IP_BUCKETS 4096

struct ingress;

/* feedback mail of one transaction (ingress_fbl.c) */
enum ingress_fbl_mode {
    INGRESS_FBL_UNSET = 0, /* no recipient yet */
    INGRESS_FBL_REPORT = 1, /* its recipients are feedback addresses: the message is a report, not delivered */
    INGRESS_FBL_MAIL = 2,   /* ordinary mail */
};
enum ingress_fbl_verp {
    INGRESS_FBL_VERP_NONE = 0,
    INGRESS_FBL_VERP_OK = 1,     /* a VERP recipient whose HMAC matched: id and index are ours */
    INGRESS_FBL_VERP_FORGED = 2, /* the form of one, with a wrong HMAC: nothing in the report is trusted */
};
#define INGRESS_FBL_META_MAX 20
struct ingress_fbl_txn {
    enum ingress_fbl_mode mode;
    enum ingress_fbl_verp verp;
    struct msgid verp_id;
    uint32_t verp_index;
    struct ingress_report *report; /* parsed at the end of DATA; heap, freed with the transaction */
    char orig_id[MSGID_TEXT_SIZE];
    char index_text[16];
};

/* where an AUTH exchange stands: the next line is a SASL response, not a command */
enum ingress_auth_step {
    INGRESS_AUTH_NONE = 0,
    INGRESS_AUTH_PLAIN = 1,      /* 334 sent, waiting for the PLAIN message */
    INGRESS_AUTH_LOGIN_USER = 2, /* 334 Username: sent */
    INGRESS_AUTH_LOGIN_PASS = 3, /* 334 Password: sent */
};

enum ingress_state {
    INGRESS_S_GREETING = 0, /* banner sent, no EHLO/HELO yet */
    INGRESS_S_READY = 1,    /* greeted, no transaction */
    INGRESS_S_MAIL = 2,     /* MAIL accepted */
    INGRESS_S_RCPT = 3,     /* at least one RCPT accepted */
    INGRESS_S_DATA = 4,     /* reading the DATA body */
    INGRESS_S_BDAT = 5,     /* reading a BDAT chunk */
    INGRESS_S_STORING = 6,  /* waiting for the spool's durable ack; input is held */
    INGRESS_S_CLOSING = 7,
    INGRESS_S_TLS_START = 8, /* 220 to STARTTLS queued: the rest of the input is dropped */
};

struct ingress_session {
    struct ingress *ig;
    uint32_t slot;
    struct evl_stream st; /* the socket: recv, send, TLS, in-flight ops */
    bool closing;
    bool discarding; /* inside an over-long command line: drop through the next LF */

    /* peer */
    int family;
    uint8_t peer_addr[16];
    uint8_t client_key[16]; /* peer_addr as one client: IPv6 cut to [ingress] client_ipv6_prefix */
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port;
    bool relay_client;
    bool require_auth; /* the listener's require_auth: MAIL needs AUTH first */
    int supp_mode;     /* enum cfg_supp_mode of the listener, at accept */
    uint8_t listener;  /* index of its listener (ig->ls, the [[listener]] order): per-listener counters */

    /* AUTH (ingress_auth_cmd.c) */
    enum ingress_auth_step auth_step;
    bool authenticated;
    char auth_mech[SMTP_CMD_AUTH_MECH_MAX + 1];
    char auth_user[INGRESS_AUTH_USER_MAX + 1];       /* authcid of a successful AUTH */
    char auth_login_user[INGRESS_AUTH_USER_MAX + 1]; /* LOGIN: the user name, until the password comes */
    char local_ip[INET6_ADDRSTRLEN];
    uint16_t local_port;
    struct policy_lua_conn pconn;      /* borrowed strings of this session, for the hooks */
    struct policy_lua_meta conn_meta;  /* set by connection/EHLO hooks; copied into each transaction */
    struct policy_lua_meta meta;       /* this transaction's metadata (queue, tenant, ...) */

    /* TLS: after STARTTLS every byte on the socket goes through `tls` (tls/tls.c), the stream's filter */
    struct tls_conn *tls;

    /* input: received, not yet consumed */
    char *in;
    size_t in_len;
    /* output: replies not yet sent */
    char *out;
    size_t out_len, out_cap, out_sent;
    char *out_retired; /* out before it grew while a send pointed into it: freed when that send is done */
    bool paused;       /* over INGRESS_OUT_MAX unsent: no recv armed until the client reads */

    /* what the client got wrong, this session (not per read) */
    unsigned errors;   /* syntax errors, unknown commands, relay denials: INGRESS_MAX_ERRORS, then 421 */
    unsigned refusals; /* every 4xx/5xx but 452 4.5.3: INGRESS_MAX_REFUSALS, then 421 */
    unsigned logged, unlogged; /* Rejection records written; refusals past the log cap, for one summary */
    char last_unlogged[256];
    bool data_refused;    /* DATA was refused: the next line must be one sent after reading that */
    bool pipelined;       /* the last command was followed by input sent before its reply was read */
    uint64_t bdat_discard; /* bytes of a refused BDAT's chunk still to drop */

    uint64_t last_activity_ns;
    enum ingress_state state;
    bool esmtp;
    char helo[SMTP_ADDR_DOMAIN_MAX + 1];

    /* transaction */
    char sender[SMTP_ADDR_MAILBOX_MAX + 1];
    bool null_sender;
    struct smtp_cmd_params mail_params;
    char **rcpts;
    uint32_t n_rcpts, rcpt_cap;

    /* DATA / BDAT */
    struct smtp_data scan;
    char *body;
    size_t body_len, body_cap;
    uint64_t data_started_ns;
    uint64_t bdat_remaining;
    bool bdat_last;
    bool bdat_started; /* a BDAT transfer is under way: DATA is refused, chunks append */
    bool bdat_failed; /* a BDAT transfer was refused: later chunks are read and dropped */

    /* what the current command is about, for Rejection records */
    enum smtp_cmd_verb cur_verb;
    char cur_rcpt[SMTP_ADDR_MAILBOX_MAX + 1];

    /* STORING */
    uint64_t store_token;
    uint64_t store_deadline_ns;
    uint64_t eod_ns; /* the whole body was in (CLOCK_MONOTONIC): the time-to-250 histogram's start */
    uint32_t store_gen; /* the spool generation the store request was addressed to */
    struct msgid msg_id;

    /* ringctl trace-smtp-server (rt/trace.h) */
    uint64_t trace_id;
    bool tls_noted; /* the handshake's result was looked at (traced when someone traced then) */

    bool feedback_listener; /* the listener's feedback = true: every message is a report */
    struct ingress_fbl_txn fbl;

    struct ingress_session *next, *prev;
};

struct ingress_ipcount {
    uint8_t addr[16];
    int family;
    uint32_t count;
    struct ingress_ipcount *next;
};

struct ingress_listener {
    struct ingress *ig;
    int fd;
    struct evl_op op;
    bool armed;
    /* out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): accepts pause for backoff_ms
     * (doubling up to a second) instead of failing again at once, and the excess waits in the backlog */
    bool paused;
    uint32_t backoff_ms;
    uint64_t pause_failures; /* accept failures since the last warning */
    uint64_t warned_ns;
    struct evl_timer backoff;
    bool implicit_tls, require_auth; /* of the cfg listener at the same index */
    bool feedback;
};

struct ingress {
    struct role_rt *rt;
    struct ingress_listener ls[INGRESS_MAX_LISTENERS];
    unsigned n_ls;
    struct ingress_session *sessions;
    unsigned n_sessions;
    struct ingress_session **slots; /* slot -> session, for store acks */
    uint32_t n_slots;
    uint32_t *free_slots;
    uint32_t n_free;
    /* store tokens: this worker's count of store requests (never reset) above the slot's
     * slot_bits, so an ack that outlives its session matches no later session in that slot */
    uint64_t store_seq;
    unsigned slot_bits;
    struct ingress_ipcount *ip_buckets[INGRESS_IP_BUCKETS];
    struct policy_lua *policy; /* NULL: no [policy] file */
    struct tls_ctx *tls;       /* NULL: [tls] enabled = false */
    uint64_t refusal_refill_ns; /* Rejection records of refused connections: token bucket */
    uint32_t refusal_tokens;
    bool auth_enabled;                 /* [auth] passwords_file loaded */
    struct ingress_auth_passwd passwd;
    struct ingress_rcpts relay_rcpts; /* [ingress] relay_recipients */
    bool relay_rcpts_on;
    struct ingress_auth_limit auth_limit;
    struct ingress_http *http; /* NULL: no [[http_listener]] */
    struct supp_view supp;     /* the spool's suppression snapshot (common/supp.h) */
};

#define INGRESS_REFUSAL_LOGS_PER_S 100

/* ingress_session.c */
struct ingress_session *ingress_session_new(struct ingress *ig, int fd);
void ingress_session_reply(struct ingress_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ingress_session_flush(struct ingress_session *s);
void ingress_session_close(struct ingress_session *s);
/* ingress_session_resume - consume buffered input (after an ack ended STORING) and read on */
void ingress_session_resume(struct ingress_session *s);
void ingress_session_reset_txn(struct ingress_session *s);
void ingress_session_tick(struct ingress_session *s, uint64_t now);
/* ingress_session_shutdown - 421 and close (drain, timeouts) */
void ingress_session_shutdown(struct ingress_session *s, const char *reply);

/* ingress_session_trace - one trace event of the session; only when rt_trace_on(PROTO_TRACE_SERVER) */
void ingress_session_trace(struct ingress_session *s, enum proto_trace_dir dir, const char *text, size_t len);

/* ingress_xfer.c */
void ingress_xfer_begin_data(struct ingress_session *s);
void ingress_xfer_begin_bdat(struct ingress_session *s, uint64_t size, bool last);
/* ingress_xfer_consume - feed buffered input to DATA/BDAT; returns bytes consumed */
size_t ingress_xfer_consume(struct ingress_session *s, const char *in, size_t len);
void ingress_xfer_on_stored(struct ingress *ig, const struct proto_rec *rec);
/* ingress_xfer_meta - policy metadata as envelope metadata (keys lowercased into `keys`) */
void ingress_xfer_meta(const struct policy_lua_meta *m, struct proto_env_meta meta[POLICY_LUA_META_MAX],
                       char keys[POLICY_LUA_META_MAX][POLICY_LUA_META_KEY_MAX + 1], uint32_t *count);
/* ingress_xfer_store - the envelope (rec; body_size is set here), the Received header and the message in one
 * arena run handed to the spool (MSG_INGRESS_MESSAGE_STORE, `token` comes back in the ack); 0, or -errno with
 * the SMTP reply of the refusal in *reply; *spool_gen (when not NULL) is the spool generation it was sent to */
int ingress_xfer_store(struct ingress *ig, struct proto_env *rec, const char *received, size_t rlen, const char *body,
                       size_t blen, struct msgid id, uint64_t token, const char *peer, const char **reply,
                       uint32_t *spool_gen);

/* ingress_http.c: the HTTP injection API (docs/http-injection.md) */
/* store tokens of HTTP messages have the top bit set: session tokens never reach it (see ingress_main.c) */
#define INGRESS_HTTP_TOKEN_BIT (UINT64_C(1) << 63)
struct ingress_http;
/* ingress_http_start - a daemon per inherited HTTP listener fd (fds[0..n)); fatal on a bad setup */
void ingress_http_start(struct ingress *ig, const int *fds, unsigned n);
void ingress_http_on_stored(struct ingress *ig, const struct proto_rec *rec);
void ingress_http_tick(struct ingress *ig, uint64_t now);
/* ingress_http_drain - stop taking requests; true once no request waits for the spool */
bool ingress_http_drain(struct ingress *ig);
void ingress_http_stop(struct ingress *ig);

/* ingress_fbl.c: feedback mail (docs/operations.md, "Feedback loops and out-of-band bounces") */
/* ingress_fbl_rcpt_is - a feedback recipient: the listener's, a [feedback] domain or address, the VERP domain */
bool ingress_fbl_rcpt_is(const struct ingress_session *s, const struct smtp_addr *a);
/* ingress_fbl_rcpt_add - an accepted feedback recipient: the first VERP one names the original */
void ingress_fbl_rcpt_add(struct ingress_session *s, const struct smtp_addr *a);
/* ingress_fbl_parse - the body of a report transaction parsed; false when it is none (550 answered) */
bool ingress_fbl_parse(struct ingress_session *s);
/* ingress_fbl_meta - the parsed report as envelope metadata (fbl.*), borrowing from the session; count */
uint32_t ingress_fbl_meta(struct ingress_session *s, struct proto_env_meta *meta, uint32_t max);
/* ingress_fbl_id_header - "X-Ringmail-Id: ID[; tenant=T][; campaign=C]\r\n" into buf; its length, 0 for none */
size_t ingress_fbl_id_header(const struct ingress *ig, const char *idtext, const struct policy_lua_meta *m, char *buf,
                             size_t n);
void ingress_fbl_reset(struct ingress_session *s);

/* ingress_log.c */
/* ingress_log_rejection - hand a Rejection record for `reply` (our 4xx/5xx line) to the spool */
void ingress_log_rejection(struct ingress_session *s, const char *reply, size_t len);
/* ingress_log_refusal - a Rejection record for a connection refused before any session (limits,
 * shutdown); at most INGRESS_REFUSAL_LOGS_PER_S per worker, the rest counted as dropped */
void ingress_log_refusal(struct ingress *ig, const char *peer_ip, const char *reply);

/* ingress_policy.c */
void ingress_policy_load(struct ingress *ig);
void ingress_policy_reload(struct ingress *ig);
/* ingress_policy_* - run a hook; true to go on, false when it answered (reject or failure) */
bool ingress_policy_connection(struct ingress_session *s);
bool ingress_policy_ehlo(struct ingress_session *s, const char *domain);
bool ingress_policy_mail(struct ingress_session *s, const struct smtp_cmd *cmd);
bool ingress_policy_rcpt(struct ingress_session *s, const struct smtp_cmd *cmd);
bool ingress_policy_message(struct ingress_session *s);

/* ingress_relay.c */
enum ingress_relay_verdict {
    INGRESS_RELAY_OK = 0,
    INGRESS_RELAY_DENIED,  /* 550 5.7.1: not a domain this client may send to */
    INGRESS_RELAY_NO_USER, /* 550 5.1.1: a relay domain, but not one of its relay_recipients */
};
/* ingress_relay_allowed - whether the session may send to addr; the reply text is in *why otherwise */
enum ingress_relay_verdict ingress_relay_allowed(const struct ingress_session *s, const struct smtp_addr *addr,
                                                 const char **why);
/* ingress_is_postmaster - <Postmaster> (RFC 5321 4.1.1.3), or postmaster@ the node's own host name */
bool ingress_is_postmaster(const struct cfg *c, const struct smtp_addr *a);
/* ingress_relay_load - [ingress] relay_recipients at start (a bad file is fatal) and on reload (kept) */
void ingress_relay_load(struct ingress *ig);
void ingress_relay_fini(struct ingress *ig);

/* ingress_auth_cmd.c */
/* ingress_auth_load - [auth] at start (a bad passwords file is fatal) and on reload (it is kept) */
void ingress_auth_load(struct ingress *ig);
void ingress_auth_fini(struct ingress *ig);
/* ingress_auth_locked_out - the address failed AUTH too often: refuse its connections */
bool ingress_auth_locked_out(struct ingress *ig, int family, const uint8_t *addr);
/* ingress_auth_ehlo - the EHLO AUTH line, when offered */
void ingress_auth_ehlo(struct ingress_session *s);
/* ingress_auth_mail_allowed - false (530 said) when the listener requires AUTH and there was none */
bool ingress_auth_mail_allowed(struct ingress_session *s);
/* ingress_auth_command - AUTH; false once the session ends (lockout) */
bool ingress_auth_command(struct ingress_session *s, const struct smtp_cmd *cmd);
/* ingress_auth_continue - a response line inside an AUTH exchange; false once the session ends */
bool ingress_auth_continue(struct ingress_session *s, const char *line, size_t len);

/* ingress_main.c */
void ingress_ip_release(struct ingress *ig, struct ingress_session *s);
/* ingress_client_key - the address as one client for the per-client limits: IPv4 whole, IPv6 cut to its
 * first prefix bits (32..128), the rest zero */
void ingress_client_key(int family, const uint8_t *addr, unsigned prefix, uint8_t key[16]);
/* ingress_fd_limit - raise RLIMIT_NOFILE's soft limit to what max_connections needs (within the hard limit);
 * returns the soft limit in force, and warns when it is short */
unsigned long ingress_fd_limit(uint32_t max_connections, unsigned n_listeners);

#endif
