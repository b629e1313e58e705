"""Issue 16, acceptance point 1: every client in every security mode.

Five clients (confluent-kafka, kafka-python, aiokafka, kcat and the Java client) x four ways in
(SASL_SSL with SCRAM-SHA-512, SASL_SSL with SCRAM-SHA-256, SASL_PLAINTEXT with PLAIN, and SSL with
a client certificate): each cell produces, consumes as a member of a consumer group, commits, and
reads its committed offset back. For each SASL mode and client, a wrong password fails with that
client's own authentication error while a correct client of the same library on the same listener
keeps producing and consuming.

One combined node serves the whole module (module-scoped fixture), with one listener per mode; the
authorizer is on and `alice` (by password, or by her certificate's subject through
ssl.principal.mapping.rules) has ACLs on the `mx-` prefix, so every cell also shows that the mode
yields the right principal. Every client is configured with its own real keys (librdkafka's
security.protocol/sasl.mechanisms/ssl.*.location, kafka-python's security_protocol/ssl_cafile...,
aiokafka's ssl_context from create_ssl_context, kcat -X, the Java client's sasl.jaas.config and
PEM key/trust stores). The JVM starts slowly, so all Java cells run concurrently in one JVM
(RunnelJavaClient's `matrix` subcommand), started in the background when the module starts while
the Python cells run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import javaclient
from nodes import free_ports, kafka_uuid
from secure import PKI, OPENSSL, SecureNode, three_listener_props
from util import QUIET, kcat_path, unique, wait_until

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is needed to make test certificates")

ADMIN_PASSWORD = "admin-secret"
ALICE_PASSWORD = "alice-secret"
WRONG_PASSWORD = "not-alice-secret"
COUNT = 10
CELL_TIMEOUT_S = 60


@dataclass(frozen=True)
class Mode:
    name: str            # the test id
    listener: str        # listener name (= its security protocol here)
    mechanism: str | None

    @property
    def sasl(self) -> bool:
        return self.mechanism is not None

    @property
    def tls(self) -> bool:
        return self.listener in ("SSL", "SASL_SSL")


MODES = (Mode("scram512", "SASL_SSL", "SCRAM-SHA-512"), Mode("scram256", "SASL_SSL", "SCRAM-SHA-256"),
         Mode("plain", "SASL_PLAINTEXT", "PLAIN"), Mode("cert", "SSL", None))
SASL_MODES = tuple(m for m in MODES if m.sasl)
CLIENTS = ("confluent", "kafka_python", "aiokafka", "kcat", "java")


class Matrix:
    def __init__(self, node: SecureNode, pki: PKI, ports: dict[str, int]):
        self.node = node
        self.pki = pki
        self.ports = ports
        self.jvm: subprocess.Popen | None = None
        self.java_spec: dict[str, dict] = {}
        self._java_results: dict[str, dict] | None = None
        self._java_failure: str | None = None

    def bootstrap(self, mode: Mode) -> str:
        return f"127.0.0.1:{self.ports[mode.listener]}"

    # -- each client's own settings ---------------------------------------------------------------

    def librdkafka(self, mode: Mode, password: str = ALICE_PASSWORD) -> dict:
        conf = {"bootstrap.servers": self.bootstrap(mode), "security.protocol": mode.listener}
        if mode.tls:
            conf["ssl.ca.location"] = self.pki.ca
        if mode.sasl:
            conf.update({"sasl.mechanisms": mode.mechanism, "sasl.username": "alice", "sasl.password": password})
        else:
            conf.update({"ssl.certificate.location": self.pki.cert("alice"), "ssl.key.location": self.pki.key("alice")})
        return conf

    def kafka_python(self, mode: Mode, password: str = ALICE_PASSWORD) -> dict:
        kw = dict(bootstrap_servers=self.bootstrap(mode), security_protocol=mode.listener)
        if mode.tls:
            kw["ssl_cafile"] = self.pki.ca
        if mode.sasl:
            kw.update(sasl_mechanism=mode.mechanism, sasl_plain_username="alice", sasl_plain_password=password)
        else:
            kw.update(ssl_certfile=self.pki.cert("alice"), ssl_keyfile=self.pki.key("alice"))
        return kw

    def aiokafka(self, mode: Mode, password: str = ALICE_PASSWORD) -> dict:
        from aiokafka.helpers import create_ssl_context
        kw = dict(bootstrap_servers=self.bootstrap(mode), security_protocol=mode.listener)
        if mode.tls:
            cert = {} if mode.sasl else dict(certfile=self.pki.cert("alice"), keyfile=self.pki.key("alice"))
            kw["ssl_context"] = create_ssl_context(cafile=self.pki.ca, **cert)
        if mode.sasl:
            kw.update(sasl_mechanism=mode.mechanism, sasl_plain_username="alice", sasl_plain_password=password)
        return kw

    def kcat(self, mode: Mode, password: str = ALICE_PASSWORD) -> list[str]:
        return ["-b", self.bootstrap(mode), *(a for k, v in self.librdkafka(mode, password).items()
                                              if k != "bootstrap.servers" for a in ("-X", f"{k}={v}"))]

    def java(self, mode: Mode, password: str = ALICE_PASSWORD) -> dict:
        props = {"security.protocol": mode.listener}
        if mode.tls:
            props.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": self.pki.ca})
        if mode.mechanism == "PLAIN":
            props["sasl.jaas.config"] = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                         f'username="alice" password="{password}";')
        elif mode.sasl:
            props["sasl.jaas.config"] = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                         f'username="alice" password="{password}";')
        if mode.sasl:
            props["sasl.mechanism"] = mode.mechanism
        else:
            props.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": self.java_keystore("alice")})
        return props

    def java_keystore(self, name: str) -> str:
        """The Java client's PEM key store: the private key (PKCS#8, unencrypted, so no
        ssl.key.password) followed by its certificate, in one file."""
        path = self.pki.dir / f"{name}-keystore.pem"
        if not path.exists():
            path.write_text(Path(self.pki.key(name)).read_text() + Path(self.pki.cert(name)).read_text())
        return str(path)

    # -- the Java cells: one JVM for all -------------------------------------------------------

    def start_java(self) -> None:
        cells = {}
        for mode in MODES:
            cells[f"roundtrip-{mode.name}"] = {"kind": "roundtrip", "mode": mode, "topic": unique(f"mx-java-{mode.name}"),
                                               "group": unique(f"mx-java-{mode.name}-g")}
        for mode in SASL_MODES:
            cells[f"wrongpass-{mode.name}"] = {"kind": "wrongpass", "mode": mode, "topic": unique(f"mx-java-bad-{mode.name}")}
        lines = [f"cells={','.join(cells)}"]
        for name, cell in cells.items():
            mode = cell["mode"]
            lines += [f"{name}.kind={cell['kind']}", f"{name}.bootstrap={self.bootstrap(mode)}",
                      f"{name}.topic={cell['topic']}", f"{name}.count={COUNT}"]
            if "group" in cell:
                lines.append(f"{name}.group={cell['group']}")
            lines += [f"{name}.client.{k}={_escape(v)}" for k, v in self.java(mode).items()]
            if cell["kind"] == "wrongpass":
                bad = {**self.java(mode, WRONG_PASSWORD), "max.block.ms": "20000"}
                lines += [f"{name}.bad.{k}={_escape(v)}" for k, v in bad.items()]
        spec = self.node.workdir / "java-matrix.properties"
        spec.write_text("\n".join(lines) + "\n")
        self.java_spec = cells
        cp = f"{javaclient.classpath_jars()}:{javaclient.compiled_dir()}"
        self.java_out = self.node.workdir / "java-matrix.out"
        self.java_err = self.node.workdir / "java-matrix.err"
        self.jvm = subprocess.Popen(["java", *javaclient.JVM_FLAGS, "-cp", cp, javaclient.MAIN_CLASS, "matrix", str(spec)],
                                     stdout=self.java_out.open("w"), stderr=self.java_err.open("w"), stdin=subprocess.DEVNULL)

    def java_result(self, cell: str) -> dict:
        if self._java_results is None and self._java_failure is None:
            try:
                code = self.jvm.wait(timeout=240)
            except subprocess.TimeoutExpired:
                self.jvm.kill()
                code = "killed after 240 s"
            results = {}
            for line in self.java_out.read_text().splitlines():
                if line.strip():
                    obj = json.loads(line)
                    results[obj["cell"]] = obj
            if code != 0:
                self._java_failure = f"the Java matrix exited {code}: {self.java_err.read_text()[-3000:]}"
            self._java_results = results
        if self._java_failure:
            pytest.fail(self._java_failure)
        assert cell in self._java_results, f"no line for {cell}: {self.java_err.read_text()[-3000:]}"
        return self._java_results[cell]


def _escape(value: str) -> str:
    """A java.util.Properties value: backslashes doubled (no other character here needs it)."""
    return value.replace("\\", "\\\\")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("secmatrix")
    pki = PKI(work / "pki", clients=("alice", "admin"))
    ssl_port, sasl_ssl_port, sasl_plain_port, controller_port = free_ports(4)
    ports = {"SSL": ssl_port, "SASL_SSL": sasl_ssl_port, "SASL_PLAINTEXT": sasl_plain_port}
    props = three_listener_props(work, pki, {**ports, "CONTROLLER": controller_port}, ADMIN_PASSWORD,
                                 {"admin": ADMIN_PASSWORD, "alice": ALICE_PASSWORD})
    node = SecureNode(work / "node", props, ready_port=sasl_ssl_port, tls=True, cluster_id=kafka_uuid(),
                      scram=[f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]",
                             f"SCRAM-SHA-512=[name=alice,password={ALICE_PASSWORD}]",
                             f"SCRAM-SHA-256=[name=alice,password={ALICE_PASSWORD}]"])
    node.start()
    m = Matrix(node, pki, ports)
    try:
        admin_config = node.workdir / "admin.properties"
        admin_config.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\n"
                                f"sasl.password={ADMIN_PASSWORD}\nssl.ca.location={pki.ca}\n")
        for args in (["--topic", "mx-", "--resource-pattern-type", "prefixed"], ["--group", "mx-", "--resource-pattern-type", "prefixed"]):
            _runnel(m, "acl", "add", "--allow-principal", "User:alice", "--operation", "All", *args, config=admin_config)
        _runnel(m, "acl", "add", "--allow-principal", "User:alice", "--operation", "IdempotentWrite", "--cluster", config=admin_config)
        m.admin_config = admin_config
        # The JVM runs beside the Python cells, and only when Java cells were selected.
        java_selected = any(getattr(item, "callspec", None) is not None and item.callspec.params.get("client") == "java"
                            and item.module is request.module for item in request.session.items)
        if java_selected and not javaclient.missing():
            m.start_java()
        yield m
    finally:
        if m.jvm is not None and m.jvm.poll() is None:
            m.jvm.kill()
            m.jvm.wait()
        node.close()


def _runnel(m: Matrix, *args: str, config: Path) -> subprocess.CompletedProcess:
    p = subprocess.run([str(m.node.binary), *args, "--bootstrap-server", m.bootstrap(MODES[0]), "--command-config", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def values(prefix: str, n: int = COUNT) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


# -- produce, consume, consumer group: one cell per client and mode -----------------------------

def roundtrip_confluent(m: Matrix, mode: Mode, topic: str, group: str) -> tuple[list[str], int]:
    conf = {**m.librdkafka(mode), **QUIET}
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    errors = []
    for v in values(topic):
        p.produce(topic, v.encode(), on_delivery=lambda e, msg: errors.append(e) if e else None)
    assert p.flush(CELL_TIMEOUT_S) == 0 and not errors, errors
    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + CELL_TIMEOUT_S
    while len(got) < COUNT and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value().decode())
    c.commit(asynchronous=False)
    [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
    c.close()
    return got, tp.offset


def roundtrip_kafka_python(m: Matrix, mode: Mode, topic: str, group: str) -> tuple[list[str], int]:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import TopicPartition as KTopicPartition
    kw = m.kafka_python(mode)
    producer = KafkaProducer(acks="all", **kw)
    for f in [producer.send(topic, v.encode()) for v in values(topic)]:
        f.get(timeout=CELL_TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **kw)
    got = []
    deadline = time.monotonic() + CELL_TIMEOUT_S
    while len(got) < COUNT and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += [r.value.decode() for r in records]
    consumer.commit()
    offset = consumer.committed(KTopicPartition(topic, 0))
    consumer.close()
    return got, offset


def roundtrip_aiokafka(m: Matrix, mode: Mode, topic: str, group: str) -> tuple[list[str], int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def go():
        kw = m.aiokafka(mode)
        producer = AIOKafkaProducer(acks="all", **kw)
        await producer.start()
        try:
            for v in values(topic):
                await producer.send_and_wait(topic, v.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **kw)
        await consumer.start()
        got = []
        try:
            deadline = time.monotonic() + CELL_TIMEOUT_S
            while len(got) < COUNT and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [r.value.decode() for r in records]
            await consumer.commit()
            offset = await consumer.committed(ATopicPartition(topic, 0))
        finally:
            await consumer.stop()
        return got, offset

    return asyncio.run(go())


def roundtrip_kcat(m: Matrix, mode: Mode, topic: str, group: str) -> tuple[list[str], int]:
    kcat = kcat_path()
    assert kcat, "kcat is not installed (tools/test installs it with apt-get)"
    p = subprocess.run([kcat, *m.kcat(mode), "-X", "acks=all", "-P", "-t", topic], input="".join(v + "\n" for v in values(topic)),
                       text=True, capture_output=True, timeout=CELL_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    # A balanced consumer (-G) that stops after COUNT records; librdkafka commits on close.
    p = subprocess.run([kcat, *m.kcat(mode), "-X", "auto.offset.reset=earliest", "-G", group, topic, "-c", str(COUNT), "-q"],
                       capture_output=True, text=True, timeout=CELL_TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    return p.stdout.split(), kcat_committed(m, mode, topic, group)


def kcat_committed(m: Matrix, mode: Mode, topic: str, group: str) -> int:
    """The offset kcat's group committed for partition 0 (kcat cannot show it), as the coordinator
    answers OffsetFetch to confluent-kafka over the same listener as alice."""
    c = Consumer({**m.librdkafka(mode), **QUIET, "group.id": group})
    try:
        [tp] = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        c.close()


ROUNDTRIP = {"confluent": roundtrip_confluent, "kafka_python": roundtrip_kafka_python, "aiokafka": roundtrip_aiokafka,
             "kcat": roundtrip_kcat}


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
@pytest.mark.parametrize("client", CLIENTS)
def test_produce_consume_and_group(matrix, client, mode):
    if client == "java":
        why = javaclient.missing()
        if why:
            pytest.skip(why)
        r = matrix.java_result(f"roundtrip-{mode.name}")
        assert "error" not in r, r["error"]
        topic = matrix.java_spec[f"roundtrip-{mode.name}"]["topic"]
        assert r["produced"] == COUNT, r
        assert sorted(r["consumed"]) == sorted(f"roundtrip-{mode.name}-{i}" for i in range(COUNT)), (topic, r)
        assert r["committed"] == COUNT, r
        return
    topic, group = unique(f"mx-{client}-{mode.name}"), unique(f"mx-{client}-{mode.name}-g")
    got, offset = ROUNDTRIP[client](matrix, mode, topic, group)
    assert sorted(got) == sorted(values(topic))
    assert offset == COUNT


# -- a wrong password: the client's authentication error; a correct client works on -----------

def wrong_password_confluent(m: Matrix, mode: Mode, topic: str, caplog) -> str:
    good = Producer({**m.librdkafka(mode), **QUIET, "acks": "all"})
    good.produce(topic, b"before")
    assert good.flush(CELL_TIMEOUT_S) == 0
    errors = []
    bad = Producer({**m.librdkafka(mode, WRONG_PASSWORD), **QUIET, "error_cb": errors.append})
    bad.produce(topic, b"never")
    wait_until(lambda: bad.poll(0.2) is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors), timeout=20,
               what="confluent-kafka's _AUTHENTICATION error")
    good.produce(topic, b"after")
    assert good.flush(CELL_TIMEOUT_S) == 0
    bad.purge()
    bad.flush(1)
    [e] = [e for e in errors if e.code() == KafkaError._AUTHENTICATION][:1]
    return f"KafkaError._AUTHENTICATION: {e.str()}"


def wrong_password_kafka_python(m: Matrix, mode: Mode, topic: str, caplog) -> str:
    """kafka-python 3 retries a bootstrap that fails for any reason until bootstrap_timeout_ms and
    then raises KafkaTimeoutError; each try logs the broker's error, SaslAuthenticationFailedError."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError
    good = KafkaProducer(acks="all", **m.kafka_python(mode))
    try:
        good.send(topic, b"before").get(timeout=CELL_TIMEOUT_S)
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaProducer(acks="all", bootstrap_timeout_ms=3000, **m.kafka_python(mode, WRONG_PASSWORD))
        good.send(topic, b"after").get(timeout=CELL_TIMEOUT_S)
    finally:
        good.close()
    return logged(caplog, "kafka")


