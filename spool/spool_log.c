/*
 * spool_log - delivery/event log writer (format and segment life cycle in spool_log.h)
 *
 * A flush compresses the whole buffer into one zstd frame (ZSTD_compress2 always ends the
 * frame) and pwrite()s it at the committed end of the segment. Writing at an explicit offset
 * is what makes a failed flush harmless: whatever part of the frame reached the file is cut
 * off again (or overwritten by the retry), so the file is always a sequence of whole frames
 * plus, at worst after a crash, one partial frame at the end.
 */
#include "spool/spool_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "common/mta_sts.h"

#define STEM_LEN 22 /* YYYYMMDD-HHMMSS.ffffff */
#define NAME_MAX_LEN 80

struct spool_log {
    char *dir;
    int dirfd;
    char *node_id;
    uint64_t max_segment_bytes;
    uint64_t max_segment_age_ns;
    uint64_t flush_interval_ns;
    uint64_t flush_interval_cfg_ns; /* as opened; flush_interval_ns is shorter while a tail-log follows */
    size_t flush_bytes;
    size_t max_pending;
    ZSTD_CCtx *cctx;

    struct buf pend; /* JSON lines not yet written */
    uint64_t pend_since_ns; /* writer's clock when pend became non-empty */
    uint8_t *zbuf;
    size_t zcap;

    int fd; /* active segment, -1 when none */
    char stem[64]; /* STEM_LEN used; room for what snprintf fears a struct tm could print */
    char *active_path;
    uint64_t last_us;      /* name time of the newest segment seen or made; 0 = none */
    uint64_t seg_start_ns; /* age reference of the active segment */
    uint64_t seg_bytes;    /* bytes of whole frames in the active segment */
    bool seg_dirty;        /* a failed write may have left bytes past seg_bytes */
    bool seg_dir_synced;   /* the directory entry of the active segment is durable */
    bool failing;          /* inside a streak of failed flushes (logged once) */

    uint64_t now_ns;
    struct spool_log_stats st;
};

static const char *const type_names[SPOOL_LOG__MAX] = {
    [SPOOL_LOG_RECEPTION] = "Reception",
    [SPOOL_LOG_DELIVERY] = "Delivery",
    [SPOOL_LOG_TRANSIENT_FAILURE] = "TransientFailure",
    [SPOOL_LOG_BOUNCE] = "Bounce",
    [SPOOL_LOG_EXPIRATION] = "Expiration",
    [SPOOL_LOG_ADMIN_BOUNCE] = "AdminBounce",
    [SPOOL_LOG_REJECTION] = "Rejection",
    [SPOOL_LOG_SUPPRESSED] = "Suppressed",
};

const char *spool_log_type_name(enum spool_log_type type)
{
    if ((unsigned)type >= SPOOL_LOG__MAX)
        return NULL;
    return type_names[type];
}

/* ---- UTF-8 repair ---- */

/* jstr - a JSON string of s with every byte outside a well-formed sequence made U+FFFD */
static json_t *jstr(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0, n;

    while (i < len && (n = utf8_seq_len(p + i, len - i)) != 0)
        i += n;
    if (i == len)
        return json_stringn(s, len);

    char *fixed = xmalloc(len * 3 + 1);
    size_t o = i;
    memcpy(fixed, s, i);
    while (i < len) {
        n = utf8_seq_len(p + i, len - i);
        if (n == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, n);
            o += n;
            i += n;
        }
    }
    json_t *j = json_stringn(fixed, o);
    free(fixed);
    return j;
}

static json_t *jstr_or_null(const char *s)
{
    return s ? jstr(s) : json_null();
}

static json_t *jstr_or_empty(const char *s)
{
    return jstr(s ? s : "");
}

/* put - set key (a literal) to v, which may be NULL after a failed allocation */
static void put(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *bad = true;
}

static json_t *kv_object(const struct spool_log_kv *kv, size_t count, bool *bad)
{
    json_t *o = json_object();
    if (!o) {
        *bad = true;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (!kv[i].key) {
            *bad = true;
            break;
        }
        json_t *k = jstr(kv[i].key); /* repaired key text, so jansson accepts it */
        json_t *v = jstr_or_null(kv[i].value);
        if (!k || !v || json_object_set_new(o, json_string_value(k), v) != 0) {
            if (!(k && v))
                json_decref(v);
            *bad = true;
        }
        json_decref(k);
        if (*bad)
            break;
    }
    return o;
}

