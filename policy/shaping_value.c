/*
 * shaping_value - the values of make_egress_path options: the table of every option KumoMTA knows
 * (type, and whether ringmail enforces it), rates ("100/min", "500/d,max_burst=1"), humantime
 * durations ("3 days", "1h 30m"), connection limits ("local:5"), and the typed path configuration
 * built from a resolved object (shaping_path_config_from).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cfg/cfg_value.h"
#include "policy/shaping_int.h"

#define SHAPING_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* one year: the longest duration or rate period accepted */
#define SHAPING_MAX_MS (UINT64_C(366) * 86400000u)

/*
 * Every option of KumoMTA's make_egress_path (docs.kumomta.com/reference/kumo/make_egress_path),
 * sorted by name. enforced = false: ringmail has no such behaviour; the option loads with a warning
 * "ignored: ..." so an operator sees it has no effect here.
 */
static const struct shaping_opt shaping_opt_table[] = {
    {"additional_connection_limits", SHAPING_OT_LIMIT_MAP, true},
    {"additional_message_rate_throttles", SHAPING_OT_RATE_MAP, true},
    {"additional_source_selection_rates", SHAPING_OT_RATE_MAP, true},
    {"aggressive_connection_opening", SHAPING_OT_BOOL, false},
    {"allow_smtp_auth_plain_without_tls", SHAPING_OT_BOOL, false},
    {"auth_timeout", SHAPING_OT_DURATION, false},
    {"banner_timeout", SHAPING_OT_DURATION, true},
    {"connect_timeout", SHAPING_OT_DURATION, true},
    {"connection_limit", SHAPING_OT_LIMIT, true},
    {"consecutive_connection_failures_before_delay", SHAPING_OT_COUNT, true},
    {"data_dot_timeout", SHAPING_OT_DURATION, true},
    {"data_timeout", SHAPING_OT_DURATION, true},
    {"dispatcher_wakeup_strategy", SHAPING_OT_ANY, false},
    {"ehlo_domain", SHAPING_OT_STRING, true},
    {"ehlo_timeout", SHAPING_OT_DURATION, true},
    {"enable_dane", SHAPING_OT_BOOL, false},
    {"enable_mta_sts", SHAPING_OT_BOOL, true},
    {"enable_pipelining", SHAPING_OT_BOOL, false},
    {"enable_rset", SHAPING_OT_BOOL, false},
    {"enable_tls", SHAPING_OT_TLS, true},
    {"idle_timeout", SHAPING_OT_DURATION, true},
    {"ignore_8bit_checks", SHAPING_OT_BOOL, false},
    {"low_memory_reduction_policy", SHAPING_OT_ANY, false},
    {"mail_from_timeout", SHAPING_OT_DURATION, true},
    {"maintainer_wakeup_strategy", SHAPING_OT_ANY, false},
    {"max_connection_rate", SHAPING_OT_RATE, true},
    {"max_deliveries_per_connection", SHAPING_OT_COUNT, true},
    {"max_message_rate", SHAPING_OT_RATE, true},
    {"max_ready", SHAPING_OT_COUNT, true},
    {"max_recipients_per_batch", SHAPING_OT_COUNT, true},
    {"no_memory_reduction_policy", SHAPING_OT_ANY, false},
    {"openssl_cipher_list", SHAPING_OT_STRING, false},
    {"openssl_cipher_suites", SHAPING_OT_STRING, false},
    {"openssl_options", SHAPING_OT_ANY, false},
    {"opportunistic_tls_reconnect_on_failed_handshake", SHAPING_OT_BOOL, false},
    {"prohibited_hosts", SHAPING_OT_CIDRS, true},
    {"provider_name", SHAPING_OT_STRING, true},
    {"rcpt_to_timeout", SHAPING_OT_DURATION, true},
    {"reconnect_strategy", SHAPING_OT_ANY, false},
    {"refresh_interval", SHAPING_OT_DURATION, false},
    {"refresh_strategy", SHAPING_OT_ANY, false},
    {"remember_broken_tls", SHAPING_OT_DURATION, true},
    {"rset_timeout", SHAPING_OT_DURATION, true},
    {"rustls_cipher_suites", SHAPING_OT_ANY, false},
    {"skip_hosts", SHAPING_OT_CIDRS, true},
    {"smtp_auth_plain_password", SHAPING_OT_ANY, false},
    {"smtp_auth_plain_username", SHAPING_OT_STRING, false},
    {"smtp_port", SHAPING_OT_PORT, true},
    {"source_selection_rate", SHAPING_OT_RATE, true},
    {"starttls_timeout", SHAPING_OT_DURATION, false},
    {"suspended", SHAPING_OT_BOOL, false},
    {"system_shutdown_timeout", SHAPING_OT_DURATION, false},
    {"tls_certificate", SHAPING_OT_ANY, false},
    {"tls_prefer_openssl", SHAPING_OT_BOOL, false},
    {"tls_private_key", SHAPING_OT_ANY, false},
    {"try_next_host_on_transport_error", SHAPING_OT_BOOL, false},
    {"use_lmtp", SHAPING_OT_BOOL, false},
};

