"""Incremental fetch sessions (KIP-227) against a real broker.

Over a raw socket (kwire's Fetch v12/v13): a full fetch with session id 0 and epoch 0 opens a
session; an incremental fetch with the session's epoch answers only the partitions that changed
(new records, a moved high watermark) and reads partitions not sent again from their cached
offsets; forgotten partitions leave the session; a wrong epoch answers INVALID_FETCH_SESSION_EPOCH
(71), an unknown session FETCH_SESSION_ID_NOT_FOUND (70), both as top-level errors with no
partitions; epoch -1 closes the session. With topic ids (v13) a partition of an unknown topic id
stays in the session and answers UNKNOWN_TOPIC_ID (100) on every fetch. A parked fetch of a
session (max wait, min bytes) wakes for data on a partition the request did not name.
max.incremental.fetch.session.cache.slots bounds the sessions (0: none; 1: a second young
session of the same size does not evict the first).

With real clients: the Java consumer (which uses sessions) reads a 200-partition topic exactly,
while records arrive during the read, and the broker's metrics show its session; librdkafka
(which sends sessionless fetches) reads the same topic exactly too.

Followers: in 3 brokers with a replication factor 3 topic, every leader holds its two followers'
sessions (metrics) and acks=all keeps working; after a broker is killed with -9 and restarted
(followers move to new leaders and open sessions there; the restarted broker starts with none),
every replica is back in the ISR and every acknowledged record is read back at its offset. (The
fall-back to a full fetch on a session error is tested on the fetcher itself, in
ReplicaFetcherTests.)
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Producer

import kwire
from kwire import FetchPart
from cluster import admin as cluster_admin
from cluster import create as create_replicated
from cluster import start_cluster
from nodes import free_ports, port_accepts
from util import QUIET, create_topic, drain, unique, wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
UNKNOWN_TOPIC_ID = 100


@pytest.fixture(scope="module")
def metrics_port():
    return free_ports(1)[0]


@pytest.fixture(scope="module")
def node(module_node_factory, metrics_port):
    n = module_node_factory({"metrics.port": metrics_port, "metrics.host": "127.0.0.1"})
    wait_until(lambda: port_accepts(metrics_port), 20, 0.1, "the metrics port")
    return n


def produce(bootstrap: str, topic: str, partitions: list[int], per_partition: int = 1) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
    for part in partitions:
        for i in range(per_partition):
            p.produce(topic, value=b"v%d" % i, partition=part)
    assert p.flush(30) == 0


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    assert m, f"no {name} in the metrics"
    return float(m.group(1))


def test_session_lifecycle_over_the_wire(node):
    topic = unique("sessions")
    create_topic(node.bootstrap, topic, 4)
    produce(node.bootstrap, topic, [0, 1, 2, 3])
    with kwire.Conn.to(node.bootstrap) as c:
        full = c.fetch(1, {topic: [FetchPart(p, 0) for p in range(4)]}, session_id=0, session_epoch=0)
        assert full.error_code == 0
        sid = full.session_id
        assert sid != 0, "an INITIAL full fetch opens a session"
        assert full.partitions() == {(topic, p) for p in range(4)}
        assert all(p.records for p in full.topics[topic]), "each partition's record comes back"

        # Epoch 1: the client moved every partition to offset 1; nothing changed on the broker.
        nothing = c.fetch(2, {topic: [FetchPart(p, 1) for p in range(4)]}, session_id=sid, session_epoch=1)
        assert (nothing.error_code, nothing.session_id) == (0, sid)
        assert nothing.partitions() == set(), "an incremental answer leaves unchanged partitions out"

        # A record on partition 2: an incremental fetch naming no partition reads the cached offsets.
        produce(node.bootstrap, topic, [2])
        changed = c.fetch(3, {}, session_id=sid, session_epoch=2)
        assert changed.error_code == 0
        assert changed.partitions() == {(topic, 2)}, "only the partition with a new record is answered"
        [p2] = changed.topics[topic]
        assert p2.high_watermark == 2 and p2.records

        # The client forgets partition 0; records on 0 and 1 answer only partition 1.
        quiet = c.fetch(4, {topic: [FetchPart(2, 2)]}, session_id=sid, session_epoch=3, forgotten={topic: [0]})
        assert quiet.partitions() == set()
        produce(node.bootstrap, topic, [0, 1])
        after_forget = c.fetch(5, {}, session_id=sid, session_epoch=4)
        assert after_forget.partitions() == {(topic, 1)}, "a forgotten partition is no longer fetched"

        # Session errors: top-level, no partitions, and the session survives them.
        wrong = c.fetch(6, {}, session_id=sid, session_epoch=9)
        assert (wrong.error_code, wrong.topics) == (INVALID_FETCH_SESSION_EPOCH, {})
        replay = c.fetch(7, {}, session_id=sid, session_epoch=4)
        assert replay.error_code == INVALID_FETCH_SESSION_EPOCH, "an epoch already used is refused"
        unknown = c.fetch(8, {}, session_id=(sid % 2_000_000_000) + 1, session_epoch=1)
        assert (unknown.error_code, unknown.topics) == (FETCH_SESSION_ID_NOT_FOUND, {})
        no_session = c.fetch(9, {}, session_id=0, session_epoch=3)
        assert no_session.error_code == INVALID_FETCH_SESSION_EPOCH
        still = c.fetch(10, {topic: [FetchPart(1, 2)]}, session_id=sid, session_epoch=5)
        assert (still.error_code, still.session_id) == (0, sid)

        # Epoch -1 closes the session (a full, sessionless fetch); it is gone afterwards.
        closing = c.fetch(11, {topic: [FetchPart(3, 0)]}, session_id=sid, session_epoch=-1)
        assert (closing.error_code, closing.session_id) == (0, 0)
        assert closing.partitions() == {(topic, 3)}
        gone = c.fetch(12, {}, session_id=sid, session_epoch=6)
        assert gone.error_code == FETCH_SESSION_ID_NOT_FOUND

        # Session id 0 with epoch -1: full and sessionless, as before KIP-227.
        legacy = c.fetch(13, {topic: [FetchPart(0, 0)]}, session_id=0, session_epoch=-1)
        assert (legacy.error_code, legacy.session_id) == (0, 0)


def test_parked_session_fetch_wakes_for_an_unnamed_partition(node):
    topic = unique("sessions-wait")
    create_topic(node.bootstrap, topic, 3)
    with kwire.Conn.to(node.bootstrap, timeout=10) as c:
        full = c.fetch(1, {topic: [FetchPart(p, 0) for p in range(3)]}, session_id=0, session_epoch=0)
        sid = full.session_id
        assert sid != 0
        timer = threading.Timer(0.5, lambda: produce(node.bootstrap, topic, [1]))
        timer.start()
        t0 = time.monotonic()
        woke = c.fetch(2, {}, session_id=sid, session_epoch=1, max_wait_ms=5000, min_bytes=1)
        took = time.monotonic() - t0
        timer.join()
        assert woke.error_code == 0
        assert woke.partitions() == {(topic, 1)}
        assert took < 4, f"the parked fetch waited {took:.1f} s instead of waking for the record"


def test_topic_ids_and_unknown_topic_id(node):
    topic = unique("sessions-ids")
    create_topic(node.bootstrap, topic, 2)
    produce(node.bootstrap, topic, [0, 1])
    from confluent_kafka import TopicCollection

    from util import admin
    a = admin(node.bootstrap)   # kept alive until the answer is in
    [description] = [f.result(30) for f in a.describe_topics(TopicCollection([topic])).values()]
    uuid = description.topic_id
    topic_id = (uuid.get_most_significant_bits() & (2**64 - 1)).to_bytes(8, "big") + (
        uuid.get_least_significant_bits() & (2**64 - 1)).to_bytes(8, "big")
    stranger = bytes(range(1, 17))
    with kwire.Conn.to(node.bootstrap) as c:
        full = c.fetch(1, {topic_id: [FetchPart(0, 0), FetchPart(1, 0)]}, session_id=0, session_epoch=0, version=13)
        assert full.error_code == 0 and full.session_id != 0
        sid = full.session_id
        assert full.partitions() == {(topic_id, 0), (topic_id, 1)}
        # An unknown topic id joins the session and answers UNKNOWN_TOPIC_ID on every fetch.
        first = c.fetch(2, {stranger: [FetchPart(0, 0)], topic_id: [FetchPart(0, 1), FetchPart(1, 1)]},
                        session_id=sid, session_epoch=1, version=13)
        assert first.partitions() == {(stranger, 0)}
        assert first.topics[stranger][0].error_code == UNKNOWN_TOPIC_ID
        again = c.fetch(3, {}, session_id=sid, session_epoch=2, version=13)
        assert again.partitions() == {(stranger, 0)} and again.topics[stranger][0].error_code == UNKNOWN_TOPIC_ID
        # Forgotten by id, it is gone; a record on partition 0 is answered by id.
        produce(node.bootstrap, topic, [0])
        last = c.fetch(4, {}, session_id=sid, session_epoch=3, forgotten={stranger: [0]}, version=13)
        assert last.partitions() == {(topic_id, 0)}
        # A session opened with topic ids is not used by a request naming topics.
        mixed = c.fetch(5, {}, session_id=sid, session_epoch=4, version=12)
        assert mixed.error_code == 106, "FETCH_SESSION_TOPIC_ID_ERROR"


@pytest.mark.parametrize("slots", [0, 1])
def test_cache_slots_bound_the_sessions(node_factory, slots):
    """max.incremental.fetch.session.cache.slots is read from server.properties: with 0 no
    session opens; with 1 a second consumer's session cannot evict the first (it is younger than
    two minutes and no bigger), and the fetch is answered in full without a session."""
    small = node_factory({"max.incremental.fetch.session.cache.slots": slots})
    topic = unique("sessions-slots")
    create_topic(small.bootstrap, topic, 2)
    parts = {topic: [FetchPart(0, 0), FetchPart(1, 0)]}
    with kwire.Conn.to(small.bootstrap) as c:
        first = c.fetch(1, parts, session_id=0, session_epoch=0)
        second = c.fetch(2, parts, session_id=0, session_epoch=0)
    assert first.error_code == second.error_code == 0
    assert (first.session_id != 0) == (slots == 1)
    assert second.session_id == 0
    assert second.partitions() == {(topic, 0), (topic, 1)}


def test_java_consumer_reads_many_partitions_with_a_session(node, metrics_port):
    import javaclient
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    javaclient.compiled_dir()
    topic = unique("sessions-java")
    partitions = 200
    create_topic(node.bootstrap, topic, partitions)
    produce(node.bootstrap, topic, list(range(partitions)), per_partition=2)
    # More records arrive on a few partitions while the consumer reads: its incremental fetches
    # must bring them.
    late = threading.Timer(6.0, lambda: produce(node.bootstrap, topic, [7, 77, 177], per_partition=5))
    seen_sessions: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                seen_sessions.append(metric(metrics_port, "runnel_incremental_fetch_sessions"))
            except Exception:  # noqa: BLE001 - a scrape that fails is simply not counted
                pass
            stop.wait(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    late.start()
    expected = partitions * 2 + 15
    try:
        got = javaclient.consume(node.bootstrap, topic, expected, 60_000)
    finally:
        late.join()
        stop.set()
        watcher.join()
    assert got.ok, got.explain()
    seen = {(r.partition, r.offset) for r in got.records}
    assert len(got.records) == len(seen) == expected, f"{len(got.records)} records, {len(seen)} distinct"
    assert all((p, o) in seen for p in range(partitions) for o in range(2))
    assert all((p, o) in seen for p in (7, 77, 177) for o in range(2, 7))
    assert max(seen_sessions, default=0) >= 1, "the Java consumer's fetches opened no session"


def test_librdkafka_reads_many_partitions(node):
    topic = unique("sessions-rdkafka")
    partitions = 200
    create_topic(node.bootstrap, topic, partitions)
    produce(node.bootstrap, topic, list(range(partitions)), per_partition=3)
    got = drain(node.bootstrap, topic, partitions, partitions * 3)
    assert len(got) == partitions * 3


def test_followers_replicate_in_sessions(tmp_path):
    ports = free_ports(3)
    controllers, brokers = start_cluster(
        tmp_path, {"replica.lag.time.max.ms": 2000, "replica.fetch.backoff.ms": 200},
        props={"auto.leader.rebalance.enable": "false"},
        each_broker_props=[{"metrics.port": p, "metrics.host": "127.0.0.1"} for p in ports])
    try:
        servers = ",".join(b.bootstrap for b in brokers)
        topic = unique("sessions-rf3")
        create_replicated(brokers[0], topic, 6, 3, {"min.insync.replicas": "2"})
        p = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 120_000, **QUIET})
        acked: list[tuple[int, int, bytes]] = []

        def send(n: int, start: int) -> None:
            for i in range(start, start + n):
                p.produce(topic, value=b"r%06d" % i, partition=i % 6,
                          on_delivery=lambda err, m: acked.append((m.partition(), m.offset(), m.value()))
                          if err is None else None)
                if i % 500 == 0:
                    p.poll(0)
            assert p.flush(120) == 0

        send(3000, 0)
        # Each broker leads two partitions, followed by the two other brokers: two sessions each.
        for port in ports:
            wait_until(lambda port=port: metric(port, "runnel_incremental_fetch_sessions") >= 2, 30, 0.2,
                       f"two follower sessions on the broker with metrics port {port}")
            assert metric(port, "runnel_incremental_fetch_partitions_cached") >= 4

        victim = brokers[1]
        victim.kill9()
        send(1000, 3000)
        victim.restart()
        send(1000, 4000)

        def all_in_sync() -> bool:
            md = cluster_admin(brokers[0]).list_topics(topic, timeout=5)
            t = md.topics.get(topic)
            return t is not None and t.error is None and all(len(q.isrs) == 3 for q in t.partitions.values())

        wait_until(all_in_sync, 60, 0.2, "every replica back in the ISR")
        assert len(acked) == 5000
        got = drain(servers, topic, 6, len(acked), timeout=60)
        at = {(m.partition, m.offset): m.value for m in got}
        missing = [a for a in acked if at.get((a[0], a[1])) != a[2]]
        assert not missing, f"{len(missing)} acknowledged records not at their offsets, e.g. {missing[:3]}"
        assert len(got) == len(acked)
    finally:
        for n in brokers + controllers:
            n.close()
