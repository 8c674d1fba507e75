"""Hostile pipelining clients against a real node (issue 13, findings 1, 5 and 10): a client that never reads
its replies, chunks and bodies sent after a refusal, and floods of refused commands. Each scenario is a raw
socket on 127.0.0.1; each asserts on the replies, the ingress worker's memory (/proc) and the log records.

    /usr/bin/python3 tests/e2e/harden_pipeline_test.py -k refused_data
"""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import wait_for  # noqa: E402
from ingress_test import IngressCase  # noqa: E402  (the node per test, the raw Session, the log on failure)

MESON = {"suite": "ingress"}

EHLO = b"EHLO a\r\n"
MAX_ERRORS = 20        # INGRESS_MAX_ERRORS
MAX_REFUSALS = 100     # INGRESS_MAX_REFUSALS
LOGGED_REFUSALS = 20   # INGRESS_LOGGED_REFUSALS


def replies_until_closed(s, limit, timeout=10):
    """Every reply of session s until the server closes (or `limit` replies, or the timeout: then the last
    is None)."""
    out = []
    s.sock.settimeout(timeout)
    try:
        while len(out) < limit:
            out.append(s.reply())
    except socket.timeout:
        out.append(None)
    except ConnectionError:  # closed (read_reply), or reset because our unread input was left behind
        pass
    return out


