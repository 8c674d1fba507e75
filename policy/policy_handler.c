/*
 * policy_handler - the objects handed to event handlers: conn_meta, message, address
 *
 * conn_meta and message are userdata stamped with the call they were made for: kept past their
 * event they refuse to work. get_meta/set_meta read and write the call's metadata (committed by
 * policy_lua.c only when the handler returns normally); the message's header methods parse the
 * header section on each call and charge the work to the budget. Addresses are plain tables
 * {user=, domain=, email=} with a __tostring.
 */
#include "policy/policy_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#define MT_CONN "ringmail.conn_meta"
#define MT_MSG "ringmail.message"
#define MT_ADDR "ringmail.address"

/* read-only connection values that conn_meta:get_meta() answers (KumoMTA's predefined names) */
static const char *const predefined_keys[] = {"received_from", "received_via", "reception_protocol"};

static bool is_predefined(const char *key)
{
    for (size_t i = 0; i < sizeof(predefined_keys) / sizeof(predefined_keys[0]); i++)
        if (strcmp(key, predefined_keys[i]) == 0)
            return true;
    return false;
}

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
    if (!policy_lua_meta_key_ok(key, klen))
        return luaL_argerror(L, 2, "metadata key must be 1..64 characters of A-Z a-z 0-9 _ . -");
    if (is_predefined(key))
        return luaL_error(L, "metadata key '%s' is read-only", key);
    if (val && !policy_lua_meta_value_ok(val, vlen))
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
            policy_budget_charge(L, pl, pos);
            return 1;
        }
        lua_rawseti(L, -2, ++i);
    }
    policy_budget_charge(L, pl, pos);
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

void policy_handler_open(lua_State *L)
{
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

    new_class(L, MT_CONN, conn_methods);
    new_class(L, MT_MSG, msg_methods);
    /* locked like the others: a script adding __gc to it would get finalizers past the setmetatable check */
    luaL_newmetatable(L, MT_ADDR);
    lua_pushcfunction(L, addr_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

int policy_handler_invoke(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);
    const struct policy_call *c = lua_touserdata(L, 1);
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
    case POLICY_LUA_HOOK_HTTP_MESSAGE_GENERATED:
        push_obj(L, MT_MSG);
        push_obj(L, MT_CONN);
        nargs = 2;
        break;
    case POLICY_LUA_HOOK_AUTH_PLAIN:
        lua_pushstring(L, c->authz);
        lua_pushlstring(L, c->str, c->str_len);
        lua_pushstring(L, c->password);
        push_obj(L, MT_CONN);
        lua_call(L, 4, 1);
        *c->ok = lua_isboolean(L, -1) && lua_toboolean(L, -1);
        return 0;
    default:
        return luaL_error(L, "unknown hook");
    }
    lua_call(L, nargs, 0);
    return 0;
}
