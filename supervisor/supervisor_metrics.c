/*
 * supervisor_metrics - GET /metrics and GET /metrics.json from one collection (contract in supervisor_metrics.h)
 *
 * Everything read from shared memory is a copy, bounded before use: counters are shown as written
 * (a number is a number), histograms through proto_hist_read() (cumulative, saturating, so a hostile
 * role cannot make the text invalid), the scheduler's pages through their strict decoders. The pids
 * whose /proc/PID/statm is read are the supervisor's own (s->inst[i].pid), never the role table's.
 */
#include "supervisor/supervisor_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "shm/shm_pages.h"
#include "supervisor/supervisor.h"

#define OTHER "other"
#define NO_PROVIDER "none"
#define MAX_TSA_RULES 100

/* ---- the model ------------------------------------------------------------------------------------ */

struct sup_metric_family *supervisor_metrics_family(struct sup_metrics *m, const char *name, enum sup_metric_type type,
                                                    const char *help)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->f = xrealloc(m->f, m->cap * sizeof(*m->f));
    }
    struct sup_metric_family *f = &m->f[m->n++];
    *f = (struct sup_metric_family){.name = name, .help = help, .type = type};
    return f;
}

struct sup_metric_sample *supervisor_metrics_sample(struct sup_metric_family *f, unsigned n, const char *const *names,
                                                    const char *const *values)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 8;
        f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
    }
    struct sup_metric_sample *x = &f->v[f->n++];
    memset(x, 0, sizeof(*x));
    ASSERT(n <= SUP_METRICS_LABELS);
    for (unsigned i = 0; i < n; i++) {
        x->label_names[i] = names[i];
        x->label_values[i] = xstrdup(values[i]);
    }
    x->n_labels = n;
    return x;
}

void supervisor_metrics_fini(struct sup_metrics *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (size_t k = 0; k < m->f[i].n; k++)
            for (unsigned l = 0; l < m->f[i].v[k].n_labels; l++)
                free(m->f[i].v[k].label_values[l]);
        free(m->f[i].v);
        free(m->f[i].owned[0]);
        free(m->f[i].owned[1]);
    }
    free(m->f);
    *m = (struct sup_metrics){0};
}

static int rank_cmp(const void *a, const void *b)
{
    const struct sup_metrics_rank *x = a, *y = b;
    if (x->volume != y->volume)
        return x->volume > y->volume ? -1 : 1;
    return strcmp(x->name, y->name);
}

void supervisor_metrics_rank_sort(struct sup_metrics_rank *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), rank_cmp);
}

const char *supervisor_metrics_label(const struct sup_metrics_rank *v, size_t n, size_t max, const char *name)
{
    for (size_t i = 0; i < n && i < max; i++)
        if (strcmp(v[i].name, name) == 0)
            return name;
    return OTHER;
}

/* rank_add - add volume to name's entry (names borrowed) */
static void rank_add(struct sup_metrics_rank **v, size_t *n, const char *name, uint64_t volume)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].name, name) == 0) {
            (*v)[i].volume += volume;
            return;
        }
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = (struct sup_metrics_rank){name, volume};
}

/* ---- small helpers -------------------------------------------------------------------------------- */

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void gauge1(struct sup_metrics *m, const char *name, const char *help, uint64_t v)
{
    supervisor_metrics_sample(supervisor_metrics_family(m, name, SUP_METRIC_GAUGE, help), 0, NULL, NULL)->value = v;
}

static void counter1(struct sup_metrics *m, const char *name, const char *help, uint64_t v)
{
    supervisor_metrics_sample(supervisor_metrics_family(m, name, SUP_METRIC_COUNTER, help), 0, NULL, NULL)->value = v;
}

/* sample_of - the sample with this one label value, made when absent */
static struct sup_metric_sample *sample_of(struct sup_metric_family *f, const char *label, const char *value)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].label_values[0], value) == 0)
            return &f->v[i];
    return supervisor_metrics_sample(f, 1, &label, &value);
}

/* read_small - a small file's text (statm, cgroup files), NUL-terminated; false when unreadable or empty */
static bool read_small(const char *path, char *b, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, b, cap - 1);
    close(fd);
    if (n <= 0)
        return false;
    b[n] = '\0';
    return true;
}

