/*
 * egress_job - one delivery attempt: the job a DELIVER starts, from LOAD to the DONE record
 *
 * One job per DELIVER: LOAD -> LOADING -> (route | MX lookup) -> per host: address lookup, connect
 * -> SENDING (transactions of at most the path's max_recipients_per_batch recipients, then the
 * 452 retries, all on the same connection) -> REPORT (attempt result to the spool) -> DONE_SEND
 * (delivery done to the scheduler) -> freed. egress_deliver.c starts jobs and hands them the
 * loaded message, egress_route.c finds and connects the destination, the lease's connection
 * events (egress_lease.c) drive the transactions here. A job whose DNS callback is still due is
 * kept (`zombie`) until it ran: the resolver has no per-lookup cancel.
 * Internal to the egress library.
 */
#ifndef RINGMAIL_EGRESS_JOB_H
#define RINGMAIL_EGRESS_JOB_H

#include "base/clock.h"
#include "egress/egress.h"
#include "egress/egress_attempt.h"
#include "egress/egress_lease.h"
#include "egress/egress_route.h"
#include "common/verp.h"
#include "smtp/smtp_addr.h"

#define EGRESS_RETRY_NS CLOCK_MS(100)        /* ring or arena full: try again */
#define EGRESS_LOAD_RETRY_NS CLOCK_MS(250)   /* the spool's arena was full */
#define EGRESS_LOAD_RESEND_NS CLOCK_SEC(30)  /* no LOADED at all: the spool may have restarted */
#define EGRESS_MAX_TXN 64                    /* transactions of one attempt retrying 452s */

enum job_state {
    JOB_LOAD = 0,
    JOB_LOADING = 1,
    JOB_RESOLVING = 2,
    JOB_CONNECTING = 3,
    JOB_SENDING = 4,
    JOB_REPORT = 5,
    JOB_DONE_SEND = 6,
};

struct egress_job {
    struct egress_job *prev, *next;
    struct egress *eg;
    struct proto_deliver d;
    unsigned sched;
    uint64_t token;
    enum job_state state;
    uint64_t retry_at_ns, load_sent_ns;
    struct egress_lease *lease;
    struct egress_path *pc; /* the path configuration the DELIVER names (a reference) */
    unsigned dns_pending;
    bool zombie; /* finished, waiting for a DNS callback before the memory goes */

    uint64_t run_off;
    bool have_run, have_msg;
    struct egress_msg msg;
    char *wire; /* the message as sent, DKIM-Signature fields in front (owned; the run is freed once loaded) */
    size_t wire_len;
    char *domain;
    size_t n;
    uint32_t *idx;
    struct egress_rcpt_res *res;
    uint8_t *accepted, *retry;
    uint8_t *sent; /* the recipient was in a transaction of this attempt */

    size_t *txn_map;
    const char **txn_addrs;
    size_t txn_n;
    unsigned n_txn, n_retry_txn;
    bool txn_progress, conn_failed;

    struct egress_target *targets;
    size_t n_targets, cur_target, cur_addr;
    size_t resolving;          /* the target an address lookup is out for */
    bool via_mx, hosts_checked; /* MX targets: prohibited_hosts checked over every address first */
    size_t n_skipped, n_usable; /* addresses skipped by skip_hosts, addresses tried */
    char *site;
    char mx[DNS_NAME_MAX + 1];
    char peer[64];
    struct egress_tls_info tls; /* of the connection the transactions ran on; empty: plaintext */
    char verp_from[VERP_LOCAL_MAX + 1 + SMTP_ADDR_DOMAIN_MAX + 1]; /* [dsn] verp: this transaction's MAIL FROM */
    bool sts_reported;          /* the MTA-STS testing line of this attempt is out */
    int last_code;
    char last_enh[SMTP_REPLY_ENH_MAX];
    char last_text[SMTP_REPLY_TEXT_MAX];
    uint16_t done_flags;
};

void egress_job_load(struct egress_job *j);
/* egress_job_dns_back - a DNS callback arrived: false when the job is gone and the callback must do
 * nothing */
bool egress_job_dns_back(struct egress_job *j);
/* egress_job_set_all - every recipient without an outcome gets this one */
void egress_job_set_all(struct egress_job *j, uint8_t outcome, uint8_t cmd, int code, const char *enh,
                        const char *text);
/* egress_job_last_error - remember the latest failure, the reason given when no host works */
void egress_job_last_error(struct egress_job *j, int code, const char *enh, const char *text);
/* egress_job_txn - one transaction for the recipients still undecided (the connection is ready) */
void egress_job_txn(struct egress_job *j);
/* egress_job_trace_names - tell the job's connection its domain, site and source (trace filters) */
void egress_job_trace_names(struct egress_job *j);
void egress_job_on_rcpt(struct egress_job *j, const struct egress_smtp_event *ev);
void egress_job_on_message_done(struct egress_job *j, const struct egress_smtp_event *ev);
void egress_job_finish(struct egress_job *j);
void egress_job_report(struct egress_job *j);
void egress_job_send_done(struct egress_job *j);
void egress_job_free(struct egress_job *j);
/* egress_job_unpin - once loaded (and signed): the message bytes to private memory, the arena run freed at once,
 * so a slow receiver holds egress memory, never the arena the ingress stores new mail in */
void egress_job_unpin(struct egress_job *j);
void egress_job_free_now(struct egress_job *j);

#endif
