/*
 * supervisor_logs - GET /api/v1/logs?type=T&domain=D&queue=Q&limit=N&follow=1 (supervisor/supervisor_logs.h)
 *
 * The answer is JSON Lines (application/x-ndjson): the last `limit` matching records, oldest first, each
 * line as the spool wrote it; with follow=1 then every new matching record as the spool flushes it, until
 * the client goes away. A line that is an object with an "error" member is a note of the reader (corrupt
 * zstd data, a line that is not JSON, ...), never a record.
 *
 * Threads: the admin threads (libmicrohttpd's, one per listener) only check the arguments, make a job
 * and answer with a stream whose reader takes bytes from the job's buffer; when the buffer is empty the
 * reader suspends the connection. One reader thread here does every file read: it fills the buffers of
 * all jobs (the backlog first, then every LOGS_POLL_NS what was flushed since) and resumes a connection
 * that has something to send. So a search through a large log never holds up the admin API, and a
 * follower that went away (its socket hung up while suspended) is found and dropped within a poll.
 * job.lock order: the job lock (L.lock) before libmicrohttpd's own (suspend and resume are called
 * under L.lock, from both sides, so a resume cannot overtake its suspend).
 *
 * While a follower is connected the supervisor sets hdr->log_followers, so that the spool flushes its
 * log every SHM_LOG_FOLLOW_FLUSH_MS instead of every [log] flush_interval: a follower sees a record
 * within a spool tick (200 ms) plus one poll here (100 ms) of its event.
 */
#include "supervisor/supervisor_logs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_logread.h"

#define LOGS_POLL_MS 100
#define LOGS_OUT_MAX (16u << 20) /* bytes a follower may leave unread before its stream is ended */
#define LOGS_TYPE_MAX 64u
#define LOGS_QUEUE_MAX 1024u

struct logs_job {
    struct logs_job *next;
    struct MHD_Connection *conn;
    int client_fd; /* libmicrohttpd's; polled for a hang-up only while the connection is suspended */
    int dirfd;
    char *type, *domain, *queue;
    struct logread_filter filter;
    size_t limit;
    bool follow;
    /* reader thread only */
    bool started;
    struct logread_cur cur;
    /* under L.lock */
    struct buf out;
    size_t out_off;
    bool done;      /* nothing more will come: end the stream when out is sent */
    bool gone;      /* end the stream now (client hung up, shutdown) */
    bool suspended; /* the connection waits for data */
    bool released;  /* libmicrohttpd let go of the response: the reader thread frees the job */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool running, stopping;
    struct supervisor *s;
    struct logs_job *jobs;
    unsigned n_jobs, n_followers;
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void resume_locked(struct logs_job *j)
{
    if (j->suspended) {
        j->suspended = false;
        MHD_resume_connection(j->conn);
    }
}

/* note_lines - each note of the reader as an {"error": ...} line, and in the supervisor's log */
static void note_lines(const struct buf *notes, struct buf *out)
{
    if (!notes->len)
        return;
    const char *p = (const char *)notes->data, *end = p + notes->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_t *o = json_pack("{s:s%}", "error", p, n);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text) {
            buf_puts(out, text);
            buf_putc(out, '\n');
            log_warn("tail-log: %s", text);
        }
        free(text);
        json_decref(o);
        p += n + 1;
    }
}

/* job_step - the reader thread's work for one job; its new bytes go to the job under the lock */
static void job_step(struct logs_job *j)
{
    struct buf out = {0}, notes = {0};
    int rc;
    if (!j->started) {
        j->started = true;
        rc = logread_tail(j->dirfd, &j->filter, j->limit, &j->cur, &out, &notes);
    } else {
        rc = logread_follow(j->dirfd, &j->filter, &j->cur, &out, &notes);
    }
    if (rc < 0)
        buf_printf(&notes, "the log directory cannot be read: %s\n", strerror(-rc));
    note_lines(&notes, &out);
    buf_fini(&notes);
    pthread_mutex_lock(&L.lock);
    if (out.len) {
        if (j->out.len - j->out_off + out.len > LOGS_OUT_MAX) {
            buf_puts(&j->out, "{\"error\":\"the client reads the stream too slowly: ended\"}\n");
            j->done = true;
        } else {
            buf_append(&j->out, out.data, out.len);
        }
    }
    if (!j->follow || rc < 0)
        j->done = true;
    if (j->out.len > j->out_off || j->done)
        resume_locked(j);
    pthread_mutex_unlock(&L.lock);
    buf_fini(&out);
}

