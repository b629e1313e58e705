"""Transactions, the coordinator's first steps: FindCoordinator for a transactional id and
InitProducerId with one, served by the transaction coordinator of the broker that leads the id's
`__transaction_state` partition (created on the first FindCoordinator, as Kafka does).

- confluent-kafka: a transactional producer's init_transactions() succeeds, and so does a second
  producer's with the same transactional id (which fences the first).
- By hand on the wire (kwire): FindCoordinator key type 1 names this broker; InitProducerId gives a
  new id epoch 0 and bumps it on every call; KIP-360 recovery with the current epoch bumps it, a
  wrong epoch is PRODUCER_FENCED from v4 on and INVALID_PRODUCER_EPOCH before; a timeout above
  transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT; and after a kill -9 and restart the
  coordinator reloads the id from `__transaction_state` and continues from the epoch it wrote.

- Whole transactions with confluent-kafka: records of a committed transaction are read by
  read_committed and read_uncommitted consumers; an aborted one's only by read_uncommitted; a
  read_committed consumer stops at the last stable offset while a transaction is open, and its
  ListOffsets latest is that offset; markers reach partitions led by other brokers.
- The Java client, kafka-python and aiokafka commit and abort the same way.
- A second instance fences the first and aborts its open transaction (confluent-kafka, the Java
  client, kafka-python, aiokafka); a transaction left open past transaction.timeout.ms is aborted by the
  coordinator (confluent-kafka, kafka-python).
- KIP-890 part 1, by hand on the wire: a transactional produce for a partition not in the
  transaction, or arriving after it was aborted, is refused with INVALID_TXN_STATE.
- send_offsets_to_transaction (AddOffsetsToTxn + TxnOffsetCommit) moves the group's committed
  offset only when the transaction commits: confluent-kafka, the Java client, kafka-python and
  aiokafka (each its own TxnOffsetCommit version, all under the broker's verification of the
  group's partition).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import javaclient
import kwire
from cluster import create, leaders, start_cluster
from kwire import Reader, compact_string, frame, i8, i16, i32, i64, request_header_v1, request_header_v2, string
from util import QUIET, create_topic, drain, unique, wait_until

APPS = Path(__file__).resolve().parent / "apps"

TXN_PROPS = {
    "transaction.state.log.num.partitions": 4,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.max.timeout.ms": 120000,
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}

API_FIND_COORDINATOR = 10
API_INIT_PRODUCER_ID = 22
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_PRODUCER_EPOCH = 47
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
PRODUCER_FENCED = 90
RETRIABLE = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS}


@pytest.fixture(scope="module")
def tnode(module_node_factory):
    return module_node_factory(TXN_PROPS)


def find_coordinator(bootstrap: str, key: str, key_type: int = 1) -> tuple[int, int, str, int]:
    """FindCoordinator v1, of a transactional id (key type 1) or a group (0): (error, node id, host, port)."""
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v1(API_FIND_COORDINATOR, 1, 7) + string(key) + i8(key_type)))
        r = Reader(c.recv_frame())
        assert r.i32() == 7
        r.i32()  # throttle
        error = r.i16()
        r.string()  # error message
        return error, r.i32(), r.string(), r.i32()


def init_producer_id(bootstrap: str, transactional_id: str, producer_id: int = -1, epoch: int = -1,
                     timeout_ms: int = 60000, version: int = 4) -> tuple[int, int, int]:
    """InitProducerId v3+ (flexible) with a transactional id: (error, producer id, epoch)."""
    body = compact_string(transactional_id) + i32(timeout_ms) + i64(producer_id) + i16(epoch) + kwire.EMPTY_TAGS
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v2(API_INIT_PRODUCER_ID, version, 9) + body))
        r = Reader(c.recv_frame())
        assert r.i32() == 9
        r.skip_tags()
        r.i32()  # throttle
        return r.i16(), r.i64(), r.i16()


@contextmanager
def kafka_python_transactions(bootstrap: str, prefix: str, **conf):
    """A kafka-python transactional producer with its transactions initialised, closed after."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique(prefix), **conf)
    try:
        p.init_transactions()
        yield p
    finally:
        p.close(10)


