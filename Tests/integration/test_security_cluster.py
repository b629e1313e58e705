"""A secured 3-controller, 3-broker cluster: every listener SASL_SSL (SCRAM-SHA-512, users from
`runnel format --add-scram`, which the controllers also use to log in to each other before the
first leader commits them), the StandardAuthorizer on with the nodes' own user as super user.

It survives kill -9 of the active controller and of a partition leader under an idempotent
acks=all producer with no acknowledged record lost; ACL bindings and SCRAM users made over the
wire survive the controller failover and a full restart, and show in `runnel metadata sql` over a
controller's data dir. UpdateFeatures needs ALTER on the cluster (a topic-only user is refused).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from nodes import _LIVE, free_ports, kafka_uuid, runnel_bin
from secure import OPENSSL, PKI, SecureNode, jaas_scram
from util import QUIET, wait_until

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make test certificates")

PASSWORD = "node-secret"
ALICE = "alice-secret"


def start(tmp_path):
    pki = PKI(tmp_path / "pki", clients=())
    cports, bports = free_ports(3), free_ports(3)
    voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(cports))
    cid = kafka_uuid()
    common = {
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:SASL_SSL,BROKER:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.controller.protocol": "SCRAM-SHA-512",
        "listener.name.controller.scram-sha-512.sasl.jaas.config": jaas_scram("node", PASSWORD),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:node",
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        "metadata.log.max.record.bytes.between.snapshots": "2000",
        **pki.server_ssl(),
    }
    scram = [f"SCRAM-SHA-512=[name=node,password={PASSWORD}]"]
    nodes = []
    for i, port in enumerate(cports):
        props = {**common, "process.roles": "controller", "node.id": str(i + 1), "listeners": f"CONTROLLER://127.0.0.1:{port}",
                 "log.dirs": str(tmp_path / f"c{i + 1}" / "data")}
        nodes.append(SecureNode(tmp_path / f"c{i + 1}", props, ready_port=port, tls=True, cluster_id=cid, scram=scram))
    for i, port in enumerate(bports):
        props = {**common, "process.roles": "broker", "node.id": str(i + 4), "listeners": f"BROKER://127.0.0.1:{port}",
                 "inter.broker.listener.name": "BROKER", "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                 "listener.name.broker.scram-sha-512.sasl.jaas.config": jaas_scram("node", PASSWORD),
                 "log.dirs": str(tmp_path / f"b{i + 4}" / "data"), "default.replication.factor": "3", "min.insync.replicas": "2",
                 "offsets.topic.replication.factor": "3", "replica.lag.time.max.ms": "5000"}
        nodes.append(SecureNode(tmp_path / f"b{i + 4}", props, ready_port=port, tls=True, cluster_id=cid, scram=scram))
    launch_all(nodes)
    return pki, nodes[:3], nodes[3:]


def launch_all(nodes) -> None:
    """Starts every node before waiting for any: a broker answers only once the controllers have
    a leader, and the controllers need each other for that."""
    for n in nodes:
        n._launch()
        n._expected_exit = False
        n.starts += 1
        _LIVE.add(n)
    for n in nodes:
        n.wait_ready(90)


def client(pki, brokers, user="node", password=PASSWORD) -> dict:
    return {"bootstrap.servers": ",".join(f"127.0.0.1:{b.ready_port}" for b in brokers), "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password, "ssl.ca.location": pki.ca, **QUIET}


def command_config(pki, path, user="node", password=PASSWORD) -> str:
    path.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username={user}\nsasl.password={password}\n"
                    f"ssl.ca.location={pki.ca}\n")
    return str(path)


def runnel(*args, timeout=60) -> subprocess.CompletedProcess:
    p = subprocess.run([str(runnel_bin()), *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p


def active_controller(controllers, config) -> int:
    bootstrap = ",".join(f"127.0.0.1:{c.ready_port}" for c in controllers if c.is_alive())
    out = runnel("metadata", "quorum", "status", "--json", "--bootstrap-controller", bootstrap, "--command-config", config)
    return json.loads(out.stdout)["leaderId"]


def test_secured_cluster_survives_kills_and_keeps_acls_and_users(tmp_path):
    pki, controllers, brokers = start(tmp_path)
    stop = threading.Event()
    try:
        # Every key of these configs is read (super.users included): no node warns about one.
        for n in controllers + brokers:
            assert "unknown configuration key" not in n.log_text(), n.log_tail()
        config = command_config(pki, tmp_path / "node.properties")
        bootstrap = ",".join(f"127.0.0.1:{b.ready_port}" for b in brokers)
        admin = AdminClient(client(pki, brokers))
        topic = "secure-orders"
        admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(60)
        # A user and an ACL made over the wire, before the failover.
        runnel("user", "scram", "set", "alice", "--mechanism", "SCRAM-SHA-512", "--password", ALICE, "--bootstrap-server", bootstrap,
               "--command-config", config)
        runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "All", "--topic", topic, "--bootstrap-server", bootstrap,
               "--command-config", config)
        # UpdateFeatures needs ALTER on the cluster: alice (topic ACLs only) is refused, the super user is not.
        alice_config = command_config(pki, tmp_path / "alice.properties", "alice", ALICE)
        p = subprocess.run([str(runnel_bin()), "features", "upgrade", "--release-version", "3.9", "--dry-run",
                            "--bootstrap-server", bootstrap, "--command-config", alice_config],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in p.stdout, p.stdout + p.stderr
        p = runnel("features", "upgrade", "--release-version", "3.9", "--dry-run", "--bootstrap-server", bootstrap,
                   "--command-config", config)
        assert p.stdout.strip() == "metadata.version can be upgraded to 21.", p.stdout

        acked: set[bytes] = set()
        errors = []

        def produce():
            p = Producer({**client(pki, brokers, "alice", ALICE), "acks": "all", "enable.idempotence": True,
                          "message.timeout.ms": 60000})

            def done(err, msg):
                if err is None:
                    acked.add(msg.value())
                else:
                    errors.append(err)
            i = 0
            while not stop.is_set():
                p.produce(topic, f"v-{i}".encode(), on_delivery=done)
                p.poll(0)
                i += 1
                time.sleep(0.002)
            p.flush(90)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        wait_until(lambda: len(acked) > 200, timeout=60, what="records acknowledged")

        # kill -9 the active controller
        leader_id = wait_until(lambda: max(active_controller(controllers, config), 0), timeout=30, what="an active controller")
        victim = controllers[leader_id - 1]
        victim.kill9()
        wait_until(lambda: active_controller([c for c in controllers if c.is_alive()], config) not in (leader_id, -1), timeout=30,
                   what="a new active controller")
        seen = len(acked)
        wait_until(lambda: len(acked) > seen + 200, timeout=60, what="records acknowledged after the controller failover")

        # kill -9 the leader of partition 0
        md = AdminClient(client(pki, brokers)).list_topics(topic, timeout=10)
        partition_leader = md.topics[topic].partitions[0].leader
        leader_node = next(b for b in brokers if b.props["node.id"] == str(partition_leader))
        leader_node.kill9()
        seen = len(acked)
        wait_until(lambda: len(acked) > seen + 200, timeout=60, what="records acknowledged after the leader kill")
        launch_all([victim, leader_node])
        stop.set()
        thread.join(120)
        assert not errors, errors[:3]

        # Every acknowledged record is there.
        consumer = Consumer({**client(pki, brokers), "group.id": "verify", "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
        got: set[bytes] = set()
        deadline = time.monotonic() + 90
        while not acked <= got and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                got.add(m.value())
        consumer.close()
        assert acked <= got, f"{len(acked - got)} acknowledged records lost"

        # The user and the ACL survived the failover and survive a full restart.
        for n in brokers + controllers:
            n.stop()
        launch_all(controllers + brokers)
        users = json.loads(runnel("user", "scram", "list", "--json", "--bootstrap-server", bootstrap, "--command-config", config).stdout)
        assert {"user": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 4096} in users
        acls = json.loads(runnel("acl", "list", "--json", "--topic", topic, "--bootstrap-server", bootstrap, "--command-config", config).stdout)
        assert any(a["principal"] == "User:alice" and a["operation"] == "ALL" for a in acls)
        # alice still logs in and writes.
        p = Producer({**client(pki, brokers, "alice", ALICE), "acks": "all"})
        p.produce(topic, b"after-restart")
        assert p.flush(30) == 0

        # And they are in the metadata snapshot, readable offline.
        controllers[0].stop()
        data = controllers[0].props["log.dirs"]
        rows = json.loads(runnel("metadata", "sql", data, "SELECT principal, resource_name, operation FROM acls", "--json").stdout)
        assert {"principal": "User:alice", "resource_name": topic, "operation": "2"} in rows  # 2 is ALL
        rows = json.loads(runnel("metadata", "sql", data, "SELECT name, mechanism FROM scram_credentials ORDER BY name", "--json").stdout)
        assert [r["name"] for r in rows] == ["alice", "node"]
    finally:
        stop.set()
        for n in brokers + controllers:
            n.close()
