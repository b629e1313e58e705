"""tools/bench metadata-scale --cluster: the metadata plane at a million partitions on real controllers.

Starts 3 controllers as processes of their own (tests' cluster layout, the release binary unless
--bin says otherwise, Kafka's snapshot interval of 20 MiB of records, and a snapshot at least every
20 s of commits instead of Kafka's hour, so one is written at the full size), then:

  register  --brokers broker stand-ins (ids 100 and up) registered with BrokerRegistration and
            kept alive with BrokerHeartbeat every 500 ms over the active controller's listener,
            as brokers do; they hold no data and fetch no metadata
  create    --topics topics of --partitions-per-topic partitions, RF 3 over the stand-ins,
            --topics-per-request per CreateTopics straight to the active controller (KIP-919's
            controller-listener clients): partitions per second
  sizes     each controller's metadata log and newest snapshot on disk, and its VmRSS, per
            partition
  snapshots the write and load times the controllers log for their snapshots: those written while
            creation keeps both cores busy (snapshots are written at background priority), and
            the first at the full size once creation is over (a one-partition topic created
            every second until each controller has written it: its interval counts commits)
  failover  the active controller stopped (SIGTERM: it resigns, as a rolling restart does) and
            killed -9 (the others notice after controller.quorum.fetch.timeout.ms): time until
            another controller commits a write (a CreateTopics of one partition answered)
  standby   a stopped controller started again: time until its log end reaches the leader's
            high watermark (DescribeQuorum), loading its snapshot and fetching the rest
  broker    a real broker started on the full image: time until it answers and until it is
            unfenced (it catches up from the leader's snapshot, through FetchSnapshot)
  fence     one stand-in stops heartbeating: time until the real broker's Metadata names it
            leader of no partition of --sample-topics topics, against broker.session.timeout.ms

Figures are printed, never checked.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))
sys.path.insert(0, str(REPO / "tools"))

from benchlib import nodes_dir, report_line, rss_bytes  # noqa: E402
from chaoslib import wire  # noqa: E402
from cluster import ClusterNode  # noqa: E402
from kwire import Conn, Reader, compact_array, compact_string, frame, i16, i32, i64, string  # noqa: E402
from nodes import free_ports, kafka_uuid  # noqa: E402

API_CREATE_TOPICS, API_BROKER_REGISTRATION, API_BROKER_HEARTBEAT = 19, 62, 63
NOT_CONTROLLER, TOPIC_ALREADY_EXISTS = 41, 36
SNAPSHOT_BYTES = 20 * 1024 * 1024
SNAPSHOT_INTERVAL_MS = 20_000
SESSION_TIMEOUT_MS = 9000
_corr = itertools.count(1)


class ControllerConn:
    """One request at a time to a controller's listener, on a connection kept open."""

    def __init__(self, address: str):
        self.address = address
        self.conn = Conn.to(address, 10)

    def close(self) -> None:
        self.conn.close()

    def answer(self, timeout: float) -> bytes:
        body = self.conn.recv_frame(timeout)
        if body is None:
            raise ConnectionError(f"{self.address} closed the connection")
        return body

    def flexible(self, api_key: int, version: int, body: bytes, timeout: float = 30) -> Reader:
        corr = next(_corr)
        header = i16(api_key) + i16(version) + i32(corr) + string("bench-metadata-cluster") + b"\x00"
        self.conn.send(frame(header + body))
        r = Reader(self.answer(timeout))
        if r.i32() != corr:
            raise ValueError(f"{self.address}: an answer out of order")
        r.skip_tags()
        return r

    def classic(self, api_key: int, version: int, body: bytes, timeout: float = 60) -> Reader:
        corr = next(_corr)
        header = i16(api_key) + i16(version) + i32(corr) + string("bench-metadata-cluster")
        self.conn.send(frame(header + body))
        r = Reader(self.answer(timeout))
        if r.i32() != corr:
            raise ValueError(f"{self.address}: an answer out of order")
        return r


