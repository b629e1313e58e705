"""The Kafka tools `runnel` has at parity with Kafka's, each against one 3 controller + 3 broker
cluster shared by the module, and checked against what confluent-kafka (librdkafka) sees or does.

- `runnel get-offsets` (kafka-get-offsets): earliest, latest, max-timestamp and timestamp
  lookups print `topic:partition:offset` equal to confluent-kafka's offsets_for_times and
  watermarks; --json adds the record timestamp and leader epoch; a topic regex and --partitions.

Failures exit 1 with one sentence on stderr. Runnel only (runs the runnel binary).
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from cluster import start_cluster
from test_cli_tools import ok, ok_json, one_sentence_failure, runnel
from util import QUIET, is_runnel, unique

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against a Runnel cluster")


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    controllers, brokers = start_cluster(tmp_path_factory.mktemp("kafka-tools"),
                                         props={"auto.leader.rebalance.enable": "false",
                                                "group.initial.rebalance.delay.ms": "0"})
    try:
        yield brokers
    finally:
        for n in brokers + controllers:
            n.close()


@pytest.fixture(scope="module")
def bootstrap(brokers) -> str:
    return ",".join(n.bootstrap for n in brokers)


def produce(bootstrap: str, topic: str, records: list[tuple[int, int]], **conf) -> None:
    """Produces (partition, timestamp ms) pairs, one record each, in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **QUIET, **conf})
    errors = []
    for i, (partition, ts) in enumerate(records):
        p.produce(topic, value=f"v{i}".encode(), partition=partition, timestamp=ts,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors


# -- get-offsets ----------------------------------------------------------------------------------

def test_get_offsets_equal_confluent(bootstrap):
    topic = unique("go")
    ok("topic", "create", topic, "--partitions", 3, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    base = 1_700_000_000_000
    # Partition 0: timestamps rise then fall back, so the max timestamp is in the middle; partition 1
    # gets a compressed batch; partition 2 stays empty.
    produce(bootstrap, topic, [(0, base + t) for t in (10, 20, 50, 30, 40)])
    produce(bootstrap, topic, [(1, base + t) for t in (5, 60, 7)], **{"compression.type": "lz4", "linger.ms": 200})

    def lines(*time):
        return ok("get-offsets", "--topic", topic, *time, "--bootstrap-server", bootstrap).stdout.splitlines()

    assert lines() == [f"{topic}:0:5", f"{topic}:1:3", f"{topic}:2:0"]
    assert lines("--time", "latest") == lines("--time", "-1") == lines()
    assert lines("--time", "earliest") == [f"{topic}:0:0", f"{topic}:1:0", f"{topic}:2:0"]
    assert lines("--time", "max-timestamp") == [f"{topic}:0:2", f"{topic}:1:1"], "an empty partition has none"
    assert lines("--time", "-3") == lines("--time", "max-timestamp")
    assert lines("--time", str(base + 25)) == [f"{topic}:0:2", f"{topic}:1:1"]

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("go"), **QUIET})
    try:
        found = c.offsets_for_times([TopicPartition(topic, p, base + 25) for p in range(3)], timeout=10)
        assert [f"{topic}:{t.partition}:{t.offset}" for t in found if t.offset >= 0] == lines("--time", str(base + 25))
        assert [f"{topic}:{p}:{c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]}"
                for p in range(3)] == lines()
    finally:
        c.close()

    rows = ok_json("get-offsets", "--topic", topic, "--time", "max-timestamp", "--bootstrap-server", bootstrap)
    assert [(r["partition"], r["offset"], r["timestamp"]) for r in rows] == [
        (0, 2, base + 50), (1, 1, base + 60), (2, None, None)]
    assert all(r["topic"] == topic for r in rows)
    assert rows[0]["leaderEpoch"] == ok_json("topic", "describe", topic,
                                             "--bootstrap-server", bootstrap)["partitions"][0]["leaderEpoch"]
    latest = ok_json("get-offsets", "--topic", topic, "--partitions", "0,2", "--bootstrap-server", bootstrap)
    assert [(r["partition"], r["offset"], r["timestamp"]) for r in latest] == [(0, 5, None), (2, 0, None)]
    # --topic is a regular expression matched against whole names.
    assert lines() == ok("get-offsets", "--topic", topic[:-3] + "...", "--bootstrap-server",
                         bootstrap).stdout.splitlines()


def test_get_offsets_errors(bootstrap):
    one_sentence_failure(runnel("get-offsets", "--topic", "no-such-topic-x", "--bootstrap-server", bootstrap),
                         "no topic partition matches")
    one_sentence_failure(runnel("get-offsets", "--time", "yesterday", "--bootstrap-server", bootstrap), "--time")
    one_sentence_failure(runnel("get-offsets", "--partitions", "a,b", "--bootstrap-server", bootstrap), "--partitions")
    one_sentence_failure(runnel("get-offsets", "--topic", "(", "--bootstrap-server", bootstrap), "regular expression")

