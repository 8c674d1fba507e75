"""peers - real receiving peers for delivery tests: a DNS server (unbound) serving a test zone and
recording SMTP servers (aiosmtpd) with scripted answers, all on loopback, all stopped by the test.

DnsServer(records) runs /usr/sbin/unbound in the foreground on 127.0.0.1:<free port> with a static
zone built from `records` (unbound local-data lines such as "a.test. 60 IN MX 10 mx1.a.test.").
DnsServer(records, host=..., port=53) listens where a tool that only reads /etc/resolv.conf can be
pointed (port 53 of a test's own loopback address; see tests/e2e/dkim_test.py).
Every name outside the zones gets REFUSED, so nothing leaves the machine.

Sink(host, port) is an aiosmtpd server in a thread that records every message it accepts
(envelope sender, recipients, data) and answers per recipient local part:
  tempfail*@  -> 451 4.3.0 at RCPT          permfail*@ -> 550 5.1.1 at RCPT
  flaky*@     -> 451 the first time each recipient is seen, 250 after
  quota*@     -> 552 5.2.2 at RCPT (mailbox full)
and `data_reply` overrides the reply after DATA; `data_delay` seconds pass before that reply.
"""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from ringmail_node import wait_for

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"


def free_udp_tcp_port(host="127.0.0.1"):
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((host, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def egress_via(dns, port, idle_timeout="1s"):
    """The [egress] lines of a node that delivers through `dns` (a DnsServer) to MX port `port`, with
    short timeouts so that a test's faults show within seconds."""
    eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (dns.address, port)
    eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
    return eg + '\nidle_timeout = "%s"' % idle_timeout


def dns_query_ok(port, name="ns.test.", host="127.0.0.1"):
    """A minimal A query over UDP; True when any answer comes back."""
    qid = os.urandom(2)
    q = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, (host, port))
        data, _ = s.recvfrom(4096)
        return data[:2] == qid
    except OSError:
        return False
    finally:
        s.close()


class DnsServer:
    def __init__(self, records, zones=("test.",), host="127.0.0.1", port=None):
        if not os.path.exists(UNBOUND):
            raise FileNotFoundError("unbound is not installed")
        self.tmp = tempfile.mkdtemp(prefix="ringmail-dns-")
        os.chmod(self.tmp, 0o755)
        self.host = host
        self.port = port or free_udp_tcp_port()
        conf = os.path.join(self.tmp, "unbound.conf")
        lines = ["server:", "  do-daemonize: no", '  username: ""', '  chroot: ""',
                 '  directory: "%s"' % self.tmp, '  pidfile: "%s/unbound.pid"' % self.tmp,
                 '  logfile: "%s/unbound.log"' % self.tmp, "  use-syslog: no", "  verbosity: 1",
                 "  interface: %s@%d" % (host, self.port), "  do-ip6: no", "  num-threads: 1",
                 "  so-reuseport: no", "  do-not-query-localhost: no", '  module-config: "iterator"',
                 "  access-control: 127.0.0.0/8 allow", '  local-zone: "." refuse']
        for z in zones:
            lines.append('  local-zone: "%s" static' % z)
        lines.append('  local-data: "ns.test. 60 IN A 127.0.0.1"')
        for r in records:
            if '"' in r:  # TXT strings: unbound reads them inside single quotes, not escaped in double ones
                lines.append("  local-data: '%s'" % r)
            else:
                lines.append('  local-data: "%s"' % r)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: dns_query_ok(self.port, host=host), 10, what="unbound answering")
        except AssertionError:
            self.stop()
            raise

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Sink:
    """A recording SMTP server on (host, port) in a background thread."""

    def __init__(self, host="127.0.0.1", port=None, data_reply=None, banner_reply=None, data_delay=0.0,
                 tls_context=None, data_reply_peers=None, rcpt_replies=None):
        """data_reply_peers: client addresses data_reply is given to (others are accepted); None: every one."""
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP
        self.host = host
        self.port = port or free_udp_tcp_port(host)
        self.messages = []  # (mail_from, [rcpts], data bytes)
        self.peers = []     # client address of each accepted message
        self.open = 0       # connections open now
        self.max_open = 0   # most connections open at once
        self.rcpt_log = []  # (rcpt, reply code)
        self.connections = 0
        self.deliveries = []  # (time.monotonic(), connection number, client address) per accepted message
        self.helos = []       # the EHLO/HELO name of the session of each accepted message
        self.tls = []         # per accepted message: None (plaintext) or {"version", "cipher", "reused"}
        self.data_reply = data_reply
        self.data_reply_peers = data_reply_peers
        self.replied = []     # client address of each DATA answered with data_reply
        # local part (lower case) -> the whole RCPT reply; a test may change it while the sink runs
        self.rcpt_replies = rcpt_replies if rcpt_replies is not None else {}
        self.lock = threading.Lock()
        self.seen = set()
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                local = address.split("@")[0].lower()
                code = "250 2.1.5 OK"
                with sink.lock:
                    scripted = sink.rcpt_replies.get(local)
                if scripted:
                    code = scripted
                elif local.startswith("tempfail"):
                    code = "451 4.3.0 try again later"
                elif local.startswith("permfail"):
                    code = "550 5.1.1 user unknown"
                elif local.startswith("quota"):
                    code = "552 5.2.2 mailbox full"
                elif local.startswith("flaky"):
                    with sink.lock:
                        first = address not in sink.seen
                        sink.seen.add(address)
                    if first:
                        code = "451 4.7.1 greylisted, come back later"
                with sink.lock:
                    sink.rcpt_log.append((address, int(code[:3])))
                if code.startswith("250"):
                    envelope.rcpt_tos.append(address)
                return code

            async def handle_DATA(self, server, session, envelope):
                if data_delay:
                    await asyncio.sleep(data_delay)  # a slow receiver: deliveries stay in flight a while
                peer = session.peer[0] if session.peer else ""
                if sink.data_reply and (sink.data_reply_peers is None or peer in sink.data_reply_peers):
                    with sink.lock:
                        sink.replied.append(peer)
                    return sink.data_reply
                with sink.lock:
                    sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
                    sink.peers.append(session.peer[0] if session.peer else "")
                    sink.deliveries.append((time.monotonic(), getattr(server, "conn_no", 0),
                                            session.peer[0] if session.peer else ""))
                    sink.helos.append(session.host_name)
                    obj = session.ssl.get("ssl_object") if session.ssl else None
                    sink.tls.append({"version": obj.version(), "cipher": obj.cipher()[0],
                                     "reused": obj.session_reused} if obj else None)
                return "250 2.0.0 queued as sink-%d" % len(sink.messages)

        class CountingSMTP(SMTP):
            def connection_made(self, transport):
                with sink.lock:
                    sink.connections += 1
                    self.conn_no = sink.connections
                    sink.open += 1
                    sink.max_open = max(sink.max_open, sink.open)
                super().connection_made(transport)

            def connection_lost(self, exc):
                with sink.lock:
                    sink.open -= 1
                super().connection_lost(exc)

        class CountingController(Controller):
            def factory(self):
                return CountingSMTP(self.handler, **self.SMTP_kwargs)

        kw = {"hostname": host, "port": self.port}
        if tls_context is not None:
            kw["tls_context"] = tls_context  # STARTTLS offered (aiosmtpd), not required
        self.controller = CountingController(Handler(), ident="sink", **kw)
        self.controller.start()
        wait_for(lambda: self.open == 0, 5, what="the controller's probe connection closed")
        with self.lock:
            self.connections = 0  # the controller's own start-up probe is not a client
            self.max_open = 0

    def delivered_to(self, rcpt):
        with self.lock:
            return sum(1 for m in self.messages for r in m[1] if r.lower() == rcpt.lower())

    def count(self):
        with self.lock:
            return len(self.messages)

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass


class PeersCase(unittest.TestCase):
    """A test case that owns a node (self.node), the peers it starts (sinks, scripted servers: anything
    with stop(), registered with peer()) and, when the class sets `records` (DNS local-data), a real DNS
    server for them; each is stopped when the test ends, the node first."""
    records = []

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
