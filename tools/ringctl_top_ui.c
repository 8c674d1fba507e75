/*
 * ringctl_top_ui - `ringctl top`'s sampling and its screen (ncurses); the model and the text are in
 * ringctl_top.c (contract in ringctl_top.h)
 *
 * One sample = the status document, the queue summary, the TSA status and history, and /proc of each
 * role pid. The loop waits for a key at most 100 ms at a time, samples when the interval is due (not while
 * paused) and redraws on a new sample, a key or a resize (KEY_RESIZE). A node that goes away keeps the
 * last data on screen under "node unreachable, retrying"; what ringctl_http_call() says on stderr is
 * painted over by a full repaint.
 */
#include "tools/ringctl_top.h"

#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/file.h"
#include "base/mem.h"
#include "tools/ringctl_ops.h"

static volatile sig_atomic_t stop_flag; /* Ctrl-C, SIGTERM, SIGHUP: end the screen */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* get - one GET; 0 with the body (heap), or a negative errno / -EPROTO (HTTP error: why in err) */
static int get(ringctl_http_fn http, const char *endpoint, const char *path, char **body, size_t *len, char *err,
               size_t cap)
{
    int status = 0;
    *body = NULL;
    *len = 0;
    int rc = http(endpoint, "GET", path, &status, body, len);
    if (rc < 0) {
        snprintf(err, cap, "cannot reach %s: %s", endpoint, strerror(-rc));
        return rc;
    }
    if (status != 200) {
        json_t *doc = json_loadb(*body ? *body : "", *len, 0, NULL);
        const char *e = json_string_value(json_object_get(doc, "error"));
        char text[RINGCTL_TOP_TEXT];
        ringctl_top_clean(text, sizeof(text), e ? e : "", e ? strlen(e) : 0);
        snprintf(err, cap, "%.50s: HTTP %d%s%.80s", path, status, e ? ": " : "", text);
        json_decref(doc);
        free(*body);
        *body = NULL;
        return -EPROTO;
    }
    return 0;
}

/* read_proc - /proc/PID/stat and statm of a role pid: only a process whose name starts "ringmail-" (on
 * another host the pid is someone else's, or nobody's) */
static void read_proc(struct ringctl_top_role *r, long page)
{
    char path[64], comm[32], *text = NULL;
    size_t len = 0;
    uint64_t ticks = 0, pages = 0;
    r->visible = false;
    if (r->pid == 0 || r->pid > 0x7fffffff)
        return;
    snprintf(path, sizeof(path), "/proc/%llu/stat", (unsigned long long)r->pid);
    if (file_read_all(path, 4096, &text, &len) < 0)
        return;
    int rc = ringctl_top_proc_stat(text, len, comm, sizeof(comm), &ticks);
    free(text);
    if (rc < 0 || strncmp(comm, "ringmail-", 9) != 0)
        return;
    snprintf(path, sizeof(path), "/proc/%llu/statm", (unsigned long long)r->pid);
    if (file_read_all(path, 4096, &text, &len) < 0)
        return;
    rc = ringctl_top_proc_statm(text, len, &pages);
    free(text);
    if (rc < 0 || pages > UINT64_MAX / (uint64_t)page)
        return;
    r->cpu_ticks = ticks;
    r->rss_bytes = pages * (uint64_t)page;
    r->visible = true;
}

struct sampler {
    ringctl_http_fn http;
    const char *endpoint;
    char summary_path[128];
    long hz, page;
};

