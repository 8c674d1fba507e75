/*
 * ringmail-gen - SMTP load generator on io_uring
 *
 * Runs --concurrency client slots (gen_conn.c) against one target until --message-count messages
 * were attempted or --duration ended, then prints a summary (text, or one JSON object with
 * --json) on stdout. A tick (100 ms, 10 ms when paced) checks deadlines, restarts idle slots,
 * releases slots waiting for the rate and draws the progress line when stderr is a terminal.
 * Exit: 0 when every requested message got its 250 (or --keep-going and the run finished),
 * 1 otherwise (an error without --keep-going stops the run at once), 2 on bad usage.
 * See docs/tools.md.
 */
#include "tools/gen.h"
#include "tools/tool_opt.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "cfg/cfg_value.h"
#include "tls/tls.h"

#define GEN_CONCURRENCY_MAX 100000 /* SMTP sessions of one process (KumoMTA's capacity test runs 20000) */
#define GEN_HTTP_CONCURRENCY_MAX 1000 /* --http: one thread per slot */

static volatile sig_atomic_t got_signal;
static const char *const err_labels[GEN_ERR_N] = {"connect", "timeout", "closed", "protocol", "tls"};

static void on_signal(int sig)
{
    got_signal = sig;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringmail-gen [options]\n"
            "  --target HOST:PORT             server (default 127.0.0.1:2525; [v6addr]:port)\n"
            "  --concurrency N                parallel SMTP sessions (default 1)\n"
            "  --message-count N              messages to attempt (default 100)\n"
            "  --duration S                   run for S seconds (10, 1.5, 10s, 2m) instead of a count\n"
            "  --body-size SIZE               synthetic body size: 100, 100k, 100kb, 1m, 1MiB (default 1k)\n"
            "  --body-file FILE               send FILE as the message (CRLF-normalised, dot-stuffed,\n"
            "                                 an X-Gen-Sent header line put on top)\n"
            "  --domain NAME[:WEIGHT]         recipient domain, repeatable (default example.test)\n"
            "  --recipients N                 recipients per message (default 1)\n"
            "  --sender ADDR                  envelope and From: sender (default gen@ringmail-gen.test)\n"
            "  --rate N[/s|/m|/h]             pace transactions over the whole run\n"
            "  --messages-per-connection N    0 = reuse without limit (default), 1 = QUIT after each\n"
            "  --starttls                     require STARTTLS (certificate not verified)\n"
            "  --ehlo NAME                    EHLO name (default ringmail-gen.test)\n"
            "  --timeout S                    per-reply timeout (default 30)\n"
            "  --keep-going                   count error replies and go on (default: stop at the first)\n"
            "  --json                         final summary as one JSON object on stdout\n"
            "  --http URL                     POST to the HTTP injection API instead of SMTP\n"
            "                                 (http://HOST:PORT/api/inject/v1; one connection per slot)\n"
            "  --http-token TOKEN             its bearer token (default: $RINGMAIL_INJECT_TOKEN)\n");
}

