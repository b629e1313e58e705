"""The everyday client tools of `runnel` (topic, produce, consume, group, cluster) against a real
node, each checked against what confluent-kafka (librdkafka) sees or does.

- `runnel topic create|list|describe|alter-config|delete`: partition counts, leaders and configs
  equal what confluent-kafka's AdminClient reports; --json carries the documented fields.
- `runnel produce`: 100 keyed lines with headers read back by confluent-kafka byte for byte, each
  key in the partition confluent-kafka's producer picks with partitioner=murmur2_random; keyless
  lines round-robin; --partition; --acks 0, 1 and all.
- `runnel consume`: what confluent-kafka produced (uncompressed, gzip, snappy, lz4, zstd) comes
  out of `--from-beginning --print-key --print-headers --json` exactly; the text layout; a batch
  whose payload does not decompress is refused with one sentence.
- `runnel consume --group`: a second run resumes after the first's committed offsets; two runnel
  members share the partitions (a rebalance) and together read everything.
- `runnel group list|describe|reset-offsets|delete`: a confluent-kafka member shows up with its
  client id and assignment, lag right after producing, reset refused while the group has a member
  and, once it is empty, `--to-earliest --execute` makes a consumer read again from 0.
- `runnel cluster describe`: cluster id and brokers as the node and confluent-kafka know them.
- Failures (unreachable bootstrap, unknown topic, topic exists, bad --acks and other bad
  arguments) exit 1 with one sentence on stderr and no crash dump.

Runnel only (skips under RUNNEL_PEER=tansu or external: it runs the runnel binary).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import ConfigResource

from cluster import SESSION_TIMEOUT_MS, start_cluster
from nodes import free_ports, runnel_bin
import kwire
from util import QUIET, admin, create_topic, drain, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against a Runnel node")

CRASH_MARKERS = ("Fatal error", "Stack dump", "Backtrace", "Current stack trace", "Illegal instruction",
                 "Segmentation fault", "PLEASE submit a bug report")

NODE_PROPS = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 4,
    "auto.create.topics.enable": "false",
}


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory(NODE_PROPS)


def runnel(*args, input: str | bytes | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    text = not isinstance(input, bytes)
    return subprocess.run([str(runnel_bin()), *map(str, args)], capture_output=True, text=text, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def ok(*args, **kw) -> subprocess.CompletedProcess:
    p = runnel(*args, **kw)
    assert p.returncode == 0, f"runnel {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}"
    return p


def ok_json(*args, **kw):
    return json.loads(ok(*args, "--json", **kw).stdout)


def json_lines(p: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def one_sentence_failure(p: subprocess.CompletedProcess, *needles: str) -> str:
    stderr = p.stderr if isinstance(p.stderr, str) else p.stderr.decode()
    assert p.returncode == 1, f"exit code {p.returncode}, want 1; stdout:\n{p.stdout}\nstderr:\n{stderr}"
    for m in CRASH_MARKERS:
        assert m not in stderr, f"a crash, not an error message:\n{stderr}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("runnel: ") and line.endswith("."), line
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in {line!r}"
    assert len(line) <= 400, line
    return line


def confluent_consumer(bootstrap: str, group: str, **conf) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     **QUIET, **conf})


def produce_confluent(bootstrap: str, topic: str, messages: list[dict], **conf) -> list[tuple[int, int]]:
    """Produces each {key, value, headers, partition?}; returns (partition, offset) per message in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, **QUIET, **conf})
    placed: dict[int, tuple[int, int]] = {}
    errors = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                placed[i] = (msg.partition(), msg.offset())
        return cb

    for i, m in enumerate(messages):
        kw = {"partition": m["partition"]} if "partition" in m else {}
        p.produce(topic, key=m.get("key"), value=m.get("value"), headers=m.get("headers"), on_delivery=report(i), **kw)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors
    return [placed[i] for i in range(len(messages))]


# -- topics ---------------------------------------------------------------------------------------

