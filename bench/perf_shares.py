"""Share of samples per function in `perf script -F ip,sym` output with call graphs.

Prints, for the functions found most often, the percentage of samples whose stack holds the
function (inclusive: the function and what it calls), and the percentage where it is the
innermost known frame (self). Frames without a symbol (stripped libraries) are skipped.

    python3 bench/perf_shares.py PERF_SCRIPT_OUTPUT [TOP]
"""
import collections
import sys


def stacks(path):
    stack = []
    with open(path, errors="replace") as f:
        for line in f:
            s = line.strip()
            if not s:
                if stack:
                    yield stack
                stack = []
                continue
            parts = s.split(None, 1)
            name = parts[1].split(" (")[0] if len(parts) > 1 else "[unknown]"
            stack.append(name)
    if stack:
        yield stack


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: perf_shares.py PERF_SCRIPT_OUTPUT [TOP]")
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    inclusive, self_ = collections.Counter(), collections.Counter()
    n = 0
    for st in stacks(sys.argv[1]):
        n += 1
        known = [x for x in st if x != "[unknown]"]
        if known:
            self_[known[0]] += 1
        for name in set(known):
            inclusive[name] += 1
    if n == 0:
        sys.exit("perf_shares.py: no samples in " + sys.argv[1])
    print(f"{n} samples of the loop thread; inclusive %, self %, function")
    for name, c in inclusive.most_common(top):
        print(f"{100 * c / n:6.1f} {100 * self_[name] / n:6.1f}  {name}")


main()
