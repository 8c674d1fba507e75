/*
 * dkim_sign - DKIM-Signature fields (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463)
 *
 * dkim_sign_msg_init() reads a message (header section, empty line, body; line ends as in
 * dkim_canon.h) without copying it: the message is BORROWED until dkim_sign_msg_fini().
 * dkim_sign_add() appends one signature field for a signer: v, a, c, d, s, t, x (when the signer
 * has an expiration), h, bh, b, folded at 78 columns with CRLF TAB and ending in CRLF, ready to be
 * put in front of the message. The body hash is computed once per body canonicalisation and kept
 * in the struct dkim_msg, so several signers of one message hash its body once.
 * h=: the signer's names in order; the k-th time a name appears it signs the k-th instance of that
 * field counted from the bottom (6376 5.4.2), and an instance that does not exist signs its absence
 * (the name stays in h=, the field hashes as nothing): listing From twice forbids a second From.
 * RSA signs the canonical header data with RSASSA-PKCS1-v1_5 over SHA-256; Ed25519 signs the
 * SHA-256 digest of that data with PureEd25519 (RFC 8463 section 3). Returns 0, or -EIO when
 * OpenSSL refused (the key cannot sign); out is then unchanged.
 */
#ifndef RINGMAIL_DKIM_SIGN_H
#define RINGMAIL_DKIM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "base/buf.h"
#include "dkim/dkim_canon.h"

enum dkim_alg {
    DKIM_ALG_RSA_SHA256 = 0,
    DKIM_ALG_ED25519_SHA256 = 1,
};

struct dkim_signer {
    char *name;
    char *domain;   /* d= */
    char *selector; /* s= */
    enum dkim_alg alg;
    enum dkim_canon hcanon, bcanon;
    size_t n_headers;
    char **headers;        /* h=, as configured */
    uint64_t expiration_s; /* x = t + this; 0: no x= */
    EVP_PKEY *key;         /* owned */
};

/* one header field: p[0..len) without its closing line end; the name is p[0..name_len) */
struct dkim_field {
    const char *p;
    size_t len, name_len;
};

struct dkim_msg {
    size_t n_fields;
    struct dkim_field *fields; /* heap, in message order */
    const char *body;          /* after the empty line; borrowed */
    size_t body_len;
    bool have_bh[2];           /* by enum dkim_canon */
    unsigned char bh[2][32];
};

void dkim_sign_msg_init(struct dkim_msg *m, const char *msg, size_t len);
void dkim_sign_msg_fini(struct dkim_msg *m);

/* dkim_sign_from_domain - the domain of the first From field's address, lower case; false when none */
bool dkim_sign_from_domain(const struct dkim_msg *m, char *buf, size_t size);

/* dkim_sign_add - append one DKIM-Signature field for s at time now (seconds since the epoch) */
int dkim_sign_add(struct dkim_msg *m, const struct dkim_signer *s, int64_t now, struct buf *out);

/* dkim_sign_alg_name - "rsa-sha256", "ed25519-sha256" */
const char *dkim_sign_alg_name(enum dkim_alg a);

#endif