static int opt_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct shaping_opt *)elem)->name);
}

const struct shaping_opt *shaping_opt_find(const char *name)
{
    return bsearch(name, shaping_opt_table, SHAPING_ARRAY_SIZE(shaping_opt_table), sizeof(shaping_opt_table[0]),
                   opt_cmp);
}

size_t shaping_opts(const struct shaping_opt **out)
{
    *out = shaping_opt_table;
    return SHAPING_ARRAY_SIZE(shaping_opt_table);
}

bool shaping_is_additional(const char *name)
{
    return strcmp(name, "additional_connection_limits") == 0 ||
           strcmp(name, "additional_message_rate_throttles") == 0 ||
           strcmp(name, "additional_source_selection_rates") == 0;
}

static bool parse_grouped(const char *s, size_t n, uint64_t *out)
{
    return cfg_value_parse_grouped(s, n, out);
}

bool shaping_limit_parse(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return false;
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    if (strncmp(s, "local:", 6) == 0)
        s += 6;
    return parse_grouped(s, strlen(s), out);
}

struct unit {
    const char *name;
    uint64_t ms;
};

/* humantime's units (its "M" is a month, "m" a minute) */
static const struct unit duration_units[] = {
    {"ms", 1},
    {"msec", 1},
    {"s", 1000},
    {"sec", 1000},
    {"secs", 1000},
    {"second", 1000},
    {"seconds", 1000},
    {"m", 60000},
    {"min", 60000},
    {"mins", 60000},
    {"minute", 60000},
    {"minutes", 60000},
    {"h", 3600000},
    {"hr", 3600000},
    {"hrs", 3600000},
    {"hour", 3600000},
    {"hours", 3600000},
    {"d", 86400000},
    {"day", 86400000},
    {"days", 86400000},
    {"w", 604800000},
    {"week", 604800000},
    {"weeks", 604800000},
    {"M", 2630016000},
    {"month", 2630016000},
    {"months", 2630016000},
    {"y", 31557600000},
    {"year", 31557600000},
    {"years", 31557600000},
};

static bool unit_find(const struct unit *u, size_t n, const char *s, size_t len, uint64_t *ms)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(u[i].name) == len && memcmp(u[i].name, s, len) == 0) {
            *ms = u[i].ms;
            return true;
        }
    }
    return false;
}

bool shaping_rate_parse(const char *text, struct shaping_rate *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (!text) {
        *why = "no rate";
        return false;
    }
    struct shaping_rate r;
    if (!cfg_value_parse_rate(strncmp(text, "local:", 6) == 0 ? text + 6 : text, &r.limit, &r.period_ms,
                              &r.max_burst, why))
        return false;
    *out = r;
    return true;
}

bool shaping_duration_parse(const char *text, uint64_t *out_ms)
{
    const char *s = text;
    uint64_t total = 0;
    bool any = false;

    if (!s)
        return false;
    for (;;) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        if (!isdigit((unsigned char)*s))
            return false;
        uint64_t n = 0;
        while (isdigit((unsigned char)*s)) {
            if (n > SHAPING_MAX_MS)
                return false;
            n = n * 10 + (uint64_t)(*s++ - '0');
        }
        while (*s == ' ')
            s++;
        const char *u = s;
        while (isalpha((unsigned char)*s))
            s++;
        uint64_t ms;
        if (s == u || !unit_find(duration_units, SHAPING_ARRAY_SIZE(duration_units), u, (size_t)(s - u), &ms))
            return false;
        if (n > SHAPING_MAX_MS / ms + 1)
            return false;
        total += n * ms;
        if (total > SHAPING_MAX_MS)
            return false;
        any = true;
    }
    if (!any)
        return false;
    *out_ms = total;
    return true;
}

/* a duration option's value: humantime text or whole seconds (as KumoMTA's duration_serde) */
static bool duration_value(const json_t *v, uint64_t *ms)
{
    if (json_is_string(v))
        return shaping_duration_parse(json_string_value(v), ms);
    if (json_is_integer(v) && json_integer_value(v) >= 0 && (uint64_t)json_integer_value(v) <= SHAPING_MAX_MS / 1000) {
        *ms = (uint64_t)json_integer_value(v) * 1000;
        return true;
    }
    return false;
}

