/*
 * cfg_test - ringmail.toml loading (common/cfg.c) and the toml++ bridge (common/cfg_toml.cc)
 *
 * Table-driven: sizes and durations, single-error snippets with their exact message, whole files
 * (every key, many errors at once with their lines, a syntax error with line:col), unreadable
 * files, the bridge's tree (order, positions, types, hostile input), KumoMTA's shaping files and
 * docs/ringmail.example.toml (which must spell out the defaults). relay_networks parsing and
 * cfg_cidr_match() (v4, v6, IPv4-mapped, /0, /32, /128), relay_domains and the tls key pair. Environment: RINGMAIL_TEST_DATA (tests/unit/cfg/data),
 * RINGMAIL_SHARED_DATA (default <source root>/../shared/data), RINGMAIL_EXAMPLE_CONFIG.
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

#include "cfg/cfg.h"
#include "cfg/cfg_toml.h"
#include "base/mem.h"
#include "tests/lib/check.h"

#ifndef RINGMAIL_SOURCE_ROOT
#define RINGMAIL_SOURCE_ROOT "."
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static char *data_path(const char *file)
{
    return xasprintf("%s/%s", env_or("RINGMAIL_TEST_DATA", RINGMAIL_SOURCE_ROOT "/tests/unit/cfg/data"), file);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = xmalloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int load_str(struct cfg *c, const char *text, const char *name, char **err)
{
    return cfg_load_text(c, text, strlen(text), name, err);
}

static const char *nz(const char *s)
{
    return s ? s : "(null)";
}

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
        bool ok = cfg_parse_size(cases[i].text, &v);
        CHECK(ok == cases[i].ok, "cfg_parse_size(\"%s\") returned %d, want %d", cases[i].text, ok, cases[i].ok);
        if (ok && cases[i].ok)
            CHECK(v == cases[i].value, "cfg_parse_size(\"%s\") = %" PRIu64 ", want %" PRIu64, cases[i].text, v,
                  cases[i].value);
    }
    CHECK(!cfg_parse_size(NULL, &v), "cfg_parse_size(NULL) accepted");
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
        bool ok = cfg_parse_duration(cases[i].text, &v);
        CHECK(ok == cases[i].ok, "cfg_parse_duration(\"%s\") returned %d, want %d", cases[i].text, ok,
              cases[i].ok);
        if (ok && cases[i].ok)
            CHECK(v == cases[i].value, "cfg_parse_duration(\"%s\") = %" PRIu64 ", want %" PRIu64, cases[i].text, v,
                  cases[i].value);
    }
    CHECK(!cfg_parse_duration(NULL, &v), "cfg_parse_duration(NULL) accepted");
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
    CHECK(c.ingress_workers == 1 && c.egress_workers == 1, "workers %u %u", c.ingress_workers, c.egress_workers);
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
    CHECK(c.spool_free_space_min == 1ull << 30, "free_space_min %" PRIu64, c.spool_free_space_min);
    CHECK(c.spool_dir && !c.spool_dir[0], "spool.dir %s", nz(c.spool_dir));
    CHECK(c.log_dir && !c.log_dir[0], "log.dir %s", nz(c.log_dir));
    CHECK(c.log_segment_size == 256ull << 20, "segment_size %" PRIu64, c.log_segment_size);
    CHECK(c.log_segment_age_ms == 3600000, "segment_age %" PRIu64, c.log_segment_age_ms);
    CHECK(c.log_flush_interval_ms == 1000, "flush_interval %" PRIu64, c.log_flush_interval_ms);
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
        "37: egress.workers: expected an integer, got string",
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
    CHECK(c.n_listeners == 1 && c.ingress_workers == 1, "bad file changed the default");
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

/* ---- one snippet, one exact outcome ---- */

#define TLS_PAIR                                                                                             \
    "certificate and private_key must be set together (or both left empty for a generated self-signed certificate)"

struct text_case {
    const char *text;
    const char *err; /* NULL: must load */
};

