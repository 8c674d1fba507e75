/*
 * ringctl_capacity - `ringctl capacity`: spool, log storage, bandwidth, memory and cores for a traffic
 *
 *   ringctl capacity --volume 8M/day --peak 1M/h --size 50KB [--outage 24h] [--log-days 30]
 *                    [--config FILE] [--data-dir DIR] [--log-dir DIR] [--json]
 *
 * The arithmetic follows KumoMTA's environment guide (docs/operations.md has the formulas and the
 * worked example): spool = (size + 512) x the messages that arrive during an outage of every delivery;
 * logs = bytes per message x messages a day x days kept, with the bytes per message measured from this
 * node's own log segments when it has some (compressed bytes / Reception records), else 2 KB; bandwidth
 * = peak messages per second x size x 8, each way. Memory and cores are ringmail's own estimates, from
 * its measurements in docs/benchmarks.md; each line shows its formula.
 * Exit status: 0 done, 2 usage or a value that does not parse.
 */
#include "tools/ringctl_capacity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "base/mem.h"
#include "tools/ringctl_cfg.h"
#include "tools/ringctl_ops.h"

#define CAP_META_BYTES 512.0          /* per message, beside its body (KumoMTA's guide) */
#define CAP_LOG_DEFAULT_BYTES 2000.0  /* log bytes per message without a measurement (KumoMTA's guide) */
#define CAP_SCHED_BYTES 128.0         /* scheduler memory per queued message: 113 measured, rounded up */
#define CAP_ARENA_SECONDS 30.0        /* bodies of the last 30 s of peak traffic held in the arena */
#define CAP_BASE_MEMORY (512.0 * 1048576.0) /* the roles, RocksDB's caches and the OS */
#define CAP_MSGS_PER_CORE 2000.0      /* messages/s one core carries in and out at peak */
#define CAP_SAMPLE_MAX (256ull << 20) /* compressed log bytes read for the measurement, newest first */

/* number - a plain decimal ("8", "1.5"): no sign, exponent, hex or inf; *end after it */
static bool number(const char *s, double *v, const char **end)
{
    const char *p = s;
    bool digits = false, dot = false;
    while ((*p >= '0' && *p <= '9') || (*p == '.' && !dot)) {
        digits |= *p != '.';
        dot |= *p == '.';
        p++;
    }
    if (!digits || p - s > 30)
        return false;
    char buf[32];
    memcpy(buf, s, (size_t)(p - s));
    buf[p - s] = '\0';
    *v = strtod(buf, NULL);
    *end = p;
    return isfinite(*v);
}

struct unit {
    const char *name;
    double factor;
};

/* match - the unit of units[] that is exactly s; -1 when none */
static int match(const struct unit *units, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(units[i].name, s) == 0)
            return (int)i;
    return -1;
}

static const struct unit count_units[] = {{"", 1}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}};
static const struct unit per_units[] = {{"s", 1},         {"sec", 1},         {"min", 60},      {"m", 60},
                                        {"h", 3600},      {"hour", 3600},     {"hr", 3600},     {"day", 86400},
                                        {"d", 86400}};
static const struct unit size_units[] = {{"", 1},     {"B", 1},          {"KB", 1e3},          {"MB", 1e6},
                                         {"GB", 1e9}, {"KiB", 1024.0},   {"MiB", 1048576.0},   {"GiB", 1073741824.0}};
static const struct unit dur_units[] = {{"s", 1}, {"sec", 1}, {"min", 60}, {"m", 60}, {"h", 3600}, {"d", 86400}};
#define NUNITS(a) (sizeof(a) / sizeof((a)[0]))

int ringctl_capacity_rate(const char *s, double *per_second, char **err)
{
    const char *p, *slash = strchr(s, '/');
    double n;
    int cu, pu;

    *err = NULL;
    if (!slash || !number(s, &n, &p) || p > slash) {
        *err = xasprintf("bad rate \"%s\": want COUNT/PERIOD, e.g. 8M/day, 1M/h, 250/s", s);
        return -EINVAL;
    }
    char mult[8] = "";
    if ((size_t)(slash - p) < sizeof(mult))
        memcpy(mult, p, (size_t)(slash - p));
    if ((size_t)(slash - p) >= sizeof(mult) || (cu = match(count_units, NUNITS(count_units), mult)) < 0) {
        *err = xasprintf("bad rate \"%s\": the count's multiplier is K, M or G (1,000s)", s);
        return -EINVAL;
    }
    if ((pu = match(per_units, NUNITS(per_units), slash + 1)) < 0) {
        *err = xasprintf("bad rate \"%s\": the period is /s, /min, /h or /day", s);
        return -EINVAL;
    }
    *per_second = n * count_units[cu].factor / per_units[pu].factor;
    if (*per_second <= 0) {
        *err = xasprintf("bad rate \"%s\": must be more than 0", s);
        return -EINVAL;
    }
    return 0;
}

