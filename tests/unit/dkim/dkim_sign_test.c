/*
 * dkim_sign_test - signatures checked by an independent verifier, keys, signer choice, the cache
 *
 * Makes RSA-2048 and Ed25519 keys (and a too-small RSA-1024 one), loads them through a [[dkim]]
 * configuration, signs a table of messages (8-bit bodies, long lines, empty and missing bodies, folded
 * and duplicate fields, no final CRLF, trailing whitespace lines) with every algorithm and
 * canonicalisation pair, and has python3-dkim verify each signature (dkim_verify.py; that part skips
 * when python3-dkim is missing). Changed copies (a second From, an extra body line, a changed
 * over-signed field) must fail. Key errors must name the key_file line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/mem.h"
#include "dkim/dkim_cache.h"
#include "dkim/dkim_key.h"
#include "tests/lib/check.h"

struct msg_case {
    const char *name;
    const char *text;
};

static const struct msg_case msgs[] = {
    {"plain", "From: Alice <alice@example.test>\r\nTo: bob@dest.test\r\nSubject: hello\r\n"
              "Date: Mon, 07 Dec 2026 05:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello Bob.\r\n"},
    {"eightbit", "From: alice@example.test\r\nTo: bob@dest.test\r\nSubject: caf\xc3\xa9\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                 "Gr\xc3\xbc\xc3\x9f""e \xe2\x80\x94 \xff\xfe raw\r\n"},
    {"empty-body", "From: alice@example.test\r\nTo: bob@dest.test\r\nSubject: empty\r\n\r\n"},
    {"no-body", "From: alice@example.test\r\nTo: bob@dest.test\r\nSubject: no body\r\n"},
    {"folded", "From: \"Alice\r\n Example\" <alice@example.test>\r\nTo: bob@dest.test,\r\n\tcarol@dest.test\r\n"
               "Subject: a subject that is\r\n  folded over   three\r\n\tlines\r\n\r\nbody\r\n"},
    {"duplicates", "Received: from a\r\nReceived: from b\r\nFrom: alice@example.test\r\nTo: bob@dest.test\r\n"
                   "To: carol@dest.test\r\nSubject: two To\r\n\r\nbody\r\n"},
    {"no-final-crlf", "From: alice@example.test\r\nSubject: x\r\n\r\nline one\r\nline two  "},
    {"trailing-space-lines", "From: alice@example.test\r\nSubject: x\r\n\r\na  \r\n \t\r\n\r\n  \r\n\r\n"},
    {"whitespace-runs", "From:alice@example.test\r\nSubject:\t tabs \t and  spaces \r\n\r\n a \t b  c\r\n\t\r\n"},
};

static char tmpdir[] = "/tmp/dkim-sign-test-XXXXXX";

static char *write_key(const char *name, EVP_PKEY *k)
{
    char *path = xasprintf("%s/%s.pem", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
        FAIL("cannot write %s", path);
    if (f)
        fclose(f);
    return path;
}

/* txt - the DNS TXT record of a public key (RFC 6376 3.6.1, RFC 8463 4) */
static char *txt(EVP_PKEY *k, bool ed)
{
    unsigned char der[1024], *p = der;
    size_t n = sizeof(der);
    if (ed) {
        if (EVP_PKEY_get_raw_public_key(k, der, &n) != 1)
            FAIL("raw public key");
    } else {
        int len = i2d_PUBKEY(k, &p);
        n = len > 0 ? (size_t)len : 0;
    }
    char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, der, (int)n);
    char *t = xasprintf("v=DKIM1; k=%s; p=%s", ed ? "ed25519" : "rsa", b64);
    free(b64);
    return t;
}

static void write_file(const char *name, const char *p, size_t n)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        FAIL("cannot write %s", path);
    if (f)
        fclose(f);
    free(path);
}

