"""A metadata quorum of three `runnel server` processes with process.roles=controller.

They elect one leader over Kafka's own Vote/BeginQuorumEpoch/Fetch APIs; DescribeQuorum asked of
each node names the same leader and epoch. kill -9 of the leader gets a new leader elected; the old
one, restarted, rejoins as a follower and catches up. With a small snapshot threshold, a node that
was down while the others committed many records catches up by FetchSnapshot (the others have
dropped the log below their snapshots). A snapshot file opens with the sqlite3 command-line tool.
Metadata records are generated with `runnel bench quorum-commit` (IncrementalAlterConfigs on the
cluster-wide broker config, each one committed record).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import kwire
from nodes import RunnelNode, free_ports, kafka_uuid, port_accepts, runnel_bin
from util import is_runnel, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="a Runnel controller quorum")


class ControllerNode(RunnelNode):
    """A controller-only node: its one listener is the controller listener."""

    def __init__(self, workdir: Path, node_id: int, voters: str, port: int, cluster_id: str, props: dict):
        super().__init__(workdir, props=props, cluster_id=cluster_id)
        self.node_id = node_id
        self.voters = voters
        self.port = port
        self.controller_port = port

    def server_properties(self) -> dict:
        base = {
            "process.roles": "controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"CONTROLLER://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
        }
        base.update({k: str(v) for k, v in self.props.items()})
        return base

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise RuntimeError(f"controller {self.node_id} exited: {self.log_tail()}")
            if port_accepts(self.port) and kwire.api_versions_ok(self.bootstrap, timeout=5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"controller {self.node_id} did not answer: {self.log_tail()}")


def runnel(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(runnel_bin()), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def quorum(tmp_path):
    ports = free_ports(3)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    cluster = kafka_uuid()
    props = {"metadata.log.max.record.bytes.between.snapshots": 4000}
    nodes = [ControllerNode(tmp_path / f"c{i + 1}", i + 1, voters, ports[i], cluster, props) for i in range(3)]
    for n in nodes:
        n.start()
    try:
        yield nodes
    finally:
        for n in nodes:
            n.close()


def bootstrap(nodes) -> str:
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes)


def status(nodes, one=None) -> dict | None:
    args = ["metadata", "quorum", "status", "--json", "--timeout-ms", "1000"]
    if one is not None:
        args += ["--bootstrap-controller", f"127.0.0.1:{one.port}", "--from-this-node"]
    else:
        args += ["--bootstrap-controller", bootstrap(nodes)]
    p = runnel(*args, timeout=20)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)


def replication(nodes) -> list[dict] | None:
    p = runnel("metadata", "quorum", "replication", "--json", "--bootstrap-controller", bootstrap(nodes), timeout=20)
    return json.loads(p.stdout) if p.returncode == 0 else None


def elected(nodes, not_leader=None, min_epoch=0) -> dict:
    def ready():
        s = status([n for n in nodes if n.is_alive()])
        return s if s and s["leaderId"] >= 0 and s["leaderId"] != not_leader and s["leaderEpoch"] >= min_epoch else None
    return wait_until(ready, 30, 0.1, "a leader")


def commit(nodes, count: int) -> None:
    live = [n for n in nodes if n.is_alive()]
    p = runnel("bench", "quorum-commit", "--bootstrap-controller", bootstrap(live), "--count", str(count), timeout=120)
    assert p.returncode == 0, p.stderr


def caught_up(nodes) -> bool:
    rows = replication(nodes)
    if not rows or len(rows) != len(nodes):
        return False
    ends = {r["logEndOffset"] for r in rows}
    return len(ends) == 1


def test_one_leader_all_agree(quorum):
    s = elected(quorum)
    assert s["currentVoters"] == [1, 2, 3]
    # Each node, asked directly, names the same leader and epoch.
    def agree():
        views = [status(quorum, one=n) for n in quorum]
        if any(v is None for v in views):
            return None
        return views if len({(v["leaderId"], v["leaderEpoch"]) for v in views}) == 1 else None
    views = wait_until(agree, 20, 0.2, "every node to report the same leader and epoch")
    assert views[0]["leaderId"] == s["leaderId"]
    assert sum(1 for v in views if v["answeredByLeader"]) == 1


def test_leader_failover_and_rejoin(quorum):
    first = elected(quorum)
    commit(quorum, 20)
    leader = next(n for n in quorum if n.node_id == first["leaderId"])
    leader.kill9()
    second = elected(quorum, not_leader=leader.node_id, min_epoch=first["leaderEpoch"] + 1)
    assert second["leaderEpoch"] > first["leaderEpoch"]
    commit(quorum, 20)
    leader.restart()
    wait_until(lambda: caught_up(quorum), 30, 0.2, "the restarted node to catch up")
    rows = replication(quorum)
    statuses = {r["nodeId"]: r["status"] for r in rows}
    assert statuses[leader.node_id] == "Follower"


def test_lagging_node_catches_up_by_snapshot(quorum):
    elected(quorum)
    # Pick a follower to take down.
    s = elected(quorum)
    behind = next(n for n in quorum if n.node_id != s["leaderId"])
    behind.kill9()
    commit(quorum, 400)  # ~25 KB of records: several snapshots, log segments below them dropped
    behind.restart()
    wait_until(lambda: caught_up(quorum), 60, 0.2, "the lagging node to catch up")
    wait_until(lambda: "fetched snapshot from the leader" in behind.log_text(), 10, 0.2,
               "the lagging node to report a fetched snapshot")
    snapshots = sorted((behind.data_dir / "__cluster_metadata-0").glob("*.checkpoint.sqlite"))
    assert snapshots, "the lagging node keeps the fetched snapshot"
    assert shutil.which("sqlite3"), "the sqlite3 shell is missing (tools/test installs Debian's sqlite3)"
    p = subprocess.run(["sqlite3", str(snapshots[-1]), ".tables"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    for table in ("brokers", "topics", "partitions", "configs", "snapshot", "voters"):
        assert table in p.stdout.split(), p.stdout
    p = subprocess.run(["sqlite3", str(snapshots[-1]), "SELECT end_offset FROM snapshot"], capture_output=True, text=True)
    assert int(p.stdout.strip()) > 0