/* hung_up - the client closed its end (checked while the connection is suspended: the fd is still open) */
static bool hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void job_free(struct logs_job *j)
{
    logread_cur_close(&j->cur);
    if (j->dirfd >= 0)
        close(j->dirfd);
    free(j->type);
    free(j->domain);
    free(j->queue);
    buf_fini(&j->out);
    free(j);
}

static void *logs_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&L.lock);
    while (!L.stopping || L.jobs) {
        /* drop the jobs libmicrohttpd released; note if anyone still follows */
        unsigned followers = 0;
        for (struct logs_job **pp = &L.jobs; *pp;) {
            struct logs_job *j = *pp;
            if (j->released) {
                *pp = j->next;
                L.n_jobs--;
                L.n_followers -= j->follow;
                job_free(j);
                continue;
            }
            followers += j->follow;
            pp = &j->next;
        }
        atomic_store(&L.s->seg.hdr->log_followers, followers ? 1u : 0u);
        if (!L.jobs) {
            if (L.stopping)
                break;
            pthread_cond_wait(&L.cond, &L.lock);
            continue;
        }
        /* jobs are pushed at the head and freed only here: the list from `first` on is stable unlocked */
        struct logs_job *first = L.jobs;
        pthread_mutex_unlock(&L.lock);
        for (struct logs_job *j = first; j; j = j->next) {
            pthread_mutex_lock(&L.lock);
            bool skip = j->released || j->done || j->gone;
            bool check = j->suspended && j->follow;
            pthread_mutex_unlock(&L.lock);
            if (skip)
                continue;
            if (check && hung_up(j->client_fd)) {
                pthread_mutex_lock(&L.lock);
                j->gone = true;
                resume_locked(j);
                pthread_mutex_unlock(&L.lock);
                continue;
            }
            job_step(j);
        }
        pthread_mutex_lock(&L.lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += LOGS_POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&L.cond, &L.lock, &ts);
    }
    atomic_store(&L.s->seg.hdr->log_followers, 0u);
    pthread_mutex_unlock(&L.lock);
    return NULL;
}

void supervisor_logs_start(struct supervisor *s)
{
    L.s = s;
    L.stopping = false;
    pthread_cond_init(&L.cond, NULL);
    int rc = pthread_create(&L.thread, NULL, logs_thread, NULL);
    if (rc != 0)
        fatal("cannot start the log reader thread: %s", strerror(rc));
    L.running = true;
}

void supervisor_logs_shutdown(struct supervisor *s)
{
    (void)s;
    pthread_mutex_lock(&L.lock);
    L.stopping = true;
    for (struct logs_job *j = L.jobs; j; j = j->next) {
        j->gone = true;
        resume_locked(j);
    }
    pthread_cond_signal(&L.cond);
    pthread_mutex_unlock(&L.lock);
}

void supervisor_logs_stop(struct supervisor *s)
{
    if (!L.running)
        return;
    supervisor_logs_shutdown(s);
    /* the daemons are stopped: every response was released, or never will be */
    pthread_mutex_lock(&L.lock);
    for (struct logs_job *j = L.jobs; j; j = j->next)
        j->released = true;
    pthread_cond_signal(&L.cond);
    pthread_mutex_unlock(&L.lock);
    pthread_join(L.thread, NULL);
    pthread_cond_destroy(&L.cond);
    L.running = false;
}

/* on_read - libmicrohttpd wants bytes of the stream (admin thread) */
static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct logs_job *j = cls;
    (void)pos;
    pthread_mutex_lock(&L.lock);
    ssize_t r;
    size_t avail = j->out.len - j->out_off;
    if (j->gone) {
        r = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, j->out.data + j->out_off, n);
        j->out_off += n;
        if (j->out_off == j->out.len) {
            buf_reset(&j->out);
            j->out_off = 0;
        }
        r = (ssize_t)n;
    } else if (j->done) {
        r = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        j->suspended = true;
        MHD_suspend_connection(j->conn);
        r = 0;
    }
    pthread_mutex_unlock(&L.lock);
    return r;
}

