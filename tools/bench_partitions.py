"""tools/bench partitions: a real cluster with many partitions (issue 21, item 4).

Starts 3 controllers and 3 brokers as separate processes (Tests/integration/cluster.py, the
release binary unless --bin says otherwise), then:

  create        --topics topics of --partitions-per-topic partitions, RF 3, one CreateTopics
                each through broker 4: partitions created per second
  propagation   while creating: for each topic created while the watcher is free, the time from
                CreateTopics' answer until every broker's Metadata (raw Metadata v1 for that
                topic on a connection of its own to each broker, polled every --poll-ms) shows
                it with a leader for every partition: median and p99
  footprint     once every broker shows every partition with a leader: each broker's VmRSS,
                what it grew by per partition replica it hosts, its open file descriptors (and
                the limit), and each controller's VmRSS
  kill          kill -9 of the broker leading most partitions: time until no partition names it
                as leader in the other brokers' Metadata, against broker.session.timeout.ms
                (issue 21's target: within the session timeout plus 1 s)
  restart       the killed broker started again: time until it answers ApiVersions, until the
                others list it (unfenced), and until every partition's ISR is full again

Each broker hosts topics x partitions-per-topic replicas and holds about one file descriptor per
replica; this machine's hard limit is 20,000, so 30,000 replicas per broker cannot run here.
With --fresh-ext4 the nodes run on a new journaled ext4 file system (loop-mounted), as a
production broker's log dirs would be. Without it they run in the system's temp dir; on this
machine that is ext4 without a journal, which skips each inode deleted in the last minutes when
it allocates one, one lookup each, so a run that follows another within minutes creates
partitions up to twice as slowly.

Figures are printed, never checked.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import queue
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))
sys.path.insert(0, str(REPO / "tools"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from benchlib import QUIET, SNAPSHOT_DEFAULT, nodes_dir, report_line, rss_bytes  # noqa: E402
from chaoslib import wire  # noqa: E402
from cluster import start_cluster  # noqa: E402
from kwire import Conn, Reader, frame, i32, request_header_v1, string  # noqa: E402

API_METADATA = 3
_corr = itertools.count(1)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_limit(pid: int) -> str:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return f"{soft}/{hard}"
    return "?"


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


class TopicProbe:
    """Raw Metadata v1 for one topic on a connection kept open to one broker, so a poll asks
    exactly that broker and costs one round trip."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.conn: Conn | None = None

    def shows_with_leaders(self, topic: str, partitions: int) -> bool:
        """Whether the broker's Metadata shows `topic` with `partitions` partitions, each led."""
        corr = next(_corr)
        payload = request_header_v1(API_METADATA, 1, corr, "bench-partitions") + i32(1) + string(topic)
        try:
            if self.conn is None:
                self.conn = Conn.to(self.bootstrap, 5)
            self.conn.send(frame(payload))
            body = self.conn.recv_frame(5)
        except OSError:
            body = None
        if body is None:
            self.close()
            return False
        r = Reader(body)
        if r.i32() != corr:
            raise ValueError(f"{self.bootstrap}: a Metadata answer out of order")
        for _ in range(r.i32()):  # brokers
            r.i32(), r.string(), r.i32(), r.string()
        r.i32()  # controller id
        for _ in range(r.i32()):
            error, name = r.i16(), r.string()
            r.i8()  # is_internal
            led = 0
            count = r.i32()
            for _ in range(count):
                part_error, _index, leader = r.i16(), r.i32(), r.i32()
                for _ in range(r.i32()):  # replicas
                    r.i32()
                for _ in range(r.i32()):  # isr
                    r.i32()
                if part_error == 0 and leader >= 0:
                    led += 1
            if name == topic and error == 0 and count == partitions and led == partitions:
                return True
        return False

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class PropagationWatcher(threading.Thread):
    """Times how long a created topic takes to reach every broker. It takes one topic at a time
    (`offer` refuses while it is busy), so a sample never includes time spent queued behind
    another."""

    def __init__(self, bootstraps: list[str], partitions: int, poll_s: float, timeout_s: float = 60):
        super().__init__(daemon=True)
        self.probes = [TopicProbe(b) for b in bootstraps]
        self.partitions = partitions
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.work: queue.Queue = queue.Queue()
        self.idle = threading.Event()
        self.idle.set()
        self.samples_ms: list[float] = []
        self.timeouts = 0

    def offer(self, topic: str, answered_at: float) -> bool:
        if not self.idle.is_set():
            return False
        self.idle.clear()
        self.work.put((topic, answered_at))
        return True

    def finish(self) -> None:
        self.work.put(None)
        self.join(self.timeout_s + 10)
        for p in self.probes:
            p.close()

    def run(self) -> None:
        while (item := self.work.get()) is not None:
            topic, answered_at = item
            waiting = list(self.probes)
            last_seen = answered_at
            while waiting and time.monotonic() - answered_at < self.timeout_s:
                for probe in list(waiting):
                    if probe.shows_with_leaders(topic, self.partitions):
                        last_seen = time.monotonic()
                        waiting.remove(probe)
                if waiting:
                    time.sleep(self.poll_s)
            if waiting:
                self.timeouts += 1
            else:
                self.samples_ms.append((last_seen - answered_at) * 1000)
            self.idle.set()


