/*
 * ingress_relay - who may send to which domain (RELAY-01/02)
 *
 * A client inside [ingress] relay_networks may send to any domain: that is the sender the node
 * serves, and so may a session that authenticated (AUTH, ingress_auth_cmd.c). Anyone else may send
 * only to [ingress] relay_domains (and Postmaster), and only with a plain address: a '%' or '!' in the local part, an '@' inside a quoted local part, a source route
 * or an address literal are refused, because a downstream host could read them as a route to a
 * third domain. Domains are compared after the parser lowercased them and removed a trailing dot,
 * so "Example.COM." cannot slip past the list. With [ingress] relay_recipients set, such a client may send
 * only to the recipients the file lists for those domains (ingress_rcpts.h): mail for a local part that does
 * not exist is refused at RCPT, not accepted and bounced later to a sender who may be forged (backscatter).
 */
#include "ingress/ingress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

void ingress_relay_load(struct ingress *ig)
{
    const struct cfg *c = &ig->rt->cfg;
    struct ingress_rcpts r;
    char *err = NULL;

    if (!c->ingress_relay_recipients[0]) {
        ingress_rcpts_free(&ig->relay_rcpts);
        ig->relay_rcpts_on = false;
        if (c->n_relay_domains)
            log_warn("[ingress] relay_domains take any local part from anyone: mail for a mailbox that does not "
                     "exist is accepted and bounced later (backscatter); list the recipients in relay_recipients "
                     "or refuse them in smtp_server_rcpt_to");
        return;
    }
    if (ingress_rcpts_load(c->ingress_relay_recipients, &r, &err) < 0) {
        if (!ig->relay_rcpts_on)
            fatal("[ingress] relay_recipients %s:\n%s", c->ingress_relay_recipients, err ? err : "cannot load");
        log_warn("[ingress] relay_recipients %s not reloaded, the previous list stays:\n%s",
                 c->ingress_relay_recipients, err ? err : "");
        free(err);
        return;
    }
    ingress_rcpts_free(&ig->relay_rcpts);
    ig->relay_rcpts = r;
    ig->relay_rcpts_on = true;
    log_info("[ingress] %zu relay recipients from %s", r.n, c->ingress_relay_recipients);
}

void ingress_relay_fini(struct ingress *ig)
{
    ingress_rcpts_free(&ig->relay_rcpts);
}

/* is_postmaster - <Postmaster> (RFC 5321 4.1.1.3), or postmaster@ the node's own host name */
bool ingress_is_postmaster(const struct cfg *c, const struct smtp_addr *a)
{
    if (a->flags & SMTP_ADDR_POSTMASTER)
        return true;
    const char *at = strrchr(a->mailbox, '@');
    return at && (size_t)(at - a->mailbox) == 10 && strncasecmp(a->mailbox, "postmaster", 10) == 0 &&
           strcasecmp(at + 1, c->hostname) == 0;
}

enum ingress_relay_verdict ingress_relay_allowed(const struct ingress_session *s, const struct smtp_addr *addr,
                                                 const char **why)
{
    const struct cfg *c = &s->ig->rt->cfg;

    if (s->relay_client || s->authenticated)
        return INGRESS_RELAY_OK;
    if (ingress_is_postmaster(c, addr))
        return INGRESS_RELAY_OK; /* cmd_rcpt takes it, or refuses it when [ingress] postmaster is not set */
    if (addr->flags & (SMTP_ADDR_PERCENT | SMTP_ADDR_BANG | SMTP_ADDR_QUOTED_AT | SMTP_ADDR_ROUTE)) {
        *why = "Relay access denied (routing characters in the address)";
        return INGRESS_RELAY_DENIED;
    }
    if (addr->flags & SMTP_ADDR_LITERAL) {
        *why = "Relay access denied (address literal)";
        return INGRESS_RELAY_DENIED;
    }
    for (size_t i = 0; i < c->n_relay_domains; i++) {
        if (strcmp(addr->domain, c->relay_domains[i]) != 0)
            continue;
        if (s->ig->relay_rcpts_on && !ingress_rcpts_has(&s->ig->relay_rcpts, addr->mailbox)) {
            *why = "Recipient address rejected: no such user here";
            return INGRESS_RELAY_NO_USER;
        }
        return INGRESS_RELAY_OK;
    }
    *why = "Relay access denied";
    return INGRESS_RELAY_DENIED;
}
