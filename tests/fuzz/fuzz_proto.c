/*
 * fuzz_proto - every decoder of a payload that crosses a process boundary (common/proto_*.c), on
 * arbitrary bytes
 *
 * The first input byte selects the decoder, the rest is the payload:
 *   0 envelope (proto_env_decode, versions 1 and 2)   1 message run (proto_msg_decode)   2 Rejection run
 *   3 announce batch                4 attempt result
 *   5 status page (queues, page form)   6 /api/v1/queues (served form)   7 /api/v1/status   8 a reply
 *   9 path configuration (proto_path_decode)
 *   10 TSA response run   11 TSA event run   12 TSA status page (page form)   13 /api/v1/tsa/... (served)
 *   14 admin command channel request (proto_admin_req_decode, the scheduler's side)
 *   15 admin command channel reply (proto_admin_reply_decode, the supervisor's side; the payload's first
 *      byte picks the op whose result it must be)
 *   16 rebind run (proto_rebind_decode, the spool's side)   17 abort record body (proto_rebind_abort_check)
 * The admin JSON documents (proto_status) cross from the scheduler to the supervisor through the status
 * page and from the supervisor to ringctl over HTTP: their decoders get the same treatment, and their
 * encoding is canonical, so encode -> decode -> encode gives the same text.
 * Whatever does not decode must say why and leave its output empty. Whatever decodes must satisfy
 * the contract's invariants and survive a round trip through the contract's one encoder:
 * decode -> encode -> decode gives the same thing (and, where the encoding is canonical, the
 * same bytes).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_admin.h"
#include "common/msgid.h"
#include "common/proto_dlv.h"
#include "common/proto_env.h"
#include "common/proto_msg.h"
#include "common/mta_sts.h"
#include "common/proto_path.h"
#include "common/proto_rebind.h"
#include "common/proto_status.h"
#include "common/proto_tsa.h"
#include "tests/fuzz/fuzz.h"



static bool clean(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool env_equal(const struct proto_env *a, const struct proto_env *b)
{
    struct buf x = {0}, y = {0};
    bool eq = proto_env_encode(a, &x) == 0 && proto_env_encode(b, &y) == 0 && x.len == y.len &&
              memcmp(x.data, y.data, x.len) == 0;
    buf_fini(&x);
    buf_fini(&y);
    return eq;
}

static void fuzz_env(const uint8_t *data, size_t size)
{
    struct proto_env rec;
    const char *why = NULL;

    if (proto_env_decode(data, size, &rec, &why) < 0) {
        CHECK(why && *why && rec._mem == NULL);
        return;
    }
    CHECK(rec.rcpt_count >= 1 && rec.rcpt_count <= PROTO_ENV_RCPT_MAX);
    CHECK((rec.flags & ~PROTO_ENV_F_ALL) == 0);
    CHECK(clean(rec.sender, PROTO_ENV_ADDR_MAX));
    for (uint32_t i = 0; i < rec.rcpt_count; i++) {
        CHECK(rec.rcpts[i].addr[0] && clean(rec.rcpts[i].addr, PROTO_ENV_ADDR_MAX));
        CHECK(rec.rcpts[i].state < PROTO_RCPT__MAX);
    }
    CHECK(rec.meta_count <= PROTO_ENV_META_MAX);
    for (uint32_t i = 0; i < rec.meta_count; i++)
        CHECK(strlen(rec.meta[i].key) <= PROTO_ENV_KEY_MAX &&
              strlen(rec.meta[i].value) <= PROTO_ENV_VALUE_MAX);

    /* the encoding is canonical: what decodes re-encodes to the very same bytes; an older version
     * re-encodes as the current one (version 1: 8 bytes more, last_attempt_ms 0) */
    struct buf a = {0};
    CHECK(proto_env_encode(&rec, &a) == 0);
    if (rec.version == PROTO_ENV_VERSION) {
        CHECK(a.len == size && memcmp(a.data, data, size) == 0);
    } else {
        CHECK(rec.version == 1 && rec.last_attempt_ms == 0 && a.len == size + 8);
    }
    struct proto_env again;
    CHECK(proto_env_decode(a.data, a.len, &again, &why) == 0);
    CHECK(env_equal(&rec, &again));
    proto_env_fini(&again);
    proto_env_fini(&rec);
    buf_fini(&a);
}

