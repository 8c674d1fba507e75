/*
 * ingress_report - ARF (RFC 5965) and DSN (RFC 3464) reports parsed (contract in ingress_report.h)
 *
 * The ingress's MIME code (ingress_mime*.c) builds messages and has no reader; a report needs only a
 * small part of MIME: header blocks (RFC 5322 2.2, unfolding), the Content-Type value with its
 * parameters (RFC 2045 5.1) and one multipart split by boundary lines (RFC 2046 5.1.1). Everything
 * here walks [p, end) with memchr and explicit lengths; no function relies on a NUL in the input.
 */
#include "ingress/ingress_report.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70 /* RFC 2046 5.1.1 */

/* one unfolded header field: name and value, both NUL-terminated copies */
struct field {
    char name[80];
    char value[INGRESS_REPORT_MAX_FIELD + 1];
    size_t vlen;
    bool open;
};

typedef void (*field_fn)(void *arg, const char *name, const char *value);

static bool name_is(const char *name, const char *want)
{
    return strcasecmp(name, want) == 0;
}

static void field_flush(struct field *f, field_fn fn, void *arg, unsigned *count)
{
    if (!f->open)
        return;
    f->open = false;
    f->value[f->vlen] = '\0';
    if (++*count <= INGRESS_REPORT_MAX_FIELDS)
        fn(arg, f->name, f->value);
}

static void field_append(struct field *f, const char *s, size_t n)
{
    size_t room = INGRESS_REPORT_MAX_FIELD - f->vlen;
    if (n > room)
        n = room;
    memcpy(f->value + f->vlen, s, n);
    f->vlen += n;
}

/* line_end - the line at p (before end): *le at its end without CR LF (or a lone LF); the next line's start */
static const char *line_end(const char *p, const char *end, const char **le)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *le = nl ? nl : end;
    if (*le > p && (*le)[-1] == '\r')
        (*le)--;
    return nl ? nl + 1 : end;
}

/*
 * scan_headers - call fn for every field of the header block at [p, end); returns where the body starts
 * (after the empty line), or end when the block has no empty line. Lines without a colon are skipped.
 */
static const char *scan_headers(const char *p, const char *end, field_fn fn, void *arg)
{
    struct field f;
    unsigned count = 0;

    f.open = false;
    while (p < end) {
        const char *le, *next = line_end(p, end, &le);
        if (le == p) {
            field_flush(&f, fn, arg, &count);
            return next;
        }
        if (*p == ' ' || *p == '\t') {
            if (f.open)
                field_append(&f, p, (size_t)(le - p));
        } else {
            field_flush(&f, fn, arg, &count);
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon && colon > p) {
                const char *ne = colon;
                while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                    ne--;
                size_t nn = (size_t)(ne - p);
                if (nn > 0 && nn < sizeof(f.name)) {
                    memcpy(f.name, p, nn);
                    f.name[nn] = '\0';
                    f.vlen = 0;
                    f.open = true;
                    field_append(&f, colon + 1, (size_t)(le - colon - 1));
                }
            }
        }
        p = next;
    }
    field_flush(&f, fn, arg, &count);
    return end;
}

/* copy_clean - s into dst (size n): control bytes become spaces, outer white space is dropped */
static void copy_clean(char *dst, size_t n, const char *s)
{
    size_t len = 0;
    for (; *s && len + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (len == 0 && (c <= ' ' || c == 0x7f))
            continue;
        dst[len++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    while (len > 0 && dst[len - 1] == ' ')
        len--;
    dst[len] = '\0';
}

/* copy_typed - "dns; mx.example" or "rfc822; a@b": the part after the type (the whole when no ';') */
static void copy_typed(char *dst, size_t n, const char *s)
{
    const char *semi = strchr(s, ';');
    copy_clean(dst, n, semi ? semi + 1 : s);
}

/* copy_addr - an address field, with its angle brackets (if any) removed */
static void copy_addr(char *dst, size_t n, const char *s, bool typed)
{
    char tmp[INGRESS_REPORT_ADDR];
    if (typed)
        copy_typed(tmp, sizeof(tmp), s);
    else
        copy_clean(tmp, sizeof(tmp), s);
    const char *a = tmp;
    size_t len = strlen(a);
    if (len >= 2 && a[0] == '<' && a[len - 1] == '>') {
        a++;
        len -= 2;
    }
    if (len >= n)
        len = n - 1;
    memcpy(dst, a, len);
    dst[len] = '\0';
}

/* ---- Content-Type ---- */

struct ctype {
    char type[64]; /* lower case "type/subtype" */
    char report_type[64];
    char boundary[BOUNDARY_MAX + 1];
    bool seen;
};

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s + 32);
}

