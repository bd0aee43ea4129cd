#!/usr/bin/env bash
# `valuestream clv fit` run as users run it: the binary, on the CDNOW logs and on a CSV with bad
# rows, its JSON as the last line of stdout; bad use exits non-zero with a reason.
. "$(dirname "$0")/lib.sh"
DATA=../shared/data/cdnow
"$VS_BIN" clv fit --help >/dev/null
"$VS_BIN" clv fit --transactions "$DATA/CDNOW_sample.txt" --format cdnow-sample \
    --calibration-end 1997-09-30 >"$WORK/sample.out" 2>"$WORK/sample.err"
/usr/bin/python3 - "$WORK/sample.out" <<'PY'
import json, sys
fit = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
paper = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
for k, v in paper.items():
    got = fit["bgnbd"][k]
    assert abs(got - v) <= 0.01 * v, (k, got, v)
for k, v in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
    got = fit["gamma_gamma"][k]
    assert abs(got - v) <= 0.01 * v, (k, got, v)
assert fit["customers"] == 2357, fit
print("ok: clv fit on CDNOW_sample.txt reproduces the published parameters:", fit["bgnbd"])
PY
"$VS_BIN" clv fit --transactions "$DATA/CDNOW_master.txt" --format cdnow-master \
    --calibration-end 1997-09-30 >"$WORK/master.out" 2>/dev/null
tail -n 1 "$WORK/master.out" | /usr/bin/python3 -c '
import json, sys
fit = json.loads(sys.stdin.read())
assert fit["customers"] == 23570 and fit["bgnbd"]["r"] > 0, fit
print("ok: clv fit on CDNOW_master.txt:", fit["customers"], "customers")'
# The sample again as a CSV, with an unparsable row: counted and reported, not fatal, and the
# same fit as from the original format.
awk 'BEGIN { print "customer_id,date,amount" }
     { printf "%s,%s-%s-%s,%s\n", $2, substr($3,1,4), substr($3,5,2), substr($3,7,2), $5 }
     NR == 100 { print "0042,not-a-date,12.5" }' "$DATA/CDNOW_sample.txt" >"$WORK/log.csv"
"$VS_BIN" clv fit --transactions "$WORK/log.csv" --format csv --calibration-end 1997-09-30 \
    >"$WORK/csv.out" 2>"$WORK/csv.err"
grep -q "skipped 1 unparsable" "$WORK/csv.err" || { echo "FAIL: bad row not reported"; cat "$WORK/csv.err"; exit 1; }
/usr/bin/python3 - "$WORK/csv.out" "$WORK/sample.out" <<'PY'
import json, sys
csv, sample = (json.loads(open(f).read().strip().splitlines()[-1]) for f in sys.argv[1:])
assert csv == sample, (csv, sample)
print("ok: clv fit on the same log as a CSV with a bad row gives the same fit")
PY
rc=0
"$VS_BIN" clv fit --transactions "$WORK/missing.csv" --format csv --calibration-end 1997-09-30 \
    2>"$WORK/err" >/dev/null || rc=$?
[ "$rc" -ne 0 ] && grep -q "cannot open" "$WORK/err" || { echo "FAIL: missing file: exit $rc"; exit 1; }
rc=0
"$VS_BIN" clv fit --transactions "$WORK/log.csv" --format xml --calibration-end 1997-09-30 \
    2>"$WORK/err" >/dev/null || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: unknown format accepted"; exit 1; }
echo "ok: bad use exits non-zero ($(head -c 120 "$WORK/err"))"
