/*
 * cfg - ringmail.toml, the node's static configuration
 *
 * cfg_default() fills the embedded default; cfg_load_file() / cfg_load_text() apply a file on top
 * of what the struct holds (normally the default) through the toml++ bridge (cfg_toml.h).
 * The schema is a table of sections and keys below; every key is optional. Every unknown table or
 * key, wrong type and bad value is collected as "FILE:LINE: dotted.key: message\n" and the load fails
 * with -EINVAL after the whole file has been checked. A failed load leaves the struct unchanged.
 * Values that end up in SMTP banners, file names or argv (hostname, node_id, user, paths) are
 * checked for characters that would break them, so a config string cannot inject CR/LF or NUL.
 * Ownership: a struct cfg owns all its strings; cfg_fini() frees them.
 */
#include "cfg/cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/cgroup.h"
#include "base/file.h"
#include "cfg/cfg_dkim.h"
#include "cfg/cfg_supp.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_fbl.h"
#include "cfg/cfg_int.h"
#include "cfg/cfg_net.h"
#include "cfg/cfg_http.h"
#include "cfg/cfg_toml.h"
#include "base/mem.h"

#define CFG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CFG_KIB (UINT64_C(1) << 10)
#define CFG_MIB (UINT64_C(1) << 20)
#define CFG_GIB (UINT64_C(1) << 30)
#define CFG_RING_SLOTS_MIN 64u
#define CFG_RING_SLOTS_MAX 1048576u
#define CFG_CRASH_LOOP_LIMIT_MAX 1000u
#define CFG_DURATION_MAX_MS (UINT64_C(365) * 86400000u) /* consumers turn ms into ns; keep far from overflow */
#define CFG_FILE_MAX (16u << 20)                        /* a config file larger than this is a mistake */
#define CFG_MAX_ERRORS 100                              /* then one summary line, so hostile files stay small */
#define CFG_USER_MAX 32

enum cfg_kind {
    CFG_KIND_IDENT = 0, /* node_id: [A-Za-z0-9._-] */
    CFG_KIND_PATH,      /* data_dir, bin_dir */
    CFG_KIND_OPT_PATH,  /* a path where "" means "the default place" (tls, policy, spool, log) */
    CFG_KIND_USER,
    CFG_KIND_GROUP,     /* a group name, "" = the default */
    CFG_KIND_OPT_USER,  /* a user name, "" = the default */
    CFG_KIND_HOST,      /* hostname */
    CFG_KIND_MAILBOX,   /* local@domain, or "" for none */
    CFG_KIND_LOG_LEVEL,
    CFG_KIND_ADDRESS,   /* host:port */
    CFG_KIND_ADDR_LIST, /* "host:port,host:port", "" allowed */
    CFG_KIND_WORKERS,
    CFG_KIND_SIZE,      /* uint64_t bytes within [lo, hi] */
    CFG_KIND_SLOTS,
    CFG_KIND_HUGE,
    CFG_KIND_DURATION,
    CFG_KIND_LIMIT,
    CFG_KIND_U32,       /* integer within [lo, hi] */
    CFG_KIND_U64,
    CFG_KIND_BOOL,
    CFG_KIND_CIDRS,     /* relay_networks, admin trusted_networks */
    CFG_KIND_DOMAINS,   /* relay_domains */
    CFG_KIND_PATHS,     /* shaping files: an array of paths */
    CFG_KIND_SECCOMP,   /* "kill", "log", "off" */
};

struct cfg_key {
    const char *name;
    enum cfg_kind kind;
    size_t off; /* of the field in struct cfg */
    uint64_t lo, hi; /* range of SIZE, U32 and U64 keys, and of DURATION keys (ms) when hi is set */
};

#define CFG_KEY(name, kind, field) {name, kind, offsetof(struct cfg, field), 0, 0}
#define CFG_KEY_IN(name, kind, field, lo, hi) {name, kind, offsetof(struct cfg, field), lo, hi}
/* a list of networks: the array and, in lo, the offset of its count */
#define CFG_KEY_CIDRS(name, field, count) {name, CFG_KIND_CIDRS, offsetof(struct cfg, field), offsetof(struct cfg, count), 0}

struct cfg_section {
    const char *name;
    const struct cfg_key *keys;
    size_t n_keys;
};

