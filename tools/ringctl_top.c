/*
 * ringctl_top - the dashboard's model and renderer (contract in ringctl_top.h); the screen and the
 * fetching are in ringctl_top_ui.c
 *
 * Input from the node is read member by member with jansson and copied into fixed buffers; /proc files
 * are parsed within their length (they need not end in NUL). Nothing here does I/O except through the
 * line callback of ringctl_top_render().
 */
#include "tools/ringctl_top.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/mem.h"
#include "tools/ringctl_ops.h"

static const char *const sort_names[RINGCTL_TOP_SORT__MAX] = {"delivered/s", "deferrals/s", "queued",
                                                                "connections", "name"};

bool ringctl_top_command(const char *name)
{
    return strcmp(name, "top") == 0;
}

const char *ringctl_top_sort_name(enum ringctl_top_sort s)
{
    return (unsigned)s < RINGCTL_TOP_SORT__MAX ? sort_names[s] : "?";
}

void ringctl_top_clean(char *buf, size_t cap, const char *s, size_t len)
{
    size_t k = 0;
    if (!cap)
        return;
    for (size_t i = 0; i < len && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[k] = '\0';
}

static void clean_str(char *buf, size_t cap, const char *s)
{
    ringctl_top_clean(buf, cap, s ? s : "", s ? strlen(s) : 0);
}

/* count - a member that is a whole number >= 0, else 0 */
static uint64_t count(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (uint64_t)json_integer_value(v);
    return 0;
}

static void jstr(const json_t *o, const char *k, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        ringctl_top_clean(buf, cap, json_string_value(v), json_string_length(v));
    else if (cap)
        buf[0] = '\0';
}

struct member {
    const char *key;
    size_t off; /* of a uint64_t in the struct read into */
};

static const struct member total_members[] = {
    {"messages", offsetof(struct ringctl_top_frame, messages)},
    {"scheduled", offsetof(struct ringctl_top_frame, scheduled)},
    {"ready", offsetof(struct ringctl_top_frame, ready)},
    {"in_flight", offsetof(struct ringctl_top_frame, in_flight)},
    {"delivered", offsetof(struct ringctl_top_frame, delivered)},
    {"transient", offsetof(struct ringctl_top_frame, transient)},
    {"bounced", offsetof(struct ringctl_top_frame, bounced)},
    {"expired", offsetof(struct ringctl_top_frame, expired)},
};

static const size_t total_count = sizeof(total_members) / sizeof(total_members[0]);

static const struct member row_members[] = {
    {"delivered", offsetof(struct ringctl_top_row, delivered)},
    {"transient", offsetof(struct ringctl_top_row, transient)},
    {"bounced", offsetof(struct ringctl_top_row, bounced)},
    {"connections", offsetof(struct ringctl_top_row, connections)},
    {"queued", offsetof(struct ringctl_top_row, queued)},
    {"in_flight", offsetof(struct ringctl_top_row, in_flight)},
    {"suspended_ms", offsetof(struct ringctl_top_row, suspended_ms)},
};

static void counts(const json_t *o, const struct member *m, size_t n, void *into)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = count(o, m[i].key);
        memcpy((char *)into + m[i].off, &v, sizeof(v));
    }
}

int ringctl_top_summary_parse(const char *text, size_t len, struct ringctl_top_frame *f, char **err)
{
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    const json_t *rows = json_object_get(doc, "rows"), *tot = json_object_get(doc, "totals");

    free(f->rows);
    f->rows = NULL;
    f->n_rows = f->rows_total = 0;
    f->have_summary = false;
    if (!json_is_object(doc) || !json_is_array(rows)) {
        *err = xasprintf("the queue summary is not a JSON object with rows%s%s", doc ? "" : ": ",
                         doc ? "" : je.text);
        json_decref(doc);
        return -EINVAL;
    }
    counts(tot, total_members, total_count, f);
    size_t n = json_array_size(rows);
    f->rows_total = n;
    if (n > RINGCTL_TOP_MAX_ROWS)
        n = RINGCTL_TOP_MAX_ROWS;
    f->rows = n ? xcalloc(n, sizeof(*f->rows)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(rows, i);
        struct ringctl_top_row *o = &f->rows[f->n_rows];
        if (!json_is_object(r))
            continue;
        jstr(r, "name", o->name, sizeof(o->name));
        if (!o->name[0])
            continue;
        counts(r, row_members, sizeof(row_members) / sizeof(row_members[0]), o);
        jstr(r, "last_response", o->last_response, sizeof(o->last_response));
        o->delivered_per_s = o->transient_per_s = -1;
        f->n_rows++;
    }
    f->have_summary = true;
    json_decref(doc);
    return 0;
}

