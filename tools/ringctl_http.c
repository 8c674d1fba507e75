/*
 * ringctl_http - ringctl's HTTP/1.0 client of the admin API, over TCP or the node's Unix socket, with
 * the admin token (tools/ringctl_http.h)
 */
#include "tools/ringctl_http.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/hostport.h"
#include "base/mem.h"

#define RINGCTL_MAX_RESPONSE (16u << 20)
#define RINGCTL_TIMEOUT_MS 15000
#define RINGCTL_DEFAULT_ENDPOINT "127.0.0.1:8025"
#define RINGCTL_DEFAULT_DATA_DIR "./ringmail-data"
#define RINGCTL_TOKEN_HEX 64

static char endpoint_buf[4200];
static char token[RINGCTL_TOKEN_HEX + 1];
static char token_note[4300]; /* why there is no token, for a 401 */

static const char *env_or(const char *given, const char *env)
{
    const char *e = getenv(env);
    return given ? given : (e && e[0] ? e : NULL);
}

/* read_token - 64 hex digits and an optional newline; 0, -errno (why in token_note) */
static int read_token(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    int rc = file_read_all(path, 4096, &text, &n);
    if (rc < 0) {
        snprintf(token_note, sizeof(token_note), "%s: %s", path, strerror(-rc));
        return rc;
    }
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    bool ok = n == RINGCTL_TOKEN_HEX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f');
    if (ok)
        memcpy(token, text, RINGCTL_TOKEN_HEX);
    else
        snprintf(token_note, sizeof(token_note), "%s is not an admin token (64 hex digits)", path);
    explicit_bzero(text, n);
    free(text);
    return ok ? 0 : -EINVAL;
}

const char *ringctl_http_setup(const struct ringctl_http_opts *o)
{
    const char *endpoint = env_or(o->endpoint, "RINGCTL_ENDPOINT");
    const char *sock = env_or(o->socket, "RINGCTL_SOCKET");
    const char *dir = env_or(o->data_dir, "RINGCTL_DATA_DIR");
    const char *tf = env_or(o->token_file, "RINGCTL_TOKEN_FILE");
    struct stat st;

    if (!dir)
        dir = RINGCTL_DEFAULT_DATA_DIR;
    if (tf) {
        if (read_token(tf) < 0) {
            fprintf(stderr, "ringctl: cannot use the token file %s\n", token_note);
            return NULL;
        }
    } else {
        char *def = xasprintf("%s/admin.token", dir);
        int rc = read_token(def);
        if (rc == -ENOENT)
            snprintf(token_note, sizeof(token_note), "no token file %s (--token-file or --data-dir)", def);
        else if (rc == -EACCES)
            snprintf(token_note, sizeof(token_note),
                     "%s is not readable by you: run as root or as a member of the node's admin group", def);
        free(def);
    }
    if (endpoint) {
        snprintf(endpoint_buf, sizeof(endpoint_buf), "%s", endpoint);
    } else {
        char *def = sock ? xstrdup(sock) : xasprintf("%s/admin.sock", dir);
        if (sock || (stat(def, &st) == 0 && S_ISSOCK(st.st_mode)))
            snprintf(endpoint_buf, sizeof(endpoint_buf), "unix:%s", def);
        else
            snprintf(endpoint_buf, sizeof(endpoint_buf), "%s", RINGCTL_DEFAULT_ENDPOINT);
        free(def);
    }
    return endpoint_buf;
}

