#!/usr/bin/env bash
# `make bench`: every benchmark in bench/ (built as BUILD/bench/bench_*), then the demo scenario
# with its detection quality against the generator's truth. Each benchmark prints a summary and,
# as its last line, one JSON object; the JSON objects are collected in bench/results/ (one file
# per benchmark, written by the benchmark itself, and demo.json from here) and printed again at
# the end. Run from anywhere: benchmarks run from the repository root, where ../shared/data is.
#
#   bash bench/run.sh [BUILD] [NAME...]     (NAME: throughput, store_bench, fraud_bench, ...)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
case $build in /*) ;; *) build=$root/$build ;; esac
cd "$root"
mkdir -p bench/results

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for b in "$build"/bench/bench_*; do
        [ -x "$b" ] && names+=("$(basename "$b" | sed 's/^bench_//')")
    done
    names+=(demo)
fi

failed=()
lines=()
for name in "${names[@]}"; do
    log=bench/results/$name.log
    echo "==== bench: $name"
    if [ "$name" = demo ]; then
        "$build"/valuestream demo 2>"$log.err" | tee "$log"
    else
        "$build/bench/bench_$name" 2>&1 | tee "$log"
    fi
    rc=${PIPESTATUS[0]}
    last=$(tail -n 1 "$log")
    if [ "$rc" -ne 0 ] || [ "${last:0:1}" != "{" ]; then
        echo "bench $name failed (exit $rc)" >&2
        failed+=("$name")
        continue
    fi
    [ "$name" = demo ] && echo "$last" >bench/results/demo.json
    rm -f "$log.err"
    lines+=("$last")
done

echo "==== bench: results (also in bench/results/)"
for l in "${lines[@]}"; do
    echo "$l"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