/* rss_of - resident bytes of a pid the supervisor forked: the second number of /proc/PID/statm */
static bool rss_of(pid_t pid, uint64_t *out)
{
    char path[64], b[256];
    unsigned long long size, resident;
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    if (!read_small(path, b, sizeof(b)) || sscanf(b, "%llu %llu", &size, &resident) != 2)
        return false;
    long page = sysconf(_SC_PAGESIZE);
    *out = (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
    return true;
}

/* ---- the role table ----------------------------------------------------------------------------- */

static const char *const inst_labels[2] = {"role", "index"};

static struct sup_metric_sample *inst_sample(struct supervisor *s, struct sup_metric_family *f, unsigned i)
{
    char idx[16];
    snprintf(idx, sizeof(idx), "%u", s->inst[i].index);
    const char *vals[2] = {proto_node_role_name(s->inst[i].role), idx};
    return supervisor_metrics_sample(f, 2, inst_labels, vals);
}

static void collect_roles(struct supervisor *s, struct sup_metrics *m)
{
    unsigned n = s->seg.n_instances;
    struct sup_metric_family *f =
        supervisor_metrics_family(m, "ringmail_role_up", SUP_METRIC_GAUGE, "1 when the role instance is ready.");
    for (unsigned i = 0; i < n; i++)
        inst_sample(s, f, i)->value = atomic_load(&s->seg.inst[i].state) == PROTO_NODE_INST_READY;
    f = supervisor_metrics_family(m, "ringmail_role_restarts_total", SUP_METRIC_COUNTER,
                                  "Restarts of the role instance since the node started.");
    for (unsigned i = 0; i < n; i++)
        inst_sample(s, f, i)->value = atomic_load(&s->seg.inst[i].restarts);
    for (unsigned k = 0; k < PROTO_NODE_CTR__MAX; k++) {
        const char *name = proto_node_counter_name((enum proto_node_counter)k);
        bool gauge = proto_node_counter_is_gauge((enum proto_node_counter)k);
        char *fname = xasprintf("ringmail_%s%s", name, gauge ? "" : "_total");
        char *help = xasprintf("Per role instance: %s.", name);
        f = supervisor_metrics_family(m, fname, gauge ? SUP_METRIC_GAUGE : SUP_METRIC_COUNTER, help);
        f->owned[0] = fname;
        f->owned[1] = help;
        for (unsigned i = 0; i < n; i++)
            inst_sample(s, f, i)->value = atomic_load_explicit(&s->seg.inst[i].counters[k], memory_order_relaxed);
    }
    f = supervisor_metrics_family(m, "ringmail_role_rss_bytes", SUP_METRIC_GAUGE,
                                  "Resident memory of the role instance's process (/proc/PID/statm).");
    for (unsigned i = 0; i < n; i++) {
        pid_t pid = __atomic_load_n(&s->inst[i].pid, __ATOMIC_RELAXED); /* the supervisor's own copy */
        uint64_t rss;
        if (pid > 0 && rss_of(pid, &rss))
            inst_sample(s, f, i)->value = rss;
    }

    /* the latency histograms: time-to-250 per ingress worker, fsync latency of the spool */
    static const struct {
        enum proto_node_hist h;
        enum proto_node_role role;
        const char *name, *help;
    } hists[] = {
        {PROTO_NODE_HIST_TIME_TO_250, PROTO_NODE_ROLE_INGRESS, "ringmail_time_to_250_seconds",
         "Ingress: from the end of DATA to the 250 (the spool's durable commit), per worker."},
        {PROTO_NODE_HIST_FSYNC, PROTO_NODE_ROLE_SPOOL, "ringmail_spool_fsync_seconds",
         "Spool: one commit's write batch with its WAL fsync."},
    };
    for (size_t h = 0; h < sizeof(hists) / sizeof(hists[0]); h++) {
        f = supervisor_metrics_family(m, hists[h].name, SUP_METRIC_HISTOGRAM, hists[h].help);
        f->scale = PROTO_HIST_FAST;
        for (unsigned i = 0; i < n; i++)
            if (s->inst[i].role == hists[h].role)
                proto_hist_read(&s->seg.inst[i].hist[hists[h].h], &inst_sample(s, f, i)->hist);
    }
}

/* ---- SMTP listeners: summed over the ingress workers --------------------------------------------- */

static void collect_listeners(struct supervisor *s, struct sup_metrics *m)
{
    /* the listener names and count are the supervisor's own configuration, never the slot's */
    size_t nl = s->cfg.n_listeners < PROTO_NODE_MAX_LISTENERS ? s->cfg.n_listeners : PROTO_NODE_MAX_LISTENERS;
    static const struct {
        const char *name, *help;
        enum sup_metric_type type;
        size_t off;
    } f[] = {
        {"ringmail_listener_connections_total", "SMTP connections accepted on the listener (refused ones included).",
         SUP_METRIC_COUNTER, offsetof(struct proto_node_listener, connections)},
        {"ringmail_listener_sessions", "SMTP sessions open on the listener.", SUP_METRIC_GAUGE,
         offsetof(struct proto_node_listener, sessions)},
        {"ringmail_listener_messages_accepted_total", "Messages answered 250 on the listener.", SUP_METRIC_COUNTER,
         offsetof(struct proto_node_listener, accepted)},
    };
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        struct sup_metric_family *fam = supervisor_metrics_family(m, f[k].name, f[k].type, f[k].help);
        for (size_t l = 0; l < nl; l++) {
            uint64_t sum = 0;
            for (unsigned i = 0; i < s->seg.n_instances; i++)
                if (s->inst[i].role == PROTO_NODE_ROLE_INGRESS)
                    sum = sat_add(sum, atomic_load_explicit(
                                           (_Atomic uint64_t *)((char *)&s->seg.inst[i].listeners[l] + f[k].off),
                                           memory_order_relaxed));
            sample_of(fam, "listener", s->cfg.listeners[l].name)->value = sum;
        }
    }
    struct sup_metric_family *fam = supervisor_metrics_family(
        m, "ringmail_listener_rejections_total", SUP_METRIC_COUNTER,
        "4xx and 5xx replies the SMTP server sent on the listener, by reply code (4xx, 5xx: codes not listed).");
    static const char *const ln[2] = {"listener", "reason"};
    for (size_t l = 0; l < nl; l++)
        for (unsigned r = 0; r < PROTO_NODE_REJECT__MAX; r++) {
            uint64_t sum = 0;
            for (unsigned i = 0; i < s->seg.n_instances; i++)
                if (s->inst[i].role == PROTO_NODE_ROLE_INGRESS)
                    sum = sat_add(sum, atomic_load_explicit(&s->seg.inst[i].listeners[l].rejected[r],
                                                            memory_order_relaxed));
            const char *vals[2] = {s->cfg.listeners[l].name, proto_node_reject_name((enum proto_node_reject)r)};
            supervisor_metrics_sample(fam, 2, ln, vals)->value = sum;
        }
}

