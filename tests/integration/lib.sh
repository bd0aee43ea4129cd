# Helpers for the integration tests: a broker of our own as its own process, temp dirs that
# are removed on exit, and assertions that print what they compared.
set -euo pipefail
VS_BIN=${VS_BIN:-build/valuestream}
WORK=$(mktemp -d /tmp/vs-it-XXXXXX)
BROKER_PID=""
cleanup() {
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

start_broker() { # partitions
    "$VS_BIN" broker --partitions "${1:-4}" --bootstrap-file "$WORK/bootstrap" >/dev/null &
    BROKER_PID=$!
    for _ in $(seq 100); do [ -s "$WORK/bootstrap" ] && break; sleep 0.1; done
    BOOTSTRAP=$(cat "$WORK/bootstrap")
}

metric() { # file name
    python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))" "$1" "$2"
}

assert_eq() { # expected actual what
    if [ "$1" != "$2" ]; then echo "FAIL: $3: expected $1, got $2"; exit 1; fi
    echo "ok: $3 = $2"
}

assert_gt() { # value min what (numbers; anything else fails)
    if ! awk -v v="$1" -v m="$2" 'BEGIN { n = "^-?[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$"
                                       exit !(v ~ n && m ~ n && v + 0 > m + 0) }'; then
        echo "FAIL: $3: expected more than $2, got $1"; exit 1
    fi
    echo "ok: $3 = $1 (> $2)"
}

assert_cmp() { # value awk-condition-on-v what, e.g. assert_cmp 2.1 'v < 2.5' "start"
    if ! awk -v v="$1" "BEGIN { exit !($2) }"; then echo "FAIL: $3: expected $2, got $1"; exit 1; fi
    echo "ok: $3 = $1 ($2)"
}

wait_metric() { # file name min seconds: until the running engine's metrics.file shows name >= min
    local deadline=$((SECONDS + $4)) v=0
    while [ $SECONDS -lt $deadline ]; do
        [ -s "$1" ] && v=$(metric "$1" "$2") && [ "${v%.*}" -ge "$3" ] && return 0
        sleep 0.2
    done
    echo "FAIL: $2 reached ${v:-0} within $4 s, expected at least $3"
    exit 1
}