void ringctl_top_status_take(struct ringctl_top_frame *f, const struct proto_status_node *n)
{
    clean_str(f->node_id, sizeof(f->node_id), n->node_id);
    f->uptime_ms = n->uptime_ms;
    f->n_roles = 0;
    for (size_t i = 0; i < n->n_roles && f->n_roles < RINGCTL_TOP_MAX_ROLES; i++) {
        const struct proto_status_role *r = &n->roles[i];
        struct ringctl_top_role *o = &f->roles[f->n_roles++];
        memset(o, 0, sizeof(*o));
        snprintf(o->name, sizeof(o->name), "%s[%llu]", proto_node_role_name(r->role), (unsigned long long)r->index);
        clean_str(o->state, sizeof(o->state), proto_node_inst_state_name(r->state));
        o->pid = r->pid;
        o->cpu_pct = -1;
    }
}

static void event_text(const struct proto_status_tsa_entry *e, char *buf, size_t cap)
{
    char what[RINGCTL_TOP_TEXT], raw[2 * RINGCTL_TOP_TEXT], left[16];
    if (e->domain[0])
        snprintf(raw, sizeof(raw), "%s %s%s%s%s%s", e->action, e->domain, e->tenant[0] ? " tenant " : "", e->tenant,
                 e->campaign[0] ? " campaign " : "", e->campaign);
    else
        snprintf(raw, sizeof(raw), "%s %s%s%s", e->action, e->source, e->source[0] ? "->" : "", e->site);
    clean_str(what, sizeof(what), raw);
    ringctl_ops_age(left, sizeof(left), (long long)(e->expires_ms - e->start_ms));
    snprintf(raw, sizeof(raw), "%s for %s: %s", what, left, e->response);
    clean_str(buf, cap, raw);
}

void ringctl_top_tsa_take(struct ringctl_top_frame *f, const struct proto_status_tsa *status,
                          const struct proto_status_tsa *history)
{
    f->have_tsa = true;
    f->tsa_responses = status->responses;
    f->tsa_active = status->n_active;
    f->n_events = 0;
    for (size_t i = 0; i < history->n_history && f->n_events < RINGCTL_TOP_MAX_EVENTS; i++) {
        struct ringctl_top_event *ev = &f->events[f->n_events++];
        ev->start_ms = history->history[i].start_ms;
        event_text(&history->history[i], ev->text, sizeof(ev->text));
    }
}

/* ---- /proc ---- */

/* field - the next blank-separated decimal number at *p (< end); false when there is none */
static bool field_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (s < end && *s != ' ' && *s != '\n')
        return false;
    *out = v;
    *p = s;
    return true;
}

/* skip - past the next blank-separated field of any text */
static bool skip_field(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    if (s >= end || *s == '\n')
        return false;
    while (s < end && *s != ' ' && *s != '\n')
        s++;
    *p = s;
    return true;
}

int ringctl_top_proc_stat(const char *buf, size_t len, char *comm, size_t comm_cap, uint64_t *ticks)
{
    const char *open = NULL, *close = NULL, *end = buf + len;
    for (const char *s = buf; s < end; s++) {
        if (*s == '(' && !open)
            open = s;
        if (*s == ')')
            close = s;
    }
    if (!open || !close || close < open)
        return -EINVAL;
    ringctl_top_clean(comm, comm_cap, open + 1, (size_t)(close - open - 1));
    /* after the name: state (3), ppid .. cmajflt (4 .. 12), utime (14), stime (15) */
    const char *p = close + 1;
    if (!skip_field(&p, end))
        return -EINVAL;
    uint64_t ut = 0, st = 0;
    for (int k = 4; k <= 13; k++)
        if (!skip_field(&p, end))
            return -EINVAL;
    if (!field_u64(&p, end, &ut) || !field_u64(&p, end, &st))
        return -EINVAL;
    if (ut > UINT64_MAX - st)
        return -EINVAL;
    *ticks = ut + st;
    return 0;
}

