#!/usr/bin/env bash
# bench-delivery.sh - end to end: client -> MTA -> sink, ringmail against Postfix (with qmgr and smtp).
#
#   tools/bench-delivery.sh [BUILD_DIR] [RUNS]          (default: build, 3)
#
# For 10 KB and 100 KB bodies, 50 client sessions (connections reused), every run injects the same N
# messages with ringmail-gen into
#   - a fresh ringmail node (RocksDB spool, 250 only after the WAL fsync) with [route."*"] pointing at the
#     sink, and
#   - a fresh private Postfix instance (smtpd, cleanup, qmgr, smtp, ...) with relayhost = the sink,
# both delivering to one Postfix smtp-sink started per run. The two systems alternate within a run
# (order flipped each run).
# Timing: t0 just before ringmail-gen starts; the end is when smtp-sink's running counter (-c, written
# after every message it accepted with 250) reaches N, polled every 5 ms. msgs/s = N / (end - t0);
# MMH = msgs/s * 3600 / 1e6. CPU seconds: utime+stime from /proc/PID/stat of every process of the system
# (descendants of ringmaild or of Postfix's master, by program name) between t0 and the end; processes
# that exit meanwhile are counted through their parent's cutime+cstime ("exited").
# No latency column: ringmail-gen puts no per-message send time into the message (Date: has 1 s
# resolution, Message-ID carries the run start), so injection-to-delivery latency cannot be measured
# honestly with this client and smtp-sink.
# Exit 1 if a run did not deliver all N messages in time, or had any client-side error.
#
# Environment: BENCH_N_10K, BENCH_N_100K (messages per run), BENCH_SESSIONS (default 50), BENCH_TIMEOUT
# (seconds a run may take, default 300), BENCH_EGRESS_WORKERS (ringmail, default 1), BENCH_MAX_READY
# (ringmail [egress] max_ready; unset = the default 1024), BENCH_RINGMAIL_PRELOAD (a library put in
# LD_PRELOAD of ringmaild and its roles only, for diagnostic experiments; unset = none), BENCH_DKIM
# ("rsa" or "ed25519": the ringmail node DKIM-signs every message, From: gen@ringmail-gen.test, with an
# RSA-2048 or Ed25519 key made per run with openssl genpkey; unset = no signing; Postfix never signs).
# Needs ringmaild, ringctl, tools/ringmail-gen in BUILD_DIR, postfix ("No configuration" is enough),
# /usr/sbin/smtp-sink, jq, python3, ss, script. Run as root.
set -euo pipefail
# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
TMP_PREFIX=bench-delivery
BUILD=${1:-build}
RUNS=${2:-3}
N_10K=${BENCH_N_10K:-20000}
N_100K=${BENCH_N_100K:-5000}
SESSIONS=${BENCH_SESSIONS:-50}
TIMEOUT=${BENCH_TIMEOUT:-300}
EGRESS_WORKERS=${BENCH_EGRESS_WORKERS:-1}
MAX_READY=${BENCH_MAX_READY:-}
DKIM=${BENCH_DKIM:-}
case "$DKIM" in ''|rsa|ed25519) ;; *) echo "BENCH_DKIM must be rsa or ed25519" >&2; exit 2 ;; esac
RM_PRELOAD=${BENCH_RINGMAIL_PRELOAD:-}
GEN=$BUILD/tools/ringmail-gen
SINK_BIN=/usr/sbin/smtp-sink

need_exec '' "$BUILD/ringmaild" "$BUILD/ringctl" "$GEN" "$SINK_BIN"
need_cmds postfix jq python3 ss script
need_pf_root

# --- cleanup (tools/bench-lib.sh): node, roles, smtp-sink, driver by pid; Postfix by directory ---------
cleanup_traps

# --- the sink ------------------------------------------------------------------------------------------
SINK_PID='' SINK_PORT='' SINK_OUT=''
sink_start() { # $1 directory
  SINK_PORT=$(free_port); SINK_OUT=$1/sink.out
  "$SINK_BIN" -c -u nobody "127.0.0.1:$SINK_PORT" 1000 >"$SINK_OUT" 2>"$1/sink.err" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  for _ in $(seq 100); do listening "$SINK_PORT" && break; sleep 0.05; done
  listening "$SINK_PORT" || { echo "smtp-sink did not come up" >&2; cat "$1/sink.err" >&2; exit 1; }
}

