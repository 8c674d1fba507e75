/*
 * sched_tsa_test - the automation engine on a simulated clock, with rules built here (the shaping
 * library's own matcher is tested with it; here a regex is matched as a literal substring)
 *
 * Immediate fires on the first match, Threshold on the limit-th match within its period and not
 * before; actions reach their operations with the right key and expiry; a re-trigger extends and
 * never shortens; expiry ends overrides (reconfigure) and Bounce sweeps; internal responses count
 * only for match_internal rules; stored firings restore (expired ones only into the history, a
 * repeated state is not applied twice); the status document lists effects and firings; an operator's
 * effects (scope admin) stay apart from the automation's, cancel durably and replay in order.
 */
#include <errno.h>
#include <string.h>

#include "scheduler/sched_tsa.h"
#include "tests/lib/check.h"

#define T0 1765000000000ull
#define MIN 60000ull

struct calls {
    int suspend, queue, bounce, reconf, fired;
    char source[64], site[64], domain[64], tenant[64], campaign[64];
    uint64_t until;
    const struct shaping_rule **rules;
    size_t n_rules;
};

static size_t rules_cb(void *arg, const char *domain, const char *source, const char *site,
                       const struct shaping_rule ***out)
{
    struct calls *c = arg;
    *out = c->rules;
    return c->n_rules;
}

static int match_cb(const struct shaping_rule *r, const char *text, size_t len)
{
    for (size_t i = 0; i < r->n_regex; i++)
        if (strstr(text, r->regex[i]))
            return (int)i;
    return -1;
}

static void put(char *dst, const char *s)
{
    snprintf(dst, 64, "%s", s ? s : "(null)");
}

static void suspend_cb(void *arg, const char *source, const char *site, uint64_t until)
{
    struct calls *c = arg;
    c->suspend++;
    put(c->source, source);
    put(c->site, site);
    c->until = until;
}

static void queue_cb(void *arg, const char *domain, const char *tenant, const char *campaign, uint64_t until)
{
    struct calls *c = arg;
    c->queue++;
    put(c->domain, domain);
    put(c->tenant, tenant);
    put(c->campaign, campaign);
    c->until = until;
}

static void bounce_cb(void *arg, const char *domain, const char *tenant, const char *campaign)
{
    struct calls *c = arg;
    c->bounce++;
    put(c->domain, domain);
    put(c->tenant, tenant);
    put(c->campaign, campaign);
}

static void reconf_cb(void *arg, const char *source, const char *site)
{
    struct calls *c = arg;
    c->reconf++;
    put(c->site, site);
}

static void fired_cb(void *arg, const struct proto_tsa_event *ev)
{
    ((struct calls *)arg)->fired++;
}

static struct sched_tsa *engine(struct calls *c)
{
    struct sched_tsa_ops ops = {c, rules_cb, match_cb, suspend_cb, queue_cb, bounce_cb, reconf_cb, fired_cb};
    return sched_tsa_new(&ops);
}

static char *ts04[] = {"[TS04]", "[TS03]"};

static struct shaping_rule rule(unsigned id, struct shaping_action *acts, size_t n, uint64_t limit, uint64_t period,
                                uint64_t duration)
{
    return (struct shaping_rule){.id = id, .scope = "provider:yahoo", .file = "shaping.toml", .line = 10 + id,
                                 .n_regex = 2, .regex = ts04, .n_actions = n, .actions = acts,
                                 .threshold = {limit, period, 0}, .duration_ms = duration};
}

static void response(struct sched_tsa *t, const char *text, uint64_t at, const char *tenant, const char *campaign)
{
    struct proto_tsa_resp r = {.hdr = {.kind = PROTO_TSA_TRANSIENT, .timestamp_ms = (int64_t)at}};
    proto_tsa_resp_set(&r, PROTO_TSA_R_DOMAIN, "yahoo.com");
    proto_tsa_resp_set(&r, PROTO_TSA_R_SITE, "mx.yahoo.test");
    proto_tsa_resp_set(&r, PROTO_TSA_R_SOURCE, "ip-1");
    proto_tsa_resp_set(&r, PROTO_TSA_R_TENANT, tenant);
    proto_tsa_resp_set(&r, PROTO_TSA_R_CAMPAIGN, campaign);
    proto_tsa_resp_set(&r, PROTO_TSA_R_TEXT, text);
    sched_tsa_response(t, &r, at);
}

