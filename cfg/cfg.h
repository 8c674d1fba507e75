/*
 * cfg - ringmail.toml, the node's static configuration
 *
 * cfg_default() fills the embedded default: a working node with SMTP on 127.0.0.1:2525, the
 * admin HTTP API on 127.0.0.1:8025 and data under ./ringmail-data.
 * cfg_load_file() / cfg_load_text() start from the default and apply the file on top. Every
 * unknown key, wrong type and bad value is reported as "FILE:LINE: message", one per line in
 * *err (heap, caller frees); the function returns -EINVAL after collecting all of them, -errno when
 * the file cannot be read, 0 on success.
 * cfg_fini() frees what a struct cfg owns. Optional paths (tls_*, policy_file, spool_dir, log_dir)
 * are "" when unset, never NULL after cfg_default().
 *
 * Every key is documented in docs/configuration.md.
 */
#ifndef RINGMAIL_CFG_H
#define RINGMAIL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "cfg/cfg_value.h"

#define CFG_MAX_LISTENERS 16

/* [node] seccomp: what a role's filter does with a syscall off its list (rt/role_seccomp.c) */
enum cfg_seccomp {
    CFG_SECCOMP_KILL = 0, /* the call never runs; the role dies by SIGSYS, the supervisor reports it */
    CFG_SECCOMP_LOG = 1,  /* the call runs; the kernel's audit log records it */
    CFG_SECCOMP_OFF = 2,
};
#define CFG_MAX_WORKERS 32
#define CFG_MAX_CIDRS 64

struct cfg_listener {
    char *address; /* "host:port" as written; IPv6 as "[::1]:25" */
    char *name;    /* optional label, "smtp" by default */
    bool implicit_tls; /* tls = "implicit": TLS handshake first, then the banner (port 465); needs [tls] */
    bool require_auth; /* MAIL before a successful AUTH gets 530 5.7.0 (a submission port, 587) */
    bool feedback;     /* every message on it is feedback mail (an ARF or DSN report; docs/operations.md) */
    int suppression;   /* enum cfg_supp_mode: suppression = "reject" | "drop"; CFG_SUPP_INHERIT: [suppression] on_rcpt */
};

/* [[http_listener]]: the HTTP injection API (docs/http-injection.md), served by the ingress workers */
#define CFG_MAX_HTTP_LISTENERS 4
struct cfg_http_listener {
    char *listen;          /* "host:port" */
    char *tls_certificate; /* PEM path; "" (default): plain HTTP */
    char *tls_private_key; /* set together with tls_certificate */
    size_t n_trusted;      /* peers allowed to connect; 0 (default): any (the token is always required) */
    struct cfg_cidr trusted[CFG_MAX_CIDRS];
    uint64_t max_request_size;   /* bytes of one request body; default 0: [ingress] max_message_size */
    uint32_t max_connections;    /* per ingress worker; default 256 */
    uint64_t request_timeout_ms; /* whole request (headers and body) and idle keep-alive; default 60 s */
};

#define CFG_MAX_SOURCES 64
#define CFG_MAX_POOLS 32
#define CFG_MAX_QUEUES 1024
#define CFG_MAX_ROUTES 1024
#define CFG_MAX_ROUTE_HOSTS 8

/* [[egress_source]]: a local identity mail leaves from */
struct cfg_source {
    char *name;
    char *bind_address; /* local IP to bind before connecting; "" = any */
    char *ehlo_name;    /* "" = [node] hostname */
};

/* [egress_pool.NAME]: sources with weights; pool 0 is "default" (every source, weight 1, unless written) */
struct cfg_pool {
    char *name;
    uint32_t n;
    uint32_t source[CFG_MAX_SOURCES]; /* index into cfg.sources */
    uint32_t weight[CFG_MAX_SOURCES]; /* >= 1 */
};

#define CFG_WARMUP_STEPS_MAX 1000 /* steps of one warm-up, written or made by a geometric ramp */