# --- ringmail ------------------------------------------------------------------------------------------
# dkim_conf DIR rsa|ed25519 - a [[dkim]] signer for ringmail-gen's From domain, its key made here
dkim_conf() {
  local alg=RSA a=rsa-sha256 opt=(-pkeyopt rsa_keygen_bits:2048)
  if [ "$2" = ed25519 ]; then alg=ED25519; a=ed25519-sha256; opt=(); fi
  openssl genpkey -algorithm "$alg" "${opt[@]}" -out "$1/dkim.pem" 2>/dev/null
  chmod 644 "$1/dkim.pem"
  printf '[[dkim]]\ndomain = "ringmail-gen.test"\nselector = "bench"\nkey_file = "%s"\nalgorithm = "%s"\n' \
    "$1/dkim.pem" "$a" >>"$1/ringmail.toml"
}
RM_DIR=''
rm_start() {
  newtmp; RM_DIR=$NEWTMP
  sink_start "$RM_DIR"
  rm_conf "$RM_DIR" "$(nproc)"
  rm_relay_conf "$RM_DIR" "$EGRESS_WORKERS" "$SESSIONS" "$SINK_PORT" "${MAX_READY:+max_ready = $MAX_READY}"
  [ -z "$DKIM" ] || dkim_conf "$RM_DIR" "$DKIM"
  rm_run "$RM_DIR" "$RM_DIR/log" 0
  sleep 0.5
}

# --- Postfix -------------------------------------------------------------------------------------------
PF_DIR=''
pf_start() {
  newtmp; PF_DIR=$NEWTMP
  sink_start "$PF_DIR"
  # Tuned as an operator relaying bulk mail to one smart host would: concurrency to the relay host equal
  # to the client's sessions from the start (no slow start), connections cached for that destination,
  # enough processes for 50 smtpd + 50 smtp. in_flow_delay stays at its default (1 s): with qmgr running
  # it only slows smtpd while the incoming queue outruns delivery, which is Postfix's design.
  pf_conf "$PF_DIR" $((SESSIONS * 2 > 100 ? SESSIONS * 2 + 20 : 120))
  pf_relay_conf "$PF_DIR" "$SINK_PORT" "$SESSIONS"
  pf_run "$PF_DIR"
  sleep 0.5
}
pf_stop() { # $1 instance dir; stops master and every child by pid, then the sink (cleanup calls it too)
  pf_halt "$1"
  [ -n "$SINK_PID" ] && stop_pid "$SINK_PID"
  rmtmp "$1"
}
pf_queued() { # queue files left in incoming, active, deferred, hold
  find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" "$PF_DIR/queue/hold" -type f 2>/dev/null | wc -l
}

# --- one timed run: the driver starts the client, watches the sink, snapshots CPU ----------------------
DRIVER=
write_driver() { # $1 path
  { cat <<'PY'
"""driver ROOTPID SINKPID SINKOUT N TIMEOUT OUT -- gen args...
Starts the client at t0, polls smtp-sink's -c counter until it reaches N, snapshots utime+stime of the
root's descendants (by program name) at t0 and at the end. Prints one JSON object on stdout."""
import json, os, signal, subprocess, sys, time
root, sinkpid, sinkout, n, timeout, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
gen = sys.argv[8:]
PY
  proc_cpu_py
  cat <<'PY'

def sink_count():
    try:
        with open(sinkout, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 80))
            tail = f.read().decode(errors="replace")
        last = tail.rstrip("\r").split("\r")[-1]
        return int(last.split("mesg=")[1]) if "mesg=" in last else 0
    except (OSError, ValueError, IndexError):
        return 0

base = sink_count()
s0 = snapshot(); k0 = stat(sinkpid)[1]
t0 = time.monotonic()
g = subprocess.Popen(gen, stdout=open(out, "w"), stderr=open(out + ".err", "w"))

def stop(signum, frame):   # the script's cleanup TERMs the driver: take the client down with it
    g.kill()
    g.wait()
    sys.exit(130)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
count = 0
while time.monotonic() - t0 < timeout:
    count = sink_count() - base
    if count >= n:
        break
    time.sleep(0.005)
t1 = time.monotonic()
s1 = snapshot(); k1 = stat(sinkpid)[1]
try:
    rc = g.wait(timeout=30)
except subprocess.TimeoutExpired:
    g.kill(); rc = g.wait()
cpu = cpu_delta(s0, s1)
cpu["smtp-sink"] = (k1[0] + k1[1] - k0[0] - k0[1]) / HZ
print(json.dumps({"delivered": count, "elapsed_s": t1 - t0, "gen_rc": rc,
                  "gen": json.load(open(out)) if os.path.getsize(out) else None, "cpu": cpu}))
PY
  } >"$1"
}