static json_t *response_object(const struct spool_log_response *r, bool *bad)
{
    if (r->code == 0)
        return json_null();
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(o, "code", json_integer(r->code), bad);
    if (r->enh_class != 0) {
        json_t *e = json_object();
        if (e) {
            put(e, "class", json_integer(r->enh_class), bad);
            put(e, "subject", json_integer(r->enh_subject), bad);
            put(e, "detail", json_integer(r->enh_detail), bad);
        }
        put(o, "enhanced_code", e, bad);
    } else {
        put(o, "enhanced_code", json_null(), bad);
    }
    put(o, "content", jstr_or_empty(r->content), bad);
    put(o, "command", jstr_or_null(r->command), bad);
    return o;
}

/* put_tls - KumoMTA leaves the TLS fields out of a record without TLS */
static void put_tls(json_t *o, const struct spool_log_event *ev, bool *bad)
{
    if (ev->tls_cipher && ev->tls_cipher[0])
        put(o, "tls_cipher", jstr(ev->tls_cipher), bad);
    if (ev->tls_protocol_version && ev->tls_protocol_version[0])
        put(o, "tls_protocol_version", jstr(ev->tls_protocol_version), bad);
    if (!ev->tls_peer_subject_name || !ev->tls_peer_subject_name[0])
        return;
    json_t *a = json_array();
    for (const char *p = ev->tls_peer_subject_name; a;) {
        const char *tab = strchr(p, '\t');
        size_t n = tab ? (size_t)(tab - p) : strlen(p);
        char *piece = xstrndup(p, n);
        json_t *v = jstr(piece); /* a subject cut in a UTF-8 sequence is repaired, not refused */
        free(piece);
        if (!v || json_array_append_new(a, v) < 0)
            *bad = true;
        if (!tab)
            break;
        p = tab + 1;
    }
    put(o, "tls_peer_subject_name", a, bad);
}

int spool_log_build(const struct spool_log *lg, enum spool_log_type type,
                    const struct spool_log_event *ev, json_t **out)
{
    const char *name = spool_log_type_name(type);
    bool bad = false;

    *out = NULL;
    if (!name || !ev)
        return -EINVAL;
    /* inbound events have no site and no egress path, as in KumoMTA */
    bool inbound = type == SPOOL_LOG_RECEPTION || type == SPOOL_LOG_REJECTION;
    int64_t ts = ev->timestamp;
    if (ts == 0 && lg)
        ts = (int64_t)(lg->now_ns / 1000000000u);

    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    put(o, "type", json_string(name), &bad);
    put(o, "id", jstr_or_empty(ev->id), &bad);
    put(o, "sender", jstr_or_empty(ev->sender), &bad);
    put(o, "recipient", jstr_or_empty(ev->recipient), &bad);
    put(o, "queue", jstr_or_empty(ev->queue), &bad);
    put(o, "site", jstr_or_empty(inbound ? "" : ev->site), &bad);
    /* the MTA-STS mode the attempt ran under: the scheduler names it in the site (docs/tls.md) */
    if (!inbound && mta_sts_site_mode(ev->site) != MTA_STS_MODE_OFF)
        put(o, "mta_sts", json_string(mta_sts_mode_name(mta_sts_site_mode(ev->site))), &bad);
    put(o, "size", json_integer(ev->size > INT64_MAX ? INT64_MAX : (json_int_t)ev->size), &bad);
    put(o, "response", response_object(&ev->response, &bad), &bad);
    if (ev->peer_name || ev->peer_addr) {
        json_t *p = json_object();
        if (p) {
            put(p, "name", jstr_or_empty(ev->peer_name), &bad);
            put(p, "addr", jstr_or_empty(ev->peer_addr), &bad);
        }
        put(o, "peer_address", p, &bad);
    } else {
        put(o, "peer_address", json_null(), &bad);
    }
    put(o, "timestamp", json_integer(ts), &bad);
    put(o, "created", ev->created ? json_integer(ev->created) : json_null(), &bad);
    put(o, "num_attempts", json_integer(ev->num_attempts), &bad);
    put(o, "bounce_classification",
        jstr(ev->bounce_classification ? ev->bounce_classification : "Uncategorized"), &bad);
    put(o, "egress_pool", jstr_or_null(inbound ? NULL : ev->egress_pool), &bad);
    put(o, "egress_source", jstr_or_null(inbound ? NULL : ev->egress_source), &bad);
    put(o, "meta", kv_object(ev->meta, ev->meta_count, &bad), &bad);
    put(o, "headers", kv_object(ev->headers, ev->header_count, &bad), &bad);
    put(o, "nodeid", jstr_or_null(lg ? lg->node_id : NULL), &bad);
    put_tls(o, ev, &bad);
    if (bad) {
        json_decref(o);
        /* a NULL key is the caller's mistake; anything else is jansson out of memory */
        for (size_t i = 0; i < ev->meta_count; i++)
            if (!ev->meta[i].key)
                return -EINVAL;
        for (size_t i = 0; i < ev->header_count; i++)
            if (!ev->headers[i].key)
                return -EINVAL;
        return -ENOMEM;
    }
    *out = o;
    return 0;
}

