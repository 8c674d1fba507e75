/*
 * ingress_policy - the Lua policy hooks of an SMTP session (policy/policy_lua.c runs them)
 *
 * One sandboxed state per ingress worker, from [policy] file. Each hook may accept, reject with its
 * own code and text, or fail (error, instruction budget, memory cap): a failure answers 451 4.3.0 for
 * that command or transaction and the worker keeps serving (LUA-01); the reason goes to our log only.
 * Metadata set by connection and EHLO hooks belongs to the session and is copied into each
 * transaction at MAIL; MAIL, RCPT and message hooks add to the transaction's, which the envelope
 * keeps (queue, tenant, campaign, routing_domain and free-form keys).
 */
#include "ingress/ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

static void limits(const struct cfg *c, struct policy_lua_limits *lim)
{
    *lim = (struct policy_lua_limits){
        .instruction_budget = c->policy_instruction_budget,
        .memory_limit = c->policy_memory_limit,
        .time_limit_ns = c->policy_hook_time_limit_ms * 1000000u,
    };
}

void ingress_policy_load(struct ingress *ig)
{
    const struct cfg *c = &ig->rt->cfg;
    struct policy_lua_limits lim;
    char *err = NULL;

    if (!c->policy_file || !c->policy_file[0])
        return;
    limits(c, &lim);
    if (policy_lua_new(c->policy_file, &lim, &ig->policy, &err) < 0)
        fatal("policy %s does not load: %s", c->policy_file, err ? err : "");
    log_info("policy %s loaded", c->policy_file);
}

void ingress_policy_reload(struct ingress *ig)
{
    const struct cfg *c = &ig->rt->cfg;
    struct policy_lua_limits lim;
    char *err = NULL;

    limits(c, &lim);
    if (!ig->policy && (!c->policy_file || !c->policy_file[0]))
        return;
    if (!ig->policy) {
        if (policy_lua_new(c->policy_file, &lim, &ig->policy, &err) < 0)
            log_error("reload: policy %s does not load, running without it: %s", c->policy_file, err ? err : "");
    } else if (policy_lua_reload(&ig->policy, c->policy_file ? c->policy_file : "", &lim, &err) < 0) {
        log_error("reload: policy %s does not load, keeping the running one: %s", c->policy_file, err ? err : "");
    }
    free(err);
}

/* outcome - turn a hook's result into a reply; true when the session goes on as if accepted */
static bool outcome(struct ingress_session *s, enum policy_lua_hook hook, enum policy_lua_status st,
                    const struct policy_lua_result *res)
{
    if (st == POLICY_LUA_ACCEPT)
        return true;
    if (st != POLICY_LUA_REJECT)
        log_warn("policy %s for [%s] failed (%s): %s; answering 451", policy_lua_hook_name(hook), s->peer_ip,
                 policy_lua_status_name(st), res->detail);
    ingress_session_reply(s, "%d %s", res->code, res->text);
    return false;
}

bool ingress_policy_connection(struct ingress_session *s)
{
    struct policy_lua *pl = s->ig->policy;
    struct policy_lua_result res;

    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_CONNECTION_ACCEPTED))
        return true;
    enum policy_lua_status st = policy_lua_connection_accepted(pl, &s->pconn, &s->conn_meta, &res);
    return outcome(s, POLICY_LUA_HOOK_CONNECTION_ACCEPTED, st, &res);
}

bool ingress_policy_ehlo(struct ingress_session *s, const char *domain)
{
    struct policy_lua *pl = s->ig->policy;
    struct policy_lua_result res;

    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_EHLO))
        return true;
    enum policy_lua_status st = policy_lua_ehlo(pl, &s->pconn, domain, strlen(domain), &s->conn_meta, &res);
    return outcome(s, POLICY_LUA_HOOK_EHLO, st, &res);
}

bool ingress_policy_mail(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    struct policy_lua *pl = s->ig->policy;
    struct policy_lua_result res;
    struct policy_lua_param params[8];
    size_t n = 0;
    char size[32];

    policy_lua_meta_copy(&s->meta, &s->conn_meta);
    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_MAIL_FROM))
        return true;
    const struct smtp_cmd_params *p = &cmd->params;
    if (p->seen & SMTP_CMD_PARAM_SIZE) {
        snprintf(size, sizeof(size), "%llu", (unsigned long long)p->size);
        params[n++] = (struct policy_lua_param){"SIZE", size};
    }
    if (p->seen & SMTP_CMD_PARAM_BODY)
        params[n++] = (struct policy_lua_param){"BODY", p->body == SMTP_CMD_BODY_7BIT       ? "7BIT"
                                                        : p->body == SMTP_CMD_BODY_8BITMIME ? "8BITMIME"
                                                                                            : "BINARYMIME"};
    if (p->seen & SMTP_CMD_PARAM_SMTPUTF8)
        params[n++] = (struct policy_lua_param){"SMTPUTF8", NULL};
    if (p->seen & SMTP_CMD_PARAM_ENVID)
        params[n++] = (struct policy_lua_param){"ENVID", p->envid};
    if (p->seen & SMTP_CMD_PARAM_RET)
        params[n++] = (struct policy_lua_param){"RET", p->ret == SMTP_CMD_RET_FULL ? "FULL" : "HDRS"};
    enum policy_lua_status st = policy_lua_mail_from(pl, &s->pconn, cmd->addr.mailbox, cmd->addr.mailbox_len,
                                                     params, n, &s->meta, &res);
    return outcome(s, POLICY_LUA_HOOK_MAIL_FROM, st, &res);
}

bool ingress_policy_rcpt(struct ingress_session *s, const struct smtp_cmd *cmd)
{
    struct policy_lua *pl = s->ig->policy;
    struct policy_lua_result res;

    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_RCPT_TO))
        return true;
    enum policy_lua_status st =
        policy_lua_rcpt_to(pl, &s->pconn, cmd->addr.mailbox, cmd->addr.mailbox_len, &s->meta, &res);
    return outcome(s, POLICY_LUA_HOOK_RCPT_TO, st, &res);
}

bool ingress_policy_message(struct ingress_session *s)
{
    struct policy_lua *pl = s->ig->policy;
    struct policy_lua_result res;

    if (!pl || !policy_lua_has_hook(pl, POLICY_LUA_HOOK_MESSAGE_RECEIVED))
        return true;
    /* the header section: up to the first empty line */
    size_t hlen = s->body_len;
    for (size_t i = 0; i + 1 < s->body_len; i++) {
        if (s->body[i] == '\n' && (s->body[i + 1] == '\n' || (i + 2 < s->body_len && s->body[i + 1] == '\r' &&
                                                                s->body[i + 2] == '\n'))) {
            hlen = i + 1;
            break;
        }
    }
    struct policy_lua_str *rcpts = xcalloc(s->n_rcpts, sizeof(*rcpts));
    for (uint32_t i = 0; i < s->n_rcpts; i++)
        rcpts[i] = (struct policy_lua_str){s->rcpts[i], strlen(s->rcpts[i])};
    struct policy_lua_message msg = {
        .headers = s->body,
        .headers_len = s->body ? hlen : 0,
        .sender = {s->sender, strlen(s->sender)},
        .rcpts = rcpts,
        .n_rcpts = s->n_rcpts,
        .size = s->body_len,
    };
    enum policy_lua_status st = policy_lua_message_received(pl, &s->pconn, &msg, &s->meta, &res);
    free(rcpts);
    return outcome(s, POLICY_LUA_HOOK_MESSAGE_RECEIVED, st, &res);
}