class Controllers:
    """The active controller's connection, found again when it answers NOT_CONTROLLER or goes."""

    def __init__(self, nodes: list[ClusterNode]):
        self.nodes = nodes
        self.conn: ControllerConn | None = None

    def request(self, send) -> Reader:
        """`send(conn)` returns (reader, error code); retried on the other controllers while they
        answer NOT_CONTROLLER or cannot be reached, for up to 60 s."""
        deadline = time.monotonic() + 60
        while True:
            candidates = [self.conn.address] if self.conn else []
            candidates += [n.bootstrap for n in self.nodes if n.is_alive() and n.bootstrap not in candidates]
            for address in candidates:
                try:
                    if self.conn is None or self.conn.address != address:
                        if self.conn:
                            self.conn.close()
                        self.conn = ControllerConn(address)
                    reader, code = send(self.conn)
                    if code != NOT_CONTROLLER:
                        return reader
                except (OSError, TimeoutError, ValueError):
                    pass
                if self.conn:
                    self.conn.close()
                    self.conn = None
            if time.monotonic() > deadline:
                raise TimeoutError("no active controller answered for 60 s")
            time.sleep(0.05)


class StandIns(threading.Thread):
    """Broker stand-ins: registered once, then a heartbeat each every 500 ms until stopped
    (one of them can be silenced to be fenced)."""

    def __init__(self, cluster_id: str, ids: list[int], controllers: list[ClusterNode]):
        super().__init__(daemon=True)
        self.cluster_id = cluster_id
        self.ids = ids
        self.channel = Controllers(controllers)
        self.epochs: dict[int, int] = {}
        self.fenced: dict[int, bool] = {i: True for i in ids}
        self.silenced: set[int] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def register_all(self) -> None:
        for broker_id in self.ids:
            listener = compact_array([compact_string("PLAINTEXT") + compact_string("127.0.0.1")
                                      + struct.pack(">H", 1) + i16(0) + b"\x00"])
            body = (i32(broker_id) + compact_string(self.cluster_id) + uuid.uuid4().bytes
                    + listener + compact_array([]) + b"\x00" + b"\x00")

            def send(conn: ControllerConn, body=body):
                r = conn.flexible(API_BROKER_REGISTRATION, 0, body)
                r.i32()
                return r, r.i16()

            with self.lock:
                r = self.channel.request(send)
            epoch = r.i64()
            self.epochs[broker_id] = epoch

    def beat(self, broker_id: int) -> None:
        body = i32(broker_id) + i64(self.epochs[broker_id]) + i64(2**62) + b"\x00\x00\x00"

        def send(conn: ControllerConn):
            r = conn.flexible(API_BROKER_HEARTBEAT, 0, body, timeout=10)
            r.i32()
            return r, r.i16()

        with self.lock:
            r = self.channel.request(send)
        r.i8()  # caught up
        self.fenced[broker_id] = r.i8() == 1

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            for broker_id in self.ids:
                if broker_id not in self.silenced:
                    try:
                        self.beat(broker_id)
                    except (OSError, TimeoutError, ValueError):
                        pass
            self.stop.wait(max(0.0, 0.5 - (time.monotonic() - started)))


def create_topics(channel: Controllers, topics: list[tuple[str, int]], rf: int) -> None:
    """CreateTopics v4 to the active controller; raises on any refusal."""
    body = i32(len(topics)) + b"".join(string(name) + i32(n) + i16(rf) + i32(0) + i32(0) for name, n in topics)
    body += i32(60_000) + b"\x00"

    def send(conn: ControllerConn):
        r = conn.classic(API_CREATE_TOPICS, 4, body, timeout=120)
        r.i32()  # throttle
        codes = []
        for _ in range(r.i32()):
            name, code, message = r.string(), r.i16(), r.string()
            codes.append((name, code, message))
        # TOPIC_ALREADY_EXISTS: an earlier try was committed but its answer lost in a failover.
        failed = [c for c in codes if c[1] not in (0, TOPIC_ALREADY_EXISTS)]
        if failed and all(c[1] == NOT_CONTROLLER for c in failed):
            return r, NOT_CONTROLLER
        if failed:
            raise RuntimeError(f"CreateTopics refused: {failed[:3]}")
        return r, 0

    channel.request(send)