static void check_field(const char *name, const char *f, size_t n, bool expiry)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] == '\r' && i + 1 < n && f[i + 1] == '\n') {
            CHECK(col <= 78, "%s: a signature line of %zu characters", name, col);
            CHECK(i + 2 == n || f[i + 2] == '\t', "%s: a folded line does not start with TAB", name);
            col = 0;
            i++;
            continue;
        }
        col++;
    }
    struct buf b = {0};
    buf_append(&b, f, n);
    const char *s = buf_cstr(&b);
    char *unf = xstrdup(s), *o = unf;
    for (const char *p = s; *p; p++)
        if (*p != '\r' && *p != '\n' && *p != '\t')
            *o++ = *p;
    *o = '\0';
    CHECK(strstr(unf, "h=From:From:To:Subject:Date:Message-ID:") != NULL, "%s: default h= over-signs From: %s", name,
          unf);
    CHECK((strstr(unf, " x=") != NULL) == expiry, "%s: x= %s", name, expiry ? "missing" : "unexpected");
    CHECK(strncmp(s, "DKIM-Signature: v=1; a=", 23) == 0, "%s: starts %.30s", name, s);
    free(unf);
    buf_fini(&b);
}

static void test_keys_and_signing(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    if (!rsa || !ed || !small) {
        FAIL("key generation");
        return;
    }
    char *rsa_path = write_key("rsa", rsa), *ed_path = write_key("ed", ed), *small_path = write_key("small", small);
    char *conf = xasprintf("[[dkim]]\ndomain = \"example.test\"\nselector = \"rr\"\nkey_file = \"%s\"\n"
                           "expiration = \"7d\"\n"
                           "[[dkim]]\nname = \"rsa-simple\"\ndomain = \"example.test\"\nselector = \"rs\"\n"
                           "key_file = \"%s\"\nheader_canonicalization = \"simple\"\nbody_canonicalization = \"simple\"\n"
                           "[[dkim]]\ndomain = \"example.test\"\nselector = \"er\"\nkey_file = \"%s\"\n"
                           "algorithm = \"ed25519-sha256\"\nbody_canonicalization = \"simple\"\n"
                           "[[dkim]]\ndomain = \"esp.test\"\nselector = \"es\"\nkey_file = \"%s\"\n"
                           "algorithm = \"ed25519-sha256\"\nheader_canonicalization = \"simple\"\n",
                           rsa_path, rsa_path, ed_path, ed_path);
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(cfg_load_text(&c, conf, strlen(conf), "t.toml", &err) == 0, "config: %s", err ? err : "");
    free(err);
    err = NULL;
    struct dkim_keyset *ks = NULL;
    CHECK(dkim_key_load(&c, &ks, &err) == 0 && ks && ks->n == 4, "keys: %s", err ? err : "");
    free(err);
    err = NULL;
    if (!ks || ks->n != 4)
        goto out;
    CHECK(strcmp(ks->s[0].name, "example.test:rr") == 0, "default name %s", ks->s[0].name);

    /* signer choice */
    const struct dkim_signer *ch[8];
    unsigned unknown = 0;
    CHECK(dkim_key_select(ks, "example.test", "bounce.test", NULL, ch, 8, &unknown) == 3, "by From domain");
    CHECK(dkim_key_select(ks, "other.test", "ESP.test", NULL, ch, 8, &unknown) == 1 && ch[0] == &ks->s[3],
          "by envelope domain");
    CHECK(dkim_key_select(ks, "example.test", "esp.test", NULL, ch, 8, &unknown) == 4, "author and ESP");
    CHECK(dkim_key_select(ks, "example.test", NULL, "esp.test:es", ch, 8, &unknown) == 1 && ch[0] == &ks->s[3],
          "metadata replaces");
    CHECK(dkim_key_select(ks, "other.test", NULL, "+esp.test:es, rsa-simple,nope", ch, 8, &unknown) == 2 &&
              ch[0] == &ks->s[1] && ch[1] == &ks->s[3] && unknown == 1,
          "metadata adds, configuration order, unknown counted");
    CHECK(dkim_key_select(ks, "example.test", NULL, "none", ch, 8, &unknown) == 0, "none");
    CHECK(dkim_key_select(NULL, "example.test", NULL, NULL, ch, 8, &unknown) == 0, "no keyset");

    /* every message with every signer: one file per message with all four signatures. Signed now: the
     * first signer's x= (t= + 7 days) must still be ahead when the verifier reads it (a fixed signing time
     * made this test fail once the wall clock passed it) */
    uint64_t now = (uint64_t)time(NULL);
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        struct dkim_msg m;
        struct buf out = {0};
        const char *text = msgs[i].text;
        dkim_sign_msg_init(&m, text, strlen(text));
        for (size_t s = 0; s < ks->n; s++) {
            size_t before = out.len;
            CHECK(dkim_sign_add(&m, &ks->s[s], now, &out) == 0, "%s: signer %zu", msgs[i].name, s);
            check_field(msgs[i].name, (const char *)out.data + before, out.len - before, s == 0);
        }
        buf_append(&out, text, strlen(text));
        /* the receiver gets the wire form: smtp_stuff adds a missing last CRLF (the canonicaliser counts it) */
        if (text[strlen(text) - 1] != '\n')
            buf_append(&out, "\r\n", 2);
        char *name = xasprintf("%s.eml", msgs[i].name);
        write_file(name, (const char *)out.data, out.len);
        free(name);
        if (i == 0) {
            /* changed copies: a second From (over-signed), a body line, an over-signed field's value */
            char *sig = xstrndup((const char *)out.data, out.len - strlen(text));
            char *a = xasprintf("%sFrom: mallory@evil.test\r\n%s", sig, text);
            char *b = xasprintf("%s%sP.S.\r\n", sig, text);
            char *cc = xasprintf("%sX-Unsigned: fine\r\n%s", sig, text);
            write_file("second-from.bad.eml", a, strlen(a));
            write_file("body-changed.bad.eml", b, strlen(b));
            write_file("unsigned-field-added.eml", cc, strlen(cc));
            free(sig);
            free(a);
            free(b);
            free(cc);
        }
        dkim_sign_msg_fini(&m);
        buf_fini(&out);
    }
    /* the From domain */
    {
        struct dkim_msg m;
        char dom[64];
        const char *t = "To: x@y\r\nFrom: \"A <b@c>\" <Alice@Example.TEST>\r\n\r\n";
        dkim_sign_msg_init(&m, t, strlen(t));
        CHECK(dkim_sign_from_domain(&m, dom, sizeof(dom)) && strcmp(dom, "example.test") == 0, "from domain %s", dom);
        dkim_sign_msg_fini(&m);
        t = "From: nobody\r\n\r\n";
        dkim_sign_msg_init(&m, t, strlen(t));
        CHECK(!dkim_sign_from_domain(&m, dom, sizeof(dom)), "From without an address");
        dkim_sign_msg_fini(&m);
    }
    {
        char *tr = txt(rsa, false), *te = txt(ed, true);
        char *ktxt = xasprintf("rr._domainkey.example.test. %s\nrs._domainkey.example.test. %s\n"
                               "er._domainkey.example.test. %s\nes._domainkey.esp.test. %s\n",
                               tr, tr, te, te);
        write_file("keys.txt", ktxt, strlen(ktxt));
        free(ktxt);
        free(tr);
        free(te);
    }
    const char *script = getenv("RINGMAIL_DKIM_VERIFY");
    if (script && *script) {
        char *cmd = xasprintf("/usr/bin/python3 %s %s", script, tmpdir);
        int rc = system(cmd);
        free(cmd);
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77)
            fprintf(stderr, "note: python3-dkim missing, signatures not verified independently\n");
        else
            CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "python3-dkim verification (files in %s)", tmpdir);
    }

