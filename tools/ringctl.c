/*
 * ringctl - the operator's command line client of a node's admin HTTP API
 *
 *   ringctl [--endpoint HOST:PORT] [--json] status
 *   ringctl [--endpoint HOST:PORT] restart ROLE[/INDEX]
 *   ringctl [--endpoint HOST:PORT] reload
 *   ringctl [--endpoint HOST:PORT] metrics
 *   ringctl doctor [--apply] ... (tools/ringctl_doctor.c), ringctl capacity ... (tools/ringctl_capacity.c)
 *   ringctl validate-shaping FILE... / resolve-shaping ... (tools/ringctl_shaping.c)
 *   ringctl queue-summary / suspend / bounce / inspect-* ... (tools/ringctl_ops.c)
 *   ringctl tail-log [--follow] [--type T] [--domain D] [--queue Q] [--limit N] [--json] (tools/ringctl_logs.c)
 *   ringctl inspect-message ID [--body], spool-compact ... (tools/ringctl_inspect.c)
 *   ringctl top [--interval S] [--by provider|site|source|path] [--once [--json]] (tools/ringctl_top.c)
 *
 * Exit status: 0 done, 1 the node refused or failed the request, 2 usage, 3 the node cannot be
 * reached. HTTP/1.0 over TCP or the node's Unix socket, with the admin token when one is found
 * (tools/ringctl_http.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "common/proto_status.h"
#include "tools/ringctl_capacity.h"
#include "tools/ringctl_doctor.h"
#include "tools/ringctl_http.h"
#include "tools/ringctl_logs.h"
#include "tools/ringctl_inspect.h"
#include "tools/ringctl_supp.h"
#include "tools/ringctl_ops.h"
#include "tools/ringctl_trace.h"
#include "tools/ringctl_shaping.h"
#include "tools/ringctl_top.h"
#include "tools/ringctl_tsa.h"
#include "tools/ringctl_warmup.h"

struct http_resp {
    int status;
    char *body;
    size_t body_len;
};

static int http_call(const char *endpoint, const char *method, const char *path, struct http_resp *out)
{
    memset(out, 0, sizeof(*out));
    return ringctl_http_call(endpoint, method, path, &out->status, &out->body, &out->body_len);
}

/* fmt_ms - a duration for people; ms < 0 (null or absent in the document) is "-" */
static void fmt_ms(char *buf, size_t len, int64_t ms)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%lldms", (long long)ms);
    else if (ms < 60000)
        snprintf(buf, len, "%lld.%llds", (long long)ms / 1000, ((long long)ms % 1000) / 100);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm%02llds", (long long)ms / 60000, ((long long)ms / 1000) % 60);
    else
        snprintf(buf, len, "%lldh%02lldm", (long long)ms / 3600000, ((long long)ms / 60000) % 60);
}

