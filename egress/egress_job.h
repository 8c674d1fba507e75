/*
 * egress_job - internals shared by egress_deliver.c (the attempt flow) and egress_worker.c (the
 * spool's answers, time, drain, set-up); not for other modules
 */
#ifndef RINGMAIL_EGRESS_JOB_H
#define RINGMAIL_EGRESS_JOB_H

#include "base/clock.h"
#include "egress/egress.h"
#include "egress/egress_attempt.h"

#define EGRESS_RETRY_NS CLOCK_MS(100)        /* ring or arena full: try again */
#define EGRESS_LOAD_RETRY_NS CLOCK_MS(250)   /* the spool's arena was full */
#define EGRESS_LOAD_RESEND_NS CLOCK_SEC(30)  /* no LOADED at all: the spool may have restarted */
#define EGRESS_MAX_TXN 64                    /* transactions of one attempt (452 splits) */

enum job_state {
    JOB_LOAD = 0,
    JOB_LOADING = 1,
    JOB_RESOLVING = 2,
    JOB_CONNECTING = 3,
    JOB_SENDING = 4,
    JOB_REPORT = 5,
    JOB_DONE_SEND = 6,
};

struct egress_target {
    char *host;
    uint16_t port;
    bool literal;
    bool resolved;
    size_t n_addr;
    struct sockaddr_storage *addr;
};

struct egress_lease {
    struct egress_lease *next;
    struct egress *eg;
    uint32_t id;
    uint32_t gen; /* lease generation of the last DELIVER: names the lease in LEASE_CLOSED */
    unsigned sched;
    struct egress_conn *conn;
    char *site; /* of the open connection */
    uint16_t source;
    char mx[DNS_NAME_MAX + 1];
    struct egress_job *job;
    uint64_t idle_since_ns;
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
    unsigned dns_pending;
    bool zombie; /* finished, waiting for a DNS callback before the memory goes */

    uint64_t run_off;
    bool have_run, have_msg;
    struct egress_msg msg;
    char *domain;
    size_t n;
    uint32_t *idx;
    struct egress_rcpt_res *res;
    uint8_t *accepted, *retry;

    size_t *txn_map;
    const char **txn_addrs;
    size_t txn_n;
    unsigned n_txn;
    bool txn_progress, conn_failed;

    struct egress_target *targets;
    size_t n_targets, cur_target, cur_addr;
    char *site;
    char mx[DNS_NAME_MAX + 1];
    char peer[64];
    int last_code;
    char last_enh[EGRESS_REPLY_ENH_MAX];
    char last_text[EGRESS_REPLY_TEXT_MAX];
    uint16_t done_flags;
};

int egress_spool_instance(struct egress *eg);
void egress_job_load(struct egress_job *j);
void egress_job_route(struct egress_job *j);
void egress_job_finish(struct egress_job *j);
void egress_job_report(struct egress_job *j);
void egress_job_send_done(struct egress_job *j);
void egress_job_free(struct egress_job *j);
void egress_job_free_now(struct egress_job *j);
void egress_lease_drop_conn(struct egress_lease *l);
void egress_lease_remove(struct egress_lease *l);
void egress_lease_closed_send(struct egress *eg, unsigned sched, uint32_t lease, uint32_t gen, uint32_t reason);
void egress_lease_closed_flush(struct egress *eg);

#endif
