/*
 * gen - ringmail-gen, the io_uring SMTP load generator: shared state of its files
 *
 * gen_main.c parses the command line, resolves the target, runs the loop and the 10/100 ms tick.
 * gen_conn.c is one SMTP client session per slot (connect, EHLO, STARTTLS, pipelined MAIL/RCPT/DATA,
 * body, RSET, QUIT); a slot reconnects as long as there is work. gen_msg.c builds bodies, headers
 * and recipients; gen_stats.c keeps the counters and the latency histogram and prints the summary.
 *
 * Accounting: a slot claims a message (gen_claim) before it connects or starts the next
 * transaction; every claimed message ends as sent (250 after the data) or failed (error reply,
 * connection lost, timeout), except claims dropped when a --duration run ends before the
 * transaction began. errors counts events by reply code or by name ("connect", "timeout",
 * "closed", "protocol", "tls").
 * Bounds: per slot one 16 KiB receive buffer, reply lines of at most GEN_LINE_MAX bytes (only a
 * bounded prefix is kept: smtp/smtp_reply.h), at most GEN_REPLY_LINES_MAX lines per reply, GEN_SEG_MAX
 * queued output segments and (TLS) the stream's cipher buffers; the body is shared by every slot. A peer
 * that exceeds any bound is an error.
 */
#ifndef RINGMAIL_GEN_H
#define RINGMAIL_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "rt/evl_stream.h"
#include "smtp/smtp_reply.h"
#include "tools/lat_hist.h"

#define GEN_LINE_MAX 2048
#define GEN_REPLY_LINES_MAX 200
#define GEN_SEG_MAX EVL_STREAM_IOV_MAX /* every queued segment leaves in one sendmsg */
#define GEN_RBUF_SIZE 16384
#define GEN_DOMAINS_MAX 64
#define GEN_RCPTS_MAX 1000
#define GEN_BODY_MAX (256u * 1024u * 1024u)

enum gen_err {
    GEN_ERR_CONNECT = 0,
    GEN_ERR_TIMEOUT = 1,
    GEN_ERR_CLOSED = 2,
    GEN_ERR_PROTOCOL = 3,
    GEN_ERR_TLS = 4,
    GEN_ERR_N = 5,
};

struct gen_stats {
    uint64_t sent;
    uint64_t failed;
    uint64_t attempted;
    uint64_t connections;
    uint64_t tls_sessions; /* STARTTLS handshakes completed */
    uint64_t codes[1000];
    uint64_t named[GEN_ERR_N];
    struct lat_hist latency; /* microseconds, first byte of MAIL FROM to the 250 after the data */
};

struct gen_domain {
    char *name;
    unsigned weight;
};

struct gen_opts {
    const char *target;
    unsigned concurrency;
    uint64_t message_count; /* 0 with a duration */
    double duration_s;      /* 0 with a count */
    size_t body_size;
    const char *body_file;
    struct gen_domain domains[GEN_DOMAINS_MAX];
    unsigned n_domains;
    unsigned weight_total;
    const char *sender;
    double rate;  /* messages per second over the whole run, 0 = unpaced */
    bool starttls;
    bool keep_going;
    unsigned per_conn; /* messages per connection, 0 = unlimited */
    const char *ehlo;
    bool json;
    unsigned recipients;
    double timeout_s;
    const char *http_url;   /* --http: the HTTP injection API instead of SMTP (gen_http.c) */
    const char *http_token; /* --http-token */
};

enum gen_state {
    GEN_STATE_IDLE = 0, /* no socket */
    GEN_STATE_CONNECTING = 1,
    GEN_STATE_BANNER = 2,
    GEN_STATE_EHLO = 3,
    GEN_STATE_STARTTLS = 4,
    GEN_STATE_HANDSHAKE = 5,
    GEN_STATE_READY = 6, /* between transactions; may wait for the rate */
    GEN_STATE_TX = 7,    /* replies to MAIL, RCPT..., DATA */
    GEN_STATE_BODY = 8,  /* reply to the final dot */
    GEN_STATE_RSET = 9,
    GEN_STATE_QUIT = 10,
    GEN_STATE_CLOSING = 11, /* waiting for in-flight ops before the fd is closed */
};

struct gen_seg {
    const char *p;
    size_t len;
    char *owned; /* freed when sent or when the session ends; NULL for shared bytes */
};

struct gen;

