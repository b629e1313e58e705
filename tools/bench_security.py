"""tools/bench security: what TLS, SASL and the authorizer cost, measured in one run on one node.

One combined Runnel node with three client listeners, PLAINTEXT, SSL (server certificate only)
and SASL_SSL (SCRAM-SHA-512), and the StandardAuthorizer on (User:ANONYMOUS, the principal of
the PLAINTEXT and SSL listeners, is a super user; the SASL user `bench` is not and writes and
reads through a prefixed ACL on `bench-`). Certificates are made with openssl for the run.

For each listener, on its own one-partition topic: produce N messages of S bytes with acks=1
(MB/s, and MB per broker CPU-second), then consume N from the beginning with assign(); the
listeners take turns, --rounds times, and the median of each figure is printed (one run alone
moves by tens of percent on a shared two-core machine). Then SASL_SSL produce-only runs, --rounds
times, take turns (in another order each round) with no extra bindings, with 1,000 more bindings
on other resources (each of 500 users a literal topic and a prefixed group of its own: the
authorizer's index skips them), and with 1,000 more on top that apply to the topic (other
principals, half literal on it, half prefixed `bench`: each check walks them all, as Kafka's
would); bindings are added and deleted between runs. Ratios are against PLAINTEXT of the same
run, and for the ACL lines against the produce-only runs without extra bindings (produce-only
runs cost the broker more CPU per MB than the produce+consume rounds, so those are no baseline).

Each line also gives MB per CPU-second of this process, the client (librdkafka, in-process): on
a machine the client shares with the node, the client's own TLS work bounds the MB/s ratios too.

Targets from issue 16: TLS at least 70% of plaintext; produce with 1,000 ACLs at least 95% of
produce with none. Figures are printed, never checked. A debug build's figures say little.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, ResourcePatternType, ResourceType

from confluent_kafka import KafkaException

import nodes
from benchlib import QUIET, BenchError, consume_phase, create_topic, produce_phase, with_broker_cpu, work_dir
from nodes import free_ports, kafka_uuid
from secure import OPENSSL, PKI, SecureNode

PASSWORD = "bench-secret"
EXTRA_ACLS = 1000


def start(workroot: Path, binary: Path) -> tuple[SecureNode, dict]:
    pki = PKI(workroot / "pki", clients=())
    plain, tls, sasl, controller = free_ports(4)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls},SASL_SSL://127.0.0.1:{sasl},CONTROLLER://127.0.0.1:{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "log.dirs": str(workroot / "node" / "data"),
        "num.partitions": "1",
        "offsets.topic.num.partitions": "1",  # the consumers' group lookups create it in the first round
        **pki.server_ssl(),
    }
    node = SecureNode(workroot / "node", props, ready_port=plain, tls=False, binary=binary, cluster_id=kafka_uuid(),
                      scram=[f"SCRAM-SHA-512=[name=bench,password={PASSWORD}]"])
    node.start(60)
    clients = {
        "PLAINTEXT": (f"127.0.0.1:{plain}", {}),
        "SSL": (f"127.0.0.1:{tls}", {"security.protocol": "SSL", "ssl.ca.location": pki.ca}),
        "SASL_SSL": (f"127.0.0.1:{sasl}", {"security.protocol": "SASL_SSL", "ssl.ca.location": pki.ca, "sasl.mechanisms": "SCRAM-SHA-512",
                                           "sasl.username": "bench", "sasl.password": PASSWORD}),
    }
    return node, clients


def add_acls(bootstrap: str, bindings: list[AclBinding]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    for i in range(0, len(bindings), 100):
        for f in admin.create_acls(bindings[i:i + 100], request_timeout=60).values():
            f.result(60)


def remove_acls(bootstrap: str, bindings: list[AclBinding]) -> None:
    """Deletes exactly `bindings` (one exact filter each)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type)
               for b in bindings]
    for i in range(0, len(filters), 100):
        for f in admin.delete_acls(filters[i:i + 100], request_timeout=60).values():
            f.result(60)


