/*
 * smtp_reply - incremental SMTP reply parser (contract in smtp_reply.h)
 */
#include "smtp/smtp_reply.h"

#include <string.h>
#include <strings.h>

void smtp_reply_init(struct smtp_reply_parser *p, size_t line_max, unsigned lines_max)
{
    memset(p, 0, sizeof(*p));
    p->line_max = line_max ? line_max : 2048;
    p->lines_max = lines_max ? lines_max : 256;
}

void smtp_reply_reset(struct smtp_reply_parser *p)
{
    smtp_reply_init(p, p->line_max, p->lines_max);
}

static int fail(struct smtp_reply_parser *p, const char *why)
{
    p->err = why;
    return SMTP_REPLY_ERROR;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* enhanced_len - length of a "C.SSS.DDD" prefix of t whose class is `cls`, followed by SP or end; 0 if none
 */
static size_t enhanced_len(const char *t, size_t n, char cls)
{
    size_t i = 0;
    if (n < 5 || t[0] != cls || t[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < n && i - start < 4 && is_digit(t[i]))
            i++;
        if (i == start || i - start > 3)
            return 0;
        if (part == 0) {
            if (i >= n || t[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && t[i] != ' ')
        return 0;
    return i;
}

/* keep_text - append one line's text to the kept reply text, sanitised and truncated */
static void keep_text(struct smtp_reply_parser *p, const char *t, size_t n)
{
    struct smtp_reply *r = &p->reply;
    size_t cap = sizeof(r->text) - 1;

    if (r->enhanced[0]) {
        size_t el = strlen(r->enhanced);
        if (n >= el && memcmp(t, r->enhanced, el) == 0 && (n == el || t[el] == ' ')) {
            t += el;
            n -= el;
            while (n > 0 && *t == ' ')
                t++, n--;
        }
    }
    if (p->text_len > 0 && p->text_len + 3 <= cap) {
        memcpy(r->text + p->text_len, " / ", 3);
        p->text_len += 3;
    }
    for (size_t i = 0; i < n && p->text_len < cap; i++) {
        unsigned char c = (unsigned char)t[i];
        r->text[p->text_len++] = (c < 32 || c == 127) ? '?' : (char)c;
    }
    r->text[p->text_len] = '\0';
}

/* end_line - one whole line (CR already dropped): p->line holds its first min(len, keep) octets */
static int end_line(struct smtp_reply_parser *p, size_t len)
{
    const char *l = p->line;
    size_t kept = len < sizeof(p->line) ? len : sizeof(p->line);
    bool last;

    if (len > p->line_max)
        return fail(p, "reply line too long");
    if (len < 3)
        return fail(p, "reply line shorter than a code");
    if (l[0] < '2' || l[0] > '5' || !is_digit(l[1]) || !is_digit(l[2]))
        return fail(p, "reply code is not three digits 2xx-5xx");
    if (len == 3 || l[3] == ' ')
        last = true;
    else if (l[3] == '-')
        last = false;
    else
        return fail(p, "no separator after reply code");
    int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
    if (p->reply.lines > 0 && code != p->reply.code)
        return fail(p, "reply code changed within a reply");
    if (p->reply.lines >= p->lines_max)
        return fail(p, "too many lines in one reply");
    p->reply.code = code;
    p->reply.lines++;

    p->last_text = len > 3 ? l + 4 : l + 3;
    p->last_text_len = kept > 4 ? kept - 4 : 0;
    if (p->reply.lines == 1) {
        size_t el = enhanced_len(p->last_text, p->last_text_len, l[0]);
        if (el > 0 && el < sizeof(p->reply.enhanced)) {
            memcpy(p->reply.enhanced, p->last_text, el);
            p->reply.enhanced[el] = '\0';
        }
    }
    if (p->reply.lines <= SMTP_REPLY_KEEP_LINES)
        keep_text(p, p->last_text, p->last_text_len);
    p->line_len = 0;
    if (last) {
        p->done = true;
        return SMTP_REPLY_DONE;
    }
    return SMTP_REPLY_LINE;
}

int smtp_reply_feed(struct smtp_reply_parser *p, const char *buf, size_t len, size_t *used)
{
    *used = 0;
    if (p->err)
        return SMTP_REPLY_ERROR;
    if (p->done && len > 0) {
        memset(&p->reply, 0, sizeof(p->reply));
        p->text_len = 0;
        p->done = false;
        p->last_text = NULL;
        p->last_text_len = 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n') {
            *used = i + 1;
            size_t n = p->line_len;
            if (p->line_cr)
                n--;
            p->line_cr = false;
            return end_line(p, n);
        }
        /* one octet of slack for the CR of the line end */
        if (p->line_len >= p->line_max + 1) {
            *used = i + 1;
            return fail(p, "reply line too long");
        }
        if (p->line_len < sizeof(p->line))
            p->line[p->line_len] = c;
        p->line_len++;
        p->line_cr = c == '\r';
    }
    *used = len;
    return SMTP_REPLY_MORE;
}

const char *smtp_reply_line_text(const struct smtp_reply_parser *p, size_t *len)
{
    *len = p->last_text_len;
    return p->last_text ? p->last_text : "";
}

size_t smtp_reply_keyword(const char *t, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    if (n < k || strncasecmp(t, kw, k) != 0 || (n > k && t[k] != ' '))
        return 0;
    return k;
}
