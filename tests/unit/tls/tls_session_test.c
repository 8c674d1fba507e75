/*
 * tls_session_test - the memory-BIO TLS layer in process: handshakes, bulk data, certificates,
 * hostile input, bounds
 *
 * A server conn and a client conn shuttle ciphertext through the API in random chunk sizes; 1 MB
 * each way must arrive byte-exact, then close_notify both ways. Contexts: the self-signed one (and
 * its warning log line), one from chain+key files that this test generates with the OpenSSL API (a
 * CA and an RSA leaf), verification by CA file and host name, refusal by name, by the system store,
 * and every setup error. Hostile input: garbage, protocol confusion, mutated ClientHellos and
 * garbage inside an established session must give TLS_STATE_FAILED with a reason. Bounds: input
 * and output caps. Exit 0 pass, 1 fail. TLS_TEST_SEED=n repeats a run's random choices.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls.h"
#include "tests/lib/check.h"
#include "tests/unit/tls/tls_test.h"

/* ---- random ---- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* rnd_range - uniform enough in [lo, hi] */
static size_t rnd_range(size_t lo, size_t hi)
{
    return lo + (size_t)(rnd() % (hi - lo + 1));
}

static void rnd_fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rnd();
}

/* ---- in-process plumbing ---- */

/* shuttle - move what `from` wants to send into `to`, in random chunks, as far as `to` takes it */
static int shuttle(struct tls_conn *from, struct tls_conn *to)
{
    unsigned char buf[20000];
    while (tls_pending_cipher(from) > 0) {
        size_t want = rnd_range(1, sizeof(buf));
        size_t room = tls_feed_room(to);
        if (want > room)
            want = room;
        if (want == 0)
            return -ENOBUFS;
        size_t n = tls_take_cipher(from, buf, want);
        if (n == 0)
            return -EIO;
        int rc = tls_feed_cipher(to, buf, n);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool handshake(struct tls_conn *s, struct tls_conn *c)
{
    for (int i = 0; i < 20; i++) {
        shuttle(c, s);
        shuttle(s, c);
        if (tls_conn_state(s) == TLS_STATE_ESTABLISHED && tls_conn_state(c) == TLS_STATE_ESTABLISHED &&
            tls_pending_cipher(s) == 0 && tls_pending_cipher(c) == 0)
            return true;
        if (tls_conn_state(s) == TLS_STATE_FAILED || tls_conn_state(c) == TLS_STATE_FAILED)
            return false;
    }
    return false;
}

struct side {
    struct tls_conn *c;
    unsigned char *out; /* what this side sends */
    size_t out_off;
    unsigned char *in; /* what it received */
    size_t in_len;
};

/* pump - one side writes a random chunk and reads everything available in random sizes */
static bool pump(struct side *me, size_t total, const char *name)
{
    if (me->out_off < total) {
        size_t n = rnd_range(1, 70000);
        if (n > total - me->out_off)
            n = total - me->out_off;
        ssize_t w = tls_write_plain(me->c, me->out + me->out_off, n);
        if (w < 0 && w != -EAGAIN) {
            fprintf(stderr, "%s: write %zd: %s\n", name, w, err_or(me->c));
            return false;
        }
        if (w > 0)
            me->out_off += (size_t)w;
    }
    for (;;) {
        size_t cap = rnd_range(1, 40000);
        if (cap > total - me->in_len)
            cap = total - me->in_len;
        if (cap == 0)
            return true;
        ssize_t r = tls_read_plain(me->c, me->in + me->in_len, cap);
        if (r == -EAGAIN)
            return true;
        if (r <= 0) {
            fprintf(stderr, "%s: read %zd: %s\n", name, r, err_or(me->c));
            return false;
        }
        if ((size_t)r > cap) {
            fprintf(stderr, "%s: read returned %zd for a %zu-byte buffer\n", name, r, cap);
            return false;
        }
        me->in_len += (size_t)r;
    }
}

/* transfer - total random bytes each way at once; true when both arrive byte-exact */
static bool transfer(struct tls_conn *s, struct tls_conn *c, size_t total)
{
    struct side a = {s, xmalloc(total), 0, xmalloc(total), 0};
    struct side b = {c, xmalloc(total), 0, xmalloc(total), 0};
    bool ok = true;
    rnd_fill(a.out, total);
    rnd_fill(b.out, total);
    for (int i = 0; ok && (a.in_len < total || b.in_len < total); i++) {
        if (i > 200000) {
            fprintf(stderr, "transfer: no progress (server got %zu, client got %zu)\n", a.in_len, b.in_len);
            ok = false;
            break;
        }
        ok = pump(&a, total, "server") && pump(&b, total, "client");
        int r1 = shuttle(a.c, b.c), r2 = shuttle(b.c, a.c);
        if ((r1 != 0 && r1 != -ENOBUFS) || (r2 != 0 && r2 != -ENOBUFS)) {
            fprintf(stderr, "transfer: shuttle %d %d: %s / %s\n", r1, r2, err_or(s), err_or(c));
            ok = false;
        }
    }
    if (ok) {
        ok = memcmp(a.in, b.out, total) == 0 && memcmp(b.in, a.out, total) == 0;
        if (!ok)
            fprintf(stderr, "transfer: received bytes differ from the bytes sent\n");
    }
    free(a.out);
    free(a.in);
    free(b.out);
    free(b.in);
    return ok;
}

/* close_both - close_notify from `first`, answered by the other side */
static void close_both(struct tls_conn *first, struct tls_conn *second)
{
    unsigned char tmp[64];
    tls_shutdown(first);
    CHECK(tls_pending_cipher(first) > 0, "no close_notify queued");
    CHECK(shuttle(first, second) == 0, "close_notify not delivered");
    CHECK(tls_read_plain(second, tmp, sizeof(tmp)) == 0, "peer's close_notify not seen as end of data");
    CHECK(tls_conn_state(second) == TLS_STATE_CLOSED, "state %d", tls_conn_state(second));
    CHECK(tls_write_plain(second, "x", 1) == -EPIPE, "write after close_notify accepted");
    tls_shutdown(second);
    CHECK(tls_pending_cipher(second) > 0, "no close_notify in answer");
    CHECK(shuttle(second, first) == 0, "answer not delivered");
    CHECK(tls_read_plain(first, tmp, sizeof(tmp)) == 0, "closed conn reads data");
}

/* ---- tests: contexts and in-process sessions ---- */

static struct tls_ctx *client_ctx(enum tls_verify v, const char *ca)
{
    struct tls_ctx *ctx = NULL;
    char *err = NULL;
    int rc = tls_client_ctx_new(v, ca, &ctx, &err);
    CHECK(rc == 0 && ctx != NULL, "client ctx: %d %s", rc, err ? err : "");
    free(err);
    return ctx;
}

/* the self-signed context: warning line on stderr, 1 MB each way, close_notify both ways */
static struct tls_ctx *test_self_signed(void)
{
    struct tls_ctx *srv = NULL;
    char *err = NULL;
    char *logpath = tmp_path("log.txt");
    int fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int saved = dup(STDERR_FILENO);
    CHECK(fd >= 0 && saved >= 0, "log capture: %s", strerror(errno));
    dup2(fd, STDERR_FILENO);
    int rc = tls_server_ctx_new(NULL, NULL, "mx.ringmail.test", &srv, &err);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char logbuf[2048] = "";
    ssize_t n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
    logbuf[n > 0 ? n : 0] = '\0';
    close(fd);
    free(logpath);
    CHECK(rc == 0 && srv != NULL, "self-signed ctx: %d %s", rc, err ? err : "");
    free(err);
    if (srv == NULL)
        return NULL;
    CHECK(tls_ctx_self_signed(srv), "not flagged self-signed");
    CHECK(strstr(logbuf, "SELF-SIGNED") && strstr(logbuf, "mx.ringmail.test") && strstr(logbuf, "warn"),
          "log line missing or unclear: [%s]", logbuf);

    struct tls_ctx *cli = client_ctx(TLS_VERIFY_NONE, NULL);
    struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
    struct tls_conn *c = tls_conn_new(cli, TLS_ROLE_CLIENT, "mx.ringmail.test");
    CHECK(tls_pending_cipher(s) == 0, "server spoke first");
    CHECK(tls_pending_cipher(c) > 0, "client has no ClientHello queued");
    unsigned char tmp[16];
    CHECK(tls_read_plain(s, tmp, sizeof(tmp)) == -EAGAIN, "server read before any input");
    CHECK(tls_write_plain(c, "x", 1) == -EAGAIN, "write accepted during the handshake");
    CHECK(tls_conn_version(c) == NULL && tls_conn_cipher(s) == NULL, "version before the handshake");
    bool hs = handshake(s, c);
    CHECK(hs, "handshake: server %s, client %s", err_or(s), err_or(c));
    if (hs) {
        const char *v = tls_conn_version(s);
        CHECK(v && (strcmp(v, "TLSv1.3") == 0 || strcmp(v, "TLSv1.2") == 0), "version %s", v ? v : "NULL");
        CHECK(v && tls_conn_version(c) && strcmp(v, tls_conn_version(c)) == 0, "versions differ");
        CHECK(tls_conn_cipher(s) && tls_conn_cipher(s)[0] && tls_conn_cipher_bits(s) >= 128, "cipher %s/%d",
              tls_conn_cipher(s) ? tls_conn_cipher(s) : "NULL", tls_conn_cipher_bits(s));
        CHECK(!tls_conn_peer_verified(c), "self-signed peer counted as verified");
        CHECK(transfer(s, c, 1u << 20), "1 MB each way");
        close_both(c, s);
    }
    tls_conn_free(s);
    tls_conn_free(c);

    /* a verifying client must refuse it, whatever the data path wanted */
    struct tls_ctx *vcli = client_ctx(TLS_VERIFY_PEER, NULL);
    s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
    c = tls_conn_new(vcli, TLS_ROLE_CLIENT, "mx.ringmail.test");
    CHECK(!handshake(s, c), "verifying client accepted a self-signed certificate");
    CHECK(tls_conn_state(c) == TLS_STATE_FAILED && strstr(err_or(c), "verify"), "client: %s", err_or(c));
    if (getenv("TLS_TEST_VERBOSE"))
        fprintf(stderr, "self-signed, verifying client: %s; server: %s\n", err_or(c), err_or(s));
    CHECK(tls_write_plain(c, "x", 1) == -EPROTO && tls_read_plain(c, tmp, 1) == -EPROTO,
          "failed conn usable");
    CHECK(tls_feed_cipher(c, "x", 1) == -EPROTO, "failed conn takes input");
    /* the alert reaches the server, which fails with the client's reason */
    shuttle(c, s);
    CHECK(tls_conn_state(s) == TLS_STATE_FAILED, "server state %d", tls_conn_state(s));
    tls_conn_free(s);
    tls_conn_free(c);

    /* a verifying client without a name to check is refused before it sends anything */
    c = tls_conn_new(vcli, TLS_ROLE_CLIENT, NULL);
    CHECK(tls_conn_state(c) == TLS_STATE_FAILED && tls_pending_cipher(c) == 0, "verify without a name");
    tls_conn_free(c);
    tls_ctx_free(vcli);
    tls_ctx_free(cli);
    return srv;
}

struct ctx_err_case {
    const char *name;
    const char *cert, *key, *host;
    int rc;
    const char *in_err;
};

/* contexts from files: verification by CA and name; every refused configuration */
static struct tls_ctx *test_files(void)
{
    char *chain = tmp_path("chain.pem"), *key = tmp_path("key.pem"), *ca = tmp_path("ca.pem");
    char *cakey = tmp_path("cakey.pem"), *garbage = tmp_path("garbage.pem");
    char *missing = tmp_path("missing.pem");
    struct ctx_err_case bad[] = {
        {"certificate without key", chain, NULL, NULL, -EINVAL, "set together"},
        {"key without certificate", NULL, key, NULL, -EINVAL, "set together"},
        {"key with an empty certificate", "", key, NULL, -EINVAL, "set together"},
        {"both empty, no host for self-signed", "", "", NULL, -EINVAL, "host name"},
        {"missing certificate", missing, key, NULL, -ENOENT, "missing.pem"},
        {"missing key", chain, missing, NULL, -ENOENT, "missing.pem"},
        {"garbage certificate", garbage, key, NULL, -EINVAL, "garbage.pem"},
        {"certificate as key", chain, chain, NULL, -EINVAL, "private_key"},
        {"key of another certificate", chain, cakey, NULL, -EINVAL, "does not match"},
        {"self-signed without host", NULL, NULL, NULL, -EINVAL, "host name"},
        {"self-signed with config injection", NULL, NULL, "a.test,DNS:evil.test", -EINVAL, "host name"},
        {"self-signed empty host", NULL, NULL, "", -EINVAL, "host name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tls_ctx *ctx = (struct tls_ctx *)1;
        char *err = NULL;
        int rc = tls_server_ctx_new(bad[i].cert, bad[i].key, bad[i].host, &ctx, &err);
        CHECK(rc == bad[i].rc && ctx == NULL && err && strstr(err, bad[i].in_err), "%s: rc %d, err %s",
              bad[i].name, rc, err ? err : "NULL");
        free(err);
        tls_ctx_free(ctx == (struct tls_ctx *)1 ? NULL : ctx);
    }
    struct tls_ctx *bad_ca = (struct tls_ctx *)1;
    char *err = NULL;
    CHECK(tls_client_ctx_new(TLS_VERIFY_PEER, missing, &bad_ca, &err) != 0 && bad_ca == NULL && err,
          "bad CA file");
    free(err);
    err = NULL;

    struct tls_ctx *srv = NULL;
    int rc = tls_server_ctx_new(chain, key, NULL, &srv, &err);
    CHECK(rc == 0 && srv, "files ctx: %d %s", rc, err ? err : "");
    free(err);
    if (srv) {
        CHECK(!tls_ctx_self_signed(srv), "files ctx flagged self-signed");
        struct tls_ctx *vcli = client_ctx(TLS_VERIFY_PEER, ca);
        struct tls_ctx *ocli = client_ctx(TLS_VERIFY_NONE, NULL);
        struct tls_ctx *ocli_ca = client_ctx(TLS_VERIFY_NONE, ca);
        struct {
            const char *name;
            struct tls_ctx *cli;
            const char *peer;
            bool ok, verified;
        } cases[] = {
            {"verified by CA file and name", vcli, "mx.test", true, true},
            {"name with the trailing dot of DNS", vcli, "mx.test.", true, true},
            {"name mismatch refused", vcli, "other.test", false, false},
            {"opportunistic, CA not in the system store", ocli, "mx.test", true, false},
            {"opportunistic without a name", ocli, NULL, true, false},
            {"opportunistic, would have verified", ocli_ca, "mx.test", true, true},
            {"opportunistic, name would not verify", ocli_ca, "other.test", true, false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            if (cases[i].cli == NULL)
                continue;
            struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
            struct tls_conn *c = tls_conn_new(cases[i].cli, TLS_ROLE_CLIENT, cases[i].peer);
            bool hs = handshake(s, c);
            CHECK(hs == cases[i].ok, "%s: handshake %d, client %s", cases[i].name, hs, err_or(c));
            if (!cases[i].ok && getenv("TLS_TEST_VERBOSE"))
                fprintf(stderr, "%s: %s\n", cases[i].name, err_or(c));
            if (!cases[i].ok)
                CHECK(tls_conn_error(c) && strstr(tls_conn_error(c), "verify"), "%s: reason %s",
                      cases[i].name, err_or(c));
            CHECK(tls_conn_peer_verified(c) == cases[i].verified, "%s: verified %d", cases[i].name,
                  tls_conn_peer_verified(c));
            if (hs)
                CHECK(transfer(s, c, 65536), "%s: data", cases[i].name);
            tls_conn_free(s);
            tls_conn_free(c);
        }
        tls_ctx_free(vcli);
        tls_ctx_free(ocli);
        tls_ctx_free(ocli_ca);
    }
    free(chain);
    free(key);
    free(ca);
    free(cakey);
    free(garbage);
    free(missing);
    return srv;
}

/* ---- tests: hostile input ---- */

static bool state_sane(struct tls_conn *c, bool must_fail, const char *name)
{
    enum tls_state st = tls_conn_state(c);
    if (st == TLS_STATE_FAILED) {
        const char *e = tls_conn_error(c);
        if (e == NULL || e[0] == '\0') {
            fprintf(stderr, "%s: failed without a reason\n", name);
            return false;
        }
        return true;
    }
    if (must_fail || st == TLS_STATE_ESTABLISHED) {
        fprintf(stderr, "%s: state %d, expected failed\n", name, st);
        return false;
    }
    return true;
}

/* feed - in random chunks, stopping at the first refusal */
static int feed_chunks(struct tls_conn *c, const unsigned char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t n = rnd_range(1, len - off);
        int rc = tls_feed_cipher(c, p + off, n);
        if (rc != 0)
            return rc;
        off += n;
    }
    unsigned char tmp[64];
    ssize_t r = tls_read_plain(c, tmp, sizeof(tmp));
    return r >= 0 ? 0 : (int)r;
}

static void test_garbage(struct tls_ctx *srv, struct tls_ctx *cli)
{
    static const unsigned char huge_record[] = {0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00};
    static const unsigned char appdata_first[] = {0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5};
    /* SSL 2.0 CLIENT-HELLO: 9 header bytes, 21 bytes of cipher specs, 16 of challenge */
    unsigned char sslv2_hello[2 + 46] = {0x80, 46, 0x01, 0x00, 0x02, 0x00, 21, 0x00, 0x00, 0x00, 16};
    rnd_fill(sslv2_hello + 11, sizeof(sslv2_hello) - 11);
    /* empty records cost the peer nothing, so OpenSSL stops counting them at a small limit */
    unsigned char empty_records[5 * 200];
    for (size_t i = 0; i < sizeof(empty_records); i += 5)
        memcpy(empty_records + i, (const unsigned char[]){0x16, 0x03, 0x03, 0x00, 0x00}, 5);
    static const unsigned char alert_only[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
    struct {
        const char *name;
        const unsigned char *p;
        size_t len;
    } fixed[] = {
        {"SMTP command", (const unsigned char *)"EHLO client.test\r\nMAIL FROM:<a@b>\r\n", 35},
        {"HTTP request", (const unsigned char *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27},
        {"record length 65535", huge_record, sizeof(huge_record)},
        {"application data before the handshake", appdata_first, sizeof(appdata_first)},
        {"SSLv2 ClientHello", sslv2_hello, sizeof(sslv2_hello)},
        {"fatal alert instead of a hello", alert_only, sizeof(alert_only)},
        {"200 empty handshake records", empty_records, sizeof(empty_records)},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
        int rc = feed_chunks(s, fixed[i].p, fixed[i].len);
        CHECK(rc == -EPROTO && state_sane(s, true, fixed[i].name), "%s: rc %d, %s", fixed[i].name, rc,
              err_or(s));
        if (getenv("TLS_TEST_VERBOSE"))
            fprintf(stderr, "%s: %s\n", fixed[i].name, err_or(s));
        tls_conn_free(s);
    }

    unsigned char junk[6000];
    for (int i = 0; i < 40; i++) {
        size_t len = rnd_range(5, sizeof(junk));
        rnd_fill(junk, len);
        junk[0] = (unsigned char)(rnd() % 0x14); /* not a TLS content type */
        /* OpenSSL checks the type once the whole record is in: a plausible header may still wait */
        size_t rec_len = 5 + ((size_t)junk[3] << 8 | junk[4]);
        bool may_wait = junk[1] == 0x03 && rec_len > len;
        struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
        feed_chunks(s, junk, len);
        CHECK(state_sane(s, !may_wait, "random bytes"), "random case %d, %zu bytes", i, len);
        tls_conn_free(s);
    }

    /* a real ClientHello with bytes flipped or cut: any outcome but a crash or a silent success */
    struct tls_conn *c0 = tls_conn_new(cli, TLS_ROLE_CLIENT, "mx.test");
    unsigned char hello[4096];
    size_t hello_len = tls_take_cipher(c0, hello, sizeof(hello));
    CHECK(hello_len > 100 && tls_pending_cipher(c0) == 0, "ClientHello of %zu bytes", hello_len);
    tls_conn_free(c0);
    int failed = 0;
    for (int i = 0; i < 300 && hello_len > 0; i++) {
        unsigned char m[4096];
        size_t len = hello_len;
        memcpy(m, hello, len);
        int flips = (int)rnd_range(1, 4);
        for (int f = 0; f < flips; f++)
            m[rnd_range(0, len - 1)] ^= (unsigned char)rnd_range(1, 255);
        if (rnd() % 4 == 0)
            len = rnd_range(1, len);
        struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
        feed_chunks(s, m, len);
        CHECK(state_sane(s, false, "mutated ClientHello"), "mutation %d", i);
        failed += tls_conn_state(s) == TLS_STATE_FAILED;
        tls_conn_free(s);
    }
    CHECK(failed > 50, "only %d of 300 mutated hellos failed: the checks are not running", failed);

    /* the client side: a plaintext SMTP reply where the ServerHello should be */
    struct tls_conn *c = tls_conn_new(cli, TLS_ROLE_CLIENT, NULL);
    tls_take_cipher(c, hello, sizeof(hello));
    CHECK(tls_feed_cipher(c, "220 ready\r\n", 11) == -EPROTO && state_sane(c, true, "plaintext reply"),
          "client fed plaintext: %s", err_or(c));
    tls_conn_free(c);

    /* garbage inside an established session, in a well-formed record header */
    struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
    c = tls_conn_new(cli, TLS_ROLE_CLIENT, NULL);
    if (handshake(s, c)) {
        unsigned char rec[5 + 64] = {0x17, 0x03, 0x03, 0x00, 64};
        rnd_fill(rec + 5, 64);
        unsigned char tmp[128];
        CHECK(tls_feed_cipher(s, rec, sizeof(rec)) == 0, "record refused at feed");
        CHECK(tls_read_plain(s, tmp, sizeof(tmp)) == -EPROTO && state_sane(s, true, "forged record"),
              "forged record: %s", err_or(s));
        CHECK(tls_pending_cipher(s) > 0, "no alert queued for the peer");
        shuttle(s, c);
        CHECK(tls_read_plain(c, tmp, sizeof(tmp)) == -EPROTO, "client did not see the alert");
    } else {
        CHECK(false, "handshake for the forged-record case: %s", err_or(s));
    }
    tls_conn_free(s);
    tls_conn_free(c);
}

/* ---- tests: bounds ---- */

static void test_flood(struct tls_ctx *srv, struct tls_ctx *cli)
{
    size_t big = TLS_CIPHER_IN_MAX + 1;
    unsigned char *junk = xcalloc(1, big);
    struct tls_conn *s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
    CHECK(tls_feed_cipher(s, junk, big) == -ENOBUFS, "one feed over the cap accepted");
    CHECK(tls_conn_state(s) == TLS_STATE_HANDSHAKING && tls_feed_room(s) == TLS_CIPHER_IN_MAX,
          "a refused feed changed the conn");
    tls_conn_free(s);
    free(junk);

    /* a peer that keeps sending while nobody reads: refused at the cap, fine again after reading */
    s = tls_conn_new(srv, TLS_ROLE_SERVER, NULL);
    struct tls_conn *c = tls_conn_new(cli, TLS_ROLE_CLIENT, NULL);
    if (!handshake(s, c)) {
        CHECK(false, "flood handshake: %s", err_or(s));
        goto out;
    }
    unsigned char chunk[16384], buf[16384], scratch[16384];
    memset(chunk, 'F', sizeof(chunk));
    size_t fed = 0, sent = 0, got = 0;
    bool refused = false;
    for (int i = 0; i < 1000 && !refused; i++) {
        ssize_t w = tls_write_plain(c, chunk, sizeof(chunk));
        CHECK(w > 0, "client write %zd", w);
        if (w <= 0)
            break;
        sent += (size_t)w;
        while (tls_pending_cipher(c) > 0 && !refused) {
            size_t n = tls_take_cipher(c, buf, sizeof(buf));
            int rc = tls_feed_cipher(s, buf, n);
            if (rc == 0) {
                fed += n;
                continue;
            }
            CHECK(rc == -ENOBUFS, "feed %d", rc);
            refused = true;
            CHECK(fed <= TLS_CIPHER_IN_MAX && fed + n > TLS_CIPHER_IN_MAX, "refused after %zu + %zu bytes",
                  fed, n);
            /* the caller keeps the bytes a refused feed did not take, reads, and feeds them again */
            ssize_t r = tls_read_plain(s, scratch, sizeof(scratch));
            CHECK(r > 0, "read after the refusal: %zd", r);
            got += r > 0 ? (size_t)r : 0;
            CHECK(tls_feed_cipher(s, buf, n) == 0, "feed after reading still refused");
        }
    }
    CHECK(refused, "fed %zu bytes without a refusal", fed);
    shuttle(c, s);
    for (int i = 0; i < 10000 && got < sent; i++) {
        ssize_t r = tls_read_plain(s, buf, sizeof(buf));
        if (r == -EAGAIN) {
            if (shuttle(c, s) != 0 && tls_pending_cipher(c) == 0)
                break;
            continue;
        }
        if (r <= 0)
            break;
        for (ssize_t k = 0; k < r; k++)
            if (buf[k] != 'F') {
                CHECK(false, "byte %zu is %02x", got + (size_t)k, buf[k]);
                break;
            }
        got += (size_t)r;
    }
    CHECK(got == sent, "after the refusal got %zu of %zu bytes", got, sent);

    /* a writer whose output nobody takes: refused at the output cap */
    bool blocked = false;
    for (int i = 0; i < 1000; i++) {
        ssize_t w = tls_write_plain(s, chunk, sizeof(chunk));
        if (w == -EAGAIN) {
            blocked = true;
            break;
        }
        CHECK(w > 0, "write %zd", w);
    }
    CHECK(blocked && tls_pending_cipher(s) <= TLS_CIPHER_OUT_MAX + 1024, "output %zu bytes, blocked %d",
          tls_pending_cipher(s), blocked);
    CHECK(tls_write_plain(s, chunk, 1) == -EAGAIN, "write past the cap");
out:
    tls_conn_free(s);
    tls_conn_free(c);
}

int main(void)
{
    const char *seed = getenv("TLS_TEST_SEED");
    rng = seed ? strtoull(seed, NULL, 10) : clock_real_ns();
    if (rng == 0)
        rng = 1;
    fprintf(stderr, "tls_session_test: TLS_TEST_SEED=%llu\n", (unsigned long long)rng);
    log_init("tls_session_test", -1);
    signal(SIGPIPE, SIG_IGN);

    if (!cert_dir_make())
        return 1;
    struct tls_ctx *self_signed = test_self_signed();
    struct tls_ctx *files = test_files();
    struct tls_ctx *cli = client_ctx(TLS_VERIFY_NONE, NULL);
    if (self_signed && cli) {
        test_garbage(self_signed, cli);
        test_flood(self_signed, cli);
    }
    tls_ctx_free(cli);
    tls_ctx_free(self_signed);
    tls_ctx_free(files);
    remove_tmp();
    CHECK_EXIT();
}
