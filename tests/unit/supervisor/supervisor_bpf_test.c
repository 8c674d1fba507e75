/*
 * supervisor_bpf_test - the SO_REUSEPORT steering program, loaded for real
 *
 * Usage: supervisor_bpf_test PATH/reuseport_select.bpf.o
 * First the refusals that need no privilege (missing, foreign and truncated object files).
 * Then, as root with BPF available (else exit 77 with the reason): three listening sockets
 * on one 127.0.0.1 port with SO_REUSEPORT, the program attached, and for each load table a
 * batch of connections whose landing socket is read back by non-blocking accept() on each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "supervisor/supervisor_bpf.h"
#include "tests/lib/check.h"

#define NSOCK 3
#define NR SUPERVISOR_BPF_NOT_READY

/* ---- refusals of bad object files (no privilege needed) ---- */

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        printf("FAIL cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    close(fd);
}

static void test_bad_objects(const char *good_path)
{
    static const char elf_junk[] = "\177ELF\002\001\001\0garbage that is not a BPF object";
    char dir[] = "/tmp/supervisor_bpf_test.XXXXXX";
    char path[256], truncated[256];
    struct supervisor_bpf *b = (struct supervisor_bpf *)1;
    char *err = NULL;
    char *good = NULL;
    size_t good_len = 0;
    FILE *f;
    int rc;

    if (!mkdtemp(dir)) {
        printf("FAIL mkdtemp: %s\n", strerror(errno));
        exit(1);
    }

    snprintf(path, sizeof(path), "%s/missing.bpf.o", dir);
    rc = supervisor_bpf_open(path, NSOCK, &b, &err);
    CHECK(rc == -ENOENT, "missing object: rc %d, want -ENOENT", rc);
    CHECK(b == NULL, "missing object: out not cleared");
    CHECK(err && strstr(err, path) && strstr(err, "not built or not installed"),
          "missing object: unclear reason '%s'", err ? err : "(null)");
    if (err)
        printf("ok   missing object: %s\n", err);
    free(err);
    err = NULL;

    snprintf(path, sizeof(path), "%s/junk.bpf.o", dir);
    write_file(path, elf_junk, sizeof(elf_junk));
    rc = supervisor_bpf_open(path, NSOCK, &b, &err);
    CHECK(rc < 0 && err && strstr(err, path), "junk object: rc %d reason '%s'", rc, err ? err : "(null)");
    if (err)
        printf("ok   junk object: %s\n", err);
    free(err);
    err = NULL;

    /* The real object cut in half: a damaged install must not crash the loader. */
    f = fopen(good_path, "rb");
    if (f) {
        good = malloc(1 << 20);
        if (good)
            good_len = fread(good, 1, 1 << 20, f);
        fclose(f);
    }
    CHECK(good && good_len > 64, "cannot read %s", good_path);
    if (good && good_len > 64) {
        snprintf(truncated, sizeof(truncated), "%s/truncated.bpf.o", dir);
        write_file(truncated, good, good_len / 2);
        rc = supervisor_bpf_open(truncated, NSOCK, &b, &err);
        CHECK(rc < 0 && err, "truncated object: rc %d", rc);
        if (err)
            printf("ok   truncated object: %s\n", err);
        free(err);
        err = NULL;
        unlink(truncated);
    }
    free(good);

    rc = supervisor_bpf_open(good_path, 0, &b, &err);
    CHECK(rc == -EINVAL && err, "zero workers: rc %d", rc);
    free(err);
    err = NULL;
    rc = supervisor_bpf_open(good_path, SUPERVISOR_BPF_MAX_WORKERS + 1, &b, NULL);
    CHECK(rc == -EINVAL, "33 workers: rc %d", rc);

    unlink(path);
    rmdir(dir);
}

/* ---- steering ---- */

static int listener_new(uint16_t port, uint16_t *bound)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    socklen_t len = sizeof(sa);
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0
        || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || listen(fd, 128) != 0
        || getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

