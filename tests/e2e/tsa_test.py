"""Traffic shaping automation end to end: a real node, a sink on loopback that answers Yahoo's
`421 4.7.0 [TS04]` text after DATA, shaping files with automation rules ([shaping] files).

The Suspend and SuspendTenant scenarios hold deliveries through the core's path and queue suspensions
(sched_path_suspend / sched_queue_suspend, called from scheduler/sched_tsa_node.c).

    /usr/bin/python3 tests/e2e/tsa_test.py -k threshold
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

MESON = {"suite": "tsa", "timeout": 180}

TS04 = "421 4.7.0 [TS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or user complaints"

POLICY = r"""
kumo.on("smtp_server_message_received", function(msg, conn_meta)
  local t = msg:get_first_named_header_value("X-Tenant")
  if t then msg:set_meta("tenant", t) end
end)
"""


def rule(action, trigger='"Immediate"', duration="6s", scope='"default"'):
    """One automation rule matching [TS04]; action is TOML (a quoted name or a table)."""
    return """
[[%s.automation]]
regex = "\\\\[TS04\\\\]"
action = %s
trigger = %s
duration = "%s"
""" % (scope, action if action.startswith("{") else '"%s"' % action, trigger, duration)


class TsaCase(PeersCase):
    def start(self, shaping_rules, with_policy=False):
        self.sink = self.peer(Sink(data_reply=TS04))
        path = None
        extra = '[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % self.sink.port
        extra += '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        if shaping_rules is not None:
            path = os.path.join(self.tmpdir(), "tsa-shaping.toml")
            with open(path, "w") as f:
                f.write(shaping_rules)
            os.chmod(path, 0o644)
            extra += '[shaping]\nfiles = ["%s"]\n' % path
        eg = '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "1s"'
        self.node = Node(egress=eg, park_delivery=False)
        if with_policy:
            extra += self.node.policy_section(POLICY)
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        return self.node

    def tmpdir(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="tsa-test-")
        os.chmod(d, 0o755)
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        return d

    def send(self, rcpt, tenant=None):
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            hdr = "X-Tenant: %s\r\n" % tenant if tenant else ""
            c.sendmail("s@client.test", [rcpt], ("Subject: t\r\n%s\r\nhello\r\n" % hdr).encode())
        finally:
            c.quit()

    def tsa(self, which="status", query=""):
        """The served document; an empty one while the scheduler has not published yet (503)."""
        code, body = self.node.http("GET", "/api/v1/tsa/%s%s" % (which, query))
        if code == 503:
            return {"responses": 0, "active": [], "history": []}
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def active(self, action=None):
        return [e for e in self.tsa()["active"] if action is None or e["action"] == action]

    def fresh(self):
        """Wait for a page the running scheduler published (not one its killed predecessor left)."""
        time.sleep(1.2)
        wait_for(lambda: self.tsa().get("age_ms", 10**9) < 1000, 10, what="a fresh TSA page")

    def tsa_records(self):
        return [r for r in self.node.log_records() if r["type"] == "TSA"]


class AdminApiTest(TsaCase):
    def test_tsa_documents_and_ringctl_without_any_firing(self):
        """The admin API serves the scheduler's TSA page (empty), filters parse, ringctl prints it."""
        self.sink = None
        self.node = Node().start()
        doc = wait_for(lambda: self.node.http("GET", "/api/v1/tsa/status")[0] == 200 and self.tsa(), 10,
                       what="the TSA page published")
        self.assertEqual(doc["active"], [])
        self.assertEqual(doc["history"], [])
        self.assertIn("age_ms", doc)
        self.assertEqual(self.tsa("status", "?domain=example.test&site=mx.example.test")["active"], [])
        self.assertEqual(self.tsa("history")["history"], [])
        p = self.node.ringctl("tsa-status", "--domain", "example.test", check=True)
        self.assertIn("no automation effect in force", p.stdout)
        p = self.node.ringctl("tsa-history", check=True)
        self.assertIn("no automation firing recorded", p.stdout)
        p = self.node.ringctl("--json", "tsa-history", check=True)
        self.assertEqual(json.loads(p.stdout)["history"], [])
        p = self.node.ringctl("tsa-status", "--domain", "bad domain")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)


    def test_every_failed_attempt_reaches_the_scheduler(self):
        """Without any rule: each TransientFailure attempt is one response at the scheduler (the spool ->
        scheduler plumbing), deliveries none, and no ring record is refused on the way. An empty shaping
        file: the built-in one has rules that [TS04]'s wording would fire."""
        self.start("")
        self.send("r1@example.test")
        wait_for(lambda: len([r for r in self.node.log_records() if r["type"] == "TransientFailure"]) >= 3, 20,
                 what="three TransientFailure records")
        self.sink.data_reply = None
        wait_for(lambda: self.sink.count() == 1, 20, what="delivered once the sink accepts")
        time.sleep(1.5)  # the page is published once a second
        failures = len([r for r in self.node.log_records() if r["type"] == "TransientFailure"])
        self.assertEqual(self.tsa()["responses"], failures)
        self.assertEqual(self.node.counter("scheduler", "ring_bad_records"), 0)
        self.assertEqual(self.node.counter("spool", "ring_bad_records"), 0)


