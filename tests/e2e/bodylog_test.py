"""The spool's body log end to end (spool/spool_db_blog.c, docs/configuration.md [spool]): smtplib -> node -> a
recording aiosmtpd sink that first answers 451 to every DATA, so the messages wait in the spool.

- Bodies of 4 KiB and more are in segment files under DATA_DIR/spool/bodylog, the metrics say how many; the node
  is stopped and started again, the sink starts to accept, and every message arrives with its body byte for
  byte; once all are delivered the sweep unlinks the segment nobody points to any more.
- A byte flipped in a stored body: the message is never delivered (the hash check refuses it), the node says
  which segment and offset, and ringmail_body_log_read_errors_total counts it.
- body_log = false: bodies stay in RocksDB, no segment is made, and the mail flows as before.

    RINGMAIL_BUILD_DIR=/tmp/b /usr/bin/python3 tests/e2e/bodylog_test.py
"""
import json
import os
import random
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402
from accounting import crash_node_config  # noqa: E402

MESON = {"suite": "spool", "timeout": 180}

DEFER = "451 4.3.0 not yet"


def body_text(i, size):
    """A message of about size bytes: lines of printable text, none starting with a dot."""
    rnd = random.Random(i)
    lines = ["Subject: body log %d" % i, "From: s@client.test", ""]
    total = 0
    while total < size:
        line = "x%d " % i + "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(70))
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


class BodyLogCase(PeersCase):
    def start(self, spool=""):
        self.sink = self.peer(Sink("127.0.0.1", free_udp_tcp_port("127.0.0.1"), data_reply=DEFER))
        self.node = Node(spool=spool, **crash_node_config(self.sink.port))
        self.node.start()
        return self.node

    def send(self, n, sizes, first=0):
        sent = {}
        for i in range(first, first + n):
            rcpt = "r%d@dest.test" % i
            text = body_text(i, sizes[i % len(sizes)])
            c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
            try:
                c.ehlo("client.test")
                self.assertEqual(c.sendmail("s@client.test", [rcpt], text.encode()), {})
            finally:
                c.quit()
            sent[rcpt] = text.split("\r\n\r\n", 1)[1].encode()
        return sent

    def message_id(self, rcpt):
        """The message id the node logged at reception for rcpt (the log is written once a second)."""
        def find():
            for r in self.node.log_records():
                if r["type"] == "Reception" and r.get("recipient") == rcpt:
                    return r["id"]
            return None
        mid = wait_for(find, 10)
        self.assertTrue(mid, "no Reception record for %s" % rcpt)
        return mid

    def metric(self, name):
        code, body = self.node.http("GET", "/metrics")
        self.assertEqual(code, 200)
        m = re.search(r'^%s\{role="spool"[^}]*\} (\d+)' % re.escape(name), body.decode(), re.M)
        return int(m.group(1)) if m else None

    def segments(self):
        d = os.path.join(self.node.data_dir, "spool", "bodylog")
        return sorted(f for f in os.listdir(d) if f.endswith(".blog")) if os.path.isdir(d) else []

    def delivered_bodies(self):
        out = {}
        with self.sink.lock:
            for _, rcpts, data in self.sink.messages:
                body = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
                for r in rcpts:
                    out[r] = body
        return out


