"""SMTP AUTH for submission (AUTH-01..03 of TESTING.md, RFC 4954): PLAIN and LOGIN against a passwords file of
crypt(3) hashes (yescrypt and SHA-512), only under TLS (STARTTLS or an implicit-TLS listener), require_auth on
a listener, relay rights of an authenticated client, the per-address failure limit, with Python smtplib and
swaks. Every message a 250 accepted must reach the sink (the accounting invariant).

    /usr/bin/python3 tests/e2e/auth_test.py -k implicit
"""
import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, free_port, wait_for  # noqa: E402
from peers import PeersCase, Sink  # noqa: E402

MESON = {"suite": "auth", "timeout": 300}

ID_RE = re.compile(r"id=([0-9a-f]{32})")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # noqa: E402  (Python 3.11: the libcrypt binding, for the test's yescrypt hash)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the node's certificate is self-signed
    return ctx


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class AuthCase(PeersCase):
    def setUp(self):
        super().setUp()
        self.sink = self.peer(Sink("127.0.0.1"))
        self.implicit_port = free_port()
        self.submit_port = free_port()
        self.accepted = []  # queue ids of every 250 to DATA: each must be delivered

    def start(self, max_failures=3, policy=None):
        tmp = os.path.join("/tmp", "ringmail-auth-%d-%d" % (os.getpid(), time.monotonic_ns()))
        os.makedirs(tmp)
        self.addCleanup(shutil.rmtree, tmp, True)
        yes = crypt.crypt("alice-secret", "$y$j9T$" + "abcdefghijklmnop" + "$")
        sha = subprocess.run(["openssl", "passwd", "-6", "-salt", "ringmailsalt", "bob-secret"],
                             capture_output=True, text=True, check=True).stdout.strip()
        self.assertTrue(yes.startswith("$y$") and sha.startswith("$6$"), (yes, sha))
        pw = os.path.join(tmp, "passwords")
        with open(pw, "w") as f:
            f.write("# test users\nalice:%s\nbob:%s\n" % (yes, sha))
        os.chmod(tmp, 0o755)
        os.chmod(pw, 0o644)
        config = ""
        if policy:
            pf = os.path.join(tmp, "policy.lua")
            with open(pf, "w") as f:
                f.write(policy)
            os.chmod(pf, 0o644)
            config = '[policy]\nfile = "%s"\n' % pf
        config += """
[auth]
passwords_file = "%s"
max_failures_per_ip = %d
failure_window = "1m"
lockout = "1m"

[route."*"]
hosts = ["[127.0.0.1]:%d"]

[[listener]]
address = "127.0.0.1:%d"
tls = "implicit"

[[listener]]
address = "127.0.0.1:%d"
require_auth = true
""" % (pw, max_failures, self.sink.port, self.implicit_port, self.submit_port)
        eg = '\nconnect_timeout = "2s"\ncommand_timeout = "5s"\ndata_timeout = "5s"\nidle_timeout = "2s"'
        # nobody relays by address: only AUTH gives relay rights; local.test is open to all
        self.node = Node(config_extra=config, ingress='relay_networks = []\nrelay_domains = ["local.test"]',
                         egress=eg, park_delivery=False).start()
        return self.node

    def client(self, port=None, source="127.0.0.1", tls=True):
        c = smtplib.SMTP("127.0.0.1", port or self.node.smtp_port, timeout=10, source_address=(source, 0))
        self.addCleanup(c.close)
        c.ehlo("client.test")
        if tls:
            c.starttls(context=tls_context())
            c.ehlo("client.test")
        return c

    def send(self, c, rcpt, sender="s@client.test"):
        code, _ = c.mail(sender)
        self.assertEqual(code, 250)
        code, reply = c.rcpt(rcpt)
        self.assertEqual(code, 250, reply)
        code, reply = c.data(("Subject: t\r\nFrom: %s\r\nMessage-ID: <%d@client.test>\r\n\r\nhello\r\n" %
                              (sender, time.monotonic_ns())).encode())
        self.assertEqual(code, 250, reply)
        self.accepted.append(ID_RE.search(reply.decode()).group(1))
        return self.accepted[-1]

    def assert_all_delivered(self):
        """The accounting invariant: every 250 reached the sink, and the spool holds nothing more."""
        wait_for(lambda: self.sink.count() >= len(self.accepted), 20, what="every accepted message at the sink")
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 0, 20, what="queue empty")
        self.assertEqual(self.sink.count(), len(self.accepted))

    def records_of(self, typ):
        return [r for r in self.node.log_records() if r["type"] == typ]


