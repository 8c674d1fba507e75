"""ROLE-01: a compromised role writes garbage into the shared segment; the supervisor and the other roles
must not crash, read out of bounds or signal a pid the supervisor did not start (issue 13, finding 3).

The attacker is tests/e2e/hostile_role.c: it reopens the node's memfd through /proc/<role pid>/fd and
writes into the header, the role table, a ring or the arena header, as any role process could. A
`sleep` started by the test stands for a process the supervisor did not fork: the role table is made
to name it, and it must survive. Each test starts its own node and stops every process by pid.

The attack is aimed at a root process whose failure mode, before the fix, was kill(-1, SIGKILL): every
process of the machine. So the file re-runs itself in a private pid namespace (unshare --pid, with its
own /proc) and exits 77 (skip, with the reason) where it cannot make one; a regression then kills only
the test's own processes.
Run one with:
    /usr/bin/python3 tests/e2e/harden_roles_test.py -k ring
"""
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, pid_alive, smtp_dialogue, wait_for  # noqa: E402
from supervisor_test import NodeCase  # noqa: E402  (start_node, the log on failure)

MESON = {"suite": "supervisor", "timeout": 120, "tools": ["hostile_role"], "exclusive": True}

HOSTILE = os.path.join(BUILD_DIR, "tests", "e2e", "hostile_role")
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


class HostileRoleCase(NodeCase):
    def setUp(self):
        # a process the supervisor did not start; the role table will name it
        self.sleeper = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
        self.addCleanup(self.stop_sleeper)

    def stop_sleeper(self):
        if self.sleeper.poll() is None:
            self.sleeper.kill()
        self.sleeper.wait(5)

    def attack(self, *args):
        pid = self.node.instances()["spool[0]"]["pid"]
        p = subprocess.run([HOSTILE, str(pid)] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)

    def deliver(self):
        """One message through the node; the reply to the end of DATA."""
        r = smtp_dialogue(self.node.smtp_port, ["EHLO client.test", "MAIL FROM:<s@example.test>",
                                                "RCPT TO:<r@example.test>", "DATA",
                                                b"Subject: t\r\n\r\nhello\r\n.\r\n", "QUIT"], timeout=10)
        return r[5]

    def assert_supervisor_sound(self, names):
        """ringmaild runs, answers with the node's own instances, the sleeper lives, no sanitizer report."""
        self.assertIsNone(self.node.proc.poll(), "ringmaild exited with %s" % self.node.proc.returncode)
        self.assertTrue(pid_alive(self.sleeper.pid), "the supervisor killed a pid it did not start")
        inst = self.node.instances()
        self.assertEqual(sorted(inst), sorted(names))
        code, body = self.node.http("GET", "/metrics")
        self.assertEqual(code, 200)
        if os.access("/usr/bin/promtool", os.X_OK):  # whatever the roles wrote, the text stays valid
            chk = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=body, capture_output=True,
                                 timeout=30)
            self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
        code, _ = self.node.http("GET", "/metrics.json")
        self.assertEqual(code, 200)
        log = self.node.log()
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, log)
        return inst