def kafka_python_open_transaction(p, topic: str, values: list[str], partitions: int = 1) -> None:
    """Begins a transaction and sends `values` round-robin over the topic's partitions, flushed."""
    p.begin_transaction()
    for i, value in enumerate(values):
        p.send(topic, value=value.encode(), partition=i % partitions)
    p.flush()


def until_answered(call, timeout: float = 30.0):
    """Calls `call` until its error is not a retriable coordinator error (the topic being created,
    its partition being loaded, the first producer-id block on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = call()
        if answer[0] not in RETRIABLE or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_confluent_init_transactions_and_a_second_instance(tnode):
    tid = unique("txn")
    first = Producer({"bootstrap.servers": tnode.bootstrap, "transactional.id": tid, **QUIET})
    first.init_transactions(60)
    second = Producer({"bootstrap.servers": tnode.bootstrap, "transactional.id": tid, **QUIET})
    second.init_transactions(60)
    # The coordinator gave the second instance the next epoch of the same producer id.
    error, pid, epoch = init_producer_id(tnode.bootstrap, tid)
    assert error == NONE and pid >= 0 and epoch == 2, (error, pid, epoch)
    first.flush(1)
    second.flush(1)


def test_coordinator_epochs_fencing_and_reload(tnode):
    tid = unique("txn")
    error, node_id, host, port = until_answered(lambda: find_coordinator(tnode.bootstrap, tid))
    assert error == NONE and f"{host}:{port}" == tnode.bootstrap, (error, node_id, host, port)

    error, pid, epoch = until_answered(lambda: init_producer_id(tnode.bootstrap, tid))
    assert (error, epoch) == (NONE, 0) and pid >= 0
    assert init_producer_id(tnode.bootstrap, tid) == (NONE, pid, 1), "a new instance bumps the epoch"
    # KIP-360: the producer names its current id and epoch and gets the next epoch.
    assert init_producer_id(tnode.bootstrap, tid, pid, 1) == (NONE, pid, 2)
    # An epoch that is neither the current nor the previous one is fenced, by version (KIP-588).
    assert init_producer_id(tnode.bootstrap, tid, pid, 7)[0] == PRODUCER_FENCED
    assert init_producer_id(tnode.bootstrap, tid, pid, 7, version=3)[0] == INVALID_PRODUCER_EPOCH
    assert init_producer_id(tnode.bootstrap, tid, timeout_ms=120001)[0] == INVALID_TRANSACTION_TIMEOUT

    # Every answer followed its write to __transaction_state: a restarted coordinator reloads it.
    tnode.kill9()
    tnode.restart()
    error, _, _, _ = until_answered(lambda: find_coordinator(tnode.bootstrap, tid), timeout=60)
    assert error == NONE
    assert until_answered(lambda: init_producer_id(tnode.bootstrap, tid, pid, 2), timeout=60) == (NONE, pid, 3)
    assert init_producer_id(tnode.bootstrap, tid, pid, 1)[0] == PRODUCER_FENCED


def transactional_producer(bootstrap: str, tid: str | None = None) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid or unique("txn"),
                  "linger.ms": 5, **QUIET})
    p.init_transactions(60)
    return p


def test_commit_and_abort_seen_by_each_isolation_level(tnode):
    topic = unique("txn-data")
    create_topic(tnode.bootstrap, topic, partitions=3)
    p = transactional_producer(tnode.bootstrap)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, key=f"k{i}", value=f"committed-{i}", partition=i % 3)
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, key=f"k{i}", value=f"aborted-{i}", partition=i % 3)
    p.flush(30)
    p.abort_transaction(60)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, key=f"k{i}", value=f"last-{i}", partition=i % 3)
    p.commit_transaction(60)

    committed = drain(tnode.bootstrap, topic, 3, 33, conf={"isolation.level": "read_committed"})
    values = sorted(m.value.decode() for m in committed)
    assert values == sorted([f"committed-{i}" for i in range(30)] + [f"last-{i}" for i in range(3)]), values
    everything = drain(tnode.bootstrap, topic, 3, 63, conf={"isolation.level": "read_uncommitted"})
    assert sum(m.value.startswith(b"aborted-") for m in everything) == 30
    # Each partition holds data, a commit marker, aborted data, an abort marker, data and a marker.
    for part in range(3):
        offsets = sorted(m.offset for m in everything if m.partition == part)
        assert offsets == list(range(10)) + list(range(11, 21)) + [22], (part, offsets)


def test_read_committed_stops_at_an_open_transaction(tnode):
    topic = unique("txn-open")
    create_topic(tnode.bootstrap, topic, partitions=1)
    plain = Producer({"bootstrap.servers": tnode.bootstrap, **QUIET})
    for i in range(5):
        plain.produce(topic, value=f"before-{i}", partition=0)
    plain.flush(30)
    p = transactional_producer(tnode.bootstrap)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"open-{i}", partition=0)
    p.flush(30)
    for i in range(5):
        plain.produce(topic, value=f"after-{i}", partition=0)
    plain.flush(30)

    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": unique("rc"), "isolation.level": "read_committed",
                  "enable.auto.commit": False, **QUIET})
    try:
        # The last stable offset is the open transaction's first offset (5); the high watermark 15.
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 5), (low, high)
        c.assign([TopicPartition(topic, 0, 0)])
        seen = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.2):
                if not m.error():
                    seen.append(m.value().decode())
        assert seen == [f"before-{i}" for i in range(5)], seen
        p.commit_transaction(60)
        deadline = time.monotonic() + 20
        while len(seen) < 15 and time.monotonic() < deadline:
            for m in c.consume(100, timeout=0.2):
                if not m.error():
                    seen.append(m.value().decode())
        assert seen == ([f"before-{i}" for i in range(5)] + [f"open-{i}" for i in range(5)]
                        + [f"after-{i}" for i in range(5)]), seen
        wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 16),
                   what="the last stable offset past the commit marker")
    finally:
        c.close()


def test_transaction_across_brokers(tmp_path):
    """Markers go to partition leaders on other brokers over WriteTxnMarkers."""
    props = {**TXN_PROPS, "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2}
    controllers, brokers = start_cluster(tmp_path, props=props)
    try:
        bootstrap = brokers[0].bootstrap
        topic = unique("txn-spread")
        create(brokers[0], topic, 6, 3)
        wait_until(lambda: (lambda l: l is not None and len(set(l.values())) == 3)(leaders(brokers[0], topic)),
                   what="leaders on all three brokers")
        p = transactional_producer(bootstrap)
        p.begin_transaction()
        for i in range(60):
            p.produce(topic, value=f"a-{i}", partition=i % 6)
        p.commit_transaction(60)
        p.begin_transaction()
        for i in range(60):
            p.produce(topic, value=f"b-{i}", partition=i % 6)
        p.flush(30)
        p.abort_transaction(60)
        got = drain(bootstrap, topic, 6, 60, conf={"isolation.level": "read_committed"})
        assert sorted(m.value.decode() for m in got) == sorted(f"a-{i}" for i in range(60))
    finally:
        for n in brokers + controllers:
            n.close()


def read_committed_values(bootstrap: str, topic: str, partitions: int, expected: int) -> list[str]:
    got = drain(bootstrap, topic, partitions, expected, conf={"isolation.level": "read_committed"})
    return sorted(m.value.decode() for m in got)


def test_java_commit_and_abort(tnode):
    why = javaclient.missing()
    if why:
        pytest.skip(f"Java client unavailable: {why}")
    topic = unique("txn-java")
    create_topic(tnode.bootstrap, topic, partitions=2)
    tid = unique("java-txn")
    res = javaclient.txn(tnode.bootstrap, topic, tid, 20, commit=True)
    assert res.ok, res.explain()
    res = javaclient.txn(tnode.bootstrap, topic, tid, 20, commit=False)
    assert res.ok, res.explain()
    assert read_committed_values(tnode.bootstrap, topic, 2, 20) == sorted(f"t-{i}" for i in range(20))
    # The Java consumer with read_committed skips the aborted records as well.
    res = javaclient.consume(tnode.bootstrap, topic, 20, 30_000, None, {"isolation.level": "read_committed"})
    assert res.ok, res.explain()
    assert sorted(r.value for r in res.records) == sorted(f"t-{i}" for i in range(20))
    res = javaclient.consume(tnode.bootstrap, topic, 40, 30_000)
    assert res.ok and len(res.records) == 40, res.explain()


def test_kafka_python_commit_and_abort(tnode):
    topic = unique("txn-kp")
    create_topic(tnode.bootstrap, topic, partitions=2)
    with kafka_python_transactions(tnode.bootstrap, "kp-txn") as p:
        kafka_python_open_transaction(p, topic, [f"kp-{i}" for i in range(10)], partitions=2)
        p.commit_transaction()
        kafka_python_open_transaction(p, topic, [f"kp-aborted-{i}" for i in range(10)], partitions=2)
        p.abort_transaction()
    assert read_committed_values(tnode.bootstrap, topic, 2, 10) == sorted(f"kp-{i}" for i in range(10))


def test_aiokafka_commit_and_abort(tnode):
    from aiokafka import AIOKafkaProducer

    topic = unique("txn-aio")
    create_topic(tnode.bootstrap, topic, partitions=2)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=unique("aio-txn"))
        await p.start()
        try:
            async with p.transaction():
                for i in range(10):
                    await p.send(topic, value=f"aio-{i}".encode(), partition=i % 2)
            await p.begin_transaction()
            for i in range(10):
                await p.send(topic, value=f"aio-aborted-{i}".encode(), partition=i % 2)
            await p.abort_transaction()
        finally:
            await p.stop()

    asyncio.run(asyncio.wait_for(run(), 120))
    assert read_committed_values(tnode.bootstrap, topic, 2, 10) == sorted(f"aio-{i}" for i in range(10))


def test_a_second_instance_fences_the_first_and_aborts_its_transaction(tnode):
    topic = unique("txn-fence")
    create_topic(tnode.bootstrap, topic, partitions=1)
    tid = unique("fenced")
    first = transactional_producer(tnode.bootstrap, tid)
    first.begin_transaction()
    for i in range(5):
        first.produce(topic, value=f"zombie-{i}", partition=0)
    first.flush(30)
    second = transactional_producer(tnode.bootstrap, tid)
    # The first instance's open transaction was aborted by the second's InitProducerId, and the
    # first can no longer commit.
    with pytest.raises(KafkaException) as failure:
        first.commit_transaction(30)
    assert failure.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                           KafkaError.INVALID_PRODUCER_EPOCH), failure.value.args[0]
    second.begin_transaction()
    second.produce(topic, value="survivor", partition=0)
    second.commit_transaction(30)
    assert read_committed_values(tnode.bootstrap, topic, 1, 1) == ["survivor"]


def test_kafka_python_and_aiokafka_producers_are_fenced_by_a_second_instance(tnode):
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaProducer

    def fenced(error: BaseException) -> bool:
        return type(error).__name__ in ("ProducerFencedError", "InvalidProducerEpochError", "ProducerFenced",
                                        "InvalidProducerEpoch")

    # kafka-python: the second instance's InitProducerId aborts the first's open transaction.
    topic, tid = unique("txn-fence-kp"), unique("kp-fenced")
    create_topic(tnode.bootstrap, topic, partitions=1)
    first = KafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=tid)
    second = KafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=tid)
    try:
        first.init_transactions()
        first.begin_transaction()
        for i in range(5):
            first.send(topic, value=f"zombie-{i}".encode(), partition=0)
        first.flush()
        second.init_transactions()
        with pytest.raises(Exception) as failure:
            first.commit_transaction()
        assert fenced(failure.value), repr(failure.value)
        second.begin_transaction()
        second.send(topic, value=b"survivor", partition=0)
        second.commit_transaction()
    finally:
        first.close(5)
        second.close(10)
    assert read_committed_values(tnode.bootstrap, topic, 1, 1) == ["survivor"]

    # aiokafka, the same.
    topic, tid = unique("txn-fence-aio"), unique("aio-fenced")
    create_topic(tnode.bootstrap, topic, partitions=1)

    async def run():
        first = AIOKafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=tid)
        second = AIOKafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=tid)
        await first.start()
        try:
            await first.begin_transaction()
            for i in range(5):
                await first.send_and_wait(topic, value=f"zombie-{i}".encode(), partition=0)
            await second.start()
            with pytest.raises(Exception) as failure:
                await first.commit_transaction()
            assert fenced(failure.value), repr(failure.value)
            async with second.transaction():
                await second.send_and_wait(topic, value=b"survivor", partition=0)
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(asyncio.wait_for(run(), 120))
    assert read_committed_values(tnode.bootstrap, topic, 1, 1) == ["survivor"]


def test_java_producer_is_fenced_by_a_second_instance(tnode):
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    topic = unique("txn-fence-java")
    create_topic(tnode.bootstrap, topic, partitions=1)
    res = javaclient.fence(tnode.bootstrap, topic, unique("java-fenced"))
    assert res.ok, res.explain()
    [outcome] = [o["first_commit"] for o in res.objects if "first_commit" in o]
    assert outcome in ("ProducerFencedException", "InvalidProducerEpochException"), outcome
    assert read_committed_values(tnode.bootstrap, topic, 1, 1) == ["survivor"]


def test_a_kafka_python_transaction_left_open_is_aborted_after_its_timeout(tnode):
    topic = unique("txn-timeout-kp")
    create_topic(tnode.bootstrap, topic, partitions=1)
    with kafka_python_transactions(tnode.bootstrap, "kp-slow", transaction_timeout_ms=2000) as p:
        kafka_python_open_transaction(p, topic, [f"left-open-{i}" for i in range(5)])
        wait_aborted_by_timeout(tnode.bootstrap, topic, 5)
    assert drain(tnode.bootstrap, topic, 1, 0, timeout=3, conf={"isolation.level": "read_committed"}) == []


def test_a_transaction_left_open_is_aborted_after_its_timeout(tnode):
    topic = unique("txn-timeout")
    create_topic(tnode.bootstrap, topic, partitions=1)
    p = Producer({"bootstrap.servers": tnode.bootstrap, "transactional.id": unique("slow"),
                  "transaction.timeout.ms": 2000, **QUIET})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"left-open-{i}", partition=0)
    p.flush(30)
    wait_aborted_by_timeout(tnode.bootstrap, topic, 5, open_first=True)
    with pytest.raises(KafkaException):
        p.commit_transaction(30)
    assert drain(tnode.bootstrap, topic, 1, 0, conf={"isolation.level": "read_committed"}, linger_after=1) == []


def test_aiokafka_transaction_left_open_is_aborted_after_its_timeout(tnode):
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError as AioKafkaError

    topic = unique("txn-timeout-aio")
    create_topic(tnode.bootstrap, topic, partitions=1)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=unique("aio-slow"),
                             transaction_timeout_ms=2000)
        await p.start()
        try:
            await p.begin_transaction()
            for i in range(5):
                await p.send_and_wait(topic, value=f"left-open-{i}".encode(), partition=0)
            await asyncio.to_thread(wait_aborted_by_timeout, tnode.bootstrap, topic, 5)
            with pytest.raises(AioKafkaError):
                await p.commit_transaction()
        finally:
            await p.stop()

    asyncio.run(asyncio.wait_for(run(), 120))
    assert drain(tnode.bootstrap, topic, 1, 0, conf={"isolation.level": "read_committed"}, linger_after=1) == []


def test_java_transaction_left_open_is_aborted_after_its_timeout(tnode):
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    topic = unique("txn-timeout-java")
    create_topic(tnode.bootstrap, topic, partitions=1)
    # The producer sleeps past its transaction.timeout.ms before committing; the coordinator's
    # check (every second here) aborts the transaction meanwhile, so the commit must fail.
    res = javaclient.txn(tnode.bootstrap, topic, unique("java-slow"), 5, commit=True,
                         props={"transaction.timeout.ms": 2000, "wait.before.end.ms": 8000})
    assert not res.ok, res.explain()
    [failed] = [o["failed"] for o in res.objects if "failed" in o]
    assert failed in ("ProducerFencedException", "InvalidProducerEpochException"), res.explain()
    wait_aborted_by_timeout(tnode.bootstrap, topic, 5)
    assert drain(tnode.bootstrap, topic, 1, 0, conf={"isolation.level": "read_committed"}, linger_after=1) == []


def wait_aborted_by_timeout(bootstrap: str, topic: str, records: int, open_first: bool = False) -> None:
    """Waits until the coordinator has aborted a transaction of `records` records left open on
    partition 0 of `topic` (its check runs every
    transaction.abort.timed.out.transaction.cleanup.interval.ms): the abort marker after them
    makes the whole partition stable, so read_committed's end offset is `records` + 1. With
    `open_first`, that end offset must first be 0: the open transaction holds it back."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("rc"), "isolation.level": "read_committed",
                  **QUIET})
    try:
        if open_first:
            assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 0)
        wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, records + 1),
                   timeout=30, what="the timed-out transaction aborted")
    finally:
        c.close()


