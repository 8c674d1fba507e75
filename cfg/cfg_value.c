/*
 * cfg_value - the value syntax of ringmail.toml (see cfg_value.h)
 *
 * Host:port splitting is base/hostport's; this file judges the host and words the error.
 */
#include "cfg/cfg_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/hostport.h"

#define CFG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CFG_KIB (UINT64_C(1) << 10)
#define CFG_MIB (UINT64_C(1) << 20)
#define CFG_GIB (UINT64_C(1) << 30)
#define CFG_DURATION_MAX_MS (UINT64_C(365) * 86400000u) /* consumers turn ms into ns; keep far from overflow */

bool cfg_value_valid_ident(const char *s, size_t max, bool is_user)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || (is_user && s[0] == '-'))
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    }
    return true;
}

bool cfg_value_valid_path(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= PATH_MAX)
        return false;
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/* strict dotted quad: four decimal octets, no leading zeros (inet_aton would read 010 as octal) */
static bool cfg_valid_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        size_t start = i;
        unsigned v = 0;
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            start = ++i;
        }
        while (i < n && isdigit((unsigned char)s[i]) && i - start < 3)
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return false;
    }
    return i == n;
}

/* a DNS host name (RFC 1123 labels); a final all-numeric label is refused so 1.2.3.999 is not a name */
bool cfg_value_valid_hostname(const char *s, size_t n)
{
    size_t label = 0;
    bool numeric = true;

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i <= n; i++) {
        char ch = i < n ? s[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            if (i == n && numeric)
                return false;
            label = 0;
            numeric = true;
            continue;
        }
        if (!isalnum((unsigned char)ch) && ch != '-')
            return false;
        if (ch == '-' && label == 0)
            return false;
        if (!isdigit((unsigned char)ch))
            numeric = false;
        label++;
    }
    return true;
}

/* cfg_value_check_address - NULL when s is "host:port", else why not */
const char *cfg_value_check_address(const char *s)
{
    struct hostport hp;
    int rc = hostport_parse(s, 0, &hp);
    size_t n = strlen(hp.host);

    switch (hp.fault) {
    case HOSTPORT_FAULT_UNCLOSED:
    case HOSTPORT_FAULT_AFTER_BRACKET:
        return "is not \"[IPv6]:port\"";
    case HOSTPORT_FAULT_NO_PORT:
        return hp.bracketed ? "is not \"[IPv6]:port\"" : "is missing \":port\"";
    case HOSTPORT_FAULT_NO_HOST:
    case HOSTPORT_FAULT_LONG_HOST:
        if (hp.bracketed)
            return "has a bad IPv6 address";
        return hp.fault == HOSTPORT_FAULT_NO_HOST ? "has no host (use 0.0.0.0 or [::] for every address)"
                                                   : "has a bad host name";
    default:
        break;
    }
    /* the host is judged before the port, so "1.2.3:" is a bad address, not a missing port */
    if (hp.bracketed) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, hp.host, &a6) != 1)
            return "has a bad IPv6 address";
    } else if (memchr(hp.host, ':', n)) {
        return "is IPv6 without brackets (write \"[::1]:25\")";
    } else if (strspn(hp.host, "0123456789.") >= n) {
        if (!cfg_valid_ipv4(hp.host, n))
            return "has a bad IPv4 address";
    } else if (!cfg_value_valid_hostname(hp.host, n)) {
        return "has a bad host name";
    }
    if (hp.fault == HOSTPORT_FAULT_EMPTY_PORT)
        return "has no port";
    if (rc < 0)
        return "has a bad port (1..65535)";
    return NULL;
}

/* cfg_value_cidr_parse - "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128); false with *why */
bool cfg_value_cidr_parse(const char *s, struct cfg_cidr *out, char *why, size_t why_size)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    char host[INET6_ADDRSTRLEN];
    unsigned max, prefix;

    memset(out, 0, sizeof(*out));
    out->family = memchr(s, ':', alen) ? AF_INET6 : AF_INET;
    max = out->family == AF_INET6 ? 128 : 32;
    if (alen == 0 || alen >= sizeof(host)) {
        snprintf(why, why_size, "is not an IPv4 or IPv6 network (like \"10.0.0.0/8\" or \"2001:db8::/32\")");
        return false;
    }
    memcpy(host, s, alen);
    host[alen] = '\0';
    if (inet_pton(out->family, host, out->addr) != 1) {
        snprintf(why, why_size, "is not an IPv4 or IPv6 network (like \"10.0.0.0/8\" or \"2001:db8::/32\")");
        return false;
    }
    prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        bool digits = n > 0 && n <= 3 && strspn(p, "0123456789") == n && (p[0] != '0' || n == 1);
        prefix = digits ? (unsigned)atoi(p) : max + 1;
        if (prefix > max) {
            snprintf(why, why_size, "has a bad prefix length (0..%u)", max);
            return false;
        }
    }
    out->prefix = (uint8_t)prefix;
    /* host bits set is almost always a typo for another network; say which network it would be */
    for (unsigned bit = prefix; bit < max; bit++) {
        if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
            char net[INET6_ADDRSTRLEN];
            for (unsigned b = prefix; b < max; b++)
                out->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
            inet_ntop(out->family, out->addr, net, sizeof(net));
            snprintf(why, why_size, "has bits set after the prefix (the network is \"%s/%u\")", net, prefix);
            return false;
        }
    }
    return true;
}

static bool cfg_cidr_contains(const struct cfg_cidr *net, const uint8_t *a)
{
    unsigned full = net->prefix / 8u, rest = net->prefix % 8u;
    uint8_t mask;

    if (memcmp(net->addr, a, full) != 0)
        return false;
    if (rest == 0)
        return true;
    mask = (uint8_t)(0xffu << (8u - rest));
    return (net->addr[full] & mask) == (a[full] & mask);
}