def logged(caplog, logger: str) -> str:
    """What the client library logged at ERROR and above, one line per record."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(logger) and r.levelname == "ERROR")


def wrong_password_aiokafka(m: Matrix, mode: Mode, topic: str, caplog) -> str:
    """aiokafka's start() raises KafkaConnectionError ("Unable to bootstrap") once no bootstrap
    server let it in, and logs why: the broker's SaslAuthenticationFailed."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    async def go():
        good = AIOKafkaProducer(acks="all", **m.aiokafka(mode))
        await good.start()
        try:
            await good.send_and_wait(topic, b"before")
            bad = AIOKafkaProducer(acks="all", **m.aiokafka(mode, WRONG_PASSWORD))
            with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
                try:
                    await bad.start()
                finally:
                    await bad.stop()
            await good.send_and_wait(topic, b"after")
        finally:
            await good.stop()

    asyncio.run(go())
    return logged(caplog, "aiokafka")


def wrong_password_kcat(m: Matrix, mode: Mode, topic: str, caplog) -> str:
    kcat = kcat_path()
    assert kcat, "kcat is not installed (tools/test installs it with apt-get)"
    good = subprocess.Popen([kcat, *m.kcat(mode), "-P", "-t", topic], stdin=subprocess.PIPE, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        good.stdin.write("before\n")
        good.stdin.flush()
        bad = subprocess.run([kcat, *m.kcat(mode, WRONG_PASSWORD), "-L", "-t", topic, "-m", "3"], capture_output=True, text=True,
                             timeout=CELL_TIMEOUT_S)
        assert bad.returncode != 0, bad.stdout
        good.stdin.write("after\n")
        good.stdin.close()
        assert good.wait(CELL_TIMEOUT_S) == 0, good.stderr.read()
    finally:
        if good.poll() is None:
            good.kill()
            good.wait()
    return bad.stderr.strip()


WRONG_PASSWORD_CHECKS = {
    "confluent": (wrong_password_confluent, "Authentication failed"),
    "kafka_python": (wrong_password_kafka_python, "[Error 58] SaslAuthenticationFailedError"),
    "aiokafka": (wrong_password_aiokafka, "[Error 58] SaslAuthenticationFailed"),
    "kcat": (wrong_password_kcat, "Authentication failed"),
}


def read_back(m: Matrix, mode: Mode, topic: str) -> list[str]:
    c = Consumer({**m.librdkafka(mode), **QUIET, "group.id": unique("mx-readback")})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 2 and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value().decode())
    c.close()
    return got


@pytest.mark.parametrize("mode", SASL_MODES, ids=[m.name for m in SASL_MODES])
@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_password_fails_and_a_correct_client_keeps_working(matrix, client, mode, caplog):
    if client == "java":
        why = javaclient.missing()
        if why:
            pytest.skip(why)
        r = matrix.java_result(f"wrongpass-{mode.name}")
        assert "error" not in r, r["error"]
        assert r["badError"] == "org.apache.kafka.common.errors.SaslAuthenticationException", r
        assert "Authentication failed" in (r["badMessage"] or ""), r
        assert r["goodOffset"] >= 0 and r["goodRead"], r
        return
    topic = unique(f"mx-bad-{client}-{mode.name}")
    check, expected = WRONG_PASSWORD_CHECKS[client]
    error = check(matrix, mode, topic, caplog)
    assert expected in error, error
    assert "Authentication failed" in error, error
    assert read_back(matrix, mode, topic) == ["before", "after"]
