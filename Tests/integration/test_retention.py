"""Time-based retention deletes whole old segments and moves the log start offset.

A topic with segment.bytes=16 KiB and retention.ms=3000 on a broker checking retention every
500 ms (and deleting files without delay) gets ~400 KiB, which rolls many segments (files in
<data>/<topic>-0/ named by their 20-digit base offset + ".log"). Once the retention time has
passed: the earliest offset (ListOffsets earliest, through both confluent-kafka and kafka-python)
has advanced, the files of the deleted segments are gone, fetching offset 0 fails with
OFFSET_OUT_OF_RANGE (kafka-python raises OffsetOutOfRangeError with auto_offset_reset='none';
librdkafka reports it with auto.offset.reset=error), and new writes continue from the old end
offset rather than restarting.

Runnel only: it inspects the on-disk layout, which Tansu's memory storage does not have.
"""

from __future__ import annotations

import random
import re
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from util import QUIET, create_topic, drain, unique, wait_until, watermarks

SEGMENT_BYTES = 16 * 1024
RETENTION_MS = 3000
SEGMENT_RE = re.compile(r"^(\d{20})\.log$")


def segment_bases(node, topic: str) -> list[int]:
    d = node.partition_dir(topic, 0)
    return sorted(int(m.group(1)) for f in d.iterdir() if (m := SEGMENT_RE.match(f.name)))


def files_for_base(node, topic: str, base: int) -> list[str]:
    prefix = f"{base:020d}."
    return sorted(f.name for f in node.partition_dir(topic, 0).iterdir() if f.name.startswith(prefix))


@pytest.fixture
def rnode(require_runnel, node_factory):
    return node_factory({"log.retention.check.interval.ms": 500, "log.segment.delete.delay.ms": 0})


def test_time_retention_deletes_old_segments(rnode):
    node = rnode
    topic = unique("ret")
    create_topic(node.bootstrap, topic, 1, {"segment.bytes": SEGMENT_BYTES, "retention.ms": RETENTION_MS})
    pdir = node.partition_dir(topic, 0)
    assert pdir.is_dir(), f"no partition directory {pdir}"

    rng = random.Random(3)
    n = 400
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0,
                  "batch.num.messages": 1, **QUIET})
    errs = []
    started = time.monotonic()
    for i in range(n):
        p.produce(topic, key=b"%d" % i, value=rng.randbytes(1024),
                  on_delivery=lambda e, m: e and errs.append(e))
        p.poll(0)
    assert p.flush(30) == 0 and not errs, errs

    before = segment_bases(node, topic)
    assert len(before) >= 5, f"expected many {SEGMENT_BYTES}-byte segments, found {before} in {pdir}"

    # Retention kicks in: earliest offset moves past 0.
    lo, hi = wait_until(lambda: (w := watermarks(node.bootstrap, topic, 0))[0] > 0 and w,
                        timeout=RETENTION_MS / 1000 + 30, interval=0.25,
                        what="the earliest offset to advance")
    # No segment may go before its newest record is retention.ms old (0.5 s slack for clocks).
    assert time.monotonic() - started > RETENTION_MS / 1000 - 0.5, "data deleted before retention.ms"
    assert hi == n and 0 < lo <= hi, (lo, hi)

    # Wait for the whole expired set to go (all the data is older than retention.ms now), then
    # check the files: every segment below the log start offset has no file left.
    time.sleep(RETENTION_MS / 1000 + 1.5)
    lo, hi = watermarks(node.bootstrap, topic, 0)
    assert hi == n
    assert lo >= before[-1], f"log start {lo} still below the last old segment base {before[-1]}"

    def old_files_gone():
        return all(not files_for_base(node, topic, b) for b in before if b < lo)
    wait_until(old_files_gone, 10, 0.2,
               f"files of deleted segments to disappear (left: "
               f"{[files_for_base(node, topic, b) for b in before if b < lo]})")
    after = segment_bases(node, topic)
    assert after and after[0] <= lo and all(b >= lo for b in after[1:]), (lo, after)
    assert len(after) <= 2, f"segments left after retention: {after}"

    # kafka-python agrees on the earliest offset and gets OFFSET_OUT_OF_RANGE at 0.
    from kafka import KafkaConsumer, TopicPartition as KTP
    from kafka.errors import OffsetOutOfRangeError
    kc = KafkaConsumer(bootstrap_servers=node.bootstrap, enable_auto_commit=False, group_id=None,
                       auto_offset_reset="none")
    try:
        tp = KTP(topic, 0)
        assert kc.beginning_offsets([tp]) == {tp: lo}
        kc.assign([tp])
        kc.seek(tp, 0)
        with pytest.raises(OffsetOutOfRangeError):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                kc.poll(timeout_ms=500)
    finally:
        kc.close()

    # librdkafka with auto.offset.reset=error reports it too.
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": unique("oor"),
                  "auto.offset.reset": "error", "enable.auto.commit": False, **QUIET})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = None
        deadline = time.monotonic() + 15
        while seen is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is not None, f"got a message at offset {m.offset()} below log start {lo}"
                seen = m.error()
        assert seen is not None and seen.code() == KafkaError._AUTO_OFFSET_RESET, seen
        assert "out of range" in seen.str().lower(), seen.str()
    finally:
        c.close()

    # New writes continue from the old end offset and are readable from the log start.
    p.produce(topic, key=b"new", value=b"after retention")
    assert p.flush(30) == 0
    lo2, hi2 = watermarks(node.bootstrap, topic, 0)
    assert hi2 == n + 1 and lo <= lo2 <= n, (lo, lo2, hi2)
    msgs = drain(node.bootstrap, topic, 1, hi2 - lo2, conf={"auto.offset.reset": "earliest"})
    assert msgs[-1].offset == n and msgs[-1].value == b"after retention"
    assert [m.offset for m in msgs] == list(range(lo2, hi2))
