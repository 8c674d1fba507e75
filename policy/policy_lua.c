/*
 * policy_lua - the Lua 5.4 policy sandbox and the SMTP server's hooks
 *
 * Every Lua API call that may allocate runs inside lua_pcall(): an allocation over the memory cap is
 * a Lua error, never a panic. Three things stop a handler and cannot be caught by the script: the
 * instruction budget (a count hook), a memory error, and kumo.reject(); the sandbox's pcall/xpcall
 * re-raise them, so `pcall(function() while true do end end)` in a loop still ends the call.
 * Finalizers (__gc) are refused because they would run outside any call, where no budget applies,
 * including inside lua_close().
 */
#include "policy/policy_lua.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define DEFAULT_BUDGET 1000000u
#define DEFAULT_MEMORY (64u << 20)
#define TICK_MAX 1000u         /* instructions between two runs of the count hook */
#define LOG_LINES_PER_CALL 32u /* ringmail.log lines one call may write; the rest are counted */
#define LOG_LINE_MAX 900u
#define FAIL_LOGS_PER_SEC 10u     /* warnings about failing handlers, per second */
#define HEADER_BYTES_PER_INSN 16u /* header scanning is charged to the budget at this rate */

#define MT_CONN "ringmail.conn_meta"
#define MT_MSG "ringmail.message"
#define MT_ADDR "ringmail.address"

static const char *const hook_names[POLICY_LUA_HOOK__COUNT] = {
    "smtp_server_connection_accepted", "smtp_server_ehlo", "smtp_server_mail_from", "smtp_server_rcpt_to",
    "smtp_server_message_received",
};

/* read-only connection values that conn_meta:get_meta() answers (KumoMTA's predefined names) */
static const char *const predefined_keys[] = {"received_from", "received_via", "reception_protocol"};

struct call {
    enum policy_lua_hook hook;
    const struct policy_lua_conn *conn;
    const char *str; /* ehlo domain, mail/rcpt address */
    size_t str_len;
    const struct policy_lua_param *params;
    size_t n_params;
    const struct policy_lua_message *msg;
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
    const struct call *call;
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

static struct policy_lua *pl_of(lua_State *L)
{
    return *(struct policy_lua **)lua_getextraspace(L);
}

/*
 * The allocator is the one place that may not use xmalloc: Lua needs a NULL back to raise its memory
 * error, and the cap is what keeps a hostile script from taking the process down.
 */
static void *policy_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct policy_lua *pl = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        pl->mem_used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > pl->lim.memory_limit - pl->mem_used)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    pl->mem_used = pl->mem_used - old + nsize;
    return p;
}

static int sb_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    panic("unprotected Lua error: %s", msg ? msg : "(not a string)");
}

/* ---- validation shared by C and Lua ---- */

