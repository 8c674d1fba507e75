/*
 * cfg_file_test - ringmail.toml loading (cfg/cfg.c): values, defaults and whole files
 *
 * Table-driven: sizes and durations; the defaults; whole files (every key, many errors at once with
 * their lines, a syntax error with line:col); unreadable files; the cap on collected errors; bit
 * flips and truncations of a good file. Environment: RINGMAIL_TEST_DATA (tests/unit/cfg/data).
 * Exit 0 pass, 1 fail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cgroup.h"
#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"
#include "base/mem.h"
#include "tests/lib/check.h"
#include "tests/unit/cfg/cfg_test.h"

/* ---- sizes and durations ---- */

struct scaled_case {
    const char *text;
    bool ok;
    uint64_t value;
};

static void test_sizes(void)
{
    static const struct scaled_case cases[] = {
        {"4096", true, 4096},
        {"0", true, 0},
        {"1B", true, 1},
        {"7b", true, 7},
        {"1k", true, 1024},
        {"512KB", true, 512 * 1024},
        {"2KiB", true, 2048},
        {"64MiB", true, 64ull << 20},
        {"64mib", true, 64ull << 20},
        {"3M", true, 3ull << 20},
        {"16MB", true, 16ull << 20},
        {"1g", true, 1ull << 30},
        {"2GB", true, 2ull << 30},
        {"64GiB", true, 64ull << 30},
        {"64 MiB", true, 64ull << 20},
        {"18446744073709551615", true, UINT64_MAX},
        {"17179869183GiB", true, 17179869183ull << 30},
        {"17179869184GiB", false, 0},         /* 2^64: overflow in the multiplication */
        {"18446744073709551616", false, 0},   /* overflow in the digits */
        {"99999999999999999999999KiB", false, 0},
        {"", false, 0},
        {"MiB", false, 0},
        {"-1", false, 0},
        {"-1MiB", false, 0},
        {"+1", false, 0},
        {"1.5GiB", false, 0},
        {"64MiBx", false, 0},
        {"64 ", false, 0},
        {" 64", false, 0},
        {"1TiB", false, 0},
        {"0x10", false, 0},
        {"64 M iB", false, 0},
        {"64\nMiB", false, 0},
    };
    uint64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        v = 12345;
        bool ok = cfg_value_parse_size(cases[i].text, &v);
        CHECK(ok == cases[i].ok, "cfg_value_parse_size(\"%s\") returned %d, want %d", cases[i].text, ok, cases[i].ok);
        if (ok && cases[i].ok)
            CHECK(v == cases[i].value, "cfg_value_parse_size(\"%s\") = %" PRIu64 ", want %" PRIu64, cases[i].text, v,
                  cases[i].value);
    }
    CHECK(!cfg_value_parse_size(NULL, &v), "cfg_value_parse_size(NULL) accepted");
}

static void test_durations(void)
{
    static const struct scaled_case cases[] = {
        {"250ms", true, 250},
        {"10s", true, 10000},
        {"5m", true, 300000},
        {"1h", true, 3600000},
        {"2d", true, 172800000},
        {"0s", true, 0},
        {"10S", true, 10000},
        {"3 s", true, 3000},
        {"213503982334d", true, 213503982334ull * 86400000ull},
        {"213503982335d", false, 0},          /* overflow in the multiplication */
        {"18446744073709551616ms", false, 0}, /* overflow in the digits */
        {"10", false, 0},                     /* unit required in the string form */
        {"", false, 0},
        {"s", false, 0},
        {"-5s", false, 0},
        {"1.5s", false, 0},
        {"10sec", false, 0},
        {"1h30m", false, 0},
        {"10s ", false, 0},
        {" 10s", false, 0},
        {"10w", false, 0},
    };
    uint64_t v;

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        v = 12345;
        bool ok = cfg_value_parse_duration(cases[i].text, &v);
        CHECK(ok == cases[i].ok, "cfg_value_parse_duration(\"%s\") returned %d, want %d", cases[i].text, ok,
              cases[i].ok);
        if (ok && cases[i].ok)
            CHECK(v == cases[i].value, "cfg_value_parse_duration(\"%s\") = %" PRIu64 ", want %" PRIu64, cases[i].text, v,
                  cases[i].value);
    }
    CHECK(!cfg_value_parse_duration(NULL, &v), "cfg_value_parse_duration(NULL) accepted");
}

