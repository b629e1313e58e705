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
of the medians. Target (issue 18): transactional MB/s at least 60% of idempotent MB/s.
Figures are printed, never checked.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from confluent_kafka import Producer  # noqa: E402

import nodes  # noqa: E402
from benchlib import MB, BenchError, create_topic, pct  # noqa: E402

QUIET = {"log_level": 3}


def producer(bootstrap: str, extra: dict) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
                     "compression.type": "none", "queue.buffering.max.messages": 1_000_000,
                     "queue.buffering.max.kbytes": 2_097_151, **QUIET, **extra})


def idempotent_phase(bootstrap: str, topic: str, n: int, size: int, partitions: int, payloads) -> float:
    errors: list[str] = []
    p = producer(bootstrap, {"enable.idempotence": True,
                             "on_delivery": lambda err, _m: errors.append(str(err)) if err else None})
    t0 = time.perf_counter()
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
    elapsed = time.perf_counter() - t0
    if errors:
        raise BenchError(f"idempotent produce: {len(errors)} errors, e.g. {errors[:3]}")
    return n * size / MB / elapsed


def transactional_phase(bootstrap: str, topic: str, n: int, size: int, partitions: int, per_txn: int,
                        payloads, tid: str) -> tuple[float, list[float]]:
    p = producer(bootstrap, {"transactional.id": tid})
    p.init_transactions(60)
    commits: list[float] = []
    t0 = time.perf_counter()
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
    elapsed = time.perf_counter() - t0
    return n * size / MB / elapsed, commits


def main(binary: Path, messages: int, size: int, partitions: int, per_txn: int, rounds: int) -> int:
    rng = random.Random(42)
    payloads = [rng.randbytes(size) for _ in range(16)]
    props = {"transaction.state.log.replication.factor": 1, "transaction.state.log.min.isr": 1,
             "transaction.state.log.num.partitions": 4, "offsets.topic.replication.factor": 1}
    with tempfile.TemporaryDirectory(prefix="runnel-bench-txn-") as tmp:
        node = nodes.RunnelNode(Path(tmp) / "node", props, binary=binary)
        print(f"tools/bench txn: {node.binary}, {messages} x {size} B per phase, {partitions} partitions, "
              f"{per_txn} records per transaction, {rounds} rounds", flush=True)
        node.start(60)
        try:
            idem, txn, commit_lat = [], [], []
            for r in range(rounds):
                topic = f"bench-idem-{r}"
                create_topic(node.bootstrap, topic, partitions, 30)
                idem.append(idempotent_phase(node.bootstrap, topic, messages, size, partitions, payloads))
                topic = f"bench-txn-{r}"
                create_topic(node.bootstrap, topic, partitions, 30)
                mb, commits = transactional_phase(node.bootstrap, topic, messages, size, partitions, per_txn,
                                                  payloads, f"bench-txn-{r}")
                txn.append(mb)
                commit_lat += commits
                print(f"round {r + 1}: idempotent {idem[-1]:7.1f} MB/s   transactional {mb:7.1f} MB/s   "
                      f"EndTxn p50 {pct(commits, 50) * 1000:.2f} ms p99 {pct(commits, 99) * 1000:.2f} ms",
                      flush=True)
            mi, mt = statistics.median(idem), statistics.median(txn)
            print(f"\nidempotent    median {mi:7.1f} MB/s")
            print(f"transactional median {mt:7.1f} MB/s   ({per_txn} records of {size} B per transaction)")
            print(f"EndTxn (commit_transaction() after flush) over {len(commit_lat)} transactions: "
                  f"p50 {pct(commit_lat, 50) * 1000:.2f} ms, p99 {pct(commit_lat, 99) * 1000:.2f} ms")
            print(f"transactional / idempotent throughput: {mt / mi * 100:.0f}% (target >= 60%)")
        finally:
            node.close()
    return 0
