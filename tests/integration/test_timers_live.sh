#!/usr/bin/env bash
# Event-time timers fire by watermark, and in live mode by idle timeout: replaying history with
# --until-end fires only the churn checks that the stream's own event time passes; running
# live, idle partitions' watermarks follow the wall clock (months after this history), so every
# pending churn check fires.
. "$(dirname "$0")/lib.sh"
start_broker 4
"$VS_BIN" gen --customers 1500 --items 300 --events 60000 --days 120 --seed 9 \
    --bootstrap "$BOOTSTRAP" --topic shop.events >"$WORK/gen.json" 2>"$WORK/gen.log"
"$VS_BIN" run --until-end --set bootstrap.servers="$BOOTSTRAP" --set state.dir="$WORK/replay" \
    --set group.id=replay --set metrics.file="$WORK/replay.json" --set log.level=error \
    --set topic.churn.alerts=replay.churn ${VS_TEST_SET:-}
replay_fired=$(metric "$WORK/replay.json" timers.fired)
replay_alerts=$(metric "$WORK/replay.json" outputs.replay.churn)
assert_gt "$replay_fired" 0 "timers fired by the stream's watermark"
"$VS_BIN" run --set bootstrap.servers="$BOOTSTRAP" --set state.dir="$WORK/live" \
    --set group.id=live --set metrics.file="$WORK/live.json" --set log.level=error \
    --set idle.timeout.ms=50 --set topic.churn.alerts=live.churn --set metrics.interval.ms=200 \
    ${VS_TEST_SET:-} &
pid=$!
# Every event processed, then the idle partitions' watermarks jump to the wall clock and the
# pending churn checks fire: wait for both (bounded), then drain.
wait_metric "$WORK/live.json" events.processed "$(metric "$WORK/gen.json" events)" 300
wait_metric "$WORK/live.json" outputs.live.churn $((replay_alerts + 1)) 120
# Catching up on the history was not late: the watermarks moved to the wall clock only once
# each partition was at its end. Events of the past that arrive now are.
assert_eq 0 "$(metric "$WORK/live.json" events.late)" "late events while catching up"
"$VS_BIN" gen --customers 100 --items 300 --events 3000 --days 120 --seed 10 \
    --bootstrap "$BOOTSTRAP" --topic shop.events >"$WORK/gen2.json" 2>>"$WORK/gen.log"
total=$(($(metric "$WORK/gen.json" events) + $(metric "$WORK/gen2.json" events)))
wait_metric "$WORK/live.json" events.processed "$total" 120
kill -TERM $pid
wait $pid
live_alerts=$(metric "$WORK/live.json" outputs.live.churn)
assert_gt "$live_alerts" "$replay_alerts" "churn alerts once idle watermarks follow the wall clock"
assert_eq "$(metric "$WORK/gen2.json" events)" "$(metric "$WORK/live.json" events.late)" \
    "late events counted (and still processed)"
assert_eq "$total" "$(metric "$WORK/live.json" events.processed)" "events processed live"
