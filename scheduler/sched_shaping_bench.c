/*
 * sched_shaping_bench - ringmail-shaping-bench: the scheduler core under shaping files, in process
 *
 * No node, no I/O, a simulated clock: deterministic for given arguments (the timings are not).
 *   1. resolution: every path (--sites x --sources) resolved from the shaping files as the node does it
 *      (shaping_resolve, then shaping_path_config_from over the node's [egress] defaults), timed per path.
 *      Sites: one site per domain "dN.test"; one site in 10 has an MX host of a provider of the shipped
 *      files ("mxN.google.com", "mtaN.am0.yahoodns.net", ...), the rest are long-tail "mx.dN.test".
 *      Half the messages go to the provider sites (round robin), half to the long tail, so a provider
 *      site gets 9 times a long-tail site's mail (with the defaults, ~125 per path: beyond the default
 *      file's bursts of max_message_rate and max_connection_rate, 100, so the rates hold paths).
 *   2. scheduler: a core with one pool of --sources sources and 4 egress workers whose path_config hook
 *      hands out the options of step 1 (so step 2 measures the core, not the resolution). --messages
 *      messages are added due now; then advance, dispatch and an
 *      immediate "delivered" result for every message handed out, until every message is delivered.
 *      When a path's ready queue is empty after its results, its idle leases are released (what the
 *      egress does at idle_timeout, collapsed to no time), so a provider's named connection limit passes to
 *      that provider's other sites. With nothing to dispatch the clock jumps to sched_core_next_due()
 *      (a rate's hold, a named limit's wake-up). Reported: CPU (getrusage user+sys) per message over add,
 *      advance, dispatch and results; wall time; peak RSS and its growth over the start of step 2; the
 *      core's waits (rates, named limits, source selection, full ready queues) and simulated seconds.
 *   3. TSA matching: for each of --results provider responses (Gmail 4.7.28, Yahoo [TSS04], Microsoft
 *      S3150, a plain 450, a 250, in turn), shaping_rules() for that provider's domain and site and
 *      shaping_rule_match() on every rule in scope (the 250 too: an upper bound, the node matches only
 *      4xx/5xx); median over --reps repetitions, in ns per result.
 * Output: a table on stdout, or one JSON object with --json. Nothing asserts a speed: exit 0, 1 when a
 * check failed (a path did not resolve, a message was not delivered, the core is inconsistent), 2 usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/mem.h"
#include "cfg/cfg.h"
#include "common/proto_path.h"
#include "policy/shaping.h"
#include "scheduler/sched_lease.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"
#include "scheduler/sched_site.h"
#include "scheduler/sched_worker.h"

#define T0 UINT64_C(1700000000000)
#define WORKERS 4
#define DISPATCH_BATCH 4096

/* MX hosts of the providers of KumoMTA's default and community files: PREFIX, the site index, SUFFIX */
static const char *const provider_mx[][2] = {
    {"mx", ".google.com"}, {"mta", ".am0.yahoodns.net"}, {"mx", ".olc.protection.outlook.com"},
    {"d", "-test.mail.protection.outlook.com"}, {"mx", ".mail.icloud.com"}, {"smtp-in", ".orange.fr"},
    {"eu-smtp-inbound-", ".mimecast.com"}, {"mx", ".qq.com"}, {"mx", ".netease.com"},
};
#define N_PROVIDER_MX (sizeof(provider_mx) / sizeof(provider_mx[0]))

struct tsa_case {
    const char *name, *domain, *site, *text;
};

