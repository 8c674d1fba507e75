/*
 * bearer - bearer token parsing and the constant-time check, shared by the supervisor's admin API
 * and the ingress's HTTP injection API
 */
#include "common/bearer.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/mem.h"

#define BEARER_FILE_MAX 4096

int bearer_token_parse(const char *text, size_t n, char token[BEARER_TOKEN_HEX + 1])
{
    if (n == BEARER_TOKEN_HEX + 1 && text[BEARER_TOKEN_HEX] == '\n')
        n--;
    if (n != BEARER_TOKEN_HEX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = text[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return -EINVAL;
        token[i] = ch;
    }
    token[n] = '\0';
    return 0;
}

bool bearer_matches(const char *token, const char *authorization)
{
    if (!token || !token[0] || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        n--;
    /* the length is public (every token has 64 digits); the digits are compared in constant time */
    return n == BEARER_TOKEN_HEX && CRYPTO_memcmp(t, token, BEARER_TOKEN_HEX) == 0;
}

int bearer_token_load(const char *path, char token[BEARER_TOKEN_HEX + 1], char **err)
{
    char text[BEARER_FILE_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        *err = xasprintf("%s: cannot open the token file: %s", path, strerror(errno));
        return rc;
    }
    ssize_t n = read(fd, text, sizeof(text));
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        *err = xasprintf("%s: cannot read the token file: %s", path, strerror(-rc));
    else if (bearer_token_parse(text, (size_t)n, token) < 0) {
        rc = -EINVAL;
        *err = xasprintf("%s: not a token (64 lower-case hex digits)", path);
    }
    explicit_bzero(text, sizeof(text));
    return rc;
}
