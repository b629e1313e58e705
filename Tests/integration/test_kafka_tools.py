"""The Kafka tools `runnel` has at parity with Kafka's, each against one 3 controller + 3 broker
cluster shared by the module, and checked against what confluent-kafka (librdkafka) sees or does.

- `runnel get-offsets` (kafka-get-offsets): earliest, latest, max-timestamp and timestamp
  lookups print `topic:partition:offset` equal to confluent-kafka's offsets_for_times and
  watermarks; --json adds the record timestamp and leader epoch; a topic regex and --partitions.
- `runnel topic alter --partitions` (CreatePartitions) grows a topic as confluent-kafka then sees
  it and refuses to shrink it; `topic describe`'s reports (--under-replicated-partitions,
  --under-min-isr-partitions, --at-min-isr-partitions, --unavailable-partitions,
  --topics-with-overrides) pick the partitions kafka-topics picks, before and while a broker is down.
- `runnel config describe|alter` (kafka-configs) on a topic, one broker and the brokers' defaults:
  what it sets confluent-kafka reads back; describe prints only the resource's own configs, with
  kafka-configs' synonyms, and every one with --all; --entity-type/--entity-name say the same.
- `runnel leader-election` (kafka-leader-election): with the ISR's only member stopped, preferred
  fails with Kafka's error line and exit 1, unclean elects the live out-of-sync replica; once the
  preferred replica is back in the ISR, a JSON file of partitions moves leadership back to it
  (Kafka's "Successfully completed" and "Valid replica already elected" lines).
- `runnel group reset-offsets` scenarios (--to-offset, --shift-by, --to-current, --to-datetime in
  UTC, an offset zone and local time, --by-duration, --all-topics, --export, --from-file) commit
  what confluent-kafka then reads as the group's offsets; `group delete-offsets` (OffsetDelete)
  removes them, and is refused per partition for a topic a member subscribes to.
- `runnel dump-log --offsets-decoder` / `--transaction-log-decoder` print a committed offset, a
  group's metadata and a transactional id's states as Kafka's parsers do.
- `runnel dump-log` (kafka-dump-log) on a broker's segment: one line per lz4, gzip and plain
  batch with its count, codec and a valid CRC; --deep-iteration --print-data-log the records'
  keys, payloads and headers (inflated); the .index and .timeindex agree with the log; a flipped
  byte shows isvalid: false and a cut batch is one sentence.

Failures exit 1 with one sentence on stderr. Runnel only (runs the runnel binary).
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from cluster import start_cluster
from test_cli_tools import ok, ok_json, one_sentence_failure, runnel
from util import QUIET, admin as admin_client, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against a Runnel cluster")


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    controllers, brokers = start_cluster(tmp_path_factory.mktemp("kafka-tools"),
                                         props={"auto.leader.rebalance.enable": "false",
                                                "group.initial.rebalance.delay.ms": "0"})
    try:
        yield brokers
    finally:
        for n in brokers + controllers:
            n.close()


@pytest.fixture(scope="module")
def bootstrap(brokers) -> str:
    return ",".join(n.bootstrap for n in brokers)


def produce(bootstrap: str, topic: str, records: list[tuple[int, int]], **conf) -> None:
    """Produces (partition, timestamp ms) pairs, one record each, in order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, **QUIET, **conf})
    errors = []
    for i, (partition, ts) in enumerate(records):
        p.produce(topic, value=f"v{i}".encode(), partition=partition, timestamp=ts,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0 and not errors, errors


# -- get-offsets ----------------------------------------------------------------------------------

def test_get_offsets_equal_confluent(bootstrap):
    topic = unique("go")
    ok("topic", "create", topic, "--partitions", 3, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    base = 1_700_000_000_000
    # Partition 0: timestamps rise then fall back, so the max timestamp is in the middle; partition 1
    # gets a compressed batch; partition 2 stays empty.
    produce(bootstrap, topic, [(0, base + t) for t in (10, 20, 50, 30, 40)])
    produce(bootstrap, topic, [(1, base + t) for t in (5, 60, 7)], **{"compression.type": "lz4", "linger.ms": 200})

    def lines(*time):
        return ok("get-offsets", "--topic", topic, *time, "--bootstrap-server", bootstrap).stdout.splitlines()

    assert lines() == [f"{topic}:0:5", f"{topic}:1:3", f"{topic}:2:0"]
    assert lines("--time", "latest") == lines("--time", "-1") == lines()
    assert lines("--time", "earliest") == [f"{topic}:0:0", f"{topic}:1:0", f"{topic}:2:0"]
    assert lines("--time", "max-timestamp") == [f"{topic}:0:2", f"{topic}:1:1"], "an empty partition has none"
    assert lines("--time", "-3") == lines("--time", "max-timestamp")
    assert lines("--time", str(base + 25)) == [f"{topic}:0:2", f"{topic}:1:1"]

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("go"), **QUIET})
    try:
        found = c.offsets_for_times([TopicPartition(topic, p, base + 25) for p in range(3)], timeout=10)
        assert [f"{topic}:{t.partition}:{t.offset}" for t in found if t.offset >= 0] == lines("--time", str(base + 25))
        assert [f"{topic}:{p}:{c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]}"
                for p in range(3)] == lines()
    finally:
        c.close()

    rows = ok_json("get-offsets", "--topic", topic, "--time", "max-timestamp", "--bootstrap-server", bootstrap)
    assert [(r["partition"], r["offset"], r["timestamp"]) for r in rows] == [
        (0, 2, base + 50), (1, 1, base + 60), (2, None, None)]
    assert all(r["topic"] == topic for r in rows)
    assert rows[0]["leaderEpoch"] == ok_json("topic", "describe", topic,
                                             "--bootstrap-server", bootstrap)["partitions"][0]["leaderEpoch"]
    latest = ok_json("get-offsets", "--topic", topic, "--partitions", "0,2", "--bootstrap-server", bootstrap)
    assert [(r["partition"], r["offset"], r["timestamp"]) for r in latest] == [(0, 5, None), (2, 0, None)]
    # --topic is a regular expression matched against whole names.
    assert lines() == ok("get-offsets", "--topic", topic[:-3] + "...", "--bootstrap-server",
                         bootstrap).stdout.splitlines()


