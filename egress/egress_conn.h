/*
 * egress_conn - one outbound SMTP connection on the io_uring loop
 *
 * egress_conn_open() creates a nonblocking socket (bound to the source address when given) and
 * starts the connect; an error before any I/O (bad bind address, socket limit) is returned at once
 * with *err. From then on everything arrives through the owner's callbacks:
 *   on_event   every egress_smtp event, in order; a connect failure or connect timeout comes as a
 *              CONN_FAILED with code 0 and the reason as text.
 *   on_closed  once, when the connection starts closing for any reason (CONN_FAILED,
 *              PROTOCOL_ERROR, CLOSED, a timeout, egress_conn_close()); the owner forgets the pointer.
 * Timeouts (egress_conn_tick, called by the worker's tick), one per SMTP phase (struct
 * egress_conn_timeouts): connect, banner, EHLO (also HELO, STARTTLS and the TLS handshake), MAIL
 * FROM, RCPT TO, the DATA command, the reply after the final dot (and writing the body), RSET (also
 * QUIT); each counts from the last progress (a command written, a reply awaited), except the DATA
 * phase: writing the body and awaiting the reply after the dot share one deadline, dot_ns plus the
 * body's size at min_data_rate, set when the phase starts and never moved by partial writes, so a
 * receiver reading a byte at a time cannot hold the message for hours. An awaited reply past its
 * timeout aborts the session: unfinished recipients get TEMPFAIL. egress_conn_timeouts_set()
 * changes them on an open connection (a reused connection runs under its new attempt's path).
 *
 * STARTTLS (params.tls, egress_tls.h for the modes): on the 220 to STARTTLS the socket stream switches
 * to TLS (tls/tls_stream.h) with params.tls_ctx, the session kept for this host offered for
 * resumption; the handshake runs on the loop like any other I/O (memory BIOs, no blocking call).
 * Octets after the 220 (TLS-03) abort the session before any handshake: a CLOSED event says why.
 * A failed handshake (alert, bad certificate, EOF, timeout) ends the connection with a CLOSED
 * event naming the reason; it never continues in plaintext. With tls_remember_broken_ms, that
 * failure also marks the site in the cache as broken for that long. Once established, the EHLO
 * is sent again and egress_conn_tls() describes the session for the records.
 *
 * Ownership: the set owns its connections; a connection frees itself once closed and its last
 * io_uring operation completed. Callbacks may call any function here on any connection, including
 * closing this one.
 */
#ifndef RINGMAIL_EGRESS_CONN_H
#define RINGMAIL_EGRESS_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rt/evl.h"
#include "egress/egress_smtp.h"
#include "egress/egress_tls.h"

struct egress_conn;

typedef void (*egress_conn_event_cb)(void *arg, struct egress_conn *c, const struct egress_smtp_event *ev);
typedef void (*egress_conn_closed_cb)(void *arg, struct egress_conn *c);

struct egress_conn_set {
    struct evl *evl;
    struct egress_conn *head;
    unsigned n; /* connections not yet freed */
};

struct egress_conn_timeouts {
    uint64_t connect_ns, banner_ns, ehlo_ns, mail_ns, rcpt_ns, data_ns, dot_ns, rset_ns; /* 0: none */
    uint64_t min_data_rate; /* bytes/s: the DATA phase may take dot_ns + body bytes / this; 0: dot_ns only */
};

struct egress_conn_params {
    struct sockaddr_storage addr; /* with the port */
    const char *bind_address;     /* local IP or "" / NULL for any */
    const char *ehlo_name;
    struct egress_conn_timeouts t;
    /* STARTTLS: mode, verification, the name for SNI and verification (the MX host; NULL or an IP
     * literal: no SNI, and verification then fails the handshake) */
    enum egress_smtp_tls tls;
    bool tls_verify;
    const char *tls_name;
    struct egress_tls *tls_cache;    /* contexts, sessions, broken sites; NULL: no STARTTLS */
    const char *tls_site;            /* the site, for remember_broken_tls */
    uint64_t tls_remember_broken_ms; /* 0: a failed handshake is not remembered */
};

void egress_conn_set_init(struct egress_conn_set *set, struct evl *l);

/* egress_conn_open - 0 with *out, or -errno with a reason in err */
int egress_conn_open(struct egress_conn_set *set, const struct egress_conn_params *p, egress_conn_event_cb on_event,
                     egress_conn_closed_cb on_closed, void *arg, struct egress_conn **out, char *err,
                     size_t err_len);
/* egress_conn_owner_set - new callbacks (NULL: nobody is told) */
void egress_conn_owner_set(struct egress_conn *c, egress_conn_event_cb on_event, egress_conn_closed_cb on_closed,
                           void *arg);

/* egress_conn_send - start a transaction (egress_smtp_send_message rules); 0 or -errno */
int egress_conn_send(struct egress_conn *c, const char *sender, const char *const *rcpts, size_t n_rcpts,
                     const char *body, size_t body_len, unsigned flags);
/* egress_conn_timeouts_set - the timeouts from now on (the one running restarts with its new value) */
void egress_conn_timeouts_set(struct egress_conn *c, const struct egress_conn_timeouts *t);
/* egress_conn_idle - session established and no transaction in flight */
bool egress_conn_idle(const struct egress_conn *c);
/* egress_conn_quit - polite close: QUIT, then close on its reply or a timeout */
void egress_conn_quit(struct egress_conn *c);
/* egress_conn_abort - close now; an unfinished transaction gets TEMPFAIL events with `why` */
void egress_conn_abort(struct egress_conn *c, const char *why);
/* egress_conn_close_all - at exit: every connection closed, no callbacks */
void egress_conn_close_all(struct egress_conn_set *set);
void egress_conn_tick(struct egress_conn_set *set, uint64_t now_ns);

/* egress_conn_tls_matches - the connection was opened with this STARTTLS mode and verification */
bool egress_conn_tls_matches(const struct egress_conn *c, enum egress_smtp_tls mode, bool verify);
/* egress_conn_tls - the session's TLS for the records (empty strings: plaintext); never NULL */
const struct egress_tls_info *egress_conn_tls(const struct egress_conn *c);

/* egress_conn_trace_names - what the connection delivers for now, as ringctl trace-smtp-client filters
 * (recipient domain, site, source; copied; a name that is not one traces as "") */
void egress_conn_trace_names(struct egress_conn *c, const char *domain, const char *site, const char *source);

/* egress_conn_peer - "ip:port" ("[ip6]:port") of the peer */
const char *egress_conn_peer(const struct egress_conn *c);

/* egress_conn_addr_format - the same text for any address */
void egress_conn_addr_format(const struct sockaddr_storage *a, char *out, size_t len);

#endif