def test_topic_create_list_describe_alter_delete(node):
    b = node.bootstrap
    name = unique("cli-topic")
    created = ok_json("topic", "create", name, "--partitions", 3, "--replication-factor", 1,
                      "--config", "retention.ms=123456", "--config", "max.message.bytes=65536", "--bootstrap-server", b)
    assert set(created) == {"name", "topicId", "partitions", "replicationFactor", "configs"}
    assert created["name"] == name and created["partitions"] == 3 and created["replicationFactor"] == 1
    assert len(created["topicId"]) == 22
    assert created["configs"] == {"retention.ms": "123456", "max.message.bytes": "65536"}

    a = admin(b)
    md = a.list_topics(name, timeout=10).topics[name]
    assert md.error is None and len(md.partitions) == 3

    assert name in ok("topic", "list", "--bootstrap-server", b).stdout.splitlines()
    listed = {t["name"]: t for t in ok_json("topic", "list", "--bootstrap-server", b)}
    assert listed[name] == {"name": name, "topicId": created["topicId"], "partitions": 3, "replicationFactor": 1, "internal": False}

    desc = ok_json("topic", "describe", name, "--bootstrap-server", b)
    assert set(desc) == {"name", "topicId", "internal", "partitionCount", "replicationFactor", "configs", "partitions"}
    assert desc["topicId"] == created["topicId"] and desc["partitionCount"] == 3 and desc["replicationFactor"] == 1
    assert [p["partition"] for p in desc["partitions"]] == [0, 1, 2]
    for p in desc["partitions"]:
        assert set(p) == {"partition", "leader", "leaderEpoch", "replicas", "isr", "offlineReplicas"}
        assert p["leader"] == md.partitions[p["partition"]].leader
        assert p["replicas"] == list(md.partitions[p["partition"]].replicas)
        assert p["isr"] == list(md.partitions[p["partition"]].isrs)
    configs = {c["name"]: c for c in desc["configs"]}
    assert {k: c["value"] for k, c in configs.items()} == {"retention.ms": "123456", "max.message.bytes": "65536"}
    assert all(c["source"] == "DYNAMIC_TOPIC_CONFIG" and set(c) == {"name", "value", "source", "readOnly", "sensitive"}
               for c in configs.values())
    text = ok("topic", "describe", name, "--bootstrap-server", b).stdout
    assert f"Topic: {name}\tTopicId: {created['topicId']}\tPartitionCount: 3\tReplicationFactor: 1" in text
    assert "retention.ms=123456" in text and f"Partition: 2\tLeader: {md.partitions[2].leader}" in text
    everything = {c["name"] for c in ok_json("topic", "describe", name, "--all-configs", "--bootstrap-server", b)["configs"]}
    assert {"retention.ms", "cleanup.policy", "segment.bytes"} <= everything

    altered = ok_json("topic", "alter-config", name, "--set", "retention.ms=999", "--set", "segment.ms=600000",
                      "--delete", "max.message.bytes", "--bootstrap-server", b)
    assert altered == {"name": name, "set": {"retention.ms": "999", "segment.ms": "600000"}, "deleted": ["max.message.bytes"]}
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    seen = a.describe_configs([res])[res].result(10)
    assert seen["retention.ms"].value == "999" and seen["segment.ms"].value == "600000"
    assert seen["max.message.bytes"].is_default or seen["max.message.bytes"].source != 1
    after = {c["name"]: c["value"] for c in ok_json("topic", "describe", name, "--bootstrap-server", b)["configs"]}
    assert after == {"retention.ms": "999", "segment.ms": "600000"}

    assert ok_json("topic", "delete", name, "--bootstrap-server", b) == {"name": name, "deleted": True}
    wait_until(lambda: name not in a.list_topics(timeout=10).topics, 30, 0.2, "the topic to be gone")
    one_sentence_failure(runnel("topic", "describe", name, "--bootstrap-server", b), name, "does not exist")


def test_topic_errors(node):
    b = node.bootstrap
    name = unique("cli-dup")
    ok("topic", "create", name, "--partitions", 1, "--bootstrap-server", b)
    one_sentence_failure(runnel("topic", "create", name, "--partitions", 1, "--bootstrap-server", b), name, "already exists")
    one_sentence_failure(runnel("topic", "delete", unique("nope"), "--bootstrap-server", b), "does not exist")
    one_sentence_failure(runnel("topic", "alter-config", unique("nope"), "--set", "retention.ms=1", "--bootstrap-server", b), "does not exist")
    one_sentence_failure(runnel("topic", "alter-config", name, "--set", "retention.ms=soon", "--bootstrap-server", b), "retention.ms")
    one_sentence_failure(runnel("topic", "create", unique("bad"), "--config", "no-equals", "--bootstrap-server", b), "--config", "key=value")
    one_sentence_failure(runnel("topic", "create", unique("bad"), "--partitions", 0, "--bootstrap-server", b), "--partitions")
    one_sentence_failure(runnel("topic", "create", unique("bad"), "--config", "no.such.config=1", "--bootstrap-server", b), "no.such.config")
    one_sentence_failure(runnel("topic", "alter-config", name, "--bootstrap-server", b), "--set")
    one_sentence_failure(runnel("topic", "create", "--partitions", 1, "--bootstrap-server", b), "missing")
    one_sentence_failure(runnel("topic", "list"), "--bootstrap-server")
    one_sentence_failure(runnel("topic", "list", "--bootstrap-server", "no-port"), "host:port")


