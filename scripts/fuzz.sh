#!/usr/bin/env bash
# Coverage-guided fuzzing of raftkv's decoders with AFL++ (cargo-afl, stable toolchain).
# See fuzz/README.md for the targets and what each asserts.
#
#   scripts/fuzz.sh TARGET [SECONDS]   soak one target (default 3600 s)
#   scripts/fuzz.sh all SECONDS        soak every target in turn, SECONDS each
#   scripts/fuzz.sh list               the targets
#   scripts/fuzz.sh build              install what is missing, build the harnesses
#   scripts/fuzz.sh replay [TARGET]    run the committed corpus (or one target's) through
#                                      the targets without AFL (a plain build)
#   scripts/fuzz.sh cmin TARGET        merge the last soak's queue into the committed
#                                      corpus, minimised with afl-cmin
#   scripts/fuzz.sh seeds              regenerate the seed inputs (valid encodings) into
#                                      fuzz/out/seeds/ (then `cmin` them into the corpus)
#
# Installs what it needs itself: Debian's build tools when missing, cargo-afl from
# crates.io (which builds AFL++ from its bundled source). Runs at `nice -n 19`. Soak
# output goes to fuzz/out/<target>/ (not committed); each soak appends its figures to
# fuzz/out/soaks.tsv and prints them: wall and CPU time (all processes of the soak, via
# a cpuacct cgroup when it can make one), execs, execs/s, corpus paths, edge coverage,
# crashes, hangs. Exits 1 if the soak saved a crash or a hang.
#
# Environment: FUZZ_CPU_SECONDS (end each soak after this much CPU time instead of
# SECONDS of wall time, which then only caps it), FUZZ_MEM_MB (AFL memory limit for the target, default 1024),
# FUZZ_TIMEOUT_MS (per input, default 2000).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
OUT="$FUZZ/out"
TARGETS=(resp peer_frame wal_record wal_segment hard_state snapshot_file kv_snapshot kv_entry seed_json config)
MEM_MB="${FUZZ_MEM_MB:-1024}"
TIMEOUT_MS="${FUZZ_TIMEOUT_MS:-2000}"

die() { echo "fuzz.sh: $*" >&2; exit 2; }

is_target() {
    local t
    for t in "${TARGETS[@]}"; do [[ "$t" == "$1" ]] && return 0; done
    return 1
}

install_deps() {
    if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
        echo "fuzz.sh: installing build tools (apt)" >&2
        apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
    fi
    if ! cargo afl --version >/dev/null 2>&1; then
        echo "fuzz.sh: installing cargo-afl (builds AFL++ from source, a few minutes)" >&2
        nice -n 19 cargo install cargo-afl --locked
    fi
    # cargo-afl builds AFL++ on install; a toolchain change needs it built again.
    # (afl-fuzz with no arguments prints its banner and usage, exiting non-zero.)
    if ! { cargo afl fuzz 2>&1 || true; } | grep -q 'afl-fuzz'; then
        nice -n 19 cargo afl config --build --force
    fi
}

build() {
    install_deps
    (cd "$FUZZ" && nice -n 19 cargo afl build --release --features afl)
}

build_plain() {
    (cd "$FUZZ" && nice -n 19 cargo build --bin replay --bin gen_corpus)
}

stat_of() { # stat_of FILE KEY
    awk -F' *: *' -v k="$2" '$1 == k { print $2 }' "$1"
}

