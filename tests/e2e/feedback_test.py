"""Inbound feedback (issue 14): ARF complaints (RFC 5965) and out-of-band DSNs (RFC 3464) received by the
node are matched to the message it sent and logged as Feedback and OOB records; VERP return paths carry an
HMAC, and a forged one matches nothing. One node for every check of the file: smtplib -> node -> a
recording sink (aiosmtpd) on 127.0.0.2 found through a real DNS server (unbound); the reports are built with
Python's email package and read back with its parser before they are sent.

    /usr/bin/python3 tests/e2e/feedback_test.py -k arf
"""
import email
import email.policy
import hashlib
import hmac
import json
import os
import re
import smtplib
import sys
import time
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "feedback", "timeout": 120}

SECRET = "feedback-test-secret-0123456789"
VERP_DOMAIN = "bounces.example.net"
FBL_DOMAIN = "fbl.example.net"
POLICY = r"""
kumo.on("smtp_server_message_received", function(msg, conn_meta)
  msg:set_meta("tenant", "acme")
  msg:set_meta("campaign", "spring")
  -- fbl.* is the ingress's own: a hook that writes it must not turn mail into a report (dropped, delivered)
  msg:set_meta("fbl.kind", "arf")
  msg:set_meta("fbl.orig_rcpt", "victim@good.test")
end)
"""


def arf_report(original_headers, rcpt, sender):
    """An RFC 5965 abuse report: text part, message/feedback-report, the original's headers."""
    msg = MIMEMultipart("report", report_type="feedback-report")
    msg["From"] = "feedback@isp.test"
    msg["To"] = "abuse@" + FBL_DOMAIN
    msg["Subject"] = "FW: spam complaint"
    msg["Message-ID"] = "<arf-1@isp.test>"
    msg.attach(MIMEText("This is an email abuse report for an email message received from IP 127.0.0.1.\n"))
    fr = MIMEBase("message", "feedback-report")
    fr.set_payload("Feedback-Type: abuse\nUser-Agent: IspFeedback/1.0\nVersion: 1\n"
                   "Original-Mail-From: <%s>\nOriginal-Rcpt-To: <%s>\n"
                   "Arrival-Date: Mon, 07 Dec 2026 15:00:00 +0000\nReporting-MTA: dns; mx.isp.test\n"
                   "Source-IP: 127.0.0.1\n" % (sender, rcpt))
    msg.attach(fr)
    orig = MIMEBase("message", "rfc822-headers")
    orig.set_payload(original_headers)
    msg.attach(orig)
    return crlf(msg.as_bytes())


def dsn_report(original_headers, rcpt):
    """An RFC 3464 delayed failure for rcpt: 5.1.1, the returned headers as text/rfc822-headers."""
    msg = MIMEMultipart("report", report_type="delivery-status")
    msg["From"] = "MAILER-DAEMON@mx.good.test"
    msg["Subject"] = "Undelivered Mail Returned to Sender"
    msg.attach(MIMEText("Your message could not be delivered.\n"))
    ds = MIMEBase("message", "delivery-status")
    per_msg = email.message.Message()
    per_msg["Reporting-MTA"] = "dns; mx.good.test"
    per_msg["Arrival-Date"] = "Mon, 07 Dec 2026 15:00:00 +0000"
    per_rcpt = email.message.Message()
    per_rcpt["Final-Recipient"] = "rfc822; " + rcpt
    per_rcpt["Action"] = "failed"
    per_rcpt["Status"] = "5.1.1"
    per_rcpt["Remote-MTA"] = "dns; mailstore.good.test"
    per_rcpt["Diagnostic-Code"] = "smtp; 550 5.1.1 <%s>: Recipient address rejected: User unknown" % rcpt
    ds.set_payload([per_msg, per_rcpt])
    msg.attach(ds)
    msg.attach(MIMEText(original_headers, "rfc822-headers"))
    return crlf(msg.as_bytes())