/* ---- defaults and whole files ---- */

static void test_defaults(void)
{
    struct cfg c;
    char host[256] = "";

    gethostname(host, sizeof(host) - 1);
    cfg_default(&c);
    CHECK(strcmp(nz(c.source), "(embedded default)") == 0, "source %s", nz(c.source));
    CHECK(strcmp(nz(c.node_id), host[0] ? host : "localhost") == 0, "node_id %s", nz(c.node_id));
    CHECK(strcmp(nz(c.hostname), host[0] ? host : "localhost") == 0, "hostname %s", nz(c.hostname));
    CHECK(strcmp(nz(c.data_dir), "./ringmail-data") == 0, "data_dir %s", nz(c.data_dir));
    CHECK(strcmp(nz(c.user), "nobody") == 0, "user %s", nz(c.user));
    CHECK(c.log_level == LOG_LEVEL_INFO, "log_level %d", (int)c.log_level);
    CHECK(c.n_listeners == 1, "n_listeners %zu", c.n_listeners);
    CHECK(strcmp(nz(c.listeners[0].address), "127.0.0.1:2525") == 0, "listener %s", nz(c.listeners[0].address));
    CHECK(strcmp(nz(c.listeners[0].name), "smtp") == 0, "listener name %s", nz(c.listeners[0].name));
    CHECK(strcmp(nz(c.admin_listen), "127.0.0.1:8025") == 0, "admin %s", nz(c.admin_listen));
    unsigned cpus = cgroup_cpus();
    CHECK(c.ingress_workers == cfg_workers_auto(false, cpus) && c.egress_workers == cfg_workers_auto(true, cpus) &&
              c.ingress_workers_auto && c.egress_workers_auto,
          "workers %u %u on %u CPUs", c.ingress_workers, c.egress_workers, cpus);
    CHECK(c.arena_bytes == 64ull << 20, "arena %" PRIu64, c.arena_bytes);
    CHECK(c.ring_slots == 4096, "ring_slots %u", c.ring_slots);
    CHECK(c.hugepages == 0, "hugepages %d", c.hugepages);
    CHECK(c.restart_backoff_ms == 100, "restart_backoff %" PRIu64, c.restart_backoff_ms);
    CHECK(c.restart_backoff_max_ms == 5000, "restart_backoff_max %" PRIu64, c.restart_backoff_max_ms);
    CHECK(c.crash_loop_limit == 5, "crash_loop_limit %u", c.crash_loop_limit);
    CHECK(c.crash_loop_window_ms == 30000, "crash_loop_window %" PRIu64, c.crash_loop_window_ms);
    CHECK(c.crash_loop_hold_ms == 60000, "crash_loop_hold %" PRIu64, c.crash_loop_hold_ms);
    CHECK(c.ready_timeout_ms == 10000, "ready_timeout %" PRIu64, c.ready_timeout_ms);
    CHECK(c.heartbeat_timeout_ms == 10000, "heartbeat_timeout %" PRIu64, c.heartbeat_timeout_ms);
    CHECK(c.drain_timeout_ms == 10000, "drain_timeout %" PRIu64, c.drain_timeout_ms);
    CHECK(c.bin_dir == NULL, "bin_dir %s", nz(c.bin_dir));
    CHECK(c.ingress_max_message_size == 50ull << 20, "max_message_size %" PRIu64, c.ingress_max_message_size);
    CHECK(c.ingress_max_recipients == 100, "max_recipients %u", c.ingress_max_recipients);
    CHECK(c.ingress_max_connections == 5000, "max_connections %u", c.ingress_max_connections);
    CHECK(c.ingress_max_conn_per_ip == 100, "max_connections_per_ip %u", c.ingress_max_conn_per_ip);
    CHECK(c.ingress_idle_timeout_ms == 300000, "idle_timeout %" PRIu64, c.ingress_idle_timeout_ms);
    CHECK(c.ingress_data_timeout_ms == 600000, "data_timeout %" PRIu64, c.ingress_data_timeout_ms);
    CHECK(c.ingress_min_data_rate == 1024, "min_data_rate %" PRIu64, c.ingress_min_data_rate);
    CHECK(c.ingress_max_received == 50, "max_received_headers %u", c.ingress_max_received);
    CHECK(c.ingress_spool_timeout_ms == 30000, "spool_timeout %" PRIu64, c.ingress_spool_timeout_ms);
    CHECK(c.n_relay_networks == 2, "n_relay_networks %zu", c.n_relay_networks);
    if (c.n_relay_networks == 2) {
        static const uint8_t v6_loop[16] = {[15] = 1};
        CHECK(c.relay_networks[0].family == AF_INET && c.relay_networks[0].prefix == 8 &&
                  memcmp(c.relay_networks[0].addr, "\x7f\0\0\0", 4) == 0,
              "relay_networks[0] is not 127.0.0.0/8");
        CHECK(c.relay_networks[1].family == AF_INET6 && c.relay_networks[1].prefix == 128 &&
                  memcmp(c.relay_networks[1].addr, v6_loop, 16) == 0,
              "relay_networks[1] is not ::1/128");
    }
    CHECK(c.n_relay_domains == 0 && c.relay_domains == NULL, "relay_domains %zu", c.n_relay_domains);
    CHECK(c.tls_enabled, "tls.enabled false");
    CHECK(c.tls_certificate && !c.tls_certificate[0], "tls.certificate %s", nz(c.tls_certificate));
    CHECK(c.tls_private_key && !c.tls_private_key[0], "tls.private_key %s", nz(c.tls_private_key));
    CHECK(c.policy_file && !c.policy_file[0], "policy.file %s", nz(c.policy_file));
    CHECK(c.policy_instruction_budget == 1000000, "instruction_budget %" PRIu64, c.policy_instruction_budget);
    CHECK(c.policy_memory_limit == 64ull << 20, "memory_limit %" PRIu64, c.policy_memory_limit);
    CHECK(c.policy_hook_time_limit_ms == 50, "hook_time_limit %" PRIu64, c.policy_hook_time_limit_ms);
    CHECK(c.egress_min_data_rate == 10240, "egress min_data_rate %" PRIu64, c.egress_min_data_rate);
    CHECK(c.spool_free_space_min == 1ull << 30, "free_space_min %" PRIu64, c.spool_free_space_min);
    CHECK(c.spool_dir && !c.spool_dir[0], "spool.dir %s", nz(c.spool_dir));
    CHECK(c.spool_body_log && c.spool_body_log_min_size == 4096 && c.spool_body_log_segment_size == 64ull << 20,
          "body_log %d %" PRIu64 " %" PRIu64, c.spool_body_log, c.spool_body_log_min_size,
          c.spool_body_log_segment_size);
    CHECK(c.log_dir && !c.log_dir[0], "log.dir %s", nz(c.log_dir));
    CHECK(c.log_segment_size == 256ull << 20, "segment_size %" PRIu64, c.log_segment_size);
    CHECK(c.log_segment_age_ms == 3600000, "segment_age %" PRIu64, c.log_segment_age_ms);
    CHECK(c.log_flush_interval_ms == 1000, "flush_interval %" PRIu64, c.log_flush_interval_ms);
    CHECK(c.log_max_age_ms == 0 && c.log_max_total_size == 0, "retention off by default");
    CHECK(c.log_min_free_space == 1ull << 30, "min_free_space %" PRIu64, c.log_min_free_space);
    cfg_fini(&c);
    cfg_fini(&c); /* a second fini is harmless */

    /* an empty file is the default */
    char *err = (char *)"untouched";
    cfg_default(&c);
    CHECK(cfg_load_text(&c, "", 0, "empty.toml", &err) == 0 && err == NULL, "empty text: %s", nz(err));
    CHECK(strcmp(nz(c.source), "empty.toml") == 0 && c.n_listeners == 1, "empty text changed the default");
    cfg_fini(&c);
}

