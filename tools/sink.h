/*
 * sink - ringmail-sink, the io_uring SMTP sink for tests and capacity benchmarks: shared state of its files
 *
 * sink_main.c parses the command line, binds the listeners (one SO_REUSEPORT socket per listen address
 * per worker), runs the worker threads and prints the summary. Each worker thread owns one io_uring
 * loop, its own listening sockets and its connections; nothing is shared between workers but the
 * options, the stop flag and the --record file descriptor. sink_conn.c is one SMTP server session
 * (ESMTP, RFC 2920 pipelining, strict command grammar from smtp/smtp_cmd.c, DATA end and
 * dot-unstuffing from smtp/smtp_data.c). sink_fault.c decides the scripted and the random
 * failures and holds the reply texts; sink_record.c writes the --record lines and the summary.
 *
 * Accounting (per worker, summed once the workers have stopped): a message counts as accepted when
 * its 250 after the data is queued (and its --record line written before that); its recipients are
 * the ones that got 250 to RCPT in that transaction.
 * Bounds: per connection one SINK_RBUF_SIZE receive buffer, one command line of SINK_LINE_MAX bytes,
 * SINK_OUT_SIZE bytes of pending replies (input is not parsed while they are full), at most
 * --max-rcpts recipients and, with --record only, SINK_HDR_MAX bytes of headers during DATA (with
 * --latency alone, SINK_LAT_HDR_MAX: only X-Gen-Sent is looked for, near the top). A command
 * line longer than SINK_LINE_CUT without an end, or a message past --max-size, closes the session.
 */
#ifndef RINGMAIL_SINK_H
#define RINGMAIL_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rt/evl_stream.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_data.h"
#include "tools/lat_hist.h"

#define SINK_LISTEN_MAX 16
#define SINK_WORKERS_MAX 64
#define SINK_RBUF_SIZE 16384
#define SINK_LINE_MAX SMTP_CMD_LINE_MAX /* a command line with its CRLF */
#define SINK_LINE_CUT (64u * 1024u)     /* overlong command line: discarded up to here, then closed */
#define SINK_OUT_SIZE 8192
#define SINK_REPLY_MAX 1024 /* room kept free in the output buffer before a command is parsed */
#define SINK_HDR_MAX (64u * 1024u)
/* room for X-Gen-Sent below the trace fields (Received:, DKIM-Signature:) an MTA puts on top */
#define SINK_LAT_HDR_MAX (8u * 1024u)
#define SINK_ERRORS_MAX 20 /* error replies in one session before 421 */
#define SINK_RESPONSES_MAX 256
#define SINK_TEXT_MAX 500 /* one reply line from --responses, without CRLF */

struct sink_stats {
    uint64_t connections;
    uint64_t messages;   /* accepted: 250 after the data */
    uint64_t recipients; /* of the accepted messages */
    uint64_t tempfail;   /* 4xx to RCPT, scripted or random (a random 421 counts here and in closed_421) */
    uint64_t permfail;   /* 5xx to RCPT, scripted or random */
    uint64_t closed_421; /* sessions ended by a 421 we sent at RCPT */
    uint64_t disconnects; /* disconnect-in-data@ sessions cut in the data */
    uint64_t bytes;       /* every byte received */
    uint64_t rejected;    /* messages refused after DATA: over --max-size, bare CR or LF */
    uint64_t errors;      /* error replies to malformed or out-of-sequence commands */
    uint64_t timeouts;    /* sessions idle past --timeout */
    uint64_t refused;     /* connections over --max-connections */
    uint64_t first_conn_ns, last_msg_ns;
    /* --latency: CLOCK_REALTIME at the 250 minus X-Gen-Sent, microseconds (0 when the clock went back) */
    struct lat_hist latency;
    uint64_t latency_missing; /* accepted messages without a readable X-Gen-Sent in the first headers */
};

