#!/usr/bin/env bash
# N events in -> every offset processed, the expected outputs out; a second run over the same
# input and a fresh state gives identical state (determinism).
. "$(dirname "$0")/lib.sh"
start_broker 4
"$VS_BIN" gen --customers 3000 --items 200 --events 20000 --days 30 --seed 3 \
    --bootstrap "$BOOTSTRAP" --topic shop.events --truth "$WORK/truth.csv" >"$WORK/gen.json" 2>"$WORK/gen.log"
N=$(metric "$WORK/gen.json" events)
run() { # state-dir metrics-file group
    "$VS_BIN" run --until-end --set bootstrap.servers="$BOOTSTRAP" --set state.dir="$1" \
        --set metrics.file="$2" --set group.id="$3" --set log.level=warn ${VS_TEST_SET:-}
}
run "$WORK/s1" "$WORK/m1.json" g1
processed=$(metric "$WORK/m1.json" events.processed)
dead=$(metric "$WORK/m1.json" events.deadlettered)
assert_eq "$N" $((processed + dead)) "processed + dead-lettered"
assert_eq 0 "$dead" "dead letters of a clean stream"
assert_gt "$(metric "$WORK/m1.json" outputs.vs.profiles)" 0 "profiles emitted"
assert_gt "$(metric "$WORK/m1.json" recommend.blend.tests)" 100 "tests of the blend's mixes"
assert_cmp "$(metric "$WORK/m1.json" recommend.blend.trending.weight)" 'v > 0' \
    "the blend's trending weight"
assert_eq 0 "$(metric "$WORK/m1.json" outputs.failed)" "failed deliveries"
assert_gt "$(metric "$WORK/m1.json" memory.trims)" 0 "free memory handed back (memory.trim.interval.ms)"
assert_eq 0 "$(metric "$WORK/m1.json" input.pauses)" "partitions paused (the whole input fits input.buffer.mb)"
"$VS_BIN" inspect --state "$WORK/s1" --all --json > "$WORK/state1.json"
assert_eq 3000 "$(wc -l < "$WORK/state1.json")" "customers in the state"

run "$WORK/s2" "$WORK/m2.json" g2
"$VS_BIN" inspect --state "$WORK/s2" --all --json > "$WORK/state2.json"
cmp "$WORK/state1.json" "$WORK/state2.json" && echo "ok: two runs give identical state"
for k in outputs.vs.profiles outputs.vs.recommendations outputs.vs.churn-alerts outputs.vs.fraud-alerts \
    recommend.blend.tests recommend.blend.model.weight recommend.blend.trending.weight; do
    assert_eq "$(metric "$WORK/m1.json" $k)" "$(metric "$WORK/m2.json" $k)" "$k in both runs"
done
# A customer cache far smaller than the customers: commits forced by the full cache hold
# processing back until they are written, and change nothing in the result (nor does handing
# free memory back, here never, nor pausing partitions whose input buffers are full).
VS_TEST_SET="${VS_TEST_SET:-} --set state.cache.mb=1 --set memory.trim.interval.ms=0 \
    --set input.buffer.mb=1" run "$WORK/s3" "$WORK/m3c.json" g3
assert_gt "$(metric "$WORK/m3c.json" commits.cache.full)" 0 "commits forced by the full cache"
assert_gt "$(metric "$WORK/m3c.json" input.pauses)" 0 "partitions paused with a 1 MiB input buffer"
assert_eq 0 "$(metric "$WORK/m3c.json" memory.trims)" "trims with memory.trim.interval.ms=0"
"$VS_BIN" inspect --state "$WORK/s3" --all --json > "$WORK/state3.json"
cmp "$WORK/state1.json" "$WORK/state3.json" && echo "ok: a 1 MiB cache gives identical state"
for k in outputs.vs.profiles outputs.vs.recommendations outputs.vs.churn-alerts outputs.vs.fraud-alerts; do
    assert_eq "$(metric "$WORK/m1.json" $k)" "$(metric "$WORK/m3c.json" $k)" "$k with a 1 MiB cache"
