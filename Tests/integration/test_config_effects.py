"""Honest configuration (project issue 20): every key Runnel accepts either takes effect or is
named, once, as accepted without effect.

- The table in docs/configuration.md is exactly what `runnel config no-effect --markdown` prints
  (the code's table, ConfigDefinitions.effects), and `--json` carries the same rows.
- A node started from a Kafka 3.9 server.properties (the keys of Kafka's
  config/kraft/server.properties) plus many keys without effect logs exactly one warning per key
  without effect that its file holds, naming the key and the reason from the table, and none for
  the keys that take effect; it has no unknown keys.

Runnel only (skips under RUNNEL_PEER=tansu or external: it runs the runnel binary).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from nodes import runnel_bin
from util import is_runnel

pytestmark = pytest.mark.skipif(not is_runnel(), reason="runs the runnel binary against a Runnel node")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TABLE_BEGIN = "<!-- no-effect table:"
TABLE_END = "<!-- no-effect table end -->"

# The keys of Kafka 3.9's config/kraft/server.properties that do not depend on this node's ports
# and directories (the fixture sets those), with Kafka's example values.
KAFKA_EXAMPLE = {
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map":
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
    "num.network.threads": "3",
    "num.io.threads": "8",
    "socket.send.buffer.bytes": "102400",
    "socket.receive.buffer.bytes": "102400",
    "socket.request.max.bytes": "104857600",
    "num.partitions": "1",
    "num.recovery.threads.per.data.dir": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "log.flush.interval.messages": "10000",
    "log.flush.interval.ms": "1000",
    "log.retention.hours": "168",
    "log.retention.bytes": "1073741824",
    "log.segment.bytes": "1073741824",
    "log.retention.check.interval.ms": "300000",
}

# Keys an operator copies from a production Kafka config that Runnel accepts without effect (or in
# part), with valid values.
WITHOUT_EFFECT = {
    "background.threads": "10",
    "num.replica.fetchers": "2",
    "log.cleaner.threads": "2",
    "group.coordinator.threads": "1",
    "controlled.shutdown.enable": "true",
    "controlled.shutdown.max.retries": "3",
    "controlled.shutdown.retry.backoff.ms": "5000",
    "max.connections": "10000",
    "queued.max.request.bytes": "-1",
    "request.timeout.ms": "30000",
    "socket.listen.backlog.size": "50",
    "replica.socket.receive.buffer.bytes": "65536",
    "metrics.num.samples": "2",
    "metrics.recording.level": "INFO",
    "metric.reporters": "",
    "log.preallocate": "false",
    "log.roll.jitter.hours": "0",
    "log.segment.delete.delay.ms": "60000",
    "log.cleaner.io.max.bytes.per.second": "1.7976931348623157E308",
    "log.message.downconversion.enable": "true",
    "log.message.format.version": "3.0-IV1",
    "log.local.retention.ms": "-2",
    "remote.log.storage.system.enable": "false",
    "producer.id.expiration.ms": "86400000",
    "offsets.load.buffer.size": "5242880",
    "fetch.purgatory.purge.interval.requests": "1000",
    "producer.purgatory.purge.interval.requests": "1000",
    "group.consumer.session.timeout.ms": "45000",
    "sasl.kerberos.service.name": "kafka",
    "ssl.cipher.suites": "",
    "metadata.log.segment.bytes": "1073741824",
    "metadata.max.retention.ms": "604800000",
    "log.flush.scheduler.interval.ms": "9223372036854775807",
    "listener.name.plaintext.ssl.protocol": "TLSv1.3",
}

# Keys that take effect (or that other work makes effective): never named at start-up.
WITH_EFFECT = {
    "compression.type": "producer",
    "log.message.timestamp.before.max.ms": "9223372036854775807",
    "log.message.timestamp.after.max.ms": "9223372036854775807",
    "max.incremental.fetch.session.cache.slots": "1000",
    "fetch.max.bytes": "57671680",
    "broker.id": "1",
    "log.cleaner.enable": "true",
    "group.initial.rebalance.delay.ms": "0",
    "min.insync.replicas": "1",
    "default.replication.factor": "1",
    "auto.create.topics.enable": "true",
    "quota.window.num": "11",
    "quota.window.size.seconds": "1",
    "replication.quota.window.num": "11",
}


def runnel(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(runnel_bin()), *args], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"runnel {' '.join(args)} exited {p.returncode}: {p.stderr}"
    return p


def code_table() -> dict[str, dict]:
    return {k["name"]: k for k in json.loads(runnel("config", "no-effect", "--json").stdout)["keys"]}


def docs_table() -> list[str]:
    lines = DOCS.read_text().splitlines()
    begin = next(i for i, ln in enumerate(lines) if ln.startswith(TABLE_BEGIN))
    end = lines.index(TABLE_END)
    return lines[begin + 1:end]


def test_docs_table_is_the_codes_table():
    printed = runnel("config", "no-effect", "--markdown").stdout.splitlines()
    assert docs_table() == printed, (
        "docs/configuration.md's table differs from the code's; regenerate it with "
        "`runnel config no-effect --markdown`")
    rows = [ln for ln in printed[2:]]
    table = code_table()
    assert [re.match(r"\| `([^`]+)` \|", ln).group(1) for ln in rows] == list(table)
    for ln, (name, key) in zip(rows, table.items()):
        assert ln == f"| `{name}` | {key['effect']} | {key['scope']} | {key['reason']} |"
        assert key["effect"] in ("none", "partial") and key["reason"].endswith(".")
    # A few the issue names, and keys that take effect, so the table cannot be vacuous.
    for name in ("num.io.threads", "preallocate", "local.retention.ms", "sasl.kerberos.service.name",
                 "segment.jitter.ms", "message.downconversion.enable"):
        assert table[name]["effect"] == "none", name
    for name in WITH_EFFECT:
        assert name not in table, name


def test_plain_listing_has_one_line_per_key():
    lines = runnel("config", "no-effect").stdout.splitlines()
    table = code_table()
    assert [ln.split()[0] for ln in lines] == list(table)


def test_kafka_server_properties_names_each_key_without_effect_once(node_factory):
    props = {**KAFKA_EXAMPLE, **WITHOUT_EFFECT, **WITH_EFFECT}
    node = node_factory(props)
    table = code_table()
    text = node.log_text()
    named = re.findall(r"configuration key (\S+) is (accepted without effect|only partly honoured): (.*)$", text,
                       re.MULTILINE)
    in_file = node.server_properties()
    expected = [k for k in in_file
                if k in table or (k.startswith("listener.name.") and k.split(".", 3)[3] in table)]
    assert sorted(k for k, _, _ in named) == sorted(expected), text
    assert len(named) == len(set(k for k, _, _ in named)), "a key was named twice"
    for key, wording, reason in named:
        base = key.split(".", 3)[3] if key.startswith("listener.name.") else key
        assert reason.strip() == table[base]["reason"], key
        assert wording == ("accepted without effect" if table[base]["effect"] == "none" else "only partly honoured")
    # Every key of the list above is among them, and none of the keys that take effect.
    assert set(WITHOUT_EFFECT) <= {k for k, _, _ in named}
    assert {"num.network.threads", "num.io.threads", "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
            "num.recovery.threads.per.data.dir"} <= {k for k, _, _ in named}
    for key in set(KAFKA_EXAMPLE) | set(WITH_EFFECT) | {"node.id", "listeners", "log.dirs"}:
        if key not in table:
            assert f"configuration key {key} is" not in text, key
    assert "unknown configuration key" not in text, text
