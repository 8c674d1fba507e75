"""End-to-end tests of ringmail-gen, the SMTP load generator: against Postfix's smtp-sink (which dumps
every message it takes to a file, so its own count is checked against the generator's), against
smtp-sink told to refuse commands, against a real ringmail node over STARTTLS, and against hostile
servers written here (overlong reply lines, endless continuation lines, garbage, disconnects).

    /usr/bin/python3 tests/e2e/gen_test.py -k hostile
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, free_port, pid_alive, wait_for  # noqa: E402

# meson: see discover.py
MESON = {"tools": ["gen"], "exclusive": True}

GEN = os.path.join(BUILD_DIR, "tools", "ringmail-gen")


def smtp_sink_path():
    """smtp-sink from the usual places, else from Postfix's daemon_directory (postconf is slow: last)."""
    for p in ("/usr/sbin/smtp-sink", shutil.which("smtp-sink")):
        if p and os.access(p, os.X_OK):
            return p
    try:
        d = subprocess.run(["postconf", "-h", "daemon_directory"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    p = os.path.join(d, "smtp-sink") if d else ""
    return p if p and os.access(p, os.X_OK) else None


def run_gen(*args, timeout=60):
    """Run the generator; returns (exit code, JSON summary or None, stderr, wall seconds, max RSS in KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen([GEN, "--json"] + [str(a) for a in args], stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise AssertionError("ringmail-gen still running after %ds: %r" % (timeout, args))
            time.sleep(0.01)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode("utf-8", "replace")
    summary = None
    lines = [line for line in stdout.splitlines() if line.strip()]
    if lines:
        summary = json.loads(lines[-1])
    return p.returncode, summary, stderr, wall, ru.ru_maxrss


class Sink:
    """smtp-sink on a loopback port, dumping each message to its own file under a temporary directory."""

    def __init__(self, *options):
        self.path = smtp_sink_path()
        self.tmp = tempfile.mkdtemp(prefix="ringmail-gen-sink-")
        os.chmod(self.tmp, 0o777)  # smtp-sink writes as nobody
        self.port = free_port()
        args = [self.path]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += ["-d", os.path.join(self.tmp, "%M.")] + list(options) + ["127.0.0.1:%d" % self.port, "100"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_for(self.listening, 5, what="smtp-sink listening")

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("smtp-sink exited: %s" % self.proc.stderr.read())
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def messages(self):
        """The message dumps; a file is complete once its blank line after the body is written."""
        out = []
        for root, _, files in os.walk(self.tmp):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    out.append(fh.read())
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class GenCase(unittest.TestCase):
    def setUp(self):
        if not os.access(GEN, os.X_OK):
            self.fail("%s not built" % GEN)

    def sink(self, *options):
        if not smtp_sink_path():
            self.skipTest("smtp-sink (postfix) not installed")
        s = Sink(*options)
        self.addCleanup(s.stop)
        return s

    def assert_latency_sane(self, summary):
        lat = summary["latency_us"]
        self.assertEqual(lat["count"], summary["sent"])
        if summary["sent"]:
            self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
            self.assertLess(lat["max"], 30 * 1000 * 1000, lat)


class SinkTest(GenCase):
    def check_200(self, per_connection):
        sink = self.sink()
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 10, "--message-count", 200,
                                   "--messages-per-connection", per_connection, "--body-size", "10k",
                                   "--domain", "a.test:3", "--domain", "b.test:1")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["attempted"], s["errors"]), (200, 0, 200, {}), s)
        self.assert_latency_sane(s)
        self.assertGreater(s["msgs_per_s"], 0)
        self.assertAlmostEqual(s["msgs_per_h"], s["msgs_per_s"] * 3600, delta=s["msgs_per_s"] * 3600 * 0.01 + 1)
        msgs = wait_for(lambda: (lambda m: m if len(m) >= 200 else None)(sink.messages()), 10,
                        what="200 dumps from smtp-sink")
        time.sleep(0.3)
        msgs = sink.messages()
        self.assertEqual(len(msgs), 200)
        subjects = set()
        domains = {"a.test": 0, "b.test": 0}
        for m in msgs:
            head, _, body = m.partition(b"\n\n")
            fields = dict(line.split(b": ", 1) for line in head.split(b"\n") if b": " in line)
            subjects.add(fields[b"Subject"])
            self.assertIn(b"Message-ID", fields)
            self.assertIn(b"Date", fields)
            domains[fields[b"X-Rcpt-Args"].decode().rstrip(">").split("@")[1]] += 1
            self.assertGreater(len(body), 10 * 1024 - 200)
            self.assertTrue(all(len(line) <= 78 for line in body.split(b"\n")))
        self.assertEqual(len(subjects), 200, "every message distinct")
        # 3:1 weights: b.test gets about a quarter (50 expected; binomial sd about 6)
        self.assertTrue(20 <= domains["b.test"] <= 80, domains)
        return s

    def test_sink_200_messages_with_connection_reuse(self):
        s = self.check_200(0)
        self.assertLessEqual(s["connections"], 10, s)

    def test_sink_200_messages_one_per_connection(self):
        s = self.check_200(1)
        self.assertEqual(s["connections"], 200, s)

    def test_body_file_is_normalised_and_dot_stuffed(self):
        sink = self.sink()
        tmp = tempfile.mkdtemp(prefix="ringmail-gen-body-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "body.eml")
        with open(path, "wb") as f:
            f.write(b"Subject: from a file\n\n.leading dot\nbare cr\rend.\n.\nlast")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 3,
                                   "--body-file", path, "--recipients", 3)
        self.assertEqual(rc, 0, err)
        self.assertEqual(s["sent"], 3, s)
        wait_for(lambda: len(sink.messages()) >= 3, 10, what="3 dumps")
        time.sleep(0.2)
        msgs = sink.messages()
        self.assertEqual(len(msgs), 3)
        for m in msgs:
            self.assertEqual(m.count(b"X-Rcpt-Args:"), 3)
            # smtp-sink un-stuffs: the original lines come back, a lone "." included
            self.assertIn(b"Subject: from a file\n\n.leading dot\nbare cr\nend.\n.\nlast\n", m)

    def test_each_message_stamped_with_its_send_time(self):
        sink = self.sink()
        tmp = tempfile.mkdtemp(prefix="ringmail-gen-body-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "body.eml")
        with open(path, "wb") as f:
            f.write(b"Subject: from a file\n\nbody line\n")
        t0 = time.time_ns() // 1000
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 2, "--message-count", 20,
                                   "--rate", "40/s", "--body-size", "1k")
        self.assertEqual(rc, 0, err)
        rc2, s2, err2, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 3, "--body-file", path)
        t1 = time.time_ns() // 1000
        self.assertEqual(rc2, 0, err2)
        self.assertEqual((s["sent"], s2["sent"]), (20, 3))
        wait_for(lambda: len(sink.messages()) >= 23, 10, what="23 dumps")
        time.sleep(0.2)
        synth, files = [], []
        for m in sink.messages():
            stamps = [line for line in m.split(b"\n") if line.startswith(b"X-Gen-Sent:")]
            self.assertEqual(len(stamps), 1, m[:400])
            value = stamps[0].split(b":", 1)[1].strip()
            self.assertTrue(value.isdigit(), stamps[0])
            self.assertTrue(t0 <= int(value) <= t1, (t0, int(value), t1))
            if b"Subject: from a file" in m:
                # on top of the file's own header, the rest of the file untouched
                self.assertIn(stamps[0] + b"\nSubject: from a file\n\nbody line\n", m)
                files.append(int(value))
            else:
                # first of the generated fields (smtp-sink puts its own X- and Received: fields above)
                self.assertIn(stamps[0] + b"\nFrom: <gen@ringmail-gen.test>\nTo: <", m)
                synth.append(int(value))
        self.assertEqual((len(synth), len(files)), (20, 3))
        # stamped per message: 20 messages paced at 40/s span about half a second
        self.assertGreater(max(synth) - min(synth), 300 * 1000, sorted(synth))

    def test_rate_paces_the_run(self):
        sink = self.sink()
        rc, s, err, wall, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 4,
                                      "--message-count", 20, "--rate", "20/s")
        self.assertEqual(rc, 0, err)
        self.assertEqual(s["sent"], 20)
        self.assertGreater(s["elapsed_s"], 0.8, s)
        self.assertLess(s["elapsed_s"], 3.0, s)

    def test_duration_run_stops_on_time(self):
        sink = self.sink()
        rc, s, err, wall, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 4,
                                      "--duration", "1.5")
        self.assertEqual(rc, 0, err)
        self.assertGreater(s["sent"], 0)
        self.assertEqual(s["failed"], 0, s)
        self.assertTrue(1.4 < s["elapsed_s"] < 3.5, s)
        time.sleep(0.3)
        self.assertEqual(len(sink.messages()), s["sent"])


class FaultTest(GenCase):
    def test_tempfail_rcpt_counted_by_code_with_keep_going(self):
        sink = self.sink("-r", "RCPT")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 3, "--message-count", 30,
                                   "--recipients", 2, "--keep-going")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["attempted"]), (0, 30, 30), s)
        self.assertEqual(s["errors"], {"450": 60}, s)
        time.sleep(0.2)
        self.assertEqual(len(sink.messages()), 0)

    def test_tempfail_rcpt_without_keep_going_stops_nonzero(self):
        sink = self.sink("-r", "RCPT")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--concurrency", 2, "--message-count", 50)
        self.assertNotEqual(rc, 0)
        self.assertEqual(s["sent"], 0)
        self.assertLessEqual(s["attempted"], 2, s)
        self.assertIn("450", s["errors"])
        self.assertIn("first error: 450", err)

    def test_refused_data_and_dot_counted_by_code(self):
        sink = self.sink("-f", "DATA")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 10)
        self.assertNotEqual(rc, 0)
        self.assertEqual(s["errors"], {"500": 1}, s)
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 10, "--keep-going")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["errors"]), (0, {"500": 10}), s)
        sink2 = self.sink("-f", ".")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink2.port, "--message-count", 10, "--keep-going",
                                   "--concurrency", 2)
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["errors"]), (0, 10, {"500": 10}), s)

    def test_421_and_disconnects_are_errors_and_connection_refused_too(self):
        sink = self.sink("-Q", "MAIL")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 5, "--keep-going")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["errors"], s["connections"]), (0, 5, {"421": 5}, 5), s)
        sink2 = self.sink("-q", "DATA")
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink2.port, "--message-count", 5, "--keep-going")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["errors"]), (0, 5, {"closed": 5}), s)
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % free_port(), "--message-count", 3, "--keep-going")
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["failed"], s["errors"], s["connections"]), (3, {"connect": 3}, 0), s)
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % free_port(), "--message-count", 3)
        self.assertNotEqual(rc, 0)

    def test_starttls_required_but_not_offered(self):
        sink = self.sink()
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % sink.port, "--message-count", 2, "--starttls")
        self.assertNotEqual(rc, 0)
        self.assertEqual(s["errors"], {"tls": 1}, s)
        self.assertEqual(len(sink.messages()), 0)


class NodeTest(GenCase):
    def test_ringmail_node_over_starttls(self):
        node = Node()
        self.addCleanup(node.cleanup)
        node.start()
        rc, s, err, _, _ = run_gen("--target", "127.0.0.1:%d" % node.smtp_port, "--concurrency", 5,
                                   "--message-count", 60, "--messages-per-connection", 20, "--starttls",
                                   "--recipients", 2, "--body-size", "20k", timeout=120)
        if rc != 0:
            sys.stderr.write(node.log()[-4000:])
        self.assertEqual(rc, 0, err)
        self.assertEqual((s["sent"], s["failed"], s["errors"]), (60, 0, {}), s)
        self.assertEqual(s["tls_sessions"], s["connections"], s)
        self.assertGreaterEqual(s["connections"], 5)
        self.assert_latency_sane(s)
        wait_for(lambda: node.counter("spool", "messages_stored") >= 60, 15, what="60 messages stored")
        time.sleep(0.2)
        self.assertEqual(node.counter("ingress", "messages_accepted"), 60)
        self.assertEqual(node.counter("spool", "messages_stored"), 60)


class Hostile:
    """A one-thread server that answers each connection with `behaviour(sock)`; counts bytes it got out."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.sent = []
        self.done = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(10)
            n = 0
            try:
                n = self.behaviour(conn)
            except OSError:
                pass
            finally:
                self.sent.append(n)
                conn.close()

    def stop(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()


def send_counted(conn, data, chunk=65536):
    n = 0
    try:
        for i in range(0, len(data), chunk):
            conn.sendall(data[i:i + chunk])
            n += len(data[i:i + chunk])
    except OSError:
        pass
    return n


def huge_line(conn):
    return send_counted(conn, b"220 " + b"x" * (1024 * 1024) + b"\r\n")


def endless_continuation(conn):
    return send_counted(conn, b"220-smtp.hostile.test\r\n" * 100000 + b"220 ok\r\n")


def endless_stream(conn):
    return send_counted(conn, b"220 " + b"y" * (64 * 1024 * 1024))


def garbage_after_ehlo(conn):
    conn.sendall(b"220 hostile ESMTP\r\n")
    conn.recv(4096)
    return send_counted(conn, b"250-PIPELINING\r\n\x00\xff\x01garbage\r\n")


def mixed_codes(conn):
    conn.sendall(b"220 hostile ESMTP\r\n")
    conn.recv(4096)
    conn.sendall(b"250-ok\r\n")
    return send_counted(conn, b"354 not the same code\r\n")


def hang_up_mid_reply(conn):
    conn.sendall(b"220 hostile ESMTP\r\n")
    conn.recv(4096)
    return send_counted(conn, b"250-hostile")


class HostileTest(GenCase):
    def serve(self, behaviour):
        h = Hostile(behaviour)
        self.addCleanup(h.stop)
        return h

    def test_hostile_server_overlong_lines_and_endless_replies(self):
        for behaviour, count in ((huge_line, 3), (endless_continuation, 3), (endless_stream, 2),
                                 (garbage_after_ehlo, 2), (mixed_codes, 2), (hang_up_mid_reply, 2)):
            with self.subTest(behaviour.__name__):
                h = self.serve(behaviour)
                rc, s, err, wall, rss = run_gen("--target", "127.0.0.1:%d" % h.port, "--message-count", count,
                                                "--keep-going", "--timeout", 20, timeout=30)
                self.assertEqual(rc, 0, err)
                self.assertEqual((s["sent"], s["failed"]), (0, count), s)
                expect = "closed" if behaviour is hang_up_mid_reply else "protocol"
                self.assertEqual(s["errors"], {expect: count}, s)
                self.assertLess(wall, 5.0, "not ended by the timeout")
                self.assertLess(rss, 200 * 1024, "max RSS %d KiB" % rss)
                if behaviour is endless_stream:
                    # the generator hung up early: the server got nowhere near its 64 MiB out
                    wait_for(lambda: len(h.sent) >= count, 10, what="server saw every connection end")
                    self.assertTrue(all(n < 32 * 1024 * 1024 for n in h.sent), h.sent)
                # without --keep-going the same server stops the run with a failure
                rc, s, err, wall, _ = run_gen("--target", "127.0.0.1:%d" % h.port, "--message-count", 1,
                                              "--timeout", 20, timeout=30)
                self.assertNotEqual(rc, 0)
                self.assertEqual(s["sent"], 0)


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