static void check_good_all(const struct cfg *c, const char *what)
{
    CHECK(strcmp(nz(c->node_id), "mx-test-01") == 0, "%s: node_id %s", what, nz(c->node_id));
    CHECK(strcmp(nz(c->data_dir), "/var/lib/ringmail") == 0, "%s: data_dir %s", what, nz(c->data_dir));
    CHECK(strcmp(nz(c->user), "ringmail") == 0, "%s: user %s", what, nz(c->user));
    CHECK(strcmp(nz(c->hostname), "mx1.example.net") == 0, "%s: hostname %s", what, nz(c->hostname));
    CHECK(c->log_level == LOG_LEVEL_DEBUG, "%s: log_level %d", what, (int)c->log_level);
    CHECK(c->n_listeners == 3, "%s: n_listeners %zu", what, c->n_listeners);
    if (c->n_listeners == 3) {
        CHECK(strcmp(nz(c->listeners[0].address), "0.0.0.0:25") == 0 && strcmp(nz(c->listeners[0].name), "smtp") == 0,
              "%s: listener 0 %s %s", what, nz(c->listeners[0].address), nz(c->listeners[0].name));
        CHECK(strcmp(nz(c->listeners[1].address), "[::1]:587") == 0 &&
                  strcmp(nz(c->listeners[1].name), "submission") == 0,
              "%s: listener 1 %s %s", what, nz(c->listeners[1].address), nz(c->listeners[1].name));
        CHECK(strcmp(nz(c->listeners[2].address), "localhost:2526") == 0 &&
                  strcmp(nz(c->listeners[2].name), "smtp") == 0,
              "%s: listener 2 %s %s", what, nz(c->listeners[2].address), nz(c->listeners[2].name));
    }
    CHECK(strcmp(nz(c->admin_listen), "127.0.0.1:9025") == 0, "%s: admin %s", what, nz(c->admin_listen));
    CHECK(c->ingress_workers == 4, "%s: ingress workers %u", what, c->ingress_workers);
    CHECK(c->egress_workers == 32, "%s: egress workers %u", what, c->egress_workers);
    CHECK(c->arena_bytes == 2ull << 30, "%s: arena %" PRIu64, what, c->arena_bytes);
    CHECK(c->ring_slots == 65536, "%s: ring_slots %u", what, c->ring_slots);
    CHECK(c->hugepages == 1, "%s: hugepages %d", what, c->hugepages);
    CHECK(c->restart_backoff_ms == 250, "%s: restart_backoff %" PRIu64, what, c->restart_backoff_ms);
    CHECK(c->restart_backoff_max_ms == 60000, "%s: restart_backoff_max %" PRIu64, what, c->restart_backoff_max_ms);
    CHECK(c->crash_loop_limit == 7, "%s: crash_loop_limit %u", what, c->crash_loop_limit);
    CHECK(c->crash_loop_window_ms == 120000, "%s: crash_loop_window %" PRIu64, what, c->crash_loop_window_ms);
    CHECK(c->crash_loop_hold_ms == 3600000, "%s: crash_loop_hold %" PRIu64, what, c->crash_loop_hold_ms);
    CHECK(c->ready_timeout_ms == 15000, "%s: ready_timeout %" PRIu64, what, c->ready_timeout_ms);
    CHECK(c->heartbeat_timeout_ms == 20000, "%s: heartbeat_timeout %" PRIu64, what, c->heartbeat_timeout_ms);
    CHECK(c->drain_timeout_ms == 172800000, "%s: drain_timeout %" PRIu64, what, c->drain_timeout_ms);
    CHECK(strcmp(nz(c->bin_dir), "/usr/lib/ringmail") == 0, "%s: bin_dir %s", what, nz(c->bin_dir));
    CHECK(c->ingress_max_message_size == 20ull << 20, "%s: max_message_size %" PRIu64, what,
          c->ingress_max_message_size);
    CHECK(c->ingress_max_recipients == 1000, "%s: max_recipients %u", what, c->ingress_max_recipients);
    CHECK(c->ingress_max_connections == 20000, "%s: max_connections %u", what, c->ingress_max_connections);
    CHECK(c->ingress_max_conn_per_ip == 7, "%s: max_connections_per_ip %u", what, c->ingress_max_conn_per_ip);
    CHECK(c->ingress_idle_timeout_ms == 120000, "%s: idle_timeout %" PRIu64, what, c->ingress_idle_timeout_ms);
    CHECK(c->ingress_data_timeout_ms == 900000, "%s: data_timeout %" PRIu64, what, c->ingress_data_timeout_ms);
    CHECK(c->ingress_min_data_rate == 0, "%s: min_data_rate %" PRIu64, what, c->ingress_min_data_rate);
    CHECK(c->ingress_max_received == 30, "%s: max_received_headers %u", what, c->ingress_max_received);
    CHECK(c->ingress_spool_timeout_ms == 5000, "%s: spool_timeout %" PRIu64, what, c->ingress_spool_timeout_ms);
    CHECK(c->n_relay_networks == 5, "%s: n_relay_networks %zu", what, c->n_relay_networks);
    if (c->n_relay_networks == 5) {
        static const uint8_t db8[16] = {0x20, 0x01, 0x0d, 0xb8};
        static const uint8_t one[16] = {[15] = 1};
        CHECK(c->relay_networks[0].family == AF_INET && c->relay_networks[0].prefix == 8 &&
                  memcmp(c->relay_networks[0].addr, "\x0a\0\0\0", 4) == 0,
              "%s: relay_networks[0]", what);
        CHECK(c->relay_networks[1].family == AF_INET && c->relay_networks[1].prefix == 32 &&
                  memcmp(c->relay_networks[1].addr, "\xc0\x00\x02\x07", 4) == 0,
              "%s: relay_networks[1]", what);
        CHECK(c->relay_networks[2].family == AF_INET6 && c->relay_networks[2].prefix == 32 &&
                  memcmp(c->relay_networks[2].addr, db8, 16) == 0,
              "%s: relay_networks[2]", what);
        CHECK(c->relay_networks[3].family == AF_INET6 && c->relay_networks[3].prefix == 128 &&
                  memcmp(c->relay_networks[3].addr, one, 16) == 0,
              "%s: relay_networks[3]", what);
        CHECK(c->relay_networks[4].family == AF_INET && c->relay_networks[4].prefix == 0, "%s: relay_networks[4]",
              what);
    }
    CHECK(c->n_relay_domains == 2 && c->relay_domains && strcmp(nz(c->relay_domains[0]), "example.com") == 0 &&
              strcmp(nz(c->relay_domains[1]), "lists.example.org") == 0,
          "%s: relay_domains (%zu)", what, c->n_relay_domains);
    CHECK(!c->tls_enabled, "%s: tls.enabled", what);
    CHECK(strcmp(nz(c->tls_certificate), "/etc/ringmail/tls/cert.pem") == 0, "%s: tls.certificate %s", what,
          nz(c->tls_certificate));
    CHECK(strcmp(nz(c->tls_private_key), "/etc/ringmail/tls/key.pem") == 0, "%s: tls.private_key %s", what,
          nz(c->tls_private_key));
    CHECK(strcmp(nz(c->policy_file), "/etc/ringmail/policy.lua") == 0, "%s: policy.file %s", what,
          nz(c->policy_file));
    CHECK(c->policy_instruction_budget == 10000000000ull, "%s: instruction_budget %" PRIu64, what,
          c->policy_instruction_budget);
    CHECK(c->policy_memory_limit == 128ull << 20, "%s: memory_limit %" PRIu64, what, c->policy_memory_limit);
    CHECK(c->spool_free_space_min == 0, "%s: free_space_min %" PRIu64, what, c->spool_free_space_min);
    CHECK(strcmp(nz(c->spool_dir), "/srv/spool") == 0, "%s: spool.dir %s", what, nz(c->spool_dir));
    CHECK(strcmp(nz(c->log_dir), "/srv/logs") == 0, "%s: log.dir %s", what, nz(c->log_dir));
    CHECK(c->log_segment_size == 64ull << 10, "%s: segment_size %" PRIu64, what, c->log_segment_size);
    CHECK(c->log_segment_age_ms == 1800000, "%s: segment_age %" PRIu64, what, c->log_segment_age_ms);
    CHECK(c->log_flush_interval_ms == 250, "%s: flush_interval %" PRIu64, what, c->log_flush_interval_ms);
}