/* on_released - libmicrohttpd is done with the response: the job goes (freed by the reader thread) */
static void on_released(void *cls)
{
    struct logs_job *j = cls;
    pthread_mutex_lock(&L.lock);
    j->released = true;
    j->suspended = false;
    pthread_cond_signal(&L.cond);
    pthread_mutex_unlock(&L.lock);
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned code, const char *msg)
{
    struct proto_status_reply r = {.ok = false, .error = msg};
    char *text = proto_status_reply_encode(&r);
    size_t n = strlen(text);
    char *body = xmalloc(n + 2);
    memcpy(body, text, n);
    memcpy(body + n, "\n", 2);
    free(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n + 1, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static const char *arg(struct MHD_Connection *c, const char *key)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && v[0] ? v : NULL;
}

/* log_dir_open - the spool's log directory ([log] dir, default DATA_DIR/logs); -errno */
static int log_dir_open(struct supervisor *s, char *path, size_t len)
{
    if (s->cfg.log_dir && s->cfg.log_dir[0])
        snprintf(path, len, "%s", s->cfg.log_dir);
    else
        snprintf(path, len, "%s/logs", s->cfg.data_dir);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

enum MHD_Result supervisor_logs_request(struct supervisor *s, struct MHD_Connection *c)
{
    const char *type = arg(c, "type"), *domain = arg(c, "domain"), *queue = arg(c, "queue");
    const char *limit_s = arg(c, "limit"), *follow_s = arg(c, "follow");
    unsigned long limit = SUPERVISOR_LOGS_LIMIT_DEFAULT;
    bool follow = false;

    if (type) {
        bool ok = strlen(type) <= LOGS_TYPE_MAX;
        for (const char *p = type; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
        if (!ok)
            return refuse(c, MHD_HTTP_BAD_REQUEST, "type= is a record type: letters only (Delivery, Bounce, ...)");
    }
    if (domain && (strlen(domain) > 255 || !supervisor_admin_arg_ok(domain)))
        return refuse(c, MHD_HTTP_BAD_REQUEST, "domain= is a domain: UTF-8, at most 255 bytes, no spaces or controls");
    if (queue && (strlen(queue) > LOGS_QUEUE_MAX || !supervisor_admin_arg_ok(queue)))
        return refuse(c, MHD_HTTP_BAD_REQUEST, "queue= is a queue name: UTF-8, at most 1024 bytes, no spaces or controls");
    if (limit_s) {
        char *end;
        errno = 0;
        limit = strtoul(limit_s, &end, 10);
        if (*end || errno || limit_s[0] == '-' || limit > SUPERVISOR_LOGS_LIMIT_MAX)
            return refuse(c, MHD_HTTP_BAD_REQUEST, "limit= is a whole number from 0 to 10000");
    }
    if (follow_s) {
        if (strcmp(follow_s, "1") == 0 || strcmp(follow_s, "true") == 0)
            follow = true;
        else if (strcmp(follow_s, "0") != 0 && strcmp(follow_s, "false") != 0)
            return refuse(c, MHD_HTTP_BAD_REQUEST, "follow= is 1 or 0");
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    char path[4200];
    int dirfd = log_dir_open(s, path, sizeof(path));
    if (dirfd < 0) {
        char msg[4400];
        snprintf(msg, sizeof(msg), "cannot read the log directory %s: %s", path, strerror(-dirfd));
        return refuse(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    pthread_mutex_lock(&L.lock);
    bool full = L.stopping || L.n_jobs >= SUPERVISOR_LOGS_MAX_JOBS ||
                (follow && L.n_followers >= SUPERVISOR_LOGS_MAX_FOLLOWERS);
    if (full) {
        bool too_many_followers = follow && L.n_followers >= SUPERVISOR_LOGS_MAX_FOLLOWERS;
        pthread_mutex_unlock(&L.lock);
        close(dirfd);
        return refuse(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      too_many_followers ? "too many tail-log followers (at most 16 at a time): try again later"
                                         : "too many tail-log requests at a time: try again later");
    }
    struct logs_job *j = xcalloc(1, sizeof(*j));
    j->conn = c;
    j->client_fd = ci ? ci->connect_fd : -1;
    j->dirfd = dirfd;
    j->type = type ? xstrdup(type) : NULL;
    j->domain = domain ? xstrdup(domain) : NULL;
    j->queue = queue ? xstrdup(queue) : NULL;
    j->filter = (struct logread_filter){j->type, j->domain, j->queue};
    j->limit = limit;
    j->follow = follow;
    logread_cur_init(&j->cur);
    j->next = L.jobs;
    L.jobs = j;
    L.n_jobs++;
    L.n_followers += follow;
    pthread_cond_signal(&L.cond);
    pthread_mutex_unlock(&L.lock);

    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, on_read, j, on_released);
    MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}