/* ---- memory, disk ----------------------------------------------------------------------------- */

static void collect_host(struct supervisor *s, struct sup_metrics *m)
{
    struct shm_arena_stats as;
    shm_arena_stats(s->seg.arena, &as);
    gauge1(m, "ringmail_arena_blocks_used", "Body arena blocks in use.", as.blocks_used);
    gauge1(m, "ringmail_arena_blocks", "Body arena blocks in all.", as.blocks_total);
    gauge1(m, "ringmail_arena_used_bytes", "Body arena bytes in use.", as.blocks_used * (uint64_t)SHM_ARENA_BLOCK);
    gauge1(m, "ringmail_shm_bytes", "Size of the shared memory segment.", s->seg.pages.size);

    long avail_kb = shm_pages_meminfo("MemAvailable");
    uint64_t avail = avail_kb >= 0 ? (uint64_t)avail_kb * 1024u : 0, limit = 0, usage = 0, headroom = avail;
    if (avail_kb >= 0)
        gauge1(m, "ringmail_memory_available_bytes", "MemAvailable of the host (/proc/meminfo).", avail);
    /* read once a second by supervisor_mem_tick (cgroup v1 or v2), not again per scrape */
    limit = atomic_load(&s->mem.cg_limit);
    usage = atomic_load(&s->mem.cg_usage);
    if (limit) {
        gauge1(m, "memory_limit", "The memory limit of the node's cgroup (memory.max), in bytes.", limit);
        gauge1(m, "ringmail_cgroup_memory_usage_bytes", "The memory use of the node's cgroup (memory.current).",
               usage);
        uint64_t left = limit > usage ? limit - usage : 0;
        if (avail_kb < 0 || left < headroom)
            headroom = left;
    }
    if (avail_kb >= 0 || limit)
        gauge1(m, "ringmail_memory_headroom_bytes",
               "Memory the node can still take: MemAvailable, or what the cgroup limit leaves when that is less.",
               headroom);

    /* the headroom the node acts on (supervisor_mem.c: cgroup v1 or v2, or RAM; [supervisor] memory_limit) */
    gauge1(m, "ringmail_memory_limit_bytes", "The node's memory limit ([supervisor] memory_limit, cgroup or RAM).",
           atomic_load(&s->mem.limit));
    gauge1(m, "ringmail_memory_used_bytes",
           "The node's working set (cgroup usage less inactive file pages, or RAM in use).", atomic_load(&s->mem.used));
    gauge1(m, "ringmail_memory_pressure", "0 ok, 1 low (under memory_soft_reserve), 2 exhausted (421/451).",
           atomic_load(&s->mem.level));
    counter1(m, "ringmail_memory_exhausted_total", "Times the memory headroom ran out.",
             atomic_load(&s->mem.exhausted_total));

    char *dir = s->cfg.spool_dir && s->cfg.spool_dir[0] ? xstrdup(s->cfg.spool_dir)
                                                         : xasprintf("%s/spool", s->cfg.data_dir);
    struct statvfs sv;
    if (statvfs(dir, &sv) == 0) {
        const char *lab = "name", *val = "spool";
        struct sup_metric_family *f = supervisor_metrics_family(
            m, "disk_free_bytes", SUP_METRIC_GAUGE, "Bytes free for unprivileged use on the spool's file system.");
        supervisor_metrics_sample(f, 1, &lab, &val)->value = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    }
    free(dir);
}

