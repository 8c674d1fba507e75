"""End-to-end tests of the egress against hostile and faulty receivers (TESTING.md EGR-01, EGR-02, DNS-01).

smtplib -> ringmail -> a faulty receiver on loopback: Postfix's smtp-sink with its fault flags (-r 4xx,
-f 5xx, -Q 421 and drop, -A 550 after DATA) or a scripted Python server (threads) for what smtp-sink
cannot do (silence, mid-DATA drops, 452 after N recipients, endless and malformed replies). Mail for
good.test (the senders' domain, so DSNs too) goes to a well-behaved aiosmtpd sink; everything else to
the receiver under test. Each test checks what the receivers got, the log records, the queue, and for
the hostile replies that the egress process survived with bounded memory and no sanitizer report.

    /usr/bin/python3 tests/e2e/egress_faults_test.py -k trickle
"""
import glob
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, free_port, wait_for  # noqa: E402
from peers import DnsServer, Sink  # noqa: E402

# meson: see discover.py
MESON = {"suite": "delivery"}

ID_RE = re.compile(r"id=([0-9a-f]{32})")
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SENDER = "s@good.test"
RSS_LIMIT_KB = 100 * 1024


# ---- receivers -----------------------------------------------------------------------------------

class SmtpSinkProc:
    """/usr/sbin/smtp-sink on 127.0.0.1:port with fault flags; every transaction dumped to a file (-d)."""

    def __init__(self, *flags, port=None):
        if not os.path.exists(SMTP_SINK):
            raise FileNotFoundError("smtp-sink is not installed")
        self.dir = tempfile.mkdtemp(prefix="ringmail-smtp-sink-")
        os.chmod(self.dir, 0o777)  # written by the unprivileged user smtp-sink switches to
        self.port = port or free_port()
        args = [SMTP_SINK]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += ["-d", os.path.join(self.dir, "msg.")] + list(flags) + ["127.0.0.1:%d" % self.port, "64"]
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err, stdin=subprocess.DEVNULL)
        wait_for(self.listening, 5, what="smtp-sink listening")

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("smtp-sink exited: %s" % open(os.path.join(self.dir, "stderr")).read())
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def transactions(self):
        """(sender, [recipients]) of every dumped transaction, complete or not."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "msg.*"))):
            with open(path, "rb") as f:
                text = f.read().decode("latin-1")
            mail = re.findall(r"^X-Mail-Args: <([^>]*)>", text, re.M)
            rcpts = re.findall(r"^X-Rcpt-Args: <([^>]*)>", text, re.M)
            out.append((mail[0] if mail else None, rcpts))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Stop(Exception):
    """The peer went away or the server stops: end this connection's thread."""