/* ---- segment names ---- */

static void stem_format(uint64_t us, char *buf, size_t size)
{
    time_t sec = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, size, "%04d%02d%02d-%02d%02d%02d.%06u", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* stem_parse - true when name is exactly STEM + suffix; *us is the time the stem names */
static bool stem_parse(const char *name, const char *suffix, uint64_t *us)
{
    size_t slen = strlen(suffix);
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, f = 0;
    if (strlen(name) != STEM_LEN + slen || strcmp(name + STEM_LEN, suffix) != 0)
        return false;
    if (name[8] != '-' || name[15] != '.')
        return false;
    if (!digits(name, 4, &y) || !digits(name + 4, 2, &mo) || !digits(name + 6, 2, &d) ||
        !digits(name + 9, 2, &h) || !digits(name + 11, 2, &mi) || !digits(name + 13, 2, &s) ||
        !digits(name + 16, 6, &f))
        return false;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *us = (uint64_t)t * 1000000u + (uint64_t)f;
    return true;
}

/* ---- recovery of segments a previous writer left active ---- */

/* recover_one - cut an active segment back to its last whole frame and finish it */
static void recover_one(struct spool_log *lg, const char *name)
{
    char final[NAME_MAX_LEN];
    struct stat sb;
    int fd = openat(lg->dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        log_warn("log %s/%s: cannot open leftover segment: %s", lg->dir, name, strerror(errno));
        return;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        log_warn("log %s/%s: leftover segment is not a regular file; left alone", lg->dir, name);
        close(fd);
        return;
    }
    size_t size = (size_t)sb.st_size, good = 0;
    if (size > 0) {
        void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            log_warn("log %s/%s: mmap: %s; left alone", lg->dir, name, strerror(errno));
            close(fd);
            return;
        }
        while (good < size) {
            size_t n = ZSTD_findFrameCompressedSize((const char *)map + good, size - good);
            if (ZSTD_isError(n))
                break;
            good += n;
        }
        munmap(map, size);
    }
    if (size == 0) {
        close(fd);
        unlinkat(lg->dirfd, name, 0);
        log_info("log %s/%s: removed empty leftover segment", lg->dir, name);
        return;
    }
    if (good == 0) {
        /* not one whole frame: nothing readable to keep, but not ours to destroy either */
        close(fd);
        log_warn("log %s/%s: leftover segment has no whole zstd frame; left as is", lg->dir,
                 name);
        return;
    }
    if (good < size) {
        log_warn("log %s/%s: cut %zu bytes of a partial frame written before a crash",
                 lg->dir, name, size - good);
        if (ftruncate(fd, (off_t)good) != 0) {
            log_warn("log %s/%s: ftruncate: %s; left active", lg->dir, name, strerror(errno));
            close(fd);
            return;
        }
    }
    int r = fsync(fd);
    close(fd);
    snprintf(final, sizeof(final), "%.*s%s", STEM_LEN, name, SPOOL_LOG_SUFFIX);
    if (r != 0 || faccessat(lg->dirfd, final, F_OK, 0) == 0 ||
        renameat(lg->dirfd, name, lg->dirfd, final) != 0) {
        log_warn("log %s/%s: cannot finish leftover segment; left active", lg->dir, name);
        return;
    }
    log_info("log %s/%s: finished leftover segment", lg->dir, final);
}

