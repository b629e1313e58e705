"""tools/bench metadata: the metadata plane's write path, Runnel against etcd in the same run.

  runnel   3 controllers + 3 brokers. A write is an IncrementalAlterConfigs SET of a cluster-wide
           broker config (log.retention.ms) sent to one broker, which forwards it to the active
           controller; the answer comes once the ConfigRecord is committed by a majority of the
           quorum (what a Kafka client waits for).
  direct   the same writes sent straight to the active controller's listener (no broker hop).
  etcd     3 etcd members (Debian's etcd-server, installed if missing) on loopback; a write is a
           Put through gRPC to the leader, answered once a majority has committed it.

Each system gets one write at a time (--serial writes), then --inflight levels (default 16 and
256 writes in flight, --seconds each): p50 / p99 latency and writes/s, and Runnel's ratios to
etcd. The clients are the leanest each system has here, both single-threaded and event-driven:
Kafka requests encoded by hand on non-blocking sockets, one request in flight per connection
(Kafka answers a connection's requests one at a time, so N in flight means N connections), and
etcd's Put as raw protobuf bytes through grpcio's C core, all in flight on one HTTP/2 channel.

Each line also gives the servers' CPU time per write (every thread of the 6 Runnel nodes, or
of the 3 etcd members, from /proc): on two cores, what a write costs decides what in-flight
load can reach. Then where one write's time goes (the serial phase through a broker): each node's own timers
(Prometheus sums and counts scraped before and after, a mean per write), nested as the write
travels: broker, the forward to the active controller, the controller's loop, the Raft commit,
the leader's fsync, the first follower's acknowledgement and that follower's own fetch-to-fsync.
The line "(between)" under a stage is what its parts do not account for: network and thread
hops. Figures are printed, never checked.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from benchlib import SNAPSHOT_DEFAULT, cpu_seconds, pct, work_dir  # noqa: E402
from cluster import start_cluster  # noqa: E402
from nodes import free_ports  # noqa: E402

CONFIG_KEY = "log.retention.ms"
# The in-flight levels and the length of each in-flight phase, unless the command line says otherwise.
INFLIGHT_LEVELS = [16, 256]
INFLIGHT_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------
# Kafka: IncrementalAlterConfigs v0 by hand.

def _kstring(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def alter_config_frame(correlation_id: int, value: int) -> bytes:
    header = struct.pack(">hhi", 44, 0, correlation_id) + _kstring("bench-metadata")
    body = (struct.pack(">i", 1) + struct.pack(">b", 4) + _kstring("")
            + struct.pack(">i", 1) + _kstring(CONFIG_KEY) + struct.pack(">b", 0) + _kstring(str(value))
            + struct.pack(">b", 0))
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def alter_config_error(payload: bytes) -> int:
    # correlation id, throttle time, responses count, then the first response's error code.
    (count,) = struct.unpack_from(">i", payload, 8)
    if count < 1:
        return -1
    (error,) = struct.unpack_from(">h", payload, 12)
    return error


class KafkaWriter:
    """`inflight` connections to one node, each with one IncrementalAlterConfigs in flight."""

    def __init__(self, host: str, port: int, inflight: int):
        self.sel = selectors.DefaultSelector()
        self.conns = []
        for _ in range(inflight):
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            state = {"sock": s, "buf": bytearray(), "sent": 0.0}
            self.conns.append(state)
            self.sel.register(s, selectors.EVENT_READ, state)
        self.correlation = 0
        self.value = int(time.time())

    def _send(self, state) -> None:
        self.correlation += 1
        self.value += 1
        state["sent"] = time.perf_counter()
        state["sock"].sendall(alter_config_frame(self.correlation, self.value))

    def run(self, total: int | None = None, seconds: float | None = None) -> tuple[list[float], float]:
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + seconds if seconds else None
        issued = 0
        for state in self.conns:
            if total is not None and issued >= total:
                break
            self._send(state)
            issued += 1
        outstanding = issued
        while outstanding:
            for key, _ in self.sel.select(timeout=30):
                state = key.data
                chunk = state["sock"].recv(65536)
                if not chunk:
                    raise RuntimeError("the node closed a connection")
                buf = state["buf"]
                buf += chunk
                while len(buf) >= 4:
                    (size,) = struct.unpack_from(">i", buf, 0)
                    if len(buf) < 4 + size:
                        break
                    payload = bytes(buf[4:4 + size])
                    del buf[:4 + size]
                    now = time.perf_counter()
                    error = alter_config_error(payload)
                    if error != 0:
                        raise RuntimeError(f"IncrementalAlterConfigs answered error {error}")
                    latencies.append((now - state["sent"]) * 1000)
                    outstanding -= 1
                    more = (total is None or issued < total) and (deadline is None or now < deadline)
                    if more:
                        self._send(state)
                        issued += 1
                        outstanding += 1
        return latencies, time.perf_counter() - started

    def close(self) -> None:
        for state in self.conns:
            state["sock"].close()
        self.sel.close()


# ---------------------------------------------------------------------------------------------
# etcd: 3 members, Put as raw protobuf through grpcio.

def ensure_etcd() -> str:
    etcd = shutil.which("etcd")
    if etcd is None:
        print("tools/bench metadata: apt-get install etcd-server", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "etcd-server"], check=True,
                       stdout=subprocess.DEVNULL)
        etcd = shutil.which("etcd")
    if etcd is None:
        raise RuntimeError("no etcd binary (Debian's etcd-server)")
    return etcd


def ensure_grpc():
    try:
        import grpc  # noqa: F401
    except ImportError:
        print("tools/bench metadata: pip install grpcio", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "grpcio"],
                       check=True)
    import grpc
    return grpc


def _pb_bytes(field: int, value: bytes) -> bytes:
    out = bytes([field << 3 | 2])
    n = len(value)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            out += bytes([b])
            break
    return out + value


def put_request(key: bytes, value: bytes) -> bytes:
    return _pb_bytes(1, key) + _pb_bytes(2, value)  # etcdserverpb.PutRequest key, value


class EtcdCluster:
    def __init__(self, root: Path, etcd: str):
        self.root = root
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        self.procs = []
        for i in range(3):
            d = root / f"etcd{i}"
            d.mkdir(parents=True)
            log = open(d / "etcd.log", "wb")
            self.procs.append(subprocess.Popen([
                etcd, "--name", f"e{i}", "--data-dir", str(d / "data"),
                "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-cluster", initial, "--initial-cluster-token", "runnel-bench",
                "--initial-cluster-state", "new", "--log-level", "error"], stdout=log, stderr=log))

    def leader_port(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for port in self.client_ports:
                try:
                    with urllib.request.urlopen(
                            urllib.request.Request(f"http://127.0.0.1:{port}/v3/maintenance/status", data=b"{}"),
                            timeout=2) as r:
                        status = json.loads(r.read())
                    if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                        return port
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("no etcd leader")

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


class EtcdWriter:
    """Puts through one gRPC channel, `inflight` at a time."""

    def __init__(self, grpc, port: int, inflight: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.put = self.channel.unary_unary("/etcdserverpb.KV/Put")
        self.inflight = inflight
        self.value = 0
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def run(self, total: int | None = None, seconds: float | None = None) -> tuple[list[float], float]:
        latencies: list[float] = []
        # Re-entrant: grpc runs a done-callback at once, on the thread adding it, when the call
        # has already finished, and callbacks issue the next call under this lock.
        lock = threading.RLock()
        done = threading.Event()
        errors: list[BaseException] = []
        started = time.perf_counter()
        deadline = started + seconds if seconds else None
        state = {"issued": 0, "outstanding": 0}

        def issue() -> None:
            self.value += 1
            sent = time.perf_counter()
            future = self.put.future(put_request(b"runnel-bench/key", str(self.value).encode()), timeout=30)
            future.add_done_callback(lambda f, sent=sent: finished(f, sent))

        def finished(f, sent: float) -> None:
            now = time.perf_counter()
            with lock:
                try:
                    f.result()
                except BaseException as e:  # noqa: BLE001
                    errors.append(e)
                latencies.append((now - sent) * 1000)
                state["outstanding"] -= 1
                more = not errors and (total is None or state["issued"] < total) and (deadline is None or now < deadline)
                if more:
                    state["issued"] += 1
                    state["outstanding"] += 1
                    issue()
                elif state["outstanding"] == 0:
                    done.set()

        with lock:
            for _ in range(self.inflight if total is None else min(self.inflight, total)):
                state["issued"] += 1
                state["outstanding"] += 1
                issue()
        done.wait(600)
        if errors:
            raise RuntimeError(f"etcd Put failed: {errors[0]}")
        return latencies, time.perf_counter() - started

    def close(self) -> None:
        self.channel.close()


# ---------------------------------------------------------------------------------------------
# Runnel's timers.

def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def timer(text: str, name: str, labels: str = "") -> tuple[float, float]:
    """(sum in seconds, count) of a timer, summed over its series matching `labels`."""
    def total(suffix: str) -> float:
        pattern = re.escape(name + suffix) + r"(\{[^}]*\})? ([0-9.e+-]+)$"
        return sum(float(m.group(2)) for m in re.finditer(pattern, text, re.M)
                   if not labels or (m.group(1) and labels in m.group(1)))
    return total("_sum"), total("_count")


def stage_means(before: dict[int, str], after: dict[int, str], ports: list[int], name: str,
                labels: str = "") -> float | None:
    """Mean of a timer over the phase, in ms, over the nodes behind `ports`."""
    s = c = 0.0
    for port in ports:
        s1, c1 = timer(after[port], name, labels)
        s0, c0 = timer(before[port], name, labels)
        s += s1 - s0
        c += c1 - c0
    return s / c * 1000 if c > 0 else None


# ---------------------------------------------------------------------------------------------

def figures(latencies: list[float], elapsed: float, cpu_s: float) -> dict:
    return {"writes": len(latencies), "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "writes_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
            "server_cpu_us_per_write": cpu_s / len(latencies) * 1e6 if latencies else 0.0}


def line(system: str, phase: str, f: dict) -> None:
    print(f"[metadata] {system:<22} {phase:<14} p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms  "
          f"{f['writes_per_s']:8.0f} writes/s  {f['server_cpu_us_per_write']:6.0f} us server CPU/write  "
          f"({f['writes']} writes)", flush=True)


def measured(writer, pids: list[int], **kwargs) -> dict:
    """A run of `writer` with the CPU time its servers (`pids`, every thread) used meanwhile."""
    before = sum(cpu_seconds(p) for p in pids)
    latencies, elapsed = writer.run(**kwargs)
    return figures(latencies, elapsed, sum(cpu_seconds(p) for p in pids) - before)


def phases(writer_for, pids: list[int], serial: int, inflight: list[int], seconds: float, system: str) -> dict:
    out = {}
    w = writer_for(1)
    try:
        w.run(total=min(200, serial))  # warm-up
        out["serial"] = measured(w, pids, total=serial)
    finally:
        w.close()
    line(system, "one at a time", out["serial"])
    for k in inflight:
        w = writer_for(k)
        try:
            w.run(seconds=1.0)  # warm-up
            out[f"inflight{k}"] = measured(w, pids, seconds=seconds)
        finally:
            w.close()
        line(system, f"{k} in flight", out[f"inflight{k}"])
    return out


def active_controller(binary: Path, controllers) -> int:
    bootstrap = ",".join(f"127.0.0.1:{c.port}" for c in controllers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        p = subprocess.run([str(binary), "metadata", "quorum", "status", "--json", "--bootstrap-controller", bootstrap],
                           capture_output=True, text=True, timeout=20)
        if p.returncode == 0 and json.loads(p.stdout).get("leaderId", -1) > 0:
            return json.loads(p.stdout)["leaderId"]
        time.sleep(0.2)
    raise RuntimeError("no active controller")


def breakdown(binary: Path, brokers, controllers, bports: list[int], cports: list[int], serial: int) -> dict:
    """The serial phase through broker 4 again, between two scrapes of every node's timers."""
    leader_id = active_controller(binary, controllers)
    leader_port = [cports[i] for i, c in enumerate(controllers) if c.node_id == leader_id]
    follower_ports = [cports[i] for i, c in enumerate(controllers) if c.node_id != leader_id]
    everyone = bports + cports
    before = {p: scrape(p) for p in everyone}
    host, port = brokers[0].bootstrap.rsplit(":", 1)
    w = KafkaWriter(host, int(port), 1)
    try:
        latencies, _ = w.run(total=serial)
    finally:
        w.close()
    after = {p: scrape(p) for p in everyone}
    api = 'api="IncrementalAlterConfigs"'
    m = {
        "client": statistics.mean(latencies),
        "broker": stage_means(before, after, bports, "runnel_request_duration_seconds", api),
        "forward": stage_means(before, after, bports, "runnel_controller_forward_duration_seconds", api),
        "queue": stage_means(before, after, leader_port, "runnel_controller_event_queue_time_seconds"),
        "run": stage_means(before, after, leader_port, "runnel_controller_event_processing_time_seconds"),
        "commit": stage_means(before, after, leader_port, "runnel_raft_commit_latency_seconds"),
        "fsync": stage_means(before, after, leader_port, "runnel_raft_append_to_fsync_seconds"),
        "ack": stage_means(before, after, leader_port, "runnel_raft_append_to_follower_ack_seconds"),
        "follower": stage_means(before, after, follower_ports, "runnel_raft_follower_fetch_to_fsync_seconds"),
    }
    controller_side = (m["queue"] or 0) + (m["run"] or 0)
    rows = [
        (0, "client: request -> answer", m["client"]),
        (1, "(between: client <-> broker network, client and broker I/O)", m["client"] - (m["broker"] or 0)),
        (1, "broker: request in -> answer out", m["broker"]),
        (2, "(between: broker's own work)", (m["broker"] or 0) - (m["forward"] or 0)),
        (2, "broker -> active controller -> broker", m["forward"]),
        (3, "(between: broker <-> controller network and I/O)", (m["forward"] or 0) - controller_side),
        (3, "controller: waiting for the quorum's loop", m["queue"]),
        (3, "controller: run + commit", m["run"]),
        (4, "raft: proposal -> committed", m["commit"]),
        (5, "raft: append -> leader's fsync done", m["fsync"]),
        (5, "raft: append -> first follower's ack", m["ack"]),
        (6, "follower: fetched records -> fsync done (then fetches again)", m["follower"]),
        (6, "(between: leader -> follower -> leader network and hops)", (m["ack"] or 0) - (m["follower"] or 0)),
    ]
    print(f"[metadata] where one write's time goes (mean of {serial} writes one at a time through a broker):",
          flush=True)
    for depth, label, value in rows:
        shown = "   n/a" if value is None else f"{value:6.3f}"
        print(f"[metadata]   {'  ' * depth}{label:<{64 - 2 * depth}} {shown} ms", flush=True)
    return m