/* sample - a new frame into *f (fini'd by the caller); the rates are the caller's */
static void sample(const struct sampler *s, struct ringctl_top_frame *f)
{
    char *body = NULL, *why = NULL;
    size_t len = 0;
    memset(f, 0, sizeof(*f));
    f->t_s = mono_s();
    if (get(s->http, s->endpoint, "/api/v1/status", &body, &len, f->error, sizeof(f->error)) < 0)
        return;
    struct proto_status_node n;
    int rc = proto_status_node_decode(body, len, &n, &why);
    free(body);
    if (rc < 0) {
        snprintf(f->error, sizeof(f->error), "the status document breaks its schema: %.100s", why);
        free(why);
        return;
    }
    f->reachable = true;
    ringctl_top_status_take(f, &n);
    proto_status_node_fini(&n);
    for (size_t i = 0; i < f->n_roles; i++)
        read_proc(&f->roles[i], s->page);

    /* a node that answers slowly holds each call up to ringctl's timeout: a signal ends the sample */
    if (stop_flag)
        return;
    if (get(s->http, s->endpoint, s->summary_path, &body, &len, f->error, sizeof(f->error)) == 0) {
        if (ringctl_top_summary_parse(body, len, f, &why) < 0) {
            ringctl_top_clean(f->error, sizeof(f->error), why, strlen(why));
            free(why);
        }
        free(body);
    }
    struct proto_status_tsa st, hist;
    char terr[RINGCTL_TOP_TEXT];
    if (stop_flag || get(s->http, s->endpoint, "/api/v1/tsa/status", &body, &len, terr, sizeof(terr)) < 0)
        return;
    rc = proto_status_tsa_decode(body, len, true, &st, &why);
    free(body);
    if (rc < 0) {
        free(why);
        return;
    }
    if (get(s->http, s->endpoint, "/api/v1/tsa/history", &body, &len, terr, sizeof(terr)) == 0) {
        rc = proto_status_tsa_decode(body, len, true, &hist, &why);
        free(body);
        if (rc == 0) {
            ringctl_top_tsa_take(f, &st, &hist);
            proto_status_tsa_fini(&hist);
        } else {
            free(why);
        }
    }
    proto_status_tsa_fini(&st);
}

/* ---- --once ---- */

static void print_line(void *ctx, enum ringctl_top_line kind, const char *text)
{
    (void)ctx;
    (void)kind;
    printf("%s\n", text);
}

