"""Kafka 4.0's versions of Metadata (v13) and ListOffsets (v10), on raw sockets.

ApiVersions advertises Metadata up to v13 and ListOffsets up to v10, as a Kafka 4.x client
negotiates them. Metadata v13 is v12 with a top-level error code after the topics (KIP-1102);
ListOffsets v10 is v9 with the request's remote-storage timeout at its end (KIP-1075). Each
answer is parsed field by field to its last byte at both versions, so a field out of place, a
missing error code or a v13 field written at v12 fails here. The frames are written from the
message definitions of Kafka 4.0: the Java client this project tests with (3.9.1) knows neither
version, so these are checked against Kafka's own bytes only indirectly: NewerVersionVectorTests
(Swift) builds them from Kafka's bytes at the version before. librdkafka 2.16 (confluent-kafka)
negotiates Metadata v13, and its metadata calls are checked here too.

Runnel only.
"""

from __future__ import annotations

import logging
import re

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

import kwire
from kwire import Reader, compact_array, compact_string, i8, i16, i32, i64
from util import QUIET, create_topic, unique

pytestmark = pytest.mark.usefixtures("require_runnel")

TAGS = b"\x00"
API_LIST_OFFSETS = 2


def exchange(bootstrap: str, api_key: int, version: int, body: bytes) -> Reader:
    with kwire.Conn.to(bootstrap) as c:
        c.send(kwire.frame(kwire.request_header_v2(api_key, version, 7) + body))
        payload = c.recv_frame()
    assert payload is not None, f"the broker closed the connection on api {api_key} v{version}"
    r = Reader(payload)
    assert r.i32() == 7
    r.skip_tags()  # response header v1
    return r


def advertised(bootstrap: str) -> dict[int, tuple[int, int]]:
    with kwire.Conn.to(bootstrap) as c:
        c.send(kwire.api_versions_request(0, 1))
        return kwire.parse_api_versions_v0(c.recv_frame()).api_keys


def metadata(bootstrap: str, version: int, topic: str | None, topic_id: bytes = b"\x00" * 16) -> dict:
    """Metadata of one topic, asked for by name, by id (a non-zero `topic_id`) or both."""
    topics = compact_array([topic_id + compact_string(topic) + TAGS])
    body = topics + i8(0) + i8(1) + TAGS  # allow auto creation: no; topic operations: yes
    r = exchange(bootstrap, kwire.API_METADATA, version, body)
    out = {"throttle": r.i32(), "brokers": [], "topics": {}}
    for _ in range(r.compact_array_len()):
        out["brokers"].append((r.i32(), r.compact_string(), r.i32(), r.compact_string()))
        r.skip_tags()
    out["cluster_id"] = r.compact_string()
    out["controller_id"] = r.i32()
    for _ in range(r.compact_array_len()):
        error, name, topic_id, _internal = r.i16(), r.compact_string(), r.take(16), r.i8()
        partitions = {}
        for _ in range(r.compact_array_len()):
            p_error, index, leader, _epoch = r.i16(), r.i32(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.compact_array_len())]
            isr = [r.i32() for _ in range(r.compact_array_len())]
            [r.i32() for _ in range(r.compact_array_len())]  # offline replicas
            r.skip_tags()
            partitions[index] = (p_error, leader, replicas, isr)
        operations = r.i32()
        r.skip_tags()
        out["topics"][name] = (error, partitions, operations)
        out.setdefault("ids", {})[name] = topic_id
    if version >= 13:
        out["error_code"] = r.i16()
    r.skip_tags()
    assert r.remaining() == 0, f"Metadata v{version}: {r.remaining()} bytes left after the last field"
    return out