static int print_status(const struct proto_status_node *n)
{
    char up[32], hb[32], rtt[32], name[32], upn[32];
    unsigned not_ready = 0;

    fmt_ms(upn, sizeof(upn), (int64_t)n->uptime_ms);
    printf("node %s, up %s%s\n", n->node_id, upn, n->stopping ? ", STOPPING" : "");
    printf("config %s, data %s\n", n->config, n->data_dir);
    printf("shared memory %llu MiB on %s pages, %llu rings of %llu slots, arena %llu/%llu blocks of %llu KiB "
           "in use\n",
           (unsigned long long)n->shm.bytes >> 20, n->shm.page_source_name, (unsigned long long)n->shm.rings,
           (unsigned long long)n->shm.ring_slots, (unsigned long long)n->shm.arena.blocks_used,
           (unsigned long long)n->shm.arena.blocks_total, (unsigned long long)n->shm.arena.block_bytes >> 10);
    if (n->reload.generation > 0 || n->reload.last_detail)
        printf("reload generation %llu: %s\n", (unsigned long long)n->reload.generation,
               n->reload.last_detail ? n->reload.last_detail : "-");
    printf("\n%-14s %-8s %-9s %-5s %-9s %-9s %-10s %-9s %s\n", "ROLE", "PID", "STATE", "GEN", "UPTIME", "RESTARTS",
           "HEARTBEAT", "RING-RTT", "LAST EXIT");
    for (size_t i = 0; i < n->n_roles; i++) {
        const struct proto_status_role *r = &n->roles[i];
        const char *role = proto_node_role_name(r->role), *state = proto_node_inst_state_name(r->state);
        snprintf(name, sizeof(name), "%s[%llu]", role, (unsigned long long)r->index);
        fmt_ms(up, sizeof(up), r->uptime_ms);
        fmt_ms(hb, sizeof(hb), r->heartbeat_age_ms);
        if (r->ring_rtt_us)
            snprintf(rtt, sizeof(rtt), "%lluus", (unsigned long long)r->ring_rtt_us);
        else
            snprintf(rtt, sizeof(rtt), "-");
        char pid[24];
        if (r->pid > 0)
            snprintf(pid, sizeof(pid), "%llu", (unsigned long long)r->pid);
        else
            snprintf(pid, sizeof(pid), "-");
        char last[96];
        if (r->last_exit) {
            char ago[32];
            fmt_ms(ago, sizeof(ago), r->last_exit_ago_ms);
            snprintf(last, sizeof(last), "%s, %s ago", r->last_exit, ago);
        } else {
            snprintf(last, sizeof(last), "-");
        }
        printf("%-14s %-8s %-9s %-5llu %-9s %-9llu %-10s %-9s %s", name, pid, state,
               (unsigned long long)r->generation, up, (unsigned long long)r->restarts, hb, rtt, last);
        if (r->state == PROTO_NODE_INST_HELD) {
            char held[32];
            fmt_ms(held, sizeof(held), r->held_for_ms);
            printf(" (crash loop: held for %s more; `ringctl restart %s` retries now)", held, role);
        }
        printf("\n");
        not_ready += r->state != PROTO_NODE_INST_READY;
    }
    if (not_ready)
        printf("\n%u role instance(s) not ready\n", not_ready);
    return 0;
}