static void test_good_file(void)
{
    char *path = data_path("good_all.toml");
    char *err = NULL;
    struct cfg c;
    int rc;

    cfg_default(&c);
    rc = cfg_load_file(&c, path, &err);
    CHECK(rc == 0 && err == NULL, "good_all.toml: rc %d err %s", rc, nz(err));
    CHECK(strcmp(nz(c.source), path) == 0, "source %s", nz(c.source));
    check_good_all(&c, "good_all.toml");

    /* a later load applies on top: listeners stay as the file before set them */
    static const char more[] = "[ingress]\nworkers = 2\n";
    rc = cfg_load_text(&c, more, sizeof(more) - 1, "more.toml", &err);
    CHECK(rc == 0 && c.ingress_workers == 2 && c.n_listeners == 3, "load on top: rc %d workers %u listeners %zu",
          rc, c.ingress_workers, c.n_listeners);

    /* a failed load leaves the struct as it was */
    static const char bad[] = "[ingress]\nworkers = 99\n[node]\nnode_id = \"other\"\n";
    rc = cfg_load_text(&c, bad, sizeof(bad) - 1, "bad.toml", &err);
    CHECK(rc == -EINVAL && err != NULL, "bad on top: rc %d", rc);
    free(err);
    err = NULL;
    CHECK(c.ingress_workers == 2 && strcmp(nz(c.node_id), "mx-test-01") == 0 &&
              strcmp(nz(c.source), "more.toml") == 0,
          "failed load changed the struct: workers %u node_id %s", c.ingress_workers, nz(c.node_id));

    /* a syntax error leaves it too, and err may be NULL */
    rc = cfg_load_text(&c, "[node", 5, "x.toml", NULL);
    CHECK(rc == -EINVAL && strcmp(nz(c.node_id), "mx-test-01") == 0, "syntax error with NULL err: rc %d", rc);
    cfg_fini(&c);
    free(path);
}