class Session:
    """One scripted SMTP server connection. Override the on_* hooks; the defaults accept everything."""
    banner = "220 scripted.test ESMTP"
    ehlo_lines = ("250-scripted.test", "250-PIPELINING", "250-8BITMIME", "250 ENHANCEDSTATUSCODES")

    def __init__(self, srv, sock, n):
        self.srv, self.sock, self.n = srv, sock, n
        self.f = sock.makefile("rb")
        self.mail, self.rcpts, self.n_rcpt_cmds = None, [], 0

    # -- I/O --
    def send(self, data):
        if isinstance(data, str):
            data = (data + "\r\n").encode()
        try:
            self.sock.sendall(data)
        except OSError:
            raise Stop()

    def readline(self):
        try:
            line = self.f.readline(1 << 20)
        except OSError:
            raise Stop()
        if not line or self.srv.stopping:
            raise Stop()
        return line

    def read_data(self, limit=None):
        """The body up to the lone dot, un-stuffed; with `limit`, stop after that many octets (None)."""
        body, got = [], 0
        while True:
            line = self.readline()
            if line == b".\r\n":
                return b"".join(body)
            got += len(line)
            if limit is not None and got >= limit:
                return None
            body.append(line[1:] if line.startswith(b".") else line)

    # -- hooks --
    def on_connect(self):
        self.send(self.banner)

    def on_ehlo(self):
        for line in self.ehlo_lines:
            self.send(line)

    def on_mail(self):
        return "250 2.1.0 ok"

    def on_rcpt(self, addr):
        return "250 2.1.5 ok"

    def on_data(self):
        return "354 go ahead"

    def on_body(self):
        """After the 354: read the body and answer; returns the body (recorded on a 2xx) or None."""
        body = self.read_data()
        reply = self.on_dot()
        if reply.startswith("2"):
            self.srv.record(self.mail, list(self.rcpts), body)
        self.send(reply)
        return body

    def on_dot(self):
        return "250 2.0.0 queued"

    # -- dialogue --
    def run(self):
        self.on_connect()
        while True:
            line = self.readline().decode("latin-1").rstrip("\r\n")
            verb = line[:4].upper()
            self.srv.note(line)
            if verb == "EHLO":
                self.on_ehlo()
            elif verb == "HELO":
                self.send("250 scripted.test")
            elif verb == "MAIL":
                self.rcpts, self.n_rcpt_cmds = [], 0
                self.mail = re.search(r"<([^>]*)>", line).group(1)
                self.send(self.on_mail())
            elif verb == "RCPT":
                addr = re.search(r"<([^>]*)>", line).group(1)
                self.n_rcpt_cmds += 1
                reply = self.on_rcpt(addr)
                if reply.startswith("2"):
                    self.rcpts.append(addr)
                self.send(reply)
            elif verb == "DATA":
                if not self.rcpts:
                    self.send("554 5.5.1 no valid recipients")
                    continue
                reply = self.on_data()
                self.send(reply)
                if reply.startswith("354"):
                    self.on_body()
                self.mail, self.rcpts = None, []
            elif verb == "RSET":
                self.mail, self.rcpts = None, []
                self.send("250 2.0.0 ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 bye")
                return
            else:
                self.send("502 5.5.2 unknown command")


