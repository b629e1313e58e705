"""Acknowledged writes survive kill -9, and recovery leaves a clean log.

A confluent-kafka producer (acks=1) writes numbered messages in a loop while the broker is killed
with SIGKILL several times at seeded random moments and restarted on the same data dir. Afterwards
a consumer with check.crcs=true reads every partition from offset 0: every message whose delivery
was acknowledged is at its acknowledged offset with its value, offsets are contiguous from 0 up to
the high watermark, and no batch is corrupt (a torn write at the tail must have been truncated by
recovery, not served). A graceful SIGTERM stop must exit 0 and lose nothing.

Needs a broker with durable storage, so it skips under RUNNEL_PEER=tansu (memory storage).
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from confluent_kafka import Producer

from util import QUIET, create_topic, drain, read_checkpoint, unique, wait_until, watermarks

PARTITIONS = 2


class LoopProducer:
    """Produces value "<seq>:<padding>" round-robin over partitions until stopped, recording the
    (partition, offset) each acknowledged message got."""

    def __init__(self, bootstrap: str, topic: str, seed: int):
        self.topic = topic
        self.rng = random.Random(seed)
        self.acked: dict[int, tuple[int, int, bytes]] = {}
        self.failed: dict[int, str] = {}
        self.produced = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.exc: BaseException | None = None
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 2,
                           "message.timeout.ms": 60000, "queue.buffering.max.messages": 1_000_000,
                           "retry.backoff.ms": 100, "reconnect.backoff.max.ms": 500, **QUIET})
        self.t = threading.Thread(target=self._run, daemon=True)

    def _cb(self, err, msg):
        seq = int(msg.value().split(b":")[0])
        with self.lock:
            if err is None:
                self.acked[seq] = (msg.partition(), msg.offset(), msg.value())
            else:
                self.failed[seq] = str(err)

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                with self.lock:
                    inflight = self.produced - len(self.acked) - len(self.failed)
                if inflight > 20_000:
                    self.p.poll(0.05)
                    continue
                for _ in range(100):
                    seq = self.produced
                    value = b"%d:" % seq + self.rng.randbytes(self.rng.randint(10, 400)).hex().encode()
                    try:
                        self.p.produce(self.topic, value=value, partition=seq % PARTITIONS, on_delivery=self._cb)
                    except BufferError:
                        break
                    self.produced += 1
                self.p.poll(0.001)
        except BaseException as e:  # noqa: BLE001
            self.exc = e

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def start(self):
        self.t.start()
        return self

    def finish(self, timeout: float = 90.0):
        self.stop_ev.set()
        self.t.join(30)
        assert self.exc is None, f"producer thread raised {self.exc!r}"
        left = self.p.flush(timeout)
        assert left == 0, f"{left} messages neither acknowledged nor failed after {timeout}s"


@pytest.fixture
def durable(require_runnel, node_factory):
    return node_factory()


def test_kill9_mid_produce_keeps_acknowledged_writes(durable):
    node = durable
    topic = unique("crash")
    create_topic(node.bootstrap, topic, PARTITIONS)
    rng = random.Random(99)
    lp = LoopProducer(node.bootstrap, topic, seed=100).start()
    try:
        target = 3000
        for cycle in range(3):
            wait_until(lambda: lp.acked_count() >= target, 120, 0.01,
                       f"{target} acknowledged messages before kill #{cycle + 1}")
            time.sleep(rng.uniform(0.0, 0.3))
            node.kill9()
            time.sleep(rng.uniform(0.1, 1.0))
            node.restart()
            target = lp.acked_count() + 3000   # the broker must take writes again after recovery
        wait_until(lambda: lp.acked_count() >= target, 120, 0.05, "writes after the last restart")
    finally:
        lp.finish()

    assert len(lp.acked) >= 9000

    # Everything from 0 to the high watermark is readable, contiguous and CRC-clean.
    highs = {}
    for p in range(PARTITIONS):
        lo, hi = watermarks(node.bootstrap, topic, p)
        assert lo == 0, f"partition {p} starts at {lo}"
        highs[p] = hi
    msgs = drain(node.bootstrap, topic, PARTITIONS, sum(highs.values()), timeout=120,
                 conf={"check.crcs": True, "fetch.max.bytes": 8 * 1024 * 1024})
    stored: dict[tuple[int, int], bytes] = {}
    for m in msgs:
        assert (m.partition, m.offset) not in stored, f"offset {m.partition}@{m.offset} read twice"
        stored[(m.partition, m.offset)] = m.value
    for p in range(PARTITIONS):
        offs = sorted(o for (pp, o) in stored if pp == p)
        assert offs == list(range(highs[p])), f"partition {p}: offsets not contiguous 0..{highs[p] - 1}"

    # Every acknowledged message is where the broker said it put it.
    missing = [(seq, p, o) for seq, (p, o, v) in lp.acked.items() if stored.get((p, o)) != v]
    assert not missing, f"{len(missing)} acknowledged messages lost or moved, e.g. {missing[:5]} " \
                        f"(stored there: {[stored.get((p, o), b'')[:20] for _, p, o in missing[:5]]})"
    # Each partition got its own sequence numbers, in order (duplicates from retries allowed).
    for (p, o), v in stored.items():
        assert int(v.split(b":")[0]) % PARTITIONS == p


def test_sigterm_stop_is_graceful_and_loses_nothing(durable):
    node = durable
    topic = unique("term")
    create_topic(node.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5, **QUIET})
    values = [b"m%05d" % i for i in range(2000)]
    acks = []
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda e, m: acks.append((e, m.offset())))
    assert p.flush(30) == 0
    assert all(e is None for e, _ in acks) and sorted(o for _, o in acks) == list(range(2000))
    t0 = time.monotonic()
    rc = node.stop(timeout=30)
    assert rc == 0, f"SIGTERM exit code {rc}; log tail:\n{node.log_tail()}"
    assert time.monotonic() - t0 < 30
    node.restart()
    msgs = drain(node.bootstrap, topic, 1, len(values), conf={"check.crcs": True})
    assert [(m.offset, m.value) for m in msgs] == list(enumerate(values))
    # And it takes writes again.
    p2 = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", **QUIET})
    res = []
    p2.produce(topic, value=b"after", on_delivery=lambda e, m: res.append((e, m.offset())))
    assert p2.flush(30) == 0
    assert res == [(None, 2000)]


def test_rolled_segments_are_flushed_and_checkpointed(require_runnel, node_factory):
    """As Kafka flushes a log up to a new segment when it rolls, whatever the flush policy (off by
    default): the recovery point follows the rolls, so after a crash recovery re-reads only the
    active segment. The recovery-point checkpoint shows it, and a kill -9 then loses nothing."""
    node = node_factory({"log.flush.offset.checkpoint.interval.ms": 200})
    topic = unique("rollflush")
    create_topic(node.bootstrap, topic, 1, config={"segment.bytes": str(64 * 1024)})
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": 1, "linger.ms": 2, "batch.size": 16384, **QUIET})
    values = [b"%06d:" % i + b"x" * 1000 for i in range(1000)]
    for v in values:
        p.produce(topic, value=v)
    assert p.flush(30) == 0
    part_dir = node.data_dir / f"{topic}-0"
    segments = sorted(int(f.stem) for f in part_dir.glob("*.log"))
    assert len(segments) >= 10, f"segment.bytes=64 KiB should have rolled ~15 times: {segments}"
    active_base = segments[-1]
    checkpoint = node.data_dir / "recovery-point-offset-checkpoint"

    def flushed() -> bool:
        return checkpoint.exists() and read_checkpoint(checkpoint).get((topic, 0), -1) >= active_base

    wait_until(flushed, 15, 0.1, f"a recovery point of at least {active_base} (the active segment's base) "
                                 f"in {checkpoint}")
    node.kill9()
    node.restart()
    msgs = drain(node.bootstrap, topic, 1, len(values), conf={"check.crcs": True})
    assert [(m.offset, m.value) for m in msgs] == list(enumerate(values))


def test_a_failed_log_write_stops_the_broker_and_loses_nothing(require_runnel, node_factory):
    """A write the file system refuses stops the broker, as Kafka halts when its log dir fails:
    exit code 1, no clean shutdown. Here the process's file-size limit (RLIMIT_FSIZE, writes past
    it fail with EFBIG) stands in for a full disk. Restarted with room, the broker has every
    acknowledged message at its offset, offsets contiguous, CRCs clean: the refused write left
    nothing behind."""
    limit = 3 * 1024 * 1024
    node = node_factory(start=False)
    node.file_size_limit = limit
    node.start()
    topic = unique("refused")
    create_topic(node.bootstrap, topic, 1)
    acked: dict[int, bytes] = {}

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()

    p = Producer({"bootstrap.servers": node.bootstrap, "acks": 1, "linger.ms": 1, "batch.size": 65536,
                  "message.timeout.ms": 5000, "retries": 0, **QUIET})
    payload = b"y" * 1000
    for i in range(6000):   # ~6 MB into a 3 MB limit
        p.produce(topic, value=b"%06d:" % i + payload, on_delivery=on_delivery)
        p.poll(0)
        if node.proc.poll() is not None:
            break
        if i % 200 == 0:
            time.sleep(0.01)
    p.flush(15)
    assert node.proc.wait(30) == 1, f"exit code {node.proc.returncode}; log tail:\n{node.log_tail()}"
    log = node.log_path.read_text(errors="replace")
    assert "stopping the node (no clean shutdown)" in log, node.log_tail()
    assert "File too large" in log or "EFBIG" in log, node.log_tail()
    assert len(acked) > 1000, f"only {len(acked)} acknowledged before the limit"

    node.file_size_limit = None
    node.restart()
    lo, hi = watermarks(node.bootstrap, topic, 0)
    assert lo == 0 and hi >= max(acked) + 1
    msgs = drain(node.bootstrap, topic, 1, hi, conf={"check.crcs": True})
    stored = {m.offset: m.value for m in msgs}
    assert sorted(stored) == list(range(hi)), "offsets not contiguous after the refused write"
    lost = [o for o, v in acked.items() if stored.get(o) != v]
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. offsets {lost[:5]}"
