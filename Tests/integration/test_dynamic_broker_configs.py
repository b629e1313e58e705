"""Dynamic broker configs take effect or are refused (project issue 20), through confluent-kafka.

IncrementalAlterConfigs on a BROKER resource (broker 1 through confluent-kafka, the cluster default ""
through `runnel config alter --broker-defaults`, as librdkafka refuses an empty name) follows Kafka's
DynamicBrokerConfig.validateConfigs: a key that is never dynamic (log.dirs, node.id) is refused
with INVALID_REQUEST and "Cannot update these configs dynamically: Set(...)", validate_only or not,
and nothing is written; a key Kafka changes at runtime but Runnel reads only at start-up
(max.connections) is refused with a sentence saying so; a topic default (log.retention.ms) is
accepted and shows in DescribeConfigs as a dynamic value. DescribeConfigs' read_only agrees with
what is accepted. A value the key's validator refuses is INVALID_REQUEST on a broker resource, as
Kafka answers (KAFKA-13609), and INVALID_CONFIG on a topic.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

from test_cli_tools import runnel
from util import admin, create_topic, unique, wait_until


def alter(a, name: str, key: str, value: str | None, validate_only: bool = False):
    """The (error code, message) of one SET (or DELETE, with value None) on broker resource name."""
    op = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
    r = ConfigResource("broker", name, incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])
    try:
        a.incremental_alter_configs([r], validate_only=validate_only)[r].result(30)
        return 0, None
    except KafkaException as e:
        return e.args[0].code(), e.args[0].str()


def alter_default(bootstrap: str, *args: str):
    """`runnel config alter --broker-defaults ...`: (exit status, stderr)."""
    p = runnel("config", "alter", "--broker-defaults", *args, "--bootstrap-server", bootstrap)
    return p.returncode, p.stderr


def broker_configs(a, name: str) -> dict:
    r = ConfigResource("broker", name)
    return a.describe_configs([r], request_timeout=30)[r].result(30)


def test_read_only_broker_keys_are_refused(broker, require_runnel):
    a = admin(broker.bootstrap)
    for validate_only in (True, False):
        code, message = alter(a, "1", "log.dirs", "/tmp/elsewhere", validate_only)
        assert code == KafkaError.INVALID_REQUEST, (validate_only, code, message)
        assert message == "Cannot update these configs dynamically: Set(log.dirs)"
    status, err = alter_default(broker.bootstrap, "--add-config", "log.dirs=/tmp/elsewhere")
    assert status != 0 and "Cannot update these configs dynamically: Set(log.dirs)" in err, err
    code, message = alter(a, "1", "node.id", "7")
    assert (code, message) == (KafkaError.INVALID_REQUEST, "Cannot update these configs dynamically: Set(node.id)")
    code, message = alter(a, "1", "max.connections", "10")
    assert code == KafkaError.INVALID_REQUEST
    assert message == ("Runnel reads these configs only at start-up; set them in server.properties and restart "
                       "the broker: Set(max.connections)")
    # Nothing was written: broker 1 still reports its own log dir from server.properties.
    cfg = broker_configs(a, "1")
    assert cfg["log.dirs"].value == str(broker.data_dir)
    assert cfg["log.dirs"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    # DELETE of a read-only key is accepted, as in Kafka.
    assert alter(a, "1", "log.dirs", None) == (0, None)
    assert alter_default(broker.bootstrap, "--delete-config", "log.dirs")[0] == 0


def test_dynamic_broker_key_is_accepted_and_read_only_agrees(broker, require_runnel):
    a = admin(broker.bootstrap)
    assert alter_default(broker.bootstrap, "--add-config", "log.retention.ms=3600000")[0] == 0
    assert alter(a, "1", "log.segment.bytes", "2097152") == (0, None)
    try:
        entry = wait_until(
            lambda: (e := broker_configs(a, "1")["log.retention.ms"]).value == "3600000" and e,
            timeout=15, what="the cluster default in broker 1's configs")
        assert entry.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    finally:
        assert alter_default(broker.bootstrap, "--delete-config", "log.retention.ms")[0] == 0
        assert alter(a, "1", "log.segment.bytes", None) == (0, None)
    cfg = broker_configs(a, "1")
    assert not cfg["log.retention.ms"].is_read_only
    assert not cfg["min.insync.replicas"].is_read_only
    for key in ("log.dirs", "node.id", "process.roles", "max.connections", "listeners"):
        assert cfg[key].is_read_only, key


def test_bad_value_is_invalid_request_on_a_broker_and_invalid_config_on_a_topic(broker, require_runnel):
    a = admin(broker.bootstrap)
    for name in ("1", ""):
        if name == "":
            status, err = alter_default(broker.bootstrap, "--add-config", "log.retention.ms=abc")
            assert status != 0 and "Invalid value abc for configuration log.retention.ms: Not a number of type LONG" in err
            continue
        code, message = alter(a, name, "log.retention.ms", "abc")
        assert (code, message) == (
            KafkaError.INVALID_REQUEST, "Invalid value abc for configuration log.retention.ms: Not a number of type LONG")
    topic = unique("badvalue")
    create_topic(broker.bootstrap, topic, 1)
    r = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "abc", incremental_operation=AlterConfigOpType.SET)])
    try:
        a.incremental_alter_configs([r])[r].result(30)
        raise AssertionError("a bad topic value was accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_CONFIG, e
