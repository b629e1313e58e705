"""The admin APIs behave as Kafka's do, through confluent-kafka's AdminClient and kafka-python's.

Creating and deleting topics, with the Kafka error for each bad request (TOPIC_ALREADY_EXISTS,
INVALID_PARTITIONS for 0 partitions, INVALID_REPLICATION_FACTOR for more replicas than brokers,
INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION on a second delete); adding partitions; describing
the configs of a topic and of broker 1 with value, source and is-default as Kafka reports them;
incremental SET / DELETE / APPEND / SUBTRACT on a topic config, seen in the next describe;
delete_records moving the low watermark; describe_cluster naming this node and its cluster id;
and auto topic creation on produce when enabled (and not when disabled). kafka-python 2.x's admin
client (2.0.2 and 2.3.3, which tools/test puts beside the venv's 3.x) lists and describes topics,
and its producer and group consumer write and read a topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic)

from util import QUIET, admin, create_topic, drain, known_deviation, unique, wait_until, watermarks

# Kafka's defaults for the topic configs every broker lists.
TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "max.message.bytes": "1048588",
    "compression.type": "producer",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
}
# Topic configs Kafka always lists for a topic (a subset of LogConfig's keys).
TOPIC_KEYS = set(TOPIC_DEFAULTS) | {"segment.ms", "delete.retention.ms", "file.delete.delay.ms",
                                    "flush.messages", "flush.ms", "index.interval.bytes",
                                    "min.cleanable.dirty.ratio", "segment.index.bytes",
                                    "unclean.leader.election.enable"}


def err_code(fut, timeout: float = 30.0) -> int:
    """The Kafka error code a future fails with, or 0 if it succeeds."""
    try:
        fut.result(timeout)
        return 0
    except KafkaException as e:
        return e.args[0].code()


def topic_names(a) -> set[str]:
    return set(a.list_topics(timeout=10).topics)


def describe(a, rtype: str, name: str) -> dict:
    res = ConfigResource(rtype, name)
    return a.describe_configs([res], request_timeout=30)[res].result(30)


# ----------------------------------------------------------------------------------------------


def test_create_and_delete_topics(broker):
    a = admin(broker.bootstrap)
    t = unique("adm")
    assert err_code(a.create_topics([NewTopic(t, 3, 1)])[t]) == 0
    wait_until(lambda: t in topic_names(a) and len(a.list_topics(t, timeout=5).topics[t].partitions) == 3,
               30, 0.2, f"{t} with 3 partitions in metadata")

    assert err_code(a.create_topics([NewTopic(t, 3, 1)])[t]) == KafkaError.TOPIC_ALREADY_EXISTS

    assert err_code(a.delete_topics([t], operation_timeout=30)[t]) == 0
    wait_until(lambda: t not in topic_names(a), 30, 0.2, f"{t} to disappear from metadata")
    assert err_code(a.delete_topics([t])[t]) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # The name can be used again, starting from offset 0.
    create_topic(broker.bootstrap, t, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, **QUIET})
    res = []
    p.produce(t, value=b"again", on_delivery=lambda e, m: res.append((e, m.offset())))
    assert p.flush(30) == 0 and res == [(None, 0)]

    with known_deviation(broker, ("tansu",), "accepts 0 partitions and any replication factor"):
        z = unique("zero")
        assert err_code(a.create_topics([NewTopic(z, 0, 1)])[z]) == KafkaError.INVALID_PARTITIONS
        r = unique("rf")
        assert err_code(a.create_topics([NewTopic(r, 1, 3)])[r]) == KafkaError.INVALID_REPLICATION_FACTOR
        assert z not in topic_names(a) and r not in topic_names(a)

        bad = unique("badcfg")
        assert err_code(a.create_topics([NewTopic(bad, 1, 1, config={"retention.ms": "soon"})])[bad]) \
            == KafkaError.INVALID_CONFIG
        v = unique("validate")
        assert err_code(a.create_topics([NewTopic(v, 1, 1)], validate_only=True)[v]) == 0
        assert v not in topic_names(a), "validate_only created the topic"


def test_kafka_python_create_delete(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

    adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        t = unique("kpadm")
        adm.create_topics({t: {"num_partitions": 2, "replication_factor": 1,
                               "configs": {"retention.ms": "3600000"}}}, wait_for_metadata=True)
        assert t in adm.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            adm.create_topics({t: {"num_partitions": 2, "replication_factor": 1}})
        desc = {d["name"]: d for d in adm.describe_topics([t])}
        assert len(desc[t]["partitions"]) == 2
        adm.delete_topics([t])
        wait_until(lambda: t not in adm.list_topics(), 30, 0.2, f"{t} deleted")
        with pytest.raises(UnknownTopicOrPartitionError):
            adm.delete_topics([t])
    finally:
        adm.close()


KAFKA_PYTHON_2 = [v for v in ("2.0.2", "2.3.3") if v != "2.0.2" or sys.version_info < (3, 12)]


def run_kafka_python_2(version: str, script: str, *args: str) -> dict:
    folder = Path(__file__).resolve().parents[2] / ".venv" / f"kafka-python-{version}"
    assert (folder / "kafka").is_dir(), f"{folder} is missing: tools/test installs kafka-python {version} there"
    p = subprocess.run([sys.executable, "-c", script, *args], env={**os.environ, "PYTHONPATH": str(folder)},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


KAFKA_PYTHON_2_ADMIN = r"""
import json, sys, time
import kafka
from kafka.admin import KafkaAdminClient, NewTopic
bootstrap, topic = sys.argv[1], sys.argv[2]
adm = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
adm.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
deadline = time.monotonic() + 30
while topic not in adm.list_topics() and time.monotonic() < deadline:
    time.sleep(0.2)
