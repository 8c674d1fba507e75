"""End-to-end delivery: smtplib -> ringmail -> real receiving servers (aiosmtpd sinks on 127.0.0.x),
with MX records served by a real DNS server (unbound) on a loopback port. Each test checks what the
sinks received, the log records read with zstdcat, and that the spool empties (the accounting
invariant of TESTING.md over the client's own list of 250s).

    /usr/bin/python3 tests/e2e/delivery_test.py -k mixed
"""
import email
import json
import os
import re
import signal
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, free_port, wait_for  # noqa: E402
from peers import PeersCase, Sink  # noqa: E402

ID_RE = re.compile(r"id=([0-9a-f]{32})")


class DeliveryCase(PeersCase):
    records = []  # DNS local-data of the test zone; no DNS server when empty

    def sink(self, host="127.0.0.1", port=None, **kw):
        return self.peer(Sink(host, port, **kw))

    def start(self, config="", egress="", port=None):
        eg = egress
        if self.dns:
            eg += '\nresolver = "%s"\ndns_timeout = "500ms"' % self.dns.address
        if port:
            eg += "\nport = %d" % port
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "2s"'
        self.node = Node(config_extra=config, egress=eg, park_delivery=False).start()
        return self.node

    def send(self, sender, rcpts, subject="t", body="hello\r\n"):
        """One transaction with smtplib; returns the queue id from the 250 (the client's own record)."""
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            c.mail(sender)
            for r in rcpts:
                code, _ = c.rcpt(r)
                self.assertEqual(code, 250, r)
            code, reply = c.data(("Subject: %s\r\nFrom: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s" %
                                  (subject, sender or "<>", time.monotonic_ns(), body)).encode())
            self.assertEqual(code, 250)
            return ID_RE.search(reply.decode()).group(1)
        finally:
            c.quit()

    def records_of(self, typ, msg_id=None):
        return [r for r in self.node.log_records() if r["type"] == typ and (msg_id is None or r["id"] == msg_id)]

    def wait_spool_empty(self, timeout=20):
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 0 and
                 self.node.counter("spool", "messages_stored") > 0, timeout, what="every message final")


