"""Memory under load (TESTING.md MEM-01): the whole node runs inside a memory cgroup with a hard limit (v1
memory.limit_in_bytes, or v2 memory.max) while ringmail-gen opens hundreds of sessions sending large messages.
The kernel's own accounting says how it went: the cgroup's peak usage stays under the limit, nothing was
OOM-killed (memory.oom_control / memory.events), no role restarted (status API), and every message
ringmail-gen saw 250 for reached the sink exactly once (one recipient per message, no faults: no duplicate).
Excess load is refused with 4xx (the arena is small on purpose), never by dying.

Needs a writable memory cgroup (root in a container that delegates one); skips with the reason otherwise.

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/memory_test.py
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, read_reply, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink  # noqa: E402

MESON = {"suite": "faults", "timeout": 120, "tools": ["gen"]}

GEN = os.path.join(BUILD_DIR, "tools", "ringmail-gen")
LIMIT = 1 << 30
SENDERS = 300
MESSAGES = 600
BODY = "256k"


class MemCgroup:
    """A child memory cgroup of this process's hierarchy, v1 or v2; None fields when it cannot be made."""

    def __init__(self, name, limit=LIMIT):
        self.path = None
        self.v2 = False
        v1 = "/sys/fs/cgroup/memory"
        v2 = "/sys/fs/cgroup"
        if os.path.isfile(os.path.join(v1, "memory.limit_in_bytes")):
            base = v1
        elif "memory" in self.read(os.path.join(v2, "cgroup.subtree_control")).split():
            base, self.v2 = v2, True
        else:
            raise OSError("no memory cgroup controller here (v1 %s, v2 subtree_control of %s)" % (v1, v2))
        self.path = os.path.join(base, name)
        os.mkdir(self.path)
        self.set_limit(limit)

    def set_limit(self, limit):
        self.write("memory.max" if self.v2 else "memory.limit_in_bytes", str(limit))

    @staticmethod
    def read(p):
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            return ""

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def peak(self):
        """The most the cgroup used (v2 before 5.19 has no memory.peak: the current usage then)."""
        for name in (("memory.peak", "memory.current") if self.v2 else ("memory.max_usage_in_bytes",)):
            t = self.read(os.path.join(self.path, name)).strip()
            if t:
                return int(t)
        return -1

    def oom_kills(self):
        text = self.read(os.path.join(self.path, "memory.events" if self.v2 else "memory.oom_control"))
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "oom_kill":
                return int(v)
        return 0

    def remove(self):
        if not self.path:
            return
        for _ in range(50):  # the node's processes leave it as they exit
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("cgroup %s still busy: %s" % (self.path, self.read(os.path.join(self.path, "cgroup.procs"))))