def dir_bytes(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def quorum_status(controllers: list[ClusterNode], runnel: Path) -> dict | None:
    bootstrap = ",".join(c.bootstrap for c in controllers if c.is_alive())
    p = subprocess.run([str(runnel), "metadata", "quorum", "status", "--json", "--bootstrap-controller", bootstrap],
                       capture_output=True, text=True, timeout=30)
    return json.loads(p.stdout) if p.returncode == 0 else None


def snapshot_lines(node: ClusterNode, verb: str) -> list[dict]:
    """The `<verb> metadata snapshot` lines a node logged, with their metadata."""
    out = []
    for line in node.log_text().splitlines():
        if f"{verb} metadata snapshot" not in line:
            continue
        fields = dict(re.findall(r"(\w+)=(\d+)", line))
        out.append({k: int(v) for k, v in fields.items()})
    return out


def wait_for(predicate, timeout: float, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    return None


def leaders_in_sample(bootstrap: str, topics: list[str]) -> dict[int, int] | None:
    try:
        md = wire.metadata(bootstrap, topics, timeout=30)
    except (OSError, ValueError, TimeoutError):
        return None
    counts: dict[int, int] = {}
    for t in md.topics.values():
        for p in t.partitions.values():
            counts[p.leader] = counts.get(p.leader, 0) + 1
    return counts


def bench(binary: Path, topics: int, per_topic: int, per_request: int, standins: int, sample: int,
          session_timeout_ms: int = SESSION_TIMEOUT_MS, snapshot_bytes: int = SNAPSHOT_BYTES,
          fresh_fs: bool = False) -> dict:
    with nodes_dir("runnel-bench-metadata-cluster-", fresh_fs) as root:
        r = bench_in(root, binary, topics, per_topic, per_request, standins, sample, session_timeout_ms,
                     snapshot_bytes)
        r["freshExt4"] = fresh_fs
        return r


def bench_in(root: Path, binary: Path, topics: int, per_topic: int, per_request: int, standins: int, sample: int,
             session_timeout_ms: int, snapshot_bytes: int) -> dict:
    r: dict = {"topics": topics, "partitionsPerTopic": per_topic, "partitions": topics * per_topic,
               "standIns": standins, "sessionTimeoutMs": session_timeout_ms}
    cports = free_ports(3)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(cports))
    cluster_id = kafka_uuid()
    props = {"metadata.log.max.record.bytes.between.snapshots": str(snapshot_bytes),
             "metadata.log.max.snapshot.interval.ms": str(SNAPSHOT_INTERVAL_MS),
             "broker.session.timeout.ms": str(session_timeout_ms)}
    controllers = [ClusterNode(root / f"c{i + 1}", i + 1, "controller", voters, cports[i], cluster_id, props)
                   for i in range(3)]
    for c in controllers:
        c.binary = binary
        c.start()
    baseline = {c.node_id: rss_bytes(c.pid) for c in controllers}
    stand = StandIns(cluster_id, list(range(100, 100 + standins)), controllers)
    broker: ClusterNode | None = None
    try:
        stand.register_all()
        stand.start()
        if wait_for(lambda: not any(stand.fenced.values()), 60) is None:
            raise RuntimeError("the stand-ins were not unfenced within 60 s")
        print(f"[metadata-cluster] 3 controllers, {standins} stand-ins registered and unfenced", flush=True)

        # create
        channel = Controllers(controllers)
        names = [f"t{i:06d}" for i in range(topics)]
        t0 = time.monotonic()
        for start in range(0, topics, per_request):
            create_topics(channel, [(n, per_topic) for n in names[start:start + per_request]], 3)
            done = min(topics, start + per_request)
            if done % max(per_request, topics // 10) == 0 or done == topics:
                print(f"[metadata-cluster]   {done * per_topic:,} partitions, {time.monotonic() - t0:.1f} s",
                      flush=True)
        r["createS"] = time.monotonic() - t0
        r["createPartitionsPerS"] = topics * per_topic / r["createS"]
        r["snapshotWrites"] = {c.node_id: snapshot_lines(c, "wrote") for c in controllers}

        # a snapshot of the full image, written with the cluster otherwise idle
        total = topics * per_topic

        def full_writes() -> dict | None:
            found = {}
            for c in controllers:
                full = [w for w in snapshot_lines(c, "wrote") if w.get("partitions", 0) >= total]
                if not full:
                    return None
                found[c.node_id] = full[0]
            return found

        t0 = time.monotonic()
        for k in itertools.count():
            r["fullSnapshotWrites"] = full_writes()
            if r["fullSnapshotWrites"] or time.monotonic() - t0 > 3 * SNAPSHOT_INTERVAL_MS / 1000:
                break
            create_topics(channel, [(f"snapshot-trigger-{k}", 1)], 3)
            time.sleep(1)
        print(f"[metadata-cluster] snapshots at {total:,} partitions: "
              + ("written" if r["fullSnapshotWrites"] else "not written"), flush=True)

        # sizes
        r["controllers"] = []
        for c in controllers:
            mdir = c.data_dir / "__cluster_metadata-0"
            snaps = sorted(mdir.glob("*.checkpoint.sqlite"))
            r["controllers"].append({"id": c.node_id, "rssBytes": rss_bytes(c.pid),
                                     "rssEmptyBytes": baseline[c.node_id],
                                     "logBytes": dir_bytes(mdir, "*.log"),
                                     "snapshotBytes": snaps[-1].stat().st_size if snaps else 0,
                                     "snapshotFile": snaps[-1].name if snaps else None})

        # failover: resign (SIGTERM), then kill -9
        for how in ("stop", "kill9"):
            status = quorum_status(controllers, binary)
            leader = next(c for c in controllers if c.node_id == status["leaderId"])
            t0 = time.monotonic()
            if how == "stop":
                leader.proc.send_signal(signal.SIGTERM)
            else:
                leader.kill9()
            create_topics(channel, [(f"failover-{how}", 1)], 3)
            r[f"failover_{how}_s"] = time.monotonic() - t0
            after = quorum_status(controllers, binary)
            r[f"failover_{how}_leaders"] = [leader.node_id, after["leaderId"] if after else None]
            if how == "stop":
                leader.proc.wait(60)
            print(f"[metadata-cluster] failover ({how}) {r[f'failover_{how}_s']:.2f} s", flush=True)
            # standby: the stopped controller back
            t1 = time.monotonic()
            leader.restart()
            hw = quorum_status(controllers, binary)["highWatermark"]

            def caught_up(node_id=leader.node_id, hw=hw):
                s = quorum_status(controllers, binary)
                if not s:
                    return False
                return any(v["nodeId"] == node_id and v["logEndOffset"] >= hw for v in s["replicas"])

            r[f"standby_after_{how}_s"] = (time.monotonic() - t1) if wait_for(caught_up, 300, 0.2) else None
            r[f"standby_after_{how}_loads"] = snapshot_lines(leader, "loaded")
            print(f"[metadata-cluster] standby back ({how}) in {r[f'standby_after_{how}_s']} s", flush=True)

        # broker: a real one on the full image
        bport = free_ports(1)[0]
        broker = ClusterNode(root / "b4", 4, "broker", voters, bport, cluster_id, props)
        broker.binary = binary
        t0 = time.monotonic()
        broker._launch()
        broker._expected_exit = False
        broker.starts += 1
        broker.wait_ready(600)
        r["brokerAnswersS"] = time.monotonic() - t0
        listed = wait_for(lambda: 4 in (wire.metadata(broker.bootstrap, [], timeout=30).brokers), 600, 0.2)
        r["brokerUnfencedS"] = (time.monotonic() - t0) if listed else None
        r["brokerLoads"] = snapshot_lines(broker, "loaded")
        print(f"[metadata-cluster] broker answers {r['brokerAnswersS']:.1f} s, unfenced {r['brokerUnfencedS']}",
              flush=True)

        # fence: stand-in 100 goes quiet
        sample_topics = names[:: max(1, topics // sample)][:sample]
        before = leaders_in_sample(broker.bootstrap, sample_topics) or {}
        r["fenceSampleLed"] = before.get(100, 0)
        t0 = time.monotonic()
        stand.silenced.add(100)
        moved = wait_for(lambda: (lambda c: c is not None and c.get(100, 0) == 0)(
            leaders_in_sample(broker.bootstrap, sample_topics)), 120, 0.1)
        r["fenceMovedS"] = (time.monotonic() - t0) if moved else None
        print(f"[metadata-cluster] leaderships off stand-in 100: {r['fenceMovedS']} s", flush=True)
    finally:
        stand.stop.set()
        for n in controllers + ([broker] if broker else []):
            n.close()
    return r


def print_report(r: dict) -> None:
    n = r["partitions"]
    print(f"\nmetadata-scale --cluster: 3 controllers, {r['standIns']} broker stand-ins, "
          f"{r['topics']:,} topics x {r['partitionsPerTopic']:,} = {n:,} partitions, RF 3"
          + (", on a fresh journaled ext4" if r.get("freshExt4") else ""))

    line = functools.partial(report_line, width=40)

    line("creation", f"{r['createPartitionsPerS']:,.0f} partitions/s", f"{r['createS']:.1f} s")
    for c in r["controllers"]:
        line(f"controller {c['id']} RSS", f"{c['rssBytes'] / 2**20:,.0f} MiB",
             f"{(c['rssBytes'] - c['rssEmptyBytes']) / n:,.0f} B/partition over the "
             f"{c['rssEmptyBytes'] / 2**20:,.0f} MiB of an empty controller (goal < 2,048)")
        line(f"controller {c['id']} metadata log", f"{c['logBytes'] / 1e6:,.1f} MB",
             f"newest snapshot {c['snapshotBytes'] / 1e6:,.1f} MB ({c['snapshotFile']})")
    for node_id, writes in r["snapshotWrites"].items():
        if writes:
            last = writes[-1]
            line(f"controller {node_id} snapshots in creation", f"{len(writes)}",
                 f"last: {last.get('partitions', 0):,} partitions in {last.get('ms', 0):,} ms "
                 "(at background priority while creation keeps both cores busy)")
    for node_id, w in (r.get("fullSnapshotWrites") or {}).items():
        line(f"controller {node_id} snapshot, idle", f"{w.get('ms', 0):,} ms",
             f"{w.get('partitions', 0):,} partitions, {w.get('bytes', 0) / 1e6:,.1f} MB, the three controllers "
             "writing at once (target < 5,000)")
    if not r.get("fullSnapshotWrites"):
        line("snapshot at the full size", "not written", f"within {3 * SNAPSHOT_INTERVAL_MS / 1000:.0f} s")
    for how, label in (("stop", "resigned (SIGTERM)"), ("kill9", "killed -9")):
        old, new = r[f"failover_{how}_leaders"]
        line(f"failover, leader {label}", f"{r[f'failover_{how}_s']:.2f} s",
             f"until another commits a write (leader {old} -> {new})")
        loads = r.get(f"standby_after_{how}_loads") or []
        load = f"; loaded {loads[-1].get('partitions', 0):,} partitions in {loads[-1].get('ms', 0):,} ms" if loads else ""
        back = r.get(f"standby_after_{how}_s")
        line("  the old leader caught up again", f"{back:.1f} s" if back is not None else "timed out",
             f"started to log end at the high watermark{load} (target < 5,000 ms)")
    line("new broker answers", f"{r['brokerAnswersS']:.1f} s")
    loads = r.get("brokerLoads") or []
    load = f"loaded {loads[-1].get('partitions', 0):,} partitions in {loads[-1].get('ms', 0):,} ms" if loads else ""
    moved = r.get("brokerUnfencedS")
    line("new broker unfenced (caught up)", f"{moved:.1f} s" if moved is not None else "timed out", load)
    fm = r.get("fenceMovedS")
    line("leaderships off a silent stand-in", f"{fm:.1f} s" if fm is not None else "timed out",
         f"{r['fenceSampleLed']:,} in the sample; session timeout {r['sessionTimeoutMs'] / 1000:.1f} s")


def main(binary: Path, topics: int, per_topic: int, per_request: int, standins: int, sample: int,
         as_json: bool, fresh_fs: bool = False) -> int:
    r = bench(binary, topics, per_topic, per_request, standins, sample, fresh_fs=fresh_fs)
    print_report(r)
    if as_json:
        print(json.dumps(r, indent=2, sort_keys=True, default=str))
    return 0
