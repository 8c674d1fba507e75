/*
 * ringctl_top - `ringctl top`: a terminal dashboard of a node, refreshed every second
 *
 *   ringctl top [--interval SECONDS] [--by provider|site|source|path] [--once [--json]]
 *
 * Each refresh reads the admin API (GET /api/v1/status, /api/v1/queue-summary?by=..., /api/v1/tsa/status
 * and /api/v1/tsa/history) and, when ringctl runs on the node, /proc/PID/stat and /proc/PID/statm of the
 * role pids in the status document. Rates per second are the deltas of the counters between two
 * samples. The screen (ncurses, tools/ringctl_top_ui.c) and --once (plain text) are drawn by one
 * renderer, ringctl_top_render(), a line at a time.
 *
 * This header is the pure part, for the UI, the unit test and the fuzz target:
 *   ringctl_top_summary_parse()  the queue-summary document (jansson, member by member, bounded) into a frame
 *   ringctl_top_proc_stat/statm()  the /proc files of a role (bounded, not NUL-terminated input)
 *   ringctl_top_rates()          per-second rates and CPU% from the previous frame
 *   ringctl_top_order()          the rows shown: filtered by a substring of the name, sorted by a column
 *   ringctl_top_key()            one key press applied to the view
 *   ringctl_top_render()         a frame as text lines of at most `width` columns
 * Every text taken from the node (names, responses, TSA triggers) is cut to its buffer and any byte
 * outside printable ASCII is shown as '?': a remote server's reply cannot drive the terminal.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_TOP_H
#define RINGMAIL_TOOLS_RINGCTL_TOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/proto_status.h"
#include "tools/ringctl_shaping.h"

#define RINGCTL_TOP_NAME 96
#define RINGCTL_TOP_TEXT 160
#define RINGCTL_TOP_MAX_ROWS 2000 /* the rows asked for (limit) and kept */
#define RINGCTL_TOP_MAX_ROLES 66
#define RINGCTL_TOP_MAX_EVENTS 6
#define RINGCTL_TOP_FILTER 64

enum ringctl_top_sort {
    RINGCTL_TOP_SORT_DELIVERED = 0, /* delivered/s, largest first */
    RINGCTL_TOP_SORT_DEFERRED = 1,  /* deferrals/s, largest first */
    RINGCTL_TOP_SORT_QUEUED = 2,    /* queued, largest first */
    RINGCTL_TOP_SORT_CONNECTIONS = 3,
    RINGCTL_TOP_SORT_NAME = 4,
    RINGCTL_TOP_SORT__MAX = 5,
};

struct ringctl_top_row {
    char name[RINGCTL_TOP_NAME];
    uint64_t delivered, transient, bounced, connections, queued, in_flight;
    uint64_t suspended_ms;
    char last_response[RINGCTL_TOP_TEXT]; /* "" none */
    double delivered_per_s, transient_per_s; /* < 0: not known yet (first sample) */
};

struct ringctl_top_role {
    char name[32];  /* "ingress[0]" */
    char state[16]; /* as the status document says */
    uint64_t pid;   /* 0 not running */
    bool visible;   /* its /proc files were read and name a ringmail process */
    uint64_t cpu_ticks, rss_bytes;
    double cpu_pct; /* < 0: not known (first sample, or not visible) */
};

struct ringctl_top_event {
    uint64_t start_ms;
    char text[RINGCTL_TOP_TEXT]; /* "SUSPEND src->site for 2h: 421 4.7.0 ..." */
};

struct ringctl_top_frame {
    double t_s;           /* CLOCK_MONOTONIC seconds of the sample */
    bool reachable;       /* the status document came */
    char error[RINGCTL_TOP_TEXT]; /* why the node or the summary could not be read; "" none */
    char node_id[64];
    uint64_t uptime_ms;
    bool have_summary;
    bool summary_stale; /* the summary could not be read (error says why): rows and totals are the last ones */
    uint64_t messages, scheduled, ready, in_flight, delivered, transient, bounced, expired;
    double delivered_per_s, transient_per_s, bounced_per_s; /* < 0 not known */
    struct ringctl_top_row *rows; /* heap */
    size_t n_rows, rows_total;
    struct ringctl_top_role roles[RINGCTL_TOP_MAX_ROLES];
    size_t n_roles;
    bool have_tsa;
    uint64_t tsa_responses, tsa_active;
    struct ringctl_top_event events[RINGCTL_TOP_MAX_EVENTS]; /* newest first */
    size_t n_events;
};

struct ringctl_top_view {
    enum ringctl_top_sort sort;
    char filter[RINGCTL_TOP_FILTER]; /* "" none */
    bool editing;                     /* the filter prompt is open */
    char edit[RINGCTL_TOP_FILTER];
    bool paused, help;
    const char *by; /* "provider", "site", "source" or "path" */
    double interval_s;
    uint64_t started_ms; /* Unix ms when top started: TSA events after it are marked new */
};

