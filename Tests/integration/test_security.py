"""Security with real clients against one combined Runnel node: TLS, SASL and the authorizer.

The node has four listeners: SASL_SSL with SCRAM-SHA-512 and SCRAM-SHA-256 (users from
`runnel format --add-scram` and `runnel user scram set`), SASL_PLAINTEXT with PLAIN (users from
the listener's JAAS config), SSL requiring a client certificate (the principal from its subject
through ssl.principal.mapping.rules), and a PLAINTEXT controller listener. The StandardAuthorizer
is on with User:admin as super user; `alice` gets ACLs on the `sec-` topic and group prefix,
`bob` gets none. Certificates are made with openssl at test time.

Each client library is used at least once and each mechanism at least once: confluent-kafka
(SCRAM-SHA-512 over SASL_SSL, wrong password), kafka-python (SCRAM-SHA-256 over SASL_SSL),
aiokafka (PLAIN over SASL_PLAINTEXT), kcat (SSL with a client certificate), the Java client
(SCRAM-SHA-512 over SASL_SSL, and a wrong password); every one produces, consumes and runs a
consumer group.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import TopicCollection
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourcePatternType, ResourceType)

import javaclient
import kwire
from nodes import free_ports, kafka_uuid
from secure import PKI, OPENSSL, RawConnection, SecureNode, three_listener_props
from util import QUIET, kcat_path, unique, wait_until

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make test certificates")

ADMIN_PASSWORD = "admin-secret"
ALICE_PASSWORD = "alice-secret"
BOB_PASSWORD = "bob-secret"


class Cluster:
    def __init__(self, node: SecureNode, pki: PKI, ports: dict):
        self.node = node
        self.pki = pki
        self.ports = ports

    def bootstrap(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    # librdkafka settings for each way in
    def scram(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> dict:
        return {"bootstrap.servers": self.bootstrap("SASL_SSL"), "security.protocol": "SASL_SSL", "sasl.mechanisms": mechanism,
                "sasl.username": user, "sasl.password": password, "ssl.ca.location": self.pki.ca, **QUIET}

    def plain(self, user: str, password: str) -> dict:
        return {"bootstrap.servers": self.bootstrap("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
                "sasl.username": user, "sasl.password": password, **QUIET}

    def cert(self, name: str) -> dict:
        return {"bootstrap.servers": self.bootstrap("SSL"), "security.protocol": "SSL", "ssl.ca.location": self.pki.ca,
                "ssl.certificate.location": self.pki.cert(name), "ssl.key.location": self.pki.key(name), **QUIET}

    def runnel(self, *args: str, config: dict | None = None, listener: str = "SASL_SSL", check: bool = True) -> subprocess.CompletedProcess:
        """A `runnel` client command as admin over SCRAM-SHA-512 (or with `config`)."""
        path = self.node.workdir / f"client-{time.monotonic_ns()}.properties"
        settings = config or {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                              "sasl.password": ADMIN_PASSWORD, "ssl.ca.location": self.pki.ca}
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        p = subprocess.run([str(self.node.binary), *args, "--bootstrap-server", self.bootstrap(listener), "--command-config", str(path)],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stderr
        return p


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    work = tmp_path_factory.mktemp("secure")
    pki = PKI(work / "pki", clients=("alice", "admin", "carol"))
    ssl_port, sasl_ssl_port, sasl_plain_port, controller_port = free_ports(4)
    ports = {"SSL": ssl_port, "SASL_SSL": sasl_ssl_port, "SASL_PLAINTEXT": sasl_plain_port, "CONTROLLER": controller_port}
    props = {
        **three_listener_props(work, pki, ports, ADMIN_PASSWORD,
                               {"admin": ADMIN_PASSWORD, "alice": ALICE_PASSWORD, "bob": BOB_PASSWORD}),
        # The encrypted key on the SSL listener only: ssl.key.password must open it.
        "listener.name.ssl.ssl.keystore.location": str(pki.dir / "server-encrypted.pem"),
        "listener.name.ssl.ssl.key.password": PKI.KEY_PASSWORD,
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
    }
    node = SecureNode(work / "node", props, ready_port=sasl_ssl_port, tls=True, cluster_id=kafka_uuid(),
                      scram=[f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]", f"SCRAM-SHA-512=[name=alice,password={ALICE_PASSWORD}]"])
    node.start()
    c = Cluster(node, pki, ports)
    try:
        # alice: SCRAM-SHA-256 too, set over the wire; everything on sec- topics and groups.
        c.runnel("user", "scram", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--password", ALICE_PASSWORD)
        for kind in ("--topic", "--group"):
            c.runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "All", kind, "sec-", "--resource-pattern-type", "prefixed")
        c.runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "IdempotentWrite", "--cluster")
        yield c
    finally:
        node.close()


def produce(config: dict, topic: str, n: int, prefix: str = "m") -> None:
    p = Producer({**config, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(n):
        p.produce(topic, f"{prefix}-{i}".encode(), key=str(i).encode(), on_delivery=lambda e, m: errors.append(e) if e else None)
    assert p.flush(30) == 0
    assert not errors, errors


def consume_group(config: dict, topic: str, n: int, group: str) -> list[bytes]:
    c = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append(m.value())
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)
    c.close()
    assert committed[0].offset == n
    return got


# -- every client, every mechanism -------------------------------------------------------------

def test_confluent_scram_sha512_over_sasl_ssl(secure):
    topic = unique("sec-confluent")
    produce(secure.scram("alice", ALICE_PASSWORD), topic, 20)
    got = consume_group(secure.scram("alice", ALICE_PASSWORD), topic, 20, unique("sec-g"))
    assert sorted(got) == sorted(f"m-{i}".encode() for i in range(20))


def test_wrong_password_fails_and_other_clients_keep_working(secure):
    topic = unique("sec-wrong")
    produce(secure.scram("alice", ALICE_PASSWORD), topic, 1)
    errors = []
    bad = Producer({**secure.scram("alice", "not-the-password"), "error_cb": lambda e: errors.append(e)})
    good = Producer(secure.scram("alice", ALICE_PASSWORD))
    bad.produce(topic, b"never")
    bad.poll(3)
    wait_until(lambda: bad.poll(0.2) is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors), timeout=15,
               what="the authentication error")
    good.produce(topic, b"still works")
    assert good.flush(15) == 0
    bad.purge()
    # The node's log names the failure; the connection was closed, the node serves on.
    assert "authentication failed" in secure.node.log_text()


def test_kafka_python_scram_sha256_over_sasl_ssl(secure):
    from kafka import KafkaConsumer, KafkaProducer
    topic = unique("sec-kpy")
    common = dict(bootstrap_servers=secure.bootstrap("SASL_SSL"), security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                  sasl_plain_username="alice", sasl_plain_password=ALICE_PASSWORD, ssl_cafile=secure.pki.ca)
    producer = KafkaProducer(acks="all", **common)
    for i in range(10):
        producer.send(topic, f"k-{i}".encode()).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=unique("sec-kpy-g"), auto_offset_reset="earliest", consumer_timeout_ms=20000,
                             enable_auto_commit=False, **common)
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == 10:
            break
    consumer.commit()
    consumer.close()
    assert sorted(got) == sorted(f"k-{i}".encode() for i in range(10))


def test_aiokafka_plain_over_sasl_plaintext(secure):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    topic = unique("sec-aio")
    common = dict(bootstrap_servers=secure.bootstrap("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                  sasl_plain_username="alice", sasl_plain_password=ALICE_PASSWORD)

    async def go():
        producer = AIOKafkaProducer(acks="all", **common)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, f"a-{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=unique("sec-aio-g"), auto_offset_reset="earliest", enable_auto_commit=False, **common)
        await consumer.start()
        got = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < 10 and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    got += [r.value for r in records]
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(go())
    assert sorted(got) == sorted(f"a-{i}".encode() for i in range(10))


def test_kcat_with_a_client_certificate_over_ssl(secure):
    kcat = kcat_path()
    if kcat is None:
        pytest.skip("kcat is not installed")
    topic = unique("sec-kcat")
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.pki.ca}", "-X", f"ssl.certificate.location={secure.pki.cert('alice')}",
           "-X", f"ssl.key.location={secure.pki.key('alice')}"]
    p = subprocess.run([kcat, "-b", secure.bootstrap("SSL"), *tls, "-P", "-t", topic], input="c-1\nc-2\nc-3\n", text=True,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([kcat, "-b", secure.bootstrap("SSL"), *tls, "-G", unique("sec-kcat-g"), topic, "-o", "beginning", "-c", "3", "-e"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == ["c-1", "c-2", "c-3"]
    # carol's certificate maps to User:carol, who has no ACLs: the same produce is refused.
    p = subprocess.run([kcat, "-b", secure.bootstrap("SSL"), "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.pki.ca}",
                        "-X", f"ssl.certificate.location={secure.pki.cert('carol')}", "-X", f"ssl.key.location={secure.pki.key('carol')}",
                        "-P", "-t", topic], input="x\n", text=True, capture_output=True, timeout=60)
    assert p.returncode != 0 or "authoriz" in (p.stderr + p.stdout).lower(), p.stderr


def test_ssl_listener_requires_a_client_certificate(secure):
    p = Producer({"bootstrap.servers": secure.bootstrap("SSL"), "security.protocol": "SSL", "ssl.ca.location": secure.pki.ca,
                  "socket.timeout.ms": 3000, "message.timeout.ms": 4000, **QUIET})
    failures = []
    p.produce(unique("sec-nocert"), b"x", on_delivery=lambda e, m: failures.append(e))
    p.flush(10)
    assert failures and failures[0] is not None


def test_java_client_scram_over_sasl_ssl(secure):
    why = javaclient.missing()
    if why:
        pytest.skip(why)
    topic = unique("sec-java")
    props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
             "sasl.jaas.config": f'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="{ALICE_PASSWORD}";',
             "ssl.truststore.type": "PEM", "ssl.truststore.location": secure.pki.ca}
    res = javaclient.produce(secure.bootstrap("SASL_SSL"), topic, 20, props)
    assert res.ok, res.explain()
    res = javaclient.consume(secure.bootstrap("SASL_SSL"), topic, 20, group=unique("sec-java-g"), props=props)
    assert res.ok, res.explain()
    assert javaclient.committed(res) == {0: 20}
    bad = {**props, "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="wrong";',
           "max.block.ms": "5000", "delivery.timeout.ms": "5000", "request.timeout.ms": "4000"}
    res = javaclient.produce(secure.bootstrap("SASL_SSL"), topic, 1, bad, timeout=120)
    assert not res.ok
    assert "Authentication failed" in res.explain() or "SaslAuthenticationException" in res.explain(), res.explain()


# -- the authorizer ------------------------------------------------------------------------------

def test_principal_without_acls_is_refused_everything(secure):
    topic = unique("sec-bobs")
    admin = AdminClient(secure.scram("admin", ADMIN_PASSWORD))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    produce(secure.scram("admin", ADMIN_PASSWORD), topic, 3)
    bob = secure.plain("bob", BOB_PASSWORD)

    # produce
    failures = []
    p = Producer({**bob, "message.timeout.ms": 5000, "enable.idempotence": False})
    p.produce(topic, b"x", on_delivery=lambda e, m: failures.append(e))
    p.flush(10)
    assert failures[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # consume and offset commit, in a group bob may use (READ on bobgroup-*): the topic refuses
    secure.runnel("acl", "add", "--allow-principal", "User:bob", "--operation", "Read", "--group", "bobgroup-", "--resource-pattern-type", "prefixed")
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as raw:
        assert raw.login_plain("bob", BOB_PASSWORD)[0] == 0
        assert fetch_error(raw.send_request(1, 4, fetch_v4(topic, 0, 0, replica_id=-1))) == 29  # TOPIC_AUTHORIZATION_FAILED
    c = Consumer({**bob, "group.id": unique("bobgroup-"), "auto.offset.reset": "earliest"})
    with pytest.raises(KafkaException) as e:
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    c.close()
    # group join in a group bob may not read
    c = Consumer({**bob, "group.id": unique("sec-bobg"), "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    codes = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not codes:
        m = c.poll(0.5)
        if m is not None and m.error():
            codes.add(m.error().code())
    c.close()
    assert KafkaError.GROUP_AUTHORIZATION_FAILED in codes, codes

    # create/delete topic, describe/alter configs, DeleteRecords
    a = AdminClient(bob)
    new = unique("bobtopic")
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(new, 1, 1)])[new].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        a.delete_topics([topic])[topic].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    with pytest.raises(KafkaException) as e:
        a.describe_configs([resource])[resource].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        change = ConfigResource(ConfigResource.Type.TOPIC, topic,
                                incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        list(a.incremental_alter_configs([change]).values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Metadata hides the topic from bob, not from admin.
    assert topic not in a.list_topics(timeout=10).topics
    assert topic in admin.list_topics(timeout=10).topics
    # DeleteRecords needs DELETE: with DESCRIBE (so the client finds the leader) it is still refused.
    secure.runnel("acl", "add", "--allow-principal", "User:bob", "--operation", "Describe", "--topic", topic)
    wait_until(lambda: topic in a.list_topics(timeout=10).topics, timeout=10, what="bob to see the topic")
    with pytest.raises(KafkaException) as e:
        a.delete_records([TopicPartition(topic, 0, 1)])[TopicPartition(topic, 0, 1)].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_prefixed_allow_deny_wins_and_super_user(secure):
    admin = AdminClient(secure.scram("admin", ADMIN_PASSWORD))
    # bob may write every "pre-" topic; one is denied explicitly.
    open_topic, denied_topic = unique("pre-open"), unique("pre-denied")
    for t in (open_topic, denied_topic):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    for binding in [
        AclBinding(ResourceType.TOPIC, "pre-", ResourcePatternType.PREFIXED, "User:bob", "*", AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "pre-", ResourcePatternType.PREFIXED, "User:bob", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, denied_topic, ResourcePatternType.LITERAL, "User:bob", "*", AclOperation.WRITE, AclPermissionType.DENY),
    ]:
        admin.create_acls([binding])[binding].result(20)
    bob = secure.plain("bob", BOB_PASSWORD)
    results = {}
    p = Producer({**bob, "message.timeout.ms": 5000, "enable.idempotence": False})
    for t in (open_topic, denied_topic):
        p.produce(t, b"x", on_delivery=lambda e, m, t=t: results.__setitem__(t, e))
    p.flush(15)
    assert results[open_topic] is None
    assert results[denied_topic].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # describe_acls sees them; the super user writes the denied topic anyway.
    listed = secure.runnel("acl", "list", "--topic", denied_topic, "--json")
    assert any(b["permissionType"] == "DENY" for b in json.loads(listed.stdout))
    produce(secure.scram("admin", ADMIN_PASSWORD), denied_topic, 2)


def test_incremental_fetch_checks_read_on_every_request(secure):
    """A fetch session (KIP-227) does not carry an authorization: once bob's READ on the topic is
    denied, the next incremental fetch of his session answers TOPIC_AUTHORIZATION_FAILED."""
    admin = AdminClient(secure.scram("admin", ADMIN_PASSWORD))
    topic = unique("fs-read")
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    allow = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:bob", "*", AclOperation.READ,
                       AclPermissionType.ALLOW)
    admin.create_acls([allow])[allow].result(20)
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as raw:
        assert raw.login_plain("bob", BOB_PASSWORD)[0] == 0
        epoch = 1

        def fetch(session_id: int, session_epoch: int, parts: dict | None = None) -> kwire.FetchResult:
            return kwire.parse_fetch(raw.request(kwire.fetch_request(
                raw.next_id(), parts or {}, session_id=session_id, session_epoch=session_epoch)))

        full = {topic: [kwire.FetchPart(0, 0)]}

        def readable() -> bool:
            got = fetch(0, -1, full)
            return got.error_code == 0 and got.topics[topic][0].error_code == 0

        wait_until(readable, 20, 0.2, "bob's READ to take effect")
        opened = fetch(0, 0, full)
        session_id = opened.session_id
        assert session_id != 0 and opened.topics[topic][0].error_code == 0
        quiet = fetch(session_id, 1)
        assert quiet.error_code == 0 and quiet.partitions() == set()
        deny = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:bob", "*", AclOperation.READ,
                          AclPermissionType.DENY)
        admin.create_acls([deny])[deny].result(20)

        def refused() -> bool:
            nonlocal epoch
            epoch += 1
            got = fetch(session_id, epoch)
            assert got.error_code == 0, f"the session broke: {got.error_code}"
            return any(p.error_code == KafkaError.TOPIC_AUTHORIZATION_FAILED for p in got.topics.get(topic, []))

        wait_until(refused, 20, 0.2, "the session's next fetch to be refused READ")


def test_transaction_tools_need_describe_read_and_cluster_action(secure):
    """KIP-664's APIs are checked as Kafka checks them: ListTransactions leaves out ids the
    principal may not DESCRIBE, DescribeTransactions refuses them (and hides partitions of topics
    it may not DESCRIBE), DescribeProducers needs READ on the topic, and an abort (WriteTxnMarkers)
    needs CLUSTER_ACTION."""
    admin_conf = secure.scram("admin", ADMIN_PASSWORD)
    admin = AdminClient(admin_conf)
    mine, hidden = unique("sec-txn"), unique("hid-txn")
    for t in (mine, hidden):
        admin.create_topics([NewTopic(t, 1, 1)])[t].result(30)
    tid = unique("sec-tid-")
    p = Producer({**admin_conf, "transactional.id": tid})
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(mine, b"x", partition=0)
    p.produce(hidden, b"y", partition=0)
    p.flush(30)

    def alice(*args, check=True):
        config = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
                  "sasl.password": ALICE_PASSWORD, "ssl.ca.location": secure.pki.ca}
        return secure.runnel("transactions", *args, config=config, check=check)

    try:
        assert tid in [t["transactionalId"] for t in json.loads(secure.runnel("transactions", "list", "--json").stdout)]
        assert tid not in [t["transactionalId"] for t in json.loads(alice("list", "--json").stdout)]
        # The tool stops at FindCoordinator, which needs DESCRIBE on the id too; the coordinator
        # itself refuses DescribeTransactions as well (asked directly, on the wire).
        refused = alice("describe", "--transactional-id", tid, check=False)
        assert refused.returncode == 1 and "Not authorized to describe transactional id" in refused.stderr, refused.stderr
        with RawConnection(secure.ports["SASL_PLAINTEXT"]) as raw:
            assert raw.login_plain("alice", ALICE_PASSWORD)[0] == 0
            body = raw.send_request(65, 0, kwire.compact_array([kwire.compact_string(tid)]) + kwire.EMPTY_TAGS,
                                    flexible=True)
            r = kwire.Reader(body)
            r.i32()  # throttle
            assert r.compact_array_len() == 1
            assert r.i16() == 53 and r.compact_string() == tid  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        secure.runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "Describe", "--transactional-id",
                      "sec-tid-", "--resource-pattern-type", "prefixed")
        wait_until(lambda: tid in [t["transactionalId"] for t in json.loads(alice("list", "--json").stdout)],
                   timeout=15, what="alice to see the transaction")
        described = json.loads(alice("describe", "--transactional-id", tid, "--json").stdout)
        assert described["state"] == "Ongoing"
        assert described["partitions"] == [{"topic": mine, "partition": 0}], "the other topic is not alice's to see"

        [producer] = json.loads(alice("describe-producers", "--topic", mine, "--partition", "0", "--json").stdout)
        assert producer["currentTransactionStartOffset"] == 0
        # DESCRIBE on a topic shows it in Metadata, but its producers need READ.
        secure.runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "Describe", "--topic", hidden)
        no_read = alice("describe-producers", "--topic", hidden, "--partition", "0", check=False)
        assert no_read.returncode == 1 and "TOPIC_AUTHORIZATION_FAILED" in no_read.stderr, no_read.stderr
        no_cluster_action = alice("abort", "--topic", mine, "--partition", "0", "--start-offset", "0", check=False)
        assert no_cluster_action.returncode == 1, no_cluster_action.stderr
        assert "CLUSTER_AUTHORIZATION_FAILED" in no_cluster_action.stderr, no_cluster_action.stderr
        secure.runnel("transactions", "abort", "--topic", mine, "--partition", "0", "--start-offset", "0")
        [after] = json.loads(alice("describe-producers", "--topic", mine, "--partition", "0", "--json").stdout)
        assert after["currentTransactionStartOffset"] is None
    finally:
        p.abort_transaction(60)


def test_describe_log_dirs_needs_describe_on_the_cluster(secure):
    """DescribeLogDirs, as Kafka's handleDescribeLogDirsRequest: without DESCRIBE on the cluster
    the whole answer is CLUSTER_AUTHORIZATION_FAILED with no directories (v3+; before v3 the
    error code is not on the wire and the answer is empty), for `runnel log-dirs describe` and
    the Java Admin alike; with it, the broker's dirs."""
    alice = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
             "sasl.password": ALICE_PASSWORD, "ssl.ca.location": secure.pki.ca}
    data = secure.node.server_properties()["log.dirs"]
    refused = secure.runnel("log-dirs", "describe", "--json", config=alice, check=False)
    assert refused.returncode == 1, refused.stdout
    assert "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as raw:
        assert raw.login_plain("alice", ALICE_PASSWORD)[0] == 0
        r = kwire.Reader(raw.send_request(35, 3, kwire.compact_array(None) + kwire.EMPTY_TAGS, flexible=True))
        r.i32()  # throttle
        assert r.i16() == 31  # CLUSTER_AUTHORIZATION_FAILED
        assert r.compact_array_len() == 0
        r = kwire.Reader(raw.send_request(35, 1, kwire.i32(-1)))
        r.i32()
        assert r.i32() == 0, "v1 has no error code: no directories"
    if not javaclient.missing():
        props = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                 "sasl.jaas.config": f'org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="{ALICE_PASSWORD}";',
                 "ssl.truststore.type": "PEM", "ssl.truststore.location": secure.pki.ca}
        res = javaclient.admin(secure.bootstrap("SASL_SSL"), "logdirs", "1", *(f"{k}={v}" for k, v in props.items()))
        assert not res.ok and res.objects[0]["error"] == "ClusterAuthorizationException", res.explain()

    as_admin = json.loads(secure.runnel("log-dirs", "describe", "--json").stdout)
    assert [d["logDir"] for d in as_admin["brokers"][0]["logDirs"]] == [data]
    secure.runnel("acl", "add", "--allow-principal", "User:alice", "--operation", "Describe", "--cluster")
    try:
        allowed = wait_until(lambda: (p := secure.runnel("log-dirs", "describe", "--json", config=alice, check=False))
                             .returncode == 0 and json.loads(p.stdout), timeout=15, what="alice to describe log dirs")
        assert [b["broker"] for b in allowed["brokers"]] == [1]
        assert [d["logDir"] for d in allowed["brokers"][0]["logDirs"]] == [data]
    finally:
        secure.runnel("acl", "remove", "--allow-principal", "User:alice", "--operation", "Describe", "--cluster")