# -- produce --------------------------------------------------------------------------------------

def test_produce_keyed_lines_land_where_murmur2_puts_them(node):
    b = node.bootstrap
    topic, twin = unique("cli-prod"), unique("cli-twin")
    create_topic(b, topic, 6)
    create_topic(b, twin, 6)
    keys = [f"key-{i}" for i in range(100)]
    lines = "".join(f"{k}\tvalue {i} \u00e9\n" for i, k in enumerate(keys))
    summary = ok_json("produce", topic, "--key-separator", "\t", "--header", "h1=v1", "--header", "app=runnel cli",
                      "--bootstrap-server", b, input=lines)
    assert set(summary) == {"topic", "records", "written", "failed", "partitions", "errors"}
    assert summary["records"] == 100 and summary["written"] == 100 and summary["failed"] == 0 and summary["errors"] == []
    assert sum(p["records"] for p in summary["partitions"]) == 100
    for p in summary["partitions"]:
        assert set(p) == {"partition", "records", "firstOffset", "lastOffset"}
        assert p["firstOffset"] == 0 and p["lastOffset"] == p["records"] - 1

    # Where librdkafka's murmur2_random partitioner (the Java client's default) puts each key.
    expected = produce_confluent(b, twin, [{"key": k.encode(), "value": b"x"} for k in keys], partitioner="murmur2_random")
    msgs = drain(b, topic, 6, 100)
    assert len(msgs) == 100
    by_key = {m.key.decode(): m for m in msgs}
    assert set(by_key) == set(keys)
    for i, k in enumerate(keys):
        m = by_key[k]
        assert m.value == f"value {i} \u00e9".encode()
        assert m.headers == [("h1", b"v1"), ("app", b"runnel cli")]
        assert m.partition == expected[i][0], f"{k}: runnel put it in {m.partition}, murmur2 in {expected[i][0]}"
    assert len({m.partition for m in msgs}) > 1


def test_produce_keyless_partition_and_acks(node):
    b = node.bootstrap
    topic = unique("cli-rr")
    create_topic(b, topic, 3)
    ok("produce", topic, "--bootstrap-server", b, input="".join(f"rr-{i}\n" for i in range(9)))
    msgs = drain(b, topic, 3, 9)
    assert sorted(m.value for m in msgs) == sorted(f"rr-{i}".encode() for i in range(9))
    assert sorted(sum(1 for m in msgs if m.partition == p) for p in range(3)) == [3, 3, 3], "round-robin spreads evenly"
    assert all(m.key is None for m in msgs)

    text = ok("produce", topic, "--partition", 1, "--acks", "1", "--bootstrap-server", b, input="one\ntwo\r\nthree").stdout
    assert text.strip() == f"Wrote 3 records to topic {topic}."
    ok("produce", topic, "--partition", 2, "--acks", "0", "--bootstrap-server", b, input="zero-a\nzero-b\n")
    summary = ok_json("produce", topic, "--partition", 0, "--acks", "all", "--bootstrap-server", b, input="\n")
    assert summary["partitions"] == [{"partition": 0, "records": 1, "firstOffset": 3, "lastOffset": 3}]
    msgs = drain(b, topic, 3, 15)
    assert [m.value for m in msgs if m.partition == 1 and m.offset >= 3] == [b"one", b"two", b"three"]
    assert [m.value for m in msgs if m.partition == 2 and m.offset >= 3] == [b"zero-a", b"zero-b"]
    assert [m.value for m in msgs if m.partition == 0 and m.offset == 3] == [b""]


def test_produce_errors(node):
    b = node.bootstrap
    topic = unique("cli-perr")
    create_topic(b, topic, 2)
    one_sentence_failure(runnel("produce", unique("nope"), "--bootstrap-server", b, input="x\n"), "does not exist")
    one_sentence_failure(runnel("produce", topic, "--acks", "2", "--bootstrap-server", b, input="x\n"), "--acks", "0, 1 or all")
    one_sentence_failure(runnel("produce", topic, "--partition", 5, "--bootstrap-server", b, input="x\n"), "partition 5", "2 partitions")
    one_sentence_failure(runnel("produce", topic, "--header", "novalue", "--bootstrap-server", b, input="x\n"), "--header")
    one_sentence_failure(runnel("produce", topic, "--key-separator", ":", "--bootstrap-server", b, input="k:v\nno separator\n"),
                         "line 2", "key separator")
    # Batches refused by the broker are reported one line each (here: a record over max.message.bytes).
    small = unique("cli-small")
    create_topic(b, small, 1, config={"max.message.bytes": 2000})
    p = runnel("produce", small, "--bootstrap-server", b, input="x" * 5000 + "\n")
    line = one_sentence_failure(p, "1 record", "not written", "partition 0")
    assert "MESSAGE_TOO_LARGE" in line or "RECORD_LIST_TOO_LARGE" in line, line