def list_offsets(bootstrap: str, version: int, topic: str, timestamp: int) -> tuple[int, int]:
    partition = i32(0) + i32(-1) + i64(timestamp) + TAGS
    body = i32(-1) + i8(0) + compact_array([compact_string(topic) + compact_array([partition]) + TAGS])
    if version >= 10:
        body += i32(30_000)
    body += TAGS
    r = exchange(bootstrap, API_LIST_OFFSETS, version, body)
    r.i32()  # throttle
    assert r.compact_array_len() == 1 and r.compact_string() == topic
    assert r.compact_array_len() == 1
    index, error, _ts, offset, _epoch = r.i32(), r.i16(), r.i64(), r.i64(), r.i32()
    r.skip_tags()
    r.skip_tags()
    r.skip_tags()
    assert index == 0 and r.remaining() == 0, f"ListOffsets v{version}: {r.remaining()} bytes left"
    return error, offset


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory()


def test_api_versions_advertise_kafka_4_versions(node):
    ranges = advertised(node.bootstrap)
    assert ranges[kwire.API_METADATA][1] >= 13
    assert ranges[API_LIST_OFFSETS][1] >= 10


def test_metadata_v13_ends_with_the_top_level_error_code(node):
    topic = unique("mdv13")
    create_topic(node.bootstrap, topic, 2)
    for version in (12, 13):
        md = metadata(node.bootstrap, version, topic)
        assert md["brokers"] and md["cluster_id"]
        error, partitions, operations = md["topics"][topic]
        assert error == 0 and sorted(partitions) == [0, 1] and operations != -2147483648
        assert all(p[0] == 0 and p[1] >= 0 for p in partitions.values())
        assert md.get("error_code", 0) == 0
    missing = unique("mdv13-missing")
    assert metadata(node.bootstrap, 13, missing)["topics"][missing][0] == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_metadata_by_topic_id(node):
    """As Kafka's handleTopicMetadataRequest: once a topic id is set, topics are looked up by id and
    the names are ignored (the Java client sends "" as the name beside the id); an unknown id is
    UNKNOWN_TOPIC_ID with no name; an id below v12 is INVALID_REQUEST."""
    topic = unique("mdid")
    create_topic(node.bootstrap, topic, 2)
    topic_id = metadata(node.bootstrap, 12, topic)["ids"][topic]
    assert topic_id != b"\x00" * 16
    for version in (12, 13):
        for name in ("", None):
            md = metadata(node.bootstrap, version, name, topic_id)
            assert list(md["topics"]) == [topic], (version, name, md["topics"])
            error, partitions, _ = md["topics"][topic]
            assert error == 0 and sorted(partitions) == [0, 1] and md["ids"][topic] == topic_id
    unknown = bytes(range(1, 17))
    md = metadata(node.bootstrap, 12, "", unknown)
    assert md["topics"] == {None: (100, {}, -2147483648)} and md["ids"][None] == unknown  # UNKNOWN_TOPIC_ID
    md = metadata(node.bootstrap, 11, topic, topic_id)
    assert md["topics"][topic][0] == 42  # INVALID_REQUEST


def test_list_offsets_v10_reads_the_timeout(node):
    topic = unique("lov10")
    create_topic(node.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": node.bootstrap, **QUIET})
    for i in range(7):
        p.produce(topic, value=b"%d" % i, partition=0)
    assert p.flush(30) == 0
    for version in (9, 10):
        assert list_offsets(node.bootstrap, version, topic, -1) == (0, 7)
        assert list_offsets(node.bootstrap, version, topic, -2) == (0, 0)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_librdkafka_reads_metadata_at_v13(node):
    """librdkafka 2.16 negotiates Metadata v13 with Runnel and reads brokers and topics through it."""
    topic = unique("mdv13-rdkafka")
    create_topic(node.bootstrap, topic, 3)
    lines = _Lines()
    log = logging.getLogger(unique("rdkafka"))
    log.setLevel(logging.DEBUG)
    log.addHandler(lines)
    a = AdminClient({"bootstrap.servers": node.bootstrap, "debug": "protocol", "logger": log})
    md = a.list_topics(topic, timeout=15)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2] and md.topics[topic].error is None
    assert md.brokers and md.cluster_id
    a.poll(0.1)  # serves the logger's queue
    versions = {int(v) for v in re.findall(r"Received MetadataResponse \(v(\d+)", "\n".join(lines.lines))}
    assert 13 in versions, f"librdkafka's Metadata versions: {sorted(versions)}"