def crlf(raw):
    """SMTP line ends: the email package writes LF, and a message/* part's text as given."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def headers_of(data):
    """The header block of a message the sink received."""
    text = data.decode() if isinstance(data, bytes) else data
    return text.replace("\r\n", "\n").split("\n\n", 1)[0] + "\n"


class FeedbackTest(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.good.test.",
        "mx.good.test. 60 IN A 127.0.0.2",
    ]

    def setUp(self):
        super().setUp()
        port = free_udp_tcp_port("127.0.0.2")
        self.sink = self.peer(Sink("127.0.0.2", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        self.node = Node(egress=eg, park_delivery=False)
        extra = '[feedback]\ndomains = ["%s"]\n' % FBL_DOMAIN
        extra += '[dsn]\nverp = true\nverp_domain = "%s"\nverp_secret = "%s"\n' % (VERP_DOMAIN, SECRET)
        extra += self.node.policy_section(POLICY)
        self.node.write_config(self.node.base_config + extra)
        self.node.start()

    def records_of(self, typ):
        return [r for r in self.node.log_records() if r["type"] == typ]

    def wait_record(self, typ, count):
        return wait_for(lambda: (lambda rs: rs if len(rs) >= count else None)(self.records_of(typ)), 15,
                        what="%d %s record(s)" % (count, typ))

    def send_original(self, rcpt):
        """A message through the node to the sink; its id (from the 250) and what the sink got."""
        n = self.sink.count()
        reply = smtp_send(self.node.smtp_port, "news@sender.test", rcpt,
                          b"From: news@sender.test\r\nTo: %s\r\nSubject: offer\r\nMessage-ID: <orig-%d@sender.test>"
                          b"\r\n\r\nbuy now\r\n" % (rcpt.encode(), n))
        msg_id = re.search(r"id=([0-9a-f]{32})", reply).group(1)
        wait_for(lambda: self.sink.count() > n, 20, what="delivery to the sink")
        return msg_id, self.sink.messages[n]

    def test_arf_and_oob_reports_are_matched_to_the_original(self):
        node = self.node
        msg_id, (mail_from, rcpts, data) = self.send_original("user1@good.test")
        self.assertEqual(rcpts, ["user1@good.test"])

        # VERP: bounce+<id>.<index>.<mac>@verp_domain, the mac checked here with Python's hmac
        m = re.fullmatch(r"bounce\+([0-9a-f]{32})\.(\d+)\.([0-9a-f]{16})@" + re.escape(VERP_DOMAIN), mail_from)
        self.assertIsNotNone(m, mail_from)
        self.assertEqual((m.group(1), m.group(2)), (msg_id, "0"))
        mac = hmac.new(SECRET.encode(), ("%s.0" % msg_id).encode(), hashlib.sha256).hexdigest()[:16]
        self.assertEqual(m.group(3), mac)
        hdrs = headers_of(data)
        self.assertIn("X-Ringmail-Id: %s; tenant=acme; campaign=spring" % msg_id, hdrs)
        wait_for(lambda: [r for r in self.records_of("Delivery") if r["id"] == msg_id], 10,
                 what="the original's Delivery record")
        rec = [r for r in self.records_of("Reception") if r["id"] == msg_id][0]
        self.assertEqual(rec["meta"].get("tenant"), "acme")
        self.assertNotIn("fbl.kind", rec["meta"], "the policy's fbl.* keys are dropped")

        # ARF complaint to the feedback domain, checked with Python's parser first
        arf = arf_report(hdrs, "user1@good.test", "news@sender.test")
        parsed = email.message_from_bytes(arf)
        self.assertEqual(parsed.get_content_type(), "multipart/report")
        self.assertEqual(parsed.get_param("report-type"), "feedback-report")
        parts = parsed.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/feedback-report", "message/rfc822-headers"])
        self.assertEqual(parts[1].get_payload(0)["Feedback-Type"], "abuse")
        smtp_send(node.smtp_port, "feedback@isp.test", "abuse@" + FBL_DOMAIN, arf)
        fb = self.wait_record("Feedback", 1)[0]
        self.assertEqual(fb["feedback_type"], "abuse")
        self.assertEqual(fb["original_id"], msg_id)
        self.assertEqual(fb["original_recipient"], "user1@good.test")
        self.assertEqual(fb["original_sender"], "news@sender.test")
        self.assertEqual(fb["original_message_id"], "<orig-0@sender.test>")
        self.assertEqual(fb["reporting_mta"], "mx.isp.test")
        self.assertEqual(fb["source_ip"], "127.0.0.1")
        self.assertEqual((fb["tenant"], fb["campaign"], fb["match"]), ("acme", "spring", "header"))
        self.assertTrue(fb["suppress"])
        self.assertNotIn("victim@good.test", node.log(), "the policy's fbl.orig_rcpt was not taken")
        self.assertEqual(fb["recipient"], "abuse@" + FBL_DOMAIN)
        # the complaint put the recipient on the suppression list, for its tenant, with the record as source
        added = self.wait_record("SuppressionAdded", 1)[0]
        self.assertEqual((added["recipient"], added["tenant"], added["reason"]), ("user1@good.test", "acme", "complaint"))
        p = node.ringctl("suppression", "check", "user1@good.test", "--tenant", "acme", "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        entry = json.loads(p.stdout)["entries"][0]
        self.assertEqual((entry["reason"], entry["source_id"]), ("complaint", added["source_id"]))
        self.assertTrue(entry["source_id"])

        # an out-of-band DSN to the VERP return path the sink saw
        dsn = dsn_report(hdrs, "user1@good.test")
        parsed = email.message_from_bytes(dsn)
        self.assertEqual(parsed.get_param("report-type"), "delivery-status")
        ds = parsed.get_payload()[1]
        self.assertEqual(ds.get_content_type(), "message/delivery-status")
        self.assertEqual(ds.get_payload()[1]["Status"], "5.1.1")
        self.assertEqual(parsed.get_payload()[2].get_content_type(), "text/rfc822-headers")
        smtp_send(node.smtp_port, "", mail_from, dsn)
        oob = self.wait_record("OOB", 1)[0]
        self.assertEqual((oob["match"], oob["original_id"], oob["original_recipient_index"]), ("verp", msg_id, 0))
        self.assertEqual(oob["original_recipient"], "user1@good.test")
        self.assertEqual(oob["bounce_classification"], "InvalidRecipient")
        self.assertTrue(oob["hard"])
        self.assertTrue(oob["suppress"])
        self.assertEqual((oob["status"], oob["remote_mta"], oob["reporting_mta"]),
                         ("5.1.1", "mailstore.good.test", "mx.good.test"))
        self.assertEqual(oob["tenant"], "acme")
        # the hard OOB refreshes the same entry (the first reason and source are kept: suppression.md)
        self.assertEqual(self.wait_record("SuppressionAdded", 2)[1]["recipient"], "user1@good.test")

        # a forged VERP address (one digit of the mac changed): recorded, matched to nothing, no suppression
        forged = mail_from.replace("." + mac + "@", ".%s%s@" % ("0" if mac[0] != "0" else "1", mac[1:]))
        smtp_send(node.smtp_port, "", forged, dsn_report("From: x@y.test\nSubject: z\n", "user1@good.test"))
        bad = self.wait_record("OOB", 2)[1]
        self.assertEqual(bad["match"], "forged")
        self.assertIsNone(bad["original_id"])
        self.assertFalse(bad["suppress"])
        time.sleep(0.5)
        self.assertEqual(len(self.records_of("SuppressionAdded")), 2, "the forged report suppressed someone")

        # two recipients of one message: one transaction each, each from the VERP address of its own index
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
        try:
            c.sendmail("news@sender.test", ["u2@good.test", "u3@good.test"], b"Subject: two\r\n\r\nhi\r\n")
        finally:
            c.quit()
        wait_for(lambda: self.sink.count() == 3, 20, what="both recipients delivered")
        froms = {tuple(m[1]): m[0] for m in self.sink.messages[1:]}
        self.assertEqual(set(froms), {("u2@good.test",), ("u3@good.test",)})
        ids = {re.fullmatch(r"bounce\+([0-9a-f]{32})\.(\d)\.[0-9a-f]{16}@.*", f).groups() for f in froms.values()}
        self.assertEqual(len({i for i, _ in ids}), 1, ids)
        self.assertEqual({x for _, x in ids}, {"0", "1"})

        # every report was final at its 250: nothing more reached the sink, each has its Reception
        self.assertEqual(self.sink.count(), 3)
        receptions = [r for r in self.records_of("Reception") if r["recipient"].endswith((FBL_DOMAIN, VERP_DOMAIN))]
        self.assertEqual(len(receptions), 3)
        self.assertEqual({r["id"] for r in receptions}, {fb["id"], oob["id"], bad["id"]})

    def test_non_reports_and_mixed_transactions_are_refused(self):
        node = self.node
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            c.mail("someone@isp.test")
            self.assertEqual(c.rcpt("abuse@" + FBL_DOMAIN)[0], 250)
            code, text = c.rcpt("user2@good.test")
            self.assertEqual(code, 452, text)
            self.assertIn(b"separate transactions", text)
            code, text = c.data(b"Subject: just a note\r\n\r\nthis is no report\r\n")
            self.assertEqual(code, 550, text)
            self.assertIn(b"not a multipart/report", text)
            # an ARF without Feedback-Type: the report is incomplete
            c.mail("someone@isp.test")
            c.rcpt("abuse@" + FBL_DOMAIN)
            arf = arf_report("Subject: x\n", "a@good.test", "b@sender.test").replace(b"Feedback-Type: abuse\r\n", b"")
            code, text = c.data(arf)
            self.assertEqual(code, 550, text)
            self.assertIn(b"without Feedback-Type (RFC 5965 3.1); nothing was recorded", text)
        finally:
            c.quit()
        self.assertEqual(self.records_of("Feedback"), [])
        self.assertEqual(self.sink.count(), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
