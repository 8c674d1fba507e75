/*
 * shaping_rule - Traffic Shaping Automation rules: [[X.automation]] tables parsed, their regexes
 * compiled with PCRE2, and matched against response text
 *
 *   regex = "..." or ["...", ...]            PCRE2, UTF-8, case-sensitive (as KumoMTA's regexes)
 *   action = "Suspend" | {SetConfig={name="connection_limit", value=1}} | [ ...those... ]
 *   trigger = "Immediate" (default) | {Threshold="5/hr"}
 *   duration = "2 hours"                     required
 *   match_internal = false                   also match ringmail's own responses
 * Every problem is a FILE:LINE error at the key that has it; a SetConfig naming an option ringmail
 * does not enforce is a warning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/mem.h"
#include "policy/shaping_int.h"

#define SHAPING_MAX_PATTERN 8192u

static const char *const plain_actions[] = {
    [SHAPING_ACTION_SUSPEND] = "Suspend",
    [SHAPING_ACTION_SET_CONFIG] = NULL,
    [SHAPING_ACTION_SET_DOMAIN_CONFIG] = NULL,
    [SHAPING_ACTION_SUSPEND_TENANT] = "SuspendTenant",
    [SHAPING_ACTION_SUSPEND_CAMPAIGN] = "SuspendCampaign",
    [SHAPING_ACTION_BOUNCE] = "Bounce",
    [SHAPING_ACTION_BOUNCE_TENANT] = "BounceTenant",
    [SHAPING_ACTION_BOUNCE_CAMPAIGN] = "BounceCampaign",
};

void shaping_rule_fini(struct shaping_rule *r)
{
    free(r->scope);
    free(r->file);
    for (size_t i = 0; i < r->n_regex; i++) {
        free(r->regex[i]);
        pcre2_code_free(r->compiled[i]);
    }
    free(r->regex);
    free(r->compiled);
    for (size_t i = 0; i < r->n_actions; i++) {
        free(r->actions[i].name);
        json_decref(r->actions[i].value);
    }
    free(r->actions);
    memset(r, 0, sizeof(*r));
}

char *shaping_action_check(const char *name, const json_t *value, bool *ignored)
{
    char why[256];
    const struct shaping_opt *o = shaping_opt_find(name);
    *ignored = false;
    if (!o)
        return xasprintf("unknown option \"%s\" (not a make_egress_path option)", name);
    if (!shaping_opt_check(o, value, why, sizeof(why)))
        return xasprintf("%s: %s", name, why);
    *ignored = !o->enforced;
    return NULL;
}

static bool regex_add(struct shaping_ld *ld, struct shaping_rule *r, const struct cfg_toml_node *v)
{
    if (v->type != CFG_TOML_STRING) {
        shaping_diag_add(ld, v->line, true, "automation: regex: expected a string or an array of strings");
        return false;
    }
    int ec = 0;
    PCRE2_SIZE off = 0;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_max_pattern_length(cc, SHAPING_MAX_PATTERN);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->str, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                   &ec, &off, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR buf[256];
        if (pcre2_get_error_message(ec, buf, sizeof(buf)) < 0)
            snprintf((char *)buf, sizeof(buf), "error %d", ec);
        shaping_diag_add(ld, v->line, true, "automation: regex \"%s\": %s at offset %zu", v->str,
                         (const char *)buf, (size_t)off);
        return false;
    }
    /* without JIT (not built in, no executable memory) the interpreter runs: slower, same answers */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    r->regex = xrealloc(r->regex, (r->n_regex + 1) * sizeof(char *));
    r->compiled = xrealloc(r->compiled, (r->n_regex + 1) * sizeof(void *));
    r->regex[r->n_regex] = xstrdup(v->str);
    r->compiled[r->n_regex++] = re;
    return true;
}

