/*
 * shaping - KumoMTA-format traffic shaping files: load, merge, resolve a path, automation rules
 *
 * shaping_load() reads shaping files (TOML, or JSON when the name does not end in ".toml") and merges
 * them in order as KumoMTA does: a block (["default"], ["domain"], [provider."x"], and their
 * .sources."s") of a later file updates the same block of an earlier one key by key, except that
 * `replace_base = true` drops what earlier files set for that block, and the additional_* maps
 * (additional_connection_limits, additional_message_rate_throttles,
 * additional_source_selection_rates) merge name by name. Automation rules ([[X.automation]]) of every
 * file are kept in order (replace_base on a block drops the earlier files' rules of that block).
 * Every problem is a struct shaping_diag "FILE:LINE: message", errors and warnings (KumoMTA's
 * validator's: a provider whose match never applies, an MXSuffix with a trailing dot, options that
 * exist in KumoMTA but mean nothing here are reported as ignored, ...). Any error: NULL.
 *
 * Resolution (shaping_resolve), in KumoMTA's precedence, lowest first:
 *   ["default"] -> every [provider."x"] whose match applies (MXSuffix / HostName: every MX host must
 *   match; DomainSuffix: the domain) -> that provider's .sources."SOURCE" -> ["domain"] blocks with
 *   mx_rollup (the default) whose domain is the queried domain or whose rolled-up site is the queried
 *   site -> ["domain"] with mx_rollup = false for the queried domain -> site .sources."SOURCE" ->
 *   domain .sources."SOURCE".
 * The MX hosts are taken from the site name (dns_site_name(): sorted host names joined with ','; a
 * "route:" site's hosts are its route hosts without ports). The site of an mx_rollup domain block is
 * learnt at run time with shaping_site_set() (the node resolves each block's MX after loading;
 * offline tools take --site/--mx); until then the block applies to its own domain only.
 * provider_connection_limit / provider_max_message_rate become the named limit / throttle
 * "shaping-provider-NAME-SOURCE-limit" / "shaping-provider-NAME-SOURCE-rate" (shared by every path
 * of that provider and source).
 *
 * Not thread-safe; a loaded struct shaping is immutable except for shaping_site_set().
 */
#ifndef RINGMAIL_POLICY_SHAPING_H
#define RINGMAIL_POLICY_SHAPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct shaping;

struct shaping_diag {
    char *file;
    unsigned line; /* 0 when unknown */
    bool error;    /* false: warning */
    char *msg;
};

struct shaping_diags {
    size_t n;
    struct shaping_diag *v;
};
void shaping_diags_fini(struct shaping_diags *d);
/* shaping_diags_text - "FILE:LINE: error: msg\n" per entry (heap) */
char *shaping_diags_text(const struct shaping_diags *d);

/* A rate: `limit` per `period_ms`, GCRA with a burst of max_burst (0 = limit). limit 0 = unset. */
struct shaping_rate {
    uint64_t limit;
    uint64_t period_ms;
    uint64_t max_burst;
};
/* shaping_rate_parse - "100/min", "5/s", "1/minute", "10000/h", "500/d,max_burst=1"; false with *why */
bool shaping_rate_parse(const char *text, struct shaping_rate *out, const char **why);
/* shaping_duration_parse - "60s", "30m", "3 days", "1 hour", "30 minutes", "2h" (humantime) -> ms */
bool shaping_duration_parse(const char *text, uint64_t *out_ms);

enum shaping_tls {
    SHAPING_TLS_OPPORTUNISTIC = 0,
    SHAPING_TLS_OPPORTUNISTIC_INSECURE = 1,
    SHAPING_TLS_REQUIRED = 2,
    SHAPING_TLS_REQUIRED_INSECURE = 3,
    SHAPING_TLS_DISABLED = 4,
};