static void fuzz_msg(const uint8_t *data, size_t size)
{
    struct proto_msg_run m;
    const char *why = NULL;

    if (proto_msg_decode(data, size, &m, &why) < 0) {
        CHECK(why && *why && m.env._mem == NULL);
        return;
    }
    CHECK(m.env.body_size == m.body_len && m.body + m.body_len == (const char *)data + size);
    struct buf head = {0};
    CHECK(proto_msg_head(&m.env, m.body_len, &head) == 0);
    buf_append(&head, m.body, m.body_len);
    /* an envelope of version 1 (a spool written before version 2) re-encodes 8 bytes longer */
    CHECK(head.len == size + (m.env.version == 1 ? 8 : 0) && memcmp(head.data, data, 4) == 0);
    struct proto_msg_run again;
    CHECK(proto_msg_decode(head.data, head.len, &again, &why) == 0);
    CHECK(env_equal(&m.env, &again.env) && again.body_len == m.body_len &&
          memcmp(again.body, m.body, m.body_len) == 0);
    proto_msg_fini(&again);
    proto_msg_fini(&m);
    buf_fini(&head);
}

static void fuzz_rej(const uint8_t *data, size_t size)
{
    struct proto_rej r;
    const char *why = NULL;

    if (proto_msg_rej_decode(data, size, &r, &why) < 0) {
        CHECK(why && *why && r._mem == NULL);
        return;
    }
    size_t len[PROTO_REJ_STRINGS];
    for (int i = 0; i < PROTO_REJ_STRINGS; i++) {
        len[i] = strlen(r.str[i]);
        CHECK(len[i] <= PROTO_REJ_STRING_MAX);
    }
    struct buf b = {0};
    CHECK(proto_msg_rej_encode(r.str, len, r.timestamp, &b) == 0);
    struct proto_rej again;
    CHECK(proto_msg_rej_decode(b.data, b.len, &again, &why) == 0);
    CHECK(again.timestamp == r.timestamp);
    for (int i = 0; i < PROTO_REJ_STRINGS; i++)
        CHECK(strcmp(again.str[i], r.str[i]) == 0);
    /* the encoder takes the code from the reply line; a run whose code agrees comes back byte for byte */
    if (again.code == r.code)
        CHECK(b.len == size);
    proto_msg_rej_fini(&again);
    proto_msg_rej_fini(&r);
    buf_fini(&b);
}

static void fuzz_ann(const uint8_t *data, size_t size)
{
    struct proto_ann_batch ab;
    const char *why = NULL;

    if (proto_dlv_ann_decode(data, size, &ab, &why) < 0) {
        CHECK(why && *why && ab._mem == NULL && ab.count == 0);
        return;
    }
    struct buf b = {0};
    proto_dlv_ann_begin(&b);
    for (uint32_t i = 0; i < ab.count; i++) {
        const struct proto_ann_entry *e = &ab.entry[i];
        CHECK(e->ann.n_dom >= 1 && e->ann.n_dom <= PROTO_ANN_MAX_DOMAINS);
        for (uint16_t k = 0; k < e->ann.n_dom; k++) {
            const struct proto_ann_item *it = &e->item[k];
            CHECK(strlen(it->queue) == it->dom.queue_len && strlen(it->domain) == it->dom.domain_len);
            CHECK(proto_dlv_ann_name_ok(it->queue, it->dom.queue_len));
            CHECK(proto_dlv_ann_name_ok(it->domain, it->dom.domain_len));
        }
        CHECK(proto_dlv_ann_append(&b, e) == 0);
    }
    CHECK(b.len == size);
    struct proto_ann_batch again;
    CHECK(proto_dlv_ann_decode(b.data, b.len, &again, &why) == 0 && again.count == ab.count);
    for (uint32_t i = 0; i < ab.count; i++) {
        const struct proto_ann_entry *x = &ab.entry[i], *y = &again.entry[i];
        CHECK(memcmp(&x->ann, &y->ann, sizeof(x->ann)) == 0);
        for (uint16_t k = 0; k < x->ann.n_dom; k++) {
            CHECK(memcmp(&x->item[k].dom, &y->item[k].dom, sizeof(x->item[k].dom)) == 0);
            CHECK(strcmp(x->item[k].queue, y->item[k].queue) == 0);
            CHECK(strcmp(x->item[k].domain, y->item[k].domain) == 0);
        }
    }
    proto_dlv_ann_fini(&again);
    proto_dlv_ann_fini(&ab);
    buf_fini(&b);
}

