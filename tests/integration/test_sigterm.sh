#!/usr/bin/env bash
# SIGTERM mid-stream: the engine drains and exits 0; a restart continues from the committed
# offsets, so over both runs every event is processed exactly once.
. "$(dirname "$0")/lib.sh"
start_broker 8
"$VS_BIN" gen --customers 5000 --items 500 --events 200000 --days 60 --seed 5 \
    --bootstrap "$BOOTSTRAP" --topic shop.events >"$WORK/gen.json" 2>"$WORK/gen.log"
N=$(metric "$WORK/gen.json" events)
"$VS_BIN" run --set bootstrap.servers="$BOOTSTRAP" --set state.dir="$WORK/s" \
    --set metrics.file="$WORK/m1.json" --set log.level=warn ${VS_TEST_SET:-} &
pid=$!
sleep 2
kill -TERM $pid
rc=0; wait $pid || rc=$?
assert_eq 0 "$rc" "exit status after SIGTERM"
first=$(metric "$WORK/m1.json" events.processed)
echo "first run processed $first events before SIGTERM"
"$VS_BIN" run --until-end --set bootstrap.servers="$BOOTSTRAP" --set state.dir="$WORK/s" \
    --set metrics.file="$WORK/m2.json" --set log.level=warn ${VS_TEST_SET:-}
second=$(metric "$WORK/m2.json" events.processed)
assert_eq $N $((first + second)) "events processed over both runs"