def unread_client(port):
    """A socket with a 4 KiB receive buffer (set before connecting, so the window stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


class Case(IngressCase):
    def rejections(self):
        return [r for r in self.node.log_records() if r["type"] == "Rejection"]

    def assert_nothing_received(self):
        time.sleep(0.5)
        self.assertEqual(self.stored(), 0)
        self.assertEqual([r for r in self.node.log_records() if r["type"] == "Reception"], [])


def ingress_memory(node):
    """(VmRSS, VmHWM) of the ingress worker in kB."""
    pid = [r["pid"] for r in node.status()["roles"] if r["role"] == "ingress"][0]
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, v = line.split(":", 1)
            fields[k] = v.split()[0] if v.split() else ""
    return int(fields["VmRSS"]), int(fields["VmHWM"])


class UnreadRepliesTest(Case):
    def test_client_that_never_reads_cannot_grow_the_reply_buffer(self):
        """issue 13 #1: 3 MB of pipelined EHLO (about 50 MB of replies) from a client with a 4 KiB receive
        buffer that reads nothing for 3 s: the worker reads no more than it can answer, its memory stays
        flat, and once the client reads, every EHLO is answered, intact and in order, then QUIT."""
        rss0, _ = ingress_memory(self.node)
        sock = unread_client(self.node.smtp_port)
        self.addCleanup(sock.close)
        burst = EHLO * 8192
        sent, t0 = 0, time.monotonic()
        while sent < 3 * 1024 * 1024 and time.monotonic() - t0 < 3:
            try:
                sent += sock.send(burst)
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(max(0.0, 3 - (time.monotonic() - t0)) + 0.5)
        rss, hwm = ingress_memory(self.node)
        self.assertLess(hwm - rss0, 16 * 1024,
                        "ingress grew from %d kB to a peak of %d kB (now %d kB) for %d bytes of unread EHLO"
                        % (rss0, hwm, rss, sent))

        # now read: every command sent is answered, byte for byte
        got = bytearray()
        done = threading.Event()

        def reader():
            sock.settimeout(60)
            try:
                while True:
                    b = sock.recv(1 << 20)
                    if not b:
                        break
                    got.extend(b)
            except OSError:
                pass
            done.set()
        sock.setblocking(True)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        sock.sendall((EHLO[sent % len(EHLO):] if sent % len(EHLO) else b"") + b"QUIT\r\n")
        n_ehlo = (sent + len(EHLO) - 1) // len(EHLO)
        self.assertTrue(done.wait(90), "the replies did not all arrive")
        banner_end = got.index(b"\r\n") + 2
        first = got.index(b"250 ENHANCEDSTATUSCODES\r\n", banner_end) + len(b"250 ENHANCEDSTATUSCODES\r\n")
        ehlo_reply = bytes(got[banner_end:first])
        self.assertTrue(ehlo_reply.startswith(b"250-"), ehlo_reply)
        end = banner_end + n_ehlo * len(ehlo_reply)
        self.assertTrue(bytes(got[banner_end:end]) == ehlo_reply * n_ehlo, "replies lost, doubled or corrupted")
        self.assertRegex(bytes(got[end:]), rb"^221 [^\r\n]*\r\n$")
        _, hwm = ingress_memory(self.node)
        self.assertLess(hwm - rss0, 16 * 1024, "peak %d kB while answering" % hwm)


class NeverReadsTest(Case):
    node_kw = {"ingress": 'idle_timeout = "1s"'}

    def test_client_that_never_reads_is_closed_after_the_idle_timeout(self):
        """issue 13 #1: a client that pipelines and never reads is idle once reading stops; its 421 cannot be
        sent (its window stays shut), and the session is still closed one idle timeout later."""
        sock = unread_client(self.node.smtp_port)
        self.addCleanup(sock.close)
        burst = EHLO * 8192
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1:
            try:
                sock.send(burst)
            except BlockingIOError:
                time.sleep(0.01)
        self.assertEqual(self.node.counter("ingress", "smtp_sessions"), 1)
        wait_for(lambda: self.node.counter("ingress", "smtp_sessions") == 0, 10, what="the session closed")


class ResidueTest(Case):
    def test_refused_bdat_chunk_is_read_and_dropped(self):
        """issue 13 #10: a BDAT the parser refuses still announces its chunk: those bytes are dropped, never
        read as commands, even when the chunk is a whole transaction sent in a later write."""
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(c.cmd("RCPT TO:<r@example.test>").startswith("250"))
        chunk = b"RSET\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nBDAT 3 LAST\r\nabcQUIT\r\n"
        c.send(b"BDAT %d BOGUS\r\n" % len(chunk))
        self.assertTrue(c.reply().startswith("501"))
        c.send(chunk[:20])
        time.sleep(0.2)
        c.send(chunk[20:])
        time.sleep(0.2)
        # the session goes on after the chunk; the transfer it broke can only fail
        self.assertEqual(c.cmd("NOOP")[:3], "250")
        c.send(b"BDAT 4 LAST\r\nabcd")
        self.assertEqual(c.reply()[:3], "503")
        self.assertEqual(c.cmd("QUIT")[:3], "221")
        self.assert_nothing_received()

    def test_body_after_refused_data_in_a_later_write_is_never_commands(self):
        """issue 13 #10: RCPT refused, DATA refused, then (not reading, in a later write) a body that holds a
        transaction. The session ends at the first body line; nothing is received."""
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(c.cmd("RCPT TO:<bad address>").startswith("501"))
        c.send("DATA\r\n")
        time.sleep(0.3)  # DATA is read on its own; the client still does not look at its reply
        c.send("MAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n")
        r = replies_until_closed(c, 10)
        self.assertTrue(r[0].startswith("554 5.5.1"), r)
        self.assertIsNotNone(r[-1], r)
        self.assertTrue(r[-1].startswith("421 4.5.0"), r)
        self.assertFalse([x for x in r if x.startswith("354") or x.startswith("250")], r)
        self.assert_nothing_received()

    def test_body_after_pipelined_refused_data_is_never_commands(self):
        """issue 13 #10: MAIL refused in a pipelined MAIL/RCPT/DATA group, the body in a later write: the
        session ends with the refused DATA, so a body opening with a valid MAIL line builds nothing."""
        c = self.session()
        c.send("MAIL FROM:<bad address>\r\nRCPT TO:<v@y.test>\r\nDATA\r\n")
        time.sleep(0.3)
        try:
            c.send("MAIL FROM:<evil@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nhi\r\n.\r\n")
        except OSError:
            pass  # already closed
        r = replies_until_closed(c, 10)
        self.assertEqual([x[:3] for x in r[:3]], ["501", "503", "503"], r)
        self.assertIsNotNone(r[-1], r)
        self.assertTrue(r[-1].startswith("421 4.5.0"), r)
        self.assertFalse([x for x in r if x.startswith("354") or x.startswith("250")], r)
        self.assert_nothing_received()

    def test_client_that_reads_the_refused_data_goes_on(self):
        """The rule does not cost a well-behaved client its session: DATA refused, the reply read, then RSET
        and a whole transaction."""
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        self.assertTrue(c.cmd("DATA").startswith("554"))
        self.assertTrue(c.cmd("RSET").startswith("250"))
        self.assertTrue(self.send_one(c).startswith("250 2.0.0 OK id="))


class RefusalCapTest(Case):
    node_kw = {"ingress": 'relay_networks = ["10.99.0.0/16"]\nrelay_domains = ["local.test"]'}

    def wait_rejections(self, n):
        time.sleep(0.5)
        return wait_for(lambda: (lambda r: r if len(r) >= n else None)(self.rejections()), 10,
                        what="%d Rejection records" % n)

    def test_pipelined_relay_denials_end_the_session_at_the_error_cap(self):
        """issue 13 #5: 3000 pipelined RCPTs to a domain we do not relay for: relay denials are errors, so the
        session ends with 421 after INGRESS_MAX_ERRORS of them, and the log holds at most cap+1 records."""
        c = self.session()
        self.assertTrue(c.cmd("MAIL FROM:<s@example.test>").startswith("250"))
        try:
            c.send("".join("RCPT TO:<u%d@other.test>\r\n" % i for i in range(3000)))
        except OSError:
            pass  # closed while we were still sending: that is the point
        r = replies_until_closed(c, 3100)
        self.assertIsNotNone(r[-1], "session not closed after %d replies" % len(r))
        self.assertEqual(len(r), MAX_ERRORS + 1, r[:3] + r[-3:])
        self.assertTrue(all(x.startswith("550 5.7.1") for x in r[:-1]), r[:3])
        self.assertTrue(r[-1].startswith("421 4.7.0"), r[-1])
        recs = self.wait_rejections(LOGGED_REFUSALS + 1)
        time.sleep(1)
        recs = self.rejections()
        self.assertLessEqual(len(recs), LOGGED_REFUSALS + 1, [x["response"] for x in recs][-3:])
        self.assertEqual(len([x for x in recs if x["response"]["code"] == 550]), LOGGED_REFUSALS)

    def test_errors_count_per_session_not_per_read(self):
        """issue 13 #5: ten syntax errors per read, read after read: the session ends at the 20th error."""
        c = self.session()
        codes = []
        for _ in range(3):
            c.send("MAIL FROM:<bad address>\r\n" * 10)
            for _ in range(10):
                x = c.reply()
                if not x:
                    break
                codes.append(x[:3])
                if x.startswith("421"):
                    break
            if codes and codes[-1] == "421":
                break
        self.assertEqual(codes, ["501"] * MAX_ERRORS + ["421"], codes)
        self.assertEqual(replies_until_closed(c, 5), [])

    def test_refusal_flood_is_capped_and_logged_as_one_summary(self):
        """issue 13 #5: 1000 pipelined RCPTs out of sequence (503, not protocol errors): the session ends at
        INGRESS_MAX_REFUSALS; the first INGRESS_LOGGED_REFUSALS are Rejection records, the rest one summary."""
        c = self.session()
        try:
            c.send("RCPT TO:<a@local.test>\r\n" * 1000)
        except OSError:
            pass
        r = replies_until_closed(c, 1100)
        self.assertIsNotNone(r[-1], "session not closed after %d replies" % len(r))
        self.assertEqual(len(r), MAX_REFUSALS + 1, r[-3:])
        self.assertTrue(r[-1].startswith("421 4.7.0"), r[-1])
        c.close()

        def summary():
            recs = self.rejections()
            return recs if [x for x in recs if "not logged" in x["response"]["content"]] else None
        recs = wait_for(summary, 10, what="the summary Rejection record")
        time.sleep(0.5)
        recs = self.rejections()
        self.assertEqual(len(recs), LOGGED_REFUSALS + 1, [x["response"] for x in recs][-3:])
        last = recs[-1]["response"]
        self.assertEqual(last["code"], 421, last)
        self.assertIn("%d refusals" % (MAX_REFUSALS + 1 - LOGGED_REFUSALS), last["content"])


if __name__ == "__main__":
    unittest.main()