static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static bool meta_key_ok(const char *k, size_t n)
{
    if (n == 0 || n > POLICY_LUA_META_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* values end up in queue names, log records and headers: no control bytes, valid UTF-8 */
static bool meta_value_ok(const char *v, size_t n)
{
    if (n > POLICY_LUA_META_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return utf8_ok((const unsigned char *)v, n);
}

static bool is_predefined(const char *key)
{
    for (size_t i = 0; i < sizeof(predefined_keys) / sizeof(predefined_keys[0]); i++)
        if (strcmp(key, predefined_keys[i]) == 0)
            return true;
    return false;
}

/* ---- struct policy_lua_meta ---- */

void policy_lua_meta_init(struct policy_lua_meta *m)
{
    memset(m, 0, sizeof(*m));
}

void policy_lua_meta_fini(struct policy_lua_meta *m)
{
    for (unsigned i = 0; i < m->count; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    m->count = 0;
}

static int meta_find(const struct policy_lua_meta *m, const char *key)
{
    for (unsigned i = 0; i < m->count; i++)
        if (strcmp(m->items[i].key, key) == 0)
            return (int)i;
    return -1;
}

const char *policy_lua_meta_get(const struct policy_lua_meta *m, const char *key)
{
    int i = meta_find(m, key);
    return i < 0 ? NULL : m->items[i].value;
}

int policy_lua_meta_set(struct policy_lua_meta *m, const char *key, const char *value, size_t len)
{
    if (!meta_key_ok(key, strlen(key)) || (value && !meta_value_ok(value, len)))
        return -EINVAL;
    int i = meta_find(m, key);
    if (!value) {
        if (i >= 0) {
            free(m->items[i].key);
            free(m->items[i].value);
            memmove(&m->items[i], &m->items[i + 1], (m->count - (unsigned)i - 1) * sizeof(m->items[0]));
            m->count--;
        }
        return 0;
    }
    if (i >= 0) {
        free(m->items[i].value);
        m->items[i].value = xstrndup(value, len);
        return 0;
    }
    if (m->count >= POLICY_LUA_META_MAX)
        return -ENOSPC;
    m->items[m->count].key = xstrdup(key);
    m->items[m->count].value = xstrndup(value, len);
    m->count++;
    return 0;
}

void policy_lua_meta_copy(struct policy_lua_meta *dst, const struct policy_lua_meta *src)
{
    policy_lua_meta_fini(dst);
    for (unsigned i = 0; i < src->count; i++) {
        dst->items[i].key = xstrdup(src->items[i].key);
        dst->items[i].value = xstrdup(src->items[i].value);
    }
    dst->count = src->count;
}

/* ---- budget ---- */

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

/* charge - C work done for the script (header scans) counts against the budget */
static void charge(lua_State *L, struct policy_lua *pl, size_t bytes)
{
    pl->used += bytes / HEADER_BYTES_PER_INSN;
    if (pl->used >= pl->lim.instruction_budget) {
        pl->budget_hit = true;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        luaL_error(L, "instruction budget exceeded");
    }
}

static void call_begin(struct policy_lua *pl, const struct call *c, struct policy_lua_meta *meta)
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

static void call_end(struct policy_lua *pl)
{
    pl->in_call = false;
    pl->call = NULL;
    pl->meta = NULL;
    if (pl->scratch_active)
        policy_lua_meta_fini(&pl->scratch);
    pl->scratch_active = false;
    if (pl->log_dropped)
        log_warn("policy: %u ringmail.log lines dropped (more than %u in one call)", pl->log_dropped,
                 LOG_LINES_PER_CALL);
    lua_settop(pl->L, 0);
}

/* ---- sandboxed base functions ---- */

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

/* log_line - one script log line: control bytes shown as '?', bounded, at most LOG_LINES_PER_CALL */
static void log_line(struct policy_lua *pl, enum log_level level, const char *s, size_t n)
{
    char buf[LOG_LINE_MAX + 4];
    size_t o = 0;

    if (pl->log_lines >= LOG_LINES_PER_CALL) {
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

/* ---- objects handed to handlers: conn_meta, message, address ---- */

struct obj {
    uint64_t call_id;
};

static void push_obj(lua_State *L, const char *mt)
{
    struct obj *o = lua_newuserdatauv(L, sizeof(*o), 0);
    o->call_id = pl_of(L)->call_id;
    luaL_setmetatable(L, mt);
}

/* check_obj - self of a method: conn_meta or message, of the call in progress */
static struct policy_lua *check_obj(lua_State *L, bool msg_only)
{
    struct policy_lua *pl = pl_of(L);
    struct obj *o = luaL_testudata(L, 1, MT_MSG);
    if (!o && !msg_only)
        o = luaL_testudata(L, 1, MT_CONN);
    if (!o)
        luaL_argerror(L, 1,
                      msg_only ? "message expected (use msg:method())" : "conn_meta or message expected");
    if (!pl->in_call || o->call_id != pl->call_id)
        luaL_error(L, "this object belongs to an earlier event and can no longer be used");
    return pl;
}

static void push_hostport(lua_State *L, const char *ip, uint16_t port)
{
    if (!ip)
        lua_pushnil(L);
    else if (strchr(ip, ':'))
        lua_pushfstring(L, "[%s]:%d", ip, (int)port);
    else
        lua_pushfstring(L, "%s:%d", ip, (int)port);
}

static int obj_get_meta(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, false);
    const char *key = luaL_checkstring(L, 2);
    const struct policy_lua_conn *conn = pl->call->conn;

    if (strcmp(key, "received_from") == 0) {
        push_hostport(L, conn ? conn->peer_ip : NULL, conn ? conn->peer_port : 0);
        return 1;
    }
    if (strcmp(key, "received_via") == 0) {
        push_hostport(L, conn ? conn->local_ip : NULL, conn ? conn->local_port : 0);
        return 1;
    }
    if (strcmp(key, "reception_protocol") == 0) {
        lua_pushliteral(L, "ESMTP");
        return 1;
    }
    const struct policy_lua_meta *m = pl->scratch_active ? &pl->scratch : pl->meta;
    const char *v = m ? policy_lua_meta_get(m, key) : NULL;
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    return 1;
}

static int obj_set_meta(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, false);
    size_t klen, vlen = 0;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *val = NULL;
    int t = lua_type(L, 3);

    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        val = lua_tolstring(L, 3, &vlen);
    else if (t != LUA_TNIL && t != LUA_TNONE)
        return luaL_argerror(L, 3, "metadata values are strings (or nil to remove)");
    if (!meta_key_ok(key, klen))
        return luaL_argerror(L, 2, "metadata key must be 1..64 characters of A-Z a-z 0-9 _ . -");
    if (is_predefined(key))
        return luaL_error(L, "metadata key '%s' is read-only", key);
    if (val && !meta_value_ok(val, vlen))
        return luaL_argerror(
            L, 3, "metadata value must be valid UTF-8 without control characters, at most 1024 bytes");
    if (!pl->scratch_active) {
        policy_lua_meta_init(&pl->scratch);
        if (pl->meta)
            policy_lua_meta_copy(&pl->scratch, pl->meta);
        pl->scratch_active = true;
    }
    if (policy_lua_meta_set(&pl->scratch, key, val, vlen) == -ENOSPC)
        return luaL_error(L, "too many metadata keys (at most %d)", POLICY_LUA_META_MAX);
    return 0;
}

/* header section parsing: never reads past len; malformed lines are skipped */
struct hdr_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

static size_t line_end(const char *buf, size_t len, size_t p)
{
    const char *nl = memchr(buf + p, '\n', len - p);
    return nl ? (size_t)(nl - buf) + 1 : len;
}

static bool hdr_next(const char *buf, size_t len, size_t *pos, struct hdr_field *f)
{
    size_t p = *pos;

    while (p < len) {
        if (buf[p] == '\n' || (buf[p] == '\r' && (p + 1 == len || buf[p + 1] == '\n')))
            return false; /* the empty line ending the section */
        size_t start = p, end = line_end(buf, len, p);
        while (end < len && (buf[end] == ' ' || buf[end] == '\t'))
            end = line_end(buf, len, end);
        p = end;
        const char *colon = memchr(buf + start, ':', end - start);
        if (!colon)
            continue;
        size_t n = (size_t)(colon - (buf + start));
        while (n > 0 && (buf[start + n - 1] == ' ' || buf[start + n - 1] == '\t'))
            n--;
        bool ok = n > 0;
        for (size_t i = 0; ok && i < n; i++)
            ok = (unsigned char)buf[start + i] > 32 && (unsigned char)buf[start + i] < 127;
        if (!ok)
            continue;
        f->name = buf + start;
        f->name_len = n;
        f->value = colon + 1;
        f->value_len = (size_t)(buf + end - (colon + 1));
        *pos = p;
        return true;
    }
    *pos = p;
    return false;
}

/* push_unfolded - a field value without line breaks, blanks trimmed at both ends */
static void push_unfolded(lua_State *L, const char *v, size_t n)
{
    luaL_Buffer b;

    while (n > 0 && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++)
        if (v[i] != '\r' && v[i] != '\n')
            luaL_addchar(&b, v[i]);
    luaL_pushresult(&b);
}

static bool name_eq(const struct hdr_field *f, const char *name, size_t len)
{
    return f->name_len == len && strncasecmp(f->name, name, len) == 0;
}

/* headers_scan - all fields (name NULL) or those named `name`; first_only stops at the first */
static int headers_scan(lua_State *L, bool first_only, bool with_names)
{
    struct policy_lua *pl = check_obj(L, true);
    const struct policy_lua_message *m = pl->call->msg;
    size_t nlen = 0;
    const char *name = with_names ? NULL : luaL_checklstring(L, 2, &nlen);
    struct hdr_field f;
    size_t pos = 0;
    lua_Integer i = 0;

    if (name && memchr(name, '\0', nlen))
        nlen = 0; /* matches no field: names never hold NUL, and none is empty */
    if (!first_only)
        lua_newtable(L);
    while (m->headers && hdr_next(m->headers, m->headers_len, &pos, &f)) {
        if (name && !name_eq(&f, name, nlen))
            continue;
        if (with_names) {
            lua_createtable(L, 2, 0);
            lua_pushlstring(L, f.name, f.name_len);
            lua_rawseti(L, -2, 1);
            push_unfolded(L, f.value, f.value_len);
            lua_rawseti(L, -2, 2);
        } else {
            push_unfolded(L, f.value, f.value_len);
        }
        if (first_only) {
            charge(L, pl, pos);
            return 1;
        }
        lua_rawseti(L, -2, ++i);
    }
    charge(L, pl, pos);
    if (first_only)
        lua_pushnil(L);
    return 1;
}

static int msg_get_first_named_header_value(lua_State *L)
{
    return headers_scan(L, true, false);
}

static int msg_get_all_named_header_values(lua_State *L)
{
    return headers_scan(L, false, false);
}

static int msg_get_all_headers(lua_State *L)
{
    return headers_scan(L, false, true);
}

/* push_addr - {user=, domain=, email=}; split at the last '@'; "" for the null sender */
static void push_addr(lua_State *L, const char *s, size_t n)
{
    const char *at = n ? memrchr(s, '@', n) : NULL;

    lua_createtable(L, 0, 3);
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, "email");
    lua_pushlstring(L, s, at ? (size_t)(at - s) : n);
    lua_setfield(L, -2, "user");
    if (at)
        lua_pushlstring(L, at + 1, n - (size_t)(at - s) - 1);
    else
        lua_pushliteral(L, "");
    lua_setfield(L, -2, "domain");
    luaL_setmetatable(L, MT_ADDR);
}

static int addr_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "email");
    if (!lua_isstring(L, -1))
        return luaL_error(L, "address has no email");
    return 1;
}

static int msg_sender(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, true);
    push_addr(L, pl->call->msg->sender.ptr ? pl->call->msg->sender.ptr : "", pl->call->msg->sender.len);
    return 1;
}

