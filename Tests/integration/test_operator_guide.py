"""The README's operator guide ("Operating a cluster"), followed as a new user would.

The test reads the guide's blocks out of README.md (each follows a `<!-- guide:NAME -->` marker),
so the guide cannot drift from what works: it makes the cluster id with the guide's command,
writes controller.properties for ctrl1..ctrl3 and broker.properties for broker1..broker3 from the
guide's text (only the host names become 127.0.0.1 with free ports, and the paths land in a temp
dir), runs the guide's format and server commands for each node (controllers first), then its
check commands: `runnel metadata quorum status` names a leader, and the cluster lists three
brokers. A replicated topic (RF 3, min.insync.replicas 2 from the guide) takes acks=all writes that
a consumer reads back. Then "adding a broker": a fourth broker.properties with a new node.id joins
and shows up in Metadata. Everything stops with SIGTERM, as a service manager would.

Runnel only.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from nodes import _pdeathsig, free_ports, runnel_bin
from util import QUIET, unique, wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")

README = Path(__file__).resolve().parents[2] / "README.md"


def guide_blocks() -> dict[str, str]:
    text = README.read_text()
    blocks = {}
    for m in re.finditer(r"<!-- guide:([\w.-]+) -->\s*```\w*\n(.*?)```", text, re.S):
        blocks[m.group(1)] = m.group(2)
    return blocks


class Guide:
    """The guide's files and commands, made concrete for this machine."""

    def __init__(self, root: Path):
        self.root = root
        self.blocks = guide_blocks()
        for name in ("cluster-id", "controller.properties", "broker.properties", "start", "check"):
            assert name in self.blocks, f"README's operator guide lacks its {name} block"
        self.cports = free_ports(3)
        self.bports = free_ports(4)
        self.bin = root / "bin"
        self.bin.mkdir()
        (self.bin / "runnel").symlink_to(runnel_bin())
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}"}
        self.procs: list[subprocess.Popen] = []

    def hosts(self, text: str) -> str:
        text = re.sub(r"ctrl(\d):9093", lambda m: f"127.0.0.1:{self.cports[int(m.group(1)) - 1]}", text)
        return re.sub(r"broker(\d):9092", lambda m: f"127.0.0.1:{self.bports[int(m.group(1)) - 1]}", text)

    def node_dir(self, name: str, role: str, index: int) -> Path:
        d = self.root / name
        d.mkdir()
        text = self.blocks[f"{role}.properties"]
        lines = []
        for line in text.splitlines():
            key = line.split("=", 1)[0]
            if role == "controller":
                if key == "node.id":
                    line = f"node.id={index}"
                if key == "listeners":
                    line = line.replace("ctrl1", f"ctrl{index}")
            else:
                if key == "node.id":
                    line = f"node.id={100 + index}"
                if key in ("listeners", "advertised.listeners"):
                    line = line.replace("broker1", f"broker{index}")
                if key == "broker.rack":
                    line = f"broker.rack=rack{index}"
            if key == "log.dirs":
                line = f"log.dirs={d / 'data'}"
            if key == "metrics.port":
                line = f"metrics.port={free_ports(1)[0]}"
            lines.append(self.hosts(line))
        (d / f"{role}.properties").write_text("\n".join(lines) + "\n")
        (d / "cluster.id").write_text((self.root / "cluster.id").read_text())
        return d

    def sh(self, command: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, d: Path, role: str) -> None:
        """The guide's start block for one role: format (waited for), then server (left running)."""
        for line in self.blocks["start"].splitlines():
            line = line.split("#", 1)[0].strip()
            if f"{role}.properties" not in line:
                continue
            if line.startswith("runnel format"):
                p = self.sh(line, d)
                assert p.returncode == 0, f"{line}: {p.stderr}"
            elif line.startswith("runnel server"):
                log = open(d / "server.log", "w")
                self.procs.append(subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=d, env=self.env, stdout=log,
                                                   stderr=subprocess.STDOUT, preexec_fn=_pdeathsig))

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(40)
            except subprocess.TimeoutExpired:
                p.kill()