static int recover(struct spool_log *lg)
{
    int fd = dup(lg->dirfd);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    char **active = NULL;
    size_t n_active = 0;
    struct dirent *de;
    uint64_t us;
    while ((de = readdir(d)) != NULL) {
        if (stem_parse(de->d_name, SPOOL_LOG_SUFFIX, &us)) {
            if (us > lg->last_us)
                lg->last_us = us;
        } else if (stem_parse(de->d_name, SPOOL_LOG_ACTIVE_SUFFIX, &us)) {
            if (us > lg->last_us)
                lg->last_us = us;
            active = xrealloc(active, (n_active + 1) * sizeof(*active));
            active[n_active++] = xstrdup(de->d_name);
        }
    }
    closedir(d);
    for (size_t i = 0; i < n_active; i++) {
        recover_one(lg, active[i]);
        free(active[i]);
    }
    free(active);
    if (n_active > 0)
        fsync(lg->dirfd);
    return 0;
}

/* ---- open / close ---- */

int spool_log_open(const struct spool_log_opts *opts, uint64_t now_ns, struct spool_log **out)
{
    *out = NULL;
    if (!opts || !opts->dir || !opts->dir[0])
        return -EINVAL;
    int level = opts->zstd_level ? opts->zstd_level : SPOOL_LOG_DEFAULT_ZSTD_LEVEL;
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
        return -EINVAL;
    if (mkdir(opts->dir, 0750) != 0 && errno != EEXIST)
        return -errno;
    int dirfd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    if (flock(dirfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno == EWOULDBLOCK ? EBUSY : errno;
        close(dirfd);
        return -e;
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!cctx) {
        close(dirfd);
        return -ENOMEM;
    }
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1))) {
        ZSTD_freeCCtx(cctx);
        close(dirfd);
        return -EINVAL;
    }

    struct spool_log *lg = xcalloc(1, sizeof(*lg));
    lg->dir = xstrdup(opts->dir);
    lg->dirfd = dirfd;
    lg->node_id = opts->node_id ? xstrdup(opts->node_id) : NULL;
    lg->max_segment_bytes = opts->max_segment_bytes ? opts->max_segment_bytes
                                                    : SPOOL_LOG_DEFAULT_SEGMENT_BYTES;
    lg->max_segment_age_ns = opts->max_segment_age_ns ? opts->max_segment_age_ns
                                                      : SPOOL_LOG_DEFAULT_SEGMENT_AGE_NS;
    lg->flush_interval_ns = opts->flush_interval_ns ? opts->flush_interval_ns
                                                    : SPOOL_LOG_DEFAULT_FLUSH_NS;
    lg->flush_interval_cfg_ns = lg->flush_interval_ns;
    lg->flush_bytes = opts->flush_bytes ? opts->flush_bytes : SPOOL_LOG_DEFAULT_FLUSH_BYTES;
    lg->max_pending = opts->max_pending_bytes ? opts->max_pending_bytes
                                              : SPOOL_LOG_DEFAULT_PENDING_MAX;
    /* a threshold above the cap would refuse records that a size-triggered flush should take */
    if (lg->flush_bytes > lg->max_pending / 2)
        lg->flush_bytes = lg->max_pending / 2;
    lg->cctx = cctx;
    lg->fd = -1;
    lg->now_ns = now_ns;
    int r = recover(lg);
    if (r < 0) {
        spool_log_close(lg);
        return r;
    }
    *out = lg;
    return 0;
}

static void seg_forget(struct spool_log *lg)
{
    lg->fd = -1;
    lg->seg_bytes = 0;
    lg->seg_dirty = false;
    lg->st.segment_bytes = 0;
    free(lg->active_path);
    lg->active_path = NULL;
}

int spool_log_close(struct spool_log *lg)
{
    if (!lg)
        return 0;
    int r = spool_log_rotate(lg);
    if (r < 0)
        log_error("log %s: closing with an error (%s); %zu bytes of records not written",
                  lg->dir, strerror(-r), lg->pend.len);
    if (lg->fd >= 0)
        close(lg->fd); /* stays active; the next writer finishes it */
    seg_forget(lg);
    ZSTD_freeCCtx(lg->cctx);
    close(lg->dirfd);
    buf_fini(&lg->pend);
    free(lg->zbuf);
    free(lg->node_id);
    free(lg->dir);
    free(lg);
    return r;
}

/* ---- segments ---- */