FAIL=0
RES_FILE=
drive() { # $1 system, $2 root pid, $3 port, $4 size, $5 n, $6 dir
  local sys=$1 j sent failed errs delivered el
  # in the background and waited for, so that a trapped INT/TERM runs the cleanup at once (bash runs
  # traps only between foreground commands) and the cleanup can stop the driver by its pid
  python3 "$DRIVER" "$2" "$SINK_PID" "$SINK_OUT" "$5" "$TIMEOUT" "$6/gen.json" -- \
      "$GEN" --target "127.0.0.1:$3" --concurrency "$SESSIONS" --message-count "$5" --body-size "$4" \
      --messages-per-connection 0 --keep-going --json >"$6/drive.json" &
  local drv=$!
  PIDS+=("$drv")
  wait "$drv" || true
  forget_pid "$drv"
  j=$(cat "$6/drive.json")
  [ -n "$j" ] || { echo "driver produced no result ($sys $4)" >&2; exit 1; }
  delivered=$(jq .delivered <<<"$j"); el=$(jq .elapsed_s <<<"$j")
  sent=$(jq '.gen.sent // 0' <<<"$j"); failed=$(jq '.gen.failed // -1' <<<"$j"); errs=$(jq -c '.gen.errors' <<<"$j")
  if [ "$failed" != 0 ] || [ "$sent" != "$5" ]; then
    echo "ERRORS: $sys $4: sent $sent, failed $failed, $errs" >&2; FAIL=1
  fi
  if [ "$delivered" -lt "$5" ]; then
    echo "NOT DELIVERED: $sys $4: $delivered of $5 at the sink after $el s" >&2; FAIL=1
  fi
  # system size msgs/s elapsed inject-msgs/s cpu-json
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$4" "$(awk -v n="$delivered" -v t="$el" 'BEGIN {printf "%.1f", n/t}')" \
    "$el" "$(jq '.gen.msgs_per_s // 0' <<<"$j")" "$(jq -c .cpu <<<"$j")" >>"$RES_FILE"
  printf '  %-8s %6s  delivered %d in %.2f s = %.0f msgs/s  (injection %s msgs/s)  cpu %s\n' "$sys" "$4" \
    "$delivered" "$el" "$(awk -v n="$delivered" -v t="$el" 'BEGIN {print n/t}')" "$(jq '.gen.msgs_per_s' <<<"$j")" \
    "$(jq -c '.cpu | with_entries(.value |= (.*100|round/100))' <<<"$j")" >&2
}

timed_ringmail() { # size n
  local queued
  rm_start
  drive ringmail "$RM_PID" "$RM_SMTP" "$1" "$2" "$RM_DIR"
  alive "$RM_PID" || { echo "ringmaild died during the run" >&2; tail -20 "$RM_DIR/log" >&2; FAIL=1; }
  for _ in $(seq 50); do queued=$(rm_counter scheduler messages_queued); [ "$queued" = 0 ] && break; sleep 0.1; done
  [ "$queued" = 0 ] || { echo "ringmail: messages_queued = $queued after the sink had every message" >&2; FAIL=1; }
  rm_stop
  stop_pid "$SINK_PID"
  rmtmp "$RM_DIR"
}
timed_postfix() { # size n
  local q
  pf_start
  drive postfix "$PF_MASTER" "$PF_PORT" "$1" "$2" "$PF_DIR"
  for _ in $(seq 50); do q=$(pf_queued); [ "$q" = 0 ] && break; sleep 0.1; done
  [ "$q" = 0 ] || { echo "postfix: $q queue files left after the sink had every message" >&2; FAIL=1; }
  pf_stop "$PF_DIR"
}

