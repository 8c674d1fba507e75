"""End-to-end DKIM signing: smtplib -> ringmail (with [[dkim]] signers) -> a recording Sink, and EVERY
received message checked by two independent verifiers, each signature by itself:

  - `dkimverify --index N` (python3-dkim) and
  - `opendkim-testmsg` (opendkim-tools, libopendkim),

both finding the public keys in DNS: a real unbound (tests/lib/peers.py DnsServer) serves the
selector TXT records on port 53 of a loopback address of this test, and each verifier runs in its own
mount namespace (`unshare --mount`) where /etc/resolv.conf is bind-mounted to a file naming that
address. Neither tool has an option for a resolver address or port, and glibc's resolver (which both
use, through dnspython and libresolv) only speaks to port 53 of the servers in resolv.conf: the
namespace changes nothing outside the verifier process. The keys are made by the test with
`openssl genpkey` (RSA 2048 and Ed25519).

    /usr/bin/python3 tests/e2e/dkim_test.py -k two_signers
"""
import base64
import os
import random
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, wait_for  # noqa: E402
from peers import DnsServer, PeersCase, Sink  # noqa: E402

MESON = {"suite": "dkim", "timeout": 300}

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DKIMVERIFY = shutil.which("dkimverify") or "/usr/bin/dkimverify"
TESTMSG = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
ID_RE = re.compile(r"id=([0-9a-f]{32})")

# the messages of the delivery test: (name, header lines, body bytes)
LONG = b"x" * 990
MESSAGES = [
    ("plain", [b"Subject: plain", b"To: r@dest.test"], b"Hello.\r\n"),
    ("eightbit", [b"Subject: caf\xc3\xa9", b"Content-Type: text/plain; charset=utf-8",
                  b"Content-Transfer-Encoding: 8bit"], "Grüße — ünïcödé\r\n".encode() + b"\xff\xfe raw octets\r\n"),
    ("long-lines", [b"Subject: long lines"], LONG + b"\r\n" + b"y " * 499 + b"\r\n"),
    ("empty-body", [b"Subject: empty body"], b""),
    ("folded", [b"Subject: a subject folded\r\n  over three\r\n\tlines", b"To: a@dest.test,\r\n b@dest.test"],
     b"folded headers\r\n"),
    # Comments may appear more than once (RFC 5322 3.6); To may not, and libopendkim refuses a message with two
    ("trailing-space-duplicates", [b"Subject: trailing", b"Comments: one", b"To: a@dest.test", b"Comments: two"],
     b"a  \r\n \t\r\n\r\n\r\n"),
]


def loopback_53():
    """A 127.x.y.z address of this test whose port 53 is free (UDP and TCP)."""
    for _ in range(50):
        host = "127.%d.%d.%d" % (random.randint(64, 250), random.randint(1, 250), random.randint(2, 250))
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, 53))
                s.close()
            return host
        except OSError:
            continue
    raise unittest.SkipTest("no loopback address with a free port 53")


def txt_record(name, pub_der, ed):
    """unbound local-data of a DKIM key record, the p= split in strings of at most 255 octets."""
    p = base64.b64encode(pub_der[-32:] if ed else pub_der).decode()
    value = "v=DKIM1; k=%s; p=%s" % ("ed25519" if ed else "rsa", p)
    parts = [value[i:i + 200] for i in range(0, len(value), 200)]
    return "%s 60 IN TXT %s" % (name, " ".join('"%s"' % x for x in parts))