static const struct cfg_key cfg_node_keys[] = {
    CFG_KEY("node_id", CFG_KIND_IDENT, node_id),
    CFG_KEY("data_dir", CFG_KIND_PATH, data_dir),
    CFG_KEY("user", CFG_KIND_USER, user),
    CFG_KEY("spool_user", CFG_KIND_OPT_USER, spool_user),
    CFG_KEY("scheduler_user", CFG_KIND_OPT_USER, scheduler_user),
    CFG_KEY("ingress_user", CFG_KIND_OPT_USER, ingress_user),
    CFG_KEY("egress_user", CFG_KIND_OPT_USER, egress_user),
    CFG_KEY("hostname", CFG_KIND_HOST, hostname),
    CFG_KEY("log_level", CFG_KIND_LOG_LEVEL, log_level),
    CFG_KEY("seccomp", CFG_KIND_SECCOMP, seccomp),
};
static const struct cfg_key cfg_admin_keys[] = {
    CFG_KEY("listen", CFG_KIND_ADDRESS, admin_listen),
    CFG_KEY_CIDRS("trusted_networks", admin_trusted, n_admin_trusted),
    CFG_KEY("token_file", CFG_KIND_OPT_PATH, admin_token_file),
    CFG_KEY("socket", CFG_KIND_OPT_PATH, admin_socket),
    CFG_KEY("group", CFG_KIND_GROUP, admin_group),
};
static const struct cfg_key cfg_http_inject_keys[] = {
    CFG_KEY("token_file", CFG_KIND_OPT_PATH, http_inject_token_file),
    CFG_KEY("allow_admin_token", CFG_KIND_BOOL, http_inject_admin_token),
    CFG_KEY_IN("max_recipients", CFG_KIND_U32, http_inject_max_recipients, 1, 100000),
};
static const struct cfg_key cfg_ingress_keys[] = {
    CFG_KEY("workers", CFG_KIND_WORKERS, ingress_workers),
    CFG_KEY_IN("max_message_size", CFG_KIND_SIZE, ingress_max_message_size, CFG_KIB, 2 * CFG_GIB),
    CFG_KEY_IN("max_recipients", CFG_KIND_U32, ingress_max_recipients, 1, 100000),
    CFG_KEY_IN("max_connections", CFG_KIND_U32, ingress_max_connections, 1, 1000000),
    CFG_KEY_IN("max_connections_per_ip", CFG_KIND_U32, ingress_max_conn_per_ip, 1, 1000000),
    CFG_KEY("per_ip_limit_relay_networks", CFG_KIND_BOOL, ingress_per_ip_limit_relay_networks),
    CFG_KEY_IN("client_ipv6_prefix", CFG_KIND_U32, ingress_client_ipv6_prefix, 32, 128),
    CFG_KEY("postmaster", CFG_KIND_MAILBOX, ingress_postmaster),
    CFG_KEY("relay_recipients", CFG_KIND_OPT_PATH, ingress_relay_recipients),
    CFG_KEY("idle_timeout", CFG_KIND_DURATION, ingress_idle_timeout_ms),
    CFG_KEY("data_timeout", CFG_KIND_DURATION, ingress_data_timeout_ms),
    CFG_KEY_IN("min_data_rate", CFG_KIND_U64, ingress_min_data_rate, 0, 1000000000),
    CFG_KEY_IN("max_received_headers", CFG_KIND_U32, ingress_max_received, 1, 1000),
    CFG_KEY("spool_timeout", CFG_KIND_DURATION, ingress_spool_timeout_ms),
    CFG_KEY_CIDRS("relay_networks", relay_networks, n_relay_networks),
    CFG_KEY("relay_domains", CFG_KIND_DOMAINS, relay_domains),
};
static const struct cfg_key cfg_egress_keys[] = {
    CFG_KEY("workers", CFG_KIND_WORKERS, egress_workers),
    CFG_KEY("resolver", CFG_KIND_ADDR_LIST, egress_resolver),
    CFG_KEY("dns_timeout", CFG_KIND_DURATION, egress_dns_timeout_ms),
    CFG_KEY_IN("connection_limit", CFG_KIND_U32, egress_connection_limit, 1, 100000),
    CFG_KEY_IN("max_deliveries_per_connection", CFG_KIND_U32, egress_max_deliveries_per_connection, 1, 1000000),
    CFG_KEY_IN("max_ready", CFG_KIND_U32, egress_max_ready, 1, 10000000),
    CFG_KEY("connect_timeout", CFG_KIND_DURATION, egress_connect_timeout_ms),
    CFG_KEY("banner_timeout", CFG_KIND_DURATION, egress_banner_timeout_ms),
    CFG_KEY("command_timeout", CFG_KIND_DURATION, egress_command_timeout_ms),
    CFG_KEY("data_timeout", CFG_KIND_DURATION, egress_data_timeout_ms),
    CFG_KEY("idle_timeout", CFG_KIND_DURATION, egress_idle_timeout_ms),
    CFG_KEY_IN("port", CFG_KIND_U32, egress_port, 1, 65535),
    CFG_KEY("tls_ca_file", CFG_KIND_OPT_PATH, egress_tls_ca_file),
    CFG_KEY("tls_client_certificate", CFG_KIND_OPT_PATH, egress_tls_client_certificate),
    CFG_KEY("tls_client_private_key", CFG_KIND_OPT_PATH, egress_tls_client_private_key),
    CFG_KEY_IN("min_data_rate", CFG_KIND_U64, egress_min_data_rate, 0, 1000000000),
};
static const struct cfg_key cfg_shm_keys[] = {
    CFG_KEY_IN("arena_size", CFG_KIND_SIZE, arena_bytes, CFG_MIB, 64 * CFG_GIB),
    CFG_KEY("ring_slots", CFG_KIND_SLOTS, ring_slots),
    CFG_KEY("hugepages", CFG_KIND_HUGE, hugepages),
};
static const struct cfg_key cfg_supervisor_keys[] = {
    CFG_KEY("restart_backoff", CFG_KIND_DURATION, restart_backoff_ms),
    CFG_KEY("restart_backoff_max", CFG_KIND_DURATION, restart_backoff_max_ms),
    CFG_KEY("crash_loop_limit", CFG_KIND_LIMIT, crash_loop_limit),
    CFG_KEY("crash_loop_window", CFG_KIND_DURATION, crash_loop_window_ms),
    CFG_KEY("crash_loop_hold", CFG_KIND_DURATION, crash_loop_hold_ms),
    CFG_KEY("ready_timeout", CFG_KIND_DURATION, ready_timeout_ms),
    CFG_KEY("heartbeat_timeout", CFG_KIND_DURATION, heartbeat_timeout_ms),
    CFG_KEY("drain_timeout", CFG_KIND_DURATION, drain_timeout_ms),
    CFG_KEY("bin_dir", CFG_KIND_PATH, bin_dir),
    CFG_KEY_IN("memory_limit", CFG_KIND_SIZE, memory_limit, 0, UINT64_C(1) << 50),
    CFG_KEY_IN("memory_soft_reserve", CFG_KIND_SIZE, memory_soft_reserve, 0, UINT64_C(1) << 50),
    CFG_KEY_IN("memory_hard_reserve", CFG_KIND_SIZE, memory_hard_reserve, 0, UINT64_C(1) << 50),
};
static const struct cfg_key cfg_tls_keys[] = {
    CFG_KEY("enabled", CFG_KIND_BOOL, tls_enabled),
    CFG_KEY("certificate", CFG_KIND_OPT_PATH, tls_certificate),
    CFG_KEY("private_key", CFG_KIND_OPT_PATH, tls_private_key),
};
static const struct cfg_key cfg_auth_keys[] = {
    CFG_KEY("passwords_file", CFG_KIND_OPT_PATH, auth_passwords_file),
    CFG_KEY_IN("max_failures_per_ip", CFG_KIND_U32, auth_max_failures, 0, 1000000),
    CFG_KEY("failure_window", CFG_KIND_DURATION, auth_failure_window_ms),
    CFG_KEY("lockout", CFG_KIND_DURATION, auth_lockout_ms),
};
static const struct cfg_key cfg_policy_keys[] = {
    CFG_KEY("file", CFG_KIND_OPT_PATH, policy_file),
    CFG_KEY_IN("instruction_budget", CFG_KIND_U64, policy_instruction_budget, 1000, UINT64_C(10000000000)),
    CFG_KEY_IN("memory_limit", CFG_KIND_SIZE, policy_memory_limit, CFG_MIB, 4 * CFG_GIB),
    CFG_KEY_IN("hook_time_limit", CFG_KIND_DURATION, policy_hook_time_limit_ms, 1, 5000),
};
static const struct cfg_key cfg_shaping_keys[] = {
    {"files", CFG_KIND_PATHS, 0, 0, 0},
};
static const struct cfg_key cfg_spool_keys[] = {
    CFG_KEY_IN("free_space_min", CFG_KIND_SIZE, spool_free_space_min, 0, 1024 * CFG_GIB),
    CFG_KEY("dir", CFG_KIND_OPT_PATH, spool_dir),
    CFG_KEY("body_log", CFG_KIND_BOOL, spool_body_log),
    CFG_KEY_IN("body_log_min_size", CFG_KIND_SIZE, spool_body_log_min_size, 512, CFG_GIB),
    CFG_KEY_IN("body_log_segment_size", CFG_KIND_SIZE, spool_body_log_segment_size, CFG_MIB, 1024 * CFG_GIB),
};
static const struct cfg_key cfg_log_keys[] = {
    CFG_KEY("dir", CFG_KIND_OPT_PATH, log_dir),
    CFG_KEY_IN("segment_size", CFG_KIND_SIZE, log_segment_size, 64 * CFG_KIB, 64 * CFG_GIB),
    CFG_KEY("segment_age", CFG_KIND_DURATION, log_segment_age_ms),
    CFG_KEY("flush_interval", CFG_KIND_DURATION, log_flush_interval_ms),
    CFG_KEY("max_age", CFG_KIND_DURATION, log_max_age_ms),
    CFG_KEY_IN("max_total_size", CFG_KIND_SIZE, log_max_total_size, 0, UINT64_C(1) << 50),
    CFG_KEY_IN("min_free_space", CFG_KIND_SIZE, log_min_free_space, 0, 1024 * CFG_GIB),
};
static const struct cfg_key cfg_metrics_keys[] = {
    CFG_KEY_IN("max_sites", CFG_KIND_U32, metrics_max_sites, 1, 10000),
    CFG_KEY_IN("max_providers", CFG_KIND_U32, metrics_max_providers, 1, 10000),
    CFG_KEY_IN("max_sources", CFG_KIND_U32, metrics_max_sources, 1, 10000),
};