/* parse_rate - "N", "N/s", "N/m", "N/h" (N may have a fraction): transactions per second */
static int parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || v > 1e9)
        return -EINVAL;
    if (strcmp(end, "/m") == 0)
        v /= 60;
    else if (strcmp(end, "/h") == 0)
        v /= 3600;
    else if (*end && strcmp(end, "/s") != 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int gen_exit_code(const struct gen *g)
{
    if (g->error_stop)
        return 1;
    if (g->o.keep_going)
        return 0;
    if (g->end_ns)
        return gen_stats_errors(&g->st) == 0 ? 0 : 1;
    return g->st.sent == g->o.message_count ? 0 : 1;
}

bool gen_claim(struct gen *g, uint64_t now)
{
    if (g->stopping)
        return false;
    if (g->end_ns)
        return now < g->end_ns;
    if (g->claimed >= g->o.message_count)
        return false;
    g->claimed++;
    return true;
}

bool gen_rate_take(struct gen *g, uint64_t now)
{
    uint64_t interval, slack;

    if (g->o.rate <= 0)
        return true;
    interval = (uint64_t)(1e9 / g->o.rate);
    /* a little credit for the tick's granularity, never a burst after a stall */
    slack = CLOCK_MS(20) > interval ? CLOCK_MS(20) : interval;
    if (g->rate_next + slack < now)
        g->rate_next = now - slack;
    if (now < g->rate_next)
        return false;
    g->rate_next += interval;
    return true;
}

void gen_error(struct gen *g, int code, enum gen_err named, const char *text)
{
    char label[16];

    if (named < GEN_ERR_N) {
        g->st.named[named]++;
        snprintf(label, sizeof(label), "%s", err_labels[named]);
    } else {
        if (code < 0 || code > 999)
            code = 0;
        g->st.codes[code]++;
        snprintf(label, sizeof(label), "%03d", code);
    }
    if (!g->first_error_logged) {
        g->first_error_logged = true;
        log_warn("first error: %s %.200s%s", label, text ? text : "",
                 g->o.keep_going ? "" : " (stopping; --keep-going to go on)");
    }
    if (!g->o.keep_going && !g->stopping) {
        g->stopping = true;
        g->error_stop = true;
    }
}

static bool can_claim(const struct gen *g, uint64_t now)
{
    if (g->stopping)
        return false;
    if (g->end_ns)
        return now < g->end_ns;
    return g->claimed < g->o.message_count;
}

static bool all_idle(const struct gen *g)
{
    for (unsigned i = 0; i < g->o.concurrency; i++)
        if (!gen_conn_idle(&g->conns[i]))
            return false;
    return true;
}

static void on_tick(struct evl *l, struct evl_op *op, int res, unsigned flags)
{
    struct evl_timer *t = (struct evl_timer *)op;
    bool *due = op->owner;

    t->armed = false;
    *due = true;
}

static void parse_args(struct gen *g, int argc, char **argv)
{
    enum { O_TARGET = 256, O_CONC, O_COUNT, O_DUR, O_BSIZE, O_BFILE, O_DOMAIN, O_SENDER, O_RATE, O_TLS, O_KEEP,
           O_PER, O_EHLO, O_JSON, O_RCPTS, O_TIMEOUT, O_HELP, O_HTTP, O_HTTP_TOKEN };
    static const struct option opts[] = {
        {"target", required_argument, NULL, O_TARGET}, {"concurrency", required_argument, NULL, O_CONC},
        {"message-count", required_argument, NULL, O_COUNT}, {"duration", required_argument, NULL, O_DUR},
        {"body-size", required_argument, NULL, O_BSIZE}, {"body-file", required_argument, NULL, O_BFILE},
        {"domain", required_argument, NULL, O_DOMAIN}, {"sender", required_argument, NULL, O_SENDER},
        {"rate", required_argument, NULL, O_RATE}, {"starttls", no_argument, NULL, O_TLS},
        {"keep-going", no_argument, NULL, O_KEEP}, {"messages-per-connection", required_argument, NULL, O_PER},
        {"ehlo", required_argument, NULL, O_EHLO}, {"json", no_argument, NULL, O_JSON},
        {"recipients", required_argument, NULL, O_RCPTS}, {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, O_HELP}, {"http", required_argument, NULL, O_HTTP},
        {"http-token", required_argument, NULL, O_HTTP_TOKEN}, {NULL, 0, NULL, 0},
    };
    struct gen_opts *o = &g->o;
    bool have_count = false;
    uint64_t v;
    int ch;

    *o = (struct gen_opts){.target = "127.0.0.1:2525", .concurrency = 1, .message_count = 100, .body_size = 1024,
                           .sender = "gen@ringmail-gen.test", .ehlo = "ringmail-gen.test", .recipients = 1,
                           .timeout_s = 30};
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case O_TARGET: o->target = optarg; break;
        case O_CONC:
            rc = cfg_value_parse_uint(optarg, GEN_CONCURRENCY_MAX, &v) ? 0 : -EINVAL;
            o->concurrency = (unsigned)v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_COUNT:
            rc = cfg_value_parse_uint(optarg, UINT64_MAX / 2, &v) ? 0 : -EINVAL;
            o->message_count = v;
            have_count = true;
            break;
        case O_DUR: rc = tool_opt_seconds(optarg, 1e9, &o->duration_s); break;
        case O_BSIZE:
            rc = cfg_value_parse_size(optarg, &v) && v <= GEN_BODY_MAX ? 0 : -EINVAL;
            o->body_size = (size_t)v;
            break;
        case O_BFILE: o->body_file = optarg; break;
        case O_DOMAIN: rc = gen_msg_add_domain(o, optarg); break;
        case O_SENDER:
            o->sender = optarg;
            rc = strpbrk(optarg, "<>\r\n \t") || strlen(optarg) > 254 ? -EINVAL : 0;
            break;
        case O_RATE: rc = parse_rate(optarg, &o->rate); break;
        case O_TLS: o->starttls = true; break;
        case O_KEEP: o->keep_going = true; break;
        case O_PER:
            rc = cfg_value_parse_uint(optarg, 1000000000, &v) ? 0 : -EINVAL;
            o->per_conn = (unsigned)v;
            break;
        case O_EHLO:
            o->ehlo = optarg;
            rc = !*optarg || strpbrk(optarg, "\r\n \t") || strlen(optarg) > 255 ? -EINVAL : 0;
            break;
        case O_JSON: o->json = true; break;
        case O_RCPTS:
            rc = cfg_value_parse_uint(optarg, GEN_RCPTS_MAX, &v) ? 0 : -EINVAL;
            o->recipients = (unsigned)v;
            rc = rc ? rc : (v ? 0 : -EINVAL);
            break;
        case O_TIMEOUT: rc = tool_opt_seconds(optarg, 1e9, &o->timeout_s); break;
        case O_HELP: usage(stdout); exit(0);
        case O_HTTP: o->http_url = optarg; break;
        case O_HTTP_TOKEN: o->http_token = optarg; break;
        default: usage(stderr); exit(2);
        }
        if (rc) {
            fprintf(stderr, "ringmail-gen: bad value for --%s: %s\n", opts[ch - O_TARGET].name, optarg);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringmail-gen: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
    if (have_count && o->duration_s > 0) {
        fprintf(stderr, "ringmail-gen: --message-count and --duration exclude each other\n");
        exit(2);
    }
    if (o->http_url && o->concurrency > GEN_HTTP_CONCURRENCY_MAX) {
        fprintf(stderr, "ringmail-gen: --http runs one thread per slot: --concurrency at most %d\n",
                GEN_HTTP_CONCURRENCY_MAX);
        exit(2);
    }
    if (o->duration_s > 0)
        o->message_count = 0;
    if (o->n_domains == 0)
        gen_msg_add_domain(o, "example.test");
}

static void setup(struct gen *g)
{
    struct hostport hp;
    char *err = NULL;
    struct rlimit rl;

    if (!g->o.http_url) {
        if (hostport_resolve(g->o.target, 0, 0, &hp, &g->addr, &g->addrlen, &err) < 0)
            fatal("--target %s", err);
        g->host = xstrdup(hp.host);
    }
    if (g->o.body_file) {
        if (gen_msg_file_body(g->o.body_file, &g->body, &g->body_len, &err) < 0)
            fatal("%s", err);
    } else {
        gen_msg_synth_body(g->o.body_size, &g->body, &g->body_len);
        g->synthetic = true;
    }
    if (g->o.starttls && tls_client_ctx_new(TLS_VERIFY_NONE, NULL, &g->tls, &err) < 0)
        fatal("TLS: %s", err);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)g->o.concurrency + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)g->o.concurrency + 64 ? rl.rlim_max : (rlim_t)g->o.concurrency + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)g->o.concurrency + 64)
            log_warn("--concurrency %u needs %u descriptors, the hard limit (ulimit -Hn) is %llu: sessions past "
                     "it fail to connect",
                     g->o.concurrency, g->o.concurrency + 64, (unsigned long long)rl.rlim_max);
    }
    if (evl_init(&g->evl, g->o.concurrency * 4 + 16, &err) < 0)
        fatal("%s", err);
    g->timeout_ns = (uint64_t)(g->o.timeout_s * 1e9);
    g->conns = xcalloc(g->o.concurrency, sizeof(*g->conns));
    for (unsigned i = 0; i < g->o.concurrency; i++)
        gen_conn_init(g, &g->conns[i]);
}