def test_get_offsets_errors(bootstrap):
    one_sentence_failure(runnel("get-offsets", "--topic", "no-such-topic-x", "--bootstrap-server", bootstrap),
                         "no topic partition matches")
    one_sentence_failure(runnel("get-offsets", "--time", "yesterday", "--bootstrap-server", bootstrap), "--time")
    one_sentence_failure(runnel("get-offsets", "--partitions", "a,b", "--bootstrap-server", bootstrap), "--partitions")
    one_sentence_failure(runnel("get-offsets", "--topic", "(", "--bootstrap-server", bootstrap), "regular expression")


# -- topic alter and describe's reports -----------------------------------------------------------

def describe_lines(bootstrap: str, *args) -> list[str]:
    return ok("topic", "describe", *args, "--bootstrap-server", bootstrap).stdout.splitlines()


def partition_lines(lines: list[str], topic: str) -> list[int]:
    return sorted(int(ln.split("\tPartition: ")[1].split("\t")[0]) for ln in lines
                  if ln.startswith(f"\tTopic: {topic}\t"))


def wait_full_isr(bootstrap: str, topic: str, timeout: float = 60) -> dict:
    def full():
        d = ok_json("topic", "describe", topic, "--bootstrap-server", bootstrap)
        return d if all(len(p["isr"]) == len(p["replicas"]) and p["leader"] >= 0 for p in d["partitions"]) else None
    return wait_until(full, timeout=timeout, interval=0.3, what=f"every ISR of {topic} full")


def test_topic_alter_adds_partitions(bootstrap):
    topic = unique("alter")
    ok("topic", "create", topic, "--partitions", 2, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    p = ok("topic", "alter", "--topic", topic, "--partitions", 5, "--bootstrap-server", bootstrap)
    assert p.stdout.strip() == f"Topic {topic} now has 5 partitions (it had 2)."
    md = admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4] and all(len(x.replicas) == 3 for x in md.partitions.values())
    assert ok_json("topic", "alter", topic, "--partitions", 6, "--bootstrap-server", bootstrap) == {
        "name": topic, "partitions": 6, "previousPartitions": 5}
    produce(bootstrap, topic, [(5, 1_700_000_000_000)])
    one_sentence_failure(runnel("topic", "alter", "--topic", topic, "--partitions", 3, "--bootstrap-server", bootstrap),
                         "has 6 partitions", "can only grow")
    one_sentence_failure(runnel("topic", "alter", "--topic", topic, "--partitions", 6, "--bootstrap-server", bootstrap),
                         "already has 6 partitions")
    one_sentence_failure(runnel("topic", "alter", "--topic", "no-such-topic-y", "--partitions", 3,
                                "--bootstrap-server", bootstrap), "does not exist")
    one_sentence_failure(runnel("topic", "alter", "--partitions", 3, "--bootstrap-server", bootstrap), "--topic")


