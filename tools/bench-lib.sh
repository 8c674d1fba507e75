# shellcheck shell=bash
# bench-lib.sh - the helpers tools/bench.sh, bench-ingest.sh, bench-delivery.sh and bench-million.sh share.
# Sourced, never run: . "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh" (after set -euo pipefail).
# Sourcing only sets the globals below; it starts nothing and installs no trap.
#
# Globals the caller sets (after sourcing):
#   BUILD            the build directory (ringmaild, ringctl): rm_ctl, rm_run
#   TMP_PREFIX       name prefix of newtmp's directories, e.g. bench-ingest (required by newtmp)
#   RES_FILE         the tab-separated results file col reads
#   CLEANUP_TICKS    0.1 s ticks cleanup waits per pid between TERM and KILL (default 50)
#   TMP_PIDFILE      a file name: cleanup also stops the pid written in it in any TMPS directory
#                    (bench.sh: its driver's client, gen.pid; default '' = none)
#   PF_COPY_STRICT   1 (default): failing to copy /etc/postfix's postfix-files, postfix-files.d,
#                    dynamicmaps.cf stops the script (set -e); 0: ignored (bench.sh)
#   RM_PRELOAD       a library put in LD_PRELOAD of ringmaild (and so its roles); default '' = none
# Globals kept here:
#   PIDS             pids cleanup stops (TERM, then KILL)
#   TMPS             directories cleanup removes
#   PF_DIRS          Postfix instance directories that may be running; cleanup runs pf_stop on each
#   NEWTMP           the directory newtmp made last
#   RM_PID RM_ROLES  ringmaild's supervisor and its role processes (rm_run)
#   RM_SMTP RM_ADMIN the node's SMTP and admin ports on 127.0.0.1 (rm_conf)
#   PF_PORT          the Postfix instance's smtpd port on 127.0.0.1 (pf_conf)
#   PF_MASTER        its master's pid (pf_run)
#   MACHINE          start_banner's machine_desc
#
# Processes and directories
#   alive PID             true while PID runs (a zombie counts as gone)
#   forget_pid PID        drops PID from PIDS
#   stop_pid PID          TERM, up to 20 s, KILL, reap; forgets it (PIDS)
#   cleanup               pf_stop on every PF_DIRS entry, the TMP_PIDFILE pids into PIDS, TERM to every PIDS
#                         pid, up to CLEANUP_TICKS x 0.1 s each, KILL, reap; removes every TMPS directory
#   cleanup_traps         cleanup on EXIT; on INT/TERM "interrupted", cleanup, exit 130
#   newtmp                a fresh ${TMPDIR:-/tmp}/$TMP_PREFIX.XXXXXX, mode 755, in NEWTMP and TMPS
#   rmtmp DIR             removes DIR and drops it from TMPS
#   need_exec HINT FILE...  exit 2 with "missing FILE" + HINT on the first FILE that is not executable
#   need_cmds CMD...      exit 2 with "needs CMD" on the first CMD not on PATH
#   need_pf_root          exit 2 unless running as root with /etc/postfix (for a private Postfix instance)
#   machine_desc          "N cores, CPU model, Linux release, N GiB"
#   load_stamp            "YYYY-MM-DD HH:MM:SS UTC, load average L1 L5 L15"
#   start_banner TEXT     sets MACHINE (machine_desc); "machine: MACHINE", "start: load_stamp; TEXT" to stderr
# Ports
#   free_port             a TCP port free on 127.0.0.1 just now
#   listening PORT        true when something listens on TCP PORT
# ringmail node (BUILD, RM_*)
#   rm_conf DIR WORKERS   picks RM_SMTP, RM_ADMIN; writes DIR/ringmail.toml: [node] in DIR/data, the
#                         listener, [admin], [ingress] workers = WORKERS; the caller appends the rest
#   rm_run DIR LOG WAIT_SMTP  starts ringmaild on DIR/ringmail.toml (output to LOG), waits up to 10 s for
#                         the admin API (WAIT_SMTP=1: and the SMTP listener), exit 1 if either is not up;
#                         RM_PID and RM_ROLES into PIDS
#   rm_relay_conf DIR WORKERS CONNECTIONS PORT [LINE]  appends [egress] workers, connection_limit, LINE
#                         (when given, even empty) and [route."*"] to [127.0.0.1]:PORT
#   rm_shaping_conf DIR DOMAIN CONNECTIONS FILE...  writes DIR/bench-shaping.toml (DOMAIN's own block: the
#                         [egress] connection_limit CONNECTIONS, rates no load reaches) and appends
#                         [shaping] files = [FILE..., that file] (FILEs absolute, readable by the roles)
#   rm_stop               stop_pid on the supervisor, then on each role
#   rm_ctl ARGS...        ringctl against the node's admin port
#   rm_counter ROLE NAME  the counter NAME summed over ROLE's instances (ringctl --json status)
#   rm_deliveries DATADIR  the Delivery records in the node's logs (DATADIR/logs, zstdcat; a segment cut short counts
#                         the records before the cut)
# Private Postfix instance (needs root; PF_*)
#   pf_conf DIR LIMIT     picks PF_PORT; DIR/conf with the files postfix needs, main.cf up to
#                         default_process_limit = LIMIT, master.cf's smtpd on 127.0.0.1:PF_PORT;
#                         the caller appends the rest
#   pf_relay_conf DIR PORT SESSIONS  appends relaying to [127.0.0.1]:PORT with SESSIONS connections from
#                         the start (cached), and qmgr, smtp and the services they need
#   pf_run DIR            set-permissions, start (under script(1)), wait up to 10 s for master and smtpd,
#                         exit 1 if not up; PF_MASTER; DIR into PF_DIRS
#   pf_halt DIR           postfix stop, then master and each child by pid (KILL after 10 s / 5 s); drops DIR
#                         from PF_DIRS
#   pf_stop DIR           pf_halt; a script redefines it when stopping an instance means more
# Results
#   stat3 FORMAT          numbers on stdin -> "median (min..max)" in printf FORMAT ("n/a" for none)
#   col KEY... COLUMN     COLUMN of the RES_FILE rows whose first fields are the KEYs, one a line
#   proc_cpu_py           prints Python for a run driver (which imports os and sets root, a pid):
#                         HZ, stat(pid), name(pid), snapshot() of root's process tree, cpu_delta(s0, s1)

