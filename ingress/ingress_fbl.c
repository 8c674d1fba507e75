/*
 * ingress_fbl - feedback mail at the ingress: which recipients are feedback addresses, VERP tokens, the
 * report parsed at the end of DATA and handed to the spool as envelope metadata
 *
 * A transaction is a report transaction when its recipients are feedback addresses (the listener's
 * feedback = true, a [feedback] domain or address, or [dsn] verp_domain); ordinary and feedback
 * recipients in one transaction get 452 4.5.3 for the second kind, so the client sends them apart.
 * At the end of DATA the body must parse as an ARF or DSN report (ingress_report.c), else 550: the
 * sender learns at once that nothing was recorded. The parsed fields travel as fbl.* metadata of the
 * envelope through the normal durable store; the spool writes the Feedback or OOB record and keeps
 * nothing to deliver (spool/spool_fbl.c). The fbl.* keys are ours alone: policy metadata with that
 * prefix is dropped (ingress_xfer_meta), so no hook can turn ordinary mail into a report.
 * Matching the original: a VERP recipient whose HMAC matches names it exactly (fbl.match = verp); a
 * forged one is recorded as forged and names nothing; else the X-Ringmail-Id of the returned headers
 * (fbl.match = header); else none.
 */
#include "ingress/ingress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "cfg/cfg.h"
#include "common/verp.h"

static bool in_list(char *const *l, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(l[i], s) == 0)
            return true;
    return false;
}

bool ingress_fbl_rcpt_is(const struct ingress_session *s, const struct smtp_addr *a)
{
    const struct cfg *c = &s->ig->rt->cfg;
    if (s->feedback_listener)
        return true;
    if (a->domain[0] == '\0')
        return false;
    if (c->dsn_verp && c->dsn_verp_domain[0] && strcmp(a->domain, c->dsn_verp_domain) == 0)
        return true;
    return in_list(c->feedback_domains, c->n_feedback_domains, a->domain) ||
           in_list(c->feedback_addresses, c->n_feedback_addresses, a->mailbox);
}

void ingress_fbl_rcpt_add(struct ingress_session *s, const struct smtp_addr *a)
{
    const struct cfg *c = &s->ig->rt->cfg;
    s->fbl.mode = INGRESS_FBL_REPORT;
    if (s->fbl.verp != INGRESS_FBL_VERP_NONE || !c->dsn_verp || !c->dsn_verp_secret[0] ||
        strcmp(a->domain, c->dsn_verp_domain) != 0)
        return;
    struct msgid id;
    uint32_t idx;
    int rc = verp_decode(c->dsn_verp_secret, strlen(c->dsn_verp_secret), a->local, a->local_len, &id, &idx);
    if (rc == 0) {
        s->fbl.verp = INGRESS_FBL_VERP_OK;
        s->fbl.verp_id = id;
        s->fbl.verp_index = idx;
    } else if (rc == -EPERM) {
        s->fbl.verp = INGRESS_FBL_VERP_FORGED;
        log_info("feedback: VERP address <%s> from %s has a wrong HMAC: the report will not be matched", a->mailbox,
                 s->peer_ip);
    }
}

bool ingress_fbl_parse(struct ingress_session *s)
{
    const char *why = NULL;
    if (!s->fbl.report)
        s->fbl.report = xmalloc(sizeof(*s->fbl.report));
    if (ingress_report_parse(s->body, s->body_len, s->fbl.report, &why) < 0) {
        log_info("feedback: message from %s is not a report: %s", s->peer_ip, why);
        /* why is one of the parser's static texts: no byte of the peer's is echoed */
        ingress_session_reply(s, "550 5.6.0 Feedback address: %s; nothing was recorded", why);
        return false;
    }
    return true;
}

static void put(struct proto_env_meta *meta, uint32_t *n, uint32_t max, const char *key, const char *value)
{
    if (value && value[0] && *n < max)
        meta[(*n)++] = (struct proto_env_meta){key, value};
}

