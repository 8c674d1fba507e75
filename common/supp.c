/*
 * supp - suppression entries, keyed hash, snapshot file, CSV / JSON Lines (contract in supp.h)
 */
#include "common/supp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/sorted.h"
#include "base/utf8.h"

static const char *const reason_names[SUPP_REASON__MAX] = {"hard_bounce", "complaint", "oob", "unsubscribe", "admin"};

const char *supp_reason_name(enum supp_reason r)
{
    return (unsigned)r < SUPP_REASON__MAX ? reason_names[r] : "?";
}

bool supp_reason_parse(const char *s, enum supp_reason *out)
{
    for (unsigned i = 0; i < SUPP_REASON__MAX; i++)
        if (strcmp(s, reason_names[i]) == 0) {
            *out = (enum supp_reason)i;
            return true;
        }
    return false;
}

bool supp_norm_addr(const char *addr, size_t len, char *out)
{
    const char *at = NULL;
    if (len < 3 || len > SUPP_ADDR_MAX || !utf8_valid(addr, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return false;
        if (c == '@')
            at = addr + i;
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[len] = '\0';
    /* the last '@' splits: a quoted local part may hold one */
    return at && at != addr && at != addr + len - 1;
}

bool supp_valid_tenant(const char *t, size_t len)
{
    if (len > SUPP_TENANT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

bool supp_valid_source(const char *s, size_t len)
{
    if (len > SUPP_SOURCE_MAX || !utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

size_t supp_key(const char *tenant, const char *addr, char *out)
{
    size_t t = strlen(tenant), a = strlen(addr);
    ASSERT(t <= SUPP_TENANT_MAX && a <= SUPP_ADDR_MAX);
    memcpy(out, tenant, t);
    out[t] = '\0';
    memcpy(out + t + 1, addr, a);
    return t + 1 + a;
}

bool supp_key_split(const char *key, size_t klen, char *tenant, char *addr)
{
    const char *z = klen ? memchr(key, '\0', klen) : NULL;
    if (!z)
        return false;
    size_t t = (size_t)(z - key), a = klen - t - 1;
    if (!supp_valid_tenant(key, t) || !supp_norm_addr(z + 1, a, addr))
        return false;
    memcpy(tenant, key, t);
    tenant[t] = '\0';
    return true;
}

/* ---- keyed hash ---- */

struct supp_hasher {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    uint8_t key[16];
};

struct supp_hasher *supp_hasher_new(const uint8_t key[16])
{
    struct supp_hasher *h = xcalloc(1, sizeof(*h));
    memcpy(h->key, key, 16);
    h->mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    h->ctx = h->mac ? EVP_MAC_CTX_new(h->mac) : NULL;
    if (!h->ctx)
        fatal("supp: OpenSSL has no SIPHASH");
    return h;
}

void supp_hasher_free(struct supp_hasher *h)
{
    if (!h)
        return;
    EVP_MAC_CTX_free(h->ctx);
    EVP_MAC_free(h->mac);
    free(h);
}

uint64_t supp_hasher_hash(struct supp_hasher *h, const char *tenant, const char *addr)
{
    char k[SUPP_KEY_MAX];
    size_t n = supp_key(tenant, addr, k);
    size_t size = 8, outl = 0;
    unsigned char out[16];
    OSSL_PARAM p[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(h->ctx, h->key, sizeof(h->key), p) != 1 || EVP_MAC_update(h->ctx, (unsigned char *)k, n) != 1 ||
        EVP_MAC_final(h->ctx, out, &outl, sizeof(out)) != 1 || outl != 8)
        fatal("supp: SIPHASH failed");
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | out[i];
    return v;
}

/* ---- snapshot ---- */

struct snap_hdr {
    char magic[8];
    uint32_t version;
    uint32_t hdr_size;
    uint64_t count;
    uint8_t key[16];
    uint8_t sha256[32];
};
_Static_assert(sizeof(struct snap_hdr) == 72, "snapshot header layout");

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        fatal("supp: SHA-256 failed");
}

void supp_snap_encode(const uint8_t key[16], const uint64_t *h, size_t n, struct buf *out)
{
    struct snap_hdr hdr = {.version = 1, .hdr_size = sizeof(hdr), .count = n};
    memcpy(hdr.magic, SUPP_SNAP_MAGIC, 8);
    memcpy(hdr.key, key, 16);
    sha256(n ? (const void *)h : "", n * sizeof(*h), hdr.sha256);
    out->len = 0;
    buf_append(out, &hdr, sizeof(hdr));
    if (n)
        buf_append(out, h, n * sizeof(*h));
}

int supp_snap_parse(const void *data, size_t len, struct supp_snap *out, const char **why)
{
    struct snap_hdr hdr;
    memset(out, 0, sizeof(*out));
    if (len < sizeof(hdr))
        return *why = "shorter than its header", -EINVAL;
    memcpy(&hdr, data, sizeof(hdr));
    if (memcmp(hdr.magic, SUPP_SNAP_MAGIC, 8) != 0 || hdr.version != 1 || hdr.hdr_size != sizeof(hdr))
        return *why = "not a version 1 suppression snapshot", -EINVAL;
    if (hdr.count > SUPP_SNAP_MAX_ENTRIES || len - sizeof(hdr) != hdr.count * sizeof(uint64_t))
        return *why = "its size does not match its count", -EINVAL;
    size_t n = (size_t)hdr.count;
    uint64_t *h = n ? xmalloc(n * sizeof(*h)) : NULL;
    if (n)
        memcpy(h, (const char *)data + sizeof(hdr), n * sizeof(*h));
    uint8_t sum[32];
    sha256(n ? (const void *)h : "", n * sizeof(*h), sum);
    if (memcmp(sum, hdr.sha256, 32) != 0) {
        free(h);
        return *why = "checksum mismatch", -EINVAL;
    }
    for (size_t i = 1; i < n; i++)
        if (h[i - 1] >= h[i]) {
            free(h);
            return *why = "hashes out of order", -EINVAL;
        }
    memcpy(out->key, hdr.key, 16);
    out->h = h;
    out->n = n;
    return 0;
}

size_t supp_snap_lower_bound(const struct supp_snap *s, uint64_t h)
{
    return u64_lower_bound(s->h, s->n, h);
}

bool supp_snap_has(const struct supp_snap *s, uint64_t h)
{
    size_t lo = supp_snap_lower_bound(s, h);
    return lo < s->n && s->h[lo] == h;
}

void supp_snap_fini(struct supp_snap *s)
{
    free(s->h);
    memset(s, 0, sizeof(*s));
}

void supp_view_init(struct supp_view *v, const char *path)
{
    memset(v, 0, sizeof(*v));
    v->path = xstrdup(path);
}

void supp_view_fini(struct supp_view *v)
{
    supp_snap_fini(&v->snap);
    supp_hasher_free(v->hasher);
    free(v->path);
    memset(v, 0, sizeof(*v));
}

void supp_view_refresh(struct supp_view *v, uint64_t now_ns)
{
    struct stat st;
    if (now_ns < v->next_check_ns)
        return;
    v->next_check_ns = now_ns + SUPP_VIEW_CHECK_MS * 1000000ull;
    if (stat(v->path, &st) < 0)
        return; /* none yet (the spool writes one at start): nothing is suppressed here, the spool still checks */
    uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
    if (v->dev == (uint64_t)st.st_dev && v->ino == (uint64_t)st.st_ino && v->size == (uint64_t)st.st_size &&
        v->mtime_ns == mt)
        return;
    v->dev = (uint64_t)st.st_dev;
    v->ino = (uint64_t)st.st_ino;
    v->size = (uint64_t)st.st_size;
    v->mtime_ns = mt;
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_all(v->path, sizeof(struct snap_hdr) + (size_t)SUPP_SNAP_MAX_ENTRIES * 8, &data, &len);
    if (rc < 0) {
        log_warn("suppression snapshot %s unreadable: %s; the previous one stays", v->path, strerror(-rc));
        return;
    }
    struct supp_snap s;
    const char *why = NULL;
    rc = supp_snap_parse(data, len, &s, &why);
    free(data);
    if (rc < 0) {
        log_warn("suppression snapshot %s refused: %s; the previous one stays", v->path, why);
        return;
    }
    if (!v->hasher || memcmp(v->snap.key, s.key, 16) != 0) {
        supp_hasher_free(v->hasher);
        v->hasher = supp_hasher_new(s.key);
    }
    supp_snap_fini(&v->snap);
    v->snap = s;
    v->loaded = true;
}

bool supp_view_maybe(struct supp_view *v, const char *tenant, const char *addr)
{
    char a[SUPP_ADDR_MAX + 1];
    if (!v->loaded || v->snap.n == 0 || !supp_norm_addr(addr, strlen(addr), a))
        return false;
    if (supp_snap_has(&v->snap, supp_hasher_hash(v->hasher, "", a)))
        return true;
    return tenant && tenant[0] && supp_valid_tenant(tenant, strlen(tenant)) &&
           supp_snap_has(&v->snap, supp_hasher_hash(v->hasher, tenant, a));
}

/* ---- CSV and JSON Lines ---- */

/* number - unix seconds, digits only, at most 2^40 (year 36812) */
static bool number(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0) {
        *out = 0;
        return true;
    }
    if (n > 13)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (1ull << 40))
        return false;
    *out = v;
    return true;
}

/* fill - the text fields checked and copied */
static int fill(struct supp_entry *e, const char *addr, size_t an, const char *tenant, size_t tn, const char *reason,
                size_t rn, const char *source, size_t sn, const char **why)
{
    char r[16];
    memset(e, 0, sizeof(*e));
    if (!supp_norm_addr(addr, an, e->addr))
        return *why = "address is not local@domain (printable, no blanks, at most 320 bytes)", -EINVAL;
    if (!supp_valid_tenant(tenant, tn))
        return *why = "tenant is not 0..64 of letters, digits, '.', '_', '-'", -EINVAL;
    memcpy(e->tenant, tenant, tn);
    e->tenant[tn] = '\0';
    e->reason = SUPP_REASON_ADMIN;
    if (rn) {
        if (rn >= sizeof(r))
            return *why = "reason is not hard_bounce, complaint, oob, unsubscribe or admin", -EINVAL;
        memcpy(r, reason, rn);
        r[rn] = '\0';
        if (!supp_reason_parse(r, &e->reason))
            return *why = "reason is not hard_bounce, complaint, oob, unsubscribe or admin", -EINVAL;
    }
    if (!supp_valid_source(source, sn))
        return *why = "source_id is not text of at most 256 bytes", -EINVAL;
    memcpy(e->source, source, sn);
    e->source[sn] = '\0';
    return 0;
}

/* csv_fields - split one CSV line into at most max fields (copied into store, each NUL-terminated) */
static int csv_fields(const char *s, size_t len, char *store, const char **f, size_t *fl, size_t max, size_t *nf)
{
    size_t i = 0, o = 0, n = 0;
    for (;;) {
        if (n == max)
            return -EINVAL;
        f[n] = store + o;
        size_t start = o;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len)
                    return -EINVAL; /* unterminated quote */
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') {
                        store[o++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                store[o++] = s[i++];
            }
            if (i < len && s[i] != ',')
                return -EINVAL;
        } else {
            while (i < len && s[i] != ',') {
                if (s[i] == '"')
                    return -EINVAL;
                store[o++] = s[i++];
            }
        }
        fl[n] = o - start;
        store[o++] = '\0';
        n++;
        if (i >= len)
            break;
        i++; /* the comma */
        if (i == len) { /* a trailing comma: one more empty field */
            if (n == max)
                return -EINVAL;
            f[n] = store + o;
            fl[n] = 0;
            store[o++] = '\0';
            n++;
            break;
        }
    }
    *nf = n;
    return 0;
}

static int csv_line(bool first, const char *line, size_t len, struct supp_entry *e, const char **why)
{
    if (first && len >= 7 && memcmp(line, "address", 7) == 0 && (len == 7 || line[7] == ','))
        return 0; /* the header */
    char store[SUPP_LINE_MAX + 8];
    const char *f[7];
    size_t fl[7], nf = 0;
    if (csv_fields(line, len, store, f, fl, 7, &nf) < 0)
        return *why = "not a CSV line of at most 7 fields (address,tenant,reason,source_id,first_seen,last_seen,"
                      "expires)",
               -EINVAL;
    static const char empty[] = "";
    for (size_t i = nf; i < 7; i++)
        f[i] = empty, fl[i] = 0;
    int rc = fill(e, f[0], fl[0], f[1], fl[1], f[2], fl[2], f[3], fl[3], why);
    if (rc < 0)
        return rc;
    if (!number(f[4], fl[4], &e->first_seen) || !number(f[5], fl[5], &e->last_seen) ||
        !number(f[6], fl[6], &e->expires))
        return *why = "first_seen, last_seen and expires are unix seconds (digits) or empty", -EINVAL;
    return 1;
}

/* str_member - an optional string member; false when present and not a string */
static bool str_member(const json_t *o, const char *k, const char **s, size_t *n)
{
    json_t *v = json_object_get(o, k);
    *s = "";
    *n = 0;
    if (!v)
        return true;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return false;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return true;
}

static bool num_member(const json_t *o, const char *k, uint64_t *out)
{
    json_t *v = json_object_get(o, k);
    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1ll << 40))
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

