/*
 * cfg_net - the network-facing parts of ringmail.toml: [[listener]] (address, name, tls, require_auth),
 * ingress.relay_networks and ingress.relay_domains
 *
 * Each cfg_net_apply_*() checks a whole list and replaces the struct's list only when every entry is
 * good; errors go to the load's error list (cfg_errf) with file:line. Internal to cfg/.
 */
#include "cfg/cfg_net.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cfg/cfg_dlv.h"
#include "cfg/cfg_int.h"

void cfg_net_free_domains(char **domains, size_t n)
{
    for (size_t i = 0; domains && i < n; i++)
        free(domains[i]);
    free(domains);
}

/* ingress.relay_networks, admin.trusted_networks: the file's list replaces the current one (out, *n_out) as a
 * whole; [] is allowed (no relay clients, no peer trusted) */
void cfg_net_apply_cidrs(struct cfg_errs *e, struct cfg_cidr *out, size_t *n_out, const char *key,
                         const struct cfg_toml_node *a)
{
    struct cfg_cidr nets[CFG_MAX_CIDRS];
    unsigned before = e->count;
    size_t n = 0;
    char ekey[160], q[96], why[160];

    if (!cfg_expect(e, a, CFG_TOML_ARRAY, key, "an array of strings"))
        return;
    if (a->n_children > CFG_MAX_CIDRS)
        cfg_errf(e, a->children[CFG_MAX_CIDRS]->line, "%s: at most %d networks are allowed, found %zu", key,
                 CFG_MAX_CIDRS, a->n_children);
    for (size_t i = 0; i < a->n_children && i < CFG_MAX_CIDRS; i++) {
        const struct cfg_toml_node *v = a->children[i];
        snprintf(ekey, sizeof(ekey), "%s[%zu]", key, i);
        if (!cfg_expect(e, v, CFG_TOML_STRING, ekey, "a string"))
            continue;
        if (!cfg_value_cidr_parse(v->str, &nets[n], why, sizeof(why))) {
            cfg_errf(e, v->line, "%s: %s %s", ekey, cfg_quote(q, sizeof(q), v->str), why);
            continue;
        }
        n++;
    }
    if (e->count != before)
        return;
    memcpy(out, nets, n * sizeof(nets[0]));
    *n_out = n;
}