static int seg_create(struct spool_log *lg)
{
    char active[NAME_MAX_LEN], final[NAME_MAX_LEN];
    uint64_t us = lg->now_ns / 1000u;
    /* names must sort in write order even when the clock stepped back */
    if (us <= lg->last_us)
        us = lg->last_us + 1;
    for (int tries = 0; tries < 1000; tries++, us++) {
        stem_format(us, lg->stem, sizeof(lg->stem));
        snprintf(active, sizeof(active), "%.22s%s", lg->stem, SPOOL_LOG_ACTIVE_SUFFIX);
        snprintf(final, sizeof(final), "%.22s%s", lg->stem, SPOOL_LOG_SUFFIX);
        if (faccessat(lg->dirfd, final, F_OK, 0) == 0)
            continue;
        int fd = openat(lg->dirfd, active, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return -errno;
        lg->fd = fd;
        lg->last_us = us;
        lg->seg_start_ns = lg->now_ns;
        lg->seg_bytes = 0;
        lg->seg_dirty = false;
        lg->seg_dir_synced = false;
        lg->active_path = xasprintf("%s/%s", lg->dir, active);
        return 0;
    }
    return -EEXIST;
}

/* seg_finish - make the active segment durable and give it its finished name */
static int seg_finish(struct spool_log *lg)
{
    char active[NAME_MAX_LEN], final[NAME_MAX_LEN];
    if (lg->fd < 0)
        return 0;
    if (lg->seg_dirty) {
        if (ftruncate(lg->fd, (off_t)lg->seg_bytes) != 0)
            return -errno;
        lg->seg_dirty = false;
    }
    if (fsync(lg->fd) != 0)
        return -errno;
    close(lg->fd);
    snprintf(active, sizeof(active), "%.22s%s", lg->stem, SPOOL_LOG_ACTIVE_SUFFIX);
    snprintf(final, sizeof(final), "%.22s%s", lg->stem, SPOOL_LOG_SUFFIX);
    char *path = lg->active_path;
    lg->active_path = NULL;
    seg_forget(lg);
    if (renameat(lg->dirfd, active, lg->dirfd, final) != 0) {
        int e = errno;
        /* the data is safe; the next writer's open finishes the segment */
        log_error("log %s: rename to %s failed: %s", path, final, strerror(e));
        free(path);
        return -e;
    }
    free(path);
    if (fsync(lg->dirfd) != 0)
        return -errno;
    lg->st.segments_done++;
    return 0;
}

/* ---- buffer and flush ---- */

static int flush_fail(struct spool_log *lg, int err)
{
    lg->st.flush_errors++;
    if (!lg->failing)
        log_warn("log %s: flush failed: %s; %zu bytes of records kept in memory", lg->dir,
                 strerror(-err), lg->pend.len);
    lg->failing = true;
    return err;
}

int spool_log_flush(struct spool_log *lg)
{
    if (lg->pend.len == 0)
        return 0;
    if (lg->fd < 0) {
        int r = seg_create(lg);
        if (r < 0)
            return flush_fail(lg, r);
    }
    size_t bound = ZSTD_compressBound(lg->pend.len);
    if (bound > lg->zcap) {
        free(lg->zbuf);
        lg->zbuf = xmalloc(bound);
        lg->zcap = bound;
    }
    size_t n = ZSTD_compress2(lg->cctx, lg->zbuf, lg->zcap, lg->pend.data, lg->pend.len);
    if (ZSTD_isError(n)) {
        log_error("log %s: zstd: %s", lg->dir, ZSTD_getErrorName(n));
        return flush_fail(lg, -EIO);
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(lg->fd, lg->zbuf + done, n - done, (off_t)(lg->seg_bytes + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            /* cut the partial frame so a reader never meets it; a retry overwrites it anyway */
            lg->seg_dirty = ftruncate(lg->fd, (off_t)lg->seg_bytes) != 0;
            return flush_fail(lg, -e);
        }
        done += (size_t)w;
    }
    lg->seg_bytes += n;
    if (lg->seg_dirty && ftruncate(lg->fd, (off_t)lg->seg_bytes) == 0)
        lg->seg_dirty = false;
    lg->st.segment_bytes = lg->seg_bytes;
    lg->st.flushes++;
    lg->pend.len = 0;
    if (lg->failing) {
        log_info("log %s: flushing works again", lg->dir);
        lg->failing = false;
    }
    if (lg->seg_bytes >= lg->max_segment_bytes)
        return seg_finish(lg);
    return 0;
}

/* room for need more bytes (and the '\n'); -ENOBUFS past the cap */
static int pend_reserve(struct spool_log *lg, size_t need)
{
    if (lg->pend.len + need + 1 > lg->max_pending) {
        lg->st.dropped++;
        return -ENOBUFS;
    }
    buf_reserve(&lg->pend, need + 1);
    return 0;
}

/* the record of need bytes is in place at pend.data + pend.len: end the line, count, maybe flush */
static void pend_commit(struct spool_log *lg, size_t need)
{
    if (lg->pend.len == 0)
        lg->pend_since_ns = lg->now_ns;
    lg->pend.len += need;
    buf_putc(&lg->pend, '\n');
    lg->st.records++;
    /* while the disk fails only tick retries: recompressing a growing buffer per record is waste */
    if (lg->pend.len >= lg->flush_bytes && !lg->failing)
        (void)spool_log_flush(lg); /* a failure keeps the records; tick retries and reports */
}

int spool_log_write(struct spool_log *lg, const json_t *rec)
{
    if (!json_is_object(rec))
        return -EINVAL;
    size_t need = json_dumpb(rec, NULL, 0, JSON_COMPACT);
    if (need == 0)
        return -EINVAL; /* jansson refuses to dump it (invalid UTF-8 put in with _nocheck) */
    int r = pend_reserve(lg, need);
    if (r < 0)
        return r;
    if (json_dumpb(rec, (char *)lg->pend.data + lg->pend.len, need, JSON_COMPACT) != need)
        return -ENOMEM;
    pend_commit(lg, need);
    return 0;
}

int spool_log_write_line(struct spool_log *lg, const char *line, size_t len)
{
    if (len == 0 || line[0] != '{' || memchr(line, '\n', len) != NULL)
        return -EINVAL;
    int r = pend_reserve(lg, len);
    if (r < 0)
        return r;
    memcpy(lg->pend.data + lg->pend.len, line, len);
    pend_commit(lg, len);
    return 0;
}

int spool_log_event(struct spool_log *lg, enum spool_log_type type,
                    const struct spool_log_event *ev)
{
    json_t *rec;
    int r = spool_log_build(lg, type, ev, &rec);
    if (r < 0)
        return r;
    r = spool_log_write(lg, rec);
    json_decref(rec);
    return r;
}

int spool_log_reception(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_RECEPTION, ev);
}

int spool_log_delivery(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_DELIVERY, ev);
}