# shellcheck disable=SC2034  # globals for the scripts that source this file
TMP_PREFIX='' TMP_PIDFILE='' CLEANUP_TICKS=50 PF_COPY_STRICT=1 RM_PRELOAD=''
PIDS=() TMPS=() PF_DIRS=() NEWTMP=''
RM_PID='' RM_ROLES=() RM_SMTP='' RM_ADMIN='' PF_PORT='' PF_MASTER='' MACHINE=''

# --- processes and directories -------------------------------------------------------------------------
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}
forget_pid() { local p out=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || out+=("$p"); done; PIDS=("${out[@]}"); }
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 200); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}
cleanup() {
  local d p
  for d in "${PF_DIRS[@]}"; do pf_stop "$d"; done
  PF_DIRS=()
  if [ -n "$TMP_PIDFILE" ]; then   # e.g. a driver's client: Ctrl-C may have hit the driver mid-run
    for d in "${TMPS[@]}"; do
      if [ -s "$d/$TMP_PIDFILE" ]; then PIDS+=("$(cat "$d/$TMP_PIDFILE")"); fi
    done
  fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq "$CLEANUP_TICKS"); do alive "$p" || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
  for d in "${TMPS[@]}"; do rm -rf "$d"; done
  TMPS=()
}
cleanup_traps() {
  trap 'cleanup' EXIT
  trap 'echo "interrupted" >&2; cleanup; exit 130' INT TERM
}
newtmp() { NEWTMP=$(mktemp -d "${TMPDIR:-/tmp}/$TMP_PREFIX.XXXXXX"); chmod 755 "$NEWTMP"; TMPS+=("$NEWTMP"); }
rmtmp() { local d out=(); rm -rf "$1"; for d in "${TMPS[@]}"; do [ "$d" = "$1" ] || out+=("$d"); done; TMPS=("${out[@]}"); }
need_exec() {
  local hint=$1 b
  shift
  for b in "$@"; do [ -x "$b" ] || { echo "missing $b$hint" >&2; exit 2; }; done
}
need_cmds() { local c; for c in "$@"; do command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 2; }; done; }
need_pf_root() {
  [ "$(id -u)" = 0 ] || { echo "run as root (a private Postfix instance needs it)" >&2; exit 2; }
  [ -d /etc/postfix ] || { echo "no /etc/postfix (apt-get install postfix, 'No configuration')" >&2; exit 2; }
}
machine_desc() {
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
}
load_stamp() { echo "$(date -u '+%F %T') UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
start_banner() {
  MACHINE=$(machine_desc)
  echo "machine: $MACHINE" >&2
  echo "start: $(load_stamp); $1" >&2
}

# --- ports ---------------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { [ -n "$(ss -Hltn "sport = :$1")" ]; }

# --- ringmail node -------------------------------------------------------------------------------------
rm_conf() {
  RM_SMTP=$(free_port); RM_ADMIN=$(free_port)
  cat >"$1/ringmail.toml" <<TOML
[node]
data_dir = "$1/data"
log_level = "warn"
[[listener]]
address = "127.0.0.1:$RM_SMTP"
[admin]
listen = "127.0.0.1:$RM_ADMIN"
[ingress]
workers = $(toml_workers "$2")
TOML
}
toml_workers() { if [ "$1" = auto ]; then echo '"auto"'; else echo "$1"; fi; }
rm_run() {
  local d=$1 log=$2 wait_smtp=$3
  if [ -n "$RM_PRELOAD" ]; then
    LD_PRELOAD=$RM_PRELOAD "$BUILD/ringmaild" --config "$d/ringmail.toml" >"$log" 2>&1 &
  else
    "$BUILD/ringmaild" --config "$d/ringmail.toml" >"$log" 2>&1 &
  fi
  RM_PID=$!
  PIDS+=("$RM_PID")
  for _ in $(seq 100); do
    rm_ctl status >/dev/null 2>&1 && { [ "$wait_smtp" != 1 ] || listening "$RM_SMTP"; } && break
    alive "$RM_PID" || break
    sleep 0.1
  done
  if ! rm_ctl status >/dev/null 2>&1 || ! listening "$RM_SMTP"; then
    echo "ringmaild did not come up:" >&2; tail -20 "$log" >&2; exit 1
  fi
  mapfile -t RM_ROLES < <(pgrep -P "$RM_PID" || true)
  PIDS+=("${RM_ROLES[@]}")   # so that a KILLed supervisor cannot leave roles behind
}
rm_relay_conf() {
  {
    printf '[egress]\nworkers = %s\nconnection_limit = %s\n' "$(toml_workers "$2")" "$3"
    [ $# -lt 5 ] || printf '%s\n' "$5"
    printf '[route."*"]\nhosts = ["[127.0.0.1]:%s"]\n' "$4"
  } >>"$1/ringmail.toml"
}
rm_shaping_conf() {
  local d=$1 dom=$2 conns=$3 f list=''
  shift 3
  # The shipped files' ["default"] (KumoMTA's: connection_limit 10, max_message_rate "100/s",
  # max_connection_rate "100/min") would throttle the bench's one route far below what it measures. The
  # bench's domain gets a block of its own, merged last, that gives back today's [egress] connection_limit
  # and sets both rates beyond any load: every other option, the provider matching and the automation
  # rules of the files still resolve for the route's path, so the node does the shaping work of a real
  # deployment while the throughput stays comparable with a run without shaping files.
  cat >"$d/bench-shaping.toml" <<TOML
# bench.sh --shaping: lifts the limits of the files above for the bench's own domain (tools/bench-lib.sh)
["$dom"]
connection_limit = $conns
max_message_rate = "1000000000/s"
max_connection_rate = "1000000000/s"
TOML
  chmod 644 "$d/bench-shaping.toml"
  for f in "$@" "$d/bench-shaping.toml"; do list+="${list:+, }\"$f\""; done
  printf '[shaping]\nfiles = [%s]\n' "$list" >>"$d/ringmail.toml"
}
rm_stop() {
  local p
  stop_pid "$RM_PID"
  for p in "${RM_ROLES[@]}"; do stop_pid "$p"; done
  RM_ROLES=()
}
rm_ctl() { "$BUILD/ringctl" --endpoint "127.0.0.1:$RM_ADMIN" "$@"; }
rm_counter() { rm_ctl --json status | jq "[.roles[] | select(.role==\"$1\") | .counters.$2] | add"; }
rm_deliveries() {
  local segs=()
  shopt -s nullglob; segs=("$1"/logs/*.zst*); shopt -u nullglob
  [ ${#segs[@]} -gt 0 ] || { echo 0; return; }
  zstdcat -q "${segs[@]}" 2>/dev/null | jq -R 'fromjson? // empty | select(.type == "Delivery")' -c | wc -l || true
}

# --- a private Postfix instance ------------------------------------------------------------------------
pf_conf() {
  local d=$1 f=(/etc/postfix/postfix-files /etc/postfix/postfix-files.d /etc/postfix/dynamicmaps.cf)
  PF_PORT=$(free_port)
  mkdir -p "$d/conf" "$d/queue" "$d/data"
  if [ "$PF_COPY_STRICT" = 1 ]; then cp -r "${f[@]}" "$d/conf/"
  else cp -r "${f[@]}" "$d/conf/" 2>/dev/null || true; fi
  chown postfix "$d/data"
  cat >"$d/conf/main.cf" <<EOF
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.example.test
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $d/maillog
maillog_file_prefixes = $d
compatibility_level = 3.6
default_process_limit = $2
EOF
  echo "127.0.0.1:$PF_PORT inet n - n - - smtpd" >"$d/conf/master.cf"
}
pf_relay_conf() {
  cat >>"$1/conf/main.cf" <<EOF
relayhost = [127.0.0.1]:$2
default_destination_concurrency_limit = $3
smtp_destination_concurrency_limit = $3
initial_destination_concurrency = $3
smtp_connection_cache_on_demand = yes
smtp_connection_cache_destinations = [127.0.0.1]:$2
smtp_tls_security_level = none
EOF
  cat >>"$1/conf/master.cf" <<EOF
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
}
pf_run() {
  local d=$1
  postfix -c "$d/conf" set-permissions >"$d/start.out" 2>&1 || true
  PF_DIRS+=("$d")
  # postfix start wants a terminal for its messages; script(1) gives it one
  script -qc "postfix -c $d/conf start" /dev/null >>"$d/start.out" 2>&1 || true
  for _ in $(seq 100); do [ -s "$d/queue/pid/master.pid" ] && listening "$PF_PORT" && break; sleep 0.1; done
  PF_MASTER=$(tr -d ' \n' <"$d/queue/pid/master.pid" 2>/dev/null || true)
  if [ -z "$PF_MASTER" ] || ! alive "$PF_MASTER" || ! listening "$PF_PORT"; then
    echo "postfix did not come up:" >&2; cat "$d/start.out" >&2; tail -20 "$d/maillog" >&2 2>/dev/null; exit 1
  fi
}
pf_halt() {
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
}
pf_stop() { pf_halt "$1"; }

# --- results -------------------------------------------------------------------------------------------
stat3() {
  sort -g | awk -v f="$1" '{a[NR]=$1} END {
    if (NR == 0) { printf "n/a"; exit }
    m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
    if (NR == 1) printf f, m; else printf f " (" f ".." f ")", m, a[1], a[NR] }'
}
col() {
  local keys
  keys=$(IFS=$'\t'; echo "${*:1:$#-1}")
  awk -F'\t' -v keys="$keys" -v n=$(($# - 1)) -v c="${!#}" 'BEGIN {split(keys, k, "\t")}
    {for (i = 1; i <= n; i++) if ($i != k[i]) next; print $c}' "$RES_FILE"
}
proc_cpu_py() {
  cat <<'PY'
# --- CPU seconds of root's process tree from /proc (proc_cpu_py, tools/bench-lib.sh) ---
HZ = os.sysconf("SC_CLK_TCK")

def stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        rest = s[s.rindex(")") + 2:].split()
        return int(rest[1]), [int(x) for x in rest[11:15]]   # ppid; utime stime cutime cstime
    except (OSError, ValueError):
        return None

def name(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace")) or "?"
    except OSError:
        return "?"

def snapshot():
    """{pid: (program name, [utime, stime, cutime, cstime])} for root and its descendants ({} if root <= 0)"""
    if root <= 0:
        return {}
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

def cpu_delta(s0, s1):
    """CPU seconds by program name between two snapshots; "exited": children that ended meanwhile,
    through root's cutime+cstime"""
    cpu = {}
    for p, (nm, v) in s1.items():
        b = s0.get(p, (nm, [0, 0, 0, 0]))[1]
        cpu[nm] = cpu.get(nm, 0) + (v[0] + v[1] - b[0] - b[1]) / HZ
        if p == root:
            cpu["exited"] = (v[2] + v[3] - b[2] - b[3]) / HZ
    return cpu
# --- end of proc_cpu_py ---
PY
}
