/*
 * ingress_relay - who may send to which domain (RELAY-01/02)
 *
 * A client inside [ingress] relay_networks may send to any domain: that is the sender the node
 * serves, and so may a session that authenticated (AUTH, ingress_auth_cmd.c). Anyone else may send
 * only to [ingress] relay_domains (and Postmaster), and only with a plain address: a '%' or '!' in the local part, an '@' inside a quoted local part, a source route
 * or an address literal are refused, because a downstream host could read them as a route to a
 * third domain. Domains are compared after the parser lowercased them and removed a trailing dot,
 * so "Example.COM." cannot slip past the list.
 */
#include "ingress/ingress.h"

#include <string.h>

bool ingress_relay_allowed(const struct ingress_session *s, const struct smtp_addr *addr, const char **why)
{
    const struct cfg *c = &s->ig->rt->cfg;

    if (s->relay_client || s->authenticated)
        return true;
    if (addr->flags & SMTP_ADDR_POSTMASTER)
        return true;
    if (addr->flags & (SMTP_ADDR_PERCENT | SMTP_ADDR_BANG | SMTP_ADDR_QUOTED_AT | SMTP_ADDR_ROUTE)) {
        *why = "Relay access denied (routing characters in the address)";
        return false;
    }
    if (addr->flags & SMTP_ADDR_LITERAL) {
        *why = "Relay access denied (address literal)";
        return false;
    }
    for (size_t i = 0; i < c->n_relay_domains; i++) {
        if (strcmp(addr->domain, c->relay_domains[i]) == 0)
            return true;
    }
    *why = "Relay access denied";
    return false;
}
