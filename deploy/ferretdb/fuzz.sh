#!/usr/bin/env bash
# One bounded fuzz run of a target of the FerretDB front: fuzz.sh <target> <fuzztime>.
#
# Go's fuzzing coordinator sometimes ends a run with "context deadline exceeded" and no failing input: on a busy
# machine a worker did not answer before -fuzztime was over (CI saw it with the executions standing still at
# 0/sec). That says nothing about the parser, so such a run is run once more; a run that found an input (Go writes
# it under testdata/fuzz/<target>/ and prints "Failing input written to") fails at once, as does a second stall.
set -uo pipefail
cd "$(dirname "$0")"
target=$1 fuzztime=$2
for attempt in 1 2; do
  log=$(mktemp)
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" . 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then rm -f "$log"; exit 0; fi
  if [ "$attempt" -eq 1 ] && grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input written" "$log"; then
    echo "[go-test] $target: the fuzzing coordinator timed out waiting for a worker (no failing input); once more"
    rm -f "$log"
    continue
  fi
  rm -f "$log"
  exit "$status"
done