API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26
INVALID_TXN_STATE = 48
TRANSACTIONAL = 0x10


def add_partitions_v3(bootstrap: str, tid: str, pid: int, epoch: int, topic: str, partition: int) -> int:
    body = (compact_string(tid) + i64(pid) + i16(epoch)
            + kwire.compact_array([compact_string(topic) + kwire.compact_array([i32(partition)]) + kwire.EMPTY_TAGS])
            + kwire.EMPTY_TAGS)
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v2(API_ADD_PARTITIONS_TO_TXN, 3, 11) + body))
        r = Reader(c.recv_frame())
        assert r.i32() == 11
        r.skip_tags()
        r.i32()  # throttle
        assert r.compact_array_len() == 1
        r.compact_string()
        assert r.compact_array_len() == 1
        r.i32()
        return r.i16()


def end_txn_v3(bootstrap: str, tid: str, pid: int, epoch: int, commit: bool) -> int:
    body = compact_string(tid) + i64(pid) + i16(epoch) + i8(1 if commit else 0) + kwire.EMPTY_TAGS
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v2(API_END_TXN, 3, 12) + body))
        r = Reader(c.recv_frame())
        assert r.i32() == 12
        r.skip_tags()
        r.i32()  # throttle
        return r.i16()


def produce_txn(bootstrap: str, tid: str, pid: int, epoch: int, sequence: int, topic: str) -> int:
    batch = kwire.record_batch([kwire.Rec(b"k", b"v%d" % sequence)], attributes=TRANSACTIONAL, producer_id=pid,
                               producer_epoch=epoch, base_sequence=sequence)
    with kwire.Conn.to(bootstrap, 15) as c:
        c.send(kwire.produce_v9_request(13, topic, 0, batch, transactional_id=tid))
        _, topics, _ = kwire.parse_produce_v9(c.recv_frame(15))
    return topics[topic][0].error_code