def full_metadata(bootstrap: str, timeout: float = 30):
    """Every topic as one broker sees it, or None when it does not answer."""
    try:
        return wire.metadata(bootstrap, None, timeout=timeout)
    except (OSError, ValueError, TimeoutError):
        return None


def partitions_of(md) -> list:
    return [p for t in md.topics.values() for p in t.partitions.values()]


def wait_all_led(brokers, topics: int, per_topic: int, timeout_s: float) -> float:
    """Seconds until every broker shows every partition with a leader."""
    t0 = time.monotonic()
    want = topics * per_topic
    pending = list(brokers)
    while pending:
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"brokers {[b.node_id for b in pending]} did not show {want} led partitions "
                               f"within {timeout_s:.0f} s")
        for b in list(pending):
            md = full_metadata(b.bootstrap)
            if md is not None and sum(1 for p in partitions_of(md) if p.leader >= 0) >= want:
                pending.remove(b)
        if pending:
            time.sleep(0.2)
    return time.monotonic() - t0


def bench(binary: Path, topics: int, per_topic: int, session_timeout_ms: int, poll_ms: float,
          settle_timeout_s: float, fresh_fs: bool = False) -> dict:
    with nodes_dir("runnel-bench-partitions-", fresh_fs) as root:
        r = bench_in(Path(root), binary, topics, per_topic, session_timeout_ms, poll_ms, settle_timeout_s)
        r["freshExt4"] = fresh_fs
        return r


