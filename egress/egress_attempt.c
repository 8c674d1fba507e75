/*
 * egress_attempt - pure helpers of one delivery attempt (see egress_attempt.h)
 */
#include "egress/egress_attempt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "common/proto_msg.h"

int egress_msg_decode(const void *run, size_t len, struct egress_msg *out, const char **why)
{
    struct proto_msg_hdr h;
    const char *w = NULL;

    memset(out, 0, sizeof(*out));
    if (!run || len < sizeof(h)) {
        *why = "run shorter than its header";
        return -EBADMSG;
    }
    memcpy(&h, run, sizeof(h));
    if (h.magic != PROTO_MSG_MAGIC || h.version != PROTO_MSG_VERSION) {
        *why = "bad magic or version";
        return -EBADMSG;
    }
    /* compare without adding untrusted 64-bit lengths, which could wrap */
    size_t rest = len - sizeof(h);
    if (h.env_len > rest || h.msg_len != rest - h.env_len) {
        *why = "lengths do not add up to the run";
        return -EBADMSG;
    }
    const char *p = (const char *)run + sizeof(h);
    if (spool_rec_decode(p, h.env_len, &out->env, &w) < 0) {
        *why = w ? w : "envelope does not decode";
        return -EBADMSG;
    }
    if (out->env.rcpt_count == 0) {
        spool_rec_fini(&out->env);
        *why = "envelope without recipients";
        return -EBADMSG;
    }
    out->body = p + h.env_len;
    out->body_len = (size_t)h.msg_len;
    return 0;
}

void egress_msg_fini(struct egress_msg *m)
{
    spool_rec_fini(&m->env);
    memset(m, 0, sizeof(*m));
}

const char *egress_addr_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : "";
}