soak() { # soak TARGET SECONDS
    local t="$1" secs="$2" dir="$OUT/$1"
    [[ -d "$FUZZ/corpus/$t" ]] || die "no corpus at fuzz/corpus/$t"
    rm -rf "$dir"
    mkdir -p "$OUT"
    echo "fuzz.sh: soaking $t for ${secs}s (output in fuzz/out/$t)" >&2
    local start end cpu_file rc=0 cg=""
    cpu_file="$(mktemp)"
    # CPU time: the harnesses run in AFL's persistent mode, one process for the whole
    # soak, killed (never reaped by its parent) when afl-fuzz stops, so `time` sees
    # afl-fuzz's own CPU only. A cpuacct cgroup (cgroup v1, needs root) counts everything;
    # without one the figure is afl-fuzz's alone and is marked with a `>`.
    local cg_root=/sys/fs/cgroup/cpuacct
    if [[ -w "$cg_root" ]] && mkdir "$cg_root/raftkv-fuzz-$t-$$" 2>/dev/null; then
        cg="$cg_root/raftkv-fuzz-$t-$$"
    fi
    # With FUZZ_CPU_SECONDS, the soak ends when it has used that much CPU (all its
    # processes, from the cgroup) rather than after SECONDS of wall time, which then only
    # caps it: on a shared machine an hour of wall time is far less than an hour of CPU.
    local watcher=""
    if [[ -n "${FUZZ_CPU_SECONDS:-}" ]]; then
        [[ -n "$cg" ]] || die "FUZZ_CPU_SECONDS needs a cpuacct cgroup (root, cgroup v1)"
        (
            while sleep 5; do
                used=$(awk '{ printf "%.0f", $1 / 1e9 }' "$cg/cpuacct.usage" 2>/dev/null) || exit 0
                if ((used >= FUZZ_CPU_SECONDS)); then
                    for pid in $(cat "$cg/tasks" 2>/dev/null); do
                        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == afl-fuzz ]] && kill -INT "$pid"
                    done
                    exit 0
                fi
            done
        ) &
        watcher=$!
    fi
    start=$(date +%s)
    # AFL_NO_UI: plain status lines; the machine is shared, so no core binding, no CPU
    # frequency check, and no core_pattern demands.
    (
        [[ -n "$cg" ]] && echo "$BASHPID" >"$cg/tasks"
        TIMEFORMAT='%U %S'
        time (
            AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 \
                AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CRASHES=1 \
                nice -n 19 cargo afl fuzz -i "$FUZZ/corpus/$t" -o "$dir" \
                -V "$secs" -m "$MEM_MB" -t "$TIMEOUT_MS" \
                "$FUZZ/target/release/$t" >"$OUT/$t.log" 2>&1
        )
    ) 2>"$cpu_file" || rc=$?
    end=$(date +%s)
    [[ -n "$watcher" ]] && { kill "$watcher" 2>/dev/null || true; }
    local stats="$dir/default/fuzzer_stats"
    if [[ ! -f "$stats" ]]; then
        tail -30 "$OUT/$t.log" >&2
        die "$t: afl-fuzz did not run (exit $rc); log in fuzz/out/$t.log"
    fi
    local cpu wall execs eps paths cvg crashes hangs
    if [[ -n "$cg" ]]; then
        # Stragglers (the killed harness) leave the cgroup as they exit.
        local pid
        for pid in $(cat "$cg/tasks"); do kill "$pid" 2>/dev/null || true; done
        sleep 1
        cpu=$(awk '{ printf "%.0f", $1 / 1e9 }' "$cg/cpuacct.usage")
        rmdir "$cg" 2>/dev/null || true
    else
        cpu=">$(awk 'END { printf "%.0f", $1 + $2 }' "$cpu_file")"
    fi
    rm -f "$cpu_file"
    wall=$((end - start))
    execs=$(stat_of "$stats" execs_done)
    paths=$(stat_of "$stats" corpus_count)
    cvg=$(stat_of "$stats" bitmap_cvg)
    crashes=$(stat_of "$stats" saved_crashes)
    hangs=$(stat_of "$stats" saved_hangs)
    eps=$(awk -v e="$execs" -v w="$wall" 'BEGIN { printf "%.0f", (w > 0 ? e / w : 0) }')
    [[ -f "$OUT/soaks.tsv" ]] ||
        printf 'date\ttarget\twall_s\tcpu_s\texecs\texecs_per_s\tpaths\tcoverage\tcrashes\thangs\n' >"$OUT/soaks.tsv"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$wall" "$cpu" \
        "$execs" "$eps" "$paths" "$cvg" "$crashes" "$hangs" >>"$OUT/soaks.tsv"
    echo "== $t: wall ${wall}s, cpu ${cpu}s, execs $execs (${eps}/s), paths $paths, coverage $cvg, crashes $crashes, hangs $hangs"
    if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
        echo "   findings in fuzz/out/$t/default/{crashes,hangs}/; reproduce with:" >&2
        echo "   scripts/fuzz.sh replay-files $t fuzz/out/$t/default/crashes" >&2
        return 1
    fi
}