/* ---- the scheduler's pages: per ready queue, provider, source and site ---------------------------- */

enum path_value {
    PV_DELIVERED = 0,
    PV_TRANSIENT,
    PV_BOUNCED,
    PV_CONNECTIONS,
    PV_CONN_ATTEMPTS,
    PV_CONN_FAILURES,
    PV_READY,
    PV_IN_FLIGHT,
    PV_THROTTLE_WAITS,
    PV_SUSPENDED,
    PV__MAX,
};

enum path_dim {
    DIM_SERVICE = 0,
    DIM_PROVIDER,
    DIM_SOURCE,
    DIM_SITE,
    DIM__MAX,
};

/* the family name of each value per dimension: KumoMTA's where the meaning matches */
static const struct {
    enum sup_metric_type type;
    const char *help;
    const char *name[DIM__MAX];
} path_metrics[PV__MAX] = {
    [PV_DELIVERED] = {SUP_METRIC_COUNTER, "Messages delivered (the receiver answered 2xx to the data).",
                      {"total_messages_delivered", "total_messages_delivered_by_provider",
                       "ringmail_messages_delivered_by_source_total", "ringmail_messages_delivered_by_site_total"}},
    [PV_TRANSIENT] = {SUP_METRIC_COUNTER, "Delivery attempts that failed transiently (to be retried).",
                      {"total_messages_transfail", "total_messages_transfail_by_provider",
                       "ringmail_messages_transfail_by_source_total", "ringmail_messages_transfail_by_site_total"}},
    [PV_BOUNCED] = {SUP_METRIC_COUNTER, "Delivery attempts that failed permanently (bounced).",
                    {"total_messages_fail", "total_messages_fail_by_provider", "ringmail_messages_fail_by_source_total",
                     "ringmail_messages_fail_by_site_total"}},
    [PV_CONNECTIONS] = {SUP_METRIC_GAUGE, "Outbound connections open.",
                        {"connection_count", "connection_count_by_provider", "ringmail_connections_by_source",
                         "ringmail_connections_by_site"}},
    [PV_CONN_ATTEMPTS] = {SUP_METRIC_COUNTER, "Outbound connections attempted (leases opened).",
                          {"ringmail_connection_attempts_total", "ringmail_connection_attempts_by_provider_total",
                           "ringmail_connection_attempts_by_source_total",
                           "ringmail_connection_attempts_by_site_total"}},
    [PV_CONN_FAILURES] = {SUP_METRIC_COUNTER, "Outbound connections that ended on an error.",
                          {"ringmail_connection_failures_total", "ringmail_connection_failures_by_provider_total",
                           "ringmail_connection_failures_by_source_total",
                           "ringmail_connection_failures_by_site_total"}},
    [PV_READY] = {SUP_METRIC_GAUGE, "Messages in the ready queue(s).",
                  {"ready_count", "ringmail_ready_by_provider", "ringmail_ready_by_source", "ringmail_ready_by_site"}},
    [PV_IN_FLIGHT] = {SUP_METRIC_GAUGE, "Messages being delivered.",
                      {"ringmail_in_flight", "ringmail_in_flight_by_provider", "ringmail_in_flight_by_source",
                       "ringmail_in_flight_by_site"}},
    [PV_THROTTLE_WAITS] = {SUP_METRIC_COUNTER, "Times a ready queue waited for a rate throttle or a named limit.",
                           {"ringmail_throttle_waits_total", "ringmail_throttle_waits_by_provider_total",
                            "ringmail_throttle_waits_by_source_total", "ringmail_throttle_waits_by_site_total"}},
    [PV_SUSPENDED] = {SUP_METRIC_GAUGE, "Ready queues suspended (by an operator or automation).",
                      {"ringmail_ready_queue_suspended", "ringmail_ready_queues_suspended_by_provider",
                       "ringmail_ready_queues_suspended_by_source", "ringmail_ready_queues_suspended_by_site"}},
};
static const char *const dim_label[DIM__MAX] = {"service", "provider", "source", "site"};

