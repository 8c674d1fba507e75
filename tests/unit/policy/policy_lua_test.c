/*
 * policy_lua_test - the Lua policy sandbox: hooks, reject, metadata, limits, hostile scripts (LUA-01)
 *
 * Scripts live in $RINGMAIL_TEST_DATA (tests/unit/policy/data). hooks.lua picks its behaviour from
 * the EHLO domain, so most hostile cases are one row of a table: domain -> expected status, reply
 * code and a word of the detail. After every row a plain call must still work on the same state.
 * Reload and bytecode cases write files into a temporary directory that is removed at the end.
 */
#include "policy/policy_lua.h"

#include "base/clock.h"
#include "base/log.h"
#include "tests/lib/check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *data_dir;

static const struct policy_lua_conn conn4 = {"127.0.0.1", 40000, "127.0.0.1", 25};

static char *data_path(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", data_dir, name);
    return buf;
}

static struct policy_lua *load(const char *name, const struct policy_lua_limits *lim)
{
    struct policy_lua *pl = NULL;
    char *err = NULL;
    int rc = policy_lua_new(data_path(name), lim, &pl, &err);
    if (rc != 0 || !pl) {
        FAIL("load %s: rc %d: %s", name, rc, err ? err : "(no message)");
        free(err);
        return NULL;
    }
    if (err)
        FAIL("load %s: err set on success", name);
    return pl;
}

static const char *meta_or(const struct policy_lua_meta *m, const char *key)
{
    const char *v = policy_lua_meta_get(m, key);
    return v ? v : "(unset)";
}

#define EXPECT_META(m, key, want)                                                                            \
    do {                                                                                                     \
        const char *got_ = meta_or((m), (key));                                                              \
        if (strcmp(got_, (want)) != 0)                                                                       \
            FAIL("meta %s = \"%s\", want \"%s\"", (key), got_, (want));                                      \
    } while (0)

static enum policy_lua_status ehlo(struct policy_lua *pl, const char *domain, struct policy_lua_meta *meta,
                                   struct policy_lua_result *res)
{
    return policy_lua_ehlo(pl, &conn4, domain, strlen(domain), meta, res);
}

/* sane - the state still serves a plain call after whatever happened before */
static void sane(struct policy_lua *pl, const char *after)
{
    struct policy_lua_meta m;
    struct policy_lua_result res;

    policy_lua_meta_init(&m);
    enum policy_lua_status st = ehlo(pl, "ok.example", &m, &res);
    if (st != POLICY_LUA_ACCEPT || strcmp(meta_or(&m, "helo_ok"), "yes") != 0)
        FAIL("after %s: plain call gave %s (%s), helo_ok=%s", after, policy_lua_status_name(st), res.detail,
             meta_or(&m, "helo_ok"));
    policy_lua_meta_fini(&m);
}

struct ehlo_case {
    const char *domain;
    enum policy_lua_status status;
    int code;
    const char *text;   /* exact reply text for REJECT; NULL: not checked */
    const char *detail; /* substring of res.detail; NULL: not checked */
};

