"""The replay rules of tests/lib/powerlog.py (PWR-03), on small synthetic write logs: no FUSE, no node.
Each case is one of the rules the write-log power-cut test relies on, and fails if the rule were wrong:
an unsynced write is kept in some seeds and dropped in others; a synced one is always kept; a rename with
no barrier after it can be lost; a file created and fsynced is always there when a file fsync commits the
journal (ext4, xfs), and can be absent under plain POSIX when its directory was never synced.

    /usr/bin/python3 tests/e2e/powerlog_test.py
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from powerlog import PowerLog  # noqa: E402

MESON = {"suite": "faults", "timeout": 30, "node": False}

SEEDS = range(64)


class SyntheticLog:
    """Writes a log in ringmail-powerfs's format, one op at a time."""

    def __init__(self, dirname):
        self.path = os.path.join(dirname, "powerfs.log")
        self.recs = []
        self.data = bytearray()
        self.next_ino = 2

    def op(self, op, ino, path="", data=None, **fields):
        rec = {"seq": len(self.recs), "t": 1000 * (len(self.recs) + 1), "op": op, "ino": ino, "path": path}
        rec.update(fields)
        if data is not None:
            rec.update(len=len(data), doff=len(self.data))
            self.data += data
        self.recs.append(rec)
        return len(self.recs) - 1

    def create(self, path, directory=False):
        ino = self.next_ino
        self.next_ino += 1
        self.op("mkdir" if directory else "create", ino, path, mode=0o40755 if directory else 0o100644, uid=0,
                gid=0)
        return ino

    def write(self, ino, off, data):
        return self.op("write", ino, off=off, data=data)

    def save(self):
        with open(self.path, "w") as f:
            for rec in self.recs:
                f.write(json.dumps(rec) + "\n")
        with open(self.path + ".data", "wb") as f:
            f.write(self.data)
        return PowerLog(self.path)


class PowerLogRulesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ringmail-powerlog-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.log = SyntheticLog(self.tmp)
        self.n = 0

    def state(self, log, k, seed, mode="journal"):
        """{path: content (None for a directory)} of the state at k for this seed."""
        self.n += 1
        dest = os.path.join(self.tmp, "state%d" % self.n)
        os.mkdir(dest)
        log.build(k, dest, seed, mode)
        out = {}
        for root, dirs, files in os.walk(dest):
            for d in dirs:
                out[os.path.relpath(os.path.join(root, d), dest)] = None
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(root, f), dest)] = fh.read()
        return out

    def test_replay_unsynced_write_kept_in_some_seeds_dropped_in_others(self):
        lg = self.log
        a = lg.create("a")
        lg.op("fsync", a, datasync=0)            # the name is durable, the file empty
        last = lg.write(a, 0, b"unsynced")
        log = lg.save()
        seen = {self.state(log, last, s)["a"] for s in SEEDS}
        self.assertEqual(seen, {b"", b"unsynced"})

    def test_replay_synced_write_always_kept(self):
        lg = self.log
        a = lg.create("a")
        lg.write(a, 0, b"first")
        lg.write(a, 5, b"second")
        lg.op("fsync", a, datasync=1)
        b = lg.create("b")                       # later ops of other files do not matter
        last = lg.write(b, 0, b"other")
        log = lg.save()
        for s in SEEDS:
            self.assertEqual(self.state(log, last, s)["a"], b"firstsecond", "seed %d" % s)

    def test_replay_write_after_the_fsync_may_be_lost_but_not_the_ones_before(self):
        lg = self.log
        a = lg.create("a")
        lg.write(a, 0, b"abc")
        lg.op("fsync", a, datasync=1)
        last = lg.op("truncate", a, size=1)
        log = lg.save()
        self.assertEqual({self.state(log, last, s)["a"] for s in SEEDS}, {b"abc", b"a"})

    def test_replay_rename_without_a_barrier_after_it_can_be_lost(self):
        lg = self.log
        a = lg.create("a")
        lg.write(a, 0, b"x")
        lg.op("fsync", a, datasync=0)
        last = lg.op("rename", a, "a", to="b", flags=0, over=0)
        log = lg.save()
        seen = {tuple(sorted(self.state(log, last, s).items())) for s in SEEDS}
        self.assertEqual(seen, {(("a", b"x"),), (("b", b"x"),)})
        lg.op("fsyncdir", 1)                     # a directory fsync after it: always renamed
        log = lg.save()
        for s in SEEDS:
            self.assertEqual(self.state(log, last + 1, s), {"b": b"x"}, "seed %d" % s)

    def test_replay_names_persist_as_a_prefix(self):
        lg = self.log
        lg.create("d", directory=True)
        lg.op("fsyncdir", 1)
        for name in ("d/1", "d/2", "d/3"):
            lg.create(name)
        log = lg.save()
        seen = {tuple(sorted(self.state(log, len(log) - 1, s))) for s in SEEDS}
        self.assertEqual(seen, {("d",), ("d", "d/1"), ("d", "d/1", "d/2"), ("d", "d/1", "d/2", "d/3")})

    def test_replay_created_and_fsynced_file_absent_when_its_directory_never_synced(self):
        lg = self.log
        lg.create("d", directory=True)
        lg.op("fsyncdir", 1)
        a = lg.create("d/a")
        lg.write(a, 0, b"data")
        last = lg.op("fsync", a, datasync=0)
        log = lg.save()
        posix = [self.state(log, last, s, "posix") for s in SEEDS]
        self.assertIn({"d": None}, posix)                       # the name was never made durable
        self.assertIn({"d": None, "d/a": b"data"}, posix)
        for s in SEEDS:                                          # ext4/xfs: the fsync commits the journal
            self.assertEqual(self.state(log, last, s, "journal"), {"d": None, "d/a": b"data"}, "seed %d" % s)

    def test_replay_unlinked_open_file_and_hard_link(self):
        lg = self.log
        a = lg.create("a")
        lg.op("link", a, "a", to="b")
        lg.op("unlink", a, "a")
        lg.write(a, 0, b"via handle")
        last = lg.op("fsync", a, datasync=0)
        log = lg.save()
        for s in SEEDS:
            self.assertEqual(self.state(log, last, s), {"b": b"via handle"}, "seed %d" % s)

    def test_replay_log_length_and_time_of(self):
        lg = self.log
        lg.create("a")
        lg.create("b")
        log = lg.save()
        self.assertEqual(len(log), 2)
        self.assertEqual(log.time_of(1), 2e-6)


if __name__ == "__main__":
    unittest.main()
