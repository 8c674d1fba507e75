/*
 * spool_fbl - reports received at a feedback address: the Feedback (ARF) and OOB (DSN) log records
 *
 * The ingress parsed the report and put its fields into the envelope as fbl.* metadata (ingress_fbl.c).
 * Such a message is not stored for delivery: its Reception record and its Feedback or OOB record go into
 * the same write batch, and the 250 follows that batch's fsync as for any message, so the report is
 * final (accounted for) the moment it is acknowledged. Everything in the metadata came from an ingress
 * (which faces the peer) and is checked again here: the kind must be arf or dsn, the original id must be
 * a message id, the recipient index a small number; strings are logged with jansson (UTF-8 repaired).
 * An OOB's classification is the node's bounce classifier on its Diagnostic-Code and Status; a hard one
 * (permanent status, and a recipient or domain that does not exist) and every matched complaint but
 * not-spam and auth-failure add the recipient to the suppression list (spool_feedback_suppress,
 * spool/spool_supp.c) unless [suppression] enabled = false.
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "spool/spool_dlv.h"
#include "spool/spool_supp.h"

static const char *meta(const struct proto_env *rec, const char *key)
{
    return proto_env_meta_get(rec, key);
}

bool spool_fbl_is_report(const struct proto_env *rec)
{
    const char *k = meta(rec, "fbl.kind");
    return k && (strcmp(k, "arf") == 0 || strcmp(k, "dsn") == 0);
}

void spool_feedback_suppress(struct spool *sp, const char *tenant, const char *addr, enum spool_fbl_reason reason,
                             const char *source_id)
{
    /* into the batch the report's own records are in: durable with them at the same commit */
    int rc = spool_supp_add(sp, tenant ? tenant : "", addr,
                            reason == SPOOL_FBL_COMPLAINT ? SPOOL_SUPP_COMPLAINT : SPOOL_SUPP_OOB, source_id, 0);
    if (rc < 0 && rc != -ENOTSUP)
        log_warn("%s from record %s not added to the suppression list: %s", addr,
                 source_id ? source_id : "-", strerror(-rc));
}

/* enhanced_ok - "D.D+.D+" with the class 2, 4 or 5 (RFC 3463) */
static bool enhanced_ok(const char *s)
{
    unsigned a, b, c;
    int used = 0;
    return s && sscanf(s, "%1u.%3u.%3u%n", &a, &b, &c, &used) == 3 && s[used] == '\0' && (a == 2 || a == 4 || a == 5);
}

/* diag_code - the reply code at the start of a Diagnostic-Code ("550 5.1.1 ..."), 0 when none */
static int diag_code(const char *d)
{
    if (!d || !(d[0] >= '2' && d[0] <= '5') || !(d[1] >= '0' && d[1] <= '9') || !(d[2] >= '0' && d[2] <= '9'))
        return 0;
    if (d[3] != '\0' && d[3] != ' ' && d[3] != '-')
        return 0;
    return (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
}

static bool hard_class(const char *cls)
{
    return strcmp(cls, "InvalidRecipient") == 0 || strcmp(cls, "BadDomain") == 0 ||
           strcmp(cls, "InactiveMailbox") == 0;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v && v[0]) {
        json_t *s = json_string(v);
        if (!s) {
            /* not UTF-8: the peer's bytes are logged repaired by the writer's rules */
            struct spool_log_event ev = {.recipient = v};
            json_t *tmp = NULL;
            if (spool_log_build(NULL, SPOOL_LOG_REJECTION, &ev, &tmp) == 0) {
                s = json_incref(json_object_get(tmp, "recipient"));
                json_decref(tmp);
            }
        }
        json_object_set_new(o, key, s ? s : json_null());
    } else {
        json_object_set_new(o, key, json_null());
    }
}