class ScriptServer:
    """A TCP server on 127.0.0.1 whose every connection runs a Session subclass in its own thread."""

    def __init__(self, session_cls, port=None):
        self.session_cls = session_cls
        self.lock = threading.Lock()
        self.messages, self.commands, self.socks, self.threads = [], [], [], []
        self.connections = 0
        self.stopping = False
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.port = self.lsock.getsockname()[1]
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.acceptor = threading.Thread(target=self.accept_loop, daemon=True)
        self.acceptor.start()

    def accept_loop(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(30)
            with self.lock:
                self.connections += 1
                n = self.connections
                self.socks.append(sock)
            t = threading.Thread(target=self.serve, args=(sock, n), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, sock, n):
        try:
            self.session_cls(self, sock, n).run()
        except (Stop, OSError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def record(self, mail, rcpts, body):
        with self.lock:
            self.messages.append((mail, rcpts, body))

    def note(self, line):
        with self.lock:
            self.commands.append(line)

    def delivered_to(self, rcpt):
        with self.lock:
            return sum(1 for m in self.messages for r in m[1] if r.lower() == rcpt.lower())

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)


class RssWatch:
    """The peak VmRSS (kB) of one pid, sampled every 10 ms in a thread."""

    def __init__(self, pid):
        self.pid, self.peak, self.done = pid, 0, False
        self.peak = self.sample()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def loop(self):
        while not self.done:
            self.peak = max(self.peak, self.sample())
            time.sleep(0.01)

    def stop(self):
        self.done = True
        self.t.join(2)
        return self.peak


# ---- the base case --------------------------------------------------------------------------------

class FaultCase(unittest.TestCase):
    records = []  # DNS local-data; no DNS server when empty

    def setUp(self):
        self.peers = []
        self.dns = None
        self.node = None
        self.addCleanup(self.cleanup)
        if self.records:
            try:
                self.dns = DnsServer(self.records)
            except FileNotFoundError:
                self.skipTest("unbound is not installed")
        self.good = self.peer(Sink("127.0.0.1"))

    def cleanup(self):
        if self.node:
            self.node.cleanup()
        for p in self.peers:
            p.stop()
        if self.dns:
            self.dns.stop()

    def peer(self, p):
        self.peers.append(p)
        return p

    def smtp_sink(self, *flags, port=None):
        try:
            return self.peer(SmtpSinkProc(*flags, port=port))
        except FileNotFoundError:
            self.skipTest("smtp-sink is not installed")

    def script(self, session_cls, port=None):
        return self.peer(ScriptServer(session_cls, port))

    def start(self, hosts=(), egress="", port=None, retry="1s"):
        """A node: good.test to the good sink, every other domain to `hosts` (ports on 127.0.0.1)."""
        cfg = '[route."good.test"]\nhosts = ["[127.0.0.1]:%d"]\n' % self.good.port
        if hosts:
            cfg += '[route."*"]\nhosts = [%s]\n' % ", ".join('"[127.0.0.1]:%d"' % p for p in hosts)
        cfg += '[queue.default]\nretry_interval = "%s"\nmax_retry_interval = "%s"\n' % (retry, retry)
        eg = egress
        if self.dns:
            eg += '\nresolver = "%s"\ndns_timeout = "500ms"' % self.dns.address
        if port:
            eg += "\nport = %d" % port
        eg += '\nconnect_timeout = "1s"\nbanner_timeout = "1s"\ncommand_timeout = "2s"\ndata_timeout = "2s"'
        eg += '\nidle_timeout = "1s"'
        self.node = Node(config_extra=cfg, egress=eg, park_delivery=False).start()
        return self.node

    def send(self, rcpts, sender=SENDER, body="hello\r\n"):
        """One transaction with smtplib; the queue id from the 250."""
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            c.mail(sender)
            for r in rcpts:
                code, _ = c.rcpt(r)
                self.assertEqual(code, 250, r)
            code, reply = c.data(("Subject: t\r\nFrom: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s" %
                                  (sender, time.monotonic_ns(), body)).encode())
            self.assertEqual(code, 250)
            return ID_RE.search(reply.decode()).group(1)
        finally:
            c.quit()

    def records_of(self, typ, msg_id):
        return [r for r in self.node.log_records() if r["type"] == typ and r["id"] == msg_id]

    def queued(self):
        return self.node.counter("scheduler", "messages_queued")

    def wait_queue(self, n, timeout=20):
        wait_for(lambda: self.queued() == n, timeout, what="%d message(s) queued" % n)

    def egress_pid(self):
        return self.node.instances()["egress[0]"]["pid"]

    def assert_no_sanitizer_report(self):
        log = self.node.log()
        for needle in ("AddressSanitizer", "runtime error", "LeakSanitizer"):
            self.assertNotIn(needle, log)

    def assert_deferred(self, msg_id, n_rcpts=1, code=None, command=None, timeout=20):
        """At least one TransientFailure per recipient, nothing delivered or bounced, still queued."""
        recs = wait_for(lambda: (lambda r: r if len({x["recipient"] for x in r}) >= n_rcpts else None)(
            self.records_of("TransientFailure", msg_id)), timeout, what="TransientFailure records")
        for r in recs:
            if code is not None:
                self.assertEqual(r["response"]["code"], code, r)
            if command is not None:
                self.assertEqual(r["response"]["command"], command, r)
        self.assertEqual(self.records_of("Delivery", msg_id), [])
        self.assertEqual(self.records_of("Bounce", msg_id), [])
        self.assertEqual(self.queued(), 1)
        return recs


# ---- real peers end to end: Postfix's smtp-source -> ringmail -> Postfix's smtp-sink --------------

class RealPeersTest(FaultCase):
    def test_smtp_source_through_ringmail_to_smtp_sink(self):
        """200 messages from smtp-source (10 sessions) arrive at smtp-sink exactly once each; all logged."""
        source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
        if not os.path.exists(source):
            self.skipTest("smtp-source is not installed")
        sink = self.smtp_sink()
        node = self.start(hosts=[sink.port])
        p = subprocess.run([source, "-s", "10", "-m", "200", "-l", "2048", "-f", "src@client.test",
                            "-t", "rcpt@far.test", "127.0.0.1:%d" % node.smtp_port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: len(sink.transactions()) >= 200, 30, what="200 transactions at smtp-sink")
        self.wait_queue(0)
        time.sleep(0.5)
        tx = sink.transactions()
        self.assertEqual(len(tx), 200, "each message exactly once")
        self.assertTrue(all(t == ("src@client.test", ["rcpt@far.test"]) for t in tx), tx[:3])
        recs = wait_for(lambda: (lambda r: r if len(r) == 200 else None)(
            [r for r in node.log_records() if r["type"] == "Delivery"]), 10, what="200 Delivery records")
        self.assertEqual(len({r["id"] for r in recs}), 200)
        self.assertEqual(len([r for r in node.log_records() if r["type"] == "Reception"]), 200)


# ---- EGR-01: faulty receivers ---------------------------------------------------------------------

class SilentSession(Session):
    def on_connect(self):
        while not self.srv.stopping:  # connected, never a banner
            time.sleep(0.05)
        raise Stop()


class FaultTest(FaultCase):
    def test_no_banner_times_out_then_next_mx(self):
        """EGR-01: the first host accepts the connection and says nothing: banner timeout, next host."""
        silent = self.script(SilentSession)
        sink = self.peer(Sink("127.0.0.1"))
        self.start(hosts=(silent.port, sink.port))
        t0 = time.monotonic()
        msg_id = self.send(["a@far.test"])
        wait_for(lambda: sink.delivered_to("a@far.test") == 1, 20, what="delivered by the second host")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9, "the banner timeout was not waited for")
        self.wait_queue(0)
        self.assertGreaterEqual(silent.connections, 1)
        recs = wait_for(lambda: self.records_of("Delivery", msg_id), 5, what="Delivery record")
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["peer_address"]["addr"], "127.0.0.1:%d" % sink.port)
        self.assertEqual(self.records_of("TransientFailure", msg_id), [])
        self.assertEqual(sink.delivered_to("a@far.test"), 1)

    def test_421_banner_defers_then_delivered_when_fixed(self):
        """EGR-01: a 421 banner defers (TransientFailure 421, still queued); fixed server: delivered once."""
        bad = self.smtp_sink("-Q", "CONNECT")
        port = bad.port
        self.start(hosts=(port,))
        msg_id = self.send(["a@far.test"])
        recs = self.assert_deferred(msg_id, code=421)
        self.assertIsNone(recs[0]["response"]["command"], recs[0])
        self.assertIn("421", str(recs[0]["response"]["code"]))
        bad.stop()
        self.peers.remove(bad)
        fixed = self.peer(Sink("127.0.0.1", port))
        wait_for(lambda: fixed.delivered_to("a@far.test") == 1, 20, what="delivered once the server is fixed")
        self.wait_queue(0)
        time.sleep(1)
        self.assertEqual(fixed.delivered_to("a@far.test"), 1)
        self.assertEqual(len(self.records_of("Delivery", msg_id)), 1)

    def test_4xx_at_mail_defers(self):
        """EGR-01: MAIL answered 4xx: every recipient deferred at MAIL FROM, nothing sent, still queued."""
        bad = self.smtp_sink("-r", "MAIL")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test", "b@far.test"])
        recs = self.assert_deferred(msg_id, n_rcpts=2, command="MAIL FROM")
        self.assertEqual({r["response"]["code"] // 100 for r in recs}, {4})
        self.assertEqual({r["recipient"] for r in recs}, {"a@far.test", "b@far.test"})
        self.assertTrue(all(rc == [] for _, rc in bad.transactions()), bad.transactions())

    def test_5xx_at_mail_bounces(self):
        """EGR-01: MAIL answered 5xx: every recipient bounces once at MAIL FROM; a DSN goes to the sender."""
        bad = self.smtp_sink("-f", "MAIL")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test", "b@far.test"])
        recs = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(self.records_of("Bounce", msg_id)), 20,
                        what="2 Bounce records")
        for r in recs:
            self.assertEqual(r["response"]["code"] // 100, 5, r)
            self.assertEqual(r["response"]["command"], "MAIL FROM", r)
        self.assertEqual(sorted(r["recipient"] for r in recs), ["a@far.test", "b@far.test"])
        wait_for(lambda: self.good.delivered_to(SENDER) == 1, 20, what="the DSN")
        self.wait_queue(0)
        self.assertEqual(self.records_of("TransientFailure", msg_id), [])

    def test_4xx_at_rcpt_with_smtp_sink(self):
        """EGR-01: every RCPT answered 4xx by smtp-sink -r RCPT: each recipient deferred at RCPT TO."""
        bad = self.smtp_sink("-r", "RCPT")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test", "b@far.test", "c@far.test"])
        recs = self.assert_deferred(msg_id, n_rcpts=3, command="RCPT TO")
        self.assertEqual({r["response"]["code"] for r in recs}, {450})
        self.assertEqual(self.good.count(), 0)

    def test_4xx_after_data(self):
        """EGR-01: the end of data answered 4xx: deferred at '.', still queued."""
        bad = self.smtp_sink("-r", ".")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test", "b@far.test"])
        recs = self.assert_deferred(msg_id, n_rcpts=2, command=".")
        self.assertEqual({r["response"]["code"] // 100 for r in recs}, {4})
        self.assertIn(("s@good.test", ["a@far.test", "b@far.test"]), bad.transactions())

    def test_5xx_after_data(self):
        """EGR-01: the end of data answered 5xx: every recipient bounces at '.', DSN to the sender."""
        bad = self.smtp_sink("-f", ".")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test", "b@far.test"])
        recs = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(self.records_of("Bounce", msg_id)), 20,
                        what="2 Bounce records")
        self.assertEqual({(r["response"]["code"] // 100, r["response"]["command"]) for r in recs}, {(5, ".")})
        wait_for(lambda: self.good.delivered_to(SENDER) == 1, 20, what="the DSN")
        self.wait_queue(0)

    def test_550_before_the_end_of_data(self):
        """EGR-01: smtp-sink -A 0 answers 550 right after the 354, before the body: a bounce, no hang."""
        bad = self.smtp_sink("-A", "0")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test"], body=("x" * 100 + "\r\n") * 2000)
        recs = wait_for(lambda: self.records_of("Bounce", msg_id), 20, what="Bounce record")
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["response"]["code"], 550, recs[0])
        self.assertEqual(recs[0]["response"]["command"], ".", recs[0])
        self.wait_queue(0)
        self.assertEqual(self.records_of("Delivery", msg_id), [])


class MailTempfailPipelinedSession(Session):
    """451 to MAIL with PIPELINING offered: the pipelined RCPTs and DATA then get 503s."""

    def on_mail(self):
        self.mail_refused = True
        return "451 4.3.0 try later"

    def on_rcpt(self, addr):
        return "503 5.5.1 need MAIL first"


class MoreFaultTest(FaultCase):
    def test_4xx_at_mail_pipelined_is_not_a_bounce(self):
        """EGR-01: 451 to a pipelined MAIL, 503 to its RCPTs: deferred at MAIL FROM, never bounced."""
        srv = self.script(MailTempfailPipelinedSession)
        self.start(hosts=(srv.port,))
        msg_id = self.send(["a@far.test", "b@far.test"])
        recs = self.assert_deferred(msg_id, n_rcpts=2, code=451, command="MAIL FROM")
        self.assertEqual(len({r["recipient"] for r in recs}), 2)
        self.assertEqual(srv.messages, [])

    def test_421_at_rcpt_then_fixed_each_delivered_once(self):
        """EGR-01: smtp-sink -Q RCPT (421 and drop mid-transaction) for two messages: deferred with 421,
        the lease is not kept on the dead session, and both go once the server is fixed."""
        bad = self.smtp_sink("-Q", "RCPT")
        port = bad.port
        self.start(hosts=(port,))
        ids = [self.send(["a%d@far.test" % i]) for i in range(2)]
        for msg_id in ids:
            recs = wait_for(lambda: self.records_of("TransientFailure", msg_id), 20, what="TransientFailure")
            self.assertEqual(recs[0]["response"]["code"], 421, recs[0])
            self.assertEqual(recs[0]["response"]["command"], "RCPT TO", recs[0])
        time.sleep(2.5)  # more attempts against the 421 server
        self.assertEqual(self.queued(), 2)
        bad.stop()
        self.peers.remove(bad)
        fixed = self.peer(Sink("127.0.0.1", port))
        wait_for(lambda: all(fixed.delivered_to("a%d@far.test" % i) == 1 for i in range(2)), 20, what="delivered")
        self.wait_queue(0)
        time.sleep(1)
        for i in range(2):
            self.assertEqual(fixed.delivered_to("a%d@far.test" % i), 1)
        self.assertNotIn("does not match an attempt in flight", self.node.log())

    def test_drop_without_reply_at_mail_defers(self):
        """EGR-01: smtp-sink -q MAIL closes without a reply: deferred (connection lost), still queued."""
        bad = self.smtp_sink("-q", "MAIL")
        self.start(hosts=(bad.port,))
        msg_id = self.send(["a@far.test"])
        recs = self.assert_deferred(msg_id)
        self.assertIn("closed", recs[0]["response"]["content"], recs[0])


class DropMidDataSession(Session):
    """The first connection reads part of the body and closes; later ones behave."""

    def on_body(self):
        if self.n == 1:
            self.read_data(limit=1000)
            raise Stop()
        return Session.on_body(self)


class DropAfterDataCmdSession(Session):
    """The first connection closes when DATA arrives, without a reply (smtp-sink -q DATA)."""

    def on_data(self):
        if self.n == 1:
            raise Stop()
        return Session.on_data(self)


class Limit3Session(Session):
    """452 to every RCPT after the third of a transaction."""

    def on_rcpt(self, addr):
        return "250 2.1.5 ok" if self.n_rcpt_cmds <= 3 else "452 4.5.3 too many recipients"


class Limit3LockstepSession(Limit3Session):
    ehlo_lines = ("250-scripted.test", "250 8BITMIME")


class RetryTest(FaultCase):
    def check_retried_once(self, session_cls, what):
        srv = self.script(session_cls)
        self.start(hosts=(srv.port,))
        rcpts = ["a@far.test", "b@far.test"]
        msg_id = self.send(rcpts, body="line of the body\r\n" * 2000)
        wait_for(lambda: all(srv.delivered_to(r) == 1 for r in rcpts), 20, what="delivered on the retry")
        self.wait_queue(0)
        time.sleep(1)
        for r in rcpts:
            self.assertEqual(srv.delivered_to(r), 1, r)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(srv.messages[0][2].count(b"line of the body\r\n"), 2000)
        self.assertGreaterEqual(srv.connections, 2)
        tf = self.records_of("TransientFailure", msg_id)
        self.assertEqual(sorted({r["recipient"] for r in tf}), rcpts, what)
        recs = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(self.records_of("Delivery", msg_id)), 5,
                        what="2 Delivery records")
        self.assertEqual(sorted(r["recipient"] for r in recs), rcpts)

    def test_connection_closed_mid_data_retried_delivered_once(self):
        """EGR-01: the server closes in the middle of the body: deferred, then delivered exactly once."""
        self.check_retried_once(DropMidDataSession, "closed mid-DATA")

    def test_connection_closed_at_data_retried_delivered_once(self):
        """EGR-01: the server closes on DATA without a reply: deferred, then delivered exactly once."""
        self.check_retried_once(DropAfterDataCmdSession, "closed at DATA")

    def check_452_split(self, session_cls):
        srv = self.script(session_cls)
        self.start(hosts=(srv.port,))
        rcpts = ["r%d@far.test" % i for i in range(8)]
        msg_id = self.send(rcpts)
        wait_for(lambda: all(srv.delivered_to(r) >= 1 for r in rcpts), 20, what="every recipient delivered")
        self.wait_queue(0)
        for r in rcpts:
            self.assertEqual(srv.delivered_to(r), 1, r)
        self.assertEqual(sorted(len(m[1]) for m in srv.messages), [2, 3, 3])
        self.assertEqual(self.records_of("TransientFailure", msg_id), [], "the split needs no retry later")
        recs = wait_for(lambda: (lambda r: r if len(r) >= len(rcpts) else None)(self.records_of("Delivery", msg_id)),
                        5, what="a Delivery record per recipient")
        self.assertEqual(sorted(r["recipient"] for r in recs), sorted(rcpts))
        self.assertEqual(srv.connections, 1, "the new transactions ride the same connection")

    def test_452_after_3_rcpts_rest_in_new_transactions_pipelined(self):
        """EGR-01: 452 after 3 recipients (PIPELINING): the rest go in new transactions, each once."""
        self.check_452_split(Limit3Session)

    def test_452_after_3_rcpts_rest_in_new_transactions_lockstep(self):
        """EGR-01: 452 after 3 recipients (no PIPELINING): the rest go in new transactions, each once."""
        self.check_452_split(Limit3LockstepSession)


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
