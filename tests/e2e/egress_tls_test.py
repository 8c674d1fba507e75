"""Outbound STARTTLS (TLS-03/04/05 of TESTING.md) against real receivers on loopback: aiosmtpd sinks with
certificates from a CA this test makes with the openssl CLI, a sink without STARTTLS, and raw socket
servers that break the handshake or inject lines after their 220 to STARTTLS. MX records come from a real
DNS server (unbound); enable_tls and remember_broken_tls per domain come from a KumoMTA-format shaping
file; [egress] tls_ca_file makes the test CA the trust store. Every check is made at the receiver (what
it got, in plaintext or TLS) and in the node's Delivery / TransientFailure records.

    /usr/bin/python3 tests/e2e/egress_tls_test.py -k wrong_name
"""
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402
from fault_peers import ScriptServer, Session, Stop  # noqa: E402
from pki import make_ca, make_leaf, server_context  # noqa: E402

MESON = {"suite": "egress_tls", "timeout": 300}

ID_RE = re.compile(r"id=([0-9a-f]{32})")


def make_pki(d):
    """A test CA and two leaves: `good` for mx.one.test and mx2.broken.test, `wrong` for other.test."""
    make_ca(d)
    make_leaf(d, "good", ["mx.one.test", "mx2.broken.test"])
    make_leaf(d, "wrong", ["other.test"])


class StarttlsTrap(Session):
    """A scripted receiver (fault_peers.Session) that offers STARTTLS and then misbehaves: `mode` "garbage"
    answers 220 and sends bytes that are not TLS (the handshake fails), "inject" sends a 220 with an EHLO
    reply behind it in the same write (TESTING.md TLS-03). Without STARTTLS it takes plaintext mail."""
    ehlo_lines = ("250-trap.test", "250-STARTTLS", "250 8BITMIME")
    mode = "garbage"

    def on_other(self, line):
        if line.upper() != "STARTTLS":
            return super().on_other(line)
        if self.mode == "inject":
            self.send(b"220 2.0.0 go ahead\r\n250-trap.test\r\n250 8BITMIME\r\n")
        else:
            self.send("220 2.0.0 go ahead")
            self.sock.recv(4096)  # the ClientHello
            self.send(b"this is not TLS at all\r\n")
        # whatever comes now is not plaintext SMTP: wait for the client to go
        while self.sock.recv(4096):
            pass
        raise Stop()


class InjectTrap(StarttlsTrap):
    mode = "inject"


class EgressTlsCase(PeersCase):
    records = [
        "one.test. 60 IN MX 10 mx.one.test.",
        "mx.one.test. 60 IN A 127.0.0.2",
        "plain.test. 60 IN MX 10 mx.plain.test.",
        "mx.plain.test. 60 IN A 127.0.0.3",
        "wrong.test. 60 IN MX 10 mx.wrong.test.",
        "mx.wrong.test. 60 IN A 127.0.0.4",
        # first MX breaks the handshake, the second is a good TLS receiver
        "broken.test. 60 IN MX 10 mx1.broken.test.",
        "broken.test. 60 IN MX 20 mx2.broken.test.",
        "mx1.broken.test. 60 IN A 127.0.0.5",
        "mx2.broken.test. 60 IN A 127.0.0.2",
        "lonely.test. 60 IN MX 10 mx.lonely.test.",
        "mx.lonely.test. 60 IN A 127.0.0.5",
        "inject.test. 60 IN MX 10 mx.inject.test.",
        "mx.inject.test. 60 IN A 127.0.0.6",
    ]

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ringmail-etls-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        make_pki(self.tmp)
        self.port = free_udp_tcp_port("127.0.0.2")

    def tls_sink(self, host, cert="good"):
        return self.peer(Sink(host, self.port, tls_context=server_context(self.tmp, cert)))

    def plain_sink(self, host):
        return self.peer(Sink(host, self.port))

    def raw(self, host, mode):
        return self.peer(ScriptServer(InjectTrap if mode == "inject" else StarttlsTrap, self.port, host))

    @staticmethod
    def verbs(raw):
        with raw.lock:
            return [c.split(":")[0].split(" ")[0].upper() for c in raw.commands]


    def start(self, shaping="", config=""):
        path = os.path.join(self.tmp, "shaping.toml")
        with open(path, "w") as f:
            f.write(shaping)
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, self.port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "1s"\ntls_ca_file = "%s"' % os.path.join(self.tmp, "ca.pem")
        self.node = Node(config_extra='[shaping]\nfiles = ["%s"]\n%s' % (path, config), egress=eg,
                         park_delivery=False).start()
        return self.node

    def send(self, rcpt):
        reply = smtp_send(self.node.smtp_port, "s@client.test", rcpt,
                          b"Subject: t\r\nFrom: s@client.test\r\n\r\nhello\r\n", timeout=20)
        return ID_RE.search(reply).group(1)

    def record(self, typ, msg_id, timeout=30):
        recs = wait_for(lambda: [r for r in self.node.log_records() if r["type"] == typ and r["id"] == msg_id],
                        timeout, what="the %s record" % typ)
        return recs[0]

    def assert_tls_record(self, rec, cn):
        self.assertTrue(rec.get("tls_cipher"), rec)
        self.assertIn(rec.get("tls_protocol_version"), ("TLSv1.2", "TLSv1.3"), rec)
        self.assertIn("CN=%s" % cn, rec.get("tls_peer_subject_name", []), rec)
        self.assertIn("O=ringmail test", rec["tls_peer_subject_name"], rec)

    def assert_plain_record(self, rec):
        for k in ("tls_cipher", "tls_protocol_version", "tls_peer_subject_name"):
            self.assertNotIn(k, rec)


