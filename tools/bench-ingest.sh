#!/usr/bin/env bash
# bench-ingest.sh - injection into a durable queue: ringmail (ingress + spool) against Postfix (smtpd + cleanup).
#
#   tools/bench-ingest.sh [BUILD_DIR] [RUNS]          (default: build, 3)
#
# For 10 KB and 100 KB bodies, 50 sessions, with connection reuse and with one message per connection,
# every run injects the same N messages with ringmail-gen (same client, same options) into
#   - a fresh ringmail node in a temporary directory (RocksDB spool; a 250 only after the WAL fsync), and
#   - a fresh private Postfix instance in a temporary directory: smtpd + cleanup + trivial-rewrite +
#     postlogd only, no qmgr/pickup, so each message stays in queue/incoming (cleanup fsyncs the queue
#     file before smtpd answers 250).
# The two systems alternate within a run (order flipped each run) so drift on the machine hits both.
# With connection reuse a third row, ringmail-http, injects the same messages through the HTTP injection
# API (ringmail-gen --http: one keep-alive connection per session, one POST per message, time-to-200; the
# 200 is also sent only after the spool's fsync). No Postfix counterpart.
# Reported: msgs/s and time-to-250 p50/p99 (ringmail-gen --json), fsyncs per message, medians over RUNS
# with min..max, and ringmail/Postfix msgs/s per run. fsyncs/msg: ringmail's spool_commits over
# messages_stored; Postfix's fsync+fdatasync calls counted by strace in a separate short untimed run
# (both systems get such a run, so the syscall counts can also be compared like for like).
# Exit 1 if any run stored fewer messages than it answered 250 for, or had any client-side error.
#
# Environment: BENCH_N_10K, BENCH_N_100K (messages per timed run), BENCH_N_STRACE (strace runs),
# BENCH_SESSIONS (default 50). Needs ringmaild, ringctl, tools/ringmail-gen in BUILD_DIR, postfix
# ("No configuration" install is enough), jq, python3, ss, script; strace is optional. Run as root.
set -euo pipefail
# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
TMP_PREFIX=bench-ingest
BUILD=${1:-build}
RUNS=${2:-3}
N_10K=${BENCH_N_10K:-40000}
N_100K=${BENCH_N_100K:-8000}
N_STRACE=${BENCH_N_STRACE:-1000}
SESSIONS=${BENCH_SESSIONS:-50}
GEN=$BUILD/tools/ringmail-gen

need_exec " (ninja -C $BUILD)" "$BUILD/ringmaild" "$BUILD/ringctl" "$GEN"
need_cmds postfix jq python3 ss script
need_pf_root
HAVE_STRACE=1
command -v strace >/dev/null || HAVE_STRACE=0

# --- cleanup (tools/bench-lib.sh): node, roles, strace by pid; Postfix by directory --------------------
cleanup_traps

# --- ringmail ------------------------------------------------------------------------------------------
RM_DIR=''
rm_start() {
  newtmp; RM_DIR=$NEWTMP
  rm_conf "$RM_DIR" "$(nproc)"
  RM_HTTP=$(free_port)
  printf '[[http_listener]]\nlisten = "127.0.0.1:%s"\n' "$RM_HTTP" >>"$RM_DIR/ringmail.toml"
  rm_run "$RM_DIR" "$RM_DIR/log" 0
  sleep 0.5
}

# --- Postfix -------------------------------------------------------------------------------------------
PF_DIR=''
pf_start() {
  newtmp; PF_DIR=$NEWTMP
  # smtpd + cleanup only (no qmgr/pickup): each message stays in queue/incoming.
  # in_flow_delay = 0: the default 1 s makes smtpd wait for a flow token that only qmgr puts back;
  # with no qmgr here every message after the first few would pause 1 s (measured: p50 = 1.0 s).
  pf_conf "$PF_DIR" $((SESSIONS > 100 ? SESSIONS : 100))
  echo 'in_flow_delay = 0' >>"$PF_DIR/conf/main.cf"
  cat >>"$PF_DIR/conf/master.cf" <<EOF
cleanup   unix n - n - 0 cleanup
rewrite   unix - - n - - trivial-rewrite
proxymap  unix - - n - - proxymap
postlog   unix-dgram n - n - 1 postlogd
EOF
  pf_run "$PF_DIR"
  sleep 0.5
}
pf_stop() { pf_halt "$1"; rmtmp "$1"; }   # and its directory (cleanup calls it too)
pf_stored() { # complete queue files: cleanup sets the owner x bit once the file is final
  find "$PF_DIR/queue/incoming" -type f -perm -u+x | wc -l
}

