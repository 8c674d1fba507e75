"""Rebind and abort-ready-q-conn end to end (issue 10): a real node with real traffic, smtplib -> node ->
recording aiosmtpd sinks on their own loopback addresses, MX records from a real DNS server (unbound).
defer.test's MX (127.0.0.3) answers every DATA with 451; the rebind target (127.0.0.4) accepts;
slowconn.test's MX (127.0.0.5) holds each DATA a few seconds, so its connections stay open.

    RINGMAIL_BUILD_DIR=/tmp/b /usr/bin/python3 tests/e2e/rebind_test.py -k route
"""
import json
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, wait_for  # noqa: E402
from peers import Sink, free_udp_tcp_port  # noqa: E402
from ops_test import OpsCase  # noqa: E402  (its helpers: ctl, log_of, row)

MESON = {"suite": "ops", "timeout": 240}

DEFER = "451 4.3.0 scripted deferral for the rebind test"


class RebindCase(OpsCase):
    records = [
        "defer.test. 60 IN MX 10 mx.defer.test.",
        "mx.defer.test. 60 IN A 127.0.0.3",
        "other.test. 60 IN MX 10 mx.defer.test.",
        "slowconn.test. 60 IN MX 10 mx.slowconn.test.",
        "mx.slowconn.test. 60 IN A 127.0.0.5",
    ]

    def start(self, target_up=True, data_delay=0.0):
        self.port = free_udp_tcp_port("127.0.0.3")
        self.mx = self.peer(Sink("127.0.0.3", self.port, data_reply=DEFER))
        self.target = self.peer(Sink("127.0.0.4", self.port)) if target_up else None
        self.slow = self.peer(Sink("127.0.0.5", self.port, data_delay=data_delay)) if data_delay else None
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, self.port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "20s"'
        eg += '\nidle_timeout = "30s"'
        self.node = Node(egress=eg, park_delivery=False)
        # a deferral waits an hour: the queued mail stays put (not in flight) until the operator acts
        extra = '[queue.default]\nretry_interval = "1h"\nmax_retry_interval = "1h"\n'
        extra += '[queue."slowlane"]\nretry_interval = "2h"\nmax_retry_interval = "2h"\n'
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        self.accepted = []  # (recipients) of every message the node answered 250 to: the client's own record
        return self.node

    def send(self, rcpts, sender="s@client.test"):
        """One message to rcpts (a list); the recipients the node took go into self.accepted."""
        with smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10) as client:
            client.ehlo("client.test")
            refused = client.sendmail(sender, rcpts, b"Subject: rebind\r\n\r\nhello\r\n")
        self.accepted.append([r for r in rcpts if r not in refused])

    def all_rcpts(self):
        return [r for m in self.accepted for r in m]

    def deferred_all(self, domain=None):
        wait_for(lambda: len(self.log_of("TransientFailure", domain)) >= len(self.all_rcpts()), 30,
                 what="every recipient deferred once")
        time.sleep(0.5)


