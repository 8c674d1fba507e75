/*
 * gen_http - ringmail-gen --http URL: the same load against the HTTP injection API (POST
 * /api/inject/v1, docs/http-injection.md)
 *
 * --concurrency client threads, each with one keep-alive HTTP/1.1 connection (plain http:// only),
 * claim messages as the SMTP slots do (--message-count or --duration, --rate) and POST one request per
 * message: --recipients recipients, the generated headers and body as the raw content. A message is
 * sent when the answer is 200 with every recipient accepted; the latency is time-to-200 (first byte
 * of the request to the end of the answer). The summary is gen_stats_print()'s, so the SMTP and HTTP
 * rows of tools/bench-ingest.sh compare like for like.
 * The answer is peer input: the head is read into a bounded buffer (GEN_HTTP_HEAD_MAX), the body only
 * up to its Content-Length when that is at most GEN_HTTP_BODY_MAX; anything else is a protocol error.
 */
#include "tools/gen.h"
#include "tools/gen_http_head.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"

#define GEN_HTTP_HEAD_MAX 8192
#define GEN_HTTP_BODY_MAX (1024 * 1024)

struct gen_http {
    struct gen *g;
    char host[300];
    char path[512];
    const char *token;
    pthread_mutex_t lock; /* g->st, g->claimed, g->seq, the rate */
};

/* parse_url - "http://HOST:PORT/PATH" into g->addr and h->path; false when malformed */
static bool parse_url(struct gen_http *h, const char *url)
{
    char *err = NULL;
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *hp = url + 7, *slash = strchr(hp, '/');
    size_t n = slash ? (size_t)(slash - hp) : strlen(hp);
    if (n == 0 || n >= sizeof(h->host))
        return false;
    memcpy(h->host, hp, n);
    h->host[n] = '\0';
    snprintf(h->path, sizeof(h->path), "%s", slash ? slash : "/api/inject/v1");
    if (strpbrk(h->path, " \r\n") || hostport_resolve(h->host, 80, 0, NULL, &h->g->addr, &h->g->addrlen, &err) < 0) {
        free(err);
        return false;
    }
    return true;
}