def test_describe_reports_follow_kafka_topics(brokers, bootstrap):
    at_min, below, single = unique("atmin"), unique("below"), unique("single")
    ok("topic", "create", at_min, "--partitions", 2, "--replication-factor", 3, "--config", "min.insync.replicas=3",
       "--bootstrap-server", bootstrap)
    ok("topic", "create", below, "--partitions", 2, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    ok("topic", "create", single, "--partitions", 3, "--replication-factor", 1, "--bootstrap-server", bootstrap)

    # Everything healthy: no partition is under-replicated, under min ISR or unavailable.
    for report in ("--under-replicated-partitions", "--under-min-isr-partitions", "--unavailable-partitions"):
        lines = describe_lines(bootstrap, report)
        assert not any(at_min in ln or below in ln or single in ln for ln in lines), (report, lines)
    lines = describe_lines(bootstrap, "--at-min-isr-partitions")
    assert partition_lines(lines, at_min) == [0, 1] and partition_lines(lines, below) == []
    assert partition_lines(lines, single) == [0, 1, 2], "ISR 1 = the default min.insync.replicas 1"
    assert not any(ln.startswith("Topic: ") for ln in lines), "the report leaves out the topic lines"
    lines = describe_lines(bootstrap, "--topics-with-overrides")
    assert any(ln.startswith(f"Topic: {at_min}\t") and "min.insync.replicas=3" in ln for ln in lines)
    assert not any(below in ln or single in ln for ln in lines)
    assert not any(ln.startswith("\t") for ln in lines), "no partition lines"
    # A named topic keeps today's layout.
    named = describe_lines(bootstrap, at_min)
    assert named[0].startswith(f"Topic: {at_min}\tTopicId: ") and len(named) == 3
    assert describe_lines(bootstrap, "--topic", at_min) == named

    victim = brokers[2]
    single_on_victim = next(p["partition"] for p in ok_json("topic", "describe", single, "--bootstrap-server",
                                                            bootstrap)["partitions"] if p["leader"] == victim.node_id)
    victim.stop()
    live = ",".join(n.bootstrap for n in brokers if n is not victim)
    try:
        wait_until(lambda: all(victim.node_id not in p["isr"] for p in
                               ok_json("topic", "describe", below, "--bootstrap-server", live)["partitions"]),
                   timeout=30, interval=0.3, what="the stopped broker out of the ISRs")
        under = describe_lines(live, "--under-replicated-partitions")
        assert partition_lines(under, at_min) == [0, 1] and partition_lines(under, below) == [0, 1]
        under_min = describe_lines(live, "--under-min-isr-partitions")
        assert partition_lines(under_min, at_min) == [0, 1], "ISR 2 < min.insync.replicas 3"
        assert partition_lines(under_min, below) == [], "ISR 2 >= 1"
        assert partition_lines(under_min, single) == [single_on_victim], "no leader is under min ISR"
        unavailable = describe_lines(live, "--unavailable-partitions")
        assert partition_lines(unavailable, single) == [single_on_victim]
        assert partition_lines(unavailable, at_min) == [] and partition_lines(unavailable, below) == []
        assert f"Leader: none" in next(ln for ln in unavailable if single in ln)
        both = ok_json("topic", "describe", "--under-min-isr-partitions", "--unavailable-partitions", "--json",
                       "--bootstrap-server", live)
        picked = {d["name"]: [p["partition"] for p in d["partitions"]] for d in both}
        assert picked[at_min] == [0, 1] and picked[single] == [single_on_victim] and below not in picked
    finally:
        victim.restart()
    wait_full_isr(bootstrap, at_min)
    wait_full_isr(bootstrap, single)


# -- config describe and alter --------------------------------------------------------------------

def config_lines(bootstrap: str, *args) -> list[str]:
    return ok("config", "describe", *args, "--bootstrap-server", bootstrap).stdout.splitlines()


def test_config_topic_describe_alter(bootstrap):
    topic = unique("cfg")
    ok("topic", "create", topic, "--partitions", 1, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    assert config_lines(bootstrap, "--topic", topic) == [f"Dynamic configs for topic {topic} are:"]
    p = ok("config", "alter", "--topic", topic, "--add-config", "retention.ms=1000,cleanup.policy=[compact,delete]",
           "--bootstrap-server", bootstrap)
    assert p.stdout.strip() == f"Completed updating config for topic {topic}."
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin_client(bootstrap)
    seen = a.describe_configs([res])[res].result(timeout=10)
    assert seen["retention.ms"].value == "1000" and seen["cleanup.policy"].value == "compact,delete"
    lines = config_lines(bootstrap, "--topic", topic)
    assert lines[0] == f"Dynamic configs for topic {topic} are:"
    assert lines[1].startswith("  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:"
                               "cleanup.policy=compact,delete, DEFAULT_CONFIG:") and lines[1].endswith("=delete}")
    assert lines[2].startswith("  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, ")
    assert len(lines) == 3
    # kafka-configs' entity options say the same.
    assert config_lines(bootstrap, "--entity-type", "topics", "--entity-name", topic) == lines
    every = config_lines(bootstrap, "--topic", topic, "--all")
    assert every[0] == f"All configs for topic {topic} are:"
    assert any(ln.startswith("  segment.bytes=1073741824 sensitive=false synonyms={") for ln in every)
    assert len(every) > 10

    ok("config", "alter", "--topic", topic, "--delete-config", "retention.ms", "--bootstrap-server", bootstrap)
    d = ok_json("config", "describe", "--topic", topic, "--bootstrap-server", bootstrap)
    assert d["resource"] == {"type": "topic", "name": topic}
    assert [(c["name"], c["value"], c["source"]) for c in d["configs"]] == [
        ("cleanup.policy", "compact,delete", "DYNAMIC_TOPIC_CONFIG")]
    assert d["configs"][0]["synonyms"][0] == {"name": "cleanup.policy", "value": "compact,delete",
                                             "source": "DYNAMIC_TOPIC_CONFIG"}
    # topic alter-config shares the code: the same change, the same result.
    ok("topic", "alter-config", topic, "--delete", "cleanup.policy", "--bootstrap-server", bootstrap)
    assert ok_json("config", "describe", "--topic", topic, "--bootstrap-server", bootstrap)["configs"] == []


def test_config_broker_and_broker_defaults(brokers, bootstrap):
    b4, b5 = brokers[0].node_id, brokers[1].node_id
    try:
        assert ok_json("config", "alter", "--broker", b4, "--add-config", "log.retention.ms=7200000",
                       "--bootstrap-server", bootstrap) == {
            "resource": {"type": "broker", "name": str(b4)}, "set": {"log.retention.ms": "7200000"}, "deleted": []}
        p = ok("config", "alter", "--broker-defaults", "--add-config", "log.retention.ms=3600000",
               "--bootstrap-server", bootstrap)
        assert p.stdout.strip() == "Completed updating default config for brokers in the cluster."

        def own(*args):
            return [(c["name"], c["value"], c["source"]) for c in
                    ok_json("config", "describe", *args, "--bootstrap-server", bootstrap)["configs"]]
        mine = wait_until(lambda: own("--broker", b4) or None, timeout=15, what="broker 4's config")
        assert mine == [("log.retention.ms", "7200000", "DYNAMIC_BROKER_CONFIG")]
        assert own("--broker", b5) == []
        assert wait_until(lambda: own("--broker-defaults") or None, timeout=15) == [
            ("log.retention.ms", "3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG")]
        lines = config_lines(bootstrap, "--broker", b4)
        assert lines[0] == f"Dynamic configs for broker {b4} are:"
        assert lines[1].startswith("  log.retention.ms=7200000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:"
                                   "log.retention.ms=7200000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000")
        assert config_lines(bootstrap, "--broker-defaults")[0] == "Default configs for brokers in the cluster are:"
        five = {c["name"]: c for c in ok_json("config", "describe", "--broker", b5, "--all",
                                              "--bootstrap-server", bootstrap)["configs"]}
        assert (five["log.retention.ms"]["value"], five["log.retention.ms"]["source"]) == (
            "3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        assert len(five) > 20 and "DEFAULT_CONFIG" in {c["source"] for c in five.values()}
        assert config_lines(bootstrap, "--entity-type", "brokers", "--entity-default") == config_lines(
            bootstrap, "--broker-defaults")
    finally:
        ok("config", "alter", "--broker", b4, "--delete-config", "log.retention.ms", "--bootstrap-server", bootstrap)
        ok("config", "alter", "--broker-defaults", "--delete-config", "log.retention.ms", "--bootstrap-server", bootstrap)


def test_config_errors(bootstrap):
    one_sentence_failure(runnel("config", "describe", "--bootstrap-server", bootstrap), "--topic", "--broker")
    one_sentence_failure(runnel("config", "describe", "--topic", "t", "--broker", "4", "--bootstrap-server", bootstrap),
                         "exactly one")
    one_sentence_failure(runnel("config", "describe", "--topic", "no-such-topic-z", "--bootstrap-server", bootstrap),
                         "does not exist")
    one_sentence_failure(runnel("config", "describe", "--broker", "99", "--bootstrap-server", bootstrap), "broker 99")
    one_sentence_failure(runnel("config", "alter", "--topic", "t", "--bootstrap-server", bootstrap), "--add-config")
    one_sentence_failure(runnel("config", "alter", "--topic", "t", "--add-config", "a=1", "--delete-config", "a",
                                "--bootstrap-server", bootstrap), "both set and deleted")
    topic = unique("cfgerr")
    ok("topic", "create", topic, "--partitions", 1, "--bootstrap-server", bootstrap)
    one_sentence_failure(runnel("config", "alter", "--topic", topic, "--add-config", "no.such.config=1",
                                "--bootstrap-server", bootstrap), "no.such.config")
    one_sentence_failure(runnel("config", "alter", "--entity-type", "users", "--entity-name", "x", "--add-config", "a=1",
                                "--bootstrap-server", bootstrap), "--entity-type")


# -- leader election ------------------------------------------------------------------------------

def partition_state(bootstrap: str, topic: str, partition: int = 0) -> dict:
    return ok_json("topic", "describe", topic, "--bootstrap-server", bootstrap)["partitions"][partition]


def test_leader_election_preferred_and_unclean(brokers, bootstrap, tmp_path):
    by_id = {n.node_id: n for n in brokers}
    balanced, topic = unique("elect-ok"), unique("elect")
    ok("topic", "create", balanced, "--partitions", 3, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    p = ok("leader-election", "--election-type", "preferred", "--topic", balanced, "--partition", 1,
           "--bootstrap-server", bootstrap)
    assert p.stdout.splitlines() == [f"Valid replica already elected for partitions {balanced}-1"]
    ok("topic", "create", topic, "--partitions", 1, "--replication-factor", 2, "--bootstrap-server", bootstrap)
    preferred, follower = partition_state(bootstrap, topic)["replicas"]
    a, b = by_id[preferred], by_id[follower]
    [c] = [n for n in brokers if n not in (a, b)]
    try:
        # The follower stops and leaves the ISR; then the leader stops: no one in the ISR is left.
        b.stop()
        wait_until(lambda: partition_state(c.bootstrap, topic)["isr"] == [preferred], timeout=30, interval=0.3)
        a.stop()
        wait_until(lambda: partition_state(c.bootstrap, topic)["leader"] == -1, timeout=30, interval=0.3)
        p = runnel("leader-election", "--election-type", "preferred", "--topic", topic, "--partition", 0,
                   "--bootstrap-server", c.bootstrap)
        assert p.stdout.startswith(f"Error completing leader election (PREFERRED) for partition: {topic}-0: ")
        one_sentence_failure(p, "1 replica(s) could not be elected", "PREFERRED_LEADER_NOT_AVAILABLE")
        b.restart()
        wait_until(lambda: follower in [x["id"] for x in ok_json("cluster", "describe",
                                                                 "--bootstrap-server", c.bootstrap)["brokers"]],
                   timeout=30, interval=0.3, what="the follower registered again")
        time.sleep(1)
        assert partition_state(c.bootstrap, topic)["leader"] == -1, "no clean leader while the ISR is down"
        p = ok("leader-election", "--election-type", "unclean", "--topic", topic, "--partition", 0,
               "--bootstrap-server", c.bootstrap)
        assert p.stdout.splitlines() == [f"Successfully completed leader election (UNCLEAN) for partitions {topic}-0"]
        assert partition_state(c.bootstrap, topic)["leader"] == follower
    finally:
        for n in (a, b):
            if not n.is_alive():
                n.restart()
    wait_full_isr(bootstrap, topic)
    assert partition_state(bootstrap, topic)["leader"] == follower

    plan = tmp_path / "election.json"
    plan.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 0},
                                               {"topic": balanced, "partition": 2}]}))
    p = ok("leader-election", "--election-type", "PREFERRED", "--path-to-json-file", plan,
           "--bootstrap-server", bootstrap)
    assert p.stdout.splitlines() == [f"Successfully completed leader election (PREFERRED) for partitions {topic}-0",
                                     f"Valid replica already elected for partitions {balanced}-2"]
    assert partition_state(bootstrap, topic)["leader"] == preferred
    a_client = admin_client(bootstrap)
    wait_until(lambda: a_client.list_topics(topic, timeout=10).topics[topic].partitions[0].leader == preferred,
               timeout=15, what="confluent-kafka to see the preferred leader")
    # Every partition's preferred replica must be back in its ISR (the restarted brokers rejoin
    # `__consumer_offsets` too), or Kafka's answer for it is PREFERRED_LEADER_NOT_AVAILABLE.
    wait_until(lambda: all(len(p.isrs) == len(p.replicas)
                           for t in a_client.list_topics(timeout=10).topics.values() for p in t.partitions.values()),
               timeout=60, interval=0.3, what="every ISR of every topic full")
    everything = ok_json("leader-election", "--election-type", "preferred", "--all-topic-partitions",
                         "--bootstrap-server", bootstrap)
    assert everything["electionType"] == "preferred" and everything["failed"] == []
    # Kafka's controller leaves partitions already led by their preferred replica out of an
    # every-partition answer (ELECTION_NOT_NEEDED is reported only for partitions asked by name).
    assert everything["noop"] == [], everything
    assert {"topic": topic, "partition": 0} not in everything["succeeded"]