static bool action_add(struct shaping_ld *ld, struct shaping_rule *r, const struct cfg_toml_node *v)
{
    struct shaping_action a = {0};
    unsigned line = v->line;
    if (v->type == CFG_TOML_STRING) {
        for (size_t k = 0; k < sizeof(plain_actions) / sizeof(plain_actions[0]); k++) {
            if (plain_actions[k] && strcmp(v->str, plain_actions[k]) == 0) {
                a.kind = (enum shaping_action_kind)k;
                goto add;
            }
        }
        shaping_diag_add(ld, line, true,
                         "automation: action \"%s\": expected Suspend, SuspendTenant, SuspendCampaign, Bounce, "
                         "BounceTenant, BounceCampaign, {SetConfig={name=..., value=...}} or "
                         "{SetDomainConfig={...}}", v->str);
        return false;
    }
    const struct cfg_toml_node *inner = v->type == CFG_TOML_TABLE && v->n_children == 1 ? v->children[0] : NULL;
    bool set = inner && strcmp(inner->key, "SetConfig") == 0, dom = inner && strcmp(inner->key, "SetDomainConfig") == 0;
    if (!set && !dom) {
        shaping_diag_add(ld, line, true,
                         "automation: action: expected a name like \"Suspend\" or a table {SetConfig={name=..., "
                         "value=...}}");
        return false;
    }
    line = inner->line ? inner->line : line;
    const struct cfg_toml_node *name = cfg_toml_find(inner, "name"), *value = cfg_toml_find(inner, "value");
    if (inner->type != CFG_TOML_TABLE || inner->n_children != 2 || !name || name->type != CFG_TOML_STRING || !value) {
        shaping_diag_add(ld, line, true, "automation: %s: expected {name=\"OPTION\", value=VALUE}", inner->key);
        return false;
    }
    json_t *j = shaping_node_json(value);
    bool ignored = false;
    char *why = shaping_action_check(name->str, j, &ignored);
    if (why) {
        shaping_diag_add(ld, line, true, "automation: %s: %s", inner->key, why);
        free(why);
        json_decref(j);
        return false;
    }
    if (ignored)
        shaping_diag_add(ld, line, false, "ignored: automation %s of %s has no effect in ringmail", inner->key,
                         name->str);
    a.kind = set ? SHAPING_ACTION_SET_CONFIG : SHAPING_ACTION_SET_DOMAIN_CONFIG;
    a.name = xstrdup(name->str);
    a.value = j;
add:
    r->actions = xrealloc(r->actions, (r->n_actions + 1) * sizeof(*r->actions));
    r->actions[r->n_actions++] = a;
    return true;
}

static bool trigger_set(struct shaping_ld *ld, struct shaping_rule *r, const struct cfg_toml_node *v)
{
    if (v->type == CFG_TOML_STRING && strcmp(v->str, "Immediate") == 0)
        return true;
    const struct cfg_toml_node *t = v->type == CFG_TOML_TABLE && v->n_children == 1 ? v->children[0] : NULL;
    const char *why = NULL;
    if (t && strcmp(t->key, "Threshold") == 0 && t->type == CFG_TOML_STRING &&
        shaping_rate_parse(t->str, &r->threshold, &why))
        return true;
    shaping_diag_add(ld, v->line, true, "automation: trigger: expected \"Immediate\" or {Threshold=\"5/hr\"}%s%s",
                     why ? ": " : "", why ? why : "");
    return false;
}

/* one_or_many - `key = X` or `key = [X, ...]` (not empty), each X through add() */
static bool one_or_many(struct shaping_ld *ld, struct shaping_rule *r, const struct cfg_toml_node *v,
                        bool (*add)(struct shaping_ld *, struct shaping_rule *, const struct cfg_toml_node *))
{
    if (v->type != CFG_TOML_ARRAY)
        return add(ld, r, v);
    if (v->n_children == 0) {
        shaping_diag_add(ld, v->line, true, "automation: %s: an empty array", v->key);
        return false;
    }
    bool ok = true;
    for (size_t k = 0; k < v->n_children; k++)
        ok &= add(ld, r, v->children[k]);
    return ok;
}

