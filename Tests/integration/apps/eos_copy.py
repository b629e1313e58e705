"""A consume-transform-produce application with exactly-once semantics, as Kafka's EOS
applications are written with confluent-kafka: read `source` read_committed in group `group`,
write each record's value, prefixed, to `sink` in transactions of up to `batch` records, with the
consumed offsets committed in the same transaction (send_offsets_to_transaction). On an abortable
error it aborts and rewinds to the group's committed offsets; a fatal one (fenced by a newer
instance) exits 1. Runs until killed.

    eos_copy.py BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID [BATCH]
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

QUIET = {"log_level": 0}


def rewind(consumer: Consumer) -> None:
    assigned = consumer.assignment()
    if not assigned:
        return
    for tp in consumer.committed(assigned, timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))


def retrying(call):
    """Calls `call` again while it fails with a retriable error (a timeout, a coordinator moving)."""
    while True:
        try:
            return call()
        except KafkaException as e:
            if not e.args[0].retriable():
                raise
            print(f"retrying: {e.args[0]}", file=sys.stderr, flush=True)


def main() -> int:
    bootstrap, source, sink, group, tid = sys.argv[1:6]
    batch = int(sys.argv[6]) if len(sys.argv) > 6 else 500
    debug = os.environ.get("EOS_COPY_DEBUG")  # librdkafka debug contexts, logged to stderr
    logs = {"debug": debug, "log_level": 7} if debug else QUIET
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **logs})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5, **logs})
    retrying(lambda: producer.init_transactions(60))
    consumer.subscribe([source])
    while True:
        messages = [m for m in consumer.consume(batch, timeout=0.5) if not m.error()]
        if not messages:
            continue
        try:
            producer.begin_transaction()
            for m in messages:
                producer.produce(sink, key=m.key(), value=b"copy-" + m.value())
            positions = consumer.position(consumer.assignment())
            retrying(lambda: producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 60))
            retrying(lambda: producer.commit_transaction(60))
        except KafkaException as e:
            error = e.args[0]
            if error.fatal() or not error.txn_requires_abort():
                print(f"fatal: {error}", file=sys.stderr, flush=True)
                return 1
            print(f"aborting: {error}", file=sys.stderr, flush=True)
            retrying(lambda: producer.abort_transaction(60))
            rewind(consumer)


if __name__ == "__main__":
    sys.exit(main())