class SmartHostTest(DeliveryCase):
    def test_smart_host_delivers_each_message_once_and_logs_delivery(self):
        sink = self.sink()
        self.start('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port)
        ids = [self.send("s@client.test", ["r%d@example.test" % i]) for i in range(5)]
        wait_for(lambda: sink.count() == 5, 20, what="5 messages at the sink")
        self.wait_spool_empty()
        for i in range(5):
            self.assertEqual(sink.delivered_to("r%d@example.test" % i), 1)
        for msg_id in ids:
            recs = wait_for(lambda: self.records_of("Delivery", msg_id), 5, what="Delivery record")
            self.assertEqual(len(recs), 1)
            r = recs[0]
            self.assertEqual(r["response"]["code"], 250)
            self.assertTrue(r["peer_address"]["addr"].startswith("127.0.0.1"), r)
            self.assertIn("num_attempts", r)
        # the Received header of the ingress travelled with the body
        self.assertIn(b"Received:", sink.messages[0][2])
        # connection reuse: messages sent one by one now ride the idle connections of the first ones
        before = sink.connections
        for i in range(3):
            self.send("s@client.test", ["again%d@example.test" % i])
            wait_for(lambda: sink.delivered_to("again%d@example.test" % i) == 1, 10, what="delivered")
        self.assertEqual(sink.connections, before, "no new connection for messages to the same site")
        # the path's counters as the operator sees them
        def delivered_on_path():
            j = json.loads(self.node.ringctl("--json", "queues", check=True).stdout)
            return sum(p["delivered"] for p in j["paths"] if p["site"] == "route:[127.0.0.1]:%d" % sink.port) == 8
        wait_for(delivered_on_path, 5, what="8 deliveries on the route's path in ringctl queues")


class PathTest(DeliveryCase):
    """Egress sources, pools and the per-path options, seen from the receiving side."""

    def test_sources_bind_their_address_and_pools_weigh_them(self):
        sink = self.sink()
        self.start('[[egress_source]]\nname = "a"\nbind_address = "127.0.0.5"\n'
                   '[[egress_source]]\nname = "b"\nbind_address = "127.0.0.6"\n'
                   '[egress_pool.default]\nsources = [{ name = "a", weight = 3 }, { name = "b", weight = 1 }]\n'
                   '[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port)
        for i in range(40):
            self.send("s@client.test", ["w%d@example.test" % i])
        wait_for(lambda: sink.count() == 40, 20, what="40 delivered")
        a, b = sink.peers.count("127.0.0.5"), sink.peers.count("127.0.0.6")
        self.assertEqual(a + b, 40, sink.peers)
        self.assertEqual((a, b), (30, 10), "weights 3:1 over 40 messages")
        recs = wait_for(lambda: len(self.records_of("Delivery")) == 40 and self.records_of("Delivery"), 5,
                        what="40 Delivery records")
        self.assertEqual(sorted({r["egress_source"] for r in recs}), ["a", "b"])

    def test_connection_limit_and_deliveries_per_connection(self):
        sink = self.sink(data_delay=0.1)
        self.start('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port,
                   egress="connection_limit = 2\nmax_deliveries_per_connection = 3")
        for i in range(12):
            self.send("s@client.test", ["c%d@example.test" % i])
        wait_for(lambda: sink.count() == 12, 30, what="12 delivered")
        self.wait_spool_empty()
        self.assertLessEqual(sink.max_open, 2, "more connections at once than connection_limit")
        self.assertGreaterEqual(sink.connections, 4, "a connection carried more than 3 messages")

    def test_idle_connection_is_closed_after_the_idle_timeout(self):
        sink = self.sink()
        self.start('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port)
        self.send("s@client.test", ["idle@example.test"])
        wait_for(lambda: sink.count() == 1, 10, what="delivered")
        self.assertEqual(sink.open, 1, "the connection stays open for the next message")
        wait_for(lambda: sink.open == 0, 6, what="the idle connection closed (idle_timeout 2s)")


class ReloadTest(DeliveryCase):
    def test_reload_moves_a_route_and_keeps_the_queue(self):
        """SIGHUP: a route changed to another host takes the next messages there; nothing is lost."""
        a, b = self.sink(), self.sink()
        node = self.start('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % a.port)
        self.send("s@client.test", ["one@example.test"])
        wait_for(lambda: a.delivered_to("one@example.test") == 1, 10, what="delivered to the first host")
        with open(node.config_path) as f:
            text = f.read()
        node.write_config(text.replace("[127.0.0.1]:%d" % a.port, "[127.0.0.1]:%d" % b.port))
        self.assertEqual(node.ringctl("reload").returncode, 0)
        time.sleep(6)  # the route's site is cached for 5 s
        self.send("s@client.test", ["two@example.test"])
        wait_for(lambda: b.delivered_to("two@example.test") == 1, 15, what="delivered to the new host")
        self.assertEqual(a.delivered_to("two@example.test"), 0)
        self.wait_spool_empty()


class MxTest(DeliveryCase):
    records = [
        "mx.test. 60 IN MX 10 mx1.mx.test.",
        "mx1.mx.test. 60 IN A 127.0.0.2",
        "twomx.test. 60 IN MX 10 dead.twomx.test.",
        "twomx.test. 60 IN MX 20 live.twomx.test.",
        "dead.twomx.test. 60 IN A 127.0.0.3",
        "live.twomx.test. 60 IN A 127.0.0.2",
        "implicit.test. 60 IN A 127.0.0.2",
        "nullmx.test. 60 IN MX 0 .",
        "noaddr.test. 60 IN TXT \"nothing here\"",
        "dsn.test. 60 IN MX 10 mx1.mx.test.",
    ]

    def test_mx_lookup_through_a_real_dns_server(self):
        sink = self.sink("127.0.0.2")
        self.start(port=sink.port)
        msg_id = self.send("s@dsn.test", ["a@mx.test", "b@implicit.test"])
        wait_for(lambda: sink.delivered_to("a@mx.test") == 1 and sink.delivered_to("b@implicit.test") == 1, 20,
                 what="both domains delivered")
        self.wait_spool_empty()
        wait_for(lambda: len(self.records_of("Delivery", msg_id)) == 2, 5, what="2 Delivery records")
        sites = {r["recipient"]: r.get("site") for r in self.records_of("Delivery", msg_id)}
        self.assertEqual(sites.get("a@mx.test"), "mx1.mx.test")
        self.assertEqual(sites.get("b@implicit.test"), "implicit.test")

    def test_refused_first_mx_then_the_next_one(self):
        """EGR-01: nothing listens on the preferred MX: the next MX takes the message."""
        sink = self.sink("127.0.0.2")
        self.start(port=sink.port)
        self.send("s@dsn.test", ["a@twomx.test"])
        wait_for(lambda: sink.delivered_to("a@twomx.test") == 1, 20, what="delivered through the second MX")
        self.wait_spool_empty()

    def test_null_mx_nxdomain_and_no_address_bounce_without_connecting(self):
        """DNS-01: null MX, NXDOMAIN and a name without MX or address bounce at once; the DSNs go back."""
        sink = self.sink("127.0.0.2")
        self.start(port=sink.port)
        msg_id = self.send("s@dsn.test", ["a@nullmx.test", "b@nxdomain.test", "c@noaddr.test"])
        wait_for(lambda: len(self.records_of("Bounce", msg_id)) == 3, 20, what="3 Bounce records")
        codes = {r["recipient"]: r["response"]["code"] for r in self.records_of("Bounce", msg_id)}
        self.assertEqual(codes["a@nullmx.test"], 556, codes)
        self.assertEqual(codes["b@nxdomain.test"] // 100, 5, codes)
        # a definite DNS answer is a hard bounce (BadDomain): each recipient goes on the suppression list
        added = wait_for(lambda: (lambda got: got if len(got) == 3 else None)(
            {r["recipient"]: r for r in self.node.log_records() if r["type"] == "SuppressionAdded"}), 10,
            what="3 SuppressionAdded records")
        self.assertEqual(set(added), {"a@nullmx.test", "b@nxdomain.test", "c@noaddr.test"})
        self.assertEqual({r["reason"] for r in added.values()}, {"hard_bounce"})
        # the only deliveries are DSNs from <> to the sender, never to the bounced domains
        wait_for(lambda: sink.delivered_to("s@dsn.test") >= 1, 20, what="a DSN to the sender")
        self.wait_spool_empty()
        for frm, rcpts, _ in sink.messages:
            self.assertEqual(frm, "<>")
            self.assertEqual(rcpts, ["s@dsn.test"])

    def test_dns_servfail_defers_and_keeps_the_message(self):
        """DNS-01: a resolver that does not answer defers; nothing bounces."""
        sink = self.sink("127.0.0.2")
        dead = free_port()
        self.dns.stop()
        self.dns = None
        self.start(egress='resolver = "127.0.0.1:%d"\ndns_timeout = "200ms"' % dead, port=sink.port,
                   config='[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n')
        msg_id = self.send("s@dsn.test", ["a@mx.test"])
        time.sleep(4)
        self.assertEqual(self.records_of("Bounce", msg_id), [])
        self.assertEqual(self.node.counter("scheduler", "messages_queued"), 1)
        # still queued and visible to the operator: ringctl queues names the queue
        p = self.node.ringctl("queues", check=True)
        self.assertRegex(p.stdout, r"(?m)^mx\.test\s+1\s+[01]$")  # scheduled, or resolving again
        j = json.loads(self.node.ringctl("--json", "queues", check=True).stdout)
        self.assertEqual(j["totals"]["messages"], 1)
        self.assertEqual([(q["name"], q["messages"]) for q in j["queues"]], [("mx.test", 1)])


class OutcomeTest(DeliveryCase):
    node_connection_limit = 32

    def config(self, sink, extra=""):
        return ('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n[queue.default]\nretry_interval = "1s"\n'
                'max_retry_interval = "2s"\n' % sink.port) + extra

    def test_mixed_recipients_deliver_retry_and_bounce_each_once(self):
        """250, 451 (then 250) and 550 recipients in one transaction: each ends right, none twice."""
        sink = self.sink()
        self.start(self.config(sink))
        msg_id = self.send("s@client.test", ["ok@a.test", "flaky@a.test", "permfail@a.test"])
        wait_for(lambda: sink.delivered_to("flaky@a.test") == 1, 20, what="flaky delivered on retry")
        self.wait_spool_empty()
        self.assertEqual(sink.delivered_to("ok@a.test"), 1, "a delivered recipient was sent again")
        self.assertEqual(sink.delivered_to("permfail@a.test"), 0)
        # log records reach the segment within [log] flush_interval of the outcome: wait for them
        tf = wait_for(lambda: self.records_of("TransientFailure", msg_id), 5, what="TransientFailure record")
        self.assertEqual([r["recipient"] for r in tf], ["flaky@a.test"])
        b = wait_for(lambda: self.records_of("Bounce", msg_id), 5, what="Bounce record")
        self.assertEqual(len(b), 1)
        self.assertEqual(b[0]["recipient"], "permfail@a.test")
        self.assertEqual(b[0]["response"]["code"], 550)
        self.assertEqual(b[0]["bounce_classification"], "InvalidRecipient")
        wait_for(lambda: len(self.records_of("Delivery", msg_id)) == 2, 5, what="2 Delivery records")
        self.assertEqual(sorted(r["recipient"] for r in self.records_of("Delivery", msg_id)),
                         ["flaky@a.test", "ok@a.test"])
        # the DSN for permfail went to the sender from <>, as a multipart/report
        wait_for(lambda: sink.delivered_to("s@client.test") == 1, 20, what="DSN delivered")
        frm, rcpts, data = [m for m in sink.messages if m[1] == ["s@client.test"]][0]
        self.assertEqual(frm, "<>")
        dsn = email.message_from_bytes(data)
        self.assertEqual(dsn.get_content_type(), "multipart/report")
        self.assertIn(b"permfail@a.test", data)

    def test_no_dsn_for_the_null_sender(self):
        """DSN-01: a bounce of a message from <> produces no DSN."""
        sink = self.sink()
        self.start(self.config(sink))
        msg_id = self.send("", ["permfail@a.test"])
        wait_for(lambda: self.records_of("Bounce", msg_id), 20, what="Bounce record")
        self.wait_spool_empty()
        time.sleep(1)
        self.assertEqual(sink.count(), 0)

    def test_expiry_gives_expiration_and_dsn(self):
        """DSN-01: past max_age the recipient expires with an Expiration record and a DSN."""
        sink = self.sink()
        self.start(self.config(sink, "").replace('max_retry_interval = "2s"\n',
                                                 'max_retry_interval = "2s"\nmax_age = "4s"\n'))
        msg_id = self.send("s@client.test", ["tempfail@a.test"])
        wait_for(lambda: self.records_of("Expiration", msg_id), 20, what="Expiration record")
        self.assertGreaterEqual(len(self.records_of("TransientFailure", msg_id)), 1)
        wait_for(lambda: sink.delivered_to("s@client.test") == 1, 20, what="DSN for the expiry")
        self.wait_spool_empty()

    def test_kill9_egress_during_deliveries_loses_nothing(self):
        """CRASH-06: kill -9 of the egress while it delivers: every 250 ends delivered (duplicates counted)."""
        sink = self.sink(data_delay=0.3)
        self.start(self.config(sink))
        rcpts = ["r%d@a.test" % i for i in range(40)]
        for r in rcpts:
            self.send("s@client.test", [r])
        # deliveries are in flight: the sink holds each DATA for 0.3 s
        wait_for(lambda: self.node.counter("egress", "ring_pushed") > 0, 5, what="the egress at work")
        os.kill(self.node.instances()["egress[0]"]["pid"], signal.SIGKILL)
        self.assertLess(sink.count(), len(rcpts), "everything was delivered before the kill: nothing was tested")
        self.node.wait_all_ready()
        wait_for(lambda: all(sink.delivered_to(r) >= 1 for r in rcpts), 30, what="every recipient delivered")
        self.wait_spool_empty()
        dups = sum(sink.delivered_to(r) - 1 for r in rcpts)
        # at most the messages in flight at the kill (one per connection) may come twice
        self.assertLessEqual(dups, self.node_connection_limit, "duplicates beyond the crash window: %d" % dups)
        self.assertIn("egress[0]", self.node.log())



class DsnLimitTest(DeliveryCase):
    """Issue 13 #6: DSNs go to the envelope sender, which anyone can forge; one message to many dead
    addresses at many domains made one DSN per domain. [dsn] max_per_message and max_per_sender bound them;
    the Bounce records are written as always."""
    records = ["dsn.test. 60 IN MX 10 mx1.mx.test.", "mx1.mx.test. 60 IN A 127.0.0.2"] + [
        "d%d.test. 60 IN MX 10 mx1.mx.test." % i for i in range(5)]

    def test_one_message_to_five_dead_domains_makes_at_most_two_dsns(self):
        sink = self.sink("127.0.0.2")
        self.start(port=sink.port, config="[dsn]\nmax_per_message = 2\n")
        msg_id = self.send("victim@dsn.test", ["permfail@d%d.test" % i for i in range(5)])
        wait_for(lambda: len(self.records_of("Bounce", msg_id)) == 5, 20, what="5 Bounce records")
        self.wait_spool_empty()
        time.sleep(1)  # a third DSN, were one made, would be on its way by now
        self.assertEqual(sink.delivered_to("victim@dsn.test"), 2)
        self.assertIn("max_per_message", self.node.log())

    def test_dsns_to_one_sender_stop_at_max_per_sender(self):
        sink = self.sink("127.0.0.2")
        self.start(port=sink.port, config="[dsn]\nmax_per_sender = 2\nsender_window = \"1h\"\n")
        ids = [self.send("Victim@dsn.test" if i % 2 else "victim@dsn.test", ["permfail%d@d0.test" % i])
               for i in range(4)]
        for msg_id in ids:
            wait_for(lambda: len(self.records_of("Bounce", msg_id)) == 1, 20, what="the Bounce record")
        self.wait_spool_empty()
        time.sleep(1)
        self.assertEqual(sum(1 for _, rcpts, _ in sink.messages if rcpts[0].lower() == "victim@dsn.test"), 2)
        self.assertIn("max_per_sender", self.node.log())

if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
