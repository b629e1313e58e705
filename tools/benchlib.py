"""Load phases shared by tools/bench and its cluster runs: topic creation, a throughput produce
run, a consume run and a paced latency run, all with confluent-kafka (librdkafka)."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

QUIET = {"log_level": 3}
MB = 1_000_000
# log.drop.cache.behind.bytes for benches that write more than about a GB: on this kind of VM a
# new page-cache page costs ~20 us once the guest's recently freed memory is used up (see
# tools/bench_replicated.py), so each partition keeps its newest 64 MiB cached and new writes
# reuse the pages of older ones.
DROP_BEHIND = 64 << 20
# The integration tests' cluster (Tests/integration/cluster.py) writes a metadata snapshot every
# 3,000 bytes of records, to exercise snapshots; a bench of the metadata plane runs Kafka's
# default (20 MiB), as an operator's cluster would.
SNAPSHOT_DEFAULT = {"metadata.log.max.record.bytes.between.snapshots": str(20 * 1024 * 1024)}


def keep_client_memory() -> None:
    """Makes this (client) process keep the memory it frees instead of handing it back to the
    kernel. A throughput run queues every message in librdkafka at once (200 MB), and glibc
    returns freed heap tops and large blocks to the kernel; on a VM whose host takes freed memory
    back, the next run then pays a host fault for each page again (~20 us per 4 KiB), on the two
    cores the brokers under test need. Only the client: the brokers keep glibc's defaults."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(M_TOP_PAD, 64 << 20)
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)


keep_client_memory()


class BenchError(RuntimeError):
    pass


