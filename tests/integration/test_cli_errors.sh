#!/usr/bin/env bash
# Bad use gets a clear message naming the problem and a non-zero exit, never a hang.
. "$(dirname "$0")/lib.sh"
expect_fail() { # expected-status message-fragment command...
    local want=$1 frag=$2; shift 2
    local rc=0
    timeout 60 "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    if [ "$rc" != "$want" ]; then echo "FAIL: $*: exit $rc, expected $want"; cat "$WORK/err"; exit 1; fi
    if ! grep -q -- "$frag" "$WORK/err"; then echo "FAIL: $*: no '$frag' in:"; cat "$WORK/err"; exit 1; fi
    echo "ok: $* -> exit $rc, '$frag'"
}
expect_fail 2 "unknown config key 'no.such.key'" "$VS_BIN" run --set no.such.key=1
expect_fail 2 "'commit.interval.ms': expected an integer" "$VS_BIN" run --set commit.interval.ms=soon
expect_fail 2 "cannot read config file '$WORK/missing.properties'" "$VS_BIN" run -c "$WORK/missing.properties"
printf 'state.dir=/tmp/x\nbogus=1\n' > "$WORK/bad.properties"
expect_fail 2 "bad.properties:2: unknown config key 'bogus'" "$VS_BIN" run -c "$WORK/bad.properties"
expect_fail 2 "'processing.order'" "$VS_BIN" run --set processing.order=random --set state.dir="$WORK/s0"
expect_fail 2 "config key 'memory.trim.interval.ms': expected at least 0" "$VS_BIN" run --set memory.trim.interval.ms=-1 --set state.dir="$WORK/s0"
expect_fail 2 "config key 'input.assignment': expected group or all" "$VS_BIN" run --set input.assignment=some --set state.dir="$WORK/s0"
expect_fail 1 "cannot reach Kafka" "$VS_BIN" run --set bootstrap.servers=127.0.0.1:1 \
    --set startup.timeout.ms=2000 --set state.dir="$WORK/s1"
expect_fail 2 "unexpected argument" "$VS_BIN" run extra
expect_fail 2 "unknown command 'frobnicate'" "$VS_BIN" frobnicate
expect_fail 2 "--partitions" "$VS_BIN" broker --partitions zero
start_broker 2
expect_fail 1 "input topic 'nope' does not exist" "$VS_BIN" run --set bootstrap.servers="$BOOTSTRAP" \
    --set input.topic=nope --set startup.timeout.ms=3000 --set state.dir="$WORK/s2"
for c in run broker gen demo inspect; do
    "$VS_BIN" $c --help >/dev/null || { echo "FAIL: $c --help"; exit 1; }
done
echo "ok: every subcommand has --help"