/* the bad file's errors, in document order, each with its line */
static void test_bad_file(void)
{
    static const char *const want[] = {
        "3: node.node_id: \"mx 01\" must be 1..64 characters of letters, digits, '.', '_' and '-'",
        "4: node.log_level: \"verbose\" is not one of \"debug\", \"info\", \"warn\", \"error\"",
        "5: unknown key \"node.usr\"",
        "8: listener[0].address: \"127.0.0.1:0\" has a bad port (1..65535)",
        "11: listener[1].address: \"::1:25\" is IPv6 without brackets (write \"[::1]:25\")",
        "12: unknown key \"listener[1].nmae\"",
        "15: admin.listen: \"999.1.1.1:8025\" has a bad IPv4 address",
        "18: ingress.workers: 0 is out of range (1..32)",
        "19: ingress.max_message_size: 3221225472 bytes is out of range (1KiB..2GiB)",
        "20: ingress.max_recipients: 0 is out of range (1..100000)",
        "21: ingress.max_connections: 1000001 is out of range (1..1000000)",
        "22: ingress.max_connections_per_ip: expected an integer, got string",
        "23: ingress.idle_timeout: \"forever\" is not a duration (a number with ms, s, m, h or d)",
        "24: ingress.data_timeout: must be greater than 0",
        "25: ingress.min_data_rate: -1 is out of range (0..1000000000)",
        "26: ingress.max_received_headers: 1001 is out of range (1..1000)",
        "27: ingress.spool_timeout: expected a duration (string like \"10s\" or an integer of milliseconds), got "
        "boolean",
        "30: ingress.relay_networks[1]: \"10.0.0.0/33\" has a bad prefix length (0..32)",
        "31: ingress.relay_networks[2]: \"fe80::1%eth0\" is not an IPv4 or IPv6 network (like \"10.0.0.0/8\" or "
        "\"2001:db8::/32\")",
        "32: ingress.relay_networks[3]: expected a string, got integer",
        "34: ingress.relay_domains[0]: \"example.com.\" ends with a dot (write it without)",
        "34: ingress.relay_domains[1]: \"-bad.example\" is not a valid domain name",
        "37: egress.workers: \"4\" is neither \"auto\" nor a number 1..32",
        "40: shm.arena_size: \"12 parsecs\" is not a size (a number with B, KiB, MiB or GiB)",
        "41: shm.ring_slots: 1000 is not a power of two",
        "42: shm.hugepages: \"maybe\" is not one of \"auto\", \"require\", \"off\"",
        "45: supervisor.restart_backoff: must be greater than 0",
        "46: supervisor.crash_loop_limit: 1001 is out of range (1..1000)",
        "47: supervisor.drain_timeout: expected a duration (string like \"10s\" or an integer of milliseconds), got "
        "float",
        "50: tls.enabled: expected a boolean, got string",
        "54: policy.file: \"/etc/ringmail/pol\\x07icy.lua\" must be a path without control characters (or \"\" for "
        "the default)",
        "55: policy.instruction_budget: 999 is out of range (1000..10000000000)",
        "56: policy.memory_limit: 5368709120 bytes is out of range (1MiB..4GiB)",
        "59: spool.free_space_min: 1100585369600 bytes is out of range (0..1024GiB)",
        "60: spool.dir: expected a string, got integer",
        "63: log.segment_size: 32768 bytes is out of range (64KiB..64GiB)",
        "64: log.segment_age: \"1y\" is not a duration (a number with ms, s, m, h or d)",
        "65: log.flush_interval: must be greater than 0",
        "67: unknown table \"queues\"",
        /* checks across keys come after the file's own order */
        "51: tls.certificate: certificate and private_key must be set together (or both left empty for a generated "
        "self-signed certificate)",
    };
    char *path = data_path("bad_many.toml");
    char *expect = xstrdup("");
    char *err = NULL;
    struct cfg c;

    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        char *next = xasprintf("%s%s:%s\n", expect, path, want[i]);
        free(expect);
        expect = next;
    }
    cfg_default(&c);
    int rc = cfg_load_file(&c, path, &err);
    CHECK(rc == -EINVAL, "bad_many.toml: rc %d", rc);
    CHECK(err && strcmp(err, expect) == 0, "bad_many.toml errors:\n--- got\n%s--- want\n%s---", nz(err), expect);
    CHECK(c.n_listeners == 1 && c.ingress_workers == cfg_workers_auto(false, cgroup_cpus()) && c.ingress_workers_auto,
          "bad file changed the default");
    cfg_fini(&c);
    free(err);
    free(expect);
    free(path);

    /* 17 listeners: one too many, reported at the 17th */
    path = data_path("listeners_too_many.toml");
    cfg_default(&c);
    rc = cfg_load_file(&c, path, &err);
    expect = xasprintf("%s:49: listener: at most 16 listeners are allowed, found 17\n", path);
    CHECK(rc == -EINVAL && err && strcmp(err, expect) == 0, "too many listeners: rc %d err %s", rc, nz(err));
    cfg_fini(&c);
    free(err);
    free(expect);
    free(path);
}