static int msg_recipient(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, true);
    const struct policy_lua_message *m = pl->call->msg;
    if (m->n_rcpts == 0 || !m->rcpts[0].ptr)
        lua_pushnil(L);
    else
        push_addr(L, m->rcpts[0].ptr, m->rcpts[0].len);
    return 1;
}

static int msg_recipient_list(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, true);
    const struct policy_lua_message *m = pl->call->msg;
    lua_Integer n = 0;

    lua_createtable(L, m->n_rcpts > 1000 ? 1000 : (int)m->n_rcpts, 0);
    for (size_t i = 0; i < m->n_rcpts; i++) {
        if (!m->rcpts[i].ptr)
            continue;
        push_addr(L, m->rcpts[i].ptr, m->rcpts[i].len);
        lua_rawseti(L, -2, ++n);
    }
    return 1;
}

static int msg_size(lua_State *L)
{
    struct policy_lua *pl = check_obj(L, true);
    lua_pushinteger(
        L, (lua_Integer)(pl->call->msg->size > (uint64_t)INT64_MAX ? INT64_MAX : pl->call->msg->size));
    return 1;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

/* ---- state setup (protected) ---- */

static int sb_open(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
    };
    static const char *const drop[] = {"load",           "loadfile", "dofile", "require",
                                       "collectgarbage", "warn",     NULL};
    static const luaL_Reg conn_methods[] = {
        {"get_meta", obj_get_meta}, {"set_meta", obj_set_meta}, {NULL, NULL}};
    static const luaL_Reg msg_methods[] = {
        {"get_meta", obj_get_meta},
        {"set_meta", obj_set_meta},
        {"get_first_named_header_value", msg_get_first_named_header_value},
        {"get_all_named_header_values", msg_get_all_named_header_values},
        {"get_all_headers", msg_get_all_headers},
        {"sender", msg_sender},
        {"recipient", msg_recipient},
        {"recipient_list", msg_recipient_list},
        {"size", msg_size},
        {NULL, NULL},
    };
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

    lua_newtable(L);
    pl->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    new_class(L, MT_CONN, conn_methods);
    new_class(L, MT_MSG, msg_methods);
    /* locked like the others: a script adding __gc to it would get finalizers past the setmetatable check */
    luaL_newmetatable(L, MT_ADDR);
    lua_pushcfunction(L, addr_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    return 0;
}

/* sb_bind - after the file ran: a registry reference per known hook, so a call looks up nothing */
static int sb_bind(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, pl->handlers_ref);
    for (int h = 0; h < POLICY_LUA_HOOK__COUNT; h++) {
        if (lua_getfield(L, -1, hook_names[h]) == LUA_TFUNCTION)
            pl->hook_ref[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        else
            lua_pop(L, 1);
    }
    return 0;
}

/* sb_msgh - error message with the script's file:line; non-string error objects described, not run */
static int sb_msgh(lua_State *L)
{
    lua_Debug ar;
    const char *msg;
    int t = lua_type(L, 1);

    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        msg = lua_tostring(L, 1);
    else
        msg = lua_pushfstring(L, "error object is a %s value", lua_typename(L, t));
    for (int level = 1; level < 32 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0)
            continue;
        size_t n = strlen(ar.short_src);
        if (strncmp(msg, ar.short_src, n) == 0 && msg[n] == ':')
            return 1;
        lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
        return 1;
    }
    lua_pushstring(L, msg);
    return 1;
}

