"""tools/bench replicated: produce throughput and latency with replication, 3 controllers and 3
brokers on this machine (separate processes, like `runnel dev`), confluent-kafka as the client.

In one run, each on its own one-partition topic:
  RF=1 acks=1      the baseline
  RF=3 acks=1      the leader answers after its own append; followers copy behind
  RF=3 acks=all    min.insync.replicas=2: the answer waits for the high watermark
After RF=3 acks=1 the next run waits until the followers have copied everything (the high
watermark covers every message; the wait is printed when it is noticeable), so no run shares the
brokers with the previous one's catch-up. Then paced acks=all runs on an RF=3 topic: at half the
RF=3 acks=all peak rate with the throughput producer's linger.ms=5, and at 1,000 messages/s with
linger.ms=0 (latency p50/p99).

This machine's memory makes new pages slow: a page the guest never touched (or handed back to
the host, which it does with freed memory: free page reporting) costs a host fault on first
write. `dd` of new files runs at 2.8 GB/s for about the first GB (recently freed pages) and then
at ~220 MB/s (~20 us per 4 KiB), which caps how fast the whole machine's page cache can grow.
RF=3 writes every byte on three replicas, so a paced RF=3 run at 100,000 msgs/s needs 300 MB/s
of new page cache: without help it falls behind its pace and its latency climbs to seconds, with
perf putting 43% of all CPU samples in the brokers' copies into the page cache. So the brokers
run with log.drop.cache.behind.bytes=64 MiB: each partition keeps its newest 64 MiB cached and
older written bytes are written back and dropped, and new writes reuse those pages. The bench
prints the cost of a first touch of 256 MiB before and after the runs (within the recently freed
pool, so it shows how warm the machine is, not the cold cost). Run it a few times.

Targets from issue 5: RF=3 acks=all at least 40% of RF=1 acks=1 throughput; p99 under 20 ms at half
the peak rate. Figures are printed, never checked.
"""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from benchlib import DROP_BEHIND, QUIET, BenchError, create_topic, first_touch_us, paced_phase, produce_phase, work_dir
from cluster import start_cluster


# Each broker keeps the newest 64 MiB of each partition in the page cache and drops older written
# bytes (see the docstring): the followers and the paced runs read well inside that.


def wait_replicated(servers: str, topic: str, messages: int, timeout: float) -> float:
    """Waits until partition 0's high watermark reaches `messages`; returns the seconds it took.
    Asks with ListOffsets from an admin client: a consumer with a group.id would look up its
    coordinator and make the brokers create __consumer_offsets (50 partitions, RF=3) in the
    middle of the next run."""
    admin = AdminClient({"bootstrap.servers": servers, **QUIET})
    t0 = time.monotonic()
    while True:
        tp = TopicPartition(topic, 0)
        high = admin.list_offsets({tp: OffsetSpec.latest()}, request_timeout=10)[tp].result().offset
        if high >= messages:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{topic}: high watermark {high} of {messages} after {timeout}s")
        time.sleep(0.01)


def main(binary: Path, messages: int, size: int, seconds: float) -> int:
    with work_dir("runnel-bench-repl-") as root:
        return run(root, binary, messages, size, seconds)


def run(root: Path, binary: Path, messages: int, size: int, seconds: float) -> int:
    print(f"tools/bench replicated: {binary}, {messages} x {size} B per run, brokers with "
          f"log.drop.cache.behind.bytes={DROP_BEHIND}, work dir {root}", flush=True)
    touch_before = first_touch_us()
    controllers, brokers = start_cluster(root, binary=binary, broker_props={"log.drop.cache.behind.bytes": DROP_BEHIND})
    servers = ",".join(b.bootstrap for b in brokers)
    results = {}
    try:
        runs = [("RF=1 acks=1", "rf1", 1, "1"), ("RF=3 acks=1", "rf3-acks1", 3, "1"), ("RF=3 acks=all", "rf3-acksall", 3, "all")]
        for label, topic, rf, acks in runs:
            create_topic(servers, topic, 1, 60, replication=rf, config={"min.insync.replicas": "2"} if rf == 3 else {})
            r = produce_phase(servers, topic, messages, size, acks, 1, 300)
            results[label] = r
            print(f"{label:<15} {r['mb_s']:8.1f} MB/s {r['msgs_s']:9.0f} msgs/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms", flush=True)
            if rf == 3:
                # acks=1 answers before the followers copy: the next run starts only once they
                # have (the high watermark covers every message), or it would share the brokers
                # with this run's catch-up.
                behind = wait_replicated(servers, topic, messages, 300)
                if behind > 0.05:
                    print(f"{'':<15} followers caught up {behind:.2f} s after the last answer", flush=True)
        peak = results["RF=3 acks=all"]["msgs_s"]
        rate = max(1, int(peak / 2))
        create_topic(servers, "rf3-paced", 1, 60, replication=3, config={"min.insync.replicas": "2"})
        # The throughput producer's settings (linger.ms=5: librdkafka's default), paced: with
        # linger.ms=0 and unbounded in-flight requests every message would be its own request.
        r = paced_phase(servers, "rf3-paced", rate, seconds, size, 300, acks="all", linger_ms=5)
        print(f"RF=3 acks=all paced at {rate} msgs/s (half the peak, linger.ms=5, achieved {r['rate']:.0f}, "
              f"{r['late']} sent >10 ms late): p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"max {r['max_ms']:.2f} ms", flush=True)
        r0 = paced_phase(servers, "rf3-paced", 1000, seconds, size, 300, acks="all", linger_ms=0)
        print(f"RF=3 acks=all paced at 1000 msgs/s (linger.ms=0, achieved {r0['rate']:.0f}): "
              f"p50 {r0['p50_ms']:.2f} ms, p99 {r0['p99_ms']:.2f} ms, max {r0['max_ms']:.2f} ms", flush=True)
        ratio = results["RF=3 acks=all"]["mb_s"] / results["RF=1 acks=1"]["mb_s"]
        print(f"\nfirst touch of fresh memory: {touch_before:.1f} us/page before the runs, {first_touch_us():.1f} after "
              f"(how warm the machine's memory is; see tools/bench replicated --help)")
        print(f"RF=3 acks=all / RF=1 acks=1 throughput: {ratio:.0%} (target >= 40%)")
        print(f"RF=3 acks=all p99 at half the peak: {r['p99_ms']:.2f} ms (target < 20 ms)")
        for b in brokers:
            if not b.is_alive():
                raise BenchError(f"broker {b.node_id} exited: {b.log_tail()}")
        return 0
    except BenchError as e:
        print(f"tools/bench replicated: ERROR: {e}")
        return 1
    finally:
        for n in brokers + controllers:
            n.close()
        time.sleep(0.1)