static void test_immediate_suspend(void)
{
    struct calls c = {0};
    struct shaping_action suspend = {SHAPING_ACTION_SUSPEND, NULL, NULL};
    struct shaping_rule r = rule(0, &suspend, 1, 0, 0, 60 * MIN);
    const struct shaping_rule *rules[] = {&r};
    c.rules = rules;
    c.n_rules = 1;
    struct sched_tsa *t = engine(&c);

    response(t, "421 4.7.1 nothing to see", T0, NULL, NULL);
    CHECK(c.suspend == 0 && c.fired == 0, "fired on a response its regexes do not match");
    response(t, "421 4.7.0 [TS04] Messages from 10.0.0.1 temporarily deferred", T0, NULL, NULL);
    CHECK(c.suspend == 1 && c.fired == 1, "Immediate did not fire at once (%d)", c.suspend);
    CHECK(strcmp(c.source, "ip-1") == 0 && strcmp(c.site, "mx.yahoo.test") == 0, "key %s->%s", c.source, c.site);
    CHECK(c.until == T0 + 60 * MIN, "until %llu", (unsigned long long)(c.until - T0));
    CHECK(sched_tsa_suspended_until(t, "ip-1", "mx.yahoo.test", T0 + MIN) == T0 + 60 * MIN, "suspended until");
    /* a re-trigger 30 minutes later extends to its own expiry; an older one never shortens it */
    response(t, "421 4.7.0 [TS03] again", T0 + 30 * MIN, NULL, NULL);
    CHECK(c.until == T0 + 90 * MIN, "extended until %llu", (unsigned long long)(c.until - T0));
    response(t, "421 4.7.0 [TS04] late report", T0 + 5 * MIN, NULL, NULL);
    CHECK(sched_tsa_suspended_until(t, "ip-1", "mx.yahoo.test", T0 + 31 * MIN) == T0 + 90 * MIN, "shortened");

    struct proto_status_tsa doc;
    sched_tsa_status(t, T0 + 31 * MIN, 10, 10, &doc);
    CHECK(doc.n_active == 1 && doc.n_history == 3, "status %zu active, %zu history", doc.n_active, doc.n_history);
    CHECK(doc.responses == 4, "responses %llu", (unsigned long long)doc.responses);
    if (doc.n_active == 1) {
        CHECK(strcmp(doc.active[0].action, "Suspend") == 0 && doc.active[0].count == 3, "active entry");
        CHECK(doc.active[0].remaining_ms == (int64_t)(59 * MIN), "remaining %lld",
              (long long)doc.active[0].remaining_ms);
        CHECK(strstr(doc.active[0].response, "late report") != NULL, "trigger is the latest response");
    }
    if (doc.n_history == 3)
        CHECK(doc.history[0].start_ms == T0 + 5 * MIN && doc.history[2].start_ms == T0, "history newest first");
    free(doc.active);
    free(doc.history);

    sched_tsa_tick(t, T0 + 90 * MIN);
    CHECK(sched_tsa_suspended_until(t, "ip-1", "mx.yahoo.test", T0 + 90 * MIN) == 0, "not expired");
    sched_tsa_status(t, T0 + 90 * MIN, 10, 10, &doc);
    CHECK(doc.n_active == 0 && doc.n_history == 3, "after expiry: %zu active", doc.n_active);
    free(doc.active);
    free(doc.history);
    sched_tsa_free(t);
}

