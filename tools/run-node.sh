#!/usr/bin/env bash
# run-node.sh - install the dependencies, build, and start a node in the foreground on the
# embedded default configuration (SMTP 127.0.0.1:2525, admin API 127.0.0.1:8025, data in
# ./ringmail-data). Ctrl-C stops it. Extra arguments go to ringmaild (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build
echo "starting ringmaild; in another terminal: build/ringctl status"
exec build/ringmaild "$@"
