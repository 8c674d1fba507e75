/*
 * cfg_snippet_test - ringmail.toml loading (cfg/cfg.c): one snippet, one exact outcome
 *
 * Table-driven: each snippet either loads or fails with its exact message; listener and source
 * addresses.
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
#include "tests/unit/cfg/cfg_test.h"

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
        {"[node]\nspool_user = \"\"\ningress_user = \"ringmail-in\"\n", NULL},
        {"[node]\negress_user = \"-x\"\n", "t.toml:2: node.egress_user: \"-x\" is not a valid user name (1..32 of "
                                          "letters, digits, '.', '_', '-'; or \"\" for [node] user)\n"},
        {"[suppression.tenant.\"acme\"]\non_rcpt = \"drop\"\n", NULL},
        {"[suppression.tenant.\"acme\"]\non_rcpt = \"bounce\"\n",
         "t.toml:2: suppression.tenant.acme.on_rcpt: \"bounce\" must be \"reject\" or \"drop\"\n"},
        {"[suppression.tenant.\"a b\"]\non_rcpt = \"drop\"\n",
         "t.toml:1: suppression.tenant.a b: \"a b\" is not a tenant name\n"},
        {"[suppression.tenant.\"acme\"]\nmode = \"drop\"\n", "t.toml:2: unknown key \"suppression.tenant.acme.mode\"\n"},
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
        /* HTTP injection (cfg_http.c) */
        {"[[http_listener]]\nlisten = \"127.0.0.1:8000\"\ntrusted_networks = [\"10.0.0.0/8\"]\n"
         "max_request_size = \"10MiB\"\nrequest_timeout = \"30s\"\nmax_connections = 10\n"
         "[http_inject]\nallow_admin_token = false\nmax_recipients = 5\n",
         NULL},
        {"http_listener = []\n", NULL},
        {"[[http_listener]]\nport = 8000\n",
         "t.toml:2: unknown key \"http_listener[0].port\"\nt.toml:1: http_listener[0]: missing listen\n"},
        {"[[http_listener]]\nlisten = \"127.0.0.1:2525\"\n",
         "t.toml:1: http_listener[0].listen: \"127.0.0.1:2525\" is also an SMTP listener address\n"},
        {"[[http_listener]]\nlisten = \"127.0.0.1:8025\"\n",
         "t.toml:1: http_listener[0].listen: \"127.0.0.1:8025\" is also the admin listener address\n"},
        {"[[http_listener]]\nlisten = \"127.0.0.1:8000\"\ntls_certificate = \"/c.pem\"\n",
         "t.toml:1: http_listener[0]: tls_certificate and tls_private_key must be set together\n"},
        {"[[http_listener]]\nlisten = \"127.0.0.1:8000\"\nmax_request_size = 10\n",
         "t.toml:3: http_listener[0].max_request_size: 10 bytes is out of range (1KiB..2GiB)\n"},
        {"[[http_listener]]\nlisten = \"127.0.0.1:8000\"\n[[http_listener]]\nlisten = \"127.0.0.1:8000\"\n",
         "t.toml:3: http_listener[1].listen: \"127.0.0.1:8000\" is already used by http_listener[0]\n"},
        {"[http_inject]\nmax_recipients = 0\n", "t.toml:2: http_inject.max_recipients: 0 is out of range (1..100000)\n"},
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
        {"[policy]\nhook_time_limit = \"1ms\"\n", NULL},
        {"[policy]\nhook_time_limit = \"5s\"\n", NULL},
        {"[policy]\nhook_time_limit = \"6s\"\n",
         "t.toml:2: policy.hook_time_limit: 6000 ms is out of range (1..5000 ms)\n"},
        {"[egress]\nmin_data_rate = 0\n", NULL},
        {"[egress]\nmin_data_rate = 1000000001\n",
         "t.toml:2: egress.min_data_rate: 1000000001 is out of range (0..1000000000)\n"},
        /* [spool] */
        {"[spool]\nfree_space_min = \"0\"\ndir = \"\"\n", NULL},
        {"[spool]\nfree_space_min = \"1024GiB\"\ndir = \"/srv/spool\"\n", NULL},
        {"[spool]\nfree_space_min = 1099511627777\n",
         "t.toml:2: spool.free_space_min: 1099511627777 bytes is out of range (0..1024GiB)\n"},
        {"[spool]\npath = \"/x\"\n", "t.toml:2: unknown key \"spool.path\"\n"},
        {"[spool]\nbody_log = false\nbody_log_min_size = \"512\"\nbody_log_segment_size = \"1MiB\"\n", NULL},
        {"[spool]\nbody_log_min_size = \"2GiB\"\n",
         "t.toml:2: spool.body_log_min_size: 2147483648 bytes is out of range (512..1GiB)\n"},
        {"[spool]\nbody_log_segment_size = \"64KiB\"\n",
         "t.toml:2: spool.body_log_segment_size: 65536 bytes is out of range (1MiB..1024GiB)\n"},
        {"[spool]\nbody_log = \"yes\"\n", "t.toml:2: spool.body_log: expected a boolean, got string\n"},
        /* [metrics] */
        {"[metrics]\nmax_sites = 1\nmax_providers = 10000\nmax_sources = 7\n", NULL},
        {"[metrics]\nmax_sites = 0\n", "t.toml:2: metrics.max_sites: 0 is out of range (1..10000)\n"},
        {"[metrics]\nmax_sources = 10001\n", "t.toml:2: metrics.max_sources: 10001 is out of range (1..10000)\n"},
        {"[metrics]\nmax_labels = 5\n", "t.toml:2: unknown key \"metrics.max_labels\"\n"},
        /* [log] */
        {"[log]\ndir = \"/l\"\nsegment_size = \"64GiB\"\nsegment_age = 1\nflush_interval = \"2d\"\n", NULL},
        {"[log]\nsegment_size = \"65GiB\"\n",
         "t.toml:2: log.segment_size: 69793218560 bytes is out of range (64KiB..64GiB)\n"},
        {"[log]\nsegment_size = 65535\n", "t.toml:2: log.segment_size: 65535 bytes is out of range (64KiB..64GiB)\n"},
        {"[log]\nsegment_age = \"0s\"\n", "t.toml:2: log.segment_age: must be greater than 0\n"},
        {"[log]\nflush_interval = 1.0\n", "t.toml:2: log.flush_interval: expected a duration (string like \"10s\" or "
                                           "an integer of milliseconds), got float\n"},
        {"log = 5\n", "t.toml:1: log: expected a table, got integer\n"},
        {"[log]\nmax_age = \"30d\"\nmax_total_size = \"2048GiB\"\nmin_free_space = \"0\"\n", NULL},
        {"[log]\nmax_age = \"0s\"\n", "t.toml:2: log.max_age: must be greater than 0\n"},
        {"[log]\nmin_free_space = \"1025GiB\"\n",
         "t.toml:2: log.min_free_space: 1100585369600 bytes is out of range (0..1024GiB)\n"},
        {"[log]\nmax_total_size = -1\n", "t.toml:2: log.max_total_size: -1 is negative\n"},
        /* [[listener]] tls and require_auth, [auth] */
        {"[[listener]]\naddress = \"127.0.0.1:465\"\ntls = \"implicit\"\nrequire_auth = true\n", NULL},
        {"[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"starttls\"\n", NULL},
        {"[[listener]]\naddress = \"127.0.0.1:465\"\ntls = \"ssl\"\n",
         "t.toml:3: listener[0].tls: \"ssl\" must be \"starttls\" (the default) or \"implicit\"\n"},
        {"[[listener]]\naddress = \"127.0.0.1:587\"\nrequire_auth = \"yes\"\n",
         "t.toml:3: listener[0].require_auth: expected a boolean, got string\n"},
        {"[tls]\nenabled = false\n[[listener]]\naddress = \"127.0.0.1:465\"\ntls = \"implicit\"\n",
         "t.toml:2: listener[0].tls: \"implicit\" needs [tls] enabled = true\n"},
        {"[auth]\npasswords_file = \"/etc/ringmail/passwords\"\nmax_failures_per_ip = 0\nfailure_window = \"5m\"\n"
         "lockout = \"1h\"\n", NULL},
        {"[auth]\nmax_failures_per_ip = -1\n", "t.toml:2: auth.max_failures_per_ip: -1 is out of range (0..1000000)\n"},
        {"[auth]\nlockout = \"0s\"\n", "t.toml:2: auth.lockout: must be greater than 0\n"},
        {"[auth]\npassword_file = \"x\"\n", "t.toml:2: unknown key \"auth.password_file\"\n"},
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