static const struct tsa_case tsa_cases[] = {
    {"gmail 421 4.7.28", "gmail.com",
     "alt1.gmail-smtp-in.l.google.com,alt2.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com",
     "421-4.7.28 [203.0.113.5      15] Our system has detected an unusual rate of unsolicited mail originating "
     "from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily "
     "rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk "
     "Email Senders Guidelines. d2e1a72fcca58-6f8b1c2d3e4si123456b3a.301 - gsmtp"},
    {"yahoo 421 [TSS04]", "yahoo.com", "mta5.am0.yahoodns.net,mta6.am0.yahoodns.net,mta7.am0.yahoodns.net",
     "421 4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes"},
    {"microsoft 550 S3150", "outlook.com", "outlook-com.olc.protection.outlook.com",
     "550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet service "
     "provider since part of their network is on our block list (S3150). You can also refer your provider to "
     "http://mail.live.com/mail/troubleshooting.aspx#errors. [AM0PR10MB1234.EURPRD10.PROD.OUTLOOK.COM]"},
    {"plain 450", "d1.test", "mx.d1.test", "450 4.2.1 Mailbox busy, try again later"},
    {"gmail 250", "gmail.com",
     "alt1.gmail-smtp-in.l.google.com,alt2.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com",
     "250 2.0.0 OK  1700000000 d2e1a72fcca58-6f8b1c2d3e4si123456b3a.301 - gsmtp"},
};
#define N_TSA (sizeof(tsa_cases) / sizeof(tsa_cases[0]))

struct flight {
    struct sched_msg *msg;
    uint32_t lease_id, lease_gen;
};

struct bench {
    /* arguments */
    const char **files;
    size_t nfiles;
    uint64_t messages, results;
    uint32_t nsites, nsrc, reps;
    bool json;
    /* sites, sources, their paths' options */
    struct shaping *sh;
    char **domains, **sites, **srcnames;
    struct sched_path_options *popt; /* nsites x nsrc */
    json_t *names;                   /* named limits' names: interned, alive until the end */
    uint32_t *site_of;               /* provider sites first (provider_sites), then the long tail */
    uint32_t provider_sites, paths_with_named;
    /* the run */
    struct sched_core *core;
    struct flight *fl;
    size_t nfl, capfl;
    uint64_t now;
    int bad;
};

static void fail(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ringmail-shaping-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    b->bad = 1;
}

/* cpu_s - user + system CPU seconds of the process so far; *maxrss_kb (when not NULL) its peak RSS */
static double cpu_s(long *maxrss_kb)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (maxrss_kb)
        *maxrss_kb = ru.ru_maxrss;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* rss_kb - resident set now (VmRSS), 0 when unknown */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* index_of - the site or domain index: the first run of digits of a name this bench made */
static uint32_t index_of(const char *name)
{
    return (uint32_t)strtoul(name + strcspn(name, "0123456789"), NULL, 10);
}

/* intern - a name that stays valid until the end (the core copies it when a path is created) */
static const char *intern(struct bench *b, const char *name)
{
    json_t *v = json_object_get(b->names, name);
    if (!v) {
        v = json_string(name);
        json_object_set_new(b->names, name, v);
    }
    return json_string_value(v);
}

static struct sched_rate rate_of(const struct shaping_rate *r)
{
    return (struct sched_rate){.limit = r->limit, .period_ms = r->period_ms, .max_burst = r->max_burst};
}

/* named_of - up to SCHED_PATH_NAMED_MAX named rates of a resolved path into the core's form */
static uint32_t named_of(struct bench *b, const struct shaping_named *v, size_t n, struct sched_named_rate *out)
{
    uint32_t k = 0;
    for (size_t i = 0; i < n && k < SCHED_PATH_NAMED_MAX; i++)
        out[k++] = (struct sched_named_rate){intern(b, v[i].name), rate_of(&v[i].rate)};
    return k;
}