static const char *const tls_names[] = {"Opportunistic", "OpportunisticInsecure", "Required", "RequiredInsecure",
                                        "Disabled"};

static bool tls_value(const json_t *v, enum shaping_tls *out)
{
    if (!json_is_string(v))
        return false;
    for (size_t i = 0; i < SHAPING_ARRAY_SIZE(tls_names); i++) {
        if (strcmp(json_string_value(v), tls_names[i]) == 0) {
            *out = (enum shaping_tls)i;
            return true;
        }
    }
    return false;
}

bool shaping_opt_check(const struct shaping_opt *o, const json_t *v, char *why, size_t why_size)
{
    struct shaping_rate r;
    const char *rwhy = NULL;
    uint64_t u;
    enum shaping_tls tls;

    switch (o->type) {
    case SHAPING_OT_LIMIT:
        if (shaping_limit_parse(v, &u))
            return true;
        snprintf(why, why_size, "expected a connection limit (an integer, or a string like \"local:5\")");
        return false;
    case SHAPING_OT_COUNT:
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX)
            return true;
        snprintf(why, why_size, "expected a non-negative integer");
        return false;
    case SHAPING_OT_RATE:
        if (json_is_string(v) && shaping_rate_parse(json_string_value(v), &r, &rwhy))
            return true;
        snprintf(why, why_size, "expected a rate like \"100/min\"%s%s", rwhy ? ": " : "", rwhy ? rwhy : "");
        return false;
    case SHAPING_OT_DURATION:
        if (duration_value(v, &u))
            return true;
        snprintf(why, why_size, "expected a duration like \"60s\" or \"3 days\" (or an integer of seconds)");
        return false;
    case SHAPING_OT_BOOL:
        if (json_is_boolean(v))
            return true;
        snprintf(why, why_size, "expected true or false");
        return false;
    case SHAPING_OT_STRING:
        if (json_is_string(v))
            return true;
        snprintf(why, why_size, "expected a string");
        return false;
    case SHAPING_OT_TLS:
        if (tls_value(v, &tls))
            return true;
        snprintf(why, why_size,
                 "expected one of \"Opportunistic\", \"OpportunisticInsecure\", \"Required\", \"RequiredInsecure\", "
                 "\"Disabled\"");
        return false;
    case SHAPING_OT_CIDRS: {
        if (!json_is_array(v)) {
            snprintf(why, why_size, "expected an array of networks like [\"10.0.0.0/8\"]");
            return false;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            struct cfg_cidr c;
            char w[128];
            if (!json_is_string(e) || !cfg_value_cidr_parse(json_string_value(e), &c, w, sizeof(w))) {
                snprintf(why, why_size, "element %zu: %s", i + 1, json_is_string(e) ? w : "expected a string");
                return false;
            }
        }
        return true;
    }
    case SHAPING_OT_PORT:
        if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535)
            return true;
        snprintf(why, why_size, "expected a port number 1..65535");
        return false;
    case SHAPING_OT_LIMIT_MAP:
    case SHAPING_OT_RATE_MAP: {
        if (!json_is_object(v)) {
            snprintf(why, why_size, "expected a table of NAME = %s", o->type == SHAPING_OT_LIMIT_MAP ? "limit" : "rate");
            return false;
        }
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e) {
            bool ok = o->type == SHAPING_OT_LIMIT_MAP
                          ? shaping_limit_parse(e, &u)
                          : json_is_string(e) && shaping_rate_parse(json_string_value(e), &r, &rwhy);
            if (!ok) {
                snprintf(why, why_size, "\"%s\": expected a %s", k,
                         o->type == SHAPING_OT_LIMIT_MAP ? "connection limit" : "rate like \"100/min\"");
                return false;
            }
        }
        return true;
    }
    case SHAPING_OT_ANY:
        return true;
    }
    return false;
}

/* ---- option maps ---- */

void shaping_pmap_init(struct shaping_pmap *p)
{
    p->v = json_object();
    p->origin = json_object();
}

void shaping_pmap_fini(struct shaping_pmap *p)
{
    json_decref(p->v);
    json_decref(p->origin);
    p->v = p->origin = NULL;
}

void shaping_pmap_set(struct shaping_pmap *p, const char *key, json_t *value, const char *origin)
{
    json_t *old = json_object_get(p->v, key);
    if (shaping_is_additional(key) && json_is_object(old) && json_is_object(value)) {
        /* a copy: the map may be shared with the block it came from */
        json_t *m = json_copy(old);
        json_object_update(m, value);
        json_object_set_new(p->v, key, m);
    } else {
        json_object_set(p->v, key, value);
    }
    json_object_set_new(p->origin, key, json_string(origin));
}

