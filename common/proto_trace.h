/*
 * proto_trace - the SMTP trace event: what a role's session sends the supervisor while someone traces
 *
 * A role (ingress: SMTP server sessions, egress: SMTP client sessions) sends one datagram per event on
 * the node's trace socket (DATA_DIR/trace.sock, supervisor/supervisor_trace.c) only while the
 * supervisor's "trace on" word in the segment header has its side's bit set. The datagram is this
 * binary record, little-endian:
 *
 *   0  u16 magic "RT"   2 u8 version  3 u8 side   4 u8 dir   5 u8 flags   6 u16 text_len
 *   8  u64 time (CLOCK_REALTIME ns)   16 u64 session id
 *   24 peer  address: u8 family (0 none, 4, 6), u8 0, u16 port, 16 address bytes (IPv4: 4, then 12 zero)
 *   44 local address, the same
 *   64 u8 domain_len  65 u8 site_len  66 u8 source_len  67 u8 0
 *   68 text, then domain, site, source (no terminators); nothing after them
 *
 * proto_trace_encode() writes one (0 or -EMSGSIZE); proto_trace_decode() is the strict, bounded
 * reader the supervisor runs on every datagram (hostile input): every length and enum is checked,
 * the record must be exactly as long as it says, names must be UTF-8 without spaces or controls and
 * appear only on the client side. The text is any octets (the peer's own, cut to PROTO_TRACE_TEXT_MAX
 * with the truncated flag): it is escaped where it is shown (proto_trace_event_json()).
 *
 * Filters (proto_trace_filter): a server trace by peer network (CIDR, IPv4 or IPv6; an IPv4 network
 * matches IPv4-mapped IPv6 peers too), a client trace by recipient domain (any case), site, source.
 */
#ifndef RINGMAIL_PROTO_TRACE_H
#define RINGMAIL_PROTO_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_TRACE_MAGIC 0x5452u /* "RT" little-endian */
#define PROTO_TRACE_VERSION 1
#define PROTO_TRACE_HEAD 68
#define PROTO_TRACE_TEXT_MAX 512
#define PROTO_TRACE_NAME_MAX 255
#define PROTO_TRACE_DGRAM_MAX (PROTO_TRACE_HEAD + PROTO_TRACE_TEXT_MAX + 3 * PROTO_TRACE_NAME_MAX)
#define PROTO_TRACE_F_TRUNCATED 1u

enum proto_trace_side {
    PROTO_TRACE_SERVER = 0, /* ingress: we are the SMTP server */
    PROTO_TRACE_CLIENT = 1, /* egress: we are the SMTP client */
    PROTO_TRACE_SIDE__MAX = 2,
};

enum proto_trace_dir {
    PROTO_TRACE_IN = 0,   /* "<-" from the peer: a command (server) or a reply line (client) */
    PROTO_TRACE_OUT = 1,  /* "->" to the peer */
    PROTO_TRACE_NOTE = 2, /* "--" a step of ours: connected, TLS result, body elided, closed */
    PROTO_TRACE_DIR__MAX = 3,
};

struct proto_trace_addr {
    uint8_t family; /* 0 none, 4, 6 */
    uint16_t port;
    uint8_t addr[16];
};

struct proto_trace_event {
    enum proto_trace_side side;
    enum proto_trace_dir dir;
    bool truncated;
    uint64_t time_ns;
    uint64_t session;
    struct proto_trace_addr peer, local;
    size_t text_len;
    char text[PROTO_TRACE_TEXT_MAX + 1]; /* NUL-terminated for convenience; may hold other NULs */
    char domain[PROTO_TRACE_NAME_MAX + 1], site[PROTO_TRACE_NAME_MAX + 1], source[PROTO_TRACE_NAME_MAX + 1];
};

/* proto_trace_encode - the record into out (cap >= PROTO_TRACE_DGRAM_MAX suffices); its length, or
 * -EMSGSIZE when it does not fit, -EINVAL for a field out of range (a name too long: cut it first) */
int proto_trace_encode(const struct proto_trace_event *ev, uint8_t *out, size_t cap);
/* proto_trace_decode - 0 and *ev, or -EBADMSG with a static reason in *why */
int proto_trace_decode(const uint8_t *in, size_t len, struct proto_trace_event *ev, const char **why);

/* proto_trace_addr_set - from a sockaddr_in/_in6 (anything else: family 0) */
struct sockaddr;
void proto_trace_addr_set(struct proto_trace_addr *a, const struct sockaddr *sa);
/* proto_trace_addr_format - "1.2.3.4:25", "[::1]:25", "-" */
void proto_trace_addr_format(const struct proto_trace_addr *a, char *out, size_t len);
/* proto_trace_set_text - the text, cut to PROTO_TRACE_TEXT_MAX (truncated set) */
void proto_trace_set_text(struct proto_trace_event *ev, const char *text, size_t len);

struct proto_trace_filter {
    enum proto_trace_side side;
    /* server: peer network; family 0: any peer */
    uint8_t family;
    uint8_t net[16];
    unsigned prefix;
    /* client: "" matches anything */
    char domain[PROTO_TRACE_NAME_MAX + 1], site[PROTO_TRACE_NAME_MAX + 1], source[PROTO_TRACE_NAME_MAX + 1];
};

/* proto_trace_filter_cidr - "127.0.0.0/8", "::1", "2001:db8::/32"; 0, or -EINVAL */
int proto_trace_filter_cidr(struct proto_trace_filter *f, const char *text);
/* proto_trace_name_ok - a domain/site/source name an event or a filter may carry */
bool proto_trace_name_ok(const char *s, size_t n);
bool proto_trace_filter_match(const struct proto_trace_filter *f, const struct proto_trace_event *ev);

/*
 * The role-side prefilter: the supervisor publishes a summary of the active filters in the segment
 * header (shm_header.trace_filters, a sequence lock on trace_gen) so that a session no tracer wants
 * sends nothing. It is a hint, over-inclusive by design: names are 32-bit hashes, and a slot a role
 * cannot make sense of (a bad family or prefix: someone scribbled on it) matches everything; the
 * supervisor's own filters decide what is shown.
 */
#define PROTO_TRACE_SHM_FILTERS 8
#define PROTO_TRACE_SHM_EMPTY 0xffu

struct proto_trace_shm_filter {
    uint8_t side;   /* enum proto_trace_side; PROTO_TRACE_SHM_EMPTY: unused slot */
    uint8_t family; /* server: 0 any peer, 4, 6 */
    uint8_t prefix;
    uint8_t reserved;
    uint8_t net[16];
    uint32_t domain_hash, site_hash, source_hash; /* client: 0 any (proto_trace_name_hash) */
};
_Static_assert(sizeof(struct proto_trace_shm_filter) == 32, "trace filter slot layout changed");

/* proto_trace_name_hash - a name's prefilter hash (domain and site: any case); never 0 for a name */
uint32_t proto_trace_name_hash(const char *name, bool fold_case);
void proto_trace_shm_filter_set(struct proto_trace_shm_filter *out, const struct proto_trace_filter *f);
/* proto_trace_shm_wanted - some slot may want the event (see above) */
bool proto_trace_shm_wanted(const struct proto_trace_shm_filter *fs, size_t n, const struct proto_trace_event *ev);

/* proto_trace_event_json - one event as the admin API streams it (heap, no newline); role and worker
 * are the supervisor's (it knows who sent the datagram), never the event's */
char *proto_trace_event_json(const struct proto_trace_event *ev, const char *role, unsigned worker);
/* proto_trace_dir_text - "<-", "->", "--" */
const char *proto_trace_dir_text(enum proto_trace_dir d);

#endif
