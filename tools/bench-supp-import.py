#!/usr/bin/python3
"""Time `ringctl suppression import` of N generated entries (default 1,000,000) into a fresh node, then an
export, and check the counts. Not run in CI; run by hand with nothing else running:

    RINGMAIL_BUILD_DIR=/path/to/build /usr/bin/python3 tools/bench-supp-import.py [N]

The node is the test harness's (tests/lib/ringmail_node.py): a temporary directory, loopback ports, stopped at
the end. Prints the import and export times and the spool's entry count.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ringmail_node import Node  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    node = Node()
    try:
        path = os.path.join(node.tmp, "supp.csv")
        with open(path, "w") as f:
            f.write("address,tenant,reason,source_id,first_seen,last_seen,expires\n")
            for i in range(n):
                f.write("user%d@domain%d.example,,hard_bounce,gen-%d,1700000000,1700000000,0\n" % (i, i % 5000, i))
        node.start()
        t0 = time.monotonic()
        p = node.ringctl("suppression", "import", path, timeout=600)
        t1 = time.monotonic()
        print(p.stdout.strip(), p.stderr.strip())
        print("import of %d entries: %.1f s (%.0f entries/s)" % (n, t1 - t0, n / (t1 - t0)))
        listed = json.loads(node.ringctl("suppression", "list", "--limit", "1", "--json", check=True).stdout)
        print("the spool counts %d entries" % listed["total"])
        t2 = time.monotonic()
        out = node.ringctl("suppression", "export", "--format", "csv", timeout=600, check=True).stdout
        t3 = time.monotonic()
        print("export: %d lines in %.1f s" % (out.count("\n") - 1, t3 - t2))
    finally:
        node.cleanup()


if __name__ == "__main__":
    main()
