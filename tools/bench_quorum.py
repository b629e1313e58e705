"""tools/bench quorum: the metadata quorum of three controller processes on this machine.

  commit latency   single-record proposals, one at a time, through the active controller
                   (`runnel bench quorum-commit`: IncrementalAlterConfigs, answered once committed):
                   p50 / p99 / max and commits/s
  failover         kill -9 of the active controller until a new leader commits a record; the
                   median of --failovers runs (the killed node is restarted between runs)

Figures are printed, never checked.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

import nodes  # noqa: E402
from benchlib import work_dir  # noqa: E402
from test_quorum import ControllerNode  # noqa: E402


def run(binary: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout)


def leader_of(binary: Path, bootstrap: str) -> int | None:
    p = run(binary, "metadata", "quorum", "status", "--json", "--bootstrap-controller", bootstrap, "--timeout-ms", "300", timeout=10)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)["leaderId"]


def bench_quorum(binary: Path, proposals: int, failovers: int) -> dict:
    with work_dir("runnel-bench-quorum-") as root:
        return bench_in(root, binary, proposals, failovers)


def bench_in(root: Path, binary: Path, proposals: int, failovers: int) -> dict:
    ports = nodes.free_ports(3)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
    cluster = nodes.kafka_uuid()
    ctl = [ControllerNode(root / f"c{i + 1}", i + 1, voters, ports[i], cluster, {}) for i in range(3)]
    for n in ctl:
        n.binary = binary
        n.start()
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
    try:
        deadline = time.monotonic() + 30
        while leader_of(binary, bootstrap) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        p = run(binary, "bench", "quorum-commit", "--bootstrap-controller", bootstrap, "--count", str(proposals), "--json")
        if p.returncode != 0:
            raise RuntimeError(f"quorum-commit failed: {p.stderr.strip()}")
        commit = json.loads(p.stdout)
        print(f"[quorum] commit latency over {commit['count']} proposals: p50 {commit['p50Ms']:.2f} ms, "
              f"p99 {commit['p99Ms']:.2f} ms, max {commit['maxMs']:.2f} ms, {commit['commitsPerSecond']:.0f} commits/s", flush=True)
        times = []
        for i in range(failovers):
            leader_id = leader_of(binary, bootstrap)
            victim = next(n for n in ctl if n.node_id == leader_id)
            survivors = ",".join(f"127.0.0.1:{n.port}" for n in ctl if n is not victim)
            t0 = time.monotonic()
            victim.kill9()
            # A new leader has taken over once a proposal commits through the survivors.
            p = run(binary, "bench", "quorum-commit", "--bootstrap-controller", survivors, "--count", "1", "--json", timeout=60)
            elapsed = (time.monotonic() - t0) * 1000
            if p.returncode != 0:
                raise RuntimeError(f"no commit after failover {i + 1}: {p.stderr.strip()}")
            times.append(elapsed)
            print(f"[quorum] failover {i + 1}: killed node {leader_id}, a new leader committed after {elapsed:.0f} ms", flush=True)
            victim.restart()
            time.sleep(1.0)
        return {"commit": commit, "failover_ms": times, "failover_median_ms": statistics.median(times)}
    finally:
        for n in ctl:
            n.close()


def main(binary: Path, proposals: int = 2000, failovers: int = 5) -> int:
    result = bench_quorum(binary, proposals, failovers)
    c = result["commit"]
    print()
    print(f"{'metric':32}{'value':>12}")
    print("-" * 44)
    print(f"{'commit p50 ms':32}{c['p50Ms']:>12.2f}")
    print(f"{'commit p99 ms':32}{c['p99Ms']:>12.2f}")
    print(f"{'commits/s (one at a time)':32}{c['commitsPerSecond']:>12.0f}")
    print(f"{'failover median ms (of %d)' % len(result['failover_ms']):32}{result['failover_median_ms']:>12.0f}")
    return 0