/* print_queues - the scheduler's status page as tables */
static void print_queues(const struct proto_status_queues *q)
{
    printf("queued %llu (scheduled %llu, resolving %llu, ready %llu, in flight %llu) in %llu queues, %llu "
           "sites, "
           "%llu paths; as of %lld ms ago\n",
           (unsigned long long)q->totals.messages, (unsigned long long)q->totals.scheduled,
           (unsigned long long)q->totals.resolving, (unsigned long long)q->totals.ready,
           (unsigned long long)q->totals.in_flight, (unsigned long long)q->totals.queues,
           (unsigned long long)q->totals.sites, (unsigned long long)q->totals.paths, (long long)q->age_ms);
    if (q->n_queues) {
        printf("\n%-48s %10s %10s\n", "QUEUE", "MESSAGES", "SCHEDULED");
        for (size_t i = 0; i < q->n_queues; i++)
            printf("%-48s %10llu %10llu\n", q->queues[i].name, (unsigned long long)q->queues[i].messages,
                   (unsigned long long)q->queues[i].scheduled);
    }
    if (q->n_paths) {
        printf("\n%-16s %-40s %8s %9s %11s %10s %10s %8s\n", "SOURCE", "SITE", "READY", "IN_FLIGHT", "CONNECTIONS",
               "DELIVERED", "TRANSIENT", "BOUNCED");
        for (size_t i = 0; i < q->n_paths; i++) {
            const struct proto_status_path *p = &q->paths[i];
            printf("%-16s %-40s %8llu %9llu %5llu/%-5llu %10llu %10llu %8llu\n", p->source, p->site,
                   (unsigned long long)p->ready, (unsigned long long)p->in_flight,
                   (unsigned long long)p->connections, (unsigned long long)p->connection_limit,
                   (unsigned long long)p->delivered, (unsigned long long)p->transient,
                   (unsigned long long)p->bounced);
        }
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringctl [--endpoint HOST:PORT] [--token-file FILE] [--data-dir DIR] [--json] COMMAND\n"
               "commands:\n"
               "  status              every role instance: pid, state, uptime, restarts, heartbeat; shared memory\n"
               "  queues              totals, the largest scheduled queues, and every egress path\n"
               "  restart ROLE[/N]    restart a role (spool, scheduler, ingress, egress), or worker N of it\n"
               "  reload              validate and reload the configuration (like SIGHUP to ringmaild)\n"
               "  metrics             the Prometheus metrics text\n"
               "  tsa-status [--domain D] [--site S]  traffic shaping automation effects in force, time left\n"
               "  tsa-history         the recent traffic shaping automation firings, newest first\n"
               "  warmup status       warm-up ramps: each warming source's step, allowance and use per provider,\n"
               "                      and why a step is held\n"
               "  doctor [--apply] [--config FILE] [--volume 8M/day --size 50KB [--outage 24h]]\n"
               "                      the host against a park node's needs, one line per check with its fix;\n"
               "                      --apply writes /etc/sysctl.d/90-ringmail.conf and reserves hugepages\n"
               "  capacity --volume 8M/day --peak 1M/h --size 50KB [--outage 24h] [--log-days 30]\n"
               "                      spool, log storage, bandwidth, memory and cores, with the arithmetic\n"
               "  validate-shaping FILE...   check shaping files offline (docs/shaping.md)\n"
               "  resolve-shaping --domain D [--source S] [--site SITE | --mx HOST ...] [--shaping FILE ...]\n"
               "                      the effective shaping of a path, and which block set each option\n"
               "  set-shaping --domain D [--source S] --OPTION VALUE ...\n"
               "                      override options (e.g. --connection-limit 2) in the node's override file, reload\n"
               "  queue-summary [--by-site | --by-provider | --by-source] [--domain D] [--limit N] [--by-volume]\n"
               "                      per ready queue D T C Q, rates, last response; then the scheduled queues\n"
               "  provider-summary    the same rolled up by provider\n"
               "  suspend --domain D [--tenant T] [--campaign C] --reason R [--duration 2h]; suspend-list;\n"
               "  suspend-cancel ID   hold (durably) the domain's scheduled mail; list; cancel\n"
               "  suspend-ready-q --name SOURCE->SITE --reason R [--duration 2h]; suspend-ready-q-list; -cancel ID\n"
               "  bounce --domain D [--tenant T] [--campaign C] | --tenant T | --campaign C | --queue Q |\n"
               "         --everything --reason R [--duration 5m]; bounce-list; bounce-cancel ID\n"
               "  inspect-sched-q NAME, inspect-ready-q SOURCE->SITE   config, throttle, suspensions, messages\n"
               "  rebind --domain D [--tenant T] [--campaign C] | --queue Q | ... --to-queue Q | --to-route HOSTS\n"
               "         [--reason R]   move queued mail to another queue or to fixed hosts, durably\n"
               "  abort-ready-q-conn SOURCE->SITE [--reason R]   close the path's connections; their mail is requeued\n"
               "  set-log-level LEVEL [--role ROLE]   debug, info, warn, error or config, at run time\n"
               "  tail-log [--follow] [--type T] [--domain D] [--queue Q] [--limit N] [--json]\n"
               "                      the message log, newest last (default the last 20 records); --follow\n"
               "                      goes on with new records until Ctrl-C; times are UTC\n"
               "  inspect-message ID [--body]   envelope, recipient states and attempts, queue, next due, size\n"
               "  spool-compact [--status | --no-wait]   flush and fully compact the spool's database, with progress\n"
               "  top [--interval S] [--by provider|site|source|path] [--once [--json]]\n"
               "                      a live dashboard: totals and rates, a row per provider, TSA events, role\n"
               "                      CPU and memory; keys q s / p ?; --once prints one frame as text\n"
               "  suppression add|remove|check ADDRESS [--tenant T] [--reason R] [--source S] [--expires UNIX];\n"
               "  suppression list [--limit N] [--after C]; import FILE; export [--format csv|jsonl]\n"
               "                      the suppression list (docs/operations.md, \"Suppression list\")\n"
               "  trace-smtp-server [--peer CIDR]   live transcript of the SMTP server sessions (ingress)\n"
               "  trace-smtp-client [--domain D] [--site S] [--source S]   ... of the SMTP client sessions\n"
               "                      (egress); commands, replies, TLS steps, bodies elided; until Ctrl-C\n"
               "where and how (docs/admin-api.md, \"Access control\"):\n"
               "  --endpoint HOST:PORT|unix:PATH  (env RINGCTL_ENDPOINT); default: the node's Unix socket\n"
               "                      DATA_DIR/admin.sock when it exists, else 127.0.0.1:8025\n"
               "  --socket PATH       the Unix socket (env RINGCTL_SOCKET)\n"
               "  --data-dir DIR      the node's data directory (env RINGCTL_DATA_DIR; default ./ringmail-data)\n"
               "  --token-file FILE   the admin token (env RINGCTL_TOKEN_FILE; default DATA_DIR/admin.token)\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"token-file", required_argument, NULL, 't'},
        {"data-dir", required_argument, NULL, 'D'},
        {"socket", required_argument, NULL, 'S'},
        {"domain", required_argument, NULL, 'd'},
        {"site", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ringctl_http_opts ho = {0};
    const char *endpoint;
    bool raw_json = false;
    const char *domain = NULL, *site = NULL; /* tsa-status filters */
    struct http_resp resp;
    char path[256];
    const char *method = "GET";
    int c;

    /* the shaping commands parse their own options: the global ones come before them */
    int shaping_at = 0;
    for (int i = 1; i < argc && !shaping_at; i++)
        if (ringctl_shaping_command(argv[i]) || ringctl_ops_command(argv[i]) || ringctl_logs_command(argv[i]) ||
            ringctl_inspect_command(argv[i]) || ringctl_doctor_command(argv[i]) || ringctl_capacity_command(argv[i]) ||
            ringctl_trace_command(argv[i]) || ringctl_top_command(argv[i]) ||
            ringctl_warmup_command(argv[i]) || ringctl_supp_command(argv[i]))
            shaping_at = i;
    while ((c = getopt_long(shaping_at ? shaping_at : argc, argv, "e:jhd:s:t:D:S:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            domain = optarg;
            break;
        case 's':
            site = optarg;
            break;
        case 'e':
            ho.endpoint = optarg;
            break;
        case 't':
            ho.token_file = optarg;
            break;
        case 'D':
            ho.data_dir = optarg;
            break;
        case 'S':
            ho.socket = optarg;
            break;
        case 'j':
            raw_json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* capacity reads no node: it runs before the endpoint is looked for */
    if (shaping_at && ringctl_capacity_command(argv[shaping_at]))
        return ringctl_capacity_main(argc - shaping_at, argv + shaping_at, ho.data_dir, raw_json);
    const char *data_dir = ho.data_dir;
    if (!(endpoint = ringctl_http_setup(&ho)))
        return 2;
    if (shaping_at && ringctl_logs_command(argv[shaping_at])) /* tools/ringctl_logs.c */
        return ringctl_logs_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json);
    if (shaping_at && ringctl_inspect_command(argv[shaping_at])) /* tools/ringctl_inspect.c */
        return ringctl_inspect_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json, ringctl_http_call);
    if (shaping_at && ringctl_doctor_command(argv[shaping_at]))
        return ringctl_doctor_main(argc - shaping_at, argv + shaping_at, endpoint, data_dir, raw_json,
                                   ringctl_http_call);
    if (shaping_at && ringctl_trace_command(argv[shaping_at])) /* tools/ringctl_trace.c */
        return ringctl_trace_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json);
    if (shaping_at && ringctl_top_command(argv[shaping_at])) /* tools/ringctl_top.c */
        return ringctl_top_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json, ringctl_http_call);
    if (shaping_at && ringctl_warmup_command(argv[shaping_at])) /* tools/ringctl_warmup.c */
        return ringctl_warmup_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json, ringctl_http_call);
    if (shaping_at && ringctl_supp_command(argv[shaping_at])) /* tools/ringctl_supp.c */
        return ringctl_supp_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json);
    if (shaping_at && ringctl_ops_command(argv[shaping_at])) /* tools/ringctl_ops.c */
        return ringctl_ops_main(argc - shaping_at, argv + shaping_at, endpoint, raw_json, ringctl_http_call);
    if (shaping_at)
        return ringctl_shaping_main(argc - shaping_at, argv + shaping_at, endpoint, ringctl_http_call);
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    if (strcmp(cmd, "status") == 0 && nargs == 0) {
        snprintf(path, sizeof(path), "/api/v1/status");
    } else if (strcmp(cmd, "queues") == 0 && nargs == 0) {
        snprintf(path, sizeof(path), "/api/v1/queues");
    } else if (strcmp(cmd, "reload") == 0 && nargs == 0) {
        method = "POST";
        snprintf(path, sizeof(path), "/api/v1/reload");
    } else if (strcmp(cmd, "metrics") == 0 && nargs == 0) {
        snprintf(path, sizeof(path), "/metrics");
    } else if ((strcmp(cmd, "tsa-status") == 0 || strcmp(cmd, "tsa-history") == 0) && nargs == 0) {
        if (ringctl_tsa_path(cmd, domain, site, path, sizeof(path)) < 0) {
            usage(stderr);
            return 2;
        }
    } else if (strcmp(cmd, "restart") == 0 && nargs == 1) {
        const char *role = argv[optind + 1];
        char r[64];
        /* accept ingress/1, ingress.1 and ingress[1] */
        size_t k = 0;
        for (const char *p = role; *p && k < sizeof(r) - 1; p++)
            r[k++] = (*p == '.' || *p == '[') ? '/' : (*p == ']' ? '\0' : *p);
        r[k] = '\0';
        for (size_t q = 0; q < k; q++)
            if (!(r[q] == '/' || (r[q] >= 'a' && r[q] <= 'z') || (r[q] >= '0' && r[q] <= '9'))) {
                fprintf(stderr, "ringctl: bad role %s\n", role);
                return 2;
            }
        method = "POST";
        snprintf(path, sizeof(path), "/api/v1/restart/%s", r);
    } else {
        usage(stderr);
        return 2;
    }
    if (http_call(endpoint, method, path, &resp) < 0)
        return 3;
    int rc = resp.status >= 200 && resp.status < 300 ? 0 : 1;
    if (raw_json || strcmp(cmd, "metrics") == 0) {
        fwrite(resp.body, 1, resp.body_len, stdout);
        free(resp.body);
        return rc;
    }
    /* each answer is decoded by the codec its producer encodes with (common/proto_status.h) */
    char *why = NULL;
    int dec;
    if (strcmp(cmd, "status") == 0 && rc == 0) {
        struct proto_status_node n;
        if ((dec = proto_status_node_decode(resp.body, resp.body_len, &n, &why)) == 0) {
            print_status(&n);
            proto_status_node_fini(&n);
        }
    } else if (strcmp(cmd, "queues") == 0 && rc == 0) {
        struct proto_status_queues q;
        if ((dec = proto_status_queues_decode(resp.body, resp.body_len, true, &q, &why)) == 0) {
            print_queues(&q);
            proto_status_queues_fini(&q);
        }
    } else if (strncmp(cmd, "tsa-", 4) == 0 && rc == 0) {
        struct proto_status_tsa t;
        if ((dec = proto_status_tsa_decode(resp.body, resp.body_len, true, &t, &why)) == 0) {
            ringctl_tsa_print(&t, strcmp(cmd, "tsa-history") == 0);
            proto_status_tsa_fini(&t);
        }
    } else {
        struct proto_status_reply r;
        if ((dec = proto_status_reply_decode(resp.body, resp.body_len, &r, &why)) == 0) {
            printf("%s\n", r.error ? r.error : r.detail);
            proto_status_reply_fini(&r);
        }
    }
    if (dec < 0) {
        fprintf(stderr,
                "ringctl: the node answered HTTP %d with a document that breaks the admin API's schema: %s\n",
                resp.status, why);
        free(why);
        rc = 1;
    }
    free(resp.body);
    return rc;
}
