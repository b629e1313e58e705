"""DescribeTopicPartitions (API 75, KIP-966): paged topic descriptions.

- On the wire (kwire): named topics come back in name order with at most the request's partition
  limit, and a cursor where the next page starts; a request from that cursor gives the rest; an
  unknown topic is UNKNOWN_TOPIC_OR_PARTITION; eligible leader replicas are empty lists (no
  ELR); a cursor on a topic the request does not name is INVALID_REQUEST; with no topic named,
  every topic is described.
- kafka-python's describe_topic_partitions pages the same way, and the Java admin's
  describeTopics (which uses this API once the broker advertises it) describes a topic.
"""

from __future__ import annotations

import javaclient
import pytest
from kwire import Conn, Reader, compact_array, compact_string, frame, i8, i32, request_header_v2
from util import create_topic, unique, wait_topic_ready

API = 75


def describe(bootstrap: str, topics: list[str], limit: int = 2000, cursor: tuple[str, int] | None = None) -> dict:
    body = compact_array([compact_string(t) + b"\x00" for t in topics]) + i32(limit)
    body += i8(-1) if cursor is None else i8(1) + compact_string(cursor[0]) + i32(cursor[1]) + b"\x00"
    body += b"\x00"
    with Conn.to(bootstrap) as c:
        c.send(frame(request_header_v2(API, 0, 7, "kwire") + body))
        r = Reader(c.recv_frame())
    assert r.i32() == 7
    r.skip_tags()
    r.i32()  # throttle

    def nullable_ints() -> list[int] | None:
        n = r.compact_array_len()
        return None if n < 0 else [r.i32() for _ in range(n)]

    out: dict = {"topics": []}
    for _ in range(r.compact_array_len()):
        topic = {"error": r.i16(), "name": r.compact_string(), "id": r.take(16), "internal": r.i8() == 1,
                 "partitions": []}
        for _ in range(r.compact_array_len()):
            p = {"error": r.i16(), "index": r.i32(), "leader": r.i32(), "epoch": r.i32()}
            p["replicas"], p["isr"] = nullable_ints(), nullable_ints()
            p["elr"], p["last_known_elr"], p["offline"] = nullable_ints(), nullable_ints(), nullable_ints()
            r.skip_tags()
            topic["partitions"].append(p)
        topic["operations"] = r.i32()
        r.skip_tags()
        out["topics"].append(topic)
    out["cursor"] = None
    if r.i8() >= 0:
        out["cursor"] = (r.compact_string(), r.i32())
        r.skip_tags()
    r.skip_tags()
    assert r.remaining() == 0
    return out


def pages(result: dict) -> list[tuple[str, list[int]]]:
    return [(t["name"], [p["index"] for p in t["partitions"]]) for t in result["topics"]]


def test_pages_through_named_topics_on_the_wire(broker):
    a, b = unique("dtp-a"), unique("dtp-b")
    create_topic(broker.bootstrap, a, partitions=5)
    create_topic(broker.bootstrap, b, partitions=3)
    wait_topic_ready(broker.bootstrap, a, 5)
    wait_topic_ready(broker.bootstrap, b, 3)

    first = describe(broker.bootstrap, [b, a], limit=4)
    assert pages(first) == [(a, [0, 1, 2, 3])] and first["cursor"] == (a, 4)
    p0 = first["topics"][0]["partitions"][0]
    assert p0["error"] == 0 and p0["leader"] == 1 and p0["replicas"] == [1] and p0["isr"] == [1]
    assert p0["elr"] == [] and p0["last_known_elr"] == [] and p0["offline"] == []
    assert first["topics"][0]["operations"] > 0, "the topic's authorized operations are always given"

    rest = describe(broker.bootstrap, [b, a], limit=4, cursor=first["cursor"])
    assert pages(rest) == [(a, [4]), (b, [0, 1, 2])] and rest["cursor"] is None

    # A full page ends before the next topic: the cursor names it from partition 0.
    assert describe(broker.bootstrap, [a, b], limit=5)["cursor"] == (b, 0)

    missing = unique("dtp-missing")
    [unknown] = [t for t in describe(broker.bootstrap, [missing])["topics"]]
    assert unknown["error"] == 3 and unknown["name"] == missing and unknown["id"] == bytes(16)

    bad = describe(broker.bootstrap, [a], cursor=(b, 0))
    assert [t["error"] for t in bad["topics"]] == [42], "a cursor on a topic not asked for is INVALID_REQUEST"

    everything = pages(describe(broker.bootstrap, []))
    assert (a, [0, 1, 2, 3, 4]) in everything and (b, [0, 1, 2]) in everything
    assert [name for name, _ in everything] == sorted(name for name, _ in everything)


def test_kafka_python_and_the_java_admin_describe_topics_through_it(broker):
    from kafka.admin import KafkaAdminClient

    topic = unique("dtp-clients")
    create_topic(broker.bootstrap, topic, partitions=3)
    wait_topic_ready(broker.bootstrap, topic, 3)
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        first = a.describe_topic_partitions([topic], response_partition_limit=2)
        assert [p["partition_index"] for p in first["topics"][0]["partitions"]] == [0, 1]
        assert first["next_cursor"] == {"topic_name": topic, "partition_index": 2}
        rest = a.describe_topic_partitions([topic], cursor=first["next_cursor"])
        assert [p["partition_index"] for p in rest["topics"][0]["partitions"]] == [2]
    finally:
        a.close()

    why = javaclient.missing()
    if why:
        pytest.skip(why)
    res = javaclient.admin(broker.bootstrap, "describe", topic)
    assert res.ok, res.explain()
    [described] = [o for o in res.objects if o.get("topic") == topic or o.get("name") == topic]
    assert len(described.get("partitions", [])) == 3, described