def bench(binary: Path, serial: int, inflight: list[int], seconds: float, skip_etcd: bool) -> dict:
    grpc = None if skip_etcd else ensure_grpc()
    etcd = None if skip_etcd else ensure_etcd()
    result: dict = {}
    with work_dir("runnel-bench-metadata-") as root:
        if not skip_etcd:
            cluster = EtcdCluster(root / "etcd", etcd)
            try:
                port = cluster.leader_port()
                result["etcd"] = phases(lambda k: EtcdWriter(grpc, port, k), [p.pid for p in cluster.procs],
                                        serial, inflight, seconds, "etcd (Put to leader)")
            finally:
                cluster.close()
        mports = free_ports(6)
        bports, cports = mports[:3], mports[3:]
        controllers, brokers = start_cluster(
            root / "runnel", binary=binary, props=SNAPSHOT_DEFAULT,
            each_broker_props=[{"metrics.port": p, "metrics.host": "127.0.0.1"} for p in bports],
            each_controller_props=[{"metrics.port": p, "metrics.host": "127.0.0.1"} for p in cports])
        try:
            host, port = brokers[0].bootstrap.rsplit(":", 1)
            pids = [n.pid for n in controllers + brokers]
            result["runnel"] = phases(lambda k: KafkaWriter(host, int(port), k), pids, serial, inflight, seconds,
                                      "runnel (via a broker)")
            leader_id = active_controller(binary, controllers)
            leader = next(c for c in controllers if c.node_id == leader_id)
            result["direct"] = phases(lambda k: KafkaWriter("127.0.0.1", leader.port, k), pids, serial, [], seconds,
                                      "runnel (to controller)")
            result["breakdown"] = breakdown(binary, brokers, controllers, bports, cports, serial)
        finally:
            for n in brokers + controllers:
                n.close()
    if "etcd" in result:
        e, r = result["etcd"], result["runnel"]
        print(f"[metadata] one at a time: Runnel p50 {r['serial']['p50_ms']:.2f} ms vs etcd {e['serial']['p50_ms']:.2f} ms "
              f"(x{e['serial']['p50_ms'] / r['serial']['p50_ms']:.2f} etcd's speed), p99 {r['serial']['p99_ms']:.2f} vs "
              f"{e['serial']['p99_ms']:.2f} ms", flush=True)
        for k in inflight:
            rk, ek = r[f"inflight{k}"], e[f"inflight{k}"]
            print(f"[metadata] {k} in flight: Runnel {rk['writes_per_s']:.0f} writes/s vs etcd {ek['writes_per_s']:.0f} "
                  f"= x{rk['writes_per_s'] / ek['writes_per_s']:.2f}", flush=True)
    return result


def main(binary: Path, serial: int, inflight: list[int], seconds: float, skip_etcd: bool, as_json: bool) -> int:
    result = bench(binary, serial, inflight, seconds, skip_etcd)
    if as_json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    print(__doc__)
