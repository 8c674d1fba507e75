"""End-to-end tests of the egress against hostile replies (TESTING.md EGR-02) and dead MXs (DNS-01).

smtplib -> ringmail -> a scripted receiver on loopback (tests/lib/fault_peers.py) that answers with
100,000 continuation lines, a 1 MB line, a code that changes mid-reply, binary garbage or a reply that
never ends; each test checks that the message is deferred and the egress process survived with bounded
memory and no sanitizer report. DNS-01: every MX of a domain refuses the connection.

    /usr/bin/python3 tests/e2e/egress_hostile_test.py -k trickle
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import free_port, wait_for  # noqa: E402
from fault_peers import RSS_LIMIT_KB, FaultCase, RssWatch, Session, Stop  # noqa: E402

# meson: see discover.py
MESON = {"suite": "delivery"}


# ---- EGR-02: hostile replies ------------------------------------------------------------------------

def blast(session, chunks):
    for c in chunks:
        session.send(c)


class ManyLinesSession(Session):
    def on_ehlo(self):
        blast(self, (b"250-keyword%06d\r\n" % i * 1000 for i in range(100)))
        self.send("250 ok")


class LongLineSession(Session):
    def on_connect(self):
        self.send(b"220 ")
        blast(self, (b"a" * 65536 for _ in range(16)))
        self.send(b"\r\n")


class CodeChangeSession(Session):
    def on_mail(self):
        return "250-sender ok\r\n251-but now\r\n452-and now\r\n550 this"


class GarbageSession(Session):
    def on_rcpt(self, addr):
        self.send(bytes(range(256)) * 256)
        while not self.srv.stopping:  # only the garbage itself may end the session, not EOF or a timeout
            time.sleep(0.05)
        raise Stop()


class TrickleSession(Session):
    def on_dot(self):
        self.send(b"250-")
        while not self.srv.stopping:
            self.send(b"a")
            time.sleep(0.05)
        raise Stop()

    def on_body(self):
        self.read_data()
        self.on_dot()


class HostileTest(FaultCase):
    def check_hostile(self, session_cls, expect_text=None):
        srv = self.script(session_cls)
        self.start(hosts=(srv.port,))
        pid = self.egress_pid()
        rss = RssWatch(pid)
        try:
            msg_id = self.send(["a@far.test"])
            recs = self.assert_deferred(msg_id)
            # the next attempt meets the same server: still deferred, still the same process
            wait_for(lambda: len(self.records_of("TransientFailure", msg_id)) >= 2, 20, what="a second attempt")
        finally:
            peak = rss.stop()
        sys.stderr.write("[egress VmRSS peak %d kB] " % peak)
        self.assertLess(peak, RSS_LIMIT_KB, "egress VmRSS peaked at %d kB" % peak)
        self.assertEqual(self.egress_pid(), pid, "the egress restarted")
        self.assertEqual(self.queued(), 1)
        self.assertGreaterEqual(srv.connections, 2)
        if expect_text:
            self.assertIn(expect_text, recs[0]["response"]["content"], recs[0])
        # the egress still delivers to a sane server
        self.send(["other@good.test"])
        wait_for(lambda: self.good.delivered_to("other@good.test") == 1, 20, what="a good delivery afterwards")
        self.assertEqual(srv.messages, [])
        self.assert_no_sanitizer_report()

    def test_100k_continuation_lines(self):
        """EGR-02: an EHLO reply of 100,000 lines: bounded memory, deferred, egress alive."""
        self.check_hostile(ManyLinesSession, "too many lines")

    def test_1mb_reply_line(self):
        """EGR-02: a 1 MB banner line: bounded memory, deferred, egress alive."""
        self.check_hostile(LongLineSession, "too long")

    def test_reply_code_changes_mid_reply(self):
        """EGR-02: the MAIL reply changes its code between lines: deferred, egress alive."""
        self.check_hostile(CodeChangeSession, "code changed")

    def test_binary_garbage_reply(self):
        """EGR-02: 64 KiB of binary garbage as a RCPT reply: deferred, egress alive."""
        self.check_hostile(GarbageSession, "reply code is not three digits")

    def test_trickle_reply_never_ends(self):
        """EGR-02: the reply after the body trickles one octet per 50 ms forever: the data timeout ends it."""
        self.check_hostile(TrickleSession, "timeout")


# ---- DNS-01: every MX dead ----------------------------------------------------------------------------

class DeadMxTest(FaultCase):
    records = [
        "dead.test. 60 IN MX 10 mx1.dead.test.",
        "dead.test. 60 IN MX 20 mx2.dead.test.",
        "mx1.dead.test. 60 IN A 127.0.0.3",
        "mx2.dead.test. 60 IN A 127.0.0.4",
    ]

    def test_all_mx_dead_defers_and_keeps_the_message(self):
        """DNS-01: every MX refuses the connection: TransientFailure after trying both, message queued."""
        self.start(port=free_port())
        msg_id = self.send(["a@dead.test"])
        recs = self.assert_deferred(msg_id)
        r = recs[0]
        self.assertIsNone(r["response"]["command"], r)
        self.assertEqual(r["response"]["code"] // 100 if r["response"]["code"] else 4, 4, r)
        # the last MX tried is the second one: both were tried, in preference order
        self.assertTrue(r["peer_address"]["addr"].startswith("127.0.0.4:"), r)
        time.sleep(2.5)
        self.assertGreaterEqual(len(self.records_of("TransientFailure", msg_id)), 2, "retried")
        self.assertEqual(self.queued(), 1)
        self.assertEqual(self.records_of("Bounce", msg_id), [])



if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
