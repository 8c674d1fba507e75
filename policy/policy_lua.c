/*
 * policy_lua - the Lua 5.4 policy sandbox and the SMTP server's hooks
 *
 * Every Lua API call that may allocate runs inside lua_pcall(): an allocation over the memory cap is
 * a Lua error, never a panic. Three things stop a handler and cannot be caught by the script: the
 * instruction budget (a count hook), a memory error, and kumo.reject(); the sandbox's pcall/xpcall
 * re-raise them, so `pcall(function() while true do end end)` in a loop still ends the call.
 * Finalizers (__gc) are refused because they would run outside any call, where no budget applies,
 * including inside lua_close().
 * This file sets the state up (allocator under the cap, sandbox, handler registry), runs the hooks
 * and answers the public API; the budget is policy_budget.c, the base library policy_sandbox.c,
 * the objects handed to handlers policy_handler.c, the metadata lists policy_lua_meta.c.
 */
#include "policy/policy_lua.h"
#include "policy/policy_int.h"

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define DEFAULT_BUDGET 1000000u
#define DEFAULT_MEMORY (64u << 20)
#define TICK_MAX 1000u          /* instructions between two runs of the count hook */
#define FAIL_LOGS_PER_SEC 10u     /* warnings about failing handlers, per second */

static const char *const hook_names[POLICY_LUA_HOOK__COUNT] = {
    "smtp_server_connection_accepted", "smtp_server_ehlo", "smtp_server_mail_from", "smtp_server_rcpt_to",
    "smtp_server_message_received", "smtp_server_auth_plain", "http_message_generated",
};

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

/* ---- state setup (protected) ---- */

static int sb_open(lua_State *L)
{
    struct policy_lua *pl = pl_of(L);

    policy_sandbox_open(L);
    lua_newtable(L);
    pl->handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    policy_handler_open(L);
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

static enum policy_lua_status run(struct policy_lua *pl, const struct policy_call *c,
                                  struct policy_lua_meta *meta, struct policy_lua_result *res)
{
    lua_State *L;

    result_clear(res);
    if (!pl || pl->hook_ref[c->hook] == LUA_NOREF)
        return POLICY_LUA_ACCEPT;
    L = pl->L;
    policy_budget_begin(pl, c, meta);
    lua_settop(L, 0);
    lua_pushcfunction(L, sb_msgh);
    lua_pushcfunction(L, policy_handler_invoke);
    lua_pushlightuserdata(L, (void *)c);
    int st = lua_pcall(L, 1, 0, 1);
    res->instructions = pl->used;
    if (st == LUA_OK) {
        if (pl->scratch_active && meta) {
            policy_lua_meta_fini(meta);
            *meta = pl->scratch; /* moves the strings */
            pl->scratch.count = 0;
        }
        policy_budget_end(pl);
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
    policy_budget_end(pl);
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
    struct policy_call c = {.hook = POLICY_LUA_HOOK_CONNECTION_ACCEPTED, .conn = conn};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_ehlo(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                       const char *domain, size_t domain_len, struct policy_lua_meta *meta,
                                       struct policy_lua_result *res)
{
    struct policy_call c = {.hook = POLICY_LUA_HOOK_EHLO,
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
    struct policy_call c = {.hook = POLICY_LUA_HOOK_MAIL_FROM,
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
    struct policy_call c = {.hook = POLICY_LUA_HOOK_RCPT_TO,
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
    struct policy_call c = {
        .hook = POLICY_LUA_HOOK_MESSAGE_RECEIVED, .conn = conn, .msg = msg ? msg : &empty};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_http_message_generated(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                                         const struct policy_lua_message *msg,
                                                         struct policy_lua_meta *meta, struct policy_lua_result *res)
{
    static const struct policy_lua_message empty;
    struct policy_call c = {.hook = POLICY_LUA_HOOK_HTTP_MESSAGE_GENERATED, .conn = conn, .msg = msg ? msg : &empty};
    return run(pl, &c, meta, res);
}

enum policy_lua_status policy_lua_auth_plain(struct policy_lua *pl, const struct policy_lua_conn *conn,
                                             const char *authz, const char *authc, const char *password,
                                             struct policy_lua_meta *meta, bool *ok, struct policy_lua_result *res)
{
    struct policy_call c = {.hook = POLICY_LUA_HOOK_AUTH_PLAIN,
                            .conn = conn,
                            .str = authc,
                            .str_len = strlen(authc),
                            .authz = authz[0] ? authz : authc,
                            .password = password,
                            .ok = ok};
    *ok = false;
    enum policy_lua_status st = run(pl, &c, meta, res);
    if (st != POLICY_LUA_ACCEPT)
        *ok = false;
    return st;
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

    struct policy_call none = {.hook = POLICY_LUA_HOOK__COUNT};
    policy_budget_begin(pl, &none, NULL);
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
    policy_budget_end(pl);
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