out = {"version": kafka.__version__, "topics": adm.list_topics(),
       "described": adm.describe_topics([topic]), "every": [t["topic"] for t in adm.describe_topics()],
       "cluster": adm.describe_cluster()}
adm.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("version", KAFKA_PYTHON_2)
def test_kafka_python_2_admin_lists_and_describes_topics(broker, version):
    """kafka-python 2.x (an older client many applications still pin) creates, lists and
    describes topics and describes the cluster, as it does against Kafka."""
    topic = unique("kp2adm")
    out = run_kafka_python_2(version, KAFKA_PYTHON_2_ADMIN, broker.bootstrap, topic)
    assert out["version"] == version
    assert topic in out["topics"] and topic in out["every"]
    [described] = out["described"]
    assert described["error_code"] == 0 and described["topic"] == topic and not described["is_internal"]
    assert sorted(q["partition"] for q in described["partitions"]) == [0, 1, 2]
    assert all(q["error_code"] == 0 and q["leader"] >= 0 and q["isr"] for q in described["partitions"])
    assert out["cluster"]["cluster_id"] and out["cluster"]["brokers"]


KAFKA_PYTHON_2_CLIENTS = r"""
import json, sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
bootstrap, topic = sys.argv[1], sys.argv[2]
p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip", linger_ms=5)
for i in range(100):
    p.send(topic, key=b"k%d" % (i % 7), value=b"v%d" % i)
p.flush()
p.close()
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="g-" + topic, auto_offset_reset="earliest",
                  enable_auto_commit=False, consumer_timeout_ms=15000)
values = []
for m in c:
    values.append(m.value.decode())
    if len(values) == 100:
        break
c.commit()
parts = sorted(c.partitions_for_topic(topic))
committed = sum(c.committed(TopicPartition(topic, q)) or 0 for q in parts)
c.close()
print(json.dumps({"values": values, "committed": committed}))
"""


@pytest.mark.parametrize("version", KAFKA_PYTHON_2)
def test_kafka_python_2_produces_and_a_group_consumes(broker, version):
    """kafka-python 2.x writes gzip batches with acks=all, and a group of it reads all of them and
    commits their end."""
    topic = unique("kp2rw")
    create_topic(broker.bootstrap, topic, 3)
    out = run_kafka_python_2(version, KAFKA_PYTHON_2_CLIENTS, broker.bootstrap, topic)
    assert sorted(out["values"]) == sorted(f"v{i}" for i in range(100))
    assert out["committed"] == 100


