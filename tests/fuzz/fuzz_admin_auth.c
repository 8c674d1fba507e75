/*
 * fuzz_admin_auth - the admin API's checks of peer input (supervisor/supervisor_auth.h) on any bytes
 *
 * Input: the text, tried as a token file, an Authorization header and a Host header. Invariants: a
 * parsed token is 64 lower-case hex digits; the bearer check accepts exactly "Bearer" + spaces + the
 * token + spaces (case-insensitive scheme); a Host accepted for a loopback listener on 8025 is
 * localhost, the node's name or 127.0.0.1, with no port or 8025. An Origin taken as the console's own is
 * "http://" and the Host; a URL path served by the console is one of its four names.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "supervisor/supervisor_auth.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tok[SUP_AUTH_TOKEN_HEX + 1];
    if (supervisor_auth_token_parse((const char *)data, size, tok) == 0) {
        CHECK(strlen(tok) == SUP_AUTH_TOKEN_HEX);
        for (size_t i = 0; i < SUP_AUTH_TOKEN_HEX; i++)
            CHECK((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f'));
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct sup_auth a = {.port = 8025, .listen_family = AF_INET};
    memset(a.token, 'a', SUP_AUTH_TOKEN_HEX);
    inet_pton(AF_INET, "127.0.0.1", a.listen_addr);
    if (supervisor_auth_bearer_ok(&a, s)) {
        CHECK(strncasecmp(s, "Bearer ", 7) == 0);
        CHECK(strstr(s, a.token) != NULL);
    }
    const char *names[] = {"node-a"};
    if (supervisor_auth_host_ok(&a, s, names, 1)) {
        char *colon = strrchr(s, ':');
        size_t hl = colon ? (size_t)(colon - s) : strlen(s);
        CHECK(!colon || strtoul(colon + 1, NULL, 10) == 8025);
        CHECK((hl == 9 && strncasecmp(s, "localhost", 9) == 0) || (hl == 6 && strncasecmp(s, "node-a", 6) == 0) ||
              (hl == 9 && strncmp(s, "127.0.0.1", 9) == 0));
    }
    /* the Origin check: the input up to its first newline as Origin, the rest as Host */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t half = nl ? (size_t)(nl - data) : size / 2;
    char *origin = malloc(half + 1), *host = malloc(size - half + 1);
    memcpy(origin, data, half);
    origin[half] = '\0';
    memcpy(host, data + half, size - half);
    host[size - half] = '\0';
    if (nl)
        memmove(host, host + 1, size - half); /* without the newline (and its NUL moves along) */
    if (supervisor_auth_origin_same(origin, host))
        CHECK(strncmp(origin, "http://", 7) == 0 && strlen(host) > 0 && strcasecmp(origin + 7, host) == 0);
    free(origin);
    free(host);
    const char *type, *file;
    size_t len;
    if (supervisor_ui_find(s, &type, &file, &len))
        CHECK(strcmp(s, "/ui/") == 0 || strcmp(s, "/ui/index.html") == 0 || strcmp(s, "/ui/app.js") == 0 ||
              strcmp(s, "/ui/style.css") == 0);
    free(s);
    return 0;
}