def test_leader_election_errors(bootstrap, tmp_path):
    p = runnel("leader-election", "--election-type", "preferred", "--topic", "no-such-topic-e", "--partition", 0,
               "--bootstrap-server", bootstrap)
    assert "Error completing leader election (PREFERRED) for partition: no-such-topic-e-0: " in p.stdout
    one_sentence_failure(p, "could not be elected", "UNKNOWN_TOPIC_OR_PARTITION")
    one_sentence_failure(runnel("leader-election", "--election-type", "fast", "--all-topic-partitions",
                                "--bootstrap-server", bootstrap), "--election-type")
    one_sentence_failure(runnel("leader-election", "--election-type", "preferred", "--bootstrap-server", bootstrap),
                         "exactly one")
    one_sentence_failure(runnel("leader-election", "--election-type", "preferred", "--topic", "t",
                                "--bootstrap-server", bootstrap), "--partition")
    bad = tmp_path / "bad.json"
    bad.write_text('{"partitions": [{"topic": "t", "partition": 0}, {"topic": "t", "partition": 0}]}')
    one_sentence_failure(runnel("leader-election", "--election-type", "preferred", "--path-to-json-file", bad,
                                "--bootstrap-server", bootstrap), "more than once", "t-0")
    bad.write_text("[1, 2]")
    one_sentence_failure(runnel("leader-election", "--election-type", "preferred", "--path-to-json-file", bad,
                                "--bootstrap-server", bootstrap), "partitions")