class RebindTest(RebindCase):
    def test_rebind_moves_mail_to_another_route_and_it_is_delivered_there(self):
        node = self.start(target_up=False)
        for i in range(4):
            self.send(["u%d@defer.test" % i])
        self.send(["v1@defer.test", "v2@defer.test"])  # two recipients of one domain: one message
        self.send(["m1@defer.test", "m2@other.test"])  # spans two domains: not rebound, stays queued
        rebound = self.all_rcpts()[:6]
        self.deferred_all(None)
        self.assertEqual(self.mx.count(), 0)

        # the route's host is down: the new binding must outlive a restart before it delivers
        route = "[127.0.0.4]:%d" % self.port
        item = self.ctl("rebind", "--domain", "defer.test", "--to-route", route, "--reason", "mx broken")["item"]
        self.assertEqual((item["moved"], item["skipped_in_flight"], item["skipped_multi_domain"]), (5, 0, 1), item)
        self.assertEqual(item["to_route"], route)
        wait_for(lambda: len(self.log_of("AdminRebind")) == 6, 20, what="an AdminRebind record per recipient")
        recs = self.log_of("AdminRebind")[:6]
        self.assertEqual(sorted(r["recipient"] for r in recs), sorted(rebound))
        for r in recs:
            self.assertEqual(r["new_route"], route)
            self.assertIsNone(r["old_route"])
            self.assertEqual(r["old_queue"], "defer.test")
            self.assertEqual(r["new_queue"], "defer.test!route:" + route)
            self.assertEqual(r["reason"], "mx broken")
            self.assertIn("api 127.0.0.1", r["who"])
        # the route is tried at once (nothing listens there), deferred again, and waits its hour
        wait_for(lambda: len(self.log_of("TransientFailure", "defer.test")) >= 13, 20, what="the route's host tried")
        node.stop()
        self.target = self.peer(Sink("127.0.0.4", self.port))
        node.start()
        # the binding outlived the restart, and so did the hour: nothing is retried at once
        wait_for(lambda: any(q["name"] == "defer.test!route:" + route and q["messages"] == 5
                             for q in self.ctl("queue-summary")["queues"]), 20, what="the rebound queue after the restart")
        time.sleep(2)
        self.assertEqual(self.target.count(), 0, "a restart retried deferred mail at once")
        # the operator moves it again (the same route): due at once there, now that the host is up
        item = self.ctl("rebind", "--queue", "defer.test!route:" + route, "--to-route", route,
                        "--reason", "host is back")["item"]
        self.assertEqual(item["moved"], 5, item)
        wait_for(lambda: self.target.count() == 5, 30, what="the rebound mail delivered at the route's host")
        time.sleep(1)
        for r in rebound:
            self.assertEqual(self.target.delivered_to(r), 1, r)
        self.assertEqual(self.target.count(), 5, "nothing but the rebound mail went there")
        self.assertEqual(self.mx.count(), 0)
        wait_for(lambda: len(self.log_of("Delivery")) == 6, 20, what="Delivery records")
        # the message of two domains is still queued in its queues (not lost, not moved)
        doc = self.ctl("queue-summary")
        self.assertEqual(sorted((q["name"], q["messages"]) for q in doc["queues"] if q["messages"]),
                         [("defer.test", 1), ("other.test", 1)])
        self.assertTrue(any(r["site"].startswith("route:") for r in doc["rows"]), doc["rows"])
        self.assertEqual(node.counter("spool", "ring_bad_records"), 0)
        self.assertEqual(node.counter("scheduler", "ring_bad_records"), 0)

    def test_rebind_to_queue_moves_mail_and_refusals_say_what_to_do(self):
        node = self.start()
        for i in range(3):
            self.send(["q%d@defer.test" % i])
        self.deferred_all("defer.test")
        p = node.ringctl("rebind", "--domain", "defer.test", "--to-queue", "slowlane", "--reason", "park it",
                         check=True)
        self.assertIn("3 queued message(s) moved to queue slowlane", p.stdout)
        wait_for(lambda: len(self.ctl("inspect-sched-q", "slowlane")["messages"]) == 3, 20,
                 what="the messages in their new queue")
        q = self.ctl("inspect-sched-q", "slowlane")["queue"]
        self.assertEqual(q["domain"], "defer.test")
        self.assertEqual(q["config"]["retry_interval_s"], 7200, q)
        names = [x["name"] for x in self.ctl("queue-summary")["queues"] if x["messages"]]
        self.assertEqual(names, ["slowlane"])
        wait_for(lambda: len(self.log_of("AdminRebind")) == 3, 20, what="an AdminRebind record per recipient")
        recs = self.log_of("AdminRebind")
        self.assertEqual({(r["old_queue"], r["new_queue"]) for r in recs}, {("defer.test", "slowlane")})
        # durable: after a restart the messages are in the new queue again
        node.stop()
        node.start()
        wait_for(lambda: [x["name"] for x in self.ctl("queue-summary")["queues"] if x["messages"]] == ["slowlane"],
                 20, what="the new queue restored from the spool")
        # the restart made them due: they are tried in slowlane (deferred) before they wait their 2 h again
        wait_for(lambda: len(self.log_of("TransientFailure", "defer.test")) >= 6, 20, what="tried after the restart")
        time.sleep(0.5)
        self.assertTrue(all(r["queue"] == "slowlane" for r in self.log_of("TransientFailure", "defer.test")[3:]))
        # a queue into another (the domain is the emptied queue's), then back out to a route: delivered there
        item = self.ctl("rebind", "--queue", "slowlane", "--to-queue", "slowlane2")["item"]
        self.assertEqual((item["moved"], item["skipped_in_flight"]), (3, 0), item)
        wait_for(lambda: len(self.log_of("TransientFailure", "defer.test")) >= 9, 20, what="tried in slowlane2")
        time.sleep(0.5)
        self.assertEqual(self.ctl("inspect-sched-q", "slowlane2")["queue"]["domain"], "defer.test")
        item = self.ctl("rebind", "--queue", "slowlane2", "--to-route", "[127.0.0.4]:%d" % self.port)["item"]
        self.assertEqual(item["moved"], 3)
        wait_for(lambda: self.target.count() == 3, 30, what="delivered after the second rebind")
        for r in self.all_rcpts():
            self.assertEqual(self.target.delivered_to(r), 1, r)

        # refusals: clear words, exit 1, nothing moved
        bad = [
            (["--domain", "defer.test"], "--to-queue Q or --to-route"),
            (["--domain", "defer.test", "--to-queue", "a", "--to-route", "127.0.0.4"], "one of them"),
            (["--tenant", "t", "--to-queue", "x"], "--to-queue needs --domain or --queue"),
            (["--queue", "nosuch", "--to-queue", "x"], "no such scheduled queue"),
            (["--domain", "defer.test", "--to-route", "bad host!"], "route host"),
            (["--domain", "defer.test", "--to-route", "[127.0.0.4]:99999"], "bad port"),
            (["--domain", "defer.test", "--to-route", "127.0.0.4:25"], "IP addresses go in [ ]"),
            (["--domain", "defer.test", "--to-queue", "has space"], "queue name"),
            (["--to-queue", "x"], "say what to rebind"),
        ]
        for args, words in bad:
            p = node.ringctl("rebind", *args)
            self.assertEqual(p.returncode, 1, (args, p.stdout, p.stderr))
            self.assertIn(words, p.stderr, args)
        # the endpoint wants the token, like every POST
        st, _ = node.http("POST", "/api/v1/rebind?domain=defer.test&to_queue=x", token=False)
        self.assertIn(st, (401, 403))
        self.assertEqual(node.counter("scheduler", "ring_bad_records"), 0)


