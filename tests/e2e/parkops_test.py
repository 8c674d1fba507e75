"""Park-node operations (issue 11): `ringctl doctor [--apply]`, `ringctl capacity`, and the log's retention
and free-space floor, against real processes.

doctor --apply is run against a temporary /proc/sys tree, sysctl.d directory and meminfo (env
RINGCTL_DOCTOR_PROCSYS, RINGCTL_DOCTOR_SYSCTLD, RINGCTL_DOCTOR_MEMINFO): this machine's settings are never
changed. capacity is checked against KumoMTA's worked example and against a real node's own log segments
(smtplib -> node; records read back with zstdcat). Retention runs in the real spool on a log directory
seeded with zstd segments made by the real `zstd`; the 452 comes from a real ingress session.

    RINGMAIL_BUILD_DIR=/tmp/build /usr/bin/python3 tests/e2e/parkops_test.py -k capacity
"""
import glob
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, free_port, smtp_dialogue, wait_for  # noqa: E402

MESON = {"suite": "parkops", "timeout": 120, "tools": ["ringctl"], "exclusive": True}

RINGCTL = os.path.join(BUILD_DIR, "ringctl")
DAY = 86400


def ringctl(*args, env=None, timeout=30):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([RINGCTL] + list(args), capture_output=True, text=True, timeout=timeout, env=e)


# a host that needs tuning: values as a fresh Debian install has them, some already above target
SYSCTLS = {
    "net/core/somaxconn": "128",
    "net/ipv4/tcp_max_syn_backlog": "512",
    "net/ipv4/ip_local_port_range": "32768\t60999",
    "net/ipv4/tcp_tw_reuse": "2",
    "fs/file-max": "9223372036854775807",
    "fs/nr_open": "1048576",
    "net/core/rmem_default": "212992",
    "net/core/wmem_default": "212992",
    "net/core/rmem_max": "212992",
    "net/core/wmem_max": "33554432",
    "vm/max_map_count": "65530",
    "kernel/shmmni": "4096",
    "vm/nr_hugepages": "3",
}
MEMINFO = "HugePages_Total:       3\nHugePages_Free:        3\nHugepagesize:       2048 kB\n"


class DoctorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringmail-doctor-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.procsys = os.path.join(self.tmp, "sys")
        self.sysctld = os.path.join(self.tmp, "sysctl.d")
        os.makedirs(self.sysctld)
        for path, value in SYSCTLS.items():
            p = os.path.join(self.procsys, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(value + "\n")
        self.meminfo = os.path.join(self.tmp, "meminfo")
        with open(self.meminfo, "w") as f:
            f.write(MEMINFO)
        self.env = {"RINGCTL_DOCTOR_PROCSYS": self.procsys, "RINGCTL_DOCTOR_SYSCTLD": self.sysctld,
                    "RINGCTL_DOCTOR_MEMINFO": self.meminfo}
        # nobody listens on this port: doctor checks the host only
        self.endpoint = "127.0.0.1:%d" % free_port()
        self.config = os.path.join(self.tmp, "ringmail.toml")
        with open(self.config, "w") as f:
            # one worker each: the rings' pages below must not depend on this machine's CPUs ("auto")
            f.write('[node]\ndata_dir = "%s"\n[shm]\narena_size = "64MiB"\n[ingress]\nworkers = 1\n'
                    '[egress]\nworkers = 1\n' % os.path.join(self.tmp, "data"))

    def sysctl(self, path):
        with open(os.path.join(self.procsys, path)) as f:
            return f.read().strip()

    def doctor(self, *args):
        return ringctl("--endpoint", self.endpoint, "doctor", "--config", self.config, *args, env=self.env)

    def checks(self, p):
        doc = json.loads(p.stdout)
        return doc, {c["name"]: c for c in doc["checks"]}

    def test_doctor_reports_each_check_with_its_fix(self):
        p = self.doctor("--json")
        self.assertEqual(p.returncode, 1, p.stderr)  # recommendations
        doc, c = self.checks(p)
        self.assertFalse(doc["node_reachable"])
        self.assertEqual(doc["config"], self.config)
        self.assertFalse(c["net.core.somaxconn"]["ok"])
        self.assertIn("net.core.somaxconn=\"4096\"", c["net.core.somaxconn"]["fix"])
        self.assertFalse(c["net.ipv4.ip_local_port_range"]["ok"])
        self.assertFalse(c["net.ipv4.tcp_tw_reuse"]["ok"])  # 2 is loopback only
        self.assertTrue(c["fs.file-max"]["ok"])
        self.assertTrue(c["net.core.wmem_max"]["ok"])
        self.assertFalse(c["vm.max_map_count"]["ok"])
        # 64 MiB arena and the rings need 34 pages of 2 MiB; 3 are free
        self.assertFalse(c["hugepages"]["ok"])
        self.assertIn("34 free", c["hugepages"]["target"])
        self.assertIn("vm.nr_hugepages=34", c["hugepages"]["fix"])  # 3 reserved + 31 more
        for name in ("RLIMIT_NOFILE", "spool file system", "log file system", "spool free space", "log free space"):
            self.assertIn(name, c)
        # the text form: one line per check, the fix on the line
        t = self.doctor()
        self.assertEqual(t.returncode, 1)
        line = [l for l in t.stdout.splitlines() if l.startswith("net.core.somaxconn")][0]
        self.assertIn("LOW", line)
        self.assertIn("sysctl -w net.core.somaxconn=\"4096\"", line)
        self.assertRegex(t.stdout, r"\n\d+ recommendation\(s\)\n")

    def test_doctor_apply_writes_sysctl_file_and_never_lowers(self):
        conf = os.path.join(self.sysctld, "90-ringmail.conf")
        with open(conf, "w") as f:  # an earlier run's file, edited by the operator
            f.write("# mine\nnet.core.somaxconn = 65535\nvm.swappiness = 10\n")
        p = self.doctor("--apply")
        self.assertIn(p.returncode, (0, 1), p.stderr)
        self.assertIn("set net.core.somaxconn: 128 -> 4096", p.stdout)
        self.assertIn("set vm.nr_hugepages: 3 -> 34", p.stdout)
        self.assertIn("set net.ipv4.ip_local_port_range: 32768 60999 -> 5000 65000", p.stdout)
        self.assertIn("wrote %s" % conf, p.stdout)
        with open(conf) as f:
            entries = dict(l.split(" = ", 1) for l in f.read().splitlines() if l and not l.startswith("#"))
        self.assertEqual(entries["net.core.somaxconn"], "65535")  # the file's higher value stays
        self.assertEqual(entries["vm.swappiness"], "10")  # someone else's key stays
        self.assertEqual(entries["vm.nr_hugepages"], "34")
        self.assertEqual(entries["net.ipv4.tcp_tw_reuse"], "1")
        self.assertEqual(entries["vm.max_map_count"], "768000")
        self.assertNotIn("fs.file-max", entries)  # above target: never written, never lowered
        self.assertNotIn("net.core.wmem_max", entries)
        self.assertEqual(self.sysctl("net/core/somaxconn"), "4096")
        self.assertEqual(self.sysctl("net/ipv4/ip_local_port_range"), "5000 65000")
        self.assertEqual(self.sysctl("vm/nr_hugepages"), "34")
        self.assertEqual(self.sysctl("fs/file-max"), "9223372036854775807")
        self.assertEqual(self.sysctl("net/core/wmem_max"), "33554432")
        self.assertEqual([f for f in os.listdir(self.sysctld)], ["90-ringmail.conf"])  # no temporary left
        # a second run: every sysctl is at target now; nothing more to apply
        with open(self.meminfo, "w") as f:
            f.write(MEMINFO.replace("Free:        3", "Free:        34"))
        p = self.doctor("--json", "--apply")
        doc, c = self.checks(p)
        for name, chk in c.items():
            if "." in name or name == "hugepages":
                self.assertTrue(chk["ok"], chk)
        self.assertEqual(doc["applied"], [])

    def test_doctor_apply_widens_a_port_range_never_narrows(self):
        with open(os.path.join(self.procsys, "net/ipv4/ip_local_port_range"), "w") as f:
            f.write("1024 30000\n")
        p = self.doctor("--apply")
        self.assertIn("set net.ipv4.ip_local_port_range: 1024 30000 -> 1024 65000", p.stdout)

    def test_doctor_bad_config_and_options_exit_2(self):
        p = ringctl("--endpoint", self.endpoint, "doctor", "--config", os.path.join(self.tmp, "missing.toml"),
                    env=self.env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot read the configuration", p.stderr)
        with open(self.config, "a") as f:
            f.write("[log]\nno_such_key = 1\n")
        p = self.doctor()
        self.assertEqual(p.returncode, 2)
        self.assertIn("no_such_key", p.stderr)
        p = ringctl("--endpoint", self.endpoint, "doctor", "--volume", "8M/day", env=self.env)
        self.assertEqual(p.returncode, 2)
        p = self.doctor("--volume", "8M/fortnight", "--size", "50KB")
        self.assertEqual(p.returncode, 2)
        self.assertIn("the period is", p.stderr)

    def test_doctor_apply_refuses_an_unwritable_sysctl_dir(self):
        os.rmdir(self.sysctld)
        with open(self.sysctld, "w") as f:  # not a directory: the file cannot be written, even by root
            f.write("x\n")
        p = self.doctor("--apply")
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot write", p.stderr)
        self.assertEqual(self.sysctl("net/core/somaxconn"), "128")  # nothing set without the file

    def test_doctor_free_space_against_capacity(self):
        # an outage of 10 years of 1G/day at 1 MB: no test file system holds that
        p = self.doctor("--json", "--volume", "1G/day", "--size", "1MB", "--outage", "3650d")
        doc, c = self.checks(p)
        self.assertFalse(c["spool free space"]["ok"])
        self.assertIn("capacity", c["spool free space"]["why"])
        self.assertEqual(p.returncode, 1)
        # 100 years of logs of 8M/day at 2 KB: 5.8 PB
        p = self.doctor("--json", "--volume", "8M/day", "--size", "50KB", "--outage", "1s", "--log-days", "36500")
        doc, c = self.checks(p)
        self.assertTrue(c["spool free space"]["ok"], c["spool free space"])  # one second of mail fits
        self.assertFalse(c["log free space"]["ok"])
        self.assertIn("log days", c["log free space"]["why"])

    def test_doctor_reads_the_live_node(self):
        node = Node()
        self.addCleanup(node.cleanup)
        node.start()
        p = ringctl("--endpoint", node.endpoint, "doctor", "--json", env=self.env)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        doc, c = self.checks(p)
        self.assertTrue(doc["node_reachable"])
        self.assertEqual(doc["config"], node.config_path)  # the file the node runs with
        self.assertEqual(doc["data_dir"], node.data_dir)
        seg_mib = node.status()["shm"]["bytes"] >> 20
        self.assertIn("(%d MiB)" % seg_mib, c["hugepages"]["target"])
        nofile = c["RLIMIT_NOFILE ingress[0]"]
        pid = node.instances()["ingress[0]"]["pid"]
        with open("/proc/%d/limits" % pid) as f:
            soft = [l.split()[3] for l in f if l.startswith("Max open files")][0]
        self.assertEqual(nofile["value"], soft)


class CapacityTest(unittest.TestCase):
    def capacity(self, *args):
        # an empty log directory: the guide's 2 KB per message
        empty = tempfile.mkdtemp(prefix="ringmail-capacity-")
        self.addCleanup(shutil.rmtree, empty, True)
        return ringctl("capacity", "--log-dir", empty, *args)

    def test_capacity_worked_example(self):
        """KumoMTA's guide: 8 M/day, 1 M/h peak, 50 KB: ~400 GB of spool per day of outage, ~16 GB of
        logs a day at 2 KB per message, ~111 Mbps at peak."""
        p = self.capacity("--volume", "8M/day", "--peak", "1M/h", "--size", "50KB", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        d = json.loads(p.stdout)
        self.assertEqual(round(d["spool"]["messages_held"]), 8000000)
        self.assertEqual(round(d["spool"]["bytes"]), 8000000 * (50000 + 512))  # 404.1 GB
        self.assertTrue(400e9 <= d["spool"]["bytes"] <= 410e9)
        self.assertEqual(d["logs"]["source"], "default")
        self.assertEqual(round(d["logs"]["bytes_per_day"]), 16000000000)
        self.assertEqual(round(d["logs"]["bytes"]), 30 * 16000000000)
        self.assertEqual(round(d["bandwidth"]["bits_per_second"] / 1e5), 1111)  # 111.1 Mbit/s
        self.assertEqual(d["cores"]["count"], 2)
        t = self.capacity("--volume", "8M/day", "--peak", "1M/h", "--size", "50KB")
        self.assertIn("50,512 x 8,000,000", t.stdout)
        self.assertIn("= 404,096,000,000 bytes (404.1 GB)", t.stdout)
        self.assertIn("16.0 GB a day", t.stdout)
        self.assertIn("111.1 Mbit/s", t.stdout)

    def test_capacity_units(self):
        a = json.loads(self.capacity("--volume", "8M/day", "--size", "50KiB", "--outage", "12h", "--json").stdout)
        self.assertEqual(round(a["spool"]["bytes"]), 4000000 * (51200 + 512))
        b = json.loads(self.capacity("--volume", "333.33333K/h", "--size", "0.05MB", "--json").stdout)
        self.assertAlmostEqual(b["input"]["messages_per_day"], 8e6, delta=1)
        c = json.loads(self.capacity("--volume", "92.5925925926/s", "--size", "50000", "--log-days", "7",
                                     "--json").stdout)
        self.assertAlmostEqual(c["logs"]["bytes"], 7 * 16e9, delta=1e3)

    def test_capacity_bad_units_are_clear_errors(self):
        for args, msg in ((["--volume", "8M", "--size", "50KB"], "want COUNT/PERIOD"),
                          (["--volume", "8X/day", "--size", "50KB"], "multiplier"),
                          (["--volume", "8M/week", "--size", "50KB"], "the period is"),
                          (["--volume", "-8M/day", "--size", "50KB"], "bad rate"),
                          (["--volume", "0/day", "--size", "50KB"], "more than 0"),
                          (["--volume", "1e6/day", "--size", "50KB"], "multiplier"),
                          (["--volume", "8M/day", "--size", "50kb"], "bad size"),
                          (["--volume", "8M/day", "--size", "KB"], "bad size"),
                          (["--volume", "8M/day", "--size", "50KB", "--outage", "1y"], "bad duration"),
                          (["--volume", "8M/day", "--size", "50KB", "--log-days", "2.5"], "whole number"),
                          (["--size", "50KB"], "required")):
            p = self.capacity(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(msg, p.stderr, args)

    def test_capacity_measures_this_nodes_logs(self):
        node = Node()
        self.addCleanup(node.cleanup)
        node.start()
        for i in range(12):
            c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
            c.sendmail("s@example.test", ["r%d@example.test" % i], "Subject: %d\r\n\r\nbody %d\r\n" % (i, i))
            c.quit()
        wait_for(lambda: sum(r["type"] == "Reception" for r in node.log_records()) >= 12, 10,
                 what="12 Reception records")
        node.stop()
        logs = os.path.join(node.data_dir, "logs")
        segs = glob.glob(os.path.join(logs, "*.jsonl.zst*"))
        compressed = sum(os.path.getsize(s) for s in segs)
        records = len(node.log_records())
        p = ringctl("capacity", "--data-dir", node.data_dir, "--volume", "8M/day", "--size", "50KB", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        d = json.loads(p.stdout)
        self.assertEqual(d["logs"]["source"], "measured")
        m = d["logs"]["measured"]
        self.assertEqual(m["receptions"], 12)
        self.assertEqual(m["records"], records)
        self.assertEqual(m["compressed_bytes"], compressed)
        self.assertAlmostEqual(d["logs"]["bytes_per_message"], compressed / 12)
        self.assertAlmostEqual(d["logs"]["bytes_per_day"], compressed / 12 * 8e6, delta=1)
        t = ringctl("capacity", "--data-dir", node.data_dir, "--volume", "8M/day", "--size", "50KB")
        self.assertIn("measured in %s" % logs, t.stdout)


def make_segment(path, n, age_s):
    """A finished segment written by the real zstd: n records, last written age_s ago."""
    lines = "".join(json.dumps({"type": "Delivery", "id": "seed%04d" % i, "recipient": "r@x.test"}) + "\n"
                    for i in range(n))
    subprocess.run(["zstd", "-q", "-f", "-o", path], input=lines.encode(), check=True)
    t = time.time() - age_s
    os.utime(path, (t, t))


class RetentionTest(unittest.TestCase):
    def node(self, log_keys):
        node = Node(config_extra="[log]\n" + log_keys)
        self.addCleanup(node.cleanup)
        logs = os.path.join(node.data_dir, "logs")
        os.makedirs(logs)
        os.chmod(node.data_dir, 0o755)
        os.chmod(logs, 0o777)  # the roles run unprivileged when the test runs as root: the spool must write here
        return node, logs

    def test_retention_removes_the_oldest_and_never_the_active_segment(self):
        node, logs = self.node('max_age = "1d"\nmax_total_size = "1MiB"\n')
        old = ["20240101-00000%d.000000.jsonl.zst" % i for i in range(4)]
        for name in old:
            make_segment(os.path.join(logs, name), 20, 3 * DAY)
        recent = "20240102-000000.000000.jsonl.zst"
        make_segment(os.path.join(logs, recent), 20, 3600)
        with open(os.path.join(logs, "NOTES.txt"), "w") as f:  # not a segment: never touched
            f.write("kept\n")
        node.start()
        wait_for(lambda: not any(os.path.exists(os.path.join(logs, n)) for n in old), 15,
                 what="the old segments removed")
        self.assertTrue(os.path.exists(os.path.join(logs, recent)))
        self.assertTrue(os.path.exists(os.path.join(logs, "NOTES.txt")))
        for name in old:
            self.assertIn("log retention: removed %s" % name, node.log())
        self.assertIn("older than [log] max_age", node.log())
        # mail makes an active segment; a segment dropped in now passes the size cap with it
        c = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=10)
        c.sendmail("s@example.test", ["r@example.test"], "Subject: x\r\n\r\nbody\r\n")
        c.quit()
        active = wait_for(lambda: glob.glob(os.path.join(logs, "*.jsonl.zst.active")), 10, what="an active segment")
        big = os.path.join(logs, "20240103-000000.000000.jsonl.zst")
        with open(big, "wb") as f:
            f.write(os.urandom(2 << 20))  # 2 MiB: over the cap alone
        wait_for(lambda: not os.path.exists(big), 25, what="the segment over max_total_size removed")
        self.assertIn("passes [log] max_total_size", node.log())
        self.assertTrue(os.path.exists(active[0]), "the active segment stays")
        # the active segment still holds the Reception of the message
        out = subprocess.run(["zstdcat", active[0]], capture_output=True).stdout.decode()
        self.assertIn('"type":"Reception"', out)

    def test_retention_off_by_default_keeps_everything(self):
        node, logs = self.node("")
        make_segment(os.path.join(logs, "20200101-000000.000000.jsonl.zst"), 5, 3650 * DAY)
        node.start()
        time.sleep(1.5)
        self.assertTrue(os.path.exists(os.path.join(logs, "20200101-000000.000000.jsonl.zst")))
        self.assertNotIn("log retention", node.log())

    def test_retention_keys_take_effect_at_a_reload(self):
        node, logs = self.node("")
        seg = os.path.join(logs, "20200101-000000.000000.jsonl.zst")
        make_segment(seg, 5, 30 * DAY)
        node.start()
        time.sleep(1.2)
        self.assertTrue(os.path.exists(seg))
        node.write_config(node.base_config + '[log]\nmax_age = "7d"\n')
        p = node.ringctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: not os.path.exists(seg), 15, what="the old segment removed after the reload")

    def test_mail_refused_when_log_disk_is_low(self):
        """[log] min_free_space above the test file system's free space: MAIL gets 452, while the spool's
        own minimum (default 1 GiB) is met."""
        node, logs = self.node('min_free_space = "1000GiB"\n')
        node.start()
        wait_for(lambda: "below [log] min_free_space" in node.log(), 10, what="the low-space log line")
        r = smtp_dialogue(node.smtp_port, ["EHLO client.test", "MAIL FROM:<s@example.test>", "QUIT"])
        self.assertTrue(r[2].startswith("452 4.3.1"), r)
        self.assertNotIn("below [spool] free_space_min", node.log())


if __name__ == "__main__":
    unittest.main()
