"""Partition replication across 3 broker processes (3 controllers beside them).

A topic with replication factor 3 and min.insync.replicas=2 takes an idempotent confluent-kafka
producer with acks=all while the partition leader is killed with -9, and again while a follower
is paused with SIGSTOP past replica.lag.time.max.ms: every acknowledged message is read back
afterwards at the offset it was acknowledged with, in order, with no duplicates; the ISR shrinks
and grows back and Metadata shows it. With two of three replicas down acks=all is refused with
NOT_ENOUGH_REPLICAS while acks=1 still works. A former leader holding an uncommitted tail from
its epoch truncates it when it comes back as a follower of the new leader. Kafka's Java producer
with its default settings keeps sending across a leader kill without a gap. After a broker comes
back, leadership returns to it as preferred replica: by ElectLeaders (kafka-leader-election), or
by itself with auto.leader.rebalance.enable. Once DeleteRecords has dropped every earlier epoch,
OffsetForLeaderEpoch for one of them answers it ending at the log start, as Kafka does.
"""

from __future__ import annotations

import os
import re
import signal
import struct
import threading
import time

import pytest
from confluent_kafka import ElectionType, Producer, TopicPartition

import kwire
from cluster import SESSION_TIMEOUT_MS, admin, create, leaders, running_cluster, start_cluster
from util import QUIET, drain, is_runnel, wait_until, watermarks

pytestmark = pytest.mark.skipif(not is_runnel(), reason="a Runnel cluster")

LAG_MS = 2000
TOPIC_CONFIG = {"min.insync.replicas": "2"}


@pytest.fixture
def replicated(tmp_path):
    with running_cluster(tmp_path, {"replica.lag.time.max.ms": LAG_MS, "replica.fetch.backoff.ms": 200},
                                         props={"auto.leader.rebalance.enable": "false"}) as nodes:
        yield nodes


def bootstrap(brokers) -> str:
    return ",".join(b.bootstrap for b in brokers)


def partition_state(node, topic: str, partition: int):
    md = admin(node).list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        return None
    p = t.partitions[partition]
    return p.leader, sorted(p.isrs), sorted(p.replicas)