class SuspendTest(TsaCase):
    def test_suspend_rule_fires_and_no_connection_until_it_expires(self):
        """Immediate Suspend: the [TS04] answer fires it; the sink sees no connection while it lasts;
        afterwards delivery resumes (the sink accepts by then)."""
        node = self.start(rule("Suspend", duration="8s"))
        self.send("r1@example.test")
        eff = wait_for(lambda: self.active("Suspend"), 15, what="Suspend in force")
        self.assertIn("[TS04]", eff[0]["response"])
        fired_at = time.monotonic()
        self.sink.data_reply = None
        conns = self.sink.connections
        self.send("r2@example.test")
        time.sleep(4)
        self.assertEqual(self.sink.connections, conns, "a connection reached the sink during the suspension")
        p = node.ringctl("tsa-status", check=True)
        self.assertRegex(p.stdout, r"SUSPEND .* active \d+s remaining · trigger: 421 4\.7\.0 \[TS04\]")
        wait_for(lambda: self.sink.count() >= 2, 30, what="both messages delivered after the expiry")
        self.assertGreaterEqual(time.monotonic() - fired_at, 6.5, "delivered before the suspension expired")
        recs = wait_for(self.tsa_records, 10, what="TSA log record")
        self.assertEqual(recs[0]["action"], "Suspend")
        self.assertIn("[TS04]", recs[0]["response"])
        self.assertEqual(recs[0]["expires_ms"] - recs[0]["start_ms"], 8000)
        hist = self.tsa("history")
        self.assertEqual(hist["history"][0]["action"], "Suspend")
        # one firing, counted per rule on the page and in /metrics (docs/metrics.md)
        key = "%s:%d Suspend" % (hist["history"][0]["rule_file"], hist["history"][0]["rule_line"])
        self.assertEqual(hist["rules"], [{"rule": key, "firings": 1}])
        code, body = node.http("GET", "/metrics")
        self.assertEqual(code, 200)
        line = 'ringmail_tsa_firings_total{rule="%s"} 1' % key.replace("\\", "\\\\").replace('"', '\\"')
        self.assertIn(line, body.decode().splitlines())


class ThresholdTest(TsaCase):
    def test_threshold_rule_fires_on_the_third_match_and_not_before(self):
        node = self.start(rule('{SetConfig = {name = "connection_limit", value = 1}}',
                               trigger='{Threshold = "3/min"}', duration="30s"))
        self.send("r1@example.test")
        # each retry (1 s) is another [TS04] answer: after 2 of them nothing has fired
        wait_for(lambda: node.counter("spool", "messages_stored") >= 1 and self.sink.connections >= 2, 20,
                 what="two attempts")
        if self.sink.connections == 2:
            self.assertEqual(self.active(), [], "fired before the 3rd match")
        eff = wait_for(lambda: self.active("SetConfig"), 20, what="SetConfig in force after the 3rd match")
        self.assertEqual(eff[0]["option"], "connection_limit")
        self.assertEqual(eff[0]["value"], "1")
        hist = self.tsa("history")["history"]
        self.assertEqual(hist[-1]["count"], 3, hist)
        self.assertGreaterEqual(self.sink.connections, 3)

        def limits():
            code, body = node.http("GET", "/api/v1/queues")
            return [p["connection_limit"] for p in json.loads(body)["paths"]] if code == 200 else []
        # the override reaches the path: its connection limit is the rule's value while it lasts
        wait_for(lambda: limits() == [1], 10, what="connection_limit 1 on the path")
        # and the operator's resolve-shaping on the live node says so, and which rule set it
        site = eff[0]["site"]
        doc = json.loads(node.ringctl("resolve-shaping", "--domain", "example.test", "--source",
                                      eff[0]["source"] or "default", "--site", site, "--json", check=True).stdout)
        self.assertEqual(doc["config"]["connection_limit"], 1, doc)
        self.assertTrue(doc["set_by"]["connection_limit"].startswith("automation SetConfig"), doc["set_by"])
        self.assertEqual([a["action"] for a in doc["automation"]], ["SetConfig"], doc["automation"])


