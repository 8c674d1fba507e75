"""layers - the include graph of the tree against its layers (docs/architecture.md, "The tree in one
screen"): a folder may include its own headers and those of folders in LOWER layers only; roles and
tools never include each other. Reads every .c/.h/.cc file of the library and role folders (nothing is
compiled). Prints each violation as FILE:LINE and exits 1 when there is one.

    /usr/bin/python3 tests/lint/layers.py [SOURCE_ROOT]
"""
import os
import re
import sys

# rank: a folder may include folders of a strictly lower rank (and itself)
LAYERS = {
    "base": 0,                                 # log, mem, clock, buf, utf8, hostport, file
    "common": 1,                               # the contracts between roles and their codecs
    "shm": 2, "cfg": 2,                        # segment, rings, arena; ringmail.toml
    "rt": 3,                                   # event loop, socket streams, role runtime
    "dns": 4, "tls": 4, "smtp": 4, "policy": 4, "dkim": 4,  # protocols, the policy sandbox, DKIM
    "supervisor": 5, "ingress": 5, "spool": 5, "scheduler": 5, "egress": 5, "tools": 5,  # roles, tools
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def violations(root):
    for folder, rank in sorted(LAYERS.items()):
        d = os.path.join(root, folder)
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h", ".cc")):
                continue
            path = os.path.join(d, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                for no, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1).split("/")[0]
                    if "/" not in m.group(1) or target not in LAYERS:
                        yield "%s/%s:%d: include \"%s\" is not root-relative to a known folder" % (
                            folder, name, no, m.group(1))
                    elif target != folder and LAYERS[target] >= rank:
                        yield "%s/%s:%d: %s (layer %d) includes %s (layer %d)" % (
                            folder, name, no, folder, rank, m.group(1), LAYERS[target])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    bad = list(violations(root))
    for v in bad:
        print(v)
    print("layers: %d violation(s)" % len(bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