void shaping_pmap_merge(struct shaping_pmap *dst, const struct shaping_pmap *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src->v, k, v) {
        const char *o = json_string_value(json_object_get(src->origin, k));
        shaping_pmap_set(dst, k, v, o ? o : "");
    }
}

/* ---- typed configuration ---- */

static void named_from(const json_t *map, bool limits, size_t *n, struct shaping_named **v)
{
    const char *k;
    json_t *e;
    *n = 0;
    *v = NULL;
    if (!json_is_object(map) || json_object_size(map) == 0)
        return;
    *v = xcalloc(json_object_size(map), sizeof(**v));
    json_object_foreach((json_t *)map, k, e) {
        struct shaping_named *x = &(*v)[*n];
        bool ok = limits ? shaping_limit_parse(e, &x->limit)
                         : json_is_string(e) && shaping_rate_parse(json_string_value(e), &x->rate, NULL);
        if (!ok)
            continue;
        x->name = xstrdup(k);
        (*n)++;
    }
}

static void strv_free(size_t n, char **v)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void cidrs_from(const json_t *a, size_t *n, char ***v)
{
    size_t i;
    json_t *e;
    strv_free(*n, *v);
    *n = 0;
    *v = xcalloc(json_array_size(a) + 1, sizeof(char *));
    json_array_foreach(a, i, e) (*v)[(*n)++] = xstrdup(json_string_value(e));
}

static void set_str(char **slot, const char *s)
{
    free(*slot);
    *slot = xstrdup(s);
}

/* one checked option into c */
static void apply_opt(struct shaping_path_config *c, const char *k, const json_t *v)
{
    uint64_t u = 0;
    static const struct {
        const char *name;
        size_t off;
    } timeouts[] = {
        {"connect_timeout", offsetof(struct shaping_path_config, connect_timeout_ms)},
        {"banner_timeout", offsetof(struct shaping_path_config, banner_timeout_ms)},
        {"ehlo_timeout", offsetof(struct shaping_path_config, ehlo_timeout_ms)},
        {"mail_from_timeout", offsetof(struct shaping_path_config, mail_from_timeout_ms)},
        {"rcpt_to_timeout", offsetof(struct shaping_path_config, rcpt_to_timeout_ms)},
        {"data_timeout", offsetof(struct shaping_path_config, data_timeout_ms)},
        {"data_dot_timeout", offsetof(struct shaping_path_config, data_dot_timeout_ms)},
        {"rset_timeout", offsetof(struct shaping_path_config, rset_timeout_ms)},
        {"idle_timeout", offsetof(struct shaping_path_config, idle_timeout_ms)},
        {"remember_broken_tls", offsetof(struct shaping_path_config, remember_broken_tls_ms)},
    };
    static const struct {
        const char *name;
        size_t off;
    } counts[] = {
        {"max_deliveries_per_connection", offsetof(struct shaping_path_config, max_deliveries_per_connection)},
        {"max_recipients_per_batch", offsetof(struct shaping_path_config, max_recipients_per_batch)},
        {"max_ready", offsetof(struct shaping_path_config, max_ready)},
        {"consecutive_connection_failures_before_delay",
         offsetof(struct shaping_path_config, consecutive_connection_failures_before_delay)},
    };
    for (size_t i = 0; i < SHAPING_ARRAY_SIZE(timeouts); i++) {
        if (strcmp(k, timeouts[i].name) == 0) {
            if (duration_value(v, &u))
                *(uint64_t *)((char *)c + timeouts[i].off) = u;
            return;
        }
    }
    for (size_t i = 0; i < SHAPING_ARRAY_SIZE(counts); i++) {
        if (strcmp(k, counts[i].name) == 0) {
            *(uint32_t *)((char *)c + counts[i].off) = (uint32_t)json_integer_value(v);
            return;
        }
    }
    if (strcmp(k, "connection_limit") == 0 && shaping_limit_parse(v, &u))
        c->connection_limit = u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
    else if (strcmp(k, "max_connection_rate") == 0)
        shaping_rate_parse(json_string_value(v), &c->max_connection_rate, NULL);
    else if (strcmp(k, "max_message_rate") == 0)
        shaping_rate_parse(json_string_value(v), &c->max_message_rate, NULL);
    else if (strcmp(k, "source_selection_rate") == 0)
        shaping_rate_parse(json_string_value(v), &c->source_selection_rate, NULL);
    else if (strcmp(k, "smtp_port") == 0)
        c->smtp_port = (uint16_t)json_integer_value(v);
    else if (strcmp(k, "ehlo_domain") == 0)
        set_str(&c->ehlo_domain, json_string_value(v));
    else if (strcmp(k, "provider_name") == 0)
        set_str(&c->provider_name, json_string_value(v));
    else if (strcmp(k, "enable_tls") == 0)
        tls_value(v, &c->enable_tls);
    else if (strcmp(k, "enable_mta_sts") == 0)
        c->enable_mta_sts = json_is_true(v);
    else if (strcmp(k, "prohibited_hosts") == 0)
        cidrs_from(v, &c->n_prohibited_hosts, &c->prohibited_hosts);
    else if (strcmp(k, "skip_hosts") == 0)
        cidrs_from(v, &c->n_skip_hosts, &c->skip_hosts);
}

