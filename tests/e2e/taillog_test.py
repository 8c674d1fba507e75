"""ringctl tail-log end to end (issue 10): the message log, filtered by the node, and followed live, against a
real node with real traffic: smtplib -> node -> a recording sink (aiosmtpd) on 127.0.0.2, MX records from a
real DNS server (unbound). good.test and other.test both have their MX on the sink; the sink refuses
permfail* recipients with 550 (a Bounce record).

    RINGMAIL_BUILD_DIR=/tmp/build /usr/bin/python3 tests/e2e/taillog_test.py -k follow
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "taillog", "timeout": 180}

MAX_FOLLOWERS = 16  # SUPERVISOR_LOGS_MAX_FOLLOWERS


class Follower:
    """`ringctl tail-log --follow ...` in the background; every stdout line with the monotonic time it came."""

    def __init__(self, node, *args):
        self.lines = []
        self.stopped = None
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [os.path.join(BUILD_DIR, "ringctl"), "--endpoint", node.endpoint, "--data-dir", node.data_dir,
             "tail-log", "--follow"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append((time.monotonic(), line.rstrip("\n")))

    def records(self):
        with self.lock:
            return [(t, json.loads(line)) for t, line in self.lines]

    def stop(self):
        if self.stopped is not None:
            return self.stopped
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        self.thread.join(timeout=5)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        self.stopped = (rc, err)
        return self.stopped


def raw_follow(node, query="follow=1&limit=0"):
    """A follower as a bare socket: the request sent, the socket returned (its answer read by the caller)."""
    s = socket.create_connection(("127.0.0.1", node.admin_port), timeout=10)
    s.sendall(("GET /api/v1/logs?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n\r\n"
               % (query, node.admin_port, node.token())).encode())
    return s


def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class TailLogCase(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.good.test.",
        "other.test. 60 IN MX 10 mx.good.test.",
        "mx.good.test. 60 IN A 127.0.0.2",
    ]

    def start(self, log_extra=""):
        port = free_udp_tcp_port("127.0.0.2")
        self.sink = self.peer(Sink("127.0.0.2", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        self.node = Node(egress=eg, park_delivery=False)
        extra = '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        if log_extra:
            extra += "[log]\n" + log_extra
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        self.followers = []
        self.addCleanup(self.stop_followers)
        return self.node

    def stop_followers(self):
        for f in self.followers:
            f.stop()

    def follow(self, *args):
        f = Follower(self.node, *args)
        self.followers.append(f)
        return f

    def send(self, rcpt, sender="s@sender.test"):
        smtp_send(self.node.smtp_port, sender, rcpt, b"Subject: t\r\n\r\nhello\r\n")

    def tail(self, *args):
        p = self.node.ringctl("tail-log", *args, check=True)
        return [json.loads(line) for line in p.stdout.splitlines()] if "--json" in args else p.stdout

    def wait_logged(self, typ, rcpt, timeout=15):
        wait_for(lambda: any(r["type"] == typ and r.get("recipient") == rcpt for r in self.node.log_records()),
                 timeout, what="%s of %s in the log" % (typ, rcpt))

    def wait_registered(self, n=1):
        """Give the followers' requests time to reach the node (their backlog is empty with --limit 0)."""
        time.sleep(0.5)


class LimitTest(TailLogCase):
    def test_limit_returns_the_last_matching_records_filtered_by_type_domain_and_queue(self):
        node = self.start()
        for i in range(4):
            self.send("user%d@good.test" % i)
        self.send("o1@other.test")
        self.send("permfail1@good.test", sender="")  # the null sender: no DSN (a second Bounce)
        self.wait_logged("Delivery", "o1@other.test")
        self.wait_logged("Bounce", "permfail1@good.test")
        for i in range(4):
            self.wait_logged("Delivery", "user%d@good.test" % i)
        time.sleep(1.5)  # every record flushed (flush interval 1 s)
        logged = node.log_records()

        # the last N of the type, oldest first, exactly as zstdcat shows them
        deliveries = [r for r in logged if r["type"] == "Delivery"]
        got = self.tail("--type", "delivery", "--limit", "3", "--json")
        self.assertEqual(got, deliveries[-3:])

        # domain: the recipient's domain, case-insensitive
        got = self.tail("--domain", "OTHER.test", "--json")
        self.assertEqual(got, [r for r in logged if r.get("recipient", "").endswith("@other.test")])
        self.assertEqual({r["type"] for r in got}, {"Reception", "Delivery"})

        got = self.tail("--type", "Bounce", "--json")
        self.assertEqual([r["recipient"] for r in got], ["permfail1@good.test"])
        self.assertEqual(got[0]["response"]["code"], 550)

        queue = deliveries[-1]["queue"]
        got = self.tail("--queue", queue, "--type", "Delivery", "--json")
        self.assertTrue(got)
        self.assertTrue(all(r["queue"] == queue and r["type"] == "Delivery" for r in got), got)

        # default: the last 20 records of every type
        got = self.tail("--json")
        self.assertEqual(got, logged[-20:])
        self.assertEqual(self.tail("--limit", "0", "--json"), [])

        # the human form: one line per record, at most 100 columns, no colour when not on a terminal
        text = self.tail("--type", "Delivery", "--limit", "3")
        lines = text.splitlines()
        self.assertEqual(len(lines), 3, text)
        for line, rec in zip(lines, deliveries[-3:]):
            self.assertLessEqual(len(line), 100, line)
            self.assertNotIn("\033", line)
            self.assertIn("Delivery", line)
            self.assertIn(rec["recipient"], line)
            self.assertIn("250", line)

    def test_bad_arguments_get_a_clear_error(self):
        node = self.start()
        p = node.ringctl("tail-log", "--limit", "10001")
        self.assertEqual(p.returncode, 1)
        self.assertIn("limit= is a whole number from 0 to 10000", p.stderr)
        p = node.ringctl("tail-log", "--type", "Deli very")
        self.assertEqual(p.returncode, 1)
        self.assertIn("type=", p.stderr)
        p = node.ringctl("tail-log", "--bogus")
        self.assertEqual(p.returncode, 2)
        code, body = node.http("GET", "/api/v1/logs?limit=-1")
        self.assertEqual(code, 400)
        self.assertFalse(json.loads(body)["ok"])
        code, body = node.http("GET", "/api/v1/logs?follow=maybe")
        self.assertEqual(code, 400)


