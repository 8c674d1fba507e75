"""Traffic shaping at the receiver: the options of KumoMTA-format shaping files ([shaping] files in
ringmail.toml) are enforced on the egress paths, counted by real receiving servers (aiosmtpd sinks on
127.0.0.x) with MX records served by a real DNS server (unbound) on a loopback port. Limits are upper
bounds the receiver observes (connections open at once, messages per connection, the GCRA bound on
deliveries over time), never speed claims.

    /usr/bin/python3 tests/e2e/shaping_test.py -k connection_limit
"""
import json
import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, wait_for  # noqa: E402
from peers import PeersCase, Sink  # noqa: E402

MESON = {"suite": "shaping", "timeout": 240}


class ShapingCase(PeersCase):
    records = [
        "one.test. 60 IN MX 10 mx.one.test.",
        "mx.one.test. 60 IN A 127.0.0.2",
        # two domains with MX sets of their own (two sites) at one provider
        "a.prov.test. 60 IN MX 10 mx1.provider.test.",
        "b.prov.test. 60 IN MX 10 mx2.provider.test.",
        "mx1.provider.test. 60 IN A 127.0.0.2",
        "mx2.provider.test. 60 IN A 127.0.0.2",
    ]

    def start(self, shaping, sink, config="", egress=""):
        path = os.path.join(self.tmpdir(), "shaping.toml")
        with open(path, "w") as f:
            f.write(shaping)
        eg = egress + '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, sink.port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "2s"'
        self.node = Node(config_extra='[shaping]\nfiles = ["%s"]\n%s' % (path, config), egress=eg,
                         park_delivery=False).start()
        self.shaping_path = path
        return self.node

    def tmpdir(self):
        if not hasattr(self, "_tmp"):
            import tempfile
            self._tmp = tempfile.mkdtemp(prefix="ringmail-shaping-")
            os.chmod(self._tmp, 0o755)
            self.addCleanup(lambda: __import__("shutil").rmtree(self._tmp, ignore_errors=True))
        return self._tmp

    def sink(self, host="127.0.0.2", **kw):
        return self.peer(Sink(host, **kw))

    def send_many(self, rcpts, sender="s@client.test"):
        """One transaction per recipient on one connection; every one must get 250."""
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=20)
        try:
            c.ehlo("client.test")
            for r in rcpts:
                c.mail(sender)
                code, _ = c.rcpt(r)
                self.assertEqual(code, 250, r)
                code, _ = c.data(b"Subject: t\r\nFrom: s@client.test\r\n\r\nhello\r\n")
                self.assertEqual(code, 250)
        finally:
            c.quit()

    def wait_delivered(self, sink, n, timeout=60):
        wait_for(lambda: sink.count() >= n, timeout, step=0.1, what="%d messages at the sink" % n)
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 0, 20, what="the spool empty")
        self.assertEqual(sink.count(), n, "each message delivered once")


class ConnectionLimitTest(ShapingCase):
    def test_connection_limit_never_exceeded_at_the_receiver(self):
        sink = self.sink(data_delay=0.3)
        self.start('["default"]\nconnection_limit = 3\nmax_deliveries_per_connection = 1000\n', sink)
        self.send_many(["r%d@one.test" % i for i in range(30)])
        self.wait_delivered(sink, 30)
        self.assertLessEqual(sink.max_open, 3, "a 4th connection reached the receiver")
        self.assertGreaterEqual(sink.max_open, 2, "the limit was used, not just respected")

    def test_max_deliveries_per_connection(self):
        sink = self.sink(data_delay=0.2)  # 8 deliveries in a row on one connection at a time: 1.6 s queued
        self.start('["one.test"]\nmx_rollup = false\nmax_deliveries_per_connection = 2\nconnection_limit = 1\n',
                   sink)
        self.send_many(["r%d@one.test" % i for i in range(8)])
        # mx_rollup = false: the domain is its own site in the scheduler's queues. They are read while mail is
        # queued: the scheduler publishes them about once a second, and an empty path leaves the next copy.
        paths = wait_for(lambda: json.loads(self.node.ringctl("--json", "queues").stdout).get("paths"), 5,
                         step=0.05, what="the path in ringctl queues")
        self.assertEqual({p["site"] for p in paths}, {"one.test"})
        self.wait_delivered(sink, 8)
        per_conn = {}
        for _, conn, _ in sink.deliveries:
            per_conn[conn] = per_conn.get(conn, 0) + 1
        self.assertLessEqual(max(per_conn.values()), 2, per_conn)
        self.assertGreaterEqual(len(per_conn), 4, per_conn)
        # and in every log record
        recs = wait_for(lambda: [r for r in self.node.log_records() if r["type"] == "Delivery"], 5, what="records")
        self.assertEqual({r["site"] for r in recs}, {"one.test"})


