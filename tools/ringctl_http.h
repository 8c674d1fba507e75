/*
 * ringctl_http - ringctl's HTTP/1.0 client of the admin API: TCP (HOST:PORT) or the node's Unix socket
 * ("unix:PATH"), with the admin token (docs/admin-api.md, "Access control")
 *
 * ringctl_http_setup() decides once where to connect and which token to send:
 *   endpoint  --endpoint / RINGCTL_ENDPOINT when given; else the Unix socket (--socket / RINGCTL_SOCKET,
 *             else DATA_DIR/admin.sock) when it exists; else 127.0.0.1:8025
 *   token     --token-file / RINGCTL_TOKEN_FILE (must be readable), else DATA_DIR/admin.token when it
 *             exists; none otherwise (read-only calls from trusted networks and the socket need none)
 *   DATA_DIR  --data-dir / RINGCTL_DATA_DIR, else "./ringmail-data" (the node's embedded default)
 * ringctl_http_call() sends one request: 0 with the status and a heap body, or -errno when the node
 * cannot be reached (said on stderr: "no node at ENDPOINT: is ringmaild running? (--endpoint)").
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_HTTP_H
#define RINGMAIL_TOOLS_RINGCTL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct ringctl_http_opts {
    const char *endpoint;   /* NULL: not given */
    const char *socket;     /* NULL: DATA_DIR/admin.sock */
    const char *data_dir;   /* NULL: ./ringmail-data */
    const char *token_file; /* NULL: DATA_DIR/admin.token if it exists */
};

/* ringctl_http_setup - the endpoint to use (static storage); NULL when --token-file cannot be read (said) */
const char *ringctl_http_setup(const struct ringctl_http_opts *o);
int ringctl_http_call(const char *endpoint, const char *method, const char *path, int *status, char **body,
                      size_t *len);
/* ringctl_http_call_body - the same with a request body (data_len bytes of ctype) */
int ringctl_http_call_body(const char *endpoint, const char *method, const char *path, const char *ctype,
                           const char *data, size_t data_len, int *status, char **body, size_t *len);

/* ringctl_http_stream - GET path and hand the body to fn as it arrives (no time limit once the head came),
 * until the node closes: 0 with *status; fn's negative return, -EINTR (a signal), or -errno (said) */
typedef int (*ringctl_http_chunk_fn)(void *ctx, const char *p, size_t n);
int ringctl_http_stream(const char *endpoint, const char *path, int *status, ringctl_http_chunk_fn fn, void *ctx);

#endif
