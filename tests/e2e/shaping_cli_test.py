"""End-to-end tests of ringctl's offline shaping commands: `validate-shaping` and `resolve-shaping
--shaping` run as built, on KumoMTA's shipped default and community files (read from ../shared/data,
never copied into the tree), on the node's own default file, and on broken files, checking the
printed lines and the exit codes. No node is started.

    /usr/bin/python3 tests/e2e/shaping_cli_test.py
"""
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR  # noqa: E402

# meson: see discover.py
MESON = {"suite": "shaping", "tools": ["ringctl"], "node": False, "timeout": 60}

RINGCTL = os.path.join(BUILD_DIR, "ringctl")
SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHARED = os.environ.get("RINGMAIL_SHARED_DATA") or os.path.normpath(os.path.join(SRC, "..", "shared", "data"))
DEFAULT = os.path.join(SHARED, "kumomta-default-shaping.toml")
COMMUNITY = os.path.join(SHARED, "kumomta-community-shaping.toml")
OWN = os.path.join(SRC, "policy", "ringmail-shaping.toml")


def ringctl(*args):
    p = subprocess.run([RINGCTL] + list(args), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


class ShapingCli(unittest.TestCase):
    def setUp(self):
        if not os.access(DEFAULT, os.R_OK) or not os.access(COMMUNITY, os.R_OK):
            self.skipTest("KumoMTA's shipped files are not in %s" % SHARED)
        self.tmp = tempfile.TemporaryDirectory(prefix="shaping-cli-")

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_validate_shipped(self):
        rc, out, err = ringctl("validate-shaping", DEFAULT)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.splitlines(), [
            DEFAULT + ':242: warning: ignored: ["http://127.0.0.1:8008.tsa.kumomta"] system_shutdown_timeout '
            "has no effect in ringmail",
            "OK"])
        rc, out, err = ringctl("validate-shaping", DEFAULT, COMMUNITY)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[-1], "OK")
        self.assertEqual(len(lines), 9, out)
        for want in (COMMUNITY + ":299: warning: [provider.\"barracuda\"]: MXSuffix \".barracudanetworks.com.\" "
                     "ends with '.'",
                     COMMUNITY + ":33: warning: [provider.\"gmail\"]: it has no match rules",
                     COMMUNITY + ":323: warning: [provider.\"kpn\"]: none of its match rules can match"):
            self.assertTrue(any(line.startswith(want) for line in lines), "%s not in\n%s" % (want, out))
        # alone, the community file's providers have no match (their match is in the default file)
        rc, out, _ = ringctl("validate-shaping", COMMUNITY)
        self.assertEqual(rc, 0)
        self.assertIn(COMMUNITY + ':53: warning: [provider."yahoo"]: it has no match rules', out)

    def test_validate_own_default(self):
        rc, out, err = ringctl("validate-shaping", OWN)
        self.assertEqual((rc, out), (0, "OK\n"), err)

    def test_validate_errors(self):
        bad = self.write("bad.toml", '["default"]\nconection_limit = 5\n\n[[provider."p".automation]]\n'
                         'regex = "(open"\naction = "Suspend"\nduration = "1h"\n')
        rc, out, _ = ringctl("validate-shaping", DEFAULT, bad)
        self.assertEqual(rc, 1)
        self.assertNotIn("OK", out.splitlines())
        self.assertIn(bad + ':2: error: ["default"]: unknown option "conection_limit"', out)
        self.assertIn(bad + ':5: error: automation: regex "(open"', out)
        self.assertIn(DEFAULT + ":242: warning: ignored:", out)
        syntax = self.write("syntax.toml", '["default"]\nconnection_limit = = 1\n')
        rc, out, _ = ringctl("validate-shaping", syntax)
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith(syntax + ":2: error: "), out)
        js = self.write("bad.json", '{\n "default": {\n  "max_message_rate": "fast"\n }\n}\n')
        rc, out, _ = ringctl("validate-shaping", js)
        self.assertEqual(rc, 1)
        self.assertIn(js + ':3: error: ["default"]: max_message_rate: expected a rate', out)
        rc, out, err = ringctl("validate-shaping", os.path.join(self.tmp.name, "missing.toml"))
        self.assertEqual(rc, 1)
        self.assertIn("cannot read", out)
        rc, _, _ = ringctl("validate-shaping")
        self.assertEqual(rc, 2)

    def test_resolve_offline(self):
        # Gmail's MX hosts, written as DNS gives them: upper case, trailing dots, any order
        rc, out, err = ringctl("resolve-shaping", "--domain", "gmail.com", "--source", "ip-1",
                               "--mx", "ALT1.GMAIL-SMTP-IN.L.GOOGLE.COM.", "--mx", "gmail-smtp-in.l.google.com.",
                               "--shaping", DEFAULT, "--shaping", COMMUNITY, "--json")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["site"], "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com")
        self.assertEqual(doc["provider_name"], "google")
        cfg = doc["config"]
        self.assertEqual(cfg["enable_tls"], "Required")
        self.assertEqual(cfg["max_deliveries_per_connection"], 50)
        self.assertEqual(cfg["connection_limit"], 10)
        self.assertEqual(cfg["additional_connection_limits"], {"shaping-provider-google-ip-1-limit": 5})
        self.assertTrue(doc["set_by"]["enable_tls"].endswith('kumomta-default-shaping.toml:99 [provider."google"]'))
        self.assertTrue(doc["set_by"]["connection_limit"].endswith('kumomta-default-shaping.toml:55 ["default"]'))
        # the ["default"] rule only: the community file's rules are for "gmail", which matches nothing
        self.assertEqual([r["scope"] for r in doc["rules"]], ["default"])
        self.assertEqual(doc["rules"][0]["duration"], "90m")

        # Yahoo through the community file's automation, and the text form
        rc, out, err = ringctl("resolve-shaping", "--domain", "yahoo.com", "--site",
                               "mta5.am0.yahoodns.net,mta6.am0.yahoodns.net",
                               "--shaping", DEFAULT, "--shaping", COMMUNITY)
        self.assertEqual(rc, 0, err)
        self.assertIn("provider_name yahoo", out)
        self.assertRegex(out, r"max_deliveries_per_connection\s+20\s+\S+kumomta-default-shaping.toml:\d+ "
                              r"\[provider.\"yahoo\"\]")
        self.assertIn("automation rules in scope: 10", out)
        self.assertIn('regex: ["\\\\[TS?S04\\\\]"]', out)

        # a domain block with mx_rollup = false and its source
        rc, out, err = ringctl("resolve-shaping", "--domain", "example.com", "--source", "my source name",
                               "--shaping", DEFAULT, "--json")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["config"]["connection_limit"], 5)
        self.assertEqual(doc["config"]["max_deliveries_per_connection"], 100)
        self.assertTrue(doc["set_by"]["connection_limit"].endswith(
            '["example.com".sources."my source name"]'))

    def test_resolve_usage_and_bad_files(self):
        rc, _, _ = ringctl("resolve-shaping", "--shaping", DEFAULT)
        self.assertEqual(rc, 2)  # no --domain
        rc, _, _ = ringctl("resolve-shaping", "--domain", "a.test", "--site", "x", "--mx", "y",
                           "--shaping", DEFAULT)
        self.assertEqual(rc, 2)  # --site and --mx together
        bad = self.write("bad.toml", '["default"]\nmax_ready = -1\n')
        rc, out, err = ringctl("resolve-shaping", "--domain", "a.test", "--shaping", bad)
        self.assertEqual(rc, 1)
        self.assertIn(bad + ":2: error:", err)
        # without --shaping the node is asked: none listens on this port
        rc, _, err = ringctl("--endpoint", "127.0.0.1:1", "resolve-shaping", "--domain", "a.test")
        self.assertEqual(rc, 3, err)


