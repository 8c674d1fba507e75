/*
 * spool_db_enospc_test - a group commit that fails with ENOSPC on a tiny tmpfs (DUR-02, DISK-02):
 * the failed batch is invisible, every earlier commit is intact, the database refuses writes until
 * it is reopened with space back, and then takes the failed batch again. Root only (it mounts a
 * tmpfs), else exit 77.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "common/msgid.h"
#include "spool/spool_db.h"
#include "tests/lib/check.h"
#include "tests/unit/spool/spool_db_fixture.h"

/* ---- DUR-02 / DISK-02: ENOSPC in the middle of group commits (root: tmpfs) ---- */

static int enospc_body(const char *mnt)
{
    char *dbdir = path_join(mnt, "spool");
    char *filler = path_join(mnt, "filler");
    /* RocksDB's own failure path: bodies stay in RocksDB (the body log's ENOSPC is spool_db_blog_test's) */
    const struct spool_db_opts o = {.body_log_off = true};
    struct spool_db *db = open_or_die(dbdir, &o);

    enum { EARLY = 10, PER = 8, MAXB = 64 };
    struct msgid early[EARLY];
    struct spool_db_batch *b = spool_db_batch_new(db);
    for (int i = 0; i < EARLY; i++) {
        early[i] = msgid_generate();
        CHECK(batch_add(b, early[i], 3) == 0, "add");
    }
    CHECK(spool_db_commit(db, b) == 0, "early commit: %s", spool_db_error(db));

    /* fill the filesystem, then give back a little so a few commits still fit */
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "filler: %s", strerror(errno));
    static uint8_t chunk[1 << 16];
    memset(chunk, 0x5a, sizeof(chunk));
    off_t size = 0;
    for (;;) {
        ssize_t w = write(fd, chunk, sizeof(chunk));
        if (w <= 0)
            break;
        size += w;
    }
    CHECK(ftruncate(fd, size > (256 << 10) ? size - (256 << 10) : 0) == 0, "ftruncate");
    close(fd);
    CHECK(spool_db_space_low(mnt, 1u << 20), "full tmpfs not reported low");

    /* commit groups of 8 multi-recipient messages until one fails */
    struct msgid acked[MAXB * PER], failed[PER];
    int nacked = 0, rc = 0;
    for (int round = 0; round < MAXB; round++) {
        spool_db_batch_reset(b);
        struct msgid ids[PER];
        for (int i = 0; i < PER; i++) {
            ids[i] = msgid_generate();
            CHECK(batch_add(b, ids[i], 3) == 0, "add");
        }
        rc = spool_db_commit(db, b);
        if (rc < 0) {
            memcpy(failed, ids, sizeof(failed));
            break;
        }
        memcpy(acked + nacked, ids, sizeof(ids));
        nacked += PER;
    }
    CHECK(rc == -ENOSPC, "commit on a full disk: rc %d (%s)", rc, spool_db_error(db));
    CHECK(strstr(spool_db_error(db), "No space") != NULL, "error text: %s", spool_db_error(db));
    CHECK(spool_db_needs_recover(db), "needs_recover not set after ENOSPC");
    if (rc != -ENOSPC)
        goto out;
    printf("enospc: %d messages acknowledged before the failed commit: %s\n", nacked, spool_db_error(db));

    /* in this process: the failed group is absent, every earlier one intact */
    for (int i = 0; i < PER; i++)
        CHECK(message_absent(db, failed[i]), "failed message %d visible", i);
    for (int i = 0; i < nacked; i++) {
        const char *why = "";
        CHECK(message_ok(db, acked[i], 3, &why), "acked %d: %s", i, why);
    }
    /* until recovered, writes are refused with the same error, without touching RocksDB */
    rc = spool_db_commit(db, b);
    CHECK(rc == -ENOSPC, "second commit on a full disk: rc %d", rc);
    CHECK(spool_db_delete(db, acked[0]) == -ENOSPC, "delete while broken");
    /* a reopen while the disk is still full may fail; it must not lose anything either */
    rc = spool_db_recover(db);
    printf("enospc: recover on a still-full disk: %d %s\n", rc, rc ? spool_db_error(db) : "");
    if (rc == 0) {
        const char *why = "";
        CHECK(message_ok(db, acked[nacked - 1], 3, &why), "last acked after full-disk reopen: %s", why);
        CHECK(message_absent(db, failed[0]), "failed message after full-disk reopen");
    }

    /* space returns (DISK-02): reopen, check, and the same group commits now */
    CHECK(unlink(filler) == 0, "unlink filler");
    CHECK(!spool_db_space_low(mnt, 1u << 20), "space still low after freeing");
    rc = spool_db_recover(db);
    CHECK(rc == 0, "recover: %d %s", rc, spool_db_error(db));
    if (rc != 0)
        goto out;
    CHECK(!spool_db_needs_recover(db), "needs_recover after recover");
    for (int i = 0; i < PER; i++)
        CHECK(message_absent(db, failed[i]), "failed message %d present after reopen", i);
    for (int i = 0; i < EARLY; i++) {
        const char *why = "";
        CHECK(message_ok(db, early[i], 3, &why), "early %d after reopen: %s", i, why);
    }
    for (int i = 0; i < nacked; i++) {
        const char *why = "";
        CHECK(message_ok(db, acked[i], 3, &why), "acked %d after reopen: %s", i, why);
    }
    rc = spool_db_commit(db, b);
    CHECK(rc == 0, "commit after space returned: %d %s", rc, spool_db_error(db));
    spool_db_batch_free(b);
    b = NULL;
    spool_db_close(db);
    db = open_or_die(dbdir, &o);
    for (int i = 0; i < PER; i++) {
        const char *why = "";
        CHECK(message_ok(db, failed[i], 3, &why), "recommitted %d after reopen: %s", i, why);
    }
    struct seen s = { .ordered = true };
    struct spool_db_walk w;
    size_t n = walk_all(db, 50, &s, &w);
    CHECK(n == (size_t)(EARLY + nacked + PER), "walk %zu, want %d", n, EARLY + nacked + PER);
    free(s.ids);