int ringctl_capacity_size(const char *s, double *bytes, char **err)
{
    const char *p;
    double n;
    int u;

    *err = NULL;
    if (!number(s, &n, &p) || (u = match(size_units, NUNITS(size_units), p)) < 0 || n * size_units[u].factor < 1) {
        *err = xasprintf("bad size \"%s\": want e.g. 50KB, 50KiB, 2MB, 512B (K, M, G: 1000s; KiB, MiB, GiB: 1024s)", s);
        return -EINVAL;
    }
    *bytes = n * size_units[u].factor;
    return 0;
}

int ringctl_capacity_duration(const char *s, double *seconds, char **err)
{
    const char *p;
    double n;
    int u;

    *err = NULL;
    if (!number(s, &n, &p) || (u = match(dur_units, NUNITS(dur_units), p)) < 0) {
        *err = xasprintf("bad duration \"%s\": want e.g. 24h, 90min, 2d, 30s", s);
        return -EINVAL;
    }
    *seconds = n * dur_units[u].factor;
    return 0;
}

int ringctl_capacity_days(const char *s, double *days, char **err)
{
    const char *end;

    *err = NULL;
    if (!number(s, days, &end) || *end || *days != floor(*days)) {
        *err = xasprintf("bad --log-days \"%s\": want a whole number of days", s);
        return -EINVAL;
    }
    return 0;
}

/* on_line - one record: counted, and a Reception when its "type" says so */
static void on_line(const char *line, size_t len, struct ringctl_capacity_logs *st)
{
    st->records++;
    json_t *rec = json_loadb(line, len, JSON_DISABLE_EOF_CHECK, NULL);
    const char *type = json_string_value(json_object_get(rec, "type"));
    if (type && strcmp(type, "Reception") == 0)
        st->receptions++;
    json_decref(rec);
}

void ringctl_capacity_scan_segment(const void *data, size_t len, struct ringctl_capacity_logs *st)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    size_t cap = 1 << 16, used = 0;
    char *line = xmalloc(cap);
    char out[1 << 15];
    ZSTD_inBuffer in = {data, len, 0};

    st->segments++;
    st->compressed_bytes += len;
    ZSTD_initDStream(ds);
    while (in.pos < in.size) {
        ZSTD_outBuffer ob = {out, sizeof(out), 0};
        size_t rc = ZSTD_decompressStream(ds, &ob, &in);
        if (ZSTD_isError(rc))
            break; /* a corrupt or partial tail: what came before counts */
        for (size_t i = 0; i < ob.pos; i++) {
            if (out[i] == '\n') {
                on_line(line, used, st);
                used = 0;
            } else if (used < cap) {
                line[used++] = out[i]; /* a longer line is cut: it still counts as a record */
            }
        }
        if (rc == 0 && ob.pos == 0 && in.pos == in.size)
            break;
    }
    free(line);
    ZSTD_freeDStream(ds);
}

static int cmp_name_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* measure_logs - the newest segments of dir, up to CAP_SAMPLE_MAX compressed bytes; false without any */
static bool measure_logs(const char *dir, struct ringctl_capacity_logs *st)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    memset(st, 0, sizeof(*st));
    if (!d)
        return false;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || !strstr(e->d_name, ".jsonl.zst"))
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_name_desc);
    for (size_t i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat sb;
        if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
            st->compressed_bytes + (uint64_t)sb.st_size <= CAP_SAMPLE_MAX) {
            char *buf = xmalloc((size_t)sb.st_size);
            ssize_t got = read(fd, buf, (size_t)sb.st_size);
            if (got > 0)
                ringctl_capacity_scan_segment(buf, (size_t)got, st);
            free(buf);
        }
        if (fd >= 0)
            close(fd);
        free(path);
        free(names[i]);
    }
    free(names);
    return st->receptions > 0;
}