int ringctl_top_proc_statm(const char *buf, size_t len, uint64_t *resident_pages)
{
    const char *p = buf, *end = buf + len;
    uint64_t size = 0;
    if (!field_u64(&p, end, &size) || !field_u64(&p, end, resident_pages))
        return -EINVAL;
    return 0;
}

/* ---- rates ---- */

static int cmp_row_name(const void *a, const void *b)
{
    return strcmp(((const struct ringctl_top_row *const *)a)[0]->name,
                  ((const struct ringctl_top_row *const *)b)[0]->name);
}

static double rate(uint64_t now, uint64_t prev, double dt)
{
    return now >= prev ? (double)(now - prev) / dt : 0; /* less than before: the scheduler restarted */
}

void ringctl_top_rates(struct ringctl_top_frame *now, const struct ringctl_top_frame *prev, long hz)
{
    double dt = prev ? now->t_s - prev->t_s : 0;
    now->delivered_per_s = now->transient_per_s = now->bounced_per_s = -1;
    for (size_t i = 0; i < now->n_roles; i++)
        now->roles[i].cpu_pct = -1;
    if (!prev || dt <= 0.001)
        return;
    if (now->have_summary && prev->have_summary) {
        now->delivered_per_s = rate(now->delivered, prev->delivered, dt);
        now->transient_per_s = rate(now->transient, prev->transient, dt);
        now->bounced_per_s = rate(now->bounced, prev->bounced, dt);
        const struct ringctl_top_row **by_name = xcalloc(prev->n_rows + 1, sizeof(*by_name));
        for (size_t i = 0; i < prev->n_rows; i++)
            by_name[i] = &prev->rows[i];
        qsort(by_name, prev->n_rows, sizeof(*by_name), cmp_row_name);
        for (size_t i = 0; i < now->n_rows; i++) {
            struct ringctl_top_row *r = &now->rows[i];
            const struct ringctl_top_row *key = r, **hit = NULL;
            if (prev->n_rows)
                hit = bsearch(&key, by_name, prev->n_rows, sizeof(*by_name), cmp_row_name);
            /* a row that was not there had nothing: all it counts came since (when the previous sample had
             * every row) */
            bool complete = prev->rows_total == prev->n_rows;
            r->delivered_per_s = hit ? rate(r->delivered, (*hit)->delivered, dt) : complete ? rate(r->delivered, 0, dt) : -1;
            r->transient_per_s = hit ? rate(r->transient, (*hit)->transient, dt) : complete ? rate(r->transient, 0, dt) : -1;
        }
        free(by_name);
    }
    for (size_t i = 0; i < now->n_roles && hz > 0; i++) {
        struct ringctl_top_role *r = &now->roles[i];
        for (size_t j = 0; j < prev->n_roles; j++) {
            const struct ringctl_top_role *p = &prev->roles[j];
            if (r->visible && p->visible && p->pid == r->pid && strcmp(p->name, r->name) == 0 &&
                r->cpu_ticks >= p->cpu_ticks)
                r->cpu_pct = (double)(r->cpu_ticks - p->cpu_ticks) * 100.0 / ((double)hz * dt);
        }
    }
}

void ringctl_top_carry(struct ringctl_top_frame *now, struct ringctl_top_frame *prev)
{
    if (!now->have_summary && prev->have_summary) {
        now->rows = prev->rows;
        now->n_rows = prev->n_rows;
        now->rows_total = prev->rows_total;
        prev->rows = NULL;
        prev->n_rows = prev->rows_total = 0;
        for (size_t i = 0; i < total_count; i++)
            memcpy((char *)now + total_members[i].off, (const char *)prev + total_members[i].off, sizeof(uint64_t));
        for (size_t i = 0; i < now->n_rows; i++)
            now->rows[i].delivered_per_s = now->rows[i].transient_per_s = -1;
        now->delivered_per_s = now->transient_per_s = now->bounced_per_s = -1;
        now->have_summary = now->summary_stale = true;
    }
    if (!now->have_tsa && prev->have_tsa) {
        now->have_tsa = true;
        now->tsa_responses = prev->tsa_responses;
        now->tsa_active = prev->tsa_active;
        now->n_events = prev->n_events;
        memcpy(now->events, prev->events, sizeof(now->events));
    }
}

