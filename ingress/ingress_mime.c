/*
 * ingress_mime - the HTTP injection request decoded and its messages built (see ingress_mime.h)
 *
 * Templates: "{{ name }}" (spaces optional) is replaced by the recipient's substitution `name`, else
 * the request's; strings go in as they are, numbers in their JSON form, true/false, null as "".
 * An unknown name, an object or array value, or any other "{{ ... }}" (filters, expressions) is an
 * error of that message's recipients. Templates are expanded only when the request or the recipient
 * has substitutions, so a message without them may hold "{{" freely. The pattern is PCRE2's.
 */
#include "ingress/ingress_mime.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "ingress/ingress_mime_int.h"
#include "smtp/smtp_addr.h"

#define ATTACH_MAX 100

static pcre2_code *tpl_re;
static pthread_once_t tpl_once = PTHREAD_ONCE_INIT;

static void tpl_compile(void)
{
    int ec;
    PCRE2_SIZE eo;
    tpl_re = pcre2_compile((PCRE2_SPTR) "\\{\\{(.*?)\\}\\}", PCRE2_ZERO_TERMINATED, PCRE2_DOTALL, &ec, &eo, NULL);
    if (!tpl_re)
        panic("template pattern does not compile (%d)", ec);
}

/* lookup - the value of `name` (n octets): the recipient's, else the request's; NULL when unknown */
static const json_t *lookup(const json_t *rs, const json_t *gs, const char *name, size_t n)
{
    const json_t *v = rs ? json_object_getn(rs, name, n) : NULL;
    if (!v && gs)
        v = json_object_getn(gs, name, n);
    return v;
}