class AuthTest(AuthCase):
    def test_no_auth_before_tls_538(self):
        self.start()
        c = self.client(tls=False)
        self.assertFalse(c.has_extn("auth"), c.esmtp_features)
        code, reply = c.docmd("AUTH", "PLAIN " + b64("\0alice\0alice-secret"))
        self.assertEqual(code, 538, reply)
        self.assertIn(b"5.7.11", reply)
        code, _ = c.docmd("AUTH", "LOGIN")
        self.assertEqual(code, 538)
        c.starttls(context=tls_context())
        c.ehlo("client.test")
        self.assertIn("PLAIN", c.esmtp_features.get("auth", ""))
        self.assertIn("LOGIN", c.esmtp_features.get("auth", ""))

    def test_plain_and_login_relay_with_esmtpsa_and_authn_id(self):
        self.start()
        c = self.client()
        c.user, c.password = "alice", "alice-secret"
        code, reply = c.auth("PLAIN", c.auth_plain)
        self.assertEqual(code, 235, reply)
        self.assertIn(b"2.7.0", reply)
        self.send(c, "r1@example.test")
        c.quit()
        # LOGIN without initial response (334 Username:, 334 Password:), SHA-512 hash
        c = self.client()
        c.user, c.password = "bob", "bob-secret"
        code, reply = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        self.assertEqual(code, 235, reply)
        self.send(c, "r2@example.test")
        code, _ = c.docmd("AUTH", "PLAIN " + b64("\0bob\0bob-secret"))
        self.assertEqual(code, 503)  # already authenticated
        c.quit()
        # LOGIN with the user name as initial response
        c = self.client()
        code, reply = c.docmd("AUTH", "LOGIN " + b64("alice"))
        self.assertEqual((code, reply), (334, b"UGFzc3dvcmQ6"))
        code, _ = c.docmd(b64("alice-secret"))
        self.assertEqual(code, 235)
        self.send(c, "r3@example.test")
        c.quit()
        self.assert_all_delivered()
        for _, _, data in self.sink.messages:
            self.assertRegex(data.decode(), r"Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby .* with ESMTPSA")
        recs = wait_for(lambda: [r for r in self.records_of("Reception") if r["meta"].get("authn_id")] or None, 10,
                        what="Reception records with authn_id")
        users = sorted(r["meta"]["authn_id"] for r in self.records_of("Reception"))
        self.assertEqual(users, ["alice", "alice", "bob"], recs)

    def test_plain_without_initial_response_cancel_and_bad_base64(self):
        self.start()
        c = self.client()
        self.assertEqual(c.docmd("AUTH", "PLAIN")[0], 334)
        self.assertEqual(c.docmd("*")[0], 501)
        self.assertEqual(c.docmd("AUTH", "PLAIN")[0], 334)
        self.assertEqual(c.docmd("not base64!")[0], 501)
        self.assertEqual(c.docmd("AUTH", "CRAM-MD5")[0], 504)
        self.assertEqual(c.docmd("AUTH", "PLAIN")[0], 334)
        self.assertEqual(c.docmd(b64("alice\0alice\0alice-secret"))[0], 235)
        self.send(c, "r@example.test")
        c.quit()
        self.assert_all_delivered()

    def test_wrong_password_535_logged_and_no_relay(self):
        self.start()
        c = self.client()
        c.user, c.password = "alice", "wrong-password-xyz"
        with self.assertRaises(smtplib.SMTPAuthenticationError) as ctx:
            c.auth("PLAIN", c.auth_plain)
        self.assertEqual(ctx.exception.smtp_code, 535)
        self.assertIn(b"5.7.8", ctx.exception.smtp_error)
        code, _ = c.docmd("AUTH", "PLAIN " + b64("\0nobody\0whatever"))
        self.assertEqual(code, 535)  # an unknown user is the same answer
        self.assertEqual(c.mail("s@client.test")[0], 250)
        code, reply = c.rcpt("r@example.test")
        self.assertEqual(code, 550, reply)
        self.assertIn(b"Relay access denied", reply)
        self.assertEqual(c.rcpt("r@local.test")[0], 250)
        c.rset()
        c.quit()
        self.assertIn("failed for user alice", self.node.log())
        self.assertIn("failed for user nobody", self.node.log())
        self.assertNotIn("wrong-password-xyz", self.node.log())
        rej = wait_for(lambda: [r for r in self.records_of("Rejection") if r["response"]["code"] == 535] or None,
                       10, what="Rejection records of the 535s")
        self.assertEqual(len(rej), 2, rej)
        self.assertTrue(all(r["peer_address"]["addr"].startswith("127.0.0.1") for r in rej), rej)
        self.assertNotIn("wrong-password-xyz", str(self.node.log_records()))

    def test_require_auth_refuses_mail_before_auth(self):
        self.start()
        c = self.client(port=self.submit_port)
        code, reply = c.mail("s@client.test")
        self.assertEqual(code, 530, reply)
        self.assertIn(b"5.7.0", reply)
        c.user, c.password = "bob", "bob-secret"
        self.assertEqual(c.auth("PLAIN", c.auth_plain)[0], 235)
        self.send(c, "r@example.test")
        c.quit()
        # the default listener does not require it: MAIL to a local domain without AUTH is fine
        c = self.client()
        self.assertEqual(c.mail("s@client.test")[0], 250)
        c.quit()
        self.assert_all_delivered()

    def test_implicit_tls_listener(self):
        self.start()
        c = smtplib.SMTP_SSL("127.0.0.1", self.implicit_port, timeout=10, context=tls_context())
        self.addCleanup(c.close)
        c.ehlo("client.test")
        self.assertIn("PLAIN", c.esmtp_features.get("auth", ""))
        self.assertFalse(c.has_extn("starttls"))
        c.login("alice", "alice-secret")
        self.send(c, "r@example.test")
        c.quit()
        # plaintext on the implicit port is a failed handshake, never a banner
        with socket.create_connection(("127.0.0.1", self.implicit_port), timeout=5) as s:
            s.sendall(b"EHLO client.test\r\n")
            data = s.recv(4096)
            self.assertFalse(data.startswith(b"220"), data)
        self.assert_all_delivered()

    def test_failures_lock_the_address_out(self):
        self.start(max_failures=3)
        c = self.client(source="127.0.0.7")
        for i in range(2):
            self.assertEqual(c.docmd("AUTH", "PLAIN " + b64("\0alice\0bad%d" % i))[0], 535)
        code, _ = c.docmd("AUTH", "PLAIN " + b64("\0alice\0bad2"))
        self.assertEqual(code, 535)
        code, reply = c.getreply()  # the third failure: 421 and the connection closes
        self.assertEqual(code, 421, reply)
        # locked out: even the right password is not tried, new connections get 421
        with self.assertRaises(smtplib.SMTPConnectError):
            smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10, source_address=("127.0.0.7", 0))
        # other addresses are not affected
        c = self.client(source="127.0.0.8")
        c.login("alice", "alice-secret")
        self.send(c, "r@example.test")
        c.quit()
        self.assertIn("127.0.0.7] locked out", self.node.log())
        self.assert_all_delivered()


