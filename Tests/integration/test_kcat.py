"""kcat, built on Debian's librdkafka 2.0.2, works against the broker.

That librdkafka predates several protocol additions and mis-parses tagged fields that Kafka itself
would omit (e.g. in ApiVersions v3 responses), so this is a real compatibility check: `kcat -L`
must list the broker and topics with their partitions, a keyed produce (-P -K) must round-trip
through a consume (-C -e), also with each compression codec kcat offers, and an offset query by
timestamp (-Q) must answer.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from util import create_topic, kcat_can_talk, kcat_path, unique


def kcat(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run([kcat_path(), *args], input=input, capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"kcat {' '.join(args)} failed ({p.returncode}): " \
                              f"{p.stderr.decode(errors='replace')[-2000:]}"
    return p


@pytest.fixture(scope="module")
def kbroker(broker):
    assert kcat_path(), "kcat is not installed (tools/test installs it with apt-get)"
    ok, why = kcat_can_talk(broker.bootstrap)
    if not ok:
        if broker.kind == "tansu":
            pytest.skip("kcat (librdkafka 2.0.2) cannot parse tansu's ApiVersions v3 response")
        pytest.fail(f"kcat -L failed against {broker.kind}: {why}")
    return broker


def test_list_metadata(kbroker):
    topic = unique("kl")
    create_topic(kbroker.bootstrap, topic, 2)
    md = json.loads(kcat("-b", kbroker.bootstrap, "-L", "-J", "-m", "10").stdout)
    brokers = {b["id"]: b["name"] for b in md["brokers"]}
    assert brokers == {kbroker.node_id: kbroker.bootstrap}, f"brokers listed: {md['brokers']}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, f"{topic} not in {sorted(topics)}"
    parts = topics[topic]["partitions"]
    assert sorted(p["partition"] for p in parts) == [0, 1]
    for p in parts:
        assert p["leader"] == kbroker.node_id
        assert [r["id"] for r in p["replicas"]] == [kbroker.node_id]
        assert [r["id"] for r in p["isrs"]] == [kbroker.node_id]
    assert "error" not in topics[topic] or not topics[topic]["error"]

    # The plain-text listing names the broker and the topic's partition count.
    text = kcat("-b", kbroker.bootstrap, "-L", "-t", topic, "-m", "10").stdout.decode()
    assert f"broker {kbroker.node_id} at {kbroker.bootstrap}" in text, text
    assert f'topic "{topic}" with 2 partitions' in text, text


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_produce_consume_roundtrip(kbroker, codec):
    topic = unique(f"kp-{codec}")
    create_topic(kbroker.bootstrap, topic, 1)
    lines = [f"key-{i % 17}:value {i} " + "x" * (i % 50) for i in range(500)]
    lines.append(":no key here")              # empty key
    t0 = int(time.time() * 1000)
    args = ["-b", kbroker.bootstrap, "-P", "-t", topic, "-K", ":", "-X", "acks=all", "-H", "src=kcat"]
    if codec != "none":
        args += ["-z", codec]
    kcat(*args, input=("\n".join(lines) + "\n").encode())
    t1 = int(time.time() * 1000)
    out = kcat("-b", kbroker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-X", "check.crcs=true", "-f", r"%o|%T|%k|%s|%h\n").stdout.decode()
    rows = out.splitlines()
    assert len(rows) == len(lines), f"consumed {len(rows)} of {len(lines)}"
    for i, (row, line) in enumerate(zip(rows, lines)):
        off, ts, key, value, hdrs = row.split("|")
        k, _, v = line.partition(":")
        assert (int(off), key, value, hdrs) == (i, k, v, "src=kcat"), row
        assert t0 - 1000 <= int(ts) <= t1 + 1000


def test_query_offset_by_timestamp(kbroker):
    topic = unique("kq")
    create_topic(kbroker.bootstrap, topic, 1)
    kcat("-b", kbroker.bootstrap, "-P", "-t", topic, "-K", ":", input=b"a:1\nb:2\nc:3\n")
    out = kcat("-b", kbroker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", r"%o %T\n").stdout.decode().split()
    assert len(out) == 6
    first_ts = int(out[1])
    q = kcat("-b", kbroker.bootstrap, "-Q", "-t", f"{topic}:0:{first_ts - 10_000}").stdout.decode()
    assert q.strip() == f"{topic} [0] offset 0", q
