"""HTTP injection API end to end (issue 12, docs/http-injection.md): POST /api/inject/v1 on a node's
[[http_listener]], driven by curl and by Python requests, delivering to a recording aiosmtpd sink on
127.0.0.2 (MX from a real DNS server, unbound). The sink's copies are parsed back with Python's email
package; the node's log is read with zstdcat.

    RINGMAIL_BUILD_DIR=/tmp/build /usr/bin/python3 tests/e2e/http_inject_test.py -k builder
"""
import base64
import email
import email.policy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, free_port, hold_fsyncs, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "http_inject", "timeout": 240, "tools": ["gen"]}

INJECT_TOKEN = "ab" * 32
MAX_REQUEST = 256 * 1024


class HttpCase(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.good.test.",
        "mx.good.test. 60 IN A 127.0.0.2",
    ]

    def start(self, ingress="", policy=None, listeners=""):
        port = free_udp_tcp_port("127.0.0.2")
        self.sink = self.peer(Sink("127.0.0.2", port))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        self.node = Node(egress=eg, park_delivery=False, ingress=ingress)
        self.http_port = free_port()
        token_file = os.path.join(self.node.tmp, "inject.token")
        with open(token_file, "w") as f:
            f.write(INJECT_TOKEN + "\n")
        os.chmod(token_file, 0o644)
        extra = '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        extra += '[[http_listener]]\nlisten = "127.0.0.1:%d"\nmax_request_size = %d\n' % (self.http_port, MAX_REQUEST)
        extra += listeners
        extra += '[http_inject]\ntoken_file = "%s"\nmax_recipients = 50\n' % token_file
        if policy:
            extra += self.node.policy_section(policy)
        self.node.write_config(self.node.base_config + extra)
        try:
            self.node.start()
        except AssertionError:
            sys.stderr.write("--- node log ---\n%s\n" % self.node.log()[-4000:])
            raise
        self.url = "http://127.0.0.1:%d/api/inject/v1" % self.http_port
        return self.node

    def post(self, doc, token=INJECT_TOKEN, raw=None, timeout=30):
        import requests
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        data = raw if raw is not None else json.dumps(doc).encode()
        return requests.post(self.url, data=data, headers=headers, timeout=timeout)

    def curl(self, body, token=INJECT_TOKEN, url=None, method="POST", extra=()):
        """curl's status and body; body is bytes sent as is."""
        args = ["curl", "-sS", "-m", "30", "-o", "-", "-w", "\n%{http_code}", "-X", method, url or self.url,
                "-H", "Content-Type: application/json", "--data-binary", "@-"]
        if token:
            args += ["-H", "Authorization: Bearer " + token]
        args += list(extra)
        p = subprocess.run(args, input=body, capture_output=True, timeout=40)
        out = p.stdout.decode("utf-8", "replace")
        text, _, code = out.rpartition("\n")
        return int(code or 0), text

    def messages_to(self, rcpt):
        with self.sink.lock:
            return [m for m in self.sink.messages if rcpt in m[1]]

    def parsed(self, rcpt):
        msgs = self.messages_to(rcpt)
        self.assertEqual(len(msgs), 1, "exactly one copy for %s" % rcpt)
        return email.message_from_bytes(msgs[0][2], policy=email.policy.default)

    def log_of(self, typ):
        return [r for r in self.node.log_records() if r["type"] == typ]