/* options_of - the core's half of a resolved path, as sched_shaping.c gives it to the core */
static void options_of(struct bench *b, const struct shaping_path_config *pc, struct sched_path_options *o)
{
    sched_path_options_default(o);
    o->connection_limit = pc->connection_limit;
    o->max_deliveries_per_connection = pc->max_deliveries_per_connection;
    o->max_ready = pc->max_ready;
    o->consecutive_connection_failures_before_delay = pc->consecutive_connection_failures_before_delay;
    o->max_message_rate = rate_of(&pc->max_message_rate);
    o->max_connection_rate = rate_of(&pc->max_connection_rate);
    o->source_selection_rate = rate_of(&pc->source_selection_rate);
    o->n_limits = 0;
    for (size_t i = 0; i < pc->n_limits && o->n_limits < SCHED_PATH_NAMED_MAX; i++)
        o->limits[o->n_limits++] = (struct sched_named_limit){intern(b, pc->limits[i].name), pc->limits[i].limit};
    o->n_throttles = named_of(b, pc->throttles, pc->n_throttles, o->throttles);
    o->n_source_rates = named_of(b, pc->source_rates, pc->n_source_rates, o->source_rates);
}

static void node_defaults(struct shaping_defaults *d)
{
    struct cfg c;
    cfg_default(&c);
    *d = (struct shaping_defaults){
        .connection_limit = c.egress_connection_limit,
        .max_deliveries_per_connection = c.egress_max_deliveries_per_connection,
        .max_recipients_per_batch = PROTO_PATH_RCPTS_MAX,
        .max_ready = c.egress_max_ready,
        .connect_timeout_ms = c.egress_connect_timeout_ms,
        .banner_timeout_ms = c.egress_banner_timeout_ms,
        .command_timeout_ms = c.egress_command_timeout_ms,
        .data_timeout_ms = c.egress_data_timeout_ms,
        .idle_timeout_ms = c.egress_idle_timeout_ms,
        .smtp_port = (uint16_t)c.egress_port,
    };
    cfg_fini(&c);
}

/* ---- 1. sites and the resolution of their paths ---- */

static void make_sites(struct bench *b)
{
    b->domains = xcalloc(b->nsites, sizeof(char *));
    b->sites = xcalloc(b->nsites, sizeof(char *));
    b->site_of = xcalloc(b->nsites, sizeof(uint32_t));
    for (uint32_t i = 0; i < b->nsites; i++) {
        b->domains[i] = xasprintf("d%u.test", i);
        if (i % 10 == 5) {
            const char *const *mx = provider_mx[(i / 10) % N_PROVIDER_MX];
            b->sites[i] = xasprintf("%s%u%s", mx[0], i, mx[1]);
            b->site_of[b->provider_sites++] = i;
        } else {
            b->sites[i] = xasprintf("mx.d%u.test", i);
        }
    }
    for (uint32_t i = 0, k = b->provider_sites; i < b->nsites; i++)
        if (i % 10 != 5)
            b->site_of[k++] = i;
    b->srcnames = xcalloc(b->nsrc, sizeof(char *));
    for (uint32_t s = 0; s < b->nsrc; s++)
        b->srcnames[s] = xasprintf("src%u", s);
}

static double resolve_paths(struct bench *b)
{
    struct shaping_defaults def;
    node_defaults(&def);
    b->popt = xcalloc((size_t)b->nsites * b->nsrc, sizeof(*b->popt));
    uint64_t t = clock_mono_ns();
    for (uint32_t i = 0; i < b->nsites; i++) {
        for (uint32_t s = 0; s < b->nsrc; s++) {
            struct shaping_path_config pc;
            char *err = NULL;
            json_t *r = shaping_resolve(b->sh, b->domains[i], b->srcnames[s], b->sites[i], NULL);
            int rc = shaping_path_config_from(r, NULL, &def, &pc, &err);
            json_decref(r);
            if (rc < 0) {
                fail(b, "%s via %s does not resolve: %s", b->domains[i], b->sites[i], err ? err : "?");
                free(err);
                sched_path_options_default(&b->popt[(size_t)i * b->nsrc + s]);
                continue;
            }
            struct sched_path_options *o = &b->popt[(size_t)i * b->nsrc + s];
            options_of(b, &pc, o);
            b->paths_with_named += o->n_limits + o->n_throttles > 0;
            shaping_path_config_fini(&pc);
        }
    }
    return (double)(clock_mono_ns() - t) / ((double)b->nsites * b->nsrc);
}