# -- group delete-offsets and reset-offsets -------------------------------------------------------

def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **QUIET})
    try:
        return [t.offset for t in c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)]
    finally:
        c.close()


def reset(bootstrap: str, group: str, *args) -> dict:
    p = ok("group", "reset-offsets", "--group", group, *args, "--json", "--bootstrap-server", bootstrap)
    assert p.stderr == "", "no progress on a pipe"
    return {(r["topic"], r["partition"]): r["newOffset"] for r in json.loads(p.stdout)["partitions"]}


def test_group_reset_offsets_scenarios(bootstrap, tmp_path):
    t, u, group = unique("rs-t"), unique("rs-u"), unique("rs")
    ok("topic", "create", t, "--partitions", 2, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    ok("topic", "create", u, "--partitions", 1, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    base = 1_700_000_000_000
    produce(bootstrap, t, [(p, base + i * 1000) for p in (0, 1) for i in range(10)])
    now = int(time.time() * 1000)
    produce(bootstrap, u, [(0, now - (10 - i) * 60_000) for i in range(10)])

    assert reset(bootstrap, group, "--topic", t, "--topic", u, "--to-offset", 5, "--execute") == {
        (t, 0): 5, (t, 1): 5, (u, 0): 5}
    assert committed(bootstrap, group, t, 2) == [5, 5]
    assert reset(bootstrap, group, "--topic", f"{t}:1", "--shift-by", -2, "--execute") == {(t, 1): 3}
    assert reset(bootstrap, group, "--all-topics", "--shift-by", 100) == {(t, 0): 10, (t, 1): 10, (u, 0): 10}, \
        "clamped to the log end"
    assert reset(bootstrap, group, "--all-topics", "--to-current") == {(t, 0): 5, (t, 1): 3, (u, 0): 5}
    # 1_700_000_004_000 ms is 2023-11-14T22:13:24Z.
    assert reset(bootstrap, group, "--topic", t, "--to-datetime", "2023-11-14T22:13:24.000Z") == {(t, 0): 4, (t, 1): 4}
    assert reset(bootstrap, group, "--topic", t, "--to-datetime", "2023-11-15T00:13:23.500+02:00") == {
        (t, 0): 4, (t, 1): 4}
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime((base + 6000) / 1000)) + ".000"
    assert reset(bootstrap, group, "--topic", t, "--to-datetime", local) == {(t, 0): 6, (t, 1): 6}
    assert reset(bootstrap, group, "--topic", t, "--to-datetime", "2030-01-01T00:00:00.000") == {(t, 0): 10, (t, 1): 10}
    assert reset(bootstrap, group, "--topic", u, "--by-duration", "PT5M30S") == {(u, 0): 5}
    assert reset(bootstrap, group, "--topic", u, "--by-duration", "P1DT0H") == {(u, 0): 0}

    exported = ok("group", "reset-offsets", group, "--all-topics", "--to-earliest", "--export", "--dry-run",
                  "--bootstrap-server", bootstrap).stdout
    assert exported.splitlines() == [f"{t},0,0", f"{t},1,0", f"{u},0,0"]
    assert committed(bootstrap, group, t, 2) == [5, 3], "a dry run commits nothing"
    plan = tmp_path / "plan.csv"
    plan.write_text(exported.replace(f"{t},1,0", f"{t},1,7"))
    p = ok("group", "reset-offsets", group, "--from-file", plan, "--execute", "--bootstrap-server", bootstrap)
    assert "Committed the new offsets" in p.stdout
    assert committed(bootstrap, group, t, 2) == [0, 7] and committed(bootstrap, group, u, 1) == [0]


def test_group_delete_offsets(bootstrap):
    t, u, group = unique("do-t"), unique("do-u"), unique("do")
    for topic in (t, u):
        ok("topic", "create", topic, "--partitions", 2, "--replication-factor", 3, "--bootstrap-server", bootstrap)
        produce(bootstrap, topic, [(p, 1_700_000_000_000) for p in (0, 1) for _ in range(3)])
    ok("group", "reset-offsets", group, "--topic", t, "--topic", u, "--to-latest", "--execute",
       "--bootstrap-server", bootstrap)
    p = ok("group", "delete-offsets", "--group", group, "--topic", f"{u}:1", "--bootstrap-server", bootstrap)
    assert p.stdout.splitlines()[0] == f"Request succeed for deleting offsets with topic {u} group {group}"
    assert [ln.split() for ln in p.stdout.splitlines()[2:]] == [["TOPIC", "PARTITION", "STATUS"], [u, "1", "Successful"]]
    assert committed(bootstrap, group, u, 2) == [3, -1001]
    assert ok_json("group", "delete-offsets", group, "--topic", u, "--bootstrap-server", bootstrap) == {
        "groupId": group, "partitions": [{"topic": u, "partition": 0, "error": None},
                                         {"topic": u, "partition": 1, "error": None}]}
    assert committed(bootstrap, group, u, 2) == [-1001, -1001] and committed(bootstrap, group, t, 2) == [3, 3]

    # A member subscribed to t: the coordinator keeps t's offsets and the command says so.
    member = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                       "session.timeout.ms": 6000, **QUIET})
    member.subscribe([t])
    try:
        wait_until(lambda: member.poll(0.2) is None and member.assignment(), timeout=30, what="an assignment")
        p = runnel("group", "delete-offsets", "--group", group, "--topic", t, "--bootstrap-server", bootstrap)
        assert f"{t}  0          Error: " in p.stdout or "Error: " in p.stdout
        one_sentence_failure(p, "2 partition offset(s)", "GROUP_SUBSCRIBED_TO_TOPIC")
    finally:
        member.close()
    one_sentence_failure(runnel("group", "delete-offsets", "--group", group, "--bootstrap-server", bootstrap), "--topic")
    one_sentence_failure(runnel("group", "delete-offsets", "--group", group, "--topic", f"{t}:9",
                                "--bootstrap-server", bootstrap), "partition 9 does not exist")


