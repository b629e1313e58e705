"""Tools for running a cluster for years: where the bytes are (issue 19, the read-only parts).

Against 3 controllers and 3 brokers, each its own process, DescribeLogDirs through Apache Kafka's
Java Admin (`describeLogDirs`, kafka-clients 3.9.1, which asks v4): every broker answers for its
own `log.dirs` with the file system's total and usable bytes, every replica it hosts (and only
those: the topic's replica assignment from Metadata, RF 2 so each broker holds some partitions and
not others), sizes that grow after producing and end equal on every replica (batches are stored
as received), offset lag 0 once followers caught up, no future replicas.

The refusal of a principal without DESCRIBE on the cluster is in test_security.py.
Runnel only.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

import javaclient
from cluster import admin, start_cluster
from util import QUIET, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against Runnel nodes")

PARTITIONS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    controllers, brokers = start_cluster(tmp_path_factory.mktemp("logdirs"))
    try:
        yield controllers, brokers
    finally:
        for n in brokers + controllers:
            n.close()


@pytest.fixture(scope="module")
def topic(cluster):
    """A topic of 3 partitions with 2 replicas each, and its replica assignment from Metadata."""
    _, brokers = cluster
    name = unique("logdirs")
    a = admin(brokers[0])
    a.create_topics([NewTopic(name, PARTITIONS, 2)])[name].result(30)

    def assignment():
        t = a.list_topics(name, timeout=5).topics.get(name)
        if t is None or t.error is not None or len(t.partitions) != PARTITIONS:
            return None
        if any(p.leader < 0 for p in t.partitions.values()):
            return None
        return {p.id: sorted(p.replicas) for p in t.partitions.values()}

    return name, wait_until(assignment, timeout=30, what=f"{name} has leaders")


def bootstrap(brokers) -> str:
    return ",".join(b.bootstrap for b in brokers)


def java_log_dirs(brokers, ids) -> dict[int, list[dict]]:
    res = javaclient.admin(brokers[0].bootstrap, "logdirs", ",".join(map(str, ids)))
    assert res.ok, res.explain()
    return {o["broker"]: o["logDirs"] for o in res.objects}


def replicas_of(dirs: list[dict], topic: str, key: str = "replicas") -> dict[str, dict]:
    return {r["partition"]: r for d in dirs for r in d[key] if r["partition"].rsplit("-", 1)[0] == topic}


def test_java_admin_describes_every_brokers_own_log_dirs(cluster, topic):
    if why := javaclient.missing():
        pytest.skip(why)
    _, brokers = cluster
    name, assignment = topic
    ids = [b.node_id for b in brokers]
    expected = {b: {f"{name}-{p}" for p, replicas in assignment.items() if b in replicas} for b in ids}
    assert sum(map(len, expected.values())) == PARTITIONS * 2

    described = java_log_dirs(brokers, ids)
    assert sorted(described) == ids
    for b in brokers:
        dirs = described[b.node_id]
        assert [d["path"] for d in dirs] == [str(b.data_dir)], "each broker answers for its own log.dirs"
        d = dirs[0]
        assert d["error"] is None
        assert 0 < d["usableBytes"] <= d["totalBytes"], d
        mine = replicas_of(dirs, name)
        assert set(mine) == expected[b.node_id], f"broker {b.node_id} lists the replicas Metadata assigns it"
        assert all(r["size"] == 0 and r["offsetLag"] == 0 and r["future"] is False for r in mine.values()), mine

    p = Producer({"bootstrap.servers": bootstrap(brokers), "acks": "all", **QUIET})
    for i in range(300):
        p.produce(name, value=b"x" * 200, key=str(i).encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0

    def settled():
        now = java_log_dirs(brokers, ids)
        sizes: dict[str, set[int]] = {}
        for b in ids:
            for part, r in replicas_of(now[b], name).items():
                if r["offsetLag"] != 0:
                    return None
                sizes.setdefault(part, set()).add(r["size"])
        if len(sizes) != PARTITIONS or any(len(s) != 1 or 0 in s for s in sizes.values()):
            return None
        return {part: s.pop() for part, s in sizes.items()}

    sizes = wait_until(settled, timeout=30, interval=0.5, what="every replica holds the produced bytes")
    # 100 records of ~200 bytes per partition, stored as batches of at least that.
    assert all(size > 100 * 200 for size in sizes.values()), sizes