static void test_threshold(void)
{
    struct calls c = {0};
    struct shaping_action suspend = {SHAPING_ACTION_SUSPEND, NULL, NULL};
    struct shaping_rule r = rule(3, &suspend, 1, 3, 60 * MIN, 10 * MIN); /* {Threshold = "3/h"} */
    const struct shaping_rule *rules[] = {&r};
    c.rules = rules;
    c.n_rules = 1;
    struct sched_tsa *t = engine(&c);

    response(t, "421 4.7.0 [TS04] one", T0, NULL, NULL);
    response(t, "421 4.7.0 [TS04] two", T0 + MIN, NULL, NULL);
    CHECK(c.suspend == 0, "fired before the 3rd match");
    response(t, "421 4.7.0 [TS04] three", T0 + 2 * MIN, NULL, NULL);
    CHECK(c.suspend == 1 && c.until == T0 + 12 * MIN, "3rd match: %d firings, until +%llu", c.suspend,
          (unsigned long long)(c.until - T0));
    /* the window restarts after a firing: two more are not enough */
    response(t, "421 4.7.0 [TS04] four", T0 + 3 * MIN, NULL, NULL);
    response(t, "421 4.7.0 [TS04] five", T0 + 4 * MIN, NULL, NULL);
    CHECK(c.suspend == 1, "fired again before 3 more matches");
    /* a reload starts every window again: the two counted matches do not carry over */
    sched_tsa_rules_changed(t);
    response(t, "421 4.7.0 [TS04] six", T0 + 5 * MIN, NULL, NULL);
    CHECK(c.suspend == 1, "a match counted before the reload fired the rule after it");
    response(t, "421 4.7.0 [TS04] seven", T0 + 6 * MIN, NULL, NULL);
    response(t, "421 4.7.0 [TS04] eight", T0 + 7 * MIN, NULL, NULL);
    CHECK(c.suspend == 2, "3 matches after the reload did not fire");
    /* matches spread over more than the period never add up */
    struct calls c2 = {0};
    c2.rules = rules;
    c2.n_rules = 1;
    struct sched_tsa *t2 = engine(&c2);
    for (int i = 0; i < 6; i++) {
        response(t2, "421 4.7.0 [TS04] slow", T0 + (uint64_t)i * 40 * MIN, NULL, NULL);
        sched_tsa_tick(t2, T0 + (uint64_t)i * 40 * MIN);
    }
    CHECK(c2.suspend == 0, "matches 40 minutes apart reached a 3/h threshold");
    sched_tsa_free(t2);
    sched_tsa_free(t);
}

static void test_actions(void)
{
    struct calls c = {0};
    json_t *one = json_integer(1), *two = json_integer(2);
    struct shaping_action acts[] = {
        {SHAPING_ACTION_SET_CONFIG, "connection_limit", one},
        {SHAPING_ACTION_SET_DOMAIN_CONFIG, "max_message_rate", two},
        {SHAPING_ACTION_SUSPEND_TENANT, NULL, NULL},
        {SHAPING_ACTION_SUSPEND_CAMPAIGN, NULL, NULL},
    };
    struct shaping_rule r = rule(1, acts, 4, 0, 0, 30 * MIN);
    struct shaping_action bounce = {SHAPING_ACTION_BOUNCE_TENANT, NULL, NULL};
    struct shaping_rule rb = rule(2, &bounce, 1, 0, 0, 5 * MIN);
    rb.regex = (char *[]){"5.1.1"};
    rb.n_regex = 1;
    rb.match_internal = true;
    const struct shaping_rule *rules[] = {&r, &rb};
    c.rules = rules;
    c.n_rules = 2;
    struct sched_tsa *t = engine(&c);

    CHECK(sched_tsa_overrides_of(t, "ip-1", "mx.yahoo.test", "yahoo.com", T0) == NULL, "overrides before firing");
    response(t, "421 4.7.0 [TS04] deferred", T0, "acme", "spring");
    CHECK(c.fired == 4 && c.reconf == 2, "fired %d, reconfigured %d", c.fired, c.reconf);
    CHECK(c.queue == 2 && strcmp(c.domain, "yahoo.com") == 0 && strcmp(c.tenant, "acme") == 0 &&
              strcmp(c.campaign, "spring") == 0 && c.until == T0 + 30 * MIN,
          "SuspendCampaign: %s %s %s", c.domain, c.tenant, c.campaign);
    json_t *o = sched_tsa_overrides_of(t, "ip-2", "mx.yahoo.test", "yahoo.com", T0 + MIN);
    CHECK(o && json_integer_value(json_object_get(o, "connection_limit")) == 1 &&
              json_integer_value(json_object_get(o, "max_message_rate")) == 2,
          "merged overrides");
    json_decref(o);
    o = sched_tsa_overrides_of(t, "ip-1", "mx.other.test", "other.com", T0 + MIN);
    CHECK(o == NULL, "overrides leak to another site and domain");
    json_decref(o);

    /* a response with no reply code is internal: only match_internal rules see it */
    response(t, "connection refused 5.1.1", T0, "acme", NULL);
    CHECK(c.bounce == 1 && strcmp(c.tenant, "acme") == 0 && strcmp(c.campaign, "(null)") == 0,
          "BounceTenant: %d %s %s", c.bounce, c.tenant, c.campaign);
    int fired = c.fired;
    response(t, "connection refused [TS04]", T0, "acme", NULL);
    CHECK(c.fired == fired, "an internal response fired a rule without match_internal");
    /* while it lasts, mail of that tenant arriving is bounced on arrival (sched_tsa_bounces), not by
     * sweeps at each tick; other tenants, other domains and later mail are not */
    sched_tsa_tick(t, T0 + MIN);
    CHECK(c.bounce == 1, "a sweep at the tick (%d)", c.bounce);
    CHECK(sched_tsa_bounces(t, "YAHOO.com", "acme", "", T0 + MIN), "the tenant's new mail is not bounced");
    CHECK(sched_tsa_bounces(t, "yahoo.com", "acme", "autumn", T0 + MIN), "BounceTenant misses a campaign");
    CHECK(!sched_tsa_bounces(t, "yahoo.com", "other", "", T0 + MIN), "another tenant bounced");
    CHECK(!sched_tsa_bounces(t, "gmail.com", "acme", "", T0 + MIN), "another domain bounced");
    CHECK(!sched_tsa_bounces(t, "yahoo.com", "acme", "", T0 + 5 * MIN), "bounced at its expiry");
    int reconf = c.reconf;
    sched_tsa_tick(t, T0 + 10 * MIN);
    CHECK(c.bounce == 1, "swept after expiry");
    sched_tsa_tick(t, T0 + 30 * MIN);
    CHECK(c.reconf == reconf + 2, "overrides expired without reconfigure (%d)", c.reconf - reconf);
    CHECK(sched_tsa_overrides_of(t, "ip-1", "mx.yahoo.test", "yahoo.com", T0 + 30 * MIN) == NULL, "expired override");
    sched_tsa_free(t);
    json_decref(one);
    json_decref(two);
}

