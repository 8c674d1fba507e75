"""inspect-message and spool-compact end to end (issue 10) against a real node with real traffic:
smtplib -> node -> a recording aiosmtpd sink on 127.0.0.2, MX records from a real DNS server (unbound).
The sink answers RCPT of local parts "tempfail*" with 451, so those recipients stay queued (retry in an
hour) while the others of the same message are delivered: inspect-message must show exactly what the
spool holds, checked against the injected envelope and the node's own log records.

    RINGMAIL_BUILD_DIR=/tmp/b /usr/bin/python3 tests/e2e/inspect_test.py -k inspect
"""
import base64
import json
import os
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "ops", "timeout": 240, "tools": ["hostile_role"]}

SENDER = "alice@src.test"


class InspectCase(PeersCase):
    records = [
        "dest.test. 60 IN MX 10 mx.dest.test.",
        "other.test. 60 IN MX 10 mx.dest.test.",
        "src.test. 60 IN MX 10 mx.dest.test.",
        "mx.dest.test. 60 IN A 127.0.0.2",
    ]

    def start(self):
        port = free_udp_tcp_port("127.0.0.2")
        self.sink = self.peer(Sink("127.0.0.2", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "1s"'
        self.node = Node(egress=eg, park_delivery=False)
        # the deferred recipients come back in an hour: their next due is far in the future
        extra = '[queue.default]\nretry_interval = "1h"\nmax_retry_interval = "2h"\n'
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        return self.node

    def send(self, rcpts, body, sender=SENDER):
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            refused = c.sendmail(sender, rcpts, body)
            self.assertEqual(refused, {})
        finally:
            c.quit()

    def ctl(self, *args):
        p = self.node.ringctl(*(list(args) + ["--json"]), check=True)
        return json.loads(p.stdout)

    def records_of(self, typ, **match):
        return [r for r in self.node.log_records()
                if r["type"] == typ and all(r.get(k) == v for k, v in match.items())]


class InspectMessageTest(InspectCase):
    def test_inspect_message_matches_the_spool(self):
        node = self.start()
        rcpts = ["tempfail-a@dest.test", "ok@dest.test", "tempfail-b@other.test"]
        body = (b"Subject: inspect me\r\nMessage-Id: <inspect-1@src.test>\r\n\r\n"
                b"the unmistakable body line 7f3a\r\n" + (b"x" * 70 + b"\r\n") * 80)
        self.send(rcpts, body)
        recs = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(self.records_of("Reception", sender=SENDER)),
                        20, what="three Reception records")
        mid = recs[0]["id"]
        self.assertEqual({r["id"] for r in recs}, {mid})
        size = recs[0]["size"]
        wait_for(lambda: self.sink.count() == 1, 30, what="ok@dest.test delivered")
        wait_for(lambda: len(self.records_of("TransientFailure", id=mid)) == 2, 30, what="two deferrals")
        time.sleep(0.5)  # the spool commits the attempt results with their records

        doc = self.ctl("inspect-message", mid)
        self.assertEqual(doc["id"], mid)
        self.assertTrue(doc["in_spool"])
        self.assertEqual(doc["sender"], SENDER)
        self.assertEqual(doc["size"], size)
        self.assertEqual(doc["recipients_total"], 3)
        self.assertEqual(doc["recipients_queued"], 2)
        self.assertFalse(doc["recipients_truncated"])
        self.assertEqual(abs(doc["created_ms"] // 1000 - recs[0]["timestamp"]) <= 1, True, doc["created_ms"])
        by = {r["recipient"]: r for r in doc["recipients"]}
        self.assertEqual([r["recipient"] for r in doc["recipients"]], rcpts, "the envelope's order")
        self.assertEqual(by["ok@dest.test"]["state"], "delivered")
        self.assertEqual(by["ok@dest.test"]["attempts"], 1)
        deliv = self.records_of("Delivery", id=mid)
        self.assertEqual([r["recipient"] for r in deliv], ["ok@dest.test"])
        now_ms = time.time() * 1000
        for r in ("tempfail-a@dest.test", "tempfail-b@other.test"):
            tf = self.records_of("TransientFailure", id=mid, recipient=r)
            self.assertEqual(len(tf), 1, r)
            self.assertEqual(by[r]["state"], "queued")
            self.assertEqual(by[r]["attempts"], tf[0]["num_attempts"], "attempts as the log says")
            self.assertEqual(by[r]["attempts"], 1)
            self.assertEqual(by[r]["queue"], tf[0]["queue"])
            self.assertEqual(by[r]["sched_state"], "scheduled")
            self.assertGreater(by[r]["next_due_ms"], now_ms + 20 * 60 * 1000, "next due about an hour away")
            self.assertLess(by[r]["next_due_ms"], now_ms + 3 * 3600 * 1000)
        # the scheduler's entries: one per recipient domain still queued
        self.assertEqual(sorted(q["queue"] for q in doc["queues"]), ["dest.test", "other.test"])
        self.assertTrue(all(q["state"] == "scheduled" and q["attempts"] == 1 for q in doc["queues"]), doc["queues"])
        self.assertEqual(doc["next_due_ms"], min(q["next_due_ms"] for q in doc["queues"]))
        self.assertNotIn("body", doc, "no body unless asked")
        # about 5.8 KB: in the body log, at the start of the first segment
        self.assertEqual(doc["body_store"], {"where": "body_log", "segment": "%016x" % 1, "offset": 0})

        # --body: the stored message, byte for byte as the sink would get it
        doc = self.ctl("inspect-message", mid, "--body")
        self.assertEqual(doc["body_bytes"], size)
        self.assertFalse(doc["body_truncated"])
        self.assertIn("the unmistakable body line 7f3a", doc["body"])
        self.assertEqual(len(doc["body"].encode()), size)
        self.assertTrue(doc["body"].encode().endswith(body), "the injected message, after the node's own header")
        # upper case ids are the same id
        self.assertEqual(self.ctl("inspect-message", mid.upper())["id"], mid)

        # for people: aligned, 100 columns, no colour when not a terminal
        p = node.ringctl("inspect-message", mid, check=True)
        self.assertTrue(all(len(line) <= 100 for line in p.stdout.splitlines()), p.stdout)
        self.assertRegex(p.stdout, r"sender: +<alice@src\.test>")
        # due in about an hour: "59m", "1h", "1h05m" (ringctl_ops_age drops the minutes of a whole hour)
        self.assertRegex(p.stdout, r"tempfail-a@dest\.test +queued +1 +dest\.test +scheduled +(\d+h(\d\dm)?|\d+m)\n")
        self.assertRegex(p.stdout, r"ok@dest\.test +delivered +1")
        self.assertNotIn("\033[", p.stdout)
        p = node.ringctl("inspect-message", mid, "--body", check=True)
        self.assertIn("the unmistakable body line 7f3a", p.stdout)

        # unknown id: 404; a malformed one: 400; both said clearly
        unknown = "0" * 31 + "1"
        code, b = node.http("GET", "/api/v1/inspect-message?id=" + unknown)
        self.assertEqual(code, 404, b)
        self.assertIn("no such message", json.loads(b)["error"])
        p = node.ringctl("inspect-message", unknown)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no such message", p.stderr)
        for bad in ("xyz", mid[:-1], mid + "0", mid[:-1] + "g", "%00" + mid[1:]):
            code, b = node.http("GET", "/api/v1/inspect-message?id=" + bad)
            self.assertEqual(code, 400, bad)
            self.assertIn("32 hex digits", json.loads(b)["error"])
        code, _ = node.http("GET", "/api/v1/inspect-message")
        self.assertEqual(code, 400)
        code, _ = node.http("GET", "/api/v1/inspect-message?id=%s&body=maybe" % mid)
        self.assertEqual(code, 400)
        code, _ = node.http("POST", "/api/v1/inspect-message?id=" + mid)
        self.assertEqual(code, 405)
        p = node.ringctl("inspect-message", "not-an-id")
        self.assertEqual(p.returncode, 1)
        self.assertIn("32 hex digits", p.stderr)
        self.assertEqual(node.counter("spool", "ring_bad_records"), 0)
        self.assertEqual(node.counter("scheduler", "ring_bad_records"), 0)

    def test_a_delivered_message_is_gone_and_the_spool_answers_after_a_restart(self):
        node = self.start()
        self.send(["tempfail-x@dest.test"], b"Subject: stays\r\n\r\nqueued\r\n")
        self.send(["done@dest.test"], b"Subject: goes\r\n\r\ndelivered\r\n")
        wait_for(lambda: self.sink.count() == 1, 30, what="one delivered")
        wait_for(lambda: self.records_of("TransientFailure", recipient="tempfail-x@dest.test"), 30, what="deferral")
        queued = self.records_of("Reception", recipient="tempfail-x@dest.test")[0]["id"]
        gone = self.records_of("Reception", recipient="done@dest.test")[0]["id"]
        code, _ = node.http("GET", "/api/v1/inspect-message?id=" + gone)
        self.assertEqual(code, 404, "a delivered message left the spool")
        # a restarted node (a new spool and scheduler) answers on the same channels, with the attempts the
        # log counts; the retry stays about an hour after the attempt (retry_interval 1h, +-10%): a restart
        # does not retry every deferred message at once (the envelope keeps the last attempt's time)
        before = self.ctl("inspect-message", queued)
        self.assertEqual(before["recipients"][0]["attempts"], 1)
        attempted_ms = self.records_of("TransientFailure", recipient="tempfail-x@dest.test")[0]["timestamp"] * 1000
        node.stop()
        node.start()

        def settled():
            d = self.ctl("inspect-message", queued)
            ok = d["queues"] and d["queues"][0]["state"] == "scheduled"
            return d if ok else None
        after = wait_for(settled, 20, what="the walk announced it again")
        time.sleep(2)  # a retry at once would show by now
        self.assertEqual(len(self.records_of("TransientFailure", recipient="tempfail-x@dest.test")), 1,
                         "the restart retried a deferred message at once")
        after = self.ctl("inspect-message", queued)
        self.assertEqual(after["size"], before["size"])
        self.assertEqual(after["recipients"][0]["state"], "queued")
        self.assertEqual(after["recipients"][0]["attempts"], 1)
        due = after["next_due_ms"]
        self.assertTrue(attempted_ms + 0.9 * 3600e3 - 2000 <= due <= attempted_ms + 1.1 * 3600e3 + 2000,
                        "due %d ms after the attempt, not about an hour" % (due - attempted_ms))


class InspectBodyTest(InspectCase):
    def test_a_large_body_is_cut_at_512_kib_and_says_so(self):
        node = self.start()
        line = b"0123456789abcdef" * 4 + b"\r\n"  # 66 bytes
        self.send(["tempfail-big@dest.test"], b"Subject: big\r\n\r\n" + line * 12000)  # about 790 KB
        wait_for(lambda: self.records_of("TransientFailure", recipient="tempfail-big@dest.test"), 30, what="deferral")
        rec = self.records_of("Reception", recipient="tempfail-big@dest.test")[0]
        doc = self.ctl("inspect-message", rec["id"], "--body")
        self.assertIs(doc["body_8bit"], False)  # the ingress scanned it: ASCII
        self.assertEqual(doc["body_bytes"], rec["size"])
        self.assertTrue(doc["body_truncated"])
        self.assertEqual(len(doc["body"].encode()), 512 * 1024)
        self.assertIn("0123456789abcdef" * 4, doc["body"])
        p = node.ringctl("inspect-message", rec["id"], "--body", check=True)
        self.assertIn("cut at 512 KiB", p.stdout)

        # a body that is not UTF-8 (8BITMIME Latin-1) comes whole as base64
        latin = b"Subject: l\r\n\r\ncaf\xe9 cr\xe8me\r\n"
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            self.assertEqual(c.sendmail(SENDER, ["tempfail-latin@dest.test"], latin, mail_options=["BODY=8BITMIME"]),
                             {})
        finally:
            c.quit()
        wait_for(lambda: self.records_of("TransientFailure", recipient="tempfail-latin@dest.test"), 30,
                 what="deferral")
        mid = self.records_of("Reception", recipient="tempfail-latin@dest.test")[0]["id"]
        doc = self.ctl("inspect-message", mid, "--body")
        self.assertNotIn("body", doc)
        self.assertEqual(doc["flags"], ["8BITMIME"])
        # the ingress's scan rides in the envelope (the egress declares BODY=8BITMIME from it)
        self.assertIs(doc["body_8bit"], True)
        raw = base64.b64decode(doc["body_base64"], validate=True)
        self.assertTrue(raw.endswith(latin), raw)
        self.assertEqual(len(raw), doc["body_bytes"])
        self.assertIn("not UTF-8", node.ringctl("inspect-message", mid, "--body", check=True).stdout)


class HostileChannelTest(InspectCase):
    def test_garbage_in_the_spools_command_page_is_refused_and_the_channel_keeps_working(self):
        """ROLE-01 for the spool's channel: another process of the node writes into the spool's request
        page (PROTO_NODE_STATUS_SPOOL_REQ = 4); the spool copies, decodes, refuses, counts and goes on."""
        node = self.start()
        self.send(["tempfail-h@dest.test"], b"Subject: h\r\n\r\nhostile\r\n")
        wait_for(lambda: self.records_of("TransientFailure", recipient="tempfail-h@dest.test"), 30, what="deferral")
        mid = self.records_of("Reception", recipient="tempfail-h@dest.test")[0]["id"]
        spool_pid = node.instances()["spool[0]"]["pid"]
        hostile = os.path.join(BUILD_DIR, "tests", "e2e", "hostile_role")
        bad = node.counter("spool", "ring_bad_records")
        garbage = [
            None,  # a length past the page
            "{\"id\":1",  # not JSON
            '{"id":99,"op":"inspect-message-spool","deadline_ms":1,"who":"x","args":{"message":"../../etc"}}',
            '{"id":99,"op":"spool-compact","deadline_ms":1,"who":"x","args":{"evil":1}}',
        ]
        for g in garbage:
            subprocess.run([hostile, str(spool_pid), "page", "4"] + ([g] if g is not None else []), check=True,
                           capture_output=True, timeout=10)
            time.sleep(0.5)  # the spool's next tick
        wait_for(lambda: node.counter("spool", "ring_bad_records") >= bad + 3, 5, what="the refusals counted")
        # a request valid in form but past its deadline is not acted on either (no compaction ran); its huge
        # id does not shut either channel (ids label replies, they do not order requests)
        huge = '{"id":9007199254740991,"op":"%s","deadline_ms":1,"who":"hostile","args":{}}'
        subprocess.run([hostile, str(spool_pid), "page", "4", huge % "spool-compact"], check=True,
                       capture_output=True, timeout=10)
        subprocess.run([hostile, str(spool_pid), "page", "2", huge % "queue-summary"], check=True,
                       capture_output=True, timeout=10)
        time.sleep(0.5)
        self.assertIn("totals", self.ctl("queue-summary"), "the scheduler's channel still answers")
        self.assertEqual(node.instances()["spool[0]"]["pid"], spool_pid, "the spool did not crash")
        self.assertIn("found after its deadline: not acted on", node.log())
        self.assertEqual(self.ctl("spool-compact", "--status")["compaction"]["runs"], 0)
        self.assertEqual(self.ctl("inspect-message", mid)["recipients"][0]["state"], "queued")


class SpoolCompactTest(InspectCase):
    def test_spool_compact_reports_progress_and_mail_keeps_flowing(self):
        node = self.start()
        sent = []
        big = b"Subject: bulk\r\n\r\n" + (b"y" * 998 + b"\r\n") * 20

        def inject(prefix, n):
            c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
            try:
                c.ehlo("client.test")
                for i in range(n):
                    rcpt = "%s%d@dest.test" % (prefix, i)
                    c.sendmail(SENDER, [rcpt], big)
                    sent.append(rcpt)
            finally:
                c.quit()
        inject("before", 150)
        wait_for(lambda: self.sink.count() == 150, 60, what="the first batch delivered")

        # without the token the mutating call is refused, and nothing starts
        code, b = node.http("POST", "/api/v1/spool-compact", token=False)
        self.assertIn(code, (401, 403), b)
        status = self.ctl("spool-compact", "--status")["compaction"]
        self.assertEqual(status["state"], "idle")
        self.assertEqual(status["runs"], 0)

        # compact while mail is injected and delivered
        t = threading.Thread(target=inject, args=("during", 150))
        t.start()
        p = node.ringctl("spool-compact", "--json", timeout=120)
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertEqual(p.returncode, 0, p.stderr)
        docs = [json.loads(line)["compaction"] for line in p.stdout.splitlines() if line.strip()]
        self.assertGreaterEqual(len(docs), 2, "the start and at least one progress document")
        self.assertIn(docs[0]["state"], ("running", "done"))
        self.assertEqual(docs[-1]["state"], "done")
        self.assertEqual(docs[-1]["families_done"], docs[-1]["families_total"])
        self.assertGreater(docs[-1]["families_total"], 0)
        self.assertEqual(docs[-1]["runs"], 1)
        self.assertGreaterEqual(docs[-1]["finished_ms"], docs[-1]["started_ms"])
        for d in docs[:-1]:
            self.assertEqual(d["state"], "running")
        self.assertIn("spool compaction done in", node.log())

        # no loss: every message of both batches delivered, once
        wait_for(lambda: self.sink.count() == 300, 60, what="every message delivered")
        got = sorted(r for m in self.sink.messages for r in m[1])
        self.assertEqual(got, sorted(sent))

        # for people: a start line, progress, the end; the status afterwards
        p = node.ringctl("spool-compact", check=True, timeout=120)
        self.assertIn("compaction started", p.stdout)
        self.assertRegex(p.stdout, r"done in \d+ ?(ms|s|m|h\w*): SST files [\d.]+ \w?i?B -> [\d.]+ \w?i?B")
        self.assertTrue(all(len(line) <= 100 for line in p.stdout.splitlines()), p.stdout)
        st = self.ctl("spool-compact", "--status")["compaction"]
        self.assertEqual((st["state"], st["runs"]), ("done", 2))
        code, _ = node.http("GET", "/api/v1/spool-compact", token=False)
        self.assertEqual(code, 200, "reading the progress is not mutating")
        self.assertEqual(node.counter("spool", "spool_commit_failures"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
