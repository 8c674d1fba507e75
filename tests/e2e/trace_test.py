"""ringctl trace-smtp-server and trace-smtp-client (issue 10): a live transcript of real SMTP sessions.

The SMTP server side: smtplib clients on their own loopback source addresses (127.0.0.2, 127.0.0.3) send to
the node while `ringctl trace-smtp-server` streams; the transcript must show EHLO, MAIL, RCPT, DATA, the
body elided (its text never appears), QUIT, each with its reply, in order, with time stamps; --peer keeps
only the matching client; SIGINT ends ringctl cleanly and the node stops sending events. The SMTP client
side: the node delivers to aiosmtpd sinks found through a real DNS server (unbound), one offering
STARTTLS with a certificate of a CA made here with the openssl CLI (egress_tls_test's helpers);
`ringctl trace-smtp-client --domain` shows that session, TLS steps included, and not the other domain's.
Nobody tracing: no event is sent at all (the roles' counters stay 0). Hostile datagrams on the trace
socket are refused and counted, and the supervisor keeps serving.

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/trace_test.py -k peer
"""
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from ringmail_node import BUILD_DIR, Node, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402
from egress_tls_test import make_pki, server_context  # noqa: E402

MESON = {"suite": "trace", "timeout": 240, "tools": ["ringctl", "hostile_role"], "exclusive": True}
HOSTILE = os.path.join(BUILD_DIR, "tests", "e2e", "hostile_role")

SECRET = "the-body-text-must-never-be-traced-4711"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Tracer:
    """ringctl [--json] trace-smtp-* as a child process; its stdout lines collected by a thread."""

    def __init__(self, node, *args, json_out=True):
        cmd = [os.path.join(BUILD_DIR, "ringctl"), "--endpoint", node.endpoint, "--data-dir", node.data_dir]
        args = list(args) + (["--json"] if json_out else [])  # after the command, as an operator types it
        self.proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.json = json_out

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def events(self):
        with self.lock:
            return [json.loads(l) for l in self.lines if l]

    def text(self):
        with self.lock:
            return list(self.lines)

    def wait_started(self):
        wait_for(lambda: any(e.get("type") == "start" for e in self.events()), 10, what="the trace started")

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=10)
        self.thread.join(5)
        return rc, self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.thread.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def send(node, source, rcpt="r@good.test", body=None):
    c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10, source_address=(source, 0))
    try:
        c.ehlo("client.test")
        c.sendmail("s@sender.test", [rcpt], body or ("Subject: t\r\n\r\n%s\r\n" % SECRET).encode())
    finally:
        c.quit()
    return c


def sessions(events, peer_prefix=None):
    """The events of each session, in arrival order, by session id."""
    out = {}
    for e in events:
        if e.get("type") == "smtp" and (peer_prefix is None or e["peer"].startswith(peer_prefix)):
            out.setdefault(e["session"], []).append(e)
    return out


def metric(node, name):
    text = node.http("GET", "/metrics")[1]
    text = text.decode() if isinstance(text, bytes) else text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


