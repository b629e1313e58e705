"""A cluster of 3 controllers and 3 brokers, each its own process started from a server.properties
file (the shape `runnel dev` starts), for the multi-process tests, with helpers to look at it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kwire
from nodes import RunnelNode, free_ports, kafka_uuid, port_accepts, runnel_bin
from util import QUIET, wait_until

SESSION_TIMEOUT_MS = 3000


class ClusterNode(RunnelNode):
    def __init__(self, workdir: Path, node_id: int, role: str, voters: str, port: int, cluster_id: str, props: dict):
        super().__init__(workdir, props=props, cluster_id=cluster_id)
        self.node_id = node_id
        self.role = role
        self.voters = voters
        self.port = port

    def server_properties(self) -> dict:
        listener = "CONTROLLER" if self.role == "controller" else "PLAINTEXT"
        base = {
            "process.roles": self.role,
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"{listener}://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
            "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
            "broker.heartbeat.interval.ms": "500",
            "metadata.log.max.record.bytes.between.snapshots": "3000",
        }
        base.update({k: str(v) for k, v in self.props.items()})
        return base

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise RuntimeError(f"node {self.node_id} exited: {self.log_tail()}")
            if port_accepts(self.port) and kwire.api_versions_ok(self.bootstrap, timeout=5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"node {self.node_id} did not answer: {self.log_tail()}")


def start_cluster(tmp_path, broker_props: dict | None = None, props: dict | None = None, binary: Path | None = None,
                  each_broker_props: list[dict] | None = None, each_controller_props: list[dict] | None = None,
                  format_args: list[str] | None = None):
    """Starts 3 controllers (ids 1-3) and 3 brokers (ids 4-6) under `tmp_path`; `props` go to
    every node, `broker_props` to brokers, `each_broker_props[i]` to broker i + 4 alone,
    `each_controller_props[i]` to controller i + 1 alone, `format_args` to every node's
    `runnel format`. Returns (controllers, brokers)."""
    cports = free_ports(3)
    bports = free_ports(3)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(cports))
    cid = kafka_uuid()
    each_controller = each_controller_props or [{}, {}, {}]
    controllers = [ClusterNode(tmp_path / f"c{i + 1}", i + 1, "controller", voters, cports[i], cid,
                               {**(props or {}), **each_controller[i]})
                   for i in range(3)]
    each = each_broker_props or [{}, {}, {}]
    brokers = [ClusterNode(tmp_path / f"b{i + 4}", i + 4, "broker", voters, bports[i], cid,
                           {**(props or {}), **(broker_props or {}), **each[i]})
               for i in range(3)]
    if binary is not None:
        for n in controllers + brokers:
            n.binary = Path(binary)
    for n in controllers + brokers:
        n.format_args = list(format_args or [])
    for n in controllers:
        n.start()
    for n in brokers:
        n._launch()
        n._expected_exit = False
        n.starts += 1
    for n in brokers:
        n.wait_ready()
    return controllers, brokers


@contextlib.contextmanager
def running_cluster(tmp_path, *args, **kwargs):
    """start_cluster's nodes for the `with` block, all closed after it."""
    controllers, brokers = start_cluster(tmp_path, *args, **kwargs)
    try:
        yield controllers, brokers
    finally:
        for n in brokers + controllers:
            n.close()


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path) as nodes:
        yield nodes


def admin(node) -> AdminClient:
    return AdminClient({"bootstrap.servers": node.bootstrap, **QUIET})


def leaders(node, topic: str) -> dict[int, int] | None:
    md = admin(node).list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return {p.id: p.leader for p in t.partitions.values()}


def create(node, name: str, partitions: int, rf: int, config: dict | None = None) -> None:
    a = admin(node)  # keep the client alive until the future resolves
    fs = a.create_topics([NewTopic(name, partitions, rf, config=config or {})], operation_timeout=20, request_timeout=30)
    fs[name].result(40)


def active_controller(controllers) -> int:
    bootstrap = ",".join(f"127.0.0.1:{c.port}" for c in controllers if c.is_alive())
    p = subprocess.run([str(runnel_bin()), "metadata", "quorum", "status", "--json", "--bootstrap-controller", bootstrap],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["leaderId"]
