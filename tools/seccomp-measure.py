#!/usr/bin/python3
"""seccomp-measure - which syscalls each role makes, measured with strace over e2e test files (PRIV-02).

    tools/seccomp-measure.py BUILD_DIR OUT_DIR delivery ingress crash ...   (tests/e2e/NAME_test.py)
    tools/seccomp-measure.py --report OUT_DIR                               (the table again)

Runs each named e2e file against a shadow of BUILD_DIR in which ringmaild is a wrapper that starts the
real one under `strace -f -qq -o OUT_DIR/trace.N` (every role and thread of every node the tests start),
then attributes each line to a role: a process is the role whose binary it exec'd (ringmail-ROLE), and
its threads and children inherit it; only calls made once the role loaded its filter are counted. Prints, per role, every syscall seen and its count, and marks
the ones that are not on the role's list in rt/role_seccomp.c ("MISSING"): add those that a library
needs (rt/role_seccomp.c says what belongs where), then run the tests again with seccomp = "kill".
The roles keep their filters while measured: strace sees every call, and one off the list kills the
role as usual (the test then fails with "killed by seccomp" and the syscall).
Tests that strace a role themselves (hold_fsyncs) fail under this tool: that is expected.
Needs strace and root (the roles run as another user). Slow: for measurements, not for CI.
"""
import collections
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
ROLES = ("spool", "scheduler", "ingress", "egress")
LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)(\(| resumed>)")
CHILD = re.compile(r"^(\d+)\s+(?:<\.\.\. )?(clone3?|fork|vfork)\b.*= (\d+)")
GONE = re.compile(r"^(\d+)\s+\+\+\+ (?:exited|killed)")
EXEC = re.compile(r'^(\d+)\s+execve\("[^"]*/ringmail-([a-z]+)"')


def shadow(build, out):
    """OUT/shadow: every entry of the build directory linked, ringmaild replaced by the strace wrapper."""
    sh = os.path.join(out, "shadow")
    os.makedirs(sh, exist_ok=True)
    for name in os.listdir(build):
        dst = os.path.join(sh, name)
        if name == "ringmaild" or os.path.lexists(dst):
            continue
        os.symlink(os.path.join(build, name), dst)
    wrapper = os.path.join(sh, "ringmaild")
    # strace detaches on SIGTERM and leaves its tracee running: the wrapper hands the test's signals
    # (TERM to stop, HUP to reload) to ringmaild itself and waits for strace to see it exit
    with open(wrapper, "w") as f:
        f.write("""#!/bin/bash
strace -f -qq -o "%s/trace.$(date +%%s%%N)" "%s/ringmaild" --bin-dir "%s" "$@" &
s=$!
fwd() { kill -"$1" $(pgrep -P $s) 2>/dev/null; }
trap 'fwd TERM' TERM; trap 'fwd INT' INT; trap 'fwd HUP' HUP
while kill -0 $s 2>/dev/null; do wait $s; done
""" % (out, build, build))
    os.chmod(wrapper, 0o755)
    return sh


def attribute(out):
    """{role: Counter(syscall)} over every trace file in out."""
    per_role = collections.defaultdict(collections.Counter)
    for name in sorted(os.listdir(out)):
        if not name.startswith("trace."):
            continue
        role_of, root_of, filtered, pending = {}, {}, set(), set()
        with open(os.path.join(out, name), errors="replace") as f:
            for line in f:
                m = GONE.match(line)
                if m:  # its pid may be reused by a process that is no role
                    role_of.pop(m.group(1), None)
                    root_of.pop(m.group(1), None)
                    continue
                m = EXEC.match(line)
                if m and m.group(2) in ROLES:
                    role_of[m.group(1)] = m.group(2)
                    root_of[m.group(1)] = m.group(1)
                    continue
                m = CHILD.match(line)
                if m and m.group(1) in role_of:
                    role_of[m.group(3)] = role_of[m.group(1)]
                    root_of[m.group(3)] = root_of[m.group(1)]
                elif m:  # ringmaild's child before its exec, on a pid a role may have had
                    role_of.pop(m.group(3), None)
                    root_of.pop(m.group(3), None)
                m = LINE.match(line)
                if not m or m.group(1) not in role_of:
                    continue
                # only what runs under the filter counts: from the role's seccomp(SET_MODE_FILTER) that
                # returned 0 on (libseccomp probes with calls that fail first), in every thread (TSYNC)
                if m.group(2) == "seccomp":
                    if "SECCOMP_SET_MODE_FILTER" in line:
                        pending.add(m.group(1))
                    if m.group(1) in pending and line.rstrip().endswith(") = 0"):
                        filtered.add(root_of[m.group(1)])
                    if not line.rstrip().endswith("<unfinished ...>"):
                        pending.discard(m.group(1))
                elif line.rstrip().endswith("<unfinished ...>"):
                    continue
                elif root_of[m.group(1)] in filtered:
                    per_role[role_of[m.group(1)]][m.group(2)] += 1
    return per_role


def allowed():
    """{role: set of names} from rt/role_seccomp.c (the common list in every role; sanitizer list aside)."""
    text = open(os.path.join(TREE, "rt", "role_seccomp.c")).read()
    lists = {}
    for m in re.finditer(r"static const char \*const seccomp_(\w+)\[\] = \{(.*?)\};", text, re.S):
        body = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
        lists[m.group(1)] = set(re.findall(r'"([a-z_0-9]+)"', body))
    net = re.search(r"role_net\[[^]]*\] = \{(.*?)\};", text, re.S).group(1)
    return {r: lists.get("common", set()) | lists.get(r, set()) |
            (lists.get("net", set()) if "ROLE_%s] = true" % r.upper() in net else set()) for r in ROLES}


def report(out):
    per_role, ok = attribute(out), allowed()
    missing = 0
    for role in ROLES:
        print("%s:" % role)
        for name, n in sorted(per_role[role].items()):
            flag = "" if name in ok[role] else "   MISSING"
            missing += bool(flag)
            print("  %-24s %8d%s" % (name, n, flag))
    return 1 if missing else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--report":
        return report(argv[2])
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    build, out = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, RINGMAIL_BUILD_DIR=shadow(build, out), PYTHONDONTWRITEBYTECODE="1")
    for name in argv[3:]:
        test = os.path.join(TREE, "tests", "e2e", "%s_test.py" % name)
        rc = subprocess.run(["/usr/bin/python3", test], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode
        print("%s: %s" % (name, "passed" if rc == 0 else "failed (%d)" % rc), file=sys.stderr)
    return report(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