/* ctype_parse - RFC 2045 5.1: type/subtype *(";" attribute "=" value), value a token or quoted-string */
static void ctype_parse(struct ctype *ct, const char *v)
{
    size_t i = 0;
    while (*v == ' ' || *v == '\t')
        v++;
    while (*v && *v != ';' && *v != ' ' && *v != '\t' && *v != '(') {
        if (i + 1 < sizeof(ct->type))
            ct->type[i++] = *v;
        v++;
    }
    ct->type[i] = '\0';
    lower(ct->type);
    ct->seen = true;
    while (*v) {
        char name[32], val[BOUNDARY_MAX + 2];
        size_t nn = 0, vn = 0;
        while (*v == ';' || *v == ' ' || *v == '\t')
            v++;
        while (*v && *v != '=' && *v != ';') {
            if (*v != ' ' && *v != '\t' && nn + 1 < sizeof(name))
                name[nn++] = *v;
            v++;
        }
        name[nn] = '\0';
        if (*v != '=')
            continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '"') {
            v++;
            while (*v && *v != '"') {
                if (*v == '\\' && v[1])
                    v++;
                if (vn + 1 < sizeof(val))
                    val[vn++] = *v;
                v++;
            }
            if (*v == '"')
                v++;
        } else {
            while (*v && *v != ';' && *v != ' ' && *v != '\t') {
                if (vn + 1 < sizeof(val))
                    val[vn++] = *v;
                v++;
            }
        }
        val[vn] = '\0';
        if (strcasecmp(name, "boundary") == 0 && vn > 0 && vn <= BOUNDARY_MAX) {
            memcpy(ct->boundary, val, vn + 1);
        } else if (strcasecmp(name, "report-type") == 0) {
            copy_clean(ct->report_type, sizeof(ct->report_type), val);
            lower(ct->report_type);
        }
    }
}

static void on_ctype_field(void *arg, const char *name, const char *value)
{
    struct ctype *ct = arg;
    if (!ct->seen && name_is(name, "Content-Type"))
        ctype_parse(ct, value);
}

/* ---- the fields of the report parts ---- */

struct parse {
    struct ingress_report *r;
    bool report_part;   /* a message/feedback-report or message/delivery-status part was read */
    bool original_part; /* the returned message or headers were read */
    bool rcpt_chosen;   /* a DSN recipient block with Action: failed was taken */
    bool rcpt_any;      /* ... or any block, when none failed so far */
    /* the DSN recipient block being read */
    struct ingress_report blk;
    bool blk_any;
};

static void on_arf_field(void *arg, const char *name, const char *v)
{
    struct ingress_report *r = ((struct parse *)arg)->r;
    if (name_is(name, "Feedback-Type")) {
        copy_clean(r->feedback_type, sizeof(r->feedback_type), v);
        lower(r->feedback_type);
    } else if (name_is(name, "User-Agent")) {
        copy_clean(r->user_agent, sizeof(r->user_agent), v);
    } else if (name_is(name, "Version")) {
        copy_clean(r->version, sizeof(r->version), v);
    } else if (name_is(name, "Original-Rcpt-To")) {
        if (!r->orig_rcpt[0])
            copy_addr(r->orig_rcpt, sizeof(r->orig_rcpt), v, false);
    } else if (name_is(name, "Original-Mail-From")) {
        copy_addr(r->orig_sender, sizeof(r->orig_sender), v, false);
    } else if (name_is(name, "Arrival-Date") || name_is(name, "Received-Date")) {
        copy_clean(r->arrival_date, sizeof(r->arrival_date), v);
    } else if (name_is(name, "Reporting-MTA")) {
        copy_typed(r->reporting_mta, sizeof(r->reporting_mta), v);
    } else if (name_is(name, "Source-IP")) {
        copy_clean(r->source_ip, sizeof(r->source_ip), v);
    }
}

static void on_dsn_msg_field(void *arg, const char *name, const char *v)
{
    struct ingress_report *r = ((struct parse *)arg)->r;
    if (name_is(name, "Reporting-MTA"))
        copy_typed(r->reporting_mta, sizeof(r->reporting_mta), v);
    else if (name_is(name, "Arrival-Date"))
        copy_clean(r->arrival_date, sizeof(r->arrival_date), v);
}

