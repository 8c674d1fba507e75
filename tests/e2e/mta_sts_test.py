"""MTA-STS (RFC 8461) for outbound delivery against real peers on loopback: unbound serves the MX, the
_mta-sts TXT records and mta-sts.DOMAIN; a Python HTTPS server (http.server + ssl, certificate from the
test's own CA, port 443 of a loopback address) serves the policies; aiosmtpd sinks take the mail, with and
without STARTTLS, with certificates valid or not for their MX name. [egress] tls_ca_file makes the test CA
the trust store of both the SMTP client and the policy fetch. Checks are made at the receivers, in the
node's Delivery / TransientFailure records (`mta_sts`, `site`), its log lines, and the policy server's
own count of fetches.

    /usr/bin/python3 tests/e2e/mta_sts_test.py -k enforce
"""
import http.server
import json
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402
from peers import DnsServer, PeersCase, Sink, free_udp_tcp_port  # noqa: E402
from pki import make_ca, make_leaf, server_context  # noqa: E402

MESON = {"suite": "mta_sts", "timeout": 300}

ID_RE = re.compile(r"id=([0-9a-f]{32})")
DOMAINS = ("enf.test", "plain.test", "clear.test", "pick.test", "nomatch.test", "testing.test", "none.test", "idc.test",
           "off.test", "nopol.test", "badcert.test", "ctype.test", "redir.test")


def enforce(*mx, mode="enforce"):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n" % (mode, "".join("mx: %s\r\n" % m for m in mx))


