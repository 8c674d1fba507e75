/*
 * supp - the suppression list's shared pieces: entry text rules, the keyed hash, the snapshot file the spool
 * publishes for the ingress, and the CSV / JSON Lines forms of an entry (import, export)
 *
 * An entry is (tenant, address): tenant "" is global, otherwise [A-Za-z0-9._-]{1,64}; the address is
 * local@domain of printable ASCII or UTF-8 without blanks, at most SUPP_ADDR_MAX bytes, kept lower-cased
 * (ASCII letters; the local part too: the list errs on the side of not sending).
 *
 * Snapshot (written by the spool, read by the ingress): a header, then `count` 64-bit hashes in strictly
 * ascending order. The hash is SipHash-2-4 (OpenSSL's EVP_MAC "SIPHASH", 8-byte output) under the
 * header's 16-byte key (random per spool start) of "TENANT\0ADDRESS". The reader copies the file into its
 * own memory, then checks magic, version, sizes, the SHA-256 of the hashes and their order before it uses
 * any of it, and reads a hit only as "maybe suppressed": with n entries, a stranger's address collides with
 * probability n / 2^64 (1e-13 for a million entries).
 *
 * CSV: address,tenant,reason,source_id,first_seen,last_seen,expires (all but address optional; fields may
 * be quoted with "..." and "" inside; a first line starting with "address" is a header; times are unix
 * seconds, 0 = unset / never). JSON Lines: one object a line with the same member names.
 * Blank lines and lines starting with '#' are skipped in both.
 */
#ifndef RINGMAIL_SUPP_H
#define RINGMAIL_SUPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SUPP_ADDR_MAX 320
#define SUPP_TENANT_MAX 64
#define SUPP_SOURCE_MAX 256
#define SUPP_KEY_MAX (SUPP_TENANT_MAX + 1 + SUPP_ADDR_MAX)
#define SUPP_LINE_MAX 4096              /* bytes of one import line */
#define SUPP_SNAP_MAX_ENTRIES (64u << 20) /* a larger snapshot is refused */
#define SUPP_SNAP_MAGIC "RMSUPPS1"

enum supp_reason {
    SUPP_REASON_HARD_BOUNCE = 0,
    SUPP_REASON_COMPLAINT = 1,
    SUPP_REASON_OOB = 2,
    SUPP_REASON_UNSUBSCRIBE = 3,
    SUPP_REASON_ADMIN = 4,
    SUPP_REASON__MAX = 5,
};

struct supp_entry {
    char tenant[SUPP_TENANT_MAX + 1];
    char addr[SUPP_ADDR_MAX + 1]; /* lower-cased */
    enum supp_reason reason;
    char source[SUPP_SOURCE_MAX + 1];
    uint64_t first_seen, last_seen, expires; /* unix seconds; 0: unset (expires: never) */
};

const char *supp_reason_name(enum supp_reason r);
bool supp_reason_parse(const char *s, enum supp_reason *out);
/* supp_norm_addr - addr[0..len) lower-cased into out (SUPP_ADDR_MAX + 1 bytes); false when it is no address */
bool supp_norm_addr(const char *addr, size_t len, char *out);
bool supp_valid_tenant(const char *t, size_t len);
/* supp_valid_source - UTF-8 without control characters, at most SUPP_SOURCE_MAX bytes */
bool supp_valid_source(const char *s, size_t len);
/* supp_key - "TENANT\0ADDRESS" into out (SUPP_KEY_MAX bytes); its length */
size_t supp_key(const char *tenant, const char *addr, char *out);
/* supp_key_split - a stored key back into its parts; false when it is not one */
bool supp_key_split(const char *key, size_t klen, char *tenant, char *addr);

/* the keyed hash; one per thread */
struct supp_hasher;
struct supp_hasher *supp_hasher_new(const uint8_t key[16]);
void supp_hasher_free(struct supp_hasher *h);
uint64_t supp_hasher_hash(struct supp_hasher *h, const char *tenant, const char *addr);

/* a validated snapshot: a private copy */
struct supp_snap {
    uint8_t key[16];
    uint64_t *h; /* ascending */
    size_t n;
};
/* supp_snap_encode - the file's bytes for sorted, unique hashes */
void supp_snap_encode(const uint8_t key[16], const uint64_t *h, size_t n, struct buf *out);
/* supp_snap_parse - bytes into *out (copied); 0, or -EINVAL with *why */
int supp_snap_parse(const void *data, size_t len, struct supp_snap *out, const char **why);
bool supp_snap_has(const struct supp_snap *s, uint64_t h);
/* supp_snap_lower_bound - index of the first hash >= h in the sorted s->h (s->n when none) */
size_t supp_snap_lower_bound(const struct supp_snap *s, uint64_t h);
void supp_snap_fini(struct supp_snap *s);

/*
 * supp_view - the ingress's read of the snapshot file: reloaded when the file changed (checked at most every
 * SUPP_VIEW_CHECK_MS), the last good one kept when a new one does not validate (logged once per file)
 */
#define SUPP_VIEW_CHECK_MS 200
struct supp_view {
    char *path;
    struct supp_snap snap;
    struct supp_hasher *hasher;
    bool loaded;
    uint64_t dev, ino, size, mtime_ns;
    uint64_t next_check_ns;
};
void supp_view_init(struct supp_view *v, const char *path);
void supp_view_fini(struct supp_view *v);
void supp_view_refresh(struct supp_view *v, uint64_t now_ns);
/* supp_view_maybe - the address (any case) may be suppressed globally or for tenant (NULL or "": global only) */
bool supp_view_maybe(struct supp_view *v, const char *tenant, const char *addr);

/* supp_fmt_line - one CSV or JSON Lines line (without its line end) into *e; 1 an entry, 0 a line to skip,
 * -EINVAL with *why; first: it is the input's first line (a CSV header is skipped there) */
int supp_fmt_line(bool jsonl, bool first, const char *line, size_t len, struct supp_entry *e, const char **why);
/* supp_fmt_csv / supp_fmt_jsonl - one entry as a line with its '\n' */
void supp_fmt_csv(const struct supp_entry *e, struct buf *out);
void supp_fmt_jsonl(const struct supp_entry *e, struct buf *out);
#define SUPP_CSV_HEADER "address,tenant,reason,source_id,first_seen,last_seen,expires\n"
/* supp_entry_json - the entry as a JSON object (json_t *, new reference) with the member names above */
void *supp_entry_json(const struct supp_entry *e);
/* supp_entry_from_json - a JSON object (json_t *) into *e; 0 or -EINVAL with *why */
int supp_entry_from_json(const void *obj, struct supp_entry *e, const char **why);

#endif