bool shaping_rule_parse(struct shaping_ld *ld, const struct cfg_toml_node *t, const char *scope, size_t blk)
{
    struct shaping_rule r = {0};
    bool ok = true, has_duration = false;
    unsigned line = t->line;

    if (t->type != CFG_TOML_TABLE) {
        shaping_diag_add(ld, line, true, "automation: expected a table with regex, action, duration");
        return false;
    }
    if (!line && t->n_children)
        line = t->children[0]->line;
    for (size_t i = 0; i < t->n_children; i++) {
        const struct cfg_toml_node *v = t->children[i];
        if (strcmp(v->key, "regex") == 0) {
            ok &= one_or_many(ld, &r, v, regex_add);
        } else if (strcmp(v->key, "action") == 0) {
            ok &= one_or_many(ld, &r, v, action_add);
        } else if (strcmp(v->key, "trigger") == 0) {
            ok &= trigger_set(ld, &r, v);
        } else if (strcmp(v->key, "duration") == 0) {
            has_duration = true;
            if (v->type == CFG_TOML_STRING ? !shaping_duration_parse(v->str, &r.duration_ms)
                                           : !(v->type == CFG_TOML_INT && v->i > 0)) {
                shaping_diag_add(ld, v->line, true, "automation: duration: expected a duration like \"2 hours\"");
                ok = false;
            } else if (v->type == CFG_TOML_INT) {
                r.duration_ms = (uint64_t)v->i * 1000;
            }
        } else if (strcmp(v->key, "match_internal") == 0) {
            if (v->type != CFG_TOML_BOOL) {
                shaping_diag_add(ld, v->line, true, "automation: match_internal: expected true or false");
                ok = false;
            }
            r.match_internal = v->type == CFG_TOML_BOOL && v->b;
        } else {
            shaping_diag_add(ld, v->line, true, "automation: unknown key \"%s\" (regex, action, trigger, duration, "
                             "match_internal)", v->key);
            ok = false;
        }
    }
    if (ok && (!r.n_regex || !r.n_actions || !has_duration)) {
        shaping_diag_add(ld, line, true, "automation: a rule needs %s", !r.n_regex ? "regex" : !r.n_actions ? "action"
                                                                                                            : "duration");
        ok = false;
    }
    if (!ok) {
        shaping_rule_fini(&r);
        return false;
    }
    struct shaping *sh = ld->sh;
    if (sh->n_rules == sh->cap_rules) {
        sh->cap_rules = sh->cap_rules ? sh->cap_rules * 2 : 32;
        sh->rules = xrealloc(sh->rules, sh->cap_rules * sizeof(*sh->rules));
        sh->rule_block = xrealloc(sh->rule_block, sh->cap_rules * sizeof(*sh->rule_block));
        sh->rule_dead = xrealloc(sh->rule_dead, sh->cap_rules * sizeof(*sh->rule_dead));
    }
    r.id = (unsigned)sh->n_rules;
    r.scope = xstrdup(scope);
    r.file = xstrdup(ld->file);
    r.line = line;
    sh->rules[sh->n_rules] = r;
    sh->rule_block[sh->n_rules] = blk;
    sh->rule_dead[sh->n_rules] = false;
    sh->n_rules++;
    return true;
}

int shaping_rule_match(const struct shaping_rule *r, const char *text, size_t len)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int hit = -1;
    for (size_t i = 0; i < r->n_regex && hit < 0; i++) {
        /* a match or recursion limit counts as no match: a hostile response text cannot stall the caller */
        if (pcre2_match(r->compiled[i], (PCRE2_SPTR)text, len, 0, 0, md, NULL) >= 0)
            hit = (int)i;
    }
    pcre2_match_data_free(md);
    return hit;
}
