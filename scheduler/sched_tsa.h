/*
 * sched_tsa - traffic shaping automation: responses matched against the shaping rules, effects with
 * expiry, recent firings; no I/O (the node's side is sched_tsa_node.c)
 *
 * sched_tsa_response(): the rules in scope for the response's (domain, source, site) (ops.rules:
 * shaping_rules() in the node), lowest precedence first; for each rule whose regex matches (ops.match:
 * shaping_rule_match()), an Immediate rule fires at once, a Threshold {limit/period} rule counts the
 * match in its counter for (rule, domain, source, site) and fires on the limit-th match within one
 * period (the window starts at the first match; it restarts after a firing or when the period is over).
 * A firing applies each of the rule's actions until response time + duration:
 *   Suspend                     ops.suspend_path(source, site, until)
 *   SetConfig                   an override option=value on the site's paths (every source)
 *   SetDomainConfig             an override on the domain's paths
 *   SuspendTenant / Campaign    ops.suspend_queue(domain, tenant[, campaign], until)
 *   Bounce / Tenant / Campaign  ops.bounce(domain[, tenant[, campaign]]) now (the queued mail); mail
 *                               arriving while the effect lasts asks sched_tsa_bounces() when it is
 *                               queued, so no walk over every message is repeated
 * Effects are keyed by (action, key, option): a firing of an effect already in force extends its
 * expiry (never shortens it) and counts. Overrides appear and expire through ops.reconfigure(NULL, site)
 * (source NULL: every source of the site), called after the override set of that site changed.
 * Every firing of an action is handed to ops.fired (to be stored by the spool) and kept in the
 * history (the newest SCHED_TSA_HISTORY). sched_tsa_restore() takes a stored firing back (scheduler
 * start): history always, and its effect re-applied when it has not expired, without ops.fired.
 * Match internal: responses the node made up (no reply code) count only for rules with match_internal.
 * Times are unix ms given by the caller (tests use a simulated clock). Not thread-safe.
 */
#ifndef RINGMAIL_SCHED_TSA_H
#define RINGMAIL_SCHED_TSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/proto_status.h"
#include "common/proto_tsa.h"
#include "policy/shaping.h"

#define SCHED_TSA_HISTORY 1000

struct sched_tsa_ops {
    void *arg;
    size_t (*rules)(void *arg, const char *domain, const char *source, const char *site,
                    const struct shaping_rule ***out);
    int (*match)(const struct shaping_rule *r, const char *text, size_t len);
    void (*suspend_path)(void *arg, const char *source, const char *site, uint64_t until_ms);
    void (*suspend_queue)(void *arg, const char *domain, const char *tenant, const char *campaign,
                          uint64_t until_ms);
    void (*bounce)(void *arg, const char *domain, const char *tenant, const char *campaign);
    void (*reconfigure)(void *arg, const char *source, const char *site);
    void (*fired)(void *arg, const struct proto_tsa_event *ev);
};

struct sched_tsa;

struct sched_tsa *sched_tsa_new(const struct sched_tsa_ops *ops);
void sched_tsa_free(struct sched_tsa *t);
/* sched_tsa_response - one TransientFailure / Bounce response; returns the actions fired */
size_t sched_tsa_response(struct sched_tsa *t, const struct proto_tsa_resp *r, uint64_t now_ms);
/*
 * Operator-made effects (ringctl suspend / suspend-ready-q / bounce, scheduler/sched_admin.c) are events of
 * scope SCHED_TSA_ADMIN_SCOPE: file says who, response the reason, and start_ms is the effect's id (unique:
 * the caller makes it so). They never merge with the automation's effects or each other. An empty tenant in
 * one holds every tenant, and a Bounce* domain "*" every domain. A cancel is an event of the same scope,
 * action and key with regex SCHED_TSA_ADMIN_CANCEL, start_ms the id it cancels and expiry the moment it was
 * cancelled: stored like any firing, so a restart replays it after what it cancels.
 * sched_tsa_admin() applies one (or cancels), keeps it in the history and hands it to ops.fired;
 * -ENOENT for a cancel of an id not in force, -EINVAL for an event of another scope.
 */
#define SCHED_TSA_ADMIN_SCOPE "admin"
#define SCHED_TSA_ADMIN_CANCEL "cancel"
int sched_tsa_admin(struct sched_tsa *t, const struct proto_tsa_event *ev);
bool sched_tsa_event_admin(const struct proto_tsa_event *ev);
/* sched_tsa_restore - a stored firing; true when its effect was re-applied (not expired) */
bool sched_tsa_restore(struct sched_tsa *t, const struct proto_tsa_event *ev, uint64_t now_ms);
/* sched_tsa_rules_changed - the shaping was reloaded: rule ids name other rules now, so every Threshold
 * window starts again (effects in force are kept: they are keyed by what they hold, not by rule) */
void sched_tsa_rules_changed(struct sched_tsa *t);
/* sched_tsa_bounces - a Bounce / BounceTenant / BounceCampaign effect in force covers mail of this domain,
 * tenant and campaign (NULL or "" for a part the queue name does not have) */
bool sched_tsa_bounces(const struct sched_tsa *t, const char *domain, const char *tenant, const char *campaign,
                       uint64_t now_ms);
/* sched_tsa_bounces_admin - the same, by an operator's effect (its AdminBounce says so) */
bool sched_tsa_bounces_admin(const struct sched_tsa *t, const char *domain, const char *tenant, const char *campaign,
                             uint64_t now_ms);
/* sched_tsa_tick - expire effects (reconfigure for overrides), bounce again while Bounce effects last */
void sched_tsa_tick(struct sched_tsa *t, uint64_t now_ms);
/* sched_tsa_overrides_of - the active overrides of a path, merged: SetConfig of the site, then
 * SetDomainConfig of the domain on top; NULL when none. Caller decrefs. */
json_t *sched_tsa_overrides_of(const struct sched_tsa *t, const char *source, const char *site, const char *domain,
                               uint64_t now_ms);
/* sched_tsa_suspended_until - the latest expiry of an active Suspend of (source, site); 0 when none */
uint64_t sched_tsa_suspended_until(const struct sched_tsa *t, const char *source, const char *site, uint64_t now_ms);
/* sched_tsa_status - the tsa document (borrowing from t until its next call); free doc->active/history */
void sched_tsa_status(const struct sched_tsa *t, uint64_t now_ms, size_t max_active, size_t max_history,
                      struct proto_status_tsa *doc);
/* sched_tsa_action_name - "Suspend", "SetConfig", ... for enum shaping_action_kind */
const char *sched_tsa_action_name(unsigned kind);

#endif