static void fuzz_attempt(const uint8_t *data, size_t size)
{
    struct proto_attempt a;
    const char *why = NULL;

    if (proto_dlv_attempt_decode(data, size, &a, &why) < 0) {
        CHECK(why && *why && a._mem == NULL);
        return;
    }
    CHECK(a.hdr.n_rcpt >= 1);
    for (int i = 0; i < PROTO_ATT_STRINGS; i++)
        CHECK(strlen(a.str[i]) == a.hdr.len[i]);
    for (uint16_t i = 0; i < a.hdr.n_rcpt; i++) {
        CHECK(strlen(a.text[i]) == a.rcpt[i].text_len);
        CHECK(a.rcpt[i].code == 0 || (a.rcpt[i].code >= 200 && a.rcpt[i].code <= 599));
    }
    /* nothing in a run is left to the encoder's choice: encode(decode(x)) is x */
    size_t len = proto_dlv_attempt_size(&a);
    CHECK(len == size);
    uint8_t *run = malloc(len);
    CHECK(proto_dlv_attempt_encode(&a, run, len) == 0);
    CHECK(memcmp(run, data, size) == 0);
    struct proto_attempt again;
    CHECK(proto_dlv_attempt_decode(run, len, &again, &why) == 0);
    CHECK(memcmp(&again.hdr, &a.hdr, sizeof(a.hdr)) == 0);
    CHECK(memcmp(again.rcpt, a.rcpt, a.hdr.n_rcpt * sizeof(*a.rcpt)) == 0);
    proto_dlv_attempt_fini(&again);
    proto_dlv_attempt_fini(&a);
    free(run);
}

/* fuzz_tsa_resp - a response run: refused with a reason, or decoded to strings within the contract and
 * re-encoded to the very same bytes (the encoding is canonical) */
static void fuzz_tsa_resp(const uint8_t *data, size_t size)
{
    struct proto_tsa_resp r;
    const char *why = NULL;
    struct buf b = {0};

    if (proto_tsa_resp_decode(data, size, &r, &why) < 0) {
        CHECK(why && *why && r._mem == NULL);
        return;
    }
    CHECK(r.hdr.kind == PROTO_TSA_TRANSIENT || r.hdr.kind == PROTO_TSA_BOUNCE);
    CHECK(r.str[PROTO_TSA_R_DOMAIN][0] != '\0');
    for (int i = 0; i < PROTO_TSA_R_STRINGS; i++)
        CHECK(strlen(r.str[i]) == r.hdr.len[i] && !strpbrk(r.str[i], "\r\n"));
    CHECK(proto_tsa_resp_encode(&r, &b) == 0);
    /* the header's reserved word is written as 0: compare past it */
    CHECK(b.len == size && memcmp(b.data, data, offsetof(struct proto_tsa_resp_hdr, reserved)) == 0 &&
          memcmp((uint8_t *)b.data + sizeof(struct proto_tsa_resp_hdr), data + sizeof(struct proto_tsa_resp_hdr),
                 size - sizeof(struct proto_tsa_resp_hdr)) == 0);
    buf_fini(&b);
    proto_tsa_resp_fini(&r);
}

/* fuzz_tsa_events - an event run: refused with a reason, or each event within the contract, and the
 * events re-appended to a new run decode to the same events */
