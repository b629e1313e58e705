"""tools/bench groups: how fast a consumer group rebalances on one Runnel node.

Each run starts a group of --members confluent-kafka consumers (range assignor, each polled by
its own thread, as applications run them) on a --partitions topic and waits until it is stable;
then one more member joins, and the run measures the time from that member's subscribe() until
every member holds its new assignment (disjoint, covering every partition). Prints each run and
the median of --runs runs, plus the time the first --members took to form a group (that includes
group.initial.rebalance.delay.ms, Kafka's default of 3 s, unless --initial-delay-ms says otherwise).

Figures are printed, never checked.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from confluent_kafka import Consumer  # noqa: E402

import nodes  # noqa: E402
from benchlib import BenchError, create_topic  # noqa: E402


class Member:
    def __init__(self, bootstrap: str, group: str, topic: str):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "partition.assignment.strategy": "range",
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000, "log_level": 3,
        })
        self.lock = threading.Lock()
        self.owned: frozenset[int] = frozenset()
        self.stop = threading.Event()
        self.subscribed_at = time.monotonic()
        self.consumer.subscribe([topic])
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.consumer.poll(0.02)
            owned = frozenset(tp.partition for tp in self.consumer.assignment())
            with self.lock:
                self.owned = owned

    def assignment(self) -> frozenset[int]:
        with self.lock:
            return self.owned

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def stable(members: list[Member], partitions: int) -> bool:
    sets = [m.assignment() for m in members]
    union = frozenset().union(*sets)
    return all(sets) and sum(len(s) for s in sets) == len(union) == partitions


def wait_stable(members: list[Member], partitions: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stable(members, partitions):
            return time.monotonic()
        time.sleep(0.002)
    raise BenchError(f"{len(members)} members did not share {partitions} partitions within {timeout} s")


def main(binary: Path, members: int, partitions: int, runs: int, initial_delay_ms: int | None) -> int:
    props = {"offsets.topic.num.partitions": "10"}
    if initial_delay_ms is not None:
        props["group.initial.rebalance.delay.ms"] = str(initial_delay_ms)
    with tempfile.TemporaryDirectory(prefix="runnel-bench-groups-") as tmp:
        node = nodes.RunnelNode(Path(tmp) / "node", props, binary=binary)
        print(f"starting {node.binary}", flush=True)
        node.start(60)
        try:
            topic = "bench-groups"
            create_topic(node.bootstrap, topic, partitions, 60)
            formed, joins = [], []
            for run in range(runs):
                group = f"bench-group-{run}-{int(time.time() * 1000)}"
                started = time.monotonic()
                group_members = [Member(node.bootstrap, group, topic) for _ in range(members)]
                formed.append(wait_stable(group_members, partitions, 120) - started)
                time.sleep(0.5)
                newcomer = Member(node.bootstrap, group, topic)
                everyone = group_members + [newcomer]
                # Stable again with the newcomer holding partitions too.
                done = wait_stable(everyone, partitions, 120)
                joins.append(done - newcomer.subscribed_at)
                print(f"run {run + 1}: {members} members formed in {formed[-1] * 1000:.0f} ms; "
                      f"member {members + 1} joined and the group was stable again after {joins[-1] * 1000:.0f} ms", flush=True)
                for m in everyone:
                    m.close()
            print(f"\ngroup of {members} + 1 joining, {partitions} partitions, {runs} runs:")
            print(f"  stable again after a member joins: median {statistics.median(joins) * 1000:.0f} ms "
                  f"(min {min(joins) * 1000:.0f}, max {max(joins) * 1000:.0f})")
            print(f"  first {members} members forming the group: median {statistics.median(formed) * 1000:.0f} ms "
                  f"(group.initial.rebalance.delay.ms={initial_delay_ms if initial_delay_ms is not None else 3000})")
        finally:
            if not node.is_alive():
                print(f"the node exited; log tail:\n{node.log_tail()}", file=sys.stderr)
            node.close()
    return 0
