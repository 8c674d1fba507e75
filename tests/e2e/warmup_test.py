"""Warm-up ramps end to end ([warmup."SOURCE"] in ringmail.toml, docs/shaping.md "Warm-up ramps"): a real
node with three egress sources on 127.0.0.5/.6/.7, MX records served by a real DNS server (unbound) for
two domains of one provider, and one recording aiosmtpd sink on 127.0.0.2 that sees each message's client
address. One node serves both checks (CI time):

- pool pa = {established, warm-a}: warm-a is on step 1 ("3/min") for the whole test; 20 messages go to
  a.prov.test: warm-a delivers at most its allowance (GCRA: 3, plus one per 20 s of the run), the
  established source carries the rest, all 20 delivered once.
- pool pb = {established, warm-b}: the sink answers warm-b's DATA with Yahoo's [TS04] deferral, which an
  automation rule of the provider matches; warm-b's first step ends with a deferral rate over
  max_deferral_rate and TSA firings, so the step is held, and `ringctl warmup status` says so and why.
  The deferred mail is retried through the established source: every message delivered.
- then a reload: a [warmup] table naming no source is refused with its reason; a new ramp for warm-a
  applies at once; and a restart of the scheduler: warm-b's held step comes back from the spool.

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/warmup_test.py
"""
import json
import os
import smtplib
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, wait_for  # noqa: E402
from peers import PeersCase, Sink  # noqa: E402

MESON = {"suite": "shaping", "timeout": 90, "tools": ["ringctl"]}

TS04 = "421 4.7.0 [TS04] Messages from 127.0.0.7 temporarily deferred due to unexpected volume or user complaints"

SHAPING = r"""
[provider."testprov"]
match = [{MXSuffix = ".provider.test"}]

[[provider."testprov".automation]]
regex = "\\[TS04\\]"
action = {SetConfig = {name = "max_deliveries_per_connection", value = 50}}
duration = "10m"
"""