def test_create_partitions(broker):
    a = admin(broker.bootstrap)
    t = unique("grow")
    create_topic(broker.bootstrap, t, 1)
    with known_deviation(broker, ("tansu",), "has no CreatePartitions"):
        assert err_code(a.create_partitions([NewPartitions(t, 3)])[t]) == 0
        wait_until(lambda: len(a.list_topics(t, timeout=5).topics[t].partitions) == 3, 30, 0.2,
                   f"{t} to have 3 partitions")
        # Shrinking is refused.
        assert err_code(a.create_partitions([NewPartitions(t, 2)])[t]) == KafkaError.INVALID_PARTITIONS
        # The new partition takes writes.
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", **QUIET})
        res = []
        p.produce(t, value=b"p2", partition=2, on_delivery=lambda e, m: res.append((e, m.partition(), m.offset())))
        assert p.flush(30) == 0 and res == [(None, 2, 0)]

        # kafka-python grows it again.
        from kafka.admin import KafkaAdminClient
        adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        try:
            adm.create_partitions({t: 4})
        finally:
            adm.close()
        wait_until(lambda: len(a.list_topics(t, timeout=5).topics[t].partitions) == 4, 30, 0.2,
                   f"{t} to have 4 partitions")


def test_describe_configs_topic(broker):
    a = admin(broker.bootstrap)
    t = unique("cfg")
    create_topic(broker.bootstrap, t, 1, {"retention.ms": "3600000"})
    with known_deviation(broker, ("tansu",), "describes no configs"):
        cfg = describe(a, "topic", t)
        missing = TOPIC_KEYS - set(cfg)
        assert not missing, f"topic configs missing from DescribeConfigs: {sorted(missing)}"
        for name, entry in cfg.items():
            assert entry.name == name
            assert entry.source in {s.value for s in ConfigSource} or isinstance(entry.source, int)
            if not entry.is_sensitive:
                assert entry.value is not None or name not in TOPIC_KEYS, f"{name} has no value"
        # The override made at creation.
        r = cfg["retention.ms"]
        assert (r.value, r.source, r.is_default) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False)
        # Everything else at Kafka's defaults.
        for name, want in TOPIC_DEFAULTS.items():
            if name == "retention.ms":
                continue
            e = cfg[name]
            assert e.value == want, f"{name}={e.value!r}, Kafka's default is {want!r}"
            assert e.is_default, f"{name} should be a default"
            assert e.source == ConfigSource.DEFAULT_CONFIG.value, f"{name} source {e.source}"

    # kafka-python sees the same override (config_filter 'modified' = non-defaults only).
    from kafka.admin import ConfigResource as KCR, ConfigResourceType, KafkaAdminClient
    adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        with known_deviation(broker, ("tansu",), "describes no configs"):
            res = adm.describe_configs([KCR(ConfigResourceType.TOPIC, t)], config_filter="all")
            flat = repr(res)
            assert "retention.ms" in flat and "3600000" in flat and "segment.bytes" in flat, flat[:2000]
    finally:
        adm.close()


def test_describe_configs_broker(broker):
    a = admin(broker.bootstrap)
    with known_deviation(broker, ("tansu",), "describes no configs"):
        cfg = describe(a, "broker", str(broker.node_id))
        assert len(cfg) >= 20, f"only {len(cfg)} broker configs listed"
        static = ConfigSource.STATIC_BROKER_CONFIG.value
        default = ConfigSource.DEFAULT_CONFIG.value
        want = {
            "node.id": (str(broker.node_id), static, False),
            "num.partitions": ("1", static, False),
            "auto.create.topics.enable": ("true", static, False),
            "log.segment.bytes": ("1073741824", default, True),
            "message.max.bytes": ("1048588", default, True),
        }
        for name, (value, source, is_default) in want.items():
            assert name in cfg, f"broker config {name} not listed"
            e = cfg[name]
            assert (e.value, e.source, e.is_default) == (value, source, is_default), \
                f"{name}: value={e.value!r} source={e.source} is_default={e.is_default}, " \
                f"want {value!r} {source} {is_default}"
        assert cfg["log.dirs"].value == str(broker.data_dir)