/* ---- 2. the core ---- */

static void on_queue_config(void *arg, const char *queue, const char *domain, struct sched_queue_config *cfg)
{
    cfg->pool = 1; /* "bench", the only pool besides the built-in one */
}

static void on_path_config(void *arg, const char *source, const char *site, const char *domain,
                           struct sched_path_options *opt)
{
    struct bench *b = arg;
    uint32_t i = index_of(site), s = source ? index_of(source) : b->nsrc;
    if (i >= b->nsites || strcmp(b->sites[i], site) != 0 || s >= b->nsrc) {
        fail(b, "path %s -> %s is none of the bench's", source ? source : "-", site);
        return;
    }
    *opt = b->popt[(size_t)i * b->nsrc + s];
}

static void on_resolve(void *arg, const char *domain)
{
    struct bench *b = arg;
    uint32_t i = index_of(domain);
    if (i >= b->nsites || sched_site_resolved(b->core, domain, b->sites[i], 86400, b->now) < 0)
        fail(b, "domain %s does not resolve", domain);
}

static void on_expire(void *arg, const struct sched_msg *msg)
{
    fail(arg, "message %llu expired", (unsigned long long)msg->id.lo);
}

static void on_bounce(void *arg, const struct sched_msg *msg, const char *reason)
{
    fail(arg, "message %llu bounced: %s", (unsigned long long)msg->id.lo, reason);
}

static void on_deliver(void *arg, struct sched_msg *msg, struct sched_lease *lease, bool last)
{
    struct bench *b = arg;
    if (b->nfl == b->capfl) {
        b->capfl = b->capfl ? b->capfl * 2 : 4096;
        b->fl = xrealloc(b->fl, b->capfl * sizeof(*b->fl));
    }
    b->fl[b->nfl++] = (struct flight){msg, lease->id, lease->gen};
}

/* results - every message handed out is delivered; a path left with no ready message closes its idle leases */
static uint64_t results(struct bench *b)
{
    for (size_t k = 0; k < b->nfl; k++) {
        if (sched_msg_result(b->core, b->fl[k].msg, SCHED_OUTCOME_DELIVERED, b->now) < 0)
            fail(b, "result refused");
        struct sched_lease *l = sched_lease_get(b->core, b->fl[k].lease_id, b->fl[k].lease_gen);
        if (!l || l->msg || l->path->ready.count)
            continue;
        for (struct sched_lease *i = l->path->idle_head, *next; i; i = next) {
            next = i->i_next;
            sched_lease_released(b->core, i, false, b->now);
        }
    }
    uint64_t n = b->nfl;
    b->nfl = 0;
    return n;
}

struct run_out {
    double add_cpu_s, run_cpu_s, wall_s, sim_s;
    long rss_start_kb, rss_peak_kb;
    uint64_t delivered, idle_steps;
    struct sched_stats st;
};