static bool ident(const char *s, size_t n)
{
    if (n == 0 || n > 128 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* render - tpl[0..n) with the substitutions into out; false with *why */
static bool render(const char *tpl, size_t n, const json_t *rs, const json_t *gs, struct buf *out, char *why,
                   size_t why_len)
{
    if (!rs && !gs) {
        buf_append(out, tpl, n);
        return true;
    }
    pthread_once(&tpl_once, tpl_compile);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(tpl_re, NULL);
    size_t at = 0;
    bool ok = true;
    while (at <= n) {
        int rc = pcre2_match(tpl_re, (PCRE2_SPTR)tpl, n, at, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        buf_append(out, tpl + at, ov[0] - at);
        const char *e = tpl + ov[2];
        size_t el = ov[3] - ov[2];
        while (el && (*e == ' ' || *e == '\t')) {
            e++;
            el--;
        }
        while (el && (e[el - 1] == ' ' || e[el - 1] == '\t'))
            el--;
        if (!ident(e, el)) {
            snprintf(why, why_len, "unsupported template expression {{%.*s}} (only {{ name }})",
                     (int)(el > 60 ? 60 : el), e);
            ok = false;
            break;
        }
        const json_t *v = lookup(rs, gs, e, el);
        if (!v) {
            snprintf(why, why_len, "unknown template variable %.*s", (int)el, e);
            ok = false;
            break;
        }
        if (json_is_string(v))
            buf_append(out, json_string_value(v), json_string_length(v));
        else if (json_is_integer(v))
            buf_printf(out, "%lld", (long long)json_integer_value(v));
        else if (json_is_real(v))
            buf_printf(out, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
            buf_puts(out, json_is_true(v) ? "true" : "false");
        else if (!json_is_null(v)) {
            snprintf(why, why_len, "template variable %.*s is not a string, number, boolean or null", (int)el, e);
            ok = false;
            break;
        }
        at = ov[1];
    }
    if (ok && at < n)
        buf_append(out, tpl + at, n - at);
    pcre2_match_data_free(md);
    return ok;
}

/* check_addr - an address as RCPT TO / MAIL FROM takes it; false with why */
static bool check_addr(const char *a, size_t n, bool null_ok, bool *utf8, char *why, size_t why_len)
{
    struct smtp_addr sa;
    enum smtp_addr_err e;
    size_t used = 0;
    char path[SMTP_ADDR_PATH_MAX + 3];

    if (n > INGRESS_MIME_ADDR_MAX || !mime_text_ok(a, n)) {
        snprintf(why, why_len, "invalid address (too long or control characters)");
        return false;
    }
    int l = snprintf(path, sizeof(path), "<%.*s>", (int)n, a);
    unsigned flags = SMTP_ADDR_PARSE_UTF8 | (null_ok ? SMTP_ADDR_PARSE_NULL_OK : 0);
    if (smtp_addr_parse_path(path, (size_t)l, flags, &sa, &used, &e) < 0 || used != (size_t)l ||
        (!null_ok && (sa.flags & SMTP_ADDR_NULL)) || (sa.flags & SMTP_ADDR_POSTMASTER) || (sa.flags & SMTP_ADDR_ROUTE)) {
        snprintf(why, why_len, "invalid address");
        return false;
    }
    *utf8 = (sa.flags & SMTP_ADDR_UTF8) != 0;
    return true;
}

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct buf b = {0};
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    *err = buf_take(&b);
    return -EINVAL;
}

static const json_t *subst_of(const json_t *o, const char *where, char **err, int *rc)
{
    const json_t *s = json_object_get(o, "substitutions");
    if (!s || json_is_null(s))
        return NULL;
    if (!json_is_object(s)) {
        *rc = fail(err, "%s substitutions: expected an object", where);
        return NULL;
    }
    return json_object_size(s) ? s : NULL;
}

int ingress_mime_decode(const char *body, size_t len, uint32_t max_rcpts, struct ingress_mime_req *req, char **err)
{
    json_error_t je;
    int rc = 0;

    memset(req, 0, sizeof(*req));
    *err = NULL;
    req->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!req->root)
        return fail(err, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    if (!json_is_object(req->root))
        return fail(err, "the request must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(req->root, k, v) {
        if (strcmp(k, "envelope_sender") && strcmp(k, "recipients") && strcmp(k, "content") &&
            strcmp(k, "substitutions"))
            return fail(err, "unknown field \"%.64s\"", k);
    }
    const json_t *s = json_object_get(req->root, "envelope_sender");
    if (!json_is_string(s))
        return fail(err, "envelope_sender: expected a string (\"\" for the null sender)");
    char why[INGRESS_MIME_ERR_MAX];
    if (json_string_length(s) &&
        !check_addr(json_string_value(s), json_string_length(s), false, &req->sender_utf8, why, sizeof(why)))
        return fail(err, "envelope_sender: %s", why);
    req->sender = json_string_value(s);
    req->subst = subst_of(req->root, "top-level", err, &rc);
    if (rc < 0)
        return rc;
    req->content = json_object_get(req->root, "content");
    if (!json_is_string(req->content) && !json_is_object(req->content))
        return fail(err, "content: expected a string (a whole message) or an object (the builder)");
    const json_t *rs = json_object_get(req->root, "recipients");
    if (!json_is_array(rs) || json_array_size(rs) == 0)
        return fail(err, "recipients: expected a non-empty array");
    if (json_array_size(rs) > max_rcpts)
        return fail(err, "recipients: %zu recipients, at most %u per request", json_array_size(rs), max_rcpts);
    req->n_rcpts = json_array_size(rs);
    req->rcpts = xcalloc(req->n_rcpts, sizeof(*req->rcpts));
    for (size_t i = 0; i < req->n_rcpts; i++) {
        struct ingress_mime_rcpt *r = &req->rcpts[i];
        const json_t *o = json_array_get(rs, i);
        char where[48];
        snprintf(where, sizeof(where), "recipients[%zu]", i);
        if (!json_is_object(o))
            return fail(err, "%s: expected an object with \"email\"", where);
        json_object_foreach((json_t *)o, k, v) {
            if (strcmp(k, "email") && strcmp(k, "name") && strcmp(k, "substitutions"))
                return fail(err, "%s: unknown field \"%.64s\"", where, k);
        }
        const json_t *e = json_object_get(o, "email"), *n = json_object_get(o, "name");
        if (!json_is_string(e))
            return fail(err, "%s.email: expected a string", where);
        if (n && !json_is_null(n) && !json_is_string(n))
            return fail(err, "%s.name: expected a string", where);
        r->email = json_string_value(e);
        r->name = json_is_string(n) ? json_string_value(n) : NULL;
        r->subst = subst_of(o, where, err, &rc);
        if (rc < 0)
            return rc;
        r->ok = check_addr(r->email, json_string_length(e), false, &r->utf8, r->error, sizeof(r->error));
        if (r->ok && r->name && !mime_text_ok(r->name, strlen(r->name))) {
            r->ok = false;
            snprintf(r->error, sizeof(r->error), "CR, LF or NUL in the name");
        }
    }
    return 0;
}

void ingress_mime_req_fini(struct ingress_mime_req *req)
{
    json_decref(req->root);
    free(req->rcpts);
    memset(req, 0, sizeof(*req));
}

void ingress_mime_groups(const struct ingress_mime_req *req, struct ingress_mime_group **out, size_t *n)
{
    struct ingress_mime_group *g = xcalloc(req->n_rcpts + 1, sizeof(*g));
    size_t ng = 1;
    g[0].idx = xcalloc(req->n_rcpts, sizeof(size_t));
    for (size_t i = 0; i < req->n_rcpts; i++) {
        if (!req->rcpts[i].ok)
            continue;
        if (!req->rcpts[i].subst) {
            g[0].idx[g[0].n++] = i;
            continue;
        }
        g[ng].idx = xcalloc(1, sizeof(size_t));
        g[ng].idx[0] = i;
        g[ng++].n = 1;
    }
    if (g[0].n == 0) {
        free(g[0].idx);
        memmove(g, g + 1, (ng - 1) * sizeof(*g));
        ng--;
    }
    *out = g;
    *n = ng;
}

void ingress_mime_groups_free(struct ingress_mime_group *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++)
        free(g[i].idx);
    free(g);
}

/* raw - a whole message: templates, then CRLF lines of at most 998 octets, no NUL or lone CR,
 * a header section that starts with a field */
static bool raw(const char *s, size_t n, const json_t *rs, const json_t *gs, struct ingress_mime_msg *m, char *why,
                size_t why_len)
{
    struct buf t = {0};
    bool ok = render(s, n, rs, gs, &t, why, why_len);
    size_t col = 0, name = 0;
    bool in_name = true;

    for (size_t i = 0; ok && i < t.len; i++) {
        unsigned char c = t.data[i];
        if (in_name) {
            if (c == ':' && name > 0)
                in_name = false;
            else if (c < 33 || c > 126) {
                snprintf(why, why_len, "content: the message must start with a header field (Name: value)");
                ok = false;
            } else
                name++;
        }
        if (c == 0) {
            snprintf(why, why_len, "content: NUL in the message");
            ok = false;
        } else if (c == '\r' && (i + 1 >= t.len || t.data[i + 1] != '\n')) {
            snprintf(why, why_len, "content: bare CR in the message");
            ok = false;
        } else if (c == '\n') {
            buf_puts(&m->data, "\r\n");
            col = 0;
        } else if (c != '\r') {
            if (++col > MIME_LINE_MAX) {
                snprintf(why, why_len, "content: a line is longer than 998 octets");
                ok = false;
            }
            if (c > 127)
                m->eightbit = true;
            buf_putc(&m->data, (char)c);
        }
    }
    if (ok && in_name) {
        snprintf(why, why_len, "content: the message must start with a header field (Name: value)");
        ok = false;
    }
    if (ok && col)
        buf_puts(&m->data, "\r\n");
    buf_fini(&t);
    return ok;
}

/* field - a builder string field, rendered; NULL (no error) when absent */
static char *field(const json_t *o, const char *key, const json_t *rs, const json_t *gs, char *why, size_t why_len,
                   bool *bad)
{
    const json_t *v = json_object_get(o, key);
    struct buf b = {0};
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        snprintf(why, why_len, "content.%s: expected a string", key);
        *bad = true;
        return NULL;
    }
    if (!render(json_string_value(v), json_string_length(v), rs, gs, &b, why, why_len)) {
        buf_fini(&b);
        *bad = true;
        return NULL;
    }
    return buf_take(&b);
}

/* mailbox_field - from / reply_to: {"email", "name"} or a bare address string */
static bool mailbox_field(struct buf *out, const char *hname, const json_t *v, const json_t *rs, const json_t *gs,
                          bool *utf8, char *why, size_t why_len)
{
    const json_t *e = json_is_object(v) ? json_object_get(v, "email") : v;
    const json_t *nm = json_is_object(v) ? json_object_get(v, "name") : NULL;
    if (!json_is_string(e) || (nm && !json_is_null(nm) && !json_is_string(nm))) {
        snprintf(why, why_len, "content.%s: expected {\"email\": ..., \"name\": ...}", hname[0] == 'F' ? "from" : "reply_to");
        return false;
    }
    bool u = false;
    if (!check_addr(json_string_value(e), json_string_length(e), false, &u, why, why_len))
        return false;
    *utf8 |= u;
    struct buf name = {0};
    if (json_is_string(nm) && !render(json_string_value(nm), json_string_length(nm), rs, gs, &name, why, why_len)) {
        buf_fini(&name);
        return false;
    }
    if (!mime_text_ok((const char *)name.data, name.len)) {
        snprintf(why, why_len, "content.%s: CR, LF or NUL in the name", hname[0] == 'F' ? "from" : "reply_to");
        buf_fini(&name);
        return false;
    }
    buf_printf(out, "%s: ", hname);
    mime_mailbox(out, name.len ? buf_cstr(&name) : NULL, json_string_value(e));
    buf_puts(out, "\r\n");
    buf_fini(&name);
    return true;
}

static bool user_has(const json_t *headers, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v) {
        if (strcasecmp(k, name) == 0)
            return true;
    }
    return false;
}

