"""Finding and aborting hanging transactions (KIP-664): the DescribeProducers, DescribeTransactions
and ListTransactions APIs and `runnel transactions` (as kafka-transactions), on one node.

- A confluent-kafka transactional producer holding an open transaction shows up in `runnel
  transactions list` (Ongoing; each filter: state, producer id, KIP-994 duration), `describe`
  (state, producer, timeout, start time, partition) and `describe-producers` (its first offset,
  last sequence, no coordinator epoch yet); after the commit: CompleteCommit, no partition, the
  producer's coordinator epoch. Unknown ids and state names fail with one sentence.
- `runnel transactions abort --start-offset` closes that open transaction on its partition: the
  last stable offset moves past it (a read_committed consumer's watermarks), `runnel consume
  --isolation-level read_committed` leaves its records out, read_uncommitted keeps them.
- A transaction no coordinator knows (a transactional batch written by hand with kwire) is what
  `find-hanging` reports, by topic and by broker, and not the live one beside it; `abort` ends it.
- Across three brokers: `list` gathers every broker's ids under the coordinator FindCoordinator
  names, and `describe-producers --broker-id` gives the same producer state on each replica.
- The same APIs through two other clients: kafka-python's admin (list_transactions,
  describe_transactions, describe_producers, abort_transaction) and the Java client's Admin
  (listTransactions, describeTransactions, describeProducers). confluent-kafka 2.16 has no
  transaction admin calls.

Runnel only (the CLI is the runnel binary).
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import javaclient
import kwire
from cluster import create, start_cluster
from test_cli_tools import ok, ok_json, one_sentence_failure, runnel
from util import QUIET, create_topic, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against a Runnel node")

TXN_PROPS = {
    "transaction.state.log.num.partitions": 4,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.max.timeout.ms": 120000,
    "auto.create.topics.enable": "false",
}


@pytest.fixture(scope="module")
def tnode(module_node_factory):
    return module_node_factory(TXN_PROPS)


def open_transaction(bootstrap: str, topic: str, count: int, partition: int = 0,
                     timeout_ms: int = 60000) -> tuple[Producer, str]:
    """A confluent-kafka producer with a transaction open: `count` records written to `partition`."""
    tid = unique("tool-txn")
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5,
                  "transaction.timeout.ms": timeout_ms, **QUIET})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(count):
        p.produce(topic, value=f"open-{i}", partition=partition)
    p.flush(30)
    return p, tid


def plain_records(bootstrap: str, topic: str, values: list[str], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, **QUIET})
    for v in values:
        p.produce(topic, value=v, partition=partition)
    p.flush(30)


def committed_watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    """(low, high) as a read_committed consumer sees them: high is the last stable offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm"), "isolation.level": "read_committed",
                  **QUIET})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def tools(bootstrap: str, *args):
    return ok_json("transactions", *args, "--bootstrap-server", bootstrap)


def consumed_values(bootstrap: str, topic: str, isolation: str) -> list[str]:
    p = ok("consume", topic, "--from-beginning", "--timeout-ms", "3000", "--isolation-level", isolation, "--json",
           "--bootstrap-server", bootstrap)
    return [json.loads(line)["value"] for line in p.stdout.splitlines() if line.strip()]


