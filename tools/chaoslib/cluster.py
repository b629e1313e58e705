"""The nodes of a chaos run: controllers and brokers as separate `runnel server` processes, each in
the network namespace of its own host (`ip netns exec chaos-c1 runnel server ...`), listening on
that host's address; `controller.quorum.voters` and `advertised.listeners` name those addresses.

Every broker's log dir is a tmpfs of its own (`--disk-mb`, named chaos-<host>), so one broker's
disk can be filled to the last byte without touching the others. Controllers keep their metadata
log on the run dir's disk. Node logs and configs stay in the run dir.

With clock faults in play every node starts under libfaketime (LD_PRELOAD of libfaketimeMT with
FAKETIME_TIMESTAMP_FILE=<node dir>/faketime, re-read every second): writing "+120" there moves
the node's CLOCK_REALTIME two minutes ahead. CLOCK_MONOTONIC is left alone
(FAKETIME_DONT_FAKE_MONOTONIC=1): a real clock jump (NTP stepping, an operator's `date -s`) moves
wall time only. Runnel reads wall time for record and metadata timestamps (SystemClock.wallMs)
and monotonic time for every timeout.

Processes are started from the main thread only: they get PR_SET_PDEATHSIG=SIGKILL, which the
kernel ties to the thread that forked them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaoslib import hosts, wire
from chaoslib.hosts import Host

try:
    import ctypes
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except Exception:  # noqa: BLE001
    _PRCTL = None


def pdeathsig():
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


BROKER_PORT = 9092
CONTROLLER_PORT = 9093

# The harness's timeouts (issue 17): a broker is fenced 3 s after its last heartbeat, a follower
# leaves the ISR after 5 s without catching up.
SESSION_TIMEOUT_MS = 3000
HEARTBEAT_MS = 500
REPLICA_LAG_MS = 5000


class ClusterError(RuntimeError):
    pass


@dataclass
class ChaosNode:
    node_id: int
    role: str                 # "controller" | "broker"
    host: Host
    workdir: Path
    binary: Path
    props: dict
    env: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    starts: int = 0
    paused: bool = False
    down_expected: bool = False   # killed or stopped by the harness (not a crash)
    disk_full: bool = False       # its log dir is full: exiting 1 is what it should do
    exits: list = field(default_factory=list)   # (t, returncode, expected)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def port(self) -> int:
        return CONTROLLER_PORT if self.role == "controller" else BROKER_PORT

    @property
    def address(self) -> str:
        return f"{self.host.ip}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "node.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def faketime_path(self) -> Path:
        return self.workdir / "faketime"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))

    def format(self, cluster_id: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        argv = [str(self.binary), "format", "--config", str(self.config_path), f"--cluster-id={cluster_id}"]
        p = subprocess.run(argv, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:
            log.write(f"===== {' '.join(argv)} -> {p.returncode}\n".encode() + p.stdout + p.stderr)
        if p.returncode != 0:
            raise ClusterError(f"runnel format failed for {self.name}: {(p.stderr or p.stdout).decode(errors='replace').strip()}")

    def start(self) -> None:
        if self.alive():
            raise ClusterError(f"{self.name} is already running")
        argv = ["ip", "netns", "exec", self.host.ns, str(self.binary), "server", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts + 1} at {time.monotonic():.3f}: {' '.join(argv)}\n".encode())
            log.flush()
            env = {**os.environ, **self.env}
            if "FAKETIME_CACHE_DURATION" in env:
                env["FAKETIME_TIMESTAMP_FILE"] = str(self.faketime_path)
            self.proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, preexec_fn=pdeathsig)
        self.starts += 1
        self.paused = False
        self.down_expected = False

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self) -> None:
        self.down_expected = True
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.paused = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a controlled shutdown), SIGKILL after `timeout`. Never raises."""
        if self.proc is None:
            return
        self.down_expected = True
        try:
            if self.proc.poll() is None:
                if self.paused:
                    self.resume()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        except Exception:  # noqa: BLE001
            pass

    def set_clock_offset(self, seconds: float) -> None:
        self.faketime_path.write_text(f"{seconds:+.0f}\n")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        crash = [i for i, ln in enumerate(text) if re.search(r"Fatal error|Assertion failed|Precondition failed|Program crashed", ln)]
        if crash:
            return "\n".join(text[max(0, crash[0] - 5):crash[0] + 25])
        return "\n".join(text[-lines:])