def test_a_produce_outside_the_transaction_is_refused(tnode):
    """KIP-890 part 1: the leader asks the coordinator before a transactional batch opens a
    transaction on a partition, so a batch for a partition never added, or one that arrives after
    the transaction was aborted (a delayed request), cannot leave a transaction nobody ends."""
    topic = unique("txn-verify")
    create_topic(tnode.bootstrap, topic, partitions=1)
    tid = unique("verify")
    assert until_answered(lambda: find_coordinator(tnode.bootstrap, tid))[0] == NONE
    error, pid, epoch = until_answered(lambda: init_producer_id(tnode.bootstrap, tid))
    assert error == NONE
    assert produce_txn(tnode.bootstrap, tid, pid, epoch, 0, topic) == INVALID_TXN_STATE
    assert until_answered(lambda: (add_partitions_v3(tnode.bootstrap, tid, pid, epoch, topic, 0),)) == (NONE,)
    assert produce_txn(tnode.bootstrap, tid, pid, epoch, 0, topic) == NONE
    assert until_answered(lambda: (end_txn_v3(tnode.bootstrap, tid, pid, epoch, commit=False),)) == (NONE,)
    # The delayed batch of the aborted transaction: refused, and the partition stays stable.
    assert produce_txn(tnode.bootstrap, tid, pid, epoch, 1, topic) == INVALID_TXN_STATE
    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": unique("rc"), "isolation.level": "read_committed",
                  **QUIET})
    try:
        wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 2),
                   what="the last stable offset past the abort marker")
    finally:
        c.close()