uint32_t ingress_fbl_meta(struct ingress_session *s, struct proto_env_meta *meta, uint32_t max)
{
    const struct ingress_report *r = s->fbl.report;
    uint32_t n = 0;
    const char *match = "none";
    bool header_ours = false;

    s->fbl.orig_id[0] = '\0';
    s->fbl.index_text[0] = '\0';
    if (s->fbl.verp == INGRESS_FBL_VERP_OK) {
        match = "verp";
        msgid_format(s->fbl.verp_id, s->fbl.orig_id);
        snprintf(s->fbl.index_text, sizeof(s->fbl.index_text), "%u", s->fbl.verp_index);
        header_ours = strcmp(r->ring_id, s->fbl.orig_id) == 0;
    } else if (s->fbl.verp == INGRESS_FBL_VERP_FORGED) {
        match = "forged";
    } else if (r->ring_id[0]) {
        match = "header";
        snprintf(s->fbl.orig_id, sizeof(s->fbl.orig_id), "%s", r->ring_id);
        header_ours = true;
    }
    put(meta, &n, max, "fbl.kind", ingress_report_kind_name(r->kind));
    put(meta, &n, max, "fbl.match", match);
    put(meta, &n, max, "fbl.orig_id", s->fbl.orig_id);
    put(meta, &n, max, "fbl.orig_rcpt_index", s->fbl.index_text);
    put(meta, &n, max, "fbl.orig_rcpt", r->orig_rcpt);
    put(meta, &n, max, "fbl.orig_rcpt_reported", r->dsn_orig_rcpt);
    put(meta, &n, max, "fbl.orig_sender", r->orig_sender);
    put(meta, &n, max, "fbl.orig_message_id", r->message_id);
    put(meta, &n, max, "fbl.reporting_mta", r->reporting_mta);
    put(meta, &n, max, "fbl.arrival_date", r->arrival_date);
    put(meta, &n, max, "fbl.feedback_type", r->feedback_type);
    put(meta, &n, max, "fbl.user_agent", r->user_agent);
    put(meta, &n, max, "fbl.source_ip", r->source_ip);
    put(meta, &n, max, "fbl.action", r->action);
    put(meta, &n, max, "fbl.status", r->status);
    put(meta, &n, max, "fbl.diagnostic", r->diagnostic);
    put(meta, &n, max, "fbl.remote_mta", r->remote_mta);
    if (header_ours) {
        put(meta, &n, max, "fbl.tenant", r->tenant);
        put(meta, &n, max, "fbl.campaign", r->campaign);
    }
    return n;
}

/* id_value_ok - a tenant or campaign name that can stand in the header unquoted: [A-Za-z0-9._@+-]{1,64} */
static bool id_value_ok(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        char c = v[n];
        if (n >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '_' || c == '@' || c == '+' || c == '-'))
            return false;
    }
    return n > 0;
}

static const char *meta_find(const struct policy_lua_meta *m, const char *key)
{
    for (unsigned i = 0; m && i < m->count && i < POLICY_LUA_META_MAX; i++)
        if (strcasecmp(m->items[i].key, key) == 0)
            return m->items[i].value;
    return NULL;
}

size_t ingress_fbl_id_header(const struct ingress *ig, const char *idtext, const struct policy_lua_meta *m, char *buf,
                             size_t n)
{
    if (!cfg_feedback_on(&ig->rt->cfg))
        return 0;
    const char *tenant = meta_find(m, "tenant"), *campaign = meta_find(m, "campaign");
    int w = snprintf(buf, n, "X-Ringmail-Id: %s%s%s%s%s\r\n", idtext, tenant && id_value_ok(tenant) ? "; tenant=" : "",
                     tenant && id_value_ok(tenant) ? tenant : "", campaign && id_value_ok(campaign) ? "; campaign=" : "",
                     campaign && id_value_ok(campaign) ? campaign : "");
    return w < 0 || (size_t)w >= n ? 0 : (size_t)w;
}

void ingress_fbl_reset(struct ingress_session *s)
{
    free(s->fbl.report);
    memset(&s->fbl, 0, sizeof(s->fbl));
}
