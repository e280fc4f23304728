#!/usr/bin/env bash
# TEST ONLY: our replica with reads served from local state, no lease or ReadIndex.
# Used to show the harness's linearizability check catches stale reads:
#   ./target/release/kvsim harness --replica scripts/stale-replica.sh partition-4
RAFTKV_UNSAFE_STALE_READS=1 exec "$(dirname "$0")/../3700kvstore" "$@"
