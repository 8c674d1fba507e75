"""Suppression list end to end (issue 14): a real node, a recording aiosmtpd sink on 127.0.0.2 that answers
scripted RCPT replies by local part, MX records from a real DNS server (unbound), smtplib as the client and
ringctl as the operator.

- a 550 5.1.1 from the sink -> Bounce -> the address is on the list (SuppressionAdded, `ringctl suppression
  check`) -> a new message to it is refused at RCPT with 550 5.7.1 on the default listener, and on a listener
  with suppression = "drop" gets 250, a Suppressed record, and never reaches the sink;
- the providers' block, reputation and rate texts (Microsoft S3150, Gmail 4.7.28 and 5.7.1 blocked, Yahoo
  TSS04 and TS03, Spamhaus) never suppress;
- an address queued behind a 451, then suppressed with `ringctl suppression add`, is not sent when the sink
  accepts again (a Suppressed record, nothing at the sink);
- the list survives a restart of the node; export -> remove all -> import gives the same set (CSV and JSONL).

    /usr/bin/python3 tests/e2e/suppression_test.py -k hard_bounce
"""
import json
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, free_port, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "suppression", "timeout": 120}

# the providers' texts (their documented wording, loopback addresses): none of them is about the address
BLOCKS = {
    "msblock": "550 5.7.1 Unfortunately, messages from [127.0.0.1] weren't sent. Please contact your Internet "
               "service provider since part of their network is on our block list (S3150). You can also refer "
               "your provider to http://mail.live.com/mail/troubleshooting.aspx#errors.",
    "gmailblock": "550 5.7.1 [127.0.0.1] Our system has detected that this message is likely unsolicited mail. "
                  "To reduce the amount of spam sent to Gmail, this message has been blocked.",
    "yahoots03": "553 5.7.1 [TS03] All messages from 127.0.0.1 will be permanently deferred; Retrying will NOT "
                 "succeed. See https://postmaster.yahooinc.com/error-codes",
    "spamhaus": "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
    "gmailrate": "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail "
                 "originating from your IP address. To protect our users from spam, mail sent from your IP "
                 "address has been temporarily rate limited.",
    "yahoots04": "421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily deferred due to unexpected volume or "
                 "user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
}
BODY = b"Subject: t\r\n\r\nhello\r\n"


class SuppressionCase(PeersCase):
    records = [
        "dom.test. 60 IN MX 10 mx.dom.test.",
        "mx.dom.test. 60 IN A 127.0.0.2",
    ]

    def start(self, replies=None):
        port = free_udp_tcp_port("127.0.0.2")
        self.sink = self.peer(Sink("127.0.0.2", port, rcpt_replies=dict(replies or {})))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\ncommand_timeout = "5s"\nidle_timeout = "1s"'
        self.node = Node(egress=eg, park_delivery=False)
        self.drop_port = free_port()
        extra = '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        extra += '[[listener]]\naddress = "127.0.0.1:%d"\nsuppression = "drop"\n' % self.drop_port
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        return self.node

    def records_of(self, typ, rcpt=None):
        return [r for r in self.node.log_records()
                if r["type"] == typ and (rcpt is None or r.get("recipient") == rcpt)]

    def check(self, addr):
        """ringctl suppression check: (suppressed, document)."""
        p = self.node.ringctl("suppression", "check", addr, "--json")
        self.assertIn(p.returncode, (0, 1), p.stderr)
        return p.returncode == 0, json.loads(p.stdout)

    def rcpt_reply(self, port, rcpt):
        c = smtplib.SMTP("127.0.0.1", port, timeout=10)
        try:
            c.ehlo("client.test")
            c.mail("s@client.test")
            return c.rcpt(rcpt)
        finally:
            c.close()

    def delivered(self, local):
        return [m for m in self.sink.messages if any(r.split("@")[0].lower() == local for r in m[1])]