@contextlib.contextmanager
def work_dir(prefix: str, under: Path | None = None):
    """A fresh temp dir (in `under`, else the system's) for a bench's nodes, removed afterwards
    (each run writes gigabytes); RUNNEL_BENCH_KEEP=1 keeps it, with its logs, and prints where
    it is."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=under))
    try:
        yield root
    finally:
        if os.environ.get("RUNNEL_BENCH_KEEP"):
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def fresh_ext4(size_gib: int = 8):
    """A new journaled ext4 file system (an image file under /var/tmp, loop-mounted), yielding
    its mount point, unmounted and removed afterwards. On the machine's own file system a run
    that follows another allocates inodes among the earlier run's recently deleted ones, which
    ext4 without a journal scans one by one (`recently_deleted`), so back-to-back runs differ by
    several times; on a fresh file system they do not. Needs root, mount and mkfs.ext4."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        raise BenchError("--fresh-ext4 needs root and mkfs.ext4 (Debian's e2fsprogs)")
    base = Path(tempfile.mkdtemp(prefix="runnel-bench-fs-", dir="/var/tmp"))
    image, mount = base / "fs.img", base / "mnt"
    mount.mkdir()
    try:
        with open(image, "wb") as f:
            f.truncate(size_gib << 30)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
        try:
            yield mount
        finally:
            subprocess.run(["umount", str(mount)], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def nodes_dir(prefix: str, fresh_fs: bool = False):
    """A bench's work_dir, on a fresh journaled ext4 (fresh_ext4) when fresh_fs is set."""
    with contextlib.ExitStack() as stack:
        under = stack.enter_context(fresh_ext4()) if fresh_fs else None
        yield stack.enter_context(work_dir(prefix, under))


def first_touch_us(megabytes: int = 256) -> float:
    """Microseconds per 4 KiB page to touch memory this process never touched. On a VM that hands
    freed memory back to its host (free page reporting), a first touch costs a host fault. 256 MiB
    mostly lands in the guest's pool of recently freed memory, so this shows how warm the machine
    is (1-3 us here), not the cold cost past that pool (~20 us). Printed beside the figures so
    runs can be compared."""
    import mmap
    size = megabytes << 20
    m = mmap.mmap(-1, size)
    try:
        t0 = time.perf_counter()
        for off in range(0, size, 4096):
            m[off] = 1
        return (time.perf_counter() - t0) / (size // 4096) * 1e6
    finally:
        m.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) that process `pid` has used so far, summed over its live threads
    from /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks, too coarse
    for a phase in which a broker uses 30 ms). Threads that already exited are not counted, which
    suits brokers (their threads live as long as they do)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread exited while we looked
    return total / 1e9


def with_broker_cpu(pid: int | None, size: int, phase):
    """Runs `phase()` (a phase above, as a closure) and adds to its result the CPU seconds process
    `pid` used meanwhile ("broker_cpu_s") and the megabytes of message values the phase moved per
    such second ("mb_per_cpu_s"): the broker's throughput per core, which the client's own cost
    does not bound (librdkafka's per-record work bounds the consume phase's MB/s on two cores).
    It adds the same for this process, the client ("client_cpu_s", "client_mb_per_cpu_s"): on a
    machine the client shares with the broker, what the client pays bounds the MB/s too."""
    start = cpu_seconds(pid) if pid else None
    own = resource.getrusage(resource.RUSAGE_SELF)
    result = phase()
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    client = own_after.ru_utime + own_after.ru_stime - own.ru_utime - own.ru_stime
    result["client_cpu_s"] = client
    if client > 0:
        result["client_mb_per_cpu_s"] = result["msgs"] * size / MB / client
    if start is not None:
        used = cpu_seconds(pid) - start
        result["broker_cpu_s"] = used
        if used > 0:
            result["mb_per_cpu_s"] = result["msgs"] * size / MB / used
    return result


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def create_topic(bootstrap: str, name: str, partitions: int, timeout: float, replication: int = 1,
                 config: dict | None = None, client: dict | None = None) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap, **QUIET, **(client or {})})
    fut = a.create_topics([NewTopic(name, partitions, replication, config=config or {})], operation_timeout=timeout,
                          request_timeout=timeout)[name]
    try:
        fut.result(timeout)
    except KafkaException as e:
        raise BenchError(f"creating topic {name}: {e}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = a.list_topics(name, timeout=5).topics.get(name)
        if t and t.error is None and len(t.partitions) == partitions and \
                all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise BenchError(f"topic {name} has no leaders after {timeout}s")


def produce_phase(bootstrap: str, topic: str, n: int, size: int, acks: str, partitions: int,
                  timeout: float, client: dict | None = None) -> dict:
    """`client`: extra librdkafka settings (security.protocol, sasl.*, ssl.*), as for the other phases."""
    rng = random.Random(42)
    payloads = [rng.randbytes(size) for _ in range(16)]
    lat: list[float] = []
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            if len(errors) < 10:
                errors.append(str(err))
            else:
                errors.append("")
        else:
            lat.append(msg.latency())

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "batch.size": 1_000_000, "compression.type": "none",
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 2_097_151,
                  "message.timeout.ms": int(timeout * 1000), "on_delivery": on_delivery, **QUIET, **(client or {})})
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    for i in range(n):
        part = i % partitions
        while True:
            try:
                p.produce(topic, value=payloads[i & 15], partition=part)
                break
            except BufferError:
                p.poll(0.005)
                if time.monotonic() > deadline:
                    raise BenchError(f"produce acks={acks}: queue still full after {timeout}s")
        if i & 1023 == 0:
            p.poll(0)
    left = p.flush(max(1.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t0
    if left:
        raise BenchError(f"produce acks={acks}: {left} of {n} messages unacknowledged after {timeout}s")
    if errors:
        raise BenchError(f"produce acks={acks}: {len(errors)} delivery errors, e.g. {errors[:3]}")
    return {"msgs": n, "secs": elapsed, "mb_s": n * size / MB / elapsed, "msgs_s": n / elapsed,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000}


def consume_phase(bootstrap: str, topic: str, n: int, partitions: int, timeout: float, size: int,
                  client: dict | None = None) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{os.getpid()}-{time.time_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": False,
                  "fetch.max.bytes": 64 * MB, "max.partition.fetch.bytes": 16 * MB,
                  "queued.max.messages.kbytes": 1_000_000, **QUIET, **(client or {})})
    # The produce phases leave millions of objects behind; a collection during the timed loop
    # would measure the interpreter, not the broker.
    gc.collect()
    gc.disable()
    try:
        c.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
        got = 0
        nbytes = 0
        t0 = None
        deadline = time.monotonic() + timeout
        while got < n:
            if time.monotonic() > deadline:
                raise BenchError(f"consume: read {got} of {n} messages in {timeout}s")
            batch = c.consume(num_messages=10_000, timeout=0.5)
            if not batch:
                continue
            if t0 is None:
                t0 = time.perf_counter()   # from the first batch: excludes connection setup
            # len() of a message is its value's length, computed in C: the loop stays out of
            # Python so the figure measures the broker, not the interpreter. Errors are
            # messages without a value; the totals checked below catch them.
            got += len(batch)
            nbytes += sum(map(len, batch))
            last = batch[-1]
            if last.error() is not None and last.error().code() != KafkaError._PARTITION_EOF:
                raise BenchError(f"consume: {last.error()}")
        if got != n or nbytes != n * size:
            raise BenchError(f"consume: got {got} messages / {nbytes} bytes, expected {n} / {n * size}")
        elapsed = time.perf_counter() - t0
    finally:
        gc.enable()
        c.close()
    return {"msgs": got, "secs": elapsed, "mb_s": nbytes / MB / elapsed, "msgs_s": got / elapsed}


def paced_phase(bootstrap: str, topic: str, rate: int, seconds: float, size: int, timeout: float,
                acks: str = "1", linger_ms: int = 0) -> dict:
    """Produces `rate` messages/s for `seconds`, each sent when due, and reports the delivery
    latency librdkafka measured (from produce() to the delivery report). The loop sleeps until
    the next message is due, but at least a millisecond, and then sends every message that is
    due: it must neither spin nor wake per message, since either takes CPU from the brokers it
    measures on this machine's two cores. When the producer's queue is full the message waits
    (polling) and is sent late: `rate` then reports what was achieved, and `late` how many went
    out more than 10 ms after they were due."""
    payload = random.Random(7).randbytes(size)
    lat: list[float] = []
    errors: list[str] = []
    late = 0

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            lat.append(msg.latency())

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": linger_ms,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 2_097_151,
                  "message.timeout.ms": int(timeout * 1000), "on_delivery": on_delivery, **QUIET})
    # Warm up the connection and metadata so the first sample is not a connect.
    p.produce(topic, value=b"warmup", partition=0)
    p.flush(timeout)
    lat.clear()
    n = int(rate * seconds)
    t0 = time.perf_counter()
    i = 0
    while i < n:
        now = time.perf_counter()
        due_now = min(n, int((now - t0) * rate) + 1)
        while i < due_now:
            while True:
                try:
                    p.produce(topic, value=payload, partition=0)
                    break
                except BufferError:
                    p.poll(0.001)
            if time.perf_counter() - (t0 + i / rate) > 0.010:
                late += 1
            i += 1
        # Then wait for the next message, and at least a millisecond: waking for each message
        # (at 100,000 msgs/s a sleep of a few microseconds, each a context switch) cost this
        # client 0.6 cores at 60,000 msgs/s, against 0.2 with millisecond ticks. A message waits
        # at most that millisecond before produce(), where its latency starts.
        p.poll(max(t0 + i / rate - time.perf_counter(), 0.001))
    left = p.flush(timeout)
    elapsed = time.perf_counter() - t0
    if left or errors:
        raise BenchError(f"paced produce: {left} unacknowledged, {len(errors)} errors {errors[:3]}")
    return {"msgs": n, "secs": elapsed, "rate": n / elapsed, "late": late,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "max_ms": max(lat) * 1000 if lat else float("nan")}


