"""Smoke test of the side-by-side bench: `tools/bench.sh --quick --out TMPDIR` (RINGMAIL_BUILD_DIR
honoured) must exit 0, write a markdown table with the ceiling, ringmail and (when Postfix can run
here) Postfix rows for 10 KB and 100 KB with a delivered rate above zero and an injection-to-delivery
p50 <= p99, p99 above zero (from ringmail-sink --latency) in each, write a well-formed
SVG chart, print the host settings and the ratios, and leave no process and no temporary directory
behind. Speed is not asserted.

    /usr/bin/python3 tests/e2e/bench_smoke_test.py
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR  # noqa: E402

# meson: see discover.py
MESON = {"suite": "bench", "timeout": 300, "tools": ["gen", "sink"], "exclusive": True}

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BENCH = os.path.join(ROOT, "tools", "bench.sh")
SYSCTLS = ["net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse", "fs.file-max",
           "net.core.rmem_max", "net.core.wmem_max", "vm.nr_hugepages"]


def postfix_usable():
    return os.geteuid() == 0 and shutil.which("postfix") and os.path.isdir("/etc/postfix") and shutil.which("script")


def processes_under(path):
    """pids whose working directory or command line lies under path (the bench starts all it runs there)"""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % d)
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(path) or path in cmd:
            found.append((int(d), cwd, cmd))
    return found


class BenchSmokeTest(unittest.TestCase):
    def setUp(self):
        for exe in ("ringmaild", "ringctl", "tools/ringmail-gen", "tools/ringmail-sink"):
            if not os.access(os.path.join(BUILD_DIR, exe), os.X_OK):
                self.skipTest("%s not built in %s" % (exe, BUILD_DIR))
        for tool in ("jq", "ss"):
            if not shutil.which(tool):
                self.skipTest("needs " + tool)
        self.tmp = tempfile.mkdtemp(prefix="bench-smoke.")
        os.chmod(self.tmp, 0o755)   # the node's roles run as nobody, Postfix as postfix
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_quick_bench_writes_table_chart_and_settings(self):
        out_dir = os.path.join(self.tmp, "out")
        work = os.path.join(self.tmp, "work")
        os.mkdir(work)
        os.chmod(work, 0o755)
        env = dict(os.environ, RINGMAIL_BUILD_DIR=BUILD_DIR, TMPDIR=work)
        # cwd = work: every process the bench starts inherits it, so a leftover is found below
        p = subprocess.run(["bash", BENCH, "--quick", "--out", out_dir], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
        stdout, stderr = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, stdout, stderr))

        with open(os.path.join(out_dir, "bench-latest.md")) as f:
            md = f.read()
        systems = ["ceiling", "ringmail"] + (["Postfix"] if postfix_usable() else [])
        for size in ("10 KB", "100 KB"):
            for s in systems:
                m = re.search(r"^\| %s \| %s [^|]*\| (\d+) \| ([0-9.]+)" % (re.escape(size), s), md, re.M)
                self.assertIsNotNone(m, "no row %s %s in\n%s" % (size, s, md))
                self.assertGreater(int(m.group(1)), 0)
                self.assertGreater(float(m.group(2)), 0.0, "nothing delivered: %s %s" % (size, s))
        # the injection-to-delivery columns: next to time-to-250, measured for every row, p50 <= p99
        header = [c.strip() for c in next(line for line in md.splitlines() if line.startswith("| body | row |"))
                  .strip("|").split("|")]
        i50, i99 = header.index("delivery p50 ms"), header.index("delivery p99 ms")
        self.assertEqual(header[i50 - 2:i50], ["time-to-250 p50 ms", "time-to-250 p99 ms"])
        for size in ("10 KB", "100 KB"):
            for s in systems:
                row = next((line for line in md.splitlines() if re.match(r"\| %s \| %s " % (re.escape(size), s), line)))
                cells = [c.strip() for c in row.strip("|").split("|")]
                self.assertEqual(len(cells), len(header), row)
                p50, p99 = float(cells[i50]), float(cells[i99])   # "n/a" would fail here: nothing measured
                self.assertGreater(p99, 0.0, row)   # p50 may round to 0.0 ms for the ceiling on a fast box
                self.assertLessEqual(p50, p99, row)
                self.assertLess(p99, 60 * 1000.0, row)
        self.assertIn("injection-to-delivery p50", stderr)
        self.assertNotIn("without a readable X-Gen-Sent", stderr)
        if not postfix_usable():
            self.assertIn("Postfix row skipped", md)
        self.assertRegex(md, r"\| 10 KB \| [0-9.n/a]+ \| [0-9.]+ \|")   # the ratios table

        root = ET.parse(os.path.join(out_dir, "bench-latest.svg")).getroot()
        self.assertEqual(root.tag, "{http://www.w3.org/2000/svg}svg")
        bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title") is not None]
        self.assertEqual(len(bars), 2 * len(systems))
        self.assertTrue(all(float(b.get("height")) > 0 for b in bars))

        for name in SYSCTLS:
            self.assertRegex(stdout, r"(?m)^\s+%s\s+\S" % re.escape(name))
        self.assertIn("ringmail/ceiling", stdout)

        self.assertEqual(processes_under(work), [])
        self.assertEqual(os.listdir(work), [], "temporary directories left behind")


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
