#!/usr/bin/env bash
# Fuzz every parser of outside input: each cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS
# (default 600), one after the other, at nice 19, then a table per target: executions, corpus
# size, crashes (0 expected). Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable
# toolchain is told to accept cargo-fuzz's nightly flags (RUSTC_BOOTSTRAP=1).
#
#   bench/fuzz.sh [SECONDS] [TARGET...]    JOBS=2 bench/fuzz.sh   (two targets at a time)
#
# Each target starts from its committed seeds (fuzz/corpus/T) and regressions
# (fuzz/regressions/T) and grows a working corpus in fuzz/work/T (not committed; kept between
# runs). A crash, timeout (> 10 s on one input) or out-of-memory (> 2 GiB) input is written to
# fuzz/artifacts/T/; reproduce it with `cargo fuzz run T fuzz/artifacts/T/crash-…`, fix it and
# move it to fuzz/regressions/T/ so that `cargo test --test fuzz_corpus` replays it for good.
# Logs: fuzz/work/T.log.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
shift || true
JOBS=${JOBS:-1}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || {
    echo "bench/fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
echo "bench/fuzz.sh: building ${#targets[@]} targets" >&2
(cd fuzz && nice -n 19 cargo fuzz build >/dev/null 2>&1) || (cd fuzz && nice -n 19 cargo fuzz build)

run_one() {
    local t=$1 dirs=() before
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
    dirs=("fuzz/work/$t" "fuzz/corpus/$t")
    [[ -d fuzz/regressions/$t ]] && dirs+=("fuzz/regressions/$t")
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    # cargo fuzz run: builds if needed; artifacts go to fuzz/artifacts/T/.
    (cd fuzz && nice -n 19 cargo fuzz run "$t" "${dirs[@]/#fuzz\//}" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"work/$t.log" 2>&1) || true
    echo "$before" >"fuzz/work/$t.artifacts-before"
}

report_one() {
    local t=$1 log="fuzz/work/$1.log" execs rate corp crashes before
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    # The last status line: `#N DONE cov: C ft: F corp: UNITS/SIZE ...`.
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    before=$(cat "fuzz/work/$t.artifacts-before" 2>/dev/null || echo 0)
    crashes=$(( $(ls "fuzz/artifacts/$t" | wc -l) - before ))
    if grep -q '^==[0-9]*== ERROR: libFuzzer\|^SUMMARY: libFuzzer\|panicked at' "$log" && [[ $crashes == 0 ]]; then
        crashes="? (see $log)"
    fi
    printf '%-14s %12s %8s %16s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${corp:-?}" "$crashes"
}

pids=()
for t in "${targets[@]}"; do
    echo "bench/fuzz.sh: $t for ${SECS}s" >&2
    run_one "$t" &
    pids+=($!)
    if [[ ${#pids[@]} -ge $JOBS ]]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
done
wait

printf '\n%-14s %12s %8s %16s %8s\n' target executions exec/s corpus crashes
total=0
for t in "${targets[@]}"; do
    line=$(report_one "$t")
    echo "$line"
    c=$(awk '{print $5}' <<<"$line")
    [[ $c =~ ^[0-9]+$ ]] && total=$((total + c)) || total=$((total + 1))
done
echo "(corpus: units/bytes in the fuzzer's corpus at the end; crashes: new files in fuzz/artifacts/T/)"
[[ $total == 0 ]]
