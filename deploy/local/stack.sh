#!/usr/bin/env bash
# The local ipsflow stack without Docker: RabbitMQ from Debian, FerretDB v1.24 embedded in our own Go program.
# Usage: deploy/local/stack.sh up|down|status
# Idempotent: installs what is missing, reuses what already runs, waits until both answer.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="${IPSFLOW_LOCAL_DIR:-$ROOT/.local}"
FERRET_DATA="${IPSFLOW_FERRETDB_DATA:-$LOCAL/ferretdb}"
FERRET_LISTEN="${IPSFLOW_FERRETDB_LISTEN:-127.0.0.1:27017}"
FERRET_BIN="$LOCAL/bin/ipsflow-ferretdb"
FERRET_PID="$LOCAL/run/ferretdb.pid"
FERRET_LOG="$LOCAL/log/ferretdb.log"
WAIT_SECONDS="${IPSFLOW_STACK_WAIT:-90}"

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

rabbit_up() {
  install_rabbitmq
  export PATH="$PATH:/usr/sbin"
  as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  if rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    say "RabbitMQ already runs; reusing it"
  else
    say "starting RabbitMQ (rabbitmq-server -detached)"
    mkdir -p "$LOCAL"
    # Queue statistics every second instead of five, so `ipsflow queues` shows what just happened.
    printf 'collect_statistics_interval = 1000\nloopback_users.guest = true\n' >"$LOCAL/rabbitmq.conf"
    export RABBITMQ_CONFIG_FILE="$LOCAL/rabbitmq.conf"
    as_root env RABBITMQ_CONFIG_FILE="$LOCAL/rabbitmq.conf" rabbitmq-server -detached || fail "rabbitmq-server -detached failed; see /var/log/rabbitmq/"
    wait_for "RabbitMQ (AMQP 5672)" rabbitmq-diagnostics -q ping \
      || fail "RabbitMQ did not answer within ${WAIT_SECONDS}s; see /var/log/rabbitmq/"
  fi
  # Quorum queues and their message TTL need the feature flags; enabling is idempotent.
  as_root rabbitmqctl -q enable_feature_flag all >/dev/null 2>&1 || true
  wait_for "RabbitMQ management (15672)" port_open 127.0.0.1 15672 \
    || fail "the management plugin did not open port 15672"
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

status() {
  local rc=0
  if PATH="$PATH:/usr/sbin" rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    say "RabbitMQ: running (amqp://127.0.0.1:5672, management http://127.0.0.1:15672)"
  else
    say "RabbitMQ: not running"; rc=1
  fi
  if port_open "${FERRET_LISTEN%:*}" "${FERRET_LISTEN##*:}"; then
    local sync
    sync=$(grep -o 'sync [a-z]*$' "$FERRET_LOG" 2>/dev/null | tail -1 | cut -d' ' -f2)
    say "FerretDB: running (mongodb://$FERRET_LISTEN${sync:+, SQLite synchronous=$sync})"
  else
    say "FerretDB: not running"; rc=1
  fi
  return $rc
}

down() {
  if [ -f "$FERRET_PID" ] && kill -0 "$(cat "$FERRET_PID")" 2>/dev/null; then
    say "stopping FerretDB"; kill "$(cat "$FERRET_PID")"; rm -f "$FERRET_PID"
  fi
  if PATH="$PATH:/usr/sbin" rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    say "stopping RabbitMQ"; as_root env PATH="$PATH:/usr/sbin" rabbitmqctl -q stop >/dev/null || true
  fi
}

case "${1:-}" in
  up) rabbit_up; ferret_up; status ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
