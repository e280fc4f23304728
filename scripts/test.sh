#!/usr/bin/env bash
# The test suite, as CI runs it. Installs what it needs, then: formatting, lints, unit and
# integration tests, the release build of the seed replica, and all 17 harness scenarios
# against it (correctness asserted; performance tiers reported, not asserted).
#
# Length: about 8-10 minutes on a 2-core machine (most of it the 17 scenarios, run three
# at a time), plus about 4 minutes of raftkv-nemesis (its two tests and a 3-minute run of
# real faults on a 3-node cluster in network namespaces; needs root, as CI is).
# Set RAFTKV_SKIP_SCENARIOS=1 to skip the scenarios, RAFTKV_SKIP_NEMESIS=1 the 3-minute run.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
  echo "cargo is required (rustup toolchain)" >&2
  exit 1
fi
missing=()
need python3 || missing+=(python3)          # test fixtures that stand in for bad replicas
need redis-cli || missing+=(redis-tools)    # redis-cli and redis-benchmark against raftkv up
need redis-server || missing+=(redis-server)  # tests/compat.rs: the same script against real Redis
need ip || missing+=(iproute2)              # raftkv-nemesis: network namespaces, veth, bridge
need nft || missing+=(nftables)             # raftkv-nemesis: partitions
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(libfaketime)  # clock faults
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# tests/compat.rs: redis-py with its defaults (RESP3) against raftkv. Pinned.
if ! python3 -c 'import redis, sys; sys.exit(redis.__version__ != "8.1.0")' 2>/dev/null; then
  echo "== installing redis-py 8.1.0"
  python3 -m pip install -q redis==8.1.0 2>/dev/null \
    || python3 -m pip install -q --break-system-packages redis==8.1.0
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== make (release build of ./3700kvstore and kvsim)"
make
cargo build --release -p sim --bin kvsim
# The nemesis tests (crates/nemesis/tests) run the release raftkv.
cargo build --release -p server -p nemesis
echo "== cargo test"
cargo test --workspace
# fuzz/ is its own workspace (cargo-afl's features), so the line above never builds it;
# its harness functions, and later its gen_corpus tool, once stopped compiling unnoticed.
# Built here with the main target directory (the plain tools too, `--bins`; the AFL
# targets need cargo-afl), its unit tests run on the same code the targets fuzz.
echo "== fuzz harnesses (cargo test --lib --bins in fuzz/)"
(cd fuzz && CARGO_TARGET_DIR=../target cargo test --lib --bins)
if [ "${RAFTKV_SKIP_SCENARIOS:-0}" != 1 ]; then
  # A fixed seed makes the harness's own choices (clients, keys, drops, partitions) the
  # same on every run, so a verdict can be replayed; RAFTKV_HARNESS_SEED picks another.
  seed="${RAFTKV_HARNESS_SEED:-1000}"
  echo "== kvsim harness all (17 scenarios, 3 at a time, --seed $seed)"
  if ! ./target/release/kvsim harness --silence --jobs 3 --seed "$seed" \
      --json target/ci-harness.json all; then
    # Say why each failing scenario failed (the summary lines do not).
    python3 - <<'EOF'
import json
d = json.load(open("target/ci-harness.json"))
for s in d["scenarios"]:
    r = s["report"]
    if not r["passed"]:
        print(f"{r['name']} (seed {r.get('seed')}):")
        for e in r.get("correctness_errors", []):
            print("   ", e)
        lin = r.get("linearizability", {})
        if lin.get("verdict") != "linearizable":
            print("    linearizability:", json.dumps(lin)[:2000])
EOF
    exit 1
  fi
fi
if [ "${RAFTKV_SKIP_NEMESIS:-0}" != 1 ]; then
  # Ninety seconds of real faults on a real three-node cluster; the verdict is the gate
  # (crates/nemesis/README.md; the long soaks are there). A fixed seed picks the same fault
  # schedule every run.
  echo "== raftkv-nemesis, 3 nodes, 90 s, all faults"
  ./target/release/raftkv-nemesis --nodes 3 --duration 90 --seed "${RAFTKV_NEMESIS_SEED:-1}" \
    --raftkv target/release/raftkv --json target/ci-nemesis.json
fi
