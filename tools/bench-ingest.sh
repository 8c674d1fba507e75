#!/usr/bin/env bash
# bench-ingest.sh - injection into a durable spool: Postfix's smtp-source -> ringmail.
#
#   tools/bench-ingest.sh [BUILD_DIR] [RUNS]
#
# For 10 KB and 100 KB messages, 50 sessions, with and without connection reuse, it starts a fresh node
# in a temporary directory on loopback ports, sends N messages with smtp-source, and reports msgs/s
# (wall clock of smtp-source, which waits for every reply) and WAL fsyncs per message (the spool's
# commit counter). Medians over RUNS runs (default 3). Nothing here is asserted; numbers go to
# docs/benchmarks.md with the machine they came from.
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
command -v smtp-source >/dev/null || { echo "needs smtp-source (apt-get install postfix, 'No configuration')"; exit 2; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
counter() { # $1 admin endpoint, $2 role, $3 counter
  "$BUILD/ringctl" --endpoint "$1" --json status | jq "[.roles[] | select(.role==\"$2\") | .counters.$3] | add"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

run_one() { # $1 size bytes, $2 messages, $3 reuse (1) or one message per session (0)
  local tmp smtp admin pid t0 t1 stored commits
  tmp=$(mktemp -d); chmod 755 "$tmp"
  smtp=$(free_port); admin=$(free_port)
  cat >"$tmp/ringmail.toml" <<TOML
[node]
data_dir = "$tmp/data"
log_level = "warn"
[[listener]]
address = "127.0.0.1:$smtp"
[admin]
listen = "127.0.0.1:$admin"
[ingress]
workers = $(nproc)
TOML
  "$BUILD/ringmaild" --config "$tmp/ringmail.toml" >"$tmp/log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do "$BUILD/ringctl" --endpoint "127.0.0.1:$admin" status >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 0.5
  local reuse=()
  [ "$3" = 1 ] && reuse=(-d)   # smtp-source -d: keep the connection for the next message
  t0=$(date +%s.%N)
  smtp-source -s 50 -m "$2" "${reuse[@]}" -l "$1" -f bench@example.test -t sink@example.test "127.0.0.1:$smtp"
  t1=$(date +%s.%N)
  stored=$(counter "127.0.0.1:$admin" spool messages_stored)
  commits=$(counter "127.0.0.1:$admin" spool spool_commits)
  kill -TERM "$pid"; wait "$pid" || true
  rm -rf "$tmp"
  awk -v n="$stored" -v a="$t0" -v b="$t1" -v c="$commits" 'BEGIN {printf "%.0f %.3f\n", n/(b-a), c/n}'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "| body | sessions | reuse | messages | msgs/s (median of $RUNS) | fsyncs/msg |"
echo "|---|---|---|---|---|---|"
for size in 10240 102400; do
  for reuse in 1 0; do
    n=$([ "$size" = 10240 ] && echo 5000 || echo 2000)
    rates=() fs=()
    for _ in $(seq "$RUNS"); do
      read -r r f < <(run_one "$size" "$n" "$reuse")
      rates+=("$r"); fs+=("$f")
    done
    printf '| %d KB | 50 | %s | %d | %s | %s |\n' $((size / 1024)) "$([ "$reuse" = 1 ] && echo yes || echo no)" "$n" \
      "$(printf '%s\n' "${rates[@]}" | median)" "$(printf '%s\n' "${fs[@]}" | median)"
  done
done
