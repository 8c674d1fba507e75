/*
 * proto_path - the egress-side options of one egress path (source, site), as the scheduler resolved
 * them, with their one encoder and one strict decoder (proto_path.c)
 *
 * Travels scheduler -> egress as an arena run named by MSG_SCHEDULER_PATH_CONFIG (body.batch:
 * arena_off, len; count 1). The scheduler numbers its path configurations (`path`, 1..
 * PROTO_PATH_ID_MAX) and bumps `generation` whenever one changes; a DELIVER names the configuration
 * its attempt runs under (proto_deliver.path, 0 = the egress's node defaults). The egress frees the run.
 *
 * Run: struct proto_path_hdr, then ehlo_len bytes of EHLO domain, then site_len bytes of site name, then
 * n_prohibited + n_skip + n_sts_mx lengths (one byte each: prohibited first, then skip, then the
 * MTA-STS mx patterns), then the texts in that order. No
 * padding; the lengths add up to the run exactly. Strings are not NUL-terminated on the wire.
 * Accepted values: magic and version; path 1..PROTO_PATH_ID_MAX; every timeout 1..PROTO_PATH_TIMEOUT_MAX_MS;
 * remember_broken_tls_ms 0..PROTO_PATH_TIMEOUT_MAX_MS; smtp_port 1..65535;
 * max_recipients_per_batch 1..PROTO_PATH_RCPTS_MAX; max_deliveries_per_connection >= 1; enable_tls a
 * known enum proto_path_tls; ehlo domain 0..PROTO_PATH_EHLO_MAX bytes of 0x21..0x7e (empty: the
 * source's or node's name); at most PROTO_PATH_HOSTS_MAX CIDRs per list, each "ADDR" or "ADDR/PREFIX"
 * (IPv4 or IPv6, prefix in range, at most PROTO_PATH_CIDR_MAX bytes); mta_sts 0..2 (off, testing,
 * enforce) with at most MTA_STS_MX_MAX patterns of 1..255 bytes of [a-z0-9._-] with an optional
 * leading "*."; reserved fields 0. All
 * integers host order (one node).
 *
 * The decoder copies the run out of the arena once and checks and decodes only that copy. What it
 * returns owns one allocation (freed by proto_path_fini); its strings are NUL-terminated. The
 * encoder refuses (-EINVAL) what the decoder would refuse.
 */
#ifndef RINGMAIL_PROTO_PATH_H
#define RINGMAIL_PROTO_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_PATH_MAGIC 0x48544150u /* "PATH" */
#define PROTO_PATH_VERSION 1
#define PROTO_PATH_ID_MAX 65535u                  /* configurations one scheduler numbers */
#define PROTO_PATH_TIMEOUT_MAX_MS 86400000u       /* one day */
#define PROTO_PATH_RCPTS_MAX 10000u               /* recipients of one attempt at most (egress) */
#define PROTO_PATH_EHLO_MAX 255
#define PROTO_PATH_HOSTS_MAX 64 /* CIDRs in each of prohibited_hosts and skip_hosts */
#define PROTO_PATH_CIDR_MAX 64  /* bytes of one CIDR text */
#define PROTO_PATH_SITE_MAX 1024 /* bytes of the site name: a longer one is sent as "" */

/* KumoMTA's enable_tls values, in its order */
enum proto_path_tls {
    PROTO_PATH_TLS_OPPORTUNISTIC = 0,
    PROTO_PATH_TLS_OPPORTUNISTIC_INSECURE = 1,
    PROTO_PATH_TLS_REQUIRED = 2,
    PROTO_PATH_TLS_REQUIRED_INSECURE = 3,
    PROTO_PATH_TLS_DISABLED = 4,
};

struct proto_path_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t ehlo_len;
    uint32_t path;       /* configuration id, 1..PROTO_PATH_ID_MAX */
    uint32_t generation; /* bumped by the scheduler on every change */
    /* per SMTP phase: connect (TCP), banner, EHLO (and HELO), MAIL FROM, RCPT TO, the DATA command,
     * the reply after the final dot, RSET; idle: an idle connection is closed after it */
    uint64_t connect_timeout_ms, banner_timeout_ms, ehlo_timeout_ms, mail_from_timeout_ms, rcpt_to_timeout_ms,
        data_timeout_ms, data_dot_timeout_ms, rset_timeout_ms, idle_timeout_ms;
    uint64_t remember_broken_tls_ms; /* 0 = not remembered */
    uint32_t max_recipients_per_batch;
    uint32_t max_deliveries_per_connection; /* the scheduler enforces it; carried for the log */
    uint16_t smtp_port;                     /* for MX hosts; routes keep their own ports */
    uint8_t enable_tls;                     /* enum proto_path_tls */
    uint8_t mta_sts;                        /* enum mta_sts_mode: OFF, TESTING or ENFORCE */
    uint16_t n_prohibited, n_skip;
    uint16_t site_len;  /* the scheduler's name of the path's site (the ready queue), for the log */
    uint16_t n_sts_mx;  /* MTA-STS mx patterns, 0..MTA_STS_MX_MAX (common/mta_sts.h) */
    uint32_t reserved3;
};

_Static_assert(sizeof(struct proto_path_hdr) == 120, "proto_path_hdr has no implicit padding");

/* one path configuration in memory: hdr's lengths and counts describe the strings */
struct proto_path {
    struct proto_path_hdr hdr;
    const char *ehlo_domain; /* hdr.ehlo_len bytes ("" allowed) */
    const char *site;        /* hdr.site_len bytes, printable ASCII ("": the egress names the site itself) */
    const char **prohibited; /* hdr.n_prohibited CIDR texts */
    const char **skip;       /* hdr.n_skip CIDR texts */
    const char **sts_mx;     /* hdr.n_sts_mx MTA-STS mx patterns ("host" or "*.host", lowercase) */
    void *_mem;
};

/* proto_path_cidr_ok - "ADDR" or "ADDR/PREFIX", IPv4 or IPv6, n bytes (not NUL-terminated) */
bool proto_path_cidr_ok(const char *s, size_t n);
/* proto_path_tls_name - "Opportunistic", ..., "Disabled"; "?" for an unknown value */
const char *proto_path_tls_name(unsigned tls);
/*
 * proto_path_node_defaults - *out as the node's [egress] keys say (command_ms: EHLO, MAIL FROM,
 * RCPT TO, DATA, RSET; data_ms: the reply after the final dot), each timeout clamped to the accepted
 * range, port 25 when out of range, every recipient in one transaction, Opportunistic TLS, no hosts
 * lists, no EHLO domain, path id and generation 0 (the caller numbers it)
 */
void proto_path_node_defaults(struct proto_path *out, uint64_t connect_ms, uint64_t banner_ms, uint64_t command_ms,
                              uint64_t data_ms, uint64_t idle_ms, uint32_t port, uint32_t max_deliveries);
/* proto_path_size - the bytes proto_path_encode() writes (hdr's counts and ehlo_len are used) */
size_t proto_path_size(const struct proto_path *p);
/* proto_path_encode - writes exactly proto_path_size() bytes (magic and version set); -EINVAL when
 * len differs or the decoder would refuse the result */
int proto_path_encode(const struct proto_path *p, void *dst, size_t len);
/* proto_path_decode - 0, or -EBADMSG with *why (static) set; on error *out is empty */
int proto_path_decode(const void *run, size_t len, struct proto_path *out, const char **why);
void proto_path_fini(struct proto_path *p);

#endif