out:
    dkim_key_free(ks);
    cfg_fini(&c);
    free(conf);
    /* key errors: too small, wrong algorithm, missing; each names the key_file line */
    conf = xasprintf("[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"%s\"\n"
                     "[[dkim]]\ndomain = \"b.test\"\nselector = \"s\"\nalgorithm = \"rsa-sha256\"\nkey_file = \"%s\"\n"
                     "[[dkim]]\ndomain = \"c.test\"\nselector = \"s\"\n\nkey_file = \"%s/missing.pem\"\n",
                     small_path, ed_path, tmpdir);
    cfg_default(&c);
    CHECK(cfg_load_text(&c, conf, strlen(conf), "bad.toml", &err) == 0, "config: %s", err ? err : "");
    free(err);
    err = NULL;
    ks = NULL;
    CHECK(dkim_key_load(&c, &ks, &err) < 0 && !ks, "bad keys refused");
    CHECK(err && strstr(err, "bad.toml:4: dkim: key_file") && strstr(err, "1024 bits"), "too small: %s", err);
    CHECK(err && strstr(err, "bad.toml:9:") && strstr(err, "not an RSA key"), "wrong algorithm: %s", err);
    CHECK(err && strstr(err, "bad.toml:14:") && strstr(err, "cannot be read"), "missing: %s", err);
    free(err);
    cfg_fini(&c);
    free(conf);
    free(rsa_path);
    free(ed_path);
    free(small_path);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(small);
}