class SuppressionTest(SuppressionCase):
    def test_hard_bounce_suppresses_and_blocks_never_do(self):
        node = self.start(BLOCKS)
        smtp_send(node.smtp_port, "s@client.test", "permfail1@dom.test", BODY)
        # the block texts, one message with every recipient (4xx ones stay queued and retried)
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
        c.ehlo("client.test")
        c.mail("s@client.test")
        for local in BLOCKS:
            self.assertEqual(c.rcpt("%s@dom.test" % local)[0], 250)
        self.assertEqual(c.data(BODY)[0], 250)
        c.quit()
        wait_for(lambda: self.records_of("SuppressionAdded", "permfail1@dom.test"), 20, what="SuppressionAdded")
        bounce = self.records_of("Bounce", "permfail1@dom.test")
        self.assertEqual(len(bounce), 1)
        self.assertEqual(bounce[0]["bounce_classification"], "InvalidRecipient")
        added = self.records_of("SuppressionAdded", "permfail1@dom.test")[0]
        self.assertEqual(added["reason"], "hard_bounce")
        self.assertEqual(added["source_id"], bounce[0]["id"])
        ok, doc = self.check("PermFail1@Dom.Test")  # any case
        self.assertTrue(ok, doc)
        self.assertEqual(doc["entries"][0]["address"], "permfail1@dom.test")
        self.assertEqual(doc["entries"][0]["source_id"], bounce[0]["id"])

        # refused at RCPT on the default listener (the snapshot reaches the ingress within a tick or two)
        wait_for(lambda: self.rcpt_reply(node.smtp_port, "permfail1@dom.test")[0] == 550, 5,
                 what="550 at RCPT")
        code, text = self.rcpt_reply(node.smtp_port, "permfail1@dom.test")
        self.assertEqual(code, 550)
        self.assertIn(b"5.7.1", text)
        self.assertIn(b"suppressed", text)
        self.assertEqual(self.rcpt_reply(node.smtp_port, "other@dom.test")[0], 250)

        # accepted and dropped on the "drop" listener: 250, a Suppressed record, nothing at the sink
        smtp_send(self.drop_port, "s@client.test", "permfail1@dom.test", BODY)
        wait_for(lambda: self.records_of("Suppressed", "permfail1@dom.test"), 10, what="Suppressed record")
        sup = self.records_of("Suppressed", "permfail1@dom.test")[0]
        self.assertEqual(sup["response"]["code"], 550)
        self.assertIn("suppressed: hard_bounce", sup["response"]["content"])
        self.assertEqual(len(self.records_of("Reception", "permfail1@dom.test")), 2)

        # every block text got its Bounce or TransientFailure, and none of them suppressed
        for local, reply in BLOCKS.items():
            typ = "Bounce" if reply.startswith("5") else "TransientFailure"
            wait_for(lambda: self.records_of(typ, "%s@dom.test" % local), 15, what="%s for %s" % (typ, local))
        classes = {r["recipient"]: r["bounce_classification"] for r in self.records_of("Bounce")}
        for local in BLOCKS:
            self.assertFalse(self.check("%s@dom.test" % local)[0], local)
            self.assertNotIn(classes.get("%s@dom.test" % local), ("InvalidRecipient", "BadDomain", "InactiveMailbox"))
        self.assertEqual(len(self.records_of("SuppressionAdded")), 1)
        self.assertEqual(self.delivered("permfail1"), [])
        # the sink saw the address exactly once: the first attempt, which bounced
        self.assertEqual([r for r, _ in self.sink.rcpt_log if r.lower() == "permfail1@dom.test"],
                         ["permfail1@dom.test"])

    def test_queued_then_suppressed_is_not_sent(self):
        node = self.start({"later1": "451 4.3.0 try again later"})
        smtp_send(node.smtp_port, "s@client.test", "later1@dom.test", BODY)
        smtp_send(node.smtp_port, "s@client.test", "keep1@dom.test", BODY)
        wait_for(lambda: self.records_of("TransientFailure", "later1@dom.test"), 15, what="the first deferral")
        p = node.ringctl("suppression", "add", "later1@dom.test", "--reason", "unsubscribe", "--source", "list-42")
        self.assertEqual(p.returncode, 0, p.stderr)
        with self.sink.lock:
            self.sink.rcpt_replies.clear()  # the sink would take it now
        wait_for(lambda: self.records_of("Suppressed", "later1@dom.test"), 15, what="Suppressed before delivery")
        sup = self.records_of("Suppressed", "later1@dom.test")[0]
        self.assertIn("suppressed: unsubscribe list-42", sup["response"]["content"])
        wait_for(lambda: self.delivered("keep1"), 10, what="the other message delivered")
        time.sleep(1.5)  # a retry after the Suppressed record would have come by now
        self.assertEqual(self.delivered("later1"), [])
        self.assertEqual(self.records_of("Delivery", "later1@dom.test"), [])
        # the message left the spool: nothing queued (the accounting invariant's "final")
        q = node.ringctl("queue-summary", "--json", check=True)
        self.assertEqual(json.loads(q.stdout)["totals"].get("queued", 0), 0, q.stdout)

    def test_survives_restart_and_export_import_round_trip(self):
        node = self.start()
        src = os.path.join(node.tmp, "in.csv")
        with open(src, "w") as f:
            f.write("address,tenant,reason,source_id,first_seen,last_seen,expires\n")
            for i in range(100):
                f.write("user%d@dom.test,,complaint,fbl-%d,1700000000,1700000100,0\n" % (i, i))
            # RFC 4180 quoting: a quoted local part holding a comma, a source holding quotes
            f.write('"""quoted,local""@dom.test",acme,unsubscribe,"list ""a""",1700000000,1700000000,4102444800\n')
            f.write("not-an-address,,admin,,,,\n")
        # the mutating calls need the admin token; bad arguments are refused with a reason
        self.assertEqual(node.http("POST", "/api/v1/suppression/add?address=x@dom.test", token=False)[0], 401)
        code, body = node.http("POST", "/api/v1/suppression/add?address=not-an-address")
        self.assertEqual(code, 400, body)
        code, body = node.http("POST", "/api/v1/suppression/import")
        self.assertEqual(code, 400, body)
        self.assertFalse(self.check("x@dom.test")[0])
        # an entry with an expiry suppresses until then
        node.ringctl("suppression", "add", "exp@dom.test", "--expires", str(int(time.time()) + 2), check=True)
        self.assertTrue(self.check("exp@dom.test")[0])
        p = node.ringctl("suppression", "import", src)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)  # one line refused
        self.assertIn("101 added, 1 refused", p.stdout)
        self.assertIn("line 103", p.stderr)
        self.assertTrue(self.check("user7@dom.test")[0])

        node.stop()
        node.start()
        self.assertTrue(self.check("user99@dom.test")[0])
        wait_for(lambda: not self.check("exp@dom.test")[0], 5, what="the entry expired")
        # expired: gone at the start-up read, or still stored and marked so
        self.assertTrue(all(e["expired"] for e in self.check("exp@dom.test")[1]["entries"]))
        if self.check("exp@dom.test")[1]["entries"]:  # not swept yet: an export would carry it
            node.ringctl("suppression", "remove", "exp@dom.test", check=True)
        wait_for(lambda: self.rcpt_reply(node.smtp_port, "user5@dom.test")[0] == 550, 5, what="550 after restart")
        # a tenant's entry is not global
        self.assertFalse(self.check('"quoted,local"@dom.test')[0])

        for fmt in ("csv", "jsonl"):
            out = node.ringctl("suppression", "export", "--format", fmt, check=True).stdout
            lines = sorted(out.splitlines())
            self.assertEqual(len(lines), 101 + (fmt == "csv"))
            path = os.path.join(node.tmp, "export." + fmt)
            with open(path, "w") as f:
                f.write(out)
            entries = [json.loads(l) for l in out.splitlines()] if fmt == "jsonl" else None
            if entries:
                self.assertIn({"address": '"quoted,local"@dom.test', "tenant": "acme", "reason": "unsubscribe",
                               "source_id": 'list "a"', "first_seen": 1700000000, "last_seen": 1700000000,
                               "expires": 4102444800}, entries)
            # remove all
            for i in range(100):
                node.ringctl("suppression", "remove", "user%d@dom.test" % i, check=True)
            node.ringctl("suppression", "remove", '"quoted,local"@dom.test', "--tenant", "acme", check=True)
            listed = json.loads(node.ringctl("suppression", "list", "--json", check=True).stdout)
            self.assertEqual(listed["entries"], [])
            self.assertFalse(self.check("user7@dom.test")[0])
            p = node.ringctl("suppression", "import", path, "--format", fmt)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            again = node.ringctl("suppression", "export", "--format", fmt, check=True).stdout
            self.assertEqual(sorted(again.splitlines()), lines)


if __name__ == "__main__":
    import unittest
    unittest.main()
