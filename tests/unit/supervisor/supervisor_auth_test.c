/*
 * supervisor_auth_test - the admin API's pure access checks: the token file's text, the bearer header
 * (constant-time compare), the Host header against the listener (DNS rebinding), the Origin of the console's
 * own page, and the console's file table (only the embedded names)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/supervisor_auth.h"
#include "tests/lib/check.h"

#define TOK "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_token_parse(void)
{
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {TOK, 0},
        {TOK "\n", 0},
        {TOK "\n\n", -EINVAL},
        {TOK "0", -EINVAL},
        {"0123456789abcdef", -EINVAL},
        {"", -EINVAL},
        {"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", -EINVAL},
        {"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", -EINVAL},
        {" 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[SUP_AUTH_TOKEN_HEX + 1] = "";
        int rc = supervisor_auth_token_parse(cases[i].text, strlen(cases[i].text), t);
        CHECK(rc == cases[i].rc, "token_parse case %zu: %d", i, rc);
        if (rc == 0)
            CHECK(strcmp(t, TOK) == 0, "token_parse case %zu: %s", i, t);
    }
}

static void test_bearer(void)
{
    struct sup_auth a = {0};
    memcpy(a.token, TOK, sizeof(TOK));
    static const struct {
        const char *h;
        bool ok;
    } cases[] = {
        {"Bearer " TOK, true},
        {"bearer " TOK, true},
        {"Bearer   " TOK "  ", true},
        {"Bearer " TOK "0", false},
        {"Bearer 1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false},
        {"Bearer", false},
        {"Bearer ", false},
        {"Basic " TOK, false},
        {TOK, false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(supervisor_auth_bearer_ok(&a, cases[i].h) == cases[i].ok, "bearer case %zu (%s)", i,
              cases[i].h ? cases[i].h : "NULL");
}

static void test_host(void)
{
    struct sup_auth v4 = {.port = 8025, .listen_family = AF_INET}, any = {.port = 8025, .listen_family = AF_INET,
                                                                           .listen_any = true};
    struct sup_auth v6 = {.port = 8025, .listen_family = AF_INET6};
    inet_pton(AF_INET, "127.0.0.1", v4.listen_addr);
    inet_pton(AF_INET6, "::1", v6.listen_addr);
    const char *names[] = {"mx1.example.net", "node-a", NULL};
    static const struct {
        int which; /* 0 v4, 1 any, 2 v6 */
        const char *host;
        bool ok;
    } cases[] = {
        {0, "127.0.0.1:8025", true},
        {0, "127.0.0.1", true},
        {0, "localhost", true},
        {0, "LocalHost:8025", true},
        {0, "mx1.example.net:8025", true},
        {0, "MX1.example.net", true},
        {0, "node-a", true},
        {0, "127.0.0.1:8026", false},
        {0, "localhost:80", false},
        {0, "127.0.0.2:8025", false},
        {0, "evil.example", false},
        {0, "evil.example:8025", false},
        {0, "localhost.", false},
        {0, "[::1]:8025", false},
        {0, "", false},
        {0, "127.0.0.1:", false},
        {0, "[127.0.0.1]:8025", false},
        {1, "192.0.2.7:8025", true},
        {1, "[2001:db8::1]:8025", true},
        {1, "rebind.example:8025", false},
        {2, "[::1]:8025", true},
        {2, "[::1]", true},
        {2, "[::2]:8025", false},
        {2, "127.0.0.1:8025", false},
        {2, "::1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct sup_auth *a = cases[i].which == 0 ? &v4 : cases[i].which == 1 ? &any : &v6;
        CHECK(supervisor_auth_host_ok(a, cases[i].host, names, 3) == cases[i].ok, "host case %zu (%s)", i,
              cases[i].host);
    }
}

static void test_origin(void)
{
    static const struct {
        const char *origin, *host;
        bool ok;
    } cases[] = {
        {"http://127.0.0.1:8025", "127.0.0.1:8025", true},
        {"http://localhost:8025", "LocalHost:8025", true},
        {"http://node-a", "node-a", true},
        {"http://127.0.0.1:8026", "127.0.0.1:8025", false},
        {"http://127.0.0.1:8025/", "127.0.0.1:8025", false},
        {"https://127.0.0.1:8025", "127.0.0.1:8025", false},
        {"http://evil.example", "127.0.0.1:8025", false},
        {"http://127.0.0.1:80255", "127.0.0.1:8025", false},
        {"http://127.0.0.1", "127.0.0.1:8025", false},
        {"null", "127.0.0.1:8025", false},
        {"http://", "", false},
        {"", "", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK(supervisor_auth_origin_same(cases[i].origin, cases[i].host) == cases[i].ok, "origin case %zu (%s)", i,
              cases[i].origin);
}

static void test_ui_files(void)
{
    static const struct {
        const char *url, *type; /* NULL: not served */
    } cases[] = {
        {"/ui/", "text/html; charset=utf-8"},
        {"/ui/index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "text/javascript; charset=utf-8"},
        {"/ui/style.css", "text/css; charset=utf-8"},
        {"/ui", NULL},
        {"/ui/../api/v1/status", NULL},
        {"/ui/./app.js", NULL},
        {"/ui//app.js", NULL},
        {"/ui/app.js/", NULL},
        {"/ui/APP.JS", NULL},
        {"/ui/app.js\\", NULL},
        {"/UI/app.js", NULL},
        {"", NULL},
    };
    supervisor_ui_init();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *type = NULL, *data = NULL;
        size_t len = 0;
        bool found = supervisor_ui_find(cases[i].url, &type, &data, &len);
        CHECK(found == (cases[i].type != NULL), "ui case %zu (%s)", i, cases[i].url);
        if (found && cases[i].type) {
            CHECK(strcmp(type, cases[i].type) == 0, "ui case %zu type %s", i, type);
            CHECK(len > 100 && strlen(data) == len, "ui case %zu: %zu bytes, NUL-terminated after them", i, len);
        }
    }
    CHECK(supervisor_ui_is_ui("/ui") && supervisor_ui_is_ui("/ui/x") && !supervisor_ui_is_ui("/uix") &&
              !supervisor_ui_is_ui("/api/v1/status"),
          "ui prefix");
}

int main(void)
{
    test_token_parse();
    test_bearer();
    test_host();
    test_origin();
    test_ui_files();
    return check_failures ? 1 : 0;
}
