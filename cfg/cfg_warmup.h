/*
 * cfg_warmup - the [warmup."SOURCE"] tables of ringmail.toml (internal to cfg/cfg*.c; roles use cfg.h)
 */
#ifndef RINGMAIL_CFG_WARMUP_H
#define RINGMAIL_CFG_WARMUP_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

struct cfg_errs;

/* cfg_warmup_apply - a file's [warmup] table replaces the list (after [[egress_source]] is read) */
void cfg_warmup_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *t);
void cfg_warmup_copy(struct cfg *dst, const struct cfg *src);
void cfg_warmup_fini(struct cfg *c);

#endif
