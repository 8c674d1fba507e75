"""Smoke tests of the shaping benchmarks (docs/benchmarks.md, "Issue 9: shaping"). Speed is not asserted.

- tools/ringmail-shaping-bench at tiny sizes on KumoMTA's two shipped files: exit 0, every message
  delivered, the throttles of the files at work (rate and named-limit waits), the provider paths'
  named limits interned, the Yahoo [TSS04] text matching rules in its scope, table and JSON output;
  exit 1 on a file that does not load, 2 without files.
- tools/bench.sh --quick --shaping FILES: the ringmail node runs on the shipped files plus the bench
  domain's override (its resolved path is printed: connection_limit back to the sessions, rates lifted),
  every row delivers everything, and nothing is left behind.

    /usr/bin/python3 tests/e2e/shaping_bench_test.py
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR  # noqa: E402

# meson: see discover.py
MESON = {"suite": "bench", "timeout": 300, "tools": ["gen", "sink", "shaping_bench"], "exclusive": True}

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.environ.get("RINGMAIL_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
FILES = [os.path.join(DATA, "kumomta-default-shaping.toml"), os.path.join(DATA, "kumomta-community-shaping.toml")]
TOOL = os.path.join(BUILD_DIR, "tools", "ringmail-shaping-bench")


class ShapingBenchTest(unittest.TestCase):
    def setUp(self):
        if not all(os.path.isfile(f) for f in FILES):
            self.skipTest("KumoMTA's shaping files are not in %s" % DATA)

    def bench(self, *args):
        return subprocess.run([TOOL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)

    def test_shaping_bench_tool_tiny(self):
        if not os.access(TOOL, os.X_OK):
            self.skipTest("%s not built" % TOOL)
        p = self.bench("--shaping", *FILES, "--messages", "30000", "--sites", "500", "--results", "2000",
                       "--reps", "3", "--json")
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        j = json.loads(p.stdout)
        self.assertTrue(j["ok"])
        self.assertEqual((j["sites"], j["sources"], j["paths"], j["provider_sites"]), (500, 4, 2000, 50))
        sc = j["scheduler"]
        self.assertEqual(sc["delivered"], 30000)
        self.assertEqual(sc["paths_created"], 2000)
        self.assertGreater(sc["throttle_waits"], 0, "max_message_rate / max_connection_rate never held a path")
        self.assertGreater(sc["limit_waits"], 0, "no provider named connection limit was ever full")
        self.assertGreater(sc["named_limit_names"], 0)
        self.assertGreater(j["resolve"]["paths_with_named_limits"], 0)
        self.assertGreater(sc["cpu_ns_per_msg"], 0)
        self.assertGreaterEqual(sc["rss_peak_kb"], sc["rss_start_kb"])
        self.assertGreater(sc["rss_start_kb"], 0)
        cases = {c["case"]: c for c in j["tsa"]["cases"]}
        self.assertGreaterEqual(cases["yahoo 421 [TSS04]"]["rules_matched"], 2)   # both files' Suspend rules
        self.assertEqual(cases["gmail 250"]["rules_matched"], 0)
        self.assertGreater(j["tsa"]["ns_per_result"], 0)

        p = self.bench("--shaping", *FILES, "--messages", "1000", "--sites", "50", "--results", "100")
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        out = p.stdout.decode()
        self.assertRegex(out, r"delivered\s+1000 of 1000")
        self.assertRegex(out, r"TSA match\s+\d+ ns/result")
        self.assertTrue(out.rstrip().endswith("ok"), out)

        with tempfile.NamedTemporaryFile("w", suffix=".toml") as bad:
            bad.write('["default"]\nconnection_limit = "many"\n')
            bad.flush()
            p = self.bench("--shaping", bad.name, "--messages", "10")
            self.assertEqual(p.returncode, 1)
            self.assertIn(bad.name + ":", p.stderr.decode(errors="replace"))
        self.assertEqual(self.bench("--messages", "10").returncode, 2)

    def test_bench_sh_quick_with_shaping_files(self):
        for exe in ("ringmaild", "ringctl", "tools/ringmail-gen", "tools/ringmail-sink"):
            if not os.access(os.path.join(BUILD_DIR, exe), os.X_OK):
                self.skipTest("%s not built in %s" % (exe, BUILD_DIR))
        for tool in ("jq", "ss"):
            if not shutil.which(tool):
                self.skipTest("needs " + tool)
        tmp = tempfile.mkdtemp(prefix="shaping-bench.")
        os.chmod(tmp, 0o755)   # the node's roles run as nobody
        self.addCleanup(shutil.rmtree, tmp, True)
        work, out_dir = os.path.join(tmp, "work"), os.path.join(tmp, "out")
        os.mkdir(work)
        os.chmod(work, 0o755)
        env = dict(os.environ, RINGMAIL_BUILD_DIR=BUILD_DIR, TMPDIR=work, BENCH_SESSIONS="7")
        p = subprocess.run(["bash", os.path.join(ROOT, "tools", "bench.sh"), "--quick", "--out", out_dir,
                            "--shaping"] + FILES, cwd=work, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=240)
        stderr = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "exit %d\n%s" % (p.returncode, stderr))
        self.assertIn("shaping files of the ringmail node: %s" % " ".join(os.path.realpath(f) for f in FILES), stderr)
        lines = re.findall(r"^  shaping: example\.test via route:\[127\.0\.0\.1\]:\d+: (.*)$", stderr, re.M)
        # one per ringmail node: 10 KB and 100 KB, each also at half rate, and the many-sessions run
        self.assertEqual(len(lines), 5, stderr)
        for line in lines:
            self.assertIn("provider -, connection_limit 7, max_message_rate 1000000000/s, "
                          "max_connection_rate 1000000000/s", line)
            self.assertRegex(line, r", [1-9]\d* automation rule\(s\) in scope$")   # the files' ["default"] rule
        with open(os.path.join(out_dir, "bench-latest.md")) as f:
            md = f.read()
        for size in ("10 KB", "100 KB"):
            m = re.search(r"^\| %s \| ringmail [^|]*\| (\d+) \| ([0-9.]+)" % size, md, re.M)
            self.assertIsNotNone(m, md)
            self.assertGreater(float(m.group(2)), 0.0)
        self.assertEqual(os.listdir(work), [], "temporary directories left behind")


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