/* ---- calls ---- */

static int sb_invoke(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);
    const struct call *c = lua_touserdata(L, 1);
    int nargs = 0;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pl->hook_ref[c->hook]);
    switch (c->hook) {
    case POLICY_LUA_HOOK_CONNECTION_ACCEPTED:
        push_obj(L, MT_CONN);
        nargs = 1;
        break;
    case POLICY_LUA_HOOK_EHLO:
        lua_pushlstring(L, c->str, c->str_len);
        push_obj(L, MT_CONN);
        nargs = 2;
        break;
    case POLICY_LUA_HOOK_MAIL_FROM:
        push_addr(L, c->str, c->str_len);
        push_obj(L, MT_CONN);
        lua_createtable(L, 0, (int)(c->n_params > 16 ? 16 : c->n_params));
        for (size_t i = 0; i < c->n_params; i++) {
            if (!c->params[i].key)
                continue;
            lua_pushstring(L, c->params[i].key);
            if (c->params[i].value)
                lua_pushstring(L, c->params[i].value);
            else
                lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
        nargs = 3;
        break;
    case POLICY_LUA_HOOK_RCPT_TO:
        push_addr(L, c->str, c->str_len);
        push_obj(L, MT_CONN);
        nargs = 2;
        break;
    case POLICY_LUA_HOOK_MESSAGE_RECEIVED:
        push_obj(L, MT_MSG);
        push_obj(L, MT_CONN);
        nargs = 2;
        break;
    default:
        return luaL_error(L, "unknown hook");
    }
    lua_call(L, nargs, 0);
    return 0;
}

