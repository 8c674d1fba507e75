"""powerlog - the states a power cut could leave, rebuilt from ringmail-powerfs's write log (PWR-03)

tests/fault/powerfs.c logs every change made on its mount, and every fsync, in the order the operations
completed (its head describes the format). PowerLog(path).build(k, dest, seed) writes into the empty
directory dest one state the disk could hold after a power cut at log position k: op k completed, none
after it did, and of what was not made durable some is on the disk and some is not (a seeded choice).

The rules are POSIX's, in the form journaled file systems (ext4 data=ordered, xfs) give them:

- File data. Every write, truncate and size-changing fallocate of a file that precedes that file's last
  fsync or fdatasync at or before k is present: fsync returned, so the data is on the disk. Each later one
  up to k is independently present or not: the page cache writes back in any order, block by block, and
  a cut may catch any subset (a write is taken whole or not at all; torn sectors are not modelled).
- Names (create, mkdir, symlink, link, rename, unlink, rmdir) persist in order, as a prefix: the journal
  commits metadata transactions in the order they were made. Every one up to the last barrier at or
  before k is present; of the ones after it up to k, a prefix of random length (none to all). A barrier
  is an fsync of any directory, and, in the default mode "journal", also an fsync or fdatasync of any
  file: ext4 and xfs commit the whole running transaction to make one inode durable, so every name
  change before it goes too. In mode "posix" only a directory fsync is a barrier: a file's fsync makes
  its data durable, not the name it was created or renamed under. A file whose creation did not persist
  is absent with all its data, whatever its fsyncs said.
- Attributes (mode, owner) take the last value logged up to k; nothing here depends on them being lost.

Why these are what RocksDB's durability rests on: a write with sync=true returns only after the WAL's
fdatasync (or fsync) returned, so by the first rule every record before it is kept, whatever the cut.
A new WAL, SST or MANIFEST file is made durable by an fsync of the file and of the database directory
before RocksDB relies on it, and CURRENT is switched by a rename followed by a directory fsync: by the
second rule those names persist, and names made after the last barrier may be lost, or half of a
sequence of them, which RocksDB's recovery must survive (a new MANIFEST without the CURRENT pointing at
it, an SST without its MANIFEST edit). What is dropped is exactly what no fsync covered: a store that
acknowledges only after its fsync loses no acknowledged write under these rules, and one that
acknowledges earlier does, in some seed.

    log = PowerLog("/tmp/x/powerfs.log")     # with powerfs.log.data beside it
    len(log); log.time_of(k)                 # the number of ops; op k's CLOCK_MONOTONIC time in seconds
    log.build(k, "/tmp/state", seed=7)       # dest must exist and be empty; says what it left out
"""
import json
import os
import random

NAME_OPS = ("create", "mkdir", "symlink", "link", "rename", "unlink", "rmdir")
DATA_OPS = ("write", "truncate", "fallocate")
FALLOC_FL_KEEP_SIZE = 1


