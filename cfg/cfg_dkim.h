/*
 * cfg_dkim - the [[dkim]] signers of ringmail.toml (internal to cfg/cfg*.c; roles read struct cfg)
 *
 * cfg_dkim_apply() reads the array of tables: a file's [[dkim]] list replaces the current one as a
 * whole. Every problem is reported as FILE:LINE like the rest of the file; the key files are not
 * read here (dkim/dkim_key.c loads them, naming the key_file line on failure).
 */
#ifndef RINGMAIL_CFG_DKIM_H
#define RINGMAIL_CFG_DKIM_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

struct cfg_errs;

void cfg_dkim_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *array);
void cfg_dkim_copy(struct cfg *dst, const struct cfg *src);
void cfg_dkim_fini(struct cfg *c);

#endif