/* [warmup."SOURCE"]: a source's warm-up ramp (cfg_warmup.c, docs/configuration.md); a geometric ramp is
 * expanded into its steps when the file is read, so the roles see one list */
struct cfg_warmup_rate {
    uint64_t limit, period_ms; /* limit per period_ms; both > 0 */
};
struct cfg_warmup {
    char *source;                 /* an [[egress_source]] name */
    uint64_t start_ms;            /* unix ms (UTC) the first step starts */
    uint64_t step_ms;             /* each step's length; default 1 day */
    double max_deferral_rate;     /* 0..1: deferred / attempts of a step above it holds the step; default 0.05 */
    bool per_site;                /* per = "site": the allowance is per site; default false: per provider */
    uint32_t n_steps;             /* 1..CFG_WARMUP_STEPS_MAX */
    struct cfg_warmup_rate *steps;
};

/* [queue.NAME]: retry policy of the scheduled queues it matches (by queue name, else by domain);
 * queues[0] is [queue.default] */
struct cfg_queue {
    char *name;
    uint64_t retry_interval_ms;     /* first retry delay, doubled per attempt; default 20 min */
    uint64_t max_retry_interval_ms; /* cap of the doubling; default 8 h */
    uint64_t max_age_ms;            /* expiry, counted from reception; default 7 d */
    uint32_t pool;                  /* index into cfg.pools */
};

/* [route."DOMAIN"]: deliver the domain (or queue name) to fixed hosts instead of its MX ("*" = any) */
struct cfg_route_host {
    char *host; /* host name or IP literal without brackets */
    uint16_t port;
    bool literal; /* written as [IP]: no MX lookup, no A lookup */
};

struct cfg_route {
    char *domain; /* lower case; "*" matches every domain without its own route */
    uint32_t n_hosts;
    struct cfg_route_host hosts[CFG_MAX_ROUTE_HOSTS];
};

/* [[dkim]]: one DKIM signer (docs/configuration.md, "DKIM signing"); the key is loaded by dkim/dkim_key.c */
#define CFG_MAX_DKIM 256
#define CFG_DKIM_MAX_HEADERS 64
enum cfg_dkim_alg {
    CFG_DKIM_RSA_SHA256 = 0,
    CFG_DKIM_ED25519_SHA256 = 1,
};

struct cfg_dkim {
    char *name;     /* as written, or "<domain>:<selector>"; unique; what the dkim_signers metadata names */
    char *domain;   /* d=, lower case; messages whose From or envelope sender domain equals it are signed */
    char *selector; /* s= */
    char *key_file; /* PEM private key */
    unsigned line;  /* of the entry's key_file (or of the entry) in cfg.source, for key errors */
    int algorithm;  /* enum cfg_dkim_alg; default rsa-sha256 */
    bool header_relaxed, body_relaxed; /* c=; default relaxed/relaxed */
    size_t n_headers;                  /* h=: names in signing order; a name listed k times signs k instances */
    char **headers;
    uint64_t expiration_ms;            /* x= is t= plus this; 0 (default): no x= */
};

struct cfg {
    char *source; /* file name, or "(embedded default)" */

    /* [node] */
    char *node_id;   /* default: the host name */
    char *data_dir;  /* default "./ringmail-data" */
    char *user;      /* unprivileged user the roles run as when started as root; default "nobody" */
    /* PRIV-01: a user per role ("" = `user`); every role keeps `user`'s primary group, so files the
     * node's group may read stay readable; the spool's database and logs belong to spool_user alone */
    char *spool_user, *scheduler_user, *ingress_user, *egress_user;
    int seccomp;     /* enum cfg_seccomp; default "kill" */
    char *hostname;  /* name in SMTP banners; default: the host name */
    enum log_level log_level;