class TraceCase(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.one.test.",  # the name egress_tls_test's certificate is for
        "mx.one.test. 60 IN A 127.0.0.2",
        "other.test. 60 IN MX 10 mx.other.test.",
        "mx.other.test. 60 IN A 127.0.0.3",
    ]

    def setUp(self):
        super().setUp()
        self.tracers = []
        self.addCleanup(self.stop_tracers)

    def stop_tracers(self):
        for t in self.tracers:
            t.stop()

    def tracer(self, *args, json_out=True):
        t = Tracer(self.node, *args, json_out=json_out)
        self.tracers.append(t)
        if json_out:
            t.wait_started()
        return t

    def start_parked(self):
        self.node = Node()  # owned by the case before it starts: a failed start is cleaned up too
        return self.node.start()

    def start_delivering(self):
        self.tmp = tempfile.mkdtemp(prefix="ringmail-trace-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        make_pki(self.tmp)
        port = free_udp_tcp_port("127.0.0.2")
        self.good = self.peer(Sink("127.0.0.2", port, tls_context=server_context(self.tmp, "good")))
        self.other = self.peer(Sink("127.0.0.3", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "1s"\ntls_ca_file = "%s"' % os.path.join(self.tmp, "ca.pem")
        self.node = Node(egress=eg, park_delivery=False)
        return self.node.start()


class ServerTraceTest(TraceCase):
    def test_trace_shows_a_live_server_session_in_order_with_the_body_elided(self):
        node = self.start_parked()
        t = self.tracer("trace-smtp-server")
        send(node, "127.0.0.2")
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 10, what="the session closed")
        evs = t.events()
        self.assertEqual(evs[0], {"type": "start", "side": "server", "filter": {}})
        (sid, sess), = sessions(evs).items()
        for e in sess:
            self.assertRegex(e["time"], TIME_RE)
            self.assertEqual((e["side"], e["role"], e["worker"]), ("server", "ingress", 0))
            self.assertTrue(e["peer"].startswith("127.0.0.2:"), e)
            self.assertEqual(e["local"], "127.0.0.1:%d" % node.smtp_port)
        self.assertEqual([e["time"] for e in sess], sorted(e["time"] for e in sess), "time stamps in order")
        flow = [(e["dir"], e["text"]) for e in sess]
        verbs = [(d, x if d == "--" else x.split(" ")[0].upper() if d == "<-" else x[:3]) for d, x in flow]
        want = [("--", "connected"), ("->", "220"), ("<-", "EHLO"), ("->", "250"), ("<-", "MAIL"), ("->", "250"),
                ("<-", "RCPT"), ("->", "250"), ("<-", "DATA"), ("->", "354"), ("<-", "[BODY"), ("->", "250"),
                ("<-", "QUIT"), ("->", "221"), ("--", "closed")]
        # EHLO's reply is several lines; keep the first of each run of replies for the order check
        squeezed = [v for i, v in enumerate(verbs) if not (v[0] == "->" and i and verbs[i - 1][0] == "->")]
        self.assertEqual(squeezed, want, flow)
        body = [x for d, x in flow if x.startswith("[body")]
        self.assertRegex(body[0], r"^\[body \d+ bytes\]$")
        self.assertTrue(any(d == "<-" and x.upper().startswith("MAIL FROM:<S@SENDER.TEST>") for d, x in flow), flow)
        self.assertIn(("<-", "rcpt TO:<r@good.test>"), flow)  # as smtplib wrote it
        self.assertTrue(any(d == "->" and x.startswith("250 2.0.0 OK id=") for d, x in flow), flow)
        self.assertNotIn(SECRET, "\n".join(t.text()), "the body is elided")
        self.assertNotIn("Subject", "\n".join(t.text()))

        rc, err = t.interrupt()
        self.assertEqual(rc, 0, err)
        wait_for(lambda: metric(node, "ringmail_trace_tracers") == 0, 10, what="the trace ended at the node")
        # nobody traces any more: the role sends nothing
        before = node.counter("ingress", "trace_events")
        self.assertGreater(before, 0)
        send(node, "127.0.0.2")
        self.assertEqual(node.counter("ingress", "trace_events"), before)
        self.assertEqual(metric(node, "ringmail_trace_rejected_total"), 0)

    def test_server_trace_shows_the_starttls_steps(self):
        import ssl
        node = self.start_parked()
        t = self.tracer("trace-smtp-server")
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10, source_address=("127.0.0.2", 0))
        c.ehlo("client.test")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the node's self-signed certificate
        c.starttls(context=ctx)
        c.ehlo("client.test")
        c.sendmail("s@sender.test", ["r@good.test"], ("Subject: t\r\n\r\n%s\r\n" % SECRET).encode())
        c.quit()
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 10, what="the session closed")
        texts = [e["text"] for e in t.events() if e.get("type") == "smtp"]
        i = [k for k, x in enumerate(texts) if x.upper() == "STARTTLS"][0]
        self.assertTrue(texts[i + 1].startswith("220 "), texts)
        self.assertRegex(texts[i + 2], r"^TLS established: TLSv1\.[23] \S+ \(\d+ bits\)")
        self.assertTrue(texts[i + 3].lower().startswith("ehlo "), texts)
        self.assertTrue(any(x.startswith("[body ") for x in texts[i:]), texts)
        self.assertNotIn(SECRET, "\n".join(t.text()))

    def test_peer_filter_keeps_only_the_matching_client(self):
        node = self.start_parked()
        t = self.tracer("trace-smtp-server", "--peer", "127.0.0.2/32")
        self.assertEqual(t.events()[0]["filter"], {"peer": "127.0.0.2/32"})
        # the role filters first: a session nobody traces sends nothing at all
        send(node, "127.0.0.3")
        self.assertEqual(node.counter("ingress", "trace_events"), 0)
        wide = self.tracer("trace-smtp-server", "--peer", "127.0.0.0/8")
        v6 = self.tracer("trace-smtp-server", "--peer", "::1/128")
        send(node, "127.0.0.3")
        send(node, "127.0.0.2")
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 10, what="the 127.0.0.2 session")
        wait_for(lambda: len([e for e in wide.events() if e.get("text") == "closed"]) == 2, 10,
                 what="both sessions in the /8 trace")
        self.assertEqual(len(sessions(t.events())), 1)
        self.assertEqual(sessions(t.events(), "127.0.0.3"), {})
        self.assertEqual(len(sessions(t.events(), "127.0.0.2")), 1)
        self.assertEqual(len(sessions(wide.events())), 2)
        self.assertEqual(sessions(v6.events()), {})
        for tr in (t, wide, v6):
            self.assertEqual(tr.interrupt()[0], 0)

    def test_human_form_one_line_per_event(self):
        node = self.start_parked()
        t = self.tracer("trace-smtp-server", json_out=False)
        wait_for(lambda: metric(node, "ringmail_trace_tracers") == 1, 10, what="the trace started")
        send(node, "127.0.0.2", body=b"Subject: t\r\n\r\nhello\r\n")
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10, source_address=("127.0.0.2", 0))
        c.docmd("NOOP", "x\ty" + "z" * 300)  # a tab to escape, and a long line to cut
        c.quit()
        wait_for(lambda: len([l for l in t.text() if l.endswith("-- closed")]) == 2, 10, what="two sessions")
        lines = t.text()
        line_re = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} i\[0\]#[0-9a-f]{6} +127\.0\.0\.2:\d+ +(<-|->|--) .*$")
        for line in lines:
            self.assertRegex(line, line_re)
        self.assertTrue(any(re.search(r"<- ehlo client\.test$", l) for l in lines), lines)
        self.assertTrue(any(re.search(r"-> 221 ", l) for l in lines), lines)
        noop = [l for l in lines if "<- NOOP" in l or "<- noop" in l][0]
        self.assertIn("x\\ty", noop)
        self.assertTrue(noop.endswith("..."), noop)
        self.assertLess(len(noop), 260)
        self.assertNotIn("\033[", "\n".join(lines), "no colour when stdout is not a terminal")
        rc, err = t.interrupt()
        self.assertEqual(rc, 0, err)

    def test_no_tracer_no_event_and_bad_requests(self):
        node = self.start_parked()
        send(node, "127.0.0.2")
        self.assertEqual(node.counter("ingress", "trace_events"), 0)
        self.assertEqual(node.counter("ingress", "trace_events_dropped"), 0)
        self.assertEqual(metric(node, "ringmail_trace_received_total"), 0)
        self.assertEqual(metric(node, "ringmail_trace_tracers"), 0)
        p = node.ringctl("trace-smtp-server", "--peer", "not-an-address")
        self.assertEqual(p.returncode, 1)
        self.assertIn("peer= is an IPv4 or IPv6 address", p.stderr)
        p = node.ringctl("trace-smtp-server", "--peer", "127.0.0.1/33")
        self.assertEqual(p.returncode, 1)
        p = node.ringctl("trace-smtp-client", "--domain", "a b")
        self.assertEqual(p.returncode, 1)
        self.assertIn("without spaces", p.stderr)
        p = node.ringctl("trace-smtp-server", "--domain", "x.test")
        self.assertEqual(p.returncode, 2, "--domain is a client filter")
        code, body = node.http("GET", "/api/v1/trace/smtp-server?nosuch=1")[:2]
        self.assertEqual(code, 400)
        code, body = node.http("POST", "/api/v1/trace/smtp-server")[:2]
        self.assertEqual(code, 405)

    def test_curl_reads_the_stream_over_http_1_1(self):
        node = self.start_parked()
        hdr = "Authorization: Bearer " + node.token() if os.path.exists(node.token_path) else "X-None: 1"
        curl = subprocess.Popen(["curl", "-sN", "--http1.1", "--max-time", "6", "-H", hdr,
                                 "http://%s/api/v1/trace/smtp-server?peer=127.0.0.2" % node.endpoint],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            wait_for(lambda: metric(node, "ringmail_trace_tracers") == 1, 5, what="curl's trace started")
            send(node, "127.0.0.2")
            out = curl.communicate(timeout=15)[0]
        finally:
            if curl.poll() is None:
                curl.kill()
                curl.communicate()
        self.assertEqual(curl.returncode, 28, "the stream went on until curl's own time limit")
        events = [json.loads(l) for l in out.splitlines() if l]
        self.assertEqual(events[0]["type"], "start")
        self.assertIn("closed", [e.get("text") for e in events])
        wait_for(lambda: metric(node, "ringmail_trace_tracers") == 0, 10, what="the trace ended with curl")

    def test_at_most_eight_tracers(self):
        node = self.start_parked()
        for _ in range(8):
            self.tracer("trace-smtp-server")
        p = node.ringctl("trace-smtp-server", timeout=15)
        self.assertEqual(p.returncode, 1)
        self.assertIn("at most 8 SMTP traces", p.stderr)
        self.tracers[0].interrupt()
        wait_for(lambda: metric(node, "ringmail_trace_tracers") == 7, 10, what="a slot freed")
        self.tracer("trace-smtp-server")

    def test_a_tracer_that_goes_away_ends_its_trace(self):
        node = self.start_parked()
        t = self.tracer("trace-smtp-server")
        t.proc.kill()  # no SIGINT: the connection just drops
        t.proc.wait(5)
        wait_for(lambda: metric(node, "ringmail_trace_tracers") == 0, 15, what="the node noticed")
        before = node.counter("ingress", "trace_events")
        send(node, "127.0.0.2")
        self.assertEqual(node.counter("ingress", "trace_events"), before)

    def test_hostile_datagrams_are_refused_and_counted(self):
        node = self.start_parked()
        t = self.tracer("trace-smtp-server")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = os.path.join(node.data_dir, "trace.sock")
        # a well-formed server record (proto_trace.h) and garbage: neither comes from a role of the node
        rec = bytearray(68)
        rec[0:2] = b"RT"
        rec[2] = 1
        rec[6:8] = (5).to_bytes(2, "little")
        rec += b"HELLO"
        for payload in (bytes(rec), b"", b"\xff" * 3000, os.urandom(100)):
            s.sendto(payload, path)
        s.close()
        wait_for(lambda: metric(node, "ringmail_trace_rejected_total") == 4, 10, what="all refused")
        send(node, "127.0.0.2")
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 10, what="a real session")
        self.assertNotIn("HELLO", [e.get("text") for e in t.events()])
        self.assertEqual(node.proc.poll(), None)
        self.assertEqual(node.http("GET", "/api/v1/status")[0], 200)


    def test_a_role_scribbling_on_the_trace_word_and_prefilter(self):
        """A compromised role sets the word to all ones, leaves the prefilter's generation odd and fills
        its slots with garbage: the supervisor still shows only what its tracers asked for, every role
        keeps running, and within a second the supervisor has written the word and the slots again."""
        node = self.start_parked()
        t = self.tracer("trace-smtp-server", "--peer", "127.0.0.2/32")
        ingress_pid = [r["pid"] for r in node.status()["roles"] if r["role"] == "ingress"][0]
        p = subprocess.run([HOSTILE, str(ingress_pid), "trace"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        send(node, "127.0.0.3")  # sent or not by the role, the supervisor's filter keeps it out
        send(node, "127.0.0.2")
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 10, what="the traced session")
        self.assertEqual(sessions(t.events(), "127.0.0.3"), {})
        time.sleep(1.5)  # the supervisor's next writing of the word and the slots
        sent = node.counter("ingress", "trace_events")
        send(node, "127.0.0.3")
        self.assertEqual(node.counter("ingress", "trace_events"), sent, "the prefilter works again")
        self.assertEqual(node.counter("egress", "trace_events"), 0, "the word is back: no client trace")
        self.assertEqual(t.interrupt()[0], 0)
        self.assertEqual(node.http("GET", "/api/v1/status")[0], 200)


class ClientTraceTest(TraceCase):
    def test_client_trace_by_domain_shows_the_egress_session_with_starttls(self):
        node = self.start_delivering()
        t = self.tracer("trace-smtp-client", "--domain", "good.test")
        send(node, "127.0.0.5", rcpt="x@other.test")
        send(node, "127.0.0.5", rcpt="y@good.test")
        wait_for(lambda: self.good.count() == 1 and self.other.count() == 1, 30, what="both delivered")
        wait_for(lambda: any(e.get("text") == "closed" for e in t.events()), 15, what="the egress session closed")
        evs = t.events()
        self.assertEqual(evs[0]["filter"], {"domain": "good.test"})
        sess = sessions(evs)
        self.assertEqual(len(sess), 1, evs)
        (sid, s), = sess.items()
        for e in s:
            self.assertEqual((e["side"], e["role"], e["domain"], e["site"]), ("client", "egress", "good.test",
                                                                           "mx.one.test"))
            self.assertTrue(e["peer"].startswith("127.0.0.2:"), e)
            self.assertRegex(e["time"], TIME_RE)
        flow = [(e["dir"], e["text"]) for e in s]
        texts = [x for _, x in flow]
        self.assertEqual(flow[0], ("--", "connected"))
        self.assertTrue(flow[1][0] == "<-" and flow[1][1].startswith("220"), flow)
        i_tls = texts.index("STARTTLS")
        self.assertEqual(flow[i_tls][0], "->")
        self.assertTrue(flow[i_tls + 1][1].startswith("220"), flow)
        self.assertTrue(flow[i_tls + 2][1].startswith("TLS established: TLSv1."), flow)
        self.assertEqual(flow[i_tls + 2][0], "--")
        after = texts[i_tls + 3:]
        self.assertTrue(after[0].startswith("EHLO "), after)
        i_mail = [i for i, x in enumerate(after) if x.startswith("MAIL FROM:<s@sender.test>")][0]
        self.assertIn("RCPT TO:<y@good.test>", after[i_mail:])
        i_data = after.index("DATA")
        self.assertRegex(after[i_data + 1], r"^354")
        self.assertRegex(after[i_data + 2], r"^\[body \d+ bytes\]$")
        self.assertRegex(after[i_data + 3], r"^250")
        self.assertIn("closed", after)
        self.assertNotIn(SECRET, "\n".join(t.text()))
        self.assertNotIn("x@other.test", "\n".join(t.text()), "the other domain's session is not traced")
        self.assertEqual(t.interrupt()[0], 0)


if __name__ == "__main__":
    unittest.main()