struct sink_listen {
    char *text; /* as given */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct sink_response {
    int code;
    char *text; /* the whole line without CRLF: "421 4.7.28 Our system ..." */
};

struct sink_opts {
    struct sink_listen listen[SINK_LISTEN_MAX];
    unsigned n_listen;
    unsigned workers;
    bool json;
    double duration_s;   /* 0: until SIGTERM/SIGINT */
    double tempfail_pct; /* 0..100 */
    double permfail_pct;
    const char *responses_file;
    uint64_t seed;
    uint64_t slow_reader; /* bytes per second in DATA, 0 = full speed */
    const char *record_file;
    bool latency; /* keep the delivery latency histogram (X-Gen-Sent to the 250) */
    uint64_t max_size;
    unsigned max_rcpts;
    unsigned max_conns; /* per worker */
    double timeout_s;
    const char *hostname;
};

struct sink_faults {
    struct sink_response temp[SINK_RESPONSES_MAX];
    unsigned n_temp;
    struct sink_response perm[SINK_RESPONSES_MAX];
    unsigned n_perm;
};

struct sink {
    struct sink_opts o;
    struct sink_faults faults;
    int record_fd; /* -1 without --record */
    _Atomic bool stop;
    uint64_t start_ns;
    uint64_t timeout_ns;
};

enum sink_phase {
    SINK_PHASE_CMD = 0,
    SINK_PHASE_DATA = 1,
    SINK_PHASE_CLOSING = 2, /* the last reply is flushed, then the socket is shut down */
    SINK_PHASE_DEAD = 3,    /* shut down: waiting for in-flight ops before the fd is closed */
};

struct sink_worker;

struct sink_listener {
    struct sink_worker *w;
    int fd;
    struct evl_op op;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    bool armed;
};

struct sink_conn {
    struct sink_worker *w;
    struct sink_conn *prev, *next;
    struct evl_stream st; /* the socket: recv, send, in-flight ops */
    enum sink_phase phase;
    struct evl_timer slow; /* --slow-reader pause between DATA reads (counted in the stream's ops) */
    bool slow_wait;
    bool fin_sent; /* CLOSING: our side is shut, the rest of the peer's bytes are read and dropped */
    uint64_t deadline;
    uint64_t slow_until; /* --slow-reader: no DATA read before this */
    char peer[64]; /* printable address, for "x.x.x.x" in reply texts */
    /* input */
    char rbuf[SINK_RBUF_SIZE];
    size_t rpos, rlen;
    char line[SINK_LINE_MAX + 1];
    size_t line_len;
    size_t discard; /* bytes of an overlong line dropped so far */
    /* output */
    char out[SINK_OUT_SIZE];
    size_t out_len, out_off;
    /* session */
    bool greeted, esmtp;
    unsigned errors;
    /* transaction */
    bool in_mail, utf8, cut_in_data;
    char *mail_from;
    char **rcpts; /* with --record only */
    unsigned n_rcpts;
    struct smtp_data data;
    char *hdr; /* with --record or --latency only */
    size_t hdr_len, hdr_cap;
    bool hdr_done;
    /* the accepted message, for --record and --latency */
    uint64_t arrived_us; /* CLOCK_REALTIME when the 250 after the data was decided */
    uint64_t gen_sent_us;
    bool has_gen_sent;
};

struct sink_worker {
    struct sink *s;
    unsigned index;
    struct evl evl;
    struct sink_listener listeners[SINK_LISTEN_MAX];
    struct sink_conn *conns;
    unsigned n_conns;
    struct sink_stats st;
    uint64_t rng;
    uint64_t seq; /* queue ids */
    char scratch[SINK_RBUF_SIZE + 2]; /* un-stuffed DATA bytes on their way to the header buffer */
};

/* sink_conn.c */
/* sink_conn_new - take over an accepted socket and send the banner */
void sink_conn_new(struct sink_worker *w, int fd, const struct sockaddr *peer, socklen_t peerlen);
/* sink_conn_tick - idle timeout */
void sink_conn_tick(struct sink_conn *c, uint64_t now);
/* sink_conn_abort - shut the socket down now; freed once its ops are back */
void sink_conn_abort(struct sink_conn *c);

/* sink_fault.c */
/* sink_fault_load - the reply pools from --responses FILE, or the built-in set when path is NULL */
int sink_fault_load(struct sink_faults *f, const char *path, char **err);
void sink_fault_free(struct sink_faults *f);
/* sink_fault_parse_line - "DDD text": a 4xx or 5xx reply line without CRLF; -EINVAL otherwise */
int sink_fault_parse_line(const char *line, struct sink_response *out);
/*
 * sink_fault_rcpt - the reply to RCPT for this local part (NULL: accept). Scripted local parts
 * first (tempfail, permfail, 421 prefixes), then the random draw. *close is set for a 421.
 * The reply is written to buf (CRLF included), "x.x.x.x" replaced by the peer's address.
 */
const char *sink_fault_rcpt(struct sink_worker *w, const char *local, const char *peer, char *buf, size_t cap,
                            bool *close);
/* sink_fault_cut_in_data - the local part asks for the connection to drop in the middle of DATA */
bool sink_fault_cut_in_data(const char *local);
/* sink_fault_rand - splitmix64 */
uint64_t sink_fault_rand(uint64_t *state);

/* sink_record.c */
/* sink_record_write - one JSON line for an accepted message, in one write(2) to the O_APPEND file */
void sink_record_write(struct sink_conn *c);
/* sink_record_gen_sent - the value of an unfolded "X-Gen-Sent: DIGITS" line in h[0..len); -ENOENT if none */
int sink_record_gen_sent(const char *h, size_t len, uint64_t *out);
/* sink_record_summary - the summed counters (st), with the connections of each worker (per[n]) */
void sink_record_summary(const struct sink *s, const struct sink_stats *st, const struct sink_stats *per, unsigned n,
                         double elapsed_s);

#endif