ESTABLISHED, WARM_A, WARM_B = "127.0.0.5", "127.0.0.6", "127.0.0.7"
N_A, N_B = 20, 6
B_STEP_S = 10  # warm-b's steps; its first one ends B_START_S + B_STEP_S after the configuration is written
B_START_S = 2


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class WarmupTest(PeersCase):
    records = [
        "a.prov.test. 60 IN MX 10 mx1.provider.test.",
        "b.prov.test. 60 IN MX 10 mx2.provider.test.",
        "mx1.provider.test. 60 IN A 127.0.0.2",
        "mx2.provider.test. 60 IN A 127.0.0.2",
    ]

    def start(self, sink):
        tmp = tempfile.mkdtemp(prefix="ringmail-warmup-")
        os.chmod(tmp, 0o755)
        self.addCleanup(lambda: __import__("shutil").rmtree(tmp, ignore_errors=True))
        shaping = os.path.join(tmp, "shaping.toml")
        with open(shaping, "w") as f:
            f.write(SHAPING)
        os.chmod(shaping, 0o644)
        now = time.time()
        cfg = '[shaping]\nfiles = ["%s"]\n' % shaping
        for name, addr in (("established", ESTABLISHED), ("warm-a", WARM_A), ("warm-b", WARM_B)):
            cfg += '[[egress_source]]\nname = "%s"\nbind_address = "%s"\n' % (name, addr)
        cfg += '[egress_pool.pa]\nsources = ["established", "warm-a"]\n'
        cfg += '[egress_pool.pb]\nsources = ["established", "warm-b"]\n'
        cfg += '[queue.default]\nretry_interval = "1s"\nmax_retry_interval = "1s"\n'
        cfg += '[queue."a.prov.test"]\negress_pool = "pa"\n[queue."b.prov.test"]\negress_pool = "pb"\n'
        cfg += ('[warmup."warm-a"]\nstart = "%s"\nsteps = ["3/min", "600/min"]\nstep_duration = "1h"\n'
                % rfc3339(now - 1))
        cfg += ('[warmup."warm-b"]\nstart = "%s"\nsteps = ["3/min", "600/min"]\nstep_duration = "%ds"\n'
                'max_deferral_rate = 0.2\n' % (rfc3339(now + B_START_S), B_STEP_S))
        self.b_step_ends = now + B_START_S + B_STEP_S
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, sink.port)
        eg += '\nconnect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "5s"'
        eg += '\nidle_timeout = "2s"'
        self.node = Node(config_extra=cfg, egress=eg, park_delivery=False).start()
        self.cfg = cfg
        return self.node

    def send_many(self, rcpts):
        c = smtplib.SMTP("127.0.0.1", self.node.smtp_port, timeout=20)
        try:
            c.ehlo("client.test")
            for r in rcpts:
                c.mail("s@client.test")
                self.assertEqual(c.rcpt(r)[0], 250, r)
                self.assertEqual(c.data(b"Subject: t\r\nFrom: s@client.test\r\n\r\nhello\r\n")[0], 250)
        finally:
            c.quit()

    def status(self):
        p = self.node.ringctl("--json", "warmup", "status", check=True)
        doc = json.loads(p.stdout)
        return {(s["source"], k["key"]): k for s in doc["sources"] for k in s["keys"]}

    def test_warming_source_capped_at_its_step_and_held_on_tsa_deferrals(self):
        sink = self.peer(Sink("127.0.0.2", data_reply=TS04, data_reply_peers={WARM_B}))
        self.start(sink)
        t0 = time.monotonic()
        self.send_many(["r%d@a.prov.test" % i for i in range(N_A)] + ["q%d@b.prov.test" % i for i in range(N_B)])

        # every message delivered once: a.prov.test's by both sources of pa, b.prov.test's by the established
        # source in the end (warm-b's attempts were deferred)
        wait_for(lambda: sink.count() >= N_A + N_B, 40, step=0.1, what="every message at the sink")
        elapsed = time.monotonic() - t0
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 0, 20, what="the spool empty")
        self.assertEqual(sink.count(), N_A + N_B, "each message delivered once")
        by_peer = {}
        for (_, rcpts, _), peer in zip(sink.messages, sink.peers):
            for r in rcpts:
                by_peer.setdefault(peer, []).append(r)
        a_warm = [r for r in by_peer.get(WARM_A, []) if r.endswith("@a.prov.test")]
        a_est = [r for r in by_peer.get(ESTABLISHED, []) if r.endswith("@a.prov.test")]
        allowance = 3 + int(elapsed // 20)  # GCRA "3/min": a burst of 3, then one per 20 s
        self.assertGreaterEqual(len(a_warm), 1, "the warming source carries its allowance")
        self.assertLessEqual(len(a_warm), allowance, "the warming source stays within its step's allowance")
        self.assertEqual(len(a_warm) + len(a_est), N_A, "the established source carries the rest")
        self.assertEqual(by_peer.get(WARM_B, []), [], "the sink accepted nothing from warm-b")
        self.assertGreaterEqual(len(sink.replied), 1, "warm-b's attempts were deferred")
        self.assertLessEqual(len(sink.replied), 3, "warm-b was not picked past its allowance")

        st = self.status()
        a = st[("warm-a", "testprov")]
        self.assertEqual((a["step"], a["steps"], a["state"], a["allowance"]), (1, 2, "advancing", "3/min"), a)
        self.assertEqual(a["allowance_per_hour"], 180, a)
        self.assertEqual(a["used"], len(a_warm), a)
        self.assertEqual(a["held_reason"], "", a)

        # warm-b's first step ends: deferral rate 1.0 > 0.2 and the [TS04] rule fired on its responses
        wait_for(lambda: self.status()[("warm-b", "testprov")]["state"] == "held",
                 max(5, self.b_step_ends - time.time() + 5), step=0.2, what="warm-b's step held")
        b = self.status()[("warm-b", "testprov")]
        self.assertEqual((b["step"], b["allowance"]), (1, "3/min"), b)
        self.assertIn("above max_deferral_rate", b["held_reason"], b)
        self.assertIn("TSA fired", b["held_reason"], b)
        self.assertIn("[TS04]", b["held_reason"], b)
        self.assertGreater(b["held_since_ms"], 0, b)
        p = self.node.ringctl("warmup", "status", check=True)
        self.assertIn("warm-b", p.stdout)
        self.assertRegex(p.stdout, r"testprov\s+held\s+1/2\s+3/min")
        self.assertIn("testprov held since", p.stdout)
        self.assertRegex(p.stdout, r"testprov\s+advancing\s+1/2\s+3/min")
        self.assertIn("warm-up: warm-b to testprov held on step 1", self.node.log())

        # reloadable: a bad table is refused with its line and changes nothing; a new ramp applies at once
        self.node.write_config(self.node.base_config + self.cfg + '[warmup."nosuch"]\nstart = "2026-12-01"\n'
                               'steps = ["1/h"]\n')
        p = self.node.ringctl("reload")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('no [[egress_source]] is named "nosuch"', p.stdout + p.stderr)
        self.node.write_config(self.node.base_config + self.cfg.replace('steps = ["3/min", "600/min"]\n'
                                                                        'step_duration = "1h"',
                                                                        'steps = ["120/min"]\nstep_duration = "1h"'))
        self.node.ringctl("reload", check=True)
        wait_for(lambda: self.status()[("warm-a", "testprov")]["allowance"] == "120/min", 5, step=0.1,
                 what="the reloaded ramp")
        a = self.status()[("warm-a", "testprov")]
        self.assertEqual((a["step"], a["steps"], a["allowance"], a["allowance_per_hour"]), (1, 1, "120/min", 7200), a)

        # durable: the held step comes back from the spool when the scheduler restarts (before warm-b's next
        # boundary judges it again, B_STEP_S after the hold began)
        self.assertLess(time.time(), b["held_since_ms"] / 1000.0 + B_STEP_S - 3, "time left before the boundary")
        self.node.ringctl("restart", "scheduler", check=True)
        wait_for(lambda: "held on step 1 again (stored)" in self.node.log(), 10, step=0.1, what="the hold restored")
        self.node.wait_all_ready()
        b2 = self.status()[("warm-b", "testprov")]
        self.assertEqual((b2["state"], b2["step"], b2["held_since_ms"], b2["held_reason"]),
                         ("held", 1, b["held_since_ms"], b["held_reason"]), b2)
        self.assertEqual(b2["next_step_ms"], b["next_step_ms"], b2)


if __name__ == "__main__":
    unittest.main()
