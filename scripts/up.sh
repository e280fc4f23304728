#!/usr/bin/env bash
# The main job: builds raftkv and starts a local three-node cluster (data under ./data,
# RESP on ports 7001-7003, status pages on 7201-7203) until Ctrl-C. The next run finds
# its data again. Extra arguments go to `raftkv up` (see crates/server/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)" >&2; exit 1; }
cargo build --release -p server --bin raftkv
exec ./target/release/raftkv up "$@"
