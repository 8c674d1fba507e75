/*
 * dkim_key - the node's DKIM signers: [[dkim]] entries with their private keys loaded, and the
 * choice of signers for one message
 *
 * dkim_key_load() reads every entry's key_file (PEM, PKCS#8 or traditional) once. A key that is
 * missing, unreadable, not a private key, of the other algorithm than the entry says, or an RSA
 * key under DKIM_KEY_RSA_MIN_BITS fails the whole load: *err (heap) gets one "FILE:LINE: dkim:
 * key_file ...: why" line per bad entry, FILE:LINE being the key_file line of ringmail.toml.
 * Returns 0 with *out (NULL when no signer is configured), or -EINVAL / -ENOMEM.
 * dkim_key_select() picks the signers of one message:
 *   - by default every signer whose domain equals the message's RFC 5322 From domain or its
 *     envelope sender (RFC 5321 MAIL FROM) domain, case-insensitively;
 *   - the message metadata dkim_signers (set by the policy, docs/policy.md) changes that: a list
 *     of signer names separated by commas or spaces replaces the choice, the same list starting
 *     with '+' adds to it, and "none" signs nothing. Unknown names are skipped and counted in
 *     *unknown.
 * Each signer is chosen at most once; at most `max` are returned, in configuration order.
 */
#ifndef RINGMAIL_DKIM_KEY_H
#define RINGMAIL_DKIM_KEY_H

#include <stddef.h>

#include "cfg/cfg.h"
#include "dkim/dkim_sign.h"

#define DKIM_KEY_RSA_MIN_BITS 2048
#define DKIM_KEY_META "dkim_signers" /* the metadata key the policy sets */

struct dkim_keyset {
    size_t n;
    struct dkim_signer *s;
};

int dkim_key_load(const struct cfg *c, struct dkim_keyset **out, char **err);
/* dkim_key_free - NULL is a no-op */
void dkim_key_free(struct dkim_keyset *ks);
/* dkim_key_select - from_domain and env_domain may be "" or NULL, meta NULL when not set */
size_t dkim_key_select(const struct dkim_keyset *ks, const char *from_domain, const char *env_domain,
                       const char *meta, const struct dkim_signer **out, size_t max, unsigned *unknown);

#endif