static void fuzz_tsa_events(const uint8_t *data, size_t size)
{
    struct proto_tsa_events ev, again;
    const char *why = NULL;
    struct buf b = {0};

    if (proto_tsa_events_decode(data, size, &ev, &why) < 0) {
        CHECK(why && *why && ev._mem == NULL);
        return;
    }
    CHECK(ev.count <= PROTO_TSA_EVENTS_MAX);
    proto_tsa_events_begin(&b);
    for (uint32_t i = 0; i < ev.count; i++) {
        CHECK(ev.ev[i].hdr.expiry_ms > ev.ev[i].hdr.start_ms && ev.ev[i].hdr.action <= PROTO_TSA_ACTION_MAX);
        CHECK(proto_tsa_events_append(&b, &ev.ev[i]) == 0);
    }
    CHECK(proto_tsa_events_decode(b.data, b.len, &again, &why) == 0 && again.count == ev.count);
    for (uint32_t i = 0; i < ev.count && i < again.count; i++)
        for (int k = 0; k < PROTO_TSA_E_STRINGS; k++)
            CHECK(strcmp(ev.ev[i].str[k], again.ev[i].str[k]) == 0);
    proto_tsa_events_fini(&again);
    proto_tsa_events_fini(&ev);
    buf_fini(&b);
}

/* fuzz_status - decode; a decoded document encodes, decodes again and encodes to the same text */
#define FUZZ_STATUS(name, type, dec, enc, fini)                                                             \
    static void name(const uint8_t *data, size_t size)                                                       \
    {                                                                                                        \
        type a, b;                                                                                           \
        char *err = NULL;                                                                                    \
        memset(&a, 0, sizeof(a));                                                                            \
        memset(&b, 0, sizeof(b));                                                                            \
        if (dec((const char *)data, size, &a, &err) != 0) {                                                  \
            CHECK(err && *err);                                                                              \
            free(err);                                                                                       \
            return;                                                                                          \
        }                                                                                                    \
        char *t1 = enc(&a);                                                                                  \
        CHECK(t1 != NULL);                                                                                   \
        CHECK(dec(t1, strlen(t1), &b, &err) == 0);                                                           \
        char *t2 = enc(&b);                                                                                  \
        CHECK(t2 != NULL && strcmp(t1, t2) == 0);                                                            \
        free(t1);                                                                                            \
        free(t2);                                                                                            \
        fini(&a);                                                                                            \
        fini(&b);                                                                                            \
    }

static int queues_page_decode(const char *t, size_t n, struct proto_status_queues *q, char **err)
{
    return proto_status_queues_decode(t, n, false, q, err);
}
static char *queues_page_encode(const struct proto_status_queues *q)
{
    return proto_status_queues_encode(q, false);
}
static int queues_served_decode(const char *t, size_t n, struct proto_status_queues *q, char **err)
{
    return proto_status_queues_decode(t, n, true, q, err);
}
static char *queues_served_encode(const struct proto_status_queues *q)
{
    return proto_status_queues_encode(q, true);
}

FUZZ_STATUS(fuzz_queues_page, struct proto_status_queues, queues_page_decode, queues_page_encode,
            proto_status_queues_fini)
FUZZ_STATUS(fuzz_queues_served, struct proto_status_queues, queues_served_decode, queues_served_encode,
            proto_status_queues_fini)
static int tsa_page_decode(const char *t, size_t n, struct proto_status_tsa *q, char **err)
{
    return proto_status_tsa_decode(t, n, false, q, err);
}
static char *tsa_page_encode(const struct proto_status_tsa *q)
{
    return proto_status_tsa_encode(q, false);
}
static int tsa_served_decode(const char *t, size_t n, struct proto_status_tsa *q, char **err)
{
    return proto_status_tsa_decode(t, n, true, q, err);
}
static char *tsa_served_encode(const struct proto_status_tsa *q)
{
    return proto_status_tsa_encode(q, true);
}

FUZZ_STATUS(fuzz_tsa_page, struct proto_status_tsa, tsa_page_decode, tsa_page_encode, proto_status_tsa_fini)
FUZZ_STATUS(fuzz_tsa_served, struct proto_status_tsa, tsa_served_decode, tsa_served_encode, proto_status_tsa_fini)
FUZZ_STATUS(fuzz_node, struct proto_status_node, proto_status_node_decode, proto_status_node_encode,
            proto_status_node_fini)
FUZZ_STATUS(fuzz_reply, struct proto_status_reply, proto_status_reply_decode, proto_status_reply_encode,
            proto_status_reply_fini)

