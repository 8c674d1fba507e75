/*
 * cfg - ringmail.toml, the node's static configuration
 *
 * cfg_default() fills the embedded default: a working node with SMTP on 127.0.0.1:2525, the
 * admin HTTP API on 127.0.0.1:8025 and data under ./ringmail-data.
 * cfg_load_file() / cfg_load_text() start from the default and apply the file on top. Every
 * unknown key, wrong type and bad value is reported as "FILE:LINE: message", one per line in
 * *err (heap, caller frees); the function returns -EINVAL after collecting all of them, -errno when
 * the file cannot be read, 0 on success.
 * cfg_fini() frees what a struct cfg owns.
 *
 * Every key is documented in docs/configuration.md.
 */
#ifndef RINGMAIL_CFG_H
#define RINGMAIL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CFG_MAX_LISTENERS 16
#define CFG_MAX_WORKERS 32

struct cfg_listener {
    char *address; /* "host:port" as written; IPv6 as "[::1]:25" */
    char *name;    /* optional label, "smtp" by default */
};

struct cfg {
    char *source; /* file name, or "(embedded default)" */

    /* [node] */
    char *node_id;   /* default: the host name */
    char *data_dir;  /* default "./ringmail-data" */
    char *user;      /* unprivileged user the roles run as when started as root; default "nobody" */
    char *hostname;  /* name in SMTP banners; default: the host name */
    enum log_level log_level;

    /* [[listener]] (SMTP); default one on 127.0.0.1:2525 */
    size_t n_listeners;
    struct cfg_listener listeners[CFG_MAX_LISTENERS];

    /* [admin] */
    char *admin_listen; /* "127.0.0.1:8025" */

    /* [ingress], [egress] */
    uint32_t ingress_workers; /* 1..CFG_MAX_WORKERS, default 1 */
    uint32_t egress_workers;  /* 1..CFG_MAX_WORKERS, default 1 */

    /* [shm] */
    uint64_t arena_bytes;   /* body arena, default 64 MiB */
    uint32_t ring_slots;    /* records per ring, power of two, default 4096 */
    int hugepages;          /* enum shm_huge_mode: "auto" (default), "require", "off" */

    /* [supervisor] (durations in milliseconds) */
    uint64_t restart_backoff_ms;     /* first restart delay, doubled per quick death, default 100 */
    uint64_t restart_backoff_max_ms; /* cap, default 5000 */
    uint32_t crash_loop_limit;       /* deaths within the window before the role is held off, default 5 */
    uint64_t crash_loop_window_ms;   /* default 30000 */
    uint64_t crash_loop_hold_ms;     /* how long a crash-looping role is held off, default 60000 */
    uint64_t ready_timeout_ms;       /* a role not ready by then counts as a quick death, default 10000 */
    uint64_t heartbeat_timeout_ms;   /* a role whose heartbeat is older is killed and restarted, default 10000 */
    uint64_t drain_timeout_ms;       /* SIGTERM: time given to roles before SIGKILL, default 10000 */
    char *bin_dir;                   /* where the role executables are; default: next to ringmaild */
};

void cfg_default(struct cfg *c);
int cfg_load_file(struct cfg *c, const char *path, char **err);
int cfg_load_text(struct cfg *c, const char *text, size_t len, const char *name, char **err);
void cfg_fini(struct cfg *c);

/* cfg_parse_size - "64MiB", "512KB", "1g", "4096" -> bytes; false when malformed */
bool cfg_parse_size(const char *text, uint64_t *out);
/* cfg_parse_duration - "10s", "250ms", "5m", "1h", "2d" -> milliseconds; false when malformed */
bool cfg_parse_duration(const char *text, uint64_t *out_ms);

#endif
