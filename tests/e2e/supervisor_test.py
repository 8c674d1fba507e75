"""End-to-end tests of the foundation: ringmaild, the roles, shared-memory rings, ringctl.

Each test starts a real node (every role a real process) in a temporary directory on loopback
ports picked at run time, and stops it by pid at the end. Run one with:
    /usr/bin/python3 tests/e2e/supervisor_test.py -k kill9
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, ROLES, Node, pid_alive, read_reply, smtp_dialogue, wait_for  # noqa: E402

# timed checks (a restart within 2 s, a reply within 3 s): run alone
MESON = {"exclusive": True}


class NodeCase(unittest.TestCase):
    node = None

    def start_node(self, **kw):
        self.node = Node(**kw)
        self.addCleanup(self.node.cleanup)
        self.node.start()
        return self.node

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors) and self.node:
            sys.stderr.write("---- ringmaild log ----\n%s\n" % self.node.log()[-6000:])
        return res


class StatusTest(NodeCase):
    def test_status_all_roles_ready_and_rings_carry_traffic(self):
        node = self.start_node(ingress_workers=2, egress_workers=2)
        inst = node.instances()
        self.assertEqual(sorted(inst), sorted(["spool[0]", "scheduler[0]", "ingress[0]", "ingress[1]",
                                               "egress[0]", "egress[1]"]))
        for name, r in inst.items():
            self.assertGreater(r["pid"], 0, name)
            self.assertTrue(pid_alive(r["pid"]), name)
            self.assertEqual(r["restarts"], 0, name)
            if os.geteuid() == 0:
                # started as root, every role runs as the unprivileged [node] user
                with open("/proc/%d/status" % r["pid"]) as f:
                    uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
                self.assertTrue(all(u != "0" for u in uids), (name, uids))

        # every instance probes each peer over its ring once a second and counts the answers
        def all_ponged():
            inst = node.instances()
            return all(r["counters"]["pongs_received"] >= 2 and r["ring_rtt_us"] > 0 for r in inst.values())
        wait_for(all_ponged, 6, what="ring probes answered by every peer")
        inst = node.instances()
        for name, r in inst.items():
            c = r["counters"]
            self.assertGreaterEqual(c["ring_popped"], c["pongs_received"], name)
            self.assertEqual(c["ring_bad_records"], 0, name)
            self.assertIsNotNone(r["heartbeat_age_ms"], name)
            self.assertLess(r["heartbeat_age_ms"], 2000, name)

        out = node.ringctl("status", check=True).stdout
        for name in inst:
            self.assertIn(name, out)
        self.assertIn("ready", out)
        self.assertIn("shared memory", out)
        st = node.status()
        self.assertIn(st["shm"]["page_source"], ("hugetlb", "thp", "small"))
        self.assertEqual(st["shm"]["rings"], 2 + 2 * 2 + 4 * 2)

    def test_metrics_endpoint(self):
        node = self.start_node()
        p = node.ringctl("metrics", check=True)
        self.assertIn('ringmail_role_up{role="spool",index="0"} 1', p.stdout)
        self.assertIn("# TYPE ringmail_role_restarts_total counter", p.stdout)
        if not shutil.which("promtool"):
            self.skipTest("promtool (prometheus) not installed")
        chk = subprocess.run(["promtool", "check", "metrics"], input=p.stdout, capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)

    def test_smtp_basic_dialogue(self):
        node = self.start_node()
        r = smtp_dialogue(node.smtp_port, ["EHLO client.test", "NOOP", "MAIL FROM:<a@b.test>", "X" * 600, "RSET",
                                          "QUIT"])
        self.assertTrue(r[0].startswith("220 "), r[0])
        self.assertTrue(r[1].startswith("250-"), r[1])
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "CHUNKING", "ENHANCEDSTATUSCODES"):
            self.assertIn(ext, r[1])
        self.assertTrue(r[2].startswith("250 "), r[2])
        self.assertTrue(r[3].startswith("250 2.1.0"), r[3])
        self.assertTrue(r[4].startswith("500 5.5.2"), r[4])
        self.assertTrue(r[5].startswith("250 "), r[5])
        self.assertTrue(r[6].startswith("221 "), r[6])


class RestartTest(NodeCase):
    def test_kill9_each_role_instance_restarts_within_2s_others_untouched(self):
        node = self.start_node(ingress_workers=2, egress_workers=2)
        for victim in sorted(node.instances()):
            before = node.instances()
            old_pid = before[victim]["pid"]
            t0 = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)

            def replaced():
                r = node.instances()[victim]
                return r if r["pid"] not in (0, old_pid) and r["state"] == "ready" else None
            r = wait_for(replaced, 2.0, step=0.02, what="%s restarted" % victim)
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 2.0)
            self.assertEqual(r["restarts"], before[victim]["restarts"] + 1)
            self.assertGreater(r["generation"], before[victim]["generation"])
            self.assertIn("signal 9", r["last_exit"])
            after = node.instances()
            for other, o in before.items():
                if other != victim:
                    self.assertEqual(after[other]["pid"], o["pid"], "%s changed when %s was killed" % (other, victim))
                    self.assertEqual(after[other]["restarts"], o["restarts"], other)
        self.assertIn("killed by signal 9", node.log())

    def test_operator_restart_of_one_role(self):
        node = self.start_node(egress_workers=2)
        before = node.instances()
        p = node.ringctl("restart", "egress", check=True)
        self.assertIn("egress[0]", p.stdout)

        def both_replaced():
            inst = node.instances()
            return all(inst[n]["pid"] not in (0, before[n]["pid"]) and inst[n]["state"] == "ready"
                       for n in ("egress[0]", "egress[1]"))
        wait_for(both_replaced, 5, what="egress restarted")
        after = node.instances()
        for n in ("spool[0]", "scheduler[0]", "ingress[0]"):
            self.assertEqual(after[n]["pid"], before[n]["pid"])
        # an operator restart is a clean exit, not a crash
        self.assertIn("exit 0", after["egress[0]"]["last_exit"])
        p = node.ringctl("restart", "egress/1", check=True)
        self.assertIn("egress[1]", p.stdout)
        self.assertNotIn("egress[0]", p.stdout)
        p = node.ringctl("restart", "postfix")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("unknown role", p.stdout + p.stderr)

    def test_heartbeat_watchdog_kills_a_hung_role(self):
        node = self.start_node(supervisor='heartbeat_timeout = "1s"')
        victim = node.instances()["scheduler[0]"]
        os.kill(victim["pid"], signal.SIGSTOP)
        try:
            r = wait_for(lambda: (lambda x: x if x["pid"] not in (0, victim["pid"]) and x["state"] == "ready" else None)(
                node.instances()["scheduler[0]"]), 6, what="hung scheduler replaced")
        finally:
            if pid_alive(victim["pid"]):
                os.kill(victim["pid"], signal.SIGKILL)
        self.assertIn("heartbeat", node.log())
        self.assertEqual(r["restarts"], 1)

    def test_crash_looping_role_is_held_and_reported_node_keeps_running(self):
        bin_dir = tempfile.mkdtemp(prefix="ringmail-bin-")
        os.chmod(bin_dir, 0o755)
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", bin_dir]))
        for role in ROLES:
            src = os.path.join(os.path.abspath(BUILD_DIR), "ringmail-" + role)
            dst = os.path.join(bin_dir, "ringmail-" + role)
            if role == "egress":
                with open(dst, "w") as f:
                    f.write("#!/bin/sh\necho 'broken egress build' >&2\nexit 3\n")
                os.chmod(dst, 0o755)
            else:
                os.symlink(src, dst)
        node = Node(bin_dir=bin_dir,
                    supervisor='crash_loop_limit = 3\ncrash_loop_window = "30s"\ncrash_loop_hold = "60s"')
        self.node = node
        self.addCleanup(node.cleanup)
        node.start(wait_ready=False)
        r = wait_for(lambda: (lambda x: x if x["state"] == "held" else None)(node.instances()["egress[0]"]), 10,
                     what="egress held")
        self.assertIn("exit 3", r["last_exit"])
        self.assertGreaterEqual(r["restarts"], 3)
        self.assertGreater(r["held_for_ms"], 50000)
        inst = node.instances()
        for n in ("spool[0]", "scheduler[0]", "ingress[0]"):
            self.assertEqual(inst[n]["state"], "ready", n)
        # it stays held: no restart storm
        time.sleep(1.0)
        self.assertEqual(node.instances()["egress[0]"]["restarts"], r["restarts"])
        out = node.ringctl("status", check=True).stdout
        self.assertIn("held", out)
        self.assertIn("crash loop", out)
        self.assertIn("crash loop", node.log())
        # the rest of the node keeps serving
        replies = smtp_dialogue(node.smtp_port, ["QUIT"])
        self.assertTrue(replies[0].startswith("220 "))


class ListenerTest(NodeCase):
    def test_listener_survives_ingress_restart(self):
        node = self.start_node(supervisor='restart_backoff = "500ms"')
        ing = node.instances()["ingress[0]"]
        os.kill(ing["pid"], signal.SIGKILL)
        wait_for(lambda: node.instances()["ingress[0]"]["state"] != "ready", 2, step=0.01, what="ingress down")
        # no ingress runs now: the connection waits in the supervisor's listener backlog
        s = socket.create_connection(("127.0.0.1", node.smtp_port), timeout=5)
        try:
            self.assertNotEqual(node.instances()["ingress[0]"]["state"], "ready")
            f = s.makefile("rb")
            banner = read_reply(f)
            self.assertTrue(banner.startswith("220 "), banner)
            s.sendall(b"QUIT\r\n")
            self.assertTrue(read_reply(f).startswith("221 "))
        finally:
            s.close()
        self.assertNotEqual(node.instances()["ingress[0]"]["pid"], ing["pid"])


class SteeringTest(NodeCase):
    def test_new_connections_go_to_the_least_loaded_ready_ingress(self):
        node = self.start_node(ingress_workers=2, supervisor='restart_backoff = "1s"')
        st = node.status()
        if st["connection_steering"] != "bpf":
            self.skipTest(st["connection_steering_note"])
        socks = []
        self.addCleanup(lambda: [x.close() for x in socks])

        def connect(n):
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", node.smtp_port), timeout=5)
                socks.append(c)
                self.assertTrue(read_reply(c.makefile("rb")).startswith("220 "))
                time.sleep(0.12)  # the supervisor refreshes the loads every 50 ms

        def sessions():
            inst = node.instances()
            return [inst["ingress[%d]" % i]["counters"]["smtp_sessions"] for i in (0, 1)]
        connect(10)
        self.assertEqual(sessions(), [5, 5])
        # a worker that is down gets no new connection
        before = node.instances()["ingress[1]"]["counters"]["smtp_connections"]
        os.kill(node.instances()["ingress[0]"]["pid"], signal.SIGKILL)
        wait_for(lambda: node.instances()["ingress[0]"]["state"] != "ready", 2, step=0.01, what="ingress[0] down")
        time.sleep(0.15)
        connect(3)
        self.assertEqual(node.instances()["ingress[1]"]["counters"]["smtp_connections"], before + 3)
        # back, with no sessions: it is the least loaded and gets the next ones
        node.wait_all_ready()
        time.sleep(0.15)
        connect(2)
        self.assertEqual(sessions()[0], 2)


class StopTest(NodeCase):
    def test_sigterm_stops_everything_within_bounded_time(self):
        node = self.start_node(ingress_workers=2, egress_workers=2)
        pids = node.role_pids()
        self.assertEqual(len(pids), 6)
        # an open SMTP session must not hold the stop up
        s = socket.create_connection(("127.0.0.1", node.smtp_port), timeout=5)
        f = s.makefile("rb")
        read_reply(f)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        node.proc.wait(10)
        elapsed = time.monotonic() - t0
        self.assertEqual(node.proc.returncode, 0)
        self.assertLess(elapsed, 6.0)  # drain_timeout is 5 s in the test config
        for pid in pids:
            self.assertFalse(pid_alive(pid), "pid %d still alive after stop" % pid)
        self.assertTrue(read_reply(f).startswith("421 "))
        s.close()
        self.assertIn("node stopped", node.log())


class ReloadTest(NodeCase):
    def test_reload_applies_good_and_refuses_bad_configuration(self):
        node = self.start_node()
        node.write_config(node.base_config.replace('log_level = "info"', 'log_level = "debug"'))
        p = node.ringctl("reload", check=True)
        self.assertIn("reloaded (generation 1)", p.stdout)

        def all_applied(gen):
            return all(r["reload_generation"] == gen for r in node.instances().values())
        wait_for(lambda: all_applied(1), 5, what="every role applied reload 1")

        # a bad file is refused with file:line, and the node keeps running on the old one
        node.write_config(node.base_config + "\n[ingress]\nworkerz = 3\n")
        pids = node.role_pids()
        p = node.ringctl("reload")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("ringmail.toml:", p.stdout)
        self.assertEqual(node.status()["reload"]["generation"], 1)
        self.assertEqual(node.role_pids(), pids)

        # SIGHUP does the same as ringctl reload
        node.write_config(node.base_config)
        node.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: all_applied(2), 5, what="every role applied reload 2 (SIGHUP)")
        # a change that needs a restart is reported as such
        node.write_config(node.base_config.replace("workers = 1", "workers = 2", 1))
        p = node.ringctl("reload", check=True)
        self.assertIn("needs a node restart", p.stdout)
        self.assertIn("ingress.workers", p.stdout)


class ConfigTest(unittest.TestCase):
    def test_bad_config_reports_every_error_with_file_line_and_exits_nonzero(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.toml")
            with open(path, "w") as f:
                f.write('[node]\nlog_level = "loud"\n\n[ingress]\nworkers = 0\n\n[nosuch]\nx = 1\n')
            p = subprocess.run([os.path.join(BUILD_DIR, "ringmaild"), "--config", path, "--data-dir",
                                os.path.join(d, "data")], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            for line in (2, 5, 7):
                self.assertIn("bad.toml:%d" % line, p.stderr, p.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "data")), "nothing may start on a bad config")
            p = subprocess.run([os.path.join(BUILD_DIR, "ringmaild"), "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1)
            with open(path, "w") as f:
                f.write('[node]\nlog_level = "warn"\n')
            p = subprocess.run([os.path.join(BUILD_DIR, "ringmaild"), "--config", path, "--check-config"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_embedded_default_configuration_is_valid(self):
        p = subprocess.run([os.path.join(BUILD_DIR, "ringmaild"), "--check-config"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("embedded default", p.stdout)


def read_int(path):
    with open(path) as f:
        return int(f.read().split()[0])


def usable_cpus():
    """The CPUs a process started now may use: its affinity mask, bounded by its cgroup's CPU quota
    (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up; read here independently of ringmail."""
    n = len(os.sched_getaffinity(0))
    with open("/proc/self/cgroup") as f:
        lines = [l.rstrip("\n").split(":", 2) for l in f]
    v1 = [p for _, ctl, p in lines if "cpu" in ctl.split(",")]
    v2 = [p for h, ctl, p in lines if h == "0" and ctl == ""]
    quota = None
    try:
        if v1:
            d = "/sys/fs/cgroup/cpu" + (v1[0] if v1[0] != "/" else "")
            if not os.path.isdir(d):
                d = "/sys/fs/cgroup/cpu"
            q, per = read_int(d + "/cpu.cfs_quota_us"), read_int(d + "/cpu.cfs_period_us")
            quota = -(-q // per) if q > 0 else None
        elif v2:
            d = "/sys/fs/cgroup" + (v2[0] if v2[0] != "/" else "")
            if not os.path.isdir(d):
                d = "/sys/fs/cgroup"
            with open(d + "/cpu.max") as f:
                q, per = f.read().split()
            quota = -(-int(q) // int(per)) if q != "max" else None
    except (OSError, ValueError):
        quota = None
    return max(1, min(n, quota) if quota else n)


class WorkersTest(NodeCase):
    """[ingress] / [egress] workers = "auto" (the default): sized from the CPUs the node may use."""

    def check_auto(self, cpus):
        node = self.start_node(ingress_workers="auto", egress_workers="auto")
        inst = node.instances()
        ingress = sum(1 for n in inst if n.startswith("ingress["))
        egress = sum(1 for n in inst if n.startswith("egress["))
        self.assertEqual((ingress, egress), (min(cpus, 32), min(cpus, 32)), "on %d CPUs" % cpus)
        self.assertIn("workers: ingress %d (auto), egress %d (auto); this process may use %d CPUs" %
                      (ingress, egress, cpus), node.log())

    def test_auto_workers_follow_the_cpus_this_node_may_use(self):
        self.check_auto(usable_cpus())

    def test_auto_workers_follow_a_narrowed_affinity_mask(self):
        mask = os.sched_getaffinity(0)
        self.addCleanup(os.sched_setaffinity, 0, mask)
        os.sched_setaffinity(0, {min(mask)})  # as `taskset -c N ringmaild` would
        self.check_auto(1)


class PageSourceTest(NodeCase):
    def test_small_pages_when_hugepages_off(self):
        node = self.start_node(hugepages="off")
        self.assertEqual(node.status()["shm"]["page_source"], "small")

    def test_hugetlb_pages_when_reserved(self):
        path = "/proc/sys/vm/nr_hugepages"
        if os.geteuid() != 0 or not os.access(path, os.W_OK):
            self.skipTest("needs root to reserve hugepages")
        old = read_int(path)
        self.addCleanup(lambda: open(path, "w").write("%d\n" % old))
        with open(path, "w") as f:
            f.write("%d\n" % (old + 64))
        if read_int(path) < old + 16:
            self.skipTest("the kernel could not reserve hugepages")
        node = self.start_node(hugepages="require")
        self.assertEqual(node.status()["shm"]["page_source"], "hugetlb")
        self.assertIn("hugetlb", node.log())
        node.stop()


if __name__ == "__main__":
    # exit 77 when everything selected was skipped, so meson reports SKIP rather than OK
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
