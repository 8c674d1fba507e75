/*
 * shm_pages_test - page source chain, fd inheritance across exec, hugetlb reservation
 *
 * The hugetlb and THP parts change host settings (vm.nr_hugepages, the shmem THP knob) and
 * so run only as root; every value is saved first and restored on exit, on a fatal signal and
 * on a sanitizer death. Exit 0 pass, 1 fail (77 is never used: the always-runnable cases
 * still run when the privileged ones are skipped).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "shm/shm_pages.h"
#include "tests/lib/check.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"
#define THP_SHMEM "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define THP_SHMEM_2M "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled"
#define MIB ((size_t)1 << 20)

/* ---- saved host settings, restored whatever happens ---- */

struct saved_knob {
    const char *path;
    char value[64];
    bool saved;
};

static struct saved_knob knobs[2] = {{NR_HUGEPAGES, "", false}, {THP_SHMEM, "", false}};
static pid_t owner_pid;

/* async-signal-safe: open/write/close only */
static void restore_knobs(void)
{
    if (getpid() != owner_pid)
        return;
    for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
        if (!knobs[i].saved)
            continue;
        int fd = open(knobs[i].path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t w = write(fd, knobs[i].value, strlen(knobs[i].value));
            (void)w;
            close(fd);
        }
        knobs[i].saved = false;
    }
}

static void on_fatal_signal(int sig)
{
    restore_knobs();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* sanitizers exit without atexit handlers; this hook exists only in sanitizer builds */
extern void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void install_restore(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGALRM};

    owner_pid = getpid();
    atexit(restore_knobs);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], on_fatal_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(restore_knobs);
}