static void test_text_cases(void)
{
    static const struct text_case cases[] = {
        {"node = 5\n", "t.toml:1: node: expected a table, got integer\n"},
        {"foo = 1\n", "t.toml:1: unknown key \"foo\"\n"},
        {"[foo]\nbar = 1\n", "t.toml:1: unknown table \"foo\"\n"},
        {"\n[node.extra]\na = 1\n", "t.toml:2: unknown key \"node.extra\"\n"},
        {"node.user = \"mail\"\n", NULL},
        {"[node]\nlog_level = \"WARN\"\n", NULL},
        {"[node]\nhostname = \"mx\\r\\n.example\"\n",
         "t.toml:2: node.hostname: \"mx\\x0d\\x0a.example\" is not a valid host name\n"},
        {"[node]\nhostname = \"a-.example\"\n", "t.toml:2: node.hostname: \"a-.example\" is not a valid host name\n"},
        {"[node]\nhostname = \"1.2.3.4\"\n", "t.toml:2: node.hostname: \"1.2.3.4\" is not a valid host name\n"},
        {"[node]\nnode_id = 1979-05-27\n", "t.toml:2: node.node_id: expected a string, got date-time\n"},
        {"[node]\nuser = \"-x\"\n", "t.toml:2: node.user: \"-x\" is not a valid user name (1..32 of letters, "
                                    "digits, '.', '_', '-'; not starting with '-')\n"},
        {"[node]\ndata_dir = \"\"\n", "t.toml:2: node.data_dir: \"\" must be a non-empty path without control "
                                      "characters\n"},
        {"[node]\nlog_level = 1\n", "t.toml:2: node.log_level: expected a string, got integer\n"},
        {"[listener]\naddress = \"127.0.0.1:25\"\n",
         "t.toml:1: listener: expected an array of tables ([[listener]]), got table\n"},
        {"listener = []\n", "t.toml:1: listener: at least one listener is needed\n"},
        {"listener = [1]\n", "t.toml:1: listener[0]: expected a table, got integer\n"},
        {"[[listener]]\nname = \"a\"\n", "t.toml:1: listener[0]: missing address\n"},
        {"[[listener]]\naddress = 25\n", "t.toml:2: listener[0].address: expected a string, got integer\n"},
        {"[[listener]]\naddress = \"127.0.0.1:25\"\nname = \"a b\"\n",
         "t.toml:3: listener[0].name: \"a b\" must be 1..64 characters of letters, digits, '.', '_' and '-'\n"},
        {"[[listener]]\naddress = \"127.0.0.1:25\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n",
         "t.toml:4: listener[1].address: \"127.0.0.1:25\" is already used by listener[0]\n"},
        {"[admin]\nlisten = \"127.0.0.1:2525\"\n",
         "t.toml:2: admin.listen: \"127.0.0.1:2525\" is also an SMTP listener address\n"},
        {"[ingress]\nworkers = 33\n", "t.toml:2: ingress.workers: 33 is out of range (1..32)\n"},
        {"[egress]\nworkers = 1.0\n", "t.toml:2: egress.workers: expected an integer, got float\n"},
        {"[shm]\narena_size = \"512KiB\"\n", "t.toml:2: shm.arena_size: 524288 bytes is out of range (1MiB..64GiB)\n"},
        {"[shm]\narena_size = 68719476737\n",
         "t.toml:2: shm.arena_size: 68719476737 bytes is out of range (1MiB..64GiB)\n"},
        {"[shm]\narena_size = -1\n", "t.toml:2: shm.arena_size: -1 is negative\n"},
        {"[shm]\narena_size = true\n", "t.toml:2: shm.arena_size: expected a size (string like \"64MiB\" or an "
                                       "integer of bytes), got boolean\n"},
        {"[shm]\narena_size = \"64GiB\"\n", NULL},
        {"[shm]\narena_size = 1048576\n", NULL},
        {"[shm]\nring_slots = 32\n", "t.toml:2: shm.ring_slots: 32 is out of range (64..1048576)\n"},
        {"[shm]\nring_slots = 2097152\n", "t.toml:2: shm.ring_slots: 2097152 is out of range (64..1048576)\n"},
        {"[shm]\nring_slots = 64\nhugepages = \"off\"\n", NULL},
        {"[shm]\nhugepages = \"Auto\"\n", "t.toml:2: shm.hugepages: \"Auto\" is not one of \"auto\", \"require\", "
                                          "\"off\"\n"},
        {"[supervisor]\nrestart_backoff = \"10s\"\n",
         "t.toml:2: supervisor.restart_backoff: 10000 ms is longer than restart_backoff_max (5000 ms)\n"},
        {"[supervisor]\nrestart_backoff_max = 50\n",
         "t.toml:2: supervisor.restart_backoff: 100 ms is longer than restart_backoff_max (50 ms)\n"},
        {"[supervisor]\nready_timeout = -5\n", "t.toml:2: supervisor.ready_timeout: must be greater than 0\n"},
        {"[supervisor]\nready_timeout = 0\n", "t.toml:2: supervisor.ready_timeout: must be greater than 0\n"},
        {"[supervisor]\nready_timeout = \"400d\"\n",
         "t.toml:2: supervisor.ready_timeout: 34560000000 ms is longer than the maximum of 365 days\n"},
        {"[supervisor]\nready_timeout = \"10\"\n",
         "t.toml:2: supervisor.ready_timeout: \"10\" is not a duration (a number with ms, s, m, h or d)\n"},
        {"[supervisor]\ncrash_loop_limit = 0\n", "t.toml:2: supervisor.crash_loop_limit: 0 is out of range (1..1000)\n"},
        {"[supervisor]\nbin_dir = \"/opt/rm\\tbin\"\n",
         "t.toml:2: supervisor.bin_dir: \"/opt/rm\\x09bin\" must be a non-empty path without control characters\n"},
        {"[supervisor]\nbin_dir = [\"/a\"]\n", "t.toml:2: supervisor.bin_dir: expected a string, got array\n"},
        {"[supervisor]\ndrain_timeout = \"1h\"\nheartbeat_timeout = 3000\n", NULL},
        /* [ingress] limits */
        {"[ingress]\nmax_message_size = \"1KiB\"\n", NULL},
        {"[ingress]\nmax_message_size = \"2GiB\"\n", NULL},
        {"[ingress]\nmax_message_size = 1023\n",
         "t.toml:2: ingress.max_message_size: 1023 bytes is out of range (1KiB..2GiB)\n"},
        {"[ingress]\nmax_message_size = 2147483649\n",
         "t.toml:2: ingress.max_message_size: 2147483649 bytes is out of range (1KiB..2GiB)\n"},
        {"[ingress]\nmax_message_size = \"50MiBs\"\n",
         "t.toml:2: ingress.max_message_size: \"50MiBs\" is not a size (a number with B, KiB, MiB or GiB)\n"},
        {"[ingress]\nmax_recipients = 100000\nmax_connections = 1000000\nmax_connections_per_ip = 1000000\n", NULL},
        {"[ingress]\nmax_recipients = 1\nmax_connections = 1\nmax_connections_per_ip = 1\n", NULL},
        {"[ingress]\nmax_recipients = 100001\n",
         "t.toml:2: ingress.max_recipients: 100001 is out of range (1..100000)\n"},
        {"[ingress]\nmax_recipients = 1.5\n", "t.toml:2: ingress.max_recipients: expected an integer, got float\n"},
        {"[ingress]\nmax_connections = 0\n", "t.toml:2: ingress.max_connections: 0 is out of range (1..1000000)\n"},
        {"[ingress]\nmax_connections_per_ip = 1000001\n",
         "t.toml:2: ingress.max_connections_per_ip: 1000001 is out of range (1..1000000)\n"},
        {"[ingress]\nidle_timeout = \"30s\"\ndata_timeout = 1000\nspool_timeout = \"1h\"\n", NULL},
        {"[ingress]\nidle_timeout = \"0s\"\n", "t.toml:2: ingress.idle_timeout: must be greater than 0\n"},
        {"[ingress]\ndata_timeout = \"400d\"\n",
         "t.toml:2: ingress.data_timeout: 34560000000 ms is longer than the maximum of 365 days\n"},
        {"[ingress]\nspool_timeout = \"10\"\n",
         "t.toml:2: ingress.spool_timeout: \"10\" is not a duration (a number with ms, s, m, h or d)\n"},
        {"[ingress]\nmin_data_rate = 0\n", NULL},
        {"[ingress]\nmin_data_rate = 1000000000\n", NULL},
        {"[ingress]\nmin_data_rate = 1000000001\n",
         "t.toml:2: ingress.min_data_rate: 1000000001 is out of range (0..1000000000)\n"},
        {"[ingress]\nmin_data_rate = \"1KiB\"\n", "t.toml:2: ingress.min_data_rate: expected an integer, got string\n"},
        {"[ingress]\nmax_received_headers = 1000\n", NULL},
        {"[ingress]\nmax_received_headers = 0\n",
         "t.toml:2: ingress.max_received_headers: 0 is out of range (1..1000)\n"},
        {"[ingress]\nrelay_networks = \"127.0.0.1\"\n",
         "t.toml:2: ingress.relay_networks: expected an array of strings, got string\n"},
        {"[ingress]\nrelay_domains = \"example.com\"\n",
         "t.toml:2: ingress.relay_domains: expected an array of strings, got string\n"},
        {"[ingress]\nbanner_hostname = \"mx\"\n", "t.toml:2: unknown key \"ingress.banner_hostname\"\n"},
        /* [tls]: certificate and key both or neither */
        {"[tls]\nenabled = false\n", NULL},
        {"[tls]\nenabled = 1\n", "t.toml:2: tls.enabled: expected a boolean, got integer\n"},
        {"[tls]\ncertificate = \"/c.pem\"\nprivate_key = \"/k.pem\"\n", NULL},
        {"[tls]\ncertificate = \"\"\nprivate_key = \"\"\n", NULL},
        {"[tls]\ncertificate = \"/c.pem\"\n", "t.toml:2: tls.certificate: " TLS_PAIR "\n"},
        {"[tls]\nenabled = true\nprivate_key = \"/k.pem\"\n", "t.toml:3: tls.private_key: " TLS_PAIR "\n"},
        {"[tls]\ncertificate = \"\"\nprivate_key = \"/k.pem\"\n", "t.toml:3: tls.private_key: " TLS_PAIR "\n"},
        {"tls.certificate = \"/c\\nx\"\n",
         "t.toml:1: tls.certificate: \"/c\\x0ax\" must be a path without control characters (or \"\" for the "
         "default)\n"},
        {"[tls]\nciphers = \"HIGH\"\n", "t.toml:2: unknown key \"tls.ciphers\"\n"},
        /* [policy] */
        {"[policy]\nfile = \"\"\ninstruction_budget = 1000\nmemory_limit = \"1MiB\"\n", NULL},
        {"[policy]\nfile = \"p.lua\"\ninstruction_budget = 10000000000\nmemory_limit = \"4GiB\"\n", NULL},
        {"[policy]\ninstruction_budget = 10000000001\n",
         "t.toml:2: policy.instruction_budget: 10000000001 is out of range (1000..10000000000)\n"},
        {"[policy]\nmemory_limit = \"1023KiB\"\n",
         "t.toml:2: policy.memory_limit: 1047552 bytes is out of range (1MiB..4GiB)\n"},
        {"[policy]\nmemory_limit = -5\n", "t.toml:2: policy.memory_limit: -5 is negative\n"},
        {"[policy]\nfile = 1\n", "t.toml:2: policy.file: expected a string, got integer\n"},
        /* [spool] */
        {"[spool]\nfree_space_min = \"0\"\ndir = \"\"\n", NULL},
        {"[spool]\nfree_space_min = \"1024GiB\"\ndir = \"/srv/spool\"\n", NULL},
        {"[spool]\nfree_space_min = 1099511627777\n",
         "t.toml:2: spool.free_space_min: 1099511627777 bytes is out of range (0..1024GiB)\n"},
        {"[spool]\npath = \"/x\"\n", "t.toml:2: unknown key \"spool.path\"\n"},
        /* [log] */
        {"[log]\ndir = \"/l\"\nsegment_size = \"64GiB\"\nsegment_age = 1\nflush_interval = \"2d\"\n", NULL},
        {"[log]\nsegment_size = \"65GiB\"\n",
         "t.toml:2: log.segment_size: 69793218560 bytes is out of range (64KiB..64GiB)\n"},
        {"[log]\nsegment_size = 65535\n", "t.toml:2: log.segment_size: 65535 bytes is out of range (64KiB..64GiB)\n"},
        {"[log]\nsegment_age = \"0s\"\n", "t.toml:2: log.segment_age: must be greater than 0\n"},
        {"[log]\nflush_interval = 1.0\n", "t.toml:2: log.flush_interval: expected a duration (string like \"10s\" or "
                                           "an integer of milliseconds), got float\n"},
        {"log = 5\n", "t.toml:1: log: expected a table, got integer\n"},
        /* several errors from one snippet, in document order */
        {"[ingress]\nworkers = 0\n[egress]\nworkers = 0\nextra = 1\n",
         "t.toml:2: ingress.workers: 0 is out of range (1..32)\n"
         "t.toml:4: egress.workers: 0 is out of range (1..32)\n"
         "t.toml:5: unknown key \"egress.extra\"\n"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL;
        cfg_default(&c);
        int rc = cfg_load_text(&c, cases[i].text, strlen(cases[i].text), "t.toml", &err);
        if (!cases[i].err)
            CHECK(rc == 0 && err == NULL, "case %zu must load: rc %d err %s", i, rc, nz(err));
        else
            CHECK(rc == -EINVAL && err && strcmp(err, cases[i].err) == 0, "case %zu: rc %d\n--- got\n%s--- want\n%s",
                  i, rc, nz(err), cases[i].err);
        cfg_fini(&c);
        free(err);
    }
}

struct address_case {
    const char *address;
    const char *why; /* NULL: valid */
};

static void test_addresses(void)
{
    static const struct address_case cases[] = {
        {"0.0.0.0:25", NULL},
        {"127.0.0.1:65535", NULL},
        {"[::]:25", NULL},
        {"[2001:db8::1]:587", NULL},
        {"[::ffff:127.0.0.1]:25", NULL},
        {"localhost:1", NULL},
        {"mail-1.Example.com:2525", NULL},
        {"127.0.0.1", "is missing \":port\""},
        {"127.0.0.1:", "has no port"},
        {":25", "has no host (use 0.0.0.0 or [::] for every address)"},
        {"127.0.0.1:65536", "has a bad port (1..65535)"},
        {"127.0.0.1:000025", "has a bad port (1..65535)"},
        {"127.0.0.1:+25", "has a bad port (1..65535)"},
        {"127.0.0.1:25 ", "has a bad port (1..65535)"},
        {"127.0.0.1:smtp", "has a bad port (1..65535)"},
        {"01.2.3.4:25", "has a bad IPv4 address"},
        {"1.2.3:25", "has a bad IPv4 address"},
        {"1.2.3.4.5:25", "has a bad IPv4 address"},
        {"256.0.0.1:25", "has a bad IPv4 address"},
        {"[::1]25", "is not \"[IPv6]:port\""},
        {"[::1:25", "is not \"[IPv6]:port\""},
        {"[fe80::1%eth0]:25", "has a bad IPv6 address"},
        {"[]:25", "has a bad IPv6 address"},
        {"[1.2.3.4]:25", "has a bad IPv6 address"},
        {"::1:25", "is IPv6 without brackets (write \"[::1]:25\")"},
        {"-bad.example:25", "has a bad host name"},
        {"a..b:25", "has a bad host name"},
        {"ex_ample.com:25", "has a bad host name"},
        {"example.com.:25", "has a bad host name"},
        {"exa mple:25", "has a bad host name"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL, *want = NULL;
        char *text = xasprintf("[admin]\nlisten = \"%s\"\n", cases[i].address);
        cfg_default(&c);
        int rc = cfg_load_text(&c, text, strlen(text), "a.toml", &err);
        if (!cases[i].why) {
            CHECK(rc == 0 && strcmp(nz(c.admin_listen), cases[i].address) == 0, "address \"%s\" refused: %s",
                  cases[i].address, nz(err));
        } else {
            want = xasprintf("a.toml:2: admin.listen: \"%s\" %s\n", cases[i].address, cases[i].why);
            CHECK(rc == -EINVAL && err && strcmp(err, want) == 0, "address \"%s\":\n--- got\n%s--- want\n%s",
                  cases[i].address, nz(err), want);
        }
        cfg_fini(&c);
        free(want);
        free(err);
        free(text);
    }
}

/* ---- relay_networks: parsing through a load, then matching ---- */

struct cidr_case {
    const char *text;
    const char *why; /* NULL: valid */
    int family;
    const char *addr; /* expected network after parsing (inet_pton form) */
    unsigned prefix;
};

static void test_cidr_parse(void)
{
    static const char bad_net[] = "is not an IPv4 or IPv6 network (like \"10.0.0.0/8\" or \"2001:db8::/32\")";
    static const struct cidr_case cases[] = {
        {"127.0.0.0/8", NULL, AF_INET, "127.0.0.0", 8},
        {"10.1.2.3", NULL, AF_INET, "10.1.2.3", 32},
        {"10.1.2.3/32", NULL, AF_INET, "10.1.2.3", 32},
        {"0.0.0.0/0", NULL, AF_INET, "0.0.0.0", 0},
        {"192.168.128.0/17", NULL, AF_INET, "192.168.128.0", 17},
        {"::1", NULL, AF_INET6, "::1", 128},
        {"::1/128", NULL, AF_INET6, "::1", 128},
        {"::/0", NULL, AF_INET6, "::", 0},
        {"2001:DB8::/32", NULL, AF_INET6, "2001:db8::", 32},
        {"fe80::/10", NULL, AF_INET6, "fe80::", 10},
        {"::ffff:10.0.0.0/104", NULL, AF_INET6, "::ffff:10.0.0.0", 104},
        {"10.0.0.0/33", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"::1/129", "has a bad prefix length (0..128)", 0, NULL, 0},
        {"10.0.0.0/", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/-1", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/+8", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/08", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/8/8", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/8 ", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"10.0.0.0/1000", "has a bad prefix length (0..32)", 0, NULL, 0},
        {"::/00", "has a bad prefix length (0..128)", 0, NULL, 0},
        {"10.1.0.0/8", "has bits set after the prefix (the network is \"10.0.0.0/8\")", 0, NULL, 0},
        {"2001:db8::1/32", "has bits set after the prefix (the network is \"2001:db8::/32\")", 0, NULL, 0},
        {"0.0.0.1/0", "has bits set after the prefix (the network is \"0.0.0.0/0\")", 0, NULL, 0},
        {"", bad_net, 0, NULL, 0},
        {"/8", bad_net, 0, NULL, 0},
        {"garbage", bad_net, 0, NULL, 0},
        {"localhost", bad_net, 0, NULL, 0},
        {"256.0.0.0/8", bad_net, 0, NULL, 0},
        {"10.0.0/8", bad_net, 0, NULL, 0},
        {"010.0.0.0/8", bad_net, 0, NULL, 0},
        {" 10.0.0.0/8", bad_net, 0, NULL, 0},
        {"fe80::1%eth0", bad_net, 0, NULL, 0},
        {"[::1]/128", bad_net, 0, NULL, 0},
        {"1:2:3:4:5:6:7:8:9/64", bad_net, 0, NULL, 0},
        {"::1::2", bad_net, 0, NULL, 0},
        {"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255:1/1", bad_net, 0, NULL, 0},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL, *want = NULL;
        char *text = xasprintf("[ingress]\nrelay_networks = [\"%s\"]\n", cases[i].text);
        cfg_default(&c);
        int rc = cfg_load_text(&c, text, strlen(text), "n.toml", &err);
        if (!cases[i].why) {
            uint8_t want_addr[16] = {0};
            inet_pton(cases[i].family, cases[i].addr, want_addr);
            CHECK(rc == 0 && c.n_relay_networks == 1, "network \"%s\" refused: %s", cases[i].text, nz(err));
            if (rc == 0 && c.n_relay_networks == 1)
                CHECK(c.relay_networks[0].family == cases[i].family &&
                          c.relay_networks[0].prefix == cases[i].prefix &&
                          memcmp(c.relay_networks[0].addr, want_addr, 16) == 0,
                      "network \"%s\": family %d prefix %u", cases[i].text, c.relay_networks[0].family,
                      c.relay_networks[0].prefix);
        } else {
            want = xasprintf("n.toml:2: ingress.relay_networks[0]: \"%s\" %s\n", cases[i].text, cases[i].why);
            CHECK(rc == -EINVAL && err && strcmp(err, want) == 0, "network \"%s\":\n--- got\n%s--- want\n%s",
                  cases[i].text, nz(err), want);
            CHECK(c.n_relay_networks == 2, "network \"%s\": failed load changed the default", cases[i].text);
        }
        cfg_fini(&c);
        free(want);
        free(err);
        free(text);
    }

    /* an empty list is allowed and replaces the default; 64 is the most, reported at the 65th */
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    CHECK(load_str(&c, "[ingress]\nrelay_networks = []\n", "n.toml", &err) == 0 && c.n_relay_networks == 0,
          "empty relay_networks: %s, n %zu", nz(err), c.n_relay_networks);
    free(err);
    err = NULL;
    size_t cap = 64 * 24 + 64, len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "[ingress]\nrelay_networks = [\n");
    for (int i = 0; i < 65; i++)
        len += (size_t)snprintf(text + len, cap - len, "\"10.0.%d.0/24\",\n", i);
    len += (size_t)snprintf(text + len, cap - len, "]\n");
    int rc = cfg_load_text(&c, text, len, "n.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, "n.toml:67: ingress.relay_networks: at most 64 networks are allowed, "
                                               "found 65\n") == 0,
          "65 networks: rc %d err %s", rc, nz(err));
    CHECK(c.n_relay_networks == 0, "65 networks: failed load changed the list");
    free(err);
    err = NULL;
    /* 64 load, and a later file's list replaces the earlier one as a whole */
    char *end = strstr(text, "\"10.0.64.0/24\",\n");
    memcpy(end, "]\n", 3);
    rc = cfg_load_text(&c, text, strlen(text), "n.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 64 && c.relay_networks[63].addr[2] == 63, "64 networks: rc %d err %s",
          rc, nz(err));
    free(err);
    err = NULL;
    rc = load_str(&c, "[ingress]\nrelay_networks = [\"::1\"]\n", "n.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 1 && c.relay_networks[0].family == AF_INET6, "replace: rc %d n %zu", rc,
          c.n_relay_networks);
    free(err);
    free(text);
    cfg_fini(&c);
}

struct match_case {
    const char *addr;
    bool want;
};

static bool match_text(const struct cfg *c, const char *text)
{
    uint8_t a[16];
    if (inet_pton(AF_INET, text, a) == 1)
        return cfg_cidr_match(c->relay_networks, c->n_relay_networks, AF_INET, a);
    if (inet_pton(AF_INET6, text, a) == 1)
        return cfg_cidr_match(c->relay_networks, c->n_relay_networks, AF_INET6, a);
    FAIL("test address %s does not parse", text);
    return false;
}

static void test_cidr_match(void)
{
    static const char nets[] = "[ingress]\nrelay_networks = [\"10.0.0.0/8\", \"192.168.1.7\", \"172.16.0.0/12\","
                               " \"2001:db8::/32\", \"::1/128\", \"fe80::/10\", \"100.64.0.0/10\"]\n";
    static const struct match_case cases[] = {
        {"10.0.0.0", true},
        {"10.255.255.255", true},
        {"11.0.0.0", false},
        {"9.255.255.255", false},
        {"192.168.1.7", true},       /* a bare address is a /32 */
        {"192.168.1.6", false},
        {"192.168.1.8", false},
        {"172.31.255.255", true},    /* /12 ends inside a byte */
        {"172.32.0.0", false},
        {"172.15.255.255", false},
        {"100.127.0.1", true},       /* /10 */
        {"100.128.0.1", false},
        {"127.0.0.1", false},        /* the default was replaced */
        {"::ffff:10.1.2.3", true},   /* IPv4-mapped matches IPv4 networks */
        {"::ffff:192.168.1.7", true},
        {"::ffff:192.168.1.8", false},
        {"::ffff:11.0.0.1", false},
        {"::10.1.2.3", false},       /* IPv4-compatible is not mapped */
        {"::ffff:0:10.1.2.3", false}, /* nor is the SIIT form */
        {"2001:db8::1", true},
        {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
        {"2001:db9::", false},
        {"2001:db7:ffff::", false},
        {"::1", true},
        {"::2", false},
        {"::", false},
        {"fe80::1", true},
        {"febf:ffff::1", true},
        {"fec0::1", false},
    };
    struct cfg c;
    char *err = NULL;

    cfg_default(&c);
    /* the default: loopback of both families, also as an IPv4-mapped address */
    CHECK(match_text(&c, "127.0.0.1") && match_text(&c, "127.255.0.9") && match_text(&c, "::1") &&
              match_text(&c, "::ffff:127.0.0.1"),
          "default relay_networks miss loopback");
    CHECK(!match_text(&c, "128.0.0.1") && !match_text(&c, "::2") && !match_text(&c, "10.0.0.1"),
          "default relay_networks match too much");
    int rc = cfg_load_text(&c, nets, strlen(nets), "m.toml", &err);
    CHECK(rc == 0 && c.n_relay_networks == 7, "match networks: rc %d err %s", rc, nz(err));
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        CHECK(match_text(&c, cases[i].addr) == cases[i].want, "match %s: want %d", cases[i].addr, cases[i].want);

    /* /0 of each family; an IPv4 client is also compared as ::ffff:a.b.c.d with IPv6 networks */
    struct cfg_cidr any4 = {.family = AF_INET, .prefix = 0};
    struct cfg_cidr any6 = {.family = AF_INET6, .prefix = 0};
    struct cfg_cidr mapped96 = {.family = AF_INET6, .addr = {[10] = 0xff, [11] = 0xff}, .prefix = 96};
    struct cfg_cidr host4 = {.family = AF_INET, .addr = {203, 0, 113, 5}, .prefix = 32};
    struct cfg_cidr host6 = {.family = AF_INET6, .addr = {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, .prefix = 128};
    uint8_t v4[4] = {203, 0, 113, 5}, v4b[4] = {203, 0, 113, 4};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, v6b[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 4};
    uint8_t m4[16] = {[10] = 0xff, [11] = 0xff, [12] = 203, [13] = 0, [14] = 113, [15] = 5};
    CHECK(cfg_cidr_match(&any4, 1, AF_INET, v4) && cfg_cidr_match(&any4, 1, AF_INET, v4b), "0.0.0.0/0 v4");
    CHECK(!cfg_cidr_match(&any4, 1, AF_INET6, v6), "0.0.0.0/0 matches an IPv6 address");
    CHECK(cfg_cidr_match(&any4, 1, AF_INET6, m4), "0.0.0.0/0 misses a mapped address");
    CHECK(cfg_cidr_match(&any6, 1, AF_INET6, v6) && cfg_cidr_match(&any6, 1, AF_INET, v4), "::/0");
    CHECK(cfg_cidr_match(&mapped96, 1, AF_INET, v4) && !cfg_cidr_match(&mapped96, 1, AF_INET6, v6),
          "::ffff:0:0/96");
    CHECK(cfg_cidr_match(&host4, 1, AF_INET, v4) && !cfg_cidr_match(&host4, 1, AF_INET, v4b), "/32");
    CHECK(cfg_cidr_match(&host4, 1, AF_INET6, m4), "/32 with a mapped address");
    CHECK(cfg_cidr_match(&host6, 1, AF_INET6, v6) && !cfg_cidr_match(&host6, 1, AF_INET6, v6b), "/128");
    CHECK(!cfg_cidr_match(&host6, 1, AF_INET, v4), "/128 matches an IPv4 address");
    /* what matches nothing */
    CHECK(!cfg_cidr_match(&any4, 0, AF_INET, v4), "n = 0 matched");
    CHECK(!cfg_cidr_match(NULL, 3, AF_INET, v4), "NULL nets matched");
    CHECK(!cfg_cidr_match(&any4, 1, AF_INET, NULL), "NULL addr matched");
    CHECK(!cfg_cidr_match(&any4, 1, AF_UNIX, v4) && !cfg_cidr_match(&any6, 1, AF_UNSPEC, v6), "other family matched");
    struct cfg_cidr broken[2] = {{.family = AF_INET, .prefix = 200}, {.family = AF_INET6, .prefix = 255}};
    CHECK(!cfg_cidr_match(broken, 2, AF_INET, v4) && !cfg_cidr_match(broken, 2, AF_INET6, v6),
          "an out-of-range prefix matched");
    cfg_fini(&c);
    free(err);
}

struct domain_case {
    const char *text;
    const char *want; /* stored form, or the error after the quoted value */
    bool ok;
};

static void test_relay_domains(void)
{
    static const struct domain_case cases[] = {
        {"example.com", "example.com", true},
        {"Example.COM", "example.com", true},
        {"localhost", "localhost", true},
        {"xn--bcher-kva.example", "xn--bcher-kva.example", true},
        {"a-b.c-d.example", "a-b.c-d.example", true},
        {"example.com.", "ends with a dot (write it without)", false},
        {"EXAMPLE.com.", "ends with a dot (write it without)", false},
        {".", "is not a valid domain name", false},
        {"", "is not a valid domain name", false},
        {"example..com", "is not a valid domain name", false},
        {"example.com..", "is not a valid domain name", false},
        {".example.com", "is not a valid domain name", false},
        {"*.example.com", "is not a valid domain name", false},
        {"-a.example", "is not a valid domain name", false},
        {"a-.example", "is not a valid domain name", false},
        {"ex_ample.com", "is not a valid domain name", false},
        {"exa mple.com", "is not a valid domain name", false},
        {"[192.0.2.1]", "is not a valid domain name", false},
        {"192.0.2.1", "is not a valid domain name", false},
        {"user@example.com", "is not a valid domain name", false},
        {"example.com\\r\\n", "is not a valid domain name", false},
        {"b\\u00fccher.example", "is not a valid domain name", false},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example", "is not a valid domain name",
         false},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct cfg c;
        char *err = NULL, *want = NULL;
        char *text = xasprintf("[ingress]\nrelay_domains = [\"%s\"]\n", cases[i].text);
        cfg_default(&c);
        int rc = cfg_load_text(&c, text, strlen(text), "d.toml", &err);
        if (cases[i].ok) {
            CHECK(rc == 0 && c.n_relay_domains == 1 && strcmp(nz(c.relay_domains[0]), cases[i].want) == 0,
                  "domain \"%s\": rc %d stored %s err %s", cases[i].text, rc,
                  c.n_relay_domains ? nz(c.relay_domains[0]) : "-", nz(err));
        } else {
            CHECK(rc == -EINVAL && err && strncmp(err, "d.toml:2: ingress.relay_domains[0]: \"", 37) == 0 &&
                      strstr(err, cases[i].want) && strchr(err, '\n') == err + strlen(err) - 1,
                  "domain \"%s\": rc %d err %s", cases[i].text, rc, nz(err));
            CHECK(c.n_relay_domains == 0 && c.relay_domains == NULL, "domain \"%s\": failed load stored it",
                  cases[i].text);
        }
        cfg_fini(&c);
        free(want);
        free(err);
        free(text);
    }

    /* exact text with the value echoed; several at once; a later list replaces the earlier one */
    static const char many[] =
        "[ingress]\nrelay_domains = [\n  \"a.example\",\n  \"b.example.\",\n  7,\n  \"c d\",\n]\n";
    static const char want[] = "d.toml:4: ingress.relay_domains[1]: \"b.example.\" ends with a dot (write it without)\n"
                               "d.toml:5: ingress.relay_domains[2]: expected a string, got integer\n"
                               "d.toml:6: ingress.relay_domains[3]: \"c d\" is not a valid domain name\n";
    struct cfg c;
    char *err = NULL;
    cfg_default(&c);
    int rc = cfg_load_text(&c, many, strlen(many), "d.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, want) == 0, "domains:\n--- got\n%s--- want\n%s", nz(err), want);
    free(err);
    err = NULL;
    static const char two[] = "[ingress]\nrelay_domains = [\"A.example\", \"b.EXAMPLE\"]\n";
    rc = cfg_load_text(&c, two, strlen(two), "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 2 && strcmp(nz(c.relay_domains[0]), "a.example") == 0 &&
              strcmp(nz(c.relay_domains[1]), "b.example") == 0,
          "two domains: rc %d err %s", rc, nz(err));
    free(err);
    err = NULL;
    /* a load that does not mention the key keeps the list; a failed load too */
    rc = load_str(&c, "[ingress]\nworkers = 2\n", "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 2, "unrelated load dropped relay_domains");
    rc = load_str(&c, "[ingress]\nrelay_domains = [\"x.example\"]\nworkers = 0\n", "d.toml", &err);
    CHECK(rc == -EINVAL && c.n_relay_domains == 2 && strcmp(nz(c.relay_domains[1]), "b.example") == 0,
          "failed load changed relay_domains");
    free(err);
    err = NULL;
    rc = load_str(&c, "[ingress]\nrelay_domains = []\n", "d.toml", &err);
    CHECK(rc == 0 && c.n_relay_domains == 0 && c.relay_domains == NULL, "empty list: rc %d n %zu", rc,
          c.n_relay_domains);
    free(err);
    cfg_fini(&c);
}

/* tls.certificate / private_key across loads: the pair is checked on the result, at a key this file wrote */
static void test_tls_pair(void)
{
    static const char both[] = "[tls]\ncertificate = \"/c.pem\"\nprivate_key = \"/k.pem\"\n";
    static const char clear[] = "[tls]\n\ncertificate = \"\"\n";
    static const char other[] = "[tls]\nenabled = false\n";
    struct cfg c;
    char *err = NULL;

    cfg_default(&c);
    int rc = cfg_load_text(&c, both, strlen(both), "a.toml", &err);
    CHECK(rc == 0 && strcmp(nz(c.tls_certificate), "/c.pem") == 0 && strcmp(nz(c.tls_private_key), "/k.pem") == 0,
          "tls pair: rc %d err %s", rc, nz(err));
    free(err);
    err = NULL;
    rc = cfg_load_text(&c, clear, strlen(clear), "b.toml", &err);
    CHECK(rc == -EINVAL && err && strcmp(err, "b.toml:3: tls.certificate: certificate and private_key must be set "
                                               "together (or both left empty for a generated self-signed "
                                               "certificate)\n") == 0,
          "clearing one of the pair: rc %d err %s", rc, nz(err));
    CHECK(strcmp(nz(c.tls_certificate), "/c.pem") == 0, "failed load cleared the certificate");
    free(err);
    err = NULL;
    rc = cfg_load_text(&c, other, strlen(other), "c.toml", &err);
    CHECK(rc == 0 && !c.tls_enabled && strcmp(nz(c.tls_private_key), "/k.pem") == 0, "tls.enabled load: %s",
          nz(err));
    free(err);
    cfg_fini(&c);
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

/* ---- the bridge ---- */

static void test_bridge_tree(void)
{
    static const char doc[] = "zeta = 1\n"
                              "alpha = \"two\"\n"
                              "[tbl]\n"
                              "b = 2.5\n"
                              "a = true\n"
                              "when = 1979-05-27T07:32:00Z\n"
                              "day = 1979-05-27\n"
                              "at = 07:32:00\n"
                              "arr = [\n"
                              "  3,\n"
                              "  \"x\",\n"
                              "]\n"
                              "inl = { q = 1, p = { r = -7 } }\n"
                              "[[aot]]\n"
                              "k = 1\n"
                              "[[aot]]\n"
                              "k = 2\n";
    char *err = (char *)"untouched";
    struct cfg_toml_node *root = cfg_toml_parse(doc, sizeof(doc) - 1, "tree", &err);
    const struct cfg_toml_node *n, *t;

    CHECK(root && err == NULL, "parse: %s", nz(err));
    if (!root)
        return;
    CHECK(root->type == CFG_TOML_TABLE && root->n_children == 4, "root: type %d, %zu children", root->type,
          root->n_children);
    static const char *const order[] = {"zeta", "alpha", "tbl", "aot"};
    for (size_t i = 0; i < 4 && i < root->n_children; i++)
        CHECK(strcmp(nz(root->children[i]->key), order[i]) == 0, "root child %zu is %s, want %s", i,
              nz(root->children[i]->key), order[i]);
    n = cfg_toml_find(root, "zeta");
    CHECK(n && n->type == CFG_TOML_INT && n->i == 1 && n->line == 1 && n->column == 1, "zeta");
    n = cfg_toml_find(root, "alpha");
    CHECK(n && n->type == CFG_TOML_STRING && strcmp(nz(n->str), "two") == 0 && n->line == 2, "alpha");
    t = cfg_toml_find(root, "tbl");
    CHECK(t && t->type == CFG_TOML_TABLE && t->line == 3 && t->column == 2, "tbl at %u:%u", t ? t->line : 0,
          t ? t->column : 0);
    static const char *const torder[] = {"b", "a", "when", "day", "at", "arr", "inl"};
    for (size_t i = 0; t && i < ARRAY_SIZE(torder); i++)
        CHECK(i < t->n_children && strcmp(nz(t->children[i]->key), torder[i]) == 0, "tbl child %zu", i);
    n = cfg_toml_find(t, "b");
    CHECK(n && n->type == CFG_TOML_FLOAT && n->f == 2.5 && n->line == 4, "b");
    n = cfg_toml_find(t, "a");
    CHECK(n && n->type == CFG_TOML_BOOL && n->b, "a");
    n = cfg_toml_find(t, "when");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "1979-05-27T07:32:00Z") == 0, "when: %s",
          n ? nz(n->str) : "-");
    n = cfg_toml_find(t, "day");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "1979-05-27") == 0, "day");
    n = cfg_toml_find(t, "at");
    CHECK(n && n->type == CFG_TOML_DATETIME && strcmp(nz(n->str), "07:32:00") == 0, "at: %s", n ? nz(n->str) : "-");
    n = cfg_toml_find(t, "arr");
    CHECK(n && n->type == CFG_TOML_ARRAY && n->n_children == 2 && n->line == 9, "arr");
    if (n && n->n_children == 2) {
        CHECK(n->children[0]->type == CFG_TOML_INT && n->children[0]->i == 3 && n->children[0]->line == 10 &&
                  n->children[0]->column == 3 && n->children[0]->key == NULL,
              "arr[0]");
        CHECK(n->children[1]->type == CFG_TOML_STRING && n->children[1]->line == 11, "arr[1]");
    }
    n = cfg_toml_find(t, "inl");
    CHECK(n && n->type == CFG_TOML_TABLE && n->n_children == 2 && strcmp(nz(n->children[0]->key), "q") == 0, "inl");
    n = cfg_toml_find(cfg_toml_find(n, "p"), "r");
    CHECK(n && n->type == CFG_TOML_INT && n->i == -7 && n->line == 13, "inl.p.r");
    n = cfg_toml_find(root, "aot");
    CHECK(n && n->type == CFG_TOML_ARRAY && n->n_children == 2, "aot");
    if (n && n->n_children == 2) {
        CHECK(n->children[0]->line == 14 && n->children[1]->line == 16, "aot lines %u %u", n->children[0]->line,
              n->children[1]->line);
        const struct cfg_toml_node *k = cfg_toml_find(n->children[1], "k");
        CHECK(k && k->i == 2 && k->line == 17, "aot[1].k");
    }
    CHECK(cfg_toml_find(root, "nope") == NULL, "find of a missing key");
    CHECK(cfg_toml_find(cfg_toml_find(root, "zeta"), "x") == NULL, "find in a non-table");
    CHECK(cfg_toml_find(NULL, "x") == NULL, "find in NULL");
    cfg_toml_free(root);
    cfg_toml_free(NULL);

    static const struct {
        enum cfg_toml_type t;
        const char *name;
    } names[] = {
        {CFG_TOML_TABLE, "table"}, {CFG_TOML_ARRAY, "array"}, {CFG_TOML_STRING, "string"},
        {CFG_TOML_INT, "integer"}, {CFG_TOML_FLOAT, "float"}, {CFG_TOML_BOOL, "boolean"},
        {CFG_TOML_DATETIME, "date-time"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        CHECK(strcmp(cfg_toml_type_name(names[i].t), names[i].name) == 0, "type name %d", (int)names[i].t);
}

struct bridge_err_case {
    const char *text;
    size_t len; /* 0: strlen */
    const char *prefix;
};

static void test_bridge_errors(void)
{
    static const struct bridge_err_case cases[] = {
        {"a = 1\nb = [1,\n  2,,]\n", 0, "e:3:5: "},
        {"a = \"x\\u0000y\"\n", 0, "e:1:5: string contains a NUL character"},
        {"\"k\\u0000\" = 1\n", 0, "e:1:1: key contains a NUL character"},
        {"a = 1\na = 2\n", 0, "e:2:"},
        {"a = \"\xff\xfe\"\n", 0, "e:1:"},
        {"a = 1\0b = 2\n", 12, "e:1:"},
        {"[a]\n[a]\n", 0, "e:2:"},
        {"a = 99999999999999999999\n", 0, "e:1:"},
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *err = NULL;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        struct cfg_toml_node *root = cfg_toml_parse(cases[i].text, len, "e", &err);
        CHECK(root == NULL && err && strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) == 0,
              "bridge case %zu: got %s, want prefix %s", i, nz(err), cases[i].prefix);
        cfg_toml_free(root);
        free(err);
    }

    /* nesting deep enough to exhaust a naive recursive parser */
    size_t depth = 100000;
    char *deep = xmalloc(depth + 8);
    memcpy(deep, "a = ", 4);
    memset(deep + 4, '[', depth);
    char *err = NULL;
    struct cfg_toml_node *root = cfg_toml_parse(deep, depth + 4, "deep", &err);
    CHECK(root == NULL && err && strncmp(err, "deep:1:", 7) == 0, "deep nesting: %s", nz(err));
    cfg_toml_free(root);
    free(err);
    free(deep);

    /* NULL text is an empty document */
    err = NULL;
    root = cfg_toml_parse(NULL, 0, NULL, &err);
    CHECK(root && root->type == CFG_TOML_TABLE && root->n_children == 0 && err == NULL, "NULL text");
    cfg_toml_free(root);
}

/* every table's members are in document order, recursively; returns the number of nodes */
static size_t check_order(const struct cfg_toml_node *n, const char *file)
{
    size_t count = 1;
    for (size_t i = 0; i < n->n_children; i++) {
        const struct cfg_toml_node *a = n->children[i];
        CHECK(a->line > 0 && a->column > 0, "%s: node without a position", file);
        CHECK((n->type == CFG_TOML_TABLE) == (a->key != NULL), "%s: key presence at line %u", file, a->line);
        if (i > 0 && n->type == CFG_TOML_TABLE) {
            const struct cfg_toml_node *b = n->children[i - 1];
            CHECK(b->line < a->line || (b->line == a->line && b->column < a->column),
                  "%s: %s (line %u) before %s (line %u)", file, nz(b->key), b->line, nz(a->key), a->line);
        }
        count += check_order(a, file);
    }
    return count;
}

static void test_shaping_files(void)
{
    static const char *const files[] = {"kumomta-default-shaping.toml", "kumomta-community-shaping.toml"};
    const char *dir = env_or("RINGMAIL_SHARED_DATA", RINGMAIL_SOURCE_ROOT "/../shared/data");

    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char *path = xasprintf("%s/%s", dir, files[i]);
        size_t len = 0;
        char *text = read_file(path, &len);
        if (!text) {
            printf("skip: %s not found (set RINGMAIL_SHARED_DATA)\n", path);
            free(path);
            continue;
        }
        char *err = NULL;
        struct cfg_toml_node *root = cfg_toml_parse(text, len, path, &err);
        CHECK(root != NULL, "%s does not parse: %s", path, nz(err));
        if (root) {
            size_t nodes = check_order(root, files[i]);
            CHECK(root->n_children > 0 && nodes > 50, "%s: only %zu nodes", files[i], nodes);
            /* every section of a shaping file is a table: a domain, "default" or provider */
            for (size_t j = 0; j < root->n_children; j++)
                CHECK(root->children[j]->type == CFG_TOML_TABLE, "%s: top-level %s is %s", files[i],
                      nz(root->children[j]->key), cfg_toml_type_name(root->children[j]->type));
            const struct cfg_toml_node *prov = cfg_toml_find(root, "provider");
            CHECK(prov && prov->type == CFG_TOML_TABLE && prov->n_children > 0, "%s: no [provider.*]", files[i]);
            if (i == 0) {
                const struct cfg_toml_node *def = cfg_toml_find(root, "default");
                const struct cfg_toml_node *limit = cfg_toml_find(def, "connection_limit");
                const struct cfg_toml_node *autom = cfg_toml_find(def, "automation");
                CHECK(def && root->children[0] == def, "default shaping: [\"default\"] is not first");
                CHECK(limit && limit->type == CFG_TOML_INT, "default shaping: default.connection_limit");
                CHECK(autom && autom->type == CFG_TOML_ARRAY && autom->n_children > 0 &&
                          autom->children[0]->type == CFG_TOML_TABLE,
                      "default shaping: [[\"default\".automation]]");
            }
        }
        cfg_toml_free(root);
        free(err);
        free(text);
        free(path);
    }
}

static void test_example_config(void)
{
    const char *path = env_or("RINGMAIL_EXAMPLE_CONFIG", RINGMAIL_SOURCE_ROOT "/docs/ringmail.example.toml");
    char *err = NULL;
    struct cfg c;
    struct stat st;

    CHECK(stat(path, &st) == 0, "example config %s: %s", path, strerror(errno));
    cfg_default(&c);
    int rc = cfg_load_file(&c, path, &err);
    CHECK(rc == 0 && err == NULL, "example config %s does not load (rc %d):\n%s", path, rc, nz(err));
    /* the example writes the defaults out; a drift between file and code shows here */
    struct cfg d;
    cfg_default(&d);
    CHECK(c.ingress_max_message_size == d.ingress_max_message_size &&
              c.ingress_max_recipients == d.ingress_max_recipients &&
              c.ingress_max_connections == d.ingress_max_connections &&
              c.ingress_max_conn_per_ip == d.ingress_max_conn_per_ip &&
              c.ingress_idle_timeout_ms == d.ingress_idle_timeout_ms &&
              c.ingress_data_timeout_ms == d.ingress_data_timeout_ms &&
              c.ingress_min_data_rate == d.ingress_min_data_rate && c.ingress_max_received == d.ingress_max_received &&
              c.ingress_spool_timeout_ms == d.ingress_spool_timeout_ms,
          "example config: [ingress] limits differ from the defaults");
    CHECK(c.n_relay_networks == d.n_relay_networks &&
              memcmp(c.relay_networks, d.relay_networks, d.n_relay_networks * sizeof(d.relay_networks[0])) == 0 &&
              c.n_relay_domains == 0,
          "example config: relay lists differ from the defaults");
    CHECK(c.tls_enabled == d.tls_enabled && strcmp(nz(c.tls_certificate), "") == 0 &&
              c.policy_instruction_budget == d.policy_instruction_budget &&
              c.policy_memory_limit == d.policy_memory_limit && c.spool_free_space_min == d.spool_free_space_min &&
              strcmp(nz(c.spool_dir), "") == 0 && strcmp(nz(c.log_dir), "") == 0 &&
              c.log_segment_size == d.log_segment_size && c.log_segment_age_ms == d.log_segment_age_ms &&
              c.log_flush_interval_ms == d.log_flush_interval_ms,
          "example config: [tls], [policy], [spool] or [log] differ from the defaults");
    cfg_fini(&d);
    cfg_fini(&c);
    free(err);
}

int main(void)
{
    test_sizes();
    test_durations();
    test_defaults();
    test_good_file();
    test_bad_file();
    test_syntax_error();
    test_unreadable();
    test_text_cases();
    test_addresses();
    test_cidr_parse();
    test_cidr_match();
    test_relay_domains();
    test_tls_pair();
    test_error_cap();
    test_mutations();
    test_bridge_tree();
    test_bridge_errors();
    test_shaping_files();
    test_example_config();
    CHECK_EXIT();
}
