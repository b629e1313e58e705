"""`compression.type` on a topic or as the broker default, as Kafka's LogValidator applies it: a
batch whose codec differs from the topic's is rebuilt in the topic's codec before it is written
(levels from compression.<codec>.level), `producer` keeps what the producer sent, and
`uncompressed` stores plain records. Checked on the segment files' batch headers, and by
reading every record back with confluent-kafka (librdkafka) and kafka-python.

Runnel only: it reads the segment files.
"""

from __future__ import annotations

import struct

import pytest
from confluent_kafka import Producer

from util import QUIET, create_topic, drain, is_runnel, unique

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def stored_codecs(node, topic: str) -> list[str]:
    """The codec of every batch in partition 0's segment files."""
    out = []
    for seg in sorted(node.partition_dir(topic, 0).glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            length = struct.unpack(">i", data[pos + 8:pos + 12])[0]
            attributes = struct.unpack(">h", data[pos + 21:pos + 23])[0]
            out.append(CODECS[attributes & 7])
            pos += 12 + length
    return out


def produce(bootstrap: str, topic: str, codec: str, n: int = 50) -> list[bytes]:
    p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 20, **QUIET})
    values = [b"value %d " % i * 8 for i in range(n)]
    for i, v in enumerate(values):
        p.produce(topic, key=b"k%d" % i, value=v, partition=0)
    assert p.flush(30) == 0
    return values


@pytest.fixture(scope="module")
def gzip_broker(module_node_factory):
    """A broker whose default compression.type is gzip."""
    if not is_runnel():
        pytest.skip("reads Runnel's segment files")
    return module_node_factory({"compression.type": "gzip", "compression.gzip.level": 9})


@pytest.mark.parametrize("topic_codec,producer_codec,stored", [
    ("zstd", "none", "zstd"), ("lz4", "snappy", "lz4"), ("uncompressed", "lz4", "none"),
    ("producer", "snappy", "snappy"), ("snappy", "snappy", "snappy"),
])
def test_topic_compression_type(gzip_broker, topic_codec, producer_codec, stored):
    topic = unique(f"ct-{topic_codec}")
    create_topic(gzip_broker.bootstrap, topic, 1, {"compression.type": topic_codec})
    values = produce(gzip_broker.bootstrap, topic, producer_codec)
    codecs = stored_codecs(gzip_broker, topic)
    assert codecs and set(codecs) == {stored}, codecs
    assert [m.value for m in drain(gzip_broker.bootstrap, topic, 1, len(values))] == values


def test_broker_default_compression_type(gzip_broker):
    topic = unique("ct-default")
    create_topic(gzip_broker.bootstrap, topic, 1)
    values = produce(gzip_broker.bootstrap, topic, "zstd")
    assert set(stored_codecs(gzip_broker, topic)) == {"gzip"}
    assert [m.value for m in drain(gzip_broker.bootstrap, topic, 1, len(values))] == values
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=gzip_broker.bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=5000)
    try:
        assert [m.value for m in c] == values
    finally:
        c.close()