static void on_dsn_rcpt_field(void *arg, const char *name, const char *v)
{
    struct parse *ps = arg;
    struct ingress_report *b = &ps->blk;
    ps->blk_any = true;
    if (name_is(name, "Final-Recipient"))
        copy_addr(b->orig_rcpt, sizeof(b->orig_rcpt), v, true);
    else if (name_is(name, "Original-Recipient"))
        copy_addr(b->dsn_orig_rcpt, sizeof(b->dsn_orig_rcpt), v, true);
    else if (name_is(name, "Action")) {
        copy_clean(b->action, sizeof(b->action), v);
        lower(b->action);
    } else if (name_is(name, "Status"))
        copy_clean(b->status, sizeof(b->status), v);
    else if (name_is(name, "Diagnostic-Code"))
        copy_typed(b->diagnostic, sizeof(b->diagnostic), v);
    else if (name_is(name, "Remote-MTA"))
        copy_typed(b->remote_mta, sizeof(b->remote_mta), v);
}

/* take_block - the recipient block just read, when it is the first, or the first that failed */
static void take_block(struct parse *ps)
{
    struct ingress_report *b = &ps->blk, *r = ps->r;
    bool failed = strcmp(b->action, "failed") == 0;
    if (ps->rcpt_chosen || (ps->rcpt_any && !failed))
        return;
    memcpy(r->orig_rcpt, b->orig_rcpt, sizeof(r->orig_rcpt));
    memcpy(r->dsn_orig_rcpt, b->dsn_orig_rcpt, sizeof(r->dsn_orig_rcpt));
    memcpy(r->action, b->action, sizeof(r->action));
    memcpy(r->status, b->status, sizeof(r->status));
    memcpy(r->diagnostic, b->diagnostic, sizeof(r->diagnostic));
    memcpy(r->remote_mta, b->remote_mta, sizeof(r->remote_mta));
    ps->rcpt_any = true;
    ps->rcpt_chosen = failed;
}