/* a named limit (connections, `limit`) or throttle (`rate`), shared by every path that names it */
struct shaping_named {
    char *name;
    uint64_t limit;
    struct shaping_rate rate;
};

/* Defaults underneath ["default"]: the node's [egress] keys (cfg.h) */
struct shaping_path_config {
    char *provider_name; /* "" when no provider matched */
    uint32_t connection_limit;
    uint32_t max_deliveries_per_connection;
    uint32_t max_recipients_per_batch;
    uint32_t max_ready;
    uint32_t consecutive_connection_failures_before_delay;
    struct shaping_rate max_connection_rate;  /* limit 0 = none */
    struct shaping_rate max_message_rate;     /* limit 0 = none */
    struct shaping_rate source_selection_rate; /* limit 0 = none */
    size_t n_limits;                           /* additional_connection_limits + provider limit */
    struct shaping_named *limits;
    size_t n_throttles;                        /* additional_message_rate_throttles + provider rate */
    struct shaping_named *throttles;
    size_t n_source_rates;                     /* additional_source_selection_rates */
    struct shaping_named *source_rates;
    uint64_t connect_timeout_ms, banner_timeout_ms, ehlo_timeout_ms, mail_from_timeout_ms, rcpt_to_timeout_ms,
        data_timeout_ms, data_dot_timeout_ms, rset_timeout_ms, idle_timeout_ms;
    uint64_t remember_broken_tls_ms; /* 0 = not remembered */
    uint16_t smtp_port;
    char *ehlo_domain;               /* "" = the source's or node's name */
    enum shaping_tls enable_tls;
    bool enable_mta_sts; /* MTA-STS policies of the path's domain apply (docs/tls.md); default true */
    size_t n_prohibited_hosts, n_skip_hosts; /* CIDR text, validated at load */
    char **prohibited_hosts, **skip_hosts;
};

/* the node-level values the resolution starts from (the node's [egress] section) */
struct shaping_defaults {
    uint32_t connection_limit, max_deliveries_per_connection, max_recipients_per_batch, max_ready;
    uint64_t connect_timeout_ms, banner_timeout_ms, command_timeout_ms, data_timeout_ms, idle_timeout_ms;
    uint16_t smtp_port;
};

enum shaping_action_kind {
    SHAPING_ACTION_SUSPEND = 0,
    SHAPING_ACTION_SET_CONFIG = 1,
    SHAPING_ACTION_SET_DOMAIN_CONFIG = 2,
    SHAPING_ACTION_SUSPEND_TENANT = 3,
    SHAPING_ACTION_SUSPEND_CAMPAIGN = 4,
    SHAPING_ACTION_BOUNCE = 5,
    SHAPING_ACTION_BOUNCE_TENANT = 6,
    SHAPING_ACTION_BOUNCE_CAMPAIGN = 7,
};

struct shaping_action {
    enum shaping_action_kind kind;
    char *name;    /* SET_CONFIG / SET_DOMAIN_CONFIG: the option; else NULL */
    json_t *value; /* SET_CONFIG / SET_DOMAIN_CONFIG: the value as written; else NULL */
};

struct shaping_rule {
    unsigned id;       /* stable within one loaded struct shaping: index in load order */
    char *scope;       /* "default", "provider:NAME", "domain:NAME" (rules live in these blocks only:
                        * KumoMTA's .sources hold options, and automation there is an error) */
    char *file;
    unsigned line;
    size_t n_regex;
    char **regex;      /* as written */
    void **compiled;   /* pcre2_code *, one per regex */
    size_t n_actions;
    struct shaping_action *actions;
    struct shaping_rate threshold; /* limit 0 = "Immediate" */
    uint64_t duration_ms;
    bool match_internal;
};

/* shaping_load - merge files in order; NULL (and errors in *diags) when any file has an error.
 * diags gets warnings in both cases. */
