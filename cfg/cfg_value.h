/*
 * cfg_value - the value syntax of ringmail.toml, pure functions on strings: names, paths, host names,
 * host:port addresses, networks (CIDR) and their matching, sizes ("64MiB"), durations ("10s") and
 * unsigned numbers. cfg.c and cfg_dlv.c read the file with them; the tools parse their options with
 * the same functions, so "64m" means the same everywhere.
 */
#ifndef RINGMAIL_CFG_VALUE_H
#define RINGMAIL_CFG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* one network of [ingress] relay_networks; addr holds the network in network byte order, host bits zero */
struct cfg_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* 4 bytes used for AF_INET */
    uint8_t prefix;   /* 0..32 or 0..128 */
};

/* cfg_value_parse_size - "64MiB", "512KB", "1g", "4096" -> bytes; false when malformed */
bool cfg_value_parse_size(const char *text, uint64_t *out);
/* cfg_value_parse_duration - "10s", "250ms", "5m", "1h", "2d" -> milliseconds (a unit is required); false when malformed */
bool cfg_value_parse_duration(const char *text, uint64_t *out_ms);
/* cfg_value_parse_uint - decimal digits only (no sign, no spaces), at most max; false otherwise */
bool cfg_value_parse_uint(const char *text, uint64_t max, uint64_t *out);
/* cfg_value_parse_grouped - n bytes of digits with optional ',' or '_' between them ("1,000", "1_000");
 * false on anything else, on nothing, or on overflow */
bool cfg_value_parse_grouped(const char *s, size_t n, uint64_t *out);
/* cfg_value_parse_rate - a rate "LIMIT/PERIOD[,max_burst=N]" as KumoMTA writes it: "100/min", "5/s",
 * "10000/h", "500/d,max_burst=1" (periods s/sec/second, m/min/minute, h/hr/hour, d/day, plurals too);
 * LIMIT > 0; *max_burst 0 when not given. False with *why (static text) when malformed. The shaping
 * files' rates (policy/shaping_value.c) and [warmup] steps share it. */
bool cfg_value_parse_rate(const char *text, uint64_t *limit, uint64_t *period_ms, uint64_t *max_burst,
                          const char **why);
/* cfg_value_size_text - "0", "64KiB", "2GiB": u in the largest unit that divides it, into buf */
const char *cfg_value_size_text(char *buf, size_t size, uint64_t u);

/*
 * cfg_value_cidr_match - is addr inside one of nets[0..n)?
 * family is AF_INET (addr points to a struct in_addr) or AF_INET6 (struct in6_addr). An address is
 * compared in both its IPv4 and IPv4-mapped IPv6 forms, so ::ffff:127.0.0.1 from a dual-stack socket
 * matches 127.0.0.0/8. Any other family, or a NULL addr, matches nothing.
 */
bool cfg_value_cidr_match(const struct cfg_cidr *nets, size_t n, int family, const void *addr);
/* cfg_value_cidr_parse - "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128); false with why */
bool cfg_value_cidr_parse(const char *s, struct cfg_cidr *out, char *why, size_t why_size);

/* cfg_value_valid_mailbox - local@domain: a non-empty local part of printable ASCII without <>, and a host name */
bool cfg_value_valid_mailbox(const char *s);
/* cfg_value_valid_hostname - a DNS host name (RFC 1123 labels, not all-numeric at the end) */
bool cfg_value_valid_hostname(const char *s, size_t n);
/* cfg_value_valid_ident - letters, digits, '.', '_', '-', 1..max bytes (a user name may not start with '-') */
bool cfg_value_valid_ident(const char *s, size_t max, bool is_user);
/* cfg_value_valid_path - non-empty, shorter than PATH_MAX, no control characters */
bool cfg_value_valid_path(const char *s);
/* cfg_value_check_address - NULL when s is "host:port" (see docs/configuration.md), else why not */
const char *cfg_value_check_address(const char *s);

#endif