static bool attachments(struct buf *out, const json_t *atts, const char *boundary, char *why, size_t why_len)
{
    for (size_t i = 0; i < json_array_size(atts); i++) {
        const json_t *a = json_array_get(atts, i);
        const json_t *data = json_object_get(a, "data"), *ct = json_object_get(a, "content_type");
        const json_t *fn = json_object_get(a, "file_name"), *cid = json_object_get(a, "content_id");
        const json_t *b64 = json_object_get(a, "base64");
        const char *fname = json_is_string(fn) ? json_string_value(fn) : "";
        if (!json_is_object(a) || !json_is_string(data) || (ct && !json_is_string(ct)) ||
            (fn && !json_is_string(fn)) || (cid && !json_is_string(cid)) || (b64 && !json_is_boolean(b64))) {
            snprintf(why, why_len, "content.attachments[%zu]: expected {data, content_type, file_name, content_id?, base64?}",
                     i);
            return false;
        }
        const char *ctype = ct ? json_string_value(ct) : "application/octet-stream";
        bool ct_ok = strchr(ctype, '/') != NULL && strlen(ctype) < 200;
        for (const char *p = ctype; *p; p++)
            if (*p < 33 || *p > 126 || *p == ';' || *p == '"')
                ct_ok = false;
        if (!ct_ok) {
            snprintf(why, why_len, "content.attachments[%zu] (%.64s): content_type must be type/subtype", i, fname);
            return false;
        }
        struct buf bin = {0};
        if (json_is_true(b64)) {
            if (!mime_base64_decode(json_string_value(data), json_string_length(data), &bin)) {
                snprintf(why, why_len, "content.attachments[%zu] (%.64s): data is not valid base64", i, fname);
                buf_fini(&bin);
                return false;
            }
        } else {
            buf_append(&bin, json_string_value(data), json_string_length(data));
        }
        buf_printf(out, "--%s\r\nContent-Type: %s", boundary, ctype);
        bool ok = true;
        if (fn)
            ok = mime_param(out, "name", fname);
        buf_printf(out, "\r\nContent-Disposition: %s", cid ? "inline" : "attachment");
        if (fn && ok)
            ok = mime_param(out, "filename", fname);
        buf_puts(out, "\r\nContent-Transfer-Encoding: base64\r\n");
        if (cid) {
            const char *c = json_string_value(cid);
            for (const char *p = c; *p; p++)
                if (*p < 33 || *p > 126 || *p == '<' || *p == '>')
                    ok = false;
            if (!c[0] || strlen(c) > 200)
                ok = false;
            if (ok)
                buf_printf(out, "Content-ID: <%s>\r\n", c);
        }
        if (!ok) {
            snprintf(why, why_len, "content.attachments[%zu]: control characters or '<>' in file_name or content_id",
                     i);
            buf_fini(&bin);
            return false;
        }
        buf_puts(out, "\r\n");
        mime_base64(out, bin.data, bin.len);
        buf_fini(&bin);
    }
    return true;
}

