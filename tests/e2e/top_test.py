"""ringctl top end to end (issue 11): the dashboard in a real terminal (tmux on a private socket: send-keys
types, capture-pane reads the screen) against a real node with real traffic: smtplib -> node -> two
recording sinks (aiosmtpd) on 127.0.0.2 and 127.0.0.3, MX records from a real DNS server (unbound), and a
shaping file that names the two MX sets as providers "alphaprov" and "betaprov" (betaprov with an
automation rule: a 4.3.0 deferral suspends its path, a TSA event). Also `--once` (plain
text and JSON) and the refusals.

    RINGMAIL_BUILD_DIR=/tmp/build /usr/bin/python3 tests/e2e/top_test.py -k tmux
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, free_port, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, egress_via, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "top", "timeout": 120, "tools": ["ringctl"]}

SHAPING = """
[provider."alphaprov"]
match = [{MXSuffix = ".alpha.test"}]

[provider."betaprov"]
match = [{MXSuffix = ".beta.test"}]

[[provider."betaprov".automation]]
regex = '4\\.3\\.0'
action = "Suspend"
trigger = "Immediate"
duration = "1h"
"""


class Tmux:
    """A tmux server of our own (-L), one session 160x50 running a command; kill() ends the server and
    removes its socket."""

    def __init__(self, command):
        self.sock = "ringmail-top-%d-%d" % (os.getpid(), int(time.monotonic() * 1000))
        self.run("new-session", "-d", "-s", "top", "-x", "160", "-y", "50", command)
        self.path = self.run("display-message", "-p", "#{socket_path}").stdout.strip()

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null"] + list(args), capture_output=True,
                              text=True, timeout=10)

    def screen(self):
        p = self.run("capture-pane", "-p", "-t", "top")
        return p.stdout if p.returncode == 0 else ""

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def wait_screen(self, pred, timeout, what):
        last = [""]

        def ok():
            last[0] = self.screen()
            return pred(last[0])
        try:
            wait_for(ok, timeout, step=0.2, what=what)
        except AssertionError:
            raise AssertionError("%s; the screen:\n%s" % (what, last[0]))
        return last[0]

    def kill(self):
        self.run("kill-server")
        if self.path.endswith(self.sock):  # the server leaves its socket file behind
            try:
                os.unlink(self.path)
            except OSError:
                pass


def read(path):
    """A file's text, stripped; "" when it is not there (yet)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def row(screen, name):
    """The table row of `name` as its columns (NAME DELIV/s DEFER/s QUEUED CONN INFL DELIVERED DEFERRED ...)."""
    for line in screen.splitlines():
        f = line.split()
        if f and f[0] == name:
            return f
    return None


class TopCase(PeersCase):
    records = [
        "alpha.test. 60 IN MX 10 mx.alpha.test.",
        "mx.alpha.test. 60 IN A 127.0.0.2",
        "beta.test. 60 IN MX 10 mx.beta.test.",
        "mx.beta.test. 60 IN A 127.0.0.3",
    ]

    def setUp(self):
        if not shutil.which("tmux"):
            self.skipTest("tmux is not installed")
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="ringmail-top-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self):
        port = free_udp_tcp_port("127.0.0.2")
        self.alpha = self.peer(Sink("127.0.0.2", port))
        self.beta = self.peer(Sink("127.0.0.3", port))
        self.node = Node(egress=egress_via(self.dns, port), park_delivery=False)
        shaping = os.path.join(self.node.tmp, "top-shaping.toml")
        with open(shaping, "w") as f:
            f.write(SHAPING)
        os.chmod(shaping, 0o644)
        self.node.write_config(self.node.base_config + '[shaping]\nfiles = ["%s"]\n' % shaping)
        self.node.start()
        return self.node

    def ringctl_cmd(self, *args):
        return [os.path.join(BUILD_DIR, "ringctl"), "--endpoint", self.node.endpoint, "--data-dir",
                self.node.data_dir] + list(args)


