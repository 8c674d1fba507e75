/*
 * egress_attempt - pure helpers of one delivery attempt (see egress_attempt.h)
 */
#include "egress/egress_attempt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "common/proto_msg.h"

int egress_attempt_msg_decode(const void *run, size_t len, struct egress_msg *out, const char **why)
{
    struct proto_msg_run m;

    memset(out, 0, sizeof(*out));
    int rc = proto_msg_decode(run, len, &m, why);
    if (rc < 0)
        return rc;
    out->env = m.env; /* moves: m is not finished */
    out->body = m.body;
    out->body_len = (size_t)m.body_len;
    return 0;
}

void egress_attempt_msg_fini(struct egress_msg *m)
{
    proto_env_fini(&m->env);
    memset(m, 0, sizeof(*m));
}

const char *egress_attempt_addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : "";
}

int egress_attempt_rcpt_select(const struct proto_env *env, uint32_t rcpt_first, uint32_t **idx, char **domain)
{
    const char *rd = proto_env_meta_get(env, PROTO_ENV_META_ROUTING_DOMAIN);
    const char *dom;
    uint32_t n = 0;

    *idx = NULL;
    *domain = NULL;
    if (rcpt_first >= env->rcpt_count)
        return -EINVAL;
    dom = (rd && rd[0]) ? rd : egress_attempt_addr_domain(env->rcpts[rcpt_first].addr);
    *domain = xstrdup(dom);
    for (char *c = *domain; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    *idx = xcalloc(env->rcpt_count < EGRESS_RCPT_MAX ? env->rcpt_count : EGRESS_RCPT_MAX, sizeof(**idx));
    /* the whole envelope, not only from rcpt_first on: the scheduler's idea of the first queued one
     * may be older than the spool's (a recipient before it may be queued again) */
    for (uint32_t i = 0; i < env->rcpt_count && n < EGRESS_RCPT_MAX; i++) {
        const struct proto_env_rcpt *r = &env->rcpts[i];
        if (r->state != PROTO_RCPT_QUEUED)
            continue;
        if (!(rd && rd[0]) && strcasecmp(egress_attempt_addr_domain(r->addr), dom) != 0)
            continue;
        (*idx)[n++] = i;
    }
    return (int)n;
}

void egress_attempt_rcpt_set(struct egress_rcpt_res *r, uint8_t outcome, uint8_t command, int code, const char *enhanced,
                     const char *text)
{
    r->outcome = outcome;
    r->command = command;
    r->code = (uint16_t)(code >= 0 && code <= 999 ? code : 0);
    snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced ? enhanced : "");
    snprintf(r->text, sizeof(r->text), "%s", text ? text : "");
}

static bool parse_num(const char **s, unsigned max, unsigned *out)
{
    unsigned v = 0, digits = 0;
    while (**s >= '0' && **s <= '9') {
        v = v * 10 + (unsigned)(**s - '0');
        (*s)++;
        if (++digits > 3 || v > max)
            return false;
    }
    *out = v;
    return digits > 0;
}

bool egress_attempt_enh_parse(const char *s, uint8_t *cls, uint16_t *subject, uint16_t *detail)
{
    unsigned c, sub, det;

    *cls = 0;
    *subject = *detail = 0;
    if (!s || !parse_num(&s, 9, &c) || (c != 2 && c != 4 && c != 5) || *s++ != '.' || !parse_num(&s, 999, &sub) ||
        *s++ != '.' || !parse_num(&s, 999, &det) || *s)
        return false;
    *cls = (uint8_t)c;
    *subject = (uint16_t)sub;
    *detail = (uint16_t)det;
    return true;
}

static uint16_t str_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return (uint16_t)(n > PROTO_DLV_STRING_MAX ? PROTO_DLV_STRING_MAX : n);
}

/* to_proto - the contract's form of a; *rcpt and *text are heap arrays of n_rcpt (free them) */
static void to_proto(const struct egress_attempt *a, struct proto_attempt *p)
{
    *p = (struct proto_attempt){.hdr = {.n_rcpt = (uint16_t)a->n_rcpt, .msg_id_hi = a->msg_id_hi,
                                        .msg_id_lo = a->msg_id_lo, .timestamp_ms = a->timestamp_ms,
                                        .rcpt_first = a->rcpt_first}};
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        p->str[i] = a->str[i] ? a->str[i] : "";
        p->hdr.len[i] = str_len(a->str[i]);
    }
    p->rcpt = xcalloc(a->n_rcpt ? a->n_rcpt : 1, sizeof(*p->rcpt));
    p->text = xcalloc(a->n_rcpt ? a->n_rcpt : 1, sizeof(*p->text));
    for (size_t i = 0; i < a->n_rcpt; i++) {
        const struct egress_rcpt_res *r = &a->rcpt[i];
        p->rcpt[i] = (struct proto_attempt_rcpt){.index = r->index, .outcome = r->outcome, .code = r->code,
                                                 .text_len = str_len(r->text), .command = r->command};
        egress_attempt_enh_parse(r->enhanced, &p->rcpt[i].enh_class, &p->rcpt[i].enh_subject, &p->rcpt[i].enh_detail);
        p->text[i] = r->text;
    }
}

static void proto_free(struct proto_attempt *p)
{
    free(p->rcpt);
    free(p->text);
}

size_t egress_attempt_size(const struct egress_attempt *a)
{
    struct proto_attempt p;

    if (a->n_rcpt > EGRESS_RCPT_MAX)
        return 0;
    to_proto(a, &p);
    size_t n = proto_dlv_attempt_size(&p);
    proto_free(&p);
    return n;
}

int egress_attempt_encode(const struct egress_attempt *a, void *buf, size_t len)
{
    struct proto_attempt p;

    if (a->n_rcpt == 0 || a->n_rcpt > EGRESS_RCPT_MAX)
        return -EINVAL;
    to_proto(a, &p);
    int rc = proto_dlv_attempt_encode(&p, buf, len);
    proto_free(&p);
    return rc;
}