static bool read_line(const char *path, char *buf, size_t sz)
{
    FILE *f = fopen(path, "re");
    bool ok = f && fgets(buf, (int)sz, f);

    if (f)
        fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

static bool write_str(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    bool ok = false;

    if (fd >= 0) {
        ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
        close(fd);
    }
    return ok;
}

/* the active word of "a [b] c" */
static bool bracketed(const char *path, char *out, size_t sz)
{
    char line[256];
    char *o, *c;

    if (!read_line(path, line, sizeof(line)) || !(o = strchr(line, '[')) || !(c = strchr(o, ']')) ||
        (size_t)(c - o - 1) >= sz)
        return false;
    memcpy(out, o + 1, (size_t)(c - o - 1));
    out[c - o - 1] = '\0';
    return true;
}

static bool thp_expected(void)
{
    char v[32];

    if (!bracketed(THP_SHMEM_2M, v, sizeof(v)) || strcmp(v, "inherit") == 0) {
        if (!bracketed(THP_SHMEM, v, sizeof(v)))
            return false;
    }
    return strcmp(v, "advise") == 0 || strcmp(v, "always") == 0 || strcmp(v, "within_size") == 0 ||
           strcmp(v, "force") == 0;
}

static long meminfo_kb(const char *name)
{
    char line[256];
    size_t n = strlen(name);
    long v = -1;
    FILE *f = fopen("/proc/meminfo", "re");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* ---- cases ---- */

static void touch_all(struct shm_pages *p)
{
    for (size_t i = 0; i < p->size; i += 4096)
        ((volatile char *)p->base)[i] = (char)i;
}

static void test_off_is_small(void)
{
    struct shm_pages p;
    char *err = NULL;
    int rc = shm_pages_alloc(MIB + 1, SHM_HUGE_OFF, &p, &err);

    CHECK(rc == 0, "OFF alloc failed: %d %s", rc, err ? err : "");
    free(err);
    if (rc != 0)
        return;
    CHECK(p.source == SHM_PAGES_SMALL, "OFF gave source %s", shm_pages_source_name(p.source));
    CHECK(p.size == MIB + 4096, "size %zu, expected %zu", p.size, MIB + 4096);
    int fl = fcntl(p.fd, F_GETFD);
    CHECK(fl >= 0 && !(fl & FD_CLOEXEC), "fd is close-on-exec (flags %d)", fl);
    touch_all(&p);
    shm_pages_unmap(&p);
    CHECK(p.fd == -1 && p.base == NULL, "unmap did not reset the struct");
    shm_pages_unmap(NULL);
}

static void test_bad_args(void)
{
    struct shm_pages p;
    char *err = NULL;
    int pipefd[2];

    CHECK(shm_pages_alloc(0, SHM_HUGE_AUTO, &p, &err) == -EINVAL, "size 0 accepted");
    CHECK(err != NULL, "no message for size 0");
    free(err);
    err = NULL;
    CHECK(shm_pages_alloc(MIB, (enum shm_huge_mode)7, &p, &err) == -EINVAL, "bad mode accepted");
    free(err);
    err = NULL;
    CHECK(shm_pages_alloc((size_t)-1, SHM_HUGE_OFF, &p, &err) < 0, "SIZE_MAX accepted");
    free(err);
    err = NULL;
    CHECK(shm_pages_map(-1, &p, &err) == -EBADF, "map of fd -1 did not give -EBADF");
    free(err);
    err = NULL;
    if (pipe(pipefd) == 0) {
        CHECK(shm_pages_map(pipefd[0], &p, &err) == -EINVAL, "map of a pipe accepted");
        CHECK(err != NULL, "no message for map of a pipe");
        free(err);
        close(pipefd[0]);
        close(pipefd[1]);
    }
}

static void test_auto_without_hugetlb(void)
{
    struct shm_pages p;
    char *err = NULL;
    long hfree = shm_pages_hugepages_free();

    if (hfree != 0) {
        printf("note: host has %ld free hugepages, AUTO-without-hugetlb case checks only success\n", hfree);
    }
    int rc = shm_pages_alloc(3 * MIB, SHM_HUGE_AUTO, &p, &err);
    CHECK(rc == 0, "AUTO alloc failed: %d %s", rc, err ? err : "");
    free(err);
    if (rc != 0)
        return;
    if (hfree == 0) {
        enum shm_page_source want = thp_expected() ? SHM_PAGES_THP : SHM_PAGES_SMALL;
        CHECK(p.source == want, "AUTO gave %s, host allows %s", shm_pages_source_name(p.source),
              shm_pages_source_name(want));
        if (want == SHM_PAGES_THP)
            CHECK(p.size == 4 * MIB, "THP size %zu not rounded to 2 MiB", p.size);
    }
    touch_all(&p);
    shm_pages_unmap(&p);
}

/* the child side: map by inherited fd number after exec, write a pattern, verify the parent's */
static int child_main(const char *fdstr)
{
    struct shm_pages p;
    char *err = NULL;
    int fd = atoi(fdstr);

    if (shm_pages_map(fd, &p, &err) < 0) {
        printf("child: %s\n", err);
        return 2;
    }
    if (p.size < 2 * 4096 || memcmp(p.base, "parent", 7) != 0) {
        printf("child: parent's data not visible (size %zu)\n", p.size);
        return 3;
    }
    memcpy((char *)p.base + p.size - 4096, "child", 6);
    shm_pages_unmap(&p);
    return 0;
}

static void test_inherit_exec(enum shm_huge_mode mode, const char *what)
{
    struct shm_pages p;
    char *err = NULL;
    char fdbuf[16];
    int status = 0;

    int rc = shm_pages_alloc(MIB, mode, &p, &err);
    CHECK(rc == 0, "%s: alloc failed: %s", what, err ? err : "");
    free(err);
    if (rc != 0)
        return;
    memcpy(p.base, "parent", 7);
    snprintf(fdbuf, sizeof(fdbuf), "%d", p.fd);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "shm_pages_test", "--child", fdbuf, (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0, "fork: %s", strerror(errno));
    if (pid > 0) {
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %d", what, status);
        CHECK(memcmp((char *)p.base + p.size - 4096, "child", 6) == 0, "%s: child's write not visible", what);
    }
    shm_pages_unmap(&p);
}

static bool save_knob(struct saved_knob *k)
{
    char line[256];

    if (strcmp(k->path, THP_SHMEM) == 0) {
        if (!bracketed(k->path, k->value, sizeof(k->value)))
            return false;
    } else {
        if (!read_line(k->path, line, sizeof(line)) || strlen(line) >= sizeof(k->value))
            return false;
        snprintf(k->value, sizeof(k->value), "%s", line);
    }
    k->saved = true;
    return true;
}

static void test_thp(void)
{
    struct saved_knob *k = &knobs[1];
    char v[32];

    if (geteuid() != 0 || access(THP_SHMEM, W_OK) != 0) {
        printf("skip: THP case needs root and a writable %s\n", THP_SHMEM);
        return;
    }
    if (bracketed(THP_SHMEM_2M, v, sizeof(v)) && strcmp(v, "inherit") != 0) {
        printf("skip: THP case: per-size knob %s is [%s], not inherit\n", THP_SHMEM_2M, v);
        return;
    }
    if (!save_knob(k)) {
        printf("skip: cannot read %s\n", THP_SHMEM);
        return;
    }
    if (!write_str(THP_SHMEM, "advise")) {
        printf("skip: cannot set %s to advise\n", THP_SHMEM);
        restore_knobs();
        return;
    }
    if (shm_pages_hugepages_free() == 0) {
        struct shm_pages p;
        char *err = NULL;
        long before = meminfo_kb("ShmemHugePages");
        int rc = shm_pages_alloc(4 * MIB, SHM_HUGE_AUTO, &p, &err);
        CHECK(rc == 0 && p.source == SHM_PAGES_THP, "THP advise: rc %d source %s %s", rc,
              rc == 0 ? shm_pages_source_name(p.source) : "-", err ? err : "");
        free(err);
        if (rc == 0) {
            long after = meminfo_kb("ShmemHugePages");
            /* informative: a fragmented host may fall back to small pages inside the kernel */
            printf("info: THP segment: ShmemHugePages %ld kB -> %ld kB\n", before, after);
            shm_pages_unmap(&p);
        }
        test_inherit_exec(SHM_HUGE_AUTO, "THP inherit");
    }
    k->saved = true;
    restore_knobs();
    char now[32];
    CHECK(bracketed(THP_SHMEM, now, sizeof(now)) && strcmp(now, k->value) == 0, "%s not restored to %s",
          THP_SHMEM, k->value);
}

static void set_nr(long n)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%ld", n);
    if (!write_str(NR_HUGEPAGES, buf))
        printf("warning: cannot write %s to %s\n", buf, NR_HUGEPAGES);
}

static void test_hugetlb(void)
{
    struct saved_knob *k = &knobs[0];
    const size_t size = 6 * MIB + 1; /* rounds up to 4 pages */
    const long need = 4;
    struct shm_pages p;
    char *err = NULL;
    int rc;

    if (geteuid() != 0 || access(NR_HUGEPAGES, W_OK) != 0) {
        printf("skip: hugetlb case needs root and a writable %s (euid %d)\n", NR_HUGEPAGES, (int)geteuid());
        return;
    }
    if (meminfo_kb("Hugepagesize") != 2048) {
        printf("skip: default hugepage size is %ld kB, nr_hugepages would not control 2 MiB pages\n",
               meminfo_kb("Hugepagesize"));
        return;
    }
    if (!save_knob(k)) {
        printf("skip: cannot read %s\n", NR_HUGEPAGES);
        return;
    }
    long saved = strtol(k->value, NULL, 10);
    long free0 = shm_pages_hugepages_free();
    set_nr(saved + need + 1);
    long free1 = shm_pages_hugepages_free();
    if (free1 < need) {
        printf("skip: kernel could not reserve %ld hugepages (free %ld)\n", need, free1);
        restore_knobs();
        return;
    }

    static const enum shm_huge_mode modes[] = {SHM_HUGE_AUTO, SHM_HUGE_REQUIRE};
    for (size_t i = 0; i < 2; i++) {
        long before = shm_pages_hugepages_free();
        rc = shm_pages_alloc(size, modes[i], &p, &err);
        CHECK(rc == 0, "mode %d with %ld free hugepages: %d %s", (int)modes[i], before, rc, err ? err : "");
        free(err);
        err = NULL;
        if (rc != 0)
            continue;
        long after = shm_pages_hugepages_free();
        CHECK(p.source == SHM_PAGES_HUGETLB, "mode %d gave %s", (int)modes[i],
              shm_pages_source_name(p.source));
        CHECK(p.size == 8 * MIB, "hugetlb size %zu, expected %zu", p.size, 8 * MIB);
        CHECK(before - after >= need, "HugePages_Free %ld -> %ld, expected a drop of %ld", before, after,
              need);
        touch_all(&p);
        shm_pages_unmap(&p);
        CHECK(shm_pages_hugepages_free() >= after + need, "hugepages not returned after unmap");
    }
    test_inherit_exec(SHM_HUGE_REQUIRE, "hugetlb inherit");

    /* shortage: ask for one page more than is free */
    set_nr(saved);
    long fr = shm_pages_hugepages_free();
    if (fr >= 0 && fr < 256) {
        size_t want = (size_t)(fr + 1) * 2 * MIB;
        rc = shm_pages_alloc(want, SHM_HUGE_REQUIRE, &p, &err);
        CHECK(rc == -ENOMEM, "REQUIRE with %ld free pages for %ld: rc %d", fr, fr + 1, rc);
        CHECK(err && strstr(err, "hugetlb") && strstr(err, "needed") && strstr(err, "nr_hugepages"),
              "unclear shortage message: %s", err ? err : "(none)");
        if (err)
            printf("info: shortage message: %s\n", err);
        free(err);
        err = NULL;
        if (rc == 0)
            shm_pages_unmap(&p);
        CHECK(shm_pages_hugepages_free() == fr, "failed REQUIRE leaked hugepages: %ld -> %ld", fr,
              shm_pages_hugepages_free());

        rc = shm_pages_alloc(want, SHM_HUGE_AUTO, &p, &err);
        CHECK(rc == 0 && p.source != SHM_PAGES_HUGETLB, "AUTO under shortage: rc %d source %s %s", rc,
              rc == 0 ? shm_pages_source_name(p.source) : "-", err ? err : "");
        free(err);
        err = NULL;
        if (rc == 0)
            shm_pages_unmap(&p);
    } else {
        printf("skip: shortage case: host keeps %ld free hugepages\n", fr);
    }

    restore_knobs();
    char now[64];
    CHECK(read_line(NR_HUGEPAGES, now, sizeof(now)) && strcmp(now, k->value) == 0,
          "nr_hugepages not restored: %s vs %s", now, k->value);
    (void)free0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2]);
    log_init("shm_pages_test", -1);
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_restore();

    test_bad_args();
    test_off_is_small();
    test_auto_without_hugetlb();
    test_inherit_exec(SHM_HUGE_OFF, "small inherit");
    test_thp();
    test_hugetlb();

    CHECK_EXIT();
}
