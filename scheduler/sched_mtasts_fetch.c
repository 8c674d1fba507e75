/*
 * sched_mtasts_fetch - the policy fetch thread (contract in sched_mtasts_fetch.h)
 */
#include "scheduler/sched_mtasts_fetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/mta_sts.h"

struct sched_mtasts_fetcher {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sched_mtasts_req *todo, **todo_tail, *done, **done_tail;
    bool stop;
    atomic_bool abort; /* set by free: a fetch in progress ends at its next progress callback */
    char *ca_file;
    unsigned timeout_ms;
};

struct body {
    char *p;
    size_t n;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct body *b = arg;
    size_t n = size * nmemb;
    if (b->n + n > MTA_STS_POLICY_MAX) {
        b->too_big = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    b->p = xrealloc(b->p, b->n + n + 1);
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    const struct sched_mtasts_fetcher *f = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load(&f->abort) ? 1 : 0;
}

/* fetch - one request, in the thread */
static void fetch(const struct sched_mtasts_fetcher *f, struct sched_mtasts_req *r)
{
    char err[CURL_ERROR_SIZE] = "";
    struct body b = {0};
    bool v6 = strchr(r->addr, ':') != NULL;
    char *url = xasprintf("https://mta-sts.%s/.well-known/mta-sts.txt", r->domain);
    char *pin = xasprintf("mta-sts.%s:443:%s%s%s", r->domain, v6 ? "[" : "", r->addr, v6 ? "]" : "");
    struct curl_slist *resolve = curl_slist_append(NULL, pin);
    CURL *c = curl_easy_init();

    r->ok = false;
    if (!c || !resolve) {
        r->error = xstrdup("cannot set up an HTTPS client");
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)f->timeout_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (f->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, f->ca_file);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)MTA_STS_POLICY_MAX);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ringmail MTA-STS");
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)f);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    char *ctype = NULL;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        r->error = xasprintf("policy larger than %u bytes", MTA_STS_POLICY_MAX);
    } else if (rc != CURLE_OK) {
        r->error = xasprintf("%s: %s", curl_easy_strerror(rc), err[0] ? err : "-");
    } else if (status != 200) {
        r->error = xasprintf("HTTP status %ld (redirects are not followed)", status);
    } else if (!ctype || strncasecmp(ctype, "text/plain", 10) != 0 ||
               (ctype[10] && ctype[10] != ';' && ctype[10] != ' ')) {
        r->error = xasprintf("Content-Type is %.64s, not text/plain", ctype ? ctype : "missing");
    } else {
        r->ok = true;
        r->body = b.p ? b.p : xstrdup("");
        r->body_len = b.n;
        b.p = NULL;
    }
    /* a reason is one line: curl's texts never hold a line end, but a Content-Type could */
    for (char *p = r->error; p && *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
out:
    free(b.p);
    if (c)
        curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    free(pin);
    free(url);
}

static void *run(void *arg)
{
    struct sched_mtasts_fetcher *f = arg;

    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        struct sched_mtasts_req *r = f->todo;
        if (!r) {
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        f->todo = r->next;
        if (!f->todo)
            f->todo_tail = &f->todo;
        r->next = NULL;
        pthread_mutex_unlock(&f->mu);
        fetch(f, r);
        pthread_mutex_lock(&f->mu);
        *f->done_tail = r;
        f->done_tail = &r->next;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

struct sched_mtasts_fetcher *sched_mtasts_fetch_new(const char *ca_file, unsigned timeout_ms)
{
    struct sched_mtasts_fetcher *f = xcalloc(1, sizeof(*f));

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fatal("scheduler: libcurl does not initialise");
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->todo_tail = &f->todo;
    f->done_tail = &f->done;
    f->ca_file = ca_file && ca_file[0] ? xstrdup(ca_file) : NULL;
    f->timeout_ms = timeout_ms ? timeout_ms : 10000;
    if (pthread_create(&f->th, NULL, run, f) != 0)
        fatal("scheduler: cannot start the MTA-STS fetch thread");
    return f;
}

static void free_list(struct sched_mtasts_req *r)
{
    while (r) {
        struct sched_mtasts_req *n = r->next;
        sched_mtasts_fetch_req_free(r);
        r = n;
    }
}

void sched_mtasts_fetch_free(struct sched_mtasts_fetcher *f)
{
    if (!f)
        return;
    atomic_store(&f->abort, true);
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    free_list(f->todo);
    free_list(f->done);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->ca_file);
    free(f);
    curl_global_cleanup();
}

void sched_mtasts_fetch_start(struct sched_mtasts_fetcher *f, struct sched_mtasts_req *req)
{
    req->next = NULL;
    pthread_mutex_lock(&f->mu);
    *f->todo_tail = req;
    f->todo_tail = &req->next;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

struct sched_mtasts_req *sched_mtasts_fetch_poll(struct sched_mtasts_fetcher *f)
{
    pthread_mutex_lock(&f->mu);
    struct sched_mtasts_req *r = f->done;
    f->done = NULL;
    f->done_tail = &f->done;
    pthread_mutex_unlock(&f->mu);
    return r;
}

void sched_mtasts_fetch_req_free(struct sched_mtasts_req *req)
{
    if (!req)
        return;
    free(req->domain);
    free(req->addr);
    free(req->body);
    free(req->error);
    free(req);
}