class HostileRoleTest(HostileRoleCase):
    def test_hostile_header_counts(self):
        """n_instances = 2^32-1 and the other counts, offsets and ring topology garbage: the supervisor
        loops over its own count, restarts a role into a repaired header, and mail still gets 250."""
        node = self.start_node(ingress_workers=2, egress_workers=1)
        names = ["spool[0]", "scheduler[0]", "ingress[0]", "ingress[1]", "egress[0]"]
        before = self.assert_supervisor_sound(names)
        self.attack("header")
        time.sleep(1.5)  # thirty supervisor ticks
        inst = self.assert_supervisor_sound(names)
        for name in names:
            self.assertEqual(inst[name]["pid"], before[name]["pid"], name)
        self.assertTrue(self.deliver().startswith("250"))
        # a role started after the damage attaches to a header the supervisor put back
        node.ringctl("restart", "egress", check=True)
        wait_for(lambda: (lambda r: r["state"] == "ready" and r["pid"] != before["egress[0]"]["pid"])(
            node.instances()["egress[0]"]), 10, what="egress restarted and ready")
        self.assert_supervisor_sound(names)
        self.assertNotIn("segment rejected", node.log())

    def test_hostile_role_table(self):
        """Every slot names the sleeper as its pid, with garbage role, index, state and generation and a
        start long ago: the supervisor signals only pids it forked (the damaged roles are restarted with
        their slots put back), the sleeper survives, and mail gets 250 again."""
        node = self.start_node(supervisor='ready_timeout = "2s"\nheartbeat_timeout = "2s"')
        names = ["spool[0]", "scheduler[0]", "ingress[0]", "egress[0]"]
        self.assert_supervisor_sound(names)
        self.attack("roles", self.sleeper.pid)
        time.sleep(3)
        self.assertTrue(pid_alive(self.sleeper.pid), "the supervisor killed a pid it did not start")

        def serving():
            inst = node.instances()
            if not all(r["state"] == "ready" and r["pid"] != self.sleeper.pid for r in inst.values()):
                return None
            return self.deliver().startswith("250")
        wait_for(serving, 20, step=0.5, what="every role ready again and a message accepted")
        inst = self.assert_supervisor_sound(names)
        for name, r in inst.items():
            self.assertEqual(r["role"], name.split("[")[0])
            self.assertLess(r["generation"], 1000, name)

    def test_hostile_ring_and_arena(self):
        """The scheduler<->egress rings get the largest capacity with a matching mask and indexes past
        the segment, the arena header a block count 4096 times too large and moved offsets: their
        readers keep the geometry they checked at start (no crash, no out-of-bounds read), and mail
        still gets 250."""
        node = self.start_node()
        names = ["spool[0]", "scheduler[0]", "ingress[0]", "egress[0]"]
        before = self.assert_supervisor_sound(names)
        # instances: 0 spool, 1 scheduler, 2 ingress[0], 3 egress[0]
        self.attack("ring", 3, 1)
        self.attack("ring", 1, 3)
        self.attack("arena")
        time.sleep(2.5)  # pings go out every second: both rings are read and written
        inst = self.assert_supervisor_sound(names)
        for name in names:
            self.assertEqual(inst[name]["pid"], before[name]["pid"], "%s died" % name)
            self.assertEqual(inst[name]["restarts"], before[name]["restarts"], "%s restarted" % name)
        self.assertTrue(self.deliver().startswith("250"))
        wait_for(lambda: node.counter("spool", "messages_stored") == 1, 5, what="the message stored")
        self.assertIn("corrupt header", node.log())

    def test_hostile_doorbell_numbers(self):
        """Issue 13 #3: every doorbell's eventfd number in the role table is set to 2. A process that
        took the number from the segment would write its 8-byte ring (01 00 00 00 00 00 00 00) into its
        own stderr, the node's log, and poll stderr for wake-ups; each keeps the copy the supervisor
        gave it at exec instead. Nothing lands in the log, no role restarts, messages still get 250 and
        are stored, and an admin call that rings the scheduler from the supervisor still works."""
        node = self.start_node()
        names = ["spool[0]", "scheduler[0]", "ingress[0]", "egress[0]"]
        before = self.assert_supervisor_sound(names)
        self.attack("bells", 2)
        for _ in range(3):
            self.assertTrue(self.deliver().startswith("250"))
            time.sleep(0.3)  # let the consumers fall asleep between messages, so producers ring
        wait_for(lambda: node.counter("spool", "messages_stored") == 3, 5, what="three messages stored")
        node.ringctl("queue-summary", check=True)  # the supervisor asks the scheduler and rings it
        time.sleep(1.5)  # pings between every pair of roles, each answered across a sleeping peer
        inst = self.assert_supervisor_sound(names)
        for name in names:
            self.assertEqual(inst[name]["pid"], before[name]["pid"], "%s died" % name)
            self.assertEqual(inst[name]["restarts"], before[name]["restarts"], "%s restarted" % name)
        with open(node.log_path, "rb") as f:
            rung = f.read().count(b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.assertEqual(rung, 0, "doorbells rang into stderr %d times" % rung)


def contain():
    """Re-exec this file as pid 1 of a new pid namespace; return only when already inside one."""
    if os.environ.get("RINGMAIL_PIDNS") == "1":
        return
    unshare = shutil.which("unshare")
    argv = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"] if unshare else None
    if not argv or subprocess.run(argv + ["true"], capture_output=True).returncode != 0:
        print("SKIP: ROLE-01 needs a private pid namespace (unshare --pid --mount-proc), which this "
              "machine does not allow; it is not run outside one")
        sys.exit(77)
    os.environ["RINGMAIL_PIDNS"] = "1"
    os.execv(unshare, argv + [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])


if __name__ == "__main__":
    contain()
    unittest.main()