/* connect_to - a connected stream socket to "unix:PATH" or HOST:PORT (every address of the name); -errno */
static int connect_to(const char *endpoint)
{
    if (strncmp(endpoint, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(endpoint + 5) >= sizeof(sun.sun_path))
            return -ENAMETOOLONG;
        strcpy(sun.sun_path, endpoint + 5);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        return fd;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    struct hostport hp;
    char port[8];
    if (hostport_parse(endpoint, 0, &hp) < 0) {
        fprintf(stderr, "ringctl: bad endpoint %s (want HOST:PORT or unix:PATH)\n", endpoint);
        return -EINVAL;
    }
    snprintf(port, sizeof(port), "%u", hp.port);
    int rc = getaddrinfo(hp.host, port, &hints, &res);
    if (rc) {
        fprintf(stderr, "ringctl: %s: %s\n", endpoint, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    /* "localhost" may give ::1 before 127.0.0.1 */
    int fd = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fd = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int e = errno;
        close(fd);
        fd = -e;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* read_all - the whole answer (HTTP/1.0: the server closes); -errno, said */
static int read_all(int fd, const char *endpoint, char **out, size_t *out_len)
{
    size_t cap = 65536, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, RINGCTL_TIMEOUT_MS) != 1) {
            fprintf(stderr, "ringctl: %s did not answer within %d s\n", endpoint, RINGCTL_TIMEOUT_MS / 1000);
            free(buf);
            return -ETIMEDOUT;
        }
        if (len == cap) {
            if (cap >= RINGCTL_MAX_RESPONSE) {
                fprintf(stderr, "ringctl: response from %s too large\n", endpoint);
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            fprintf(stderr, "ringctl: recv from %s: %s\n", endpoint, strerror(e));
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* open_request - a connection with the request sent; the fd, or -errno (said on stderr) */
static int open_request_body(const char *endpoint, const char *method, const char *path, const char *ctype,
                             const char *data, size_t data_len)
{
    bool local = strncmp(endpoint, "unix:", 5) == 0;
    struct buf req = {0};
    int fd = connect_to(endpoint);
    if (fd < 0) {
        if (fd == -ECONNREFUSED || fd == -ENOENT)
            fprintf(stderr, "ringctl: no node at %s: is ringmaild running? (--endpoint)\n", endpoint);
        else if (fd != -EINVAL && fd != -EHOSTUNREACH)
            fprintf(stderr, "ringctl: cannot reach the node at %s: %s (--endpoint)\n", endpoint, strerror(-fd));
        return fd == -EINVAL ? -EINVAL : -ECONNREFUSED;
    }
    /* Host names the listener as written (with its port); over the socket, localhost */
    buf_printf(&req, "%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %zu\r\nUser-Agent: ringctl\r\n", method, path,
               local ? "localhost" : endpoint, data ? data_len : 0);
    if (data && ctype)
        buf_printf(&req, "Content-Type: %s\r\n", ctype);
    if (token[0])
        buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    buf_puts(&req, "\r\n");
    int rc = send_all(fd, buf_cstr(&req), req.len);
    if (rc == 0 && data && data_len)
        rc = send_all(fd, data, data_len);
    explicit_bzero(req.data, req.len);
    buf_fini(&req);
    if (rc < 0) {
        fprintf(stderr, "ringctl: send to %s: %s\n", endpoint, strerror(-rc));
        close(fd);
        return -EIO;
    }
    return fd;
}

static int open_request(const char *endpoint, const char *method, const char *path)
{
    return open_request_body(endpoint, method, path, NULL, NULL, 0);
}

/* head_parse - the status of an answer whose head ends before hdr_end; -EPROTO (said) when it is not HTTP */
static int head_parse(const char *endpoint, const char *buf, size_t n, const char *hdr_end)
{
    if (strncmp(buf, "HTTP/1.", 7) != 0 || n < 12 || !hdr_end) {
        fprintf(stderr, "ringctl: %s did not answer HTTP\n", endpoint);
        return -EPROTO;
    }
    int status = atoi(buf + 9);
    if (status == 401)
        fprintf(stderr, "ringctl: the node wants the admin token%s%s\n", token[0] ? " (it refused the one sent)" : ": ",
                token[0] ? "" : token_note[0] ? token_note : "--token-file FILE");
    return status;
}

int ringctl_http_call(const char *endpoint, const char *method, const char *path, int *status, char **body,
                      size_t *len)
{
    return ringctl_http_call_body(endpoint, method, path, NULL, NULL, 0, status, body, len);
}

int ringctl_http_call_body(const char *endpoint, const char *method, const char *path, const char *ctype,
                           const char *data, size_t data_len, int *status, char **body, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;

    *body = NULL;
    *len = 0;
    int fd = open_request_body(endpoint, method, path, ctype, data, data_len);
    if (fd < 0)
        return fd;
    int rc = read_all(fd, endpoint, &buf, &n);
    close(fd);
    if (rc < 0)
        return rc;
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if ((rc = head_parse(endpoint, buf, n, hdr_end)) < 0) {
        free(buf);
        return rc;
    }
    *status = rc;
    *len = n - (size_t)(hdr_end + 4 - buf);
    *body = xmalloc(*len + 1);
    memcpy(*body, hdr_end + 4, *len);
    (*body)[*len] = '\0';
    free(buf);
    return 0;
}

int ringctl_http_stream(const char *endpoint, const char *path, int *status, ringctl_http_chunk_fn fn, void *ctx)
{
    int fd = open_request(endpoint, "GET", path);
    if (fd < 0)
        return fd;
    struct buf head = {0};
    bool in_body = false;
    int rc = 0;
    char chunk[16384];
    for (;;) {
        /* the head within the usual time; the body of a stream may pause for as long as it likes */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, in_body ? -1 : RINGCTL_TIMEOUT_MS);
        if (pr < 0) {
            rc = -errno; /* EINTR: the caller's signal (Ctrl-C) ends the stream */
            break;
        }
        if (pr == 0) {
            fprintf(stderr, "ringctl: %s did not answer within %d s\n", endpoint, RINGCTL_TIMEOUT_MS / 1000);
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR) {
            rc = -EINTR;
            break;
        }
        if (r < 0) {
            rc = -errno;
            fprintf(stderr, "ringctl: recv from %s: %s\n", endpoint, strerror(-rc));
            break;
        }
        if (r == 0) {
            if (!in_body) {
                fprintf(stderr, "ringctl: %s did not answer HTTP\n", endpoint);
                rc = -EPROTO;
            }
            break;
        }
        if (in_body) {
            if ((rc = fn(ctx, chunk, (size_t)r)) < 0)
                break;
            continue;
        }
        buf_append(&head, chunk, (size_t)r);
        char *hdr_end = strstr(buf_cstr(&head), "\r\n\r\n");
        if (!hdr_end && head.len < 65536)
            continue;
        if ((rc = head_parse(endpoint, (const char *)head.data, head.len, hdr_end)) < 0)
            break;
        *status = rc;
        in_body = true;
        size_t off = (size_t)(hdr_end + 4 - (char *)head.data);
        rc = head.len > off ? fn(ctx, (const char *)head.data + off, head.len - off) : 0;
        if (rc < 0)
            break;
    }
    buf_fini(&head);
    close(fd);
    return rc;
}