def bench_in(root: Path, binary: Path, topics: int, per_topic: int, session_timeout_ms: int, poll_ms: float,
             settle_timeout_s: float) -> dict:
    r: dict = {"topics": topics, "partitionsPerTopic": per_topic, "partitions": topics * per_topic,
               "replicationFactor": 3, "sessionTimeoutMs": session_timeout_ms, "binary": str(binary)}
    t0 = time.monotonic()
    controllers, brokers = start_cluster(
        root, props={"broker.session.timeout.ms": str(session_timeout_ms), **SNAPSHOT_DEFAULT},
        # Metadata for one topic must not create it while the watcher waits for it.
        broker_props={"auto.create.topics.enable": "false"}, binary=binary)
    try:
        r["clusterStartS"] = time.monotonic() - t0
        print(f"[partitions] 3 controllers + 3 brokers ready in {r['clusterStartS']:.1f} s ({binary})", flush=True)
        baseline = {b.node_id: rss_bytes(b.pid) for b in brokers}

        admin = AdminClient({"bootstrap.servers": brokers[0].bootstrap, **QUIET})
        watcher = PropagationWatcher([b.bootstrap for b in brokers], per_topic, poll_ms / 1000)
        watcher.start()
        t0 = time.monotonic()
        for i in range(topics):
            name = f"p{i}"
            fs = admin.create_topics([NewTopic(name, per_topic, 3)], operation_timeout=60, request_timeout=120)
            fs[name].result(180)
            watcher.offer(name, time.monotonic())
            if (i + 1) % max(1, topics // 10) == 0:
                print(f"[partitions]   {i + 1}/{topics} topics created, {time.monotonic() - t0:.1f} s", flush=True)
        r["createS"] = time.monotonic() - t0
        del admin  # no client left to complain about the broker killed below
        r["createPartitionsPerS"] = topics * per_topic / r["createS"]
        watcher.finish()
        samples = sorted(watcher.samples_ms)
        r["propagationSamples"] = len(samples)
        r["propagationTimeouts"] = watcher.timeouts
        if samples:
            r["propagationMedianMs"] = statistics.median(samples)
            r["propagationP99Ms"] = percentile(samples, 0.99)
            r["propagationMaxMs"] = samples[-1]
        print(f"[partitions] created {topics * per_topic:,} partitions RF 3 in {r['createS']:.1f} s "
              f"({r['createPartitionsPerS']:,.0f}/s)", flush=True)

        r["settleS"] = wait_all_led(brokers, topics, per_topic, settle_timeout_s)
        time.sleep(2)
        md = full_metadata(brokers[0].bootstrap)
        parts = partitions_of(md)
        r["brokers"] = {}
        for b in brokers:
            replicas = sum(1 for p in parts if b.node_id in p.replicas)
            rss = rss_bytes(b.pid)
            r["brokers"][b.node_id] = {
                "replicas": replicas, "leaders": sum(1 for p in parts if p.leader == b.node_id),
                "rssBytes": rss, "rssBaselineBytes": baseline[b.node_id],
                "bytesPerReplica": (rss - baseline[b.node_id]) / max(1, replicas),
                "fds": open_fds(b.pid), "fdLimit": fd_limit(b.pid)}
        r["controllersRssBytes"] = {c.node_id: rss_bytes(c.pid) for c in controllers}

        # Kill -9 the broker leading most partitions; time until the others name it nowhere.
        victim = max(brokers, key=lambda b: r["brokers"][b.node_id]["leaders"])
        others = [b for b in brokers if b is not victim]
        r["victim"] = victim.node_id
        r["victimLeaders"] = r["brokers"][victim.node_id]["leaders"]
        print(f"[partitions] kill -9 broker {victim.node_id} ({r['victimLeaders']:,} leaderships)", flush=True)
        t0 = time.monotonic()
        victim.kill9()
        pending = list(others)
        while pending:
            for b in list(pending):
                m = full_metadata(b.bootstrap, timeout=10)
                if m is not None and not any(p.leader == victim.node_id for p in partitions_of(m)):
                    pending.remove(b)
            if time.monotonic() - t0 > session_timeout_ms / 1000 + settle_timeout_s:
                raise RuntimeError("leaderships did not move off the killed broker")
            if pending:
                time.sleep(0.05)
        r["leadershipMoveS"] = time.monotonic() - t0

        # Restart it: ApiVersions, listed (unfenced) by the others, every ISR full again.
        t0 = time.monotonic()
        victim.restart(timeout=settle_timeout_s)
        r["restartReadyS"] = time.monotonic() - t0
        while True:
            m = full_metadata(others[0].bootstrap, timeout=10)
            if m is not None and victim.node_id in m.brokers:
                break
            if time.monotonic() - t0 > settle_timeout_s:
                raise RuntimeError("the restarted broker was not unfenced")
            time.sleep(0.05)
        r["restartUnfencedS"] = time.monotonic() - t0
        while True:
            m = full_metadata(others[0].bootstrap, timeout=10)
            if m is not None and all(len(p.isr) == len(p.replicas) for p in partitions_of(m)):
                r["restartIsrFullS"] = time.monotonic() - t0
                break
            if time.monotonic() - t0 > settle_timeout_s:
                r["restartIsrFullS"] = None
                break
            time.sleep(0.2)
        r["victimRestartRssBytes"] = rss_bytes(victim.pid)
        r["victimRestartFds"] = open_fds(victim.pid)
    except Exception:
        for n in controllers + brokers:
            if not n.is_alive():
                print(f"[partitions] node {n.node_id} exited ({n.proc.returncode}); log tail:\n{n.log_tail(30)}",
                      file=sys.stderr, flush=True)
        raise
    finally:
        for n in brokers + controllers:
            n.close()
    return r


def print_report(r: dict) -> None:
    mib = 2**20
    print(f"\npartitions: 3 controllers + 3 brokers, {r['topics']:,} topics x {r['partitionsPerTopic']:,} partitions "
          f"= {r['partitions']:,} partitions, RF 3 ({r['partitions']:,} replicas per broker)"
          + (", on a fresh journaled ext4" if r.get("freshExt4") else ""))

    line = functools.partial(report_line, width=40)

    line("cluster start (empty)", f"{r['clusterStartS']:.1f} s")
    line("creation", f"{r['createPartitionsPerS']:,.0f} partitions/s",
         f"{r['createS']:.1f} s, one CreateTopics per topic; all led on every broker {r['settleS']:.1f} s later")
    if r.get("propagationSamples"):
        line("propagation to all brokers, median", f"{r['propagationMedianMs']:.1f} ms",
             f"{r['propagationSamples']} topics sampled, {r['propagationTimeouts']} timed out")
        line("propagation to all brokers, p99", f"{r['propagationP99Ms']:.1f} ms",
             f"target < 50 ms; max {r['propagationMaxMs']:.1f} ms")
    for node_id, b in sorted(r["brokers"].items()):
        line(f"broker {node_id} RSS", f"{b['rssBytes'] / mib:,.0f} MiB",
             f"{b['bytesPerReplica'] / 1024:,.1f} KiB per replica over {b['replicas']:,} replicas "
             f"(from {b['rssBaselineBytes'] / mib:,.0f} MiB empty); {b['leaders']:,} leaders")
        line(f"broker {node_id} file descriptors", f"{b['fds']:,}", f"limit {b['fdLimit']} (soft/hard)")
    for node_id, rss in sorted(r["controllersRssBytes"].items()):
        line(f"controller {node_id} RSS", f"{rss / mib:,.0f} MiB")
    target = r["sessionTimeoutMs"] / 1000 + 1
    line(f"leaderships off killed broker {r['victim']}", f"{r['leadershipMoveS']:.1f} s",
         f"{r['victimLeaders']:,} leaderships; session timeout {r['sessionTimeoutMs'] / 1000:.1f} s, "
         f"target < {target:.1f} s")
    line("restart: answers ApiVersions", f"{r['restartReadyS']:.1f} s")
    line("restart: unfenced (listed by the others)", f"{r['restartUnfencedS']:.1f} s")
    isr = r.get("restartIsrFullS")
    line("restart: every ISR full again", f"{isr:.1f} s" if isr is not None else "not within timeout")
    line("restarted broker", f"{r['victimRestartRssBytes'] / mib:,.0f} MiB", f"{r['victimRestartFds']:,} fds")


def main(binary: Path, topics: int, per_topic: int, session_timeout_ms: int, poll_ms: float = 5,
         settle_timeout_s: float = 600, as_json: bool = False, fresh_fs: bool = False) -> int:
    if not binary.exists():
        print(f"tools/bench partitions: {binary} does not exist; build it with "
              "`swift build -c release --product runnel`", file=sys.stderr)
        return 1
    replicas = topics * per_topic
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and replicas + 1000 > hard:
        print(f"tools/bench partitions: {replicas:,} replicas per broker need about as many file descriptors; "
              f"the hard limit here is {hard:,}", file=sys.stderr)
        return 1
    r = bench(binary, topics, per_topic, session_timeout_ms, poll_ms, settle_timeout_s, fresh_fs)
    print_report(r)
    if as_json:
        print(json.dumps(r, indent=2))
    return 0
