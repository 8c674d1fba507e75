/*
 * cfg_net - the network-facing parts of ringmail.toml: [[listener]], ingress.relay_networks and
 * ingress.relay_domains
 *
 * Each cfg_net_apply_*() checks a whole list and replaces the struct's list only when every entry is
 * good; errors go to the load's error list (cfg_errf) with file:line. Internal to cfg/.
 */
#ifndef RINGMAIL_CFG_NET_H
#define RINGMAIL_CFG_NET_H

#include <stddef.h>

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"

struct cfg_errs;

/* cfg_net_free_domains - frees n strings and the array; (NULL, 0) is a no-op */
void cfg_net_free_domains(char **domains, size_t n);
void cfg_net_apply_cidrs(struct cfg_errs *e, struct cfg_cidr *out, size_t *n_out, const char *key,
                         const struct cfg_toml_node *a);
void cfg_net_apply_domains(struct cfg_errs *e, struct cfg *c, const char *key, const struct cfg_toml_node *a);
void cfg_net_apply_listeners(struct cfg_errs *e, struct cfg *c, const struct cfg_toml_node *a);

#endif