static void fuzz_path(const uint8_t *data, size_t size)
{
    struct proto_path p;
    const char *why = NULL;

    if (proto_path_decode(data, size, &p, &why) < 0) {
        CHECK(why && *why && p._mem == NULL);
        return;
    }
    CHECK(p.hdr.path >= 1 && p.hdr.path <= PROTO_PATH_ID_MAX && p.hdr.enable_tls <= PROTO_PATH_TLS_DISABLED);
    CHECK(p.hdr.smtp_port > 0 && p.hdr.max_recipients_per_batch >= 1 &&
          p.hdr.max_recipients_per_batch <= PROTO_PATH_RCPTS_MAX);
    CHECK(strlen(p.ehlo_domain) == p.hdr.ehlo_len && clean(p.ehlo_domain, PROTO_PATH_EHLO_MAX));
    CHECK(p.hdr.n_prohibited <= PROTO_PATH_HOSTS_MAX && p.hdr.n_skip <= PROTO_PATH_HOSTS_MAX);
    for (uint16_t i = 0; i < p.hdr.n_prohibited; i++)
        CHECK(proto_path_cidr_ok(p.prohibited[i], strlen(p.prohibited[i])));
    for (uint16_t i = 0; i < p.hdr.n_skip; i++)
        CHECK(proto_path_cidr_ok(p.skip[i], strlen(p.skip[i])));
    CHECK(p.hdr.mta_sts <= MTA_STS_MODE_ENFORCE && p.hdr.n_sts_mx <= MTA_STS_MX_MAX);
    for (uint16_t i = 0; i < p.hdr.n_sts_mx; i++) {
        size_t n = strlen(p.sts_mx[i]);
        CHECK(n >= 1 && n <= MTA_STS_PATTERN_MAX && !strchr(p.sts_mx[i] + (p.sts_mx[i][0] == '*'), '*'));
        for (size_t k = 0; k < n; k++)
            CHECK(p.sts_mx[i][k] != ' ' && (unsigned char)p.sts_mx[i][k] > 0x20 && (unsigned char)p.sts_mx[i][k] < 0x7f);
    }
    /* canonical: what decodes re-encodes to the very same bytes */
    size_t len = proto_path_size(&p);
    uint8_t *again = malloc(len ? len : 1);
    CHECK(len == size && proto_path_encode(&p, again, len) == 0 && memcmp(again, data, size) == 0);
    free(again);
    proto_path_fini(&p);
}

static void fuzz_admin_req(const uint8_t *data, size_t size)
{
    struct proto_admin_req r;
    char *err = NULL;

    if (proto_admin_req_decode((const char *)data, size, &r, &err) < 0) {
        CHECK(err && *err && r.tree == NULL);
        free(err);
        return;
    }
    CHECK(r.id >= 1 && (unsigned)r.op < PROTO_ADMIN_OP__MAX && clean(r.who, PROTO_ADMIN_STR_MAX));
    CHECK(!r.args.reason || clean(r.args.reason, PROTO_ADMIN_STR_MAX));
    struct msgid mid;
    CHECK(!r.args.message || msgid_parse(r.args.message, strlen(r.args.message), &mid) == 0);
    /* what decodes re-encodes, and the encoding is canonical from then on */
    char *a = proto_admin_req_encode(&r);
    CHECK(a != NULL);
    struct proto_admin_req r2;
    CHECK(proto_admin_req_decode(a, strlen(a), &r2, &err) == 0 && r2.id == r.id && r2.op == r.op);
    char *b = proto_admin_req_encode(&r2);
    CHECK(b && strcmp(a, b) == 0);
    free(a);
    free(b);
    proto_admin_req_fini(&r2);
    proto_admin_req_fini(&r);
}

