/*
 * sched_tsa - traffic shaping automation: matching, counters, effects, history (contract in sched_tsa.h)
 *
 * An effect and a history entry are the same thing: an owned copy of one firing (struct entry, the
 * strings of a proto_tsa event). Effects are few (one per action, key and option in force), so they
 * live in an array searched linearly; counters likewise, pruned when their period is over.
 */
#include "scheduler/sched_tsa.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"

struct entry {
    struct proto_tsa_event_hdr hdr; /* len[] unused: the strings are NUL-terminated */
    char *str[PROTO_TSA_E_STRINGS];
    uint32_t firings; /* effects: firings that set or extended it */
};

struct counter {
    unsigned rule;
    char *key;
    uint64_t window_ms; /* start of the window */
    uint64_t period_ms;
    uint64_t n;
};

struct sched_tsa {
    struct sched_tsa_ops ops;
    struct entry *eff;
    size_t n_eff, cap_eff;
    struct entry *hist; /* a ring of SCHED_TSA_HISTORY */
    size_t hist_head, n_hist;
    struct counter *ctr;
    size_t n_ctr, cap_ctr;
    uint64_t responses;
    /* firings per rule and action since start (the tsa page's "rules", /metrics); the last is "other" */
    struct proto_status_tsa_rule *rules;
    size_t n_rules;
};

static const char *const action_names[] = {"Suspend",         "SetConfig", "SetDomainConfig", "SuspendTenant",
                                           "SuspendCampaign", "Bounce",    "BounceTenant",    "BounceCampaign"};

const char *sched_tsa_action_name(unsigned kind)
{
    return kind < sizeof(action_names) / sizeof(action_names[0]) ? action_names[kind] : "?";
}

static bool is_config(unsigned kind)
{
    return kind == SHAPING_ACTION_SET_CONFIG || kind == SHAPING_ACTION_SET_DOMAIN_CONFIG;
}

static bool is_bounce(unsigned kind)
{
    return kind >= SHAPING_ACTION_BOUNCE && kind <= SHAPING_ACTION_BOUNCE_CAMPAIGN;
}

struct sched_tsa *sched_tsa_new(const struct sched_tsa_ops *ops)
{
    struct sched_tsa *t = xcalloc(1, sizeof(*t));
    t->ops = *ops;
    t->hist = xcalloc(SCHED_TSA_HISTORY, sizeof(*t->hist));
    return t;
}

static void entry_fini(struct entry *e)
{
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        free(e->str[i]);
    memset(e, 0, sizeof(*e));
}

/* dup - the event's string i, NUL-terminated (a NULL string is empty) */
static char *dup(const struct proto_tsa_event *ev, enum proto_tsa_event_str i)
{
    return xstrndup(ev->str[i] ? ev->str[i] : "", ev->hdr.len[i]);
}

static void entry_from(struct entry *e, const struct proto_tsa_event *ev)
{
    e->hdr = ev->hdr;
    for (int i = 0; i < PROTO_TSA_E_STRINGS; i++)
        e->str[i] = dup(ev, (enum proto_tsa_event_str)i);
    e->firings = 1;
}

void sched_tsa_free(struct sched_tsa *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_eff; i++)
        entry_fini(&t->eff[i]);
    for (size_t i = 0; i < SCHED_TSA_HISTORY; i++)
        entry_fini(&t->hist[i]);
    for (size_t i = 0; i < t->n_ctr; i++)
        free(t->ctr[i].key);
    for (size_t i = 0; i < t->n_rules; i++)
        free((char *)t->rules[i].rule);
    free(t->rules);
    free(t->eff);
    free(t->hist);
    free(t->ctr);
    free(t);
}

