"""A cluster of 3 controllers and 3 brokers started from server.properties files.

Topics created, grown and deleted through any broker show on every broker's Metadata with leaders
spread over the brokers. kill -9 of the active controller: CreateTopics works again through the
same broker. kill -9 of a broker: after the session timeout its partitions have new leaders from
their ISR. SIGTERM of a broker: its leadership moves before it exits (controlled shutdown). A
broker restarted after missing more than a snapshot's worth of metadata catches up by snapshot
and serves the right Metadata. `runnel dev` starts the same shape of cluster and stops it on Ctrl-C.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from cluster import SESSION_TIMEOUT_MS, active_controller, admin, cluster, create, leaders  # noqa: F401 (fixture)
from nodes import dev_base_port, runnel_bin
from util import QUIET, is_runnel, unique, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="a Runnel cluster")


def test_topics_through_any_broker(cluster):
    controllers, brokers = cluster
    create(brokers[1], "spread", 6, 3)
    for b in brokers:
        seen = wait_until(lambda: leaders(b, "spread"), 10, 0.1, f"topic on broker {b.node_id}")
        assert len(seen) == 6
        counts = {}
        for leader in seen.values():
            counts[leader] = counts.get(leader, 0) + 1
        assert counts == {4: 2, 5: 2, 6: 2}, f"leaders spread evenly: {seen}"
    a2 = admin(brokers[2])
    a2.create_partitions([NewPartitions("spread", 9)])["spread"].result(30)
    for b in brokers:
        wait_until(lambda: (leaders(b, "spread") or {}).keys() == set(range(9)), 10, 0.1, "9 partitions everywhere")
    a0 = admin(brokers[0])
    a0.delete_topics(["spread"], operation_timeout=20)["spread"].result(30)
    for b in brokers:
        wait_until(lambda: "spread" not in admin(b).list_topics(timeout=5).topics, 10, 0.1, "topic gone everywhere")


def test_controller_failover_then_create(cluster):
    controllers, brokers = cluster
    create(brokers[0], "before", 3, 3)
    leader = active_controller(controllers)
    victim = next(c for c in controllers if c.node_id == leader)
    victim.kill9()
    t0 = time.monotonic()
    create(brokers[0], "after", 3, 3)  # the same broker, a new active controller
    assert time.monotonic() - t0 < 30
    # Another broker learns of it from the metadata log moments later (it may first have to find
    # the new quorum leader to fetch from).
    wait_until(lambda: leaders(brokers[2], "after"), 15, 0.1, "the topic on another broker")
    assert active_controller(controllers) != leader


def test_broker_crash_moves_leadership(cluster):
    controllers, brokers = cluster
    create(brokers[0], "moves", 6, 3)
    victim = brokers[1]
    led = [p for p, l in wait_until(lambda: leaders(brokers[0], "moves"), 10).items() if l == victim.node_id]
    assert led
    victim.kill9()
    t0 = time.monotonic()
    after = wait_until(lambda: (lambda ls: ls if ls and victim.node_id not in ls.values() and -1 not in ls.values() else None)(leaders(brokers[0], "moves")),
                       SESSION_TIMEOUT_MS / 1000 + 15, 0.2, "new leaders for the crashed broker's partitions")
    elapsed = time.monotonic() - t0
    assert elapsed >= SESSION_TIMEOUT_MS / 1000 * 0.5, "leadership moves after the session times out, not before"
    md = admin(brokers[0]).list_topics("moves", timeout=5).topics["moves"]
    for p in led:
        part = md.partitions[p]
        assert part.leader in part.isrs and part.leader != victim.node_id


def test_sigterm_moves_leadership_before_exit(cluster):
    controllers, brokers = cluster
    create(brokers[0], "graceful", 6, 3)
    victim = brokers[2]
    wait_until(lambda: victim.node_id in (leaders(brokers[0], "graceful") or {}).values(), 10)
    rc = victim.stop(timeout=40)
    assert rc == 0
    # The controller moved leadership before the process exited; the other brokers learn it
    # from the metadata log within moments (never a session timeout).
    ls = wait_until(lambda: (lambda x: x if x and victim.node_id not in x.values() and -1 not in x.values() else None)(leaders(brokers[0], "graceful")),
                    SESSION_TIMEOUT_MS / 1000 / 2, 0.05, "leadership moved off the stopped broker")
    assert ls
    log = victim.log_text()
    assert "controlled shutdown: leadership moved away" in log
    assert log.index("controlled shutdown: leadership moved away") < log.rindex("stopped")


def test_broker_catches_up_by_snapshot(cluster):
    controllers, brokers = cluster
    late = brokers[2]
    late.kill9()
    names = [unique("many") for _ in range(40)]
    a = admin(brokers[0])
    for name in names:
        a.create_topics([NewTopic(name, 1, 2)], operation_timeout=20)[name].result(30)
    late.restart()
    wait_until(lambda: set(names) <= set(admin(late).list_topics(timeout=5).topics), 30, 0.2,
               "the restarted broker to serve every topic")
    assert "fetched snapshot from the leader" in late.log_text()


def test_runnel_dev(tmp_path):
    port = dev_base_port()
    p = subprocess.Popen([str(runnel_bin()), "dev", "--data-dir", str(tmp_path / "dev"), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            lines.append(line)
            if line.startswith("bootstrap:") or not line:
                break
        assert line.startswith("bootstrap:"), "runnel dev printed no bootstrap line:\n" + "".join(lines)
        servers = line.split(":", 1)[1].strip()
        assert servers.count(",") == 2
        a = AdminClient({"bootstrap.servers": servers, **QUIET})
        wait_until(lambda: len(a.list_topics(timeout=10).brokers) == 3, 20, 0.2, "3 brokers in the dev cluster's metadata")
        p.send_signal(signal.SIGINT)
        assert p.wait(90) == 0
        out = subprocess.run(["pgrep", "-f", str(tmp_path / "dev")], capture_output=True, text=True).stdout.strip()
        assert out == "", f"runnel dev left processes behind: {out}"
    finally:
        if p.poll() is None:
            p.kill()


def test_runnel_dev_reports_a_port_in_use(tmp_path):
    """A taken broker port stops `runnel dev` with the reason (the node's own words), before that
    broker joins the cluster, and leaves no process behind."""
    import socket
    port = dev_base_port()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port + 1))
    blocker.listen()
    try:
        done = subprocess.run([str(runnel_bin()), "dev", "--data-dir", str(tmp_path / "dev"), "--port", str(port)],
                              capture_output=True, text=True, timeout=120)
    finally:
        blocker.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broker2 exited during start-up" in done.stderr, done.stderr
    assert f"cannot bind 127.0.0.1:{port + 1}: Address already in use" in done.stderr, done.stderr
    assert "bootstrap:" not in done.stdout
    assert "registered with the controller" not in (tmp_path / "dev" / "broker2" / "server.log").read_text()
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "dev")], capture_output=True, text=True).stdout.strip()
    assert out == "", f"runnel dev left processes behind: {out}"


def test_operator_commands_against_runnel_dev(tmp_path):
    """The operator's commands against a running `runnel dev` cluster and a copy of a controller's
    data dir: the leader `runnel metadata quorum status` reports is the controller whose own
    metrics say it is active; a topic made with `runnel topic create` is listed by `runnel topic
    list` and its partition count is what `runnel metadata sql` counts in the copied data dir;
    `--json` carries the documented fields; an unreachable controller is one sentence, exit 1."""
    import json
    import shutil
    import urllib.request

    port = dev_base_port()
    runnel = str(runnel_bin())
    p = subprocess.Popen([runnel, "dev", "--data-dir", str(tmp_path / "dev"), "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics_line = ""
        deadline = time.monotonic() + 90
        servers = ""
        seen = []
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            seen.append(line)
            if not line:
                break
            if line.startswith("bootstrap:"):
                servers = line.split(":", 1)[1].strip()
            if line.startswith("metrics:"):
                metrics_line = line
                break
        assert servers and metrics_line, "runnel dev printed no bootstrap/metrics lines:\n" + "".join(seen)
        controllers = ",".join(f"127.0.0.1:{port + 100 + i}" for i in range(3))

        def cli(*args, timeout=30, input_text=None):
            return subprocess.run([runnel, *args], capture_output=True, text=True, timeout=timeout, input=input_text)

        def active_by_metrics():
            active = []
            for i in range(3):
                with urllib.request.urlopen(f"http://127.0.0.1:{port + 300 + i}/metrics", timeout=5) as r:
                    text = r.read().decode()
                if "runnel_controller_active 1" in text:
                    active.append(i + 1)
            return active[0] if len(active) == 1 else None

        status = wait_until(lambda: (lambda r: json.loads(r.stdout) if r.returncode == 0 else None)(
            cli("metadata", "quorum", "status", "--json", "--bootstrap-controller", controllers)), 30, 0.5, "quorum status")
        for field in ("clusterId", "leaderId", "leaderEpoch", "highWatermark", "currentVoters"):
            assert field in status, f"quorum status --json lacks {field}: {status}"
        assert status["leaderId"] == wait_until(active_by_metrics, 20, 0.5, "one active controller in the metrics")

        topic = unique("ops")
        made = cli("topic", "create", topic, "--partitions", "5", "--replication-factor", "3", "--json", "--bootstrap-server", servers)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["partitions"] == 5
        listed = wait_until(lambda: (lambda r: r.returncode == 0 and topic in {t["name"] for t in json.loads(r.stdout)} and r)(
            cli("topic", "list", "--json", "--bootstrap-server", servers)), 20, 0.5, "the topic in topic list")
        assert listed

        # The followers' replica fetchers count what they copied (Kafka's FetcherStats).
        def fetched_bytes() -> float:
            total = 0.0
            for i in range(3):
                with urllib.request.urlopen(f"http://127.0.0.1:{port + 200 + i}/metrics", timeout=5) as r:
                    m = re.search(r"^runnel_replica_fetch_bytes_total(\{[^}]*\})? ([0-9.e+]+)$", r.read().decode(), re.M)
                total += float(m.group(2)) if m else 0.0
            return total
        before = fetched_bytes()
        produced = cli("produce", topic, "--bootstrap-server", servers, "--acks", "all", input_text="x" * 5000 + "\n")
        assert produced.returncode == 0, produced.stderr
        # 5000 bytes of value reached two followers: at least 10,000 record bytes fetched.
        wait_until(lambda: fetched_bytes() - before >= 10_000, 20, 0.2, "the followers to fetch the record")

        # A copy of a controller's data dir, read offline.
        leader_dir = tmp_path / "dev" / f"controller{status['leaderId']}" / "data"
        copy = tmp_path / "copy"
        wait_until(lambda: (shutil.rmtree(copy, ignore_errors=True), shutil.copytree(leader_dir, copy),
                            cli("metadata", "sql", str(copy), f"SELECT count(*) AS n FROM partitions WHERE topic_name = '{topic}'", "--json"))[-1].stdout.count('"5"') == 1,
                   30, 1, "the copied data dir to hold the topic's 5 partitions")

        bad = cli("metadata", "quorum", "status", "--bootstrap-controller", "127.0.0.1:1", "--timeout-ms", "500")
        assert bad.returncode == 1 and len([ln for ln in bad.stderr.splitlines() if ln.strip()]) == 1, bad.stderr
    finally:
        # Ctrl-C stops the dev cluster's processes; kill -9 of `runnel dev` itself would not.
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(90)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["pkill", "-9", "-f", str(tmp_path / "dev")], capture_output=True)


def test_describe_quorum_through_a_broker(cluster):
    """Kafka's Admin.describeMetadataQuorum (and kafka-metadata-quorum --bootstrap-server) ask a
    broker, which forwards DescribeQuorum to the active controller."""
    import javaclient

    why = javaclient.missing()
    if why:
        pytest.skip(f"Java client unavailable: {why}")
    controllers, brokers = cluster
    res = javaclient.admin(brokers[1].bootstrap, "quorum", "-")
    assert res.ok, res.explain()
    q = res.objects[0]
    assert q["leaderId"] == active_controller(controllers)
    assert sorted(q["voters"]) == [1, 2, 3] and sorted(q["observers"]) == [4, 5, 6], q
    assert q["highWatermark"] > 0