def test_operator_guide(tmp_path):
    g = Guide(tmp_path)
    p = g.sh(g.blocks["cluster-id"].strip(), tmp_path)
    assert p.returncode == 0 and (tmp_path / "cluster.id").read_text().strip(), p.stderr
    try:
        controllers = [g.node_dir(f"ctrl{i}", "controller", i) for i in (1, 2, 3)]
        brokers = [g.node_dir(f"broker{i}", "broker", i) for i in (1, 2, 3)]
        for d in controllers:
            g.start(d, "controller")
        for d in brokers:
            g.start(d, "broker")
        bootstrap = ",".join(f"127.0.0.1:{port}" for port in g.bports[:3])

        # The guide's checks.
        status, listing = [g.hosts(line.strip()) for line in g.blocks["check"].strip().splitlines()]
        def leader_known():
            p = g.sh(status, tmp_path, timeout=20)
            return p.returncode == 0 and re.search(r"LeaderId:\s*[123]\b", p.stdout) and p
        p = wait_until(leader_known, 60, 0.5, "the quorum status to name a leader")
        assert "CurrentVoters" in p.stdout, p.stdout
        admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
        wait_until(lambda: len(admin.list_topics(timeout=5).brokers) == 3, 60, 0.5, "three brokers in Metadata")
        if listing.startswith("kcat") and g.sh("command -v kcat", tmp_path).returncode == 0:
            p = g.sh(listing, tmp_path, timeout=30)
            assert p.returncode == 0 and "3 brokers" in p.stdout, p.stdout + p.stderr

        # The cluster takes replicated acks=all writes (min.insync.replicas=2 from the guide).
        topic = unique("guide")
        admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
        wait_until(lambda: all(pp.leader >= 0 for pp in admin.list_topics(topic, timeout=5).topics[topic].partitions.values()),
                   30, 0.2, "leaders")
        prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
        for i in range(300):
            prod.produce(topic, key=b"%d" % i, value=b"v%d" % i)
        assert prod.flush(30) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest", **QUIET})
        c.subscribe([topic])
        got = set()
        deadline = time.monotonic() + 60
        while len(got) < 300 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.add(m.value())
        c.close()
        assert len(got) == 300

        # Adding a broker: the same steps with a new node.id.
        fourth = g.node_dir("broker4", "broker", 4)
        g.start(fourth, "broker")
        wait_until(lambda: 104 in {b.id for b in admin.list_topics(timeout=5).brokers.values()}, 60, 0.5,
                   "the fourth broker in Metadata")
    finally:
        g.stop()
        for d in sorted(tmp_path.glob("*/server.log")):
            text = d.read_text()
            assert "Fatal error" not in text, f"{d}:\n{text[-3000:]}"


def test_securing_a_cluster(tmp_path):
    """The README's "Securing a cluster", followed as a new user would: `runnel dev --secure`
    (its port moved to a free range, its data folder into the temp dir), the admin commands of
    the guide with the client config it made, then alice with her own password: she writes and
    reads `orders` in group billing; a wrong password gets the client's authentication error; a
    topic her ACLs do not name gets an authorization error; and kcat (librdkafka 2.0) logs in
    with the guide's librdkafka config."""
    from confluent_kafka import KafkaError, KafkaException

    from nodes import dev_base_port
    from util import kcat_path

    blocks = guide_blocks()
    port = dev_base_port()
    start = blocks["secure-start"].strip().replace("./secure-dev", str(tmp_path / "secure-dev"))
    env = {**os.environ, "PATH": f"{runnel_bin().parent}:{os.environ['PATH']}"}
    dev = subprocess.Popen(["bash", "-c", f"exec {start} --port {port}"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, preexec_fn=_pdeathsig)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = dev.stdout.readline()
            lines.append(line)
            if "admin password:" in line or not line:
                break
        assert "admin password:" in line, "runnel dev --secure printed no client configs:\n" + "".join(lines)
        secure = tmp_path / "secure-dev" / "secure"
        for command in blocks["secure-users"].strip().splitlines():
            command = command.split("  #", 1)[0].replace("127.0.0.1:9092", f"127.0.0.1:{port}")
            command = command.replace("./secure-dev", str(tmp_path / "secure-dev"))
            if command.startswith("kcat") and kcat_path() is None:
                continue
            if command.startswith("CFG="):
                env["CFG"] = command.split("=", 1)[1]
                continue
            p = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, f"{command}: {p.stdout} {p.stderr}"

        base = {}
        for line in (secure / "librdkafka.properties").read_text().splitlines():
            if line and not line.startswith("#"):
                key, value = line.split("=", 1)
                base[key] = value
        alice = {**base, "bootstrap.servers": f"127.0.0.1:{port}", "sasl.username": "alice",
                 "sasl.password": "alice-secret", **QUIET}
        p = Producer(alice)
        for i in range(10):
            p.produce("orders", value=f"order-{i}")
        assert p.flush(30) == 0
        c = Consumer({**alice, "group.id": "billing", "auto.offset.reset": "earliest"})
        got = []
        try:
            c.subscribe(["orders"])
            deadline = time.monotonic() + 30
            while len(got) < 10 and time.monotonic() < deadline:
                got += [m for m in c.consume(10, timeout=0.5) if not m.error()]
            c.commit(asynchronous=False)
        finally:
            c.close()
        assert sorted(m.value() for m in got) == sorted(b"order-%d" % i for i in range(10))

        errors = []
        wrong = Producer({**alice, "sasl.password": "wrong", "error_cb": lambda e: errors.append(e)})
        wrong.produce("orders", value="x")
        wrong.flush(5)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

        a = AdminClient(alice)
        with pytest.raises(KafkaException) as denied:
            a.create_topics([NewTopic("elsewhere", 1, 1)])["elsewhere"].result(30)
        assert denied.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied.value
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(90)
        except subprocess.TimeoutExpired:
            dev.kill()