struct shaping *shaping_load(const char *const *files, size_t n, struct shaping_diags *diags);
/* shaping_load_text - one in-memory file named `name` (the embedded default) */
struct shaping *shaping_load_text(const char *text, size_t len, const char *name, struct shaping_diags *diags);
/* shaping_load_default - the shaping file built into the node (policy/ringmail-shaping.toml) */
struct shaping *shaping_load_default(struct shaping_diags *diags);
/* shaping_load_default_with - the built-in file, then files merged over it (the operator's override) */
struct shaping *shaping_load_default_with(const char *const *files, size_t n, struct shaping_diags *diags);
void shaping_free(struct shaping *sh);

/* shaping_rollup_domains - the domains of ["domain"] blocks with mx_rollup (to resolve their MX);
 * *out borrows from sh (valid until the next call or shaping_free) */
size_t shaping_rollup_domains(const struct shaping *sh, const char ***out);
/* shaping_site_set - the MX rollup site of an mx_rollup domain block; -EEXIST (with *err) when
 * another block's domain already has that site (KumoMTA's "two domains roll up to the same site") */
int shaping_site_set(struct shaping *sh, const char *domain, const char *site, char **err);
/* shaping_domain_no_rollup - true when a ["domain"] block says mx_rollup = false: its mail gets a
 * site of its own (the domain name) instead of the MX rollup */
bool shaping_domain_no_rollup(const struct shaping *sh, const char *domain);

/*
 * shaping_resolve - the effective options of the path (source, site) for `domain`, as a JSON object
 * keyed by KumoMTA option names (the merged blocks, additional_* maps merged) with "provider_name";
 * *set_by (when not NULL) gets an object option -> "FILE:LINE [block]". Caller decrefs both.
 * source may be NULL or "" (no source blocks apply).
 */
json_t *shaping_resolve(const struct shaping *sh, const char *domain, const char *source, const char *site,
                        json_t **set_by);
/*
 * shaping_path_config_from - typed options from a resolved object (and optional SetConfig overrides
 * merged on top, NULL for none), over the node defaults. 0, or -EINVAL with *err (heap) for a value
 * that does not parse (an override from a rule). shaping_path_config_fini frees what it owns.
 */
int shaping_path_config_from(const json_t *resolved, const json_t *overrides, const struct shaping_defaults *def,
                             struct shaping_path_config *out, char **err);
void shaping_path_config_fini(struct shaping_path_config *c);

/*
 * shaping_explain - the whole answer about one path, the body of GET /api/v1/shaping/resolve and of
 * `ringctl resolve-shaping --json` (docs/admin-api.md): {"domain", "source", "site", "provider_name",
 * "config": shaping_resolve(), "set_by": its set_by, "rules": [shaping_rule_json() of each rule in
 * scope]}. Caller decrefs.
 */
json_t *shaping_explain(const struct shaping *sh, const char *domain, const char *source, const char *site);
/* shaping_rule_json - {"id", "scope", "file", "line", "regex": [...], "action": [...], "trigger":
 * "Immediate" | {"Threshold": "5/h"}, "duration": "2h", "duration_ms", "match_internal"} */
json_t *shaping_rule_json(const struct shaping_rule *r);
/* shaping_rate_text - "100/min" style text of a rate into buf (KumoMTA's units: s, min, h, d) */
const char *shaping_rate_text(const struct shaping_rate *r, char *buf, size_t size);

/* shaping_rules - the automation rules in scope for (domain, site, source), lowest precedence first;
 * *out borrows from sh (valid until shaping_free). */
size_t shaping_rules(const struct shaping *sh, const char *domain, const char *source, const char *site,
                     const struct shaping_rule ***out);
/* shaping_rule_match - the index of the first regex of r matching text, -1 when none */
int shaping_rule_match(const struct shaping_rule *r, const char *text, size_t len);
/* shaping_rules_all - every rule (for tsa-status, history lookups by id) */
size_t shaping_rules_all(const struct shaping *sh, const struct shaping_rule *const **out);

#endif