def test_incremental_alter_configs(broker):
    a = admin(broker.bootstrap)
    t = unique("alter")
    create_topic(broker.bootstrap, t, 1)
    def alter(*entries):
        r = ConfigResource("topic", t, incremental_configs=list(entries))
        return a.incremental_alter_configs([r])[r].result(30)

    def value(name):
        return describe(a, "topic", t)[name]

    with known_deviation(broker, ("tansu",), "describes no configs"):
        alter(ConfigEntry("retention.ms", "123456", incremental_operation=AlterConfigOpType.SET))
        e = value("retention.ms")
        assert (e.value, e.is_default, e.source) == ("123456", False, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

        # APPEND to a list config starts from its (default) value.
        alter(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
        assert value("cleanup.policy").value == "delete,compact"
        alter(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT))
        assert value("cleanup.policy").value == "compact"

        # DELETE returns a key to its default.
        alter(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
        e = value("retention.ms")
        assert (e.value, e.is_default, e.source) == ("604800000", True, ConfigSource.DEFAULT_CONFIG.value)

        # Several operations in one request, and a bad value rejected as a whole.
        alter(ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
              ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE))
        cfg = describe(a, "topic", t)
        assert cfg["segment.bytes"].value == "1048576" and cfg["cleanup.policy"].value == "delete"
        r = ConfigResource("topic", t, incremental_configs=[
            ConfigEntry("retention.ms", "never", incremental_operation=AlterConfigOpType.SET)])
        assert err_code(a.incremental_alter_configs([r])[r]) == KafkaError.INVALID_CONFIG
        assert describe(a, "topic", t)["retention.ms"].is_default


def test_delete_records(broker):
    a = admin(broker.bootstrap)
    t = unique("delrec")
    create_topic(broker.bootstrap, t, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, **QUIET})
    for i in range(100):
        p.produce(t, value=b"%d" % i)
    assert p.flush(30) == 0
    with known_deviation(broker, ("tansu",), "has no DeleteRecords; its high watermark is a batch base"):
        assert watermarks(broker.bootstrap, t, 0) == (0, 100)
        fut = a.delete_records([TopicPartition(t, 0, 40)], operation_timeout=30)
        r = list(fut.values())[0].result(30)
        assert r.low_watermark == 40, r
        assert watermarks(broker.bootstrap, t, 0) == (40, 100)
        msgs = drain(broker.bootstrap, t, 1, 60)
        assert [m.offset for m in msgs] == list(range(40, 100))
        assert msgs[0].value == b"40"

        # kafka-python moves it further.
        from kafka import TopicPartition as KTP
        from kafka.admin import KafkaAdminClient
        adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        try:
            adm.delete_records({KTP(t, 0): 70})
        finally:
            adm.close()
        assert watermarks(broker.bootstrap, t, 0) == (70, 100)
        # Beyond the high watermark is an error.
        fut = a.delete_records([TopicPartition(t, 0, 500)], operation_timeout=30)
        assert err_code(list(fut.values())[0]) == KafkaError.OFFSET_OUT_OF_RANGE


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    with known_deviation(broker, ("tansu",), "describe_cluster"):
        d = a.describe_cluster(request_timeout=30).result(30)
        assert [(n.id, n.host, n.port) for n in d.nodes] == [(broker.node_id, broker.host, broker.port)]
        assert d.controller is not None
        if broker.kind == "runnel":
            assert d.cluster_id == broker.cluster_id
    md = a.list_topics(timeout=10)
    assert list(md.brokers) == [broker.node_id]
    assert md.brokers[broker.node_id].port == broker.port

    from kafka.admin import KafkaAdminClient
    adm = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        c = adm.describe_cluster()
        assert [(b["broker_id"], b["host"], b["port"]) for b in c["brokers"]] == \
            [(broker.node_id, broker.host, broker.port)]
        assert c["controller_id"] == broker.node_id
        if broker.kind == "runnel":
            assert c["cluster_id"] == broker.cluster_id
    finally:
        adm.close()


def test_auto_topic_creation(broker):
    t = unique("auto")
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 30000, **QUIET})
    res = []
    p.produce(t, value=b"hello", on_delivery=lambda e, m: res.append((e, m.partition(), m.offset())))
    assert p.flush(40) == 0
    assert len(res) == 1 and res[0][0] is None and res[0][2] == 0, res
    md = admin(broker.bootstrap).list_topics(t, timeout=10)
    assert t in md.topics
    if broker.kind == "runnel":
        assert len(md.topics[t].partitions) == 1   # num.partitions=1
        assert res[0][1] == 0


def test_auto_topic_creation_disabled(require_runnel, node_factory):
    node = node_factory({"auto.create.topics.enable": "false"})
    t = unique("noauto")
    p = Producer({"bootstrap.servers": node.bootstrap, "message.timeout.ms": 5000, **QUIET})
    res = []
    p.produce(t, value=b"hello", on_delivery=lambda e, m: res.append(e))
    p.flush(20)
    assert len(res) == 1 and res[0] is not None, f"produce to a missing topic succeeded: {res}"
    md = admin(node.bootstrap).list_topics(timeout=10)
    assert t not in md.topics
