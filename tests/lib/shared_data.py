"""shared_data - where KumoMTA's shipped shaping files are (the project's ../shared/data, never copied
into the tree): $RINGMAIL_SHARED_DATA, else <source root>/../shared/data, else, for a clone of a local
checkout (a CI run on a fresh clone elsewhere on the machine), <origin>/../shared/data. Prints the
directory, or nothing when none holds the files. Used by meson at configure time for every test.

    /usr/bin/python3 tests/lib/shared_data.py SOURCE_ROOT
"""
import os
import subprocess
import sys

FILES = ("kumomta-default-shaping.toml", "kumomta-community-shaping.toml")


def holds(d):
    return bool(d) and all(os.path.isfile(os.path.join(d, f)) for f in FILES)


def candidates(root):
    yield os.environ.get("RINGMAIL_SHARED_DATA", "")
    yield os.path.join(root, "..", "shared", "data")
    try:
        origin = subprocess.run(["git", "-C", root, "remote", "get-url", "origin"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    if origin.startswith("file://"):
        origin = origin[len("file://"):]
    if origin and os.path.isdir(origin):
        yield os.path.join(origin, "..", "shared", "data")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    for d in candidates(root):
        if holds(d):
            print(os.path.normpath(os.path.abspath(d)))
            return


if __name__ == "__main__":
    main()