class RateTest(ShapingCase):
    def test_max_message_rate_holds_the_gcra_bound(self):
        sink = self.sink()
        # 5 per second, burst 5: n deliveries need at least (n - 5) / 5 seconds after the first
        self.start('["default"]\nmax_message_rate = "5/s"\nconnection_limit = 4\n', sink)
        self.send_many(["r%d@one.test" % i for i in range(20)])
        self.wait_delivered(sink, 20)
        times = sorted(t for t, _, _ in sink.deliveries)
        span = times[-1] - times[0]
        self.assertGreaterEqual(span, (20 - 5) / 5.0 - 0.3, "20 deliveries in %.2f s beat 5/s" % span)
        # and in any one-second window at most burst + rate deliveries
        for i, t in enumerate(times):
            in_window = sum(1 for u in times[i:] if u - t < 1.0)
            self.assertLessEqual(in_window, 10, "window at %.2f" % (t - times[0]))
        # the operator sees that the rate held the path
        def waits():
            doc = json.loads(self.node.ringctl("--json", "queues", check=True).stdout)
            return [p["throttle_waits"] for p in doc["paths"] if p["site"] == "mx.one.test" and p["throttle_waits"]]
        wait_for(waits, 5, what="throttle_waits on the path in /api/v1/queues")

    def test_max_connection_rate(self):
        sink = self.sink()
        self.start('["default"]\nmax_connection_rate = "2/s"\nmax_deliveries_per_connection = 1\n'
                   'connection_limit = 10\n', sink)
        self.send_many(["r%d@one.test" % i for i in range(8)])
        self.wait_delivered(sink, 8)
        self.assertGreaterEqual(sink.connections, 8)
        times = sorted(t for t, _, _ in sink.deliveries)
        # 8 connections at 2/s with a burst of 2: at least 3 s from the first to the last
        self.assertGreaterEqual(times[-1] - times[0], 2.7)


class ProviderLimitTest(ShapingCase):
    def test_provider_connection_limit_is_shared_by_two_sites(self):
        sink = self.sink(data_delay=0.3)
        self.start('[provider."prov"]\nmatch = [{MXSuffix = ".provider.test"}]\n'
                   'provider_connection_limit = 2\nconnection_limit = 5\n', sink)
        self.send_many(["a%d@a.prov.test" % i for i in range(12)] + ["b%d@b.prov.test" % i for i in range(12)])
        self.wait_delivered(sink, 24)
        self.assertLessEqual(sink.max_open, 2, "the provider limit is one limit for both sites")
        recs = [r for r in self.node.log_records() if r["type"] == "Delivery"]
        self.assertEqual(len({r["site"] for r in recs}), 2, "two sites")


class SourceSelectionTest(ShapingCase):
    def test_source_selection_rate_skips_a_warming_source(self):
        sink = self.sink()
        self.start('["one.test".sources."warming"]\nsource_selection_rate = "2/h"\n', sink,
                   config='[[egress_source]]\nname = "warm"\nbind_address = "127.0.0.5"\n'
                          '[[egress_source]]\nname = "warming"\nbind_address = "127.0.0.6"\n')
        self.send_many(["r%d@one.test" % i for i in range(20)])
        self.wait_delivered(sink, 20)
        peers = [p for _, _, p in sink.deliveries]
        self.assertLessEqual(peers.count("127.0.0.6"), 2, "the warming source is over its rate")
        self.assertGreaterEqual(peers.count("127.0.0.5"), 18)


class ReloadTest(ShapingCase):
    def test_reload_raises_the_limit_with_no_gap_and_no_dropped_connection(self):
        sink = self.sink(data_delay=0.2)
        self.start('["default"]\nconnection_limit = 1\nmax_deliveries_per_connection = 1000\n', sink)
        self.send_many(["r%d@one.test" % i for i in range(15)])
        wait_for(lambda: sink.count() >= 3, 30, what="delivery under the first limit")
        self.assertEqual(sink.max_open, 1)
        with open(self.shaping_path, "w") as f:
            f.write('["default"]\nconnection_limit = 4\nmax_deliveries_per_connection = 1000\n')
        self.node.ringctl("reload", check=True)
        self.send_many(["q%d@one.test" % i for i in range(30)])
        self.wait_delivered(sink, 45)
        self.assertGreater(sink.max_open, 1, "the raised limit applies to the live path")
        self.assertLessEqual(sink.max_open, 4)
        bad = [r for r in self.node.log_records() if r["type"] in ("TransientFailure", "Bounce")]
        self.assertEqual(bad, [], "no delivery failed across the reload")

    def test_bad_file_on_reload_changes_nothing_and_says_why(self):
        sink = self.sink(data_delay=0.2)
        self.start('["default"]\nconnection_limit = 1\n', sink)
        with open(self.shaping_path, "w") as f:
            f.write('["default"]\nconnection_limit = "many"\n')
        p = self.node.ringctl("reload")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("shaping.toml:2", p.stdout + p.stderr)
        self.send_many(["r%d@one.test" % i for i in range(6)])
        self.wait_delivered(sink, 6)
        self.assertEqual(sink.max_open, 1, "the old limit still holds")

    def test_set_shaping_writes_an_override_and_reloads(self):
        sink = self.sink(data_delay=0.2)
        self.start('["default"]\nconnection_limit = 4\nmax_deliveries_per_connection = 1000\n', sink)
        self.node.ringctl("set-shaping", "--domain", "one.test", "--connection-limit", "1", check=True)
        p = self.node.ringctl("resolve-shaping", "--domain", "one.test", "--json", check=True)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["config"]["connection_limit"], 1)
        self.send_many(["r%d@one.test" % i for i in range(8)])
        self.wait_delivered(sink, 8)
        self.assertEqual(sink.max_open, 1)


