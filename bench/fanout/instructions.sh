#!/usr/bin/env bash
# The user-space instructions a fan-out server spends per delivery, counted by valgrind
# (cachegrind), which counts the same whatever the machine's load. It runs the server
# under cachegrind twice, with M1 and then M2 broadcasts to N /watch subscribers, and
# divides the difference of the totals by the difference of the deliveries, so the
# start-up and the connections cancel out.
#
#   bench/fanout/instructions.sh eric  target/release/eric         200 100 300
#   bench/fanout/instructions.sh floor target/fanout-floor/release/fanout-floor 200 100 300
#
# Needs valgrind and a release build of eric-fanout (cargo build --release -p eric-fanout).
set -euo pipefail
kind=$1 server=$2 n=$3 m1=$4 m2=$5
fanout=${ERIC_FANOUT:-target/release/eric-fanout}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prints the instructions and the deliveries of one run with $1 broadcasts.
run() {
  local port=$((20000 + RANDOM % 20000)) target pid
  if [ "$kind" = floor ]; then
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$tmp/cg" \
      "$server" "127.0.0.1:$port" 2>/dev/null &
    target=nchan
  else
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$tmp/cg" \
      "$server" serve --socket "$tmp/eric.sock" --http "127.0.0.1:$port" --log-level warn 2>/dev/null &
    target=eric
  fi
  pid=$!
  for _ in $(seq 150); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  local delivered
  delivered=$("$fanout" --target "$target" --url "http://127.0.0.1:$port" --subscribers "$n" \
    --messages "$1" --idle-seconds 0 --publishers 8 --drain-timeout 60 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["delivered"])')
  kill -TERM "$pid"
  wait "$pid" || true
  echo "$(sed -n 's/^summary: //p' "$tmp/cg") $delivered"
}

read -r ir1 d1 < <(run "$m1")
read -r ir2 d2 < <(run "$m2")
echo "$kind: $(( (ir2 - ir1) / (d2 - d1) )) instructions per delivery ($ir1 over $d1 deliveries, $ir2 over $d2)"
