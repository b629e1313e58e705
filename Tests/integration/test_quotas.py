"""Client quotas (KIP-13, KIP-55, KIP-124, KIP-546) as Kafka enforces them.

`runnel quota set|describe` (AlterClientQuotas through a broker to the active controller,
DescribeClientQuotas from the broker's image) sets, lists and removes producer_byte_rate,
consumer_byte_rate and request_percentage of client ids, users and their defaults, with Kafka's
match rules (also through the Java Admin client), and bad input (an unknown key, a fractional byte rate, an ip entity) gets one
sentence. A confluent-kafka producer whose client id has producer_byte_rate=1 MB/s, pushing as
fast as it can, gets 1 MB/s +- 20 % through over two quota windows (22 s, after an 11 s
warm-up) and is told of throttle time; a consumer under consumer_byte_rate=1 MB/s likewise
reads at 1 MB/s; a client over request_percentage has its connection muted; the broker's
Prometheus metrics count each entity's bytes and throttle time. Quotas are metadata records: after the
active controller of a 3-controller cluster is killed, they are still listed, a new one can be
set, the old one is enforced, and the new active controller removes it (it knows it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer

import javaclient
import kwire
from cluster import active_controller, create, start_cluster
from nodes import runnel_bin
from test_metrics import metrics_node, scrape, value
from util import QUIET, create_topic, unique, wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")

MB = 1024 * 1024
# Kafka's Rate (quota.window.num=11 samples of 1 s) lets a new client through with the quota's
# worth of the last 10 windows at once, and again each time a burst's sample expires 11 s
# later; a client over quota thus gets bursts and throttle waits that average out to the quota
# over whole 11 s windows. The first window is left out (warm-up), the rate is measured over
# the two windows after it (22 s).
WARMUP = 11
SPAN = 22


def quota(bootstrap: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(runnel_bin()), "quota", *args, "--bootstrap-server", bootstrap],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def described(bootstrap: str, *args: str) -> dict[tuple, dict]:
    """`runnel quota describe --json` as {((type, name), ...): quotas}."""
    out = json.loads(quota(bootstrap, "describe", *args, "--json").stdout)
    return {tuple(sorted(e["entity"].items())): e["quotas"] for e in out}


def push(bootstrap: str, topic: str, client_id: str, seconds: float, size: int = 10_000,
         warmup: float = 0) -> tuple[int, list[float]]:
    """Produces `size`-byte records as fast as the broker lets through for `warmup + seconds`;
    gives the bytes acknowledged in the last `seconds` and the throttle times (ms) librdkafka
    reported."""
    throttles: list[float] = []
    acked = [0]
    start = time.monotonic()
    counting = start + warmup
    end = counting + seconds

    def on_delivery(err, msg):
        if err is None and counting <= time.monotonic() < end:
            acked[0] += len(msg.value())

    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
                  "queue.buffering.max.kbytes": 4096, "compression.type": "none", "batch.size": 131072,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time * 1000), **QUIET})
    payload = b"x" * size
    while time.monotonic() < end:
        try:
            p.produce(topic, payload, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    return acked[0], throttles


def test_set_describe_and_remove_quotas(broker):
    b = broker.bootstrap
    client = unique("app")
    quota(b, "set", "--entity-type", "clients", "--entity-name", client,
          "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152")
    quota(b, "set", "--entity-type", "users", "--entity-default", "--add-config", "request_percentage=50.5")
    quota(b, "set", "--entity-type", "users", "--entity-name", "alice", "--entity-type", "clients",
          "--entity-default", "--add-config", "producer_byte_rate=1000")
    everything = described(b)
    assert everything[(("client-id", client),)] == {"consumer_byte_rate": 2097152.0, "producer_byte_rate": 1048576.0}
    assert everything[(("user", None),)] == {"request_percentage": 50.5}
    assert everything[(("client-id", None), ("user", "alice"))] == {"producer_byte_rate": 1000.0}
    # Kafka's match rules: a type alone matches every entity of exactly that type (strict).
    assert set(described(b, "--entity-type", "users")) == {(("user", None),)}
    assert set(described(b, "--entity-type", "clients", "--entity-name", client)) == {(("client-id", client),)}
    assert set(described(b, "--user", "alice", "--client-defaults")) == {(("client-id", None), ("user", "alice"))}
    text = quota(b, "describe", "--entity-type", "clients", "--entity-name", client).stdout
    assert f"Quota configs for client-id '{client}' are consumer_byte_rate=2097152.0, producer_byte_rate=1048576.0" in text

    quota(b, "set", "--entity-type", "clients", "--entity-name", client, "--delete-config", "consumer_byte_rate")
    assert described(b, "--client", client)[(("client-id", client),)] == {"producer_byte_rate": 1048576.0}
    quota(b, "set", "--entity-type", "clients", "--entity-name", client, "--delete-config", "producer_byte_rate")
    assert (("client-id", client),) not in described(b)
    quota(b, "set", "--user-defaults", "--delete-config", "request_percentage")
    quota(b, "set", "--user", "alice", "--client-defaults", "--delete-config", "producer_byte_rate")

    # A dry run changes nothing.
    quota(b, "set", "--client", client, "--add-config", "producer_byte_rate=5", "--dry-run")
    assert (("client-id", client),) not in described(b)


@pytest.mark.parametrize("args, sentence", [
    (["--client", "x", "--add-config", "producer_byte_rate=1.5"], "producer_byte_rate must be a Long value"),
    (["--client", "x", "--add-config", "producer_byte_rate=0"], "must be a positive number"),
    (["--client", "x", "--add-config", "fetch_rate=10"], "Invalid configuration key fetch_rate"),
    (["--entity-type", "ips", "--entity-name", "1.2.3.4", "--add-config", "producer_byte_rate=10"],
     "IP quotas (KIP-612) are not supported"),
])
def test_bad_quotas_get_one_sentence(broker, args, sentence):
    p = quota(broker.bootstrap, "set", *args, check=False)
    assert p.returncode == 1, p.stdout
    assert sentence in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_java_admin_alters_and_describes_quotas(broker):
    """Kafka's own Admin client (kafka-clients 3.9.1): alterClientQuotas and
    describeClientQuotas with ClientQuotaFilter.contains / containsOnly."""
    why = javaclient.missing()
    if why:
        pytest.skip(f"Java client unavailable: {why}")
    b = broker.bootstrap
    user = unique("java-user")
    res = javaclient.run("quotas", b, "alter", f"user={user},client-id=<default>", "+producer_byte_rate=4096",
                         "+request_percentage=12.5")
    assert res.ok and res.objects == [{"altered": True}], res.explain()
    res = javaclient.run("quotas", b, "alter", f"user={user}", "+consumer_byte_rate=8192")
    assert res.ok, res.explain()
    res = javaclient.run("quotas", b, "describe", f"user={user}")
    assert res.ok, res.explain()
    assert sorted(res.objects, key=lambda o: len(o["entity"])) == [
        {"entity": {"user": user}, "quotas": {"consumer_byte_rate": 8192.0}},
        {"entity": {"client-id": None, "user": user},
         "quotas": {"producer_byte_rate": 4096.0, "request_percentage": 12.5}},
    ]
    res = javaclient.run("quotas", b, "describe", f"user={user}", "strict")
    assert [o["entity"] for o in res.objects] == [{"user": user}], res.explain()
    res = javaclient.run("quotas", b, "alter", f"user={user},client-id=<default>", "-producer_byte_rate")
    assert res.ok, res.explain()
    res = javaclient.run("quotas", b, "describe", f"user={user}", "client-id=<default>", "strict")
    assert res.objects == [{"entity": {"client-id": None, "user": user}, "quotas": {"request_percentage": 12.5}}]
    res = javaclient.run("quotas", b, "alter", "client-id=x", "+producer_byte_rate=1.5")
    assert not res.ok and res.objects[0]["error"] == "InvalidRequestException", res.explain()
    assert "must be a Long value" in res.objects[0]["message"]


def test_producer_is_held_to_its_byte_rate(node_factory):
    broker, metrics_port = metrics_node(node_factory)
    b = broker.bootstrap
    topic = unique("quota-produce")
    create_topic(b, topic)
    client = unique("quota-producer")
    quota(b, "set", "--entity-type", "clients", "--entity-name", client, "--add-config", f"producer_byte_rate={MB}")
    acked, throttles = push(b, topic, client, SPAN, warmup=WARMUP)
    rate = acked / SPAN
    print(f"producer: {rate / MB:.3f} MB/s over {SPAN} s, {len(throttles)} throttle reports, max {max(throttles or [0])} ms")
    assert 0.8 * MB <= rate <= 1.2 * MB, rate
    assert any(t > 0 for t in throttles), throttles
    # Kafka's per-entity byte-rate and throttle-time, as Prometheus counters.
    text = scrape(metrics_port)
    labels = f'type="Produce",user="",client_id="{client}"'
    assert value(text, "runnel_client_quota_bytes_total", labels) >= acked, text
    assert value(text, "runnel_client_quota_throttle_time_ms_total", labels) > 0
    assert value(text, "runnel_client_quota_throttled_total", labels) > 0


def test_consumer_is_held_to_its_byte_rate(broker):
    b = broker.bootstrap
    topic = unique("quota-consume")
    create_topic(b, topic)
    filled, _ = push(b, topic, unique("filler"), 5, size=50_000)
    assert filled >= 45 * MB, f"only {filled} bytes written to read back"
    client = unique("quota-consumer")
    quota(b, "set", "--client", client, "--add-config", f"consumer_byte_rate={MB}")
    throttles: list = []
    c = Consumer({"bootstrap.servers": b, "group.id": unique("g"), "client.id": client,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time), **QUIET})
    c.subscribe([topic])
    read = 0
    start = None
    try:
        # As for the producer: a window of warm-up, then two measured.
        while start is None or time.monotonic() - start < WARMUP + SPAN:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            if start is None:
                start = time.monotonic()
            if time.monotonic() - start >= WARMUP:
                read += len(m.value())
    finally:
        c.close()
    rate = read / SPAN
    print(f"consumer: {rate / MB:.3f} MB/s over {SPAN} s, {len(throttles)} throttle reports")
    assert 0.8 * MB <= rate <= 1.2 * MB, rate
    assert throttles, "no throttle time reported"


def metadata_round_trips(bootstrap: str, client_id: str, seconds: float) -> tuple[int, bool]:
    """Metadata v1 requests one after another on one connection for `seconds`: how many were
    answered, and whether the broker stopped answering for a second (a muted connection)."""
    host, port = bootstrap.rsplit(":", 1)
    answered, stalled = 0, False
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(1.0)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            body = kwire.request_header_v1(kwire.API_METADATA, 1, answered, client_id) + kwire.i32(-1)
            sock.sendall(kwire.frame(body))
            try:
                size = int.from_bytes(sock.recv(4, socket.MSG_WAITALL), "big", signed=True)
                sock.recv(size, socket.MSG_WAITALL)
            except socket.timeout:
                stalled = True
                break
            answered += 1
    return answered, stalled


def test_request_percentage_mutes_a_busy_client(broker):
    """request_percentage (KIP-124): the time a client's requests take on the broker, as a
    percentage of one thread; over it, the connection is muted for the throttle time."""
    b = broker.bootstrap
    limited = unique("busy")
    quota(b, "set", "--client", limited, "--add-config", "request_percentage=0.01")
    free, free_stalled = metadata_round_trips(b, unique("free"), 2)
    held, held_stalled = metadata_round_trips(b, limited, 2)
    print(f"request_percentage: {free} Metadata answers unlimited, {held} at 0.01 %")
    assert not free_stalled and free > 200, free
    assert held_stalled and held < free / 5, (held, free)


def test_quotas_survive_controller_failover(tmp_path):
    controllers, brokers = start_cluster(tmp_path)
    try:
        b = brokers[0].bootstrap
        first = unique("before")
        quota(b, "set", "--client", first, "--add-config", "producer_byte_rate=102400")
        leader = active_controller(controllers)
        next(c for c in controllers if c.node_id == leader).kill9()
        wait_until(lambda: active_controller(controllers) != leader, timeout=30, what="a new active controller")
        second = unique("after")
        wait_until(lambda: quota(b, "set", "--client", second, "--add-config", "consumer_byte_rate=204800",
                                 check=False).returncode == 0, timeout=30, what="a quota set after failover")
        for n in brokers:
            seen = described(n.bootstrap)
            assert seen[(("client-id", first),)] == {"producer_byte_rate": 102400.0}, n
            assert seen[(("client-id", second),)] == {"consumer_byte_rate": 204800.0}, n
        # Still enforced: 100 KB/s lets through about 1.5 MB in 5 s (10 windows at once, then the rate).
        topic = unique("failover-quota")
        create(brokers[0], topic, 1, 3)
        acked, throttles = push(b, topic, first, 5)
        print(f"after failover: {acked / 5 / 1024:.0f} KB/s, {len(throttles)} throttle reports")
        assert acked <= 2 * MB, acked
        assert any(t > 0 for t in throttles), throttles
        # The new active controller holds the first quota too: it writes the removal of a key only
        # when its image has it.
        quota(b, "set", "--client", first, "--delete-config", "producer_byte_rate")
        wait_until(lambda: all((("client-id", first),) not in described(n.bootstrap) for n in brokers),
                   timeout=10, what="the removal on every broker")
    finally:
        for n in brokers + controllers:
            n.close()