int supp_entry_from_json(const void *obj, struct supp_entry *e, const char **why)
{
    const json_t *o = obj;
    const char *a, *t, *r, *s, *key;
    size_t an, tn, rn, sn;
    json_t *v;
    if (!json_is_object(o))
        return *why = "an entry is a JSON object", -EINVAL;
    json_object_foreach((json_t *)o, key, v) {
        if (strcmp(key, "address") && strcmp(key, "tenant") && strcmp(key, "reason") && strcmp(key, "source_id") &&
            strcmp(key, "first_seen") && strcmp(key, "last_seen") && strcmp(key, "expires"))
            return *why = "unknown member (address, tenant, reason, source_id, first_seen, last_seen, expires)",
                   -EINVAL;
    }
    if (!json_object_get(o, "address"))
        return *why = "address is missing", -EINVAL;
    if (!str_member(o, "address", &a, &an) || !str_member(o, "tenant", &t, &tn) || !str_member(o, "reason", &r, &rn) ||
        !str_member(o, "source_id", &s, &sn))
        return *why = "address, tenant, reason and source_id are strings", -EINVAL;
    int rc = fill(e, a, an, t, tn, r, rn, s, sn, why);
    if (rc < 0)
        return rc;
    if (!num_member(o, "first_seen", &e->first_seen) || !num_member(o, "last_seen", &e->last_seen) ||
        !num_member(o, "expires", &e->expires))
        return *why = "first_seen, last_seen and expires are unix seconds (whole numbers >= 0)", -EINVAL;
    return 0;
}