def test_an_open_transaction_in_list_describe_and_describe_producers(tnode):
    b = tnode.bootstrap
    topic = unique("tools")
    create_topic(b, topic, partitions=2)
    p, tid = open_transaction(b, topic, 5, timeout_ms=45000)
    try:
        listed = [t for t in tools(b, "list") if t["transactionalId"] == tid]
        assert len(listed) == 1 and listed[0]["state"] == "Ongoing" and listed[0]["coordinatorId"] == 1, listed
        pid = listed[0]["producerId"]
        assert tid in [t["transactionalId"] for t in tools(b, "list", "--state", "Ongoing")]
        assert tid not in [t["transactionalId"] for t in tools(b, "list", "--state", "CompleteCommit")]
        assert [t["transactionalId"] for t in tools(b, "list", "--producer-id", pid)] == [tid]
        assert tid not in [t["transactionalId"] for t in tools(b, "list", "--duration-filter", 600000)]
        time.sleep(0.05)
        assert tid in [t["transactionalId"] for t in tools(b, "list", "--duration-filter", 1)]

        d = tools(b, "describe", "--transactional-id", tid)
        assert (d["state"], d["producerId"], d["timeoutMs"], d["coordinatorId"]) == ("Ongoing", pid, 45000, 1), d
        assert d["partitions"] == [{"topic": topic, "partition": 0}], d
        assert d["startTimeMs"] is not None and 0 <= d["durationMs"] < 120000, d
        text = ok("transactions", "describe", "--transactional-id", tid, "--bootstrap-server", b).stdout
        assert text.splitlines()[0].split() == [
            "CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
            "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs", "TopicPartitions"]
        assert f"{topic}-0" in text.splitlines()[1] and "Ongoing" in text.splitlines()[1]

        producers = tools(b, "describe-producers", "--topic", topic, "--partition", 0)
        assert producers == [{
            "producerId": pid, "producerEpoch": d["producerEpoch"], "coordinatorEpoch": None, "lastSequence": 4,
            "lastTimestamp": producers[0]["lastTimestamp"], "currentTransactionStartOffset": 0}], producers
        assert tools(b, "describe-producers", "--topic", topic, "--partition", 1) == []
        assert tools(b, "describe-producers", "--topic", topic, "--partition", 0, "--broker-id", 1) == producers
        p.commit_transaction(60)

        d = tools(b, "describe", "--transactional-id", tid)
        assert (d["state"], d["partitions"]) == ("CompleteCommit", []), d
        after = tools(b, "describe-producers", "--topic", topic, "--partition", 0)
        assert after[0]["currentTransactionStartOffset"] is None and after[0]["coordinatorEpoch"] >= 0, after
        assert [t["state"] for t in tools(b, "list", "--producer-id", pid)] == ["CompleteCommit"]
    finally:
        p.flush(1)

    one_sentence_failure(runnel("transactions", "describe", "--transactional-id", unique("nobody"),
                                "--bootstrap-server", b), "does not exist")
    one_sentence_failure(runnel("transactions", "list", "--state", "Hanging", "--bootstrap-server", b),
                         "Hanging")
    one_sentence_failure(runnel("transactions", "describe-producers", "--topic", unique("none"), "--partition", 0,
                                "--bootstrap-server", b), "does not exist")


def test_abort_with_the_tool_moves_the_last_stable_offset(tnode):
    b = tnode.bootstrap
    topic = unique("tools-abort")
    create_topic(b, topic)
    plain_records(b, topic, ["a", "b", "c"])
    p, tid = open_transaction(b, topic, 5)
    try:
        plain_records(b, topic, ["d", "e"])
        assert committed_watermarks(b, topic) == (0, 3), "the open transaction holds the last stable offset"
        [producer] = [x for x in tools(b, "describe-producers", "--topic", topic, "--partition", 0)
                      if x["currentTransactionStartOffset"] is not None]
        assert producer["currentTransactionStartOffset"] == 3

        one_sentence_failure(runnel("transactions", "abort", "--topic", topic, "--partition", 0, "--start-offset", 4,
                                    "--bootstrap-server", b), "no open transaction starts at offset 4")
        out = tools(b, "abort", "--topic", topic, "--partition", 0, "--start-offset", 3)
        assert out == {"topic": topic, "partition": 0, "producerId": producer["producerId"],
                       "producerEpoch": producer["producerEpoch"], "coordinatorEpoch": 0, "startOffset": 3}, out
        # Three records, five aborted ones, two more, the abort marker: everything is stable.
        wait_until(lambda: committed_watermarks(b, topic) == (0, 11), what="the last stable offset past the marker")
        assert consumed_values(b, topic, "read_committed") == ["a", "b", "c", "d", "e"]
        assert consumed_values(b, topic, "read_uncommitted") == (
            ["a", "b", "c"] + [f"open-{i}" for i in range(5)] + ["d", "e"])
        # The coordinator still holds the transaction open until its producer ends it.
        assert tools(b, "describe", "--transactional-id", tid)["state"] == "Ongoing"
    finally:
        p.abort_transaction(60)
    assert tools(b, "describe", "--transactional-id", tid)["state"] == "CompleteAbort"
    assert consumed_values(b, topic, "read_committed") == ["a", "b", "c", "d", "e"]