class PowerLog:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.ops = [json.loads(line) for line in f if line.endswith(b"\n")]  # a torn last line is dropped
        for i, op in enumerate(self.ops):
            if op["seq"] != i:
                raise ValueError("%s: record %d has seq %d" % (path, i, op["seq"]))
        with open(path + ".data", "rb") as f:
            self.data = f.read()

    def __len__(self):
        return len(self.ops)

    def time_of(self, k):
        """Op k's CLOCK_MONOTONIC time (seconds, as time.monotonic()), taken after it completed: anything
        that was seen to happen before it is covered by the state at k."""
        return self.ops[k]["t"] / 1e9

    def names_kept(self, k, rng, mode="journal"):
        """The name operations (indices) that persist in the state at k, in log order."""
        barrier = -1
        for i in range(k + 1):
            op = self.ops[i]["op"]
            if op == "fsyncdir" or (op == "fsync" and mode == "journal"):
                barrier = i
        names = [i for i in range(k + 1) if self.ops[i]["op"] in NAME_OPS]
        sure = [i for i in names if i <= barrier]
        maybe = [i for i in names if i > barrier]
        return sure + maybe[:rng.randint(0, len(maybe))]

    def data_kept(self, k, rng):
        """The data operations (indices) that persist in the state at k, in log order."""
        synced = {}
        for i in range(k + 1):
            op = self.ops[i]
            if op["op"] == "fsync":
                synced[op["ino"]] = i
        kept = []
        for i in range(k + 1):
            op = self.ops[i]
            if op["op"] in DATA_OPS and (i < synced.get(op["ino"], -1) or rng.random() < 0.5):
                kept.append(i)
        return kept

    def build(self, k, dest, seed, mode="journal"):
        """Write the state at k into dest (an existing, empty directory). Returns {"files": {path: ino} of what
        it made, "data_lost": how many data ops up to k it left out, "names_lost": how many name ops}."""
        if not 0 <= k < len(self.ops):
            raise IndexError("log position %d of %d" % (k, len(self.ops)))
        rng = random.Random(seed)
        names = {}    # path -> ino, directories included
        links = {}    # symlink ino -> target
        kept_names = self.names_kept(k, rng, mode)
        for i in kept_names:
            op = self.ops[i]
            kind, ino, path = op["op"], op["ino"], op["path"]
            if kind in ("create", "mkdir"):
                names[path] = ino
            elif kind == "symlink":
                names[path] = ino
                links[ino] = op["target"]
            elif kind == "link":
                names[op["to"]] = ino
            elif kind in ("unlink", "rmdir"):
                names.pop(path, None)
            elif kind == "rename":
                moved = {p: v for p, v in names.items() if p == path or p.startswith(path + "/")}
                for p in moved:
                    del names[p]
                for p, v in moved.items():
                    names[op["to"] + p[len(path):]] = v
        contents = {}
        kept_data = self.data_kept(k, rng)
        for i in kept_data:
            op = self.ops[i]
            buf = contents.setdefault(op["ino"], bytearray())
            if op["op"] == "write":
                end = op["off"] + op["len"]
                if len(buf) < end:
                    buf.extend(bytes(end - len(buf)))
                buf[op["off"]:end] = self.data[op["doff"]:op["doff"] + op["len"]]
            elif op["op"] == "truncate":
                del buf[op["size"]:]
                buf.extend(bytes(op["size"] - len(buf)))
            elif not op["mode"] & FALLOC_FL_KEEP_SIZE:
                buf.extend(bytes(max(0, op["off"] + op["len"] - len(buf))))
        attrs = {}
        for i in range(k + 1):
            op = self.ops[i]
            a = attrs.setdefault(op["ino"], {})
            for key in ("mode", "uid", "gid"):
                if key in op and op["op"] != "fallocate":
                    a[key] = op[key]
        made = {}
        first = {}  # ino -> the first path written for it: further names are hard links to it
        for path in sorted(names, key=lambda p: (p.count("/"), p)):
            ino = names[path]
            full = os.path.join(dest, path)
            if not os.path.isdir(os.path.dirname(full)):
                continue  # its directory's creation did not persist (cannot happen with a prefix; kept safe)
            mode = attrs.get(ino, {}).get("mode", 0o100644)
            if ino in links:
                os.symlink(links[ino], full)
            elif ino in first:
                os.link(first[ino], full)
            elif mode & 0o170000 == 0o040000:
                os.mkdir(full)
            else:
                with open(full, "wb") as f:
                    f.write(contents.get(ino, b""))
            first.setdefault(ino, full)
            made[path] = ino
        for path in sorted(made, key=lambda p: -p.count("/")):
            ino = made[path]
            if ino in links or first[ino] != os.path.join(dest, path):
                continue
            a = attrs.get(ino, {})
            full = os.path.join(dest, path)
            if "mode" in a:
                os.chmod(full, a["mode"] & 0o7777)
            if "uid" in a and os.geteuid() == 0:
                os.chown(full, a["uid"], a["gid"])
        up_to_k = [op["op"] for op in self.ops[:k + 1]]
        return {"files": made, "data_lost": sum(op in DATA_OPS for op in up_to_k) - len(kept_data),
                "names_lost": sum(op in NAME_OPS for op in up_to_k) - len(kept_names)}