# --- one client run ------------------------------------------------------------------------------------
GEN_JSON=
gen_run() { # $1 port, $2 size bytes, $3 messages, $4 reuse (1/0), $5 out file
  local rc=0
  "$GEN" --target "127.0.0.1:$1" --concurrency "$SESSIONS" --message-count "$3" --body-size "$2" \
    --messages-per-connection "$([ "$4" = 1 ] && echo 0 || echo 1)" --keep-going --json >"$5" 2>"$5.err" || rc=$?
  GEN_JSON=$(cat "$5")
  if [ "$rc" != 0 ] || [ -z "$GEN_JSON" ]; then
    echo "ringmail-gen failed (exit $rc):" >&2; cat "$5.err" >&2; exit 1
  fi
}

gen_run_http() { # $1 port, $2 size bytes, $3 messages, $4 out file (the admin token is accepted)
  local rc=0
  "$GEN" --http "http://127.0.0.1:$1/api/inject/v1" --http-token "$(cat "$RM_DIR/data/admin.token")" \
    --concurrency "$SESSIONS" --message-count "$3" --body-size "$2" --keep-going --json >"$4" 2>"$4.err" || rc=$?
  GEN_JSON=$(cat "$4")
  if [ "$rc" != 0 ] || [ -z "$GEN_JSON" ]; then
    echo "ringmail-gen --http failed (exit $rc):" >&2; cat "$4.err" >&2; exit 1
  fi
}

FAIL=0
RES_FILE=
record() { # system size reuse stored fsyncs/msg; takes the rest from GEN_JSON; checks stored vs 250s
  local sys=$1 size=$2 reuse=$3 stored=$4 fs=$5 sent failed errs
  sent=$(jq .sent <<<"$GEN_JSON"); failed=$(jq .failed <<<"$GEN_JSON"); errs=$(jq -c .errors <<<"$GEN_JSON")
  if ! [[ "$stored" =~ ^[0-9]+$ && "$sent" =~ ^[0-9]+$ ]]; then
    echo "UNKNOWN: $sys $size reuse=$reuse: stored '$stored', 250s '$sent'" >&2; FAIL=1; stored=0
  elif [ "$stored" -lt "$sent" ]; then
    echo "LOST: $sys $size reuse=$reuse: $sent answered 250, only $stored stored" >&2; FAIL=1
  elif [ "$stored" -gt "$sent" ]; then
    echo "note: $sys $size reuse=$reuse: $stored stored for $sent 250s (replies lost or late)" >&2
  fi
  if [ "$failed" != 0 ]; then echo "ERRORS: $sys $size reuse=$reuse: $failed failed, $errs" >&2; FAIL=1; fi
  jq -r --arg s "$sys" --arg z "$size" --arg r "$reuse" --arg f "$fs" \
    '[$s, $z, $r, .msgs_per_s, .latency_us.p50, .latency_us.p99, ($f|tonumber), .elapsed_s] | @tsv' \
    <<<"$GEN_JSON" >>"$RES_FILE"
  printf '  %-8s %6s reuse=%s  %8.1f msgs/s  p50 %7.1f ms  p99 %7.1f ms  %6.2f s  fsyncs/msg %s  errors %s\n' \
    "$sys" "$size" "$reuse" "$(jq .msgs_per_s <<<"$GEN_JSON")" "$(jq '.latency_us.p50/1000' <<<"$GEN_JSON")" \
    "$(jq '.latency_us.p99/1000' <<<"$GEN_JSON")" "$(jq .elapsed_s <<<"$GEN_JSON")" "${fs/#-1/(strace run)}" "$errs" >&2
}

timed_ringmail() { # size n reuse
  local stored commits
  rm_start
  gen_run "$RM_SMTP" "$1" "$2" "$3" "$RM_DIR/gen.json"
  alive "$RM_PID" || { echo "ringmaild died during the run" >&2; tail -20 "$RM_DIR/log" >&2; FAIL=1; }
  stored=$(rm_counter spool messages_stored); commits=$(rm_counter spool spool_commits)
  rm_stop; rmtmp "$RM_DIR"
  record ringmail "$1" "$3" "$stored" "$(awk -v c="$commits" -v n="$stored" 'BEGIN {printf "%.3f", n ? c/n : 0}')"
}
timed_ringmail_http() { # size n (connections are always reused)
  local stored commits
  rm_start
  gen_run_http "$RM_HTTP" "$1" "$2" "$RM_DIR/gen.json"
  alive "$RM_PID" || { echo "ringmaild died during the run" >&2; tail -20 "$RM_DIR/log" >&2; FAIL=1; }
  stored=$(rm_counter spool messages_stored); commits=$(rm_counter spool spool_commits)
  rm_stop; rmtmp "$RM_DIR"
  record ringmail-http "$1" 1 "$stored" "$(awk -v c="$commits" -v n="$stored" 'BEGIN {printf "%.3f", n ? c/n : 0}')"
}
timed_postfix() { # size n reuse
  local stored
  pf_start
  gen_run "$PF_PORT" "$1" "$2" "$3" "$PF_DIR/gen.json"
  stored=$(pf_stored)
  pf_stop "$PF_DIR"
  record postfix "$1" "$3" "$stored" -1
}