/* text_part - text, html or both (multipart/alternative) as one entity: its Content-* headers and body */
static void text_part(struct buf *out, const char *text, const char *html)
{
    if (text && html) {
        char b[40] = "=_rm_alt_";
        mime_random_hex(b + 9, 12);
        buf_printf(out, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", b);
        buf_printf(out, "--%s\r\n", b);
        mime_body(out, "text/plain", text, strlen(text));
        buf_printf(out, "--%s\r\n", b);
        mime_body(out, "text/html", html, strlen(html));
        buf_printf(out, "--%s--\r\n", b);
    } else if (html) {
        mime_body(out, "text/html", html, strlen(html));
    } else {
        mime_body(out, "text/plain", text ? text : "", text ? strlen(text) : 0);
    }
}

static const char *const builder_keys[] = {"subject", "text_body", "html_body", "from", "reply_to", "headers",
                                           "attachments"};

static bool builder(const struct ingress_mime_req *req, const struct ingress_mime_group *g, const char *hostname,
                    time_t now, struct ingress_mime_msg *m, char *why, size_t why_len)
{
    const json_t *c = req->content, *rs = req->rcpts[g->idx[0]].subst, *gs = req->subst;
    const json_t *headers = json_object_get(c, "headers"), *atts = json_object_get(c, "attachments");
    const json_t *from = json_object_get(c, "from"), *reply = json_object_get(c, "reply_to");
    const char *k;
    json_t *v;
    bool bad = false, utf8 = false;
    struct buf *out = &m->data;

    json_object_foreach((json_t *)c, k, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof(builder_keys) / sizeof(builder_keys[0]); i++)
            known |= strcmp(k, builder_keys[i]) == 0;
        if (!known) {
            snprintf(why, why_len, "content: unknown field \"%.64s\"", k);
            return false;
        }
    }
    if ((headers && !json_is_object(headers)) || (atts && !json_is_array(atts))) {
        snprintf(why, why_len, "content: headers must be an object, attachments an array");
        return false;
    }
    if (json_array_size(atts) > ATTACH_MAX) {
        snprintf(why, why_len, "content.attachments: at most %d", ATTACH_MAX);
        return false;
    }
    if (!from && !user_has(headers, "From")) {
        snprintf(why, why_len, "content.from: required (or a From header)");
        return false;
    }
    char *subject = field(c, "subject", rs, gs, why, why_len, &bad);
    char *text = bad ? NULL : field(c, "text_body", rs, gs, why, why_len, &bad);
    char *html = bad ? NULL : field(c, "html_body", rs, gs, why, why_len, &bad);
    const char *hwhy = NULL;

    if (!bad && !user_has(headers, "Date")) {
        char date[64];
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
        buf_printf(out, "Date: %s\r\n", date);
    }
    if (!bad && !user_has(headers, "Message-ID")) {
        char id[33];
        mime_random_hex(id, 16);
        buf_printf(out, "Message-ID: <%s@%s>\r\n", id, hostname);
    }
    if (!bad && from && !user_has(headers, "From"))
        bad = !mailbox_field(out, "From", from, rs, gs, &utf8, why, why_len);
    if (!bad && reply && !json_is_null(reply) && !user_has(headers, "Reply-To"))
        bad = !mailbox_field(out, "Reply-To", reply, rs, gs, &utf8, why, why_len);
    if (!bad && !user_has(headers, "To")) {
        buf_puts(out, "To: ");
        for (size_t i = 0; i < g->n; i++) {
            const struct ingress_mime_rcpt *r = &req->rcpts[g->idx[i]];
            if (i)
                buf_puts(out, ",\r\n ");
            mime_mailbox(out, r->name, r->email);
            utf8 |= r->utf8;
        }
        buf_puts(out, "\r\n");
    }
    if (!bad && subject && !user_has(headers, "Subject"))
        bad = !mime_header(out, "Subject", subject, strlen(subject), &hwhy);
    json_object_foreach((json_t *)headers, k, v) {
        if (bad)
            break;
        if (!mime_header_name_ok(k)) {
            snprintf(why, why_len, "content.headers: \"%.64s\" is not a valid header name", k);
            bad = true;
        } else if (strcasecmp(k, "Content-Type") == 0 || strcasecmp(k, "Content-Transfer-Encoding") == 0 ||
                   strcasecmp(k, "MIME-Version") == 0) {
            snprintf(why, why_len, "content.headers: %s is set by the builder", k);
            bad = true;
        } else if (!json_is_string(v)) {
            snprintf(why, why_len, "content.headers.%.64s: expected a string", k);
            bad = true;
        } else {
            struct buf val = {0};
            bad = !render(json_string_value(v), json_string_length(v), rs, gs, &val, why, why_len);
            if (!bad && !mime_header(out, k, (const char *)val.data, val.len, &hwhy))
                bad = true;
            buf_fini(&val);
            if (hwhy)
                snprintf(why, why_len, "content.headers.%.64s: %s", k, hwhy);
        }
    }
    if (hwhy && bad && strncmp(why, "content.headers.", 16) != 0)
        snprintf(why, why_len, "content: %s", hwhy);
    if (!bad) {
        buf_puts(out, "MIME-Version: 1.0\r\n");
        if (json_array_size(atts)) {
            char b[40] = "=_rm_mix_";
            mime_random_hex(b + 9, 12);
            buf_printf(out, "Content-Type: multipart/mixed;\r\n boundary=\"%s\"\r\n\r\n", b);
            if (text || html) {
                buf_printf(out, "--%s\r\n", b);
                text_part(out, text, html);
            }
            bad = !attachments(out, atts, b, why, why_len);
            if (!bad)
                buf_printf(out, "--%s--\r\n", b);
        } else {
            text_part(out, text, html);
        }
    }
    for (size_t i = 0; i < out->len && !bad; i++)
        if (out->data[i] > 127)
            m->eightbit = true;
    m->utf8 = utf8;
    free(subject);
    free(text);
    free(html);
    return !bad;
}

int ingress_mime_build(const struct ingress_mime_req *req, const struct ingress_mime_group *g, const char *hostname,
                       time_t now, struct ingress_mime_msg *out, char **err)
{
    char why[INGRESS_MIME_ERR_MAX] = "";
    bool ok;

    memset(out, 0, sizeof(*out));
    *err = NULL;
    if (g->n == 0 || g->idx[0] >= req->n_rcpts)
        return fail(err, "no recipients");
    const json_t *rs = req->rcpts[g->idx[0]].subst;
    if (json_is_string(req->content))
        ok = raw(json_string_value(req->content), json_string_length(req->content), rs, req->subst, out, why,
                 sizeof(why));
    else
        ok = builder(req, g, hostname, now, out, why, sizeof(why));
    if (!ok) {
        buf_fini(&out->data);
        return fail(err, "%s", why[0] ? why : "the message could not be built");
    }
    return 0;
}
