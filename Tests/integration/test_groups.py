"""Consumer groups with real clients: the classic protocol (JoinGroup/SyncGroup/Heartbeat/
LeaveGroup) served by the group coordinator, with offsets committed to __consumer_offsets.

- confluent-kafka (range, roundrobin, cooperative-sticky) and kafka-python (range, roundrobin):
  two consumers of a 6-partition topic get disjoint assignments covering every partition; a third
  joining triggers a rebalance that spreads them over three; one closing hands its partitions
  over; one killed with -9 (a separate process) is expelled after session.timeout.ms and the
  survivors take its partitions.
- Commit, close, and a new consumer of the same group resumes exactly after the committed
  offsets: every message is read once over the two consumers, none skipped, none twice.
- AdminClient (confluent-kafka, kafka-python): list and describe groups (state, members,
  assignments), list committed offsets, delete offsets (OffsetDelete) and delete groups.
- On a 3-controller, 3-broker cluster with a replicated __consumer_offsets: kill -9 the
  coordinator of a consuming group; the group finds the new coordinator, its committed offsets
  are still there, and it finishes consuming with nothing lost.
- Static membership (KIP-345): a member with group.instance.id restarting within its session
  timeout gets its partitions back while the other member sees no rebalance; a member changing
  its subscription three times in quick succession ends with its last subscription's partitions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from cluster import start_cluster
from util import QUIET, create_topic, unique, wait_until

GROUP_PROPS = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 4,
    "group.min.session.timeout.ms": 1000,
}
SESSION_MS = 6000


@pytest.fixture(scope="module")
def gnode(module_node_factory):
    return module_node_factory(GROUP_PROPS)


def produce(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **QUIET})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % partitions)
    assert p.flush(30) == 0


def confluent(bootstrap: str, group: str, strategy: str = "range", **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "partition.assignment.strategy": strategy,
        "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500, **QUIET,
    }
    conf.update(extra)
    return Consumer(conf)


def owned(c) -> set[int]:
    return {tp.partition for tp in c.assignment()}


def steady_split(sets_now, partitions: int, timeout: float, label: str, steady: float):
    """The assignments `sets_now()` returns once they are disjoint, cover all `partitions`, leave
    no member empty, and have stayed the same for `steady` seconds."""
    seen = {"sets": None, "since": 0.0}

    def ok():
        sets = sets_now()
        union = set().union(*sets)
        good = sum(len(x) for x in sets) == len(union) and union == set(range(partitions)) and all(sets)
        now = time.monotonic()
        if good and steady <= 0:
            return sets
        if not good or sets != seen["sets"]:
            seen["sets"], seen["since"] = (sets if good else None), now
            return False
        return now - seen["since"] >= steady and sets
    return wait_until(ok, timeout, 0.05, label)


def settle(consumers, partitions: int, timeout: float = 45.0, poll=None):
    """Polls every consumer until their assignments split `partitions` and hold steady; returns
    the assignments."""
    poll = poll or (lambda c: c.poll(0.05))

    def sets_now():
        for c in consumers:
            poll(c)
        return [owned_any(c) for c in consumers]
    # No steady period: these polls would swallow messages the test reads next (librdkafka
    # empties a member's assignment while it rebalances, so a split seen here is settled).
    return steady_split(sets_now, partitions, timeout, f"{len(consumers)} consumers to share {partitions} partitions", 0)


def owned_any(c) -> set[int]:
    if isinstance(c, Consumer):
        return owned(c)
    return {tp.partition for tp in c.assignment()}  # kafka-python


KILLABLE = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer
    bootstrap, group, topic, strategy = sys.argv[1:5]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "partition.assignment.strategy": strategy,
                  "session.timeout.ms": %d, "heartbeat.interval.ms": 500, "log_level": 3})
    c.subscribe([topic])
    said = False
    while True:
        c.poll(0.1)
        if c.assignment() and not said:
            print("assigned", sorted(tp.partition for tp in c.assignment()), flush=True)
            said = True
""" % SESSION_MS)


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_confluent_group_rebalances(gnode, strategy, tmp_path):
    topic, group = unique("gr"), unique("grp")
    create_topic(gnode.bootstrap, topic, 6)
    a = confluent(gnode.bootstrap, group, strategy)
    b = confluent(gnode.bootstrap, group, strategy)
    a.subscribe([topic])
    b.subscribe([topic])
    two = settle([a, b], 6)
    assert sorted(len(s) for s in two) == [3, 3], two

    c = confluent(gnode.bootstrap, group, strategy)
    c.subscribe([topic])
    three = settle([a, b, c], 6)
    assert sorted(len(s) for s in three) == [2, 2, 2], three

    # One closing (LeaveGroup) hands its partitions over at once, well before a session timeout.
    started = time.monotonic()
    c.close()
    settle([a, b], 6)
    assert time.monotonic() - started < SESSION_MS / 1000, "close should not wait for the session to expire"

    # A member killed with -9 says nothing: it is expelled once its session times out.
    script = tmp_path / "member.py"
    script.write_text(KILLABLE)
    proc = subprocess.Popen([sys.executable, str(script), gnode.bootstrap, group, topic, strategy],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 45
        os.set_blocking(proc.stdout.fileno(), False)
        while "assigned" not in line and time.monotonic() < deadline:
            a.poll(0.05)
            b.poll(0.05)
            line += proc.stdout.readline() or ""
        assert "assigned" in line, "the third member never got partitions"
        wait_until(lambda: (a.poll(0.05), b.poll(0.05), len(owned(a)) + len(owned(b)) < 6)[-1], 30, 0.05,
                   "the survivors to give partitions to the new member")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        settle([a, b], 6, timeout=SESSION_MS / 1000 + 30)
        assert time.monotonic() - killed >= (SESSION_MS / 1000) * 0.5, "expelled before its session could expire"
    finally:
        if proc.poll() is None:
            proc.kill()
    a.close()
    b.close()


class PolledMember:
    """A kafka-python consumer polled by its own thread, as an application would run it
    (kafka-python sends JoinGroup/SyncGroup from poll)."""

    def __init__(self, make):
        import threading
        self.consumer = make()
        self.lock = threading.Lock()
        self.owned: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.consumer.poll(timeout_ms=100)
            with self.lock:
                self.owned = {tp.partition for tp in self.consumer.assignment()}

    def assignment_set(self) -> set[int]:
        with self.lock:
            return set(self.owned)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def settle_threads(members, partitions: int, timeout: float = 45.0):
    # Read from other threads, members can be seen on different generations for an instant in
    # the middle of a rebalance, in a split that looks whole: the split must hold for a second.
    return steady_split(lambda: [m.assignment_set() for m in members], partitions, timeout,
                        f"{len(members)} kafka-python consumers to share {partitions} partitions", 1.0)


@pytest.mark.parametrize("assignor", ["range", "roundrobin"])
def test_kafka_python_group_rebalances(gnode, assignor):
    from kafka import KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    strategy = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[assignor]
    topic, group = unique("kpg"), unique("kpgrp")
    create_topic(gnode.bootstrap, topic, 6)

    def make():
        c = KafkaConsumer(bootstrap_servers=gnode.bootstrap, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, partition_assignment_strategy=[strategy],
                          session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500)
        c.subscribe([topic])
        # The first join must see the topic's partitions. Otherwise the leader assigns nothing,
        # and kafka-python 3.0.12 rejoins when its metadata changes: if poll() returns while that
        # join is in flight, the client never picks up the join's result, and never heartbeats
        # again. topics() waits for a full metadata response, which updates the snapshot.
        assert topic in c.topics()
        return c

    a, b = PolledMember(make), PolledMember(make)
    c = None
    try:
        two = settle_threads([a, b], 6)
        assert sorted(len(x) for x in two) == [3, 3], two
        c = PolledMember(make)
        three = settle_threads([a, b, c], 6)
        assert sorted(len(x) for x in three) == [2, 2, 2], three
        c.close()
        c = None
        settle_threads([a, b], 6)
    finally:
        for m in (a, b, c):
            if m is not None:
                m.close()


def consume_some(c: Consumer, limit: int, timeout: float = 30.0) -> list[tuple[int, int]]:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < limit and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        got.append((m.partition(), m.offset()))
    return got


def test_commit_close_resume_exactly(gnode):
    topic, group = unique("res"), unique("resgrp")
    create_topic(gnode.bootstrap, topic, 3)
    produce(gnode.bootstrap, topic, 300, 3)

    first = confluent(gnode.bootstrap, group)
    first.subscribe([topic])
    part1 = consume_some(first, 140)
    assert len(part1) == 140
    first.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in first.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
    first.close()
    # The committed offset of each partition is one past the last message read there.
    for p in range(3):
        read = [o for (pp, o) in part1 if pp == p]
        assert committed[p] == (max(read) + 1 if read else -1001), (p, committed, read)

    second = confluent(gnode.bootstrap, group)
    second.subscribe([topic])
    part2 = consume_some(second, 160)
    second.close()
    assert len(part2) == 160
    for p in range(3):
        offsets = [o for (pp, o) in part2 if pp == p]
        start = committed[p] if committed[p] >= 0 else 0
        assert offsets == list(range(start, 100)), f"partition {p} resumed at {offsets[:3]} not {start}"
    assert sorted(part1 + part2) == sorted((i % 3, i // 3) for i in range(300)), "each message once"


def test_admin_list_describe_offsets_delete(gnode):
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition

    topic, group = unique("adm"), unique("admgrp")
    create_topic(gnode.bootstrap, topic, 2)
    produce(gnode.bootstrap, topic, 20, 2)
    c = confluent(gnode.bootstrap, group, "roundrobin", **{"client.id": "admin-test-client"})
    c.subscribe([topic])
    settle([c], 2)
    assert len(consume_some(c, 20)) == 20
    c.commit(asynchronous=False)

    admin = AdminClient({"bootstrap.servers": gnode.bootstrap, **QUIET})
    listed = admin.list_consumer_groups(request_timeout=10).result(15)
    mine = [g for g in listed.valid if g.group_id == group]
    assert mine and str(mine[0].state).endswith("STABLE"), listed.valid
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(15)
    assert str(desc.state).endswith("STABLE")
    assert desc.partition_assignor == "roundrobin"
    assert len(desc.members) == 1 and desc.members[0].client_id == "admin-test-client"
    assigned = {tp.partition for tp in desc.members[0].assignment.topic_partitions}
    assert assigned == {0, 1}
    assert desc.coordinator.port == int(gnode.bootstrap.rsplit(":", 1)[1])

    from confluent_kafka import ConsumerGroupTopicPartitions
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    assert {(tp.partition, tp.offset) for tp in offsets.topic_partitions} == {(0, 10), (1, 10)}

    kadmin = KafkaAdminClient(bootstrap_servers=gnode.bootstrap)
    try:
        # Deleting offsets of a topic the group still subscribes to is refused.
        result = kadmin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        errs = {tp.partition: e for tp, e in result.items()} if isinstance(result, dict) else {}
        assert errs and all(getattr(e, "errno", e) not in (0, None) for e in errs.values()), result
        c.close()
        wait_until(lambda: str(admin.describe_consumer_groups([group])[group].result(15).state).endswith("EMPTY"),
                   20, 0.2, "the group to become empty")
        kadmin.delete_group_offsets(group, [KTopicPartition(topic, 0)])
        left = kadmin.list_group_offsets(group)
        left = left.get(group, left)  # kafka-python 3 answers {group: {tp: offset}}
        assert {tp.partition for tp in left} == {1}, left
    finally:
        kadmin.close()

    res = admin.delete_consumer_groups([group], request_timeout=10)[group]
    res.result(15)
    listed = admin.list_consumer_groups(request_timeout=10).result(15)
    assert group not in {g.group_id for g in listed.valid}
    # A group with members cannot be deleted.
    busy = unique("busy")
    c2 = confluent(gnode.bootstrap, busy)
    c2.subscribe([topic])
    settle([c2], 2)
    with pytest.raises(KafkaException) as e:
        admin.delete_consumer_groups([busy], request_timeout=10)[busy].result(15)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    c2.close()


def find_coordinator(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(15).coordinator.id


def test_group_survives_coordinator_kill(require_runnel, tmp_path):
    props = {**{k: str(v) for k, v in GROUP_PROPS.items()}, "offsets.topic.replication.factor": "3",
             "default.replication.factor": "3", "min.insync.replicas": "2"}
    controllers, brokers = start_cluster(tmp_path, broker_props=props)
    try:
        servers = ",".join(b.bootstrap for b in brokers)
        topic, group = unique("fo"), unique("fogrp")
        a = AdminClient({"bootstrap.servers": servers, **QUIET})
        from confluent_kafka.admin import NewTopic
        a.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
        wait_until(lambda: all(p.leader >= 0 for p in a.list_topics(topic, timeout=5).topics[topic].partitions.values()),
                   30, 0.2, "leaders")
        produce(servers, topic, 3000, 3)

        c = confluent(servers, group)
        c.subscribe([topic])
        seen = []
        while len(seen) < 1000:
            seen += consume_some(c, 1000 - len(seen), timeout=60)
        c.commit(asynchronous=False)
        before = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)}
        coordinator = find_coordinator(servers, group)
        victim = next(b for b in brokers if b.node_id == coordinator)
        victim.kill9()

        # The group keeps consuming; commits go to the new coordinator once it is found.
        deadline = time.monotonic() + 120
        while len(set(seen)) < 3000 and time.monotonic() < deadline:
            seen += consume_some(c, 200, timeout=5)
            try:
                c.commit(asynchronous=False)
            except KafkaException:
                pass  # NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE while it moves: retried
        assert set(seen) == {(i % 3, i // 3) for i in range(3000)}, f"read {len(set(seen))} of 3000"
        after = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)}
        assert all(after[p] >= before[p] for p in range(3)), (before, after)
        assert after == {0: 1000, 1: 1000, 2: 1000}, after
        assert find_coordinator(servers, group) != coordinator
        c.close()

        # A new consumer of the group starts from the committed end: nothing left to read.
        fresh = confluent(servers, group)
        fresh.subscribe([topic])
        assert consume_some(fresh, 1, timeout=8) == []
        fresh.close()
    finally:
        for n in brokers + controllers:
            n.close()


def test_rebalance_on_metadata_changes(gnode):
    """A pattern subscription picks up a new matching topic, and a partition count increase
    reaches the group: both through Metadata, with a rebalance that assigns the new partitions."""
    from confluent_kafka.admin import NewPartitions

    prefix = unique("pat")
    create_topic(gnode.bootstrap, f"{prefix}-a", 2)
    group = unique("patgrp")
    a = confluent(gnode.bootstrap, group, "range", **{"topic.metadata.refresh.interval.ms": 1000})
    b = confluent(gnode.bootstrap, group, "range", **{"topic.metadata.refresh.interval.ms": 1000})
    a.subscribe([f"^{prefix}-.*"])
    b.subscribe([f"^{prefix}-.*"])

    def owned_all(consumers) -> set[tuple[str, int]]:
        for c in consumers:
            c.poll(0.05)
        sets = [{(tp.topic, tp.partition) for tp in c.assignment()} for c in consumers]
        union = set().union(*sets)
        return union if sum(len(x) for x in sets) == len(union) else set()

    wait_until(lambda: owned_all([a, b]) == {(f"{prefix}-a", 0), (f"{prefix}-a", 1)}, 45, 0.05, "the first topic's partitions")
    create_topic(gnode.bootstrap, f"{prefix}-b", 2)
    want = {(f"{prefix}-{t}", p) for t in "ab" for p in range(2)}
    wait_until(lambda: owned_all([a, b]) == want, 45, 0.05, "the new matching topic to be assigned")
    admin = AdminClient({"bootstrap.servers": gnode.bootstrap, **QUIET})
    admin.create_partitions([NewPartitions(f"{prefix}-a", 4)])[f"{prefix}-a"].result(30)
    want |= {(f"{prefix}-a", 2), (f"{prefix}-a", 3)}
    wait_until(lambda: owned_all([a, b]) == want, 45, 0.05, "the added partitions to be assigned")
    a.close()
    b.close()


def test_commit_for_a_partition_that_does_not_exist(gnode):
    """OffsetCommit for an unknown topic or partition answers UNKNOWN_TOPIC_OR_PARTITION for it
    (Kafka's handleOffsetCommitRequest), and the known ones are committed."""
    topic = unique("known")
    create_topic(gnode.bootstrap, topic, partitions=1)
    c = Consumer({"bootstrap.servers": gnode.bootstrap, "group.id": unique("g"), "enable.auto.commit": False,
                  **QUIET})
    try:
        offsets = [TopicPartition(topic, 0, 3), TopicPartition(topic, 7, 3), TopicPartition(unique("nowhere"), 0, 3)]
        with pytest.raises(KafkaException) as failure:
            c.commit(offsets=offsets, asynchronous=False)
        assert failure.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, failure.value
        got = c.committed([TopicPartition(topic, 0)], timeout=10)
        assert got[0].offset == 3
    finally:
        c.close()


def test_static_member_restart_keeps_its_assignment(gnode):
    """KIP-345: a static member (group.instance.id) whose process stops without leaving and comes
    back within its session timeout gets its previous assignment back, and the other member sees
    no rebalance (no revoke or assign callback, same partitions)."""
    topic, group = unique("static"), unique("staticgrp")
    create_topic(gnode.bootstrap, topic, 4)
    calls = {"a": 0, "b": 0}

    def member(name: str) -> Consumer:
        c = confluent(gnode.bootstrap, group, "range", **{"group.instance.id": f"inst-{name}",
                                                          "session.timeout.ms": 30000})
        c.subscribe([topic], on_assign=lambda *_: calls.__setitem__(name, calls[name] + 1),
                    on_revoke=lambda *_: calls.__setitem__(name, calls[name] + 1))
        return c

    a, b = member("a"), member("b")
    def both():
        a.poll(0.05)
        b.poll(0.05)
        return [owned(a), owned(b)]
    before = steady_split(both, 4, 45, "two static members to share 4 partitions", 2.0)
    seen_by_a = calls["a"]
    b.close()  # a static member sends no LeaveGroup: its place waits for session.timeout.ms
    back = member("b")
    try:
        wait_until(lambda: a.poll(0.05) or back.poll(0.05) or owned(back), 20, 0, "the restarted member's assignment")
        assert owned(back) == before[1], f"restarted member got {owned(back)}, had {before[1]}"
        end = time.monotonic() + 3
        while time.monotonic() < end:
            a.poll(0.05)
            back.poll(0.05)
        assert owned(a) == before[0] and calls["a"] == seen_by_a, "the other member saw a rebalance"
    finally:
        a.close()
        back.close()


def test_rapid_resubscription_ends_with_the_last_subscription(gnode):
    """A member that changes its subscription several times in quick succession, while the group
    rebalances, ends with an assignment for its last subscription only."""
    t1, t2, t3 = (unique(f"resub{i}") for i in range(3))
    for t in (t1, t2, t3):
        create_topic(gnode.bootstrap, t, 2)
    group = unique("resubgrp")
    a = confluent(gnode.bootstrap, group, "roundrobin")
    b = confluent(gnode.bootstrap, group, "roundrobin")
    a.subscribe([t1])
    b.subscribe([t1, t2, t3])

    def assigned(c) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in c.assignment()}

    wait_until(lambda: a.poll(0.05) or b.poll(0.05) or len(assigned(a) | assigned(b)) == 6, 45, 0, "a first split")
    try:
        for topics in ([t2], [t1, t2], [t3]):
            a.subscribe(topics)
            a.poll(0.01)
            b.poll(0.01)

        def settled():
            a.poll(0.05)
            b.poll(0.05)
            mine, theirs = assigned(a), assigned(b)
            return mine and all(t == t3 for t, _ in mine) and mine | theirs == {(t, p) for t in (t1, t2, t3)
                                                                                  for p in range(2)} \
                and not (mine & theirs)
        wait_until(settled, 45, 0, "the member to end with its last subscription's partitions")
    finally:
        a.close()
        b.close()