static void run_core(struct bench *b, struct run_out *r)
{
    struct sched_hooks h = {.arg = b, .queue_config = on_queue_config, .path_config = on_path_config,
                            .resolve = on_resolve, .expire = on_expire, .bounce = on_bounce,
                            .deliver = on_deliver};
    struct sched_core_options o;
    sched_core_options_default(&o);
    o.seed = 42;
    r->rss_start_kb = rss_kb();
    uint64_t w0 = clock_mono_ns();
    double c0 = cpu_s(NULL);
    b->now = T0;
    b->core = sched_core_new(&o, &h, T0);
    uint32_t pool = sched_core_pool_add(b->core, "bench");
    for (uint32_t s = 0; s < b->nsrc; s++)
        sched_core_pool_weight(b->core, pool, sched_core_source_add(b->core, b->srcnames[s]), 1);
    for (uint32_t w = 0; w < WORKERS; w++)
        sched_worker_add(b->core, w);
    for (uint64_t k = 0; k < b->messages && !b->bad; k++) {
        uint32_t tail = b->nsites - b->provider_sites, i;
        if (b->provider_sites && (k % 2 == 0 || tail == 0))
            i = b->site_of[(k / 2) % b->provider_sites];
        else
            i = b->site_of[b->provider_sites + (k / 2) % tail];
        const char *d = b->domains[i];
        struct msgid id = {.hi = (T0 << 16) | 1, .lo = k + 1};
        if (sched_msg_add(b->core, id, T0, 0, d, d, T0, NULL) < 0)
            fail(b, "message %llu not added", (unsigned long long)k);
    }
    double c1 = cpu_s(NULL);
    while (r->delivered < b->messages && !b->bad) {
        sched_core_advance(b->core, b->now);
        size_t n = sched_core_dispatch(b->core, DISPATCH_BATCH);
        r->delivered += results(b);
        if (n)
            continue;
        uint64_t due = sched_core_next_due(b->core);
        if (due == SCHED_TIMER_NEVER) {
            fail(b, "stuck at %llu of %llu delivered: nothing due", (unsigned long long)r->delivered,
                 (unsigned long long)b->messages);
            break;
        }
        b->now = due > b->now ? due : b->now + 1;
        r->idle_steps++;
    }
    r->run_cpu_s = cpu_s(&r->rss_peak_kb) - c1;
    r->add_cpu_s = c1 - c0;
    r->wall_s = (double)(clock_mono_ns() - w0) / 1e9;
    r->sim_s = (double)(b->now - T0) / 1e3;
    sched_core_stats(b->core, &r->st);
    if (r->delivered != b->messages || r->st.messages != 0)
        fail(b, "delivered %llu of %llu, %llu left in the core", (unsigned long long)r->delivered,
             (unsigned long long)b->messages, (unsigned long long)r->st.messages);
    if (sched_core_check(b->core) < 0)
        fail(b, "the core is inconsistent");
}

/* ---- 3. TSA matching ---- */

struct tsa_out {
    double ns_per_result;
    size_t in_scope[N_TSA], matched[N_TSA];
};

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

static void run_tsa(struct bench *b, struct tsa_out *t)
{
    size_t len[N_TSA];
    for (size_t c = 0; c < N_TSA; c++) {
        const struct shaping_rule **rules;
        len[c] = strlen(tsa_cases[c].text);
        t->in_scope[c] = shaping_rules(b->sh, tsa_cases[c].domain, b->srcnames[0], tsa_cases[c].site, &rules);
        t->matched[c] = 0;
        for (size_t k = 0; k < t->in_scope[c]; k++)
            t->matched[c] += shaping_rule_match(rules[k], tsa_cases[c].text, len[c]) >= 0;
    }
    double *ns = xcalloc(b->reps, sizeof(double));
    volatile size_t sink = 0;
    for (uint32_t rep = 0; rep < b->reps; rep++) {
        uint64_t t0 = clock_mono_ns();
        size_t hits = 0;
        for (uint64_t k = 0; k < b->results; k++) {
            const struct tsa_case *c = &tsa_cases[k % N_TSA];
            const struct shaping_rule **rules;
            size_t n = shaping_rules(b->sh, c->domain, b->srcnames[0], c->site, &rules);
            for (size_t i = 0; i < n; i++)
                hits += shaping_rule_match(rules[i], c->text, len[k % N_TSA]) >= 0;
        }
        sink += hits;
        ns[rep] = (double)(clock_mono_ns() - t0) / (double)(b->results ? b->results : 1);
    }
    qsort(ns, b->reps, sizeof(double), cmp_double);
    t->ns_per_result = ns[b->reps / 2];
    free(ns);
    (void)sink;
}

/* ---- output ---- */

