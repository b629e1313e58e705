"""tools/bench txn: transactional produce against idempotent produce on one Runnel node, same run.

Starts one node (runnel format + runnel server in a temp dir, as the integration tests do) and
drives it with confluent-kafka (librdkafka):

  idempotent     N records of S bytes (default 100,000 x 1 KiB) with enable.idempotence=true
                 (acks=all), to a P-partition topic (default 3): MB/s
  transactional  the same records from a transactional producer, R records per transaction
                 (default 100), each transaction begun, filled, flushed and committed in turn:
                 MB/s, and commit_transaction() latency p50/p99 after the flush, which is the
                 EndTxn round trip (the coordinator answers once PrepareCommit is in
                 __transaction_state; the markers follow)

The phases alternate for --rounds rounds (default 3) so both see the same machine; the ratio is
of the medians. Each phase also gives MB per broker CPU-second (what the node pays per MB, which
the client's round trips do not bound), and at the end the node's own time per transaction, from
its request timers (runnel_request_duration_seconds): AddPartitionsToTxn, EndTxn and the Produce
requests of the transactional phases, against the client's time per transaction. A transaction
of one client is a chain of round trips (AddPartitionsToTxn before its first produce to a
partition, the produce, EndTxn), so librdkafka's thread hand-offs between them count in full.
--producers N,M,... (default 1,4) repeats the rounds with N producers at once in each phase (N
transactional ids, and N idempotent producers), each sending its share of the records: with
several, one client's chain of round trips no longer bounds the phase, as in an application
with several transactional producers (Kafka Streams' exactly-once tasks). On the 2-core build
machine one producer gets about 30% (its transaction takes the client about 2.1 ms, of which
the node's requests 0.36 ms), four about 76-81%.
Target (issue 18): transactional MB/s at least 60% of idempotent MB/s.
Figures are printed, never checked.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from confluent_kafka import Producer  # noqa: E402

import nodes  # noqa: E402
from nodes import free_ports  # noqa: E402
from benchlib import DROP_BEHIND, MB, BenchError, cpu_seconds, create_topic, pct  # noqa: E402

QUIET = {"log_level": 3}


def producer(bootstrap: str, extra: dict) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
                     "compression.type": "none", "queue.buffering.max.messages": 1_000_000,
                     "queue.buffering.max.kbytes": 2_097_151, **QUIET, **extra})


def in_parallel(producers: int, one) -> tuple[float, list]:
    """`one(k)` for k in 0..<producers, each on its own thread (librdkafka lets go of the GIL
    while it waits): the wall time of them all, and their results."""
    results: list = [None] * producers
    failures: list[BaseException] = []

    def run(k: int) -> None:
        try:
            results[k] = one(k)
        except BaseException as e:  # noqa: BLE001 - reported below, on the main thread
            failures.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(producers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise failures[0]
    return elapsed, results


def idempotent_phase(bootstrap: str, topic: str, n: int, size: int, partitions: int, payloads,
                     producers: int = 1) -> float:
    elapsed, _ = in_parallel(producers, lambda k: idempotent_records(bootstrap, topic, n // producers, partitions, payloads))
    return n // producers * producers * size / MB / elapsed


def idempotent_records(bootstrap: str, topic: str, n: int, partitions: int, payloads) -> None:
    errors: list[str] = []
    p = producer(bootstrap, {"enable.idempotence": True,
                             "on_delivery": lambda err, _m: errors.append(str(err)) if err else None})
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=payloads[i & 15], partition=i % partitions)
                break
            except BufferError:
                p.poll(0.005)
        if i & 1023 == 0:
            p.poll(0)
    if p.flush(120):
        raise BenchError("idempotent produce: records left unacknowledged after 120 s")
    if errors:
        raise BenchError(f"idempotent produce: {len(errors)} errors, e.g. {errors[:3]}")


def transactional_phase(bootstrap: str, topic: str, n: int, size: int, partitions: int, per_txn: int,
                        payloads, tid: str, producers: int = 1) -> tuple[float, list[float]]:
    elapsed, commits = in_parallel(producers, lambda k: transactional_records(
        bootstrap, topic, n // producers, partitions, per_txn, payloads, f"{tid}-{k}"))
    return n // producers * producers * size / MB / elapsed, [c for per in commits for c in per]


def transactional_records(bootstrap: str, topic: str, n: int, partitions: int, per_txn: int,
                          payloads, tid: str) -> list[float]:
    p = producer(bootstrap, {"transactional.id": tid})
    p.init_transactions(60)
    commits: list[float] = []
    i = 0
    while i < n:
        p.begin_transaction()
        end = min(n, i + per_txn)
        while i < end:
            try:
                p.produce(topic, value=payloads[i & 15], partition=i % partitions)
                i += 1
            except BufferError:
                p.poll(0.005)
        p.flush(60)
        c0 = time.perf_counter()
        p.commit_transaction(60)  # its records are all acknowledged: this is EndTxn alone
        commits.append(time.perf_counter() - c0)
    return commits


def request_timers(metrics_port: int) -> dict[str, tuple[float, float]]:
    """Per API, the node's request count and seconds spent so far."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    found: dict[str, list[float]] = {}
    for m in re.finditer(r'^runnel_request_duration_seconds_(count|sum)\{api="(\w+)"\} (\S+)$', text, re.M):
        found.setdefault(m.group(2), [0.0, 0.0])[0 if m.group(1) == "count" else 1] = float(m.group(3))
    return {api: (v[0], v[1]) for api, v in found.items()}