static uint64_t path_value(const struct proto_status_path *p, enum path_value v)
{
    switch (v) {
    case PV_DELIVERED:
        return p->delivered;
    case PV_TRANSIENT:
        return p->transient;
    case PV_BOUNCED:
        return p->bounced;
    case PV_CONNECTIONS:
        return p->connections;
    case PV_CONN_ATTEMPTS:
        return p->connection_attempts;
    case PV_CONN_FAILURES:
        return p->connection_failures;
    case PV_READY:
        return p->ready;
    case PV_IN_FLIGHT:
        return p->in_flight;
    case PV_THROTTLE_WAITS:
        return p->throttle_waits + p->limit_waits;
    case PV_SUSPENDED:
        return p->suspended_ms > 0;
    default:
        return 0;
    }
}

static const char *provider_name(const struct proto_status_path *p)
{
    return p->provider[0] ? p->provider : NO_PROVIDER;
}

static void collect_paths(struct supervisor *s, struct sup_metrics *m, const struct proto_status_queues *q)
{
    struct sup_metrics_rank *ranks[DIM__MAX] = {0};
    size_t nr[DIM__MAX] = {0}, max[DIM__MAX] = {0, s->cfg.metrics_max_providers, s->cfg.metrics_max_sources,
                                                s->cfg.metrics_max_sites};
    /* the listed paths, then the rest (paths past the page's cut and paths freed, site "other") */
    size_t n_all = q->n_paths + q->n_rest;
#define PATH_AT(i) ((i) < q->n_paths ? &q->paths[(i)] : &q->rest[(i) - q->n_paths])
    for (size_t i = 0; i < n_all; i++) {
        const struct proto_status_path *p = PATH_AT(i);
        uint64_t vol = sat_add(sat_add(p->delivered, p->transient), sat_add(p->bounced, p->ready));
        rank_add(&ranks[DIM_PROVIDER], &nr[DIM_PROVIDER], provider_name(p), vol);
        rank_add(&ranks[DIM_SOURCE], &nr[DIM_SOURCE], p->source, vol);
        rank_add(&ranks[DIM_SITE], &nr[DIM_SITE], p->site, vol);
    }
    for (unsigned d = DIM_PROVIDER; d < DIM__MAX; d++)
        supervisor_metrics_rank_sort(ranks[d], nr[d]);

    /* indices, not pointers: adding a family may move the array */
    size_t fam[PV__MAX][DIM__MAX];
    for (unsigned v = 0; v < PV__MAX; v++)
        for (unsigned d = 0; d < DIM__MAX; d++) {
            supervisor_metrics_family(m, path_metrics[v].name[d], path_metrics[v].type, path_metrics[v].help);
            fam[v][d] = m->n - 1;
        }
    struct sup_metric_family *lat = supervisor_metrics_family(
        m, "ringmail_injection_to_delivery_seconds", SUP_METRIC_HISTOGRAM,
        "From reception (the 250 to the injector) to delivery, per provider.");
    lat->scale = PROTO_HIST_SLOW;

    for (size_t i = 0; i < n_all; i++) {
        const struct proto_status_path *p = PATH_AT(i);
        const char *lab[DIM__MAX];
        lab[DIM_PROVIDER] = supervisor_metrics_label(ranks[DIM_PROVIDER], nr[DIM_PROVIDER], max[DIM_PROVIDER], provider_name(p));
        lab[DIM_SOURCE] = supervisor_metrics_label(ranks[DIM_SOURCE], nr[DIM_SOURCE], max[DIM_SOURCE], p->source);
        lab[DIM_SITE] = supervisor_metrics_label(ranks[DIM_SITE], nr[DIM_SITE], max[DIM_SITE], p->site);
        char *service = xasprintf("smtp_client:%s->%s", lab[DIM_SOURCE], lab[DIM_SITE]);
        lab[DIM_SERVICE] = service;
        for (unsigned v = 0; v < PV__MAX; v++)
            for (unsigned d = 0; d < DIM__MAX; d++) {
                struct sup_metric_sample *x = sample_of(&m->f[fam[v][d]], dim_label[d], lab[d]);
                x->value = sat_add(x->value, path_value(p, (enum path_value)v));
            }
        struct proto_hist_snap h;
        proto_hist_accumulate(p->delivery_latency, PROTO_HIST_BUCKETS,
                              p->delivery_latency_sum_ms > UINT64_MAX / 1000u ? UINT64_MAX
                                                                              : p->delivery_latency_sum_ms * 1000u,
                              &h);
        proto_hist_merge(&sample_of(lat, "provider", lab[DIM_PROVIDER])->hist, &h);
        free(service);
    }
    for (unsigned d = 0; d < DIM__MAX; d++)
        free(ranks[d]);
#undef PATH_AT
}