class InjectTest(HttpCase):
    def test_raw_content_with_curl_delivered_and_logged_as_http(self):
        self.start()
        raw = "From: a@good.test\nTo: r1@good.test\nSubject: raw one\n\nhello from curl\n"
        code, text = self.curl(json.dumps({"envelope_sender": "a@good.test",
                                           "recipients": [{"email": "r1@good.test"}, {"email": "r2@good.test"}],
                                           "content": raw}).encode())
        self.assertEqual(code, 200, text)
        doc = json.loads(text)
        self.assertEqual((doc["success_count"], doc["fail_count"]), (2, 0), doc)
        self.assertEqual(doc["failed_recipients"], [])
        ids = {r["email"]: r["id"] for r in doc["results"]}
        self.assertEqual(len(set(ids.values())), 1, "one message for both recipients without substitutions")
        wait_for(lambda: self.sink.count() == 1, 30, what="delivery")
        m = self.parsed("r1@good.test")
        self.assertEqual(m["Subject"], "raw one")
        self.assertIn("with HTTP id %s" % ids["r1@good.test"], " ".join(m.get_all("Received")))
        self.assertIn(b"\r\nhello from curl\r\n", self.messages_to("r2@good.test")[0][2].replace(b"\n", b"\r\n")
                      .replace(b"\r\r\n", b"\r\n"))
        wait_for(lambda: len(self.log_of("Delivery")) == 2, 10, what="Delivery records")
        recs = [r for r in self.log_of("Reception") if r["id"] == ids["r1@good.test"]]
        self.assertEqual(sorted(r["recipient"] for r in recs), ["r1@good.test", "r2@good.test"])
        self.assertTrue(all(r["meta"].get("reception_protocol") == "HTTP" for r in recs), recs)

    def test_builder_text_html_attachment_parsed_at_the_sink(self):
        self.start()
        blob = bytes(range(256)) * 3
        doc = {
            "envelope_sender": "bounce@good.test",
            "recipients": [{"email": "reader@good.test", "name": "Ré Ader"}],
            "content": {
                "from": {"email": "news@good.test", "name": "Newsletter, Inc."},
                "reply_to": {"email": "help@good.test", "name": "Help"},
                "subject": "Grüße — résumé " + "x" * 80,
                "text_body": "Plain text with ünïcode and a very long line " + "y" * 200 + "\n= end",
                "html_body": "<p>Hello <b>HTML</b> ☃</p>",
                "headers": {"X-Campaign": "spring", "X-Note": "ünicode header"},
                "attachments": [{"data": base64.b64encode(blob).decode(), "base64": True,
                                 "content_type": "application/octet-stream", "file_name": "blob.bin"},
                                {"data": "plain attachment text\n", "content_type": "text/plain",
                                 "file_name": "naïve.txt"}],
            },
        }
        r = self.post(doc)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["success_count"], 1)
        wait_for(lambda: self.sink.count() == 1, 30, what="delivery")
        m = self.parsed("reader@good.test")
        self.assertEqual(m["Subject"], doc["content"]["subject"])
        self.assertEqual(m["From"].addresses[0].display_name, "Newsletter, Inc.")
        self.assertEqual(m["From"].addresses[0].addr_spec, "news@good.test")
        self.assertEqual(m["Reply-To"].addresses[0].addr_spec, "help@good.test")
        self.assertEqual(m["To"].addresses[0].display_name, "Ré Ader")
        self.assertEqual(m["X-Campaign"], "spring")
        self.assertEqual(m["X-Note"], "ünicode header")
        self.assertTrue(m["Date"] and m["Message-ID"], "Date and Message-ID added")
        self.assertRegex(m["Message-ID"], r"^<[0-9a-f]{32}@[^>]+>$")
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        parts = list(m.iter_parts())
        self.assertEqual(parts[0].get_content_type(), "multipart/alternative")
        alt = list(parts[0].iter_parts())
        self.assertEqual([p.get_content_type() for p in alt], ["text/plain", "text/html"])
        self.assertEqual(alt[0]["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(alt[0].get_content().replace("\r\n", "\n").rstrip("\n"), doc["content"]["text_body"])
        self.assertEqual(alt[1].get_content().strip(), doc["content"]["html_body"])
        self.assertEqual(parts[1].get_filename(), "blob.bin")
        self.assertEqual(parts[1].get_content(), blob)
        self.assertEqual(parts[2].get_filename(), "naïve.txt")
        self.assertEqual(parts[2].get_payload(decode=True), b"plain attachment text\n")
        raw = self.messages_to("reader@good.test")[0][2]
        self.assertTrue(all(len(l) <= 998 for l in raw.split(b"\n")), "no line over 998 octets")

    def test_substitutions_per_recipient(self):
        self.start()
        doc = {
            "envelope_sender": "s@good.test",
            "substitutions": {"greeting": "Hello", "n": 3},
            "recipients": [
                {"email": "anne@good.test", "substitutions": {"name": "Anne"}},
                {"email": "bob@good.test", "substitutions": {"name": "Bob", "greeting": "Hi"}},
                {"email": "carl@good.test", "substitutions": {"nom": "Carl"}},
                {"email": "dora@good.test"},
                {"email": "eve@good.test"},
            ],
            "content": {"from": {"email": "s@good.test"}, "subject": "{{greeting}} {{ name }}",
                        "text_body": "{{ greeting }}, {{name}}: you have {{ n }} messages"},
        }
        r = self.post(doc)
        self.assertEqual(r.status_code, 200, r.text)
        res = r.json()
        self.assertEqual(res["success_count"], 2, res)  # dora and eve share a message without "name": unknown
        self.assertEqual(sorted(res["failed_recipients"]), ["carl@good.test", "dora@good.test", "eve@good.test"])
        self.assertTrue(any("unknown template variable name" in e for e in res["errors"]), res["errors"])
        wait_for(lambda: self.sink.count() == 2, 30, what="deliveries")
        self.assertEqual(self.parsed("anne@good.test")["Subject"], "Hello Anne")
        self.assertEqual(self.parsed("bob@good.test")["Subject"], "Hi Bob")
        self.assertIn("Hi, Bob: you have 3 messages", self.parsed("bob@good.test").get_content())

        # recipients without their own substitutions share one message; top-level ones apply to it
        doc = {"envelope_sender": "s@good.test", "substitutions": {"who": "all"},
               "recipients": [{"email": "f1@good.test"}, {"email": "f2@good.test"}],
               "content": "Subject: for {{who}}\r\nFrom: s@good.test\r\n\r\nbody {{ who }}\r\n"}
        r = self.post(doc)
        self.assertEqual(r.status_code, 200, r.text)
        ids = {x["id"] for x in r.json()["results"]}
        self.assertEqual(len(ids), 1, r.json())
        wait_for(lambda: self.sink.count() == 3, 30, what="shared delivery")
        self.assertEqual(self.parsed("f2@good.test")["Subject"], "for all")

    def test_tokens_and_no_admin_api_on_the_injection_listener(self):
        node = self.start()
        doc = {"envelope_sender": "s@good.test", "recipients": [{"email": "t@good.test"}],
               "content": "Subject: t\r\n\r\nx\r\n"}
        self.assertEqual(self.post(doc, token=None).status_code, 401)
        r = self.post(doc, token="cd" * 32)
        self.assertEqual(r.status_code, 401)
        self.assertIn("Bearer", r.headers.get("WWW-Authenticate", ""))
        code, _ = self.curl(json.dumps(doc).encode(), token="short")
        self.assertEqual(code, 401)
        self.assertEqual(self.post(doc, token=node.token()).status_code, 200, "the admin token is accepted")
        self.assertEqual(self.post(doc).status_code, 200, "the injection token is accepted")
        wait_for(lambda: self.sink.count() == 2, 30, what="deliveries")
        # admin endpoints do not exist here, with or without the admin token
        base = "http://127.0.0.1:%d" % self.http_port
        for path in ("/api/v1/status", "/api/v1/queues", "/metrics"):
            code, text = self.curl(b"", token=node.token(), url=base + path, method="GET")
            self.assertEqual(code, 404, (path, text))
        code, _ = self.curl(b"{}", url=base + "/api/v1/reload")
        self.assertEqual(code, 404)
        code, _ = self.curl(b"", url=self.url, method="GET")
        self.assertEqual(code, 405)
        self.assertEqual(self.sink.count(), 2)
        # a reload (SIGHUP) replaces the roles' configuration under the HTTP threads: still served
        node.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        self.assertEqual(self.post(doc).status_code, 200, "served after a reload")
        self.assertEqual(self.post(doc, token="cd" * 32).status_code, 401)
        wait_for(lambda: self.sink.count() == 3, 30, what="delivery after the reload")

    def test_hostile_requests_get_clear_errors_and_store_nothing(self):
        self.start()
        stored0 = self.node.counter("spool", "messages_stored")
        code, text = self.curl(b'{"envelope_sender": "a@good.test",\n "recipients": [}')
        self.assertEqual(code, 400)
        self.assertRegex(json.loads(text)["error"], r"line 2, column \d+")
        code, text = self.curl(b"\xff\xfe{}")
        self.assertEqual(code, 400, text)
        # huge body: 413 by Content-Length, and by a chunked body that grows past the limit
        r = self.post(None, raw=b"x" * (MAX_REQUEST + 1))
        self.assertEqual(r.status_code, 413)
        import requests

        def chunks():
            for _ in range(MAX_REQUEST // 8192 + 4):
                yield b" " * 8192
        r = requests.post(self.url, data=chunks(), headers={"Authorization": "Bearer " + INJECT_TOKEN}, timeout=30)
        self.assertEqual(r.status_code, 413)
        base = {"envelope_sender": "a@good.test", "recipients": [{"email": "v@good.test"}],
                "substitutions": {"x": 1}}
        cases = [
            ({"content": {"from": {"email": "a@good.test"}, "text_body": "x",
                          "attachments": [{"data": "!!!not base64", "base64": True, "file_name": "evil.pdf",
                                           "content_type": "application/pdf"}]}}, "evil.pdf"),
            ({"content": {"from": {"email": "a@good.test"}, "text_body": "x",
                          "headers": {"X-Ok": "fine\r\nBcc: victim@else.test"}}}, "CR, LF or NUL"),
            ({"content": {"from": {"email": "a@good.test"}, "text_body": "x",
                          "headers": {"X-Bad\r\nBcc": "victim@else.test"}}}, "not a valid header name"),
            ({"content": {"from": {"email": "a@good.test"}, "subject": "hi\nBcc: victim@else.test"}}, "CR, LF"),
            ({"content": {"from": {"email": "a@good.test", "name": "x\r\nBcc: v@else.test"}, "text_body": "x"}},
             "CR, LF or NUL"),
            ({"content": "Subject: x\r\n\r\nbare \r cr\r\n"}, "bare CR"),
            ({"content": "no header here"}, "header field"),
            ({"content": {"from": {"email": "a@good.test"}, "subject": "{{" + "\u00e9" * 40 + "}}"}},
             "unsupported template expression"),
        ]
        for extra, needle in cases:
            doc = dict(base, **extra)
            r = self.post(doc)
            self.assertEqual(r.status_code, 200, r.text)  # per-recipient failure in the KumoMTA shape
            self.assertEqual(r.json()["success_count"], 0, (extra, r.text))
            self.assertIn(needle, " ".join(r.json()["errors"]), extra)
        for doc, needle in [({"recipients": [{"email": "v@good.test"}], "content": "Subject: x\r\n\r\n"},
                             "envelope_sender"),
                            (dict(base, content=5), "content"),
                            (dict(base, recipients=[], content="S: x\r\n\r\n"), "recipients"),
                            (dict(base, recipients=[{"email": "x%d@good.test" % i} for i in range(51)],
                                  content="S: x\r\n\r\n"), "at most 50"),
                            (dict(base, content="S: x\r\n\r\n", extra=1), "unknown field"),
                            (dict(base, content="S: x\r\n\r\n", **{"k" * 63 + "\u00e9": 1}), "unknown field"),
                            (dict(base, content="Subject: x\r\n\r\nnul \u0000 here\r\n"), "\\u0000")]:
            r = self.post(doc)
            self.assertEqual(r.status_code, 400, (doc, r.text))
            self.assertIn(needle, r.json()["error"])
        # invalid addresses are per-recipient errors; the good ones are still accepted
        doc = {"envelope_sender": "a@good.test", "content": "Subject: mixed\r\n\r\nok\r\n",
               "recipients": [{"email": "good1@good.test"}, {"email": "not an address"},
                              {"email": "a@b@good.test"}, {"email": "x\r\n@good.test"}, {"email": ""},
                              {"email": "good2@good.test"}]}
        r = self.post(doc)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json()["success_count"], 2, r.text)
        self.assertEqual(r.json()["fail_count"], 4, r.text)
        wait_for(lambda: self.sink.count() == 1, 30, what="the good recipients' delivery")
        self.assertEqual(sorted(self.sink.messages[0][1]), ["good1@good.test", "good2@good.test"])
        self.assertEqual(self.node.counter("spool", "messages_stored") - stored0, 1)
        with self.sink.lock:
            for m in self.sink.messages:
                self.assertNotIn(b"victim", m[2])
        self.assertEqual(self.node.instances()["ingress[0]"]["restarts"], 0)

    def test_accounting_every_recipient_of_every_200_delivered_once(self):
        self.start()
        accepted = {}  # recipient -> id, from the 200 answers only
        lock = threading.Lock()

        def client(k):
            for i in range(6):
                rc = [{"email": "c%d-%d-%d@good.test" % (k, i, j), "substitutions": {"j": j} if j % 2 else {}}
                      for j in range(4)]
                r = self.post({"envelope_sender": "s@good.test", "recipients": rc,
                               "content": {"from": {"email": "s@good.test"}, "subject": "acct",
                                           "text_body": "n"}})
                if r.status_code == 200:
                    with lock:
                        for x in r.json()["results"]:
                            if "id" in x:
                                accepted[x["email"]] = x["id"]
        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(accepted), 96)
        wait_for(lambda: sum(len(m[1]) for m in list(self.sink.messages)) >= 96, 60, what="all delivered")
        time.sleep(1)
        for rcpt in accepted:
            self.assertEqual(self.sink.delivered_to(rcpt), 1, rcpt)
        wait_for(lambda: len(self.log_of("Delivery")) >= 96, 15, what="Delivery records")
        dl = {(r["id"], r["recipient"]) for r in self.log_of("Delivery")}
        for rcpt, mid in accepted.items():
            self.assertIn((mid, rcpt), dl)

    def test_200_only_after_the_spool_fsync(self):
        self.start(ingress='spool_timeout = "20s"')
        hold = 3.0
        tr = hold_fsyncs(self.node.instances()["spool[0]"]["pid"], hold, when="enter")
        if tr is None:
            self.skipTest("strace is not installed or cannot ptrace the spool here")
        self.addCleanup(lambda: (tr.poll() is None and tr.kill(), tr.wait()))
        stored0 = self.node.counter("spool", "messages_stored")
        out = {}

        def send():
            t0 = time.monotonic()
            r = self.post({"envelope_sender": "s@good.test", "recipients": [{"email": "d@good.test"}],
                           "content": "Subject: durable\r\n\r\nx\r\n"})
            out["status"], out["elapsed"] = r.status_code, time.monotonic() - t0
            out["stored"] = self.node.counter("spool", "messages_stored")
        t = threading.Thread(target=send)
        t.start()
        time.sleep(hold * 0.6)
        self.assertNotIn("status", out, "answered while the spool's fsync is still held")
        t.join(30)
        self.assertEqual(out["status"], 200)
        self.assertGreaterEqual(out["elapsed"], hold * 0.9)
        self.assertGreater(out["stored"], stored0, "the 200 came after the commit")

    def test_policy_http_message_generated_rejects_and_sets_meta(self):
        self.start(policy="""
kumo.on('http_message_generated', function(msg)
  if msg:get_first_named_header_value('Subject') == 'reject me' then
    kumo.reject(550, '5.7.1 refused by policy')
  end
  local t = msg:get_first_named_header_value('X-Tenant')
  if t then msg:set_meta('tenant', t) end
end)
""")
        doc = {"envelope_sender": "s@good.test",
               "recipients": [{"email": "p1@good.test", "substitutions": {"s": "reject me"}},
                              {"email": "p2@good.test", "substitutions": {"s": "welcome"}}],
               "content": {"from": {"email": "s@good.test"}, "subject": "{{ s }}", "text_body": "x",
                           "headers": {"X-Tenant": "acme"}}}
        r = self.post(doc)
        self.assertEqual(r.status_code, 200, r.text)
        res = r.json()
        self.assertEqual(res["failed_recipients"], ["p1@good.test"], res)
        self.assertIn("550 5.7.1 refused by policy", res["errors"][0])
        wait_for(lambda: self.sink.count() == 1, 30, what="the accepted message delivered")
        self.assertEqual(self.sink.messages[0][1], ["p2@good.test"])
        wait_for(lambda: self.log_of("Reception"), 10, what="Reception record")
        rec = self.log_of("Reception")[0]
        self.assertEqual(rec["meta"].get("tenant"), "acme", rec)
        self.assertEqual(rec["meta"].get("reception_protocol"), "HTTP", rec)
        self.assertEqual(rec["queue"], "acme@good.test", rec)

    def test_tls_listener_and_trusted_networks(self):
        tmp = tempfile.mkdtemp(prefix="ringmail-http-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        for f in (cert, key):
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        tls_port, closed_port = free_port(), free_port()
        self.start(listeners='[[http_listener]]\nlisten = "127.0.0.1:%d"\ntls_certificate = "%s"\n'
                             'tls_private_key = "%s"\n[[http_listener]]\nlisten = "127.0.0.1:%d"\n'
                             'trusted_networks = ["10.0.0.0/8"]\n' % (tls_port, cert, key, closed_port))
        doc = json.dumps({"envelope_sender": "s@good.test", "recipients": [{"email": "tls@good.test"}],
                          "content": "Subject: over TLS\r\n\r\nx\r\n"}).encode()
        code, text = self.curl(doc, url="https://127.0.0.1:%d/api/inject/v1" % tls_port, extra=["--cacert", cert])
        self.assertEqual(code, 200, text)
        wait_for(lambda: self.sink.count() == 1, 30, what="delivery of the HTTPS injection")
        code, _ = self.curl(doc, url="http://127.0.0.1:%d/api/inject/v1" % tls_port)
        self.assertNotEqual(code, 200, "plain HTTP on the TLS listener")
        # 127.0.0.1 is not in the second listener's trusted_networks: dropped at accept, no answer
        code, _ = self.curl(doc, url="http://127.0.0.1:%d/api/inject/v1" % closed_port)
        self.assertEqual(code, 0)
        self.assertEqual(self.sink.count(), 1)

    def test_slow_body_is_cut_at_the_request_timeout(self):
        import socket
        port = free_port()
        self.start(listeners='[[http_listener]]\nlisten = "127.0.0.1:%d"\nrequest_timeout = "2s"\n' % port)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(("POST /api/inject/v1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: 1000\r\n\r\n" % INJECT_TOKEN).encode())
        t0 = time.monotonic()
        cut = None
        for _ in range(40):  # 1 byte every 0.25 s: never idle for the 2 s, 10 s in all
            try:
                s.sendall(b" ")
            except OSError:
                cut = time.monotonic() - t0
                break
            time.sleep(0.25)
        if cut is None:
            s.settimeout(2)
            try:
                cut = time.monotonic() - t0 if s.recv(100) == b"" else None
            except OSError:
                cut = time.monotonic() - t0
        self.assertIsNotNone(cut, "a trickled body outlived the request timeout")
        self.assertLess(cut, 8.0)
        # the listener still serves others
        r = self.post({"envelope_sender": "s@good.test", "recipients": [{"email": "after@good.test"}],
                       "content": "Subject: a\r\n\r\nx\r\n"})
        self.assertEqual(r.status_code, 200)

    def test_connections_over_the_limit_are_refused_others_served(self):
        import socket
        port = free_port()
        self.start(listeners='[[http_listener]]\nlisten = "127.0.0.1:%d"\nmax_connections = 2\n' % port)
        held = []
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"POST /api/inject/v1 HTTP/1.1\r\nHost: x\r\n")  # an unfinished request holds its slot
            held.append(c)
            self.addCleanup(c.close)
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(extra.close)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(100)
        except OSError:
            got = b""
        self.assertEqual(got, b"", "the third connection is closed unanswered")
        for c in held:
            c.close()
        url = "http://127.0.0.1:%d/api/inject/v1" % port
        doc = json.dumps({"envelope_sender": "s@good.test", "recipients": [{"email": "lim@good.test"}],
                          "content": "Subject: a\r\n\r\nx\r\n"}).encode()
        wait_for(lambda: self.curl(doc, url=url)[0] == 200, 10, what="served once the slots are free")

    def test_ringmail_gen_http_drives_the_api(self):
        self.start()
        gen = os.path.join(BUILD_DIR, "tools", "ringmail-gen")
        p = subprocess.run([gen, "--http", self.url, "--http-token", INJECT_TOKEN, "--message-count", "20",
                            "--concurrency", "2", "--recipients", "2", "--domain", "good.test", "--json"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        stats = json.loads(p.stdout)
        self.assertEqual((stats["sent"], stats["failed"]), (20, 0), stats)
        self.assertEqual(stats["latency_us"]["count"], 20, stats)  # time-to-200 of every message
        wait_for(lambda: sum(len(m[1]) for m in list(self.sink.messages)) >= 40, 60, what="gen's mail delivered")


if __name__ == "__main__":
    import unittest
    unittest.main()