class AbortTest(RebindCase):
    def test_abort_ready_q_conn_closes_the_paths_connections_and_requeues_their_mail(self):
        node = self.start(data_delay=3.0)
        for i in range(4):
            self.send(["w%d@slowconn.test" % i])
        wait_for(lambda: self.slow.open >= 2, 20, what="connections to the slow MX open")
        time.sleep(0.5)  # their DATA is being held by the sink
        rows = [r for r in self.ctl("queue-summary")["rows"] if r["site"] == "mx.slowconn.test"]
        self.assertEqual(len(rows), 1, rows)
        opened_before = self.slow.connections
        p = node.ringctl("abort-ready-q-conn", rows[0]["name"], "--reason", "stuck", "--json", check=True)
        item = json.loads(p.stdout)["item"]
        self.assertGreaterEqual(item["closed"], 2, item)
        self.assertGreaterEqual(item["in_flight"], 1, item)
        # counted at the sink: that many of its connections ended
        wait_for(lambda: self.slow.connections - self.slow.open >= item["closed"], 10,
                 what="the sink saw the connections close")
        self.assertEqual(self.slow.count(), 0, "nothing finished before the abort")
        # requeued without a retry delay (the queue's is an hour): delivered soon, once each
        wait_for(lambda: self.slow.count() == 4, 40, what="the aborted mail delivered later")
        time.sleep(1)
        for r in self.all_rcpts():
            self.assertEqual(self.slow.delivered_to(r), 1, r)
        self.assertGreater(self.slow.connections, opened_before, "the path opened new connections afterwards")
        aborted = [r for r in self.log_of("TransientFailure", "slowconn.test")
                   if "aborted by the operator" in json.dumps(r.get("response"))]
        self.assertGreaterEqual(len(aborted), 1)
        p = node.ringctl("abort-ready-q-conn", "nosuch->path")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no such ready queue", p.stderr)
        p = node.ringctl("abort-ready-q-conn", rows[0]["name"], check=True)
        self.assertIn("connection(s) closed", p.stdout)
        self.assertEqual(node.counter("egress", "ring_bad_records"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
