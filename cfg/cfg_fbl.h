/*
 * cfg_fbl - [feedback] and the VERP keys of [dsn] (internal to cfg/; roles read struct cfg)
 *
 * cfg_fbl_apply() reads the [feedback] table (domains, addresses); cfg_fbl_dsn_key() takes one key of
 * [dsn] when it is a VERP key (verp, verp_domain, verp_secret, verp_key_file) and returns false for
 * others; cfg_fbl_check() runs the checks across keys after the whole file was read (VERP on needs a
 * domain and a secret of at least CFG_FBL_SECRET_MIN bytes).
 */
#ifndef RINGMAIL_CFG_FBL_H
#define RINGMAIL_CFG_FBL_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

#define CFG_FBL_SECRET_MIN 16
#define CFG_FBL_MAX 256 /* domains, addresses */

struct cfg_errs;

void cfg_fbl_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t);
bool cfg_fbl_dsn_key(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *v);
void cfg_fbl_check(struct cfg_errs *e, const struct cfg *c, const struct cfg_toml_node *root);
void cfg_fbl_default(struct cfg *c);
void cfg_fbl_copy(struct cfg *dst, const struct cfg *src);
void cfg_fbl_fini(struct cfg *c);

#endif
