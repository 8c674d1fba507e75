/*
 * policy_budget - the instruction budget and time limit of one call into the script
 *
 * policy_budget_begin() opens a call (the file running once at load, or a hook): a fresh budget,
 * deadline and call id, the caller's metadata, no log lines yet; policy_budget_end() closes it.
 * A count hook runs every pl->tick VM instructions and adds them to pl->used; past the budget or
 * the deadline it raises an error, and from then on fails every instruction, so neither the
 * script's pcall nor its __close handlers keep running. C work done for the script is charged at
 * a fixed rate (policy_budget_charge()), which also looks at the clock; policy_budget_refuse() stops the
 * call from C the same way (policy_pattern.c refuses a pattern call whose worst case is too long).
 */
#include "policy/policy_int.h"

#include "base/clock.h"
#include "base/log.h"

#include <stdarg.h>

#include <lauxlib.h>
#include <lua.h>

#define HEADER_BYTES_PER_INSN 16u /* header scanning is charged to the budget at this rate */

static void count_hook(lua_State *L, lua_Debug *ar)
{
    struct policy_lua *pl = pl_of(L);

    pl->used += pl->tick;
    if (!pl->budget_hit) {
        if (pl->used >= pl->lim.instruction_budget)
            pl->budget_hit = true;
        else if (pl->deadline_ns && clock_mono_ns() > pl->deadline_ns)
            pl->budget_hit = pl->time_hit = true;
        else
            return;
        /* from now on every instruction fails, so __close handlers cannot keep running */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, pl->time_hit ? "time limit exceeded" : "instruction budget exceeded");
}

void policy_budget_charge(lua_State *L, struct policy_lua *pl, size_t bytes)
{
    pl->used += bytes / HEADER_BYTES_PER_INSN;
    if (pl->used >= pl->lim.instruction_budget)
        policy_budget_refuse(L, pl, "instruction budget exceeded");
    if (pl->deadline_ns && clock_mono_ns() > pl->deadline_ns) {
        pl->time_hit = true;
        policy_budget_refuse(L, pl, "time limit exceeded");
    }
}

void policy_budget_refuse(lua_State *L, struct policy_lua *pl, const char *fmt, ...)
{
    va_list ap;

    pl->budget_hit = true;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_error(L);
}

void policy_budget_begin(struct policy_lua *pl, const struct policy_call *c, struct policy_lua_meta *meta)
{
    pl->in_call = true;
    pl->call_id++;
    pl->call = c;
    pl->used = 0;
    pl->budget_hit = pl->time_hit = pl->mem_fail = pl->rejected = false;
    pl->deadline_ns = pl->lim.time_limit_ns ? clock_mono_ns() + pl->lim.time_limit_ns : 0;
    pl->meta = meta;
    pl->scratch_active = false;
    pl->log_lines = pl->log_dropped = 0;
    lua_sethook(pl->L, count_hook, LUA_MASKCOUNT, (int)pl->tick);
}

void policy_budget_end(struct policy_lua *pl)
{
    pl->in_call = false;
    pl->call = NULL;
    pl->meta = NULL;
    if (pl->scratch_active)
        policy_lua_meta_fini(&pl->scratch);
    pl->scratch_active = false;
    if (pl->log_dropped)
        log_warn("policy: %u ringmail.log lines dropped (more than %u in one call)", pl->log_dropped,
                 POLICY_LOG_LINES_PER_CALL);
    lua_settop(pl->L, 0);
}
