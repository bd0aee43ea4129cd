#!/usr/bin/env bash
# No heap allocation per event on the loop thread: the engine, every operator on, replays a
# topic of N events and one of 4N events of the same 2,000 customers, with the counting
# allocator (alloc_count.c) preloaded and one commit at the end. What the loop allocates at
# start, per customer, per commit and as tables grow is in both runs alike; what is allocated
# per event (decode, state, operators, encoding outputs) would show in the difference.
# Counted: everything the loop allocates but librdkafka's, which allocates for every message it
# produces (the passthrough alike: reported, not asserted), and RocksDB's, at the commit.
. "$(dirname "$0")/lib.sh"
if [ -z "${VS_ALLOC_COUNT:-}" ]; then
    echo "skipped: the counting allocator is not built (a sanitizer build owns malloc)"
    exit 77
fi
start_broker 4
N1=40000 N2=160000
for n in $N1 $N2; do
    "$VS_BIN" gen --customers 2000 --items 500 --events $n --days 60 --seed 5 \
        --bootstrap "$BOOTSTRAP" --topic "events.$n" >"$WORK/gen.$n.json" 2>/dev/null
    VS_ALLOC_OUT="$WORK/alloc.$n" LD_PRELOAD="$VS_ALLOC_COUNT" "$VS_BIN" run --until-end \
        --set bootstrap.servers="$BOOTSTRAP" --set input.topic="events.$n" \
        --set input.assignment=all --set operators=profile,value,churn,fraud,recommend \
        --set commit.interval.ms=3600000 --set commit.interval.events=100000000 \
        --set state.dir="$WORK/s.$n" --set metrics.file="$WORK/m.$n.json" --set log.level=warn
    assert_eq "$(metric "$WORK/gen.$n.json" events)" "$(metric "$WORK/m.$n.json" events.processed)" \
        "events processed of events.$n"
    echo "allocations on the loop thread, $n events: $(paste -sd' ' "$WORK/alloc.$n")"
done
count() { awk -v c="$2" '$1 == c { print $2 }' "$WORK/alloc.$1"; }
# Ours: everything but librdkafka's (per produced message) and RocksDB's (at the commit).
ours() { awk '$1 != "rdkafka" && $1 != "rocksdb" { n += $2 } END { print n }' "$WORK/alloc.$1"; }
e1=$(($(metric "$WORK/gen.$N1.json" events))) e2=$(($(metric "$WORK/gen.$N2.json" events)))
ours1=$(ours $N1) ours2=$(ours $N2)
# The counter works: the engine's code allocated at all, and librdkafka's allocations grew
# with the messages it produced.
assert_gt "$(count $N1 engine)" 100 "allocations by the engine over the $N1-event run"
assert_gt "$(($(count $N2 rdkafka) - $(count $N1 rdkafka)))" $((e2 - e1)) \
    "librdkafka's extra allocations for the extra outputs"
# One allocation per 100 events would add $(((e2 - e1) / 100)).
extra=$((ours2 - ours1))
assert_cmp "$extra" "v < $(((e2 - e1) / 100))" \
    "extra allocations outside librdkafka and RocksDB for $((e2 - e1)) extra events"