bool cfg_value_cidr_match(const struct cfg_cidr *nets, size_t n, int family, const void *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t v6[16];
    const uint8_t *v4 = NULL;

    if (!nets || !addr)
        return false;
    if (family == AF_INET) {
        memcpy(v6, mapped, 12);
        memcpy(v6 + 12, addr, 4);
        v4 = v6 + 12;
    } else if (family == AF_INET6) {
        memcpy(v6, addr, 16);
        if (memcmp(v6, mapped, 12) == 0)
            v4 = v6 + 12;
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (nets[i].family == AF_INET && v4 && nets[i].prefix <= 32 && cfg_cidr_contains(&nets[i], v4))
            return true;
        if (nets[i].family == AF_INET6 && nets[i].prefix <= 128 && cfg_cidr_contains(&nets[i], v6))
            return true;
    }
    return false;
}

/* "0", "64KiB", "2GiB": a size for messages, in the largest unit that divides it (no TiB: not accepted) */
const char *cfg_value_size_text(char *buf, size_t size, uint64_t u)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"GiB", CFG_GIB}, {"MiB", CFG_MIB}, {"KiB", CFG_KIB}};

    for (size_t i = 0; i < CFG_ARRAY_SIZE(units); i++) {
        if (u >= units[i].mult && u % units[i].mult == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(u / units[i].mult), units[i].unit);
            return buf;
        }
    }
    snprintf(buf, size, "%llu", (unsigned long long)u);
    return buf;
}

static bool cfg_parse_number(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;

    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return true;
}

struct cfg_unit {
    const char *name;
    uint64_t mult;
};

/* number, optional spaces, unit from the table; "" in the table allows a bare number */
static bool cfg_parse_scaled(const char *text, const struct cfg_unit *units, size_t n_units, uint64_t *out)
{
    const char *p = text;
    uint64_t v;

    if (!text || !cfg_parse_number(&p, &v))
        return false;
    while (*p == ' ')
        p++;
    if (p > text && p[-1] == ' ' && *p == '\0')
        return false;
    for (size_t i = 0; i < n_units; i++) {
        if (strcasecmp(p, units[i].name) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return false;
            *out = v * units[i].mult;
            return true;
        }
    }
    return false;
}

bool cfg_value_parse_size(const char *text, uint64_t *out)
{
    static const struct cfg_unit units[] = {
        {"", 1},          {"b", 1},
        {"k", 1u << 10},  {"kb", 1u << 10},  {"kib", 1u << 10},
        {"m", 1u << 20},  {"mb", 1u << 20},  {"mib", 1u << 20},
        {"g", 1u << 30},  {"gb", 1u << 30},  {"gib", 1u << 30},
    };
    return cfg_parse_scaled(text, units, CFG_ARRAY_SIZE(units), out);
}

bool cfg_value_parse_uint(const char *text, uint64_t max, uint64_t *out)
{
    const char *p = text;
    uint64_t v;

    if (!text || !cfg_parse_number(&p, &v) || *p || v > max)
        return false;
    *out = v;
    return true;
}

bool cfg_value_parse_duration(const char *text, uint64_t *out_ms)
{
    /* a unit is required: a bare "10" in a string is ambiguous (the integer form means milliseconds) */
    static const struct cfg_unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    return cfg_parse_scaled(text, units, CFG_ARRAY_SIZE(units), out_ms);
}

bool cfg_value_parse_grouped(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    bool digit = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c == ',' || c == '_') && digit && i + 1 < n)
            continue;
        if (c < '0' || c > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(c - '0');
        digit = true;
    }
    *out = v;
    return digit;
}

bool cfg_value_parse_rate(const char *text, uint64_t *limit, uint64_t *period_ms, uint64_t *max_burst,
                          const char **why)
{
    static const struct cfg_unit periods[] = {
        {"s", 1000},     {"sec", 1000},     {"second", 1000},   {"seconds", 1000},
        {"m", 60000},    {"min", 60000},    {"minute", 60000},  {"minutes", 60000},
        {"h", 3600000},  {"hr", 3600000},   {"hour", 3600000},  {"hours", 3600000},
        {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
    };
    const char *slash = text ? strchr(text, '/') : NULL;
    if (!slash) {
        *why = "a rate is LIMIT/PERIOD, like \"100/min\"";
        return false;
    }
    if (!cfg_value_parse_grouped(text, (size_t)(slash - text), limit) || *limit == 0) {
        *why = "the limit of a rate is a positive integer";
        return false;
    }
    const char *unit = slash + 1, *comma = strchr(unit, ',');
    size_t ulen = comma ? (size_t)(comma - unit) : strlen(unit);
    size_t i;
    for (i = 0; i < CFG_ARRAY_SIZE(periods); i++)
        if (strlen(periods[i].name) == ulen && memcmp(periods[i].name, unit, ulen) == 0)
            break;
    if (i == CFG_ARRAY_SIZE(periods)) {
        *why = "the period of a rate is s, min, h or d (or second, minute, hour, day)";
        return false;
    }
    *period_ms = periods[i].mult;
    *max_burst = 0;
    if (comma && (strncmp(comma + 1, "max_burst=", 10) != 0 ||
                  !cfg_value_parse_grouped(comma + 11, strlen(comma + 11), max_burst) || *max_burst == 0)) {
        *why = "after the period a rate takes only \",max_burst=N\" (N > 0)";
        return false;
    }
    return true;
}

bool cfg_value_valid_mailbox(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at || at == s || !cfg_value_valid_hostname(at + 1, strlen(at + 1)))
        return false;
    for (const char *p = s; p < at; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '<' || *p == '>')
            return false;
    return true;
}
