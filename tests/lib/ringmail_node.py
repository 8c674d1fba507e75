"""ringmail_node - start a real ringmaild in a temporary directory on loopback ports, for tests.

Every process started here is stopped by pid in stop(); temporary directories are removed.
Ports are picked at run time by binding port 0 on 127.0.0.1.
"""
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request

BUILD_DIR = os.environ.get("RINGMAIL_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
ROLES = ("spool", "scheduler", "ingress", "egress")


_given_ports = set()


def free_port():
    """A port nobody listens on now, and not handed out before by this process (two calls in a row
    could otherwise get the same port back from the kernel)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port")


def wait_for(pred, timeout, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(step)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def toml_workers(n):
    """A `workers` value: a count, or "auto" (the node sizes itself from its CPUs)."""
    return '"auto"' if n == "auto" else "%d" % n


class Node:
    def __init__(self, config_extra="", ingress_workers=1, egress_workers=1, bin_dir=None, hugepages="auto",
                 supervisor="", ingress="", spool="", egress="", name="node", park_delivery=True, nofile=None,
                 ringmaild=None, memlock=None):
        self.tmp = tempfile.mkdtemp(prefix="ringmail-test-")
        os.chmod(self.tmp, 0o755)  # the roles run as an unprivileged user when the test runs as root
        self.smtp_port = free_port()
        self.admin_port = free_port()
        self.data_dir = os.path.join(self.tmp, "data")
        self.config_path = os.path.join(self.tmp, "ringmail.toml")
        self.log_path = os.path.join(self.tmp, "ringmaild.log")
        self.bin_dir = bin_dir
        self.ringmaild = ringmaild or os.path.join(BUILD_DIR, "ringmaild")  # an installed copy, say
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE for ringmaild, or None: this process's
        # RLIMIT_MEMLOCK for ringmaild and its roles (root only: raising it), as LimitMEMLOCK= in the unit
        self.memlock = memlock if memlock is None or os.geteuid() == 0 else None
        self.proc = None
        self.base_config = """
[node]
data_dir = "%s"
log_level = "info"

[[listener]]
address = "127.0.0.1:%d"

[admin]
listen = "127.0.0.1:%d"

[ingress]
workers = %s
%s

[spool]
%s

[egress]
workers = %s
%s

[shm]
arena_size = "8MiB"
ring_slots = 1024
hugepages = "%s"

[supervisor]
%s
""" % (self.data_dir, self.smtp_port, self.admin_port, toml_workers(ingress_workers), ingress, spool,
       toml_workers(egress_workers), egress,
       hugepages,
       self.supervisor_section(supervisor))
        if park_delivery:
            # tests that are not about delivery keep their mail queued and their spool quiet: MX
            # lookups go to a loopback port nobody answers, fail as temporary, and retry an hour later
            # (no attempt is made, so nothing is written back to the spool)
            self.base_config = self.base_config.replace(
                "[egress]\nworkers = %s\n" % toml_workers(egress_workers),
                "[egress]\nworkers = %s\nresolver = \"127.0.0.1:%d\"\ndns_timeout = \"100ms\"\n" %
                (toml_workers(egress_workers), free_port()), 1)
            self.base_config += """
[queue.default]
retry_interval = "1h"
max_retry_interval = "2h"
"""
        self.write_config(self.base_config + config_extra)

    @staticmethod
    def supervisor_section(extra):
        """Test defaults (fast restarts, short drain) unless the test sets the key itself."""
        lines = [l for l in extra.splitlines() if l.strip()]
        keys = {l.split("=")[0].strip() for l in lines}
        for key, value in (("restart_backoff", '"100ms"'), ("drain_timeout", '"5s"')):
            if key not in keys:
                lines.append("%s = %s" % (key, value))
        return "\n".join(lines)

    def policy_section(self, lua):
        """A [policy] section naming a policy.lua with this text, written into the node's directory."""
        path = os.path.join(self.tmp, "policy.lua")
        with open(path, "w") as f:
            f.write(lua)
        os.chmod(path, 0o644)  # the roles run as an unprivileged user when the test runs as root
        return '[policy]\nfile = "%s"\n' % path

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.admin_port

    def start(self, wait_ready=True, env=None, cgroup=None):
        """env: variables added to this process's environment for ringmaild (NOTIFY_SOCKET, say).
        cgroup: a cgroup directory (v1 or v2) that ringmaild joins before its exec, so every role is in it."""
        args = [self.ringmaild, "--config", self.config_path]
        if self.bin_dir:
            args += ["--bin-dir", self.bin_dir]
        self.logf = open(self.log_path, "ab")
        limit = None
        if self.nofile or self.memlock or cgroup:
            import resource

            def limit():
                if self.nofile:
                    resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
                if self.memlock:
                    try:  # needs CAP_SYS_RESOURCE, which a container may not give
                        resource.setrlimit(resource.RLIMIT_MEMLOCK, (self.memlock, self.memlock))
                    except (OSError, ValueError):
                        pass
                if cgroup:
                    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))  # this (forked) process, before the exec
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=limit, env=dict(os.environ, **env) if env else None)
        if wait_ready:
            try:
                self.wait_all_ready()
            except BaseException:
                # a node that never got ready must not outlive the test (its caller may not have
                # registered a cleanup yet): stop it by pid, keep its directory for the log
                self.stop()
                raise
        return self

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def token_path(self):
        return os.path.join(self.data_dir, "admin.token")

    def token(self):
        """The admin token ringmaild made at its first start (docs/admin-api.md, "Access control")."""
        with open(self.token_path) as f:
            return f.read().strip()

    def http(self, method, path, timeout=10, token=True, headers=None):
        """A call of the admin API, with the node's token unless token is False (or another token)."""
        hdrs = dict(headers or {})
        if token is True:
            token = self.token() if os.path.exists(self.token_path) else None
        if token:
            hdrs["Authorization"] = "Bearer " + token
        req = urllib.request.Request("http://%s%s" % (self.endpoint, path), method=method,
                                     data=b"" if method == "POST" else None, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def status(self):
        code, body = self.http("GET", "/api/v1/status")
        if code != 200:
            raise ValueError("status HTTP %d" % code)
        return json.loads(body)

    def instances(self):
        return {"%s[%d]" % (r["role"], r["index"]): r for r in self.status()["roles"]}

    def wait_all_ready(self, timeout=10):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("ringmaild exited with %s:\n%s" % (self.proc.returncode, self.log()))
            inst = self.instances()
            return inst if all(r["state"] == "ready" for r in inst.values()) else None
        return wait_for(ready, timeout, what="every role ready")

    def ringctl(self, *args, check=False, timeout=30):
        p = subprocess.run([os.path.join(BUILD_DIR, "ringctl"), "--endpoint", self.endpoint,
                            "--data-dir", self.data_dir] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("ringctl %s failed (%d): %s %s" % (args, p.returncode, p.stdout, p.stderr))
        return p

    def counter(self, role, name, index=None):
        """Sum of a counter over the instances of a role (or one instance)."""
        total = 0
        for r in self.status()["roles"]:
            if r["role"] == role and (index is None or r["index"] == index):
                total += r["counters"][name]
        return total

    def log_records(self):
        """Every JSON record of every log segment, read with the real zstdcat (also the active one)."""
        import glob
        import json as _json
        out = []
        logs = os.path.join(self.data_dir, "logs")
        for seg in sorted(glob.glob(os.path.join(logs, "*.zst*"))):
            p = subprocess.run(["zstdcat", seg], capture_output=True)
            for line in p.stdout.splitlines():
                if line.strip():
                    out.append(_json.loads(line))
        return out

    def kill_all(self):
        """kill -9 of the supervisor and every role, by pid (a crash of the whole node)."""
        pids = self.role_pids()
        self.proc.kill()
        self.proc.wait(5)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(p) for p in pids), 5, what="all roles dead")

    def role_pids(self):
        return [r["pid"] for r in self.status()["roles"] if r["pid"] > 0]

    def stop(self, timeout=15):
        """SIGTERM the node and wait; then make sure no process of ours is left, by pid."""
        pids = []
        if self.proc and self.proc.poll() is None:
            try:
                pids = self.role_pids()
            except Exception:
                pids = []
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if getattr(self, "logf", None):
            self.logf.close()
        return pids

    # a role that died of one of these, or a sanitizer report, is a bug even when the node recovered
    CRASH_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "killed by signal 6 ",
                   "killed by signal 11 ", "killed by signal 7 ", "killed by signal 8 ", "killed by signal 4 ",
                   "killed by seccomp", ": seccomp: syscall ")
    allow_crashes = False  # a test that makes a role crash on purpose sets it

    def crashes(self):
        """Lines of the node's log saying a role crashed (not a kill by the test: SIGKILL, SIGTERM)."""
        return [l for l in self.log().splitlines() if any(m in l for m in self.CRASH_MARKS)]

    def cleanup(self):
        self.stop()
        bad = [] if self.allow_crashes else self.crashes()
        if bad:
            log = self.log()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise AssertionError("a role crashed during the test:\n%s\n--- node log tail ---\n%s" %
                                 ("\n".join(bad[:10]), log[-6000:]))
        shutil.rmtree(self.tmp, ignore_errors=True)


