/*
 * sched_mtasts_fetch - MTA-STS policy fetches over HTTPS (libcurl) in one worker thread
 *
 * The scheduler's loop never blocks on a fetch: sched_mtasts_fetch_start() queues a request and
 * returns; the thread runs curl_easy_perform() on it; sched_mtasts_fetch_poll() (from the loop's tick)
 * takes the finished ones. A request names the policy host's address, which the loop resolved with
 * its own DNS resolver: the thread pins "mta-sts.DOMAIN:443" to it (CURLOPT_RESOLVE) and never
 * resolves anything itself.
 * Each fetch (RFC 8461 3.3): GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt, HTTPS only, the
 * certificate verified for that name against ca_file (the egress's [egress] tls_ca_file) or the
 * system store, no redirects, at most MTA_STS_POLICY_MAX bytes, status 200 and Content-Type
 * text/plain only, the whole exchange within timeout_ms. The result is the body, or a one-line
 * reason. Ownership: a request and its result are the caller's from poll on (sched_mtasts_fetch_free).
 * Not thread-safe beyond this: one loop calls start and poll.
 */
#ifndef RINGMAIL_SCHED_MTASTS_FETCH_H
#define RINGMAIL_SCHED_MTASTS_FETCH_H

#include <stdbool.h>
#include <stddef.h>

struct sched_mtasts_req {
    struct sched_mtasts_req *next;
    char *domain;
    char *addr; /* "127.0.0.5" or "::1": the address of mta-sts.DOMAIN */
    /* result, set by the thread */
    bool ok;
    char *body; /* NUL-terminated; body_len bytes */
    size_t body_len;
    char *error; /* when !ok: one line */
};

struct sched_mtasts_fetcher;

/* sched_mtasts_fetch_new - start the thread; ca_file NULL or "" = the system store */
struct sched_mtasts_fetcher *sched_mtasts_fetch_new(const char *ca_file, unsigned timeout_ms);
/* sched_mtasts_fetch_free - stop the thread (a fetch in progress is aborted at its next progress callback,
 * within about a second), drop every request */
void sched_mtasts_fetch_free(struct sched_mtasts_fetcher *f);
/* sched_mtasts_fetch_start - queue req (owned by the fetcher until poll gives it back) */
void sched_mtasts_fetch_start(struct sched_mtasts_fetcher *f, struct sched_mtasts_req *req);
/* sched_mtasts_fetch_poll - the finished requests, oldest first (a list through ->next), or NULL */
struct sched_mtasts_req *sched_mtasts_fetch_poll(struct sched_mtasts_fetcher *f);
void sched_mtasts_fetch_req_free(struct sched_mtasts_req *req);

#endif
