/*
 * tls_peer_test - the memory-BIO TLS layer against `openssl s_client` as the peer
 *
 * A loopback server drives the API on a blocking socket: s_client verifying the chain file this
 * test generates (TLS 1.3), TLS 1.2 to the self-signed context, and TLS 1.1 refused.
 * Exit 0 pass, 1 fail, 77 when the openssl CLI (or its -tls1_1) is missing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls.h"
#include "tests/lib/check.h"
#include "tests/unit/tls/tls_test.h"

static bool cli_skipped;

/* ---- tests: openssl s_client as the peer ---- */

static const char *openssl_cli(void)
{
    const char *p = getenv("RINGMAIL_OPENSSL");
    if (p == NULL || p[0] == '\0')
        p = "/usr/bin/openssl";
    return access(p, X_OK) == 0 ? p : NULL;
}

static bool cli_has_option(const char *cli, const char *opt)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(out[1], STDERR_FILENO);
        execl(cli, cli, "s_client", "-help", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char text[32768];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(text) - 1 && (r = read(out[0], text + n, sizeof(text) - 1 - n)) > 0)
        n += (size_t)r;
    text[n] = '\0';
    close(out[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    char want[64];
    snprintf(want, sizeof(want), " %s ", opt);
    return strstr(text, want) != NULL;
}

static bool send_all(int fd, struct tls_conn *c)
{
    unsigned char buf[16384];
    size_t n;
    while ((n = tls_take_cipher(c, buf, sizeof(buf))) > 0) {
        size_t off = 0;
        while (off < n) {
            ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
            if (w <= 0)
                return false;
            off += (size_t)w;
        }
    }
    return true;
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

struct peer_case {
    const char *name;
    struct tls_ctx *srv;
    const char *args[8]; /* extra s_client arguments */
    const char *version; /* expected, NULL = refused */
    const char *reason;  /* part of the server's reason for refusing */
};

/* one s_client run: it sends a line; the loopback server echoes it, sends close_notify and closes */
static void s_client_case(const char *cli, const struct peer_case *pc)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        CHECK(false, "%s: listen: %s", pc->name, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        return;
    }
    char connect_to[32];
    snprintf(connect_to, sizeof(connect_to), "127.0.0.1:%u", ntohs(sa.sin_port));
    const char *argv[24] = {cli, "s_client", "-connect", connect_to, "-quiet", "-servername", "mx.test"};
    size_t ac = 7;
    for (size_t i = 0; i < 8 && pc->args[i]; i++)
        argv[ac++] = pc->args[i];
    argv[ac] = NULL;

    int in[2], out[2], errp[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        CHECK(false, "pipes: %s", strerror(errno));
        close(lfd);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(errp[1], STDERR_FILENO);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(errp[1]);
    const char line[] = "PING ringmail tls\n";
    ssize_t wr = write(in[1], line, sizeof(line) - 1);
    (void)wr;
    close(in[1]); /* -quiet implies -ign_eof: s_client keeps reading from the server */

    uint64_t deadline = clock_mono_ns() + CLOCK_SEC(15);
    struct pollfd lp = {.fd = lfd, .events = POLLIN};
    int fd = -1;
    if (pid > 0 && poll(&lp, 1, 10000) == 1)
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    struct tls_conn *c = tls_conn_new(pc->srv, TLS_ROLE_SERVER, NULL);
    char got[512];
    size_t got_len = 0;
    bool echoed = false, sock_ok = fd >= 0;
    while (sock_ok && !echoed && clock_mono_ns() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        unsigned char buf[16384];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        if (tls_feed_cipher(c, buf, (size_t)n) != 0) {
            send_all(fd, c); /* the alert */
            break;
        }
        for (;;) {
            ssize_t r = tls_read_plain(c, got + got_len, sizeof(got) - 1 - got_len);
            if (r <= 0)
                break;
            got_len += (size_t)r;
        }
        got[got_len] = '\0';
        if (strchr(got, '\n')) {
            char reply[600];
            int rl = snprintf(reply, sizeof(reply), "ECHO %s", got);
            CHECK(tls_write_plain(c, reply, (size_t)rl) == rl, "%s: echo write", pc->name);
            tls_shutdown(c);
            echoed = true;
        }
        sock_ok = send_all(fd, c);
        if (tls_conn_state(c) == TLS_STATE_FAILED)
            break;
    }
    if (fd >= 0)
        close(fd);

    int status = -1;
    for (int i = 0; pid > 0 && i < 200; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (i == 199) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        usleep(50000);
    }
    char cout[4096], cerr[8192];
    read_all(out[0], cout, sizeof(cout));
    read_all(errp[0], cerr, sizeof(cerr));
    close(out[0]);
    close(errp[0]);

    if (pc->version) {
        CHECK(echoed && tls_conn_version(c) && strcmp(tls_conn_version(c), pc->version) == 0,
              "%s: echoed %d, version %s, server %s, s_client stderr: %s", pc->name, echoed,
              tls_conn_version(c) ? tls_conn_version(c) : "NULL", err_or(c), cerr);
        CHECK(strcmp(got, line) == 0, "%s: server got [%s]", pc->name, got);
        CHECK(strstr(cout, "ECHO PING ringmail tls\n") != NULL, "%s: s_client printed [%s], stderr %s",
              pc->name, cout, cerr);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: s_client status %d: %s", pc->name, status,
              cerr);
    } else {
        CHECK(tls_conn_state(c) == TLS_STATE_FAILED && !echoed && strstr(err_or(c), pc->reason),
              "%s: server state %d (%s), s_client: %s", pc->name, tls_conn_state(c), err_or(c), cerr);
        CHECK(strstr(cout, "ECHO") == NULL, "%s: data crossed a refused session", pc->name);
        CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "%s: s_client exited 0", pc->name);
        fprintf(stderr, "%s: server reason: %s\n", pc->name, err_or(c));
    }
    tls_conn_free(c);
}

