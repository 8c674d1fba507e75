/*
 * policy_pattern - string.find/match/gmatch/gsub/rep with their work bounded before they run
 *
 * Lua's pattern matcher and string.rep are C code: the count hook that carries the instruction budget
 * and the wall-clock limit never runs inside them, so one call on a long peer header could run for
 * hours. Each wrapper estimates the call's worst case before calling Lua's own function:
 *
 *   matcher steps <= starts * C(n + q, q) * 2^o
 *
 * n is the subject length from the start position, starts is 1 for a pattern anchored with ^ (find,
 * match, gsub) and n + 1 otherwise, q counts the items that can take a variable length (x*, x+, x-,
 * %bxy, back-references %1..%9) and o the optional items (x?). A call whose estimate exceeds
 * POLICY_PATTERN_STEPS_MAX is refused like an instruction-budget overrun (the script cannot catch it);
 * with Lua's matcher at 1..3 ns a step the largest allowed call ends within ~60 ms. Each accepted call
 * is charged to the budget (n bytes at the header-scanning rate plus its estimate at a lower one) and
 * the charge looks at the clock, so a loop of allowed calls still meets the budget and the time limit.
 * string.rep refuses a result larger than the memory limit and charges the bytes it makes.
 */
#include "policy/policy_int.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#define PATTERN_STEPS_PER_BYTE 64.0 /* a worst-case step costs 1/64 of a scanned byte (1/1024 instruction) */
#define REP_BYTES_PER_BYTE 64.0     /* string.rep copies: 1/64 of a scanned byte per byte made */

enum pattern_fn {
    PATTERN_FIND = 0,
    PATTERN_MATCH,
    PATTERN_GMATCH,
    PATTERN_GSUB,
};

/* item_end - the index just past the single-character class starting at p[i] (Lua's classEnd) */
static size_t item_end(const char *p, size_t m, size_t i)
{
    if (p[i] == '%')
        return i + 2 <= m ? i + 2 : m;
    if (p[i] != '[')
        return i + 1;
    i++;
    if (i < m && p[i] == '^')
        i++;
    do { /* the first character of a set may be ']' */
        if (i >= m)
            return m;
        if (p[i] == '%' && i + 1 < m)
            i++;
        i++;
    } while (i < m && p[i] != ']');
    return i < m ? i + 1 : m;
}

/* pattern_shape - count the variable-length (q) and optional (o) items of a Lua pattern */
static void pattern_shape(const char *p, size_t m, unsigned *q, unsigned *o)
{
    size_t i = 0;

    *q = *o = 0;
    if (m && p[0] == '^')
        i = 1;
    while (i < m) {
        char c = p[i];
        if (c == '(' || c == ')') {
            i++;
            continue;
        }
        if (c == '%' && i + 1 < m) {
            char d = p[i + 1];
            if (d == 'b') { /* %bxy: a balanced run of any length */
                (*q)++;
                i += 4;
                continue;
            }
            if (d == 'f') { /* %f[set]: a frontier, zero width */
                i = item_end(p, m, i + 2 < m ? i + 2 : m);
                continue;
            }
            if (d >= '0' && d <= '9') { /* a back-reference compares a capture of any length */
                (*q)++;
                i += 2;
                continue;
            }
        }
        i = item_end(p, m, i);
        if (i < m && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
            (*q)++;
            i++;
        } else if (i < m && p[i] == '?') {
            (*o)++;
            i++;
        }
    }
}

/* pattern_steps - the worst-case estimate of the file head, saturated at POLICY_PATTERN_STEPS_MAX + 1 */
static double pattern_steps(size_t n, bool anchored, unsigned q, unsigned o)
{
    const double cap = (double)POLICY_PATTERN_STEPS_MAX + 1;
    double w = anchored ? 1.0 : (double)n + 1;

    for (unsigned k = 1; k <= q && w < cap; k++)
        w = w * ((double)n + k) / k;
    for (unsigned k = 0; k < o && w < cap; k++)
        w *= 2;
    return w < cap ? w : cap;
}

/* subject_from - the length of the subject from the init argument at idx, as Lua's find/match read it */
static size_t subject_from(lua_State *L, size_t len, int idx)
{
    lua_Integer init = luaL_optinteger(L, idx, 1);
    if (init < 0)
        init = (lua_Integer)len + init + 1 > 0 ? (lua_Integer)len + init + 1 : 1;
    if (init == 0)
        init = 1;
    if ((size_t)init > len + 1)
        return 0;
    return len - (size_t)init + 1;
}

/* pattern_call - check and charge, then run the original function (upvalue 1) on the same arguments */
static int pattern_call(lua_State *L, enum pattern_fn fn)
{
    struct policy_lua *pl = pl_of(L);
    size_t len, m;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *p = luaL_checklstring(L, 2, &m);
    size_t n = len;
    bool plain = false;
    unsigned q, o;

    (void)s;
    if (fn == PATTERN_FIND || fn == PATTERN_MATCH)
        n = subject_from(L, len, 3);
    if (fn == PATTERN_FIND && lua_toboolean(L, 4))
        plain = true;
    double w = 0;
    if (!plain) {
        bool anchored = m && p[0] == '^' && fn != PATTERN_GMATCH;
        pattern_shape(p, m, &q, &o);
        w = pattern_steps(n, anchored, q, o);
        if (w > (double)POLICY_PATTERN_STEPS_MAX)
            policy_budget_refuse(L, pl,
                                 "pattern too costly for a %I-byte subject (%d variable-length items; "
                                 "limit %d steps)",
                                 (lua_Integer)n, (int)q, (int)POLICY_PATTERN_STEPS_MAX);
    }
    policy_budget_charge(L, pl, n + (size_t)(w / PATTERN_STEPS_PER_BYTE));
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

static int pt_find(lua_State *L)
{
    return pattern_call(L, PATTERN_FIND);
}

static int pt_match(lua_State *L)
{
    return pattern_call(L, PATTERN_MATCH);
}

static int pt_gmatch(lua_State *L)
{
    return pattern_call(L, PATTERN_GMATCH);
}

static int pt_gsub(lua_State *L)
{
    return pattern_call(L, PATTERN_GSUB);
}

/* string.rep(s, n [, sep]): the result's size is charged before the copy is made */
static int pt_rep(lua_State *L)
{
    size_t len, seplen = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);

    if (n > 0) {
        struct policy_lua *pl = pl_of(L);
        double total = (double)n * (double)len + (double)(n - 1) * (double)seplen;
        if (total > (double)pl->lim.memory_limit)
            policy_budget_refuse(L, pl, "string.rep result too large (%I bytes)", (lua_Integer)total);
        policy_budget_charge(L, pl, (size_t)(total / REP_BYTES_PER_BYTE));
    }
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, 1);
    return 1;
}

void policy_pattern_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"find", pt_find}, {"match", pt_match}, {"gmatch", pt_gmatch}, {"gsub", pt_gsub}, {"rep", pt_rep},
        {NULL, NULL},
    };

    /* the string table is also the strings' __index, so s:find() goes through the wrappers too */
    lua_getglobal(L, "string");
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_getfield(L, -1, f->name);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_pop(L, 1);
}