    /* [[listener]] (SMTP); default one on 127.0.0.1:2525 */
    size_t n_listeners;
    struct cfg_listener listeners[CFG_MAX_LISTENERS];

    /* [[http_listener]] and [http_inject] (cfg_http.c; docs/http-injection.md) */
    size_t n_http_listeners;
    struct cfg_http_listener *http_listeners; /* NULL when none (the default: no HTTP injection) */
    char *http_inject_token_file;  /* "" (default): none, only the admin token (when allowed) */
    bool http_inject_admin_token;  /* the admin token is accepted too; default true */
    uint32_t http_inject_max_recipients; /* per request, default 1000 */

    /* [admin] (docs/admin-api.md, "Access control") */
    char *admin_listen;         /* "127.0.0.1:8025" */
    size_t n_admin_trusted;     /* peers allowed read-only calls without the token; default 127.0.0.0/8, ::1 */
    struct cfg_cidr admin_trusted[CFG_MAX_CIDRS];
    char *admin_token_file;     /* "" (default): <data_dir>/admin.token */
    char *admin_socket;         /* "" (default): <data_dir>/admin.sock; "off": no Unix socket */
    char *admin_group;          /* group of the token file and socket; "" (default): [node] user's group */

    /* [ingress], [egress] */
    uint32_t ingress_workers; /* 1..CFG_MAX_WORKERS; default "auto" (cfg_workers_auto) */
    uint32_t egress_workers;  /* 1..CFG_MAX_WORKERS; default "auto" */
    bool ingress_workers_auto; /* the count above came from "auto" */
    bool egress_workers_auto;
    uint64_t ingress_max_message_size; /* bytes, SIZE in EHLO; default 50 MiB */
    uint32_t ingress_max_recipients;   /* per transaction, default 100 */
    uint32_t ingress_max_connections;  /* per ingress worker, default 5000 */
    uint32_t ingress_max_conn_per_ip;  /* per worker and client address, default 100 */
    bool ingress_per_ip_limit_relay_networks; /* the per-IP limit applies to relay_networks too; default false */
    char *ingress_postmaster;          /* where mail to <Postmaster> goes; "" (default): RCPT gets 550 */
    char *ingress_relay_recipients;    /* file of valid recipients in relay_domains; "": any local part */
    uint32_t ingress_client_ipv6_prefix; /* an IPv6 client is its /N for the per-client limits, default 64 */
    uint64_t ingress_idle_timeout_ms;  /* wait for the next command, default 5 min */
    uint64_t ingress_data_timeout_ms;  /* whole DATA/BDAT phase, default 10 min */
    uint64_t ingress_min_data_rate;    /* bytes/s during DATA, 0 = no check; default 1024 */
    uint32_t ingress_max_received;     /* Received: headers before 554 5.4.6; default 50 */
    uint64_t ingress_spool_timeout_ms; /* wait for the spool's durable ack before 451; default 30 s */
    size_t n_relay_networks;           /* clients that may relay; default 127.0.0.0/8, ::1/128 */
    struct cfg_cidr relay_networks[CFG_MAX_CIDRS];
    size_t n_relay_domains;            /* domains anyone may send to; lower case, no trailing dot */
    char **relay_domains;              /* NULL when n_relay_domains is 0 */

