/*
 * cfg_dlv - the delivery tables of ringmail.toml (internal to common/cfg*.c; roles use cfg.h)
 */
#ifndef RINGMAIL_CFG_DLV_H
#define RINGMAIL_CFG_DLV_H

#include "cfg.h"

void cfg_dlv_default(struct cfg *c);
void cfg_dlv_copy(struct cfg *dst, const struct cfg *src);
void cfg_dlv_fini(struct cfg *c);

#endif