static void history_add(struct sched_tsa *t, const struct proto_tsa_event *ev)
{
    size_t slot = (t->hist_head + t->n_hist) % SCHED_TSA_HISTORY;
    if (t->n_hist == SCHED_TSA_HISTORY) {
        slot = t->hist_head;
        t->hist_head = (t->hist_head + 1) % SCHED_TSA_HISTORY;
    } else {
        t->n_hist++;
    }
    entry_fini(&t->hist[slot]);
    entry_from(&t->hist[slot], ev);
}

/* the strings that name an effect: its key and its option */
static const enum proto_tsa_event_str key_strs[] = {PROTO_TSA_E_SOURCE, PROTO_TSA_E_SITE,     PROTO_TSA_E_DOMAIN,
                                                     PROTO_TSA_E_TENANT, PROTO_TSA_E_CAMPAIGN, PROTO_TSA_E_NAME};

/* str_is - e's string i equals the event's (whose string may be NULL when empty) */
static bool str_is(const struct entry *e, const struct proto_tsa_event *ev, enum proto_tsa_event_str i)
{
    size_t n = ev->hdr.len[i];
    return strlen(e->str[i]) == n && (n == 0 || memcmp(e->str[i], ev->str[i], n) == 0);
}

static bool entry_admin(const struct entry *e)
{
    return strcmp(e->str[PROTO_TSA_E_SCOPE], SCHED_TSA_ADMIN_SCOPE) == 0;
}

bool sched_tsa_event_admin(const struct proto_tsa_event *ev)
{
    size_t n = strlen(SCHED_TSA_ADMIN_SCOPE);
    return ev->hdr.len[PROTO_TSA_E_SCOPE] == n && memcmp(ev->str[PROTO_TSA_E_SCOPE], SCHED_TSA_ADMIN_SCOPE, n) == 0;
}

static bool event_cancel(const struct proto_tsa_event *ev)
{
    size_t n = strlen(SCHED_TSA_ADMIN_CANCEL);
    return sched_tsa_event_admin(ev) && ev->hdr.len[PROTO_TSA_E_REGEX] == n &&
           memcmp(ev->str[PROTO_TSA_E_REGEX], SCHED_TSA_ADMIN_CANCEL, n) == 0;
}

/* same_key - the same action on the same key and option; an operator's effect is only ever itself (its id
 * is its start) and never merges with the automation's */
static bool same_key(const struct entry *e, const struct proto_tsa_event *ev)
{
    bool admin = sched_tsa_event_admin(ev);
    bool same = e->hdr.action == ev->hdr.action && entry_admin(e) == admin &&
                (!admin || e->hdr.start_ms == ev->hdr.start_ms);
    for (size_t k = 0; same && k < sizeof(key_strs) / sizeof(key_strs[0]); k++)
        same = str_is(e, ev, key_strs[k]);
    return same;
}

/* key_until - the latest expiry of the effects holding what e holds (the core keeps one suspension per key,
 * so an operator's suspension and the automation's on the same key are applied as the longer of them) */
static uint64_t key_until(const struct sched_tsa *t, const struct entry *e)
{
    uint64_t until = 0;
    for (size_t i = 0; i < t->n_eff; i++) {
        const struct entry *o = &t->eff[i];
        bool same = o->hdr.action == e->hdr.action;
        for (size_t k = 0; same && k < sizeof(key_strs) / sizeof(key_strs[0]); k++)
            same = strcmp(o->str[key_strs[k]], e->str[key_strs[k]]) == 0;
        if (same && (uint64_t)o->hdr.expiry_ms > until)
            until = (uint64_t)o->hdr.expiry_ms;
    }
    return until;
}

/* any_tenant - an operator's effect without a tenant holds every tenant (NULL for the core) */
static const char *any_tenant(const struct entry *e, const char *tenant)
{
    return entry_admin(e) && !tenant[0] ? NULL : tenant;
}

static struct entry *effect_find(struct sched_tsa *t, const struct proto_tsa_event *ev)
{
    for (size_t i = 0; i < t->n_eff; i++)
        if (same_key(&t->eff[i], ev))
            return &t->eff[i];
    return NULL;
}

