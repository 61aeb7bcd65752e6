#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60): the bounded form CI calls.
#
#   fuzz/run.sh [SECONDS]
#
# Needs only the stable Rust toolchain and a C++ compiler (g++: libfuzzer-sys builds libFuzzer
# with the cc crate; clang is not needed). cargo fuzz passes nightly flags (-Zsanitizer=address
# and others); RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. cargo-fuzz is installed
# from crates.io when missing.
#
# Exits non-zero when a target crashes, fails an assertion, hangs on one input (-timeout) or
# runs out of memory (-rss_limit_mb); the input that did it is left in fuzz/artifacts/TARGET/.
# Every step has a time limit, so the total is bounded: installing cargo-fuzz (at most 20 min;
# 1-3 min here), building the targets (at most 30 min; 5-10 min from scratch on 2 cores, seconds
# after that), then each target for SECONDS (killed at SECONDS + 120 s if it overruns).
set -euo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
readonly CARGO_FUZZ_VERSION=0.13.2
readonly TARGETS=(logline policy_request control_request tcprules_base socketmap_request dovecot_policy_request)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    timeout 1200 cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
if ! command -v c++ >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "== installing g++ (libfuzzer-sys builds libFuzzer with it)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        echo "fuzz/run.sh: no C++ compiler (c++): libfuzzer-sys needs one (Debian: apt-get install g++)" >&2
        exit 2
    fi
fi

# The log lines of the parser tests seed the log-line target: each line alone, and runs of
# eight lines (popa3d, solid-pop3d and Mailutils join a login to an earlier line). The first
# byte is the target's settings: 0 detects the format.
seed_logs() {
    local dir=corpus/logline f name n chunk line
    mkdir -p "$dir"
    for f in ../tests/data/logs/*.log; do
        name=$(basename "$f" .log)
        n=0
        chunk=
        while IFS= read -r line || [[ -n $line ]]; do
            n=$((n + 1))
            printf '\0%s' "$line" >"$dir/$name-$n"
            chunk+="$line"$'\n'
            if ((n % 8 == 0)); then
                printf '\0%s' "$chunk" >"$dir/$name-lines-$((n - 7))-$n"
                chunk=
            fi
        done <"$f"
    done
}
seed_logs

echo "== building the fuzz targets"
timeout 1800 cargo fuzz build

mkdir -p logs
failed=()
for t in "${TARGETS[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "corpus/$t"
    # The first directory collects new inputs; seeds/ holds the hand-made ones, read only.
    set +e
    timeout --kill-after=10 $((secs + 120)) \
        cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    status=$?
    set -e
    grep -E '^(#[0-9]+ +(INITED|DONE)|stat::(number_of_executed_units|peak_rss_mb)|Done [0-9]+ runs)' \
        "logs/$t.log" || true
    if [[ $status -ne 0 ]]; then
        echo "!! $t failed (exit $status); log: fuzz/logs/$t.log, input: fuzz/artifacts/$t/" >&2
        tail -n 40 "logs/$t.log" >&2
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz/run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/run.sh: ${#TARGETS[@]} targets ran ${secs}s each without a finding"
