/*
 * spool_db_fixture - what spool_db_test and spool_db_enospc_test share: temporary directories,
 * messages with bodies derived from their ids (so a reader checks every byte without a copy),
 * and a full walk that collects the ids it was handed.
 *
 * Helpers, not a library: include it once per test program, after tests/lib/check.h (walk_all()
 * counts its failures there).
 */
#ifndef RINGMAIL_SPOOL_DB_FIXTURE_H
#define RINGMAIL_SPOOL_DB_FIXTURE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/msgid.h"
#include "spool/spool_db.h"
#include "tests/lib/check.h"

static char *temp_dir(void)
{
    char *t = strdup("/tmp/spool_db_test.XXXXXX");
    if (t == NULL || mkdtemp(t) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    return t;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static struct proto_env_rcpt test_rcpts[3] = {
    { "one@gmail.com", PROTO_RCPT_QUEUED, 0 },
    { "two@outlook.com", PROTO_RCPT_QUEUED, 0 },
    { "three@yahoo.com", PROTO_RCPT_QUEUED, 0 },
};
static struct proto_env_meta test_meta[] = {
    { PROTO_ENV_META_QUEUE, "gmail.com" },
    { PROTO_ENV_META_TENANT, "acme" },
};

static struct proto_env make_rec(struct msgid id, uint32_t nrcpt, size_t body_len)
{
    struct proto_env r = {
        .flags = PROTO_ENV_F_8BITMIME,
        .created_ms = msgid_time_ms(id),
        .body_size = body_len,
        .sender = "bounce@sender.example",
        .rcpt_count = nrcpt,
        .rcpts = test_rcpts,
        .meta_count = 2,
        .meta = test_meta,
    };
    return r;
}

/* deterministic body for an id, so a reader can check every byte without keeping a copy */
static size_t body_len_for(struct msgid id)
{
    return 100 + (size_t)(id.lo % 9000);
}

static void body_fill(struct msgid id, uint8_t *buf, size_t len)
{
    uint64_t x = id.hi ^ id.lo;
    for (size_t i = 0; i < len; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (uint8_t)(x >> 56);
    }
}

static int batch_add(struct spool_db_batch *b, struct msgid id, uint32_t nrcpt)
{
    size_t len = body_len_for(id);
    uint8_t *body = malloc(len);
    body_fill(id, body, len);
    struct proto_env r = make_rec(id, nrcpt, len);
    int rc = spool_db_batch_store(b, id, &r, body, len);
    free(body);
    return rc;
}

/* the stored message is exactly what batch_add() wrote */
static bool message_ok(struct spool_db *db, struct msgid id, uint32_t nrcpt, const char **why)
{
    struct proto_env r;
    int rc = spool_db_get_envelope(db, id, &r);
    if (rc < 0) {
        *why = rc == -ENOENT ? "envelope missing" : "envelope unreadable";
        return false;
    }
    size_t len = body_len_for(id);
    bool ok = r.rcpt_count == nrcpt && r.body_size == len && strcmp(r.sender, "bounce@sender.example") == 0 &&
        r.created_ms == msgid_time_ms(id);
    proto_env_fini(&r);
    if (!ok) {
        *why = "envelope fields differ";
        return false;
    }
    struct buf b = {0};
    rc = spool_db_get_body(db, id, &b);
    if (rc < 0) {
        *why = "body missing";
        return false;
    }
    uint8_t *want = malloc(len);
    body_fill(id, want, len);
    ok = b.len == len && memcmp(b.data, want, len) == 0;
    free(want);
    buf_fini(&b);
    if (!ok)
        *why = "body differs";
    return ok;
}

static bool message_absent(struct spool_db *db, struct msgid id)
{
    struct proto_env r;
    struct buf b = {0};
    int e = spool_db_get_envelope(db, id, &r);
    int g = spool_db_get_body(db, id, &b);
    if (e == 0)
        proto_env_fini(&r);
    buf_fini(&b);
    return e == -ENOENT && g == -ENOENT;
}

static struct spool_db *open_or_die(const char *dir, const struct spool_db_opts *o)
{
    struct spool_db *db = NULL;
    char *err = NULL;
    int rc = spool_db_open(dir, o, &db, &err);
    if (rc < 0) {
        fprintf(stderr, "FAIL open %s: %d %s\n", dir, rc, err ? err : "");
        free(err);
        exit(1);
    }
    return db;
}

/* walk collector */
struct seen {
    struct msgid *ids;
    size_t n, cap;
    bool ordered;
};

static int on_walk(void *arg, struct msgid id, const struct proto_env *rec)
{
    struct seen *s = arg;
    if (s->n > 0 && msgid_cmp(s->ids[s->n - 1], id) >= 0)
        s->ordered = false;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->ids = realloc(s->ids, s->cap * sizeof(*s->ids));
    }
    s->ids[s->n++] = id;
    (void)rec;
    return 0;
}

static size_t walk_all(struct spool_db *db, size_t step, struct seen *s, struct spool_db_walk *w)
{
    spool_db_walk_init(w);
    s->n = 0;
    s->ordered = true;
    int steps = 0;
    while (!w->done && steps < 100000) {
        int rc = spool_db_walk_step(db, w, step, on_walk, s);
        if (rc < 0) {
            CHECK(0, "walk step rc %d: %s", rc, spool_db_error(db));
            break;
        }
        CHECK((size_t)rc <= step, "walk step examined %d > %zu", rc, step);
        steps++;
    }
    return s->n;
}

#endif
