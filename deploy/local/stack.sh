#!/usr/bin/env bash
# The local ipsflow stack without Docker: RabbitMQ from Debian, FerretDB v1.24 embedded in our own Go program.
# Usage: deploy/local/stack.sh up|down|status|reset [--yes]|rabbitmqctl ARGS...
# Idempotent: installs what is missing, reuses what already runs, waits until both answer.
#
# RabbitMQ runs as a node of our own (default ipsflow@localhost) whose data, logs, config and Erlang cookie live in
# .local/rabbitmq, so `reset` wipes only what is ours and a fresh clone starts with a fresh broker. A broker that
# already answers AMQP on the port (a system node, say) is reused instead. Health is an AMQP handshake, not an
# open port: a node that accepts connections but never answers is reported with the command that recovers it.
# Ports, directories and the node name can be moved (IPSFLOW_RABBITMQ_PORT, IPSFLOW_RABBITMQ_MANAGEMENT_PORT,
# IPSFLOW_RABBITMQ_NODENAME, IPSFLOW_LOCAL_DIR, IPSFLOW_FERRETDB_LISTEN, IPSFLOW_FERRETDB_DATA), so a second stack
# can run beside the first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${IPSFLOW_LOCAL_DIR:-$ROOT/.local}"
FERRET_DATA="${IPSFLOW_FERRETDB_DATA:-$LOCAL/ferretdb}"
FERRET_LISTEN="${IPSFLOW_FERRETDB_LISTEN:-127.0.0.1:27017}"
# A build product, not state: shared by every stack of this checkout.
FERRET_BIN="${IPSFLOW_FERRETDB_BIN:-$ROOT/.local/bin/ipsflow-ferretdb}"
FERRET_PID="$LOCAL/run/ferretdb.pid"
FERRET_LOG="$LOCAL/log/ferretdb.log"
WAIT_SECONDS="${IPSFLOW_STACK_WAIT:-90}"
AMQP_PORT="${IPSFLOW_RABBITMQ_PORT:-5672}"
MGMT_PORT="${IPSFLOW_RABBITMQ_MANAGEMENT_PORT:-15672}"
# RabbitMQ's own Prometheus metrics (rabbitmq_prometheus: queues, connections, the node); 15692 by default and
# moved with the management port, so a second stack beside the first does not collide.
PROM_PORT="${IPSFLOW_RABBITMQ_PROMETHEUS_PORT:-$((MGMT_PORT + 20))}"
RABBIT_NODE="${IPSFLOW_RABBITMQ_NODENAME:-ipsflow@localhost}"
RABBIT_BASE="${IPSFLOW_RABBITMQ_DIR:-$LOCAL/rabbitmq}"
RABBIT_PID="$RABBIT_BASE/rabbitmq.pid"
RABBIT_LOG="$RABBIT_BASE/log"
# RabbitMQ's production checklist asks for at least 65,536 open files; Debian's default of 1,024 runs out once a
# few hundred quorum queues exist (each holds segment and index files open).
RABBIT_NOFILE="${IPSFLOW_RABBITMQ_NOFILE:-65536}"
AMQP_CHECK_SECONDS="${IPSFLOW_AMQP_CHECK_SECONDS:-5}"
RECOVER="ipsflow stack reset   (or: deploy/local/stack.sh reset)"

say() { printf '[stack] %s\n' "$*"; }
fail() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # name, command...
  local name=$1; shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS > deadline )); then return 1; fi
    sleep 1
  done
  say "$name answers"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