    /* [egress] delivery (durations in ms) */
    char *egress_resolver;              /* "127.0.0.1:5353,..." ; "" (default) = /etc/resolv.conf */
    uint64_t egress_dns_timeout_ms;     /* per DNS try, default 5 s */
    uint32_t egress_connection_limit;   /* connections per path (source, site), default 32 */
    uint32_t egress_max_deliveries_per_connection; /* default 100 */
    uint32_t egress_max_ready;          /* messages in one ready queue, default 1024 */
    uint64_t egress_connect_timeout_ms; /* default 60 s */
    uint64_t egress_banner_timeout_ms;  /* default 60 s */
    uint64_t egress_command_timeout_ms; /* EHLO, MAIL, RCPT, DATA, RSET; default 5 min */
    uint64_t egress_data_timeout_ms;    /* the reply after the body; default 10 min */
    uint64_t egress_idle_timeout_ms;    /* an idle connection is closed after it; default 60 s */
    uint64_t egress_min_data_rate;      /* bytes/s the DATA deadline allows per body byte; default 10240, 0: none */
    uint32_t egress_port;               /* MX port, default 25 */
    char *egress_tls_ca_file;           /* CA bundle verifying MX certificates; "" (default): system store */
    char *egress_tls_client_certificate; /* offered when a server asks; "" (default): none */
    char *egress_tls_client_private_key; /* its key; set with the certificate or not at all */
    size_t n_sources;                   /* [[egress_source]]; default one "default" source, any address */
    struct cfg_source *sources;
    size_t n_pools;                     /* [egress_pool.NAME]; pools[0] is "default" */
    struct cfg_pool *pools;
    size_t n_queues;                    /* [queue.NAME]; queues[0] is "default" */
    struct cfg_queue *queues;
    size_t n_routes;                    /* [route."DOMAIN"] */
    struct cfg_route *routes;

    /* [bounce], [dsn] */
    size_t n_bounce_rules_files;        /* KumoMTA bounce classifier files, loaded before the built-ins */
    char **bounce_rules_files;
    bool dsn_enabled;                   /* DSNs for bounces and expirations; default true */
    char *dsn_postmaster;               /* From: of DSNs; default "MAILER-DAEMON@<hostname>" */
    uint32_t dsn_max_per_message;       /* DSNs one message may cause, default 3; 0: no limit */
    uint32_t dsn_max_per_sender;        /* DSNs to one address per dsn_sender_window, default 100; 0: no limit */
    uint64_t dsn_sender_window_ms;      /* default 1 h */

    /* [tls] (ingress STARTTLS) */
    bool tls_enabled;       /* advertise STARTTLS, default true */
    char *tls_certificate;  /* PEM path; "" (default): a self-signed certificate is generated at start */
    char *tls_private_key;  /* PEM path; set together with tls_certificate, or both "" */

    /* [auth] (SMTP AUTH for submission, docs/submission.md) */
    char *auth_passwords_file;     /* "user:HASH" lines, crypt(3) yescrypt/SHA-512; "" (default): none */
    uint32_t auth_max_failures;    /* failed AUTH per client address in the window before lockout; default 5,
                                    * 0 = no limit */
    uint64_t auth_failure_window_ms; /* default 10 min */
    uint64_t auth_lockout_ms;        /* the address is refused this long; default 15 min */

    /* [policy] */
    char *policy_file;                  /* Lua file; "" (default): no policy */
    uint64_t policy_instruction_budget; /* per hook call, default 1000000 */
    uint64_t policy_memory_limit;       /* bytes per Lua state, default 64 MiB */
    uint64_t policy_hook_time_limit_ms; /* wall clock per hook call, 1 ms..5 s, default 50 ms */

    /* [shaping] */
    size_t n_shaping_files; /* KumoMTA-format shaping files merged in order; 0 (default): the built-in one */
    char **shaping_files;   /* paths as written (relative: to the directory ringmaild runs in); NULL when 0 */

    /* [spool] */
    uint64_t spool_free_space_min; /* bytes; below it MAIL gets 452; default 1 GiB, 0 = no check */
    char *spool_dir;               /* "" (default): <data_dir>/spool */
    /* the body log (spool_db.h): bodies of body_log_min_size and more in segment files of about
     * body_log_segment_size; read when the spool starts */
    bool spool_body_log;                  /* default true */
    uint64_t spool_body_log_min_size;     /* default 4 KiB */
    uint64_t spool_body_log_segment_size; /* default 64 MiB */

