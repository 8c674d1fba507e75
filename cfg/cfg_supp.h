/*
 * cfg_supp - the [suppression] table of ringmail.toml (internal to cfg/cfg*.c; roles read struct cfg)
 *
 *   [suppression]
 *   enabled = true              # checked at RCPT, at store and before each delivery attempt
 *   on_rcpt = "reject"          # or "drop": 250, then a Suppressed record and nothing sent
 *   auto_hard_bounce = true     # a Bounce of a class in hard_classes adds the recipient
 *   hard_classes = ["InvalidRecipient", "BadDomain", "InactiveMailbox"]
 */
#ifndef RINGMAIL_CFG_SUPP_H
#define RINGMAIL_CFG_SUPP_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

struct cfg_errs;

void cfg_supp_default(struct cfg *c);
void cfg_supp_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t);
void cfg_supp_copy(struct cfg *dst, const struct cfg *src);
void cfg_supp_fini(struct cfg *c);

#endif