HANDMADE_PRODUCER_ID = 4_000_000_007


def write_hanging_transaction(bootstrap: str, topic: str, partition: int, count: int) -> int:
    """A transactional batch of a producer no transaction coordinator knows (as an old client's
    lost marker leaves one): its transaction stays open. Returns the batch's base offset."""
    batch = kwire.record_batch([kwire.Rec(None, f"hang-{i}".encode()) for i in range(count)],
                               attributes=0x10, producer_id=HANDMADE_PRODUCER_ID, producer_epoch=0, base_sequence=0)
    with kwire.Conn.to(bootstrap) as c:
        c.send(kwire.produce_v9_request(5, topic, partition, batch))
        _, topics, _ = kwire.parse_produce_v9(c.recv_frame())
    [result] = topics[topic]
    assert result.error_code == 0, result
    return result.base_offset


def test_find_hanging_reports_only_what_no_coordinator_will_end_and_abort_ends_it(tnode):
    b = tnode.bootstrap
    topic = unique("tools-hang")
    create_topic(b, topic, partitions=2)
    live, _ = open_transaction(b, topic, 3, partition=1)
    try:
        start = write_hanging_transaction(b, topic, 0, 4)
        time.sleep(0.05)
        for scope in (["--topic", topic], ["--topic", topic, "--partition", "0"], ["--broker-id", "1"]):
            hanging = [h for h in tools(b, "find-hanging", *scope, "--max-transaction-timeout", 0)
                       if h["topic"] == topic]
            assert [(h["partition"], h["producerId"], h["startOffset"], h["coordinatorEpoch"]) for h in hanging] == [
                (0, HANDMADE_PRODUCER_ID, start, -1)], (scope, hanging)
        assert tools(b, "find-hanging", "--topic", topic) == [], "not open longer than 15 minutes"
        assert committed_watermarks(b, topic, 0) == (0, start)

        tools(b, "abort", "--topic", topic, "--partition", 0, "--start-offset", start)
        wait_until(lambda: committed_watermarks(b, topic, 0) == (0, start + 5), what="the hanging transaction ended")
        assert tools(b, "find-hanging", "--topic", topic, "--max-transaction-timeout", 0) == []
        live.commit_transaction(60)
    finally:
        live.flush(1)
    one_sentence_failure(runnel("transactions", "find-hanging", "--bootstrap-server", b), "--topic or --broker-id")