/* ---- the view ---- */

bool ringctl_top_match(const char *name, const char *filter)
{
    size_t nl = strlen(name), fl = strlen(filter);
    if (fl == 0)
        return true;
    for (size_t i = 0; i + fl <= nl; i++) {
        size_t k = 0;
        while (k < fl && tolower((unsigned char)name[i + k]) == tolower((unsigned char)filter[k]))
            k++;
        if (k == fl)
            return true;
    }
    return false;
}

static const struct ringctl_top_row *sort_rows;
static enum ringctl_top_sort sort_key;

static int cmp_double(double a, double b)
{
    return a > b ? -1 : a < b ? 1 : 0;
}

static int cmp_idx(const void *a, const void *b)
{
    const struct ringctl_top_row *x = &sort_rows[*(const size_t *)a], *y = &sort_rows[*(const size_t *)b];
    int c = 0;
    switch (sort_key) {
    case RINGCTL_TOP_SORT_DELIVERED:
        c = cmp_double(x->delivered_per_s, y->delivered_per_s);
        if (!c)
            c = x->delivered > y->delivered ? -1 : x->delivered < y->delivered;
        break;
    case RINGCTL_TOP_SORT_DEFERRED:
        c = cmp_double(x->transient_per_s, y->transient_per_s);
        if (!c)
            c = x->transient > y->transient ? -1 : x->transient < y->transient;
        break;
    case RINGCTL_TOP_SORT_QUEUED:
        c = x->queued > y->queued ? -1 : x->queued < y->queued;
        break;
    case RINGCTL_TOP_SORT_CONNECTIONS:
        c = x->connections > y->connections ? -1 : x->connections < y->connections;
        break;
    default:
        break;
    }
    return c ? c : strcmp(x->name, y->name);
}

size_t ringctl_top_order(const struct ringctl_top_frame *f, const struct ringctl_top_view *v, size_t *idx)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_rows; i++)
        if (ringctl_top_match(f->rows[i].name, v->filter))
            idx[n++] = i;
    sort_rows = f->rows;
    sort_key = v->sort;
    qsort(idx, n, sizeof(*idx), cmp_idx);
    sort_rows = NULL;
    return n;
}

enum ringctl_top_action ringctl_top_key(struct ringctl_top_view *v, int key)
{
    if (v->editing) {
        size_t n = strlen(v->edit);
        if (key == '\n' || key == '\r') {
            snprintf(v->filter, sizeof(v->filter), "%s", v->edit);
            v->editing = false;
        } else if (key == RINGCTL_TOP_KEY_ESC) {
            v->editing = false;
            v->filter[0] = v->edit[0] = '\0';
        } else if (key == RINGCTL_TOP_KEY_BACKSPACE || key == 8) {
            if (n)
                v->edit[n - 1] = '\0';
        } else if (key >= 0x20 && key < 0x7f && n + 1 < sizeof(v->edit)) {
            v->edit[n] = (char)key;
            v->edit[n + 1] = '\0';
        } else {
            return RINGCTL_TOP_NONE;
        }
        return RINGCTL_TOP_REDRAW;
    }
    switch (key) {
    case 'q':
    case 'Q':
        return RINGCTL_TOP_QUIT;
    case 's':
        v->sort = (enum ringctl_top_sort)((v->sort + 1) % RINGCTL_TOP_SORT__MAX);
        return RINGCTL_TOP_REDRAW;
    case '/':
        v->editing = true;
        v->help = false;
        v->edit[0] = '\0';
        return RINGCTL_TOP_REDRAW;
    case RINGCTL_TOP_KEY_ESC:
        v->filter[0] = '\0';
        v->help = false;
        return RINGCTL_TOP_REDRAW;
    case 'p':
        v->paused = !v->paused;
        return RINGCTL_TOP_REDRAW;
    case '?':
    case 'h':
        v->help = !v->help;
        return RINGCTL_TOP_REDRAW;
    default:
        return RINGCTL_TOP_NONE;
    }
}

void ringctl_top_fmt_rate(char *buf, size_t len, double r)
{
    if (r < 0)
        snprintf(buf, len, "-");
    else if (r < 9.95)
        snprintf(buf, len, "%.1f", r);
    else if (r < 999.5)
        snprintf(buf, len, "%.0f", r);
    else if (r < 999.5e3)
        snprintf(buf, len, "%.1fk", r / 1e3);
    else
        snprintf(buf, len, "%.1fM", r / 1e6);
}

