#!/usr/bin/env bash
# The main job. Today: builds the seed replica and runs a local five-replica cluster of it
# under our rebuilt course harness (scenario simple-1, about 40 s), printing the report.
# The durable cluster server (`raftkv up`) replaces this once cluster mode lands.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)" >&2; exit 1; }
make
cargo build --release -p sim --bin kvsim
exec ./target/release/kvsim harness "${1:-simple-1}"
