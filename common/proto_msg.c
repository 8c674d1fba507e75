/*
 * proto_msg - message and Rejection runs: encoding and strict decoding (contract in proto_msg.h)
 */
#include "common/proto_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

int proto_msg_head(const struct proto_env *env, uint64_t msg_len, struct buf *out)
{
    struct buf enc = {0};
    int rc = env->body_size == msg_len ? proto_env_encode(env, &enc) : -EINVAL;

    buf_reset(out);
    if (rc == 0) {
        struct proto_msg_hdr h = {.magic = PROTO_MSG_MAGIC, .version = PROTO_MSG_VERSION,
                                  .env_len = (uint32_t)enc.len, .msg_len = msg_len};
        buf_append(out, &h, sizeof(h));
        buf_append(out, enc.data, enc.len);
    }
    buf_fini(&enc);
    return rc;
}

/* msg_check - NULL or why the run is refused; the header is read once, into *h */
static const char *msg_check(const void *run, size_t len, struct proto_msg_hdr *h, struct proto_env *env)
{
    const char *w = NULL;

    if (!run || len < sizeof(*h))
        return "run shorter than its header";
    memcpy(h, run, sizeof(*h));
    if (h->magic != PROTO_MSG_MAGIC || h->version != PROTO_MSG_VERSION)
        return "bad magic or version";
    /* compare without adding untrusted 64-bit lengths, which could wrap */
    size_t rest = len - sizeof(*h);
    if (h->env_len > rest || h->msg_len != rest - h->env_len)
        return "lengths do not add up to the run";
    if (proto_env_decode((const char *)run + sizeof(*h), h->env_len, env, &w) < 0)
        return w ? w : "envelope does not decode";
    if (env->body_size != h->msg_len) {
        proto_env_fini(env);
        return "envelope size differs from the message";
    }
    return NULL;
}

int proto_msg_decode(const void *run, size_t len, struct proto_msg_run *out, const char **why)
{
    struct proto_msg_hdr h;

    memset(out, 0, sizeof(*out));
    const char *w = msg_check(run, len, &h, &out->env);
    if (why)
        *why = w;
    if (w)
        return -EBADMSG;
    out->body = (const char *)run + sizeof(h) + h.env_len;
    out->body_len = h.msg_len;
    return 0;
}

void proto_msg_fini(struct proto_msg_run *m)
{
    proto_env_fini(&m->env);
    memset(m, 0, sizeof(*m));
}

int proto_msg_rej_encode(const char *const str[PROTO_REJ_STRINGS], const size_t len[PROTO_REJ_STRINGS],
                         int64_t timestamp, struct buf *out)
{
    const char *reply = str[PROTO_REJ_REPLY];
    struct proto_rej_hdr h = {.magic = PROTO_REJ_MAGIC, .version = PROTO_REJ_VERSION, .timestamp = timestamp};

    buf_reset(out);
    if (len[PROTO_REJ_REPLY] >= 3)
        h.code = (uint16_t)((reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0'));
    for (int i = 0; i < PROTO_REJ_STRINGS; i++) {
        h.len[i] = (uint16_t)(len[i] > PROTO_REJ_STRING_MAX ? PROTO_REJ_STRING_MAX : len[i]);
        if (memchr(str[i], '\0', h.len[i]))
            return -EINVAL;
    }
    buf_append(out, &h, sizeof(h));
    for (int i = 0; i < PROTO_REJ_STRINGS; i++)
        buf_append(out, str[i], h.len[i]);
    return 0;
}

/* rej_private - checks and lays out the strings of a run copied to mem (len bytes + one per string) */
static const char *rej_private(char *mem, size_t len, struct proto_rej *out)
{
    struct proto_rej_hdr h;
    size_t total = sizeof(h);

    memcpy(&h, mem, sizeof(h));
    for (int i = 0; i < PROTO_REJ_STRINGS; i++)
        total += h.len[i] <= PROTO_REJ_STRING_MAX ? h.len[i] : (size_t)1 << 40;
    if (h.magic != PROTO_REJ_MAGIC || h.version != PROTO_REJ_VERSION || total != len)
        return "bad header or lengths";
    size_t off[PROTO_REJ_STRINGS], at = sizeof(h);
    for (int i = 0; i < PROTO_REJ_STRINGS; i++) {
        if (memchr(mem + at, '\0', h.len[i]))
            return "NUL in a string";
        off[i] = at;
        at += h.len[i];
    }
    /* NUL-terminate in place, last string first: string i moves i bytes up, into the room the
     * allocation has past the run, and never over a string not yet moved */
    for (int i = PROTO_REJ_STRINGS - 1; i >= 0; i--) {
        char *d = mem + off[i] + i;
        memmove(d, mem + off[i], h.len[i]);
        d[h.len[i]] = '\0';
        out->str[i] = d;
    }
    out->code = h.code;
    out->timestamp = h.timestamp;
    out->_mem = mem;
    return NULL;
}

int proto_msg_rej_decode(const void *run, size_t len, struct proto_rej *out, const char **why)
{
    const char *w = "run shorter than its header";

    memset(out, 0, sizeof(*out));
    if (run && len >= sizeof(struct proto_rej_hdr)) {
        /* one copy, with a byte per string for its terminator; nothing is read from the run again */
        char *mem = xmalloc(len + PROTO_REJ_STRINGS);
        memcpy(mem, run, len); /* not proto_wire_copy: the room for the terminators comes with it */
        w = rej_private(mem, len, out);
        if (w) {
            free(mem);
            memset(out, 0, sizeof(*out));
        }
    }
    if (why)
        *why = w;
    return w ? -EBADMSG : 0;
}

void proto_msg_rej_fini(struct proto_rej *r)
{
    free(r->_mem);
    memset(r, 0, sizeof(*r));
}
