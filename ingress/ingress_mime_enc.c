/*
 * ingress_mime_enc - the encoders of the HTTP injection builder: header fields (RFC 5322, RFC 2047
 * encoded words, RFC 2231 parameters), quoted-printable and base64 bodies (RFC 2045)
 *
 * Base64 itself is OpenSSL's (EVP_EncodeBlock/EVP_DecodeBlock); quoted-printable has no library
 * among the node's dependencies and is written here.
 */
#include "ingress/ingress_mime_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/utf8.h"

#define EW_PAYLOAD 45 /* octets per encoded word: 60 base64 digits, 72 columns with =?UTF-8?B??= */
#define QP_COLS 76
#define MIME_NAME_PLAIN_MAX 200 /* a display name longer than this is encoded (folded) */

bool mime_header_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 76)
        return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] < 33 || name[i] > 126 || name[i] == ':')
            return false;
    return true;
}

bool mime_text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

static bool ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 126 || ((unsigned char)s[i] < 32 && s[i] != '\t'))
            return false;
    return true;
}

/* encoded_words - s as UTF-8 B encoded words, cut on character boundaries, one per folded line */
static void encoded_words(struct buf *out, const char *s, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        size_t take = 0;
        while (i + take < n) {
            size_t l = utf8_seq_len((const unsigned char *)s + i + take, n - i - take);
            if (l == 0)
                l = 1; /* not UTF-8 (the JSON was): encode the octet, never loop */
            if (take + l > EW_PAYLOAD)
                break;
            take += l;
        }
        unsigned char enc[EW_PAYLOAD * 2];
        int m = EVP_EncodeBlock(enc, (const unsigned char *)s + i, (int)take);
        buf_puts(out, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        buf_append(out, enc, (size_t)m);
        buf_puts(out, "?=");
        first = false;
        i += take;
    }
}

bool mime_header(struct buf *out, const char *name, const char *value, size_t n, const char **why)
{
    if (!mime_text_ok(value, n)) {
        *why = "CR, LF or NUL in a header value";
        return false;
    }
    buf_puts(out, name);
    buf_puts(out, ": ");
    if (ascii(value, n)) {
        if (strlen(name) + 2 + n > MIME_LINE_MAX) {
            *why = "header line longer than 998 octets";
            return false;
        }
        buf_append(out, value, n);
    } else {
        encoded_words(out, value, n);
    }
    buf_puts(out, "\r\n");
    return true;
}

static bool atext_phrase(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
                  strchr("!#$%&'*+-/=?^_`{|}~", c);
        if (!ok)
            return false;
    }
    return true;
}

void mime_mailbox(struct buf *out, const char *name, const char *addr)
{
    if (name && name[0]) {
        size_t n = strlen(name);
        if (!ascii(name, n) || n > MIME_NAME_PLAIN_MAX) {
            encoded_words(out, name, n); /* a long name too: encoded words fold, a phrase would not */
        } else if (atext_phrase(name)) {
            buf_puts(out, name);
        } else {
            buf_putc(out, '"');
            for (const char *p = name; *p; p++) {
                if (*p == '"' || *p == '\\')
                    buf_putc(out, '\\');
                buf_putc(out, *p);
            }
            buf_putc(out, '"');
        }
        buf_putc(out, ' ');
    }
    buf_putc(out, '<');
    buf_puts(out, addr);
    buf_putc(out, '>');
}

/* plain - ASCII text whose lines (LF or CRLF) fit, with no lone CR: sent as 7bit */
static bool plain(const char *s, size_t n)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            col = 0;
            continue;
        }
        if (c == '\r') {
            if (i + 1 >= n || s[i + 1] != '\n')
                return false;
            continue;
        }
        if (c > 126 || c == 0 || (c < 32 && c != '\t') || ++col > 900)
            return false;
    }
    return true;
}

