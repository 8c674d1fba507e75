#!/usr/bin/env bash
# bench-million.sh - a million queued messages: the scheduler's memory per queued message, the spool's
# size, and how long a restarted node takes until every message is scheduled again.
#
#   tools/bench-million.sh [BUILD_DIR]          (default: build)
#
# One ringmail node in a temporary directory whose mail cannot leave: [route."*"] points at a loopback
# port nobody listens on, so every delivery attempt is refused at connect (a temporary failure) and the
# message waits for a retry an hour later ([queue.default] retry_interval = 1h). (A resolver on a dead
# port is not used: on 2026-11-28 that made the scheduler bounce messages as "domain has no MX and no
# address records", 550 5.1.2, in some runs.)
#   1. start the node, let it settle, read VmRSS of ringmail-scheduler and ringmail-spool (/proc) with an
#      empty queue;
#   2. inject N small messages (ringmail-gen, 1 KB, BENCH_SESSIONS sessions, connections reused);
#   3. wait until the scheduler's messages_queued (ringctl --json status) equals the 250s, read VmRSS
#      again and the spool's size on disk (du); bytes per queued message = (RSS - RSS empty) / N;
#   4. SIGTERM the node, wait for it to exit (time reported), start it again: time from the start to
#      every role ready, and to messages_queued reaching N again; VmRSS of the scheduler afterwards.
# Exit 1 if any message failed at injection, the queue stalled short of the 250s, or the restarted
# node does not get back to N in time.
#
# Environment: BENCH_N (default 1000000), BENCH_SESSIONS (default 100), BENCH_TIMEOUT (seconds allowed
# for the queue to fill and for the restart to reschedule, default 1800), BENCH_STALL (seconds without
# progress of messages_queued before the fill is declared stalled, default 30), BENCH_KEEP_DIR (an
# existing directory that receives the status JSON of a stall). Needs ringmaild, ringctl,
# tools/ringmail-gen in BUILD_DIR, jq, python3, ss. The spool needs about 2.5 KB per message on disk.
set -euo pipefail
# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
TMP_PREFIX=bench-million
CLEANUP_TICKS=300   # cleanup: up to 30 s per process between TERM and KILL
BUILD=${1:-build}
N=${BENCH_N:-1000000}
SESSIONS=${BENCH_SESSIONS:-100}
TIMEOUT=${BENCH_TIMEOUT:-1800}
STALL=${BENCH_STALL:-30}
KEEP=${BENCH_KEEP_DIR:-}
GEN=$BUILD/tools/ringmail-gen

need_exec " (ninja -C $BUILD)" "$BUILD/ringmaild" "$BUILD/ringctl" "$GEN"
need_cmds jq python3 ss du

cleanup_traps   # tools/bench-lib.sh: the node and its roles by pid (PIDS), the directory (TMPS)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

newtmp; DIR=$NEWTMP
rm_conf "$DIR" "$(nproc)"   # RM_SMTP, RM_ADMIN
DEAD_PORT=$(free_port)
cat >>"$DIR/ringmail.toml" <<TOML
max_connections_per_ip = $SESSIONS
[route."*"]
hosts = ["[127.0.0.1]:$DEAD_PORT"]
[queue.default]
retry_interval = "1h"
max_retry_interval = "2h"
[supervisor]
drain_timeout = "60s"
ready_timeout = "120s"
TOML

counter() { rm_counter "$@" 2>/dev/null || true; }   # empty when the admin API does not answer
all_ready() { rm_ctl --json status 2>/dev/null | jq -e '[.roles[] | .state == "ready"] | all' >/dev/null 2>&1; }
role_pid() { pgrep -P "$NODE" -f "ringmail-$1 " | head -1; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }

NODE=''
node_start() {
  "$BUILD/ringmaild" --config "$DIR/ringmail.toml" >>"$DIR/log" 2>&1 &
  NODE=$!
  PIDS+=("$NODE")
}
node_roles_track() { local p; for p in $(pgrep -P "$NODE"); do PIDS+=("$p"); done; }
wait_ready() { # $1 timeout seconds
  local t0; t0=$(now)
  while ! all_ready; do
    alive "$NODE" || { echo "ringmaild exited:" >&2; tail -20 "$DIR/log" >&2; exit 1; }
    [ "$(awk -v a="$t0" -v b="$(now)" -v t="$1" 'BEGIN {print (b - a > t)}')" = 1 ] && { echo "node not ready after $1 s" >&2; rm_ctl status >&2 || true; exit 1; }
    sleep 0.05
  done
  listening "$RM_SMTP" || { echo "no SMTP listener" >&2; exit 1; }
}