class BodyLogTest(BodyLogCase):
    def test_bodies_survive_a_restart_arrive_byte_exact_and_the_segment_goes(self):
        self.start()
        sizes = [600, 5000, 20000, 70000, 3000, 150000]
        sent = self.send(24, sizes)
        # every message was tried once and deferred: all of them wait in the spool
        self.assertTrue(wait_for(lambda: len(self.sink.replied) >= 24, 30), "attempts: %d" % len(self.sink.replied))
        segs = self.segments()
        self.assertEqual(len(segs), 1, segs)
        self.assertEqual(self.metric("ringmail_body_log_segments"), 1)
        size = os.path.getsize(os.path.join(self.node.data_dir, "spool", "bodylog", segs[0]))
        # inspect-message says where each body is: the segment file's number and the record's offset
        for i, where in ((0, "rocksdb"), (2, "body_log"), (5, "body_log")):
            mid = self.message_id("r%d@dest.test" % i)
            doc = json.loads(self.node.ringctl("inspect-message", mid, "--json", check=True).stdout)
            self.assertEqual(doc["body_store"]["where"], where, doc["body_store"])
            if where == "body_log":
                self.assertEqual(doc["body_store"]["segment"] + ".blog", segs[0])
                self.assertIsInstance(doc["body_store"]["offset"], int)
        big = sum(len(b) for b in sent.values() if len(b) >= 4096)
        self.assertGreaterEqual(size, big, "the segment holds the big bodies")
        self.assertTrue(wait_for(lambda: self.metric("ringmail_body_log_bytes") == size, 5))

        self.node.stop()
        self.sink.data_reply = None
        self.node.start()
        self.assertTrue(wait_for(lambda: len(self.delivered_bodies()) == 24, 60),
                        "delivered %d of 24" % len(self.delivered_bodies()))
        got = self.delivered_bodies()
        for rcpt, body in sent.items():
            self.assertEqual(got[rcpt], body.replace(b"\r\n", b"\n"), "%s arrived changed" % rcpt)
        # nobody points into the old segment any more: the sweep unlinks it (the restarted spool made none)
        self.assertTrue(wait_for(lambda: self.segments() == [], 45), "segments left: %s" % self.segments())
        self.assertTrue(wait_for(lambda: self.metric("ringmail_body_log_segments") == 0, 5))
        self.assertEqual(self.metric("ringmail_body_log_read_errors_total"), 0)

    def test_a_damaged_body_is_never_delivered_and_is_reported(self):
        self.start()
        sent = self.send(2, [9000, 12000])
        self.assertTrue(wait_for(lambda: len(self.sink.replied) >= 2, 30))
        seg = os.path.join(self.node.data_dir, "spool", "bodylog", self.segments()[0])
        with open(seg, "r+b") as f:
            data = f.read()
            at = data.index(b"x0 ") + 10  # inside the first message's body
            f.seek(at)
            f.write(bytes([data[at] ^ 0x20]))
        self.sink.data_reply = None
        self.assertTrue(wait_for(lambda: "r1@dest.test" in self.delivered_bodies(), 30), "the intact one arrives")
        self.assertTrue(wait_for(lambda: (self.metric("ringmail_body_log_read_errors_total") or 0) >= 1, 20))
        time.sleep(3)  # retries every 1-2 s: the damaged one must still not arrive
        self.assertNotIn("r0@dest.test", self.delivered_bodies())
        self.assertIn("body does not match its hash", self.node.log())
        # inspect-message --body says so too, instead of an empty body
        doc = json.loads(self.node.ringctl("inspect-message", self.message_id("r0@dest.test"), "--body", "--json",
                                           check=True).stdout)
        self.assertEqual(doc["body_store"]["where"], "body_log")
        self.assertIn("body does not match its hash", doc.get("body_error", ""))
        text = self.node.ringctl("inspect-message", self.message_id("r0@dest.test"), "--body", check=True).stdout
        self.assertIn("body unreadable:", text)
        self.assertIn("body in:     body log, segment", text)
        self.assertRegex(self.node.log(), r"body log: segment [0-9a-f]{16} offset \d+")

    def test_small_segments_roll_are_swept_and_recycled_under_the_seccomp_filter(self):
        # 1 MiB segments: about 4 MB of bodies fill several; once delivered, one dead segment is kept as the
        # spare (renamed to the next number, in the spool under its seccomp filter) and the others go
        self.start(spool='body_log_segment_size = "1MiB"')
        self.sink.data_reply = None
        sent = self.send(40, [100000])
        self.assertTrue(wait_for(lambda: len(self.delivered_bodies()) == 40, 60))
        self.assertTrue(wait_for(lambda: (self.metric("ringmail_body_log_recycled_total") or 0) >= 1 and
                                 len(self.segments()) <= 2, 45), "segments: %s" % self.segments())
        # the next bodies are written over the spare
        more = self.send(12, [100000], first=40)
        self.assertTrue(wait_for(lambda: len(self.delivered_bodies()) == 52, 60))
        got = self.delivered_bodies()
        for rcpt, body in list(sent.items()) + list(more.items()):
            self.assertEqual(got[rcpt], body.replace(b"\r\n", b"\n"), rcpt)
        self.assertEqual(self.metric("ringmail_body_log_read_errors_total"), 0)

    def test_body_log_off_keeps_bodies_in_rocksdb(self):
        self.start(spool="body_log = false")
        self.sink.data_reply = None
        sent = self.send(6, [5000, 40000])
        self.assertTrue(wait_for(lambda: len(self.delivered_bodies()) == 6, 30))
        got = self.delivered_bodies()
        for rcpt, body in sent.items():
            self.assertEqual(got[rcpt], body.replace(b"\r\n", b"\n"))
        self.assertEqual(self.segments(), [])
        self.assertEqual(self.metric("ringmail_body_log_segments"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()