def timed(pid: int, metrics_port: int, phase) -> tuple:
    """`phase()`'s result, the node's CPU seconds meanwhile, and its request timers' growth."""
    cpu, timers = cpu_seconds(pid), request_timers(metrics_port)
    result = phase()
    after = request_timers(metrics_port)
    grown = {api: (n - timers.get(api, (0, 0))[0], t - timers.get(api, (0, 0))[1]) for api, (n, t) in after.items()}
    return result, cpu_seconds(pid) - cpu, grown


def main(binary: Path, messages: int, size: int, partitions: int, per_txn: int, rounds: int,
         producer_levels: list[int]) -> int:
    rng = random.Random(42)
    payloads = [rng.randbytes(size) for _ in range(16)]
    props = {"transaction.state.log.replication.factor": 1, "transaction.state.log.min.isr": 1,
             "transaction.state.log.num.partitions": 4, "offsets.topic.replication.factor": 1,
             "metrics.host": "127.0.0.1", "metrics.port": free_ports(1)[0],
             # A run writes over a GB: new page-cache pages would cost the later phases more.
             "log.drop.cache.behind.bytes": DROP_BEHIND}
    with tempfile.TemporaryDirectory(prefix="runnel-bench-txn-") as tmp:
        node = nodes.RunnelNode(Path(tmp) / "node", props, binary=binary)
        print(f"tools/bench txn: {node.binary}, {messages} x {size} B per phase, {partitions} partitions, "
              f"{per_txn} records per transaction, {rounds} rounds with each of "
              + ", ".join(f"{n} producer(s)" for n in producer_levels) + " per phase", flush=True)
        node.start(60)
        try:
            ratios = [(producers, measure(node, int(props["metrics.port"]), messages, size, partitions, per_txn,
                                          rounds, producers, payloads)) for producers in producer_levels]
        finally:
            node.close()
    if len(ratios) > 1:
        print("\ntransactional / idempotent throughput, same run: "
              + ", ".join(f"{ratio * 100:.0f}% with {n} producer(s) per phase" for n, ratio in ratios)
              + " (target >= 60%)")
    return 0


def measure(node, metrics_port: int, messages: int, size: int, partitions: int, per_txn: int, rounds: int,
            producers: int, payloads) -> float:
    """--rounds rounds of the two phases with `producers` producers in each; prints the medians
    and the node's time per transaction, and returns the throughput ratio."""
    idem, txn, commit_lat = [], [], []
    idem_cpu, txn_cpu, server = [], [], {}
    phase_mb = messages * size / MB
    print(f"\n{producers} producer(s) per phase:", flush=True)
    for r in range(rounds):
        topic = f"bench-idem-{producers}-{r}"
        create_topic(node.bootstrap, topic, partitions, 30)
        mb, cpu, _ = timed(node.pid, metrics_port,
                           lambda: idempotent_phase(node.bootstrap, topic, messages, size, partitions, payloads,
                                                    producers))
        idem.append(mb)
        idem_cpu.append(phase_mb / cpu)
        topic = f"bench-txn-{producers}-{r}"
        create_topic(node.bootstrap, topic, partitions, 30)
        (mb, commits), cpu, grown = timed(
            node.pid, metrics_port,
            lambda: transactional_phase(node.bootstrap, topic, messages, size, partitions, per_txn, payloads,
                                        f"bench-txn-{producers}-{r}", producers))
        txn.append(mb)
        txn_cpu.append(phase_mb / cpu)
        commit_lat += commits
        for api, (n, t) in grown.items():
            server[api] = (server.get(api, (0, 0))[0] + n, server.get(api, (0, 0))[1] + t)
        print(f"round {r + 1}: idempotent {idem[-1]:7.1f} MB/s   transactional {mb:7.1f} MB/s   "
              f"EndTxn p50 {pct(commits, 50) * 1000:.2f} ms p99 {pct(commits, 99) * 1000:.2f} ms",
              flush=True)
    mi, mt = statistics.median(idem), statistics.median(txn)
    ci, ct = statistics.median(idem_cpu), statistics.median(txn_cpu)
    print(f"idempotent    median {mi:7.1f} MB/s   {ci:6.0f} MB per broker CPU-s")
    print(f"transactional median {mt:7.1f} MB/s   {ct:6.0f} MB per broker CPU-s   "
          f"({per_txn} records of {size} B per transaction)")
    print(f"EndTxn (commit_transaction() after flush) over {len(commit_lat)} transactions: "
          f"p50 {pct(commit_lat, 50) * 1000:.2f} ms, p99 {pct(commit_lat, 99) * 1000:.2f} ms")
    transactions = len(commit_lat)
    client_ms = statistics.median(phase_mb / m for m in txn) * 1000 / (transactions / rounds) * producers
    parts = [(api, server[api]) for api in ("AddPartitionsToTxn", "Produce", "EndTxn") if api in server]
    node_ms = sum(t for _, (_, t) in parts) * 1000 / transactions
    print(f"per transaction: a client's {client_ms:.2f} ms, of which the node's requests {node_ms:.2f} ms ("
          + ", ".join(f"{api} {n / transactions:.1f} x {t / n * 1000:.3f} ms" for api, (n, t) in parts if n) + ")")
    print(f"transactional / idempotent throughput: {mt / mi * 100:.0f}% (target >= 60%); "
          f"broker CPU per MB: {ct / ci * 100:.0f}% of idempotent's MB per CPU-s", flush=True)
    return mt / mi
