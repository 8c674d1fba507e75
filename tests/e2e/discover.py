"""List the end-to-end scenarios for meson: every test_* method of every class in tests/e2e/*_test.py,
found by reading the files (nothing is imported or run). A file may set a module-level

    MESON = {"suite": "crash", "timeout": 180, "tools": ["gen", "sink"], "node": True}

(suite: an extra meson suite besides 'e2e'; timeout in seconds, default 120; tools: the tool executables
the scenarios run; node: False when no ringmail node is started; exclusive: True when the scenarios
measure time or CPU, or load the machine, so that they must not share it with another test). One line
per scenario: FILE<TAB>Class.test_name<TAB>name<TAB>suite<TAB>timeout<TAB>tools (comma separated)<TAB>
node (1/0)<TAB>exclusive (1/0)."""
import ast
import os
import sys


def scenarios(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    meta = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "MESON"):
            meta = ast.literal_eval(node.value)
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                yield node.name + "." + item.name, item.name[len("test_"):], meta


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    seen = set()
    for fname in sorted(os.listdir(here)):
        if not fname.endswith("_test.py"):
            continue
        for ident, name, meta in scenarios(os.path.join(here, fname)):
            if name in seen:
                sys.exit("%s: scenario name %s is used twice" % (fname, name))
            seen.add(name)
            print("\t".join([fname, ident, name, meta.get("suite", fname[:-len("_test.py")]),
                             str(meta.get("timeout", 120)), ",".join(meta.get("tools", [])),
                             "1" if meta.get("node", True) else "0",
                             "1" if meta.get("exclusive", False) else "0"]))


if __name__ == "__main__":
    main()
