"""GET /metrics and /metrics.json end to end (issue 11, "Metrics"): smtplib -> node -> two recording sinks on
their own loopback addresses (two sites, MX records from a real DNS server, unbound), with [metrics]
max_sites = 1. While the mail flows, the live /metrics must pass `promtool check metrics` (Prometheus's own
checker, lint included); after the run the delivered counts in /metrics and /metrics.json must equal what
the sinks received and the Delivery records of the log, the time-to-250 histogram must count every message
answered 250, and the smaller site must be summed under `other`. One node for every check (CI time).

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/metrics_test.py -k promtool
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_dialogue, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "metrics", "timeout": 90}

PROMTOOL = "/usr/bin/promtool"
BIG, SMALL = 30, 10  # messages to big.test (its site keeps its label) and to small.test (summed under other)
BIG_SITE = "mx.big.test"


def parse_text(text):
    """{(name, frozenset(labels)): value} of the exposition text; label values unescaped."""
    out = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                           for k, v in label.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def family(samples, name):
    """{labels dict as a sorted tuple: value} of one family."""
    return {tuple(sorted(k[1])): v for k, v in samples.items() if k[0] == name}


def total(samples, name):
    return sum(family(samples, name).values())


class MetricsCase(PeersCase):
    records = [
        "big.test. 60 IN MX 10 mx.big.test.",
        "mx.big.test. 60 IN A 127.0.0.2",
        "small.test. 60 IN MX 10 mx.small.test.",
        "mx.small.test. 60 IN A 127.0.0.3",
    ]

    def start(self):
        port = free_udp_tcp_port("127.0.0.2")
        self.big = self.peer(Sink("127.0.0.2", port))
        self.small = self.peer(Sink("127.0.0.3", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\nidle_timeout = "1s"'
        self.node = Node(egress=eg, park_delivery=False, config_extra="[metrics]\nmax_sites = 1\n")
        self.node.start()
        return self.node

    def metrics(self):
        code, body = self.node.http("GET", "/metrics")
        self.assertEqual(code, 200)
        return body.decode()

    def metrics_json(self):
        code, body = self.node.http("GET", "/metrics.json")
        self.assertEqual(code, 200)
        return json.loads(body)

    def promtool(self, text):
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 0, "promtool check metrics: %s%s" % (p.stdout.decode(), p.stderr.decode()))
        self.assertEqual(p.stdout.decode().strip() + p.stderr.decode().strip(), "", "promtool printed problems")

    def test_promtool_and_counts_under_load(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("promtool is not installed (Debian package prometheus)")
        self.start()
        self.promtool(self.metrics())  # idle node: every family declared, nothing yet

        accepted = []
        errors = []

        def send(domain, n, tag):
            try:
                for i in range(n):
                    rcpt = "u%s%d@%s" % (tag, i, domain)
                    smtp_send(self.node.smtp_port, "s@sender.test", rcpt,
                              b"Subject: m %d\r\n\r\nhello\r\n" % i)
                    accepted.append(rcpt)
            except Exception as e:  # reported below: the test fails
                errors.append(repr(e))

        threads = [threading.Thread(target=send, args=("big.test", BIG, "b")),
                   threading.Thread(target=send, args=("small.test", SMALL, "s"))]
        for t in threads:
            t.start()
        checked_live = 0
        deadline = time.monotonic() + 20
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            self.promtool(self.metrics())  # the live page, under load
            checked_live += 1
        for t in threads:
            t.join(20)
        self.assertEqual(errors, [])
        self.assertEqual(len(accepted), BIG + SMALL)
        self.assertGreater(checked_live, 0)

        wait_for(lambda: self.big.count() == BIG and self.small.count() == SMALL, 20, what="every message delivered")
        n = BIG + SMALL

        # the scheduler publishes its page once a second and the log flushes once a second: wait for both
        def settled():
            s = parse_text(self.metrics())
            dlv = [r for r in self.node.log_records() if r.get("type") == "Delivery"]
            return (s, dlv) if total(s, "total_messages_delivered") == n and len(dlv) == n else None
        s, dlv = wait_for(settled, 10, step=0.25, what="/metrics and the log caught up")
        text = self.metrics()
        self.promtool(text)
        s = parse_text(text)
        doc = self.metrics_json()

        # delivered: /metrics == /metrics.json == the sinks == the log's Delivery records
        sink_count = self.big.count() + self.small.count()
        self.assertEqual(sink_count, n)
        self.assertEqual(len(dlv), n)
        for name in ("total_messages_delivered", "total_messages_delivered_by_provider",
                     "ringmail_messages_delivered_by_source_total", "ringmail_messages_delivered_by_site_total"):
            self.assertEqual(total(s, name), n, name)
            self.assertEqual(sum(x["value"] for x in doc[name]["samples"]), n, name + " (json)")
        self.assertEqual(doc["total_messages_delivered"]["type"], "counter")
        self.assertEqual(total(s, "total_messages_fail"), 0)

        # max_sites = 1: the bigger site keeps its label, the other one is summed under `other`
        by_site = family(s, "ringmail_messages_delivered_by_site_total")
        self.assertEqual(by_site, {(("site", BIG_SITE),): BIG, (("site", "other"),): SMALL})
        by_service = family(s, "total_messages_delivered")
        self.assertEqual(by_service, {(("service", "smtp_client:default->" + BIG_SITE),): BIG,
                                      (("service", "smtp_client:default->other"),): SMALL})
        json_sites = {x["labels"]["site"]: x["value"] for x in doc["ringmail_messages_delivered_by_site_total"]["samples"]}
        self.assertEqual(json_sites, {BIG_SITE: BIG, "other": SMALL})
        self.assertGreaterEqual(total(s, "ringmail_connection_attempts_total"), 2)  # one site each at least
        self.assertEqual(total(s, "ringmail_connection_failures_total"), 0)

        # time-to-250: one observation per message answered 250, in /metrics and /metrics.json alike
        self.assertEqual(total(s, "ringmail_messages_accepted_total"), n)
        self.assertEqual(total(s, "ringmail_time_to_250_seconds_count"), n)
        inf = sum(v for k, v in s.items() if k[0] == "ringmail_time_to_250_seconds_bucket" and ("le", "+Inf") in k[1])
        self.assertEqual(inf, n)
        self.assertEqual(sum(x["count"] for x in doc["ringmail_time_to_250_seconds"]["samples"]), n)
        # injection-to-delivery: one observation per delivery, per provider ("none": no shaping provider)
        self.assertEqual(total(s, "ringmail_injection_to_delivery_seconds_count"), n)
        self.assertGreater(total(s, "ringmail_spool_fsync_seconds_count"), 0)
        # the spool: every message stored, its bytes counted, no write stall at this load
        self.assertEqual(total(s, "ringmail_messages_stored_total"), n)
        self.assertGreaterEqual(total(s, "ringmail_bytes_stored_total"), n * len(b"Subject: m 0\r\n\r\nhello\r\n"))
        self.assertEqual(total(s, "ringmail_spool_write_stalls_total"), 0)

        # per listener: connections, sessions, messages accepted, refusals by reply code (one RCPT before MAIL: 503)
        r = smtp_dialogue(self.node.smtp_port, ["EHLO client.test", "RCPT TO:<x@big.test>", "QUIT"])
        self.assertTrue(r[2].startswith("503"), r)
        lst = (("listener", "smtp"),)

        def counted():
            x = parse_text(self.metrics())
            done = family(x, "ringmail_listener_sessions") == {lst: 0} and total(
                x, "ringmail_listener_rejections_total") == 1
            return x if done else None
        s = wait_for(counted, 5, step=0.1, what="the 503 counted and the session closed")
        self.assertEqual(family(s, "ringmail_listener_messages_accepted_total"), {lst: n})
        self.assertEqual(family(s, "ringmail_listener_connections_total"), {lst: n + 1})
        self.assertEqual(family(s, "ringmail_listener_sessions"), {lst: 0})
        rej = {dict(k)["reason"]: v for k, v in family(s, "ringmail_listener_rejections_total").items() if v}
        self.assertEqual(rej, {"503": 1})

        # log records written: at least the Reception and Delivery of every message
        self.assertGreaterEqual(total(s, "ringmail_log_records_written_total"), 2 * n)
        self.assertEqual(total(s, "ringmail_log_records_dropped_total"), 0)
        # memory: every role's RSS, the headroom; the spool's file system
        rss = family(s, "ringmail_role_rss_bytes")
        self.assertEqual({dict(k)["role"] for k in rss}, {"spool", "scheduler", "ingress", "egress"})
        self.assertTrue(all(v > 0 for v in rss.values()), rss)
        self.assertGreater(total(s, "ringmail_memory_headroom_bytes"), 0)
        self.assertGreater(total(s, "disk_free_bytes"), 0)
        # the families that were there before keep their names
        for name in ("ringmail_role_up", "ringmail_spool_commits_total", "ringmail_arena_blocks", "ringmail_shm_bytes"):
            self.assertTrue(family(s, name), name)

        # the two documents carry the same families and, for counters that no longer move, the same values
        text_families = {k[0] for k in s}
        for name, fam in doc.items():
            if fam["type"] == "histogram":
                self.assertIn(name + "_count", text_families, name)
            elif fam["samples"]:
                self.assertIn(name, text_families, name)


if __name__ == "__main__":
    import unittest
    unittest.main()