static void qp(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] == '\n')) {
            if (c == '\r')
                i++;
            buf_puts(out, "\r\n");
            col = 0;
            continue;
        }
        bool at_eol = i + 1 >= n || s[i + 1] == '\n' || s[i + 1] == '\r';
        bool lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
        size_t w = lit ? 1 : 3;
        if (col + w > QP_COLS - 1) {
            buf_puts(out, "=\r\n");
            col = 0;
        }
        if (lit) {
            buf_putc(out, (char)c);
        } else {
            buf_putc(out, '=');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
        col += w;
    }
    buf_puts(out, "\r\n");
}

void mime_body(struct buf *out, const char *ctype, const char *text, size_t n)
{
    buf_printf(out, "Content-Type: %s; charset=\"utf-8\"\r\n", ctype);
    if (plain(text, n)) {
        buf_puts(out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
        for (size_t i = 0; i < n; i++) {
            if (text[i] == '\r')
                continue;
            if (text[i] == '\n')
                buf_putc(out, '\r');
            buf_putc(out, text[i]);
        }
        buf_puts(out, "\r\n");
        return;
    }
    buf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    qp(out, text, n);
}

void mime_base64(struct buf *out, const unsigned char *data, size_t n)
{
    unsigned char line[80];
    for (size_t i = 0; i < n; i += 57) {
        size_t take = n - i < 57 ? n - i : 57;
        int m = EVP_EncodeBlock(line, data + i, (int)take);
        buf_append(out, line, (size_t)m);
        buf_puts(out, "\r\n");
    }
}

bool mime_base64_decode(const char *in, size_t n, struct buf *out)
{
    struct buf clean = {0};
    bool ok = false;

    for (size_t i = 0; i < n; i++)
        if (in[i] != ' ' && in[i] != '\t' && in[i] != '\r' && in[i] != '\n')
            buf_putc(&clean, in[i]);
    if (clean.len % 4 != 0 || clean.len > (size_t)INT32_MAX)
        goto done;
    size_t pad = 0;
    if (clean.len >= 1 && clean.data[clean.len - 1] == '=')
        pad++;
    if (clean.len >= 2 && clean.data[clean.len - 2] == '=')
        pad++;
    /* '=' only as padding at the very end */
    for (size_t i = 0; i + pad < clean.len; i++)
        if (clean.data[i] == '=')
            goto done;
    buf_reserve(out, clean.len / 4 * 3 + 1);
    int m = clean.len ? EVP_DecodeBlock(out->data + out->len, clean.data, (int)clean.len) : 0;
    if (m < 0)
        goto done;
    out->len += (size_t)m - pad;
    ok = true;
done:
    buf_fini(&clean);
    return ok;
}

bool mime_param(struct buf *out, const char *name, const char *value)
{
    size_t n = strlen(value);
    if (!mime_text_ok(value, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 32 || value[i] == 127)
            return false;
    if (ascii(value, n) && n < 200) {
        buf_printf(out, ";\r\n %s=\"", name);
        for (size_t i = 0; i < n; i++) {
            if (value[i] == '"' || value[i] == '\\')
                buf_putc(out, '\\');
            buf_putc(out, value[i]);
        }
        buf_putc(out, '"');
        return true;
    }
    /* RFC 2231 continuations of at most 60 percent-encoded columns */
    static const char hex[] = "0123456789ABCDEF";
    unsigned part = 0;
    size_t i = 0;
    while (i < n || part == 0) {
        buf_printf(out, ";\r\n %s*%u*=%s", name, part, part == 0 ? "UTF-8''" : "");
        size_t cols = 0;
        while (i < n && cols < 60) {
            unsigned char c = (unsigned char)value[i++];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
                buf_putc(out, (char)c);
                cols++;
            } else {
                buf_putc(out, '%');
                buf_putc(out, hex[c >> 4]);
                buf_putc(out, hex[c & 15]);
                cols += 3;
            }
        }
        part++;
    }
    return true;
}

void mime_random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[32];
    if (n > sizeof(r))
        n = sizeof(r);
    if (getrandom(r, n, 0) != (ssize_t)n)
        panic("getrandom failed");
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[2 * n] = '\0';
}
