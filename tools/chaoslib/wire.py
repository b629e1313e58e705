"""Metadata v1 and DescribeConfigs v1 over a raw socket to one broker (through the frame helpers
of Tests/integration/kwire.py), so that a read asks exactly the broker named: a client library
would route the request to whichever broker it likes once it knows the cluster.

  Metadata v1 request:  topics [string] (-1 = all topics)
  Metadata v1 response: brokers [node_id int32, host string, port int32, rack nullable string],
                        controller_id int32,
                        topics [error_code int16, name string, is_internal int8,
                                partitions [error_code int16, index int32, leader int32,
                                            replicas [int32], isr [int32]]]
  DescribeConfigs v1 request:  resources [type int8, name string, keys nullable [string]],
                               include_synonyms int8
  DescribeConfigs v1 response: throttle_ms int32,
                               results [error_code int16, error_message nullable string,
                                        type int8, name string,
                                        configs [name string, value nullable string,
                                                 read_only int8, config_source int8, is_sensitive int8,
                                                 synonyms [name string, value nullable string,
                                                           source int8]]]
  (Runnel, as Kafka 4.0 (KIP-896), no longer takes DescribeConfigs v0.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import kwire
from kwire import Conn, Reader, frame, i8, i32, request_header_v1, string

API_METADATA = 3
API_DESCRIBE_CONFIGS = 32
RESOURCE_TOPIC = 2

_corr = itertools.count(1)


@dataclass
class PartitionMeta:
    error: int
    index: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class TopicMeta:
    error: int
    name: str
    partitions: dict[int, PartitionMeta]


@dataclass
class Metadata:
    brokers: dict[int, tuple[str, int]]
    controller_id: int
    topics: dict[str, TopicMeta]


def _array(r: Reader, item):
    n = r.i32()
    return [] if n < 0 else [item(r) for _ in range(n)]


def _round_trip(bootstrap: str, payload: bytes, corr: int, timeout: float) -> Reader:
    with Conn.to(bootstrap, timeout) as c:
        c.send(frame(payload))
        body = c.recv_frame(timeout)
        if body is None:
            raise OSError(f"{bootstrap} closed the connection")
    r = Reader(body)
    got = r.i32()
    if got != corr:
        raise ValueError(f"correlation id {got}, expected {corr}")
    return r


def metadata(bootstrap: str, topics: list[str] | None = None, timeout: float = 3.0) -> Metadata:
    corr = next(_corr)
    body = i32(-1) if topics is None else i32(len(topics)) + b"".join(string(t) for t in topics)
    r = _round_trip(bootstrap, request_header_v1(API_METADATA, 1, corr, "chaos") + body, corr, timeout)
    brokers = {}
    for node_id, host, port, _rack in _array(r, lambda r: (r.i32(), r.string(), r.i32(), r.string())):
        brokers[node_id] = (host, port)
    controller_id = r.i32()

    def partition(r: Reader) -> PartitionMeta:
        err, idx, leader = r.i16(), r.i32(), r.i32()
        replicas = _array(r, lambda r: r.i32())
        isr = _array(r, lambda r: r.i32())
        return PartitionMeta(err, idx, leader, replicas, isr)

    def topic(r: Reader) -> TopicMeta:
        err, name = r.i16(), r.string()
        r.i8()  # is_internal
        parts = _array(r, partition)
        return TopicMeta(err, name, {p.index: p for p in parts})

    return Metadata(brokers, controller_id, {t.name: t for t in _array(r, topic)})


def describe_topic_configs(bootstrap: str, topics: list[str], keys: list[str] | None,
                           timeout: float = 3.0) -> dict[str, tuple[int, dict[str, str | None]]]:
    """{topic: (error_code, {name: value})} as the broker at `bootstrap` sees it."""
    corr = next(_corr)
    res = b""
    for t in topics:
        res += i8(RESOURCE_TOPIC) + string(t)
        res += i32(-1) if keys is None else i32(len(keys)) + b"".join(string(k) for k in keys)
    payload = request_header_v1(API_DESCRIBE_CONFIGS, 1, corr, "chaos") + i32(len(topics)) + res + i8(0)
    r = _round_trip(bootstrap, payload, corr, timeout)
    r.i32()  # throttle
    out = {}
    for _ in range(r.i32()):
        err = r.i16()
        r.string(), r.i8()  # error message, resource type
        name = r.string()
        configs = {}
        for _ in range(r.i32()):
            cname, value = r.string(), r.string()
            r.i8(), r.i8(), r.i8()  # read only, config source, sensitive
            for _ in range(r.i32()):
                r.string(), r.string(), r.i8()  # synonym: name, value, source
            configs[cname] = value
        out[name] = (err, configs)
    return out


def api_versions_ok(bootstrap: str, timeout: float = 2.0) -> bool:
    return kwire.api_versions_ok(bootstrap, timeout)