def test_send_offsets_to_transaction_moves_the_group_only_on_commit(tnode):
    source, sink = unique("txn-in"), unique("txn-out")
    create_topic(tnode.bootstrap, source, partitions=1)
    create_topic(tnode.bootstrap, sink, partitions=1)
    plain = Producer({"bootstrap.servers": tnode.bootstrap, **QUIET})
    for i in range(10):
        plain.produce(source, value=f"in-{i}", partition=0)
    plain.flush(30)
    group = unique("eos")
    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": group, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    p = transactional_producer(tnode.bootstrap)
    try:
        c.subscribe([source])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            got += [m for m in c.consume(10, timeout=0.5) if not m.error()]
        assert len(got) == 10
        offsets = [TopicPartition(source, 0, 10)]

        def committed() -> int:
            return c.committed([TopicPartition(source, 0)], timeout=10)[0].offset

        p.begin_transaction()
        for m in got:
            p.produce(sink, value=b"out-" + m.value(), partition=0)
        p.send_offsets_to_transaction(offsets, c.consumer_group_metadata(), 30)
        p.abort_transaction(30)
        assert committed() < 0, "an aborted transaction's offsets are not the group's"
        p.begin_transaction()
        for m in got:
            p.produce(sink, value=b"out-" + m.value(), partition=0)
        p.send_offsets_to_transaction(offsets, c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        wait_until(lambda: committed() == 10, what="the committed offset after the commit")
    finally:
        c.close()
    assert read_committed_values(tnode.bootstrap, sink, 1, 10) == sorted(f"out-in-{i}" for i in range(10))


def group_committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **QUIET})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def offsets_only_on_commit(bootstrap: str, client: str, send_transaction, committed_value: str | None = None) -> None:
    """`send_transaction(sink, group, topic, offset, commit)` runs one transaction of `client`
    that writes a record to `sink` (`<client>-<offset>`, or `committed_value`) and sends `offset`
    of partition 0 of `topic` for `group`, then commits or aborts it: an abort leaves the group
    without an offset, a commit sets it."""
    source, sink, group = unique(f"txn-in-{client}"), unique(f"txn-out-{client}"), unique(f"eos-{client}")
    create_topic(bootstrap, source, partitions=1)
    create_topic(bootstrap, sink, partitions=1)
    send_transaction(sink, group, source, 5, False)
    assert group_committed(bootstrap, group, source) < 0, "an aborted transaction's offsets are not the group's"
    send_transaction(sink, group, source, 10, True)
    wait_until(lambda: group_committed(bootstrap, group, source) == 10, what="the committed offset after the commit")
    assert read_committed_values(bootstrap, sink, 1, 1) == [committed_value or f"{client}-10"]