class MemoryTest(PeersCase):
    def cgroup(self, name, limit=LIMIT):
        """A memory cgroup of this test's own (removed at the end), or the test skips saying why."""
        if os.geteuid() != 0:
            self.skipTest("needs root to make a memory cgroup")
        try:
            cg = MemCgroup("%s-%d" % (name, os.getpid()), limit=limit)
        except OSError as e:
            self.skipTest("cannot make a memory cgroup with a limit: %s" % e)
        self.addCleanup(self.leave_cgroup, cg)
        return cg

    def test_hundreds_of_large_senders_in_a_memory_cgroup(self):
        cg = self.cgroup("ringmail-memtest")
        sink = self.peer(Sink())
        self.node = Node(config_extra='[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port, park_delivery=False,
                         ingress="max_connections_per_ip = 1000",
                         egress='connect_timeout = "2s"\nidle_timeout = "2s"')
        self.node.start(cgroup=cg.path)
        with tempfile.TemporaryFile() as out:
            p = subprocess.run([GEN, "--json", "--target", "127.0.0.1:%d" % self.node.smtp_port,
                                "--concurrency", str(SENDERS), "--message-count", str(MESSAGES), "--body-size", BODY,
                                "--keep-going", "--timeout", "20"], stdout=out, stderr=subprocess.PIPE, timeout=90)
            out.seek(0)
            lines = [l for l in out.read().decode().splitlines() if l.strip()]
        self.assertTrue(lines, "ringmail-gen printed no summary: %s" % p.stderr.decode(errors="replace")[-2000:])
        summary = json.loads(lines[-1])
        print("ringmail-gen: %s" % json.dumps(summary, sort_keys=True))
        ok = summary["sent"]
        self.assertGreater(ok, 50, "too few messages accepted: %r" % summary)
        # the excess is refused with a 4xx (the arena full: 452 after DATA), never a 5xx or a dropped session
        self.assertEqual([k for k in summary["errors"] if not k.startswith("4")], [], summary)
        wait_for(lambda: sink.count() >= ok, 40, what="every accepted message at the sink")
        wait_for(lambda: self.node.counter("scheduler", "messages_queued") == 0, 20, what="queue empty")
        time.sleep(0.5)
        if sink.count() != ok:
            self.fail("deliveries %d != %d 250s: %s" % (sink.count(), ok, self.explain(sink)))
        # the scheduler and the egress agreed on every attempt: no result dropped as stale, no DELIVER refused
        self.assertEqual(self.node.counter("scheduler", "ring_bad_records"), 0, self.explain(sink))
        peak, kills = cg.peak(), cg.oom_kills()
        restarts = {name: r.get("restarts", 0) for name, r in self.node.instances().items()}
        print("cgroup peak %d MiB of %d MiB, oom kills %d, restarts %r" % (peak >> 20, LIMIT >> 20, kills, restarts))
        self.assertEqual(kills, 0, "the kernel OOM-killed a process of the node")
        self.assertTrue(0 < peak < LIMIT * 9 // 10, "peak %d bytes, limit %d" % (peak, LIMIT))
        self.assertEqual([n for n, c in restarts.items() if c], [], "roles restarted: %r" % restarts)


    def explain(self, sink):
        """Which recipients arrived more than once, and what the log says of each."""
        with sink.lock:
            seen = {}
            for _, rcpts, _ in sink.messages:
                for r in rcpts:
                    seen[r.lower()] = seen.get(r.lower(), 0) + 1
        dups = sorted(r for r, n in seen.items() if n > 1)
        recs = self.node.log_records()
        about = [r for r in recs if str(r.get("recipient", "")).lower() in dups]
        kinds = {}
        for r in recs:
            kinds[r["type"]] = kinds.get(r["type"], 0) + 1
        with sink.lock:
            where = [(i, conn) for i, ((_, rcpts, _), (_, conn, _)) in enumerate(zip(sink.messages, sink.deliveries))
                     if any(r.lower() in dups for r in rcpts)]
        restarts = {name: r.get("restarts", 0) for name, r in self.node.instances().items()}
        self.node.logf.flush()
        with open(self.node.logf.name, errors="replace") as f:
            notes = {}
            for line in f:
                if " warn " in line or "re-announc" in line:
                    k = line.strip()[25:]
                    notes[k] = notes.get(k, 0) + 1
        return "node warnings %r; distinct %d, twice %r at (index, connection) %r, restarts %r, record kinds %r, their records %s" % (
            sorted(notes.items())[:30], len(seen), dups[:10], where[:20], restarts, kinds, json.dumps(about[:20])[:4000])

    def leave_cgroup(self, cg):
        # runs before PeersCase's cleanup: the node's processes must be gone for the cgroup to go
        if self.node:
            self.node.stop()
        cg.remove()

    def liveness(self):
        code, body = self.node.http("GET", "/api/check-liveness/v1")
        return code, json.loads(body)

    def test_no_headroom_refuses_sessions_and_transactions_until_it_returns(self):
        """The node reads its cgroup's limit: lowering it under the working set plus [supervisor]
        memory_hard_reserve leaves no headroom (421 to new sessions, 451 to MAIL in an open one, liveness
        503, the metric at 2); raising it again restores service without a restart or a reload."""
        cg = self.cgroup("ringmail-memlive", 4 << 30)
        self.node = Node(supervisor='memory_hard_reserve = "1023MiB"\nmemory_soft_reserve = "1100MiB"')
        self.node.start(cgroup=cg.path)
        code, doc = self.liveness()
        self.assertEqual(code, 200, doc)
        self.assertEqual(doc["memory"]["source"], "cgroup-v2" if cg.v2 else "cgroup-v1", doc)
        self.assertEqual(doc["memory"]["limit_bytes"], 4 << 30, doc)
        with socket.create_connection(("127.0.0.1", self.node.smtp_port), timeout=5) as open_s:
            f = open_s.makefile("rb")
            self.assertTrue(read_reply(f).startswith("220"))
            open_s.sendall(b"EHLO client.test\r\n")
            self.assertTrue(read_reply(f).startswith("250"))
            cg.set_limit(1 << 30)  # 1 GiB less 1023 MiB of reserve: no headroom for any working set
            wait_for(lambda: self.node.http("GET", "/api/check-liveness/v1")[0] == 503, 5, what="liveness 503")
            code, doc = self.liveness()
            self.assertEqual((doc["status"], doc["memory"]["level"]), ("unhealthy", "exhausted"), doc)
            open_s.sendall(b"MAIL FROM:<s@client.test>\r\n")
            reply = read_reply(f)
            self.assertTrue(reply.startswith("451 4.3.2"), reply)
            with socket.create_connection(("127.0.0.1", self.node.smtp_port), timeout=5) as new_s:
                reply = read_reply(new_s.makefile("rb"))
                self.assertTrue(reply.startswith("421 "), reply)
            self.assertIn("\nringmail_memory_pressure 2\n", self.node.http("GET", "/metrics")[1].decode())
            cg.set_limit(4 << 30)
            wait_for(lambda: self.node.http("GET", "/api/check-liveness/v1")[0] == 200, 5, what="liveness 200 again")
            open_s.sendall(b"MAIL FROM:<s@client.test>\r\n")
            reply = read_reply(f)
            self.assertTrue(reply.startswith("250"), reply)
        reply = smtp_send(self.node.smtp_port, "s@client.test", "r@example.test", b"Subject: t\r\n\r\nhello\r\n")
        self.assertIn("id=", reply)
        self.assertIn("memory exhausted", self.node.log())
        self.assertIn("memory ok again", self.node.log())

    def queues(self):
        return json.loads(self.node.ringctl("--json", "queues", check=True).stdout)

    def delivered_metric(self):
        """total_messages_delivered summed over its samples (by service: paths listed, and the rest)."""
        text = self.node.http("GET", "/metrics")[1].decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("total_messages_delivered{"))

    def test_low_headroom_sheds_caches_and_mail_flows(self):
        """Headroom under memory_soft_reserve (the cgroup's limit lowered): every role drops what it can
        rebuild at once (memory_sheds counts it): the egress closes its idle connections (the receiver sees
        them go long before the 60 s idle timeout) and forgets TLS sessions and DKIM signatures, the spool
        flushes its memtables, the scheduler frees its idle paths (their counters go on in the queues page's
        "rest", so /metrics totals never go back), every role gives freed heap back. Mail goes on; new
        connections open, the path comes back."""
        cg = self.cgroup("ringmail-memshed", 8 << 30)
        sink = self.peer(Sink())
        self.node = Node(config_extra='[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n' % sink.port, park_delivery=False,
                         supervisor='memory_hard_reserve = "64MiB"\nmemory_soft_reserve = "3900MiB"',
                         egress='idle_timeout = "60s"')
        self.node.start(cgroup=cg.path)
        sheds = lambda: {r: self.node.counter(r, "memory_sheds") for r in ("spool", "scheduler", "ingress", "egress")}
        self.assertEqual(sheds(), {"spool": 0, "scheduler": 0, "ingress": 0, "egress": 0}, "sheds with headroom")
        smtp_send(self.node.smtp_port, "s@client.test", "a@example.test", b"Subject: t\r\n\r\nhello\r\n")
        wait_for(lambda: sink.delivered_to("a@example.test") == 1, 20, what="the first message delivered")
        self.assertEqual(sink.open, 1, "the egress keeps its idle connection")
        cg.set_limit(3800 << 20)  # headroom 3800 MiB less the working set: under the soft reserve, far from none
        wait_for(lambda: all(sheds().values()), 5, what="every role shed its caches")
        self.assertEqual(self.liveness()[1]["memory"]["level"], "low")
        wait_for(lambda: sink.open == 0, 5, what="the idle connection closed long before its idle timeout")
        doc = wait_for(lambda: (lambda d: d if not d["paths"] and d["rest"] else None)(self.queues()), 5,
                       what="the idle path freed by the scheduler")
        self.assertEqual(sum(r["delivered"] for r in doc["rest"]), 1, doc["rest"])
        self.assertEqual(doc["totals"]["paths"], 0, doc["totals"])
        self.assertEqual(self.delivered_metric(), 1, "the freed path's delivery still counts in /metrics")
        self.assertIn("idle connections closed", self.node.log())
        self.assertIn("memtables being flushed", self.node.log())
        metrics = self.node.http("GET", "/metrics")[1].decode()
        self.assertIn('ringmail_memory_sheds_total{role="egress"', metrics)
        smtp_send(self.node.smtp_port, "s@client.test", "b@example.test", b"Subject: t\r\n\r\nhello\r\n")
        wait_for(lambda: sink.delivered_to("b@example.test") == 1, 20, what="mail flows while memory is low")
        wait_for(lambda: self.delivered_metric() == 2, 5, what="both deliveries in /metrics")
        once = sheds()
        time.sleep(1)
        self.assertEqual(sheds(), once, "shed again within the 10 s period")
        cg.set_limit(8 << 30)
        wait_for(lambda: self.liveness()[1]["memory"]["level"] == "ok", 5, what="headroom back")


if __name__ == "__main__":
    unittest.main()