# -- consume --------------------------------------------------------------------------------------

def confluent_messages(n: int) -> list[dict]:
    out = []
    for i in range(n):
        m = {"value": f"value-{i}-{'z' * (i % 7)}".encode(), "headers": [("idx", str(i).encode()), ("empty", b"")]}
        if i % 5 != 0:
            m["key"] = f"k{i % 13}".encode()
        if i % 11 == 0:
            m["headers"] = []
        if i % 17 == 0:
            m["value"] = None
        out.append(m)
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_consume_json_equals_what_confluent_produced(node, codec):
    b = node.bootstrap
    topic = unique(f"cli-cons-{codec}")
    create_topic(b, topic, 3)
    messages = confluent_messages(300)
    placed = produce_confluent(b, topic, messages, **{"compression.type": codec, "batch.num.messages": 50})
    p = ok("consume", topic, "--from-beginning", "--print-key", "--print-headers", "--json", "--max-messages", 300,
           "--timeout-ms", 10000, "--bootstrap-server", b)
    got = json_lines(p)
    assert len(got) == 300
    for r in got:
        assert set(r) == {"topic", "partition", "offset", "timestamp", "timestampType", "key", "value", "headers"}
        assert r["topic"] == topic and r["timestampType"] == "CreateTime" and r["timestamp"] > 0
    want = {}
    for m, (part, off) in zip(messages, placed):
        want[(part, off)] = {
            "key": m["key"].decode() if m.get("key") is not None else None,
            "value": m["value"].decode() if m["value"] is not None else None,
            "headers": [{"key": k, "value": v.decode()} for k, v in m["headers"]],
        }
    have = {(r["partition"], r["offset"]): {"key": r["key"], "value": r["value"], "headers": r["headers"]} for r in got}
    assert have == want
    # Per partition in offset order.
    for part in range(3):
        offsets = [r["offset"] for r in got if r["partition"] == part]
        assert offsets == sorted(offsets)