static const struct cfg_section cfg_sections[] = {
    {"node", cfg_node_keys, CFG_ARRAY_SIZE(cfg_node_keys)},
    {"admin", cfg_admin_keys, CFG_ARRAY_SIZE(cfg_admin_keys)},
    {"ingress", cfg_ingress_keys, CFG_ARRAY_SIZE(cfg_ingress_keys)},
    {"http_inject", cfg_http_inject_keys, CFG_ARRAY_SIZE(cfg_http_inject_keys)},
    {"egress", cfg_egress_keys, CFG_ARRAY_SIZE(cfg_egress_keys)},
    {"shm", cfg_shm_keys, CFG_ARRAY_SIZE(cfg_shm_keys)},
    {"supervisor", cfg_supervisor_keys, CFG_ARRAY_SIZE(cfg_supervisor_keys)},
    {"tls", cfg_tls_keys, CFG_ARRAY_SIZE(cfg_tls_keys)},
    {"auth", cfg_auth_keys, CFG_ARRAY_SIZE(cfg_auth_keys)},
    {"policy", cfg_policy_keys, CFG_ARRAY_SIZE(cfg_policy_keys)},
    {"shaping", cfg_shaping_keys, CFG_ARRAY_SIZE(cfg_shaping_keys)},
    {"spool", cfg_spool_keys, CFG_ARRAY_SIZE(cfg_spool_keys)},
    {"log", cfg_log_keys, CFG_ARRAY_SIZE(cfg_log_keys)},
    {"metrics", cfg_metrics_keys, CFG_ARRAY_SIZE(cfg_metrics_keys)},
};


__attribute__((format(printf, 3, 4))) void cfg_errf(struct cfg_errs *e, unsigned line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    e->count++;
    if (e->count > CFG_MAX_ERRORS)
        return;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    buf_printf(&e->text, "%s:%u: %s\n", e->name, line, msg);
}

