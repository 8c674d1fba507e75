/*
 * cfg_dlv - the delivery tables of ringmail.toml (internal to cfg/cfg*.c; roles use cfg.h)
 */
#ifndef RINGMAIL_CFG_DLV_H
#define RINGMAIL_CFG_DLV_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

/* cfg.c's error list and checks, shared with the delivery tables */
struct cfg_errs;
__attribute__((format(printf, 3, 4))) void cfg_errf(struct cfg_errs *e, unsigned line, const char *fmt, ...);
const char *cfg_quote(char *buf, size_t size, const char *s);
bool cfg_expect(struct cfg_errs *e, const struct cfg_toml_node *v, enum cfg_toml_type t, const char *key,
                const char *what);
bool cfg_int_in(struct cfg_errs *e, const struct cfg_toml_node *v, const char *key, int64_t lo, int64_t hi);

/* cfg_dlv_owns - is this top-level key one of the delivery tables? */
bool cfg_dlv_owns(const char *key);
/* cfg_dlv_apply - read the delivery tables of a parsed file onto c (errors into e) */
void cfg_dlv_apply(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *root);

void cfg_dlv_default(struct cfg *c);
void cfg_dlv_copy(struct cfg *dst, const struct cfg *src);
void cfg_dlv_fini(struct cfg *c);

#endif