class Cluster:
    def __init__(self, run_dir: Path, binary: Path, controllers: int, brokers: int, broker_props: dict,
                 node_env: dict, faketime: bool, disk_mb: int, broker_env: dict | None = None):
        self.run_dir = run_dir
        self.binary = binary
        self.disk_mb = disk_mb
        self.mounted: list[Path] = []
        self.controllers: list[ChaosNode] = []
        self.brokers: list[ChaosNode] = []
        self.hosts: dict[str, Host] = {}
        cids = list(range(1, controllers + 1))
        bids = list(range(controllers + 1, controllers + brokers + 1))
        for i in cids:
            self.hosts[f"c{i}"] = Host(f"c{i}", f"{hosts.SUBNET}.{10 + i}")
        for i in bids:
            self.hosts[f"b{i}"] = Host(f"b{i}", f"{hosts.SUBNET}.{10 + i}")
        self.hosts["clients"] = Host("clients", f"{hosts.SUBNET}.200")
        self.hosts["control"] = Host("control", f"{hosts.SUBNET}.250")
        voters = ",".join(f"{i}@{self.hosts[f'c{i}'].ip}:{CONTROLLER_PORT}" for i in cids)
        env = dict(node_env)
        if faketime:
            lib = hosts.faketime_lib()
            if lib is None:
                raise ClusterError("clock faults need libfaketime; install it: apt-get install faketime")
            env.update({"LD_PRELOAD": lib, "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "1"})
        self.faketime = faketime
        common = {
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "broker.session.timeout.ms": SESSION_TIMEOUT_MS,
            "broker.heartbeat.interval.ms": HEARTBEAT_MS,
            "replica.lag.time.max.ms": REPLICA_LAG_MS,
            "metadata.log.max.record.bytes.between.snapshots": 200_000,
        }
        for i in cids:
            h = self.hosts[f"c{i}"]
            wd = run_dir / "nodes" / h.name
            props = {"process.roles": "controller", "node.id": i, **common,
                     "listeners": f"CONTROLLER://{h.ip}:{CONTROLLER_PORT}", "log.dirs": wd / "data"}
            self.controllers.append(ChaosNode(i, "controller", h, wd, binary, props, dict(env)))
        for i in bids:
            h = self.hosts[f"b{i}"]
            wd = run_dir / "nodes" / h.name
            props = {"process.roles": "broker", "node.id": i, **common,
                     "listeners": f"PLAINTEXT://{h.ip}:{BROKER_PORT}",
                     "advertised.listeners": f"PLAINTEXT://{h.ip}:{BROKER_PORT}",
                     "inter.broker.listener.name": "PLAINTEXT",
                     "log.dirs": wd / "data",
                     "default.replication.factor": min(3, brokers),
                     "min.insync.replicas": min(2, brokers),
                     "offsets.topic.replication.factor": min(3, brokers),
                     "offsets.topic.num.partitions": 6,
                     "group.initial.rebalance.delay.ms": 500,
                     "auto.create.topics.enable": "false",
                     **broker_props}
            self.brokers.append(ChaosNode(i, "broker", h, wd, binary, props, {**env, **(broker_env or {})}))
        self.cluster_id = _kafka_uuid()

    @property
    def nodes(self) -> list[ChaosNode]:
        return self.controllers + self.brokers

    def node(self, name_or_id) -> ChaosNode:
        for n in self.nodes:
            if n.name == name_or_id or n.node_id == name_or_id:
                return n
        raise KeyError(name_or_id)

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers)

    @property
    def controller_bootstrap(self) -> str:
        return ",".join(c.address for c in self.controllers)

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        for n in self.nodes:
            n.workdir.mkdir(parents=True, exist_ok=True)
            if n.role == "broker":
                hosts.mount_tmpfs(n.data_dir, n.name, self.disk_mb)
                self.mounted.append(n.data_dir)
            if self.faketime:
                n.set_clock_offset(0)
        for n in self.nodes:
            n.format(self.cluster_id)

    def start(self, timeout: float = 90) -> None:
        for n in self.controllers:
            n.start()
        for n in self.brokers:
            n.start()
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            self.wait_answers(n, deadline)
        self.wait_brokers_registered(deadline)

    def wait_answers(self, n: ChaosNode, deadline: float) -> None:
        while True:
            if not n.alive():
                raise ClusterError(f"{n.name} exited with {n.proc.returncode} while starting; log tail:\n{n.log_tail()}")
            if wire.api_versions_ok(n.address, 1.0):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{n.name} did not answer ApiVersions on {n.address}; log tail:\n{n.log_tail()}")
            time.sleep(0.1)

    def wait_brokers_registered(self, deadline: float) -> None:
        want = {b.node_id for b in self.brokers}
        while True:
            ok = True
            for b in self.brokers:
                try:
                    md = wire.metadata(b.address, [], timeout=2)
                    if set(md.brokers) != want:
                        ok = False
                except (OSError, ValueError):
                    ok = False
            if ok:
                return
            if time.monotonic() > deadline:
                raise ClusterError("brokers did not all register and unfence in time")
            time.sleep(0.2)

    def shutdown(self) -> None:
        for n in self.brokers:
            if n.alive():
                n.resume()
        for n in self.brokers + self.controllers:
            n.stop(timeout=10)

    def kill_all(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.down_expected = True
                try:
                    n.proc.kill()
                    n.proc.wait(10)
                except Exception:  # noqa: BLE001
                    pass

    def unmount(self) -> None:
        for m in self.mounted:
            hosts.unmount(str(m))
        self.mounted.clear()

    # -- what the cluster looks like ----------------------------------------------------------

    def quorum_status(self, timeout_ms: int = 2000) -> dict | None:
        """DescribeQuorum through `runnel metadata quorum status --json`, asking the controllers
        that run and are not stopped."""
        live = [c for c in self.controllers if c.alive() and not c.paused] or self.controllers
        try:
            p = subprocess.run([str(self.binary), "metadata", "quorum", "status", "--json", "--timeout-ms", str(timeout_ms),
                                "--bootstrap-controller", ",".join(c.address for c in live)],
                               capture_output=True, text=True, timeout=timeout_ms / 1000 + 5, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def active_controller(self, timeout_ms: int = 2000) -> int | None:
        """The active controller's id by DescribeQuorum."""
        leader = (self.quorum_status(timeout_ms) or {}).get("leaderId")
        return leader if isinstance(leader, int) and leader >= 0 else None

    def metadata(self, topics: list[str] | None, prefer: list[ChaosNode] | None = None, timeout: float = 1.0):
        """Metadata from the first live broker that answers (the control host is never cut, but a
        broker may be paused or dead)."""
        order = prefer or [b for b in self.brokers if b.alive() and not b.paused]
        for b in order:
            try:
                return b.node_id, wire.metadata(b.address, topics, timeout=timeout)
            except (OSError, ValueError):
                continue
        return None, None

    def partition_state(self, topic: str) -> dict[int, tuple[int, list[int], list[int]]] | None:
        _, md = self.metadata([topic])
        if md is None or topic not in md.topics:
            return None
        return {p: (pm.leader, pm.replicas, pm.isr) for p, pm in md.topics[topic].partitions.items()}

    def healthy(self, topics: list[str]) -> tuple[bool, str]:
        """Every node runs, every broker lists every broker, and every partition of `topics` has a
        leader and its full replica set in sync, as every broker sees it."""
        for n in self.nodes:
            if not n.alive():
                return False, f"{n.name} is down"
        want = {b.node_id for b in self.brokers}
        for b in self.brokers:
            try:
                md = wire.metadata(b.address, topics, timeout=2)
            except (OSError, ValueError) as e:
                return False, f"{b.name} does not answer Metadata ({e})"
            if set(md.brokers) != want:
                return False, f"{b.name} lists brokers {sorted(md.brokers)}"
            for t in topics:
                tm = md.topics.get(t)
                if tm is None or tm.error != 0:
                    return False, f"{b.name} does not know {t}"
                for pm in tm.partitions.values():
                    if pm.leader < 0 or sorted(pm.isr) != sorted(pm.replicas):
                        return False, f"{b.name}: {t}-{pm.index} leader {pm.leader} isr {pm.isr} replicas {pm.replicas}"
        return True, "healthy"


def _kafka_uuid() -> str:
    import base64
    import uuid
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s