static const struct ehlo_case ehlo_cases[] = {
    {"ok.example", POLICY_LUA_ACCEPT, 0, "", NULL},
    {"bad.example", POLICY_LUA_REJECT, 550, "5.7.1 go away", NULL},
    {"tempfail.example", POLICY_LUA_REJECT, 421, "4.7.0 try later", NULL},
    {"pcallreject.example", POLICY_LUA_REJECT, 550, "5.7.1 caught?", NULL},
    /* budget: plain, and dressed up to dodge it */
    {"loop.example", POLICY_LUA_BUDGET, 451, NULL, "instruction budget"},
    {"pcallloop.example", POLICY_LUA_BUDGET, 451, NULL, "budget"},
    {"xpcallloop.example", POLICY_LUA_BUDGET, 451, NULL, "budget"},
    {"closeloop.example", POLICY_LUA_BUDGET, 451, NULL, "budget"},
    /* memory */
    {"membomb.example", POLICY_LUA_NOMEM, 451, NULL, "memory"},
    {"memtable.example", POLICY_LUA_NOMEM, 451, NULL, "memory"},
    {"pcallmem.example", POLICY_LUA_NOMEM, 451, NULL, "memory"},
    /* what the sandbox leaves out */
    {"io.example", POLICY_LUA_ERROR, 451, NULL, "'io'"},
    {"os.example", POLICY_LUA_ERROR, 451, NULL, "'os'"},
    {"load.example", POLICY_LUA_ERROR, 451, NULL, "'load'"},
    {"loadstring.example", POLICY_LUA_ERROR, 451, NULL, "'loadstring'"},
    {"require.example", POLICY_LUA_ERROR, 451, NULL, "'require'"},
    {"dofile.example", POLICY_LUA_ERROR, 451, NULL, "'dofile'"},
    {"loadfile.example", POLICY_LUA_ERROR, 451, NULL, "'loadfile'"},
    {"debug.example", POLICY_LUA_ERROR, 451, NULL, "'debug'"},
    {"package.example", POLICY_LUA_ERROR, 451, NULL, "'package'"},
    {"coroutine.example", POLICY_LUA_ERROR, 451, NULL, "'coroutine'"},
    {"collect.example", POLICY_LUA_ERROR, 451, NULL, "'collectgarbage'"},
    {"dump.example", POLICY_LUA_ERROR, 451, NULL, "dump"},
    {"strdump.example", POLICY_LUA_ERROR, 451, NULL, "dump"},
    {"gc.example", POLICY_LUA_ERROR, 451, NULL, "__gc"},
    /* errors of every shape */
    {"errstring.example", POLICY_LUA_ERROR, 451, NULL, "hooks.lua:"},
    {"errtable.example", POLICY_LUA_ERROR, 451, NULL, "table value"},
    {"errnil.example", POLICY_LUA_ERROR, 451, NULL, "nil value"},
    {"errfunc.example", POLICY_LUA_ERROR, 451, NULL, "function value"},
    {"errtostring.example", POLICY_LUA_ERROR, 451, NULL, "table value"},
    {"badcode.example", POLICY_LUA_ERROR, 451, NULL, "4xx or 5xx"},
    {"badtext.example", POLICY_LUA_ERROR, 451, NULL, "printable ASCII"},
    {"longtext.example", POLICY_LUA_ERROR, 451, NULL, "1..400"},
    {"metabadkey.example", POLICY_LUA_ERROR, 451, NULL, "key"},
    {"metamany.example", POLICY_LUA_ERROR, 451, NULL, "too many"},
    {"metalong.example", POLICY_LUA_ERROR, 451, NULL, "value"},
    {"metactl.example", POLICY_LUA_ERROR, 451, NULL, "value"},
    {"metabadutf8.example", POLICY_LUA_ERROR, 451, NULL, "value"},
    {"metareadonly.example", POLICY_LUA_ERROR, 451, NULL, "read-only"},
    {"metatable.example", POLICY_LUA_ERROR, 451, NULL, "strings"},
    {"metathenfail.example", POLICY_LUA_ERROR, 451, NULL, "after set"},
    {"metathenreject.example", POLICY_LUA_REJECT, 550, "5.7.1 no", NULL},
    {"stash.example", POLICY_LUA_ACCEPT, 0, "", NULL},
    {"usestash.example", POLICY_LUA_ERROR, 451, NULL, "earlier event"},
    {"onlater.example", POLICY_LUA_ERROR, 451, NULL, "while the policy file loads"},
    {"badlevel.example", POLICY_LUA_ERROR, 451, NULL, "level"},
    {"rawset.example", POLICY_LUA_ACCEPT, 0, "", NULL},
    {"log.example", POLICY_LUA_ACCEPT, 0, "", NULL},
    {"pattern.example", POLICY_LUA_ACCEPT, 0, "", NULL},
    /* C string functions: refused up front when their worst case is too long (LUA-02), pcall or not */
    {"backtrack.example", POLICY_LUA_BUDGET, 451, NULL, "pattern too costly for a 2000-byte subject"},
    {"backtrackmethod.example", POLICY_LUA_BUDGET, 451, NULL, "pattern too costly"},
    {"backtrackpcall.example", POLICY_LUA_BUDGET, 451, NULL, "pattern too costly"},
    {"backtrackgmatch.example", POLICY_LUA_BUDGET, 451, NULL, "pattern too costly"},
    {"repbomb.example", POLICY_LUA_BUDGET, 451, NULL, "string.rep result too large"},
    {"findloop.example", POLICY_LUA_BUDGET, 451, NULL, "instruction budget"},
    {"trim.example", POLICY_LUA_ACCEPT, 0, "", NULL},
};

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_ehlo_table(void)
{
    struct policy_lua_limits lim = {.instruction_budget = 1000000, .memory_limit = 16u << 20};
    struct policy_lua *pl = load("hooks.lua", &lim);
    if (!pl)
        return;
    for (size_t i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]); i++) {
        const struct ehlo_case *c = &ehlo_cases[i];
        struct policy_lua_meta m;
        struct policy_lua_result res;
        /* CPU time, not wall time: what the budget bounds is work, and a loaded machine stretches the wall */
        uint64_t t0 = thread_cpu_ns();

        policy_lua_meta_init(&m);
        policy_lua_meta_set(&m, "before", "1", 1);
        enum policy_lua_status st = ehlo(pl, c->domain, &m, &res);
        uint64_t ms = (thread_cpu_ns() - t0) / 1000000;
        if (st != c->status || res.status != st)
            FAIL("%s: status %s, want %s (detail: %s)", c->domain, policy_lua_status_name(st),
                 policy_lua_status_name(c->status), res.detail);
        if (res.code != c->code)
            FAIL("%s: code %d, want %d", c->domain, res.code, c->code);
        if (c->text && strcmp(res.text, c->text) != 0)
            FAIL("%s: text \"%s\", want \"%s\"", c->domain, res.text, c->text);
        if (st != POLICY_LUA_ACCEPT && st != POLICY_LUA_REJECT && strncmp(res.text, "4.3.0 ", 6) != 0)
            FAIL("%s: failure text \"%s\" lacks 4.3.0", c->domain, res.text);
        if (c->detail && !strstr(res.detail, c->detail))
            FAIL("%s: detail \"%s\" lacks \"%s\"", c->domain, res.detail, c->detail);
        if (ms > 5000)
            FAIL("%s: took %llu ms", c->domain, (unsigned long long)ms);
        /* a failed or rejected call leaves the caller's metadata as it was */
        if (st != POLICY_LUA_ACCEPT && (m.count != 1 || strcmp(meta_or(&m, "before"), "1") != 0))
            FAIL("%s: metadata changed by a failed call (%u keys)", c->domain, m.count);
        if (strcmp(c->domain, "rawset.example") == 0)
            EXPECT_META(&m, "raw", "1");
        if (strcmp(c->domain, "pattern.example") == 0)
            EXPECT_META(&m, "m", "bc");
        if (strcmp(c->domain, "trim.example") == 0)
            EXPECT_META(&m, "trim", "x y|3|151|nil");
        if (policy_lua_mem_used(pl) > lim.memory_limit)
            FAIL("%s: %zu bytes used, over the cap", c->domain, policy_lua_mem_used(pl));
        policy_lua_meta_fini(&m);
        sane(pl, c->domain);
        if ((st == POLICY_LUA_NOMEM) && policy_lua_mem_used(pl) > lim.memory_limit / 2)
            FAIL("%s: %zu bytes still used after the next call", c->domain, policy_lua_mem_used(pl));
    }
    if (access("/tmp/ringmail-policy-test-pwned", F_OK) == 0) {
        FAIL("os.execute ran");
        unlink("/tmp/ringmail-policy-test-pwned");
    }

    /* state persists between calls, also across failures */
    struct policy_lua_meta m;
    struct policy_lua_result res;
    policy_lua_meta_init(&m);
    ehlo(pl, "count.example", &m, &res);
    ehlo(pl, "loop.example", &m, &res);
    ehlo(pl, "count.example", &m, &res);
    EXPECT_META(&m, "seen", "2");
    /* a NULL meta is allowed: writes go nowhere */
    if (ehlo(pl, "ok.example", NULL, &res) != POLICY_LUA_ACCEPT)
        FAIL("NULL meta: %s", res.detail);
    policy_lua_meta_fini(&m);
    policy_lua_free(pl);
}