/* si - bytes for people, in the guide's decimal units: "404.1 GB" */
static void si(char *buf, size_t len, double v, const char *unit)
{
    static const char *pre[] = {"", "K", "M", "G", "T", "P"};
    size_t i = 0;
    while (v >= 1000 && i < 5) {
        v /= 1000;
        i++;
    }
    snprintf(buf, len, "%.1f %s%s", v, pre[i], unit);
}

static void num(char *buf, size_t len, double v)
{
    ringctl_ops_num(buf, len, (unsigned long long)llround(v));
}

double ringctl_capacity_spool_bytes(double per_second, double size, double outage_seconds)
{
    return (size + CAP_META_BYTES) * per_second * outage_seconds;
}

bool ringctl_capacity_command(const char *name)
{
    return strcmp(name, "capacity") == 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringctl capacity --volume 8M/day --peak 1M/h --size 50KB [--outage 24h] [--log-days 30]\n"
               "                        [--config FILE] [--data-dir DIR] [--log-dir DIR] [--json]\n");
}

int ringctl_capacity_main(int argc, char **argv, const char *data_dir, bool json)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'}, {"peak", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},   {"outage", required_argument, NULL, 'o'},
        {"log-days", required_argument, NULL, 'l'}, {"config", required_argument, NULL, 'c'},
        {"data-dir", required_argument, NULL, 'D'}, {"log-dir", required_argument, NULL, 'L'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *volume_s = NULL, *peak_s = NULL, *size_s = NULL, *outage_s = "24h", *days_s = "30";
    const char *config = NULL, *log_dir = NULL;
    double volume, peak, size, outage, days;
    char *err = NULL;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volume_s = optarg; break;
        case 'p': peak_s = optarg; break;
        case 's': size_s = optarg; break;
        case 'o': outage_s = optarg; break;
        case 'l': days_s = optarg; break;
        case 'c': config = optarg; break;
        case 'D': data_dir = optarg; break;
        case 'L': log_dir = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !volume_s || !size_s) {
        fprintf(stderr, "ringctl capacity: --volume and --size are required\n");
        usage(stderr);
        return 2;
    }
    if (ringctl_capacity_rate(volume_s, &volume, &err) < 0 ||
        (peak_s && ringctl_capacity_rate(peak_s, &peak, &err) < 0) || ringctl_capacity_size(size_s, &size, &err) < 0 ||
        ringctl_capacity_duration(outage_s, &outage, &err) < 0 || ringctl_capacity_days(days_s, &days, &err) < 0) {
        fprintf(stderr, "ringctl capacity: %s\n", err);
        free(err);
        return 2;
    }
    if (!data_dir)
        data_dir = getenv("RINGCTL_DATA_DIR");
    if (!peak_s)
        peak = volume; /* no peak given: the average is the peak */

    /* the node's own logs, when it has some: --log-dir, else the configuration's */
    struct ringctl_capacity_logs ls = {0};
    char *dir = NULL;
    if (log_dir) {
        dir = xstrdup(log_dir);
    } else {
        struct cfg cf;
        const char *used;
        if (ringctl_cfg_load(config, data_dir, &cf, &used, &err) < 0) {
            fprintf(stderr, "ringctl capacity: cannot read the configuration: %s\n", err);
            free(err);
            cfg_fini(&cf);
            return 2;
        }
        dir = ringctl_cfg_dir(&cf, cf.log_dir, "logs");
        cfg_fini(&cf);
    }
    bool measured = measure_logs(dir, &ls);
    double log_per_msg = measured ? (double)ls.compressed_bytes / (double)ls.receptions : CAP_LOG_DEFAULT_BYTES;

    double per_day = volume * 86400, held = volume * outage;
    double spool = ringctl_capacity_spool_bytes(volume, size, outage);
    double log_day = log_per_msg * per_day, log_total = log_day * days;
    double bps = peak * size * 8;
    double mem_sched = CAP_SCHED_BYTES * held, mem_arena = peak * (size + CAP_META_BYTES) * CAP_ARENA_SECONDS;
    double memory = CAP_BASE_MEMORY + mem_sched + mem_arena;
    double cores = fmax(2, ceil(peak / CAP_MSGS_PER_CORE) + 1);

    if (json) {
        json_t *o = json_pack(
            "{s:{s:f,s:f,s:f,s:f,s:f,s:f},s:{s:f,s:f,s:f,s:s},"
            "s:{s:f,s:s,s:o,s:f,s:f,s:I,s:s},s:{s:f,s:s},s:{s:f,s:f,s:f,s:f,s:s},s:{s:I,s:s}}",
            "input", "messages_per_day", per_day, "peak_messages_per_second", peak, "size_bytes", size,
            "outage_seconds", outage, "log_days", days, "messages_held", held,
            "spool", "bytes_per_message", size + CAP_META_BYTES, "messages_held", held, "bytes", spool, "formula",
            "(size + 512) x messages arriving during the outage",
            "logs", "bytes_per_message", log_per_msg, "source", measured ? "measured" : "default",
            "measured", measured ? json_pack("{s:s,s:I,s:I,s:I,s:I}", "dir", dir, "segments", (json_int_t)ls.segments,
                                             "compressed_bytes", (json_int_t)ls.compressed_bytes, "records",
                                             (json_int_t)ls.records, "receptions", (json_int_t)ls.receptions)
                                 : json_null(),
            "bytes_per_day", log_day, "bytes", log_total, "days", (json_int_t)days, "formula",
            "bytes per message x messages per day x days kept",
            "bandwidth", "bits_per_second", bps, "formula", "peak messages/s x size x 8, each way",
            "memory", "bytes", memory, "base_bytes", CAP_BASE_MEMORY, "scheduler_bytes", mem_sched, "arena_bytes",
            mem_arena, "formula", "512 MiB + 128 B x messages held + peak messages/s x (size + 512) x 30 s",
            "cores", "count", (json_int_t)cores, "formula", "max(2, ceil(peak messages/s / 2000) + 1)");
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
        printf("%s\n", text);
        free(text);
        json_decref(o);
        free(dir);
        return 0;
    }
    char a[48], b[48], d[48], e[48], f[48];
    num(a, sizeof(a), per_day);
    num(b, sizeof(b), peak * 3600);
    num(d, sizeof(d), size);
    printf("traffic: %s messages a day (%.1f/s on average), peak %s an hour (%.1f/s), %s bytes each\n\n", a, volume,
           b, peak, d);
    num(a, sizeof(a), size + CAP_META_BYTES);
    num(b, sizeof(b), held);
    num(d, sizeof(d), spool);
    si(e, sizeof(e), spool, "B");
    printf("spool      (size + 512) x messages held = %s x %s (%s of outage at %.1f/s) = %s bytes (%s)\n", a, b,
           outage_s, volume, d, e);
    num(a, sizeof(a), log_per_msg);
    num(b, sizeof(b), per_day);
    si(d, sizeof(d), log_day, "B");
    si(e, sizeof(e), log_total, "B");
    if (measured)
        printf("logs       %s bytes per message (measured in %s: %llu compressed bytes / %llu Reception "
               "records; %.0f bytes per record over %llu records)\n",
               a, dir, (unsigned long long)ls.compressed_bytes, (unsigned long long)ls.receptions,
               (double)ls.compressed_bytes / (double)ls.records, (unsigned long long)ls.records);
    else
        printf("logs       %s bytes per message (default: no log segments with records in %s)\n", a, dir);
    printf("           x %s messages a day = %s a day; x %.0f days kept = %s\n", b, d, days, e);
    si(a, sizeof(a), bps, "bit/s");
    num(b, sizeof(b), size);
    printf("bandwidth  peak %.1f messages/s x %s bytes x 8 = %s in, and as much out\n", peak, b, a);
    si(a, sizeof(a), memory, "B");
    si(b, sizeof(b), mem_sched, "B");
    si(d, sizeof(d), mem_arena, "B");
    si(f, sizeof(f), CAP_BASE_MEMORY, "B");
    printf("memory     %s = %s base + 128 B x messages held (%s, scheduler)\n"
           "           + peak x (size + 512) x 30 s (%s, arena)\n",
           a, f, b, d);
    printf("cores      %.0f = max(2, ceil(peak %.1f/s / 2,000 per core) + 1)\n", cores, peak);
    free(dir);
    return 0;
}