out:
    spool_db_batch_free(b);
    spool_db_close(db);
    free(dbdir);
    free(filler);
    return 0;
}

static int test_enospc(void)
{
    if (geteuid() != 0) {
        printf("SKIP enospc: needs root to mount a tmpfs\n");
        return 77;
    }
    char *mnt = temp_dir();
    if (mount("spool_db_test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=6m,mode=0700") < 0) {
        printf("SKIP enospc: mount tmpfs: %s\n", strerror(errno));
        rmdir(mnt);
        free(mnt);
        return 77;
    }
    /*
     * A child does the work, so that whatever RocksDB does on a full disk (even abort) cannot
     * keep the parent from unmounting. This process has not touched RocksDB before the fork.
     */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        enospc_body(mnt);
        fflush(NULL);
        _exit(check_failures ? 1 : 0);
    }
    int st = 0;
    if (pid < 0)
        CHECK(0, "fork: %s", strerror(errno));
    else
        waitpid(pid, &st, 0);
    CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "enospc child failed, status 0x%x", st);
    if (umount2(mnt, MNT_DETACH) < 0)
        CHECK(0, "umount %s: %s", mnt, strerror(errno));
    rmdir(mnt);
    free(mnt);
    return 0;
}

int main(void)
{
    log_init("spool_db_enospc_test", 0);
    log_set_level(LOG_LEVEL_WARN);
    msgid_init(7);
    int rc = test_enospc();
    if (check_failures) {
        fprintf(stderr, "spool_db_enospc_test: %d failure(s)\n", check_failures);
        return 1;
    }
    if (rc == 77)
        return 77;
    printf("spool_db_enospc_test: ok\n");
    return 0;
}
