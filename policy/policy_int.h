/*
 * policy_int - declarations shared by the files of the Lua policy sandbox (private to policy/)
 *
 * struct policy_lua is the one state behind the public API of policy_lua.h; struct policy_call is the
 * hook call in progress. policy_lua.c sets the state up and runs calls; policy_budget.c arms and
 * disarms the instruction budget around each call; policy_sandbox.c is the sandboxed base library
 * (pcall, print, ringmail.*, kumo.*); policy_handler.c makes the objects handed to handlers;
 * policy_lua_meta.c keeps the metadata lists.
 */
#ifndef RINGMAIL_POLICY_INT_H
#define RINGMAIL_POLICY_INT_H

#include "policy/policy_lua.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#define POLICY_LOG_LINES_PER_CALL 32u /* ringmail.log lines one call may write; the rest are counted */
#define POLICY_PATTERN_STEPS_MAX 20000000u /* worst-case matcher steps of one string.find/match/gsub call */

struct policy_call {
    enum policy_lua_hook hook;
    const struct policy_lua_conn *conn;
    const char *str; /* ehlo domain, mail/rcpt address */
    size_t str_len;
    const struct policy_lua_param *params;
    size_t n_params;
    const struct policy_lua_message *msg;
    const char *authz, *password; /* auth_plain (str is authc) */
    bool *ok;                     /* auth_plain: what the handler returned */
};

struct policy_lua {
    lua_State *L;
    char *path;
    struct policy_lua_limits lim;
    size_t mem_used;
    int hook_ref[POLICY_LUA_HOOK__COUNT];
    int handlers_ref; /* registry: event name -> function */
    bool loading;     /* ringmail.on() is allowed only while the file runs */

    /* the call in progress (a hook, or the file running once at load) */
    bool in_call;
    uint64_t call_id; /* objects made for one call refuse to work in another */
    const struct policy_call *call;
    uint64_t tick;
    uint64_t used;
    uint64_t deadline_ns;
    bool budget_hit;
    bool time_hit;
    bool mem_fail;
    bool rejected;
    int reject_code;
    char reject_text[POLICY_LUA_TEXT_MAX + 1];
    struct policy_lua_meta *meta; /* the caller's; written only when the call succeeds */
    struct policy_lua_meta scratch;
    bool scratch_active;
    unsigned log_lines;
    unsigned log_dropped;

    uint64_t fail_window_ns;
    unsigned fail_logged;
    unsigned fail_suppressed;
};

/* pl_of - the state a Lua C function runs in (kept in the Lua state's extra space) */
static inline struct policy_lua *pl_of(lua_State *L)
{
    return *(struct policy_lua **)lua_getextraspace(L);
}

/* policy_budget_begin - start a call: arm the budget (and time limit), reset the per-call state */
void policy_budget_begin(struct policy_lua *pl, const struct policy_call *c, struct policy_lua_meta *meta);
/* policy_budget_end - end a call: drop uncommitted metadata, report dropped log lines, empty the stack */
void policy_budget_end(struct policy_lua *pl);
/* policy_budget_charge - C work done for the script (header scans) counts against the budget */
void policy_budget_charge(lua_State *L, struct policy_lua *pl, size_t bytes);
/* policy_budget_refuse - stop the call like a budget overrun (uncatchable), with a Lua-format message */
void policy_budget_refuse(lua_State *L, struct policy_lua *pl, const char *fmt, ...);

/* policy_pattern_open - wrap string.find/match/gmatch/gsub/rep so their C work is bounded up front */
void policy_pattern_open(lua_State *L);

/* policy_sandbox_open - the sandboxed base library and the ringmail/kumo tables (inside lua_pcall) */
void policy_sandbox_open(lua_State *L);

/* policy_handler_open - the metatables of conn_meta, message and address objects (inside lua_pcall) */
void policy_handler_open(lua_State *L);
/* policy_handler_invoke - lua_CFunction: call the handler of the struct policy_call at index 1 */
int policy_handler_invoke(lua_State *L);

/* policy_lua_meta_key_ok - 1..POLICY_LUA_META_KEY_MAX bytes of [A-Za-z0-9_.-] */
bool policy_lua_meta_key_ok(const char *k, size_t n);
/* policy_lua_meta_value_ok - at most POLICY_LUA_META_VALUE_MAX bytes, valid UTF-8, no control bytes */
bool policy_lua_meta_value_ok(const char *v, size_t n);

#endif