static void copy_detail(char *dst, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < POLICY_LUA_DETAIL_MAX; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[o] = '\0';
}

static void result_clear(struct policy_lua_result *res)
{
    res->status = POLICY_LUA_ACCEPT;
    res->code = 0;
    res->text[0] = '\0';
    res->detail[0] = '\0';
    res->instructions = 0;
}

/* log_failure - at most FAIL_LOGS_PER_SEC lines per second; a script failing on every message must not flood
 */
static void log_failure(struct policy_lua *pl, const char *hook, const struct policy_lua_result *res)
{
    uint64_t now = clock_mono_ns();

    if (now - pl->fail_window_ns >= CLOCK_SEC(1)) {
        if (pl->fail_suppressed)
            log_warn("policy: %u more handler failures not logged", pl->fail_suppressed);
        pl->fail_window_ns = now;
        pl->fail_logged = pl->fail_suppressed = 0;
    }
    if (pl->fail_logged >= FAIL_LOGS_PER_SEC) {
        pl->fail_suppressed++;
        return;
    }
    pl->fail_logged++;
    log_warn("policy: %s failed (%s): %s", hook, policy_lua_status_name(res->status), res->detail);
}

static enum policy_lua_status run(struct policy_lua *pl, const struct call *c, struct policy_lua_meta *meta,
                                  struct policy_lua_result *res)
{
    lua_State *L;

