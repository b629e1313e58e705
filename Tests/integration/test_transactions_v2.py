"""Transactions v2 (KIP-890 part 2) on the wire, by hand.

No client this project tests with speaks transactions v2 (the Java client 3.9.1, librdkafka,
kafka-python and aiokafka all stop at EndTxn v4 / Produce v11), so every request here is built
from Kafka 4.0's message definitions with kwire, and none of them can be byte-checked against
Kafka's own serializer: the Java client in the tree knows no v12 Produce, v5 EndTxn or v5
TxnOffsetCommit. Each answer is read to its last byte instead.

- The `transaction.version` feature: supported 0 to 2 in ApiVersions, finalized at 2 on a cluster
  formatted without a release version (Kafka 4.x's default), at 0 (not finalized) on one formatted
  with a 3.x `--release-version`, at what `--feature transaction.version=N` says; `runnel features`
  moves it through UpdateFeatures and refuses level 3. Produce v12, EndTxn v5 and TxnOffsetCommit
  v5 are advertised whatever the level, as a Kafka 4.x broker does (the client gates them).
- A transaction of the v2 protocol: InitProducerId, a transactional Produce v12 with no
  AddPartitionsToTxn (the leader adds the partition), EndTxn v5 commit answering the bumped epoch;
  a read_committed Fetch sees the records up to the marker; the next transaction runs at the new
  epoch and its abort hides its records (aborted_transactions names it); a Produce v12 at an old
  epoch is refused with INVALID_PRODUCER_EPOCH, as Kafka's AddPartitionsToTxnManager maps the
  coordinator's PRODUCER_FENCED.
- TxnOffsetCommit v5 with no AddOffsetsToTxn: the group's partition joins the transaction, the
  offset becomes the group's on commit only.
- On a 3+3 cluster, a leader whose transaction coordinator is another broker adds the partition
  with AddPartitionsToTxn v5 (verify-only false) and gets the markers back.

Runnel only (formats nodes and changes features with the runnel CLI).
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

import kwire
from kwire import Reader, compact_array, compact_string, frame, i8, i16, i32, i64, request_header_v2
from cluster import create, leaders, start_cluster
from nodes import RunnelNode
from test_features import features, runnel
from test_transactions import (INVALID_PRODUCER_EPOCH, NONE, TRANSACTIONAL, TXN_PROPS, add_partitions_v3,
                               find_coordinator, init_producer_id, produce_txn, until_answered)
from util import QUIET, create_topic, unique, wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")

API_PRODUCE = 0
API_END_TXN = 26
API_TXN_OFFSET_COMMIT = 28
TRANSACTION_ABORTABLE = 120
TAGS = kwire.EMPTY_TAGS


@pytest.fixture(scope="module")
def tnode(module_node_factory):
    return module_node_factory(TXN_PROPS)


def exchange(bootstrap: str, api_key: int, version: int, body: bytes, timeout: float = 15) -> Reader:
    with kwire.Conn.to(bootstrap, timeout) as c:
        c.send(frame(request_header_v2(api_key, version, 21) + body))
        payload = c.recv_frame(timeout)
    assert payload is not None, f"the broker closed the connection on api {api_key} v{version}"
    r = Reader(payload)
    assert r.i32() == 21
    r.skip_tags()  # response header v1
    return r


def end_txn(bootstrap: str, tid: str, pid: int, epoch: int, commit: bool, version: int = 5) -> tuple[int, int, int]:
    """EndTxn v3+: (error, producer id, producer epoch); v5 answers the producer's next id and
    epoch after the bump (-1, -1 below v5)."""
    body = compact_string(tid) + i64(pid) + i16(epoch) + i8(1 if commit else 0) + TAGS
    r = exchange(bootstrap, API_END_TXN, version, body)
    r.i32()  # throttle
    error = r.i16()
    next_pid, next_epoch = (r.i64(), r.i16()) if version >= 5 else (-1, -1)
    r.skip_tags()
    assert r.remaining() == 0, f"EndTxn v{version}: {r.remaining()} bytes left after the last field"
    return error, next_pid, next_epoch


def produce_v12(bootstrap: str, tid: str, pid: int, epoch: int, sequence: int, topic: str,
                values: list[bytes], version: int = 12, partition: int = 0) -> int:
    """A transactional Produce (v9 to v12 share the layout); the partition's error."""
    batch = kwire.record_batch([kwire.Rec(b"k", v) for v in values], attributes=TRANSACTIONAL, producer_id=pid,
                               producer_epoch=epoch, base_sequence=sequence)
    with kwire.Conn.to(bootstrap, 15) as c:
        c.send(kwire.produce_v9_request(13, topic, partition, batch, transactional_id=tid, version=version))
        payload = c.recv_frame(15)
    assert payload is not None
    _, topics, _ = kwire.parse_produce_v9(payload)
    return topics[topic][0].error_code