def test_kafka_python_send_offsets_to_transaction(tnode):
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    with kafka_python_transactions(tnode.bootstrap, "kp-offsets") as p:

        def send_transaction(sink, group, topic, offset, commit):
            p.begin_transaction()
            p.send(sink, value=f"kafka-python-{offset}".encode(), partition=0)
            p.send_offsets_to_transaction({KTopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)}, group)
            p.commit_transaction() if commit else p.abort_transaction()

        offsets_only_on_commit(tnode.bootstrap, "kafka-python", send_transaction)


def test_java_send_offsets_to_transaction(tnode):
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    tid = unique("java-offsets")

    def send_transaction(sink, group, topic, offset, commit):
        res = javaclient.txn(tnode.bootstrap, sink, tid, 1, commit, {
            "send.offsets.group": group, "send.offsets.topic": topic, "send.offsets.offset": offset})
        assert res.ok, res.explain()

    # The Java client's one record is "t-0".
    offsets_only_on_commit(tnode.bootstrap, "java", send_transaction, committed_value="t-0")


def test_aiokafka_send_offsets_to_transaction(tnode):
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def transaction(sink, group, topic, offset, commit):
        p = AIOKafkaProducer(bootstrap_servers=tnode.bootstrap, transactional_id=f"aio-offsets-{group}")
        await p.start()
        try:
            await p.begin_transaction()
            await p.send(sink, value=f"aiokafka-{offset}".encode(), partition=0)
            await p.send_offsets_to_transaction({ATopicPartition(topic, 0): offset}, group)
            await (p.commit_transaction() if commit else p.abort_transaction())
        finally:
            await p.stop()

    offsets_only_on_commit(
        tnode.bootstrap, "aiokafka",
        lambda *args: asyncio.run(asyncio.wait_for(transaction(*args), 60)))