struct gen_conn {
    struct gen *g;
    struct evl_stream st; /* the socket of the current session: recv, send, TLS, in-flight ops */
    enum gen_state state;
    struct evl_op op_connect; /* counted in the stream's in-flight ops */
    uint64_t deadline;  /* 0: none */
    uint64_t retry_at;  /* after a failed connect, not before */
    /* output: plaintext segments; under TLS the stream encrypts them */
    struct gen_seg segs[GEN_SEG_MAX];
    unsigned seg_head, seg_n;
    struct tls_conn *tls;
    /* input */
    char rbuf[GEN_RBUF_SIZE];
    struct smtp_reply_parser rp;
    bool switched; /* the 220 to STARTTLS was parsed in the current input chunk */
    /* session */
    bool pipelining, has_starttls, tls_done;
    bool claimed;
    unsigned msgs_on_conn;
    /* transaction */
    bool in_tx, mail_failed, tx_failed, rcpt_ok, waiting_rate;
    unsigned step;
    uint64_t seq;
    uint64_t t_mail;
    uint64_t sent_us; /* CLOCK_REALTIME when MAIL FROM was queued: the X-Gen-Sent value */
    unsigned *rcpt_dom; /* domain index of each recipient of the current transaction */
};

struct gen {
    struct gen_opts o;
    struct gen_stats st;
    struct evl evl;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *host; /* for SNI and the log */
    struct tls_ctx *tls;
    char *body;
    size_t body_len;
    bool synthetic; /* headers are generated per message before the body */
    struct gen_conn *conns;
    uint64_t claimed;
    uint64_t seq;
    uint64_t start_ns, end_ns; /* end_ns: 0 without --duration */
    uint64_t rate_next;
    uint64_t timeout_ns;
    bool stopping;    /* error without --keep-going, or a signal: every slot aborts */
    bool kick;        /* a slot went idle: the loop offers it work */
    bool error_stop;
    bool first_error_logged;
};

/* gen_conn.c */
void gen_conn_init(struct gen *g, struct gen_conn *c);
void gen_conn_fini(struct gen_conn *c);
/* gen_conn_tick - timeouts, reconnect after a back-off, a slot waiting for the rate */
void gen_conn_tick(struct gen_conn *c, uint64_t now);
/* gen_conn_abort - drop the connection now (shutdown, cancel); the slot idles when its ops are back */
void gen_conn_abort(struct gen_conn *c);
bool gen_conn_idle(const struct gen_conn *c);

/* gen_main.c */
/* gen_claim - one more message may start: not stopping, under the count, before the end */
bool gen_claim(struct gen *g, uint64_t now);
/* gen_rate_take - the pacing allows a transaction to start now */
bool gen_rate_take(struct gen *g, uint64_t now);
/* gen_exit_code - 0 when the run did what was asked (every message sent; --keep-going: finished), else 1 */
int gen_exit_code(const struct gen *g);
/* gen_error - one error event; stops the run unless --keep-going */
void gen_error(struct gen *g, int code, enum gen_err named, const char *text);

/* gen_msg.c */
/* gen_msg_synth_body - filler text lines of at most 78 characters, CRLF, about `size` bytes */
void gen_msg_synth_body(size_t size, char **out, size_t *out_len);
/* gen_msg_file_body - the file with every line ending made CRLF, dot-stuffed, ending in CRLF */
int gen_msg_file_body(const char *path, char **out, size_t *out_len, char **err);
/* gen_msg_stuff - CRLF-normalise and dot-stuff len bytes into a new buffer */
void gen_msg_stuff(const char *in, size_t len, char **out, size_t *out_len);
unsigned gen_msg_pick_domain(const struct gen_opts *o);
/*
 * gen_msg_headers - the RFC 5322 header block (with the blank line) of message seq, X-Gen-Sent
 * (sent_us, microseconds since the epoch) first
 */
char *gen_msg_headers(const struct gen *g, uint64_t seq, const char *rcpt_domain, uint64_t sent_us);
/* gen_msg_stamp - the lone "X-Gen-Sent: <sent_us>" CRLF line put on top of a --body-file message */
char *gen_msg_stamp(uint64_t sent_us);
/* gen_msg_add_domain - "name" or "name:weight"; -EINVAL on a bad weight or too many domains */
int gen_msg_add_domain(struct gen_opts *o, const char *arg);

/* gen_http.c */
/* gen_http_run - the whole --http run (threads, one keep-alive connection each); the exit code */
int gen_http_run(struct gen *g, const char *url, const char *token);

/* gen_stats.c */
uint64_t gen_stats_errors(const struct gen_stats *st);
void gen_stats_print(const struct gen *g, double elapsed_s, bool json);
void gen_stats_progress(const struct gen *g, double elapsed_s, bool final);

#endif
