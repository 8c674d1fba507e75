"""End-to-end tests of accepting mail: real clients (swaks, smtp-source, smtplib, raw sockets) against a
real node; each asserts on the replies, the spool's counters, the log records read with zstdcat, and
what survives a restart. TESTING.md ids in the test names' docstrings.

    /usr/bin/python3 tests/e2e/ingress_test.py -k smuggling
"""
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, hold_fsyncs, read_reply, traced_by, wait_for  # noqa: E402

# timed checks (a restart within 2 s, a reply within 3 s): run alone
MESON = {"exclusive": True}

ID_RE = re.compile(r"^250 2\.0\.0 OK id=([0-9a-f]{32})$")


class Session:
    """A raw SMTP client: send exact bytes, read replies one at a time."""

    def __init__(self, port, timeout=10, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.f = self.sock.makefile("rb")
        self.banner = read_reply(self.f)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def reply(self):
        return read_reply(self.f)

    def closed(self, timeout=5):
        """True when the server closes the connection (whatever it sends first, e.g. a TLS alert)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.sock.recv(4096) == b"":
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    def close(self):
        self.sock.close()


class IngressCase(unittest.TestCase):
    node = None
    node_kw = {}

    def setUp(self):
        self.node = Node(**self.node_kw)
        self.addCleanup(self.node.cleanup)
        self.node.start()

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors) and self.node:
            sys.stderr.write("---- ringmaild log ----\n%s\n" % self.node.log()[-6000:])
        return res

    def start_with_policy(self, lua, limits):
        """A node whose [policy] runs `lua` under the `limits` lines."""
        self.node = Node()
        self.addCleanup(self.node.cleanup)
        self.node.base_config += "\n" + self.node.policy_section(lua) + limits
        self.node.write_config(self.node.base_config)
        self.node.start()

    def session(self, ehlo=True):
        s = Session(self.node.smtp_port)
        self.addCleanup(s.close)
        self.assertTrue(s.banner.startswith("220 "), s.banner)
        if ehlo:
            self.assertTrue(s.cmd("EHLO client.test").startswith("250"))
        return s

    def stored(self):
        return self.node.counter("spool", "messages_stored")

    def wait_stored(self, n, timeout=10):
        wait_for(lambda: self.stored() >= n, timeout, what="%d messages stored" % n)
        time.sleep(0.2)
        self.assertEqual(self.stored(), n)

    def send_one(self, s, body=b"Subject: t\r\n\r\nhello\r\n", rcpts=("r@example.test",), mail="MAIL FROM:<s@example.test>"):
        self.assertTrue(s.cmd(mail).startswith("250"))
        for r in rcpts:
            self.assertTrue(s.cmd("RCPT TO:<%s>" % r).startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(body + b".\r\n")
        return s.reply()


class AcceptTest(IngressCase):
    def test_swaks_message_is_stored_logged_and_survives_restart(self):
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.node.smtp_port, "--from", "alice@example.test",
                            "--to", "bob@example.test,carol@example.test", "--header", "Subject: swaks test",
                            "--body", "first line\n.leading dot\nlast"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = re.search(r"<[-~]  250 2\.0\.0 OK id=([0-9a-f]{32})", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        msg_id = m.group(1)
        self.wait_stored(1)

        def reception():
            recs = [r for r in self.node.log_records() if r["type"] == "Reception" and r["id"] == msg_id]
            return recs if len(recs) == 2 else None
        recs = wait_for(reception, 5, what="Reception records in the log")
        self.assertEqual(sorted(r["recipient"] for r in recs), ["bob@example.test", "carol@example.test"])
        self.assertEqual(recs[0]["sender"], "alice@example.test")
        self.assertGreater(recs[0]["size"], 0)
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 1, 5, what="scheduler counted it")

        # a clean stop and start: the spool walk announces it again
        self.node.stop()
        self.node.start()
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 1, 10, what="queued after restart")

    def test_smtp_source_100_messages_each_stored_and_logged_once(self):
        if not shutil.which("smtp-source"):
            self.skipTest("smtp-source (postfix) not installed")
        p = subprocess.run(["smtp-source", "-m", "100", "-s", "5", "-l", "2000", "-f", "src@example.test",
                            "-t", "dst@example.test", "127.0.0.1:%d" % self.node.smtp_port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.wait_stored(100)
        self.assertEqual(self.node.counter("ingress", "messages_accepted"), 100)
        recs = wait_for(lambda: (lambda r: r if len(r) >= 100 else None)(
            [x for x in self.node.log_records() if x["type"] == "Reception"]), 5, what="100 Reception records")
        self.assertEqual(len(recs), 100)
        self.assertEqual(len({r["id"] for r in recs}), 100)
        # group commit: fewer fsyncs than messages is allowed, more is not
        self.assertLessEqual(self.node.counter("spool", "spool_commits"), 100)

    def test_smtplib_multi_recipient_and_kill9_of_every_process_loses_nothing(self):
        """DUR-03: what got 250 survives kill -9 of every process."""
        ids = []
        with smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10) as c:
            for i in range(20):
                code, resp = c.sendmail("s@example.test", ["a@example.test", "b@example.test"],
                                        "Subject: %d\r\n\r\nbody %d\r\n" % (i, i)) or (250, b"")
                ids.append(i)
        self.wait_stored(20)
        self.node.kill_all()
        self.node.start()
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 20, 10, what="20 queued after kill -9")

    def test_pipelined_transaction_answered_in_order(self):
        """PIPE-01"""
        s = self.session()
        s.send("MAIL FROM:<s@example.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        replies = [s.reply() for _ in range(4)]
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "354"], replies)
        s.send("Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<t@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        self.assertRegex(s.reply(), ID_RE)
        self.assertEqual([s.reply()[:3] for _ in range(3)], ["250", "250", "354"])
        s.send("y\r\n.\r\nQUIT\r\n")
        self.assertRegex(s.reply(), ID_RE)
        self.assertTrue(s.reply().startswith("221"))
        self.wait_stored(2)

    def test_rejected_rcpt_then_data_and_body_in_one_write_builds_no_transaction(self):
        """PIPE-02"""
        s = self.session()
        s.send("MAIL FROM:<s@example.test>\r\nRCPT TO:<bad address>\r\nDATA\r\nMAIL FROM:<x@example.test>\r\n"
               "RCPT TO:<y@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
        r = [s.reply() for _ in range(3)]
        self.assertTrue(r[0].startswith("250"), r)
        self.assertTrue(r[1].startswith("501"), r)
        self.assertTrue(r[2].startswith("554 5.5.1"), r)
        # input pipelined after a refused DATA would be read as commands (RFC 2920 forbids sending
        # it): the session ends instead, so the "body" can never become a transaction
        self.assertTrue(s.reply().startswith("421 4.5.0"))
        self.assertTrue(s.closed())
        s.close()
        time.sleep(0.5)
        self.assertEqual(self.stored(), 0)

    def test_bdat_chunking(self):
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test> BODY=8BITMIME").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
        s.send(b"BDAT 12\r\nSubject: b\r\n")
        self.assertTrue(s.reply().startswith("250 2.0.0 12 octets"))
        s.send(b"BDAT 6 LAST\r\n\r\nhi\r\n")
        self.assertRegex(s.reply(), ID_RE)
        self.assertTrue(s.cmd("BDAT 3 LAST\r\nabc").startswith("503"))
        self.wait_stored(1)


class SmugglingTest(IngressCase):
    """SMUG-01: a non-standard end of data never ends the data and never starts a smuggled transaction."""

    SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\n", b"\n.\r", b"\r.\r\n", b"\r\n\x00.\r\n"]

    def test_every_fake_end_of_data_is_refused_and_nothing_is_smuggled(self):
        for seq in self.SEQUENCES:
            with self.subTest(seq=seq):
                s = self.session()
                self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
                self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
                self.assertTrue(s.cmd("DATA").startswith("354"))
                s.send(b"Subject: smuggle\r\n\r\nbody line" + seq +
                       b"MAIL FROM:<evil@example.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nsmuggled\r\n.\r\n")
                r = s.reply()
                self.assertTrue(r.startswith("550 5.6.0"), (seq, r))
                # the session is usable afterwards and nothing was stored
                self.assertTrue(s.cmd("NOOP").startswith("250"))
                s.close()
        time.sleep(0.5)
        self.assertEqual(self.stored(), 0)


class LimitsTest(IngressCase):
    node_kw = {"ingress": 'max_message_size = "64KiB"\nmax_recipients = 100\nmax_received_headers = 50'}

    def test_line_length_limits(self):
        """LIM-01/02"""
        s = self.session()
        ok = "NOOP " + "x" * (512 - 2 - 5)  # 512 octets with CRLF
        self.assertTrue(s.cmd(ok).startswith("250"), "a 512-octet command line is accepted")
        self.assertTrue(s.cmd(ok + "x").startswith("500"), "513 octets is refused")
        s.send("NOOP " + "y" * 100000 + "\r\n")
        self.assertTrue(s.reply().startswith("500 5.5.2"))
        self.assertTrue(s.cmd("NOOP").startswith("250"), "clean next command after an over-long line")
        line = b"z" * 998
        self.assertRegex(self.send_one(s, b"Subject: l\r\n\r\n" + line + b"\r\n"), ID_RE)
        r = self.send_one(s, b"Subject: l\r\n\r\n" + line + b"z\r\n")
        self.assertTrue(r.startswith("550 5.6.0"), r)

    def test_recipient_limit(self):
        """LIM-03: 100 recipients accepted, the 101st gets 452 and the earlier ones stay."""
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        for i in range(100):
            self.assertTrue(s.cmd("RCPT TO:<r%d@example.test>" % i).startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<over@example.test>").startswith("452 4.5.3"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
        self.assertRegex(s.reply(), ID_RE)
        self.wait_stored(1)
        recs = wait_for(lambda: (lambda r: r if len(r) == 100 else None)(
            [x for x in self.node.log_records() if x["type"] == "Reception"]), 5, what="100 Reception records")
        self.assertNotIn("over@example.test", {r["recipient"] for r in recs})

    def test_size_limits(self):
        """LIM-04/05/06"""
        s = self.session()
        self.assertIn("SIZE 65536", s.cmd("EHLO again.test"))
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test> SIZE=70000").startswith("552 5.3.4"))
        body = b"Subject: big\r\n\r\n" + (b"a" * 76 + b"\r\n") * 2000  # ~156 KB
        r = self.send_one(s, body)
        self.assertTrue(r.startswith("552 5.3.4"), r)
        self.assertTrue(s.cmd("NOOP").startswith("250"))
        self.assertRegex(self.send_one(s), ID_RE)
        self.wait_stored(1)

    def test_hop_count(self):
        """LOOP-01"""
        s = self.session()
        body = b"".join(b"Received: from hop%d by x; Mon, 1 Jan 2026 00:00:00 +0000\r\n" % i for i in range(51))
        r = self.send_one(s, body + b"Subject: loop\r\n\r\nx\r\n")
        self.assertTrue(r.startswith("554 5.4.6"), r)
        body = b"".join(b"Received: from hop%d by x; Mon, 1 Jan 2026 00:00:00 +0000\r\n" % i for i in range(50))
        self.assertRegex(self.send_one(s, body + b"Subject: ok\r\n\r\nx\r\n"), ID_RE)

    def test_8bit_and_nul(self):
        """EBIT-01, NUL-01"""
        s = self.session()
        r = self.send_one(s, "Subject: é\r\n\r\ncafé\r\n".encode())
        self.assertTrue(r.startswith("550 5.6.0"), r)
        self.assertRegex(self.send_one(s, "Subject: é\r\n\r\ncafé\r\n".encode(),
                                       mail="MAIL FROM:<s@example.test> BODY=8BITMIME"), ID_RE)
        r = self.send_one(s, b"Subject: n\r\n\r\nnul\x00here\r\n")
        self.assertTrue(r.startswith("550 5.6.0"), r)
        self.wait_stored(1)

    def test_injection_in_commands(self):
        """INJ-01: CR, LF, NUL in EHLO, MAIL/RCPT parameters and addresses give 501."""
        s = self.session()
        for line in [b"EHLO bad\x00host\r\n", b"EHLO bad\rhost\r\n", b"MAIL FROM:<a\x00b@example.test>\r\n",
                     b"MAIL FROM:<s@example.test> ENVID=a\rb\r\n"]:
            s.send(line)
            r = s.reply()
            self.assertTrue(r.startswith("501"), (line, r))
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        s.send(b"RCPT TO:<x\ry@example.test>\r\n")
        self.assertTrue(s.reply().startswith("501"))

    def test_hostile_local_parts_are_data_only(self):
        """INJ-02: shell metacharacters and quoting in addresses are stored and logged as data."""
        marker = os.path.join(self.node.tmp, "pwned")
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<\"$(touch %s)\"@example.test>" % marker).startswith("250"))
        for local in ['"`touch %s`"' % marker, "a|b$c{d}`id`", '"; rm -rf / #"']:
            r = s.cmd("RCPT TO:<%s@example.test>" % local)
            self.assertTrue(r.startswith("250"), (local, r))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(b"Subject: $(id)\r\n\r\n`id`\r\n.\r\n")
        self.assertRegex(s.reply(), ID_RE)
        recs = wait_for(lambda: (lambda r: r if len(r) == 3 else None)(
            [x for x in self.node.log_records() if x["type"] == "Reception"]), 5, what="3 Reception records")
        self.assertIn('"`touch %s`"@example.test' % marker, {r["recipient"] for r in recs})
        self.assertFalse(os.path.exists(marker))

    def test_sequence_errors(self):
        s = self.session(ehlo=False)
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("503"))
        self.assertTrue(s.cmd("HELO client.test").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("503"))
        self.assertTrue(s.cmd("DATA").startswith("503"))
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("503"))
        self.assertTrue(s.cmd("DATA").startswith("554"))
        self.assertTrue(s.cmd("RSET").startswith("250"))
        self.assertTrue(s.cmd("VRFY someone").startswith("252"))
        self.assertTrue(s.cmd("FOO").startswith("500"))


class RelayTest(IngressCase):
    """RELAY-01/02: 127.0.0.1 is outside relay_networks here, so it may only send to relay_domains."""
    node_kw = {"ingress": 'relay_networks = ["10.99.0.0/16"]\nrelay_domains = ["local.test"]\npostmaster = "ops@local.test"'}

    def test_unauthorised_client_cannot_relay(self):
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        for rcpt in ["user@other.test", "user%other.test@local.test", "other.test!user@local.test",
                     '"user@other.test"@local.test', "<@local.test:user@other.test>", "user@[127.0.0.1]",
                     "user@other.test."]:
            arg = rcpt if rcpt.startswith("<") else "<%s>" % rcpt
            r = s.cmd("RCPT TO:%s" % arg)
            self.assertTrue(r.startswith("550 5.7.1") or r.startswith("501"), (rcpt, r))
        for rcpt in ["user@local.test", "user@LOCAL.test.", "Postmaster"]:
            r = s.cmd("RCPT TO:<%s>" % rcpt)
            self.assertTrue(r.startswith("250"), (rcpt, r))

        # each refusal is a Rejection record in the log, with our reply and the client's facts
        def rejections():
            recs = [r for r in self.node.log_records() if r["type"] == "Rejection" and r["response"]["code"] == 550]
            return recs if len(recs) >= 5 else None
        recs = wait_for(rejections, 5, what="Rejection records")
        # user@other.test and user@other.test. (the trailing dot leaves the stored address, issue 13 #4)
        first = [r for r in recs if r["response"]["content"] == "<user@other.test>: Relay access denied"]
        self.assertEqual(len(first), 2, recs)
        self.assertEqual(first[0]["response"]["enhanced_code"], {"class": 5, "subject": 7, "detail": 1})
        self.assertEqual(first[0]["response"]["command"], "RCPT")
        self.assertEqual(first[0]["sender"], "s@example.test")
        self.assertEqual(first[0]["peer_address"]["addr"], "127.0.0.1")
        self.assertEqual(first[0]["recipient"], "user@other.test")


class TimeoutTest(IngressCase):
    node_kw = {"ingress": 'idle_timeout = "1s"\ndata_timeout = "2s"\nmax_connections_per_ip = 3\n'
                          'per_ip_limit_relay_networks = true'}

    def test_idle_session_gets_421(self):
        """TMO-01"""
        s = self.session()
        t0 = time.monotonic()
        r = s.reply()
        self.assertTrue(r.startswith("421 4.4.2"), r)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(s.closed())

    def test_trickle_in_data_is_cut_at_the_deadline(self):
        """TMO-02"""
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        t0 = time.monotonic()
        s.sock.settimeout(0.3)
        got = b""
        while time.monotonic() - t0 < 6 and b"\n" not in got:
            try:
                s.send(b"x")
                got += s.sock.recv(512)
            except socket.timeout:
                continue
            except OSError:
                break
        self.assertTrue(got.startswith(b"421 4.4.2"), got)
        self.assertLess(time.monotonic() - t0, 5)

    def test_connections_over_the_per_ip_limit_get_421_others_served(self):
        """TMO-03 / LIM: the excess connection gets 421 while the others are still served."""
        held = [self.session(ehlo=False) for _ in range(3)]
        extra = Session(self.node.smtp_port)
        self.addCleanup(extra.close)
        self.assertTrue(extra.banner.startswith("421 4.7.0"), extra.banner)
        self.assertTrue(held[0].cmd("NOOP").startswith("250"))
        # the refusal is logged like any other: a Rejection record with the peer and the 421
        recs = wait_for(lambda: [r for r in self.node.log_records()
                                 if r["type"] == "Rejection" and r["response"]["code"] == 421], 5,
                        what="a Rejection record for the refused connection")
        self.assertEqual(recs[0]["response"]["command"], "connect")
        self.assertIn("127.0.0.1", json.dumps(recs[0]["peer_address"]))


class RelayNetworksPerIpTest(IngressCase):
    """A trusted injector (relay_networks) is exempt from max_connections_per_ip by default, as Postfix
    exempts $mynetworks; a client outside relay_networks is not."""
    node_kw = {"ingress": 'max_connections_per_ip = 2\nrelay_networks = ["127.0.0.1/32"]'}

    def test_relay_networks_client_is_exempt_and_others_are_limited(self):
        trusted = [Session(self.node.smtp_port) for _ in range(6)]
        for t in trusted:
            self.addCleanup(t.close)
            self.assertTrue(t.banner.startswith("220 "), t.banner)
        outside = [Session(self.node.smtp_port, source="127.0.0.2") for _ in range(3)]
        for o in outside:
            self.addCleanup(o.close)
        self.assertEqual([o.banner[:3] for o in outside], ["220", "220", "421"])
        self.assertTrue(outside[2].banner.startswith("421 4.7.0"), outside[2].banner)
        self.assertTrue(trusted[5].cmd("NOOP").startswith("250"))


class SpoolFaultTest(IngressCase):
    node_kw = {"ingress": 'spool_timeout = "1s"'}

    def test_spool_not_answering_gives_451_and_recovers(self):
        s = self.session()
        spool = self.node.instances()["spool[0]"]["pid"]
        os.kill(spool, 19)  # SIGSTOP
        try:
            r = self.send_one(s)
            self.assertTrue(r.startswith("451 4.3.0"), r)
        finally:
            os.kill(spool, 18)  # SIGCONT
        self.assertTrue(s.cmd("RSET").startswith("250"))
        self.assertRegex(self.send_one(s), ID_RE)


class DiskTest(IngressCase):
    """DISK-01: below the free-space minimum, MAIL gets 452."""
    node_kw = {"spool": 'free_space_min = "1000GiB"'}

    def test_mail_refused_when_spool_disk_is_low(self):
        wait_for(lambda: "free_space_min" in self.node.log(), 5, what="low-space log line")
        s = self.session()
        r = s.cmd("MAIL FROM:<s@example.test>")
        self.assertTrue(r.startswith("452 4.3.1"), r)


class DurabilityTest(IngressCase):
    node_kw = {"ingress": 'spool_timeout = "5s"'}
    DELAY_S = 0.8

    def strace_spool(self, delay_s, when="exit"):
        """Hold every fsync/fdatasync in the spool with strace's fault injection: before the call runs
        (when="enter": nothing is synced yet) or after it ran and before it returns (when="exit")."""
        pid = self.node.instances()["spool[0]"]["pid"]
        out = os.path.join(self.node.tmp, "strace.out")
        tr = hold_fsyncs(pid, delay_s, out, when)
        if tr is None:
            self.skipTest("strace is not installed or cannot ptrace the spool here")
        self.addCleanup(lambda: (tr.poll() is None and tr.kill(), tr.wait()))
        return tr, out

    def timed_message(self, s):
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        t0 = time.monotonic()
        s.send(b"Subject: d\r\n\r\nx\r\n.\r\n")
        r = s.reply()
        return r, time.monotonic() - t0

    def test_250_follows_the_fsync_that_covers_the_message(self):
        """DUR-01: every fsync in the spool is held for 0.8 s by strace; each 250 waits for it."""
        s = self.session()
        tr, out = self.strace_spool(self.DELAY_S)
        for _ in range(3):
            r, took = self.timed_message(s)
            self.assertRegex(r, ID_RE)
            self.assertGreaterEqual(took, self.DELAY_S, "250 came before the fsync returned")
        tr.terminate()
        tr.wait(10)
        with open(out) as f:
            syncs = [l for l in f if "fdatasync(" in l or "fsync(" in l]
        self.assertGreaterEqual(len(syncs), 3, "expected a WAL sync per message")
        # without the delay the same path is fast: the wait above was the fsync
        wait_for(lambda: not traced_by(self.node.instances()["spool[0]"]["pid"]), 5, what="strace detached")
        r, took = self.timed_message(s)
        self.assertRegex(r, ID_RE)
        self.assertLess(took, self.DELAY_S)

    def kill_spool_during_fsync(self, when):
        s = self.session()
        tr, _ = self.strace_spool(3.0, when)
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(b"Subject: k\r\n\r\nx\r\n.\r\n")
        time.sleep(1.0)  # the store request is held in the fsync now
        os.kill(self.node.instances()["spool[0]"]["pid"], 9)
        r = s.reply()
        self.assertTrue(r.startswith("451"), r)
        tr.wait(10)
        # the node recovers: a new spool, and mail is accepted again
        self.node.wait_all_ready()
        self.assertTrue(s.cmd("RSET").startswith("250"))
        return s

    def test_kill9_spool_before_its_fsync_returns_gives_no_250(self):
        """CRASH-02: the spool dies before its commit's fsync runs: the client never sees 250."""
        s = self.kill_spool_during_fsync("enter")
        r, _ = self.timed_message(s)
        self.assertRegex(r, ID_RE)

    def test_kill9_spool_after_fsync_before_ack_keeps_the_message(self):
        """CRASH-03: the spool dies after the fsync, before it acknowledged: no 250, but the message is
        durable and queued after the restart. The client retries (it saw 451), so this is the one window
        where at-least-once gives a duplicate, and the queue count shows it."""
        s = self.kill_spool_during_fsync("exit")
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 1, 10,
                 what="the synced but unacknowledged message queued after the restart")
        r, _ = self.timed_message(s)
        self.assertRegex(r, ID_RE)
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 2, 10,
                 what="the retried copy queued next to it (the counted duplicate)")

    def test_kill9_ingress_mid_data_stores_nothing_and_node_recovers(self):
        """CRASH-01: an ingress killed in the middle of DATA: no 250, nothing half-stored, served again."""
        s = self.session()
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(s.cmd("RCPT TO:<a@example.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(b"Subject: half\r\n\r\nfirst half of the body\r\n")
        time.sleep(0.2)
        os.kill(self.node.instances()["ingress[0]"]["pid"], 9)
        self.assertTrue(s.closed())
        self.node.wait_all_ready()
        s2 = self.session()
        self.assertRegex(self.send_one(s2), ID_RE)
        self.wait_stored(1)


POLICY = r"""
kumo.on("smtp_server_ehlo", function(domain, conn_meta)
  if domain == "io.test" then io.open("/etc/passwd") end
end)
kumo.on("smtp_server_mail_from", function(sender, conn_meta, params)
  if sender.email == "blocked@example.test" then kumo.reject(550, "5.7.1 sender blocked by policy") end
  if sender.email == "load@example.test" then load("return 1")() end
end)
kumo.on("smtp_server_rcpt_to", function(rcpt, conn_meta)
  if rcpt.user == "loop" then while true do end end
  if rcpt.user == "bomb" then local t = {} ; local s = "x" ; while true do s = s .. s ; t[#t + 1] = s end end
end)
kumo.on("smtp_server_message_received", function(msg, conn_meta)
  msg:set_meta("queue", "campaign7:" .. msg:recipient_list()[1].domain)
  msg:set_meta("tenant", "acme")
  if msg:get_first_named_header_value("Subject") == "reject me" then kumo.reject(554, "5.7.0 content refused") end
end)
"""


class PolicyTest(IngressCase):
    """LUA-01: hooks that loop, bomb memory or use io/load give 451 and the worker keeps serving."""

    def setUp(self):
        self.start_with_policy(POLICY, 'instruction_budget = 2000000\nmemory_limit = "16MiB"\n')

    def test_policy_hooks_reject_fail_safely_and_set_metadata(self):
        pid = self.node.instances()["ingress[0]"]["pid"]
        s = self.session(ehlo=False)
        r = s.cmd("EHLO io.test")
        self.assertTrue(r.startswith("451 4.3.0"), r)
        self.assertTrue(s.cmd("EHLO client.test").startswith("250"))
        r = s.cmd("MAIL FROM:<blocked@example.test>")
        self.assertEqual(r, "550 5.7.1 sender blocked by policy")
        self.assertTrue(s.cmd("MAIL FROM:<load@example.test>").startswith("451 4.3.0"))
        self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        t0 = time.monotonic()
        self.assertTrue(s.cmd("RCPT TO:<loop@example.test>").startswith("451 4.3.0"))
        self.assertLess(time.monotonic() - t0, 5)
        self.assertTrue(s.cmd("RCPT TO:<bomb@example.test>").startswith("451 4.3.0"))
        self.assertTrue(s.cmd("RCPT TO:<ok@dest.test>").startswith("250"))
        self.assertTrue(s.cmd("DATA").startswith("354"))
        s.send(b"Subject: fine\r\n\r\nbody\r\n.\r\n")
        r = s.reply()
        self.assertRegex(r, ID_RE)
        msg_id = ID_RE.match(r).group(1)
        r = self.send_one(s, b"Subject: reject me\r\n\r\nx\r\n", rcpts=("ok@dest.test",))
        self.assertEqual(r, "554 5.7.0 content refused")
        # the same worker process served all of it
        self.assertEqual(self.node.instances()["ingress[0]"]["pid"], pid)
        recs = wait_for(lambda: [x for x in self.node.log_records() if x["type"] == "Reception" and x["id"] == msg_id],
                        5, what="Reception record")
        self.assertEqual(recs[0]["queue"], "campaign7:dest.test")
        self.assertEqual(recs[0]["meta"].get("tenant"), "acme")
        self.assertIn("failed", self.node.log())

    def test_broken_policy_on_reload_keeps_the_running_one(self):
        path = os.path.join(self.node.tmp, "policy.lua")
        with open(path, "w") as f:
            f.write("kumo.on(\"smtp_server_ehlo\", function(\n")
        self.node.ringctl("reload", check=True)
        wait_for(lambda: "keeping the running one" in self.node.log(), 5, what="reload refused in the log")
        s = self.session()
        self.assertEqual(s.cmd("MAIL FROM:<blocked@example.test>"), "550 5.7.1 sender blocked by policy")


POLICY_CLOCK = r"""
kumo.on("smtp_server_message_received", function(msg, conn_meta)
  local subject = msg:get_first_named_header_value("Subject")
  if subject == "backtrack" then
    string.find(msg:get_first_named_header_value("X-Long"), string.rep("a*", 30) .. "b")
  elseif subject == "spin" then
    while true do end
  end
end)
"""


class PolicyClockTest(IngressCase):
    """LUA-02: with an instruction budget that would let a hook run for hours, a backtracking
    string.find on a long peer header and a busy loop are each stopped within [policy] hook_time_limit:
    451 4.3.0 for that transaction, the same ingress pid, the next message accepted."""

    def setUp(self):
        self.start_with_policy(POLICY_CLOCK, 'instruction_budget = 10000000000\nhook_time_limit = "100ms"\n')

    def test_backtracking_pattern_and_busy_loop_stopped_by_the_clock(self):
        pid = self.node.instances()["ingress[0]"]["pid"]
        s = self.session()
        for subject, want in (("backtrack", "pattern too costly for a 900-byte subject"),
                              ("spin", "time limit exceeded")):
            t0 = time.monotonic()
            body = b"Subject: %s\r\nX-Long: %s\r\n\r\nx\r\n" % (subject.encode(), b"a" * 900)
            r = self.send_one(s, body, rcpts=("ok@dest.test",))
            self.assertTrue(r.startswith("451 4.3.0"), "%s: %s" % (subject, r))
            self.assertLess(time.monotonic() - t0, 3, subject)
            wait_for(lambda: want in self.node.log(), 5, what="'%s' in the log" % want)
        self.assertRegex(self.send_one(s, b"Subject: fine\r\n\r\nx\r\n", rcpts=("ok@dest.test",)), ID_RE)
        self.assertEqual(self.node.instances()["ingress[0]"]["pid"], pid)
        self.wait_stored(1)


class TlsTest(IngressCase):
    def tls_context(self):
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def test_starttls_with_smtplib_and_openssl_s_client(self):
        with smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10) as c:
            c.ehlo()
            self.assertIn("starttls", c.esmtp_features)
            code, _ = c.starttls(context=self.tls_context())
            self.assertEqual(code, 220)
            c.ehlo()
            self.assertNotIn("starttls", c.esmtp_features)
            self.assertEqual(c.sendmail("s@example.test", ["a@example.test"], "Subject: tls\r\n\r\nx\r\n"), {})
            self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        self.wait_stored(1)
        if shutil.which("openssl"):
            p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-quiet", "-connect",
                                "127.0.0.1:%d" % self.node.smtp_port], input=b"EHLO x\r\nQUIT\r\n",
                               capture_output=True, timeout=20)
            self.assertIn(b"221 2.0.0", p.stdout, p.stdout + p.stderr)
        self.assertIn("SELF-SIGNED", self.node.log())

    def test_plaintext_pipelined_after_starttls_is_discarded_and_state_reset(self):
        """TLS-01: STARTTLS and NOOP in one write: only the 220 is answered; after the handshake
        the session starts afresh (MAIL before EHLO is refused)."""
        import ssl
        s = self.session()
        s.send(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@example.test>\r\n")
        self.assertTrue(s.reply().startswith("220 2.0.0"))
        t = self.tls_context().wrap_socket(s.sock, server_hostname=None)
        f = t.makefile("rb")
        t.sendall(b"MAIL FROM:<s@example.test>\r\n")
        # the first reply over TLS answers this MAIL, not the injected NOOP or MAIL
        self.assertTrue(read_reply(f).startswith("503 5.5.1"), "state was not reset by STARTTLS")
        t.sendall(b"EHLO client.test\r\n")
        self.assertTrue(read_reply(f).startswith("250-"))
        t.sendall(b"STARTTLS\r\n")
        self.assertTrue(read_reply(f).startswith("503"))
        t.sendall(b"QUIT\r\n")
        self.assertTrue(read_reply(f).startswith("221"))

    def test_garbage_instead_of_a_handshake_closes_the_session_only(self):
        s = self.session()
        self.assertTrue(s.cmd("STARTTLS").startswith("220"))
        s.send(b"\x16\x03\x01\x00\x05hello this is not TLS at all\r\n" * 10)
        self.assertTrue(s.closed())
        s2 = self.session()
        self.assertRegex(self.send_one(s2), ID_RE)


class DiskFullTest(unittest.TestCase):
    """DUR-02/DISK-02: ENOSPC in the middle of a commit gives 4xx and no partial state; the spool recovers
    when space returns. The spool directory is a small tmpfs (root only)."""

    def test_enospc_during_commit_gives_4xx_and_recovers(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs")
        node = Node(spool='free_space_min = "0"')
        self.addCleanup(node.cleanup)
        mnt = os.path.join(node.tmp, "spoolfs")
        os.mkdir(mnt)
        node.base_config = node.base_config.replace('free_space_min = "0"', 'free_space_min = "0"\ndir = "%s"' % mnt)
        node.write_config(node.base_config)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0777", "tmpfs", mnt]).returncode != 0:
            self.skipTest("cannot mount tmpfs here")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", mnt]))
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (8 << 20))
        node.start()
        body = b"Subject: fill\r\n\r\n" + (b"f" * 998 + b"\r\n") * 300  # ~300 KB
        accepted, refused = 0, None
        s = Session(node.smtp_port)
        self.addCleanup(s.close)
        self.assertTrue(s.cmd("EHLO client.test").startswith("250"))
        for _ in range(200):
            self.assertTrue(s.cmd("MAIL FROM:<s@example.test>").startswith(("250", "452")))
            r = s.cmd("RCPT TO:<a@example.test>")
            if not r.startswith("250"):
                refused = r
                break
            self.assertTrue(s.cmd("DATA").startswith("354"))
            s.send(body + b".\r\n")
            r = s.reply()
            if r.startswith("250"):
                accepted += 1
                continue
            refused = r
            break
        sys.stderr.write("accepted %d, then: %s\n" % (accepted, refused))
        self.assertIsNotNone(refused, "the 24 MB spool never filled")
        self.assertTrue(refused.startswith("4"), refused)
        self.assertGreater(accepted, 0)
        self.assertEqual(node.counter("spool", "messages_stored"), accepted)
        # space returns: the spool reopens its database and mail is accepted again
        os.unlink(filler)
        s.cmd("RSET")

        def accepts_again():
            r = s.cmd("MAIL FROM:<s@example.test>")
            if not r.startswith("250"):
                return False
            s.cmd("RCPT TO:<a@example.test>")
            if not s.cmd("DATA").startswith("354"):
                return False
            s.send(b"Subject: again\r\n\r\nx\r\n.\r\n")
            r = s.reply()
            if not r.startswith("250"):
                s.cmd("RSET")
            return r.startswith("250")
        wait_for(accepts_again, 20, step=1.0, what="mail accepted after space returned")
        # everything that got 250 is still there after a restart (nothing partial, nothing lost)
        node.stop()
        node.start()
        wait_for(lambda: node.counter("scheduler", "messages_queued") == accepted + 1, 10,
                 what="%d queued after restart" % (accepted + 1))


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