/* collect_queues - scheduled_count per scheduled queue: the largest max_sites by name, the rest in "other" */
static void collect_queues(struct supervisor *s, struct sup_metrics *m, const struct proto_status_queues *q)
{
    struct sup_metric_family *f = supervisor_metrics_family(m, "scheduled_count", SUP_METRIC_GAUGE,
                                                            "Messages in the scheduled queue (waiting for a retry time).");
    uint64_t listed = 0;
    size_t keep = s->cfg.metrics_max_sites; /* the page lists the queues largest first */
    for (size_t i = 0; i < q->n_queues; i++) {
        const char *name = i < keep ? q->queues[i].name : OTHER;
        struct sup_metric_sample *x = sample_of(f, "queue", name);
        x->value = sat_add(x->value, q->queues[i].scheduled);
        listed = sat_add(listed, q->queues[i].scheduled);
    }
    if (q->totals.scheduled > listed) /* queues the page did not list */
        sample_of(f, "queue", OTHER)->value += q->totals.scheduled - listed;

    gauge1(m, "ringmail_scheduler_messages", "Messages the scheduler holds (queued, not yet done).", q->totals.messages);
    gauge1(m, "ringmail_scheduler_scheduled", "Messages waiting for their retry time.", q->totals.scheduled);
    gauge1(m, "ringmail_scheduler_resolving", "Messages waiting for DNS (MX resolution).", q->totals.resolving);
    gauge1(m, "ringmail_scheduler_due", "Messages due: in a ready queue.", q->totals.ready);
    gauge1(m, "ringmail_scheduler_in_flight", "Messages being delivered.", q->totals.in_flight);
    uint64_t suspended = 0;
    for (size_t i = 0; i < q->n_paths; i++)
        suspended += q->paths[i].suspended_ms > 0;
    gauge1(m, "ringmail_scheduler_suspended_paths", "Ready queues suspended now.", suspended);
    gauge1(m, "ringmail_scheduler_queues", "Scheduled queues.", q->totals.queues);
    gauge1(m, "ringmail_scheduler_sites", "Sites (MX rollups).", q->totals.sites);
    gauge1(m, "ringmail_scheduler_paths", "Egress paths (ready queues).", q->totals.paths);
    counter1(m, "ringmail_scheduler_added_total", "Messages the scheduler was given since it started.",
             q->since_start.added);
    counter1(m, "ringmail_scheduler_expired_total", "Messages expired since the scheduler started.",
             q->since_start.expired);
}