class SuspendTenantTest(TsaCase):
    def test_suspend_tenant_holds_only_that_tenant(self):
        node = self.start(rule("SuspendTenant", duration="10s"), with_policy=True)
        self.send("a1@example.test", tenant="acme")
        eff = wait_for(lambda: self.active("SuspendTenant"), 15, what="SuspendTenant in force")
        self.assertEqual(eff[0]["tenant"], "acme")
        self.sink.data_reply = None
        self.send("b1@example.test", tenant="other")
        self.send("a2@example.test", tenant="acme")
        wait_for(lambda: self.sink.delivered_to("b1@example.test") == 1, 15, what="the other tenant delivered")
        time.sleep(2)
        self.assertEqual(self.sink.delivered_to("a2@example.test"), 0, "the suspended tenant was delivered")
        wait_for(lambda: self.sink.delivered_to("a2@example.test") == 1, 30, what="acme delivered after expiry")


class DurableTest(TsaCase):
    def test_active_suspension_survives_kill9_of_the_scheduler_and_a_node_restart(self):
        node = self.start(rule("Suspend", duration="60s"))
        self.send("r1@example.test")
        first = wait_for(lambda: self.active("Suspend"), 15, what="Suspend in force")[0]
        self.sink.data_reply = None
        # kill -9 of the scheduler: the new one gets the firing back from the spool
        inst = node.instances()["scheduler[0]"]
        os.kill(inst["pid"], 9)
        wait_for(lambda: node.instances()["scheduler[0]"]["restarts"] > inst["restarts"] and
                 node.instances()["scheduler[0]"]["state"] == "ready", 10, what="scheduler restarted")
        self.fresh()
        again = wait_for(lambda: self.active("Suspend"), 10, what="Suspend in force after the restart")[0]
        self.assertEqual(again["expires_ms"], first["expires_ms"])
        conns = self.sink.connections
        # the whole node, killed and started again on the same data
        node.kill_all()
        node.start()
        self.fresh()
        again = wait_for(lambda: self.active("Suspend"), 10, what="Suspend in force after a node restart")[0]
        self.assertEqual(again["expires_ms"], first["expires_ms"])
        self.assertEqual(len(self.tsa("history")["history"]), 1, "one firing, not one per restart")
        self.send("r2@example.test")  # the sink accepts now: only the suspension holds it back
        time.sleep(3)
        self.assertEqual(self.sink.connections, conns, "a connection reached the sink while suspended")

    def test_active_suspension_survives_kill9_of_the_spool_then_the_scheduler(self):
        node = self.start(rule("Suspend", duration="60s"))
        self.send("r1@example.test")
        first = wait_for(lambda: self.active("Suspend"), 15, what="Suspend in force")[0]
        self.sink.data_reply = None
        for role in ("spool", "scheduler"):
            inst = node.instances()["%s[0]" % role]
            os.kill(inst["pid"], 9)
            wait_for(lambda: node.instances()["%s[0]" % role]["restarts"] > inst["restarts"] and
                     node.instances()["%s[0]" % role]["state"] == "ready", 15, what="%s restarted" % role)
        self.fresh()
        again = wait_for(lambda: self.active("Suspend"), 10, what="Suspend in force after both restarts")[0]
        self.assertEqual(again["expires_ms"], first["expires_ms"])
        self.assertEqual(len(self.tsa("history")["history"]), 1, "one firing, not one per restart")


class BounceTest(TsaCase):
    def test_bounce_rule_bounces_queued_mail_with_admin_bounce_records_and_a_dsn(self):
        node = self.start(rule("Bounce", duration="20s", scope='"example.test"'))

        def bounced():
            return sorted(r["recipient"] for r in node.log_records() if r["type"] == "AdminBounce")
        self.send("r1@example.test")
        wait_for(lambda: self.active("Bounce"), 15, what="Bounce in force")
        self.sink.data_reply = None  # the DSNs to the sender are accepted
        wait_for(lambda: bounced() == ["r1@example.test"], 15, what="the AdminBounce record")
        # new mail for the domain while the effect lasts is bounced too, without an attempt
        self.send("r2@example.test")
        wait_for(lambda: bounced() == ["r1@example.test", "r2@example.test"], 15,
                 what="the second AdminBounce record")
        self.assertNotIn("r2@example.test", [r for r, _ in self.sink.rcpt_log], "mail under a Bounce was attempted")
        # each bounce is reported to the sender: the DSNs go out like any mail (route "*": the same sink)
        wait_for(lambda: self.sink.delivered_to("s@client.test") == 2, 30, what="a DSN for each bounce")
        wait_for(lambda: node.counter("scheduler", "messages_queued") == 0, 15, what="nothing queued")
        self.assertEqual(bounced(), ["r1@example.test", "r2@example.test"], "each recipient bounced once")

if __name__ == "__main__":
    unittest.main()