def median(runs: list[dict]) -> dict:
    """Each figure's median over the runs of one kind."""
    keys = [k for k in ("mb_s", "mb_per_cpu_s", "client_mb_per_cpu_s") if all(k in r for r in runs)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def line(label: str, r: dict, base: dict | None) -> str:
    """MB/s and MB per broker CPU-second, each with its ratio to `base`'s. On a busy machine the
    second is the steadier measure of what the broker pays."""
    def ratio(key: str) -> str:
        return f" ({r[key] / base[key] * 100:3.0f}%)" if base and key in r and key in base else ""
    cpu = f"{r['mb_per_cpu_s']:6.0f} MB per broker CPU-s{ratio('mb_per_cpu_s'):<7}" if "mb_per_cpu_s" in r else ""
    client = f"  {r['client_mb_per_cpu_s']:5.0f} per client CPU-s{ratio('client_mb_per_cpu_s')}" if "client_mb_per_cpu_s" in r else ""
    return f"  {label:<34} {r['mb_s']:7.1f} MB/s{ratio('mb_s'):<7}  {cpu}{client}"


def main(binary: Path, messages: int, size: int, rounds: int) -> int:
    if OPENSSL is None:
        print("tools/bench security: openssl is needed to make the certificates", file=sys.stderr)
        return 2
    with work_dir("runnel-bench-security-") as workroot:
        node, clients = start(workroot, binary)
        results: dict[str, list[dict]] = {}
        topics: set[str] = set()
        try:
            plain_bootstrap = clients["PLAINTEXT"][0]
            # The consumer's group.id makes librdkafka look up its coordinator, which needs the group.
            add_acls(plain_bootstrap, [AclBinding(kind, "bench-", ResourcePatternType.PREFIXED, "User:bench", "*", AclOperation.ALL,
                                                  AclPermissionType.ALLOW) for kind in (ResourceType.TOPIC, ResourceType.GROUP)])
            print(f"tools/bench security: {messages} x {size} B messages per run, acks=1, one partition, {rounds} rounds; "
                  f"{node.binary}", flush=True)

            def run(key: str, listener: str, topic: str, consume: bool) -> None:
                bootstrap, client = clients[listener]
                if topic not in topics:
                    create_topic(plain_bootstrap, topic, 1, 60)
                    topics.add(topic)
                r = with_broker_cpu(node.pid, size, lambda: produce_phase(bootstrap, topic, messages, size, "1", 1, 300, client=client))
                results.setdefault(f"{key} produce", []).append(r)
                text = f"[{key}] produce {r['mb_s']:.1f} MB/s"
                if consume:
                    r = with_broker_cpu(node.pid, size, lambda: consume_phase(bootstrap, topic, messages, 1, 300, size, client=client))
                    results.setdefault(f"{key} consume", []).append(r)
                    text += f", consume {r['mb_s']:.1f} MB/s"
                print(text, flush=True)

            # A topic per listener and round: the consume phase reads N from the beginning, and a
            # topic that earlier rounds filled too hands it more than N in its last batch.
            for i in range(rounds):
                for listener in ("PLAINTEXT", "SSL", "SASL_SSL"):
                    run(listener, listener, f"bench-{listener.lower()}" + (f"-{i}" if i else ""), consume=True)
            elsewhere = [AclBinding(ResourceType.TOPIC, f"user-{i // 2}-events", ResourcePatternType.LITERAL, f"User:user-{i // 2}", "*",
                                    AclOperation.ALL, AclPermissionType.ALLOW) if i % 2 else
                         AclBinding(ResourceType.GROUP, f"user-{i // 2}-", ResourcePatternType.PREFIXED, f"User:user-{i // 2}", "*",
                                    AclOperation.READ, AclPermissionType.ALLOW) for i in range(EXTRA_ACLS)]
            applicable = [AclBinding(ResourceType.TOPIC, "bench-sasl_ssl" if i % 2 else "bench", ResourcePatternType.LITERAL if i % 2
                                     else ResourcePatternType.PREFIXED, f"User:other-{i}", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
                          for i in range(EXTRA_ACLS)]
            # The ACL runs take turns with a run without them, each round in another order, all
            # produce-only to the same topic: produce-only runs cost the broker more CPU per MB
            # than the produce+consume rounds above (measured: about half the MB per CPU-second
            # with no ACLs added at all), so those rounds are no baseline for them.
            extra = {"none": [], "elsewhere": elsewhere, "applicable": elsewhere + applicable}
            present: list[AclBinding] = []
            order = list(extra)
            for i in range(rounds):
                for key in order[i % 3:] + order[:i % 3]:
                    wanted = extra[key]
                    t0 = time.monotonic()
                    if len(present) > len(wanted):
                        remove_acls(plain_bootstrap, present[len(wanted):])
                    elif len(wanted) > len(present):
                        add_acls(plain_bootstrap, wanted[len(present):])
                    present = wanted
                    print(f"[acls] {len(present)} extra bindings in force ({time.monotonic() - t0:.1f} s to change)", flush=True)
                    time.sleep(1)  # the image with them reaches the authorizer
                    run(f"SASL_SSL, ACLs {key}", "SASL_SSL", "bench-sasl_ssl", consume=False)
            if not node.is_alive():
                raise BenchError(f"the node exited during the run; log tail:\n{node.log_tail()}")
        except (BenchError, KafkaException, nodes.NodeError) as e:
            print(f"tools/bench security: {e}", file=sys.stderr)
            return 1
        finally:
            node.close()
    figures = {key: median(runs) for key, runs in results.items()}
    print(f"\nmedians of {rounds} rounds (ratio to PLAINTEXT); produce acks=1:")
    print(line("PLAINTEXT", figures["PLAINTEXT produce"], None))
    print(line("SSL", figures["SSL produce"], figures["PLAINTEXT produce"]))
    print(line("SASL_SSL (SCRAM-SHA-512)", figures["SASL_SSL produce"], figures["PLAINTEXT produce"]))
    print("SASL_SSL produce-only, taking turns (ratio to no extra ACLs):")
    base = figures["SASL_SSL, ACLs none produce"]
    print(line("  no extra ACLs", base, None))
    print(line(f"  + {EXTRA_ACLS:,} ACLs elsewhere", figures["SASL_SSL, ACLs elsewhere produce"], base))
    print(line(f"  + {EXTRA_ACLS:,} more on the topic", figures["SASL_SSL, ACLs applicable produce"], base))
    print("consume:")
    print(line("PLAINTEXT", figures["PLAINTEXT consume"], None))
    print(line("SSL", figures["SSL consume"], figures["PLAINTEXT consume"]))
    print(line("SASL_SSL (SCRAM-SHA-512)", figures["SASL_SSL consume"], figures["PLAINTEXT consume"]))
    return 0