/* cfg_quote - a value echoed into an error message, quoted, control bytes escaped, truncated */
const char *cfg_quote(char *buf, size_t size, const char *s)
{
    size_t o = 0;
    buf[o++] = '"';
    for (; *s && o + 8 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (*s) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static char *cfg_host_name(void)
{
    char buf[256];

    if (gethostname(buf, sizeof(buf)) != 0 || buf[0] == '\0')
        return xstrdup("localhost");
    buf[sizeof(buf) - 1] = '\0';
    return xstrdup(buf);
}

/* auto_cpus - the CPUs "auto" sizes for, read once per process: every role loads the configuration at
 * start and at each reload, and the count only matters to the supervisor when it starts the node */
static unsigned auto_cpus(void)
{
    static unsigned cpus;
    if (cpus == 0)
        cpus = cgroup_cpus();
    return cpus;
}

void cfg_default(struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->source = xstrdup("(embedded default)");
    c->node_id = cfg_host_name();
    c->data_dir = xstrdup("./ringmail-data");
    c->user = xstrdup("nobody");
    c->spool_user = xstrdup("");
    c->scheduler_user = xstrdup("");
    c->ingress_user = xstrdup("");
    c->egress_user = xstrdup("");
    c->hostname = cfg_host_name();
    c->log_level = LOG_LEVEL_INFO;
    c->n_listeners = 1;
    c->listeners[0].address = xstrdup("127.0.0.1:2525");
    c->listeners[0].name = xstrdup("smtp");
    c->admin_listen = xstrdup("127.0.0.1:8025");
    c->n_admin_trusted = 2;
    c->admin_trusted[0] = (struct cfg_cidr){.family = AF_INET, .addr = {127}, .prefix = 8};
    c->admin_trusted[1] = (struct cfg_cidr){.family = AF_INET6, .addr = {[15] = 1}, .prefix = 128};
    c->admin_token_file = xstrdup("");
    c->http_inject_token_file = xstrdup("");
    c->http_inject_admin_token = true;
    c->http_inject_max_recipients = 1000;
    c->admin_socket = xstrdup("");
    c->admin_group = xstrdup("");
    /* "auto": from the CPUs this process may use (cfg_workers_auto) */
    unsigned cpus = auto_cpus();
    c->ingress_workers = cfg_workers_auto(false, cpus);
    c->egress_workers = cfg_workers_auto(true, cpus);
    c->ingress_workers_auto = c->egress_workers_auto = true;
    c->arena_bytes = 64 * CFG_MIB;
    c->ring_slots = 4096;
    c->hugepages = 0; /* SHM_HUGE_AUTO */
    c->restart_backoff_ms = 100;
    c->memory_soft_reserve = 256 * CFG_MIB;
    c->memory_hard_reserve = 64 * CFG_MIB;
    c->restart_backoff_max_ms = 5000;
    c->crash_loop_limit = 5;
    c->crash_loop_window_ms = 30000;
    c->crash_loop_hold_ms = 60000;
    c->ready_timeout_ms = 10000;
    c->heartbeat_timeout_ms = 10000;
    c->drain_timeout_ms = 10000;
    c->bin_dir = NULL; /* the supervisor looks next to its own executable */
    c->ingress_max_message_size = 50 * CFG_MIB;
    c->ingress_max_recipients = 100;
    c->ingress_max_connections = 5000;
    c->ingress_max_conn_per_ip = 100;
    c->ingress_client_ipv6_prefix = 64;
    c->ingress_postmaster = xstrdup("");
    c->ingress_relay_recipients = xstrdup("");
    c->ingress_idle_timeout_ms = 300000; /* RFC 5321 4.5.3.2.7 */
    c->ingress_data_timeout_ms = 600000;
    c->ingress_min_data_rate = 1024;
    c->ingress_max_received = 50;
    c->ingress_spool_timeout_ms = 30000;
    c->n_relay_networks = 2;
    c->relay_networks[0] = (struct cfg_cidr){.family = AF_INET, .addr = {127}, .prefix = 8};
    c->relay_networks[1] = (struct cfg_cidr){.family = AF_INET6, .addr = {[15] = 1}, .prefix = 128};
    c->n_relay_domains = 0;
    c->relay_domains = NULL;
    c->tls_enabled = true;
    c->tls_certificate = xstrdup("");
    c->tls_private_key = xstrdup("");
    c->auth_passwords_file = xstrdup("");
    c->auth_max_failures = 5;
    c->auth_failure_window_ms = 600000;
    c->auth_lockout_ms = 900000;
    c->policy_file = xstrdup("");
    c->policy_instruction_budget = 1000000;
    c->policy_memory_limit = 64 * CFG_MIB;
    c->policy_hook_time_limit_ms = 50;
    c->spool_free_space_min = CFG_GIB;
    c->spool_body_log = true;
    c->spool_body_log_min_size = 4 * CFG_KIB;
    c->spool_body_log_segment_size = 64 * CFG_MIB;
    c->spool_dir = xstrdup("");
    c->log_dir = xstrdup("");
    c->log_segment_size = 256 * CFG_MIB;
    c->log_segment_age_ms = 3600000;
    c->log_flush_interval_ms = 1000;
    c->log_max_age_ms = 0;
    c->log_max_total_size = 0;
    c->log_min_free_space = CFG_GIB;
    c->metrics_max_sites = 50;
    c->metrics_max_providers = 50;
    c->metrics_max_sources = 50;
    cfg_dlv_default(c);
    cfg_fbl_default(c);
    cfg_supp_default(c);
}

void cfg_fini(struct cfg *c)
{
    free(c->source);
    free(c->node_id);
    free(c->data_dir);
    free(c->user);
    free(c->spool_user);
    free(c->scheduler_user);
    free(c->ingress_user);
    free(c->egress_user);
    free(c->hostname);
    for (size_t i = 0; i < c->n_listeners && i < CFG_MAX_LISTENERS; i++) {
        free(c->listeners[i].address);
        free(c->listeners[i].name);
    }
    free(c->admin_listen);
    free(c->admin_token_file);
    free(c->http_inject_token_file);
    cfg_http_free(c);
    free(c->admin_socket);
    free(c->admin_group);
    free(c->bin_dir);
    cfg_net_free_domains(c->relay_domains, c->n_relay_domains);
    free(c->tls_certificate);
    free(c->tls_private_key);
    free(c->auth_passwords_file);
    free(c->ingress_postmaster);
    free(c->ingress_relay_recipients);
    free(c->policy_file);
    cfg_net_free_domains(c->shaping_files, c->n_shaping_files);
    free(c->spool_dir);
    free(c->log_dir);
    cfg_dlv_fini(c);
    cfg_dkim_fini(c);
    cfg_fbl_fini(c);
    cfg_supp_fini(c);
    memset(c, 0, sizeof(*c));
}

static char *cfg_dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* a deep copy, so that a failed load can be thrown away without touching the caller's struct */
static void cfg_copy(struct cfg *dst, const struct cfg *src)
{
    *dst = *src;
    dst->source = cfg_dup_or_null(src->source);
    dst->node_id = cfg_dup_or_null(src->node_id);
    dst->data_dir = cfg_dup_or_null(src->data_dir);
    dst->user = cfg_dup_or_null(src->user);
    dst->spool_user = cfg_dup_or_null(src->spool_user);
    dst->scheduler_user = cfg_dup_or_null(src->scheduler_user);
    dst->ingress_user = cfg_dup_or_null(src->ingress_user);
    dst->egress_user = cfg_dup_or_null(src->egress_user);
    dst->hostname = cfg_dup_or_null(src->hostname);
    for (size_t i = 0; i < src->n_listeners && i < CFG_MAX_LISTENERS; i++) {
        dst->listeners[i].address = cfg_dup_or_null(src->listeners[i].address);
        dst->listeners[i].name = cfg_dup_or_null(src->listeners[i].name);
    }
    dst->admin_listen = cfg_dup_or_null(src->admin_listen);
    dst->admin_token_file = cfg_dup_or_null(src->admin_token_file);
    dst->http_inject_token_file = cfg_dup_or_null(src->http_inject_token_file);
    cfg_http_copy(dst, src);
    dst->admin_socket = cfg_dup_or_null(src->admin_socket);
    dst->admin_group = cfg_dup_or_null(src->admin_group);
    dst->bin_dir = cfg_dup_or_null(src->bin_dir);
    dst->relay_domains = NULL;
    if (src->relay_domains && src->n_relay_domains > 0) {
        dst->relay_domains = xcalloc(src->n_relay_domains, sizeof(char *));
        for (size_t i = 0; i < src->n_relay_domains; i++)
            dst->relay_domains[i] = cfg_dup_or_null(src->relay_domains[i]);
    }
    dst->tls_certificate = cfg_dup_or_null(src->tls_certificate);
    dst->tls_private_key = cfg_dup_or_null(src->tls_private_key);
    dst->auth_passwords_file = cfg_dup_or_null(src->auth_passwords_file);
    dst->ingress_postmaster = cfg_dup_or_null(src->ingress_postmaster);
    dst->ingress_relay_recipients = cfg_dup_or_null(src->ingress_relay_recipients);
    dst->policy_file = cfg_dup_or_null(src->policy_file);
    dst->shaping_files = NULL;
    if (src->shaping_files && src->n_shaping_files > 0) {
        dst->shaping_files = xcalloc(src->n_shaping_files, sizeof(char *));
        for (size_t i = 0; i < src->n_shaping_files; i++)
            dst->shaping_files[i] = cfg_dup_or_null(src->shaping_files[i]);
    }
    dst->spool_dir = cfg_dup_or_null(src->spool_dir);
    dst->log_dir = cfg_dup_or_null(src->log_dir);
    cfg_dlv_copy(dst, src);
    cfg_dkim_copy(dst, src);
    cfg_fbl_copy(dst, src);
    cfg_supp_copy(dst, src);
}

static void cfg_set_str(char **slot, const char *s)
{
    free(*slot);
    *slot = xstrdup(s);
}

bool cfg_expect(struct cfg_errs *e, const struct cfg_toml_node *v, enum cfg_toml_type t, const char *key,
                       const char *what)
{
    if (v->type == t)
        return true;
    cfg_errf(e, v->line, "%s: expected %s, got %s", key, what, cfg_toml_type_name(v->type));
    return false;
}

/* cfg_int_in - an integer value within [lo, hi] */
bool cfg_int_in(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, int64_t lo, int64_t hi)
{
    if (!cfg_expect(e, v, CFG_TOML_INT, key, "an integer"))
        return false;
    if (v->i < lo || v->i > hi) {
        cfg_errf(e, v->line, "%s: %lld is out of range (%lld..%lld)", key, (long long)v->i, (long long)lo,
                 (long long)hi);
        return false;
    }
    return true;
}

static void cfg_apply_string(struct cfg_errs *e, struct cfg *c, const struct cfg_key *k, const char *key,
                             const struct cfg_toml_node *v)
{
    char **slot = (char **)((char *)c + k->off);
    char q[96];
    const char *why = NULL;

    if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
        return;
    switch (k->kind) {
    case CFG_KIND_IDENT:
        if (!cfg_value_valid_ident(v->str, CFG_IDENT_MAX, false))
            why = "must be 1..64 characters of letters, digits, '.', '_' and '-'";
        break;
    case CFG_KIND_USER:
        if (!cfg_value_valid_ident(v->str, CFG_USER_MAX, true))
            why = "is not a valid user name (1..32 of letters, digits, '.', '_', '-'; not starting with '-')";
        break;
    case CFG_KIND_GROUP:
        if (v->str[0] != '\0' && !cfg_value_valid_ident(v->str, CFG_USER_MAX, true))
            why = "is not a valid group name (1..32 of letters, digits, '.', '_', '-'; or \"\" for the default)";
        break;
    case CFG_KIND_OPT_USER:
        if (v->str[0] != '\0' && !cfg_value_valid_ident(v->str, CFG_USER_MAX, true))
            why = "is not a valid user name (1..32 of letters, digits, '.', '_', '-'; or \"\" for [node] user)";
        break;
    case CFG_KIND_HOST:
        if (!cfg_value_valid_hostname(v->str, strlen(v->str)))
            why = "is not a valid host name";
        break;
    case CFG_KIND_MAILBOX:
        if (v->str[0] != '\0' && !cfg_value_valid_mailbox(v->str))
            why = "is not an address local@domain (or \"\" for none)";
        break;
    case CFG_KIND_PATH:
        if (!cfg_value_valid_path(v->str))
            why = "must be a non-empty path without control characters";
        break;
    case CFG_KIND_OPT_PATH:
        if (v->str[0] != '\0' && !cfg_value_valid_path(v->str))
            why = "must be a path without control characters (or \"\" for the default)";
        break;
    case CFG_KIND_ADDRESS:
        why = cfg_value_check_address(v->str);
        break;
    case CFG_KIND_ADDR_LIST: {
        char *list = xstrdup(v->str), *save = NULL;
        for (char *a = strtok_r(list, ",", &save); a && !why; a = strtok_r(NULL, ",", &save))
            why = cfg_value_check_address(a);
        free(list);
        break;
    }
    default:
        break;
    }
    if (why) {
        cfg_errf(e, v->line, "%s: %s %s", key, cfg_quote(q, sizeof(q), v->str), why);
        return;
    }
    cfg_set_str(slot, v->str);
}

static void cfg_apply_key(struct cfg_errs *e, struct cfg *c, const struct cfg_key *k, const char *key,
                          const struct cfg_toml_node *v)
{
    void *field = (char *)c + k->off;
    char q[96];
    uint64_t u = 0;

    switch (k->kind) {
    case CFG_KIND_IDENT:
    case CFG_KIND_PATH:
    case CFG_KIND_OPT_PATH:
    case CFG_KIND_USER:
    case CFG_KIND_GROUP:
    case CFG_KIND_OPT_USER:
    case CFG_KIND_HOST:
    case CFG_KIND_MAILBOX:
    case CFG_KIND_ADDRESS:
    case CFG_KIND_ADDR_LIST:
        cfg_apply_string(e, c, k, key, v);
        return;
    case CFG_KIND_CIDRS:
        cfg_net_apply_cidrs(e, (struct cfg_cidr *)field, (size_t *)((char *)c + k->lo), key, v);
        return;
    case CFG_KIND_DOMAINS:
        cfg_net_apply_domains(e, c, key, v);
        return;
    case CFG_KIND_PATHS: {
        /* the file's list replaces the current one as a whole; any bad element: the list is refused */
        unsigned before = e->count;
        char ekey[160];
        if (!cfg_expect(e, v, CFG_TOML_ARRAY, key, "an array of paths"))
            return;
        char **list = xcalloc(v->n_children + 1, sizeof(char *));
        size_t n = 0;
        for (size_t i = 0; i < v->n_children; i++) {
            const struct cfg_toml_node *p = v->children[i];
            snprintf(ekey, sizeof(ekey), "%s[%zu]", key, i);
            if (!cfg_expect(e, p, CFG_TOML_STRING, ekey, "a string"))
                continue;
            if (!cfg_value_valid_path(p->str)) {
                cfg_errf(e, p->line, "%s: %s must be a non-empty path without control characters", ekey,
                         cfg_quote(q, sizeof(q), p->str));
                continue;
            }
            list[n++] = xstrdup(p->str);
        }
        if (e->count != before || n == 0) {
            cfg_net_free_domains(list, n);
            if (e->count == before)
                cfg_errf(e, v->line, "%s: an empty list (leave the key out for the built-in shaping file)", key);
            return;
        }
        cfg_net_free_domains(c->shaping_files, c->n_shaping_files);
        c->shaping_files = list;
        c->n_shaping_files = n;
        return;
    }
    case CFG_KIND_BOOL:
        if (cfg_expect(e, v, CFG_TOML_BOOL, key, "a boolean"))
            *(bool *)field = v->b;
        return;
    case CFG_KIND_U32:
        if (cfg_int_in(e, v, key, (int64_t)k->lo, (int64_t)k->hi))
            *(uint32_t *)field = (uint32_t)v->i;
        return;
    case CFG_KIND_U64:
        if (cfg_int_in(e, v, key, (int64_t)k->lo, (int64_t)k->hi))
            *(uint64_t *)field = (uint64_t)v->i;
        return;
    case CFG_KIND_LOG_LEVEL: {
        enum log_level level;
        if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
            return;
        if (!log_level_parse(v->str, &level)) {
            cfg_errf(e, v->line, "%s: %s is not one of \"debug\", \"info\", \"warn\", \"error\"", key,
                     cfg_quote(q, sizeof(q), v->str));
            return;
        }
        *(enum log_level *)field = level;
        return;
    }
    case CFG_KIND_HUGE:
    case CFG_KIND_SECCOMP: {
        /* both three words, stored as their index (enum shm_huge_mode, enum cfg_seccomp) */
        static const char *const huge[] = {"auto", "require", "off"};
        static const char *const seccomp[] = {"kill", "log", "off"};
        const char *const *modes = k->kind == CFG_KIND_HUGE ? huge : seccomp;
        if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
            return;
        for (int i = 0; i < 3; i++) {
            if (strcmp(v->str, modes[i]) == 0) {
                *(int *)field = i;
                return;
            }
        }
        cfg_errf(e, v->line, "%s: %s is not one of \"%s\", \"%s\", \"%s\"", key, cfg_quote(q, sizeof(q), v->str),
                 modes[0], modes[1], modes[2]);
        return;
    }
    case CFG_KIND_WORKERS: {
        bool egress = field == (void *)&c->egress_workers;
        bool *autof = egress ? &c->egress_workers_auto : &c->ingress_workers_auto;
        if (v->type == CFG_TOML_STRING && strcmp(v->str, "auto") == 0) {
            *(uint32_t *)field = cfg_workers_auto(egress, auto_cpus());
            *autof = true;
        } else if (v->type == CFG_TOML_STRING) {
            cfg_errf(e, v->line, "%s: %s is neither \"auto\" nor a number 1..%d", key, cfg_quote(q, sizeof(q), v->str),
                     CFG_MAX_WORKERS);
        } else if (cfg_int_in(e, v, key, 1, CFG_MAX_WORKERS)) {
            *(uint32_t *)field = (uint32_t)v->i;
            *autof = false;
        }
        return;
    }
    case CFG_KIND_LIMIT:
        if (cfg_int_in(e, v, key, 1, CFG_CRASH_LOOP_LIMIT_MAX))
            *(uint32_t *)field = (uint32_t)v->i;
        return;
    case CFG_KIND_SLOTS:
        if (!cfg_int_in(e, v, key, CFG_RING_SLOTS_MIN, CFG_RING_SLOTS_MAX))
            return;
        if ((v->i & (v->i - 1)) != 0) {
            cfg_errf(e, v->line, "%s: %lld is not a power of two", key, (long long)v->i);
            return;
        }
        *(uint32_t *)field = (uint32_t)v->i;
        return;
    case CFG_KIND_SIZE:
        if (v->type == CFG_TOML_STRING) {
            if (!cfg_value_parse_size(v->str, &u)) {
                cfg_errf(e, v->line, "%s: %s is not a size (a number with B, KiB, MiB or GiB)", key,
                         cfg_quote(q, sizeof(q), v->str));
                return;
            }
        } else if (v->type == CFG_TOML_INT && v->i >= 0) {
            u = (uint64_t)v->i;
        } else if (v->type == CFG_TOML_INT) {
            cfg_errf(e, v->line, "%s: %lld is negative", key, (long long)v->i);
            return;
        } else {
            cfg_errf(e, v->line, "%s: expected a size (string like \"64MiB\" or an integer of bytes), got %s", key,
                     cfg_toml_type_name(v->type));
            return;
        }
        if (u < k->lo || u > k->hi) {
            char lo[32], hi[32];
            cfg_errf(e, v->line, "%s: %llu bytes is out of range (%s..%s)", key, (unsigned long long)u,
                     cfg_value_size_text(lo, sizeof(lo), k->lo), cfg_value_size_text(hi, sizeof(hi), k->hi));
            return;
        }
        *(uint64_t *)field = u;
        return;
    case CFG_KIND_DURATION:
        if (v->type == CFG_TOML_STRING) {
            if (!cfg_value_parse_duration(v->str, &u)) {
                cfg_errf(e, v->line, "%s: %s is not a duration (a number with ms, s, m, h or d)", key,
                         cfg_quote(q, sizeof(q), v->str));
                return;
            }
        } else if (v->type == CFG_TOML_INT && v->i > 0) {
            u = (uint64_t)v->i;
        } else if (v->type != CFG_TOML_INT) {
            cfg_errf(e, v->line, "%s: expected a duration (string like \"10s\" or an integer of milliseconds), got %s",
                     key, cfg_toml_type_name(v->type));
            return;
        }
        if (u == 0) {
            cfg_errf(e, v->line, "%s: must be greater than 0", key);
            return;
        }
        if (u > CFG_DURATION_MAX_MS) {
            cfg_errf(e, v->line, "%s: %llu ms is longer than the maximum of 365 days", key, (unsigned long long)u);
            return;
        }
        if (k->hi && (u < k->lo || u > k->hi)) {
            cfg_errf(e, v->line, "%s: %llu ms is out of range (%llu..%llu ms)", key, (unsigned long long)u,
                     (unsigned long long)k->lo, (unsigned long long)k->hi);
            return;
        }
        *(uint64_t *)field = u;
        return;
    }
}

static void cfg_apply_section(struct cfg_errs *e, struct cfg *c, const struct cfg_section *s,
                              const struct cfg_toml_node *t)
{
    char key[128];

    if (!cfg_expect(e, t, CFG_TOML_TABLE, s->name, "a table"))
        return;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        const struct cfg_key *k = NULL;
        for (size_t j = 0; j < s->n_keys && !k; j++) {
            if (strcmp(v->key, s->keys[j].name) == 0)
                k = &s->keys[j];
        }
        snprintf(key, sizeof(key), "%s.%s", s->name, v->key);
        if (!k) {
            char q[96];
            cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
            continue;
        }
        cfg_apply_key(e, c, k, key, v);
    }
}

static void cfg_apply_root(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *root)
{
    char q[96];

    for (size_t i = 0; i < root->n_children; i++) {
        const struct cfg_toml_node *t = root->children[i];
        const struct cfg_section *s = NULL;
        if (strcmp(t->key, "listener") == 0) {
            cfg_net_apply_listeners(e, c, t);
            continue;
        }
        if (strcmp(t->key, "http_listener") == 0) {
            cfg_http_apply_listeners(e, c, t);
            continue;
        }
        if (strcmp(t->key, "dkim") == 0) {
            cfg_dkim_apply(e, c, t);
            continue;
        }
        if (strcmp(t->key, "feedback") == 0) {
            cfg_fbl_apply(e, c, t);
            continue;
        }
        if (strcmp(t->key, "suppression") == 0) {
            cfg_supp_apply(e, c, t);
            continue;
        }
        if (cfg_dlv_owns(t->key))
            continue; /* read by cfg_dlv_apply() below, in dependency order */
        for (size_t j = 0; j < CFG_ARRAY_SIZE(cfg_sections) && !s; j++) {
            if (strcmp(t->key, cfg_sections[j].name) == 0)
                s = &cfg_sections[j];
        }
        if (s)
            cfg_apply_section(e, c, s, t);
        else if (t->type == CFG_TOML_TABLE)
            cfg_errf(e, t->line, "unknown table %s", cfg_quote(q, sizeof(q), t->key));
        else
            cfg_errf(e, t->line, "unknown key %s", cfg_quote(q, sizeof(q), t->key));
    }

    cfg_dlv_apply(e, c, root);

    /* checks across keys, reported where the operator wrote the key that makes the pair wrong */
    if (c->restart_backoff_ms > c->restart_backoff_max_ms) {
        const struct cfg_toml_node *sv = cfg_toml_find(root, "supervisor");
        const struct cfg_toml_node *k = cfg_toml_find(sv, "restart_backoff");
        if (!k)
            k = cfg_toml_find(sv, "restart_backoff_max");
        cfg_errf(e, k ? k->line : 0, "supervisor.restart_backoff: %llu ms is longer than restart_backoff_max (%llu ms)",
                 (unsigned long long)c->restart_backoff_ms, (unsigned long long)c->restart_backoff_max_ms);
    }
    for (size_t i = 0; i < c->n_listeners; i++) {
        if (c->admin_listen && strcmp(c->admin_listen, c->listeners[i].address) == 0) {
            const struct cfg_toml_node *k = cfg_toml_find(cfg_toml_find(root, "admin"), "listen");
            cfg_errf(e, k ? k->line : 0, "admin.listen: %s is also an SMTP listener address",
                     cfg_quote(q, sizeof(q), c->admin_listen));
        }
    }
    cfg_http_check(e, c, root);
    cfg_fbl_check(e, c, root);
    for (size_t i = 0; i < c->n_listeners; i++) {
        if (c->listeners[i].implicit_tls && !c->tls_enabled) {
            const struct cfg_toml_node *k = cfg_toml_find(cfg_toml_find(root, "tls"), "enabled");
            cfg_errf(e, k ? k->line : 0, "listener[%zu].tls: \"implicit\" needs [tls] enabled = true", i);
        }
    }
    bool has_ccert = c->egress_tls_client_certificate && c->egress_tls_client_certificate[0];
    bool has_ckey = c->egress_tls_client_private_key && c->egress_tls_client_private_key[0];
    if (has_ccert != has_ckey) {
        const char *name = has_ccert ? "tls_client_certificate" : "tls_client_private_key";
        const struct cfg_toml_node *k = cfg_toml_find(cfg_toml_find(root, "egress"), name);
        cfg_errf(e, k ? k->line : 0, "egress.%s: tls_client_certificate and tls_client_private_key must be set together",
                 name);
    }
    bool has_cert = c->tls_certificate && c->tls_certificate[0];
    bool has_key = c->tls_private_key && c->tls_private_key[0];
    if (has_cert != has_key) {
        /* at the key of the pair this file wrote, preferring the one that is set */
        const struct cfg_toml_node *tls = cfg_toml_find(root, "tls");
        const char *name = has_cert ? "certificate" : "private_key";
        const struct cfg_toml_node *k = cfg_toml_find(tls, name);
        if (!k) {
            name = has_cert ? "private_key" : "certificate";
            k = cfg_toml_find(tls, name);
        }
        cfg_errf(e, k ? k->line : tls ? tls->line : 0,
                 "tls.%s: certificate and private_key must be set together (or both left empty for a generated "
                 "self-signed certificate)",
                 k ? name : has_cert ? "certificate" : "private_key");
    }
}

/* "auto": one ingress and one egress worker per CPU; on 2 CPUs two delivery processes move 11% more 10 KB
 * mail than one, a second SMTP server process changes nothing measurable (docs/configuration.md, "Worker
 * counts", has the runs) */
uint32_t cfg_workers_auto(bool egress, unsigned cpus)
{
    (void)egress; /* the same rule for both today; the argument keeps callers ready for a different one */
    unsigned n = cpus;
    if (n < 1)
        n = 1;
    return n > CFG_MAX_WORKERS ? CFG_MAX_WORKERS : n;
}

int cfg_load_text(struct cfg *c, const char *text, size_t len, const char *name, char **err)
{
    struct cfg_errs e = {.name = name ? name : "(text)"};
    struct cfg_toml_node *root;
    struct cfg fresh;
    char *perr = NULL;

    if (err)
        *err = NULL;
    root = cfg_toml_parse(text, len, e.name, &perr);
    if (!root) {
        if (err)
            *err = xasprintf("%s\n", perr ? perr : "parse error");
        free(perr);
        return -EINVAL;
    }
    cfg_copy(&fresh, c);
    cfg_apply_root(&e, &fresh, root);
    cfg_toml_free(root);
    if (e.count > 0) {
        if (e.count > CFG_MAX_ERRORS)
            buf_printf(&e.text, "%s: %u more errors not shown\n", e.name, e.count - CFG_MAX_ERRORS);
        cfg_fini(&fresh);
        if (err)
            *err = buf_take(&e.text);
        else
            buf_fini(&e.text);
        return -EINVAL;
    }
    cfg_set_str(&fresh.source, e.name);
    cfg_fini(c);
    *c = fresh;
    return 0;
}

int cfg_load_file(struct cfg *c, const char *path, char **err)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (err)
        *err = NULL;
    rc = file_read_all(path, CFG_FILE_MAX, &text, &len);
    if (rc < 0) {
        if (err)
            *err = xasprintf("%s: cannot read: %s\n", path, strerror(-rc));
        return rc;
    }
    rc = cfg_load_text(c, text, len, path, err);
    free(text);
    return rc;
}