class VerifiedTest(EgressTlsCase):
    def test_opportunistic_verifies_against_the_ca_file_and_logs_the_session(self):
        sink = self.tls_sink("127.0.0.2")
        self.start()
        msg_id = self.send("r@one.test")
        rec = self.record("Delivery", msg_id)
        self.assertEqual(sink.count(), 1)
        self.assertIsNotNone(sink.tls[0], "delivered in plaintext")
        self.assert_tls_record(rec, "mx.one.test")
        self.assertEqual(rec["tls_cipher"], sink.tls[0]["cipher"])
        self.assertEqual(rec["tls_protocol_version"], sink.tls[0]["version"])

    def test_required_delivers_over_verified_tls(self):
        sink = self.tls_sink("127.0.0.2")
        self.start('["one.test"]\nenable_tls = "Required"\n')
        rec = self.record("Delivery", self.send("r@one.test"))
        self.assertIsNotNone(sink.tls[0])
        self.assert_tls_record(rec, "mx.one.test")

    def test_second_connection_resumes_the_session(self):
        sink = self.tls_sink("127.0.0.2")
        self.start('["one.test"]\nmax_deliveries_per_connection = 1\n')
        self.record("Delivery", self.send("r1@one.test"))
        rec = self.record("Delivery", self.send("r2@one.test"))
        self.assert_tls_record(rec, "mx.one.test")  # a resumed session still names its certificate
        self.assertEqual(sink.count(), 2)
        self.assertGreaterEqual(sink.connections, 2)
        self.assertFalse(sink.tls[0]["reused"], "the first session cannot be a resumed one")
        self.assertTrue(sink.tls[1]["reused"], "the second connection did a full handshake")

    def test_disabled_never_starts_tls(self):
        sink = self.tls_sink("127.0.0.2")
        self.start('["one.test"]\nenable_tls = "Disabled"\n')
        rec = self.record("Delivery", self.send("r@one.test"))
        self.assertIsNone(sink.tls[0])
        self.assert_plain_record(rec)


class NoStarttlsTest(EgressTlsCase):
    def test_opportunistic_delivers_in_plaintext(self):
        sink = self.plain_sink("127.0.0.3")
        self.start()
        rec = self.record("Delivery", self.send("r@plain.test"))
        self.assertEqual(sink.count(), 1)
        self.assertIsNone(sink.tls[0])
        self.assert_plain_record(rec)

    def test_required_defers_with_no_plaintext_transaction(self):
        """TLS-04: a Required path never sends in plaintext."""
        sink = self.plain_sink("127.0.0.3")
        self.start('["plain.test"]\nenable_tls = "Required"\n')
        rec = self.record("TransientFailure", self.send("r@plain.test"))
        self.assertIn("STARTTLS", rec["response"]["content"])
        self.assertEqual(sink.count(), 0)
        self.assertEqual(sink.rcpt_log, [], "a RCPT went out in plaintext")


