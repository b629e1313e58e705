"""Drop-behind (log.drop.cache.behind.bytes, a Runnel setting): a broker with an 8 MiB window
keeps only about the newest window (and a step) of a partition's written bytes in the page cache.

40 MB produced to one partition: `fincore` (util-linux) then finds well under half of the
segment file resident, and every message still reads back, in order, from disk. Off by
default; with it off the kernel keeps whatever it likes.

Runnel only: it inspects the on-disk files.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from confluent_kafka import Producer

from util import QUIET, create_topic, drain, unique, wait_until

WINDOW = 8 << 20
MESSAGES = 40_000


def resident_bytes(path) -> int:
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


@pytest.fixture
def rnode(require_runnel, node_factory):
    return node_factory({"log.drop.cache.behind.bytes": WINDOW})


def test_drop_behind_keeps_only_the_window_cached(rnode):
    if shutil.which("fincore") is None:
        pytest.fail("fincore (util-linux) is needed to see the page cache")
    topic = unique("cache")
    create_topic(rnode.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": rnode.bootstrap, "acks": "1", "linger.ms": 5, **QUIET})
    for i in range(MESSAGES):
        p.produce(topic, key=b"%d" % i, value=bytes([i % 251]) * 1000, partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    segment = rnode.partition_dir(topic, 0) / f"{0:020d}.log"
    size = segment.stat().st_size
    assert size > 40_000_000
    # The drops run on the broker's background thread: give it a moment.
    resident = wait_until(lambda: (r := resident_bytes(segment)) < size // 2 and r, timeout=10,
                          what="the segment's pages behind the window to leave the page cache")
    assert resident <= WINDOW + (2 << 20) + (4 << 20), f"{resident} of {size} bytes still cached"
    got = drain(rnode.bootstrap, topic, 1, MESSAGES)
    assert [int(m.key) for m in got] == list(range(MESSAGES))
    assert all(m.value == bytes([int(m.key) % 251]) * 1000 for m in got)