static void test_syntax_error(void)
{
    char *path = data_path("syntax_error.toml");
    char *err = NULL, *prefix;
    struct cfg c;
    unsigned line = 0, col = 0;

    cfg_default(&c);
    int rc = cfg_load_file(&c, path, &err);
    CHECK(rc == -EINVAL && err, "syntax_error.toml: rc %d", rc);
    prefix = xasprintf("%s:", path);
    if (err) {
        int n = 0;
        CHECK(strncmp(err, prefix, strlen(prefix)) == 0 &&
                  sscanf(err + strlen(prefix), "%u:%u: %n", &line, &col, &n) == 2 && n > 0,
              "syntax error not NAME:LINE:COL: %s", err);
        CHECK(line == 3 && col >= 12, "syntax error at %u:%u, want line 3 after the open quote: %s", line, col, err);
        CHECK(strstr(err, "string") != NULL && err[strlen(err) - 1] == '\n', "syntax error message: %s", err);
        CHECK(strchr(err, '\n') == err + strlen(err) - 1, "syntax error is one line: %s", err);
    }
    cfg_fini(&c);
    free(prefix);
    free(err);
    free(path);
}

static void test_unreadable(void)
{
    char dir[] = "/tmp/cfg_test.XXXXXX";
    char *path, *err = NULL;
    struct cfg c;
    int rc;

    cfg_default(&c);
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    path = xasprintf("%s/missing.toml", dir);
    rc = cfg_load_file(&c, path, &err);
    CHECK(rc == -ENOENT, "missing file: rc %d", rc);
    CHECK(err && strstr(err, path) && strstr(err, "cannot read"), "missing file: err %s", nz(err));
    free(err);
    err = NULL;
    rc = cfg_load_file(&c, dir, &err);
    CHECK(rc == -EISDIR, "directory: rc %d", rc);
    CHECK(err && strstr(err, dir), "directory: err %s", nz(err));
    free(err);
    CHECK(c.n_listeners == 1 && strcmp(nz(c.source), "(embedded default)") == 0, "unreadable file changed cfg");
    cfg_fini(&c);
    rmdir(dir);
    free(path);
}


