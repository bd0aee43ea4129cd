#!/usr/bin/env bash
# Where the engine's loop thread spends its time: one replay under `perf record` with DWARF call
# graphs, then the share of the loop thread's samples in each function, inclusive of what it
# calls (bench/perf_shares.py). This is how the loop profiles quoted in the closing notes and
# the source comments were taken. Needs perf (Debian: linux-perf) and python3.
#
#   bash bench/loop_profile.sh [BUILD] [OPERATORS] [EVENTS]   (build, profile, 500000)
#
# VS_EXTRA_SET=key=value adds one more setting to the replay (e.g. fraud.emit=all).
#
# The topic is the throughput benchmark's: EVENTS events of EVENTS/50 customers over 32
# partitions on the embedded broker (`valuestream broker`), replayed with input.assignment=all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
ops=${2:-profile}
events=${3:-500000}
case $build in /*) ;; *) build=$root/$build ;; esac
vs=$build/valuestream
for tool in perf python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "loop_profile: $tool not found (Debian: apt-get install linux-perf python3)" >&2
        exit 2
    fi
done
[ -x "$vs" ] || { echo "loop_profile: $vs not built (run make)" >&2; exit 2; }

work=$(mktemp -d /tmp/vs-loop-profile-XXXXXX)
broker=
cleanup() {
    [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
"$vs" broker --partitions 32 --bootstrap-file "$work/bootstrap" >"$work/broker.log" 2>&1 &
broker=$!
for _ in $(seq 100); do [ -s "$work/bootstrap" ] && break; sleep 0.1; done
bs=$(sed 's/^bootstrap.servers=//' "$work/bootstrap")
"$vs" gen --customers $((events / 50)) --events "$events" --bootstrap "$bs" \
    --topic shop.events >/dev/null
perf record -q -F 1500 --call-graph dwarf,16384 -o "$work/perf.data" \
    "$vs" run --until-end --set bootstrap.servers="$bs" --set operators="$ops" \
    --set input.assignment=all --set state.dir="$work/state" \
    --set metrics.file="$work/metrics.json" ${VS_EXTRA_SET:+--set "$VS_EXTRA_SET"} >"$work/run.log" 2>&1
grep -o '"run.busy.seconds":[0-9.]*' "$work/metrics.json" || true
# The loop thread is the process's main thread: its tid is the pid.
pid=$( (perf script -i "$work/perf.data" -F pid 2>/dev/null || true) | head -n 1 | tr -d ' ')
perf script -i "$work/perf.data" --tid "$pid" -F ip,sym 2>/dev/null >"$work/loop.txt"
python3 "$root/bench/perf_shares.py" "$work/loop.txt" 60