class EgressOptionsTest(ShapingCase):
    """The egress-side options of a path travel from the scheduler's resolution to the egress."""

    def send_one(self, rcpts):
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=20)
        try:
            c.ehlo("client.test")
            c.mail("s@client.test")
            for r in rcpts:
                self.assertEqual(c.rcpt(r)[0], 250, r)
            code, reply = c.data(b"Subject: t\r\nFrom: s@client.test\r\n\r\nhello\r\n")
            self.assertEqual(code, 250)
            return reply.decode().split("id=")[1].split()[0]
        finally:
            c.quit()

    def log_of(self, typ, msg_id):
        return [r for r in self.node.log_records() if r["type"] == typ and r["id"] == msg_id]

    def test_max_recipients_per_batch_splits_the_transaction(self):
        sink = self.sink()
        self.start('["one.test"]\nmax_recipients_per_batch = 2\n', sink)
        self.send_one(["r%d@one.test" % i for i in range(5)])
        wait_for(lambda: sum(len(m[1]) for m in sink.messages) == 5, 30, what="5 recipients at the sink")
        self.assertEqual(sorted(len(m[1]) for m in sink.messages), [1, 2, 2])
        self.assertEqual(len({c for _, c, _ in sink.deliveries}), 1, "one connection carries every batch")

    def test_ehlo_domain_and_smtp_port(self):
        sink = self.sink()
        # the node's [egress] port points nowhere: only the shaping's smtp_port reaches the sink
        self.start('["one.test"]\nehlo_domain = "shaped.example"\nsmtp_port = %d\n' % sink.port, sink,
                   egress="")
        self.node.write_config(open(self.node.config_path).read().replace("port = %d" % sink.port, "port = 9"))
        self.node.ringctl("reload", check=True)
        self.send_one(["r@one.test"])
        wait_for(lambda: sink.count() == 1, 30, what="the message at the sink")
        self.assertEqual(sink.helos, ["shaped.example"])

    def test_prohibited_hosts_bounce_without_a_connection(self):
        sink = self.sink()
        self.start('["one.test"]\nprohibited_hosts = ["127.0.0.0/8"]\n', sink)
        msg_id = self.send_one(["r@one.test"])
        recs = wait_for(lambda: self.log_of("Bounce", msg_id), 30, what="the Bounce record")
        self.assertIn("prohibited_hosts", recs[0]["response"]["content"])
        self.assertEqual(sink.connections, 0)

    def test_skip_hosts_defer_without_a_connection(self):
        sink = self.sink()
        self.start('["one.test"]\nskip_hosts = ["127.0.0.2"]\n', sink)
        msg_id = self.send_one(["r@one.test"])
        recs = wait_for(lambda: self.log_of("TransientFailure", msg_id), 30, what="the TransientFailure record")
        self.assertIn("skip_hosts", recs[0]["response"]["content"])
        self.assertEqual(sink.connections, 0)

    def test_required_tls_never_sends_in_plaintext(self):
        sink = self.sink()
        self.start('["one.test"]\nenable_tls = "Required"\n', sink)
        msg_id = self.send_one(["r@one.test"])
        wait_for(lambda: self.log_of("TransientFailure", msg_id), 30, what="the TransientFailure record")
        self.assertEqual(sink.count(), 0, "a Required path sent in plaintext")

    def test_data_dot_timeout_from_the_shaping(self):
        sink = self.sink(data_delay=3.0)
        self.start('["one.test"]\ndata_dot_timeout = "1s"\n', sink)
        t0 = time.monotonic()
        msg_id = self.send_one(["r@one.test"])
        recs = wait_for(lambda: self.log_of("TransientFailure", msg_id), 30, what="the TransientFailure record")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("timeout", recs[0]["response"]["content"].lower())


if __name__ == "__main__":
    unittest.main()