static json_t *frame_json(const struct ringctl_top_frame *f, const struct ringctl_top_view *v)
{
    json_t *rows = json_array(), *roles = json_array(), *events = json_array();
    size_t *idx = xcalloc(f->n_rows + 1, sizeof(*idx));
    size_t n = ringctl_top_order(f, v, idx);
    for (size_t i = 0; i < n; i++) {
        const struct ringctl_top_row *r = &f->rows[idx[i]];
        json_array_append_new(rows, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:s?}",
            "name", r->name, "delivered", (json_int_t)r->delivered, "transient", (json_int_t)r->transient,
            "bounced", (json_int_t)r->bounced, "connections", (json_int_t)r->connections,
            "queued", (json_int_t)r->queued, "in_flight", (json_int_t)r->in_flight,
            "suspended_ms", (json_int_t)r->suspended_ms,
            "delivered_per_s", r->delivered_per_s >= 0 ? json_real(r->delivered_per_s) : json_null(),
            "transient_per_s", r->transient_per_s >= 0 ? json_real(r->transient_per_s) : json_null(),
            "last_response", r->last_response[0] ? r->last_response : NULL));
    }
    free(idx);
    for (size_t i = 0; i < f->n_roles; i++) {
        const struct ringctl_top_role *r = &f->roles[i];
        json_array_append_new(roles, json_pack("{s:s, s:I, s:s, s:o, s:o}", "name", r->name, "pid", (json_int_t)r->pid,
            "state", r->state, "cpu_pct", r->visible && r->cpu_pct >= 0 ? json_real(r->cpu_pct) : json_null(),
            "rss_bytes", r->visible ? json_integer((json_int_t)r->rss_bytes) : json_null()));
    }
    for (size_t i = 0; i < f->n_events; i++)
        json_array_append_new(events, json_pack("{s:I, s:s}", "start_ms", (json_int_t)f->events[i].start_ms, "text",
                                                f->events[i].text));
    return json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}, s:o, s:o, s:{s:I, s:I, s:o}}",
        "node_id", f->node_id, "by", v->by, "sort", ringctl_top_sort_name(v->sort),
        "totals", "messages", (json_int_t)f->messages, "scheduled", (json_int_t)f->scheduled, "ready", (json_int_t)f->ready,
        "in_flight", (json_int_t)f->in_flight, "delivered", (json_int_t)f->delivered, "transient", (json_int_t)f->transient,
        "bounced", (json_int_t)f->bounced, "expired", (json_int_t)f->expired,
        "delivered_per_s", f->delivered_per_s >= 0 ? json_real(f->delivered_per_s) : json_null(),
        "transient_per_s", f->transient_per_s >= 0 ? json_real(f->transient_per_s) : json_null(),
        "bounced_per_s", f->bounced_per_s >= 0 ? json_real(f->bounced_per_s) : json_null(),
        "rows", rows, "roles", roles,
        "tsa", "active", (json_int_t)f->tsa_active, "responses", (json_int_t)f->tsa_responses, "events", events);
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* once - two samples an interval apart (so the rates are real), one frame */
static int once(const struct sampler *s, struct ringctl_top_view *v, bool json)
{
    struct ringctl_top_frame a, b;
    sample(s, &a);
    if (!a.reachable) {
        fprintf(stderr, "ringctl top: %s\n", a.error);
        ringctl_top_frame_fini(&a);
        return 3;
    }
    sleep_s(v->interval_s);
    sample(s, &b);
    ringctl_top_rates(&b, &a, s->hz);
    ringctl_top_frame_fini(&a);
    int rc = 0;
    if (!b.reachable) {
        fprintf(stderr, "ringctl top: %s\n", b.error);
        rc = 3;
    } else if (json) {
        json_t *doc = frame_json(&b, v);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(doc);
    } else {
        ringctl_top_render(&b, v, 160, 0, print_line, NULL);
    }
    ringctl_top_frame_fini(&b);
    return rc;
}

/* ---- the screen ---- */

static bool colours; /* a terminal with colours, and no NO_COLOR */

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct screen {
    int y, rows;
};

static void screen_line(void *ctx, enum ringctl_top_line kind, const char *text)
{
    struct screen *sc = ctx;
    if (sc->y >= sc->rows)
        return;
    int attr = kind == RINGCTL_TOP_LINE_TITLE ? A_REVERSE
             : kind == RINGCTL_TOP_LINE_HEAD  ? A_BOLD
             : kind == RINGCTL_TOP_LINE_WARN  ? (colours ? COLOR_PAIR(1) : A_BOLD)
             : kind == RINGCTL_TOP_LINE_NEW   ? (colours ? COLOR_PAIR(2) : A_BOLD)
                                              : A_NORMAL;
    attron(attr);
    mvaddnstr(sc->y, 0, text, COLS);
    attroff(attr);
    sc->y++;
}

static void draw(const struct ringctl_top_frame *f, const struct ringctl_top_view *v)
{
    struct screen sc = {.y = 0, .rows = LINES};
    erase();
    ringctl_top_render(f, v, COLS, LINES, screen_line, &sc);
    refresh();
}