static void test_restore(void)
{
    struct calls c = {0};
    struct sched_tsa *t = engine(&c);
    struct proto_tsa_event live = {.hdr = {.start_ms = (int64_t)T0, .expiry_ms = (int64_t)(T0 + 60 * MIN), .line = 7,
                                           .count = 1, .action = SHAPING_ACTION_SUSPEND}};
    proto_tsa_event_set(&live, PROTO_TSA_E_SCOPE, "default");
    proto_tsa_event_set(&live, PROTO_TSA_E_SOURCE, "ip-1");
    proto_tsa_event_set(&live, PROTO_TSA_E_SITE, "mx.yahoo.test");
    struct proto_tsa_event old = live;
    old.hdr.start_ms = (int64_t)(T0 - 120 * MIN);
    old.hdr.expiry_ms = (int64_t)(T0 - 60 * MIN);

    CHECK(!sched_tsa_restore(t, &old, T0 + MIN), "an expired firing applied");
    CHECK(sched_tsa_restore(t, &live, T0 + MIN), "a live firing not applied");
    CHECK(c.suspend == 1 && c.until == T0 + 60 * MIN && c.fired == 0, "restore: %d suspends, %d fired", c.suspend,
          c.fired);
    CHECK(!sched_tsa_restore(t, &live, T0 + MIN), "the same firing applied twice");
    struct proto_status_tsa doc;
    sched_tsa_status(t, T0 + MIN, 10, 10, &doc);
    CHECK(doc.n_active == 1 && doc.n_history == 2, "restored: %zu active, %zu history", doc.n_active, doc.n_history);
    free(doc.active);
    free(doc.history);
    sched_tsa_free(t);
}

/* admin_event - an operator's effect (sched_tsa.h): scope admin, id = start */
static struct proto_tsa_event admin_event(unsigned action, uint64_t id, uint64_t expiry, const char *domain,
                                          const char *tenant, const char *regex)
{
    struct proto_tsa_event e = {.hdr = {.start_ms = (int64_t)id, .expiry_ms = (int64_t)expiry, .count = 1,
                                        .action = (uint16_t)action}};
    proto_tsa_event_set(&e, PROTO_TSA_E_SCOPE, SCHED_TSA_ADMIN_SCOPE);
    proto_tsa_event_set(&e, PROTO_TSA_E_FILE, "api@127.0.0.1");
    proto_tsa_event_set(&e, PROTO_TSA_E_REGEX, regex);
    proto_tsa_event_set(&e, PROTO_TSA_E_RESPONSE, "incident 42");
    if (action == SHAPING_ACTION_SUSPEND) {
        proto_tsa_event_set(&e, PROTO_TSA_E_SOURCE, "ip-1");
        proto_tsa_event_set(&e, PROTO_TSA_E_SITE, "mx.yahoo.test");
    } else {
        proto_tsa_event_set(&e, PROTO_TSA_E_DOMAIN, domain);
        proto_tsa_event_set(&e, PROTO_TSA_E_TENANT, tenant);
    }
    return e;
}