def txn_offset_commit(bootstrap: str, tid: str, pid: int, epoch: int, group: str, topic: str, offset: int,
                      version: int = 5) -> int:
    """TxnOffsetCommit v3+ for partition 0 of `topic`, as a group without members commits
    (generation -1, no member id); the partition's error."""
    partition = i32(0) + i64(offset) + i32(-1) + compact_string(None) + TAGS
    body = (compact_string(tid) + compact_string(group) + i64(pid) + i16(epoch) + i32(-1) + compact_string("")
            + compact_string(None) + compact_array([compact_string(topic) + compact_array([partition]) + TAGS])
            + TAGS)
    r = exchange(bootstrap, API_TXN_OFFSET_COMMIT, version, body)
    r.i32()  # throttle
    assert r.compact_array_len() == 1 and r.compact_string() == topic
    assert r.compact_array_len() == 1 and r.i32() == 0
    error = r.i16()
    r.skip_tags()
    r.skip_tags()
    r.skip_tags()
    assert r.remaining() == 0, f"TxnOffsetCommit v{version}: {r.remaining()} bytes left"
    return error


def find_group_coordinator(bootstrap: str, group: str) -> tuple[int]:
    """FindCoordinator v1, key type 0 (a group), which creates `__consumer_offsets`: (error,)."""
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(kwire.request_header_v1(10, 1, 8) + kwire.string(group) + i8(0)))
        r = Reader(c.recv_frame())
        assert r.i32() == 8
        r.i32()  # throttle
        return (r.i16(),)


def read_committed(bootstrap: str, topic: str, partition: int = 0) -> kwire.FetchPartitionResult:
    with kwire.Conn.to(bootstrap) as c:
        c.send(kwire.fetch_request(31, {topic: [kwire.FetchPart(partition)]}, isolation_level=1))
        payload = c.recv_frame()
    assert payload is not None
    result = kwire.parse_fetch(payload)
    (part,) = result.topics[topic]
    assert part.error_code == 0, part
    return part


def visible_values(part: kwire.FetchPartitionResult) -> list[bytes]:
    """What a read_committed reader keeps of a fetch: records below the last stable offset that
    are not control records and not in an aborted transaction of the answer."""
    aborted_from = {pid: first for pid, first in part.aborted_transactions}
    out = []
    aborting: set[int] = set()
    for batch in kwire.read_batches(part.records):
        if batch.base_offset >= part.last_stable_offset:
            break
        if batch.is_control:
            aborting.discard(batch.producer_id)  # the marker ends the transaction it aborted
            continue
        if batch.producer_id in aborted_from and batch.base_offset >= aborted_from[batch.producer_id]:
            aborting.add(batch.producer_id)
            del aborted_from[batch.producer_id]
        if batch.producer_id in aborting:
            continue
        out += [v for _, _, v in batch.records]
    return out


def started(bootstrap: str, tid: str) -> tuple[int, int]:
    assert until_answered(lambda: find_coordinator(bootstrap, tid))[0] == NONE
    error, pid, epoch = until_answered(lambda: init_producer_id(bootstrap, tid))
    assert error == NONE
    return pid, epoch


def test_transaction_version_is_finalized_at_2_and_the_v2_versions_are_advertised(tnode):
    supported, finalized, _ = features(tnode.bootstrap)
    assert supported["transaction.version"] == (0, 2), supported
    assert finalized["transaction.version"] == 2, finalized
    with kwire.Conn.to(tnode.bootstrap) as c:
        c.send(kwire.api_versions_request(0, 1))
        ranges = kwire.parse_api_versions_v0(c.recv_frame()).api_keys
    assert ranges[API_PRODUCE][1] == 12
    assert ranges[API_END_TXN][1] == 5
    assert ranges[API_TXN_OFFSET_COMMIT][1] == 5

    p = runnel("features", "downgrade", "--bootstrap-server", tnode.bootstrap, "--feature", "transaction.version=1")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "transaction.version was downgraded to 1."
    wait_until(lambda: features(tnode.bootstrap)[1].get("transaction.version") == 1, what="transaction.version 1")
    # Still advertised: a Kafka 4.x client reads the finalized level and stays on v1 itself.
    p = runnel("features", "upgrade", "--bootstrap-server", tnode.bootstrap, "--feature", "transaction.version=3")
    assert p.returncode == 1
    assert "Invalid update version 3 for feature transaction.version" in p.stdout, p.stdout
    assert "only supports versions 0-2" in p.stdout, p.stdout
    p = runnel("features", "upgrade", "--bootstrap-server", tnode.bootstrap, "--feature", "transaction.version=2")
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: features(tnode.bootstrap)[1].get("transaction.version") == 2, what="transaction.version 2")