/* ingress.relay_domains: host names, kept in lower case; replaces the current list as a whole */
void cfg_net_apply_domains(struct cfg_errs *e, struct cfg *c, const char *key, const struct cfg_toml_node *a)
{
    unsigned before = e->count;
    char **list;
    size_t n = 0;
    char ekey[160], q[96];

    if (!cfg_expect(e, a, CFG_TOML_ARRAY, key, "an array of strings"))
        return;
    list = a->n_children ? xcalloc(a->n_children, sizeof(char *)) : NULL;
    for (size_t i = 0; i < a->n_children; i++) {
        const struct cfg_toml_node *v = a->children[i];
        size_t len;
        snprintf(ekey, sizeof(ekey), "%s[%zu]", key, i);
        if (!cfg_expect(e, v, CFG_TOML_STRING, ekey, "a string"))
            continue;
        len = strlen(v->str);
        /* a trailing dot would never equal the domain of an address; refuse it instead of never matching */
        if (len > 1 && v->str[len - 1] == '.' && cfg_value_valid_hostname(v->str, len - 1)) {
            cfg_errf(e, v->line, "%s: %s ends with a dot (write it without)", ekey, cfg_quote(q, sizeof(q), v->str));
            continue;
        }
        if (!cfg_value_valid_hostname(v->str, len)) {
            cfg_errf(e, v->line, "%s: %s is not a valid domain name", ekey, cfg_quote(q, sizeof(q), v->str));
            continue;
        }
        list[n] = xstrdup(v->str);
        for (char *p = list[n]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        n++;
    }
    if (e->count != before) {
        cfg_net_free_domains(list, n);
        return;
    }
    cfg_net_free_domains(c->relay_domains, c->n_relay_domains);
    c->relay_domains = n ? list : NULL;
    c->n_relay_domains = n;
    if (!n)
        free(list);
}

/* [[listener]]: when present, the file's list replaces the current one as a whole */
void cfg_net_apply_listeners(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a)
{
    struct cfg_listener l[CFG_MAX_LISTENERS] = {{0}};
    unsigned before = e->count;
    size_t n = 0;
    char key[64];
    char q[96];

    if (a->type != CFG_TOML_ARRAY) {
        cfg_errf(e, a->line, "listener: expected an array of tables ([[listener]]), got %s",
                 cfg_toml_type_name(a->type));
        return;
    }
    if (a->n_children == 0) {
        cfg_errf(e, a->line, "listener: at least one listener is needed");
        return;
    }
    if (a->n_children > CFG_MAX_LISTENERS)
        cfg_errf(e, a->children[CFG_MAX_LISTENERS]->line, "listener: at most %d listeners are allowed, found %zu",
                 CFG_MAX_LISTENERS, a->n_children);
    for (size_t i = 0; i < a->n_children && i < CFG_MAX_LISTENERS; i++) {
        const struct cfg_toml_node *t = a->children[i];
        const char *address = NULL, *name = "smtp";
        bool implicit_tls = false, require_auth = false, feedback = false;
        int supp = CFG_SUPP_INHERIT;
        snprintf(key, sizeof(key), "listener[%zu]", i);
        if (!cfg_expect(e, t, CFG_TOML_TABLE, key, "a table"))
            continue;
        for (size_t j = 0; j < t->n_children; j++) {
            const struct cfg_toml_node *v = t->children[j];
            const char *why = NULL;
            snprintf(key, sizeof(key), "listener[%zu].%.32s", i, v->key);
            if (strcmp(v->key, "address") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                    continue;
                why = cfg_value_check_address(v->str);
                if (!why)
                    address = v->str;
            } else if (strcmp(v->key, "name") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                    continue;
                if (!cfg_value_valid_ident(v->str, CFG_IDENT_MAX, false))
                    why = "must be 1..64 characters of letters, digits, '.', '_' and '-'";
                else
                    name = v->str;
            } else if (strcmp(v->key, "tls") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                    continue;
                if (strcmp(v->str, "implicit") == 0)
                    implicit_tls = true;
                else if (strcmp(v->str, "starttls") != 0)
                    why = "must be \"starttls\" (the default) or \"implicit\"";
            } else if (strcmp(v->key, "require_auth") == 0) {
                if (cfg_expect(e, v, CFG_TOML_BOOL, key, "a boolean"))
                    require_auth = v->b;
                continue;
            } else if (strcmp(v->key, "feedback") == 0) {
                if (cfg_expect(e, v, CFG_TOML_BOOL, key, "a boolean"))
                    feedback = v->b;
                continue;
            } else if (strcmp(v->key, "suppression") == 0) {
                if (!cfg_expect(e, v, CFG_TOML_STRING, key, "a string"))
                    continue;
                if (strcmp(v->str, "reject") == 0)
                    supp = CFG_SUPP_REJECT;
                else if (strcmp(v->str, "drop") == 0)
                    supp = CFG_SUPP_DROP;
                else
                    why = "must be \"reject\" or \"drop\"";
            } else {
                cfg_errf(e, v->line, "unknown key %s", cfg_quote(q, sizeof(q), key));
                continue;
            }
            if (why)
                cfg_errf(e, v->line, "%s: %s %s", key, cfg_quote(q, sizeof(q), v->str), why);
        }
        if (!address) {
            if (!cfg_toml_find(t, "address"))
                cfg_errf(e, t->line, "listener[%zu]: missing address", i);
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(l[j].address, address) == 0)
                cfg_errf(e, cfg_toml_find(t, "address")->line, "listener[%zu].address: %s is already used by listener[%zu]",
                         i, cfg_quote(q, sizeof(q), address), j);
        }
        l[n].address = xstrdup(address);
        l[n].name = xstrdup(name);
        l[n].implicit_tls = implicit_tls;
        l[n].require_auth = require_auth;
        l[n].feedback = feedback;
        l[n].suppression = supp;
        n++;
    }
    if (e->count == before) {
        for (size_t i = 0; i < c->n_listeners; i++) {
            free(c->listeners[i].address);
            free(c->listeners[i].name);
        }
        memcpy(c->listeners, l, sizeof(l));
        c->n_listeners = n;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(l[i].address);
        free(l[i].name);
    }
}