void ringctl_top_fmt_bytes(char *buf, size_t len, uint64_t b)
{
    if (b < 1024)
        snprintf(buf, len, "%lluB", (unsigned long long)b);
    else if (b < 1024 * 1024)
        snprintf(buf, len, "%lluK", (unsigned long long)(b >> 10));
    else if (b < 1024ull * 1024 * 1024)
        snprintf(buf, len, "%.1fM", (double)b / (1024.0 * 1024));
    else
        snprintf(buf, len, "%.1fG", (double)b / (1024.0 * 1024 * 1024));
}

/* ---- rendering ---- */

struct out {
    ringctl_top_line_fn fn;
    void *ctx;
    int width;
    char line[512];
};

static void emit(struct out *o, enum ringctl_top_line kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void emit(struct out *o, enum ringctl_top_line kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->line, sizeof(o->line), fmt, ap);
    va_end(ap);
    if ((size_t)o->width < sizeof(o->line))
        o->line[o->width] = '\0';
    o->fn(o->ctx, kind, o->line);
}

static const char *head_name(const char *by)
{
    if (strcmp(by, "site") == 0)
        return "SITE";
    if (strcmp(by, "source") == 0)
        return "SOURCE";
    if (strcmp(by, "path") == 0)
        return "SOURCE->SITE";
    return "PROVIDER";
}

/* the table's columns after the name; the sorted one is marked with '*' */
static void table_head(char *buf, size_t cap, const struct ringctl_top_view *v, int name_w)
{
    char col[5][16];
    static const char *const names[5] = {"DELIV/s", "DEFER/s", "QUEUED", "CONN", NULL};
    static const enum ringctl_top_sort keys[4] = {RINGCTL_TOP_SORT_DELIVERED, RINGCTL_TOP_SORT_DEFERRED,
                                                  RINGCTL_TOP_SORT_QUEUED, RINGCTL_TOP_SORT_CONNECTIONS};
    for (int i = 0; i < 4; i++)
        snprintf(col[i], sizeof(col[i]), "%s%s", names[i], v->sort == keys[i] ? "*" : "");
    char name[48];
    snprintf(name, sizeof(name), "%s%s", head_name(v->by), v->sort == RINGCTL_TOP_SORT_NAME ? "*" : "");
    snprintf(buf, cap, "%-*s %8s %8s %8s %6s %6s %10s %9s  %s", name_w, name, col[0], col[1], col[2], col[3], "INFL",
             "DELIVERED", "DEFERRED", "LAST RESPONSE");
}

static void render_totals(struct out *o, const struct ringctl_top_frame *f)
{
    char d[16], t[16], b[16];
    if (!f->have_summary) {
        emit(o, RINGCTL_TOP_LINE_WARN, "queue summary: %s", f->error[0] ? f->error : "not read yet");
        return;
    }
    if (f->summary_stale)
        emit(o, RINGCTL_TOP_LINE_WARN, "queue summary: %s; the last one shown", f->error);
    ringctl_top_fmt_rate(d, sizeof(d), f->delivered_per_s);
    ringctl_top_fmt_rate(t, sizeof(t), f->transient_per_s);
    ringctl_top_fmt_rate(b, sizeof(b), f->bounced_per_s);
    emit(o, RINGCTL_TOP_LINE_TEXT, "totals: delivered %llu (%s/s)  deferrals %llu (%s/s)  bounced %llu (%s/s)  expired %llu",
         (unsigned long long)f->delivered, d, (unsigned long long)f->transient, t, (unsigned long long)f->bounced, b,
         (unsigned long long)f->expired);
    emit(o, RINGCTL_TOP_LINE_TEXT, "queued %llu: scheduled %llu, ready %llu, in flight %llu",
         (unsigned long long)f->messages, (unsigned long long)f->scheduled, (unsigned long long)f->ready,
         (unsigned long long)f->in_flight);
}

