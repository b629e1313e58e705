"""Every node serves Prometheus metrics on `metrics.port` (GET /metrics, text format 0.0.4).

During a confluent-kafka produce load against a node started with metrics.port, `curl` of that
port shows non-zero request counters and latency histograms for Produce, network bytes in and
out, messages and bytes appended, and the quorum's gauges (epoch, high watermark, active
controller); a path other than /metrics gets 404, and a node without metrics.port serves none.
Each replica's log size (Kafka's kafka.log:type=Log,name=Size) equals the bytes of its segment
files on disk, and its series goes when the topic is deleted.

Runnel only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from nodes import free_ports, port_accepts
from util import QUIET, create_topic, unique, wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")


def metrics_node(node_factory, props: dict | None = None):
    """A node serving Prometheus metrics on a port of its own, once that port answers: (node, port)."""
    port = free_ports(1)[0]
    node = node_factory({"metrics.port": port, "metrics.host": "127.0.0.1", **(props or {})})
    wait_until(lambda: port_accepts(port), 20, 0.1, "the metrics port")
    return node, port


def scrape(port: int, path: str = "/metrics") -> str:
    url = f"http://127.0.0.1:{port}{path}"
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "-f", url], capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise urllib.error.HTTPError(url, 404, p.stderr, None, None)
        return p.stdout
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def value(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else r"(\{[^}]*\})?") + r" ([0-9.e+-]+)$"
    values = [float(m.group(m.lastindex)) for m in re.finditer(pattern, text, re.M)]
    assert values, f"no {name}{{{labels}}} in the metrics"
    return sum(values)


def value_or_zero(text: str, name: str, labels: str = "") -> float:
    """value(), or 0 when the series is absent (a timer appears with its first event)."""
    try:
        return value(text, name, labels)
    except AssertionError:
        return 0.0


def test_metrics_during_a_produce_load(node_factory):
    node, port = metrics_node(node_factory)
    topic = unique("metrics")
    create_topic(node.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 2, **QUIET})
    for i in range(2000):
        p.produce(topic, key=b"%d" % i, value=b"x" * 200)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    text = scrape(port)
    assert "# TYPE runnel_requests_total counter" in text
    assert value(text, "runnel_requests_total", 'api="Produce"') > 0
    assert value(text, "runnel_request_duration_seconds_count", 'api="Produce"') > 0
    assert value(text, "runnel_requests_total", 'api="Metadata"') > 0
    assert value(text, "runnel_network_bytes_in_total") > 2000 * 200
    assert value(text, "runnel_network_bytes_out_total") > 0
    assert value(text, "runnel_messages_in_total") >= 2000
    assert value(text, "runnel_produce_bytes_in_total") > 2000 * 200
    assert value(text, "runnel_raft_epoch") >= 1
    assert value(text, "runnel_controller_active") == 1
    assert value(text, "runnel_raft_high_watermark") > 0
    assert value(text, "runnel_offline_partitions") == 0
    # Counters only grow.
    before = value(text, "runnel_requests_total", 'api="Produce"')
    p.produce(topic, value=b"one more")
    p.flush(10)
    assert value(scrape(port), "runnel_requests_total", 'api="Produce"') > before
    with pytest.raises(urllib.error.HTTPError):
        scrape(port, "/nothing")


def test_log_size_per_partition(node_factory):
    node, port = metrics_node(node_factory)
    topic = unique("sizes")
    create_topic(node.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", **QUIET})
    for i in range(200):
        p.produce(topic, value=b"x" * 300, partition=0)
    assert p.flush(30) == 0

    def on_disk(partition: int) -> int:
        return sum(f.stat().st_size for f in node.partition_dir(topic, partition).glob("*.log"))

    def sized():
        text = scrape(port)
        sizes = [value(text, "runnel_log_size_bytes", f'topic="{topic}",partition="{i}"') for i in (0, 1)]
        return sizes == [on_disk(0), 0] and sizes
    sizes = wait_until(sized, 10, 0.2, "the log size gauges to match the segment files")
    assert sizes[0] > 200 * 300
    a = AdminClient({"bootstrap.servers": node.bootstrap, **QUIET})
    a.delete_topics([topic])[topic].result(30)
    wait_until(lambda: f'topic="{topic}"' not in scrape(port), 10, 0.2, "the deleted topic's series to go")


def test_no_metrics_port_no_server(node_factory):
    port = free_ports(1)[0]
    node_factory()
    assert not port_accepts(port)


def test_transaction_metrics(node_factory):
    """The transaction coordinator counts the transactions it ends by outcome, and the partition
    leader the markers it writes and the produces it refuses unverified (KIP-890 part 1)."""
    node, port = metrics_node(node_factory, {"transaction.state.log.replication.factor": 1,
                                             "transaction.state.log.min.isr": 1,
                                             "transaction.state.log.num.partitions": 2})
    topic = unique("txn-metrics")
    create_topic(node.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": unique("m"), **QUIET})
    p.init_transactions(60)
    for commit in (True, True, False):
        p.begin_transaction()
        for i in range(4):
            p.produce(topic, value=b"v", partition=i % 2)
        p.flush(30)
        (p.commit_transaction if commit else p.abort_transaction)(30)

    def counted():
        text = scrape(port)
        return (value(text, "runnel_transactions_committed_total") == 2
                and value(text, "runnel_transactions_aborted_total") == 1
                and value(text, "runnel_transaction_markers_written_total") == 6 and text)

    text = wait_until(counted, 20, 0.2, "the transaction counters")
    # A counter that counted nothing is there at zero, so a dashboard's rate() reads 0.
    assert value(text, "runnel_transaction_verification_failures_total") == 0
    assert value(text, "runnel_transactions_timed_out_total") == 0
    assert value(text, "runnel_requests_total", 'api="EndTxn"') == 3


def test_consumer_lag_of_a_group(tmp_path):
    """The group's coordinator exports runnel_consumer_group_lag{group,topic} (the partitions'
    high watermarks less the committed offsets, led here or asked of other brokers) and
    runnel_consumer_group_max_lag, follows new records, and drops the series when the group goes."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as TP

    from cluster import create, start_cluster

    ports = free_ports(3)
    cports = free_ports(3)
    controllers, brokers = start_cluster(
        tmp_path, each_broker_props=[{"metrics.port": p, "metrics.host": "127.0.0.1"} for p in ports],
        each_controller_props=[{"metrics.port": p, "metrics.host": "127.0.0.1"} for p in cports])
    try:
        topic, group = unique("lag"), unique("lag-group")
        create(brokers[0], topic, 6, 1)  # leaders spread over the three brokers
        p = Producer({"bootstrap.servers": brokers[0].bootstrap, "acks": "all", **QUIET})
        for part in range(6):
            for i in range(50):
                p.produce(topic, value=b"v", partition=part)
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": brokers[0].bootstrap, "group.id": group, **QUIET})
        c.commit(offsets=[TP(topic, part, 10 + part) for part in range(6)], asynchronous=False)

        def lag(name: str) -> float | None:
            found = []
            for port in ports:
                text = scrape(port)
                found += [float(m.group(1)) for m in re.finditer(
                    re.escape(name) + r'\{[^}]*group="' + re.escape(group) + r'"[^}]*\} ([0-9.e+-]+)$', text, re.M)]
            assert len(found) <= 1, f"{name} of one group is exported by one broker, its coordinator: {found}"
            return found[0] if found else None

        # 6 x 50 records, committed 10..15: 300 - 75 behind, the worst partition 0 with 40.
        wait_until(lambda: lag("runnel_consumer_group_lag") == 225, 40, 0.5, "the group's lag 225")
        assert lag("runnel_consumer_group_max_lag") == 40
        for i in range(5):
            p.produce(topic, value=b"v", partition=0)
        assert p.flush(30) == 0
        wait_until(lambda: lag("runnel_consumer_group_lag") == 230, 40, 0.5, "the lag following new records")
        assert lag("runnel_consumer_group_max_lag") == 45
        # The commit path's timers (tools/bench metadata's breakdown): the topic's creation went
        # through a broker's forward to the active controller, its append, fsync and a voter's
        # acknowledgement, and the other voters' fetch-to-fsync.
        # (The admin client sends CreateTopics to the broker Metadata names as the controller, any
        # of the three: the forward timer is summed over them.)
        texts = [scrape(port) for port in cports]
        active = [t for t in texts if value(t, "runnel_controller_active") == 1]
        assert len(active) == 1
        for name in ("runnel_raft_append_to_fsync_seconds_count", "runnel_raft_append_to_follower_ack_seconds_count"):
            assert value(active[0], name) > 0, name
        assert sum(value_or_zero(t, "runnel_raft_follower_fetch_to_fsync_seconds_count")
                   for t in texts if t is not active[0]) > 0
        assert sum(value_or_zero(scrape(port), "runnel_controller_forward_duration_seconds_count", 'api="CreateTopics"')
                   for port in ports) > 0
        c.close()
        a = AdminClient({"bootstrap.servers": brokers[0].bootstrap, **QUIET})
        a.delete_consumer_groups([group], request_timeout=30)[group].result(30)
        wait_until(lambda: lag("runnel_consumer_group_lag") is None, 40, 0.5, "the series of a deleted group gone")
    finally:
        for n in brokers + controllers:
            n.close()