class DkimCase(PeersCase):
    def setUp(self):
        super().setUp()
        for tool in (OPENSSL, DKIMVERIFY, TESTMSG, UNSHARE):
            if not os.path.exists(tool):
                self.skipTest("%s is not installed (tools/install-deps.sh)" % tool)
        self.keydir = tempfile.mkdtemp(prefix="ringmail-dkim-")
        os.chmod(self.keydir, 0o755)
        self.addCleanup(shutil.rmtree, self.keydir, True)
        self.keys = {}
        records = []
        for name, alg, bits in (("rsa", "RSA", 2048), ("ed", "ED25519", 0), ("esp", "RSA", 2048),
                                ("small", "RSA", 1024)):
            path = os.path.join(self.keydir, name + ".pem")
            args = [OPENSSL, "genpkey", "-algorithm", alg, "-out", path]
            if bits:
                args += ["-pkeyopt", "rsa_keygen_bits:%d" % bits]
            subprocess.run(args, check=True, capture_output=True, timeout=60)
            os.chmod(path, 0o644)  # the roles run as an unprivileged user when the test runs as root
            der = subprocess.run([OPENSSL, "pkey", "-in", path, "-pubout", "-outform", "DER"], check=True,
                                 capture_output=True, timeout=30).stdout
            self.keys[name] = path
            self.keys[name + ".der"] = der
        records.append(txt_record("rr._domainkey.example.test.", self.keys["rsa.der"], False))
        records.append(txt_record("ed._domainkey.example.test.", self.keys["ed.der"], True))
        records.append(txt_record("esp._domainkey.esp.test.", self.keys["esp.der"], False))
        if not self.can_unshare():
            self.skipTest("unshare --mount is not permitted here: the verifiers cannot be pointed at the test DNS")
        self.dns = DnsServer(records, host=loopback_53(), port=53)
        self.resolv = os.path.join(self.keydir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions attempts:2 timeout:2\n" % self.dns.host)

    @staticmethod
    def can_unshare():
        try:
            p = subprocess.run([UNSHARE, "--mount", "--fork", "true"], capture_output=True, timeout=10)
            return p.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def signers(self, extra=""):
        return ('[[dkim]]\ndomain = "example.test"\nselector = "rr"\nkey_file = "%s"\nexpiration = "1d"\n'
                '[[dkim]]\nname = "ed"\ndomain = "example.test"\nselector = "ed"\nkey_file = "%s"\n'
                'algorithm = "ed25519-sha256"\nheader_canonicalization = "simple"\nbody_canonicalization = "simple"\n'
                '[[dkim]]\nname = "esp"\ndomain = "esp.test"\nselector = "esp"\nkey_file = "%s"\n'
                'header_canonicalization = "simple"\n'
                'headers = ["From", "From", "Subject", "Comments", "Comments", "Comments", "To"]\n%s' % (self.keys["rsa"], self.keys["ed"], self.keys["esp"], extra))

    def start(self, config):
        self.sinkp = self.peer(Sink())
        eg = '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        self.node = Node(config_extra='[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n%s' % (self.sinkp.port, config),
                         egress=eg, park_delivery=False).start()
        return self.node

    def send(self, sender, from_hdr, headers, body):
        data = b"From: " + from_hdr + b"\r\nDate: Mon, 07 Dec 2026 05:00:00 +0000\r\nMessage-ID: <" + \
            str(time.monotonic_ns()).encode() + b"@example.test>\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=10)
        try:
            c.ehlo("client.test")
            c.mail(sender, ["BODY=8BITMIME"])
            self.assertEqual(c.rcpt("r@dest.test")[0], 250)
            code, reply = c.data(data)
            self.assertEqual(code, 250, reply)
        finally:
            c.quit()

    def in_ns(self, args, data):
        """Run a verifier with /etc/resolv.conf naming the test's DNS server (its own mount namespace)."""
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return subprocess.run([UNSHARE, "--mount", "--fork", "sh", "-c", script, self.resolv] + args, input=data,
                              capture_output=True, timeout=60)

    def verify_all(self, data, want):
        """Every DKIM-Signature of data verifies with both tools; want: the d=/s= pairs expected."""
        head = data.split(b"\r\n\r\n", 1)[0]
        sigs = re.findall(rb"(?im)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head)
        got = []
        for s in sigs:
            flat = re.sub(rb"\s+", b"", s)
            got.append((re.search(rb"d=([^;]+)", flat).group(1).decode(), re.search(rb"s=([^;]+)", flat).group(1).decode()))
        self.assertEqual(sorted(got), sorted(want), head[:2000])
        for i in range(len(sigs)):
            p = self.in_ns([DKIMVERIFY, "--index", str(i)], data)
            self.assertEqual(p.returncode, 0, "dkimverify --index %d: %s %s\n%s" % (i, p.stdout, p.stderr, head.decode(
                "utf-8", "replace")))
        # libopendkim verifies every signature of the message; a failing one is reported on stderr
        p = self.in_ns([TESTMSG], data)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, b""), "opendkim-testmsg\n%s" % head.decode(
            "utf-8", "replace"))
        return sigs