class Producing:
    """An idempotent acks=all producer sending numbered messages from a thread until stopped,
    recording what was acknowledged (partition, offset, value)."""

    def __init__(self, servers: str, topic: str, extra: dict | None = None):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 5, "message.timeout.ms": 120_000, **QUIET, **(extra or {})})
        self.acked: list[tuple[int, int, bytes]] = []
        self.failed: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _report(self, err, msg):
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def _run(self):
        i = 0
        while not self._stop.is_set():
            try:
                self.producer.produce(self.topic, key=f"k{i % 12}".encode(), value=f"v-{i:07d}".encode(), on_delivery=self._report)
                i += 1
                self.sent = i
            except BufferError:
                pass
            self.producer.poll(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def stop(self, flush_s: float = 120) -> None:
        self._stop.set()
        self._thread.join(10)
        left = self.producer.flush(flush_s)
        assert left == 0, f"{left} messages still unacknowledged after {flush_s}s"

    def __exit__(self, *exc):
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(10)

    def wait_acked(self, n: int, timeout: float = 30) -> None:
        wait_until(lambda: len(self.acked) >= n, timeout, 0.05, f"{n} acknowledged messages")


def check_everything_acked_is_there(servers: str, topic: str, partitions: int, p: Producing) -> None:
    assert not p.failed, f"deliveries failed: {p.failed[:5]}"
    got = drain(servers, topic, partitions, len(p.acked), timeout=60)
    at = {(m.partition, m.offset): m.value for m in got}
    missing = [(part, off, v) for part, off, v in p.acked if at.get((part, off)) != v]
    assert not missing, f"{len(missing)} acknowledged messages not found at their offsets, e.g. {missing[:5]}"
    values = [m.value for m in got]
    assert len(values) == len(set(values)), "duplicates from an idempotent producer"
    for part in range(partitions):
        seq = [int(m.value[2:]) for m in sorted(got, key=lambda m: m.offset) if m.partition == part]
        assert seq == sorted(seq), f"partition {part} out of order"


def test_acks_all_survives_leader_kill(replicated):
    controllers, brokers = replicated
    create(brokers[0], "survive", 3, 3, TOPIC_CONFIG)
    ls = wait_until(lambda: leaders(brokers[0], "survive"), 10)
    victim = next(b for b in brokers if b.node_id == ls[0])
    others = [b for b in brokers if b is not victim]
    with Producing(bootstrap(brokers), "survive") as p:
        p.wait_acked(2000)
        victim.kill9()
        # Leadership moves once the session times out; the producer retries meanwhile.
        wait_until(lambda: (partition_state(others[0], "survive", 0) or (victim.node_id,))[0] not in (victim.node_id, -1),
                   SESSION_TIMEOUT_MS / 1000 + 20, 0.1, "a new leader for partition 0")
        shrunk = wait_until(lambda: (lambda s: s if s and victim.node_id not in s[1] else None)(partition_state(others[0], "survive", 0)),
                            20, 0.1, "the ISR without the killed leader")
        assert len(shrunk[1]) == 2
        n = len(p.acked)
        p.wait_acked(n + 2000, timeout=60)
        victim.restart()
        wait_until(lambda: (lambda s: s if s and victim.node_id in s[1] else None)(partition_state(others[0], "survive", 0)),
                   30, 0.2, "the restarted broker back in the ISR")
        p.stop()
    check_everything_acked_is_there(bootstrap(brokers), "survive", 3, p)


def test_isr_shrinks_and_expands_around_a_paused_follower(replicated):
    controllers, brokers = replicated
    create(brokers[0], "pause", 1, 3, TOPIC_CONFIG)
    leader = wait_until(lambda: leaders(brokers[0], "pause"), 10)[0]
    follower = next(b for b in brokers if b.node_id != leader)
    with Producing(bootstrap(brokers), "pause") as p:
        p.wait_acked(1000)
        os.kill(follower.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_until(lambda: (lambda s: s if s and follower.node_id not in s[1] else None)(partition_state(brokers[0] if brokers[0] is not follower else brokers[1], "pause", 0)),
                       LAG_MS / 1000 + SESSION_TIMEOUT_MS / 1000 + 10, 0.1, "the paused follower out of the ISR")
            assert time.monotonic() - t0 >= LAG_MS / 1000 * 0.5, "the ISR shrinks after the lag time, not before"
            # Producing goes on with two in sync (min.insync.replicas=2).
            n = len(p.acked)
            p.wait_acked(n + 500, timeout=30)
        finally:
            os.kill(follower.pid, signal.SIGCONT)
        wait_until(lambda: (lambda s: s if s and follower.node_id in s[1] else None)(partition_state(brokers[0], "pause", 0)),
                   30, 0.1, "the resumed follower back in the ISR")
        n = len(p.acked)
        p.wait_acked(n + 500, timeout=30)
        p.stop()
    check_everything_acked_is_there(bootstrap(brokers), "pause", 1, p)


def produce_raw(node, topic: str, acks: int) -> int:
    batch = kwire.record_batch([kwire.Rec(key=b"k", value=b"raw")])
    with kwire.Conn.to(node.bootstrap) as c:
        c.send(kwire.produce_v9_request(7, topic, 0, batch, acks=acks, timeout_ms=5000))
        _, results, _ = kwire.parse_produce_v9(c.recv_frame(15))
    return results[topic][0].error_code


def test_not_enough_replicas(replicated):
    controllers, brokers = replicated
    create(brokers[0], "few", 1, 3, TOPIC_CONFIG)
    leader_id = wait_until(lambda: leaders(brokers[0], "few"), 10)[0]
    leader = next(b for b in brokers if b.node_id == leader_id)
    assert produce_raw(leader, "few", -1) == 0
    for b in brokers:
        if b is not leader:
            b.kill9()
    wait_until(lambda: (lambda s: s if s and s[1] == [leader_id] else None)(partition_state(leader, "few", 0)),
               SESSION_TIMEOUT_MS / 1000 + 20, 0.1, "the ISR down to the leader")
    assert produce_raw(leader, "few", -1) == 19  # NOT_ENOUGH_REPLICAS
    assert produce_raw(leader, "few", 1) == 0


def read_batches(path) -> list[tuple[int, int, int]]:
    """(base offset, last offset, partition leader epoch) of each batch in a segment file."""
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + 61 <= len(data):
        base, length, epoch = struct.unpack(">qii", data[pos:pos + 16])
        delta = struct.unpack(">i", data[pos + 23:pos + 27])[0]
        out.append((base, base + delta, epoch))
        pos += 12 + length
    return out


def test_follower_truncates_an_uncommitted_tail(replicated):
    controllers, brokers = replicated
    create(brokers[0], "trunc", 1, 3, TOPIC_CONFIG)
    leader_id = wait_until(lambda: leaders(brokers[0], "trunc"), 10)[0]
    old = next(b for b in brokers if b.node_id == leader_id)
    followers = [b for b in brokers if b is not old]
    for _ in range(5):
        assert produce_raw(old, "trunc", -1) == 0
    wait_until(lambda: all((b.partition_dir("trunc", 0) / "00000000000000000000.log").stat().st_size > 0 for b in followers), 10)
    time.sleep(1)  # the followers learn the high watermark
    # Pause both followers: what the leader takes now with acks=1 is written only there.
    for f in followers:
        os.kill(f.pid, signal.SIGSTOP)
    try:
        for _ in range(3):
            assert produce_raw(old, "trunc", 1) == 0
        old.kill9()
    finally:
        for f in followers:
            os.kill(f.pid, signal.SIGCONT)
    new_leader = wait_until(lambda: (lambda s: s[0] if s and s[0] not in (-1, leader_id) else None)(partition_state(followers[0], "trunc", 0)),
                            SESSION_TIMEOUT_MS / 1000 + 20, 0.1, "a new leader")
    new = next(b for b in brokers if b.node_id == new_leader)
    for _ in range(4):
        assert produce_raw(new, "trunc", 1) == 0
    old.restart()
    truncation = re.compile(r"truncated trunc-0 from (\d+) to (\d+)( to match|, below)")
    found = wait_until(lambda: truncation.search(old.log_text()), 30, 0.2, "the old leader to truncate its tail")
    assert found.group(1) == "8" and found.group(3) == " to match", found.group(0)  # not below its high watermark
    cut = int(found.group(2))
    # It keeps what the new leader had of the old epoch (a fetch answer may have reached a
    # follower just before the pause) and drops the rest.
    assert 5 <= cut < 8, cut
    wait_until(lambda: (lambda s: s if s and leader_id in s[1] else None)(partition_state(new, "trunc", 0)), 30, 0.2,
               "the old leader back in the ISR")
    assert produce_raw(new, "trunc", -1) == 0  # acks=all with the old leader in the ISR: it has it all
    old.stop()
    segment = "00000000000000000000.log"
    mine = read_batches(old.partition_dir("trunc", 0) / segment)
    theirs = read_batches(new.partition_dir("trunc", 0) / segment)
    assert mine == theirs
    assert [b[0] for b in mine] == list(range(cut + 5)), mine
    epochs = [b[2] for b in mine]
    assert epochs[:cut] == [epochs[0]] * cut and all(e > epochs[0] for e in epochs[cut:]), epochs


def test_java_default_producer_across_a_leader_change(replicated):
    """Kafka's Java producer with its defaults (acks=all, enable.idempotence=true) keeps sending
    while the partition leader is killed: every send is acknowledged once, with no gap."""
    import javaclient
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    controllers, brokers = replicated
    create(brokers[0], "java", 1, 3, TOPIC_CONFIG)
    leader_id = wait_until(lambda: leaders(brokers[0], "java"), 10)[0]
    victim = next(b for b in brokers if b.node_id == leader_id)
    count = 100_000
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", javaclient.produce(bootstrap(brokers), "java", count, timeout=300)))
    t.start()
    segment = victim.partition_dir("java", 0) / "00000000000000000000.log"
    wait_until(lambda: segment.exists() and segment.stat().st_size > 500_000, 120, 0.02, "the producer under way")
    victim.kill9()
    assert t.is_alive(), "the leader died while the producer was still sending"
    t.join(320)
    r = result["r"]
    assert r.ok, r.explain()
    assert len(r.records) == count
    offsets = sorted(rec.offset for rec in r.records)
    assert offsets == list(range(count)), "acknowledged offsets are 0..count-1: no gap, no duplicate"
    got = drain(bootstrap(brokers), "java", 1, count, timeout=120)
    assert [m.value.decode() for m in sorted(got, key=lambda m: m.offset)] == [f"m-{i}" for i in range(count)]


def back_in_isr(observer, topic: str, node_id: int):
    return wait_until(lambda: (lambda s: s if s and node_id in s[1] else None)(partition_state(observer, topic, 0)),
                      40, 0.2, f"broker {node_id} back in the ISR of {topic}")


def kill_leader_and_restart(brokers, topic: str):
    """Kills the leader (the preferred replica) of partition 0, waits for another leader, restarts
    the killed broker and waits until it is back in the ISR. Returns it."""
    leader_id = wait_until(lambda: leaders(brokers[0], topic), 10)[0]
    victim = next(b for b in brokers if b.node_id == leader_id)
    other = next(b for b in brokers if b is not victim)
    victim.kill9()
    wait_until(lambda: (lambda s: s if s and s[0] not in (-1, leader_id) else None)(partition_state(other, topic, 0)),
               SESSION_TIMEOUT_MS / 1000 + 20, 0.1, "another leader")
    victim.restart()
    back_in_isr(other, topic, leader_id)
    return victim, other


def offset_for_leader_epoch(node, topic: str, leader_epoch: int) -> tuple[int, int, int]:
    """OffsetForLeaderEpoch v3 as a consumer asks it (replica -1, no current epoch check) for
    partition 0: (error code, leader epoch, end offset)."""
    body = (kwire.i32(-1) + kwire.i32(1) + kwire.string(topic) + kwire.i32(1)
            + kwire.i32(0) + kwire.i32(-1) + kwire.i32(leader_epoch))
    with kwire.Conn.to(node.bootstrap) as c:
        c.send(kwire.frame(kwire.request_header_v1(23, 3, 11, "offsets-for-epoch") + body))
        r = kwire.Reader(c.recv_frame(15))
    assert r.i32() == 11  # correlation id
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    code, partition, epoch, end = r.i16(), r.i32(), r.i32(), r.i64()
    assert partition == 0
    return code, epoch, end


def test_preferred_leader_election_on_request(replicated):
    controllers, brokers = replicated
    create(brokers[0], "prefer", 1, 3, TOPIC_CONFIG)
    first_leader = wait_until(lambda: leaders(brokers[0], "prefer"), 10)[0]
    assert produce_raw(next(b for b in brokers if b.node_id == first_leader), "prefer", -1) == 0  # epoch 0
    victim, other = kill_leader_and_restart(brokers, "prefer")
    assert partition_state(other, "prefer", 0)[0] != victim.node_id  # auto rebalance is off here
    # The active controller said whom it fenced and when the fencing committed, as Kafka's does.
    logs = "".join(c.log_text() for c in controllers)
    assert re.search(rf"fencing brokers {victim.node_id}: no heartbeat within broker.session.timeout.ms", logs), logs
    assert re.search(rf"fenced brokers {victim.node_id}: committed \d+ ms after", logs), logs
    a = admin(other)
    result = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("prefer", 0)]).result(30)
    assert result[TopicPartition("prefer", 0)] is None, result
    wait_until(lambda: (partition_state(other, "prefer", 0) or (None,))[0] == victim.node_id, 10, 0.1,
               "the preferred replica leading again")
    again = a.elect_leaders(ElectionType.PREFERRED, [TopicPartition("prefer", 0)]).result(30)
    assert again[TopicPartition("prefer", 0)].code() == 84  # ELECTION_NOT_NEEDED
    assert produce_raw(victim, "prefer", -1) == 0

    # DeleteRecords up to the end drops every earlier epoch from the leader's epoch cache. Asked
    # about epoch 0 as a KIP-320 consumer validating its position would, the leader answers epoch
    # 0 ending where its log now starts, as Kafka's LeaderEpochFileCache does; an undefined answer
    # would make a Java consumer take the log for truncated and reset its position.
    wait_until(lambda: (lambda w: w if w[1] == 2 else None)(watermarks(victim.bootstrap, "prefer", 0)), 10, 0.1,
               "both records committed")
    deleted = a.delete_records([TopicPartition("prefer", 0, 2)], operation_timeout=30)
    assert list(deleted.values())[0].result(30).low_watermark == 2
    assert offset_for_leader_epoch(victim, "prefer", 0) == (0, 0, 2)
    assert offset_for_leader_epoch(victim, "prefer", -1)[1:] == (-1, -1)


def test_automatic_leader_rebalance(tmp_path):
    controllers, brokers = start_cluster(tmp_path, props={"leader.imbalance.check.interval.seconds": "2"})
    try:
        create(brokers[0], "rebalance", 1, 3, TOPIC_CONFIG)
        victim, other = kill_leader_and_restart(brokers, "rebalance")
        wait_until(lambda: (partition_state(other, "rebalance", 0) or (None,))[0] == victim.node_id, 15, 0.2,
                   "leadership back on the preferred replica by itself")
    finally:
        for n in brokers + controllers:
            n.close()
