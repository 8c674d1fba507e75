"""fault_peers - faulty SMTP receivers and the base test case of the egress fault scenarios
(tests/e2e/egress_faults_test.py, tests/e2e/egress_hostile_test.py).

SmtpSinkProc is Postfix's smtp-sink with its fault flags (-r 4xx, -f 5xx, -Q 421 and drop, -A 550 after
DATA); ScriptServer runs a Session subclass per connection in threads for what smtp-sink cannot do
(silence, mid-DATA drops, 452 after N recipients, endless and malformed replies). RssWatch samples a
pid's peak VmRSS. FaultCase starts a node whose good.test mail (the senders' domain, so DSNs too) goes
to a well-behaved aiosmtpd sink and everything else to the receiver under test, and has the checks the
scenarios share (log records, the queue, deferrals, no sanitizer report).
"""
import glob
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

from ringmail_node import Node, free_port, wait_for
from peers import PeersCase, Sink

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
                self.on_other(line)

    def on_other(self, line):
        """Any other command (STARTTLS, ...); may raise Stop to end the connection."""
        self.send("502 5.5.2 unknown command")


class ScriptServer:
    """A TCP server on host (127.0.0.1) whose every connection runs a Session subclass in its own thread."""

    def __init__(self, session_cls, port=None, host="127.0.0.1"):
        self.session_cls = session_cls
        self.lock = threading.Lock()
        self.messages, self.commands, self.socks, self.threads = [], [], [], []
        self.connections = 0
        self.stopping = False
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port or 0))
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

class FaultCase(PeersCase):
    records = []  # DNS local-data; no DNS server when empty

    def setUp(self):
        super().setUp()
        self.good = self.peer(Sink("127.0.0.1"))

    def smtp_sink(self, *flags, port=None):
        try:
            return self.peer(SmtpSinkProc(*flags, port=port))
        except FileNotFoundError:
            self.skipTest("smtp-sink is not installed")

    def script(self, session_cls, port=None):
        return self.peer(ScriptServer(session_cls, port))

    def start(self, hosts=(), egress="", port=None, retry="1s", data_timeout="2s"):
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
        eg += '\nconnect_timeout = "1s"\nbanner_timeout = "1s"\ncommand_timeout = "2s"\ndata_timeout = "%s"' % data_timeout
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
