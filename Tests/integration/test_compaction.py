"""Log compaction (cleanup.policy=compact) on a real broker, read back with confluent-kafka.

A topic with segment.bytes=1024 (many small segments), min.cleanable.dirty.ratio=0.01 and a short
delete.retention.ms, on a broker whose cleaner runs every 200 ms (log.cleaner.backoff.ms), gets
keys k0..k19 written 10 times each (values v0..v9), tombstones for a few keys, and padding records
with unique keys to roll segments. Every offset is recorded from the delivery reports. Once the
broker logged a cleaning of the partition, a consumer reading from the beginning sees, below the
cleaner's position (cleaner-offset-checkpoint in the log dir), exactly one record per key: the
latest one, at the very offset it was written at. Tombstones survive that first cleaning; after
delete.retention.ms and one more cleaning (new padding makes the log dirty again) the deleted
keys are gone altogether. The data survives a kill -9 and restart unchanged (recovery accepts the
cleaned segments). DescribeConfigs shows the topic's cleaner configs, and a record without a key
is refused with INVALID_RECORD. Batches compressed by the producer (lz4, zstd) are cleaned too:
one record per key, the latest; aborted transactions' records are dropped by the cleaner.

With three brokers, a follower paused (SIGSTOP) while its leader compacts comes back with a log
end that falls inside the empty batches the leader's cleaner left: it copies on from there, joins
the ISR again, survives a kill -9, and once it is the only broker left it serves the latest value
of every key, read with confluent-kafka.

Runnel only: it reads the cleaner checkpoint and the brokers' logs.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from cluster import admin as cluster_admin, create, leaders, start_cluster
from util import QUIET, admin, create_topic, read_checkpoint, unique, wait_until, watermarks

DELETE_RETENTION_MS = 4000
KEYS = [f"k{i}" for i in range(20)]
TOMBSTONED = ["k3", "k7", "k11"]


@pytest.fixture
def cnode(require_runnel, node_factory):
    return node_factory({"log.cleaner.backoff.ms": 200})


def produce_all(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> dict[int, tuple]:
    """Produces one message per request (acks=all) and returns offset -> (key, value)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 1, **QUIET})
    offsets: dict[int, tuple] = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            offsets[msg.offset()] = (msg.key(), msg.value())

    for key, value in messages:
        p.produce(topic, key=key, value=value, on_delivery=report)
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors
    return offsets


def consume_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[int, bytes | None, bytes | None]]:
    """Everything from the beginning up to the high watermark, as (offset, key, value)."""
    lo, hi = watermarks(bootstrap, topic, 0)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("compact"), "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", **QUIET})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, -2)])
        deadline = time.monotonic() + timeout
        while (not out or out[-1][0] < hi - 1) and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    assert out and out[-1][0] == hi - 1, f"read up to {out[-1][0] if out else None}, high watermark {hi}"
    return out


def cleaner_position(node, topic: str) -> int | None:
    path = node.data_dir / "cleaner-offset-checkpoint"
    return read_checkpoint(path).get((topic, 0)) if path.exists() else None