int egress_rcpt_select(const struct spool_rec *env, uint32_t rcpt_first, uint32_t **idx, char **domain)
{
    const char *rd = spool_rec_meta_get(env, SPOOL_META_ROUTING_DOMAIN);
    const char *dom;
    uint32_t n = 0;

    *idx = NULL;
    *domain = NULL;
    if (rcpt_first >= env->rcpt_count)
        return -EINVAL;
    dom = (rd && rd[0]) ? rd : egress_addr_domain(env->rcpts[rcpt_first].addr);
    *domain = xstrdup(dom);
    for (char *c = *domain; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    *idx = xcalloc(env->rcpt_count < EGRESS_RCPT_MAX ? env->rcpt_count : EGRESS_RCPT_MAX, sizeof(**idx));
    /* the whole envelope, not only from rcpt_first on: the scheduler's idea of the first queued one
     * may be older than the spool's (a recipient before it may be queued again) */
    for (uint32_t i = 0; i < env->rcpt_count && n < EGRESS_RCPT_MAX; i++) {
        const struct spool_rcpt *r = &env->rcpts[i];
        if (r->state != SPOOL_RCPT_QUEUED)
            continue;
        if (!(rd && rd[0]) && strcasecmp(egress_addr_domain(r->addr), dom) != 0)
            continue;
        (*idx)[n++] = i;
    }
    return (int)n;
}

void egress_rcpt_set(struct egress_rcpt_res *r, uint8_t outcome, uint8_t command, int code, const char *enhanced,
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

bool egress_enh_parse(const char *s, uint8_t *cls, uint16_t *subject, uint16_t *detail)
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

static size_t str_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > PROTO_DLV_STRING_MAX ? PROTO_DLV_STRING_MAX : n;
}

/* put_str - copy with CR, LF and NUL (none can be in a C string) replaced: the run's strings are single lines */
static char *put_str(char *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    return p + n;
}

size_t egress_attempt_size(const struct egress_attempt *a)
{
    size_t n = sizeof(struct proto_attempt_hdr) + a->n_rcpt * sizeof(struct proto_attempt_rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        n += str_len(a->str[i]);
    for (size_t i = 0; i < a->n_rcpt; i++)
        n += str_len(a->rcpt[i].text);
    return n;
}

int egress_attempt_encode(const struct egress_attempt *a, void *buf, size_t len)
{
    struct proto_attempt_hdr h = {
        .magic = PROTO_ATT_MAGIC,
        .version = PROTO_DLV_VERSION,
        .n_rcpt = (uint16_t)a->n_rcpt,
        .msg_id_hi = a->msg_id_hi,
        .msg_id_lo = a->msg_id_lo,
        .timestamp_ms = a->timestamp_ms,
        .rcpt_first = a->rcpt_first,
    };
    char *p = buf;

    if (a->n_rcpt == 0 || a->n_rcpt > EGRESS_RCPT_MAX || len != egress_attempt_size(a))
        return -EINVAL;
    for (size_t i = 0; i < a->n_rcpt; i++)
        if (a->rcpt[i].outcome < PROTO_OUT_DELIVERED || a->rcpt[i].outcome > PROTO_OUT_BOUNCE ||
            a->rcpt[i].command > PROTO_CMD_DATA)
            return -EINVAL;
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        h.len[i] = (uint16_t)str_len(a->str[i]);
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    for (size_t i = 0; i < a->n_rcpt; i++) {
        const struct egress_rcpt_res *r = &a->rcpt[i];
        struct proto_attempt_rcpt pr = {
            .index = r->index,
            .outcome = r->outcome,
            .code = r->code,
            .text_len = (uint16_t)str_len(r->text),
            .command = r->command,
        };
        egress_enh_parse(r->enhanced, &pr.enh_class, &pr.enh_subject, &pr.enh_detail);
        memcpy(p, &pr, sizeof(pr));
        p += sizeof(pr);
    }
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        p = put_str(p, a->str[i], h.len[i]);
    for (size_t i = 0; i < a->n_rcpt; i++)
        p = put_str(p, a->rcpt[i].text, str_len(a->rcpt[i].text));
    return 0;
}

static bool str_ok(const char *s, size_t n)
{
    if (n > PROTO_DLV_STRING_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return false;
    return true;
}

int egress_attempt_check(const void *buf, size_t len, const char **why)
{
    struct proto_attempt_hdr h;
    const char *p = buf;
    size_t need;

    if (!buf || len < sizeof(h)) {
        *why = "run shorter than its header";
        return -EBADMSG;
    }
    memcpy(&h, p, sizeof(h));
    if (h.magic != PROTO_ATT_MAGIC || h.version != PROTO_DLV_VERSION) {
        *why = "bad magic or version";
        return -EBADMSG;
    }
    if (h.n_rcpt == 0) {
        *why = "no recipients";
        return -EBADMSG;
    }
    need = sizeof(h) + (size_t)h.n_rcpt * sizeof(struct proto_attempt_rcpt);
    if (need > len) {
        *why = "recipient table past the run";
        return -EBADMSG;
    }
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        need += h.len[i];
    const char *rp = p + sizeof(h);
    for (unsigned i = 0; i < h.n_rcpt; i++) {
        struct proto_attempt_rcpt r;
        memcpy(&r, rp + (size_t)i * sizeof(r), sizeof(r));
        if (r.outcome < PROTO_OUT_DELIVERED || r.outcome > PROTO_OUT_BOUNCE || r.command > PROTO_CMD_DATA ||
            r.code > 999) {
            *why = "recipient outcome, command or code out of range";
            return -EBADMSG;
        }
        need += r.text_len;
    }
    if (need != len) {
        *why = "lengths do not add up to the run";
        return -EBADMSG;
    }
    const char *s = rp + (size_t)h.n_rcpt * sizeof(struct proto_attempt_rcpt);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++) {
        if (!str_ok(s, h.len[i])) {
            *why = "header string too long or holds NUL, CR or LF";
            return -EBADMSG;
        }
        s += h.len[i];
    }
    for (unsigned i = 0; i < h.n_rcpt; i++) {
        struct proto_attempt_rcpt r;
        memcpy(&r, rp + (size_t)i * sizeof(r), sizeof(r));
        if (!str_ok(s, r.text_len)) {
            *why = "response text too long or holds NUL, CR or LF";
            return -EBADMSG;
        }
        s += r.text_len;
    }
    return 0;
}
