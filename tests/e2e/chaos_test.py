"""The chaos soak tool (tools/chaos-soak.py, docs/tools.md "Chaos soak") in CI: not its 30 minutes, but
20 seconds with a fixed seed whose schedule has every event kind (kill -9, SIGSTOP, reload, rolling
restart, sink outage; disk faults too when the fault shim is built), so that the tool cannot rot; and a
run told to forget one of the sink's deliveries, which must fail, so that its checker cannot either.

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/chaos_test.py
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR  # noqa: E402

# meson: see discover.py
MESON = {"suite": "crash", "exclusive": True, "timeout": 120, "tools": ["sink", "ringctl"]}

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "chaos-soak.py")
SHIM = os.path.join(BUILD_DIR, "tests", "fault", "ringmail_fault_shim.so")
BASE_KINDS = ["kill9", "stop", "reload", "restart", "sink"]


def soak(*args, timeout=110):
    p = subprocess.Popen(["/usr/bin/python3", TOOL, "--build-dir", BUILD_DIR, "--json"] + list(args),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()  # the tool stops its node and sink at SIGTERM
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        raise AssertionError("chaos-soak ran over %d s:\n%s" % (timeout, err[-6000:]))
    sys.stderr.write(err[-6000:] + out)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError("chaos-soak exit %d without a summary:\n%s\n%s" % (p.returncode, out, err))
    return p.returncode, json.loads(lines[-1])


class ChaosSoakTest(unittest.TestCase):
    def test_twenty_seconds_of_every_event_kind_keep_the_invariant(self):
        # the seeds are chosen for a schedule of 20 s that holds every kind asked for
        kinds, seed = (BASE_KINDS + ["fault"], 38) if os.path.exists(SHIM) else (BASE_KINDS, 5)
        code, st = soak("--duration", "20s", "--seed", str(seed), "--rate", "20", "--interval", "0.5:2",
                        "--drain-timeout", "40s", "--events", ",".join(kinds))
        self.assertEqual(st["violations"], [], st)
        self.assertEqual(code, 0, st)
        self.assertEqual(sorted(st["events"]), sorted(kinds), "every kind ran: %s" % st)
        self.assertGreater(st["messages_accepted"], 100, st)
        self.assertEqual(st["delivered"], st["recipients"], st)
        self.assertEqual(st["queued_at_end"], 0, st)
        # each kill -9 and each rolling restart is a restart the supervisor counted
        self.assertGreaterEqual(st["restarts"], st["events"]["kill9"] + st["events"]["restart"], st)
        self.assertGreater(st["max_queue"], 0, "the sink outage queues mail: %s" % st)
        if "fault" in kinds:
            self.assertGreater(st["fault_hits"], 0, "the shim failed no spool write: %s" % st)

    def test_a_delivery_the_sink_did_not_make_is_reported_lost(self):
        code, st = soak("--duration", "4s", "--seed", "1", "--rate", "20", "--interval", "1:2",
                        "--events", "reload", "--forget-delivery", "3", "--drain-timeout", "3s")
        self.assertEqual(code, 1, st)
        self.assertTrue(any("neither delivered nor bounced" in v for v in st["violations"]), st)
        self.assertLess(st["delivered"], st["recipients"], st)


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