def test_metadata_authorized_operations(secure):
    # confluent-kafka asks for topic authorized operations with include_authorized_operations.
    a = AdminClient(secure.scram("alice", ALICE_PASSWORD))
    topic = unique("sec-ops")
    admin = AdminClient(secure.scram("admin", ADMIN_PASSWORD))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    desc = a.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(20)
    assert AclOperation.READ in desc.authorized_operations and AclOperation.WRITE in desc.authorized_operations
    cluster = a.describe_cluster(include_authorized_operations=True).result(20)
    assert cluster.authorized_operations == [] or AclOperation.ALTER not in (cluster.authorized_operations or [])


# -- inter-node APIs need CLUSTER_ACTION --------------------------------------------------------

def fetch_v4(topic: str, partition: int, offset: int, replica_id: int) -> bytes:
    t = topic.encode()
    body = struct.pack(">iiiib", replica_id, 100, 1, 1 << 20, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 1 << 20)
    return body


def fetch_error(body: bytes) -> int:
    """The first partition's error of a Fetch v4 answer: throttle, topics [name, partitions [index, error, ...]]."""
    assert struct.unpack(">i", body[4:8])[0] == 1
    name_len = struct.unpack(">h", body[8:10])[0]
    return struct.unpack(">h", body[10 + name_len + 8:10 + name_len + 10])[0]


