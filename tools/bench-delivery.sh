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
# LD_PRELOAD of ringmaild and its roles only, for diagnostic experiments; unset = none).
# Needs ringmaild, ringctl, tools/ringmail-gen in BUILD_DIR, postfix ("No configuration" is enough),
# /usr/sbin/smtp-sink, jq, python3, ss, script. Run as root.
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
N_10K=${BENCH_N_10K:-20000}
N_100K=${BENCH_N_100K:-5000}
SESSIONS=${BENCH_SESSIONS:-50}
TIMEOUT=${BENCH_TIMEOUT:-300}
EGRESS_WORKERS=${BENCH_EGRESS_WORKERS:-1}
MAX_READY=${BENCH_MAX_READY:-}
RM_PRELOAD=${BENCH_RINGMAIL_PRELOAD:-}
GEN=$BUILD/tools/ringmail-gen
SINK_BIN=/usr/sbin/smtp-sink

for b in "$BUILD/ringmaild" "$BUILD/ringctl" "$GEN" "$SINK_BIN"; do
  [ -x "$b" ] || { echo "missing $b" >&2; exit 2; }
done
for c in postfix jq python3 ss script; do
  command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root (a private Postfix instance needs it)" >&2; exit 2; }
[ -d /etc/postfix ] || { echo "no /etc/postfix (apt-get install postfix, 'No configuration')" >&2; exit 2; }

# --- cleanup: everything started here is tracked by pid or directory ---------------------------------
PIDS=()      # ringmaild, its roles, smtp-sink
PF_DIRS=()   # Postfix instances that may be running
TMPS=()
cleanup() {
  local d p m
  for d in "${PF_DIRS[@]}"; do pf_stop "$d"; done
  PF_DIRS=()
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
  for m in "${TMPS[@]}"; do rm -rf "$m"; done
  TMPS=()
}
trap 'cleanup' EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM

alive() { # $1 pid: running (a zombie counts as gone)
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }
NEWTMP=
newtmp() { NEWTMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-delivery.XXXXXX"); chmod 755 "$NEWTMP"; TMPS+=("$NEWTMP"); }
forget_pid() { local p out=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || out+=("$p"); done; PIDS=("${out[@]}"); }
stop_pid() { # $1 pid: TERM, wait up to 20 s, then KILL
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 200); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

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
RM_DIR='' RM_PID='' RM_ADMIN='' RM_SMTP='' RM_ROLES=()
rm_counter() { # $1 role, $2 counter
  "$BUILD/ringctl" --endpoint "127.0.0.1:$RM_ADMIN" --json status | jq "[.roles[] | select(.role==\"$1\") | .counters.$2] | add"
}
rm_start() {
  newtmp; RM_DIR=$NEWTMP
  sink_start "$RM_DIR"
  RM_SMTP=$(free_port); RM_ADMIN=$(free_port)
  cat >"$RM_DIR/ringmail.toml" <<TOML
[node]
data_dir = "$RM_DIR/data"
log_level = "warn"
[[listener]]
address = "127.0.0.1:$RM_SMTP"
[admin]
listen = "127.0.0.1:$RM_ADMIN"
[ingress]
workers = $(nproc)
[egress]
workers = $EGRESS_WORKERS
connection_limit = $SESSIONS
${MAX_READY:+max_ready = $MAX_READY}
[route."*"]
hosts = ["[127.0.0.1]:$SINK_PORT"]
TOML
  if [ -n "$RM_PRELOAD" ]; then
    LD_PRELOAD=$RM_PRELOAD "$BUILD/ringmaild" --config "$RM_DIR/ringmail.toml" >"$RM_DIR/log" 2>&1 &
  else
    "$BUILD/ringmaild" --config "$RM_DIR/ringmail.toml" >"$RM_DIR/log" 2>&1 &
  fi
  RM_PID=$!
  PIDS+=("$RM_PID")
  for _ in $(seq 100); do
    "$BUILD/ringctl" --endpoint "127.0.0.1:$RM_ADMIN" status >/dev/null 2>&1 && break
    alive "$RM_PID" || break
    sleep 0.1
  done
  if ! "$BUILD/ringctl" --endpoint "127.0.0.1:$RM_ADMIN" status >/dev/null 2>&1 || ! listening "$RM_SMTP"; then
    echo "ringmaild did not come up:" >&2; tail -20 "$RM_DIR/log" >&2; exit 1
  fi
  mapfile -t RM_ROLES < <(pgrep -P "$RM_PID" || true)
  PIDS+=("${RM_ROLES[@]}")   # so that a KILLed supervisor cannot leave roles behind
  sleep 0.5
}
rm_stop() {
  local p
  stop_pid "$RM_PID"
  for p in "${RM_ROLES[@]}"; do stop_pid "$p"; done
  stop_pid "$SINK_PID"
  rm -rf "$RM_DIR"
}

# --- Postfix -------------------------------------------------------------------------------------------
PF_DIR='' PF_PORT='' PF_MASTER=''
pf_start() {
  newtmp; PF_DIR=$NEWTMP
  sink_start "$PF_DIR"
  PF_PORT=$(free_port)
  mkdir -p "$PF_DIR/conf" "$PF_DIR/queue" "$PF_DIR/data"
  cp -r /etc/postfix/postfix-files /etc/postfix/postfix-files.d /etc/postfix/dynamicmaps.cf "$PF_DIR/conf/"
  chown postfix "$PF_DIR/data"
  # Tuned as an operator relaying bulk mail to one smart host would: concurrency to the relay host equal
  # to the client's sessions from the start (no slow start), connections cached for that destination,
  # enough processes for 50 smtpd + 50 smtp. in_flow_delay stays at its default (1 s): with qmgr running
  # it only slows smtpd while the incoming queue outruns delivery, which is Postfix's design.
  cat >"$PF_DIR/conf/main.cf" <<EOF
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.example.test
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
compatibility_level = 3.6
default_process_limit = $((SESSIONS * 2 > 100 ? SESSIONS * 2 + 20 : 120))
relayhost = [127.0.0.1]:$SINK_PORT
default_destination_concurrency_limit = $SESSIONS
smtp_destination_concurrency_limit = $SESSIONS
initial_destination_concurrency = $SESSIONS
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = [127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
EOF
  cat >"$PF_DIR/conf/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
scache    unix - - n - 1 scache
anvil     unix - - n - 1 anvil
postlog   unix-dgram n - n - 1 postlogd
EOF
  postfix -c "$PF_DIR/conf" set-permissions >"$PF_DIR/start.out" 2>&1 || true
  PF_DIRS+=("$PF_DIR")
  script -qc "postfix -c $PF_DIR/conf start" /dev/null >>"$PF_DIR/start.out" 2>&1 || true
  for _ in $(seq 100); do
    [ -s "$PF_DIR/queue/pid/master.pid" ] && listening "$PF_PORT" && break
    sleep 0.1
  done
  PF_MASTER=$(tr -d ' \n' <"$PF_DIR/queue/pid/master.pid" 2>/dev/null || true)
  if [ -z "$PF_MASTER" ] || ! alive "$PF_MASTER" || ! listening "$PF_PORT"; then
    echo "postfix did not come up:" >&2; cat "$PF_DIR/start.out" >&2; tail -20 "$PF_DIR/maillog" >&2 2>/dev/null; exit 1
  fi
  sleep 0.5
}
pf_stop() { # $1 instance dir; stops master and every child by pid, then the sink
  local d=$1 m kids=() k out=()
  m=$(tr -d ' \n' <"$d/queue/pid/master.pid" 2>/dev/null || true)
  [ -n "$m" ] && mapfile -t kids < <(pgrep -P "$m" || true)
  postfix -c "$d/conf" stop >/dev/null 2>&1 || true
  if [ -n "$m" ]; then
    for _ in $(seq 100); do alive "$m" || break; sleep 0.1; done
    kill -KILL "$m" 2>/dev/null || true
  fi
  for k in "${kids[@]}"; do
    for _ in $(seq 50); do alive "$k" || break; sleep 0.1; done
    kill -KILL "$k" 2>/dev/null || true
  done
  for k in "${PF_DIRS[@]}"; do [ "$k" = "$d" ] || out+=("$k"); done
  PF_DIRS=("${out[@]}")
  [ -n "$SINK_PID" ] && stop_pid "$SINK_PID"
  rm -rf "$d"
}
pf_queued() { # queue files left in incoming, active, deferred, hold
  find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" "$PF_DIR/queue/hold" -type f 2>/dev/null | wc -l
}

# --- one timed run: the driver starts the client, watches the sink, snapshots CPU ----------------------
DRIVER=
write_driver() { # $1 path
  cat >"$1" <<'PY'
"""driver ROOTPID SINKPID SINKOUT N TIMEOUT OUT -- gen args...
Starts the client at t0, polls smtp-sink's -c counter until it reaches N, snapshots utime+stime of the
root's descendants (by program name) at t0 and at the end. Prints one JSON object on stdout."""
import json, os, signal, subprocess, sys, time
root, sinkpid, sinkout, n, timeout, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
gen = sys.argv[8:]
HZ = os.sysconf("SC_CLK_TCK")

def stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        rest = s[s.rindex(")") + 2:].split()
        return int(rest[1]), [int(x) for x in rest[11:15]]   # ppid, utime stime cutime cstime
    except (OSError, ValueError):
        return None

def name(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            a = f.read().split(b"\0")[0].decode(errors="replace")
        return os.path.basename(a) or "?"
    except OSError:
        return "?"

def snapshot():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st:
                kids.setdefault(st[0], []).append(int(d))
    res, todo = {}, [root]
    while todo:
        p = todo.pop()
        st = stat(p)
        if st:
            res[p] = (name(p), st[1])
        todo.extend(kids.get(p, []))
    return res

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
cpu = {}
for p, (nm, v) in s1.items():
    before = s0.get(p, (nm, [0, 0, 0, 0]))[1]
    cpu[nm] = cpu.get(nm, 0) + (v[0] + v[1] - before[0] - before[1]) / HZ
    if p == root:   # children that exited during the run, reaped by the root
        cpu["exited"] = (v[2] + v[3] - before[2] - before[3]) / HZ
cpu["smtp-sink"] = (k1[0] + k1[1] - k0[0] - k0[1]) / HZ
print(json.dumps({"delivered": count, "elapsed_s": t1 - t0, "gen_rc": rc,
                  "gen": json.load(open(out)) if os.path.getsize(out) else None, "cpu": cpu}))
PY
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
}
timed_postfix() { # size n
  local q
  pf_start
  drive postfix "$PF_MASTER" "$PF_PORT" "$1" "$2" "$PF_DIR"
  for _ in $(seq 50); do q=$(pf_queued); [ "$q" = 0 ] && break; sleep 0.1; done
  [ "$q" = 0 ] || { echo "postfix: $q queue files left after the sink had every message" >&2; FAIL=1; }
  pf_stop "$PF_DIR"
}

# --- statistics ----------------------------------------------------------------------------------------
stat3() { # numbers on stdin -> "median (min..max)" with printf format $1
  sort -g | awk -v f="$1" '{a[NR]=$1} END {
    if (NR == 0) { printf "n/a"; exit }
    m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
    if (NR == 1) printf f, m; else printf f " (" f ".." f ")", m, a[1], a[NR] }'
}
col() { # system size column -> values, one a line
  awk -F'\t' -v s="$1" -v z="$2" -v c="$3" '$1==s && $2==z {print $c}' "$RES_FILE"
}
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
MACHINE="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "machine: $MACHINE" >&2
echo "start: $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg); N 10 KB = $N_10K, N 100 KB = $N_100K, sessions $SESSIONS, runs $RUNS" >&2

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
echo "end: $(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

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