    /* [log] (message log segments) */
    char *log_dir;                  /* "" (default): <data_dir>/logs */
    uint64_t log_segment_size;      /* bytes before a new segment, default 256 MiB */
    uint64_t log_segment_age_ms;    /* age before a new segment, default 1 h */
    uint64_t log_flush_interval_ms; /* buffered records are written at least this often, default 1 s */
    uint64_t log_max_age_ms;        /* finished segments older than this are removed; 0 (default) = kept */
    uint64_t log_max_total_size;    /* segments past this total are removed, oldest first; 0 (default) = no cap */
    uint64_t log_min_free_space;    /* below it on the log file system MAIL gets 452; default 1 GiB, 0 = no check */

    /* [metrics] (docs/metrics.md): label cardinality; the rest are summed under "other"; default 50 each */
    uint32_t metrics_max_sites, metrics_max_providers, metrics_max_sources;

    /* [shm] */
    uint64_t arena_bytes;   /* body arena, default 64 MiB */
    uint32_t ring_slots;    /* records per ring, power of two, default 4096 */
    int hugepages;          /* enum shm_huge_mode: "auto" (default), "require", "off" */

    /* [supervisor] (durations in milliseconds) */
    uint64_t restart_backoff_ms;     /* first restart delay, doubled per quick death, default 100 */
    uint64_t restart_backoff_max_ms; /* cap, default 5000 */
    uint32_t crash_loop_limit;       /* deaths within the window before the role is held off, default 5 */
    uint64_t crash_loop_window_ms;   /* default 30000 */
    uint64_t crash_loop_hold_ms;     /* how long a crash-looping role is held off, default 60000 */
    uint64_t ready_timeout_ms;       /* a role not ready by then counts as a quick death, default 10000 */
    uint64_t heartbeat_timeout_ms;   /* a role whose heartbeat is older is killed and restarted, default 10000 */
    uint64_t drain_timeout_ms;       /* SIGTERM: time given to roles before SIGKILL, default 10000 */
    char *bin_dir;                   /* where the role executables are; default: next to ringmaild */
    uint64_t memory_limit;           /* bytes the node may use; 0 (default) = its cgroup's limit, else the RAM */
    uint64_t memory_soft_reserve;    /* headroom under the limit below which memory is "low", default 256 MiB */
    uint64_t memory_hard_reserve;    /* ... below which it is exhausted: 421/451, unhealthy; default 64 MiB */

    /* [[dkim]] (cfg_dkim.c) */
    size_t n_dkim;
    struct cfg_dkim *dkim; /* NULL when n_dkim is 0 (the default: nothing is signed) */

    /* [feedback] and the VERP keys of [dsn] (cfg_fbl.c; docs/configuration.md, "Feedback mail") */
    size_t n_feedback_domains;
    char **feedback_domains;   /* lower case; mail to any address at them is feedback mail; NULL when none */
    size_t n_feedback_addresses;
    char **feedback_addresses; /* lower case local@domain; NULL when none */
    bool dsn_verp;             /* MAIL FROM of outgoing mail is bounce+TOKEN@dsn_verp_domain */
    char *dsn_verp_domain;     /* "" (default); a feedback domain of its own */
    char *dsn_verp_secret;     /* the HMAC key: verp_secret, or the content of verp_key_file; "" (default) */

    /* [warmup."SOURCE"] (cfg_warmup.c) */
    size_t n_warmups;
    struct cfg_warmup *warmups; /* NULL when n_warmups is 0 (the default: no source is warming) */
    /* [suppression] (cfg_supp.c) */
    bool supp_enabled;          /* default true */
    int supp_on_rcpt;           /* enum cfg_supp_mode, default CFG_SUPP_REJECT */
    bool supp_auto_hard_bounce; /* Bounce records of a hard class add the recipient; default true */
    size_t n_supp_hard_classes; /* default: InvalidRecipient, BadDomain, InactiveMailbox */
    char **supp_hard_classes;
    /* [suppression.tenant."NAME"] on_rcpt: a tenant's own choice, over its listener's (cfg_supp_mode_for) */
    size_t n_supp_tenants;
    char **supp_tenant_names;
    int *supp_tenant_modes; /* enum cfg_supp_mode */
};

