"""Crash test: kill -9 at random moments, restart, and end up exactly where one uninterrupted
run ends up.

The broker runs as its own process. One uninterrupted run (`run --until-end`) gives the
reference state (`inspect --all --json`) and outputs. A second run on a fresh state directory is
killed with SIGKILL at several random moments (commits every 20 ms, so some kills land inside
a commit) and restarted each time until it reaches the end. Its final state must be
byte-identical to the reference, and every output record of the reference run must appear at
least once among the crashed run's outputs (compared by the vs.id header).
"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition

BIN = os.environ.get("VS_BIN", "build/valuestream")
EXTRA = os.environ.get("VS_TEST_SET", "").split()
OUTPUTS = ("profiles", "recommendations", "churn.alerts", "fraud.alerts")


def read_ids(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-reader",
                  "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error:
        c.close()
        return []
    live = []
    for p in md.topics[topic].partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        # The embedded broker keeps about 5 MiB per partition and drops older records
        # silently: a comparison of ids is only sound on complete topics.
        assert lo == 0, "%s [%d] starts at offset %d: the broker dropped records" % (topic, p, lo)
        if hi > lo:
            live.append(TopicPartition(topic, p, lo))
    ids, pending, deadline = [], len(live), time.time() + 120
    if live:
        c.assign(live)
    while pending and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            pending -= 1
            continue
        ids.append(dict(m.headers())["vs.id"])
    c.close()
    assert pending == 0, "could not read %s to its end" % topic
    return ids


def engine_args(bootstrap, state, prefix, metrics):
    args = [BIN, "run", "--until-end", "--set", "bootstrap.servers=" + bootstrap,
            "--set", "state.dir=" + state, "--set", "group.id=" + prefix,
            "--set", "commit.interval.ms=20", "--set", "log.level=error",
            "--set", "metrics.file=" + metrics]
    for o in OUTPUTS:
        args += ["--set", "topic.%s=%s.%s" % (o, prefix, o)]
    return args + EXTRA


def inspect(state):
    return subprocess.run([BIN, "inspect", "--state", state, "--all", "--json"], check=True,
                          capture_output=True).stdout


def main():
    rng = random.Random(int(os.environ.get("VS_CRASH_SEED", "20261122")))
    work = tempfile.mkdtemp(prefix="vs-crash-")
    boot_file = os.path.join(work, "bootstrap")
    topics = []
    for prefix in ("ref", "crash"):
        for o in OUTPUTS:
            topics += ["--topic", "%s.%s" % (prefix, o)]
    broker = subprocess.Popen([BIN, "broker", "--partitions", "16", "--bootstrap-file", boot_file]
                              + topics, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(boot_file):
                break
            time.sleep(0.1)
        bootstrap = open(boot_file).read().strip()
        gen = subprocess.run([BIN, "gen", "--customers", "4000", "--items", "500", "--events",
                              "210000", "--days", "90", "--seed", "11", "--bootstrap", bootstrap,
                              "--topic", "shop.events"], check=True, capture_output=True)
        events = json.loads(gen.stdout.decode().strip().splitlines()[-1])["events"]
        assert events >= 200000, events

        ref_state = os.path.join(work, "ref")
        subprocess.run(engine_args(bootstrap, ref_state, "ref", os.path.join(work, "ref.json")),
                       check=True, timeout=600)
        reference = inspect(ref_state)

        state = os.path.join(work, "crash")
        kills, runs = 0, 0
        while True:
            runs += 1
            p = subprocess.Popen(engine_args(bootstrap, state, "crash",
                                             os.path.join(work, "crash%d.json" % runs)))
            if kills < 6:
                time.sleep(rng.uniform(1.5, 4.5))
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
                    print("killed run %d with SIGKILL" % runs, flush=True)
                    continue
            assert p.wait(timeout=600) == 0
            break
        assert kills >= 5, "only %d kills landed before the end" % kills
        crashed = inspect(state)
        assert crashed == reference, "state after crashes differs from one uninterrupted run"
        print("ok: after %d kills the state is byte-identical to one uninterrupted run (%d bytes)"
              % (kills, len(reference)))
        for o in OUTPUTS:
            want = set(read_ids(bootstrap, "ref." + o))
            got = set(read_ids(bootstrap, "crash." + o))
            missing = want - got
            assert not missing, "%d %s records of the reference run are missing, e.g. %r" % (
                len(missing), o, sorted(missing)[:3])
            print("ok: all %d %s records of the reference run were produced" % (len(want), o))
    finally:
        broker.terminate()
        broker.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
    print("1 passed, 0 failed")