    result_clear(res);
    if (!pl || pl->hook_ref[c->hook] == LUA_NOREF)
        return POLICY_LUA_ACCEPT;
    L = pl->L;
    call_begin(pl, c, meta);
    lua_settop(L, 0);
    lua_pushcfunction(L, sb_msgh);
    lua_pushcfunction(L, sb_invoke);
    lua_pushlightuserdata(L, (void *)c);
    int st = lua_pcall(L, 1, 0, 1);
    res->instructions = pl->used;
    if (st == LUA_OK) {
        if (pl->scratch_active && meta) {
            policy_lua_meta_fini(meta);
            *meta = pl->scratch; /* moves the strings */
            pl->scratch.count = 0;
        }
        call_end(pl);
        return POLICY_LUA_ACCEPT;
    }
    size_t n = 0;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "(no message)";
    if (!n)
        n = strlen(msg);
    if (pl->budget_hit) {
        res->status = POLICY_LUA_BUDGET;
    } else if (pl->mem_fail || st == LUA_ERRMEM) {
        res->status = POLICY_LUA_NOMEM;
        msg = "memory limit exceeded";
        n = strlen(msg);
    } else if (pl->rejected) {
        res->status = POLICY_LUA_REJECT;
        res->code = pl->reject_code;
        memcpy(res->text, pl->reject_text, sizeof(res->text));
    } else {
        res->status = POLICY_LUA_ERROR;
    }
    if (res->status != POLICY_LUA_REJECT) {
        copy_detail(res->detail, msg, n);
        res->code = 451;
        snprintf(res->text, sizeof(res->text), "4.3.0 Temporary local policy failure, try again later");
    }
    call_end(pl);
    if (res->status != POLICY_LUA_REJECT) {
        /* whatever the failed handler built is garbage now; give it back before the next call */
        lua_gc(L, LUA_GCCOLLECT);
        log_failure(pl, hook_names[c->hook], res);
    }
    return res->status;
}