@pytest.mark.parametrize("format_args,level", [
    (["--release-version", "3.9"], None),
    (["--feature", "transaction.version=1"], 1),
    (["--release-version", "3.8", "--feature", "transaction.version=2"], 2),
])
def test_format_chooses_the_transaction_version(tmp_path, format_args, level):
    """Kafka's format picks each feature's level from the release: every 3.x release predates
    transactions v2, so `--release-version 3.9` leaves transaction.version unfinalized (0)."""
    node = RunnelNode(tmp_path / "n")
    node.format_args = format_args
    node.start()
    try:
        wait_until(lambda: "metadata.version" in features(node.bootstrap)[1], timeout=20, what="the cluster's features")
        assert features(node.bootstrap)[1].get("transaction.version") == level
    finally:
        node.close()


def test_a_transaction_of_the_v2_protocol(tnode):
    topic = unique("tv2")
    create_topic(tnode.bootstrap, topic, partitions=1)
    tid = unique("tv2")
    pid, epoch = started(tnode.bootstrap, tid)

    # A Produce v11 is still the v1 protocol: only verified, so a partition never added is refused
    # (TRANSACTION_ABORTABLE from v11, KIP-890 part 1).
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 0, topic, [b"v11"], version=11) == TRANSACTION_ABORTABLE
    # Produce v12 adds the partition itself; no AddPartitionsToTxn.
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 0, topic, [b"a0", b"a1"]) == NONE
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 2, topic, [b"a2"]) == NONE
    assert read_committed(tnode.bootstrap, topic).last_stable_offset == 0, "open: nothing stable yet"
    error, next_pid, next_epoch = until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit=True))
    assert (error, next_pid, next_epoch) == (NONE, pid, epoch + 1), "EndTxn v5 answers the bumped epoch"

    wait_until(lambda: read_committed(tnode.bootstrap, topic).last_stable_offset == 4,
               what="the commit marker (offset 3) written and the LSO past it")
    part = read_committed(tnode.bootstrap, topic)
    assert visible_values(part) == [b"a0", b"a1", b"a2"]
    batches = kwire.read_batches(part.records)
    assert batches[-1].is_control and batches[-1].producer_epoch == epoch + 1, "the marker has the bumped epoch"

    # The next transaction runs at the new epoch (sequences start again), and is aborted.
    epoch += 1
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 0, topic, [b"b0"]) == NONE
    error, next_pid, next_epoch = until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit=False))
    assert (error, next_pid, next_epoch) == (NONE, pid, epoch + 1)
    wait_until(lambda: read_committed(tnode.bootstrap, topic).last_stable_offset == 6, what="the abort marker")
    part = read_committed(tnode.bootstrap, topic)
    assert part.aborted_transactions == [(pid, 4)], part.aborted_transactions
    assert visible_values(part) == [b"a0", b"a1", b"a2"]

    # A Produce of the ended epochs: the coordinator says PRODUCER_FENCED, the producer is told
    # INVALID_PRODUCER_EPOCH; nothing is appended.
    for old in (epoch - 1, epoch):
        assert produce_v12(tnode.bootstrap, tid, pid, old, 1, topic, [b"late"]) == INVALID_PRODUCER_EPOCH
    assert read_committed(tnode.bootstrap, topic).high_watermark == 6

    # A third transaction at the latest epoch commits; a confluent-kafka read_committed consumer
    # agrees with the raw fetch.
    epoch += 1
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 0, topic, [b"c0"]) == NONE
    assert until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit=True))[:2] == (NONE, pid)
    c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": unique("rc"), "isolation.level": "read_committed",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **QUIET})
    try:
        c.assign([TopicPartition(topic, 0)])
        got: list[bytes] = []
        wait_until(lambda: got.extend(m.value() for m in c.consume(10, timeout=0.5) if not m.error()) or len(got) >= 4,
                   what="the committed records")
        assert got == [b"a0", b"a1", b"a2", b"c0"]
    finally:
        c.close()


