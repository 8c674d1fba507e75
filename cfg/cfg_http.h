/*
 * cfg_http - [[http_listener]]: the listeners of the HTTP injection API (docs/http-injection.md)
 *
 * cfg_http_apply_listeners() checks the whole array and replaces the struct's list only when every
 * entry is good; cfg_http_check() runs the checks across sections (addresses in use elsewhere, a
 * certificate without its key). Internal to cfg/.
 */
#ifndef RINGMAIL_CFG_HTTP_H
#define RINGMAIL_CFG_HTTP_H

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

struct cfg_errs;

void cfg_http_apply_listeners(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a);
void cfg_http_check(struct cfg_errs *e, const struct cfg *c, const struct cfg_toml_node *root);
/* cfg_http_copy - deep copy of src's listeners into dst (whose fields were copied shallow) */
void cfg_http_copy(struct cfg *dst, const struct cfg *src);
void cfg_http_free(struct cfg *c);

#endif