/* what a suppressed recipient gets at RCPT */
enum cfg_supp_mode {
    CFG_SUPP_INHERIT = 0, /* a listener: the [suppression] on_rcpt value */
    CFG_SUPP_REJECT = 1,  /* 550 5.7.1 suppressed */
    CFG_SUPP_DROP = 2,    /* 250, then the spool drops it with a Suppressed record */
};
/* cfg_supp_mode_of - the mode of listener i (its own, else on_rcpt) */
enum cfg_supp_mode cfg_supp_mode_of(const struct cfg *c, size_t listener);
/* cfg_supp_mode_for - the mode for a message of `tenant` (NULL: none) on a listener of mode `listener_mode`:
 * the tenant's [suppression.tenant."NAME"] on_rcpt when it has one, else the listener's */
enum cfg_supp_mode cfg_supp_mode_for(const struct cfg *c, enum cfg_supp_mode listener_mode, const char *tenant);
/* cfg_supp_hard - the bounce class is one of hard_classes */
bool cfg_supp_hard(const struct cfg *c, const char *bounce_class);

void cfg_default(struct cfg *c);
/* cfg_workers_auto - the worker count "auto" means on a machine where this process may use `cpus` CPUs:
 * one per CPU, 1..CFG_MAX_WORKERS (docs/configuration.md, "Worker counts", has the measurements) */
uint32_t cfg_workers_auto(bool egress, unsigned cpus);
int cfg_load_file(struct cfg *c, const char *path, char **err);
int cfg_load_text(struct cfg *c, const char *text, size_t len, const char *name, char **err);
void cfg_fini(struct cfg *c);

/* cfg_dlv.c: the delivery tables' lookups */
/* cfg_dlv_queue_for - the [queue.*] entry for a queue name and its domain (never NULL: falls back to default) */
const struct cfg_queue *cfg_dlv_queue_for(const struct cfg *c, const char *queue_name, const char *domain);
/* cfg_dlv_route_for - the [route.*] entry for a domain, "*" when only that matches, NULL when none */
const struct cfg_route *cfg_dlv_route_for(const struct cfg *c, const char *domain);
/* cfg_dlv_route_parse - a host list "host[:port],..." as a [route] value has it (each entry judged as
 * there; ports default to default_port) into *out (domain NULL; cfg_dlv_route_fini it); 0, or -EINVAL
 * with *err (heap) naming the bad entry */
int cfg_dlv_route_parse(const char *list, uint32_t default_port, struct cfg_route *out, char **err);
/* cfg_dlv_route_text - the canonical text of a route's hosts: "[literal]:port" or "host:port", by ','; heap */
char *cfg_dlv_route_text(const struct cfg_route *r);
void cfg_dlv_route_fini(struct cfg_route *r);
/* cfg_dlv_source_find - index of the named source, -1 when none */
int cfg_dlv_source_find(const struct cfg *c, const char *name);
/* cfg_warmup_find - the [warmup."SOURCE"] of a source, NULL when it is not warming */
const struct cfg_warmup *cfg_warmup_find(const struct cfg *c, const char *source);
/* cfg_warmup_parse_time - "2026-12-01" (midnight UTC) or an RFC 3339 time ("2026-12-01T08:00:00Z",
 * "...+02:00", fractions of a second ignored) -> unix ms; false when malformed or before 1970 */
bool cfg_warmup_parse_time(const char *text, uint64_t *out_ms);

/* cfg_fbl.c */
/* cfg_feedback_on - the node takes feedback mail (a feedback domain, address, listener or VERP) */
bool cfg_feedback_on(const struct cfg *c);

#endif
