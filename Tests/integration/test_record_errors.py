"""Per-record errors on Produce (KIP-467), as Kafka's LogValidator reports them.

A batch with some invalid records fails whole; the partition's response names each bad record by
its index in `record_errors` and says why in `error_message`, so a client fails exactly those
records with their error and the others of the batch with a distinct one (librdkafka's
_INVALID_DIFFERENT_RECORD, the Java client's "part of a batch which had one more more invalid
records"):

- keyless records on a compacted topic: INVALID_RECORD, read on the wire (two records named among
  four) and through librdkafka's delivery reports (librdkafka reports per record only when a
  batch has several bad records, so the batches here have two);
- the same for batches compressed with each codec (the broker decompresses them for the check);
- CreateTime timestamps outside the topic's message.timestamp.before.max.ms / after.max.ms:
  INVALID_TIMESTAMP, on the wire and through librdkafka; a record inside the bounds is taken.

And the record-level reads of the same batches: ListOffsets MAX_TIMESTAMP and a timestamp lookup
find the record inside its batch (uncompressed and zstd), with the batch's leader epoch.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer

import kwire
from util import QUIET, create_topic, unique


def produce_raw(bootstrap: str, topic: str, batch: bytes) -> kwire.ProducePartitionResult:
    with kwire.Conn.to(bootstrap, 10) as c:
        c.send(kwire.produce_v9_request(11, topic, 0, batch))
        _, topics, _ = kwire.parse_produce_v9(c.recv_frame(15))
    return topics[topic][0]


def deliveries(bootstrap: str, topic: str, messages: list[dict], **conf) -> list[KafkaError | None]:
    """Sends `messages` in one batch and returns each one's report. The linger outlasts any stall
    of a loaded machine (200 ms once split a batch in two); flush() sends at once regardless."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10_000, "retries": 0, "acks": "all", **QUIET, **conf})
    reports: list = [None] * len(messages)
    done = [False] * len(messages)

    def report(i):
        def cb(err, _msg):
            reports[i], done[i] = err, True
        return cb
    for i, m in enumerate(messages):
        p.produce(topic, partition=0, on_delivery=report(i), **m)
    assert p.flush(30) == 0 and all(done)
    return reports


def test_keyless_records_on_a_compacted_topic_are_named(broker):
    topic = unique("rec-err-compact")
    create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    batch = kwire.record_batch([kwire.Rec(b"a", b"1"), kwire.Rec(None, b"2"), kwire.Rec(b"c", b"3"),
                                kwire.Rec(None, b"4")])
    result = produce_raw(broker.bootstrap, topic, batch)
    assert result.error_code == 87, result                      # INVALID_RECORD
    assert [i for i, _ in result.record_errors] == [1, 3], result.record_errors
    assert all("without key" in (m or "") for _, m in result.record_errors), result.record_errors
    assert result.error_message and "2 record errors" in result.error_message, result.error_message

    reports = deliveries(broker.bootstrap, topic, [{"key": b"k1", "value": b"x"}, {"value": b"no key"},
                                                   {"key": b"k2", "value": b"y"}, {"value": b"no key 2"}])
    codes = [r.code() if r else None for r in reports]
    assert codes == [KafkaError._INVALID_DIFFERENT_RECORD, KafkaError.INVALID_RECORD,
                     KafkaError._INVALID_DIFFERENT_RECORD, KafkaError.INVALID_RECORD], reports


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_checked_record_by_record(broker, codec):
    """The broker decompresses a compressed batch for a compacted topic's key check, as Kafka
    does, so compression does not let keyless records in."""
    topic = unique(f"rec-err-{codec}")
    create_topic(broker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    messages = [{"key": b"k1", "value": b"x" * 100}, {"value": b"no key" * 20}, {"key": b"k2", "value": b"y" * 100},
                {"value": b"none" * 30}]
    reports = deliveries(broker.bootstrap, topic, messages, **{"compression.type": codec})
    codes = [r.code() if r else None for r in reports]
    assert codes == [KafkaError._INVALID_DIFFERENT_RECORD, KafkaError.INVALID_RECORD,
                     KafkaError._INVALID_DIFFERENT_RECORD, KafkaError.INVALID_RECORD], reports
    keyed = [m for m in messages if "key" in m]
    assert deliveries(broker.bootstrap, topic, keyed, **{"compression.type": codec}) == [None, None]


def test_timestamps_out_of_bounds_are_named(broker):
    topic = unique("rec-err-ts")
    create_topic(broker.bootstrap, topic, 1, {"message.timestamp.before.max.ms": "3600000",
                                             "message.timestamp.after.max.ms": "60000"})
    now = int(time.time() * 1000)
    batch = kwire.record_batch([kwire.Rec(b"a", b"1"), kwire.Rec(b"b", b"2", timestamp_delta=2 * 3600_000),
                                kwire.Rec(b"c", b"3", timestamp_delta=-3 * 3600_000)], base_timestamp=now)
    result = produce_raw(broker.bootstrap, topic, batch)
    assert result.error_code == 32, result                      # INVALID_TIMESTAMP
    assert [i for i, _ in result.record_errors] == [1, 2], result.record_errors
    assert "out of range" in (result.record_errors[0][1] or ""), result.record_errors

    # librdkafka fails the records named with INVALID_RECORD when there are several (with one, it
    # gives every record of the batch the partition's error), the others with its own error.
    reports = deliveries(broker.bootstrap, topic, [{"key": b"k", "value": b"now", "timestamp": now},
                                                   {"key": b"k", "value": b"later", "timestamp": now + 7200_000},
                                                   {"key": b"k", "value": b"early", "timestamp": now - 7200_000}])
    codes = [r.code() if r else None for r in reports]
    assert codes == [KafkaError._INVALID_DIFFERENT_RECORD, KafkaError.INVALID_RECORD, KafkaError.INVALID_RECORD], \
        reports
    # Within the bounds: taken.
    assert deliveries(broker.bootstrap, topic, [{"key": b"k", "value": b"ok", "timestamp": now - 60_000}]) == [None]


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_list_offsets_max_timestamp_finds_the_record_inside_its_batch(broker, codec):
    """ListOffsets MAX_TIMESTAMP (KIP-734) answers the record with the largest timestamp even when
    it sits inside a batch (compressed or not), and its batch's leader epoch, as Kafka does since
    KAFKA-16310; a timestamp lookup is precise to the record too."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    topic = unique(f"maxts-{codec}")
    create_topic(broker.bootstrap, topic, 1)
    now = int(time.time() * 1000)
    stamps = [now - 3000, now - 1000, now - 2000, now - 1500]      # the largest is the second record
    assert deliveries(broker.bootstrap, topic, [{"value": b"v%d" % i, "timestamp": t} for i, t in enumerate(stamps)],
                      **{"compression.type": codec}) == [None] * 4
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    tp = TopicPartition(topic, 0)
    found = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(15)
    assert (found.offset, found.timestamp) == (1, now - 1000), found
    assert found.leader_epoch == 0, found
    at = admin.list_offsets({tp: OffsetSpec.for_timestamp(now - 1800)})[tp].result(15)
    assert (at.offset, at.timestamp) == (1, now - 1000), at