static int connect_to(struct gen_http *h)
{
    int fd = socket(h->g->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = (time_t)h->g->o.timeout_s, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&h->g->addr, h->g->addrlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* read_answer - status code and body of one answer; -1 on a broken or oversized answer */
static int read_answer(int fd, struct buf *body, bool *close_after)
{
    char head[GEN_HTTP_HEAD_MAX + 1];
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n == GEN_HTTP_HEAD_MAX)
            return -1;
        ssize_t r = recv(fd, head + n, GEN_HTTP_HEAD_MAX - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        head[n] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    uint64_t len = 0;
    int code = gen_http_head_parse(head, (size_t)(end - head), GEN_HTTP_BODY_MAX, &len, close_after);
    if (code < 0)
        return -1;
    size_t have = n - (size_t)(end + 4 - head);
    buf_reset(body);
    buf_append(body, end + 4, have < len ? have : (size_t)len);
    while (body->len < len) {
        char tmp[16384];
        size_t want = len - body->len < sizeof(tmp) ? len - body->len : sizeof(tmp);
        ssize_t r = recv(fd, tmp, want, 0);
        if (r <= 0)
            return -1;
        buf_append(body, tmp, (size_t)r);
    }
    return code;
}

/* request - the JSON document of message seq */
static char *request(struct gen_http *h, uint64_t seq)
{
    struct gen *g = h->g;
    json_t *rcpts = json_array();
    unsigned dom = gen_msg_pick_domain(&g->o);
    for (unsigned i = 0; i < g->o.recipients; i++) {
        char a[320];
        snprintf(a, sizeof(a), "gen%llu-%u@%s", (unsigned long long)seq, i, g->o.domains[dom].name);
        json_array_append_new(rcpts, json_pack("{s:s}", "email", a));
    }
    uint64_t sent_us = clock_real_ns() / 1000u;
    char *hdr = g->synthetic ? gen_msg_headers(g, seq, g->o.domains[dom].name, sent_us) : gen_msg_stamp(sent_us);
    struct buf content = {0};
    buf_puts(&content, hdr);
    buf_append(&content, g->body, g->body_len);
    free(hdr);
    json_t *doc = json_pack("{s:s,s:o,s:s%}", "envelope_sender", g->o.sender, "recipients", rcpts, "content",
                            (const char *)content.data, content.len);
    buf_fini(&content);
    if (!doc)
        panic("gen --http: json_pack failed");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static bool claim(struct gen_http *h, uint64_t *seq)
{
    struct gen *g = h->g;
    for (;;) {
        pthread_mutex_lock(&h->lock);
        uint64_t now = clock_mono_ns();
        bool ok = gen_claim(g, now);
        if (!ok) {
            pthread_mutex_unlock(&h->lock);
            return false;
        }
        if (gen_rate_take(g, now)) {
            *seq = ++g->seq;
            g->st.attempted++;
            pthread_mutex_unlock(&h->lock);
            return true;
        }
        if (!g->end_ns)
            g->claimed--; /* the claim is given back while the slot waits for the rate */
        pthread_mutex_unlock(&h->lock);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static void *client(void *arg)
{
    struct gen_http *h = arg;
    struct gen *g = h->g;
    struct buf body = {0};
    int fd = -1;
    uint64_t seq;

    while (claim(h, &seq)) {
        if (fd < 0) {
            fd = connect_to(h);
            pthread_mutex_lock(&h->lock);
            if (fd < 0) {
                g->st.failed++;
                gen_error(g, 0, GEN_ERR_CONNECT, strerror(errno));
            } else {
                g->st.connections++;
            }
            pthread_mutex_unlock(&h->lock);
            if (fd < 0)
                continue;
        }
        char *doc = request(h, seq);
        size_t len = strlen(doc);
        char head[1024];
        int hl = snprintf(head, sizeof(head),
                          "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                          h->path, h->host, h->token ? h->token : "", len);
        uint64_t t0 = clock_mono_ns();
        bool close_after = true;
        int code = -1;
        if (hl > 0 && (size_t)hl < sizeof(head) && send_all(fd, head, (size_t)hl) && send_all(fd, doc, len))
            code = read_answer(fd, &body, &close_after);
        uint64_t us = (clock_mono_ns() - t0) / 1000u;
        free(doc);
        bool ok = false;
        if (code == 200) {
            json_t *ans = json_loadb((const char *)body.data, body.len, 0, NULL);
            json_t *sc = ans ? json_object_get(ans, "success_count") : NULL;
            ok = json_is_integer(sc) && json_integer_value(sc) == (json_int_t)g->o.recipients;
            json_decref(ans);
        }
        pthread_mutex_lock(&h->lock);
        if (ok) {
            g->st.sent++;
            lat_hist_add(&g->st.latency, us);
        } else {
            g->st.failed++;
            gen_error(g, code > 0 ? code : 0, code > 0 ? GEN_ERR_N : GEN_ERR_PROTOCOL,
                      code > 0 ? (const char *)buf_cstr(&body) : "broken or missing HTTP answer");
        }
        pthread_mutex_unlock(&h->lock);
        if (code < 0 || close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    buf_fini(&body);
    return NULL;
}

int gen_http_run(struct gen *g, const char *url, const char *token)
{
    struct gen_http h = {.g = g, .token = token};
    pthread_t *th = xcalloc(g->o.concurrency, sizeof(*th));

    if (!parse_url(&h, url))
        fatal("--http %s: expected http://HOST:PORT/PATH with a numeric or resolvable host", url);
    if (token && (strlen(token) > 256 || strpbrk(token, "\r\n ")))
        fatal("--http-token: not a token");
    pthread_mutex_init(&h.lock, NULL);
    g->start_ns = clock_mono_ns();
    g->rate_next = g->start_ns;
    if (g->o.duration_s > 0)
        g->end_ns = g->start_ns + (uint64_t)(g->o.duration_s * 1e9);
    for (unsigned i = 0; i < g->o.concurrency; i++)
        if (pthread_create(&th[i], NULL, client, &h) != 0)
            fatal("pthread_create failed");
    for (unsigned i = 0; i < g->o.concurrency; i++)
        pthread_join(th[i], NULL);
    double elapsed = (double)(clock_mono_ns() - g->start_ns) / 1e9;
    gen_stats_print(g, elapsed, g->o.json);
    pthread_mutex_destroy(&h.lock);
    free(th);
    return gen_exit_code(g);
}
