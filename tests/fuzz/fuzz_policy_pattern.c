/*
 * fuzz_policy_pattern - the sandbox's bounded string.find/match/gmatch/gsub/rep (policy/policy_pattern.c)
 * on any subject and pattern
 *
 * The input is SUBJECT NUL PATTERN. An EHLO handler runs each pattern function on them under pcall,
 * so a malformed pattern is the script's own error. Whatever the bytes: the call returns (accepted,
 * a plain error, or stopped like a budget overrun when the worst case is too long) well within the
 * hook's time limit, and the state serves the next call. The script is written to a scratch file once
 * and removed as soon as it is loaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "policy/policy_lua.h"
#include "tests/fuzz/fuzz.h"

static const char script[] =
    "ringmail.on('smtp_server_ehlo', function(d)\n"
    "  if d == 'ping' then return end\n"
    "  local i = d:find('\\0', 1, true)\n"
    "  if not i then return end\n"
    "  local s, p = d:sub(1, i - 1), d:sub(i + 1)\n"
    "  pcall(string.find, s, p)\n"
    "  pcall(string.find, s, p, -3)\n"
    "  pcall(string.match, s, p)\n"
    "  pcall(string.gsub, s, p, '%0')\n"
    "  pcall(function() for _ in s:gmatch(p) do end end)\n"
    "  pcall(string.rep, s, #p, p)\n"
    "end)\n";

static struct policy_lua *pl;

static struct policy_lua *state(void)
{
    char path[] = "/tmp/fuzz_policy_pattern.XXXXXX";
    char *err = NULL;
    int fd;

    if (pl)
        return pl;
    fd = mkstemp(path);
    if (fd < 0 || write(fd, script, sizeof(script) - 1) != (ssize_t)(sizeof(script) - 1))
        abort();
    close(fd);
    struct policy_lua_limits lim = {.instruction_budget = 10000000, .memory_limit = 64u << 20,
                                    .time_limit_ns = CLOCK_MS(500)};
    int rc = policy_lua_new(path, &lim, &pl, &err);
    unlink(path);
    if (rc != 0)
        abort();
    return pl;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct policy_lua_conn conn = {"127.0.0.1", 40000, "127.0.0.1", 25};
    struct policy_lua_result res;
    struct policy_lua *p = state();

    uint64_t t0 = clock_mono_ns();
    enum policy_lua_status st = policy_lua_ehlo(p, &conn, (const char *)data, size, NULL, &res);
    CHECK(clock_mono_ns() - t0 < CLOCK_SEC(3));
    CHECK(st == POLICY_LUA_ACCEPT || st == POLICY_LUA_BUDGET || st == POLICY_LUA_NOMEM);
    CHECK(policy_lua_ehlo(p, &conn, "ping", 4, NULL, &res) == POLICY_LUA_ACCEPT);
    return 0;
}