def test_group_reset_offsets_errors(bootstrap, tmp_path):
    def refused(*args, needle):
        one_sentence_failure(runnel("group", "reset-offsets", "--group", "g", *args, "--bootstrap-server", bootstrap),
                             needle)
    refused("--topic", "t", needle="exactly one of")
    refused("--topic", "t", "--to-earliest", "--shift-by", "1", needle="exactly one of")
    refused("--to-earliest", needle="--all-topics")
    refused("--topic", "t", "--to-datetime", "yesterday", needle="--to-datetime")
    refused("--topic", "t", "--by-duration", "5 minutes", needle="--by-duration")
    refused("--topic", "t", "--to-earliest", "--export", "--json", needle="--export")
    plan = tmp_path / "bad.csv"
    plan.write_text("t,0,5\nt,zero,5\n")
    refused("--from-file", plan, needle="line 2")
    refused("--from-file", plan, "--topic", "t", needle="--from-file")
    topic = unique("rs-err")
    ok("topic", "create", topic, "--partitions", 1, "--bootstrap-server", bootstrap)
    refused("--topic", topic, "--shift-by", "-1", needle="no committed offset")


# -- dump-log -------------------------------------------------------------------------------------

def test_dump_log_batches_records_and_indexes(brokers, bootstrap, tmp_path):
    topic = unique("dump")
    ok("topic", "create", topic, "--partitions", 1, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    base = 1_700_000_000_000

    def value(i: int) -> str:  # compressible, so librdkafka keeps the codec
        return f"v{i}-" + "abc" * 100

    # One batch per codec: a linger far longer than the produce calls take holds the three
    # records until flush() sends them together (with 200 ms a loaded machine split one batch).
    for codec, first in (("lz4", 0), ("gzip", 3), ("none", 6)):
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10_000, "compression.type": codec, **QUIET})
        for i in range(first, first + 3):
            p.produce(topic, key=f"k{i}".encode(), value=value(i).encode(), partition=0, timestamp=base + i,
                      headers=[("h", f"x{i}".encode())])
        assert p.flush(30) == 0
    leader = partition_state(bootstrap, topic)["leader"]
    node = next(n for n in brokers if n.node_id == leader)
    segment = node.data_dir / f"{topic}-0" / "00000000000000000000.log"

    text = ok("dump-log", segment).stdout.splitlines()
    assert text[:2] == [f"Dumping {segment}", "Log starting offset: 0"]
    batches = [ln for ln in text[2:] if ln.startswith("baseOffset: ")]
    assert [ln.split(" compresscodec: ")[1].split()[0] for ln in batches] == ["lz4", "gzip", "none"]
    assert [ln.split(" count: ")[1].split()[0] for ln in batches] == ["3", "3", "3"]
    assert all(ln.endswith("isvalid: true") for ln in batches)
    assert batches[1].startswith("baseOffset: 3 lastOffset: 5 count: 3 ")
    assert f"CreateTime: {base + 5}" in batches[1]

    deep = ok("dump-log", segment, "--deep-iteration", "--print-data-log").stdout.splitlines()
    records = [ln for ln in deep if ln.startswith("| offset: ")]
    assert len(records) == 9
    assert records[4] == (f"| offset: 4 CreateTime: {base + 4} keySize: 2 valueSize: 303 sequence: "
                          f"{records[4].split(' sequence: ')[1].split()[0]} headerKeys: [h] key: k4 payload: {value(4)} "
                          f"headers: [h=x4]")
    lines = [json.loads(ln) for ln in ok("dump-log", segment, "--deep", "--print-data-log", "--json").stdout.splitlines()]
    assert [b["compressCodec"] for b in lines] == ["lz4", "gzip", "none"] and all(b["isValid"] for b in lines)
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for b in lines for r in b["records"]] == [
        (i, f"k{i}", value(i), [{"key": "h", "value": f"x{i}"}]) for i in range(9)]

    index = ok("dump-log", segment.with_suffix(".index")).stdout.splitlines()
    assert index[0] == f"Dumping {segment.with_suffix('.index')}" and index[1].startswith("offset: 2 position: 0")
    assert not any("Mismatches" in ln for ln in index)
    times = ok("dump-log", segment.with_suffix(".timeindex")).stdout.splitlines()
    assert not any("mismatch" in ln or "out of order" in ln for ln in times), times

    # A flipped byte in a copy: the CRC no longer matches.
    broken = tmp_path / "00000000000000000000.log"
    data = bytearray(segment.read_bytes())
    data[70] ^= 0xFF
    broken.write_bytes(bytes(data))
    first = next(ln for ln in ok("dump-log", broken).stdout.splitlines() if ln.startswith("baseOffset: 0 "))
    assert first.endswith("isvalid: false")
    broken.write_bytes(bytes(data[:100]))
    one_sentence_failure(runnel("dump-log", broken), "position")
    one_sentence_failure(runnel("dump-log", tmp_path / "00000000000000000001.log"), "does not exist")
    one_sentence_failure(runnel("dump-log", tmp_path / "notes.txt"), "not a .log")