install_rabbitmq() {
  if [ -x /usr/sbin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1; then return; fi
  say "installing rabbitmq-server from Debian (apt-get)"
  as_root apt-get update -qq || fail "apt-get update failed; are the Debian package lists reachable?"
  # policy-rc.d may forbid starting the service during install; we start it ourselves below.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null \
    || fail "could not install rabbitmq-server (apt-get install rabbitmq-server)"
}

# 0: the port answers the AMQP 0-9-1 protocol header with Connection.Start; 1: nothing listens;
# 2: a connection is accepted but no Connection.Start comes within AMQP_CHECK_SECONDS (a stuck node).
amqp_check() {
  python3 - "${1:-127.0.0.1}" "${2:-$AMQP_PORT}" "$AMQP_CHECK_SECONDS" <<'PY'
import socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    sock = socket.create_connection((host, port), timeout=timeout)
except OSError:
    sys.exit(1)
data = b""
with sock:
    try:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        deadline = time.monotonic() + timeout
        while len(data) < 11 and time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
# A method frame (type 1) on channel 0 whose payload starts with class 10 (connection), method 10 (start).
sys.exit(0 if data[:3] == b"\x01\x00\x00" and data[7:11] == b"\x00\x0a\x00\x0a" else 2)
PY
}
amqp_answers() { amqp_check 127.0.0.1 "$AMQP_PORT"; }

rabbit_sbin() { # the real scripts, not Debian's wrappers in /usr/sbin (those switch to the rabbitmq user and node)
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then echo /usr/lib/rabbitmq/bin; return; fi
  dirname "$(PATH="$PATH:/usr/sbin" command -v rabbitmq-server)"
}

# Our node's environment: everything it reads or writes is under RABBIT_BASE (HOME holds its Erlang cookie, so
# the CLI tools below find it); nothing from /etc/rabbitmq or /var/lib/rabbitmq applies.
rabbit_env() {
  env HOME="$RABBIT_BASE" RABBITMQ_NODENAME="$RABBIT_NODE" RABBITMQ_DIST_PORT="$((AMQP_PORT + 20000))" \
    RABBITMQ_MNESIA_BASE="$RABBIT_BASE/mnesia" RABBITMQ_LOG_BASE="$RABBIT_LOG" RABBITMQ_PID_FILE="$RABBIT_PID" \
    RABBITMQ_CONFIG_FILE="$RABBIT_BASE/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_BASE/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$RABBIT_BASE/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_BASE/enabled_plugins" "$@"
}
our_ctl() { local tool=$1; shift; rabbit_env "$(rabbit_sbin)/$tool" -n "$RABBIT_NODE" "$@"; }
our_rabbit_pid() { # the pid of our node's Erlang VM, if it runs (a stale pid file whose pid was reused is not it)
  [ -s "$RABBIT_PID" ] && [ "$(cat "/proc/$(cat "$RABBIT_PID")/comm" 2>/dev/null)" = beam.smp ] && cat "$RABBIT_PID"
}

listener_pid() { # the process listening on a local TCP port (empty when unknown, e.g. another user's without root)
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

open_file_limit() { # the soft open-file limit of a process
  awk '/^Max open files/ {print $4}' "/proc/$1/limits" 2>/dev/null
}

nofile_for_node() { # the limit we can give the node: the recommended one, else the hard limit of this shell
  local hard; hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || (( hard >= RABBIT_NOFILE )) || (ulimit -Hn "$RABBIT_NOFILE") 2>/dev/null; then
    echo "$RABBIT_NOFILE"
  else
    echo "$hard"
  fi
}

start_our_rabbit() {
  # A taken port makes the node stop at boot with a crash dump and no hint (seen: a second stack's management port
  # on the first one's Prometheus port); say which port and what holds it instead.
  local port name taken=""
  for port in "$MGMT_PORT:management" "$PROM_PORT:Prometheus" "$((AMQP_PORT + 20000)):Erlang distribution"; do
    name=${port#*:}; port=${port%%:*}
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      taken+=" $name port $port (pid $(listener_pid "$port"))"
    fi
  done
  [ -z "$taken" ] || fail "RabbitMQ's ports are taken:$taken. Move this stack with IPSFLOW_RABBITMQ_MANAGEMENT_PORT" \
    "(the Prometheus port follows it at +20) or IPSFLOW_RABBITMQ_PROMETHEUS_PORT, or stop what listens there."
  mkdir -p "$RABBIT_BASE/mnesia" "$RABBIT_LOG"
  # Loopback only; queue statistics every second instead of five, so `ipsflow queues` shows what just happened.
  cat >"$RABBIT_BASE/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
collect_statistics_interval = 1000
loopback_users.guest = true
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $PROM_PORT
CONF
  echo '[rabbitmq_management,rabbitmq_prometheus].' >"$RABBIT_BASE/enabled_plugins"
  : >"$RABBIT_BASE/rabbitmq-env.conf"
  local nofile; nofile=$(nofile_for_node)
  if (( nofile < RABBIT_NOFILE )); then
    say "WARNING: RabbitMQ gets an open-file limit of $nofile (this shell's hard limit); RabbitMQ recommends" \
      "$RABBIT_NOFILE. Raise the hard limit (e.g. 'ulimit -Hn $RABBIT_NOFILE' as root, /etc/security/limits.conf)."
  fi
  say "starting RabbitMQ node $RABBIT_NODE on 127.0.0.1:$AMQP_PORT (data in $RABBIT_BASE, open files: $nofile)"
  ( ulimit -n "$nofile" 2>/dev/null || ulimit -Sn "$nofile"
    rabbit_env "$(rabbit_sbin)/rabbitmq-server" -detached ) \
    || fail "rabbitmq-server -detached failed; see $RABBIT_LOG"
}

stop_our_rabbit() { # asks the node to stop; a node that does not end within 30 s is killed (seen: 'stop' hung)
  local pid; pid=$(our_rabbit_pid) || return 0
  say "stopping RabbitMQ node $RABBIT_NODE (pid $pid)"
  rabbit_env timeout 30 "$(rabbit_sbin)/rabbitmqctl" -n "$RABBIT_NODE" -q stop >/dev/null 2>&1 || true
  stop_pid "$pid"
  rm -f "$RABBIT_PID"
}

stop_pid() { # TERM, then KILL after 15 s
  local pid=$1 i
  for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; [ "$i" = 10 ] && kill "$pid" 2>/dev/null; done
  kill -9 "$pid" 2>/dev/null || true
  sleep 1
}

unresponsive_message() {
  printf '%s\n' "RabbitMQ on 127.0.0.1:$AMQP_PORT accepts connections but sent no AMQP reply within ${AMQP_CHECK_SECONDS}s:" \
    "the node is stuck and every service would hang at start-up. Recover with:" \
    "    $RECOVER" \
    "It stops the node, wipes the local broker and database state ($RABBIT_BASE, $FERRET_DATA) and starts both fresh."
}

rabbit_up() {
  install_rabbitmq
  export PATH="$PATH:/usr/sbin"
  local state=0
  amqp_answers || state=$?
  if [ "$state" = 2 ]; then
    fail "$(unresponsive_message)"
  elif [ "$state" = 0 ] && ! our_rabbit_pid >/dev/null; then
    say "a broker already answers AMQP on 127.0.0.1:$AMQP_PORT (not this stack's node); reusing it"
    if ! port_open 127.0.0.1 "$MGMT_PORT"; then
      as_root rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
    fi
    # Quorum queues and their message TTL need the feature flags; enabling is idempotent.
    as_root rabbitmqctl -q enable_feature_flag all >/dev/null 2>&1 || true
  else
    if [ "$state" = 1 ] && ! our_rabbit_pid >/dev/null; then
      start_our_rabbit
    fi
    wait_for "RabbitMQ ($RABBIT_NODE, AMQP handshake on 127.0.0.1:$AMQP_PORT)" amqp_answers || {
      tail -n 20 "$RABBIT_LOG/$RABBIT_NODE.log" >&2 2>/dev/null || true
      fail "RabbitMQ did not answer AMQP within ${WAIT_SECONDS}s (log: $RABBIT_LOG). Recover with: $RECOVER"; }
    our_ctl rabbitmqctl -q enable_feature_flag all >/dev/null 2>&1 || true
  fi
  wait_for "RabbitMQ management (127.0.0.1:$MGMT_PORT)" port_open 127.0.0.1 "$MGMT_PORT" \
    || fail "the management plugin did not open port $MGMT_PORT"
}

build_ferretdb() {
  local src="$ROOT/deploy/ferretdb"
  if [ -x "$FERRET_BIN" ] && [ -z "$(find "$src" -newer "$FERRET_BIN" -type f 2>/dev/null)" ]; then return; fi
  command -v go >/dev/null || fail "Go is needed to build FerretDB (deploy/ferretdb); install golang"
  say "building FerretDB v1.24 (embedded, SQLite backend) with $(go version | cut -d' ' -f3)"
  mkdir -p "$(dirname "$FERRET_BIN")"
  (cd "$src" && go build -trimpath -o "$FERRET_BIN" .) || fail "go build of deploy/ferretdb failed"
}

# A database file without FerretDB's metadata table (left by a process killed while creating it) stops FerretDB
# from starting at all ("no such table: _ferretdb_collections"). Such a file holds no collections; move it
# aside rather than delete it, and say so.
quarantine_broken_databases() {
  python3 - "$FERRET_DATA" <<'PY' || true
import pathlib, sqlite3, sys
data = pathlib.Path(sys.argv[1])
for path in sorted(data.glob("*.sqlite")):
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            ok = db.execute("select count(*) from sqlite_master where name = '_ferretdb_collections'").fetchone()[0]
    except sqlite3.Error:
        ok = 0
    if not ok:
        target = data / "quarantine"
        target.mkdir(exist_ok=True)
        path.rename(target / path.name)
        print(f"[stack] moved {path.name} (no FerretDB metadata) to {target}", flush=True)
PY
}

ferret_up() {
  local host=${FERRET_LISTEN%:*} port=${FERRET_LISTEN##*:}
  if port_open "$host" "$port"; then
    say "a MongoDB-wire server already listens on $FERRET_LISTEN; reusing it"
    return
  fi
  build_ferretdb
  mkdir -p "$FERRET_DATA" "$(dirname "$FERRET_PID")" "$(dirname "$FERRET_LOG")"
  quarantine_broken_databases
  say "starting FerretDB on $FERRET_LISTEN (data in $FERRET_DATA, log in $FERRET_LOG)"
  nohup "$FERRET_BIN" -listen "$FERRET_LISTEN" -data-dir "$FERRET_DATA" >>"$FERRET_LOG" 2>&1 &
  echo $! >"$FERRET_PID"
  wait_for "FerretDB ($FERRET_LISTEN)" port_open "$host" "$port" \
    || { tail -n 20 "$FERRET_LOG" >&2; fail "FerretDB did not listen on $FERRET_LISTEN"; }
}

rabbit_status() {
  local state=0 pid owner limit
  amqp_answers || state=$?
  case $state in
    0)
      if pid=$(our_rabbit_pid); then owner="node $RABBIT_NODE, data in $RABBIT_BASE"
      else pid=$(listener_pid "$AMQP_PORT"); owner="not this stack's node: reused"; fi
      limit=$( [ -n "$pid" ] && open_file_limit "$pid" || true )
      say "RabbitMQ: answers AMQP on 127.0.0.1:$AMQP_PORT ($owner), management http://127.0.0.1:$MGMT_PORT"
      if [ -n "$limit" ]; then
        if [ "$limit" != unlimited ] && (( limit < RABBIT_NOFILE )); then
          say "RabbitMQ: open-file limit $limit (RabbitMQ recommends at least $RABBIT_NOFILE)"
          if ! our_rabbit_pid >/dev/null; then
            say "  to run this stack's own node instead: sudo rabbitmqctl stop; ipsflow stack up"
          fi
        else
          say "RabbitMQ: open-file limit $limit"
        fi
      fi ;;
    1) say "RabbitMQ: not running (nothing listens on 127.0.0.1:$AMQP_PORT); start it with: ipsflow stack up"; return 1 ;;
    *) say "RabbitMQ: NOT ANSWERING"; unresponsive_message | sed 's/^/[stack]   /'; return 1 ;;
  esac
}

status() {
  local rc=0
  rabbit_status || rc=1
  if port_open "${FERRET_LISTEN%:*}" "${FERRET_LISTEN##*:}"; then
    local sync
    # No log here means another checkout's FerretDB answers on the port (two clones on one machine): grep's
    # exit 2 for the missing file used to end `up` (set -e, pipefail) after everything had started.
    sync=$(grep -o 'sync [a-z]*$' "$FERRET_LOG" 2>/dev/null | tail -1 | cut -d' ' -f2 || true)
    if [ -f "$FERRET_PID" ] && kill -0 "$(cat "$FERRET_PID")" 2>/dev/null; then
      say "FerretDB: running (mongodb://$FERRET_LISTEN${sync:+, SQLite synchronous=$sync}, data in $FERRET_DATA)"
    else
      say "FerretDB: a MongoDB-wire server answers on mongodb://$FERRET_LISTEN (not this checkout's: reused, with its data)"
      say "  to run this checkout's own instead: stop it in the checkout that started it (make stack-down), or move"
      say "  this one: IPSFLOW_FERRETDB_LISTEN=127.0.0.1:27018 make test"
    fi
    # the code's pool default is PyMongo's (for MongoDB); FerretDB deadlocks above ~100 waiting operations
    say "  a service started by hand against it needs IPSFLOW_MONGO_POOL_SIZE=8 (ipsflow run and the tests set it)"
  else
    say "FerretDB: not running"; rc=1
  fi
  return $rc
}

stop_ferretdb() {
  if [ -f "$FERRET_PID" ] && kill -0 "$(cat "$FERRET_PID")" 2>/dev/null; then
    say "stopping FerretDB"; kill "$(cat "$FERRET_PID")"; stop_pid "$(cat "$FERRET_PID")"
  fi
  rm -f "$FERRET_PID"
}

down() {
  stop_ferretdb
  if our_rabbit_pid >/dev/null; then
    stop_our_rabbit
  elif amqp_answers; then
    say "the broker on 127.0.0.1:$AMQP_PORT is not this stack's node; left running (stop it with: sudo rabbitmqctl stop)"
  fi
}

# Wipes the local broker and database state and starts both fresh. A stuck broker on the port that is not ours
# (e.g. a system node an older version of this script started) is stopped, its data left where it is; a healthy
# one is left alone.
reset() {
  if [ "${1:-}" != "--yes" ]; then
    [ -t 0 ] || fail "reset wipes the local broker and database state; run it with --yes to confirm"
    printf '[stack] reset stops RabbitMQ and FerretDB and deletes %s and %s (every queue, message and document).\n' \
      "$RABBIT_BASE" "$FERRET_DATA"
    read -r -p "[stack] continue? [y/N] " answer
    case "$answer" in y|Y|yes|ja|j) ;; *) say "nothing changed"; exit 1 ;; esac
  fi
  stop_ferretdb
  if port_open "${FERRET_LISTEN%:*}" "${FERRET_LISTEN##*:}"; then
    fail "a MongoDB-wire server not started by this stack listens on $FERRET_LISTEN; stop it first"
  fi
  stop_our_rabbit
  local state=0 pid
  amqp_answers || state=$?
  if [ "$state" = 0 ]; then
    say "the broker on 127.0.0.1:$AMQP_PORT is not this stack's node and answers; reset leaves it and its data alone"
  elif [ "$state" = 2 ]; then
    pid=$(listener_pid "$AMQP_PORT")
    [ -n "$pid" ] || fail "a process that does not answer AMQP holds port $AMQP_PORT and its pid is not visible;" \
      "stop it (as root, 'ss -ltnp sport = :$AMQP_PORT' names it) and run reset again"
    [ "$(ps -o comm= -p "$pid")" = beam.smp ] || fail "port $AMQP_PORT is held by pid $pid ($(ps -o comm= -p "$pid")," \
      "not RabbitMQ) and does not answer AMQP; stop it or set IPSFLOW_RABBITMQ_PORT to another port"
    say "stopping the stuck RabbitMQ node on port $AMQP_PORT (pid $pid; not this stack's, its data stays where it is)"
    as_root kill "$pid" 2>/dev/null || true
    as_root bash -c "$(declare -f stop_pid); stop_pid $pid"
  fi
  say "deleting $RABBIT_BASE and $FERRET_DATA"
  rm -rf "$RABBIT_BASE" "$FERRET_DATA"
  rabbit_up; ferret_up; status
}

case "${1:-}" in
  up) rabbit_up; ferret_up; status ;;
  # only the RabbitMQ node (the chaos campaigns start it again after a kill -9; deploy/local/cluster.sh)
  rabbit-up) rabbit_up ;;
  rabbit-down) stop_our_rabbit ;;
  down) down ;;
  status) status ;;
  reset) reset "${2:-}" ;;
  # rabbitmqctl for the node this stack uses (ours, or the reused system node), e.g. the tests' broker restart.
  rabbitmqctl) shift
    if our_rabbit_pid >/dev/null; then our_ctl rabbitmqctl "$@"; else as_root env PATH="$PATH:/usr/sbin" rabbitmqctl "$@"; fi ;;
  *) echo "usage: $0 up|down|status|reset [--yes]|rabbitmqctl ARGS..." >&2; exit 2 ;;
esac