static void test_error_cap(void)
{
    size_t cap = 16, len = 0;
    char *text = xmalloc(cap);
    char *err = NULL;
    struct cfg c;
    size_t lines = 0;

    len = (size_t)snprintf(text, cap, "[node]\n");
    for (int i = 0; i < 150; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "k%d = 1\n", i);
        if (len + (size_t)n + 1 > cap) {
            cap = (len + (size_t)n + 1) * 2;
            text = xrealloc(text, cap);
        }
        memcpy(text + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    cfg_default(&c);
    int rc = cfg_load_text(&c, text, len, "many.toml", &err);
    for (const char *p = err ? err : ""; *p; p++)
        lines += *p == '\n';
    CHECK(rc == -EINVAL && lines == 101, "error cap: rc %d, %zu lines", rc, lines);
    CHECK(err && strstr(err, "many.toml: 50 more errors not shown\n"), "error cap summary missing");
    CHECK(err && strstr(err, "many.toml:101: unknown key \"node.k99\"\n"), "100th error missing");
    cfg_fini(&c);
    free(err);
    free(text);
}

/* bit flips and truncations of a good file: every outcome is allowed except a crash or a leak */
static void test_mutations(void)
{
    char *path = data_path("good_all.toml");
    size_t len = 0;
    char *orig = read_file(path, &len);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned loaded = 0;
    static const char specials[] = "\"'[]=.\n\\\0#{},";

    CHECK(orig != NULL, "cannot read %s", path);
    for (int round = 0; orig && round < 3000; round++) {
        char *buf = xmalloc(len + 1);
        size_t n = len;
        memcpy(buf, orig, len + 1);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            size_t at = (size_t)(seed % len);
            switch ((seed >> 32) % 4) {
            case 0: buf[at] ^= (char)(1u << ((seed >> 40) % 8)); break;
            case 1: buf[at] = specials[(seed >> 40) % (sizeof(specials) - 1)]; break;
            case 2: buf[at] = (char)(seed >> 48); break;
            default: n = at; break;
            }
        }
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = cfg_load_text(&c, buf, n, "m.toml", &err);
        CHECK(rc == 0 || (rc == -EINVAL && err && err[0]), "mutation %d: rc %d without a message", round, rc);
        loaded += rc == 0;
        cfg_fini(&c);
        free(err);
        free(buf);
    }
    CHECK(loaded < 3000, "every mutation loaded: the test does not mutate");
    free(orig);
    free(path);
}