int spool_fbl_build(const struct spool_log *lg, const struct bounce_class *bc, struct msgid id,
                    const struct proto_env *rec, json_t **out, bool *suppress_out)
{
    char idtext[MSGID_TEXT_SIZE];
    *out = NULL;
    *suppress_out = false;
    if (!spool_fbl_is_report(rec))
        return -EINVAL;
    bool dsn = strcmp(meta(rec, "fbl.kind"), "dsn") == 0;
    const char *match = meta(rec, "fbl.match");
    const char *orig = meta(rec, "fbl.orig_id");
    const char *index = meta(rec, "fbl.orig_rcpt_index");
    const char *rcpt = meta(rec, "fbl.orig_rcpt");
    const char *tenant = meta(rec, "fbl.tenant");
    struct msgid oid;

    /* the ingress's word, bounded: an id that is not one, or a match we do not know, matches nothing */
    if (!orig || msgid_parse(orig, strlen(orig), &oid) < 0)
        orig = NULL;
    if (!match || (strcmp(match, "verp") != 0 && strcmp(match, "header") != 0 && strcmp(match, "forged") != 0))
        match = "none";
    if (strcmp(match, "verp") != 0 && strcmp(match, "header") != 0)
        orig = NULL;
    if (index && (strlen(index) > 6 || strspn(index, "0123456789") != strlen(index) || !index[0] || !orig))
        index = NULL;
    bool matched = orig != NULL;

    msgid_format(id, idtext);
    struct spool_log_event ev = {0};
    ev.id = idtext;
    ev.sender = rec->sender;
    ev.recipient = rec->rcpts[0].addr;
    ev.size = rec->body_size;
    ev.created = (int64_t)(rec->created_ms / 1000u);
    json_t *j = NULL;
    int rc = spool_log_build(lg, SPOOL_LOG_RECEPTION, &ev, &j);
    if (rc < 0)
        return rc;
    json_object_set_new(j, "type", json_string(dsn ? "OOB" : "Feedback"));
    json_object_del(j, "meta");
    json_object_del(j, "headers");
    set_str(j, "match", match);
    set_str(j, "original_id", orig);
    set_str(j, "original_recipient", rcpt);
    json_int_t ix = 0;
    for (const char *d = index; d && *d; d++)
        ix = ix * 10 + (*d - '0');
    json_object_set_new(j, "original_recipient_index", index ? json_integer(ix) : json_null());
    set_str(j, "original_sender", meta(rec, "fbl.orig_sender"));
    set_str(j, "original_message_id", meta(rec, "fbl.orig_message_id"));
    set_str(j, "reporting_mta", meta(rec, "fbl.reporting_mta"));
    set_str(j, "arrival_date", meta(rec, "fbl.arrival_date"));
    set_str(j, "tenant", matched ? tenant : NULL);
    set_str(j, "campaign", matched ? meta(rec, "fbl.campaign") : NULL);

    bool suppress = false;
    if (dsn) {
        const char *status = meta(rec, "fbl.status");
        const char *diag = meta(rec, "fbl.diagnostic");
        if (!enhanced_ok(status))
            status = NULL;
        int code = diag_code(diag);
        const char *text = diag ? diag : "";
        if (code)
            text += 3;
        while (*text == ' ' || *text == '-')
            text++;
        const char *after = text;
        if (status && strncmp(after, status, strlen(status)) == 0)
            after += strlen(status); /* the status again in the text: classified once */
        while (*after == ' ')
            after++;
        const char *cls = bc ? bounce_class_classify(bc, code, status, after) : BOUNCE_CLASS_UNCATEGORIZED;
        bool hard = status && status[0] == '5' && hard_class(cls);
        set_str(j, "bounce_classification", cls);
        json_object_set_new(j, "hard", json_boolean(hard));
        set_str(j, "action", meta(rec, "fbl.action"));
        set_str(j, "status", status);
        set_str(j, "diagnostic_code", diag);
        set_str(j, "remote_mta", meta(rec, "fbl.remote_mta"));
        suppress = hard && matched && rcpt;
    } else {
        const char *type = meta(rec, "fbl.feedback_type");
        set_str(j, "feedback_type", type);
        set_str(j, "user_agent", meta(rec, "fbl.user_agent"));
        set_str(j, "source_ip", meta(rec, "fbl.source_ip"));
        suppress = matched && rcpt && type && strcmp(type, "not-spam") != 0 && strcmp(type, "auth-failure") != 0;
    }
    json_object_set_new(j, "suppress", json_boolean(suppress));
    *out = j;
    *suppress_out = suppress;
    return 0;
}

void spool_fbl_record(struct spool *sp, struct msgid id, const struct proto_env *rec)
{
    json_t *j = NULL;
    bool suppress = false;
    if (spool_fbl_build(sp->log, sp->bc, id, rec, &j, &suppress) < 0) {
        proto_node_counter_add(sp->rt->self, PROTO_NODE_CTR_LOG_DROPPED, 1);
        return;
    }
    json_t *tenant = json_object_get(j, "tenant"), *rcpt = json_object_get(j, "original_recipient");
    if (suppress)
        spool_feedback_suppress(sp, json_string_value(tenant), json_string_value(rcpt),
                                strcmp(json_string_value(json_object_get(j, "type")), "OOB") == 0 ? SPOOL_FBL_OOB
                                                                                                  : SPOOL_FBL_COMPLAINT,
                                json_string_value(json_object_get(j, "id")));
    spool_wal_add(sp, j); /* takes the reference */
}
