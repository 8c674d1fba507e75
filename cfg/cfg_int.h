/*
 * cfg_int - internal to the cfg files: the error list of one load (filled by cfg_errf(), see cfg_dlv.h)
 */
#ifndef RINGMAIL_CFG_INT_H
#define RINGMAIL_CFG_INT_H

#include "base/buf.h"

#define CFG_IDENT_MAX 64 /* names of listeners, sources, pools, queues */

struct cfg_errs {
    const char *name; /* the file name in every message */
    struct buf text;  /* "FILE:LINE: message\n" lines */
    unsigned count;   /* errors seen, also past the ones kept */
};

#endif
