#!/usr/bin/env bash
# Three RabbitMQ nodes on this machine, joined into one cluster: for trying what a cluster survives (the chaos
# campaign kills one node with kill -9 during a burst; tests/integration/test_chaos_campaign.py, make chaos).
#
#   deploy/local/cluster.sh up | down | status | urls
#
# Each node is a Debian rabbitmq-server started by deploy/local/stack.sh (rabbit-up) with a name, ports and a data
# directory of its own: node i (1..3) is $NAME-i@localhost, AMQP on port ${PORTS[i]}, management on ${MGMT[i]}
# (Erlang distribution on AMQP + 20000, Prometheus on management + 20, as stack.sh does), data in $BASE/rabbit<i>.
# The three share one Erlang cookie (written here), nodes 2 and 3 join node 1. The services' queues are quorum
# queues (servicekit/broker.py, x-queue-type), so each gets a replica on every node that is up when it is declared;
# point the services at all three with IPSFLOW_AMQP_URL="$(deploy/local/cluster.sh urls)".
#
# `up` again after a node died starts that node; it rejoins the cluster from its data directory by itself.
# Settings: IPSFLOW_CLUSTER_DIR (default .local/cluster), IPSFLOW_CLUSTER_NAME (ipsflowc),
# IPSFLOW_CLUSTER_PORTS ("5681 5682 5683"), IPSFLOW_CLUSTER_MANAGEMENT_PORTS ("15681 15682 15683").
# The shared stack (ipsflow@localhost on 5672) is not touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/deploy/local/stack.sh"
BASE="${IPSFLOW_CLUSTER_DIR:-$ROOT/.local/cluster}"
NAME="${IPSFLOW_CLUSTER_NAME:-ipsflowc}"
read -r -a PORTS <<<"${IPSFLOW_CLUSTER_PORTS:-5681 5682 5683}"
read -r -a MGMT <<<"${IPSFLOW_CLUSTER_MANAGEMENT_PORTS:-15681 15682 15683}"

say() { printf '[cluster] %s\n' "$*"; }
fail() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }
(( ${#PORTS[@]} == 3 && ${#MGMT[@]} == 3 )) || fail "three AMQP and three management ports are needed"

node() { echo "$NAME-$1@localhost"; }
# stack.sh for node i (1..3): only its RabbitMQ part is used (rabbit-up, rabbit-down, rabbitmqctl)
on() {
  local i=$1; shift
  env IPSFLOW_LOCAL_DIR="$BASE/node$i" IPSFLOW_RABBITMQ_DIR="$BASE/rabbit$i" \
    IPSFLOW_RABBITMQ_PORT="${PORTS[$((i - 1))]}" IPSFLOW_RABBITMQ_MANAGEMENT_PORT="${MGMT[$((i - 1))]}" \
    IPSFLOW_RABBITMQ_NODENAME="$(node "$i")" bash "$STACK" "$@"
}

cookie() { # one Erlang cookie for the three (HOME of each node is its data directory: stack.sh rabbit_env)
  mkdir -p "$BASE"
  [ -s "$BASE/cookie" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$BASE/cookie")
  local i
  for i in 1 2 3; do
    mkdir -p "$BASE/rabbit$i"
    if ! cmp -s "$BASE/cookie" "$BASE/rabbit$i/.erlang.cookie" 2>/dev/null; then
      rm -f "$BASE/rabbit$i/.erlang.cookie"
      install -m 400 "$BASE/cookie" "$BASE/rabbit$i/.erlang.cookie"
    fi
  done
}

member() { # is node $1 running in a cluster with node 1?
  on "$1" rabbitmqctl -q cluster_status 2>/dev/null | grep -q "$(node 1)"
}

up() {
  cookie
  local i pids=()
  for i in 1 2 3; do  # started side by side: each takes tens of seconds on a busy machine
    on "$i" rabbit-up >"$BASE/up$i.log" 2>&1 &
    pids+=("$!")
  done
  for i in 1 2 3; do
    wait "${pids[$((i - 1))]}" || { cat "$BASE/up$i.log" >&2; fail "node $(node "$i") did not start"; }
  done
  for i in 2 3; do
    if ! member "$i"; then
      say "joining $(node "$i") to $(node 1)"
      on "$i" rabbitmqctl -q stop_app
      on "$i" rabbitmqctl -q reset
      on "$i" rabbitmqctl -q join_cluster "$(node 1)"
      on "$i" rabbitmqctl -q start_app
    fi
  done
  on 1 rabbitmqctl -q enable_feature_flag all >/dev/null 2>&1 || true
  printf '{"amqp": [%s, %s, %s], "management": [%s, %s, %s], "nodes": ["%s", "%s", "%s"]}\n' \
    "${PORTS[@]}" "${MGMT[@]}" "$(node 1)" "$(node 2)" "$(node 3)" >"$BASE/cluster.json"
  status
}

down() {
  local i
  for i in 3 2 1; do on "$i" rabbit-down || true; done
}

status() {
  on 1 rabbitmqctl -q cluster_status 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | sed -n '/Running Nodes/,/Versions/p' \
    || say "node 1 does not answer"
  say "IPSFLOW_AMQP_URL=$(urls)"
}

urls() {
  local i out=()
  for i in 0 1 2; do out+=("amqp://guest:guest@127.0.0.1:${PORTS[$i]}/"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  urls) urls ;;
  *) echo "usage: $0 up|down|status|urls" >&2; exit 2 ;;
esac
