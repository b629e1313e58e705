"""Partition reassignment (KIP-455) on a 3-broker cluster (3 controllers beside it), driven by
Apache Kafka's Java Admin client (alterPartitionReassignments, listPartitionReassignments).

A topic with replication factor 1 holding 50,000 records moves to another broker: the old leader
hands over, leaves the replica set and deletes its log. Then its replication factor grows from 1
to 3 under a replication throttle: listPartitionReassignments shows the move with its adding
replicas until the new replicas catch up, join the ISR and the move completes; shrunk back to 1
on a third broker, it completes at once. Every record is read back
afterwards from the new leader, at the offset it was acknowledged with. A move that cannot finish
(its new replica is a stopped broker) is listed as in progress, with its adding replica, until it
is cancelled (it outlives the active controller meanwhile); then the partition is back on its old
replica. Bad plans get Kafka's errors.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer

import javaclient
from cluster import active_controller, create, running_cluster, start_cluster
from nodes import runnel_bin
from util import QUIET, drain, is_runnel, wait_until

pytestmark = [
    pytest.mark.skipif(not is_runnel(), reason="a Runnel cluster"),
    pytest.mark.skipif(javaclient.missing() is not None, reason=str(javaclient.missing())),
]

RECORDS = 50_000


@pytest.fixture
def brokers3(tmp_path):
    # Two quota windows: a throttle's first burst is one window's worth, not ten.
    with running_cluster(tmp_path, {"replica.lag.time.max.ms": 2000, "replica.fetch.backoff.ms": 200,
                                                    "replication.quota.window.num": "2"}) as nodes:
        yield nodes


def bootstrap(brokers) -> str:
    return ",".join(b.bootstrap for b in brokers if b.is_alive())


def state(servers: str, topic: str, partition: int = 0):
    md = admin_client(servers).list_topics(topic, timeout=5)
    p = md.topics[topic].partitions[partition]
    return p.leader, list(p.replicas), sorted(p.isrs)


def admin_client(servers: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": servers, **QUIET})


def fill(servers: str, topic: str, count: int) -> list[tuple[int, bytes]]:
    """Produces `count` records with acks=all; returns (offset, value) of each acknowledged one."""
    acked: list[tuple[int, bytes]] = []
    p = Producer({"bootstrap.servers": servers, "acks": "all", "linger.ms": 20, "enable.idempotence": True, **QUIET})

    def report(err, msg):
        assert err is None, err
        acked.append((msg.offset(), msg.value()))

    for i in range(count):
        while True:
            try:
                p.produce(topic, value=f"v-{i:06d}".encode() + b"x" * 100, callback=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert len(acked) == count
    return acked


def reassign(servers: str, *plan: str) -> dict[str, str | None]:
    res = javaclient.run("reassign", servers, "alter", *plan)
    out = {o["partition"]: o["error"] for o in res.objects if "partition" in o}
    assert len(out) == len(plan), res.explain()
    return out


def listed(servers: str, *partitions: str) -> dict[str, dict]:
    res = javaclient.run("reassign", servers, "list", *partitions)
    assert res.ok, res.explain()
    return {o["partition"]: o for o in res.objects}


def read_back(servers: str, topic: str, acked: list[tuple[int, bytes]]) -> None:
    got = drain(servers, topic, 1, len(acked), timeout=120)
    assert [(m.offset, m.value) for m in got] == acked


def test_move_then_grow_replication_factor(brokers3):
    _, brokers = brokers3
    servers = bootstrap(brokers)
    create(brokers[0], "moved", 1, 1)
    wait_until(lambda: state(servers, "moved")[0] >= 0, what="a leader for moved-0")
    acked = fill(servers, "moved", RECORDS)
    old, replicas, _ = state(servers, "moved")
    assert replicas == [old]
    others = [b.node_id for b in brokers if b.node_id != old]
    old_node = next(b for b in brokers if b.node_id == old)
    assert old_node.partition_dir("moved", 0).is_dir()

    # 1. Move the only replica to another broker: leadership moves with it, the old broker
    # leaves the replica set and deletes its log.
    target = others[0]
    assert reassign(servers, f"moved:0={target}") == {"moved-0": None}
    wait_until(lambda: state(servers, "moved") == (target, [target], [target]), timeout=60,
               what=f"moved-0 on broker {target} alone")
    wait_until(lambda: listed(servers) == {}, timeout=30, what="no reassignment listed")
    wait_until(lambda: not old_node.partition_dir("moved", 0).exists(), timeout=30,
               what=f"broker {old} deleting its moved-0 log")
    read_back(servers, "moved", acked)

    # 2. Replication factor 1 -> 3, under a leader-side throttle of 2 MB/s so the copy takes a few
    # seconds: listPartitionReassignments shows the move, with its adding replicas, until the new
    # replicas have caught up and joined the ISR, and then no more.
    for args in (["--broker", str(target), "--add-config", "leader.replication.throttled.rate=2000000"],
                 ["--topic", "moved", "--add-config", "leader.replication.throttled.replicas=*"]):
        c = runnel("config", "alter", *args, "--bootstrap-server", servers)
        assert c.returncode == 0, c.stderr
    grown = [target, others[1], old]
    assert reassign(servers, "moved:0=" + ",".join(map(str, grown))) == {"moved-0": None}
    sightings = []
    while (seen := listed(servers)) != {}:
        sightings.append(seen)
        assert seen["moved-0"]["replicas"] == grown
        assert sorted(seen["moved-0"]["adding"]) == sorted(others[1:] + [old])
        assert seen["moved-0"]["removing"] == []
        assert len(sightings) < 200, "the move did not finish"
    assert sightings, "the throttled move was never listed in progress"
    assert state(servers, "moved") == (target, grown, sorted(grown))
    described = javaclient.run("admin", servers, "describe", "moved")
    assert described.ok, described.explain()
    p = described.objects[0]["partitions"][0]
    assert p["replicas"] == grown and sorted(p["isr"]) == sorted(grown) and p["leader"] == target
    read_back(servers, "moved", acked)
    # Every replica holds every record.
    for b in brokers:
        assert b.partition_dir("moved", 0).is_dir(), f"broker {b.node_id} has no moved-0 log"

    # 3. And back to replication factor 1: every target replica is in sync already, so the move
    # completes at once; the two removed brokers delete their logs.
    assert reassign(servers, f"moved:0={others[1]}") == {"moved-0": None}
    wait_until(lambda: state(servers, "moved") == (others[1], [others[1]], [others[1]]), timeout=30,
               what=f"moved-0 on broker {others[1]} alone")
    assert listed(servers) == {}
    for b in brokers:
        if b.node_id != others[1]:
            wait_until(lambda: not b.partition_dir("moved", 0).exists(), timeout=30,
                       what=f"broker {b.node_id} deleting its moved-0 log")
    read_back(servers, "moved", acked)


def test_cancel_returns_to_old_replicas(brokers3, tmp_path):
    controllers, brokers = brokers3
    servers = bootstrap(brokers)
    create(brokers[0], "stuck", 1, 1)
    wait_until(lambda: state(servers, "stuck")[0] >= 0, what="a leader for stuck-0")
    acked = fill(servers, "stuck", 2_000)
    old, _, _ = state(servers, "stuck")
    stopped = next(b for b in brokers if b.node_id != old)
    stopped.stop()
    servers = bootstrap(brokers)

    # A move onto the stopped broker cannot finish: it is listed while it waits.
    assert reassign(servers, f"stuck:0={stopped.node_id},{old}") == {"stuck-0": None}
    time.sleep(3)
    seen = listed(servers)
    assert seen == {"stuck-0": {"partition": "stuck-0", "replicas": [stopped.node_id, old],
                                "adding": [stopped.node_id], "removing": []}}
    assert listed(servers, "stuck:0", "stuck:7", "nope:0") == seen
    assert state(servers, "stuck") == (old, [stopped.node_id, old], [old])

    # The move is metadata: it outlives the active controller.
    first = active_controller(controllers)
    next(c for c in controllers if c.node_id == first).kill9()
    wait_until(lambda: active_controller([c for c in controllers if c.is_alive()]) not in (first, -1), timeout=30,
               what="a new active controller")
    wait_until(lambda: listed(servers) == seen, timeout=30, what="the move listed by the new active controller")

    # runnel reassign execute, like Kafka's tool, starts no second move while one is in progress.
    other_plan = tmp_path / "other.json"
    other_plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "stuck", "partition": 0, "replicas": [old]}]}))
    ex = runnel("reassign", "execute", "--reassignment-json-file", str(other_plan), "--bootstrap-server", servers)
    assert ex.returncode == 1 and "existing partition assignment" in ex.stderr, ex.stderr

    # Cancelled, it returns to the old replica set.
    assert reassign(servers, "stuck:0=cancel") == {"stuck-0": None}
    wait_until(lambda: state(servers, "stuck") == (old, [old], [old]), timeout=30, what="stuck-0 back on its old replica")
    assert listed(servers) == {}
    # A second cancel has nothing to cancel.
    assert reassign(servers, "stuck:0=cancel") == {"stuck-0": "NoReassignmentInProgressException"}
    read_back(servers, "stuck", acked)


def test_bad_plans(brokers3):
    _, brokers = brokers3
    servers = bootstrap(brokers)
    create(brokers[0], "plans", 1, 1)
    wait_until(lambda: state(servers, "plans")[0] >= 0, what="a leader for plans-0")
    ids = [b.node_id for b in brokers]
    assert reassign(servers, f"plans:0={ids[0]},99") == {"plans-0": "InvalidReplicaAssignmentException"}
    assert reassign(servers, f"plans:0={ids[0]},{ids[0]}") == {"plans-0": "InvalidReplicaAssignmentException"}
    assert reassign(servers, f"plans:5={ids[0]}") == {"plans-5": "UnknownTopicOrPartitionException"}
    assert reassign(servers, f"nope:0={ids[0]}") == {"nope-0": "UnknownTopicOrPartitionException"}
    assert listed(servers) == {}


def runnel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(runnel_bin()), *args], capture_output=True, text=True, timeout=timeout)


def plan_after(output: str, heading: str) -> dict:
    lines = output.splitlines()
    i = lines.index(heading)
    return json.loads(next(ln for ln in lines[i + 1:] if ln.startswith("{")))


def test_cli_generate_execute_verify_cancel(brokers3, tmp_path):
    """`runnel reassign` with kafka-reassign-partitions' files and output; --throttle sets the
    throttle configs and verify removes them once every partition is done."""
    _, brokers = brokers3
    servers = bootstrap(brokers)
    create(brokers[0], "cli", 3, 1)
    wait_until(lambda: all(state(servers, "cli", p)[0] >= 0 for p in range(3)), what="leaders for cli")
    acked = {p: [] for p in range(3)}
    prod = Producer({"bootstrap.servers": servers, "acks": "all", **QUIET})
    for i in range(3000):
        prod.produce("cli", value=f"c-{i}".encode(), partition=i % 3,
                     on_delivery=lambda err, msg: acked[msg.partition()].append(msg.offset()) if err is None else None)
    assert prod.flush(30) == 0
    ids = [b.node_id for b in brokers]

    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps({"topics": [{"topic": "cli"}], "version": 1}))
    gen = runnel("reassign", "generate", "--topics-to-move-json-file", str(topics),
                 "--broker-list", f"{ids[1]},{ids[2]}", "--bootstrap-server", servers)
    assert gen.returncode == 0, gen.stderr
    current = plan_after(gen.stdout, "Current partition replica assignment")
    proposed = plan_after(gen.stdout, "Proposed partition reassignment configuration")
    assert current["version"] == 1 and len(current["partitions"]) == 3
    assert sorted(p["partition"] for p in proposed["partitions"]) == [0, 1, 2]
    for p in proposed["partitions"]:
        assert len(p["replicas"]) == 1 and p["replicas"][0] in ids[1:] and p["log_dirs"] == ["any"]

    # Grow every partition to 2 replicas, throttled.
    plan = {"version": 1, "partitions": [
        {"topic": "cli", "partition": p["partition"],
         "replicas": p["replicas"] + [next(i for i in ids if i not in p["replicas"])]}
        for p in current["partitions"]]}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    ex = runnel("reassign", "execute", "--reassignment-json-file", str(plan_file), "--throttle", "50000000",
                "--bootstrap-server", servers)
    assert ex.returncode == 0, ex.stderr
    assert "Successfully started partition reassignments for cli-0,cli-1,cli-2" in ex.stdout
    assert plan_after(ex.stdout, "Current partition replica assignment") == current
    configs = javaclient.run("admin", servers, "configs", "cli")
    throttled = configs.objects[0]
    assert throttled["leader.replication.throttled.replicas"]["value"] != ""
    assert throttled["follower.replication.throttled.replicas"]["value"] != ""

    def verified():
        v = runnel("reassign", "verify", "--reassignment-json-file", str(plan_file), "--bootstrap-server", servers)
        return v if v.returncode == 0 else None
    v = wait_until(verified, timeout=60, what="verify reporting every partition done")
    assert "Reassignment of partition cli-0 is completed." in v.stdout
    assert "Clearing topic-level throttles on topic cli" in v.stdout
    configs = javaclient.run("admin", servers, "configs", "cli").objects[0]
    assert configs["leader.replication.throttled.replicas"]["value"] == ""
    for p in plan["partitions"]:
        assert state(servers, "cli", p["partition"])[1] == p["replicas"]

    # Nothing moving: cancel has nothing to do.
    c = runnel("reassign", "cancel", "--reassignment-json-file", str(plan_file), "--bootstrap-server", servers)
    assert c.returncode == 0, c.stderr
    assert "None of the specified partition reassignments are active." in c.stdout

    # Bad files get one sentence.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "partitions": [{"topic": "cli", "partition": 0, "replicas": [1, 1]}]}))
    b = runnel("reassign", "execute", "--reassignment-json-file", str(bad), "--bootstrap-server", servers)
    assert b.returncode == 1 and "more than once" in b.stderr
    for p in range(3):
        got = drain(servers, "cli", 3, 3000, timeout=60)
        assert sorted(m.offset for m in got if m.partition == p) == sorted(acked[p])


def test_broker_drain_under_produce_load(brokers3):
    """`runnel broker drain` empties a broker while an idempotent acks=all producer writes:
    every acknowledged record is read back afterwards at its offset."""
    _, brokers = brokers3
    servers = bootstrap(brokers)
    create(brokers[0], "busy", 6, 2, {"min.insync.replicas": "1"})
    wait_until(lambda: all(state(servers, "busy", p)[0] >= 0 for p in range(6)), what="leaders for busy")
    victim = brokers[1].node_id
    assert any(victim in state(servers, "busy", p)[1] for p in range(6))

    acked: list[tuple[int, int, bytes]] = []
    failed: list[str] = []
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": servers, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 120_000, **QUIET})
        i = 0

        def report(err, msg):
            if err is not None:
                failed.append(str(err))
            else:
                acked.append((msg.partition(), msg.offset(), msg.value()))
        while not stop.is_set():
            try:
                p.produce("busy", value=f"b-{i}".encode(), callback=report)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 50 else 0.01)
        p.flush(60)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    time.sleep(2)
    d = runnel("broker", "drain", str(victim), "--bootstrap-server", servers, "--timeout-ms", "120000", timeout=180)
    time.sleep(2)
    stop.set()
    t.join(90)
    assert d.returncode == 0, d.stderr + d.stdout
    assert f"Broker {victim} holds no replicas." in d.stdout
    for p in range(6):
        leader, replicas, isr = state(servers, "busy", p)
        assert victim not in replicas and len(replicas) == 2, (p, replicas)
    assert not failed, failed[:5]
    assert len(acked) > 1000
    wait_until(lambda: not brokers[1].partition_dir("busy", 0).exists() and
               all(not brokers[1].partition_dir("busy", p).exists() for p in range(6)),
               timeout=30, what="the drained broker deleting its logs")
    got = drain(servers, "busy", 6, len(acked), timeout=120)
    assert sorted((m.partition, m.offset, m.value) for m in got) == sorted(acked)


def test_throttled_move_is_held_to_the_rate(tmp_path):
    """`execute --throttle` holds the new replica's catch-up to the rate (KIP-73): 4 MB at 500 kB/s
    takes seconds and is listed in progress meanwhile, where the same move unthrottled is done at
    once; `verify` then removes the throttle configs. The follower side alone (its rate on the new
    replica's broker, its replica in follower.replication.throttled.replicas) holds it too."""
    controllers, brokers = start_cluster(tmp_path, {"replica.lag.time.max.ms": 2000, "replica.fetch.backoff.ms": 200,
                                                    "replication.quota.window.num": "2"})
    try:
        servers = bootstrap(brokers)
        ids = [b.node_id for b in brokers]
        times = {}
        for topic, throttle in (("fast", None), ("slow", 500_000)):
            create(brokers[0], topic, 1, 1)
            wait_until(lambda: state(servers, topic)[0] >= 0, what=f"a leader for {topic}-0")
            fill(servers, topic, 40_000)  # about 4.4 MB
            leader = state(servers, topic)[0]
            other = next(i for i in ids if i != leader)
            plan = tmp_path / f"{topic}.json"
            plan.write_text(json.dumps({"version": 1, "partitions": [
                {"topic": topic, "partition": 0, "replicas": [leader, other]}]}))
            args = ["--reassignment-json-file", str(plan), "--bootstrap-server", servers]
            started = time.monotonic()
            ex = runnel("reassign", "execute", *args, *(["--throttle", str(throttle)] if throttle else []))
            assert ex.returncode == 0, ex.stderr
            if throttle:
                time.sleep(1.5)
                assert f"{topic}-0" in listed(servers), "the throttled move already finished"
            wait_until(lambda: runnel("reassign", "verify", *args).returncode == 0, timeout=120, interval=0.2,
                       what=f"{topic}-0 reaching its new replica")
            times[topic] = time.monotonic() - started
        configs = javaclient.run("admin", servers, "configs", "slow").objects[0]
        assert configs["leader.replication.throttled.replicas"]["value"] == ""

        # The follower side alone: the new replica's broker throttles its own fetching.
        create(brokers[0], "follow", 1, 1)
        wait_until(lambda: state(servers, "follow")[0] >= 0, what="a leader for follow-0")
        fill(servers, "follow", 40_000)
        leader = state(servers, "follow")[0]
        other = next(i for i in ids if i != leader)
        for args in (["--broker", str(other), "--add-config", "follower.replication.throttled.rate=500000"],
                     ["--topic", "follow", "--add-config", f"follower.replication.throttled.replicas=[0:{other}]"]):
            c = runnel("config", "alter", *args, "--bootstrap-server", servers)
            assert c.returncode == 0, c.stderr
        started = time.monotonic()
        assert reassign(servers, f"follow:0={leader},{other}") == {"follow-0": None}
        time.sleep(1.5)
        assert "follow-0" in listed(servers), "the follower-throttled move already finished"
        wait_until(lambda: listed(servers) == {}, timeout=120, interval=0.2, what="follow-0 reaching its new replica")
        times["follow"] = time.monotonic() - started
        print(f"move of 4.4 MB: unthrottled {times['fast']:.1f} s, at 500 kB/s leader side {times['slow']:.1f} s, "
              f"follower side {times['follow']:.1f} s")
        assert times["slow"] >= 4 and times["follow"] >= 4, times
        assert times["slow"] > 2 * times["fast"] and times["follow"] > 2 * times["fast"], times
    finally:
        for n in brokers + controllers:
            n.close()
