#!/usr/bin/env bash
# The crash test (test_crash.py) with full ALS sweeps every day of event time: a sweep is running
# at most commits and kills, and the state must still end byte-identical to one uninterrupted run.
VS_TEST_SET="${VS_TEST_SET:-} --set recommend.als.interval.ms=86400000" \
    exec /usr/bin/python3 "$(dirname "$0")/test_crash.py"