static void render_rows(struct out *o, const struct ringctl_top_frame *f, const struct ringctl_top_view *v,
                        int max_rows)
{
    int name_w = o->width >= 120 ? 32 : 24;
    char head[256];
    table_head(head, sizeof(head), v, name_w);
    emit(o, RINGCTL_TOP_LINE_HEAD, "%s", head);
    size_t *idx = xcalloc(f->n_rows + 1, sizeof(*idx));
    size_t n = ringctl_top_order(f, v, idx);
    size_t shown = max_rows < 0 || (size_t)max_rows >= n ? n : (size_t)max_rows;
    if (shown < n && shown > 0)
        shown--; /* room for the "more" line */
    for (size_t i = 0; i < shown; i++) {
        const struct ringctl_top_row *r = &f->rows[idx[i]];
        char name[RINGCTL_TOP_NAME], d[16], t[16], resp[RINGCTL_TOP_TEXT + 32];
        ringctl_ops_cut(r->name, (size_t)name_w, name, sizeof(name));
        ringctl_top_fmt_rate(d, sizeof(d), r->delivered_per_s);
        ringctl_top_fmt_rate(t, sizeof(t), r->transient_per_s);
        if (r->suspended_ms) {
            char age[16];
            ringctl_ops_age(age, sizeof(age), (long long)r->suspended_ms);
            snprintf(resp, sizeof(resp), "SUSPENDED %s %s", age, r->last_response);
        } else {
            snprintf(resp, sizeof(resp), "%s", r->last_response[0] ? r->last_response : "-");
        }
        emit(o, r->suspended_ms ? RINGCTL_TOP_LINE_WARN : RINGCTL_TOP_LINE_TEXT,
             "%-*s %8s %8s %8llu %6llu %6llu %10llu %9llu  %s", name_w, name, d, t, (unsigned long long)r->queued,
             (unsigned long long)r->connections, (unsigned long long)r->in_flight, (unsigned long long)r->delivered,
             (unsigned long long)r->transient, resp);
    }
    if (shown < n)
        emit(o, RINGCTL_TOP_LINE_TEXT, "... %zu more (/ filters)", n - shown);
    if (n == 0 && f->n_rows)
        emit(o, RINGCTL_TOP_LINE_TEXT, "(no row matches the filter \"%s\")", v->filter);
    else if (n == 0)
        emit(o, RINGCTL_TOP_LINE_TEXT, "(no traffic yet)");
    if (f->rows_total > f->n_rows)
        emit(o, RINGCTL_TOP_LINE_TEXT, "(%zu of %zu rows read: the largest by volume)", f->n_rows, f->rows_total);
    free(idx);
}

static void render_events(struct out *o, const struct ringctl_top_frame *f, const struct ringctl_top_view *v,
                          size_t max)
{
    if (!f->have_tsa) {
        emit(o, RINGCTL_TOP_LINE_HEAD, "TSA EVENTS: not read");
        return;
    }
    emit(o, RINGCTL_TOP_LINE_HEAD, "TSA EVENTS (newest first; %llu in force, %llu responses matched)",
         (unsigned long long)f->tsa_active, (unsigned long long)f->tsa_responses);
    for (size_t i = 0; i < f->n_events && i < max; i++) {
        const struct ringctl_top_event *e = &f->events[i];
        time_t sec = (time_t)(e->start_ms / 1000);
        struct tm tm;
        char when[16] = "?";
        if (gmtime_r(&sec, &tm))
            strftime(when, sizeof(when), "%H:%M:%SZ", &tm);
        bool fresh = e->start_ms >= v->started_ms;
        emit(o, fresh ? RINGCTL_TOP_LINE_NEW : RINGCTL_TOP_LINE_TEXT, "%s %s %s", fresh ? "*" : " ", when, e->text);
    }
    if (f->n_events == 0)
        emit(o, RINGCTL_TOP_LINE_TEXT, "  (none)");
}

static void render_roles(struct out *o, const struct ringctl_top_frame *f)
{
    emit(o, RINGCTL_TOP_LINE_HEAD, "%-14s %8s %-9s %6s %8s", "ROLE", "PID", "STATE", "CPU%", "RSS");
    for (size_t i = 0; i < f->n_roles; i++) {
        const struct ringctl_top_role *r = &f->roles[i];
        char pid[24] = "-", cpu[16] = "n/a", rss[16] = "n/a";
        if (r->pid)
            snprintf(pid, sizeof(pid), "%llu", (unsigned long long)r->pid);
        if (r->visible) {
            if (r->cpu_pct >= 0)
                snprintf(cpu, sizeof(cpu), "%.1f", r->cpu_pct);
            else
                snprintf(cpu, sizeof(cpu), "-");
            ringctl_top_fmt_bytes(rss, sizeof(rss), r->rss_bytes);
        }
        emit(o, RINGCTL_TOP_LINE_TEXT, "%-14s %8s %-9s %6s %8s", r->name, pid, r->state, cpu, rss);
    }
}