# --- statistics (stat3 and col: tools/bench-lib.sh) ----------------------------------------------------
cpu_of() { # system size -> "name median, ..." CPU seconds per process name, median over runs
  col "$1" "$2" 6 | jq -s -r '
    (map(keys) | add | unique) as $names
    | [ $names[] as $n | [ .[] | (.[$n] // 0) ] | sort | (if length % 2 == 1 then .[length/2|floor]
        else (.[length/2-1] + .[length/2]) / 2 end) as $m | select($m >= 0.005) | "\($n) \($m*100|round/100)" ]
    | join(", ")'
}
cpu_total() { # system size -> total CPU seconds of the system (without the sink), one per run
  col "$1" "$2" 6 | jq -r 'del(."smtp-sink") | add'
}

# --- main ----------------------------------------------------------------------------------------------
newtmp; WORK=$NEWTMP
RES_FILE=$WORK/results.tsv
DRIVER=$WORK/driver.py
write_driver "$DRIVER"
: >"$RES_FILE"
declare -A RATIOS
start_banner "N 10 KB = $N_10K, N 100 KB = $N_100K, sessions $SESSIONS, runs $RUNS"

for size in 10240 102400; do
  n=$([ "$size" = 10240 ] && echo "$N_10K" || echo "$N_100K")
  for run in $(seq "$RUNS"); do
    echo "run $run/$RUNS: $((size / 1024)) KB, $n messages (load average $(cut -d' ' -f1 /proc/loadavg))" >&2
    if [ $((run % 2)) = 1 ]; then timed_ringmail "$size" "$n"; timed_postfix "$size" "$n"
    else timed_postfix "$size" "$n"; timed_ringmail "$size" "$n"; fi
    r=$(tail -2 "$RES_FILE" | awk -F'\t' '{v[$1]=$3} END {printf "%.3f", v["postfix"] ? v["ringmail"]/v["postfix"] : 0}')
    RATIOS[$size]+="$r "
  done
done
echo "end: $(load_stamp)" >&2

echo
echo "machine: $MACHINE"
echo "runs: $RUNS per row; values: median (min..max); $SESSIONS client sessions, connections reused${RM_PRELOAD:+; ringmail with LD_PRELOAD=$RM_PRELOAD}"
echo
echo "| body | messages | system | delivered msgs/s | MMH | injection msgs/s (client) | CPU s, system total | CPU s, sink |"
echo "|---|---|---|---|---|---|---|---|"
for size in 10240 102400; do
  n=$([ "$size" = 10240 ] && echo "$N_10K" || echo "$N_100K")
  for sys in ringmail postfix; do
    printf '| %d KB | %d | %s | %s | %s | %s | %s | %s |\n' $((size / 1024)) "$n" \
      "$([ "$sys" = ringmail ] && echo ringmail || echo Postfix)" \
      "$(col "$sys" "$size" 3 | stat3 '%.0f')" \
      "$(col "$sys" "$size" 3 | awk '{print $1*3600/1e6}' | stat3 '%.2f')" \
      "$(col "$sys" "$size" 5 | stat3 '%.0f')" \
      "$(cpu_total "$sys" "$size" | stat3 '%.1f')" \
      "$(col "$sys" "$size" 6 | jq '."smtp-sink"' | stat3 '%.1f')"
  done
done
echo
echo "| body | ringmail/Postfix delivered msgs/s (per run) |"
echo "|---|---|"
for size in 10240 102400; do
  printf '| %d KB | %s |\n' $((size / 1024)) "$(tr ' ' '\n' <<<"${RATIOS[$size]}" | grep . | stat3 '%.2f')"
done
echo
echo "CPU seconds per process name (median over runs; 'exited' = children that ended during the run):"
for size in 10240 102400; do
  for sys in ringmail postfix; do
    echo "  $((size / 1024)) KB $sys: $(cpu_of "$sys" "$size")"
  done
done
if [ "$FAIL" != 0 ]; then echo "FAILED: a run lost messages, timed out or had errors (see above)" >&2; exit 1; fi