/* Makes n connections, then counts where they landed; returns the number accepted or -errno. */
static int connect_batch(uint16_t port, const int *lfd, int n, int counts[NSOCK])
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    int clients[64];
    int i, made = 0, total = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(counts, 0, sizeof(int) * NSOCK);
    if (n > 64)
        n = 64;
    for (i = 0; i < n; i++) {
        clients[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (clients[i] < 0)
            break;
        /* A blocking loopback connect returns once the SYN was steered and the connection
         * queued on the chosen listener. */
        if (connect(clients[i], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            printf("connect %d: %s\n", i, strerror(errno));
            close(clients[i]);
            break;
        }
        made++;
    }
    for (i = 0; i < NSOCK; i++) {
        int a;

        while ((a = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            counts[i]++;
            total++;
            close(a);
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            printf("accept on %d: %s\n", i, strerror(errno));
    }
    for (i = 0; i < made; i++)
        close(clients[i]);
    return made == n ? total : -EIO;
}

struct steer_case {
    const char *name;
    uint32_t loads[NSOCK];
    int conns;
    bool allowed[NSOCK]; /* sockets that may receive connections */
    bool each;           /* every allowed socket must receive at least one */
};

static const struct steer_case steer_cases[] = {
    { "lowest load wins", { 5, 0, 9 }, 20, { false, true, false }, true },
    { "not-ready worker skipped, equals share", { NR, 4, 4 }, 40, { false, true, true }, true },
    { "lowest among ready", { 7, NR, 2 }, 20, { false, false, true }, true },
    { "three equals share by hash", { 3, 3, 3 }, 45, { true, true, true }, true },
    { "none ready: kernel hash", { NR, NR, NR }, 20, { true, true, true }, false },
};

static void run_case(const char *name, uint16_t port, const int *lfd, int conns,
                     const bool allowed[NSOCK], bool each)
{
    int counts[NSOCK];
    int total = connect_batch(port, lfd, conns, counts);
    bool ok = total == conns;
    int i;

    for (i = 0; i < NSOCK; i++) {
        if (!allowed[i] && counts[i] != 0)
            ok = false;
        if (allowed[i] && each && counts[i] == 0)
            ok = false;
    }
    printf("%s %s: %d/%d accepted, per socket {%d, %d, %d}\n", ok ? "ok  " : "FAIL", name,
           total, conns, counts[0], counts[1], counts[2]);
    CHECK(ok, "%s: connections not steered as expected", name);
}

static int test_steering(const char *obj_path)
{
    static const bool all[NSOCK] = { true, true, true };
    struct supervisor_bpf *b = NULL;
    uint16_t port = 0, bound = 0;
    int lfd[NSOCK];
    char *err = NULL;
    size_t c;
    int i, rc, spread;

    rc = supervisor_bpf_probe(&err);
    if (rc < 0) {
        printf("SKIP %s\n", err);
        free(err);
        return 77;
    }
    rc = supervisor_bpf_open(obj_path, NSOCK, &b, &err);
    if (rc < 0) {
        printf("FAIL open %s: %s\n", obj_path, err);
        free(err);
        return 1;
    }
    CHECK(supervisor_bpf_workers(b) == NSOCK, "workers %u", supervisor_bpf_workers(b));

    for (i = 0; i < NSOCK; i++) {
        lfd[i] = listener_new(port, &bound);
        if (lfd[i] < 0) {
            printf("FAIL listener %d: %s\n", i, strerror(-lfd[i]));
            exit(1);
        }
        port = bound;
    }

    rc = supervisor_bpf_attach(b, lfd[0], &err);
    CHECK(rc == 0, "attach: %s", err ? err : "?");
    free(err);
    err = NULL;
    for (i = 0; i < NSOCK; i++) {
        rc = supervisor_bpf_set_socket(b, (unsigned)i, lfd[i], &err);
        CHECK(rc == 0, "set_socket %d: %s", i, err ? err : "?");
        free(err);
        err = NULL;
    }

    /* Refusals: a worker out of range, a socket that is not listening, loads past the count. */
    rc = supervisor_bpf_set_socket(b, NSOCK, lfd[0], &err);
    CHECK(rc == -EINVAL && err, "set_socket out of range: rc %d", rc);
    free(err);
    err = NULL;
    {
        int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        rc = supervisor_bpf_set_socket(b, 0, plain, &err);
        CHECK(rc < 0 && err, "set_socket of a plain socket: rc %d", rc);
        if (err)
            printf("ok   plain socket refused: %s\n", err);
        free(err);
        err = NULL;
        close(plain);
        /* Registering the same socket again is idempotent; the same socket in a second slot is not. */
        rc = supervisor_bpf_set_socket(b, 0, lfd[0], NULL);
        CHECK(rc == 0, "re-register socket 0: rc %d", rc);
        rc = supervisor_bpf_set_socket(b, 2, lfd[0], &err);
        CHECK(rc == -EBUSY && err, "socket 0 into slot 2: rc %d", rc);
        free(err);
        err = NULL;
    }
    {
        uint32_t four[NSOCK + 1] = { 0, 0, 0, 0 };

        CHECK(supervisor_bpf_set_loads(b, four, NSOCK + 1) == -EINVAL, "set_loads past count accepted");
        CHECK(supervisor_bpf_set_load(b, NSOCK, 0) == -EINVAL, "set_load out of range accepted");
    }

    /* Before any load is set every worker is "not ready": the kernel's hash still accepts. */
    run_case("fresh maps: not ready, kernel hash", port, lfd, 20, all, false);

    for (c = 0; c < sizeof(steer_cases) / sizeof(steer_cases[0]); c++) {
        const struct steer_case *t = &steer_cases[c];

        rc = supervisor_bpf_set_loads(b, t->loads, NSOCK);
        CHECK(rc == 0, "%s: set_loads rc %d", t->name, rc);
        run_case(t->name, port, lfd, t->conns, t->allowed, t->each);
    }

    /* The chosen worker's slot empty (worker restarting): selection fails, the hash picks. */
    {
        static const uint32_t loads[NSOCK] = { 5, 0, 9 };

        supervisor_bpf_set_loads(b, loads, NSOCK);
        rc = supervisor_bpf_clear_socket(b, 1);
        CHECK(rc == 0, "clear_socket 1: rc %d", rc);
        CHECK(supervisor_bpf_clear_socket(b, 1) == -ENOENT, "clear_socket of an empty slot");
        run_case("chosen slot empty: kernel hash", port, lfd, 20, all, false);
        rc = supervisor_bpf_set_socket(b, 1, lfd[1], NULL);
        CHECK(rc == 0, "re-register socket 1: rc %d", rc);
        run_case("slot refilled: lowest load wins again", port, lfd, 20,
                 steer_cases[0].allowed, true);
    }

    /* Detached, the same loads no longer steer: the hash spreads 30 connections over more than
     * one socket (all on one by chance: (1/3)^29). */
    rc = supervisor_bpf_detach(b, lfd[2], &err);
    CHECK(rc == 0, "detach: %s", err ? err : "?");
    free(err);
    err = NULL;
    {
        int counts[NSOCK];
        int total = connect_batch(port, lfd, 30, counts);

        spread = (counts[0] > 0) + (counts[1] > 0) + (counts[2] > 0);
        CHECK(total == 30 && spread >= 2, "after detach: %d/30 accepted, {%d, %d, %d}",
              total, counts[0], counts[1], counts[2]);
        printf("ok   after detach: per socket {%d, %d, %d}\n", counts[0], counts[1], counts[2]);
    }
    rc = supervisor_bpf_detach(b, lfd[0], &err);
    CHECK(rc < 0 && err, "second detach: rc %d", rc);
    free(err);
    err = NULL;

    supervisor_bpf_free(b);
    supervisor_bpf_free(NULL);
    for (i = 0; i < NSOCK; i++)
        close(lfd[i]);
    return check_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc;

    log_init("supervisor_bpf_test", 0);
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/reuseport_select.bpf.o\n", argv[0]);
        return 1;
    }
    test_bad_objects(argv[1]);
    if (geteuid() != 0) {
        char *err = NULL;

        /* Unprivileged, the probe must refuse with a reason rather than succeed or crash. */
        rc = supervisor_bpf_probe(&err);
        CHECK(rc < 0 && err, "probe as non-root: rc %d", rc);
        printf("SKIP steering: needs root to load BPF (probe: %s)\n", err ? err : "?");
        free(err);
        return check_failures ? 1 : 77;
    }
    rc = test_steering(argv[1]);
    if (rc == 77)
        return check_failures ? 1 : 77;
    if (rc != 0)
        return 1;
    CHECK_EXIT();
}