def traced_by(pid):
    """True while some process ptraces pid."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1]) != 0
    return False


def hold_fsyncs(pid, delay_s, out="/dev/null", when="exit"):
    """Hold every fsync/fdatasync of pid for delay_s with strace's fault injection: before the call runs
    (when="enter": nothing is synced yet) or after it ran and before it returns (when="exit"). Returns
    the strace process once it is attached (the caller stops it), or None when strace is missing or
    cannot attach here."""
    if not shutil.which("strace"):
        return None
    tr = subprocess.Popen(["strace", "-f", "-p", str(pid), "-o", out, "-e", "trace=fsync,fdatasync",
                           "-e", "inject=fsync,fdatasync:delay_%s=%d" % (when, int(delay_s * 1e6))],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: traced_by(pid), 5, what="strace attached")
    except AssertionError:
        tr.kill()
        tr.wait()
        return None
    return tr


def smtp_send(port, sender, rcpt, data, timeout=10):
    """One transaction of one recipient with smtplib (EHLO client.test); the reply text of the 250 to DATA.
    A refused recipient or message is an AssertionError."""
    c = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    try:
        c.ehlo("client.test")
        c.mail(sender)
        code, text = c.rcpt(rcpt)
        if code != 250:
            raise AssertionError("RCPT %s: %d %r" % (rcpt, code, text))
        code, reply = c.data(data)
        if code != 250:
            raise AssertionError("DATA: %d %r" % (code, reply))
        return reply.decode(errors="replace")
    finally:
        c.quit()


def smtp_dialogue(port, lines, host="127.0.0.1", timeout=5):
    """Connect, read the banner, send each line and read one reply per line. Returns the replies."""
    out = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        out.append(read_reply(f))
        for line in lines:
            s.sendall(line if isinstance(line, bytes) else line.encode() + b"\r\n")
            out.append(read_reply(f))
    return out


def read_reply(f):
    lines = []
    while True:
        line = f.readline(4096)
        if not line:
            raise ConnectionError("connection closed; got %r" % lines)
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return "\n".join(lines)