static int run(struct gen *g)
{
    bool due = false, aborted = false, tty = isatty(2);
    struct evl_timer tick = {.op = {.cb = on_tick, .owner = &due}};
    uint64_t tick_ns = g->o.rate > 0 ? CLOCK_MS(10) : CLOCK_MS(100);
    uint64_t next_progress, now;

    g->start_ns = clock_mono_ns();
    g->rate_next = g->start_ns;
    if (g->o.duration_s > 0)
        g->end_ns = g->start_ns + (uint64_t)(g->o.duration_s * 1e9);
    next_progress = g->start_ns + CLOCK_SEC(1);
    g->kick = true;
    evl_timer_arm(&g->evl, &tick, tick_ns);
    for (;;) {
        int rc;

        now = clock_mono_ns();
        if (got_signal && !g->stopping) {
            log_warn("interrupted by signal %d", (int)got_signal);
            g->stopping = true;
        }
        if (g->stopping && !aborted) {
            aborted = true;
            for (unsigned i = 0; i < g->o.concurrency; i++)
                gen_conn_abort(&g->conns[i]);
        }
        if (g->kick || due) {
            g->kick = false;
            for (unsigned i = 0; i < g->o.concurrency; i++)
                gen_conn_tick(&g->conns[i], now);
        }
        if (due) {
            due = false;
            evl_timer_arm(&g->evl, &tick, tick_ns);
            if (tty && now >= next_progress) {
                next_progress += CLOCK_SEC(1);
                gen_stats_progress(g, (double)(now - g->start_ns) / 1e9, false);
            }
        }
        if (all_idle(g) && !can_claim(g, now))
            break;
        if (g->kick)
            continue;
        rc = evl_run_once(&g->evl, true);
        if (rc < 0)
            fatal("io_uring: %s", strerror(-rc));
    }
    if (tty)
        gen_stats_progress(g, (double)(now - g->start_ns) / 1e9, true);
    gen_stats_print(g, (double)(now - g->start_ns) / 1e9, g->o.json);
    return got_signal ? 1 : gen_exit_code(g);
}

int main(int argc, char **argv)
{
    struct gen *g = xcalloc(1, sizeof(*g));
    struct sigaction sa = {.sa_handler = on_signal};
    int rc;

    log_init("ringmail-gen", -1);
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    srandom((unsigned)(clock_real_ns() ^ (uint64_t)getpid()));
    parse_args(g, argc, argv);
    setup(g);
    if (g->o.http_url) {
        g->o.target = g->o.http_url;
        rc = gen_http_run(g, g->o.http_url, g->o.http_token ? g->o.http_token : getenv("RINGMAIL_INJECT_TOKEN"));
    } else {
        rc = run(g);
    }
    evl_fini(&g->evl);
    for (unsigned i = 0; i < g->o.concurrency; i++)
        gen_conn_fini(&g->conns[i]);
    free(g->conns);
    tls_ctx_free(g->tls);
    free(g->body);
    free(g->host);
    for (unsigned i = 0; i < g->o.n_domains; i++)
        free(g->o.domains[i].name);
    free(g);
    return rc;
}
