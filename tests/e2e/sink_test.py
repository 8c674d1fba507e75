"""End-to-end tests of ringmail-sink, the io_uring SMTP sink: driven by Postfix's smtp-source, by the
project's ringmail-gen (two workers behind SO_REUSEPORT), by swaks for the scripted faults, and by raw
sockets written here for the random faults, the slow reader and the hostile inputs (a 10 MB line, an
endless DATA). Every count in the sink's JSON summary is checked against what the client saw, and
the --record lines against what was sent.

    /usr/bin/python3 tests/e2e/sink_test.py -k faults
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR  # noqa: E402
from ringmail_sink import SINK, Sink  # noqa: E402

# meson: see discover.py
MESON = {"tools": ["sink", "gen"], "node": False, "exclusive": True}

GEN = os.path.join(BUILD_DIR, "tools", "ringmail-gen")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SWAKS = shutil.which("swaks")


def proc_status(pid, key):
    """A /proc/PID/status value in KiB (VmRSS, VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class Client:
    """A line-oriented SMTP client on a raw socket: replies as (code, last line's text)."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def reply(self):
        text = []
        while True:
            try:
                line = self.f.readline(4096)
            except ConnectionResetError:
                line = b""
            if not line:
                return None, "closed"
            text.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), text[-1]

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.f.close()
        self.sock.close()


class SinkCase(unittest.TestCase):
    def setUp(self):
        if not os.access(SINK, os.X_OK):
            self.fail("%s not built" % SINK)
        self.tmp = tempfile.mkdtemp(prefix="ringmail-sink-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def sink(self, *options, workers=1, record=True):
        s = Sink(self.tmp, *options, workers=workers, record=record)
        self.addCleanup(s.kill)
        return s

    def run_tool(self, args, timeout=90):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.communicate()
            raise AssertionError("%s still running after %ds" % (args[0], timeout))
        return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def assert_invariant(self, summary, records):
        """Every accepted message has its record line, and the recipients add up."""
        self.assertEqual(len(records), summary["messages"], summary)
        self.assertEqual(sum(len(r["rcpts"]) for r in records), summary["recipients"], summary)


class ThroughputTest(SinkCase):
    def test_smtp_source_500_messages_20_sessions_counted_and_recorded(self):
        if not os.access(SMTP_SOURCE, os.X_OK):
            self.skipTest("smtp-source (postfix) not installed")
        lines = ["From: source@src.test", "To: sink@dst.test", "Subject: smtp-source run",
                 "Message-ID: <fixed.1@src.test>", "", "first body line", ".a line with a leading dot", "."]
        lines += ["filler %04d " % i + "x" * 60 for i in range(40)]
        path = os.path.join(self.tmp, "message.txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # as delivered: CRLF line ends, un-stuffed, plus the empty line smtp-source puts before the dot
        size = sum(len(line) + 2 for line in lines) + 2
        sink = self.sink()
        rc, out, err = self.run_tool([SMTP_SOURCE, "-s", "20", "-m", "500", "-F", path, "-M", "src.test",
                                      "-f", "source@src.test", "-t", "sink@dst.test", "127.0.0.1:%d" % sink.port])
        self.assertEqual(rc, 0, err)
        s = sink.stop()
        self.assertEqual((s["messages"], s["recipients"], s["tempfail"], s["permfail"], s["421"],
                          s["disconnects"], s["rejected"], s["errors"]), (500, 500, 0, 0, 0, 0, 0, 0), s)
        self.assertEqual(s["connections"], 500 + 1, s)  # one per message, plus the readiness probe
        self.assertGreater(s["bytes"], 500 * size)
        self.assertGreater(s["msgs_per_s"], 0)
        recs = sink.records()
        self.assertEqual(len(recs), 500)
        self.assert_invariant(s, recs)
        for r in recs:
            self.assertEqual(r["size"], size, r)
            self.assertEqual((r["mail_from"], r["rcpts"]), ("source@src.test", ["sink@dst.test"]), r)
            self.assertEqual((r["subject"], r["message_id"]), ("smtp-source run", "<fixed.1@src.test>"), r)
            self.assertEqual(r["headers"], "\r\n".join(lines[:4]) + "\r\n")

    def test_ringmail_gen_to_two_workers_counts_match(self):
        if not os.access(GEN, os.X_OK):
            self.fail("%s not built" % GEN)
        sink = self.sink(workers=2)
        rc, out, err = self.run_tool([GEN, "--json", "--target", "127.0.0.1:%d" % sink.port, "--concurrency", "16",
                                      "--message-count", "400", "--recipients", "2",
                                      "--messages-per-connection", "5", "--body-size", "4k"])
        self.assertEqual(rc, 0, err)
        g = json.loads(out.strip().splitlines()[-1])
        self.assertEqual((g["sent"], g["failed"]), (400, 0), g)
        s = sink.stop()
        self.assertEqual((s["messages"], s["recipients"], s["errors"], s["rejected"]), (400, 800, 0, 0), s)
        self.assertEqual(s["connections"], g["connections"] + 1, (s, g))
        self.assertEqual(len(s["worker_connections"]), 2)
        self.assertEqual(sum(s["worker_connections"]), s["connections"])
        # 81 connections hashed over two SO_REUSEPORT sockets: both workers serve
        self.assertTrue(all(n > 0 for n in s["worker_connections"]), s)
        recs = sink.records()
        self.assert_invariant(s, recs)
        self.assertEqual(len({r["subject"] for r in recs}), 400, "every message recorded once")
        self.assertTrue(all(r["message_id"] and r["size"] > 4000 for r in recs))


class FaultTest(SinkCase):
    def swaks(self, port, to, *extra):
        if not SWAKS:
            self.skipTest("swaks not installed")
        return self.run_tool([SWAKS, "--server", "127.0.0.1:%d" % port, "--from", "sender@src.test",
                              "--to", to, "--timeout", "10"] + list(extra), timeout=30)

    def test_scripted_faults_by_local_part(self):
        sink = self.sink()
        rc, out, _ = self.swaks(sink.port, "tempfail@dst.test")
        self.assertIn("<** 451 4.3.0", out)
        self.assertNotIn("354", out)
        rc, out, _ = self.swaks(sink.port, "permfail7@dst.test")
        self.assertIn("<** 550 5.1.1", out)
        rc, out, _ = self.swaks(sink.port, "421@dst.test")
        self.assertIn("<** 421 4.7.0", out)
        self.assertNotIn("221", out, "the session closed after the 421")
        rc, out, err = self.swaks(sink.port, "disconnect-in-data@dst.test")
        self.assertIn("354 ", out)
        self.assertIn("closed connection unexpectedly", out + err)
        self.assertNotIn("250 2.0.0", out)
        self.assertNotEqual(rc, 0)
        # a message to a good and two scripted recipients goes through for the good one only
        rc, out, _ = self.swaks(sink.port, "ok@dst.test,TempFail2@dst.test,permfail@dst.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("250 2.0.0 Ok: queued", out)
        s = sink.stop()
        self.assertEqual((s["tempfail"], s["permfail"], s["421"], s["disconnects"], s["messages"], s["recipients"]),
                         (2, 2, 1, 1, 1, 1), s)
        recs = sink.records()
        self.assert_invariant(s, recs)
        self.assertEqual((recs[0]["mail_from"], recs[0]["rcpts"]), ("sender@src.test", ["ok@dst.test"]))

    def draw(self, port, n):
        """n RCPTs, one session as long as the sink keeps it: a list of (code, text) replies."""
        out = []
        c = None
        while len(out) < n:
            if c is None:
                c = Client(port)
                self.assertEqual(c.reply()[0], 220)
                self.assertEqual(c.cmd("EHLO client.test")[0], 250)
                self.assertEqual(c.cmd("MAIL FROM:<s@src.test>")[0], 250)
            code, text = c.cmd("RCPT TO:<user%d@dst.test>" % len(out))
            self.assertIsNotNone(code, "the session closed without a reply")
            out.append((code, text))
            if code == 421:
                self.assertEqual(c.reply(), (None, "closed"), "the 421 closes the session")
                c.close()
                c = None
        if c is not None:
            c.cmd("QUIT")
            c.close()
        return out

    def test_random_tempfail_50_percent_is_seeded_and_uses_the_responses_file(self):
        texts = ["421 4.7.28 Gmail-like: an unusual rate of unsolicited mail from your IP address",
                 "421 4.7.0 [TS04] Messages from x.x.x.x temporarily deferred due to user complaints",
                 "451 4.7.1 Greylisted, come back later"]
        path = os.path.join(self.tmp, "responses.txt")
        with open(path, "w") as f:
            f.write("# provider-like replies\n\n" + "\n".join(texts) + "\n550 5.7.1 unused here\n")
        expect = {t.replace("x.x.x.x", "127.0.0.1") for t in texts}
        runs = []
        for seed in (1, 1, 2):
            sink = self.sink("--tempfail", "50%", "--seed", seed, "--responses", path)
            replies = self.draw(sink.port, 200)
            s = sink.stop()
            fails = [r for r in replies if r[0] != 250]
            self.assertTrue(60 <= len(fails) <= 140, len(fails))
            for code, text in fails:
                self.assertIn(text, expect)
            self.assertTrue(all(text == "250 2.1.5 Ok" for code, text in replies if code == 250))
            self.assertEqual(s["tempfail"], len(fails), s)
            self.assertEqual(s["421"], sum(1 for r in fails if r[0] == 421), s)
            self.assertGreater(s["421"], 0)
            self.assertEqual((s["permfail"], s["messages"]), (0, 0), s)
            self.assertEqual(len({r[1] for r in fails}), 3, "every line of the file is drawn")
            runs.append([r[0] for r in replies])
        self.assertEqual(runs[0], runs[1], "the same seed repeats the run")
        self.assertNotEqual(runs[0], runs[2], "another seed draws differently")

    def test_built_in_responses_for_permfail(self):
        sink = self.sink("--permfail", "100%")
        replies = self.draw(sink.port, 20)
        s = sink.stop()
        self.assertTrue(all(r[0] // 100 == 5 for r in replies), replies)
        self.assertEqual(s["permfail"], 20, s)


class BoundsTest(SinkCase):
    def hwm_growth_ok(self, sink, base, what):
        grown = proc_status(sink.proc.pid, "VmHWM") - base
        self.assertLess(grown, 32 * 1024, "%s: peak RSS grew by %d KiB" % (what, grown))

    def blast(self, sock, data, total):
        """Send `data` repeatedly, up to `total` bytes or until the peer stops taking them."""
        sent = 0
        try:
            while sent < total:
                sock.sendall(data)
                sent += len(data)
        except OSError:
            pass
        return sent

    def test_10mb_line_and_endless_data_are_cut_with_bounded_memory(self):
        sink = self.sink("--max-size", "1m")
        base = proc_status(sink.proc.pid, "VmHWM")
        # a 600-byte command line: refused, the session goes on
        c = Client(sink.port)
        c.reply()
        self.assertEqual(c.cmd("NOOP " + "x" * 600)[0], 500)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        # a 10 MB command line without an end: 500 and the session is closed early
        sent = self.blast(c.sock, b"A" * 65536, 10 * 1024 * 1024)
        self.assertEqual(c.reply(), (500, "500 5.5.2 Line too long, closing the connection"))
        self.assertEqual(c.reply(), (None, "closed"))
        c.close()
        self.assertLess(sent, 10 * 1024 * 1024, "cut before the whole line was read")
        # an endless DATA, and a DATA that is one 10 MB line: 552 and closed past --max-size
        for chunk in (b"endless data line, again and again and again\r\n" * 1000, b"B" * 65536):
            c = Client(sink.port)
            c.reply()
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@src.test>")
            c.cmd("RCPT TO:<r@dst.test>")
            self.assertEqual(c.cmd("DATA")[0], 354)
            sent = self.blast(c.sock, chunk, 64 * 1024 * 1024)
            self.assertLess(sent, 64 * 1024 * 1024, "the sink stopped reading")
            self.assertEqual(c.reply()[0], 552)
            self.assertEqual(c.reply(), (None, "closed"))
            c.close()
        self.hwm_growth_ok(sink, base, "hostile input")
        # the sink still serves
        c = Client(sink.port)
        c.reply()
        for line, code in (("EHLO client.test", 250), ("MAIL FROM:<s@src.test>", 250), ("RCPT TO:<r@dst.test>", 250),
                           ("DATA", 354), ("Subject: after\r\n\r\nbody\r\n.", 250), ("QUIT", 221)):
            self.assertEqual(c.cmd(line)[0], code, line)
        c.close()
        s = sink.stop()
        self.assertEqual((s["messages"], s["rejected"], s["errors"]), (1, 2, 2), s)
        self.assert_invariant(s, sink.records())

    def test_pipelined_commands_answered_in_order_with_strict_grammar(self):
        sink = self.sink()
        c = Client(sink.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<s@src.test>")[0], 503)  # before EHLO
        c.sock.sendall(b"EHLO client.test\r\nRCPT TO:<r@dst.test>\r\nMAIL FROM: <s@src.test>\r\n"
                       b"RCPT TO:<bad address>\r\nRCPT TO:<r1@dst.test>\r\nRCPT TO:<r2@dst.test> NOTIFY=NEVER\r\n"
                       b"RCPT TO:<r3@dst.test>\r\nDATA\r\n")
        codes = [c.reply()[0] for _ in range(8)]
        self.assertEqual(codes, [250, 503, 250, 501, 250, 555, 250, 354])
        c.sock.sendall(b"Subject: pipelined\r\n\r\n..stuffed\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual([c.reply()[0] for _ in range(4)], [250, 250, 250, 221])
        c.close()
        s = sink.stop()
        recs = sink.records()
        self.assert_invariant(s, recs)
        self.assertEqual(recs[0]["rcpts"], ["r1@dst.test", "r3@dst.test"])
        self.assertEqual(recs[0]["size"], len(b"Subject: pipelined\r\n\r\n.stuffed\r\n"))
        self.assertEqual(s["errors"], 4, s)

    def test_slow_reader_paces_data(self):
        sink = self.sink("--slow-reader", 50000)
        c = Client(sink.port, timeout=30)
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<s@src.test>")
        c.cmd("RCPT TO:<r@dst.test>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        body = b"Subject: slow\r\n\r\n" + b"y" * 78 + b"\r\n"
        body = body * (200000 // len(body))
        t0 = time.monotonic()
        t = threading.Thread(target=c.sock.sendall, args=(body + b".\r\n",))
        t.start()
        code = c.reply()[0]
        elapsed = time.monotonic() - t0
        t.join(5)
        c.close()
        self.assertEqual(code, 250)
        # 200 kB at 50 kB/s: about 4 s, less what the kernel buffers absorbed at once
        self.assertGreater(elapsed, 2.5)
        self.assertLess(elapsed, 15)
        s = sink.stop(signal.SIGINT)
        self.assertEqual(s["messages"], 1, s)

    def test_idle_timeout_and_duration_end_the_run_with_a_summary(self):
        sink = self.sink("--timeout", 1, "--duration", 3)
        c = Client(sink.port)
        t0 = time.monotonic()
        self.assertEqual(c.reply()[0], 220)
        code, text = c.reply()
        waited = time.monotonic() - t0
        self.assertEqual(code, 421, text)
        self.assertIn("4.4.2", text)
        self.assertTrue(0.8 < waited < 2.5, waited)
        self.assertEqual(c.reply(), (None, "closed"))
        c.close()
        try:
            sink.proc.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError("--duration 3 did not end the run")
        self.assertEqual(sink.proc.returncode, 0)
        sink.out.seek(0)
        s = json.loads(sink.out.read().splitlines()[-1])
        self.assertTrue(2.9 < s["elapsed_s"] < 4.5, s)
        self.assertEqual((s["timeouts"], s["connections"]), (1, 2), s)


class LatencyTest(SinkCase):
    """ringmail-gen's X-Gen-Sent stamp against the sink's arrival clock, in --record and in --latency."""

    def gen(self, port, *args):
        if not os.access(GEN, os.X_OK):
            self.fail("%s not built" % GEN)
        rc, out, err = self.run_tool([GEN, "--json", "--target", "127.0.0.1:%d" % port] + [str(a) for a in args])
        self.assertEqual(rc, 0, err)
        return json.loads(out.strip().splitlines()[-1])

    def send_raw(self, port, message):
        c = Client(port)
        c.reply()
        for line, code in (("EHLO client.test", 250), ("MAIL FROM:<s@src.test>", 250), ("RCPT TO:<r@dst.test>", 250),
                           ("DATA", 354), (message + "\r\n.", 250), ("QUIT", 221)):
            self.assertEqual(c.cmd(line)[0], code, line)
        c.close()

    def test_gen_to_record_has_send_stamp_before_arrival(self):
        sink = self.sink(workers=2)
        t0 = time.time_ns() // 1000
        g = self.gen(sink.port, "--concurrency", 8, "--message-count", 300, "--body-size", "2k", "--rate", "600/s")
        t1 = time.time_ns() // 1000
        self.send_raw(sink.port, "Subject: no stamp\r\n\r\nbody")
        s = sink.stop()
        recs = sink.records()
        self.assert_invariant(s, recs)
        self.assertEqual((g["sent"], s["messages"]), (300, 301), (g, s))
        self.assertIsNone(s["delivery_latency_us"], "no histogram without --latency")
        stamped = [r for r in recs if r["gen_sent_us"] is not None]
        self.assertEqual(len(stamped), 300)
        self.assertEqual([r["subject"] for r in recs if r["gen_sent_us"] is None], ["no stamp"])
        for r in recs:
            self.assertIsInstance(r["arrived_us"], int, r)
            self.assertTrue(t0 <= r["arrived_us"], r)
        for r in stamped:
            self.assertTrue(r["headers"].startswith("X-Gen-Sent: %d\r\n" % r["gen_sent_us"]), r["headers"])
            # sent within the client's run, arrived after it was sent and before the client ended
            self.assertTrue(t0 <= r["gen_sent_us"] <= r["arrived_us"] <= t1, (t0, t1, r))
            self.assertLess(r["arrived_us"] - r["gen_sent_us"], 10 * 1000 * 1000, r)
        # a stamp per message, not per run: 300 messages paced at 600/s span about half a second
        sent = sorted(r["gen_sent_us"] for r in stamped)
        self.assertGreater(sent[-1] - sent[0], 300 * 1000, "stamps span %d us" % (sent[-1] - sent[0]))

    def test_latency_histogram_without_record(self):
        sink = self.sink("--latency", workers=2, record=False)
        g = self.gen(sink.port, "--concurrency", 8, "--message-count", 400, "--body-size", "4k")
        # one message with no stamp, one whose stamp says it was sent 2 s ago: the maximum must show it
        self.send_raw(sink.port, "Subject: no stamp\r\n\r\nbody")
        self.send_raw(sink.port, "Received: from a by b; Sat, 28 Nov 2026 07:37:19 +0000\r\n"
                                 "X-Gen-Sent: %d\r\nSubject: old\r\n\r\nbody" % (time.time_ns() // 1000 - 2000000))
        s = sink.stop()
        self.assertFalse(os.path.exists(sink.record), "--latency alone writes no file")
        self.assertEqual((g["sent"], s["messages"]), (400, 402), (g, s))
        lat = s["delivery_latency_us"]
        self.assertEqual((lat["count"], lat["missing"]), (401, 1), lat)
        self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
        self.assertTrue(2000000 <= lat["max"] < 2000000 + 5000000, lat)
        # gen -> sink directly: the delivery p99 cannot be far from the client's own time-to-250 p99
        self.assertLess(lat["p99"], 2000000, lat)
        self.assertLessEqual(lat["p50"], g["latency_us"]["max"] * 2 + 1000, (lat, g["latency_us"]))


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