int shaping_path_config_from(const json_t *resolved, const json_t *overrides, const struct shaping_defaults *def,
                             struct shaping_path_config *out, char **err)
{
    struct shaping_pmap m;
    const char *k;
    json_t *v;
    char why[256];

    if (err)
        *err = NULL;
    memset(out, 0, sizeof(*out));
    /* KumoMTA's defaults where the node has no key of its own */
    out->provider_name = xstrdup("");
    out->ehlo_domain = xstrdup("");
    out->connection_limit = def ? def->connection_limit : 32;
    out->max_deliveries_per_connection = def ? def->max_deliveries_per_connection : 1024;
    out->max_recipients_per_batch = def && def->max_recipients_per_batch ? def->max_recipients_per_batch : 100;
    out->max_ready = def ? def->max_ready : 1024;
    out->consecutive_connection_failures_before_delay = 100;
    out->connect_timeout_ms = def ? def->connect_timeout_ms : 60000;
    out->banner_timeout_ms = def ? def->banner_timeout_ms : 60000;
    uint64_t cmd = def ? def->command_timeout_ms : 300000;
    out->ehlo_timeout_ms = out->mail_from_timeout_ms = out->rcpt_to_timeout_ms = out->data_timeout_ms = cmd;
    out->rset_timeout_ms = def ? def->command_timeout_ms : 5000;
    out->data_dot_timeout_ms = def ? def->data_timeout_ms : 300000;
    out->idle_timeout_ms = def ? def->idle_timeout_ms : 5000;
    out->smtp_port = def && def->smtp_port ? def->smtp_port : 25;
    out->enable_tls = SHAPING_TLS_OPPORTUNISTIC;
    out->enable_mta_sts = true; /* KumoMTA's default */

    shaping_pmap_init(&m);
    if (json_is_object(resolved))
        json_object_foreach((json_t *)resolved, k, v) shaping_pmap_set(&m, k, v, "");
    if (json_is_object(overrides)) {
        json_object_foreach((json_t *)overrides, k, v) {
            const struct shaping_opt *o = shaping_opt_find(k);
            if (!o || !shaping_opt_check(o, v, why, sizeof(why))) {
                if (err)
                    *err = o ? xasprintf("%s: %s", k, why) : xasprintf("unknown option \"%s\"", k);
                shaping_pmap_fini(&m);
                shaping_path_config_fini(out);
                return -EINVAL;
            }
            shaping_pmap_set(&m, k, v, "");
        }
    }
    json_object_foreach(m.v, k, v) {
        const struct shaping_opt *o = shaping_opt_find(k);
        /* a resolved object was checked at load; anything else is skipped, never guessed */
        if (!o || !o->enforced || !shaping_opt_check(o, v, why, sizeof(why)))
            continue;
        apply_opt(out, k, v);
    }
    named_from(json_object_get(m.v, "additional_connection_limits"), true, &out->n_limits, &out->limits);
    named_from(json_object_get(m.v, "additional_message_rate_throttles"), false, &out->n_throttles,
               &out->throttles);
    named_from(json_object_get(m.v, "additional_source_selection_rates"), false, &out->n_source_rates,
               &out->source_rates);
    shaping_pmap_fini(&m);
    return 0;
}

static void named_free(size_t n, struct shaping_named *v)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

void shaping_path_config_fini(struct shaping_path_config *c)
{
    free(c->provider_name);
    free(c->ehlo_domain);
    named_free(c->n_limits, c->limits);
    named_free(c->n_throttles, c->throttles);
    named_free(c->n_source_rates, c->source_rates);
    strv_free(c->n_prohibited_hosts, c->prohibited_hosts);
    strv_free(c->n_skip_hosts, c->skip_hosts);
    memset(c, 0, sizeof(*c));
}