cmd="${1:-}"
case "$cmd" in
    list)
        printf '%s\n' "${TARGETS[@]}"
        ;;
    build)
        build
        ;;
    replay)
        build_plain
        if [[ -n "${2:-}" ]]; then
            is_target "$2" || die "unknown target $2"
            "$FUZZ/target/debug/replay" "$2" "$FUZZ/corpus/$2"
        else
            "$FUZZ/target/debug/replay" all "$FUZZ/corpus"
        fi
        ;;
    replay-files)
        [[ $# -ge 3 ]] || die "usage: fuzz.sh replay-files TARGET PATH..."
        build_plain
        "$FUZZ/target/debug/replay" "${@:2}"
        ;;
    seeds)
        build_plain
        rm -rf "$OUT/seeds"
        "$FUZZ/target/debug/gen_corpus" "$OUT/seeds"
        ;;
    cmin)
        t="${2:-}"
        is_target "$t" || die "usage: fuzz.sh cmin TARGET"
        build
        tmp="$(mktemp -d)"
        mkdir -p "$tmp/in"
        for d in "$FUZZ/corpus/$t" "$OUT/$t/default/queue" "$OUT/seeds/$t"; do
            [[ -d "$d" ]] && find "$d" -maxdepth 1 -type f -exec cp {} "$tmp/in/" \;
        done
        # The bash afl-cmin: the python one (what `cargo afl cmin` runs) records no
        # coverage for these persistent-mode harnesses and would keep nothing.
        cmin_sh="$(find "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs" -path '*/afl/bin/afl-cmin.bash' | sort | tail -1)"
        [[ -n "$cmin_sh" ]] || die "afl-cmin.bash not found (cargo afl config --build)"
        PATH="$(dirname "$cmin_sh"):$PATH" AFL_SKIP_CPUFREQ=1 nice -n 19 "$cmin_sh" \
            -i "$tmp/in" -o "$tmp/min" -m "$MEM_MB" -t "$TIMEOUT_MS" \
            -- "$FUZZ/target/release/$t" >"$tmp/cmin.log" 2>&1 || true
        if [[ -z "$(ls -A "$tmp/min" 2>/dev/null)" ]]; then
            tail -c 2000 "$tmp/cmin.log" >&2
            rm -rf "$tmp"
            die "afl-cmin kept nothing; corpus left as it was"
        fi
        rm -rf "$FUZZ/corpus/$t"
        mkdir -p "$FUZZ/corpus/$t"
        # Content-addressed names: stable across runs, no duplicates.
        for f in "$tmp/min"/*; do
            cp "$f" "$FUZZ/corpus/$t/$(sha1sum "$f" | cut -c1-16)"
        done
        rm -rf "$tmp"
        echo "fuzz/corpus/$t: $(ls "$FUZZ/corpus/$t" | wc -l) inputs, $(du -sh "$FUZZ/corpus/$t" | cut -f1)"
        ;;
    all)
        secs="${2:-}"
        [[ "$secs" =~ ^[0-9]+$ ]] || die "usage: fuzz.sh all SECONDS"
        build
        failed=0
        for t in "${TARGETS[@]}"; do soak "$t" "$secs" || failed=1; done
        exit "$failed"
        ;;
    "" | -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        ;;
    *)
        is_target "$cmd" || die "unknown target or command $cmd (try: fuzz.sh list)"
        secs="${2:-3600}"
        [[ "$secs" =~ ^[0-9]+$ ]] || die "SECONDS must be a number"
        build
        soak "$cmd" "$secs"
        ;;
esac