class PolicyHookTest(AuthCase):
    POLICY = """
kumo.on('smtp_server_auth_plain', function(authz, authc, password, conn_meta)
  conn_meta:set_meta('auth_via', 'lua')
  return authc == 'carol' and password == 'lua-secret'
end)
"""

    def test_smtp_server_auth_plain_hook(self):
        self.start(policy=self.POLICY)
        c = self.client()
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            c.login("carol", "nope")
        c.user, c.password = "carol", "lua-secret"
        self.assertEqual(c.auth("PLAIN", c.auth_plain)[0], 235)
        self.send(c, "r@example.test")
        c.quit()
        # the file still decides for its own users (the hook is asked only when it does not accept)
        c = self.client()
        c.user, c.password = "alice", "alice-secret"
        self.assertEqual(c.auth("LOGIN", c.auth_login)[0], 235)
        self.send(c, "r2@example.test")
        c.quit()
        self.assert_all_delivered()
        recs = wait_for(lambda: len(self.records_of("Reception")) == 2 and self.records_of("Reception"), 10,
                        what="2 Reception records")
        metas = sorted((r["meta"].get("authn_id"), r["meta"].get("auth_via")) for r in recs)
        self.assertEqual(metas, [("alice", None), ("carol", "lua")], recs)


class SwaksTest(AuthCase):
    def swaks(self, *args):
        return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.node.smtp_port), "--tls",
                               "--from", "s@client.test", "--helo", "client.test", "--timeout", "10"] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_swaks_plain_login_and_wrong_password(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed (tools/install-deps.sh)")
        self.start(max_failures=10)
        for mech, user, pw in (("PLAIN", "alice", "alice-secret"), ("LOGIN", "bob", "bob-secret")):
            p = self.swaks("--to", "r-%s@example.test" % mech.lower(), "--auth", mech, "--auth-user", user,
                           "--auth-password", pw)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("235 2.7.0", p.stdout)
            self.accepted.append(ID_RE.search(p.stdout).group(1))
        p = self.swaks("--to", "r@example.test", "--auth", "PLAIN", "--auth-user", "alice",
                       "--auth-password", "nope")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("535 5.7.8", p.stdout)
        self.assert_all_delivered()


if __name__ == "__main__":
    unittest.main()