static void collect_tsa(struct supervisor *s, struct sup_metrics *m, const struct proto_status_tsa *t)
{
    counter1(m, "ringmail_tsa_responses_total", "Responses the automation rules were matched against.",
             t->responses);
    struct sup_metric_family *f = supervisor_metrics_family(m, "ringmail_tsa_active_effects", SUP_METRIC_GAUGE,
                                                            "Automation effects in force, by action.");
    for (size_t i = 0; i < t->n_active; i++)
        sample_of(f, "action", t->active[i].action)->value++;

    /* firings per rule since the scheduler started: the largest MAX_TSA_RULES keep their own label */
    struct sup_metrics_rank *r = xcalloc(t->n_rules ? t->n_rules : 1, sizeof(*r));
    for (size_t i = 0; i < t->n_rules; i++)
        r[i] = (struct sup_metrics_rank){t->rules[i].rule, t->rules[i].firings};
    supervisor_metrics_rank_sort(r, t->n_rules);
    f = supervisor_metrics_family(m, "ringmail_tsa_firings_total", SUP_METRIC_COUNTER,
                                  "Automation firings per rule and action (FILE:LINE ACTION) since the scheduler started.");
    for (size_t i = 0; i < t->n_rules; i++) {
        struct sup_metric_sample *x =
            sample_of(f, "rule", supervisor_metrics_label(r, t->n_rules, MAX_TSA_RULES, t->rules[i].rule));
        x->value = sat_add(x->value, t->rules[i].firings);
    }
    free(r);
    (void)s;
}

static void collect_scheduler(struct supervisor *s, struct sup_metrics *m)
{
    size_t n = 0;
    uint64_t at = 0;
    char *why = NULL;
    char *doc = shm_segment_status_read(&s->seg, &n, &at);
    struct proto_status_queues q;
    if (doc && proto_status_queues_decode(doc, n, false, &q, &why) == 0) {
        collect_paths(s, m, &q);
        collect_queues(s, m, &q);
        uint64_t now = clock_real_ns();
        gauge1(m, "ringmail_scheduler_page_age_seconds", "Seconds since the scheduler published its queues page.",
               now > at ? (now - at) / 1000000000u : 0);
        proto_status_queues_fini(&q);
    } else if (doc) {
        log_warn("metrics: the scheduler's status page breaks its schema: %s", why);
    }
    free(why);
    why = NULL;
    free(doc);
    doc = shm_segment_page_read(&s->seg, PROTO_NODE_STATUS_TSA, &n, &at);
    struct proto_status_tsa t;
    if (doc && proto_status_tsa_decode(doc, n, false, &t, &why) == 0) {
        collect_tsa(s, m, &t);
        proto_status_tsa_fini(&t);
    } else if (doc) {
        log_warn("metrics: the scheduler's TSA page breaks its schema: %s", why);
    }
    free(why);
    free(doc);
}

void supervisor_metrics_collect(struct supervisor *s, struct sup_metrics *m)
{
    *m = (struct sup_metrics){0};
    collect_roles(s, m);
    collect_listeners(s, m);
    collect_host(s, m);
    collect_scheduler(s, m);
    supervisor_trace_metrics(m);
}

/* ---- rendering ---------------------------------------------------------------------------------- */

void supervisor_metrics_escape(struct buf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            buf_puts(out, "\\\\");
        else if (*v == '"')
            buf_puts(out, "\\\"");
        else if (*v == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *v);
    }
}

