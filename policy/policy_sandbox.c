/*
 * policy_sandbox - the sandboxed base library a policy script sees
 *
 * Lua's base, string, table, math and utf8 libraries without load/loadfile/dofile/require/
 * collectgarbage/warn and string.dump; pcall/xpcall that re-raise what the script may not catch
 * (budget, memory, kumo.reject()); setmetatable that refuses __gc; print and kumo.log_* writing
 * bounded lines to our log; ringmail.on/kumo.on, kumo.reject and ringmail.log; string.find/match/
 * gmatch/gsub/rep bounded by policy_pattern.c.
 */
#include "policy/policy_int.h"

#include "base/log.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define LOG_LINE_MAX 900u

/* after a protected call inside the script: budget, memory and reject are not the script's to catch */
static void rethrow_fatal(lua_State *L, int status)
{
    struct policy_lua *pl = pl_of(L);
    if (status == LUA_ERRMEM)
        pl->mem_fail = true;
    if (status != LUA_OK && (pl->budget_hit || pl->mem_fail || pl->rejected))
        lua_error(L);
}

static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    rethrow_fatal(L, status);
    luaL_checkstack(L, 1, "too many results");
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    /* [f, msgh, args...] -> [msgh, f, args...] */
    lua_pushvalue(L, 1);
    lua_copy(L, 2, 1);
    lua_replace(L, 2);
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    rethrow_fatal(L, status);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in the policy sandbox");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* log_line - one script log line: control bytes shown as '?', bounded, a capped number per call */
static void log_line(struct policy_lua *pl, enum log_level level, const char *s, size_t n)
{
    char buf[LOG_LINE_MAX + 4];
    size_t o = 0;

    if (pl->log_lines >= POLICY_LOG_LINES_PER_CALL) {
        pl->log_dropped++;
        return;
    }
    pl->log_lines++;
    for (size_t i = 0; i < n && o < LOG_LINE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n > LOG_LINE_MAX) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    log_msg(level, "policy: %s", buf);
}

/* print(...) and kumo.log_*(...): arguments joined with tabs, like Lua's print */
static int log_args(lua_State *L, enum log_level level, int first)
{
    luaL_Buffer b;
    int n = lua_gettop(L);

    luaL_buffinit(L, &b);
    for (int i = first; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > first)
            luaL_addchar(&b, '\t');
        luaL_addlstring(&b, s, len > LOG_LINE_MAX ? LOG_LINE_MAX + 1 : len);
        lua_pop(L, 1);
        if (luaL_bufflen(&b) > LOG_LINE_MAX)
            break;
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    log_line(pl_of(L), level, s, len);
    return 0;
}

static int sb_print(lua_State *L)
{
    return log_args(L, LOG_LEVEL_INFO, 1);
}

static int kumo_log_debug(lua_State *L)
{
    if (log_get_level() > LOG_LEVEL_DEBUG)
        return 0;
    return log_args(L, LOG_LEVEL_DEBUG, 1);
}

static int kumo_log_info(lua_State *L)
{
    return log_args(L, LOG_LEVEL_INFO, 1);
}

static int kumo_log_warn(lua_State *L)
{
    return log_args(L, LOG_LEVEL_WARN, 1);
}

static int kumo_log_error(lua_State *L)
{
    return log_args(L, LOG_LEVEL_ERROR, 1);
}

/* ringmail.log(level, msg) */
static int rm_log(lua_State *L)
{
    enum log_level level;
    const char *name = luaL_checkstring(L, 1);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);

    if (!log_level_parse(name, &level))
        return luaL_argerror(L, 1, "level must be \"debug\", \"info\", \"warn\" or \"error\"");
    if (level >= log_get_level())
        log_line(pl_of(L), level, msg, len);
    return 0;
}

/* ringmail.on(event, fn) / kumo.on(event, fn): only while the policy file runs */
static int rm_on(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);

    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!pl->loading)
        return luaL_error(L, "event handlers can only be registered while the policy file loads");
    if (len == 0 || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len)
        return luaL_argerror(L, 1, "event name must be 1..64 characters of a-z, 0-9, _");
    lua_rawgeti(L, LUA_REGISTRYINDEX, pl->handlers_ref);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return luaL_error(L, "a handler for '%s' is already registered", name);
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    return 0;
}

/* kumo.reject(code, text): ends the handler; the client gets "code text" */
static int rm_reject(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);
    lua_Integer code = luaL_checkinteger(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);

    if (!pl->in_call || pl->loading)
        return luaL_error(L, "reject can only be called from an event handler");
    if (code < 400 || code > 599)
        return luaL_error(L, "reject code %I is not a 4xx or 5xx code", code);
    if (len == 0 || len > POLICY_LUA_TEXT_MAX)
        return luaL_error(L, "reject text must be 1..%d bytes", POLICY_LUA_TEXT_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            return luaL_error(L, "reject text may hold printable ASCII only");
    pl->rejected = true;
    pl->reject_code = (int)code;
    memcpy(pl->reject_text, text, len);
    pl->reject_text[len] = '\0';
    lua_pushliteral(L, "rejected by policy");
    return lua_error(L);
}

void policy_sandbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
    };
    static const char *const drop[] = {"load",           "loadfile", "dofile", "require",
                                       "collectgarbage", "warn",     NULL};
    static const luaL_Reg ringmail_fns[] = {
        {"on", rm_on}, {"reject", rm_reject}, {"log", rm_log}, {NULL, NULL}};
    static const luaL_Reg kumo_fns[] = {
        {"on", rm_on},
        {"reject", rm_reject},
        {"log_debug", kumo_log_debug},
        {"log_info", kumo_log_info},
        {"log_warn", kumo_log_warn},
        {"log_error", kumo_log_error},
        {NULL, NULL},
    };

    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    for (int i = 0; drop[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, drop[i]);
    }
    lua_getfield(L, -1, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    policy_pattern_open(L);
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, sb_setmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, sb_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setfield(L, -2, "xpcall");
    lua_pushcfunction(L, sb_print);
    lua_setfield(L, -2, "print");
    luaL_newlib(L, ringmail_fns);
    lua_setfield(L, -2, "ringmail");
    luaL_newlib(L, kumo_fns);
    lua_setfield(L, -2, "kumo");
    lua_pop(L, 1);
}
