/*
 * shaping_int - what the shaping_*.c files share (not part of the interface: policy/shaping.h is)
 *
 * A loaded struct shaping is a list of blocks (["default"], ["domain"], [provider."x"]) merged over
 * every file, and the automation rules of all of them in load order. A block's options are a JSON
 * object keyed by KumoMTA option names, with a second object of the same keys whose values say where
 * each was set ("FILE:LINE [block]").
 */
#ifndef RINGMAIL_POLICY_SHAPING_INT_H
#define RINGMAIL_POLICY_SHAPING_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cfg/cfg_toml.h"
#include "policy/shaping.h"

/* the types of make_egress_path options */
enum shaping_opt_type {
    SHAPING_OT_LIMIT = 0,  /* connections: integer, or "local:N" / "1,000" */
    SHAPING_OT_COUNT,      /* a non-negative integer */
    SHAPING_OT_RATE,       /* "100/min" */
    SHAPING_OT_DURATION,   /* humantime string, or integer seconds */
    SHAPING_OT_BOOL,
    SHAPING_OT_STRING,
    SHAPING_OT_TLS,        /* Opportunistic, OpportunisticInsecure, Required, RequiredInsecure, Disabled */
    SHAPING_OT_CIDRS,      /* array of CIDR strings */
    SHAPING_OT_PORT,       /* 1..65535 */
    SHAPING_OT_LIMIT_MAP,  /* name -> limit */
    SHAPING_OT_RATE_MAP,   /* name -> rate */
    SHAPING_OT_ANY,        /* a KumoMTA structure ringmail does not read */
};

struct shaping_opt {
    const char *name;
    enum shaping_opt_type type;
    bool enforced; /* false: KumoMTA has it, ringmail ignores it (a warning at load) */
};

/* shaping_opt_find - the known option `name`, or NULL */
const struct shaping_opt *shaping_opt_find(const char *name);
/* shaping_opts - the whole table (for docs and tests) */
size_t shaping_opts(const struct shaping_opt **out);
/* shaping_opt_check - true when v is a value of o's type; else false with why[] */
bool shaping_opt_check(const struct shaping_opt *o, const json_t *v, char *why, size_t why_size);
/* shaping_limit_parse - a connection limit value (integer or "local:N", "1,000", "1_000") */
bool shaping_limit_parse(const json_t *v, uint64_t *out);
/* shaping_is_additional - the three additional_* options whose maps merge name by name */
bool shaping_is_additional(const char *name);

/* option values and where each was set */
struct shaping_pmap {
    json_t *v;      /* option -> value */
    json_t *origin; /* option -> "FILE:LINE [block]" */
};
void shaping_pmap_init(struct shaping_pmap *p);
void shaping_pmap_fini(struct shaping_pmap *p);
/* shaping_pmap_set - one option (additional_* maps merge into an existing map) */
void shaping_pmap_set(struct shaping_pmap *p, const char *key, json_t *value, const char *origin);
/* shaping_pmap_merge - every option of src over dst, as shaping_pmap_set */
void shaping_pmap_merge(struct shaping_pmap *dst, const struct shaping_pmap *src);

enum shaping_block_kind {
    SHAPING_BLOCK_DEFAULT = 0,
    SHAPING_BLOCK_DOMAIN = 1,
    SHAPING_BLOCK_PROVIDER = 2,
};

enum shaping_match_kind {
    SHAPING_MATCH_MX_SUFFIX = 0,
    SHAPING_MATCH_DOMAIN_SUFFIX = 1,
    SHAPING_MATCH_HOST_NAME = 2,
};

struct shaping_match {
    enum shaping_match_kind kind;
    char *value;
};

struct shaping_source {
    char *name;
    struct shaping_pmap p;
};

struct shaping_block {
    enum shaping_block_kind kind;
    char *name;  /* domain, "default", or provider name */
    char *label; /* ["example.com"], [provider."google"] */
    char *file;  /* where it was first written */
    unsigned line;
    bool mx_rollup;
    char *site; /* shaping_site_set(); NULL until then */
    struct shaping_pmap p;
    size_t n_sources;
    struct shaping_source *sources;
    /* providers */
    size_t n_matches;
    struct shaping_match *matches;
    json_t *prov_limit, *prov_rate; /* provider_connection_limit / provider_max_message_rate, or NULL */
    char *prov_limit_origin, *prov_rate_origin;
};

struct shaping {
    size_t n_blocks, cap_blocks;
    struct shaping_block *blocks;
    json_t *index; /* "d:NAME" / "n:NAME" (no rollup) / "p:NAME" -> block index */
    size_t n_rules, cap_rules;
    struct shaping_rule *rules;
    size_t *rule_block;  /* the block index of each rule */
    bool *rule_dead;     /* while loading: dropped by a later replace_base */
    const struct shaping_rule **scratch; /* shaping_rules() answers */
    const struct shaping_rule **all;     /* shaping_rules_all() answer */
    const char **rollup;                 /* shaping_rollup_domains() answer */
    size_t n_providers;
    size_t *providers; /* block indexes of the providers, in order */
};

/* the block of the given kind and name (domains: and mx_rollup), or NULL */
/* shaping_site_block - the mx_rollup domain block whose site is `site` (shaping_site_set), else the
 * mx_rollup block of `domain` while its site is not known; NULL when none */
const struct shaping_block *shaping_site_block(const struct shaping *sh, const char *domain, const char *site);
struct shaping_block *shaping_block_find(const struct shaping *sh, enum shaping_block_kind kind, const char *name,
                                         bool mx_rollup);

/* a loader's diagnostics, for one file at a time */
struct shaping_ld {
    struct shaping *sh;
    struct shaping_diags *d;
    const char *file;
    unsigned errors;
};
void shaping_diag_add(struct shaping_ld *ld, unsigned line, bool error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* shaping_node_json - a TOML node as a JSON value (tables as objects, datetimes as strings) */
json_t *shaping_node_json(const struct cfg_toml_node *n);
/* shaping_node_from_json - JSON text as a node tree with the line of every key; NULL with *err */
struct cfg_toml_node *shaping_node_from_json(const char *text, size_t len, const char *name, char **err);

/* shaping_rule_parse - one [[X.automation]] table into sh->rules (block index blk); false on error */
bool shaping_rule_parse(struct shaping_ld *ld, const struct cfg_toml_node *t, const char *scope, size_t blk);
void shaping_rule_fini(struct shaping_rule *r);
/* shaping_action_check - a SetConfig name/value: NULL when good, else why (heap); *ignored when the
 * option is one ringmail does not enforce */
char *shaping_action_check(const char *name, const json_t *value, bool *ignored);

/* shaping_provider_applies - does provider block b match domain / the MX hosts of site? */
bool shaping_provider_applies(const struct shaping_block *b, const char *domain, const char *site);

#endif
