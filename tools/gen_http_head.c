/*
 * gen_http_head - the status line and the two fields ringmail-gen --http needs (RFC 9112)
 */
#include "tools/gen_http_head.h"

#include <string.h>
#include <strings.h>

/* field - the value of the header field `name` in head[0..n) (after the status line), trimmed; NULL */
static const char *field(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n), *end = head + n;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *le = eol ? eol : end;
        if (le > line && le[-1] == '\r')
            le--;
        if ((size_t)(le - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = le;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

int gen_http_head_parse(const char *head, size_t n, uint64_t max, uint64_t *content_length, bool *close)
{
    if (n < 12 || memcmp(head, "HTTP/1.", 7) != 0 || (head[7] != '0' && head[7] != '1') || head[8] != ' ')
        return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return -1;
        code = code * 10 + (head[i] - '0');
    }
    if (code < 100 || code > 599 || (n > 12 && head[12] != ' ' && head[12] != '\r'))
        return -1;
    size_t vl = 0;
    const char *v = field(head, n, "Content-Length", &vl);
    if (!v || vl == 0 || vl > 19)
        return -1;
    uint64_t len = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        len = len * 10 + (uint64_t)(v[i] - '0');
    }
    if (len > max)
        return -1;
    const char *c = field(head, n, "Connection", &vl);
    *close = c && vl == 5 && strncasecmp(c, "close", 5) == 0;
    *content_length = len;
    return code;
}