static void test_hooks_meta(void)
{
    struct policy_lua *pl = load("hooks.lua", NULL);
    struct policy_lua_meta m;
    struct policy_lua_result res;
    enum policy_lua_status st;

    if (!pl)
        return;
    for (int h = 0; h < POLICY_LUA_HOOK__COUNT; h++)
        if (!policy_lua_has_hook(pl, (enum policy_lua_hook)h))
            FAIL("hook %s not registered", policy_lua_hook_name((enum policy_lua_hook)h));

    policy_lua_meta_init(&m);
    st = policy_lua_connection_accepted(pl, &conn4, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("connection_accepted: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "peer", "127.0.0.1:40000");
    EXPECT_META(&m, "via", "127.0.0.1:25");
    EXPECT_META(&m, "proto", "ESMTP");
    policy_lua_meta_fini(&m);

    struct policy_lua_conn c6 = {"::1", 40001, "::1", 587};
    st = policy_lua_connection_accepted(pl, &c6, &m, &res);
    EXPECT_META(&m, "peer", "[::1]:40001");
    EXPECT_META(&m, "via", "[::1]:587");
    policy_lua_meta_fini(&m);

    struct policy_lua_conn bad = {"127.0.0.66", 1234, "127.0.0.1", 25};
    st = policy_lua_connection_accepted(pl, &bad, &m, &res);
    if (st != POLICY_LUA_REJECT || res.code != 421 || strcmp(res.text, "4.7.0 not from you") != 0)
        FAIL("connection_accepted reject: %s %d %s", policy_lua_status_name(st), res.code, res.text);
    if (m.count != 0)
        FAIL("rejected connection left metadata");

    /* MAIL FROM: address object, params, metadata */
    const struct policy_lua_param params[] = {{"SIZE", "1234"}, {"SMTPUTF8", NULL}, {NULL, "ignored"}};
    const char *from = "alice@example.com";
    st = policy_lua_mail_from(pl, &conn4, from, strlen(from), params, 3, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("mail_from: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "tenant", "example.com");
    EXPECT_META(&m, "queue", "q-example.com");
    EXPECT_META(&m, "size", "1234");
    EXPECT_META(&m, "utf8", "true");
    EXPECT_META(&m, "sender_str", "same");
    st = policy_lua_mail_from(pl, &conn4, "", 0, NULL, 0, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("mail_from <>: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "tenant", "");
    EXPECT_META(&m, "size", "none");
    EXPECT_META(&m, "utf8", "false");
    st = policy_lua_mail_from(pl, &conn4, from, strlen(from), params, 2, &m, &res);
    unsigned before = m.count;
    st = policy_lua_mail_from(pl, &conn4, "spam@example.net", 16, NULL, 0, &m, &res);
    if (st != POLICY_LUA_REJECT || res.code != 550 || strcmp(res.text, "5.7.1 no spam") != 0)
        FAIL("mail_from reject: %s %d %s", policy_lua_status_name(st), res.code, res.text);
    if (m.count != before || strcmp(meta_or(&m, "tenant"), "example.com") != 0)
        FAIL("rejected MAIL changed metadata");

    if (policy_lua_mail_from(pl, &conn4, "gc@x", 4, NULL, 0, &m, &res) != POLICY_LUA_ERROR)
        FAIL("address metatable reachable: %s", policy_lua_status_name(res.status));

    /* RCPT TO */
    st = policy_lua_rcpt_to(pl, &conn4, "bob@dest.example", 16, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("rcpt_to: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "campaign", "c-bob");
    st = policy_lua_rcpt_to(pl, &conn4, "carol@nowhere.example", 21, &m, &res);
    if (st != POLICY_LUA_REJECT || res.code != 550 || strcmp(res.text, "5.1.1 no such user") != 0)
        FAIL("rcpt_to reject: %s %d %s", policy_lua_status_name(st), res.code, res.text);

    /* AUTH: true accepts; false, a non-boolean, a reject are refusals; an empty authz is the authc */
    bool ok = false;
    st = policy_lua_auth_plain(pl, &conn4, "", "carol", "lua-secret", &m, &ok, &res);
    if (st != POLICY_LUA_ACCEPT || !ok)
        FAIL("auth_plain carol: %s %d %s", policy_lua_status_name(st), ok, res.detail);
    EXPECT_META(&m, "auth_tried", "carol/carol");
    st = policy_lua_auth_plain(pl, &conn4, "boss", "carol", "wrong", &m, &ok, &res);
    if (st != POLICY_LUA_ACCEPT || ok)
        FAIL("auth_plain wrong password: %s %d", policy_lua_status_name(st), ok);
    EXPECT_META(&m, "auth_tried", "boss/carol");
    st = policy_lua_auth_plain(pl, &conn4, "", "string", "x", &m, &ok, &res);
    if (st != POLICY_LUA_ACCEPT || ok)
        FAIL("auth_plain returning a string: %s %d", policy_lua_status_name(st), ok);
    st = policy_lua_auth_plain(pl, &conn4, "", "reject", "x", &m, &ok, &res);
    if (st != POLICY_LUA_REJECT || ok || res.code != 535)
        FAIL("auth_plain reject: %s %d %d", policy_lua_status_name(st), ok, res.code);
    policy_lua_meta_set(&m, "auth_tried", NULL, 0);

    /* message received: headers readable (case, folding, LF-only lines, junk lines), metadata settable */
    static const char headers[] = "Received: from a by b;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
                                  "Received: from c by d; Tue, 2 Jan 2024\r\n"
                                  "this line has no colon\r\n"
                                  "X-TENANT :  acme  \r\n"
                                  "Subject: hello\r\n  folded\n world\r\n"
                                  "\r\n"
                                  "X-After-Body: not a header\r\n";
    const struct policy_lua_str rcpts[] = {{"bob@dest.example", 16}, {"dave@other.example", 18}};
    struct policy_lua_message msg = {headers, sizeof(headers) - 1, {"alice@example.com", 17}, rcpts, 2, 4321};
    st = policy_lua_message_received(pl, &conn4, &msg, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("message_received: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "tenant", "acme");
    EXPECT_META(&m, "routing_domain", "smarthost.example");
    EXPECT_META(&m, "subject", "hello  folded world");
    EXPECT_META(&m, "received_count", "2");
    EXPECT_META(&m, "header_count", "4");
    EXPECT_META(&m, "first_header", "Received");
    EXPECT_META(&m, "sender", "alice@example.com");
    EXPECT_META(&m, "rcpt_count", "2");
    EXPECT_META(&m, "first_rcpt", "dest.example");
    EXPECT_META(&m, "size", "4321");
    EXPECT_META(&m, "prev_queue", "q-example.com");
    EXPECT_META(&m, "missing", "nil");
    EXPECT_META(&m, "via_conn", "yes");
    EXPECT_META(&m, "campaign", "c-bob");
    /* the caller copies the list out: keys are unique, values as set */
    for (unsigned i = 0; i < m.count; i++)
        for (unsigned j = i + 1; j < m.count; j++)
            if (strcmp(m.items[i].key, m.items[j].key) == 0)
                FAIL("duplicate meta key %s", m.items[i].key);

    static const char blocked[] = "X-Tenant: blocked\r\n\r\n";
    struct policy_lua_message msg2 = {blocked, sizeof(blocked) - 1, {"", 0}, NULL, 0, 0};
    st = policy_lua_message_received(pl, &conn4, &msg2, &m, &res);
    if (st != POLICY_LUA_REJECT || res.code != 554)
        FAIL("message_received reject: %s %d %s", policy_lua_status_name(st), res.code, res.text);
    /* no headers, no recipients: the script's msg:recipient() is nil and indexing it fails cleanly */
    struct policy_lua_message msg3 = {NULL, 0, {NULL, 0}, NULL, 0, 0};
    st = policy_lua_message_received(pl, &conn4, &msg3, &m, &res);
    if (st != POLICY_LUA_ERROR)
        FAIL("message without headers/recipients: %s %s", policy_lua_status_name(st), res.detail);
    st = policy_lua_message_received(pl, &conn4, NULL, &m, &res);
    if (st != POLICY_LUA_ERROR)
        FAIL("NULL message: %s %s", policy_lua_status_name(st), res.detail);

    /* http_message_generated: its own handler, the same msg object */
    static const char hh[] = "Subject: built\r\nFrom: f@example.com\r\n\r\n";
    struct policy_lua_message hm = {hh, sizeof(hh) - 1, {"alice@example.com", 17}, rcpts, 2, 100};
    st = policy_lua_http_message_generated(pl, &conn4, &hm, &m, &res);
    if (st != POLICY_LUA_ACCEPT)
        FAIL("http_message_generated: %s %s", policy_lua_status_name(st), res.detail);
    EXPECT_META(&m, "http_subject", "built");
    EXPECT_META(&m, "http_rcpts", "2");
    static const char hr[] = "Subject: refuse\r\n\r\n";
    struct policy_lua_message hm2 = {hr, sizeof(hr) - 1, {"", 0}, rcpts, 1, 10};
    st = policy_lua_http_message_generated(pl, &conn4, &hm2, &m, &res);
    if (st != POLICY_LUA_REJECT || res.code != 550 || !strstr(res.text, "http refused"))
        FAIL("http_message_generated reject: %s %d %s", policy_lua_status_name(st), res.code, res.text);
    policy_lua_meta_fini(&m);
    policy_lua_free(pl);
}

static void hex(const char *s, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", (unsigned char)s[i]);
    out[2 * n] = '\0';
}

/* NUL bytes and invalid UTF-8 reach the script intact and never cut a string short */
static void test_hostile_bytes(void)
{
    struct policy_lua *pl = load("hooks.lua", NULL);
    struct policy_lua_meta m;
    struct policy_lua_result res;
    char want[128];

    if (!pl)
        return;
    policy_lua_meta_init(&m);
    static const char dom[] = "a\0b\xff\xfe\xc0\x80\r\n.";
    if (ehlo(pl, "", &m, &res) != POLICY_LUA_ACCEPT)
        FAIL("empty ehlo: %s", res.detail);
    EXPECT_META(&m, "ehlo_len", "0");
    policy_lua_ehlo(pl, &conn4, dom, sizeof(dom) - 1, &m, &res);
    hex(dom, sizeof(dom) - 1, want);
    EXPECT_META(&m, "ehlo_hex", want);
    EXPECT_META(&m, "ehlo_len", "10");

    static const char from[] = "x\0y@d\xc3\0@z.example";
    if (policy_lua_mail_from(pl, &conn4, from, sizeof(from) - 1, NULL, 0, &m, &res) != POLICY_LUA_ACCEPT)
        FAIL("mail_from with NUL: %s", res.detail);
    hex(from, sizeof(from) - 1, want);
    EXPECT_META(&m, "sender_hex", want);
    EXPECT_META(&m, "tenant", "z.example");
    /* the script copies the domain into a metadata value, which refuses NUL: an error, not a cut string */
    static const char from2[] = "u@a\0b";
    if (policy_lua_mail_from(pl, &conn4, from2, sizeof(from2) - 1, NULL, 0, &m, &res) != POLICY_LUA_ERROR)
        FAIL("tenant with NUL accepted: %s", policy_lua_status_name(res.status));
    static const char rcpt[] = "\0\0@\0";
    if (policy_lua_rcpt_to(pl, &conn4, rcpt, sizeof(rcpt) - 1, &m, &res) != POLICY_LUA_ERROR)
        FAIL("campaign with NUL accepted: %s", policy_lua_status_name(res.status));
    static const char hdr[] = "X-Tenant: a\0b\r\nSubject: \xff\xfe\r\n\r\n";
    struct policy_lua_message msg = {hdr, sizeof(hdr) - 1, {"a@b", 3}, NULL, 0, 0};
    if (policy_lua_message_received(pl, &conn4, &msg, &m, &res) != POLICY_LUA_ERROR)
        FAIL("tenant header with NUL accepted: %s", policy_lua_status_name(res.status));
    /* header sections that end mid-line, have only junk, or are a lone CR */
    static const char *const junk[] = {"Subject", "Subject:", ":::\r\n",
                                       "\r",      "\n",       " \t folded-first: x\r\n"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        struct policy_lua_message jm = {junk[i], strlen(junk[i]), {"a@b", 3}, NULL, 0, 0};
        policy_lua_message_received(pl, &conn4, &jm, &m, &res);
        if (res.status != POLICY_LUA_ERROR || !strstr(res.detail, "nil value"))
            FAIL("junk headers %zu: %s %s", i, policy_lua_status_name(res.status), res.detail);
    }
    policy_lua_meta_fini(&m);
    sane(pl, "hostile bytes");
    policy_lua_free(pl);
}

static void test_missing_hooks(void)
{
    struct policy_lua *pl = load("empty.lua", NULL);
    struct policy_lua_result res;
    struct policy_lua_meta m;

    policy_lua_meta_init(&m);
    for (int round = 0; round < 2; round++) {
        struct policy_lua *p = round ? NULL : pl; /* NULL: no policy file configured */
        for (int h = 0; h < POLICY_LUA_HOOK__COUNT; h++)
            if (policy_lua_has_hook(p, (enum policy_lua_hook)h))
                FAIL("empty policy has hook %d", h);
        if (policy_lua_connection_accepted(p, &conn4, &m, &res) != POLICY_LUA_ACCEPT ||
            policy_lua_ehlo(p, &conn4, "x", 1, &m, &res) != POLICY_LUA_ACCEPT ||
            policy_lua_mail_from(p, &conn4, "a@b", 3, NULL, 0, &m, &res) != POLICY_LUA_ACCEPT ||
            policy_lua_rcpt_to(p, &conn4, "a@b", 3, &m, &res) != POLICY_LUA_ACCEPT ||
            policy_lua_message_received(p, &conn4, NULL, &m, &res) != POLICY_LUA_ACCEPT)
            FAIL("missing hook did not accept (round %d)", round);
        if (res.code != 0 || res.text[0] || m.count)
            FAIL("accept left code %d text \"%s\" meta %u", res.code, res.text, m.count);
    }
    policy_lua_meta_fini(&m);
    policy_lua_free(pl);
}

static void test_kumo_compat(void)
{
    struct policy_lua *pl = load("kumo_compat.lua", NULL);
    struct policy_lua_result res;
    struct policy_lua_meta m;

    if (!pl)
        return;
    policy_lua_meta_init(&m);
    if (ehlo(pl, "bad.actor", &m, &res) != POLICY_LUA_REJECT || res.code != 420 ||
        strcmp(res.text, "go away"))
        FAIL("kumo ehlo reject: %d %s", res.code, res.text);
    if (ehlo(pl, "good.actor", &m, &res) != POLICY_LUA_ACCEPT)
        FAIL("kumo ehlo accept: %s", res.detail);
    if (policy_lua_mail_from(pl, &conn4, "x@bad.domain", 12, NULL, 0, &m, &res) != POLICY_LUA_REJECT ||
        res.code != 420 || strcmp(res.text, "not thanks"))
        FAIL("kumo mail reject: %d %s", res.code, res.text);
    if (policy_lua_rcpt_to(pl, &conn4, "x@good.domain", 13, &m, &res) != POLICY_LUA_ACCEPT)
        FAIL("kumo rcpt accept: %s", res.detail);
    static const char hdr[] = "From: a@b\r\nX-Tenant: t1\r\n\r\n";
    struct policy_lua_message msg = {hdr, sizeof(hdr) - 1, {"a@b", 3}, NULL, 0, 0};
    if (policy_lua_message_received(pl, &conn4, &msg, &m, &res) != POLICY_LUA_ACCEPT)
        FAIL("kumo message: %s", res.detail);
    EXPECT_META(&m, "tenant", "t1");
    EXPECT_META(&m, "routing_domain", "my.smarthost.com");
    if (policy_lua_has_hook(pl, POLICY_LUA_HOOK_CONNECTION_ACCEPTED))
        FAIL("kumo_compat has no connection handler");
    policy_lua_meta_fini(&m);
    policy_lua_free(pl);
}

struct load_case {
    const char *file; /* in the data dir; "/..." absolute */
    int rc;
    const char *err; /* substring of *err */
};

static void test_load_errors(void)
{
    const struct load_case cases[] = {
        {"syntax_error.lua", -EINVAL, "syntax_error.lua:4:"},
        {"runtime_error.lua", -EINVAL, "runtime_error.lua:3:"},
        {"load_loop.lua", -EINVAL, "budget"},
        {"load_membomb.lua", -ENOMEM, "memory"},
        {"duplicate.lua", -EINVAL, "duplicate.lua:3: a handler for 'smtp_server_ehlo' is already registered"},
        {"bad_event.lua", -EINVAL, "bad_event.lua:2:"},
        {"reject_at_load.lua", -EINVAL, "reject_at_load.lua:2:"},
        {"no_such_file.lua", -ENOENT, "no_such_file.lua: No such file"},
        {"", -EIO, "cannot read"}, /* the data directory itself */
    };
    struct policy_lua_limits lim = {.instruction_budget = 100000, .memory_limit = 8u << 20};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy_lua *pl = (struct policy_lua *)1;
        char *err = NULL;
        int rc = policy_lua_new(data_path(cases[i].file), &lim, &pl, &err);
        if (rc != cases[i].rc)
            FAIL("%s: rc %d, want %d (%s)", cases[i].file, rc, cases[i].rc, err ? err : "");
        if (pl)
            FAIL("%s: state returned on failure", cases[i].file);
        if (!err || !strstr(err, cases[i].err))
            FAIL("%s: error \"%s\" lacks \"%s\"", cases[i].file, err ? err : "(null)", cases[i].err);
        free(err);
    }
}

static int write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    size_t n = fwrite(text, 1, len, f);
    if (fclose(f) != 0 || n != len)
        return -EIO;
    return 0;
}

static void expect_ehlo_reply(struct policy_lua *pl, const char *text, const char *when)
{
    struct policy_lua_result res;
    if (ehlo(pl, "x", NULL, &res) != POLICY_LUA_REJECT || strcmp(res.text, text) != 0)
        FAIL("%s: reply %s \"%s\", want \"%s\"", when, policy_lua_status_name(res.status), res.text, text);
}

static void test_reload(void)
{
    char dir[] = "/tmp/policy_lua_test.XXXXXX";
    char path[256], bc[256];
    struct policy_lua *pl = NULL;
    char *err = NULL;
    static const char v1[] = "ringmail.on('smtp_server_ehlo', function() kumo.reject(550, '5.0.0 v1') end)\n";
    static const char v2[] = "ringmail.on('smtp_server_ehlo', function() kumo.reject(550, '5.0.0 v2') end)\n";
    static const char broken[] = "ringmail.on('smtp_server_ehlo', function(\n";
    static const char bytecode[] = "\x1bLua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08";

    if (!mkdtemp(dir)) {
        FAIL("mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(path, sizeof(path), "%s/policy.lua", dir);
    snprintf(bc, sizeof(bc), "%s/bytecode.lua", dir);

    if (write_file(path, v1, sizeof(v1) - 1) || policy_lua_reload(&pl, path, NULL, &err) != 0 || !pl) {
        FAIL("first load via reload: %s", err ? err : "");
        goto out;
    }
    expect_ehlo_reply(pl, "5.0.0 v1", "v1");
    struct policy_lua *was = pl;
    write_file(path, broken, sizeof(broken) - 1);
    if (policy_lua_reload(&pl, NULL, NULL, &err) != -EINVAL || pl != was || !err ||
        !strstr(err, "policy.lua:2:"))
        FAIL("broken reload: %s", err ? err : "(no error)");
    free(err);
    err = NULL;
    expect_ehlo_reply(pl, "5.0.0 v1", "after failed reload");
    write_file(path, v2, sizeof(v2) - 1);
    if (policy_lua_reload(&pl, NULL, NULL, &err) != 0 || pl == was)
        FAIL("good reload: %s", err ? err : "");
    expect_ehlo_reply(pl, "5.0.0 v2", "v2");

    /* a precompiled chunk is refused even with a .lua name */
    write_file(bc, bytecode, sizeof(bytecode) - 1);
    was = pl;
    if (policy_lua_reload(&pl, bc, NULL, &err) != -EINVAL || pl != was || !err || !strstr(err, "binary"))
        FAIL("bytecode: %s", err ? err : "(no error)");
    free(err);
    err = NULL;

    /* "" turns the policy off */
    if (policy_lua_reload(&pl, "", NULL, &err) != 0 || pl)
        FAIL("reload to no policy");
out:
    free(err);
    policy_lua_free(pl);
    unlink(path);
    unlink(bc);
    rmdir(dir);
}

static void test_limits(void)
{
    struct policy_lua_result res;

    /* the wall clock stops a loop the instruction budget would let run for hours */
    struct policy_lua_limits slow = {.instruction_budget = 10000000000000ull, .time_limit_ns = 50000000};
    struct policy_lua *pl = load("hooks.lua", &slow);
    if (pl) {
        uint64_t t0 = clock_mono_ns();
        if (ehlo(pl, "loop.example", NULL, &res) != POLICY_LUA_BUDGET || !strstr(res.detail, "time limit"))
            FAIL("time limit: %s %s", policy_lua_status_name(res.status), res.detail);
        uint64_t ms = (clock_mono_ns() - t0) / 1000000;
        if (ms < 40 || ms > 3000)
            FAIL("time limit took %llu ms", (unsigned long long)ms);
        sane(pl, "time limit");
        /* a loop of C pattern calls meets the clock too: the charge for each call looks at it */
        t0 = clock_mono_ns();
        if (ehlo(pl, "findloop.example", NULL, &res) != POLICY_LUA_BUDGET || !strstr(res.detail, "time limit"))
            FAIL("time limit (find loop): %s %s", policy_lua_status_name(res.status), res.detail);
        ms = (clock_mono_ns() - t0) / 1000000;
        if (ms < 40 || ms > 3000)
            FAIL("time limit (find loop) took %llu ms", (unsigned long long)ms);
        sane(pl, "time limit (find loop)");
        policy_lua_free(pl);
    }

    /* with room enough for Lua's own stack limit, deep recursion is a plain error */
    struct policy_lua_limits deep = {.instruction_budget = 1000000000, .memory_limit = 512u << 20};
    pl = load("hooks.lua", &deep);
    if (pl) {
        if (ehlo(pl, "recurse.example", NULL, &res) != POLICY_LUA_ERROR ||
            !strstr(res.detail, "stack overflow"))
            FAIL("recursion: %s %s", policy_lua_status_name(res.status), res.detail);
        sane(pl, "recursion");
        policy_lua_free(pl);
    }
    /* with the defaults it still fails cleanly, whichever limit comes first */
    pl = load("hooks.lua", NULL);
    if (pl) {
        if (ehlo(pl, "recurse.example", NULL, &res) == POLICY_LUA_ACCEPT || res.code != 451)
            FAIL("recursion (defaults): %s %s", policy_lua_status_name(res.status), res.detail);
        sane(pl, "recursion (defaults)");
        policy_lua_free(pl);
    }

    /* a tiny cap fails the load, it does not crash */
    struct policy_lua_limits tiny = {.memory_limit = 4096};
    struct policy_lua *p2 = NULL;
    char *err = NULL;
    if (policy_lua_new(data_path("hooks.lua"), &tiny, &p2, &err) != -ENOMEM || p2)
        FAIL("4 KiB cap: %s", err ? err : "(loaded)");
    free(err);
    policy_lua_free(p2);
}

static void test_meta_api(void)
{
    struct policy_lua_meta m, c;
    char key[16];

    policy_lua_meta_init(&m);
    policy_lua_meta_init(&c);
    if (policy_lua_meta_set(&m, "bad key", "v", 1) != -EINVAL ||
        policy_lua_meta_set(&m, "", "v", 1) != -EINVAL ||
        policy_lua_meta_set(&m, "k", "a\nb", 3) != -EINVAL ||
        policy_lua_meta_set(&m, "k", "a\0b", 3) != -EINVAL ||
        policy_lua_meta_set(&m, "k", "\xc3", 1) != -EINVAL)
        FAIL("meta_set accepted a bad key or value");
    if (policy_lua_meta_set(&m, "k", "caf\xc3\xa9", 5) != 0)
        FAIL("meta_set refused UTF-8");
    for (int i = 0; i < POLICY_LUA_META_MAX - 1; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        if (policy_lua_meta_set(&m, key, "v", 1) != 0)
            FAIL("meta_set %s", key);
    }
    if (policy_lua_meta_set(&m, "one_more", "v", 1) != -ENOSPC)
        FAIL("meta_set over the limit");
    if (policy_lua_meta_set(&m, "k", "replaced", 8) != 0 || strcmp(meta_or(&m, "k"), "replaced"))
        FAIL("meta_set replace");
    if (policy_lua_meta_set(&m, "k0", NULL, 0) != 0 || policy_lua_meta_get(&m, "k0") ||
        m.count != POLICY_LUA_META_MAX - 1 || strcmp(m.items[1].key, "k1"))
        FAIL("meta_set remove");
    policy_lua_meta_copy(&c, &m);
    policy_lua_meta_copy(&c, &m); /* twice: the old copy is freed, not leaked */
    if (c.count != m.count || strcmp(meta_or(&c, "k"), "replaced"))
        FAIL("meta_copy");
    policy_lua_meta_fini(&m);
    policy_lua_meta_fini(&c);
    policy_lua_meta_fini(&c);
}

int main(void)
{
    data_dir = getenv("RINGMAIL_TEST_DATA");
    if (!data_dir) {
        printf("SKIP: RINGMAIL_TEST_DATA not set\n");
        return 77;
    }
    log_init("policy_lua_test", -1);
    test_meta_api();
    test_load_errors();
    test_missing_hooks();
    test_ehlo_table();
    test_hooks_meta();
    test_hostile_bytes();
    test_kumo_compat();
    test_reload();
    test_limits();
    CHECK_EXIT();
}
