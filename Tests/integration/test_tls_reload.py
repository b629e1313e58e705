"""A TLS listener's key store changes at runtime, per broker, as Kafka's dynamic SSL configs do.

`listener.name.<listener>.ssl.keystore.location` set on broker 1 with IncrementalAlterConfigs
(confluent-kafka's admin client) makes connections accepted afterwards get the new certificate,
without a restart; setting the same path again after the file was rewritten in place reloads it
(KAFKA-14136); a store that does not load, or whose certificate has another subject or fewer
subject alternative names, is refused with INVALID_REQUEST and changes nothing; an
encrypted key takes its `listener.name.<listener>.ssl.key.password`, which DescribeConfigs lists
hidden; deleting the configs goes back to server.properties; `runnel config alter --broker 1`
sets them as kafka-configs.sh does; and the dynamic store still applies after a restart. Which
certificate a listener serves is read with Python's ssl module; a confluent-kafka producer and
consumer over the listener show a real client keeps working with the new one.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

from nodes import free_ports, kafka_uuid
from secure import OPENSSL, PKI, SecureNode
from test_cli_tools import runnel
from util import QUIET, admin, create_topic, unique, wait_until

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make the certificates")

KEY = "listener.name.ssl.ssl.keystore.location"


def fingerprint_of_file(pem: Path) -> str:
    """The SHA-256 of the first certificate in a PEM key store (key, then chain)."""
    text = pem.read_text()
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[start:end])).hexdigest()


def served(port: int, ca: str) -> str:
    """The SHA-256 of the certificate the listener on `port` presents to a new connection."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def alter(a, key: str, value: str | None, **more: str | None):
    """SET (DELETE for None) `key` and `more` (underscores for dots) on broker 1 in one request."""
    changes = {key: value, **{k.replace("_", "."): v for k, v in more.items()}}
    r = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.DELETE if v is None else AlterConfigOpType.SET)
        for k, v in changes.items()])
    try:
        a.incremental_alter_configs([r])[r].result(30)
        return 0, None
    except KafkaException as e:
        return e.args[0].code(), e.args[0].str()


def round_trip(bootstrap: str, ca: str, topic: str, value: bytes) -> None:
    tls = {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "ssl.ca.location": ca, **QUIET}
    p = Producer(tls)
    p.produce(topic, value=value)
    assert p.flush(30) == 0
    c = Consumer({**tls, "group.id": unique("g"), "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen: list[bytes] = []

    def read() -> bool:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.value())
        return value in seen
    try:
        wait_until(read, 30, what=f"{value!r} read back over TLS")
    finally:
        c.close()


def issue(pki: PKI, name: str, subject: str = "/CN=localhost/O=Runnel",
          san: str = "subjectAltName=DNS:localhost,IP:127.0.0.1") -> Path:
    """Another certificate from the same CA (by default for 127.0.0.1/localhost, as the first), as
    a PEM key store."""
    pki._issue(name, subject, san=san)
    store = pki.dir / f"{name}.pem"
    store.write_text((pki.dir / f"{name}.key").read_text() + (pki.dir / f"{name}.crt").read_text())
    return store


def test_listener_key_store_reloads_per_broker(tmp_path: Path, require_runnel):
    pki = PKI(tmp_path / "pki", clients=())
    plain, tls_port, controller = free_ports(3)
    props = {
        "process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls_port},CONTROLLER://127.0.0.1:{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER", "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(tmp_path / "node" / "data"), "num.partitions": "1", "offsets.topic.num.partitions": "1",
        **pki.server_ssl(),
    }
    node = SecureNode(tmp_path / "node", props, ready_port=plain, tls=False, cluster_id=kafka_uuid())
    node.start(60)
    try:
        bootstrap, tls_bootstrap = f"127.0.0.1:{plain}", f"127.0.0.1:{tls_port}"
        a = admin(bootstrap)
        topic = unique("tls-reload")
        create_topic(bootstrap, topic)
        original = fingerprint_of_file(pki.dir / "server.pem")
        assert served(tls_port, pki.ca) == original

        second = issue(pki, "server2")
        assert alter(a, KEY, str(second)) == (0, None)
        wait_until(lambda: served(tls_port, pki.ca) == fingerprint_of_file(second), 15, what="the second certificate served")
        round_trip(tls_bootstrap, pki.ca, topic, b"after-reload")

        # The same path again, after the file was rewritten in place, reloads it.
        third = issue(pki, "server3")
        second.write_text(third.read_text())
        assert alter(a, KEY, str(second)) == (0, None)
        wait_until(lambda: served(tls_port, pki.ca) == fingerprint_of_file(third), 15, what="the rewritten file served")

        # A store that does not load is refused and changes nothing.
        code, message = alter(a, KEY, str(tmp_path / "missing.pem"))
        assert code == KafkaError.INVALID_REQUEST, (code, message)
        assert "listener SSL" in message and "missing.pem" in message, message
        assert served(tls_port, pki.ca) == fingerprint_of_file(third)
        # So is one for another subject, or with fewer subject alternative names (Kafka's check,
        # unless ssl.allow.dn.changes / ssl.allow.san.changes).
        code, message = alter(a, KEY, str(issue(pki, "other-dn", subject="/CN=localhost/O=Elsewhere")))
        assert code == KafkaError.INVALID_REQUEST and "Keystore DistinguishedName does not match" in message, message
        code, message = alter(a, KEY, str(issue(pki, "fewer-sans", san="subjectAltName=DNS:localhost")))
        assert code == KafkaError.INVALID_REQUEST and "Keystore SubjectAltNames do not match" in message, message
        assert served(tls_port, pki.ca) == fingerprint_of_file(third)

        # An encrypted key with its password; DescribeConfigs lists both, the password hidden.
        password_key = "listener.name.ssl.ssl.key.password"
        encrypted = pki.dir / "server-encrypted.pem"
        assert alter(a, KEY, str(encrypted), **{password_key.replace(".", "_"): PKI.KEY_PASSWORD}) == (0, None)
        wait_until(lambda: served(tls_port, pki.ca) == original, 15, what="the encrypted store's certificate served")
        r = ConfigResource("broker", "1")
        described = a.describe_configs([r], request_timeout=30)[r].result(30)
        assert described[KEY].value == str(encrypted) and not described[KEY].is_sensitive
        assert described[KEY].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert described[password_key].is_sensitive and described[password_key].value is None

        # Removing the dynamic configs goes back to server.properties.
        assert alter(a, KEY, str(second)) == (0, None)
        wait_until(lambda: served(tls_port, pki.ca) == fingerprint_of_file(third), 15, what="the rewritten file served")
        assert alter(a, KEY, None, **{password_key.replace(".", "_"): None}) == (0, None)
        wait_until(lambda: served(tls_port, pki.ca) == original, 15, what="server.properties' certificate served again")

        # `runnel config alter --broker 1` (as kafka-configs.sh) sets it too; it applies after a restart.
        p = runnel("config", "alter", "--broker", "1", "--add-config", f"{KEY}={third}", "--bootstrap-server", bootstrap)
        assert p.returncode == 0, p.stderr
        wait_until(lambda: served(tls_port, pki.ca) == fingerprint_of_file(third), 15, what="the third certificate served")
        node.stop()
        node.start(60)
        wait_until(lambda: served(tls_port, pki.ca) == fingerprint_of_file(third), 30,
                   "the dynamic certificate served after a restart")
        round_trip(tls_bootstrap, pki.ca, topic, b"after-restart")
    finally:
        node.close()
