/*
 * proto_env - envelope record encoding and strict decoding (format in proto_env.h)
 *
 * Decoding first copies the input into private memory: the bytes may sit in the arena, where a
 * peer can still write them. Then two passes run over that copy: the first checks everything and
 * sizes one allocation, the second fills it. Only the first pass makes decisions, and the copy
 * cannot change between the passes, so the second never sees anything the first did not accept.
 */
#include "common/proto_env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "common/proto_wire.h"

#define REC_MAGIC0 'R'
#define REC_MAGIC1 'M'
#define REC_HEAD_LEN 28 /* magic, version, flags, created_ms, body_size, last_attempt_ms */
#define REC_HEAD_LEN_V1 20 /* without last_attempt_ms */
#define REC_CRC_LEN 4
/* smallest recipient entry: state, attempts, addr_len, one address byte */
#define REC_RCPT_MIN 8
/* smallest metadata entry: key_len, one key byte, value_len */
#define REC_META_MIN 4

/* ---- encoding helpers ---- */

static void put_u8(struct buf *b, uint8_t v)
{
    buf_append(b, &v, 1);
}

static void put_le(struct buf *b, uint64_t v, int bytes)
{
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, t, (size_t)bytes);
}

/* ---- CRC-32C, bitwise-generated table ---- */

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
    __atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t proto_env_crc32c(uint32_t crc, const void *p, size_t n)
{
    /* two threads racing here compute the same table; the race is benign */
    if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
        crc_init();
    const uint8_t *s = p;
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- validation shared by encode and decode ---- */

static bool addr_ok(const uint8_t *s, size_t n)
{
    if (n > PROTO_ENV_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool key_ok(const uint8_t *s, size_t n)
{
    if (n == 0 || n > PROTO_ENV_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool value_ok(const uint8_t *s, size_t n)
{
    return n <= PROTO_ENV_VALUE_MAX && memchr(s, '\0', n) == NULL;
}

/* ---- encode ---- */

int proto_env_encode(const struct proto_env *rec, struct buf *out)
{
    if (rec->sender == NULL || (rec->flags & ~PROTO_ENV_F_ALL) != 0)
        return -EINVAL;
    if (rec->rcpt_count == 0 || rec->rcpt_count > PROTO_ENV_RCPT_MAX || rec->rcpts == NULL)
        return -EINVAL;
    if (rec->meta_count > PROTO_ENV_META_MAX || (rec->meta_count > 0 && rec->meta == NULL))
        return -EINVAL;
    size_t sender_len = strlen(rec->sender);
    if (!addr_ok((const uint8_t *)rec->sender, sender_len))
        return -EINVAL;
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        const struct proto_env_rcpt *r = &rec->rcpts[i];
        if (r->addr == NULL || r->state >= PROTO_RCPT__MAX)
            return -EINVAL;
        size_t n = strlen(r->addr);
        if (n == 0 || !addr_ok((const uint8_t *)r->addr, n))
            return -EINVAL;
    }
    for (uint32_t i = 0; i < rec->meta_count; i++) {
        const struct proto_env_meta *m = &rec->meta[i];
        if (m->key == NULL || m->value == NULL)
            return -EINVAL;
        if (!key_ok((const uint8_t *)m->key, strlen(m->key)) || strlen(m->value) > PROTO_ENV_VALUE_MAX)
            return -EINVAL;
    }

    buf_reset(out);
    put_u8(out, REC_MAGIC0);
    put_u8(out, REC_MAGIC1);
    put_u8(out, PROTO_ENV_VERSION);
    put_u8(out, rec->flags);
    put_le(out, rec->created_ms, 8);
    put_le(out, rec->body_size, 8);
    put_le(out, rec->last_attempt_ms, 8);
    put_le(out, sender_len, 2);
    buf_append(out, rec->sender, sender_len);
    put_le(out, rec->rcpt_count, 4);
    for (uint32_t i = 0; i < rec->rcpt_count; i++) {
        const struct proto_env_rcpt *r = &rec->rcpts[i];
        size_t n = strlen(r->addr);
        put_u8(out, r->state);
        put_le(out, r->attempts, 4);
        put_le(out, n, 2);
        buf_append(out, r->addr, n);
    }
    put_le(out, rec->meta_count, 2);
    for (uint32_t i = 0; i < rec->meta_count; i++) {
        const struct proto_env_meta *m = &rec->meta[i];
        size_t kn = strlen(m->key), vn = strlen(m->value);
        put_u8(out, (uint8_t)kn);
        buf_append(out, m->key, kn);
        put_le(out, vn, 2);
        buf_append(out, m->value, vn);
    }
    put_le(out, proto_env_crc32c(0, out->data, out->len), 4);
    return 0;
}

/* ---- decode ---- */

struct rd {
    const uint8_t *p;
    size_t left;
};

static bool rd_le(struct rd *r, int bytes, uint64_t *v)
{
    if (r->left < (size_t)bytes)
        return false;
    uint64_t x = 0;
    for (int i = bytes - 1; i >= 0; i--)
        x = (x << 8) | r->p[i];
    r->p += bytes;
    r->left -= (size_t)bytes;
    *v = x;
    return true;
}

static bool rd_bytes(struct rd *r, size_t n, const uint8_t **s)
{
    if (r->left < n)
        return false;
    *s = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

/*
 * One pass over the body after the head. With fill == NULL it validates and counts; with
 * fill set it writes arrays and strings (the input was already accepted).
 */
struct fill {
    struct proto_env *rec;
    char *area;
};

static const char *rec_walk(struct rd *r, uint32_t *rcpts, uint32_t *metas, size_t *str_bytes,
    struct fill *fill)
{
    uint64_t n, v;
    const uint8_t *s;
    size_t strs = 0;

    if (!rd_le(r, 2, &n))
        return "truncated sender length";
    if (!rd_bytes(r, n, &s))
        return "truncated sender";
    if (!addr_ok(s, n))
        return "bad sender";
    strs += n + 1;
    if (fill)
        fill->rec->sender = proto_wire_str(&fill->area, s, n);

    uint64_t count;
    if (!rd_le(r, 4, &count))
        return "truncated recipient count";
    if (count == 0)
        return "no recipients";
    if (count > PROTO_ENV_RCPT_MAX || count > r->left / REC_RCPT_MIN)
        return "recipient count too large";
    for (uint64_t i = 0; i < count; i++) {
        uint64_t state, attempts;
        if (!rd_le(r, 1, &state) || !rd_le(r, 4, &attempts) || !rd_le(r, 2, &n))
            return "truncated recipient";
        if (state >= PROTO_RCPT__MAX)
            return "unknown recipient state";
        if (n == 0)
            return "empty recipient";
        if (!rd_bytes(r, n, &s))
            return "truncated recipient address";
        if (!addr_ok(s, n))
            return "bad recipient address";
        strs += n + 1;
        if (fill) {
            struct proto_env_rcpt *rc = &fill->rec->rcpts[i];
            rc->state = (uint8_t)state;
            rc->attempts = (uint32_t)attempts;
            rc->addr = proto_wire_str(&fill->area, s, n);
        }
    }
    *rcpts = (uint32_t)count;

    uint64_t mcount;
    if (!rd_le(r, 2, &mcount))
        return "truncated metadata count";
    if (mcount > PROTO_ENV_META_MAX || mcount > r->left / REC_META_MIN)
        return "metadata count too large";
    for (uint64_t i = 0; i < mcount; i++) {
        const uint8_t *k;
        uint64_t kn;
        if (!rd_le(r, 1, &kn) || !rd_bytes(r, kn, &k))
            return "truncated metadata key";
        if (!key_ok(k, kn))
            return "bad metadata key";
        if (!rd_le(r, 2, &v) || !rd_bytes(r, v, &s))
            return "truncated metadata value";
        if (!value_ok(s, v))
            return "bad metadata value";
        strs += kn + 1 + v + 1;
        if (fill) {
            struct proto_env_meta *m = &fill->rec->meta[i];
            m->key = proto_wire_str(&fill->area, k, kn);
            m->value = proto_wire_str(&fill->area, s, v);
        }
    }
    *metas = (uint32_t)mcount;
    if (r->left != 0)
        return "trailing bytes";
    *str_bytes = strs;
    return NULL;
}

/* decode_private - the checks and the fill, over bytes nobody else can write; NULL or the reason */
static const char *decode_private(const uint8_t *p, size_t len, struct proto_env *out, int *rc)
{
    if (p[0] != REC_MAGIC0 || p[1] != REC_MAGIC1)
        return "bad magic";
    if (p[2] < PROTO_ENV_VERSION_MIN || p[2] > PROTO_ENV_VERSION) {
        *rc = -EPROTONOSUPPORT;
        return "unknown format version";
    }
    size_t head = p[2] == 1 ? REC_HEAD_LEN_V1 : REC_HEAD_LEN;
    if (len < head + REC_CRC_LEN)
        return "truncated header";
    size_t body_len = len - REC_CRC_LEN;
    uint32_t want = (uint32_t)p[body_len] | (uint32_t)p[body_len + 1] << 8 |
        (uint32_t)p[body_len + 2] << 16 | (uint32_t)p[body_len + 3] << 24;
    if (proto_env_crc32c(0, p, body_len) != want)
        return "checksum mismatch";
    if ((p[3] & ~PROTO_ENV_F_ALL) != 0)
        return "unknown flags";

    struct rd r = { p + head, body_len - head };
    uint32_t rcpts = 0, metas = 0;
    size_t str_bytes = 0;
    const char *err = rec_walk(&r, &rcpts, &metas, &str_bytes, NULL);
    if (err != NULL)
        return err;

    /* every count was bounded by the bytes present, so these sizes cannot overflow */
    size_t rcpt_sz = (size_t)rcpts * sizeof(struct proto_env_rcpt);
    size_t meta_sz = (size_t)metas * sizeof(struct proto_env_meta);
    uint8_t *mem = xmalloc(rcpt_sz + meta_sz + str_bytes);
    out->version = p[2];
    out->flags = p[3];
    struct rd h = { p + 4, head - 4 };
    rd_le(&h, 8, &out->created_ms);
    rd_le(&h, 8, &out->body_size);
    if (head == REC_HEAD_LEN)
        rd_le(&h, 8, &out->last_attempt_ms);
    out->rcpt_count = rcpts;
    out->rcpts = (struct proto_env_rcpt *)mem;
    out->meta_count = metas;
    out->meta = metas ? (struct proto_env_meta *)(mem + rcpt_sz) : NULL;
    out->_mem = mem;
    struct fill f = { out, (char *)(mem + rcpt_sz + meta_sz) };
    r = (struct rd){ p + head, body_len - head };
    const char *again = rec_walk(&r, &rcpts, &metas, &str_bytes, &f);
    (void)again; /* same private bytes, same verdict: NULL */
    return NULL;
}

int proto_env_decode(const void *buf, size_t len, struct proto_env *out, const char **why)
{
    const char *err = "truncated header";
    int rc = -EBADMSG;

    memset(out, 0, sizeof(*out));
    if (buf != NULL && len >= 3) {
        /* the only read of the caller's bytes: everything after works on the copy */
        uint8_t *copy = proto_wire_copy(buf, len);
        err = decode_private(copy, len, out, &rc);
        free(copy);
    }
    if (why)
        *why = err;
    return err ? rc : 0;
}

void proto_env_fini(struct proto_env *rec)
{
    if (rec == NULL)
        return;
    free(rec->_mem);
    memset(rec, 0, sizeof(*rec));
}

/* ---- queries ---- */

const char *proto_env_meta_get(const struct proto_env *rec, const char *key)
{
    for (uint32_t i = 0; i < rec->meta_count; i++)
        if (strcmp(rec->meta[i].key, key) == 0)
            return rec->meta[i].value;
    return NULL;
}

bool proto_env_state_final(uint8_t state)
{
    return state == PROTO_RCPT_DELIVERED || state == PROTO_RCPT_BOUNCED ||
        state == PROTO_RCPT_EXPIRED || state == PROTO_RCPT_ADMIN_BOUNCED;
}

bool proto_env_all_final(const struct proto_env *rec)
{
    for (uint32_t i = 0; i < rec->rcpt_count; i++)
        if (!proto_env_state_final(rec->rcpts[i].state))
            return false;
    return true;
}

const char *proto_env_state_name(uint8_t state)
{
    switch (state) {
    case PROTO_RCPT_QUEUED: return "queued";
    case PROTO_RCPT_DELIVERED: return "delivered";
    case PROTO_RCPT_BOUNCED: return "bounced";
    case PROTO_RCPT_EXPIRED: return "expired";
    case PROTO_RCPT_ADMIN_BOUNCED: return "admin_bounced";
    default: return "unknown";
    }
}