def settled_position(node, topic: str, beyond: int, timeout: float = 30.0) -> int:
    """Waits until the cleaner has cleaned past `beyond` and then stays put (nothing dirty is
    left below the active segment), so a read afterwards sees one state; returns its position."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        position = cleaner_position(node, topic)
        if position != last:
            last, since = position, time.monotonic()
        elif position is not None and position > beyond and time.monotonic() - since > 1.5:
            return position
        time.sleep(0.1)
    raise AssertionError(f"the cleaner position of {topic}-0 is {last}, not settled past {beyond}")


def cleanings(node, topic: str) -> int:
    return node.log_text().count(f"cleaned log {topic}-0")


def test_compaction_keeps_the_latest_value_per_key(cnode):
    node = cnode
    topic = unique("compact")
    create_topic(node.bootstrap, topic, 1, {
        "cleanup.policy": "compact", "segment.bytes": 1024, "min.cleanable.dirty.ratio": 0.01,
        "delete.retention.ms": DELETE_RETENTION_MS,
    })

    # DescribeConfigs lists the cleaner's topic configs, overrides and defaults.
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin(node.bootstrap)
    configs = a.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["delete.retention.ms"].value == str(DELETE_RETENTION_MS)
    assert configs["min.cleanable.dirty.ratio"].value == "0.01"
    assert configs["min.compaction.lag.ms"].value == "0" and configs["min.compaction.lag.ms"].is_default

    messages = [(k.encode(), f"v{r}".encode()) for r in range(10) for k in KEYS]
    messages += [(k.encode(), None) for k in TOMBSTONED]
    messages += [(f"pad{i}".encode(), b"x" * 60) for i in range(40)]
    written = produce_all(node.bootstrap, topic, messages)
    assert sorted(written) == list(range(len(messages))), "one offset per message, in order"

    last_tombstone = max(o for o, (_, v) in written.items() if v is None)
    cleaned_to = settled_position(node, topic, beyond=last_tombstone)

    def check(records, tombstones_expected: bool):
        # Every record is exactly what was written at its offset.
        for offset, key, value in records:
            assert written.get(offset) == (key, value), f"offset {offset}: read {(key, value)}, wrote {written.get(offset)}"
        offsets = [r[0] for r in records]
        assert offsets == sorted(set(offsets)), "offsets strictly increase"
        # Below the cleaner's position: one record per key, the latest written there.
        latest = {}
        for offset, (key, _) in written.items():
            if offset < cleaned_to:
                latest[key] = max(latest.get(key, -1), offset)
        if not tombstones_expected:
            latest = {k: o for k, o in latest.items() if written[o][1] is not None}
        below = {offset for offset, _, _ in records if offset < cleaned_to}
        assert below == set(latest.values()), (
            f"cleaned range: extra {sorted(below - set(latest.values()))[:10]}, "
            f"missing {sorted(set(latest.values()) - below)[:10]}")
        # Above it, everything written is there.
        above = [o for o in offsets if o >= cleaned_to]
        assert above == [o for o in sorted(written) if o >= cleaned_to]

    records = consume_all(node.bootstrap, topic)
    assert cleaner_position(node, topic) == cleaned_to, "no cleaning ran while we read"
    check(records, tombstones_expected=True)
    values = {key: value for _, key, value in records}
    for k in KEYS:
        assert values[k.encode()] == (None if k in TOMBSTONED else b"v9"), k
    assert len(records) < len(messages) / 2, f"{len(records)} of {len(messages)} records left"

    # After delete.retention.ms, new data makes the log dirty again; the next cleaning drops the
    # tombstones (their delete horizon has passed) and nothing of those keys is left.
    time.sleep(DELETE_RETENTION_MS / 1000 + 0.5)
    before = cleanings(node, topic)
    written.update(produce_all(node.bootstrap, topic, [(f"pad2-{i}".encode(), b"y" * 60) for i in range(40)]))

    wait_until(lambda: cleanings(node, topic) > before, 30, 0.2, "another cleaning")
    cleaned_to = settled_position(node, topic, beyond=max(written) - 20)
    records = consume_all(node.bootstrap, topic)
    assert cleaner_position(node, topic) == cleaned_to, "no cleaning ran while we read"
    assert not any(key.decode() in TOMBSTONED for _, key, _ in records), "the deleted keys are gone"
    check(records, tombstones_expected=False)

    # A kill -9 and restart keeps the cleaned log as it is.
    node.kill9()
    node.restart()
    assert consume_all(node.bootstrap, topic) == records


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compaction_of_compressed_batches(cnode, codec):
    """Batches a producer compressed are cleaned like plain ones: the cleaner inflates them,
    keeps the latest value per key, and writes them back in their codec."""
    node = cnode
    topic = unique(f"compact-{codec}")
    create_topic(node.bootstrap, topic, 1, {"cleanup.policy": "compact", "segment.bytes": 1024,
                                          "min.cleanable.dirty.ratio": 0.01})
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5, "compression.type": codec,
                  **QUIET})
    latest = {}
    for r in range(6):
        for k in range(10):
            value = (f"round {r} of key {k} " * 6).encode()
            p.produce(topic, key=b"k%d" % k, value=value, partition=0)
            latest[b"k%d" % k] = value
        p.flush(30)
    for i in range(20):   # roll segments (incompressible padding) so the rounds above become cleanable
        p.produce(topic, key=b"pad%d" % i, value=os.urandom(300).hex().encode(), partition=0)
        p.flush(30)
    wait_until(lambda: cleanings(node, topic) > 0, 30, 0.2, "a cleaning")
    position = settled_position(node, topic, beyond=60)
    records = [r for r in consume_all(node.bootstrap, topic) if r[0] < position]
    keyed = [(k, v) for _, k, v in records if k.startswith(b"k")]
    assert sorted(keyed) == sorted(latest.items()), "one record per key, the latest"


def test_compaction_drops_aborted_transactions(cnode):
    """The cleaner drops an aborted transaction's records (Kafka's rules): after a cleaning even a
    read_uncommitted consumer no longer sees them, while a committed transaction's latest values
    stay, one per key."""
    node = cnode
    topic = unique("compact-txn")
    create_topic(node.bootstrap, topic, 1, {"cleanup.policy": "compact", "segment.bytes": 1024,
                                          "min.cleanable.dirty.ratio": 0.01})
    p = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": unique("compact-txn"), **QUIET})
    p.init_transactions(30)
    for round_, commit in enumerate([True, False, True, False]):
        p.begin_transaction()
        for k in range(5):
            p.produce(topic, key=b"k%d" % k, value=b"%s-%d" % (b"committed" if commit else b"aborted", round_),
                      partition=0)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    for i in range(20):   # roll segments so the transactions become cleanable
        p.begin_transaction()
        p.produce(topic, key=b"pad%d" % i, value=os.urandom(100).hex().encode(), partition=0)
        p.commit_transaction(30)
    produce_all(node.bootstrap, topic, [(b"end", b"plain")])   # the log ends with a record, not a marker
    wait_until(lambda: cleanings(node, topic) > 0, 30, 0.2, "a cleaning")
    position = settled_position(node, topic, beyond=30)
    records = [r for r in consume_all(node.bootstrap, topic) if r[0] < position and r[1].startswith(b"k")]
    assert not [r for r in records if r[2].startswith(b"aborted")], "aborted records survived the cleaning"
    assert sorted((k, v) for _, k, v in records) == [(b"k%d" % k, b"committed-2") for k in range(5)]


def test_compacted_topic_refuses_records_without_key(cnode):
    node = cnode
    topic = unique("compact-nokey")
    create_topic(node.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 0, "retries": 0, **QUIET})
    reports = []
    # One flush each: a batch holding a keyless record is refused whole, as Kafka does.
    p.produce(topic, key=None, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    p.flush(30)
    p.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: reports.append(err))
    p.flush(30)
    assert len(reports) == 2
    assert reports[0] is not None and reports[0].code() == KafkaError.INVALID_RECORD, reports[0]
    assert reports[1] is None, reports[1]
    # compact,delete refuses them too; a delete topic takes them.
    both = unique("compact-delete")
    create_topic(node.bootstrap, both, 1, {"cleanup.policy": "compact,delete"})
    plain = unique("plain")
    create_topic(node.bootstrap, plain, 1)
    reports.clear()
    p.produce(both, key=None, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    p.produce(plain, key=None, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    p.flush(30)
    assert reports[0] is not None and reports[0].code() == KafkaError.INVALID_RECORD, reports[0]
    assert reports[1] is None, reports[1]


def isr(node, topic: str):
    md = cluster_admin(node).list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    return t.partitions[0].leader, sorted(t.partitions[0].isrs)


def test_follower_catches_up_through_a_compacted_leader(require_runnel, tmp_path):
    controllers, brokers = start_cluster(tmp_path, {"log.cleaner.backoff.ms": 200, "replica.lag.time.max.ms": 2000,
                                                    "replica.fetch.backoff.ms": 200},
                                         props={"auto.leader.rebalance.enable": "false"})
    try:
        topic = "compacted"
        create(brokers[0], topic, 1, 3, {"cleanup.policy": "compact", "segment.bytes": 1024, "min.cleanable.dirty.ratio": 0.01})
        leader_id = wait_until(lambda: (lambda s: s[0] if s and s[0] >= 0 and len(s[1]) == 3 else None)(isr(brokers[0], topic)),
                               30, 0.2, "a leader with three in sync")
        leader = next(b for b in brokers if b.node_id == leader_id)
        follower = next(b for b in brokers if b.node_id != leader_id)
        servers = ",".join(b.bootstrap for b in brokers)
        written = produce_all(servers, topic, [(k.encode(), b"first") for k in KEYS for _ in range(3)])
        wait_until(lambda: isr(brokers[0], topic) == (leader_id, sorted(b.node_id for b in brokers)), 30, 0.2, "all in sync")
        time.sleep(1)  # the follower fetched everything (its fetch loop runs every 200 ms at most)

        os.kill(follower.pid, signal.SIGSTOP)
        try:
            # acks=1: the leader takes the writes at once; its high watermark moves (and the cleaner
            # may clean) once the paused follower is out of the ISR.
            p = Producer({"bootstrap.servers": leader.bootstrap, "acks": 1, "linger.ms": 0, "batch.num.messages": 1, **QUIET})
            for r in range(10):
                for k in KEYS:
                    p.produce(topic, key=k.encode(), value=f"v{r}".encode())
                p.poll(0)
            for i in range(40):
                p.produce(topic, key=f"pad{i}".encode(), value=b"x" * 60)
            assert p.flush(30) == 0
            end = max(written) + 1 + 10 * len(KEYS) + 40
            wait_until(lambda: (cleaner_position(leader, topic) or 0) > end - 20, 40, 0.2, "the leader to clean past the paused follower")
        finally:
            os.kill(follower.pid, signal.SIGCONT)
        wait_until(lambda: isr(brokers[0], topic) == (leader_id, sorted(b.node_id for b in brokers)), 40, 0.2,
                   "the follower back in the ISR")
        assert "nonMonotonicOffsets" not in follower.log_text() and "could not be written" not in follower.log_text()

        # Unclean restart of the follower: its log (with the empty batches it wrote) recovers whole.
        follower.kill9()
        follower.restart()
        wait_until(lambda: isr(brokers[0], topic) == (leader_id, sorted(b.node_id for b in brokers)), 40, 0.2,
                   "the restarted follower back in the ISR")
        # Only the follower left: it leads and serves the latest value of every key.
        for b in brokers:
            if b is not follower:
                b.kill9()
        # Alone in the ISR: until the controller fences the others, the new leader's high watermark
        # may sit below its epoch's start and ListOffsets rightly answers OFFSET_NOT_AVAILABLE.
        wait_until(lambda: isr(follower, topic) == (follower.node_id, [follower.node_id]), 40, 0.2,
                   "the follower leading alone")
        records = consume_all(follower.bootstrap, topic)
        latest = {key: value for _, key, value in records}
        assert all(latest[k.encode()] == b"v9" for k in KEYS), latest
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets))
    finally:
        for n in brokers + controllers:
            n.close()
