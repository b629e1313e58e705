"""tools/bench controller: 3 controllers and 3 brokers on this machine.

  failover      kill -9 of the active controller until a CreateTopics through a broker succeeds
                (median of --failovers runs; the killed controller is restarted between runs)
  propagation   CreateTopics through one broker until every broker's Metadata shows the topic
                (median and p99 of --topics creations)
  scale         --partitions partitions created (in topics of 100), then the active controller is
                restarted: time until it has reloaded the metadata (snapshot + log) and caught up

Figures are printed, never checked.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import start_cluster  # noqa: E402
from benchlib import QUIET, work_dir  # noqa: E402


def status(binary: Path, controllers) -> dict | None:
    bootstrap = ",".join(f"127.0.0.1:{c.port}" for c in controllers if c.is_alive())
    p = subprocess.run([str(binary), "metadata", "quorum", "replication", "--json", "--bootstrap-controller", bootstrap, "--timeout-ms", "500"],
                       capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        return None
    rows = json.loads(p.stdout)
    leader = next((r for r in rows if r["status"] == "Leader"), None)
    return {"leader": leader["nodeId"] if leader else -1, "rows": rows}


def start(binary: Path, root: Path):
    return start_cluster(root, props={"metadata.log.max.record.bytes.between.snapshots": "1048576"}, binary=binary)


def create(admin: AdminClient, name: str, partitions: int, rf: int, timeout: float = 60) -> None:
    admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=timeout, request_timeout=timeout)[name].result(timeout)


def bench(binary: Path, failovers: int, topics: int, partitions: int) -> dict:
    with work_dir("runnel-bench-controller-") as root:
        return bench_in(root, binary, failovers, topics, partitions)


def bench_in(root: Path, binary: Path, failovers: int, topics: int, partitions: int) -> dict:
    controllers, brokers = start(binary, root)
    result = {}
    try:
        admins = [AdminClient({"bootstrap.servers": b.bootstrap, **QUIET}) for b in brokers]
        create(admins[0], "warmup", 3, 3)

        # Propagation: create through broker 1, watch all three brokers' Metadata.
        samples = []
        for i in range(topics):
            name = f"prop-{i}"
            seen = [None, None, None]

            def watch(k: int):
                while seen[k] is None:
                    md = admins[k].list_topics(timeout=5)  # all topics: asking for one would auto-create it
                    t = md.topics.get(name)
                    if t is not None and t.error is None and t.partitions:
                        seen[k] = time.monotonic()
                        return
            threads = [threading.Thread(target=watch, args=(k,)) for k in range(3)]
            t0 = time.monotonic()
            for th in threads:
                th.start()
            create(admins[0], name, 1, 3)
            for th in threads:
                th.join(30)
            samples.append((max(s for s in seen if s is not None) - t0) * 1000)
        samples.sort()
        result["propagation_median_ms"] = statistics.median(samples)
        result["propagation_p99_ms"] = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(f"[controller] CreateTopics visible on all brokers: median {result['propagation_median_ms']:.1f} ms, "
              f"p99 {result['propagation_p99_ms']:.1f} ms over {len(samples)} topics", flush=True)

        # Failover: kill -9 the active controller, time the first successful CreateTopics.
        times = []
        for i in range(failovers):
            leader = status(binary, controllers)["leader"]
            victim = next(c for c in controllers if c.node_id == leader)
            t0 = time.monotonic()
            victim.kill9()
            while True:
                try:
                    create(admins[1], f"failover-{i}", 1, 3, timeout=30)
                    break
                except Exception:
                    if time.monotonic() - t0 > 60:
                        raise
            times.append((time.monotonic() - t0) * 1000)
            print(f"[controller] failover {i + 1}: killed controller {leader}, CreateTopics succeeded after {times[-1]:.0f} ms", flush=True)
            victim.restart()
            time.sleep(1.5)
        result["failover_median_ms"] = statistics.median(times)

        # Scale: many partitions, then a controller restart.
        made = 0
        t0 = time.monotonic()
        while made < partitions:
            n = min(100, partitions - made)
            create(admins[made // 100 % 3], f"scale-{made // 100}", n, 1, timeout=120)
            made += n
        create_s = time.monotonic() - t0
        print(f"[controller] created {made} partitions in {create_s:.1f} s", flush=True)
        st = status(binary, controllers)
        target = max(r["logEndOffset"] for r in st["rows"])
        victim = next(c for c in controllers if c.node_id == st["leader"])
        victim.stop()
        t0 = time.monotonic()
        victim.start()
        while True:
            s = status(binary, controllers)
            row = next((r for r in (s or {}).get("rows", []) if r["nodeId"] == victim.node_id), None)
            if row and row["logEndOffset"] >= target:
                break
            if time.monotonic() - t0 > 120:
                raise RuntimeError("the restarted controller did not catch up")
            time.sleep(0.05)
        result["reload_s"] = time.monotonic() - t0
        result["partitions"] = made
        print(f"[controller] restarted controller {victim.node_id} reloaded {made} partitions and caught up in {result['reload_s'] * 1000:.0f} ms", flush=True)
    finally:
        for n in brokers + controllers:
            n.close()
    return result


def main(binary: Path, failovers: int = 5, topics: int = 100, partitions: int = 10_000) -> int:
    r = bench(binary, failovers, topics, partitions)
    print()
    print(f"{'metric':40}{'value':>12}")
    print("-" * 52)
    print(f"{'failover to CreateTopics, median ms':40}{r['failover_median_ms']:>12.0f}")
    print(f"{'propagation to all brokers, median ms':40}{r['propagation_median_ms']:>12.1f}")
    print(f"{'propagation to all brokers, p99 ms':40}{r['propagation_p99_ms']:>12.1f}")
    print(f"{'controller reload (%d partitions), ms' % r['partitions']:40}{r['reload_s'] * 1000:>12.0f}")
    return 0