def test_client_posing_as_follower_gets_an_error_and_moves_nothing(secure):
    topic = unique("sec-follow")
    produce(secure.scram("alice", ALICE_PASSWORD), topic, 5)
    before = watermark(secure, topic)
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as c:
        assert c.login_plain("alice", ALICE_PASSWORD)[0] == 0
        assert fetch_error(c.send_request(1, 4, fetch_v4(topic, 0, 5, replica_id=1))) == 29  # TOPIC_AUTHORIZATION_FAILED
    assert watermark(secure, topic) == before


def watermark(secure, topic: str) -> int:
    c = Consumer({**secure.scram("admin", ADMIN_PASSWORD), "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def test_client_cannot_register_or_unregister_a_broker(secure):
    # UnregisterBroker v0 (flexible): broker id 1, no tagged fields; on the controller listener
    # as ANONYMOUS.
    with RawConnection(secure.ports["CONTROLLER"]) as c:
        body = c.send_request(64, 0, struct.pack(">i", 1) + b"\x00", flexible=True)
        assert struct.unpack(">h", body[4:6])[0] == 31  # CLUSTER_AUTHORIZATION_FAILED
    # Through the broker's client listener as alice (no ALTER on the cluster): refused there, not
    # forwarded (the controller would answer BROKER_ID_NOT_REGISTERED for id 99).
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as c:
        assert c.login_plain("alice", ALICE_PASSWORD)[0] == 0
        body = c.send_request(64, 0, struct.pack(">i", 99) + b"\x00", flexible=True)
        assert struct.unpack(">h", body[4:6])[0] == 31
    # BrokerRegistration v0: id 99, cluster id, incarnation, no listeners/features, no rack.
    cluster_id = secure.node.cluster_id.encode()
    body = struct.pack(">i", 99) + bytes([len(cluster_id) + 1]) + cluster_id + bytes(16) + b"\x01" + b"\x01" + b"\x00" + b"\x00"
    with RawConnection(secure.ports["CONTROLLER"]) as c:
        answer = c.send_request(62, 0, body, flexible=True)
        assert struct.unpack(">h", answer[4:6])[0] == 31
    assert "99" not in [str(b) for b in AdminClient(secure.scram("admin", ADMIN_PASSWORD)).list_topics(timeout=10).brokers]


# -- SASL protocol details -----------------------------------------------------------------------

def test_request_before_authentication_closes_the_connection(secure):
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as c:
        # ApiVersions is fine before authentication ...
        assert c.send_request(18, 0, b"")[:2] == b"\x00\x00"
        # ... Metadata v1 is not.
        with pytest.raises((ConnectionError, OSError)):
            c.send_request(3, 1, struct.pack(">i", -1))


def test_failed_login_is_answered_then_closed(secure):
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as c:
        code, message = c.login_plain("bob", "wrong")
        assert code == 58  # SASL_AUTHENTICATION_FAILED
        assert "Authentication failed" in message
        with pytest.raises((ConnectionError, OSError)):
            c.send_request(18, 0, b"")
    with RawConnection(secure.ports["SASL_PLAINTEXT"]) as c:
        assert c.login_plain("bob", BOB_PASSWORD)[0] == 0


def test_security_disabled_without_an_authorizer_is_not_this_node(secure):
    # With the authorizer on, DescribeAcls answers; its admin path is exercised by runnel acl.
    out = secure.runnel("acl", "list", "--json")
    assert isinstance(json.loads(out.stdout), list)
    users = json.loads(secure.runnel("user", "scram", "list", "--json").stdout)
    assert {"user": "alice", "mechanism": "SCRAM-SHA-256", "iterations": 4096} in users
