"""Apache Kafka's own Java client (kafka-clients 3.9.1), the reference implementation, works
against the broker unchanged.

The Java producer with its default settings (in 3.x: acks=all and enable.idempotence=true, so an
InitProducerId first and then sequenced batches) sends 2,000 keyed messages to a 3-partition
topic: every send is acknowledged, offsets in each partition are contiguous from 0 in send order,
a key always lands in the same partition, and the batches on disk carry the producer id and
gap-free sequence numbers (so idempotence really was on). The Java consumer reads exactly those
2,000 messages back, in order per partition and with no duplicates, once assigning the partitions
itself and once as a member of a consumer group that commits its offsets (a later member of the
group then starts at the committed offsets). The Java AdminClient creates a topic with
partitions, replication factor and configs, describes it (leader, replicas, ISR, topic id) and
its configs, and gets Kafka's errors for a duplicate topic and an impossible replication factor.

Needs `java`, `javac` and the kafka-clients jars (tools/test installs them; see javaclient.py);
the tests skip with the reason when they are missing. The group test skips while the broker does
not advertise the consumer-group APIs.
"""

from __future__ import annotations

import struct
from collections import Counter, defaultdict

import pytest

import javaclient
import kwire
from util import create_topic, is_runnel, known_deviation, unique

COUNT = 2000
PARTITIONS = 3
# The APIs a Java consumer in a group needs (key: name), from FindCoordinator to LeaveGroup.
GROUP_APIS = {8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
              12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup"}


@pytest.fixture(scope="module")
def java():
    why = javaclient.missing()
    if why:
        pytest.skip(f"Java client unavailable: {why}")
    javaclient.compiled_dir()   # compile once, outside any test's timing
    return javaclient


@pytest.fixture(scope="module")
def produced(java, broker):
    """A 3-partition topic and the result of the Java producer's 2,000 default-settings sends."""
    topic = unique("java")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    return topic, java.produce(broker.bootstrap, topic, COUNT)


def advertised_apis(bootstrap: str) -> dict[int, tuple[int, int]]:
    with kwire.Conn.to(bootstrap, 10) as c:
        c.send(kwire.api_versions_request(0, 7))
        return kwire.parse_api_versions_v0(c.recv_frame(10)).api_keys


def batch_headers(segment) -> list[tuple[int, int, int, int, int]]:
    """(base offset, record count, producer id, producer epoch, base sequence) of each batch in a
    segment file (layout in kwire.py)."""
    data = segment.read_bytes()
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack(">qi", data[pos:pos + 12])
        producer_id, epoch, sequence, count = struct.unpack(">qhii", data[pos + 43:pos + 61])
        out.append((base, count, producer_id, epoch, sequence))
        pos += 12 + length
    return out


def by_partition(records) -> dict[int, list[tuple[int, str]]]:
    out = defaultdict(list)
    for r in records:
        out[r.partition].append((r.offset, r.value))
    return dict(out)


def assert_reads_exactly(acked, got, what: str):
    """`got` holds the acknowledged records exactly once each, in offset order per partition."""
    dupes = sorted(v for v, n in Counter(r.value for r in got).items() if n > 1)
    assert not dupes, f"{what}: duplicates {dupes[:10]}"
    assert len(got) == len(acked), f"{what}: read {len(got)} records, {len(acked)} were acknowledged"
    want = {p: sorted(rs) for p, rs in by_partition(acked).items()}
    have = by_partition(got)
    for p in sorted(set(want) | set(have)):
        assert have.get(p) == want.get(p), (
            f"{what}: partition {p} differs; first read {have.get(p, [])[:5]}, "
            f"first acknowledged {want.get(p, [])[:5]}")


# ----------------------------------------------------------------------------------------------


def test_java_producer_defaults_are_acknowledged_in_order(broker, produced):
    topic, res = produced
    assert res.ok, res.explain()
    acked = res.records
    assert [r.value for r in acked] == [f"m-{i}" for i in range(COUNT)], "not every send was acknowledged"

    key_partition = {}
    for r in acked:
        assert key_partition.setdefault(r.key, r.partition) == r.partition, f"key {r.key} in two partitions"
    parts = by_partition(acked)
    assert sorted(parts) == list(range(PARTITIONS)), f"keys k-0..k-9 used partitions {sorted(parts)}"
    for p, rs in parts.items():   # send order within a partition = offset order, from 0, no gaps
        assert [o for o, _ in rs] == list(range(len(rs))), f"partition {p} offsets {[o for o, _ in rs][:10]}..."

    if not is_runnel():
        return   # the segment files below are Runnel's (Tansu keeps them in memory)
    for p, rs in parts.items():
        batches = [b for seg in sorted(broker.partition_dir(topic, p).glob("*.log")) for b in batch_headers(seg)]
        assert sum(b[1] for b in batches) == len(rs), f"partition {p}: batches {batches}"
        producer_ids = {(b[2], b[3]) for b in batches}
        assert len(producer_ids) == 1 and next(iter(producer_ids))[0] >= 0, (
            f"partition {p}: batches not from one idempotent producer: {batches}")
        assert [b[4] for b in batches] == [b[0] for b in batches], (
            f"partition {p}: base sequences do not follow the offsets from 0: {batches}")


def test_java_consumer_reads_exactly_what_was_acknowledged(broker, produced, java):
    topic, res = produced
    assert res.ok, f"the producer failed: {res.explain()}"
    got = java.consume(broker.bootstrap, topic, COUNT, 60_000)
    assert got.ok, got.explain()
    assert_reads_exactly(res.records, got.records, "assign()")


def test_java_consumer_group_reads_and_commits(broker, produced, java):
    missing = {k: n for k, n in GROUP_APIS.items() if k not in advertised_apis(broker.bootstrap)}
    if missing:
        pytest.skip(f"{broker.kind} does not serve consumer groups yet: ApiVersions lacks "
                    + ", ".join(f"{n} ({k})" for k, n in sorted(missing.items())))
    topic, res = produced
    assert res.ok, f"the producer failed: {res.explain()}"
    group = unique("java-group")
    got = java.consume(broker.bootstrap, topic, COUNT, 90_000, group=group)
    assert got.ok, got.explain()
    assert_reads_exactly(res.records, got.records, f"group {group}")
    ends = {p: len(rs) for p, rs in by_partition(res.records).items()}
    assert java.committed(got) == ends, "the group's committed offsets are not the partitions' ends"

    # A new member of the same group starts where the group left off: it reads only what is new.
    more = java.produce(broker.bootstrap, topic, 10)
    assert more.ok, more.explain()
    again = java.consume(broker.bootstrap, topic, 10, 90_000, group=group)
    assert again.ok, again.explain()
    assert_reads_exactly(more.records, again.records, f"group {group} after its commit")


def test_java_static_member_restart_skips_the_rebalance(broker, java):
    """KIP-345 with KIP-814 (JoinGroup v9): a Java consumer with group.instance.id leads its group,
    exits without leaving, and a new process with the same instance id takes its place: it is told
    to skip the assignment, gets the old one back and reads on from the commits, with no rebalance."""
    topic, group = unique("java-static"), unique("java-static-group")
    create_topic(broker.bootstrap, topic, 2)
    first = java.produce(broker.bootstrap, topic, 10)
    assert first.ok, first.explain()
    props = {"group.instance.id": "inst-j", "session.timeout.ms": 45_000}
    got = java.consume(broker.bootstrap, topic, 10, 90_000, group=group, props=props)
    assert got.ok, got.explain()
    assert_reads_exactly(first.records, got.records, "first process")
    more = java.produce(broker.bootstrap, topic, 5)
    assert more.ok, more.explain()
    again = java.consume(broker.bootstrap, topic, 5, 90_000, group=group, props=props)
    assert again.ok, again.explain()
    assert_reads_exactly(more.records, again.records, "second process")
    if is_runnel():
        log = [ln for ln in broker.log_text().splitlines() if f"group {group} " in ln]
        assert sum("stabilized" in ln for ln in log) == 1, "the restart rebalanced:\n" + "\n".join(log)
        assert any("static member inst-j replaced" in ln for ln in log), "\n".join(log)


def test_java_admin_creates_and_describes_a_topic(broker, java):
    topic = unique("java-admin")
    res = java.admin(broker.bootstrap, "create", topic, 4, 1,
                     "retention.ms=3600000", "max.message.bytes=2000000", "cleanup.policy=delete")
    assert res.ok and res.objects == [{"created": topic}], res.explain()

    res = java.admin(broker.bootstrap, "describe", topic)
    assert res.ok, res.explain()
    d = res.objects[0]
    assert d["topic"] == topic and d["internal"] is False
    assert d["topicId"] not in ("AAAAAAAAAAAAAAAAAAAAAA", "null", ""), d
    node = broker.node_id
    assert d["partitions"] == [{"partition": p, "leader": node, "replicas": [node], "isr": [node]}
                               for p in range(4)], d

    # By its id: the Java client names the topic "" beside the id, and Kafka looks it up by the id.
    res = java.admin(broker.bootstrap, "describe-by-id", topic)
    assert res.ok, res.explain()
    assert res.objects[0] == d

    res = java.admin(broker.bootstrap, "create", topic, 4, 1)
    assert res.returncode == 1 and res.objects[0]["error"] == "TopicExistsException", res.explain()

    res = java.admin(broker.bootstrap, "configs", topic)
    assert res.ok, res.explain()
    configs = res.objects[0]
    with known_deviation(broker, ("tansu",), "reports topic configs given at creation as defaults"):
        for name, value in {"retention.ms": "3600000", "max.message.bytes": "2000000",
                            "cleanup.policy": "delete"}.items():
            assert configs[name] == {"value": value, "source": "DYNAMIC_TOPIC_CONFIG"}, (name, configs.get(name))
        assert configs["segment.bytes"]["source"] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG"), configs["segment.bytes"]

    with known_deviation(broker, ("tansu",), "accepts any replication factor"):
        res = java.admin(broker.bootstrap, "create", unique("java-rf"), 1, 3)
        assert res.returncode == 1 and res.objects[0]["error"] == "InvalidReplicationFactorException", res.explain()


def test_cluster_wide_min_insync_replicas_takes_effect(broker, java):
    """A cluster-wide dynamic `min.insync.replicas` (IncrementalAlterConfigs on the default broker
    resource, from the Java admin client) applies to every topic without an override at once:
    acks=all on a one-replica topic gets NOT_ENOUGH_REPLICAS while it is 2, and works again once
    it is deleted."""
    from confluent_kafka import KafkaError, Producer
    from util import QUIET

    topic = unique("java-dyn-isr")
    create_topic(broker.bootstrap, topic, 1)

    def send():
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0,
                      "message.timeout.ms": 5000, **QUIET})
        out = []
        p.produce(topic, b"x", partition=0, on_delivery=lambda err, _m: out.append(err))
        p.flush(10)
        return out[0]

    assert send() is None
    res = java.admin(broker.bootstrap, "broker-default", "min.insync.replicas", "2")
    assert res.ok, res.explain()
    try:
        err = send()
        assert err is not None and err.code() == KafkaError.NOT_ENOUGH_REPLICAS, err
    finally:
        res = java.admin(broker.bootstrap, "broker-default", "min.insync.replicas", "-")
        assert res.ok, res.explain()
    assert send() is None