static void act(struct sched_tsa *t, const struct entry *e, bool reconf);

/* apply - the effect of one firing (new, or extending one in force), and its action */
static void apply(struct sched_tsa *t, const struct proto_tsa_event *ev)
{
    struct entry *e = effect_find(t, ev);
    bool reconf = false;

    if (e) {
        if (ev->hdr.expiry_ms > e->hdr.expiry_ms)
            e->hdr.expiry_ms = ev->hdr.expiry_ms;
        free(e->str[PROTO_TSA_E_RESPONSE]);
        e->str[PROTO_TSA_E_RESPONSE] = dup(ev, PROTO_TSA_E_RESPONSE);
        if (!str_is(e, ev, PROTO_TSA_E_VALUE)) {
            free(e->str[PROTO_TSA_E_VALUE]);
            e->str[PROTO_TSA_E_VALUE] = dup(ev, PROTO_TSA_E_VALUE);
            reconf = true;
        }
        e->firings++;
    } else {
        if (t->n_eff == t->cap_eff) {
            t->cap_eff = t->cap_eff ? t->cap_eff * 2 : 16;
            t->eff = xrealloc(t->eff, t->cap_eff * sizeof(*t->eff));
        }
        e = &t->eff[t->n_eff++];
        entry_from(e, ev);
        reconf = true;
    }
    act(t, e, reconf);
}

/* act - the action of an effect in force (again, for a Bounce at each tick) */
static void act(struct sched_tsa *t, const struct entry *e, bool reconf)
{
    const char *const *s = (const char *const *)e->str;
    uint64_t until = key_until(t, e);
    switch (e->hdr.action) {
    case SHAPING_ACTION_SUSPEND:
        if (t->ops.suspend_path)
            t->ops.suspend_path(t->ops.arg, s[PROTO_TSA_E_SOURCE], s[PROTO_TSA_E_SITE], until);
        break;
    case SHAPING_ACTION_SET_CONFIG:
    case SHAPING_ACTION_SET_DOMAIN_CONFIG:
        if (reconf && t->ops.reconfigure)
            t->ops.reconfigure(t->ops.arg, NULL, s[PROTO_TSA_E_SITE]);
        break;
    case SHAPING_ACTION_SUSPEND_TENANT:
    case SHAPING_ACTION_SUSPEND_CAMPAIGN:
        if (t->ops.suspend_queue)
            t->ops.suspend_queue(t->ops.arg, s[PROTO_TSA_E_DOMAIN], any_tenant(e, s[PROTO_TSA_E_TENANT]),
                                 e->hdr.action == SHAPING_ACTION_SUSPEND_CAMPAIGN ? s[PROTO_TSA_E_CAMPAIGN] : NULL,
                                 until);
        break;
    default:
        if (t->ops.bounce)
            t->ops.bounce(t->ops.arg, s[PROTO_TSA_E_DOMAIN],
                          e->hdr.action >= SHAPING_ACTION_BOUNCE_TENANT ? any_tenant(e, s[PROTO_TSA_E_TENANT]) : NULL,
                          e->hdr.action == SHAPING_ACTION_BOUNCE_CAMPAIGN ? s[PROTO_TSA_E_CAMPAIGN] : NULL);
        break;
    }
}

/* counted - a Threshold rule's match; true when it reaches the limit (the window then restarts) */
static bool counted(struct sched_tsa *t, const struct shaping_rule *r, const char *key, uint64_t now_ms)
{
    struct counter *c = NULL;
    for (size_t i = 0; i < t->n_ctr && !c; i++)
        if (t->ctr[i].rule == r->id && strcmp(t->ctr[i].key, key) == 0)
            c = &t->ctr[i];
    if (!c) {
        if (t->n_ctr == t->cap_ctr) {
            t->cap_ctr = t->cap_ctr ? t->cap_ctr * 2 : 16;
            t->ctr = xrealloc(t->ctr, t->cap_ctr * sizeof(*t->ctr));
        }
        c = &t->ctr[t->n_ctr++];
        *c = (struct counter){.rule = r->id, .key = xstrdup(key), .window_ms = now_ms};
    }
    c->period_ms = r->threshold.period_ms;
    if (now_ms >= c->window_ms + r->threshold.period_ms || c->n == 0) {
        c->window_ms = now_ms;
        c->n = 0;
    }
    if (++c->n < r->threshold.limit)
        return false;
    c->n = 0;
    return true;
}

