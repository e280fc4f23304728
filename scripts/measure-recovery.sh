#!/usr/bin/env bash
# How long a raftkv node takes to come back after `kill -9`, for a given log size.
#
#   scripts/measure-recovery.sh [WRITES] [SNAPSHOT_EVERY]
#
# Starts a one-node cluster (release build) in a temporary directory, writes WRITES
# (default 100000) SETs of 256-byte values over 100,000 keys with redis-benchmark, kills
# the node with SIGKILL, starts it again, and reports the time from spawn until the node
# has applied its whole log (polling GET /status), plus the node's own log lines for the
# WAL recovery and the state-machine restore. SNAPSHOT_EVERY (default 0: never) sets
# `snapshot.every_entries`, to compare replaying the whole log with loading a snapshot.
# Needs redis-tools (redis-benchmark) and curl. Takes well under a minute.
set -euo pipefail
writes=${1:-100000}
snap_every=${2:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/raftkv"
[ -x "$bin" ] || cargo build --release -q -p server --manifest-path "$root/Cargo.toml"
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)"; exit 1; }

dir=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && { kill -9 "$pid" && wait "$pid"; } 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 10000))
cat > "$dir/node.toml" <<TOML
id = 1
data_dir = "$dir/data"
client_addr = "127.0.0.1:$port"
admin_addr = "127.0.0.1:$((port + 1))"
[peers]
1 = "127.0.0.1:$((port + 2))"
[snapshot]
every_entries = $snap_every
TOML
status() { curl -sf "http://127.0.0.1:$((port + 1))/status" || true; }
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -1; }
start() {
  "$bin" serve --config "$dir/node.toml" >>"$dir/node.log" 2>&1 &
  pid=$!
}

start
until [ -n "$(status)" ]; do sleep 0.05; done
until redis-cli -p "$port" set warm up >/dev/null 2>&1; do sleep 0.05; done
redis-benchmark -p "$port" -t set -n "$writes" -r 100000 -d 256 -c 16 -P 16 -q >/dev/null
last=$(status | field last_index)
[ -n "$last" ] || { echo "could not read last_index from /status"; exit 1; }
bytes=$(du -sb "$dir/data" | cut -f1)
{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null || true
: >"$dir/node.log"

t0=$(date +%s%N)
start
until [ "$(status | field applied_index)" = "$last" ]; do sleep 0.002; done
t1=$(date +%s%N)
echo "log: $last entries, $((bytes / 1024 / 1024)) MiB on disk (snapshot every $snap_every entries)"
echo "restart to fully applied: $(((t1 - t0) / 1000000)) ms (process spawn, WAL recovery, snapshot load, replay)"
grep -E "log recovered|state machine restored" "$dir/node.log" | sed 's/\x1b\[[0-9;]*m//g' | sed 's/^/  /'