def test_dump_log_decodes_internal_topics(brokers, bootstrap):
    """`dump-log --offsets-decoder` and `--transaction-log-decoder` print __consumer_offsets and
    __transaction_state records as Kafka's parsers do: a committed offset and the group's
    metadata, and a transactional id's states through a commit."""
    from confluent_kafka import Consumer, TopicPartition as TP

    topic, group, txn_id = unique("dump-int"), unique("dump-group"), unique("dump-txn")
    ok("topic", "create", topic, "--partitions", 1, "--replication-factor", 3, "--bootstrap-server", bootstrap)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, **QUIET})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"in a transaction", partition=0)
    p.commit_transaction(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **QUIET})
    try:
        c.subscribe([topic])
        wait_until(lambda: c.poll(0.1) is None and c.assignment(), 30, 0, "an assignment")
        c.commit(offsets=[TP(topic, 0, 1)], asynchronous=False)
    finally:
        c.close()

    def decoded(internal: str, flag: str) -> list[dict]:
        records = []
        for node in brokers:
            for segment in sorted(node.data_dir.glob(f"{internal}-*/*.log")):
                for line in ok("dump-log", segment, flag, "--json").stdout.splitlines():
                    records += [r for r in json.loads(line)["records"] or [] if isinstance(r["key"], dict)]
        return records

    offsets = decoded("__consumer_offsets", "--offsets-decoder")
    commit = [r for r in offsets if r["key"]["type"] == "1" and r["key"]["data"]["group"] == group]
    assert commit and commit[0]["key"]["data"] == {"group": group, "topic": topic, "partition": 0}, commit
    assert commit[0]["value"]["data"]["offset"] == 1, commit
    metadata = [r for r in offsets if r["key"]["type"] == "2" and r["key"]["data"]["group"] == group]
    assert metadata, "the group's metadata record"

    states = [r["value"]["data"]["transactionStatus"] for r in decoded("__transaction_state", "--transaction-log-decoder")
              if r["key"]["data"]["transactionalId"] == txn_id and r["value"]]
    # Empty (InitProducerId), Ongoing, PrepareCommit, CompleteCommit on each replica.
    assert {0, 1, 2, 4} <= set(states), states
    # The text form: kafka-dump-log's "key: {...} payload: {...}" on the record lines.
    lines = [ln for seg in sorted(brokers[0].data_dir.glob("__transaction_state-*/*.log"))
             for ln in ok("dump-log", seg, "--transaction-log-decoder").stdout.splitlines() if txn_id in ln]
    assert lines and all(" key: {" in ln and " payload: " in ln for ln in lines), lines[:3]