MACHINE=$(machine_desc)
echo "machine: $MACHINE; start $(load_stamp); N = $N" >&2
echo "disk: $(df -h "$DIR" | tail -1)" >&2

# 1. empty queue
node_start; wait_ready 60; node_roles_track
sleep 3
SCHED=$(role_pid scheduler); SPOOL=$(role_pid spool)
RSS0_SCHED=$(rss_kb "$SCHED"); RSS0_SPOOL=$(rss_kb "$SPOOL"); ANON0_SCHED=$(anon_kb "$SCHED")
echo "empty queue: scheduler pid $SCHED VmRSS $RSS0_SCHED kB, spool pid $SPOOL VmRSS $RSS0_SPOOL kB" >&2

# 2. inject
echo "injecting $N messages with $SESSIONS sessions ..." >&2
T_INJ=$(now)
# in the background and waited for: a trapped INT/TERM then runs the cleanup at once, which stops
# the client by its pid (bash runs traps only between foreground commands)
"$GEN" --target "127.0.0.1:$RM_SMTP" --concurrency "$SESSIONS" --message-count "$N" --body-size 1k \
  --messages-per-connection 0 --keep-going --json >"$DIR/gen.json" 2>"$DIR/gen.err" &
GEN_PID=$!
PIDS+=("$GEN_PID")
wait "$GEN_PID" || true
INJ_S=$(since "$T_INJ")
SENT=$(jq .sent "$DIR/gen.json"); FAILED=$(jq .failed "$DIR/gen.json")
echo "injected: $SENT answered 250, $FAILED failed, $(jq -c .errors "$DIR/gen.json") in $INJ_S s ($(jq .msgs_per_s "$DIR/gen.json") msgs/s)" >&2
FAIL=0
[ "$FAILED" = 0 ] || { echo "ERRORS at injection" >&2; FAIL=1; }

# 3. queue full
# A count that stops short of the 250s for STALL seconds is a finding, not a reason to wait for
# TIMEOUT: it is reported, the memory is read at that count, and the restart shows whether the spool
# announces the missing messages again.
T_Q=$(now); T_MOVE=$(now); LAST_Q=-1; STALLED=''
while :; do
  q=$(counter scheduler messages_queued)
  [ "${q:-0}" -ge "$SENT" ] && break
  if [ "${q:-0}" != "$LAST_Q" ]; then LAST_Q=${q:-0}; T_MOVE=$(now); fi
  if [ "$(awk -v s="$(since "$T_MOVE")" -v t="$STALL" 'BEGIN {print (s > t)}')" = 1 ]; then
    STALLED=$q
    echo "STALLED: messages_queued stayed at $q of $SENT stored for $STALL s; spool messages_stored = $(counter spool messages_stored)" >&2
    rm_ctl --json status >"$DIR/stalled-status.json" 2>/dev/null || true
    [ -n "$KEEP" ] && cp "$DIR/stalled-status.json" "$KEEP/" 2>/dev/null || true
    FAIL=1
    break
  fi
  [ "$(awk -v s="$(since "$T_Q")" -v t="$TIMEOUT" 'BEGIN {print (s > t)}')" = 1 ] && { echo "messages_queued $q < $SENT after $TIMEOUT s" >&2; exit 1; }
  sleep 0.2
done
echo "messages_queued = $q, $(since "$T_Q") s after the client finished" >&2
sleep 5   # let the DNS deferrals and the spool's flushes settle before reading memory
Q1=$(counter scheduler messages_queued)
RSS1_SCHED=$(rss_kb "$SCHED"); RSS1_SPOOL=$(rss_kb "$SPOOL"); ANON1_SCHED=$(anon_kb "$SCHED")
SPOOL_BYTES=$(du -sb "$DIR/data/spool" | cut -f1)
echo "full queue ($Q1): scheduler VmRSS $RSS1_SCHED kB (RssAnon $ANON0_SCHED -> $ANON1_SCHED kB, $(( (ANON1_SCHED - ANON0_SCHED) * 1024 / Q1 )) bytes/msg), spool VmRSS $RSS1_SPOOL kB, spool on disk $SPOOL_BYTES bytes" >&2