static bool is_hex32(const char *s, size_t n)
{
    if (n != INGRESS_REPORT_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* ring_id_parse - "<32 hex>[; tenant=T][; campaign=C]" (X-Ringmail-Id, as ingress_xfer.c writes it) */
static void ring_id_parse(struct ingress_report *r, const char *v)
{
    char tmp[INGRESS_REPORT_MAX_FIELD + 1];
    copy_clean(tmp, sizeof(tmp), v);
    const char *semi = strchr(tmp, ';');
    size_t idn = semi ? (size_t)(semi - tmp) : strlen(tmp);
    while (idn > 0 && tmp[idn - 1] == ' ')
        idn--;
    if (!is_hex32(tmp, idn))
        return;
    memcpy(r->ring_id, tmp, idn);
    r->ring_id[idn] = '\0';
    lower(r->ring_id);
    while (semi) {
        const char *p = semi + 1;
        while (*p == ' ')
            p++;
        semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        char *dst = NULL;
        size_t skip = 0;
        if (n > 7 && strncasecmp(p, "tenant=", 7) == 0) {
            dst = r->tenant;
            skip = 7;
        } else if (n > 9 && strncasecmp(p, "campaign=", 9) == 0) {
            dst = r->campaign;
            skip = 9;
        }
        if (!dst)
            continue;
        n -= skip;
        while (n > 0 && p[skip + n - 1] == ' ')
            n--;
        if (n > 64)
            n = 64;
        memcpy(dst, p + skip, n);
        dst[n] = '\0';
    }
}

static void on_original_field(void *arg, const char *name, const char *v)
{
    struct ingress_report *r = ((struct parse *)arg)->r;
    if (name_is(name, "Message-ID")) {
        if (!r->message_id[0])
            copy_clean(r->message_id, sizeof(r->message_id), v);
    } else if (name_is(name, "X-Ringmail-Id")) {
        if (!r->ring_id[0])
            ring_id_parse(r, v);
    }
}

/* part - one body part of the report at [p, end) */
static void part(struct parse *ps, const char *p, const char *end)
{
    struct ctype ct = {0};
    const char *body = scan_headers(p, end, on_ctype_field, &ct);
    if (!ct.seen)
        return; /* text/plain by default: the human-readable part */
    if (strcmp(ct.type, "message/feedback-report") == 0) {
        scan_headers(body, end, on_arf_field, ps);
        ps->report_part = true;
    } else if (strcmp(ct.type, "message/delivery-status") == 0 ||
               strcmp(ct.type, "message/global-delivery-status") == 0) {
        /* the per-message block, then one block per recipient (RFC 3464 2.1) */
        const char *q = scan_headers(body, end, on_dsn_msg_field, ps);
        while (q < end) {
            memset(&ps->blk, 0, sizeof(ps->blk));
            ps->blk_any = false;
            const char *next = scan_headers(q, end, on_dsn_rcpt_field, ps);
            if (ps->blk_any)
                take_block(ps);
            if (next <= q)
                break;
            q = next;
        }
        ps->report_part = true;
    } else if (strcmp(ct.type, "message/rfc822") == 0 || strcmp(ct.type, "message/rfc822-headers") == 0 ||
               strcmp(ct.type, "text/rfc822-headers") == 0 || strcmp(ct.type, "message/global") == 0 ||
               strcmp(ct.type, "message/global-headers") == 0) {
        if (!ps->original_part)
            scan_headers(body, end, on_original_field, ps);
        ps->original_part = true;
    }
}

/* delimiter - is the line [p, le) "--boundary" (*close: "--boundary--"), white space after allowed? */
static bool delimiter(const char *p, const char *le, const char *b, size_t bn, bool *close)
{
    if ((size_t)(le - p) < bn + 2 || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b, bn) != 0)
        return false;
    const char *q = p + 2 + bn;
    *close = false;
    if (le - q >= 2 && q[0] == '-' && q[1] == '-') {
        *close = true;
        q += 2;
    }
    for (; q < le; q++)
        if (*q != ' ' && *q != '\t')
            return false;
    return true;
}

/* split - the parts of the multipart body at [p, end) */
static void split(struct parse *ps, const char *p, const char *end, const char *boundary)
{
    size_t bn = strlen(boundary);
    const char *start = NULL; /* of the current part */
    unsigned parts = 0;

    while (p < end) {
        const char *le, *next = line_end(p, end, &le);
        bool close;
        if (delimiter(p, le, boundary, bn, &close)) {
            if (start && parts < INGRESS_REPORT_MAX_PARTS) {
                part(ps, start, p);
                parts++;
            }
            if (close)
                return;
            start = next;
        }
        p = next;
    }
    if (start && parts < INGRESS_REPORT_MAX_PARTS)
        part(ps, start, end); /* no close delimiter: what came is taken */
}

const char *ingress_report_kind_name(enum ingress_report_kind k)
{
    switch (k) {
    case INGRESS_REPORT_ARF: return "arf";
    case INGRESS_REPORT_DSN: return "dsn";
    default: return NULL;
    }
}

int ingress_report_parse(const char *msg, size_t len, struct ingress_report *out, const char **why)
{
    struct ctype ct = {0};
    struct parse ps = {.r = out};
    const char *end = msg + len;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (msg == NULL || len == 0) {
        *why = "empty message";
        return -EINVAL;
    }
    const char *body = scan_headers(msg, end, on_ctype_field, &ct);
    if (!ct.seen || strcmp(ct.type, "multipart/report") != 0) {
        *why = "not a multipart/report (RFC 6522)";
        return -EINVAL;
    }
    if (!ct.boundary[0]) {
        *why = "multipart/report without a boundary";
        return -EINVAL;
    }
    split(&ps, body, end, ct.boundary);
    if (!ps.report_part) {
        *why = "no message/feedback-report or message/delivery-status part";
        return -EINVAL;
    }
    bool arf = out->feedback_type[0] != '\0';
    bool dsn = ps.rcpt_any;
    if (strcmp(ct.report_type, "feedback-report") == 0 || (!ct.report_type[0] && arf && !dsn)) {
        if (!arf) {
            *why = "feedback report without Feedback-Type (RFC 5965 3.1)";
            return -EINVAL;
        }
        out->kind = INGRESS_REPORT_ARF;
        return 0;
    }
    if (strcmp(ct.report_type, "delivery-status") == 0 || (!ct.report_type[0] && dsn)) {
        if (!dsn || !out->orig_rcpt[0]) {
            *why = "delivery status without a Final-Recipient (RFC 3464 2.3.2)";
            return -EINVAL;
        }
        if (!out->status[0]) {
            *why = "delivery status without a Status (RFC 3464 2.3.4)";
            return -EINVAL;
        }
        out->kind = INGRESS_REPORT_DSN;
        return 0;
    }
    *why = "report-type is neither feedback-report nor delivery-status";
    return -EINVAL;
}