static void put_i(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static void put_f(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

static json_t *report_json(const struct bench *b, double resolve_ns, const struct run_out *r,
                           const struct tsa_out *t)
{
    json_t *j = json_object(), *files = json_array(), *res = json_object(), *sc = json_object(),
           *tsa = json_object(), *cases = json_array();
    for (size_t i = 0; i < b->nfiles; i++)
        json_array_append_new(files, json_string(b->files[i]));
    json_object_set_new(j, "files", files);
    put_i(j, "sites", b->nsites);
    put_i(j, "sources", b->nsrc);
    put_i(j, "paths", (uint64_t)b->nsites * b->nsrc);
    put_i(j, "provider_sites", b->provider_sites);
    put_i(j, "messages", b->messages);
    put_f(res, "ns_per_path", resolve_ns);
    put_i(res, "paths_with_named_limits", b->paths_with_named);
    json_object_set_new(j, "resolve", res);
    double per_msg = r->delivered ? (r->add_cpu_s + r->run_cpu_s) * 1e9 / (double)r->delivered : 0;
    put_i(sc, "delivered", r->delivered);
    put_f(sc, "cpu_ns_per_msg", per_msg);
    put_f(sc, "add_cpu_s", r->add_cpu_s);
    put_f(sc, "run_cpu_s", r->run_cpu_s);
    put_f(sc, "wall_s", r->wall_s);
    put_f(sc, "simulated_s", r->sim_s);
    put_i(sc, "rss_start_kb", (uint64_t)r->rss_start_kb);
    put_i(sc, "rss_peak_kb", (uint64_t)r->rss_peak_kb);
    put_i(sc, "rss_delta_kb", (uint64_t)(r->rss_peak_kb - r->rss_start_kb));
    put_i(sc, "throttle_waits", r->st.throttle_waits);
    put_i(sc, "limit_waits", r->st.limit_waits);
    put_i(sc, "source_held", r->st.source_held);
    put_i(sc, "ready_full", r->st.ready_full);
    put_i(sc, "idle_steps", r->idle_steps);
    put_i(sc, "paths_created", r->st.paths);
    put_i(sc, "named_limit_names", json_object_size(b->names));
    json_object_set_new(j, "scheduler", sc);
    for (size_t c = 0; c < N_TSA; c++) {
        json_t *o = json_object();
        json_object_set_new(o, "case", json_string(tsa_cases[c].name));
        put_i(o, "rules_in_scope", t->in_scope[c]);
        put_i(o, "rules_matched", t->matched[c]);
        json_array_append_new(cases, o);
    }
    put_i(tsa, "results", b->results);
    put_i(tsa, "reps", b->reps);
    put_f(tsa, "ns_per_result", t->ns_per_result);
    json_object_set_new(tsa, "cases", cases);
    json_object_set_new(j, "tsa", tsa);
    json_object_set_new(j, "ok", json_boolean(!b->bad));
    return j;
}

static void report_table(const struct bench *b, double resolve_ns, const struct run_out *r,
                         const struct tsa_out *t)
{
    double per_msg = r->delivered ? (r->add_cpu_s + r->run_cpu_s) * 1e9 / (double)r->delivered : 0;
    printf("shaping files:");
    for (size_t i = 0; i < b->nfiles; i++)
        printf(" %s", b->files[i]);
    printf("\n%u sites x %u sources = %u paths (%u provider sites, %u paths with named limits/throttles)\n",
           b->nsites, b->nsrc, b->nsites * b->nsrc, b->provider_sites, b->paths_with_named);
    printf("%-34s %12.0f ns/path\n", "resolve + path config", resolve_ns);
    printf("%-34s %12llu of %llu\n", "delivered", (unsigned long long)r->delivered, (unsigned long long)b->messages);
    printf("%-34s %12.0f ns/msg (add %.2f s + run %.2f s CPU)\n", "scheduler CPU", per_msg, r->add_cpu_s,
           r->run_cpu_s);
    printf("%-34s %12.2f s (simulated %.1f s)\n", "wall", r->wall_s, r->sim_s);
    printf("%-34s %12ld kB (+%ld kB over the start)\n", "peak RSS", r->rss_peak_kb, r->rss_peak_kb - r->rss_start_kb);
    printf("%-34s %12llu rate, %llu named limit, %llu source, %llu ready full\n", "waits",
           (unsigned long long)r->st.throttle_waits, (unsigned long long)r->st.limit_waits,
           (unsigned long long)r->st.source_held, (unsigned long long)r->st.ready_full);
    printf("%-34s %12.0f ns/result (median of %u x %llu)\n", "TSA match", t->ns_per_result, b->reps,
           (unsigned long long)b->results);
    for (size_t c = 0; c < N_TSA; c++)
        printf("  %-32s %zu rules in scope, %zu match\n", tsa_cases[c].name, t->in_scope[c], t->matched[c]);
    printf("%s\n", b->bad ? "FAILED" : "ok");
}

static int usage(void)
{
    fprintf(stderr, "usage: ringmail-shaping-bench --shaping FILE... [--messages N] [--sites N] [--sources N]\n"
                    "                              [--results K] [--reps R] [--json]\n"
                    "  defaults: 1000000 messages, 10000 sites, 4 sources, 200000 results, 5 reps\n");
    return 2;
}

static bool num_arg(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    struct bench b = {.messages = 1000000, .results = 200000, .nsites = 10000, .nsrc = 4, .reps = 5};
    b.files = xcalloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            b.json = true;
        } else if (strcmp(a, "--shaping") == 0 && next) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                b.files[b.nfiles++] = argv[++i];
        } else if (strcmp(a, "--messages") == 0 && num_arg(next, 1, UINT32_MAX, &v)) {
            b.messages = v, i++;
        } else if (strcmp(a, "--sites") == 0 && num_arg(next, 1, 1000000, &v)) {
            b.nsites = (uint32_t)v, i++;
        } else if (strcmp(a, "--sources") == 0 && num_arg(next, 1, 64, &v)) {
            b.nsrc = (uint32_t)v, i++;
        } else if (strcmp(a, "--results") == 0 && num_arg(next, 1, UINT32_MAX, &v)) {
            b.results = v, i++;
        } else if (strcmp(a, "--reps") == 0 && num_arg(next, 1, 101, &v)) {
            b.reps = (uint32_t)v, i++;
        } else {
            free(b.files);
            return usage();
        }
    }
    if (b.nfiles == 0) {
        free(b.files);
        return usage();
    }
    struct shaping_diags d = {0};
    b.sh = shaping_load(b.files, b.nfiles, &d);
    if (!b.sh) {
        char *text = shaping_diags_text(&d);
        fprintf(stderr, "ringmail-shaping-bench: the shaping files do not load:\n%s", text ? text : "");
        free(text);
        shaping_diags_fini(&d);
        free(b.files);
        return 1;
    }
    shaping_diags_fini(&d); /* warnings: ringctl validate-shaping shows them */
    b.names = json_object();
    make_sites(&b);
    double resolve_ns = resolve_paths(&b);
    struct run_out r = {0};
    if (!b.bad)
        run_core(&b, &r);
    struct tsa_out t = {0};
    run_tsa(&b, &t);
    if (b.json) {
        json_t *j = report_json(&b, resolve_ns, &r, &t);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        report_table(&b, resolve_ns, &r, &t);
    }
    if (b.core)
        sched_core_free(b.core);
    for (uint32_t i = 0; i < b.nsites; i++) {
        free(b.domains[i]);
        free(b.sites[i]);
    }
    for (uint32_t s = 0; s < b.nsrc; s++)
        free(b.srcnames[s]);
    free(b.domains);
    free(b.sites);
    free(b.srcnames);
    free(b.site_of);
    free(b.popt);
    free(b.fl);
    json_decref(b.names);
    shaping_free(b.sh);
    free(b.files);
    return b.bad ? 1 : 0;
}