done
# Full ALS sweeps every day of event time run on the thread pool, but where each lands depends on
# event time only: two runs, one with a 1 MiB cache, give the same state, and not the state of
# the runs without sweeps.
VS_TEST_SET="${VS_TEST_SET:-} --set recommend.als.interval.ms=86400000" run "$WORK/s5" "$WORK/m5s.json" g5
VS_TEST_SET="${VS_TEST_SET:-} --set recommend.als.interval.ms=86400000 --set state.cache.mb=1" \
    run "$WORK/s6" "$WORK/m6s.json" g6
assert_gt "$(metric "$WORK/m5s.json" recommend.als.sweeps)" 25 "full ALS sweeps applied in 30 days"
assert_eq 0 "$(metric "$WORK/m5s.json" recommend.als.failures)" "full ALS sweeps refused"
assert_gt "$(metric "$WORK/m5s.json" recommend.als.rows)" 100 "item rows the last sweep solved"
"$VS_BIN" inspect --state "$WORK/s5" --all --json > "$WORK/state5.json"
"$VS_BIN" inspect --state "$WORK/s6" --all --json > "$WORK/state6.json"
cmp "$WORK/state5.json" "$WORK/state6.json" && echo "ok: two runs with sweeps give identical state"
for k in outputs.vs.recommendations recommend.als.sweeps recommend.live.hits; do
    assert_eq "$(metric "$WORK/m5s.json" $k)" "$(metric "$WORK/m6s.json" $k)" "$k in both runs with sweeps"
done
if cmp -s "$WORK/state1.json" "$WORK/state5.json"; then
    echo "FAIL: the sweeps changed no list"; exit 1
fi
# A third run over the same state finds nothing new: exactly-once state effects.
run "$WORK/s1" "$WORK/m3.json" g1
assert_eq 0 "$(metric "$WORK/m3.json" events.processed)" "events reprocessed after a clean stop"
# input.assignment=all: every partition taken without a group join gives the same state, and a
# restart consumes without waiting for one. The embedded broker delays a group's first join by
# 3 s (group.initial.rebalance.delay.ms): the group runs above cannot start sooner, these must.
VS_TEST_SET="${VS_TEST_SET:-} --set input.assignment=all" run "$WORK/s4" "$WORK/m4.json" g4
"$VS_BIN" inspect --state "$WORK/s4" --all --json > "$WORK/state4.json"
cmp "$WORK/state1.json" "$WORK/state4.json" && echo "ok: input.assignment=all gives identical state"
assert_cmp "$(metric "$WORK/m1.json" run.first.record.seconds)" 'v >= 3.0' \
    "seconds to the first record with a group join"
"$VS_BIN" gen --customers 3000 --items 200 --events 2000 --days 30 --seed 4 \
    --bootstrap "$BOOTSTRAP" --topic shop.events >"$WORK/gen2.json" 2>"$WORK/gen2.log"
VS_TEST_SET="${VS_TEST_SET:-} --set input.assignment=all" run "$WORK/s4" "$WORK/m5.json" g4
assert_eq "$(metric "$WORK/gen2.json" events)" "$(metric "$WORK/m5.json" events.processed)" \
    "events processed by a restart with input.assignment=all"
assert_cmp "$(metric "$WORK/m5.json" run.first.record.seconds)" 'v < 2.5' \
    "seconds to the first record of a restart with input.assignment=all"
# One thread's CPU time cannot exceed the wall time it ran in.
assert_cmp "$(metric "$WORK/m1.json" run.loop.cpu.seconds)" \
    "v > 0 && v <= $(metric "$WORK/m1.json" run.busy.seconds) + 0.01" \
    "the loop thread's CPU seconds, within the busy seconds"