# -- cluster unregister -----------------------------------------------------------------------------

def test_cluster_unregister_a_broker_that_left(brokers, bootstrap):
    """`runnel cluster unregister --id` (kafka-cluster unregister; UnregisterBroker through a broker
    to the active controller) removes a stopped broker's registration: a second unregister is
    BROKER_ID_NOT_REGISTERED, an unknown id too, and the broker registers again when it comes back."""
    gone = brokers[-1]
    live = brokers[0]

    def listed() -> list[int]:
        return [b["id"] for b in ok_json("cluster", "describe", "--bootstrap-server", live.bootstrap)["brokers"]]

    one_sentence_failure(runnel("cluster", "unregister", "--id", 77, "--bootstrap-server", live.bootstrap),
                         "cannot unregister broker 77", "BROKER_ID_NOT_REGISTERED")
    gone.stop()
    try:
        wait_until(lambda: gone.node_id not in listed(), timeout=30, interval=0.3, what="the stopped broker fenced")
        assert ok_json("cluster", "unregister", "--id", gone.node_id,
                       "--bootstrap-server", live.bootstrap) == {"unregistered": gone.node_id}
        one_sentence_failure(runnel("cluster", "unregister", "--id", gone.node_id, "--bootstrap-server", live.bootstrap),
                             f"cannot unregister broker {gone.node_id}", "BROKER_ID_NOT_REGISTERED")
    finally:
        gone.restart()
    wait_until(lambda: gone.node_id in listed(), timeout=30, interval=0.3, what="the broker registered again")
    a = admin_client(bootstrap)
    wait_until(lambda: all(len(p.isrs) == len(p.replicas)
                           for t in a.list_topics(timeout=10).topics.values() for p in t.partitions.values()),
               timeout=60, interval=0.3, what="every ISR of every topic full again")
