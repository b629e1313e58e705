"""tools/bench reassign: how long moving a partition's data to another broker takes (KIP-455
reassignment), unthrottled and with a replication throttle, and what the move costs producers on
the broker it moves from. 3 controllers and 3 brokers on this machine (separate processes, like
`runnel dev`), confluent-kafka as the client, `runnel reassign` as the tool.

For each run (unthrottled, then --throttle B bytes/s, default 50 MB/s):
  1. a fresh one-partition RF=1 topic gets --megabytes of 1 KiB records on broker L;
  2. `runnel reassign execute` moves it to another broker (with --throttle for the second run),
     and `runnel reassign verify` is polled until the move is done: the move's time and MB/s;
  3. meanwhile a paced producer (--paced-rate msgs/s, acks=all, linger.ms=0) writes to another
     topic led by the same broker L: its latency p50/p99 during the move.
Before the runs the same paced producer runs alone for 5 s: the p99 without a move.

Figures are printed, never checked.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from benchlib import DROP_BEHIND, QUIET, MB, BenchError, pct, produce_phase, work_dir
from cluster import start_cluster

RECORD = 1024


class Paced:
    """A producer at `rate` msgs/s (acks=all, linger.ms=0) to `topic` from a thread until stopped,
    recording each delivery's latency as librdkafka measures it."""

    def __init__(self, servers: str, topic: str, rate: int):
        self.topic, self.rate = topic, rate
        self.p = Producer({"bootstrap.servers": servers, "acks": "all", "linger.ms": 0,
                           "message.timeout.ms": 120_000, **QUIET})
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def report(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.latencies.append(msg.latency())

    def run(self):
        payload = b"p" * RECORD
        t0 = time.perf_counter()
        i = 0
        while not self.stop_flag.is_set():
            due = int((time.perf_counter() - t0) * self.rate) + 1
            while i < due:
                try:
                    self.p.produce(self.topic, value=payload, partition=0, callback=self.report)
                except BufferError:
                    break
                i += 1
            self.p.poll(max(t0 + i / self.rate - time.perf_counter(), 0.001))
        self.p.flush(60)

    def __enter__(self):
        self.p.produce(self.topic, value=b"warmup", partition=0)
        self.p.flush(30)
        self.latencies.clear()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(90)

    def summary(self) -> str:
        if self.errors:
            raise BenchError(f"paced producer: {len(self.errors)} errors, e.g. {self.errors[:3]}")
        lat = self.latencies
        return (f"{len(lat)} records, p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms, "
                f"max {max(lat) * 1000 if lat else float('nan'):.1f} ms")


def create_on(servers: str, name: str, broker: int) -> None:
    a = AdminClient({"bootstrap.servers": servers, **QUIET})
    a.create_topics([NewTopic(name, num_partitions=1, replica_assignment=[[broker]])], operation_timeout=30)[name].result(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        t = a.list_topics(name, timeout=5).topics.get(name)
        if t and t.error is None and t.partitions and t.partitions[0].leader == broker:
            return
        time.sleep(0.1)
    raise BenchError(f"topic {name} has no leader on broker {broker}")


def leader_of(servers: str, name: str) -> int:
    return AdminClient({"bootstrap.servers": servers, **QUIET}).list_topics(name, timeout=5).topics[name].partitions[0].leader


def runnel(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300)


def move(binary: Path, servers: str, topic: str, target: int, throttle: int | None, plan: Path,
         timeout: float) -> float:
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [target]}]}))
    args = ["--reassignment-json-file", str(plan), "--bootstrap-server", servers]
    t0 = time.monotonic()
    ex = runnel(binary, "reassign", "execute", *args, *(["--throttle", str(throttle)] if throttle else []))
    if ex.returncode != 0:
        raise BenchError(f"reassign execute: {ex.stderr.strip()}")
    while True:
        v = runnel(binary, "reassign", "verify", *args)
        if v.returncode == 0:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"the move of {topic} did not finish within {timeout:.0f} s: {v.stdout.strip()}")
        time.sleep(0.25)


def main(binary: Path, megabytes: int, throttle: int, paced_rate: int) -> int:
    with work_dir("runnel-bench-reassign-") as root:
        return run(root, binary, megabytes, throttle, paced_rate)


def run(root: Path, binary: Path, megabytes: int, throttle: int, paced_rate: int) -> int:
    records = megabytes * MB // RECORD
    print(f"tools/bench reassign: {binary}, moving {records} x {RECORD} B ({records * RECORD / MB:.0f} MB) per run, "
          f"throttle {throttle / MB:.0f} MB/s, paced producer {paced_rate} msgs/s acks=all, work dir {root}",
          flush=True)
    controllers, brokers = start_cluster(root, binary=binary, broker_props={"log.drop.cache.behind.bytes": DROP_BEHIND})
    servers = ",".join(b.bootstrap for b in brokers)
    try:
        source = brokers[0].node_id
        target = brokers[1].node_id
        create_on(servers, "paced", source)
        with Paced(servers, "paced", paced_rate) as alone:
            time.sleep(5)
        print(f"no move:          paced producer on broker {source}: {alone.summary()}", flush=True)
        for label, limit in (("unthrottled", None), (f"throttle {throttle / MB:.0f} MB/s", throttle)):
            topic = "moved-" + ("throttled" if limit else "free")
            create_on(servers, topic, source)
            r = produce_phase(servers, topic, records, RECORD, "1", 1, 600)
            print(f"{label}: filled {topic} on broker {source} at {r['mb_s']:.0f} MB/s", flush=True)
            time.sleep(2)
            with Paced(servers, "paced", paced_rate) as during:
                secs = move(binary, servers, topic, target, limit, root / f"{topic}.json", 1800)
            if leader_of(servers, topic) != target:
                raise BenchError(f"{topic} is not led by broker {target} after the move")
            print(f"{label:<17} move of {records * RECORD / MB:.0f} MB from broker {source} to {target}: {secs:.1f} s "
                  f"({records * RECORD / MB / secs:.0f} MB/s); paced producer on broker {source} meanwhile: "
                  f"{during.summary()}", flush=True)
        for b in brokers:
            if not b.is_alive():
                raise BenchError(f"broker {b.node_id} exited: {b.log_tail()}")
        return 0
    except BenchError as e:
        print(f"tools/bench reassign: ERROR: {e}")
        return 1
    finally:
        for n in brokers + controllers:
            n.close()
        time.sleep(0.1)