class FakeNode(http.server.BaseHTTPRequestHandler):
    """The admin API's resolve endpoint as docs/admin-api.md describes it (the node's own is
    another change): records each request, answers with the class's status and document."""
    requests = []
    status = 200
    doc = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        FakeNode.requests.append(self.path)
        body = json.dumps(FakeNode.doc).encode()
        self.send_response(FakeNode.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ShapingClient(unittest.TestCase):
    """resolve-shaping without --shaping: the request it sends and how it prints the answer."""

    def setUp(self):
        self.server = http.server.HTTPServer(("127.0.0.1", 0), FakeNode)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = "127.0.0.1:%d" % self.server.server_address[1]
        FakeNode.requests = []

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def test_client_request_and_print(self):
        FakeNode.status = 200
        FakeNode.doc = {
            "domain": "gmail.com", "source": "ip 1", "site": "a.test,b.test", "provider_name": "google",
            "config": {"connection_limit": 1, "additional_connection_limits": {"shaping-provider-google-ip 1-limit": 5}},
            "set_by": {"connection_limit": "automation: rule 3 SetConfig until 2026-12-07T06:00:00Z",
                       "additional_connection_limits": "/etc/ringmail/s.toml:9 [provider.\"google\"]"},
            "rules": [{"id": 3, "scope": "provider:google", "file": "/etc/ringmail/s.toml", "line": 12,
                       "regex": ["4\\.7\\.28"], "action": [{"SetConfig": {"name": "connection_limit", "value": 1}}],
                       "trigger": {"Threshold": "2/h"}, "duration": "1h", "duration_ms": 3600000,
                       "match_internal": False}],
        }
        rc, out, err = ringctl("--endpoint", self.endpoint, "resolve-shaping", "--domain", "gmail.com",
                               "--source", "ip 1", "--mx", "B.test.", "--mx", "a.test")
        self.assertEqual(rc, 0, err)
        self.assertEqual(FakeNode.requests, ["/api/v1/shaping/resolve?domain=gmail.com&source=ip%201&site=a.test%2Cb.test"])
        self.assertIn("provider_name google", out)
        self.assertRegex(out, r"connection_limit\s+1\s+automation: rule 3 SetConfig")
        self.assertIn("shaping-provider-google-ip 1-limit", out)
        self.assertIn("#3 /etc/ringmail/s.toml:12 (provider:google)", out)
        rc, out, err = ringctl("--endpoint", self.endpoint, "resolve-shaping", "--domain", "gmail.com", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), FakeNode.doc)
        self.assertEqual(FakeNode.requests[-1], "/api/v1/shaping/resolve?domain=gmail.com&source=&site=")

    def test_client_refused(self):
        FakeNode.status = 400
        FakeNode.doc = {"ok": False, "error": "domain is required"}
        rc, _, err = ringctl("--endpoint", self.endpoint, "resolve-shaping", "--domain", "x.test")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 400: domain is required", err)


if __name__ == "__main__":
    unittest.main()