static void test_admin(void)
{
    struct calls c = {0};
    struct sched_tsa *t = engine(&c);
    struct shaping_action suspend = {SHAPING_ACTION_SUSPEND, NULL, NULL};
    struct shaping_rule r = rule(0, &suspend, 1, 0, 0, 10 * MIN);
    const struct shaping_rule *rules[] = {&r};
    c.rules = rules;
    c.n_rules = 1;

    /* a domain-wide suspension: every tenant (NULL to the core), stored (fired), its own effect */
    struct proto_tsa_event dom = admin_event(SHAPING_ACTION_SUSPEND_TENANT, T0, T0 + 60 * MIN, "yahoo.com", "", NULL);
    CHECK(sched_tsa_admin(t, &dom) == 0 && c.queue == 1 && strcmp(c.tenant, "(null)") == 0 &&
              c.until == T0 + 60 * MIN && c.fired == 1,
          "admin suspend: %d queue calls, tenant %s, %d fired", c.queue, c.tenant, c.fired);
    /* an automation Suspend and an operator's on one path: the longer holds; the automation's expires first */
    response(t, "421 [TS04]", T0, NULL, NULL);
    struct proto_tsa_event path = admin_event(SHAPING_ACTION_SUSPEND, T0 + 1, T0 + 120 * MIN, NULL, NULL, NULL);
    CHECK(sched_tsa_admin(t, &path) == 0 && c.until == T0 + 120 * MIN, "path: until %+lld", (long long)(c.until - T0));
    struct proto_status_tsa doc;
    sched_tsa_status(t, T0 + MIN, 10, 0, &doc);
    CHECK(doc.n_active == 3, "three effects in force (none merged): %zu", doc.n_active);
    free(doc.active);
    free(doc.history);
    /* cancel the operator's path suspension: the automation's (10 min) holds the path again */
    struct proto_tsa_event cancel = path;
    cancel.hdr.expiry_ms = (int64_t)(T0 + 2 * MIN);
    proto_tsa_event_set(&cancel, PROTO_TSA_E_REGEX, SCHED_TSA_ADMIN_CANCEL);
    int fired = c.fired;
    CHECK(sched_tsa_admin(t, &cancel) == 0 && c.until == T0 + 10 * MIN && c.fired == fired + 1,
          "cancel: until %+lld", (long long)(c.until - T0));
    CHECK(sched_tsa_admin(t, &cancel) == -ENOENT, "a second cancel");
    /* a bounce of every domain for one tenant: covers that tenant anywhere, and no one else */
    struct proto_tsa_event b = admin_event(SHAPING_ACTION_BOUNCE_TENANT, T0 + 2, T0 + 5 * MIN, "*", "acme", NULL);
    CHECK(sched_tsa_admin(t, &b) == 0 && c.bounce >= 1, "bounce applied");
    CHECK(sched_tsa_bounces(t, "any.test", "acme", NULL, T0 + MIN) && !sched_tsa_bounces(t, "any.test", "beta", NULL,
                                                                                         T0 + MIN),
          "bounce of tenant acme in every domain");
    /* the automation's events are refused here */
    struct proto_tsa_event not_admin = b;
    proto_tsa_event_set(&not_admin, PROTO_TSA_E_SCOPE, "default");
    CHECK(sched_tsa_admin(t, &not_admin) == -EINVAL, "an automation event through sched_tsa_admin");
    sched_tsa_free(t);

    /* a restart: the stored events replay in order; the cancel ends the suspension it names */
    struct calls c2 = {0};
    t = engine(&c2);
    CHECK(sched_tsa_restore(t, &dom, T0 + MIN) && c2.queue == 1, "suspension restored");
    struct proto_tsa_event dcancel = dom;
    dcancel.hdr.expiry_ms = (int64_t)(T0 + 2 * MIN);
    proto_tsa_event_set(&dcancel, PROTO_TSA_E_REGEX, SCHED_TSA_ADMIN_CANCEL);
    CHECK(!sched_tsa_restore(t, &dcancel, T0 + 3 * MIN) && c2.queue == 2 && c2.until == 0 && c2.fired == 0,
          "restored cancel: %d calls, until %llu", c2.queue, (unsigned long long)c2.until);
    sched_tsa_status(t, T0 + 3 * MIN, 10, 10, &doc);
    CHECK(doc.n_active == 0 && doc.n_history == 2, "after the cancel: %zu active", doc.n_active);
    free(doc.active);
    free(doc.history);
    sched_tsa_free(t);
}

int main(void)
{
    test_immediate_suspend();
    test_threshold();
    test_actions();
    test_restore();
    test_admin();
    CHECK_EXIT();
}