static void render_help(struct out *o)
{
    static const char *const lines[] = {
        "keys:",
        "  q        quit",
        "  s        next sort column: delivered/s, deferrals/s, queued, connections, name",
        "  /        filter rows by a part of their name; Enter applies, Esc clears",
        "  Esc      clear the filter",
        "  p        pause (stop refreshing) / resume",
        "  ?        this help / back",
        "columns: DELIV/s and DEFER/s are per second over the last refresh; QUEUED ready on the path (and,",
        "  rolled up by site or provider, scheduled for it); CONN open connections; INFL in flight;",
        "  DELIVERED and DEFERRED since the scheduler started; '*' marks the sort column.",
        "CPU% and RSS are read from /proc when ringctl runs on the node; n/a otherwise.",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        emit(o, RINGCTL_TOP_LINE_TEXT, "%s", lines[i]);
}

void ringctl_top_render(const struct ringctl_top_frame *f, const struct ringctl_top_view *v, int width, int height,
                        ringctl_top_line_fn fn, void *ctx)
{
    struct out o = {.fn = fn, .ctx = ctx, .width = width < 40 ? 40 : width};
    char up[16], iv[16], filt[RINGCTL_TOP_FILTER + 16] = "";
    ringctl_ops_age(up, sizeof(up), (long long)f->uptime_ms);
    snprintf(iv, sizeof(iv), "%.1fs", v->interval_s);
    if (v->filter[0])
        snprintf(filt, sizeof(filt), "  filter: %s", v->filter);
    emit(&o, RINGCTL_TOP_LINE_TITLE, "ringctl top - node %s, up %s | every %s | by %s | sort: %s%s%s",
         f->node_id[0] ? f->node_id : "?", up, iv, v->by, ringctl_top_sort_name(v->sort), filt,
         v->paused ? "  [PAUSED]" : "");
    int used = 1;
    if (!f->reachable) {
        emit(&o, RINGCTL_TOP_LINE_WARN, "node unreachable, retrying every %s: %s", iv, f->error);
        used++;
    }
    if (v->editing) {
        emit(&o, RINGCTL_TOP_LINE_TITLE, "filter: %s_  (Enter applies, Esc clears)", v->edit);
        used++;
    }
    if (v->help) {
        render_help(&o);
        return;
    }
    render_totals(&o, f);
    used += f->have_summary ? 2 + f->summary_stale : 1;
    emit(&o, RINGCTL_TOP_LINE_TEXT, "%s", "");
    used++;
    /* what follows the table: a blank, the events head and its lines, a blank, the roles head and lines,
     * the key line */
    size_t events = f->n_events ? f->n_events : 1;
    int below = 1 + 1 + (int)events + 1 + 1 + (int)f->n_roles + 1;
    int max_rows = -1;
    if (height > 0) {
        max_rows = height - used - 1 - below;
        if (max_rows < 3) {
            /* a small terminal: fewer events first, then the roles go */
            events = events > 2 ? 2 : events;
            below = 1 + 1 + (int)events + 1;
            max_rows = height - used - 1 - below;
        }
        if (f->rows_total > f->n_rows)
            max_rows--; /* the "rows read" line */
        if (max_rows < 1)
            max_rows = 1;
    }
    render_rows(&o, f, v, max_rows);
    emit(&o, RINGCTL_TOP_LINE_TEXT, "%s", "");
    render_events(&o, f, v, events);
    if (height <= 0 || below > 1 + 1 + (int)events + 1) {
        emit(&o, RINGCTL_TOP_LINE_TEXT, "%s", "");
        render_roles(&o, f);
    }
    if (height > 0)
        emit(&o, RINGCTL_TOP_LINE_HEAD, "q quit  s sort  / filter  Esc clear  p pause  ? help");
}

void ringctl_top_frame_fini(struct ringctl_top_frame *f)
{
    free(f->rows);
    f->rows = NULL;
    f->n_rows = 0;
}
