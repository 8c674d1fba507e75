"""PRIV-01/02 (issue 13): each role under its own user, undumpable, without new privileges, listeners
only in the ingress, the spool's files the spool's alone, the data directory never reached through a link.

The node runs as root with `[node] user = "nobody"` and two roles split off to users this test creates
(and removes): the spool as rmtest-spool, the ingress as rmtest-in. Every role keeps nobody's group.
Checks are made from outside with the roles' own credentials: a process holding the ingress's uid and
gid tries what a compromised ingress would try (open a spool file, list the logs, ptrace a role, open a
role's descriptors through /proc) and must be refused, where the same steps with a control target (the
spool's uid for its files, a dumpable process of the same uid for ptrace) succeed, so the test can fail.
"""
import ctypes
import errno
import grp
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402

# exclusive: the scenarios share the test users, which the last one to finish removes
MESON = {"suite": "supervisor", "timeout": 120, "exclusive": True}

USERS = ("rmtest-spool", "rmtest-in")
PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def as_user(uid, gid, fn):
    """Run fn() in a forked child with these credentials; its result: ("ok", value) or ("err", errno)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = "ok %s" % (fn(),)
        except OSError as e:
            out = "err %d" % e.errno
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never raised in the child
            out = "exc %r" % e
        os.write(w, out.encode()[:4000])
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    kind, _, value = data.decode().partition(" ")
    return kind, value


def ptrace_attach(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
        raise OSError(ctypes.get_errno(), "ptrace")
    os.waitpid(pid, 0)
    libc.ptrace(PTRACE_DETACH, pid, None, None)
    return "attached"


def attach_own_child():
    """Control: the same uid may trace a dumpable process of its own (its child, whatever Yama says)."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        return ptrace_attach(child.pid)
    finally:
        child.kill()
        child.wait()


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def listener_inodes(port):
    """The inodes of every socket listening on this port (one per ingress worker with BPF steering)."""
    out = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                out.add(fields[9])
    return out


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: the node drops to per-role users only when started as root")
class PrivTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("useradd"):
            raise unittest.SkipTest("no useradd on this machine")
        cls.made = []
        try:
            for u in USERS:
                try:
                    pwd.getpwnam(u)
                except KeyError:
                    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", u],
                                   check=True, capture_output=True)
                    cls.made.append(u)
            cls.gid = pwd.getpwnam("nobody").pw_gid
            cls.uid = {u: pwd.getpwnam(u).pw_uid for u in USERS}
            cls.nobody = pwd.getpwnam("nobody").pw_uid
        except BaseException:
            cls.tearDownClass()  # unittest does not call it when setUpClass fails: no user left behind
            raise

    @classmethod
    def tearDownClass(cls):
        for u in cls.made:
            subprocess.run(["userdel", u], capture_output=True)

    def start(self):
        node = Node(ingress_workers=2)
        node.write_config(node.base_config.replace(
            "[node]\n", '[node]\nuser = "nobody"\nspool_user = "rmtest-spool"\ningress_user = "rmtest-in"\n', 1))
        self.addCleanup(node.cleanup)
        node.start()
        return node

    def test_roles_run_as_their_users_undumpable_without_new_privileges(self):
        node = self.start()
        want = {"spool": self.uid["rmtest-spool"], "ingress": self.uid["rmtest-in"], "scheduler": self.nobody,
                "egress": self.nobody}
        for name, r in node.instances().items():
            st = proc_status(r["pid"])
            self.assertEqual(int(st["Uid"][0]), want[r["role"]], name)
            self.assertEqual(int(st["Uid"][1]), want[r["role"]], name)
            self.assertEqual(int(st["Gid"][0]), self.gid, name)
            self.assertEqual(st["Groups"], [], name)
            self.assertEqual(st["NoNewPrivs"], ["1"], name)
            self.assertEqual(st["Seccomp"], ["2"], name)  # PRIV-02: its allow-list is loaded (seccomp_test.py)
            # an undumpable process's /proc entries (fd/, status, mem...) belong to root, whatever its uid
            self.assertEqual(os.stat("/proc/%d/fd" % r["pid"]).st_uid, 0, name)
        # the node works with its roles split: mail is accepted and stored
        self.assertIn("250", "250 " + smtp_send(node.smtp_port, "s@example.test", "r@example.test",
                                                b"Subject: priv\r\n\r\nhello\r\n"))
        wait_for(lambda: node.counter("spool", "messages_stored") >= 1, 10, what="the message stored")

    def test_ingress_cannot_open_the_spool_or_ptrace_a_role(self):
        node = self.start()
        inst = node.instances()
        spool_dir = os.path.join(node.data_dir, "spool")
        log_dir = os.path.join(node.data_dir, "logs")
        current = os.path.join(spool_dir, "CURRENT")
        self.assertTrue(os.path.exists(current))
        st = os.stat(spool_dir)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (self.uid["rmtest-spool"], 0o700))
        uid_in = self.uid["rmtest-in"]
        # the ingress's credentials: no spool file, no log listing
        self.assertEqual(as_user(uid_in, self.gid, lambda: os.open(current, os.O_RDONLY)),
                         ("err", str(errno.EACCES)))
        self.assertEqual(as_user(uid_in, self.gid, lambda: os.listdir(log_dir)), ("err", str(errno.EACCES)))
        # control: the spool's own credentials open the same file
        self.assertEqual(as_user(self.uid["rmtest-spool"], self.gid, lambda: os.open(current, os.O_RDONLY) >= 0),
                         ("ok", "True"))
        # ptrace: the ingress's uid may trace a dumpable process of its own, not the other ingress worker
        self.assertEqual(as_user(uid_in, self.gid, attach_own_child), ("ok", "attached"))
        target = inst["ingress[1]"]["pid"]
        self.assertEqual(as_user(uid_in, self.gid, lambda: ptrace_attach(target)), ("err", str(errno.EPERM)))
        # nor open a role's descriptors (the shared memfd among them) through /proc
        fds = os.listdir("/proc/%d/fd" % target)
        self.assertTrue(fds)
        kind, value = as_user(uid_in, self.gid, lambda: [os.open("/proc/%d/fd/%s" % (target, fd), os.O_RDONLY)
                                                         for fd in fds])
        self.assertEqual((kind, value), ("err", str(errno.EACCES)))

    def test_listeners_only_in_the_ingress(self):
        node = self.start()
        inodes = wait_for(lambda: listener_inodes(node.smtp_port), 5, what="the SMTP listener in /proc/net/tcp")
        for name, r in node.instances().items():
            held = bool(inodes & socket_inodes(r["pid"]))
            self.assertEqual(held, r["role"] == "ingress", "%s %s the SMTP listener" %
                             (name, "holds" if held else "does not hold"))

    def test_a_data_directory_that_is_a_symlink_is_refused(self):
        elsewhere = tempfile.mkdtemp(prefix="ringmail-elsewhere-")
        self.addCleanup(shutil.rmtree, elsewhere, True)
        node = Node()
        self.addCleanup(node.cleanup)
        os.symlink(elsewhere, node.data_dir)
        node.start(wait_ready=False)
        wait_for(lambda: node.proc.poll() is not None, 10, what="ringmaild to refuse the data directory")
        self.assertNotEqual(node.proc.returncode, 0)
        self.assertIn("symbolic link", node.log())
        self.assertEqual(os.listdir(elsewhere), [], "something was written through the link")


if __name__ == "__main__":
    unittest.main()