enum ringctl_top_action {
    RINGCTL_TOP_NONE = 0,   /* the key did nothing */
    RINGCTL_TOP_REDRAW = 1, /* the view changed */
    RINGCTL_TOP_QUIT = 2,
};

#define RINGCTL_TOP_KEY_ESC 27
#define RINGCTL_TOP_KEY_BACKSPACE 127

bool ringctl_top_command(const char *name);
/* ringctl_top_main - argv[0] is "top"; exit status as ringctl's (2 usage, 3 the node cannot be reached with --once) */
int ringctl_top_main(int argc, char **argv, const char *endpoint, bool json, ringctl_http_fn http);

/* ringctl_top_clean - s (len bytes, need not end in NUL) into buf as printable ASCII, cut to cap - 1 */
void ringctl_top_clean(char *buf, size_t cap, const char *s, size_t len);
/* ringctl_top_summary_parse - a queue-summary document into f's totals and rows (replacing any):
 * 0, or -EINVAL with *err (heap) when it is not a JSON object with a `rows` array. Members missing or of
 * another type read 0 / ""; at most RINGCTL_TOP_MAX_ROWS rows are kept. */
int ringctl_top_summary_parse(const char *text, size_t len, struct ringctl_top_frame *f, char **err);
/* ringctl_top_status_take - roles (name, pid, state) and node id from a decoded status document */
void ringctl_top_status_take(struct ringctl_top_frame *f, const struct proto_status_node *n);
/* ringctl_top_tsa_take - TSA counts and the newest events from decoded /tsa/status and /tsa/history */
void ringctl_top_tsa_take(struct ringctl_top_frame *f, const struct proto_status_tsa *status,
                          const struct proto_status_tsa *history);
/* ringctl_top_proc_stat - /proc/PID/stat: the command name (between the first '(' and the last ')',
 * cleaned into comm) and utime + stime in clock ticks; 0 or -EINVAL */
int ringctl_top_proc_stat(const char *buf, size_t len, char *comm, size_t comm_cap, uint64_t *ticks);
/* ringctl_top_proc_statm - /proc/PID/statm: the resident set in pages; 0 or -EINVAL */
int ringctl_top_proc_statm(const char *buf, size_t len, uint64_t *resident_pages);
/* ringctl_top_rates - now's rates from prev (NULL: none known); hz is the clock ticks per second */
void ringctl_top_rates(struct ringctl_top_frame *now, const struct ringctl_top_frame *prev, long hz);
/* ringctl_top_carry - when now could not read the summary or the TSA documents but prev had them, now
 * takes them over (prev's rows move to now; their rates unknown), marked stale, so that the screen keeps
 * the last data while a role restarts or the node stops */
void ringctl_top_carry(struct ringctl_top_frame *now, struct ringctl_top_frame *prev);
/* ringctl_top_order - the indexes of the rows that match v's filter into idx (room for f->n_rows), in v's
 * sort order (ties by name); the count */
size_t ringctl_top_order(const struct ringctl_top_frame *f, const struct ringctl_top_view *v, size_t *idx);
bool ringctl_top_match(const char *name, const char *filter);
enum ringctl_top_action ringctl_top_key(struct ringctl_top_view *v, int key);
const char *ringctl_top_sort_name(enum ringctl_top_sort s);
/* ringctl_top_fmt_rate - "-" (< 0), "0.5", "12", "3.4k", "1.2M"; ringctl_top_fmt_bytes - "512K", "12.3M" */
void ringctl_top_fmt_rate(char *buf, size_t len, double r);
void ringctl_top_fmt_bytes(char *buf, size_t len, uint64_t b);

/* line kinds, for the screen's attributes */
enum ringctl_top_line {
    RINGCTL_TOP_LINE_TEXT = 0,
    RINGCTL_TOP_LINE_TITLE = 1,  /* the top line */
    RINGCTL_TOP_LINE_HEAD = 2,   /* a table's column names */
    RINGCTL_TOP_LINE_WARN = 3,   /* unreachable, a suspended row */
    RINGCTL_TOP_LINE_NEW = 4,    /* a TSA event since top started */
};
typedef void (*ringctl_top_line_fn)(void *ctx, enum ringctl_top_line kind, const char *text);
/* ringctl_top_render - f as lines of at most width (>= 40) columns; height 0: every row (--once), else at
 * most height lines, the provider table cut to fit ("... N more") */
void ringctl_top_render(const struct ringctl_top_frame *f, const struct ringctl_top_view *v, int width, int height,
                        ringctl_top_line_fn fn, void *ctx);
void ringctl_top_frame_fini(struct ringctl_top_frame *f);

#endif