def raw_fetch_phase(bootstrap: str, topic: str, n: int, size: int, timeout: float, partition: int = 0,
                    min_seconds: float = 1.0) -> dict:
    """Reads partition `partition` of `topic` from offset 0 with Fetch v4 over a plain socket,
    counting records from the batch headers without decoding them: the rate at which the broker
    serves its log, without a client library's per-record work (which bounds the consume phase).
    One pass over 200 MB takes well under 100 ms, so it reads the partition again from offset 0
    until `min_seconds` have passed (at most 100 passes): the figure is then not one scheduling
    hiccup. MB/s counts message values (records x `size`), as the other phases do."""
    import socket
    import struct

    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    buf = bytearray(80 * 1024 * 1024)
    view = memoryview(buf)
    name = topic.encode()

    def read_exact(count: int, into: memoryview) -> None:
        done = 0
        while done < count:
            got = sock.recv_into(into[done:count], count - done)
            if got == 0:
                raise BenchError("raw fetch: the broker closed the connection")
            done += got

    offset, records, correlation, passes = 0, 0, 0, 0
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    try:
        while True:
            if records >= n * (passes + 1):
                passes += 1
                if passes >= 100 or time.perf_counter() - t0 >= min_seconds:
                    break
                offset = 0
            if time.monotonic() > deadline:
                raise BenchError(f"raw fetch: read {records - n * passes} of {n} records in {timeout}s")
            correlation += 1
            body = (struct.pack(">hhi", 1, 4, correlation) + struct.pack(">h", 5) + b"bench"
                    + struct.pack(">iiiib", -1, 500, 1, 64 * 1024 * 1024, 0)
                    + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
                    + struct.pack(">iiqi", 1, partition, offset, 16 * 1024 * 1024))
            sock.sendall(struct.pack(">i", len(body)) + body)
            read_exact(4, view)
            (length,) = struct.unpack_from(">i", buf, 0)
            if length > len(buf):
                raise BenchError(f"raw fetch: a {length}-byte response")
            read_exact(length, view)
            # correlation id, throttle, [topic: name, [partition, error, hw, lso, aborted, records]]
            pos = 4 + 4 + 4
            (tlen,) = struct.unpack_from(">h", buf, pos)
            pos += 2 + tlen + 4
            _, error, _, _, aborted = struct.unpack_from(">ihqqi", buf, pos)
            pos += 4 + 2 + 8 + 8 + 4 + max(aborted, 0) * 16
            if error != 0:
                raise BenchError(f"raw fetch: error {error} at offset {offset}")
            (rlen,) = struct.unpack_from(">i", buf, pos)
            pos += 4
            end = pos + max(rlen, 0)
            while pos + 61 <= end:
                base, blen = struct.unpack_from(">qi", buf, pos)
                if pos + 12 + blen > end:
                    break  # a partial batch at the end of the response
                (last_delta,) = struct.unpack_from(">i", buf, pos + 23)
                if base + last_delta >= offset:
                    records += base + last_delta + 1 - max(base, offset)
                    offset = base + last_delta + 1
                pos += 12 + blen
        elapsed = time.perf_counter() - t0
    finally:
        sock.close()
    return {"msgs": records, "passes": passes, "secs": elapsed, "mb_s": records * size / MB / elapsed,
            "msgs_s": records / elapsed}


def rss_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), 0 when it is gone."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def report_line(name: str, value: str, note: str = "", width: int = 34) -> None:
    """One row of a bench's report: the figure's name, its value right-aligned, then a note."""
    print(f"  {name:<{width}}{value:>16}   {note}")