/* rule_fired - count a firing of rule r's action k; past PROTO_STATUS_TSA_RULES_MAX - 1 rules, as "other" */
static void rule_fired(struct sched_tsa *t, const struct shaping_rule *r, unsigned k)
{
    char *key = xasprintf("%s:%u %s", r->file, r->line, action_names[k]);
    size_t i;
    for (i = 0; i < t->n_rules && strcmp(t->rules[i].rule, key) != 0; i++)
        ;
    if (i == t->n_rules) {
        if (t->n_rules == PROTO_STATUS_TSA_RULES_MAX - 1) {
            free(key);
            key = xstrdup("other");
        } else if (t->n_rules == PROTO_STATUS_TSA_RULES_MAX) {
            free(key);
            t->rules[PROTO_STATUS_TSA_RULES_MAX - 1].firings++;
            return;
        }
        if (!t->rules)
            t->rules = xcalloc(PROTO_STATUS_TSA_RULES_MAX, sizeof(*t->rules));
        t->rules[t->n_rules++] = (struct proto_status_tsa_rule){.rule = key};
    } else {
        free(key);
    }
    t->rules[i].firings++;
}

/* fire - every action of r, for the response r got */
static size_t fire(struct sched_tsa *t, const struct shaping_rule *r, int regex, const struct proto_tsa_resp *resp,
                   uint32_t matches, uint64_t start_ms)
{
    const char *const *rs = resp->str;
    size_t n = 0;

    for (size_t a = 0; a < r->n_actions; a++) {
        const struct shaping_action *act = &r->actions[a];
        unsigned k = act->kind;
        struct proto_tsa_event ev = {.hdr = {.start_ms = (int64_t)start_ms,
                                             .expiry_ms = (int64_t)(start_ms + (r->duration_ms ? r->duration_ms : 1)),
                                             .line = r->line,
                                             .count = matches,
                                             .action = (uint16_t)k}};
        char *value = is_config(k) && act->value ? json_dumps(act->value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (is_config(k) && (!act->name || !value)) {
            free(value);
            continue;
        }
        bool path = k == SHAPING_ACTION_SUSPEND || k == SHAPING_ACTION_SET_CONFIG;
        proto_tsa_event_set(&ev, PROTO_TSA_E_SCOPE, r->scope);
        proto_tsa_event_set(&ev, PROTO_TSA_E_FILE, r->file);
        proto_tsa_event_set(&ev, PROTO_TSA_E_REGEX, r->regex[regex]);
        proto_tsa_event_set(&ev, PROTO_TSA_E_RESPONSE, rs[PROTO_TSA_R_TEXT]);
        proto_tsa_event_set(&ev, PROTO_TSA_E_SOURCE, k == SHAPING_ACTION_SUSPEND ? rs[PROTO_TSA_R_SOURCE] : NULL);
        /* SetDomainConfig keeps the site too: the paths to reconfigure when it appears and expires */
        proto_tsa_event_set(&ev, PROTO_TSA_E_SITE, path || k == SHAPING_ACTION_SET_DOMAIN_CONFIG ? rs[PROTO_TSA_R_SITE]
                                                                                                  : NULL);
        proto_tsa_event_set(&ev, PROTO_TSA_E_DOMAIN, path ? NULL : rs[PROTO_TSA_R_DOMAIN]);
        bool tenant = k == SHAPING_ACTION_SUSPEND_TENANT || k == SHAPING_ACTION_SUSPEND_CAMPAIGN ||
                      k == SHAPING_ACTION_BOUNCE_TENANT || k == SHAPING_ACTION_BOUNCE_CAMPAIGN;
        bool campaign = k == SHAPING_ACTION_SUSPEND_CAMPAIGN || k == SHAPING_ACTION_BOUNCE_CAMPAIGN;
        proto_tsa_event_set(&ev, PROTO_TSA_E_TENANT, tenant ? rs[PROTO_TSA_R_TENANT] : NULL);
        proto_tsa_event_set(&ev, PROTO_TSA_E_CAMPAIGN, campaign ? rs[PROTO_TSA_R_CAMPAIGN] : NULL);
        proto_tsa_event_set(&ev, PROTO_TSA_E_NAME, is_config(k) ? act->name : NULL);
        proto_tsa_event_set(&ev, PROTO_TSA_E_VALUE, value);
        if (ev.hdr.len[PROTO_TSA_E_SITE] == 0 && ev.hdr.len[PROTO_TSA_E_DOMAIN] == 0) {
            free(value);
            continue; /* a path action for a response without a site (no connection was made) */
        }
        log_info("TSA: rule %s:%u (%s) fired %s for %s%s%s: %s", r->file, r->line, r->scope, action_names[k],
                 ev.str[path ? PROTO_TSA_E_SOURCE : PROTO_TSA_E_DOMAIN], path ? "->" : "",
                 path ? ev.str[PROTO_TSA_E_SITE] : "", rs[PROTO_TSA_R_TEXT]);
        apply(t, &ev);
        history_add(t, &ev);
        rule_fired(t, r, k);
        if (t->ops.fired)
            t->ops.fired(t->ops.arg, &ev);
        free(value);
        n++;
    }
    return n;
}

static bool internal(const char *text)
{
    /* the node's own texts (no connection, timeouts) carry no reply code */
    return !(text[0] >= '2' && text[0] <= '5' && text[1] >= '0' && text[1] <= '9' && text[2] >= '0' &&
             text[2] <= '9');
}

size_t sched_tsa_response(struct sched_tsa *t, const struct proto_tsa_resp *r, uint64_t now_ms)
{
    const char *const *s = r->str;
    const struct shaping_rule **rules = NULL;
    size_t fired = 0;

    t->responses++;
    if (!t->ops.rules || !t->ops.match)
        return 0;
    size_t n = t->ops.rules(t->ops.arg, s[PROTO_TSA_R_DOMAIN], s[PROTO_TSA_R_SOURCE], s[PROTO_TSA_R_SITE], &rules);
    if (n == 0)
        return 0;
    uint64_t start = r->hdr.timestamp_ms > 0 ? (uint64_t)r->hdr.timestamp_ms : now_ms;
    bool is_internal = internal(s[PROTO_TSA_R_TEXT]);
    char *key = xasprintf("%s\x01%s\x01%s", s[PROTO_TSA_R_DOMAIN], s[PROTO_TSA_R_SOURCE], s[PROTO_TSA_R_SITE]);
    for (size_t i = 0; i < n; i++) {
        const struct shaping_rule *rule = rules[i];
        if (is_internal && !rule->match_internal)
            continue;
        int m = t->ops.match(rule, s[PROTO_TSA_R_TEXT], r->hdr.len[PROTO_TSA_R_TEXT]);
        if (m < 0 || (size_t)m >= rule->n_regex)
            continue;
        if (rule->threshold.limit == 0)
            fired += fire(t, rule, m, r, 1, start);
        else if (counted(t, rule, key, now_ms))
            fired += fire(t, rule, m, r, (uint32_t)rule->threshold.limit, start);
    }
    free(key);
    return fired;
}

/* known - the firing is in the history already (the spool sent its state again) */
static bool known(const struct sched_tsa *t, const struct proto_tsa_event *ev)
{
    for (size_t i = 0; i < t->n_hist; i++) {
        const struct entry *e = &t->hist[(t->hist_head + i) % SCHED_TSA_HISTORY];
        if (e->hdr.start_ms == ev->hdr.start_ms && e->hdr.expiry_ms == ev->hdr.expiry_ms &&
            e->hdr.line == ev->hdr.line && same_key(e, ev))
            return true;
    }
    return false;
}

/* cancel - the operator's effect `id` ends now: what it held is held again only by what else holds it */
static int cancel(struct sched_tsa *t, uint64_t id)
{
    size_t i = 0;
    while (i < t->n_eff && !(entry_admin(&t->eff[i]) && (uint64_t)t->eff[i].hdr.start_ms == id))
        i++;
    if (i == t->n_eff)
        return -ENOENT;
    struct entry e = t->eff[i];
    memmove(&t->eff[i], &t->eff[i + 1], (t->n_eff - i - 1) * sizeof(*t->eff));
    t->n_eff--;
    const char *const *s = (const char *const *)e.str;
    uint64_t until = key_until(t, &e);
    if (e.hdr.action == SHAPING_ACTION_SUSPEND && t->ops.suspend_path)
        t->ops.suspend_path(t->ops.arg, s[PROTO_TSA_E_SOURCE], s[PROTO_TSA_E_SITE], until);
    else if ((e.hdr.action == SHAPING_ACTION_SUSPEND_TENANT || e.hdr.action == SHAPING_ACTION_SUSPEND_CAMPAIGN) &&
             t->ops.suspend_queue)
        t->ops.suspend_queue(t->ops.arg, s[PROTO_TSA_E_DOMAIN], any_tenant(&e, s[PROTO_TSA_E_TENANT]),
                             e.hdr.action == SHAPING_ACTION_SUSPEND_CAMPAIGN ? s[PROTO_TSA_E_CAMPAIGN] : NULL, until);
    log_info("TSA: operator's %s %llu cancelled", sched_tsa_action_name(e.hdr.action), (unsigned long long)id);
    entry_fini(&e);
    return 0;
}

int sched_tsa_admin(struct sched_tsa *t, const struct proto_tsa_event *ev)
{
    if (!sched_tsa_event_admin(ev))
        return -EINVAL;
    if (event_cancel(ev)) {
        int rc = cancel(t, (uint64_t)ev->hdr.start_ms);
        if (rc < 0)
            return rc;
    } else {
        apply(t, ev);
    }
    history_add(t, ev);
    if (t->ops.fired)
        t->ops.fired(t->ops.arg, ev);
    return 0;
}

bool sched_tsa_restore(struct sched_tsa *t, const struct proto_tsa_event *ev, uint64_t now_ms)
{
    if (known(t, ev))
        return false;
    history_add(t, ev);
    if (event_cancel(ev)) {
        (void)cancel(t, (uint64_t)ev->hdr.start_ms);
        return false;
    }
    if (ev->hdr.expiry_ms <= (int64_t)now_ms)
        return false;
    apply(t, ev);
    return true;
}

void sched_tsa_tick(struct sched_tsa *t, uint64_t now_ms)
{
    size_t j = 0, n_sites = 0;
    char **sites = NULL;

    for (size_t i = 0; i < t->n_eff; i++) {
        struct entry *e = &t->eff[i];
        if (e->hdr.expiry_ms > (int64_t)now_ms) {
            t->eff[j++] = *e;
            continue;
        }
        bool path = e->str[PROTO_TSA_E_DOMAIN][0] == '\0';
        log_info("TSA: %s for %s%s%s expired", sched_tsa_action_name(e->hdr.action),
                 e->str[path ? PROTO_TSA_E_SOURCE : PROTO_TSA_E_DOMAIN], path ? "->" : "",
                 path ? e->str[PROTO_TSA_E_SITE] : "");
        if (is_config(e->hdr.action)) {
            sites = xrealloc(sites, (n_sites + 1) * sizeof(*sites));
            sites[n_sites++] = xstrdup(e->str[PROTO_TSA_E_SITE]);
        }
        entry_fini(e);
    }
    t->n_eff = j;
    /* after the array is whole again: reconfigure asks for the overrides left */
    for (size_t i = 0; i < n_sites; i++) {
        if (t->ops.reconfigure)
            t->ops.reconfigure(t->ops.arg, NULL, sites[i]);
        free(sites[i]);
    }
    free(sites);
    size_t k = 0;
    for (size_t i = 0; i < t->n_ctr; i++) {
        if (now_ms >= t->ctr[i].window_ms + t->ctr[i].period_ms)
            free(t->ctr[i].key);
        else
            t->ctr[k++] = t->ctr[i];
    }
    t->n_ctr = k;
}

static bool active_on(const struct entry *e, unsigned kind, enum proto_tsa_event_str s, const char *v, uint64_t now_ms)
{
    return e->hdr.action == kind && e->hdr.expiry_ms > (int64_t)now_ms && v && strcmp(e->str[s], v) == 0;
}

static void merge(json_t **out, const struct entry *e)
{
    json_t *v = json_loads(e->str[PROTO_TSA_E_VALUE], JSON_DECODE_ANY, NULL);
    if (!v)
        return;
    if (!*out)
        *out = json_object();
    json_object_set_new(*out, e->str[PROTO_TSA_E_NAME], v);
}

json_t *sched_tsa_overrides_of(const struct sched_tsa *t, const char *source, const char *site, const char *domain,
                               uint64_t now_ms)
{
    json_t *o = NULL;

    (void)source; /* SetConfig holds for every source of the site */
    for (size_t i = 0; i < t->n_eff; i++)
        if (active_on(&t->eff[i], SHAPING_ACTION_SET_CONFIG, PROTO_TSA_E_SITE, site, now_ms))
            merge(&o, &t->eff[i]);
    for (size_t i = 0; i < t->n_eff; i++)
        if (active_on(&t->eff[i], SHAPING_ACTION_SET_DOMAIN_CONFIG, PROTO_TSA_E_DOMAIN, domain, now_ms))
            merge(&o, &t->eff[i]);
    return o;
}

void sched_tsa_rules_changed(struct sched_tsa *t)
{
    for (size_t i = 0; i < t->n_ctr; i++)
        free(t->ctr[i].key);
    t->n_ctr = 0;
}

/* bounce_match - a Bounce* effect in force covers the mail (only the operator's, when admin_only) */
static bool bounce_match(const struct sched_tsa *t, const char *domain, const char *tenant, const char *campaign,
                         uint64_t now_ms, bool admin_only)
{
    for (size_t i = 0; i < t->n_eff; i++) {
        const struct entry *e = &t->eff[i];
        unsigned k = e->hdr.action;
        if (admin_only && !entry_admin(e))
            continue;
        bool any_domain = entry_admin(e) && strcmp(e->str[PROTO_TSA_E_DOMAIN], "*") == 0;
        if (!is_bounce(k) || e->hdr.expiry_ms <= (int64_t)now_ms ||
            (!any_domain && strcasecmp(e->str[PROTO_TSA_E_DOMAIN], domain)))
            continue;
        if (k != SHAPING_ACTION_BOUNCE && any_tenant(e, e->str[PROTO_TSA_E_TENANT]) &&
            strcmp(e->str[PROTO_TSA_E_TENANT], tenant ? tenant : "") != 0)
            continue;
        if (k == SHAPING_ACTION_BOUNCE_CAMPAIGN && strcmp(e->str[PROTO_TSA_E_CAMPAIGN], campaign ? campaign : "") != 0)
            continue;
        return true;
    }
    return false;
}

bool sched_tsa_bounces(const struct sched_tsa *t, const char *domain, const char *tenant, const char *campaign,
                       uint64_t now_ms)
{
    return bounce_match(t, domain, tenant, campaign, now_ms, false);
}

bool sched_tsa_bounces_admin(const struct sched_tsa *t, const char *domain, const char *tenant, const char *campaign,
                             uint64_t now_ms)
{
    return bounce_match(t, domain, tenant, campaign, now_ms, true);
}

uint64_t sched_tsa_suspended_until(const struct sched_tsa *t, const char *source, const char *site, uint64_t now_ms)
{
    uint64_t until = 0;

    for (size_t i = 0; i < t->n_eff; i++) {
        const struct entry *e = &t->eff[i];
        if (active_on(e, SHAPING_ACTION_SUSPEND, PROTO_TSA_E_SITE, site, now_ms) &&
            strcmp(e->str[PROTO_TSA_E_SOURCE], source) == 0 && (uint64_t)e->hdr.expiry_ms > until)
            until = (uint64_t)e->hdr.expiry_ms;
    }
    return until;
}

static struct proto_status_tsa_entry status_of(const struct entry *e, bool active, uint64_t now_ms)
{
    const char *const *s = (const char *const *)e->str;
    return (struct proto_status_tsa_entry){
        .action = sched_tsa_action_name(e->hdr.action),
        .source = s[PROTO_TSA_E_SOURCE],
        .site = s[PROTO_TSA_E_SITE],
        .domain = s[PROTO_TSA_E_DOMAIN],
        .tenant = s[PROTO_TSA_E_TENANT],
        .campaign = s[PROTO_TSA_E_CAMPAIGN],
        .option = is_config(e->hdr.action) ? s[PROTO_TSA_E_NAME] : NULL,
        .value = is_config(e->hdr.action) ? s[PROTO_TSA_E_VALUE] : NULL,
        .rule_scope = s[PROTO_TSA_E_SCOPE],
        .rule_file = s[PROTO_TSA_E_FILE],
        .rule_line = e->hdr.line,
        .regex = s[PROTO_TSA_E_REGEX],
        .response = s[PROTO_TSA_E_RESPONSE],
        .count = active ? e->firings : e->hdr.count,
        .start_ms = (uint64_t)e->hdr.start_ms,
        .expires_ms = (uint64_t)e->hdr.expiry_ms,
        .remaining_ms = active ? e->hdr.expiry_ms - (int64_t)now_ms : -1,
    };
}

static int by_expiry(const void *a, const void *b)
{
    const struct proto_status_tsa_entry *x = a, *y = b;
    return x->expires_ms < y->expires_ms ? -1 : x->expires_ms > y->expires_ms;
}

void sched_tsa_status(const struct sched_tsa *t, uint64_t now_ms, size_t max_active, size_t max_history,
                      struct proto_status_tsa *doc)
{
    memset(doc, 0, sizeof(*doc));
    doc->age_ms = -1;
    doc->responses = t->responses;
    doc->active = xcalloc(t->n_eff ? t->n_eff : 1, sizeof(*doc->active));
    for (size_t i = 0; i < t->n_eff; i++)
        if (t->eff[i].hdr.expiry_ms > (int64_t)now_ms)
            doc->active[doc->n_active++] = status_of(&t->eff[i], true, now_ms);
    qsort(doc->active, doc->n_active, sizeof(*doc->active), by_expiry);
    if (doc->n_active > max_active)
        doc->n_active = max_active;
    size_t nh = t->n_hist < max_history ? t->n_hist : max_history;
    doc->history = xcalloc(nh ? nh : 1, sizeof(*doc->history));
    for (size_t i = 0; i < nh; i++) /* newest first */
        doc->history[i] =
            status_of(&t->hist[(t->hist_head + t->n_hist - 1 - i) % SCHED_TSA_HISTORY], false, now_ms);
    doc->n_history = nh;
    doc->rules = t->rules; /* borrowed */
    doc->n_rules = t->n_rules;
}