static int screen(const struct sampler *s, struct ringctl_top_view *v)
{
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        fprintf(stderr, "ringctl top: cannot drive this terminal (TERM=%s): use --once\n",
                getenv("TERM") ? getenv("TERM") : "");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(100);
    colours = has_colors() && !getenv("NO_COLOR");
    if (colours) {
        start_color();
        use_default_colors();
        init_pair(1, COLOR_YELLOW, -1);
        init_pair(2, COLOR_GREEN, -1);
    }

    struct ringctl_top_frame cur = {0}, shown = {0};
    bool have = false, dirty = true;
    double due = 0;
    while (!stop_flag) {
        if (!v->paused && mono_s() >= due) {
            sample(s, &cur);
            if (cur.error[0] && isatty(STDERR_FILENO))
                clearok(curscr, TRUE); /* ringctl_http_call() may have written on the screen */
            if (cur.reachable) {
                ringctl_top_rates(&cur, have && shown.reachable ? &shown : NULL, s->hz);
                ringctl_top_carry(&cur, &shown);
                ringctl_top_frame_fini(&shown);
                shown = cur;
                have = true;
            } else {
                /* keep what was shown, say the node is gone */
                shown.reachable = false;
                snprintf(shown.error, sizeof(shown.error), "%s", cur.error);
                ringctl_top_frame_fini(&cur);
            }
            memset(&cur, 0, sizeof(cur));
            due = mono_s() + v->interval_s;
            dirty = true;
        }
        if (dirty)
            draw(&shown, v);
        dirty = false;
        int ch = getch();
        if (ch == ERR)
            continue;
        if (ch == KEY_RESIZE) {
            dirty = true;
            continue;
        }
        if (ch == KEY_BACKSPACE)
            ch = RINGCTL_TOP_KEY_BACKSPACE;
        else if (ch == KEY_ENTER)
            ch = '\n';
        enum ringctl_top_action a = ringctl_top_key(v, ch);
        if (a == RINGCTL_TOP_QUIT)
            break;
        dirty = a == RINGCTL_TOP_REDRAW; /* p resumes at once: `due` passed while paused */
    }
    endwin();
    delscreen(scr);
    ringctl_top_frame_fini(&shown);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: ringctl top [--interval SECONDS] [--by provider|site|source|path] [--once [--json]]\n");
    return 2;
}

int ringctl_top_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http)
{
    static const struct option opts[] = {
        {"interval", required_argument, NULL, 'i'}, {"once", no_argument, NULL, 'o'},
        {"by", required_argument, NULL, 'b'},       {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct ringctl_top_view v = {.by = "provider", .interval_s = 1.0, .started_ms = unix_ms()};
    bool one = false;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o') {
            one = true;
        } else if (c == 'j') {
            json = true;
        } else if (c == 'b') {
            static const char *const bys[] = {"provider", "site", "source", "path"};
            v.by = NULL;
            for (size_t i = 0; i < 4; i++)
                if (strcmp(optarg, bys[i]) == 0)
                    v.by = bys[i];
            if (!v.by) {
                fprintf(stderr, "ringctl top: --by %s: want provider, site, source or path\n", optarg);
                return 2;
            }
        } else if (c == 'i') {
            char *end = NULL;
            errno = 0;
            double s = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(s >= 0.2 && s <= 3600)) {
                fprintf(stderr, "ringctl top: --interval %s: want seconds from 0.2 to 3600\n", optarg);
                return 2;
            }
            v.interval_s = s;
        } else {
            return usage();
        }
    }
    if (optind != argc)
        return usage();
    if (json && !one) {
        fprintf(stderr, "ringctl top: --json needs --once (one frame as a JSON document)\n");
        return 2;
    }
    if (!one && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))) {
        fprintf(stderr, "ringctl top: standard output and input must be a terminal; for scripts use "
                        "`ringctl top --once` (one plain-text frame) or `--once --json`\n");
        return 2;
    }
    struct sampler s = {.http = http, .endpoint = endpoint, .hz = sysconf(_SC_CLK_TCK), .page = sysconf(_SC_PAGESIZE)};
    if (s.page <= 0)
        s.page = 4096;
    if (strcmp(v.by, "path") == 0)
        snprintf(s.summary_path, sizeof(s.summary_path), "/api/v1/queue-summary?by_volume=1&limit=%d",
                 RINGCTL_TOP_MAX_ROWS);
    else
        snprintf(s.summary_path, sizeof(s.summary_path), "/api/v1/queue-summary?by=%s&by_volume=1&limit=%d", v.by,
                 RINGCTL_TOP_MAX_ROWS);
    return one ? once(&s, &v, json) : screen(&s, &v);
}