enum policy_lua_status policy_lua_connection_accepted(struct policy_lua *pl,
                                                      const struct policy_lua_conn *conn,
                                                      struct policy_lua_meta *meta,
                                                      struct policy_lua_result *res)
{
    struct call c = {.hook = POLICY_LUA_HOOK_CONNECTION_ACCEPTED, .conn = conn};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_ehlo(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                       const char *domain, size_t domain_len, struct policy_lua_meta *meta,
                                       struct policy_lua_result *res)
{
    struct call c = {.hook = POLICY_LUA_HOOK_EHLO,
                     .conn = conn,
                     .str = domain ? domain : "",
                     .str_len = domain ? domain_len : 0};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_mail_from(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                            const char *addr, size_t addr_len,
                                            const struct policy_lua_param *params, size_t n_params,
                                            struct policy_lua_meta *meta, struct policy_lua_result *res)
{
    struct call c = {.hook = POLICY_LUA_HOOK_MAIL_FROM,
                     .conn = conn,
                     .str = addr ? addr : "",
                     .str_len = addr ? addr_len : 0,
                     .params = params,
                     .n_params = params ? n_params : 0};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_rcpt_to(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                          const char *addr, size_t addr_len, struct policy_lua_meta *meta,
                                          struct policy_lua_result *res)
{
    struct call c = {.hook = POLICY_LUA_HOOK_RCPT_TO,
                     .conn = conn,
                     .str = addr ? addr : "",
                     .str_len = addr ? addr_len : 0};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_message_received(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                                   const struct policy_lua_message *msg,
                                                   struct policy_lua_meta *meta,
                                                   struct policy_lua_result *res)
{
    static const struct policy_lua_message empty;
    struct call c = {.hook = POLICY_LUA_HOOK_MESSAGE_RECEIVED, .conn = conn, .msg = msg ? msg : &empty};
    return run(pl, &c, meta, res);
}

/* ---- lifecycle ---- */

/* load_error - "FILE:LINE: message" as Lua gave it, else prefixed with the path */
static char *load_error(const struct policy_lua *pl, const char *what)
{
    size_t n = strlen(pl->path);
    if (strncmp(what, pl->path, n) == 0 && what[n] == ':')
        return xstrdup(what);
    return xasprintf("%s: %s", pl->path, what);
}

int policy_lua_new(const char *path, const struct policy_lua_limits *lim, struct policy_lua **out, char **err)
{
    struct policy_lua *pl = xcalloc(1, sizeof(*pl));
    lua_State *L;
    FILE *f;
    int st, rc = 0;

    *out = NULL;
    *err = NULL;
    pl->path = xstrdup(path);
    if (lim)
        pl->lim = *lim;
    if (!pl->lim.instruction_budget)
        pl->lim.instruction_budget = DEFAULT_BUDGET;
    if (!pl->lim.memory_limit)
        pl->lim.memory_limit = DEFAULT_MEMORY;
    pl->tick = pl->lim.instruction_budget < TICK_MAX ? pl->lim.instruction_budget : TICK_MAX;
    for (int h = 0; h < POLICY_LUA_HOOK__COUNT; h++)
        pl->hook_ref[h] = LUA_NOREF;
    policy_lua_meta_init(&pl->scratch);

    /* fopen first, for a plain errno: luaL_loadfilex only says "cannot open" */
    f = fopen(path, "r");
    if (!f) {
        rc = -errno;
        *err = xasprintf("%s: %s", path, strerror(errno));
        policy_lua_free(pl);
        return rc;
    }
    fclose(f);

    L = pl->L = lua_newstate(policy_alloc, pl);
    if (!L) {
        *err = xasprintf("%s: cannot create a Lua state within the memory limit", path);
        policy_lua_free(pl);
        return -ENOMEM;
    }
    *(struct policy_lua **)lua_getextraspace(L) = pl;
    lua_atpanic(L, sb_panic);
    lua_pushcfunction(L, sb_open);
    st = lua_pcall(L, 0, 0, 0);
    if (st != LUA_OK) {
        *err = xasprintf("%s: cannot set up the Lua sandbox: %s", path, lua_tostring(L, -1));
        policy_lua_free(pl);
        return -ENOMEM;
    }

    struct call none = {.hook = POLICY_LUA_HOOK__COUNT};
    call_begin(pl, &none, NULL);
    pl->loading = true;
    lua_pushcfunction(L, sb_msgh);
    /* text only: precompiled chunks can break the VM's invariants */
    st = luaL_loadfilex(L, path, "t");
    if (st == LUA_OK)
        st = lua_pcall(L, 0, 0, 1);
    pl->loading = false;
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (pl->mem_fail || st == LUA_ERRMEM)
            *err = xasprintf("%s: memory limit exceeded while loading", path);
        else
            *err = load_error(pl, msg ? msg : "(no message)");
        rc = st == LUA_ERRFILE ? -EIO : (pl->mem_fail || st == LUA_ERRMEM) ? -ENOMEM : -EINVAL;
    }
    call_end(pl);
    if (rc == 0) {
        lua_pushcfunction(L, sb_bind);
        if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
            *err = xasprintf("%s: memory limit exceeded while loading", path);
            rc = -ENOMEM;
        }
        lua_settop(L, 0);
    }
    if (rc) {
        policy_lua_free(pl);
        return rc;
    }
    lua_gc(L, LUA_GCCOLLECT);
    *out = pl;
    return 0;
}

void policy_lua_free(struct policy_lua *pl)
{
    if (!pl)
        return;
    if (pl->L)
        lua_close(pl->L);
    policy_lua_meta_fini(&pl->scratch);
    free(pl->path);
    free(pl);
}

int policy_lua_reload(struct policy_lua **cur, const char *path, const struct policy_lua_limits *lim,
                      char **err)
{
    struct policy_lua *old = *cur, *pl;

    *err = NULL;
    if (!path)
        path = old ? old->path : "";
    if (!lim && old)
        lim = &old->lim;
    if (!path[0]) {
        policy_lua_free(old);
        *cur = NULL;
        return 0;
    }
    /* path may point into old: copy it before anything can free old */
    char *p = xstrdup(path);
    struct policy_lua_limits l = {0};
    if (lim)
        l = *lim;
    int rc = policy_lua_new(p, &l, &pl, err);
    free(p);
    if (rc)
        return rc;
    policy_lua_free(old);
    *cur = pl;
    return 0;
}

bool policy_lua_has_hook(const struct policy_lua *pl, enum policy_lua_hook hook)
{
    return pl && (unsigned)hook < POLICY_LUA_HOOK__COUNT && pl->hook_ref[hook] != LUA_NOREF;
}

const char *policy_lua_hook_name(enum policy_lua_hook hook)
{
    return (unsigned)hook < POLICY_LUA_HOOK__COUNT ? hook_names[hook] : "?";
}

const char *policy_lua_status_name(enum policy_lua_status status)
{
    static const char *const names[] = {"accept", "reject", "error", "budget", "nomem"};
    return (unsigned)status < sizeof(names) / sizeof(names[0]) ? names[status] : "?";
}

size_t policy_lua_mem_used(const struct policy_lua *pl)
{
    return pl ? pl->mem_used : 0;
}