/* the listener flags and [auth] values land in struct cfg */
static void test_auth_values(void)
{
    static const char text[] = "[[listener]]\naddress = \"127.0.0.1:25\"\n[[listener]]\naddress = \"127.0.0.1:465\"\n"
                               "tls = \"implicit\"\n[[listener]]\naddress = \"127.0.0.1:587\"\nrequire_auth = true\n"
                               "[auth]\npasswords_file = \"/p\"\nmax_failures_per_ip = 7\nfailure_window = \"2m\"\n"
                               "lockout = \"1h\"\n";
    struct cfg c;
    char *err = NULL;

    cfg_default(&c);
    CHECK(c.auth_passwords_file && c.auth_passwords_file[0] == '\0' && c.auth_max_failures == 5,
          "auth defaults");
    int rc = cfg_load_text(&c, text, strlen(text), "t.toml", &err);
    CHECK(rc == 0, "auth values: %s", nz(err));
    if (rc == 0) {
        CHECK(c.n_listeners == 3 && !c.listeners[0].implicit_tls && !c.listeners[0].require_auth &&
                  c.listeners[1].implicit_tls && !c.listeners[1].require_auth && !c.listeners[2].implicit_tls &&
                  c.listeners[2].require_auth,
              "listener flags");
        CHECK(strcmp(c.auth_passwords_file, "/p") == 0 && c.auth_max_failures == 7 &&
                  c.auth_failure_window_ms == 120000 && c.auth_lockout_ms == 3600000,
              "auth values");
    }
    cfg_fini(&c);
    free(err);
}

int main(void)
{
    test_text_cases();
    test_auth_values();
    test_addresses();
    CHECK_EXIT();
}
