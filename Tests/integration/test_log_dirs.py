"""Tools for running a cluster for years: where the bytes are, what the disks hold, which
features the cluster runs (issue 19, the read-only parts).

Against 3 controllers and 3 brokers, each its own process:
- DescribeLogDirs through Apache Kafka's Java Admin (`describeLogDirs`, kafka-clients 3.9.1,
  which asks v4): every broker answers for its own `log.dirs` with the file system's total and
  usable bytes, every replica it hosts (and only those: the topic's replica assignment from
  Metadata, RF 2 so each broker holds some partitions and not others), sizes that grow after
  producing and end equal on every replica (batches are stored as received), offset lag 0 once
  followers caught up, no future replicas.
- `runnel log-dirs describe --json` (as kafka-log-dirs --describe) reports the same, in Kafka's
  JSON shape; --broker-list and --topic-list narrow it; bad arguments and unknown brokers end
  with one sentence and exit status 1.
- `runnel features describe` prints kafka-features' lines for metadata.version (3.3-IV3 to
  3.9-IV0, finalized 3.9-IV0, the epoch) and transaction.version (0 to 2, finalized 2), and --json.
- `runnel storage info` (as kafka-storage info) on the nodes' formatted dirs, on a config whose
  dirs are missing or unformatted, and on dirs formatted for two clusters.

The refusal of a principal without DESCRIBE on the cluster is in test_security.py.
Runnel only (runs the runnel binary).
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

import javaclient
from cluster import admin, running_cluster
from nodes import kafka_uuid, runnel_bin
from util import QUIET, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against Runnel nodes")

PARTITIONS = 3


def runnel(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(runnel_bin()), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_sentence(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("runnel: ") and lines[0].endswith("."), p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("logdirs")) as nodes:
        yield nodes


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


def test_runnel_log_dirs_describe_json_and_filters(cluster, topic):
    _, brokers = cluster
    name, assignment = topic
    boot = bootstrap(brokers)
    p = runnel("log-dirs", "describe", "--json", "--bootstrap-server", boot)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["version"] == 1
    assert [b["broker"] for b in out["brokers"]] == [4, 5, 6]
    for entry in out["brokers"]:
        b = next(n for n in brokers if n.node_id == entry["broker"])
        assert [d["logDir"] for d in entry["logDirs"]] == [str(b.data_dir)]
        d = entry["logDirs"][0]
        assert set(d) == {"logDir", "error", "totalBytes", "usableBytes", "partitions"}
        assert d["error"] is None and 0 < d["usableBytes"] <= d["totalBytes"]
        mine = replicas_of(entry["logDirs"], name, key="partitions")
        assert set(mine) == {f"{name}-{i}" for i, reps in assignment.items() if b.node_id in reps}
        for r in mine.values():
            assert set(r) == {"partition", "size", "offsetLag", "isFuture"}
            assert r["isFuture"] is False and r["offsetLag"] >= 0 and r["size"] >= 0

    # Narrowed: one broker, one topic.
    p = runnel("log-dirs", "describe", "--json", "--broker-list", "5", "--topic-list", name, "--bootstrap-server", boot)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [b["broker"] for b in out["brokers"]] == [5]
    parts = out["brokers"][0]["logDirs"][0]["partitions"]
    assert {r["partition"] for r in parts} == {f"{name}-{i}" for i, reps in assignment.items() if 5 in reps}

    # The table for people names every dir and replica.
    p = runnel("log-dirs", "describe", "--topic-list", name, "--bootstrap-server", boot)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split()[:3] == ["BROKER", "LOG", "DIR"]
    for b in brokers:
        assert str(b.data_dir) in p.stdout
    for i in assignment:
        assert f"{name}-{i}" in p.stdout

    # Failures: one sentence, exit 1.
    assert "broker-list" in one_sentence(runnel("log-dirs", "describe", "--broker-list", "4,x", "--bootstrap-server", boot))
    assert "--topic-list" in one_sentence(runnel("log-dirs", "describe", "--topic-list", ",", "--bootstrap-server", boot))
    msg = one_sentence(runnel("log-dirs", "describe", "--broker-list", "4,99", "--bootstrap-server", boot))
    assert "99" in msg and "do not exist" in msg, msg


def test_features_describe(cluster):
    _, brokers = cluster
    p = runnel("features", "describe", "--bootstrap-server", brokers[1].bootstrap)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    m = re.fullmatch(r"Feature: metadata\.version\tSupportedMinVersion: 3\.3-IV3\tSupportedMaxVersion: 3\.9-IV0\t"
                     r"FinalizedVersionLevel: 3\.9-IV0\tEpoch: (\d+)", lines[0])
    assert m, lines[0]
    assert lines[1] == ("Feature: transaction.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 2\t"
                        f"FinalizedVersionLevel: 2\tEpoch: {m.group(1)}"), lines[1]
    p = runnel("features", "describe", "--json", "--bootstrap-server", brokers[1].bootstrap)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    f, tv = out["features"]
    assert (tv["feature"], tv["supportedMinVersion"], tv["supportedMaxVersion"], tv["finalizedVersionLevel"]) == (
        "transaction.version", 0, 2, 2)
    assert f["feature"] == "metadata.version"
    assert (f["supportedMinVersion"], f["supportedMaxVersion"], f["finalizedVersionLevel"]) == (7, 21, 21)
    assert f["finalizedVersion"] == "3.9-IV0"
    assert f["epoch"] >= int(m.group(1)), "the epoch (a metadata offset) never goes back"
    assert "bootstrap" in one_sentence(runnel("features", "describe", "--bootstrap-server", "nowhere"))


def test_storage_info_on_formatted_nodes(cluster):
    controllers, brokers = cluster
    for node in (controllers[0], brokers[2]):
        p = runnel("storage", "info", "--config", node.config_path, "--json")
        assert p.returncode == 0, p.stdout + p.stderr
        out = json.loads(p.stdout)
        assert out["problems"] == []
        (d,) = out["directories"]
        assert d["path"] == str(node.data_dir) and d["logDir"] and d["metadataLogDir"]
        assert d["state"] == "formatted"
        meta = d["metaProperties"]
        assert meta["cluster.id"] == node.cluster_id and meta["node.id"] == node.node_id and meta["version"] == 1
        assert len(meta["directory.id"]) == 22
        p = runnel("storage", "info", "-c", node.config_path)
        assert p.returncode == 0, p.stderr
        assert str(node.data_dir) in p.stdout and node.cluster_id in p.stdout and "formatted" in p.stdout


def write_config(path, **props) -> str:
    base = {"process.roles": "broker", "node.id": "7", "controller.quorum.voters": "1@127.0.0.1:1",
            "controller.listener.names": "CONTROLLER", "listeners": "PLAINTEXT://127.0.0.1:1"}
    base.update(props)
    path.write_text("".join(f"{k.replace('_', '.')}={v}\n" for k, v in base.items()))
    return str(path)


def test_storage_info_finds_unformatted_missing_and_mixed_dirs(tmp_path):
    fresh, gone, meta = tmp_path / "fresh", tmp_path / "gone", tmp_path / "meta"
    fresh.mkdir()
    config = write_config(tmp_path / "a.properties", log_dirs=f"{fresh},{gone}", metadata_log_dir=meta)
    p = runnel("storage", "info", "-c", config, "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert [(d["path"], d["state"], d["logDir"], d["metadataLogDir"]) for d in out["directories"]] == [
        (str(fresh), "unformatted", True, False), (str(gone), "missing", True, False), (str(meta), "missing", False, True)]
    assert out["problems"] == [f"{fresh} is not formatted.", f"{gone} does not exist.", f"{meta} does not exist."]
    p = runnel("storage", "info", "-c", config)
    assert p.returncode == 1
    assert "Found problems:" in p.stdout and f"  {fresh} is not formatted." in p.stdout

    # Each dir formatted on its own, for two clusters: both formatted, the mismatch is a problem.
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        c = write_config(tmp_path / f"{d.name}.properties", log_dirs=d)
        f = subprocess.run([str(runnel_bin()), "format", "-c", c, "-t", kafka_uuid()], capture_output=True, text=True)
        assert f.returncode == 0, f.stderr
    config = write_config(tmp_path / "both.properties", log_dirs=f"{one},{two}")
    p = runnel("storage", "info", "-c", config, "--json")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert [d["state"] for d in out["directories"]] == ["formatted", "formatted"]
    ids = [d["metaProperties"]["cluster.id"] for d in out["directories"]]
    assert ids[0] != ids[1]
    assert out["problems"] == [f"{two} belongs to cluster {ids[1]}, but {one} belongs to cluster {ids[0]}."]
    # Another node's dirs.
    config = write_config(tmp_path / "other.properties", log_dirs=one, node_id=8)
    out = json.loads(runnel("storage", "info", "-c", config, "--json").stdout)
    assert out["problems"] == [f"{one} belongs to node 7, but node.id is 8."]
    assert "does not exist" in one_sentence(runnel("storage", "info", "-c", tmp_path / "nope.properties"))
