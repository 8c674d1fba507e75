/*
 * tls_test - helpers shared by tls_session_test and tls_peer_test: the certificate files made for the
 * test (a CA and an RSA leaf, written with the OpenSSL API into a temporary directory) and err_or()
 *
 * Static inline: each program includes this once and uses what it needs.
 */
#ifndef RINGMAIL_TEST_TLS_TEST_H
#define RINGMAIL_TEST_TLS_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/mem.h"
#include "tls/tls.h"

static inline const char *err_or(const struct tls_conn *c)
{
    const char *e = tls_conn_error(c);
    return e ? e : "(no error)";
}

/* ---- certificate files made for the test ---- */

static char tmpdir[64];

static inline char *tmp_path(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static inline bool add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return false;
    bool ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static inline X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long serial,
                       const char *san)
{
    X509 *x = X509_new();
    bool ok = x && X509_set_version(x, X509_VERSION_3) == 1 &&
              ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), -60) && X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
              X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0) == 1 &&
              X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x)) == 1 &&
              X509_set_pubkey(x, key) == 1;
    if (ok && issuer == NULL)
        ok = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") &&
             add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (ok && san != NULL)
        ok = add_ext(x, issuer, NID_subject_alt_name, san);
    if (ok)
        ok = X509_sign(x, issuer_key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static inline bool write_pem(const char *name, X509 *c1, X509 *c2, EVP_PKEY *key)
{
    char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    free(path);
    if (f == NULL)
        return false;
    bool ok = true;
    if (c1)
        ok = ok && PEM_write_X509(f, c1) == 1;
    if (c2)
        ok = ok && PEM_write_X509(f, c2) == 1;
    if (key)
        ok = ok && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    return fclose(f) == 0 && ok;
}

static const char *const tmp_files[] = {"chain.pem", "key.pem",     "ca.pem",
                                        "cakey.pem", "garbage.pem", "log.txt"};

static inline bool make_cert_files(void)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *leaf_key = EVP_RSA_gen(2048);
    X509 *ca = ca_key ? make_cert(ca_key, "ringmail test CA", NULL, ca_key, 1, NULL) : NULL;
    X509 *leaf = ca && leaf_key ? make_cert(leaf_key, "mx.test", ca, ca_key, 2, "DNS:mx.test") : NULL;
    bool ok = leaf && write_pem("chain.pem", leaf, ca, NULL) && write_pem("key.pem", NULL, NULL, leaf_key) &&
              write_pem("ca.pem", ca, NULL, NULL) && write_pem("cakey.pem", NULL, NULL, ca_key);
    char *g = tmp_path("garbage.pem");
    FILE *f = fopen(g, "w");
    if (f) {
        fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all \x01\x02\n-----END CERTIFICATE-----\n", f);
        ok = fclose(f) == 0 && ok;
    } else {
        ok = false;
    }
    free(g);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(ca_key);
    return ok;
}

static inline void remove_tmp(void)
{
    for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++) {
        char *p = tmp_path(tmp_files[i]);
        unlink(p);
        free(p);
    }
    rmdir(tmpdir);
}

/* cert_dir_make - the temporary directory and the certificate files in it; false (said why) on failure */
static inline bool cert_dir_make(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tls_test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return false;
    }
    if (!make_cert_files()) {
        fprintf(stderr, "FAIL: cannot generate the test certificates\n");
        remove_tmp();
        return false;
    }
    return true;
}

#endif