class FollowTest(TailLogCase):
    def test_follow_sees_a_new_delivery_within_a_second(self):
        node = self.start()
        f = self.follow("--type", "Delivery", "--limit", "0", "--json")
        self.wait_registered()
        for i in range(3):
            rcpt = "live%d@good.test" % i
            self.send(rcpt)
            wait_for(lambda: any(r["recipient"] == rcpt for _, r in f.records()), 10,
                     what="the follower saw the Delivery of %s" % rcpt)
            seen = [t for t, r in f.records() if r["recipient"] == rcpt][0]
            with self.sink.lock:
                received = [d[0] for d, m in zip(self.sink.deliveries, self.sink.messages) if rcpt in m[1]][0]
            lag = seen - received
            print("follower lag for %s: %.3f s" % (rcpt, lag), file=sys.stderr)
            self.assertLess(lag, 1.0, "the follower saw %s %.3f s after the sink received it" % (rcpt, lag))
            time.sleep(0.3)
        self.assertTrue(all(r["type"] == "Delivery" for _, r in f.records()))
        self.assertEqual(len(f.records()), 3)
        rc, err = f.stop()
        self.assertEqual(rc, 0, err)  # Ctrl-C ends --follow cleanly
        self.assertEqual(err, "")
        node.wait_all_ready()

    def test_follow_starts_with_the_backlog_and_goes_on_across_segment_rotation(self):
        node = self.start(log_extra='segment_age = "1s"\n')
        self.send("before@good.test")
        self.wait_logged("Delivery", "before@good.test")
        f = self.follow("--domain", "good.test", "--type", "Delivery", "--limit", "1", "--json")
        wait_for(lambda: f.records(), 10, what="the backlog")
        self.assertEqual(f.records()[0][1]["recipient"], "before@good.test")
        sent = []
        for i in range(5):  # over ~5 s: the active segment is finished and a new one begun several times
            rcpt = "rot%d@good.test" % i
            self.send(rcpt)
            self.send("x%d@other.test" % i)
            sent.append(rcpt)
            time.sleep(1.1)
        wait_for(lambda: len(f.records()) == 1 + len(sent), 15, what="every Delivery followed")
        self.assertEqual([r["recipient"] for _, r in f.records()], ["before@good.test"] + sent)
        segments = [n for n in os.listdir(os.path.join(node.data_dir, "logs")) if n.endswith(".jsonl.zst")]
        self.assertGreaterEqual(len(segments), 2, "the log did not rotate: %s" % segments)

    def test_followers_are_bounded_and_one_going_away_does_not_hurt_the_node(self):
        node = self.start()
        socks = [raw_follow(node) for _ in range(MAX_FOLLOWERS)]
        for s in socks:
            self.assertIn(b" 200 ", read_head(s).split(b"\r\n")[0])
        extra = raw_follow(node)
        head = read_head(extra)
        extra.close()
        self.assertIn(b" 503 ", head.split(b"\r\n")[0], head)
        self.assertIn(b"too many tail-log followers", head + b"")
        p = node.ringctl("tail-log", "--follow")
        self.assertEqual(p.returncode, 1)
        self.assertIn("too many tail-log followers", p.stderr)
        # half of them hang up without a word: their places come free
        for s in socks[:8]:
            s.close()
        socks = socks[8:]
        f = wait_for(lambda: (lambda p: p if p.proc.poll() is None and not self._refused(p) else None)(
            self.follow("--limit", "0", "--json")), 10, step=0.3, what="a follower accepted again")
        self.wait_registered()
        self.send("after@good.test")
        wait_for(lambda: any(r["recipient"] == "after@good.test" and r["type"] == "Delivery"
                             for _, r in f.records()), 10, what="the new follower saw the delivery")
        # the remaining raw followers got it too
        for s in socks:
            s.settimeout(10)
            data = b""
            while b"after@good.test" not in data:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "a follower's stream ended")
                data += chunk
            s.close()
        self.assertEqual(node.ringctl("status").returncode, 0)
        node.wait_all_ready()
        self.assertEqual(node.crashes(), [])

    def test_a_node_that_stops_ends_its_followers_streams(self):
        node = self.start()
        f = self.follow("--limit", "0", "--json")
        raw = raw_follow(node)
        self.assertIn(b" 200 ", read_head(raw).split(b"\r\n")[0])
        self.wait_registered()
        t0 = time.monotonic()
        node.stop()
        self.assertEqual(node.proc.returncode, 0, node.log()[-3000:])
        self.assertLess(time.monotonic() - t0, 10)
        f.proc.wait(timeout=5)  # the stream ended by itself: no Ctrl-C needed
        self.assertEqual(f.stop()[0], 0)
        raw.settimeout(5)
        while raw.recv(65536):
            pass
        raw.close()
        self.assertEqual(node.crashes(), [])

    def _refused(self, follower):
        time.sleep(0.3)
        if follower.proc.poll() is not None:
            follower.stop()
            return True
        return False


if __name__ == "__main__":
    import unittest
    unittest.main()