class PolicyServer:
    """HTTPS on ADDR:443 serving /.well-known/mta-sts.txt by Host header from `policies`
    (host -> text, or (status, headers, text)); counts the fetches per host."""

    def __init__(self, addr, ctx):
        self.policies = {}
        self.fetches = {}
        self.lock = threading.Lock()
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                with srv.lock:
                    srv.fetches[host] = srv.fetches.get(host, 0) + 1
                    body = srv.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                status, headers = 200, {"Content-Type": "text/plain"}
                if isinstance(body, tuple):
                    status, headers, body = body
                data = body.encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((addr, 443), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, host):
        with self.lock:
            return self.fetches.get(host, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def policy_addr():
    """A loopback address whose port 443 is free (several engineers, or two scenarios, may share the
    machine): taken at random, so that two scenarios probing at once do not both pick the first free one."""
    for _ in range(60):
        addr = "127.%d.%d.83" % (random.randint(64, 250), random.randint(1, 250))
        s = socket.socket()
        try:
            s.bind((addr, 443))
            return addr
        except OSError:
            continue
        finally:
            s.close()
    raise unittest.SkipTest("no loopback address with a free port 443")


class MtaStsCase(PeersCase):
    txt = {d: "1" for d in DOMAINS if d != "plain.test"}

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("port 443 needs root")
        self.addr = policy_addr()
        self.records = self.zone()
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ringmail-sts-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        make_ca(self.tmp)
        make_leaf(self.tmp, "good", ["mx.enf.test", "mx2.pick.test", "mx.idc.test", "mx.off.test"])
        make_leaf(self.tmp, "wrong", ["other.test"])
        make_leaf(self.tmp, "policy", ["mta-sts." + d for d in DOMAINS])
        self.https = self.peer(PolicyServer(self.addr, server_context(self.tmp, "policy")))
        self.port = free_udp_tcp_port("127.0.0.2")

    def zone(self, ids=None):
        ids = dict(self.txt, **(ids or {}))
        r = [
            "enf.test. 1 IN MX 10 mx.enf.test.", "mx.enf.test. 60 IN A 127.0.0.2",
            "plain.test. 1 IN MX 10 mx.plain.test.", "mx.plain.test. 60 IN A 127.0.0.3",
            "clear.test. 1 IN MX 10 mx.clear.test.", "mx.clear.test. 60 IN A 127.0.0.3",
            # the preferred MX is not in the policy: it must never be used
            "pick.test. 1 IN MX 10 mx1.pick.test.", "pick.test. 1 IN MX 20 mx2.pick.test.",
            "mx1.pick.test. 60 IN A 127.0.0.3", "mx2.pick.test. 60 IN A 127.0.0.2",
            "nomatch.test. 1 IN MX 10 mx.nomatch.test.", "mx.nomatch.test. 60 IN A 127.0.0.2",
            "testing.test. 1 IN MX 10 mx.testing.test.", "mx.testing.test. 60 IN A 127.0.0.4",
            "none.test. 1 IN MX 10 mx.none.test.", "mx.none.test. 60 IN A 127.0.0.3",
            "idc.test. 1 IN MX 10 mx.idc.test.", "mx.idc.test. 60 IN A 127.0.0.2",
            "off.test. 1 IN MX 10 mx.off.test.", "mx.off.test. 60 IN A 127.0.0.3",
            "nopol.test. 1 IN MX 10 mx.nopol.test.", "mx.nopol.test. 60 IN A 127.0.0.3",
            "badcert.test. 1 IN MX 10 mx.badcert.test.", "mx.badcert.test. 60 IN A 127.0.0.4",
            "ctype.test. 1 IN MX 10 mx.ctype.test.", "mx.ctype.test. 60 IN A 127.0.0.3",
            "redir.test. 1 IN MX 10 mx.redir.test.", "mx.redir.test. 60 IN A 127.0.0.3",
        ]
        for d in DOMAINS:
            r.append("mta-sts.%s. 60 IN A %s" % (d, self.addr))
            if d in ids:
                r.append('_mta-sts.%s. 1 IN TXT "v=STSv1; id=%s"' % (d, ids[d]))
        return r

    def start(self, shaping="", config=""):
        path = os.path.join(self.tmp, "shaping.toml")
        with open(path, "w") as f:
            f.write(shaping)
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, self.port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "1s"\ntls_ca_file = "%s"' % os.path.join(self.tmp, "ca.pem")
        cfg = '[shaping]\nfiles = ["%s"]\n[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "2s"\n%s' % (
            path, config)
        self.node = Node(config_extra=cfg, egress=eg, park_delivery=False).start()
        return self.node

    def sink(self, host, cert=None):
        return self.peer(Sink(host, self.port, tls_context=server_context(self.tmp, cert) if cert else None))

    def send(self, rcpt):
        reply = smtp_send(self.node.smtp_port, "s@client.test", rcpt,
                          b"Subject: t\r\nFrom: s@client.test\r\n\r\nhello\r\n", timeout=20)
        return ID_RE.search(reply).group(1)

    def records_of(self, typ, msg_id):
        return [r for r in self.node.log_records() if r["type"] == typ and r["id"] == msg_id]

    def record(self, typ, msg_id, timeout=30):
        return wait_for(lambda: self.records_of(typ, msg_id), timeout, what="the %s record" % typ)[0]


class EnforceTest(MtaStsCase):
    def test_enforce_delivers_over_verified_tls(self):
        self.https.policies["mta-sts.enf.test"] = enforce("mx.enf.test")
        sink = self.sink("127.0.0.2", "good")
        # OpportunisticInsecure in the files: the policy makes it Required (verified)
        self.start('["enf.test"]\nenable_tls = "OpportunisticInsecure"\n')
        rec = self.record("Delivery", self.send("r@enf.test"))
        self.assertEqual(sink.count(), 1)
        self.assertIsNotNone(sink.tls[0], "delivered in plaintext")
        self.assertEqual(rec.get("mta_sts"), "enforce", rec)
        self.assertTrue(rec["site"].startswith("mx.enf.test;mta-sts=enforce:"), rec["site"])
        self.assertIn("CN=mx.enf.test", rec.get("tls_peer_subject_name", []), rec)
        self.assertEqual(self.https.count("mta-sts.enf.test"), 1)
        self.assertIn("mta-sts: domain enf.test: policy id 1, mode enforce", self.node.log())
        # operators see the mode in force per path: the ready queue's name and inspect-ready-q
        rows = json.loads(self.node.ringctl("--json", "queue-summary", check=True).stdout)["rows"]
        path = [r for r in rows if r["site"] == rec["site"]][0]["name"]
        out = self.node.ringctl("--json", "inspect-ready-q", path, check=True)
        self.assertEqual(json.loads(out.stdout)["path"]["mta_sts"], "enforce", out.stdout)

    def test_enforce_receiver_without_starttls_gets_nothing_in_plaintext(self):
        self.https.policies["mta-sts.clear.test"] = enforce("mx.clear.test")
        sink = self.sink("127.0.0.3")
        self.start()
        msg_id = self.send("r@clear.test")
        rec = self.record("TransientFailure", msg_id)
        self.assertEqual(rec.get("mta_sts"), "enforce", rec)
        time.sleep(3)  # retries come every second or two: none may go out in plaintext
        self.assertEqual(sink.count(), 0)
        self.assertFalse(self.records_of("Delivery", msg_id))
        # still queued, and visible as such
        out = self.node.ringctl("--json", "inspect-sched-q", "clear.test", check=True)
        self.assertEqual(json.loads(out.stdout)["queue"]["messages"], 1, out.stdout)

    def test_enforce_certificate_for_another_name_is_refused(self):
        self.https.policies["mta-sts.badcert.test"] = enforce("mx.badcert.test")
        sink = self.sink("127.0.0.4", "wrong")  # STARTTLS offered, certificate for other.test
        self.start()
        msg_id = self.send("r@badcert.test")
        rec = self.record("TransientFailure", msg_id)
        self.assertEqual(rec.get("mta_sts"), "enforce", rec)
        time.sleep(2)
        self.assertEqual(sink.count(), 0, "delivered despite a certificate for another name")

    def test_enforce_mx_not_in_policy_is_not_used(self):
        self.https.policies["mta-sts.pick.test"] = enforce("mx2.pick.test")
        self.https.policies["mta-sts.nomatch.test"] = enforce("*.elsewhere.test")
        bad = self.sink("127.0.0.3")
        good = self.sink("127.0.0.2", "good")
        self.start()
        rec = self.record("Delivery", self.send("r@pick.test"))
        self.assertEqual(rec["peer_address"]["name"], "mx2.pick.test", rec)
        self.assertEqual(good.count(), 1)
        self.assertEqual(bad.connections, 0, "the MX outside the policy was connected to")
        msg_id = self.send("r@nomatch.test")
        rec = self.record("TransientFailure", msg_id)
        self.assertIn("matches the policy's mx patterns", rec["response"]["content"], rec)
        self.assertEqual(good.delivered_to("r@nomatch.test"), 0)
        self.assertIn("MX host mx1.pick.test does not match the policy's mx patterns: not used", self.node.log())


class TestingTest(MtaStsCase):
    def test_testing_mode_with_bad_tls_delivers_and_reports(self):
        self.https.policies["mta-sts.testing.test"] = enforce("mx.testing.test", mode="testing")
        sink = self.sink("127.0.0.4", "wrong")  # its certificate does not name mx.testing.test
        self.start('["testing.test"]\nenable_tls = "OpportunisticInsecure"\n')
        rec = self.record("Delivery", self.send("r@testing.test"))
        self.assertEqual(sink.count(), 1)
        self.assertEqual(rec.get("mta_sts"), "testing", rec)
        wait_for(lambda: "mta-sts testing: domain testing.test: MX mx.testing.test" in self.node.log(), 10,
                 what="the testing-mode report")
        self.assertIn("TLS certificate not verified", self.node.log())


class DiscoveryTest(MtaStsCase):
    def test_no_txt_record_is_opportunistic_as_before(self):
        sink = self.sink("127.0.0.3")  # no STARTTLS at all
        self.start()
        rec = self.record("Delivery", self.send("r@plain.test"))
        self.assertEqual(sink.count(), 1)
        self.assertNotIn("mta_sts", rec)
        self.assertEqual(rec["site"], "mx.plain.test")
        self.assertEqual(self.https.count("mta-sts.plain.test"), 0)

    def test_failed_fetch_without_a_cached_policy_delivers_as_before(self):
        # the TXT record says there is a policy, but the server has none (404): no policy applies
        sink = self.sink("127.0.0.3")
        self.start()
        rec = self.record("Delivery", self.send("r@nopol.test"))
        self.assertEqual(sink.count(), 1)
        self.assertNotIn("mta_sts", rec)
        self.assertEqual(self.https.count("mta-sts.nopol.test"), 1)
        self.assertIn("mta-sts: domain nopol.test: policy fetch failed: HTTP status 404", self.node.log())

    def test_wrong_content_type_and_redirects_are_refused(self):
        # both would be enforce policies naming no MX of the domain: refused, they apply nothing
        self.https.policies["mta-sts.ctype.test"] = (200, {"Content-Type": "text/html"}, enforce("*.x.test"))
        self.https.policies["mta-sts.redir.test"] = (
            301, {"Location": "https://mta-sts.enf.test/.well-known/mta-sts.txt", "Content-Type": "text/plain"},
            enforce("*.x.test"))
        self.https.policies["mta-sts.enf.test"] = enforce("*.x.test")
        sink = self.sink("127.0.0.3")
        self.start()
        self.record("Delivery", self.send("r@ctype.test"))
        self.record("Delivery", self.send("r@redir.test"))
        self.assertEqual(sink.count(), 2)
        log = self.node.log()
        self.assertIn("mta-sts: domain ctype.test: policy fetch failed: Content-Type is text/html", log)
        self.assertIn("mta-sts: domain redir.test: policy fetch failed: HTTP status 301", log)
        self.assertEqual(self.https.count("mta-sts.enf.test"), 0, "a redirect was followed")

    def test_mode_none_applies_no_policy(self):
        self.https.policies["mta-sts.none.test"] = "version: STSv1\nmode: none\nmax_age: 86400\n"
        sink = self.sink("127.0.0.3")
        self.start()
        rec = self.record("Delivery", self.send("r@none.test"))
        self.assertEqual(sink.count(), 1)
        self.assertNotIn("mta_sts", rec)
        self.assertEqual(self.https.count("mta-sts.none.test"), 1)

    def test_txt_id_change_refetches_the_policy(self):
        # policy 1 names no MX of the domain: the mail waits
        self.https.policies["mta-sts.idc.test"] = enforce("mx.old.test")
        good = self.sink("127.0.0.2", "good")
        self.start()
        msg_id = self.send("r@idc.test")
        self.record("TransientFailure", msg_id)
        self.assertEqual(self.https.count("mta-sts.idc.test"), 1)
        # a new policy on the server alone changes nothing while the TXT id stays
        self.https.policies["mta-sts.idc.test"] = enforce("mx.idc.test")
        time.sleep(3)
        self.assertEqual(good.count(), 0)
        self.assertEqual(self.https.count("mta-sts.idc.test"), 1, "refetched without a new id")
        # the new id makes the node fetch it, and the mail goes
        port = self.dns.port
        self.dns.stop()
        self.dns = DnsServer(self.zone({"idc.test": "2"}), port=port)
        self.record("Delivery", msg_id, timeout=40)
        self.assertEqual(good.delivered_to("r@idc.test"), 1)
        self.assertEqual(self.https.count("mta-sts.idc.test"), 2)

    def test_enable_mta_sts_false_ignores_the_policy(self):
        self.https.policies["mta-sts.off.test"] = enforce("*.elsewhere.test")
        sink = self.sink("127.0.0.3")  # plaintext only, and not in the policy
        self.start('["off.test"]\nenable_mta_sts = false\n')
        rec = self.record("Delivery", self.send("r@off.test"))
        self.assertEqual(sink.count(), 1)
        self.assertNotIn("mta_sts", rec)
        self.assertEqual(self.https.count("mta-sts.off.test"), 0)


if __name__ == "__main__":
    unittest.main()