static const char *type_name(enum sup_metric_type t)
{
    return t == SUP_METRIC_COUNTER ? "counter" : t == SUP_METRIC_GAUGE ? "gauge" : "histogram";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/*
 * text_type - the TYPE line's word. KumoMTA's names (total_messages_delivered, a counter without
 * _total; connection_count, a gauge ending in _count) break promtool's lint rules when declared with
 * their type, so such a family is declared untyped: PromQL and dashboards do not care, and
 * `promtool check metrics` stays clean. /metrics.json gives the real type.
 */
static const char *text_type(const struct sup_metric_family *f)
{
    if ((f->type == SUP_METRIC_COUNTER && !ends_with(f->name, "_total")) ||
        (f->type == SUP_METRIC_GAUGE && ends_with(f->name, "_count")))
        return "untyped";
    return type_name(f->type);
}

/* labels - {a="x",b="y"} with an extra le="..." when given; nothing when there are none */
static void labels(struct buf *out, const struct sup_metric_sample *x, const char *le)
{
    if (x->n_labels == 0 && !le)
        return;
    buf_putc(out, '{');
    for (unsigned l = 0; l < x->n_labels; l++) {
        buf_printf(out, "%s%s=\"", l ? "," : "", x->label_names[l]);
        supervisor_metrics_escape(out, x->label_values[l]);
        buf_putc(out, '"');
    }
    if (le)
        buf_printf(out, "%sle=\"%s\"", x->n_labels ? "," : "", le);
    buf_putc(out, '}');
}

/* seconds - microseconds as a decimal number of seconds, exact */
static void seconds(char *b, size_t cap, uint64_t us)
{
    snprintf(b, cap, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

char *supervisor_metrics_text(const struct sup_metrics *m)
{
    struct buf out = {0};
    for (size_t i = 0; i < m->n; i++) {
        const struct sup_metric_family *f = &m->f[i];
        buf_printf(&out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, text_type(f));
        for (size_t k = 0; k < f->n; k++) {
            const struct sup_metric_sample *x = &f->v[k];
            if (f->type != SUP_METRIC_HISTOGRAM) {
                buf_puts(&out, f->name);
                labels(&out, x, NULL);
                buf_printf(&out, " %" PRIu64 "\n", x->value);
                continue;
            }
            const uint64_t *b = proto_hist_bounds(f->scale);
            char le[40];
            for (unsigned j = 0; j < PROTO_HIST_BUCKETS; j++) {
                if (j < PROTO_HIST_BOUNDS)
                    seconds(le, sizeof(le), b[j]);
                else
                    snprintf(le, sizeof(le), "+Inf");
                buf_printf(&out, "%s_bucket", f->name);
                labels(&out, x, le);
                buf_printf(&out, " %" PRIu64 "\n", x->hist.le[j]);
            }
            seconds(le, sizeof(le), x->hist.sum_us);
            buf_printf(&out, "%s_sum", f->name);
            labels(&out, x, NULL);
            buf_printf(&out, " %s\n%s_count", le, f->name);
            labels(&out, x, NULL);
            buf_printf(&out, " %" PRIu64 "\n", x->hist.le[PROTO_HIST_BOUNDS]);
        }
    }
    buf_cstr(&out);
    return buf_take(&out);
}

char *supervisor_metrics_json(const struct sup_metrics *m)
{
    json_t *root = json_object();
    for (size_t i = 0; i < m->n; i++) {
        const struct sup_metric_family *f = &m->f[i];
        json_t *samples = json_array();
        for (size_t k = 0; k < f->n; k++) {
            const struct sup_metric_sample *x = &f->v[k];
            json_t *lab = json_object();
            for (unsigned l = 0; l < x->n_labels; l++)
                json_object_set_new(lab, x->label_names[l], json_string(x->label_values[l]));
            json_t *e = json_pack("{s:o}", "labels", lab);
            if (f->type != SUP_METRIC_HISTOGRAM) {
                json_object_set_new(e, "value", json_integer((json_int_t)(x->value > INT64_MAX ? INT64_MAX : x->value)));
            } else {
                const uint64_t *b = proto_hist_bounds(f->scale);
                json_t *buckets = json_array();
                for (unsigned j = 0; j < PROTO_HIST_BUCKETS; j++) {
                    json_t *le = j < PROTO_HIST_BOUNDS ? json_real((double)b[j] / 1e6) : json_string("+Inf");
                    uint64_t c = x->hist.le[j];
                    json_array_append_new(buckets, json_pack("{s:o,s:I}", "le", le, "count",
                                                             (json_int_t)(c > INT64_MAX ? INT64_MAX : c)));
                }
                uint64_t c = x->hist.le[PROTO_HIST_BOUNDS];
                json_object_set_new(e, "buckets", buckets);
                json_object_set_new(e, "count", json_integer((json_int_t)(c > INT64_MAX ? INT64_MAX : c)));
                json_object_set_new(e, "sum", json_real((double)x->hist.sum_us / 1e6));
            }
            json_array_append_new(samples, e);
        }
        json_object_set_new(root, f->name,
                            json_pack("{s:s,s:s,s:o}", "help", f->help, "type", type_name(f->type), "samples", samples));
    }
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}