struct cfg_case {
    const char *text;
    const char *err; /* NULL: valid */
};

static const struct cfg_case cfg_cases[] = {
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nheaders = [\"From\", \"Subject\"]\n", NULL},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\n", "t.toml:1: dkim: every signer needs"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nheaders = [\"Subject\"]\n",
     "t.toml:5: dkim.headers: must include From"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nalgorithm = \"rsa-sha1\"\n",
     "t.toml:5: dkim.algorithm"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s_1\"\nkey_file = \"/k\"\n", "t.toml:3: dkim.selector"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nexpiration = \"soon\"\n",
     "t.toml:5: dkim.expiration"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nbody_canonicalization = \"nofws\"\n",
     "t.toml:5: dkim.body_canonicalization"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\n[[dkim]]\ndomain = \"A.test\"\n"
     "selector = \"s\"\nkey_file = \"/k2\"\n",
     "t.toml:5: dkim: the signer \"a.test:s\" is defined twice"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nheaders = [\"From\", \"DKIM-Signature\"]\n",
     "t.toml:5: dkim.headers: DKIM-Signature"},
    {"[[dkim]]\ndomain = \"a.test\"\nselector = \"s\"\nkey_file = \"/k\"\nsigner = 1\n", "t.toml:5: unknown key \"dkim.signer\""},
};

static void test_cfg(void)
{
    for (size_t i = 0; i < sizeof(cfg_cases) / sizeof(cfg_cases[0]); i++) {
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = cfg_load_text(&c, cfg_cases[i].text, strlen(cfg_cases[i].text), "t.toml", &err);
        if (!cfg_cases[i].err)
            CHECK(rc == 0 && c.n_dkim == 1 && c.dkim[0].n_headers == 2, "case %zu: %s", i, err ? err : "");
        else
            CHECK(rc < 0 && err && strstr(err, cfg_cases[i].err), "case %zu: want %s, got %s", i, cfg_cases[i].err,
                  err ? err : "(valid)");
        /* a copy through a second load keeps the entries */
        if (rc == 0) {
            CHECK(cfg_load_text(&c, "", 0, "empty.toml", &err) == 0 && c.n_dkim == 1 && c.dkim[0].header_relaxed,
                  "case %zu: kept over an empty file", i);
        }
        free(err);
        cfg_fini(&c);
    }
}

static void test_cache(void)
{
    struct dkim_cache c;
    size_t len = 0;
    dkim_cache_init(&c, 3);
    for (uint64_t i = 1; i <= 4; i++)
        dkim_cache_put(&c, i, i * 7, "abc", 3, 0);
    CHECK(dkim_cache_get(&c, 1, 7, 100, &len) == NULL, "the oldest went");
    CHECK(dkim_cache_get(&c, 2, 14, 100, &len) && len == 3, "2 is there");
    dkim_cache_put(&c, 5, 35, "", 0, 0); /* evicts 3, the least recently used (2 was just used) */
    CHECK(dkim_cache_get(&c, 3, 21, 100, &len) == NULL, "3 went");
    CHECK(dkim_cache_get(&c, 2, 14, 100, &len) != NULL, "2 stays");
    CHECK(dkim_cache_get(&c, 5, 35, 100, &len) != NULL && len == 0, "an empty entry is found");
    dkim_cache_put(&c, 6, 1, "xy", 2, 200);
    CHECK(dkim_cache_get(&c, 6, 1, 199, &len) != NULL, "valid before");
    CHECK(dkim_cache_get(&c, 6, 1, 200, &len) == NULL, "expired at valid_until");
    CHECK(c.n == 2, "%zu entries", c.n);
    dkim_cache_clear(&c);
    CHECK(c.n == 0 && dkim_cache_get(&c, 2, 14, 100, &len) == NULL, "cleared");
    dkim_cache_fini(&c);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        SKIP("no temporary directory");
    test_cfg();
    test_cache();
    test_keys_and_signing();
    if (!check_failures) {
        char *cmd = xasprintf("rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
        free(cmd);
    }
    return check_failures ? 1 : 0;
}