class DkimSigningTest(DkimCase):
    def test_two_signers_every_message_verifies_with_dkimverify_and_opendkim(self):
        self.start(self.signers())
        for _, headers, body in MESSAGES:
            self.send("bounce@esp.test", b"Alice <alice@example.test>", headers, body)
        wait_for(lambda: self.sinkp.count() == len(MESSAGES), 30, what="every message at the sink")
        for (name, _, _), (_, _, data) in zip(MESSAGES, self.sinkp.messages):
            with self.subTest(message=name):
                # author domain (RSA and Ed25519) and ESP domain by the envelope sender: three signatures
                sigs = self.verify_all(data, [("example.test", "rr"), ("example.test", "ed"), ("esp.test", "esp")])
                flat = [re.sub(rb"\s+", b"", s) for s in sigs]
                self.assertTrue(any(b"a=ed25519-sha256" in f and b"c=simple/simple" in f for f in flat), flat)
                self.assertTrue(any(b"a=rsa-sha256" in f and b"x=" in f and b"h=From:From:To:Subject:" in f
                                    for f in flat), flat)
                # the ESP signer's own list: both Comments fields signed and a third one forbidden
                self.assertTrue(any(b"h=From:From:Subject:Comments:Comments:Comments:To;" in f for f in flat), flat)
                for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
                    if line.lower().startswith(b"dkim-signature") or line.startswith(b"\t"):
                        self.assertLessEqual(len(line), 78, line)

    def test_unmatched_domain_is_sent_unsigned_and_changed_copies_fail(self):
        self.start(self.signers())
        self.send("someone@other.test", b"x@other.test", [b"Subject: nobody signs"], b"body\r\n")
        self.send("alice@example.test", b"alice@example.test", [b"Subject: one domain"], b"body\r\n")
        wait_for(lambda: self.sinkp.count() == 2, 30, what="2 messages at the sink")
        by_subject = {re.search(rb"Subject: ([^\r]*)", d).group(1): d for _, _, d in self.sinkp.messages}
        self.assertNotIn(b"DKIM-Signature", by_subject[b"nobody signs"])
        data = by_subject[b"one domain"]
        self.verify_all(data, [("example.test", "rr"), ("example.test", "ed")])
        # a second From (over-signed) and a changed body must break the signatures
        head, body = data.split(b"\r\n\r\n", 1)
        for changed in (head + b"\r\nFrom: mallory@evil.test\r\n\r\n" + body, head + b"\r\n\r\n" + body + b"P.S.\r\n"):
            p = self.in_ns([DKIMVERIFY, "--index", "0"], changed)
            self.assertNotEqual(p.returncode, 0, p.stdout)
            p = self.in_ns([TESTMSG], changed)
            self.assertNotEqual((p.returncode, p.stdout + p.stderr), (0, b""))

    def test_policy_metadata_chooses_the_signers(self):
        policy = os.path.join(self.keydir, "policy.lua")
        with open(policy, "w") as f:
            f.write("kumo.on('smtp_server_message_received', function(msg)\n"
                    "  local s = msg:get_first_named_header_value('X-Signers')\n"
                    "  if s then msg:set_meta('dkim_signers', s) end\nend)\n")
        os.chmod(policy, 0o644)
        self.start(self.signers() + '[policy]\nfile = "%s"\n' % policy)
        self.send("alice@example.test", b"alice@example.test", [b"Subject: only ed", b"X-Signers: ed"], b"a\r\n")
        self.send("alice@example.test", b"alice@example.test", [b"Subject: plus esp", b"X-Signers: +esp"], b"b\r\n")
        self.send("alice@example.test", b"alice@example.test", [b"Subject: none", b"X-Signers: none"], b"c\r\n")
        wait_for(lambda: self.sinkp.count() == 3, 30, what="3 messages at the sink")
        by_subject = {re.search(rb"Subject: ([^\r]*)", d).group(1): d for _, _, d in self.sinkp.messages}
        self.verify_all(by_subject[b"only ed"], [("example.test", "ed")])
        self.verify_all(by_subject[b"plus esp"], [("example.test", "rr"), ("example.test", "ed"), ("esp.test", "esp")])
        self.assertNotIn(b"DKIM-Signature", by_subject[b"none"])


class DkimKeyTest(DkimCase):
    def check_config(self, text):
        path = os.path.join(self.keydir, "check.toml")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([os.path.join(BUILD_DIR, "ringmaild"), "--config", path, "--check-config"],
                              capture_output=True, text=True, timeout=30)

    def test_small_missing_or_wrong_keys_refused_with_file_and_line(self):
        p = self.check_config('[[dkim]]\ndomain = "a.test"\nselector = "s"\nkey_file = "%s"\n' % self.keys["small"])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"check\.toml:4: dkim: key_file .*1024 bits")
        p = self.check_config('[[dkim]]\ndomain = "a.test"\nselector = "s"\n\nkey_file = "%s/none.pem"\n' % self.keydir)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stdout + p.stderr, r"check\.toml:5: dkim: key_file .*cannot be read")
        p = self.check_config('[[dkim]]\ndomain = "a.test"\nselector = "s"\nkey_file = "%s"\n' % self.keys["ed"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("not an RSA key", p.stdout + p.stderr)
        p = self.check_config(self.signers())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_reload_with_a_missing_key_is_refused_and_signing_goes_on(self):
        node = self.start(self.signers())
        gone = os.path.join(self.keydir, "gone.pem")
        node.write_config(node.base_config + '[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % self.sinkp.port +
                          self.signers().replace(self.keys["rsa"], gone))
        p = node.ringctl("reload")
        self.assertNotEqual(p.returncode, 0)
        wait_for(lambda: "gone.pem" in node.log() and "cannot be read" in node.log(), 5, what="the refusal logged")
        self.send("alice@example.test", b"alice@example.test", [b"Subject: after reload"], b"x\r\n")
        wait_for(lambda: self.sinkp.count() == 1, 30, what="the message at the sink")
        self.verify_all(self.sinkp.messages[0][2], [("example.test", "rr"), ("example.test", "ed")])


if __name__ == "__main__":
    unittest.main()