/* workers = "auto": the rule, and the key taking "auto", a number, and refusing anything else */
static void test_workers_auto(void)
{
    CHECK(cfg_workers_auto(false, 1) == 1 && cfg_workers_auto(false, 2) == 2 && cfg_workers_auto(false, 64) == 32,
          "ingress: one per CPU, at most 32");
    CHECK(cfg_workers_auto(true, 0) == 1 && cfg_workers_auto(true, 2) == 2 && cfg_workers_auto(true, 8) == 8 &&
              cfg_workers_auto(true, 1000) == 32,
          "egress: one per CPU, at least 1, at most 32");
    struct cfg c;
    char *err = NULL;
    unsigned cpus = cgroup_cpus();
    cfg_default(&c);
    static const char fixed[] = "[ingress]\nworkers = 3\n[egress]\nworkers = 5\n";
    int rc = cfg_load_text(&c, fixed, sizeof(fixed) - 1, "fixed", &err);
    CHECK(rc == 0 && c.ingress_workers == 3 && c.egress_workers == 5 && !c.ingress_workers_auto &&
              !c.egress_workers_auto,
          "numbers: rc %d %u %u", rc, c.ingress_workers, c.egress_workers);
    static const char autos[] = "[ingress]\nworkers = \"auto\"\n[egress]\nworkers = \"auto\"\n";
    rc = cfg_load_text(&c, autos, sizeof(autos) - 1, "autos", &err);
    CHECK(rc == 0 && c.ingress_workers == cfg_workers_auto(false, cpus) && c.ingress_workers_auto &&
              c.egress_workers == cfg_workers_auto(true, cpus) && c.egress_workers_auto,
          "\"auto\" on top of numbers: rc %d %u %u", rc, c.ingress_workers, c.egress_workers);
    static const char bad[] = "[egress]\nworkers = \"many\"\n";
    rc = cfg_load_text(&c, bad, sizeof(bad) - 1, "bad", &err);
    CHECK(rc == -EINVAL && err && strstr(err, "bad:2: egress.workers: \"many\" is neither \"auto\" nor a number 1..32"),
          "a word other than auto: %s", err ? err : "(none)");
    free(err);
    cfg_fini(&c);
}

int main(void)
{
    test_workers_auto();
    test_sizes();
    test_durations();
    test_defaults();
    test_good_file();
    test_bad_file();
    test_syntax_error();
    test_unreadable();
    test_error_cap();
    test_mutations();
    CHECK_EXIT();
}
