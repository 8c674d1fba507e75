#!/usr/bin/env bash
# bench.sh - the side-by-side bench: the ceiling (ringmail-gen -> ringmail-sink), ringmail end to end
# (ringmail-gen -> ringmaild -> ringmail-sink) and Postfix relaying to the same sink, several rounds each,
# for 10 KB and 100 KB bodies; writes a markdown table and an SVG chart.
#
#   tools/bench.sh [--rounds N] [--quick] [--out DIR] [--shaping FILE...]
#
#   --rounds N   rounds per row (default 3)
#   --quick      a few seconds in all for CI: tiny counts, 1 round, the Postfix row skipped when
#                Postfix (or root) is missing
#   --out DIR    where bench-latest.md and bench-latest.svg go (default docs/benchmarks/)
#   --shaping FILE...  the ringmail node loads these shaping files ([shaping] files), then a file of
#                its own that lifts their limits for the bench's domain (rm_shaping_conf in bench-lib.sh)
#
# Build: $RINGMAIL_BUILD_DIR, else the first of build/, build-*/ under the checkout holding ringmaild,
# ringctl, tools/ringmail-gen and tools/ringmail-sink. Environment: BENCH_N_10K, BENCH_N_100K (messages
# per run), BENCH_SESSIONS (client sessions), BENCH_TIMEOUT (seconds a run may take), BENCH_SHAPING (shaping
# files separated by spaces, as --shaping). With shaping files each ringmail run prints the path
# configuration the node resolved for the bench's route (ringctl resolve-shaping) before injecting.
# BENCH_BODY_LOG: the node's [spool] body_log (true or false; default the node's).
# BENCH_INGRESS_WORKERS, BENCH_EGRESS_WORKERS: the node's [ingress] / [egress] workers (1..32 or auto, the
# default: the node sizes itself); BENCH_ROWS: a subset of "ceiling ringmail postfix half peers many".
#
# Every run starts a fresh ringmail-sink (and a fresh node or Postfix instance). The run's driver (Python,
# below) first opens one probe connection to the sink and then starts ringmail-gen; the sink's summary
# counts `messages` over `active_s`, from its first connection (the probe, i.e. the start of injection)
# to its last accepted message, so delivered msgs/s = messages / active_s covers first injection to last
# arrival for all three rows alike. The sink runs with --latency: ringmail-gen stamps each message with
# X-Gen-Sent (wall clock when its MAIL FROM is written) and the sink keeps a histogram of its own wall clock
# at the 250 after the data minus that stamp, i.e. injection-to-delivery latency per message (for the
# ceiling gen -> sink directly, otherwise through the MTA); its p50/p99 sit next to ringmail-gen's
# time-to-250 in the table. Worker counts follow `nproc` so the same command is the capacity test
# on a big box. Issue 15's measurements (docs/benchmarks.md): MTA CPU per delivered message (per role
# and total, /proc/PID/stat), ringmail at half the saturating rate (ringmail-gen --rate), smtp-source ->
# smtp-sink, a many-sessions run (BENCH_MANY, sized to RLIMIT_NOFILE and the local ports; BENCH_HALF_S
# the half-rate run's seconds) and a Targets table with met / not met. Nothing here asserts a speed:
# exit 1 only when a run lost messages, had client errors, timed out, or broke the accounting (sink
# count, queue empty, Delivery records, no role restarted); exit 2 for bad usage or a missing tool.
set -euo pipefail
# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
TMP_PREFIX=ringmail-bench TMP_PIDFILE=gen.pid PF_COPY_STRICT=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=3 QUICK=0 OUT=$ROOT/docs/benchmarks DOMAIN=example.test
read -r -a SHAPING <<<"${BENCH_SHAPING:-}"
usage() { sed -n '6,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) [ $# -ge 2 ] || usage; ROUNDS=$2; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --shaping) [ $# -ge 2 ] || usage; shift; SHAPING=()
               while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do SHAPING+=("$1"); shift; done ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds wants a positive integer" >&2; exit 2; }
for i in "${!SHAPING[@]}"; do   # absolute: the node reads them from its own working directory
  [ -r "${SHAPING[i]}" ] || { echo "shaping file ${SHAPING[i]} is not readable" >&2; exit 2; }
  SHAPING[i]=$(realpath "${SHAPING[i]}")
  [[ ${SHAPING[i]} != *[\\\"]* ]] || { echo "shaping file ${SHAPING[i]}: no \" or \\ in its path, please" >&2; exit 2; }
done

BUILD=${RINGMAIL_BUILD_DIR:-}
if [ -z "$BUILD" ]; then
  for d in "$ROOT"/build "$ROOT"/build-*; do
    [ -x "$d/ringmaild" ] && [ -x "$d/tools/ringmail-gen" ] && [ -x "$d/tools/ringmail-sink" ] && { BUILD=$d; break; }
  done
fi
[ -n "$BUILD" ] || { echo "no build found: set RINGMAIL_BUILD_DIR (meson setup build && ninja -C build)" >&2; exit 2; }
GEN=$BUILD/tools/ringmail-gen SINK=$BUILD/tools/ringmail-sink
need_exec " (ninja -C $BUILD)" "$BUILD/ringmaild" "$BUILD/ringctl" "$GEN" "$SINK"
need_cmds jq python3 ss zstdcat

# --- sizing from the machine ---------------------------------------------------------------------------
CORES=$(nproc)
clamp() { local v=$1; [ "$v" -lt "$2" ] && v=$2; [ "$v" -gt "$3" ] && v=$3; echo "$v"; }
# the node's worker counts: its own "auto" default (docs/configuration.md, "Worker counts") unless given;
# the counts it chose are read back from `ringctl status` for the report
INGRESS_WORKERS=${BENCH_INGRESS_WORKERS:-auto} EGRESS_WORKERS=${BENCH_EGRESS_WORKERS:-auto}
# BENCH_BODY_LOG: the node's [spool] body_log, true or false (default: the node's default, true)
BODY_LOG=${BENCH_BODY_LOG:-}
[[ $BODY_LOG =~ ^(|true|false)$ ]] || { echo "BENCH_BODY_LOG: true or false" >&2; exit 2; }
for w in "$INGRESS_WORKERS" "$EGRESS_WORKERS"; do
  [[ $w =~ ^([1-9][0-9]?|auto)$ ]] || { echo "BENCH_INGRESS_WORKERS / BENCH_EGRESS_WORKERS: 1..32 or auto" >&2; exit 2; }
done
# BENCH_ROWS: the rows to run, of: ceiling ringmail postfix half peers many (default all of them)
ROWS=" ${BENCH_ROWS:-ceiling ringmail postfix half peers many} "
row() { [[ $ROWS == *" $1 "* ]]; }
SINK_WORKERS=$(clamp $((CORES / 4)) 1 64)
SESSIONS=${BENCH_SESSIONS:-$(clamp $((CORES * 25)) 50 2000)}
if [ "$QUICK" = 1 ]; then
  ROUNDS=1; SESSIONS=${BENCH_SESSIONS:-10}
  N_10K=${BENCH_N_10K:-200} N_100K=${BENCH_N_100K:-50} TIMEOUT=${BENCH_TIMEOUT:-60}
else
  N_10K=${BENCH_N_10K:-$(clamp $((CORES * 10000)) 20000 1000000)}
  N_100K=${BENCH_N_100K:-$(clamp $((CORES * 2500)) 5000 250000)}
  TIMEOUT=${BENCH_TIMEOUT:-600}
fi

# The many-sessions row: one ringmail-gen session per message, all open at once. Each session is a
# descriptor in ringmail-gen (which needs --concurrency + 64) and in the ingress worker that accepted it
# (max_connections + 256; the kernel may hand all of them to one worker), and a local port of 127.0.0.1.
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
read -r PLO PHI </proc/sys/net/ipv4/ip_local_port_range
MANY=${BENCH_MANY:-$([ "$QUICK" = 1 ] && echo 300 || echo 20000)}
[[ $MANY =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_MANY wants a positive integer" >&2; exit 2; }
MANY_WHY="asked $MANY"
if [ "$MANY" -gt $((NOFILE - 512)) ]; then MANY=$((NOFILE - 512)); MANY_WHY+=", hard RLIMIT_NOFILE $NOFILE - 512"; fi
if [ "$MANY" -gt $((PHI - PLO - 1000)) ]; then MANY=$((PHI - PLO - 1000)); MANY_WHY+=", local ports $PLO-$PHI - 1000"; fi
[ "$MANY" -ge 1 ] || { echo "descriptor or port limits leave no room for the many-sessions row" >&2; exit 2; }
# smtp-source -> smtp-sink (Postfix's test tools), the peers of ringmail-gen -> ringmail-sink
PEERS=1 PEERS_WHY=''
if ! command -v smtp-source >/dev/null || ! command -v smtp-sink >/dev/null; then
  PEERS=0 PEERS_WHY='smtp-source or smtp-sink missing (package postfix)'
fi
HALF_S=${BENCH_HALF_S:-10}   # seconds of a half-rate run (full mode)

POSTFIX=1 PF_WHY=''
if [ "$(id -u)" != 0 ]; then PF_WHY='not root (a private Postfix instance needs it)'
elif ! command -v postfix >/dev/null || [ ! -d /etc/postfix ]; then PF_WHY='Postfix is not installed'
elif ! command -v script >/dev/null; then PF_WHY='needs script(1) to start Postfix'
fi
if [ -n "$PF_WHY" ]; then
  [ "$QUICK" = 1 ] || { echo "$PF_WHY: the Postfix row needs it (--quick skips it)" >&2; exit 2; }
  POSTFIX=0; echo "Postfix row skipped: $PF_WHY" >&2
fi

# --- cleanup (tools/bench-lib.sh): every process by pid, every directory by name, also on Ctrl-C --------
trap 'trap - INT TERM; cleanup' EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ringmail's roles run as nobody and Postfix as postfix: they must be able to reach the run directories
python3 - "${TMPDIR:-/tmp}" <<'CHK' || exit 2
import os, sys
d = os.path.realpath(sys.argv[1])
while True:
    if not os.stat(d).st_mode & 0o001:
        sys.exit("TMPDIR: %s is not searchable by other users (chmod o+x), the node's roles could not reach it" % d)
    if d == "/":
        break
    d = os.path.dirname(d)
CHK

# --- host settings: printed with the values a park node wants (as `ringctl doctor` checks them) --------
sysctl_report() { # -> "name<TAB>value<TAB>recommended<TAB>ok|DIFFERS" lines
  local v lo hi
  r() { cat "/proc/sys/$1" 2>/dev/null | tr -s ' \t' ' ' || echo '?'; }
  v=$(r net/core/somaxconn); printf 'net.core.somaxconn\t%s\t>= 4096\t%s\n' "$v" "$([ "${v:-0}" -ge 4096 ] 2>/dev/null && echo ok || echo DIFFERS)"
  read -r lo hi < <(r net/ipv4/ip_local_port_range) || true
  printf 'net.ipv4.ip_local_port_range\t%s %s\t1024 65535\t%s\n' "$lo" "$hi" "$([ $((${hi:-0} - ${lo:-0})) -ge 50000 ] && echo ok || echo DIFFERS)"
  v=$(r net/ipv4/tcp_tw_reuse); printf 'net.ipv4.tcp_tw_reuse\t%s\t1\t%s\n' "$v" "$([ "$v" = 1 ] && echo ok || echo DIFFERS)"
  v=$(r fs/file-max); printf 'fs.file-max\t%s\t>= 1000000\t%s\n' "$v" "$([ "${v:-0}" -ge 1000000 ] 2>/dev/null && echo ok || echo DIFFERS)"
  v=$(r net/core/rmem_max); printf 'net.core.rmem_max\t%s\t>= 16777216\t%s\n' "$v" "$([ "${v:-0}" -ge 16777216 ] 2>/dev/null && echo ok || echo DIFFERS)"
  v=$(r net/core/wmem_max); printf 'net.core.wmem_max\t%s\t>= 16777216\t%s\n' "$v" "$([ "${v:-0}" -ge 16777216 ] 2>/dev/null && echo ok || echo DIFFERS)"
  v=$(r vm/nr_hugepages)
  printf 'vm.nr_hugepages\t%s\t>= %s\t%s\n' "$v" "$HP_NEED" "$([ "${v:-0}" -ge "$HP_NEED" ] 2>/dev/null && echo ok || echo DIFFERS)"
}
HP_NEED=0   # hugepages the node's shared segment needs; known once a node ran (status shm.bytes)

# --- ringmail-sink, fresh for every run ----------------------------------------------------------------
SINK_PID='' SINK_PORT=''
sink_start() { # $1 run directory
  for _ in 1 2 3 4 5; do   # a port picked free may be taken by the time the sink binds it
    SINK_PORT=$(free_port)
    "$SINK" --listen "127.0.0.1:$SINK_PORT" --workers "$SINK_WORKERS" --latency --json \
      >"$1/sink.json" 2>"$1/sink.err" &
    SINK_PID=$!; PIDS+=("$SINK_PID")
    for _ in $(seq 100); do listening "$SINK_PORT" && return 0; alive "$SINK_PID" || break; sleep 0.05; done
    stop_pid "$SINK_PID"
  done
  echo "ringmail-sink did not come up:" >&2; cat "$1/sink.err" >&2; exit 1
}

# --- ringmail ------------------------------------------------------------------------------------------
rm_start() { # $1 run directory, $2 [ingress] max_connections (per worker; empty: the default)
  local d=$1
  rm_conf "$d" "$INGRESS_WORKERS"
  if [ -n "${2:-}" ]; then   # rm_conf ends in [ingress]; every session may have a message in flight at once:
    local mib=$(( (${2} * (10240 + 4096) / 1048576 + 1) * 5 / 4 )) slots=4096   # its body in the arena,
    while [ "$slots" -lt "$2" ]; do slots=$((slots * 2)); done                  # its record in a ring
    [ "$mib" -ge 64 ] || mib=64
    printf 'max_connections = %s\n[shm]\narena_size = "%sMiB"\nring_slots = %s\n' "$2" "$mib" "$slots" >>"$d/ringmail.toml"
  fi
  rm_relay_conf "$d" "$EGRESS_WORKERS" "$SESSIONS" "$SINK_PORT"
  [ -z "$BODY_LOG" ] || printf '[spool]\nbody_log = %s\n' "$BODY_LOG" >>"$d/ringmail.toml"
  [ ${#SHAPING[@]} = 0 ] || rm_shaping_conf "$d" "$DOMAIN" "$SESSIONS" "${SHAPING[@]}"
  rm_run "$d" "$d/ringmaild.log" 1
  if [ -z "$SEEN_WORKERS" ]; then   # the counts the node chose ("auto" or given), for the report
    SEEN_WORKERS=$(rm_ctl --json status |
      jq -r '"\([.roles[] | select(.role == "ingress")] | length) \([.roles[] | select(.role == "egress")] | length)"')
    echo "  ringmail workers (ingress egress): $SEEN_WORKERS; asked $INGRESS_WORKERS $EGRESS_WORKERS" >&2
  fi
  if [ ${#SHAPING[@]} != 0 ]; then   # what the files and the override resolve to for the bench's path
    local r
    r=$(rm_ctl resolve-shaping --domain "$DOMAIN" --site "route:[127.0.0.1]:$SINK_PORT" --json) || r='{}'
    jq -r '"  shaping: \(.domain) via \(.site): provider \(if (.provider_name // "") == "" then "-"
      else .provider_name end), connection_limit \(.config.connection_limit), max_message_rate
      \(.config.max_message_rate), max_connection_rate \(.config.max_connection_rate),
      \(.rules | length) automation rule(s) in scope"' <<<"$r" | tr -s ' \n' ' ' | sed 's/^ */  /; s/ *$//' >&2
    echo >&2
  fi
  if [ "$HP_NEED" = 0 ]; then
    local bytes hp_kb
    bytes=$(rm_ctl --json status | jq '.shm.bytes // 0')
    hp_kb=$(awk '/Hugepagesize/ {print $2}' /proc/meminfo)
    [ -n "$hp_kb" ] && [ "$hp_kb" -gt 0 ] && HP_NEED=$(((bytes + hp_kb * 1024 - 1) / (hp_kb * 1024)))
  fi
  sleep 0.3
}

# --- Postfix: a private instance with qmgr, relaying to the sink (recipe of tools/bench-delivery.sh) ----
pf_start() { # $1 run directory
  # Tuned as for bulk relaying to one smart host: as many connections to it as client sessions from
  # the start (no slow start), cached connections, enough processes for every smtpd and smtp.
  pf_conf "$1" $((SESSIONS * 2 + 20))
  pf_relay_conf "$1" "$SINK_PORT" "$SESSIONS"
  pf_run "$1"
  sleep 0.3
}

# --- the driver of one run -----------------------------------------------------------------------------
DRIVER=
write_driver() { # $1 path
  { cat <<'PY'
"""driver MODE ROOTPID SINKPID SINKPORT DONEARG TIMEOUT RUNDIR -- ringmail-gen args...
MODE ceiling|ringmail|postfix. Opens a probe connection to the sink (its first connection marks the
start of the window), starts the client, waits for it (rusage), then waits until the system is idle:
ringmail's spool stored every 250 and the scheduler holds nothing (DONEARG = admin endpoint), Postfix's
queue directories are empty (DONEARG = queue directory); twice in a row, 100 ms apart. CPU seconds of
every process under ROOTPID by program name between the start and that moment; children that exited
meanwhile via ROOTPID's cutime+cstime ("exited"). One JSON object on stdout."""
import json, os, signal, socket, subprocess, sys, time
mode, root, sinkpid, sinkport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
donearg, timeout, rundir, gen = sys.argv[5], float(sys.argv[6]), sys.argv[7], sys.argv[9:]
signal.signal(signal.SIGTERM, signal.default_int_handler)

def die_of_sigint(t, v, tb):
    """bash acts on a Ctrl-C only when its foreground child was killed by it, not when it exited"""
    if issubclass(t, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.__excepthook__(t, v, tb)
sys.excepthook = die_of_sigint
PY
  proc_cpu_py
  cat <<'PY'

def idle():
    if mode == "ringmail":
        try:
            j = json.loads(subprocess.run(gen_ctl + ["status"], capture_output=True, timeout=5).stdout)
        except (ValueError, subprocess.TimeoutExpired):
            return False
        c = lambda role, k: sum(r["counters"].get(k, 0) for r in j.get("roles", []) if r.get("role") == role)
        if not (c("spool", "messages_stored") >= want and c("scheduler", "messages_queued") == 0):
            return False
        # and the scheduler's own page (published once a second; 503 before its first) counts every message
        # done: a scheduler still starting, or not yet told of the stored messages, holds none either
        try:
            q = json.loads(subprocess.run(gen_ctl + ["queues"], capture_output=True, timeout=5).stdout)
            s = q["since_start"]
            return s["delivered"] + s["bounced"] + s["expired"] >= want and q["totals"]["messages"] == 0
        except (ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
            return False
    if mode == "postfix":
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(donearg, q)):
                if files:
                    return False
        return True
    return True

gen_ctl = [os.path.join(os.path.dirname(gen[0]), "..", "ringctl"), "--endpoint", donearg, "--json"]
s0, k0 = snapshot(), stat(sinkpid)[1]
t0 = time.monotonic()
probe = socket.create_connection(("127.0.0.1", sinkport), timeout=5)
probe.recv(512)                       # the banner: the sink has seen its first connection
g = subprocess.Popen(gen, stdout=open(os.path.join(rundir, "gen.json"), "w"),
                     stderr=open(os.path.join(rundir, "gen.err"), "w"))
with open(os.path.join(rundir, "gen.pid"), "w") as f:
    f.write(str(g.pid))
probe.sendall(b"QUIT\r\n")
probe.close()
rc, ru = None, None
try:
    while time.monotonic() - t0 < timeout:
        pid, status, r = os.wait4(g.pid, os.WNOHANG)
        if pid:
            rc, ru = os.waitstatus_to_exitcode(status), r
            break
        time.sleep(0.01)
    if rc is None:
        g.kill(); _, status, ru = os.wait4(g.pid, 0); rc = "timeout"
except KeyboardInterrupt:
    if rc is None:
        g.kill(); os.wait4(g.pid, 0)
    os.unlink(os.path.join(rundir, "gen.pid"))
    raise
os.unlink(os.path.join(rundir, "gen.pid"))
try:
    summary = json.load(open(os.path.join(rundir, "gen.json")))
except ValueError:
    summary = None
want = (summary or {}).get("sent", 0)
done, streak = False, 0
while time.monotonic() - t0 < timeout:
    streak = streak + 1 if idle() else 0
    if streak >= 2:
        done = True
        break
    time.sleep(0.1)
t1 = time.monotonic()
s1, k1 = snapshot(), stat(sinkpid)[1]
cpu = cpu_delta(s0, s1)
cpu["ringmail-gen"] = ru.ru_utime + ru.ru_stime if ru else 0
cpu["ringmail-sink"] = (k1[0] + k1[1] - k0[0] - k0[1]) / HZ
# a role restarted (or gone) between the snapshots: its CPU before the restart is lost, the run is invalid
changed = mode == "ringmail" and set(s0) != set(s1)
print(json.dumps({"gen_rc": rc, "idle": done, "wait_s": t1 - t0, "gen": summary, "cpu": cpu,
                  "roles_changed": changed}))
PY
  } >"$1"
}

# --- one run -------------------------------------------------------------------------------------------
# Systems: ceiling, ringmail, postfix (saturating: --concurrency SESSIONS); half (ringmail at RUN_RATE
# msgs/s, half of the round's saturating rate: its latencies are the half-rate rows); many (ringmail,
# --concurrency MANY, one message per session, a node with [ingress] max_connections = MANY per worker).
FAIL=0 RESULTS='' RUN_RATE=0 SEEN_WORKERS=''
run_one() { # $1 system, $2 body bytes, $3 messages, $4 round
  local sys=$1 size=$2 n=$3 d root port donearg drv sinkj mode=$1 conc=$SESSIONS extra=() q=-1 dlv=-1
  newtmp; d=$NEWTMP
  sink_start "$d"
  case $sys in
    half)     mode=ringmail; extra=(--rate "$RUN_RATE/s") ;;
    many)     mode=ringmail; conc=$MANY; extra=(--messages-per-connection 1) ;;
  esac
  case $mode in
    ceiling)  root=0; port=$SINK_PORT; donearg=- ;;
    ringmail) rm_start "$d" "$([ "$sys" = many ] && echo "$MANY")"; root=$RM_PID; port=$RM_SMTP
              donearg=127.0.0.1:$RM_ADMIN ;;
    postfix)  pf_start "$d"; root=$PF_MASTER; port=$PF_PORT; donearg=$d/queue ;;
  esac
  drv=$(python3 "$DRIVER" "$mode" "$root" "$SINK_PID" "$SINK_PORT" "$donearg" "$TIMEOUT" "$d" -- \
        "$GEN" --target "127.0.0.1:$port" --domain "$DOMAIN" --concurrency "$conc" --message-count "$n" \
        --body-size "$size" --messages-per-connection 0 "${extra[@]}" --keep-going --json) || drv='{}'
  case $mode in
    ringmail) alive "$RM_PID" || { echo "ringmaild died during the run:" >&2; tail -20 "$d/ringmaild.log" >&2; FAIL=1; }
              q=$(rm_counter scheduler messages_queued 2>/dev/null) || q=-1
              rm_stop
              dlv=$(rm_deliveries "$d/data") ;;
    postfix)  pf_stop "$d" ;;
  esac
  stop_pid "$SINK_PID"   # SIGTERM: the sink prints its summary
  sinkj=$(cat "$d/sink.json"); [ -n "$sinkj" ] || sinkj='{}'
  jq -cn --arg sys "$sys" --argjson size "$size" --argjson n "$n" --argjson round "$4" \
     --argjson drv "$drv" --argjson sink "$sinkj" --argjson conc "$conc" --argjson rate "$RUN_RATE" \
     --argjson queued "${q:-null}" --argjson dlv "$dlv" \
     '{system: $sys, size: $size, n: $n, round: $round, sessions: $conc, sent: ($drv.gen.sent // 0),
       failed: ($drv.gen.failed // -1), errors: ($drv.gen.errors // {}), delivered: ($sink.messages // 0),
       connections: ($drv.gen.connections // 0), target_rate: (if $sys == "half" then $rate else null end),
       window_s: ($sink.active_s // 0), inject_msgs_per_s: ($drv.gen.msgs_per_s // 0),
       lat_p50_us: ($drv.gen.latency_us.p50 // 0), lat_p99_us: ($drv.gen.latency_us.p99 // 0),
       deliv_count: ($sink.delivery_latency_us.count // 0), deliv_missing: ($sink.delivery_latency_us.missing // 0),
       deliv_p50_us: ($sink.delivery_latency_us.p50 // 0), deliv_p99_us: ($sink.delivery_latency_us.p99 // 0),
       idle: ($drv.idle // false), gen_rc: ($drv.gen_rc // null), cpu: ($drv.cpu // {}),
       roles_changed: ($drv.roles_changed // false), queued_after: $queued, delivery_records: $dlv}' >>"$RESULTS"
  local line; line=$(tail -1 "$RESULTS")
  printf '  %-8s %3d KB round %d: delivered %s of %s in %s s (%s msgs/s), time-to-250 p50 %s us p99 %s us,' \
    "$sys" $((size / 1024)) "$4" "$(jq .delivered <<<"$line")" "$n" "$(jq .window_s <<<"$line")" \
    "$(jq 'if .window_s > 0 then .delivered / .window_s | round else 0 end' <<<"$line")" \
    "$(jq .lat_p50_us <<<"$line")" "$(jq .lat_p99_us <<<"$line")" >&2
  printf ' injection-to-delivery p50 %s us p99 %s us' "$(jq .deliv_p50_us <<<"$line")" \
    "$(jq .deliv_p99_us <<<"$line")" >&2
  if [ "$mode" = ringmail ]; then
    printf ', CPU %s us/msg (MTA), %s sessions\n' "$(jq '[.cpu | to_entries[] | select(.key != "ringmail-gen"
      and .key != "ringmail-sink") | .value] | add // 0 | if $l.delivered > 0 then . * 1e6 / $l.delivered | round
      else "n/a" end' --argjson l "$line" <<<"$line")" "$(jq .connections <<<"$line")" >&2
  else echo >&2; fi
  if [ "$(jq '.deliv_missing > 0' <<<"$line")" = true ]; then   # the latency covers fewer messages: say so
    echo "  NOTE: $sys $((size / 1024)) KB: $(jq .deliv_missing <<<"$line") delivered message(s) without" \
         "a readable X-Gen-Sent, left out of the delivery latency" >&2
  fi
  if [ "$(jq '.sent == .n and .failed == 0 and .delivered == .n and .idle' <<<"$line")" != true ]; then
    echo "  ERROR: $sys $((size / 1024)) KB: sent $(jq .sent <<<"$line"), failed $(jq .failed <<<"$line")" \
         "$(jq -c .errors <<<"$line"), delivered $(jq .delivered <<<"$line") of $n, idle $(jq .idle <<<"$line")," \
         "client exit $(jq .gen_rc <<<"$line")" >&2
    FAIL=1
  fi
  # the accounting invariant: every 250 delivered once, nothing left queued, one Delivery record each
  if [ "$mode" = ringmail ] && [ "$(jq '.delivered == .sent and .queued_after == 0 and .delivery_records == .sent
       and (.roles_changed | not)' <<<"$line")" != true ]; then
    echo "  ERROR: $sys $((size / 1024)) KB: accounting: 250s $(jq .sent <<<"$line"), delivered" \
         "$(jq .delivered <<<"$line"), queued after the run $(jq .queued_after <<<"$line"), Delivery records" \
         "$(jq .delivery_records <<<"$line"), a role restarted or exited during the run: $(jq .roles_changed <<<"$line")" >&2
    FAIL=1
  fi
  rmtmp "$d"
}

# --- smtp-source -> smtp-sink: same messages and sessions as the ceiling row, one wall-clock window ----
run_peers() { # $1 body bytes, $2 messages, $3 round
  local size=$1 n=$2 d port sp t0 t1 rc=0 got
  newtmp; d=$NEWTMP
  port=$(free_port)
  if [ "$(id -u)" = 0 ]; then smtp-sink -c -u postfix "127.0.0.1:$port" 1024 >"$d/sink.out" 2>"$d/sink.err" &
  else smtp-sink -c "127.0.0.1:$port" 1024 >"$d/sink.out" 2>"$d/sink.err" & fi
  sp=$!; PIDS+=("$sp")
  for _ in $(seq 100); do listening "$port" && break; alive "$sp" || break; sleep 0.05; done
  t0=$EPOCHREALTIME
  timeout "$TIMEOUT" smtp-source -d -s "$SESSIONS" -m "$n" -l "$size" -f "gen@$DOMAIN" -t "rcpt@$DOMAIN" \
    "127.0.0.1:$port" >"$d/source.out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  stop_pid "$sp"
  got=$(tr '\r' '\n' <"$d/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1)
  jq -cn --argjson size "$size" --argjson n "$n" --argjson round "$3" --argjson got "${got:-0}" \
     --argjson s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f", b - a}')" --argjson rc "$rc" \
     '{system: "peers", size: $size, n: $n, round: $round, sent: $n, failed: 0, delivered: $got, window_s: $s,
       source_rc: $rc, cpu: {}}' >>"$RESULTS"
  printf '  %-8s %3d KB round %d: smtp-sink counted %s of %s in %s s (%s msgs/s)\n' peers $((size / 1024)) "$3" \
    "${got:-0}" "$n" "$(tail -1 "$RESULTS" | jq .window_s)" "$(tail -1 "$RESULTS" | jq '.delivered / .window_s | round')" >&2
  if [ "$rc" != 0 ] || [ "${got:-0}" != "$n" ]; then
    echo "  ERROR: smtp-source exit $rc, smtp-sink counted ${got:-0} of $n:" >&2; tail -5 "$d/source.out" >&2; FAIL=1
  fi
  rmtmp "$d"
}

# --- main ----------------------------------------------------------------------------------------------
newtmp; WORK=$NEWTMP
DRIVER=$WORK/driver.py RESULTS=$WORK/results.jsonl
write_driver "$DRIVER"; : >"$RESULTS"
SYSTEMS=(); for sys in ceiling ringmail; do row "$sys" && SYSTEMS+=("$sys"); done
[ "$POSTFIX" = 1 ] && row postfix && SYSTEMS+=(postfix)
MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //' || true)
echo "machine: $CORES cores, ${MODEL:-unknown CPU}, Linux $(uname -r); $(uptime)" >&2
[ ${#SHAPING[@]} = 0 ] || echo "shaping files of the ringmail node: ${SHAPING[*]} + the bench domain's override" >&2
echo "build: $BUILD; rounds $ROUNDS; 10 KB x $N_10K, 100 KB x $N_100K messages; client sessions $SESSIONS;" \
     "ingress workers $INGRESS_WORKERS, egress workers $EGRESS_WORKERS, sink workers $SINK_WORKERS," \
     "body log ${BODY_LOG:-default}" >&2
echo "many-sessions row: $MANY sessions ($MANY_WHY)" >&2
[ "$PEERS" = 1 ] || echo "smtp-source -> smtp-sink row skipped: $PEERS_WHY" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for size in 10240 102400; do
  n=$([ "$size" = 10240 ] && echo "$N_10K" || echo "$N_100K")
  for round in $(seq "$ROUNDS"); do
    order=("${SYSTEMS[@]}")
    if [ $((round % 2)) = 0 ]; then   # alternate the order so that no system always runs on a warm cache
      order=(); for ((i = ${#SYSTEMS[@]} - 1; i >= 0; i--)); do order+=("${SYSTEMS[i]}"); done
    fi
    for sys in "${order[@]}"; do run_one "$sys" "$size" "$n" "$round"; done
    # half the saturating rate ringmail delivered in this round, paced by ringmail-gen --rate
    RUN_RATE=$(jq -s --argjson s "$size" --argjson r "$round" '[.[] | select(.system == "ringmail" and .size == $s
      and .round == $r and .window_s > 0) | .delivered / .window_s / 2 | floor] | first // 0' "$RESULTS")
    if ! row half; then :
    elif [ "$RUN_RATE" -gt 0 ]; then
      if [ "$QUICK" = 1 ]; then hn=$((n / 2)); else hn=$((RUN_RATE * HALF_S)); [ "$hn" -ge 500 ] || hn=500; fi
      run_one half "$size" "$hn" "$round"
    else
      echo "  half-rate run of $((size / 1024)) KB round $round skipped: the saturating run delivered nothing" >&2
    fi
    RUN_RATE=0
    [ "$PEERS" != 1 ] || ! row peers || run_peers "$size" "$n" "$round"
  done
done
if row many; then for round in $(seq "$ROUNDS"); do run_one many 10240 "$MANY" "$round"; done; fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "host settings (value, recommended for a park node):"
sysctl_report | tee "$WORK/sysctl.tsv" | awk -F'\t' '{printf "  %-30s %-22s %-14s %s\n", $1, $2, $3, $4}'
echo
SEEN_WORKERS=${SEEN_WORKERS:-0 0} SEEN_I=${SEEN_WORKERS%% *} SEEN_E=${SEEN_WORKERS##* }
jq -n --arg machine "$CORES cores, ${MODEL:-unknown CPU}, Linux $(uname -r)" --arg uptime "$(uptime)" \
   --arg load "start $LOAD_START, end $LOAD_END" --arg date "$(date -u '+%F %T UTC')" \
   --argjson rounds "$ROUNDS" --argjson quick "$QUICK" --argjson sessions "$SESSIONS" \
   --argjson ingress "$SEEN_I" --argjson egress "$SEEN_E" --argjson sink "$SINK_WORKERS" \
   --arg body_log "${BODY_LOG:-true (default)}" --arg many "$MANY sessions ($MANY_WHY)" --arg postfix "${PF_WHY:-}" --arg postfix_version "$( [ "$POSTFIX" = 1 ] && postconf -d -h mail_version 2>/dev/null || true)" \
   '{machine: $machine, uptime: $uptime, load: $load, date: $date, rounds: $rounds, quick: ($quick == 1),
     sessions: $sessions, ingress_workers: $ingress, egress_workers: $egress, sink_workers: $sink,
     postfix_skipped: $postfix, postfix_version: $postfix_version, many: $many, body_log: $body_log}' >"$WORK/meta.json"
mkdir -p "$OUT"
python3 "$ROOT/tools/bench_chart.py" --results "$RESULTS" --meta "$WORK/meta.json" --sysctl "$WORK/sysctl.tsv" \
  --md "$OUT/bench-latest.md" --svg "$OUT/bench-latest.svg"
echo
echo "wrote $OUT/bench-latest.md and $OUT/bench-latest.svg"
if [ "$FAIL" != 0 ]; then echo "FAILED: a run lost messages, had client errors or timed out (see above)" >&2; exit 1; fi