static void test_s_client(struct tls_ctx *self_signed, struct tls_ctx *files)
{
    const char *cli = openssl_cli();
    if (cli == NULL) {
        fprintf(stderr, "SKIP s_client cases: no openssl CLI\n");
        cli_skipped = true;
        return;
    }
    char *ca = tmp_path("ca.pem");
    struct peer_case cases[] = {
        {"s_client verifying the chain file",
         files,
         {"-CAfile", ca, "-verify_return_error", "-verify_hostname", "mx.test"},
         "TLSv1.3"},
        {"s_client TLS 1.2 to the self-signed context", self_signed, {"-tls1_2"}, "TLSv1.2"},
        {"s_client TLS 1.1 refused",
         self_signed,
         {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"},
         NULL,
         "unsupported protocol"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].srv == NULL)
            continue;
        if (cases[i].version == NULL && !cli_has_option(cli, "-tls1_1")) {
            fprintf(stderr, "SKIP %s: s_client has no -tls1_1\n", cases[i].name);
            cli_skipped = true;
            continue;
        }
        s_client_case(cli, &cases[i]);
    }
    free(ca);
}
/* server_ctx - a server context for the peer cases; its own checks are tls_session_test's */
static struct tls_ctx *server_ctx(const char *cert_name, const char *key_name, const char *host)
{
    char *cert = cert_name ? tmp_path(cert_name) : NULL, *key = key_name ? tmp_path(key_name) : NULL;
    struct tls_ctx *ctx = NULL;
    char *err = NULL;
    int rc = tls_server_ctx_new(cert, key, host, &ctx, &err);
    CHECK(rc == 0 && ctx, "server ctx %s: %d %s", cert_name ? cert_name : host, rc, err ? err : "");
    free(err);
    free(cert);
    free(key);
    return ctx;
}

int main(void)
{
    log_init("tls_peer_test", -1);
    signal(SIGPIPE, SIG_IGN);

    if (!cert_dir_make())
        return 1;
    struct tls_ctx *self_signed = server_ctx(NULL, NULL, "mx.ringmail.test");
    struct tls_ctx *files = server_ctx("chain.pem", "key.pem", NULL);
    test_s_client(self_signed, files);
    tls_ctx_free(self_signed);
    tls_ctx_free(files);
    remove_tmp();

    if (!check_failures && cli_skipped) {
        fprintf(stderr, "tls_peer_test: passed, openssl CLI cases skipped\n");
        return 77;
    }
    CHECK_EXIT();
}