def test_list_and_replicas_across_brokers(tmp_path):
    props = {**TXN_PROPS, "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2}
    controllers, brokers = start_cluster(tmp_path, props=props)
    try:
        b = brokers[0].bootstrap
        topic = unique("tools-spread")
        create(brokers[0], topic, 1, 3)
        producers = []
        for _ in range(3):
            producers.append(open_transaction(b, topic, 2))
        listed = {t["transactionalId"]: t for t in tools(b, "list")}
        for _, tid in producers:
            coordinator = tools(b, "describe", "--transactional-id", tid)["coordinatorId"]
            assert listed[tid]["coordinatorId"] == coordinator and listed[tid]["state"] == "Ongoing", listed[tid]
        at_leader = tools(b, "describe-producers", "--topic", topic, "--partition", 0)
        assert sorted(p["currentTransactionStartOffset"] for p in at_leader) == [0, 2, 4], at_leader
        for broker_id in (4, 5, 6):
            wait_until(lambda: tools(b, "describe-producers", "--topic", topic, "--partition", 0,
                                     "--broker-id", broker_id) == at_leader,
                       what=f"the producer state on broker {broker_id}")
        for p, _ in producers:
            p.abort_transaction(60)
    finally:
        for n in brokers + controllers:
            n.close()


def test_kafka_python_admin_calls(tnode):
    from kafka import TopicPartition as KTopicPartition
    from kafka.admin import KafkaAdminClient

    b = tnode.bootstrap
    topic = unique("tools-kp")
    create_topic(b, topic)
    p, tid = open_transaction(b, topic, 2)
    admin = KafkaAdminClient(bootstrap_servers=b, request_timeout_ms=30000)
    try:
        def listed(**filters) -> list:
            """Every broker's listings (kafka-python answers by broker id)."""
            return [t for per_broker in admin.list_transactions(**filters).values() for t in per_broker]

        mine = [t for t in listed(state_filters=["Ongoing"]) if t.transactional_id == tid]
        assert len(mine) == 1 and mine[0].state.value == "Ongoing", mine
        pid = mine[0].producer_id
        assert [t.transactional_id for t in listed(producer_id_filters=[pid])] == [tid]
        assert tid not in [t.transactional_id for t in listed(duration_filter_ms=600000)]

        described = admin.describe_transactions([tid])[tid]
        assert (described.state.value, described.producer_id) == ("Ongoing", pid), described
        assert described.topic_partitions == {KTopicPartition(topic, 0)}, described

        tp = KTopicPartition(topic, 0)
        [producer] = admin.describe_producers([tp])[tp].active_producers
        assert (producer.producer_id, producer.current_transaction_start_offset) == (pid, 0), producer

        from kafka.admin import AbortTransactionSpec
        admin.abort_transaction(AbortTransactionSpec(
            topic_partition=tp, producer_id=pid, producer_epoch=producer.producer_epoch, coordinator_epoch=0))
        wait_until(lambda: committed_watermarks(b, topic) == (0, 3), what="the abort marker written")
    finally:
        admin.close()
        p.abort_transaction(60)



def test_java_admin_calls(tnode):
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    b = tnode.bootstrap
    topic = unique("tools-java")
    create_topic(b, topic)
    p, tid = open_transaction(b, topic, 3, timeout_ms=50000)
    try:
        res = javaclient.run("admin", b, "transactions", tid, topic, "0")
        assert res.ok, res.explain()
        out = {k: v for o in res.objects for k, v in o.items()}
        [mine] = [t for t in out["listed"] if t["transactionalId"] == tid]
        assert mine["state"] == "Ongoing"
        assert tid in [t["transactionalId"] for t in out["ongoing"]]
        d = out["described"]
        assert (d["coordinatorId"], d["state"], d["producerId"], d["timeoutMs"], d["partitions"]) == (
            1, "Ongoing", mine["producerId"], 50000, [f"{topic}-0"]), d
        assert d["startTimeMs"] > 0
        [producer] = out["producers"]
        assert (producer["producerId"], producer["currentTransactionStartOffset"], producer["lastSequence"],
                producer["coordinatorEpoch"]) == (mine["producerId"], 0, 2, -1), producer
    finally:
        p.abort_transaction(60)


def test_idle_producers_expire(require_runnel, node_factory):
    """producer.id.expiration.ms: a partition forgets an idempotent producer idle that long, as
    DescribeProducers shows; a producer with an open transaction stays."""
    node = node_factory({"producer.id.expiration.ms": 2000})
    b = node.bootstrap
    topic = unique("expire")
    create_topic(b, topic, 1)
    # The transactional producer is set up first: its init_transactions waits for
    # __transaction_state to be created, which can take longer than the idle producer's 2 s.
    txn = Producer({"bootstrap.servers": b, "transactional.id": unique("expire-txn"), **QUIET})
    txn.init_transactions(30)
    idle = Producer({"bootstrap.servers": b, "enable.idempotence": True, **QUIET})
    idle.produce(topic, b"once", partition=0)
    assert idle.flush(30) == 0
    txn.begin_transaction()
    txn.produce(topic, b"open", partition=0)
    assert txn.flush(30) == 0

    def producers():
        return ok_json("transactions", "describe-producers", "--topic", topic, "--partition", 0,
                       "--bootstrap-server", b)
    assert len(producers()) == 2
    remaining = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(producers()), 20, 0.5,
                           "the idle producer to expire")
    assert remaining[0]["currentTransactionStartOffset"] is not None, remaining
    txn.abort_transaction(30)
