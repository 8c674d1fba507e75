/*
 * proto_node - names of the node's roles, instance states and counters; instance numbering
 *
 * The names are the ones operators see (admin API, /metrics, `ringctl restart ROLE`): changing one
 * changes the admin API (docs/admin-api.md).
 */
#include "common/proto_node.h"

#include <string.h>
#include <strings.h>

static const char *const role_names[PROTO_NODE_ROLE__MAX] = {"spool", "scheduler", "ingress", "egress"};
static const char *const state_names[PROTO_NODE_INST__MAX] = {"empty", "starting", "ready",  "draining",
                                                              "dead",  "held",     "stopped"};
static const char *const counter_names[PROTO_NODE_CTR__MAX] = {
    "ring_pushed",         "ring_popped",        "ring_full",
    "ring_bad_records",    "ring_stale_records", "pings_sent",
    "pongs_received",      "loop_wakeups",       "reloads",
    "smtp_connections",    "smtp_commands",      "messages_accepted",
    "messages_stored",     "spool_commits",      "spool_commit_failures",
    "store_rejected",      "messages_queued",    "quarantined",
    "log_records_dropped", "smtp_sessions", "trace_events", "trace_events_dropped",
    "log_records_written", "bytes_stored", "spool_write_stalls", "memory_sheds",
    "body_log_segments", "body_log_bytes", "body_log_read_errors", "body_log_relocated",
    "body_log_recycled",
};

int proto_node_instance_of(unsigned n_ingress, unsigned n_egress, enum proto_node_role role, unsigned index)
{
    switch (role) {
    case PROTO_NODE_ROLE_SPOOL:
        return index == 0 ? 0 : -1;
    case PROTO_NODE_ROLE_SCHEDULER:
        return index == 0 ? 1 : -1;
    case PROTO_NODE_ROLE_INGRESS:
        return index < n_ingress ? (int)(2 + index) : -1;
    case PROTO_NODE_ROLE_EGRESS:
        return index < n_egress ? (int)(2 + n_ingress + index) : -1;
    default:
        return -1;
    }
}

const char *proto_node_role_name(enum proto_node_role r)
{
    return (unsigned)r < PROTO_NODE_ROLE__MAX ? role_names[r] : "unknown";
}

bool proto_node_role_parse(const char *text, enum proto_node_role *out)
{
    for (unsigned i = 0; i < PROTO_NODE_ROLE__MAX; i++) {
        if (strcasecmp(text, role_names[i]) == 0) {
            *out = (enum proto_node_role)i;
            return true;
        }
    }
    return false;
}

const char *proto_node_inst_state_name(enum proto_node_inst_state s)
{
    return (unsigned)s < PROTO_NODE_INST__MAX ? state_names[s] : "unknown";
}

const char *proto_node_counter_name(enum proto_node_counter c)
{
    return (unsigned)c < PROTO_NODE_CTR__MAX ? counter_names[c] : "unknown";
}

bool proto_node_counter_is_gauge(enum proto_node_counter c)
{
    return c == PROTO_NODE_CTR_MESSAGES_QUEUED || c == PROTO_NODE_CTR_SMTP_SESSIONS ||
           c == PROTO_NODE_CTR_BODY_LOG_SEGMENTS || c == PROTO_NODE_CTR_BODY_LOG_BYTES;
}

static const char *const reject_names[PROTO_NODE_REJECT__MAX] = {
    "421", "450", "451", "452", "454", "500", "501", "502", "503",
    "504", "530", "535", "550", "552", "553", "554", "4xx", "5xx",
};

enum proto_node_reject proto_node_reject_of(const char *line, size_t len)
{
    if (len >= 3)
        for (unsigned r = 0; r < PROTO_NODE_REJECT_OTHER_4XX; r++)
            if (memcmp(line, reject_names[r], 3) == 0)
                return (enum proto_node_reject)r;
    return len >= 1 && line[0] == '4' ? PROTO_NODE_REJECT_OTHER_4XX : PROTO_NODE_REJECT_OTHER_5XX;
}

const char *proto_node_reject_name(enum proto_node_reject r)
{
    return (unsigned)r < PROTO_NODE_REJECT__MAX ? reject_names[r] : "5xx";
}