int supp_fmt_line(bool jsonl, bool first, const char *line, size_t len, struct supp_entry *e, const char **why)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#')
        return 0;
    if (len > SUPP_LINE_MAX)
        return *why = "line longer than 4096 bytes", -EINVAL;
    if (!jsonl)
        return csv_line(first, line, len, e, why);
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return *why = "not JSON", -EINVAL;
    int rc = supp_entry_from_json(o, e, why);
    json_decref(o);
    return rc < 0 ? rc : 1;
}

static void csv_field(struct buf *out, const char *s)
{
    /* quoted when it holds a separator or a quote, or starts like a comment line */
    if (!strpbrk(s, ",\"") && s[0] != '#') {
        buf_puts(out, s);
        return;
    }
    buf_putc(out, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(out, '"');
        buf_putc(out, *s);
    }
    buf_putc(out, '"');
}

void supp_fmt_csv(const struct supp_entry *e, struct buf *out)
{
    csv_field(out, e->addr);
    buf_putc(out, ',');
    csv_field(out, e->tenant);
    buf_printf(out, ",%s,", supp_reason_name(e->reason));
    csv_field(out, e->source);
    buf_printf(out, ",%llu,%llu,%llu\n", (unsigned long long)e->first_seen, (unsigned long long)e->last_seen,
               (unsigned long long)e->expires);
}

void *supp_entry_json(const struct supp_entry *e)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "address", e->addr, "tenant", e->tenant, "reason",
                     supp_reason_name(e->reason), "source_id", e->source, "first_seen", (json_int_t)e->first_seen,
                     "last_seen", (json_int_t)e->last_seen, "expires", (json_int_t)e->expires);
}

void supp_fmt_jsonl(const struct supp_entry *e, struct buf *out)
{
    json_t *o = supp_entry_json(e);
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    buf_puts(out, t);
    buf_putc(out, '\n');
    free(t);
}