# 4. restart
T_STOP=$(now)
kill -TERM "$NODE"
for _ in $(seq 1200); do alive "$NODE" || break; sleep 0.05; done
alive "$NODE" && { echo "ringmaild did not stop within 60 s" >&2; exit 1; }
wait "$NODE" 2>/dev/null || true
STOP_S=$(since "$T_STOP")
for p in "${PIDS[@]}"; do alive "$p" && { echo "role $p still running after ringmaild exited" >&2; FAIL=1; }; done
PIDS=()
T_START=$(now)
node_start
T_READY='' LAST_Q=-1 T_MOVE=$(now) RESTALL=''
while :; do
  if [ -z "$T_READY" ] && all_ready; then T_READY=$(since "$T_START"); node_roles_track; fi
  q=$(counter scheduler messages_queued)
  [ -n "$T_READY" ] && [ "${q:-0}" -ge "$SENT" ] && break
  if [ "${q:-0}" != "$LAST_Q" ]; then LAST_Q=${q:-0}; T_MOVE=$(now); fi
  if [ -n "$T_READY" ] && [ "$(awk -v s="$(since "$T_MOVE")" -v t="$STALL" 'BEGIN {print (s > t)}')" = 1 ]; then
    RESTALL=$q
    echo "STALLED after restart: messages_queued stayed at $q of $SENT for $STALL s" >&2
    FAIL=1
    break
  fi
  alive "$NODE" || { echo "ringmaild exited:" >&2; tail -20 "$DIR/log" >&2; exit 1; }
  [ "$(awk -v s="$(since "$T_START")" -v t="$TIMEOUT" 'BEGIN {print (s > t)}')" = 1 ] && { echo "after restart: messages_queued ${q:-?} < $SENT after $TIMEOUT s" >&2; FAIL=1; break; }
  sleep 0.05
done
RESCHED_S=$(since "$T_START")
[ -n "$RESTALL" ] && RESCHED_S=$(awk -v a="$RESCHED_S" -v b="$STALL" 'BEGIN {printf "%.2f", a - b}')
SCHED2=$(role_pid scheduler)
sleep 5
RSS2_SCHED=$(rss_kb "$SCHED2"); Q2=$(counter scheduler messages_queued)
echo "restart: stop took $STOP_S s; all roles ready after $T_READY s; messages_queued = $q after $RESCHED_S s; scheduler VmRSS $RSS2_SCHED kB ($Q2 queued)" >&2
echo "end $(load_stamp)" >&2

echo
echo "machine: $MACHINE"
echo
echo "| queued | injection (client) | scheduler VmRSS empty | scheduler VmRSS full | scheduler bytes/queued msg | spool VmRSS empty..full | spool on disk | bytes/msg on disk | SIGTERM to exit | restart to all ready | restart to all scheduled | scheduler VmRSS after restart | bytes/msg after restart |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -v n="$Q1" -v inj="$INJ_S" -v mps="$(jq .msgs_per_s "$DIR/gen.json")" -v r0="$RSS0_SCHED" -v r1="$RSS1_SCHED" \
  -v s0="$RSS0_SPOOL" -v s1="$RSS1_SPOOL" -v d="$SPOOL_BYTES" -v st="$STOP_S" -v rd="$T_READY" -v rs="$RESCHED_S" \
  -v r2="$RSS2_SCHED" -v stl="${STALLED:+ of $SENT stored (stalled)}${RESTALL:+; after restart stalled at $RESTALL}" 'BEGIN {
  printf "| %d%s | %.0f s (%.0f msgs/s) | %.1f MiB | %.1f MiB | %.0f | %.0f..%.0f MiB | %.2f GiB | %.0f | %.1f s | %.2f s | %.1f s | %.1f MiB | %.0f |\n",
    n, stl, inj, mps, r0/1024, r1/1024, (r1-r0)*1024/n, s0/1024, s1/1024, d/1073741824, d/n, st, rd, rs, r2/1024, (r2-r0)*1024/n }'
# issue 15's target for the walk (as tools/bench.sh prints its targets): messages scheduled per second of
# "restart to all scheduled", never asserted
awk -v n="$q" -v s="$RESCHED_S" 'BEGIN { if (s > 0 && n > 0) { r = n / s / 1000
  printf "target: spool walk at start: %.0f k/s (wanted >= 200 k/s): %s\n", r, (r >= 200 ? "met" : "not met") }
  else print "target: spool walk at start: n/a (wanted >= 200 k/s): not measured" }'
[ "$FAIL" = 0 ] || { echo "FAILED (see above)" >&2; exit 1; }