int spool_log_transient_failure(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_TRANSIENT_FAILURE, ev);
}

int spool_log_bounce(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_BOUNCE, ev);
}

int spool_log_expiration(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_EXPIRATION, ev);
}

int spool_log_admin_bounce(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_ADMIN_BOUNCE, ev);
}

int spool_log_rejection(struct spool_log *lg, const struct spool_log_event *ev)
{
    return spool_log_event(lg, SPOOL_LOG_REJECTION, ev);
}

void spool_log_set_flush_interval(struct spool_log *lg, uint64_t ns)
{
    lg->flush_interval_ns = ns ? ns : lg->flush_interval_cfg_ns;
}

int spool_log_tick(struct spool_log *lg, uint64_t now_ns)
{
    int r = 0;
    lg->now_ns = now_ns;
    /* a clock stepped back must not freeze a segment or a buffer for the size of the step */
    if (now_ns < lg->pend_since_ns)
        lg->pend_since_ns = now_ns;
    if (now_ns < lg->seg_start_ns)
        lg->seg_start_ns = now_ns;
    if (lg->pend.len > 0 && now_ns - lg->pend_since_ns >= lg->flush_interval_ns)
        r = spool_log_flush(lg);
    if (r == 0 && lg->fd >= 0 && now_ns - lg->seg_start_ns >= lg->max_segment_age_ns)
        r = spool_log_rotate(lg);
    return r;
}

int spool_log_sync(struct spool_log *lg)
{
    int r = spool_log_flush(lg);
    if (r < 0 || lg->fd < 0)
        return r;
    if (fdatasync(lg->fd) != 0)
        return -errno;
    if (!lg->seg_dir_synced) {
        if (fsync(lg->dirfd) != 0)
            return -errno;
        lg->seg_dir_synced = true;
    }
    return 0;
}

int spool_log_rotate(struct spool_log *lg)
{
    int r = spool_log_flush(lg);
    if (r < 0)
        return r;
    return seg_finish(lg);
}

void spool_log_stats_get(const struct spool_log *lg, struct spool_log_stats *out)
{
    *out = lg->st;
    out->pending_bytes = lg->pend.len;
}

const char *spool_log_active_path(const struct spool_log *lg)
{
    return lg->active_path;
}