class WrongNameTest(EgressTlsCase):
    def test_opportunistic_refuses_a_certificate_for_another_name(self):
        sink = self.tls_sink("127.0.0.4", cert="wrong")
        self.start()
        rec = self.record("TransientFailure", self.send("r@wrong.test"))
        self.assertIn("TLS handshake", rec["response"]["content"])
        self.assertIn("certificate verify failed", rec["response"]["content"])
        self.assertEqual(sink.count(), 0)
        self.assertEqual(sink.rcpt_log, [])

    def test_required_refuses_it_too(self):
        sink = self.tls_sink("127.0.0.4", cert="wrong")
        self.start('["wrong.test"]\nenable_tls = "Required"\n')
        rec = self.record("TransientFailure", self.send("r@wrong.test"))
        self.assertIn("certificate verify failed", rec["response"]["content"])
        self.assertEqual(sink.count(), 0)

    def test_insecure_modes_deliver_over_tls(self):
        sink = self.tls_sink("127.0.0.4", cert="wrong")
        self.start('["wrong.test"]\nenable_tls = "RequiredInsecure"\n')
        rec = self.record("Delivery", self.send("r@wrong.test"))
        self.assertIsNotNone(sink.tls[0])
        self.assert_tls_record(rec, "other.test")

    def test_opportunistic_insecure_delivers_over_tls(self):
        sink = self.tls_sink("127.0.0.4", cert="wrong")
        self.start('["wrong.test"]\nenable_tls = "OpportunisticInsecure"\n')
        self.record("Delivery", self.send("r@wrong.test"))
        self.assertIsNotNone(sink.tls[0])


class BrokenHandshakeTest(EgressTlsCase):
    def test_opportunistic_moves_to_the_next_host_never_plaintext_on_that_connection(self):
        """TLS-05: the failed handshake ends that connection; the next MX host gets the message."""
        raw = self.raw("127.0.0.5", "garbage")
        sink = self.tls_sink("127.0.0.2")
        self.start()
        rec = self.record("Delivery", self.send("r@broken.test"))
        self.assertEqual(rec["peer_address"]["name"].rstrip("."), "mx2.broken.test")
        self.assertEqual(sink.count(), 1)
        self.assertIsNotNone(sink.tls[0])
        self.assertGreaterEqual(self.verbs(raw).count("STARTTLS"), 1)
        self.assertEqual(raw.messages, [])
        for verb in ("MAIL", "RCPT", "DATA"):
            self.assertNotIn(verb, self.verbs(raw), "plaintext after a failed handshake")

    def test_required_defers(self):
        raw = self.raw("127.0.0.5", "garbage")
        self.start('["lonely.test"]\nenable_tls = "Required"\nremember_broken_tls = "1h"\n')
        rec = self.record("TransientFailure", self.send("r@lonely.test"))
        self.assertIn("TLS handshake", rec["response"]["content"])
        # Required ignores remember_broken_tls (KumoMTA): the next message tries TLS again, never plaintext
        rec = self.record("TransientFailure", self.send("r2@lonely.test"))
        self.assertEqual(raw.messages, [])
        self.assertNotIn("MAIL", self.verbs(raw))
        self.assertGreaterEqual(self.verbs(raw).count("STARTTLS"), 2)

    def test_remember_broken_tls_sends_the_next_attempt_in_plaintext(self):
        raw = self.raw("127.0.0.5", "garbage")
        self.start('["lonely.test"]\nremember_broken_tls = "1h"\n')
        rec = self.record("TransientFailure", self.send("r1@lonely.test"))
        self.assertIn("TLS handshake", rec["response"]["content"])
        self.assertEqual(raw.messages, [])
        rec = self.record("Delivery", self.send("r2@lonely.test"), timeout=60)
        self.assertEqual(len(raw.messages), 1)
        self.assertEqual(self.verbs(raw).count("STARTTLS"), 1, "the remembered site was offered STARTTLS again")
        self.assert_plain_record(rec)

    def test_without_remember_broken_tls_every_attempt_tries_tls(self):
        raw = self.raw("127.0.0.5", "garbage")
        self.start()
        self.record("TransientFailure", self.send("r1@lonely.test"))
        self.record("TransientFailure", self.send("r2@lonely.test"), timeout=60)
        self.assertEqual(raw.messages, [])
        self.assertGreaterEqual(self.verbs(raw).count("STARTTLS"), 2)


class InjectionTest(EgressTlsCase):
    def test_lines_after_the_220_are_not_taken(self):
        """TLS-03: a reply injected behind the 220 to STARTTLS is never read as the server's; the session
        ends before any handshake and nothing is sent in plaintext."""
        raw = self.raw("127.0.0.6", "inject")
        self.start()
        rec = self.record("TransientFailure", self.send("r@inject.test"))
        self.assertIn("injection", rec["response"]["content"])
        self.assertEqual(raw.messages, [])
        cmds = self.verbs(raw)
        self.assertEqual(cmds.count("EHLO"), 1, cmds)
        for verb in ("MAIL", "RCPT", "DATA"):
            self.assertNotIn(verb, cmds)


if __name__ == "__main__":
    unittest.main()