def test_consume_text_layout_partition_and_offset(node):
    b = node.bootstrap
    topic = unique("cli-text")
    create_topic(b, topic, 2)
    produce_confluent(b, topic, [
        {"key": b"a", "value": b"first", "headers": [("h", b"1"), ("g", b"2")], "partition": 1},
        {"key": None, "value": b"second", "partition": 1},
        {"key": b"c", "value": None, "partition": 1},
        {"key": b"z", "value": b"other", "partition": 0},
    ])
    out = ok("consume", topic, "--from-beginning", "--partition", 1, "--print-key", "--print-headers", "--print-offset",
             "--timeout-ms", 3000, "--bootstrap-server", b).stdout.splitlines()
    assert out == ["Partition:1\tOffset:0\th:1,g:2\ta\tfirst",
                   "Partition:1\tOffset:1\tNO_HEADERS\tnull\tsecond",
                   "Partition:1\tOffset:2\tNO_HEADERS\tc\tnull"]
    plain = ok("consume", topic, "--partition", 1, "--offset", 1, "--max-messages", 1, "--bootstrap-server", b).stdout
    assert plain == "second\n"
    # Without --from-beginning it starts at the end: nothing old, then what is produced meanwhile.
    proc = subprocess.Popen([str(runnel_bin()), "consume", topic, "--json", "--max-messages", "1", "--timeout-ms", "20000",
                             "--bootstrap-server", b], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        produce_confluent(b, topic, [{"key": b"n", "value": b"new", "partition": 0}])
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert [(r["partition"], r["value"]) for r in map(json.loads, stdout.splitlines())] == [(0, "new")]


def test_consume_refuses_a_corrupt_batch_with_one_sentence(node):
    """A batch marked zstd whose payload is not zstd (CRC intact) stops the consumer with one
    sentence naming the partition, not a crash."""
    b = node.bootstrap
    topic = unique("cli-corrupt")
    create_topic(b, topic, 1)
    batch = bytearray(kwire.record_batch([kwire.Rec(b"k", b"not squeezed")], attributes=4))
    with kwire.Conn.to(b, 10) as c:
        c.send(kwire.produce_v9_request(5, topic, 0, bytes(batch)))
        _, results, _ = kwire.parse_produce_v9(c.recv_frame(15))
    assert results[topic][0].error_code == 0, results
    one_sentence_failure(runnel("consume", topic, "--from-beginning", "--timeout-ms", 5000, "--bootstrap-server", b),
                         "zstd", "partition 0")


def test_consume_errors(node):
    b = node.bootstrap
    topic = unique("cli-cerr")
    create_topic(b, topic, 2)
    one_sentence_failure(runnel("consume", unique("nope"), "--timeout-ms", 100, "--bootstrap-server", b), "does not exist")
    one_sentence_failure(runnel("consume", topic, "--offset", 3, "--bootstrap-server", b), "--offset needs --partition")
    one_sentence_failure(runnel("consume", topic, "--partition", 7, "--timeout-ms", 100, "--bootstrap-server", b), "partition 7")
    one_sentence_failure(runnel("consume", topic, "--group", "g", "--partition", 0, "--bootstrap-server", b), "--group")
    one_sentence_failure(runnel("consume", topic, "--max-messages", 0, "--bootstrap-server", b), "--max-messages")
    one_sentence_failure(runnel("consume", topic, "--partition", 0, "--offset", "soon", "--bootstrap-server", b), "--offset")


# -- consumer groups ------------------------------------------------------------------------------

def test_consume_group_resumes_after_committed_offsets(node):
    b = node.bootstrap
    topic, group = unique("cli-grp"), unique("cli-g")
    create_topic(b, topic, 3)
    placed = produce_confluent(b, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(30)])
    first = json_lines(ok("consume", topic, "--group", group, "--from-beginning", "--max-messages", 12, "--json",
                          "--bootstrap-server", b))
    assert len(first) == 12
    described = ok_json("group", "describe", group, "--bootstrap-server", b)
    assert described["state"] == "Empty" and described["members"] == []
    committed = {o["partition"]: o["committedOffset"] for o in described["offsets"]}
    # What was committed is exactly what was printed: per partition, one past the last offset read.
    for part in {r["partition"] for r in first}:
        assert committed[part] == max(r["offset"] for r in first if r["partition"] == part) + 1

    second = json_lines(ok("consume", topic, "--group", group, "--from-beginning", "--timeout-ms", 3000, "--json",
                           "--bootstrap-server", b))
    seen = [(r["partition"], r["offset"]) for r in first + second]
    assert len(seen) == len(set(seen)) == 30, "every message once over the two runs"
    assert set(seen) == set(placed)
    final = ok_json("group", "describe", group, "--bootstrap-server", b)
    assert all(o["lag"] == 0 and o["committedOffset"] == o["logEndOffset"] for o in final["offsets"])
    assert {o["partition"] for o in final["offsets"]} == {0, 1, 2}


def test_two_runnel_members_share_the_partitions(node):
    b = node.bootstrap
    topic, group = unique("cli-share"), unique("cli-s")
    create_topic(b, topic, 4)
    placed = produce_confluent(b, topic, [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(40)])
    argv = [str(runnel_bin()), "consume", topic, "--group", group, "--from-beginning", "--json", "--timeout-ms", "15000",
            "--bootstrap-server", b]
    a = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(ok_json("group", "describe", group, "--bootstrap-server", b)["members"]) == 1, 30, 0.3,
                   "the first member to join")
        c = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def two_members():
                d = ok_json("group", "describe", group, "--bootstrap-server", b)
                return d if d["state"] == "Stable" and len(d["members"]) == 2 else None
            d = wait_until(two_members, 30, 0.3, "both members in a Stable group")
            owned = [sorted(p for tp in m["assignment"] for p in tp["partitions"]) for m in d["members"]]
            assert sorted(owned) == [[0, 1], [2, 3]], owned  # the range assignor over 4 partitions
            more = produce_confluent(b, topic, [{"key": f"m{i}".encode(), "value": f"more{i}".encode()} for i in range(40)])
            out_c, err_c = c.communicate(timeout=60)
        finally:
            c.kill()
        out_a, err_a = a.communicate(timeout=60)
    finally:
        a.kill()
    assert a.returncode == 0 and c.returncode == 0, (err_a, err_c)
    seen = {(r["partition"], r["offset"]) for r in map(json.loads, (out_a + out_c).splitlines())}
    assert seen == set(placed) | set(more), "together the two members read everything (at least once)"
    final = ok_json("group", "describe", group, "--bootstrap-server", b)
    assert final["members"] == [] and all(o["lag"] == 0 for o in final["offsets"])


