"""Live operations end to end (issue 10): queue-summary, suspend, suspend-ready-q, bounce and the inspect
commands against a real node with real traffic: smtplib -> node -> two recording sinks on their own loopback
addresses, MX records from a real DNS server (unbound). good.test's sink accepts; slow.test's answers every
DATA with a scripted 421. The shaping file has no automation rule (so only the operator acts) and names
slow.test's MX as provider "slowprov".

    /usr/bin/python3 tests/e2e/ops_test.py -k suspend
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, egress_via, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "ops", "timeout": 240}

DEFER = "421 4.7.0 scripted deferral for the ops test"
SHAPING = """
[provider."slowprov"]
match = [{MXSuffix = ".slow.test"}]
"""
GOOD_SITE = "mx.good.test"
SLOW_SITE = "mx.slow.test"


class OpsCase(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.good.test.",
        "mx.good.test. 60 IN A 127.0.0.2",
        "slow.test. 60 IN MX 10 mx.slow.test.",
        "mx.slow.test. 60 IN A 127.0.0.3",
        "dsn.test. 60 IN MX 10 mx.good.test.",
    ]

    def start(self, slow_reply=DEFER):
        port = free_udp_tcp_port("127.0.0.2")
        self.good = self.peer(Sink("127.0.0.2", port))
        self.slow = self.peer(Sink("127.0.0.3", port, data_reply=slow_reply))
        self.node = Node(egress=egress_via(self.dns, port), park_delivery=False)
        shaping = os.path.join(self.node.tmp, "ops-shaping.toml")
        with open(shaping, "w") as f:
            f.write(SHAPING)
        os.chmod(shaping, 0o644)
        extra = '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        extra += '[shaping]\nfiles = ["%s"]\n' % shaping
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        return self.node

    def send(self, rcpt, sender="s@dsn.test"):
        smtp_send(self.node.smtp_port, sender, rcpt, b"Subject: t\r\n\r\nhello\r\n")

    def ctl(self, *args):
        """ringctl ... --json, decoded; the command must succeed."""
        p = self.node.ringctl(*(list(args) + ["--json"]), check=True)
        return json.loads(p.stdout)

    def log_of(self, typ, domain=None):
        return [r for r in self.node.log_records()
                if r["type"] == typ and (domain is None or r.get("recipient", "").endswith("@" + domain))]

    def row(self, doc, name):
        rows = [r for r in doc["rows"] if r["name"] == name]
        return rows[0] if rows else None


class SummaryTest(OpsCase):
    def test_queue_summary_counts_equal_the_sinks_and_the_log(self):
        node = self.start()
        for i in range(6):
            self.send("r%d@good.test" % i)
        for i in range(3):
            self.send("d%d@slow.test" % i)
        wait_for(lambda: self.good.count() == 6, 30, what="good.test delivered")
        wait_for(lambda: len(self.log_of("TransientFailure", "slow.test")) >= 6, 30, what="slow.test deferred")
        # hold slow.test's path so that its counts stop moving, then compare them with the log
        doc = self.ctl("queue-summary")
        slow_path = [r for r in doc["rows"] if r["site"] == SLOW_SITE][0]["name"]
        item = self.ctl("suspend-ready-q", "--name", slow_path, "--reason", "count check", "--duration", "10m")
        self.assertTrue(item["item"]["path_exists"])
        time.sleep(3)  # in-flight attempts finish and their records are written

        doc = self.ctl("queue-summary")
        good = [r for r in doc["rows"] if r["site"] == GOOD_SITE][0]
        slow = [r for r in doc["rows"] if r["site"] == SLOW_SITE][0]
        self.assertEqual(good["delivered"], self.good.count())
        self.assertEqual(good["delivered"], len(self.log_of("Delivery", "good.test")))
        self.assertEqual(good["transient"], 0)
        self.assertEqual(slow["delivered"], 0)
        self.assertEqual(slow["transient"], len(self.log_of("TransientFailure", "slow.test")))
        self.assertEqual(slow["provider"], "slowprov")
        self.assertGreater(slow["suspended_ms"], 500000, "the suspension shows in the summary")
        self.assertIn("scripted deferral", slow["last_response"])
        self.assertGreaterEqual(slow["last_response_age_ms"], 0)
        self.assertGreater(slow["transient_per_min"], 0)
        self.assertEqual(doc["totals"]["delivered"], self.good.count())
        queued = [q for q in doc["queues"] if q["domain"] == "slow.test"]
        self.assertEqual(sum(q["messages"] for q in queued), 3, doc["queues"])

        # roll-ups: by site (the scheduled mail of slow.test counts towards its site), provider, source
        by_site = self.ctl("queue-summary", "--by-site")
        self.assertEqual(self.row(by_site, GOOD_SITE)["delivered"], self.good.count())
        self.assertEqual(self.row(by_site, SLOW_SITE)["queued"], 3)
        prov = self.ctl("provider-summary")
        self.assertEqual(self.row(prov, "slowprov")["transient"], slow["transient"])
        by_source = self.ctl("queue-summary", "--by-source")
        self.assertEqual(sum(r["delivered"] for r in by_source["rows"]), self.good.count())
        only = self.ctl("queue-summary", "--domain", "slow.test")
        self.assertEqual([r["site"] for r in only["rows"]], [SLOW_SITE])
        self.assertEqual(len(self.ctl("queue-summary", "--limit", "1", "--by-volume")["rows"]), 1)

        # for people: aligned columns within 100 characters, the suspension marked
        p = node.ringctl("queue-summary", check=True)
        lines = p.stdout.splitlines()
        self.assertTrue(all(len(line) <= 100 for line in lines), p.stdout)
        self.assertRegex(p.stdout, r"SOURCE->SITE +D +T +C +Q")
        self.assertRegex(p.stdout, r"SUSPENDED \d+m")
        self.assertNotIn("\033[", p.stdout, "no colour when stdout is not a terminal")
        p = node.ringctl("provider-summary", check=True)
        self.assertIn("slowprov", p.stdout)
        self.assertEqual(node.counter("scheduler", "ring_bad_records"), 0)


class SuspendTest(OpsCase):
    def test_suspend_holds_one_domain_survives_a_restart_and_cancel_resumes(self):
        node = self.start(slow_reply=None)  # both sinks accept
        item = self.ctl("suspend", "--domain", "good.test", "--reason", "incident 42", "--duration", "10m")["item"]
        sid = item["id"]
        self.assertEqual(item["kind"], "suspend")
        self.assertEqual(item["reason"], "incident 42")
        for i in range(3):
            self.send("r%d@good.test" % i)
            self.send("o%d@slow.test" % i)
        wait_for(lambda: self.slow.count() == 3, 30, what="the other domain delivered")
        time.sleep(2)
        self.assertEqual(self.good.count(), 0, "mail of the suspended domain was delivered")
        listed = self.ctl("suspend-list")["items"]
        self.assertEqual([i["id"] for i in listed], [sid])
        self.assertIn("incident 42", node.ringctl("suspend-list", check=True).stdout)
        q = self.ctl("inspect-sched-q", "good.test")
        self.assertGreater(q["queue"]["suspended_ms"], 0)
        self.assertEqual([e["id"] for e in q["queue"]["effects"]], [sid])
        self.assertEqual(len(q["messages"]), 3)

        # durable: a restart of the whole node keeps it (the spool stored it, the walk restores it)
        node.stop()
        node.start()
        wait_for(lambda: [i["id"] for i in self.ctl("suspend-list")["items"]] == [sid], 20,
                 what="the suspension restored after the restart")
        self.send("r9@good.test")
        time.sleep(3)
        self.assertEqual(self.good.count(), 0, "delivered while suspended after the restart")

        p = node.ringctl("suspend-cancel", str(sid), check=True)
        self.assertIn("cancelled", p.stdout)
        wait_for(lambda: self.good.count() == 4, 30, what="the domain's mail delivered after the cancel")
        self.assertEqual(self.ctl("suspend-list")["items"], [])
        # the cancel is durable too: after another restart nothing is held
        node.stop()
        node.start()
        time.sleep(2)
        self.assertEqual(self.ctl("suspend-list")["items"], [])
        self.assertEqual(node.ringctl("suspend-cancel", str(sid)).returncode, 1, "a second cancel is refused")

    def test_suspend_ready_q_holds_one_path_and_refusals_say_what_to_do(self):
        node = self.start(slow_reply=None)
        self.send("a@good.test")
        wait_for(lambda: self.good.count() == 1, 30, what="first delivery")
        path = [r for r in self.ctl("queue-summary")["rows"] if r["site"] == GOOD_SITE][0]["name"]
        sid = self.ctl("suspend-ready-q", "--name", path, "--reason", "mx maintenance")["item"]["id"]
        self.send("b@good.test")
        self.send("c@slow.test")
        wait_for(lambda: self.slow.count() == 1, 30, what="the other path delivers")
        time.sleep(2)
        self.assertEqual(self.good.count(), 1, "the suspended path delivered")
        insp = self.ctl("inspect-ready-q", path)["path"]
        self.assertGreater(insp["suspended_ms"], 0)
        self.assertEqual(insp["effects"][0]["id"], sid)
        self.assertIn("connection_limit", insp["config"])
        self.assertIn("throttle_waits", insp["throttle"])
        self.assertEqual(insp["queued"], 1)
        self.assertEqual(len(self.ctl("inspect-ready-q", path)["messages"]), 1)
        p = node.ringctl("inspect-ready-q", path, check=True)
        self.assertIn("mx maintenance", p.stdout)
        self.ctl("suspend-ready-q-cancel", str(sid))
        wait_for(lambda: self.good.count() == 2, 30, what="delivered after the cancel")
        # refusals
        p = node.ringctl("suspend", "--domain", "good.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn("reason", p.stderr)
        p = node.ringctl("suspend-ready-q", "--name", "nosuchform", "--reason", "x")
        self.assertIn("SOURCE->SITE", p.stderr)
        p = node.ringctl("inspect-sched-q", "nosuch.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn("no such scheduled queue", p.stderr)
        code, _ = node.http("GET", "/api/v1/bounce/cancel")
        self.assertEqual(code, 405)
        code, _ = node.http("POST", "/api/v1/suspend?domain=good.test&reason=x&duration=soon")
        self.assertEqual(code, 400)


class BounceTest(OpsCase):
    def test_bounce_empties_the_queue_with_admin_bounce_records_and_dsns_and_cancel_stops_it(self):
        node = self.start()
        for i in range(3):
            self.send("b%d@slow.test" % i)
        wait_for(lambda: len(self.log_of("TransientFailure", "slow.test")) >= 3, 30, what="deferred")
        item = self.ctl("bounce", "--domain", "slow.test", "--reason", "list cleanup", "--duration", "10m")["item"]
        self.assertEqual(item["kind"], "bounce")

        def bounced():
            return sorted(r["recipient"] for r in self.log_of("AdminBounce"))
        # in-flight attempts are bounced once they come back: all three within a few retries
        wait_for(lambda: len(bounced()) == 3, 30, what="three AdminBounce records")
        texts = {r["response"]["content"] for r in self.log_of("AdminBounce")}
        self.assertEqual(texts, {"administratively bounced by the operator"}, "the operator's bounce says so")
        wait_for(lambda: self.good.delivered_to("s@dsn.test") == 3, 30, what="a DSN for each bounce")
        wait_for(lambda: not [q for q in self.ctl("queue-summary")["queues"] if q["domain"] == "slow.test"], 10,
                 what="slow.test's queue empty")
        # new mail is bounced while the bounce lasts
        self.send("late@slow.test")
        wait_for(lambda: "late@slow.test" in bounced(), 20, what="new mail bounced")
        self.assertEqual([i["id"] for i in self.ctl("bounce-list")["items"]], [item["id"]])
        self.assertIn("list cleanup", node.ringctl("bounce-list", check=True).stdout)
        # cancelled: new mail is queued again (and deferred by the sink), not bounced
        self.ctl("bounce-cancel", str(item["id"]))
        self.send("after@slow.test")
        wait_for(lambda: [r for r in self.log_of("TransientFailure", "slow.test")
                          if r["recipient"] == "after@slow.test"], 20, what="new mail attempted again")
        self.assertNotIn("after@slow.test", bounced())
        self.assertEqual(self.ctl("bounce-list")["items"], [])
        q = self.ctl("inspect-sched-q", "slow.test")["queue"]
        self.assertFalse(q["bouncing"])


class LogLevelTest(OpsCase):
    def test_set_log_level_changes_one_roles_level_at_run_time(self):
        node = self.start(slow_reply=None)
        self.send("a@good.test")
        wait_for(lambda: self.good.count() == 1, 30, what="first delivery")
        self.assertNotRegex(node.log(), r" debug scheduler\[")
        p = node.ringctl("set-log-level", "debug", "--role", "scheduler", check=True)
        self.assertIn("log level debug for scheduler", p.stdout)
        wait_for(lambda: "scheduler[0]: log level set at run time" in node.log(), 5, what="the scheduler took it")
        self.send("b@slow.test")  # a new path: the scheduler logs its shaping at debug level
        wait_for(lambda: self.slow.count() == 1, 30, what="second delivery")
        wait_for(lambda: " debug scheduler[0]: path " in node.log(), 5, what="a debug line of the scheduler")
        self.assertNotRegex(node.log(), r" debug (spool|ingress|egress)\[", "another role's level changed")
        node.ringctl("set-log-level", "config", "--role", "scheduler", check=True)
        wait_for(lambda: "scheduler[0]: log level back to the configured one" in node.log(), 5,
                 what="back to the configured level")
        p = node.ringctl("set-log-level", "loud")
        self.assertEqual(p.returncode, 1)
        self.assertIn("debug, info, warn, error or config", p.stderr)
        p = node.ringctl("set-log-level", "info", "--role", "nobody")
        self.assertEqual(p.returncode, 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