def test_a_v1_transaction_keeps_its_epoch_on_a_v2_cluster(tnode):
    """AddPartitionsToTxn v3 and EndTxn v4 on a transaction.version 2 cluster are the v1 protocol
    (Kafka's transactionVersionForEndTxn reads the request version): no bump, the v4 answer has no
    producer id or epoch, and the next transaction runs at the same epoch."""
    topic = unique("tv1-on-tv2")
    create_topic(tnode.bootstrap, topic, partitions=1)
    tid = unique("tv1")
    pid, epoch = started(tnode.bootstrap, tid)
    for sequence, commit in ((0, True), (1, False)):
        assert until_answered(lambda: (add_partitions_v3(tnode.bootstrap, tid, pid, epoch, topic, 0),)) == (NONE,)
        assert produce_txn(tnode.bootstrap, tid, pid, epoch, sequence, topic) == NONE
        assert until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit, version=4)) == (NONE, -1, -1)
    wait_until(lambda: read_committed(tnode.bootstrap, topic).last_stable_offset == 4, what="both markers")
    part = read_committed(tnode.bootstrap, topic)
    assert [b.producer_epoch for b in kwire.read_batches(part.records)] == [epoch] * 4
    assert part.aborted_transactions == [(pid, 2)]


def test_txn_offset_commit_v5_adds_the_group_to_the_transaction(tnode):
    topic = unique("tv2-offsets")
    create_topic(tnode.bootstrap, topic, partitions=1)
    group = unique("tv2-group")
    tid = unique("tv2-offsets")
    pid, epoch = started(tnode.bootstrap, tid)
    assert until_answered(lambda: find_group_coordinator(tnode.bootstrap, group)) == (NONE,)

    def committed() -> int:
        c = Consumer({"bootstrap.servers": tnode.bootstrap, "group.id": group, **QUIET})
        try:
            return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        finally:
            c.close()

    # Aborted: the offset never becomes the group's.
    assert until_answered(lambda: (txn_offset_commit(tnode.bootstrap, tid, pid, epoch, group, topic, 5),)) == (NONE,)
    assert until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit=False))[0] == NONE
    epoch += 1
    assert committed() < 0
    # Committed, with a produce in the same transaction.
    assert produce_v12(tnode.bootstrap, tid, pid, epoch, 0, topic, [b"out"]) == NONE
    assert txn_offset_commit(tnode.bootstrap, tid, pid, epoch, group, topic, 7) == NONE
    assert until_answered(lambda: end_txn(tnode.bootstrap, tid, pid, epoch, commit=True))[0] == NONE
    wait_until(lambda: committed() == 7, what="the group's offset after the commit")
    # The ended epoch is refused.
    assert txn_offset_commit(tnode.bootstrap, tid, pid, epoch, group, topic, 9) == INVALID_PRODUCER_EPOCH


def test_a_leader_adds_its_partition_through_a_coordinator_on_another_broker(tmp_path):
    """The leader of the produced partition is not the transaction's coordinator: it sends
    AddPartitionsToTxn v5 (verify-only false) to the coordinator's broker, and the markers of the
    EndTxn v5 come back to it."""
    props = {**TXN_PROPS, "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2}
    controllers, brokers = start_cluster(tmp_path, props=props)
    try:
        by_id = {b.node_id: b.bootstrap for b in brokers}
        topic = unique("tv2-spread")
        create(brokers[0], topic, 3, 1)
        wait_until(lambda: (lambda l: l is not None and len(set(l.values())) == 3)(leaders(brokers[0], topic)),
                   what="leaders on all three brokers")
        tid = unique("tv2-remote")
        error, coordinator, host, port = until_answered(lambda: find_coordinator(brokers[0].bootstrap, tid))
        assert error == NONE
        coordinator_bootstrap = f"{host}:{port}"
        pid, epoch = started(coordinator_bootstrap, tid)
        partition, leader = next((p, l) for p, l in sorted(leaders(brokers[0], topic).items()) if l != coordinator)
        leader_bootstrap = by_id[leader]
        assert until_answered(lambda: (produce_v12(leader_bootstrap, tid, pid, epoch, 0, topic, [b"far"],
                                                   partition=partition),)) == (NONE,)
        assert end_txn(coordinator_bootstrap, tid, pid, epoch, commit=True) == (NONE, pid, epoch + 1)
        wait_until(lambda: read_committed(leader_bootstrap, topic, partition).last_stable_offset == 2,
                   what="the commit marker on the other broker")
        assert visible_values(read_committed(leader_bootstrap, topic, partition)) == [b"far"]
        # The ended epoch, checked by the remote coordinator.
        assert produce_v12(leader_bootstrap, tid, pid, epoch, 1, topic, [b"late"],
                           partition=partition) == INVALID_PRODUCER_EPOCH
    finally:
        for n in brokers + controllers:
            n.close()
