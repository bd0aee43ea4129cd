"""Interoperability and dead letters, with an independent client.

Debian's python3-confluent-kafka and python3-avro produce shop events (encoded from
schemas/shop_event.avsc) interleaved with garbage and schema violations; the engine must
process every valid event, dead-letter every bad record with its error headers, and its
outputs must decode with the .avsc files of schemas/.
"""
import io
import json
import re
import math
import os
import subprocess
import sys
import tempfile
import time

import avro.io
import avro.schema
from confluent_kafka import Consumer, Producer, TopicPartition

BIN = os.environ.get("VS_BIN", "build/valuestream")
SCHEMAS = os.path.join(os.path.dirname(__file__), "..", "..", "schemas")


def schema(name):
    with open(os.path.join(SCHEMAS, name + ".avsc")) as f:
        return avro.schema.parse(f.read())


def encode(sch, rec):
    buf = io.BytesIO()
    avro.io.DatumWriter(sch).write(rec, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def decode(sch, data):
    return avro.io.DatumReader(sch).read(avro.io.BinaryDecoder(io.BytesIO(data)))


def read_topic(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-" + topic,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = [p for p in md.topics[topic].partitions]
    live = []
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if hi > lo:
            live.append(TopicPartition(topic, p, lo))
    out, pending, deadline = [], len(live), time.time() + 60
    if live:
        c.assign(live)
    while pending and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            pending -= 1
            continue
        out.append(m)
    c.close()
    return out


def main():
    work = tempfile.mkdtemp(prefix="vs-interop-")
    boot_file = os.path.join(work, "bootstrap")
    broker = subprocess.Popen([BIN, "broker", "--partitions", "3", "--bootstrap-file", boot_file],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(boot_file):
                break
            time.sleep(0.1)
        bootstrap = open(boot_file).read().strip()
        ev_schema = schema("shop_event")
        p = Producer({"bootstrap.servers": bootstrap})
        base = 1767225600000
        valid, bad = 0, 0
        purchases = {}
        for i in range(3000):
            user = "u%d" % (i % 50)
            kind = ["VIEW", "ADD_TO_CART", "PURCHASE"][i % 3]
            rec = {"event_id": "e%d" % i, "user_id": user, "session_id": "s%d" % (i // 10),
                   "type": kind, "item_id": "i%d" % (i % 17), "category_id": "c1",
                   "price": 10.0, "quantity": 1, "order_id": None,
                   "amount": 10.0 if kind == "PURCHASE" else None, "currency": "EUR",
                   "ts": base + i * 1000, "device_id": "d1", "ip": None, "country": "DE",
                   "payment_method": "card"}
            p.produce("shop.events", key=user, value=encode(ev_schema, rec))
            valid += 1
            if kind == "PURCHASE":
                purchases[user] = purchases.get(user, 0) + 1
            if i % 100 == 7:  # garbage bytes
                p.produce("shop.events", key=user, value=b"\xff\x00not avro at all")
                bad += 1
            if i % 100 == 42:  # schema violations that Avro itself accepts
                for field, value in (("quantity", -1), ("price", math.nan), ("user_id", ""),
                                     ("ts", 5)):
                    r = dict(rec, event_id="bad%d%s" % (i, field))
                    r[field] = value
                    p.produce("shop.events", key=user, value=encode(ev_schema, r))
                    bad += 1
                r = dict(rec, event_id="nopay%d" % i, type="PURCHASE", amount=None)
                p.produce("shop.events", key=user, value=encode(ev_schema, r))
                bad += 1
        p.produce("shop.events", key="big", value=b"\x00" * 2000)
        bad += 1
        p.flush(30)
        metrics = os.path.join(work, "metrics.json")
        subprocess.run([BIN, "run", "--until-end", "--set", "bootstrap.servers=" + bootstrap,
                        "--set", "state.dir=" + os.path.join(work, "state"),
                        "--set", "metrics.file=" + metrics, "--set", "max.record.bytes=1000",
                        "--set", "log.level=warn"] + os.environ.get("VS_TEST_SET", "").split(), check=True, timeout=300)
        m = json.load(open(metrics))
        assert m["events.processed"] == valid, (m["events.processed"], valid)
        assert m["events.deadlettered"] == bad, (m["events.deadlettered"], bad)
        print("ok: processed %d valid, dead-lettered %d bad" % (valid, bad))

        dead = read_topic(bootstrap, "vs.dead-letters")
        assert len(dead) == bad, (len(dead), bad)
        kinds = {}
        for d in dead:
            h = dict(d.headers())
            for k in ("vs.error", "vs.source.topic", "vs.source.partition", "vs.source.offset"):
                assert k in h, (k, h)
            assert h["vs.source.topic"] == b"shop.events"
            kinds[h["vs.error"].split(b":")[0]] = kinds.get(h["vs.error"].split(b":")[0], 0) + 1
        assert kinds.get(b"decode") == 30 and kinds.get(b"too_large") == 1, kinds
        assert kinds.get(b"schema") == 150, kinds
        garbage = [d for d in dead if d.value() == b"\xff\x00not avro at all"]
        assert len(garbage) == 30
        print("ok: dead letters carry the original bytes and the error headers", kinds)

        prof_schema = schema("user_profile")
        profiles = read_topic(bootstrap, "vs.profiles")
        assert profiles, "no profiles"
        last = {}
        for msg in profiles:
            rec = decode(prof_schema, msg.value())
            assert msg.key().decode() == rec["user_id"]
            hdr = dict(msg.headers())
            # input topic/partition/offset/kind, the kind also in its own header
            assert re.fullmatch(rb"shop\.events/\d+/\d+/" + re.escape(hdr["vs.kind"]),
                                hdr["vs.id"]), hdr
            if rec["ts"] >= last.get(rec["user_id"], {"ts": -1})["ts"]:
                last[rec["user_id"]] = rec
        for user, n in purchases.items():
            assert last[user]["purchases"] == n, (user, last[user]["purchases"], n)
        print("ok: %d profiles decode with schemas/user_profile.avsc; purchase counts match"
              % len(profiles))
        for name, topic in (("recommendation", "vs.recommendations"),
                            ("fraud_alert", "vs.fraud-alerts"), ("churn_alert", "vs.churn-alerts")):
            sch = schema(name)
            recs = read_topic(bootstrap, topic)
            for msg in recs:
                decode(sch, msg.value())
            print("ok: %d %s records decode with schemas/%s.avsc" % (len(recs), topic, name))
    finally:
        broker.terminate()
        broker.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
    print("1 passed, 0 failed")