static void fuzz_admin_reply(const uint8_t *data, size_t size)
{
    struct proto_admin_reply r;
    char *err = NULL;
    enum proto_admin_op op = size ? (enum proto_admin_op)(data[0] % PROTO_ADMIN_OP__MAX) : PROTO_ADMIN_QUEUE_SUMMARY;

    if (size == 0)
        return;
    if (proto_admin_reply_decode((const char *)data + 1, size - 1, op, 0, &r, &err) < 0) {
        CHECK(err && *err && r.tree == NULL);
        free(err);
        return;
    }
    CHECK(r.id >= 1 && r.status >= 200 && r.status <= 599 && (r.status == 200) == (r.result != NULL));
    CHECK(r.status == 200 || (r.error && clean(r.error, PROTO_STATUS_DETAIL_MAX)));
    char *a = proto_admin_reply_encode(r.id, r.status, r.error, r.result);
    struct proto_admin_reply r2;
    CHECK(a && proto_admin_reply_decode(a, strlen(a), op, r.id, &r2, &err) == 0 && r2.status == r.status);
    free(a);
    proto_admin_reply_fini(&r2);
    proto_admin_reply_fini(&r);
}

/* fuzz_rebind - a rebind run: refused with a reason, or within the contract, and re-encoded to the same bytes */
static void fuzz_rebind(const uint8_t *data, size_t size)
{
    struct proto_rebind rb, again;
    const char *why = NULL;
    struct buf b = {0};

    if (proto_rebind_decode(data, size, &rb, &why) < 0) {
        CHECK(why && *why && rb.mem == NULL);
        return;
    }
    CHECK(rb.hdr.count >= 1 && rb.hdr.count <= PROTO_REBIND_MAX);
    CHECK(rb.hdr.kind == PROTO_REBIND_QUEUE || rb.hdr.kind == PROTO_REBIND_ROUTE);
    CHECK(strlen(rb.target) == rb.hdr.target_len && strlen(rb.reason) == rb.hdr.reason_len &&
          strlen(rb.who) == rb.hdr.who_len);
    CHECK(proto_rebind_encode((enum proto_rebind_kind)rb.hdr.kind, rb.target, rb.reason, rb.who, rb.ent, rb.hdr.count,
                              &b) == 0);
    CHECK(b.len == size && memcmp(b.data, data, size) == 0); /* the encoding is canonical */
    CHECK(proto_rebind_decode(b.data, b.len, &again, &why) == 0 && again.hdr.count == rb.hdr.count);
    proto_rebind_fini(&again);
    proto_rebind_fini(&rb);
    buf_fini(&b);
}

/* fuzz_abort - an abort record's body: taken only with its reserved words 0, and then as it was */
static void fuzz_abort(const uint8_t *data, size_t size)
{
    struct proto_rec rec = {.type = MSG_SCHEDULER_LEASE_ABORT};
    struct proto_abort a;
    memcpy(rec.body.raw, data, size < PROTO_BODY_SIZE ? size : PROTO_BODY_SIZE);
    bool zero = true;
    for (size_t i = 8; i < PROTO_BODY_SIZE; i++)
        zero &= rec.body.raw[i] == 0;
    bool ok = proto_rebind_abort_check(&rec, &a);
    CHECK(ok == zero);
    CHECK(!ok || (a.lease == rec.body.abort.lease && a.lease_gen == rec.body.abort.lease_gen));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* the payload in its own allocation: a read past its end is a read past the heap block */
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, data + 1, n);
    switch (data[0] % 18) {
    case 0:
        fuzz_env(p, n);
        break;
    case 1:
        fuzz_msg(p, n);
        break;
    case 2:
        fuzz_rej(p, n);
        break;
    case 3:
        fuzz_ann(p, n);
        break;
    case 4:
        fuzz_attempt(p, n);
        break;
    case 5:
        fuzz_queues_page(p, n);
        break;
    case 6:
        fuzz_queues_served(p, n);
        break;
    case 7:
        fuzz_node(p, n);
        break;
    case 10:
        fuzz_tsa_resp(p, n);
        break;
    case 11:
        fuzz_tsa_events(p, n);
        break;
    case 12:
        fuzz_tsa_page(p, n);
        break;
    case 13:
        fuzz_tsa_served(p, n);
        break;
    case 8:
        fuzz_reply(p, n);
        break;
    case 14:
        fuzz_admin_req(p, n);
        break;
    case 15:
        fuzz_admin_reply(p, n);
        break;
    case 16:
        fuzz_rebind(p, n);
        break;
    case 17:
        fuzz_abort(p, n);
        break;
    default: /* 9 */
        fuzz_path(p, n);
        break;
    }
    free(p);
    return 0;
}
