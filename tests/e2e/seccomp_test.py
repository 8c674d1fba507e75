"""PRIV-02 (issue 13): every role runs under its seccomp allow-list ([node] seccomp, rt/role_seccomp.c);
a syscall off the list kills the role, the supervisor reports it (log line and status) and restarts it.

To make a role do an unexpected syscall without a backdoor in the node, ringmaild starts with
LD_PRELOAD=seccomp_probe.so (tests/e2e/seccomp_probe.c): in the egress only, a thread waits for the
filter and calls reboot(2) with no magic numbers (harmless even where it is allowed: EINVAL or EPERM).
With seccomp = "off" or "log" the same call runs and returns, so the check can fail.
The rest of the suite runs with the default ("kill"), and ringmail_node.py counts a seccomp kill in any
test as a crash.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, smtp_send, wait_for  # noqa: E402

MESON = {"suite": "supervisor", "timeout": 90, "tools": ["seccomp_probe"]}

PROBE = os.path.join(BUILD_DIR, "tests", "e2e", "seccomp_probe.so")
REBOOT_NR = 169  # x86_64
KILLED = "egress[0] pid died (killed by seccomp (SIGSYS): syscall %d (reboot))" % REBOOT_NR


def seccomp_mode(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return None


class SeccompTest(unittest.TestCase):
    def start(self, mode):
        node = Node()
        if mode is not None:
            node.write_config(node.base_config.replace("[node]\n", '[node]\nseccomp = "%s"\n' % mode, 1))
        self.addCleanup(node.cleanup)
        marks = os.path.join(node.tmp, "probe")
        os.mkdir(marks)
        os.chmod(marks, 0o777)  # the egress runs as nobody when the test runs as root
        env = {"LD_PRELOAD": PROBE, "SECCOMP_PROBE_COMM": "ringmail-egress",
               "SECCOMP_PROBE_ONCE": os.path.join(marks, "fired")}
        # in the sanitizer build a preloaded library comes before libasan in the link order: tell ASan
        # it is fine (a build without ASan ignores the variable)
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        node.start(env=env)
        return node

    def egress(self, node):
        return node.instances()["egress[0]"]

    def test_unexpected_syscall_kills_the_role_and_is_reported(self):
        node = self.start(None)  # the default: kill
        node.allow_crashes = True  # the one expected death is checked below; anything else still fails
        log = wait_for(lambda: KILLED in node.log() and node.log(), 15, what="the egress killed by seccomp")
        self.assertIn("ringmail-egress: seccomp: syscall %d is not on this role's list" % REBOOT_NR, log)
        self.assertNotIn("seccomp_probe: reboot returned", log, "the trapped call ran")
        # restarted as for any crash; the status says why it died
        eg = wait_for(lambda: (lambda r: r if r["state"] == "ready" and r["restarts"] >= 1 else None)(
            self.egress(node)), 10, what="the egress restarted")
        self.assertIn("killed by seccomp (SIGSYS): syscall %d (reboot)" % REBOOT_NR, eg["last_exit"])
        # every role, the new egress too, runs under its filter
        for name, r in node.instances().items():
            self.assertEqual(seccomp_mode(r["pid"]), 2, name)
        # and the node goes on: mail is accepted and stored
        self.assertIn("250", "250 " + smtp_send(node.smtp_port, "s@example.test", "r@example.test",
                                                b"Subject: seccomp\r\n\r\nhello\r\n"))
        wait_for(lambda: node.counter("spool", "messages_stored") >= 1, 10, what="the message stored")
        others = [l for l in node.crashes() if "seccomp" not in l]
        self.assertEqual(others, [])
        self.assertEqual(node.log().count("killed by seccomp"), 1)

    def test_seccomp_off_or_log_lets_the_same_call_run(self):
        for mode, want in (("off", 0), ("log", 2)):
            with self.subTest(mode=mode):
                node = self.start(mode)
                wait_for(lambda: "seccomp_probe: reboot returned" in node.log(), 10, what="the probe's call")
                eg = self.egress(node)
                self.assertEqual(seccomp_mode(eg["pid"]), want)
                self.assertEqual(eg["restarts"], 0)
                self.assertNotIn("killed by seccomp", node.log())
                node.cleanup()


if __name__ == "__main__":
    unittest.main()