def test_runnel_and_confluent_members_share_a_group(node):
    """The consumer protocol both ways: a confluent-kafka leader assigns to the runnel member,
    then the runnel member, alone, assigns to itself."""
    b = node.bootstrap
    topic, group = unique("cli-mix"), unique("cli-mix")
    create_topic(b, topic, 4)
    c = confluent_consumer(b, group, **{"partition.assignment.strategy": "range", "client.id": "confluent-member"})
    proc = None
    try:
        c.subscribe([topic])
        wait_until(lambda: (c.poll(0.1), len(c.assignment()) == 4)[1], 30, 0, "the confluent member to own all 4 partitions")
        proc = subprocess.Popen([str(runnel_bin()), "consume", topic, "--group", group, "--json", "--timeout-ms", "12000",
                                 "--bootstrap-server", b], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def shared():
            c.poll(0.1)
            d = ok_json("group", "describe", group, "--bootstrap-server", b)
            if d["state"] != "Stable" or len(d["members"]) != 2:
                return None
            return {m["clientId"]: sorted(p for tp in m["assignment"] for p in tp["partitions"]) for m in d["members"]}
        owners = wait_until(shared, 45, 0, "a Stable group of the two members")
        assert sorted(owners) == ["confluent-member", "runnel-cli"]
        assert sorted(owners["confluent-member"] + owners["runnel-cli"]) == [0, 1, 2, 3] and len(owners["runnel-cli"]) == 2
    finally:
        c.close()

    def alone():
        d = ok_json("group", "describe", group, "--bootstrap-server", b)
        if d["state"] == "Stable" and len(d["members"]) == 1:
            return d["members"][0]
        return None
    member = wait_until(alone, 30, 0.3, "the runnel member alone in the group")
    assert member["clientId"] == "runnel-cli" and member["assignment"] == [{"topic": topic, "partitions": [0, 1, 2, 3]}]
    placed = produce_confluent(b, topic, [{"value": f"late{i}".encode(), "partition": i % 4} for i in range(8)])
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert {(r["partition"], r["offset"]) for r in map(json.loads, stdout.splitlines())} >= set(placed)


def test_ctrl_c_commits_and_leaves_the_group(node):
    b = node.bootstrap
    topic, group = unique("cli-int"), unique("cli-int")
    create_topic(b, topic, 2)
    produce_confluent(b, topic, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(20)])
    proc = subprocess.Popen([str(runnel_bin()), "consume", topic, "--group", group, "--from-beginning", "--bootstrap-server", b],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def caught_up():
            d = ok_json("group", "describe", group, "--bootstrap-server", b)
            return d["state"] == "Stable" and d["offsets"] and all(o["lag"] == 0 for o in d["offsets"])
        wait_until(caught_up, 30, 0.3, "the member to read and commit everything")
        proc.send_signal(2)  # SIGINT
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and stderr == "", stderr
    assert sorted(stdout.split()) == sorted(f"v{i}" for i in range(20))
    # LeaveGroup: empty at once, not after the session timeout.
    d = ok_json("group", "describe", group, "--bootstrap-server", b)
    assert d["state"] == "Empty" and d["members"] == []
    assert {o["partition"]: o["committedOffset"] for o in d["offsets"]} == {0: 10, 1: 10}


def test_group_describe_reset_and_delete_with_a_confluent_member(node):
    b = node.bootstrap
    topic, group = unique("cli-gd"), unique("cli-gd")
    create_topic(b, topic, 2)
    produce_confluent(b, topic, [{"value": f"v{i}".encode(), "partition": i % 2} for i in range(10)])
    c = confluent_consumer(b, group, **{"client.id": "cli-test-member"})
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 10 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got += 1
        assert got == 10
        c.commit(asynchronous=False)
        produce_confluent(b, topic, [{"value": b"late", "partition": 0}] * 3 + [{"value": b"late", "partition": 1}] * 2)

        d = ok_json("group", "describe", group, "--bootstrap-server", b)
        assert set(d) == {"groupId", "state", "protocolType", "protocol", "coordinator", "members", "offsets"}
        assert d["state"] == "Stable" and d["protocolType"] == "consumer" and d["protocol"] == "range"
        assert d["coordinator"]["id"] == 1 and d["coordinator"]["port"] == node.port
        [member] = d["members"]
        assert set(member) == {"memberId", "groupInstanceId", "clientId", "clientHost", "assignment"}
        assert member["clientId"] == "cli-test-member" and member["clientHost"]
        assert member["assignment"] == [{"topic": topic, "partitions": [0, 1]}]
        rows = {o["partition"]: o for o in d["offsets"]}
        assert rows[0]["committedOffset"] == 5 and rows[0]["logEndOffset"] == 8 and rows[0]["lag"] == 3
        assert rows[1]["committedOffset"] == 5 and rows[1]["logEndOffset"] == 7 and rows[1]["lag"] == 2
        assert rows[0]["memberId"] == member["memberId"] and rows[0]["clientId"] == "cli-test-member"
        text = ok("group", "describe", group, "--bootstrap-server", b).stdout
        assert "State:       Stable" in text and "CURRENT-OFFSET" in text and "cli-test-member" in text
        listed = {g["groupId"]: g for g in ok_json("group", "list", "--bootstrap-server", b)}
        assert listed[group] == {"groupId": group, "state": "Stable", "protocolType": "consumer", "coordinatorId": 1}

        # A reset needs an empty group: refused while the member is there, the plan still printable.
        one_sentence_failure(runnel("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
                                    "--bootstrap-server", b), group, "Stable", "stop its consumers")
        plan = ok_json("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--bootstrap-server", b)
        assert plan["executed"] is False
        assert plan["partitions"] == [{"topic": topic, "partition": 0, "currentOffset": 5, "newOffset": 0},
                                      {"topic": topic, "partition": 1, "currentOffset": 5, "newOffset": 0}]
        one_sentence_failure(runnel("group", "delete", group, "--bootstrap-server", b), "still has members")
    finally:
        c.close()

    wait_until(lambda: ok_json("group", "describe", group, "--bootstrap-server", b)["state"] == "Empty", 30, 0.3, "an empty group")
    latest = ok_json("group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-latest", "--bootstrap-server", b)
    assert latest["partitions"] == [{"topic": topic, "partition": 1, "currentOffset": 5, "newOffset": 7}]
    done = ok_json("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "--bootstrap-server", b)
    assert done["executed"] is True
    rows = {o["partition"]: o["committedOffset"] for o in ok_json("group", "describe", group, "--bootstrap-server", b)["offsets"]}
    assert rows == {0: 0, 1: 0}
    # A consumer of the group reads everything again from offset 0.
    again = confluent_consumer(b, group)
    try:
        again.subscribe([topic])
        offsets = []
        deadline = time.monotonic() + 30
        while len(offsets) < 15 and time.monotonic() < deadline:
            m = again.poll(0.2)
            if m is not None and m.error() is None:
                offsets.append((m.partition(), m.offset()))
        assert sorted(offsets) == sorted([(0, o) for o in range(8)] + [(1, o) for o in range(7)])
    finally:
        again.close()
    ok_json("group", "reset-offsets", group, "--topic", topic, "--to-offset", 4, "--execute", "--bootstrap-server", b)
    rows = {o["partition"]: o["committedOffset"] for o in ok_json("group", "describe", group, "--bootstrap-server", b)["offsets"]}
    assert rows == {0: 4, 1: 4}
    assert ok_json("group", "delete", group, "--bootstrap-server", b) == {"groupId": group, "deleted": True}
    assert group not in {g["groupId"] for g in ok_json("group", "list", "--bootstrap-server", b)}
    one_sentence_failure(runnel("group", "describe", group, "--bootstrap-server", b), group, "does not exist")
    one_sentence_failure(runnel("group", "delete", group, "--bootstrap-server", b), "does not exist")


def test_group_argument_errors(node):
    b = node.bootstrap
    one_sentence_failure(runnel("group", "reset-offsets", "g", "--topic", "t", "--bootstrap-server", b), "exactly one of")
    one_sentence_failure(runnel("group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest",
                                "--bootstrap-server", b), "exactly one of")
    one_sentence_failure(runnel("group", "reset-offsets", "g", "--topic", "t:x", "--to-earliest", "--bootstrap-server", b), "--topic")
    one_sentence_failure(runnel("group", "reset-offsets", "g", "--topic", unique("nope"), "--to-earliest", "--bootstrap-server", b),
                         "does not exist")


# -- cluster and reachability ---------------------------------------------------------------------

def test_tools_on_a_three_broker_cluster(tmp_path):
    """Leaders on three brokers: requests go to each partition's leader, the group to its
    coordinator, and a produce to a partition whose leader was killed -9 succeeds once a new
    leader is elected (retried after metadata refreshes)."""
    controllers, brokers = start_cluster(tmp_path, props={"auto.leader.rebalance.enable": "false",
                                                          "group.initial.rebalance.delay.ms": "0"})
    try:
        b = ",".join(n.bootstrap for n in brokers)
        d = ok_json("cluster", "describe", "--bootstrap-server", brokers[0].bootstrap)
        assert [(x["id"], x["port"]) for x in d["brokers"]] == [(n.node_id, n.port) for n in brokers]
        topic, group = unique("cli-rep"), unique("cli-rep")
        ok("topic", "create", topic, "--partitions", 3, "--replication-factor", 3, "--bootstrap-server", brokers[0].bootstrap)
        desc = ok_json("topic", "describe", topic, "--bootstrap-server", brokers[1].bootstrap)
        assert sorted(p["leader"] for p in desc["partitions"]) == [4, 5, 6], "one leader per broker"
        assert all(sorted(p["replicas"]) == [4, 5, 6] for p in desc["partitions"])
        md = admin(brokers[0].bootstrap).list_topics(topic, timeout=10).topics[topic]
        assert {p["partition"]: p["leader"] for p in desc["partitions"]} == {i: p.leader for i, p in md.partitions.items()}

        summary = ok_json("produce", topic, "--key-separator", "=", "--bootstrap-server", brokers[2].bootstrap,
                          input="".join(f"key{i}=value{i}\n" for i in range(300)))
        assert summary["written"] == 300 and len(summary["partitions"]) == 3
        got = json_lines(ok("consume", topic, "--group", group, "--from-beginning", "--timeout-ms", 3000, "--json",
                            "--bootstrap-server", b))
        assert sorted(r["value"] for r in got) == sorted(f"value{i}" for i in range(300))
        g = ok_json("group", "describe", group, "--bootstrap-server", brokers[0].bootstrap)
        assert g["coordinator"]["id"] in (4, 5, 6) and all(o["lag"] == 0 for o in g["offsets"])

        victim = next(n for n in brokers if n.node_id == desc["partitions"][0]["leader"])
        victim.kill9()
        started = time.monotonic()
        p = ok("produce", topic, "--partition", 0, "--bootstrap-server", b, input="after the kill\n")
        assert "Wrote 1 record" in p.stdout
        assert time.monotonic() - started < SESSION_TIMEOUT_MS / 1000 + 25
        survivors = ",".join(n.bootstrap for n in brokers if n is not victim)
        after = ok_json("topic", "describe", topic, "--bootstrap-server", survivors)
        assert after["partitions"][0]["leader"] not in (victim.node_id, -1)
        tail = json_lines(ok("consume", topic, "--partition", 0, "--offset", "latest", "--timeout-ms", 500, "--json",
                             "--bootstrap-server", survivors))
        assert tail == []
        every = json_lines(ok("consume", topic, "--from-beginning", "--timeout-ms", 3000, "--json", "--bootstrap-server", survivors))
        assert len(every) == 301 and "after the kill" in {r["value"] for r in every}
    finally:
        for n in brokers + controllers:
            n.close()


def test_cluster_describe(node):
    d = ok_json("cluster", "describe", "--bootstrap-server", node.bootstrap)
    assert d == {"clusterId": node.cluster_id, "controllerId": d["controllerId"],
                 "brokers": [{"id": 1, "host": "127.0.0.1", "port": node.port, "rack": None}]}
    md = admin(node.bootstrap).list_topics(timeout=10)
    assert md.cluster_id == d["clusterId"] and sorted(md.brokers) == [1]
    text = ok("cluster", "describe", "--bootstrap-server", node.bootstrap).stdout
    assert f"Cluster id:    {node.cluster_id}" in text and f"127.0.0.1  {node.port}" in text


@pytest.mark.parametrize("argv", [
    ["topic", "list"], ["topic", "describe", "t"], ["topic", "create", "t", "--partitions", "1"],
    ["cluster", "describe"], ["group", "list"], ["group", "describe", "g"], ["consume", "t", "--timeout-ms", "100"],
])
def test_unreachable_bootstrap_is_one_sentence(argv):
    [port] = free_ports(1)
    p = runnel(*argv, "--bootstrap-server", f"127.0.0.1:{port}", timeout=60)
    one_sentence_failure(p, f"127.0.0.1:{port}", "connection refused")
    [p1, p2] = free_ports(2)
    p = runnel(*argv, "--bootstrap-server", f"127.0.0.1:{p1},127.0.0.1:{p2}", timeout=60)
    one_sentence_failure(p, f"127.0.0.1:{p1}", f"127.0.0.1:{p2}")


def test_unreachable_bootstrap_for_produce():
    [port] = free_ports(1)
    one_sentence_failure(runnel("produce", "t", "--bootstrap-server", f"127.0.0.1:{port}", input="x\n"), "connection refused")