class TopTest(TopCase):
    def test_top_under_tmux_shows_provider_rows_sorts_filters_and_quits(self):
        node = self.start()
        rc_file = os.path.join(self.tmp, "rc")
        err_file = os.path.join(self.tmp, "stderr")
        cmd = " ".join("'%s'" % a for a in self.ringctl_cmd("top"))
        tmux = Tmux("%s 2>'%s'; echo $? > '%s'" % (cmd, err_file, rc_file))
        self.addCleanup(tmux.kill)

        # idle: the header, an empty table, the roles with their memory
        s = tmux.wait_screen(lambda s: "(no traffic yet)" in s and "spool[0]" in s, 15, what="the idle screen")
        self.assertIn("ringctl top - node", s)
        self.assertIn("sort: delivered/s", s)
        self.assertRegex(s, r"PROVIDER\*? +DELIV/s\* +DEFER/s +QUEUED +CONN")
        self.assertRegex(s, r"scheduler\[0\] +\d+ +ready +[\d.-]+ +[\d.]+[KMG]")
        self.assertIsNone(row(s, "alphaprov"))

        # traffic to two providers: their rows appear with the sinks' counts, and a rate while it flows
        for i in range(4):
            smtp_send(node.smtp_port, "s@client.test", "a%d@alpha.test" % i, b"Subject: t\r\n\r\nhello\r\n")
        for i in range(2):
            smtp_send(node.smtp_port, "s@client.test", "b%d@beta.test" % i, b"Subject: t\r\n\r\nhello\r\n")
        seen_rate = []

        def rows_done(s):
            a, b = row(s, "alphaprov"), row(s, "betaprov")
            if a and a[1] not in ("-", "0.0"):
                seen_rate.append(a[1])
            return a and b and a[6] == "4" and b[6] == "2"
        s = tmux.wait_screen(rows_done, 30, what="both provider rows with their deliveries")
        self.assertEqual((self.alpha.count(), self.beta.count()), (4, 2))
        self.assertTrue(seen_rate, "no delivered/s rate was ever shown for alphaprov")
        self.assertRegex(s, r"totals: delivered 6 ")

        # a deferral at betaprov fires its automation rule: the event shows as it happens, the row is held
        smtp_send(node.smtp_port, "s@client.test", "tempfail1@beta.test", b"Subject: t\r\n\r\nhello\r\n")
        s = tmux.wait_screen(lambda s: re.search(r"\* \d\d:\d\d:\d\dZ Suspend \S+->mx\.beta\.test for 1h: 451 4\.3\.0", s)
                             and "SUSPENDED" in " ".join(row(s, "betaprov") or []), 20, what="the TSA event and the held row")
        self.assertRegex(s, r"TSA EVENTS \(newest first; 1 in force")
        self.assertEqual(row(s, "betaprov")[7], "1", "one deferral counted")

        # s: the next sort column, marked in the title and the table head
        tmux.keys("s")
        s = tmux.wait_screen(lambda s: "sort: deferrals/s" in s, 5, what="the sort column changed")
        self.assertRegex(s, r"DELIV/s +DEFER/s\*")

        # / alpha Enter: only the matching row remains
        tmux.keys("/")
        tmux.wait_screen(lambda s: "filter: _" in s, 5, what="the filter prompt")
        tmux.keys("alpha", "Enter")
        s = tmux.wait_screen(lambda s: "filter: alpha" in s and row(s, "betaprov") is None, 5,
                             what="the filter applied")
        self.assertIsNotNone(row(s, "alphaprov"))
        tmux.keys("Escape")
        tmux.wait_screen(lambda s: row(s, "betaprov") is not None and "filter: alpha" not in s, 5,
                         what="Esc cleared the filter")

        # a resize redraws for the new width: the name column narrows (the table head moves left)
        def head_at(s):
            heads = [line for line in s.splitlines() if line.startswith("PROVIDER")]
            return heads[0].index("DELIV/s") if heads else -1
        self.assertGreater(head_at(s), 30)
        tmux.run("resize-window", "-t", "top", "-x", "100", "-y", "30")
        s = tmux.wait_screen(lambda s: 0 < head_at(s) < 30 and "q quit" in s, 5, what="the screen redrawn at 100x30")
        self.assertTrue(all(len(line) <= 100 for line in s.splitlines()), s)
        self.assertIsNotNone(row(s, "alphaprov"))

        # the node goes away: top says so and keeps running
        node.stop()
        tmux.wait_screen(lambda s: "node unreachable, retrying" in s and row(s, "alphaprov") is not None, 10,
                         what="the unreachable line above the last rows")

        # p pauses (the title says so) and resumes; ? shows the keys and goes back
        tmux.keys("p")
        tmux.wait_screen(lambda s: "[PAUSED]" in s, 5, what="paused")
        tmux.keys("p")
        tmux.wait_screen(lambda s: "[PAUSED]" not in s, 5, what="resumed")
        tmux.keys("?")
        tmux.wait_screen(lambda s: "keys:" in s and "TSA EVENTS" not in s, 5, what="the help")
        tmux.keys("?")
        tmux.wait_screen(lambda s: "keys:" not in s and "TSA EVENTS" in s, 5, what="back from the help")

        tmux.keys("q")
        wait_for(lambda: read(rc_file) != "", 5, what="top exited")
        self.assertEqual(read(rc_file), "0")
        self.assertNotIn("Sanitizer", read(err_file))


class OnceTest(PeersCase):
    def test_top_once_prints_one_frame_and_refuses_what_it_cannot_do(self):
        node = Node()  # no delivery needed: the idle frame, the roles, the refusals
        self.node = node
        node.start()
        p = node.ringctl("top", "--once", "--interval", "0.3", check=True)
        out = p.stdout
        self.assertIn("ringctl top - node", out)
        self.assertRegex(out, r"PROVIDER\*? +DELIV/s\* +DEFER/s")
        self.assertIn("(no traffic yet)", out)
        self.assertIn("TSA EVENTS", out)
        self.assertNotIn("\033", out, "plain text: no escape sequences")
        for name in ("spool[0]", "scheduler[0]", "ingress[0]", "egress[0]"):
            self.assertRegex(out, re.escape(name) + r" +\d+ +ready +[\d.]+ +[\d.]+[KMG]", out)

        doc = json.loads(node.ringctl("top", "--once", "--json", "--by", "site", "--interval", "0.3",
                                      check=True).stdout)
        self.assertEqual(doc["by"], "site")
        self.assertEqual(doc["rows"], [])
        pids = {r["pid"] for r in node.status()["roles"]}
        self.assertEqual({r["pid"] for r in doc["roles"]}, pids)
        self.assertTrue(all(r["rss_bytes"] > 0 and r["cpu_pct"] >= 0 for r in doc["roles"]), doc["roles"])
        self.assertEqual(doc["totals"]["delivered_per_s"], 0)

        # refusals: no terminal, bad options, no node
        p = node.ringctl("top")
        self.assertEqual(p.returncode, 2)
        self.assertIn("must be a terminal", p.stderr)
        self.assertIn("--once", p.stderr)
        for bad in (["--by", "nosuch"], ["--interval", "0"], ["--interval", "x"], ["--json"]):
            p = node.ringctl("top", *bad)
            self.assertEqual(p.returncode, 2, bad)
        p = subprocess.run([os.path.join(BUILD_DIR, "ringctl"), "--endpoint", "127.0.0.1:%d" % free_port(),
                            "top", "--once"], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 3)
        self.assertIn("cannot reach", p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