# --- strace runs: fsync/fdatasync calls of every process of the system, short and untimed -------------
STRACE_CALLS=
strace_attach() { # $1 output file, pids...; leaves the strace pid in STRACE_PID
  local ofile=$1 args=() p
  shift
  for p in "$@"; do args+=(-p "$p"); done
  strace -f -c -e trace=fsync,fdatasync -o "$ofile" "${args[@]}" 2>"$ofile.err" &
  STRACE_PID=$!
  PIDS+=("$STRACE_PID")
  # attached once it has announced every given pid (threads are announced too)
  for _ in $(seq 100); do
    local n
    n=$(grep -c 'attached' "$ofile.err" 2>/dev/null)
    [ "${n:-0}" -ge $# ] && break
    alive "$STRACE_PID" || break
    sleep 0.1
  done
  sleep 0.3
}
strace_detach() { # $1 output file; sets STRACE_CALLS (empty if strace could not attach)
  kill -INT "$STRACE_PID" 2>/dev/null || true
  for _ in $(seq 100); do alive "$STRACE_PID" || break; sleep 0.1; done
  wait "$STRACE_PID" 2>/dev/null || true
  forget_pid "$STRACE_PID"
  if grep -q 'attached' "$1.err" && [ -s "$1" ]; then
    STRACE_CALLS=$(awk '$NF=="fsync" || $NF=="fdatasync" {s += $4} END {print s+0}' "$1")
  else
    STRACE_CALLS=
    echo "strace could not attach: $(head -3 "$1.err" | tr '\n' ' ')" >&2
  fi
}
declare -A SYS_FS RM_COMMITS_STRACE
strace_ringmail() { # size n reuse
  local stored commits kids=() p
  rm_start
  for p in "${RM_ROLES[@]}"; do kids+=("$p"); done
  strace_attach "$RM_DIR/strace" "$RM_PID" "${kids[@]}"
  gen_run "$RM_SMTP" "$1" "$2" "$3" "$RM_DIR/gen.json"
  sleep 1.5   # the message log flushes every 1 s: let its fdatasync fall inside the window
  strace_detach "$RM_DIR/strace"
  stored=$(rm_counter spool messages_stored); commits=$(rm_counter spool spool_commits)
  rm_stop; rmtmp "$RM_DIR"
  [ "$stored" -lt "$(jq .sent <<<"$GEN_JSON")" ] && { echo "LOST in strace run (ringmail)" >&2; FAIL=1; }
  SYS_FS[ringmail,$1,$3]=$([ -n "$STRACE_CALLS" ] && awk -v c="$STRACE_CALLS" -v n="$stored" 'BEGIN {printf "%.3f", c/n}' || echo "n/a")
  RM_COMMITS_STRACE[$1,$3]=$(awk -v c="$commits" -v n="$stored" 'BEGIN {printf "%.3f", c/n}')
}
strace_postfix() { # size n reuse
  local stored kids=()
  pf_start
  mapfile -t kids < <(pgrep -P "$PF_MASTER" || true)   # postlogd etc. started before the attach
  strace_attach "$PF_DIR/strace" "$PF_MASTER" "${kids[@]}"
  gen_run "$PF_PORT" "$1" "$2" "$3" "$PF_DIR/gen.json"
  sleep 1.5
  strace_detach "$PF_DIR/strace"
  stored=$(pf_stored)
  pf_stop "$PF_DIR"
  [ "$stored" -lt "$(jq .sent <<<"$GEN_JSON")" ] && { echo "LOST in strace run (postfix)" >&2; FAIL=1; }
  SYS_FS[postfix,$1,$3]=$([ -n "$STRACE_CALLS" ] && awk -v c="$STRACE_CALLS" -v n="$stored" 'BEGIN {printf "%.3f", c/n}' || echo "n/a")
}

# --- main ----------------------------------------------------------------------------------------------
newtmp; WORK=$NEWTMP
RES_FILE=$WORK/results.tsv
: >"$RES_FILE"
declare -A RATIOS
start_banner "N 10 KB = $N_10K, N 100 KB = $N_100K, sessions $SESSIONS, runs $RUNS"

for size in 10240 102400; do
  n=$([ "$size" = 10240 ] && echo "$N_10K" || echo "$N_100K")
  for reuse in 1 0; do
    for run in $(seq "$RUNS"); do
      echo "run $run/$RUNS: $((size / 1024)) KB, reuse=$reuse, $n messages" >&2
      if [ $((run % 2)) = 1 ]; then timed_ringmail "$size" "$n" "$reuse"; timed_postfix "$size" "$n" "$reuse"
      else timed_postfix "$size" "$n" "$reuse"; timed_ringmail "$size" "$n" "$reuse"; fi
      r=$(tail -2 "$RES_FILE" | awk -F'\t' '{v[$1]=$4} END {printf "%.3f", v["ringmail"]/v["postfix"]}')
      RATIOS[$size,$reuse]+="$r "
      if [ "$reuse" = 1 ]; then timed_ringmail_http "$size" "$n"; fi
    done
    if [ "$HAVE_STRACE" = 1 ]; then
      ns=$((N_STRACE < n ? N_STRACE : n))
      echo "strace run: $((size / 1024)) KB, reuse=$reuse, $ns messages (untimed)" >&2
      strace_ringmail "$size" "$ns" "$reuse"
      strace_postfix "$size" "$ns" "$reuse"
    fi
  done
done
echo "end: $(load_stamp)" >&2

echo
echo "machine: $MACHINE"
echo "runs: $RUNS per row; values: median (min..max); $SESSIONS sessions"
echo
echo "| body | reuse | messages | system | msgs/s | time-to-250 (HTTP: 200) p50 ms | p99 ms | fsyncs/msg | fsync+fdatasync calls/msg (strace) |"
echo "|---|---|---|---|---|---|---|---|---|"
for size in 10240 102400; do
  n=$([ "$size" = 10240 ] && echo "$N_10K" || echo "$N_100K")
  for reuse in 1 0; do
    for sys in ringmail ringmail-http postfix; do
      [ "$sys" = ringmail-http ] && [ "$reuse" = 0 ] && continue
      if [ "$sys" != postfix ]; then fs=$(col "$sys" "$size" "$reuse" 7 | stat3 '%.3f')
      else fs="${SYS_FS[postfix,$size,$reuse]:-n/a}"; fi
      printf '| %d KB | %s | %d | %s | %s | %s | %s | %s | %s |\n' $((size / 1024)) \
        "$([ "$reuse" = 1 ] && echo yes || echo no)" "$n" "$(case $sys in postfix) echo Postfix ;; ringmail-http) echo "ringmail (HTTP)" ;; *) echo ringmail ;; esac)" \
        "$(col "$sys" "$size" "$reuse" 4 | stat3 '%.0f')" \
        "$(col "$sys" "$size" "$reuse" 5 | awk '{print $1/1000}' | stat3 '%.1f')" \
        "$(col "$sys" "$size" "$reuse" 6 | awk '{print $1/1000}' | stat3 '%.1f')" \
        "$fs" "${SYS_FS[$sys,$size,$reuse]:-n/a}"
    done
  done
done
echo
echo "| body | reuse | ringmail/Postfix msgs/s (per run) |"
echo "|---|---|---|"
for size in 10240 102400; do
  for reuse in 1 0; do
    printf '| %d KB | %s | %s |\n' $((size / 1024)) "$([ "$reuse" = 1 ] && echo yes || echo no)" \
      "$(tr ' ' '\n' <<<"${RATIOS[$size,$reuse]}" | grep . | stat3 '%.2f')"
  done
done
if [ "$HAVE_STRACE" = 1 ]; then
  echo
  echo "strace runs ($N_STRACE messages or N, fresh instances): ringmail spool_commits/msg in them:"
  for k in "${!RM_COMMITS_STRACE[@]}"; do echo "  ${k/,/ B reuse=}: ${RM_COMMITS_STRACE[$k]}"; done
else
  echo "strace not installed: Postfix fsyncs/msg not measured"
fi
if [ "$FAIL" != 0 ]; then echo "FAILED: a run lost messages or had errors (see above)" >&2; exit 1; fi