EOS_RECORDS = 100_000


def warnings(node) -> str:
    """A node's warning and error lines."""
    return "\n".join(line for line in node.log_text().splitlines() if " warning " in line or " error " in line)


def test_exactly_once_through_crashes(tmp_path):
    """A consume-transform-produce application (apps/eos_copy.py) copies 100,000 records in
    transactions while its process is killed -9 and restarted three times and an output partition's
    leader is killed -9 once (and restarted once its partitions have failed over): the output, read
    read_committed, holds every input record exactly once, and no broker cut its log below its
    high watermark."""
    props = {**TXN_PROPS, "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2,
             "offsets.topic.replication.factor": 3, "min.insync.replicas": 2}
    controllers, brokers = start_cluster(tmp_path, props=props)
    app = None
    try:
        bootstrap = ",".join(b.bootstrap for b in brokers)
        source, sink, group, tid = unique("eos-in"), unique("eos-out"), unique("eos"), unique("eos-app")
        create(brokers[0], source, 3, 3)
        create(brokers[0], sink, 3, 3)
        plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all", **QUIET})
        for i in range(EOS_RECORDS):
            plain.produce(source, key=str(i), value=str(i))
            if i % 10_000 == 0:
                plain.poll(0)
        assert plain.flush(120) == 0
        watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **QUIET})

        def committed() -> int:
            """The group's committed offsets, summed; a failure to read them raises (wait_until
            reports the last one), so that a stall says whether the application or the read stopped."""
            offsets = watcher.committed([TopicPartition(source, p) for p in range(3)], timeout=10)
            return sum(max(tp.offset, 0) for tp in offsets)

        app_log = tmp_path / "eos_copy.log"

        def start_app():
            # librdkafka's transaction manager logs its steps ("eos"), so a stall shows where it stopped.
            with open(app_log, "ab") as log:
                return subprocess.Popen([sys.executable, str(APPS / "eos_copy.py"), bootstrap, source, sink, group, tid],
                                        stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "EOS_COPY_DEBUG": "eos"})

        def progressed(target: float) -> bool:
            """True once the group's committed offsets pass `target`; fails at once if the application exited."""
            if app.poll() is not None:
                pytest.fail(f"the application exited {app.returncode}: {app_log.read_text()[-2000:]}")
            return committed() >= target

        app = start_app()
        faults = [(0.15, "app"), (0.35, "app"), (0.5, "leader"), (0.7, "app")]
        killed_broker = None
        def stalled(what: str) -> str:
            last = [line for line in app_log.read_text().splitlines()][-10:]
            return (f"{what}; the application's last words: {last}; brokers' warnings and last lines:\n"
                    + "\n".join(f"-- broker {b.node_id}:\n{warnings(b)}\n{b.log_tail(8)}" for b in brokers if b.is_alive()))

        for fraction, fault in faults:
            try:
                wait_until(lambda: progressed(fraction * EOS_RECORDS), timeout=240,
                           what=f"the application past {fraction:.0%}")
            except AssertionError as e:
                raise AssertionError(stalled(str(e))) from None
            if fault == "app":
                app.kill()
                app.wait()
                app = start_app()
            else:
                # The leader of an output partition, but not the group's coordinator: killing that
                # broker trips librdkafka 2.16's open bugs #5511 and #5456. Once the group
                # coordinator's broker is fenced and so left out of Metadata (Kafka lists only
                # unfenced brokers, as Runnel does), send_offsets_to_transaction waits, past its
                # timeout and past the broker's return, for some other broker to change state.
                group_coordinator = until_answered(lambda: find_coordinator(brokers[0].bootstrap, group, 0))[1]
                partition, leader = next((p, n) for p, n in sorted(leaders(brokers[0], sink).items())
                                         if n != group_coordinator)
                killed_broker = next(b for b in brokers if b.node_id == leader)
                killed_broker.kill9()
                # Its partitions fail over; then it comes back.
                live = next(b for b in brokers if b is not killed_broker)
                wait_until(lambda: (leaders(live, sink) or {}).get(partition) not in (None, -1, leader), timeout=60,
                           what="a new leader of the killed broker's partition")
                killed_broker.restart()
        try:
            wait_until(lambda: progressed(EOS_RECORDS), timeout=300, what="every input record copied")
        except AssertionError as e:
            raise AssertionError(stalled(str(e))) from None
        watcher.close()
        got = drain(bootstrap, sink, 3, EOS_RECORDS, timeout=120, conf={"isolation.level": "read_committed"},
                    linger_after=2)
        values = [m.value for m in got]
        assert len(values) == EOS_RECORDS and set(values) == {b"copy-%d" % i for i in range(EOS_RECORDS)}, (
            f"{len(values)} records, {len(set(values))} distinct")
        # No replica gave up records it knew committed (only an unclean election may).
        for b in brokers:
            assert "below its high watermark" not in b.log_text(), warnings(b)
    finally:
        if app is not None and app.poll() is None:
            app.kill()
            app.wait()
        for n in brokers + controllers:
            n.close()
